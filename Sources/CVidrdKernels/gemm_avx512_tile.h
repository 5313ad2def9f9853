/* The 14 x 32 tile both AVX-512 micro-kernels (fp32, bf16) keep in 28 zmm accumulators: how a
 * tile's chains start (0, C or beta * C) and how it is stored. Shared so that the two kernels
 * cannot drift apart in what they promise about C. Include inside a function with AVX-512
 * enabled, after <immintrin.h> and gemm_internal.h. */
#ifndef VIDRD_GEMM_AVX512_TILE_H
#define VIDRD_GEMM_AVX512_TILE_H

#define TILE_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)

#define TILE_DECLARE(i) __m512 c##i##a, c##i##b;
#define TILE_ZERO(i) c##i##a = _mm512_setzero_ps(); c##i##b = _mm512_setzero_ps();
#define TILE_LOADC(i) c##i##a = _mm512_loadu_ps(c + (i) * ldc); c##i##b = _mm512_loadu_ps(c + (i) * ldc + 16);
#define TILE_BETAC(i) c##i##a = _mm512_mul_ps(vb, _mm512_loadu_ps(c + (i) * ldc)); \
                      c##i##b = _mm512_mul_ps(vb, _mm512_loadu_ps(c + (i) * ldc + 16));
#define TILE_STORE(i) _mm512_storeu_ps(c + (i) * ldc, c##i##a); _mm512_storeu_ps(c + (i) * ldc + 16, c##i##b);

/* Declares the accumulators c0a ... c13b and starts every chain from what `start` says. */
#define TILE_START(start, beta)                                   \
    TILE_ROWS(TILE_DECLARE)                                       \
    if ((start) == GEMM_START_ZERO) {                             \
        TILE_ROWS(TILE_ZERO)                                      \
    } else if ((start) == GEMM_START_C) {                         \
        TILE_ROWS(TILE_LOADC)                                     \
    } else {                                                      \
        const __m512 vb = _mm512_set1_ps(beta);                   \
        TILE_ROWS(TILE_BETAC)                                     \
    }

#define TILE_STORE_ALL TILE_ROWS(TILE_STORE)

#endif
