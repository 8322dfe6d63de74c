/* Exhaustive accuracy check of libamber's float32 exp, sigmoid, tanh and erf
 * (runtime/src/k_transcendental.inc): every float input (or every STRIDE-th one) against
 * libm's double functions, the error measured as opset.md section 5 states it,
 * |y - y*| / ulp(y*) with y* the double result rounded to float, and also against the
 * double result itself. Every instruction set this CPU has must give the portable code's
 * bits. Prints the largest errors and a hash of the results (for comparing compilers);
 * exits 1 past 4 ULP, on a special value that is not exact, or on differing bits.
 *
 *   cc -O2 -std=c11 -Iruntime/src tests/runtime/ulp_transcendental.c -lm -o /tmp/ulp && /tmp/ulp [STRIDE]
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TSUF generic
#define TATTR
#define VL 4
#include "k_transcendental.inc"
#if defined(__x86_64__)
#include <immintrin.h>
#define TX86 /* the x86 instructions k_elementwise.c gives these two sets */
#define TSUF avx2
#define TATTR __attribute__((target("avx2")))
#define VL 8
#include "k_transcendental.inc"
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif
#define TX86
#define TSUF avx512
#define TATTR __attribute__((target("avx512f")))
#define VL 16
#include "k_transcendental.inc"
#endif

typedef void (*row_fn)(char **, const int64_t *, int64_t, void *);

static double sigmoid_ref(double x) {
    double e = exp(-fabs(x));
    return x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

/* ulp(v) of opset.md section 5 for a float v (finite). */
static double ulp_of(float v) {
    int e;
    frexpf(fabsf(v), &e); /* |v| = m 2^e, m in [0.5, 1): binade exponent e - 1 */
    e -= 1;
    if (v == 0 || e < -126) e = -126;
    return ldexp(1.0, e - 23);
}

typedef struct {
    const char *name;
    row_fn fn[3];
    double (*ref)(double);
    double worst, worst_exact; /* vs y* (the rounded reference) and vs the reference */
    float worst_x;
    long long bad_special, differ;
    uint64_t hash; /* FNV-1a of the results: equal across compilers */
} check;

static void run_block(check *c, const float *x, int64_t n, int nisa) {
    static float y[3][4096];
    const int64_t st[2] = {4, 4};
    for (int k = 0; k < nisa; k++) {
        char *p[2] = {(char *)y[k], (char *)x};
        c->fn[k](p, st, n, NULL);
        if (k && memcmp(y[k], y[0], (size_t)n * 4)) c->differ++;
    }
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &y[0][i], 4);
        c->hash = (c->hash ^ bits) * 0x100000001b3ull;
        double r = c->ref((double)x[i]);
        float want = (float)r, got = y[0][i];
        if (isnan(want) || isinf(want) || want == 0 || isnan(got)) {
            bool ok = isnan(want) ? isnan(got) : isinf(want) ? got == want : fabsf(got) <= 0x1p-147f;
            c->bad_special += !ok;
            if (!(isinf(want) || isnan(want)) && ok) goto measure;
            continue;
        }
    measure:;
        double u = ulp_of(want);
        double e = fabs((double)got - (double)want) / u, e2 = fabs((double)got - r) / u;
        if (e > c->worst) c->worst = e, c->worst_x = x[i];
        if (e2 > c->worst_exact) c->worst_exact = e2;
    }
}

int main(int argc, char **argv) {
    uint64_t stride = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    if (stride == 0) stride = 1;
    int nisa = 1;
#if defined(__x86_64__)
    __builtin_cpu_init();
    nisa = __builtin_cpu_supports("avx512f") ? 3 : __builtin_cpu_supports("avx2") ? 2 : 1;
#define FNS(op) {op##_f32_generic, op##_f32_avx2, op##_f32_avx512}
#else
#define FNS(op) {op##_f32_generic, NULL, NULL}
#endif
    check checks[4] = {{"exp", FNS(exp), exp, 0, 0, 0, 0, 0, 0xcbf29ce484222325ull},
                       {"sigmoid", FNS(sigmoid), sigmoid_ref, 0, 0, 0, 0, 0, 0xcbf29ce484222325ull},
                       {"tanh", FNS(tanh), tanh, 0, 0, 0, 0, 0, 0xcbf29ce484222325ull},
                       {"erf", FNS(erf), erf, 0, 0, 0, 0, 0, 0xcbf29ce484222325ull}};
    static float x[4096];
    int64_t n = 0;
    for (uint64_t b = 0; b < (1ull << 32); b += stride) {
        uint32_t bits = (uint32_t)b;
        memcpy(&x[n++], &bits, 4);
        if (n == 4096 || b + stride >= (1ull << 32)) {
            for (int f = 0; f < 4; f++) run_block(&checks[f], x, n, nisa);
            n = 0;
        }
    }
    int fail = 0;
    printf("stride %llu, instruction sets compared: %d\n", (unsigned long long)stride, nisa);
    for (int f = 0; f < 4; f++) {
        check *c = &checks[f];
        printf("%-8s max %.3f ULP from the rounded result (at %a), %.3f from the exact one; "
               "special values wrong: %lld; blocks with differing bits: %lld; results %016llx\n",
               c->name, c->worst, (double)c->worst_x, c->worst_exact, c->bad_special, c->differ,
               (unsigned long long)c->hash);
        fail |= c->worst > 4 || c->bad_special || c->differ;
    }
    return fail;
}
