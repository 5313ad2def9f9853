import Foundation
import VidrdProtocol

// Inside `Socket`, whose methods are named connect/send/close, the C calls need their module's
// name; these aliases give the one spelling both platforms compile.
#if canImport(Glibc)
import Glibc
private let sockStream = Int32(SOCK_STREAM.rawValue)
private let sendFlags = Int32(MSG_NOSIGNAL)
private func posixConnect(_ fd: Int32, _ a: UnsafePointer<sockaddr>?, _ n: socklen_t) -> Int32 { Glibc.connect(fd, a, n) }
private func posixSend(_ fd: Int32, _ p: UnsafeRawPointer?, _ n: Int, _ flags: Int32) -> Int { Glibc.send(fd, p, n, flags) }
private func posixClose(_ fd: Int32) -> Int32 { Glibc.close(fd) }
#elseif canImport(Darwin)
import Darwin
private let sockStream = SOCK_STREAM
// Darwin has no MSG_NOSIGNAL; SO_NOSIGPIPE is set on the socket instead (`connect`).
private let sendFlags: Int32 = 0
private func posixConnect(_ fd: Int32, _ a: UnsafePointer<sockaddr>?, _ n: socklen_t) -> Int32 { Darwin.connect(fd, a, n) }
private func posixSend(_ fd: Int32, _ p: UnsafeRawPointer?, _ n: Int, _ flags: Int32) -> Int { Darwin.send(fd, p, n, flags) }
private func posixClose(_ fd: Int32) -> Int32 { Darwin.close(fd) }
#endif

/// A connected, blocking TCP socket (POSIX). `send` may be called from several threads (the
/// caller serialises whole frames); `receive` from one reader thread.
final class Socket: @unchecked Sendable {
    let fd: Int32
    private let closed = NSLock()
    private var isClosed = false

    private init(fd: Int32) { self.fd = fd }

    /// Connects to `host:port` (any address getaddrinfo returns), giving up after `timeout` seconds.
    static func connect(host: String, port: UInt16, timeout: Double, receiveBuffer: Int? = nil) throws(VidrdError) -> Socket {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = sockStream
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw VidrdError(.connectionFailed, .unavailable, "cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if fd < 0 { lastError = String(cString: strerror(errno)); continue }
            if var v = receiveBuffer.map({ Int32($0) }) {
                // Before connect, so the advertised window is small from the start.
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, socklen_t(MemoryLayout<Int32>.size))
            }
            let flags = fcntl(fd, F_GETFL, 0)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            var ok = posixConnect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0
            if !ok && errno == EINPROGRESS {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let n = poll(&p, 1, Int32(max(1, timeout * 1000)))
                if n == 1 {
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                    ok = err == 0
                    if !ok { lastError = String(cString: strerror(err)) }
                } else {
                    lastError = n == 0 ? "timed out after \(timeout) s" : String(cString: strerror(errno))
                }
            } else if !ok {
                lastError = String(cString: strerror(errno))
            }
            guard ok else {
                _ = posixClose(fd)
                continue
            }
            _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            #if canImport(Darwin)
            setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
            #endif
            return Socket(fd: fd)
        }
        throw VidrdError(.connectionFailed, .unavailable, "cannot connect to \(host):\(port): \(lastError)")
    }

    /// Writes all bytes (blocking).
    func send(_ bytes: [UInt8]) throws(VidrdError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { posixSend(fd, $0.baseAddress! + offset, $0.count - offset, sendFlags) }
            if n < 0 {
                if errno == EINTR { continue }
                throw VidrdError(.connectionClosed, .unavailable, "send failed: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    enum ReceiveResult {
        case data(Int)
        case timeout
        case eof
        case failed(String)
    }

    /// Waits up to `timeoutMs` for bytes and reads what is there into `buffer`.
    func receive(into buffer: UnsafeMutableRawBufferPointer, timeoutMs: Int) -> ReceiveResult {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let n = poll(&p, 1, Int32(max(0, timeoutMs)))
        if n == 0 { return .timeout }
        if n < 0 { return errno == EINTR ? .timeout : .failed(String(cString: strerror(errno))) }
        let r = recv(fd, buffer.baseAddress, buffer.count, 0)
        if r > 0 { return .data(r) }
        if r == 0 { return .eof }
        if errno == EINTR || errno == EAGAIN { return .timeout }
        return .failed(String(cString: strerror(errno)))
    }

    /// Sets SO_RCVBUF (tests use a small one to model a slow reader).
    func setReceiveBuffer(_ bytes: Int) {
        var v = Int32(bytes)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    func shutdownWrite() { _ = shutdown(fd, Int32(SHUT_WR)) }

    func close() {
        closed.lock()
        defer { closed.unlock() }
        if !isClosed {
            isClosed = true
            _ = posixClose(fd)
        }
    }

    deinit { close() }
}
