import VidrdProtocol

/// Identifies a connection between the transport and the state machine (also the `conn` of
/// the logs). The transport picks it at accept time.
typealias ConnectionID = Int

/// One client connection's protocol state: no socket here, the transport holds that under the
/// same id. Owned by `ServerStateMachine`, on the loop thread only.
final class Connection {
    enum State { case handshake, ready, closing, closed }

    let id: ConnectionID
    var state = State.handshake
    var decoder: FrameDecoder
    var encoder = FrameEncoder(role: .server)
    var peer: String
    /// `proxy_protocol`: the PROXY v2 header has not been read yet; its bytes collect here.
    var awaitingProxyHeader = false
    var proxyHeaderBytes: [UInt8] = []
    var clientName: String?
    let acceptedAtMs: UInt64
    /// When the last complete frame arrived (the idle timer).
    var lastReceivedMs: UInt64
    /// When the first byte of the frame now partly buffered arrived; nil between frames.
    var frameStartedMs: UInt64?
    var lastWriteProgressMs: UInt64
    /// Bytes handed to the transport for this connection and not yet reported written.
    var queuedBytes = 0
    var readingPaused = false
    /// Whether the transport was last told to read (startReading) rather than not (stopReading).
    var reading = false
    /// The peer's end of file has been read.
    var peerClosed = false
    /// Our side has been shut down after flushing every queued write.
    var shutdownDone = false
    /// Sessions open (not ended) on this connection, by stream id.
    var open: [UInt32: Session] = [:]
    /// The highest stream id used by OPEN_SESSION so far.
    var highestStream: UInt32 = 0
    var closingDeadlineMs: UInt64 = 0

    init(id: ConnectionID, peer: String, maxPayload: Int, nowMs: UInt64) {
        self.id = id
        self.peer = peer
        decoder = FrameDecoder(role: .server, maxPayload: maxPayload)
        acceptedAtMs = nowMs
        lastReceivedMs = nowMs
        lastWriteProgressMs = nowMs
    }

    var isOpen: Bool { state == .handshake || state == .ready }
}

/// One session. Lives on the loop thread; its generator travels to the executor with each job.
final class Session {
    let key: UInt64
    let id: UInt32
    let connection: Connection
    let generator: SessionGenerator
    let opened: SessionOpened
    let plan: EmissionPlan
    var credits: UInt32
    var clipIndex: UInt32 = 0
    var nextFrameNumber: UInt64 = 0
    var jobInFlight = false
    /// Ended for the protocol (its last frame was sent, or its connection is gone). The object
    /// stays until a job in flight returns.
    var ended = false
    var clipStartedNs: UInt64 = 0
    var framesThisClip = 0

    init(key: UInt64, id: UInt32, connection: Connection, resolved: ResolvedSession, sealer: ContinuationSealer?) {
        self.key = key
        self.id = id
        self.connection = connection
        generator = SessionGenerator(stream: resolved.stream, compression: resolved.compression,
                                     weight: UInt64(resolved.opened.weight ?? 1), sealer: sealer)
        opened = resolved.opened
        plan = resolved.plan
        credits = resolved.initialCredits
        // 0 for a new stream; where its continuation left off for a resumed one.
        clipIndex = UInt32(resolved.stream.clipIndex)
        nextFrameNumber = UInt64(resolved.stream.framesEmitted)
    }
}
