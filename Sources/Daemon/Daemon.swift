import Foundation
import Logging
import VidrdProtocol

/// The vidrd daemon: a libuv event loop serving docs/PROTOCOL.md, with clips generated on a
/// bounded pool of worker threads.
///
/// ```swift
/// let daemon = try Daemon(configuration: config, engine: try GenerationEngine(modelDirectory: url))
/// daemon.start()                 // loop on its own thread; or `run()` to block
/// print(daemon.port)             // the bound port (useful with port 0)
/// daemon.shutdown()              // graceful drain, from any thread
/// daemon.wait()
/// ```
public final class Daemon: @unchecked Sendable {
    private let server: LibuvTransport
    private let state = Locked<(started: Bool, finished: Bool)>((false, false))
    private let finished = DispatchSemaphore(value: 0)

    /// Creates the loop and binds the listening socket (so `port` is known); nothing runs yet.
    public init(configuration: DaemonConfiguration, engine: GenerationEngine, logger: Logger = Logger(label: "vidrd.daemon")) throws {
        if let problem = configuration.validationError() { throw ConfigurationError(message: problem) }
        server = try LibuvTransport(configuration: configuration, engine: engine, logger: logger)
    }

    /// The TCP port the daemon listens on.
    public var port: UInt16 { server.boundPort }
    /// The probe port (`/metrics`, `/ready`, `/live`, HAProxy's agent), if `metricsListen` is set.
    public var metricsPort: UInt16? { server.probePort }
    /// The daemon's metrics, as `/metrics` serves them.
    public var metrics: DaemonMetrics { server.metrics }
    /// The limits the daemon announces (the configuration's, adjusted to the model).
    public var limits: ServerLimits { server.limits }
    /// What the step executor has run: U-Net calls, how many sessions' steps they batched, preemptions.
    public var stepStatistics: StepStatistics { server.stepStatistics.withLock { $0 } }

    /// Runs the event loop on a new thread and returns.
    public func start(handleSignals: Bool = false) {
        guard markStarted() else { return }
        let thread = Thread { [self] in
            self.server.run(handleSignals: handleSignals)
            self.markFinished()
        }
        thread.name = "vidrd-loop"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Runs the event loop on the calling thread until the daemon has drained and stopped.
    /// With `handleSignals`, SIGINT/SIGTERM start a graceful drain and a second one ends it now.
    public func run(handleSignals: Bool = true) {
        guard markStarted() else { return }
        server.run(handleSignals: handleSignals)
        markFinished()
    }

    /// Starts a graceful drain (docs/PROTOCOL.md §8.6); with `immediately`, ends every session
    /// now. Safe from any thread; returns at once.
    public func shutdown(immediately: Bool = false) {
        server.requestShutdown(immediately ? .immediate : .drain)
    }

    /// Blocks until the loop has stopped (returns at once if it never started).
    public func wait() {
        let mustWait = state.withLock { $0.started && !$0.finished }
        if mustWait {
            finished.wait()
            finished.signal()
        }
    }

    private func markStarted() -> Bool {
        state.withLock { s in
            if s.started { return false }
            s.started = true
            return true
        }
    }

    private func markFinished() {
        state.withLock { $0.finished = true }
        finished.signal()
    }
}
