/* Single primitives outside a model (amber.h, "Single kernels"): the kernels a session
 * runs, called one at a time on caller memory, as an eager front end does. A kernel
 * context holds what a session would (intra-op threads, scratch memory, the last error);
 * a prepared kernel is an op with its decoded attributes. */
#include "ops.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct amber_kernel_context {
    am_error err;
    am_arena scratch;
    am_pool *pool;
    int32_t threads;
};

struct amber_kernel {
    const am_op *op;
    am_attrs attrs;
};

amber_status amber_kernel_context_create(int32_t threads, amber_kernel_context **out) {
    if (!out) return AMBER_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (threads < 0) return AMBER_ERR_INVALID_ARGUMENT;
    long n = threads ? threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 64) n = 64;
    amber_kernel_context *c = (amber_kernel_context *)calloc(1, sizeof *c);
    if (!c) return AMBER_ERR_NO_MEMORY;
    am_arena_init(&c->scratch, 0);
    c->threads = (int32_t)n;
    amber_status st = am_pool_create((int)n, AM_POOL_SPIN_EAGER_NS, AM_POOL_WAKE_EAGER, &c->pool,
                                     &c->err);
    if (st != AMBER_OK) {
        free(c);
        return st;
    }
    *out = c;
    return AMBER_OK;
}

void amber_kernel_context_free(amber_kernel_context *ctx) {
    if (!ctx) return;
    am_pool_free(ctx->pool);
    am_arena_free(&ctx->scratch);
    free(ctx);
}

const char *amber_kernel_context_error(const amber_kernel_context *ctx) {
    return ctx ? ctx->err.msg : "";
}

int32_t amber_kernel_context_threads(const amber_kernel_context *ctx) {
    return ctx ? ctx->threads : 0;
}

amber_status amber_kernel_prepare(amber_kernel_context *ctx, const char *op,
                                  const char *attrs_json, amber_kernel **out) {
    if (!ctx || !op || !out) return AMBER_ERR_INVALID_ARGUMENT;
    *out = NULL;
    am_error_clear(&ctx->err);
    const am_op *o = am_op_find(op);
    if (!o) return am_fail(&ctx->err, AMBER_ERR_NOT_FOUND, "unknown op \"%.100s\"", op);
    am_json_doc doc = {0};
    const am_json *root = NULL;
    amber_status st = AMBER_OK;
    if (attrs_json && *attrs_json) {
        am_json_limits lim = {1 << 16, 8, 1 << 12};
        st = am_json_parse(attrs_json, strlen(attrs_json), &lim, &doc, &ctx->err);
        if (st == AMBER_OK) root = am_json_root(&doc);
    }
    amber_kernel *k = NULL;
    if (st == AMBER_OK) {
        k = (amber_kernel *)calloc(1, sizeof *k);
        if (!k) st = am_fail(&ctx->err, AMBER_ERR_NO_MEMORY, "out of memory");
    }
    if (st == AMBER_OK) {
        k->op = o;
        st = am_attrs_decode(o, &doc, root, NULL, &k->attrs, &ctx->err);
    }
    am_json_free(&doc);
    if (st != AMBER_OK) {
        free(k);
        return st;
    }
    *out = k;
    return AMBER_OK;
}

void amber_kernel_free(amber_kernel *kernel) { free(kernel); }

static bool b_empty(const amber_tensor *t) {
    for (int i = 0; i < t->rank; i++)
        if (t->shape[i] == 0) return true;
    return false;
}

static bool same_desc(const amber_tensor *a, const amber_tensor *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

amber_status amber_kernel_run(amber_kernel_context *ctx, const amber_kernel *kernel,
                              const amber_tensor *inputs, size_t n_inputs,
                              amber_tensor *output) {
    if (!ctx || !kernel || !output || (n_inputs && !inputs) || n_inputs > INT32_MAX)
        return AMBER_ERR_INVALID_ARGUMENT;
    const am_op *op = kernel->op;
    int n = (int)n_inputs;
    amber_tensor want;
    amber_status st = am_op_infer(op, inputs, n, &kernel->attrs, &want, &ctx->err);
    if (st != AMBER_OK) return st;
    if (!output->data) { /* a question: what would the result be? */
        am_tensor_copy(output, &want);
        output->data = NULL;
        return AMBER_OK;
    }
    if (!same_desc(output, &want)) {
        char got_s[256], want_s[256];
        return am_fail(&ctx->err, AMBER_ERR_SHAPE,
                       "%s: the output is %s%s but the result is %s%s", op->name,
                       amber_dtype_name(output->dtype) ? amber_dtype_name(output->dtype) : "?",
                       am_shape_str(output->shape,
                                    output->rank < 0 || output->rank > AMBER_MAX_RANK
                                        ? 0
                                        : output->rank,
                                    got_s, sizeof got_s),
                       amber_dtype_name(want.dtype),
                       am_shape_str(want.shape, want.rank, want_s, sizeof want_s));
    }
    for (int i = 0; i < n; i++) {
        size_t b;
        am_tensor_check(&inputs[i], NULL, &b, NULL);
        if (b && !inputs[i].data)
            return am_fail(&ctx->err, AMBER_ERR_INVALID_ARGUMENT, "%s: input %d has no data",
                           op->name, i);
    }
    am_ctx kc = {&ctx->err, &ctx->scratch, ctx->pool, 0u, NULL, NULL, false};
    st = am_kernel_call(op, &kc, inputs, n, &kernel->attrs, output);
    am_arena_reset(&ctx->scratch);
    return st;
}

/* ---------------------------------------------------------------- strided matmul */

/* dst[r * cols + c] = src[r * rs + c * cs] for one matrix of z-byte elements, in 32 x 32
 * tiles: a transposed view (rs = 1) is then read a few cache lines at a time instead of
 * one element per line. */
static void copy_matrix(char *dst, const char *src, int64_t rows, int64_t cols, int64_t rs,
                        int64_t cs, size_t z) {
    enum { TILE = 32 };
    for (int64_t r0 = 0; r0 < rows; r0 += TILE)
        for (int64_t c0 = 0; c0 < cols; c0 += TILE) {
            int64_t r1 = r0 + TILE < rows ? r0 + TILE : rows;
            int64_t c1 = c0 + TILE < cols ? c0 + TILE : cols;
            for (int64_t r = r0; r < r1; r++) {
                const char *s = src + (r * rs + c0 * cs) * (int64_t)z;
                char *d = dst + (r * cols + c0) * (int64_t)z;
                if (z == 4)
                    for (int64_t c = c0; c < c1; c++, s += cs * 4, d += 4) memcpy(d, s, 4);
                else
                    for (int64_t c = c0; c < c1; c++, s += cs * 8, d += 8) memcpy(d, s, 8);
            }
        }
}

/* Contiguous copy of a strided float tensor (element strides) into scratch: the last two
 * dims as tiled matrices, the others by an index walk. */
static amber_status gather(amber_kernel_context *ctx, const amber_tensor *t,
                           const int64_t *st, void **out) {
    size_t z = amber_dtype_size(t->dtype), nbytes;
    const char *src = (const char *)t->data; /* NOTE: out may be &t->data */
    amber_status s = am_tensor_check(t, NULL, &nbytes, &ctx->err);
    if (s == AMBER_OK) s = am_arena_alloc(&ctx->scratch, nbytes, out, &ctx->err);
    if (s != AMBER_OK || nbytes == 0) return s;
    int r = t->rank;
    int64_t rows = r >= 2 ? t->shape[r - 2] : 1, cols = r >= 1 ? t->shape[r - 1] : 1;
    int64_t rs = r >= 2 ? st[r - 2] : 0, cs = r >= 1 ? st[r - 1] : 0;
    int64_t idx[AMBER_MAX_RANK] = {0}, off = 0, per = rows * cols;
    int64_t total = (int64_t)(nbytes / z);
    char *dst = (char *)*out;
    for (int64_t e = 0; e < total; e += per) {
        copy_matrix(dst + (size_t)e * z, src + off * (int64_t)z, rows, cols, rs, cs, z);
        for (int d = r - 3; d >= 0; d--) {
            off += st[d];
            if (++idx[d] < t->shape[d]) break;
            off -= st[d] * t->shape[d];
            idx[d] = 0;
        }
    }
    return AMBER_OK;
}

/* Whether the rows of x (all dims but the last) are evenly spaced: then the batch dims
 * and the row dim fold into one row dim with stride st[rank - 2]. */
static bool rows_fold(const amber_tensor *x, const int64_t *st) {
    for (int d = 0; d < x->rank - 2; d++)
        if (x->shape[d] > 1 && st[d] != st[d + 1] * x->shape[d + 1]) return false;
    return true;
}

/* matmul on strided float operands, the same bits as the matmul kernel on contiguous
 * copies: the same products on the same paths (the batch fold of k_matmul; a B read
 * directly by few-row products only where k_matmul would read it too). */
static amber_status matmul_strided(amber_kernel_context *ctx, am_ctx *kc,
                                   const amber_tensor *in, const int64_t *const *strides,
                                   amber_tensor *out) {
    amber_tensor x = in[0], y = in[1];
    int64_t sx[AMBER_MAX_RANK], sy[AMBER_MAX_RANK];
    am_contig_strides(x.shape, x.rank, 1, sx);
    am_contig_strides(y.shape, y.rank, 1, sy);
    if (strides && strides[0]) memcpy(sx, strides[0], sizeof(int64_t) * (size_t)x.rank);
    if (strides && strides[1]) memcpy(sy, strides[1], sizeof(int64_t) * (size_t)y.rank);
    int br = out->rank - 2;
    int64_t m = x.shape[x.rank - 2], k = x.shape[x.rank - 1], n = y.shape[y.rank - 1];
    int64_t batches = 1, xb = 1, yb = 1;
    for (int d = 0; d < br; d++) batches *= out->shape[d];
    for (int d = 0; d < x.rank - 2; d++) xb *= x.shape[d];
    for (int d = 0; d < y.rank - 2; d++) yb *= y.shape[d];
    bool fold = yb == 1 && xb == batches;
    amber_status st = AMBER_OK;
    /* NOTE: few-row products (GEMV_ROWS in gemm.c, at most 2 today) read a B with unit
     * column stride directly and pack any other: a strided B is copied for them. */
    int64_t rows = fold ? m * batches : m;
    if (rows <= 8 && sy[y.rank - 1] != 1) {
        st = gather(ctx, &y, sy, &y.data);
        am_contig_strides(y.shape, y.rank, 1, sy);
    }
    if (st == AMBER_OK && fold && !rows_fold(&x, sx)) {
        st = gather(ctx, &x, sx, &x.data);
        am_contig_strides(x.shape, x.rank, 1, sx);
    }
    if (st != AMBER_OK) return st;
    am_matmul_batch b = {fold ? 0 : br, out->shape, {0}, {0}, fold ? m * batches : m, n, k,
                         sx[x.rank - 2], sx[x.rank - 1], sy[y.rank - 2], sy[y.rank - 1],
                         x.data, y.data, out->data, x.dtype == AMBER_FLOAT32};
    /* batch offsets (in elements) of x and y broadcast to the output's batch dims */
    for (int d = 0; d < x.rank - 2; d++) /* (unused when folded: b.br is 0) */
        b.bx[br - (x.rank - 2) + d] = x.shape[d] == 1 ? 0 : sx[d];
    for (int d = 0; d < y.rank - 2; d++)
        b.by[br - (y.rank - 2) + d] = y.shape[d] == 1 ? 0 : sy[d];
    return am_matmul_batch_run(kc, &b);
}

/* An elementwise op on strided inputs: its row loop over the given strides, as run_map
 * in k_elementwise.c does over contiguous ones (the same loop, so the same bits). */
static amber_status elementwise_strided(am_pool *pool, am_row_fn fn, const amber_tensor *in,
                                        const int64_t *const *strides, int n,
                                        amber_tensor *out) {
    int64_t st[AM_ITER_MAX_OPS][AMBER_MAX_RANK];
    char *base[AM_ITER_MAX_OPS] = {(char *)out->data};
    am_contig_strides(out->shape, out->rank, amber_dtype_size(out->dtype), st[0]);
    for (int i = 0; i < n; i++) {
        if (!strides[i]) {
            am_bcast_strides(&in[i], out->shape, out->rank, st[i + 1]);
        } else {
            int lead = out->rank - in[i].rank;
            int64_t z = (int64_t)amber_dtype_size(in[i].dtype);
            for (int d = 0; d < out->rank; d++)
                st[i + 1][d] = d < lead || in[i].shape[d - lead] == 1
                                   ? 0 : strides[i][d - lead] * z;
        }
        base[i + 1] = (char *)in[i].data;
    }
    am_iter it;
    am_iter_init(&it, n + 1, out->rank, out->shape, st);
    am_iter_run_pool(pool, &it, base, fn, NULL);
    return AMBER_OK;
}

amber_status amber_kernel_run_strided(amber_kernel_context *ctx, const amber_kernel *kernel,
                                      const amber_tensor *inputs,
                                      const int64_t *const *strides, size_t n_inputs,
                                      amber_tensor *output) {
    if (!strides) return amber_kernel_run(ctx, kernel, inputs, n_inputs, output);
    if (!ctx || !kernel || !output || !inputs) return AMBER_ERR_INVALID_ARGUMENT;
    const am_op *op = kernel->op;
    bool strided = false;
    for (size_t i = 0; i < n_inputs; i++) strided |= strides[i] != NULL;
    if (!strided) return amber_kernel_run(ctx, kernel, inputs, n_inputs, output);
    if (n_inputs > AM_ITER_MAX_OPS - 1) return AMBER_ERR_INVALID_ARGUMENT;
    int n = (int)n_inputs;
    amber_tensor want;
    amber_status st = am_op_infer(op, inputs, n, &kernel->attrs, &want, &ctx->err);
    if (st != AMBER_OK) return st;
    bool mm = op->id == AM_OP_MATMUL &&
              (inputs[0].dtype == AMBER_FLOAT32 || inputs[0].dtype == AMBER_FLOAT64);
    am_row_fn fn = mm ? NULL : am_elementwise_loop(op, inputs[0].dtype, want.dtype);
    if (!mm && !fn)
        return am_fail(&ctx->err, AMBER_ERR_INVALID_ARGUMENT,
                       "%s: strided inputs are accepted by float matmul and elementwise ops "
                       "only", op->name);
    if (!output->data || !same_desc(output, &want))
        return am_fail(&ctx->err, AMBER_ERR_SHAPE, "%s: the output does not match the result",
                       op->name);
    for (int i = 0; i < n; i++) {
        size_t b;
        am_tensor_check(&inputs[i], NULL, &b, NULL);
        if (b && !inputs[i].data)
            return am_fail(&ctx->err, AMBER_ERR_INVALID_ARGUMENT, "%s: input %d has no data",
                           op->name, i);
        for (int d = 0; strides[i] && d < inputs[i].rank; d++)
            if (strides[i][d] < 0)
                return am_fail(&ctx->err, AMBER_ERR_INVALID_ARGUMENT,
                               "%s: input %d has a negative stride", op->name, i);
    }
    am_ctx kc = {&ctx->err, &ctx->scratch, ctx->pool, 0u, NULL, NULL, false};
    if (b_empty(output))
        st = AMBER_OK;
    else if (mm)
        st = matmul_strided(ctx, &kc, inputs, strides, output);
    else
        st = elementwise_strided(ctx->pool, fn, inputs, strides, n, output);
    am_arena_reset(&ctx->scratch);
    return st;
}
