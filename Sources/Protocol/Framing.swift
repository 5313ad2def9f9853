/// Protocol-wide constants and hard limits (docs/PROTOCOL.md §3 and §10).
public enum ProtocolLimits {
    /// Length of the frame header in bytes.
    public static let headerSize = 12
    /// The payload limit that applies until the peer has announced its own (and the default
    /// a server announces): 4 MiB.
    public static let defaultMaxPayload = 4 * 1024 * 1024
    /// The smallest payload limit a peer may announce; every implementation accepts this much.
    public static let minMaxPayload = 64 * 1024
    /// The largest payload limit a peer may announce: 64 MiB.
    public static let maxMaxPayload = 64 * 1024 * 1024

    public static let maxTokenBytes = 256
    public static let maxClientNameBytes = 128
    public static let maxServerNameBytes = 128
    public static let maxModelNameBytes = 256
    public static let maxPromptBytes = 16_384
    public static let maxNameBytes = 64
    public static let maxParamStringBytes = 1024
    public static let maxSummaryBytes = 1024
    public static let maxMessageTextBytes = 1024

    public static let maxChainLength = 16
    public static let maxParamsPerStrategy = 32
    public static let maxStrategyDescriptors = 64

    public static let maxSteps: UInt32 = 10_000
    public static let maxGuidance: Double = 100
    public static let maxFramesPerClip: UInt32 = 1024
    public static let maxDimension: UInt32 = 8192
    public static let maxFPS: Double = 240
    public static let maxCredits: UInt32 = 65_536
    /// A session's scheduling weight (OPEN_SESSION tag 21), at most; servers cap it lower
    /// (`ServerLimits.maxSessionWeight`).
    public static let maxSessionWeight: UInt32 = 1000
    /// A continuation token (OPEN_SESSION tag 19, CLIP_END tag 9); the payload limit binds first.
    public static let maxContinuationBytes = maxMaxPayload
}

/// Frame types of protocol version 1 (docs/PROTOCOL.md §5).
public enum FrameType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case hello = 0x01
    case helloAck = 0x02
    case ping = 0x03
    case pong = 0x04
    case close = 0x05
    case error = 0x06
    case infoRequest = 0x07
    case info = 0x08
    case listStrategies = 0x09
    case strategies = 0x0A
    case openSession = 0x10
    case sessionOpened = 0x11
    case pull = 0x12
    case cancel = 0x13
    case clipStart = 0x14
    case progress = 0x15
    case frame = 0x16
    case clipEnd = 0x17

    /// Who may send this frame type.
    public var sender: Sender {
        switch self {
        case .hello, .infoRequest, .listStrategies, .openSession, .pull, .cancel: .client
        case .helloAck, .info, .strategies, .sessionOpened, .clipStart, .progress, .frame, .clipEnd: .server
        case .ping, .pong, .close, .error: .either
        }
    }

    /// Which stream ids this frame type may carry.
    public var streamRule: StreamRule {
        switch self {
        case .hello, .helloAck, .ping, .pong, .close, .infoRequest, .info, .listStrategies, .strategies:
            .connection
        case .openSession, .sessionOpened, .pull, .cancel, .clipStart, .progress, .frame, .clipEnd:
            .session
        case .error: .either
        }
    }

    /// The flag bits defined for this type; any other bit set is a violation.
    public var allowedFlags: UInt8 {
        self == .error ? FrameFlags.fatal : 0
    }

    /// The name used in docs/PROTOCOL.md (`HELLO_ACK`).
    public var name: String {
        switch self {
        case .hello: "HELLO"
        case .helloAck: "HELLO_ACK"
        case .ping: "PING"
        case .pong: "PONG"
        case .close: "CLOSE"
        case .error: "ERROR"
        case .infoRequest: "INFO_REQUEST"
        case .info: "INFO"
        case .listStrategies: "LIST_STRATEGIES"
        case .strategies: "STRATEGIES"
        case .openSession: "OPEN_SESSION"
        case .sessionOpened: "SESSION_OPENED"
        case .pull: "PULL"
        case .cancel: "CANCEL"
        case .clipStart: "CLIP_START"
        case .progress: "PROGRESS"
        case .frame: "FRAME"
        case .clipEnd: "CLIP_END"
        }
    }

    public var description: String { name }

    public enum Sender: Sendable, Hashable { case client, server, either }
    public enum StreamRule: Sendable, Hashable {
        /// Stream id must be 0.
        case connection
        /// Stream id must be a session id (non-zero).
        case session
        /// ERROR: non-zero when not fatal; any value when fatal.
        case either
    }
}

/// Flag bits of the frame header.
public enum FrameFlags {
    /// ERROR only: the sender closes the connection after this frame; every session ends.
    public static let fatal: UInt8 = 0x01
}

/// Which end of a connection a decoder or encoder serves. A decoder with role `.server`
/// accepts only frames that a client may send, and vice versa.
public enum Role: Sendable, Hashable {
    case client
    case server

    func mayReceive(_ type: FrameType) -> Bool {
        switch (self, type.sender) {
        case (_, .either), (.server, .client), (.client, .server): true
        default: false
        }
    }

    func maySend(_ type: FrameType) -> Bool {
        switch (self, type.sender) {
        case (_, .either), (.server, .server), (.client, .client): true
        default: false
        }
    }
}

/// The 12-byte frame header (docs/PROTOCOL.md §3.1), big-endian:
/// `length u32 | type u8 | flags u8 | reserved u16 (0) | stream u32`.
public struct FrameHeader: Sendable, Hashable {
    /// Number of payload bytes that follow the header.
    public var length: UInt32
    public var type: FrameType
    public var flags: UInt8
    public var stream: UInt32

    public init(length: UInt32, type: FrameType, flags: UInt8 = 0, stream: UInt32 = 0) {
        self.length = length
        self.type = type
        self.flags = flags
        self.stream = stream
    }

    /// The header's 12 bytes.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(ProtocolLimits.headerSize)
        appendBigEndian(length, to: &out)
        out.append(type.rawValue)
        out.append(flags)
        out.append(0)
        out.append(0)
        appendBigEndian(stream, to: &out)
        return out
    }
}

/// A complete frame whose header has been validated but whose payload has not been parsed.
public struct RawFrame: Sendable, Hashable {
    public var type: FrameType
    public var flags: UInt8
    public var stream: UInt32
    public var payload: [UInt8]

    public init(type: FrameType, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8]) {
        self.type = type
        self.flags = flags
        self.stream = stream
        self.payload = payload
    }

    public var header: FrameHeader {
        FrameHeader(length: UInt32(payload.count), type: type, flags: flags, stream: stream)
    }

    /// Header followed by payload.
    public var bytes: [UInt8] { header.bytes + payload }
}

/// The connection preface each side sends before its first frame: ASCII `VIDRDP` CR LF.
public enum ConnectionPreface {
    public static let bytes: [UInt8] = [0x56, 0x49, 0x44, 0x52, 0x44, 0x50, 0x0D, 0x0A]
}

@inline(__always)
func appendBigEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
    var v = value.bigEndian
    withUnsafeBytes(of: &v) { out.append(contentsOf: $0) }
}
