/// A violation of docs/PROTOCOL.md found while decoding or encoding.
///
/// `code` is the status code the receiver sends back in its fatal `ERROR` frame before it closes
/// the connection (see `errorEnvelope`). `kind` names the rule that was broken, for tests and logs.
public struct ProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// The first 8 bytes were not the connection preface.
        case badPreface
        /// The header's reserved 16 bits were not zero.
        case reservedBitsSet
        /// The frame type is not defined in the negotiated version.
        case unknownFrameType
        /// A frame type that only the other side may send (e.g. FRAME sent to a server).
        case wrongDirection
        /// A flag bit that is undefined for this frame type was set.
        case invalidFlags
        /// The stream id is 0 where a session id is required, or non-zero where it must be 0.
        case invalidStream
        /// The header announces a payload longer than the receiver's maximum.
        case frameTooLarge
        /// A field header or value runs past the end of its enclosing payload.
        case truncated
        /// A fixed-size field has the wrong length.
        case badFieldLength
        /// A required field is absent.
        case missingField
        /// A non-repeated field occurs twice, or a repeated field more often than allowed.
        case duplicateField
        /// A value lies outside its documented range (including empty strings where not allowed).
        case valueOutOfRange
        /// A string field is not valid UTF-8.
        case invalidUTF8
        /// A name does not match `[A-Za-z][A-Za-z0-9_.-]{0,63}`.
        case invalidName
        /// Fields that exclude each other, or a parameter value whose kind is missing/ambiguous.
        case conflictingFields
        /// Bytes after the end of a fixed-layout payload (FRAME's WebP is shorter than the payload).
        case trailingBytes
        /// FRAME data is not a complete RIFF/WEBP file.
        case invalidWebP
        /// An encoder was asked to produce a payload larger than the peer accepts.
        case payloadTooLarge
    }

    public var code: StatusCode
    public var kind: Kind
    public var message: String
    /// The stream id of the offending frame, when its header had been read.
    public var stream: UInt32?

    public init(_ code: StatusCode, _ kind: Kind, _ message: String, stream: UInt32? = nil) {
        self.code = code
        self.kind = kind
        self.message = message
        self.stream = stream
    }

    public var description: String {
        "\(code.name): \(message)" + (stream.map { " (stream \($0))" } ?? "")
    }

    /// The fatal ERROR frame to send before closing the connection (docs/PROTOCOL.md §8).
    public var errorEnvelope: Envelope {
        let text = truncatedUTF8(message, maxBytes: ProtocolLimits.maxMessageTextBytes)
        return Envelope(
            stream: stream ?? 0,
            message: .error(ErrorMessage(code: code == .ok ? .internal : code, message: text, fatal: true)))
    }
}
