/* One core's multiply-add rate: chains of independent fused multiply-adds on 512-bit
 * (AVX-512) or 256-bit (AVX2) vectors, enough chains to hide their latency, timed in
 * process CPU time. Prints "<isa> <GFLOP/s>" per instruction set the CPU has. Built and
 * run by bench_fma_peak.py. */
#include <stdio.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>

enum { STEPS = 20000000 };

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define PEAK(NAME, ATTR, VEC, SET1, FMA, LANES, CHAINS)                                          \
    ATTR static double NAME(float *sink) {                                                 \
        VEC a[CHAINS], b = SET1(0.999999f), c = SET1(1e-6f);                               \
        for (int i = 0; i < CHAINS; i++) a[i] = SET1((float)i);                            \
        double t0 = cpu_seconds();                                                         \
        for (long s = 0; s < STEPS; s++)                                                   \
            _Pragma("GCC unroll 24") for (int i = 0; i < CHAINS; i++) a[i] = FMA(a[i], b, c); \
        double t = cpu_seconds() - t0;                                                     \
        float out[LANES];                                                                  \
        for (int i = 1; i < CHAINS; i++) a[0] = FMA(a[i], b, a[0]);                         \
        __builtin_memcpy(out, &a[0], sizeof out);                                          \
        *sink += out[0]; /* (the result is used: the loop stays) */                        \
        return 2.0 * LANES * CHAINS * (double)STEPS / t * 1e-9;                            \
    }

/* (chains + 2 vectors within the registers: 32 with AVX-512, 16 with AVX2) */
PEAK(peak_avx512, __attribute__((target("avx512f"))), __m512, _mm512_set1_ps, _mm512_fmadd_ps,
     16, 24)
PEAK(peak_avx2, __attribute__((target("avx2,fma"))), __m256, _mm256_set1_ps, _mm256_fmadd_ps, 8,
     12)
#endif

int main(void) {
    float sink = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) printf("avx512 %.1f\n", peak_avx512(&sink));
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        printf("avx2 %.1f\n", peak_avx2(&sink));
#else
    fputs("fma_peak: x86-64 only\n", stderr);
#endif
    return sink == 12345.0f; /* never: keeps sink */
}
