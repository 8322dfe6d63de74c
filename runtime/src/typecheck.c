/* Load-time type checks of a program prog.c has loaded (docs/format.md H.9): every
 * node's declared output types are what its type rule gives, calls and control flow
 * pass their callees arguments of the parameters' types and get the declared results,
 * and the signatures' output structures and test vectors fit their entry points.
 *
 * Symbolic sizes are checked by probing: each function's parameter symbols are bound
 * to sizes of two probes (distinct primes per symbol, different in each probe) and
 * every type is evaluated with them. A declared type that differs from the rule's for
 * some sizes is wrong; the reference reader (which decides the rules symbolically)
 * refuses it too. A probe whose sizes overflow a tensor's element count is skipped. A
 * node whose rule fails at a probe's sizes is retried at others (check_node_somewhere). */
#include "prog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_PROBES 2

typedef struct tc {
    const am_program *p;
    const am_json_doc *d;
    am_error *err;
    int probe;
    bool mismatched;         /* the last failure was a declared type against a rule's */
    int64_t *vals, *cvals;   /* symbol values of the function checked and of a callee */
    int64_t *saved;          /* the probe's symbol values while a node is retried */
    amber_tensor *ins, *res; /* a node's inputs; a callee's results */
    char where[200];         /* what is being checked, for messages */
} tc;

static int64_t probe_size(int probe, int sym) {
    static const int64_t primes[16] = {3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59};
    unsigned i = (unsigned)sym;
    return primes[probe ? (5u * i + 10u) % 16u : (i + 3u) % 16u];
}

static const char *type_str(const amber_tensor *t, char *buf, size_t n) {
    char s[160];
    snprintf(buf, n, "%s%s", amber_dtype_name(t->dtype), am_shape_str(t->shape, t->rank, s, sizeof s));
    return buf;
}

/* The sizes of the probe, "batch=11, seq=13", for messages. */
static const char *sizes_str(const am_symbols *sy, int n, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && o + 40 < cap; i++) {
        if (sy->values[i] < 0) continue; /* a trip count not bound yet */
        int w = snprintf(buf + o, cap - o, "%s%.*s=%lld", o ? ", " : "",
                         (int)(sy->lens[i] > 24 ? 24 : sy->lens[i]), sy->names[i],
                         (long long)sy->values[i]);
        if (w < 0) break;
        o += (size_t)w;
    }
    return buf;
}

static amber_status tfail(tc *T, const am_symbols *sy, const char *what) {
    char sizes[160];
    if (sy && sy->n)
        return am_fail(T->err, AMBER_ERR_FORMAT, "%.200s: %.250s (with the sizes %.150s)", T->where, what,
                       sizes_str(sy, sy->n, sizes, sizeof sizes));
    return am_fail(T->err, AMBER_ERR_FORMAT, "%.200s: %.300s", T->where, what);
}

/* A dim expression overflowed int64 at the probe's sizes: the probe says nothing. */
static amber_status probe_status(amber_status st, const am_error *e) {
    return st != AMBER_OK && strstr(e->msg, "\": overflow at character") ? AMBER_ERR_LIMIT : st;
}

/* A type evaluated with the probe's sizes (no data). */
static amber_status eval(tc *T, const am_type *t, const am_symbols *sy, amber_tensor *out) {
    am_error e;
    memset(out, 0, sizeof *out);
    out->dtype = t->dtype;
    out->rank = t->rank;
    amber_status st = probe_status(am_type_eval(t, sy, out->shape, &e), &e);
    if (st == AMBER_OK) st = am_tensor_check(out, NULL, NULL, &e);
    if (st == AMBER_OK || st == AMBER_ERR_LIMIT) return st;
    char msg[AM_ERR_MSG];
    snprintf(msg, sizeof msg, "a declared type: %.400s", e.msg);
    return tfail(T, sy, msg);
}

static bool same(const amber_tensor *a, const amber_tensor *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

static amber_status mismatch(tc *T, const am_symbols *sy, const char *what, int k,
                             const amber_tensor *declared, const amber_tensor *rule,
                             const char *by) {
    char a[200], b[200], msg[AM_ERR_MSG];
    T->mismatched = true;
    snprintf(msg, sizeof msg, "%s %d is declared %.120s but %.40s gives %.120s", what, k,
             type_str(declared, a, sizeof a), by, type_str(rule, b, sizeof b));
    return tfail(T, sy, msg);
}

/* Declared type of output k of node n against `rule`. */
static amber_status check_output(tc *T, const am_node *n, int k, const am_symbols *sy,
                                 const amber_tensor *rule, const char *by) {
    amber_tensor t;
    amber_status st = eval(T, &n->out_types[k], sy, &t);
    if (st != AMBER_OK) return st == AMBER_ERR_LIMIT ? AMBER_OK : st;
    return same(&t, rule) ? AMBER_OK : mismatch(T, sy, "output", k, &t, rule, by);
}

/* Binds the symbols of c's parameters to the sizes of args[0..n) (as a run does) and
 * checks every argument against its parameter's type. */
static amber_status bind_callee(tc *T, const am_func *c, const amber_tensor *args, uint32_t n,
                                const am_symbols *cs) {
    char msg[AM_ERR_MSG], a[200], b[200];
    for (uint32_t i = 0; i < n && i < c->n_params; i++) {
        const am_type *pt = &c->param_types[i];
        bool ok = pt->dtype == args[i].dtype && pt->rank == args[i].rank;
        for (int d = 0; ok && d < pt->rank; d++) {
            int sym = c->param_symbol[i * AMBER_MAX_RANK + (uint32_t)d];
            if (sym < 0) continue;
            if (cs->values[sym] < 0) cs->values[sym] = args[i].shape[d];
            ok = cs->values[sym] == args[i].shape[d];
        }
        amber_tensor want;
        amber_status st = ok ? eval(T, pt, cs, &want) : AMBER_OK;
        if (st != AMBER_OK) return st;
        if (!ok || !same(&want, &args[i])) {
            snprintf(msg, sizeof msg, "argument %u of %.100s is %.120s, its parameter %s%.120s", i,
                     c->name, type_str(&args[i], a, sizeof a), ok ? "is " : "",
                     ok ? type_str(&want, b, sizeof b) : "has another dtype, rank or size");
            return tfail(T, NULL, msg);
        }
    }
    return AMBER_OK;
}

/* The results of calling function ci with arguments of the types args[0..n): its
 * symbols bound by unifying its parameters with them (as a run binds them). */
static amber_status call_types(tc *T, uint32_t ci, const amber_tensor *args, uint32_t n,
                               amber_tensor *res) {
    const am_func *c = &T->p->funcs[ci];
    am_symbols cs = c->syms;
    cs.values = T->cvals;
    cs.check = false;
    /* NOTE: T->cvals is all -1 between calls; only the symbols this call binds are
     * reset after it, so a call costs what its arguments cost (not the callee's symbols) */
    amber_status st = bind_callee(T, c, args, n, &cs);
    for (uint32_t r = 0; st == AMBER_OK && r < c->n_results; r++)
        st = eval(T, c->value_types[c->results[r]], &cs, &res[r]);
    for (uint32_t i = 0; i < n && i < c->n_params; i++)
        for (int d = 0; d < c->param_types[i].rank; d++) {
            int sym = c->param_symbol[i * AMBER_MAX_RANK + (uint32_t)d];
            if (sym >= 0) cs.values[sym] = -1;
        }
    return st;
}


static amber_status check_call(tc *T, const am_node *n, const am_symbols *sy, uint32_t callee,
                               const amber_tensor *args, uint32_t n_args, const char *by) {
    amber_status st = call_types(T, callee, args, n_args, T->res);
    for (int k = 0; st == AMBER_OK && k < n->n_out; k++)
        st = check_output(T, n, k, sy, &T->res[k], by);
    return st;
}

/* while: the cond function gives bool[], the body gives the carries back (and the
 * per-iteration values, stacked under the trip count). */
static amber_status check_while(tc *T, const am_node *n, am_symbols *sy) {
    const amber_tensor *ins = T->ins;
    amber_status st = call_types(T, n->callee, ins, (uint32_t)n->n_in, T->res);
    if (st != AMBER_OK) return st;
    if (T->res[0].dtype != AMBER_BOOL || T->res[0].rank != 0)
        return tfail(T, NULL, "the cond function must return a bool[] predicate");
    if ((st = call_types(T, n->callee2, ins, (uint32_t)n->n_in, T->res)) != AMBER_OK) return st;
    for (int j = 0; j < n->n_carries; j++)
        if (!same(&T->res[j], &ins[j]))
            return mismatch(T, sy, "carry", j, &ins[j], &T->res[j], "the body function");
    if (n->trip_symbol >= 0) sy->values[n->trip_symbol] = probe_size(T->probe, n->trip_symbol);
    for (int k = 0; k < n->n_out; k++) {
        amber_tensor want = k < n->n_carries ? ins[k] : T->res[k];
        if (k >= n->n_carries) { /* stacked: the trip count, then the value's dims */
            if (want.rank >= AMBER_MAX_RANK) return tfail(T, NULL, "a stacked value's rank is too large");
            memmove(want.shape + 1, want.shape, sizeof(int64_t) * (size_t)want.rank);
            want.shape[0] = sy->values[n->trip_symbol];
            want.rank++;
        }
        if ((st = check_output(T, n, k, sy, &want, "the loop's type rule")) != AMBER_OK) return st;
    }
    return AMBER_OK;
}

/* scan: scanned inputs have the leading dim `length`; the body gets their slices and
 * gives the carries back, and its other results are stacked under `length`. */
static amber_status check_scan(tc *T, const am_node *n, const am_symbols *sy) {
    int64_t length = n->length->type == AM_JSON_NUMBER ? n->length->i : -1;
    am_error e;
    amber_status st = AMBER_OK;
    if (n->length->type == AM_JSON_STRING)
        st = probe_status(am_dim_eval(n->length->str, n->length->len, sy, &length, &e), &e);
    if (st != AMBER_OK) return st == AMBER_ERR_LIMIT ? st : tfail(T, sy, e.msg);
    if (length < 0) return tfail(T, sy, "length is negative");
    amber_tensor *args = T->ins;
    for (int k = n->n_carries; k < n->n_carries + n->n_xs; k++) {
        if (args[k].rank < 1 || args[k].shape[0] != length)
            return tfail(T, sy, "a scanned input's leading dim is not the length");
        memmove(args[k].shape, args[k].shape + 1, sizeof(int64_t) * (size_t)(args[k].rank - 1));
        args[k].rank--;
    }
    st = call_types(T, n->callee, args, (uint32_t)n->n_in, T->res);
    for (int j = 0; st == AMBER_OK && j < n->n_carries; j++)
        if (!same(&T->res[j], &args[j]))
            return mismatch(T, sy, "carry", j, &args[j], &T->res[j], "the body function");
    for (int k = 0; st == AMBER_OK && k < n->n_out; k++) {
        amber_tensor want = T->res[k];
        if (k >= n->n_carries) {
            if (want.rank >= AMBER_MAX_RANK) return tfail(T, NULL, "a stacked value's rank is too large");
            memmove(want.shape + 1, want.shape, sizeof(int64_t) * (size_t)want.rank);
            want.shape[0] = length;
            want.rank++;
        }
        st = check_output(T, n, k, sy, &want, "the scan's type rule");
    }
    return st;
}

static amber_status check_op(tc *T, const am_node *n, const am_symbols *sy) {
    am_attrs buf;
    const am_attrs *attrs;
    am_error e;
    amber_tensor out;
    amber_status st = probe_status(am_node_attrs(n, T->d, sy, &buf, &attrs, &e), &e);
    if (st == AMBER_OK) st = am_op_infer(n->op, T->ins, n->n_in, attrs, &out, &e);
    if (st == AMBER_ERR_LIMIT) return AMBER_OK;
    if (st != AMBER_OK) return tfail(T, sy, e.msg);
    return check_output(T, n, 0, sy, &out, "the op's type rule");
}

static amber_status check_kind(tc *T, const am_node *n, am_symbols *sy) {
    amber_status st;
    switch (n->kind) {
    case AM_NODE_OP: return check_op(T, n, sy);
    case AM_NODE_CONSTANT:
    case AM_NODE_WEIGHT: return check_output(T, n, 0, sy, &n->tensor, "its tensor");
    case AM_NODE_CALL: return check_call(T, n, sy, n->callee, T->ins, (uint32_t)n->n_in, "the callee");
    case AM_NODE_COND:
        if (T->ins[0].dtype != AMBER_BOOL || T->ins[0].rank != 0)
            return tfail(T, NULL, "the first input of cond must be a bool[] predicate");
        st = check_call(T, n, sy, n->callee, T->ins + 1, (uint32_t)n->n_in - 1, "the then function");
        return st != AMBER_OK ? st : check_call(T, n, sy, n->callee2, T->ins + 1,
                                                 (uint32_t)n->n_in - 1, "the else function");
    case AM_NODE_WHILE: return check_while(T, n, sy);
    case AM_NODE_SCAN: return check_scan(T, n, sy);
    }
    return AMBER_OK;
}

static amber_status check_node(tc *T, const am_func *f, const am_node *n, am_symbols *sy) {
    amber_status st = AMBER_OK;
    for (int k = 0; k < n->n_in && st == AMBER_OK; k++)
        st = eval(T, f->value_types[n->in[k]], sy, &T->ins[k]);
    return st == AMBER_OK ? check_kind(T, n, sy) : st;
}

/* Large primes: a node's retry sizes. */
static int64_t large_size(int sym) {
    static const int64_t primes[16] = {1009, 1013, 1019, 1021, 1031, 1033, 1039, 1049,
                                       1051, 1061, 1063, 1069, 1087, 1091, 1093, 1097};
    return primes[(unsigned)sym % 16u];
}

/* A node whose type rule or declared type fails at the probe's sizes, retried once at
 * large ones (primes, as the reference reader's rules hold for every size or not at
 * all): it may need a minimum size (a 5x5 convolution needs 5 rows, which the runtime
 * checks when it runs); a node that fails at both is refused, and so is a declared
 * type that differs from its rule's where both hold. */
static amber_status check_node_somewhere(tc *T, const am_func *f, const am_node *n,
                                         am_symbols *sy) {
    T->mismatched = false;
    amber_status st = check_node(T, f, n, sy);
    if (st == AMBER_ERR_LIMIT) return AMBER_OK; /* sizes too large for this probe */
    if (st != AMBER_ERR_FORMAT || T->mismatched) return st;
    am_error first = *T->err;
    memcpy(T->saved, sy->values, sizeof(int64_t) * (size_t)sy->n);
    for (int i = 0; i < f->n_param_syms; i++) sy->values[i] = large_size(i);
    T->mismatched = false;
    amber_status again = check_node(T, f, n, sy);
    memcpy(sy->values, T->saved, sizeof(int64_t) * (size_t)sy->n);
    if (again == AMBER_OK || T->mismatched) return again;
    *T->err = first;
    return st;
}

static amber_status check_function(tc *T, uint32_t fi) {
    const am_func *f = &T->p->funcs[fi];
    am_symbols sy = f->syms;
    sy.values = T->vals;
    sy.check = false;
    for (int i = 0; i < sy.n; i++) sy.values[i] = i < f->n_param_syms ? probe_size(T->probe, i) : -1;
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        snprintf(T->where, sizeof T->where, "program.functions[%u].nodes[%u]", fi, ni);
        amber_status st = check_node_somewhere(T, f, &f->nodes[ni], &sy);
        if (st != AMBER_OK) return st;
    }
    return AMBER_OK;
}

/* ------------------------------------------------------------ signatures and vectors */

static amber_status structure(tc *T, const am_json *s, const am_entry *e, int depth) {
    if (depth > 16) return tfail(T, NULL, "the output structure nests too deeply");
    if (s->type == AM_JSON_STRING) {
        for (uint32_t k = 0; k < e->n_outputs; k++)
            if (!strcmp(e->outputs[k].name, s->str) && strlen(s->str) == s->len) return AMBER_OK;
        return tfail(T, NULL, "the output structure names an unknown output");
    }
    const am_json *body = s->type == AM_JSON_OBJECT && s->count == 1 ? am_json_first(T->d, s) : NULL;
    bool seq = body && (!strcmp(body->key, "tuple") || !strcmp(body->key, "list"));
    if (!body || !(seq || !strcmp(body->key, "dict")) || strlen(body->key) != body->key_len)
        return tfail(T, NULL, "the output structure must be an output name or one of "
                              "{\"tuple\": [...]}, {\"list\": [...]}, {\"dict\": {...}}");
    if (body->type != (seq ? AM_JSON_ARRAY : AM_JSON_OBJECT))
        return tfail(T, NULL, "the output structure's tuple or list must be an array, its dict an object");
    for (const am_json *c = am_json_first(T->d, body); c; c = am_json_next(T->d, c)) {
        amber_status st = structure(T, c, e, depth + 1);
        if (st != AMBER_OK) return st;
    }
    return AMBER_OK;
}

/* input_ranges: {name: [low, high]} of numbers. */
static amber_status input_ranges(tc *T, const am_json *r) {
    if (r->type != AM_JSON_OBJECT) return tfail(T, NULL, "input_ranges must be an object");
    for (const am_json *c = am_json_first(T->d, r); c; c = am_json_next(T->d, c)) {
        const am_json *lo = c->type == AM_JSON_ARRAY && c->count == 2 ? am_json_first(T->d, c) : NULL;
        const am_json *hi = lo ? am_json_next(T->d, lo) : NULL;
        if (!hi || lo->type != AM_JSON_NUMBER || hi->type != AM_JSON_NUMBER)
            return tfail(T, NULL, "input_ranges must map names to [low, high] numbers");
    }
    return AMBER_OK;
}

static amber_status check_signatures(tc *T) {
    const am_json *sigs = am_json_get(T->d, am_json_root(T->d), "signatures");
    for (uint32_t ei = 0; ei < T->p->n_entries; ei++) {
        const am_entry *e = &T->p->entries[ei];
        const am_json *s = am_json_get(T->d, sigs, e->name);
        snprintf(T->where, sizeof T->where, "signatures.%.100s", e->name);
        const am_json *r = s ? am_json_get(T->d, s, "input_ranges") : NULL;
        amber_status st = s ? structure(T, am_json_get(T->d, s, "output_structure"), e, 0) : AMBER_OK;
        if (st == AMBER_OK && r) st = input_ranges(T, r);
        if (st != AMBER_OK) return st;
    }
    return AMBER_OK;
}

/* A test vector's tensors have the dtypes and ranks of the entry's ports, and their
 * integer dims; dims binds symbol names to integers; each tolerance is {rtol, atol}. */
static amber_status check_vector(tc *T, const am_vector *v, const am_json *vj) {
    const am_entry *e = &T->p->entries[v->entry];
    for (int out = 0; out < 2; out++)
        for (uint32_t k = 0; k < (out ? e->n_outputs : e->n_inputs); k++) {
            const am_port_def *port = out ? &e->outputs[k] : &e->inputs[k];
            const amber_tensor *t = out ? &v->outputs[k] : &v->inputs[k];
            bool ok = t->dtype == port->type.dtype && t->rank == port->type.rank;
            for (int d = 0; ok && d < t->rank; d++)
                ok = port->type.dims[d]->type != AM_JSON_NUMBER || port->type.dims[d]->i == t->shape[d];
            if (!ok) {
                char a[200], msg[AM_ERR_MSG];
                snprintf(msg, sizeof msg, "%s \"%.100s\" is %.120s, the entry point declares another type",
                         out ? "output" : "input", port->name, type_str(t, a, sizeof a));
                return tfail(T, NULL, msg);
            }
        }
    for (const am_json *c = am_json_first(T->d, am_json_get(T->d, vj, "dims")); c; c = am_json_next(T->d, c))
        if (!am_dim_is_name(c->key, c->key_len) || c->type != AM_JSON_NUMBER || !c->is_int)
            return tfail(T, NULL, "dims must map symbol names to integers");
    for (const am_json *c = am_json_first(T->d, am_json_get(T->d, vj, "tolerance")); c; c = am_json_next(T->d, c)) {
        const am_json *rt = am_json_get(T->d, c, "rtol"), *at = am_json_get(T->d, c, "atol");
        if (c->type != AM_JSON_OBJECT || c->count != 2 || !rt || !at || rt->type != AM_JSON_NUMBER ||
            at->type != AM_JSON_NUMBER)
            return tfail(T, NULL, "each tolerance must be {\"rtol\": number, \"atol\": number}");
    }
    return AMBER_OK;
}

static amber_status check_vectors(tc *T) {
    const am_json *vec = am_json_get(T->d, am_json_root(T->d), "test_vectors");
    uint32_t i = 0;
    for (const am_json *v = vec ? am_json_first(T->d, vec) : NULL; v && i < T->p->n_vectors;
         v = am_json_next(T->d, v), i++) {
        snprintf(T->where, sizeof T->where, "test_vectors[%u]", i);
        amber_status st = check_vector(T, &T->p->vectors[i], v);
        if (st != AMBER_OK) return st;
    }
    return AMBER_OK;
}

amber_status am_program_typecheck(const am_program *p, const am_json_doc *d, am_error *err) {
    tc T = {.p = p, .d = d, .err = err};
    uint32_t max_syms = 1, max_in = 1;
    for (uint32_t fi = 0; fi < p->n_funcs; fi++) {
        const am_func *f = &p->funcs[fi];
        if ((uint32_t)f->syms.n > max_syms) max_syms = (uint32_t)f->syms.n;
        if (f->n_results > max_in) max_in = f->n_results;
        for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
            if ((uint32_t)f->nodes[ni].n_in > max_in) max_in = (uint32_t)f->nodes[ni].n_in;
            if ((uint32_t)f->nodes[ni].n_out > max_in) max_in = (uint32_t)f->nodes[ni].n_out;
        }
    }
    T.vals = (int64_t *)malloc(sizeof(int64_t) * max_syms);
    T.cvals = (int64_t *)malloc(sizeof(int64_t) * max_syms);
    T.saved = (int64_t *)malloc(sizeof(int64_t) * max_syms);
    for (uint32_t i = 0; T.cvals && i < max_syms; i++) T.cvals[i] = -1;
    T.ins = (amber_tensor *)calloc(max_in, sizeof(amber_tensor));
    T.res = (amber_tensor *)calloc(max_in, sizeof(amber_tensor));
    amber_status st = AMBER_OK;
    if (!T.vals || !T.cvals || !T.saved || !T.ins || !T.res)
        st = am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory checking the program's types");
    for (T.probe = 0; st == AMBER_OK && T.probe < N_PROBES; T.probe++)
        for (uint32_t fi = 0; st == AMBER_OK && fi < p->n_funcs; fi++) st = check_function(&T, fi);
    if (st == AMBER_OK) st = check_signatures(&T);
    if (st == AMBER_OK) st = check_vectors(&T);
    free(T.vals), free(T.cvals), free(T.saved), free(T.ins), free(T.res);
    return st;
}
