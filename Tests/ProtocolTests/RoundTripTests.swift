import Testing
@testable import VidrdProtocol

@Suite("Round trip")
struct RoundTripTests {
    @Test("every message survives encode → decode", arguments: Samples.all)
    func roundTrip(_ envelope: Envelope) throws {
        let bytes = try FrameEncoder(role: nil).encode(envelope)
        var decoder = FrameDecoder(role: nil, expectPreface: false)
        decoder.append(bytes)
        let decoded = try #require(try decoder.nextMessage())
        #expect(decoded == envelope)
        #expect(try decoder.nextMessage() == nil)
        #expect(decoder.bufferedByteCount == 0)
        // Canonical: re-encoding the decoded message gives the same bytes.
        #expect(try FrameEncoder(role: nil).encode(decoded) == bytes)
        // The header describes the payload.
        #expect(Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3]) == bytes.count - 12)
        #expect(bytes[4] == envelope.message.frameType.rawValue)
    }

    @Test("messages are accepted by the decoder of the receiving side only")
    func directions() throws {
        for e in Samples.all {
            let bytes = Samples.encode(e)
            let sender = e.message.frameType.sender
            for role in [Role.client, .server] {
                var d = FrameDecoder(role: role, expectPreface: false)
                d.append(bytes)
                let receiverOK = sender == .either || (sender == .client) == (role == .server)
                if receiverOK {
                    #expect(try d.nextMessage() == e)
                } else {
                    #expect(throws: ProtocolError.self) { try d.nextMessage() }
                    #expect(d.failure?.kind == .wrongDirection)
                }
                // The encoder refuses to send what this role may not send.
                let mayPass = sender == .either || (sender == .client) == (role == .client)
                if mayPass { #expect(try FrameEncoder(role: role).encode(e) == bytes) } else {
                    #expect(throws: ProtocolError.self) { try FrameEncoder(role: role).encode(e) }
                }
            }
        }
    }

    @Test("WireCodec.decode on raw frames matches the streaming decoder")
    func rawFrames() throws {
        for e in Samples.all {
            let bytes = Samples.encode(e)
            let raw = RawFrame(
                type: e.message.frameType, flags: WireCodec.flags(for: e.message), stream: e.stream,
                payload: Array(bytes[12...]))
            #expect(raw.bytes == bytes)
            #expect(try WireCodec.decode(raw) == e)
        }
    }

    @Test("frameHead + WebP bytes equals the encoded FRAME")
    func zeroCopyFrameHead() throws {
        let webp = Samples.fakeWebP(count: 1000)
        let enc = FrameEncoder(role: .server)
        let head = try enc.frameHead(
            stream: 4, clipIndex: 2, frameIndex: 3, frameNumber: 35, webpHead: webp.prefix(12), webpCount: webp.count)
        let full = try enc.encode(.frame(VideoFrame(clipIndex: 2, frameIndex: 3, frameNumber: 35, webp: webp)), stream: 4)
        #expect(head.count == 28)
        #expect(head + webp == full)
        #expect(throws: ProtocolError.self) {
            try enc.frameHead(stream: 4, clipIndex: 0, frameIndex: 0, frameNumber: 0, webpHead: webp.prefix(12), webpCount: 999)
        }
        var small = enc
        small.maxPayload = 65536
        #expect(throws: ProtocolError.self) {
            try small.frameHead(stream: 1, clipIndex: 0, frameIndex: 0, frameNumber: 0, webpHead: webp.prefix(12), webpCount: 65536)
        }
    }

    @Test("unknown TLV fields are skipped, at every nesting level")
    func unknownFieldsSkipped() throws {
        // OPEN_SESSION with unknown tags before, between and inside nested messages.
        var w = TLVWriter()
        w.u64(999, 7)
        w.string(1, "fox")
        w.raw(63, [1, 2, 3])
        var chain = TLVWriter()
        chain.raw(77, [])
        var spec = TLVWriter()
        spec.string(1, "fnr")
        spec.u32(40, 1)
        var param = TLVWriter()
        param.string(1, "alpha")
        param.u8(9, 1)
        param.f64(2, 0.5)
        spec.nested(2, param)
        chain.nested(1, spec)
        w.nested(10, chain)
        w.raw(0xFFFF, [UInt8](repeating: 0, count: 100))
        let frame = RawFrame(type: .openSession, stream: 1, payload: w.bytes)
        let decoded = try WireCodec.decode(frame)
        #expect(
            decoded.message
                == .openSession(OpenSession(prompt: "fox", strategies: [StrategySpec(name: "fnr", params: [StrategyParam("alpha", .double(0.5))])])))
        // Messages without fields tolerate unknown fields too.
        var u = TLVWriter()
        u.u32(5, 5)
        #expect(try WireCodec.decode(RawFrame(type: .cancel, stream: 3, payload: u.bytes)).message == .cancel)
        #expect(try WireCodec.decode(RawFrame(type: .infoRequest, payload: u.bytes)).message == .infoRequest)
    }

    @Test("Limits without the optional tags 15 and 16 (a server from before them) still decode; with them they round-trip")
    func optionalLimits() throws {
        var old = ServerLimits.defaults
        old.maxConnections = nil
        old.frameTimeoutMs = nil
        let info = ServerInfo(serverName: "old", modelName: "m", limits: old)
        let bytes = try FrameEncoder(role: nil).encode(Envelope(message: .info(info)))
        #expect(bytes.count == 12 + 6 + 3 + 6 + 1 + 6 + 14 * 10 + 2 * 10 + 3 * 14, "no tag 15/16 written when absent")
        let decoded = try WireCodec.decode(RawFrame(type: .info, payload: Array(bytes[12...])))
        #expect(decoded.message == .info(info))
        var fresh = ServerLimits.defaults
        fresh.maxConnections = 7
        fresh.frameTimeoutMs = 0
        let withTags = ServerInfo(serverName: "new", modelName: "m", limits: fresh)
        let raw = try FrameEncoder(role: nil).encode(Envelope(message: .info(withTags)))
        #expect(try WireCodec.decode(RawFrame(type: .info, payload: Array(raw[12...]))).message == .info(withTags))
    }

    @Test("fields in any order decode the same")
    func fieldOrder() throws {
        var w = TLVWriter()
        w.u32(4, 25)
        w.u64(3, 42)
        w.string(1, "fox")
        let decoded = try WireCodec.decode(RawFrame(type: .openSession, stream: 1, payload: w.bytes))
        #expect(decoded.message == .openSession(OpenSession(prompt: "fox", seed: 42, steps: 25)))
    }

    @Test("version negotiation picks the highest common version")
    func negotiation() {
        #expect(VidrdProtocolVersion.negotiate(clientMin: 1, clientMax: 1) == 1)
        #expect(VidrdProtocolVersion.negotiate(clientMin: 1, clientMax: 9) == 1)
        #expect(VidrdProtocolVersion.negotiate(clientMin: 2, clientMax: 9) == nil)
        #expect(VidrdProtocolVersion.negotiate(clientMin: 2, clientMax: 5, supported: 1...3) == 3)
        #expect(VidrdProtocolVersion.negotiate(clientMin: 4, clientMax: 3, supported: 1...9) == nil)
        #expect(VidrdProtocolVersion.current == 1)
    }

    @Test("status codes have gRPC's numeric values")
    func statusCodes() {
        let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
            "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
            "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
        ]
        #expect(StatusCode.allCases.map(\.name) == names)
        #expect(StatusCode.allCases.map(\.rawValue) == Array(0...16))
    }

    @Test("ProtocolError.errorEnvelope is a fatal ERROR that encodes, even with a long message")
    func errorEnvelope() throws {
        let e = ProtocolError(.invalidArgument, .truncated, String(repeating: "é", count: 2000), stream: 3)
        let env = e.errorEnvelope
        guard case .error(let m) = env.message else { Issue.record("not an error"); return }
        #expect(m.fatal && m.code == .invalidArgument && env.stream == 3)
        #expect(m.message.utf8.count <= ProtocolLimits.maxMessageTextBytes)
        let bytes = try FrameEncoder(role: .server).encode(env)
        #expect(bytes[5] == FrameFlags.fatal)
    }
}
