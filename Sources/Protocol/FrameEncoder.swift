/// Turns messages into frame bytes, checking everything the receiving decoder would check.
///
/// The encoder never produces bytes that a conforming `FrameDecoder` rejects: it validates the
/// header rules and the payload (by decoding it) and throws the same `ProtocolError` otherwise.
public struct FrameEncoder: Sendable {
    /// The side that sends; nil allows every frame type (tools, tests).
    public var role: Role?
    /// The largest payload the peer accepts (its announced `max_payload`; 4 MiB until known).
    public var maxPayload: Int

    public init(role: Role?, maxPayload: Int = ProtocolLimits.defaultMaxPayload) {
        self.role = role
        self.maxPayload = maxPayload
    }

    /// Header and payload of one frame.
    public func encode(_ envelope: Envelope) throws(ProtocolError) -> [UInt8] {
        let message = envelope.message
        let type = message.frameType
        let flags = WireCodec.flags(for: message)
        try checkHeader(type: type, flags: flags, stream: envelope.stream, length: 0)
        if case .frame(let f) = message {
            try WireCodec.validateFramePrefix(frameIndex: f.frameIndex)
            try WireCodec.validateWebP(head: f.webp.prefix(12), count: f.webp.count)
        }
        let payload = WireCodec.encodePayload(message)
        try checkHeader(type: type, flags: flags, stream: envelope.stream, length: payload.count)
        if type != .frame {
            do {
                _ = try WireCodec.decodePayload(type, flags: flags, payload)
            } catch {
                var e = error
                e.stream = envelope.stream
                throw e
            }
        }
        var out = FrameHeader(length: UInt32(payload.count), type: type, flags: flags, stream: envelope.stream).bytes
        out.reserveCapacity(ProtocolLimits.headerSize + payload.count)
        out.append(contentsOf: payload)
        return out
    }

    public func encode(_ message: Message, stream: UInt32 = 0) throws(ProtocolError) -> [UInt8] {
        try encode(Envelope(stream: stream, message: message))
    }

    /// The first 28 bytes of a FRAME (header + fixed prefix) for a WebP file held elsewhere, so a
    /// server can write `head` and then the encoder's output buffer without copying it.
    /// `webpHead` is the file's first 12 bytes (or all of it), `webpCount` its length.
    public func frameHead<C: Collection<UInt8>>(
        stream: UInt32, clipIndex: UInt32, frameIndex: UInt32, frameNumber: UInt64, webpHead: C, webpCount: Int
    ) throws(ProtocolError) -> [UInt8] {
        let length = 16 + webpCount
        try checkHeader(type: .frame, flags: 0, stream: stream, length: length)
        try WireCodec.validateFramePrefix(frameIndex: frameIndex)
        try WireCodec.validateWebP(head: webpHead, count: webpCount)
        var out = FrameHeader(length: UInt32(length), type: .frame, stream: stream).bytes
        appendBigEndian(clipIndex, to: &out)
        appendBigEndian(frameIndex, to: &out)
        appendBigEndian(frameNumber, to: &out)
        return out
    }

    private func checkHeader(type: FrameType, flags: UInt8, stream: UInt32, length: Int) throws(ProtocolError) {
        if let role, !role.maySend(type) {
            throw ProtocolError(
                .internal, .wrongDirection, "a \(role == .server ? "server" : "client") may not send \(type.name)", stream: stream)
        }
        do {
            try WireCodec.validateHeader(
                type: type, flags: flags, stream: stream, length: length, receiver: nil, maxPayload: maxPayload)
        } catch {
            var e = error
            if e.kind == .frameTooLarge { e.kind = .payloadTooLarge }
            throw e
        }
    }
}
