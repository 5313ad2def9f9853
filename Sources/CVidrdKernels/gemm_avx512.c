/* AVX-512 micro-kernel: a 14 x 32 tile of C in 28 zmm accumulators. Per step of k it loads two
 * vectors of packed B and broadcasts 14 values of packed A: 28 FMAs for 16 loads, which keeps
 * both 512-bit FMA pipes busy. */
#include "gemm_internal.h"

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

const gemm_kernel_shape vidrd_gemm_avx512 = {
    .mr = MR, .nr = NR, .kc = 256, .mc = MR * 12, .nc = NR * 96, .kernel = kernel_14x32,
};
#endif
