/*
 * vidrd_kernels.h — the runtime's own compute kernels, chosen per CPU at run time.
 *
 * Every kernel is compiled for the x86-64 baseline; the AVX2 and AVX-512 bodies carry
 * per-function target attributes and are only called after CPUID said the CPU has them, so
 * the library needs no build flag and runs on any x86-64 (and builds, with the portable paths
 * only, anywhere else).
 *
 * GEMM definition (all ISAs): for every element,
 *
 *     C[i][j] = fma(A[i][k-1], b'(k-1,j), ... fma(A[i][1], b'(1,j), fma(A[i][0], b'(0,j), c0)))
 *
 * with b'(p,j) = fl(alpha * B[p][j]) (B itself when alpha == 1), and c0 = 0 when beta == 0
 * (C is not read), C[i][j] when beta == 1, fl(beta * C[i][j]) otherwise. One fused
 * multiply-add per k, in increasing k, for every element: the result of an element depends on
 * its row of A, its column of B and nothing else — not on m, n, its position in the call, the
 * blocking or the ISA. That is what lets the daemon batch sessions into one call and still
 * produce every session's frames bit for bit, and what the tests check against the scalar
 * reference below.
 */
#ifndef VIDRD_KERNELS_H
#define VIDRD_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Instruction sets a kernel can be built for, in increasing order. */
typedef enum {
    VIDRD_ISA_GENERIC = 0, /* no kernel of ours: callers use their portable fallback */
    VIDRD_ISA_AVX2 = 1,    /* AVX2 + FMA (x86-64, Haswell and later) */
    VIDRD_ISA_AVX512 = 2,  /* AVX-512 F (x86-64) */
} vidrd_isa;

/* The best ISA this CPU runs (CPUID, and the OS saving the vector registers). */
vidrd_isa vidrd_isa_supported(void);

/* 1 when this library was compiled with optimisation (the intrinsics kernels are only fast then). */
int vidrd_kernels_optimized(void);

/* Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, as defined above.
 * `isa` must be AVX2 or AVX512 and at most vidrd_isa_supported(); returns 0 on success,
 * -1 (nothing written) for an ISA this build or CPU lacks, or when scratch memory cannot be had. */
int vidrd_sgemm(vidrd_isa isa, int trans_a, int trans_b,
                long m, long n, long k, float alpha,
                const float *a, long lda, const float *b, long ldb,
                float beta, float *c, long ldc);

/* A layer's weight packed once, for the same product without packing B on every call.
 * vidrd_packed_b_floats: the floats op(B) (n x k) takes packed for `isa`'s kernel (-1 when the
 * ISA is not runnable here). vidrd_pack_b: packs it (as vidrd_sgemm would with alpha 1) into
 * dst, which must be 64-byte aligned. vidrd_sgemm_packed: C = A * op(B) + beta * C with a
 * row-major A, bit for bit what vidrd_sgemm(isa, 0, trans_b, m, n, k, 1, a, lda, b, ldb, beta,
 * c, ldc) computes. All return 0, or -1 when the ISA or scratch memory is missing. */
long vidrd_packed_b_floats(vidrd_isa isa, long n, long k);
int vidrd_pack_b(vidrd_isa isa, int trans_b, long n, long k, const float *b, long ldb, float *dst);
int vidrd_sgemm_packed(vidrd_isa isa, long m, long n, long k, const float *a, long lda,
                       const float *packed_b, float beta, float *c, long ldc);

/* Weights kept in the checkpoint's own 16-bit format (IEEE half or bf16), in exact fp32 mode:
 * packed once like vidrd_pack_b, but as 16-bit values, and widened to fp32 one panel at a time
 * inside the product. Widening either format is exact, so vidrd_sgemm_packed_half gives bit for
 * bit what vidrd_sgemm_packed gives on the widened weights, in half the weight memory.
 * vidrd_packed_b_halves: the 16-bit values op(B) takes packed (-1 when the ISA is not runnable).
 * vidrd_pack_b_half: packs B stored as its transpose (b[j * ldb + p], a layer's [out][in]
 * weights) into dst, 64-byte aligned. `format` is VIDRD_HALF_F16 or VIDRD_HALF_BF16. */
enum { VIDRD_HALF_F16 = 1, VIDRD_HALF_BF16 = 2 };
long vidrd_packed_b_halves(vidrd_isa isa, long n, long k);
int vidrd_pack_b_half(vidrd_isa isa, long n, long k, const unsigned short *b, long ldb, unsigned short *dst);
int vidrd_sgemm_packed_half(vidrd_isa isa, int format, long m, long n, long k, const float *a, long lda,
                            const unsigned short *packed_b, float beta, float *c, long ldc);
/* A 3x3 convolution's Winograd F(2x2, 3x3) GEMM at `position` (0-15) from its nine taps kept in
 * 16-bit `format`: packed_taps holds tap y * 3 + x ([out][in], each vidrd_pack_b_half'ed) at
 * packed_taps + (y * 3 + x) * vidrd_packed_b_halves(isa, n, k). The transformed weight
 * U = G g G^T is computed panel by panel inside the product, with the same products and sums in
 * the same order as the runtime's load-time transform (WinogradConv3x3), so the result is bit for
 * bit vidrd_sgemm_packed on the fp32 transformed weight, and no transformed copy is kept. */
int vidrd_sgemm_winograd_half(vidrd_isa isa, int format, int position, long m, long n, long k,
                              const float *a, long lda, const unsigned short *packed_taps, float beta,
                              float *c, long ldc);

/* The bf16 fast mode (gemm_bf16_avx512.c): C = bf16(A) * bf16(op(B)) + beta * C, products summed
 * in fp32 by AVX-512 BF16 dot products, B packed once in bf16 pairs (32-bit words, 64-byte
 * aligned). Not the definition above: each element is a chain of two-product steps in increasing
 * k, still independent of the rest of the call (batch-invariant), but rounded differently from
 * fp32. vidrd_bf16_supported: 1 when this CPU has AVX-512 F and BF16. The others return 0, or -1
 * when it has not (or scratch memory is missing). */
int vidrd_bf16_supported(void);
long vidrd_packed_b_bf16_words(long n, long k);
int vidrd_pack_b_bf16(int trans_b, long n, long k, const float *b, long ldb, unsigned int *dst);
int vidrd_sgemm_bf16(long m, long n, long k, const float *a, long lda, const unsigned int *packed_b,
                     float beta, float *c, long ldc);

/* The definition above, one element at a time (fmaf): the tests' reference. */
void vidrd_sgemm_reference(int trans_a, int trans_b,
                           long m, long n, long k, float alpha,
                           const float *a, long lda, const float *b, long ldb,
                           float beta, float *c, long ldc);

/* Element-wise kernels (elementwise.c); `isa` as above, GENERIC = portable C. The same input
 * gives the same bits on every ISA. */

/* row[j] = exp(row[j] - max(row)); returns the sum of the new row (unnormalised softmax). */
float vidrd_exp_shifted_row(vidrd_isa isa, float *row, long n);
/* p[i] = silu(p[i]) / gelu(p[i]) (erf form), in place. */
void vidrd_silu(vidrd_isa isa, float *p, long n);
void vidrd_gelu(vidrd_isa isa, float *p, long n);
/* GEGLU's gate: row[j] = row[j] * gelu(row[inner + j]) for j < inner. */
void vidrd_gelu_gate(vidrd_isa isa, float *row, long inner);
/* A norm's last step: out[j] = (x[j] - mean[j]) * scale[j] + beta[j], then SiLU when silu != 0. */
void vidrd_affine_row(vidrd_isa isa, const float *x, const float *scale, const float *mean,
                      const float *beta, float *out, long c, int silu);

/* Fused attention for one (sequence, head) (attention.c), for the small products of the U-Net's
 * attention, where the GEMM driver's fixed costs dominate. Contract: the output bits are exactly
 * those of the GEMM-based sequence it replaces, on the same ISA:
 *
 *     S = Q K^T * scale        vidrd_sgemm(isa, 0, 1, m, n, d, scale, q, ldq, k, ldk, 0, S, n)
 *     s_i = vidrd_exp_shifted_row(isa, S[i], visible_i); S[i][visible_i..n) = 0
 *     O = S V                  vidrd_sgemm(isa, 0, 0, m, d, n, 1, S, n, v, ldk, 0, o, ldo)
 *     O[i][j] = O[i][j] * fl(1 / s_i)
 *
 * that is, score(i,j) = the FMA chain over d from 0 of q[i][d] * fl(scale * k[j][d]) (k itself
 * when scale == 1), O[i][c] = the FMA chain over every key j from 0 (zeroed ones included) of
 * S[i][j] * v[j][c]. visible_i = min(n, i + 1) when causal, n otherwise. Q, K, V, O rows are
 * ldq, ldk, ldk, ldo floats apart (heads interleaved in a row); m = query_length, n = key_length,
 * d = head_dim.
 *
 * vidrd_attention_scratch_floats: the floats `scratch` must hold (any alignment), or -1 for a
 * shape the kernel does not take (n or d not positive, n > VIDRD_ATTENTION_MAX_KEYS,
 * d > VIDRD_ATTENTION_MAX_HEAD_DIM): callers then use the GEMM sequence. vidrd_attention_head
 * returns 0, or -1 (nothing written) for such a shape, GENERIC, or an ISA this CPU lacks. */
#define VIDRD_ATTENTION_MAX_KEYS 4096
#define VIDRD_ATTENTION_MAX_HEAD_DIM 256
long vidrd_attention_scratch_floats(long key_length, long head_dim);
int vidrd_attention_head(vidrd_isa isa, long query_length, long key_length, long head_dim, float scale,
                         const float *q, long ldq, const float *k, const float *v, long ldk, float *o, long ldo,
                         int causal, float *scratch);

#ifdef __cplusplus
}
#endif

#endif
