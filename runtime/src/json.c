#include "json.h"

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DEPTH 64

typedef struct frame {
    uint32_t node, last; /* container and its last child (0 = none yet) */
} frame;

typedef struct parser {
    const char *s;
    size_t len, pos;
    am_json_doc *doc;
    const am_json_limits *lim;
    char *sout; /* next free byte in doc->strings */
    am_error *err;
    frame *stack; /* the open containers, innermost last */
    size_t depth, max_depth;
} parser;

static amber_status perr(parser *p, const char *what) {
    return am_fail(p->err, AMBER_ERR_FORMAT, "invalid JSON at byte %zu: %s", p->pos, what);
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static amber_status new_node(parser *p, am_json_type t, uint32_t *idx) {
    am_json_doc *d = p->doc;
    if (p->lim->max_nodes && d->n >= p->lim->max_nodes)
        return am_fail(p->err, AMBER_ERR_LIMIT, "JSON has more than %zu values", p->lim->max_nodes);
    if (d->n >= UINT32_MAX - 1)
        return am_fail(p->err, AMBER_ERR_LIMIT, "JSON has too many values");
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        am_json *nn = (am_json *)realloc(d->nodes, cap * sizeof(am_json));
        if (!nn) return am_fail(p->err, AMBER_ERR_NO_MEMORY, "out of memory parsing JSON");
        d->nodes = nn;
        d->cap = cap;
    }
    am_json *n = &d->nodes[d->n];
    memset(n, 0, sizeof *n);
    n->type = t;
    *idx = (uint32_t)d->n++;
    return AMBER_OK;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(parser *p, uint32_t *out) {
    if (p->len - p->pos < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p->s[p->pos + (size_t)i]);
        if (h < 0) return false;
        v = v << 4 | (uint32_t)h;
    }
    p->pos += 4;
    *out = v;
    return true;
}

static void put_utf8(parser *p, uint32_t cp) {
    char *o = p->sout;
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    p->sout = o;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) { k = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { k = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { k = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

/* Parses a string at p->pos (the opening quote) into the string buffer. */
static amber_status parse_string(parser *p, const char **out, size_t *out_len) {
    p->pos++; /* opening quote */
    char *start = p->sout;
    for (;;) {
        if (p->pos >= p->len) return perr(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) return perr(p, "control character in string");
        if (c == '\\') {
            if (p->pos + 1 >= p->len) return perr(p, "unterminated escape");
            char e = p->s[p->pos + 1];
            p->pos += 2;
            switch (e) {
            case '"': *p->sout++ = '"'; break;
            case '\\': *p->sout++ = '\\'; break;
            case '/': *p->sout++ = '/'; break;
            case 'b': *p->sout++ = '\b'; break;
            case 'f': *p->sout++ = '\f'; break;
            case 'n': *p->sout++ = '\n'; break;
            case 'r': *p->sout++ = '\r'; break;
            case 't': *p->sout++ = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (!read_hex4(p, &cp)) return perr(p, "bad \\u escape");
                if (cp >= 0xDC00 && cp <= 0xDFFF) return perr(p, "lone low surrogate");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                        return perr(p, "lone high surrogate");
                    p->pos += 2;
                    if (!read_hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return perr(p, "bad surrogate pair");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                put_utf8(p, cp);
                break;
            }
            default: return perr(p, "unknown escape");
            }
            continue;
        }
        size_t k = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
        if (!k) return perr(p, "invalid UTF-8 in string");
        memcpy(p->sout, p->s + p->pos, k);
        p->sout += k;
        p->pos += k;
    }
    *out_len = (size_t)(p->sout - start);
    *p->sout++ = '\0';
    *out = start;
    return AMBER_OK;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static amber_status parse_number(parser *p, am_json *n) {
    size_t b = p->pos;
    bool neg = false, integral = true;
    if (p->pos < p->len && p->s[p->pos] == '-') {
        neg = true;
        p->pos++;
    }
    if (p->pos >= p->len || !is_digit(p->s[p->pos])) return perr(p, "bad number");
    if (p->s[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->len && is_digit(p->s[p->pos])) return perr(p, "leading zero in number");
    } else {
        while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        integral = false;
        p->pos++;
        if (p->pos >= p->len || !is_digit(p->s[p->pos])) return perr(p, "bad fraction");
        while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        integral = false;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (p->pos >= p->len || !is_digit(p->s[p->pos])) return perr(p, "bad exponent");
        while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    }
    n->is_int = false;
    if (integral) {
        /* Exact: accumulate as a negative number so INT64_MIN fits. */
        int64_t v = 0;
        bool ok = true;
        for (size_t i = b + (neg ? 1 : 0); i < p->pos && ok; i++) {
            int d = p->s[i] - '0';
            ok = !__builtin_mul_overflow(v, 10, &v) && !__builtin_sub_overflow(v, d, &v);
        }
        if (ok && !neg && v == INT64_MIN) ok = false;
        if (!ok) {
            p->pos = b;
            return perr(p, "integer outside the signed 64-bit range");
        }
        n->is_int = true;
        n->i = neg ? v : -v;
    }
    /* strtod honours the C locale's decimal point; substitute it for '.'. */
    size_t tl = p->pos - b;
    const char *dp = localeconv()->decimal_point;
    size_t dpl = dp && *dp && strlen(dp) <= 4 ? strlen(dp) : 1;
    char small[128], *buf = small;
    if (tl + 8 > sizeof small && !(buf = (char *)malloc(tl + 8)))
        return am_fail(p->err, AMBER_ERR_NO_MEMORY, "out of memory parsing JSON");
    size_t o = 0;
    for (size_t i = b; i < p->pos; i++) {
        if (p->s[i] == '.' && dpl > 1) {
            memcpy(buf + o, dp, dpl);
            o += dpl;
        } else if (p->s[i] == '.') {
            buf[o++] = dp && *dp ? *dp : '.';
        } else {
            buf[o++] = p->s[i];
        }
    }
    buf[o] = '\0';
    n->num = strtod(buf, NULL);
    if (buf != small) free(buf);
    if (!isfinite(n->num)) {
        p->pos = b;
        return perr(p, "number overflows a double");
    }
    return AMBER_OK;
}

static int cmp_keys(const void *a, const void *b) {
    const am_json *x = *(const am_json *const *)a, *y = *(const am_json *const *)b;
    size_t m = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, m);
    if (c) return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Objects with at least this many members keep their members sorted by key, so that a
 * lookup is a binary search (a header may hold objects of millions of members). */
#define SORTED_MIN 8

/* Sorts the members of obj by key: rejects a duplicate key, and keeps the order of a
 * large object for am_json_get. */
static amber_status check_duplicates(parser *p, uint32_t obj) {
    am_json_doc *d = p->doc;
    uint32_t cnt = d->nodes[obj].count;
    if (cnt < 2) return AMBER_OK;
    const am_json **v = (const am_json **)malloc(cnt * sizeof *v);
    if (!v) return am_fail(p->err, AMBER_ERR_NO_MEMORY, "out of memory parsing JSON");
    size_t k = 0;
    for (uint32_t c = d->nodes[obj].first; c; c = d->nodes[c].next) v[k++] = &d->nodes[c];
    qsort(v, k, sizeof *v, cmp_keys);
    amber_status st = AMBER_OK;
    for (size_t i = 1; i < k; i++) {
        if (cmp_keys(&v[i - 1], &v[i]) == 0) {
            st = am_fail(p->err, AMBER_ERR_FORMAT, "invalid JSON: duplicate key \"%.100s\"", v[i]->key);
            break;
        }
    }
    if (st == AMBER_OK && k >= SORTED_MIN) {
        if (d->n_sorted + k > d->cap_sorted) {
            size_t cap = d->cap_sorted ? d->cap_sorted : 256;
            while (cap < d->n_sorted + k) cap *= 2;
            uint32_t *ns = cap <= SIZE_MAX / sizeof *ns && cap < UINT32_MAX
                               ? (uint32_t *)realloc(d->sorted, cap * sizeof *ns) : NULL;
            if (!ns) st = am_fail(p->err, AMBER_ERR_NO_MEMORY, "out of memory parsing JSON");
            else d->sorted = ns, d->cap_sorted = cap;
        }
        if (st == AMBER_OK) {
            /* node indices: the pointers are into d->nodes, which no longer moves here */
            for (size_t i = 0; i < k; i++) d->sorted[d->n_sorted + i] = (uint32_t)(v[i] - d->nodes);
            d->nodes[obj].sorted = (uint32_t)d->n_sorted + 1;
            d->n_sorted += k;
        }
    }
    free(v);
    return st;
}

/* In an object, the key and the ':' before a member's value. */
static amber_status member_key(parser *p, const char **key, size_t *key_len) {
    if (p->pos >= p->len || p->s[p->pos] != '"') return perr(p, "expected object key");
    amber_status st = parse_string(p, key, key_len);
    if (st != AMBER_OK) return st;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':') return perr(p, "expected ':'");
    p->pos++;
    skip_ws(p);
    return AMBER_OK;
}

/* The type of the value starting at the current byte. */
static amber_status value_type(parser *p, am_json_type *t) {
    if (p->pos >= p->len) return perr(p, "unexpected end of input");
    char c = p->s[p->pos];
    switch (c) {
    case '{': *t = AM_JSON_OBJECT; return AMBER_OK;
    case '[': *t = AM_JSON_ARRAY; return AMBER_OK;
    case '"': *t = AM_JSON_STRING; return AMBER_OK;
    case 't': *t = AM_JSON_TRUE; return AMBER_OK;
    case 'f': *t = AM_JSON_FALSE; return AMBER_OK;
    case 'n': *t = AM_JSON_NULL; return AMBER_OK;
    default:
        if (c == '-' || is_digit(c)) {
            *t = AM_JSON_NUMBER;
            return AMBER_OK;
        }
        return perr(p, "unexpected character");
    }
}

/* A new value node, the last child of the open container if there is one. */
static amber_status add_value(parser *p, am_json_type t, const char *key, size_t key_len,
                              uint32_t *idx) {
    amber_status st = new_node(p, t, idx);
    if (st != AMBER_OK || !p->depth) return st;
    am_json_doc *doc = p->doc;
    frame *top = &p->stack[p->depth - 1];
    am_json *n = &doc->nodes[*idx], *parent = &doc->nodes[top->node];
    if (parent->type == AM_JSON_OBJECT) {
        n->key = key;
        n->key_len = key_len;
    }
    if (top->last) doc->nodes[top->last].next = *idx;
    else parent->first = *idx;
    top->last = *idx;
    parent->count++;
    return AMBER_OK;
}

/* The value of node idx: a scalar is read whole, a container is entered (*opened: its
 * first child comes next) unless it is empty. */
static amber_status read_value(parser *p, uint32_t idx, bool *opened) {
    am_json *n = &p->doc->nodes[idx];
    am_json_type t = n->type;
    *opened = false;
    if (t == AM_JSON_STRING) return parse_string(p, &n->str, &n->len);
    if (t == AM_JSON_NUMBER) return parse_number(p, n);
    if (t == AM_JSON_TRUE || t == AM_JSON_FALSE || t == AM_JSON_NULL) {
        const char *lit = t == AM_JSON_TRUE ? "true" : t == AM_JSON_FALSE ? "false" : "null";
        size_t ll = strlen(lit);
        if (p->len - p->pos < ll || memcmp(p->s + p->pos, lit, ll) != 0)
            return perr(p, "bad literal");
        p->pos += ll;
        return AMBER_OK;
    }
    if (p->depth >= p->max_depth)
        return am_fail(p->err, AMBER_ERR_LIMIT, "JSON nested deeper than %zu levels at byte %zu",
                       p->max_depth, p->pos);
    p->stack[p->depth].node = idx;
    p->stack[p->depth].last = 0;
    p->depth++;
    p->pos++;
    skip_ws(p);
    char close = t == AM_JSON_OBJECT ? '}' : ']';
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
    } else {
        *opened = true;
    }
    return AMBER_OK;
}

/* After a complete value: closes containers or moves to the next element; *done at the
 * end of the outermost value. */
static amber_status after_value(parser *p, bool *done) {
    for (;;) {
        skip_ws(p);
        if (!p->depth) {
            *done = true;
            return p->pos != p->len ? perr(p, "trailing characters after JSON value") : AMBER_OK;
        }
        frame *f = &p->stack[p->depth - 1];
        char close = p->doc->nodes[f->node].type == AM_JSON_OBJECT ? '}' : ']';
        if (p->pos >= p->len) return perr(p, "unexpected end of input");
        if (p->s[p->pos] == ',') {
            p->pos++;
            skip_ws(p);
            if (p->pos < p->len && (p->s[p->pos] == ']' || p->s[p->pos] == '}'))
                return perr(p, "trailing comma");
            return AMBER_OK;
        }
        if (p->s[p->pos] != close) return perr(p, "expected ',' or closing bracket");
        p->pos++;
        amber_status st;
        if (close == '}' && (st = check_duplicates(p, f->node)) != AMBER_OK) return st;
        p->depth--;
    }
}

amber_status am_json_parse(const char *text, size_t len, const am_json_limits *lim,
                           am_json_doc *doc, am_error *err) {
    static const am_json_limits no_limits = {0, 0, 0};
    memset(doc, 0, sizeof *doc);
    if (!text && len) return am_fail(err, AMBER_ERR_INVALID_ARGUMENT, "JSON text is NULL");
    if (!lim) lim = &no_limits;
    if (lim->max_bytes && len > lim->max_bytes)
        return am_fail(err, AMBER_ERR_LIMIT, "JSON text of %zu bytes exceeds the limit of %zu",
                       len, lim->max_bytes);
    size_t max_depth = lim->max_depth ? lim->max_depth : DEFAULT_DEPTH;
    if (len >= SIZE_MAX - 1) return am_fail(err, AMBER_ERR_LIMIT, "JSON text too large");
    doc->strings = (char *)malloc(len + 1); /* unescaped strings never grow */
    frame *stack = (frame *)malloc((max_depth + 1) * sizeof(frame));
    if (!doc->strings || !stack) {
        free(stack);
        return am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory parsing JSON");
    }
    parser P = {text, len, 0, doc, lim, doc->strings, err, stack, 0, max_depth}, *p = &P;
    amber_status st = AMBER_OK;
    bool done = false;
    const char *key = NULL;
    size_t key_len = 0;
    skip_ws(p);
    while (!done && st == AMBER_OK) {
        /* At this point a value is expected (possibly after a key in an object). */
        const frame *top = p->depth ? &stack[p->depth - 1] : NULL;
        uint32_t idx = 0;
        am_json_type t = AM_JSON_NULL;
        bool opened = false;
        if (top && doc->nodes[top->node].type == AM_JSON_OBJECT &&
            (st = member_key(p, &key, &key_len)) != AMBER_OK)
            break;
        if ((st = value_type(p, &t)) != AMBER_OK ||
            (st = add_value(p, t, key, key_len, &idx)) != AMBER_OK ||
            (st = read_value(p, idx, &opened)) != AMBER_OK)
            break;
        if (!opened) st = after_value(p, &done); /* else its first child comes next */
    }
    free(stack);
    return st;
}

void am_json_free(am_json_doc *doc) {
    free(doc->nodes);
    free(doc->strings);
    free(doc->sorted);
    memset(doc, 0, sizeof *doc);
}

const am_json *am_json_get(const am_json_doc *d, const am_json *obj, const char *key) {
    if (!obj || obj->type != AM_JSON_OBJECT) return NULL;
    size_t kl = strlen(key);
    if (obj->sorted) {
        const uint32_t *v = d->sorted + (obj->sorted - 1);
        size_t lo = 0, hi = obj->count;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            const am_json *c = &d->nodes[v[mid]];
            size_t m = c->key_len < kl ? c->key_len : kl;
            int r = memcmp(c->key, key, m);
            if (!r) r = (c->key_len > kl) - (c->key_len < kl);
            if (!r) return c;
            if (r < 0) lo = mid + 1;
            else hi = mid;
        }
        return NULL;
    }
    for (const am_json *c = am_json_first(d, obj); c; c = am_json_next(d, c))
        if (c->key_len == kl && memcmp(c->key, key, kl) == 0) return c;
    return NULL;
}

const am_json *am_json_at(const am_json_doc *d, const am_json *arr, size_t i) {
    if (!arr || arr->type != AM_JSON_ARRAY) return NULL;
    const am_json *c = am_json_first(d, arr);
    while (c && i--) c = am_json_next(d, c);
    return c;
}

bool am_utf8_valid(const void *data, size_t n, size_t *bad) {
    const unsigned char *s = (const unsigned char *)data;
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_len(s + i, n - i);
        if (!k) {
            if (bad) *bad = i;
            return false;
        }
        i += k;
    }
    return true;
}
