// Payload encoding and decoding for every message (docs/PROTOCOL.md §6).

/// Stateless conversion between messages and frames. `FrameEncoder` and `FrameDecoder` build on it.
public enum WireCodec {
    /// Checks a frame header against the rules of docs/PROTOCOL.md §3.2, in the documented order:
    /// direction, flags, stream, length. (The reserved bits and the type byte are checked by the
    /// decoder before a `FrameType` exists.) `role` is the side that receives the frame.
    public static func validateHeader(
        type: FrameType, flags: UInt8, stream: UInt32, length: Int, receiver role: Role?, maxPayload: Int
    ) throws(ProtocolError) {
        if let role, !role.mayReceive(type) {
            throw ProtocolError(
                .invalidArgument, .wrongDirection, "\(type.name) may not be sent to a \(role == .server ? "server" : "client")",
                stream: stream)
        }
        guard flags & ~type.allowedFlags == 0 else {
            throw ProtocolError(
                .invalidArgument, .invalidFlags, "\(type.name) has undefined flag bits 0x\(hex(flags & ~type.allowedFlags))",
                stream: stream)
        }
        switch type.streamRule {
        case .connection where stream != 0:
            throw ProtocolError(.invalidArgument, .invalidStream, "\(type.name) must use stream 0, uses \(stream)", stream: stream)
        case .session where stream == 0:
            throw ProtocolError(.invalidArgument, .invalidStream, "\(type.name) needs a session id, uses stream 0", stream: stream)
        case .either where stream == 0 && flags & FrameFlags.fatal == 0:
            throw ProtocolError(.invalidArgument, .invalidStream, "a non-fatal ERROR needs a session id, uses stream 0", stream: stream)
        default: break
        }
        guard length <= maxPayload else {
            throw ProtocolError(
                .resourceExhausted, .frameTooLarge, "\(type.name) payload of \(length) bytes exceeds the limit of \(maxPayload)",
                stream: stream)
        }
    }

    /// Parses and validates a frame's payload. Header rules are checked too (without a role or size limit).
    public static func decode(_ frame: RawFrame) throws(ProtocolError) -> Envelope {
        try validateHeader(
            type: frame.type, flags: frame.flags, stream: frame.stream, length: frame.payload.count, receiver: nil,
            maxPayload: .max)
        do {
            let message = try decodePayload(frame.type, flags: frame.flags, frame.payload)
            return Envelope(stream: frame.stream, message: message)
        } catch {
            var e = error
            e.stream = frame.stream
            throw e
        }
    }

    /// The payload bytes of `message`, without validation (see `FrameEncoder` for the checked path).
    public static func encodePayload(_ message: Message) -> [UInt8] {
        var w = TLVWriter()
        switch message {
        case .hello(let m):
            w.u16(1, m.minVersion)
            w.u16(2, m.maxVersion)
            if let t = m.token { w.raw(3, t) }
            if let n = m.clientName { w.string(4, n) }
            if let p = m.maxPayload { w.u32(5, p) }
        case .helloAck(let m):
            w.u16(1, m.version)
            w.nested(2, writeServerInfo(m.info))
            w.nested(3, writeStrategyList(m.strategies))
        case .ping(let nonce), .pong(let nonce):
            w.u64(1, nonce)
        case .close(let m):
            w.u32(1, m.code.rawValue)
            if !m.message.isEmpty { w.string(2, m.message) }
        case .error(let m):
            w.u32(1, m.code.rawValue)
            if !m.message.isEmpty { w.string(2, m.message) }
            if let r = m.retryAfterMs { w.u32(3, r) }
        case .infoRequest, .listStrategies, .cancel:
            break
        case .info(let m):
            w = writeServerInfo(m)
        case .strategies(let m):
            w = writeStrategyList(m)
        case .openSession(let m):
            w.string(1, m.prompt)
            if let v = m.negativePrompt { w.string(2, v) }
            if let v = m.seed { w.u64(3, v) }
            if let v = m.steps { w.u32(4, v) }
            if let v = m.guidance { w.f64(5, v) }
            if let v = m.framesPerClip { w.u32(6, v) }
            if let v = m.width { w.u32(7, v) }
            if let v = m.height { w.u32(8, v) }
            if let v = m.fps { w.f64(9, v) }
            if let v = m.strategies { w.nested(10, writeChain(v)) }
            if let v = m.webpQuality { w.u8(11, v) }
            if let v = m.webpLossless { w.bool(12, v) }
            if let v = m.initialCredits { w.u32(13, v) }
            if let v = m.promptFrames { w.u32(15, v) }
            if let v = m.emission { w.u8(16, v.rawValue) }
            if let v = m.noiseGenerator { w.u8(17, v.rawValue) }
            if let v = m.resumable { w.bool(18, v) }
            if let v = m.continuation { w.raw(19, v) }
            if let v = m.scheduler { w.u8(20, v.rawValue) }
            if let v = m.weight { w.u32(21, v) }
        case .sessionOpened(let m):
            w.u64(3, m.seed)
            w.u32(4, m.steps)
            w.f64(5, m.guidance)
            w.u32(6, m.framesPerClip)
            w.u32(7, m.width)
            w.u32(8, m.height)
            w.f64(9, m.fps)
            w.nested(10, writeChain(m.strategies))
            w.u8(11, m.webpQuality)
            w.bool(12, m.webpLossless)
            if let v = m.promptTokens { w.u32(14, v) }
            if let v = m.promptFrames { w.u32(15, v) }
            if let v = m.emission { w.u8(16, v.rawValue) }
            if let v = m.resumable { w.bool(17, v) }
            if let v = m.continuation { w.raw(18, v) }
            if let v = m.scheduler { w.u8(20, v.rawValue) }
            if let v = m.weight { w.u32(21, v) }
        case .pull(let credits):
            w.u32(1, credits)
        case .clipStart(let m):
            w.u32(1, m.clipIndex)
            w.u32(2, m.frameCount)
            w.u64(3, m.firstFrameNumber)
            w.u32(4, m.creditsRemaining)
        case .progress(let m):
            w.u32(1, m.clipIndex)
            w.u8(2, m.phase.rawValue)
            w.u32(3, m.step)
            w.u32(4, m.total)
        case .frame(let m):
            var out = [UInt8]()
            out.reserveCapacity(16 + m.webp.count)
            appendBigEndian(m.clipIndex, to: &out)
            appendBigEndian(m.frameIndex, to: &out)
            appendBigEndian(m.frameNumber, to: &out)
            out.append(contentsOf: m.webp)
            return out
        case .clipEnd(let m):
            w.u32(1, m.clipIndex)
            w.u64(2, m.firstFrameNumber)
            w.u32(3, m.frameCount)
            w.u64(4, m.queueMicros)
            w.u64(5, m.denoiseMicros)
            w.u64(6, m.decodeMicros)
            w.u64(7, m.encodeMicros)
            w.u64(8, m.totalMicros)
            if let v = m.continuation { w.raw(9, v) }
        }
        return w.bytes
    }

    /// Flags the header of `message` carries.
    public static func flags(for message: Message) -> UInt8 {
        if case .error(let e) = message, e.fatal { return FrameFlags.fatal }
        return 0
    }

    // MARK: writers for nested messages

    static func writeServerInfo(_ m: ServerInfo) -> TLVWriter {
        var w = TLVWriter()
        w.string(1, m.serverName)
        w.string(2, m.modelName)
        var l = TLVWriter()
        let x = m.limits
        for (tag, value) in [
            x.maxPayload, x.maxSessionsPerConnection, x.maxSessions, x.maxPromptBytes, x.maxSteps, x.maxWidth,
            x.maxHeight, x.dimensionMultiple, x.maxFramesPerClip, x.maxCredits, x.maxChainLength,
            x.keepaliveIntervalMs, x.idleTimeoutMs, x.handshakeTimeoutMs,
        ].enumerated() {
            l.u32(UInt16(tag + 1), value)
        }
        if let v = x.maxConnections { l.u32(15, v) }
        if let v = x.frameTimeoutMs { l.u32(16, v) }
        if let v = x.maxSessionWeight { l.u32(17, v) }
        w.nested(3, l)
        w.u32(4, m.activeSessions)
        w.u32(5, m.activeConnections)
        w.u64(6, m.uptimeMs)
        w.u64(7, m.clipsGenerated)
        w.u64(8, m.framesSent)
        if m.queuedBytes != 0 { w.u64(9, m.queuedBytes) }
        return w
    }

    static func writeStrategyList(_ m: StrategyList) -> TLVWriter {
        var w = TLVWriter()
        for d in m.strategies {
            var s = TLVWriter()
            s.string(1, d.name)
            if !d.summary.isEmpty { s.string(2, d.summary) }
            for p in d.params {
                var pw = TLVWriter()
                pw.string(1, p.name)
                writeValue(p.defaultValue, into: &pw)
                if !p.summary.isEmpty { pw.string(6, p.summary) }
                if let v = p.minimum { pw.f64(7, v) }
                if let v = p.maximum { pw.f64(8, v) }
                s.nested(3, pw)
            }
            w.nested(1, s)
        }
        if !m.defaultChain.isEmpty { w.nested(2, writeChain(m.defaultChain)) }
        return w
    }

    static func writeChain(_ chain: [StrategySpec]) -> TLVWriter {
        var w = TLVWriter()
        for spec in chain {
            var s = TLVWriter()
            s.string(1, spec.name)
            for p in spec.params {
                var pw = TLVWriter()
                pw.string(1, p.name)
                writeValue(p.value, into: &pw)
                s.nested(2, pw)
            }
            w.nested(1, s)
        }
        return w
    }

    static func writeValue(_ v: ParamValue, into w: inout TLVWriter) {
        switch v {
        case .double(let d): w.f64(2, d)
        case .int(let i): w.i64(3, i)
        case .bool(let b): w.bool(4, b)
        case .string(let s): w.string(5, s)
        }
    }

    // MARK: decoding

    static func decodePayload(_ type: FrameType, flags: UInt8, _ p: [UInt8]) throws(ProtocolError) -> Message {
        var r = TLVReader(p, 0..<p.count, context: type.name)
        switch type {
        case .hello:
            var minV: UInt16?, maxV: UInt16?, token: [UInt8]?, name: String?, maxPayload: UInt32?
            while let f = try r.next() {
                switch f.tag {
                case 1: try r.once(f, "min_version"); minV = try r.u16(f, "min_version")
                case 2: try r.once(f, "max_version"); maxV = try r.u16(f, "max_version")
                case 3: try r.once(f, "token"); token = try r.bytes(f, "token", max: ProtocolLimits.maxTokenBytes)
                case 4: try r.once(f, "client_name"); name = try r.string(f, "client_name", max: ProtocolLimits.maxClientNameBytes)
                case 5: try r.once(f, "max_payload"); maxPayload = try r.u32(f, "max_payload", in: payloadLimitRange)
                default: continue
                }
            }
            guard let minV else { throw r.missing(1, "min_version") }
            guard let maxV else { throw r.missing(2, "max_version") }
            guard minV >= 1, minV <= maxV else {
                throw r.fail(.valueOutOfRange, "version range \(minV)...\(maxV) is empty or starts at 0")
            }
            return .hello(Hello(minVersion: minV, maxVersion: maxV, token: token, clientName: name, maxPayload: maxPayload))

        case .helloAck:
            var version: UInt16?, info: ServerInfo?, list: StrategyList?
            while let f = try r.next() {
                switch f.tag {
                case 1: try r.once(f, "version"); version = try r.u16(f, "version")
                case 2:
                    try r.once(f, "info")
                    var n = r.nested(f, "info")
                    info = try readServerInfo(&n)
                case 3:
                    try r.once(f, "strategies")
                    var n = r.nested(f, "strategies")
                    list = try readStrategyList(&n)
                default: continue
                }
            }
            guard let version else { throw r.missing(1, "version") }
            guard version >= 1 else { throw r.fail(.valueOutOfRange, "version must be at least 1") }
            guard let info else { throw r.missing(2, "info") }
            guard let list else { throw r.missing(3, "strategies") }
            return .helloAck(HelloAck(version: version, info: info, strategies: list))

        case .ping, .pong:
            var nonce: UInt64?
            while let f = try r.next() {
                if f.tag == 1 { try r.once(f, "nonce"); nonce = try r.u64(f, "nonce") }
            }
            guard let nonce else { throw r.missing(1, "nonce") }
            return type == .ping ? .ping(nonce: nonce) : .pong(nonce: nonce)

        case .close:
            var code: StatusCode?, text = ""
            while let f = try r.next() {
                switch f.tag {
                case 1: try r.once(f, "code"); code = try readStatus(r, f, allowOK: true)
                case 2: try r.once(f, "message"); text = try r.string(f, "message", max: ProtocolLimits.maxMessageTextBytes)
                default: continue
                }
            }
            guard let code else { throw r.missing(1, "code") }
            return .close(Close(code: code, message: text))

        case .error:
            var code: StatusCode?, text = "", retry: UInt32?
            while let f = try r.next() {
                switch f.tag {
                case 1: try r.once(f, "code"); code = try readStatus(r, f, allowOK: false)
                case 2: try r.once(f, "message"); text = try r.string(f, "message", max: ProtocolLimits.maxMessageTextBytes)
                case 3: try r.once(f, "retry_after_ms"); retry = try r.u32(f, "retry_after_ms")
                default: continue
                }
            }
            guard let code else { throw r.missing(1, "code") }
            return .error(ErrorMessage(code: code, message: text, fatal: flags & FrameFlags.fatal != 0, retryAfterMs: retry))

        case .infoRequest, .listStrategies, .cancel:
            while try r.next() != nil {}
            return type == .infoRequest ? .infoRequest : type == .listStrategies ? .listStrategies : .cancel

        case .info:
            return .info(try readServerInfo(&r))

        case .strategies:
            return .strategies(try readStrategyList(&r))

        case .openSession:
            var prompt: String?
            var m = OpenSession(prompt: "")
            while let f = try r.next() {
                switch f.tag {
                case 1:
                    try r.once(f, "prompt")
                    prompt = try r.string(f, "prompt", min: 1, max: ProtocolLimits.maxPromptBytes)
                case 2:
                    try r.once(f, "negative_prompt")
                    m.negativePrompt = try r.string(f, "negative_prompt", max: ProtocolLimits.maxPromptBytes)
                case 3...12, 15...17, 20, 21: try readSessionParameter(&r, f, into: &m)
                case 13:
                    try r.once(f, "initial_credits")
                    m.initialCredits = try r.u32(f, "initial_credits", in: 0...ProtocolLimits.maxCredits)
                case 18: try r.once(f, "resumable"); m.resumable = try r.bool(f, "resumable")
                case 19:
                    try r.once(f, "continuation")
                    m.continuation = try r.bytes(f, "continuation", min: 1, max: ProtocolLimits.maxContinuationBytes)
                default: continue
                }
            }
            guard let prompt else { throw r.missing(1, "prompt") }
            m.prompt = prompt
            return .openSession(m)

        case .sessionOpened:
            var m = OpenSession(prompt: "")
            var tokens: UInt32?
            var resumable: Bool?
            var continuation: [UInt8]?
            while let f = try r.next() {
                switch f.tag {
                case 3...12, 15, 16, 20, 21: try readSessionParameter(&r, f, into: &m)
                case 14: try r.once(f, "prompt_tokens"); tokens = try r.u32(f, "prompt_tokens")
                case 17: try r.once(f, "resumable"); resumable = try r.bool(f, "resumable")
                case 18:
                    try r.once(f, "continuation")
                    continuation = try r.bytes(f, "continuation", min: 1, max: ProtocolLimits.maxContinuationBytes)
                default: continue
                }
            }
            guard let seed = m.seed else { throw r.missing(3, "seed") }
            guard let steps = m.steps else { throw r.missing(4, "steps") }
            guard let guidance = m.guidance else { throw r.missing(5, "guidance") }
            guard let fpc = m.framesPerClip else { throw r.missing(6, "frames_per_clip") }
            guard let width = m.width else { throw r.missing(7, "width") }
            guard let height = m.height else { throw r.missing(8, "height") }
            guard let fps = m.fps else { throw r.missing(9, "fps") }
            guard let chain = m.strategies else { throw r.missing(10, "chain") }
            guard let quality = m.webpQuality else { throw r.missing(11, "webp_quality") }
            guard let lossless = m.webpLossless else { throw r.missing(12, "webp_lossless") }
            var opened = SessionOpened(
                seed: seed, steps: steps, guidance: guidance, framesPerClip: fpc, width: width, height: height,
                fps: fps, strategies: chain, webpQuality: quality, webpLossless: lossless, promptTokens: tokens,
                promptFrames: m.promptFrames, emission: m.emission)
            opened.resumable = resumable
            opened.continuation = continuation
            opened.scheduler = m.scheduler
            opened.weight = m.weight
            return .sessionOpened(opened)

        case .pull:
            var credits: UInt32?
            while let f = try r.next() {
                if f.tag == 1 { try r.once(f, "credits"); credits = try r.u32(f, "credits", in: 1...ProtocolLimits.maxCredits) }
            }
            guard let credits else { throw r.missing(1, "credits") }
            return .pull(credits: credits)

        case .clipStart:
            var clip: UInt32?, count: UInt32?, first: UInt64?, credits: UInt32?
            while let f = try r.next() {
                switch f.tag {
                case 1: try r.once(f, "clip_index"); clip = try r.u32(f, "clip_index")
                case 2: try r.once(f, "frame_count"); count = try r.u32(f, "frame_count", in: 1...ProtocolLimits.maxFramesPerClip)
                case 3: try r.once(f, "first_frame_number"); first = try r.u64(f, "first_frame_number")
                case 4:
                    try r.once(f, "credits_remaining")
                    credits = try r.u32(f, "credits_remaining", in: 0...ProtocolLimits.maxCredits)
                default: continue
                }
            }
            guard let clip else { throw r.missing(1, "clip_index") }
            guard let count else { throw r.missing(2, "frame_count") }
            guard let first else { throw r.missing(3, "first_frame_number") }
            guard let credits else { throw r.missing(4, "credits_remaining") }
            return .clipStart(ClipStart(clipIndex: clip, frameCount: count, firstFrameNumber: first, creditsRemaining: credits))

        case .progress:
            var clip: UInt32?, phase: Progress.Phase?, step: UInt32?, total: UInt32?
            while let f = try r.next() {
                switch f.tag {
                case 1: try r.once(f, "clip_index"); clip = try r.u32(f, "clip_index")
                case 2:
                    try r.once(f, "phase")
                    let v = try r.u8(f, "phase")
                    guard let p = Progress.Phase(rawValue: v) else {
                        throw r.fail(.valueOutOfRange, "field phase = \(v) is outside 1...3")
                    }
                    phase = p
                case 3: try r.once(f, "step"); step = try r.u32(f, "step")
                case 4: try r.once(f, "total"); total = try r.u32(f, "total", in: 1...UInt32.max)
                default: continue
                }
            }
            guard let clip else { throw r.missing(1, "clip_index") }
            guard let phase else { throw r.missing(2, "phase") }
            guard let step else { throw r.missing(3, "step") }
            guard let total else { throw r.missing(4, "total") }
            guard step <= total else { throw r.fail(.valueOutOfRange, "step \(step) exceeds total \(total)") }
            return .progress(Progress(clipIndex: clip, phase: phase, step: step, total: total))

        case .frame:
            guard p.count >= 16 else {
                throw ProtocolError(.invalidArgument, .truncated, "FRAME: payload of \(p.count) bytes is shorter than the 16-byte prefix")
            }
            let clip = readBigEndian(UInt32.self, p, 0)
            let index = readBigEndian(UInt32.self, p, 4)
            let number = readBigEndian(UInt64.self, p, 8)
            try validateFramePrefix(frameIndex: index)
            try validateWebP(p, from: 16)
            return .frame(VideoFrame(clipIndex: clip, frameIndex: index, frameNumber: number, webp: Array(p[16...])))

        case .clipEnd:
            var clip: UInt32?, first: UInt64?, count: UInt32?
            var t = [UInt64?](repeating: nil, count: 5)
            var continuation: [UInt8]?
            let names = ["queue_us", "denoise_us", "decode_us", "encode_us", "total_us"]
            while let f = try r.next() {
                switch f.tag {
                case 1: try r.once(f, "clip_index"); clip = try r.u32(f, "clip_index")
                case 2: try r.once(f, "first_frame_number"); first = try r.u64(f, "first_frame_number")
                case 3: try r.once(f, "frame_count"); count = try r.u32(f, "frame_count", in: 1...ProtocolLimits.maxFramesPerClip)
                case 4...8:
                    let name = names[Int(f.tag) - 4]
                    try r.once(f, name)
                    t[Int(f.tag) - 4] = try r.u64(f, name)
                case 9:
                    try r.once(f, "continuation")
                    continuation = try r.bytes(f, "continuation", min: 1, max: ProtocolLimits.maxContinuationBytes)
                default: continue
                }
            }
            guard let clip else { throw r.missing(1, "clip_index") }
            guard let first else { throw r.missing(2, "first_frame_number") }
            guard let count else { throw r.missing(3, "frame_count") }
            for i in 0..<5 where t[i] == nil { throw r.missing(UInt16(i + 4), names[i]) }
            var end = ClipEnd(
                clipIndex: clip, firstFrameNumber: first, frameCount: count, queueMicros: t[0]!,
                denoiseMicros: t[1]!, decodeMicros: t[2]!, encodeMicros: t[3]!, totalMicros: t[4]!)
            end.continuation = continuation
            return .clipEnd(end)
        }
    }

    static let payloadLimitRange = UInt32(ProtocolLimits.minMaxPayload)...UInt32(ProtocolLimits.maxMaxPayload)

    static func validateFramePrefix(frameIndex: UInt32) throws(ProtocolError) {
        guard frameIndex < ProtocolLimits.maxFramesPerClip else {
            throw ProtocolError(
                .invalidArgument, .valueOutOfRange, "FRAME: frame_index \(frameIndex) is not below \(ProtocolLimits.maxFramesPerClip)")
        }
    }

    /// A WebP file is `"RIFF" | size u32 little-endian | "WEBP" | ...` with `size + 8` bytes in all.
    static func validateWebP(_ p: [UInt8], from start: Int) throws(ProtocolError) {
        try validateWebP(head: p[start..<min(p.count, start + 12)], count: p.count - start)
    }

    /// Checks a WebP file of `count` bytes from its first (up to) 12 bytes `head`.
    static func validateWebP<C: Collection<UInt8>>(head: C, count n: Int) throws(ProtocolError) {
        let h = Array(head.prefix(12))
        guard n >= 12, h.count == 12 else {
            throw ProtocolError(.invalidArgument, .invalidWebP, "FRAME: \(n) bytes are too few for a WebP file")
        }
        guard h[0..<4].elementsEqual([0x52, 0x49, 0x46, 0x46]), h[8..<12].elementsEqual([0x57, 0x45, 0x42, 0x50]) else {
            throw ProtocolError(.invalidArgument, .invalidWebP, "FRAME: data does not start with a RIFF/WEBP header")
        }
        let size = Int(h[4]) | Int(h[5]) << 8 | Int(h[6]) << 16 | Int(h[7]) << 24
        if size + 8 > n {
            throw ProtocolError(.invalidArgument, .invalidWebP, "FRAME: WebP declares \(size + 8) bytes, only \(n) present")
        }
        if size + 8 < n {
            throw ProtocolError(.invalidArgument, .trailingBytes, "FRAME: \(n - size - 8) byte(s) follow the WebP file")
        }
    }

    static func readStatus(_ r: TLVReader, _ f: TLVField, allowOK: Bool) throws(ProtocolError) -> StatusCode {
        let v = try r.u32(f, "code")
        guard let code = StatusCode(rawValue: v), allowOK || code != .ok else {
            throw r.fail(.valueOutOfRange, "field code = \(v) is not a status code\(allowOK ? "" : " other than OK")")
        }
        return code
    }

    /// A u8 field (once) holding one of an enumeration's raw values, which run 1...n.
    static func readChoice<E: RawRepresentable & CaseIterable>(_ r: inout TLVReader, _ f: TLVField, _ name: String) throws(ProtocolError) -> E
    where E.RawValue == UInt8 {
        try r.once(f, name)
        let v = try r.u8(f, name)
        guard let e = E(rawValue: v) else {
            throw r.fail(.valueOutOfRange, "field \(name) = \(v) is outside 1...\(E.allCases.count)")
        }
        return e
    }

    /// Tags 3...12, 15...17, 20 and 21, shared by OPEN_SESSION and SESSION_OPENED, with the same
    /// meaning and ranges.
    static func readSessionParameter(_ r: inout TLVReader, _ f: TLVField, into m: inout OpenSession) throws(ProtocolError) {
        switch f.tag {
        case 3: try r.once(f, "seed"); m.seed = try r.u64(f, "seed")
        case 4: try r.once(f, "steps"); m.steps = try r.u32(f, "steps", in: 1...ProtocolLimits.maxSteps)
        case 5:
            try r.once(f, "guidance")
            let g = try r.f64(f, "guidance")
            guard g >= 0, g <= ProtocolLimits.maxGuidance else {
                throw r.fail(.valueOutOfRange, "field guidance = \(g) is outside 0...\(ProtocolLimits.maxGuidance)")
            }
            m.guidance = g
        case 6:
            try r.once(f, "frames_per_clip")
            m.framesPerClip = try r.u32(f, "frames_per_clip", in: 1...ProtocolLimits.maxFramesPerClip)
        case 7: try r.once(f, "width"); m.width = try r.u32(f, "width", in: 1...ProtocolLimits.maxDimension)
        case 8: try r.once(f, "height"); m.height = try r.u32(f, "height", in: 1...ProtocolLimits.maxDimension)
        case 9:
            try r.once(f, "fps")
            let v = try r.f64(f, "fps")
            guard v > 0, v <= ProtocolLimits.maxFPS else {
                throw r.fail(.valueOutOfRange, "field fps = \(v) must be > 0 and ≤ \(ProtocolLimits.maxFPS)")
            }
            m.fps = v
        case 10:
            try r.once(f, "chain")
            var n = r.nested(f, "chain")
            m.strategies = try readChain(&n)
        case 11:
            try r.once(f, "webp_quality")
            let q = try r.u8(f, "webp_quality")
            guard q <= 100 else { throw r.fail(.valueOutOfRange, "field webp_quality = \(q) is outside 0...100") }
            m.webpQuality = q
        case 12: try r.once(f, "webp_lossless"); m.webpLossless = try r.bool(f, "webp_lossless")
        case 15:
            try r.once(f, "prompt_frames")
            m.promptFrames = try r.u32(f, "prompt_frames", in: 0...ProtocolLimits.maxFramesPerClip)
        case 16:
            m.emission = try readChoice(&r, f, "emission")
        case 17:
            m.noiseGenerator = try readChoice(&r, f, "noise_generator")
        case 20:
            m.scheduler = try readChoice(&r, f, "scheduler")
        case 21:
            try r.once(f, "weight")
            m.weight = try r.u32(f, "weight", in: 1...ProtocolLimits.maxSessionWeight)
        default: break
        }
    }

    static func readServerInfo(_ r: inout TLVReader) throws(ProtocolError) -> ServerInfo {
        var server: String?, model: String?, limits: ServerLimits?
        var info = ServerInfo(serverName: "", modelName: "")
        while let f = try r.next() {
            switch f.tag {
            case 1: try r.once(f, "server_name"); server = try r.string(f, "server_name", max: ProtocolLimits.maxServerNameBytes)
            case 2: try r.once(f, "model_name"); model = try r.string(f, "model_name", max: ProtocolLimits.maxModelNameBytes)
            case 3:
                try r.once(f, "limits")
                var n = r.nested(f, "limits")
                limits = try readLimits(&n)
            case 4: try r.once(f, "active_sessions"); info.activeSessions = try r.u32(f, "active_sessions")
            case 5: try r.once(f, "active_connections"); info.activeConnections = try r.u32(f, "active_connections")
            case 6: try r.once(f, "uptime_ms"); info.uptimeMs = try r.u64(f, "uptime_ms")
            case 7: try r.once(f, "clips_generated"); info.clipsGenerated = try r.u64(f, "clips_generated")
            case 8: try r.once(f, "frames_sent"); info.framesSent = try r.u64(f, "frames_sent")
            case 9: try r.once(f, "queued_bytes"); info.queuedBytes = try r.u64(f, "queued_bytes")
            default: continue
            }
        }
        guard let server else { throw r.missing(1, "server_name") }
        guard let model else { throw r.missing(2, "model_name") }
        guard let limits else { throw r.missing(3, "limits") }
        info.serverName = server
        info.modelName = model
        info.limits = limits
        return info
    }

    static let limitNames = [
        "max_payload", "max_sessions_per_connection", "max_sessions", "max_prompt_bytes", "max_steps", "max_width",
        "max_height", "dimension_multiple", "max_frames_per_clip", "max_credits", "max_chain_length",
        "keepalive_interval_ms", "idle_timeout_ms", "handshake_timeout_ms",
    ]

    static func readLimits(_ r: inout TLVReader) throws(ProtocolError) -> ServerLimits {
        var v = [UInt32?](repeating: nil, count: limitNames.count)
        var maxConnections: UInt32?, frameTimeoutMs: UInt32?, maxSessionWeight: UInt32?
        while let f = try r.next() {
            switch f.tag {
            case 15: try r.once(f, "max_connections"); maxConnections = try r.u32(f, "max_connections", in: 1...UInt32.max); continue
            case 16: try r.once(f, "frame_timeout_ms"); frameTimeoutMs = try r.u32(f, "frame_timeout_ms"); continue
            case 17:
                try r.once(f, "max_session_weight")
                maxSessionWeight = try r.u32(f, "max_session_weight", in: 1...ProtocolLimits.maxSessionWeight)
                continue
            default: break
            }
            guard f.tag >= 1, Int(f.tag) <= limitNames.count else { continue }
            let i = Int(f.tag) - 1
            try r.once(f, limitNames[i])
            switch f.tag {
            case 1: v[i] = try r.u32(f, limitNames[i], in: payloadLimitRange)
            case 8: v[i] = try r.u32(f, limitNames[i], in: 1...ProtocolLimits.maxDimension)
            default: v[i] = try r.u32(f, limitNames[i])
            }
        }
        for i in v.indices where v[i] == nil { throw r.missing(UInt16(i + 1), limitNames[i]) }
        var limits = ServerLimits(
            maxPayload: v[0]!, maxSessionsPerConnection: v[1]!, maxSessions: v[2]!, maxPromptBytes: v[3]!,
            maxSteps: v[4]!, maxWidth: v[5]!, maxHeight: v[6]!, dimensionMultiple: v[7]!, maxFramesPerClip: v[8]!,
            maxCredits: v[9]!, maxChainLength: v[10]!, keepaliveIntervalMs: v[11]!, idleTimeoutMs: v[12]!,
            handshakeTimeoutMs: v[13]!, maxConnections: maxConnections, frameTimeoutMs: frameTimeoutMs)
        limits.maxSessionWeight = maxSessionWeight
        return limits
    }

    static func readChain(_ r: inout TLVReader) throws(ProtocolError) -> [StrategySpec] {
        var chain: [StrategySpec] = []
        while let f = try r.next() {
            guard f.tag == 1 else { continue }
            guard chain.count < ProtocolLimits.maxChainLength else {
                throw r.tooMany(f, "strategy", max: ProtocolLimits.maxChainLength)
            }
            var s = r.nested(f, "strategy")
            var name: String?
            var params: [StrategyParam] = []
            while let g = try s.next() {
                switch g.tag {
                case 1: try s.once(g, "name"); name = try s.name(g, "name")
                case 2:
                    guard params.count < ProtocolLimits.maxParamsPerStrategy else {
                        throw s.tooMany(g, "param", max: ProtocolLimits.maxParamsPerStrategy)
                    }
                    var pr = s.nested(g, "param")
                    var pname: String?
                    var value: ParamValue?
                    while let h = try pr.next() {
                        switch h.tag {
                        case 1: try pr.once(h, "name"); pname = try pr.name(h, "name")
                        case 2...5: value = try readValue(&pr, h, existing: value)
                        default: continue
                        }
                    }
                    guard let pname else { throw pr.missing(1, "name") }
                    guard let value else { throw pr.fail(.missingField, "parameter \(pname) has no value (tags 2-5)") }
                    guard !params.contains(where: { $0.name == pname }) else {
                        throw s.fail(.duplicateField, "parameter \(pname) is given twice")
                    }
                    params.append(StrategyParam(pname, value))
                default: continue
                }
            }
            guard let name else { throw s.missing(1, "name") }
            chain.append(StrategySpec(name: name, params: params))
        }
        return chain
    }

    /// Tags 2 (double), 3 (int), 4 (bool), 5 (string): exactly one of them per value.
    static func readValue(_ r: inout TLVReader, _ f: TLVField, existing: ParamValue?) throws(ProtocolError) -> ParamValue {
        guard existing == nil else { throw r.fail(.conflictingFields, "a value has more than one of tags 2-5") }
        switch f.tag {
        case 2: return .double(try r.f64(f, "double"))
        case 3: return .int(try r.i64(f, "int"))
        case 4: return .bool(try r.bool(f, "bool"))
        default: return .string(try r.string(f, "string", max: ProtocolLimits.maxParamStringBytes))
        }
    }

    static func readStrategyList(_ r: inout TLVReader) throws(ProtocolError) -> StrategyList {
        var list = StrategyList()
        while let f = try r.next() {
            switch f.tag {
            case 1:
                guard list.strategies.count < ProtocolLimits.maxStrategyDescriptors else {
                    throw r.tooMany(f, "strategy", max: ProtocolLimits.maxStrategyDescriptors)
                }
                var s = r.nested(f, "strategy")
                var name: String?
                var d = StrategyDescriptor(name: "")
                while let g = try s.next() {
                    switch g.tag {
                    case 1: try s.once(g, "name"); name = try s.name(g, "name")
                    case 2: try s.once(g, "summary"); d.summary = try s.string(g, "summary", max: ProtocolLimits.maxSummaryBytes)
                    case 3:
                        guard d.params.count < ProtocolLimits.maxParamsPerStrategy else {
                            throw s.tooMany(g, "param", max: ProtocolLimits.maxParamsPerStrategy)
                        }
                        var pr = s.nested(g, "param")
                        let p = try readParamDescriptor(&pr)
                        guard !d.params.contains(where: { $0.name == p.name }) else {
                            throw s.fail(.duplicateField, "parameter \(p.name) is described twice")
                        }
                        d.params.append(p)
                    default: continue
                    }
                }
                guard let name else { throw s.missing(1, "name") }
                guard !list.strategies.contains(where: { $0.name == name }) else {
                    throw r.fail(.duplicateField, "strategy \(name) is described twice")
                }
                d.name = name
                list.strategies.append(d)
            case 2:
                try r.once(f, "default_chain")
                var n = r.nested(f, "default_chain")
                list.defaultChain = try readChain(&n)
            default: continue
            }
        }
        return list
    }

    static func readParamDescriptor(_ r: inout TLVReader) throws(ProtocolError) -> ParamDescriptor {
        var name: String?, value: ParamValue?
        var d = ParamDescriptor(name: "", defaultValue: .bool(false))
        while let f = try r.next() {
            switch f.tag {
            case 1: try r.once(f, "name"); name = try r.name(f, "name")
            case 2...5: value = try readValue(&r, f, existing: value)
            case 6: try r.once(f, "summary"); d.summary = try r.string(f, "summary", max: ProtocolLimits.maxSummaryBytes)
            case 7: try r.once(f, "minimum"); d.minimum = try r.f64(f, "minimum")
            case 8: try r.once(f, "maximum"); d.maximum = try r.f64(f, "maximum")
            default: continue
            }
        }
        guard let name else { throw r.missing(1, "name") }
        guard let value else { throw r.fail(.missingField, "parameter \(name) has no default value (tags 2-5)") }
        let numeric: Double?
        switch value {
        case .double(let v): numeric = v
        case .int(let v): numeric = Double(v)
        default: numeric = nil
        }
        if numeric == nil, d.minimum != nil || d.maximum != nil {
            throw r.fail(.conflictingFields, "parameter \(name) is \(value.kindName == "int" ? "an" : "a") \(value.kindName) and cannot have bounds")
        }
        if let lo = d.minimum, let hi = d.maximum, lo > hi {
            throw r.fail(.valueOutOfRange, "parameter \(name): minimum \(lo) exceeds maximum \(hi)")
        }
        if let x = numeric, x < (d.minimum ?? -.infinity) || x > (d.maximum ?? .infinity) {
            throw r.fail(.valueOutOfRange, "parameter \(name): default \(x) lies outside its bounds")
        }
        d.name = name
        d.defaultValue = value
        return d
    }
}

func hex(_ b: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
}
