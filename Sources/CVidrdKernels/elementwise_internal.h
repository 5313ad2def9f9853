/* Internal to the kernels: element-wise bodies other kernels call without the ISA dispatch. */
#ifndef VIDRD_ELEMENTWISE_INTERNAL_H
#define VIDRD_ELEMENTWISE_INTERNAL_H

#if defined(__x86_64__)
/* vidrd_exp_shifted_row(VIDRD_ISA_AVX512 / VIDRD_ISA_AVX2, row, n) on a CPU known to run that
 * ISA: the same bits, no CPUID lookup. */
__attribute__((visibility("hidden"))) float vidrd_exp_shifted_row_avx512_body(float *row, long n);
__attribute__((visibility("hidden"))) float vidrd_exp_shifted_row_avx2_body(float *row, long n);
#endif

#endif
