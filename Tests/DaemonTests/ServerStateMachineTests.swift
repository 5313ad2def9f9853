import Foundation
import Logging
import Testing
import VidrdProtocol

@testable import VidrdDaemon

/// `ServerStateMachine` driven by hand: no sockets, no threads, a fake clock. Every input goes
/// in with the clock's time and the actions that come out are compared exactly, frames byte for
/// byte against VidrdProtocol's encoder.
extension DaemonSuite {
    @Suite("Server state machine")
    struct ServerStateMachineTests {
        // MARK: Handshake

        @Test("accept, then preface + HELLO: HELLO_ACK with the negotiated version and live counters")
        func handshakeOK() throws {
            let d = Driver()
            #expect(d.handle(.accepted(1, peer: "127.0.0.1:5000")) == [.write(1, ConnectionPreface.bytes), .startReading(1)])
            #expect(d.handle(.written(1, count: ConnectionPreface.bytes.count, .ok)) == [])
            d.advance(ms: 40)
            let actions = d.handle(.received(1, ConnectionPreface.bytes + clientFrame(.hello(Hello(clientName: "t")))))
            let info = ServerInfo(
                serverName: d.configuration.serverName, modelName: Fixture.engine.modelName, limits: d.machine.limits,
                activeSessions: 0, activeConnections: 1, uptimeMs: 40)
            let ack = HelloAck(version: VidrdProtocolVersion.current, info: info, strategies: Fixture.engine.strategyList)
            #expect(actions == [.write(1, try serverFrame(.helloAck(ack)))])
        }

        @Test("a first frame other than HELLO: fatal FAILED_PRECONDITION, half-close, closed after linger_ms")
        func badFirstFrame() throws {
            let d = Driver()
            d.handle(.accepted(1, peer: "p"))
            let actions = d.handle(.received(1, ConnectionPreface.bytes + clientFrame(.ping(nonce: 9))))
            #expect(actions == [.write(1, try fatalFrame(.failedPrecondition, "the first frame must be HELLO, got PING")), .halfClose(1)])
            d.advance(ms: d.configuration.lingerMs - 1)
            #expect(d.handle(.tick) == [])
            d.advance(ms: 1)
            #expect(d.handle(.tick) == [.close(1)])
            #expect(d.handle(.closed(1)) == [])
            #expect(d.machine.connections.isEmpty)
        }

        @Test("no common protocol version: fatal UNIMPLEMENTED naming both ranges")
        func versionMismatch() throws {
            let d = Driver()
            d.handle(.accepted(1, peer: "p"))
            let actions = d.handle(.received(1, ConnectionPreface.bytes + clientFrame(.hello(Hello(minVersion: 2, maxVersion: 3)))))
            let message = "no common protocol version: the client offers 2...3, this server speaks 1...1"
            #expect(actions == [.write(1, try fatalFrame(.unimplemented, message)), .halfClose(1)])
        }

        @Test("token: none offered and a wrong one get UNAUTHENTICATED; the right one HELLO_ACK")
        func token() throws {
            let d = Driver { $0.token = Array("s3cret".utf8) }
            for (conn, offered, expected) in [
                (1, nil, "this server requires a token"), (2, Array("s3creT".utf8), "bad token"),
            ] as [(Int, [UInt8]?, String)] {
                d.handle(.accepted(conn, peer: "p"))
                let actions = d.handle(.received(conn, ConnectionPreface.bytes + clientFrame(.hello(Hello(token: offered)))))
                #expect(actions == [.write(conn, try fatalFrame(.unauthenticated, expected)), .halfClose(conn)])
            }
            d.handle(.accepted(3, peer: "p"))
            let actions = d.handle(.received(3, ConnectionPreface.bytes + clientFrame(.hello(Hello(token: Array("s3cret".utf8))))))
            #expect(actions.count == 1)
            guard case .write(3, let bytes)? = actions.first else { Issue.record("no write: \(actions)"); return }
            guard case .helloAck(let ack) = try decodeOne(bytes).message else { Issue.record("not HELLO_ACK"); return }
            #expect(ack.version == VidrdProtocolVersion.current)
        }

        // MARK: Sessions

        @Test("OPEN_SESSION past a limit or with a bad field: a non-fatal ERROR with the right code on its stream")
        func openSessionRejected() throws {
            let d = Driver {
                $0.limits.maxSessionsPerConnection = 1
                $0.limits.maxSessions = 2
            }
            d.ready(1)
            d.ready(2)
            d.open(1, stream: 1)
            #expect(
                d.handle(.received(1, clientFrame(.openSession(Fixture.request()), stream: 3)))
                    == [.write(1, try serverFrame(.error(ErrorMessage(code: .resourceExhausted, message: "this connection has 1 sessions; max_sessions_per_connection = 1")), stream: 3))])
            // A field the engine rejects (width not a multiple of dimension_multiple).
            var bad = Fixture.request()
            bad.width = 7
            let multiple = d.machine.limits.dimensionMultiple
            #expect(
                d.handle(.received(2, clientFrame(.openSession(bad), stream: 5)))
                    == [.write(2, try serverFrame(.error(ErrorMessage(code: .invalidArgument, message: "width × height = 7×8 must be multiples of dimension_multiple = \(multiple)")), stream: 5))])
            d.open(2, stream: 7)
            #expect(d.machine.sessions.count == 2, "a rejected request opens nothing")
            d.ready(3)
            #expect(
                d.handle(.received(3, clientFrame(.openSession(Fixture.request()), stream: 1)))
                    == [.write(3, try serverFrame(.error(ErrorMessage(code: .resourceExhausted, message: "the server has 2 sessions; max_sessions = 2")), stream: 1))])
            // A session id not above the highest used: fatal.
            #expect(
                d.handle(.received(1, clientFrame(.openSession(Fixture.request()), stream: 1)))
                    == [.write(1, try fatalFrame(.invalidArgument, "session id 1 is not greater than 3, the highest used on this connection", stream: 1)), .halfClose(1)])
        }

        @Test("PULL: exactly one CLIP_START and one submit with the session's job; frames, then CLIP_END with the fake clock's total")
        func pullDispatchesOneClip() throws {
            let d = Driver()
            d.ready(1, maxPayload: 1 << 20)
            d.open(1, stream: 1)
            #expect(d.executor.jobs.isEmpty, "no credits yet")
            d.advance(ms: 5)
            let dispatchedAt = d.now
            let actions = d.handle(.received(1, clientFrame(.pull(credits: 1), stream: 1)))
            let start = ClipStart(clipIndex: 0, frameCount: 4, firstFrameNumber: 0, creditsRemaining: 0)
            #expect(actions == [.write(1, try serverFrame(.clipStart(start), stream: 1)), .submit(session: 1, stream: 1, clip: 0)])
            let job = try #require(d.executor.jobs.first)
            #expect(d.executor.jobs.count == 1)
            #expect(job.dispatchedAt == dispatchedAt && job.encoder.maxPayload == 1 << 20 && job.encoder.role == .server)
            #expect(job.generator === d.machine.sessions[1]?.generator)
            // A second PULL while the clip runs only adds a credit.
            #expect(d.handle(.received(1, clientFrame(.pull(credits: 1), stream: 1))) == [])

            d.advance(ms: 250)
            let frame: [UInt8] = [1, 2, 3]
            let events: [WorkerEvent] = [
                .progress(session: 1, bytes: [9]), .frame(session: 1, bytes: frame), .frame(session: 1, bytes: frame),
                .finished(session: 1, .done(frames: 2, queueMicros: 1, denoiseMicros: 2, decodeMicros: 3, encodeMicros: 4)),
            ]
            let end = ClipEnd(
                clipIndex: 0, firstFrameNumber: 0, frameCount: 2, queueMicros: 1, denoiseMicros: 2, decodeMicros: 3, encodeMicros: 4,
                totalMicros: 250_000)
            // The next clip (the second credit) goes out right after CLIP_END, numbered on.
            let next = ClipStart(clipIndex: 1, frameCount: 4, firstFrameNumber: 2, creditsRemaining: 0)
            #expect(
                d.handle(.workerEvents(events)) == [
                    .write(1, [9]), .write(1, frame), .write(1, frame), .write(1, try serverFrame(.clipEnd(end), stream: 1)),
                    .write(1, try serverFrame(.clipStart(next), stream: 1)), .submit(session: 1, stream: 1, clip: 1),
                ])
            #expect(d.machine.clipsGenerated == 1 && d.machine.framesSent == 2)
        }

        @Test("two sessions with credits: submissions alternate clip by clip, in this exact order")
        func dispatchOrder() throws {
            // The old real-socket case: a with 2 credits, then b with 5, one FIFO worker.
            let d = Driver()
            d.ready(1)
            d.open(1, stream: 1, credits: 2)
            d.open(1, stream: 3, credits: 5)
            var order = d.executor.jobs.map(clipName)
            // Run the FIFO: the oldest job finishes first; each finish may submit that session's next clip.
            var done = 0
            while done < d.executor.jobs.count {
                let job = d.executor.jobs[done]
                done += 1
                d.advance(ms: 100)
                let before = d.executor.jobs.count
                d.handle(.workerEvents([.finished(session: job.sessionKey, .done(frames: 4, queueMicros: 0, denoiseMicros: 0, decodeMicros: 0, encodeMicros: 0))]))
                order += d.executor.jobs[before...].map(clipName)
            }
            #expect(order == ["a0", "b0", "a1", "b1", "b2", "b3", "b4"])
            #expect(d.machine.sessions.values.allSatisfy { $0.credits == 0 && !$0.jobInFlight })
        }

        @Test("each clip is submitted the moment its session becomes eligible; then the FIFO goes round by round")
        func dispatchOrderAcrossConnections() throws {
            let d = Driver()
            d.ready(1)
            d.ready(2)
            d.open(1, stream: 1)
            d.open(2, stream: 1)
            d.open(1, stream: 3)
            // One PULL per session in the same read, reversed: the order is still the opening order.
            d.handle(.received(1, clientFrame(.pull(credits: 2), stream: 3) + clientFrame(.pull(credits: 2), stream: 1)))
            d.handle(.received(2, clientFrame(.pull(credits: 2), stream: 1)))
            var order = d.executor.jobs.map { "k\($0.sessionKey)c\($0.clipIndex)" }
            var done = 0
            while done < d.executor.jobs.count {
                let job = d.executor.jobs[done]
                done += 1
                let before = d.executor.jobs.count
                d.handle(.workerEvents([.finished(session: job.sessionKey, .done(frames: 4, queueMicros: 0, denoiseMicros: 0, decodeMicros: 0, encodeMicros: 0))]))
                order += d.executor.jobs[before...].map { "k\($0.sessionKey)c\($0.clipIndex)" }
            }
            // Not by opening order: session key 3's PULL came first in connection 1's read and
            // was submitted at once, then key 1's; connection 2's session (key 2) was pulled last.
            #expect(order == ["k3c0", "k1c0", "k2c0", "k3c1", "k1c1", "k2c1"])
        }

        @Test("CANCEL during a clip: ERROR CANCELLED and the cancel action; the session is freed at .finished(.cancelled)")
        func cancelDuringClip() throws {
            let d = Driver()
            d.ready(1)
            d.open(1, stream: 1, credits: 1)
            let job = try #require(d.executor.jobs.first)
            let actions = d.handle(.received(1, clientFrame(.cancel, stream: 1)))
            #expect(
                actions == [
                    .write(1, try serverFrame(.error(ErrorMessage(code: .cancelled, message: "cancelled by the client")), stream: 1)),
                    .cancel(ObjectIdentifier(job.generator)),
                ])
            #expect(d.machine.sessions.count == 1, "held until the worker returns")
            // Late output of the cancelled clip is dropped.
            #expect(d.handle(.workerEvents([.frame(session: 1, bytes: [1])])) == [])
            #expect(d.handle(.workerEvents([.finished(session: 1, .cancelled)])) == [])
            #expect(d.machine.sessions.isEmpty)
            // A PULL for the ended session is ignored, not fatal.
            #expect(d.handle(.received(1, clientFrame(.pull(credits: 1), stream: 1))) == [])
        }

        // MARK: Timers

        @Test("handshake timeout: nothing at handshake_timeout_ms, fatal DEADLINE_EXCEEDED 1 ms later")
        func handshakeTimeout() throws {
            let d = Driver { $0.limits.handshakeTimeoutMs = 500 }
            d.handle(.accepted(1, peer: "p"))
            d.handle(.received(1, ConnectionPreface.bytes))
            d.advance(ms: 500)
            #expect(d.handle(.tick) == [])
            d.advance(ms: 1)
            #expect(d.handle(.tick) == [.write(1, try fatalFrame(.deadlineExceeded, "HELLO did not arrive within 500 ms")), .halfClose(1)])
            #expect(d.machine.tickIntervalMs == 100)
        }

        @Test("idle timeout: a complete frame restarts it; it fires only past idle_timeout_ms of silence")
        func idleTimeout() throws {
            let d = Driver { $0.limits.idleTimeoutMs = 1000 }
            d.ready(1)
            d.advance(ms: 600)
            #expect(d.handle(.tick) == [])
            #expect(d.handle(.received(1, clientFrame(.ping(nonce: 1)))) == [.write(1, try serverFrame(.pong(nonce: 1)))])
            d.handle(.written(1, count: try serverFrame(.pong(nonce: 1)).count, .ok))
            // Half a frame is not activity.
            d.advance(ms: 500)
            d.handle(.received(1, Array(clientFrame(.ping(nonce: 2)).prefix(5))))
            d.advance(ms: 500)
            #expect(d.handle(.tick) == [], "1000 ms after the PING")
            d.advance(ms: 1)
            #expect(d.handle(.tick) == [.write(1, try fatalFrame(.deadlineExceeded, "nothing received for 1000 ms")), .halfClose(1)])
        }

        @Test("backpressure: at max_queued_bytes reading stops and no clip starts; half drained, both resume")
        func backpressure() throws {
            let d = Driver { $0.maxQueuedBytesPerConnection = 256 }
            d.ready(1)
            d.open(1, stream: 1, credits: 2)
            #expect(d.executor.jobs.map(clipName) == ["a0"])
            let frame = [UInt8](repeating: 7, count: 300)
            let end = try serverFrame(.clipEnd(ClipEnd(clipIndex: 0, firstFrameNumber: 0, frameCount: 1)), stream: 1)
            let actions = d.handle(.workerEvents([.frame(session: 1, bytes: frame), .finished(session: 1, .done(frames: 1, queueMicros: 0, denoiseMicros: 0, decodeMicros: 0, encodeMicros: 0))]))
            #expect(actions == [.write(1, frame), .stopReading(1), .write(1, end)], "no CLIP_START over the limit")
            // Once the frame is written only CLIP_END is queued, at most half of max_queued_bytes.
            #expect(end.count <= 128)
            let next = try serverFrame(.clipStart(ClipStart(clipIndex: 1, frameCount: 4, firstFrameNumber: 1, creditsRemaining: 0)), stream: 1)
            #expect(d.handle(.written(1, count: frame.count, .ok)) == [.startReading(1), .write(1, next), .submit(session: 1, stream: 1, clip: 1)])
        }

        @Test("sessions that become eligible together are submitted in opening order, not PULL order")
        func simultaneousEligibility() throws {
            let d = Driver { $0.maxQueuedBytesPerConnection = 256 }
            d.ready(1)
            d.open(1, stream: 1)  // a, key 1
            d.open(1, stream: 3)  // b, key 2
            d.open(1, stream: 5, credits: 1)  // c, key 3: its clip fills the queue
            #expect(d.executor.jobs.map(clipName) == ["c0"])
            let frame = [UInt8](repeating: 7, count: 300)
            #expect(d.handle(.workerEvents([.frame(session: 3, bytes: frame)])) == [.write(1, frame), .stopReading(1)])
            // b's PULL, then a's, in one read while the queue is over the limit: nothing starts.
            #expect(d.handle(.received(1, clientFrame(.pull(credits: 1), stream: 3) + clientFrame(.pull(credits: 1), stream: 1))) == [])
            let start = ClipStart(clipIndex: 0, frameCount: 4, firstFrameNumber: 0, creditsRemaining: 0)
            #expect(
                d.handle(.written(1, count: frame.count, .ok)) == [
                    .startReading(1), .write(1, try serverFrame(.clipStart(start), stream: 1)), .submit(session: 1, stream: 1, clip: 0),
                    .write(1, try serverFrame(.clipStart(start), stream: 3)), .submit(session: 2, stream: 3, clip: 0),
                ])
            #expect(d.executor.jobs.map(clipName) == ["c0", "a0", "b0"])
        }

        // MARK: Drain

        @Test("drain: a session without a clip ends with UNAVAILABLE at once; one with a clip after its CLIP_END; then CLOSE and stop")
        func drain() throws {
            let d = Driver()
            d.handle(.accepted(9, peer: "p"))  // still in the handshake
            d.ready(1)
            d.open(1, stream: 1)  // no credits: no clip
            d.open(1, stream: 3, credits: 1)  // a clip in flight
            let unavailable = try serverFrame(.error(ErrorMessage(code: .unavailable, message: "server shutting down")), stream: 1)
            #expect(
                d.handle(.shutdownRequested(.drain)) == [
                    .closeListener, .write(1, unavailable), .write(9, try fatalFrame(.unavailable, "server shutting down")), .halfClose(9),
                ])
            // New sessions are refused while draining, and PULLs start nothing.
            #expect(
                d.handle(.received(1, clientFrame(.openSession(Fixture.request()), stream: 5)))
                    == [.write(1, try serverFrame(.error(ErrorMessage(code: .unavailable, message: "server shutting down")), stream: 5))])
            #expect(d.handle(.received(1, clientFrame(.pull(credits: 1), stream: 3))) == [])
            d.advance(ms: 300)
            let end = ClipEnd(clipIndex: 0, firstFrameNumber: 0, frameCount: 1, totalMicros: 300_000)
            #expect(
                d.handle(.workerEvents([.frame(session: 2, bytes: [5]), .finished(session: 2, .done(frames: 1, queueMicros: 0, denoiseMicros: 0, decodeMicros: 0, encodeMicros: 0))]))
                    == [
                        .write(1, [5]), .write(1, try serverFrame(.clipEnd(end), stream: 3)),
                        .write(1, try serverFrame(.error(ErrorMessage(code: .unavailable, message: "server shutting down")), stream: 3)),
                        .write(1, try serverFrame(.close(Close(code: .unavailable, message: "server shutting down")))), .halfClose(1),
                    ])
            #expect(d.machine.sessions.isEmpty)
            // Each connection closes once its peer has read our last frame, then the server stops.
            #expect(d.handle(.halfClosed(1, ok: true)) == [])
            #expect(d.handle(.readEnded(1, .eof)) == [.close(1)])
            #expect(d.handle(.closed(1)) == [])
            #expect(d.handle(.readEnded(9, .eof)) == [])
            #expect(d.handle(.halfClosed(9, ok: true)) == [.close(9)])
            #expect(d.handle(.closed(9)) == [.stop])
        }

        @Test("a second signal while draining ends every session at once")
        func secondSignal() throws {
            let d = Driver()
            d.ready(1)
            d.open(1, stream: 1, credits: 1)
            let job = try #require(d.executor.jobs.first)
            #expect(d.handle(.signal("SIGTERM")) == [.closeListener])
            #expect(
                d.handle(.signal("SIGTERM")) == [
                    .write(1, try serverFrame(.error(ErrorMessage(code: .unavailable, message: "server shutting down")), stream: 1)),
                    .cancel(ObjectIdentifier(job.generator)),
                    .write(1, try serverFrame(.close(Close(code: .unavailable, message: "server shutting down")))), .halfClose(1),
                ])
            #expect(d.handle(.workerEvents([.finished(session: 1, .cancelled)])) == [])
            #expect(d.handle(.readEnded(1, .eof)) == [])
            #expect(d.handle(.halfClosed(1, ok: true)) == [.close(1)])
            #expect(d.handle(.closed(1)) == [.stop])
        }
    }
}

// MARK: - Test support

/// Records submitted jobs instead of running them.
final class RecordingExecutor: ClipExecutor, @unchecked Sendable {
    private(set) var jobs: [ClipJob] = []
    private(set) var stopped = false
    func submit(_ job: ClipJob) { jobs.append(job) }
    func stopAndJoin() { stopped = true }
}

/// `ServerAction` in a comparable form: jobs by their session, stream and clip, generators by identity.
enum Step: Equatable, CustomStringConvertible {
    case write(Int, [UInt8])
    case startReading(Int), stopReading(Int), halfClose(Int), close(Int)
    case submit(session: UInt64, stream: UInt32, clip: UInt32)
    case cancel(ObjectIdentifier)
    case closeListener, stop

    init(_ action: ServerAction) {
        switch action {
        case .write(let c, let b): self = .write(c, b)
        case .startReading(let c): self = .startReading(c)
        case .stopReading(let c): self = .stopReading(c)
        case .halfClose(let c): self = .halfClose(c)
        case .close(let c): self = .close(c)
        case .submit(let j): self = .submit(session: j.sessionKey, stream: j.streamId, clip: j.clipIndex)
        case .cancel(let g): self = .cancel(ObjectIdentifier(g))
        case .closeListener: self = .closeListener
        case .stop: self = .stop
        }
    }

    var description: String {
        switch self {
        case .write(let c, let b):
            let what = (try? decodeOne(b)).map { "\($0.message.frameType.name) stream \($0.stream)" } ?? "\(b.count) bytes"
            return "write(\(c), \(what))"
        case .startReading(let c): return "startReading(\(c))"
        case .stopReading(let c): return "stopReading(\(c))"
        case .halfClose(let c): return "halfClose(\(c))"
        case .close(let c): return "close(\(c))"
        case .submit(let s, let st, let c): return "submit(session \(s), stream \(st), clip \(c))"
        case .cancel: return "cancel"
        case .closeListener: return "closeListener"
        case .stop: return "stop"
        }
    }
}

/// Feeds a state machine the way LibuvTransport does, on a fake clock, handing submissions to a
/// `RecordingExecutor`.
final class Driver {
    let configuration: DaemonConfiguration
    let machine: ServerStateMachine
    let executor = RecordingExecutor()
    /// The fake clock, in ms; it starts well away from 0 so that "time since start" is tested.
    private(set) var nowMs: UInt64 = 7_000
    var now: UInt64 { nowMs * 1_000_000 }

    init(_ configure: (inout DaemonConfiguration) -> Void = { _ in }) {
        var c = Fixture.configuration()
        configure(&c)
        configuration = c
        machine = ServerStateMachine(configuration: c, engine: Fixture.engine, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, now: 7_000 * 1_000_000)
    }

    func advance(ms: Int) { nowMs += UInt64(ms) }

    @discardableResult
    func handle(_ input: ServerInput) -> [Step] {
        let actions = machine.handle(input, now: now)
        for case .submit(let job) in actions { executor.submit(job) }
        return actions.map(Step.init)
    }

    /// Accepts `conn` and completes its handshake, every write reported done.
    func ready(_ conn: Int, maxPayload: UInt32? = nil) {
        handle(.accepted(conn, peer: "127.0.0.1:\(conn)"))
        settle(handle(.received(conn, ConnectionPreface.bytes + clientFrame(.hello(Hello(maxPayload: maxPayload))))) + [.write(conn, ConnectionPreface.bytes)])
    }

    /// Opens a session (with `credits` initial credits), every write reported done.
    func open(_ conn: Int, stream: UInt32, credits: UInt32? = nil) {
        var r = Fixture.request()
        r.initialCredits = credits
        settle(handle(.received(conn, clientFrame(.openSession(r), stream: stream))))
    }

    /// Reports every write among `steps` as done, and those that doing so caused.
    private func settle(_ steps: [Step]) {
        for case .write(let c, let b) in steps { settle(handle(.written(c, count: b.count, .ok))) }
    }
}

/// "a0", "b1", …: session key 1 is a, 2 is b.
func clipName(_ job: ClipJob) -> String {
    "\(Character(UnicodeScalar(UInt8(96 + job.sessionKey))))\(job.clipIndex)"
}

func clientFrame(_ m: Message, stream: UInt32 = 0) -> [UInt8] {
    (try? FrameEncoder(role: .client).encode(m, stream: stream)) ?? []
}

func serverFrame(_ m: Message, stream: UInt32 = 0) throws -> [UInt8] {
    try FrameEncoder(role: .server).encode(m, stream: stream)
}

func fatalFrame(_ code: StatusCode, _ message: String, stream: UInt32 = 0) throws -> [UInt8] {
    try FrameEncoder(role: .server).encode(.error(ErrorMessage(code: code, message: message, fatal: true)), stream: stream)
}

/// The one server frame in `bytes`.
func decodeOne(_ bytes: [UInt8]) throws -> Envelope {
    var decoder = FrameDecoder(role: .client, maxPayload: ProtocolLimits.maxMaxPayload, expectPreface: false)
    bytes.withUnsafeBytes { decoder.append($0) }
    guard let e = try decoder.nextMessage(), decoder.bufferedByteCount == 0 else {
        throw NotOneFrame()
    }
    return e
}

struct NotOneFrame: Error {}
