import CVidrdKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a model's layers multiply: exact fp32 (the default, bit for bit the same on every ISA),
/// or the opt-in bf16 fast mode (weights rounded to bf16 and kept so, activations rounded per
/// block, products summed in fp32 by AVX-512 BF16 dot products).
public enum ComputePrecision: String, Sendable, CaseIterable, Codable {
    case fp32, bf16

    public init?(name: String) { self.init(rawValue: name.lowercased()) }

    /// Why this CPU (and `VIDRD_ISA`) cannot run the precision, or nil when it can.
    public static func unavailability(_ precision: ComputePrecision, kernels: ComputeKernels = .active) -> String? {
        switch precision {
        case .fp32: return nil
        case .bf16:
            if vidrd_bf16_supported() == 0 { return "bf16 needs a CPU with AVX-512 BF16 (avx512_bf16); this one has none" }
            if kernels.isa < .avx512 {
                // Lowered by VIDRD_ISA, or a debug build's default (ComputeKernels.preferredInThisBuild).
                return "bf16 needs the AVX-512 kernels, but this process runs \(kernels.isa.rawValue) (set \(ComputeKernels.environmentVariable)=avx512, or use a release build)"
            }
            return nil
        }
    }
}

public struct PrecisionError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

/// A layer's weight `W` (`[out, in]`, PyTorch's layout) as the B operand of `C = A · Wᵀ`, packed
/// once at load into the panels the active kernel reads, so no call packs it again (packing
/// was most of a small GEMM's time: a U-Net's inner levels multiply a few dozen rows).
///
/// The layout depends on the kernel (`ComputeKernels.active`, fixed per process) and the
/// precision; only the packed copy is kept. Without a kernel of ours (`generic`), the plain
/// matrix is kept and OpenBLAS multiplies it.
struct WeightMatrix: Sendable {
    let outFeatures: Int   // n of the GEMM
    let inFeatures: Int    // k
    private let storage: Storage

    private enum Storage: Sendable {
        case plain([Float])
        case packed(AlignedWords, vidrd_isa)
        case bf16(AlignedWords)
    }

    /// `weight`: `outFeatures × inFeatures`, row-major (each output's weights contiguous).
    init(_ weight: [Float], outFeatures: Int, inFeatures: Int, precision: ComputePrecision = .fp32,
         kernels: ComputeKernels = .active) {
        self = weight.withUnsafeBufferPointer {
            WeightMatrix($0, outFeatures: outFeatures, inFeatures: inFeatures, precision: precision, kernels: kernels)
        }
    }

    /// The same from memory the caller owns (a slice of a larger buffer, read only here).
    ///
    /// bf16 is never replaced by fp32 here: the loader refuses a precision the process cannot run
    /// before any layer is built (`WeightLoader.loadComponent`), so asking anyway is a
    /// programming error, and the bits must be what was asked for.
    init(_ weight: UnsafeBufferPointer<Float>, outFeatures: Int, inFeatures: Int, precision: ComputePrecision = .fp32,
         kernels: ComputeKernels = .active) {
        precondition(weight.count == outFeatures * inFeatures)
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        if precision == .bf16 {
            if let why = ComputePrecision.unavailability(.bf16, kernels: kernels) { preconditionFailure(why) }
            guard let words = AlignedWords(count: vidrd_packed_b_bf16_words(outFeatures, inFeatures)),
                  vidrd_pack_b_bf16(1, outFeatures, inFeatures, weight.baseAddress, inFeatures, words.base) == 0
            else { preconditionFailure("no memory to pack a \(outFeatures) × \(inFeatures) bf16 weight") }
            storage = .bf16(words)
            return
        }
        // Without memory for the packed copy the plain matrix multiplies to the same bits.
        if let isa = kernels.kernelISA,
           let words = AlignedWords(count: vidrd_packed_b_floats(isa, outFeatures, inFeatures)),
           vidrd_pack_b(isa, 1, outFeatures, inFeatures, weight.baseAddress, inFeatures, words.floats) == 0 {
            storage = .packed(words, isa)
            return
        }
        storage = .plain(Array(weight))
    }

    /// The precision the layer actually multiplies in.
    var precision: ComputePrecision {
        if case .bf16 = storage { return .bf16 }
        return .fp32
    }

    /// Bytes the weight holds in memory.
    var bytes: Int {
        switch storage {
        case .plain(let w): w.count * 4
        case .packed(let w, _), .bf16(let w): w.count * 4
        }
    }

    /// `C[rows × out] = A[rows × in] · Wᵀ (+ C when accumulate)`, row strides `lda`, `ldc`.
    /// Large products are split by rows over the compute threads, as `sgemm` does; a row's
    /// result does not depend on the split.
    func multiply(rows m: Int, a: UnsafePointer<Float>, lda: Int, accumulate: Bool,
                  c: UnsafeMutablePointer<Float>, ldc: Int) {
        let n = outFeatures, k = inFeatures
        let beta: Float = accumulate ? 1 : 0
        switch storage {
        case .plain(let w):
            w.withUnsafeBufferPointer { wb in
                sgemm(transB: true, m: m, n: n, k: k, a: a, lda: lda, b: wb.baseAddress!, ldb: k,
                      beta: beta, c: c, ldc: ldc)
            }
        case .packed(let words, let isa):
            splitRows(m: m, n: n, k: k) { r0, rows in
                let status = vidrd_sgemm_packed(isa, rows, n, k, a + r0 * lda, lda, words.floats, beta, c + r0 * ldc, ldc)
                precondition(status == 0, "packed GEMM failed (no scratch memory)")
            }
        case .bf16(let words):
            splitRows(m: m, n: n, k: k) { r0, rows in
                let status = vidrd_sgemm_bf16(rows, n, k, a + r0 * lda, lda, words.base, beta, c + r0 * ldc, ldc)
                precondition(status == 0, "bf16 GEMM failed (no scratch memory)")
            }
        }
    }
}

/// A 64-byte-aligned block of 32-bit words that lives as long as the layers sharing it (the
/// kernels load packed panels with aligned vector loads). Immutable after packing.
/// Swift never reads the words; only the C kernels do, as floats or bf16 pairs.
final class AlignedWords: @unchecked Sendable {
    private let raw: UnsafeMutableRawPointer
    let count: Int

    var floats: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    var base: UnsafeMutablePointer<UInt32> { raw.assumingMemoryBound(to: UInt32.self) }

    init?(count: Int) {
        guard count > 0 else { return nil }
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, 64, (count * 4 + 63) / 64 * 64) == 0, let memory else { return nil }
        raw = memory
        self.count = count
    }

    deinit { free(raw) }
}
