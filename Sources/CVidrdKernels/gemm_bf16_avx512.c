/* The bf16 fast mode's GEMM: C = A · Wᵀ (+ beta C) with A in fp32, rounded to bf16 per block as
 * it is packed, and W a layer's weight rounded to bf16 and packed once at load. Products are
 * summed in fp32 by vdpbf16ps (AVX-512 BF16), two k per instruction, so a step of k costs half
 * of the fp32 kernel's and B takes half the memory.
 *
 * The tile is the fp32 kernel's 14 x 32 (28 zmm accumulators). Operands are bf16 pairs: one
 * 32-bit word holds k (low half) and k + 1 (high half), as vdpbf16ps pairs them. A is packed row
 * by row (each row a contiguous run of pairs), which makes the packing one vector conversion
 * per 16 values rather than a transpose; the kernel broadcasts a row's pair. Rounding is always
 * the instruction's (vcvtneps2bf16: to nearest even), for A and for W alike.
 *
 * Like the fp32 GEMM, an element's result depends on its row of A and its column of W only:
 * every element is the same chain of vdpbf16ps in increasing k from the same start, partial
 * tiles run the full kernel on zero-padded copies, so batching sessions changes no frame in
 * this mode either. The bits differ from the fp32 mode's, and between CPUs whose vdpbf16ps
 * round differently inside the pair (Intel documents two roundings per pair); the tests check
 * both properties the mode promises: invariance exactly, accuracy against a float64 reference. */
#include "vidrd_kernels.h"
#include "gemm_internal.h"

#include <stdint.h>

_Static_assert(sizeof(unsigned int) == sizeof(uint32_t), "a packed pair is a 32-bit word");
#include <string.h>

#define MR 14
#define NR 32
#define KC 512        /* k per block: 256 pairs, so a micro-panel of W (256 x 32 words) is 32 KB of L1 */
#define MC (MR * 12)  /* rows of A per packed block */
#define NC (NR * 96)  /* columns of W per block */

static inline long pairs(long k) { return (k + 1) / 2; }

#if defined(__x86_64__)
#include <immintrin.h>
#include "gemm_avx512_tile.h"

#define TARGET __attribute__((target("avx512f,avx512bf16")))

/* Rounds n floats to bf16 into n / 2 pairs (a zero high half when n is odd). */
TARGET static void round_pairs(const float *src, long n, uint32_t *dst) {
    long i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i / 2), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        uint32_t tail[8];
        _mm256_storeu_si256((__m256i *)tail, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i)));
        memcpy(dst + i / 2, tail, (size_t)pairs(n - i) * sizeof(uint32_t));
    }
}

/* One 14 x 32 tile from kp pairs: a row's pairs at a + r * a_rs, W's micro-panel at b (kp x 32 words). */
TARGET static void kernel_14x32_bf16(long kp, const uint32_t *restrict a, long a_rs, const uint32_t *restrict b,
                                     float *restrict c, long ldc, int start, float beta) {
    TILE_START(start, beta)
    for (long p = 0; p < kp; p++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(b);
        const __m512bh b1 = (__m512bh)_mm512_load_si512(b + 16);
#define STEP(i) { const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[(i) * a_rs + p]); \
                  c##i##a = _mm512_dpbf16_ps(c##i##a, ai, b0); c##i##b = _mm512_dpbf16_ps(c##i##b, ai, b1); }
        TILE_ROWS(STEP)
#undef STEP
        b += NR;
    }
    TILE_STORE_ALL
}

/* Packed W: blocks in the driver's order (columns outer, k inner), each of round_up(ncur, 32)
 * columns in micro-panels of kp x 32 words; KC is even, so every block but the last of k holds
 * KC / 2 pairs and an earlier block of columns holds jc columns' worth of all pairs. */
static inline size_t block_offset(long k, long jc, long ncur, long pc) {
    return (size_t)jc * (size_t)pairs(k) + (size_t)round_up(ncur, NR) * (size_t)(pc / 2);
}

TARGET static void pack_w(const float *b, long ldb, int trans_b, long n, long k, uint32_t *dst) {
    float column[KC];
    uint32_t rounded[KC / 2];
    for (long jc = 0; jc < n; jc += NC) {
        const long ncur = n - jc < NC ? n - jc : NC;
        for (long pc = 0; pc < k; pc += KC) {
            const long kcur = k - pc < KC ? k - pc : KC, kp = pairs(kcur);
            uint32_t *block = dst + block_offset(k, jc, ncur, pc);
            for (long j = 0; j < round_up(ncur, NR); j++) {
                uint32_t *panel = block + (j / NR) * kp * NR;
                if (j < ncur) {
                    for (long p = 0; p < kcur; p++)
                        column[p] = trans_b ? b[(jc + j) * ldb + pc + p] : b[(pc + p) * ldb + jc + j];
                    round_pairs(column, kcur, rounded);
                } else {
                    memset(rounded, 0, sizeof rounded);
                }
                for (long p = 0; p < kp; p++) panel[p * NR + j % NR] = rounded[p];
            }
        }
    }
}

static int gemm_bf16(long m, long n, long k, const float *a, long lda, const uint32_t *packed,
                     float beta, float *c, long ldc) {
    const long kp_max = pairs(k < KC ? k : KC);
    const long mc_max = round_up(m < MC ? m : MC, MR);
    /* Packed rows of A (in words; a word is a float's size) and one padded tile of C. */
    float *scratch = vidrd_gemm_scratch((size_t)(mc_max * kp_max + MR * NR));
    if (!scratch) return -1;
    uint32_t *ap = (uint32_t *)scratch;
    float *edge = scratch + mc_max * kp_max;
    const int first_start = beta == 0.0f ? GEMM_START_ZERO : (beta == 1.0f ? GEMM_START_C : GEMM_START_BETA);
    for (long jc = 0; jc < n; jc += NC) {
        const long ncur = n - jc < NC ? n - jc : NC;
        for (long pc = 0; pc < k; pc += KC) {
            const long kcur = k - pc < KC ? k - pc : KC, kp = pairs(kcur);
            const int start = pc == 0 ? first_start : GEMM_START_C;
            const uint32_t *bp = packed + block_offset(k, jc, ncur, pc);
            for (long ic = 0; ic < m; ic += MC) {
                const long mcur = m - ic < MC ? m - ic : MC;
                for (long r = 0; r < round_up(mcur, MR); r++) {
                    if (r < mcur) round_pairs(a + (ic + r) * lda + pc, kcur, ap + r * kp);
                    else memset(ap + r * kp, 0, (size_t)kp * sizeof(uint32_t));
                }
                for (long jr = 0; jr < ncur; jr += NR) {
                    const long w = ncur - jr < NR ? ncur - jr : NR;
                    const uint32_t *bpanel = bp + jr * kp;
                    for (long ir = 0; ir < mcur; ir += MR) {
                        const long h = mcur - ir < MR ? mcur - ir : MR;
                        float *ct = c + (ic + ir) * ldc + jc + jr;
                        if (h == MR && w == NR) {
                            kernel_14x32_bf16(kp, ap + ir * kp, kp, bpanel, ct, ldc, start, beta);
                            continue;
                        }
                        if (start != GEMM_START_ZERO)
                            for (long ii = 0; ii < h; ii++) memcpy(edge + ii * NR, ct + ii * ldc, (size_t)w * sizeof(float));
                        kernel_14x32_bf16(kp, ap + ir * kp, kp, bpanel, edge, NR, start, beta);
                        for (long ii = 0; ii < h; ii++) memcpy(ct + ii * ldc, edge + ii * NR, (size_t)w * sizeof(float));
                    }
                }
            }
        }
    }
    return 0;
}
#endif

int vidrd_bf16_supported(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    __builtin_cpu_init();
    return vidrd_isa_supported() >= VIDRD_ISA_AVX512 && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

long vidrd_packed_b_bf16_words(long n, long k) {
    if (n <= 0 || k <= 0) return -1;
    return round_up(n, NR) * pairs(k);
}

int vidrd_pack_b_bf16(int trans_b, long n, long k, const float *b, long ldb, unsigned int *dst) {
#if defined(__x86_64__)
    if (!vidrd_bf16_supported() || n <= 0 || k <= 0) return -1;
    pack_w(b, ldb, trans_b, n, k, dst);
    return 0;
#else
    (void)trans_b; (void)n; (void)k; (void)b; (void)ldb; (void)dst;
    return -1;
#endif
}

int vidrd_sgemm_bf16(long m, long n, long k, const float *a, long lda, const unsigned int *packed_b,
                     float beta, float *c, long ldc) {
#if defined(__x86_64__)
    if (!vidrd_bf16_supported() || !packed_b) return -1;
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) {
        vidrd_gemm_scale_c(m, n, beta, c, ldc);
        return 0;
    }
    return gemm_bf16(m, n, k, a, lda, packed_b, beta, c, ldc);
#else
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)packed_b; (void)beta; (void)c; (void)ldc;
    return -1;
#endif
}
