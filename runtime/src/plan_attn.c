/* Finds attention (attn.h) in a loaded function: from each float matmul back through
 * the softmax to the scores' matmul. A match makes the final matmul run
 * am_attention_run and the nodes it replaces members that are never computed. */
#include "plan_attn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TAKEN 40

typedef struct matcher {
    am_func *f;
    int64_t *def;    /* value -> defining node, or -1 */
    uint32_t *uses;  /* value -> reads by nodes (UINT32_MAX: a result) */
    const am_json_doc *doc;
    uint32_t taken[MAX_TAKEN];
    int n_taken;
} matcher;

/* The op node defining v when it is `id`, computed every run and not yet fused. */
static am_node *producer(matcher *m, uint32_t v, am_op_id id) {
    int64_t d = m->def[v];
    if (d < 0) return NULL;
    am_node *n = &m->f->nodes[d];
    if (n->kind != AM_NODE_OP || n->op->id != id || n->hoist != AM_HOIST_NONE ||
        n->fuse != AM_FUSE_NONE || !n->static_attrs)
        return NULL;
    return n;
}

/* v is a rank-0 float constant: its value. */
static bool scalar(matcher *m, uint32_t v, double *out) {
    int64_t d = m->def[v];
    if (d < 0) return false;
    const am_node *n = &m->f->nodes[d];
    if (n->kind != AM_NODE_CONSTANT || n->tensor.rank != 0 || !n->tensor.data) return false;
    if (n->tensor.dtype == AMBER_FLOAT32) *out = *(const float *)n->tensor.data;
    else if (n->tensor.dtype == AMBER_FLOAT64) *out = *(const double *)n->tensor.data;
    else return false;
    return true;
}

static bool same_type(const am_type *a, const am_type *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++) {
        const am_json *x = a->dims[i], *y = b->dims[i];
        if (x->type != y->type) return false;
        if (x->type == AM_JSON_NUMBER ? x->i != y->i
                                      : (x->len != y->len || memcmp(x->str, y->str, x->len)))
            return false;
    }
    return true;
}

/* Takes n into the match when its result has `uses` reads. */
static bool take(matcher *m, am_node *n, uint32_t uses) {
    if (!n || m->uses[n->out[0]] != uses || m->n_taken == MAX_TAKEN) return false;
    m->taken[m->n_taken++] = (uint32_t)(n - m->f->nodes);
    return true;
}

/* max or sum over the last axis, keeping it, of v; NULL otherwise. */
static am_node *row_reduce(matcher *m, uint32_t v, am_op_id id, int rank) {
    am_node *n = producer(m, v, id);
    if (!n || n->static_attrs->n_axes != 1 || n->static_attrs->axes[0] != rank - 1 ||
        !n->static_attrs->keepdims)
        return NULL;
    return n;
}

/* Whether types a and b have the same dims once the literal 1s are dropped. */
static bool same_but_ones(const am_type *a, const am_type *b) {
    int i = 0, k = 0;
    for (;; i++, k++) {
        while (i < a->rank && a->dims[i]->type == AM_JSON_NUMBER && a->dims[i]->i == 1) i++;
        while (k < b->rank && b->dims[k]->type == AM_JSON_NUMBER && b->dims[k]->i == 1) k++;
        if (i == a->rank || k == b->rank) return i == a->rank && k == b->rank;
        if (!am_same_dim(a->dims[i], b->dims[k])) return false;
    }
}

/* The node defining v when the kernel can read through it (a view step, attn.h): fills st. */
static am_node *view_step(matcher *m, uint32_t v, am_attn_step *st) {
    int64_t d = m->def[v];
    if (d < 0) return NULL;
    am_node *n = &m->f->nodes[d];
    if (n->kind != AM_NODE_OP || n->hoist != AM_HOIST_NONE || n->fuse != AM_FUSE_NONE)
        return NULL;
    const am_type *in = m->f->value_types[n->in[0]];
    memset(st, 0, sizeof *st);
    st->op = n->op->id;
    if (st->op == AM_OP_TRANSPOSE && n->static_attrs) {
        for (int k = 0; k < in->rank; k++) st->perm[k] = (int8_t)n->static_attrs->perm[k];
        return n;
    }
    if (st->op == AM_OP_RESHAPE) return same_but_ones(in, &n->out_types[0]) ? n : NULL;
    if (st->op != AM_OP_SLICE || !n->attrs) return NULL;
    const am_json *a = am_json_get(m->doc, n->attrs, "starts");
    const am_json *b = am_json_get(m->doc, n->attrs, "steps");
    if (!a || !b || a->type != AM_JSON_ARRAY || b->type != AM_JSON_ARRAY ||
        a->count != (uint32_t)in->rank || b->count != (uint32_t)in->rank)
        return NULL;
    for (int k = 0; k < in->rank; k++)
        if (!am_json_int(am_json_at(m->doc, a, (size_t)k), &st->start[k]) || st->start[k] < 0 ||
            !am_json_int(am_json_at(m->doc, b, (size_t)k), &st->step[k]) || st->step[k] < 1)
            return NULL;
    return n;
}

/* The view steps from each operand inward (node[0] the outermost). */
typedef struct chain {
    int n;
    uint32_t node[AM_ATTN_STEPS];
    am_attn_step step[AM_ATTN_STEPS];
} chain;

static int reads_in(const chain *c, uint32_t node) {
    int count = 0;
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < c[i].n; k++) count += c[i].node[k] == node;
    return count;
}

/* q, kt and v (a->ext) read through the view steps that produce them and that nothing
 * else reads: those become members, ext the values they start from. */
static bool read_in_place(matcher *m, am_attn *a, amber_dtype dt) {
    chain c[3];
    for (int i = 0; i < 3; i++) {
        uint32_t v = a->ext[i];
        am_node *n;
        for (c[i].n = 0; c[i].n < AM_ATTN_STEPS && (n = view_step(m, v, &c[i].step[c[i].n]));
             v = n->in[0])
            c[i].node[c[i].n++] = (uint32_t)(n - m->f->nodes);
    }
    for (bool again = true; again;) { /* a step read elsewhere ends the chains through it */
        again = false;
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < c[i].n; k++) {
                uint32_t out = m->f->nodes[c[i].node[k]].out[0];
                if ((uint32_t)reads_in(c, c[i].node[k]) == m->uses[out]) continue;
                c[i].n = k;
                again = true;
            }
    }
    for (int i = 0; i < 3; i++) {
        a->n_steps[i] = c[i].n;
        for (int k = 0; k < c[i].n; k++) {
            const am_node *n = &m->f->nodes[c[i].node[k]];
            int s = c[i].n - 1 - k; /* innermost first */
            a->steps[i][s] = c[i].step[k];
            a->ext[AM_ATTN_STEP0 + i * AM_ATTN_STEPS + s] = n->out[0];
            if (k == c[i].n - 1) a->ext[i] = n->in[0];
            bool seen = false;
            for (int t = 0; t < m->n_taken; t++) seen |= m->taken[t] == c[i].node[k];
            if (seen) continue;
            if (m->n_taken == MAX_TAKEN) return false;
            m->taken[m->n_taken++] = c[i].node[k];
        }
        if (m->f->value_types[a->ext[i]]->dtype != dt) return false;
    }
    return true;
}

/* s (the scores after scale and mask) from the scores' matmul; fills q, kt, scale, mask. */
static bool match_scores(matcher *m, uint32_t s, const am_type *want, am_attn *a) {
    am_node *n = producer(m, s, AM_OP_WHERE);
    if (n && scalar(m, n->in[2], &a->fill) && take(m, n, 2)) {
        a->mask = AM_ATTN_KEEP;
        a->ext[AM_ATTN_MASK] = n->in[0];
        s = n->in[1];
    } else if ((n = producer(m, s, AM_OP_ADD)) != NULL && take(m, n, 2)) {
        a->mask = AM_ATTN_ADD;
        bool first = producer(m, n->in[0], AM_OP_MUL) || producer(m, n->in[0], AM_OP_MATMUL);
        a->ext[AM_ATTN_MASK] = n->in[first ? 1 : 0];
        s = n->in[first ? 0 : 1];
    }
    if (a->mask != AM_ATTN_NO_MASK) {
        const am_type *mt = m->f->value_types[a->ext[AM_ATTN_MASK]];
        if (!same_type(&n->out_types[0], want) || mt->rank > want->rank ||
            (a->mask == AM_ATTN_KEEP ? mt->dtype != AMBER_BOOL : mt->dtype != want->dtype))
            return false;
        if (m->uses[s] != 1) return false;
    }
    if ((n = producer(m, s, AM_OP_MUL)) != NULL) {
        int c = scalar(m, n->in[1], &a->scale) ? 1 : scalar(m, n->in[0], &a->scale) ? 0 : -1;
        if (c < 0 || !take(m, n, a->mask ? 1 : 2) || !same_type(&n->out_types[0], want))
            return false;
        a->scaled = true;
        s = n->in[1 - c];
    }
    n = producer(m, s, AM_OP_MATMUL);
    uint32_t want_uses = a->scaled || a->mask ? 1 : 2;
    if (!n || !same_type(&n->out_types[0], want) || !take(m, n, want_uses)) return false;
    a->ext[AM_ATTN_Q] = n->in[0];
    a->ext[AM_ATTN_KT] = n->in[1];
    return true;
}

/* The softmax (plain or safe) whose result p is read by the final matmul only. */
static bool match_softmax(matcher *m, uint32_t p, am_attn *a) {
    uint32_t dead = UINT32_MAX;
    am_node *w = producer(m, p, AM_OP_WHERE), *eq = NULL, *m1 = NULL;
    if (w && scalar(m, w->in[1], &a->dead_p) && (eq = producer(m, w->in[0], AM_OP_EQ)) &&
        scalar(m, eq->in[1], &a->dead_at) && take(m, w, 1)) {
        a->safe = true;
        dead = w->in[0];
        p = w->in[2];
    }
    int rank = m->f->value_types[p]->rank;
    const am_type *want = m->f->value_types[p];
    am_node *div = producer(m, p, AM_OP_DIV);
    if (!div || !take(m, div, 1)) return false;
    am_node *sum = row_reduce(m, div->in[1], AM_OP_SUM, rank);
    if (!sum || sum->in[0] != div->in[0] || !take(m, sum, 1)) return false;
    am_node *ex = producer(m, div->in[0], AM_OP_EXP);
    if (!ex || !take(m, ex, 2)) return false;
    am_node *sub = producer(m, ex->in[0], AM_OP_SUB);
    if (!sub || !take(m, sub, 1)) return false;
    am_node *m2 = row_reduce(m, sub->in[1], AM_OP_MAX, rank);
    if (!m2 || m2->in[0] != sub->in[0] || !take(m, m2, 1)) return false;
    uint32_t s = sub->in[0];
    if (a->safe) {
        am_node *ws = producer(m, s, AM_OP_WHERE);
        if (!ws || ws->in[0] != dead || !scalar(m, ws->in[1], &a->dead_s) || !take(m, ws, 2) ||
            !take(m, eq, 2))
            return false;
        m1 = row_reduce(m, eq->in[0], AM_OP_MAX, rank);
        if (!m1 || m1->in[0] != ws->in[2] || !take(m, m1, 1)) return false;
        s = ws->in[2];
    }
    for (int i = 0; i < m->n_taken; i++)
    {
        am_op_id id = m->f->nodes[m->taken[i]].op->id; /* reductions keep a size-1 dim */
        if (id != AM_OP_MAX && id != AM_OP_SUM && id != AM_OP_EQ &&
            !same_type(&m->f->nodes[m->taken[i]].out_types[0], want))
            return false;
    }
    return match_scores(m, s, want, a); /* s has two reads: a max and a where or sub */
}

/* Tries the matmul at node r as the end of an attention. */
static bool match_at(matcher *m, uint32_t r, am_attn *a) {
    am_node *root = &m->f->nodes[r];
    if (root->kind != AM_NODE_OP || root->op->id != AM_OP_MATMUL ||
        root->hoist != AM_HOIST_NONE || root->fuse != AM_FUSE_NONE)
        return false;
    amber_dtype dt = root->out_types[0].dtype;
    int rank = root->out_types[0].rank;
    if ((dt != AMBER_FLOAT32 && dt != AMBER_FLOAT64) || rank < 2) return false;
    memset(a, 0, sizeof *a);
    m->n_taken = 0;
    a->rank = rank;
    a->ext[AM_ATTN_V] = root->in[1];
    if (!match_softmax(m, root->in[0], a)) return false;
    for (int i = 0; i < 3; i++) {
        const am_type *t = m->f->value_types[a->ext[i]];
        if (t->rank != rank || t->dtype != dt) return false;
    }
    if (!read_in_place(m, a, dt)) return false;
    for (int i = 0; i < 3; i++) /* unused slots: any value */
        for (int k = a->n_steps[i]; k < AM_ATTN_STEPS; k++)
            a->ext[AM_ATTN_STEP0 + i * AM_ATTN_STEPS + k] = a->ext[AM_ATTN_Q];
    if (a->mask == AM_ATTN_NO_MASK) a->ext[AM_ATTN_MASK] = a->ext[AM_ATTN_Q];
    a->n_ext = AM_ATTN_MAX_EXT;
    a->out_perm[0] = -1;
    return true;
}

/* xc * inv of a layer norm at v (see am_norm): fills x and the constants. */
static bool match_norm_core(matcher *m, uint32_t v, uint32_t uses, am_norm *nm) {
    am_node *y = producer(m, v, AM_OP_MUL);
    if (!y || !take(m, y, uses)) return false;
    const am_type *want = &y->out_types[0];
    int rank = want->rank;
    for (int side = 0; side < 2; side++) {
        m->n_taken = 1;
        uint32_t xc = y->in[1 - side];
        am_node *d = producer(m, y->in[side], AM_OP_DIV), *sq = NULL, *ad = NULL, *dv = NULL;
        am_node *s2 = NULL, *mm = NULL, *sb = NULL, *dv1 = NULL, *s1 = NULL;
        if (!d || !scalar(m, d->in[0], &nm->one) || !take(m, d, 1)) continue;
        if (!(sq = producer(m, d->in[1], AM_OP_SQRT)) || !take(m, sq, 1)) continue;
        if (!(ad = producer(m, sq->in[0], AM_OP_ADD)) || !scalar(m, ad->in[1], &nm->eps) ||
            !take(m, ad, 1))
            continue;
        if (!(dv = producer(m, ad->in[0], AM_OP_DIV)) || !scalar(m, dv->in[1], &nm->count2) ||
            !take(m, dv, 1))
            continue;
        if (!(s2 = row_reduce(m, dv->in[0], AM_OP_SUM, rank)) || !take(m, s2, 1)) continue;
        if (!(mm = producer(m, s2->in[0], AM_OP_MUL)) || mm->in[0] != xc || mm->in[1] != xc ||
            !take(m, mm, 1))
            continue;
        if (!(sb = producer(m, xc, AM_OP_SUB)) || !take(m, sb, 3)) continue;
        if (!(dv1 = producer(m, sb->in[1], AM_OP_DIV)) ||
            !scalar(m, dv1->in[1], &nm->count1) || !take(m, dv1, 1))
            continue;
        if (!(s1 = row_reduce(m, dv1->in[0], AM_OP_SUM, rank)) || s1->in[0] != sb->in[0] ||
            !take(m, s1, 1))
            continue;
        if (!same_type(&sb->out_types[0], want) || !same_type(&mm->out_types[0], want) ||
            !same_type(m->f->value_types[sb->in[0]], want))
            continue;
        nm->ext[0] = sb->in[0];
        return true;
    }
    return false;
}

/* An affine parameter p (w or b) of a layer norm of type want: [h] with want's last dim. */
static bool norm_param(matcher *m, uint32_t p, const am_type *want) {
    const am_type *t = m->f->value_types[p];
    const am_json *a = t->rank == 1 ? t->dims[0] : NULL, *b = want->dims[want->rank - 1];
    return a && t->dtype == want->dtype && a->type == b->type &&
           (a->type == AM_JSON_NUMBER ? a->i == b->i
                                      : a->len == b->len && !memcmp(a->str, b->str, a->len));
}

/* The layer norm ending at node r (its last add or mul). */
static bool match_norm(matcher *m, uint32_t r, am_norm *nm) {
    am_node *root = &m->f->nodes[r];
    if (root->kind != AM_NODE_OP || root->hoist != AM_HOIST_NONE ||
        root->fuse != AM_FUSE_NONE || root->attn)
        return false;
    amber_dtype dt = root->out_types[0].dtype;
    if ((dt != AMBER_FLOAT32 && dt != AMBER_FLOAT64) || root->out_types[0].rank < 1)
        return false;
    memset(nm, 0, sizeof *nm);
    const am_type *want = &root->out_types[0];
    uint32_t v = root->out[0], bias = UINT32_MAX, weight = UINT32_MAX;
    m->n_taken = 0;
    if (root->op->id == AM_OP_ADD) {
        int side = producer(m, root->in[0], AM_OP_MUL) ? 0 : 1;
        bias = root->in[1 - side];
        v = root->in[side];
        if (m->uses[v] != 1 || !norm_param(m, bias, want)) return false;
    }
    uint32_t after = m->uses[v]; /* reads of the last mul's result */
    am_norm core = *nm;
    if (match_norm_core(m, v, after, &core)) {
        *nm = core;
    } else {
        am_node *mw = producer(m, v, AM_OP_MUL);
        if (!mw) return false;
        for (int side = 0; side < 2 && weight == UINT32_MAX; side++) {
            core = *nm;
            m->n_taken = 0;
            if (norm_param(m, mw->in[1 - side], want) &&
                match_norm_core(m, mw->in[side], 1, &core) && take(m, mw, after))
                weight = mw->in[1 - side];
        }
        if (weight == UINT32_MAX) return false;
        *nm = core;
    }
    if (!same_type(&m->f->nodes[m->taken[0]].out_types[0], want)) return false;
    nm->n_ext = 1;
    if ((nm->has_w = weight != UINT32_MAX)) nm->ext[nm->n_ext++] = weight;
    if ((nm->has_b = bias != UINT32_MAX)) nm->ext[nm->n_ext++] = bias;
    if (root->op->id == AM_OP_ADD) m->taken[m->n_taken++] = r; /* marks nothing: the root */
    return true;
}

/* The transpose keeping the last axis last that alone reads node r's result (the
 * attention writes its result in that layout), or r. */
static uint32_t out_transpose(matcher *m, uint32_t r, am_attn *a) {
    uint32_t v = m->f->nodes[r].out[0];
    if (m->uses[v] != 1) return r;
    for (uint32_t t = r + 1; t < m->f->n_nodes; t++) {
        am_node *n = &m->f->nodes[t];
        if (n->kind != AM_NODE_OP || n->n_in < 1 || n->in[0] != v) continue;
        if (n->op->id != AM_OP_TRANSPOSE || n->hoist != AM_HOIST_NONE ||
            n->fuse != AM_FUSE_NONE || !n->static_attrs ||
            n->static_attrs->perm[a->rank - 1] != a->rank - 1 || m->n_taken == MAX_TAKEN)
            return r;
        for (int d = 0; d < a->rank; d++) a->out_perm[d] = (int8_t)n->static_attrs->perm[d];
        m->taken[m->n_taken++] = r;
        return t;
    }
    return r;
}

amber_status am_plan_attention(am_func *f, const am_json_doc *doc, am_arena *mem,
                               am_error *err) {
    size_t nv = f->n_values ? f->n_values : 1;
    matcher m = {f, (int64_t *)malloc(sizeof(int64_t) * nv),
                 (uint32_t *)calloc(nv, sizeof(uint32_t)), doc, {0}, 0};
    amber_status st = AMBER_OK;
    if (!m.def || !m.uses) {
        st = am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
        goto done;
    }
    for (uint32_t v = 0; v < f->n_values; v++) m.def[v] = -1;
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        const am_node *n = &f->nodes[ni];
        for (int k = 0; k < n->n_out; k++) m.def[n->out[k]] = ni;
        for (int k = 0; k < n->n_in; k++) m.uses[n->in[k]]++;
    }
    for (uint32_t k = 0; k < f->n_results; k++) m.uses[f->results[k]] = UINT32_MAX;
    for (uint32_t r = 0; r < f->n_nodes; r++) {
        am_attn a;
        if (!match_at(&m, r, &a)) continue;
        uint32_t at = out_transpose(&m, r, &a);
        am_attn *keep;
        if ((st = am_arena_calloc(mem, 1, sizeof *keep, (void **)&keep, err)) != AMBER_OK) break;
        *keep = a;
        for (int i = 0; i < m.n_taken; i++) {
            am_node *n = &f->nodes[m.taken[i]];
            n->fuse = AM_FUSE_MEMBER;
            n->root = at;
        }
        f->nodes[at].attn = keep;
        f->n_attention++;
    }
    for (uint32_t r = f->n_nodes; r-- > 0;) { /* the outermost node of a norm first */
        am_norm nm;
        if (!match_norm(&m, r, &nm)) continue;
        am_norm *keep;
        if ((st = am_arena_calloc(mem, 1, sizeof *keep, (void **)&keep, err)) != AMBER_OK) break;
        *keep = nm;
        for (int i = 0; i < m.n_taken; i++) {
            if (m.taken[i] == r) continue;
            f->nodes[m.taken[i]].fuse = AM_FUSE_MEMBER;
            f->nodes[m.taken[i]].root = r;
        }
        f->nodes[r].fuse = AM_FUSE_NONE;
        f->nodes[r].norm = keep;
        f->n_norms++;
    }
done:
    free(m.def);
    free(m.uses);
    return st;
}
