/* Data movement: reshape, transpose, broadcast_to, slice, pad, concat, take and
 * scatter_add. Index values are checked before use; out-of-range is a status. */
#include "ops.h"

#include <math.h>
#include <string.h>

#define COPY(NAME, T)                                                         \
    static void NAME(char **p, const int64_t *s, int64_t n, void *ud) {       \
        (void)ud;                                                             \
        if (s[0] == (int64_t)sizeof(T) && s[1] == (int64_t)sizeof(T)) {       \
            memcpy(p[0], p[1], (size_t)n * sizeof(T));                        \
            return;                                                           \
        }                                                                     \
        for (int64_t i = 0; i < n; i++) {                                     \
            T v;                                                              \
            memcpy(&v, p[1] + i * s[1], sizeof v);                            \
            memcpy(p[0] + i * s[0], &v, sizeof v);                            \
        }                                                                     \
    }
COPY(copy1, uint8_t)
COPY(copy2, uint16_t)
COPY(copy4, uint32_t)
COPY(copy8, uint64_t)

/* Rows shorter than this (a slice of a few columns, a pooling window's view) are copied
 * a block at a time: the row function then walks the last two dims itself, and the
 * iterator's work per call is paid per block instead of per row. */
#define SHORT_ROW 64

/* The innermost dim of a block: its extent and the byte strides of dst and src. */
typedef struct short_rows {
    int64_t n, s[2];
} short_rows;

#define COPY_ROWS(NAME, T)                                                             \
    static void NAME(char **p, const int64_t *s, int64_t rows, void *ud) {             \
        const short_rows *r = (const short_rows *)ud;                                  \
        /* in locals: the stores below could alias *r as far as the compiler knows */  \
        const int64_t n = r->n, sd = r->s[0], sx = r->s[1];                            \
        char *d = p[0];                                                                \
        const char *x = p[1];                                                          \
        bool dense = sd == (int64_t)sizeof(T) && sx == (int64_t)sizeof(T);             \
        for (int64_t j = 0; j < rows; j++, d += s[0], x += s[1]) {                     \
            if (dense) {                                                               \
                memcpy(d, x, (size_t)n * sizeof(T));                                   \
                continue;                                                              \
            }                                                                          \
            for (int64_t i = 0; i < n; i++) memcpy(d + i * sd, x + i * sx, sizeof(T));  \
        }                                                                              \
    }
COPY_ROWS(copy_rows1, uint8_t)
COPY_ROWS(copy_rows2, uint16_t)
COPY_ROWS(copy_rows4, uint32_t)
COPY_ROWS(copy_rows8, uint64_t)

/* out (contiguous, shape `shape`) <- src walked with byte strides `src_strides`; a large
 * copy split between the pool's threads. */
static void strided_copy(am_pool *pool, void *dst, const int64_t *dst_strides,
                         const void *src, const int64_t *src_strides, const int64_t *shape,
                         int rank, amber_dtype dt) {
    int64_t strides[AM_ITER_MAX_OPS][AMBER_MAX_RANK];
    memcpy(strides[0], dst_strides, sizeof(int64_t) * (size_t)rank);
    memcpy(strides[1], src_strides, sizeof(int64_t) * (size_t)rank);
    am_iter it;
    am_iter_init(&it, 2, rank, shape, strides);
    char *base[2] = {(char *)dst, (char *)src};
    size_t z = amber_dtype_size(dt);
    int r = it.rank;
    if (r >= 2 && it.shape[r - 1] <= SHORT_ROW) {
        short_rows inner = {it.shape[r - 1], {it.strides[0][r - 1], it.strides[1][r - 1]}};
        it.rank--; /* the iterator walks the dims above the last one */
        am_iter_run_pool(pool, &it, base,
                         z == 1 ? copy_rows1 : z == 2 ? copy_rows2 : z == 4 ? copy_rows4
                                                                          : copy_rows8,
                         &inner);
        return;
    }
    am_iter_run_pool(pool, &it, base, z == 1 ? copy1 : z == 2 ? copy2 : z == 4 ? copy4 : copy8,
                     NULL);
}

amber_status k_reshape(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                       const am_attrs *a, amber_tensor *out) {
    (void)op, (void)ctx, (void)n, (void)a;
    size_t nbytes;
    am_tensor_check(out, NULL, &nbytes, NULL);
    if (nbytes) memmove(out->data, in[0].data, nbytes);
    return AMBER_OK;
}

amber_status k_transpose(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                         const am_attrs *a, amber_tensor *out) {
    (void)op, (void)ctx, (void)n;
    const amber_tensor *x = &in[0];
    int64_t xs[AMBER_MAX_RANK], src[AMBER_MAX_RANK], dst[AMBER_MAX_RANK];
    size_t z = amber_dtype_size(x->dtype);
    am_contig_strides(x->shape, x->rank, z, xs);
    for (int i = 0; i < x->rank; i++) src[i] = xs[a->perm[i]];
    am_contig_strides(out->shape, out->rank, z, dst);
    strided_copy(ctx->pool, out->data, dst, x->data, src, out->shape, out->rank, x->dtype);
    return AMBER_OK;
}

amber_status k_broadcast_to(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                            const am_attrs *a, amber_tensor *out) {
    (void)op, (void)ctx, (void)n, (void)a;
    int64_t src[AMBER_MAX_RANK], dst[AMBER_MAX_RANK];
    am_bcast_strides(&in[0], out->shape, out->rank, src);
    am_contig_strides(out->shape, out->rank, amber_dtype_size(out->dtype), dst);
    strided_copy(ctx->pool, out->data, dst, in[0].data, src, out->shape, out->rank,
                 out->dtype);
    return AMBER_OK;
}

amber_status k_slice(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                     const am_attrs *a, amber_tensor *out) {
    (void)op, (void)ctx, (void)n;
    const amber_tensor *x = &in[0];
    if (am_numel(out) == 0) return AMBER_OK;
    int64_t xs[AMBER_MAX_RANK], src[AMBER_MAX_RANK], dst[AMBER_MAX_RANK];
    am_contig_strides(x->shape, x->rank, amber_dtype_size(x->dtype), xs);
    int64_t off = 0;
    for (int d = 0; d < x->rank; d++) {
        off += a->starts[d] * xs[d];
        src[d] = xs[d] * a->steps[d];
    }
    am_contig_strides(out->shape, out->rank, amber_dtype_size(out->dtype), dst);
    strided_copy(ctx->pool, out->data, dst, (const char *)x->data + off, src, out->shape,
                 out->rank, x->dtype);
    return AMBER_OK;
}

/* pad's value in the tensor's dtype: integers follow cast's rule (truncate, saturate,
 * NaN -> 0); bool is value != 0; float16/bfloat16 round the value's float32 (as a cast
 * from float64 does). */
static void pad_value(amber_dtype dt, double v, unsigned char out[8]) {
    double t = v != v ? 0.0 : trunc(v);
    switch (dt) {
    case AMBER_FLOAT32: { float f = (float)v; memcpy(out, &f, 4); break; }
    case AMBER_FLOAT64: memcpy(out, &v, 8); break;
    case AMBER_INT32: {
        int32_t i = t >= 2147483647.0 ? INT32_MAX : t <= -2147483648.0 ? INT32_MIN : (int32_t)t;
        memcpy(out, &i, 4);
        break;
    }
    case AMBER_INT64: {
        int64_t i = t >= 9223372036854775807.0    ? INT64_MAX
                    : t <= -9223372036854775808.0 ? INT64_MIN
                                                  : (int64_t)t;
        memcpy(out, &i, 8);
        break;
    }
    case AMBER_BOOL: out[0] = v != 0; break;
    case AMBER_FLOAT16: { uint16_t h = am_f32_to_f16((float)v); memcpy(out, &h, 2); break; }
    case AMBER_BFLOAT16: { uint16_t h = am_f32_to_bf16((float)v); memcpy(out, &h, 2); break; }
    case AMBER_INT8: {
        int8_t i = t >= 127.0 ? INT8_MAX : t <= -128.0 ? INT8_MIN : (int8_t)t;
        memcpy(out, &i, 1);
        break;
    }
    case AMBER_UINT8: {
        uint8_t i = t >= 255.0 ? UINT8_MAX : t <= 0.0 ? 0 : (uint8_t)t;
        memcpy(out, &i, 1);
        break;
    }
    case AMBER_INT16: {
        int16_t i = t >= 32767.0 ? INT16_MAX : t <= -32768.0 ? INT16_MIN : (int16_t)t;
        memcpy(out, &i, 2);
        break;
    }
    }
}

amber_status k_pad(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                   const am_attrs *a, amber_tensor *out) {
    (void)op, (void)ctx, (void)n;
    const amber_tensor *x = &in[0];
    size_t z = amber_dtype_size(x->dtype);
    unsigned char v[8];
    pad_value(x->dtype, a->value, v);
    int64_t total = am_numel(out);
    char *o = (char *)out->data;
    for (int64_t i = 0; i < total; i++) memcpy(o + i * (int64_t)z, v, z);
    if (am_numel(x) == 0) return AMBER_OK;
    int64_t os[AMBER_MAX_RANK], xs[AMBER_MAX_RANK], dst[AMBER_MAX_RANK];
    am_contig_strides(out->shape, out->rank, z, os);
    am_contig_strides(x->shape, x->rank, z, xs);
    int64_t off = 0;
    for (int d = 0; d < x->rank; d++) {
        off += a->lo[d] * os[d];
        dst[d] = os[d] * (a->interior[d] + 1);
    }
    strided_copy(ctx->pool, o + off, dst, x->data, xs, x->shape, x->rank, x->dtype);
    return AMBER_OK;
}

amber_status k_concat(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                      const am_attrs *a, amber_tensor *out) {
    (void)op;
    size_t z = amber_dtype_size(out->dtype);
    int64_t outer = 1, inner = (int64_t)z;
    for (int d = 0; d < a->axis; d++) outer *= out->shape[d];
    for (int d = (int)a->axis + 1; d < out->rank; d++) inner *= out->shape[d];
    int64_t row = out->shape[a->axis] * inner, at = 0;
    if (am_numel(out) >= AM_ELEMENTS_PARALLEL_MIN && am_pool_awake(ctx->pool)) {
        /* each input a strided copy split between the threads (a fire module's concat of
         * two 774 KB maps per image would take a thread 5% of SqueezeNet's run) */
        int64_t os[AMBER_MAX_RANK], xs[AMBER_MAX_RANK];
        am_contig_strides(out->shape, out->rank, z, os);
        for (int i = 0; i < n; at += in[i].shape[a->axis] * inner, i++) {
            am_contig_strides(in[i].shape, in[i].rank, z, xs);
            strided_copy(ctx->pool, (char *)out->data + at, os, in[i].data, xs, in[i].shape,
                         out->rank, out->dtype);
        }
        return AMBER_OK;
    }
    for (int i = 0; i < n; i++) {
        int64_t chunk = in[i].shape[a->axis] * inner;
        if (chunk)
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)out->data + o * row + at, (const char *)in[i].data + o * chunk,
                       (size_t)chunk);
        at += chunk;
    }
    return AMBER_OK;
}

/* Normalises idx into res (0 <= v < dim) or fails naming the first bad index. */
static amber_status load_indices(const am_op *op, am_ctx *ctx, const amber_tensor *idx,
                                 int64_t dim, int64_t **res) {
    int64_t m = am_numel(idx);
    amber_status st = am_arena_calloc(ctx->scratch, (size_t)m, sizeof(int64_t), (void **)res,
                                      ctx->err);
    if (st != AMBER_OK) return st;
    for (int64_t j = 0; j < m; j++) {
        int64_t v = idx->dtype == AMBER_INT32 ? ((const int32_t *)idx->data)[j]
                                              : ((const int64_t *)idx->data)[j];
        if (v < -dim || v >= dim)
            return am_fail(ctx->err, AMBER_ERR_OUT_OF_RANGE,
                           "%s: index %lld is out of range for a dimension of size %lld",
                           op->name, (long long)v, (long long)dim);
        (*res)[j] = v < 0 ? v + dim : v;
    }
    return AMBER_OK;
}

amber_status k_take(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                    const am_attrs *a, amber_tensor *out) {
    (void)n;
    const amber_tensor *x = &in[0];
    int64_t dim = x->shape[a->axis], *idx;
    amber_status st = load_indices(op, ctx, &in[1], dim, &idx);
    if (st != AMBER_OK) return st;
    int64_t outer = 1, inner = (int64_t)amber_dtype_size(x->dtype), m = am_numel(&in[1]);
    for (int d = 0; d < a->axis; d++) outer *= x->shape[d];
    for (int d = (int)a->axis + 1; d < x->rank; d++) inner *= x->shape[d];
    char *o = (char *)out->data;
    const char *src = (const char *)x->data;
    if (inner == 0) return AMBER_OK;
    for (int64_t i = 0; i < outer; i++)
        for (int64_t j = 0; j < m; j++)
            memcpy(o + (i * m + j) * inner, src + (i * dim + idx[j]) * inner, (size_t)inner);
    return AMBER_OK;
}

#define SCATTER(NAME, T, U)                                                            \
    static void NAME(T *o, const T *s, const int64_t *idx, int64_t outer, int64_t dim,  \
                     int64_t m, int64_t inner) {                                       \
        for (int64_t i = 0; i < outer; i++)                                            \
            for (int64_t j = 0; j < m; j++) {                                          \
                T *dst = o + (i * dim + idx[j]) * inner;                               \
                const T *src = s + (i * m + j) * inner;                                \
                for (int64_t k = 0; k < inner; k++)                                    \
                    dst[k] = (T)((U)dst[k] + (U)src[k]);                               \
            }                                                                          \
    }
SCATTER(scatter_f32, float, float)
SCATTER(scatter_f64, double, double)
SCATTER(scatter_i32, int32_t, uint32_t)
SCATTER(scatter_i64, int64_t, uint64_t)

amber_status k_scatter_add(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                           const am_attrs *a, amber_tensor *out) {
    (void)n;
    const amber_tensor *base = &in[0];
    int64_t dim = base->shape[a->axis], *idx;
    amber_status st = load_indices(op, ctx, &in[1], dim, &idx);
    if (st != AMBER_OK) return st;
    size_t nbytes;
    am_tensor_check(out, NULL, &nbytes, NULL);
    if (nbytes) memcpy(out->data, base->data, nbytes);
    int64_t outer = 1, inner = 1, m = am_numel(&in[1]);
    for (int d = 0; d < a->axis; d++) outer *= base->shape[d];
    for (int d = (int)a->axis + 1; d < base->rank; d++) inner *= base->shape[d];
    switch (base->dtype) {
    case AMBER_FLOAT32: scatter_f32(out->data, in[2].data, idx, outer, dim, m, inner); break;
    case AMBER_FLOAT64: scatter_f64(out->data, in[2].data, idx, outer, dim, m, inner); break;
    case AMBER_INT32: scatter_i32(out->data, in[2].data, idx, outer, dim, m, inner); break;
    case AMBER_INT64: scatter_i64(out->data, in[2].data, idx, outer, dim, m, inner); break;
    default:
        return am_fail(ctx->err, AMBER_ERR_DTYPE, "%s: dtype %s is not supported", op->name,
                       amber_dtype_name(base->dtype));
    }
    return AMBER_OK;
}

amber_status k_dim_value(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                         const am_attrs *a, amber_tensor *out) {
    (void)op, (void)ctx, (void)in, (void)n;
    memcpy(out->data, &a->dim, sizeof a->dim);
    return AMBER_OK;
}
