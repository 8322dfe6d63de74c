/* conv2d with one input channel per group (depthwise convolutions, and any convolution
 * of a single-channel input; k_conv2d hands them over). */
#include "ops.h"

#include <string.h>

typedef struct conv_geom {
    int64_t n, c, h, w;    /* input */
    int64_t o, kh, kw;     /* weight */
    int64_t oh, ow, og;    /* output; output channels per group */
    int64_t sh, sw, dh, dw, pt, pl;
} conv_geom;

/* Each output plane is a weighted sum of KH*KW shifted windows of one input plane,
 * accumulated directly (no im2col) in registers over a zero-padded copy of the plane
 * (its rows aligned to the vectors). Every element sums its taps in (p, q) order from 0
 * with one multiply-add each (fused where the GEMM fuses); the same order for every
 * thread count and instruction set with FMA. A task is one or more (image, output
 * channel) planes. Small planes run whole in registers instead (dw_flat_f32). */
typedef struct dw_job {
    const conv_geom *g;
    const void *x, *w;
    void *y;
    int64_t hp, wp; /* the padded plane */
    void **ws;      /* per worker: hp * wp elements and a vector */
    const am_epi *epi;
    bool regs;        /* epi applied to the sums in registers (am_epi.regs) */
    am_task_fn plane; /* one (image, channel) */
    int64_t planes, per; /* planes in all, per task */
    const uint16_t *mask; /* dw_flat_f32: [DW_FLAT_NB][taps] lanes whose tap is inside */
    const int64_t *off;   /* dw_flat_f32: each tap's offset in the (phase) planes */
    const int32_t *lanes; /* dw8_f32: [vectors][DW8_MASKS][8] lanes inside the plane */
    int ns; /* with regs: the epilogue's steps, step s's scalar of plane (ni, o) at sp[s] +
             * ni * sb[s] + o * sr[s] (dw_steps) */
    const char *sp[AM_FUSED_MAX_STEPS];
    int64_t sb[AM_FUSED_MAX_STEPS], sr[AM_FUSED_MAX_STEPS];
} dw_job;

/* Whether the epilogue runs over the sums in registers for plane (ni, o), its scalars
 * in v: a register epilogue (am_epi.regs) with no NaN scalar (dw_epi_*). Each step's
 * scalar where am_epi_row_scalars reads it, from dw_steps' table (through
 * am_epi_row_scalars a plane's scalars cost 10-15% of the 7x7 and 14x14 layers). */
static inline __attribute__((always_inline)) bool dw_regs(const dw_job *j, int64_t ni, int64_t o,
                                                          float *v) {
    bool nan = false;
    for (int s = 0; s < j->ns; s++) {
        v[s] = *(const float *)(const void *)(j->sp[s] + ni * j->sb[s] + o * j->sr[s]);
        nan |= v[s] != v[s];
    }
    return j->regs && !nan;
}
/* (dw_plane_*'s planes: large enough for a call) */
__attribute__((noinline)) static bool dw_regs_call(const dw_job *j, int64_t ni, int64_t o,
                                                   float *v) {
    return dw_regs(j, ni, o, v);
}

/* Task t: planes [t * per, (t + 1) * per) (small planes go to the threads in groups:
 * one counter step per plane would cost as much as the plane). */
static void dw_task(void *ud, int64_t t, int worker) {
    const dw_job *j = (const dw_job *)ud;
    int64_t end = (t + 1) * j->per < j->planes ? (t + 1) * j->per : j->planes;
    for (int64_t i = t * j->per; i < end; i++) j->plane(ud, i, worker);
}

typedef float v16f __attribute__((vector_size(64)));
typedef float v8f_ __attribute__((vector_size(32)));
typedef double v4d_ __attribute__((vector_size(32)));

#define DW_PLANE(SUF, T, ISA, ATTR, NB, V, EPI, VFMA, SPLAT, EVENS, LOAD, LOADN, STOREN)   \
    ATTR static void dw_plane_##SUF##_##ISA(void *ud, int64_t t, int worker) {             \
        enum { VW = sizeof(V) / sizeof(T) };                                               \
        const dw_job *j = (const dw_job *)ud;                                              \
        const conv_geom *g = j->g;                                                         \
        int64_t ni = t / g->o, o = t % g->o, wp = j->wp, sw = g->sw;                       \
        const T *x = (const T *)j->x + (ni * g->c + o / g->og) * g->h * g->w;              \
        const T *w = (const T *)j->w + o * g->kh * g->kw;                                  \
        T *y = (T *)j->y + t * g->oh * g->ow;                                              \
        T *xp = (T *)j->ws[worker]; /* its padding was zeroed once (conv_depthwise) */     \
        for (int64_t r = 0; r < g->h; r++) { /* (inline: a call per short row costs more) */\
            T *d = xp + (r + g->pt) * wp + g->pl;                                          \
            const T *src = x + r * g->w;                                                   \
            int64_t c = 0;                                                                 \
            for (; c + VW <= g->w; c += VW) memcpy(d + c, src + c, sizeof(V));             \
            if (c < g->w) { /* zeros past the row: padding, or a later row's place */     \
                V part = LOADN(src + c, g->w - c);                                         \
                memcpy(d + c, &part, sizeof part);                                         \
            }                                                                              \
        }                                                                                  \
        float epv[AM_FUSED_MAX_STEPS]; /* the epilogue's scalars for this plane */         \
        bool regs = sizeof(T) == sizeof(float) && dw_regs_call(j, ni, o, epv);             \
        /* Blocks of VW columns of one output row, NB at once (independent sums hide the  \
         * FMA latency; the loops over them unrolled so that the sums stay in registers): \
         * a row's last block ends at its last column, overlapping the one before (the    \
         * same values again); a group short of NB blocks repeats its last one. A        \
         * register epilogue (am_epi.regs) goes over the sums before they are stored, any \
         * other over finished rows while they are in cache. */                           \
        int64_t per_row = (g->ow + VW - 1) / VW, blocks = g->oh * per_row, done = 0;       \
        int64_t bi = 0, bc = 0; /* the next block's row and column */                      \
        for (int64_t b0 = 0; b0 < blocks; b0 += NB) {                                      \
            int64_t off[NB], out[NB];                                                      \
            for (int b = 0; b < NB; b++) {                                                 \
                if (b0 + b >= blocks) {                                                    \
                    off[b] = off[b - 1], out[b] = out[b - 1];                              \
                    continue;                                                              \
                }                                                                          \
                int64_t c = g->ow >= VW && bc > g->ow - VW ? g->ow - VW : bc;              \
                off[b] = bi * g->sh * wp + c * sw, out[b] = bi * g->ow + c;                \
                if ((bc += VW) >= g->ow) bc = 0, bi++;                                     \
            }                                                                              \
            V acc[NB];                                                                     \
            _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) acc[b] = (V){0};          \
            for (int64_t p = 0; p < g->kh; p++) {                                          \
                const T *row = xp + p * g->dh * wp;                                        \
                const T *wr = w + p * g->kw;                                               \
                for (int64_t q = 0; q < g->kw; q++) {                                      \
                    const V wv = SPLAT(wr[q]);                                             \
                    _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) {                 \
                        V xv;                                                              \
                        const T *src = row + off[b] + q * g->dw;                           \
                        if (sw == 1) {                                                     \
                            xv = LOAD(src);                                                \
                        } else if (sw == 2) {                                              \
                            xv = EVENS(LOAD(src), LOAD(src + VW));                         \
                        } else {                                                           \
                            for (int e = 0; e < VW; e++) xv[e] = src[e * sw];              \
                        }                                                                  \
                        acc[b] = VFMA(wv, xv, acc[b]);                                     \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
            if (regs) EPI(j->epi, epv, acc);                                               \
            _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) {                         \
                if (g->ow >= VW)                                                           \
                    memcpy(y + out[b], &acc[b], sizeof acc[b]);                            \
                else if (out[b] + VW <= g->oh * g->ow) /* over later rows of the plane */ \
                    memcpy(y + out[b], &acc[b], sizeof acc[b]);                            \
                else                                                                       \
                    STOREN(y + out[b], acc[b], g->ow);                                     \
            }                                                                              \
            int64_t rows = b0 + NB < blocks ? (b0 + NB) / per_row : g->oh;                 \
            if (j->epi && !regs && (rows - done) * g->ow >= DW_EPI_MIN) {                  \
                am_epi_apply(j->epi, ni, o, 1, done * g->ow, (rows - done) * g->ow);       \
                done = rows;                                                               \
            }                                                                              \
        }                                                                                  \
        if (j->epi && !regs && done < g->oh)                                               \
            am_epi_apply(j->epi, ni, o, 1, done * g->ow, (g->oh - done) * g->ow);          \
    }
#define DW_EPI_NONE(e, ev, acc) ((void)0)
#define DW_EPI_AVX2(e, ev, acc) dw_epi_avx2((e), (ev), (acc), AM_EPI_REGS_VECS)
#define DW_EPI_512(e, ev, acc) dw_epi_avx512((e), (ev), (acc), AM_EPI_REGS_VECS)
/* Multiply-adds of a task at least (when planes are smaller, a task takes several). */
#define DW_TASK_MIN 8192
/* Elements of finished rows the epilogue takes at once. */
#define DW_EPI_MIN 1024
#define DW_EV16 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define EVENS16(a, b) __builtin_shufflevector((a), (b), DW_EV16)
#define EVENS8F(a, b) __builtin_shufflevector((a), (b), 0, 2, 4, 6, 8, 10, 12, 14)
#define EVENS4D(a, b) __builtin_shufflevector((a), (b), 0, 2, 4, 6)
#define VFMA_PLAIN(a, b, c) ((c) + (a) * (b))
#define SPLAT_8F(s) ((v8f_){(s), (s), (s), (s), (s), (s), (s), (s)})
#define SPLAT_4D(s) ((v4d_){(s), (s), (s), (s)})
#define LOAD_VEC(V, p) __extension__({ V v_; memcpy(&v_, (p), sizeof v_); v_; })
#define load_8f(p) LOAD_VEC(v8f_, p)
#define load_4d(p) LOAD_VEC(v4d_, p)
/* A vector of the n (< a vector) elements at p and zeros; the first n elements of v to p. */
#define LOADN_VEC(V, T, p, n) \
    __extension__({ V v_ = {0}; memcpy(&v_, (p), sizeof(T) * (size_t)(n)); v_; })
#define STOREN_VEC(p, v, n) \
    __extension__({ __typeof__(v) v_ = (v); memcpy((p), &v_, sizeof v_[0] * (size_t)(n)); })
#define loadn_8f(p, n) LOADN_VEC(v8f_, float, p, n)
#define loadn_4d(p, n) LOADN_VEC(v4d_, double, p, n)
/* The portable kernels: where dispatch runs (x86-64), only on CPUs without AVX2, so there
 * unrolled less (the library stays small). */
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#define DW_GENERIC_NB 1
#else
#define DW_GENERIC_NB 4
#endif
DW_PLANE(f32, float, generic, AM_PORTABLE, DW_GENERIC_NB, v8f_, DW_EPI_NONE, VFMA_PLAIN,
         SPLAT_8F, EVENS8F, load_8f, loadn_8f, STOREN_VEC)
DW_PLANE(f64, double, generic, AM_PORTABLE, DW_GENERIC_NB, v4d_, DW_EPI_NONE, VFMA_PLAIN,
         SPLAT_4D, EVENS4D, load_4d, loadn_4d, STOREN_VEC)
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#include <immintrin.h>
#define VFMA_AVX2_PS(a, b, c) ((v8f_)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define VFMA_AVX2_PD(a, b, c) ((v4d_)_mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(c)))
#define VFMA_512_PS(a, b, c) ((v16f)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define SPLAT_512_PS(s) ((v16f)_mm512_set1_ps(s))
#define LOAD_AVX2_PS(p) ((v8f_)_mm256_loadu_ps(p))
#define LOAD_AVX2_PD(p) ((v4d_)_mm256_loadu_pd(p))
#define LOAD_512_PS(p) ((v16f)_mm512_loadu_ps(p))
#define SPLAT_AVX2_PS(s) ((v8f_)_mm256_set1_ps(s))
#define SPLAT_AVX2_PD(s) ((v4d_)_mm256_set1_pd(s))
/* LOADN_VEC and STOREN_VEC with masked loads and stores */
#define MASK8_PS(n) \
    _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define MASK4_PD(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define LOADN_AVX2_PS(p, n) ((v8f_)_mm256_maskload_ps((p), MASK8_PS(n)))
#define STOREN_AVX2_PS(p, v, n) _mm256_maskstore_ps((p), MASK8_PS(n), (__m256)(v))
#define LOADN_AVX2_PD(p, n) ((v4d_)_mm256_maskload_pd((p), MASK4_PD(n)))
#define STOREN_AVX2_PD(p, v, n) _mm256_maskstore_pd((p), MASK4_PD(n), (__m256d)(v))
#define MASKN(n) ((1u << (n)) - 1u)
#define LOADN_512_PS(p, n) ((v16f)_mm512_maskz_loadu_ps((__mmask16)MASKN(n), (p)))
#define STOREN_512_PS(p, v, n) _mm512_mask_storeu_ps((p), (__mmask16)MASKN(n), (__m512)(v))
/* The steps of a register epilogue (am_epi.regs) on nb <= 8 vectors of sums in registers,
 * one IEEE operation each as in the vector code (k_epilogue.c): max and min (the sum
 * first) as vmaxps / vminps with the scalar first, which return the sum when it is NaN
 * (the plane's scalars are not: else the epilogue runs over finished rows). */
#define DW_EPI_FAST(ISA, ATTR, V, IV, SPLAT, MAX, MIN)                                     \
    ATTR __attribute__((always_inline)) static inline void dw_epi_##ISA(const am_epi *e,   \
                                                                        const float *v,    \
                                                                        V *acc, int nb) {  \
        for (int s = 0; s < e->g->n_steps; s++) {                                          \
            const V y = SPLAT(v[s]);                                                       \
            switch (e->ops[s].op) {                                                        \
            case EPI_ADD: DW_EACH(acc[b] = acc[b] + y); break;                             \
            case EPI_SUB: DW_EACH(acc[b] = acc[b] - y); break;                             \
            case EPI_MUL: DW_EACH(acc[b] = acc[b] * y); break;                             \
            case EPI_DIV: DW_EACH(acc[b] = acc[b] / y); break;                             \
            case EPI_MAX: DW_EACH(acc[b] = (V)MAX(y, acc[b])); break;                      \
            case EPI_MIN: DW_EACH(acc[b] = (V)MIN(y, acc[b])); break;                      \
            case EPI_GT: { /* and mul, where: x > a ? x : x * b */                         \
                const V y2 = SPLAT(v[s + 1]);                                              \
                s += 2;                                                                    \
                DW_EACH(IV k = acc[b] > y;                                                 \
                        acc[b] = (V)((k & (IV)acc[b]) | (~k & (IV)(acc[b] * y2))));        \
                break;                                                                     \
            }                                                                              \
            default: { /* le or ge, and the where after it: x <= a (>= a) ? b : x */       \
                const bool le = e->ops[s].op == EPI_LE;                                    \
                const V y2 = SPLAT(v[++s]);                                                \
                if (le) {                                                                  \
                    DW_EACH(IV k = acc[b] <= y; acc[b] = (V)((k & (IV)y2) | (~k & (IV)acc[b]))); \
                } else {                                                                   \
                    DW_EACH(IV k = acc[b] >= y; acc[b] = (V)((k & (IV)y2) | (~k & (IV)acc[b]))); \
                }                                                                          \
            }                                                                              \
            }                                                                              \
        }                                                                                  \
    }
#define DW_EACH(...) \
    _Pragma("GCC unroll 8") for (int b = 0; b < nb; b++) { __VA_ARGS__; }
typedef int32_t v8i_ __attribute__((vector_size(32)));
typedef int32_t v16i __attribute__((vector_size(64)));
#define MAX_AVX2(a, b) _mm256_max_ps((__m256)(a), (__m256)(b))
#define MIN_AVX2(a, b) _mm256_min_ps((__m256)(a), (__m256)(b))
#define MAX_512(a, b) _mm512_max_ps((__m512)(a), (__m512)(b))
#define MIN_512(a, b) _mm512_min_ps((__m512)(a), (__m512)(b))
DW_EPI_FAST(avx2, __attribute__((target("avx2,fma"))), v8f_, v8i_, SPLAT_AVX2_PS, MAX_AVX2,
            MIN_AVX2)
DW_EPI_FAST(avx512, __attribute__((target("avx512f"))), v16f, v16i, SPLAT_512_PS, MAX_512,
            MIN_512)
/* (its 3x3 kernels at stride 1 or 2 run in dw8_f32; AVX-512's in dw_rows_f32) */
DW_PLANE(f32, float, avx2, __attribute__((target("avx2,fma"))), 8, v8f_, DW_EPI_AVX2,
         VFMA_AVX2_PS, SPLAT_AVX2_PS, EVENS8F, LOAD_AVX2_PS, LOADN_AVX2_PS, STOREN_AVX2_PS)
/* (float64, rare in inference: optimised for size) */
DW_PLANE(f64, double, avx2, __attribute__((target("avx2,fma"), cold)), 4, v4d_, DW_EPI_NONE,
         VFMA_AVX2_PD, SPLAT_AVX2_PD, EVENS4D, LOAD_AVX2_PD, LOADN_AVX2_PD, STOREN_AVX2_PD)
DW_PLANE(f32, float, avx512, __attribute__((target("avx512f"))), 8, v16f, DW_EPI_512,
         VFMA_512_PS, SPLAT_512_PS, EVENS16, LOAD_512_PS, LOADN_512_PS, STOREN_512_PS)
/* Small planes (DW_FLAT_MAX outputs at most: larger ones cost more in loads, most of
 * them across cache lines, than dw_plane's shuffles) at stride 1 or 2 whose output rows
 * are as wide as the input's at that stride (ceil(w/s): "same" padding). At stride 1,
 * output k = i*ow + j of the flat plane reads input k + (p*dh - pt)*w + q*dw - pl, so
 * a tap is one masked vector load of the input (the mask drops the lanes whose row or
 * column is outside the plane); at stride 2 the same over the input's four phase
 * planes x[a::2, b::2] (dw_phases). The plane's DW_FLAT_NB vectors stay in registers
 * over all the taps, each summing its taps as dw_plane does. */
/* DW_FLAT_P planes at a time share each tap's masks and interleave their sums (four:
 * 960x7x7 ran 0.97x ORT against 1.04x with two). */
enum { DW_FLAT_NB = 4, DW_FLAT_MAX = 16 * DW_FLAT_NB, DW_FLAT_P = 4 };

/* The register epilogue (am_epi.regs, its scalars v) over sums a..d if e, and the
 * first n (at most 64) stored at y. */
#define DW_AVX512 __attribute__((target("avx512f"))) /* (a name: the function scan reads it) */
DW_AVX512 __attribute__((noinline)) static void dw_epi_store(const am_epi *e, const float *v,
                                                             float *y, int64_t n, v16f a,
                                                             v16f b, v16f c, v16f d) {
    v16f acc[4] = {a, b, c, d};
    if (e) dw_epi_avx512(e, v, acc, 4);
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++)
        _mm512_mask_storeu_ps(y + 16 * k, am_lanes16(0, n - 16 * k), (__m512)acc[k]);
}

/* The register epilogue over the n stored sums at y, in place, 64 at a time: for planes
 * of narrow rows, one pass of its steps where once a row would cost more. (Inline, not
 * through dw_epi_store: 10% of the 14x14 layers.) */
DW_AVX512 __attribute__((noinline)) static void dw_epi_plane(const am_epi *e, const float *v,
                                                             float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 64) {
        v16f acc[4];
        _Pragma("GCC unroll 4") for (int b = 0; b < 4; b++)
            acc[b] = (v16f)_mm512_maskz_loadu_ps(am_lanes16(0, n - i - 16 * b), y + i + 16 * b);
        dw_epi_avx512(e, v, acc, 4);
        _Pragma("GCC unroll 4") for (int b = 0; b < 4; b++)
            _mm512_mask_storeu_ps(y + i + 16 * b, am_lanes16(0, n - i - 16 * b), (__m512)acc[b]);
    }
}

/* The phase planes of x (rows of w <= 16), each ceil(h/2) x ceil(w/2), plane 2a + b
 * at ph + (2a + b) * (ceil(h/2) * ceil(w/2) + 16): whole vectors stored, rows in order
 * (a row's tail lands where a later row or the gap goes; the kernel's masks skip it). */
DW_AVX512 static const float *dw_phases(const float *x, const conv_geom *g, float *ph) {
    const int64_t wh = (g->w + 1) / 2, ps = (g->h + 1) / 2 * wh + 16, w = g->w;
    const __m512i eo = (__m512i)(v16i){0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15};
    const __mmask16 m0 = (__mmask16)MASKN(w);
    for (int64_t r = 0, h = g->h; r < h; r += 2) { /* (rows in pairs: phase rows a = 0, 1) */
        __m512 v = _mm512_permutexvar_ps(eo, _mm512_maskz_loadu_ps(m0, x + r * w));
        __m512 u = _mm512_permutexvar_ps(eo, _mm512_maskz_loadu_ps(r + 1 < h ? m0 : 0,
                                                                   x + r * w + w));
        float *d = ph + r / 2 * wh;
        _mm256_storeu_ps(d, _mm512_castps512_ps256(v)); /* the evens, then the odds */
        _mm256_storeu_pd((double *)(d + ps), _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
        _mm256_storeu_ps(d + 2 * ps, _mm512_castps512_ps256(u));
        _mm256_storeu_pd((double *)(d + 3 * ps), _mm512_extractf64x4_pd(_mm512_castps_pd(u), 1));
    }
    return ph;
}

/* Task t: planes [t * DW_FLAT_P, ...) at once, each tap's masks loaded once for all. */
DW_AVX512 static void dw_flat_f32(void *ud, int64_t t, int worker) {
    const dw_job *j = (const dw_job *)ud;
    const conv_geom *g = j->g;
    const int64_t hw = g->h * g->w, t0 = t * DW_FLAT_P;
    const int64_t ps = 4 * ((g->h + 1) / 2 * ((g->w + 1) / 2) + 16); /* (dw_phases) */
    const int64_t np = g->n * g->o - t0 < DW_FLAT_P ? g->n * g->o - t0 : DW_FLAT_P;
    const int taps = (int)(g->kh * g->kw);
    const float *x[DW_FLAT_P], *w[DW_FLAT_P];
    float epv[DW_FLAT_P][AM_FUSED_MAX_STEPS]; /* (read before the sums: no calls over them) */
    bool regs[DW_FLAT_P];
    int64_t ni = t0 / g->o, o = t0 % g->o; /* (one division: ~20 cycles of a plane's ~130) */
    for (int64_t p = 0; p < DW_FLAT_P; p++) { /* (past the planes: plane t0 again, unstored) */
        w[p] = p < np ? (const float *)j->w + o * taps : w[0];
        x[p] = p < np ? (const float *)j->x + (ni * g->c + (g->og > 1 ? o / g->og : o)) * hw
                      : x[0];
        if (g->sh == 2 && p < np) x[p] = dw_phases(x[p], g, (float *)j->ws[worker] + p * ps);
        regs[p] = p < np ? dw_regs(j, ni, o, epv[p]) : false;
        if (++o == g->o) o = 0, ni++;
    }
    v16f acc[DW_FLAT_P][DW_FLAT_NB] = {{{0}}};
    for (int tap = 0; tap < taps; tap++) {
        __mmask16 m[DW_FLAT_NB];
        _Pragma("GCC unroll 4") for (int b = 0; b < DW_FLAT_NB; b++) m[b] = j->mask[b * taps + tap];
        _Pragma("GCC unroll 4") for (int p = 0; p < DW_FLAT_P; p++) {
            /* (as an integer: a vector may start before the plane, in lanes the mask drops) */
            const float *src = (const float *)((uintptr_t)x[p] + (uintptr_t)j->off[tap] * 4u);
            const __m512 wv = _mm512_set1_ps(w[p][tap]);
            _Pragma("GCC unroll 4") for (int b = 0; b < DW_FLAT_NB; b++) {
                __m512 xv = _mm512_maskz_loadu_ps(m[b], src + 16 * b);
                acc[p][b] = (v16f)_mm512_fmadd_ps(wv, xv, (__m512)acc[p][b]);
            }
        }
    }
    const int64_t n = g->oh * g->ow;
    _Pragma("GCC unroll 4") for (int p = 0; p < DW_FLAT_P; p++) /* (acc: registers) */
        if (p < np)
            dw_epi_store(regs[p] ? j->epi : NULL, epv[p], (float *)j->y + (t0 + p) * n, n,
                         acc[p][0], acc[p][1], acc[p][2], acc[p][3]);
    for (int64_t q = t0; q < t0 + np; q++)
        if (j->epi && !regs[q - t0]) am_epi_apply(j->epi, q / g->o, q % g->o, 1, 0, n);
}

/* 3x3 kernels at stride 1 or 2, undilated, rows of more than 8 outputs (MobileNet's
 * depthwise layers but the 7x7 ones): a strip of up to DW_ROWS_NB vectors across is
 * carried down the plane, each input row loaded once (masked loads: zeros outside the
 * plane, no padded copy) and multiply-added into the output rows that read it: three at
 * stride 1; at stride 2 two (an even row) or one. Each output still sums its taps in
 * (p, q) order from 0 as dw_plane does: row p of its window arrives after row p - 1.
 * One function per stride (dw_rows_f32, dw_rows2_f32: no stride tests in the loops, 5-10%
 * faster), the rows in pairs at stride 2. */
enum { DW_ROWS_NB = 4 };

/* The inputs of one window row's three taps for 16 outputs from p: at stride 1 the 16
 * elements at p, then shifted by one and two lanes with the two at p + 16; at stride 2
 * the even and odd elements at p (two loads, 16 apart) and the odd ones at p + 1: the
 * evens shifted by one lane with the element at p + 32. (Fewer loads, most across cache
 * lines: 2-14% faster.) m: the loads' lanes inside the plane, as dw_rows_setup sets. */
DW_AVX512 static inline __attribute__((always_inline)) void
dw_taps(const float *p, const __mmask16 *m, __mmask16 in, bool s2, __m512 *v) {
    if (!s2) {
        v[0] = _mm512_maskz_loadu_ps(in & m[0], p);
        __m512i nx = (__m512i)_mm512_maskz_loadu_ps(in & m[1], p + 16); /* (two lanes) */
        v[1] = (__m512)_mm512_alignr_epi32(nx, (__m512i)v[0], 1);
        v[2] = (__m512)_mm512_alignr_epi32(nx, (__m512i)v[0], 2);
        return;
    }
    const __m512i ev = (__m512i)(v16i){DW_EV16};
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    __m512 a = _mm512_maskz_loadu_ps(in & m[0], p), b = _mm512_maskz_loadu_ps(in & m[1], p + 16);
    v[0] = _mm512_permutex2var_ps(a, ev, b), v[1] = _mm512_permutex2var_ps(a, od, b);
    /* the odd ones at p + 1: the evens from p + 2, the last one alone */
    v[2] = (__m512)_mm512_alignr_epi32((__m512i)_mm512_maskz_loadu_ps(in & m[2], p + 32),
                                       (__m512i)v[0], 1);
}
/* acc plus one window row's taps (weights w##a, w##b, w##c on v[0..2]), in q order */
#define DW_ROW3(acc, a, b, c, v)                                                           \
    _mm512_fmadd_ps(w##c, (v)[2],                                                          \
                    _mm512_fmadd_ps(w##b, (v)[1], _mm512_fmadd_ps(w##a, (v)[0], (acc))))

/* Step u of dw_rows_body (EVEN: u is even, known where the stride is 2) */
#define DW_ROWS_STEP(u, EVEN)                                                              \
    do {                                                                                   \
        const int64_t r = (u) - g->pt;                                                     \
        const __mmask16 in = r >= 0 && r < h ? 0xffffu : 0u;                               \
        /* (as an integer: a vector may start before the plane, in lanes the mask drops) */\
        const uintptr_t row =                                                              \
            (uintptr_t)(x + (in ? r * w : 0) + c0 * s) - (uintptr_t)g->pl * 4u;            \
        const bool even = (EVEN);                                                          \
        _Pragma("GCC unroll 4") for (int b = 0; b < DW_ROWS_NB; b++) {                     \
            if (b >= nb) break;                                                            \
            __m512 v[3];                                                                   \
            dw_taps((const float *)(row + 64u * (uintptr_t)(s * b)), mk + 5 * b, in, s2, v);\
            if (!s2 || even) a2[b] = (v16f)DW_ROW3((__m512)a2[b], 6, 7, 8, v);             \
            if (!s2) a1[b] = (v16f)DW_ROW3((__m512)a1[b], 3, 4, 5, v);                     \
            if (s2 && !even) a0[b] = (v16f)DW_ROW3((__m512)a0[b], 3, 4, 5, v);             \
            else a0[b] = (v16f)DW_ROW3(_mm512_setzero_ps(), 0, 1, 2, v);                   \
        }                                                                                  \
        if ((u) >= 2 && (!s2 || even)) { /* output ((u) - 2) / s done */                   \
            if (regs && ow > 16) dw_epi_avx512(j->epi, epv, a2, DW_ROWS_NB);               \
            float *yr = y + ((u) - 2) / s * ow + c0;                                       \
            _Pragma("GCC unroll 4") for (int b = 0; b < DW_ROWS_NB; b++)                   \
                if (b < nb) _mm512_mask_storeu_ps(yr + 16 * b, mk[5 * b + 4], (__m512)a2[b]);\
        }                                                                                  \
        _Pragma("GCC unroll 4") for (int b = 0; b < DW_ROWS_NB; b++) {                     \
            if (!s2) a2[b] = a1[b], a1[b] = a0[b];                                         \
            else if (!even) a2[b] = a0[b];                                                 \
        }                                                                                  \
    } while (0)

DW_AVX512 static inline __attribute__((always_inline)) void
dw_rows_body(const dw_job *j, int64_t t, const bool s2) {
    const conv_geom *g = j->g;
    const int64_t ni = t / g->o, o = t % g->o, h = g->h, w = g->w, oh = g->oh, ow = g->ow;
    const int64_t s = s2 ? 2 : 1;
    const float *x = (const float *)j->x + (ni * g->c + o / g->og) * h * w;
    const float *wt = (const float *)j->w + o * 9;
    float *y = (float *)j->y + t * oh * ow;
    const __m512 w0 = _mm512_set1_ps(wt[0]), w1 = _mm512_set1_ps(wt[1]), w2 = _mm512_set1_ps(wt[2]);
    const __m512 w3 = _mm512_set1_ps(wt[3]), w4 = _mm512_set1_ps(wt[4]), w5 = _mm512_set1_ps(wt[5]);
    const __m512 w6 = _mm512_set1_ps(wt[6]), w7 = _mm512_set1_ps(wt[7]), w8 = _mm512_set1_ps(wt[8]);
    float epv[AM_FUSED_MAX_STEPS];
    const bool regs = dw_regs(j, ni, o, epv);
    for (int64_t c0 = 0; c0 < ow; c0 += 16 * DW_ROWS_NB) {
        const int64_t nb = (ow - c0 + 15) / 16 < DW_ROWS_NB ? (ow - c0 + 15) / 16 : DW_ROWS_NB;
        const __mmask16 *mk = j->mask + c0 / 16 * 5; /* per vector: dw_taps', the store's */
        v16f a0[DW_ROWS_NB] = {{0}}, a1[DW_ROWS_NB] = {{0}}, a2[DW_ROWS_NB] = {{0}};
        /* step u: input row u - pt, row p = u - i * s of output i's window: at stride 1
         * outputs u (a0), u - 1 (a1) and u - 2 (a2); at stride 2 output u / 2 (a0) and
         * for an even u output u / 2 - 1 (a2) */
        for (int64_t u = 0; u < (oh - 1) * s + 3; u += s) { /* (at stride 2: rows in pairs) */
            DW_ROWS_STEP(u, true);
            if (s2 && u + 1 < (oh - 1) * s + 3) DW_ROWS_STEP(u + 1, false);
        }
    }
    if (regs && ow <= 16) dw_epi_plane(j->epi, epv, y, oh * ow); /* (not once a row) */
    if (j->epi && !regs) am_epi_apply(j->epi, ni, o, 1, 0, oh * ow);
}
DW_AVX512 static void dw_rows_f32(void *ud, int64_t t, int worker) {
    (void)worker;
    dw_rows_body((const dw_job *)ud, t, false);
}
DW_AVX512 static void dw_rows2_f32(void *ud, int64_t t, int worker) {
    (void)worker;
    dw_rows_body((const dw_job *)ud, t, true);
}

/* dw_rows_f32's scheme on AVX2 (8 lanes, no lane masks or two-source permutes): a strip
 * of up to DW8_NB vectors carried down the plane, each input row loaded once (masked
 * loads, zeros outside the plane) and multiply-added into the output rows that read it,
 * each output summing its taps in (p, q) order from 0 as dw_plane does. At stride 1 a
 * row's three taps are three loads one element apart; at stride 2 the even and odd
 * elements of two vectors and the evens of two more two elements on. Any plane width
 * (a 7x7 plane: one vector a row). The filter's nine vectors stay on the stack (the
 * multiply-adds read them from L1: 3 * DW8_NB sums, three taps and a mask in registers). */
enum { DW8_NB = 3, DW8_MASKS = 5 /* per vector: the loads' (4 at stride 2), the store's */ };
#define DW_AVX2 __attribute__((target("avx2,fma")))
#define DW8_LOAD(p, k)                                                                     \
    (!in ? zero : full ? _mm256_loadu_ps(p)                                               \
                       : _mm256_maskload_ps((p), _mm256_loadu_si256((const __m256i *)mk + (k))))
#define DW8_ROW3(acc, a, v) \
    _mm256_fmadd_ps(w[(a) + 2], (v)[2], _mm256_fmadd_ps(w[(a) + 1], (v)[1], \
                                                      _mm256_fmadd_ps(w[a], (v)[0], (acc))))
/* the even and odd elements of the 16 at (a, b), as outputs 0, 1, 4, 5, 2, 3, 6, 7 (in-lane
 * shuffles: the sums' lanes are put in order once, before their store) */
#define DW8_EVENS(a, b) _mm256_shuffle_ps(a, b, 0x88)
#define DW8_ODDS(a, b) _mm256_shuffle_ps(a, b, 0xdd)
#define DW8_ORDER(v) _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xd8))

DW_AVX2 static inline __attribute__((always_inline)) void
dw8_body(const dw_job *j, int64_t t, const bool s2) {
    const conv_geom *g = j->g;
    const int64_t ni = t / g->o, o = t % g->o, h = g->h, wd = g->w, oh = g->oh, ow = g->ow;
    const int64_t s = s2 ? 2 : 1, nv = (ow + 7) / 8, strips = (nv + DW8_NB - 1) / DW8_NB;
    const float *x = (const float *)j->x + (ni * g->c + o / g->og) * h * wd;
    const float *wt = (const float *)j->w + o * 9;
    float *y = (float *)j->y + t * oh * ow;
    __m256 w[9];
    for (int k = 0; k < 9; k++) w[k] = _mm256_set1_ps(wt[k]);
    float epv[AM_FUSED_MAX_STEPS];
    const bool regs = dw_regs(j, ni, o, epv);
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t v0 = 0, si = 0; si < strips; si++) { /* strips of nearly equal width */
        const int64_t nb = (nv - v0 + strips - si - 1) / (strips - si);
        v8f_ a0[DW8_NB] = {{0}}, a1[DW8_NB] = {{0}}, a2[DW8_NB] = {{0}};
        for (int64_t u = 0; u < (oh - 1) * s + 3; u++) { /* input row u - pt */
            const int64_t r = u - g->pt;
            const bool in = r >= 0 && r < h, even = !s2 || u % 2 == 0;
            /* (as an integer: a vector may start before the plane, in lanes masked off) */
            const uintptr_t row = (uintptr_t)(x + (in ? r * wd : 0)) +
                                  (uintptr_t)(8 * v0 * s - g->pl) * 4u;
            _Pragma("GCC unroll 3") for (int b = 0; b < DW8_NB; b++) {
                if (b >= nb) break;
                const int32_t *mk = j->lanes + (v0 + b) * DW8_MASKS * 8;
                const float *p = (const float *)(row + 32u * (uintptr_t)(s * b));
                /* (stride 2: no masks inside the plane; at stride 1 that ran slower) */
                const int64_t c0 = 16 * (v0 + b) - g->pl;
                const bool full = s2 && c0 >= 0 && c0 + 18 <= wd;
                __m256 v[3];
                if (!s2) {
                    v[0] = DW8_LOAD(p, 0), v[1] = DW8_LOAD(p + 1, 1), v[2] = DW8_LOAD(p + 2, 2);
                } else {
                    __m256 e0 = DW8_LOAD(p, 0), e1 = DW8_LOAD(p + 8, 1);
                    v[0] = DW8_EVENS(e0, e1), v[1] = DW8_ODDS(e0, e1);
                    v[2] = DW8_EVENS(DW8_LOAD(p + 2, 2), DW8_LOAD(p + 10, 3));
                }
                if (even) a2[b] = (v8f_)DW8_ROW3((__m256)a2[b], 6, v);
                if (!s2) a1[b] = (v8f_)DW8_ROW3((__m256)a1[b], 3, v);
                if (s2 && !even) a0[b] = (v8f_)DW8_ROW3((__m256)a0[b], 3, v);
                else a0[b] = (v8f_)DW8_ROW3(zero, 0, v);
            }
            if (u >= 2 && even) { /* output (u - 2) / s done */
                if (regs) dw_epi_avx2(j->epi, epv, a2, DW8_NB);
                float *yr = y + (u - 2) / s * ow + 8 * v0;
                _Pragma("GCC unroll 3") for (int b = 0; b < DW8_NB; b++) {
                    if (b >= nb) break;
                    const int32_t *mk = j->lanes + ((v0 + b) * DW8_MASKS + 4) * 8;
                    const __m256 out = s2 ? DW8_ORDER((__m256)a2[b]) : (__m256)a2[b];
                    if (8 * (v0 + b + 1) <= ow) /* (AMD's masked stores are slow) */
                        _mm256_storeu_ps(yr + 8 * b, out);
                    else
                        _mm256_maskstore_ps(yr + 8 * b, _mm256_loadu_si256((const __m256i *)mk),
                                            out);
                }
            }
            _Pragma("GCC unroll 3") for (int b = 0; b < DW8_NB; b++) {
                if (!s2) a2[b] = a1[b], a1[b] = a0[b];
                else if (!even) a2[b] = a0[b];
            }
        }
        v0 += nb;
    }
    if (j->epi && !regs) am_epi_apply(j->epi, ni, o, 1, 0, oh * ow);
}
DW_AVX2 static void dw8_f32(void *ud, int64_t t, int worker) {
    (void)worker;
    dw8_body((const dw_job *)ud, t, false);
}
DW_AVX2 static void dw8s2_f32(void *ud, int64_t t, int worker) {
    (void)worker;
    dw8_body((const dw_job *)ud, t, true);
}

/* Sets dw8_f32 up in job: per vector across a row, the lanes inside the plane of its
 * loads (dw8_body's order) and of its store (job->lanes, DW8_MASKS of 8 each). */
static amber_status dw8_setup(am_ctx *ctx, const conv_geom *g, dw_job *job) {
    const int64_t n = (g->ow + 7) / 8, s = g->sw;
    static const int8_t at[2][4] = {{0, 1, 2, 0}, {0, 8, 2, 10}}; /* each load's offset */
    int32_t *m = NULL;
    amber_status st = am_arena_alloc(ctx->scratch, sizeof *m * (size_t)(n * DW8_MASKS * 8),
                                     (void **)&m, ctx->err);
    for (int64_t b = 0; st == AMBER_OK && b < n; b++)
        for (int k = 0; k < DW8_MASKS; k++)
            for (int64_t l = 0; l < 8; l++) {
                int64_t c = 8 * b * s - g->pl + at[s - 1][k < 4 ? k : 0] + l;
                bool on = k < 4 ? k < 2 + s && c >= 0 && c < g->w : 8 * b + l < g->ow;
                m[(b * DW8_MASKS + k) * 8 + l] = on ? -1 : 0;
            }
    job->lanes = m;
    return st;
}

/* Sets dw_rows_f32 up in job: the lanes inside the plane of each output vector's loads
 * (dw_taps) and store (job->mask, five per vector across a row). */
static amber_status dw_rows_setup(am_ctx *ctx, const conv_geom *g, dw_job *job) {
    const int64_t n = (g->ow + 15) / 16, s = g->sw;
    uint16_t *m = NULL;
    amber_status st = am_arena_alloc(ctx->scratch, sizeof *m * (size_t)(5 * n), (void **)&m,
                                     ctx->err);
    for (int64_t b = 0; st == AMBER_OK && b < n; b++) {
        for (int64_t k = 0; k < 4; k++) {
            int64_t at = 16 * b * s - g->pl + (s == 2 ? (k == 2 ? 32 : k * 16) : k * 16);
            m[5 * b + k] = am_lanes16(-at, g->w - at) & (k == s ? 3u >> (s - 1) : 0xffffu);
        }
        m[5 * b + 4] = am_lanes16(0, g->ow - 16 * b);
    }
    job->mask = m;
    return st;
}

/* Sets dw_flat_f32 up in job: each tap's offset and lane masks (none past the plane),
 * and at stride 2 the phase planes' workspace (*bytes per worker). */
static amber_status dw_flat_setup(am_ctx *ctx, const conv_geom *g, dw_job *job,
                                  size_t *bytes) {
    const int64_t n = g->oh * g->ow, kw = g->kw, taps = g->kh * kw, s = g->sh;
    const int64_t wh = (g->w + s - 1) / s, ps = (g->h + s - 1) / s * wh + 16; /* dw_phases */
    uint16_t *m = NULL;
    int64_t *off = NULL;
    amber_status st = am_arena_alloc(ctx->scratch, sizeof *m * (size_t)(DW_FLAT_NB * taps),
                                     (void **)&m, ctx->err);
    if (st == AMBER_OK)
        st = am_arena_alloc(ctx->scratch, sizeof *off * (size_t)taps, (void **)&off, ctx->err);
    if (st != AMBER_OK) return st;
    for (int64_t tap = 0; tap < taps; tap++) { /* phase (a, b), shifted by (di, dj) */
        int64_t pi = tap / kw * g->dh - g->pt, pj = tap % kw * g->dw - g->pl;
        int64_t a = (pi % s + s) % s, b = (pj % s + s) % s;
        int64_t di = (pi - a) / s, dj = (pj - b) / s;
        int64_t rows = (g->h - a + s - 1) / s, cols = (g->w - b + s - 1) / s;
        off[tap] = (a * s + b) * ps + di * wh + dj;
        for (int64_t v = 0, r = di, c = dj; v < DW_FLAT_NB; v++) { /* output k at (r, c) */
            unsigned bits = 0; /* (no division per lane: 2-3% of the 7x7 layers) */
            for (int l = 0; l < 16; l++, c = c + 1 - dj < g->ow ? c + 1 : (r++, dj))
                bits |= (unsigned)(v * 16 + l < n && c >= 0 && c < cols && r >= 0 && r < rows) << l;
            m[v * taps + tap] = (uint16_t)bits;
        }
    }
    if (s == 2) *bytes = sizeof(float) * (size_t)(DW_FLAT_P * 4 * ps);
    job->planes = (job->planes + DW_FLAT_P - 1) / DW_FLAT_P; /* tasks of DW_FLAT_P planes */
    job->per = (job->per + DW_FLAT_P - 1) / DW_FLAT_P;
    job->mask = m, job->off = off;
    return AMBER_OK;
}

/* The kernel for rows of `ow` outputs, and its vector width: half-width vectors where a
 * row fits in half a vector (the lanes of a full one would mostly be wasted), and for
 * float64 (rare in inference: the library stays small). */
static am_task_fn dw_pick(bool f32, int64_t ow, int64_t *vw) {
    int isa = am_cpu_isa();
    if (isa >= AM_GEMM_ISA_AVX512 && ow > 8 && f32) {
        *vw = 16;
        return dw_plane_f32_avx512;
    }
    if (isa >= AM_GEMM_ISA_AVX2) {
        *vw = f32 ? 8 : 4;
        return f32 ? dw_plane_f32_avx2 : dw_plane_f64_avx2;
    }
    *vw = f32 ? 8 : 4;
    return f32 ? dw_plane_f32_generic : dw_plane_f64_generic;
}

/* dw_rows_f32, dw_flat_f32 or dw8_f32 for planes they take (set up: true), else false. */
static bool dw_flat(am_ctx *ctx, const conv_geom *g, bool f32, dw_job *job, size_t *bytes,
                    amber_status *st) {
    if (f32 && am_cpu_isa() == AM_GEMM_ISA_AVX2 && g->kh == 3 && g->kw == 3 && g->sh < 3 &&
        g->sw == g->sh && g->dh == 1 && g->dw == 1) {
        job->plane = g->sw == 2 ? dw8s2_f32 : dw8_f32, *bytes = 64;
        *st = dw8_setup(ctx, g, job);
        return true;
    }
    if (f32 && am_cpu_isa() >= AM_GEMM_ISA_AVX512 && g->kh == 3 && g->kw == 3 && g->sh < 3 &&
        g->sw == g->sh && g->dh == 1 && g->dw == 1 && g->ow > 8 &&
        (g->oh * g->ow > DW_FLAT_MAX || g->ow != (g->w + g->sw - 1) / g->sw)) {
        job->plane = g->sw == 2 ? dw_rows2_f32 : dw_rows_f32, *bytes = 64;
        *st = dw_rows_setup(ctx, g, job);
        return true;
    }
    if (!f32 || am_cpu_isa() < AM_GEMM_ISA_AVX512 || g->sh != g->sw || g->sh > 2 ||
        g->ow != (g->w + g->sw - 1) / g->sw || (g->sw == 2 && g->w > 16) ||
        g->oh * g->ow > DW_FLAT_MAX)
        return false;
    job->plane = dw_flat_f32;
    *st = dw_flat_setup(ctx, g, job, bytes);
    return true;
}
#else
static bool dw_flat(am_ctx *ctx, const conv_geom *g, bool f32, dw_job *job, size_t *bytes,
                    amber_status *st) {
    (void)ctx, (void)g, (void)f32, (void)job, (void)bytes, (void)st;
    return false;
}
static am_task_fn dw_pick(bool f32, int64_t ow, int64_t *vw) {
    (void)ow;
    *vw = f32 ? 8 : 4;
    return f32 ? dw_plane_f32_generic : dw_plane_f64_generic;
}
#endif

/* Where dw_regs reads the register epilogue's scalars: as am_epi_row_scalars does. NOTE:
 * never over an input (am_epi.over: 1x1 convolutions without groups only). */
static void dw_steps(dw_job *j) {
    const am_epi *e = j->epi;
    for (int s = 0; j->regs && s < e->g->n_steps; s++, j->ns++) {
        int src = e->ops[s].other;
        j->sp[s] = e->base[src], j->sb[s] = e->sb[src], j->sr[s] = e->sr[src];
    }
}

static amber_status conv_depthwise(am_ctx *ctx, const conv_geom *g, const void *x,
                                   const void *w, void *y, bool f32) {
    int64_t planes = g->n * g->o, vw;
    am_task_fn fn = dw_pick(f32, g->ow, &vw);
    int64_t cols = g->ow < vw ? vw : g->ow; /* a narrow row's vector reads zeros past it */
    int64_t hp = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    /* (a vector more: a stride-2 block's second load reads past its window) */
    int64_t wp = (cols - 1) * g->sw + (g->kw - 1) * g->dw + 1 + vw;
    if (hp < g->h + g->pt) hp = g->h + g->pt;
    if (wp < g->w + g->pl) wp = g->w + g->pl;
    wp = (wp + vw - 1) / vw * vw; /* rows start aligned, as do most blocks' loads */
    int64_t area = g->oh * g->ow * g->kh * g->kw;
    /* (the portable kernel leaves the epilogue to am_epi_apply: the library stays small) */
    bool regs = f32 && ctx->epi && fn != dw_plane_f32_generic && ctx->epi->regs;
    dw_job job = {.g = g, .x = x, .w = w, .y = y, .hp = hp, .wp = wp, .epi = ctx->epi,
                  .regs = regs, .plane = fn, .planes = planes,
                  .per = area >= DW_TASK_MIN ? 1 : (DW_TASK_MIN + area - 1) / area};
    dw_steps(&job);
    double work = (double)planes * (double)area;
    bool parallel = am_pool_size(ctx->pool) > 1 && planes > 1 && work >= AM_PARALLEL_MIN;
    int n_ws = parallel ? am_pool_size(ctx->pool) : 1;
    size_t bytes = (size_t)(hp * wp + vw) * (f32 ? sizeof(float) : sizeof(double));
    amber_status st = AMBER_OK;
    if (dw_flat(ctx, g, f32, &job, &bytes, &st) && st != AMBER_OK) return st;
    st = am_arena_alloc(ctx->scratch, (size_t)n_ws * sizeof(void *), (void **)&job.ws, ctx->err);
    for (int i = 0; st == AMBER_OK && i < n_ws; i++) {
        st = am_arena_alloc(ctx->scratch, bytes, &job.ws[i], ctx->err);
        if (st == AMBER_OK) memset(job.ws[i], 0, bytes); /* the padding, for every plane */
    }
    if (st != AMBER_OK) return st;
    if (parallel) {
        am_pool_run(ctx->pool, (job.planes + job.per - 1) / job.per, dw_task, &job);
    } else {
        for (int64_t t = 0; t < job.planes; t++) job.plane(&job, t, 0);
    }
    return AMBER_OK;
}

amber_status am_conv_depthwise(am_ctx *ctx, const amber_tensor *in, const am_attrs *a,
                               amber_tensor *out) {
    const int64_t *xs = in[0].shape, *ws = in[1].shape;
    conv_geom g = {xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3],
                   out->shape[2], out->shape[3], ws[0] / a->groups,
                   a->stride[0], a->stride[1], a->dilation[0], a->dilation[1],
                   a->padding[0], a->padding[2]};
    return conv_depthwise(ctx, &g, in[0].data, in[1].data, out->data,
                          out->dtype == AMBER_FLOAT32);
}
