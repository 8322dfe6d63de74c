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
 * sum of a contiguous row (AM_ROWSUM), the correctly rounded divisions, sqrt and
 * products of the elementwise loops (on vectors of W lanes: IEEE operations lane by
 * lane, never contracted, so the same bits). */
#define NORM_IMPL(SUF, T, V8, VT, SQRT, ATTR)                                                \
    AM_ROWSUM(rowsum_##SUF, T, V8, ATTR)                                                     \
    ATTR static void norm_rows_##SUF(void *ud, int64_t task, int worker) {                   \
        (void)worker;                                                                        \
        enum { W = sizeof(VT) / sizeof(T) };                                                 \
        const norm_job *j = (const norm_job *)ud;                                            \
        const am_norm *nm = j->nm;                                                           \
        int64_t h = j->h, r0 = task * 64, r1 = r0 + 64 < j->rows ? r0 + 64 : j->rows;        \
        const T *w = (const T *)(const void *)j->w, *b = (const T *)(const void *)j->b;      \
        for (int64_t r = r0; r < r1; r++) {                                                  \
            const T *x = (const T *)(const void *)j->x + r * h;                              \
            T *y = (T *)(void *)j->out + r * h;                                              \
            T mu = (T)rowsum_##SUF(x, h, false) / (T)nm->count1;                             \
            int64_t c = 0;                                                                   \
            for (; c + W <= h; c += W) { /* xc, kept in y */                                 \
                VT v;                                                                        \
                memcpy(&v, x + c, sizeof v);                                                 \
                v = v - mu;                                                                  \
                memcpy(y + c, &v, sizeof v);                                                 \
            }                                                                                \
            for (; c < h; c++) y[c] = x[c] - mu;                                             \
            T var = (T)rowsum_##SUF(y, h, true) / (T)nm->count2;                             \
            T inv = (T)nm->one / SQRT((T)(var + (T)nm->eps));                                \
            for (c = 0; c + W <= h; c += W) {                                                \
                VT v, u;                                                                     \
                memcpy(&v, y + c, sizeof v);                                                 \
                v = v * inv;                                                                 \
                if (w) memcpy(&u, w + c, sizeof u), v = v * u;                               \
                if (b) memcpy(&u, b + c, sizeof u), v = v + u;                               \
                memcpy(y + c, &v, sizeof v);                                                 \
            }                                                                                \
            for (; c < h; c++) {                                                             \
                T v = y[c] * inv;                                                            \
                if (w) v = v * w[c];                                                         \
                if (b) v = v + b[c];                                                         \
                y[c] = v;                                                                    \
            }                                                                                \
        }                                                                                    \
    }

/* the portable builds on 16-byte vectors (SSE2's on x86-64): small code */
typedef float norm_v4f __attribute__((vector_size(16)));
typedef double norm_v2d __attribute__((vector_size(16)));
typedef float norm_v16f __attribute__((vector_size(64)));
NORM_IMPL(f32, float, am_v8f, norm_v4f, sqrtf, )
NORM_IMPL(f64, double, am_v8d, norm_v2d, sqrt, )
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
NORM_IMPL(f32_avx512, float, am_v8f, norm_v16f, sqrtf, __attribute__((target("avx512f"))))
#define NORM_F32 (am_cpu_isa() >= AM_GEMM_ISA_AVX512 ? norm_rows_f32_avx512 : norm_rows_f32)
#else
#define NORM_F32 norm_rows_f32
#endif

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
    am_task_fn fn = x->dtype == AMBER_FLOAT32 ? NORM_F32 : norm_rows_f64;
    am_pool *pool = (double)numel * 8.0 >= AM_PARALLEL_MIN && tasks > 1 ? ctx->pool : NULL;
    if (pool) am_pool_run(pool, tasks, fn, &j);
    else
        for (int64_t t = 0; t < tasks; t++) fn(&j, t, 0);
    return AMBER_OK;
}
