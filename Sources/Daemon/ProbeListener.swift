import CUV
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The probe port's sockets, on the daemon's own libuv loop (`metrics_listen`; what is asked and
/// answered is `Probe`'s business). Serving it on the loop rather than on a thread of its own
/// means every answer samples the server's state where that state lives, without locks, and a
/// probe cannot race a drain: the readiness an answer reports is the loop's at that moment.
///
/// One request per connection, then the answer, a half-close and the close. Bounded: at most
/// `maxConnections` at once (more are closed at accept), a request head of `Probe.maxRequestBytes`,
/// and `timeoutMs` for the whole exchange (a silent or slow peer gets 408, or is closed). A
/// Prometheus exposition is a few KiB, so the answer is written in one `uv_write`. Loop thread only.
final class ProbeListener {
    struct Settings: Sendable, Equatable {
        var address: ListenAddress
        var maxConnections: Int
        var timeoutMs: Int
    }

    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let settings: Settings
    private let logger: Logger
    private let respond: (ProbeRequest) -> [UInt8]
    private let listener: UnsafeMutablePointer<uv_tcp_t>
    private let timer: UnsafeMutablePointer<uv_timer_t>
    private var connections: [Int: ProbeConnection] = [:]
    private var nextId = 1
    private var closed = false
    private(set) var boundPort: UInt16 = 0

    /// Binds and listens at once (so that a bad address fails the daemon's start, and the port is
    /// known); `respond` runs on the loop thread for each complete request.
    init(loop: UnsafeMutablePointer<uv_loop_t>, settings: Settings, logger: Logger, respond: @escaping (ProbeRequest) -> [UInt8]) throws {
        self.loop = loop
        self.settings = settings
        self.logger = logger
        self.respond = respond
        listener = .allocate(capacity: 1)
        listener.initialize(to: uv_tcp_t())
        timer = .allocate(capacity: 1)
        timer.initialize(to: uv_timer_t())
        uv_tcp_init(loop, listener)
        listener.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        do {
            boundPort = try LibuvTransport.listen(listener, on: settings.address, backlog: 64) { s, status in
                guard let s, let data = s.pointee.data else { return }
                Unmanaged<ProbeListener>.fromOpaque(data).takeUnretainedValue().onConnection(status: status)
            }
        } catch {
            // The caller closes and runs the loop to release the handle; nothing else was set up.
            closed = true
            uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(listener))) { h in UnsafeMutableRawPointer(h)?.deallocate() }
            timer.deallocate()
            throw error
        }
        uv_timer_init(loop, timer)
        timer.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    /// Starts the deadline sweep; call on the loop thread once the loop runs.
    func start() {
        guard !closed else { return }
        let period = UInt64(max(10, min(250, settings.timeoutMs / 4)))
        uv_timer_start(timer, { t in
            guard let t, let data = t.pointee.data else { return }
            Unmanaged<ProbeListener>.fromOpaque(data).takeUnretainedValue().sweep()
        }, period, period)
    }

    /// Closes the listener, the timer and every probe connection (the daemon stops).
    func close() {
        guard !closed else { return }
        closed = true
        uv_timer_stop(timer)
        uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(timer))) { h in UnsafeMutableRawPointer(h)?.deallocate() }
        uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(listener))) { h in UnsafeMutableRawPointer(h)?.deallocate() }
        for c in connections.values.sorted(by: { $0.id < $1.id }) { closeConnection(c) }
    }

    private func onConnection(status: Int32) {
        guard status == 0, !closed else { return }
        let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        tcp.initialize(to: uv_tcp_t())
        uv_tcp_init(loop, tcp)
        guard uv_accept(UnsafeMutablePointer<uv_stream_t>(OpaquePointer(listener)), UnsafeMutablePointer<uv_stream_t>(OpaquePointer(tcp))) == 0,
              connections.count < settings.maxConnections
        else {
            // Over the bound (or a failed accept): the peer sees the connection closed at once.
            if connections.count >= settings.maxConnections {
                logger.debug("probe connection refused", metadata: ["limit": "\(settings.maxConnections)"])
            }
            uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(tcp))) { h in UnsafeMutableRawPointer(h)?.deallocate() }
            return
        }
        let c = ProbeConnection(id: nextId, tcp: tcp, listener: self, deadlineMs: MonotonicClock.milliseconds + UInt64(settings.timeoutMs))
        nextId += 1
        connections[c.id] = c
        tcp.pointee.data = Unmanaged.passUnretained(c).toOpaque()
        uv_read_start(
            c.stream,
            { h, suggested, buf in
                guard let h, let buf, let data = h.pointee.data else { return }
                let c = Unmanaged<ProbeConnection>.fromOpaque(data).takeUnretainedValue()
                buf.pointee = uv_buf_init(c.readBuffer.baseAddress?.assumingMemoryBound(to: CChar.self), UInt32(c.readBuffer.count))
            },
            { s, nread, buf in
                guard let s, let data = s.pointee.data else { return }
                let c = Unmanaged<ProbeConnection>.fromOpaque(data).takeUnretainedValue()
                if nread < 0 {
                    c.listener.closeConnection(c)
                } else if nread > 0, let base = buf?.pointee.base {
                    c.listener.received(c, UnsafeRawBufferPointer(start: base, count: nread))
                }
            })
    }

    private func received(_ c: ProbeConnection, _ bytes: UnsafeRawBufferPointer) {
        guard !c.answered else { return }
        if c.request.count + bytes.count > Probe.maxRequestBytes * 2 {
            // Far past the bound already: no need to keep more to refuse it.
            c.request = Array(c.request.prefix(Probe.maxRequestBytes + 1))
        }
        c.request.append(contentsOf: bytes)
        switch Probe.parse(c.request) {
        case .incomplete:
            return
        case .request(let request):
            answer(c, respond(request))
        case .bad(let status, let reason):
            // The peer may still be sending (an oversized head): keep reading and discarding
            // until it closes, so that closing with unread bytes does not reset the connection
            // before it has read the answer.
            answer(c, Probe.badRequest(status: status, reason: reason), keepReading: true)
        }
    }

    /// Writes the whole answer, then half-closes and closes once it is flushed.
    private func answer(_ c: ProbeConnection, _ bytes: [UInt8], keepReading: Bool = false) {
        c.answered = true
        c.lingering = keepReading
        c.deadlineMs = MonotonicClock.milliseconds + UInt64(settings.timeoutMs)
        if !keepReading { uv_read_stop(c.stream) }
        let ctx = ProbeWrite(connection: c, bytes: bytes)
        guard let base = ctx.buffer.baseAddress else { return closeConnection(c) }
        let req = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        req.initialize(to: uv_write_t())
        let retained = Unmanaged.passRetained(ctx)
        req.pointee.data = retained.toOpaque()
        var buf = uv_buf_init(base.assumingMemoryBound(to: CChar.self), UInt32(ctx.buffer.count))
        let status = uv_write(req, c.stream, &buf, 1) { req, status in
            guard let req, let data = req.pointee.data else { return }
            let ctx = Unmanaged<ProbeWrite>.fromOpaque(data).takeRetainedValue()
            req.deallocate()
            ctx.connection.listener.written(ctx.connection, ok: status == 0)
        }
        if status < 0 {
            retained.release()
            req.deallocate()
            closeConnection(c)
        }
    }

    private func written(_ c: ProbeConnection, ok: Bool) {
        guard ok, !c.closing else { return closeConnection(c) }
        let shut = shutDownWriteSide(c.stream) {
            // A lingering connection closes at the peer's end of file or at its deadline.
            if !c.lingering { c.listener.closeConnection(c) }
        }
        if !shut { closeConnection(c) }
    }

    private func sweep() {
        let now = MonotonicClock.milliseconds
        for c in connections.values.sorted(by: { $0.id < $1.id }) where now >= c.deadlineMs && !c.closing {
            if c.answered {
                // The peer does not read its answer: give up on it.
                closeConnection(c)
            } else {
                answer(c, Probe.badRequest(status: 408, reason: "no complete request within \(settings.timeoutMs) ms"), keepReading: true)
            }
        }
    }

    fileprivate func closeConnection(_ c: ProbeConnection) {
        guard !c.closing else { return }
        c.closing = true
        uv_close(c.handle) { h in
            guard let h, let data = h.pointee.data else { return }
            let c = Unmanaged<ProbeConnection>.fromOpaque(data).takeUnretainedValue()
            c.listener.connections[c.id] = nil
            c.tcp.deallocate()
        }
    }
}

/// One probe connection; `tcp.pointee.data` points here (unretained: `connections` holds it
/// until the close callback).
private final class ProbeConnection {
    let id: Int
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    unowned let listener: ProbeListener
    var deadlineMs: UInt64
    var request: [UInt8] = []
    var answered = false
    /// Answered, still reading (and discarding) until the peer closes.
    var lingering = false
    var closing = false
    /// libuv reads into this; its size bounds one read, `Probe.parse` bounds the request.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)

    init(id: Int, tcp: UnsafeMutablePointer<uv_tcp_t>, listener: ProbeListener, deadlineMs: UInt64) {
        self.id = id
        self.tcp = tcp
        self.listener = listener
        self.deadlineMs = deadlineMs
    }

    deinit { readBuffer.deallocate() }

    var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutablePointer<uv_stream_t>(OpaquePointer(tcp)) }
    var handle: UnsafeMutablePointer<uv_handle_t> { UnsafeMutablePointer<uv_handle_t>(OpaquePointer(tcp)) }
}

/// An answer handed to `uv_write`, kept alive until its callback.
private final class ProbeWrite {
    let connection: ProbeConnection
    let buffer: UnsafeMutableRawBufferPointer

    init(connection: ProbeConnection, bytes: [UInt8]) {
        self.connection = connection
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 1)
        bytes.withUnsafeBytes { src in buffer.copyMemory(from: src) }
    }

    deinit { buffer.deallocate() }
}
