import Foundation
import Testing
import VidrdMedia

/// The built `vidrd-client` executable, next to the test bundle (`swift build --build-tests`
/// and `swift test` build every product into the same folder).
enum ClientBinary {
    static let path: String? = locate("vidrd-client")

    /// A product built next to the test bundle, or nil.
    static func locate(_ name: String) -> String? {
        var dirs: [URL] = []
        if let exe = Bundle.main.executableURL { dirs.append(exe.deletingLastPathComponent()) }
        dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        dirs.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for d in dirs {
            for candidate in [d, d.deletingLastPathComponent()] {
                let p = candidate.appendingPathComponent(name).path
                if FileManager.default.isExecutableFile(atPath: p) { return p }
            }
        }
        return nil
    }

    /// Runs the client; returns (exit status, stdout, stderr). Killed after `timeout` seconds.
    /// `interruptWhen` is polled every 20 ms; once it holds, the client gets SIGINT (Ctrl-C).
    /// `environment` adds to (or overrides) the test process's own variables.
    static func run(
        _ arguments: [String], executable: String? = path, timeout: Double = 30,
        environment: [String: String] = [:], interruptWhen: (() -> Bool)? = nil
    ) throws -> (Int32, Data, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(executable, "the executable is not built next to the tests"))
        p.arguments = arguments
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let outData = Locked2<Data>()
        let t = Thread { outData.set(out.fileHandleForReading.readDataToEndOfFile()) }
        t.start()
        let started = Date()
        var interrupted = false
        while p.isRunning, Date().timeIntervalSince(started) < timeout {
            if let condition = interruptWhen, !interrupted, condition() {
                p.interrupt()
                interrupted = true
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        stop(p)
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        while outData.get() == nil { Thread.sleep(forTimeInterval: 0.01) }
        return (p.terminationStatus, outData.get()!, errText)
    }
}

final class Locked2<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T?
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func get() -> T? { lock.lock(); defer { lock.unlock() }; return value }
}

extension DaemonSuite {
    @Suite("vidrd-client command", .enabled(if: ClientBinary.path != nil, "vidrd-client is not built next to the tests"))
    struct CommandLineTests {
        @Test("stream --clips, --out, --webp, --stdout, Ctrl-C, info, strategies and exit codes")
        func commandLine() async throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let server = "127.0.0.1:\(d.port)"
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-cli-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let common = ["--server", server, "--prompt", "a red ball", "--steps", "2", "--guidance", "1", "--width", "8", "--height", "8",
                          "--frames", "4", "--emission", "all", "--prompt-frames", "2", "--seed", "3"]

            var (status, stdout, stderr) = try ClientBinary.run(
                ["stream"] + common + ["--clips", "2", "--out", dir.path, "--webp", dir.appendingPathComponent("all.webp").path, "--stdout"])
            #expect(status == 0, "\(stderr)")
            let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("frame_") }.sorted()
            #expect(files == (0..<8).map { String(format: "frame_%06d.webp", $0) })
            for f in files { _ = try WebP.decode(Array(try Data(contentsOf: dir.appendingPathComponent(f)))) }
            let animation = try AnimatedWebPReader.frames(Array(try Data(contentsOf: dir.appendingPathComponent("all.webp"))))
            #expect(animation.count == 8)
            #expect(stdout.count == 8 * 8 * 8 * 3, "raw RGB24 frames on stdout")
            #expect(stderr.contains("2 clips, 8 frames"))

            // Ctrl-C after the first frames: the stream is cancelled, the animated WebP is finished, exit 0.
            let webp = dir.appendingPathComponent("interrupted.webp")
            let frames = dir.appendingPathComponent("interrupted")
            let firstFrame = frames.appendingPathComponent("frame_000000.webp").path
            (status, _, stderr) = try ClientBinary.run(
                ["stream"] + common + ["--webp", webp.path, "--out", frames.path],
                interruptWhen: { FileManager.default.fileExists(atPath: firstFrame) })
            #expect(status == 0, "\(stderr)")
            #expect(try AnimatedWebPReader.frames(Array(try Data(contentsOf: webp))).count >= 1)

            (status, stdout, _) = try ClientBinary.run(["info", "--server", server])
            #expect(status == 0 && String(decoding: stdout, as: UTF8.self).contains("tiny-lpb2"))
            (status, stdout, _) = try ClientBinary.run(["strategies", "--server", server])
            #expect(status == 0 && String(decoding: stdout, as: UTF8.self).contains("default chain: fnr,pns"))

            (status, _, _) = try ClientBinary.run(["stream", "--server", server])
            #expect(status == 64, "usage error")
            (status, _, stderr) = try ClientBinary.run(["stream", "--server", server, "--prompt", "x", "--width", "12"])
            #expect(status == 65, "rejected by the server: \(stderr)")
            (status, _, _) = try ClientBinary.run(["info", "--server", "127.0.0.1:1"])
            #expect(status == 69, "connection refused")
        }
    }
}

/// The Python client of docs/PROTOCOL.md §12, run verbatim (only the port changed) against the
/// daemon: the document is enough to write a working client.
enum PythonClient {
    static let python: String? = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func docCode() throws -> String {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        for _ in 0..<4 { dir = dir.deletingLastPathComponent(); if FileManager.default.fileExists(atPath: dir.appendingPathComponent("docs/PROTOCOL.md").path) { break } }
        let doc = try String(contentsOf: dir.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
        let section = try #require(doc.range(of: "## 12. Writing a client"))
        let start = try #require(doc.range(of: "```python\n", range: section.upperBound..<doc.endIndex))
        let end = try #require(doc.range(of: "\n```", range: start.upperBound..<doc.endIndex))
        return String(doc[start.upperBound..<end.lowerBound])
    }
}

extension DaemonSuite {
    @Suite("PROTOCOL.md §12 client", .enabled(if: PythonClient.python != nil, "python3 is not installed"))
    struct DocClientTests {
        @Test("the Python skeleton from the document streams, keeps itself alive with PINGs, cancels and closes")
        func pythonSkeleton() async throws {
            // Clips that take longer than the idle timeout (many steps, 400 ms idle): only a
            // client that PINGs while it waits survives (§8.5).
            let d = try TestDaemon {
                $0.limits.keepaliveIntervalMs = 100
                $0.limits.idleTimeoutMs = 400
                $0.sessionDefaults.steps = Self.slowSteps
            }
            defer { d.stop() }
            let code = try PythonClient.docCode()
            #expect(code.contains("(\"127.0.0.1\", 7878)"))
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-py-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: PythonClient.python!)
            p.arguments = ["-c", code.replacingOccurrences(of: "(\"127.0.0.1\", 7878)", with: "(\"127.0.0.1\", \(d.port))")]
            p.currentDirectoryURL = dir
            let out = Pipe(), err = Pipe()
            p.standardOutput = out
            p.standardError = err
            let started = Date()
            try p.run()
            defer { stop(p) }
            #expect(await eventually(within: 120) { !p.isRunning }, "the skeleton ends by itself after CLIPS clips")
            let elapsed = Date().timeIntervalSince(started)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(p.terminationStatus == 0, "\(stderr)")
            #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "3 clips\n")
            // Three clips of 4 frames (emission all), no frame of a fourth.
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".webp") }.sorted()
            #expect(names == (0..<12).map { String(format: "frame_%06d.webp", $0) })
            for name in names {
                let image = try WebP.decode(Array(try Data(contentsOf: dir.appendingPathComponent(name))))
                #expect(image.width == 8 && image.height == 8)
            }
            // The skeleton sends nothing but PINGs between OPEN_SESSION, its one PULL (after clip 0)
            // and CANCEL (after clip 2): two silent stretches. Over 3 × 400 ms in all means one
            // of them outlasted the idle timeout, which only the PINGs survived.
            #expect(elapsed > 3 * 0.4, "the clips must take longer than the idle timeout (\(elapsed) s); raise slowSteps")
            #expect(await eventually { (try? await d.client().info().activeSessions) == 0 }, "the session was cancelled")
        }

        /// Steps per clip so that one 8×8, 4-frame clip of the tiny model outlasts a 400 ms idle
        /// timeout in a debug build (12 no longer did on an AVX-512 machine once weights were packed
        /// at load: 1.06 s for the three clips).
        static let slowSteps: UInt32 = 36
    }
}

/// Ends a child process without `waitUntilExit` (which can hang in an async test on Linux):
/// SIGTERM, poll up to 5 s, then SIGKILL.
func stop(_ p: Process) {
    guard p.isRunning else { return }
    p.terminate()
    let deadline = Date().addingTimeInterval(5)
    while p.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    if p.isRunning { kill(p.processIdentifier, SIGKILL) }
}
