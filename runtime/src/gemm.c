/* Dense matrix products for matmul and the convolutions: a blocked GEMM on packed
 * panels (BLIS-style loops around an MR x NR register tile) and, for one or two rows, a
 * GEMV that streams B's rows (or B's packed slivers: the same bits), with four partial
 * sums per column when B is narrower than a sliver. A constant B (a weight) may be
 * packed once and reused by both (am_gemm_pack_b_*).
 *
 * Kernels come in three instruction sets: AVX-512 (the register tile) and AVX2 + FMA on
 * x86-64 CPUs that have them (chosen at run time), portable C vector extensions
 * elsewhere. Summation order per
 * output element depends only on k (the KC blocking) and on the path, which depends only
 * on the shapes: never on the thread count or on how columns or rows are split. */
#include "ops.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#define AM_X86 1
#include <immintrin.h>
#else
#define AM_X86 0
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));

#define SPLAT8(s) ((v8f){(s), (s), (s), (s), (s), (s), (s), (s)})
#define SPLAT4(s) ((v4d){(s), (s), (s), (s)})

/* ---------------------------------------------------------------- kernels */

/* Portable: written as multiply, then add. A compiler that contracts expressions (clang
 * on a target with FMA) fuses the vector and the scalar forms alike. Each inclusion of
 * gemm_kernel.inc undefines its parameters (all but MR and KATTR). */
#define KATTR AM_PORTABLE
#define MR 6
#define MRP 12 /* rows of a packed A panel: the AVX-512 tile; other kernels take it in two */

#define KSUF f32_generic
#define T float
#define V v8f
#define VL 8
#define VSPLAT SPLAT8
#define VFMA(a, b, c) ((c) + (a) * (b))
#define SFMA(a, b, c) ((c) + (a) * (b))
#include "gemm_kernel.inc"

#define KSUF f64_generic
#define T double
#define V v4d
#define VL 4
#define VSPLAT SPLAT4
#define VFMA(a, b, c) ((c) + (a) * (b))
#define SFMA(a, b, c) ((c) + (a) * (b))
#include "gemm_kernel.inc"
#undef KATTR

#if AM_X86
/* AVX2 + FMA: one rounding per multiply-add (within the sum bound of docs/opset.md). */
#define KATTR __attribute__((target("avx2,fma")))

#define KSUF f32_avx2
#define T float
#define V v8f
#define VL 8
#define VSPLAT SPLAT8
#define VFMA(a, b, c) ((v8f)_mm256_fmadd_ps((a), (b), (c)))
#define SFMA(a, b, c) __builtin_fmaf((a), (b), (c))
#define KNO_UKR
#include "gemm_kernel.inc"
#undef KATTR

/* (float64, rare in inference: its AVX2 kernels optimised for size) */
#define KATTR __attribute__((target("avx2,fma"), cold))
#define KSUF f64_avx2
#define T double
#define V v4d
#define VL 4
#define VSPLAT SPLAT4
#define VFMA(a, b, c) ((v4d)_mm256_fmadd_pd((a), (b), (c)))
#define SFMA(a, b, c) __builtin_fma((a), (b), (c))
#include "gemm_kernel.inc"
#undef KATTR

/* AVX-512: two adjacent B slivers (the second `bs` elements after the first, row p of
 * each `ldb` elements after row p - 1: packed, or B's own rows read in place) against one
 * A panel: 24 accumulators, two B loads and 24 multiply-adds (each broadcasting its A
 * element from memory). Each row's sum is formed in the same order as in the AVX2 and
 * generic kernels (p ascending, one fused multiply-add per step, then + C when
 * accumulating): the same bits as AVX2. With nr <= one vector, one sliver (a 14x14
 * image's last 4 columns: 12 accumulators). With SHORT, a panel of at most R = 4 or 8 real
 * rows (the last of a product whose rows are not a multiple of 12, such as 13, or 16 when
 * A is packed) computes only R rows: the zero padding costs nothing. */
#define AVX512_UKR2_ROWS(SUF, T, VEC, LOAD, SET1, FMADD, R, SHORT)                          \
    _Pragma("GCC unroll 12") for (int i = 0; i < R; i++) t[i][0] = t[i][1] = SET1(0);       \
    for (int64_t p = 0; p < kc; p++, a += MRP, b += ldb, b1 += ldb) {                       \
        VEC x0 = LOAD(b), x1 = LOAD(b1);                                                    \
        if (SHORT) UKR_PF_A(a); /* (float32: the convolutions) */                           \
        const T *a2 = a; /* a's value hidden from the compiler: each multiply-add reads */  \
        __asm__("" : "+r"(a2)); /* its own broadcast (24 instructions a step, not 36) */   \
        _Pragma("GCC unroll 12") for (int i = 0; i < R; i++) {                              \
            t[i][0] = FMADD(SET1(a[i]), x0, t[i][0]);                                       \
            t[i][1] = FMADD(SET1(a2[i]), x1, t[i][1]);                                      \
        }                                                                                   \
    }
/* A's panel 32 steps (1.5 KB for float32) ahead into L1: a convolution's weight, packed
 * per session, streams from memory on a column strip's first pass (the hardware
 * prefetcher alone left the tile ~8% short there). Integer arithmetic: a prefetch past
 * the end never faults (a pointer past it would be undefined). */
#define UKR_PF_A(a) _mm_prefetch((const char *)((uintptr_t)(a) + 32 * MRP * sizeof(*(a))), \
                                 _MM_HINT_T0)
#define UKR_MASK(MASKT, W, w) (MASKT)((w) >= (W) ? ~(MASKT)0 : (MASKT)(((MASKT)1 << (w)) - 1))
#define AVX512_UKR2(SUF, T, VEC, LOAD, SET1, FMADD, ADD, MASKLOAD, MASKSTORE, STORE, MASKT,   \
                    SHORT, EPI, COL)                                                        \
    __attribute__((target("avx512f"))) static void ukr2_##SUF##_avx512(                    \
        int64_t kc, const T *restrict a, const T *restrict b, int64_t bs, int64_t ldb,     \
        T *restrict c, int64_t ldc, int64_t mr, int64_t nr, bool acc,                       \
        const am_tile_epi *te) {                                                            \
        enum { W = sizeof(VEC) / sizeof(T) };                                               \
        VEC t[MRP][2];                                                                      \
        const T *b1 = nr > W ? b + bs : b;                                                  \
        _Pragma("GCC unroll 12") for (int i = 0; i < MRP; i++) t[i][0] = t[i][1] = SET1(0); \
        for (int64_t i = 0; i < mr; i++) { /* C's lines arrive during the products */       \
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);                         \
            _mm_prefetch((const char *)(c + i * ldc + (nr - 1) / 2), _MM_HINT_T0);          \
            _mm_prefetch((const char *)(c + i * ldc + nr - 1), _MM_HINT_T0);                \
        }                                                                                   \
        EPI##_PF(te, mr, nr, c, ldc);                                                       \
        if (nr <= W) { /* one sliver: half the multiply-adds */                             \
            _Pragma("GCC unroll 12") for (int i = 0; i < MRP; i++) t[i][0] = t[i][1] = SET1(0); \
            for (int64_t p = 0; p < kc; p++, a += MRP, b += ldb) {                          \
                VEC x0 = LOAD(b);                                                           \
                if (SHORT) UKR_PF_A(a);                                                     \
                _Pragma("GCC unroll 12") for (int i = 0; i < MRP; i++)                      \
                    t[i][0] = FMADD(SET1(a[i]), x0, t[i][0]);                               \
            }                                                                               \
        } COL else if (SHORT && mr <= 4) {                                                  \
            AVX512_UKR2_ROWS(SUF, T, VEC, LOAD, SET1, FMADD, 4, SHORT)                      \
        } else if (SHORT && mr <= 8) {                                                      \
            AVX512_UKR2_ROWS(SUF, T, VEC, LOAD, SET1, FMADD, 8, SHORT)                      \
        } else {                                                                            \
            AVX512_UKR2_ROWS(SUF, T, VEC, LOAD, SET1, FMADD, MRP, SHORT)                    \
        }                                                                                   \
        /* C added first when accumulating, then a register epilogue, then the stores (with \
         * SHORT constant indices: t stays in registers) */                                 \
        if (acc)                                                                            \
            _Pragma("GCC unroll 12") for (int i = 0; i < (SHORT ? MRP : mr); i++)           \
                _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {                       \
                    int64_t w = i < mr ? nr - h * W : 0;                                    \
                    T *ci = c + i * ldc + h * W;                                            \
                    if (w > 0)                                                              \
                        t[i][h] = ADD(MASKLOAD(SET1(0), UKR_MASK(MASKT, W, w), ci), t[i][h]); \
                }                                                                           \
        EPI(te, t, mr, nr);                                                                 \
        _Pragma("GCC unroll 12") for (int i = 0; i < (SHORT ? MRP : mr); i++)               \
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {                           \
                int64_t w = i < mr ? nr - h * W : 0;                                        \
                if (w > 0) MASKSTORE(c + i * ldc + h * W, UKR_MASK(MASKT, W, w), t[i][h]);  \
            }                                                                               \
    }
/* gemv against packed B (see gemv_packed in gemm_kernel.inc): one sliver is one vector
 * here, and eight slivers go at once (eight independent sums). Each column gets the same
 * fused multiply-adds in the same order as in the AVX2 gemv: the same bits. */
#define AVX512_GEMV_PACKED(SUF, T, VEC, LOAD, SET1, FMADD, MASKLOAD, MASKSTORE, STORE, MASKT) \
    __attribute__((target("avx512f"))) static void gemv_packed_##SUF##_avx512(               \
        int64_t k, const T *a, int64_t csa, const T *bp, T *restrict c, int64_t n, bool acc) { \
        enum { W = sizeof(VEC) / sizeof(T), S = 8 };                                          \
        const int64_t stride = k * W;                                                         \
        int64_t j = 0;                                                                        \
        for (; j + S * W <= n; j += S * W, bp += S * stride) {                                \
            VEC t[S];                                                                         \
            _Pragma("GCC unroll 8") for (int s = 0; s < S; s++)                               \
                t[s] = acc ? LOAD(c + j + s * W) : SET1(0);                                   \
            const T *b = bp;                                                                  \
            for (int64_t p = 0; p < k; p++, b += W) {                                         \
                VEC av = SET1(a[p * csa]);                                                    \
                _Pragma("GCC unroll 8") for (int s = 0; s < S; s++)                           \
                    t[s] = FMADD(av, LOAD(b + s * stride), t[s]);                             \
            }                                                                                 \
            _Pragma("GCC unroll 8") for (int s = 0; s < S; s++) STORE(c + j + s * W, t[s]);   \
        }                                                                                     \
        for (; j < n; j += W, bp += stride) { /* the last slivers, one at a time */          \
            int64_t w = n - j < W ? n - j : W;                                                \
            MASKT m = (MASKT)(w >= W ? ~(MASKT)0 : (MASKT)(((MASKT)1 << w) - 1));             \
            VEC t = acc ? MASKLOAD(SET1(0), m, c + j) : SET1(0);                              \
            const T *b = bp;                                                                  \
            for (int64_t p = 0; p < k; p++, b += W) t = FMADD(SET1(a[p * csa]), LOAD(b), t);  \
            MASKSTORE(c + j, m, t);                                                           \
        }                                                                                     \
    }
AVX512_GEMV_PACKED(f32, float, __m512, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps,
                   _mm512_mask_loadu_ps, _mm512_mask_storeu_ps, _mm512_storeu_ps, __mmask16)
AVX512_GEMV_PACKED(f64, double, __m512d, _mm512_loadu_pd, _mm512_set1_pd, _mm512_fmadd_pd,
                   _mm512_mask_loadu_pd, _mm512_mask_storeu_pd, _mm512_storeu_pd, __mmask8)
/* The register epilogue (am_tile_epi, am_epi.tile) on the tile's sums, each step over
 * all 12 rows in registers, the same IEEE operations as the vector code in k_epilogue.c:
 * max and min (chain first) as vmaxps / vminps with the operands swapped, which keeps a
 * NaN sum (the caller keeps NaN scalars away). Rows past mr (never stored) read nothing
 * (zero masks); their scalars (ev) are padding. */
#define TILE_EACH(...)                                                                      \
    do {                                                                                    \
        _Pragma("GCC unroll 12") for (int i = 0; i < MRP; i++) {                            \
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) { __VA_ARGS__; }            \
        }                                                                                   \
    } while (0)
#define TILE_INLINE __attribute__((target("avx512f"), always_inline)) inline
static TILE_INLINE void tile_epi_f32(const am_tile_epi *te, __m512 t[MRP][2], int64_t mr,
                                     int64_t nr) {
    const am_epi *e = te->at->e;
    const int ns = e->g->n_steps;
    const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffffu : (1u << nr) - 1u);
    const __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffffu : nr > 16 ? (1u << (nr - 16)) - 1u : 0);
#define TILE_M(i, h) (__mmask16)((i) < mr ? (h) ? m1 : m0 : 0)
    for (int s = 0; s < ns; s++) {
        const struct am_epi_op *o = &e->ops[s];
        const int k = o->kind[0] == EPI_TMP || (o->kind[0] == EPI_ROW && o->src[0] == e->g->self);
        const float *v = te->v + s;
#define TILE_V(i) _mm512_set1_ps(v[(i) * ns])
        if (o->kind[k] == EPI_ROW) { /* a row of another input, added */
            const int64_t sr = e->sr[o->src[k]];
            const char *q = e->base[o->src[k]] + te->at->img * e->sb[o->src[k]] + te->r * sr +
                            te->c * (int64_t)sizeof(float);
#define TILE_ROW(i, h) (const float *)(const void *)(q + (i) * sr) + 16 * (h)
            TILE_EACH(t[i][h] = _mm512_add_ps(t[i][h],
                                              _mm512_maskz_loadu_ps(TILE_M(i, h), TILE_ROW(i, h))));
#undef TILE_ROW
            continue;
        }
        switch (o->op) {
        case EPI_ADD: TILE_EACH(t[i][h] = _mm512_add_ps(t[i][h], TILE_V(i))); break;
        case EPI_SUB: TILE_EACH(t[i][h] = _mm512_sub_ps(t[i][h], TILE_V(i))); break;
        case EPI_MUL: TILE_EACH(t[i][h] = _mm512_mul_ps(t[i][h], TILE_V(i))); break;
        case EPI_DIV: TILE_EACH(t[i][h] = _mm512_div_ps(t[i][h], TILE_V(i))); break;
        case EPI_MAX: TILE_EACH(t[i][h] = _mm512_max_ps(TILE_V(i), t[i][h])); break;
        case EPI_MIN: TILE_EACH(t[i][h] = _mm512_min_ps(TILE_V(i), t[i][h])); break;
        case EPI_GT: /* and mul, where: x > a ? x : x * b (x * b where not x > a) */
            TILE_EACH(t[i][h] = _mm512_mask_mul_ps(
                          t[i][h], _mm512_cmp_ps_mask(t[i][h], TILE_V(i), _CMP_NGT_UQ),
                          t[i][h], _mm512_set1_ps(v[i * ns + 1])));
            s += 2;
            break;
        default: { /* le or ge, and the where after it: x <= a (x >= a) ? b : x */
#define TILE_SEL(P) TILE_EACH(t[i][h] = _mm512_mask_mov_ps(t[i][h],                           \
                                     _mm512_cmp_ps_mask(t[i][h], TILE_V(i), P),            \
                                     _mm512_set1_ps(v[i * ns + 1])))
            if (o->op == EPI_LE) TILE_SEL(_CMP_LE_OQ);
            else TILE_SEL(_CMP_GE_OQ);
#undef TILE_SEL
            s++;
        }
        }
#undef TILE_V
    }
#undef TILE_M
}
/* The lines of the next column strip (the same rows, 32 columns on) of C and of the rows
 * of other inputs the register epilogue adds, prefetched into L2 a whole strip ahead: a
 * residual read from memory after the products stalled the tile. The addresses are
 * integer arithmetic (a prefetch never faults; a pointer past the end would be
 * undefined). */
static TILE_INLINE void tile_pf(uintptr_t q, int64_t sr, int64_t mr) {
    for (int64_t i = 0; i < mr; i++, q += (uintptr_t)sr) {
        _mm_prefetch((const char *)q + 128, _MM_HINT_T1);
        _mm_prefetch((const char *)q + 128 + 64, _MM_HINT_T1);
    }
}
static TILE_INLINE void tile_epi_pf(const am_tile_epi *te, int64_t mr, float *c, int64_t ldc) {
    tile_pf((uintptr_t)c, ldc * (int64_t)sizeof(float), mr);
    if (!te) return;
    const am_epi *e = te->at->e;
    for (int s = 0; s < e->g->n_steps; s++) {
        const struct am_epi_op *o = &e->ops[s];
        const int k = o->kind[0] == EPI_TMP || (o->kind[0] == EPI_ROW && o->src[0] == e->g->self);
        if (o->kind[k] != EPI_ROW) continue;
        const int64_t sr = e->sr[o->src[k]];
        tile_pf((uintptr_t)e->base[o->src[k]] + (uintptr_t)(te->at->img * e->sb[o->src[k]] +
                te->r * sr + te->c * (int64_t)sizeof(float)), sr, mr);
    }
}
#define UKR_EPI_F32_PF(te, mr, nr, c, ldc) tile_epi_pf(te, mr, c, ldc)
#define UKR_EPI_NONE_PF(te, mr, nr, c, ldc) (void)(te)
#define UKR_EPI_F32(te, t, mr, nr) \
    if (te) tile_epi_f32(te, t, mr, nr)
#define UKR_EPI_NONE(te, t, mr, nr) (void)(te)
/* One sliver and one column more (a 49-pixel image's last 17), its column b1[0] with the
 * rows as lanes: one multiply-add a step, not a pass over A by cols_f32_avx512. The same
 * products and sums as a second sliver's lane 0 (the bits of a whole sliver), moved
 * there for the epilogue and the stores. */
#define UKR_COL_F32                                                                         \
    else if (nr == W + 1) {                                                                 \
        __m512 u = _mm512_setzero_ps();                                                     \
        for (int64_t p = 0; p < kc; p++, a += MRP, b += ldb, b1 += ldb) {                   \
            __m512 x0 = _mm512_loadu_ps(b);                                                 \
            UKR_PF_A(a);                                                                    \
            u = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(0xfff, a), _mm512_set1_ps(*b1), u);   \
            _Pragma("GCC unroll 12") for (int i = 0; i < MRP; i++)                          \
                t[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), x0, t[i][0]);               \
        }                                                                                   \
        _Pragma("GCC unroll 12") for (int i = 0; i < MRP; i++)                              \
            t[i][1] = _mm512_permutexvar_ps(_mm512_set1_epi32(i), u);                       \
    }
AVX512_UKR2(f32, float, __m512, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,
            _mm512_mask_loadu_ps, _mm512_mask_storeu_ps, _mm512_storeu_ps, __mmask16, 1,
            UKR_EPI_F32, UKR_COL_F32)
/* float64 (rarely hot) computes the zero rows of a short panel too: less code */
AVX512_UKR2(f64, double, __m512d, _mm512_loadu_pd, _mm512_set1_pd, _mm512_fmadd_pd,
            _mm512_add_pd, _mm512_mask_loadu_pd, _mm512_mask_storeu_pd, _mm512_storeu_pd,
            __mmask8, 0, UKR_EPI_NONE, )
/* The tile of ukr2 (or of ukr: nr <= one vector, its sliver then read twice) reading R =
 * 12 or 8 whole rows of a row-major A in place (rows lda apart) instead of a packed panel:
 * the same operations in the same order, so the same bits, without packing A. Rows are
 * addressed from four bases, R / 4 rows each (base, base + lda, base + 2 lda). */
#define AM_AVX512 __attribute__((target("avx512f")))
static AM_AVX512 __attribute__((always_inline)) inline void ukrd_rows_f32(
    int R, int64_t kc, const float *restrict a, int64_t lda, const float *restrict b, int64_t bs,
    float *restrict c, int64_t ldc, int64_t nr, bool acc, const am_tile_epi *te) {
    __m512 t[MRP][2];
    const int g = R / 4;
    const float *r[4] = {a, a + g * lda, a + 2 * g * lda, a + 3 * g * lda};
    const float *b1 = nr > 16 ? b + bs : b;
    for (int i = 0; i < R; i++) { /* C's lines arrive during the products */
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + nr - 1), _MM_HINT_T0);
    }
    _Pragma("GCC unroll 12") for (int i = 0; i < MRP; i++) t[i][0] = t[i][1] = _mm512_setzero_ps();
    if (nr <= 16) /* one sliver: half the multiply-adds */
        for (int64_t p = 0; p < kc; p++, b += 16) {
            __m512 x0 = _mm512_loadu_ps(b);
            _Pragma("GCC unroll 12") for (int i = 0; i < R; i++) t[i][0] = _mm512_fmadd_ps(
                _mm512_set1_ps(r[i / g][p + (i % g) * lda]), x0, t[i][0]);
        }
    else
        for (int64_t p = 0; p < kc; p++, b += 16, b1 += 16) {
            __m512 x0 = _mm512_loadu_ps(b), x1 = _mm512_loadu_ps(b1);
            _Pragma("GCC unroll 12") for (int i = 0; i < R; i++) {
                __m512 av = _mm512_set1_ps(r[i / g][p + (i % g) * lda]);
                t[i][0] = _mm512_fmadd_ps(av, x0, t[i][0]);
                t[i][1] = _mm512_fmadd_ps(av, x1, t[i][1]);
            }
        }
    __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1);
    __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffff : nr > 16 ? (1u << (nr - 16)) - 1 : 0);
    /* as ukr2: C added first when accumulating, then a register epilogue, then the stores */
    if (acc)
        _Pragma("GCC unroll 12") for (int i = 0; i < R; i++) {
            t[i][0] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c + i * ldc), t[i][0]);
            t[i][1] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + i * ldc + 16), t[i][1]);
        }
    if (te) tile_epi_f32(te, t, R, nr);
    _Pragma("GCC unroll 12") for (int i = 0; i < R; i++) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, t[i][0]);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, t[i][1]);
    }
}
static AM_AVX512 void ukrd_f32_avx512(int64_t kc, const float *restrict a, int64_t lda,
                                      const float *restrict b, int64_t bs, float *restrict c,
                                      int64_t ldc, int64_t mr, int64_t nr, bool acc,
                                      const am_tile_epi *te) {
    if (mr == 8)
        ukrd_rows_f32(8, kc, a, lda, b, bs, c, ldc, nr, acc, te);
    else
        ukrd_rows_f32(MRP, kc, a, lda, b, bs, c, ldc, nr, acc, te);
}

/* A small product (n <= 32, k <= SMALL_K: one k block) with no packing: B's rows read in
 * place (or from a contiguous copy on the stack), eight rows of A at a time. Each element
 * is the tile's chain of fused multiply-adds over p from zero (the same bits as the packed
 * path), added to C when accumulating. Attention's many 16 x 16 x 16 products spent more
 * time packing than multiplying. */
enum { SMALL_K = 64, SMALL_N = 32, SMALL_R = 8 };
static AM_AVX512 void small_f32_avx512(int64_t m, int64_t n, int64_t k, const float *A,
                                       int64_t rsa, int64_t csa, const float *B, int64_t rsb,
                                       int64_t csb, float *C, int64_t ldc, bool acc) {
    float copy[SMALL_K * SMALL_N];
    if (csb != 1) {
        for (int64_t p = 0; p < k; p++)
            for (int64_t j = 0; j < n; j++) copy[p * n + j] = B[p * rsb + j * csb];
        B = copy, rsb = n;
    }
    __mmask16 m0 = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
    __mmask16 m1 = (__mmask16)(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1 : 0);
    for (int64_t i0 = 0; i0 < m; i0 += SMALL_R) {
        const float *a[SMALL_R]; /* rows past m repeat row i0 (computed, not stored) */
        for (int i = 0; i < SMALL_R; i++) a[i] = A + (i0 + (i0 + i < m ? i : 0)) * rsa;
        __m512 t[SMALL_R][2];
        _Pragma("GCC unroll 8") for (int i = 0; i < SMALL_R; i++) t[i][0] = t[i][1] =
            _mm512_setzero_ps();
        if (m1) {
            for (int64_t p = 0; p < k; p++) {
                __m512 x0 = _mm512_maskz_loadu_ps(m0, B + p * rsb);
                __m512 x1 = _mm512_maskz_loadu_ps(m1, B + p * rsb + 16);
                _Pragma("GCC unroll 8") for (int i = 0; i < SMALL_R; i++) {
                    __m512 av = _mm512_set1_ps(a[i][p * csa]);
                    t[i][0] = _mm512_fmadd_ps(av, x0, t[i][0]);
                    t[i][1] = _mm512_fmadd_ps(av, x1, t[i][1]);
                }
            }
        } else {
            for (int64_t p = 0; p < k; p++) {
                __m512 x0 = _mm512_maskz_loadu_ps(m0, B + p * rsb);
                _Pragma("GCC unroll 8") for (int i = 0; i < SMALL_R; i++)
                    t[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[i][p * csa]), x0, t[i][0]);
            }
        }
        /* NOTE: unrolled, so that t stays in registers */
        _Pragma("GCC unroll 8") for (int i = 0; i < SMALL_R; i++) {
            if (i0 + i >= m) break;
            float *ci = C + (i0 + i) * ldc;
            __m512 x = acc ? _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), t[i][0]) : t[i][0];
            _mm512_mask_storeu_ps(ci, m0, x);
            if (!m1) continue;
            x = acc ? _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), t[i][1]) : t[i][1];
            _mm512_mask_storeu_ps(ci + 16, m1, x);
        }
    }
}
/* The last nc < 16 columns of a convolution's product (A kept packed: 12-row panels at ap,
 * kc deep; B read in place, rows ldb apart) with the rows as vector lanes: a 169-pixel
 * image's last 9 columns then cost 9 multiply-adds per 12 rows instead of a sliver of 16
 * (a 49-pixel image's last one: UKR_COL_F32). Four panels (48 rows) times up to four
 * columns at a time: each A load feeds every column (a 196-pixel image's last four). Each
 * element is the tile's chain of fused multiply-adds over p from zero, added to C when
 * accumulating: the same bits. */
enum { COLS_Q = 4, COLS_J = 4 };
/* J (a constant: no branch per step) of the nj columns at b, np <= 4 panels at a, into
 * out; fewer panels or columns compute their last one again in the others' place (never
 * stored). */
static AM_AVX512 __attribute__((always_inline)) inline void cols_blk_f32(
    const int J, int64_t kc, const float *a, int64_t np, const float *b, int64_t nj,
    int64_t ldb, float out[COLS_Q][COLS_J][16]) {
    const float *aq[COLS_Q];
    int64_t jo[COLS_J];
    __m512 t[COLS_Q][COLS_J];
    _Pragma("GCC unroll 4") for (int q = 0; q < COLS_Q; q++) {
        aq[q] = a + (q < np ? q : np - 1) * MRP * kc;
        _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) t[q][j] = _mm512_setzero_ps();
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) jo[j] = j < nj ? j : nj - 1;
    for (int64_t p = 0; p < kc; p++, b += ldb)
        _Pragma("GCC unroll 4") for (int q = 0; q < COLS_Q; q++) {
            __m512 av = _mm512_maskz_loadu_ps(0xfff, aq[q] + p * MRP);
            _Pragma("GCC unroll 4") for (int j = 0; j < J; j++)
                t[q][j] = _mm512_fmadd_ps(av, _mm512_set1_ps(b[jo[j]]), t[q][j]);
        }
    _Pragma("GCC unroll 4") for (int q = 0; q < COLS_Q; q++)
        _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) _mm512_storeu_ps(out[q][j], t[q][j]);
}
static AM_AVX512 void cols_f32_avx512(int64_t kc, const float *ap, int64_t mc,
                                      const float *b, int64_t ldb, int64_t nc, float *c,
                                      int64_t ldc, bool acc) {
    for (int64_t r0 = 0; r0 < mc; r0 += COLS_Q * MRP)
        for (int64_t j0 = 0; j0 < nc; j0 += COLS_J) {
            int64_t np = (mc - r0 + MRP - 1) / MRP, nj = nc - j0 < COLS_J ? nc - j0 : COLS_J;
            const float *a = ap + r0 * kc;
            float out[COLS_Q][COLS_J][16];
            np = np < COLS_Q ? np : COLS_Q;
            if (nj == 1) /* (a last column: a quarter of the multiply-adds) */
                cols_blk_f32(1, kc, a, np, b + j0, nj, ldb, out);
            else
                cols_blk_f32(COLS_J, kc, a, np, b + j0, nj, ldb, out);
            for (int64_t j = 0; j < nj; j++)
                for (int64_t i = 0; i < mc - r0 && i < COLS_Q * MRP; i++) {
                    float *ci = c + (r0 + i) * ldc + j0 + j, v = out[i / MRP][j][i % MRP];
                    *ci = acc ? *ci + v : v;
                }
        }
}
/* AVX2 + FMA: the ukr2 of AVX-512 with 8-lane vectors: each sliver against the panel as
 * two tiles of 6 rows x 16 columns (12 accumulators; B's rows ldb apart), C added when
 * accumulating, then the register epilogue (am_tile_epi) and the stores. Each sum as in
 * the other kernels (p ascending from +0, one fused multiply-add a step, then + C): the
 * same bits, without a pass of the epilogue over C. */
#define AM_AVX2 __attribute__((target("avx2,fma")))
enum { T2_ROWS = 6 };
/* lanes [0, n) of an 8-lane vector (n <= 0: none; n >= 8: all) */
static AM_AVX2 inline __m256i t2_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 0 ? 0 : n > 8 ? 8 : n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
/* The register epilogue on a tile's sums (rows [0, mr) stored; v: row 0's scalars, r its
 * row in the epilogue's view): tile_epi_f32's steps, the same IEEE operations. */
static AM_AVX2 __attribute__((always_inline)) inline void
t2_epi(const am_tile_epi *te, const float *v, int64_t r, __m256 t[T2_ROWS][2], int64_t mr,
       int64_t nr) {
    const am_epi *e = te->at->e;
    const int ns = e->g->n_steps;
    const __m256i m0 = t2_mask(nr), m1 = t2_mask(nr - 8);
#define T2_EACH(...)                                                                        \
    do {                                                                                    \
        _Pragma("GCC unroll 6") for (int i = 0; i < T2_ROWS; i++)                           \
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) { __VA_ARGS__; }            \
    } while (0)
#define T2_V(i) _mm256_set1_ps(v[(i) * ns + s])
    for (int s = 0; s < ns; s++) {
        const struct am_epi_op *o = &e->ops[s];
        const int k = o->kind[0] == EPI_TMP || (o->kind[0] == EPI_ROW && o->src[0] == e->g->self);
        if (o->kind[k] == EPI_ROW) { /* a row of another input, added */
            const int64_t sr = e->sr[o->src[k]];
            const char *q = e->base[o->src[k]] + te->at->img * e->sb[o->src[k]] + r * sr +
                            te->c * (int64_t)sizeof(float);
            T2_EACH(if (i < mr) t[i][h] = _mm256_add_ps(t[i][h], _mm256_maskload_ps(
                        (const float *)(const void *)(q + i * sr) + 8 * h, h ? m1 : m0)));
            continue;
        }
        switch (o->op) {
        case EPI_ADD: T2_EACH(t[i][h] = _mm256_add_ps(t[i][h], T2_V(i))); break;
        case EPI_SUB: T2_EACH(t[i][h] = _mm256_sub_ps(t[i][h], T2_V(i))); break;
        case EPI_MUL: T2_EACH(t[i][h] = _mm256_mul_ps(t[i][h], T2_V(i))); break;
        case EPI_DIV: T2_EACH(t[i][h] = _mm256_div_ps(t[i][h], T2_V(i))); break;
        case EPI_MAX: T2_EACH(t[i][h] = _mm256_max_ps(T2_V(i), t[i][h])); break;
        case EPI_MIN: T2_EACH(t[i][h] = _mm256_min_ps(T2_V(i), t[i][h])); break;
        case EPI_GT: /* and mul, where: x > a ? x : x * b (x * b where not x > a) */
            T2_EACH(t[i][h] = _mm256_blendv_ps(
                        t[i][h], _mm256_mul_ps(t[i][h], _mm256_set1_ps(v[i * ns + s + 1])),
                        _mm256_cmp_ps(t[i][h], T2_V(i), _CMP_NGT_UQ)));
            s += 2;
            break;
        default: /* le or ge, and the where after it: x <= a (x >= a) ? b : x */
#define T2_SEL(P) T2_EACH(t[i][h] = _mm256_blendv_ps(t[i][h], _mm256_set1_ps(v[i * ns + s + 1]), \
                                                    _mm256_cmp_ps(t[i][h], T2_V(i), P)))
            if (o->op == EPI_LE) T2_SEL(_CMP_LE_OQ);
            else T2_SEL(_CMP_GE_OQ);
#undef T2_SEL
            s++;
        }
    }
#undef T2_V
}
/* One tile: rows [0, mr <= 6) of the panel at a (MRP apart; row r0 of te's) by the nr <= 16
 * columns at b. A last single column of a product (a 7x7 image's 49th) has its rows as
 * lanes, one chain of multiply-adds bound by their latency: so with col, the sliver
 * before it computes it too (one more multiply-add a step, in its shadow) into colv, and
 * the column's own call (nr 1, col NULL) only finishes colv's sums. */
#define T2_FULL(MORE)                                                                       \
    for (int64_t p = 0; p < kc; p++, a += MRP, b += ldb) {                                  \
        const __m256 x0 = _mm256_loadu_ps(b), x1 = _mm256_loadu_ps(b + 8);                  \
        _Pragma("GCC unroll 6") for (int i = 0; i < T2_ROWS; i++) {                         \
            const __m256 av = _mm256_broadcast_ss(a + i);                                   \
            t[i][0] = _mm256_fmadd_ps(av, x0, t[i][0]);                                     \
            t[i][1] = _mm256_fmadd_ps(av, x1, t[i][1]);                                     \
        }                                                                                   \
        MORE;                                                                               \
    }
static AM_AVX2 void t2_tile(int64_t kc, const float *restrict a, const float *restrict b,
                            int64_t ldb, float *restrict c, int64_t ldc, int64_t mr,
                            int64_t nr, bool acc, const am_tile_epi *te, int64_t r0,
                            const float *col, float *colv) {
    __m256 t[T2_ROWS][2], u = _mm256_setzero_ps();
    const __m256i six = t2_mask(T2_ROWS); /* (the panel's rows past the tile's: not read) */
    _Pragma("GCC unroll 6") for (int i = 0; i < T2_ROWS; i++)
        t[i][0] = t[i][1] = _mm256_setzero_ps();
    if (nr == 1) { /* one column: the rows as lanes, as UKR_COL_F32 */
        for (int64_t p = 0; colv == NULL && p < kc; p++, a += MRP, b += ldb)
            u = _mm256_fmadd_ps(_mm256_maskload_ps(a, six), _mm256_broadcast_ss(b), u);
        float own[8];
        if (colv == NULL) _mm256_storeu_ps(colv = own, u);
        _Pragma("GCC unroll 6") for (int i = 0; i < T2_ROWS; i++)
            t[i][0] = _mm256_broadcast_ss(colv + i);
    } else if (nr <= 8) { /* half a sliver: half the multiply-adds */
        for (int64_t p = 0; p < kc; p++, a += MRP, b += ldb) {
            const __m256 x0 = _mm256_loadu_ps(b);
            _Pragma("GCC unroll 6") for (int i = 0; i < T2_ROWS; i++)
                t[i][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + i), x0, t[i][0]);
        }
    } else if (col) {
        T2_FULL(u = _mm256_fmadd_ps(_mm256_maskload_ps(a, six), _mm256_broadcast_ss(col), u);
                col += ldb)
        _mm256_storeu_ps(colv, u);
    } else {
        T2_FULL((void)0)
    }
    /* (whole rows without masks: AMD's masked stores are slow) */
    const bool whole = nr == 16;
    const __m256i m0 = t2_mask(nr), m1 = t2_mask(nr - 8);
    if (acc)
        T2_EACH(if (i < mr) t[i][h] = _mm256_add_ps(
                    whole ? _mm256_loadu_ps(c + i * ldc + 8 * h)
                          : _mm256_maskload_ps(c + i * ldc + 8 * h, h ? m1 : m0), t[i][h]));
    if (te)
        t2_epi(te, te->v + r0 * te->at->e->g->n_steps, te->r + r0, t, mr, nr);
    T2_EACH(if (i >= mr) continue;
            if (whole) _mm256_storeu_ps(c + i * ldc + 8 * h, t[i][h]);
            else _mm256_maskstore_ps(c + i * ldc + 8 * h, h ? m1 : m0, t[i][h]));
}
#undef T2_EACH
#undef T2_FULL
static AM_AVX2 void ukr2_f32_avx2(int64_t kc, const float *restrict a, const float *restrict b,
                                  int64_t bs, int64_t ldb, float *restrict c, int64_t ldc,
                                  int64_t mr, int64_t nr, bool acc, const am_tile_epi *te) {
    float colv[MRP / T2_ROWS][8]; /* a last single column's sums (t2_tile) */
    for (int64_t s = 0; s * 16 < nr; s++) {
        am_tile_epi ts;
        if (te) ts = *te, ts.c += 16 * s;
        const bool col = nr == 16 * s + 17, done = nr == 16 * s + 1 && s > 0;
        for (int64_t h = 0; h < mr; h += T2_ROWS)
            t2_tile(kc, a + h, b + s * bs, ldb, c + h * ldc + 16 * s, ldc,
                    mr - h < T2_ROWS ? mr - h : T2_ROWS, nr - 16 * s < 16 ? nr - 16 * s : 16,
                    acc, te ? &ts : NULL, h, col ? b + (s + 1) * bs : NULL,
                    col || done ? colv[h / T2_ROWS] : NULL);
    }
}
#endif
#undef MR

/* ---------------------------------------------------------------- dispatch */

static atomic_int isa_choice = -1; /* -1: not decided; AM_GEMM_ISA_* otherwise */

static int detect_isa(void) { return am_cpu_best_isa(); }

static int current_isa(void) {
    int isa = atomic_load_explicit(&isa_choice, memory_order_relaxed);
    if (isa < 0) {
        isa = detect_isa();
        atomic_store_explicit(&isa_choice, isa, memory_order_relaxed);
    }
    return isa;
}

int am_cpu_isa(void) { return current_isa(); }

int am_gemm_set_isa(int isa) {
    int best = detect_isa();
    if (isa < 0 || isa > best) isa = best;
    atomic_store_explicit(&isa_choice, isa, memory_order_relaxed);
    return isa;
}

/* ---------------------------------------------------------------- driver */

/* Rows up to this count use the GEMV path (B read once per row, A never packed). */
#define GEMV_ROWS 2

/* Whether the small-product kernel computed C (see small_f32_avx512): float32 on AVX-512,
 * more rows than the GEMV path takes, n <= 32 and k <= 64. */
static bool small_f32(int64_t m, int64_t n, int64_t k, const float *A, int64_t rsa,
                      int64_t csa, const float *B, int64_t rsb, int64_t csb, float *C,
                      int64_t ldc, bool acc) {
#if AM_X86
    if (m > GEMV_ROWS && n > 0 && n <= SMALL_N && k > 0 && k <= SMALL_K && B &&
        current_isa() >= AM_GEMM_ISA_AVX512) {
        small_f32_avx512(m, n, k, A, rsa, csa, B, rsb, csb, C, ldc, acc);
        return true;
    }
#else
    (void)m, (void)n, (void)k, (void)A, (void)rsa, (void)csa, (void)B, (void)rsb, (void)csb;
    (void)C, (void)ldc, (void)acc;
#endif
    return false;
}

static bool small_f64(int64_t m, int64_t n, int64_t k, const double *A, int64_t rsa,
                      int64_t csa, const double *B, int64_t rsb, int64_t csb, double *C,
                      int64_t ldc, bool acc) {
    (void)m, (void)n, (void)k, (void)A, (void)rsa, (void)csa, (void)B, (void)rsb, (void)csb;
    (void)C, (void)ldc, (void)acc;
    return false;
}
/* Columns per GEMV task: that much of a C row stays in L1 while B streams past. */
#define GEMV_CHUNK 1024
/* The am_keep kind of a packed B (or'ed with the element size). */
#define KEEP_KIND_PACKED_B 0x4700u
#define KEEP_KIND_PACKED_A 0x4100u
/* Columns of C per epilogue call: the block (MC rows of them) is still in L2. */
#define EPI_COLS 256
/* Scalars of a register epilogue per task (rows x steps; more: the epilogue's pass). */
#define EPI_REGS_MAX 2048
/* Columns per packed block of a B made while packing (am_gemm_bsrc). */
#define NC_IMPLICIT 256

/* Columns [0, kc - kc % 4) of the first `rows` (a multiple of 4) of w contiguous rows (row
 * stride rsa) packed as pack_a does (dst[p * w + i] = a[i * rsa + p]; w 12, or 16 for a
 * sliver of a B whose columns are contiguous: K^T), four columns at a time: 4 x 4
 * transposes in 16-byte vectors. Returns how many columns it packed. */
static int64_t pack_a4_f32(float *dst, const float *a, int64_t rsa, int64_t kc, int64_t rows,
                           int64_t w) {
    typedef float v4f __attribute__((vector_size(16)));
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4, dst += 4 * w)
        for (int g = 0; g < rows; g += 4) {
            const float *r = a + g * rsa + p;
            v4f r0, r1, r2, r3;
            memcpy(&r0, r, sizeof r0);
            memcpy(&r1, r + rsa, sizeof r1);
            memcpy(&r2, r + 2 * rsa, sizeof r2);
            memcpy(&r3, r + 3 * rsa, sizeof r3);
            v4f t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5);
            v4f t1 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5);
            v4f t2 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
            v4f t3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
            r0 = __builtin_shufflevector(t0, t1, 0, 1, 4, 5);
            r1 = __builtin_shufflevector(t0, t1, 2, 3, 6, 7);
            r2 = __builtin_shufflevector(t2, t3, 0, 1, 4, 5);
            r3 = __builtin_shufflevector(t2, t3, 2, 3, 6, 7);
            memcpy(dst + g, &r0, sizeof r0);
            memcpy(dst + w + g, &r1, sizeof r1);
            memcpy(dst + 2 * w + g, &r2, sizeof r2);
            memcpy(dst + 3 * w + g, &r3, sizeof r3);
        }
    return p;
}
static int64_t pack_a4_f64(double *dst, const double *a, int64_t rsa, int64_t kc,
                           int64_t rows, int64_t w) {
    (void)dst, (void)a, (void)rsa, (void)kc, (void)rows, (void)w;
    return 0;
}

/* The register epilogue's scalars of rows [r0, r0 + n) of image img into v (row i's at
 * v + i * steps), as am_epi_row_scalars reads them, step by step: each step's scalars
 * are a column apart (independent loads: the lines, often cold, arrive together). Whether
 * one is NaN. */
static bool epi_scalars(const am_epi *e, int64_t img, int64_t r0, int64_t n, float *v) {
    const int ns = e->g->n_steps;
    bool nan = false;
    for (int s = 0; s < ns; s++) { /* every line asked for first: they arrive together */
        const int64_t sr = e->sr[e->ops[s].other], step = sr == 4 ? 16 : 1;
        const char *p = e->base[e->ops[s].other] + img * e->sb[e->ops[s].other] + r0 * sr;
        for (int64_t i = 0; i < (sr ? n : 1); i += step) __builtin_prefetch(p + i * sr);
    }
    for (int s = 0; s < ns; s++) {
        const int src = e->ops[s].other;
        const int64_t sr = e->sr[src];
        const char *p = e->base[src] + img * e->sb[src] + r0 * sr;
        const bool zero = e->over && e->sc[src];
        for (int64_t i = 0; i < n; i++) {
            float x = zero ? 0.0f : *(const float *)(const void *)(p + i * sr);
            v[i * ns + s] = x;
            nan |= x != x;
        }
    }
    return nan;
}

/* Rows of a block of mc read in place (ukrd) as panels of 12, the last 8 rows where mc % 12
 * is 8 as a panel of 8, the last 16 where mc % 12 is 4 as two (a 4-row tile, packed, ran
 * 16 x 128 x 512 about 5% slower than 8 + 8); any other short last panel packed (ukr2). */
static int64_t direct_rows(int64_t mc) {
    return mc % MRP == 8 || (mc % MRP == 4 && mc > MRP) ? mc : mc / MRP * MRP;
}

#define GEMM_DRIVER(SUF, T, MR, NR, KC, MC, NC)                                               \
    typedef struct kern_##SUF {                                                               \
        /* one sliver; or NULL when ukr2 (two at once, or one: nr <= NR) is there */        \
        void (*ukr)(int64_t, const T *, const T *, T *, int64_t, int64_t, int64_t, bool);     \
        void (*ukr2)(int64_t, const T *, const T *, int64_t, int64_t, T *, int64_t, int64_t,  \
                     int64_t, bool, const am_tile_epi *);                                     \
        void (*gemv)(int64_t, const T *, int64_t, const T *, int64_t, T *, int64_t, bool);    \
        void (*gemv_packed)(int64_t, const T *, int64_t, const T *, T *, int64_t, bool);      \
        /* mr (MR or 8) whole rows of A read in place, one or two slivers; or NULL */        \
        void (*ukrd)(int64_t, const T *, int64_t, const T *, int64_t, T *, int64_t, int64_t,  \
                     int64_t, bool, const am_tile_epi *);                                     \
        /* a last partial sliver, A kept packed, B in place (cols_f32_avx512); or NULL */    \
        void (*cols)(int64_t, const T *, int64_t, const T *, int64_t, int64_t, T *, int64_t,  \
                     bool);                                                                   \
    } kern_##SUF;                                                                             \
    static const kern_##SUF kerns_##SUF[] = {                                                 \
        {ukr_##SUF##_generic, NULL, gemv_##SUF##_generic, gemv_packed_##SUF##_generic, NULL,  \
         NULL},                                                                               \
        GEMM_AVX2_ENTRY(SUF), GEMM_AVX512_ENTRY(SUF)};                                        \
                                                                                              \
    /* KC blocks of nearly equal size: the blocking (and so the rounding) depends on k only. */ \
    static int64_t kc_of_##SUF(int64_t k) {                                                   \
        int64_t blocks = (k + KC - 1) / KC;                                                   \
        return (k + blocks - 1) / blocks;                                                     \
    }                                                                                         \
                                                                                              \
    /* Packs B[0:kc, 0:nc] into NR-column slivers, one every `stride` elements, each kc x NR \
     * row-major with zero padding past nc. */                                                \
    static void pack_b_##SUF(T *dst, int64_t stride, const T *B, int64_t rsb, int64_t csb,   \
                             int64_t kc, int64_t nc) {                                        \
        for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += stride) {                              \
            int64_t nr = nc - j0 < NR ? nc - j0 : NR;                                         \
            const T *b = B + j0 * csb;                                                        \
            if (csb == 1 && nr == NR) {                                                       \
                for (int64_t p = 0; p < kc; p++) memcpy(dst + p * NR, b + p * rsb, sizeof(T) * NR); \
                continue;                                                                     \
            }                                                                                 \
            if (nr < NR)                                                                      \
                for (int64_t p = 0; p < kc; p++)                                              \
                    memset(dst + p * NR + nr, 0, sizeof(T) * (size_t)(NR - nr));              \
            /* columns contiguous (K^T): by 4 x 4 transposes, then column-wise */            \
            int64_t p0 = rsb == 1 && nr == NR ? pack_a4_##SUF(dst, b, csb, kc, NR, NR) : 0;   \
            for (int64_t j = 0; j < nr; j++) /* column-wise: contiguous when rsb == 1 */      \
                for (int64_t p = p0; p < kc; p++) dst[p * NR + j] = b[p * rsb + j * csb];     \
        }                                                                                     \
    }                                                                                         \
                                                                                              \
    /* Packs A[0:mc, 0:kc] into MR-row panels (kc x MR each), zero-padded past mc. */         \
    static void pack_a_##SUF(T *dst, const T *A, int64_t rsa, int64_t csa, int64_t mc,       \
                             int64_t kc) {                                                    \
        for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {                             \
            int64_t mr = mc - i0 < MR ? mc - i0 : MR;                                         \
            const T *a = A + i0 * rsa;                                                        \
            if (mr < MR)                                                                      \
                for (int64_t p = 0; p < kc; p++)                                              \
                    for (int64_t i = mr; i < MR; i++) dst[p * MR + i] = 0;                    \
            /* p outer: the MR rows stream in together (one miss at a time is slow). Rows  \
             * [0, r4) by transposes (a short panel's too), the rest one by one. */         \
            int64_t r4 = csa == 1 && MR == 12 ? mr / 4 * 4 : 0;                               \
            int64_t p0 = r4 ? pack_a4_##SUF(dst, a, rsa, kc, r4, MR) : 0;                     \
            for (int64_t p = p0; p < kc; p++)                                                 \
                for (int64_t i = 0; i < r4; i++) dst[p * MR + i] = a[i * rsa + p];            \
            for (int64_t p = 0; p < kc; p++)                                                  \
                for (int64_t i = r4; i < mr; i++) dst[p * MR + i] = a[i * rsa + p * csa];     \
        }                                                                                     \
    }                                                                                         \
                                                                                              \
    size_t am_gemm_packed_len_##SUF(int64_t k, int64_t n) {                                   \
        return (size_t)((n + NR - 1) / NR) * NR * (size_t)k;                                  \
    }                                                                                         \
                                                                                              \
    void am_gemm_pack_b_##SUF(const T *B, int64_t rsb, int64_t csb, int64_t k, int64_t n,    \
                              T *dst) {                                                       \
        pack_b_##SUF(dst, k * NR, B, rsb, csb, k, n);                                         \
    }                                                                                         \
                                                                                              \
    typedef struct job_##SUF {                                                                \
        const kern_##SUF *K;                                                                  \
        const T *A, *B;                                                                       \
        int64_t rsa, csa, rsb, csb;                                                           \
        T *C;                                                                                 \
        int64_t ldc, m, n, k;                                                                 \
        bool acc;                                                                             \
        /* the current (jc, pc) block: packed slivers at bp, one every bstride elements */   \
        const T *bp;                                                                          \
        T *bpack;                                                                             \
        int64_t bstride, jc, nc, pc, kc;                                                      \
        int64_t mc, nj, chunk; /* rows per MC block; column chunks per block, chunk width */ \
        int64_t pchunk;        /* slivers per packing task */                                \
        T **apack;             /* per worker: one packed MC x kc block of A */               \
        const T *akept;        /* or A packed whole (am_gemm_kept_a): block (pc, ic) at    \
                                  akept + mpad * pc + ic * kc */                             \
        int64_t mpad;                                                                         \
        T *ashared; /* or all of the k block of A, packed once for every task (at ic * kc) */ \
        const am_gemm_epi *epi; /* finished blocks of C, or NULL */                          \
        const am_gemm_bsrc *bsrc; /* or B made while packing (then B is NULL) */             \
        bool bdirect; /* B's whole slivers read in place (bp: only a last partial one) */    \
        bool wide;    /* ... and a last partial sliver by K->cols (not packed) */            \
        int64_t pk;   /* rows of the given packed B (its first k used), or 0: k */           \
        int64_t fcols, fgroups, fncb; /* fused_task_*: columns, groups of mc rows, piece */   \
        size_t blen;            /* fused: elements of each worker's own packed B block */     \
    } job_##SUF;                                                                              \
                                                                                              \
    static void gemv_task_##SUF(void *ud, int64_t t, int worker) {                            \
        (void)worker;                                                                         \
        const job_##SUF *j = (const job_##SUF *)ud;                                           \
        int64_t j0 = t * j->chunk, j1 = j0 + j->chunk < j->n ? j0 + j->chunk : j->n;          \
        for (int64_t i = 0; i < j->m; i++) /* chunks are whole slivers (a multiple of NR) */ \
            if (j->bp)                                                                        \
                j->K->gemv_packed(j->k, j->A + i * j->rsa, j->csa, j->bp + (j0 / NR) * j->k * NR, \
                                  j->C + i * j->ldc + j0, j1 - j0, j->acc);                   \
            else                                                                              \
                j->K->gemv(j->k, j->A + i * j->rsa, j->csa, j->B + j0, j->rsb,                \
                           j->C + i * j->ldc + j0, j1 - j0, j->acc);                          \
        if (j->epi) j->epi->fn(j->epi->ud, 0, j->m, j0, j1 - j0);                             \
    }                                                                                         \
                                                                                              \
    /* Task t packs slivers [t * pchunk, (t + 1) * pchunk) of the current block. */            \
    static void pack_task_##SUF(void *ud, int64_t t, int worker) {                            \
        (void)worker;                                                                         \
        const job_##SUF *j = (const job_##SUF *)ud;                                           \
        int64_t j0 = t * j->pchunk * NR;                                                      \
        int64_t j1 = j0 + j->pchunk * NR < j->nc ? j0 + j->pchunk * NR : j->nc;               \
        if (j->bsrc) {                                                                        \
            j->bsrc->pack(j->bsrc->ud, j->bpack + (j0 / NR) * j->bstride, j->bstride, j->pc,  \
                          j->kc, j->jc + j0, j1 - j0, NR);                                    \
            return;                                                                           \
        }                                                                                     \
        pack_b_##SUF(j->bpack + (j0 / NR) * j->bstride, j->bstride,                           \
                     j->B + j->pc * j->rsb + (j->jc + j0) * j->csb, j->rsb, j->csb, j->kc,    \
                     j1 - j0);                                                                \
    }                                                                                         \
                                                                                              \
    /* Task t packs A's row panel t of the current k block into the shared block. */         \
    static void pack_a_task_##SUF(void *ud, int64_t t, int worker) {                          \
        (void)worker;                                                                         \
        const job_##SUF *j = (const job_##SUF *)ud;                                           \
        int64_t i0 = t * MR, mr = j->m - i0 < MR ? j->m - i0 : MR;                            \
        pack_a_##SUF(j->ashared + i0 * j->kc, j->A + i0 * j->rsa + j->pc * j->csa, j->rsa,    \
                     j->csa, mr, j->kc);                                                      \
    }                                                                                         \
                                                                                              \
    /* Whether whole panels of A may be read in place (float32 only; row-major, not kept  \
     * packed). NOTE: rows a multiple of 4 KiB apart all fall in one set of the L1 cache:  \
     * packed instead. */                                                                     \
    static bool direct_##SUF(const job_##SUF *j) {                                            \
        return sizeof(T) == sizeof(float) && j->K->ukrd && j->csa == 1 && !j->akept &&        \
               (j->rsa * (int64_t)sizeof(T)) % 4096;                                          \
    }                                                                                         \
                                                                                              \
    /* Whether B's whole slivers may be read in place instead of packed (float32 with the  \
     * AVX-512 tile, row-major B, and A packed per session: a convolution's weight times    \
     * its image, whose packing costs as much as the tile's loads save). The same tile on \
     * the same values: the same bits. NOTE: rows a multiple of 4 KiB apart: packed (see   \
     * direct_*). (AVX2's tile ran up to 16% slower on B in place: packed there.) */        \
    static void b_in_place_##SUF(job_##SUF *j, const T *packed) {                             \
        j->bdirect = sizeof(T) == sizeof(float) && j->K->ukrd && j->akept && j->B &&          \
                     j->csb == 1 && !packed && !j->bsrc && (j->rsb * (int64_t)sizeof(T)) % 4096; \
        j->wide = j->bdirect && j->K->cols && j->n % NR;                                      \
    }                                                                                         \
                                                                                              \
    /* The last nc < NR columns of rows [ic, ic + mc) by K->cols (A kept packed at ap), 48   \
     * rows at a time, then the register epilogue (tp: te, the rows' scalars at ev): the tile \
     * of no products adds the sums (never -0: chains start at +0) to +0, applies it and     \
     * stores them, bit for bit. Written over the epilogue's input (am_epi.over): through a \
     * buffer, so that the epilogue reads that input before the result goes there. */       \
    static void cols_epi_##SUF(const job_##SUF *j, const T *ap, int64_t ic, int64_t mc,       \
                               int64_t jr, int64_t nc, bool acc, am_tile_epi *tp,             \
                               const float *ev) {                                             \
        const bool over = tp && tp->at->e->over;                                              \
        T buf[4 * MR * NR];                                                                   \
        for (int64_t r0 = 0; r0 < mc; r0 += 4 * MR) {                                         \
            int64_t rows = mc - r0 < 4 * MR ? mc - r0 : 4 * MR;                               \
            T *c = j->C + (ic + r0) * j->ldc + j->jc + jr, *d = over ? buf : c;               \
            int64_t ldd = over ? NR : j->ldc;                                                 \
            j->K->cols(j->kc, ap + r0 * j->kc, rows, j->B + j->pc * j->rsb + j->jc + jr,      \
                       j->rsb, nc, d, ldd, acc);                                              \
            for (int64_t ir = 0; tp && ir < rows; ir += MR) {                                 \
                tp->v = ev + (r0 + ir) * tp->at->e->g->n_steps;                               \
                tp->r = tp->at->row + ic + r0 + ir, tp->c = j->jc + jr;                       \
                j->K->ukr2(0, ap, ap, 0, 0, d + ir * ldd, ldd, rows - ir < MR ? rows - ir : MR, \
                           nc, true, tp);                                                     \
            }                                                                                 \
            for (int64_t i = 0; over && i < rows; i++)                                        \
                memcpy(c + i * j->ldc, buf + i * NR, sizeof(T) * (size_t)nc);                 \
        }                                                                                     \
    }                                                                                         \
                                                                                              \
    /* Task t: one MC block of rows times one chunk of the block's columns. */               \
    static void gemm_task_##SUF(void *ud, int64_t t, int worker) {                            \
        const job_##SUF *j = (const job_##SUF *)ud;                                           \
        int64_t ic = (t / j->nj) * j->mc, mc = j->m - ic < j->mc ? j->m - ic : j->mc;         \
        int64_t j0 = (t % j->nj) * j->chunk;                                                  \
        int64_t j1 = j0 + j->chunk < j->nc ? j0 + j->chunk : j->nc;                           \
        /* Panels of rows below `whole` are read in place at ad, the others packed at ap; \
         * whole == mc: the last 8 or 16 rows as panels of 8 (direct_rows). */              \
        int64_t whole = !j->ashared && direct_##SUF(j) ? direct_rows(mc) : 0;                 \
        const T *ap = j->ashared ? j->ashared + ic * j->kc : j->apack[worker];                \
        const T *ad = whole ? j->A + ic * j->rsa + j->pc : NULL;                              \
        if (j->akept)                                                                         \
            ap = j->akept + j->mpad * j->pc + ic * j->kc;                                     \
        else if (!j->ashared && whole < mc)                                                   \
            pack_a_##SUF(j->apack[worker], j->A + (ic + whole) * j->rsa + j->pc * j->csa,     \
                         j->rsa, j->csa, mc - whole, j->kc);                                  \
        bool acc = j->acc || j->pc > 0;                                                       \
        /* On the last k block, the epilogue takes finished columns in spans of EPI_COLS. */ \
        const am_gemm_epi *epi = j->pc + j->kc >= j->k ? j->epi : NULL;                       \
        /* ... or the AVX-512 tiles (ukr2, ukrd) apply a register epilogue: rows' scalars ev */\
        float ev[EPI_REGS_MAX];                                                               \
        am_tile_epi te = {NULL, ev, 0, 0}, *tp = NULL;                                        \
        if (epi && epi->regs && sizeof(T) == sizeof(float) && j->K->ukr2 &&                   \
            (mc + MR) * epi->regs->e->g->n_steps <= EPI_REGS_MAX) {                           \
            const am_epi_at *at = te.at = epi->regs;                                          \
            int64_t ns = at->e->g->n_steps, i = mc;                                           \
            /* (max and min as vmaxps / vminps need the scalars) */                          \
            bool nan = epi_scalars(at->e, at->img, at->row + ic, mc, ev);                     \
            for (; i % MR; i++) memcpy(ev + i * ns, ev, sizeof(float) * (size_t)ns);          \
            if (!nan) epi = NULL, tp = &te;                                                   \
        }                                                                                     \
        int64_t done = j0, dend = j->bdirect ? j->nc / NR * NR : 0;                           \
        for (int64_t jr = j0; jr < j1;) {                                                     \
            if (epi && jr - done >= EPI_COLS) {                                               \
                epi->fn(epi->ud, ic, mc, j->jc + done, jr - done);                            \
                done = jr;                                                                    \
            }                                                                                 \
            if (sizeof(T) == 4 && j->wide && j1 - jr < NR) { /* the last sliver by columns */ \
                cols_epi_##SUF(j, ap, ic, mc, jr, j1 - jr, acc, tp, ev);                      \
                break;                                                                        \
            }                                                                                 \
            const T *b = j->bp + ((jr - dend) / NR) * j->bstride;                             \
            T *c = j->C + ic * j->ldc + j->jc + jr;                                           \
            int64_t w = j->K->ukr2 ? 2 : 1; /* slivers per pass over A (at most) */           \
            int64_t nr = j1 - jr < w * NR ? j1 - jr : w * NR, bs = j->bstride, ldb = NR;      \
            bool pf = false; /* the next pass's lines (rows far apart), a share per tile */   \
            if (jr < dend) { /* B in place: rows rsb apart, slivers NR apart */               \
                b = j->B + j->pc * j->rsb + j->jc + jr, bs = NR, ldb = j->rsb;                \
                /* (a last 17 columns: one sliver and a column, in ukr2) */                  \
                nr = nr < dend - jr || (j->wide && j1 - jr == NR + 1) ? nr : dend - jr;      \
                /* (B's block read by an earlier block of rows stays in L2) */               \
                pf = jr + 2 * w * NR <= dend &&                                               \
                     (ic == 0 || j->kc * ldb * (int64_t)sizeof(T) > (256 << 10));             \
            }                                                                                 \
            for (int64_t ir = 0, mr; ir < mc; ir += mr) {                                     \
                mr = mc - ir < MR ? mc - ir : MR;                                             \
                if (whole == mc && mc - ir <= MR + 4 && mc - ir != MR) mr = 8; /* see above */ \
                for (int64_t p = pf ? j->kc * ir / mc : 0; pf && p < j->kc * (ir + mr) / mc; p++) \
                    __builtin_prefetch(b + p * ldb + w * NR, 0, 2),                           \
                        __builtin_prefetch(b + p * ldb + w * NR + NR, 0, 2);                  \
                if (tp) /* the tile's rows and columns in the epilogue's view */              \
                    te.v = ev + ir * te.at->e->g->n_steps, te.r = te.at->row + ic + ir,       \
                    te.c = j->jc + jr;                                                        \
                if (ir < whole)                                                               \
                    j->K->ukrd(j->kc, ad + ir * j->rsa, j->rsa, b, j->bstride,                \
                               c + ir * j->ldc, j->ldc, mr, nr, acc, tp);                     \
                else if (w > 1)                                                               \
                    j->K->ukr2(j->kc, ap + (ir - whole) * j->kc, b, bs, ldb, c + ir * j->ldc, \
                               j->ldc, mr, nr, acc, tp);                                      \
                else                                                                          \
                    j->K->ukr(j->kc, ap + (ir - whole) * j->kc, b, c + ir * j->ldc, j->ldc,   \
                              mr, nr, acc);                                                   \
            }                                                                                 \
            jr += (nr + NR - 1) / NR * NR;                                                    \
        }                                                                                     \
        if (epi && j1 > done) epi->fn(epi->ud, ic, mc, j->jc + done, j1 - done);              \
    }                                                                                         \
                                                                                              \
    /* Task t of a product with B packed whole and A not shared: its tile of C through      \
     * every k block in order (one pool call instead of one per k block; the same tiles in  \
     * the same order: the same bits). j: set up for the first k block. */                  \
    static void ktask_##SUF(void *ud, int64_t t, int worker) {                                \
        const job_##SUF *j = (const job_##SUF *)ud;                                           \
        job_##SUF l = *j;                                                                     \
        for (; l.pc < j->k; l.pc += j->kc, l.bp += j->kc * NR) {                              \
            l.kc = j->k - l.pc < j->kc ? j->k - l.pc : j->kc;                                 \
            gemm_task_##SUF(&l, t, worker);                                                   \
        }                                                                                     \
    }                                                                                         \
                                                                                              \
    /* A convolution's product on several threads (A kept packed per session): task t         \
     * takes a chunk of columns (or a group of rows) through every k block itself, B packed   \
     * (or made, or its last partial sliver packed) into its worker's own block: one pool     \
     * call per product instead of one or two per (column, k) block. Every tile is one the    \
     * serial order computes, with the same k blocks: the same bits. */                       \
    static void fused_task_##SUF(void *ud, int64_t t, int worker) {                           \
        const job_##SUF *j = (const job_##SUF *)ud;                                           \
        job_##SUF l = *j;                                                                     \
        int64_t ncc = (j->n + j->fcols - 1) / j->fcols, c0 = t % ncc * j->fcols;              \
        int64_t c1 = c0 + j->fcols < j->n ? c0 + j->fcols : j->n, kcb = kc_of_##SUF(j->k);    \
        int64_t b0 = j->fgroups > 1 ? t / ncc : 0;                                            \
        int64_t b1 = j->fgroups > 1 ? b0 + 1 : (j->m + j->mc - 1) / j->mc;                    \
        l.bp = l.bpack = j->bpack + (size_t)worker * j->blen, l.nj = 1;                       \
        for (l.jc = c0; l.jc < c1; l.jc += j->fncb) {                                         \
            l.nc = l.chunk = c1 - l.jc < j->fncb ? c1 - l.jc : j->fncb;                       \
            int64_t part = j->wide ? l.nc : j->bdirect ? l.nc / NR * NR : 0; /* (packed from) */ \
            for (l.pc = 0; l.pc < j->k; l.pc += kcb) {                                        \
                l.kc = j->k - l.pc < kcb ? j->k - l.pc : kcb, l.bstride = l.kc * NR;          \
                if (j->bsrc)                                                                  \
                    j->bsrc->pack(j->bsrc->ud, l.bpack, l.bstride, l.pc, l.kc, l.jc,          \
                                  l.nc, NR);                                                  \
                else if (part < l.nc)                                                         \
                    pack_b_##SUF(l.bpack, l.bstride,                                          \
                                 j->B + l.pc * j->rsb + (l.jc + part) * j->csb,               \
                                 j->rsb, j->csb, l.kc, l.nc - part);                          \
                for (int64_t b = b0; b < b1; b++) gemm_task_##SUF(&l, b, worker);             \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
                                                                                              \
    static bool fused_##SUF(const job_##SUF *j, int threads) {                                \
        return j->blen > 0 && threads > 1; /* (blen: set by gemm_src_* for them) */           \
    }                                                                                         \
                                                                                              \
    /* The fused tasks' split: whole two-sliver units of columns, one chunk per thread;       \
     * with few units for many rows, blocks of whole panels of rows instead (a task each):   \
     * at most an MC block each, as many as a multiple of the threads (960 rows: 8 of 120,  \
     * not 7 of 144, of which one thread took 4). */                                         \
    static int64_t fused_plan_##SUF(job_##SUF *j, int threads) {                              \
        int64_t units = (j->n + 2 * NR - 1) / (2 * NR), panels = (j->m + MR - 1) / MR;        \
        j->fgroups = 1, j->fcols = (units + threads - 1) / threads * 2 * NR;                  \
        if (units < 4 * threads && panels >= 2 * threads) {                                   \
            int64_t cap = j->mc / MR, g = (panels + cap - 1) / cap;                           \
            g = (g + threads - 1) / threads * threads;                                        \
            j->mc = (panels + g - 1) / g * MR, j->fcols = j->n;                               \
            j->fgroups = (j->m + j->mc - 1) / j->mc;                                          \
        }                                                                                     \
        return (j->n + j->fcols - 1) / j->fcols * j->fgroups;                                 \
    }                                                                                         \
                                                                                              \
    /* Blocking of one product: KC depth, MC rows and NC columns per packed block. */        \
    typedef struct plan_##SUF {                                                               \
        int64_t kcb, mc, ncb;                                                                 \
        size_t bpack_len, apack_len; /* elements: one packed B block, one packed A block */  \
    } plan_##SUF;                                                                             \
                                                                                              \
    static plan_##SUF plan_of_##SUF(int64_t m, int64_t n, int64_t k, bool packed,             \
                                    bool implicit) {                                          \
        plan_##SUF pl;                                                                        \
        pl.kcb = kc_of_##SUF(k);                                                              \
        /* A few hundred rows in one block when A's packed block stays within ~400 KB of   \
         * L2 (640 KB against a packed weight: 256 x 512 of GPT-2's MLP down projection): B \
         * then streams through the cache once (enough columns for the threads to split    \
         * instead) */                                                                     \
        int64_t a_max = packed ? 640 << 10 : 400 << 10;                                       \
        bool one = m <= 2 * MC && n >= 4 * NR && m * pl.kcb * (int64_t)sizeof(T) <= a_max;   \
        int64_t n_ic = one ? 1 : (m + MC - 1) / MC;                                           \
        pl.mc = (((m + n_ic - 1) / n_ic + MR - 1) / MR) * MR; /* balanced MC blocks */        \
        /* an implicit B (made while packing) in blocks that stay in L2 */                    \
        int64_t nc = implicit ? NC_IMPLICIT : NC;                                             \
        pl.ncb = packed ? n : (n < nc ? n : nc);                                              \
        pl.bpack_len = packed ? 0 : am_gemm_packed_len_##SUF(pl.kcb, pl.ncb);                 \
        pl.apack_len = (size_t)(pl.mc * pl.kcb);                                              \
        return pl;                                                                            \
    }                                                                                         \
                                                                                              \
    static bool gemv_path_##SUF(int64_t m, const T *B, int64_t csb) {                         \
        return m <= GEMV_ROWS && B && csb == 1;                                               \
    }                                                                                         \
                                                                                              \
    /* The product with `threads` participants (pool may be NULL: serial). bpack and        \
     * apack[0..threads-1] are scratch sized by plan_of (unused on the GEMV path). */       \
    static void run_##SUF(am_pool *pool, int threads, job_##SUF *job, const T *packed,        \
                          T *bpack, T **apack) {                                              \
        int64_t m = job->m, n = job->n, k = job->k;                                           \
        if (k <= 0) {                                                                         \
            if (!job->acc)                                                                    \
                for (int64_t i = 0; i < m; i++)                                               \
                    memset(job->C + i * job->ldc, 0, sizeof(T) * (size_t)n);                  \
            if (job->epi) job->epi->fn(job->epi->ud, 0, m, 0, n);                             \
            return;                                                                           \
        }                                                                                     \
        if (gemv_path_##SUF(m, job->B, job->csb)) {                                           \
            /* Column chunks: enough for every thread, small enough for L1. */               \
            int64_t tasks = (n + GEMV_CHUNK - 1) / GEMV_CHUNK;                                \
            if (tasks < threads) tasks = threads;                                             \
            job->chunk = (((n + tasks - 1) / tasks + NR - 1) / NR) * NR;                      \
            /* the same bits as B read directly, streamed faster; but not narrower than  \
             * a sliver (B read directly sums such rows in partial sums) */                 \
            job->bp = n >= NR ? packed : NULL;                                                \
            am_pool_run(pool, (n + job->chunk - 1) / job->chunk, gemv_task_##SUF, job);       \
            return;                                                                           \
        }                                                                                     \
        plan_##SUF pl = plan_of_##SUF(m, n, k, packed != NULL, job->bsrc != NULL);            \
        int64_t n_ic = (m + pl.mc - 1) / pl.mc;                                               \
        job->mc = pl.mc, job->bpack = bpack, job->apack = apack;                              \
        if (fused_##SUF(job, threads)) {                                                      \
            job->fncb = pl.ncb;                                                               \
            am_pool_run(pool, fused_plan_##SUF(job, threads), fused_task_##SUF, job);         \
            return;                                                                           \
        }                                                                                     \
        for (int64_t jc = 0; jc < n; jc += pl.ncb) {                                          \
            int64_t nc = n - jc < pl.ncb ? n - jc : pl.ncb, slivers = (nc + NR - 1) / NR;     \
            job->jc = jc, job->nc = nc;                                                       \
            for (int64_t pc = 0; pc < k; pc += pl.kcb) {                                      \
                job->pc = pc, job->kc = k - pc < pl.kcb ? k - pc : pl.kcb;                    \
                if (packed) {                                                                 \
                    int64_t pk = job->pk ? job->pk : k;                                       \
                    job->bp = packed + (jc / NR) * pk * NR + pc * NR, job->bstride = pk * NR; \
                } else if (job->bdirect) { /* only a last partial sliver is packed */         \
                    job->bp = bpack, job->bstride = job->kc * NR;                             \
                    if (nc % NR && !job->wide)                                                \
                        pack_b_##SUF(bpack, job->bstride,                                     \
                                     job->B + pc * job->rsb + (jc + nc / NR * NR) * job->csb, \
                                     job->rsb, job->csb, job->kc, nc % NR);                   \
                } else {                                                                      \
                    job->bp = bpack, job->bstride = job->kc * NR;                             \
                    job->pchunk = (slivers + threads - 1) / threads;                          \
                    am_pool_run(pool, (slivers + job->pchunk - 1) / job->pchunk,              \
                                pack_task_##SUF, job);                                        \
                }                                                                             \
                /* At least two tasks per thread, a multiple of the thread count; chunks of \
                 * whole passes of the tile (a lone sliver costs a two-sliver tile the      \
                 * same time: two of them on two threads gain nothing). */                   \
                int64_t want = threads > 1 ? (2 * threads + n_ic - 1) / n_ic : 1;             \
                while ((n_ic * want) % threads) want++;                                       \
                int64_t pass = job->K->ukr2 || job->K->ukrd ? 2 : 1;                          \
                int64_t units = (slivers + pass - 1) / pass;                                  \
                job->nj = want < units ? want : units;                                        \
                job->chunk = ((units + job->nj - 1) / job->nj) * pass * NR;                   \
                job->nj = (nc + job->chunk - 1) / job->chunk;                                 \
                /* Blocks of rows split by columns: every task would pack the same rows;    \
                 * pack them once into the workers' contiguous blocks (room for `threads`    \
                 * blocks; fewer than 4 panels: faster than reading them in place, measured \
                 * on two threads; but not where that leaves a 4-row panel that in place is   \
                 * two of 8: direct_rows), together when there are two or more panels per    \
                 * thread (few rows: not worth a pool call). */                              \
                bool few = m < 4 * MR && (m % MR != 4 || m < MR);                             \
                job->ashared = n_ic <= threads && job->nj > 1 && !job->akept &&               \
                                       (few || !direct_##SUF(job)) ? apack[0] : NULL;         \
                if (job->ashared && threads > 1 && m >= 2 * MR * threads)                     \
                    am_pool_run(pool, (m + MR - 1) / MR, pack_a_task_##SUF, job);             \
                else if (job->ashared)                                                        \
                    pack_a_##SUF(apack[0], job->A + pc * job->csa, job->rsa, job->csa, m,     \
                                 job->kc);                                                    \
                /* few rows, B packed, A not shared: each task takes every k block */       \
                if (packed && !job->ashared && threads > 1 && m < 4 * MR && job->kc < k) {    \
                    am_pool_run(pool, n_ic * job->nj, ktask_##SUF, job);                      \
                    return;                                                                   \
                }                                                                             \
                am_pool_run(pool, n_ic * job->nj, gemm_task_##SUF, job);                      \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
                                                                                              \
    static void job_init_##SUF(job_##SUF *job, int64_t m, int64_t n, int64_t k, const T *A,   \
                               int64_t rsa, int64_t csa, const T *B, int64_t rsb,             \
                               int64_t csb, T *C, int64_t ldc, bool acc) {                    \
        memset(job, 0, sizeof *job);                                                          \
        job->K = &kerns_##SUF[current_isa()];                                                 \
        job->A = A, job->B = B, job->rsa = rsa, job->csa = csa, job->rsb = rsb;               \
        job->csb = csb, job->C = C, job->ldc = ldc, job->m = m, job->n = n, job->k = k;       \
        job->acc = acc;                                                                       \
    }                                                                                         \
                                                                                              \
    static amber_status gemm_src_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k,          \
                                       const T *A, int64_t rsa, int64_t csa, const T *B,      \
                                       int64_t rsb, int64_t csb, const T *packed, T *C,       \
                                       int64_t ldc, bool accumulate, const T *akept,          \
                                       const am_gemm_epi *epi, const am_gemm_bsrc *bsrc) {    \
        if (m <= 0 || n <= 0) return AMBER_OK;                                                \
        double work = (double)m * (double)n * (double)k;                                      \
        if (!packed && !akept && !epi && !bsrc && work < AM_GEMM_PARALLEL_MIN &&              \
            small_##SUF(m, n, k, A, rsa, csa, B, rsb, csb, C, ldc, accumulate))               \
            return AMBER_OK;                                                                  \
        double least = gemv_path_##SUF(m, B, csb) ? AM_PARALLEL_MIN : AM_GEMM_PARALLEL_MIN;  \
        am_pool *pool = work >= least ? am_pool_for(ctx->pool, work) : NULL;                   \
        int threads = am_pool_size(pool);                                                     \
        job_##SUF job;                                                                        \
        job_init_##SUF(&job, m, n, k, A, rsa, csa, B, rsb, csb, C, ldc, accumulate);          \
        job.akept = akept, job.mpad = (m + MR - 1) / MR * MR, job.epi = epi, job.bsrc = bsrc;  \
        b_in_place_##SUF(&job, packed);                                                       \
        if (k <= 0 || gemv_path_##SUF(m, B, csb)) {                                           \
            run_##SUF(pool, threads, &job, packed, NULL, NULL);                               \
            return AMBER_OK;                                                                  \
        }                                                                                     \
        plan_##SUF pl = plan_of_##SUF(m, n, k, packed != NULL, bsrc != NULL);                 \
        am_arena_mark mark = am_arena_get_mark(ctx->scratch);                                 \
        T *bpack = NULL, **apack = NULL, *abuf = NULL;                                        \
        /* fused tasks (A kept): a B block per worker if the scratch limit allows, else one */\
        size_t alen = (pl.apack_len + 15) / 16 * 16;                                          \
        amber_status st = AMBER_OK;                                                           \
        for (int f = akept && threads > 1; f >= 0; f--) {                                     \
            am_error *err = f ? NULL : ctx->err;                                              \
            size_t bl = pl.bpack_len * (size_t)(f ? threads : 1);                             \
            st = am_arena_alloc(ctx->scratch, sizeof(T) * bl, (void **)&bpack, err);          \
            if (st == AMBER_OK)                                                               \
                st = am_arena_alloc(ctx->scratch, (size_t)threads * sizeof(T *),              \
                                    (void **)&apack, err);                                    \
            /* one allocation: blocks of whole 16-element lines, back to back (a shared A     \
             * spans them) */                                                                 \
            if (st == AMBER_OK)                                                               \
                st = am_arena_alloc(ctx->scratch, sizeof(T) * alen * (size_t)threads,         \
                                    (void **)&abuf, err);                                     \
            if (st == AMBER_OK) {                                                             \
                job.blen = f ? pl.bpack_len : 0;                                              \
                break;                                                                        \
            }                                                                                 \
            am_arena_release(ctx->scratch, mark);                                             \
        }                                                                                     \
        if (st != AMBER_OK) return st;                                                        \
        for (int w = 0; w < threads; w++) apack[w] = abuf + alen * (size_t)w;                 \
        run_##SUF(pool, threads, &job, packed, bpack, apack);                                 \
        am_arena_release(ctx->scratch, mark);                                                 \
        return AMBER_OK;                                                                      \
    }                                                                                         \
                                                                                              \
    static amber_status gemm_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k, const T *A,  \
                                   int64_t rsa, int64_t csa, const T *B, int64_t rsb,         \
                                   int64_t csb, const T *packed, T *C, int64_t ldc,           \
                                   bool accumulate, const T *akept, const am_gemm_epi *epi) { \
        return gemm_src_##SUF(ctx, m, n, k, A, rsa, csa, B, rsb, csb, packed, C, ldc,         \
                              accumulate, akept, epi, NULL);                                  \
    }                                                                                         \
                                                                                              \
    amber_status am_gemm_bsrc_epi_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k,         \
                                        const T *A, const T *akept, const am_gemm_bsrc *bsrc, \
                                        T *C, int64_t ldc, const am_gemm_epi *epi) {          \
        return gemm_src_##SUF(ctx, m, n, k, A, k, 1, NULL, 0, 0, NULL, C, ldc, false, akept,  \
                              epi, bsrc);                                                     \
    }                                                                                         \
                                                                                              \
    amber_status am_gemm_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k, const T *A,      \
                               int64_t rsa, int64_t csa, const T *B, int64_t rsb,             \
                               int64_t csb, T *C, int64_t ldc, bool accumulate) {             \
        return gemm_##SUF(ctx, m, n, k, A, rsa, csa, B, rsb, csb, NULL, C, ldc, accumulate,   \
                          NULL, NULL);                                                        \
    }                                                                                         \
                                                                                              \
    amber_status am_gemm_epi_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k, const T *A,  \
                                   int64_t rsa, int64_t csa, const T *B, int64_t rsb,         \
                                   int64_t csb, T *C, int64_t ldc, const am_gemm_epi *epi) {  \
        return gemm_##SUF(ctx, m, n, k, A, rsa, csa, B, rsb, csb, NULL, C, ldc, false, NULL,  \
                          epi);                                                               \
    }                                                                                         \
                                                                                              \
    amber_status am_gemm_kept_a_run_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k,       \
                                          const T *A, const T *akept, const T *B, int64_t rsb, \
                                          int64_t csb, T *C, int64_t ldc, bool accumulate) {  \
        return gemm_##SUF(ctx, m, n, k, A, k, 1, B, rsb, csb, NULL, C, ldc, accumulate,       \
                          akept, NULL);                                                       \
    }                                                                                         \
                                                                                              \
    amber_status am_gemm_kept_a_run_epi_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k,   \
                                              const T *A, const T *akept, const T *B,         \
                                              int64_t rsb, int64_t csb, T *C, int64_t ldc,    \
                                              const am_gemm_epi *epi) {                       \
        return gemm_##SUF(ctx, m, n, k, A, k, 1, B, rsb, csb, NULL, C, ldc, false, akept,     \
                          epi);                                                               \
    }                                                                                         \
                                                                                              \
    /* Row-major A[m, k] packed whole: per KC block, the MR-row panels of every row. */      \
    const T *am_gemm_kept_a_##SUF(am_ctx *ctx, int64_t m, int64_t k, const T *A) {           \
        if (!ctx->keep || !A || m <= GEMV_ROWS || k <= 0) return NULL;                        \
        uint32_t kind = KEEP_KIND_PACKED_A | (uint32_t)sizeof(T);                            \
        T *p = (T *)am_keep_find(ctx->keep, A, kind, m, k);                                   \
        if (p) return p;                                                                      \
        int64_t mpad = (m + MR - 1) / MR * MR, kcb = kc_of_##SUF(k);                          \
        if ((uint64_t)mpad * (uint64_t)k > SIZE_MAX / sizeof(T)) return NULL;                 \
        p = (T *)am_keep_add(ctx->keep, A, kind, m, k, (size_t)(mpad * k) * sizeof(T));       \
        if (!p) return NULL;                                                                  \
        for (int64_t pc = 0; pc < k; pc += kcb) {                                             \
            int64_t kc = k - pc < kcb ? k - pc : kcb;                                         \
            pack_a_##SUF(p + mpad * pc, A + pc, k, 1, m, kc);                                 \
        }                                                                                     \
        return p;                                                                             \
    }                                                                                         \
                                                                                              \
    amber_status am_gemm_prepacked_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k,        \
                                         const T *A, int64_t rsa, int64_t csa, const T *B,    \
                                         int64_t rsb, int64_t csb, const T *packed, T *C,     \
                                         int64_t ldc, bool accumulate) {                      \
        return gemm_##SUF(ctx, m, n, k, A, rsa, csa, B, rsb, csb, packed, C, ldc, accumulate,  \
                          NULL, NULL);                                                        \
    }                                                                                         \
                                                                                              \
    amber_status am_gemm_prepacked_epi_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k,    \
                                             const T *A, int64_t rsa, int64_t csa,            \
                                             const T *B, int64_t rsb, int64_t csb,            \
                                             const T *packed, T *C, int64_t ldc,              \
                                             const am_gemm_epi *epi) {                        \
        return gemm_##SUF(ctx, m, n, k, A, rsa, csa, B, rsb, csb, packed, C, ldc, false,      \
                          NULL, epi);                                                         \
    }                                                                                         \
                                                                                              \
    const T *am_gemm_kept_b_##SUF(am_ctx *ctx, int64_t n, int64_t k, const T *B) {           \
        if (!ctx->keep || !B || n <= 0 || k <= 0) return NULL;                                \
        uint32_t kind = KEEP_KIND_PACKED_B | (uint32_t)sizeof(T);                            \
        T *p = (T *)am_keep_find(ctx->keep, B, kind, k, n);                                   \
        if (p) return p;                                                                      \
        size_t len = am_gemm_packed_len_##SUF(k, n);                                          \
        if (len > SIZE_MAX / sizeof(T)) return NULL;                                          \
        p = (T *)am_keep_add(ctx->keep, B, kind, k, n, len * sizeof(T));                     \
        if (p) am_gemm_pack_b_##SUF(B, n, 1, k, n, p);                                        \
        return p;                                                                             \
    }                                                                                         \
                                                                                              \
    size_t am_gemm_scratch_len_##SUF(int64_t m, int64_t n, int64_t k, bool packed) {          \
        if (m <= 0 || n <= 0 || k <= 0) return 0;                                             \
        plan_##SUF pl = plan_of_##SUF(m, n, k, packed, false);                                     \
        return pl.bpack_len + pl.apack_len;                                                   \
    }                                                                                         \
                                                                                              \
    /* On the calling thread (packed B, or A packed whole, or neither). */                   \
    static void serial_##SUF(int64_t m, int64_t n, int64_t k, const T *A, int64_t rsa,        \
                             int64_t csa, const T *B, int64_t rsb, int64_t csb,               \
                             const T *packed, const T *akept, T *C, int64_t ldc, bool acc,    \
                             T *scratch, const am_gemm_epi *epi, int64_t pk) {                \
        if (m <= 0 || n <= 0) return;                                                         \
        if (!packed && !akept && !epi &&                                                      \
            small_##SUF(m, n, k, A, rsa, csa, B, rsb, csb, C, ldc, acc))                      \
            return;                                                                           \
        job_##SUF job;                                                                        \
        job_init_##SUF(&job, m, n, k, A, rsa, csa, B, rsb, csb, C, ldc, acc);                 \
        job.akept = akept, job.mpad = (m + MR - 1) / MR * MR, job.epi = epi, job.pk = pk;     \
        b_in_place_##SUF(&job, packed);                                                       \
        plan_##SUF pl = plan_of_##SUF(m, n, k > 0 ? k : 1, packed != NULL, false);             \
        T *apack = scratch + pl.bpack_len;                                                    \
        run_##SUF(NULL, 1, &job, packed, scratch, &apack);                                    \
    }                                                                                         \
                                                                                              \
    void am_gemm_serial_##SUF(int64_t m, int64_t n, int64_t k, const T *A, int64_t rsa,       \
                              int64_t csa, const T *B, int64_t rsb, int64_t csb,              \
                              const T *packed, T *C, int64_t ldc, bool accumulate,            \
                              T *scratch) {                                                   \
        serial_##SUF(m, n, k, A, rsa, csa, B, rsb, csb, packed, NULL, C, ldc, accumulate,     \
                     scratch, NULL, 0);                                                       \
    }                                                                                         \
                                                                                              \
    void am_gemm_serial_part_##SUF(int64_t m, int64_t n, int64_t k, const T *A, int64_t rsa,  \
                                   int64_t csa, const T *packed, int64_t pk, T *C,            \
                                   int64_t ldc, T *scratch) {                                 \
        serial_##SUF(m, n, k, A, rsa, csa, NULL, 0, 0, packed, NULL, C, ldc, false, scratch,  \
                     NULL, pk);                                                               \
    }                                                                                         \
                                                                                              \
    void am_gemm_serial_epi_##SUF(int64_t m, int64_t n, int64_t k, const T *A, int64_t rsa,   \
                                  int64_t csa, const T *B, int64_t rsb, int64_t csb,          \
                                  const T *packed, T *C, int64_t ldc, T *scratch,             \
                                  const am_gemm_epi *epi) {                                   \
        serial_##SUF(m, n, k, A, rsa, csa, B, rsb, csb, packed, NULL, C, ldc, false, scratch, \
                     epi, 0);                                                                 \
    }                                                                                         \
                                                                                              \
    void am_gemm_serial_kept_a_##SUF(int64_t m, int64_t n, int64_t k, const T *A,             \
                                     const T *akept, const T *B, int64_t rsb, int64_t csb,    \
                                     T *C, int64_t ldc, bool accumulate, T *scratch) {        \
        serial_##SUF(m, n, k, A, k, 1, B, rsb, csb, NULL, akept, C, ldc, accumulate, scratch, \
                     NULL, 0);                                                                \
    }                                                                                         \
                                                                                              \
    void am_gemm_serial_kept_a_epi_##SUF(int64_t m, int64_t n, int64_t k, const T *A,         \
                                         const T *akept, const T *B, int64_t rsb,             \
                                         int64_t csb, T *C, int64_t ldc, T *scratch,          \
                                         const am_gemm_epi *epi) {                            \
        serial_##SUF(m, n, k, A, k, 1, B, rsb, csb, NULL, akept, C, ldc, false, scratch, epi, \
                     0);                                                                      \
    }

#if AM_X86
#define UKRD_f32 ukrd_f32_avx512
#define UKRD_f64 NULL
#define COLS_f32 cols_f32_avx512
#define COLS_f64 NULL
#define UKR_AVX2_f32 NULL /* (ukr2_f32_avx2) */
#define UKR_AVX2_f64 ukr_f64_avx2
#define UKR2_AVX2_f32 ukr2_f32_avx2
#define UKR2_AVX2_f64 NULL
#define GEMM_AVX2_ENTRY(SUF)                                                                 \
    {UKR_AVX2_##SUF, UKR2_AVX2_##SUF, gemv_##SUF##_avx2, gemv_packed_##SUF##_avx2, NULL, NULL}
#define GEMM_AVX512_ENTRY(SUF)                                                               \
    {NULL, ukr2_##SUF##_avx512, gemv_##SUF##_avx2, gemv_packed_##SUF##_avx512, UKRD_##SUF,     \
     COLS_##SUF}
#else
#define GEMM_AVX2_ENTRY(SUF) \
    {ukr_##SUF##_generic, NULL, gemv_##SUF##_generic, gemv_packed_##SUF##_generic, NULL, NULL}
#define GEMM_AVX512_ENTRY(SUF) GEMM_AVX2_ENTRY(SUF)
#endif

GEMM_DRIVER(f32, float, MRP, 16, AM_GEMM_KC_F32, 144, 1024)
GEMM_DRIVER(f64, double, MRP, 8, AM_GEMM_KC_F64, 96, 1024)

#define GEMM_COLD __attribute__((cold)) /* (a per-run check: optimised for size) */
GEMM_COLD bool am_gemm_over_ok(int64_t m, int64_t n, int64_t k, const am_epi *e) {
    const int ns = e->g->n_steps;
    if (current_isa() < AM_GEMM_ISA_AVX512 || !e->tile || m <= GEMV_ROWS || n <= 0 || k <= 0 ||
        k > AM_GEMM_KC_F32 || (plan_of_f32(m, n, k, false, false).mc + MRP) * ns > EPI_REGS_MAX)
        return false;
    /* NaN scalars: the tiles would leave the epilogue to its pass, which reads the input
     * written over. Each step's scalars as a column (one per image and row, or one);
     * over, a row the tile adds gives 0 (am_epi_row_scalars): not read. */
    for (int s = 0; s < ns; s++) {
        const int src = e->ops[s].other;
        const int64_t sb = e->sb[src], sr = e->sr[src];
        for (int64_t i = 0; !e->sc[src] && i < (sb ? e->images : 1); i++)
            for (int64_t r = 0; r < (sr ? m : 1); r++) {
                float x = *(const float *)(const void *)(e->base[src] + i * sb + r * sr);
                if (x != x) return false;
            }
    }
    return true;
}
