import Testing
import VidrdProtocol

@Suite("Incremental decoder")
struct IncrementalDecoderTests {
    static let toClient = Samples.stream(Samples.serverSent)
    static let toServer = Samples.stream(Samples.clientSent)

    @Test("byte-by-byte feeding yields the same messages")
    func byteByByte() throws {
        let a = try Samples.decodeAll(Self.toClient, role: .client, chunks: Array(repeating: 1, count: Self.toClient.count))
        #expect(a == Samples.serverSent)
        let b = try Samples.decodeAll(Self.toServer, role: .server, chunks: Array(repeating: 1, count: Self.toServer.count))
        #expect(b == Samples.clientSent)
    }

    @Test("random split points yield the same messages", arguments: 1...25)
    func randomSplits(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        for (bytes, role, expected) in [
            (Self.toClient, Role.client, Samples.serverSent), (Self.toServer, Role.server, Samples.clientSent),
        ] {
            var chunks: [Int] = []
            var total = 0
            while total < bytes.count {
                // Mostly small chunks, sometimes large ones spanning several frames.
                let n = Int.random(in: 0..<8, using: &rng) == 0 ? Int.random(in: 1...4000, using: &rng) : Int.random(in: 1...40, using: &rng)
                chunks.append(n)
                total += n
            }
            #expect(try Samples.decodeAll(bytes, role: role, chunks: chunks) == expected)
        }
    }

    @Test("the whole stream in one append yields every message in order")
    func oneAppend() throws {
        var d = FrameDecoder(role: .client)
        Self.toClient.withUnsafeBytes { d.append($0) }
        var out: [Envelope] = []
        while let e = try d.nextMessage() { out.append(e) }
        #expect(out == Samples.serverSent)
        #expect(d.bufferedByteCount == 0)
        #expect(d.prefaceReceived)
    }

    @Test("nextFrame returns nil for every proper prefix of a frame")
    func nilUntilComplete() throws {
        let frame = Samples.encode(Samples.all.first { if case .helloAck = $0.message { true } else { false } }!)
        var d = FrameDecoder(role: .client, expectPreface: false)
        for (i, b) in frame.enumerated() {
            d.append([b])
            if i < frame.count - 1 {
                #expect(try d.nextFrame() == nil)
                #expect(d.bufferedByteCount == i + 1)
            }
        }
        let raw = try #require(try d.nextFrame())
        #expect(raw.type == .helloAck && raw.payload.count == frame.count - 12)
        #expect(try d.nextFrame() == nil)
        #expect(d.bufferedByteCount == 0)
    }

    @Test("buffering stays below one header plus one maximum payload")
    func boundedBuffering() throws {
        // Large frames against a small limit, fed in random chunks.
        let maxPayload = 70_000
        let frames = (0..<12).map { i in
            Envelope(stream: 1, message: .frame(VideoFrame(clipIndex: 0, frameIndex: UInt32(i), frameNumber: UInt64(i), webp: Samples.fakeWebP(count: 69_984 - 2 * i))))
        }
        let bytes = Samples.stream(frames)
        var rng = SplitMix64(seed: 99)
        let chunks = (0..<2000).map { _ in Int.random(in: 1...9000, using: &rng) }
        // decodeAll checks the bound after every drain.
        #expect(try Samples.decodeAll(bytes, role: .client, chunks: chunks, maxPayload: maxPayload) == frames)
    }

    @Test("an oversized header fails before any payload arrives")
    func oversizedHeaderEarly() {
        var d = FrameDecoder(role: .client, maxPayload: 65536, expectPreface: false)
        d.append(FrameHeader(length: 65537, type: .frame, stream: 1).bytes)
        #expect(throws: ProtocolError(.resourceExhausted, .frameTooLarge, "FRAME payload of 65537 bytes exceeds the limit of 65536", stream: 1)) {
            try d.nextFrame()
        }
        #expect(d.bufferedByteCount == 0)
    }

    @Test("preface split across appends, and decoders without a preface")
    func preface() throws {
        var d = FrameDecoder(role: .server)
        d.append(ConnectionPreface.bytes.prefix(3))
        #expect(try d.nextMessage() == nil)
        #expect(!d.prefaceReceived)
        d.append(ConnectionPreface.bytes.dropFirst(3))
        #expect(try d.nextMessage() == nil)
        #expect(d.prefaceReceived)
        d.append(Samples.encode(Envelope(message: .ping(nonce: 1))))
        #expect(try d.nextMessage() == Envelope(message: .ping(nonce: 1)))

        var n = FrameDecoder(role: .server, expectPreface: false)
        n.append(Samples.encode(Envelope(message: .ping(nonce: 2))))
        #expect(try n.nextMessage() == Envelope(message: .ping(nonce: 2)))
    }

    @Test("maxPayload can be changed after the handshake")
    func changeLimit() throws {
        var d = FrameDecoder(role: .client, maxPayload: 65536, expectPreface: false)
        let big = Envelope(stream: 1, message: .frame(VideoFrame(clipIndex: 0, frameIndex: 0, frameNumber: 0, webp: Samples.fakeWebP(count: 100_000))))
        d.maxPayload = 200_000
        d.append(Samples.encode(big))
        #expect(try d.nextMessage() == big)
        d.maxPayload = .max
        #expect(d.maxPayload == ProtocolLimits.maxMaxPayload)
    }
}
