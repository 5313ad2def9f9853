#if canImport(Glibc)
import Glibc
#endif

/// PyTorch's CPU generator, bit for bit: `torch.Generator().manual_seed(seed)` followed by
/// `torch.randn(…, generator=g)` / `torch.normal(0, s, …, generator=g)` (= randn · Float(s)), so a
/// run of PyTorch code with seed s and a vidrd run with seed s start from identical noise.
///
/// What torch does (ATen `CPUGeneratorImpl`, `DistributionTemplates.h`, `avx_mathfun.h`):
/// - engine: MT19937 seeded with the low 32 bits of the seed (Knuth's initialisation);
/// - a float tensor of ≥ 16 values is first filled with uniforms `(next() & 0xFFFFFF) · 2⁻²⁴`,
///   then every block of 16 becomes normals by Box–Muller on the pairs (j, j+8) — `r cos θ` into
///   j, `r sin θ` into j+8 — and when the count is not a multiple of 16 the last 16 values are
///   redrawn from fresh uniforms and transformed again (so a draw is not a prefix of a longer one);
/// - on x86-64 CPUs with AVX2 (torch's `normal_fill_AVX2` kernel) log, sin and cos are the Cephes
///   polynomials of `avx_mathfun.h` in fp32, with the fused multiply-adds the torch wheel's
///   compiler contracted — libm's `logf`/`cosf` differ in the last bit on a share of values;
/// - fewer than 16 values take the scalar path: Box–Muller in Double from 53-bit uniforms, the
///   sine half cached in the generator for the next such value.
///
/// Pinned against values recorded from torch 2.15 in `RandomSourceTests`.
public struct TorchRandomSource: RandomSource, Sendable {
    private var engine: MT19937
    private var cachedNormal: Double?

    public init(seed: UInt64) {
        engine = MT19937(seed: UInt32(truncatingIfNeeded: seed))
    }

    public mutating func standardNormal(count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        guard count >= 16 else {
            for i in 0..<count { out[i] = Float(scalarNormal()) }
            return out
        }
        for i in 0..<count { out[i] = uniformFloat() }
        out.withUnsafeMutableBufferPointer { b in
            let p = b.baseAddress!
            var i = 0
            while i + 16 <= count { Self.boxMuller16(p + i); i += 16 }
            if count % 16 != 0 {
                let tail = p + count - 16
                for j in 0..<16 { tail[j] = uniformFloat() }
                Self.boxMuller16(tail)
            }
        }
        return out
    }

    /// `uniform_real_distribution<float>(0, 1)`: 24 random bits.
    @inline(__always)
    private mutating func uniformFloat() -> Float {
        Float(engine.next() & 0xFF_FFFF) * (1.0 / 16_777_216.0)
    }

    /// `uniform_real_distribution<double>(0, 1)`: 53 bits of `random64()` = (first << 32) | second.
    private mutating func uniformDouble() -> Double {
        let hi = UInt64(engine.next()), lo = UInt64(engine.next())
        return Double(((hi << 32) | lo) & ((1 << 53) - 1)) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `at::normal_distribution<double>` as the scalar kernel calls it (mean 0, std 1).
    private mutating func scalarNormal() -> Double {
        if let cached = cachedNormal {
            cachedNormal = nil
            return cached
        }
        let u1 = uniformDouble(), u2 = uniformDouble()
        let r = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedNormal = r * sin(theta)
        return r * cos(theta)
    }

    /// `normal_fill_16_AVX2` with mean 0 and std 1, one lane at a time.
    static func boxMuller16(_ d: UnsafeMutablePointer<Float>) {
        let twoPi = Float(2.0 * Double.pi)
        for j in 0..<8 {
            let u1 = 1 - d[j]  // [0, 1) → (0, 1] for the log
            let u2 = d[j + 8]
            let radius = (-2 * CephesFloat.log(u1)).squareRoot()
            let (s, c) = CephesFloat.sincos(twoPi * u2)
            d[j] = radius * c
            d[j + 8] = radius * s
        }
    }
}

/// The 32-bit Mersenne Twister (Matsumoto & Nishimura 1998), as `at::mt19937`.
struct MT19937: Sendable {
    private static let n = 624, m = 397
    private var state: [UInt32]
    private var index: Int

    init(seed: UInt32) {
        var s = [UInt32](repeating: 0, count: Self.n)
        s[0] = seed
        for i in 1..<Self.n {
            s[i] = 1_812_433_253 &* (s[i - 1] ^ (s[i - 1] >> 30)) &+ UInt32(i)
        }
        state = s
        index = Self.n
    }

    mutating func next() -> UInt32 {
        if index >= Self.n { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    private mutating func twist() {
        let n = Self.n, m = Self.m
        state.withUnsafeMutableBufferPointer { s in
            for i in 0..<n {
                let y = (s[i] & 0x8000_0000) | (s[(i + 1) % n] & 0x7FFF_FFFF)
                var v = y >> 1
                if y & 1 != 0 { v ^= 0x9908_B0DF }
                s[i] = s[(i + m) % n] ^ v
            }
        }
        index = 0
    }
}

extension TorchRandomSource: ResumableRandomSource {
    public func saveState(into writer: inout StateWriter) {
        engine.saveState(into: &writer)
        writer.bool(cachedNormal != nil)
        writer.f64(cachedNormal ?? 0)
    }

    public mutating func restoreState(from reader: inout StateReader) throws {
        var e = engine
        try e.restoreState(from: &reader)
        let cached = try reader.bool("cached normal flag")
        let value = try reader.f64("cached normal")
        guard value.isFinite else { throw StateCodingError("cached normal is \(value), expected a finite value") }
        engine = e
        cachedNormal = cached ? value : nil
    }

    public var stateSizeBound: Int { MT19937.stateSize + 1 + 8 }
}

extension MT19937 {
    static let stateSize = StateWriter.u32ArraySize(n) + 4

    func saveState(into writer: inout StateWriter) {
        writer.u32Array(state)
        writer.u32(UInt32(index))
    }

    mutating func restoreState(from reader: inout StateReader) throws {
        let s = try reader.u32Array("MT19937 state", count: Self.n)
        let i = Int(try reader.u32("MT19937 index"))
        // index == n means "twist before the next draw" (a fresh generator); more would read past the state.
        guard i <= Self.n else { throw StateCodingError("MT19937 index is \(i), at most \(Self.n)") }
        state = s
        index = i
    }
}
