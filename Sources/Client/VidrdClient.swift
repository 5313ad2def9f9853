import Foundation
import VidrdProtocol

/// An async/await client for a vidrd daemon (docs/PROTOCOL.md).
///
/// ```swift
/// let client = try await VidrdClient.connect(host: "127.0.0.1", port: 7878)
/// let session = try await client.openSession(OpenSession(prompt: "a red ball"), maxClips: 3)
/// for try await clip in session.clips() {
///     for frame in clip.frames { try Data(frame.webp).write(to: ...) }
/// }
/// await client.close()
/// ```
///
/// Flow control is automatic: a session keeps `prefetch` clips granted and grants the next one
/// each time the consumer *receives* a CLIP_END, so a consumer that stops iterating stops the
/// server's generation for that session. Cancelling the consuming task (or `cancel()`, or
/// releasing the session) sends CANCEL. Errors are `VidrdError` (status code + message).
public final class VidrdClient: Sendable {
    let core: ClientCore
    /// Where `connect` reached the server; resuming sessions reconnect here.
    let endpoint: Endpoint

    /// The protocol version the server chose.
    public var version: UInt16 { core.ack.version }
    /// The server's description from the handshake (limits, model; counters as of then).
    public var serverInfo: ServerInfo { core.ack.info }
    /// The strategies the server offered at the handshake.
    public var strategies: StrategyList { core.ack.strategies }

    init(core: ClientCore, endpoint: Endpoint) {
        self.core = core
        self.endpoint = endpoint
    }

    /// A client released without `close()` still ends its connection politely (CLOSE, then the
    /// reader thread finishes when the server closes). Open sessions keep their client alive.
    deinit { core.closeInBackground() }

    /// Connects and performs the handshake. `token` is the server's shared secret, if it has one.
    public static func connect(
        host: String = "127.0.0.1", port: UInt16 = 7878, token: String? = nil, options: ClientOptions = ClientOptions()
    ) async throws -> VidrdClient {
        let core = try await runBlocking { () throws(VidrdError) -> ClientCore in
            try ClientCore.connect(host: host, port: port, token: token.map { Array($0.utf8) }, options: options)
        }
        return VidrdClient(core: core, endpoint: Endpoint(host: host, port: port, token: token.map { Array($0.utf8) }, options: options))
    }

    /// Live server information (INFO_REQUEST → INFO): counters of sessions, connections, clips, bytes queued.
    public func info() async throws -> ServerInfo {
        try await withCheckedThrowingContinuation { c in
            core.requestInfo { c.resume(with: $0) }
        }
    }

    /// The server's strategies (LIST_STRATEGIES → STRATEGIES).
    public func listStrategies() async throws -> StrategyList {
        try await withCheckedThrowingContinuation { c in
            core.requestStrategies { c.resume(with: $0) }
        }
    }

    /// Opens a session and waits for SESSION_OPENED.
    /// - Parameters:
    ///   - prefetch: clips granted ahead of the consumer (≥ 1; 2 keeps the server one clip ahead).
    ///   - maxClips: stop after this many clips (the session is then cancelled); nil: endless.
    ///   - resume: how the session outlives its server (a drain or a lost connection): it asks
    ///     for continuations and reconnects to this client's address with the latest one. Resuming
    ///     needs a server that offers continuations (`parameters.resumable`); `.disabled` never does.
    public func openSession(
        _ request: OpenSession, prefetch: UInt32 = 2, maxClips: Int? = nil, resume: ResumePolicy = ResumePolicy()
    ) async throws -> VidrdSession {
        let flow = FlowControl(prefetch: max(prefetch, 1), maxClips: maxClips)
        var req = request
        if resume.maxAttempts > 0, req.resumable == nil { req.resumable = true }
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: SessionEvent.self, throwing: Error.self)
        let link = SessionLink(core: core, endpoint: endpoint, request: req, policy: resume, flow: flow, output: continuation)
        let opened = try await link.open()
        return VidrdSession(client: self, link: link, parameters: opened, stream: stream, continuation: continuation)
    }

    /// Sends CLOSE(OK), lets the server end every session, and releases the connection.
    public func close() async {
        let core = self.core
        _ = try? await runBlocking { () throws(VidrdError) in core.close() }
    }
}

/// Runs blocking work on a fresh thread (not on the cooperative pool) and awaits it.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws(VidrdError) -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        let thread = Thread {
            do throws(VidrdError) {
                c.resume(returning: try body())
            } catch {
                c.resume(throwing: error)
            }
        }
        thread.start()
    }
}

/// The credit policy of a session (docs/PROTOCOL.md §8.4), shared by both front-ends.
final class FlowControl: @unchecked Sendable {
    let prefetch: UInt32
    let maxClips: Int?
    private let state = Locked<(granted: Int, ended: Int)>((0, 0))

    init(prefetch: UInt32, maxClips: Int?) {
        self.prefetch = prefetch
        self.maxClips = maxClips
        state.withLock { $0.granted = Int(initialCredits) }
    }

    /// Credits granted so far, the initial ones included.
    var granted: Int { state.withLock { $0.granted } }

    var initialCredits: UInt32 {
        guard let maxClips else { return prefetch }
        return UInt32(max(0, min(Int(prefetch), maxClips)))
    }

    /// Called when the consumer has received a CLIP_END. Returns the credits to PULL now and
    /// whether the session has delivered all the clips it wanted.
    func clipConsumed() -> (pull: UInt32, complete: Bool) {
        state.withLock { s in
            s.ended += 1
            if let maxClips {
                if s.ended >= maxClips { return (0, true) }
                if s.granted < maxClips {
                    s.granted += 1
                    return (1, false)
                }
                return (0, false)
            }
            s.granted += 1
            return (1, false)
        }
    }
}

/// One open session: an `AsyncSequence` of its events (single consumer). Ends normally after
/// `maxClips` clips or after `cancel()`; throws `VidrdError` when the server ends it and it
/// cannot be resumed (`ResumePolicy`).
public final class VidrdSession: AsyncSequence, Sendable {
    public typealias Element = SessionEvent

    /// The session's stream id on its current connection (a resumed session has a new one).
    public var id: UInt32 { link.id }
    /// The effective parameters (SESSION_OPENED).
    public let parameters: SessionOpened
    /// How many times the session moved to a new connection and went on from its continuation.
    public var resumptions: Int { link.resumptions }
    /// The connection; holding the client keeps it open while the session lives.
    let client: VidrdClient
    let link: SessionLink
    let stream: AsyncThrowingStream<SessionEvent, Error>
    private let complete = Locked(false)

    init(
        client: VidrdClient, link: SessionLink, parameters: SessionOpened, stream: AsyncThrowingStream<SessionEvent, Error>,
        continuation: AsyncThrowingStream<SessionEvent, Error>.Continuation
    ) {
        self.client = client
        self.link = link
        self.parameters = parameters
        self.stream = stream
        continuation.onTermination = { [link] reason in
            if case .cancelled = reason { link.cancel() }
        }
    }

    deinit { link.cancel() }

    /// Ends the session (CANCEL). Iteration then finishes without an error.
    public func cancel() { link.cancel() }

    fileprivate func consumed(_ event: SessionEvent) -> Bool {
        guard case .clipEnded = event else { return false }
        if link.clipConsumed() {
            complete.withLock { $0 = true }
            return true
        }
        return false
    }

    fileprivate var isComplete: Bool { complete.withLock { $0 } }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<SessionEvent, Error>.AsyncIterator
        let session: VidrdSession
        var finished = false

        public mutating func next() async throws -> SessionEvent? {
            if finished || session.isComplete { return nil }
            guard let event = try await base.next() else {
                finished = true
                return nil
            }
            if session.consumed(event) { finished = true }
            return event
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator(), session: self)
    }

    /// The same events grouped into whole clips (progress events are dropped).
    public func clips() -> VidrdClipSequence { VidrdClipSequence(session: self) }
}

/// One complete clip: its CLIP_START, every FRAME in order, and its CLIP_END.
public struct VidrdClip: Sendable, Hashable {
    public var start: ClipStart
    public var frames: [VideoFrame]
    public var end: ClipEnd
}

/// `VidrdSession.clips()`: clips as they complete.
public struct VidrdClipSequence: AsyncSequence, Sendable {
    public typealias Element = VidrdClip
    let session: VidrdSession

    public struct AsyncIterator: AsyncIteratorProtocol {
        var events: VidrdSession.AsyncIterator

        public mutating func next() async throws -> VidrdClip? {
            var start: ClipStart?
            var frames: [VideoFrame] = []
            while let e = try await events.next() {
                switch e {
                case .clipStarted(let s):
                    start = s
                    frames = []
                case .frame(let f):
                    frames.append(f)
                case .clipEnded(let end):
                    guard let s = start else {
                        throw VidrdError(.protocolViolation, .invalidArgument, "CLIP_END \(end.clipIndex) without CLIP_START")
                    }
                    return VidrdClip(start: s, frames: frames, end: end)
                case .progress:
                    continue
                }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(events: session.makeAsyncIterator()) }
}

/// A value guarded by a lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
