import CUV
import Foundation
import Logging
import VidrdPlugins
import VidrdProtocol

#if canImport(Glibc)
import Glibc
#endif

/// The event loop and everything it owns: the listening socket, the connections, the sessions,
/// the scheduler and the worker hand-off. Every method runs on the loop thread, except
/// `requestShutdown`, which any thread may call.
final class Server: @unchecked Sendable {
    enum ShutdownRequest { case drain, immediate }

    let configuration: DaemonConfiguration
    let engine: GenerationEngine
    let logger: Logger
    /// The limits announced and enforced (configuration clamped to what the model and the
    /// stream engine support).
    let limits: ServerLimits
    let strategyList: StrategyList

    let loop: UnsafeMutablePointer<uv_loop_t>
    private let listener: UnsafeMutablePointer<uv_tcp_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    private let control: UnsafeMutablePointer<uv_async_t>
    private let sweep: UnsafeMutablePointer<uv_timer_t>
    private var signalHandles: [UnsafeMutablePointer<uv_signal_t>] = []
    private let readBuffer: UnsafeMutableRawPointer
    private static let readBufferSize = 64 * 1024
    private var mailbox: Mailbox!
    private var pool: StepExecutor!
    /// What the step executor ran (written by compute threads, read by anyone).
    let stepStatistics = Locked(StepStatistics())
    private(set) var boundPort: UInt16 = 0

    private var connections: [Int: Connection] = [:]
    private var readyConnections = 0
    private var nextConnectionId = 1
    private var sessions: [UInt64: Session] = [:]
    private var ring: [UInt64] = []
    /// Key of the session that got the last clip (round-robin position).
    private var lastServed: UInt64 = 0
    /// Fair-queuing system virtual time (µs of worker time): the start tag of the latest clip.
    private var virtualTime: UInt64 = 0
    private var nextSessionKey: UInt64 = 1
    private var idleWorkers: Int
    private var queuedBytesTotal = 0
    private var clipsGenerated: UInt64 = 0
    private var framesSent: UInt64 = 0
    private let startedAtMs = MonotonicClock.milliseconds

    private var draining = false
    private var drainDeadlineMs: UInt64 = 0
    private var listenerClosed = false
    private var stopping = false
    /// Guards cross-thread shutdown requests and whether `control` may still be signalled.
    private let pendingShutdown = Locked<(request: ShutdownRequest?, alive: Bool)>((nil, true))

    init(configuration: DaemonConfiguration, engine: GenerationEngine, logger: Logger) throws {
        self.configuration = configuration
        self.engine = engine
        self.logger = logger
        var l = configuration.limits
        let factor = UInt32(engine.pipeline.vaeScaleFactor)
        l.dimensionMultiple = Self.lcm(max(l.dimensionMultiple, 1), max(factor, 1))
        l.maxSteps = min(l.maxSteps, UInt32(StreamConfiguration.maxSteps))
        l.maxFramesPerClip = min(l.maxFramesPerClip, UInt32(StreamConfiguration.maxFrames))
        if configuration.maxSizeFactor > 0 {
            // Keep the cap a multiple of dimension_multiple so the largest allowed size is usable.
            let native = Double(engine.pipeline.defaultSize)
            let m = l.dimensionMultiple
            let cap = max(m, UInt32(native * configuration.maxSizeFactor) / m * m)
            l.maxWidth = min(l.maxWidth, cap)
            l.maxHeight = min(l.maxHeight, cap)
        }
        limits = l
        strategyList = engine.strategyList
        // Every session may have a clip in flight: the step executor shares the compute threads.
        idleWorkers = Int(l.maxSessions)

        loop = .allocate(capacity: 1)
        listener = .allocate(capacity: 1)
        wakeup = .allocate(capacity: 1)
        control = .allocate(capacity: 1)
        sweep = .allocate(capacity: 1)
        loop.initialize(to: uv_loop_t())
        listener.initialize(to: uv_tcp_t())
        wakeup.initialize(to: uv_async_t())
        control.initialize(to: uv_async_t())
        sweep.initialize(to: uv_timer_t())
        readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)

        try Self.check(uv_loop_init(loop), "uv_loop_init")
        let me = Unmanaged.passUnretained(self).toOpaque()
        uv_tcp_init(loop, listener)
        listener.pointee.data = me
        do {
            try bind(configuration.listen)
        } catch {
            uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(listener)), nil)
            uv_run(loop, UV_RUN_DEFAULT)
            uv_loop_close(loop)
            throw error
        }
        uv_async_init(loop, wakeup) { a in
            guard let a, let data = a.pointee.data else { return }
            Unmanaged<Server>.fromOpaque(data).takeUnretainedValue().onWorkerEvents()
        }
        wakeup.pointee.data = me
        uv_async_init(loop, control) { a in
            guard let a, let data = a.pointee.data else { return }
            Unmanaged<Server>.fromOpaque(data).takeUnretainedValue().onControl()
        }
        control.pointee.data = me
        uv_timer_init(loop, sweep)
        sweep.pointee.data = me
        mailbox = Mailbox(async: wakeup)
    }

    deinit {
        readBuffer.deallocate()
        for p in [listener] { p.deallocate() }
        wakeup.deallocate()
        control.deallocate()
        sweep.deallocate()
        loop.deallocate()
    }

    private static func lcm(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var (x, y) = (a, b)
        while y != 0 { (x, y) = (y, x % y) }
        return a / x * b
    }

    static func check(_ status: Int32, _ what: String) throws {
        if status < 0 { throw DaemonError.libuv(what, String(cString: uv_strerror(status))) }
    }

    private func bind(_ address: ListenAddress) throws {
        var storage = sockaddr_storage()
        let host = address.host == "localhost" ? "127.0.0.1" : address.host
        let ok = withUnsafeMutablePointer(to: &storage) { p -> Bool in
            let raw = UnsafeMutableRawPointer(p)
            if uv_ip4_addr(host, Int32(address.port), raw.assumingMemoryBound(to: sockaddr_in.self)) == 0 { return true }
            return uv_ip6_addr(host, Int32(address.port), raw.assumingMemoryBound(to: sockaddr_in6.self)) == 0
        }
        guard ok else { throw DaemonError.badAddress("\(address): the host must be a numeric IPv4 or IPv6 address or localhost") }
        try withUnsafePointer(to: &storage) { p in
            try Self.check(uv_tcp_bind(listener, UnsafeRawPointer(p).assumingMemoryBound(to: sockaddr.self), 0), "bind \(address)")
        }
        try Self.check(
            uv_listen(UnsafeMutablePointer<uv_stream_t>(OpaquePointer(listener)), 128) { s, status in
                guard let s, let data = s.pointee.data else { return }
                Unmanaged<Server>.fromOpaque(data).takeUnretainedValue().onConnection(status: status)
            }, "listen on \(address)")
        var name = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &name) { p in
            _ = uv_tcp_getsockname(listener, UnsafeMutableRawPointer(p).assumingMemoryBound(to: sockaddr.self), &len)
        }
        boundPort = Self.port(of: name)
    }

    private static func port(of s: sockaddr_storage) -> UInt16 {
        var s = s
        let family = Int32(s.ss_family)
        return withUnsafePointer(to: &s) { p in
            let raw = UnsafeRawPointer(p)
            if family == AF_INET6 { return UInt16(bigEndian: raw.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port) }
            return UInt16(bigEndian: raw.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port)
        }
    }

    private static func describe(_ s: sockaddr_storage) -> String {
        var s = s
        var buf = [CChar](repeating: 0, count: 64)
        let port = Self.port(of: s)
        let family = Int32(s.ss_family)
        return withUnsafePointer(to: &s) { p in
            let raw = UnsafeRawPointer(p)
            if family == AF_INET6 {
                uv_ip6_name(raw.assumingMemoryBound(to: sockaddr_in6.self), &buf, buf.count)
                return "[\(String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))]:\(port)"
            }
            uv_ip4_name(raw.assumingMemoryBound(to: sockaddr_in.self), &buf, buf.count)
            return "\(String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)):\(port)"
        }
    }

    // MARK: - Running

    /// Runs the loop until the server has drained and stopped. Call once, on the thread that
    /// will be the loop thread.
    func run(handleSignals: Bool) {
        // A peer that vanishes must cost an EPIPE on its socket, not the process (libuv writes
        // with write(2), which raises SIGPIPE). Process-wide, as every socket server needs.
        signal(SIGPIPE, SIG_IGN)
        pool = StepExecutor(
            settings: .init(workers: max(1, configuration.workers), maxBatch: configuration.maxBatch,
                            batchWaitNanoseconds: UInt64(configuration.batchWaitMs) * 1_000_000, maxSessions: Int(limits.maxSessions)),
            mailbox: mailbox, statistics: stepStatistics)
        let period = UInt64(max(10, min(100, Int(limits.handshakeTimeoutMs) / 4)))
        uv_timer_start(sweep, { t in
            guard let t, let data = t.pointee.data else { return }
            Unmanaged<Server>.fromOpaque(data).takeUnretainedValue().onSweep()
        }, period, period)
        if handleSignals {
            for sig in [SIGINT, SIGTERM] {
                let h = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
                h.initialize(to: uv_signal_t())
                uv_signal_init(loop, h)
                h.pointee.data = Unmanaged.passUnretained(self).toOpaque()
                uv_signal_start(h, { h, signum in
                    guard let h, let data = h.pointee.data else { return }
                    Unmanaged<Server>.fromOpaque(data).takeUnretainedValue().onSignal(signum)
                }, sig)
                signalHandles.append(h)
            }
        }
        logger.info(
            "listening",
            metadata: [
                "address": "\(configuration.listen.host):\(boundPort)", "model": "\(engine.modelName)",
                "workers": "\(configuration.workers)", "max_batch": "\(configuration.maxBatch)", "strategies": "\(strategyList.strategies.map(\.name).joined(separator: ","))",
            ])
        uv_run(loop, UV_RUN_DEFAULT)
        uv_loop_close(loop)
        logger.info("stopped", metadata: ["clips": "\(clipsGenerated)", "frames": "\(framesSent)"])
    }

    /// Thread-safe: asks the loop to drain (or to stop at once).
    func requestShutdown(_ request: ShutdownRequest) {
        pendingShutdown.withLock { s in
            guard s.alive else { return }
            if s.request != .immediate { s.request = request }
            uv_async_send(control)
        }
    }

    private func onControl() {
        guard let r = pendingShutdown.withLock({ s -> ShutdownRequest? in
            let r = s.request
            s.request = nil
            return r
        }) else { return }
        beginDrain(immediate: r == .immediate)
    }

    private func onSignal(_ signum: Int32) {
        logger.notice("signal received", metadata: ["signal": "\(signum == SIGINT ? "SIGINT" : "SIGTERM")", "draining": "\(draining)"])
        beginDrain(immediate: draining)
    }

    // MARK: - Accepting

    private func onConnection(status: Int32) {
        guard status == 0 else {
            logger.warning("accept failed", metadata: ["error": "\(String(cString: uv_strerror(status)))"])
            return
        }
        let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        tcp.initialize(to: uv_tcp_t())
        uv_tcp_init(loop, tcp)
        let stream = UnsafeMutablePointer<uv_stream_t>(OpaquePointer(tcp))
        guard uv_accept(UnsafeMutablePointer<uv_stream_t>(OpaquePointer(listener)), stream) == 0 else {
            uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(tcp))) { h in UnsafeMutableRawPointer(h)?.deallocate() }
            return
        }
        // Refused connections still get the preface and a fatal ERROR (then linger like any
        // other), so a client learns why and when to retry instead of seeing a bare reset.
        let live = liveConnectionCount
        let refusal: (StatusCode, String)? =
            draining
            ? (.unavailable, "server shutting down")
            : live >= handshakeCap
                ? (.resourceExhausted, "the server has \(live) connections open, handshaking or ready; its limit is \(handshakeCap)") : nil
        uv_tcp_nodelay(tcp, 1)
        if var size = configuration.socketSendBuffer.map({ Int32($0) }) {
            uv_send_buffer_size(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(tcp)), &size)
        }
        let now = MonotonicClock.milliseconds
        let conn = Connection(id: nextConnectionId, tcp: tcp, server: self, maxPayload: Int(limits.maxPayload), now: now)
        nextConnectionId += 1
        var name = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &name) { p in
            _ = uv_tcp_getpeername(tcp, UnsafeMutableRawPointer(p).assumingMemoryBound(to: sockaddr.self), &len)
        }
        conn.peer = Self.describe(name)
        tcp.pointee.data = Unmanaged.passUnretained(conn).toOpaque()
        connections[conn.id] = conn
        logger.debug("connection accepted", metadata: ["conn": "\(conn.id)", "peer": "\(conn.peer)"])
        write(conn, ConnectionPreface.bytes)
        if let (code, message) = refusal {
            logger.warning("connection refused", metadata: ["conn": "\(conn.id)", "reason": "\(message)"])
            fail(conn, code, message, retryAfterMs: Self.retryAfterMs)
            return
        }
        startReading(conn)
    }

    /// Suggested wait before a client retries a connection the server refused for capacity.
    static let retryAfterMs: UInt32 = 1000

    /// Connections in the handshake or ready (not those lingering after their last frame).
    private var liveConnectionCount: Int { connections.values.reduce(0) { $0 + ($1.isOpen ? 1 : 0) } }

    /// Live connections (handshaking or ready) the server holds at most; newcomers past it are
    /// refused at once with RESOURCE_EXHAUSTED (docs/PROTOCOL.md §8.2). Connections lingering
    /// after their last frame are bounded separately (`lingerCap`) and never block newcomers.
    private var handshakeCap: Int { configuration.maxConnections + max(16, configuration.maxConnections) }
    private var lingerCap: Int { handshakeCap }

    // MARK: - Reading

    private func startReading(_ conn: Connection) {
        guard !conn.reading, conn.state != .closed else { return }
        conn.reading = true
        uv_read_start(
            conn.stream,
            { h, _, buf in
                guard let h, let buf, let c = h.pointee.data else { return }
                let conn = Unmanaged<Connection>.fromOpaque(c).takeUnretainedValue()
                let server = conn.server
                buf.pointee = uv_buf_init(server.readBuffer.assumingMemoryBound(to: CChar.self), UInt32(Server.readBufferSize))
            },
            { s, nread, buf in
                guard let s, let c = s.pointee.data else { return }
                let conn = Unmanaged<Connection>.fromOpaque(c).takeUnretainedValue()
                conn.server.onRead(conn, nread: nread, base: buf?.pointee.base)
            })
    }

    private func stopReading(_ conn: Connection) {
        guard conn.reading, conn.state != .closed else { return }
        conn.reading = false
        uv_read_stop(conn.stream)
    }

    private func onRead(_ conn: Connection, nread: Int, base: UnsafeMutablePointer<CChar>?) {
        if nread < 0 {
            conn.peerClosed = true
            if conn.state == .closing {
                // Close once our last frames are flushed (the shutdown callback does it if not yet).
                if conn.shutdownDone || nread != Int(UV_EOF.rawValue) { closeHandle(conn, reason: nil) }
            } else if nread == Int(UV_EOF.rawValue), conn.decoder.bufferedByteCount > 0 {
                // The peer half-closed inside a frame; it may still read our answer.
                stopReading(conn)
                fail(conn, .invalidArgument, "truncated frame: the connection ended \(conn.decoder.bufferedByteCount) bytes into an incomplete frame")
            } else if nread == Int(UV_EOF.rawValue) {
                closeHandle(conn, reason: "peer closed the connection")
            } else {
                closeHandle(conn, reason: "read error: \(String(cString: uv_strerror(Int32(nread))))")
            }
            return
        }
        guard nread > 0, let base, conn.isOpen else { return }
        let now = MonotonicClock.milliseconds
        conn.decoder.append(UnsafeRawBufferPointer(start: base, count: nread))
        do {
            var completed = false
            while conn.isOpen, let envelope = try conn.decoder.nextMessage() {
                // Only whole frames count as activity: a peer trickling one frame's bytes must
                // not hold the connection past idle_timeout_ms (docs/PROTOCOL.md §8.5).
                conn.lastReceivedMs = now
                completed = true
                handle(conn, envelope)
            }
            if conn.decoder.bufferedByteCount == 0 {
                conn.frameStartedMs = nil
            } else if completed || conn.frameStartedMs == nil {
                conn.frameStartedMs = now
            }
        } catch {
            logger.info(
                "protocol violation",
                metadata: ["conn": "\(conn.id)", "code": "\(error.code.name)", "rule": "\(error.kind.rawValue)", "error": "\(error.message)"])
            fail(conn, error.errorEnvelope)
        }
    }

    // MARK: - Writing

    /// Queues bytes on the connection. Never blocks: libuv writes what the socket takes now and
    /// keeps the rest; `queuedBytes` counts it until the write completes.
    private func write(_ conn: Connection, _ bytes: [UInt8]) {
        guard conn.state != .closed, !bytes.isEmpty else { return }
        let ctx = WriteContext(connection: conn, bytes: bytes)
        let req = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        req.initialize(to: uv_write_t())
        req.pointee.data = Unmanaged.passRetained(ctx).toOpaque()
        if conn.queuedBytes == 0 { conn.lastWriteProgressMs = MonotonicClock.milliseconds }
        conn.queuedBytes += bytes.count
        queuedBytesTotal += bytes.count
        var buf = uv_buf_init(ctx.buffer.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(bytes.count))
        let status = uv_write(req, conn.stream, &buf, 1) { req, status in
            guard let req, let data = req.pointee.data else { return }
            let ctx = Unmanaged<WriteContext>.fromOpaque(data).takeRetainedValue()
            req.deallocate()
            ctx.connection.server.onWritten(ctx.connection, count: ctx.buffer.count, status: status)
        }
        if status < 0 {
            Unmanaged<WriteContext>.fromOpaque(req.pointee.data!).release()
            req.deallocate()
            conn.queuedBytes -= bytes.count
            queuedBytesTotal -= bytes.count
            closeHandle(conn, reason: "write failed: \(String(cString: uv_strerror(status)))")
            return
        }
        if conn.queuedBytes >= configuration.maxQueuedBytesPerConnection, conn.state == .ready, !conn.readingPaused {
            conn.readingPaused = true
            stopReading(conn)
            logger.debug("backpressure: paused", metadata: ["conn": "\(conn.id)", "queued": "\(conn.queuedBytes)"])
        }
    }

    private func onWritten(_ conn: Connection, count: Int, status: Int32) {
        conn.queuedBytes -= count
        queuedBytesTotal -= count
        conn.lastWriteProgressMs = MonotonicClock.milliseconds
        if status < 0 {
            if status != Int32(UV_ECANCELED.rawValue) {
                closeHandle(conn, reason: "write error: \(String(cString: uv_strerror(status)))")
            }
            return
        }
        if conn.readingPaused, conn.queuedBytes <= configuration.maxQueuedBytesPerConnection / 2 {
            conn.readingPaused = false
            if conn.isOpen {
                // The server, not the peer, held the partial frame back while paused.
                if conn.frameStartedMs != nil { conn.frameStartedMs = MonotonicClock.milliseconds }
                startReading(conn)
                logger.debug("backpressure: resumed", metadata: ["conn": "\(conn.id)", "queued": "\(conn.queuedBytes)"])
            }
        }
        if conn.queuedBytes < configuration.maxQueuedBytesPerConnection { schedule() }
    }

    private func send(_ conn: Connection, _ message: Message, stream: UInt32 = 0) {
        do {
            write(conn, try conn.encoder.encode(message, stream: stream))
        } catch {
            logger.error("cannot encode a frame", metadata: ["conn": "\(conn.id)", "type": "\(message.frameType.name)", "error": "\(error)"])
        }
    }

    // MARK: - Closing

    /// Sends a fatal ERROR and closes after the linger time.
    private func fail(_ conn: Connection, _ envelope: Envelope) {
        guard conn.isOpen else { return }
        write(conn, (try? FrameEncoder(role: .server, maxPayload: ProtocolLimits.maxMaxPayload).encode(envelope)) ?? [])
        finish(conn)
    }

    private func fail(_ conn: Connection, _ code: StatusCode, _ message: String, stream: UInt32 = 0, retryAfterMs: UInt32? = nil) {
        logger.info("connection failed", metadata: ["conn": "\(conn.id)", "code": "\(code.name)", "error": "\(message)"])
        fail(
            conn,
            Envelope(
                stream: stream,
                message: .error(
                    ErrorMessage(
                        code: code, message: clippedUTF8(message, maxBytes: ProtocolLimits.maxMessageTextBytes), fatal: true,
                        retryAfterMs: retryAfterMs))))
    }

    /// After the connection's last frame: end its sessions, flush, half-close, and keep reading
    /// (discarding) until the peer closes or `lingerMs` passes, so it sees our last frame.
    private func finish(_ conn: Connection) {
        guard conn.isOpen else { return }
        if conn.state == .ready { readyConnections -= 1 }
        conn.state = .closing
        endSessionsSilently(conn)
        conn.closingDeadlineMs = MonotonicClock.milliseconds + UInt64(configuration.lingerMs)
        // Lingering only helps the peer read our last frame; when too many linger, the one that
        // has lingered longest has most likely read it, so it is closed to make room.
        let lingering = connections.values.filter { $0.state == .closing && $0 !== conn }
        if lingering.count >= lingerCap, let oldest = lingering.min(by: { ($0.closingDeadlineMs, $0.id) < ($1.closingDeadlineMs, $1.id) }) {
            closeHandle(oldest, reason: "lingering connections at their limit (\(lingerCap))")
        }
        conn.readingPaused = false
        if !conn.peerClosed { startReading(conn) }
        let req = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        req.initialize(to: uv_shutdown_t())
        req.pointee.data = Unmanaged.passUnretained(conn).toOpaque()
        let status = uv_shutdown(req, conn.stream) { req, _ in
            guard let req else { return }
            let conn = req.pointee.data.map { Unmanaged<Connection>.fromOpaque($0).takeUnretainedValue() }
            req.deallocate()
            conn?.shutdownDone = true
            if let conn, conn.state == .closing, conn.peerClosed || conn.server.configuration.lingerMs == 0 {
                conn.server.closeHandle(conn, reason: nil)
            }
        }
        if status < 0 {
            req.deallocate()
            closeHandle(conn, reason: nil)
        }
    }

    /// Closes the socket now; pending writes are dropped.
    private func closeHandle(_ conn: Connection, reason: String?) {
        guard conn.state != .closed else { return }
        if conn.state == .ready { readyConnections -= 1 }
        conn.state = .closed
        endSessionsSilently(conn)
        if let reason { logger.debug("connection closed", metadata: ["conn": "\(conn.id)", "reason": "\(reason)"]) }
        uv_close(conn.handle) { h in
            guard let h, let data = h.pointee.data else { return }
            let conn = Unmanaged<Connection>.fromOpaque(data).takeUnretainedValue()
            conn.server.onClosed(conn)
        }
    }

    private func onClosed(_ conn: Connection) {
        connections[conn.id] = nil
        conn.tcp.deallocate()
        checkStopped()
    }

    // MARK: - Messages

    private func handle(_ conn: Connection, _ envelope: Envelope) {
        let id = envelope.stream
        if conn.state == .handshake {
            handshake(conn, envelope)
            return
        }
        switch envelope.message {
        case .hello:
            fail(conn, .failedPrecondition, "HELLO after the handshake")
        case .ping(let nonce):
            send(conn, .pong(nonce: nonce))
        case .pong:
            break
        case .infoRequest:
            send(conn, .info(info()))
        case .listStrategies:
            send(conn, .strategies(strategyList))
        case .close(let c):
            logger.debug("client closed", metadata: ["conn": "\(conn.id)", "code": "\(c.code.name)"])
            endSessionsSilently(conn)
            send(conn, .close(Close(code: .ok)))
            finish(conn)
        case .error(let e) where e.fatal:
            logger.info("client sent a fatal error", metadata: ["conn": "\(conn.id)", "code": "\(e.code.name)", "error": "\(e.message)"])
            closeHandle(conn, reason: "fatal error from the client")
        case .openSession(let request):
            openSession(conn, id, request)
        case .pull(let credits):
            guard let s = lookup(conn, id, "PULL") else { return }
            let total = UInt64(s.credits) + UInt64(credits)
            guard total <= UInt64(limits.maxCredits) else {
                endSession(s, .invalidArgument, "credits would be \(total); max_credits = \(limits.maxCredits)")
                return
            }
            s.credits = UInt32(total)
            schedule()
        case .cancel:
            guard let s = lookup(conn, id, "CANCEL") else { return }
            endSession(s, .cancelled, "cancelled by the client")
        case .error(let e):
            guard let s = lookup(conn, id, "ERROR") else { return }
            logger.debug("client ended a session with an error", metadata: ["conn": "\(conn.id)", "session": "\(id)", "code": "\(e.code.name)"])
            endSession(s, .cancelled, "cancelled by the client (\(e.code.name))")
        case .helloAck, .info, .strategies, .sessionOpened, .clipStart, .progress, .frame, .clipEnd:
            // The server-role decoder rejects these before they get here.
            fail(conn, .invalidArgument, "\(envelope.message.frameType.name) may not be sent to a server")
        }
    }

    /// The open session a PULL/CANCEL names; nil if it has ended (ignored). An id never opened
    /// fails the connection.
    private func lookup(_ conn: Connection, _ id: UInt32, _ what: String) -> Session? {
        if let s = conn.open[id] { return s }
        if id > conn.highestStream {
            fail(conn, .failedPrecondition, "\(what) for session \(id), which was never opened", stream: id)
        }
        return nil
    }

    private func handshake(_ conn: Connection, _ envelope: Envelope) {
        guard case .hello(let hello) = envelope.message else {
            fail(conn, .failedPrecondition, "the first frame must be HELLO, got \(envelope.message.frameType.name)", stream: envelope.stream)
            return
        }
        let supported = VidrdProtocolVersion.supported
        guard let version = VidrdProtocolVersion.negotiate(clientMin: hello.minVersion, clientMax: hello.maxVersion) else {
            fail(
                conn, .unimplemented,
                "no common protocol version: the client offers \(hello.minVersion)...\(hello.maxVersion), this server speaks \(supported.lowerBound)...\(supported.upperBound)"
            )
            return
        }
        if let token = configuration.token {
            guard let offered = hello.token else {
                fail(conn, .unauthenticated, "this server requires a token")
                return
            }
            guard constantTimeEquals(offered, token) else {
                fail(conn, .unauthenticated, "bad token")
                return
            }
        }
        if draining {
            fail(conn, .unavailable, "server shutting down")
            return
        }
        guard readyConnections < configuration.maxConnections else {
            fail(conn, .resourceExhausted, "the server has \(readyConnections) connections, its limit", retryAfterMs: 1000)
            return
        }
        conn.encoder.maxPayload = Int(hello.maxPayload ?? UInt32(ProtocolLimits.defaultMaxPayload))
        conn.clientName = hello.clientName
        conn.state = .ready
        readyConnections += 1
        logger.info(
            "connection ready",
            metadata: ["conn": "\(conn.id)", "peer": "\(conn.peer)", "client": "\(hello.clientName ?? "")", "version": "\(version)"])
        send(conn, .helloAck(HelloAck(version: version, info: info(), strategies: strategyList)))
    }

    func info() -> ServerInfo {
        ServerInfo(
            serverName: configuration.serverName, modelName: engine.modelName, limits: limits,
            activeSessions: UInt32(sessions.count), activeConnections: UInt32(liveConnectionCount),
            uptimeMs: MonotonicClock.milliseconds - startedAtMs, clipsGenerated: clipsGenerated, framesSent: framesSent,
            queuedBytes: UInt64(max(queuedBytesTotal, 0)))
    }

    // MARK: - Sessions

    private func openSession(_ conn: Connection, _ id: UInt32, _ request: OpenSession) {
        guard id > conn.highestStream else {
            fail(conn, .invalidArgument, "session id \(id) is not greater than \(conn.highestStream), the highest used on this connection", stream: id)
            return
        }
        conn.highestStream = id
        func reject(_ code: StatusCode, _ message: String) {
            logger.info("session rejected", metadata: ["conn": "\(conn.id)", "session": "\(id)", "code": "\(code.name)", "error": "\(message)"])
            send(conn, .error(ErrorMessage(code: code, message: clippedUTF8(message, maxBytes: ProtocolLimits.maxMessageTextBytes))), stream: id)
        }
        if draining { return reject(.unavailable, "server shutting down") }
        guard conn.open.count < Int(limits.maxSessionsPerConnection) else {
            return reject(.resourceExhausted, "this connection has \(conn.open.count) sessions; max_sessions_per_connection = \(limits.maxSessionsPerConnection)")
        }
        guard sessions.count < Int(limits.maxSessions) else {
            return reject(.resourceExhausted, "the server has \(sessions.count) sessions; max_sessions = \(limits.maxSessions)")
        }
        let resolved: ResolvedSession
        do {
            resolved = try engine.resolve(request, limits: limits, defaults: configuration.sessionDefaults)
        } catch {
            return reject(error.code, error.message)
        }
        let s = Session(key: nextSessionKey, id: id, connection: conn, resolved: resolved)
        nextSessionKey += 1
        sessions[s.key] = s
        ring.append(s.key)
        conn.open[id] = s
        logger.info(
            "session opened",
            metadata: [
                "conn": "\(conn.id)", "session": "\(id)", "seed": "\(s.opened.seed)", "steps": "\(s.opened.steps)",
                "size": "\(s.opened.width)x\(s.opened.height)x\(s.opened.framesPerClip)",
                "chain": "\(s.opened.strategies.map(\.name).joined(separator: ","))",
            ])
        send(conn, .sessionOpened(s.opened), stream: id)
        schedule()
    }

    /// Ends a session for the protocol: sends its last frame (a non-fatal ERROR) when `code` is
    /// given, cancels its job if one runs, and frees it once no job holds it.
    private func endSession(_ s: Session, _ code: StatusCode?, _ message: String) {
        guard !s.ended else { return }
        s.ended = true
        let conn = s.connection
        conn.open[s.id] = nil
        if let code, conn.state == .ready {
            send(
                conn, .error(ErrorMessage(code: code, message: clippedUTF8(message, maxBytes: ProtocolLimits.maxMessageTextBytes))),
                stream: s.id)
        }
        logger.info(
            "session ended",
            metadata: [
                "conn": "\(conn.id)", "session": "\(s.id)", "code": "\(code?.name ?? "-")", "reason": "\(message)",
                "clips": "\(s.clipIndex)",
            ])
        if s.jobInFlight {
            s.generator.cancelled.set()
        } else {
            free(s)
        }
        if draining, conn.state == .ready, conn.open.isEmpty {
            send(conn, .close(Close(code: .unavailable, message: "server shutting down")))
            finish(conn)
        }
    }

    private func endSessionsSilently(_ conn: Connection) {
        for s in conn.open.values.sorted(by: { $0.id < $1.id }) {
            s.ended = true
            conn.open[s.id] = nil
            if s.jobInFlight { s.generator.cancelled.set() } else { free(s) }
        }
    }

    private func free(_ s: Session) {
        guard sessions.removeValue(forKey: s.key) != nil else { return }
        if let i = ring.firstIndex(of: s.key) { ring.remove(at: i) }
        checkStopped()
    }

    // MARK: - Scheduling

    /// Starts clips on idle workers. Fair queuing by worker time at clip granularity
    /// (start-time fair queuing): a clip's start tag is max(system virtual time, the session's
    /// previous finish tag), its finish tag the start tag plus the worker time the clip took; the
    /// eligible session with the smallest start tag goes next, ties in round-robin order after the
    /// session served last. Sessions with equal clips alternate; a session whose clips cost ten
    /// times more gets a tenth as many clips, so CPU time is shared evenly. A clip is never
    /// interrupted for another session's.
    private func schedule() {
        guard !stopping, !draining else { return }
        while idleWorkers > 0, !ring.isEmpty {
            // `ring` holds session keys in increasing order; ties resume after the last one served.
            let first = ring.firstIndex { $0 > lastServed } ?? 0
            var picked: (session: Session, tag: UInt64)?
            for i in 0..<ring.count {
                guard let s = sessions[ring[(first + i) % ring.count]] else { continue }
                guard !s.ended, !s.jobInFlight, s.credits > 0, s.connection.state == .ready,
                    s.connection.queuedBytes < configuration.maxQueuedBytesPerConnection
                else { continue }
                let tag = max(virtualTime, s.finishTag)
                if picked == nil || tag < picked!.tag { picked = (s, tag) }
            }
            guard let (s, tag) = picked else { return }
            lastServed = s.key
            virtualTime = tag
            s.startTag = tag
            dispatch(s)
        }
    }

    private func dispatch(_ s: Session) {
        s.credits -= 1
        let planned = s.plan.frameCount(clip: Int(s.clipIndex))
        send(
            s.connection,
            .clipStart(
                ClipStart(clipIndex: s.clipIndex, frameCount: UInt32(planned), firstFrameNumber: s.nextFrameNumber, creditsRemaining: s.credits)),
            stream: s.id)
        s.jobInFlight = true
        s.framesThisClip = 0
        s.clipStartedNs = MonotonicClock.nanoseconds
        idleWorkers -= 1
        pool.submit(
            ClipJob(
                sessionKey: s.key, streamId: s.id, clipIndex: s.clipIndex, generator: s.generator, encoder: s.connection.encoder,
                dispatchedAt: s.clipStartedNs))
    }

    private func onWorkerEvents() {
        for event in mailbox.drain() {
            switch event {
            case .progress(let key, let bytes):
                if let s = sessions[key], !s.ended { write(s.connection, bytes) }
            case .frame(let key, let bytes):
                if let s = sessions[key], !s.ended {
                    write(s.connection, bytes)
                    s.framesThisClip += 1
                    framesSent += 1
                }
            case .finished(let key, let outcome):
                idleWorkers += 1
                guard let s = sessions[key] else { continue }
                s.jobInFlight = false
                finished(s, outcome)
            }
        }
        schedule()
    }

    private func finished(_ s: Session, _ outcome: ClipOutcome) {
        switch outcome {
        case .done(let frames, let queue, let denoise, let decode, let encode):
            clipsGenerated += 1
            s.finishTag = s.startTag + max(1, denoise + decode + encode)
            guard !s.ended else { return free(s) }
            let total = (MonotonicClock.nanoseconds &- s.clipStartedNs) / 1000
            send(
                s.connection,
                .clipEnd(
                    ClipEnd(
                        clipIndex: s.clipIndex, firstFrameNumber: s.nextFrameNumber, frameCount: UInt32(s.framesThisClip),
                        queueMicros: queue, denoiseMicros: denoise, decodeMicros: decode, encodeMicros: encode, totalMicros: total)),
                stream: s.id)
            logger.debug(
                "clip done",
                metadata: [
                    "conn": "\(s.connection.id)", "session": "\(s.id)", "clip": "\(s.clipIndex)", "frames": "\(frames)",
                    "ms": "\(total / 1000)",
                ])
            s.clipIndex += 1
            s.nextFrameNumber += UInt64(frames)
            if draining { endSession(s, .unavailable, "server shutting down") }
        case .cancelled:
            if s.ended { free(s) } else { endSession(s, .cancelled, "cancelled") }
        case .failed(let code, let message):
            logger.error("clip failed", metadata: ["conn": "\(s.connection.id)", "session": "\(s.id)", "code": "\(code.name)", "error": "\(message)"])
            if s.ended { free(s) } else { endSession(s, code, message) }
        }
    }

    // MARK: - Timers and shutdown

    private func onSweep() {
        let now = MonotonicClock.milliseconds
        let idle = UInt64(limits.idleTimeoutMs)
        let frameTimeout = UInt64(limits.frameTimeoutMs ?? 0)
        for conn in connections.values.sorted(by: { $0.id < $1.id }) {
            if frameTimeout > 0, conn.isOpen, !conn.readingPaused, let started = conn.frameStartedMs, now &- started > frameTimeout {
                fail(
                    conn, .deadlineExceeded,
                    "frame incomplete: \(conn.decoder.bufferedByteCount) bytes of it arrived, the rest not within frame_timeout_ms = \(frameTimeout)")
                continue
            }
            switch conn.state {
            case .handshake:
                if now &- conn.acceptedAtMs > UInt64(limits.handshakeTimeoutMs) {
                    fail(conn, .deadlineExceeded, "HELLO did not arrive within \(limits.handshakeTimeoutMs) ms")
                }
            case .ready:
                if idle > 0, conn.queuedBytes > 0, now &- conn.lastWriteProgressMs > idle {
                    logger.info("client stopped reading; closing", metadata: ["conn": "\(conn.id)", "queued": "\(conn.queuedBytes)"])
                    closeHandle(conn, reason: "no write progress for \(idle) ms")
                } else if idle > 0, now &- conn.lastReceivedMs > idle {
                    fail(conn, .deadlineExceeded, "nothing received for \(idle) ms")
                }
            case .closing:
                if now >= conn.closingDeadlineMs { closeHandle(conn, reason: nil) }
            case .closed:
                break
            }
        }
        if draining, now >= drainDeadlineMs { forceDrain() }
        checkStopped()
    }

    private func beginDrain(immediate: Bool) {
        if !draining {
            draining = true
            drainDeadlineMs = MonotonicClock.milliseconds + UInt64(configuration.drainGraceMs)
            logger.notice("draining", metadata: ["grace_ms": "\(configuration.drainGraceMs)", "sessions": "\(sessions.count)"])
            closeListener()
            for conn in connections.values.sorted(by: { $0.id < $1.id }) {
                switch conn.state {
                case .handshake:
                    fail(conn, .unavailable, "server shutting down")
                case .ready:
                    for s in conn.open.values.sorted(by: { $0.id < $1.id }) where !s.jobInFlight {
                        endSession(s, .unavailable, "server shutting down")
                    }
                    if conn.state == .ready, conn.open.isEmpty {
                        send(conn, .close(Close(code: .unavailable, message: "server shutting down")))
                        finish(conn)
                    }
                default: break
                }
            }
        }
        if immediate || MonotonicClock.milliseconds >= drainDeadlineMs { forceDrain() }
        checkStopped()
    }

    /// The grace period is over: end every session now.
    private func forceDrain() {
        drainDeadlineMs = 0
        for conn in connections.values.sorted(by: { $0.id < $1.id }) {
            switch conn.state {
            case .handshake:
                fail(conn, .unavailable, "server shutting down")
            case .ready:
                for s in conn.open.values.sorted(by: { $0.id < $1.id }) { endSession(s, .unavailable, "server shutting down") }
                if conn.state == .ready {
                    send(conn, .close(Close(code: .unavailable, message: "server shutting down")))
                    finish(conn)
                }
            case .closing:
                closeHandle(conn, reason: nil)
            case .closed:
                break
            }
        }
    }

    private func closeListener() {
        guard !listenerClosed else { return }
        listenerClosed = true
        uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(listener)), nil)
    }

    /// Once draining and nothing is left, stops the workers and closes the loop's handles so
    /// that `uv_run` returns.
    private func checkStopped() {
        guard draining, !stopping, connections.isEmpty, sessions.isEmpty else { return }
        stopping = true
        pool.stopAndJoin()
        _ = mailbox.drain()
        pendingShutdown.withLock { $0.alive = false }
        uv_timer_stop(sweep)
        uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(sweep)), nil)
        uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(wakeup)), nil)
        uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(control)), nil)
        for h in signalHandles {
            uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(h))) { h in UnsafeMutableRawPointer(h)?.deallocate() }
        }
        signalHandles = []
        closeListener()
    }
}

/// Errors starting the daemon.
public enum DaemonError: Error, CustomStringConvertible {
    case libuv(String, String)
    case badAddress(String)

    public var description: String {
        switch self {
        case .libuv(let what, let error): "\(what): \(error)"
        case .badAddress(let s): "bad listen address \(s)"
        }
    }
}
