import Foundation
import Hummingbird
import HummingbirdWSClient
import Logging
import Testing
import VidrdClient
import VidrdDaemon
import VidrdGateway
import VidrdPlugins
import VidrdProtocol

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The tiny fixture model (Tests/Fixtures/tiny-lpb2: 16×16 native, random weights, fast in
/// debug builds), loaded once.
enum Fixture {
    static let modelDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tiny-lpb2/model")

    static let engine: GenerationEngine = {
        do {
            return try GenerationEngine(modelDirectory: modelDirectory, registry: .builtIn())
        } catch {
            fatalError("cannot load \(modelDirectory.path): \(error)")
        }
    }()
}

/// A daemon in this process on an ephemeral loopback port, with cheap 8×8, 4-frame, 2-step
/// session defaults (as Tests/DaemonTests/Harness.swift's `TestDaemon`).
final class TestDaemon: @unchecked Sendable {
    let daemon: Daemon
    var port: UInt16 { daemon.port }

    init() throws {
        var c = DaemonConfiguration()
        c.listen = ListenAddress(host: "127.0.0.1", port: 0)
        c.workers = 1
        c.lingerMs = 200
        c.drainGraceMs = 5_000
        c.sessionDefaults.steps = 2
        c.sessionDefaults.guidance = 1
        c.sessionDefaults.framesPerClip = 4
        c.sessionDefaults.width = 8
        c.sessionDefaults.height = 8
        daemon = try Daemon(configuration: c, engine: Fixture.engine, logger: Logger(label: "vidrd.test") { _ in SwiftLogNoOpLogHandler() })
        daemon.start()
    }

    func activeSessions() async throws -> UInt32 {
        let client = try await VidrdClient.connect(host: "127.0.0.1", port: port)
        defer { Task { await client.close() } }
        return try await client.info().activeSessions
    }

    func stop() {
        daemon.shutdown(immediately: true)
        daemon.wait()
    }
}

/// The gateway on an ephemeral loopback port in front of `daemon`, run until `stop()`.
final class TestGateway: Sendable {
    let port: Int
    private let task: Task<Void, any Error>

    private init(port: Int, task: Task<Void, any Error>) {
        self.port = port
        self.task = task
    }

    static func start(daemon: TestDaemon, maxViewers: Int = 8) async throws -> TestGateway {
        let settings = GatewaySettings(httpHost: "127.0.0.1", httpPort: 0, daemonHost: "127.0.0.1", daemonPort: daemon.port, maxViewers: maxViewers)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Gateway.application(settings, logger: Logger(label: "vidrd.viewer.test") { _ in SwiftLogNoOpLogHandler() }) { port in
            continuation.yield(port)
        }
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var it = ports.makeAsyncIterator()
        guard let port = await it.next() else { throw GatewayTestError("the gateway did not start") }
        return TestGateway(port: port, task: task)
    }

    var base: String { "http://127.0.0.1:\(port)" }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

struct GatewayTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// One HTTP exchange with the gateway: (status, body).
func http(_ method: String, _ url: String, body: String? = nil) async throws -> (Int, String) {
    var request = URLRequest(url: try #require(URL(string: url)))
    request.httpMethod = method
    if let body {
        request.httpBody = Data(body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    let (data, response) = try await URLSession.shared.data(for: request)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}

/// A JSON text message as a dictionary (nil for anything else).
func jsonObject(_ text: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
}

/// A value guarded by a lock, for results collected inside `@Sendable` WebSocket handlers.
final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func with<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// Polls `condition` every 50 ms until it holds or `seconds` pass.
func eventually(within seconds: Double = 15, _ condition: () async throws -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(nanoseconds: 50_000_000)
    }
    return (try? await condition()) == true
}
