/* The layer-norm kernel (attn.h, am_norm): one pass per row over the nodes it replaces. */
#include "attn.h"

#include <math.h>
#include <string.h>

typedef struct norm_job {
    const am_norm *nm;
    const char *x, *w, *b;
    char *out;
    int64_t rows, h;
} norm_job;

/* NOTE: each step is the node it replaces, in the same precision and order: k_reduce's
 * sum of a contiguous row (in double, eight partial sums from 16 elements on), the
 * correctly rounded divisions, sqrt and products of the elementwise loops. */
#define NORM_IMPL(SUF, T, SQRT)                                                              \
    static double rowsum_##SUF(const T *x, int64_t n, bool square) {                         \
        double part[8] = {0}, sum = 0.0;                                                     \
        if (n < 16) {                                                                        \
            for (int64_t c = 0; c < n; c++) sum += (double)(square ? (T)(x[c] * x[c]) : x[c]); \
            return sum;                                                                      \
        }                                                                                    \
        int64_t c = 0;                                                                       \
        for (; c + 8 <= n; c += 8)                                                           \
            for (int q = 0; q < 8; q++)                                                      \
                part[q] += (double)(square ? (T)(x[c + q] * x[c + q]) : x[c + q]);           \
        for (; c < n; c++) part[c % 8] += (double)(square ? (T)(x[c] * x[c]) : x[c]);        \
        return ((part[0] + part[1]) + (part[2] + part[3])) +                                 \
               ((part[4] + part[5]) + (part[6] + part[7]));                                  \
    }                                                                                        \
                                                                                             \
    static void norm_rows_##SUF(void *ud, int64_t task, int worker) {                        \
        (void)worker;                                                                        \
        const norm_job *j = (const norm_job *)ud;                                            \
        const am_norm *nm = j->nm;                                                           \
        int64_t h = j->h, r0 = task * 64, r1 = r0 + 64 < j->rows ? r0 + 64 : j->rows;        \
        const T *w = (const T *)(const void *)j->w, *b = (const T *)(const void *)j->b;      \
        for (int64_t r = r0; r < r1; r++) {                                                  \
            const T *x = (const T *)(const void *)j->x + r * h;                              \
            T *y = (T *)(void *)j->out + r * h;                                              \
            T mu = (T)rowsum_##SUF(x, h, false) / (T)nm->count1;                             \
            for (int64_t c = 0; c < h; c++) y[c] = x[c] - mu; /* xc, kept in y */            \
            T var = (T)rowsum_##SUF(y, h, true) / (T)nm->count2;                             \
            T inv = (T)nm->one / SQRT((T)(var + (T)nm->eps));                                \
            for (int64_t c = 0; c < h; c++) {                                                \
                T v = y[c] * inv;                                                            \
                if (w) v = v * w[c];                                                         \
                if (b) v = v + b[c];                                                         \
                y[c] = v;                                                                    \
            }                                                                                \
        }                                                                                    \
    }

NORM_IMPL(f32, float, sqrtf)
NORM_IMPL(f64, double, sqrt)

amber_status am_layernorm_run(const am_norm *nm, am_ctx *ctx, const amber_tensor *ext,
                              amber_tensor *out) {
    const amber_tensor *x = &ext[0];
    norm_job j = {nm, (const char *)x->data, NULL, NULL, (char *)out->data, 0, 0};
    if (x->rank < 1 || x->rank != out->rank)
        return am_fail(ctx->err, AMBER_ERR_SHAPE, "layer norm: operand shapes do not match");
    j.h = x->shape[x->rank - 1];
    int64_t numel = am_numel(x);
    if (numel == 0 || j.h == 0) return AMBER_OK;
    j.rows = numel / j.h;
    int k = 1;
    for (int i = 0; i < 2; i++) {
        if (!(i == 0 ? nm->has_w : nm->has_b)) continue;
        const amber_tensor *t = &ext[k++];
        if (am_numel(t) != j.h || t->shape[t->rank - 1] != j.h || t->dtype != x->dtype)
            return am_fail(ctx->err, AMBER_ERR_SHAPE, "layer norm: an affine parameter "
                           "does not match the normalised dim");
        if (i == 0) j.w = (const char *)t->data;
        else j.b = (const char *)t->data;
    }
    int64_t tasks = (j.rows + 63) / 64;
    am_task_fn fn = x->dtype == AMBER_FLOAT32 ? norm_rows_f32 : norm_rows_f64;
    am_pool *pool = (double)numel * 8.0 >= AM_PARALLEL_MIN && tasks > 1 ? ctx->pool : NULL;
    if (pool) am_pool_run(pool, tasks, fn, &j);
    else
        for (int64_t t = 0; t < tasks; t++) fn(&j, t, 0);
    return AMBER_OK;
}
