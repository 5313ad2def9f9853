/// The PROXY protocol v2 header a load balancer (HAProxy's `send-proxy-v2`) puts before the
/// client's bytes, so that the daemon learns the client's address instead of the balancer's
/// (`proxy_protocol = true`; docs/DAEMON.md, "Behind HAProxy"). Pure: bytes in, a result out.
///
/// Only version 2 (binary) is read: it is what HAProxy sends with `send-proxy-v2`, its length is
/// in its fixed 16 bytes (so it is bounded before it is read), and it cannot be confused with the
/// protocol's own preface. Version 1 (text) is refused with a message saying so.
enum ProxyHeader {
    /// The 12 bytes every v2 header starts with.
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// Address block plus TLVs accepted at most (HAProxy's TLVs — ALPN, unique id, SSL details —
    /// stay far below it; the format allows 65535).
    static let maxBodyLength = 1024

    enum Parse: Equatable {
        case incomplete
        /// A connection the balancer made itself (LOCAL: its health checks): keep the socket's peer.
        case local(consumed: Int)
        /// The client's source address as `HOST:PORT` (`[V6]:PORT`), or nil for an address
        /// family the daemon does not describe (UNIX, UNSPEC).
        case proxied(source: String?, consumed: Int)
        case invalid(String)
    }

    static func parse(_ bytes: [UInt8]) -> Parse {
        let n = min(bytes.count, signature.count)
        guard bytes.prefix(n).elementsEqual(signature.prefix(n)) else {
            if bytes.starts(with: Array("PROXY ".utf8)) {
                return .invalid("PROXY protocol v1 (text) is not supported; configure the balancer for v2 (HAProxy: send-proxy-v2)")
            }
            return .invalid("expected a PROXY protocol v2 header (proxy_protocol = true); the connection did not start with one")
        }
        guard bytes.count >= 16 else { return .incomplete }
        let versionCommand = bytes[12]
        guard versionCommand >> 4 == 2 else { return .invalid("PROXY protocol version \(versionCommand >> 4), expected 2") }
        let command = versionCommand & 0x0F
        guard command <= 1 else { return .invalid("PROXY protocol command \(command) is neither LOCAL nor PROXY") }
        let length = Int(bytes[14]) << 8 | Int(bytes[15])
        guard length <= maxBodyLength else {
            return .invalid("PROXY protocol header of \(length) bytes after its first 16; at most \(maxBodyLength) are accepted")
        }
        guard bytes.count >= 16 + length else { return .incomplete }
        let consumed = 16 + length
        if command == 0 { return .local(consumed: consumed) }
        let body = Array(bytes[16..<consumed])
        switch bytes[13] >> 4 {
        case 1:  // AF_INET: source, destination (4 bytes each), source port, destination port
            guard body.count >= 12 else { return .invalid("PROXY protocol IPv4 address block of \(body.count) bytes, expected 12") }
            let port = Int(body[8]) << 8 | Int(body[9])
            return .proxied(source: "\(body[0]).\(body[1]).\(body[2]).\(body[3]):\(port)", consumed: consumed)
        case 2:  // AF_INET6: 16 + 16 + 2 + 2
            guard body.count >= 36 else { return .invalid("PROXY protocol IPv6 address block of \(body.count) bytes, expected 36") }
            let groups = stride(from: 0, to: 16, by: 2).map { String(Int(body[$0]) << 8 | Int(body[$0 + 1]), radix: 16) }
            let port = Int(body[32]) << 8 | Int(body[33])
            return .proxied(source: "[\(groups.joined(separator: ":"))]:\(port)", consumed: consumed)
        default:
            return .proxied(source: nil, consumed: consumed)
        }
    }
}
