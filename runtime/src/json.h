/* A strict, bounded, non-recursive JSON (RFC 8259) parser. Rejects duplicate object
 * keys, invalid UTF-8, lone surrogates, comments, trailing commas, NaN/Infinity, leading
 * zeros, trailing content, integer literals outside int64 and non-finite doubles. */
#ifndef AMBER_JSON_H
#define AMBER_JSON_H

#include "internal.h"

typedef enum am_json_type {
    AM_JSON_NULL,
    AM_JSON_FALSE,
    AM_JSON_TRUE,
    AM_JSON_NUMBER,
    AM_JSON_STRING,
    AM_JSON_ARRAY,
    AM_JSON_OBJECT
} am_json_type;

/* Nodes live in one array in document order; links are indices (0 = none, as the root
 * is node 0 and is nobody's child or sibling). */
typedef struct am_json {
    am_json_type type;
    uint32_t count;      /* children of an array or object */
    uint32_t first;      /* first child */
    uint32_t next;       /* next sibling */
    const char *key;     /* member name if the parent is an object (NUL-terminated) */
    size_t key_len;
    const char *str;     /* string value, unescaped UTF-8, NUL-terminated */
    size_t len;
    double num;          /* every number */
    int64_t i;           /* exact value when is_int */
    bool is_int;         /* integer literal (no fraction/exponent); always fits int64 */
    uint32_t sorted;     /* object of SORTED_MIN or more members: its members' node indices
                            sorted by key start at doc->sorted[sorted - 1]; 0 = none */
} am_json;

typedef struct am_json_doc {
    am_json *nodes;
    size_t n;
    size_t cap;
    char *strings;
    uint32_t *sorted;    /* per large object, its members sorted by key (am_json.sorted) */
    size_t n_sorted, cap_sorted;
} am_json_doc;

typedef struct am_json_limits {
    size_t max_bytes; /* 0 = no limit */
    size_t max_depth; /* nesting of arrays/objects; 0 = 64 */
    size_t max_nodes; /* 0 = no limit beyond max_bytes */
} am_json_limits;

/* Parses text[0..len) into doc (free with am_json_free, also after a failure). */
amber_status am_json_parse(const char *text, size_t len, const am_json_limits *lim,
                           am_json_doc *doc, am_error *err);
void am_json_free(am_json_doc *doc);

/* Whether j is an integer literal (NULL: no); its value to *v. */
static inline bool am_json_int(const am_json *j, int64_t *v) {
    if (!j || j->type != AM_JSON_NUMBER || !j->is_int) return false;
    *v = j->i;
    return true;
}
static inline const am_json *am_json_root(const am_json_doc *d) { return d->n ? &d->nodes[0] : NULL; }
static inline const am_json *am_json_first(const am_json_doc *d, const am_json *n) {
    return n->first ? &d->nodes[n->first] : NULL;
}
static inline const am_json *am_json_next(const am_json_doc *d, const am_json *n) {
    return n->next ? &d->nodes[n->next] : NULL;
}
/* True if data[0..n) is well-formed UTF-8 (else *bad = offset of the first bad byte). */
bool am_utf8_valid(const void *data, size_t n, size_t *bad);
/* Member `key` of object obj, or NULL (binary search in large objects). */
const am_json *am_json_get(const am_json_doc *d, const am_json *obj, const char *key);
/* Element i of array arr, or NULL (linear time). */
const am_json *am_json_at(const am_json_doc *d, const am_json *arr, size_t i);

#endif
