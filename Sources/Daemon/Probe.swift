/// What the probe port (`metrics_listen`) understands, and what it answers: pure, no I/O
/// (`ProbeListener` does the sockets). Two kinds of peers share the port:
///
/// - HTTP/1.x `GET` (or `HEAD`) of `/metrics` (Prometheus text), `/ready` (200 serving, 503
///   draining) and `/live` (200 while the process serves at all). One request per connection;
///   the answer says `Connection: close`.
/// - HAProxy's agent-check, configured with `agent-send "agent\n"`: the line `agent` gets one
///   line back, `ready up 73%` while serving (the weight is the share of `max_sessions` still
///   free) or `drain` while draining (docs/DAEMON.md, "Behind HAProxy").
enum ProbeRequest: Equatable {
    case http(method: String, path: String)
    case agent
}

enum ProbeParse: Equatable {
    /// More bytes are needed (the head is not complete yet).
    case incomplete
    case request(ProbeRequest)
    /// Not something to answer normally: the status and reason to reply with, then close.
    case bad(status: Int, reason: String)
}

/// What the answers depend on, sampled on the loop thread when a request is complete.
struct ProbeStatus: Equatable {
    var draining: Bool
    var sessions: Int
    var maxSessions: Int
}

enum Probe {
    /// A request head larger than this is refused (431): a probe needs a few hundred bytes.
    static let maxRequestBytes = 4096

    /// Parses what a probe connection sent so far.
    static func parse(_ bytes: [UInt8]) -> ProbeParse {
        guard let firstLineEnd = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            return bytes.count > maxRequestBytes ? .bad(status: 431, reason: "request head over \(maxRequestBytes) bytes") : .incomplete
        }
        var line = bytes[..<firstLineEnd]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        let first = String(decoding: line, as: UTF8.self)
        if first == "agent" { return .request(.agent) }
        // The head ends at the first empty line; a GET has no body to wait for.
        guard let headEnd = headEnd(bytes) else {
            return bytes.count > maxRequestBytes ? .bad(status: 431, reason: "request head over \(maxRequestBytes) bytes") : .incomplete
        }
        if headEnd > maxRequestBytes { return .bad(status: 431, reason: "request head over \(maxRequestBytes) bytes") }
        let parts = first.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1."), !parts[0].isEmpty, parts[1].hasPrefix("/") else {
            return .bad(status: 400, reason: "not an HTTP/1.x request line")
        }
        // Query strings are ignored: `/metrics?x=1` is `/metrics`.
        let path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "/"
        return .request(.http(method: String(parts[0]), path: path))
    }

    /// The offset just past the empty line that ends an HTTP head (CRLF or bare LF), or nil.
    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\n") {
                if i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "\n") { return i + 2 }
                if i + 2 < bytes.count, bytes[i + 1] == UInt8(ascii: "\r"), bytes[i + 2] == UInt8(ascii: "\n") { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    /// The agent-check line: HAProxy's words (its configuration manual, "agent-check").
    /// `ready` clears a DRAIN an earlier answer set (a restarted node comes back by itself);
    /// the percentage scales the server's configured weight, never below 1 % so that a full
    /// node still counts as up (weight 0 would be a drain).
    static func agentLine(_ status: ProbeStatus) -> String {
        if status.draining { return "drain\n" }
        let free = max(0, status.maxSessions - status.sessions)
        let percent = status.maxSessions > 0 ? max(1, free * 100 / status.maxSessions) : 100
        return "ready up \(percent)%\n"
    }

    /// The whole answer to a request: an HTTP response, or the agent's line.
    static func response(to request: ProbeRequest, status: ProbeStatus, metrics: () -> [UInt8]) -> [UInt8] {
        switch request {
        case .agent:
            return Array(agentLine(status).utf8)
        case .http(let method, let path):
            guard method == "GET" || method == "HEAD" else {
                return http(405, "Method Not Allowed", body: Array("only GET and HEAD\n".utf8), extra: ["Allow: GET, HEAD"])
            }
            let head = method == "HEAD"
            switch path {
            case "/metrics":
                return http(200, "OK", body: metrics(), contentType: "text/plain; version=0.0.4; charset=utf-8", headOnly: head)
            case "/ready":
                return status.draining
                    ? http(503, "Service Unavailable", body: Array("draining\n".utf8), headOnly: head)
                    : http(200, "OK", body: Array("ready\n".utf8), headOnly: head)
            case "/live":
                return http(200, "OK", body: Array("live\n".utf8), headOnly: head)
            default:
                return http(404, "Not Found", body: Array("not found; try /metrics, /ready or /live\n".utf8), headOnly: head)
            }
        }
    }

    static func http(
        _ code: Int, _ reason: String, body: [UInt8], contentType: String = "text/plain; charset=utf-8", headOnly: Bool = false,
        extra: [String] = []
    ) -> [UInt8] {
        var head = "HTTP/1.1 \(code) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
        head += "Cache-Control: no-store\r\nConnection: close\r\n"
        for h in extra { head += h + "\r\n" }
        head += "\r\n"
        return Array(head.utf8) + (headOnly ? [] : body)
    }

    static func badRequest(status: Int, reason: String) -> [UInt8] {
        let text = status == 431 ? "Request Header Fields Too Large" : status == 408 ? "Request Timeout" : "Bad Request"
        return http(status, text, body: Array("\(reason)\n".utf8))
    }
}
