/* max_pool2d, avg_pool2d and their gradients (opset 4). One task is one (image, channel)
 * plane, so any thread count gives the same bits. The forward kernels run separably, as
 * vector code along the output rows (AVX-512, AVX2 or portable vectors, chosen at run
 * time): the maximum does not depend on the order its elements are compared in, and the
 * average sums in the reference's order. */
#include "ops.h"

#include <math.h>
#include <string.h>

typedef struct pool_geom {
    int64_t h, w, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    int64_t planes;
    int64_t row; /* the forward kernels' padded row: input column c at pl + c (fwd_setup) */
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
    const void *cs; /* avg_pool2d: each output column's divisor span, in the dtype */
} pool_job;

/* NaN-propagating maximum: NaN if either is NaN. */
#define MAXNAN(m, v) ((((v) > (m)) | ((v) != (v))) ? (v) : (m))

/* Vectors of VW elements (GCC vector extensions): a NaN-propagating maximum as a
 * bitwise select, so every lane computes exactly what MAXNAN computes. */
#define VLOAD(V, p) __extension__({ V v_; memcpy(&v_, (p), sizeof v_); v_; })
#define VMAXNAN(V, VI, m, v) __extension__({                                               \
    VI k_ = ((v) > (m)) | ((v) != (v));                                                    \
    (V)((k_ & (VI)(v)) | (~k_ & (VI)(m))); })

/* MAXNAN as a bitwise select: the tiled kernels' windows win at random on real data. */
#define MAXSEL(T, m, v) am_select_##T((((v) > (m)) | ((v) != (v))), (v), (m))

/* Runs the statements for the blocks at j = 0, VW, 2 VW, ... of n >= VW elements, the
 * last one at n - VW: it overlaps the block before and recomputes the same values (every
 * output is a function of the input alone), so no scalar tail is needed. */
#define OVERLAPPED_BLOCKS(j, n, VW, ...)                                                   \
    for (int64_t j = 0, end_ = (n) - (VW);; j += (VW)) {                                   \
        if (j > end_) j = end_;                                                            \
        __VA_ARGS__                                                                        \
        if (j == end_) break;                                                              \
    }
#define VADD(V, VI, a, b) ((a) + (b))
#define SADD(a, b) ((a) + (b))
enum { POOL_STRIP = 8 }; /* rows the forward kernels pass over together */
/* Tiled max pooling with fewer output columns than this takes whole windows. */
enum { POOL_NARROW = 8 };

/* The two window directions reduced with OP (maximum or sum) as vectors V of VW lanes:
 * every output is the same scalar operations in the same order at any vector width, so
 * the bits do not depend on the instruction set. */
#define POOL_REDUCE(SUF, T, ISA, ATTR, V, VI, EVENS, NAME, VOP, SOP)                       \
    /* d[c] = OP over the n rows x + k*step, top to bottom, for c < w, divided by         \
     * r*cs[c] when cs is given (integers: their product rounds once, as the divisor     \
     * converted to T does); n = 0 gives `empty`. */                                      \
    ATTR static void NAME##_down_##SUF##_##ISA(T *d, const T *x, int64_t step, int64_t n,  \
                                               int64_t w, T empty, T r, const T *cs) {     \
        enum { VW = sizeof(V) / sizeof(T) };                                               \
        if (n == 0) {                                                                      \
            for (int64_t c = 0; c < w; c++) d[c] = empty;                                  \
            return;                                                                        \
        }                                                                                  \
        if (w >= VW) {                                                                     \
            OVERLAPPED_BLOCKS(c, w, VW, {                                                  \
                const T *p = x + c;                                                        \
                V m = VLOAD(V, p);                                                         \
                for (int64_t k = 1; k < n; k++) {                                          \
                    V v = VLOAD(V, p += step);                                             \
                    m = VOP(V, VI, m, v);                                                  \
                }                                                                          \
                if (cs) m = m / (r * VLOAD(V, cs + c));                                    \
                memcpy(d + c, &m, sizeof m);                                               \
            })                                                                             \
            return;                                                                        \
        }                                                                                  \
        for (int64_t c = 0; c < w; c++) {                                                  \
            const T *p = x + c;                                                            \
            T m = *p;                                                                      \
            for (int64_t k = 1; k < n; k++) {                                              \
                T v = *(p += step);                                                        \
                m = SOP(m, v);                                                             \
            }                                                                              \
            d[c] = cs ? m / (r * cs[c]) : m;                                               \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* y[j] = OP over q < KW of b[j*sw + q*dw], left to right, for j < OW: b is a row   \
     * padded so that every such element exists. Strides 1 and 2 run as vectors. */      \
    ATTR static void NAME##_across_##SUF##_##ISA(T *y, const T *b, const pool_geom *g) {   \
        enum { VW = sizeof(V) / sizeof(T) };                                               \
        int64_t s = g->sw, dw = g->dw, kw = g->kw;                                         \
        if (g->ow >= VW && s == 1) {                                                       \
            OVERLAPPED_BLOCKS(j, g->ow, VW, {                                              \
                const T *p = b + j;                                                        \
                V m = VLOAD(V, p);                                                         \
                for (int64_t q = 1; q < kw; q++) {                                         \
                    V v = VLOAD(V, p += dw);                                               \
                    m = VOP(V, VI, m, v);                                                  \
                }                                                                          \
                memcpy(y + j, &m, sizeof m);                                               \
            })                                                                             \
            return;                                                                        \
        }                                                                                  \
        if (g->ow >= VW && s == 2) {                                                       \
            OVERLAPPED_BLOCKS(j, g->ow, VW, {                                              \
                const T *p = b + 2 * j;                                                    \
                V m = EVENS(VLOAD(V, p), VLOAD(V, p + VW));                                \
                for (int64_t q = 1; q < kw; q++) {                                         \
                    p += dw;                                                               \
                    V v = EVENS(VLOAD(V, p), VLOAD(V, p + VW));                            \
                    m = VOP(V, VI, m, v);                                                  \
                }                                                                          \
                memcpy(y + j, &m, sizeof m);                                               \
            })                                                                             \
            return;                                                                        \
        }                                                                                  \
        for (int64_t j = 0; j < g->ow; j++) {                                              \
            const T *p = b + j * s;                                                        \
            T m = *p;                                                                      \
            for (int64_t q = 1; q < kw; q++) {                                             \
                T v = *(p += dw);                                                          \
                m = SOP(m, v);                                                             \
            }                                                                              \
            y[j] = m;                                                                      \
        }                                                                                  \
    }

/* The forward kernels of one vector type, a strip of POOL_STRIP rows at a time through
 * rows of g->row elements, padded with -inf (max) or -0.0 (avg: it adds nothing, -0.0 + v
 * == v for every v). Max pooling takes each output row's window rows first, then the
 * window columns; average pooling sums each input row's windows left to right (into
 * H x OW), then those row sums top to bottom, and divides: the reference's order
 * (docs/opset.md 4.8). NOTE: a strip is stored whole before it is read at other offsets
 * (a row read right after it is stored stalls store forwarding). */
#define POOL_FWD(SUF, T, ISA, ATTR, V, VI, EVENS)                                          \
    POOL_REDUCE(SUF, T, ISA, ATTR, V, VI, EVENS, max, VMAXNAN, MAXNAN)                     \
    POOL_REDUCE(SUF, T, ISA, ATTR, V, VI, EVENS, sum, VADD, SADD)                          \
                                                                                           \
    ATTR static void max_plane_##SUF##_##ISA(void *ud, int64_t t, int worker) {            \
        const pool_job *f = (const pool_job *)ud;                                          \
        const pool_geom *g = f->g;                                                         \
        T *b = (T *)f->ws[worker]; /* the strip */                                         \
        const T *x = (const T *)f->x + t * g->h * g->w;                                    \
        T *y = (T *)f->out + t * g->oh * g->ow;                                            \
        for (int64_t c = 0; c < POOL_STRIP * g->row; c++) b[c] = (T)-INFINITY;             \
        for (int64_t i0 = 0; i0 < g->oh; i0 += POOL_STRIP) {                               \
            int64_t n = g->oh - i0 < POOL_STRIP ? g->oh - i0 : POOL_STRIP;                 \
            for (int64_t i = i0; i < i0 + n; i++) {                                        \
                int64_t p0, p1;                                                            \
                valid_taps(i, g->h, g->kh, g->sh, g->dh, g->pt, &p0, &p1);                 \
                max_down_##SUF##_##ISA(b + (i - i0) * g->row + g->pl,                      \
                                       x + (i * g->sh + p0 * g->dh - g->pt) * g->w,        \
                                       g->dh * g->w, p1 - p0, g->w, (T)-INFINITY, 0, NULL); \
            }                                                                              \
            for (int64_t i = i0; i < i0 + n; i++)                                          \
                max_across_##SUF##_##ISA(y + i * g->ow, b + (i - i0) * g->row, g);         \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    ATTR static void avg_plane_##SUF##_##ISA(void *ud, int64_t t, int worker) {            \
        const pool_job *f = (const pool_job *)ud;                                          \
        const pool_geom *g = f->g;                                                         \
        T *hs = (T *)f->ws[worker], *b = hs + g->h * g->ow; /* H x OW row sums; strip */  \
        const T *x = (const T *)f->x + t * g->h * g->w;                                    \
        T *y = (T *)f->out + t * g->oh * g->ow;                                            \
        bool direct = g->pl == 0 && g->row <= g->w; /* the windows read inside x's rows */ \
        for (int64_t c = 0; !direct && c < POOL_STRIP * g->row; c++) b[c] = (T)-0.0;       \
        for (int64_t r0 = 0; r0 < g->h; r0 += POOL_STRIP) {                                \
            int64_t n = g->h - r0 < POOL_STRIP ? g->h - r0 : POOL_STRIP;                   \
            for (int64_t r = r0; r < r0 + n && !direct; r++)                               \
                memcpy(b + (r - r0) * g->row + g->pl, x + r * g->w, (size_t)g->w * sizeof(T)); \
            for (int64_t r = r0; r < r0 + n; r++)                                          \
                sum_across_##SUF##_##ISA(hs + r * g->ow,                                   \
                                         direct ? x + r * g->w : b + (r - r0) * g->row, g); \
        }                                                                                  \
        for (int64_t i = 0; i < g->oh; i++) {                                              \
            int64_t p0, p1;                                                                \
            valid_taps(i, g->h, g->kh, g->sh, 1, g->pt, &p0, &p1);                         \
            T rs = (T)avg_span(i, g->h, g->kh, g->sh, g->pt, g->pb, g->count_include_pad); \
            sum_down_##SUF##_##ISA(y + i * g->ow, hs + (i * g->sh + p0 - g->pt) * g->ow,   \
                                   g->ow, p1 - p0, g->ow, (T)0, rs, (const T *)f->cs);     \
        }                                                                                  \
    }

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
POOL_FWD(f32, float, generic, AM_PORTABLE, pv8f, pv8i, EV8F)
POOL_FWD(f64, double, generic, AM_PORTABLE, pv4d, pv4l, EV4D)
POOL_GRADS(f32, float)
POOL_GRADS(f64, double)

/* max_pool2d_grad of 2x2 windows that tile the plane, two windows at a time: input rows r0
 * and r1 (2 ow elements each), output gradient row gr, gradient rows d0 and d1. Each
 * window's gradient goes to its first element equal to its maximum, or to its first NaN,
 * as first_max picks it (vector lanes: a b of r0, d f of r1; the maximum's NaN payload
 * is never used). Returns the windows done (an even count). */
#define POOL_GRAD2X2(SUF, T, V, VI)                                                        \
    static int64_t grad2x2_##SUF(const T *r0, const T *r1, const T *gr, T *d0, T *d1,      \
                                 int64_t ow) {                                             \
        const VI even = {-1, 0, -1, 0};                                                    \
        int64_t c = 0;                                                                     \
        for (; c + 2 <= ow; c += 2) {                                                      \
            V a = VLOAD(V, r0 + 2 * c), d = VLOAD(V, r1 + 2 * c);                          \
            V m0 = VMAXNAN(V, VI, a, SWAP2(a)), m1 = VMAXNAN(V, VI, d, SWAP2(d));          \
            V m = VMAXNAN(V, VI, m0, m1);                                                  \
            VI nan = m != m;                                                               \
            VI h0 = (nan & (a != a)) | (~nan & (a == m));                                  \
            VI h1 = (nan & (d != d)) | (~nan & (d == m));                                  \
            VI none0 = ~(h0 | SWAP2(h0));                                                  \
            VI t0 = h0 & (even | ~SWAP2(h0));                                              \
            VI t1 = none0 & ((even & h1) | (~even & ~SWAP2(h1)));                          \
            V gv = (V){gr[c], gr[c], gr[c + 1], gr[c + 1]} + (T)0;                         \
            V o0 = (V)(t0 & (VI)gv), o1 = (V)(t1 & (VI)gv);                                \
            memcpy(d0 + 2 * c, &o0, sizeof o0);                                            \
            memcpy(d1 + 2 * c, &o1, sizeof o1);                                            \
        }                                                                                  \
        return c;                                                                          \
    }
#define SWAP2(v) __builtin_shufflevector((v), (v), 1, 0, 3, 2)
typedef float pv4f __attribute__((vector_size(16)));
typedef int32_t pv4i __attribute__((vector_size(16)));
POOL_GRAD2X2(f32, float, pv4f, pv4i)
POOL_GRAD2X2(f64, double, pv4d, pv4l)

/* max_pool2d and its gradient over windows that tile the plane (merge_tiled_planes): no
 * tap needs a bounds check. The forward takes each window whole (for narrow rows, where
 * the row-wise vector kernels would run scalar tails). The gradient goes to each
 * window's first maximum or NaN as first_max picks it; narrow 2x2 windows write their
 * every element (they cover the plane once: no clearing, no accumulation). */
#define POOL_TILED(SUF, T)                                                                 \
    static void max_tiled_##SUF(void *ud, int64_t t, int worker) {                         \
        (void)worker;                                                                      \
        const pool_job *j = (const pool_job *)ud;                                          \
        const pool_geom *g = j->g;                                                         \
        const T *x = (const T *)j->x + t * g->h * g->w;                                    \
        T *y = (T *)j->out + t * g->oh * g->ow;                                            \
        if (g->kh == 2 && g->kw == 2) { /* the common window, unrolled */                 \
            for (int64_t i = 0; i < g->oh; i++) {                                          \
                const T *r0 = x + 2 * i * g->w, *r1 = r0 + g->w;                           \
                for (int64_t c = 0; c < g->ow; c++) {                                      \
                    T a = MAXSEL(T, r0[2 * c], r0[2 * c + 1]);                             \
                    T b = MAXSEL(T, r1[2 * c], r1[2 * c + 1]);                             \
                    y[i * g->ow + c] = MAXSEL(T, a, b);                                    \
                }                                                                          \
            }                                                                              \
            return;                                                                        \
        }                                                                                  \
        for (int64_t i = 0; i < g->oh; i++)                                                \
            for (int64_t c = 0; c < g->ow; c++) {                                          \
                const T *p = x + i * g->kh * g->w + c * g->kw;                             \
                T m = p[0];                                                                \
                for (int64_t r = 0; r < g->kh; r++)                                        \
                    for (int64_t q = r == 0; q < g->kw; q++)                               \
                        m = MAXSEL(T, m, p[r * g->w + q]);                                 \
                y[i * g->ow + c] = m;                                                      \
            }                                                                              \
    }                                                                                      \
                                                                                           \
    static void max_grad_tiled_##SUF(void *ud, int64_t t, int worker) {                    \
        (void)worker;                                                                      \
        const pool_job *j = (const pool_job *)ud;                                          \
        const pool_geom *g = j->g;                                                         \
        const T *x = (const T *)j->x + t * g->h * g->w;                                    \
        const T *gy = (const T *)j->gy + t * g->oh * g->ow;                                \
        T *dx = (T *)j->out + t * g->h * g->w;                                             \
        if (g->kh == 2 && g->kw == 2 && g->ow < POOL_NARROW) { /* unrolled */              \
            for (int64_t i = 0; i < g->oh; i++) {                                          \
                int64_t e0 = i * 2 * g->w;                                                 \
                int64_t c = grad2x2_##SUF(x + e0, x + e0 + g->w, gy + i * g->ow,           \
                                          dx + e0, dx + e0 + g->w, g->ow);                 \
                for (; c < g->ow; c++) {                                                   \
                    int64_t e = e0 + 2 * c;                                                \
                    /* the first element equal to the maximum, or the first NaN */         \
                    T a = x[e], b = x[e + 1], d = x[e + g->w], f = x[e + g->w + 1];        \
                    T m = MAXNAN(MAXNAN(a, b), MAXNAN(d, f));                              \
                    bool nan = m != m;                                                     \
                    bool ha = nan ? a != a : a == m, hb = nan ? b != b : b == m;           \
                    bool hd = nan ? d != d : d == m;                                       \
                    T gv = gy[i * g->ow + c] + (T)0; /* 0 + g, as the accumulation */      \
                    dx[e] = am_select_##T(ha, gv, (T)0);                                   \
                    dx[e + 1] = am_select_##T(!ha & hb, gv, (T)0);                         \
                    dx[e + g->w] = am_select_##T(!ha & !hb & hd, gv, (T)0);                \
                    dx[e + g->w + 1] = am_select_##T(!ha & !hb & !hd, gv, (T)0);           \
                }                                                                          \
            }                                                                              \
            return;                                                                        \
        }                                                                                  \
        memset(dx, 0, (size_t)(g->h * g->w) * sizeof(T));                                  \
        for (int64_t i = 0; i < g->oh; i++)                                                \
            for (int64_t c = 0; c < g->ow; c++) {                                          \
                int64_t base = i * g->kh * g->w + c * g->kw, at = base;                    \
                T best = x[base];                                                          \
                for (int64_t p = 0; p < g->kh; p++)                                        \
                    for (int64_t q = p == 0; q < g->kw; q++) {                             \
                        T v = x[base + p * g->w + q];                                      \
                        bool take = (best == best) & ((v > best) | (v != v));              \
                        best = am_select_##T(take, v, best);                               \
                        at += (base + p * g->w + q - at) & -(int64_t)take;                 \
                    }                                                                      \
                dx[at] += gy[i * g->ow + c];                                               \
            }                                                                              \
    }
POOL_TILED(f32, float)
POOL_TILED(f64, double)
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
POOL_FWD(f32, float, avx2, __attribute__((target("avx2"))), pv8f, pv8i, EV8F)
POOL_FWD(f64, double, avx2, __attribute__((target("avx2"), cold)), pv4d, pv4l, EV4D) /* (size) */
POOL_FWD(f32, float, avx512, __attribute__((target("avx512f"))), pv16f, pv16i, EV16F)
#include <immintrin.h>
#define POOL_AVX512 __attribute__((target("avx512f"))) /* (a name: the function scan reads it) */

/* avg_pool2d of 3x3 windows at stride 1 whose every window reaches into the plane, on
 * rows of more than 8 float32 outputs, AVX-512: a column of 16 outputs at a time goes down
 * the plane; each input row's window sums (left to right; masked loads fill -0.0 outside
 * the plane, which adds nothing) are computed once and kept in registers for the three
 * output rows that add them top to bottom (-0.0 rows standing for the padding rows
 * avg_plane skips), then divided: avg_plane's operations in its order, with no padded
 * copy or stored row sums. */
POOL_AVX512 static void avg3_plane_f32(void *ud, int64_t t, int worker) {
    (void)worker;
    const pool_job *f = (const pool_job *)ud;
    const pool_geom *g = f->g;
    const int64_t h = g->h, w = g->w, oh = g->oh, ow = g->ow;
    const float *x = (const float *)f->x + t * h * w;
    float *y = (float *)f->out + t * oh * ow;
    const __m512 nz = _mm512_set1_ps(-0.0f);
    for (int64_t c = 0; c < ow; c += 16) {
        const int64_t at = c - g->pl; /* the first window's first column */
        const __mmask16 m0 = am_lanes16(-at, w - at), m1 = am_lanes16(-at - 1, w - at - 1);
        const __mmask16 m2 = am_lanes16(-at - 2, w - at - 2), ms = am_lanes16(0, ow - c);
        const __m512 cv = _mm512_maskz_loadu_ps(ms, (const float *)f->cs + c);
        __m512 r1 = nz, r2 = nz; /* the sums of rows u - 1 and u - 2 */
        for (int64_t u = 0; u < oh + 2; u++) { /* input row u - pt; output u - 2 */
            const int64_t r = u - g->pt;
            const __mmask16 in = r >= 0 && r < h ? 0xffffu : 0u;
            /* (as an integer: a vector may start before the plane, in lanes the mask drops) */
            const float *p = (const float *)((uintptr_t)(x + (in ? r * w : 0) + c) -
                                             (uintptr_t)g->pl * 4u);
            __m512 sum = _mm512_add_ps(_mm512_mask_loadu_ps(nz, in & m0, p),
                                       _mm512_mask_loadu_ps(nz, in & m1, p + 1));
            sum = _mm512_add_ps(sum, _mm512_mask_loadu_ps(nz, in & m2, p + 2));
            if (u >= 2) {
                float rs = (float)avg_span(u - 2, h, 3, 1, g->pt, g->pb, g->count_include_pad);
                __m512 o = _mm512_add_ps(_mm512_add_ps(r2, r1), sum);
                o = _mm512_div_ps(o, _mm512_mul_ps(_mm512_set1_ps(rs), cv));
                _mm512_mask_storeu_ps(y + (u - 2) * ow + c, ms, o);
            }
            r2 = r1, r1 = sum;
        }
    }
}

/* MAXNAN on 16 lanes: v where v > m or v is NaN, else m. */
POOL_AVX512 static inline __m512 max16(__m512 m, __m512 v) {
    /* (maxps(v, m) is v > m ? v : m) */
    return _mm512_mask_mov_ps(_mm512_max_ps(v, m), _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
}

/* Row r of plane x (h x w) from column s: 33 elements in V0..V2 (lanes masked by m0..m2),
 * -inf outside the plane (rows too). (Named vectors, not arrays: they stay in registers.)
 * NOTE: the address as an integer: a vector may start before the row, in lanes the mask
 * drops. */
#define ROW33(V, r)                                                                        \
    do {                                                                                   \
        bool in_ = (r) >= 0 && (r) < h;                                                    \
        const float *p_ = (const float *)((uintptr_t)(x + (in_ ? (r) * w : 0)) +           \
                                          (uintptr_t)s * 4u);                              \
        V##0 = _mm512_mask_loadu_ps(ninf, in_ ? m0 : 0, p_);                               \
        V##1 = _mm512_mask_loadu_ps(ninf, in_ ? m1 : 0, p_ + 16);                          \
        V##2 = _mm512_mask_loadu_ps(ninf, in_ ? m2 : 0, p_ + 32);                          \
    } while (0)

/* max_pool2d of 3x3 windows at stride 2 (no dilation), float32, AVX-512, rows of at most
 * 32 outputs (wider ones: max3s2_plane_f32; NOTE: there rows of 27 and 13 outputs, the
 * later pools of SqueezeNet, ran 1.1-1.4x slower): a column of 16 outputs at a time goes
 * down a strip of the plane; each window row's maximum (of the 33 input columns, down its
 * three rows) is then split into the windows' three columns. An input row shared by two
 * windows is read once. Padding and the ceil mode's windows past the edge read -inf, which
 * max_plane's order leaves without effect (MAXNAN(-inf, v) is v, MAXNAN(m, -inf) is m):
 * its operations, down then across. */
POOL_AVX512 static void max3s2_strip_f32(void *ud, int64_t t, int worker) {
    (void)worker;
    const pool_job *f = (const pool_job *)ud;
    const pool_geom *g = f->g;
    const int64_t h = g->h, w = g->w, oh = g->oh, ow = g->ow;
    const float *x = (const float *)f->x + t * h * w;
    float *y = (float *)f->out + t * oh * ow;
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    const __m512i nx = _mm512_set_epi32(16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
    enum { STRIP = 2 * POOL_STRIP }; /* output rows at a time (in cache for the next columns) */
    for (int64_t i0 = 0; i0 < oh; i0 += STRIP)
        for (int64_t c = 0; c < ow; c += 16) {
            const int64_t s = 2 * c - g->pl, i1 = i0 + STRIP < oh ? i0 + STRIP : oh;
            const __mmask16 m0 = am_lanes16(-s, w - s), m1 = am_lanes16(-s - 16, w - s - 16);
            const __mmask16 m2 = am_lanes16(-s - 32, w - s - 32) & 1u, ms = am_lanes16(0, ow - c);
            __m512 a0 = ninf, a1 = ninf, a2 = ninf, b0 = ninf, b1 = ninf, b2 = ninf, d0, d1, d2;
            for (int64_t u = 2 * i0; u <= 2 * i1; u++) { /* input row u - pt, in turn */
                ROW33(d, u - g->pt);
                /* NOTE: the first column pass fetches whole rows (batches that miss the
                 * cache: 1.3x slower without, the later passes' lines arriving one by one) */
                for (int64_t e = 32; c == 0 && u >= g->pt && u - g->pt < h && e < w; e += 16)
                    _mm_prefetch((const char *)(x + (u - g->pt) * w + e), _MM_HINT_T0);
                if (u & 1 || u == 2 * i0) { /* a window's first or middle row */
                    if (u & 1) b0 = d0, b1 = d1, b2 = d2;
                    else a0 = d0, a1 = d1, a2 = d2;
                    continue;
                }
                a0 = max16(max16(a0, b0), d0); /* output row u / 2 - 1 */
                a1 = max16(max16(a1, b1), d1);
                a2 = max16(max16(a2, b2), d2);
                __m512 e = _mm512_permutex2var_ps(a0, ev, a1);
                __m512 o = _mm512_permutex2var_ps(a0, od, a1);
                __m512 e2 = _mm512_permutex2var_ps(e, nx, a2);
                _mm512_mask_storeu_ps(y + (u / 2 - 1) * ow + c, ms, max16(max16(e, o), e2));
                a0 = d0, a1 = d1, a2 = d2;
            }
        }
}
#undef ROW33

/* The output rows of max3s2_plane_f32, exact: with max16; else with vmaxps (the same where
 * no NaN is read), the lanes where a NaN was read into kn. */
#define M3S2_ROWS(EXACT)                                                                   \
    for (int64_t i = 0; i < oh; i++) {                                                     \
        const int64_t r = 2 * i - g->pt; /* the window's first input row */                \
        uintptr_t p[3];                                                                    \
        for (int d = 0; d < 3; d++)                                                        \
            p[d] = r + d >= 0 && r + d < h ? x0 + (uintptr_t)((r + d) * w) * 4u            \
                                           : (uintptr_t)ni - (uintptr_t)pl * 4u;           \
        for (int64_t k = 0; k < nv; k++) {                                                 \
            const __mmask16 m = mk[k];                                                     \
            __m512 v = _mm512_mask_loadu_ps(ninf, m, (const float *)p[0] + 16 * k);        \
            __m512 v1 = _mm512_mask_loadu_ps(ninf, m, (const float *)p[1] + 16 * k);       \
            __m512 v2 = _mm512_mask_loadu_ps(ninf, m, (const float *)p[2] + 16 * k);       \
            if (!(EXACT)) kn |= _mm512_cmp_ps_mask(v1, v2, _CMP_UNORD_Q);                  \
            /* rows r + 14 and r + 15 (NOTE: r + 3 and r + 4 left batch 8 1.04x slower) */ \
            const char *q = (const char *)(p[0] + (uintptr_t)(w * 14) * 4u + 64u * k);   \
            if (r >= 0 && r + 15 < lim)                                                    \
                _mm_prefetch(q, _MM_HINT_T0), _mm_prefetch(q + w * 4, _MM_HINT_T0);        \
            v = (EXACT) ? max16(max16(v, v1), v2) : _mm512_max_ps(v2, _mm512_max_ps(v1, v)); \
            _mm512_storeu_ps(b + 16 * k, v);                                               \
        }                                                                                  \
        for (int64_t c = 0; c < nb; c++) {                                                 \
            const __m512 a0 = _mm512_loadu_ps(b + 32 * c);                                 \
            const __m512 a1 = _mm512_loadu_ps(b + 32 * c + 16);                            \
            const __m512 e = _mm512_permutex2var_ps(a0, ev, a1);                           \
            const __m512 o = _mm512_permutex2var_ps(a0, od, a1);                           \
            const __m512 e2 = _mm512_permutex2var_ps(e, nx, _mm512_loadu_ps(b + 32 * c + 32)); \
            _mm512_mask_storeu_ps(y + i * ow + 16 * c, c + 1 < nb ? 0xffff : ms,           \
                                  (EXACT) ? max16(max16(e, o), e2)                         \
                                          : _mm512_max_ps(e2, _mm512_max_ps(o, e)));       \
        }                                                                                  \
    }

/* max_pool2d of 3x3 windows at stride 2 (no dilation), float32, AVX-512, rows of more
 * than 32 outputs (SqueezeNet's 96x109x109: 0.7-0.85x of max3s2_strip_f32's time alone),
 * an output row at a time, through the plane's rows in order: each vector of 16 padded
 * columns' maximum down the window's three rows (into the worker's row b: padded column
 * q at b[q]), then each 16 outputs from 33 of those (the windows' even, odd and next even
 * columns). Rows and columns outside the plane (padding, the ceil mode's windows past the
 * edge) read -inf, which max_plane's order leaves without effect (MAXNAN(-inf, v) is v,
 * MAXNAN(m, -inf) is m): its operations, down then across. */
POOL_AVX512 static void max3s2_plane_f32(void *ud, int64_t t, int worker) {
    const pool_job *f = (const pool_job *)ud;
    const pool_geom *g = f->g;
    const int64_t h = g->h, w = g->w, oh = g->oh, ow = g->ow, pl = g->pl, nb = (ow + 15) / 16;
    const int64_t nv = (pl + w + 15) / 16 < 2 * nb + 1 ? (pl + w + 15) / 16 : 2 * nb + 1;
    const float *x = (const float *)f->x + t * h * w;
    float *y = (float *)f->out + t * oh * ow, *b = (float *)f->ws[worker];
    const float *ni = (const float *)f->cs; /* (max3s2_setup) */
    const __mmask16 *mk = (const __mmask16 *)(ni + w);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    const __m512i nx = _mm512_set_epi32(16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
    for (int64_t k = nv; k <= 2 * nb; k++) _mm512_storeu_ps(b + 16 * k, ninf);
    /* NOTE: addresses as integers: a vector may start before the row, in lanes mk drops */
    const uintptr_t x0 = (uintptr_t)x - (uintptr_t)pl * 4u;
    const __mmask16 ms = am_lanes16(0, ow - 16 * (nb - 1)); /* the last outputs' lanes */
    __mmask16 kn = 0; /* lanes where a NaN was read */
    const int64_t lim = (g->planes - t) * h; /* (rows to the input's end: prefetched) */
    for (int64_t k = 0; g->pt == 0 && k < nv; k++) /* (the first row: once; the others below) */
        kn |= _mm512_cmp_ps_mask(ninf, _mm512_maskz_loadu_ps(mk[k], (const float *)x0 + 16 * k),
                                 _CMP_UNORD_Q);
    M3S2_ROWS(0); /* (vmaxps: MAXNAN where neither is NaN) */
    if (kn) M3S2_ROWS(1);
}
#undef M3S2_ROWS

/* max3s2_plane_f32's row of -inf (rows outside the plane; read as a row of w) and each
 * vector k's lanes inside the plane (padded columns 16 k.., PL of them before the
 * plane's), once per call (job->cs). */
static amber_status max3s2_setup(am_ctx *ctx, pool_job *job, const pool_geom *g) {
    const int64_t nv = 2 * ((g->ow + 15) / 16) + 1;
    float *ni = NULL;
    amber_status st = am_arena_alloc(ctx->scratch, (size_t)(4 * g->w + 2 * nv), (void **)&ni,
                                     ctx->err);
    if (st != AMBER_OK) return st;
    for (int64_t c = 0; c < g->w; c++) ni[c] = -INFINITY;
    for (int64_t k = 0; k < nv; k++)
        ((uint16_t *)(ni + g->w))[k] = am_lanes16(g->pl - 16 * k, g->pl + g->w - 16 * k);
    job->cs = ni;
    return AMBER_OK;
}

/* max_pool2d of 2x2 windows that tile the plane, float32, AVX-512: up to 16 outputs at a
 * time from the even and odd columns (lanes picked by e, from a0 then a1) of their two input
 * rows; rows of 8 outputs or fewer two rows at a time (a1: the next window row). The same
 * operations in the same order as the kernel it stands for: max_tiled (across, then down)
 * on rows narrower than POOL_NARROW, max_plane (down, then across) on wider ones. */
POOL_AVX512 static void max2_tiled_f32(void *ud, int64_t t, int worker) {
    (void)worker;
    const pool_job *j = (const pool_job *)ud;
    const int64_t w = j->g->w, ow = j->g->ow, oh = j->g->oh, h8 = ow < 8 ? ow : 8;
    const float *x = (const float *)j->x + t * j->g->h * w;
    float *y = (float *)j->out + t * oh * ow;
    int32_t e[16];
    for (int l = 0; l < 16; l++) e[l] = l < h8 ? 2 * l : 16 + 2 * (l - (int)h8);
    const __m512i ev = _mm512_loadu_si512(e), od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    const bool pairs = ow <= 8, across = ow < POOL_NARROW;
    for (int64_t i = 0, c = 0; i < oh;) {
        const float *p = x + 2 * i * w + 2 * c;
        int64_t off = pairs ? 2 * w : 16, n = pairs ? (i + 1 < oh ? 2 : 1) * ow : ow - c;
        __mmask16 m0 = am_lanes16(0, pairs ? w : 2 * n), m1 = am_lanes16(0, 2 * n - 16);
        if (pairs) m1 = n > ow ? m0 : 0;
        __m512 a0 = _mm512_maskz_loadu_ps(m0, p), a1 = _mm512_maskz_loadu_ps(m1, p + off);
        __m512 b0 = _mm512_maskz_loadu_ps(m0, p + w), b1 = _mm512_maskz_loadu_ps(m1, p + w + off);
        __m512 ae = _mm512_permutex2var_ps(a0, ev, a1), ao = _mm512_permutex2var_ps(a0, od, a1);
        __m512 be = _mm512_permutex2var_ps(b0, ev, b1), bo = _mm512_permutex2var_ps(b0, od, b1);
        __m512 r = across ? max16(max16(ae, ao), max16(be, bo))
                          : max16(max16(ae, be), max16(ao, bo));
        _mm512_mask_storeu_ps(y + i * ow + c, am_lanes16(0, n), r);
        if (pairs) i += 2;
        else if ((c += 16) >= ow) c = 0, i++;
    }
}

/* The forward kernels compiled for the CPU's vector width (the same bits: every output
 * is computed by the same scalar operations in the same order), or for AVX2 when an
 * output row is narrower than an AVX-512 vector (it would run as scalar code); float64
 * (rare in inference: the library stays small) for AVX2 only. */
#define POOL_PICK(NAME, SUF, OW) POOL_PICK_##SUF(NAME, OW)
#define POOL_PICK_f32(NAME, OW)                                                            \
    (am_cpu_isa() >= AM_GEMM_ISA_AVX512 && (OW) >= 16 ? NAME##_f32_avx512                  \
     : am_cpu_isa() >= AM_GEMM_ISA_AVX2               ? NAME##_f32_avx2                    \
                                                      : NAME##_f32_generic)
#define POOL_PICK_f64(NAME, OW)                                                            \
    (am_cpu_isa() >= AM_GEMM_ISA_AVX2 ? NAME##_f64_avx2 : NAME##_f64_generic)
#else
#define POOL_PICK(NAME, SUF, OW) NAME##_##SUF##_generic
#endif

/* Runs fn over every plane, on the pool when the work is worth it; `ws_bytes` of scratch
 * per worker. */
static amber_status run_planes(am_ctx *ctx, pool_job *job, am_task_fn fn, size_t ws_bytes,
                               double work) {
    const pool_geom *g = job->g;
    int threads = am_pool_size(ctx->pool);
    bool parallel = threads > 1 && g->planes > 1 && work >= AM_PARALLEL_MIN &&
                    am_pool_for(ctx->pool, work);
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

/* The forward kernels' row length and avg_pool2d's column divisor spans, once per call.
 * A row holds every element a window reads (j*sw + q*dw for j < OW, q < KW) and the one
 * past the last that a stride-2 vector reads too. */
static amber_status fwd_setup(am_ctx *ctx, pool_job *job, pool_geom *g, amber_dtype dt,
                              bool avg) {
    int64_t reach = g->ow * g->sw + (g->kw - 1) * g->dw + 1;
    g->row = reach > g->pl + g->w ? reach : g->pl + g->w;
    if (!avg) return AMBER_OK;
    void *cs = NULL;
    amber_status st = am_arena_alloc(ctx->scratch, (size_t)g->ow * esize(dt), &cs, ctx->err);
    for (int64_t j = 0; st == AMBER_OK && j < g->ow; j++) {
        int64_t n = avg_span(j, g->w, g->kw, g->sw, g->pl, g->pr, g->count_include_pad);
        if (dt == AMBER_FLOAT32)
            ((float *)cs)[j] = (float)n;
        else
            ((double *)cs)[j] = (double)n;
    }
    job->cs = cs;
    return st;
}

amber_status k_max_pool2d(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                          const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    pool_geom g;
    pool_geom_init(&g, in[0].shape, out->shape, a, false);
    pool_job job = {.g = &g, .x = in[0].data, .out = out->data};
    double work = (double)g.planes * (double)(g.oh * (g.w * g.kh + g.ow * g.kw));
    bool f32 = out->dtype == AMBER_FLOAT32;
    bool tiled = merge_tiled_planes(&g, am_pool_size(ctx->pool), work);
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
    if (tiled && f32 && g.kh == 2 && g.kw == 2 && am_cpu_isa() >= AM_GEMM_ISA_AVX512)
        return run_planes(ctx, &job, max2_tiled_f32, 0, work);
    if (f32 && g.kh == 3 && g.kw == 3 && g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1 &&
        am_cpu_isa() >= AM_GEMM_ISA_AVX512) {
        if (g.ow <= 32) return run_planes(ctx, &job, max3s2_strip_f32, 0, work);
        amber_status st = max3s2_setup(ctx, &job, &g);
        return st != AMBER_OK ? st : run_planes(ctx, &job, max3s2_plane_f32,
                                                (size_t)(128 * ((g.ow + 15) / 16) + 64), work);
    }
#endif
    if (tiled && g.ow < POOL_NARROW)
        return run_planes(ctx, &job, f32 ? max_tiled_f32 : max_tiled_f64, 0, work);
    amber_status st = fwd_setup(ctx, &job, &g, out->dtype, false);
    if (st != AMBER_OK) return st;
    return run_planes(ctx, &job,
                      f32 ? POOL_PICK(max_plane, f32, g.ow) : POOL_PICK(max_plane, f64, g.ow),
                      (size_t)(POOL_STRIP * g.row) * esize(out->dtype), work);
}

amber_status k_max_pool2d_grad(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                               const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    pool_geom g;
    pool_geom_init(&g, in[0].shape, in[1].shape, a, false);
    pool_job job = {.g = &g, .x = in[0].data, .gy = in[1].data, .out = out->data};
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
    pool_job job = {.g = &g, .x = in[0].data, .out = out->data};
    double work = (double)g.planes * (double)(g.h * g.ow * g.kw + g.oh * g.ow * g.kh);
    (void)merge_tiled_planes(&g, am_pool_size(ctx->pool), work);
    amber_status st = fwd_setup(ctx, &job, &g, out->dtype, true);
    if (st != AMBER_OK) return st;
    bool f32 = out->dtype == AMBER_FLOAT32;
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
    if (f32 && am_cpu_isa() >= AM_GEMM_ISA_AVX512 && g.kh == 3 && g.kw == 3 && g.sh == 1 &&
        g.sw == 1 && g.ow > 8 && g.pt <= 2 && g.pl <= 2 && g.oh - g.pt <= g.h &&
        g.ow - g.pl <= g.w)
        return run_planes(ctx, &job, avg3_plane_f32, 0, work);
#endif
    return run_planes(ctx, &job,
                      f32 ? POOL_PICK(avg_plane, f32, g.ow) : POOL_PICK(avg_plane, f64, g.ow),
                      (size_t)(g.h * g.ow + POOL_STRIP * g.row) * esize(out->dtype), work);
}

amber_status k_avg_pool2d_grad(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                               const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    pool_geom g;
    pool_geom_init(&g, out->shape, in[0].shape, a, true);
    pool_job job = {.g = &g, .gy = in[0].data, .out = out->data};
    double work = (double)g.planes * (double)(g.oh * g.ow * g.kh * g.kw);
    (void)merge_tiled_planes(&g, am_pool_size(ctx->pool), work);
    return run_planes(ctx, &job,
                      out->dtype == AMBER_FLOAT32 ? avg_grad_plane_f32 : avg_grad_plane_f64, 0,
                      work);
}
