/* Element-wise hot loops of the models: softmax's exp, SiLU, GELU (and its gate), and the affine
 * step of the norms. Each has an AVX2 body (per-function target, called only after CPUID) and a
 * portable one computing the same polynomials, so the library needs no build flag.
 *
 * exp: Cephes-style range reduction and minimax polynomial, <= 3e-7 relative; erf: Abramowitz &
 * Stegun 7.1.26, <= 5e-7 absolute in fp32 (OpsTests). libm's scalar expf/erff were a quarter of
 * a U-Net forward. Multiplies and adds are kept separate (no FMA), so both bodies give the same
 * bits for the same input. */
#include "vidrd_kernels.h"

#include <math.h>
#include <string.h>

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

AVX2 static float exp_shifted_row_avx2(float *row, long n) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    long i = 0;
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(row + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, mv);
    float m = -INFINITY;
    for (int j = 0; j < 8; j++) m = lanes[j] > m ? lanes[j] : m;
    for (; i < n; i++) m = row[i] > m ? row[i] : m;
    const __m256 shift = _mm256_set1_ps(m);
    __m256 sv = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), shift));
        _mm256_storeu_ps(row + i, e);
        sv = _mm256_add_ps(sv, e);
    }
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
#endif

static int use_avx2(vidrd_isa isa) {
#if defined(__x86_64__)
    return isa >= VIDRD_ISA_AVX2 && vidrd_isa_supported() >= VIDRD_ISA_AVX2;
#else
    (void)isa;
    return 0;
#endif
}

float vidrd_exp_shifted_row(vidrd_isa isa, float *row, long n) {
#if defined(__x86_64__)
    if (use_avx2(isa)) return exp_shifted_row_avx2(row, n);
#endif
    float m = -INFINITY, sum = 0;
    for (long i = 0; i < n; i++) m = row[i] > m ? row[i] : m;
    for (long i = 0; i < n; i++) {
        row[i] = exp_scalar(row[i] - m);
        sum += row[i];
    }
    return sum;
}

void vidrd_silu(vidrd_isa isa, float *p, long n) {
#if defined(__x86_64__)
    if (use_avx2(isa)) { map_avx2(0, p, n); return; }
#endif
    for (long i = 0; i < n; i++) p[i] = silu_scalar(p[i]);
}

void vidrd_gelu(vidrd_isa isa, float *p, long n) {
#if defined(__x86_64__)
    if (use_avx2(isa)) { map_avx2(1, p, n); return; }
#endif
    for (long i = 0; i < n; i++) p[i] = gelu_scalar(p[i]);
}

void vidrd_gelu_gate(vidrd_isa isa, float *row, long inner) {
#if defined(__x86_64__)
    if (use_avx2(isa)) { gelu_gate_avx2(row, inner); return; }
#endif
    for (long j = 0; j < inner; j++) row[j] = row[j] * gelu_scalar(row[inner + j]);
}

void vidrd_affine_row(vidrd_isa isa, const float *x, const float *scale, const float *mean, const float *beta,
                      float *out, long c, int silu) {
#if defined(__x86_64__)
    if (use_avx2(isa)) { affine_row_avx2(x, scale, mean, beta, out, c, silu); return; }
#endif
    for (long j = 0; j < c; j++) {
        float y = (x[j] - mean[j]) * scale[j] + beta[j];
        out[j] = silu ? silu_scalar(y) : y;
    }
}
