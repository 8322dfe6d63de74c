/* Reductions: sum (in the input dtype, integers wrap, float32 accumulated in double),
 * max/min (NaN propagates), argmax/argmin (first extremum; the first NaN wins; for bool
 * False < True). */
#include "ops.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#include <immintrin.h>
#endif

typedef uint8_t b8;
typedef int32_t i32;
typedef int64_t i64;

/* A loop's attributes by its input type (KATTR(TI)), as in k_elementwise.c: the floats'
 * loops at full speed, those of the integers and bool (rare in bulk) compiled for size. */
#define RARE __attribute__((cold))
#define KATTR(TI) KATTR_##TI
#define KATTR_float
#define KATTR_double
#define KATTR_i32 RARE
#define KATTR_i64 RARE
#define KATTR_b8 RARE

/* acc[i*s0] = COMBINE(acc[i*s0], x[i*s1]); a reduced inner axis has s0 == 0. ROWS is
 * COMBINE for independent accumulators (the same result, perhaps computed otherwise). */
#define REDUCE_ROW(NAME, TA, TI, COMBINE, ROWS)                                \
    KATTR(TI) static void NAME(char **p, const int64_t *s, int64_t n,          \
                               void *ud) {                                     \
        (void)ud;                                                              \
        if (s[0] == 0) {                                                       \
            TA acc = *(TA *)p[0];                                              \
            for (int64_t i = 0; i < n; i++) {                                  \
                TI v = *(const TI *)(p[1] + i * s[1]);                         \
                acc = COMBINE(acc, v);                                         \
            }                                                                  \
            *(TA *)p[0] = acc;                                                 \
        } else {                                                               \
            for (int64_t i = 0; i < n; i++) {                                  \
                TA *acc = (TA *)(p[0] + i * s[0]);                             \
                TI v = *(const TI *)(p[1] + i * s[1]);                         \
                *acc = ROWS(*acc, v);                                          \
            }                                                                  \
        }                                                                      \
    }

#define ADD32(acc, v) ((i32)((uint32_t)(acc) + (uint32_t)(v)))
#define ADD64(acc, v) ((i64)((uint64_t)(acc) + (uint64_t)(v)))
#define MAXV(acc, v) (((acc) >= (v) || AM_ISNAN(acc)) ? (acc) : (v))
#define MINV(acc, v) (((acc) <= (v) || AM_ISNAN(acc)) ? (acc) : (v))
/* The same for independent float accumulators, as a bitwise select: on real data which
 * one wins is random and a branch on it mispredicts half the time (in a chain of
 * dependent compares the branch is cheaper: a new extremum soon turns rare). */
#define MAXF(acc, v) am_select_float(((acc) >= (v)) | ((acc) != (acc)), (acc), (v))
#define MAXD(acc, v) am_select_double(((acc) >= (v)) | ((acc) != (acc)), (acc), (v))
#define MINF(acc, v) am_select_float(((acc) <= (v)) | ((acc) != (acc)), (acc), (v))
#define MIND(acc, v) am_select_double(((acc) <= (v)) | ((acc) != (acc)), (acc), (v))

/* Float sums: a contiguous row into one accumulator takes eight partial sums (element i
 * into partial i % 8, added pairwise at the end), so the adds do not wait on each other
 * and vectorise. The order depends only on the row's length, as every order here does. */
typedef float float_v2 __attribute__((vector_size(8)));
typedef double double_v2 __attribute__((vector_size(16)));
/* Two consecutive elements of x as doubles (the 8 partials below live in 4 registers). */
#define PAIR(TI, x) __extension__({ TI##_v2 v_; memcpy(&v_, (x), sizeof v_);             \
                                    __builtin_convertvector(v_, double_v2); })
#define SUM_ROW(NAME, TI)                                                      \
    static void NAME(char **p, const int64_t *s, int64_t n, void *ud) {        \
        (void)ud;                                                              \
        if (s[0] == 0 && s[1] == (int64_t)sizeof(TI) && n >= 16) {             \
            const TI *x = (const TI *)(const void *)p[1];                      \
            /* the partials in registers (an array would go through memory) */ \
            double_v2 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                  \
            int64_t i = 0;                                                     \
            for (; i + 8 <= n; i += 8) {                                       \
                a0 += PAIR(TI, x + i);                                         \
                a1 += PAIR(TI, x + i + 2);                                     \
                a2 += PAIR(TI, x + i + 4);                                     \
                a3 += PAIR(TI, x + i + 6);                                     \
            }                                                                  \
            double part[8];                                                    \
            memcpy(part, &a0, 16), memcpy(part + 2, &a1, 16);                  \
            memcpy(part + 4, &a2, 16), memcpy(part + 6, &a3, 16);              \
            for (; i < n; i++) part[i % 8] += (double)x[i];                    \
            double sum = ((part[0] + part[1]) + (part[2] + part[3])) +         \
                         ((part[4] + part[5]) + (part[6] + part[7]));          \
            *(double *)(void *)p[0] += sum;                                    \
            return;                                                            \
        }                                                                      \
        if (s[0] == 0) {                                                       \
            double acc = *(double *)(void *)p[0];                              \
            for (int64_t i = 0; i < n; i++) acc += (double)*(const TI *)(p[1] + i * s[1]); \
            *(double *)(void *)p[0] = acc;                                     \
        } else if (s[0] == (int64_t)sizeof(double) && s[1] == (int64_t)sizeof(TI)) { \
            /* a row into a row of accumulators (a reduced outer axis): the same  \
             * adds, contiguous, so they vectorise */                           \
            double *acc = (double *)(void *)p[0];                              \
            const TI *x = (const TI *)(const void *)p[1];                      \
            for (int64_t i = 0; i < n; i++) acc[i] += (double)x[i];            \
        } else {                                                               \
            for (int64_t i = 0; i < n; i++)                                    \
                *(double *)(void *)(p[0] + i * s[0]) += (double)*(const TI *)(p[1] + i * s[1]); \
        }                                                                      \
    }

SUM_ROW(sum_f32, float)
SUM_ROW(sum_f64, double)

/* float32 sums of a contiguous block whose reduced dims are all inner (rows) or all outer
 * (columns), in wide vectors: the same adds in the same order as sum_f32 through the
 * iterator (the same bits), without a call per row. A row of 16 or more takes its eight
 * partials as the lanes of one vector, then the pairwise tree; a shorter row one chain; a
 * column one chain per element, eight columns a vector. */
typedef float f32x8 __attribute__((vector_size(32)));
typedef double f64x8 __attribute__((vector_size(64)));
#define SUM_F32_BLOCK(SUF, ATTR)                                                   \
    ATTR static void sum_block_##SUF(const float *x, int64_t r0, int64_t r1,       \
                                     int64_t n, int64_t cols, float *out) {        \
        if (!cols) { /* rows r0..r1 of n */                                        \
            for (int64_t r = r0; r < r1; r++) out[r] = (float)row_##SUF(x + r * n, n); \
            return;                                                                \
        }                                                                          \
        /* columns r0..r1 of n rows of `cols` */                                   \
        int64_t c = r0;                                                            \
        for (; c + 32 <= r1; c += 32) {                                            \
            f64x8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                          \
            f32x8 v0, v1, v2, v3;                                                  \
            for (const float *p = x + c; p < x + n * cols + c; p += cols) {        \
                memcpy(&v0, p, 32), memcpy(&v1, p + 8, 32);                        \
                memcpy(&v2, p + 16, 32), memcpy(&v3, p + 24, 32);                  \
                a0 += __builtin_convertvector(v0, f64x8);                          \
                a1 += __builtin_convertvector(v1, f64x8);                          \
                a2 += __builtin_convertvector(v2, f64x8);                          \
                a3 += __builtin_convertvector(v3, f64x8);                          \
            }                                                                      \
            v0 = __builtin_convertvector(a0, f32x8);                               \
            v1 = __builtin_convertvector(a1, f32x8);                               \
            v2 = __builtin_convertvector(a2, f32x8);                               \
            v3 = __builtin_convertvector(a3, f32x8);                               \
            memcpy(out + c, &v0, 32), memcpy(out + c + 8, &v1, 32);                \
            memcpy(out + c + 16, &v2, 32), memcpy(out + c + 24, &v3, 32);          \
        }                                                                          \
        for (; c < r1; c++) {                                                      \
            double acc = 0.0;                                                      \
            for (int64_t r = 0; r < n; r++) acc += (double)x[r * cols + c];        \
            out[c] = (float)acc;                                                   \
        }                                                                          \
    }
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
/* One row's sum (above); its last n - i (< 8) elements into partials 0.. (the others +
 * 0.0: unchanged, a partial from +0.0 is never -0.0). NOTE: one masked load (row_avx2's too); element by
 * element the partials went through memory, a stalled reload per row (a 7x7 plane's sum
 * 2x). */
__attribute__((target("avx512f"))) static double row_avx512(const float *x, int64_t n) {
    double acc = 0.0;
    if (n < 16) {
        for (int64_t i = 0; i < n; i++) acc += (double)x[i];
        return acc;
    }
    f32x8 v;
    f64x8 a = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&v, x + i, sizeof v);
        a += __builtin_convertvector(v, f64x8);
    }
    a += (f64x8)_mm512_cvtps_pd(
        _mm512_castps512_ps256(_mm512_maskz_loadu_ps(am_lanes16(0, n - i), x + i)));
    a += __builtin_shufflevector(a, a, 1, 0, 3, 2, 5, 4, 7, 6);
    a += __builtin_shufflevector(a, a, 2, 3, 0, 1, 6, 7, 4, 5);
    a += __builtin_shufflevector(a, a, 4, 5, 6, 7, 0, 1, 2, 3);
    return acc + a[0];
}
/* row_avx512's sums on AVX2 in two 4-lane halves (GCC's 8-lane double vectors there went
 * through the stack: a 7x7 plane's sum took ~100 ns): partials 0-3 and 4-7, the tail by a
 * masked load (+0.0 in the other lanes), then the same tree, ((0 + 1) + (2 + 3)) +
 * ((4 + 5) + (6 + 7)). */
__attribute__((target("avx2"))) static double row_avx2(const float *x, int64_t n) {
    double acc = 0.0;
    if (n < 16) {
        for (int64_t i = 0; i < n; i++) acc += (double)x[i];
        return acc;
    }
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    const __m256 v = _mm256_maskload_ps(x + i, _mm256_cmpgt_epi32(
        _mm256_set1_epi32((int)(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    const __m256d r = _mm256_hadd_pd(lo, hi); /* 0 + 1, 4 + 5, 2 + 3, 6 + 7 */
    const __m256d u = _mm256_add_pd(r, _mm256_permute4x64_pd(r, 0x4e));
    return acc + (u[0] + u[1]);
}
SUM_F32_BLOCK(avx2, __attribute__((target("avx2"))))
SUM_F32_BLOCK(avx512, __attribute__((target("avx512f"))))

typedef struct sum_job {
    void (*fn)(const float *, int64_t, int64_t, int64_t, int64_t, float *);
    const float *x;
    int64_t n, cols, chunk, len;
    float *out;
} sum_job;

static void sum_task(void *ud, int64_t t, int worker) {
    (void)worker;
    const sum_job *j = (const sum_job *)ud;
    int64_t r0 = t * j->chunk, r1 = r0 + j->chunk < j->len ? r0 + j->chunk : j->len;
    j->fn(j->x, r0, r1, j->n, j->cols, j->out);
}

/* The sum of a float32 x whose reduced dims are all inner or all outer, into out; false
 * (nothing done) for other sums, empty ones, and CPUs without AVX2. */
static bool sum_f32_block(am_ctx *ctx, const amber_tensor *x, const bool *reduced,
                          amber_tensor *out) {
    int isa = am_cpu_isa(), r = x->rank, lead = 0, trail = 0;
    int64_t numel = am_numel(x);
    if (isa < AM_GEMM_ISA_AVX2 || numel == 0) return false;
    while (lead < r && reduced[lead]) lead++;
    while (trail < r && reduced[r - 1 - trail]) trail++;
    int n_red = 0;
    for (int d = 0; d < r; d++) n_red += reduced[d];
    if (n_red != trail && n_red != lead) return false;
    int64_t inner = 1; /* a row's length (rows) */
    for (int d = r - trail; d < r; d++) inner *= x->shape[d];
    sum_job j = {isa >= AM_GEMM_ISA_AVX512 ? sum_block_avx512 : sum_block_avx2, x->data, inner,
                 0, 0, am_numel(out), out->data};
    if (n_red != trail) j.cols = j.len, j.n = numel / j.len; /* columns of n rows */
    am_pool *pool = numel >= AM_SUM_SPLIT_MIN ? am_pool_for(ctx->pool, (double)numel) : NULL;
    int64_t tasks = pool ? 4 * (int64_t)am_pool_size(pool) : 1;
    j.chunk = (j.len + tasks - 1) / tasks;
    if (j.cols && j.chunk % 32) j.chunk += 32 - j.chunk % 32; /* whole vectors of columns */
    am_pool_run(pool, (j.len + j.chunk - 1) / j.chunk, sum_task, &j);
    return true;
}
#else
static bool sum_f32_block(am_ctx *ctx, const amber_tensor *x, const bool *reduced,
                          amber_tensor *out) {
    (void)ctx, (void)x, (void)reduced, (void)out;
    return false;
}
#endif
REDUCE_ROW(sum_i32, i32, i32, ADD32, ADD32)
REDUCE_ROW(sum_i64, i64, i64, ADD64, ADD64)
REDUCE_ROW(max_f32, float, float, MAXV, MAXF)
REDUCE_ROW(max_f64, double, double, MAXV, MAXD)
REDUCE_ROW(max_i32, i32, i32, MAXV, MAXV)
REDUCE_ROW(max_i64, i64, i64, MAXV, MAXV)
REDUCE_ROW(max_b, b8, b8, MAXV, MAXV)
REDUCE_ROW(min_f32, float, float, MINV, MINF)
REDUCE_ROW(min_f64, double, double, MINV, MIND)
REDUCE_ROW(min_i32, i32, i32, MINV, MINV)
REDUCE_ROW(min_i64, i64, i64, MINV, MINV)
REDUCE_ROW(min_b, b8, b8, MINV, MINV)

static void fill_identity(void *dst, amber_dtype dt, int64_t n, am_op_id op, bool f32_as_double) {
    bool mx = op == AM_OP_MAX;
    for (int64_t i = 0; i < n; i++) {
        if (op == AM_OP_SUM) {
            size_t z = f32_as_double ? sizeof(double) : amber_dtype_size(dt);
            memset((char *)dst + (size_t)i * z, 0, z);
            continue;
        }
        switch (dt) {
        case AMBER_FLOAT32: ((float *)dst)[i] = mx ? -INFINITY : INFINITY; break;
        case AMBER_FLOAT64: ((double *)dst)[i] = mx ? -INFINITY : INFINITY; break;
        case AMBER_INT32: ((i32 *)dst)[i] = mx ? INT32_MIN : INT32_MAX; break;
        case AMBER_INT64: ((i64 *)dst)[i] = mx ? INT64_MIN : INT64_MAX; break;
        case AMBER_BOOL: ((b8 *)dst)[i] = mx ? 0 : 1; break;
        default: break; /* storage dtypes are widened before kernels run */
        }
    }
}

/* max/min over a short innermost run of reduced elements (a softmax's rows): the reduced
 * dims iterated outermost, so that each row of the loop updates many accumulators
 * independently instead of one through a chain of dependent compares. Each accumulator
 * still takes its elements in the same order: the same result. */
enum { REDUCE_SHORT_RUN = 32, REDUCE_ROWS_MAX = 1 << 18 /* (larger: split by threads) */ };
static void reduced_outermost(int rank, const bool *reduced, int64_t *shape,
                              int64_t strides[][AMBER_MAX_RANK]) {
    int64_t run = 1, kept = 1;
    for (int d = rank - 1; d >= 0 && reduced[d]; d--) run *= shape[d];
    for (int d = 0; d < rank; d++) kept *= reduced[d] ? 1 : shape[d];
    if (run < 2 || run > REDUCE_SHORT_RUN || kept < 2) return;
    int64_t sh[AMBER_MAX_RANK], st[2][AMBER_MAX_RANK];
    int k = 0;
    for (int pass = 1; pass >= 0; pass--)
        for (int d = 0; d < rank; d++)
            if (reduced[d] == (bool)pass) {
                sh[k] = shape[d], st[0][k] = strides[0][d], st[1][k] = strides[1][d];
                k++;
            }
    memcpy(shape, sh, sizeof(int64_t) * (size_t)rank);
    for (int i = 0; i < 2; i++) memcpy(strides[i], st[i], sizeof(int64_t) * (size_t)rank);
}

/* float32 max/min over a short run of trailing elements (a softmax's rows), sixteen rows
 * at a time: a row a lane, its elements gathered in order through the select of MAXF/MINF
 * (the same bits as the row loop); the last rows one by one through MAXV/MINV. False
 * (nothing done) for other reductions and without AVX-512. */
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#define REDUCE_AVX512 __attribute__((target("avx512f")))
static REDUCE_AVX512 void extreme_rows_avx512(const float *x, int64_t rows, int64_t n, float *out,
                                              bool mx) {
    __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)n));
    int64_t r = 0;
    for (; r + 16 <= rows; r += 16) {
        const float *b = x + r * n;
        __m512 acc = _mm512_set1_ps(mx ? -INFINITY : INFINITY);
        for (int64_t i = 0; i < n; i++) {
            __m512 v = _mm512_i32gather_ps(idx, b + i, 4);
            __mmask16 keep = (mx ? _mm512_cmp_ps_mask(acc, v, _CMP_GE_OQ)
                                 : _mm512_cmp_ps_mask(acc, v, _CMP_LE_OQ)) |
                             _mm512_cmp_ps_mask(acc, acc, _CMP_UNORD_Q);
            acc = _mm512_mask_blend_ps(keep, v, acc);
        }
        _mm512_storeu_ps(out + r, acc);
    }
    for (; r < rows; r++) {
        float acc = mx ? -INFINITY : INFINITY;
        for (int64_t i = 0; i < n; i++)
            acc = mx ? MAXV(acc, x[r * n + i]) : MINV(acc, x[r * n + i]);
        out[r] = acc;
    }
}
#endif

static bool extreme_rows_f32(const amber_tensor *x, const bool *reduced, bool mx,
                             amber_tensor *out) {
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
    int r = x->rank, trail = 0, n_red = 0;
    for (int d = 0; d < r; d++) n_red += reduced[d];
    while (trail < r && reduced[r - 1 - trail]) trail++;
    int64_t run = 1, numel = am_numel(x);
    for (int d = r - trail; d < r; d++) run *= x->shape[d];
    if (x->dtype != AMBER_FLOAT32 || n_red != trail || run < 2 || run > REDUCE_SHORT_RUN ||
        numel == 0 || numel > REDUCE_ROWS_MAX || am_cpu_isa() < AM_GEMM_ISA_AVX512)
        return false;
    extreme_rows_avx512((const float *)x->data, numel / run, run, (float *)out->data, mx);
    return true;
#else
    (void)x, (void)reduced, (void)mx, (void)out;
    return false;
#endif
}

amber_status k_reduce(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                      const am_attrs *a, amber_tensor *out) {
    (void)n;
    static const am_row_fn loops[3][5] = {
        {sum_f32, sum_f64, sum_i32, sum_i64, NULL},
        {max_f32, max_f64, max_i32, max_i64, max_b},
        {min_f32, min_f64, min_i32, min_i64, min_b}};
    const amber_tensor *x = &in[0];
    int which = op->id == AM_OP_SUM ? 0 : op->id == AM_OP_MAX ? 1 : 2;
    am_row_fn fn = loops[which][x->dtype];
    if (!fn)
        return am_fail(ctx->err, AMBER_ERR_DTYPE, "%s: dtype %s is not supported", op->name,
                       amber_dtype_name(x->dtype));
    int64_t numel_out = am_numel(out);
    bool widen = op->id == AM_OP_SUM && x->dtype == AMBER_FLOAT32;
    bool reduced[AMBER_MAX_RANK] = {false};
    for (int i = 0; i < a->n_axes; i++) reduced[a->axes[i]] = true;
    if (widen && sum_f32_block(ctx, x, reduced, out)) return AMBER_OK;
    if (which && extreme_rows_f32(x, reduced, which == 1, out)) return AMBER_OK;
    void *acc = out->data;
    if (widen) {
        amber_status st = am_arena_calloc(ctx->scratch, (size_t)numel_out, sizeof(double), &acc,
                                          ctx->err);
        if (st != AMBER_OK) return st;
    }
    fill_identity(acc, x->dtype, numel_out, op->id, widen);
    /* The accumulator viewed with x's rank: reduced axes have stride 0. */
    int64_t kshape[AMBER_MAX_RANK], strides[AM_ITER_MAX_OPS][AMBER_MAX_RANK];
    for (int d = 0; d < x->rank; d++) kshape[d] = reduced[d] ? 1 : x->shape[d];
    am_contig_strides(kshape, x->rank, widen ? sizeof(double) : amber_dtype_size(x->dtype),
                      strides[0]);
    for (int d = 0; d < x->rank; d++)
        if (reduced[d]) strides[0][d] = 0;
    am_contig_strides(x->shape, x->rank, amber_dtype_size(x->dtype), strides[1]);
    int64_t shape[AMBER_MAX_RANK];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->rank);
    if (which) reduced_outermost(x->rank, reduced, shape, strides);
    am_iter it;
    am_iter_init(&it, 2, x->rank, shape, strides);
    char *base[2] = {(char *)acc, (char *)x->data};
    am_iter_run_pool(ctx->pool, &it, base, fn, NULL);
    if (widen)
        for (int64_t i = 0; i < numel_out; i++) ((float *)out->data)[i] = (float)((double *)acc)[i];
    return AMBER_OK;
}

#define ARG_LOOP(NAME, T, BETTER)                                                    \
    KATTR(T) static void NAME(const void *data, int64_t outer, int64_t len,          \
                              int64_t inner, int64_t *res) {                         \
        const T *x = (const T *)data;                                                \
        for (int64_t o = 0; o < outer; o++)                                          \
            for (int64_t i = 0; i < inner; i++) {                                    \
                const T *row = x + o * len * inner + i;                              \
                T best = row[0];                                                     \
                int64_t at = 0;                                                      \
                if (!AM_ISNAN(best))                                                    \
                    for (int64_t j = 1; j < len; j++) {                              \
                        T v = row[j * inner];                                        \
                        if (AM_ISNAN(v)) {                                                \
                            at = j;                                                  \
                            break;                                                   \
                        }                                                            \
                        if (v BETTER best) {                                         \
                            best = v;                                                \
                            at = j;                                                  \
                        }                                                            \
                    }                                                                \
                res[o * inner + i] = at;                                             \
            }                                                                        \
    }
ARG_LOOP(argmax_f32, float, >)
ARG_LOOP(argmax_f64, double, >)
ARG_LOOP(argmax_i32, i32, >)
ARG_LOOP(argmax_i64, i64, >)
ARG_LOOP(argmin_f32, float, <)
ARG_LOOP(argmin_f64, double, <)
ARG_LOOP(argmin_i32, i32, <)
ARG_LOOP(argmin_i64, i64, <)
ARG_LOOP(argmax_b, b8, >)
ARG_LOOP(argmin_b, b8, <)

typedef void (*arg_fn)(const void *, int64_t, int64_t, int64_t, int64_t *);

amber_status k_arg(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                   const am_attrs *a, amber_tensor *out) {
    (void)n;
    (void)ctx;
    static const arg_fn loops[2][5] = {
        {argmax_f32, argmax_f64, argmax_i32, argmax_i64, argmax_b},
        {argmin_f32, argmin_f64, argmin_i32, argmin_i64, argmin_b}};
    const amber_tensor *x = &in[0];
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < a->axis; d++) outer *= x->shape[d];
    for (int d = (int)a->axis + 1; d < x->rank; d++) inner *= x->shape[d];
    loops[op->id == AM_OP_ARGMIN][x->dtype](x->data, outer, x->shape[a->axis], inner,
                                            (int64_t *)out->data);
    return AMBER_OK;
}
