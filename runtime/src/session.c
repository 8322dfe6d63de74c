/* amber_session: runs entry points of a model's program by interpreting its functions
 * node by node (docs/format.md H.5). Values of one run live in the session arena, which
 * is reset (and its memory reused) at the start of the next run. */
#include "model.h"
#include "attn.h"
#include "plan_cell.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AM_MAX_CALL_DEPTH 1000

struct amber_session {
    const amber_model *model;
    const am_entry *entry; /* of the run under way (or the last): names its inputs in
                            * messages; session_entry finds it again without a search */
    am_error err;
    am_arena arena;   /* values of the current run */
    am_arena scratch; /* temporaries of one kernel call */
    am_pool *pool;    /* intra-op threads (NULL: the calling thread only) */
    int max_depth;
    int64_t iterations_left; /* loop iterations this run may still make (all loops) */
    int64_t calls_left;      /* executions of call and cond nodes this run may still make */
    /* Values of AM_HOIST_CACHED nodes, per function and value (data NULL: not yet), kept
     * across runs in separate allocations that count against the memory limit. */
    struct hoisted {
        uint32_t n_ready;
        int split;     /* image by image (run_split): SPLIT_UNASKED, SPLIT_NEVER or _YES */
        uint32_t cut;  /* split_cut's */
        uint8_t *cross;
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
    /* Memory plans, AM_PLAN_SLOTS per function (least recently used replaced), and the
     * block the outermost function's plan places its values in, kept across runs. */
    struct plan *plans;
    uint64_t clock, plan_stamps;
    void *block;
    size_t block_size;
    struct counts {
        uint64_t runs, plans, plan_reuses, plan_bytes, plan_value_bytes;
    } counts;
    /* amber_session_run_into: per value of the entry function, the caller's memory for
     * it (NULL: none), so that the node computing a result writes it there */
    const amber_tensor **dest;
    /* run_split: a session per thread of the pool, one thread each, for images side by
     * side (split_side); created on first use */
    amber_session **kids;
    int n_kids;
};

/* A few plans per function: serving often alternates between a few batch sizes, and a
 * recursive function may run at a different size at each depth; with one plan each
 * change would re-plan. Planning costs O(values^2) at worst, so misses stay cheap. */
#define AM_PLAN_SLOTS 4

/* Where a function's planned values (am_func.planned) go for one binding of its
 * symbols: offset[i] into a block of `size` bytes. */
struct plan {
    bool valid, ready;  /* ready: planned with the hoisted values cached (no INNER nodes) */
    uint64_t used;      /* clock of the last use */
    uint64_t stamp;     /* changes whenever the slot is (re)computed */
    int64_t *key;       /* the symbol values */
    size_t *offset;
    size_t size, value_bytes;
    /* Per node: the result type an op node's shape rules gave in a run with these
     * symbols, and its attributes if they hold dim expressions. Every value's type is
     * fixed by the symbols (each is checked against its declaration), and so are such
     * attributes: later runs reuse them instead of running the rules again. */
    struct memo {
        bool known;
        amber_tensor out; /* data unused */
        size_t nbytes;
        am_attrs *attrs;  /* allocated on first use, kept when the slot is replanned */
    } *memo;
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

/* A session of `threads` threads (<= 0: one per core) */
static amber_status session_new(const amber_model *model, long threads, amber_session **out) {
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
    if (threads <= 0) threads = sysconf(_SC_NPROCESSORS_ONLN);
    if (threads > 64) threads = 64;
    if (model->prog.n_funcs &&
        (!(s->hoisted = (struct hoisted *)calloc(model->prog.n_funcs, sizeof *s->hoisted)) ||
         !(s->plans = (struct plan *)calloc((size_t)model->prog.n_funcs * AM_PLAN_SLOTS,
                                            sizeof *s->plans)))) {
        amber_session_free(s);
        return AMBER_ERR_NO_MEMORY;
    }
    if (am_pool_create((int)threads, AM_POOL_SPIN_SESSION_NS, 0.0, &s->pool, NULL) != AMBER_OK) {
        amber_session_free(s);
        return AMBER_ERR_NO_MEMORY;
    }
    *out = s;
    return AMBER_OK;
}

amber_status amber_session_create(const amber_model *model, amber_session **out) {
    if (!out) return AMBER_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!model || model->failed) return AMBER_ERR_INVALID_ARGUMENT;
    return session_new(model, model->opts.threads, out);
}

void amber_session_free(amber_session *s) {
    if (!s) return;
    for (int w = 0; w < s->n_kids; w++) amber_session_free(s->kids[w]);
    free(s->kids);
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
        free(s->hoisted[fi].cross);
    }
    free(s->hoisted);
    for (size_t i = 0; s->plans && i < (size_t)s->model->prog.n_funcs * AM_PLAN_SLOTS; i++) {
        free(s->plans[i].key);
        free(s->plans[i].offset);
        for (uint32_t ni = 0; s->plans[i].memo && ni < s->model->prog.funcs[i / AM_PLAN_SLOTS].n_nodes; ni++)
            free(s->plans[i].memo[ni].attrs);
        free(s->plans[i].memo);
    }
    free(s->plans);
    free(s->block);
    free(s);
}

const char *amber_session_error(const amber_session *s) { return s ? s->err.msg : "session is NULL"; }

static bool same_shape(const amber_tensor *t, const int64_t *shape, int rank) {
    if (t->rank != rank) return false;
    for (int i = 0; i < rank; i++)
        if (t->shape[i] != shape[i]) return false;
    return true;
}

static bool same_type(const amber_tensor *a, const amber_tensor *b) {
    return a->dtype == b->dtype && same_shape(a, b->shape, b->rank);
}

/* Checks a value against its declared type, with the function's symbols bound; a
 * mismatch is reported as "<func>: <kind> <index>" (func NULL: "<kind> <index>"),
 * formatted only then: this runs for every node. */
static amber_status check_type(amber_session *s, const am_type *t, const am_symbols *syms,
                               const amber_tensor *v, const char *func, const char *kind,
                               unsigned index, const char *name) {
    int64_t shape[AMBER_MAX_RANK];
    amber_status st = am_type_eval(t, syms, shape, &s->err);
    if (st != AMBER_OK) return st;
    if (v->dtype != t->dtype || !same_shape(v, shape, t->rank)) {
        char a[200], b[200];
        char which[160];
        if (name) snprintf(which, sizeof which, "%s \"%.100s\"", kind, name);
        else snprintf(which, sizeof which, "%s %u", kind, index);
        return am_fail(&s->err, v->dtype != t->dtype ? AMBER_ERR_DTYPE : AMBER_ERR_SHAPE,
                       "%s%s%s is %s%s, declared %s%s", func ? func : "", func ? ": " : "",
                       which, amber_dtype_name(v->dtype),
                       am_shape_str(v->shape, v->rank, a, sizeof a), amber_dtype_name(t->dtype),
                       am_shape_str(shape, t->rank, b, sizeof b));
    }
    return AMBER_OK;
}

static amber_status run_function(amber_session *s, uint32_t fi, const amber_tensor *args,
                                 amber_tensor *results, int depth);

/* A function entered to run (frame_enter): its values (arguments, then the planned
 * values' memory), its symbols as the arguments bound them, and its plan. A loop enters
 * its body (and a while its condition) once and calls it on every iteration. */
typedef struct frame {
    uint32_t fi;
    int depth;
    amber_tensor *vals;
    am_symbols syms;
    int64_t *bound; /* the symbol values binding the arguments gave */
    bool ready;
    struct plan *plan;
    uint64_t stamp;
    char *base;
    size_t planned_size;
    const amber_tensor **dest; /* per value: memory to compute a result into, or NULL */
    uint32_t start, end; /* the nodes run_nodes runs (run_split: a part) */
} frame;

static amber_status frame_enter(amber_session *s, uint32_t fi, const amber_tensor *args,
                                int depth, frame *fr);
static amber_status frame_call(amber_session *s, frame *fr, const amber_tensor *args,
                               amber_tensor *results);
static void frame_leave(amber_session *s, frame *fr);
static amber_status run_nodes(amber_session *s, const frame *fr);

/* The run arena may hold what the planned block and the hoisted values leave of the
 * memory limit. */
static void set_arena_limit(amber_session *s) {
    size_t limit = (size_t)s->model->opts.memory_limit, kept = s->hoisted_bytes + s->block_size;
    if (limit) s->arena.limit = limit > kept ? limit - kept : 1;
}

/* Checks that `size` more bytes beside the arena, the block and the hoisted values stay
 * within the memory limit; *need is size rounded up as it will be counted. With err
 * NULL, a failure leaves no message (kept kernel data is optional). */
static amber_status charge(amber_session *s, size_t size, size_t *need, am_error *err) {
    size_t limit = (size_t)s->model->opts.memory_limit, total;
    if (!am_add_size(size ? size : 1, 63, need))
        return am_fail(err, AMBER_ERR_LIMIT, "allocation of %zu bytes is too large", size);
    *need &= ~(size_t)63;
    size_t held = s->hoisted_bytes + s->block_size;
    if (!am_add_size(held, *need, &total) ||
        (limit && (total > limit || s->arena.held > limit - total)))
        return am_fail(err, AMBER_ERR_LIMIT, "memory limit of %zu bytes exceeded (holding "
                       "%zu, need %zu more)", limit, held + s->arena.held, *need);
    return AMBER_OK;
}

/* Memory for a hoisted value: it and the run arena share the memory limit. With err
 * NULL, a failure leaves no message (kept kernel data is optional). */
static amber_status hoisted_alloc_err(amber_session *s, size_t size, void **out, am_error *err) {
    size_t need;
    amber_status st = charge(s, size, &need, err);
    if (st != AMBER_OK) return st;
    *out = aligned_alloc(64, need);
    if (!*out) return am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory allocating %zu bytes", need);
    s->hoisted_bytes += need;
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

/* Grows the planned block to at least size bytes (its old contents are not kept). */
static amber_status block_reserve(amber_session *s, size_t size) {
    if (size <= s->block_size) return AMBER_OK;
    free(s->block);
    s->block = NULL;
    s->block_size = 0;
    size_t need;
    amber_status st = charge(s, size, &need, &s->err);
    if (st == AMBER_ERR_LIMIT && drop_kept(s)) st = charge(s, size, &need, &s->err);
    if (st == AMBER_OK && !(s->block = aligned_alloc(64, need)))
        st = am_fail(&s->err, AMBER_ERR_NO_MEMORY, "out of memory allocating %zu bytes", need);
    if (st == AMBER_OK) s->block_size = need;
    set_arena_limit(s);
    return st;
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

/* `copies` buffers per carry: carry c's in bufs[c], bufs[n + c], ... */
static amber_status loop_begin(amber_session *s, loop_mem *lm, const amber_tensor *carries,
                               int n, int copies) {
    amber_status st = am_arena_alloc(&s->arena, sizeof(void *) * (size_t)(n * copies + 1),
                                     (void **)&lm->bufs, &s->err);
    for (int c = 0; st == AMBER_OK && c < n * copies; c++) {
        size_t nb;
        am_tensor_check(&carries[c % n], NULL, &nb, NULL);
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

/* True if [p, p + n) overlaps any carry buffer but carry c's own. */
static bool in_other_carry(const loop_mem *lm, const amber_tensor *carries, int n, int c,
                           const char *p, size_t nb) {
    for (int d = 0; d < n; d++) {
        size_t nd;
        am_tensor_check(&carries[d], NULL, &nd, NULL);
        const char *b = (const char *)lm->bufs[d];
        if (d != c && nb && nd && p < b + nd && b < p + nb) return true;
    }
    return false;
}

/* Moves the new carries into the loop's buffers (types must not change). */
static amber_status keep_carries(amber_session *s, loop_mem *lm, amber_tensor *carries,
                                 const amber_tensor *fresh, int n) {
    /* NOTE: a body may return carries permuted ((a, b) -> (b, a)) or a reshape of another
     * carry: such a value still lives in another carry's buffer, which the copies below
     * overwrite, so it is staged in scratch memory first. */
    am_arena_mark mark = am_arena_get_mark(&s->scratch);
    const void **src = NULL;
    amber_status st = am_arena_alloc(&s->scratch, sizeof *src * (size_t)(n + 1), (void **)&src,
                                     &s->err);
    for (int c = 0; st == AMBER_OK && c < n; c++) {
        if (fresh[c].dtype != carries[c].dtype || !same_shape(&fresh[c], carries[c].shape, carries[c].rank)) {
            st = am_fail(&s->err, AMBER_ERR_SHAPE, "loop carry %d changes its type", c);
            break;
        }
        size_t nb;
        am_tensor_check(&carries[c], NULL, &nb, NULL);
        src[c] = fresh[c].data;
        if (in_other_carry(lm, carries, n, c, (const char *)fresh[c].data, nb)) {
            void *tmp;
            if ((st = am_arena_alloc(&s->scratch, nb, &tmp, &s->err)) != AMBER_OK) break;
            src[c] = memcpy(tmp, fresh[c].data, nb);
        }
    }
    for (int c = 0; st == AMBER_OK && c < n; c++) {
        size_t nb;
        am_tensor_check(&carries[c], NULL, &nb, NULL);
        if (nb) memmove(lm->bufs[c], src[c], nb);
        carries[c].data = lm->bufs[c];
    }
    am_arena_release(&s->scratch, mark);
    return st;
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

/* Counts one execution of a call or cond node against the run's budget. */
static amber_status spend_call(amber_session *s) {
    if (s->calls_left-- > 0) return AMBER_OK;
    return am_fail(&s->err, AMBER_ERR_LIMIT, "the run executed more than %lld function calls "
                   "in all (max_run_calls)", (long long)s->model->opts.max_run_calls);
}

/* After the loop's own allocations grew (a stack buffer), the arena state an iteration
 * returns to is the current one. */
static amber_status loop_remark(amber_session *s, loop_mem *lm) {
    struct free_block *p = (struct free_block *)realloc(lm->saved, sizeof *p * (s->n_free + 1));
    if (!p) return am_fail(&s->err, AMBER_ERR_NO_MEMORY, "out of memory");
    lm->saved = p;
    lm->n_saved = s->n_free;
    if (s->n_free) memcpy(lm->saved, s->free_blocks, sizeof *p * s->n_free);
    lm->mark = am_arena_get_mark(&s->arena);
    return AMBER_OK;
}

/* One per-iteration output of a while (opset 3): rows of the declared type, stacked in a
 * run-arena buffer whose capacity doubles when full (so it counts against memory_limit). */
typedef struct stack_col {
    amber_tensor row; /* the declared type of one iteration's value */
    size_t row_bytes;
    char *data;
    int64_t cap; /* rows the buffer holds */
} stack_col;

/* Makes room for `rows` rows; called between iterations (the arena at the loop's mark). */
static amber_status stack_reserve(amber_session *s, loop_mem *lm, stack_col *col, int64_t rows) {
    if (rows <= col->cap || !col->row_bytes) return AMBER_OK;
    int64_t cap = col->cap ? col->cap : 4;
    while (cap < rows)
        if (!am_mul_i64(cap, 2, &cap)) return am_fail(&s->err, AMBER_ERR_LIMIT, "stack too large");
    size_t bytes, used = (size_t)(rows - 1) * col->row_bytes, old = (size_t)col->cap * col->row_bytes;
    if (!am_mul_size((size_t)cap, col->row_bytes, &bytes))
        return am_fail(&s->err, AMBER_ERR_LIMIT, "a stacked loop output of %lld rows of %zu "
                       "bytes is too large", (long long)cap, col->row_bytes);
    void *p;
    amber_status st = value_alloc(s, bytes, &p);
    if (st != AMBER_OK) return st;
    if (used) memcpy(p, col->data, used);
    if (col->data) value_release(s, col->data, old);
    col->data = (char *)p;
    col->cap = cap;
    return loop_remark(s, lm);
}

/* while: carries = body(carries + extra) as long as cond(carries + extra) is true. With
 * per-iteration outputs (opset 3) the body returns them after the carries; they are
 * stacked, and the trip count is bound to the node's trip_dim symbol. */
static amber_status run_while(amber_session *s, const am_node *n, am_symbols *syms,
                              amber_tensor *ins, amber_tensor *outs, int depth) {
    int64_t limit = s->model->opts.max_loop_iterations > 0 ? s->model->opts.max_loop_iterations
                                                          : INT64_MAX;
    if (n->max_iterations >= 0 && n->max_iterations < limit) limit = n->max_iterations;
    int nc = n->n_carries, ns = n->n_stacked;
    amber_tensor flag;
    loop_mem lm = {0};
    stack_col *cols = NULL;
    amber_status st = am_arena_calloc(&s->arena, (size_t)ns + 1, sizeof *cols, (void **)&cols, &s->err);
    for (int j = 0; st == AMBER_OK && j < ns; j++) {
        /* the row type may not use the trip count, which is not bound yet */
        const am_type *t = &n->out_types[nc + j];
        am_type rt = {t->dtype, t->rank - 1, {0}};
        memcpy(rt.dims, t->dims + 1, sizeof(rt.dims[0]) * (size_t)rt.rank);
        cols[j].row.dtype = t->dtype;
        cols[j].row.rank = rt.rank;
        if ((st = am_type_eval(&rt, syms, cols[j].row.shape, &s->err)) == AMBER_OK)
            st = am_tensor_check(&cols[j].row, NULL, &cols[j].row_bytes, &s->err);
    }
    if (st == AMBER_OK) st = loop_begin(s, &lm, ins, nc, 1);
    int64_t k = 0;
    frame cond = {0}, body = {0};
    for (; st == AMBER_OK; k++) {
        /* The first iteration computes cached values; then both functions are entered
         * once (their memory kept past the iterations' reclaiming) and called. */
        if (k == 1 && ((st = frame_enter(s, n->callee, ins, depth + 1, &cond)) != AMBER_OK ||
                       (st = frame_enter(s, n->callee2, ins, depth + 1, &body)) != AMBER_OK ||
                       (st = loop_remark(s, &lm)) != AMBER_OK))
            break;
        st = k ? frame_call(s, &cond, ins, &flag) : run_function(s, n->callee, ins, &flag, depth + 1);
        if (st != AMBER_OK) break;
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
        for (int j = 0; j < ns && st == AMBER_OK; j++) st = stack_reserve(s, &lm, &cols[j], k + 1);
        if (st != AMBER_OK) break;
        /* The body's results become the next carries (ins[0..n_carries)). */
        st = k ? frame_call(s, &body, ins, outs) : run_function(s, n->callee2, ins, outs, depth + 1);
        if (st != AMBER_OK) break;
        for (int j = 0; j < ns && st == AMBER_OK; j++) {
            const amber_tensor *r = &outs[nc + j], *row = &cols[j].row;
            if (r->dtype != row->dtype || !same_shape(r, row->shape, row->rank)) {
                char a[200], b[200];
                st = am_fail(&s->err, AMBER_ERR_SHAPE, "per-iteration output %d is %s%s, "
                             "declared %s%s", j, amber_dtype_name(r->dtype),
                             am_shape_str(r->shape, r->rank, a, sizeof a),
                             amber_dtype_name(row->dtype), am_shape_str(row->shape, row->rank, b, sizeof b));
            } else if (cols[j].row_bytes) {
                memcpy(cols[j].data + (size_t)k * cols[j].row_bytes, r->data, cols[j].row_bytes);
            }
        }
        if (st == AMBER_OK) st = keep_carries(s, &lm, ins, outs, nc);
        loop_reclaim(s, &lm);
    }
    free(lm.saved);
    frame_leave(s, &body);
    frame_leave(s, &cond);
    if (st != AMBER_OK) return st;
    for (int c = 0; c < nc; c++) outs[c] = ins[c];
    if (n->trip_symbol >= 0) syms->values[n->trip_symbol] = k;
    for (int j = 0; j < ns; j++) {
        amber_tensor *o = &outs[nc + j];
        o->dtype = cols[j].row.dtype;
        o->rank = cols[j].row.rank + 1;
        o->shape[0] = k;
        memcpy(o->shape + 1, cols[j].row.shape, sizeof(int64_t) * (size_t)cols[j].row.rank);
        o->data = k ? cols[j].data : NULL;
    }
    return AMBER_OK;
}

/* Bytes of one scanned slice worth asking for ahead of its step (beyond, the slice would
 * push the body's own working set out of L2). */
#define SCAN_PREFETCH_MAX (64 << 10)

/* Asks for the scanned slices of step i while this step computes. NOTE: an LSTM's slices
 * are the input projection of every step, written before the loop and long out of cache;
 * each step's cell otherwise waits on their first loads. With locality 3 (not 2) the
 * cell of a batch-16 LSTM waited half as long on them (perf, AMD Zen 5). */
static void scan_prefetch(const amber_tensor *xs, const size_t *rows, int nx, int64_t i) {
    for (int k = 0; k < nx; k++) {
        if (rows[k] > SCAN_PREFETCH_MAX) continue;
        const char *p = (const char *)xs[k].data + (size_t)i * rows[k];
        for (size_t o = 0; o < rows[k]; o += 64) __builtin_prefetch(p + o, 0, 3);
    }
}

/* Stacked output o of a scan: its type from the row r step 0 gave, its memory dest's (the
 * caller's for this result) when the types agree, else the run arena's. */
static amber_status scan_stack(amber_session *s, const amber_tensor *r, int64_t length,
                               const amber_tensor *dest, amber_tensor *o) {
    if (r->rank + 1 > AMBER_MAX_RANK)
        return am_fail(&s->err, AMBER_ERR_SHAPE, "stacked scan output exceeds rank %d",
                       AMBER_MAX_RANK);
    o->dtype = r->dtype;
    o->rank = r->rank + 1;
    o->shape[0] = length;
    memcpy(o->shape + 1, r->shape, sizeof(int64_t) * (size_t)r->rank);
    size_t total;
    amber_status st = am_tensor_check(o, NULL, &total, &s->err);
    if (st == AMBER_OK && dest && same_type(dest, o)) o->data = dest->data;
    else if (st == AMBER_OK) st = am_arena_alloc(&s->arena, total, &o->data, &s->err);
    return st;
}

/* Row i of each stacked output from step `step`'s ys (res after the carries); a y the
 * step did not compute in its row is copied there. */
static amber_status scan_ys(amber_session *s, const am_node *n, const amber_tensor *res,
                            amber_tensor *outs, int64_t step, int64_t i, int64_t length,
                            const amber_tensor *const *dest) {
    for (int y = n->n_carries; y < n->n_out; y++) {
        const amber_tensor *r = &res[y];
        amber_tensor *o = &outs[y];
        size_t row;
        am_tensor_check(r, NULL, &row, NULL);
        amber_status st = AMBER_OK;
        if (step == 0)
            st = scan_stack(s, r, length, dest ? dest[n->out[y]] : NULL, o);
        else if (r->dtype != o->dtype || !same_shape(r, o->shape + 1, o->rank - 1))
            st = am_fail(&s->err, AMBER_ERR_SHAPE, "scan output %d changes shape between "
                         "iterations", y - n->n_carries);
        if (st != AMBER_OK) return st;
        char *at = (char *)o->data + (size_t)i * row;
        if (row && r->data != at) memcpy(at, r->data, row);
    }
    return AMBER_OK;
}

/* Where a scan body computes its results (entered, after step 0): dest by the body's
 * values points into at, n_out tensors of the results' types, whose memory scan_aim sets
 * per step. A value that is a y and a carry goes to the y's row. */
static amber_status scan_dests(amber_session *s, const am_node *n, const amber_tensor *args,
                               const amber_tensor *outs, frame *body, amber_tensor **at) {
    const am_func *f = &s->model->prog.funcs[n->callee];
    const amber_tensor **dest;
    amber_status st = am_arena_calloc(&s->arena, (size_t)n->n_out + 1, sizeof **at,
                                      (void **)at, &s->err);
    if (st == AMBER_OK)
        st = am_arena_calloc(&s->arena, f->n_values + 1u, sizeof *dest, (void **)&dest, &s->err);
    if (st != AMBER_OK) return st;
    for (int k = 0; k < n->n_out; k++) {
        int y = (k + n->n_carries) % n->n_out; /* the ys, then the carries */
        amber_tensor *t = &(*at)[y];
        size_t nb;
        if (y < n->n_carries) {
            am_tensor_copy(t, &args[y]);
        } else {
            t->dtype = outs[y].dtype;
            t->rank = outs[y].rank - 1;
            memcpy(t->shape, outs[y].shape + 1, sizeof(int64_t) * (size_t)t->rank);
        }
        am_tensor_check(t, NULL, &nb, NULL);
        if (nb && !dest[f->results[y]]) dest[f->results[y]] = t;
    }
    body->dest = dest;
    return AMBER_OK;
}
/* Step i's memory for the results scan_dests aimed: each y's row, each carry's buffer
 * of the two its current value is not in. */
static void scan_aim(const am_node *n, const loop_mem *lm, const amber_tensor *carries,
                     const amber_tensor *outs, int64_t i, amber_tensor *at) {
    int nc = n->n_carries;
    for (int c = 0; c < nc; c++)
        at[c].data = carries[c].data == lm->bufs[c] ? lm->bufs[nc + c] : lm->bufs[c];
    for (int y = nc; y < n->n_out; y++) {
        size_t row;
        am_tensor_check(&at[y], NULL, &row, NULL);
        at[y].data = (char *)outs[y].data + (size_t)i * row;
    }
}

/* Keeps a step's new carries (their types unchanged), copying only where it must: a new
 * carry in one of its two buffers (the step computed it there or returned the carry
 * unchanged) or in a row just stacked (rows are written once) stays there; any other is
 * copied to its buffer the current value is not in. NOTE: that buffer holds no value of
 * this step (one computed there is that carry's, kept), so no copy overwrites a source. */
static amber_status scan_keep(amber_session *s, const loop_mem *lm, amber_tensor *carries,
                              const amber_tensor *fresh, const amber_tensor *at,
                              const am_node *n) {
    int nc = n->n_carries;
    for (int c = 0; c < nc; c++) {
        if (fresh[c].dtype != carries[c].dtype ||
            !same_shape(&fresh[c], carries[c].shape, carries[c].rank))
            return am_fail(&s->err, AMBER_ERR_SHAPE, "loop carry %d changes its type", c);
        size_t nb;
        am_tensor_check(&carries[c], NULL, &nb, NULL);
        void *p = fresh[c].data;
        bool keep = !nb || p == lm->bufs[c] || p == lm->bufs[nc + c];
        for (int y = nc; y < n->n_out && !keep; y++) {
            size_t row;
            am_tensor_check(&at[y], NULL, &row, NULL);
            keep = p == at[y].data && row == nb;
        }
        carries[c].data = keep ? p : memcpy(at[c].data, p, nb);
    }
    return AMBER_OK;
}

/* scan: for i in 0..length (or reversed): carries, ys[i] = body(carries, xs[i]..., extra);
 * outputs are the final carries, then every y stacked along a new leading dim (in dest's
 * memory for the scan's results where it agrees). From step 1 on the body computes its
 * results in place (scan_dests) and the carries swap buffers; the final carries are
 * copied into theirs (a row of ys may be the caller's memory). */
static amber_status run_scan(amber_session *s, const am_node *n, const am_symbols *syms,
                             amber_tensor *ins, amber_tensor *outs, int depth,
                             const amber_tensor *const *dest) {
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
    amber_tensor *args, *res, *xs, *at = NULL;
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
    frame body = {0};
    size_t *rows = NULL;
    if ((st = am_arena_alloc(&s->arena, sizeof(size_t) * (size_t)(nx + 1), (void **)&rows,
                             &s->err)) != AMBER_OK)
        return st;
    for (int k = 0; k < nx; k++) am_tensor_check(&args[nc + k], NULL, &rows[k], NULL);
    for (int64_t step = 0; step < length; step++) {
        int64_t i = n->reverse ? length - 1 - step : step;
        if ((st = spend_iteration(s)) != AMBER_OK) break;
        for (int k = 0; k < nx; k++) args[nc + k].data = (char *)xs[k].data + (size_t)i * rows[k];
        if (step + 1 < length) scan_prefetch(xs, rows, nx, n->reverse ? i - 1 : i + 1);
        /* The first step computes the body's cached values and allocates the stacked
         * outputs; then the body is entered once, and iterations reclaim their memory. */
        if (step == 1 && ((st = frame_enter(s, n->callee, args, depth + 1, &body)) != AMBER_OK ||
                          (st = scan_dests(s, n, args, outs, &body, &at)) != AMBER_OK ||
                          (st = loop_begin(s, &lm, args, nc, 2)) != AMBER_OK))
            break;
        if (step) scan_aim(n, &lm, args, outs, i, at);
        st = step ? frame_call(s, &body, args, res) : run_function(s, n->callee, args, res, depth + 1);
        if (st == AMBER_OK) st = scan_ys(s, n, res, outs, step, i, length, dest);
        if (st != AMBER_OK) break;
        if (step == 0) {
            for (int c = 0; c < nc; c++) args[c] = res[c];
        } else {
            st = scan_keep(s, &lm, args, res, at, n);
            loop_reclaim(s, &lm);
            if (st != AMBER_OK) break;
        }
    }
    free(lm.saved);
    frame_leave(s, &body);
    if (st != AMBER_OK) return st;
    for (int c = 0; c < nc; c++) {
        outs[c] = args[c];
        size_t nb;
        am_tensor_check(&args[c], NULL, &nb, NULL);
        if (lm.bufs && nb && args[c].data != lm.bufs[c] && args[c].data != lm.bufs[nc + c])
            outs[c].data = memcpy(lm.bufs[c], args[c].data, nb);
    }
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

/* ---------------------------------------------------------------- memory plans */

typedef struct plan_item {
    size_t size;
    uint32_t first, last, index;
} plan_item;

static int larger_first(const void *a, const void *b) {
    const plan_item *x = (const plan_item *)a, *y = (const plan_item *)b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Offsets for f's planned values with the symbols bound: largest first, each at the
 * lowest offset where it fits beside the values already placed whose lifetimes overlap
 * its own (the greedy-by-size strategy of TFLite's arena planner and ONNX Runtime's
 * memory patterns). With `ready`, values only the uncached hoisted nodes need are left
 * out. */
static amber_status compute_plan(amber_session *s, const am_func *f, const am_symbols *syms,
                                 bool ready, struct plan *p) {
    uint32_t n = f->n_planned, m = 0, n_placed = 0;
    plan_item *items = (plan_item *)malloc(sizeof *items * (n + 1u));
    uint32_t *placed = (uint32_t *)malloc(sizeof *placed * (n + 1u)); /* by offset */
    amber_status st = AMBER_OK;
    size_t total = 0, value_bytes = 0;
    if (!items || !placed) st = am_fail(&s->err, AMBER_ERR_NO_MEMORY, "out of memory");
    for (uint32_t i = 0; st == AMBER_OK && i < n; i++) {
        p->offset[i] = 0;
        if (ready && f->plan_inner[i]) continue;
        const am_type *t = f->value_types[f->planned[i]];
        amber_tensor d = {.dtype = t->dtype, .rank = t->rank};
        size_t nb;
        if ((st = am_type_eval(t, syms, d.shape, &s->err)) != AMBER_OK ||
            (st = am_tensor_check(&d, NULL, &nb, &s->err)) != AMBER_OK)
            break;
        if (!am_add_size(nb ? nb : 1, 63, &nb) || !am_add_size(value_bytes, nb & ~(size_t)63, &value_bytes)) {
            st = am_fail(&s->err, AMBER_ERR_LIMIT, "the values of %s take more than %zu bytes",
                         f->name, SIZE_MAX);
            break;
        }
        plan_item it = {nb & ~(size_t)63, f->plan_first[i], f->plan_last[i], i};
        items[m++] = it;
    }
    if (st == AMBER_OK) qsort(items, m, sizeof *items, larger_first);
    for (uint32_t j = 0; st == AMBER_OK && j < m; j++) {
        const plan_item *it = &items[j];
        size_t off = 0; /* offsets stay below value_bytes: no overflow */
        uint32_t q = 0;
        for (; q < n_placed; q++) {
            const plan_item *o = &items[placed[q]];
            size_t oo = p->offset[o->index];
            if (o->last < it->first || o->first > it->last) continue; /* never both live */
            if (oo >= off + it->size) break;                           /* fits before o */
            if (oo + o->size > off) off = oo + o->size;
        }
        p->offset[it->index] = off;
        if (off + it->size > total) total = off + it->size;
        q = 0;
        while (q < n_placed && p->offset[items[placed[q]].index] <= off) q++;
        memmove(&placed[q + 1], &placed[q], sizeof *placed * (n_placed - q));
        placed[q] = j;
        n_placed++;
    }
    free(items);
    free(placed);
    p->size = total;
    p->value_bytes = value_bytes;
    return st;
}

/* The plan of function fi for the bound symbols: cached, or computed into the least
 * recently used slot. */
static amber_status plan_for(amber_session *s, uint32_t fi, const am_symbols *syms, bool ready,
                             struct plan **out) {
    const am_func *f = &s->model->prog.funcs[fi];
    struct plan *slots = &s->plans[(size_t)fi * AM_PLAN_SLOTS], *victim = &slots[0];
    size_t key_bytes = sizeof(int64_t) * (size_t)syms->n;
    ready = ready || !f->n_plan_inner; /* the same plan either way */
    s->clock++;
    for (int i = 0; i < AM_PLAN_SLOTS; i++) {
        struct plan *p = &slots[i];
        if (p->valid && p->ready == ready && (!key_bytes || !memcmp(p->key, syms->values, key_bytes))) {
            p->used = s->clock;
            s->counts.plan_reuses++;
            *out = p;
            return AMBER_OK;
        }
        if (victim->valid && (!p->valid || p->used < victim->used)) victim = p;
    }
    victim->valid = false;
    if (!victim->key && !(victim->key = (int64_t *)malloc(key_bytes + sizeof(int64_t))))
        return am_fail(&s->err, AMBER_ERR_NO_MEMORY, "out of memory");
    if (!victim->offset && !(victim->offset = (size_t *)malloc(sizeof(size_t) * (f->n_planned + 1u))))
        return am_fail(&s->err, AMBER_ERR_NO_MEMORY, "out of memory");
    if (!victim->memo && !(victim->memo = (struct memo *)calloc(f->n_nodes + 1u, sizeof(struct memo))))
        return am_fail(&s->err, AMBER_ERR_NO_MEMORY, "out of memory");
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) victim->memo[ni].known = false;
    victim->stamp = ++s->plan_stamps;
    amber_status st = compute_plan(s, f, syms, ready, victim);
    if (st != AMBER_OK) return st;
    if (key_bytes) memcpy(victim->key, syms->values, key_bytes);
    victim->ready = ready;
    victim->used = s->clock;
    victim->valid = true;
    s->counts.plans++;
    *out = victim;
    return AMBER_OK;
}

/* The name of argument i of f in messages: the entry point's input name for the entry
 * function, else the function's parameter name. */
static const char *arg_name(const amber_session *s, const am_func *f, int depth, uint32_t i) {
    if (!depth && s->entry && i < s->entry->n_inputs) return s->entry->inputs[i].name;
    return f->param_names[i];
}

/* Checks the arguments of function fi, binds its symbols and places its planned values:
 * fr is then ready for frame_call, and frame_leave releases what it holds. */
static amber_status frame_enter(amber_session *s, uint32_t fi, const amber_tensor *args,
                                int depth, frame *fr) {
    const am_program *p = &s->model->prog;
    const am_func *f = &p->funcs[fi];
    memset(fr, 0, sizeof *fr);
    fr->fi = fi;
    fr->depth = depth;
    fr->dest = depth ? NULL : s->dest;
    fr->end = f->n_nodes;
    if (depth > s->max_depth)
        return am_fail(&s->err, AMBER_ERR_LIMIT, "call depth exceeds the limit of %d (in %s)",
                       s->max_depth, f->name);
    amber_tensor *vals;
    int64_t *symvals;
    amber_status st = am_arena_calloc(&s->arena, f->n_values, sizeof *vals, (void **)&vals, &s->err);
    if (st == AMBER_OK)
        st = am_arena_calloc(&s->arena, (size_t)f->syms.n * 2, sizeof *symvals, (void **)&symvals, &s->err);
    if (st != AMBER_OK) return st;
    fr->vals = vals;
    am_symbols syms = f->syms;
    syms.values = symvals;
    syms.check = false;
    for (int i = 0; i < syms.n; i++) symvals[i] = -1;
    /* Bind symbols from the arguments; static dims and dtypes must match. */
    for (uint32_t i = 0; i < f->n_params; i++) {
        const am_type *t = &f->param_types[i];
        const amber_tensor *a = &args[i];
        const char *an = arg_name(s, f, depth, i);
        if ((st = am_tensor_check(a, NULL, NULL, &s->err)) != AMBER_OK)
            return am_fail(&s->err, st, "%s: input \"%.100s\": %.300s", f->name, an, s->err.msg);
        if (a->dtype != t->dtype || a->rank != t->rank) {
            char b[200];
            return am_fail(&s->err, a->dtype != t->dtype ? AMBER_ERR_DTYPE : AMBER_ERR_SHAPE,
                           "%s: input \"%.100s\" is %s%s, the function takes "
                           "%s of rank %d", f->name, an, amber_dtype_name(a->dtype),
                           am_shape_str(a->shape, a->rank, b, sizeof b), amber_dtype_name(t->dtype),
                           t->rank);
        }
        for (int d = 0; d < t->rank; d++) {
            int sym = f->param_symbol[i * AMBER_MAX_RANK + (uint32_t)d];
            if (sym < 0) continue;
            if (a->shape[d] < 1)
                return am_fail(&s->err, AMBER_ERR_SHAPE, "%s: input \"%.100s\" dim %d (%s) must be "
                               ">= 1, got %lld", f->name, an, d, syms.names[sym], (long long)a->shape[d]);
            if (symvals[sym] < 0) {
                symvals[sym] = a->shape[d];
            } else if (symvals[sym] != a->shape[d]) {
                return am_fail(&s->err, AMBER_ERR_SHAPE, "%s: input \"%.100s\" dim %d is %lld but "
                               "\"%s\" is %lld from an earlier input", f->name, an, d,
                               (long long)a->shape[d], syms.names[sym], (long long)symvals[sym]);
            }
        }
    }
    for (uint32_t i = 0; i < f->n_params; i++) {
        if ((st = check_type(s, &f->param_types[i], &syms, &args[i], f->name, "input", i,
                             arg_name(s, f, depth, i))) != AMBER_OK)
            return st;
        am_tensor_copy(&vals[i], &args[i]);
    }
    struct hoisted *h = &s->hoisted[fi];
    if (f->n_cached && !h->vals &&
        !(h->vals = (amber_tensor *)calloc(f->n_values, sizeof *h->vals)))
        return am_fail(&s->err, AMBER_ERR_NO_MEMORY, "out of memory");
    bool ready = h->n_ready == f->n_cached; /* every hoisted value is cached */
    fr->syms = syms;
    fr->bound = symvals + syms.n;
    if (syms.n) memcpy(fr->bound, symvals, sizeof(int64_t) * (size_t)syms.n);
    fr->ready = ready;
    /* Planned values go to the session's block in the outermost function, else to one
     * allocation of the run arena released on return (results are never planned, so
     * nothing returned points into it). Their data pointers are set here, so a plan
     * replaced by a nested call of the same function changes nothing for this one. */
    char *base = NULL;
    size_t planned_size = 0;
    struct plan *plan = NULL;
    if (f->n_planned) {
        if ((st = plan_for(s, fi, &syms, ready, &plan)) != AMBER_OK) return st;
        planned_size = plan->size;
        if (depth == 0) {
            st = block_reserve(s, planned_size);
            base = (char *)s->block;
            s->counts.plan_bytes = plan->size;
            s->counts.plan_value_bytes = plan->value_bytes;
        } else {
            st = value_alloc(s, planned_size, (void **)&base);
        }
        if (st != AMBER_OK) return st;
        fr->base = base;
        fr->planned_size = planned_size;
        fr->plan = plan;
        fr->stamp = plan->stamp;
        for (uint32_t i = 0; base && i < f->n_planned; i++) /* base NULL: nothing placed */
            vals[f->planned[i]].data = base + plan->offset[i];
    } else if (depth == 0) {
        s->counts.plan_bytes = s->counts.plan_value_bytes = 0;
    }
    return AMBER_OK;
}

/* Runs an entered function on args, which must have the types of those it was entered
 * with (a loop's carries keep theirs, checked by keep_carries; its scanned slices and
 * invariant inputs are alike on every iteration). */
static amber_status frame_call(amber_session *s, frame *fr, const amber_tensor *args,
                               amber_tensor *results) {
    const am_func *f = &s->model->prog.funcs[fr->fi];
    for (uint32_t i = 0; i < f->n_params; i++) am_tensor_copy(&fr->vals[i], &args[i]);
    if (fr->syms.n) memcpy(fr->syms.values, fr->bound, sizeof(int64_t) * (size_t)fr->syms.n);
    amber_status st = run_nodes(s, fr);
    if (st == AMBER_OK)
        for (uint32_t k = 0; k < f->n_results; k++) am_tensor_copy(&results[k], &fr->vals[f->results[k]]);
    return st;
}

static void frame_leave(amber_session *s, frame *fr) {
    if (fr->depth > 0 && fr->base) value_release(s, fr->base, fr->planned_size);
    fr->base = NULL;
}

static amber_status run_function(amber_session *s, uint32_t fi, const amber_tensor *args,
                                 amber_tensor *results, int depth) {
    frame fr;
    amber_status st = frame_enter(s, fi, args, depth, &fr);
    if (st == AMBER_OK) st = frame_call(s, &fr, args, results);
    frame_leave(s, &fr);
    return st;
}

/* Keeps in memo a copy of the attributes a node decoded (nothing to keep when they are
 * static); false if there is no memory for it (the node then decodes every run). */
static bool remember(struct memo *memo, const am_node *n, const am_attrs *attrs) {
    if (n->static_attrs) return true;
    if (!memo->attrs && !(memo->attrs = (am_attrs *)malloc(sizeof *memo->attrs))) return false;
    *memo->attrs = *attrs;
    return true;
}

/* The result type and attributes of op node n for these inputs: remembered in memo (if
 * any) from an earlier run with the same symbols, else from its shape rules, checked
 * against the declared type before any kernel writes (a planned slot holds the declared
 * type's bytes). */
static amber_status op_output(amber_session *s, const am_node *n, const am_symbols *syms,
                              struct memo *memo, const amber_tensor *ins, am_attrs *buf,
                              const am_attrs **attrs, amber_tensor *out, size_t *nbytes) {
    if (memo && memo->known) {
        *attrs = n->static_attrs ? n->static_attrs : memo->attrs;
        am_tensor_copy(out, &memo->out);
        *nbytes = memo->nbytes;
        return AMBER_OK;
    }
    amber_status st = am_node_attrs(n, &s->model->doc, syms, buf, attrs, &s->err);
    if (st == AMBER_OK) st = am_op_infer(n->op, ins, n->n_in, *attrs, out, &s->err);
    if (st == AMBER_OK) st = am_tensor_check(out, NULL, nbytes, &s->err);
    if (st == AMBER_OK) st = check_type(s, &n->out_types[0], syms, out, NULL, "output", 0, NULL);
    if (st == AMBER_OK && memo && remember(memo, n, *attrs)) {
        am_tensor_copy(&memo->out, out);
        memo->nbytes = *nbytes;
        memo->known = true;
    }
    return st;
}

/* Computes op node n into out (its memory in place): the attention, layer norm or
 * elementwise group n ends, or n's own kernel. */
static amber_status op_compute(const am_func *f, const am_node *n, am_ctx *ctx,
                               const amber_tensor *vals, const amber_tensor *ins,
                               const am_attrs *attrs, amber_tensor *out) {
    if (n->attn) {
        amber_tensor ext[AM_ATTN_MAX_EXT];
        for (int k = 0; k < n->attn->n_ext; k++) am_tensor_copy(&ext[k], &vals[n->attn->ext[k]]);
        return am_attention_run(n->attn, ctx, ext, out);
    }
    if (n->norm) {
        amber_tensor ext[3];
        for (int k = 0; k < n->norm->n_ext; k++) am_tensor_copy(&ext[k], &vals[n->norm->ext[k]]);
        return am_layernorm_run(n->norm, ctx, ext, out);
    }
    if (n->cell) {
        const am_cell *c = n->cell;
        amber_tensor c_out, src[3];
        am_tensor_copy(&c_out, &vals[c->c_val]);
        for (int k = 0; k < c->n_src; k++) am_tensor_copy(&src[k], &vals[c->src[k]]);
        return am_cell_run(c, ctx, src, &vals[c->c_prev], &c_out, out);
    }
    if (n->fuse == AM_FUSE_ROOT) {
        amber_tensor ext[AM_FUSED_MAX_EXT];
        for (int k = 0; k < n->fused->n_ext; k++) am_tensor_copy(&ext[k], &vals[n->fused->ext[k]]);
        return n->fused->producer ? am_epilogue_run(f, n, ctx, vals, ext, out)
                                  : am_fused_run(n->fused, ctx, ext, out);
    }
    return am_kernel_call(n->op, ctx, ins, n->n_in, attrs, out);
}

/* set-up code, once per node or function: optimised for size */
#define COLD __attribute__((cold, noinline))

/* Where node n (am_node.part) writes its result inside its concat's: *at, its images
 * *stride bytes apart. Its slot follows from the declared types (checked to fit; n's
 * result has its declared type: op_output). */
COLD static amber_status part_place(amber_session *s, const am_func *f, const am_node *n,
                                    const am_symbols *syms, const amber_tensor *vals,
                                    char **at, int64_t *stride) {
    const am_node *c = &f->nodes[n->part - 1];
    int64_t cs[AMBER_MAX_RANK], ps[AMBER_MAX_RANK], off = -1, sum = 0;
    amber_status st = am_type_eval(f->value_types[c->out[0]], syms, cs, &s->err);
    bool ok = true;
    for (int k = 0; st == AMBER_OK && ok && k < c->n_in; k++) {
        if ((st = am_type_eval(f->value_types[c->in[k]], syms, ps, &s->err)) != AMBER_OK) break;
        ok = ps[1] >= 0 && ps[0] == cs[0] && ps[2] == cs[2] && ps[3] == cs[3];
        if (c->in[k] == n->out[0]) off = sum;
        ok = ok && am_add_i64(sum, ps[1], &sum);
    }
    if (st != AMBER_OK) return st;
    if (!ok || sum != cs[1] || off < 0)
        return am_fail(&s->err, AMBER_ERR_SHAPE, "concat: its inputs' declared types do not "
                       "add up to its own");
    int64_t inner = cs[2] * cs[3] * (int64_t)amber_dtype_size(f->value_types[c->out[0]]->dtype);
    *at = (char *)vals[c->out[0]].data + off * inner;
    *stride = cs[1] * inner;
    return AMBER_OK;
}

/* Computes part node n (a conv2d, or the group after one: part_ok in plan.c) into out,
 * whose images lie `stride` bytes apart: image by image, each a batch of one. */
COLD static amber_status part_compute(const am_func *f, const am_node *n, am_ctx *ctx,
                                      amber_tensor *vals, const amber_tensor *ins,
                                      const am_attrs *attrs, amber_tensor *out,
                                      int64_t stride) {
    const am_fused *g = n->fuse == AM_FUSE_ROOT ? n->fused : NULL;
    const am_node *p = g ? &f->nodes[g->producer - 1] : n;
    amber_tensor x = vals[p->in[0]], y = vals[p->out[0]], o = *out, one[2];
    amber_tensor ext[AM_FUSED_MAX_EXT];
    size_t xb = (size_t)(am_numel(&x) / x.shape[0]) * amber_dtype_size(x.dtype);
    amber_status st = AMBER_OK;
    am_arena_mark mark = am_arena_get_mark(ctx->scratch);
    for (int64_t i = 0; st == AMBER_OK && i < out->shape[0]; i++) {
        vals[p->in[0]].shape[0] = vals[p->out[0]].shape[0] = o.shape[0] = 1;
        vals[p->in[0]].data = (char *)x.data + (size_t)i * xb;
        o.data = (char *)out->data + i * stride;
        am_tensor_copy(&one[0], &vals[p->in[0]]);
        if (!g) am_tensor_copy(&one[1], &ins[1]); /* (x, w) */
        for (int k = 0; g && k < g->n_ext; k++) am_tensor_copy(&ext[k], &vals[g->ext[k]]);
        st = g ? am_epilogue_run(f, n, ctx, vals, ext, &o)
               : am_kernel_call(n->op, ctx, one, 2, attrs, &o);
        am_arena_release(ctx->scratch, mark);
    }
    vals[p->in[0]] = x, vals[p->out[0]] = y;
    return st;
}

/* Whether group root n (am_node.over) may write its result over its input: that input
 * has the result's type (and memory); else the result gets a block of its own. */
static bool over_place(const am_node *n, const amber_tensor *vals, const amber_tensor *out,
                       size_t nbytes) {
    const amber_tensor *v = &vals[n->fused->ext[n->over - 1]];
    return nbytes && v->data && v->dtype == out->dtype && v->rank == out->rank &&
           !memcmp(v->shape, out->shape, sizeof(int64_t) * (size_t)out->rank);
}

/* Runs op node ni of f into outs[0]: a cached hoisted value, an alias of its input (a
 * reshape), nothing (a fused member: its root computes it), or computed into its
 * planned slot, the hoisted values (cached, h), the caller's memory for this result
 * (dest, when its type is the result's) or a fresh block. */
static amber_status run_op_node(amber_session *s, const am_func *f, uint32_t ni,
                                amber_tensor *vals, const am_symbols *syms, struct memo *memo,
                                struct hoisted *h, am_ctx *ctx, const amber_tensor *ins,
                                amber_tensor *outs, const amber_tensor *dest) {
    const am_node *n = &f->nodes[ni];
    bool cache = n->hoist == AM_HOIST_CACHED;
    if (cache && h->vals[n->out[0]].data) {
        am_tensor_copy(&outs[0], &h->vals[n->out[0]]);
        return AMBER_OK;
    }
    am_attrs buf;
    const am_attrs *attrs;
    size_t nbytes = 0;
    amber_status st = op_output(s, n, syms, memo, ins, &buf, &attrs, &outs[0], &nbytes);
    if (st == AMBER_OK && n->alias) { /* a reshape: the same bytes */
        outs[0].data = ins[0].data;
        return AMBER_OK;
    }
    if (st == AMBER_OK && n->gathered) { /* a concat its inputs were computed into */
        outs[0].data = vals[n->out[0]].data;
        return AMBER_OK;
    }
    if (st == AMBER_OK && n->fuse == AM_FUSE_MEMBER) outs[0].data = NULL;
    if (st != AMBER_OK || n->fuse == AM_FUSE_MEMBER) /* its root computes it */
        return st;
    char *at = NULL;
    int64_t stride = 0;
    if (cache) st = hoisted_alloc(s, nbytes, &outs[0].data);
    else if (n->part) st = part_place(s, f, n, syms, vals, &at, &stride), outs[0].data = at;
    else if (f->plan_slot[n->out[0]] >= 0) outs[0].data = vals[n->out[0]].data;
    else if (n->over && over_place(n, vals, &outs[0], nbytes)) /* over a dying input */
        outs[0].data = vals[n->fused->ext[n->over - 1]].data;
    else if (dest && same_type(dest, &outs[0])) outs[0].data = dest->data; /* the caller's */
    else st = value_alloc(s, nbytes, &outs[0].data);
    if (st == AMBER_OK && n->cell && n->cell->c_node == ni) /* the cell's last node writes it */
        return st;
    if (st == AMBER_OK) {
        ctx->fixed_inputs = n->fixed_in;
        st = n->part && outs[0].shape[0] > 1
                 ? part_compute(f, n, ctx, vals, ins, attrs, &outs[0], stride)
                 : op_compute(f, n, ctx, vals, ins, attrs, &outs[0]);
        if (cache && st == AMBER_OK) {
            h->vals[n->out[0]] = outs[0];
            h->n_ready++;
        } else if (cache) {
            hoisted_drop(s, outs[0].data, nbytes); /* the next run tries again */
        }
    }
    am_arena_reset(&s->scratch);
    return st;
}

/* Runs the entered function's nodes in order: its vals hold the arguments and the planned
 * values' memory; its plan (or NULL) is the plan for these symbols, whose memo of result
 * types is used only while the slot still holds that plan (its stamp: a nested call may
 * replace it); a result goes to its dest (if any) when the types agree. */
static amber_status run_nodes(amber_session *s, const frame *fr) {
    const am_func *f = &s->model->prog.funcs[fr->fi];
    am_symbols syms = fr->syms; /* shares its values: a stacking while binds its trip dim */
    struct hoisted *h = &s->hoisted[fr->fi];
    amber_tensor *vals = fr->vals;
    struct plan *plan = fr->plan;
    int depth = fr->depth;
    am_ctx ctx = {&s->err, &s->scratch, s->pool, 0, &s->keep, NULL,
                  (s->model->opts.flags & AMBER_OPEN_PLAIN_SUMS) != 0};
    amber_status st = AMBER_OK;
    for (uint32_t ni = fr->start; ni < fr->end; ni++) {
        const am_node *n = &f->nodes[ni];
        if (fr->ready && n->hoist == AM_HOIST_INNER) continue;
        if (n->hoist == AM_HOIST_CACHED && h->vals[n->out[0]].data) { /* as run_op_node has it */
            am_tensor_copy(&vals[n->out[0]], &h->vals[n->out[0]]);
            continue;
        }
        struct memo *memo = plan && plan->stamp == fr->stamp ? &plan->memo[ni] : NULL;
        if (memo && memo->known && n->fuse == AM_FUSE_MEMBER && n->hoist == AM_HOIST_NONE &&
            !n->alias) { /* its type, as run_op_node gives it: its root computes it */
            am_tensor_copy(&vals[n->out[0]], &memo->out);
            vals[n->out[0]].data = NULL;
            continue;
        }
        static const char *const kinds[] = {"op", "constant", "weight", "call", "cond", "while", "scan"};
        const char *opname = n->kind == AM_NODE_OP ? n->op->name : kinds[n->kind];
        amber_tensor *ins = NULL, *outs = NULL;
        st = am_arena_alloc(&s->arena, sizeof(amber_tensor) * (size_t)(n->n_in + n->n_out + 1),
                            (void **)&ins, &s->err);
        if (st != AMBER_OK) return st;
        outs = ins + n->n_in;
        for (int k = 0; k < n->n_in; k++) am_tensor_copy(&ins[k], &vals[n->in[k]]);
        switch (n->kind) {
        case AM_NODE_CONSTANT:
        case AM_NODE_WEIGHT:
            am_tensor_copy(&outs[0], &n->tensor);
            break;
        case AM_NODE_CALL:
            st = spend_call(s);
            if (st == AMBER_OK) st = run_function(s, n->callee, ins, outs, depth + 1);
            break;
        case AM_NODE_COND:
            if (ins[0].dtype != AMBER_BOOL || ins[0].rank != 0)
                st = am_fail(&s->err, AMBER_ERR_SHAPE, "the predicate must be bool[]");
            else if ((st = spend_call(s)) == AMBER_OK)
                st = run_function(s, scalar_true(&ins[0]) ? n->callee : n->callee2, ins + 1, outs,
                                  depth + 1);
            break;
        case AM_NODE_WHILE:
            st = run_while(s, n, &syms, ins, outs, depth);
            break;
        case AM_NODE_SCAN:
            st = run_scan(s, n, &syms, ins, outs, depth, fr->dest);
            break;
        case AM_NODE_OP:
            st = run_op_node(s, f, ni, vals, &syms, memo, h, &ctx, ins, outs,
                             fr->dest ? fr->dest[n->out[0]] : NULL);
            break;
        }
        for (int k = 0; st == AMBER_OK && k < n->n_out; k++) {
            if (n->kind != AM_NODE_OP) /* op results were checked before their kernel */
                st = check_type(s, &n->out_types[k], &syms, &outs[k], NULL, "output", (unsigned)k, NULL);
            am_tensor_copy(&vals[n->out[k]], &outs[k]);
        }
        if (st != AMBER_OK) {
            if (n->kind >= AM_NODE_CALL && strstr(s->err.msg, ", node "))
                return st; /* the callee already said where */
            char msg[AM_ERR_MSG];
            memcpy(msg, s->err.msg, sizeof msg);
            return am_fail(&s->err, st, "%s, node %u (%s): %s", f->name, ni, opname, msg);
        }
    }
    return AMBER_OK;
}

/* amber_session_run_into: the caller's output descriptors (copied: the run overwrites
 * outputs[]) checked and, when any gives memory, indexed by the entry function's values
 * in s->dest (*want NULL when none does: the run is amber_session_run's). */
static amber_status want_outputs(amber_session *s, const am_entry *e, amber_tensor *outputs,
                                 amber_tensor **want) {
    const am_func *f = &s->model->prog.funcs[e->func];
    amber_tensor *w;
    const amber_tensor **dest;
    uint32_t given = 0;
    amber_status st = am_arena_alloc(&s->arena, sizeof *w * (e->n_outputs + 1u), (void **)&w,
                                     &s->err);
    for (uint32_t k = 0; st == AMBER_OK && k < e->n_outputs; k++) {
        am_tensor_copy(&w[k], &outputs[k]);
        if (!w[k].data) continue;
        given++;
        if ((st = am_tensor_check(&w[k], NULL, NULL, &s->err)) != AMBER_OK)
            return am_fail(&s->err, st, "%s: output \"%.100s\": %.300s", e->name,
                           e->outputs[k].name, s->err.msg);
        if ((uintptr_t)w[k].data % amber_dtype_size(w[k].dtype))
            return am_fail(&s->err, AMBER_ERR_INVALID_ARGUMENT, "%s: output \"%.100s\": data at "
                           "%p is not aligned to its element size (%zu bytes)", e->name,
                           e->outputs[k].name, w[k].data, amber_dtype_size(w[k].dtype));
    }
    if (st != AMBER_OK || !given) return st;
    st = am_arena_calloc(&s->arena, f->n_values, sizeof *dest, (void **)&dest, &s->err);
    for (uint32_t k = 0; st == AMBER_OK && k < e->n_outputs; k++)
        if (w[k].data) dest[f->results[k]] = &w[k];
    if (st == AMBER_OK) s->dest = dest, *want = w;
    return st;
}

/* After a run into the caller's memory: each result of the type the caller gave that
 * some other memory holds (an input, a weight, a loop's result, ...) is copied there. */
static void finish_outputs(const am_entry *e, const amber_tensor *want, amber_tensor *outputs) {
    for (uint32_t k = 0; k < e->n_outputs; k++) {
        amber_tensor *o = &outputs[k];
        size_t nb = 0;
        if (!want[k].data || o->data == want[k].data || !same_type(o, &want[k]) ||
            am_tensor_check(o, NULL, &nb, NULL) != AMBER_OK)
            continue;
        if (nb) memmove(want[k].data, o->data, nb); /* NOTE: may be the caller's input */
        o->data = want[k].data;
    }
}

/* ---------------------------------------------------------------- image by image
 * A batch whose layers' values outgrow the caches runs faster one image at a time: the
 * memory plan is then the batch-1 plan and stays in cache. Only for functions whose
 * every node acts on each index of the leading dim (the batch) alone, and whose kernels
 * then give the same bits for one row as for many (docs/c-api.md, "Batches"). */
#define AM_SPLIT_MIN_PLAN (256u << 10) /* batch-1 plans smaller than this run batched */

enum { SPLIT_NO, SPLIT_B, SPLIT_F }; /* a value: not allowed, batched, free of the batch */
enum { SPLIT_UNASKED, SPLIT_NEVER, SPLIT_YES }; /* a function (struct hoisted.split) */

/* B: dim 0 is exactly the symbol b and no other dim names it; F: no dim names b; any
 * other dim expression than a parameter's symbol: NO. */
COLD static int split_class(const am_func *f, const am_type *t, int b) {
    int c = SPLIT_F;
    for (int d = 0; d < t->rank; d++) {
        const am_json *j = t->dims[d];
        if (j->type == AM_JSON_NUMBER) continue;
        int k = am_symbols_find(&f->syms, j->str, j->len);
        if (k < 0 || k >= f->n_param_syms || (size_t)f->syms.lens[k] != j->len) return SPLIT_NO;
        if (k == b && d) return SPLIT_NO;
        if (k == b) c = SPLIT_B;
    }
    return c;
}

/* Whether an axis attribute (normalised for rank r) spares dim 0. */
COLD static bool split_axis(int64_t axis, int r) { return axis != 0 && axis != -r; }

/* Whether op node n computes each row of its batched result from the same rows of its
 * batched inputs only (cls: the class of each input; out: its result's type). */
COLD static bool split_node(const am_func *f, const am_node *n, const int *cls) {
    const am_type *out = n->out_types;
    const am_attrs *a = n->static_attrs;
    int r = out->rank;
    switch (n->op->kind) {
    case AM_KIND_UNARY: case AM_KIND_BINARY: case AM_KIND_WHERE: case AM_KIND_CAST:
        for (int k = 0; k < n->n_in; k++) {
            const am_type *t = f->value_types[n->in[k]];
            bool one = t->rank == r && t->dims[0]->type == AM_JSON_NUMBER && t->dims[0]->i == 1;
            if (cls[k] == SPLIT_B ? t->rank != r : t->rank > r || (t->rank == r && !one))
                return false;
        }
        return true;
    default:
        break;
    }
    const am_type *t0 = f->value_types[n->in[0]];
    if (cls[0] != SPLIT_B) return false;
    switch (n->op->id) {
    case AM_OP_CONV2D:
    case AM_OP_MATMUL: /* NOTE: [N, K] by a fixed [K, M] only: a batched right operand
                        * would make the rows of a product of batches */
        r = n->op->id == AM_OP_CONV2D ? 4 : 2;
        return cls[1] == SPLIT_F && f->value_types[n->in[1]]->rank == r && t0->rank == r;
    case AM_OP_MAX_POOL2D:
    case AM_OP_AVG_POOL2D:
    case AM_OP_RESHAPE:
        return true;
    case AM_OP_TRANSPOSE:
        return a && a->n_perm == r && a->perm[0] == 0;
    case AM_OP_SUM:
    case AM_OP_MAX:
    case AM_OP_MIN:
        if (!a || a->n_axes < 1) return false;
        for (int k = 0; k < a->n_axes; k++)
            if (!split_axis(a->axes[k], t0->rank)) return false;
        return true;
    case AM_OP_CONCAT:
        for (int k = 0; k < n->n_in; k++)
            if (cls[k] != SPLIT_B) return false;
        return a && split_axis(a->axis, r);
    default:
        return false;
    }
}

/* The symbol of f's batch when f can run image by image (see above), else -1. */
COLD static int split_symbol(const am_func *f) {
    if (!f->n_params || !f->n_results || f->param_types[0].rank < 1) return -1;
    int b = f->param_symbol[0];
    for (uint32_t i = 0; i < f->n_params; i++)
        if (b < 0 || split_class(f, &f->param_types[i], b) != SPLIT_B) return -1;
    for (uint32_t k = 0; k < f->n_results; k++)
        if (split_class(f, f->value_types[f->results[k]], b) != SPLIT_B) return -1;
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        const am_node *n = &f->nodes[ni];
        if (n->kind == AM_NODE_CONSTANT || n->kind == AM_NODE_WEIGHT) continue;
        if (n->kind != AM_NODE_OP || n->n_out != 1 || n->attn || n->norm || n->cell) return -1;
        int cls[8], out = split_class(f, n->out_types, b), all = SPLIT_F;
        if (n->n_in > 8 || out == SPLIT_NO) return -1;
        for (int k = 0; k < n->n_in; k++) {
            cls[k] = split_class(f, f->value_types[n->in[k]], b);
            if (cls[k] != SPLIT_F) all = cls[k];
        }
        if (all == SPLIT_NO || (out == SPLIT_F && all != SPLIT_F)) return -1;
        if (out == SPLIT_B && !split_node(f, n, cls)) return -1;
    }
    return b;
}

/* Where the image-by-image part of f ends (h->cut): at its first matmul (NOTE: the
 * GEMM's path, and so its bits, depend on the row count; the rest runs batched), moved
 * back so that no fused group, and no concat computed in place (am_node.part), spans it;
 * and the values made before it that nodes after it read or f returns (h->cross, to
 * gather all images' rows). False: no split. */
COLD static bool split_cut(const am_func *f, int b, struct hoisted *h) {
    uint32_t cut = 0;
    while (cut < f->n_nodes && !(f->nodes[cut].kind == AM_NODE_OP &&
                                  f->nodes[cut].op->id == AM_OP_MATMUL)) cut++;
    for (uint32_t old = cut + 1; old != cut;) {
        old = cut;
        for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
            const am_node *n = &f->nodes[ni];
            if (n->fuse == AM_FUSE_MEMBER && ni < cut && n->root >= cut) cut = ni;
            if (n->part && ni < cut && n->part - 1 >= cut) cut = ni; /* (a concat's parts) */
            if (n->fuse == AM_FUSE_ROOT && ni >= cut && n->fused->producer &&
                n->fused->producer - 1 < cut) cut = n->fused->producer - 1;
        }
    }
    if (!(h->cross = (uint8_t *)calloc(f->n_values + 1u, 1))) return false;
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) { /* 1: read after the cut; 2, 4: made */
        const am_node *n = &f->nodes[ni];
        for (int k = 0; k < n->n_in && ni >= cut; k++) h->cross[n->in[k]] |= 1;
        if (n->kind == AM_NODE_OP && n->hoist == AM_HOIST_NONE)
            h->cross[n->out[0]] |= ni < cut ? 2 : 4; /* before, after the cut */
    }
    for (uint32_t k = 0; k < f->n_results; k++) {
        if (!(h->cross[f->results[k]] & 6)) return false; /* not made by an op: batched */
        h->cross[f->results[k]] |= 1;
    }
    for (uint32_t v = 0; v < f->n_values; v++) {
        h->cross[v] = (h->cross[v] & 3) == 3;
        if (h->cross[v] && split_class(f, f->value_types[v], b) != SPLIT_B) return false;
    }
    h->cut = cut;
    for (uint32_t ni = 0; ni < cut; ni++) /* something to split */
        if (f->nodes[ni].kind == AM_NODE_OP && f->nodes[ni].hoist == AM_HOIST_NONE) return true;
    return false;
}

static size_t split_row_bytes(const amber_tensor *t) {
    size_t n = amber_dtype_size(t->dtype);
    for (int d = 1; d < t->rank; d++) n *= (size_t)t->shape[d];
    return n;
}

/* One row (image i) of t: a view. */
static void split_row(amber_tensor *row, const amber_tensor *t, int64_t i) {
    am_tensor_copy(row, t);
    row->shape[0] = 1;
    if (t->data) row->data = (char *)t->data + (size_t)i * split_row_bytes(t);
}

/* Runs nodes [0, cut) of the entered batch-1 frame fr on image i of inputs, and copies
 * the crossing values into their rows of full[] (allocated by the first image, or
 * split_full). */
COLD static amber_status split_image(amber_session *s, frame *fr, const struct hoisted *h,
                                     const amber_tensor *inputs, int64_t i, int64_t nb,
                                     amber_tensor *full) {
    const am_func *f = &s->model->prog.funcs[fr->fi];
    for (uint32_t k = 0; k < f->n_params; k++) split_row(&fr->vals[k], &inputs[k], i);
    if (fr->syms.n) memcpy(fr->syms.values, fr->bound, sizeof(int64_t) * (size_t)fr->syms.n);
    amber_status st = run_nodes(s, fr);
    for (uint32_t v = 0; st == AMBER_OK && v < f->n_values; v++) {
        if (!h->cross[v]) continue;
        size_t rb = split_row_bytes(&fr->vals[v]);
        if (!full[v].data) {
            am_tensor_copy(&full[v], &fr->vals[v]);
            full[v].shape[0] = nb;
            st = am_arena_alloc(&s->arena, rb * (size_t)nb + 1, &full[v].data, &s->err);
        }
        if (st == AMBER_OK && rb)
            memcpy((char *)full[v].data + (size_t)i * rb, fr->vals[v].data, rb);
    }
    return st;
}

/* full[] of the crossing values allocated for nb images from the types the batch-1 plan of
 * the entered frame fr remembers (an earlier run's); false when it does not know them all
 * (split_image then allocates the rest). */
COLD static bool split_full(amber_session *s, const frame *fr, const struct hoisted *h,
                            int64_t nb, amber_tensor *full) {
    const am_func *f = &s->model->prog.funcs[fr->fi];
    if (!fr->plan || fr->plan->stamp != fr->stamp) return false;
    for (uint32_t ni = 0; ni < h->cut; ni++) {
        const am_node *n = &f->nodes[ni];
        amber_tensor *t = &full[n->out[0]];
        if (n->kind != AM_NODE_OP || n->hoist != AM_HOIST_NONE || !h->cross[n->out[0]]) continue;
        if (!fr->plan->memo[ni].known) return false;
        am_tensor_copy(t, &fr->plan->memo[ni].out);
        t->shape[0] = nb;
        if (am_arena_alloc(&s->arena, split_row_bytes(t) * (size_t)nb + 1, &t->data, &s->err))
            return false;
    }
    return true;
}

/* Images side by side (split_side): task t is image first + t, run by the session of the
 * pool thread that takes it, kids[worker] (its own arenas, cached values and plan). */
typedef struct split_job {
    amber_session *s;
    const struct hoisted *h;
    const amber_tensor *inputs;
    amber_tensor *full;
    int64_t first, nb;
    struct split_kid {
        frame fr;           /* entered */
        am_arena_mark mark; /* its arena after its first image */
        amber_status st;    /* the first failure (then it runs no more) */
        bool started;
    } *kid;
} split_job;

static void split_task(void *ud, int64_t t, int worker) {
    split_job *j = (split_job *)ud;
    struct split_kid *k = &j->kid[worker];
    amber_session *kid = j->s->kids[worker];
    if (k->st != AMBER_OK) return;
    k->st = split_image(kid, &k->fr, j->h, j->inputs, j->first + t, j->nb, j->full);
    if (!k->started) k->mark = am_arena_get_mark(&kid->arena);
    k->started = true;
    am_arena_release(&kid->arena, k->mark);
    kid->n_free = 0; /* NOTE: released blocks may be on the list */
}

/* The kids of s, one per pool thread, one thread each, finding the weights s packed in
 * s's keep (false: out of memory). */
COLD static bool split_kids(amber_session *s, int n) {
    if (s->n_kids) return s->n_kids == n;
    if (!(s->kids = (amber_session **)calloc((size_t)n, sizeof *s->kids))) return false;
    for (; s->n_kids < n; s->n_kids++) {
        if (session_new(s->model, 1, &s->kids[s->n_kids]) != AMBER_OK) return false;
        s->kids[s->n_kids]->keep.parent = &s->keep;
    }
    return true;
}

/* With more than one thread, images first.. of entry e in whole rounds of one per thread,
 * each thread running its images alone in a session of its own (no fork and join per
 * node, and each image's values in one core's caches; the bits of one thread, which are
 * those of any number). NOTE: s runs nothing meanwhile, so its keep stays as it is. The
 * next image to run (first: none ran), or -1 after an error. */
COLD static int64_t split_side(amber_session *s, const am_entry *e, const struct hoisted *h,
                               const amber_tensor *inputs, int64_t first, int64_t nb,
                               amber_tensor *full) {
    const int p = am_pool_size(s->pool);
    const int64_t n = (nb - first) / p * p;
    if (p < 2 || n < p || !split_kids(s, p)) return first;
    split_job j = {s, h, inputs, full, first, nb, NULL};
    amber_tensor *args;
    amber_status st = am_arena_calloc(&s->arena, (size_t)p, sizeof *j.kid, (void **)&j.kid,
                                      &s->err);
    if (st == AMBER_OK)
        st = am_arena_calloc(&s->arena, e->n_inputs + 1u, sizeof *args, (void **)&args, &s->err);
    if (st != AMBER_OK) return -1;
    for (uint32_t k = 0; k < e->n_inputs; k++) split_row(&args[k], &inputs[k], first);
    int entered = 0;
    for (; st == AMBER_OK && entered < p; entered++) {
        amber_session *kid = s->kids[entered];
        am_error_clear(&kid->err);
        am_arena_reset(&kid->arena);
        kid->n_free = 0;
        kid->iterations_left = s->iterations_left, kid->calls_left = s->calls_left;
        st = frame_enter(kid, e->func, args, 0, &j.kid[entered].fr);
        j.kid[entered].fr.end = h->cut;
    }
    if (st == AMBER_OK) am_pool_run(s->pool, n, split_task, &j);
    for (int w = 0; w < entered; w++) {
        frame_leave(s->kids[w], &j.kid[w].fr);
        if (j.kid[w].st != AMBER_OK) st = j.kid[w].st;
    }
    return st == AMBER_OK ? first + n : -1;
}

/* Runs entry e image by image up to its cut (then the rest batched) when it can and it
 * pays: true when done; else (or on any error) the caller runs it batched, which gives
 * any error as before. */
COLD static bool run_split(amber_session *s, const am_entry *e, const amber_tensor *inputs,
                           amber_tensor *outputs) {
    const am_func *f = &s->model->prog.funcs[e->func];
    struct hoisted *h = &s->hoisted[e->func];
    if (h->split == SPLIT_UNASKED) {
        int b = split_symbol(f);
        h->split = b >= 0 && split_cut(f, b, h) ? SPLIT_YES : SPLIT_NEVER;
    }
    /* NOTE: the rest reads the hoisted values cached (the first run caches them) */
    if (h->split != SPLIT_YES || inputs[0].rank < 1 || inputs[0].shape[0] < 2 ||
        (h->cut < f->n_nodes && h->n_ready != f->n_cached))
        return false;
    int64_t nb = inputs[0].shape[0];
    for (uint32_t i = 0; i < e->n_inputs; i++)
        if (inputs[i].rank < 1 || inputs[i].shape[0] != nb) return false;
    amber_tensor *args, *full;
    amber_status st = am_arena_calloc(&s->arena, e->n_inputs + f->n_values + 1u, sizeof *args,
                                      (void **)&args, &s->err);
    if (st != AMBER_OK) return false;
    full = args + e->n_inputs;
    for (uint32_t i = 0; i < e->n_inputs; i++) split_row(&args[i], &inputs[i], 0);
    frame fr, tail;
    st = frame_enter(s, e->func, args, 0, &fr);
    fr.dest = NULL;
    fr.end = h->cut;
    bool done = st == AMBER_OK && fr.planned_size >= AM_SPLIT_MIN_PLAN;
    if (st == AMBER_OK && !done) /* NOTE: the batch-1 plan: the same next time but for */
        h->split = SPLIT_NEVER;    /* other symbols (then missed) */
    am_arena_mark mark = am_arena_get_mark(&s->arena);
    /* (images side by side from the first when an earlier run told full[]'s types and
     * packed the weights, else from the second) */
    int64_t i = done && split_full(s, &fr, h, nb, full) ? split_side(s, e, h, inputs, 0, nb, full)
                                                         : 0;
    for (bool first = true; done && i >= 0 && i < nb; i++, first = false) {
        done = split_image(s, &fr, h, inputs, i, nb, full) == AMBER_OK;
        if (first) mark = am_arena_get_mark(&s->arena);
        am_arena_release(&s->arena, mark);
        s->n_free = 0; /* NOTE: released blocks may be on the list */
        if (!i && done) i = split_side(s, e, h, inputs, 1, nb, full) - 1;
    }
    done = done && i >= 0;
    frame_leave(s, &fr);
    if (done && h->cut < f->n_nodes) { /* the rest, batched, on the gathered values */
        done = frame_enter(s, e->func, inputs, 0, &tail) == AMBER_OK && tail.ready;
        for (uint32_t ni = 0; done && ni < h->cut; ni++) { /* what the rest reads */
            const am_node *n = &f->nodes[ni];
            if (n->kind == AM_NODE_CONSTANT || n->kind == AM_NODE_WEIGHT)
                am_tensor_copy(&tail.vals[n->out[0]], &n->tensor);
            else if (n->hoist == AM_HOIST_CACHED)
                am_tensor_copy(&tail.vals[n->out[0]], &h->vals[n->out[0]]);
        }
        for (uint32_t v = 0; done && v < f->n_values; v++)
            if (h->cross[v]) am_tensor_copy(&tail.vals[v], &full[v]);
        tail.start = h->cut;
        done = done && frame_call(s, &tail, inputs, outputs) == AMBER_OK;
        frame_leave(s, &tail);
    } else {
        for (uint32_t k = 0; done && k < f->n_results; k++)
            am_tensor_copy(&outputs[k], &full[f->results[k]]);
    }
    return done;
}

static amber_status run_entry(amber_session *s, const am_entry *e, const amber_tensor *inputs,
                              size_t n_inputs, amber_tensor *outputs, size_t n_outputs,
                              bool into) {
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
            return am_fail(&s->err, st, "%s: input \"%.100s\": %.300s", e->name, e->inputs[i].name,
                           s->err.msg);
        if (nb && !inputs[i].data)
            return am_fail(&s->err, AMBER_ERR_INVALID_ARGUMENT, "%s: input \"%.100s\" has no data",
                           e->name, e->inputs[i].name);
        /* NOTE: kernels read elements through typed pointers: unaligned data would be
         * undefined behaviour (docs/c-api.md, "Inputs") */
        if (nb && (uintptr_t)inputs[i].data % amber_dtype_size(inputs[i].dtype))
            return am_fail(&s->err, AMBER_ERR_INVALID_ARGUMENT, "%s: input \"%.100s\": data at %p is "
                           "not aligned to its element size (%zu bytes); copy it to aligned memory",
                           e->name, e->inputs[i].name, inputs[i].data, amber_dtype_size(inputs[i].dtype));
    }
    s->entry = e;
    am_arena_reset(&s->arena);
    s->n_free = 0;
    s->counts.runs++;
    s->iterations_left = s->model->opts.max_run_iterations > 0 ? s->model->opts.max_run_iterations
                                                              : INT64_MAX;
    s->calls_left = s->model->opts.max_run_calls > 0 ? s->model->opts.max_run_calls : INT64_MAX;
    amber_tensor *want = NULL;
    s->dest = NULL;
    amber_status st = into ? want_outputs(s, e, outputs, &want) : AMBER_OK;
    am_arena_mark mark = am_arena_get_mark(&s->arena);
    if (st == AMBER_OK && !run_split(s, e, inputs, outputs)) { /* also after a failed split */
        am_error_clear(&s->err);
        am_arena_release(&s->arena, mark);
        s->n_free = 0;
        st = run_function(s, e->func, inputs, outputs, 0);
    }
    s->dest = NULL;
    if (st == AMBER_OK && want) finish_outputs(e, want, outputs);
    return st;
}

/* The entry point `name`: the one run last when name is its very string (the one
 * amber_model_entry_name gives; the bindings pass it back on every run), without a
 * name search; else looked up by name. */
static const am_entry *session_entry(const amber_session *s, const char *name) {
    return s->entry && name == s->entry->name ? s->entry : am_model_entry(s->model, name);
}

static amber_status session_run(amber_session *s, const char *entry, const amber_tensor *inputs,
                                size_t n_inputs, amber_tensor *outputs, size_t n_outputs,
                                bool into) {
    amber_status st;
    const am_entry *e = NULL;
    if (!s) st = AMBER_ERR_INVALID_ARGUMENT;
    else if (am_error_clear(&s->err), !entry)
        st = am_fail(&s->err, AMBER_ERR_INVALID_ARGUMENT, "entry is NULL");
    else if (!s->model->prog.present)
        st = am_fail(&s->err, AMBER_ERR_NOT_FOUND, "the file has no program to run");
    else if (!(e = session_entry(s, entry)))
        st = am_fail(&s->err, AMBER_ERR_NOT_FOUND, "no entry point named \"%.200s\"", entry);
    else
        st = run_entry(s, e, inputs, n_inputs, outputs, n_outputs, into);
    /* docs/c-api.md: after a failed run every output descriptor is zeroed */
    for (size_t i = 0; st != AMBER_OK && outputs && i < n_outputs; i++)
        memset(&outputs[i], 0, sizeof outputs[i]);
    return st;
}

amber_status amber_session_run(amber_session *s, const char *entry, const amber_tensor *inputs,
                               size_t n_inputs, amber_tensor *outputs, size_t n_outputs) {
    return session_run(s, entry, inputs, n_inputs, outputs, n_outputs, false);
}

amber_status amber_session_run_into(amber_session *s, const char *entry,
                                    const amber_tensor *inputs, size_t n_inputs,
                                    amber_tensor *outputs, size_t n_outputs) {
    return session_run(s, entry, inputs, n_inputs, outputs, n_outputs, true);
}

static double element(const amber_tensor *t, int64_t i) {
    switch (t->dtype) {
    case AMBER_FLOAT32: return ((const float *)t->data)[i];
    case AMBER_FLOAT64: return ((const double *)t->data)[i];
    case AMBER_INT32: return ((const int32_t *)t->data)[i];
    case AMBER_INT64: return (double)((const int64_t *)t->data)[i];
    case AMBER_BOOL: return ((const uint8_t *)t->data)[i];
    case AMBER_FLOAT16: return am_f16_to_f32(((const uint16_t *)t->data)[i]);
    case AMBER_BFLOAT16: return am_bf16_to_f32(((const uint16_t *)t->data)[i]);
    case AMBER_INT8: return ((const int8_t *)t->data)[i];
    case AMBER_UINT8: return ((const uint8_t *)t->data)[i];
    case AMBER_INT16: return ((const int16_t *)t->data)[i];
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
    bool exact = am_compute_dtype(want->dtype) != AMBER_FLOAT32 && want->dtype != AMBER_FLOAT64;
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
            if (exact && want->dtype == AMBER_INT64)
                snprintf(msg, n, "element %lld is %lld, expected %lld", (long long)i,
                         (long long)((const int64_t *)got->data)[i],
                         (long long)((const int64_t *)want->data)[i]);
            else if (exact && want->dtype != AMBER_BOOL) /* exact in a double */
                snprintf(msg, n, "element %lld is %lld, expected %lld", (long long)i,
                         (long long)element(got, i), (long long)element(want, i));
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
        amber_status st = run_entry(s, e, tv->inputs, e->n_inputs, outs, e->n_outputs, false);
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

amber_status amber_session_get_stats(const amber_session *s, amber_session_stats *stats) {
    if (!s || !stats || !stats->struct_size) return AMBER_ERR_INVALID_ARGUMENT;
    const am_program *p = &s->model->prog;
    amber_session_stats all = {0};
    for (uint32_t fi = 0; fi < p->n_funcs; fi++) {
        all.fused_groups += p->funcs[fi].n_fused_groups;
        all.fused_nodes += p->funcs[fi].n_fused_nodes;
        all.fused_attention += p->funcs[fi].n_attention;
        all.fused_layer_norms += p->funcs[fi].n_norms;
    }
    all.runs = s->counts.runs;
    all.plans = s->counts.plans;
    all.plan_reuses = s->counts.plan_reuses;
    all.plan_bytes = s->counts.plan_bytes;
    all.plan_value_bytes = s->counts.plan_value_bytes;
    all.block_bytes = s->block_size;
    all.cached_bytes = s->hoisted_bytes;
    all.arena_bytes = s->arena.held;
    all.arena_peak_bytes = s->arena.peak;
    size_t n = stats->struct_size < sizeof all ? stats->struct_size : sizeof all;
    all.struct_size = (uint32_t)n;
    memcpy(stats, &all, n);
    return AMBER_OK;
}
