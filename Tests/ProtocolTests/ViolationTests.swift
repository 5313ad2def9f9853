import Testing
@testable import VidrdProtocol

/// Raw frame bytes, bypassing the encoder's checks.
private func frame(_ type: UInt8, flags: UInt8 = 0, reserved: UInt16 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
    var out: [UInt8] = []
    appendBigEndian(UInt32(payload.count), to: &out)
    out += [type, flags, UInt8(reserved >> 8), UInt8(reserved & 0xFF)]
    appendBigEndian(stream, to: &out)
    return out + payload
}

private func tlv(_ build: (inout TLVWriter) -> Void) -> [UInt8] {
    var w = TLVWriter()
    build(&w)
    return w.bytes
}

/// Decodes `bytes` (no preface) with a decoder of `role`; returns the error it throws.
private func violation(_ bytes: [UInt8], role: Role? = .server, maxPayload: Int = ProtocolLimits.defaultMaxPayload) -> ProtocolError? {
    var d = FrameDecoder(role: role, maxPayload: maxPayload, expectPreface: false)
    d.append(bytes)
    do {
        while try d.nextMessage() != nil {}
        return nil
    } catch {
        return error
    }
}

private func expectViolation(
    _ bytes: [UInt8], role: Role? = .server, _ code: StatusCode, _ kind: ProtocolError.Kind,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let e = violation(bytes, role: role)
    #expect(e?.code == code, "code: \(String(describing: e))", sourceLocation: sourceLocation)
    #expect(e?.kind == kind, "kind: \(String(describing: e))", sourceLocation: sourceLocation)
}

private let pingPayload = tlv { $0.u64(1, 1) }
private let pullPayload = tlv { $0.u32(1, 1) }

private func openSession(_ extra: (inout TLVWriter) -> Void) -> [UInt8] {
    frame(0x10, stream: 1, tlv { w in w.string(1, "fox"); extra(&w) })
}

@Suite("Violations")
struct ViolationTests {
    @Test("bad preface fails at the first differing byte")
    func badPreface() throws {
        var d = FrameDecoder(role: .server)
        d.append(Array("G".utf8))
        #expect(throws: ProtocolError.self) { try d.nextFrame() }
        #expect(d.failure?.code == .invalidArgument && d.failure?.kind == .badPreface)
        var ok = FrameDecoder(role: .server)
        ok.append(Array("VIDRD".utf8))
        #expect(try ok.nextFrame() == nil)
        ok.append(Array("X".utf8))
        #expect(throws: ProtocolError.self) { try ok.nextFrame() }
    }

    @Test("header rules, in the documented order")
    func headerRules() {
        expectViolation(frame(0x03, reserved: 1, pingPayload), .invalidArgument, .reservedBitsSet)
        for t: UInt8 in [0x00, 0x0B, 0x0F, 0x18, 0x7F, 0xFF] {
            expectViolation(frame(t, pingPayload), .unimplemented, .unknownFrameType)
        }
        // reserved before type
        expectViolation(frame(0xFF, reserved: 0x8000), .invalidArgument, .reservedBitsSet)
        // direction
        expectViolation(frame(0x16, stream: 1, [0]), role: .server, .invalidArgument, .wrongDirection)
        expectViolation(frame(0x01, pingPayload), role: .client, .invalidArgument, .wrongDirection)
        expectViolation(frame(0x12, stream: 1, pullPayload), role: .client, .invalidArgument, .wrongDirection)
        // flags
        expectViolation(frame(0x03, flags: 0x01, pingPayload), .invalidArgument, .invalidFlags)
        expectViolation(frame(0x06, flags: 0x02, stream: 1, tlv { $0.u32(1, 1) }), .invalidArgument, .invalidFlags)
        expectViolation(frame(0x12, flags: 0x80, stream: 1, pullPayload), .invalidArgument, .invalidFlags)
        // stream
        expectViolation(frame(0x03, stream: 1, pingPayload), .invalidArgument, .invalidStream)
        expectViolation(frame(0x12, stream: 0, pullPayload), .invalidArgument, .invalidStream)
        expectViolation(frame(0x10, stream: 0, tlv { $0.string(1, "x") }), .invalidArgument, .invalidStream)
        expectViolation(frame(0x06, stream: 0, tlv { $0.u32(1, 1) }), .invalidArgument, .invalidStream)
        // a fatal ERROR may use stream 0 or a session's stream
        #expect(violation(frame(0x06, flags: 1, stream: 0, tlv { $0.u32(1, 1) })) == nil)
        #expect(violation(frame(0x06, flags: 1, stream: 4, tlv { $0.u32(1, 1) })) == nil)
        // length
        let e = violation(frame(0x03, pingPayload), maxPayload: 10)
        #expect(e?.code == .resourceExhausted && e?.kind == .frameTooLarge)
        #expect(violation(frame(0x03, pingPayload), maxPayload: 14) == nil)
    }

    @Test("TLV structure")
    func tlvStructure() {
        expectViolation(frame(0x03, [0, 1, 0]), .invalidArgument, .truncated)
        expectViolation(frame(0x03, [0, 1, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8]), .invalidArgument, .truncated)
        expectViolation(frame(0x03, pingPayload + [0]), .invalidArgument, .truncated)
        expectViolation(frame(0x03, tlv { $0.u32(1, 1) }), .invalidArgument, .badFieldLength)
        expectViolation(frame(0x03, []), .invalidArgument, .missingField)
        expectViolation(frame(0x03, pingPayload + pingPayload), .invalidArgument, .duplicateField)
        expectViolation(frame(0x12, stream: 1, []), .invalidArgument, .missingField)
        expectViolation(frame(0x12, stream: 1, pullPayload + pullPayload), .invalidArgument, .duplicateField)
        // a truncated field inside a nested message
        expectViolation(openSession { $0.raw(10, [0, 1, 0, 0, 0, 50, 1]) }, .invalidArgument, .truncated)
    }

    @Test("values outside their ranges")
    func ranges() {
        let bad: [[UInt8]] = [
            frame(0x12, stream: 1, tlv { $0.u32(1, 0) }),
            frame(0x12, stream: 1, tlv { $0.u32(1, 65537) }),
            frame(0x01, tlv { $0.u16(1, 0); $0.u16(2, 1) }),
            frame(0x01, tlv { $0.u16(1, 3); $0.u16(2, 2) }),
            frame(0x01, tlv { $0.u16(1, 1); $0.u16(2, 1); $0.u32(5, 65535) }),
            frame(0x01, tlv { $0.u16(1, 1); $0.u16(2, 1); $0.raw(3, [UInt8](repeating: 1, count: 257)) }),
            frame(0x06, stream: 1, tlv { $0.u32(1, 0) }),
            frame(0x06, stream: 1, tlv { $0.u32(1, 17) }),
            frame(0x05, tlv { $0.u32(1, 17) }),
            frame(0x05, tlv { $0.u32(1, 0); $0.string(2, String(repeating: "x", count: 1025)) }),
            frame(0x10, stream: 1, tlv { $0.string(1, "") }),
            frame(0x10, stream: 1, tlv { $0.string(1, String(repeating: "x", count: 16385)) }),
            openSession { $0.u32(4, 0) },
            openSession { $0.u32(4, 10_001) },
            openSession { $0.f64(5, -0.5) },
            openSession { $0.f64(5, 100.5) },
            openSession { $0.f64(5, .nan) },
            openSession { $0.f64(5, .infinity) },
            openSession { $0.u32(6, 1025) },
            openSession { $0.u32(7, 0) },
            openSession { $0.u32(8, 8193) },
            openSession { $0.f64(9, 0) },
            openSession { $0.f64(9, 240.5) },
            openSession { $0.u8(11, 101) },
            openSession { $0.u8(12, 2) },
            openSession { $0.u32(13, 65537) },
            openSession { $0.u32(15, 1025) },
            openSession { $0.u8(16, 0) },
            openSession { $0.u8(16, 3) },
            openSession { $0.u8(17, 0) },
            openSession { $0.u8(17, 4) },
            openSession { $0.u8(18, 2) },
            openSession { $0.raw(19, []) },
            openSession { $0.u8(20, 0) },
            openSession { $0.u8(20, 4) },
            openSession { $0.u32(21, 0) },
            openSession { $0.u32(21, 1001) },
        ]
        for bytes in bad {
            let e = violation(bytes)
            #expect(e?.code == .invalidArgument && e?.kind == .valueOutOfRange, "\(String(describing: e))")
        }
        let toClient: [[UInt8]] = [
            frame(0x15, stream: 1, tlv { $0.u32(1, 0); $0.u8(2, 4); $0.u32(3, 0); $0.u32(4, 1) }),
            frame(0x15, stream: 1, tlv { $0.u32(1, 0); $0.u8(2, 1); $0.u32(3, 2); $0.u32(4, 1) }),
            frame(0x15, stream: 1, tlv { $0.u32(1, 0); $0.u8(2, 1); $0.u32(3, 0); $0.u32(4, 0) }),
            frame(0x14, stream: 1, tlv { $0.u32(1, 0); $0.u32(2, 0); $0.u64(3, 0); $0.u32(4, 0) }),
            frame(0x02, tlv { $0.u16(1, 0) }),
        ]
        for bytes in toClient {
            let e = violation(bytes, role: .client)
            #expect(e?.code == .invalidArgument && e?.kind == .valueOutOfRange, "\(String(describing: e))")
        }
    }

    @Test("invalid UTF-8 is rejected", arguments: [
        [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF], [0x61, 0xE2, 0x82],
        [0x80], [0xF0, 0x9F, 0xA6],
    ] as [[UInt8]])
    func invalidUTF8(_ bad: [UInt8]) {
        expectViolation(frame(0x10, stream: 1, tlv { $0.raw(1, Array("ok ".utf8) + bad) }), .invalidArgument, .invalidUTF8)
    }

    @Test("valid UTF-8 edge cases are accepted")
    func validUTF8() throws {
        for s in ["\u{7F}", "\u{80}", "\u{7FF}", "\u{800}", "\u{FFFF}", "\u{10000}", "\u{10FFFF}", "🦊", "é\u{301}", "\0"] {
            #expect(violation(frame(0x10, stream: 1, tlv { $0.string(1, s) })) == nil, "\(s.unicodeScalars.map(\.value))")
        }
    }

    @Test("strategy names, parameters and chain limits")
    func strategies() {
        func chain(_ specs: [(String, [(String, (inout TLVWriter) -> Void)])]) -> [UInt8] {
            openSession { w in
                var c = TLVWriter()
                for (name, params) in specs {
                    var s = TLVWriter()
                    s.string(1, name)
                    for (pname, value) in params {
                        var p = TLVWriter()
                        p.string(1, pname)
                        value(&p)
                        s.nested(2, p)
                    }
                    c.nested(1, s)
                }
                w.nested(10, c)
            }
        }
        for name in ["", "1fnr", "_x", "a b", "fnr!", "é", String(repeating: "a", count: 65)] {
            expectViolation(chain([(name, [])]), .invalidArgument, .invalidName)
            expectViolation(chain([("fnr", [(name, { $0.f64(2, 1) })])]), .invalidArgument, .invalidName)
        }
        #expect(violation(chain([(String(repeating: "a", count: 64), [("A.b-c_9", { $0.bool(4, true) })])])) == nil)
        expectViolation(chain([("fnr", [("a", { $0.f64(2, 1); $0.i64(3, 1) })])]), .invalidArgument, .conflictingFields)
        expectViolation(chain([("fnr", [("a", { _ in })])]), .invalidArgument, .missingField)
        expectViolation(chain([("fnr", [("a", { $0.f64(2, 1) }), ("a", { $0.f64(2, 2) })])]), .invalidArgument, .duplicateField)
        expectViolation(chain(Array(repeating: ("fnr", []), count: 17)), .invalidArgument, .duplicateField)
        #expect(violation(chain(Array(repeating: ("fnr", []), count: 16))) == nil)
        let many = (0..<33).map { i in ("p\(i)", { (w: inout TLVWriter) in w.i64(3, Int64(i)) }) }
        expectViolation(chain([("fnr", many)]), .invalidArgument, .duplicateField)
        expectViolation(chain([("fnr", [("s", { $0.string(5, String(repeating: "x", count: 1025)) })])]), .invalidArgument, .valueOutOfRange)
        expectViolation(chain([("fnr", [("b", { $0.u8(4, 7) })])]), .invalidArgument, .valueOutOfRange)

        // descriptors
        func describe(_ build: @escaping (inout TLVWriter) -> Void) -> [UInt8] {
            frame(0x0A, tlv { w in
                var s = TLVWriter()
                s.string(1, "fnr")
                var p = TLVWriter()
                build(&p)
                s.nested(3, p)
                w.nested(1, s)
            })
        }
        expectViolation(describe { $0.string(1, "b"); $0.bool(4, true); $0.f64(7, 0) }, role: .client, .invalidArgument, .conflictingFields)
        expectViolation(describe { $0.string(1, "x"); $0.f64(2, 5); $0.f64(7, 6) }, role: .client, .invalidArgument, .valueOutOfRange)
        expectViolation(describe { $0.string(1, "x"); $0.f64(2, 5); $0.f64(7, 9); $0.f64(8, 1) }, role: .client, .invalidArgument, .valueOutOfRange)
        expectViolation(describe { $0.string(1, "x") }, role: .client, .invalidArgument, .missingField)
        #expect(violation(describe { $0.string(1, "x"); $0.i64(3, 5); $0.f64(7, 1); $0.f64(8, 9) }, role: .client) == nil)
        let twice = frame(0x0A, tlv { w in
            for _ in 0..<2 {
                var s = TLVWriter()
                s.string(1, "fnr")
                w.nested(1, s)
            }
        })
        expectViolation(twice, role: .client, .invalidArgument, .duplicateField)
    }

    @Test("FRAME layout and WebP checks")
    func frames() {
        let good = Samples.webp1x1
        func payload(index: UInt32 = 0, _ webp: [UInt8]) -> [UInt8] {
            var p: [UInt8] = []
            appendBigEndian(UInt32(0), to: &p)
            appendBigEndian(index, to: &p)
            appendBigEndian(UInt64(0), to: &p)
            return p + webp
        }
        #expect(violation(frame(0x16, stream: 1, payload(good)), role: .client) == nil)
        expectViolation(frame(0x16, stream: 1, Array(repeating: 0, count: 15)), role: .client, .invalidArgument, .truncated)
        expectViolation(frame(0x16, stream: 1, payload(Array(good.prefix(11)))), role: .client, .invalidArgument, .invalidWebP)
        expectViolation(frame(0x16, stream: 1, payload(Array(good.dropLast()))), role: .client, .invalidArgument, .invalidWebP)
        expectViolation(frame(0x16, stream: 1, payload(good + [0])), role: .client, .invalidArgument, .trailingBytes)
        var riffx = good
        riffx[3] = 0x58
        expectViolation(frame(0x16, stream: 1, payload(riffx)), role: .client, .invalidArgument, .invalidWebP)
        var webpx = good
        webpx[11] = 0x51
        expectViolation(frame(0x16, stream: 1, payload(webpx)), role: .client, .invalidArgument, .invalidWebP)
        expectViolation(frame(0x16, stream: 1, payload(index: 1024, good)), role: .client, .invalidArgument, .valueOutOfRange)
        // A RIFF size near 2^32 must not overflow anything.
        var huge = good
        huge[4...7] = [0xFF, 0xFF, 0xFF, 0xFF]
        expectViolation(frame(0x16, stream: 1, payload(huge)), role: .client, .invalidArgument, .invalidWebP)
    }

    @Test("errors are sticky, carry the stream, and drop later input")
    func sticky() throws {
        var d = FrameDecoder(role: .server, expectPreface: false)
        d.append(frame(0x12, stream: 7, tlv { $0.u32(1, 0) }) + frame(0x03, pingPayload))
        var first: ProtocolError?
        do { _ = try d.nextMessage() } catch { first = error }
        #expect(first?.stream == 7)
        #expect(first?.errorEnvelope.stream == 7)
        #expect(d.bufferedByteCount == 0)
        d.append(frame(0x03, pingPayload))
        #expect(d.bufferedByteCount == 0)
        do {
            _ = try d.nextMessage()
            Issue.record("decoder recovered")
        } catch {
            #expect(error == first)
        }
    }

    @Test("the encoder refuses what the decoder would reject")
    func encoderRefuses() {
        let enc = FrameEncoder(role: .client)
        func refused(_ m: Message, stream: UInt32 = 1, _ kind: ProtocolError.Kind, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                _ = try enc.encode(m, stream: stream)
                Issue.record("encoded", sourceLocation: sourceLocation)
            } catch {
                #expect(error.kind == kind, sourceLocation: sourceLocation)
            }
        }
        refused(.openSession(OpenSession(prompt: "")), .valueOutOfRange)
        refused(.openSession(OpenSession(prompt: "x", steps: 0)), .valueOutOfRange)
        refused(.openSession(OpenSession(prompt: "x", guidance: .nan)), .valueOutOfRange)
        refused(.openSession(OpenSession(prompt: "x", strategies: [StrategySpec(name: "bad name")])), .invalidName)
        refused(.openSession(OpenSession(prompt: "x")), stream: 0, .invalidStream)
        refused(.pull(credits: 0), .valueOutOfRange)
        refused(.ping(nonce: 1), stream: 1, .invalidStream)
        refused(.error(ErrorMessage(code: .ok)), .valueOutOfRange)
        refused(.error(ErrorMessage(code: .internal)), stream: 0, .invalidStream)
        refused(.frame(VideoFrame(clipIndex: 0, frameIndex: 0, frameNumber: 0, webp: [1, 2, 3])), .wrongDirection)
        let big = OpenSession(prompt: String(repeating: "x", count: 16_384), negativePrompt: String(repeating: "y", count: 16_384))
        var small = enc
        small.maxPayload = 30_000
        do {
            _ = try small.encode(.openSession(big), stream: 1)
            Issue.record("oversized payload encoded")
        } catch {
            #expect(error.code == .resourceExhausted && error.kind == .payloadTooLarge)
        }
        let server = FrameEncoder(role: .server)
        #expect(throws: ProtocolError.self) {
            try server.encode(.frame(VideoFrame(clipIndex: 0, frameIndex: 0, frameNumber: 0, webp: [1, 2, 3])), stream: 1)
        }
        #expect(throws: ProtocolError.self) { try server.encode(.hello(Hello())) }
    }
}
