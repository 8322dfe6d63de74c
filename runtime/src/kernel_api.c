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
    amber_status st = am_pool_create((int)n, &c->pool, &c->err);
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
    am_ctx kc = {&ctx->err, &ctx->scratch, ctx->pool, 0u, NULL};
    st = op->kernel(op, &kc, inputs, n, &kernel->attrs, output);
    am_arena_reset(&ctx->scratch);
    return st;
}
