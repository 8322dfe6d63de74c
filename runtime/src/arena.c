#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define AM_ARENA_ALIGN 64
#define AM_ARENA_MIN_BLOCK ((size_t)64 * 1024)

struct am_arena_block {
    am_arena_block *next;
    size_t size; /* usable bytes after the aligned header */
    size_t used;
    size_t grown; /* the arena's `grown` once this block was added */
    void *raw;   /* what malloc returned */
    unsigned char *base;
};

void am_arena_init(am_arena *a, size_t limit) {
    a->head = NULL;
    a->held = 0;
    a->peak = 0;
    a->since = 0;
    a->limit = limit;
    a->hint = 0;
    a->grown = 0;
}

static size_t round_up(size_t n) { return (n + (AM_ARENA_ALIGN - 1)) & ~(size_t)(AM_ARENA_ALIGN - 1); }

amber_status am_arena_alloc(am_arena *a, size_t size, void **out, am_error *err) {
    *out = NULL;
    if (size > SIZE_MAX / 2)
        return am_fail(err, AMBER_ERR_LIMIT, "allocation of %zu bytes is too large", size);
    size_t need = round_up(size ? size : 1);
    am_arena_block *b = a->head;
    if (b && b->size - b->used >= need) {
        *out = b->base + b->used;
        b->used += need;
        return AMBER_OK;
    }
    size_t bsize = need > AM_ARENA_MIN_BLOCK ? need : AM_ARENA_MIN_BLOCK;
    if (!b && a->hint > bsize) bsize = a->hint;
    /* Geometric growth keeps the block count small; it doubles the blocks made for small
     * requests, not one made to the size of a large request (which would double it). */
    if (b && a->grown && bsize < a->grown * 2 && a->grown * 2 >= need && a->grown <= SIZE_MAX / 4)
        bsize = a->grown * 2;
    size_t total;
    if (!am_add_size(bsize, sizeof(am_arena_block) + 2 * AM_ARENA_ALIGN, &total))
        return am_fail(err, AMBER_ERR_LIMIT, "allocation of %zu bytes is too large", size);
    if (a->limit && (a->held + bsize > a->limit || a->held + bsize < a->held)) {
        if (a->held + need <= a->limit && a->held + need >= a->held) {
            bsize = need; /* fall back to an exact-size block under the limit */
            total = bsize + sizeof(am_arena_block) + 2 * AM_ARENA_ALIGN;
        } else {
            return am_fail(err, AMBER_ERR_LIMIT,
                           "memory limit of %zu bytes exceeded (holding %zu, need %zu more)",
                           a->limit, a->held, need);
        }
    }
    void *raw = malloc(total);
    if (!raw) return am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory allocating %zu bytes", total);
    am_arena_block *nb = (am_arena_block *)raw;
    uintptr_t p = (uintptr_t)((unsigned char *)raw + sizeof(am_arena_block));
    p = (p + (AM_ARENA_ALIGN - 1)) & ~(uintptr_t)(AM_ARENA_ALIGN - 1);
    if (bsize > need || !a->grown) a->grown = bsize; /* not sized by this request alone */
    nb->grown = a->grown;
    nb->raw = raw;
    nb->base = (unsigned char *)p;
    nb->size = bsize;
    nb->used = need;
    nb->next = a->head;
    a->head = nb;
    a->held += bsize;
    if (a->held > a->peak) a->peak = a->held;
    if (a->held > a->since) a->since = a->held;
    *out = nb->base;
    return AMBER_OK;
}

amber_status am_arena_calloc(am_arena *a, size_t n, size_t size, void **out, am_error *err) {
    size_t bytes;
    if (!am_mul_size(n, size, &bytes)) {
        *out = NULL;
        return am_fail(err, AMBER_ERR_LIMIT, "allocation of %zu x %zu bytes overflows", n, size);
    }
    amber_status st = am_arena_alloc(a, bytes, out, err);
    if (st == AMBER_OK && bytes) memset(*out, 0, bytes);
    return st;
}

void am_arena_reset(am_arena *a) {
    /* One block is kept and reused; if the last run needed several (at once, or one
     * after another as loops released theirs), they are replaced by one block of the
     * most they held at once on the next allocation. */
    size_t total = a->since;
    a->since = a->held;
    if (a->head && !a->head->next && total <= a->head->size) {
        a->head->used = 0;
        return;
    }
    am_arena_free(a);
    a->since = 0;
    if (!a->limit || total <= a->limit) a->hint = total;
}

void am_arena_free(am_arena *a) {
    am_arena_block *b = a->head;
    while (b) {
        am_arena_block *next = b->next;
        free(b->raw);
        b = next;
    }
    a->head = NULL;
    a->held = 0;
    a->grown = 0;
}

am_arena_mark am_arena_get_mark(const am_arena *a) {
    am_arena_mark m = {a->head, a->head ? a->head->used : 0};
    return m;
}

void am_arena_release(am_arena *a, am_arena_mark m) {
    while (a->head && a->head != m.head) {
        am_arena_block *b = a->head;
        a->head = b->next;
        a->held -= b->size;
        free(b->raw);
    }
    if (a->head) a->head->used = m.used;
    a->grown = a->head ? a->head->grown : 0;
}
