/* Dim expressions (docs/format.md H.2), evaluated in checked 64-bit arithmetic:
 *   expr := ["-"] term (("+" | "-") term)*    term := factor (("*" | "//") factor)*
 *   factor := INT | NAME | "(" expr ")"        (the right operand of // is an INT >= 1)
 * Recursion follows parentheses only, which are limited to 64 levels. An expression
 * whose expansion may exceed 1024 terms (a sum adds its terms' bounds, a product
 * multiplies its factors', // keeps its left operand's) is refused with
 * AMBER_ERR_LIMIT, as the Python reader must, whose canonical form expands products. */
#include "ops.h"

#include <string.h>

#define MAX_EXPR 4096
#define MAX_PARENS 64
#define MAX_TERMS 1024

typedef struct dparser {
    const char *s;
    size_t n, pos;
    int depth;
    const am_symbols *syms;
    am_error *err;
} dparser;

static amber_status dfail(dparser *p, const char *what) {
    return am_fail(p->err, AMBER_ERR_FORMAT, "dim expression \"%.*s\": %s at character %zu",
                   (int)(p->n > 200 ? 200 : p->n), p->s, what, p->pos);
}

static void dws(dparser *p) {
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t')) p->pos++;
}

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_dig(char c) { return c >= '0' && c <= '9'; }

bool am_dim_is_name(const char *s, size_t len) {
    if (!len || !is_alpha(s[0])) return false;
    for (size_t i = 1; i < len; i++)
        if (!is_alpha(s[i]) && !is_dig(s[i])) return false;
    return true;
}

static amber_status expr(dparser *p, int64_t *out, uint64_t *terms);

static amber_status check_terms(dparser *p, uint64_t terms) {
    if (terms <= MAX_TERMS) return AMBER_OK;
    return am_fail(p->err, AMBER_ERR_LIMIT,
                   "dim expression \"%.*s\" may expand to more than %d terms (the limit of "
                   "docs/format.md H.2)", (int)(p->n > 200 ? 200 : p->n), p->s, MAX_TERMS);
}

static amber_status integer(dparser *p, int64_t *out) {
    size_t b = p->pos;
    int64_t v = 0;
    while (p->pos < p->n && is_dig(p->s[p->pos])) {
        if (p->pos - b >= 19) return dfail(p, "integer with more than 19 digits");
        if (!am_mul_i64(v, 10, &v) || !am_add_i64(v, p->s[p->pos] - '0', &v))
            return dfail(p, "integer overflows int64");
        p->pos++;
    }
    if (p->pos == b) return dfail(p, "expected an integer");
    *out = v;
    return AMBER_OK;
}

static amber_status factor(dparser *p, int64_t *out, uint64_t *terms) {
    *terms = 1;
    dws(p);
    if (p->pos >= p->n) return dfail(p, "unexpected end");
    char c = p->s[p->pos];
    if (is_dig(c)) return integer(p, out);
    if (is_alpha(c)) {
        size_t b = p->pos;
        while (p->pos < p->n && (is_alpha(p->s[p->pos]) || is_dig(p->s[p->pos]))) p->pos++;
        size_t len = p->pos - b;
        const am_symbols *sy = p->syms;
        int i = sy ? am_symbols_find(sy, p->s + b, len) : -1;
        if (i >= 0 && sy->check) {
            *out = 1;
            return AMBER_OK;
        }
        if (i >= 0 && sy->values[i] >= 0) {
            *out = sy->values[i];
            return AMBER_OK;
        }
        p->pos = b;
        return am_fail(p->err, AMBER_ERR_FORMAT,
                       "dim expression \"%.*s\" uses symbol \"%.*s\" that no parameter binds",
                       (int)(p->n > 200 ? 200 : p->n), p->s, (int)(len > 64 ? 64 : len), p->s + b);
    }
    if (c == '(') {
        if (++p->depth > MAX_PARENS) return dfail(p, "parentheses nested deeper than 64");
        p->pos++;
        amber_status st = expr(p, out, terms);
        if (st != AMBER_OK) return st;
        dws(p);
        if (p->pos >= p->n || p->s[p->pos] != ')') return dfail(p, "expected ')'");
        p->pos++;
        p->depth--;
        return AMBER_OK;
    }
    return dfail(p, "unexpected character");
}

static amber_status term(dparser *p, int64_t *out, uint64_t *terms) {
    amber_status st = factor(p, out, terms);
    for (;;) {
        if (st != AMBER_OK) return st;
        dws(p);
        if (p->pos < p->n && p->s[p->pos] == '*') {
            p->pos++;
            int64_t r = 0;
            uint64_t rt = 1;
            if ((st = factor(p, &r, &rt)) != AMBER_OK) return st;
            *terms *= rt; /* both are at most MAX_TERMS: no overflow */
            if ((st = check_terms(p, *terms)) != AMBER_OK) return st;
            if (!am_mul_i64(*out, r, out)) return dfail(p, "overflow");
        } else if (p->n - p->pos >= 2 && p->s[p->pos] == '/' && p->s[p->pos + 1] == '/') {
            p->pos += 2;
            dws(p);
            int64_t k = 0;
            if ((st = integer(p, &k)) != AMBER_OK) return st;
            if (k < 1) return dfail(p, "division by an integer below 1");
            int64_t q = *out / k;
            if (*out % k != 0 && *out < 0) q--;
            *out = q;
        } else {
            return AMBER_OK;
        }
    }
}

static amber_status expr(dparser *p, int64_t *out, uint64_t *terms) {
    dws(p);
    bool neg = false;
    if (p->pos < p->n && p->s[p->pos] == '-') {
        neg = true;
        p->pos++;
    }
    amber_status st = term(p, out, terms);
    if (st != AMBER_OK) return st;
    if (neg && !am_mul_i64(*out, -1, out)) return dfail(p, "overflow");
    for (;;) {
        dws(p);
        if (p->pos >= p->n || (p->s[p->pos] != '+' && p->s[p->pos] != '-')) return AMBER_OK;
        char op = p->s[p->pos++];
        int64_t r = 0;
        uint64_t rt = 1;
        if ((st = term(p, &r, &rt)) != AMBER_OK) return st;
        *terms += rt;
        if ((st = check_terms(p, *terms)) != AMBER_OK) return st;
        bool ok = op == '+' ? am_add_i64(*out, r, out) : !__builtin_sub_overflow(*out, r, out);
        if (!ok) return dfail(p, "overflow");
    }
}

amber_status am_dim_eval(const char *s, size_t len, const am_symbols *syms, int64_t *out,
                         am_error *err) {
    dparser P = {s, len, 0, 0, syms, err};
    if (len > MAX_EXPR)
        return am_fail(err, AMBER_ERR_FORMAT, "dim expression longer than %d characters", MAX_EXPR);
    uint64_t terms = 1;
    amber_status st = expr(&P, out, &terms);
    if (st != AMBER_OK) return st;
    dws(&P);
    if (P.pos != len) return dfail(&P, "unexpected character");
    return AMBER_OK;
}

static uint32_t sym_hash(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

int am_symbols_find(const am_symbols *sy, const char *name, size_t len) {
    if (!sy->cap) {
        for (int i = 0; i < sy->n; i++)
            if (sy->lens[i] == len && !memcmp(sy->names[i], name, len)) return i;
        return -1;
    }
    for (uint32_t h = sym_hash(name, len) & (sy->cap - 1);; h = (h + 1) & (sy->cap - 1)) {
        uint32_t k = sy->slots[h];
        if (!k) return -1;
        if (sy->lens[k - 1] == len && !memcmp(sy->names[k - 1], name, len)) return (int)k - 1;
    }
}

void am_symbols_add(am_symbols *sy, const char *name, size_t len) {
    if (sy->cap) {
        uint32_t h = sym_hash(name, len) & (sy->cap - 1);
        while (sy->slots[h]) h = (h + 1) & (sy->cap - 1);
        sy->slots[h] = (uint32_t)sy->n + 1;
    }
    sy->names[sy->n] = name;
    sy->lens[sy->n++] = len;
}
