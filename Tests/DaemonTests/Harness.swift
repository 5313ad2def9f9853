import Foundation
import Logging
import Testing
import VidrdDaemon
import VidrdMedia
import VidrdPlugins
import VidrdProtocol

@testable import VidrdClient

/// The tiny fixture model (16×16 native, random weights), loaded once for every test.
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

    /// The test daemons' settings: one compute thread, short linger and drain, and session defaults
    /// as cheap as `request()`.
    static func configuration() -> DaemonConfiguration {
        var c = DaemonConfiguration()
        c.workers = 1
        c.lingerMs = 200
        c.drainGraceMs = 5_000
        c.sessionDefaults.steps = 2
        c.sessionDefaults.guidance = 1
        c.sessionDefaults.framesPerClip = 4
        c.sessionDefaults.width = 8
        c.sessionDefaults.height = 8
        return c
    }

    /// A cheap session for debug builds: 8×8 pixels, 4 frames, 2 steps, no guidance, all frames
    /// emitted, M = 2 prompt frames, the default chain (fnr, pns, dsg).
    static func request(_ prompt: String = "a red ball bouncing on grass", seed: UInt64 = 7, steps: UInt32 = 2) -> OpenSession {
        OpenSession(
            prompt: prompt, seed: seed, steps: steps, guidance: 1, framesPerClip: 4, width: 8, height: 8, fps: 8, webpQuality: 80,
            promptFrames: 2, emission: .all)
    }
}

/// A daemon in this process, listening on an ephemeral 127.0.0.1 port.
final class TestDaemon: @unchecked Sendable {
    let daemon: Daemon
    var port: UInt16 { daemon.port }

    init(engine: GenerationEngine = Fixture.engine, _ configure: (inout DaemonConfiguration) -> Void = { _ in }) throws {
        var c = Fixture.configuration()
        c.listen = ListenAddress(host: "127.0.0.1", port: 0)
        configure(&c)
        let level = ProcessInfo.processInfo.environment["VIDRD_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) }
        let logger = Logger(label: "vidrd.test") { label in
            level.map { LogfmtLogHandler(label: label, level: $0) as LogHandler } ?? SwiftLogNoOpLogHandler()
        }
        daemon = try Daemon(configuration: c, engine: engine, logger: logger)
        daemon.start()
    }

    func client(_ options: ClientOptions = ClientOptions(), token: String? = nil) async throws -> VidrdClient {
        try await VidrdClient.connect(host: "127.0.0.1", port: port, token: token, options: options)
    }

    /// Ends every session now and waits for the loop to stop.
    func stop() {
        daemon.shutdown(immediately: true)
        daemon.wait()
    }
}

/// Polls `condition` every 50 ms until it holds or `seconds` pass; returns whether it held.
/// Errors count as "not yet".
func eventually(within seconds: Double = 10, _ condition: () async throws -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(nanoseconds: 50_000_000)
    }
    return (try? await condition()) == true
}

/// A hand-driven protocol peer on a plain socket: sends any bytes, reads frames with timeouts.
final class RawPeer: @unchecked Sendable {
    let socket: Socket
    var decoder = FrameDecoder(role: .client, maxPayload: ProtocolLimits.maxMaxPayload)
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    private(set) var sawEOF = false

    init(port: UInt16, receiveBuffer: Int? = nil) throws {
        socket = try Socket.connect(host: "127.0.0.1", port: port, timeout: 5, receiveBuffer: receiveBuffer)
    }

    deinit {
        buffer.deallocate()
        socket.close()
    }

    func send(_ bytes: [UInt8]) throws { try socket.send(bytes) }

    func send(_ message: Message, stream: UInt32 = 0) throws {
        try socket.send(try FrameEncoder(role: .client).encode(message, stream: stream))
    }

    /// Preface + HELLO, then waits for HELLO_ACK.
    @discardableResult
    func handshake(_ hello: Hello = Hello(clientName: "raw-test")) throws -> HelloAck {
        try send(ConnectionPreface.bytes)
        try send(.hello(hello))
        guard case .helloAck(let ack)? = try next()?.message else { throw VidrdError(.protocolViolation, .unknown, "no HELLO_ACK") }
        return ack
    }

    /// The next message, or nil at end of file. Throws after `timeout` seconds without one.
    func next(timeout: Double = 10) throws -> Envelope? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let e = try decoder.nextMessage() { return e }
            if sawEOF { return nil }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw VidrdError(.connectionClosed, .deadlineExceeded, "no frame within \(timeout) s") }
            switch socket.receive(into: buffer, timeoutMs: Int(left * 1000) + 1) {
            case .data(let n): decoder.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            case .timeout: continue
            case .eof, .failed: sawEOF = true
            }
        }
    }

    /// Reads until a fatal ERROR (returned) or end of file (nil), skipping other frames.
    func readFatalError(timeout: Double = 10) throws -> ErrorMessage? {
        let deadline = Date().addingTimeInterval(timeout)
        while let e = try next(timeout: max(0.01, deadline.timeIntervalSinceNow)) {
            if case .error(let m) = e.message, m.fatal { return m }
        }
        return nil
    }

    /// Reads and discards until end of file; true if it came within `timeout`.
    func waitForEOF(timeout: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !sawEOF, deadline.timeIntervalSinceNow > 0 {
            switch socket.receive(into: buffer, timeoutMs: 50) {
            case .data: continue
            case .timeout: continue
            case .eof, .failed: sawEOF = true
            }
        }
        return sawEOF
    }
}

/// Every frame of a clip decodes to a `width`×`height` image.
func expectDecodable(_ clip: VidrdClip, width: Int, height: Int) throws {
    for f in clip.frames {
        let image = try WebP.decode(f.webp)
        #expect(image.width == width && image.height == height)
    }
}

/// Every daemon test runs inside this suite, one at a time: they all generate clips on a
/// two-core machine, and some count what one session gets while another runs.
@Suite("Daemon", .serialized)
struct DaemonSuite {}
