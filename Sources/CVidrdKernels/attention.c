/* One attention head fused into one call: the bits of the GEMM-based sequence (vidrd_kernels.h),
 * without the GEMM driver. The U-Net's attention is many tiny products (16 frames of temporal
 * attention, 16-256 tokens of spatial attention at low resolution, head dims 8-64), where the
 * driver's fixed costs (thread-local scratch, packing, zero-padded copies of every partial tile)
 * cost more than the arithmetic.
 *
 * Each element is computed with exactly the operations the GEMM's definition and the Swift code
 * apply to it, in the same order: a score is one FMA chain over d from 0 with the key pre-scaled
 * (fl(scale * k), as the GEMM folds alpha into B), the row goes through vidrd_exp_shifted_row
 * itself, an output is one FMA chain over every key from 0 (masked keys' zeros included, as the
 * GEMM sees them), then a multiply by fl(1 / sum). Vectorising across keys (scores) and across
 * head-dim lanes (outputs) keeps every chain whole in one lane.
 *
 * Work goes in blocks of ROWS queries so that the block's scores stay in L1 between the two
 * products, whatever the query length. */
#include "vidrd_kernels.h"
#include "elementwise_internal.h"

/* The vector bodies must not turn the 1 / sum and multiply into anything else, and the scalar
 * key scaling must stay a lone multiply. */
#pragma STDC FP_CONTRACT OFF

#define ROWS 8
/* Keys are laid out in 16-float groups for both bodies (a multiple of AVX2's 8). */
#define KEY_PAD 16

static inline long round_up(long x, long to) { return (x + to - 1) / to * to; }

long vidrd_attention_scratch_floats(long key_length, long head_dim) {
    if (key_length <= 0 || key_length > VIDRD_ATTENTION_MAX_KEYS || head_dim <= 0 ||
        head_dim > VIDRD_ATTENTION_MAX_HEAD_DIM)
        return -1;
    return (head_dim + ROWS) * round_up(key_length, KEY_PAD);
}

/* The softmax step between the products, per row of the block, as the Swift code does it, with
 * vidrd_exp_shifted_row's body for the ISA (elementwise_internal.h). */
static void softmax_rows(float (*exp_shifted_row)(float *, long), long i0, long rows, long key_length,
                         int causal, float *p, long kp, float *inv) {
    for (long r = 0; r < rows; r++) {
        const long i = i0 + r;
        const long visible = causal && i + 1 < key_length ? i + 1 : key_length;
        float *row = p + r * kp;
        inv[r] = 1.0f / exp_shifted_row(row, visible);
        for (long j = visible; j < key_length; j++) row[j] = 0.0f;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

/* kt[d * kp + j] = fl(scale * k[j][d]) (the GEMM's packed B, column j = key j), zero past the
 * last key, so the score loops run whole vectors and the padding's scores are never read.
 *
 * By 8 x 8 blocks in registers (AVX, so both bodies can call it). Walking a
 * column of K reads one float per row, and the rows of one head are a multiple of 1 KiB apart
 * (heads interleaved), so a column walk keeps landing in the same few cache sets: the plain loop
 * took as long as the products at 256 keys. Blocks read 32 bytes per row and write 32 per column;
 * the multiply is the same single rounding as the scalar one. The ragged edges use the scalar
 * loop, key by key. */
__attribute__((target("avx2"))) static void transpose_scaled_keys_avx(long key_length, long head_dim, float scale,
                                                                      const float *k, long ldk, float *kt, long kp) {
    const long jf = key_length / 8 * 8, df = head_dim / 8 * 8;
    const __m256 vs = _mm256_set1_ps(scale);
    for (long j0 = 0; j0 < jf; j0 += 8) {
        const float *src = k + j0 * ldk;
        for (long d0 = 0; d0 < df; d0 += 8) {
            __m256 r[8];
            for (int l = 0; l < 8; l++) {
                r[l] = _mm256_loadu_ps(src + l * ldk + d0);
                if (scale != 1.0f) r[l] = _mm256_mul_ps(vs, r[l]);
            }
            const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
            const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
            const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
            const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
            const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
            const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
            const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
            const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
            const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
            const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
            const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
            const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
            float *dst = kt + d0 * kp + j0;
            _mm256_storeu_ps(dst + 0 * kp, _mm256_permute2f128_ps(s0, s4, 0x20));
            _mm256_storeu_ps(dst + 1 * kp, _mm256_permute2f128_ps(s1, s5, 0x20));
            _mm256_storeu_ps(dst + 2 * kp, _mm256_permute2f128_ps(s2, s6, 0x20));
            _mm256_storeu_ps(dst + 3 * kp, _mm256_permute2f128_ps(s3, s7, 0x20));
            _mm256_storeu_ps(dst + 4 * kp, _mm256_permute2f128_ps(s0, s4, 0x31));
            _mm256_storeu_ps(dst + 5 * kp, _mm256_permute2f128_ps(s1, s5, 0x31));
            _mm256_storeu_ps(dst + 6 * kp, _mm256_permute2f128_ps(s2, s6, 0x31));
            _mm256_storeu_ps(dst + 7 * kp, _mm256_permute2f128_ps(s3, s7, 0x31));
        }
        for (long l = 0; l < 8; l++)
            for (long d = df; d < head_dim; d++)
                kt[d * kp + j0 + l] = scale == 1.0f ? src[l * ldk + d] : scale * src[l * ldk + d];
    }
    for (long j = jf; j < key_length; j++)
        for (long d = 0; d < head_dim; d++)
            kt[d * kp + j] = scale == 1.0f ? k[j * ldk + d] : scale * k[j * ldk + d];
    for (long d = 0; d < head_dim; d++)
        for (long j = key_length; j < kp; j++) kt[d * kp + j] = 0.0f;
}

/* ---- AVX-512 ------------------------------------------------------------------------------ */
#define AVX512 __attribute__((target("avx512f")))
#define INLINE __attribute__((always_inline)) static inline

/* Scores of R query rows against NB groups of 16 keys starting at key j0: R * NB independent
 * chains, so the FMA latency is hidden. The FMA's operands are the GEMM kernel's (A broadcast,
 * B vector, accumulator). */
INLINE AVX512 void scores_tile_avx512(const int R, const int NB, long head_dim, const float *q, long ldq,
                                      const float *kt, long kp, long j0, float *p) {
    __m512 acc[ROWS][2];
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) acc[r][b] = _mm512_setzero_ps();
    for (long d = 0; d < head_dim; d++) {
        __m512 kv[2];
        for (int b = 0; b < NB; b++) kv[b] = _mm512_loadu_ps(kt + d * kp + j0 + 16 * b);
        for (int r = 0; r < R; r++) {
            const __m512 qv = _mm512_set1_ps(q[r * ldq + d]);
            for (int b = 0; b < NB; b++) acc[r][b] = _mm512_fmadd_ps(qv, kv[b], acc[r][b]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) _mm512_storeu_ps(p + r * kp + j0 + 16 * b, acc[r][b]);
}

INLINE AVX512 void scores_rows_avx512(const int R, long key_length, long head_dim, const float *q, long ldq,
                                      const float *kt, long kp, float *p) {
    long j0 = 0;
    for (; j0 + 32 <= key_length; j0 += 32) scores_tile_avx512(R, 2, head_dim, q, ldq, kt, kp, j0, p);
    for (; j0 < key_length; j0 += 16) scores_tile_avx512(R, 1, head_dim, q, ldq, kt, kp, j0, p);
}

/* Outputs of R rows for NB vectors of head-dim lanes from d0 (the last one masked by `last`):
 * a chain over every key, then the multiply by the row's 1 / sum. */
INLINE AVX512 void output_tile_avx512(const int R, const int NB, long key_length, const float *p, long kp,
                                      const float *v, long ldk, long d0, __mmask16 last, const float *inv,
                                      float *o, long ldo) {
    __m512 acc[ROWS][2];
    __mmask16 mask[2];
    for (int b = 0; b < NB; b++) mask[b] = b == NB - 1 ? last : (__mmask16)0xFFFF;
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) acc[r][b] = _mm512_setzero_ps();
    for (long j = 0; j < key_length; j++) {
        __m512 vv[2];
        for (int b = 0; b < NB; b++) vv[b] = _mm512_maskz_loadu_ps(mask[b], v + j * ldk + d0 + 16 * b);
        for (int r = 0; r < R; r++) {
            const __m512 pv = _mm512_set1_ps(p[r * kp + j]);
            for (int b = 0; b < NB; b++) acc[r][b] = _mm512_fmadd_ps(pv, vv[b], acc[r][b]);
        }
    }
    for (int r = 0; r < R; r++) {
        const __m512 s = _mm512_set1_ps(inv[r]);
        for (int b = 0; b < NB; b++)
            _mm512_mask_storeu_ps(o + r * ldo + d0 + 16 * b, mask[b], _mm512_mul_ps(acc[r][b], s));
    }
}

INLINE AVX512 void output_rows_avx512(const int R, long key_length, long head_dim, const float *p, long kp,
                                      const float *v, long ldk, const float *inv, float *o, long ldo) {
    long d0 = 0;
    for (; d0 + 32 <= head_dim; d0 += 32)
        output_tile_avx512(R, 2, key_length, p, kp, v, ldk, d0, 0xFFFF, inv, o, ldo);
    for (; d0 < head_dim; d0 += 16) {
        const long w = head_dim - d0 < 16 ? head_dim - d0 : 16;
        output_tile_avx512(R, 1, key_length, p, kp, v, ldk, d0, (__mmask16)((1u << w) - 1), inv, o, ldo);
    }
}

/* R as a constant in every instantiation keeps the accumulators in registers. */
#define BY_ROWS(R, CALL)                     \
    switch (R) {                             \
    case 8: CALL(8); break;                  \
    case 7: CALL(7); break;                  \
    case 6: CALL(6); break;                  \
    case 5: CALL(5); break;                  \
    case 4: CALL(4); break;                  \
    case 3: CALL(3); break;                  \
    case 2: CALL(2); break;                  \
    default: CALL(1); break;                 \
    }

AVX512 static void head_avx512(long query_length, long key_length, long head_dim, float scale, const float *q,
                               long ldq, const float *k, const float *v, long ldk, float *o, long ldo, int causal,
                               float *scratch) {
    const long kp = round_up(key_length, KEY_PAD);
    float *kt = scratch, *p = scratch + head_dim * kp;
    transpose_scaled_keys_avx(key_length, head_dim, scale, k, ldk, kt, kp);
    for (long i0 = 0; i0 < query_length; i0 += ROWS) {
        const long rows = query_length - i0 < ROWS ? query_length - i0 : ROWS;
        const float *qb = q + i0 * ldq;
#define SCORES(R) scores_rows_avx512(R, key_length, head_dim, qb, ldq, kt, kp, p)
        BY_ROWS(rows, SCORES)
#undef SCORES
        float inv[ROWS];
        softmax_rows(vidrd_exp_shifted_row_avx512_body, i0, rows, key_length, causal, p, kp, inv);
        float *ob = o + i0 * ldo;
#define OUTPUT(R) output_rows_avx512(R, key_length, head_dim, p, kp, v, ldk, inv, ob, ldo)
        BY_ROWS(rows, OUTPUT)
#undef OUTPUT
    }
}

/* ---- AVX2 + FMA: the same loops, 8 lanes ---------------------------------------------------- */
#define AVX2 __attribute__((target("avx2,fma")))

INLINE AVX2 void scores_tile_avx2(const int R, const int NB, long head_dim, const float *q, long ldq,
                                  const float *kt, long kp, long j0, float *p) {
    __m256 acc[ROWS][2];
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) acc[r][b] = _mm256_setzero_ps();
    for (long d = 0; d < head_dim; d++) {
        __m256 kv[2];
        for (int b = 0; b < NB; b++) kv[b] = _mm256_loadu_ps(kt + d * kp + j0 + 8 * b);
        for (int r = 0; r < R; r++) {
            const __m256 qv = _mm256_set1_ps(q[r * ldq + d]);
            for (int b = 0; b < NB; b++) acc[r][b] = _mm256_fmadd_ps(qv, kv[b], acc[r][b]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) _mm256_storeu_ps(p + r * kp + j0 + 8 * b, acc[r][b]);
}

INLINE AVX2 void scores_strip_avx2(const int R, long key_length, long head_dim, const float *q, long ldq,
                                   const float *kt, long kp, float *p) {
    long j0 = 0;
    for (; j0 + 16 <= key_length; j0 += 16) scores_tile_avx2(R, 2, head_dim, q, ldq, kt, kp, j0, p);
    for (; j0 < key_length; j0 += 8) scores_tile_avx2(R, 1, head_dim, q, ldq, kt, kp, j0, p);
}

/* 16 ymm registers: tiles of at most 4 rows x 2 vectors, 8 accumulators. */
INLINE AVX2 void scores_rows_avx2(const int R, long key_length, long head_dim, const float *q, long ldq,
                                  const float *kt, long kp, float *p) {
    if (R <= 4) {
        scores_strip_avx2(R, key_length, head_dim, q, ldq, kt, kp, p);
        return;
    }
    scores_strip_avx2(4, key_length, head_dim, q, ldq, kt, kp, p);
    scores_strip_avx2(R - 4, key_length, head_dim, q + 4 * ldq, ldq, kt, kp, p + 4 * kp);
}

INLINE AVX2 void output_tile_avx2(const int R, const int NB, long key_length, const float *p, long kp,
                                  const float *v, long ldk, long d0, __m256i last, const float *inv, float *o,
                                  long ldo) {
    __m256 acc[ROWS][2];
    __m256i mask[2];
    for (int b = 0; b < NB; b++) mask[b] = b == NB - 1 ? last : _mm256_set1_epi32(-1);
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) acc[r][b] = _mm256_setzero_ps();
    for (long j = 0; j < key_length; j++) {
        __m256 vv[2];
        for (int b = 0; b < NB; b++) vv[b] = _mm256_maskload_ps(v + j * ldk + d0 + 8 * b, mask[b]);
        for (int r = 0; r < R; r++) {
            const __m256 pv = _mm256_set1_ps(p[r * kp + j]);
            for (int b = 0; b < NB; b++) acc[r][b] = _mm256_fmadd_ps(pv, vv[b], acc[r][b]);
        }
    }
    for (int r = 0; r < R; r++) {
        const __m256 s = _mm256_set1_ps(inv[r]);
        for (int b = 0; b < NB; b++) _mm256_maskstore_ps(o + r * ldo + d0 + 8 * b, mask[b], _mm256_mul_ps(acc[r][b], s));
    }
}

INLINE AVX2 void output_strip_avx2(const int R, long key_length, long head_dim, const float *p, long kp,
                                   const float *v, long ldk, const float *inv, float *o, long ldo) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    long d0 = 0;
    for (; d0 + 16 <= head_dim; d0 += 16)
        output_tile_avx2(R, 2, key_length, p, kp, v, ldk, d0, _mm256_set1_epi32(-1), inv, o, ldo);
    for (; d0 < head_dim; d0 += 8) {
        const __m256i last = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(head_dim - d0)), lane);
        output_tile_avx2(R, 1, key_length, p, kp, v, ldk, d0, last, inv, o, ldo);
    }
}

INLINE AVX2 void output_rows_avx2(const int R, long key_length, long head_dim, const float *p, long kp,
                                  const float *v, long ldk, const float *inv, float *o, long ldo) {
    if (R <= 4) {
        output_strip_avx2(R, key_length, head_dim, p, kp, v, ldk, inv, o, ldo);
        return;
    }
    output_strip_avx2(4, key_length, head_dim, p, kp, v, ldk, inv, o, ldo);
    output_strip_avx2(R - 4, key_length, head_dim, p + 4 * kp, kp, v, ldk, inv + 4, o + 4 * ldo, ldo);
}

AVX2 static void head_avx2(long query_length, long key_length, long head_dim, float scale, const float *q,
                           long ldq, const float *k, const float *v, long ldk, float *o, long ldo, int causal,
                           float *scratch) {
    const long kp = round_up(key_length, KEY_PAD);
    float *kt = scratch, *p = scratch + head_dim * kp;
    transpose_scaled_keys_avx(key_length, head_dim, scale, k, ldk, kt, kp);
    for (long i0 = 0; i0 < query_length; i0 += ROWS) {
        const long rows = query_length - i0 < ROWS ? query_length - i0 : ROWS;
        const float *qb = q + i0 * ldq;
#define SCORES(R) scores_rows_avx2(R, key_length, head_dim, qb, ldq, kt, kp, p)
        BY_ROWS(rows, SCORES)
#undef SCORES
        float inv[ROWS];
        softmax_rows(vidrd_exp_shifted_row_avx2_body, i0, rows, key_length, causal, p, kp, inv);
        float *ob = o + i0 * ldo;
#define OUTPUT(R) output_rows_avx2(R, key_length, head_dim, p, kp, v, ldk, inv, ob, ldo)
        BY_ROWS(rows, OUTPUT)
#undef OUTPUT
    }
}
#endif

int vidrd_attention_head(vidrd_isa isa, long query_length, long key_length, long head_dim, float scale,
                         const float *q, long ldq, const float *k, const float *v, long ldk, float *o, long ldo,
                         int causal, float *scratch) {
    if (vidrd_attention_scratch_floats(key_length, head_dim) < 0 || query_length < 0 || !scratch) return -1;
#if defined(__x86_64__)
    if (isa > vidrd_isa_supported()) return -1;
    if (isa == VIDRD_ISA_AVX512) {
        head_avx512(query_length, key_length, head_dim, scale, q, ldq, k, v, ldk, o, ldo, causal, scratch);
        return 0;
    }
    if (isa == VIDRD_ISA_AVX2) {
        head_avx2(query_length, key_length, head_dim, scale, q, ldq, k, v, ldk, o, ldo, causal, scratch);
        return 0;
    }
#endif
    (void)isa, (void)scale, (void)q, (void)ldq, (void)k, (void)v, (void)ldk, (void)o, (void)ldo, (void)causal;
    return -1;
}
