/* Loads the program, signatures and test vectors of an .amber header (docs/format.md,
 * H.1-H.9) into am_program, checking structure, names, references and SSA order.
 * Shape rules of each node are applied when the node runs (with symbols bound); what a
 * run computes once, fuses or places in a memory plan is decided after loading (plan.c). */
#include "prog.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct loader {
    am_program *p;
    const am_json_doc *d;
    const void *model;
    am_tensor_lookup lookup;
    am_error *err;
    bool fuse; /* fuse chains of elementwise ops */
    am_name_ref *weight_index; /* weights sorted by name: index into weight_nodes */
    const am_json **weight_nodes;
    uint32_t n_weights;
    char path[160]; /* JSON path of what is being loaded, for messages */
} loader;

#define LFAIL(L, ...) lfail(L, __VA_ARGS__)

static amber_status lfail(loader *L, const char *fmt, ...) AM_PRINTF(2, 3);
static amber_status lfail(loader *L, const char *fmt, ...) {
    char msg[AM_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return am_fail(L->err, AMBER_ERR_FORMAT, "%s: %s", L->path, msg);
}

/* A nested failure at L->path: a limit stays AMBER_ERR_LIMIT, anything else is FORMAT. */
static amber_status lnested(loader *L, amber_status st, const char *what, const am_error *e) {
    return am_fail(L->err, st == AMBER_ERR_LIMIT ? st : AMBER_ERR_FORMAT, "%s: %s%s", L->path,
                   what, e->msg);
}

static amber_status alloc(loader *L, size_t n, size_t size, void *out) {
    return am_arena_calloc(&L->p->mem, n ? n : 1, size, (void **)out, L->err);
}

/* Checks that obj is an object with exactly the required members plus optional ones. */
static amber_status members(loader *L, const am_json *obj, const char *const *req, size_t nreq,
                            const char *const *opt, size_t nopt) {
    if (!obj || obj->type != AM_JSON_OBJECT) return LFAIL(L, "must be an object");
    for (const am_json *c = am_json_first(L->d, obj); c; c = am_json_next(L->d, c)) {
        bool known = false;
        for (size_t i = 0; i < nreq && !known; i++) known = !strcmp(c->key, req[i]);
        for (size_t i = 0; i < nopt && !known; i++) known = !strcmp(c->key, opt[i]);
        if (!known || strlen(c->key) != c->key_len)
            return LFAIL(L, "unknown member \"%.60s\"", c->key);
    }
    for (size_t i = 0; i < nreq; i++)
        if (!am_json_get(L->d, obj, req[i])) return LFAIL(L, "missing member \"%s\"", req[i]);
    return AMBER_OK;
}

static const am_json *get_typed(loader *L, const am_json *obj, const char *key, am_json_type t,
                                amber_status *st) {
    const am_json *v = am_json_get(L->d, obj, key);
    if (!v || v->type != t) {
        static const char *const names[] = {"null", "false", "true", "a number", "a string",
                                            "an array", "an object"};
        *st = LFAIL(L, "member \"%s\" must be %s", key, names[t]);
        return NULL;
    }
    return v;
}

static int dtype_of(const am_json *v) {
    if (!v || v->type != AM_JSON_STRING) return -1;
    for (int t = 0; t <= AMBER_INT16; t++)
        if (!strcmp(v->str, amber_dtype_name((amber_dtype)t))) return t;
    return -1;
}

/* {"dtype": D, "shape": [dims]} (+ extra members checked by the caller). Dims are
 * checked against syms (NULL: integers only). */
static amber_status parse_type(loader *L, const am_json *obj, const am_symbols *syms,
                               am_type *t) {
    int dt = dtype_of(am_json_get(L->d, obj, "dtype"));
    if (dt < 0) return LFAIL(L, "unknown or missing dtype");
    if (dt > AMBER_BOOL && L->p->opset_version < 5) /* the storage dtypes of opset 5 */
        return LFAIL(L, "dtype %s needs opset version 5, the file declares %lld",
                     amber_dtype_name((amber_dtype)dt), (long long)L->p->opset_version);
    const am_json *shape = am_json_get(L->d, obj, "shape");
    if (!shape || shape->type != AM_JSON_ARRAY) return LFAIL(L, "shape must be an array");
    if (shape->count > AMBER_MAX_RANK) return LFAIL(L, "rank %u exceeds %d", shape->count, AMBER_MAX_RANK);
    t->dtype = (amber_dtype)dt;
    t->rank = (int)shape->count;
    int i = 0;
    for (const am_json *dim = am_json_first(L->d, shape); dim; dim = am_json_next(L->d, dim), i++) {
        t->dims[i] = dim;
        if (dim->type == AM_JSON_NUMBER && dim->is_int) {
            if (dim->i < 0) return LFAIL(L, "dimension %d is negative", i);
        } else if (dim->type == AM_JSON_STRING && syms) {
            int64_t v;
            am_error e;
            amber_status st = am_dim_eval(dim->str, dim->len, syms, &v, &e);
            if (st != AMBER_OK) {
                char what[32];
                snprintf(what, sizeof what, "dimension %d: ", i);
                return lnested(L, st, what, &e);
            }
        } else {
            return LFAIL(L, "dimension %d must be %s", i,
                         syms ? "an integer >= 0 or a dim expression" : "an integer >= 0");
        }
    }
    return AMBER_OK;
}

static bool same_type(const am_type *a, const am_type *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (!am_same_dim(a->dims[i], b->dims[i])) return false;
    return true;
}

static amber_status tensor_ref(loader *L, const am_json *name, const am_type *want,
                               amber_tensor *out) {
    if (!name || name->type != AM_JSON_STRING) return LFAIL(L, "tensor name must be a string");
    if (L->lookup(L->model, name->str, out) != AMBER_OK)
        return LFAIL(L, "names tensor \"%.200s\", which the file does not contain", name->str);
    if (want) {
        bool ok = out->dtype == want->dtype && out->rank == want->rank;
        for (int i = 0; ok && i < want->rank; i++) ok = out->shape[i] == want->dims[i]->i;
        if (!ok) return LFAIL(L, "tensor \"%.200s\" has another dtype or shape", name->str);
    }
    return AMBER_OK;
}

/* Inline constant data: exactly numel JSON values of the dtype's kind. */
static amber_status inline_constant(loader *L, const am_json *data, amber_tensor *t) {
    int64_t numel;
    size_t nbytes;
    amber_status st = am_tensor_check(t, &numel, &nbytes, L->err);
    if (st != AMBER_OK) return st;
    if (data->type != AM_JSON_ARRAY || (int64_t)data->count != numel)
        return LFAIL(L, "data must be an array of %lld values", (long long)numel);
    void *buf;
    if ((st = am_arena_alloc(&L->p->mem, nbytes, &buf, L->err)) != AMBER_OK) return st;
    int64_t i = 0;
    for (const am_json *v = am_json_first(L->d, data); v; v = am_json_next(L->d, v), i++) {
        switch (t->dtype) {
        case AMBER_BOOL:
            if (v->type != AM_JSON_TRUE && v->type != AM_JSON_FALSE)
                return LFAIL(L, "data[%lld] must be true or false", (long long)i);
            ((uint8_t *)buf)[i] = v->type == AM_JSON_TRUE;
            break;
        case AMBER_INT32:
            if (v->type != AM_JSON_NUMBER || !v->is_int || v->i < INT32_MIN || v->i > INT32_MAX)
                return LFAIL(L, "data[%lld] must be an int32", (long long)i);
            ((int32_t *)buf)[i] = (int32_t)v->i;
            break;
        case AMBER_INT64:
            if (v->type != AM_JSON_NUMBER || !v->is_int)
                return LFAIL(L, "data[%lld] must be an integer", (long long)i);
            ((int64_t *)buf)[i] = v->i;
            break;
        case AMBER_INT8:
        case AMBER_UINT8:
        case AMBER_INT16: {
            int64_t lo = t->dtype == AMBER_INT8 ? INT8_MIN : t->dtype == AMBER_INT16 ? INT16_MIN : 0;
            int64_t hi = t->dtype == AMBER_INT8 ? INT8_MAX : t->dtype == AMBER_INT16 ? INT16_MAX
                                                                                     : UINT8_MAX;
            if (v->type != AM_JSON_NUMBER || !v->is_int || v->i < lo || v->i > hi)
                return LFAIL(L, "data[%lld] must be an %s", (long long)i, amber_dtype_name(t->dtype));
            if (t->dtype == AMBER_INT16) ((int16_t *)buf)[i] = (int16_t)v->i;
            else ((uint8_t *)buf)[i] = (uint8_t)(v->i & 0xff);
            break;
        }
        case AMBER_FLOAT32:
        case AMBER_FLOAT64:
        case AMBER_FLOAT16:
        case AMBER_BFLOAT16:
            if (v->type != AM_JSON_NUMBER) return LFAIL(L, "data[%lld] must be a number", (long long)i);
            if (t->dtype == AMBER_FLOAT32) ((float *)buf)[i] = (float)v->num;
            else if (t->dtype == AMBER_FLOAT64) ((double *)buf)[i] = v->num;
            else if (t->dtype == AMBER_FLOAT16) ((uint16_t *)buf)[i] = am_f32_to_f16((float)v->num);
            else ((uint16_t *)buf)[i] = am_f32_to_bf16((float)v->num);
            break;
        }
    }
    t->data = buf;
    return AMBER_OK;
}

static int cmp_name_ref(const void *a, const void *b) {
    return strcmp(((const am_name_ref *)a)->name, ((const am_name_ref *)b)->name);
}

/* Binary search of a table sorted by cmp_name_ref: the index `name` maps to, or -1. */
static int64_t find_name(const am_name_ref *tab, uint32_t n, const char *name) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(tab[mid].name, name);
        if (!c) return tab[mid].index;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* Sorts tab[0..n) by name; the first name that repeats (the later index), or NULL. */
static const am_name_ref *sort_names(am_name_ref *tab, uint32_t n) {
    if (n > 1) qsort(tab, n, sizeof *tab, cmp_name_ref);
    const am_name_ref *dup = NULL;
    for (uint32_t i = 1; i < n; i++)
        if (!strcmp(tab[i - 1].name, tab[i].name)) {
            const am_name_ref *later = tab[i - 1].index > tab[i].index ? &tab[i - 1] : &tab[i];
            if (!dup || later->index < dup->index) dup = later;
        }
    return dup;
}

static int64_t find_func(const am_program *p, const char *name) {
    return find_name(p->func_index, p->n_funcs, name);
}

static const am_json *find_weight(loader *L, const am_json *weights, const char *name) {
    (void)weights;
    int64_t i = find_name(L->weight_index, L->n_weights, name);
    return i < 0 ? NULL : L->weight_nodes[i];
}

int64_t am_program_find_entry(const am_program *p, const char *name) {
    return name ? find_name(p->entry_index, p->n_entries, name) : -1;
}

/* docs/format.md H.10: what is wrong with a name of an entry point, a port (one
 * segment) or a weight (segments joined by '/'), or NULL if it is valid. The rules keep
 * names safe to use as file names and to print. */
static const char *name_problem(const char *s, size_t len, bool segments) {
    if (!len) return "is empty";
    if (len > 4096) return "is longer than 4096 bytes";
    size_t seg = 0; /* start of the current segment */
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)s[i] : '/';
        if (c < 0x20 || c == 0x7f || (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] < 0xa0))
            return "holds a control character";
        if (c == '\\') return "holds a backslash";
        if (c != '/') continue;
        if (i < len && !segments) return "holds a '/'";
        size_t n = i - seg;
        if (!n) return segments ? "has an empty '/'-separated part" : "is empty";
        if ((n == 1 && s[seg] == '.') || (n == 2 && s[seg] == '.' && s[seg + 1] == '.'))
            return "is or holds a '.' or '..' part";
        seg = i + 1;
    }
    return NULL;
}

static amber_status check_name_str(loader *L, const char *s, size_t len, const char *what,
                                   bool segments) {
    const char *problem = name_problem(s, len, segments);
    if (!problem) return AMBER_OK;
    /* lfail escapes the message, so the name is shown safely */
    return LFAIL(L, "%s name \"%.*s\" %s (docs/format.md H.10)", what, (int)(len < 60 ? len : 60),
                 s, problem);
}

static amber_status check_name(loader *L, const am_json *name, const char *what, bool segments) {
    return check_name_str(L, name->str, name->len, what, segments);
}

/* attrs[key] names a function: its index. */
static amber_status func_attr(loader *L, const am_json *attrs, const char *key, uint32_t *out) {
    const am_json *v = am_json_get(L->d, attrs, key);
    int64_t fi = v && v->type == AM_JSON_STRING ? find_func(L->p, v->str) : -1;
    if (fi < 0) return LFAIL(L, "attribute %s names an unknown function", key);
    *out = (uint32_t)fi;
    return AMBER_OK;
}

static amber_status count_attr(loader *L, const am_json *attrs, const char *key, int max,
                               int *out) {
    const am_json *v = am_json_get(L->d, attrs, key);
    if (!v || v->type != AM_JSON_NUMBER || !v->is_int || v->i < 0 || v->i > max)
        return LFAIL(L, "attribute %s must be an integer from 0 to %d", key, max);
    *out = (int)v->i;
    return AMBER_OK;
}

/* while (opset 3): num_stacked per-iteration outputs follow the carries, and trip_dim
 * names a fresh symbol, bound to the trip count once the node has run; the node's own
 * outputs and the later nodes of the function may use it (it joins sy). */
static amber_status while_stack(loader *L, am_node *n, const am_json *attrs, am_symbols *sy) {
    const am_json *ns = am_json_get(L->d, attrs, "num_stacked");
    const am_json *td = am_json_get(L->d, attrs, "trip_dim");
    n->n_stacked = 0;
    n->trip_symbol = -1;
    if (!ns && !td) return AMBER_OK;
    if (!ns || !td) return LFAIL(L, "while takes num_stacked and trip_dim together");
    if (L->p->opset_version < 3)
        return LFAIL(L, "while with num_stacked and trip_dim needs opset version 3, the file "
                     "declares %lld", (long long)L->p->opset_version);
    amber_status st = count_attr(L, attrs, "num_stacked", n->n_out - n->n_carries, &n->n_stacked);
    if (st != AMBER_OK) return st;
    if (td->type != AM_JSON_STRING || strlen(td->str) != td->len || !am_dim_is_name(td->str, td->len))
        return LFAIL(L, "trip_dim must be a symbol name");
    if (am_symbols_find(sy, td->str, td->len) >= 0)
        return LFAIL(L, "trip_dim \"%.64s\" is already bound in the function", td->str);
    n->trip_symbol = sy->n; /* room: load_function reserves one symbol per node */
    am_symbols_add(sy, td->str, td->len);
    return AMBER_OK;
}

/* cond, while and scan (opset 2): attributes as the reference interpreter reads them;
 * argument and result counts are checked with the callees (am_program_load). */
static amber_status control_node(loader *L, am_node *n, const char *op, const am_json *attrs,
                                 am_symbols *sy) {
    amber_status st;
    if (!strcmp(op, "cond")) {
        static const char *const req[] = {"then", "else"};
        n->kind = AM_NODE_COND;
        if ((st = members(L, attrs, req, 2, NULL, 0)) != AMBER_OK) return st;
        if (n->n_in < 1) return LFAIL(L, "cond needs a predicate input");
        if ((st = func_attr(L, attrs, "then", &n->callee)) != AMBER_OK) return st;
        return func_attr(L, attrs, "else", &n->callee2);
    }
    if (!strcmp(op, "while")) {
        static const char *const req[] = {"cond", "body", "num_carries", "max_iterations"};
        static const char *const opt[] = {"num_stacked", "trip_dim"};
        n->kind = AM_NODE_WHILE;
        if ((st = members(L, attrs, req, 4, opt, 2)) != AMBER_OK) return st;
        if ((st = func_attr(L, attrs, "cond", &n->callee)) != AMBER_OK ||
            (st = func_attr(L, attrs, "body", &n->callee2)) != AMBER_OK ||
            (st = count_attr(L, attrs, "num_carries", n->n_in, &n->n_carries)) != AMBER_OK)
            return st;
        const am_json *lim = am_json_get(L->d, attrs, "max_iterations");
        n->max_iterations = -1;
        if (lim->type == AM_JSON_NUMBER && lim->is_int && lim->i >= 0) n->max_iterations = lim->i;
        else if (lim->type != AM_JSON_NULL)
            return LFAIL(L, "max_iterations must be null or a non-negative integer");
        if ((st = while_stack(L, n, attrs, sy)) != AMBER_OK) return st;
        if (n->n_out != n->n_carries + n->n_stacked)
            return LFAIL(L, "while has one output per carry and per stacked value");
        return AMBER_OK;
    }
    static const char *const req[] = {"body", "num_carries", "num_xs", "length", "reverse"};
    n->kind = AM_NODE_SCAN;
    if ((st = members(L, attrs, req, 5, NULL, 0)) != AMBER_OK) return st;
    if ((st = func_attr(L, attrs, "body", &n->callee)) != AMBER_OK ||
        (st = count_attr(L, attrs, "num_carries", n->n_in, &n->n_carries)) != AMBER_OK ||
        (st = count_attr(L, attrs, "num_xs", n->n_in - n->n_carries, &n->n_xs)) != AMBER_OK)
        return st;
    const am_json *rev = am_json_get(L->d, attrs, "reverse"), *len = am_json_get(L->d, attrs, "length");
    if (rev->type != AM_JSON_TRUE && rev->type != AM_JSON_FALSE)
        return LFAIL(L, "reverse must be true or false");
    n->reverse = rev->type == AM_JSON_TRUE;
    int64_t v = 0;
    am_error e;
    st = AMBER_ERR_FORMAT;
    if (!(len->type == AM_JSON_NUMBER && len->is_int && len->i >= 0) &&
        !(len->type == AM_JSON_STRING &&
          (st = am_dim_eval(len->str, len->len, sy, &v, &e)) == AMBER_OK)) {
        if (st == AMBER_ERR_LIMIT) return lnested(L, st, "length: ", &e);
        return LFAIL(L, "length must be a non-negative integer or a dim expression");
    }
    n->length = len;
    if (n->n_out < n->n_carries) return LFAIL(L, "scan returns its carries first");
    return AMBER_OK;
}

static bool value_name_ok(const am_json *name) {
    return name && name->type == AM_JSON_STRING && name->len && strlen(name->str) == name->len;
}

/* Checks the name of value `index` as it is defined (dup: the first value whose name an
 * earlier value has, from the sorted table of the function's value names). */
static amber_status define_value(loader *L, const am_json *name, uint32_t index,
                                 const am_name_ref *dup) {
    if (!value_name_ok(name)) return LFAIL(L, "value name must be a non-empty string");
    if (dup && dup->index == index)
        return LFAIL(L, "value \"%.100s\" is defined twice", name->str);
    return AMBER_OK;
}

/* The value `name` if it is defined before value index `limit`, else -1. */
static int64_t find_value(const am_name_ref *tab, uint32_t n, const char *name, uint32_t limit) {
    int64_t v = find_name(tab, n, name);
    return v < (int64_t)limit ? v : -1;
}

static bool static_type(const am_type *t) {
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i]->type != AM_JSON_NUMBER) return false;
    return true;
}

/* H.9: where a primitive's input types and attributes are static, its shape and dtype
 * rules run at load time, and the declared output type must be what they give. Nodes
 * with symbolic sizes are checked when they run. */
static amber_status static_check(loader *L, const am_func *f, const am_node *n) {
    if (!static_type(&n->out_types[0])) return AMBER_OK;
    am_error e;
    if (!n->static_attrs) return AMBER_OK;
    amber_tensor *ins = (amber_tensor *)calloc((size_t)n->n_in + 1, sizeof *ins);
    if (!ins) return am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    amber_status st = AMBER_OK;
    bool is_static = true;
    for (int k = 0; k < n->n_in && is_static; k++) {
        const am_type *t = f->value_types[n->in[k]];
        is_static = static_type(t);
        ins[k].dtype = t->dtype;
        ins[k].rank = t->rank;
        for (int d = 0; is_static && d < t->rank; d++) ins[k].shape[d] = t->dims[d]->i;
    }
    amber_tensor out;
    if (is_static) {
        if (am_op_infer(n->op, ins, n->n_in, n->static_attrs, &out, &e) != AMBER_OK) {
            st = LFAIL(L, "%s", e.msg);
        } else {
            const am_type *t = &n->out_types[0];
            bool same = out.dtype == t->dtype && out.rank == t->rank;
            for (int d = 0; same && d < t->rank; d++) same = out.shape[d] == t->dims[d]->i;
            if (!same) {
                char b[200];
                st = LFAIL(L, "%s gives %s%s, the node declares another type", n->op->name,
                           amber_dtype_name(out.dtype), am_shape_str(out.shape, out.rank, b, sizeof b));
            }
        }
    }
    free(ins);
    return st;
}

/* Every value name of a function (parameters, then node outputs) with its value index,
 * into tab; returns the count. Sorted once (a function may have millions of values),
 * the table answers lookups, and load_function checks definitions in order: a name may
 * be used only after its value is defined. */
static uint32_t value_table(loader *L, const am_json *params, const am_json *nodes,
                            am_name_ref *tab) {
    uint32_t nt = 0, vi = 0;
    for (const am_json *p = am_json_first(L->d, params); p; p = am_json_next(L->d, p), vi++) {
        const am_json *name = am_json_get(L->d, p, "name");
        if (value_name_ok(name)) tab[nt++] = (am_name_ref){name->str, vi};
    }
    for (const am_json *n = am_json_first(L->d, nodes); n; n = am_json_next(L->d, n))
        for (const am_json *o = am_json_first(L->d, am_json_get(L->d, n, "outputs")); o;
             o = am_json_next(L->d, o), vi++) {
            const am_json *name = am_json_get(L->d, o, "name");
            if (value_name_ok(name)) tab[nt++] = (am_name_ref){name->str, vi};
        }
    return nt;
}

/* Whether a dim of t names a symbol bound by a node of f (a trip count), not by a
 * parameter: a size the data decide (docs/format.md H.2). */
static bool uses_node_symbol(const am_func *f, const am_type *t) {
    for (int i = 0; i < t->rank; i++) {
        const am_json *d = t->dims[i];
        if (d->type != AM_JSON_STRING) continue;
        for (size_t a = 0; a < d->len;) {
            char c = d->str[a];
            if (!(isalpha((unsigned char)c) || c == '_')) {
                a++;
                continue;
            }
            size_t b = a;
            while (b < d->len && (isalnum((unsigned char)d->str[b]) || d->str[b] == '_')) b++;
            if (am_symbols_find(&f->syms, d->str + a, b - a) >= f->n_param_syms) return true;
            a = b;
        }
    }
    return false;
}

/* The symbols of f: parameter dims that are a single NAME, then one per node at most
 * (the trip_dim of an opset-3 while). */
static amber_status function_symbols(loader *L, const am_json *params, const am_json *nodes,
                                     am_func *f) {
    uint32_t max_syms = nodes->count;
    for (const am_json *p = am_json_first(L->d, params); p; p = am_json_next(L->d, p)) {
        const am_json *sh = am_json_get(L->d, p, "shape");
        if (sh && sh->type == AM_JSON_ARRAY) max_syms += sh->count;
    }
    am_symbols *sy = &f->syms;
    amber_status st;
    if ((st = alloc(L, max_syms, sizeof(char *), &sy->names)) != AMBER_OK ||
        (st = alloc(L, max_syms, sizeof(int64_t), &sy->values)) != AMBER_OK ||
        (st = alloc(L, max_syms, sizeof(size_t), &sy->lens)) != AMBER_OK ||
        (st = alloc(L, f->n_params, sizeof(am_type), &f->param_types)) != AMBER_OK ||
        (st = alloc(L, f->n_params, sizeof(char *), &f->param_names)) != AMBER_OK ||
        (st = alloc(L, (size_t)f->n_params * AMBER_MAX_RANK, sizeof(int), &f->param_symbol)) != AMBER_OK)
        return st;
    if (max_syms > 8) { /* a hash of the names: functions may have very many */
        sy->cap = 16;
        while (sy->cap < 2 * max_syms + 1) sy->cap *= 2; /* max_syms < 2^31: values */
        if ((st = alloc(L, sy->cap, sizeof(uint32_t), &sy->slots)) != AMBER_OK) return st;
    }
    for (const am_json *p = am_json_first(L->d, params); p; p = am_json_next(L->d, p)) {
        const am_json *sh = am_json_get(L->d, p, "shape");
        for (const am_json *dim = sh && sh->type == AM_JSON_ARRAY ? am_json_first(L->d, sh) : NULL;
             dim; dim = am_json_next(L->d, dim)) {
            if (dim->type != AM_JSON_STRING || !am_dim_is_name(dim->str, dim->len)) continue;
            if (am_symbols_find(sy, dim->str, dim->len) < 0) am_symbols_add(sy, dim->str, dim->len);
        }
    }
    sy->check = true;
    f->n_param_syms = sy->n;
    return AMBER_OK;
}

/* Values: parameters, then node outputs. */
static amber_status count_values(loader *L, const am_json *nodes, am_func *f) {
    uint32_t n_values = f->n_params;
    for (const am_json *n = am_json_first(L->d, nodes); n; n = am_json_next(L->d, n)) {
        const am_json *outs = am_json_get(L->d, n, "outputs");
        if (!outs || outs->type != AM_JSON_ARRAY) return LFAIL(L, "node outputs must be an array");
        if (n_values > UINT32_MAX - outs->count) return LFAIL(L, "too many values");
        n_values += outs->count;
    }
    f->n_values = n_values;
    return alloc(L, n_values, sizeof(am_type *), &f->value_types);
}

/* The value names of the function being loaded (value_table) and the first repeat. */
typedef struct value_names {
    am_name_ref *tab;
    uint32_t n;
    const am_name_ref *dup;
} value_names;

static amber_status load_params(loader *L, const am_json *params, am_func *f,
                                const value_names *vn) {
    static const char *const preq[] = {"name", "dtype", "shape"};
    amber_status st = AMBER_OK;
    uint32_t vi = 0;
    for (const am_json *p = am_json_first(L->d, params); p && st == AMBER_OK;
         p = am_json_next(L->d, p), vi++) {
        if ((st = members(L, p, preq, 3, NULL, 0)) != AMBER_OK) break;
        if ((st = parse_type(L, p, &f->syms, &f->param_types[vi])) != AMBER_OK) break;
        for (int k = 0; k < f->param_types[vi].rank; k++) {
            const am_json *dim = f->param_types[vi].dims[k];
            int sym = -1;
            if (dim->type == AM_JSON_STRING && am_dim_is_name(dim->str, dim->len))
                sym = am_symbols_find(&f->syms, dim->str, dim->len);
            f->param_symbol[vi * AMBER_MAX_RANK + (uint32_t)k] = sym;
        }
        f->value_types[vi] = &f->param_types[vi];
        st = define_value(L, am_json_get(L->d, p, "name"), vi, vn->dup);
        if (st == AMBER_OK) f->param_names[vi] = am_json_get(L->d, p, "name")->str;
    }
    return st;
}

/* A constant (its data inline or a tensor) or a weight (by name) node. */
static amber_status data_node(loader *L, am_node *n, const char *op, const am_json *attrs,
                              const am_json *weights) {
    bool is_const = op[0] == 'c';
    n->kind = is_const ? AM_NODE_CONSTANT : AM_NODE_WEIGHT;
    const char *key = is_const ? "value" : "name";
    amber_status st = members(L, attrs, &key, 1, NULL, 0);
    if (st != AMBER_OK) return st;
    if (n->n_in != 0 || n->n_out != 1) return LFAIL(L, "%s takes no inputs and has one output", op);
    am_type t;
    if (!is_const) {
        const am_json *wn = am_json_get(L->d, attrs, "name");
        const am_json *w = wn && wn->type == AM_JSON_STRING ? find_weight(L, weights, wn->str) : NULL;
        if (!w) return LFAIL(L, "weight node names an unknown weight");
        if ((st = parse_type(L, w, NULL, &t)) != AMBER_OK) return st;
        return tensor_ref(L, am_json_get(L->d, w, "tensor"), &t, &n->tensor);
    }
    const am_json *val = am_json_get(L->d, attrs, "value");
    bool by_tensor = am_json_get(L->d, val, "tensor") != NULL;
    static const char *const creq_t[] = {"dtype", "shape", "tensor"};
    static const char *const creq_d[] = {"dtype", "shape", "data"};
    if ((st = members(L, val, by_tensor ? creq_t : creq_d, 3, NULL, 0)) != AMBER_OK ||
        (st = parse_type(L, val, NULL, &t)) != AMBER_OK)
        return st;
    n->tensor.dtype = t.dtype;
    n->tensor.rank = t.rank;
    for (int r = 0; r < t.rank; r++) n->tensor.shape[r] = t.dims[r]->i;
    return by_tensor ? tensor_ref(L, am_json_get(L->d, val, "tensor"), &t, &n->tensor)
                     : inline_constant(L, am_json_get(L->d, val, "data"), &n->tensor);
}

/* A primitive's node: known to the file's opset, its arity, its attributes (decoded once
 * here unless they hold dim expressions). */
static amber_status op_node(loader *L, am_node *n, const char *op, const am_json *attrs,
                            const am_symbols *sy) {
    n->kind = AM_NODE_OP;
    n->op = am_op_find(op);
    if (!n->op)
        return LFAIL(L, "op \"%.60s\" is neither a primitive of opset 1 nor an IR builtin", op);
    if (L->p->opset_version < am_op_since(n->op))
        return LFAIL(L, "%s needs opset version %d, the file declares %lld", n->op->name,
                     am_op_since(n->op), (long long)L->p->opset_version);
    if ((n->op->n_inputs >= 0 ? n->n_in != n->op->n_inputs : n->n_in < 1) || n->n_out != 1)
        return LFAIL(L, "%s takes %d input(s) and has one output", n->op->name, n->op->n_inputs);
    am_attrs a, *fixed;
    am_error e;
    amber_status st;
    if (am_attrs_decode(n->op, L->d, attrs, NULL, &a, &e) == AMBER_OK) { /* no dims */
        if ((st = alloc(L, 1, sizeof a, &fixed)) != AMBER_OK) return st;
        *fixed = a;
        n->static_attrs = fixed;
    } else if ((st = am_attrs_decode(n->op, L->d, attrs, sy, &a, &e)) != AMBER_OK) {
        return lnested(L, st, "", &e);
    }
    return AMBER_OK;
}

/* The op of a node: a primitive or an IR builtin. */
static amber_status node_op(loader *L, am_node *n, const char *op, const am_json *attrs,
                            const am_json *weights, am_symbols *sy) {
    if (!strcmp(op, "constant") || !strcmp(op, "weight"))
        return data_node(L, n, op, attrs, weights);
    if (!strcmp(op, "call")) {
        n->kind = AM_NODE_CALL;
        static const char *const key = "callee";
        amber_status st = members(L, attrs, &key, 1, NULL, 0);
        return st != AMBER_OK ? st : func_attr(L, attrs, "callee", &n->callee);
    }
    if (!strcmp(op, "cond") || !strcmp(op, "while") || !strcmp(op, "scan")) {
        if (L->p->opset_version < 2)
            return LFAIL(L, "%s needs opset version 2, the file declares %lld", op,
                         (long long)L->p->opset_version);
        return control_node(L, n, op, attrs, sy);
    }
    return op_node(L, n, op, attrs, sy);
}

/* A node's inputs: values defined before it (the first vi). */
static amber_status node_inputs(loader *L, const am_json *ins, am_node *n,
                                const value_names *vn, uint32_t vi) {
    int k = 0;
    for (const am_json *in = am_json_first(L->d, ins); in; in = am_json_next(L->d, in), k++) {
        int64_t v = in->type == AM_JSON_STRING ? find_value(vn->tab, vn->n, in->str, vi) : -1;
        if (v < 0) return LFAIL(L, "input %d is not a value defined before this node", k);
        n->in[k] = (uint32_t)v;
    }
    return AMBER_OK;
}

/* A node's outputs, defining values *vi on; then the checks their types allow. */
static amber_status node_outputs(loader *L, const am_json *outs, am_func *f, am_node *n,
                                 const value_names *vn, uint32_t *vi) {
    static const char *const oreq[] = {"name", "dtype", "shape"};
    const am_symbols *sy = &f->syms;
    amber_status st = AMBER_OK;
    int k = 0;
    for (const am_json *o = am_json_first(L->d, outs); o && st == AMBER_OK;
         o = am_json_next(L->d, o), k++) {
        if ((st = members(L, o, oreq, 3, NULL, 0)) != AMBER_OK) break;
        if ((st = parse_type(L, o, sy, &n->out_types[k])) != AMBER_OK) break;
        st = define_value(L, am_json_get(L->d, o, "name"), *vi, vn->dup);
        f->value_types[*vi] = &n->out_types[k];
        n->out[k] = (*vi)++;
    }
    if (st == AMBER_OK && n->kind == AM_NODE_OP) st = static_check(L, f, n);
    for (int j = 0; st == AMBER_OK && j < n->n_stacked; j++) {
        const am_type *t = &n->out_types[n->n_carries + j];
        const am_json *d0 = t->rank ? t->dims[0] : NULL;
        if (!d0 || d0->type != AM_JSON_STRING ||
            d0->len != sy->lens[n->trip_symbol] || memcmp(d0->str, sy->names[n->trip_symbol], d0->len))
            st = LFAIL(L, "stacked output %d must have the leading dim trip_dim", j);
    }
    return st;
}

static amber_status load_node(loader *L, const am_json *nj, const am_json *weights, am_func *f,
                              am_node *n, const value_names *vn, uint32_t *vi) {
    static const char *const nreq[] = {"op", "inputs", "attrs", "outputs"};
    amber_status st = members(L, nj, nreq, 4, NULL, 0);
    if (st != AMBER_OK) return st;
    const am_json *op = get_typed(L, nj, "op", AM_JSON_STRING, &st);
    const am_json *ins = op ? get_typed(L, nj, "inputs", AM_JSON_ARRAY, &st) : NULL;
    const am_json *attrs = ins ? get_typed(L, nj, "attrs", AM_JSON_OBJECT, &st) : NULL;
    const am_json *outs = am_json_get(L->d, nj, "outputs");
    if (!attrs) return st;
    n->attrs = attrs;
    n->n_in = (int)ins->count;
    n->n_out = (int)outs->count;
    if ((st = alloc(L, ins->count, sizeof(uint32_t), &n->in)) != AMBER_OK ||
        (st = alloc(L, outs->count, sizeof(uint32_t), &n->out)) != AMBER_OK ||
        (st = alloc(L, outs->count, sizeof(am_type), &n->out_types)) != AMBER_OK ||
        (st = node_inputs(L, ins, n, vn, *vi)) != AMBER_OK ||
        (st = node_op(L, n, op->str, attrs, weights, &f->syms)) != AMBER_OK)
        return st;
    return node_outputs(L, outs, f, n, vn, vi);
}

static amber_status load_results(loader *L, const am_json *results, am_func *f,
                                 const value_names *vn) {
    amber_status st = alloc(L, f->n_results, sizeof(uint32_t), &f->results);
    int k = 0;
    for (const am_json *r = st == AMBER_OK ? am_json_first(L->d, results) : NULL; r;
         r = am_json_next(L->d, r), k++) {
        int64_t v = r->type == AM_JSON_STRING ? find_value(vn->tab, vn->n, r->str, UINT32_MAX) : -1;
        if (v < 0) return LFAIL(L, "result %d is not a value of the function", k);
        f->results[k] = (uint32_t)v;
        f->data_dependent = f->data_dependent || uses_node_symbol(f, f->value_types[v]);
    }
    return st;
}

static amber_status load_function(loader *L, const am_json *fj, const am_json *weights,
                                  am_func *f) {
    static const char *const req[] = {"name", "params", "nodes", "results"};
    amber_status st = members(L, fj, req, 4, NULL, 0);
    if (st != AMBER_OK) return st;
    const am_json *params = get_typed(L, fj, "params", AM_JSON_ARRAY, &st);
    const am_json *nodes = params ? get_typed(L, fj, "nodes", AM_JSON_ARRAY, &st) : NULL;
    const am_json *results = nodes ? get_typed(L, fj, "results", AM_JSON_ARRAY, &st) : NULL;
    if (!results) return st;
    f->n_params = params->count;
    f->n_nodes = nodes->count;
    f->n_results = results->count;
    if ((st = function_symbols(L, params, nodes, f)) != AMBER_OK ||
        (st = count_values(L, nodes, f)) != AMBER_OK)
        return st;
    value_names vn = {(am_name_ref *)calloc(f->n_values ? f->n_values : 1, sizeof *vn.tab), 0, NULL};
    if (!vn.tab) return am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    vn.n = value_table(L, params, nodes, vn.tab);
    vn.dup = sort_names(vn.tab, vn.n);
    st = load_params(L, params, f, &vn);
    if (st == AMBER_OK) st = alloc(L, f->n_nodes, sizeof(am_node), &f->nodes);
    uint32_t ni = 0, vi = f->n_params;
    for (const am_json *nj = st == AMBER_OK ? am_json_first(L->d, nodes) : NULL; nj && st == AMBER_OK;
         nj = am_json_next(L->d, nj), ni++) {
        size_t plen = strlen(L->path);
        snprintf(L->path + plen, sizeof L->path - plen, ".nodes[%u]", ni);
        st = load_node(L, nj, weights, f, &f->nodes[ni], &vn, &vi);
        L->path[plen] = '\0';
    }
    if (st == AMBER_OK) st = load_results(L, results, f, &vn);
    free(vn.tab);
    return st;
}

static amber_status load_ports(loader *L, const am_json *arr, const am_symbols *syms,
                               am_port_def **out, uint32_t *n, bool inputs) {
    if (!arr || arr->type != AM_JSON_ARRAY) return LFAIL(L, "inputs and outputs must be arrays");
    *n = arr->count;
    amber_status st = alloc(L, arr->count, sizeof(am_port_def), out);
    uint32_t i = 0;
    static const char *const req[] = {"name", "dtype", "shape"};
    for (const am_json *p = am_json_first(L->d, arr); p && st == AMBER_OK; p = am_json_next(L->d, p), i++) {
        if ((st = members(L, p, req, 3, NULL, 0)) != AMBER_OK) break;
        const am_json *name = am_json_get(L->d, p, "name");
        if (name->type != AM_JSON_STRING) return LFAIL(L, "port name must be a string");
        (*out)[i].name = name->str;
        if ((st = check_name(L, name, inputs ? "input" : "output", false)) != AMBER_OK) break;
        if ((st = parse_type(L, p, syms, &(*out)[i].type)) != AMBER_OK) break;
        if (inputs)
            for (int d = 0; d < (*out)[i].type.rank; d++) {
                const am_json *dim = (*out)[i].type.dims[d];
                if (dim->type == AM_JSON_STRING && !am_dim_is_name(dim->str, dim->len))
                    return LFAIL(L, "input dims must be integers or single symbols");
            }
    }
    if (st != AMBER_OK) return st;
    am_name_ref *tab = (am_name_ref *)malloc(sizeof *tab * (*n + 1u));
    if (!tab) return am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    for (uint32_t k = 0; k < *n; k++) tab[k] = (am_name_ref){(*out)[k].name, k};
    const am_name_ref *dup = sort_names(tab, *n);
    if (dup) st = LFAIL(L, "port name \"%.100s\" repeats", dup->name);
    free(tab);
    return st;
}

static amber_status load_vectors(loader *L, const am_json *arr) {
    am_program *p = L->p;
    if (arr->type != AM_JSON_ARRAY) return LFAIL(L, "test_vectors must be an array");
    p->n_vectors = arr->count;
    amber_status st = alloc(L, arr->count, sizeof(am_vector), &p->vectors);
    uint32_t i = 0;
    static const char *const req[] = {"entry", "dims", "inputs", "outputs", "tolerance"};
    for (const am_json *v = am_json_first(L->d, arr); v && st == AMBER_OK; v = am_json_next(L->d, v), i++) {
        snprintf(L->path, sizeof L->path, "test_vectors[%u]", i);
        if ((st = members(L, v, req, 5, NULL, 0)) != AMBER_OK) break;
        const am_json *entry = am_json_get(L->d, v, "entry");
        int64_t e = entry->type == AM_JSON_STRING ? am_program_find_entry(p, entry->str) : -1;
        if (e < 0) return LFAIL(L, "names an unknown entry point");
        am_vector *tv = &p->vectors[i];
        const am_entry *en = &p->entries[e];
        tv->entry = (uint32_t)e;
        const am_json *ins = am_json_get(L->d, v, "inputs"), *outs = am_json_get(L->d, v, "outputs");
        const am_json *tol = am_json_get(L->d, v, "tolerance");
        if (ins->type != AM_JSON_OBJECT || outs->type != AM_JSON_OBJECT || tol->type != AM_JSON_OBJECT ||
            am_json_get(L->d, v, "dims")->type != AM_JSON_OBJECT)
            return LFAIL(L, "dims, inputs, outputs and tolerance must be objects");
        if (ins->count != en->n_inputs || outs->count != en->n_outputs)
            return LFAIL(L, "must give exactly the entry point's inputs and outputs");
        if ((st = alloc(L, en->n_inputs, sizeof(amber_tensor), &tv->inputs)) != AMBER_OK ||
            (st = alloc(L, en->n_outputs, sizeof(amber_tensor), &tv->outputs)) != AMBER_OK ||
            (st = alloc(L, en->n_outputs, sizeof(double), &tv->rtol)) != AMBER_OK ||
            (st = alloc(L, en->n_outputs, sizeof(double), &tv->atol)) != AMBER_OK)
            return st;
        for (uint32_t k = 0; k < en->n_inputs; k++) {
            const am_json *t = am_json_get(L->d, ins, en->inputs[k].name);
            if (!t) return LFAIL(L, "lacks input \"%.100s\"", en->inputs[k].name);
            if ((st = tensor_ref(L, t, NULL, &tv->inputs[k])) != AMBER_OK) return st;
        }
        for (uint32_t k = 0; k < en->n_outputs; k++) {
            const am_json *t = am_json_get(L->d, outs, en->outputs[k].name);
            if (!t) return LFAIL(L, "lacks output \"%.100s\"", en->outputs[k].name);
            if ((st = tensor_ref(L, t, NULL, &tv->outputs[k])) != AMBER_OK) return st;
            const am_json *tt = am_json_get(L->d, tol, en->outputs[k].name);
            const am_json *rt = tt ? am_json_get(L->d, tt, "rtol") : NULL;
            const am_json *at = tt ? am_json_get(L->d, tt, "atol") : NULL;
            if (tt) {
                static const char *const treq[] = {"rtol", "atol"};
                if ((st = members(L, tt, treq, 2, NULL, 0)) != AMBER_OK) return st;
                if (rt->type != AM_JSON_NUMBER || at->type != AM_JSON_NUMBER || rt->num < 0 || at->num < 0)
                    return LFAIL(L, "tolerances must be non-negative numbers");
                tv->rtol[k] = rt->num;
                tv->atol[k] = at->num;
            }
        }
    }
    return st;
}

/* Weights: valid, unique names (H.10), tensors of the declared type; the sorted table
 * find_weight searches. */
static amber_status load_weights(loader *L, const am_json *weights) {
    amber_status st;
    uint32_t wi = 0;
    static const char *const wreq[] = {"name", "tensor", "dtype", "shape"};
    L->n_weights = weights->count;
    if ((st = alloc(L, weights->count, sizeof(am_name_ref), &L->weight_index)) != AMBER_OK ||
        (st = alloc(L, weights->count, sizeof(am_json *), &L->weight_nodes)) != AMBER_OK)
        return st;
    for (const am_json *w = am_json_first(L->d, weights); w; w = am_json_next(L->d, w), wi++) {
        snprintf(L->path, sizeof L->path, "program.weights[%u]", wi);
        if ((st = members(L, w, wreq, 4, NULL, 0)) != AMBER_OK) return st;
        const am_json *name = am_json_get(L->d, w, "name");
        if (name->type != AM_JSON_STRING) return LFAIL(L, "name must be a string");
        if ((st = check_name(L, name, "weight", true)) != AMBER_OK) return st;
        L->weight_index[wi] = (am_name_ref){name->str, wi};
        L->weight_nodes[wi] = w;
    }
    const am_name_ref *dup = sort_names(L->weight_index, L->n_weights);
    if (dup) {
        snprintf(L->path, sizeof L->path, "program.weights[%u]", dup->index);
        return LFAIL(L, "weight name \"%.100s\" repeats", dup->name);
    }
    wi = 0;
    for (const am_json *w = am_json_first(L->d, weights); w; w = am_json_next(L->d, w), wi++) {
        snprintf(L->path, sizeof L->path, "program.weights[%u]", wi);
        am_type t;
        amber_tensor view;
        if ((st = parse_type(L, w, NULL, &t)) != AMBER_OK) return st;
        if ((st = tensor_ref(L, am_json_get(L->d, w, "tensor"), &t, &view)) != AMBER_OK) return st;
    }
    return AMBER_OK;
}

/* Entry points: valid names (H.10), a known function, ports of its types; the sorted
 * table am_program_find_entry searches. */
static amber_status load_signatures(loader *L, const am_json *sigs) {
    am_program *p = L->p;
    amber_status st;
    snprintf(L->path, sizeof L->path, "signatures");
    if (sigs->type != AM_JSON_OBJECT) return LFAIL(L, "must be an object");
    p->n_entries = sigs->count;
    if ((st = alloc(L, p->n_entries, sizeof(am_entry), &p->entries)) != AMBER_OK) return st;
    uint32_t ei = 0;
    static const char *const sreq[] = {"function", "inputs", "outputs", "output_structure"};
    static const char *const sopt[] = {"input_ranges"};
    for (const am_json *s = am_json_first(L->d, sigs); s; s = am_json_next(L->d, s), ei++) {
        snprintf(L->path, sizeof L->path, "signatures.%.100s", s->key);
        am_entry *e = &p->entries[ei];
        e->name = s->key;
        if ((st = check_name_str(L, s->key, s->key_len, "entry point", false)) != AMBER_OK)
            return st;
        if ((st = members(L, s, sreq, 4, sopt, 1)) != AMBER_OK) return st;
        const am_json *fn = am_json_get(L->d, s, "function");
        int64_t f = fn->type == AM_JSON_STRING ? find_func(p, fn->str) : -1;
        if (f < 0) return LFAIL(L, "names an unknown function");
        e->func = (uint32_t)f;
        const am_func *func = &p->funcs[f];
        if ((st = load_ports(L, am_json_get(L->d, s, "inputs"), &func->syms, &e->inputs, &e->n_inputs,
                             true)) != AMBER_OK ||
            (st = load_ports(L, am_json_get(L->d, s, "outputs"), &func->syms, &e->outputs,
                             &e->n_outputs, false)) != AMBER_OK)
            return st;
        if (e->n_inputs != func->n_params || e->n_outputs != func->n_results)
            return LFAIL(L, "has %u inputs and %u outputs, function %s has %u and %u", e->n_inputs,
                         e->n_outputs, func->name, func->n_params, func->n_results);
        for (uint32_t k = 0; k < e->n_inputs; k++)
            if (!same_type(&e->inputs[k].type, &func->param_types[k]))
                return LFAIL(L, "input \"%.100s\" differs from the function's parameter",
                             e->inputs[k].name);
        for (uint32_t k = 0; k < e->n_outputs; k++)
            if (!same_type(&e->outputs[k].type, func->value_types[func->results[k]]))
                return LFAIL(L, "output \"%.100s\" differs from the function's result",
                             e->outputs[k].name);
    }
    /* the names are distinct: they are the keys of one JSON object */
    if ((st = alloc(L, p->n_entries, sizeof(am_name_ref), &p->entry_index)) != AMBER_OK) return st;
    for (ei = 0; ei < p->n_entries; ei++) p->entry_index[ei] = (am_name_ref){p->entries[ei].name, ei};
    sort_names(p->entry_index, p->n_entries);
    return AMBER_OK;
}

/* A function returning a size its loop decides runs only as an entry point (opset 5):
 * no node runs it, some entry point names it (docs/format.md H.9). */
static amber_status check_data_dependent(loader *L) {
    const am_program *p = L->p;
    for (uint32_t fi = 0; fi < p->n_funcs; fi++) {
        const am_func *f = &p->funcs[fi];
        if (!f->data_dependent) continue;
        snprintf(L->path, sizeof L->path, "program.functions[%u]", fi);
        if (p->opset_version < 5)
            return LFAIL(L, "a result of %.100s uses a size bound by a node (a loop's trip "
                         "count); that needs opset version 5, the file declares %lld", f->name,
                         (long long)p->opset_version);
        bool entry = false;
        for (uint32_t e = 0; e < p->n_entries; e++) entry = entry || p->entries[e].func == fi;
        if (!entry)
            return LFAIL(L, "a result of %.100s uses a size bound by a node; only an entry "
                         "point's function may return such a size", f->name);
    }
    for (uint32_t fi = 0; fi < p->n_funcs; fi++)
        for (uint32_t ni = 0; ni < p->funcs[fi].n_nodes; ni++) {
            const am_node *n = &p->funcs[fi].nodes[ni];
            if (n->kind < AM_NODE_CALL) continue;
            const am_func *c = &p->funcs[n->callee], *c2 = &p->funcs[n->callee2];
            bool two = n->kind == AM_NODE_COND || n->kind == AM_NODE_WHILE;
            if (c->data_dependent || (two && c2->data_dependent)) {
                snprintf(L->path, sizeof L->path, "program.functions[%u].nodes[%u]", fi, ni);
                return LFAIL(L, "runs %.100s, whose results use a size its loop decides; only "
                             "an entry point may return such a size",
                             c->data_dependent ? c->name : c2->name);
            }
        }
    return AMBER_OK;
}

amber_status am_program_load(am_program *p, const am_json_doc *d, const void *model,
                             am_tensor_lookup lookup, bool fuse, am_error *err) {
    memset(p, 0, sizeof *p);
    am_arena_init(&p->mem, 0);
    loader Lv = {p, d, model, lookup, err, fuse, NULL, NULL, 0, "header"}, *L = &Lv;
    const am_json *root = am_json_root(d);
    const am_json *program = am_json_get(d, root, "program");
    if (!program) {
        /* A bare container: no other header-contents member may appear half-way. */
        if (am_json_get(d, root, "signatures") || am_json_get(d, root, "opset_version"))
            return LFAIL(L, "has signatures or an opset_version but no program");
        return AMBER_OK;
    }
    p->present = true;
    static const char *const req[] = {"tensors", "opset_version", "program", "signatures"};
    static const char *const opt[] = {"metadata", "test_vectors"};
    amber_status st = members(L, root, req, 4, opt, 2);
    if (st != AMBER_OK) return st;
    const am_json *ov = am_json_get(d, root, "opset_version");
    if (ov->type != AM_JSON_NUMBER || !ov->is_int || ov->i < 1)
        return LFAIL(L, "opset_version must be a positive integer");
    if (ov->i > AMBER_OPSET_VERSION)
        return am_fail(err, AMBER_ERR_VERSION, "the file needs opset version %lld, this runtime "
                       "implements opset versions up to %d; upgrade amber", (long long)ov->i,
                       AMBER_OPSET_VERSION);
    p->opset_version = ov->i;
    const am_json *meta = am_json_get(d, root, "metadata");
    if (meta && meta->type != AM_JSON_OBJECT) return LFAIL(L, "metadata must be an object");
    snprintf(L->path, sizeof L->path, "program");
    static const char *const preq[] = {"functions", "weights"};
    if ((st = members(L, program, preq, 2, NULL, 0)) != AMBER_OK) return st;
    const am_json *funcs = get_typed(L, program, "functions", AM_JSON_ARRAY, &st);
    const am_json *weights = funcs ? get_typed(L, program, "weights", AM_JSON_ARRAY, &st) : NULL;
    if (!weights) return st;
    if ((st = load_weights(L, weights)) != AMBER_OK) return st;
    /* Function names first (calls may refer forward), then bodies. */
    p->n_funcs = funcs->count;
    if ((st = alloc(L, p->n_funcs, sizeof(am_func), &p->funcs)) != AMBER_OK) return st;
    uint32_t fi = 0;
    for (const am_json *f = am_json_first(d, funcs); f; f = am_json_next(d, f), fi++) {
        const am_json *name = am_json_get(d, f, "name");
        snprintf(L->path, sizeof L->path, "program.functions[%u]", fi);
        if (!name || name->type != AM_JSON_STRING) return LFAIL(L, "name must be a string");
        p->funcs[fi].name = name->str;
    }
    if ((st = alloc(L, p->n_funcs, sizeof(am_name_ref), &p->func_index)) != AMBER_OK) return st;
    for (fi = 0; fi < p->n_funcs; fi++) p->func_index[fi] = (am_name_ref){p->funcs[fi].name, fi};
    const am_name_ref *dup = sort_names(p->func_index, p->n_funcs);
    if (dup) {
        snprintf(L->path, sizeof L->path, "program.functions[%u]", dup->index);
        return LFAIL(L, "function name \"%.100s\" repeats", dup->name);
    }
    fi = 0;
    for (const am_json *f = am_json_first(d, funcs); f; f = am_json_next(d, f), fi++) {
        snprintf(L->path, sizeof L->path, "program.functions[%u]", fi);
        if ((st = load_function(L, f, weights, &p->funcs[fi])) != AMBER_OK) return st;
    }
    for (fi = 0; fi < p->n_funcs; fi++)
        for (uint32_t ni = 0; ni < p->funcs[fi].n_nodes; ni++) {
            const am_node *n = &p->funcs[fi].nodes[ni];
            const am_func *c = &p->funcs[n->callee], *c2 = &p->funcs[n->callee2];
            uint32_t in = (uint32_t)n->n_in, out = (uint32_t)n->n_out;
            bool ok = true;
            switch (n->kind) {
            case AM_NODE_CALL: ok = c->n_params == in && c->n_results == out; break;
            case AM_NODE_COND:
                ok = c->n_params == in - 1 && c2->n_params == in - 1 && c->n_results == out &&
                     c2->n_results == out;
                break;
            case AM_NODE_WHILE:
                ok = c->n_params == in && c->n_results == 1 && c2->n_params == in &&
                     c2->n_results == (uint32_t)(n->n_carries + n->n_stacked);
                break;
            case AM_NODE_SCAN: ok = c->n_params == in && c->n_results == out; break;
            default: break;
            }
            if (!ok) {
                snprintf(L->path, sizeof L->path, "program.functions[%u].nodes[%u]", fi, ni);
                return LFAIL(L, "the argument or result counts of %s do not match the "
                             "function(s) it runs", c->name);
            }
        }
    if ((st = load_signatures(L, am_json_get(d, root, "signatures"))) != AMBER_OK) return st;
    if ((st = check_data_dependent(L)) != AMBER_OK) return st;
    if ((st = am_plan_program(p, d, L->fuse, err)) != AMBER_OK) return st;
    const am_json *vec = am_json_get(d, root, "test_vectors");
    if (vec && (st = load_vectors(L, vec)) != AMBER_OK) return st;
    return am_program_typecheck(p, d, err);
}

void am_program_free(am_program *p) { am_arena_free(&p->mem); }

amber_status am_node_attrs(const am_node *n, const am_json_doc *doc, const am_symbols *syms,
                           am_attrs *buf, const am_attrs **out, am_error *err) {
    *out = n->static_attrs ? n->static_attrs : buf;
    return n->static_attrs ? AMBER_OK : am_attrs_decode(n->op, doc, n->attrs, syms, buf, err);
}

amber_status am_type_eval(const am_type *t, const am_symbols *syms, int64_t *shape,
                          am_error *err) {
    for (int i = 0; i < t->rank; i++) {
        const am_json *d = t->dims[i];
        if (d->type == AM_JSON_NUMBER) {
            shape[i] = d->i;
            continue;
        }
        amber_status st = am_dim_eval(d->str, d->len, syms, &shape[i], err);
        if (st != AMBER_OK) return st;
        if (shape[i] < 0)
            return am_fail(err, AMBER_ERR_SHAPE, "dim \"%.100s\" evaluates to %lld (negative)",
                           d->str, (long long)shape[i]);
    }
    return AMBER_OK;
}
