import CVidrdKernels
#if canImport(Glibc)
import Glibc
#endif

/// Where the tokens of sequence `s` live inside a row-major `[rows, width]` matrix.
///
/// Sequences are grouped: sequence `s` starts at row
/// `(s / groupSize) * groupStride + (s % groupSize) * memberStride` and its tokens are
/// `tokenStride` rows apart. This one description covers spatial attention (one image per
/// sequence), temporal attention (one pixel across frames: tokens are `H*W` rows apart, read in
/// place with no transposition) and cross-attention (all frames of a batch entry share one text).
struct SequenceLayout {
    var groupSize: Int = 1
    var groupStride: Int
    var memberStride: Int = 0
    var tokenStride: Int = 1

    @inline(__always)
    func baseRow(_ s: Int) -> Int { (s / groupSize) * groupStride + (s % groupSize) * memberStride }

    static func contiguous(length: Int) -> SequenceLayout { SequenceLayout(groupStride: length) }
}

/// Scaled dot-product attention, softmax(Q K^T * scale) V, per sequence and head.
/// Heads are interleaved along the row (`head h` owns columns `h*headDim ..< (h+1)*headDim`).
///
/// Each (sequence, head) runs the fused C kernel (`vidrd_attention_head`) when
/// `FusedAttention.enabled(...)` says so, else two GEMMs around the row softmax. Both give the
/// same bits (vidrd_kernels.h states the contract; OpsTests checks it), so the choice is speed
/// only; `fused` exists for those tests.
func scaledDotProductAttention(
    sequences: Int, queryLength: Int, keyLength: Int, heads: Int, headDim: Int, scale: Float,
    query: UnsafePointer<Float>, queryLayout: SequenceLayout, queryWidth: Int,
    key: UnsafePointer<Float>, value: UnsafePointer<Float>, keyLayout: SequenceLayout, keyWidth: Int,
    output: UnsafeMutablePointer<Float>, outputWidth: Int, causal: Bool = false,
    fused: Bool? = nil
) {
    let jobs = sequences * heads
    let ldq = queryLayout.tokenStride * queryWidth
    let ldk = keyLayout.tokenStride * keyWidth
    let ldo = queryLayout.tokenStride * outputWidth
    @inline(__always)
    func pointers(_ job: Int) -> (q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                  o: UnsafeMutablePointer<Float>) {
        let s = job / heads
        let h = job % heads
        return (query + queryLayout.baseRow(s) * queryWidth + h * headDim,
                key + keyLayout.baseRow(s) * keyWidth + h * headDim,
                value + keyLayout.baseRow(s) * keyWidth + h * headDim,
                output + queryLayout.baseRow(s) * outputWidth + h * headDim)
    }
    func gemmPath(_ range: Range<Int>) {
        var scores = [Float](repeating: 0, count: queryLength * keyLength)
        var sums = [Float](repeating: 0, count: queryLength)
        scores.withUnsafeMutableBufferPointer { sbuf in
            sums.withUnsafeMutableBufferPointer { sumBuf in
                let sp = sbuf.baseAddress!, sums = sumBuf.baseAddress!
                for job in range {
                    let (q, k, v, o) = pointers(job)
                    sgemm(transB: true, m: queryLength, n: keyLength, k: headDim, alpha: scale,
                          a: q, lda: ldq, b: k, ldb: ldk, c: sp, ldc: keyLength)
                    for i in 0..<queryLength {
                        // Causal: query i sees keys 0...i only.
                        let visible = causal ? Swift.min(keyLength, i + 1) : keyLength
                        let row = sp + i * keyLength
                        sums[i] = expShiftedRow(row, count: visible)
                        if visible < keyLength { (row + visible).update(repeating: 0, count: keyLength - visible) }
                    }
                    sgemm(m: queryLength, n: headDim, k: keyLength,
                          a: sp, lda: keyLength, b: v, ldb: ldk, c: o, ldc: ldo)
                    // Normalise the head's output rows rather than every score.
                    for i in 0..<queryLength {
                        let inv = 1 / sums[i]
                        let row = o + i * ldo
                        for j in 0..<headDim { row[j] *= inv }
                    }
                }
            }
        }
    }
    let isa = ComputeKernels.active.kernelISA
    let useFused = isa.map { fused ?? FusedAttention.enabled(isa: $0, keyLength: keyLength) } ?? false
    let scratchCount = useFused ? vidrd_attention_scratch_floats(keyLength, headDim) : -1
    parallelChunks(jobs) { range in
        guard scratchCount >= 0, let isa else { return gemmPath(range) }
        var scratch = [Float](repeating: 0, count: scratchCount)
        let done = scratch.withUnsafeMutableBufferPointer { buf -> Int in
            for job in range {
                let (q, k, v, o) = pointers(job)
                if vidrd_attention_head(isa, queryLength, keyLength, headDim, scale, q, ldq, k, v, ldk, o, ldo,
                                        causal ? 1 : 0, buf.baseAddress!) != 0 { return job }
            }
            return range.upperBound
        }
        if done < range.upperBound { gemmPath(done..<range.upperBound) }
    }
}

/// When scaledDotProductAttention runs the fused kernel by default.
enum FusedAttention {
    /// Intrinsics run ~40x slower unoptimised (SwiftPM builds C at -O0 in debug): there the GEMM
    /// path (assembly micro-kernel) is the faster one.
    static let optimizedBuild = vidrd_kernels_optimized() != 0

    /// Measured against the GEMM path per head on Zen 5 (-O2, one core): up to 256 keys the fused
    /// kernel is 1.1-2.7x faster with AVX-512 (the driver's fixed costs dominate at 16-77 keys)
    /// and 0.92-1.6x with AVX2 (16 ymm registers allow only 4-row tiles); at 1024 keys and more
    /// the GEMM's larger blocked tiles win (AVX-512 ~0.87x, AVX2 ~0.55x), so long sequences
    /// keep the GEMMs. The kernel itself takes up to VIDRD_ATTENTION_MAX_KEYS.
    static let maxKeys = 256

    static func enabled(isa: vidrd_isa, keyLength: Int) -> Bool {
        optimizedBuild && keyLength <= maxKeys && (isa == VIDRD_ISA_AVX512 || isa == VIDRD_ISA_AVX2)
    }
}

/// Numerically stable softmax of each row in place.
@inline(__always)
func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
    for r in 0..<rows { softmaxRow(p + r * columns, count: columns) }
}

/// diffusers `Attention` (query/key/value projections, heads, output projection).
/// Self-attention when no context is given; cross-attention reads keys/values from the context.
public struct AttentionLayer: Sendable {
    public let heads: Int
    public let headDim: Int
    public var innerDim: Int { heads * headDim }
    let toQ: Linear
    let toK: Linear
    let toV: Linear
    let toOut: Linear

    public init(heads: Int, headDim: Int, toQ: Linear, toK: Linear, toV: Linear, toOut: Linear) {
        self.heads = heads
        self.headDim = headDim
        self.toQ = toQ
        self.toK = toK
        self.toV = toV
        self.toOut = toOut
    }

    /// Keys and values for a fixed context (e.g. text embeddings), computed once and reused.
    public struct KeyValues: Sendable {
        let keys: [Float]
        let values: [Float]
        let sequences: Int
        let length: Int
    }

    public func keyValues(context: Tensor) -> KeyValues {
        // context: [sequences, length, dim]
        let seqs = context.shape[0], len = context.shape[1]
        return KeyValues(keys: toK(context).scalars, values: toV(context).scalars, sequences: seqs, length: len)
    }

    /// Self-attention over `x` rows (width = query dim) arranged by `layout`; `out` receives
    /// `to_out(attention)` (callers add their residual).
    func selfAttention(_ x: UnsafePointer<Float>, rows: Int, sequences: Int, length: Int, layout: SequenceLayout,
                       causal: Bool = false, into out: UnsafeMutablePointer<Float>, workspace ws: inout Workspace) {
        let inner = innerDim
        let q = ws.scratch(.query, count: rows * inner)
        let k = ws.scratch(.key, count: rows * inner)
        let v = ws.scratch(.value, count: rows * inner)
        let o = ws.scratch(.attended, count: rows * inner)
        toQ.apply(rows: rows, input: x, output: q)
        toK.apply(rows: rows, input: x, output: k)
        toV.apply(rows: rows, input: x, output: v)
        scaledDotProductAttention(
            sequences: sequences, queryLength: length, keyLength: length,
            heads: heads, headDim: headDim, scale: 1 / Float(headDim).squareRoot(),
            query: q, queryLayout: layout, queryWidth: inner,
            key: k, value: v, keyLayout: layout, keyWidth: inner,
            output: o, outputWidth: inner, causal: causal)
        toOut.apply(rows: rows, input: o, output: out)
    }

    /// Cross-attention: query sequence `s` attends to context sequence `s / framesPerContext`.
    func crossAttention(_ x: UnsafePointer<Float>, rows: Int, sequences: Int, length: Int,
                        context kv: KeyValues, framesPerContext: Int,
                        into out: UnsafeMutablePointer<Float>, workspace ws: inout Workspace) {
        let inner = innerDim
        let q = ws.scratch(.query, count: rows * inner)
        let o = ws.scratch(.attended, count: rows * inner)
        toQ.apply(rows: rows, input: x, output: q)
        kv.keys.withUnsafeBufferPointer { kb in
            kv.values.withUnsafeBufferPointer { vb in
                scaledDotProductAttention(
                    sequences: sequences, queryLength: length, keyLength: kv.length,
                    heads: heads, headDim: headDim, scale: 1 / Float(headDim).squareRoot(),
                    query: q, queryLayout: .contiguous(length: length), queryWidth: inner,
                    key: kb.baseAddress!, value: vb.baseAddress!,
                    keyLayout: SequenceLayout(groupSize: framesPerContext, groupStride: kv.length),
                    keyWidth: inner,
                    output: o, outputWidth: inner)
            }
        }
        toOut.apply(rows: rows, input: o, output: out)
    }
}
