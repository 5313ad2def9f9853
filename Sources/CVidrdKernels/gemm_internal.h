/* Internal to the GEMM: the micro-kernel contract shared by the driver and the ISA files. */
#ifndef VIDRD_GEMM_INTERNAL_H
#define VIDRD_GEMM_INTERNAL_H

#include <stddef.h>

/* How a micro-kernel starts each element's fused multiply-add chain. */
enum {
    GEMM_START_ZERO = 0, /* from 0; C is not read */
    GEMM_START_C = 1,    /* from C (beta == 1, or a later block of k) */
    GEMM_START_BETA = 2, /* from fl(beta * C) */
};

/* Computes one MR x NR tile of C from kc steps of A and of packed B (kc x NR, k-major), with
 * one FMA per element and step, in increasing k. Row r of A at step p is a[r * a_rs + p * a_ks]:
 * packed panels (a_rs = 1, a_ks = MR) and rows of a row-major A read in place (a_rs = lda,
 * a_ks = 1) are the same kernel. */
typedef void (*gemm_micro_kernel)(long kc, const float *a, long a_rs, long a_ks, const float *b,
                                  float *c, long ldc, int start, float beta);

/* Widens `count` (a whole panel: a multiple of the shape's nr) 16-bit weights of `format` (VIDRD_HALF_F16 or _BF16) to fp32.
 * Both conversions are exact, so a product over widened weights has the fp32 product's bits. */
typedef void (*gemm_widen)(int format, const unsigned short *src, float *dst, long count);

/* Computes `count` (a whole panel: a multiple of the shape's nr) values of a Winograd F(2x2, 3x3) transformed weight,
 * U[position] = (G g G^T)[position / 4][position % 4], from the nine 3x3 taps packed alike
 * (tap y * 3 + x at taps + (y * 3 + x) * tap_stride) in 16-bit `format`: the same products and
 * sums in the same order as WinogradConv3x3's load-time transform, so the bits are equal. */
typedef void (*gemm_winograd_widen)(int format, int position, const unsigned short *taps, long tap_stride,
                                    float *dst, long count);

typedef struct {
    int mr, nr;       /* tile of C one micro-kernel call computes */
    long kc, mc, nc;  /* cache blocking: k per packed block, rows of A and columns of B per block */
    gemm_micro_kernel kernel;
    gemm_widen widen;
    gemm_winograd_widen winograd;
} gemm_kernel_shape;

/* G of Winograd F(2x2, 3x3), the rows WinogradConv3x3 multiplies by. */
static const float vidrd_winograd_g[4][3] = {{1.0f, 0.0f, 0.0f}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0.0f, 0.0f, 1.0f}};

static inline long round_up(long x, long to) { return (x + to - 1) / to * to; }

/* C = beta * C over m x n (0 writes zeros, C is not read): the whole product when k == 0. */
void vidrd_gemm_scale_c(long m, long n, float beta, float *c, long ldc);

/* A growing, 64-byte-aligned buffer of at least `count` floats owned by the calling thread (reused by
 * its next GEMM call; freed when the thread ends), or NULL. */
float *vidrd_gemm_scratch(size_t count);

#if defined(__x86_64__)
extern const gemm_kernel_shape vidrd_gemm_avx2;
extern const gemm_kernel_shape vidrd_gemm_avx512;
#endif

#endif
