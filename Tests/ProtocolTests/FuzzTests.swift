import Testing
@testable import VidrdProtocol

/// Seeded, time-bounded randomized decoding: random, mutated and structured-random bytes must only
/// ever produce messages or `ProtocolError`s — no crash (any trap fails the run) — and the decoder's
/// buffer must stay below one header plus one maximum payload. Whatever decodes must re-encode.
@Suite("Fuzz")
struct FuzzTests {
    static let timeBudget = Duration.milliseconds(1500)
    static let maxIterations = 200_000

    @Test("random and mutated input never crashes nor exceeds the buffer bound")
    func fuzz() throws {
        var rng = SplitMix64(seed: 0x5EED_0F_F022)
        let corpusToClient = Samples.stream(Samples.serverSent)
        let corpusToServer = Samples.stream(Samples.clientSent)
        let frames = Samples.all.map(Samples.encode)
        let clock = ContinuousClock()
        let deadline = clock.now + Self.timeBudget
        var iterations = 0, decodedMessages = 0, errors = 0
        var codesSeen = Set<StatusCode>()

        while iterations < Self.maxIterations, clock.now < deadline {
            iterations += 1
            let role: Role? = [Role.client, .server, nil][Int.random(in: 0...2, using: &rng)]
            let maxPayload = [65_536, 4096, 100, ProtocolLimits.defaultMaxPayload][Int.random(in: 0...3, using: &rng)]
            let input: [UInt8]
            var expectPreface = Bool.random(using: &rng)
            switch Int.random(in: 0..<5, using: &rng) {
            case 0:
                // Pure noise.
                input = (0..<Int.random(in: 0...600, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:
                // A valid stream with a few random byte flips, insertions or deletions.
                var bytes = role == .server ? corpusToServer : corpusToClient
                if !expectPreface { bytes.removeFirst(ConnectionPreface.bytes.count) }
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let at = Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: bytes[at] ^= UInt8.random(in: 1...255, using: &rng)
                    case 1: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                    default: bytes.remove(at: at)
                    }
                }
                input = bytes
            case 2:
                // One valid frame truncated or with one payload byte replaced.
                expectPreface = false
                var bytes = frames[Int.random(in: 0..<frames.count, using: &rng)]
                if bytes.count > 12, Bool.random(using: &rng) {
                    let at = Int.random(in: 12..<bytes.count, using: &rng)
                    bytes[at] = UInt8.random(in: 0...255, using: &rng)
                } else {
                    bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng))
                }
                input = bytes
            default:
                // A well-formed header with a random type and a payload of random TLV fields with
                // plausible tags, lengths and values, to reach the field-level checks.
                expectPreface = false
                let type = FrameType.allCases[Int.random(in: 0..<FrameType.allCases.count, using: &rng)]
                let stream: UInt32 = type.streamRule == .connection ? 0 : UInt32.random(in: 1...3, using: &rng)
                let flags: UInt8 = type == .error ? FrameFlags.fatal : 0
                let payload = Self.randomTLV(&rng, depth: 0)
                input = RawFrame(type: type, flags: flags, stream: stream, payload: payload).bytes
            }

            var decoder = FrameDecoder(role: role, maxPayload: maxPayload, expectPreface: expectPreface)
            var i = 0
            while i < input.count {
                let n = min(input.count - i, Int.random(in: 1...64, using: &rng))
                decoder.append(input[i..<(i + n)])
                i += n
                switch Self.drain(&decoder) {
                case .success(let envelopes):
                    decodedMessages += envelopes.count
                    for envelope in envelopes {
                        // Anything the decoder accepts, the encoder accepts, and it decodes equal.
                        let bytes = try FrameEncoder(role: nil).encode(envelope)
                        var again = FrameDecoder(role: nil, expectPreface: false)
                        again.append(bytes)
                        #expect(try again.nextMessage() == envelope)
                    }
                    #expect(decoder.bufferedByteCount < ProtocolLimits.headerSize + maxPayload)
                case .failure(let error):
                    errors += 1
                    codesSeen.insert(error.code)
                    #expect(decoder.failure == error)
                    #expect(decoder.bufferedByteCount == 0)
                    i = input.count
                }
            }
        }
        print("fuzz: \(iterations) inputs, \(decodedMessages) messages decoded, \(errors) errors, codes \(codesSeen.map(\.name).sorted())")
        #expect(iterations >= 1000, "too few iterations in the time budget: \(iterations)")
        #expect(errors > 0 && decodedMessages > 0)
    }

    static func drain(_ decoder: inout FrameDecoder) -> Result<[Envelope], ProtocolError> {
        var out: [Envelope] = []
        do {
            while let envelope = try decoder.nextMessage() { out.append(envelope) }
            return .success(out)
        } catch {
            return .failure(error)
        }
    }

    /// Random TLV bytes: mostly known tags (1...16), lengths matching common types, values near
    /// range edges, sometimes nested, sometimes with a field header that overruns the payload.
    static func randomTLV(_ rng: inout SplitMix64, depth: Int) -> [UInt8] {
        var w = TLVWriter()
        for _ in 0..<Int.random(in: 0...8, using: &rng) {
            let tag = Int.random(in: 0..<10, using: &rng) == 0 ? UInt16.random(in: 0...UInt16.max, using: &rng) : UInt16.random(in: 1...16, using: &rng)
            switch Int.random(in: 0..<9, using: &rng) {
            case 0: w.u8(tag, UInt8.random(in: 0...3, using: &rng))
            case 1: w.u16(tag, UInt16.random(in: 0...3, using: &rng))
            case 2: w.u32(tag, [0, 1, 2, 16, 100, 65536, 4_194_304, .max][Int.random(in: 0...7, using: &rng)])
            case 3: w.u64(tag, UInt64.random(in: 0...UInt64.max, using: &rng))
            case 4: w.f64(tag, [0, 0.5, 7.5, -1, 101, .nan, .infinity, 1e300][Int.random(in: 0...7, using: &rng)])
            case 5: w.string(tag, ["", "fnr", "a red fox", "1bad", "é", String(repeating: "x", count: 70)][Int.random(in: 0...5, using: &rng)])
            case 6: w.raw(tag, (0..<Int.random(in: 0...12, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            case 7 where depth < 3:
                w.raw(tag, randomTLV(&rng, depth: depth + 1))
            default:
                w.bytes += [UInt8(tag >> 8), UInt8(tag & 0xFF), 0, 0, 1, 0]
            }
        }
        return w.bytes
    }
}
