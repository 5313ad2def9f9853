/* AVX2 + FMA micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators (the classic Haswell
 * shape: 12 FMAs per step of k for 2 loads of B and 6 broadcasts of A).
 *
 * Written as one inline-assembly block rather than intrinsics because SwiftPM compiles C
 * targets at -O0 in debug builds and no flag can change that for a library product; at -O0
 * intrinsics keep the accumulators on the stack and run ~40x slower, which would make every
 * debug test that touches a model crawl. Assembly runs the same at every optimisation level.
 * vfmadd231ps rounds once, like fmaf: the tile is exactly the reference definition. */
#include "gemm_internal.h"
#include "vidrd_kernels.h"

#if defined(__x86_64__)

#define MR 6
#define NR 16

__attribute__((target("avx2,fma")))
static void kernel_6x16(long kc, const float *a, long a_rs, long a_ks, const float *b,
                        float *c, long ldc, int start, float beta) {
    const float *a0 = a;                 /* rows 0-2 of A: a0, a0 + rs, a0 + 2 rs */
    const float *a3 = a + 3 * a_rs;      /* rows 3-5 */
    float *c3 = c + 3 * ldc;
    long rs = a_rs * 4, ks = a_ks * 4, ldcb = ldc * 4;
    __asm__ volatile(
        /* Start every element's chain: 0, C or beta * C. */
        "cmpl $1, %[start]\n\t"
        "je 2f\n\t"
        "jg 3f\n\t"
        "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
        "vxorps %%ymm1, %%ymm1, %%ymm1\n\t"
        "vxorps %%ymm2, %%ymm2, %%ymm2\n\t"
        "vxorps %%ymm3, %%ymm3, %%ymm3\n\t"
        "vxorps %%ymm4, %%ymm4, %%ymm4\n\t"
        "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"
        "vxorps %%ymm6, %%ymm6, %%ymm6\n\t"
        "vxorps %%ymm7, %%ymm7, %%ymm7\n\t"
        "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"
        "vxorps %%ymm9, %%ymm9, %%ymm9\n\t"
        "vxorps %%ymm10, %%ymm10, %%ymm10\n\t"
        "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
        "jmp 4f\n"
        "2:\n\t"
        "vmovups (%[c]), %%ymm0\n\t"
        "vmovups 32(%[c]), %%ymm1\n\t"
        "vmovups (%[c],%[ldc],1), %%ymm2\n\t"
        "vmovups 32(%[c],%[ldc],1), %%ymm3\n\t"
        "vmovups (%[c],%[ldc],2), %%ymm4\n\t"
        "vmovups 32(%[c],%[ldc],2), %%ymm5\n\t"
        "vmovups (%[c3]), %%ymm6\n\t"
        "vmovups 32(%[c3]), %%ymm7\n\t"
        "vmovups (%[c3],%[ldc],1), %%ymm8\n\t"
        "vmovups 32(%[c3],%[ldc],1), %%ymm9\n\t"
        "vmovups (%[c3],%[ldc],2), %%ymm10\n\t"
        "vmovups 32(%[c3],%[ldc],2), %%ymm11\n\t"
        "jmp 4f\n"
        "3:\n\t"
        "vbroadcastss %[beta], %%ymm15\n\t"
        "vmulps (%[c]), %%ymm15, %%ymm0\n\t"
        "vmulps 32(%[c]), %%ymm15, %%ymm1\n\t"
        "vmulps (%[c],%[ldc],1), %%ymm15, %%ymm2\n\t"
        "vmulps 32(%[c],%[ldc],1), %%ymm15, %%ymm3\n\t"
        "vmulps (%[c],%[ldc],2), %%ymm15, %%ymm4\n\t"
        "vmulps 32(%[c],%[ldc],2), %%ymm15, %%ymm5\n\t"
        "vmulps (%[c3]), %%ymm15, %%ymm6\n\t"
        "vmulps 32(%[c3]), %%ymm15, %%ymm7\n\t"
        "vmulps (%[c3],%[ldc],1), %%ymm15, %%ymm8\n\t"
        "vmulps 32(%[c3],%[ldc],1), %%ymm15, %%ymm9\n\t"
        "vmulps (%[c3],%[ldc],2), %%ymm15, %%ymm10\n\t"
        "vmulps 32(%[c3],%[ldc],2), %%ymm15, %%ymm11\n"
        "4:\n\t"
        "testq %[kc], %[kc]\n\t"
        "jle 6f\n"
        /* One step of k: two vectors of B, six broadcasts of A, twelve FMAs. */
        "5:\n\t"
        "vmovaps (%[b]), %%ymm12\n\t"
        "vmovaps 32(%[b]), %%ymm13\n\t"
        "vbroadcastss (%[a0]), %%ymm14\n\t"
        "vbroadcastss (%[a0],%[rs],1), %%ymm15\n\t"
        "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"
        "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"
        "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"
        "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"
        "vbroadcastss (%[a0],%[rs],2), %%ymm14\n\t"
        "vbroadcastss (%[a3]), %%ymm15\n\t"
        "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"
        "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"
        "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"
        "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"
        "vbroadcastss (%[a3],%[rs],1), %%ymm14\n\t"
        "vbroadcastss (%[a3],%[rs],2), %%ymm15\n\t"
        "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"
        "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"
        "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"
        "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"
        "addq %[ks], %[a0]\n\t"
        "addq %[ks], %[a3]\n\t"
        "addq $64, %[b]\n\t"
        "decq %[kc]\n\t"
        "jnz 5b\n"
        "6:\n\t"
        "vmovups %%ymm0, (%[c])\n\t"
        "vmovups %%ymm1, 32(%[c])\n\t"
        "vmovups %%ymm2, (%[c],%[ldc],1)\n\t"
        "vmovups %%ymm3, 32(%[c],%[ldc],1)\n\t"
        "vmovups %%ymm4, (%[c],%[ldc],2)\n\t"
        "vmovups %%ymm5, 32(%[c],%[ldc],2)\n\t"
        "vmovups %%ymm6, (%[c3])\n\t"
        "vmovups %%ymm7, 32(%[c3])\n\t"
        "vmovups %%ymm8, (%[c3],%[ldc],1)\n\t"
        "vmovups %%ymm9, 32(%[c3],%[ldc],1)\n\t"
        "vmovups %%ymm10, (%[c3],%[ldc],2)\n\t"
        "vmovups %%ymm11, 32(%[c3],%[ldc],2)\n\t"
        "vzeroupper\n\t"
        : [kc] "+r"(kc), [a0] "+r"(a0), [a3] "+r"(a3), [b] "+r"(b)
        : [rs] "r"(rs), [ks] "r"(ks), [c] "r"(c), [c3] "r"(c3), [ldc] "r"(ldcb),
          [start] "r"(start), [beta] "m"(beta)
        : "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9",
          "ymm10", "ymm11", "ymm12", "ymm13", "ymm14", "ymm15", "memory", "cc");
}

/* 8 weights per instruction: vcvtph2ps (F16C, which every AVX2 CPU has) for IEEE halves; bf16 is
 * the top half of an fp32, so zero-extend and shift. Assembly for the reason above; the two loops
 * differ only in the instructions that widen ymm0. */
#define WIDEN_LOOP(convert)                                        \
    __asm__ volatile("1:\n\t" convert                              \
                     "vmovups %%ymm0, (%[dst])\n\t"                \
                     "addq $16, %[src]\n\t"                        \
                     "addq $32, %[dst]\n\t"                        \
                     "decq %[n]\n\t"                               \
                     "jnz 1b\n\t"                                  \
                     "vzeroupper\n\t"                              \
                     : [src] "+r"(src), [dst] "+r"(dst), [n] "+r"(blocks) \
                     :                                             \
                     : "ymm0", "memory", "cc")

__attribute__((target("avx2,f16c")))
static void widen_8s(int format, const unsigned short *src, float *dst, long count) {
    long blocks = count / 8;
    if (blocks <= 0) return;
    if (format == VIDRD_HALF_F16)
        WIDEN_LOOP("vcvtph2ps (%[src]), %%ymm0\n\t");
    else
        WIDEN_LOOP("vpmovzxwd (%[src]), %%ymm0\n\t"
                   "vpslld $16, %%ymm0, %%ymm0\n\t");
}
#undef WIDEN_LOOP

/* The Winograd weight (gemm_internal.h) 8 lanes at a time: WinogradConv3x3's multiplies and
 * adds, in its order, unfused (explicit mul/add intrinsics never contract).
 * Intrinsics (slow at -O0, as the header says): only 3x3 convolutions of 16-bit checkpoints use it. */
#include <immintrin.h>

__attribute__((target("avx2,f16c")))
static inline __m256 widen8(int format, const unsigned short *src) {
    const __m128i h = _mm_loadu_si128((const __m128i *)src);
    return format == VIDRD_HALF_F16 ? _mm256_cvtph_ps(h)
                                    : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2,f16c")))
static void winograd_8s(int format, int position, const unsigned short *taps, long stride, float *dst, long count) {
    const float *ga = vidrd_winograd_g[position / 4], *gb = vidrd_winograd_g[position % 4];
    const __m256 ga0 = _mm256_set1_ps(ga[0]), ga1 = _mm256_set1_ps(ga[1]), ga2 = _mm256_set1_ps(ga[2]);
    const __m256 gb0 = _mm256_set1_ps(gb[0]), gb1 = _mm256_set1_ps(gb[1]), gb2 = _mm256_set1_ps(gb[2]);
    for (long i = 0; i < count; i += 8) {
        __m256 t[3];
        for (int x = 0; x < 3; x++) {
            const __m256 k0 = widen8(format, taps + (0 + x) * stride + i);
            const __m256 k1 = widen8(format, taps + (3 + x) * stride + i);
            const __m256 k2 = widen8(format, taps + (6 + x) * stride + i);
            t[x] = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(ga0, k0), _mm256_mul_ps(ga1, k1)), _mm256_mul_ps(ga2, k2));
        }
        _mm256_storeu_ps(dst + i, _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(t[0], gb0), _mm256_mul_ps(t[1], gb1)),
                                                _mm256_mul_ps(t[2], gb2)));
    }
}

const gemm_kernel_shape vidrd_gemm_avx2 = {
    .mr = MR, .nr = NR, .kc = 256, .mc = MR * 24, .nc = NR * 192, .kernel = kernel_6x16, .widen = widen_8s,
    .winograd = winograd_8s,
};
#endif
