import CUV
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A value guarded by a lock, shared between threads.
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

/// A flag set by one thread and polled by another (session cancellation).
final class CancelFlag: @unchecked Sendable {
    private let state = Locked(false)
    var isSet: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}

/// Monotonic clock shared by the loop and the workers.
enum MonotonicClock {
    /// Nanoseconds since an arbitrary point (libuv's high-resolution clock).
    static var nanoseconds: UInt64 { uv_hrtime() }
    static var milliseconds: UInt64 { uv_hrtime() / 1_000_000 }
}

/// Text truncated to at most `maxBytes` of UTF-8 without splitting a character.
func clippedUTF8(_ s: String, maxBytes: Int) -> String {
    if s.utf8.count <= maxBytes { return s }
    var out = ""
    var used = 0
    for ch in s {
        let n = String(ch).utf8.count
        if used + n > maxBytes { break }
        out.append(ch)
        used += n
    }
    return out
}

/// Constant-time comparison of two byte strings (tokens).
func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var diff = UInt8(a.count == b.count ? 0 : 1)
    let n = max(a.count, b.count)
    for i in 0..<n {
        let x = i < a.count ? a[i] : 0
        let y = i < b.count ? b[i] : 0
        diff |= x ^ y
    }
    return diff == 0
}

/// Host and port of a listening address: `HOST:PORT`, `[V6]:PORT`, `:PORT` or `PORT`.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String = "127.0.0.1", port: UInt16 = 7878) {
        self.host = host
        self.port = port
    }

    public init?(parsing text: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        if let p = UInt16(t) {
            self.init(host: "127.0.0.1", port: p)
            return
        }
        if t.hasPrefix("["), let close = t.firstIndex(of: "]") {
            let host = String(t[t.index(after: t.startIndex)..<close])
            let rest = t[t.index(after: close)...]
            guard rest.hasPrefix(":"), let p = UInt16(rest.dropFirst()), !host.isEmpty else { return nil }
            self.init(host: host, port: p)
            return
        }
        guard let colon = t.lastIndex(of: ":"), let p = UInt16(t[t.index(after: colon)...]) else { return nil }
        let host = String(t[..<colon])
        guard !host.contains(":") else { return nil }
        self.init(host: host.isEmpty ? "127.0.0.1" : host, port: p)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Whether the host is one the daemon can bind: a numeric IPv4 or IPv6 address, or
    /// `localhost` (names are not resolved, so that a daemon never listens somewhere a resolver chose).
    public var hasNumericHost: Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
