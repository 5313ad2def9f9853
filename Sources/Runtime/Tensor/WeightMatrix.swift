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
        /// The checkpoint's 16-bit values, packed alike and widened panel by panel (exact fp32).
        case packedHalves(AlignedWords, vidrd_isa, HalfFormat)
        case bf16(AlignedWords)
    }

    private init(outFeatures: Int, inFeatures: Int, storage: Storage) {
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.storage = storage
    }

    /// From the loader's values: 16-bit values stay 16-bit in exact fp32 mode when a kernel of
    /// ours multiplies them (the product has the widened weights' bits); otherwise they are
    /// widened here and handled as fp32.
    init(_ values: WeightValues, outFeatures: Int, inFeatures: Int, precision: ComputePrecision = .fp32,
         kernels: ComputeKernels = .active) {
        precondition(values.count == outFeatures * inFeatures)
        if case .halves(let bits, let format) = values, precision == .fp32, let isa = kernels.kernelISA,
           let words = AlignedWords(halves: vidrd_packed_b_halves(isa, outFeatures, inFeatures)),
           bits.withUnsafeBufferPointer({
               vidrd_pack_b_half(isa, outFeatures, inFeatures, $0.baseAddress, inFeatures, words.halves)
           }) == 0 {
            self.init(outFeatures: outFeatures, inFeatures: inFeatures, storage: .packedHalves(words, isa, format))
            return
        }
        self.init(values.widened, outFeatures: outFeatures, inFeatures: inFeatures, precision: precision, kernels: kernels)
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

    /// Whether the weight is kept in its checkpoint's 16-bit values.
    var keepsHalves: Bool {
        if case .packedHalves = storage { return true }
        return false
    }

    /// Bytes the weight holds in memory.
    var bytes: Int {
        switch storage {
        case .plain(let w): w.count * 4
        case .packed(let w, _), .packedHalves(let w, _, _), .bf16(let w): w.count * 4
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
        case .packedHalves(let words, let isa, let format):
            splitRows(m: m, n: n, k: k) { r0, rows in
                let status = vidrd_sgemm_packed_half(isa, format.kernelCode, rows, n, k, a + r0 * lda, lda, words.halves,
                                                     beta, c + r0 * ldc, ldc)
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
/// Swift never reads the words; only the C kernels do, as floats, 16-bit values or bf16 pairs.
final class AlignedWords: @unchecked Sendable {
    private let raw: UnsafeMutableRawPointer
    /// Bytes mapped for this block alone (large blocks), or 0 when it came from malloc.
    private let mappedBytes: Int
    let count: Int

    var floats: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    var base: UnsafeMutablePointer<UInt32> { raw.assumingMemoryBound(to: UInt32.self) }
    var halves: UnsafeMutablePointer<UInt16> { raw.assumingMemoryBound(to: UInt16.self) }

    /// Room for `halves` 16-bit values.
    convenience init?(halves: Int) { self.init(count: (halves + 1) / 2) }

    init?(count: Int) {
        guard count > 0 else { return nil }
        self.count = count
        #if os(Linux)
        // Large weights get their own mapping, on transparent huge pages where the system offers
        // them on request: a ModelScope-size model packs ~3.5 GB, which in 4 KiB pages is most of
        // its load time in page faults and TLB misses on every pass; and kept off the heap, they
        // leave its freed space to the load's short-lived copies instead of fragmenting it.
        let huge = 2 << 20
        if count * 4 >= 2 * huge {
            let bytes = (count * 4 + huge - 1) / huge * huge
            guard let map = mmap(nil, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  map != MAP_FAILED else { return nil }
            let head = (huge - Int(bitPattern: map) % huge) % huge
            if head > 0 { munmap(map, head) }
            let aligned = map + head
            if huge - head > 0 { munmap(aligned + bytes, huge - head) }
            _ = madvise(aligned, bytes, MADV_HUGEPAGE)
            raw = aligned
            mappedBytes = bytes
            return
        }
        #endif
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, 64, (count * 4 + 63) / 64 * 64) == 0, let memory else { return nil }
        raw = memory
        mappedBytes = 0
    }

    deinit {
        #if os(Linux)
        if mappedBytes > 0 {
            munmap(raw, mappedBytes)
            return
        }
        #endif
        free(raw)
    }
}
