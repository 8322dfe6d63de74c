/* Epilogues: a conv2d or matmul whose result only an elementwise chain reads (bias,
 * BatchNorm's per-channel arithmetic, ReLU, clip, a residual add...) is computed at the
 * chain's root, straight into the root's output, and the chain runs over each block of
 * it as the product's kernel finishes that block (am_epi), while it is still in cache.
 * The file keeps the plain graph; this is decided when a model is loaded, after the
 * elementwise groups (plan.c), and only when fusion is on. Every element goes through
 * the same operations in the same order as with the nodes run one by one: the results
 * are the same bits (the group's row loops are the single-op kernels' loops). */
#include "prog.h"

#include <stdlib.h>
#include <string.h>

static bool same_dims(const am_type *a, const am_type *b) {
    if (a->rank != b->rank || a->dtype != b->dtype) return false;
    for (int i = 0; i < a->rank; i++)
        if (!am_same_dim(a->dims[i], b->dims[i])) return false;
    return true;
}

/* A conv2d or matmul that can take an epilogue: floating point, attributes known at
 * load, run every time (not hoisted), not already part of a group. */
static bool producer_ok(const am_func *f, const am_node *n) {
    if (n->kind != AM_NODE_OP || n->hoist != AM_HOIST_NONE || n->fuse != AM_FUSE_NONE ||
        !n->static_attrs || n->n_out != 1 || n->attn || n->norm || n->cell)
        return false; /* (an attention's matmul runs its own kernel) */
    amber_dtype dt = n->out_types[0].dtype;
    if (dt != AMBER_FLOAT32 && dt != AMBER_FLOAT64) return false;
    if (n->op->id == AM_OP_CONV2D) return n->out_types[0].rank == 4;
    if (n->op->id != AM_OP_MATMUL) return false;
    /* x [..., M, K] @ w [K, N]: k_matmul runs it as one product of batch * M rows (a
     * Linear on [batch, seq, features]), so a block's rows are rows of the result */
    int r = n->out_types[0].rank;
    return r >= 2 && f->value_types[n->in[0]]->rank == r && f->value_types[n->in[1]]->rank == 2;
}

/* A one-step group for an elementwise node reading the product (not in a group). */
static amber_status single_group(const am_func *f, const am_node *e, am_arena *mem,
                                 am_fused **out, am_error *err) {
    am_row_fn fn = e->kind == AM_NODE_OP && e->hoist == AM_HOIST_NONE && e->n_in <= 3 &&
                           !e->cell
                       ? am_elementwise_loop(e->op, f->value_types[e->in[0]]->dtype,
                                             e->out_types[0].dtype)
                       : NULL;
    *out = NULL;
    if (!fn) return AMBER_OK;
    am_fused *g;
    amber_status st = am_arena_calloc(mem, 1, sizeof *g, (void **)&g, err);
    if (st != AMBER_OK) return st;
    g->n_steps = 1;
    g->steps[0].fn = fn;
    g->steps[0].dtype = e->out_types[0].dtype;
    g->steps[0].n_in = e->n_in;
    for (int k = 0; k < e->n_in; k++) {
        int j = 0;
        while (j < g->n_ext && g->ext[j] != e->in[k]) j++;
        if (j == g->n_ext) g->ext[g->n_ext++] = e->in[k];
        g->steps[0].src[k] = j;
    }
    *out = g;
    return AMBER_OK;
}

amber_status am_plan_epilogues(am_func *f, am_arena *mem, am_error *err) {
    size_t nv = f->n_values ? f->n_values : 1;
    uint32_t *uses = (uint32_t *)calloc(nv, sizeof(uint32_t));
    uint32_t *reader = (uint32_t *)malloc(nv * sizeof(uint32_t)); /* the last reader */
    if (!uses || !reader) {
        free(uses);
        free(reader);
        return am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    }
    for (uint32_t ni = 0; ni < f->n_nodes; ni++)
        for (int k = 0; k < f->nodes[ni].n_in; k++) {
            uses[f->nodes[ni].in[k]]++;
            reader[f->nodes[ni].in[k]] = ni;
        }
    for (uint32_t k = 0; k < f->n_results; k++) uses[f->results[k]] = UINT32_MAX;
    amber_status st = AMBER_OK;
    for (uint32_t pi = 0; st == AMBER_OK && pi < f->n_nodes; pi++) {
        am_node *p = &f->nodes[pi];
        if (!producer_ok(f, p)) continue;
        uint32_t y = p->out[0];
        if (uses[y] == 0 || uses[y] == UINT32_MAX) continue;
        /* every read of y must be by one group (or one node) */
        am_node *r = &f->nodes[reader[y]];
        uint32_t ri = r->fuse == AM_FUSE_MEMBER ? r->root : reader[y], inside = 0;
        for (uint32_t ni = pi + 1; ni <= ri; ni++) {
            const am_node *m = &f->nodes[ni];
            bool member = ni == ri || (m->fuse == AM_FUSE_MEMBER && m->root == ri);
            for (int k = 0; member && k < m->n_in; k++) inside += m->in[k] == y;
        }
        am_node *root = &f->nodes[ri];
        if (inside != uses[y] || !same_dims(&root->out_types[0], &p->out_types[0])) continue;
        am_fused *g = NULL;
        if (root->fuse == AM_FUSE_ROOT) {
            if (root->fused->producer) continue; /* another product feeds it already */
            if ((st = am_arena_alloc(mem, sizeof *g, (void **)&g, err)) != AMBER_OK) break;
            memcpy(g, root->fused, sizeof *g);
        } else if (root->fuse == AM_FUSE_NONE) {
            if ((st = single_group(f, root, mem, &g, err)) != AMBER_OK || !g) continue;
            root->fuse = AM_FUSE_ROOT;
            root->root = ri;
            f->n_fused_groups++;
            f->n_fused_nodes++;
        } else {
            continue;
        }
        g->self = 0;
        while (g->ext[g->self] != y) g->self++; /* y is read inside: it is an input */
        g->producer = pi + 1;
        root->fused = g;
        p->fuse = AM_FUSE_MEMBER;
        p->root = ri;
        f->n_fused_nodes++;
    }
    free(uses);
    free(reader);
    return st;
}

/* ---------------------------------------------------------------- am_epi set-up */

static const uint8_t EPI_OPS[EPI_UNARY] = { /* am_op_id */
    AM_OP_ADD, AM_OP_SUB, AM_OP_MUL, AM_OP_DIV, AM_OP_MAXIMUM, AM_OP_MINIMUM, AM_OP_EQ,
    AM_OP_NE, AM_OP_LT, AM_OP_LE, AM_OP_GT, AM_OP_GE, AM_OP_WHERE};
_Static_assert(AM_OP_COUNT <= 256, "EPI_OPS holds op ids in bytes");


/* The byte stride of dims [d0, d1) of a tensor of `shape` with byte strides s, merged
 * into one (size-1 dims ignored); false when they are not one arithmetic progression. */
static bool merged_stride(const int64_t *shape, const int64_t *s, int d0, int d1, int64_t *out) {
    int64_t st = 0, span = 1;
    bool any = false;
    for (int d = d1 - 1; d >= d0; d--) {
        if (shape[d] == 1) continue;
        if (!any) {
            st = s[d];
            any = true;
        } else if (s[d] != st * span) {
            return false;
        }
        span *= shape[d];
    }
    *out = st;
    return true;
}

/* Translates the group's steps into e->ops; false if some step or operand is not one
 * the vector code handles. */
static bool compile(am_epi *e, const amber_tensor *ext, amber_dtype t) {
    const am_fused *g = e->g;
    for (int j = 0; j < g->n_steps; j++) {
        const am_fused_step *st = &g->steps[j];
        struct am_epi_op *o = &e->ops[j];
        amber_dtype din[3];
        for (int k = 0; k < st->n_in; k++) {
            int src = st->src[k];
            if (src < 0) {
                o->kind[k] = EPI_TMP;
                o->src[k] = (int8_t)(-src - 1);
                din[k] = g->steps[-src - 1].dtype;
                continue;
            }
            din[k] = ext[src].dtype;
            o->src[k] = (int8_t)src;
            if (e->sc[src] == 0) o->kind[k] = EPI_SCALAR;
            else if (e->sc[src] == (int64_t)amber_dtype_size(t)) o->kind[k] = EPI_ROW;
            else return false;
            if (din[k] != t) return false; /* external masks and other dtypes: row loops */
        }
        if (st->n_in == 1) { /* its own row loop on the block: the same bits */
            o->op = EPI_UNARY;
            if (din[0] != t || st->dtype != t) return false;
            continue;
        }
        int op = 0;
        while (op < EPI_UNARY &&
               st->fn != am_elementwise_loop(am_op_get((am_op_id)EPI_OPS[op]), din[0], st->dtype))
            op++;
        if (op == EPI_UNARY) return false;
        o->op = (uint8_t)op;
        bool compare = op >= EPI_EQ && op <= EPI_GE;
        if (op == EPI_WHERE) {
            if (st->n_in != 3 || din[0] != AMBER_BOOL || din[1] != t || din[2] != t) return false;
        } else if (st->n_in != 2 || din[0] != t || din[1] != t) {
            return false;
        }
        if (st->dtype != (compare ? AMBER_BOOL : t)) return false;
    }
    return g->steps[g->n_steps - 1].dtype == t;
}

/* The scalar of step operand (kind, src) if it is one value for every element (a
 * constant), in *v; false otherwise (or with no data: plan-time checks). */
static bool one_scalar(const am_epi *e, int kind, int src, amber_dtype t, double *v) {
    if (kind != EPI_SCALAR || e->sb[src] || e->sr[src] || !e->base[src]) return false;
    *v = t == AMBER_FLOAT32 ? *(const float *)(const void *)e->base[src]
                            : *(const double *)(const void *)e->base[src];
    return true;
}

/* ReLU6 as amber.nn exported it before, where(x <= a, b, where(x >= c, d, x)) (le, ge,
 * the inner where, the outer one; the second test reads x again, which no register
 * epilogue takes), rewritten in e->ops as the chain y = where(x <= a, b, x), where(y >= c,
 * d, y) that amber.nn exports now, when that gives the same values: when b >= c is
 * false (b = 0 < c = 6), x <= a gives b either way, else both give the inner where's
 * value. Only when no later step reads the steps in between. */
static void nested_clamp(am_epi *e, amber_dtype t) {
    for (int j = 0; e->vec && j + 3 < e->g->n_steps; j++) {
        struct am_epi_op *le = &e->ops[j], *ge = le + 1, *in = le + 2, *out = le + 3;
        double b, c;
        bool x = am_epi_chain_at(e, j, le->kind[0], le->src[0]);
        if (le->op != EPI_LE || ge->op != EPI_GE || in->op != EPI_WHERE ||
            out->op != EPI_WHERE || !x || le->kind[1] != EPI_SCALAR ||
            ge->kind[0] != le->kind[0] || ge->src[0] != le->src[0] ||
            in->kind[0] != EPI_TMP || in->src[0] != j + 1 || in->kind[1] != EPI_SCALAR ||
            in->kind[2] != le->kind[0] || in->src[2] != le->src[0] ||
            out->kind[0] != EPI_TMP || out->src[0] != j || out->kind[2] != EPI_TMP ||
            out->src[2] != j + 2 || !one_scalar(e, out->kind[1], out->src[1], t, &b) ||
            !one_scalar(e, ge->kind[1], ge->src[1], t, &c) || b >= c)
            continue;
        for (int i = j + 4; i < e->g->n_steps; i++)
            for (int k = 0; k < 3; k++)
                if (e->ops[i].kind[k] == EPI_TMP && e->ops[i].src[k] < j + 3) return;
        struct am_epi_op w1 = *out, g2 = *ge, w2 = *in;
        w1.src[2] = le->src[0], w1.kind[2] = le->kind[0]; /* where(le, b, x) */
        g2.kind[0] = EPI_TMP, g2.src[0] = (int8_t)(j + 1);  /* ge(y, c) */
        w2.src[0] = (int8_t)(j + 2), w2.kind[2] = EPI_TMP, w2.src[2] = (int8_t)(j + 1);
        *ge = w1, *in = g2, *out = w2;
        j += 3;
    }
}

/* Sets e->chain: every step reads earlier steps only through the last two results (the
 * vector code keeps those in registers), and e->line: a chain of binary arithmetic, max
 * and min whose steps after the first read the one before and one external input. */
static void chain(am_epi *e) {
    e->chain = e->line = e->vec;
    for (int j = 0; j < e->g->n_steps; j++) {
        const struct am_epi_op *o = &e->ops[j];
        for (int k = 0; k < am_epi_arity(o); k++)
            if (o->kind[k] == EPI_TMP && o->src[k] < j - 2) e->chain = false;
        if (o->op >= EPI_EQ && o->op != EPI_LE && o->op != EPI_GT && o->op != EPI_WHERE)
            e->chain = false; /* (the chain code knows fewer comparisons) */
        int tmps = (o->kind[0] == EPI_TMP) + (o->kind[1] == EPI_TMP);
        if (o->op > EPI_MIN || tmps != (j > 0) ||
            (tmps && o->src[o->kind[0] == EPI_TMP ? 0 : 1] != j - 1))
            e->line = false;
    }
    e->line = e->line && e->chain;
}

/* Whether the group is binary arithmetic on the product and rows or scalars (a bias),
 * then the tanh GELU as amber's gelu(x, approximate="tanh") writes it, any scalars:
 * x * c * (tanh((x + x * x * x * a) * b) + d) in nine steps (am_epi.gelu). */
static bool is_gelu(const am_epi *e, amber_dtype t) {
    enum { X = 10, S = 11 }; /* the GELU's x, a scalar; else 1 + the GELU's step */
    static const uint8_t op[9] = {EPI_MUL, EPI_MUL, EPI_MUL, EPI_ADD,  EPI_MUL,
                                  EPI_MUL, EPI_UNARY, EPI_ADD, EPI_MUL};
    static const int8_t arg[9][2] = {{X, X}, {1, X}, {2, S}, {X, 3}, {4, S},
                                     {X, S}, {5, 0}, {7, S}, {6, 8}};
    const int n0 = e->g->n_steps - 9;
    if (!e->vec || t != AMBER_FLOAT32 || n0 < 0 ||
        e->g->steps[n0 + 6].fn != am_elementwise_loop(am_op_get(AM_OP_TANH), t, t))
        return false;
    for (int j = 0; j < e->g->n_steps; j++) {
        const struct am_epi_op *o = &e->ops[j];
        for (int k = 0; j < n0 && k < 2; k++)
            if ((o->kind[k] == EPI_TMP && o->src[k] != j - 1) || o->op > EPI_DIV) return false;
        for (int k = 0; j >= n0 && k < 2 - (j == n0 + 6); k++) {
            int a = arg[j - n0][k], kind = o->kind[k], src = o->src[k];
            if (o->op != op[j - n0] ||
                (a == S ? kind != EPI_SCALAR
                 : a == X ? (n0 ? kind != EPI_TMP || src != n0 - 1
                                : kind != EPI_ROW || src != e->g->self)
                          : kind != EPI_TMP || src != n0 + a - 1))
                return false;
        }
    }
    return true;
}

bool am_epi_init(am_epi *e, const am_fused *g, const amber_tensor *ext, amber_tensor *out,
                 int d1, int d2) {
    int r = out->rank;
    if (d1 < 0 || d1 > d2 || d2 > r) return false;
    int64_t os[AMBER_MAX_RANK], es[AMBER_MAX_RANK];
    am_contig_strides(out->shape, r, amber_dtype_size(out->dtype), os);
    e->g = g;
    e->out = (char *)out->data;
    e->images = e->rows = e->cols = 1;
    for (int d = 0; d < r; d++) *(d < d1 ? &e->images : d < d2 ? &e->rows : &e->cols) *= out->shape[d];
    if (!merged_stride(out->shape, os, 0, d1, &e->ob) ||
        !merged_stride(out->shape, os, d1, d2, &e->orow) ||
        !merged_stride(out->shape, os, d2, r, &e->ocol))
        return false;
    if (e->cols > 1 && e->ocol != (int64_t)amber_dtype_size(out->dtype)) return false;
    e->ocol = (int64_t)amber_dtype_size(out->dtype);
    for (int k = 0; k < g->n_ext; k++) {
        if (k == g->self) {
            e->base[k] = e->out, e->sb[k] = e->ob, e->sr[k] = e->orow, e->sc[k] = e->ocol;
            continue;
        }
        if (ext[k].rank > r) return false;
        am_bcast_strides(&ext[k], out->shape, r, es);
        e->base[k] = (char *)ext[k].data;
        if (!merged_stride(out->shape, es, 0, d1, &e->sb[k]) ||
            !merged_stride(out->shape, es, d1, d2, &e->sr[k]) ||
            !merged_stride(out->shape, es, d2, r, &e->sc[k]))
            return false;
    }
    e->vec = (out->dtype == AMBER_FLOAT32 || out->dtype == AMBER_FLOAT64) &&
             compile(e, ext, out->dtype);
    if (e->images * e->rows * e->cols > 0) nested_clamp(e, out->dtype); /* (reads scalars) */
    chain(e);
    e->gelu = is_gelu(e, out->dtype);
    e->over = false;
    e->regs = am_epi_in_registers(e, false);
    e->tile = am_epi_in_registers(e, true);
    return true;
}

/* ---------------------------------------------------------------- over an input */

/* (set-up code, once per node and run: optimised for size) */
#define COLD __attribute__((cold))

COLD int am_epilogue_over(const am_func *f, const am_node *root) {
    if (root->fuse != AM_FUSE_ROOT || !root->fused->producer) return -1;
    const am_fused *g = root->fused;
    const am_type *ot = &root->out_types[0];
    const am_node *p = &f->nodes[g->producer - 1];
    const am_attrs *a = p->static_attrs;
    const am_type *w = f->value_types[p->in[1]];
    if (p->op->id != AM_OP_CONV2D || ot->dtype != AMBER_FLOAT32 || ot->rank != 4 ||
        w->rank != 4 || w->dims[2]->type != AM_JSON_NUMBER || w->dims[2]->i != 1 ||
        w->dims[3]->type != AM_JSON_NUMBER || w->dims[3]->i != 1 || a->groups != 1 ||
        a->stride[0] != 1 || a->stride[1] != 1 || a->padding[0] || a->padding[2])
        return -1; /* (a 1x1 convolution over_fast may take) */
    amber_tensor ext[AM_FUSED_MAX_EXT], out = {.dtype = ot->dtype, .rank = 4};
    for (int d = 0; d < 4; d++) /* (a symbolic dim: 2) */
        out.shape[d] = ot->dims[d]->type == AM_JSON_NUMBER ? ot->dims[d]->i : 2;
    int over = -1;
    for (int k = 0; k < g->n_ext; k++) {
        const am_type *t = f->value_types[g->ext[k]];
        ext[k] = (amber_tensor){.dtype = t->dtype, .rank = t->rank};
        for (int d = 0, j = 4 - t->rank; d < t->rank; d++, j++) {
            if (t->dims[d]->type == AM_JSON_NUMBER) ext[k].shape[d] = t->dims[d]->i;
            else if (j >= 0 && am_same_dim(t->dims[d], ot->dims[j])) ext[k].shape[d] = out.shape[j];
            else return -1;
        }
        if (over < 0 && k != g->self && same_dims(t, ot)) over = k;
    }
    am_epi e;
    return over >= 0 && am_epi_init(&e, g, ext, &out, 1, 2) && e.tile ? over : -1;
}

/* Whether conv2d (ins: x, w) goes to the GEMM whose tiles all apply e in registers
 * (am_gemm_over_ok): a 1x1 one without stride, padding or groups whose weight is kept
 * packed on AVX-512 (k_conv2d's path for it), which the small convolution does not take. */
COLD static bool over_fast(const am_ctx *ctx, const amber_tensor *in, const am_attrs *a,
                      const amber_tensor *out, const am_epi *e) {
    const int64_t *xs = in[0].shape, *ws = in[1].shape, *ys = out->shape;
    return a && out->dtype == AMBER_FLOAT32 && (ctx->fixed_inputs & 2) && ctx->keep &&
           a->groups == 1 && ws[2] == 1 && ws[3] == 1 && a->stride[0] == 1 &&
           a->stride[1] == 1 && a->padding[0] == 0 && a->padding[2] == 0 && ys[2] == xs[2] &&
           ys[3] == xs[3] && am_cpu_isa() >= AM_GEMM_ISA_AVX512 &&
           !am_conv_small_fits(in, a, out) && am_gemm_over_ok(ws[0], ys[2] * ys[3], xs[1], e);
}

amber_status am_epilogue_run(const am_func *f, const am_node *root, am_ctx *ctx,
                             const amber_tensor *vals, amber_tensor *ext, amber_tensor *out) {
    const am_fused *g = root->fused;
    const am_node *p = &f->nodes[g->producer - 1];
    const amber_tensor *y = &ext[g->self];
    if (y->rank != out->rank || y->dtype != out->dtype ||
        memcmp(y->shape, out->shape, sizeof(int64_t) * (size_t)out->rank))
        return am_fail(ctx->err, AMBER_ERR_SHAPE, "the product a fused group reads has "
                       "another shape than the group's result");
    amber_tensor ins[2];
    for (int k = 0; k < p->n_in && k < 2; k++) am_tensor_copy(&ins[k], &vals[p->in[k]]);
    am_epi e;
    int d1, d2;
    bool fused = am_epi_dims(p->op, out->rank, &d1, &d2) && am_epi_init(&e, g, ext, out, d1, d2);
    unsigned fixed = ctx->fixed_inputs;
    ctx->fixed_inputs = p->fixed_in;
    amber_tensor *v = root->over ? &ext[root->over - 1] : NULL; /* out is its memory */
    bool over = v && v->data == out->data && out->data && fused &&
                over_fast(ctx, ins, p->static_attrs, out, &e);
    if (v && v->data == out->data && out->data && !over) { /* the kernels read a copy */
        size_t nb = (size_t)am_numel(out) * amber_dtype_size(out->dtype);
        void *copy;
        amber_status st = am_arena_alloc(ctx->scratch, nb, &copy, ctx->err);
        if (st != AMBER_OK) {
            ctx->fixed_inputs = fixed;
            return st;
        }
        v->data = memcpy(copy, v->data, nb);
        fused = fused && am_epi_init(&e, g, ext, out, d1, d2);
    }
    if (fused) e.over = over;
    ctx->epi = fused ? &e : NULL;
    amber_status st = p->op->kernel(p->op, ctx, ins, p->n_in, p->static_attrs, out);
    ctx->epi = NULL;
    ctx->fixed_inputs = fixed;
    if (st != AMBER_OK || fused) return st;
    /* Strides the view cannot express: the product, then the group over it in place. */
    ext[g->self].data = out->data;
    return am_fused_run(g, ctx, ext, out);
}
