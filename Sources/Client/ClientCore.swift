import Foundation
import VidrdProtocol

/// Connection options shared by the async and the blocking client.
public struct ClientOptions: Sendable {
    /// Sent in HELLO for the server's logs.
    public var clientName = "vidrd-client-swift/0.1"
    /// Largest payload this client accepts (HELLO `max_payload`).
    public var maxPayload = ProtocolLimits.defaultMaxPayload
    /// Seconds to connect and complete the handshake.
    public var connectTimeout: Double = 10
    /// SO_RCVBUF for the socket (nil: the system default). Tests use a tiny one.
    public var receiveBufferSize: Int? = nil

    public init() {}
}

/// Anything a session receives after SESSION_OPENED.
public enum SessionEvent: Sendable, Hashable {
    case clipStarted(ClipStart)
    case progress(VidrdProtocol.Progress)
    case frame(VideoFrame)
    case clipEnded(ClipEnd)
}

/// What the connection delivers to one session's front-end (on the reader thread).
enum RouteEvent: Sendable {
    case opened(SessionOpened)
    case event(SessionEvent)
    /// The session is over: nil when it ended because this client cancelled it.
    case ended(VidrdError?)
}

/// The connection shared by `VidrdClient` and `VidrdBlockingClient`: a POSIX socket, one reader
/// thread that decodes frames and routes them, keepalive PINGs, and serialised writes.
final class ClientCore: @unchecked Sendable {
    let socket: Socket
    let ack: HelloAck
    private let encoder: FrameEncoder
    private let writeLock = NSLock()
    private let lock = NSLock()
    // Guarded by `lock`:
    private var routes: [UInt32: Route] = [:]
    private var nextStream: UInt32 = 1
    private var infoWaiters: [@Sendable (Result<ServerInfo, VidrdError>) -> Void] = []
    private var strategyWaiters: [@Sendable (Result<StrategyList, VidrdError>) -> Void] = []
    private var ended: VidrdError?
    private var closing = false
    private var lastSentMs: UInt64
    private let readerDone = DispatchSemaphore(value: 0)

    final class Route: @unchecked Sendable {
        let deliver: @Sendable (RouteEvent) -> Void
        var cancelled = false
        init(_ deliver: @escaping @Sendable (RouteEvent) -> Void) { self.deliver = deliver }
    }

    static func now() -> UInt64 { UInt64(DispatchTime.now().uptimeNanoseconds / 1_000_000) }

    /// Connects, performs the handshake and starts the reader thread.
    static func connect(host: String, port: UInt16, token: [UInt8]?, options: ClientOptions) throws(VidrdError) -> ClientCore {
        let deadline = now() + UInt64(options.connectTimeout * 1000)
        let socket = try Socket.connect(host: host, port: port, timeout: options.connectTimeout, receiveBuffer: options.receiveBufferSize)
        let hello = Hello(
            token: token, clientName: options.clientName,
            maxPayload: options.maxPayload == ProtocolLimits.defaultMaxPayload ? nil : UInt32(options.maxPayload))
        do {
            let bytes = try FrameEncoder(role: .client).encode(.hello(hello))
            try socket.send(ConnectionPreface.bytes + bytes)
        } catch let e as VidrdError {
            throw e
        } catch {
            throw VidrdError(.connectionFailed, .invalidArgument, "cannot encode HELLO: \(error)")
        }
        var decoder = FrameDecoder(role: .client, maxPayload: options.maxPayload)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let left = Int(deadline) - Int(now())
            guard left > 0 else {
                socket.close()
                throw VidrdError(.connectionFailed, .deadlineExceeded, "no HELLO_ACK within \(options.connectTimeout) s")
            }
            switch socket.receive(into: buffer, timeoutMs: left) {
            case .data(let n):
                decoder.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            case .timeout:
                continue
            case .eof:
                socket.close()
                throw VidrdError(.connectionFailed, .unavailable, "the server closed the connection during the handshake")
            case .failed(let why):
                socket.close()
                throw VidrdError(.connectionFailed, .unavailable, "handshake: \(why)")
            }
            let envelope: Envelope?
            do {
                envelope = try decoder.nextMessage()
            } catch {
                socket.close()
                throw VidrdError(.protocolViolation, error.code, "handshake: \(error.message)")
            }
            guard let envelope else { continue }
            switch envelope.message {
            case .helloAck(let ack):
                let core = ClientCore(socket: socket, ack: ack, decoder: decoder)
                core.startReader()
                return core
            case .error(let e):
                socket.close()
                throw VidrdError(server: e)
            default:
                socket.close()
                throw VidrdError(.protocolViolation, .invalidArgument, "expected HELLO_ACK, got \(envelope.message.frameType.name)")
            }
        }
    }

    private var pendingDecoder: FrameDecoder?

    private init(socket: Socket, ack: HelloAck, decoder: FrameDecoder) {
        self.socket = socket
        self.ack = ack
        encoder = FrameEncoder(role: .client, maxPayload: Int(ack.info.limits.maxPayload))
        pendingDecoder = decoder
        lastSentMs = Self.now()
    }

    // MARK: - Writing

    /// Encodes and sends a frame; `stream` ids for OPEN_SESSION are allocated under the same lock
    /// so they reach the server in increasing order.
    private func send(_ message: Message, stream: UInt32 = 0) throws(VidrdError) {
        writeLock.lock()
        defer { writeLock.unlock() }
        try sendLocked(message, stream: stream)
    }

    private func sendLocked(_ message: Message, stream: UInt32) throws(VidrdError) {
        if let e = lock.withLock({ ended }) { throw e }
        let bytes: [UInt8]
        do {
            bytes = try encoder.encode(message, stream: stream)
        } catch {
            throw VidrdError(.protocolViolation, error.code, "cannot send \(message.frameType.name): \(error.message)")
        }
        try socket.send(bytes)
        lock.withLock { lastSentMs = Self.now() }
    }

    // MARK: - Requests

    func requestInfo(_ done: @escaping @Sendable (Result<ServerInfo, VidrdError>) -> Void) {
        writeLock.lock()
        defer { writeLock.unlock() }
        // Checked and registered under one lock, so `fail` either sees the waiter or ran before.
        let ended: VidrdError? = lock.withLock {
            if let e = self.ended { return e }
            infoWaiters.append(done)
            return nil
        }
        if let ended { return done(.failure(ended)) }
        do { try sendLocked(.infoRequest, stream: 0) } catch { fail(error) }
    }

    func requestStrategies(_ done: @escaping @Sendable (Result<StrategyList, VidrdError>) -> Void) {
        writeLock.lock()
        defer { writeLock.unlock() }
        let ended: VidrdError? = lock.withLock {
            if let e = self.ended { return e }
            strategyWaiters.append(done)
            return nil
        }
        if let ended { return done(.failure(ended)) }
        do { try sendLocked(.listStrategies, stream: 0) } catch { fail(error) }
    }

    /// Sends OPEN_SESSION on a new stream id; events for it go to `deliver` on the reader thread.
    func open(_ request: OpenSession, deliver: @escaping @Sendable (RouteEvent) -> Void) throws(VidrdError) -> UInt32 {
        writeLock.lock()
        defer { writeLock.unlock() }
        lock.lock()
        if let ended {
            lock.unlock()
            throw ended
        }
        let id = nextStream
        nextStream += 1
        routes[id] = Route(deliver)
        lock.unlock()
        do {
            try sendLocked(.openSession(request), stream: id)
        } catch {
            _ = lock.withLock { routes.removeValue(forKey: id) }
            throw error
        }
        return id
    }

    /// Sends PULL(credits) unless the session has ended.
    func pull(_ id: UInt32, credits: UInt32) {
        guard lock.withLock({ routes[id].map { !$0.cancelled } ?? false }) else { return }
        try? send(.pull(credits: credits), stream: id)
    }

    /// Sends CANCEL once; the session's route then ends quietly when the server's CANCELLED arrives.
    func cancel(_ id: UInt32) {
        let route: Route? = lock.withLock {
            guard let r = routes[id], !r.cancelled else { return nil }
            r.cancelled = true
            return r
        }
        guard route != nil else { return }
        try? send(.cancel, stream: id)
    }

    /// Sends CLOSE(OK), waits (bounded) for the server to finish, and releases the socket.
    func close(timeout: Double = 2) {
        let first: Bool = lock.withLock {
            if closing { return false }
            closing = true
            return true
        }
        if first, lock.withLock({ ended == nil }) {
            try? send(.close(Close(code: .ok)))
            socket.shutdownWrite()
        }
        if readerDone.wait(timeout: .now() + timeout) == .timedOut {
            fail(VidrdError(.closedByClient, .cancelled, "the client was closed"))
            _ = readerDone.wait(timeout: .now() + 1)
        } else {
            readerDone.signal()
        }
        socket.close()
    }

    /// Sends CLOSE(OK) and half-closes without waiting; the reader thread ends at the server's EOF.
    func closeInBackground() {
        let first: Bool = lock.withLock {
            if closing { return false }
            closing = true
            return true
        }
        guard first, lock.withLock({ ended == nil }) else { return }
        try? send(.close(Close(code: .ok)))
        socket.shutdownWrite()
    }

    // MARK: - Reading

    private func startReader() {
        let thread = Thread { [self] in
            self.readLoop()
            self.readerDone.signal()
        }
        thread.name = "vidrd-client-reader"
        thread.start()
    }

    private func readLoop() {
        var decoder = pendingDecoder!
        pendingDecoder = nil
        let keepalive = UInt64(max(ack.info.limits.keepaliveIntervalMs, 100))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        var lastReceived = Self.now()
        var pingSentAt: UInt64?
        var nonce: UInt64 = 0
        // Frames that arrived with HELLO_ACK.
        if !drain(&decoder) { return }
        while lock.withLock({ ended == nil }) {
            let now = Self.now()
            let sinceSent = now - lock.withLock { lastSentMs }
            if !lock.withLock({ closing }) {
                if sinceSent >= keepalive {
                    nonce &+= 1
                    try? send(.ping(nonce: nonce))
                    if pingSentAt == nil { pingSentAt = now }
                }
                if let p = pingSentAt, now - p > 2 * keepalive, now - lastReceived > 2 * keepalive {
                    fail(VidrdError(.connectionClosed, .unavailable, "the server stopped responding (no reply to PING for \(2 * keepalive) ms)"))
                    return
                }
            }
            let wait = Int(min(keepalive - min(sinceSent, keepalive), 500))
            switch socket.receive(into: buffer, timeoutMs: max(wait, 1)) {
            case .data(let n):
                lastReceived = Self.now()
                pingSentAt = nil
                if lock.withLock({ closing }) { continue }  // after our CLOSE: discard until EOF
                decoder.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                if !drain(&decoder) { return }
            case .timeout:
                continue
            case .eof:
                let closing = lock.withLock { self.closing }
                fail(
                    closing
                        ? VidrdError(.closedByClient, .cancelled, "the client was closed")
                        : VidrdError(.connectionClosed, .unavailable, "the server closed the connection"))
                return
            case .failed(let why):
                fail(VidrdError(.connectionClosed, .unavailable, why))
                return
            }
        }
    }

    /// Handles every complete frame; false when the connection has ended.
    private func drain(_ decoder: inout FrameDecoder) -> Bool {
        do {
            while let envelope = try decoder.nextMessage() {
                if !handle(envelope) { return false }
            }
            return true
        } catch {
            try? send(error.errorEnvelope.message, stream: error.errorEnvelope.stream)
            fail(VidrdError(.protocolViolation, error.code, error.message))
            return false
        }
    }

    private func handle(_ envelope: Envelope) -> Bool {
        let id = envelope.stream
        switch envelope.message {
        case .ping(let nonce):
            try? send(.pong(nonce: nonce))
        case .pong:
            break
        case .info(let info):
            let w = lock.withLock { infoWaiters.isEmpty ? nil : infoWaiters.removeFirst() }
            w?(.success(info))
        case .strategies(let list):
            let w = lock.withLock { strategyWaiters.isEmpty ? nil : strategyWaiters.removeFirst() }
            w?(.success(list))
        case .close(let c):
            fail(
                c.code == .ok
                    ? VidrdError(.closedByClient, .cancelled, "the client was closed")
                    : VidrdError(.server, c.code, c.message.isEmpty ? "the server closed the connection" : c.message, isFatal: true))
            return false
        case .error(let e) where e.fatal:
            fail(VidrdError(server: e))
            return false
        case .error(let e):
            let route: Route? = lock.withLock { routes.removeValue(forKey: id) }
            if let route {
                route.deliver(.ended(route.cancelled && e.code == .cancelled ? nil : VidrdError(server: e)))
            }
        case .sessionOpened(let p):
            routeFor(id)?.deliver(.opened(p))
        case .clipStart(let m):
            routeFor(id)?.deliver(.event(.clipStarted(m)))
        case .progress(let m):
            routeFor(id)?.deliver(.event(.progress(m)))
        case .frame(let m):
            routeFor(id)?.deliver(.event(.frame(m)))
        case .clipEnd(let m):
            routeFor(id)?.deliver(.event(.clipEnded(m)))
        case .hello, .helloAck, .infoRequest, .listStrategies, .openSession, .pull, .cancel:
            fail(VidrdError(.protocolViolation, .invalidArgument, "unexpected \(envelope.message.frameType.name) from the server"))
            return false
        }
        return true
    }

    /// The route of a live, not-cancelled session (frames of a cancelled session are dropped).
    private func routeFor(_ id: UInt32) -> Route? {
        lock.withLock { routes[id].flatMap { $0.cancelled ? nil : $0 } }
    }

    /// Ends the connection: every pending request and session gets `error`.
    func fail(_ error: VidrdError) {
        let (routes, infos, strategies): ([Route], [@Sendable (Result<ServerInfo, VidrdError>) -> Void], [@Sendable (Result<StrategyList, VidrdError>) -> Void]) =
            lock.withLock {
                if ended != nil { return ([], [], []) }
                ended = error
                let r = Array(self.routes.sorted { $0.key < $1.key }.map(\.value))
                self.routes = [:]
                let i = infoWaiters
                let s = strategyWaiters
                infoWaiters = []
                strategyWaiters = []
                return (r, i, s)
            }
        for r in routes { r.deliver(.ended(r.cancelled ? nil : error)) }
        for w in infos { w(.failure(error)) }
        for w in strategies { w(.failure(error)) }
        socket.shutdownWrite()
    }
}
