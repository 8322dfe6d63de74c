/* libFuzzer harness of the JSON header parser, which the public API reaches only behind
 * the preamble checks and the UTF-8 check of the loader. Any byte string must parse or
 * fail with a status; a parsed document is walked in full to check its links. */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void walk(const am_json_doc *doc) {
    size_t acc = 0;
    for (size_t i = 0; i < doc->n; i++) {
        const am_json *n = &doc->nodes[i];
        if (n->key) acc += strlen(n->key) + n->key_len;
        if (n->type == AM_JSON_STRING) acc += strlen(n->str) + n->len;
        if (n->type == AM_JSON_OBJECT || n->type == AM_JSON_ARRAY) {
            uint32_t seen = 0;
            for (const am_json *c = am_json_first(doc, n); c; c = am_json_next(doc, c)) {
                seen++;
                /* Lookup finds each key of a small object (keys with NUL excepted). */
                if (n->type == AM_JSON_OBJECT && n->count <= 64 && strlen(c->key) == c->key_len &&
                    am_json_get(doc, n, c->key) != c)
                    __builtin_trap();
            }
            if (seen != n->count ||
                (n->type == AM_JSON_ARRAY && n->count && !am_json_at(doc, n, n->count - 1)))
                __builtin_trap();
        }
    }
    sink = acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy, so ASan sees any read past the end of the text. */
    char *text = (char *)malloc(size ? size : 1);
    if (!text) return 0;
    if (size) memcpy(text, data, size);
    size_t bad;
    (void)am_utf8_valid(text, size, &bad);
    am_json_limits lim = {1u << 20, 64, 1u << 16};
    am_json_doc doc;
    memset(&doc, 0, sizeof doc);
    am_error err;
    if (am_json_parse(text, size, &lim, &doc, &err) == AMBER_OK) {
        if (!am_json_root(&doc)) __builtin_trap();
        walk(&doc);
    }
    am_json_free(&doc);
    free(text);
    return 0;
}
