import CVidrdKernels

/// The 16-bit formats a checkpoint may store weights in. Both widen to fp32 exactly, so a layer
/// can keep them as they are and multiply with fp32's bits in half the memory.
enum HalfFormat: Sendable {
    case f16, bf16

    var kernelCode: Int32 {
        switch self {
        case .f16: Int32(VIDRD_HALF_F16)
        case .bf16: Int32(VIDRD_HALF_BF16)
        }
    }

    func widen(_ bits: UInt16) -> Float {
        switch self {
        case .f16: float16ToFloat(bits)
        case .bf16: Float(bitPattern: UInt32(bits) << 16)
        }
    }
}

/// How the layers hold an F16 or BF16 checkpoint's weights in exact fp32 mode. Both compute the
/// same bits (widening is exact), so this trades memory against speed and nothing else:
/// `checkpoint` (the default) keeps the 16-bit values, half the memory, widened panel by panel
/// inside each product; `fp32` widens them once at load, twice the memory, and is faster where
/// layers have few rows (a big model at small latents; BENCHMARKS.md, "A ModelScope-size folder").
public enum WeightStorage: String, Sendable, CaseIterable, Codable {
    case checkpoint, fp32

    public init?(name: String) { self.init(rawValue: name.lowercased()) }
}

/// A layer weight's values as the loader hands them over: fp32, or the checkpoint's own 16-bit
/// values, kept when the layers can multiply them exactly (exact fp32 mode with a kernel of
/// ours; `WeightLoader.takeWeight`).
enum WeightValues: Sendable {
    case floats([Float])
    case halves([UInt16], HalfFormat)

    var count: Int {
        switch self {
        case .floats(let w): w.count
        case .halves(let h, _): h.count
        }
    }

    /// The values as fp32 (exact for halves).
    var widened: [Float] {
        switch self {
        case .floats(let w): w
        case .halves(let h, let format): h.map(format.widen)
        }
    }

    /// `[a][b][c]` re-laid as `[a][c][b]` (a conv's `[Cout, Cin, kh·kw]` as `[Cout, kh·kw, Cin]`).
    func swappingLastTwoAxes(_ a: Int, _ b: Int, _ c: Int) -> WeightValues {
        switch self {
        case .floats(let w): .floats(Self.swapLastTwo(w, a, b, c))
        case .halves(let h, let format): .halves(Self.swapLastTwo(h, a, b, c), format)
        }
    }

    /// Of `[a][b][c]`, the `[a][b]` matrix at last index `index` (a temporal conv's tap).
    func selectingLast(_ index: Int, of c: Int) -> WeightValues {
        switch self {
        case .floats(let w): .floats(stride(from: index, to: w.count, by: c).map { w[$0] })
        case .halves(let h, let format): .halves(stride(from: index, to: h.count, by: c).map { h[$0] }, format)
        }
    }

    private static func swapLastTwo<T>(_ x: [T], _ a: Int, _ b: Int, _ c: Int) -> [T] {
        precondition(x.count == a * b * c)
        guard let first = x.first else { return x }
        var out = [T](repeating: first, count: x.count)
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for o in 0..<a {
                    let s = o * b * c
                    for i in 0..<b { for k in 0..<c { dst[s + k * b + i] = src[s + i * c + k] } }
                }
            }
        }
        return out
    }
}
