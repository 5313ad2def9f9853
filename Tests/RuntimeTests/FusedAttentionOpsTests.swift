import CVidrdKernels
import Foundation
import Testing
@testable import VidrdRuntime

/// The fused attention kernel promises the GEMM path's bits (vidrd_kernels.h), which is what lets
/// scaledDotProductAttention pick either by speed: a frame must not depend on the choice.
@Suite struct FusedAttentionOpsTests {
    var random = SeededRandomSource(seed: 7)

    /// The GEMM-based sequence, call for call as scaledDotProductAttention's GEMM path makes it,
    /// on one ISA.
    static func gemmHead(_ isa: vidrd_isa, m: Int, n: Int, d: Int, scale: Float,
                         q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         ldk: Int, o: UnsafeMutablePointer<Float>, ldo: Int, causal: Bool) {
        var scores = [Float](repeating: 0, count: m * n)
        scores.withUnsafeMutableBufferPointer { sbuf in
            let sp = sbuf.baseAddress!
            #expect(vidrd_sgemm(isa, 0, 1, m, n, d, scale, q, ldq, k, ldk, 0, sp, n) == 0)
            var sums = [Float](repeating: 0, count: m)
            for i in 0..<m {
                let visible = causal ? min(n, i + 1) : n
                sums[i] = vidrd_exp_shifted_row(isa, sp + i * n, visible)
                for j in visible..<n { sp[i * n + j] = 0 }
            }
            #expect(vidrd_sgemm(isa, 0, 0, m, d, n, 1, sp, n, v, ldk, 0, o, ldo) == 0)
            for i in 0..<m {
                let inv = 1 / sums[i]
                for j in 0..<d { o[i * ldo + j] *= inv }
            }
        }
    }

    /// Every tail of the kernel's tiles: rows past a block of 8, keys past a group of 16 (8 for
    /// AVX2), head dims off a multiple of 8 and 16 (masked lanes) and across the 8 x 8 key
    /// transposition; the head sits between others with padded rows, so writes outside it show.
    @Test mutating func kernelGivesTheGEMMPathsBitsOnEveryISA() {
        let lengths = [1, 3, 8, 9, 16, 17, 33, 77]
        let dims = [1, 8, 15, 16, 17, 40, 64]
        for isa in OpsTests.vectorISAs {
            var mismatches = 0
            for m in lengths {
                for n in lengths {
                    for d in dims {
                        let heads = 3, h = (m + n + d) % heads, width = heads * d + (m % 3)
                        // Scores up to ~±40 now and then: exp's clamp and underflow on the way.
                        let amp: Float = (m * n + d) % 5 == 0 ? 8 : 1.5
                        let q = randn(m * width).map { $0 * amp }, k = randn(n * width).map { $0 * amp }
                        let v = randn(n * width)
                        let scratchCount = vidrd_attention_scratch_floats(n, d)
                        #expect(scratchCount > 0)
                        var scratch = [Float](repeating: 0, count: scratchCount)
                        for causal in [false, true] {
                            let base = (0..<(m * width)).map { Float($0) + 0.5 }
                            var want = base, got = base
                            let scale = 1 / Float(d).squareRoot()
                            q.withUnsafeBufferPointer { qb in k.withUnsafeBufferPointer { kb in v.withUnsafeBufferPointer { vb in
                                let off = h * d
                                want.withUnsafeMutableBufferPointer { wb in
                                    Self.gemmHead(isa, m: m, n: n, d: d, scale: scale, q: qb.baseAddress! + off, ldq: width,
                                                  k: kb.baseAddress! + off, v: vb.baseAddress! + off, ldk: width,
                                                  o: wb.baseAddress! + off, ldo: width, causal: causal)
                                }
                                let status = got.withUnsafeMutableBufferPointer { gb in
                                    vidrd_attention_head(isa, m, n, d, scale, qb.baseAddress! + off, width,
                                                         kb.baseAddress! + off, vb.baseAddress! + off, width,
                                                         gb.baseAddress! + off, width, causal ? 1 : 0, &scratch)
                                }
                                #expect(status == 0)
                            } } }
                            if got.map(\.bitPattern) != want.map(\.bitPattern) {
                                mismatches += 1
                                if mismatches <= 5 { Issue.record("isa \(isa), m \(m) n \(n) d \(d) causal \(causal)") }
                            }
                        }
                    }
                }
            }
            #expect(mismatches == 0, "isa \(isa)")
        }
    }

    @Test func kernelRefusesWhatItDoesNotTake() {
        let s = [Float](repeating: 0, count: 64)
        var o = s, scratch = s
        #expect(vidrd_attention_scratch_floats(0, 8) == -1)
        #expect(vidrd_attention_scratch_floats(Int(VIDRD_ATTENTION_MAX_KEYS) + 1, 8) == -1)
        #expect(vidrd_attention_scratch_floats(16, Int(VIDRD_ATTENTION_MAX_HEAD_DIM) + 1) == -1)
        #expect(vidrd_attention_head(VIDRD_ISA_GENERIC, 1, 1, 1, 1, s, 1, s, s, 1, &o, 1, 0, &scratch) == -1)
        if ComputeKernels.cpuSupported < .avx512 {
            #expect(vidrd_attention_head(VIDRD_ISA_AVX512, 1, 1, 1, 1, s, 1, s, s, 1, &o, 1, 0, &scratch) == -1)
        }
    }

    /// scaledDotProductAttention itself, both ways, on the active ISA (VIDRD_ISA): temporal
    /// layout (tokens H*W rows apart, causal too) and cross-attention (frames sharing a context).
    @Test mutating func attentionGivesTheSameBitsFusedOrNot() {
        // Temporal: 2 batch entries x 3x2 pixels, 16 frames; 4 heads of 8.
        let frames = 16, pixels = 6, batch = 2, heads = 4, headDim = 8, inner = heads * headDim
        let rows = batch * frames * pixels
        let x = randn(rows * inner * 3)
        let temporal = SequenceLayout(groupSize: pixels, groupStride: frames * pixels, memberStride: 1,
                                      tokenStride: pixels)
        for causal in [false, true] {
            func run(_ fused: Bool) -> [UInt32] {
                var out = [Float](repeating: -1, count: rows * inner)
                x.withUnsafeBufferPointer { xb in
                    out.withUnsafeMutableBufferPointer { ob in
                        let q = xb.baseAddress!, k = q + rows * inner, v = k + rows * inner
                        scaledDotProductAttention(
                            sequences: batch * pixels, queryLength: frames, keyLength: frames, heads: heads,
                            headDim: headDim, scale: 1 / Float(headDim).squareRoot(),
                            query: q, queryLayout: temporal, queryWidth: inner,
                            key: k, value: v, keyLayout: temporal, keyWidth: inner,
                            output: ob.baseAddress!, outputWidth: inner, causal: causal, fused: fused)
                    }
                }
                return out.map(\.bitPattern)
            }
            #expect(run(true) == run(false), "temporal, causal \(causal)")
        }

        // Cross-attention: 2 contexts of 77 tokens, 3 frames each, 20 queries per frame; 2 heads of 40.
        let contexts = 2, perContext = 3, length = 20, textLength = 77, xHeads = 2, xDim = 40
        let xInner = xHeads * xDim, queries = contexts * perContext * length
        let q = randn(queries * xInner), kv = randn(2 * contexts * textLength * xInner)
        func cross(_ fused: Bool) -> [UInt32] {
            var out = [Float](repeating: -1, count: queries * xInner)
            q.withUnsafeBufferPointer { qb in
                kv.withUnsafeBufferPointer { kvb in
                    out.withUnsafeMutableBufferPointer { ob in
                        scaledDotProductAttention(
                            sequences: contexts * perContext, queryLength: length, keyLength: textLength,
                            heads: xHeads, headDim: xDim, scale: 1 / Float(xDim).squareRoot(),
                            query: qb.baseAddress!, queryLayout: .contiguous(length: length), queryWidth: xInner,
                            key: kvb.baseAddress!, value: kvb.baseAddress! + contexts * textLength * xInner,
                            keyLayout: SequenceLayout(groupSize: perContext, groupStride: textLength),
                            keyWidth: xInner, output: ob.baseAddress!, outputWidth: xInner, fused: fused)
                    }
                }
            }
            return out.map(\.bitPattern)
        }
        #expect(cross(true) == cross(false), "cross-attention")
    }

    mutating func randn(_ n: Int) -> [Float] { random.standardNormal(count: n) }
}
