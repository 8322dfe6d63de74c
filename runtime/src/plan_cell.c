/* LSTM cells: the gate arithmetic after a recurrent step's product (four column slices of
 * the pre-activations, three sigmoids, two tanhs, three products and a sum) runs as one
 * pass that reads the pre-activations in place (or forms them, where only the slices read
 * the sum that makes them: x_t + (h @ W + b)) and writes the new c and h, instead of
 * slice copies and two elementwise groups. The file keeps the plain graph; this is
 * decided when a model is loaded, only when fusion is on. Each element goes through the
 * row loops of the nodes it replaces, in their order and with their operand order, so the
 * results are the same bits; float32 on AVX-512 takes one vector pass instead
 * (am_cell_f32: the same arithmetic lane by lane, every intermediate in registers). NOTE:
 * where both operands of one product or sum are NaN, which payload stays is the
 * compiler's choice in either code (docs/opset.md: all NaNs are equivalent). */
#include "plan_cell.h"

#include <stdlib.h>
#include <string.h>

typedef struct matcher {
    const am_func *f;
    const am_json_doc *doc;
    const int64_t *def;   /* the node defining each value, or -1 */
    const uint32_t *uses; /* reads of each value (UINT32_MAX: a result) */
    am_cell c;
    uint32_t members[13];
    int n_members;
    int64_t pre; /* the value the slices read, -1 until one is seen */
} matcher;

static bool plain_op(const am_node *n) {
    return n->kind == AM_NODE_OP && n->hoist == AM_HOIST_NONE && n->fuse == AM_FUSE_NONE &&
           !n->attn && !n->norm && !n->cell && n->n_out == 1;
}

static bool same_type(const am_type *a, const am_type *b) {
    if (a->rank != b->rank || a->dtype != b->dtype) return false;
    for (int i = 0; i < a->rank; i++)
        if (!am_same_dim(a->dims[i], b->dims[i])) return false;
    return true;
}

/* The node defining v when it is a plain `op` node read once (by the node matched), or -1. */
static int64_t once(const matcher *m, uint32_t v, am_op_id op) {
    int64_t d = m->def[v];
    if (d < 0 || m->uses[v] != 1 || !plain_op(&m->f->nodes[d]) || m->f->nodes[d].op->id != op)
        return -1;
    return d;
}

/* Whether slice node s takes whole leading dims and columns [*start, *start + hidden) of a
 * last dim of known width, step 1 everywhere. */
static bool column_slice(matcher *m, const am_node *s, int64_t *start) {
    const am_type *t = m->f->value_types[s->in[0]];
    const am_json *a[3] = {NULL, NULL, NULL};
    static const char *const keys[3] = {"starts", "stops", "steps"};
    for (int k = 0; k < 3; k++) {
        a[k] = s->attrs ? am_json_get(m->doc, s->attrs, keys[k]) : NULL;
        if (!a[k] || a[k]->type != AM_JSON_ARRAY || a[k]->count != (uint32_t)t->rank) return false;
    }
    int64_t width, stop, v;
    if (t->rank < 1 || !am_json_int(t->dims[t->rank - 1], &width)) return false;
    for (int d = 0; d < t->rank; d++) {
        const am_json *lo = am_json_at(m->doc, a[0], (size_t)d);
        const am_json *hi = am_json_at(m->doc, a[1], (size_t)d);
        if (!am_json_int(am_json_at(m->doc, a[2], (size_t)d), &v) || v != 1) return false;
        if (d < t->rank - 1 &&
            (!am_json_int(lo, &v) || v != 0 || !hi || !am_same_dim(hi, t->dims[d])))
            return false;
    }
    if (!am_json_int(am_json_at(m->doc, a[0], (size_t)t->rank - 1), start) ||
        !am_json_int(am_json_at(m->doc, a[1], (size_t)t->rank - 1), &stop))
        return false;
    if (m->pre >= 0 && (uint32_t)m->pre != s->in[0]) return false;
    m->pre = s->in[0];
    m->c.width = width;
    return *start >= 0 && stop - *start == m->c.hidden && stop <= width;
}

/* Gate `which` (0..3: i, f, g, o): v = act(slice of the pre-activations). */
static bool gate(matcher *m, uint32_t v, am_op_id act, int which) {
    int64_t a = once(m, v, act), s = a >= 0 ? once(m, m->f->nodes[a].in[0], AM_OP_SLICE) : -1;
    if (s < 0 || !column_slice(m, &m->f->nodes[s], &m->c.off[which])) return false;
    m->members[m->n_members++] = (uint32_t)a;
    m->members[m->n_members++] = (uint32_t)s;
    return true;
}

/* Node p is x * y with x from `first` and y from `second`, in either order (recorded as
 * swapped[which]). */
typedef bool (*side_fn)(matcher *m, uint32_t v);
static bool product_node(matcher *m, int64_t p, side_fn first, side_fn second, int which) {
    if (p < 0) return false;
    const am_node *n = &m->f->nodes[p];
    for (int k = 0; k < 2; k++) {
        matcher save = *m;
        m->c.swapped[which] = k == 1;
        if (first(m, n->in[k]) && second(m, n->in[1 - k])) return true;
        *m = save;
    }
    return false;
}

/* v = x * y, read once, as product_node. */
static bool product(matcher *m, uint32_t v, side_fn first, side_fn second, int which) {
    int64_t p = once(m, v, AM_OP_MUL);
    if (!product_node(m, p, first, second, which)) return false;
    m->members[m->n_members++] = (uint32_t)p;
    return true;
}

static bool gate_i(matcher *m, uint32_t v) { return gate(m, v, AM_OP_SIGMOID, 0); }
static bool gate_f(matcher *m, uint32_t v) { return gate(m, v, AM_OP_SIGMOID, 1); }
static bool gate_g(matcher *m, uint32_t v) { return gate(m, v, AM_OP_TANH, 2); }
static bool gate_o(matcher *m, uint32_t v) { return gate(m, v, AM_OP_SIGMOID, 3); }
static bool c_prev(matcher *m, uint32_t v) {
    m->c.c_prev = v;
    return true;
}
static bool input_gated(matcher *m, uint32_t v) { return product(m, v, gate_i, gate_g, 0); }
static bool forget_gated(matcher *m, uint32_t v) { return product(m, v, gate_f, c_prev, 1); }

/* v = tanh(c), c = ig + fc, c read after the root or by tanh only. */
static bool tanh_c(matcher *m, uint32_t v) {
    int64_t t = once(m, v, AM_OP_TANH);
    if (t < 0) return false;
    uint32_t cv = m->f->nodes[t].in[0];
    int64_t a = m->def[cv];
    if (a < 0 || !plain_op(&m->f->nodes[a]) || m->f->nodes[a].op->id != AM_OP_ADD) return false;
    const am_node *add = &m->f->nodes[a];
    for (int k = 0; k < 2; k++) {
        matcher save = *m;
        m->c.swapped[2] = k == 1;
        if (input_gated(m, add->in[k]) && forget_gated(m, add->in[1 - k])) {
            m->members[m->n_members++] = (uint32_t)t;
            m->c.c_val = cv;
            m->c.c_node = (uint32_t)a;
            return true;
        }
        *m = save;
    }
    return false;
}

/* Whether node r (a mul) ends a cell; fills m. */
static bool match_cell(matcher *m, uint32_t r) {
    const am_func *f = m->f;
    const am_node *root = &f->nodes[r];
    const am_type *t = &root->out_types[0];
    if (!plain_op(root) || root->op->id != AM_OP_MUL || t->rank < 1 ||
        (t->dtype != AMBER_FLOAT32 && t->dtype != AMBER_FLOAT64) ||
        !am_json_int(t->dims[t->rank - 1], &m->c.hidden))
        return false;
    if (!product_node(m, r, gate_o, tanh_c, 3)) return false;
    for (int k = 0; k < m->n_members; k++) /* every gate reads a slice of the root's type */
        if (!same_type(&f->nodes[m->members[k]].out_types[0], t)) return false;
    if (!same_type(f->value_types[m->c.c_prev], t) || !same_type(f->value_types[m->c.c_val], t) ||
        f->value_types[m->pre]->dtype != t->dtype)
        return false;
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) /* c is read by tanh, or after the root */
        for (int k = 0; k < f->nodes[ni].n_in; k++)
            if (f->nodes[ni].in[k] == m->c.c_val && ni <= r && ni != m->def[root->in[0]] &&
                ni != m->def[root->in[1]])
                return false;
    return true;
}

/* Whether value v can be a source of a summed pre: pre's type, or (a bias) rank 1 of
 * pre's width and dtype. */
static bool sum_source(const matcher *m, uint32_t v, bool *row) {
    const am_type *t = m->f->value_types[v], *p = m->f->value_types[m->pre];
    int64_t w;
    *row = t->rank == 1 && p->rank > 1;
    if (*row) return t->dtype == p->dtype && am_json_int(t->dims[0], &w) && w == m->c.width;
    return same_type(t, p);
}

/* pre = a + (b + c) (or (b + c) + a), the inner sum read once, or else pre = a + b, read
 * by the four slices only, every operand of pre's type or a bias: the adds join the cell
 * (m->c.n_src 3 or 2). */
static void absorb_sum(matcher *m) {
    int64_t outer = m->def[m->pre];
    m->c.n_src = 1;
    m->c.src[0] = (uint32_t)m->pre;
    if (outer < 0 || m->uses[m->pre] != 4 || !plain_op(&m->f->nodes[outer]) ||
        m->f->nodes[outer].op->id != AM_OP_ADD)
        return;
    const am_node *add = &m->f->nodes[outer];
    for (int k = 0; k < 3; k++) { /* the inner sum first, second, or none (k == 2) */
        int64_t inner = k < 2 ? once(m, add->in[k], AM_OP_ADD) : -1;
        if (k < 2 && (inner < 0 ||
                      !same_type(&m->f->nodes[inner].out_types[0], m->f->value_types[m->pre])))
            continue;
        uint32_t src[3] = {add->in[k == 0], add->in[k != 0], 0};
        if (k < 2) src[1] = m->f->nodes[inner].in[0], src[2] = m->f->nodes[inner].in[1];
        int n = k < 2 ? 3 : 2;
        bool row[3] = {false, false, false}, ok = true;
        for (int i = 0; i < n; i++) ok = ok && sum_source(m, src[i], &row[i]);
        if (!ok) continue;
        m->c.n_src = n;
        m->c.swapped[4] = k == 0;
        memcpy(m->c.src, src, sizeof src);
        memcpy(m->c.row, row, sizeof row);
        m->members[m->n_members++] = (uint32_t)outer;
        if (k < 2) m->members[m->n_members++] = (uint32_t)inner;
        return;
    }
}

amber_status am_plan_cells(am_func *f, const am_json_doc *doc, am_arena *mem, am_error *err) {
    size_t nv = f->n_values ? f->n_values : 1;
    int64_t *def = (int64_t *)malloc(sizeof(int64_t) * nv);
    uint32_t *uses = (uint32_t *)calloc(nv, sizeof(uint32_t));
    amber_status st = AMBER_OK;
    if (!def || !uses) {
        st = am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
        goto done;
    }
    am_func_defs_uses(f, def, uses);
    for (uint32_t r = 0; r < f->n_nodes; r++) {
        matcher m = {f, doc, def, uses, {.n_src = 1}, {0}, 0, -1};
        if (!match_cell(&m, r)) continue;
        amber_dtype dt = f->nodes[r].out_types[0].dtype;
        absorb_sum(&m);
        m.c.sig = am_elementwise_loop(am_op_get(AM_OP_SIGMOID), dt, dt);
        m.c.tanh = am_elementwise_loop(am_op_get(AM_OP_TANH), dt, dt);
        m.c.mul = am_elementwise_loop(am_op_get(AM_OP_MUL), dt, dt);
        m.c.add = am_elementwise_loop(am_op_get(AM_OP_ADD), dt, dt);
        if (!m.c.sig || !m.c.tanh || !m.c.mul || !m.c.add) continue;
        am_cell *c;
        if ((st = am_arena_alloc(mem, sizeof *c, (void **)&c, err)) != AMBER_OK) break;
        *c = m.c;
        for (int k = 0; k < m.n_members; k++) {
            f->nodes[m.members[k]].fuse = AM_FUSE_MEMBER;
            f->nodes[m.members[k]].root = r;
        }
        f->nodes[r].cell = c;
        f->nodes[c->c_node].cell = c;
        f->n_fused_groups++;
        f->n_fused_nodes += (uint32_t)m.n_members + 2;
    }
done:
    free(def);
    free(uses);
    return st;
}

/* ---------------------------------------------------------------- the kernel */

/* Columns per block: the intermediates stay in L1. */
#define CELL_BLOCK 128
/* Elements of c worth splitting between threads. */
#define CELL_PARALLEL_MIN 1024

typedef struct cell_job {
    const am_cell *c;
    const char *src[3], *cp; /* the sources' first rows */
    int64_t src_rs[3];       /* their row strides in bytes (0: one row for all) */
    char *co, *ho;
    int64_t rows, blocks, per_task; /* blocks per row; blocks per task */
    int64_t z;                      /* element size */
} cell_job;

/* out = x op y, or y op x when swapped: the node's own operand order. */
static void binary(am_row_fn fn, char *out, char *x, char *y, bool swapped, const int64_t *s,
                   int64_t n) {
    char *p[3] = {out, swapped ? y : x, swapped ? x : y};
    fn(p, s, n, NULL);
}

static void cell_block(const cell_job *j, int64_t row, int64_t c0, int64_t n) {
    const am_cell *c = j->c;
    _Alignas(64) char tmp[3][CELL_BLOCK * 8], sums[4][CELL_BLOCK * 8];
    const int64_t z = j->z, s[3] = {z, z, z};
    const char *src[3];
    const float *fsrc[3]; /* (set in the same loop: a copy loop became a slow rep movsb) */
    for (int k = 0; k < c->n_src; k++) {
        src[k] = j->src[k] + row * j->src_rs[k] + c0 * z;
        fsrc[k] = (const float *)(const void *)src[k];
    }
    int64_t at = (row * c->hidden + c0) * z;
    char *co = j->co + at, *ho = j->ho + at;
    static const int64_t one_row[3] = {0, 0, 0};
    if (z == 4 && am_cell_f32(fsrc, one_row, c->n_src, c->off,
                              (const float *)(const void *)(j->cp + at), (float *)(void *)co,
                              (float *)(void *)ho, n, 1, 0, c->swapped))
        return;
    const char *pre = src[0];
    int64_t off[4];
    for (int g = 0; g < 4; g++) {
        off[g] = c->off[g];
        if (c->n_src == 1) continue;
        char *b[3] = {tmp[0], (char *)src[1] + off[g] * z,
                      c->n_src == 3 ? (char *)src[2] + off[g] * z : NULL};
        if (c->n_src == 3) c->add(b, s, n, NULL); /* b + c, then a + that */
        binary(c->add, sums[g], (char *)src[0] + off[g] * z, c->n_src == 3 ? tmp[0] : b[1],
               c->swapped[4], s, n);
        off[g] = g * (CELL_BLOCK * 8 / z); /* sums[g], in elements */
        pre = sums[0];
    }
    char *gi[2] = {tmp[0], (char *)pre + off[0] * z};
    char *gg[2] = {tmp[1], (char *)pre + off[2] * z};
    c->sig(gi, s, n, NULL);
    c->tanh(gg, s, n, NULL);
    binary(c->mul, tmp[2], tmp[0], tmp[1], c->swapped[0], s, n); /* i * g */
    char *gf[2] = {tmp[0], (char *)pre + off[1] * z};
    c->sig(gf, s, n, NULL);
    binary(c->mul, tmp[1], tmp[0], (char *)j->cp + at, c->swapped[1], s, n); /* f * c_prev */
    binary(c->add, co, tmp[2], tmp[1], c->swapped[2], s, n);                 /* ig + fc */
    char *go[2] = {tmp[0], (char *)pre + off[3] * z}, *tc[2] = {tmp[1], co};
    c->sig(go, s, n, NULL);
    c->tanh(tc, s, n, NULL);
    binary(c->mul, ho, tmp[0], tmp[1], c->swapped[3], s, n); /* o * tanh(c) */
}

static void cell_task(void *ud, int64_t t, int worker) {
    (void)worker;
    const cell_job *j = (const cell_job *)ud;
    int64_t b0 = t * j->per_task, b1 = b0 + j->per_task;
    if (b1 > j->rows * j->blocks) b1 = j->rows * j->blocks;
    if (j->blocks == 1 && j->z == 4 && b1 > b0) { /* whole rows b0..b1 in one pass */
        const am_cell *c = j->c;
        const float *src[3];
        int64_t rs[3], at = b0 * c->hidden * 4;
        for (int k = 0; k < c->n_src; k++) {
            src[k] = (const float *)(const void *)(j->src[k] + b0 * j->src_rs[k]);
            rs[k] = j->src_rs[k] / 4;
        }
        if (am_cell_f32(src, rs, c->n_src, c->off, (const float *)(const void *)(j->cp + at),
                        (float *)(void *)(j->co + at), (float *)(void *)(j->ho + at),
                        c->hidden, b1 - b0, c->hidden, c->swapped))
            return;
    }
    for (int64_t b = b0; b < b1; b++) {
        /* NOTE: no prefetch of the next row here: a scan asks for the next step's x_t
         * during this one (run_scan), and asking again per row cost more than it saved */
        int64_t c0 = (b % j->blocks) * CELL_BLOCK, h = j->c->hidden;
        cell_block(j, b / j->blocks, c0, h - c0 < CELL_BLOCK ? h - c0 : CELL_BLOCK);
    }
}

amber_status am_cell_run(const am_cell *cell, am_ctx *ctx, const amber_tensor *src,
                         const amber_tensor *c_prev, amber_tensor *c_out, amber_tensor *h_out) {
    int r = h_out->rank;
    int64_t numel = am_numel(h_out), h = cell->hidden;
    bool ok = r >= 1 && c_prev->rank == r && c_out->rank == r && h_out->shape[r - 1] == h &&
              c_prev->dtype == h_out->dtype;
    for (int d = 0; ok && d < r; d++)
        ok = c_prev->shape[d] == h_out->shape[d] && c_out->shape[d] == h_out->shape[d];
    for (int k = 0; ok && k < cell->n_src; k++) { /* [..., width], or a row of width */
        const amber_tensor *t = &src[k];
        ok = t->dtype == h_out->dtype && t->rank == (cell->row[k] ? 1 : r) &&
             t->shape[t->rank - 1] == cell->width;
        for (int d = 0; ok && d < t->rank - 1; d++) ok = t->shape[d] == h_out->shape[d];
    }
    if (!ok)
        return am_fail(ctx->err, AMBER_ERR_SHAPE, "the inputs of a fused LSTM cell do not "
                       "have the shapes its nodes declared");
    cell_job j = {cell, {NULL, NULL, NULL}, (const char *)c_prev->data, {0, 0, 0},
                  (char *)c_out->data, (char *)h_out->data, h ? numel / h : 0,
                  (h + CELL_BLOCK - 1) / CELL_BLOCK, 1, (int64_t)amber_dtype_size(h_out->dtype)};
    for (int k = 0; k < cell->n_src; k++) {
        j.src[k] = (const char *)src[k].data;
        j.src_rs[k] = cell->row[k] ? 0 : cell->width * j.z;
    }
    int64_t units = j.rows * j.blocks;
    int threads = numel >= CELL_PARALLEL_MIN ? am_pool_size(ctx->pool) : 1;
    if (threads > 1 && units >= 2) {
        int64_t tasks = units < 2 * (int64_t)threads ? units : 2 * (int64_t)threads;
        j.per_task = (units + tasks - 1) / tasks;
        am_pool_run(ctx->pool, (units + j.per_task - 1) / j.per_task, cell_task, &j);
    } else {
        j.per_task = units;
        if (units) cell_task(&j, 0, 0);
    }
    return AMBER_OK;
}
