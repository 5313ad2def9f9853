import ArgumentParser
import Foundation
import Logging
import VidrdDaemon
import VidrdPlugins
import VidrdRuntime

@main
struct VidrdDaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vidrd-daemon",
        abstract: "Streams endless text-to-video clips over TCP (protocol: docs/PROTOCOL.md).",
        discussion: """
            Runs in the foreground; SIGINT/SIGTERM drain it gracefully (clips in progress finish, \
            then every session ends with UNAVAILABLE); a second signal ends it at once.

            Model: --model DIR, else `model` in --config, else Models/vidrd-tiny under the current \
            directory or the package root the executable was built in.
            Config file keys (`key = value`, `#` comments; docs/DAEMON.md):
            \(DaemonConfiguration.keys.map { "  \($0.key): \($0.help)" }.joined(separator: "\n"))

            Exit status: 0 after a clean drain; 64 usage; 66 model missing or unreadable; \
            71 cannot listen; 78 bad config or plugins.conf.
            """)

    @Option(help: "Address to listen on, HOST:PORT (default 127.0.0.1:7878; port 0 picks a free one).")
    var listen: String?

    @Option(help: "Serve /metrics (Prometheus), /ready, /live and the HAProxy agent-check on HOST:PORT, or PORT on 127.0.0.1; `off` for none (default off).")
    var metricsListen: String?

    @Option(help: "Configuration file (key = value lines).")
    var config: String?

    @Option(help: "Diffusers model folder (default: Models/vidrd-tiny).")
    var model: String?

    @Option(help: "plugins.conf (default: ./plugins.conf if present, else the built-in strategies).")
    var plugins: String?

    @Option(help: "Compute threads: steps of different sessions run at once (default: one per core, at most 8).")
    var workers: Int?

    @Option(help: "Cores one compute thread's call splits over (default: the cores shared among the calls running at the moment).")
    var threadsPerWorker: Int?

    @Option(help: "Steps of different sessions per U-Net call; 1 turns batching off (default 1; batched frames equal unbatched ones to float rounding only).")
    var maxBatch: Int?

    @Option(help: "Milliseconds a U-Net call waits for compatible steps about to arrive (default 5).")
    var batchWaitMs: Int?

    @Option(help: "Read the shared secret clients must send from this file (or set VIDRD_TOKEN).")
    var tokenFile: String?

    @Option(help: "Write the bound port to this file once listening (for scripts using port 0).")
    var portFile: String?

    @Option(help: "Write the bound probe port to this file once listening (with --metrics-listen and port 0).")
    var metricsPortFile: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    @Option(help: "fp32 (exact, the default) or bf16 (the fast mode: bf16 weights and products summed in fp32; needs AVX-512 BF16).")
    var precision: String?

    func validate() throws {
        // A usage error (64) before anything loads, naming the option and the value.
        if let metricsListen, !["off", "none"].contains(metricsListen.lowercased()) {
            guard let address = ListenAddress(parsing: metricsListen), address.hasNumericHost else {
                throw ValidationError(
                    "--metrics-listen: `\(metricsListen)` is not HOST:PORT or PORT with a numeric IPv4 or IPv6 host or localhost (e.g. 127.0.0.1:7879)")
            }
        }
    }

    func run() throws {
        // Before the model is loaded, so that its buffers already follow the tuned allocator.
        ProcessTuning.configureAllocator()
        var conf = DaemonConfiguration()
        do {
            if let config { conf = try DaemonConfiguration(contentsOf: config) }
            if let listen { try conf.set("listen", listen) }
            if let metricsListen { try conf.set("metrics_listen", metricsListen) }
            if let workers { try conf.set("workers", String(workers)) }
            if let threadsPerWorker { try conf.set("threads_per_worker", String(threadsPerWorker)) }
            if let maxBatch { try conf.set("max_batch", String(maxBatch)) }
            if let batchWaitMs { try conf.set("batch_wait_ms", String(batchWaitMs)) }
            if let tokenFile { try conf.set("token_file", tokenFile) }
            else if let t = ProcessInfo.processInfo.environment["VIDRD_TOKEN"], !t.isEmpty { try conf.set("token", t) }
            if let logLevel { try conf.set("log_level", logLevel) }
            if let precision { try conf.set("precision", precision) }
            if let problem = conf.validationError() { throw ConfigurationError(message: problem) }
        } catch let e as ConfigurationError {
            fail("configuration: \(e)", code: 78)
        }
        do { try ComputeKernels.validateEnvironment() } catch { fail("environment: \(error)", code: 78) }
        let level = Logger.Level(rawValue: conf.logLevel ?? "info") ?? .info
        LoggingSystem.bootstrap { LogfmtLogHandler(label: $0, level: level) }
        let logger = Logger(label: "vidrd.daemon")

        guard let modelDir = model ?? conf.modelPath ?? EmbeddedModel.locate()?.path else {
            fail(
                """
                no model: pass --model DIR (a diffusers text-to-video folder, e.g. Tests/Fixtures/tiny-lpb2/model). \
                The embedded default model (Models/vidrd-tiny) was not found under the current directory or the package root.
                """, code: 66)
        }
        var registry = StrategyRegistry.builtIn()
        let pluginsPath = plugins ?? conf.pluginsPath ?? (FileManager.default.fileExists(atPath: "plugins.conf") ? "plugins.conf" : nil)
        if let pluginsPath {
            do {
                registry = try StrategyRegistry.load(conf: pluginsPath)
            } catch {
                fail("plugins: \(error)", code: 78)
            }
        }
        let engine: GenerationEngine
        let t0 = Date()
        do {
            engine = try GenerationEngine(modelDirectory: URL(fileURLWithPath: modelDir), precision: conf.precision, registry: registry)
        } catch {
            fail("cannot load the model at \(modelDir): \(error)", code: 66)
        }
        logger.info(
            "model loaded",
            metadata: [
                "path": "\(modelDir)", "seconds": "\(String(format: "%.2f", Date().timeIntervalSince(t0)))",
                "plugins": "\(pluginsPath ?? "built-in")",
                "kernels": "\(ComputeKernels.active.isa.rawValue)",
                "precision": "\(conf.precision.rawValue)",
                "default_guidance": "\(engine.defaultGuidance(conf.sessionDefaults))",
            ])
        let daemon: Daemon
        do {
            daemon = try Daemon(configuration: conf, engine: engine, logger: logger)
        } catch {
            fail("cannot listen on \(conf.listen): \(error)", code: 71)
        }
        if let portFile {
            try? "\(daemon.port)\n".write(toFile: portFile, atomically: true, encoding: .utf8)
        }
        if let metricsPortFile, let port = daemon.metricsPort {
            try? "\(port)\n".write(toFile: metricsPortFile, atomically: true, encoding: .utf8)
        }
        daemon.run(handleSignals: true)
    }

    func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("vidrd-daemon: \(message)\n".utf8))
        Foundation.exit(code)
    }
}
