/* Epilogues (am_epi): a fused elementwise group applied in place to blocks of a conv2d or
 * matmul result as the product's kernel finishes them. A group of the usual steps
 * (bias, BatchNorm's per-channel arithmetic, ReLU as le/where, clip as maximum/minimum,
 * a residual add), with one-input steps (tanh, erf... : GELU) run by their own row loops
 * on its blocks, runs as vector code here; any other group through the row loops of its
 * steps (am_fused_block). Both give the bits of the unfused nodes: each step is one
 * IEEE operation per element (never contracted), comparisons and selections follow the
 * single-op kernels' NaN rules. */
#include "ops.h"

#include <string.h>

/* Elements per block: a block's intermediates live on the stack of whichever thread
 * applies it (15 slots x 256 x 8 bytes at most). */
#define EPI_BLOCK 256
#define EPI_SLOT ((size_t)EPI_BLOCK * 8)

/* ---------------------------------------------------------------- vector code */

typedef float epi_v8f __attribute__((vector_size(32)));
typedef int32_t epi_v8i __attribute__((vector_size(32)));
typedef float epi_v16f __attribute__((vector_size(64)));
typedef int32_t epi_v16i __attribute__((vector_size(64)));

/* One block of nv elements (a multiple of the vector width) of one row: p[0] the
 * output's, p[k + 1] input k's first element. Masks (comparison results) are kept as
 * all-ones / zero lanes. A per-row scalar is read from a splat vector at stride 0. */
#define EPI_VEC(SUF, ATTR, T, V, IV, SPLAT)                                                \
    ATTR static void epi_block_##SUF(const am_epi *e, char *const *p, int64_t nv, char *tmp) { \
        enum { W = sizeof(V) / sizeof(T) };                                                \
        const int last = e->g->n_steps - 1;                                                \
        V splat[3];                                                                        \
        for (int j = 0; j <= last; j++) {                                                  \
            const struct am_epi_op *o = &e->ops[j];                                        \
            const T *q[3] = {NULL, NULL, NULL};                                            \
            int64_t sq[3] = {0, 0, 0};                                                     \
            for (int k = 0; k < am_epi_arity(o); k++) {                                    \
                q[k] = (const T *)(const void *)(o->kind[k] == EPI_TMP                     \
                                                     ? tmp + (size_t)o->src[k] * EPI_SLOT  \
                                                     : p[o->src[k] + 1]);                  \
                sq[k] = 1;                                                                 \
                if (o->kind[k] == EPI_SCALAR) { /* (not 0 + x: -0 would become +0) */   \
                    splat[k] = (V)SPLAT(q[k][0]);                                          \
                    q[k] = (const T *)(const void *)&splat[k];                             \
                    sq[k] = 0;                                                             \
                }                                                                          \
            }                                                                              \
            T *d = (T *)(void *)(j == last ? p[0] : tmp + (size_t)j * EPI_SLOT);           \
            const T *qa = q[0], *qb = q[1], *qc = q[2];                                    \
            const int64_t sa = sq[0], sb = sq[1], sc = sq[2];                              \
            if (o->op == EPI_UNARY) { /* its own row loop: the same bits */                \
                char *pu[2] = {(char *)d, (char *)(uintptr_t)qa};                          \
                int64_t su[2] = {sizeof(T), sa * (int64_t)sizeof(T)};                      \
                e->g->steps[j].fn(pu, su, nv, NULL);                                       \
                continue;                                                                  \
            }                                                                              \
            switch (o->op) {                                                               \
            case EPI_ADD: EPI_LOOP(V, r = a + b); break;                                   \
            case EPI_SUB: EPI_LOOP(V, r = a - b); break;                                   \
            case EPI_MUL: EPI_LOOP(V, r = a * b); break;                                   \
            case EPI_DIV: EPI_LOOP(V, r = a / b); break;                                   \
            case EPI_MAX: /* a >= b or a is NaN: a */                                      \
                EPI_LOOP(V, IV k = (a >= b) | (a != a); r = (V)((k & (IV)a) | (~k & (IV)b))); \
                break;                                                                     \
            case EPI_MIN:                                                                  \
                EPI_LOOP(V, IV k = (a <= b) | (a != a); r = (V)((k & (IV)a) | (~k & (IV)b))); \
                break;                                                                     \
            case EPI_EQ: EPI_LOOP(V, r = (V)(a == b)); break;                              \
            case EPI_NE: EPI_LOOP(V, r = (V)(a != b)); break;                              \
            case EPI_LT: EPI_LOOP(V, r = (V)(a < b)); break;                               \
            case EPI_LE: EPI_LOOP(V, r = (V)(a <= b)); break;                              \
            case EPI_GT: EPI_LOOP(V, r = (V)(a > b)); break;                               \
            case EPI_GE: EPI_LOOP(V, r = (V)(a >= b)); break;                              \
            default: /* where: a is a mask */                                              \
                EPI_LOOP(V, V c; memcpy(&c, qc + i * sc, sizeof c);                        \
                         r = (V)(((IV)a & (IV)b) | (~(IV)a & (IV)c)));                     \
                break;                                                                     \
            }                                                                              \
        }                                                                                  \
    }
#define EPI_LOOP(V, ...)                                                                   \
    for (int64_t i = 0; i < nv; i += W) {                                                  \
        V a, b, r;                                                                         \
        memcpy(&a, qa + i * sa, sizeof a);                                                 \
        memcpy(&b, qb + i * sb, sizeof b);                                                 \
        __VA_ARGS__;                                                                       \
        memcpy(d + i, &r, sizeof r);                                                       \
    }
/* A chain (see chain()) over nv elements of one row, U vectors at a time, with each
 * step's operands and the last two results in registers; the last nv % (U * W)
 * elements through zero-filled copies. The same operations per element as epi_block. */
#define EPI_CHAIN(SUF, ATTR, T, V, IV, U)                                                  \
    ATTR static void epi_chain_##SUF(const am_epi *e, char *const *p, int64_t nv, char *tmp) { \
        enum { W = sizeof(V) / sizeof(T) };                                                \
        const int n = e->g->n_steps;                                                       \
        int64_t i = 0;                                                                     \
        EPI_CHAIN_RUN(T, V, IV, U)                                                         \
        if (i == nv) return;                                                               \
        _Alignas(64) T buf[AM_ITER_MAX_OPS][(U) * W];                                      \
        char *q[AM_ITER_MAX_OPS];                                                          \
        size_t rest = (size_t)(nv - i) * sizeof(T);                                        \
        for (int k = 0; k <= e->g->n_ext; k++) {                                           \
            q[k] = p[k];                                                                   \
            if (k > 0 && e->sc[k - 1] == 0) continue; /* a per-row scalar */               \
            memset(buf[k], 0, sizeof buf[k]);                                              \
            memcpy(buf[k], (T *)(void *)p[k] + i, rest);                                   \
            q[k] = (char *)buf[k];                                                         \
        }                                                                                  \
        epi_chain_##SUF(e, q, (U) * W, tmp);                                               \
        memcpy((T *)(void *)p[0] + i, buf[0], rest);                                       \
    }
#define EPI_CHAIN_RUN(T, V, IV, U)                                                         \
    for (; i + (U) * W <= nv; i += (U) * W) {                                              \
        V cur[U] = {{0}}, prev[U] = {{0}};                                                 \
        for (int j = 0; j < n; j++) {                                                      \
            const struct am_epi_op *o = &e->ops[j];                                        \
            V a_[U], b_[U], c_[U] = {{0}};                                                 \
            EPI_ARG(T, V, U, 0, a_);                                                       \
            EPI_ARG(T, V, U, 1, b_);                                                       \
            if (o->op == EPI_WHERE) EPI_ARG(T, V, U, 2, c_);                               \
            _Pragma("GCC unroll 8") for (int u = 0; u < (U); u++) {                        \
                V a = a_[u], b = b_[u], r;                                                 \
                prev[u] = cur[u];                                                          \
                EPI_OPS_SWITCH(V, IV, c_[u]);                                              \
                cur[u] = r;                                                                \
            }                                                                              \
        }                                                                                  \
        _Pragma("GCC unroll 8") for (int u = 0; u < (U); u++)                              \
            memcpy((T *)(void *)p[0] + i + u * W, &cur[u], sizeof(V));                     \
    }
/* Operand k of step j for the U vectors from element i on, into dst. */
#define EPI_ARG(T, V, U, k, dst)                                                           \
    do {                                                                                   \
        const T *q_ = (const T *)(const void *)p[o->src[k] + 1];                           \
        if (o->kind[k] == EPI_TMP) {                                                       \
            bool last_ = o->src[k] == j - 1;                                               \
            _Pragma("GCC unroll 8") for (int u = 0; u < (U); u++)                          \
                dst[u] = last_ ? cur[u] : prev[u];                                         \
        } else if (o->kind[k] == EPI_SCALAR) {                                             \
            V s_; /* (not 0 + x: that would turn -0 into +0) */                            \
            for (int l = 0; l < W; l++) s_[l] = q_[0];                                     \
            _Pragma("GCC unroll 8") for (int u = 0; u < (U); u++) dst[u] = s_;             \
        } else {                                                                           \
            _Pragma("GCC unroll 8") for (int u = 0; u < (U); u++)                          \
                memcpy(&dst[u], q_ + i + u * W, sizeof(V));                                \
        }                                                                                  \
    } while (0)
#define EPI_OPS_SWITCH(V, IV, c)                                                           \
    switch (o->op) {                                                                       \
    case EPI_ADD: r = a + b; break;                                                        \
    case EPI_SUB: r = a - b; break;                                                        \
    case EPI_MUL: r = a * b; break;                                                        \
    case EPI_DIV: r = a / b; break;                                                        \
    case EPI_MAX: {                                                                        \
        IV k_ = (a >= b) | (a != a);                                                       \
        r = (V)((k_ & (IV)a) | (~k_ & (IV)b));                                             \
        break;                                                                             \
    }                                                                                      \
    case EPI_MIN: {                                                                        \
        IV k_ = (a <= b) | (a != a);                                                       \
        r = (V)((k_ & (IV)a) | (~k_ & (IV)b));                                             \
        break;                                                                             \
    }                                                                                      \
    case EPI_LE: r = (V)(a <= b); break;                                                   \
    case EPI_GT: r = (V)(a > b); break;                                                    \
    default: r = (V)(((IV)a & (IV)b) | (~(IV)a & (IV)(c))); break;                         \
    }
/* A line (am_epi.line) over a whole row of nv elements, 8 vectors at a time (the last
 * ones partial or empty through lane masks K(u)), each step's operands a row's vectors,
 * a splat or the step before in registers. The same operations per element as
 * epi_block. */
#define EPI_LINE_RUN(K)                                                                    \
    do {                                                                                   \
        epi_v16f cur[8] = {{0}};                                                           \
        for (int j = 0; j < n; j++) {                                                      \
            const struct am_epi_op *o = &e->ops[j];                                        \
            epi_v16f a_[8], b_[8];                                                         \
            EPI_LINE_ARG(K, 0, a_);                                                        \
            EPI_LINE_ARG(K, 1, b_);                                                        \
            _Pragma("GCC unroll 8") for (int u = 0; u < 8; u++) {                          \
                epi_v16f a = a_[u], b = b_[u], r;                                          \
                if (o->op == EPI_ADD) r = a + b;                                           \
                else if (o->op == EPI_SUB) r = a - b;                                      \
                else if (o->op == EPI_MUL) r = a * b;                                      \
                else if (o->op == EPI_DIV) r = a / b;                                      \
                else if (o->op == EPI_MAX) EPI_MAXMIN(1);                                  \
                else EPI_MAXMIN(0);                                                        \
                cur[u] = r;                                                                \
            }                                                                              \
        }                                                                                  \
        _Pragma("GCC unroll 8") for (int u = 0; u < 8; u++)                                \
            _mm512_mask_storeu_ps(out + i + u * 16, K(u), (__m512)cur[u]);                \
    } while (0)
/* max (a >= b or a is NaN: a) or min (a <= b or a is NaN: a) */
#define EPI_MAXMIN(max)                                                                    \
    do {                                                                                   \
        epi_v16i k_ = ((max) ? a >= b : a <= b) | (a != a);                                \
        r = (epi_v16f)((k_ & (epi_v16i)a) | (~k_ & (epi_v16i)b));                          \
    } while (0)
#define EPI_LINE_ARG(K, k, dst)                                                            \
    do {                                                                                   \
        const float *q_ = (const float *)(const void *)p[o->src[k] + 1];                   \
        if (o->kind[k] == EPI_TMP) {                                                       \
            _Pragma("GCC unroll 8") for (int u = 0; u < 8; u++) dst[u] = cur[u];           \
        } else if (o->kind[k] == EPI_SCALAR) {                                             \
            epi_v16f s_ = (epi_v16f)_mm512_set1_ps(q_[0]);                                 \
            _Pragma("GCC unroll 8") for (int u = 0; u < 8; u++) dst[u] = s_;               \
        } else {                                                                           \
            _Pragma("GCC unroll 8") for (int u = 0; u < 8; u++)                            \
                dst[u] = (epi_v16f)_mm512_maskz_loadu_ps(K(u), q_ + i + u * 16);           \
        }                                                                                  \
    } while (0)
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#include <immintrin.h>
#define EPI_LANES(u) km[u]
#define EPI_AVX512 __attribute__((target("avx512f"))) /* (a name: the function scan reads it) */
EPI_AVX512 static void epi_line_f32_avx512(const am_epi *e, char *const *p, int64_t nv) {
    const int n = e->g->n_steps;
    float *out = (float *)(void *)p[0];
    __mmask16 km[8] = {0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff};
    for (int64_t i = 0; i < nv; i += 8 * 16) {
        for (int u = 0; i + 8 * 16 > nv && u < 8; u++) { /* the last vectors */
            int64_t rest = nv - i - u * 16;
            km[u] = (__mmask16)(rest >= 16 ? 0xffffu : rest <= 0 ? 0u : (1u << rest) - 1u);
        }
        EPI_LINE_RUN(EPI_LANES);
    }
}
#endif
/* NOTE: only float32 builds of it (AVX-512 and AVX2), and of the chain and line code only
 * AVX-512: the library stays small, and elsewhere (float64 included) the steps' own
 * loops do the same work. */
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#define EPI_HAVE_VEC 1
EPI_VEC(f32_avx2, __attribute__((target("avx2"))), float, epi_v8f, epi_v8i, _mm256_set1_ps)
EPI_VEC(f32_avx512, __attribute__((target("avx512f"))), float, epi_v16f, epi_v16i,
        _mm512_set1_ps)
EPI_CHAIN(f32_avx512, __attribute__((target("avx512f"))), float, epi_v16f, epi_v16i, 4)

#else
#define EPI_HAVE_VEC 0
#endif

void am_epi_apply(const am_epi *e, int64_t img, int64_t r0, int64_t nr, int64_t c0,
                  int64_t nc) {
    const am_fused *g = e->g;
    _Alignas(64) char tmp[(AM_FUSED_MAX_STEPS - 1) * EPI_SLOT];
    char *p[AM_ITER_MAX_OPS];
    int64_t s[AM_ITER_MAX_OPS];
    s[0] = e->ocol;
    for (int k = 0; k < g->n_ext; k++) s[k + 1] = e->sc[k];
    void (*vec)(const am_epi *, char *const *, int64_t, char *) = NULL;
    int64_t w = 1;      /* vector width in elements */
    bool whole = false; /* vec takes rows of any length (the chain code) */
#if EPI_HAVE_VEC
    int isa = am_cpu_isa();
    if ((e->line || e->gelu) && e->ocol == 4 && isa >= AM_GEMM_ISA_AVX512) {
        for (int64_t r = r0; r < r0 + nr; r++) {
            p[0] = e->out + img * e->ob + r * e->orow + c0 * e->ocol;
            for (int k = 0; k < g->n_ext; k++)
                p[k + 1] = e->base[k] + img * e->sb[k] + r * e->sr[k] + c0 * e->sc[k];
            for (int64_t c = 0; e->gelu && r + 1 < r0 + nr && c < nc; c += 16)
                __builtin_prefetch(p[0] + e->orow + c * 4); /* the next row (L2) */
            if (e->gelu) am_epi_gelu_f32(e, p, nc);
            else epi_line_f32_avx512(e, p, nc);
        }
        return;
    }
    if (e->vec && e->ocol == 4 && isa >= AM_GEMM_ISA_AVX512) {
        whole = e->chain;
        vec = whole ? epi_chain_f32_avx512 : epi_block_f32_avx512;
        w = 16;
    } else if (e->vec && isa >= AM_GEMM_ISA_AVX2 && e->ocol == 4) {
        vec = epi_block_f32_avx2, w = 8;
    }
#endif
    for (int64_t r = r0; r < r0 + nr; r++) {
        p[0] = e->out + img * e->ob + r * e->orow + c0 * e->ocol;
        for (int k = 0; k < g->n_ext; k++)
            p[k + 1] = e->base[k] + img * e->sb[k] + r * e->sr[k] + c0 * e->sc[k];
        for (int64_t c = 0; c < nc; c += EPI_BLOCK) {
            int64_t m = nc - c < EPI_BLOCK ? nc - c : EPI_BLOCK;
            int64_t mv = !vec ? 0 : whole ? m : m - m % w;
            if (vec && mv) {
                char *q[AM_ITER_MAX_OPS];
                for (int k = 0; k <= g->n_ext; k++) q[k] = p[k] + c * s[k];
                vec(e, q, mv, tmp);
            }
            if (mv < m && vec) { /* the last elements as one zero-padded vector */
                _Alignas(64) char pad[AM_ITER_MAX_OPS][64];
                char *q[AM_ITER_MAX_OPS];
                for (int k = 0; k <= g->n_ext; k++) {
                    q[k] = p[k] + (c + mv) * s[k];
                    if (k > 0 && s[k] == 0) continue; /* a per-row scalar */
                    memset(pad[k], 0, sizeof pad[k]);
                    if (k > 0) memcpy(pad[k], q[k], (size_t)((m - mv) * s[k]));
                    q[k] = pad[k];
                }
                vec(e, q, w, tmp);
                memcpy(p[0] + (c + mv) * s[0], pad[0], (size_t)((m - mv) * s[0]));
            } else if (mv < m) { /* through the steps' row loops: the same bits */
                am_fused_block(g, p, s, c + mv, m - mv, tmp, EPI_SLOT);
            }
        }
    }
}

/* ---------------------------------------------------------------- in registers */

/* Whether steps j, j + 1, j + 2 are gt(x, a), mul(x, b) (either order), where(that gt, x,
 * that mul), x the chain's value before step j, a and b scalars. */
static bool epi_leaky_at(const am_epi *e, int j) {
    if (j + 2 >= e->g->n_steps) return false;
    const struct am_epi_op *g = &e->ops[j], *m = g + 1, *w = g + 2;
    int k = !am_epi_chain_at(e, j, m->kind[0], m->src[0]); /* the mul's x */
    return am_epi_chain_at(e, j, g->kind[0], g->src[0]) && g->kind[1] == EPI_SCALAR &&
           m->op == EPI_MUL && am_epi_chain_at(e, j, m->kind[k], m->src[k]) &&
           m->kind[1 - k] == EPI_SCALAR && w->op == EPI_WHERE && w->kind[0] == EPI_TMP &&
           w->src[0] == j && am_epi_chain_at(e, j, w->kind[1], w->src[1]) &&
           w->kind[2] == EPI_TMP && w->src[2] == j + 1;
}

bool am_epi_in_registers(am_epi *e, bool tile) {
    if (!e->vec || e->ocol != (int64_t)sizeof(float)) return false;
    for (int j = 0; j < e->g->n_steps; j++) {
        struct am_epi_op *o = &e->ops[j];
        o->other = o->src[am_epi_chain_at(e, j, o->kind[0], o->src[0])];
    }
    for (int j = 0; j < e->g->n_steps; j++) {
        const struct am_epi_op *o = &e->ops[j], *w = o + 1;
        if (o->op == EPI_GT) { /* x > a ? x : x * b (LeakyReLU) */
            if (!epi_leaky_at(e, j)) return false;
            /* the mul's scalar b; the where reads none, and is given b too (unread) */
            e->ops[j + 1].other = e->ops[j + 2].other = e->ops[j + 1].src[
                am_epi_chain_at(e, j, e->ops[j + 1].kind[0], e->ops[j + 1].src[0])];
            j += 2;
            continue;
        }
        if (o->op == EPI_LE || o->op == EPI_GE) { /* with the where after it: x <= a ? b : x
                                                   * (x >= a ? b : x) */
            if (j + 1 == e->g->n_steps || !am_epi_chain_at(e, j, o->kind[0], o->src[0]) ||
                o->kind[1] != EPI_SCALAR || w->op != EPI_WHERE || w->kind[0] != EPI_TMP ||
                w->src[0] != j || w->kind[1] != EPI_SCALAR ||
                !am_epi_chain_at(e, j, w->kind[2], w->src[2]))
                return false;
            j++;
            continue;
        }
        int k = !am_epi_chain_at(e, j, o->kind[0], o->src[0]); /* the chain's operand */
        bool row = tile && o->op == EPI_ADD && o->kind[1 - k] == EPI_ROW &&
                   o->src[1 - k] != e->g->self;
        if (o->op > EPI_MIN || (o->kind[1 - k] != EPI_SCALAR && !row) ||
            !am_epi_chain_at(e, j, o->kind[k], o->src[k]) ||
            (k && o->op != EPI_ADD && o->op != EPI_MUL))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- transposed */

#if EPI_HAVE_VEC
/* Lanes of a and b swapped in blocks of s (a step of the 16x16 transpose): a gets b's
 * lanes l - s where bit s of l is set, b gets a's lanes l + s where it is clear. */
#define EPI_TR_SWAP(s, a, b)                                                               \
    do {                                                                                   \
        epi_v16f a_ = (a), b_ = (b);                                                       \
        (a) = __builtin_shufflevector(a_, b_, EPI_TR_IDX(s, 0, -(s)));                     \
        (b) = __builtin_shufflevector(a_, b_, EPI_TR_IDX(s, (s), 0));                      \
    } while (0)
#define EPI_TR_STAGE(s)                                                                    \
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) if (!(i & (s)))                  \
        EPI_TR_SWAP(s, r[i], r[i + (s)])
#define EPI_TR_I(s, l, lo, hi) (((l) & (s)) ? 16 + (l) + (hi) : (l) + (lo))
#define EPI_TR_IDX(s, lo, hi)                                                              \
    EPI_TR_I(s, 0, lo, hi), EPI_TR_I(s, 1, lo, hi), EPI_TR_I(s, 2, lo, hi),                \
        EPI_TR_I(s, 3, lo, hi), EPI_TR_I(s, 4, lo, hi), EPI_TR_I(s, 5, lo, hi),            \
        EPI_TR_I(s, 6, lo, hi), EPI_TR_I(s, 7, lo, hi), EPI_TR_I(s, 8, lo, hi),            \
        EPI_TR_I(s, 9, lo, hi), EPI_TR_I(s, 10, lo, hi), EPI_TR_I(s, 11, lo, hi),          \
        EPI_TR_I(s, 12, lo, hi), EPI_TR_I(s, 13, lo, hi), EPI_TR_I(s, 14, lo, hi),         \
        EPI_TR_I(s, 15, lo, hi)

#define EPI_TR_EACH(...)                                                                   \
    _Pragma("GCC unroll 16") for (int u = 0; u < 16; u++) {                                \
        epi_v16f a = v[u], r;                                                              \
        __VA_ARGS__;                                                                       \
        v[u] = r;                                                                          \
    }
/* A register epilogue (am_epi.regs) on 16 vectors of 16 rows' values each, sv[j] the
 * rows' scalars of step j: each step's IEEE operation as epi_line does it. */
EPI_AVX512 static void epi_tr_regs(const am_epi *e, const epi_v16f *sv, epi_v16f *v) {
    for (int j = 0; j < e->g->n_steps; j++) {
        const epi_v16f b = sv[j];
        switch (e->ops[j].op) { /* (the loops inside: the same step for every vector) */
        case EPI_ADD: EPI_TR_EACH(r = a + b); break;
        case EPI_SUB: EPI_TR_EACH(r = a - b); break;
        case EPI_MUL: EPI_TR_EACH(r = a * b); break;
        case EPI_DIV: EPI_TR_EACH(r = a / b); break;
        case EPI_MAX: EPI_TR_EACH(EPI_MAXMIN(1)); break;
        case EPI_MIN: EPI_TR_EACH(EPI_MAXMIN(0)); break;
        case EPI_GT: { /* and mul, where: a > b ? a : a * b2 */
            const epi_v16f b2 = sv[++j];
            j++;
            EPI_TR_EACH(epi_v16i k_ = a > b;
                        r = (epi_v16f)((k_ & (epi_v16i)a) | (~k_ & (epi_v16i)(a * b2))));
            break;
        }
        default: { /* le or ge, and the where after it: a <= b ? b2 : a */
            const bool le = e->ops[j].op == EPI_LE;
            const epi_v16f b2 = sv[++j];
            if (le) {
                EPI_TR_EACH(epi_v16i k_ = a <= b;
                            r = (epi_v16f)((k_ & (epi_v16i)b2) | (~k_ & (epi_v16i)a)));
            } else {
                EPI_TR_EACH(epi_v16i k_ = a >= b;
                            r = (epi_v16f)((k_ & (epi_v16i)b2) | (~k_ & (epi_v16i)a)));
            }
        }
        }
    }
}
/* sv[s]: step s's scalars (am_epi_row_scalars') of image img's rows r0 + lanes of m, 0 in
 * the other lanes; a contiguous column in one load (not lane by lane through memory and
 * reloaded: 7% of the write-back's time in SqueezeNet 1.0) */
EPI_AVX512 static void epi_scalars16(const am_epi *e, int64_t img, int64_t r0, __mmask16 m,
                                     epi_v16f *sv) {
    for (int s = 0; s < e->g->n_steps; s++) {
        const int src = e->ops[s].other;
        const int64_t sr = e->sr[src];
        const char *p = e->base[src] + img * e->sb[src] + r0 * sr;
        if (e->over && e->sc[src]) /* (a row the tile adds, over: 0) */
            sv[s] = (epi_v16f)_mm512_setzero_ps();
        else if (sr == (int64_t)sizeof(float))
            sv[s] = (epi_v16f)_mm512_maskz_loadu_ps(m, p);
        else if (sr == 0)
            sv[s] = (epi_v16f)_mm512_maskz_mov_ps(m, _mm512_set1_ps(*(const float *)p));
        else
            for (int c = 0; c < 16; c++)
                sv[s][c] = m >> c & 1 ? *(const float *)(const void *)(p + c * sr) : 0.0f;
    }
}
/* Rows [o0, o0 + nc) (nc <= 16) and columns [l0, l1) of the transposed result, with the
 * epilogue: 16 columns at a time from 16 rows of the product loaded, transposed in
 * registers and stored. */
EPI_AVX512 static void epi_tr_block(const am_epi_tr *j, int64_t o0, int64_t nc, int64_t l0,
                                    int64_t l1) {
    const int64_t L = j->L, o = j->o;
    const bool regs = j->e && j->e->regs;
    const __mmask16 mc = (__mmask16)((1u << nc) - 1u);
    epi_v16f sv[AM_FUSED_MAX_STEPS];
    if (regs) epi_scalars16(j->e, j->img, o0, mc, sv);
    for (int64_t l = l0; l < l1; l += 16) {
        const int64_t nl = l1 - l < 16 ? l1 - l : 16;
        epi_v16f r[16];
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
            r[i] = (epi_v16f)_mm512_maskz_loadu_ps(i < nl ? mc : 0,
                                                   j->tmp + (l + i - j->l0) * o + o0 - j->c0);
        if (regs) epi_tr_regs(j->e, sv, r);
        EPI_TR_STAGE(8);
        EPI_TR_STAGE(4);
        EPI_TR_STAGE(2);
        EPI_TR_STAGE(1);
        const __mmask16 ml = (__mmask16)((1u << nl) - 1u);
        _Pragma("GCC unroll 16") for (int c = 0; c < 16; c++)
            if (c < nc) _mm512_mask_storeu_ps(j->y + (o0 + c) * L + l, ml, (__m512)r[c]);
    }
    if (j->e && !regs) am_epi_apply(j->e, j->img, o0, nc, l0, l1 - l0); /* while in cache */
}
#endif

void am_epi_tr_fn(const void *ud, int64_t r0, int64_t nr, int64_t c0, int64_t nc) {
#if EPI_HAVE_VEC
    for (int64_t c = c0; c < c0 + nc; c += 16)
        epi_tr_block((const am_epi_tr *)ud, c, c0 + nc - c < 16 ? c0 + nc - c : 16, r0, r0 + nr);
#else
    (void)ud, (void)r0, (void)nr, (void)c0, (void)nc; /* (used only with AVX-512) */
#endif
}
