/* Load-time planning of a loaded program (prog.h): which nodes are hoisted out of every
 * run (weights, constants and parameters every call passes the same such value), which
 * elementwise chains fuse, the lifetimes of the values a run places by a memory plan,
 * and which parameters stay fixed for a session. Nothing here changes what a run
 * computes, only where and when. */
#include "prog.h"
#include "plan_attn.h"
#include "plan_cell.h"

#include <stdlib.h>
#include <string.h>

typedef struct planner {
    am_program *p;
    am_error *err;
} planner;

static amber_status alloc(planner *L, size_t n, size_t size, void *out) {
    return am_arena_calloc(&L->p->mem, n ? n : 1, size, (void **)out, L->err);
}

/* Marks the op nodes that depend on weights, constants and the parameters marked in
 * `same` only (see am_hoist); may run again when `same` changes. */
static amber_status plan_hoisting(planner *L, am_func *f, const uint8_t *same) {
    uint8_t *fixed = (uint8_t *)calloc(f->n_values ? f->n_values : 1, 1);
    if (!fixed) return am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    for (uint32_t i = 0; i < f->n_params; i++) fixed[i] = same[i];
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        am_node *n = &f->nodes[ni];
        n->hoist = AM_HOIST_NONE;
        n->fixed_in = 0;
        bool fix = n->kind == AM_NODE_CONSTANT || n->kind == AM_NODE_WEIGHT;
        if (n->kind == AM_NODE_OP) {
            fix = n->static_attrs != NULL;
            for (int k = 0; k < n->n_in && fix; k++) fix = fixed[n->in[k]];
            if (fix) n->hoist = AM_HOIST_CACHED;
        }
        for (int k = 0; k < n->n_out; k++) fixed[n->out[k]] = fix;
    }
    /* A hoisted value whose every use is by hoisted nodes need not be kept. */
    uint8_t *outer = fixed; /* reused: 1 = used outside the hoisted subgraph or unused */
    memset(outer, 0, f->n_values ? f->n_values : 1);
    uint8_t *used = (uint8_t *)calloc(f->n_values ? f->n_values : 1, 1);
    if (!used) {
        free(outer);
        return am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    }
    for (uint32_t ni = 0; ni < f->n_nodes; ni++)
        for (int k = 0; k < f->nodes[ni].n_in; k++) {
            used[f->nodes[ni].in[k]] = 1;
            if (f->nodes[ni].hoist == AM_HOIST_NONE) outer[f->nodes[ni].in[k]] = 1;
        }
    for (uint32_t k = 0; k < f->n_results; k++) outer[f->results[k]] = 1;
    f->n_cached = 0;
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        am_node *n = &f->nodes[ni];
        if (n->kind == AM_NODE_CONSTANT || n->kind == AM_NODE_WEIGHT) {
            if (used[n->out[0]] && !outer[n->out[0]]) n->hoist = AM_HOIST_INNER;
            continue;
        }
        if (n->hoist == AM_HOIST_NONE) continue;
        if (outer[n->out[0]] || !used[n->out[0]]) f->n_cached++;
        else n->hoist = AM_HOIST_INNER;
    }
    /* Inputs whose data stays put for a session (am_ctx.fixed_inputs): weights,
     * constants and cached values, not the inner ones (they live in the run arena). */
    uint8_t *kept = outer; /* reused */
    memset(kept, 0, f->n_values ? f->n_values : 1);
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        am_node *n = &f->nodes[ni];
        if (n->hoist == AM_HOIST_NONE)
            for (int k = 0; k < n->n_in && k < 8; k++)
                if (kept[n->in[k]]) n->fixed_in |= (uint8_t)(1u << k);
        if (n->kind == AM_NODE_CONSTANT || n->kind == AM_NODE_WEIGHT ||
            n->hoist == AM_HOIST_CACHED)
            kept[n->out[0]] = 1;
    }
    free(outer);
    free(used);
    return AMBER_OK;
}

/* The elementwise row loop node n would run (NULL: not fusible), from declared dtypes. */
static am_row_fn fusible_loop(const am_func *f, const am_node *n) {
    if (n->kind != AM_NODE_OP || n->hoist != AM_HOIST_NONE || n->n_in > 3 ||
        n->fuse != AM_FUSE_NONE || n->attn || n->norm || n->cell)
        return NULL;
    return am_elementwise_loop(n->op, f->value_types[n->in[0]]->dtype, n->out_types[0].dtype);
}

static bool same_dims(const am_type *a, const am_type *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (!am_same_dim(a->dims[i], b->dims[i])) return false;
    return true;
}

/* A group being grown: member node indices (any order) and their flags by node. */
typedef struct group {
    uint32_t n, node[AM_FUSED_MAX_STEPS];
    uint8_t *in;
    const int64_t *def;
} group;

static bool made_inside(const group *g, uint32_t v) { return g->def[v] >= 0 && g->in[g->def[v]]; }

/* The group's external inputs in first-read order; false if there are too many. */
static bool group_inputs(const am_func *f, const group *g, uint32_t *ext, int *n_ext) {
    *n_ext = 0;
    for (uint32_t i = 0; i < g->n; i++) {
        const am_node *n = &f->nodes[g->node[i]];
        for (int k = 0; k < n->n_in; k++) {
            uint32_t v = n->in[k];
            bool seen = made_inside(g, v);
            for (int e = 0; e < *n_ext && !seen; e++) seen = ext[e] == v;
            if (seen) continue;
            if (*n_ext == AM_FUSED_MAX_EXT) return false;
            ext[(*n_ext)++] = v;
        }
    }
    return true;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

void am_func_defs_uses(const am_func *f, int64_t *def, uint32_t *uses) {
    for (uint32_t v = 0; v < f->n_values; v++) def[v] = -1;
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        const am_node *n = &f->nodes[ni];
        for (int k = 0; k < n->n_out; k++) def[n->out[k]] = ni;
        for (int k = 0; k < n->n_in; k++) uses[n->in[k]]++;
    }
    for (uint32_t k = 0; k < f->n_results; k++) uses[f->results[k]] = UINT32_MAX; /* kept */
}

/* The product (a conv2d or matmul run every time) that member node m reaches through
 * members: its index, -1 for none, -2 for more than one; from those of earlier members.
 * *last: the latest product it reads. */
static int64_t reach_of(const am_func *f, const group *g, const int64_t *reach, uint32_t m,
                        int64_t *last) {
    int64_t r = -1;
    for (int k = 0; k < f->nodes[m].n_in; k++) {
        int64_t d = g->def[f->nodes[m].in[k]], t = -1;
        const am_node *q = d >= 0 ? &f->nodes[d] : NULL;
        if (q && g->in[d]) t = reach[d];
        else if (q && q->kind == AM_NODE_OP && q->hoist == AM_HOIST_NONE &&
                 (q->op->id == AM_OP_CONV2D || q->op->id == AM_OP_MATMUL))
            t = d, *last = d > *last ? d : *last;
        if (t != -1) r = r == -1 || r == t ? t : -2;
    }
    return r;
}

/* A group joining two products' chains keeps the later product's: the members that reach
 * only another product leave it (they root a group of their own, which that product's
 * epilogue takes: a downsampling branch's BatchNorm in its convolution; the residual
 * add then reads its result as a row), and so do members reaching no product that
 * those read (a member's value exists only inside its group). g's nodes in program
 * order, ending with the root. */
static void keep_one_product(const am_func *f, group *g, int64_t *reach) {
    int64_t keep = -1;
    for (uint32_t i = 0; i < g->n; i++)
        reach[g->node[i]] = reach_of(f, g, reach, g->node[i], &keep);
    for (uint32_t i = g->n; i-- > 0;) { /* (later members first: chains of them leave) */
        int64_t r = reach[g->node[i]];
        const am_node *m = &f->nodes[g->node[i]];
        for (int k = 0; k < m->n_in && r >= 0 && r != keep; k++) {
            int64_t d = g->def[m->in[k]];
            if (d >= 0 && g->in[d] && reach[d] == -1) reach[d] = r;
        }
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->n; i++) {
        if (reach[g->node[i]] >= 0 && reach[g->node[i]] != keep)
            g->in[g->node[i]] = 0;
        else
            g->node[n++] = g->node[i];
    }
    g->n = n;
}

/* Fuses chains of elementwise ops (see am_fused). From the last node back, each fusible
 * node not yet in a group roots one, which takes in the producers of its members'
 * inputs while they are fusible, give a result of the root's shape, are not results,
 * and are read by members only (but see keep_one_product). */
static amber_status plan_fusion(planner *L, am_func *f) {
    size_t nv = f->n_values ? f->n_values : 1, nn = f->n_nodes ? f->n_nodes : 1;
    int64_t *def = (int64_t *)malloc(sizeof(int64_t) * nv);
    uint32_t *uses = (uint32_t *)calloc(nv, sizeof(uint32_t));
    uint8_t *in = (uint8_t *)calloc(nn, 1), *taken = (uint8_t *)calloc(nn, 1);
    int64_t *reach = (int64_t *)malloc(sizeof(int64_t) * nn);
    amber_status st = AMBER_OK;
    if (!def || !uses || !in || !taken || !reach) {
        st = am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
        goto done;
    }
    am_func_defs_uses(f, def, uses);
    for (uint32_t r = f->n_nodes; r-- > 0;) {
        am_node *root = &f->nodes[r];
        if (taken[r] || !fusible_loop(f, root)) continue;
        group g = {1, {r}, in, def};
        in[r] = 1;
        uint32_t ext[AM_FUSED_MAX_EXT];
        int n_ext = 0;
        for (bool grew = true; grew && g.n < AM_FUSED_MAX_STEPS;) {
            grew = false;
            for (uint32_t i = 0; i < g.n && !grew; i++) {
                const am_node *m = &f->nodes[g.node[i]];
                for (int k = 0; k < m->n_in && !grew; k++) {
                    uint32_t v = m->in[k];
                    int64_t pi = def[v];
                    if (pi < 0 || in[pi] || taken[pi] || uses[v] == UINT32_MAX) continue;
                    const am_node *pn = &f->nodes[pi];
                    if (!fusible_loop(f, pn) || !same_dims(&pn->out_types[0], &root->out_types[0]))
                        continue;
                    uint32_t inside = 0; /* reads of v by members */
                    for (uint32_t j = 0; j < g.n; j++)
                        for (int q = 0; q < f->nodes[g.node[j]].n_in; q++)
                            inside += f->nodes[g.node[j]].in[q] == v;
                    if (inside != uses[v]) continue;
                    in[pi] = 1;
                    g.node[g.n++] = (uint32_t)pi;
                    grew = group_inputs(f, &g, ext, &n_ext);
                    if (!grew) in[g.node[--g.n]] = 0;
                }
            }
        }
        qsort(g.node, g.n, sizeof g.node[0], cmp_u32); /* steps in program order */
        group whole = g;
        keep_one_product(f, &g, reach);
        if (!group_inputs(f, &g, ext, &n_ext)) { /* (one more input than allowed) */
            for (uint32_t i = 0; i < whole.n; i++) in[whole.node[i]] = 1;
            g = whole;
        }
        if (g.n >= 2 && group_inputs(f, &g, ext, &n_ext)) {
            am_fused *fu;
            if ((st = alloc(L, 1, sizeof *fu, &fu)) != AMBER_OK) goto done;
            fu->n_ext = n_ext;
            memcpy(fu->ext, ext, sizeof(uint32_t) * (size_t)n_ext);
            for (uint32_t i = 0; i < g.n; i++) {
                am_node *m = &f->nodes[g.node[i]];
                am_fused_step *sp = &fu->steps[fu->n_steps++];
                sp->fn = fusible_loop(f, m);
                sp->dtype = m->out_types[0].dtype;
                sp->n_in = m->n_in;
                for (int k = 0; k < m->n_in; k++) {
                    uint32_t v = m->in[k];
                    for (uint32_t j = 0; j < i; j++) /* made by an earlier step? */
                        if (def[v] == (int64_t)g.node[j]) sp->src[k] = -(int)j - 1;
                    for (int e = 0; e < n_ext; e++)
                        if (ext[e] == v) sp->src[k] = e;
                }
                taken[g.node[i]] = 1;
                m->fuse = g.node[i] == r ? AM_FUSE_ROOT : AM_FUSE_MEMBER;
                m->root = r;
            }
            root->fused = fu;
            f->n_fused_groups++;
            f->n_fused_nodes += g.n;
        }
        for (uint32_t i = 0; i < g.n; i++) in[g.node[i]] = 0;
    }
done:
    free(def);
    free(uses);
    free(in);
    free(taken);
    free(reach);
    return st;
}

/* Whether node d may compute its result v in place inside a concatenation along the
 * channels (am_node.part): a conv2d, or a group after one reading no other value with
 * images (run image by image when the result's images are not contiguous there). */
static bool part_ok(const am_func *f, const am_node *d, uint32_t v) {
    if (d->kind != AM_NODE_OP || d->hoist != AM_HOIST_NONE || d->attn || d->norm || d->cell ||
        d->n_out != 1 || f->value_types[v]->rank != 4)
        return false;
    if (d->fuse == AM_FUSE_NONE) return d->op->id == AM_OP_CONV2D;
    const am_fused *g = d->fused;
    if (d->fuse != AM_FUSE_ROOT || !g->producer ||
        f->nodes[g->producer - 1].op->id != AM_OP_CONV2D)
        return false;
    for (int k = 0; k < g->n_ext; k++) {
        const am_type *t = f->value_types[g->ext[k]];
        if (k != g->self && t->rank == 4 &&
            (t->dims[0]->type != AM_JSON_NUMBER || t->dims[0]->i != 1))
            return false;
    }
    return true;
}

/* Concatenations along axis 1 whose every input is read by it alone and computed by a
 * node part_ok takes: those nodes write into the concatenation's memory, which lives
 * from the first of them on, and the concat copies nothing (am_node.gathered). */
static void plan_parts(am_func *f, const int64_t *def, const uint32_t *uses, bool *planned,
                       uint32_t *first) {
    for (uint32_t ci = 0; ci < f->n_nodes; ci++) {
        am_node *c = &f->nodes[ci];
        bool ok = c->kind == AM_NODE_OP && c->op->id == AM_OP_CONCAT && c->static_attrs &&
                  c->static_attrs->axis == 1 && c->hoist == AM_HOIST_NONE &&
                  planned[c->out[0]] && c->n_in > 0 && f->value_types[c->out[0]]->rank == 4;
        for (int k = 0; ok && k < c->n_in; k++) {
            uint32_t v = c->in[k];
            ok = uses[v] == 1 && planned[v] && def[v] >= 0 && part_ok(f, &f->nodes[def[v]], v);
        }
        if (!ok) continue;
        c->gathered = true;
        for (int k = 0; k < c->n_in; k++) {
            uint32_t v = c->in[k];
            planned[v] = false;
            f->nodes[def[v]].part = ci + 1;
            if ((uint32_t)def[v] < first[c->out[0]]) first[c->out[0]] = (uint32_t)def[v];
        }
    }
}

/* A group after a conv2d whose result may take the memory of an input of its type that
 * dies there (am_epilogue_over: a residual) gets it (am_node.over), as a reshape gets its
 * input's (owner: the planned value holding the memory, which then lives as long as the
 * result does), unless the product or another input of the group reads that memory. */
static void plan_over(am_func *f, uint32_t *owner, uint32_t *last, bool *planned) {
    for (uint32_t ri = 0; ri < f->n_nodes; ri++) {
        am_node *n = &f->nodes[ri];
        int k = am_epilogue_over(f, n);
        if (k < 0) continue;
        const am_fused *g = n->fused;
        const am_node *p = &f->nodes[g->producer - 1];
        uint32_t y = n->out[0], m = owner[g->ext[k]];
        bool ok = planned[y] && planned[m] && last[m] == ri;
        for (int e = 0; ok && e < g->n_ext; e++) ok = e == k || owner[g->ext[e]] != m;
        for (int e = 0; ok && e < p->n_in; e++) ok = owner[p->in[e]] != m;
        if (!ok) continue;
        n->over = (uint8_t)(k + 1);
        planned[y] = false;
        owner[y] = m;
        if (last[y] > last[m]) last[m] = last[y];
    }
}

/* Lifetimes of the values a run places by a memory plan (see am_func). A fused member
 * reads its inputs when its root runs; a reshape's result is its input's memory. */
static amber_status plan_lifetimes(planner *L, am_func *f) {
    size_t nv = f->n_values ? f->n_values : 1;
    uint32_t *last = (uint32_t *)calloc(4 * nv, sizeof(uint32_t));
    uint32_t *owner = last + nv, *first = last + 2 * nv, *uses = last + 3 * nv;
    int64_t *def = (int64_t *)malloc(sizeof(int64_t) * nv);
    bool *planned = (bool *)calloc(nv, sizeof(bool));
    if (!last || !def || !planned) {
        free(last);
        free(def);
        free(planned);
        return am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    }
    am_func_defs_uses(f, def, uses);
    for (uint32_t v = 0; v < f->n_values; v++) {
        owner[v] = v;
        first[v] = (uint32_t)def[v];
    }
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        am_node *n = &f->nodes[ni];
        uint32_t at = n->fuse == AM_FUSE_MEMBER ? n->root : ni;
        n->alias = n->kind == AM_NODE_OP && n->op->id == AM_OP_RESHAPE && n->hoist == AM_HOIST_NONE;
        n->gathered = false, n->part = 0, n->over = 0;
        for (int k = 0; k < n->n_out; k++) {
            last[n->out[k]] = ni;
            planned[n->out[k]] = n->kind == AM_NODE_OP && n->hoist != AM_HOIST_CACHED &&
                                 n->fuse != AM_FUSE_MEMBER && !n->alias;
        }
        if (n->alias) owner[n->out[0]] = owner[n->in[0]];
        for (int k = 0; k < n->n_in; k++)
            if (last[n->in[k]] < at) last[n->in[k]] = at;
    }
    for (uint32_t v = 0; v < f->n_values; v++) /* memory lives as long as its aliases */
        if (last[owner[v]] < last[v]) last[owner[v]] = last[v];
    for (uint32_t k = 0; k < f->n_results; k++) planned[owner[f->results[k]]] = false;
    /* NOTE: a plan is computed when the function starts, but a stacking while binds its
     * trip dim only when it ends: values typed by that dim cannot be placed up front, so
     * such a function (a while gradient) allocates every value as it runs. */
    for (uint32_t ni = 0; ni < f->n_nodes; ni++)
        if (f->nodes[ni].kind == AM_NODE_WHILE && f->nodes[ni].trip_symbol >= 0)
            for (uint32_t v = 0; v < f->n_values; v++) planned[v] = false;
    for (uint32_t ni = 0; ni < f->n_nodes; ni++)
        if (f->nodes[ni].kind >= AM_NODE_CALL)
            for (int k = 0; k < f->nodes[ni].n_in; k++) planned[owner[f->nodes[ni].in[k]]] = false;
    plan_parts(f, def, uses, planned, first);
    plan_over(f, owner, last, planned);
    uint32_t count = 0;
    for (uint32_t v = 0; v < f->n_values; v++) count += planned[v];
    amber_status st = alloc(L, count, sizeof(uint32_t), &f->planned);
    if (st == AMBER_OK) st = alloc(L, count, sizeof(uint32_t), &f->plan_first);
    if (st == AMBER_OK) st = alloc(L, count, sizeof(uint32_t), &f->plan_last);
    if (st == AMBER_OK) st = alloc(L, count, 1, &f->plan_inner);
    if (st == AMBER_OK) st = alloc(L, f->n_values, sizeof(int32_t), &f->plan_slot);
    for (uint32_t v = 0; st == AMBER_OK && v < f->n_values; v++) f->plan_slot[v] = -1;
    for (uint32_t ni = 0; st == AMBER_OK && ni < f->n_nodes; ni++) {
        const am_node *n = &f->nodes[ni];
        for (int k = 0; k < n->n_out; k++) {
            uint32_t v = n->out[k];
            if (!planned[v]) continue;
            f->plan_slot[v] = (int32_t)f->n_planned;
            f->planned[f->n_planned] = v;
            f->plan_first[f->n_planned] = first[v];
            f->plan_last[f->n_planned] = last[v];
            f->plan_inner[f->n_planned++] = n->hoist == AM_HOIST_INNER;
            f->n_plan_inner += n->hoist == AM_HOIST_INNER;
        }
    }
    free(last);
    free(def);
    free(planned);
    return st;
}

typedef void (*edge_fn)(void *, uint32_t, uint32_t, uint32_t, uint32_t, bool);

/* Visits the argument-to-parameter edges of function fi's call, cond, while and scan
 * nodes: fn(ud, caller, value, callee, param, varies) for each function a node runs;
 * varies: the argument changes between iterations (a loop carry or a scanned slice). */
static void arguments_of(const am_program *p, uint32_t fi, edge_fn fn, void *ud) {
    const am_func *f = &p->funcs[fi];
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        const am_node *n = &f->nodes[ni];
        if (n->kind < AM_NODE_CALL) continue;
        int first = n->kind == AM_NODE_COND; /* the predicate goes to no function */
        int varying = n->kind == AM_NODE_WHILE  ? n->n_carries
                      : n->kind == AM_NODE_SCAN ? n->n_carries + n->n_xs
                                                : 0;
        int nc = n->kind == AM_NODE_COND || n->kind == AM_NODE_WHILE ? 2 : 1;
        for (int k = first; k < n->n_in; k++)
            for (int c = 0; c < nc; c++)
                fn(ud, fi, n->in[k], c ? n->callee2 : n->callee, (uint32_t)(k - first),
                   k < varying);
    }
}

static void each_argument(const am_program *p, edge_fn fn, void *ud) {
    for (uint32_t fi = 0; fi < p->n_funcs; fi++) arguments_of(p, fi, fn, ud);
}

/* ---------------------------------------------------------------- same-value parameters */

/* A parameter receives the same value at every call of a session when every call passes
 * one and the same weight, constant or cached value (directly or through such parameters
 * of its callers), and a loop passes it unchanged to every iteration. Nodes computed from
 * such parameters, weights and constants alone are then hoisted like weight-only nodes:
 * a loop body transposing a weight it is handed does so once per session, not once per
 * iteration. State per parameter: UNSET (no call seen yet), SAME as the value
 * (src_f, src_v), or VARIES; states only move down that order. */
enum { SAME_UNSET, SAME_ONE, SAME_VARIES };
typedef struct same_param {
    uint8_t state;
    uint32_t src_f, src_v;
} same_param;

typedef struct same_walk {
    planner *L;
    uint32_t *base;    /* per function: its first global parameter */
    same_param *param; /* per global parameter */
    uint32_t *queue;   /* functions to (re)plan, a ring of n_funcs */
    uint8_t *queued;
    uint8_t *same;     /* per parameter of the function being planned: hoistable */
    uint8_t *made;     /* per value of the function being planned: a weight, a constant
                          or a cached value */
    uint32_t head, count;
} same_walk;

static void same_push(same_walk *w, uint32_t fi) {
    uint32_t n = w->L->p->n_funcs;
    if (w->queued[fi]) return;
    w->queued[fi] = 1;
    w->queue[(w->head + w->count++) % n] = fi;
}

/* Meets what one call passes into the callee's parameter; a change replans the callee. */
static void same_edge(void *ud, uint32_t caller, uint32_t v, uint32_t callee, uint32_t param,
                      bool varies) {
    same_walk *w = (same_walk *)ud;
    const am_func *f = &w->L->p->funcs[caller];
    same_param in = {SAME_VARIES, 0, 0}; /* a carry, a slice, or computed from inputs */
    if (!varies && v < f->n_params) {
        in = w->param[w->base[caller] + v];
        if (in.state == SAME_UNSET) return; /* its callers decide; then this edge is seen again */
    } else if (!varies && w->made[v]) {
        in = (same_param){SAME_ONE, caller, v};
    }
    same_param *d = &w->param[w->base[callee] + param];
    same_param was = *d;
    if (d->state == SAME_UNSET) *d = in;
    else if (d->state == SAME_ONE && (in.state != SAME_ONE || in.src_f != d->src_f || in.src_v != d->src_v))
        d->state = SAME_VARIES;
    if (d->state != was.state) same_push(w, callee);
}

/* Plans the hoisting of function fi with what is known of its parameters (UNSET ones
 * as if the same: a later change plans it again) and passes on what its calls pass. */
static amber_status same_plan(same_walk *w, uint32_t fi, bool unset_same) {
    am_func *f = &w->L->p->funcs[fi];
    for (uint32_t i = 0; i < f->n_params; i++) {
        uint8_t state = w->param[w->base[fi] + i].state;
        w->same[i] = state == SAME_ONE || (unset_same && state == SAME_UNSET);
    }
    amber_status st = plan_hoisting(w->L, f, w->same);
    if (st != AMBER_OK) return st;
    memset(w->made, 0, f->n_values + 1u);
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        const am_node *n = &f->nodes[ni];
        if (n->kind == AM_NODE_CONSTANT || n->kind == AM_NODE_WEIGHT ||
            n->hoist == AM_HOIST_CACHED)
            w->made[n->out[0]] = 1;
    }
    arguments_of(w->L->p, fi, same_edge, w);
    return AMBER_OK;
}

/* Hoisting of every function (see same_param): each function is planned, and planned
 * again whenever what its callers pass changes (at most twice per parameter). */
static amber_status plan_same_params(planner *L) {
    am_program *p = L->p;
    same_walk w = {.L = L};
    uint32_t n_params = 0, max_params = 0, max_values = 0;
    amber_status st = AMBER_OK;
    w.base = (uint32_t *)calloc(p->n_funcs + 1u, sizeof *w.base);
    for (uint32_t fi = 0; w.base && fi < p->n_funcs; fi++) {
        const am_func *f = &p->funcs[fi];
        w.base[fi] = n_params;
        n_params += f->n_params; /* fits: each parameter is a loaded value */
        if (f->n_params > max_params) max_params = f->n_params;
        if (f->n_values > max_values) max_values = f->n_values;
    }
    w.param = (same_param *)calloc(n_params + 1u, sizeof *w.param);
    w.queue = (uint32_t *)malloc(sizeof *w.queue * (p->n_funcs + 1u));
    w.queued = (uint8_t *)calloc(p->n_funcs + 1u, 1);
    w.same = (uint8_t *)malloc(max_params + 1u);
    w.made = (uint8_t *)malloc(max_values + 1u);
    if (!w.base || !w.param || !w.queue || !w.queued || !w.same || !w.made)
        st = am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    for (uint32_t e = 0; st == AMBER_OK && e < p->n_entries; e++) { /* the caller's inputs */
        uint32_t fi = p->entries[e].func;
        for (uint32_t k = 0; k < p->funcs[fi].n_params; k++)
            w.param[w.base[fi] + k].state = SAME_VARIES;
    }
    for (uint32_t fi = 0; st == AMBER_OK && fi < p->n_funcs; fi++) same_push(&w, fi);
    while (st == AMBER_OK && w.count) {
        uint32_t fi = w.queue[w.head];
        w.head = (w.head + 1) % p->n_funcs;
        w.count--;
        w.queued[fi] = 0;
        st = same_plan(&w, fi, true);
    }
    /* Parameters no call reaches stay UNSET: their functions never run, but are planned
     * as if those parameters varied, so nothing rests on the optimistic guess. */
    for (uint32_t fi = 0; st == AMBER_OK && fi < p->n_funcs; fi++) {
        bool unset = false;
        for (uint32_t k = 0; k < p->funcs[fi].n_params; k++)
            unset = unset || w.param[w.base[fi] + k].state == SAME_UNSET;
        if (unset) st = same_plan(&w, fi, false);
    }
    free(w.base), free(w.param), free(w.queue), free(w.queued), free(w.same), free(w.made);
    return st;
}

/* Global parameter numbering, the edges from a caller's parameter to the callee
 * parameters it is passed to (CSR), and the work list of cleared parameters. */
typedef struct fixed_walk {
    const am_program *p;
    uint32_t *base;             /* per function: its first global parameter */
    uint8_t **made;             /* per function and value: a weight, constant or cached value */
    uint8_t *fixed;             /* per global parameter */
    uint32_t *start, *fill, *to; /* CSR: edges of parameter g are to[start[g]..start[g+1]) */
    uint32_t *queue, n_queue;
    bool counting;
} fixed_walk;

static void clear_param(fixed_walk *w, uint32_t g) {
    if (!w->fixed[g]) return;
    w->fixed[g] = 0;
    w->queue[w->n_queue++] = g;
}

static void fixed_edge(void *ud, uint32_t caller, uint32_t v, uint32_t callee, uint32_t param,
                       bool varies) {
    fixed_walk *w = (fixed_walk *)ud;
    const am_func *f = &w->p->funcs[caller];
    uint32_t dst = w->base[callee] + param;
    bool from_param = v < f->n_params && !varies;
    if (w->counting) {
        if (from_param) w->start[w->base[caller] + v + 1]++;
        return;
    }
    if (from_param) w->to[w->fill[w->base[caller] + v]++] = dst;
    else if (varies || !w->made[caller][v]) clear_param(w, dst);
}

/* Parameters that are fixed at every call (am_func.param_fixed): each call passes a
 * value fixed in the caller (a weight, a constant, a cached value or such a parameter),
 * and a loop passes it unchanged to every iteration (an invariant input of while or
 * scan). Entry functions take the caller's inputs: never fixed. Everything starts fixed
 * and the clearing spreads along the edges, once per parameter, so a recursive call
 * passing its own fixed parameter keeps it fixed. Then the nodes reading fixed
 * parameters get their am_node.fixed_in bits. */
static amber_status mark_fixed_params(planner *L) {
    am_program *p = L->p;
    fixed_walk w = {.p = p, .counting = true};
    uint32_t n_params = 0;
    amber_status st = AMBER_OK;
    w.base = (uint32_t *)calloc(p->n_funcs + 1u, sizeof *w.base);
    w.made = (uint8_t **)calloc(p->n_funcs + 1u, sizeof *w.made);
    for (uint32_t fi = 0; w.base && fi < p->n_funcs; fi++) {
        w.base[fi] = n_params;
        n_params += p->funcs[fi].n_params; /* fits: each parameter is a loaded value */
    }
    w.fixed = (uint8_t *)malloc(n_params + 1u);
    w.start = (uint32_t *)calloc(n_params + 2u, sizeof *w.start);
    w.fill = (uint32_t *)malloc(sizeof *w.fill * (n_params + 1u));
    w.queue = (uint32_t *)malloc(sizeof *w.queue * (n_params + 1u));
    if (!w.base || !w.made || !w.fixed || !w.start || !w.fill || !w.queue)
        st = am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    for (uint32_t fi = 0; st == AMBER_OK && fi < p->n_funcs; fi++) {
        const am_func *f = &p->funcs[fi];
        if (!(w.made[fi] = (uint8_t *)calloc(f->n_values + 1u, 1))) {
            st = am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
            break;
        }
        for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
            const am_node *n = &f->nodes[ni];
            if (n->kind == AM_NODE_CONSTANT || n->kind == AM_NODE_WEIGHT ||
                n->hoist == AM_HOIST_CACHED)
                w.made[fi][n->out[0]] = 1;
        }
    }
    if (st == AMBER_OK) {
        memset(w.fixed, 1, n_params + 1u);
        each_argument(p, fixed_edge, &w); /* count the edges per source parameter */
        for (uint32_t g = 0; g < n_params; g++) w.start[g + 1] += w.start[g];
        memcpy(w.fill, w.start, sizeof *w.fill * (n_params + 1u));
        if (!(w.to = (uint32_t *)malloc(sizeof *w.to * (w.start[n_params] + 1u))))
            st = am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    }
    if (st == AMBER_OK) {
        w.counting = false;
        for (uint32_t e = 0; e < p->n_entries; e++) {
            uint32_t fi = p->entries[e].func;
            for (uint32_t k = 0; k < p->funcs[fi].n_params; k++) clear_param(&w, w.base[fi] + k);
        }
        each_argument(p, fixed_edge, &w); /* record edges, clear what is not fixed */
        for (uint32_t q = 0; q < w.n_queue; q++) /* spread: each parameter is queued once */
            for (uint32_t i = w.start[w.queue[q]]; i < w.start[w.queue[q] + 1]; i++)
                clear_param(&w, w.to[i]);
    }
    for (uint32_t fi = 0; st == AMBER_OK && fi < p->n_funcs; fi++) {
        am_func *f = &p->funcs[fi];
        if ((st = alloc(L, f->n_params, 1, &f->param_fixed)) != AMBER_OK) break;
        memcpy(f->param_fixed, w.fixed + w.base[fi], f->n_params);
        for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
            am_node *n = &f->nodes[ni];
            if (n->hoist != AM_HOIST_NONE) continue;
            for (int k = 0; k < n->n_in && k < 8; k++)
                if (n->in[k] < f->n_params && f->param_fixed[n->in[k]])
                    n->fixed_in |= (uint8_t)(1u << k);
        }
    }
    for (uint32_t fi = 0; w.made && fi < p->n_funcs; fi++) free(w.made[fi]);
    free(w.made), free(w.base), free(w.fixed), free(w.start), free(w.fill), free(w.queue);
    free(w.to);
    return st;
}

amber_status am_plan_program(am_program *p, const am_json_doc *doc, bool fuse, am_error *err) {
    planner Lv = {p, err}, *L = &Lv;
    amber_status st = plan_same_params(L);
    if (st != AMBER_OK) return st;
    for (uint32_t fi = 0; fi < p->n_funcs; fi++) {
        if (fuse && (st = am_plan_attention(&p->funcs[fi], doc, &p->mem, L->err)) != AMBER_OK)
            return st;
        if (fuse && (st = am_plan_cells(&p->funcs[fi], doc, &p->mem, L->err)) != AMBER_OK)
            return st;
        if (fuse && (st = plan_fusion(L, &p->funcs[fi])) != AMBER_OK) return st;
        if (fuse && (st = am_plan_epilogues(&p->funcs[fi], &p->mem, L->err)) != AMBER_OK)
            return st;
        if ((st = plan_lifetimes(L, &p->funcs[fi])) != AMBER_OK) return st;
    }
    return mark_fixed_params(L);
}
