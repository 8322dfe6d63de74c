/* matmul (batched, broadcast batch dims) and conv2d with its two transposes, on the GEMM
 * of gemm.c. Convolutions use im2col / col2im into scratch. */
#include "ops.h"

#include <string.h>

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

/* ---------------------------------------------------------------- epilogues */

bool am_epi_dims(const am_op *op, int rank, int *d1, int *d2) {
    if (op->id == AM_OP_CONV2D && rank == 4) { /* [N][O][OH * OW] */
        *d1 = 1, *d2 = 2;
        return true;
    }
    if (op->id == AM_OP_MATMUL && rank >= 2) { /* [1][batch * M][N] */
        *d1 = 0, *d2 = rank - 1;
        return true;
    }
    return false;
}

/* A product's finished block of C (rows of one image, offset by `row`) to its epilogue. */
static void epi_block(const void *ud, int64_t r0, int64_t nr, int64_t c0, int64_t nc) {
    const am_epi_at *a = (const am_epi_at *)ud;
    am_epi_apply(a->e, a->img, a->row + r0, nr, c0, nc);
}
/* The GEMM's view of it (the tile applies a register epilogue itself). */
#define GEMM_EPI(at) {epi_block, &(at), (at).e && (at).e->tile ? &(at) : NULL}

/* Set-up code (the work is in the GEMM and the packing): optimised for size. */
#define COLD __attribute__((cold))

typedef struct batch_job {
    const am_matmul_batch *b;
    void **ws; /* gemm scratch per worker */
} batch_job;

/* Where product t's operands start (elements): x's returned, y's in *oy. */
COLD static int64_t batch_at(const am_matmul_batch *b, int64_t t, int64_t *oy) {
    int64_t ox = 0;
    *oy = 0;
    for (int d = b->br - 1; d >= 0; d--) {
        ox += t % b->shape[d] * b->bx[d];
        *oy += t % b->shape[d] * b->by[d];
        t /= b->shape[d];
    }
    return ox;
}

COLD static void batch_task(void *ud, int64_t t, int worker) {
    const batch_job *j = (const batch_job *)ud;
    const am_matmul_batch *b = j->b;
    int64_t oy, ox = batch_at(b, t, &oy);
    am_gemm_serial_f32(b->m, b->n, b->k, (const float *)b->x + ox, b->rsa, b->csa,
                       (const float *)b->y + oy, b->rsb, b->csb, NULL,
                       (float *)b->out + t * b->m * b->n, b->n, false, (float *)j->ws[worker]);
}

COLD amber_status am_matmul_batch_run(am_ctx *ctx, const am_matmul_batch *b) {
    int workers = am_pool_size(ctx->pool);
    int64_t batches = 1, m = b->m, n = b->n, k = b->k;
    for (int d = 0; d < b->br; d++) batches *= b->shape[d];
    double work = (double)m * (double)n * (double)k;
    amber_status st = AMBER_OK;
    /* Small products a task each (one thread: in turn, with scratch made once); an empty
     * product has no work, and one product alone is one task, the caller's. */
    if (b->f32 && work < (m > 2 ? AM_GEMM_PARALLEL_MIN : AM_PARALLEL_MIN) &&
        work * (double)batches >= AM_PARALLEL_MIN) {
        size_t len = am_gemm_scratch_len_f32(m, n, k, false) * sizeof(float);
        am_pool *pool = am_pool_for(ctx->pool, work * (double)batches);
        workers = am_pool_size(pool);
        batch_job j = {b, NULL};
        st = am_arena_alloc(ctx->scratch, sizeof(void *) * (size_t)workers, (void **)&j.ws,
                            ctx->err);
        for (int w = 0; st == AMBER_OK && w < workers; w++)
            st = am_arena_alloc(ctx->scratch, len, &j.ws[w], ctx->err);
        if (st == AMBER_OK) am_pool_run(pool, batches, batch_task, &j);
        return st;
    }
    for (int64_t t = 0; t < batches && st == AMBER_OK; t++) {
        int64_t oy, ox = batch_at(b, t, &oy);
        st = b->f32 ? am_gemm_f32(ctx, m, n, k, (const float *)b->x + ox, b->rsa, b->csa,
                                  (const float *)b->y + oy, b->rsb, b->csb,
                                  (float *)b->out + t * m * n, n, false)
                    : am_gemm_f64(ctx, m, n, k, (const double *)b->x + ox, b->rsa, b->csa,
                                  (const double *)b->y + oy, b->rsb, b->csb,
                                  (double *)b->out + t * m * n, n, false);
    }
    return st;
}

amber_status k_matmul(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                      const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n, (void)a;
    const amber_tensor *x = &in[0], *y = &in[1];
    int br = out->rank - 2;
    int64_t m = x->shape[x->rank - 2], k = x->shape[x->rank - 1], nn = y->shape[y->rank - 1];
    size_t z = amber_dtype_size(out->dtype);
    /* Batch strides (in matrices) of x and y broadcast to the output's batch shape. */
    amber_tensor bx, by; /* copies of the used dims only (am_tensor_copy) */
    am_tensor_copy(&bx, x);
    am_tensor_copy(&by, y);
    bx.rank -= 2;
    by.rank -= 2;
    bx.dtype = by.dtype = AMBER_BOOL; /* strides in units of one matrix */
    int64_t sx[AMBER_MAX_RANK], sy[AMBER_MAX_RANK], idx[AMBER_MAX_RANK] = {0};
    am_bcast_strides(&bx, out->shape, br, sx);
    am_bcast_strides(&by, out->shape, br, sy);
    int64_t batches = 1, xb = 1, yb = 1;
    for (int d = 0; d < br; d++) batches *= out->shape[d];
    for (int d = 0; d < bx.rank; d++) xb *= bx.shape[d];
    for (int d = 0; d < by.rank; d++) yb *= by.shape[d];
    if (yb == 1 && xb == batches) { /* one y for every x: a single product, m * batches rows */
        m *= batches;
        batches = 1;
        br = 0;
    }
    bool fixed_y = (ctx->fixed_inputs & 2) != 0;
    bool fl = out->dtype == AMBER_FLOAT32 || out->dtype == AMBER_FLOAT64;
    if (fl && !fixed_y && !ctx->epi && batches > 1) { /* (one product: the loop below) */
        am_matmul_batch b = {br, out->shape, {0}, {0}, m, nn, k, k, 1, nn, 1,
                             x->data, y->data, out->data, out->dtype == AMBER_FLOAT32};
        for (int d = 0; d < br; d++) b.bx[d] = sx[d] * m * k, b.by[d] = sy[d] * k * nn;
        return am_matmul_batch_run(ctx, &b);
    }
    int64_t ox = 0, oy = 0;
    am_epi_at at = {ctx->epi, 0, 0};
    const am_gemm_epi ge = GEMM_EPI(at), *epi = ctx->epi ? &ge : NULL;
    for (int64_t bi = 0; bi < batches; bi++) {
        at.row = bi * m;
        const char *xa = (const char *)x->data + (size_t)(ox * m * k) * z;
        const char *ya = (const char *)y->data + (size_t)(oy * k * nn) * z;
        char *oc = (char *)out->data + (size_t)(bi * m * nn) * z;
        amber_status st = AMBER_OK;
        switch (out->dtype) {
        case AMBER_FLOAT32: {
            const float *b = (const float *)ya;
            st = am_gemm_prepacked_epi_f32(ctx, m, nn, k, (const float *)xa, k, 1, b, nn, 1,
                                           fixed_y ? am_gemm_kept_b_f32(ctx, nn, k, b) : NULL,
                                           (float *)oc, nn, epi);
            break;
        }
        case AMBER_FLOAT64: {
            const double *b = (const double *)ya;
            st = am_gemm_prepacked_epi_f64(ctx, m, nn, k, (const double *)xa, k, 1, b, nn, 1,
                                           fixed_y ? am_gemm_kept_b_f64(ctx, nn, k, b) : NULL,
                                           (double *)oc, nn, epi);
            break;
        }
        case AMBER_INT32: /* (no epilogue: integer products are never planned with one) */
            igemm_i32(m, nn, k, (const int32_t *)xa, (const int32_t *)ya, (int32_t *)oc);
            break;
        case AMBER_INT64:
            igemm_i64(m, nn, k, (const int64_t *)xa, (const int64_t *)ya, (int64_t *)oc);
            break;
        default:
            return am_fail(ctx->err, AMBER_ERR_DTYPE, "matmul: dtype %s is not supported",
                           amber_dtype_name(out->dtype));
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

/* Output columns j whose input column j*sw + q*dw - pl lies in [0, w): [*lo, *hi). */
static void valid_cols(const conv_geom *g, int64_t q, int64_t *lo, int64_t *hi) {
    int64_t off = q * g->dw - g->pl; /* input column of output column 0 */
    *lo = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
    *hi = g->w - 1 - off < 0 ? 0 : (g->w - 1 - off) / g->sw + 1;
    if (*hi > g->ow) *hi = g->ow;
    if (*lo > *hi) *lo = *hi;
}

/* A 1x1 convolution with unit stride and no padding: im2col would copy the input. */
static bool pointwise(const conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
           g->oh == g->h && g->ow == g->w;
}

/* cols[(c*KH + p)*KW + q][i*OW + j] = x[c][i*sh + p*dh - pt][j*sw + q*dw - pl] (0 outside);
 * x points at the group's first channel of one image; ld is the row stride of cols. With
 * col2im, the reverse: every cols element is added to the x element it was read from (in
 * the same loop order). */
#define IM2COL(SUF, T)                                                                     \
    static void im2col_ld_##SUF(const conv_geom *g, T *x, T *cols, int64_t ld, bool col2im) { \
        for (int64_t c = 0; c < g->cg; c++)                                                \
            for (int64_t p = 0; p < g->kh; p++)                                            \
                for (int64_t q = 0; q < g->kw; q++) {                                      \
                    T *row = cols + ((c * g->kh + p) * g->kw + q) * ld;                    \
                    T *xc = x + c * g->h * g->w;                                           \
                    int64_t lo, hi, first = q * g->dw - g->pl;                             \
                    valid_cols(g, q, &lo, &hi);                                            \
                    /* short rows (small images): zero the whole row once, copy by a loop */ \
                    bool short_rows = !col2im && g->ow < 16;                               \
                    if (short_rows) memset(row, 0, (size_t)(g->oh * g->ow) * sizeof(T));   \
                    for (int64_t i = 0; i < g->oh; i++) {                                  \
                        int64_t r = i * g->sh + p * g->dh - g->pt;                         \
                        T *dst = row + i * g->ow;                                          \
                        bool in = r >= 0 && r < g->h;                                      \
                        if (col2im) {                                                      \
                            if (!in || lo == hi) continue;                                 \
                            T *xr = xc + r * g->w + lo * g->sw + first;                    \
                            for (int64_t j = lo; j < hi; j++) xr[(j - lo) * g->sw] += dst[j]; \
                            continue;                                                      \
                        }                                                                  \
                        if (short_rows) {                                                  \
                            if (!in) continue;                                             \
                            const T *src = xc + r * g->w + lo * g->sw + first;             \
                            for (int64_t j = lo; j < hi; j++) dst[j] = src[(j - lo) * g->sw]; \
                            continue;                                                      \
                        }                                                                  \
                        if (!in) {                                                         \
                            memset(dst, 0, (size_t)g->ow * sizeof(T));                     \
                            continue;                                                      \
                        }                                                                  \
                        memset(dst, 0, (size_t)lo * sizeof(T));                            \
                        memset(dst + hi, 0, (size_t)(g->ow - hi) * sizeof(T));             \
                        if (lo == hi) continue;                                            \
                        const T *src = xc + r * g->w + lo * g->sw + first;                 \
                        if (g->sw == 1)                                                    \
                            memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof(T));          \
                        else                                                               \
                            for (int64_t j = lo; j < hi; j++) dst[j] = src[(j - lo) * g->sw]; \
                    }                                                                      \
                }                                                                          \
    }                                                                                      \
    static void im2col_##SUF(const conv_geom *g, T *x, T *cols, bool col2im) {             \
        im2col_ld_##SUF(g, x, cols, g->oh * g->ow, col2im);                                \
    }
IM2COL(f32, float)
IM2COL(f64, double)

/* conv2d and conv2d_input_grad work image by image (and group by group): one task is
 * one (image, group) pair. With threads and at least as many pairs as threads, the pairs
 * run in parallel, each product on one thread with its own scratch; otherwise they run
 * in turn and each product uses the threads. Both give the same bits. */
#define CONV_KERNELS(SUF, T)                                                               \
    typedef struct conv_job_##SUF {                                                        \
        am_ctx *ctx; /* in-turn mode: products use ctx (its pool and scratch) */           \
        const conv_geom *g;                                                                \
        const T *in, *w; /* x (forward) or dy (input gradient); the weight */              \
        T *out;          /* y or dx */                                                     \
        bool grad;                                                                         \
        const T **wk;    /* forward with a fixed weight: each group's packed weight */     \
        T **ws;          /* parallel mode: per worker, cols then product scratch */        \
        T *cols;         /* in-turn mode */                                                \
        const am_epi *epi; /* forward: applied to each finished block of y */             \
    } conv_job_##SUF;                                                                      \
                                                                                           \
    static amber_status conv_pair_##SUF(conv_job_##SUF *j, int64_t t, T *cols, T *scratch) { \
        const conv_geom *g = j->g;                                                         \
        int64_t L = g->oh * g->ow, K = g->cg * g->kh * g->kw;                              \
        int64_t ni = t / g->groups, gi = t % g->groups;                                    \
        const T *w = j->w + gi * g->og * K;                                                \
        if (!j->grad) {                                                                    \
            T *y = j->out + (ni * g->o + gi * g->og) * L;                                  \
            const T *xg = j->in + (ni * g->c + gi * g->cg) * g->h * g->w;                  \
            if (pointwise(g)) /* the columns are the input itself */                       \
                cols = (T *)xg;                                                            \
            else                                                                           \
                im2col_##SUF(g, (T *)xg, cols, false);                                     \
            const T *wk = j->wk ? j->wk[gi] : NULL;                                        \
            am_epi_at at = {j->epi, ni, gi * g->og};                                       \
            const am_gemm_epi ge = GEMM_EPI(at), *epi = j->epi ? &ge : NULL;               \
            if (!scratch && wk)                                                            \
                return am_gemm_kept_a_run_epi_##SUF(j->ctx, g->og, L, K, w, wk, cols, L, 1, y, \
                                                    L, epi);                               \
            if (!scratch)                                                                  \
                return am_gemm_epi_##SUF(j->ctx, g->og, L, K, w, K, 1, cols, L, 1, y, L, epi); \
            if (wk)                                                                        \
                am_gemm_serial_kept_a_epi_##SUF(g->og, L, K, w, wk, cols, L, 1, y, L, scratch, \
                                                epi);                                      \
            else                                                                           \
                am_gemm_serial_epi_##SUF(g->og, L, K, w, K, 1, cols, L, 1, NULL, y, L,     \
                                         scratch, epi);                                    \
            return AMBER_OK;                                                               \
        }                                                                                  \
        /* dx_g = col2im(W_g^T @ dy_g) */                                                  \
        const T *dy = j->in + (ni * g->o + gi * g->og) * L;                                \
        T *dx = j->out + (ni * g->c + gi * g->cg) * g->h * g->w;                           \
        if (!scratch) {                                                                    \
            amber_status st = am_gemm_##SUF(j->ctx, K, L, g->og, w, 1, K, dy, L, 1, cols, L, false); \
            if (st != AMBER_OK) return st;                                                 \
        } else {                                                                           \
            am_gemm_serial_##SUF(K, L, g->og, w, 1, K, dy, L, 1, NULL, cols, L, false, scratch); \
        }                                                                                  \
        memset(dx, 0, (size_t)(g->cg * g->h * g->w) * sizeof(T));                          \
        im2col_##SUF(g, dx, cols, true);                                                   \
        return AMBER_OK;                                                                   \
    }                                                                                      \
                                                                                           \
    static void conv_task_##SUF(void *ud, int64_t t, int worker) {                         \
        conv_job_##SUF *j = (conv_job_##SUF *)ud;                                          \
        const conv_geom *g = j->g;                                                         \
        T *cols = j->ws[worker];                                                           \
        (void)conv_pair_##SUF(j, t, cols, cols + g->oh * g->ow * g->cg * g->kh * g->kw);   \
    }                                                                                      \
                                                                                           \
    static amber_status conv_run_##SUF(am_ctx *ctx, const conv_geom *g, const T *in,       \
                                       const T *w, T *out, bool grad) {                    \
        int64_t L = g->oh * g->ow, K = g->cg * g->kh * g->kw, pairs = g->n * g->groups;    \
        conv_job_##SUF job = {ctx, g, in, w, out, grad, NULL, NULL, NULL,                  \
                              grad ? NULL : ctx->epi};                                     \
        int threads = am_pool_size(ctx->pool);                                             \
        if (!grad && (ctx->fixed_inputs & 2) && ctx->keep &&                               \
            am_arena_alloc(ctx->scratch, (size_t)g->groups * sizeof(T *), (void **)&job.wk, \
                           NULL) == AMBER_OK) /* packed once per session */               \
            for (int64_t gi = 0; gi < g->groups; gi++)                                     \
                job.wk[gi] = am_gemm_kept_a_##SUF(ctx, g->og, K, w + gi * g->og * K);      \
        double work = (double)pairs * (double)g->og * (double)L * (double)K;               \
        bool parallel = threads > 1 && pairs >= threads && work >= AM_PARALLEL_MIN &&      \
                        am_pool_for(ctx->pool, work);                                      \
        amber_status st;                                                                   \
        if (parallel) {                                                                    \
            int64_t m = grad ? K : g->og, kk = grad ? g->og : K;                           \
            size_t len = (size_t)(K * L) + am_gemm_scratch_len_##SUF(m, L, kk, false);     \
            am_arena_mark mark = am_arena_get_mark(ctx->scratch);                          \
            st = am_arena_alloc(ctx->scratch, (size_t)threads * sizeof(T *), (void **)&job.ws, \
                                NULL);                                                     \
            for (int i = 0; st == AMBER_OK && i < threads; i++)                            \
                st = am_arena_alloc(ctx->scratch, len * sizeof(T), (void **)&job.ws[i], NULL); \
            if (st == AMBER_OK) {                                                          \
                am_pool_run(ctx->pool, pairs, conv_task_##SUF, &job);                      \
                return AMBER_OK;                                                           \
            }                                                                              \
            /* Scratch for every thread does not fit the limit: one pair at a time. */    \
            am_arena_release(ctx->scratch, mark);                                          \
        }                                                                                  \
        st = am_arena_alloc(ctx->scratch, (size_t)(K * L) * sizeof(T), (void **)&job.cols, \
                            ctx->err);                                                     \
        for (int64_t t = 0; st == AMBER_OK && t < pairs; t++)                              \
            st = conv_pair_##SUF(&job, t, job.cols, NULL);                                 \
        return st;                                                                         \
    }                                                                                      \
                                                                                           \
    /* dW_g = sum_n dy_g @ im2col(x)^T (images in order: the sum runs across them) */      \
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

/* Convolutions without groups run one product per chunk of images, their columns side by
 * side (K x NB*L): small images then do not pay a product's set-up each. The products
 * read the output gradient as O x NB*L (a transposed copy) and the forward writes O x
 * NB*L, copied out image by image. Every element's sum runs over k in the order the GEMM
 * gives its shape, whatever the thread count; the weight gradient sums across chunks in
 * order. */
#define AM_CONV_CHUNK_BYTES ((size_t)1 << 20)
#define CONV_BATCHED(SUF, T)                                                               \
    typedef struct conv_chunk_##SUF {                                                      \
        int64_t nb, L, K;                                                                  \
        T *cols, *prod; /* K x NB*L; O x NB*L */                                           \
    } conv_chunk_##SUF;                                                                    \
                                                                                           \
    static amber_status chunk_init_##SUF(am_ctx *ctx, const conv_geom *g,                  \
                                         conv_chunk_##SUF *c) {                            \
        c->L = g->oh * g->ow, c->K = g->c * g->kh * g->kw;                                 \
        size_t per = (size_t)((c->K + g->o) * c->L) * sizeof(T);                           \
        c->nb = per ? (int64_t)(AM_CONV_CHUNK_BYTES / per) : g->n;                         \
        if (c->nb > g->n) c->nb = g->n;                                                    \
        if (c->nb < 1) c->nb = 1;                                                          \
        for (;;) {                                                                         \
            am_arena_mark mark = am_arena_get_mark(ctx->scratch);                          \
            bool last = c->nb == 1;                                                        \
            size_t n = (size_t)(c->nb * c->L);                                             \
            amber_status st = am_arena_alloc(ctx->scratch, (size_t)c->K * n * sizeof(T),   \
                                             (void **)&c->cols, last ? ctx->err : NULL);   \
            if (st == AMBER_OK)                                                            \
                st = am_arena_alloc(ctx->scratch, (size_t)g->o * n * sizeof(T),            \
                                    (void **)&c->prod, last ? ctx->err : NULL);            \
            if (st == AMBER_OK || last) return st;                                         \
            am_arena_release(ctx->scratch, mark); /* under a memory limit: fewer images */ \
            c->nb = 1;                                                                     \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* prod[o][i*L + l] <-> y[n0 + i][o][l] for the chunk's cnt images */                  \
    static void chunk_copy_##SUF(const conv_geom *g, const conv_chunk_##SUF *c, T *y,       \
                                 int64_t n0, int64_t cnt, bool to_y) {                     \
        int64_t ld = cnt * c->L;                                                           \
        for (int64_t i = 0; i < cnt; i++)                                                  \
            for (int64_t o = 0; o < g->o; o++) {                                           \
                T *a = y + ((n0 + i) * g->o + o) * c->L, *b = c->prod + o * ld + i * c->L; \
                T *dst = to_y ? a : b;                                                     \
                const T *src = to_y ? b : a;                                               \
                if (c->L >= 16)                                                            \
                    memcpy(dst, src, (size_t)c->L * sizeof(T));                            \
                else /* small images: a call per row costs more than the copy */          \
                    for (int64_t l = 0; l < c->L; l++) dst[l] = src[l];                    \
            }                                                                              \
    }                                                                                      \
                                                                                           \
    /* dx = col2im(W^T @ dy) */                                                            \
    static amber_status conv_dx_batched_##SUF(am_ctx *ctx, const conv_geom *g, const T *dy, \
                                              const T *w, T *dx) {                         \
        conv_chunk_##SUF c;                                                                \
        amber_status st = chunk_init_##SUF(ctx, g, &c);                                    \
        for (int64_t n0 = 0; st == AMBER_OK && n0 < g->n; n0 += c.nb) {                    \
            int64_t cnt = g->n - n0 < c.nb ? g->n - n0 : c.nb, ld = cnt * c.L;             \
            chunk_copy_##SUF(g, &c, (T *)dy, n0, cnt, false);                              \
            st = am_gemm_##SUF(ctx, c.K, ld, g->o, w, 1, c.K, c.prod, ld, 1, c.cols, ld, false); \
            for (int64_t i = 0; st == AMBER_OK && i < cnt; i++) {                          \
                T *xi = dx + (n0 + i) * g->c * g->h * g->w;                                \
                memset(xi, 0, (size_t)(g->c * g->h * g->w) * sizeof(T));                   \
                im2col_ld_##SUF(g, xi, c.cols + i * c.L, ld, true);                        \
            }                                                                              \
        }                                                                                  \
        return st;                                                                         \
    }                                                                                      \
                                                                                           \
    /* dW = sum over chunks of dy_chunk (O x NB*L) @ cols_chunk^T */                       \
    static amber_status conv_dw_batched_##SUF(am_ctx *ctx, const conv_geom *g, const T *x,  \
                                              const T *dy, T *dw) {                        \
        conv_chunk_##SUF c;                                                                \
        amber_status st = chunk_init_##SUF(ctx, g, &c);                                    \
        if (st == AMBER_OK && g->n == 0) memset(dw, 0, (size_t)(g->o * c.K) * sizeof(T));  \
        for (int64_t n0 = 0; st == AMBER_OK && n0 < g->n; n0 += c.nb) {                    \
            int64_t cnt = g->n - n0 < c.nb ? g->n - n0 : c.nb, ld = cnt * c.L;             \
            for (int64_t i = 0; i < cnt; i++)                                              \
                im2col_ld_##SUF(g, (T *)(x + (n0 + i) * g->c * g->h * g->w), c.cols + i * c.L, \
                                ld, false);                                                \
            chunk_copy_##SUF(g, &c, (T *)dy, n0, cnt, false);                              \
            st = am_gemm_##SUF(ctx, g->o, c.K, ld, c.prod, ld, 1, c.cols, 1, ld, dw, c.K, n0 > 0); \
        }                                                                                  \
        return st;                                                                         \
    }
CONV_BATCHED(f32, float)
CONV_BATCHED(f64, double)

/* The forward of a convolution without groups: one product per image (or per chunk of
 * small images, their columns side by side), its B operand (the im2col matrix) packed
 * straight from x as the GEMM needs it (am_gemm_bsrc), never stored whole; one image's
 * product writes y directly and its epilogue runs on each finished block. Columns j of a
 * chunk are pixel j % L of its image j / L, rows p are (c, kh, kw). The summation order
 * is the GEMM's for the shapes: chunking and threads do not change it. */
typedef struct im2col_src {
    const conv_geom *g;
    const void *x;        /* the chunk's first image */
    int64_t seg, phases; /* columns in `phases` phases of `seg` (see padded_*), or seg 0 */
} im2col_src;

/* pad_task_*'s job: `planes` planes of src->x into xp, in `tasks` shares of their rows */
typedef struct pad_job {
    const conv_geom *g;
    const im2col_src *src;
    void *xp;
    int64_t planes, tasks;
} pad_job;

/* Images per product: small images together, up to about this many columns. */
#define CONV_JOIN_COLS 512
/* im2col rows packed per pass (their offsets on the stack) */
#define PACK_ROWS 256

/* The am_keep kind of a weight packed transposed (conv_rows). */
#define KEEP_KIND_CONV_WT 0x5400u

/* Images whose pixels fill 12-row tiles better than 16-column slivers, and enough output
 * channels for full slivers of the transposed product. */
static bool rows_fit(const conv_geom *g) {
    int64_t L = g->oh * g->ow;
    return L >= 12 && L < 128 && L % 16 != 0 && g->o % 16 == 0;
}

/* Rows q < rows of a run shorter than a sliver (a sliver's columns crossing output rows):
 * dst[q * nr + u] = src[off[q] + u], u < len < 16, in masked vectors (a scalar copy of
 * these short runs cost more than the whole runs on 28x28 and 14x14 images). */
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#include <immintrin.h>
#define RUN_AVX512 __attribute__((target("avx512f")))
RUN_AVX512 static void run_copy_f32(float *dst, int64_t nr, const float *src, const int64_t *off,
                                    int64_t rows, int64_t len) {
    __mmask16 m = (__mmask16)((1u << len) - 1);
    for (int64_t q = 0; q < rows; q++)
        _mm512_mask_storeu_ps(dst + q * nr, m, _mm512_maskz_loadu_ps(m, src + off[q]));
}
#define RUN_COPY_f32 1
#else
#define RUN_COPY_f32 0
static inline void run_copy_f32(float *dst, int64_t nr, const float *src, const int64_t *off,
                                int64_t rows, int64_t len) {
    (void)dst, (void)nr, (void)src, (void)off, (void)rows, (void)len;
}
#endif
#define RUN_COPY_f64 0 /* (float64: the scalar copy) */
static inline void run_copy_f64(double *dst, int64_t nr, const double *src, const int64_t *off,
                                int64_t rows, int64_t len) {
    (void)dst, (void)nr, (void)src, (void)off, (void)rows, (void)len;
}

/* Whether conv_rows_* transposes finished blocks as the product reports them (float64,
 * and without AVX-512: the scalar transpose, then the epilogue) */
#define TR_EPI_f32 (am_cpu_isa() >= AM_GEMM_ISA_AVX512)
#define TR_EPI_f64 false
#define CONV_IMPLICIT(SUF, T)                                                              \
    /* Every window lies inside the images it reads (padded_*): a sliver's columns are runs\
     * along one output row each, row q of a run a copy from the window corner + off[q]. */\
    static void im2col_pack_##SUF(const void *ud, void *out, int64_t stride, int64_t p0,   \
                                  int64_t kc, int64_t j0, int64_t nc, int64_t nr) {        \
        const im2col_src *src = (const im2col_src *)ud;                                    \
        bool masked = RUN_COPY_##SUF && am_cpu_isa() >= AM_GEMM_ISA_AVX512;               \
        const conv_geom *g = src->g;                                                       \
        int64_t L = g->oh * g->ow, hw = g->h * g->w, khw = g->kh * g->kw;                  \
        int64_t off[PACK_ROWS];                                                            \
        for (int64_t pb = 0; pb < kc; pb += PACK_ROWS) {                                   \
            int64_t rows = kc - pb < PACK_ROWS ? kc - pb : PACK_ROWS, p = p0 + pb;         \
            int64_t c = p / khw, ph = p % khw / g->kw, pw = p % g->kw;                     \
            for (int64_t q = 0; q < rows; q++) {                                           \
                int64_t dc = pw * g->dw;                                                   \
                if (src->seg) dc = dc % src->phases * src->seg + dc / src->phases;         \
                off[q] = c * hw + ph * g->dh * g->w + dc;                                  \
                if (++pw == g->kw) {                                                       \
                    pw = 0;                                                                \
                    if (++ph == g->kh) ph = 0, c++;                                        \
                }                                                                          \
            }                                                                              \
            T *dst = (T *)out + pb * nr;                                                   \
            for (int64_t s0 = 0; s0 < nc; s0 += nr, dst += stride) {                       \
                int64_t wid = nc - s0 < nr ? nc - s0 : nr;                                 \
                for (int64_t q = 0; wid < nr && q < rows; q++)                             \
                    for (int64_t u = wid; u < nr; u++) dst[q * nr + u] = 0;                \
                for (int64_t t = 0; t < wid;) {                                            \
                    int64_t j = j0 + s0 + t, l = j % L, jw = l % g->ow;                    \
                    int64_t len = g->ow - jw < wid - t ? g->ow - jw : wid - t;             \
                    const T *b = (const T *)src->x + (j / L) * g->c * hw +                 \
                                 (l / g->ow * g->sh * g->w + jw * g->sw);                  \
                    T *e = dst + t;                                                        \
                    t += len;                                                              \
                    if (g->sw == 1 && masked) /* (whole runs too: in 64-byte vectors) */   \
                        run_copy_##SUF(e, nr, b, off, rows, len);                          \
                    else if (g->sw == 1) /* (a short run too: the digits CNN at batch \
                                            * 8 ran 4-7% faster than element by element) */\
                        for (int64_t q = 0; q < rows; q++)                                 \
                            memcpy(e + q * nr, b + off[q], (size_t)len * sizeof(T));       \
                    else                                                                   \
                        for (int64_t q = 0; q < rows; q++)                                 \
                            for (int64_t u = 0; u < len; u++)                              \
                                e[q * nr + u] = b[off[q] + u * g->sw];                     \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    /* One small image transposed: yT[L x O] = im2col(x)^T W^T with W^T packed once per    \
     * session, the image's pixels as rows (12-row register tiles waste less on 49 pixels  \
     * than 16-column slivers). Every element gets the same fused multiply-adds in         \
     * the same order as in y = W im2col(x): the same bits. */                             \
    COLD static const T *kept_wt_##SUF(am_ctx *ctx, const conv_geom *g, const T *w) {      \
        int64_t K = g->c * g->kh * g->kw;                                                  \
        uint32_t kind = KEEP_KIND_CONV_WT | (uint32_t)sizeof(T);                           \
        T *p = (T *)am_keep_find(ctx->keep, w, kind, K, g->o);                             \
        if (p) return p;                                                                   \
        size_t len = am_gemm_packed_len_##SUF(K, g->o) * sizeof(T);                        \
        p = (T *)am_keep_add(ctx->keep, w, kind, K, g->o, len);                            \
        if (p) am_gemm_pack_b_##SUF(w, 1, K, K, g->o, p);                                  \
        return p;                                                                          \
    }                                                                                      \
                                                                                           \
    /* y[o x L] = tmp[L x o]^T, 16 rows of y at a time (hot: not in the cold set-up code) */\
    __attribute__((noinline)) static void transpose_##SUF(const T *tmp, T *y, int64_t L,   \
                                                          int64_t o) {                     \
        for (int64_t o0 = 0; o0 < o; o0 += 16)                                             \
            for (int64_t l = 0; l < L; l++)                                                \
                for (int64_t i = o0; i < o0 + 16 && i < o; i++) y[i * L + l] = tmp[l * o + i];\
    }                                                                                      \
    COLD static amber_status conv_rows_##SUF(am_ctx *ctx, const conv_geom *g, const T *x,  \
                                             const T *wt, T *y, int64_t ni, T *cols, T *tmp) {\
        int64_t L = g->oh * g->ow, K = g->c * g->kh * g->kw, o = g->o;                     \
        const T *a = x;                                                                    \
        if (!pointwise(g)) {                                                               \
            im2col_##SUF(g, (T *)x, cols, false);                                          \
            a = cols;                                                                      \
        }                                                                                  \
        if (TR_EPI_##SUF) {                                                                \
            am_epi_tr tr = {ctx->epi, ni, L, o, (const float *)(void *)tmp,                \
                            (float *)(void *)y, 0, 0};                                     \
            const am_gemm_epi ge = {am_epi_tr_fn, &tr, NULL};                              \
            return am_gemm_prepacked_epi_##SUF(ctx, L, o, K, a, 1, L, NULL, 0, 0, wt, tmp, o, \
                                               &ge);                                       \
        }                                                                                  \
        amber_status st =                                                                  \
            am_gemm_prepacked_##SUF(ctx, L, o, K, a, 1, L, NULL, 0, 0, wt, tmp, o, false); \
        if (st == AMBER_OK) transpose_##SUF(tmp, y, L, o);                                 \
        if (st == AMBER_OK && ctx->epi) am_epi_apply(ctx->epi, ni, 0, o, 0, L);            \
        return st;                                                                         \
    }                                                                                      \
                                                                                           \
    /* The images as the pack reads them: zero-padded so that every window lies inside and,\
     * with a column stride sw > 1, each row's columns in sw phases (padded column pc at   \
     * (pc % sw) * seg + pc / sw), so that a window's columns at consecutive outputs are   \
     * adjacent. *xp stays NULL (src unchanged) when the images serve as they are. */      \
    COLD static amber_status padded_##SUF(am_ctx *ctx, const conv_geom *g, int64_t nb,     \
                                          conv_geom *gp, im2col_src *src, T **xp) {        \
        int64_t hp = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;                        \
        int64_t wp = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1, ph = g->sw;            \
        hp = hp > g->h + g->pt ? hp : g->h + g->pt;                                        \
        wp = wp > g->w + g->pl ? wp : g->w + g->pl;                                        \
        *xp = NULL;                                                                        \
        if (hp == g->h && wp == g->w && ph == 1) return AMBER_OK;                          \
        *gp = *g;                                                                          \
        gp->h = hp, gp->w = (wp + ph - 1) / ph * ph, gp->pt = gp->pl = 0, gp->sw = 1;      \
        size_t len = (size_t)(nb * g->c * gp->h * gp->w);                                  \
        amber_status st = am_arena_alloc(ctx->scratch, len * sizeof(T), (void **)xp, ctx->err);\
        if (st != AMBER_OK) return st;                                                     \
        memset(*xp, 0, len * sizeof(T)); /* the padding, for every chunk */                \
        src->g = gp, src->seg = ph > 1 ? gp->w / ph : 0, src->phases = ph;                 \
        return AMBER_OK;                                                                   \
    }                                                                                      \
    /* Task t of j->tasks: its share of the rows of every plane from src->x into xp (see   \
     * padded_*). */                                                                       \
    static void pad_task_##SUF(void *ud, int64_t t, int worker) {                          \
        const pad_job *j = (const pad_job *)ud;                                            \
        const conv_geom *g = j->g, *gp = j->src->g;                                        \
        const im2col_src *src = j->src;                                                    \
        T *xp = (T *)j->xp;                                                                \
        (void)worker;                                                                      \
        for (int64_t i = 0; i < j->planes; i++)                                            \
            for (int64_t r = g->h * t / j->tasks; r < g->h * (t + 1) / j->tasks; r++) {    \
                T *d = xp + (i * gp->h + r + g->pt) * gp->w;                               \
                const T *x = (const T *)src->x + (i * g->h + r) * g->w;                    \
                if (!src->seg) {                                                           \
                    memcpy(d + g->pl, x, (size_t)g->w * sizeof(T));                        \
                    continue;                                                              \
                }                                                                          \
                for (int64_t f = 0, ph = src->phases; f < ph; f++) { /* f, f + sw, ... */  \
                    int64_t c0 = f - g->pl; /* the input column of k = 0; k0 <= k < k1 read */ \
                    int64_t k0 = c0 < 0 ? (-c0 + ph - 1) / ph : 0;                         \
                    int64_t k1 = g->w - c0 <= 0 ? 0 : (g->w - c0 + ph - 1) / ph;           \
                    T *restrict dd = d + f * src->seg;                                     \
                    const T *restrict xx = x + c0 + k0 * ph;                               \
                    int64_t cnt = (k1 < src->seg ? k1 : src->seg) - k0;                    \
                    if (ph == 2) /* (a stride the compiler vectorises) */                  \
                        for (int64_t k = 0; k < cnt; k++) dd[k0 + k] = xx[2 * k];          \
                    else                                                                   \
                        for (int64_t k = 0; k < cnt; k++) dd[k0 + k] = xx[k * ph];         \
                }                                                                          \
            }                                                                              \
    }                                                                                      \
    /* `planes` planes from src->x into xp, split between the threads while they are awake \
     * (else on the calling thread), then src->x = xp. */                                  \
    static void pad_copy_##SUF(am_ctx *ctx, const conv_geom *g, im2col_src *src,           \
                               int64_t planes, T *xp) {                                    \
        pad_job j = {g, src, xp, planes, 1};                                               \
        am_pool *pool = planes * g->h * g->w >= AM_ELEMENTS_PARALLEL_MIN &&                \
                                am_pool_awake(ctx->pool) ? ctx->pool : NULL;               \
        if (pool) j.tasks = am_pool_size(pool) < g->h ? am_pool_size(pool) : g->h;         \
        am_pool_run(pool, j.tasks, pad_task_##SUF, &j);                                    \
        src->x = xp;                                                                       \
    }                                                                                      \
    COLD static amber_status conv_fwd_implicit_##SUF(am_ctx *ctx, const conv_geom *g,      \
                                                     const T *x, const T *w, T *y) {            \
        conv_chunk_##SUF c = {1, g->oh * g->ow, g->c * g->kh * g->kw, NULL, NULL};         \
        const T *wk = (ctx->fixed_inputs & 2) && ctx->keep                                 \
                          ? am_gemm_kept_a_##SUF(ctx, g->o, c.K, w) : NULL;                \
        if (c.L < CONV_JOIN_COLS && g->n > 1) {                                            \
            c.nb = (CONV_JOIN_COLS + c.L - 1) / c.L;                                       \
            if (c.nb > g->n) c.nb = g->n;                                                  \
            if (am_arena_alloc(ctx->scratch, (size_t)(g->o * c.nb * c.L) * sizeof(T),      \
                               (void **)&c.prod, NULL) != AMBER_OK)                        \
                c.nb = 1; /* under a memory limit: one image at a time */                  \
        }                                                                                  \
        const T *wt = NULL;                                                                \
        T *cols = NULL, *tmp = NULL;                                                       \
        if (wk && c.nb == 1 && rows_fit(g) && (wt = kept_wt_##SUF(ctx, g, w)) &&           \
            ((!pointwise(g) && am_arena_alloc(ctx->scratch, (size_t)(c.K * c.L) * sizeof(T), \
                                              (void **)&cols, NULL) != AMBER_OK) ||        \
             am_arena_alloc(ctx->scratch, (size_t)(g->o * c.L) * sizeof(T), (void **)&tmp, \
                            NULL) != AMBER_OK))                                            \
            wt = NULL;                                                                     \
        im2col_src src = {g, x, 0, 1};                                                     \
        conv_geom gp;                                                                      \
        T *xp = NULL;                                                                      \
        amber_status st = wt ? AMBER_OK : padded_##SUF(ctx, g, c.nb, &gp, &src, &xp);      \
        const am_gemm_bsrc bs = {im2col_pack_##SUF, &src};                                 \
        am_epi_at at = {ctx->epi, 0, 0};                                                   \
        const am_gemm_epi ge = GEMM_EPI(at), *epi = ctx->epi ? &ge : NULL;                 \
        for (int64_t n0 = 0; st == AMBER_OK && n0 < g->n; n0 += c.nb) {                    \
            int64_t cnt = g->n - n0 < c.nb ? g->n - n0 : c.nb;                             \
            src.x = x + n0 * g->c * g->h * g->w;                                           \
            if (xp) pad_copy_##SUF(ctx, g, &src, cnt * g->c, xp);                         \
            at.img = n0;                                                                   \
            if (cnt == 1 && wt) {                                                          \
                st = conv_rows_##SUF(ctx, g, x + n0 * g->c * g->h * g->w, wt,              \
                                     y + n0 * g->o * c.L, n0, cols, tmp);                  \
                continue;                                                                  \
            }                                                                              \
            if (cnt == 1) {                                                                \
                st = am_gemm_bsrc_epi_##SUF(ctx, g->o, c.L, c.K, w, wk, &bs,               \
                                            y + n0 * g->o * c.L, c.L, epi);                \
                continue;                                                                  \
            }                                                                              \
            st = am_gemm_bsrc_epi_##SUF(ctx, g->o, cnt * c.L, c.K, w, wk, &bs, c.prod,     \
                                        cnt * c.L, NULL);                                  \
            if (st != AMBER_OK) break;                                                     \
            chunk_copy_##SUF(g, &c, y, n0, cnt, true);                                     \
            for (int64_t i = 0; ctx->epi && i < cnt; i++) /* a fused epilogue, per image */ \
                am_epi_apply(ctx->epi, n0 + i, 0, g->o, 0, c.L);                           \
        }                                                                                  \
        return st;                                                                         \
    }
CONV_IMPLICIT(f32, float)
CONV_IMPLICIT(f64, double)

/* One product per chunk of images: no groups, and not a 1x1 convolution that multiplies
 * its input in place. */
static bool batched(const conv_geom *g) { return g->groups == 1 && !pointwise(g); }

/* A strided 1x1 convolution without padding reads every sh-th row and sw-th column only:
 * those copied out once, it is a pointwise one (the same products over the same C
 * channels in the same order: the same bits, without an im2col pack per call). */
static bool strided_pointwise(const conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && (g->sh > 1 || g->sw > 1) && g->pt == 0 &&
           g->pl == 0 && g->groups == 1 && g->oh == (g->h - 1) / g->sh + 1 &&
           g->ow == (g->w - 1) / g->sw + 1;
}

#if RUN_COPY_f32
/* s[0], s[2], ... of a row of w into d[0:(w + 1) / 2]: the even lanes of two vectors,
 * masked at the row's end (the scalar gather cost ResNet-50 a quarter of a millisecond). */
RUN_AVX512 static void evens_f32(const float *s, int64_t w, float *d) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int64_t k = 0; k < w; k += 32, d += 16) {
        int64_t in = w - k, out = (in + 1) / 2;
        __mmask16 m0 = (__mmask16)(in >= 16 ? 0xffff : (1u << in) - 1);
        __mmask16 m1 = (__mmask16)(in >= 32 ? 0xffff : in > 16 ? (1u << (in - 16)) - 1 : 0);
        __mmask16 mo = (__mmask16)(out >= 16 ? 0xffff : (1u << out) - 1);
        _mm512_mask_storeu_ps(d, mo, _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(m0, s + k), ev,
                                                            _mm512_maskz_loadu_ps(m1, s + k + 16)));
    }
}
#endif

typedef struct sub_job {
    const conv_geom *g;
    const void *x;
    void *d;
    int64_t tasks;
} sub_job;

#define SUBSAMPLE(SUF, T, EVENS)                                                           \
    static void subsample_##SUF(void *ud, int64_t t, int worker) {                         \
        const sub_job *j = (const sub_job *)ud;                                            \
        const conv_geom *g = j->g;                                                         \
        int64_t planes = g->n * g->c, i1 = planes * (t + 1) / j->tasks;                    \
        bool evens = EVENS && g->sw == 2 && am_cpu_isa() >= AM_GEMM_ISA_AVX512;            \
        (void)worker;                                                                      \
        for (int64_t i = planes * t / j->tasks; i < i1; i++) {                             \
            T *d = (T *)j->d + i * g->oh * g->ow;                                          \
            for (int64_t r = 0; r < g->oh; r++, d += g->ow) {                              \
                const T *s = (const T *)j->x + (i * g->h + r * g->sh) * g->w;              \
                if (evens) {                                                               \
                    evens_##SUF(s, g->w, d);                                               \
                    continue;                                                              \
                }                                                                          \
                for (int64_t c = 0; c < g->ow; c++) d[c] = s[c * g->sw];                   \
            }                                                                              \
        }                                                                                  \
    }
#if !RUN_COPY_f32
#define evens_f32(s, w, d) ((void)(s), (void)(w), (void)(d))
#endif
#define evens_f64(s, w, d) ((void)(s), (void)(w), (void)(d))
SUBSAMPLE(f32, float, RUN_COPY_f32)
SUBSAMPLE(f64, double, 0)

/* The strided 1x1 convolution's input rows and columns copied out, split between the
 * threads while they are awake. */
static void subsample(am_ctx *ctx, const conv_geom *g, const void *x, void *d, bool f32) {
    sub_job j = {g, x, d, 1};
    am_pool *pool = g->n * g->c * g->oh * g->ow >= AM_ELEMENTS_PARALLEL_MIN &&
                            am_pool_awake(ctx->pool) ? ctx->pool : NULL;
    if (pool) j.tasks = am_pool_size(pool) < g->n * g->c ? am_pool_size(pool) : g->n * g->c;
    am_pool_run(pool, j.tasks, f32 ? subsample_f32 : subsample_f64, &j);
}

amber_status k_conv2d(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                      const am_attrs *a, amber_tensor *out) {
    (void)n;
    conv_geom g;
    geom(&g, in[0].shape, in[1].shape, out->shape, a);
    if (g.cg == 1 && g.groups > 1) return am_conv_depthwise(ctx, in, a, out);
    amber_tensor sub[2] = {in[0], in[1]};
    if (strided_pointwise(&g) &&
        am_arena_alloc(ctx->scratch, (size_t)(g.n * g.c * g.oh * g.ow) *
                       amber_dtype_size(out->dtype), &sub[0].data, NULL) == AMBER_OK) {
        am_attrs unit = *a;
        unit.stride[0] = unit.stride[1] = 1;
        sub[0].shape[2] = g.oh, sub[0].shape[3] = g.ow;
        subsample(ctx, &g, in[0].data, sub[0].data, out->dtype == AMBER_FLOAT32);
        return k_conv2d(op, ctx, sub, 2, &unit, out);
    }
    if (am_conv_small_fits(in, a, out)) return am_conv_small(ctx, in, a, out);
    bool done = false;
    if (am_conv3x3_fits(in, a, out)) {
        amber_status st = am_conv3x3(ctx, in, a, out, &done);
        if (st != AMBER_OK || done) return st;
    }
    /* (a 1x1 convolution too when its images are small: side by side, or transposed; but
     * with a kept weight on AVX-512, each image's product reads the image in place and
     * computes a last partial sliver column by column: no padding multiplied, no copies) */
    bool kept = (ctx->fixed_inputs & 2) && ctx->keep;
    bool direct = kept && pointwise(&g) && out->dtype == AMBER_FLOAT32 &&
                  (am_cpu_isa() >= AM_GEMM_ISA_AVX512 ||
                   (am_cpu_isa() >= AM_GEMM_ISA_AVX2 && /* (there no column kernel: small */
                    (g.n == 1 || g.oh * g.ow >= CONV_JOIN_COLS / 4))); /* images side by side) */
    if (batched(&g) || (g.groups == 1 && g.n > 1 && g.oh * g.ow < CONV_JOIN_COLS / 4 && !direct) ||
        (g.groups == 1 && kept && rows_fit(&g) && !direct))
        return out->dtype == AMBER_FLOAT32
                   ? conv_fwd_implicit_f32(ctx, &g, in[0].data, in[1].data, out->data)
                   : conv_fwd_implicit_f64(ctx, &g, in[0].data, in[1].data, out->data);
    if (out->dtype == AMBER_FLOAT32)
        return conv_run_f32(ctx, &g, in[0].data, in[1].data, out->data, false);
    return conv_run_f64(ctx, &g, in[0].data, in[1].data, out->data, false);
}

amber_status k_conv2d_input_grad(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                                 const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    conv_geom g;
    geom(&g, out->shape, in[1].shape, in[0].shape, a);
    if (batched(&g))
        return out->dtype == AMBER_FLOAT32
                   ? conv_dx_batched_f32(ctx, &g, in[0].data, in[1].data, out->data)
                   : conv_dx_batched_f64(ctx, &g, in[0].data, in[1].data, out->data);
    if (out->dtype == AMBER_FLOAT32)
        return conv_run_f32(ctx, &g, in[0].data, in[1].data, out->data, true);
    return conv_run_f64(ctx, &g, in[0].data, in[1].data, out->data, true);
}

amber_status k_conv2d_weight_grad(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                                  const am_attrs *a, amber_tensor *out) {
    (void)op, (void)n;
    conv_geom g;
    geom(&g, in[0].shape, out->shape, in[1].shape, a);
    if (batched(&g))
        return out->dtype == AMBER_FLOAT32
                   ? conv_dw_batched_f32(ctx, &g, in[0].data, in[1].data, out->data)
                   : conv_dw_batched_f64(ctx, &g, in[0].data, in[1].data, out->data);
    if (out->dtype == AMBER_FLOAT32)
        return conv_dw_f32(ctx, &g, in[0].data, in[1].data, out->data);
    return conv_dw_f64(ctx, &g, in[0].data, in[1].data, out->data);
}
