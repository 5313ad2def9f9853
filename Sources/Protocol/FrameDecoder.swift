/// Incremental, bounded decoder for one direction of a connection.
///
/// Feed it bytes as they arrive (split anywhere) with `append`, then call `nextMessage()` (or
/// `nextFrame()`) until it returns nil. Once it has thrown, it stays failed: every later call throws
/// the same error, and the caller sends `error.errorEnvelope` and closes the connection.
///
/// Memory bound: whenever `nextFrame()`/`nextMessage()` has returned nil, the decoder holds fewer
/// than `ProtocolLimits.headerSize + maxPayload` bytes (one incomplete frame). A header that
/// announces more than `maxPayload` is rejected as soon as its 12 bytes are present, before any of
/// its payload is kept. Bytes appended after a failure are dropped.
public struct FrameDecoder: Sendable {
    /// The side this decoder runs on: a `.server` decoder accepts only frames a client may send.
    /// nil accepts both directions.
    public let role: Role?
    /// Largest accepted payload (the limit this side announced), clamped to 0...64 MiB.
    public var maxPayload: Int {
        didSet { maxPayload = min(max(maxPayload, 0), ProtocolLimits.maxMaxPayload) }
    }

    private var buffer: [UInt8] = []
    private var start = 0
    private var prefaceMatched: Int
    private var pending: (type: FrameType, flags: UInt8, stream: UInt32, length: Int)?
    /// The error that ended decoding, if any.
    public private(set) var failure: ProtocolError?

    /// - Parameters:
    ///   - role: the side this decoder runs on (nil: accept every frame type).
    ///   - maxPayload: the largest payload this side accepts.
    ///   - expectPreface: whether the stream starts with `ConnectionPreface.bytes` (true on sockets).
    public init(role: Role?, maxPayload: Int = ProtocolLimits.defaultMaxPayload, expectPreface: Bool = true) {
        self.role = role
        self.maxPayload = min(max(maxPayload, 0), ProtocolLimits.maxMaxPayload)
        self.prefaceMatched = expectPreface ? 0 : ConnectionPreface.bytes.count
    }

    /// Bytes received but not yet returned as frames (preface bytes excluded).
    public var bufferedByteCount: Int { buffer.count - start + (pending == nil ? 0 : ProtocolLimits.headerSize) }

    /// Whether the whole connection preface has been received.
    public var prefaceReceived: Bool { prefaceMatched == ConnectionPreface.bytes.count }

    public mutating func append<S: Sequence<UInt8>>(_ bytes: S) {
        guard failure == nil else { return }
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil else { return }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame with a valid header, or nil when more bytes are needed.
    public mutating func nextFrame() throws(ProtocolError) -> RawFrame? {
        if let failure { throw failure }
        do {
            return try step()
        } catch {
            fail(error)
            throw error
        }
    }

    /// The next complete, fully validated message, or nil when more bytes are needed.
    public mutating func nextMessage() throws(ProtocolError) -> Envelope? {
        guard let frame = try nextFrame() else { return nil }
        do {
            let message = try WireCodec.decodePayload(frame.type, flags: frame.flags, frame.payload)
            return Envelope(stream: frame.stream, message: message)
        } catch {
            var e = error
            e.stream = frame.stream
            fail(e)
            throw e
        }
    }

    private mutating func fail(_ error: ProtocolError) {
        failure = error
        buffer = []
        start = 0
        pending = nil
    }

    private mutating func step() throws(ProtocolError) -> RawFrame? {
        let preface = ConnectionPreface.bytes
        while prefaceMatched < preface.count, start < buffer.count {
            guard buffer[start] == preface[prefaceMatched] else {
                throw ProtocolError(.invalidArgument, .badPreface, "the connection does not start with the vidrd preface")
            }
            prefaceMatched += 1
            start += 1
        }
        if prefaceMatched == preface.count {
            if pending == nil, buffer.count - start >= ProtocolLimits.headerSize {
                pending = try parseHeader(at: start)
                start += ProtocolLimits.headerSize
            }
            if let h = pending, buffer.count - start >= h.length {
                let payload = Array(buffer[start..<(start + h.length)])
                start += h.length
                pending = nil
                return RawFrame(type: h.type, flags: h.flags, stream: h.stream, payload: payload)
            }
        }
        compact()
        return nil
    }

    private mutating func compact() {
        if start == buffer.count {
            if buffer.capacity > 1 << 20 { buffer = [] } else { buffer.removeAll(keepingCapacity: true) }
            start = 0
        } else if start > 0 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }

    private func parseHeader(at i: Int) throws(ProtocolError) -> (type: FrameType, flags: UInt8, stream: UInt32, length: Int) {
        let length = Int(readBigEndian(UInt32.self, buffer, i))
        let typeByte = buffer[i + 4]
        let flags = buffer[i + 5]
        let reserved = UInt16(buffer[i + 6]) << 8 | UInt16(buffer[i + 7])
        let stream = readBigEndian(UInt32.self, buffer, i + 8)
        guard reserved == 0 else {
            throw ProtocolError(.invalidArgument, .reservedBitsSet, "reserved header bytes are not zero", stream: stream)
        }
        guard let type = FrameType(rawValue: typeByte) else {
            throw ProtocolError(.unimplemented, .unknownFrameType, "unknown frame type 0x\(hex(typeByte))", stream: stream)
        }
        try WireCodec.validateHeader(
            type: type, flags: flags, stream: stream, length: length, receiver: role, maxPayload: maxPayload)
        return (type, flags, stream, length)
    }
}
