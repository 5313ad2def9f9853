import Crypto
import Foundation
import VidrdProtocol

/// A continuation token: everything another daemon needs to go on with a stream exactly where
/// it stopped, sealed with an HMAC so that no byte of it can change unnoticed
/// (docs/DAEMON.md, "Resumable sessions"; docs/PROTOCOL.md §8.8).
///
/// Layout, all integers big-endian:
///
/// ```text
/// "VRDC" | format u16 | model fingerprint (32) | next clip index u32 | next frame number u64
///        | request length u32 | request | state length u32 | state | HMAC-SHA256 (32)
/// ```
///
/// `request` is the session's effective parameters as an OPEN_SESSION payload (the protocol's
/// own encoding, so the resuming node validates it with the code that validates any request);
/// `state` is `VideoStream.saveState()`. The HMAC covers every byte before it.
struct Continuation: Equatable {
    static let magic: [UInt8] = Array("VRDC".utf8)
    static let format: UInt16 = 1
    static let macBytes = 32
    /// Everything but the request and the state.
    static let fixedBytes = 4 + 2 + 32 + 4 + 8 + 4 + 4 + macBytes

    var model: [UInt8]
    var nextClipIndex: UInt32
    var nextFrameNumber: UInt64
    /// The effective OPEN_SESSION (no credits, no continuation).
    var request: OpenSession
    var state: [UInt8]

    /// The sealed token.
    func seal(key: [UInt8]) -> [UInt8] {
        let payload = WireCodec.encodePayload(.openSession(request))
        var out = Self.magic
        out.reserveCapacity(Self.fixedBytes + payload.count + state.count)
        append(Self.format, to: &out)
        out += model
        append(nextClipIndex, to: &out)
        append(nextFrameNumber, to: &out)
        append(UInt32(payload.count), to: &out)
        out += payload
        append(UInt32(state.count), to: &out)
        out += state
        out += Self.mac(out, key: key)
        return out
    }

    /// Checks and reads a token. Corruption, tampering and another key are INVALID_ARGUMENT; a
    /// format this build does not read is FAILED_PRECONDITION. The caller checks the model.
    static func open(_ token: [UInt8], key: [UInt8], maxBytes: Int) throws(SessionRejection) -> Continuation {
        func bad(_ why: String) -> SessionRejection { SessionRejection(.invalidArgument, "continuation: \(why)") }
        guard token.count <= maxBytes else {
            throw SessionRejection(.invalidArgument, "continuation is \(token.count) bytes; max_continuation_bytes = \(maxBytes)")
        }
        guard token.count >= fixedBytes, Array(token.prefix(4)) == magic else { throw bad("not a vidrd continuation token") }
        let body = Array(token.dropLast(macBytes))
        let mac = Array(token.suffix(macBytes))
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: SymmetricKey(data: key)) else {
            throw bad("integrity check failed (the token was altered, or sealed with another continuation key)")
        }
        var r = Reader(bytes: body, at: 4)
        let format: UInt16 = r.integer()
        guard format == Self.format else {
            throw SessionRejection(.failedPrecondition, "continuation format \(format); this server reads format \(Self.format)")
        }
        let model = r.take(32)
        let clip: UInt32 = r.integer()
        let frame: UInt64 = r.integer()
        let requestBytes = r.take(Int(r.integer() as UInt32))
        let state = r.take(Int(r.integer() as UInt32))
        guard r.ok, r.at == body.count else { throw bad("lengths do not add up to the token's size") }
        let request: OpenSession
        do {
            let envelope = try WireCodec.decode(RawFrame(type: .openSession, flags: 0, stream: 1, payload: requestBytes))
            guard case .openSession(let m) = envelope.message else { throw bad("holds no session parameters") }
            request = m
        } catch let e as SessionRejection {
            throw e
        } catch {
            throw bad("its session parameters do not decode: \(error)")
        }
        return Continuation(model: model, nextClipIndex: clip, nextFrameNumber: frame, request: request, state: state)
    }

    static func mac(_ bytes: [UInt8], key: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: bytes, using: SymmetricKey(data: key)))
    }

    private func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.bigEndian) { out += $0 }
    }

    /// Reads past the end set `ok` to false and return zeros, so one check after all reads suffices.
    private struct Reader {
        let bytes: [UInt8]
        var at: Int
        var ok = true

        mutating func take(_ n: Int) -> [UInt8] {
            guard ok, n >= 0, n <= bytes.count - at else {
                ok = false
                return []
            }
            defer { at += n }
            return Array(bytes[at..<(at + n)])
        }

        mutating func integer<T: FixedWidthInteger>() -> T {
            let b = take(MemoryLayout<T>.size)
            guard b.count == MemoryLayout<T>.size else { return 0 }
            return b.reduce(T(0)) { $0 << 8 | T($1) }
        }
    }
}

extension Continuation {
    /// Fields that decide a stream's content and that a resuming request may repeat: each one the
    /// request gives must equal the token's (a client that presents another stream's token, or
    /// changes the prompt, is told so instead of silently getting the token's stream).
    static func mismatch(request r: OpenSession, token t: OpenSession) -> String? {
        func differs<T: Equatable>(_ name: String, _ a: T?, _ b: T?) -> String? {
            guard let a, a != b else { return nil }
            return "\(name) differs from the continuation's"
        }
        if r.prompt != t.prompt { return "prompt differs from the continuation's" }
        if let m = differs("negative_prompt", (r.negativePrompt ?? "").isEmpty ? nil : r.negativePrompt, t.negativePrompt) {
            return m
        }
        if let m = differs("seed", r.seed, t.seed) { return m }
        if let m = differs("steps", r.steps, t.steps) { return m }
        if let m = differs("guidance", r.guidance, t.guidance) { return m }
        if let m = differs("frames_per_clip", r.framesPerClip, t.framesPerClip) { return m }
        if let m = differs("width", r.width, t.width) { return m }
        if let m = differs("height", r.height, t.height) { return m }
        if let m = differs("noise_generator", r.noiseGenerator, t.noiseGenerator ?? .vidrd) { return m }
        if let m = differs("scheduler", r.scheduler, t.scheduler) { return m }
        if let m = differs("weight", r.weight, t.weight ?? 1) { return m }
        if let chain = r.strategies, chain.map(\.name) != (t.strategies ?? []).map(\.name) {
            return "chain \(chain.map(\.name)) differs from the continuation's \((t.strategies ?? []).map(\.name))"
        }
        return nil
    }
}
