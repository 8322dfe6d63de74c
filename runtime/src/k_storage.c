/* Storage dtypes (opset 5): float16 and bfloat16 compute in float32, int8, uint8 and int16
 * in int32. am_kernel_call widens such operands into scratch memory, runs the op's kernel
 * on the compute dtype and rounds (floats: to nearest, ties to even) or wraps (integers)
 * its result back, so every kernel is written for the five compute dtypes only. */
#include "ops.h"

#include <string.h>

/* ---------------------------------------------------------------- float16, bfloat16 */

static inline uint32_t bits_of(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static inline float float_of(uint32_t x) {
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

float am_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return float_of(sign | 0x7f800000u | (m << 13)); /* Inf, NaN (payload kept) */
    if (e) return float_of(sign | ((e + 112u) << 23) | (m << 13));
    float f = (float)m * 0x1p-24f; /* zero or subnormal: exact */
    return float_of(sign | bits_of(f));
}

uint16_t am_f32_to_f16(float f) {
    uint32_t x = bits_of(f), ax = x & 0x7fffffffu;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (ax >= 0x7f800000u) { /* Inf; NaN keeps its payload's top bits and stays a NaN */
        if (ax == 0x7f800000u) return sign | 0x7c00u;
        uint16_t m = (uint16_t)((ax >> 13) & 0x3ffu);
        return sign | 0x7c00u | (m ? m : 1u);
    }
    if (ax >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520 rounds to Inf */
    if (ax < 0x38800000u) {                      /* below 2^-14: a subnormal or zero */
        if (ax <= 0x33000000u) return sign;      /* <= 2^-25 (a tie with 0 goes to 0) */
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* value in units of 2^-24 is m >> shift */
        uint32_t q = m >> shift, r = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (r > half || (r == half && (q & 1u))) q++;
        return sign | (uint16_t)q; /* q == 0x400 is the smallest normal: right encoding */
    }
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u) - 0x38000000u; /* rebias 127 -> 15 */
    return sign | (uint16_t)(r >> 13);
}

float am_bf16_to_f32(uint16_t h) { return float_of((uint32_t)h << 16); }

uint16_t am_f32_to_bf16(float f) {
    uint32_t x = bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) { /* NaN: keep the payload's top bits */
        uint16_t h = (uint16_t)(x >> 16);
        return (h & 0x7fu) ? h : (uint16_t)(h | 0x40u);
    }
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* ---------------------------------------------------------------- widening */

amber_dtype am_compute_dtype(amber_dtype dt) {
    switch (dt) {
    case AMBER_FLOAT16:
    case AMBER_BFLOAT16: return AMBER_FLOAT32;
    case AMBER_INT8:
    case AMBER_UINT8:
    case AMBER_INT16: return AMBER_INT32;
    default: return dt;
    }
}

/* n contiguous elements of dtype dt at src into float32/int32 at dst. */
static void widen(amber_dtype dt, const void *src, void *dst, int64_t n) {
    float *f = (float *)dst;
    int32_t *i = (int32_t *)dst;
    for (int64_t k = 0; k < n; k++) {
        switch (dt) {
        case AMBER_FLOAT16: f[k] = am_f16_to_f32(((const uint16_t *)src)[k]); break;
        case AMBER_BFLOAT16: f[k] = am_bf16_to_f32(((const uint16_t *)src)[k]); break;
        case AMBER_INT8: i[k] = ((const int8_t *)src)[k]; break;
        case AMBER_UINT8: i[k] = ((const uint8_t *)src)[k]; break;
        case AMBER_INT16: i[k] = ((const int16_t *)src)[k]; break;
        default: return;
        }
    }
}

/* n float32/int32 elements at src back into dtype dt at dst (round to nearest even; wrap). */
static void narrow(amber_dtype dt, const void *src, void *dst, int64_t n) {
    const float *f = (const float *)src;
    const uint32_t *u = (const uint32_t *)src;
    for (int64_t k = 0; k < n; k++) {
        switch (dt) {
        case AMBER_FLOAT16: ((uint16_t *)dst)[k] = am_f32_to_f16(f[k]); break;
        case AMBER_BFLOAT16: ((uint16_t *)dst)[k] = am_f32_to_bf16(f[k]); break;
        case AMBER_INT8:
        case AMBER_UINT8: ((uint8_t *)dst)[k] = (uint8_t)u[k]; break;
        case AMBER_INT16: ((uint16_t *)dst)[k] = (uint16_t)u[k]; break;
        default: return;
        }
    }
}

static amber_status widened_copy(am_ctx *ctx, const amber_tensor *t, amber_tensor *w) {
    am_tensor_copy(w, t);
    w->dtype = am_compute_dtype(t->dtype);
    size_t nbytes;
    amber_status st = am_tensor_check(w, NULL, &nbytes, ctx->err);
    if (st == AMBER_OK) st = am_arena_alloc(ctx->scratch, nbytes ? nbytes : 1, &w->data, ctx->err);
    if (st == AMBER_OK) widen(t->dtype, t->data, w->data, am_numel(t));
    return st;
}

/* Kernels that take every dtype as it is: cast, and data movement (byte copies); the
 * registry's primitives with any_dtype=True. */
static bool any_dtype(const am_op *op) {
    return op->kind == AM_KIND_CAST || op->kind == AM_KIND_MOVE;
}

/* op on widened operands: any_dtype kernels see every dtype itself; everything else
 * computes in float32 or int32. NOTE: the copies live in scratch, so the kernel must not
 * keep data derived from them (fixed_inputs and keep are cleared). */
amber_status am_kernel_call(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                            const am_attrs *a, amber_tensor *out) {
    bool any = am_compute_dtype(out->dtype) != out->dtype;
    for (int i = 0; i < n && !any; i++) any = am_compute_dtype(in[i].dtype) != in[i].dtype;
    if (!any || any_dtype(op)) return op->kernel(op, ctx, in, n, a, out);
    amber_tensor *w;
    amber_status st = am_arena_alloc(ctx->scratch, (size_t)(n + 1) * sizeof *w, (void **)&w,
                                     ctx->err);
    for (int i = 0; st == AMBER_OK && i < n; i++) {
        if (am_compute_dtype(in[i].dtype) == in[i].dtype) am_tensor_copy(&w[i], &in[i]);
        else st = widened_copy(ctx, &in[i], &w[i]);
    }
    if (st != AMBER_OK) return st;
    amber_tensor *wo = &w[n];
    am_tensor_copy(wo, out);
    wo->data = out->data;
    bool narrow_out = am_compute_dtype(out->dtype) != out->dtype;
    if (narrow_out) {
        wo->dtype = am_compute_dtype(out->dtype);
        size_t nbytes;
        st = am_tensor_check(wo, NULL, &nbytes, ctx->err);
        if (st == AMBER_OK)
            st = am_arena_alloc(ctx->scratch, nbytes ? nbytes : 1, &wo->data, ctx->err);
        if (st != AMBER_OK) return st;
    }
    am_ctx wctx = *ctx;
    wctx.fixed_inputs = 0;
    wctx.keep = NULL;
    st = op->kernel(op, &wctx, w, n, a, wo);
    if (st == AMBER_OK && narrow_out) narrow(out->dtype, wo->data, out->data, am_numel(out));
    return st;
}
