#include "ops.h"

#include <math.h>
#include <string.h>

static const am_op OPS[] = {
#define X(id, name, nin, dts, attrs, since, kind, infer, kernel) \
    {AM_OP_##id, name, nin, dts, attrs, since, AM_KIND_##kind, infer, kernel},
#include "ops.def"
#undef X
};
_Static_assert(AM_ARRAY_LEN(OPS) == AM_OP_COUNT, "op table size");

size_t amber_op_count(void) { return AM_OP_COUNT; }

const char *amber_op_name(size_t i) { return i < AM_OP_COUNT ? OPS[i].name : NULL; }

const am_op *am_op_get(am_op_id id) {
    return (int)id >= 0 && id < AM_OP_COUNT ? &OPS[id] : NULL;
}

const am_op *am_op_find(const char *name) {
    for (size_t i = 0; i < AM_OP_COUNT; i++)
        if (strcmp(OPS[i].name, name) == 0) return &OPS[i];
    return NULL;
}

int am_op_since(const am_op *op) { return op->since; }

/* ---------------------------------------------------------------- attributes */

/* An integer, or a dim expression evaluated with syms. */
static amber_status int_value(const am_op *op, const char *name, const am_json *v,
                              const am_symbols *syms, int64_t *out, am_error *err) {
    if (v->type == AM_JSON_NUMBER && v->is_int) {
        *out = v->i;
        return AMBER_OK;
    }
    if (v->type == AM_JSON_STRING && syms) {
        amber_status st = am_dim_eval(v->str, v->len, syms, out, err);
        if (st != AMBER_OK)
            return am_fail(err, st, "%s: attribute %s: %.300s", op->name, name, err ? err->msg : "");
        return AMBER_OK;
    }
    return am_fail(err, AMBER_ERR_FORMAT, "%s: attribute %s must be an integer%s", op->name, name,
                   syms ? " or a dim expression" : "");
}

static amber_status int_list(const am_op *op, const char *name, const am_json_doc *d,
                             const am_json *v, const am_symbols *syms, int want, int64_t *out,
                             int *n, am_error *err) {
    if (v->type != AM_JSON_ARRAY)
        return am_fail(err, AMBER_ERR_FORMAT, "%s: attribute %s must be a list of integers",
                       op->name, name);
    if (v->count > AMBER_MAX_RANK || (want >= 0 && v->count != (uint32_t)want))
        return am_fail(err, AMBER_ERR_SHAPE, "%s: attribute %s has %u entries (%s %d)", op->name,
                       name, (unsigned)v->count, want >= 0 ? "expects" : "at most",
                       want >= 0 ? want : AMBER_MAX_RANK);
    int i = 0;
    for (const am_json *e = am_json_first(d, v); e; e = am_json_next(d, e)) {
        amber_status st = int_value(op, name, e, syms, &out[i++], err);
        if (st != AMBER_OK) return st;
    }
    *n = i;
    return AMBER_OK;
}

/* Where attribute `name` is stored, and its list length if fixed. */
static amber_status store_attr(const am_op *op, const char *name, const char *type,
                               const am_json_doc *d, const am_json *v, const am_symbols *syms,
                               am_attrs *a, am_error *err) {
    int dummy;
    if (!strcmp(type, "int") || !strcmp(type, "dim")) {
        int64_t *dst = !strcmp(name, "axis") ? &a->axis
                       : !strcmp(name, "groups") ? &a->groups
                       : !strcmp(name, "value") ? &a->dim
                       : NULL;
        if (!dst) goto unknown;
        return int_value(op, name, v, syms, dst, err);
    }
    if (!strcmp(type, "bool")) {
        if (v->type != AM_JSON_TRUE && v->type != AM_JSON_FALSE)
            return am_fail(err, AMBER_ERR_FORMAT, "%s: attribute %s must be true or false",
                           op->name, name);
        bool *dst = !strcmp(name, "keepdims") ? &a->keepdims
                    : !strcmp(name, "ceil_mode") ? &a->ceil_mode
                    : !strcmp(name, "count_include_pad") ? &a->count_include_pad
                    : NULL;
        if (!dst) goto unknown;
        *dst = v->type == AM_JSON_TRUE;
        return AMBER_OK;
    }
    if (!strcmp(type, "float")) {
        if (strcmp(name, "value")) goto unknown;
        if (v->type == AM_JSON_NUMBER) {
            a->value = v->num;
        } else if (v->type == AM_JSON_STRING && !strcmp(v->str, "nan")) {
            a->value = NAN;
        } else if (v->type == AM_JSON_STRING && !strcmp(v->str, "inf")) {
            a->value = INFINITY;
        } else if (v->type == AM_JSON_STRING && !strcmp(v->str, "-inf")) {
            a->value = -INFINITY;
        } else {
            return am_fail(err, AMBER_ERR_FORMAT, "%s: attribute %s must be a number, \"nan\", "
                           "\"inf\" or \"-inf\"", op->name, name);
        }
        return AMBER_OK;
    }
    if (!strcmp(type, "dtype")) {
        if (v->type == AM_JSON_STRING)
            for (int t = 0; t <= AMBER_INT16; t++)
                if (!strcmp(v->str, amber_dtype_name((amber_dtype)t))) {
                    a->dtype = (amber_dtype)t;
                    return AMBER_OK;
                }
        return am_fail(err, AMBER_ERR_DTYPE, "%s: attribute %s must name a dtype "
                       "(float32, float64, int32, int64, bool, float16, bfloat16, int8, uint8, "
                       "int16)", op->name, name);
    }
    if (!strcmp(type, "int[]") || !strcmp(type, "dim[]")) {
#define LIST(n) if (!strcmp(name, #n)) return int_list(op, name, d, v, syms, -1, a->n, &a->n_##n, err)
        LIST(axes);
        LIST(perm);
        LIST(shape);
        LIST(starts);
        LIST(lo);
        LIST(stops);
        LIST(hi);
        LIST(steps);
        LIST(interior);
#undef LIST
        goto unknown;
    }
    if (!strcmp(type, "int[2]")) {
        int64_t *dst = !strcmp(name, "stride") ? a->stride
                       : !strcmp(name, "dilation") ? a->dilation
                       : !strcmp(name, "input_hw") ? a->hw
                       : !strcmp(name, "kernel_hw") ? a->kernel
                       : NULL;
        if (!dst) goto unknown;
        return int_list(op, name, d, v, syms, 2, dst, &dummy, err);
    }
    if (!strcmp(type, "int[4]") && !strcmp(name, "padding"))
        return int_list(op, name, d, v, syms, 4, a->padding, &dummy, err);
unknown:
    return am_fail(err, AMBER_ERR_INTERNAL, "%s: no storage for attribute %s:%s", op->name,
                   name, type);
}

amber_status am_attrs_decode(const am_op *op, const am_json_doc *d, const am_json *obj,
                             const am_symbols *syms, am_attrs *a, am_error *err) {
    memset(a, 0, sizeof *a);
    if (obj && obj->type != AM_JSON_OBJECT)
        return am_fail(err, AMBER_ERR_FORMAT, "%s: attributes must be a JSON object", op->name);
    size_t given = obj ? obj->count : 0, used = 0;
    const char *s = op->attrs;
    while (*s) {
        char name[32], type[16];
        const char *colon = strchr(s, ':'), *end = strchr(s, ',');
        if (!end) end = s + strlen(s);
        if (!colon || colon > end || (size_t)(colon - s) >= sizeof name ||
            (size_t)(end - colon - 1) >= sizeof type)
            return am_fail(err, AMBER_ERR_INTERNAL, "%s: bad attribute schema", op->name);
        memcpy(name, s, (size_t)(colon - s));
        name[colon - s] = '\0';
        memcpy(type, colon + 1, (size_t)(end - colon - 1));
        type[end - colon - 1] = '\0';
        const am_json *v = obj ? am_json_get(d, obj, name) : NULL;
        if (!v) return am_fail(err, AMBER_ERR_FORMAT, "%s: missing attribute %s", op->name, name);
        amber_status st = store_attr(op, name, type, d, v, syms, a, err);
        if (st != AMBER_OK) return st;
        used++;
        s = *end ? end + 1 : end;
    }
    if (given != used) {
        for (const am_json *c = am_json_first(d, obj); c; c = am_json_next(d, c)) {
            const char *p = op->attrs;
            bool known = false;
            size_t kl = c->key_len;
            while (*p && !known) {
                known = !strncmp(p, c->key, kl) && p[kl] == ':';
                p = strchr(p, ',');
                p = p ? p + 1 : "";
            }
            if (!known)
                return am_fail(err, AMBER_ERR_FORMAT, "%s: unknown attribute \"%.60s\"", op->name,
                               c->key);
        }
    }
    return AMBER_OK;
}

/* ---------------------------------------------------------------- running one op */

amber_status am_op_infer(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                         amber_tensor *out, am_error *err) {
    if (n < 0 || (op->n_inputs >= 0 ? n != op->n_inputs : n < 1))
        return am_fail(err, AMBER_ERR_INVALID_ARGUMENT, "%s: takes %s%d inputs, got %d",
                       op->name, op->n_inputs < 0 ? "at least " : "",
                       op->n_inputs < 0 ? 1 : op->n_inputs, n);
    for (int i = 0; i < n; i++) {
        amber_status st = am_tensor_check(&in[i], NULL, NULL, err);
        if (st != AMBER_OK)
            return am_fail(err, st, "%s: input %d: %.400s", op->name, i, err ? err->msg : "");
    }
    if (n > 0 && !(op->dtypes & (1u << in[0].dtype)))
        return am_fail(err, AMBER_ERR_DTYPE, "%s: dtype %s is not supported", op->name,
                       amber_dtype_name(in[0].dtype));
    memset(out, 0, sizeof *out);
    amber_status st = op->infer(op, in, n, a, out, err);
    if (st != AMBER_OK) return st;
    return am_tensor_check(out, NULL, NULL, err);
}

amber_status am_op_run(const am_op *op, am_ctx *ctx, am_arena *out_arena,
                       const amber_tensor *in, int n, const am_attrs *a, amber_tensor *out) {
    amber_status st = am_op_infer(op, in, n, a, out, ctx->err);
    if (st != AMBER_OK) return st;
    size_t nbytes;
    st = am_tensor_check(out, NULL, &nbytes, ctx->err);
    if (st == AMBER_OK) st = am_arena_alloc(out_arena, nbytes, &out->data, ctx->err);
    if (st != AMBER_OK) return st;
    for (int i = 0; i < n; i++) {
        size_t b;
        am_tensor_check(&in[i], NULL, &b, NULL);
        if (b && !in[i].data)
            return am_fail(ctx->err, AMBER_ERR_INVALID_ARGUMENT, "%s: input %d has no data",
                           op->name, i);
    }
    return am_kernel_call(op, ctx, in, n, a, out);
}

/* ---------------------------------------------------------------- strided iteration */

void am_contig_strides(const int64_t *shape, int rank, size_t esize, int64_t *strides) {
    int64_t s = (int64_t)esize;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i] ? shape[i] : 1;
    }
}

void am_bcast_strides(const amber_tensor *t, const int64_t *out_shape, int out_rank,
                      int64_t *strides) {
    int64_t own[AMBER_MAX_RANK];
    am_contig_strides(t->shape, t->rank, amber_dtype_size(t->dtype), own);
    int lead = out_rank - t->rank;
    for (int i = 0; i < out_rank; i++) {
        int j = i - lead;
        strides[i] = (j < 0 || (t->shape[j] == 1 && out_shape[i] != 1)) ? 0 : own[j];
    }
}

void am_iter_init(am_iter *it, int nops, int rank, const int64_t *shape,
                  int64_t strides[][AMBER_MAX_RANK]) {
    it->nops = nops;
    it->rank = 0;
    /* Drop size-1 dims, then merge dim i into the following kept dim when contiguous. */
    for (int d = 0; d < rank; d++) {
        if (shape[d] == 1) continue;
        int r = it->rank;
        if (r > 0) {
            bool merge = true;
            for (int k = 0; k < nops; k++)
                if (it->strides[k][r - 1] != strides[k][d] * shape[d]) merge = false;
            if (merge) {
                it->shape[r - 1] *= shape[d];
                for (int k = 0; k < nops; k++) it->strides[k][r - 1] = strides[k][d];
                continue;
            }
        }
        it->shape[r] = shape[d];
        for (int k = 0; k < nops; k++) it->strides[k][r] = strides[k][d];
        it->rank++;
    }
    if (it->rank == 0) {
        it->rank = 1;
        it->shape[0] = 1;
        for (int k = 0; k < nops; k++) it->strides[k][0] = 0;
    }
    for (int d = 0; d < rank; d++)
        if (shape[d] == 0) it->shape[0] = 0; /* empty: nothing to visit */
}

void am_iter_run(const am_iter *it, char *const *base, am_row_fn fn, void *ud) {
    int r = it->rank, nops = it->nops;
    for (int d = 0; d < r; d++)
        if (it->shape[d] == 0) return;
    int64_t idx[AMBER_MAX_RANK] = {0};
    char *p[AM_ITER_MAX_OPS];
    int64_t s[AM_ITER_MAX_OPS];
    for (int k = 0; k < nops; k++) {
        p[k] = base[k];
        s[k] = it->strides[k][r - 1];
    }
    int64_t inner = it->shape[r - 1];
    for (;;) {
        char *row[AM_ITER_MAX_OPS];
        for (int k = 0; k < nops; k++) row[k] = p[k];
        fn(row, s, inner, ud);
        int d = r - 2;
        for (; d >= 0; d--) {
            for (int k = 0; k < nops; k++) p[k] += it->strides[k][d];
            if (++idx[d] < it->shape[d]) break;
            for (int k = 0; k < nops; k++) p[k] -= it->strides[k][d] * it->shape[d];
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}

/* am_iter_run_pool: tasks take slices of the outermost dim along which operand 0 moves
 * (a reduction's accumulators stay put along reduced dims, whose rows must add in turn). */
typedef struct iter_job {
    const am_iter *it;
    char *const *base;
    am_row_fn fn;
    void *ud;
    int d;
    int64_t chunk;
} iter_job;

static void iter_task(void *ud, int64_t t, int worker) {
    (void)worker;
    const iter_job *j = (const iter_job *)ud;
    am_iter sub = *j->it;
    int64_t lo = t * j->chunk, left = sub.shape[j->d] - lo;
    sub.shape[j->d] = left < j->chunk ? left : j->chunk;
    char *base[AM_ITER_MAX_OPS];
    for (int k = 0; k < sub.nops; k++) base[k] = j->base[k] + lo * sub.strides[k][j->d];
    am_iter_run(&sub, base, j->fn, j->ud);
}

void am_iter_run_pool(am_pool *pool, const am_iter *it, char *const *base, am_row_fn fn,
                      void *ud) {
    int d = 0;
    int64_t numel = 1, tasks = 0;
    for (int i = 0; i < it->rank; i++) numel *= it->shape[i];
    while (d < it->rank && it->strides[0][d] == 0) d++;
    if (d < it->rank && numel >= AM_ELEMENTS_PARALLEL_MIN && am_pool_awake(pool)) {
        /* NOTE: slices of the innermost dim shorten every row: 16 elements or more each */
        int64_t most = d == it->rank - 1 ? it->shape[d] / 16 : it->shape[d];
        tasks = 4 * (int64_t)am_pool_size(pool);
        if (tasks > most) tasks = most;
    }
    if (tasks < 2) {
        am_iter_run(it, base, fn, ud);
        return;
    }
    iter_job j = {it, base, fn, ud, d, (it->shape[d] + tasks - 1) / tasks};
    am_pool_run(pool, (it->shape[d] + j.chunk - 1) / j.chunk, iter_task, &j);
}
