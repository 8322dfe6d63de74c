/* Loads the program, signatures and test vectors of an .amber header (docs/format.md,
 * H.1-H.9) into am_program, checking structure, names, references and SSA order.
 * Shape rules of each node are applied when the node runs (with symbols bound). */
#include "prog.h"
#include "plan_attn.h"

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

static bool same_json_dim(const am_json *a, const am_json *b) {
    if (a->type != b->type) return false;
    if (a->type == AM_JSON_NUMBER) return a->i == b->i;
    return a->len == b->len && !memcmp(a->str, b->str, a->len);
}

static bool same_type(const am_type *a, const am_type *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (!same_json_dim(a->dims[i], b->dims[i])) return false;
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

/* Marks the op nodes that depend on weights, constants and the parameters marked in
 * `same` only (see am_hoist); may run again when `same` changes. */
static amber_status plan_hoisting(loader *L, am_func *f, const uint8_t *same) {
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
        n->fuse != AM_FUSE_NONE || n->attn || n->norm)
        return NULL;
    return am_elementwise_loop(n->op, f->value_types[n->in[0]]->dtype, n->out_types[0].dtype);
}

static bool same_dims(const am_type *a, const am_type *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (!same_json_dim(a->dims[i], b->dims[i])) return false;
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

/* Fuses chains of elementwise ops (see am_fused). From the last node back, each fusible
 * node not yet in a group roots one, which takes in the producers of its members'
 * inputs while they are fusible, give a result of the root's shape, are not results,
 * and are read by members only. */
static amber_status plan_fusion(loader *L, am_func *f) {
    size_t nv = f->n_values ? f->n_values : 1, nn = f->n_nodes ? f->n_nodes : 1;
    int64_t *def = (int64_t *)malloc(sizeof(int64_t) * nv);
    uint32_t *uses = (uint32_t *)calloc(nv, sizeof(uint32_t));
    uint8_t *in = (uint8_t *)calloc(nn, 1), *taken = (uint8_t *)calloc(nn, 1);
    amber_status st = AMBER_OK;
    if (!def || !uses || !in || !taken) {
        st = am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
        goto done;
    }
    for (uint32_t v = 0; v < f->n_values; v++) def[v] = -1;
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        const am_node *n = &f->nodes[ni];
        for (int k = 0; k < n->n_out; k++) def[n->out[k]] = ni;
        for (int k = 0; k < n->n_in; k++) uses[n->in[k]]++;
    }
    for (uint32_t k = 0; k < f->n_results; k++) uses[f->results[k]] = UINT32_MAX; /* kept */
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
        if (g.n >= 2 && group_inputs(f, &g, ext, &n_ext)) {
            am_fused *fu;
            if ((st = alloc(L, 1, sizeof *fu, &fu)) != AMBER_OK) goto done;
            qsort(g.node, g.n, sizeof g.node[0], cmp_u32); /* steps in program order */
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
    return st;
}

/* Lifetimes of the values a run places by a memory plan (see am_func). A fused member
 * reads its inputs when its root runs; a reshape's result is its input's memory. */
static amber_status plan_lifetimes(loader *L, am_func *f) {
    size_t nv = f->n_values ? f->n_values : 1;
    uint32_t *last = (uint32_t *)malloc(sizeof(uint32_t) * nv);
    uint32_t *owner = (uint32_t *)malloc(sizeof(uint32_t) * nv); /* whose memory v is */
    bool *planned = (bool *)calloc(nv, sizeof(bool));
    if (!last || !owner || !planned) {
        free(last);
        free(owner);
        free(planned);
        return am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    }
    for (uint32_t v = 0; v < f->n_values; v++) {
        last[v] = 0;
        owner[v] = v;
    }
    for (uint32_t ni = 0; ni < f->n_nodes; ni++) {
        am_node *n = &f->nodes[ni];
        uint32_t at = n->fuse == AM_FUSE_MEMBER ? n->root : ni;
        n->alias = n->kind == AM_NODE_OP && n->op->id == AM_OP_RESHAPE && n->hoist == AM_HOIST_NONE;
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
            f->plan_first[f->n_planned] = ni;
            f->plan_last[f->n_planned] = last[v];
            f->plan_inner[f->n_planned++] = n->hoist == AM_HOIST_INNER;
            f->n_plan_inner += n->hoist == AM_HOIST_INNER;
        }
    }
    free(last);
    free(owner);
    free(planned);
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
    /* Symbols: parameter dims that are a single NAME, then one per node at most (the
     * trip_dim of an opset-3 while). */
    uint32_t max_syms = nodes->count;
    for (const am_json *p = am_json_first(L->d, params); p; p = am_json_next(L->d, p)) {
        const am_json *sh = am_json_get(L->d, p, "shape");
        if (sh && sh->type == AM_JSON_ARRAY) max_syms += sh->count;
    }
    am_symbols *sy = &f->syms;
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
    /* Values: parameters, then node outputs. */
    uint32_t n_values = f->n_params;
    for (const am_json *n = am_json_first(L->d, nodes); n; n = am_json_next(L->d, n)) {
        const am_json *outs = am_json_get(L->d, n, "outputs");
        if (!outs || outs->type != AM_JSON_ARRAY) return LFAIL(L, "node outputs must be an array");
        if (n_values > UINT32_MAX - outs->count) return LFAIL(L, "too many values");
        n_values += outs->count;
    }
    f->n_values = n_values;
    if ((st = alloc(L, n_values, sizeof(am_type *), &f->value_types)) != AMBER_OK) return st;
    am_name_ref *tab = (am_name_ref *)calloc(n_values ? n_values : 1, sizeof *tab);
    if (!tab) return am_fail(L->err, AMBER_ERR_NO_MEMORY, "out of memory loading the program");
    uint32_t nt = value_table(L, params, nodes, tab), vi = 0;
    const am_name_ref *dup = sort_names(tab, nt);
    static const char *const preq[] = {"name", "dtype", "shape"};
    for (const am_json *p = am_json_first(L->d, params); p && st == AMBER_OK;
         p = am_json_next(L->d, p), vi++) {
        if ((st = members(L, p, preq, 3, NULL, 0)) != AMBER_OK) break;
        if ((st = parse_type(L, p, sy, &f->param_types[vi])) != AMBER_OK) break;
        for (int k = 0; k < f->param_types[vi].rank; k++) {
            const am_json *dim = f->param_types[vi].dims[k];
            int sym = -1;
            if (dim->type == AM_JSON_STRING && am_dim_is_name(dim->str, dim->len))
                sym = am_symbols_find(sy, dim->str, dim->len);
            f->param_symbol[vi * AMBER_MAX_RANK + (uint32_t)k] = sym;
        }
        f->value_types[vi] = &f->param_types[vi];
        st = define_value(L, am_json_get(L->d, p, "name"), vi, dup);
        if (st == AMBER_OK) f->param_names[vi] = am_json_get(L->d, p, "name")->str;
    }
    if (st == AMBER_OK) st = alloc(L, f->n_nodes, sizeof(am_node), &f->nodes);
    uint32_t ni = 0;
    static const char *const nreq[] = {"op", "inputs", "attrs", "outputs"};
    for (const am_json *nj = st == AMBER_OK ? am_json_first(L->d, nodes) : NULL; nj && st == AMBER_OK;
         nj = am_json_next(L->d, nj), ni++) {
        am_node *n = &f->nodes[ni];
        size_t plen = strlen(L->path);
        snprintf(L->path + plen, sizeof L->path - plen, ".nodes[%u]", ni);
        if ((st = members(L, nj, nreq, 4, NULL, 0)) != AMBER_OK) break;
        const am_json *op = get_typed(L, nj, "op", AM_JSON_STRING, &st);
        const am_json *ins = op ? get_typed(L, nj, "inputs", AM_JSON_ARRAY, &st) : NULL;
        const am_json *attrs = ins ? get_typed(L, nj, "attrs", AM_JSON_OBJECT, &st) : NULL;
        const am_json *outs = am_json_get(L->d, nj, "outputs");
        if (!attrs) break;
        n->attrs = attrs;
        n->n_in = (int)ins->count;
        n->n_out = (int)outs->count;
        if ((st = alloc(L, ins->count, sizeof(uint32_t), &n->in)) != AMBER_OK ||
            (st = alloc(L, outs->count, sizeof(uint32_t), &n->out)) != AMBER_OK ||
            (st = alloc(L, outs->count, sizeof(am_type), &n->out_types)) != AMBER_OK)
            break;
        int k = 0;
        for (const am_json *in = am_json_first(L->d, ins); in; in = am_json_next(L->d, in), k++) {
            int64_t v = in->type == AM_JSON_STRING ? find_value(tab, nt, in->str, vi) : -1;
            if (v < 0) {
                st = LFAIL(L, "input %d is not a value defined before this node", k);
                break;
            }
            n->in[k] = (uint32_t)v;
        }
        if (st != AMBER_OK) break;
        /* The op: a primitive of opset 1 or an IR builtin. */
        if (!strcmp(op->str, "constant") || !strcmp(op->str, "weight")) {
            bool is_const = op->str[0] == 'c';
            n->kind = is_const ? AM_NODE_CONSTANT : AM_NODE_WEIGHT;
            const char *key = is_const ? "value" : "name";
            if ((st = members(L, attrs, &key, 1, NULL, 0)) != AMBER_OK) break;
            if (n->n_in != 0 || n->n_out != 1) {
                st = LFAIL(L, "%s takes no inputs and has one output", op->str);
                break;
            }
            am_type t;
            if (is_const) {
                const am_json *val = am_json_get(L->d, attrs, "value");
                bool by_tensor = am_json_get(L->d, val, "tensor") != NULL;
                static const char *const creq_t[] = {"dtype", "shape", "tensor"};
                static const char *const creq_d[] = {"dtype", "shape", "data"};
                if ((st = members(L, val, by_tensor ? creq_t : creq_d, 3, NULL, 0)) != AMBER_OK ||
                    (st = parse_type(L, val, NULL, &t)) != AMBER_OK)
                    break;
                n->tensor.dtype = t.dtype;
                n->tensor.rank = t.rank;
                for (int r = 0; r < t.rank; r++) n->tensor.shape[r] = t.dims[r]->i;
                st = by_tensor ? tensor_ref(L, am_json_get(L->d, val, "tensor"), &t, &n->tensor)
                               : inline_constant(L, am_json_get(L->d, val, "data"), &n->tensor);
            } else {
                const am_json *wn = am_json_get(L->d, attrs, "name");
                const am_json *w = wn && wn->type == AM_JSON_STRING ? find_weight(L, weights, wn->str) : NULL;
                if (!w) {
                    st = LFAIL(L, "weight node names an unknown weight");
                    break;
                }
                if ((st = parse_type(L, w, NULL, &t)) != AMBER_OK) break;
                st = tensor_ref(L, am_json_get(L->d, w, "tensor"), &t, &n->tensor);
            }
        } else if (!strcmp(op->str, "call")) {
            n->kind = AM_NODE_CALL;
            static const char *const key = "callee";
            if ((st = members(L, attrs, &key, 1, NULL, 0)) != AMBER_OK) break;
            if ((st = func_attr(L, attrs, "callee", &n->callee)) != AMBER_OK) break;
        } else if (!strcmp(op->str, "cond") || !strcmp(op->str, "while") ||
                   !strcmp(op->str, "scan")) {
            if (L->p->opset_version < 2) {
                st = LFAIL(L, "%s needs opset version 2, the file declares %lld", op->str,
                           (long long)L->p->opset_version);
                break;
            }
            if ((st = control_node(L, n, op->str, attrs, sy)) != AMBER_OK) break;
        } else {
            n->kind = AM_NODE_OP;
            n->op = am_op_find(op->str);
            if (!n->op) {
                st = LFAIL(L, "op \"%.60s\" is neither a primitive of opset 1 nor an IR builtin",
                           op->str);
                break;
            }
            if (L->p->opset_version < am_op_since(n->op)) {
                st = LFAIL(L, "%s needs opset version %d, the file declares %lld", n->op->name,
                           am_op_since(n->op), (long long)L->p->opset_version);
                break;
            }
            if ((n->op->n_inputs >= 0 ? n->n_in != n->op->n_inputs : n->n_in < 1) || n->n_out != 1) {
                st = LFAIL(L, "%s takes %d input(s) and has one output", n->op->name, n->op->n_inputs);
                break;
            }
            am_attrs a, *fixed;
            am_error e;
            if (am_attrs_decode(n->op, L->d, attrs, NULL, &a, &e) == AMBER_OK) { /* no dims */
                if ((st = alloc(L, 1, sizeof a, &fixed)) != AMBER_OK) break;
                *fixed = a;
                n->static_attrs = fixed;
            } else if ((st = am_attrs_decode(n->op, L->d, attrs, sy, &a, &e)) != AMBER_OK) {
                st = lnested(L, st, "", &e);
                break;
            }
        }
        if (st != AMBER_OK) break;
        k = 0;
        static const char *const oreq[] = {"name", "dtype", "shape"};
        for (const am_json *o = am_json_first(L->d, outs); o && st == AMBER_OK;
             o = am_json_next(L->d, o), k++) {
            if ((st = members(L, o, oreq, 3, NULL, 0)) != AMBER_OK) break;
            if ((st = parse_type(L, o, sy, &n->out_types[k])) != AMBER_OK) break;
            st = define_value(L, am_json_get(L->d, o, "name"), vi, dup);
            f->value_types[vi] = &n->out_types[k];
            n->out[k] = vi++;
        }
        if (st == AMBER_OK && n->kind == AM_NODE_OP) st = static_check(L, f, n);
        for (int j = 0; st == AMBER_OK && j < n->n_stacked; j++) {
            const am_type *t = &n->out_types[n->n_carries + j];
            const am_json *d0 = t->rank ? t->dims[0] : NULL;
            if (!d0 || d0->type != AM_JSON_STRING ||
                d0->len != sy->lens[n->trip_symbol] || memcmp(d0->str, sy->names[n->trip_symbol], d0->len))
                st = LFAIL(L, "stacked output %d must have the leading dim trip_dim", j);
        }
        L->path[plen] = '\0';
    }
    if (st == AMBER_OK) st = alloc(L, f->n_results, sizeof(uint32_t), &f->results);
    int k = 0;
    for (const am_json *r = st == AMBER_OK ? am_json_first(L->d, results) : NULL; r;
         r = am_json_next(L->d, r), k++) {
        int64_t v = r->type == AM_JSON_STRING ? find_value(tab, nt, r->str, UINT32_MAX) : -1;
        if (v < 0) {
            st = LFAIL(L, "result %d is not a value of the function", k);
            break;
        }
        f->results[k] = (uint32_t)v;
        f->data_dependent = f->data_dependent || uses_node_symbol(f, f->value_types[v]);
    }
    free(tab);
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
    loader *L;
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
static amber_status plan_same_params(loader *L) {
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
static amber_status mark_fixed_params(loader *L) {
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
    if ((st = plan_same_params(L)) != AMBER_OK) return st;
    for (fi = 0; fi < p->n_funcs; fi++) {
        if (L->fuse && (st = am_plan_attention(&p->funcs[fi], &p->mem, L->err)) != AMBER_OK)
            return st;
        if (L->fuse && (st = plan_fusion(L, &p->funcs[fi])) != AMBER_OK) return st;
        if (L->fuse && (st = am_plan_epilogues(&p->funcs[fi], &p->mem, L->err)) != AMBER_OK)
            return st;
        if ((st = plan_lifetimes(L, &p->funcs[fi])) != AMBER_OK) return st;
    }
    if ((st = mark_fixed_params(L)) != AMBER_OK) return st;
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
