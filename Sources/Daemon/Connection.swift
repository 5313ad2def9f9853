import CUV
import VidrdProtocol

/// One client connection. Lives on the loop thread only.
final class Connection {
    enum State { case handshake, ready, closing, closed }

    let id: Int
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    unowned let server: Server
    var state = State.handshake
    var decoder: FrameDecoder
    var encoder = FrameEncoder(role: .server)
    var peer = "?"
    var clientName: String?
    let acceptedAtMs: UInt64
    /// When the last complete frame arrived (the idle timer).
    var lastReceivedMs: UInt64
    /// When the first byte of the frame now partly buffered arrived; nil between frames.
    var frameStartedMs: UInt64?
    var lastWriteProgressMs: UInt64
    /// Bytes handed to libuv for this connection and not yet written to the socket.
    var queuedBytes = 0
    var readingPaused = false
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

    init(id: Int, tcp: UnsafeMutablePointer<uv_tcp_t>, server: Server, maxPayload: Int, now: UInt64) {
        self.id = id
        self.tcp = tcp
        self.server = server
        decoder = FrameDecoder(role: .server, maxPayload: maxPayload)
        acceptedAtMs = now
        lastReceivedMs = now
        lastWriteProgressMs = now
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutablePointer<uv_stream_t>(OpaquePointer(tcp)) }
    var handle: UnsafeMutablePointer<uv_handle_t> { UnsafeMutablePointer<uv_handle_t>(OpaquePointer(tcp)) }
    var isOpen: Bool { state == .handshake || state == .ready }
}

/// One session. Lives on the loop thread; its generator travels to a worker with each job.
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
    /// Fair-queuing tags (µs of worker time) of the current and the previous clip.
    var startTag: UInt64 = 0
    var finishTag: UInt64 = 0
    var framesThisClip = 0

    init(key: UInt64, id: UInt32, connection: Connection, resolved: ResolvedSession) {
        self.key = key
        self.id = id
        self.connection = connection
        generator = SessionGenerator(stream: resolved.stream, compression: resolved.compression)
        opened = resolved.opened
        plan = resolved.plan
        credits = resolved.initialCredits
    }
}

/// Bytes handed to `uv_write`, kept alive until its callback.
final class WriteContext {
    let connection: Connection
    let buffer: UnsafeMutableRawBufferPointer

    init(connection: Connection, bytes: [UInt8]) {
        self.connection = connection
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
    }

    deinit { buffer.deallocate() }
}
