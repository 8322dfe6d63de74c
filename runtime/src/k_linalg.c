/* matmul (batched, broadcast batch dims) and conv2d with its two transposes, on a
 * blocked, packed GEMM in portable C. Convolutions use im2col / col2im into scratch. */
#include "ops.h"

#include <string.h>

/* ---------------------------------------------------------------- GEMM */

#define KC 256
#define MC 96
#define NC 1024

/* The micro-kernel: C[mr x nr] (= or +=) Apanel[kc x MR] * Bpanel[kc x NR], with MR x NR
 * accumulators held in vector registers (GCC/clang vector extensions; NR = 2 vectors).
 * On x86-64 an AVX2 clone is selected at load time when the CPU has it. Products and
 * sums stay separate operations (no FMA contraction), as in the scalar definition. */
typedef float v8f __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));

#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones) && !defined(AMBER_NO_DISPATCH)
#define AM_DISPATCH __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef AM_DISPATCH
#define AM_DISPATCH
#endif

#define UKR(SUF, T, MR, NR, V)                                                             \
    AM_DISPATCH static void ukr_##SUF(int64_t kc, const T *a, const T *b, T *c,           \
                                      int64_t ldc, int64_t mr, int64_t nr, bool acc) {     \
        enum { VL = (int)(sizeof(V) / sizeof(T)) };                                        \
        V t[MR][2];                                                                        \
        memset(t, 0, sizeof t);                                                            \
        for (int64_t p = 0; p < kc; p++) {                                                 \
            V b0, b1;                                                                      \
            memcpy(&b0, b + p * NR, sizeof b0);                                            \
            memcpy(&b1, b + p * NR + VL, sizeof b1);                                       \
            for (int i = 0; i < MR; i++) {                                                 \
                V av = (V){0} + a[p * MR + i];                                             \
                t[i][0] += av * b0;                                                        \
                t[i][1] += av * b1;                                                        \
            }                                                                              \
        }                                                                                  \
        T out[MR][NR];                                                                     \
        memcpy(out, t, sizeof out);                                                        \
        for (int64_t i = 0; i < mr; i++)                                                   \
            for (int64_t j = 0; j < nr; j++)                                               \
                c[i * ldc + j] = acc ? c[i * ldc + j] + out[i][j] : out[i][j];             \
    }
UKR(f32, float, 6, 16, v8f)
UKR(f64, double, 6, 8, v4d)

#define GEMM_IMPL(SUF, T, MR, NR, V)                                                          \
    static void pack_a_##SUF(T *dst, const T *A, int64_t rsa, int64_t csa, int64_t mc,     \
                             int64_t kc) {                                                 \
        for (int64_t i0 = 0; i0 < mc; i0 += MR) {                                          \
            int64_t mr = mc - i0 < MR ? mc - i0 : MR;                                      \
            for (int64_t p = 0; p < kc; p++) {                                             \
                int64_t i = 0;                                                             \
                for (; i < mr; i++) dst[p * MR + i] = A[(i0 + i) * rsa + p * csa];         \
                for (; i < MR; i++) dst[p * MR + i] = 0;                                   \
            }                                                                              \
            dst += MR * kc;                                                                \
        }                                                                                  \
    }                                                                                      \
    static void pack_b_##SUF(T *dst, const T *B, int64_t rsb, int64_t csb, int64_t kc,     \
                             int64_t nc) {                                                 \
        for (int64_t j0 = 0; j0 < nc; j0 += NR) {                                          \
            int64_t nr = nc - j0 < NR ? nc - j0 : NR;                                      \
            for (int64_t p = 0; p < kc; p++) {                                             \
                int64_t j = 0;                                                             \
                if (csb == 1)                                                              \
                    for (; j < nr; j++) dst[p * NR + j] = B[p * rsb + j0 + j];             \
                else                                                                       \
                    for (; j < nr; j++) dst[p * NR + j] = B[p * rsb + (j0 + j) * csb];     \
                for (; j < NR; j++) dst[p * NR + j] = 0;                                   \
            }                                                                              \
            dst += NR * kc;                                                                \
        }                                                                                  \
    }                                                                                      \
    typedef struct gemm_job_##SUF {                                                        \
        const T *A, *B;                                                                    \
        const T *bp;                                                                       \
        T *C, **apack;                                                                     \
        int64_t rsa, csa, rsb, ldc, m, n, k, nc, kc, jc, pc, nj, chunk;                    \
        bool acc;                                                                          \
    } gemm_job_##SUF;                                                                      \
    /* One task: an MC block of rows times a chunk of the packed columns. */               \
    static void gemm_task_##SUF(void *ud, int64_t t, int worker) {                         \
        const gemm_job_##SUF *j = (const gemm_job_##SUF *)ud;                              \
        int64_t ic = (t / j->nj) * MC, mc = j->m - ic < MC ? j->m - ic : MC;               \
        int64_t j0 = (t % j->nj) * j->chunk;                                               \
        int64_t j1 = j0 + j->chunk < j->nc ? j0 + j->chunk : j->nc;                        \
        T *ap = j->apack[worker];                                                          \
        pack_a_##SUF(ap, j->A + ic * j->rsa + j->pc * j->csa, j->rsa, j->csa, mc, j->kc);  \
        for (int64_t jr = j0; jr < j1; jr += NR)                                           \
            for (int64_t ir = 0; ir < mc; ir += MR)                                        \
                ukr_##SUF(j->kc, ap + ir * j->kc, j->bp + jr * j->kc,                      \
                          j->C + (ic + ir) * j->ldc + j->jc + jr, j->ldc,                  \
                          mc - ir < MR ? mc - ir : MR, j1 - jr < NR ? j1 - jr : NR,        \
                          j->acc);                                                         \
    }                                                                                      \
    /* Few rows and contiguous B rows: C[i, j0:j1] += A[i, p] * B[p, j0:j1], no packing. */ \
    AM_DISPATCH static void gemm_rows_##SUF(void *ud, int64_t t, int worker) {            \
        (void)worker;                                                                      \
        const gemm_job_##SUF *j = (const gemm_job_##SUF *)ud;                              \
        int64_t j0 = t * j->chunk, j1 = j0 + j->chunk < j->n ? j0 + j->chunk : j->n;       \
        for (int64_t i = 0; i < j->m; i++) {                                               \
            T *c = j->C + i * j->ldc;                                                      \
            if (!j->acc)                                                                   \
                for (int64_t q = j0; q < j1; q++) c[q] = 0;                                \
            for (int64_t p = 0; p < j->k; p++) {                                           \
                T a = j->A[i * j->rsa + p * j->csa];                                       \
                const T *b = j->B + p * j->rsb;                                            \
                for (int64_t q = j0; q < j1; q++) c[q] += a * b[q];                        \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    amber_status am_gemm_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k, const T *A,   \
                               int64_t rsa, int64_t csa, const T *B, int64_t rsb,          \
                               int64_t csb, T *C, int64_t ldc, bool accumulate) {          \
        if (m <= 0 || n <= 0) return AMBER_OK;                                             \
        if (k <= 0) {                                                                      \
            if (!accumulate)                                                               \
                for (int64_t i = 0; i < m; i++) memset(C + i * ldc, 0, (size_t)n * sizeof(T)); \
            return AMBER_OK;                                                               \
        }                                                                                  \
        /* Waking threads costs microseconds: small products run on the caller alone. */    \
        am_pool *pool = (double)m * (double)n * (double)k >= 262144.0 ? ctx->pool : NULL;  \
        int threads = am_pool_size(pool);                                                  \
        gemm_job_##SUF job;                                                                \
        memset(&job, 0, sizeof job);                                                       \
        job.A = A, job.B = B, job.C = C, job.rsa = rsa, job.csa = csa, job.rsb = rsb;      \
        job.ldc = ldc, job.m = m, job.n = n, job.k = k, job.acc = accumulate;              \
        if (m < MR && csb == 1) {                                                          \
            job.chunk = n < 256 ? n : 256;                                                 \
            am_pool_run(pool, (n + job.chunk - 1) / job.chunk, gemm_rows_##SUF, &job);      \
            return AMBER_OK;                                                               \
        }                                                                                  \
        int64_t ncap = n < NC ? n : NC, mcap = m < MC ? m : MC, kcap = k < KC ? k : KC;    \
        T *bp;                                                                             \
        am_arena_mark mark = am_arena_get_mark(ctx->scratch);                              \
        size_t bn = (size_t)(((ncap + NR - 1) / NR) * NR * kcap);                          \
        size_t an = (size_t)(((mcap + MR - 1) / MR) * MR * kcap);                          \
        amber_status st = am_arena_alloc(ctx->scratch, bn * sizeof(T), (void **)&bp, ctx->err); \
        if (st == AMBER_OK)                                                                \
            st = am_arena_alloc(ctx->scratch, (size_t)threads * sizeof(T *),               \
                                (void **)&job.apack, ctx->err);                            \
        for (int w = 0; st == AMBER_OK && w < threads; w++)                                \
            st = am_arena_alloc(ctx->scratch, an * sizeof(T), (void **)&job.apack[w], ctx->err); \
        if (st != AMBER_OK) return st;                                                     \
        int64_t n_ic = (m + MC - 1) / MC;                                                  \
        for (int64_t jc = 0; jc < n; jc += NC) {                                           \
            int64_t nc = n - jc < NC ? n - jc : NC, slivers = (nc + NR - 1) / NR;          \
            /* Enough column chunks that every thread has work (about two tasks each). */  \
            int64_t want = (2 * threads + n_ic - 1) / n_ic;                                \
            int64_t nj = want < slivers ? want : slivers;                                  \
            job.chunk = ((slivers + nj - 1) / nj) * NR;                                    \
            job.nj = (nc + job.chunk - 1) / job.chunk;                                     \
            for (int64_t pc = 0; pc < k; pc += KC) {                                       \
                int64_t kc = k - pc < KC ? k - pc : KC;                                    \
                pack_b_##SUF(bp, B + pc * rsb + jc * csb, rsb, csb, kc, nc);               \
                job.bp = bp, job.nc = nc, job.kc = kc, job.jc = jc, job.pc = pc;           \
                job.acc = accumulate || pc > 0;                                            \
                am_pool_run(pool, n_ic * job.nj, gemm_task_##SUF, &job);                      \
            }                                                                              \
        }                                                                                  \
        am_arena_release(ctx->scratch, mark);                                              \
        return AMBER_OK;                                                                   \
    }

GEMM_IMPL(f32, float, 6, 16, v8f)
GEMM_IMPL(f64, double, 6, 8, v4d)

/* Integer matrix product with wrapping arithmetic. */
#define IGEMM(SUF, T, U)                                                                  \
    static void igemm_##SUF(int64_t m, int64_t n, int64_t k, const T *A, const T *B, T *C) { \
        for (int64_t i = 0; i < m; i++) {                                                 \
            U *c = (U *)(void *)(C + i * n);                                              \
            for (int64_t j = 0; j < n; j++) c[j] = 0;                                     \
            for (int64_t p = 0; p < k; p++) {                                             \
                U a = (U)A[i * k + p];                                                    \
                const T *b = B + p * n;                                                   \
                for (int64_t j = 0; j < n; j++) c[j] += a * (U)b[j];                      \
            }                                                                             \
        }                                                                                 \
    }
IGEMM(i32, int32_t, uint32_t)
IGEMM(i64, int64_t, uint64_t)

amber_status k_matmul(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                      const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n, (void)a;
    const amber_tensor *x = &in[0], *y = &in[1];
    int br = out->rank - 2;
    int64_t m = x->shape[x->rank - 2], k = x->shape[x->rank - 1], nn = y->shape[y->rank - 1];
    size_t z = amber_dtype_size(out->dtype);
    /* Batch strides (in matrices) of x and y broadcast to the output's batch shape. */
    amber_tensor bx = *x, by = *y;
    bx.rank -= 2;
    by.rank -= 2;
    bx.dtype = by.dtype = AMBER_BOOL; /* strides in units of one matrix */
    int64_t sx[AMBER_MAX_RANK], sy[AMBER_MAX_RANK], idx[AMBER_MAX_RANK] = {0};
    am_bcast_strides(&bx, out->shape, br, sx);
    am_bcast_strides(&by, out->shape, br, sy);
    int64_t batches = 1;
    for (int d = 0; d < br; d++) batches *= out->shape[d];
    int64_t ox = 0, oy = 0;
    for (int64_t bi = 0; bi < batches; bi++) {
        const char *xa = (const char *)x->data + (size_t)(ox * m * k) * z;
        const char *ya = (const char *)y->data + (size_t)(oy * k * nn) * z;
        char *oc = (char *)out->data + (size_t)(bi * m * nn) * z;
        amber_status st = AMBER_OK;
        switch (out->dtype) {
        case AMBER_FLOAT32:
            st = am_gemm_f32(ctx, m, nn, k, (const float *)xa, k, 1, (const float *)ya, nn, 1,
                             (float *)oc, nn, false);
            break;
        case AMBER_FLOAT64:
            st = am_gemm_f64(ctx, m, nn, k, (const double *)xa, k, 1, (const double *)ya, nn, 1,
                             (double *)oc, nn, false);
            break;
        case AMBER_INT32:
            igemm_i32(m, nn, k, (const int32_t *)xa, (const int32_t *)ya, (int32_t *)oc);
            break;
        case AMBER_INT64:
            igemm_i64(m, nn, k, (const int64_t *)xa, (const int64_t *)ya, (int64_t *)oc);
            break;
        case AMBER_BOOL:
            return am_fail(ctx->err, AMBER_ERR_DTYPE, "matmul: dtype bool is not supported");
        }
        if (st != AMBER_OK) return st;
        for (int d = br - 1; d >= 0; d--) {
            ox += sx[d];
            oy += sy[d];
            if (++idx[d] < out->shape[d]) break;
            ox -= sx[d] * out->shape[d];
            oy -= sy[d] * out->shape[d];
            idx[d] = 0;
        }
    }
    return AMBER_OK;
}

/* ---------------------------------------------------------------- convolution */

typedef struct conv_geom {
    int64_t n, c, h, w;      /* input */
    int64_t o, cg, kh, kw;   /* weight */
    int64_t oh, ow, groups, og;
    int64_t sh, sw, dh, dw, pt, pl;
} conv_geom;

static void geom(conv_geom *g, const int64_t *xs, const int64_t *ws, const int64_t *ys,
                 const am_attrs *a) {
    g->n = xs[0], g->c = xs[1], g->h = xs[2], g->w = xs[3];
    g->o = ws[0], g->cg = ws[1], g->kh = ws[2], g->kw = ws[3];
    g->oh = ys[2], g->ow = ys[3];
    g->groups = a->groups;
    g->og = g->o / a->groups;
    g->sh = a->stride[0], g->sw = a->stride[1];
    g->dh = a->dilation[0], g->dw = a->dilation[1];
    g->pt = a->padding[0], g->pl = a->padding[2];
}

/* cols[(c*KH + p)*KW + q][i*OW + j] = x[c][i*sh + p*dh - pt][j*sw + q*dw - pl] (0 outside);
 * x points at the group's first channel of one image. With add, the reverse (col2im). */
#define IM2COL(SUF, T)                                                                     \
    static void im2col_##SUF(const conv_geom *g, T *x, T *cols, bool col2im) {             \
        int64_t L = g->oh * g->ow;                                                         \
        for (int64_t c = 0; c < g->cg; c++)                                                \
            for (int64_t p = 0; p < g->kh; p++)                                            \
                for (int64_t q = 0; q < g->kw; q++) {                                      \
                    T *row = cols + ((c * g->kh + p) * g->kw + q) * L;                     \
                    T *xc = x + c * g->h * g->w;                                           \
                    for (int64_t i = 0; i < g->oh; i++) {                                  \
                        int64_t r = i * g->sh + p * g->dh - g->pt;                         \
                        T *dst = row + i * g->ow;                                          \
                        if (r < 0 || r >= g->h) {                                          \
                            if (!col2im) memset(dst, 0, (size_t)g->ow * sizeof(T));        \
                            continue;                                                      \
                        }                                                                  \
                        T *xr = xc + r * g->w;                                             \
                        for (int64_t j = 0; j < g->ow; j++) {                              \
                            int64_t col = j * g->sw + q * g->dw - g->pl;                   \
                            bool in = col >= 0 && col < g->w;                              \
                            if (col2im) {                                                  \
                                if (in) xr[col] += dst[j];                                 \
                            } else {                                                       \
                                dst[j] = in ? xr[col] : 0;                                 \
                            }                                                              \
                        }                                                                  \
                    }                                                                      \
                }                                                                          \
    }
IM2COL(f32, float)
IM2COL(f64, double)

#define CONV_KERNELS(SUF, T)                                                               \
    static amber_status conv_fwd_##SUF(am_ctx *ctx, const conv_geom *g, const T *x,        \
                                       const T *w, T *y) {                                 \
        int64_t L = g->oh * g->ow, K = g->cg * g->kh * g->kw;                              \
        T *cols;                                                                           \
        amber_status st = am_arena_alloc(ctx->scratch, (size_t)(K * L) * sizeof(T),        \
                                         (void **)&cols, ctx->err);                        \
        if (st != AMBER_OK) return st;                                                     \
        for (int64_t ni = 0; ni < g->n; ni++)                                              \
            for (int64_t gi = 0; gi < g->groups; gi++) {                                   \
                im2col_##SUF(g, (T *)(x + (ni * g->c + gi * g->cg) * g->h * g->w), cols,   \
                             false);                                                       \
                st = am_gemm_##SUF(ctx, g->og, L, K, w + gi * g->og * K, K, 1, cols, L, 1, \
                                   y + (ni * g->o + gi * g->og) * L, L, false);            \
                if (st != AMBER_OK) return st;                                             \
            }                                                                              \
        return AMBER_OK;                                                                   \
    }                                                                                      \
    /* dx = col2im(W_g^T @ dy_g) */                                                        \
    static amber_status conv_dx_##SUF(am_ctx *ctx, const conv_geom *g, const T *dy,        \
                                      const T *w, T *dx) {                                 \
        int64_t L = g->oh * g->ow, K = g->cg * g->kh * g->kw;                              \
        T *cols;                                                                           \
        amber_status st = am_arena_alloc(ctx->scratch, (size_t)(K * L) * sizeof(T),        \
                                         (void **)&cols, ctx->err);                        \
        if (st != AMBER_OK) return st;                                                     \
        memset(dx, 0, (size_t)(g->n * g->c * g->h * g->w) * sizeof(T));                    \
        for (int64_t ni = 0; ni < g->n; ni++)                                              \
            for (int64_t gi = 0; gi < g->groups; gi++) {                                   \
                st = am_gemm_##SUF(ctx, K, L, g->og, w + gi * g->og * K, 1, K,             \
                                   dy + (ni * g->o + gi * g->og) * L, L, 1, cols, L, false); \
                if (st != AMBER_OK) return st;                                             \
                im2col_##SUF(g, dx + (ni * g->c + gi * g->cg) * g->h * g->w, cols, true);  \
            }                                                                              \
        return AMBER_OK;                                                                   \
    }                                                                                      \
    /* dW_g = sum_n dy_g @ im2col(x)^T */                                                  \
    static amber_status conv_dw_##SUF(am_ctx *ctx, const conv_geom *g, const T *x,         \
                                      const T *dy, T *dw) {                                \
        int64_t L = g->oh * g->ow, K = g->cg * g->kh * g->kw;                              \
        T *cols;                                                                           \
        amber_status st = am_arena_alloc(ctx->scratch, (size_t)(K * L) * sizeof(T),        \
                                         (void **)&cols, ctx->err);                        \
        if (st != AMBER_OK) return st;                                                     \
        if (g->n == 0) memset(dw, 0, (size_t)(g->o * K) * sizeof(T));                      \
        for (int64_t ni = 0; ni < g->n; ni++)                                              \
            for (int64_t gi = 0; gi < g->groups; gi++) {                                   \
                im2col_##SUF(g, (T *)(x + (ni * g->c + gi * g->cg) * g->h * g->w), cols,   \
                             false);                                                       \
                st = am_gemm_##SUF(ctx, g->og, K, L, dy + (ni * g->o + gi * g->og) * L, L, \
                                   1, cols, 1, L, dw + gi * g->og * K, K, ni > 0);         \
                if (st != AMBER_OK) return st;                                             \
            }                                                                              \
        return AMBER_OK;                                                                   \
    }
CONV_KERNELS(f32, float)
CONV_KERNELS(f64, double)

amber_status k_conv2d(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                      const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    conv_geom g;
    geom(&g, in[0].shape, in[1].shape, out->shape, a);
    if (out->dtype == AMBER_FLOAT32)
        return conv_fwd_f32(ctx, &g, in[0].data, in[1].data, out->data);
    return conv_fwd_f64(ctx, &g, in[0].data, in[1].data, out->data);
}

amber_status k_conv2d_input_grad(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                                 const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    conv_geom g;
    geom(&g, out->shape, in[1].shape, in[0].shape, a);
    if (out->dtype == AMBER_FLOAT32)
        return conv_dx_f32(ctx, &g, in[0].data, in[1].data, out->data);
    return conv_dx_f64(ctx, &g, in[0].data, in[1].data, out->data);
}

amber_status k_conv2d_weight_grad(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                                  const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    conv_geom g;
    geom(&g, in[0].shape, out->shape, in[1].shape, a);
    if (out->dtype == AMBER_FLOAT32)
        return conv_dw_f32(ctx, &g, in[0].data, in[1].data, out->data);
    return conv_dw_f64(ctx, &g, in[0].data, in[1].data, out->data);
}
