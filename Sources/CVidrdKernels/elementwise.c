/* Element-wise hot loops of the models: softmax's exp, SiLU, GELU (and its gate), and the affine
 * step of the norms. Each has an AVX-512 and an AVX2 body (per-function targets, called only
 * after CPUID) and a portable one computing the same polynomials, so the library needs no build
 * flag.
 *
 * exp: Cephes-style range reduction and minimax polynomial, <= 3e-7 relative; erf: Abramowitz &
 * Stegun 7.1.26, <= 5e-7 absolute in fp32 (OpsTests). libm's scalar expf/erff were a quarter of
 * a U-Net forward. Multiplies and adds are kept separate (no FMA), so every body gives the same
 * bits for the same input, as vidrd_kernels.h promises: a frame must not depend on the ISA that
 * computed it.
 *
 * An element's result does not depend on the vector width, but exp_shifted_row's sum depends on
 * the order of its additions, so every body adds in the AVX2 body's order: eight partial sums
 * over the elements j mod 8 of the whole groups of eight, reduced from lane 0 to 7, then the last
 * n mod 8 elements one by one. The AVX-512 body adds each 16-wide chunk's low half, then its high
 * half, into the eight partials: that is the AVX2 order for the two groups.
 *
 * The AVX-512 body also sends each element through the code the AVX2 body uses for it (vector for
 * the whole groups of eight, scalar for the last n mod 8): the scalar and vector code differ where
 * exp's argument is NaN (the vector clamp turns it into EXP_LO). Such input (a NaN, or +inf in a
 * softmax row) is the one case where the portable body's bits differ from the vector ones. */
#include "vidrd_kernels.h"
#include "elementwise_internal.h"

#include <math.h>
#include <string.h>

/* clang contracts a * b + c into an FMA wherever the target has one: the scalar helpers below,
 * inlined into the AVX-512 bodies (whose target includes FMA) or compiled for arm64, would round
 * differently from the other bodies. */
#pragma STDC FP_CONTRACT OFF

#define EXP_LO -87.33654f
#define EXP_HI 88.37626f
#define ROUND_MAGIC 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */

static inline float exp_scalar(float x) {
    if (x < EXP_LO) x = EXP_LO;
    if (x > EXP_HI) x = EXP_HI;
    volatile float t = x * 1.44269504088896341f + ROUND_MAGIC; /* volatile: keep the rounding step */
    float n = t - ROUND_MAGIC;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * (r * r) + r + 1.0f;
    int ni = (int)n;
    unsigned bits = (unsigned)(ni + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

static inline float erf_scalar(float x) {
    float ax = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    float y = 1.0f - p * t * exp_scalar(-(ax * ax));
    return x < 0 ? -y : y;
}

static inline float silu_scalar(float x) { return x / (1.0f + exp_scalar(-x)); }
static inline float gelu_scalar(float x) { return 0.5f * x * (1.0f + erf_scalar(x * 0.70710678118654752f)); }

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))

AVX2 static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(EXP_LO));
    x = _mm256_min_ps(x, _mm256_set1_ps(EXP_HI));
    const __m256 magic = _mm256_set1_ps(ROUND_MAGIC);
    __m256 t = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), magic);
    __m256 n = _mm256_sub_ps(t, magic);
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
    r = _mm256_add_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r), _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

AVX2 static inline __m256 erf8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 ax = _mm256_andnot_ps(sign, x);
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_mul_ps(_mm256_set1_ps(0.3275911f), ax)));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_sub_ps(_mm256_mul_ps(p, t), _mm256_set1_ps(1.453152027f));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), _mm256_set1_ps(1.421413741f));
    p = _mm256_sub_ps(_mm256_mul_ps(p, t), _mm256_set1_ps(0.284496736f));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), _mm256_set1_ps(0.254829592f));
    __m256 e = exp8(_mm256_xor_ps(_mm256_mul_ps(ax, ax), sign));
    __m256 y = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_mul_ps(_mm256_mul_ps(p, t), e));
    return _mm256_or_ps(y, _mm256_and_ps(x, sign)); /* y >= 0: copy x's sign */
}

AVX2 static inline __m256 silu8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_xor_ps(x, sign))));
}

AVX2 static inline __m256 gelu8(__m256 x) {
    __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* Also the AVX-512 body's pass for a row with a NaN, where the order of the vector max (it
 * returns its second operand when either is NaN) shows in the result. */
AVX2 static float row_max_avx2(const float *row, long n) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    long i = 0;
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(row + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, mv);
    float m = -INFINITY;
    for (int j = 0; j < 8; j++) m = lanes[j] > m ? lanes[j] : m;
    for (; i < n; i++) m = row[i] > m ? row[i] : m;
    return m;
}

AVX2 static float exp_shifted_row_avx2(float *row, long n) {
    const float m = row_max_avx2(row, n);
    const __m256 shift = _mm256_set1_ps(m);
    __m256 sv = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), shift));
        _mm256_storeu_ps(row + i, e);
        sv = _mm256_add_ps(sv, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, sv);
    float sum = 0;
    for (int j = 0; j < 8; j++) sum += lanes[j];
    for (; i < n; i++) {
        row[i] = exp_scalar(row[i] - m);
        sum += row[i];
    }
    return sum;
}

AVX2 static void map_avx2(int gelu, float *p, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(p + i);
        _mm256_storeu_ps(p + i, gelu ? gelu8(x) : silu8(x));
    }
    for (; i < n; i++) p[i] = gelu ? gelu_scalar(p[i]) : silu_scalar(p[i]);
}

AVX2 static void gelu_gate_avx2(float *row, long inner) {
    long j = 0;
    for (; j + 8 <= inner; j += 8)
        _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), gelu8(_mm256_loadu_ps(row + inner + j))));
    for (; j < inner; j++) row[j] = row[j] * gelu_scalar(row[inner + j]);
}

AVX2 static void affine_row_avx2(const float *x, const float *scale, const float *mean, const float *beta,
                                 float *out, long c, int silu) {
    long j = 0;
    for (; j + 8 <= c; j += 8) {
        __m256 y = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(mean + j)),
                                               _mm256_loadu_ps(scale + j)), _mm256_loadu_ps(beta + j));
        _mm256_storeu_ps(out + j, silu ? silu8(y) : y);
    }
    for (; j < c; j++) {
        float y = (x[j] - mean[j]) * scale[j] + beta[j];
        out[j] = silu ? silu_scalar(y) : y;
    }
}

/* AVX-512 F only: the float and/or/xor of AVX-512 need DQ, so the bit operations go through the
 * integer forms, and the high half comes out with the F-only 64x4 extract. */
#define AVX512 __attribute__((target("avx512f")))

AVX512 static inline __m512 and16(__m512 a, __m512 b) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}
AVX512 static inline __m512 or16(__m512 a, __m512 b) {
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}
AVX512 static inline __m512 xor16(__m512 a, __m512 b) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}
AVX512 static inline __m512 andnot16(__m512 a, __m512 b) {
    return _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}
AVX512 static inline __m256 low8(__m512 v) { return _mm512_castps512_ps256(v); }
AVX512 static inline __m256 high8(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }

AVX512 static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(EXP_LO));
    x = _mm512_min_ps(x, _mm512_set1_ps(EXP_HI));
    const __m512 magic = _mm512_set1_ps(ROUND_MAGIC);
    __m512 t = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), magic);
    __m512 n = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f)));
    r = _mm512_add_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(2.12194440e-4f)));
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r), _mm512_set1_ps(1.0f));
    __m512i ni = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(magic));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(ni, _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
}

AVX512 static inline __m512 erf16(__m512 x) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    __m512 ax = andnot16(sign, x);
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(_mm512_set1_ps(0.3275911f), ax)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_sub_ps(_mm512_mul_ps(p, t), _mm512_set1_ps(1.453152027f));
    p = _mm512_add_ps(_mm512_mul_ps(p, t), _mm512_set1_ps(1.421413741f));
    p = _mm512_sub_ps(_mm512_mul_ps(p, t), _mm512_set1_ps(0.284496736f));
    p = _mm512_add_ps(_mm512_mul_ps(p, t), _mm512_set1_ps(0.254829592f));
    __m512 e = exp16(xor16(_mm512_mul_ps(ax, ax), sign));
    __m512 y = _mm512_sub_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(_mm512_mul_ps(p, t), e));
    return or16(y, and16(x, sign)); /* y >= 0: copy x's sign */
}

AVX512 static inline __m512 silu16(__m512 x) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(xor16(x, sign))));
}

AVX512 static inline __m512 gelu16(__m512 x) {
    __m512 e = erf16(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* Without a NaN the max is one value in any order, but for the sign of a zero max, which the row
 * does not see (x - m is x for x != 0, and exp gives 1 at either zero), so this pass may run 16
 * wide on two chains. A NaN makes the vector max depend on the order: such a row goes through the
 * AVX2 pass, whose order gives the AVX2 bits. */
AVX512 static float row_max_avx512(const float *row, long n) {
    const __m512 lowest = _mm512_set1_ps(-INFINITY);
    __m512 m0 = lowest, m1 = lowest;
    __mmask16 nan = 0;
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(row + i), b = _mm512_loadu_ps(row + i + 16);
        nan |= _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q);
        m0 = _mm512_max_ps(m0, a);
        m1 = _mm512_max_ps(m1, b);
    }
    for (; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 a = _mm512_mask_loadu_ps(lowest, k, row + i);
        nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
        m0 = _mm512_max_ps(m0, a);
    }
    if (nan) return row_max_avx2(row, n);
    m0 = _mm512_max_ps(m0, m1);
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_max_ps(low8(m0), high8(m0)));
    float m = -INFINITY;
    for (int j = 0; j < 8; j++) m = lanes[j] > m ? lanes[j] : m;
    return m;
}

/* The bodies run 16 at a time, then one group of 8 with the AVX2 code and the last n mod 8 with
 * the scalar code, as the top of the file says. */

AVX512 static float exp_shifted_row_avx512(float *row, long n) {
    const float m = row_max_avx512(row, n);
    const __m512 shift = _mm512_set1_ps(m);
    __m256 sv = _mm256_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i), shift));
        _mm512_storeu_ps(row + i, e);
        sv = _mm256_add_ps(_mm256_add_ps(sv, low8(e)), high8(e));
    }
    if (i + 8 <= n) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), low8(shift)));
        _mm256_storeu_ps(row + i, e);
        sv = _mm256_add_ps(sv, e);
        i += 8;
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, sv);
    float sum = 0;
    for (int j = 0; j < 8; j++) sum += lanes[j];
    for (; i < n; i++) {
        row[i] = exp_scalar(row[i] - m);
        sum += row[i];
    }
    return sum;
}

AVX512 static void map_avx512(int gelu, float *p, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(p + i);
        _mm512_storeu_ps(p + i, gelu ? gelu16(x) : silu16(x));
    }
    if (i + 8 <= n) {
        __m256 x = _mm256_loadu_ps(p + i);
        _mm256_storeu_ps(p + i, gelu ? gelu8(x) : silu8(x));
        i += 8;
    }
    for (; i < n; i++) p[i] = gelu ? gelu_scalar(p[i]) : silu_scalar(p[i]);
}

AVX512 static void gelu_gate_avx512(float *row, long inner) {
    long j = 0;
    for (; j + 16 <= inner; j += 16)
        _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), gelu16(_mm512_loadu_ps(row + inner + j))));
    if (j + 8 <= inner) {
        _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), gelu8(_mm256_loadu_ps(row + inner + j))));
        j += 8;
    }
    for (; j < inner; j++) row[j] = row[j] * gelu_scalar(row[inner + j]);
}

AVX512 static void affine_row_avx512(const float *x, const float *scale, const float *mean, const float *beta,
                                     float *out, long c, int silu) {
    long j = 0;
    for (; j + 16 <= c; j += 16) {
        __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(mean + j)),
                                               _mm512_loadu_ps(scale + j)), _mm512_loadu_ps(beta + j));
        _mm512_storeu_ps(out + j, silu ? silu16(y) : y);
    }
    if (j + 8 <= c) {
        __m256 y = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(mean + j)),
                                               _mm256_loadu_ps(scale + j)), _mm256_loadu_ps(beta + j));
        _mm256_storeu_ps(out + j, silu ? silu8(y) : y);
        j += 8;
    }
    for (; j < c; j++) {
        float y = (x[j] - mean[j]) * scale[j] + beta[j];
        out[j] = silu ? silu_scalar(y) : y;
    }
}

/* The bodies without the dispatch, for fused attention (attention.c), which checked the ISA once
 * for a whole head and calls this per row of 16-256 scores, where the CPUID lookup shows. */
AVX512 float vidrd_exp_shifted_row_avx512_body(float *row, long n) { return exp_shifted_row_avx512(row, n); }
AVX2 float vidrd_exp_shifted_row_avx2_body(float *row, long n) { return exp_shifted_row_avx2(row, n); }

/* Unlike vidrd_sgemm, these never refuse an ISA: one the CPU lacks runs the best body it has. */
static vidrd_isa isa_to_run(vidrd_isa isa) {
    vidrd_isa cpu = vidrd_isa_supported();
    return isa < cpu ? isa : cpu;
}
#endif

float vidrd_exp_shifted_row(vidrd_isa isa, float *row, long n) {
#if defined(__x86_64__)
    switch (isa_to_run(isa)) {
    case VIDRD_ISA_AVX512: return exp_shifted_row_avx512(row, n);
    case VIDRD_ISA_AVX2: return exp_shifted_row_avx2(row, n);
    default: break;
    }
#else
    (void)isa;
#endif
    float m = -INFINITY;
    for (long i = 0; i < n; i++) m = row[i] > m ? row[i] : m;
    float part[8] = {0}; /* the AVX2 body's eight partial sums, in its order (top of the file) */
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            row[i + j] = exp_scalar(row[i + j] - m);
            part[j] += row[i + j];
        }
    float sum = 0;
    for (int j = 0; j < 8; j++) sum += part[j];
    for (; i < n; i++) {
        row[i] = exp_scalar(row[i] - m);
        sum += row[i];
    }
    return sum;
}

void vidrd_silu(vidrd_isa isa, float *p, long n) {
#if defined(__x86_64__)
    switch (isa_to_run(isa)) {
    case VIDRD_ISA_AVX512: map_avx512(0, p, n); return;
    case VIDRD_ISA_AVX2: map_avx2(0, p, n); return;
    default: break;
    }
#else
    (void)isa;
#endif
    for (long i = 0; i < n; i++) p[i] = silu_scalar(p[i]);
}

void vidrd_gelu(vidrd_isa isa, float *p, long n) {
#if defined(__x86_64__)
    switch (isa_to_run(isa)) {
    case VIDRD_ISA_AVX512: map_avx512(1, p, n); return;
    case VIDRD_ISA_AVX2: map_avx2(1, p, n); return;
    default: break;
    }
#else
    (void)isa;
#endif
    for (long i = 0; i < n; i++) p[i] = gelu_scalar(p[i]);
}

void vidrd_gelu_gate(vidrd_isa isa, float *row, long inner) {
#if defined(__x86_64__)
    switch (isa_to_run(isa)) {
    case VIDRD_ISA_AVX512: gelu_gate_avx512(row, inner); return;
    case VIDRD_ISA_AVX2: gelu_gate_avx2(row, inner); return;
    default: break;
    }
#else
    (void)isa;
#endif
    for (long j = 0; j < inner; j++) row[j] = row[j] * gelu_scalar(row[inner + j]);
}

void vidrd_affine_row(vidrd_isa isa, const float *x, const float *scale, const float *mean, const float *beta,
                      float *out, long c, int silu) {
#if defined(__x86_64__)
    switch (isa_to_run(isa)) {
    case VIDRD_ISA_AVX512: affine_row_avx512(x, scale, mean, beta, out, c, silu); return;
    case VIDRD_ISA_AVX2: affine_row_avx2(x, scale, mean, beta, out, c, silu); return;
    default: break;
    }
#else
    (void)isa;
#endif
    for (long j = 0; j < c; j++) {
        float y = (x[j] - mean[j]) * scale[j] + beta[j];
        out[j] = silu ? silu_scalar(y) : y;
    }
}
