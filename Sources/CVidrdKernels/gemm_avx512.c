/* AVX-512 micro-kernel: a 14 x 32 tile of C in 28 zmm accumulators. Per step of k it loads two
 * vectors of packed B and broadcasts 14 values of packed A: 28 FMAs for 16 loads, which keeps
 * both 512-bit FMA pipes busy. */
#include "gemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define MR 14
#define NR 32
#define TARGET __attribute__((target("avx512f")))

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)

TARGET static void kernel_14x32(long kc, const float *restrict a, long a_rs, long a_ks, const float *restrict b,
                                float *restrict c, long ldc, int start, float beta) {
#define DECLARE(i) __m512 c##i##a, c##i##b;
    ROWS(DECLARE)
#undef DECLARE
    if (start == GEMM_START_ZERO) {
#define ZERO(i) c##i##a = _mm512_setzero_ps(); c##i##b = _mm512_setzero_ps();
        ROWS(ZERO)
#undef ZERO
    } else if (start == GEMM_START_C) {
#define LOADC(i) c##i##a = _mm512_loadu_ps(c + (i) * ldc); c##i##b = _mm512_loadu_ps(c + (i) * ldc + 16);
        ROWS(LOADC)
#undef LOADC
    } else {
        const __m512 vb = _mm512_set1_ps(beta);
#define BETAC(i) c##i##a = _mm512_mul_ps(vb, _mm512_loadu_ps(c + (i) * ldc)); \
                 c##i##b = _mm512_mul_ps(vb, _mm512_loadu_ps(c + (i) * ldc + 16));
        ROWS(BETAC)
#undef BETAC
    }
    for (long p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_load_ps(b);
        const __m512 b1 = _mm512_load_ps(b + 16);
#define STEP(i) { const __m512 ai = _mm512_set1_ps(a[(i) * a_rs]); \
                  c##i##a = _mm512_fmadd_ps(ai, b0, c##i##a); c##i##b = _mm512_fmadd_ps(ai, b1, c##i##b); }
        ROWS(STEP)
#undef STEP
        a += a_ks;
        b += NR;
    }
#define STOREC(i) _mm512_storeu_ps(c + (i) * ldc, c##i##a); _mm512_storeu_ps(c + (i) * ldc + 16, c##i##b);
    ROWS(STOREC)
#undef STOREC
}

const gemm_kernel_shape vidrd_gemm_avx512 = {
    .mr = MR, .nr = NR, .kc = 256, .mc = MR * 12, .nc = NR * 96, .kernel = kernel_14x32,
};
#endif
