#if canImport(Glibc)
import Glibc
#endif

/// The one place Gaussian noise comes from. Pipelines and noise strategies draw through this seam
/// so that a seed, or a recorded tape of tensors, reproduces a stream exactly.
public protocol RandomSource {
    /// `count` independent standard-normal samples.
    mutating func standardNormal(count: Int) -> [Float]
    /// One standard-normal tensor of `shape`. The default draws `standardNormal(count:)`; a tape
    /// source checks the recorded tensor's shape and throws when it differs or the tape is spent.
    mutating func standardNormal(shape: [Int]) throws -> Tensor
}

extension RandomSource {
    public mutating func standardNormal(shape: [Int]) throws -> Tensor {
        Tensor(shape: shape, scalars: standardNormal(count: shape.reduce(1, *)))
    }
}

/// The documented default generator, so that streams are reproducible from a seed on any build:
///
/// - state: xoshiro256** (Blackman & Vigna), its four words seeded from SplitMix64(seed);
/// - uniforms: `u = (next() >> 40 + 0.5) / 2^24`, strictly inside (0, 1);
/// - normals: Box–Muller on consecutive pairs `(u1, u2)`, yielding `r cos θ` then `r sin θ`
///   with `r = sqrt(-2 ln u1)`, `θ = 2π u2`, computed in Double and rounded to Float.
///
/// A draw of an odd count discards the unused sine half, so every call starts on a fresh pair
/// and the sequence depends only on the seed and the list of counts requested.
public struct SeededRandomSource: RandomSource, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    @inline(__always)
    private mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    @inline(__always)
    private mutating func uniform() -> Double {
        (Double(next() >> 40) + 0.5) / 16_777_216.0
    }

    public mutating func standardNormal(count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        var i = 0
        while i < count {
            let r = (-2 * log(uniform())).squareRoot()
            let theta = 2 * Double.pi * uniform()
            out[i] = Float(r * cos(theta))
            if i + 1 < count { out[i + 1] = Float(r * sin(theta)) }
            i += 2
        }
        return out
    }
}

extension SeededRandomSource: ResumableRandomSource {
    public func saveState(into writer: inout StateWriter) {
        for w in [s.0, s.1, s.2, s.3] { writer.u64(w) }
    }

    public mutating func restoreState(from reader: inout StateReader) throws {
        let w = (try reader.u64("xoshiro word 0"), try reader.u64("xoshiro word 1"),
                 try reader.u64("xoshiro word 2"), try reader.u64("xoshiro word 3"))
        // xoshiro's all-zero state is a fixed point (it would draw the same value forever), and
        // SplitMix64 seeding never produces it.
        guard w.0 | w.1 | w.2 | w.3 != 0 else { throw StateCodingError("xoshiro state is all zero") }
        s = w
    }

    public var stateSizeBound: Int { 32 }
}
