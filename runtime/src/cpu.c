/* The best kernel instruction set of this CPU, read with CPUID. NOTE: not
 * __builtin_cpu_supports: that links libgcc's whole CPU model table (4.6 KB) for three
 * bits. */
#include "ops.h"

#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#include <cpuid.h>

/* XCR0: the register state the operating system saves on a context switch. AVX needs
 * the SSE and AVX state (bits 1, 2); AVX-512 also the opmask and ZMM state (bits 5-7). */
static uint32_t saved_state(void) {
    uint32_t lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo;
}

int am_cpu_best_isa(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return AM_GEMM_ISA_GENERIC;
    unsigned need = bit_OSXSAVE | bit_AVX | bit_FMA;
    if ((c & need) != need) return AM_GEMM_ISA_GENERIC;
    uint32_t xcr0 = saved_state();
    if ((xcr0 & 0x6) != 0x6 || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & bit_AVX2))
        return AM_GEMM_ISA_GENERIC;
    return (b & bit_AVX512F) && (xcr0 & 0xe6) == 0xe6 ? AM_GEMM_ISA_AVX512 : AM_GEMM_ISA_AVX2;
}
#else
int am_cpu_best_isa(void) { return AM_GEMM_ISA_GENERIC; }
#endif
