import Logging
import VidrdPlugins
import VidrdProtocol

/// The daemon's protocol and session state, with no I/O and no clock of its own: the transport
/// feeds it `ServerInput`s with the loop's monotonic time, and it answers the `ServerAction`s to
/// carry out (docs/DAEMON.md, "How the daemon works"). It owns the connections' protocol state
/// (handshake, ready, closing), the sessions and their credits, the limits, the idle, handshake,
/// frame and linger timers, backpressure accounting and the drain. Loop thread only.
///
/// It logs through the injected swift-log `Logger` instead of returning log actions: logging
/// changes nothing the transport does, so making it an action would only lengthen every action
/// list the tests compare, while a test that cares about logs can inject a capturing handler.
///
/// This file: the inputs, connection lifecycle, timers and drain; the messages, sessions and
/// clip dispatch are in ServerStateMachine+Sessions.swift.
final class ServerStateMachine {
    let configuration: DaemonConfiguration
    let engine: GenerationEngine
    let logger: Logger
    /// The limits announced and enforced (configuration clamped to what the model and the
    /// stream engine support).
    let limits: ServerLimits
    let strategyList: StrategyList
    /// Counters and histograms of what happened (thread-safe; recording is not I/O).
    let metrics: DaemonMetrics

    private(set) var connections: [ConnectionID: Connection] = [:]
    var readyConnections = 0
    var sessions: [UInt64: Session] = [:]
    /// Session keys in increasing (opening) order: the order eligible sessions are dispatched in.
    var ring: [UInt64] = []
    var nextSessionKey: UInt64 = 1
    var queuedBytesTotal = 0
    var clipsGenerated: UInt64 = 0
    var framesSent: UInt64 = 0
    let startedAtMs: UInt64

    private(set) var draining = false
    private var drainDeadlineMs: UInt64 = 0
    private var listenerClosed = false
    /// `.stop` has been returned; nothing more is dispatched.
    private(set) var stopping = false

    /// The time of the input being handled (monotonic ns, the transport's clock).
    private(set) var nowNs: UInt64
    var nowMs: UInt64 { nowNs / 1_000_000 }
    /// Actions decided while handling the current input, in order.
    private var actions: [ServerAction] = []

    /// Suggested wait before a client retries a connection the server refused for capacity.
    static let retryAfterMs: UInt32 = 1000

    init(configuration: DaemonConfiguration, engine: GenerationEngine, logger: Logger, now: UInt64, metrics: DaemonMetrics = DaemonMetrics()) {
        self.configuration = configuration
        self.metrics = metrics
        self.engine = engine
        self.logger = logger
        limits = Self.limits(configuration, engine)
        strategyList = engine.strategyList
        nowNs = now
        startedAtMs = now / 1_000_000
    }

    static func limits(_ configuration: DaemonConfiguration, _ engine: GenerationEngine) -> ServerLimits {
        var l = configuration.limits
        let factor = UInt32(engine.pipeline.vaeScaleFactor)
        l.dimensionMultiple = lcm(max(l.dimensionMultiple, 1), max(factor, 1))
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
        return l
    }

    private static func lcm(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var (x, y) = (a, b)
        while y != 0 { (x, y) = (y, x % y) }
        return a / x * b
    }

    /// How often the transport should send `.tick`: often enough that a handshake timeout fires
    /// within a quarter of its length, never more often than every 10 ms.
    var tickIntervalMs: UInt64 { UInt64(max(10, min(100, Int(limits.handshakeTimeoutMs) / 4))) }

    /// Handles one input at time `now` (monotonic nanoseconds, the same clock `ClipJob.dispatchedAt`
    /// and the workers use) and returns what to do, in order.
    func handle(_ input: ServerInput, now: UInt64) -> [ServerAction] {
        nowNs = now
        switch input {
        case .accepted(let id, let peer): accepted(id, peer: peer)
        case .received(let id, let bytes): if let conn = connections[id] { received(conn, bytes) }
        case .readEnded(let id, let end): if let conn = connections[id] { readEnded(conn, end) }
        case .written(let id, let count, let status): if let conn = connections[id] { written(conn, count: count, status: status) }
        case .halfClosed(let id, let ok): if let conn = connections[id] { halfClosed(conn, ok: ok) }
        case .closed(let id):
            connections[id] = nil
            checkStopped()
        case .workerEvents(let events): workerEvents(events)
        case .tick: tick()
        case .shutdownRequested(let request): beginDrain(immediate: request == .immediate)
        case .signal(let name):
            logger.notice("signal received", metadata: ["signal": "\(name)", "draining": "\(draining)"])
            // A second signal ends the drain at once.
            beginDrain(immediate: draining)
        }
        defer { actions.removeAll() }
        return actions
    }

    // MARK: - Accepting

    /// Connections in the handshake or ready (not those lingering after their last frame).
    var liveConnectionCount: Int { connections.values.reduce(0) { $0 + ($1.isOpen ? 1 : 0) } }

    /// Live connections (handshaking or ready) the server holds at most; newcomers past it are
    /// refused at once with RESOURCE_EXHAUSTED (docs/PROTOCOL.md §8.2). Connections lingering
    /// after their last frame are bounded separately (`lingerCap`) and never block newcomers.
    private var handshakeCap: Int { configuration.maxConnections + max(16, configuration.maxConnections) }
    private var lingerCap: Int { handshakeCap }

    private func accepted(_ id: ConnectionID, peer: String) {
        guard connections[id] == nil else {
            logger.error("connection id accepted twice; ignored", metadata: ["conn": "\(id)"])
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
        let conn = Connection(id: id, peer: peer, maxPayload: Int(limits.maxPayload), nowMs: nowMs)
        connections[id] = conn
        conn.awaitingProxyHeader = configuration.proxyProtocol
        metrics.connectionsAccepted.increment()
        logger.debug("connection accepted", metadata: ["conn": "\(conn.id)", "peer": "\(conn.peer)"])
        write(conn, ConnectionPreface.bytes)
        if let (code, message) = refusal {
            logger.warning("connection refused", metadata: ["conn": "\(conn.id)", "reason": "\(message)"])
            metrics.rejected(code, at: .connection)
            fail(conn, code, message, retryAfterMs: Self.retryAfterMs)
            return
        }
        startReading(conn)
    }

    // MARK: - Reading

    private func startReading(_ conn: Connection) {
        guard !conn.reading, conn.state != .closed else { return }
        conn.reading = true
        actions.append(.startReading(conn.id))
    }

    private func stopReading(_ conn: Connection) {
        guard conn.reading, conn.state != .closed else { return }
        conn.reading = false
        actions.append(.stopReading(conn.id))
    }

    private func readEnded(_ conn: Connection, _ end: ServerInput.ReadEnd) {
        conn.peerClosed = true
        if conn.state == .closing {
            // Close once our last frames are flushed (`.halfClosed` does it if not yet).
            if conn.shutdownDone || end != .eof { closeHandle(conn, reason: nil) }
        } else if end == .eof, conn.decoder.bufferedByteCount > 0 {
            // The peer half-closed inside a frame; it may still read our answer.
            stopReading(conn)
            fail(conn, .invalidArgument, "truncated frame: the connection ended \(conn.decoder.bufferedByteCount) bytes into an incomplete frame")
        } else if case .error(let error) = end {
            closeHandle(conn, reason: "read error: \(error)")
        } else {
            closeHandle(conn, reason: "peer closed the connection")
        }
    }

    private func received(_ conn: Connection, _ received: [UInt8]) {
        guard !received.isEmpty, conn.isOpen else { return }
        var bytes = received
        if conn.awaitingProxyHeader {
            guard let rest = proxyHeader(conn, bytes), !rest.isEmpty else { return }
            bytes = rest
        }
        let now = nowMs
        bytes.withUnsafeBytes { conn.decoder.append($0) }
        do {
            var completed = false
            while conn.isOpen, let envelope = try conn.decoder.nextMessage() {
                // Only whole frames count as activity: a peer trickling one frame's bytes must
                // not hold the connection past idle_timeout_ms (docs/PROTOCOL.md §8.5).
                conn.lastReceivedMs = now
                completed = true
                handleMessage(conn, envelope)
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

    /// Collects and reads the PROXY v2 header (`proxy_protocol`); returns the bytes after it
    /// once it is complete, nil while it is not (or when it was bad and the connection failed).
    /// Bounded by `ProxyHeader.maxBodyLength`; `handshake_timeout_ms` bounds the time.
    private func proxyHeader(_ conn: Connection, _ bytes: [UInt8]) -> [UInt8]? {
        conn.proxyHeaderBytes += bytes
        let consumed: Int
        switch ProxyHeader.parse(conn.proxyHeaderBytes) {
        case .incomplete:
            return nil
        case .invalid(let message):
            conn.awaitingProxyHeader = false
            conn.proxyHeaderBytes = []
            metrics.rejected(.invalidArgument, at: .connection)
            fail(conn, .invalidArgument, message)
            return nil
        case .local(let n):
            consumed = n
        case .proxied(let source, let n):
            consumed = n
            if let source {
                logger.debug("proxied connection", metadata: ["conn": "\(conn.id)", "peer": "\(source)", "via": "\(conn.peer)"])
                conn.peer = source
            }
        }
        let rest = Array(conn.proxyHeaderBytes[consumed...])
        conn.awaitingProxyHeader = false
        conn.proxyHeaderBytes = []
        return rest
    }

    // MARK: - Writing

    /// Queues bytes on the connection; `queuedBytes` counts them until `.written` reports them.
    func write(_ conn: Connection, _ bytes: [UInt8]) {
        guard conn.state != .closed, !bytes.isEmpty else { return }
        if conn.queuedBytes == 0 { conn.lastWriteProgressMs = nowMs }
        conn.queuedBytes += bytes.count
        queuedBytesTotal += bytes.count
        actions.append(.write(conn.id, bytes))
        if conn.queuedBytes >= configuration.maxQueuedBytesPerConnection, conn.state == .ready, !conn.readingPaused {
            conn.readingPaused = true
            stopReading(conn)
            logger.debug("backpressure: paused", metadata: ["conn": "\(conn.id)", "queued": "\(conn.queuedBytes)"])
        }
    }

    private func written(_ conn: Connection, count: Int, status: ServerInput.WriteStatus) {
        conn.queuedBytes -= count
        queuedBytesTotal -= count
        switch status {
        case .rejected(let error):
            closeHandle(conn, reason: "write failed: \(error)")
            return
        case .failed(let error):
            conn.lastWriteProgressMs = nowMs
            closeHandle(conn, reason: "write error: \(error)")
            return
        case .cancelled:
            conn.lastWriteProgressMs = nowMs
            return
        case .ok:
            conn.lastWriteProgressMs = nowMs
        }
        if conn.readingPaused, conn.queuedBytes <= configuration.maxQueuedBytesPerConnection / 2 {
            conn.readingPaused = false
            if conn.isOpen {
                // The server, not the peer, held the partial frame back while paused.
                if conn.frameStartedMs != nil { conn.frameStartedMs = nowMs }
                startReading(conn)
                logger.debug("backpressure: resumed", metadata: ["conn": "\(conn.id)", "queued": "\(conn.queuedBytes)"])
            }
        }
        if conn.queuedBytes < configuration.maxQueuedBytesPerConnection { schedule() }
    }

    func send(_ conn: Connection, _ message: Message, stream: UInt32 = 0) {
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

    func fail(_ conn: Connection, _ code: StatusCode, _ message: String, stream: UInt32 = 0, retryAfterMs: UInt32? = nil) {
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
    func finish(_ conn: Connection) {
        guard conn.isOpen else { return }
        if conn.state == .ready { readyConnections -= 1 }
        conn.state = .closing
        endSessionsSilently(conn)
        conn.closingDeadlineMs = nowMs + UInt64(configuration.lingerMs)
        // Lingering only helps the peer read our last frame; when too many linger, the one that
        // has lingered longest has most likely read it, so it is closed to make room.
        let lingering = connections.values.filter { $0.state == .closing && $0 !== conn }
        if lingering.count >= lingerCap, let oldest = lingering.min(by: { ($0.closingDeadlineMs, $0.id) < ($1.closingDeadlineMs, $1.id) }) {
            closeHandle(oldest, reason: "lingering connections at their limit (\(lingerCap))")
        }
        conn.readingPaused = false
        if !conn.peerClosed { startReading(conn) }
        actions.append(.halfClose(conn.id))
    }

    private func halfClosed(_ conn: Connection, ok: Bool) {
        guard ok else { return closeHandle(conn, reason: nil) }
        conn.shutdownDone = true
        if conn.state == .closing, conn.peerClosed || configuration.lingerMs == 0 {
            closeHandle(conn, reason: nil)
        }
    }

    /// Closes the socket now; pending writes are dropped. The connection is forgotten at `.closed`.
    func closeHandle(_ conn: Connection, reason: String?) {
        guard conn.state != .closed else { return }
        if conn.state == .ready { readyConnections -= 1 }
        conn.state = .closed
        endSessionsSilently(conn)
        if let reason { logger.debug("connection closed", metadata: ["conn": "\(conn.id)", "reason": "\(reason)"]) }
        actions.append(.close(conn.id))
    }

    // MARK: - Timers and shutdown

    private func tick() {
        let now = nowMs
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
            drainDeadlineMs = nowMs + UInt64(configuration.drainGraceMs)
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
        if immediate || nowMs >= drainDeadlineMs { forceDrain() }
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
        actions.append(.closeListener)
    }

    /// Once draining and nothing is left, the transport may stop the executor and end the loop.
    func checkStopped() {
        guard draining, !stopping, connections.isEmpty, sessions.isEmpty else { return }
        stopping = true
        actions.append(.stop)
        closeListener()
    }

    /// Appends an action decided by the session logic in the other file.
    func perform(_ action: ServerAction) { actions.append(action) }
}
