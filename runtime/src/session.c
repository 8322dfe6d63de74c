/* amber_session: runs entry points of a model's program by interpreting its functions
 * node by node (docs/format.md H.5). Values of one run live in the session arena, which
 * is reset (and its memory reused) at the start of the next run. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AM_MAX_CALL_DEPTH 1000

struct amber_session {
    const amber_model *model;
    am_error err;
    am_arena arena;   /* values of the current run */
    am_arena scratch; /* temporaries of one kernel call */
    am_pool *pool;    /* intra-op threads (NULL: the calling thread only) */
    int max_depth;
    int64_t iterations_left; /* loop iterations this run may still make (all loops) */
    /* Values of AM_HOIST_CACHED nodes, per function and value (data NULL: not yet), kept
     * across runs in separate allocations that count against the memory limit. */
    struct hoisted {
        uint32_t n_ready;
        amber_tensor *vals;
    } *hoisted;
    size_t hoisted_bytes;
    am_keep keep; /* data kernels derive from fixed inputs; counted in hoisted_bytes */
    /* Blocks of the arena released during the current run, reused best-fit. */
    size_t n_free, cap_free;
    struct free_block {
        void *ptr;
        size_t size;
    } *free_blocks;
};

static bool drop_kept(amber_session *s);

static amber_status value_alloc(amber_session *s, size_t size, void **out) {
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < s->n_free; i++)
        if (s->free_blocks[i].size >= size &&
            (best == SIZE_MAX || s->free_blocks[i].size < s->free_blocks[best].size))
            best = i;
    if (best != SIZE_MAX) {
        *out = s->free_blocks[best].ptr;
        s->free_blocks[best] = s->free_blocks[--s->n_free];
        return AMBER_OK;
    }
    amber_status st = am_arena_alloc(&s->arena, size, out, &s->err);
    if (st == AMBER_ERR_LIMIT && drop_kept(s)) st = am_arena_alloc(&s->arena, size, out, &s->err);
    return st;
}

static void value_release(amber_session *s, void *ptr, size_t size) {
    if (s->n_free == s->cap_free) {
        size_t cap = s->cap_free ? s->cap_free * 2 : 64;
        void *p = realloc(s->free_blocks, cap * sizeof *s->free_blocks);
        if (!p) return; /* the block stays in the arena until the run ends */
        s->free_blocks = p;
        s->cap_free = cap;
    }
    s->free_blocks[s->n_free].ptr = ptr;
    s->free_blocks[s->n_free++].size = size;
}

static amber_status keep_alloc(void *owner, size_t size, void **out);
static void keep_release(void *owner, void *data, size_t size);

amber_status amber_session_create(const amber_model *model, amber_session **out) {
    if (!out) return AMBER_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!model || model->failed) return AMBER_ERR_INVALID_ARGUMENT;
    amber_session *s = (amber_session *)calloc(1, sizeof *s);
    if (!s) return AMBER_ERR_NO_MEMORY;
    s->model = model;
    am_keep_init(&s->keep, keep_alloc, keep_release, s);
    size_t limit = (size_t)model->opts.memory_limit;
    am_arena_init(&s->arena, limit);
    am_arena_init(&s->scratch, limit);
    /* Calls recurse on the C stack: the depth is capped whatever the option says. */
    s->max_depth = model->opts.max_call_depth > 0 ? model->opts.max_call_depth : 256;
    if (s->max_depth > AM_MAX_CALL_DEPTH) s->max_depth = AM_MAX_CALL_DEPTH;
    long threads = model->opts.threads;
    if (threads <= 0) threads = sysconf(_SC_NPROCESSORS_ONLN);
    if (threads > 64) threads = 64;
    if (model->prog.n_funcs &&
        !(s->hoisted = (struct hoisted *)calloc(model->prog.n_funcs, sizeof *s->hoisted))) {
        amber_session_free(s);
        return AMBER_ERR_NO_MEMORY;
    }
    if (am_pool_create((int)threads, &s->pool, NULL) != AMBER_OK) {
        amber_session_free(s);
        return AMBER_ERR_NO_MEMORY;
    }
    *out = s;
    return AMBER_OK;
}

void amber_session_free(amber_session *s) {
    if (!s) return;
    am_keep_free(&s->keep);
    am_arena_free(&s->arena);
    am_arena_free(&s->scratch);
    am_pool_free(s->pool);
    free(s->free_blocks);
    for (uint32_t fi = 0; s->hoisted && fi < s->model->prog.n_funcs; fi++) {
        const am_func *f = &s->model->prog.funcs[fi];
        for (uint32_t v = 0; s->hoisted[fi].vals && v < f->n_values; v++)
            free(s->hoisted[fi].vals[v].data);
        free(s->hoisted[fi].vals);
    }
    free(s->hoisted);
    free(s);
}

const char *amber_session_error(const amber_session *s) { return s ? s->err.msg : "session is NULL"; }

static bool same_shape(const amber_tensor *t, const int64_t *shape, int rank) {
    if (t->rank != rank) return false;
    for (int i = 0; i < rank; i++)
        if (t->shape[i] != shape[i]) return false;
    return true;
}

/* Checks a value against its declared type, with the function's symbols bound. */
static amber_status check_type(amber_session *s, const am_type *t, const am_symbols *syms,
                               const amber_tensor *v, const char *what) {
    int64_t shape[AMBER_MAX_RANK];
    amber_status st = am_type_eval(t, syms, shape, &s->err);
    if (st != AMBER_OK) return st;
    if (v->dtype != t->dtype || !same_shape(v, shape, t->rank)) {
        char a[200], b[200];
        return am_fail(&s->err, v->dtype != t->dtype ? AMBER_ERR_DTYPE : AMBER_ERR_SHAPE,
                       "%s is %s%s, declared %s%s", what,
                       amber_dtype_name(v->dtype), am_shape_str(v->shape, v->rank, a, sizeof a),
                       amber_dtype_name(t->dtype), am_shape_str(shape, t->rank, b, sizeof b));
    }
    return AMBER_OK;
}

static amber_status run_function(amber_session *s, uint32_t fi, const amber_tensor *args,
                                 amber_tensor *results, int depth);

/* The run arena may hold what the hoisted values leave of the memory limit. */
static void set_arena_limit(amber_session *s) {
    size_t limit = (size_t)s->model->opts.memory_limit;
    if (limit) s->arena.limit = limit > s->hoisted_bytes ? limit - s->hoisted_bytes : 1;
}

/* Memory for a hoisted value: it and the run arena share the memory limit. With err
 * NULL, a failure leaves no message (kept kernel data is optional). */
static amber_status hoisted_alloc_err(amber_session *s, size_t size, void **out, am_error *err) {
    size_t limit = (size_t)s->model->opts.memory_limit, need, total;
    if (!am_add_size(size ? size : 1, 63, &need))
        return am_fail(err, AMBER_ERR_LIMIT, "allocation of %zu bytes is too large", size);
    need &= ~(size_t)63;
    if (!am_add_size(s->hoisted_bytes, need, &total) ||
        (limit && (total > limit || s->arena.held > limit - total)))
        return am_fail(err, AMBER_ERR_LIMIT, "memory limit of %zu bytes exceeded (holding "
                       "%zu, need %zu more)", limit, s->hoisted_bytes + s->arena.held, need);
    *out = aligned_alloc(64, need);
    if (!*out) return am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory allocating %zu bytes", need);
    s->hoisted_bytes = total;
    set_arena_limit(s);
    return AMBER_OK;
}

static amber_status hoisted_alloc(amber_session *s, size_t size, void **out) {
    amber_status st = hoisted_alloc_err(s, size, out, &s->err);
    if (st == AMBER_ERR_LIMIT && drop_kept(s)) st = hoisted_alloc_err(s, size, out, &s->err);
    return st;
}

static amber_status keep_alloc(void *owner, size_t size, void **out) {
    return hoisted_alloc_err((amber_session *)owner, size, out, NULL);
}

static void hoisted_drop(amber_session *s, void *p, size_t size);

static void keep_release(void *owner, void *data, size_t size) {
    hoisted_drop((amber_session *)owner, data, size);
}

/* Kernel data kept for speed gives way when values need the memory (between kernels
 * only); it is not made again in this session. True if memory was freed. */
static bool drop_kept(amber_session *s) {
    if (!am_keep_drop(&s->keep)) return false;
    am_error_clear(&s->err); /* the failure that led here is retried */
    return true;
}

static void hoisted_drop(amber_session *s, void *p, size_t size) {
    free(p);
    s->hoisted_bytes -= ((size ? size : 1) + 63) & ~(size_t)63;
    set_arena_limit(s);
}

static bool scalar_true(const amber_tensor *t) {
    return t->dtype == AMBER_BOOL && t->rank == 0 && *(const uint8_t *)t->data != 0;
}

/* Loops keep their memory flat: the carries live in buffers allocated before the loop,
 * and everything an iteration allocated is released once its carries (and, for scan,
 * its ys) have been copied out. The free list is restored with the arena. */
typedef struct loop_mem {
    am_arena_mark mark;
    struct free_block *saved;
    size_t n_saved;
    void **bufs;
} loop_mem;

static amber_status loop_begin(amber_session *s, loop_mem *lm, const amber_tensor *carries,
                               int n) {
    amber_status st = am_arena_alloc(&s->arena, sizeof(void *) * (size_t)(n + 1),
                                     (void **)&lm->bufs, &s->err);
    for (int c = 0; st == AMBER_OK && c < n; c++) {
        size_t nb;
        am_tensor_check(&carries[c], NULL, &nb, NULL);
        st = value_alloc(s, nb, &lm->bufs[c]);
    }
    if (st != AMBER_OK) return st;
    lm->n_saved = s->n_free;
    lm->saved = (struct free_block *)malloc(sizeof *lm->saved * (s->n_free + 1));
    if (!lm->saved) return am_fail(&s->err, AMBER_ERR_NO_MEMORY, "out of memory");
    if (s->n_free) memcpy(lm->saved, s->free_blocks, sizeof *lm->saved * s->n_free);
    lm->mark = am_arena_get_mark(&s->arena);
    return AMBER_OK;
}

/* Moves the new carries into the loop's buffers (types must not change). */
static amber_status keep_carries(amber_session *s, loop_mem *lm, amber_tensor *carries,
                                 const amber_tensor *fresh, int n) {
    for (int c = 0; c < n; c++) {
        if (fresh[c].dtype != carries[c].dtype || !same_shape(&fresh[c], carries[c].shape, carries[c].rank))
            return am_fail(&s->err, AMBER_ERR_SHAPE, "loop carry %d changes its type", c);
        size_t nb;
        am_tensor_check(&carries[c], NULL, &nb, NULL);
        if (nb) memmove(lm->bufs[c], fresh[c].data, nb);
        carries[c].data = lm->bufs[c];
    }
    return AMBER_OK;
}

static void loop_reclaim(amber_session *s, loop_mem *lm) {
    am_arena_release(&s->arena, lm->mark);
    if (lm->n_saved) memcpy(s->free_blocks, lm->saved, sizeof *lm->saved * lm->n_saved);
    s->n_free = lm->n_saved;
}

/* Counts one loop iteration against the run's budget (nested loops multiply). */
static amber_status spend_iteration(amber_session *s) {
    if (s->iterations_left-- > 0) return AMBER_OK;
    return am_fail(&s->err, AMBER_ERR_LIMIT, "the run made more than %lld loop iterations "
                   "in all (max_run_iterations)", (long long)s->model->opts.max_run_iterations);
}

/* while: carries = body(carries + extra) as long as cond(carries + extra) is true. */
static amber_status run_while(amber_session *s, const am_node *n, amber_tensor *ins,
                              amber_tensor *outs, int depth) {
    int64_t limit = s->model->opts.max_loop_iterations > 0 ? s->model->opts.max_loop_iterations
                                                          : INT64_MAX;
    if (n->max_iterations >= 0 && n->max_iterations < limit) limit = n->max_iterations;
    amber_tensor flag;
    loop_mem lm = {0};
    amber_status st = loop_begin(s, &lm, ins, n->n_carries);
    for (int64_t k = 0; st == AMBER_OK; k++) {
        if ((st = run_function(s, n->callee, ins, &flag, depth + 1)) != AMBER_OK) break;
        if (flag.dtype != AMBER_BOOL || flag.rank != 0) {
            st = am_fail(&s->err, AMBER_ERR_SHAPE, "the loop condition must return bool[]");
            break;
        }
        bool go = scalar_true(&flag);
        loop_reclaim(s, &lm);
        if (!go) break;
        if (k >= limit) {
            st = am_fail(&s->err, AMBER_ERR_LIMIT, "the loop was about to run iteration %lld, "
                         "past the limit of %lld iterations", (long long)k + 1, (long long)limit);
            break;
        }
        if ((st = spend_iteration(s)) != AMBER_OK) break;
        /* The body's results become the next carries (ins[0..n_carries)). */
        if ((st = run_function(s, n->callee2, ins, outs, depth + 1)) != AMBER_OK) break;
        st = keep_carries(s, &lm, ins, outs, n->n_carries);
        loop_reclaim(s, &lm);
    }
    free(lm.saved);
    if (st != AMBER_OK) return st;
    for (int c = 0; c < n->n_carries; c++) outs[c] = ins[c];
    return AMBER_OK;
}

/* scan: for i in 0..length (or reversed): carries, ys[i] = body(carries, xs[i]..., extra);
 * outputs are the final carries, then every y stacked along a new leading dim. */
static amber_status run_scan(amber_session *s, const am_node *n, const am_symbols *syms,
                             amber_tensor *ins, amber_tensor *outs, int depth) {
    int64_t length;
    amber_status st = n->length->type == AM_JSON_NUMBER
                          ? (length = n->length->i, AMBER_OK)
                          : am_dim_eval(n->length->str, n->length->len, syms, &length, &s->err);
    if (st != AMBER_OK) return st;
    if (length < 0) return am_fail(&s->err, AMBER_ERR_SHAPE, "scan length %lld is negative", (long long)length);
    int64_t limit = s->model->opts.max_loop_iterations;
    if (limit > 0 && length > limit)
        return am_fail(&s->err, AMBER_ERR_LIMIT, "scan length %lld exceeds the limit of %lld "
                       "iterations", (long long)length, (long long)limit);
    int nc = n->n_carries, nx = n->n_xs, ny = n->n_out - nc, nin = n->n_in;
    amber_tensor *args, *res, *xs;
    if ((st = am_arena_alloc(&s->arena, sizeof(amber_tensor) * (size_t)(nin + n->n_out + nx + 1),
                             (void **)&args, &s->err)) != AMBER_OK)
        return st;
    res = args + nin;
    xs = res + n->n_out;
    for (int k = 0; k < nin; k++) args[k] = ins[k];
    for (int k = 0; k < nx; k++) {
        xs[k] = ins[nc + k];
        if (xs[k].rank < 1 || xs[k].shape[0] != length)
            return am_fail(&s->err, AMBER_ERR_SHAPE, "scanned input %d needs a leading dim of %lld",
                           k, (long long)length);
        args[nc + k].rank = xs[k].rank - 1;
        memmove(args[nc + k].shape, xs[k].shape + 1, sizeof(int64_t) * (size_t)(xs[k].rank - 1));
    }
    loop_mem lm = {0};
    for (int64_t step = 0; step < length; step++) {
        int64_t i = n->reverse ? length - 1 - step : step;
        if ((st = spend_iteration(s)) != AMBER_OK) break;
        /* After the first step has allocated the stacked outputs, iterations reclaim. */
        if (step == 1 && (st = loop_begin(s, &lm, args, nc)) != AMBER_OK) break;
        for (int k = 0; k < nx; k++) {
            size_t row;
            am_tensor_check(&args[nc + k], NULL, &row, NULL);
            args[nc + k].data = (char *)xs[k].data + (size_t)i * row;
        }
        if ((st = run_function(s, n->callee, args, res, depth + 1)) != AMBER_OK) break;
        for (int y = 0; y < ny && st == AMBER_OK; y++) {
            const amber_tensor *r = &res[nc + y];
            amber_tensor *o = &outs[nc + y];
            size_t row;
            am_tensor_check(r, NULL, &row, NULL);
            if (step == 0) {
                if (r->rank + 1 > AMBER_MAX_RANK) {
                    st = am_fail(&s->err, AMBER_ERR_SHAPE, "stacked scan output exceeds rank %d",
                                 AMBER_MAX_RANK);
                    break;
                }
                o->dtype = r->dtype;
                o->rank = r->rank + 1;
                o->shape[0] = length;
                memcpy(o->shape + 1, r->shape, sizeof(int64_t) * (size_t)r->rank);
                size_t total;
                if ((st = am_tensor_check(o, NULL, &total, &s->err)) != AMBER_OK ||
                    (st = am_arena_alloc(&s->arena, total, &o->data, &s->err)) != AMBER_OK)
                    break;
            } else if (r->dtype != o->dtype || r->rank + 1 != o->rank ||
                       memcmp(r->shape, o->shape + 1, sizeof(int64_t) * (size_t)r->rank)) {
                st = am_fail(&s->err, AMBER_ERR_SHAPE, "scan output %d changes shape between "
                             "iterations", y);
                break;
            }
            if (row) memcpy((char *)o->data + (size_t)i * row, r->data, row);
        }
        if (st != AMBER_OK) break;
        if (step == 0) {
            for (int c = 0; c < nc; c++) args[c] = res[c];
        } else {
            st = keep_carries(s, &lm, args, res, nc);
            loop_reclaim(s, &lm);
            if (st != AMBER_OK) break;
        }
    }
    free(lm.saved);
    if (st != AMBER_OK) return st;
    for (int c = 0; c < nc; c++) outs[c] = args[c];
    if (length == 0) /* no iteration: stacked outputs are empty, with their declared types */
        for (int y = 0; y < ny; y++) {
            amber_tensor *o = &outs[nc + y];
            const am_type *t = &n->out_types[nc + y];
            o->dtype = t->dtype;
            o->rank = t->rank;
            if ((st = am_type_eval(t, syms, o->shape, &s->err)) != AMBER_OK) return st;
            o->data = NULL;
        }
    return AMBER_OK;
}

static amber_status run_function(amber_session *s, uint32_t fi, const amber_tensor *args,
                                 amber_tensor *results, int depth) {
    const am_program *p = &s->model->prog;
    const am_func *f = &p->funcs[fi];
    if (depth > s->max_depth)
        return am_fail(&s->err, AMBER_ERR_LIMIT, "call depth exceeds the limit of %d (in %s)",
                       s->max_depth, f->name);
    amber_tensor *vals;
    int64_t *symvals;
    size_t *sizes; /* bytes allocated for each op output */
    amber_status st = am_arena_calloc(&s->arena, f->n_values, sizeof *vals, (void **)&vals, &s->err);
    if (st == AMBER_OK)
        st = am_arena_calloc(&s->arena, f->n_values, sizeof *sizes, (void **)&sizes, &s->err);
    if (st == AMBER_OK)
        st = am_arena_calloc(&s->arena, (size_t)f->syms.n, sizeof *symvals, (void **)&symvals, &s->err);
    if (st != AMBER_OK) return st;
    am_symbols syms = f->syms;
    syms.values = symvals;
    syms.check = false;
    for (int i = 0; i < syms.n; i++) symvals[i] = -1;
    /* Bind symbols from the arguments; static dims and dtypes must match. */
    for (uint32_t i = 0; i < f->n_params; i++) {
        const am_type *t = &f->param_types[i];
        const amber_tensor *a = &args[i];
        if ((st = am_tensor_check(a, NULL, NULL, &s->err)) != AMBER_OK)
            return am_fail(&s->err, st, "%s: argument %u: %.300s", f->name, i, s->err.msg);
        if (a->dtype != t->dtype || a->rank != t->rank) {
            char b[200];
            return am_fail(&s->err, a->dtype != t->dtype ? AMBER_ERR_DTYPE : AMBER_ERR_SHAPE,
                           "%s: argument %u is %s%s, the function takes "
                           "%s of rank %d", f->name, i, amber_dtype_name(a->dtype),
                           am_shape_str(a->shape, a->rank, b, sizeof b), amber_dtype_name(t->dtype),
                           t->rank);
        }
        for (int d = 0; d < t->rank; d++) {
            int sym = f->param_symbol[i * AMBER_MAX_RANK + (uint32_t)d];
            if (sym < 0) continue;
            if (a->shape[d] < 1)
                return am_fail(&s->err, AMBER_ERR_SHAPE, "%s: argument %u dim %d (%s) must be >= 1, "
                               "got %lld", f->name, i, d, syms.names[sym], (long long)a->shape[d]);
            if (symvals[sym] < 0) {
                symvals[sym] = a->shape[d];
            } else if (symvals[sym] != a->shape[d]) {
                return am_fail(&s->err, AMBER_ERR_SHAPE, "%s: argument %u dim %d is %lld but "
                               "\"%s\" is %lld from an earlier argument", f->name, i, d,
                               (long long)a->shape[d], syms.names[sym], (long long)symvals[sym]);
            }
        }
    }
    for (uint32_t i = 0; i < f->n_params; i++) {
        char what[160];
        snprintf(what, sizeof what, "%s: argument %u", f->name, i);
        if ((st = check_type(s, &f->param_types[i], &syms, &args[i], what)) != AMBER_OK) return st;
        vals[i] = args[i];
    }
    /* Nodes in order. */
    am_ctx ctx = {&s->err, &s->scratch, s->pool, 0, &s->keep};
    struct hoisted *h = &s->hoisted[fi];
    if (f->n_cached && !h->vals &&
        !(h->vals = (amber_tensor *)calloc(f->n_values, sizeof *h->vals)))
        return am_fail(&s->err, AMBER_ERR_NO_MEMORY, "out of memory");
    bool ready = h->n_ready == f->n_cached; /* every hoisted value is cached */
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        const am_node *n = &f->nodes[ni];
        if (ready && n->hoist == AM_HOIST_INNER) continue;
        static const char *const kinds[] = {"op", "constant", "weight", "call", "cond", "while", "scan"};
        const char *opname = n->kind == AM_NODE_OP ? n->op->name : kinds[n->kind];
        amber_tensor *ins = NULL, *outs = NULL;
        st = am_arena_alloc(&s->arena, sizeof(amber_tensor) * (size_t)(n->n_in + n->n_out + 1),
                            (void **)&ins, &s->err);
        if (st != AMBER_OK) return st;
        outs = ins + n->n_in;
        for (int k = 0; k < n->n_in; k++) ins[k] = vals[n->in[k]];
        switch (n->kind) {
        case AM_NODE_CONSTANT:
        case AM_NODE_WEIGHT:
            outs[0] = n->tensor;
            break;
        case AM_NODE_CALL:
            st = run_function(s, n->callee, ins, outs, depth + 1);
            break;
        case AM_NODE_COND:
            if (ins[0].dtype != AMBER_BOOL || ins[0].rank != 0)
                st = am_fail(&s->err, AMBER_ERR_SHAPE, "the predicate must be bool[]");
            else
                st = run_function(s, scalar_true(&ins[0]) ? n->callee : n->callee2, ins + 1, outs,
                                  depth + 1);
            break;
        case AM_NODE_WHILE:
            st = run_while(s, n, ins, outs, depth);
            break;
        case AM_NODE_SCAN:
            st = run_scan(s, n, &syms, ins, outs, depth);
            break;
        case AM_NODE_OP: {
            bool cache = n->hoist == AM_HOIST_CACHED;
            if (cache && h->vals[n->out[0]].data) {
                outs[0] = h->vals[n->out[0]];
                break;
            }
            am_attrs attrs;
            size_t nbytes = 0;
            st = am_node_attrs(n, &s->model->doc, &syms, &attrs, &s->err);
            if (st == AMBER_OK) st = am_op_infer(n->op, ins, n->n_in, &attrs, &outs[0], &s->err);
            if (st == AMBER_OK) st = am_tensor_check(&outs[0], NULL, &nbytes, &s->err);
            if (st == AMBER_OK)
                st = cache ? hoisted_alloc(s, nbytes, &outs[0].data)
                           : value_alloc(s, nbytes, &outs[0].data);
            if (st == AMBER_OK) {
                if (!cache) sizes[n->out[0]] = nbytes;
                ctx.fixed_inputs = n->fixed_in;
                st = n->op->kernel(n->op, &ctx, ins, n->n_in, &attrs, &outs[0]);
                if (cache && st == AMBER_OK) {
                    h->vals[n->out[0]] = outs[0];
                    h->n_ready++;
                } else if (cache) {
                    hoisted_drop(s, outs[0].data, nbytes); /* the next run tries again */
                }
            }
            am_arena_reset(&s->scratch);
            break;
        }
        }
        for (int k = 0; st == AMBER_OK && k < n->n_out; k++) {
            char what[160];
            snprintf(what, sizeof what, "output %d", k);
            st = check_type(s, &n->out_types[k], &syms, &outs[k], what);
            vals[n->out[k]] = outs[k];
        }
        for (uint32_t k = 0; st == AMBER_OK && k < n->n_release; k++)
            value_release(s, vals[n->release[k]].data, sizes[n->release[k]]);
        if (st != AMBER_OK) {
            if (n->kind >= AM_NODE_CALL && strstr(s->err.msg, ", node "))
                return st; /* the callee already said where */
            char msg[AM_ERR_MSG];
            memcpy(msg, s->err.msg, sizeof msg);
            return am_fail(&s->err, st, "%s, node %u (%s): %s", f->name, ni, opname, msg);
        }
    }
    for (uint32_t k = 0; k < f->n_results; k++) results[k] = vals[f->results[k]];
    return AMBER_OK;
}

static amber_status run_entry(amber_session *s, const am_entry *e, const amber_tensor *inputs,
                              size_t n_inputs, amber_tensor *outputs, size_t n_outputs) {
    if (n_inputs != e->n_inputs || n_outputs != e->n_outputs)
        return am_fail(&s->err, AMBER_ERR_INVALID_ARGUMENT,
                       "entry point %s takes %u inputs and gives %u outputs (called with %zu "
                       "and %zu)", e->name, e->n_inputs, e->n_outputs, n_inputs, n_outputs);
    if ((e->n_inputs && !inputs) || (e->n_outputs && !outputs))
        return am_fail(&s->err, AMBER_ERR_INVALID_ARGUMENT, "inputs or outputs is NULL");
    for (size_t i = 0; i < n_inputs; i++) {
        size_t nb;
        amber_status st = am_tensor_check(&inputs[i], NULL, &nb, &s->err);
        if (st != AMBER_OK)
            return am_fail(&s->err, st, "input \"%s\": %.300s", e->inputs[i].name, s->err.msg);
        if (nb && !inputs[i].data)
            return am_fail(&s->err, AMBER_ERR_INVALID_ARGUMENT, "input \"%s\" has no data",
                           e->inputs[i].name);
    }
    am_arena_reset(&s->arena);
    s->n_free = 0;
    s->iterations_left = s->model->opts.max_run_iterations > 0 ? s->model->opts.max_run_iterations
                                                              : INT64_MAX;
    return run_function(s, e->func, inputs, outputs, 0);
}

amber_status amber_session_run(amber_session *s, const char *entry, const amber_tensor *inputs,
                               size_t n_inputs, amber_tensor *outputs, size_t n_outputs) {
    if (!s) return AMBER_ERR_INVALID_ARGUMENT;
    am_error_clear(&s->err);
    if (!entry) return am_fail(&s->err, AMBER_ERR_INVALID_ARGUMENT, "entry is NULL");
    if (!s->model->prog.present)
        return am_fail(&s->err, AMBER_ERR_NOT_FOUND, "the file has no program to run");
    const am_entry *e = am_model_entry(s->model, entry);
    if (!e) return am_fail(&s->err, AMBER_ERR_NOT_FOUND, "no entry point named \"%.200s\"", entry);
    return run_entry(s, e, inputs, n_inputs, outputs, n_outputs);
}

static double element(const amber_tensor *t, int64_t i) {
    switch (t->dtype) {
    case AMBER_FLOAT32: return ((const float *)t->data)[i];
    case AMBER_FLOAT64: return ((const double *)t->data)[i];
    case AMBER_INT32: return ((const int32_t *)t->data)[i];
    case AMBER_INT64: return (double)((const int64_t *)t->data)[i];
    case AMBER_BOOL: return ((const uint8_t *)t->data)[i];
    }
    return 0;
}

/* Compares got with want under docs/format.md H.8; on failure describes it in msg. */
static bool matches(const amber_tensor *got, const amber_tensor *want, double rtol, double atol,
                    char *msg, size_t n) {
    char a[200], b[200];
    if (got->dtype != want->dtype || !same_shape(got, want->shape, want->rank)) {
        snprintf(msg, n, "is %s%s, expected %s%s", amber_dtype_name(got->dtype),
                 am_shape_str(got->shape, got->rank, a, sizeof a), amber_dtype_name(want->dtype),
                 am_shape_str(want->shape, want->rank, b, sizeof b));
        return false;
    }
    int64_t numel = am_numel(want);
    bool exact = want->dtype != AMBER_FLOAT32 && want->dtype != AMBER_FLOAT64;
    for (int64_t i = 0; i < numel; i++) {
        bool ok;
        if (exact) {
            size_t z = amber_dtype_size(want->dtype);
            ok = !memcmp((const char *)got->data + (size_t)i * z, (const char *)want->data + (size_t)i * z, z);
        } else {
            double g = element(got, i), w = element(want, i);
            if (isnan(w) || isnan(g)) ok = isnan(w) && isnan(g);
            else if (isinf(w) || isinf(g)) ok = g == w;
            else ok = fabs(g - w) <= atol + rtol * fabs(w);
        }
        if (!ok) {
            if (exact && want->dtype != AMBER_BOOL)
                snprintf(msg, n, "element %lld is %lld, expected %lld", (long long)i,
                         want->dtype == AMBER_INT32 ? (long long)((const int32_t *)got->data)[i]
                                                    : (long long)((const int64_t *)got->data)[i],
                         want->dtype == AMBER_INT32 ? (long long)((const int32_t *)want->data)[i]
                                                    : (long long)((const int64_t *)want->data)[i]);
            else
                snprintf(msg, n, "element %lld is %.9g, expected %.9g (rtol %g, atol %g)",
                         (long long)i, element(got, i), element(want, i), rtol, atol);
            return false;
        }
    }
    return true;
}

amber_status amber_session_verify(amber_session *s, size_t *n_vectors, size_t *n_failed) {
    if (!s) return AMBER_ERR_INVALID_ARGUMENT;
    am_error_clear(&s->err);
    const am_program *p = &s->model->prog;
    size_t failed = 0;
    amber_status first = AMBER_OK;
    char first_msg[AM_ERR_MSG] = "";
    for (uint32_t v = 0; v < p->n_vectors; v++) {
        const am_vector *tv = &p->vectors[v];
        const am_entry *e = &p->entries[tv->entry];
        amber_tensor *outs = (amber_tensor *)calloc(e->n_outputs ? e->n_outputs : 1, sizeof *outs);
        if (!outs) return am_fail(&s->err, AMBER_ERR_NO_MEMORY, "out of memory");
        amber_status st = run_entry(s, e, tv->inputs, e->n_inputs, outs, e->n_outputs);
        char msg[AM_ERR_MSG] = "";
        if (st != AMBER_OK) {
            snprintf(msg, sizeof msg, "test vector %u (%.60s) failed to run: %.400s", v, e->name,
                     s->err.msg);
        } else {
            for (uint32_t k = 0; k < e->n_outputs && st == AMBER_OK; k++) {
                char why[300];
                if (!matches(&outs[k], &tv->outputs[k], tv->rtol[k], tv->atol[k], why, sizeof why)) {
                    st = AMBER_ERR_MISMATCH;
                    snprintf(msg, sizeof msg, "test vector %u (%.60s), output \"%.60s\": %.300s", v,
                             e->name, e->outputs[k].name, why);
                }
            }
        }
        free(outs);
        if (st != AMBER_OK) {
            failed++;
            if (first == AMBER_OK) {
                first = st;
                memcpy(first_msg, msg, sizeof first_msg);
            }
        }
    }
    if (n_vectors) *n_vectors = p->n_vectors;
    if (n_failed) *n_failed = failed;
    if (first != AMBER_OK) return am_fail(&s->err, first, "%s", first_msg);
    am_error_clear(&s->err);
    return AMBER_OK;
}
