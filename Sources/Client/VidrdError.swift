import VidrdProtocol

/// Every failure the client reports: what kind of failure, the gRPC status code (the server's,
/// or the one the client assigns: UNAVAILABLE for connection problems, INVALID_ARGUMENT for a
/// server that breaks the protocol) and a message.
public struct VidrdError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// The TCP connection could not be made.
        case connectionFailed
        /// The connection ended unexpectedly (reset, end of file, keepalive timeout).
        case connectionClosed
        /// The server sent an ERROR: `code` and `message` are the server's.
        case server
        /// The server broke docs/PROTOCOL.md (a malformed frame, an unexpected message).
        case protocolViolation
        /// The client was closed (`close()`) while the operation was pending.
        case closedByClient
    }

    public var kind: Kind
    public var code: StatusCode
    public var message: String
    /// For `.server`: whether the ERROR was fatal (the whole connection ended).
    public var isFatal: Bool
    /// For `.server`: the server's retry hint, if any.
    public var retryAfterMs: UInt32?

    public init(_ kind: Kind, _ code: StatusCode, _ message: String, isFatal: Bool = false, retryAfterMs: UInt32? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.isFatal = isFatal
        self.retryAfterMs = retryAfterMs
    }

    init(server e: ErrorMessage) {
        self.init(.server, e.code, e.message, isFatal: e.fatal, retryAfterMs: e.retryAfterMs)
    }

    public var description: String {
        switch kind {
        case .server: "server error \(code.name): \(message)"
        case .connectionFailed: "connection failed: \(message)"
        case .connectionClosed: "connection lost: \(message)"
        case .protocolViolation: "protocol violation by the server: \(message)"
        case .closedByClient: "the client was closed"
        }
    }
}
