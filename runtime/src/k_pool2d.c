/* max_pool2d, avg_pool2d and their gradients (opset 4). One task is one (image, channel)
 * plane, so any thread count gives the same bits. Max pooling runs separably (a row pass
 * into scratch, then a column pass over contiguous rows): the maximum does not depend on
 * the order its elements are compared in. */
#include "ops.h"

#include <math.h>
#include <string.h>

typedef struct pool_geom {
    int64_t h, w, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    int64_t planes;
    bool count_include_pad;
} pool_geom;

static void pool_geom_init(pool_geom *g, const int64_t *xs, const int64_t *ys, const am_attrs *a,
                           bool avg) {
    g->planes = xs[0] * xs[1];
    g->h = xs[2], g->w = xs[3], g->oh = ys[2], g->ow = ys[3];
    g->kh = a->kernel[0], g->kw = a->kernel[1];
    g->sh = a->stride[0], g->sw = a->stride[1];
    g->dh = avg ? 1 : a->dilation[0], g->dw = avg ? 1 : a->dilation[1];
    g->pt = a->padding[0], g->pb = a->padding[1], g->pl = a->padding[2], g->pr = a->padding[3];
    g->count_include_pad = a->count_include_pad;
}

/* Kernel offsets t (0 <= t < k) with 0 <= i*s + t*d - lo < n: [*t0, *t1). */
static void valid_taps(int64_t i, int64_t n, int64_t k, int64_t s, int64_t d, int64_t lo,
                       int64_t *t0, int64_t *t1) {
    int64_t start = i * s - lo;
    int64_t a = start >= 0 ? 0 : (-start + d - 1) / d;
    int64_t b = n - 1 - start < 0 ? 0 : (n - 1 - start) / d + 1;
    if (b > k) b = k;
    if (a > b) a = b;
    *t0 = a, *t1 = b;
}

/* The window length of output i along one dim that avg_pool2d's divisor counts
 * (docs/opset.md 4.8); the divisor of (i, j) is the product of its row and column one. */
static int64_t avg_span(int64_t i, int64_t n, int64_t k, int64_t s, int64_t lo, int64_t hi,
                        bool include_pad) {
    int64_t a = i * s - lo, b = a + k;
    if (b > n + hi) b = n + hi;
    if (!include_pad) {
        if (a < 0) a = 0;
        if (b > n) b = n;
    }
    return b - a;
}

static double avg_divisor(const pool_geom *g, int64_t i, int64_t j) {
    return (double)(avg_span(i, g->h, g->kh, g->sh, g->pt, g->pb, g->count_include_pad) *
                    avg_span(j, g->w, g->kw, g->sw, g->pl, g->pr, g->count_include_pad));
}

typedef struct pool_job {
    const pool_geom *g;
    const void *x, *gy; /* input (max ops) and output gradient (grad ops) */
    void *out;
    void **ws; /* per worker scratch */
} pool_job;

/* NaN-propagating maximum: NaN if either is NaN. */
#define MAXNAN(m, v) ((((v) > (m)) | ((v) != (v))) ? (v) : (m))

/* Vectors of VW elements (GCC vector extensions): a NaN-propagating maximum as a
 * bitwise select, so every lane computes exactly what MAXNAN computes. */
#define VLOAD(V, p) __extension__({ V v_; memcpy(&v_, (p), sizeof v_); v_; })
#define VMAXNAN(V, VI, m, v) __extension__({                                               \
    VI k_ = ((v) > (m)) | ((v) != (v));                                                    \
    (V)((k_ & (VI)(v)) | (~k_ & (VI)(m))); })

/* MAXNAN and "pick v" as bitwise selects: on real data which element wins is random, and
 * a branch on it mispredicts half the time. */
#define SELECT_BITS(T, U)                                                                  \
    static inline T select_##T(bool take, T v, T m) {                                      \
        U a, b, k = (U)0 - (U)take;                                                        \
        memcpy(&a, &m, sizeof a);                                                          \
        memcpy(&b, &v, sizeof b);                                                          \
        a = (k & b) | (~k & a);                                                            \
        memcpy(&m, &a, sizeof m);                                                          \
        return m;                                                                          \
    }
SELECT_BITS(float, uint32_t)
SELECT_BITS(double, uint64_t)
#define MAXNAN_SEL(T, m, v) select_##T(((v) > (m)) | ((v) != (v)), (v), (m))

#define POOL_FWD(SUF, T, ISA, ATTR, V, VI, EVENS)                                          \
    /* hm[lo:hi] = max(hm, x[j*S + off]) for S = 1 or 2, VW lanes at a time. */            \
    ATTR static void max_span_##SUF##_##ISA(T *hm, const T *xr, int64_t lo, int64_t hi,    \
                                            int64_t off, int64_t s) {                      \
        enum { VW = sizeof(V) / sizeof(T) };                                               \
        int64_t j = lo;                                                                    \
        if (s == 1)                                                                        \
            for (; j + VW <= hi; j += VW) {                                                \
                V m = VLOAD(V, hm + j), v = VLOAD(V, xr + j + off);                        \
                m = VMAXNAN(V, VI, m, v);                                                  \
                memcpy(hm + j, &m, sizeof m);                                              \
            }                                                                              \
        else if (s == 2)                                                                   \
            for (; j + VW <= hi && 2 * (j + VW) + off <= 2 * hi + off - 1; j += VW) {      \
                V m = VLOAD(V, hm + j);                                                    \
                V v = EVENS(VLOAD(V, xr + 2 * j + off), VLOAD(V, xr + 2 * j + off + VW));  \
                m = VMAXNAN(V, VI, m, v);                                                  \
                memcpy(hm + j, &m, sizeof m);                                              \
            }                                                                              \
        for (; j < hi; j++) hm[j] = MAXNAN(hm[j], xr[j * s + off]);                        \
    }                                                                                      \
                                                                                           \
    /* Row pass of one input row r: hm[j] = max over the valid taps q. */                  \
    ATTR static void max_row_##SUF##_##ISA(const pool_geom *g, const T *xr, T *hm,         \
                                           const int64_t *q0, const int64_t *q1) {         \
        for (int64_t j = 0; j < g->ow; j++) hm[j] = (T)-INFINITY;                          \
        if ((g->sw == 1 || g->sw == 2) && g->dw == 1) {                                    \
            for (int64_t q = 0; q < g->kw; q++) {                                          \
                int64_t lo = 0, hi = g->ow, off = q - g->pl;                               \
                while (lo < hi && q0[lo] > q) lo++; /* q0, q1 never grow with j */         \
                while (hi > lo && q1[hi - 1] <= q) hi--;                                   \
                max_span_##SUF##_##ISA(hm, xr, lo, hi, off, g->sw);                        \
            }                                                                              \
            return;                                                                        \
        }                                                                                  \
        for (int64_t j = 0; j < g->ow; j++) {                                              \
            int64_t off = j * g->sw - g->pl;                                               \
            T m = hm[j];                                                                   \
            for (int64_t q = q0[j]; q < q1[j]; q++) m = MAXNAN(m, xr[off + q * g->dw]);    \
            hm[j] = m;                                                                     \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* Windows that tile the plane (merge_tiled_planes): no row's windows reach into the \
     * next row, so the row pass runs over the plane as one long row (vectorised even   \
     * when rows are short); the column pass is max_plane's. The same bits. */           \
    ATTR static void max_tiled_##SUF##_##ISA(void *ud, int64_t t, int worker) {            \
        pool_job *j = (pool_job *)ud;                                                      \
        const pool_geom *g = j->g;                                                         \
        T *hm = (T *)j->ws[worker]; /* H rows of OW */                                     \
        const T *x = (const T *)j->x + t * g->h * g->w;                                    \
        T *y = (T *)j->out + t * g->oh * g->ow;                                            \
        int64_t n = g->h * g->ow;                                                          \
        for (int64_t u = 0; u < n; u++) hm[u] = (T)-INFINITY;                              \
        for (int64_t q = 0; q < g->kw; q++) max_span_##SUF##_##ISA(hm, x, 0, n, q, g->kw); \
        for (int64_t i = 0; i < g->oh; i++) {                                              \
            T *yr = y + i * g->ow;                                                         \
            const T *h0 = hm + i * g->kh * g->ow;                                          \
            for (int64_t c = 0; c < g->ow; c++) {                                          \
                T m = (T)-INFINITY;                                                        \
                for (int64_t p = 0; p < g->kh; p++) m = MAXNAN_SEL(T, m, h0[p * g->ow + c]); \
                yr[c] = m;                                                                 \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    ATTR static void max_plane_##SUF##_##ISA(void *ud, int64_t t, int worker) {            \
        pool_job *j = (pool_job *)ud;                                                      \
        const pool_geom *g = j->g;                                                         \
        int64_t *q0 = (int64_t *)j->ws[worker], *q1 = q0 + g->ow;                          \
        T *hm = (T *)(q1 + g->ow); /* H rows of OW */                                      \
        const T *x = (const T *)j->x + t * g->h * g->w;                                    \
        T *y = (T *)j->out + t * g->oh * g->ow;                                            \
        for (int64_t c = 0; c < g->ow; c++)                                                \
            valid_taps(c, g->w, g->kw, g->sw, g->dw, g->pl, &q0[c], &q1[c]);               \
        for (int64_t r = 0; r < g->h; r++)                                                 \
            max_row_##SUF##_##ISA(g, x + r * g->w, hm + r * g->ow, q0, q1);                \
        for (int64_t i = 0; i < g->oh; i++) {                                              \
            T *yr = y + i * g->ow;                                                         \
            int64_t p0, p1;                                                                \
            valid_taps(i, g->h, g->kh, g->sh, g->dh, g->pt, &p0, &p1);                     \
            for (int64_t c = 0; c < g->ow; c++) yr[c] = (T)-INFINITY;                      \
            for (int64_t p = p0; p < p1; p++)                                              \
                max_span_##SUF##_##ISA(yr, hm + (i * g->sh + p * g->dh - g->pt) * g->ow, 0, \
                                       g->ow, 0, 1);                                       \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* Each window row summed left to right (a row pass into scratch: hs[r][j] for every \
     * input row r), then the row sums top to bottom, then divided. */                   \
    ATTR static void avg_plane_##SUF##_##ISA(void *ud, int64_t t, int worker) {                         \
        pool_job *j = (pool_job *)ud;                                                      \
        const pool_geom *g = j->g;                                                         \
        int64_t *q0 = (int64_t *)j->ws[worker], *q1 = q0 + g->ow;                          \
        int64_t *cs = q1 + g->ow; /* column spans of the divisors */                      \
        T *hs = (T *)(cs + g->ow), *dv = hs + g->h * g->ow; /* H x OW sums, OW divisors */ \
        const T *x = (const T *)j->x + t * g->h * g->w;                                    \
        T *y = (T *)j->out + t * g->oh * g->ow;                                            \
        for (int64_t c = 0; c < g->ow; c++) {                                              \
            valid_taps(c, g->w, g->kw, g->sw, 1, g->pl, &q0[c], &q1[c]);                   \
            cs[c] = avg_span(c, g->w, g->kw, g->sw, g->pl, g->pr, g->count_include_pad);   \
        }                                                                                  \
        for (int64_t r = 0; r < g->h; r++) {                                               \
            const T *xr = x + r * g->w;                                                    \
            T *hr = hs + r * g->ow;                                                        \
            int64_t c0 = 0; /* q0 never grows with c: from c0 on the first tap is 0 */     \
            while (c0 < g->ow && q0[c0] > 0) c0++;                                         \
            for (int64_t c = 0; c < c0; c++) hr[c] = xr[c * g->sw - g->pl + q0[c]];        \
            if (g->sw == 1)                                                                \
                for (int64_t c = c0; c < g->ow; c++) hr[c] = xr[c - g->pl];                \
            else                                                                           \
                for (int64_t c = c0; c < g->ow; c++) hr[c] = xr[c * g->sw - g->pl];        \
            for (int64_t q = 1; q < g->kw; q++) { /* columns where q follows the first tap */ \
                int64_t lo = 0, hi = g->ow, off = q - g->pl;                               \
                while (lo < hi && q0[lo] >= q) lo++; /* q0, q1 never grow with c */        \
                while (hi > lo && q1[hi - 1] <= q) hi--;                                   \
                if (g->sw == 1)                                                            \
                    for (int64_t c = lo; c < hi; c++) hr[c] += xr[c + off];                \
                else                                                                       \
                    for (int64_t c = lo; c < hi; c++) hr[c] += xr[c * g->sw + off];        \
            }                                                                              \
        }                                                                                  \
        for (int64_t i = 0; i < g->oh; i++) {                                              \
            int64_t p0, p1;                                                                \
            valid_taps(i, g->h, g->kh, g->sh, 1, g->pt, &p0, &p1);                         \
            T *yr = y + i * g->ow;                                                         \
            const T *h0 = hs + (i * g->sh - g->pt + p0) * g->ow;                           \
            int64_t rs = avg_span(i, g->h, g->kh, g->sh, g->pt, g->pb, g->count_include_pad); \
            for (int64_t c = 0; c < g->ow; c++) {                                          \
                yr[c] = h0[c];                                                             \
                dv[c] = (T)(double)(rs * cs[c]);                                           \
            }                                                                              \
            for (int64_t p = p0 + 1; p < p1; p++) {                                        \
                const T *hr = h0 + (p - p0) * g->ow;                                       \
                for (int64_t c = 0; c < g->ow; c++) yr[c] += hr[c];                        \
            }                                                                              \
            for (int64_t c = 0; c < g->ow; c++) yr[c] /= dv[c];                            \
        }                                                                                  \
    }                                                                                      \

#define POOL_GRADS(SUF, T)                                                                 \
    /* Flat index in the plane of window (i, jc)'s first maximum, or -1 (padding). */      \
    static int64_t first_max_##SUF(const pool_geom *g, const T *x, int64_t i, int64_t jc) { \
        int64_t best_at = -1;                                                              \
        T best = (T)0;                                                                     \
        bool have = false;                                                                 \
        for (int64_t p = 0; p < g->kh; p++) {                                              \
            int64_t r = i * g->sh + p * g->dh - g->pt;                                     \
            for (int64_t q = 0; q < g->kw; q++) {                                          \
                int64_t c = jc * g->sw + q * g->dw - g->pl;                                \
                bool in = r >= 0 && r < g->h && c >= 0 && c < g->w;                        \
                T v = in ? x[r * g->w + c] : (T)-INFINITY;                                 \
                if (!have || (best == best && (v > best || v != v))) {                     \
                    best = v;                                                              \
                    best_at = in ? r * g->w + c : -1;                                      \
                    have = true;                                                           \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        return best_at;                                                                    \
    }                                                                                      \
                                                                                           \
    static void max_grad_plane_##SUF(void *ud, int64_t t, int worker) {                    \
        (void)worker;                                                                      \
        pool_job *j = (pool_job *)ud;                                                      \
        const pool_geom *g = j->g;                                                         \
        const T *x = (const T *)j->x + t * g->h * g->w;                                    \
        const T *gy = (const T *)j->gy + t * g->oh * g->ow;                                \
        T *dx = (T *)j->out + t * g->h * g->w;                                             \
        memset(dx, 0, (size_t)(g->h * g->w) * sizeof(T));                                  \
        for (int64_t i = 0; i < g->oh; i++)                                                \
            for (int64_t c = 0; c < g->ow; c++) {                                          \
                int64_t at = first_max_##SUF(g, x, i, c);                                  \
                if (at >= 0) dx[at] += gy[i * g->ow + c];                                  \
            }                                                                              \
    }                                                                                      \
                                                                                           \
    static void avg_grad_plane_##SUF(void *ud, int64_t t, int worker) {                    \
        (void)worker;                                                                      \
        pool_job *j = (pool_job *)ud;                                                      \
        const pool_geom *g = j->g;                                                         \
        const T *gy = (const T *)j->gy + t * g->oh * g->ow;                                \
        T *dx = (T *)j->out + t * g->h * g->w;                                             \
        memset(dx, 0, (size_t)(g->h * g->w) * sizeof(T));                                  \
        for (int64_t i = 0; i < g->oh; i++) {                                              \
            int64_t p0, p1;                                                                \
            valid_taps(i, g->h, g->kh, g->sh, 1, g->pt, &p0, &p1);                         \
            for (int64_t c = 0; c < g->ow; c++) {                                          \
                int64_t q0, q1;                                                            \
                valid_taps(c, g->w, g->kw, g->sw, 1, g->pl, &q0, &q1);                     \
                T v = gy[i * g->ow + c] / (T)avg_divisor(g, i, c);                         \
                int64_t off = (i * g->sh - g->pt) * g->w + c * g->sw - g->pl;              \
                for (int64_t p = p0; p < p1; p++)                                          \
                    for (int64_t q = q0; q < q1; q++) dx[off + p * g->w + q] += v;         \
            }                                                                              \
        }                                                                                  \
    }

typedef float pv8f __attribute__((vector_size(32)));
typedef double pv4d __attribute__((vector_size(32)));
typedef int32_t pv8i __attribute__((vector_size(32)));
typedef int64_t pv4l __attribute__((vector_size(32)));
typedef float pv16f __attribute__((vector_size(64)));
typedef double pv8d __attribute__((vector_size(64)));
typedef int32_t pv16i __attribute__((vector_size(64)));
typedef int64_t pv8l __attribute__((vector_size(64)));
#define EV8F(a, b) __builtin_shufflevector((a), (b), 0, 2, 4, 6, 8, 10, 12, 14)
#define EV4D(a, b) __builtin_shufflevector((a), (b), 0, 2, 4, 6)
#define EV16F(a, b) \
    __builtin_shufflevector((a), (b), 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define EV8D(a, b) __builtin_shufflevector((a), (b), 0, 2, 4, 6, 8, 10, 12, 14)
POOL_FWD(f32, float, generic, , pv8f, pv8i, EV8F)
POOL_FWD(f64, double, generic, , pv4d, pv4l, EV4D)
POOL_GRADS(f32, float)
POOL_GRADS(f64, double)

/* The gradient of max_pool2d over windows that tile the plane (merge_tiled_planes): no
 * tap needs a bounds check; each window's first maximum or NaN as first_max picks it. */
#define POOL_TILED(SUF, T)                                                                 \
    static void max_grad_tiled_##SUF(void *ud, int64_t t, int worker) {                    \
        (void)worker;                                                                      \
        const pool_job *j = (const pool_job *)ud;                                          \
        const pool_geom *g = j->g;                                                         \
        const T *x = (const T *)j->x + t * g->h * g->w;                                    \
        const T *gy = (const T *)j->gy + t * g->oh * g->ow;                                \
        T *dx = (T *)j->out + t * g->h * g->w;                                             \
        memset(dx, 0, (size_t)(g->h * g->w) * sizeof(T));                                  \
        for (int64_t i = 0; i < g->oh; i++)                                                \
            for (int64_t c = 0; c < g->ow; c++) {                                          \
                int64_t base = i * g->kh * g->w + c * g->kw, at = base;                    \
                T best = x[base];                                                          \
                for (int64_t p = 0; p < g->kh; p++)                                        \
                    for (int64_t q = p == 0; q < g->kw; q++) {                             \
                        T v = x[base + p * g->w + q];                                      \
                        bool take = (best == best) & ((v > best) | (v != v));              \
                        best = select_##T(take, v, best);                                  \
                        at += (base + p * g->w + q - at) & -(int64_t)take;                 \
                    }                                                                      \
                dx[at] += gy[i * g->ow + c];                                               \
            }                                                                              \
    }
POOL_TILED(f32, float)
POOL_TILED(f64, double)
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
POOL_FWD(f32, float, avx2, __attribute__((target("avx2"))), pv8f, pv8i, EV8F)
POOL_FWD(f64, double, avx2, __attribute__((target("avx2"))), pv4d, pv4l, EV4D)
POOL_FWD(f32, float, avx512, __attribute__((target("avx512f"))), pv16f, pv16i, EV16F)
POOL_FWD(f64, double, avx512, __attribute__((target("avx512f"))), pv8d, pv8l, EV8D)
/* The forward kernels compiled for the CPU's vector width (the same bits: every output
 * is computed by the same scalar operations in the same order). */
#define POOL_PICK(NAME, SUF)                                                               \
    (am_cpu_isa() >= AM_GEMM_ISA_AVX512 ? NAME##_##SUF##_avx512                            \
     : am_cpu_isa() >= AM_GEMM_ISA_AVX2 ? NAME##_##SUF##_avx2 : NAME##_##SUF##_generic)
#else
#define POOL_PICK(NAME, SUF) NAME##_##SUF##_generic
#endif

/* Runs fn over every plane, on the pool when the work is worth it; `ws_bytes` of scratch
 * per worker. */
static amber_status run_planes(am_ctx *ctx, pool_job *job, am_task_fn fn, size_t ws_bytes,
                               double work) {
    const pool_geom *g = job->g;
    int threads = am_pool_size(ctx->pool);
    bool parallel = threads > 1 && g->planes > 1 && work >= AM_PARALLEL_MIN;
    int n_ws = parallel ? threads : 1;
    amber_status st = am_arena_alloc(ctx->scratch, (size_t)n_ws * sizeof(void *),
                                     (void **)&job->ws, ctx->err);
    for (int i = 0; st == AMBER_OK && i < n_ws; i++) {
        job->ws[i] = NULL;
        if (ws_bytes) st = am_arena_alloc(ctx->scratch, ws_bytes, &job->ws[i], ctx->err);
    }
    if (st != AMBER_OK) return st;
    if (parallel) {
        am_pool_run(ctx->pool, g->planes, fn, job);
    } else {
        for (int64_t t = 0; t < g->planes; t++) fn(job, t, 0);
    }
    return AMBER_OK;
}

static size_t esize(amber_dtype dt) { return amber_dtype_size(dt); }

/* Windows that tile each plane exactly (stride = kernel, no padding or dilation, no
 * remainder) never reach across planes, so m consecutive planes pool as one plane m
 * times as tall: the same comparisons in the same order, without the per-plane set-up
 * that dominates small planes. m divides the plane count and leaves a task per thread
 * when the work runs in parallel (any m gives the same bits). */
static bool merge_tiled_planes(pool_geom *g, int threads, double work) {
    if (g->sh != g->kh || g->sw != g->kw || g->dh != 1 || g->dw != 1 || g->pt || g->pb ||
        g->pl || g->pr || g->oh * g->kh != g->h || g->ow * g->kw != g->w)
        return false;
    int64_t tasks = threads > 1 && work >= AM_PARALLEL_MIN ? 4 * (int64_t)threads : 1;
    int64_t most = g->planes / tasks, m = most;
    while (m > most / 2 && m > 1 && g->planes % m != 0) m--;
    if (m >= 2 && g->planes % m == 0) {
        g->planes /= m;
        g->h *= m;
        g->oh *= m;
    }
    return true;
}

amber_status k_max_pool2d(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                          const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    pool_geom g;
    pool_geom_init(&g, in[0].shape, out->shape, a, false);
    pool_job job = {&g, in[0].data, NULL, out->data, NULL};
    double work = (double)g.planes * (double)(g.h * g.ow * g.kw + g.oh * g.ow * g.kh);
    bool f32 = out->dtype == AMBER_FLOAT32;
    if (merge_tiled_planes(&g, am_pool_size(ctx->pool), work))
        return run_planes(ctx, &job, f32 ? POOL_PICK(max_tiled, f32) : POOL_PICK(max_tiled, f64),
                          (size_t)(g.h * g.ow) * esize(out->dtype), work);
    size_t ws = (size_t)(2 * g.ow) * sizeof(int64_t) + (size_t)(g.h * g.ow) * esize(out->dtype);
    return run_planes(ctx, &job, f32 ? POOL_PICK(max_plane, f32) : POOL_PICK(max_plane, f64),
                      ws, work);
}

amber_status k_max_pool2d_grad(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                               const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    pool_geom g;
    pool_geom_init(&g, in[0].shape, in[1].shape, a, false);
    pool_job job = {&g, in[0].data, in[1].data, out->data, NULL};
    double work = (double)g.planes * (double)(g.oh * g.ow * g.kh * g.kw);
    bool f32 = out->dtype == AMBER_FLOAT32;
    if (merge_tiled_planes(&g, am_pool_size(ctx->pool), work))
        return run_planes(ctx, &job, f32 ? max_grad_tiled_f32 : max_grad_tiled_f64, 0, work);
    return run_planes(ctx, &job, f32 ? max_grad_plane_f32 : max_grad_plane_f64, 0, work);
}

amber_status k_avg_pool2d(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                          const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    pool_geom g;
    pool_geom_init(&g, in[0].shape, out->shape, a, true);
    pool_job job = {&g, in[0].data, NULL, out->data, NULL};
    double work = (double)g.planes * (double)(g.h * g.ow * g.kw + g.oh * g.ow * g.kh);
    (void)merge_tiled_planes(&g, am_pool_size(ctx->pool), work);
    size_t ws = (size_t)(3 * g.ow) * sizeof(int64_t) +
                (size_t)((g.h + 1) * g.ow) * esize(out->dtype);
    bool f32 = out->dtype == AMBER_FLOAT32;
    return run_planes(ctx, &job, f32 ? POOL_PICK(avg_plane, f32) : POOL_PICK(avg_plane, f64), ws,
                      work);
}

amber_status k_avg_pool2d_grad(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                               const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    pool_geom g;
    pool_geom_init(&g, out->shape, in[0].shape, a, true);
    pool_job job = {&g, NULL, in[0].data, out->data, NULL};
    double work = (double)g.planes * (double)(g.oh * g.ow * g.kh * g.kw);
    (void)merge_tiled_planes(&g, am_pool_size(ctx->pool), work);
    return run_planes(ctx, &job,
                      out->dtype == AMBER_FLOAT32 ? avg_grad_plane_f32 : avg_grad_plane_f64, 0,
                      work);
}
