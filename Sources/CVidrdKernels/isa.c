/* Which of our kernels this CPU can run. */
#include "vidrd_kernels.h"

vidrd_isa vidrd_isa_supported(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    /* __builtin_cpu_supports checks CPUID and that the OS saves the wider registers (XGETBV). */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return VIDRD_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return VIDRD_ISA_AVX2;
#endif
    return VIDRD_ISA_GENERIC;
}

int vidrd_kernels_optimized(void) {
#if defined(__OPTIMIZE__)
    return 1;
#else
    return 0;
#endif
}
