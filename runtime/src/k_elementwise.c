/* Elementwise kernels: unary math, binary arithmetic and comparisons with NumPy
 * broadcasting, where and cast. Integer arithmetic wraps (computed in unsigned types);
 * integer division follows the documented floor rule without undefined behaviour. */
#include "ops.h"

#include <math.h>
#include <string.h>

typedef uint8_t b8;
typedef int32_t i32;
typedef int64_t i64;
typedef uint32_t ui32;
typedef uint64_t ui64;

/* ---------------------------------------------------------------- scalar helpers */

#define FLOORDIV(T)                                                   \
    static inline T floordiv_##T(T a, T b) {                               \
        if (b == 0) return 0;                                              \
        if (b == -1) return (T)(0 - (u##T)a); /* wraps: MIN / -1 = MIN */  \
        T q = a / b;                                                       \
        if ((a % b != 0) && ((a < 0) != (b < 0))) q--;                     \
        return q;                                                          \
    }
FLOORDIV(i32)
FLOORDIV(i64)

static inline double sigmoid_(double x) {
    double e = exp(-fabs(x));
    return x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

/* ---------------------------------------------------------------- float32 exp, sigmoid, tanh, erf */

#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#include <immintrin.h>
#define TX86
#endif
#define TSUF sse2 /* what every x86-64 has; portable vector code elsewhere */
#define TATTR
#define VL 4
#include "k_transcendental.inc"
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#define TX86
#define TSUF avx2
#define TATTR __attribute__((target("avx2")))
#define VL 8
#include "k_transcendental.inc"
/* NOTE: AVX-512F brings fused multiply-add: the same bits as the other sets need the
 * multiplies and adds kept apart (gcc does in ISO C mode; clang needs telling). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif
#define TX86
#define TSUF avx512
#define TATTR __attribute__((target("avx512f")))
#define VL 16
#include "k_transcendental.inc"
#define TRANSCENDENTAL(OP)                                                         \
    static void OP##_f32(char **p, const int64_t *s, int64_t n, void *ud) {        \
        int isa = am_cpu_isa();                                                    \
        (isa >= AM_GEMM_ISA_AVX512 ? OP##_f32_avx512                               \
         : isa >= AM_GEMM_ISA_AVX2 ? OP##_f32_avx2                                 \
                                   : OP##_f32_sse2)(p, s, n, ud);                  \
    }
#else
#define TRANSCENDENTAL(OP)                                                         \
    static void OP##_f32(char **p, const int64_t *s, int64_t n, void *ud) {        \
        OP##_f32_sse2(p, s, n, ud);                                                \
    }
#endif
TRANSCENDENTAL(exp)
TRANSCENDENTAL(sigmoid)
TRANSCENDENTAL(tanh)
TRANSCENDENTAL(erf)

/* ---------------------------------------------------------------- float32 LSTM cell */

#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
/* x op y, or y op x when sw: the node's own operand order (a NaN's payload follows it). */
#define CELL_OP(x, op, y, sw) ((sw) ? (y)op(x) : (x)op(y))
#define CELL_ATTR __attribute__((target("avx512f")))
#define CELL_INLINE __attribute__((target("avx512f"), always_inline))

/* The activations of one step as five independent chains side by side (k_transcendental's
 * step functions across the vectors): the sigmoids of x[0..2], the tanhs of x[3..4]. */
CELL_INLINE static inline void cell_act_avx512(const vf_avx512 *x, vf_avx512 *y) {
    vf_avx512 a[5], r[5], p[5];
    vu_avx512 k[5];
    _Pragma("GCC unroll 5") for (int j = 0; j < 5; j++)
        a[j] = j < 3 ? sigmoid_arg_avx512(x[j]) : tanh_arg_avx512(x[j]);
    reducen_avx512(a, r, k, 5);
    expm1rn_avx512(r, p, 5);
    _Pragma("GCC unroll 3") for (int j = 0; j < 3; j++)
        y[j] = sigmoid_fin_avx512(x[j], scale_avx512(splat_avx512(1.0f) + p[j], k[j]));
    _Pragma("GCC unroll 2") for (int j = 3; j < 5; j++)
        y[j] = tanh_fin_avx512(x[j], k[j], p[j]);
}

/* The gates (the sums of n_pre sources, as the add nodes' row loops form them) of the 16
 * units at i (lanes m; the others zero) to x[0..3] (i, f, g, o). NOTE: unrolled, x stays in
 * registers and the loads go out together (the cell ran 10% faster). */
CELL_INLINE static inline void cell_load_avx512(const float *const *pre, int n_pre,
                                                const int64_t *off, int64_t i, __mmask16 m,
                                                const bool *sw, vf_avx512 *x) {
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
        x[k] = (vf_avx512)_mm512_maskz_loadu_ps(m, pre[0] + off[k] + i);
        if (n_pre == 1) continue;
        vf_avx512 y = (vf_avx512)_mm512_maskz_loadu_ps(m, pre[1] + off[k] + i);
        if (n_pre == 3) y += (vf_avx512)_mm512_maskz_loadu_ps(m, pre[2] + off[k] + i);
        x[k] = CELL_OP(x[k], +, y, sw[4]);
    }
}

/* One step of cell_f32_avx512: the 16 units at i of a row (lanes m) to c and sigmoid o
 * (*c, *so), and h of the 16 units before (from their *c, *so) to hp (lanes hm). */
CELL_INLINE static inline void cell_step_avx512(const float *const *pre, int n_pre,
                                                const int64_t *off, const float *cp, float *co,
                                                int64_t i, __mmask16 m, const bool *sw,
                                                vf_avx512 *c, vf_avx512 *so, float *hp,
                                                __mmask16 hm) {
    vf_avx512 g[4], x[5], y[5];
    cell_load_avx512(pre, n_pre, off, i, m, sw, g);
    x[0] = g[0], x[1] = g[1], x[2] = g[3], x[3] = g[2], x[4] = *c;
    cell_act_avx512(x, y); /* sigmoid i, f, o; tanh g, c */
    _mm512_mask_storeu_ps(hp, hm, (__m512)CELL_OP(*so, *, y[4], sw[3]));
    vf_avx512 ig = CELL_OP(y[0], *, y[3], sw[0]);
    vf_avx512 fc = CELL_OP(y[1], *, (vf_avx512)_mm512_maskz_loadu_ps(m, cp + i), sw[1]);
    *c = CELL_OP(ig, +, fc, sw[2]), *so = y[2];
    _mm512_mask_storeu_ps(co + i, m, (__m512)*c);
}

/* Each row's n units 16 at a time (a tail of n % 16 zero-padded: each lane is computed
 * alone, as in the row loops' padded tails), through the sigmoid and tanh of the row
 * loops and in plan_cell.c's order. Software-pipelined across the rows: a step's five
 * chains are the gates' four and tanh c of the units before (the chains are long; one
 * vector's c waits on its gates). NOTE: the full vectors' steps apart (unmasked loads)
 * made the cell 10% faster. */
CELL_ATTR static void cell_f32_avx512(const float *const *pre, const int64_t *rs, int n_pre,
                                     const int64_t *off, const float *cp, float *co, float *ho,
                                     int64_t n, int64_t rows, int64_t ld,
                                     const bool *swapped) {
    const bool sw[5] = {swapped[0], swapped[1], swapped[2], swapped[3], swapped[4]};
    vf_avx512 c = {0}, so = {0}; /* the units before: c, sigmoid o, their h to hp (lanes hm) */
    float *hp = ho;
    __mmask16 hm = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *p[3] = {pre[0] + r * rs[0], NULL, NULL};
        for (int k = 1; k < n_pre; k++) p[k] = pre[k] + r * rs[k];
        const float *cpr = cp + r * ld;
        float *cor = co + r * ld, *hor = ho + r * ld;
        int64_t i = 0;
        for (; i + 16 <= n; i += 16, hp = hor + i - 16, hm = 0xffff)
            cell_step_avx512(p, n_pre, off, cpr, cor, i, 0xffff, sw, &c, &so, hp, hm);
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        if (m) cell_step_avx512(p, n_pre, off, cpr, cor, i, m, sw, &c, &so, hp, hm);
        if (m) hp = hor + i, hm = m;
    }
    _mm512_mask_storeu_ps(hp, hm, (__m512)CELL_OP(so, *, tanh_avx512(c), sw[3]));
}

/* Operand k of a step before a GELU's (am_epi_gelu_f32): the step before (cur), a row's
 * scalar or 16 elements of a row from i (lanes m). */
CELL_INLINE static inline vf_avx512 gelu_arg_avx512(const struct am_epi_op *o, int k,
                                                    char *const *p, int64_t i, __mmask16 m,
                                                    vf_avx512 cur) {
    if (o->kind[k] == EPI_TMP) return cur;
    const float *q = (const float *)(const void *)p[o->src[k] + 1];
    if (o->kind[k] == EPI_SCALAR) return splat_avx512(q[0]);
    return (vf_avx512)_mm512_maskz_loadu_ps(m, q + i);
}

/* A row 16 elements at a time (the tail in zero-filled lanes, each lane alone as in the
 * row loops' padded tails): the steps before the GELU's, then x * c * (tanh((x + x * x *
 * x * a) * b) + d) in the steps' order. NOTE: one vector a turn (out-of-order execution
 * overlaps the turns' tanh chains) keeps the code small. */
CELL_ATTR static void gelu_avx512(const am_epi *e, char *const *p, int64_t n) {
    const int n0 = e->g->n_steps - 9;
    const struct am_epi_op *g = e->ops + n0;
#define GELU_S(j) splat_avx512(*(const float *)(const void *)p[g[j].src[1] + 1])
    const vf_avx512 a = GELU_S(2), b = GELU_S(4), c = GELU_S(5), d = GELU_S(7);
#undef GELU_S
    float *y = (float *)(void *)p[0];
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = (__mmask16)(n - i >= 16 ? 0xffffu : (1u << (n - i)) - 1u);
        vf_avx512 x = (vf_avx512)_mm512_maskz_loadu_ps(m, y + i);
        for (int j = 0; j < n0; j++) {
            const struct am_epi_op *o = &e->ops[j];
            vf_avx512 v = gelu_arg_avx512(o, 0, p, i, m, x);
            vf_avx512 w = gelu_arg_avx512(o, 1, p, i, m, x);
            x = o->op == EPI_ADD   ? v + w
                : o->op == EPI_SUB ? v - w
                : o->op == EPI_MUL ? v * w
                                   : v / w;
        }
        vf_avx512 t = tanh_avx512((x + x * x * x * a) * b);
        _mm512_mask_storeu_ps(y + i, m, (__m512)(x * c * (t + d)));
    }
}
#undef CELL_OP
#undef CELL_ATTR
#undef CELL_INLINE
#endif

bool am_cell_f32(const float *const *pre, const int64_t *rs, int n_pre, const int64_t *off,
                 const float *cp, float *co, float *ho, int64_t n, int64_t rows, int64_t ld,
                 const bool *swapped) {
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
    if (am_cpu_isa() >= AM_GEMM_ISA_AVX512) {
        cell_f32_avx512(pre, rs, n_pre, off, cp, co, ho, n, rows, ld, swapped);
        return true;
    }
#endif
    (void)pre, (void)rs, (void)n_pre, (void)off, (void)cp, (void)co, (void)ho, (void)n;
    (void)rows, (void)ld, (void)swapped;
    return false;
}

bool am_epi_gelu_f32(const am_epi *e, char *const *p, int64_t n) {
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
    if (am_cpu_isa() >= AM_GEMM_ISA_AVX512) {
        gelu_avx512(e, p, n);
        return true;
    }
#endif
    (void)e, (void)p, (void)n;
    return false;
}
#define SIGNF(a) ((a) > 0 ? 1 : (a) < 0 ? -1 : (a) == 0 ? 0 : (a))

/* ---------------------------------------------------------------- loop templates */

/* A loop's attributes by its input type (KATTR(TI)). The loops models run in bulk, those
 * of the floats and of the logical ops on bool masks (mask8), at full speed; the
 * integers', bool's other ops and the casts compiled for size (cold: 18 KB less code;
 * scalar loops, up to 8x slower on long rows: about a nanosecond an element). The same
 * bits: integer operations and IEEE conversions do not depend on the optimisation level. */
#define RARE __attribute__((cold))
#define KATTR(TI) KATTR_##TI
#define KATTR_float
#define KATTR_mask8
#define KATTR_double
#define KATTR_i32 RARE
#define KATTR_i64 RARE
#define KATTR_b8 RARE
typedef b8 mask8;

/* out[i] = EXPR(a) for input type TI, output type TO. */
#define UNARY(NAME, TI, TO, EXPR)                                                  \
    KATTR(TI) static void NAME(char **p, const int64_t *s, int64_t n, void *ud) {  \
        (void)ud;                                                                  \
        if (s[0] == (int64_t)sizeof(TO) && s[1] == (int64_t)sizeof(TI)) {          \
            TO *o = (TO *)p[0];                                                    \
            const TI *x = (const TI *)p[1];                                        \
            for (int64_t i = 0; i < n; i++) {                                      \
                TI a = x[i];                                                       \
                o[i] = (TO)(EXPR);                                                 \
            }                                                                      \
        } else {                                                                   \
            for (int64_t i = 0; i < n; i++) {                                      \
                TI a = *(const TI *)(p[1] + i * s[1]);                             \
                *(TO *)(p[0] + i * s[0]) = (TO)(EXPR);                             \
            }                                                                      \
        }                                                                          \
    }

/* out[i] = EXPR(a, b); fast paths for contiguous operands and a broadcast scalar (a scalar a
 * only without SYM: SYM_ENTRY hands that case over with the operands swapped). */
#define BINARY_SYM(NAME, TI, TO, EXPR, SYM)                                        \
    KATTR(TI) static void NAME(char **p, const int64_t *s, int64_t n, void *ud) {  \
        (void)ud;                                                                  \
        const int64_t zi = (int64_t)sizeof(TI), zo = (int64_t)sizeof(TO);          \
        TO *o = (TO *)p[0];                                                        \
        const TI *x = (const TI *)p[1], *y = (const TI *)p[2];                     \
        if (s[0] == zo && s[1] == zi && s[2] == zi) {                              \
            for (int64_t i = 0; i < n; i++) {                                      \
                TI a = x[i], b = y[i];                                             \
                o[i] = (TO)(EXPR);                                                 \
            }                                                                      \
        } else if (s[0] == zo && s[1] == zi && s[2] == 0) {                        \
            const TI b = y[0];                                                     \
            for (int64_t i = 0; i < n; i++) {                                      \
                TI a = x[i];                                                       \
                o[i] = (TO)(EXPR);                                                 \
            }                                                                      \
        } else if (!(SYM) && s[0] == zo && s[1] == 0 && s[2] == zi) {              \
            const TI a = x[0];                                                     \
            for (int64_t i = 0; i < n; i++) {                                      \
                TI b = y[i];                                                       \
                o[i] = (TO)(EXPR);                                                 \
            }                                                                      \
        } else {                                                                   \
            for (int64_t i = 0; i < n; i++) {                                      \
                TI a = *(const TI *)(p[1] + i * s[1]);                             \
                TI b = *(const TI *)(p[2] + i * s[2]);                             \
                *(TO *)(p[0] + i * s[0]) = (TO)(EXPR);                             \
            }                                                                      \
        }                                                                          \
    }
#define BINARY(NAME, TI, TO, EXPR) BINARY_SYM(NAME, TI, TO, EXPR, 0)

/* ---------------------------------------------------------------- unary ops */

/* The unary ops as tables of rows; each row defines the op's loops and its entry in
 * UNARY_LOOPS. A new unary primitive needs only a row (its ops.def row is generated).
 *
 * Float ops: U(ID, f, float32 expression of a, float64 expression of a). */
#define UNARY_FLOAT_OPS(U)                \
    U(FLOOR, floor, floorf(a), floor(a))  \
    U(LOG, log, logf(a), log(a))          \
    U(SQRT, sqrt, sqrtf(a), sqrt(a))      \
    U(SIN, sin, sinf(a), sin(a))          \
    U(COS, cos, cosf(a), cos(a))          \
    U(ROUND, round, rintf(a), rint(a))

/* Float ops whose float32 loop is the vectorised one of k_transcendental.inc (above):
 * U(ID, f, float64 expression of a). */
#define UNARY_VECTOR_OPS(U)          \
    U(EXP, exp, exp(a))              \
    U(TANH, tanh, tanh(a))           \
    U(SIGMOID, sigmoid, sigmoid_(a)) \
    U(ERF, erf, erf(a))

/* Numeric ops: U(ID, f, float32, float64, int32, int64 expressions of a); integers wrap
 * (computed in unsigned types). */
#define WNEG(U, a) (0 - (U)(a))
#define UNARY_NUMERIC_OPS(U)                                                               \
    U(NEG, neg, -a, -a, WNEG(ui32, a), WNEG(ui64, a))                                      \
    U(ABS, abs, fabsf(a), fabs(a), a < 0 ? WNEG(ui32, a) : (ui32)a,                        \
      a < 0 ? WNEG(ui64, a) : (ui64)a)                                                     \
    U(SIGN, sign, SIGNF(a), SIGNF(a), (a > 0) - (a < 0), (a > 0) - (a < 0))

#define DEF_FLOAT(ID, f, E32, E64) UNARY(f##_f32, float, float, E32) \
    UNARY(f##_f64, double, double, E64)
#define DEF_VECTOR(ID, f, E64) UNARY(f##_f64, double, double, E64)
#define DEF_NUMERIC(ID, f, EF32, EF64, EI32, EI64)                                      \
    UNARY(f##_f32, float, float, EF32) UNARY(f##_f64, double, double, EF64)               \
    UNARY(f##_i32, i32, i32, EI32) UNARY(f##_i64, i64, i64, EI64)
UNARY_FLOAT_OPS(DEF_FLOAT)
UNARY_VECTOR_OPS(DEF_VECTOR)
UNARY_NUMERIC_OPS(DEF_NUMERIC)
UNARY(not_b, mask8, mask8, !a)

/* Loops by input dtype (amber_dtype order: float32, float64, int32, int64, bool). */
#define ROW4(f) {f##_f32, f##_f64, f##_i32, f##_i64, NULL}
#define ROWF(f) {f##_f32, f##_f64, NULL, NULL, NULL}
#define ROW_FLOAT(ID, f, ...) [AM_OP_##ID] = ROWF(f),
#define ROW_NUMERIC(ID, f, ...) [AM_OP_##ID] = ROW4(f),

static const am_row_fn UNARY_LOOPS[][5] = {
    UNARY_FLOAT_OPS(ROW_FLOAT) UNARY_VECTOR_OPS(ROW_FLOAT) UNARY_NUMERIC_OPS(ROW_NUMERIC)
    [AM_OP_LOGICAL_NOT] = {NULL, NULL, NULL, NULL, not_b},
};

static amber_status run_map(am_ctx *ctx, const am_op *op, am_row_fn fn, const amber_tensor *in,
                            int n, amber_tensor *out) {
    if (!fn)
        return am_fail(ctx->err, AMBER_ERR_DTYPE, "%s: dtype %s is not supported", op->name,
                       amber_dtype_name(in[0].dtype));
    int64_t strides[AM_ITER_MAX_OPS][AMBER_MAX_RANK];
    am_contig_strides(out->shape, out->rank, amber_dtype_size(out->dtype), strides[0]);
    char *base[AM_ITER_MAX_OPS] = {(char *)out->data};
    for (int i = 0; i < n; i++) {
        am_bcast_strides(&in[i], out->shape, out->rank, strides[i + 1]);
        base[i + 1] = (char *)in[i].data;
    }
    am_iter it;
    am_iter_init(&it, n + 1, out->rank, out->shape, strides);
    am_iter_run_pool(ctx->pool, &it, base, fn, NULL);
    return AMBER_OK;
}

amber_status k_unary(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                     const am_attrs *a, amber_tensor *out) {
    (void)a;
    return run_map(ctx, op, am_elementwise_loop(op, in[0].dtype, out->dtype), in, n, out);
}

/* ---------------------------------------------------------------- binary ops */

#define WRAP(U, T, a, op, b) ((T)((U)(a) op (U)(b)))
#define MAXV(a, b) (((a) >= (b) || AM_ISNAN(a)) ? (a) : (b))
#define MINV(a, b) (((a) <= (b) || AM_ISNAN(a)) ? (a) : (b))

#define ARITH_ALL(name, EXPR_F, EXPR_I32, EXPR_I64)  \
    BINARY(name##_f32, float, float, EXPR_F)         \
    BINARY(name##_f64, double, double, EXPR_F)       \
    BINARY(name##_i32, i32, i32, EXPR_I32)           \
    BINARY(name##_i64, i64, i64, EXPR_I64)

ARITH_ALL(add, a + b, WRAP(ui32, i32, a, +, b), WRAP(ui64, i64, a, +, b))
ARITH_ALL(sub, a - b, WRAP(ui32, i32, a, -, b), WRAP(ui64, i64, a, -, b))
ARITH_ALL(mul, a * b, WRAP(ui32, i32, a, *, b), WRAP(ui64, i64, a, *, b))
ARITH_ALL(div, a / b, floordiv_i32(a, b), floordiv_i64(a, b))
BINARY(pow_f32, float, float, powf(a, b))
BINARY(pow_f64, double, double, pow(a, b))

#define ALL5(name, TO, EXPR)                     \
    BINARY(name##_f32, float, TO(float), EXPR)   \
    BINARY(name##_f64, double, TO(double), EXPR) \
    BINARY(name##_i32, i32, TO(i32), EXPR)       \
    BINARY(name##_i64, i64, TO(i64), EXPR)       \
    BINARY(name##_b, b8, TO(b8), EXPR)
#define BOOL(T) b8

/* EXPR gives the same bits with a and b swapped: a scalar a runs as a scalar b. */
#define SYM_ENTRY(NAME, TI, TO, EXPR)                                             \
    BINARY_SYM(NAME##_body, TI, TO, EXPR, 1)                                      \
    KATTR(TI) static void NAME(char **p, const int64_t *s, int64_t n, void *ud) { \
        if (s[1] != 0 || s[2] != (int64_t)sizeof(TI)) {                           \
            NAME##_body(p, s, n, ud);                                             \
            return;                                                               \
        }                                                                         \
        char *q[3] = {p[0], p[2], p[1]};                                          \
        const int64_t t[3] = {s[0], s[2], s[1]};                                  \
        NAME##_body(q, t, n, ud);                                                 \
    }
#define SYM5(name, EXPR)                                                          \
    SYM_ENTRY(name##_f32, float, b8, EXPR) SYM_ENTRY(name##_f64, double, b8, EXPR) \
    SYM_ENTRY(name##_i32, i32, b8, EXPR) SYM_ENTRY(name##_i64, i64, b8, EXPR)     \
    SYM_ENTRY(name##_b, b8, b8, EXPR)
SYM5(eq, a == b)
SYM5(ne, a != b)
ALL5(lt, BOOL, a < b)
ALL5(le, BOOL, a <= b)

/* a > b is b < a, also for NaN (both false): gt and ge run lt and le on swapped operands,
 * the same bits from half the comparison loops. */
#define SWAPPED(NAME, BASE)                                                       \
    static void NAME(char **p, const int64_t *s, int64_t n, void *ud) {           \
        char *q[3] = {p[0], p[2], p[1]};                                          \
        const int64_t t[3] = {s[0], s[2], s[1]};                                  \
        BASE(q, t, n, ud);                                                        \
    }
#define SWAPPED5(name, base)                                                      \
    SWAPPED(name##_f32, base##_f32) SWAPPED(name##_f64, base##_f64)               \
    SWAPPED(name##_i32, base##_i32) SWAPPED(name##_i64, base##_i64)               \
    SWAPPED(name##_b, base##_b)
SWAPPED5(gt, lt)
SWAPPED5(ge, le)

/* Integers and bools have no NaN or signed zero: their max and min commute too (int64's
 * loops are not vectorised: nothing to save). */
#define MAXMIN(name, EXPR)                                                        \
    BINARY(name##_f32, float, float, EXPR) BINARY(name##_f64, double, double, EXPR) \
    SYM_ENTRY(name##_i32, i32, i32, EXPR) BINARY(name##_i64, i64, i64, EXPR)      \
    SYM_ENTRY(name##_b, b8, b8, EXPR)
MAXMIN(max, MAXV(a, b))
MAXMIN(min, MINV(a, b))
SYM_ENTRY(and_b, mask8, mask8, a && b)
SYM_ENTRY(or_b, mask8, mask8, a || b)

#define ROW5(f) {f##_f32, f##_f64, f##_i32, f##_i64, f##_b}

static const am_row_fn BINARY_LOOPS[][5] = {
    [AM_OP_ADD] = ROW4(add),      [AM_OP_SUB] = ROW4(sub),      [AM_OP_MUL] = ROW4(mul),
    [AM_OP_DIV] = ROW4(div),      [AM_OP_POW] = ROWF(pow),      [AM_OP_MAXIMUM] = ROW5(max),
    [AM_OP_MINIMUM] = ROW5(min),  [AM_OP_EQ] = ROW5(eq),        [AM_OP_NE] = ROW5(ne),
    [AM_OP_LT] = ROW5(lt),        [AM_OP_LE] = ROW5(le),        [AM_OP_GT] = ROW5(gt),
    [AM_OP_GE] = ROW5(ge),
    [AM_OP_LOGICAL_AND] = {NULL, NULL, NULL, NULL, and_b},
    [AM_OP_LOGICAL_OR] = {NULL, NULL, NULL, NULL, or_b},
};

amber_status k_binary(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                      const am_attrs *a, amber_tensor *out) {
    (void)a;
    return run_map(ctx, op, am_elementwise_loop(op, in[0].dtype, out->dtype), in, n, out);
}

/* ---------------------------------------------------------------- where */

/* out[i] = c[i] ? X : Y over contiguous rows (X, Y: a row element or a scalar). NOTE: both
 * candidates are loaded before selecting, so the select compiles to a branchless blend
 * (relu is where(x <= 0, 0, x); a branch per element mispredicts on such data). */
#define WHERE_ROW(T, X, Y)                                                          \
    for (int64_t i = 0; i < n; i++) {                                               \
        T a = (X), b = (Y);                                                         \
        o[i] = c[i] ? a : b;                                                        \
    }

#define WHERE(NAME, T)                                                              \
    static void NAME(char **p, const int64_t *s, int64_t n, void *ud) {             \
        (void)ud;                                                                   \
        const int64_t z = (int64_t)sizeof(T);                                       \
        if (n <= 0) return;                                                         \
        if (s[0] == z && s[1] == 1 && (s[2] == z || s[2] == 0) &&                   \
            (s[3] == z || s[3] == 0) && (s[2] | s[3])) {                            \
            T *o = (T *)p[0];                                                       \
            const b8 *c = (const b8 *)p[1];                                         \
            const T *x = (const T *)p[2], *y = (const T *)p[3];                     \
            T x0, y0;                                                               \
            memcpy(&x0, p[2], sizeof x0);                                           \
            memcpy(&y0, p[3], sizeof y0);                                           \
            if (s[2] && s[3]) {                                                     \
                WHERE_ROW(T, x[i], y[i])                                            \
            } else if (s[3]) {                                                      \
                WHERE_ROW(T, x0, y[i])                                              \
            } else {                                                                \
                WHERE_ROW(T, x[i], y0)                                              \
            }                                                                       \
            return;                                                                 \
        }                                                                           \
        for (int64_t i = 0; i < n; i++) {                                           \
            const char *src = *(const b8 *)(p[1] + i * s[1]) ? p[2] + i * s[2]      \
                                                              : p[3] + i * s[3];    \
            T v;                                                                    \
            memcpy(&v, src, sizeof v);                                              \
            memcpy(p[0] + i * s[0], &v, sizeof v);                                  \
        }                                                                           \
    }
WHERE(where1, uint8_t)
WHERE(where4, uint32_t)
WHERE(where8, uint64_t)

amber_status k_where(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                     const am_attrs *a, amber_tensor *out) {
    (void)a;
    return run_map(ctx, op, am_elementwise_loop(op, in[0].dtype, out->dtype), in, n, out);
}

/* ---------------------------------------------------------------- cast */

/* Loads and stores of every dtype. Storage floats go through float32 (exact on load; a
 * store rounds to nearest even), so a cast to float16/bfloat16 rounds the source to float32
 * first (docs/opset.md). */
typedef int8_t i8;
typedef uint8_t u8;
typedef int16_t i16;
typedef uint16_t h16;
typedef uint16_t bh16;
#define LD_f32(p) (*(const float *)(p))
#define LD_f64(p) (*(const double *)(p))
#define LD_i32(p) (*(const i32 *)(p))
#define LD_i64(p) (*(const i64 *)(p))
#define LD_b(p) (*(const b8 *)(p))
#define LD_f16(p) am_f16_to_f32(*(const h16 *)(p))
#define LD_bf16(p) am_bf16_to_f32(*(const bh16 *)(p))
#define LD_i8(p) (*(const i8 *)(p))
#define LD_u8(p) (*(const u8 *)(p))
#define LD_i16(p) (*(const i16 *)(p))
/* Kind of each source: F (float), I (integer), B (bool). */
#define KIND_f32 F
#define KIND_f64 F
#define KIND_f16 F
#define KIND_bf16 F
#define KIND_i32 I
#define KIND_i64 I
#define KIND_i8 I
#define KIND_u8 I
#define KIND_i16 I
#define KIND_b B

/* float -> integer: truncate toward zero, NaN -> 0, saturate beyond the range. */
#define SATF(T, LO, HI)                                                           \
    static inline T sat_##T(double v) {                                           \
        if (v != v) return 0;                                                     \
        double t = trunc(v);                                                      \
        if (t >= (double)(HI)) return HI;                                         \
        if (t <= (double)(LO)) return LO;                                         \
        return (T)t;                                                              \
    }
SATF(i8, INT8_MIN, INT8_MAX)
SATF(u8, 0, UINT8_MAX)
SATF(i16, INT16_MIN, INT16_MAX)
/* NOTE: INT32_MAX/INT64_MAX are not doubles; the existing bounds are exact powers of 2. */
static inline i32 sat_i32(double v) {
    if (v != v) return 0;
    double t = trunc(v);
    if (t >= 2147483647.0) return INT32_MAX;
    if (t <= -2147483648.0) return INT32_MIN;
    return (i32)t;
}
static inline i64 sat_i64(double v) {
    if (v != v) return 0;
    double t = trunc(v);
    if (t >= 9223372036854775807.0) return INT64_MAX;
    if (t <= -9223372036854775808.0) return INT64_MIN;
    return (i64)t;
}

/* ST_<dst>_<kind>(v): v (a loaded source value of that kind) in the destination dtype. */
#define ST_f32_F(v) ((float)(v))
#define ST_f32_I(v) ((float)(v))
#define ST_f32_B(v) ((float)((v) != 0))
#define ST_f64_F(v) ((double)(v))
#define ST_f64_I(v) ((double)(v))
#define ST_f64_B(v) ((double)((v) != 0))
#define ST_f16_F(v) am_f32_to_f16((float)(v))
#define ST_f16_I(v) am_f32_to_f16((float)(v))
#define ST_f16_B(v) am_f32_to_f16((float)((v) != 0))
#define ST_bf16_F(v) am_f32_to_bf16((float)(v))
#define ST_bf16_I(v) am_f32_to_bf16((float)(v))
#define ST_bf16_B(v) am_f32_to_bf16((float)((v) != 0))
#define ST_INT_F(T, v) sat_##T((double)(v))
#define ST_INT_I(T, U, v) ((T)(U)(ui64)(v)) /* integer -> integer wraps */
#define ST_i32_F(v) ST_INT_F(i32, v)
#define ST_i32_I(v) ST_INT_I(i32, ui32, v)
#define ST_i32_B(v) ((i32)((v) != 0))
#define ST_i64_F(v) ST_INT_F(i64, v)
#define ST_i64_I(v) ((i64)(v))
#define ST_i64_B(v) ((i64)((v) != 0))
#define ST_i8_F(v) ST_INT_F(i8, v)
#define ST_i8_I(v) ST_INT_I(i8, u8, v)
#define ST_i8_B(v) ((i8)((v) != 0))
#define ST_u8_F(v) ST_INT_F(u8, v)
#define ST_u8_I(v) ST_INT_I(u8, u8, v)
#define ST_u8_B(v) ((u8)((v) != 0))
#define ST_i16_F(v) ST_INT_F(i16, v)
#define ST_i16_I(v) ST_INT_I(i16, uint16_t, v)
#define ST_i16_B(v) ((i16)((v) != 0))
#define ST_b_F(v) ((b8)((v) != 0))
#define ST_b_I(v) ((b8)((v) != 0))
#define ST_b_B(v) ((b8)((v) != 0))

#define CAT3(a, b, c) a##b##c
#define XCAT3(a, b, c) CAT3(a, b, c)
#define TYPE_f32 float
#define TYPE_f64 double
#define TYPE_i32 i32
#define TYPE_i64 i64
#define TYPE_b b8
#define TYPE_f16 h16
#define TYPE_bf16 bh16
#define TYPE_i8 i8
#define TYPE_u8 u8
#define TYPE_i16 i16

/* Casts compile for size (KATTR), but from bool: at -Os a bool's 0 or 1 becomes a float
 * through a branch (5x slower on a random mask). */
#define CATTR_F RARE
#define CATTR_I RARE
#define CATTR_B
#define CAST_LOOP(S, D)                                                               \
    XCAT3(CATTR, _, KIND_##S) static void c_##S##_##D(char **p, const int64_t *s,     \
                                                      int64_t n, void *ud) {          \
        (void)ud;                                                                     \
        for (int64_t i = 0; i < n; i++) {                                             \
            TYPE_##D v = XCAT3(ST_##D, _, KIND_##S)(LD_##S(p[1] + i * s[1]));         \
            memcpy(p[0] + i * s[0], &v, sizeof v);                                    \
        }                                                                             \
    }
#define CAST_FROM(S)                                                                  \
    CAST_LOOP(S, f32) CAST_LOOP(S, f64) CAST_LOOP(S, i32) CAST_LOOP(S, i64)           \
    CAST_LOOP(S, b) CAST_LOOP(S, f16) CAST_LOOP(S, bf16) CAST_LOOP(S, i8)             \
    CAST_LOOP(S, u8) CAST_LOOP(S, i16)
CAST_FROM(f32)
CAST_FROM(f64)
CAST_FROM(i32)
CAST_FROM(i64)
CAST_FROM(b)
CAST_FROM(f16)
CAST_FROM(bf16)
CAST_FROM(i8)
CAST_FROM(u8)
CAST_FROM(i16)

#define CROW(f)                                                                       \
    {c_##f##_f32, c_##f##_f64, c_##f##_i32, c_##f##_i64, c_##f##_b,                   \
     c_##f##_f16, c_##f##_bf16, c_##f##_i8, c_##f##_u8, c_##f##_i16}
/* Indexed by amber_dtype code (source, destination). */
static const am_row_fn CAST_LOOPS[10][10] = {CROW(f32), CROW(f64), CROW(i32), CROW(i64),
                                             CROW(b),   CROW(f16), CROW(bf16), CROW(i8),
                                             CROW(u8),  CROW(i16)};

amber_status k_cast(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                    const am_attrs *a, amber_tensor *out) {
    (void)a;
    return run_map(ctx, op, am_elementwise_loop(op, in[0].dtype, out->dtype), in, n, out);
}

/* ---------------------------------------------------------------- loop selection */

am_row_fn am_elementwise_loop(const am_op *op, amber_dtype in0, amber_dtype out) {
    size_t id = (size_t)op->id;
    if (!am_dtype_valid((int)in0) || !am_dtype_valid((int)out)) return NULL;
    if (op->kind == AM_KIND_CAST) return CAST_LOOPS[in0][out];
    /* NOTE: storage dtypes (codes 5..9) have no loops: am_kernel_call widens them first. */
    if (in0 > AMBER_BOOL || out > AMBER_BOOL) return NULL;
    if (op->kind == AM_KIND_UNARY) return id < AM_ARRAY_LEN(UNARY_LOOPS) ? UNARY_LOOPS[id][in0] : NULL;
    if (op->kind == AM_KIND_BINARY) return id < AM_ARRAY_LEN(BINARY_LOOPS) ? BINARY_LOOPS[id][in0] : NULL;
    if (op->kind == AM_KIND_WHERE) {
        size_t z = amber_dtype_size(out);
        return z == 1 ? where1 : z == 4 ? where4 : where8;
    }
    return NULL;
}

/* ---------------------------------------------------------------- fused groups */

/* Elements per block: every intermediate result of a block stays in L1 (16 steps x 512 x
 * 8 bytes at most, and far less for the usual 2-6 float32 steps). */
#define FUSED_BLOCK 512
#define FUSED_SLOT ((size_t)FUSED_BLOCK * 8)

typedef struct fused_ud {
    const am_fused *g;
    char *tmp; /* one slot per step but the last */
} fused_ud;

/* Elements [c, c + m) of one row (m <= a slot's elements): each step's row loop in turn,
 * intermediate results in the slots of tmp (`slot` bytes apart). */
void am_fused_block(const am_fused *g, char *const *p, const int64_t *s, int64_t c, int64_t m,
                    char *tmp, size_t slot) {
    for (int j = 0; j < g->n_steps; j++) {
        const am_fused_step *st = &g->steps[j];
        char *q[4];
        int64_t qs[4];
        if (j == g->n_steps - 1) {
            q[0] = p[0] + c * s[0];
            qs[0] = s[0];
        } else {
            q[0] = tmp + (size_t)j * slot;
            qs[0] = (int64_t)amber_dtype_size(st->dtype);
        }
        for (int k = 0; k < st->n_in; k++) {
            int src = st->src[k];
            if (src >= 0) {
                q[k + 1] = p[src + 1] + c * s[src + 1];
                qs[k + 1] = s[src + 1];
            } else {
                q[k + 1] = tmp + (size_t)(-src - 1) * slot;
                qs[k + 1] = (int64_t)amber_dtype_size(g->steps[-src - 1].dtype);
            }
        }
        st->fn(q, qs, m, NULL);
    }
}

/* One row of the output: block by block. */
static void fused_row(char **p, const int64_t *s, int64_t n, void *ud) {
    const fused_ud *u = (const fused_ud *)ud;
    for (int64_t c = 0; c < n; c += FUSED_BLOCK)
        am_fused_block(u->g, p, s, c, n - c < FUSED_BLOCK ? n - c : FUSED_BLOCK, u->tmp, FUSED_SLOT);
}

/* A large group runs on the pool: tasks take slices of the outermost iterator dim (an
 * element's value does not depend on which task computes it). */
typedef struct fused_job {
    const am_fused *g;
    am_iter it;
    char *base[AM_ITER_MAX_OPS];
    char **tmp; /* per worker */
    int64_t chunk;
} fused_job;

static void fused_task(void *ud, int64_t t, int worker) {
    const fused_job *j = (const fused_job *)ud;
    am_iter sub = j->it;
    int64_t lo = t * j->chunk, len = sub.shape[0] - lo < j->chunk ? sub.shape[0] - lo : j->chunk;
    sub.shape[0] = len;
    char *base[AM_ITER_MAX_OPS];
    for (int k = 0; k < sub.nops; k++) base[k] = j->base[k] + lo * sub.strides[k][0];
    fused_ud u = {j->g, j->tmp[worker]};
    am_iter_run(&sub, base, fused_row, &u);
}

amber_status am_fused_run(const am_fused *g, am_ctx *ctx, const amber_tensor *ext,
                          amber_tensor *out) {
    fused_job j = {g, {0}, {NULL}, NULL, 0};
    int64_t strides[AM_ITER_MAX_OPS][AMBER_MAX_RANK];
    am_contig_strides(out->shape, out->rank, amber_dtype_size(out->dtype), strides[0]);
    j.base[0] = (char *)out->data;
    for (int k = 0; k < g->n_ext; k++) {
        am_bcast_strides(&ext[k], out->shape, out->rank, strides[k + 1]);
        j.base[k + 1] = (char *)ext[k].data;
    }
    am_iter_init(&j.it, g->n_ext + 1, out->rank, out->shape, strides);
    int64_t numel = am_numel(out), outer = j.it.shape[0];
    int workers = numel >= AM_ELEMENTS_PARALLEL_MIN && outer > 1 ? am_pool_size(ctx->pool) : 1;
    int64_t tasks = 1;
    if (workers > 1) {
        tasks = outer < 4 * (int64_t)workers ? outer : 4 * (int64_t)workers;
        j.chunk = (outer + tasks - 1) / tasks;
        tasks = (outer + j.chunk - 1) / j.chunk;
        if (tasks < 2) workers = 1;
    }
    amber_status st = am_arena_alloc(ctx->scratch, sizeof(char *) * (size_t)workers,
                                     (void **)&j.tmp, ctx->err);
    for (int w = 0; st == AMBER_OK && w < workers; w++)
        st = am_arena_alloc(ctx->scratch, (size_t)(g->n_steps - 1) * FUSED_SLOT + 1,
                            (void **)&j.tmp[w], ctx->err);
    if (st != AMBER_OK) return st;
    if (workers > 1) {
        am_pool_run(ctx->pool, tasks, fused_task, &j);
    } else {
        fused_ud u = {g, j.tmp[0]};
        am_iter_run(&j.it, j.base, fused_row, &u);
    }
    return AMBER_OK;
}
