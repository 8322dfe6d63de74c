/* Internal declarations shared by the runtime's translation units (not installed). */
#ifndef AMBER_INTERNAL_H
#define AMBER_INTERNAL_H

#include "amber.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "amber runtime: only little-endian hosts are supported"
#endif

#define AM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define AM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define AM_PRINTF(f, a)
#endif

/* ---------------------------------------------------------------- errors (status.c) */

#define AM_ERR_MSG 512

/* An error slot owned by one model or session: the last failure's status and message. */
typedef struct am_error {
    amber_status status;
    char msg[AM_ERR_MSG];
} am_error;

/* Records status + formatted message in err (if non-NULL) and returns status. */
/* The message is stored escaped (am_escape): names from a file cannot put control
 * characters into it. */
amber_status am_fail(am_error *err, amber_status status, const char *fmt, ...) AM_PRINTF(3, 4);
/* s[0..len) made safe to print into out[0..cap) (always NUL-terminated; cap >= 4):
 * backslash and every control, format or line-separator character (C0, DEL, C1, invalid
 * UTF-8 bytes as \xNN; U+061C, U+200B-U+200F, U+2028-U+202E, U+2060-U+206F, U+FEFF as
 * \uNNNN) become escapes; what does not fit ends in "...". Returns the length written. */
size_t am_escape(const char *s, size_t len, char *out, size_t cap);
void am_error_clear(am_error *err);

/* *dst = *src for the fields in use: dims past the rank are left as they were. NOTE: an
 * amber_tensor is 272 bytes, nearly all AMBER_MAX_RANK dims that are rarely used; the
 * interpreter copies several per node. */
static inline void am_tensor_copy(amber_tensor *dst, const amber_tensor *src) {
    dst->dtype = src->dtype;
    dst->rank = src->rank;
    dst->data = src->data;
    for (int i = 0; i < src->rank && i < AMBER_MAX_RANK; i++) dst->shape[i] = src->shape[i];
}

/* Overflow-checked arithmetic on non-negative sizes; false on overflow. */
static inline bool am_mul_i64(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool am_add_i64(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
static inline bool am_mul_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool am_add_size(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* ---------------------------------------------------------------- arena (arena.c) */

/* Bump allocator. Memory is released all at once by am_arena_reset (which keeps the
 * largest block for reuse) or am_arena_free. `limit` caps the bytes held (0 = none). */
typedef struct am_arena_block am_arena_block;
typedef struct am_arena {
    am_arena_block *head;
    size_t held;  /* bytes in all blocks */
    size_t peak;  /* largest `held` seen */
    size_t since; /* largest `held` since the last reset */
    size_t limit;
    size_t hint;  /* size for the next new block: what the last run needed */
    size_t grown; /* size of the last block sized by doubling (not by one large request) */
} am_arena;

void am_arena_init(am_arena *a, size_t limit);
/* Zero-size requests return a valid unique pointer. Alignment is 64 bytes. */
amber_status am_arena_alloc(am_arena *a, size_t size, void **out, am_error *err);
amber_status am_arena_calloc(am_arena *a, size_t n, size_t size, void **out, am_error *err);
void am_arena_reset(am_arena *a);
/* Everything allocated after a mark is released by am_arena_release(mark). */
typedef struct am_arena_mark {
    am_arena_block *head;
    size_t used;
} am_arena_mark;
am_arena_mark am_arena_get_mark(const am_arena *a);
void am_arena_release(am_arena *a, am_arena_mark m);
void am_arena_free(am_arena *a);

/* ---------------------------------------------------------------- SHA-256 (sha256.c) */

typedef struct am_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} am_sha256;

void am_sha256_init(am_sha256 *s);
void am_sha256_update(am_sha256 *s, const void *data, size_t n);
void am_sha256_final(am_sha256 *s, uint8_t digest[32]);
void am_sha256_digest(const void *data, size_t n, uint8_t digest[32]);
/* Lower-case hex of a digest into out[65]. */
void am_sha256_hex(const uint8_t digest[32], char out[65]);

/* ---------------------------------------------------------------- tensors (tensor.c) */

bool am_dtype_valid(int dtype);
/* Validates t's descriptor (not its data) and computes numel and nbytes. */
amber_status am_tensor_check(const amber_tensor *t, int64_t *numel, size_t *nbytes,
                             am_error *err);
int64_t am_numel(const amber_tensor *t); /* t must have passed am_tensor_check */
/* Formats a shape as "(2, 3)" into buf. */
const char *am_shape_str(const int64_t *shape, int rank, char *buf, size_t n);

#endif /* AMBER_INTERNAL_H */
