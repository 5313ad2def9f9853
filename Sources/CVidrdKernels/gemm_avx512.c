/* AVX-512 micro-kernel: a 14 x 32 tile of C in 28 zmm accumulators. Per step of k it loads two
 * vectors of packed B and broadcasts 14 values of packed A: 28 FMAs for 16 loads, which keeps
 * both 512-bit FMA pipes busy. */
#include "gemm_internal.h"
#include "vidrd_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include "gemm_avx512_tile.h"

#define MR 14
#define NR 32
#define TARGET __attribute__((target("avx512f")))

TARGET static void kernel_14x32(long kc, const float *restrict a, long a_rs, long a_ks, const float *restrict b,
                                float *restrict c, long ldc, int start, float beta) {
    TILE_START(start, beta)
    for (long p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_load_ps(b);
        const __m512 b1 = _mm512_load_ps(b + 16);
#define STEP(i) { const __m512 ai = _mm512_set1_ps(a[(i) * a_rs]); \
                  c##i##a = _mm512_fmadd_ps(ai, b0, c##i##a); c##i##b = _mm512_fmadd_ps(ai, b1, c##i##b); }
        TILE_ROWS(STEP)
#undef STEP
        a += a_ks;
        b += NR;
    }
    TILE_STORE_ALL
}

/* 16 weights per instruction: vcvtph2ps for IEEE halves; bf16 is the top half of an fp32. */
TARGET static inline __m512 widen16(int format, const unsigned short *src) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)src);
    return format == VIDRD_HALF_F16 ? _mm512_cvtph_ps(h)
                                    : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

TARGET static void widen_16s(int format, const unsigned short *src, float *dst, long count) {
    for (long i = 0; i < count; i += 16) _mm512_storeu_ps(dst + i, widen16(format, src + i));
}

/* The Winograd weight (gemm_internal.h) 16 lanes at a time: WinogradConv3x3's multiplies and
 * adds, in its order, unfused (explicit mul/add intrinsics never contract). */
TARGET static void winograd_16s(int format, int position, const unsigned short *taps, long stride,
                                float *dst, long count) {
    const float *ga = vidrd_winograd_g[position / 4], *gb = vidrd_winograd_g[position % 4];
    const __m512 ga0 = _mm512_set1_ps(ga[0]), ga1 = _mm512_set1_ps(ga[1]), ga2 = _mm512_set1_ps(ga[2]);
    const __m512 gb0 = _mm512_set1_ps(gb[0]), gb1 = _mm512_set1_ps(gb[1]), gb2 = _mm512_set1_ps(gb[2]);
    for (long i = 0; i < count; i += 16) {
        __m512 t[3];
        for (int x = 0; x < 3; x++) {
            const __m512 k0 = widen16(format, taps + (0 + x) * stride + i);
            const __m512 k1 = widen16(format, taps + (3 + x) * stride + i);
            const __m512 k2 = widen16(format, taps + (6 + x) * stride + i);
            t[x] = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(ga0, k0), _mm512_mul_ps(ga1, k1)), _mm512_mul_ps(ga2, k2));
        }
        const __m512 v = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(t[0], gb0), _mm512_mul_ps(t[1], gb1)),
                                       _mm512_mul_ps(t[2], gb2));
        _mm512_storeu_ps(dst + i, v);
    }
}

const gemm_kernel_shape vidrd_gemm_avx512 = {
    .mr = MR, .nr = NR, .kc = 256, .mc = MR * 12, .nc = NR * 96, .kernel = kernel_14x32, .widen = widen_16s,
    .winograd = winograd_16s,
};
#endif
