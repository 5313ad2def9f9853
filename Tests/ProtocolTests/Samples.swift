import VidrdProtocol

/// Shared sample messages and helpers for the protocol tests.
enum Samples {
    /// A complete 1×1 lossless WebP (34 bytes); the same bytes as docs/PROTOCOL.md §11.3.
    static let webp1x1: [UInt8] = [
        0x52, 0x49, 0x46, 0x46, 0x1A, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x4C,
        0x0D, 0x00, 0x00, 0x00, 0x2F, 0x00, 0x00, 0x00, 0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xFE,
        0x07, 0x00,
    ]

    /// A syntactically valid WebP container of `count` bytes (count even, ≥ 12).
    static func fakeWebP(count: Int, fill: UInt8 = 0xAB) -> [UInt8] {
        let size = UInt32(count - 8)
        return [0x52, 0x49, 0x46, 0x46, UInt8(size & 0xFF), UInt8(size >> 8 & 0xFF), UInt8(size >> 16 & 0xFF),
                UInt8(size >> 24), 0x57, 0x45, 0x42, 0x50] + [UInt8](repeating: fill, count: count - 12)
    }

    static let fnr = StrategySpec(name: "fnr", params: [StrategyParam("alpha", .double(0.25))])

    static let strategyList = StrategyList(
        strategies: [
            StrategyDescriptor(
                name: "fnr", summary: "Frame-level noise reversion",
                params: [ParamDescriptor(name: "alpha", defaultValue: .double(0.5), summary: "mix", minimum: 0, maximum: 1)]),
            StrategyDescriptor(
                name: "pns", summary: "",
                params: [
                    ParamDescriptor(name: "frames", defaultValue: .int(4), minimum: 1, maximum: 16),
                    ParamDescriptor(name: "enabled", defaultValue: .bool(true)),
                    ParamDescriptor(name: "mode", defaultValue: .string("ar"), summary: "ar | iid"),
                ]),
            StrategyDescriptor(name: "dsg"),
        ],
        defaultChain: [fnr, StrategySpec(name: "pns", params: [StrategyParam("frames", .int(-3))])])

    static let info = ServerInfo(
        serverName: "vidrd-daemon 0.1.0", modelName: "tiny-ümlaut-模型", limits: .defaults, activeSessions: 3,
        activeConnections: 2, uptimeMs: 123_456_789, clipsGenerated: 1 << 40, framesSent: .max, queuedBytes: 4096)

    /// One envelope of every message type, several for the richer ones (every optional present and absent).
    static let all: [Envelope] = [
        Envelope(message: .hello(Hello())),
        Envelope(message: .hello(Hello(minVersion: 1, maxVersion: 7, token: [0, 255, 1], clientName: "py/1", maxPayload: 65536))),
        Envelope(message: .helloAck(HelloAck(version: 1, info: info, strategies: strategyList))),
        Envelope(message: .helloAck(HelloAck(version: 1, info: ServerInfo(serverName: "", modelName: ""), strategies: StrategyList()))),
        Envelope(message: .ping(nonce: 0)),
        Envelope(message: .ping(nonce: .max)),
        Envelope(message: .pong(nonce: 0x0102_0304_0506_0708)),
        Envelope(message: .close(Close())),
        Envelope(message: .close(Close(code: .unavailable, message: "server shutting down"))),
        Envelope(stream: 5, message: .error(ErrorMessage(code: .cancelled))),
        Envelope(message: .error(ErrorMessage(code: .unauthenticated, message: "bad token", fatal: true))),
        Envelope(stream: 9, message: .error(ErrorMessage(code: .resourceExhausted, message: "busy", fatal: true, retryAfterMs: 250))),
        Envelope(message: .infoRequest),
        Envelope(message: .info(info)),
        Envelope(message: .listStrategies),
        Envelope(message: .strategies(strategyList)),
        Envelope(message: .strategies(StrategyList())),
        Envelope(stream: 1, message: .openSession(OpenSession(prompt: "a red fox"))),
        Envelope(
            stream: 2,
            message: .openSession(
                OpenSession(
                    prompt: "a red fox 🦊 in the snow", negativePrompt: "blurry", seed: .max, steps: 50, guidance: 7.5,
                    framesPerClip: 16, width: 256, height: 128, fps: 7.5,
                    strategies: [fnr, StrategySpec(name: "dsg", params: [StrategyParam("on", .bool(false)), StrategyParam("s", .string(""))])],
                    webpQuality: 100, webpLossless: true, initialCredits: 65536, promptFrames: 4, emission: .new))),
        Envelope(stream: 4, message: .openSession(OpenSession(prompt: "y", promptFrames: 0, emission: .all))),
        Envelope(stream: 5, message: .openSession(resuming)),
        Envelope(stream: 3, message: .openSession(OpenSession(prompt: "x", strategies: []))),
        Envelope(
            stream: .max,
            message: .sessionOpened(
                SessionOpened(
                    seed: 42, steps: 25, guidance: 9, framesPerClip: 16, width: 64, height: 64, fps: 8,
                    strategies: [fnr], webpQuality: 80, webpLossless: false, promptTokens: 7, promptFrames: 1024,
                    emission: .all))),
        Envelope(
            stream: 1,
            message: .sessionOpened(
                SessionOpened(
                    seed: 0, steps: 1, guidance: 0, framesPerClip: 1, width: 1, height: 1, fps: 240, strategies: [],
                    webpQuality: 0, webpLossless: true))),
        Envelope(stream: 2, message: .sessionOpened(resumableOpened)),
        Envelope(stream: 1, message: .pull(credits: 1)),
        Envelope(stream: 1, message: .pull(credits: 65536)),
        Envelope(stream: 1, message: .cancel),
        Envelope(stream: 1, message: .clipStart(ClipStart(clipIndex: 0, frameCount: 16, firstFrameNumber: 0, creditsRemaining: 1))),
        Envelope(stream: 1, message: .progress(Progress(clipIndex: 0, phase: .denoise, step: 0, total: 25))),
        Envelope(stream: 1, message: .progress(Progress(clipIndex: 0, phase: .encode, step: 16, total: 16))),
        Envelope(stream: 1, message: .frame(VideoFrame(clipIndex: 3, frameIndex: 5, frameNumber: 197, webp: webp1x1))),
        Envelope(stream: 7, message: .frame(VideoFrame(clipIndex: .max, frameIndex: 1023, frameNumber: .max, webp: fakeWebP(count: 5000)))),
        Envelope(
            stream: 1,
            message: .clipEnd(
                ClipEnd(
                    clipIndex: 0, firstFrameNumber: 0, frameCount: 16, queueMicros: 1, denoiseMicros: 2_000_000,
                    decodeMicros: 300_000, encodeMicros: 40_000, totalMicros: 2_340_001))),
        Envelope(stream: 3, message: .clipEnd(clipEndWithContinuation)),
    ]

    /// The resumable-session fields (§8.8): every one set, the noise generator (tag 17) and the
    /// scheduler (tag 20).
    static var resuming: OpenSession {
        var m = OpenSession(prompt: "z", seed: 3)
        m.noiseGenerator = .torchReuseAndDiffuse
        m.scheduler = .dpmSolver
        m.weight = 7
        m.resumable = true
        m.continuation = [0x56, 0x52, 0x44, 0x43] + [UInt8](repeating: 0xA5, count: 300)
        return m
    }

    static var resumableOpened: SessionOpened {
        var m = SessionOpened(
            seed: 1, steps: 2, guidance: 3, framesPerClip: 4, width: 8, height: 8, fps: 8, strategies: [], webpQuality: 80,
            webpLossless: false)
        m.resumable = true
        m.continuation = [1, 2, 3]
        m.scheduler = .euler
        m.weight = 1000
        return m
    }

    static var clipEndWithContinuation: ClipEnd {
        var m = ClipEnd(clipIndex: 9, firstFrameNumber: 144, frameCount: 16)
        m.continuation = Array(0...255).map(UInt8.init)
        return m
    }

    /// Messages the server sends (decoded by a client), and those the client sends.
    static var serverSent: [Envelope] { all.filter { $0.message.frameType.sender != .client } }
    static var clientSent: [Envelope] { all.filter { $0.message.frameType.sender != .server } }

    static func encode(_ e: Envelope) -> [UInt8] {
        do { return try FrameEncoder(role: nil).encode(e) } catch { fatalError("sample does not encode: \(error)") }
    }

    /// Preface followed by every envelope's frame.
    static func stream(_ envelopes: [Envelope]) -> [UInt8] {
        ConnectionPreface.bytes + envelopes.flatMap(encode)
    }

    /// Feeds `bytes` in chunks of the given sizes (the last chunk takes the rest) and drains after
    /// each, checking the buffer bound every time.
    static func decodeAll(
        _ bytes: [UInt8], role: Role?, chunks: [Int], maxPayload: Int = ProtocolLimits.defaultMaxPayload
    ) throws(ProtocolError) -> [Envelope] {
        var decoder = FrameDecoder(role: role, maxPayload: maxPayload)
        var out: [Envelope] = []
        var i = 0
        var c = 0
        while i < bytes.count {
            let n = c < chunks.count ? max(1, chunks[c]) : bytes.count - i
            c += 1
            decoder.append(bytes[i..<min(bytes.count, i + n)])
            i += n
            while let e = try decoder.nextMessage() { out.append(e) }
            precondition(decoder.bufferedByteCount < ProtocolLimits.headerSize + maxPayload)
        }
        return out
    }
}

/// Deterministic generator for reproducible randomized tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
