/* Data kernels derive from fixed inputs and keep for a session's lifetime (see am_keep
 * in ops.h). A model has few such inputs (its weights), so a linear search will do. */
#include "ops.h"

#include <stdlib.h>

void am_keep_init(am_keep *k, am_keep_alloc_fn alloc, am_keep_release_fn release, void *owner) {
    k->alloc = alloc;
    k->release = release;
    k->owner = owner;
    k->off = false;
    k->n = k->cap = 0;
    k->items = NULL;
    k->parent = NULL;
}

static void release_all(am_keep *k) {
    for (size_t i = 0; i < k->n; i++) k->release(k->owner, k->items[i].data, k->items[i].size);
    k->n = 0;
}

void am_keep_free(am_keep *k) {
    release_all(k);
    free(k->items);
    k->cap = 0;
    k->items = NULL;
}

bool am_keep_drop(am_keep *k) {
    bool any = k->n > 0;
    release_all(k);
    k->off = true;
    return any;
}

void *am_keep_find(const am_keep *k, const void *key, uint32_t kind, int64_t d0, int64_t d1) {
    for (size_t i = 0; i < k->n; i++) {
        const am_kept *e = &k->items[i];
        if (e->key == key && e->kind == kind && e->d0 == d0 && e->d1 == d1) return e->data;
    }
    return k->parent ? am_keep_find(k->parent, key, kind, d0, d1) : NULL;
}

void *am_keep_add(am_keep *k, const void *key, uint32_t kind, int64_t d0, int64_t d1,
                  size_t size) {
    if (k->off) return NULL;
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 16;
        am_kept *items = (am_kept *)realloc(k->items, cap * sizeof *items);
        if (!items) return NULL;
        k->items = items;
        k->cap = cap;
    }
    void *data = NULL;
    if (k->alloc(k->owner, size, &data) != AMBER_OK || !data) return NULL;
    k->items[k->n++] = (am_kept){key, kind, d0, d1, data, size};
    return data;
}
