import CUV
import Foundation
import Logging
import VidrdProtocol

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's libuv side: the loop, the listening socket, accepted sockets (read, write,
/// shutdown, close), the sweep timer, the worker and shutdown wake-ups and the signals. It
/// decides nothing about the protocol: every event becomes a `ServerInput` for the
/// `ServerStateMachine`, whose `ServerAction`s it carries out. Every method runs on the loop
/// thread, except `requestShutdown`, which any thread may call.
final class LibuvTransport: @unchecked Sendable {
    let configuration: DaemonConfiguration
    let engine: GenerationEngine
    let logger: Logger
    private let core: ServerStateMachine
    /// The limits announced and enforced.
    var limits: ServerLimits { core.limits }

    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let listener: UnsafeMutablePointer<uv_tcp_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    private let control: UnsafeMutablePointer<uv_async_t>
    private let sweep: UnsafeMutablePointer<uv_timer_t>
    private var signalHandles: [UnsafeMutablePointer<uv_signal_t>] = []
    fileprivate let readBuffer: UnsafeMutableRawPointer
    fileprivate static let readBufferSize = 64 * 1024
    private let mailbox: Mailbox
    private let makeExecutor: (Mailbox) -> any ClipExecutor
    private var executor: (any ClipExecutor)?
    private(set) var boundPort: UInt16 = 0
    /// What the step executor ran (written by compute threads, read by anyone).
    let stepStatistics = Locked(StepStatistics())
    /// Recorded by the state machine, the compute threads and at scrape time; served by `probe`.
    let metrics = DaemonMetrics()
    /// The probe port (`metrics_listen`), if configured.
    private var probe: ProbeListener?
    /// The probe port's bound port, if one is configured.
    var probePort: UInt16? { probe?.boundPort }

    private var sockets: [ConnectionID: SocketHandle] = [:]
    private var nextConnectionId = 1
    /// Inputs waiting to be handled: failures met while carrying out actions are queued here so
    /// the state machine never sees an input in the middle of another.
    private var inputs: [ServerInput] = []
    private var handling = false
    /// Guards cross-thread shutdown requests and whether `control` may still be signalled.
    private let pendingShutdown = Locked<(request: ServerInput.Shutdown?, alive: Bool)>((nil, true))

    /// `makeExecutor` builds what runs the clips, once the loop starts (default: the step
    /// executor with `workers` compute threads); it reports through the mailbox it is given.
    init(
        configuration: DaemonConfiguration, engine: GenerationEngine, logger: Logger,
        makeExecutor: ((Mailbox) -> any ClipExecutor)? = nil
    ) throws {
        self.configuration = configuration
        self.engine = engine
        self.logger = logger
        core = ServerStateMachine(
            configuration: configuration, engine: engine, logger: logger, now: MonotonicClock.nanoseconds, metrics: metrics)
        let settings = StepExecutor.Settings(
            workers: max(1, configuration.workers), threadsPerWorker: configuration.threadsPerWorker,
            maxBatch: configuration.maxBatch,
            batchWaitNanoseconds: UInt64(configuration.batchWaitMs) * 1_000_000, maxSessions: Int(core.limits.maxSessions))
        let statistics = stepStatistics
        let metrics = metrics
        self.makeExecutor = makeExecutor ?? { StepExecutor(settings: settings, mailbox: $0, statistics: statistics, metrics: metrics) }

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
        // Nothing posts before `run` starts the executor, by which time `wakeup` is initialised.
        mailbox = Mailbox(async: wakeup)

        try Self.check(uv_loop_init(loop), "uv_loop_init")
        let me = Unmanaged.passUnretained(self).toOpaque()
        uv_tcp_init(loop, listener)
        listener.pointee.data = me
        do {
            try bind(configuration.listen)
            if let address = configuration.metricsListen {
                let settings = ProbeListener.Settings(
                    address: address, maxConnections: configuration.metricsMaxConnections, timeoutMs: configuration.metricsTimeoutMs)
                probe = try ProbeListener(loop: loop, settings: settings, logger: logger) { [unowned self] in self.probeAnswer($0) }
            }
        } catch {
            uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(listener)), nil)
            uv_run(loop, UV_RUN_DEFAULT)
            uv_loop_close(loop)
            throw error
        }
        uv_async_init(loop, wakeup) { a in
            guard let a, let data = a.pointee.data else { return }
            let transport = Unmanaged<LibuvTransport>.fromOpaque(data).takeUnretainedValue()
            transport.feed(.workerEvents(transport.mailbox.drain()))
        }
        wakeup.pointee.data = me
        uv_async_init(loop, control) { a in
            guard let a, let data = a.pointee.data else { return }
            Unmanaged<LibuvTransport>.fromOpaque(data).takeUnretainedValue().onControl()
        }
        control.pointee.data = me
        uv_timer_init(loop, sweep)
        sweep.pointee.data = me
    }

    deinit {
        readBuffer.deallocate()
        listener.deallocate()
        wakeup.deallocate()
        control.deallocate()
        sweep.deallocate()
        loop.deallocate()
    }

    static func check(_ status: Int32, _ what: String) throws {
        if status < 0 { throw DaemonError.libuv(what, String(cString: uv_strerror(status))) }
    }

    fileprivate static func errorText(_ status: Int) -> String { String(cString: uv_strerror(Int32(status))) }

    private func bind(_ address: ListenAddress) throws {
        boundPort = try Self.listen(listener, on: address, backlog: 128) { s, status in
            guard let s, let data = s.pointee.data else { return }
            Unmanaged<LibuvTransport>.fromOpaque(data).takeUnretainedValue().onConnection(status: status)
        }
    }

    /// Binds an initialised TCP handle to `address`, listens, and returns the bound port (the
    /// protocol port and the probe port both go through here).
    static func listen(
        _ handle: UnsafeMutablePointer<uv_tcp_t>, on address: ListenAddress, backlog: Int32, _ onConnection: uv_connection_cb
    ) throws -> UInt16 {
        var storage = sockaddr_storage()
        let host = address.host == "localhost" ? "127.0.0.1" : address.host
        let ok = withUnsafeMutablePointer(to: &storage) { p -> Bool in
            let raw = UnsafeMutableRawPointer(p)
            if uv_ip4_addr(host, Int32(address.port), raw.assumingMemoryBound(to: sockaddr_in.self)) == 0 { return true }
            return uv_ip6_addr(host, Int32(address.port), raw.assumingMemoryBound(to: sockaddr_in6.self)) == 0
        }
        guard ok else { throw DaemonError.badAddress("\(address): the host must be a numeric IPv4 or IPv6 address or localhost") }
        try withUnsafePointer(to: &storage) { p in
            try Self.check(uv_tcp_bind(handle, UnsafeRawPointer(p).assumingMemoryBound(to: sockaddr.self), 0), "bind \(address)")
        }
        try Self.check(uv_listen(UnsafeMutablePointer<uv_stream_t>(OpaquePointer(handle)), backlog, onConnection), "listen on \(address)")
        var name = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &name) { p in
            _ = uv_tcp_getsockname(handle, UnsafeMutableRawPointer(p).assumingMemoryBound(to: sockaddr.self), &len)
        }
        return port(of: name)
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
        executor = makeExecutor(mailbox)
        let period = core.tickIntervalMs
        uv_timer_start(sweep, { t in
            guard let t, let data = t.pointee.data else { return }
            Unmanaged<LibuvTransport>.fromOpaque(data).takeUnretainedValue().feed(.tick)
        }, period, period)
        if let probe, let address = configuration.metricsListen {
            probe.start()
            logger.info("probe listening", metadata: ["address": "\(address.host):\(probe.boundPort)", "paths": "/metrics,/ready,/live,agent"])
        }
        if handleSignals {
            // A parent may start us with these blocked (the mask is inherited across exec; Foundation's
            // Process does it from threads that block most signals): then SIGTERM would stay pending
            // and a `systemctl stop` or a supervisor would wait for its SIGKILL instead of a drain.
            // Unblocked on this thread, the loop thread, so that the kernel delivers them here.
            var drainSignals = sigset_t()
            sigemptyset(&drainSignals)
            sigaddset(&drainSignals, SIGINT)
            sigaddset(&drainSignals, SIGTERM)
            pthread_sigmask(SIG_UNBLOCK, &drainSignals, nil)
            for sig in [SIGINT, SIGTERM] {
                let h = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
                h.initialize(to: uv_signal_t())
                uv_signal_init(loop, h)
                h.pointee.data = Unmanaged.passUnretained(self).toOpaque()
                uv_signal_start(h, { h, signum in
                    guard let h, let data = h.pointee.data else { return }
                    Unmanaged<LibuvTransport>.fromOpaque(data).takeUnretainedValue().feed(.signal(signum == SIGINT ? "SIGINT" : "SIGTERM"))
                }, sig)
                signalHandles.append(h)
            }
        }
        logger.info(
            "listening",
            metadata: [
                "address": "\(configuration.listen.host):\(boundPort)", "model": "\(engine.modelName)",
                "workers": "\(max(1, configuration.workers))", "threads_per_worker": "\(configuration.threadsPerWorker.map(String.init) ?? "shared")", "max_batch": "\(configuration.maxBatch)", "strategies": "\(core.strategyList.strategies.map(\.name).joined(separator: ","))",
            ])
        uv_run(loop, UV_RUN_DEFAULT)
        uv_loop_close(loop)
        logger.info("stopped", metadata: ["clips": "\(core.clipsGenerated)", "frames": "\(core.framesSent)"])
    }

    /// Thread-safe: asks the loop to drain (or to stop at once).
    func requestShutdown(_ request: ServerInput.Shutdown) {
        pendingShutdown.withLock { s in
            guard s.alive else { return }
            if s.request != .immediate { s.request = request }
            uv_async_send(control)
        }
    }

    private func onControl() {
        guard let r = pendingShutdown.withLock({ s -> ServerInput.Shutdown? in
            let r = s.request
            s.request = nil
            return r
        }) else { return }
        feed(.shutdownRequested(r))
    }

    // MARK: - Inputs and actions

    /// Hands an input to the state machine at the loop's current time and carries out what it
    /// returns, then any inputs that arose meanwhile, in order.
    private func feed(_ input: ServerInput) {
        inputs.append(input)
        guard !handling else { return }
        handling = true
        while !inputs.isEmpty {
            let next = inputs.removeFirst()
            for action in core.handle(next, now: MonotonicClock.nanoseconds) { perform(action) }
        }
        handling = false
    }

    private func perform(_ action: ServerAction) {
        switch action {
        case .write(let id, let bytes):
            if let socket = sockets[id] { write(socket, bytes) }
        case .startReading(let id):
            if let socket = sockets[id] { startReading(socket) }
        case .stopReading(let id):
            if let socket = sockets[id] { uv_read_stop(socket.stream) }
        case .halfClose(let id):
            if let socket = sockets[id] { halfClose(socket) }
        case .close(let id):
            if let socket = sockets[id] { close(socket) }
        case .submit(let job):
            executor?.submit(job)
        case .cancel(let generator):
            generator.cancelled.set()
        case .closeListener:
            uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(listener)), nil)
        case .stop:
            stop()
        }
    }

    /// Stops the executor and closes the loop's own handles so that `uv_run` returns.
    private func stop() {
        executor?.stopAndJoin()
        _ = mailbox.drain()
        pendingShutdown.withLock { $0.alive = false }
        probe?.close()
        uv_timer_stop(sweep)
        uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(sweep)), nil)
        uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(wakeup)), nil)
        uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(control)), nil)
        for h in signalHandles {
            uv_close(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(h))) { h in UnsafeMutableRawPointer(h)?.deallocate() }
        }
        signalHandles = []
    }

    /// Answers a probe request from the server's state now (loop thread, between two inputs).
    private func probeAnswer(_ request: ProbeRequest) -> [UInt8] {
        let status = ProbeStatus(draining: core.draining, sessions: core.sessions.count, maxSessions: Int(core.limits.maxSessions))
        return Probe.response(to: request, status: status) { [self] in
            metrics.sample(
                connections: core.liveConnectionCount, sessions: core.sessions.count, queuedBytes: core.queuedBytesTotal, draining: core.draining)
            return metrics.exposition()
        }
    }

    // MARK: - Sockets

    private func onConnection(status: Int32) {
        guard status == 0 else {
            logger.warning("accept failed", metadata: ["error": "\(Self.errorText(Int(status)))"])
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
        uv_tcp_nodelay(tcp, 1)
        if var size = configuration.socketSendBuffer.map({ Int32($0) }) {
            uv_send_buffer_size(UnsafeMutablePointer<uv_handle_t>(OpaquePointer(tcp)), &size)
        }
        var name = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &name) { p in
            _ = uv_tcp_getpeername(tcp, UnsafeMutableRawPointer(p).assumingMemoryBound(to: sockaddr.self), &len)
        }
        let socket = SocketHandle(id: nextConnectionId, tcp: tcp, transport: self)
        nextConnectionId += 1
        tcp.pointee.data = Unmanaged.passUnretained(socket).toOpaque()
        sockets[socket.id] = socket
        feed(.accepted(socket.id, peer: Self.describe(name)))
    }

    private func startReading(_ socket: SocketHandle) {
        uv_read_start(
            socket.stream,
            { h, _, buf in
                guard let h, let buf, let c = h.pointee.data else { return }
                let transport = Unmanaged<SocketHandle>.fromOpaque(c).takeUnretainedValue().transport
                buf.pointee = uv_buf_init(transport.readBuffer.assumingMemoryBound(to: CChar.self), UInt32(LibuvTransport.readBufferSize))
            },
            { s, nread, buf in
                guard let s, let c = s.pointee.data else { return }
                let socket = Unmanaged<SocketHandle>.fromOpaque(c).takeUnretainedValue()
                if nread < 0 {
                    socket.transport.feed(.readEnded(socket.id, nread == Int(UV_EOF.rawValue) ? .eof : .error(LibuvTransport.errorText(nread))))
                } else if nread > 0, let base = buf?.pointee.base {
                    socket.transport.feed(.received(socket.id, Array(UnsafeRawBufferPointer(start: base, count: nread))))
                }
            })
    }

    /// Never blocks: libuv writes what the socket takes now and keeps the rest until its callback.
    private func write(_ socket: SocketHandle, _ bytes: [UInt8]) {
        let id = socket.id
        let ctx = WriteContext(connection: socket, bytes: bytes)
        guard let base = ctx.buffer.baseAddress else {
            inputs.append(.written(id, count: bytes.count, .rejected("nothing to write")))
            return
        }
        let req = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        req.initialize(to: uv_write_t())
        let retained = Unmanaged.passRetained(ctx)
        req.pointee.data = retained.toOpaque()
        var buf = uv_buf_init(base.assumingMemoryBound(to: CChar.self), UInt32(bytes.count))
        let status = uv_write(req, socket.stream, &buf, 1) { req, status in
            guard let req, let data = req.pointee.data else { return }
            let ctx = Unmanaged<WriteContext>.fromOpaque(data).takeRetainedValue()
            req.deallocate()
            let result: ServerInput.WriteStatus =
                status == 0 ? .ok : status == Int32(UV_ECANCELED.rawValue) ? .cancelled : .failed(LibuvTransport.errorText(Int(status)))
            ctx.connection.transport.feed(.written(ctx.connection.id, count: ctx.buffer.count, result))
        }
        if status < 0 {
            retained.release()
            req.deallocate()
            inputs.append(.written(id, count: bytes.count, .rejected(Self.errorText(Int(status)))))
        }
    }

    private func halfClose(_ socket: SocketHandle) {
        let shut = shutDownWriteSide(socket.stream) { socket.transport.feed(.halfClosed(socket.id, ok: true)) }
        if !shut { inputs.append(.halfClosed(socket.id, ok: false)) }
    }

    private func close(_ socket: SocketHandle) {
        uv_close(socket.handle) { h in
            guard let h, let data = h.pointee.data else { return }
            let socket = Unmanaged<SocketHandle>.fromOpaque(data).takeUnretainedValue()
            socket.transport.closed(socket)
        }
    }

    private func closed(_ socket: SocketHandle) {
        sockets[socket.id] = nil
        socket.tcp.deallocate()
        feed(.closed(socket.id))
    }
}

/// An accepted socket. `tcp.pointee.data` points here (unretained: `sockets` holds it until the
/// close callback).
final class SocketHandle {
    let id: ConnectionID
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    unowned let transport: LibuvTransport

    init(id: ConnectionID, tcp: UnsafeMutablePointer<uv_tcp_t>, transport: LibuvTransport) {
        self.id = id
        self.tcp = tcp
        self.transport = transport
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutablePointer<uv_stream_t>(OpaquePointer(tcp)) }
    var handle: UnsafeMutablePointer<uv_handle_t> { UnsafeMutablePointer<uv_handle_t>(OpaquePointer(tcp)) }
}

/// Bytes handed to `uv_write`, kept alive until its callback.
final class WriteContext {
    let connection: SocketHandle
    let buffer: UnsafeMutableRawBufferPointer

    init(connection: SocketHandle, bytes: [UInt8]) {
        self.connection = connection
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
    }

    deinit { buffer.deallocate() }
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
