/* The attention kernel (attn.h): per (batch..., head) matrix, K^T and V are packed once,
 * then each block of query rows goes through scores, softmax and the product with V.
 * Under a boolean mask the products stop at the block's last kept column (causal masks:
 * small blocks, so that most masked scores are never computed). */
#include "attn.h"

#include <math.h>
#include <string.h>

/* An operand as a strided view: element strides, broadcast batch dims stride 0. */
typedef struct view {
    const char *data;
    int64_t shape[AMBER_MAX_RANK], stride[AMBER_MAX_RANK];
} view;

typedef struct attn_job {
    const am_attn *a;
    view q, kt, v, mask, o; /* o: the result (rows may be apart: out_perm) */
    size_t mask_esize;
    char *out;
    int rank;
    int64_t oshape[AMBER_MAX_RANK]; /* the result's batch dims, then L, Ev */
    int64_t L, E, S, Ev, rb;        /* rb: query rows per block */
    size_t kt_len, v_len, tile_len, gemm_len; /* per-worker scratch (elements, rounded) */
    char **work;
    am_row_fn exp_row;
    /* A keep mask shared by every batch: per block of rb query rows, one past the last
     * column any of its rows keeps (or NULL: found per block, kept_end) */
    const int64_t *his;
    /* the product with V may stop at that column (cut_pv: the probabilities past it are
     * +0, so with V finite there the sums are the same bits) */
    bool cut_pv;
    /* NOTE: k_matmul gives a product of at most two rows (counting rows of batches it
     * merges) to GEMV, whose narrow-row order differs from the packed kernels'; such a
     * product here runs GEMV too, on a contiguous copy of its right operand. */
    bool gemv_s, gemv_pv;
} attn_job;

/* Whether k_matmul would run x @ y (batch dims of x: xb matrices, of y: yb, of the
 * result: nb) as products of at most two rows. */
static bool gemv_rows(int64_t m, int64_t xb, int64_t yb, int64_t nb) {
    return (yb == 1 && xb == nb ? m * nb : m) <= 2;
}

static int64_t batch_count(const view *w, int rank) {
    int64_t n = 1;
    for (int d = 0; d < rank - 2; d++) n *= w->shape[d];
    return n;
}

/* Copies the (k, n) matrix at src with element strides (rs, cs) to row-major dst. */
#define COPY_MAT(SUF, T)                                                                    \
    static const T *dense_##SUF(const T *src, int64_t rs, int64_t cs, int64_t k, int64_t n, \
                                T *dst) {                                                   \
        for (int64_t p = 0; p < k; p++)                                                     \
            for (int64_t c = 0; c < n; c++) dst[p * n + c] = src[p * rs + c * cs];          \
        return dst;                                                                         \
    }
COPY_MAT(f32, float)
COPY_MAT(f64, double)

/* The view of a tensor of rank tr (shape, element strides) with its batch dims
 * broadcast to oshape (leading dims added when tr < rank: a mask may have fewer). */
static void make_view(view *w, const void *data, const int64_t *shape, const int64_t *stride,
                      int tr, int rank, const int64_t *oshape) {
    w->data = (const char *)data;
    for (int d = 0, s = d - (rank - tr); d < rank; d++, s++) {
        w->shape[d] = s < 0 ? 1 : shape[s];
        w->stride[d] = s < 0 ? 0 : stride[s];
        if (d < rank - 2 && w->shape[d] == 1 && oshape[d] != 1) w->stride[d] = 0;
    }
}

/* Operand i (attn.h): ext[i] read through its view steps. */
static amber_status operand_view(view *w, const am_attn *a, int i, const amber_tensor *ext,
                                 const int64_t *oshape, am_error *err) {
    const amber_tensor *t = &ext[i];
    int64_t shape[AMBER_MAX_RANK], stride[AMBER_MAX_RANK], ns[AMBER_MAX_RANK];
    int r = t->rank;
    memcpy(shape, t->shape, sizeof(int64_t) * (size_t)r);
    am_contig_strides(t->shape, r, 1, stride);
    int64_t off = 0;
    for (int s = 0; s < a->n_steps[i]; s++) {
        const am_attn_step *st = &a->steps[i][s];
        const amber_tensor *res = &ext[AM_ATTN_STEP0 + i * AM_ATTN_STEPS + s];
        int k = 0;
        bool bad = false;
        for (int d = 0; d < res->rank && !bad; d++) {
            if (st->op == AM_OP_TRANSPOSE) {
                ns[d] = stride[st->perm[d]];
            } else if (st->op == AM_OP_SLICE) {
                off += st->start[d] * stride[d];
                ns[d] = stride[d] * st->step[d];
            } else if (res->shape[d] == 1) { /* a reshape adding or dropping 1s */
                ns[d] = 0;
            } else {
                while (k < r && shape[k] == 1) k++;
                bad = k == r || shape[k] != res->shape[d];
                ns[d] = bad ? 0 : stride[k++];
            }
        }
        while (st->op == AM_OP_RESHAPE && k < r && shape[k] == 1) k++;
        if (bad || (st->op == AM_OP_RESHAPE && k != r))
            return am_fail(err, AMBER_ERR_SHAPE, "attention: a reshape is not a view");
        r = res->rank;
        memcpy(shape, res->shape, sizeof(int64_t) * (size_t)r);
        memcpy(stride, ns, sizeof(int64_t) * (size_t)r);
    }
    make_view(w, (const char *)t->data + off * (int64_t)amber_dtype_size(t->dtype), shape,
              stride, r, a->rank, oshape);
    return AMBER_OK;
}

static int64_t batch_offset(const view *w, const attn_job *j, int64_t bi) {
    int64_t off = 0;
    for (int d = j->rank - 3; d >= 0; d--) {
        int64_t i = bi % j->oshape[d];
        bi /= j->oshape[d];
        off += i * w->stride[d];
    }
    return off;
}

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }


/* k_reduce's max of a row (the first NaN if there is one, else the largest value),
 * over eight lanes so that it vectorises. NOTE: lanes may keep another zero than the
 * serial loop; the sign of a zero maximum changes no result below (x - 0 and x + 0
 * agree, and exp(-0) = exp(+0)). */
#define ROW_MAX(NAME, T, ATTR)                                                              \
    ATTR static inline T NAME(const T *t, int64_t n) {                                      \
        T lane[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,                            \
                     -INFINITY, -INFINITY, -INFINITY, -INFINITY};                           \
        int nan = 0;                                                                        \
        int64_t c = 0;                                                                      \
        for (; c + 8 <= n; c += 8)                                                          \
            for (int q = 0; q < 8; q++) {                                                   \
                T v = t[c + q];                                                             \
                lane[q] = v > lane[q] ? v : lane[q];                                        \
                nan |= v != v;                                                              \
            }                                                                               \
        T mx = -INFINITY;                                                                   \
        for (; c < n; c++) {                                                                \
            mx = t[c] > mx ? t[c] : mx;                                                     \
            nan |= t[c] != t[c];                                                            \
        }                                                                                   \
        for (int q = 0; q < 8; q++) mx = lane[q] > mx ? lane[q] : mx;                       \
        if (nan)                                                                            \
            for (c = 0; c < n; c++)                                                         \
                if (t[c] != t[c]) return t[c];                                              \
        return mx;                                                                          \
    }

/* Past the last kept column hi: up to a multiple of 64 columns (see ROWS). */
static int64_t span_end(int64_t hi, int64_t S) {
    int64_t e = hi < S ? (hi + 64) / 64 * 64 : S;
    return e < S ? e : S;
}

/* NOTE: each step below is the node it replaces, in the same precision and order: the
 * product rounded by the same GEMM, k_reduce's max, the exp row loop, and k_reduce's sum
 * of a contiguous row (AM_ROWSUM). The safe
 * softmax's two maxima are one: its second max reads the first one's row unchanged
 * unless the row is dead. Columns from hi on (masked in every row of the block) hold one
 * value at every step: the steps run up to e, past hi, (on to a multiple of 64 columns:
 * the exp loop's fast path) and the value at hi fills the rest. */
#define ROWS(NAME, T, V8, ATTR)                                                             \
    ROW_MAX(NAME##_max, T, ATTR)                                                            \
    AM_ROWSUM(NAME##_sum, T, V8, ATTR)                                                      \
    ATTR static bool NAME##_pre(const attn_job *j, T *restrict t, const char *mr, int64_t e) { \
        const am_attn *a = j->a;                                                            \
        int64_t mcs = j->mask.stride[j->rank - 1];                                          \
        const T sc = (T)a->scale, fill = (T)a->fill;                                        \
        if (a->scaled)                                                                      \
            for (int64_t c = 0; c < e; c++) t[c] = t[c] * sc;                               \
        if (a->mask == AM_ATTN_KEEP && mcs == 1)                                            \
            for (int64_t c = 0; c < e; c++) t[c] = mr[c] ? t[c] : fill;                     \
        else if (a->mask == AM_ATTN_KEEP)                                                   \
            for (int64_t c = 0; c < e; c++) t[c] = mr[c * mcs] ? t[c] : fill;               \
        else if (a->mask == AM_ATTN_ADD && mcs == 1)                                        \
            for (int64_t c = 0; c < e; c++) t[c] = t[c] + ((const T *)(const void *)mr)[c]; \
        else if (a->mask == AM_ATTN_ADD)                                                    \
            for (int64_t c = 0; c < e; c++) t[c] = t[c] + ((const T *)(const void *)mr)[c * mcs]; \
        T mx = NAME##_max(t, e);                                                            \
        bool dead = a->safe && mx == (T)a->dead_at;                                         \
        if (dead) {                                                                         \
            for (int64_t c = 0; c < e; c++) t[c] = (T)a->dead_s;                            \
            mx = NAME##_max(t, e);                                                          \
        }                                                                                   \
        for (int64_t c = 0; c < e; c++) t[c] = t[c] - mx;                                   \
        return dead;                                                                        \
    }                                                                                       \
    ATTR static void NAME##_post(const attn_job *j, T *restrict t, int64_t hi, int64_t e,   \
                                 bool dead) {                                               \
        int64_t S = j->S;                                                                   \
        /* +0s past e add nothing to the sum's partials (e >= 16: the same ones) */         \
        const T th = t[e < S ? hi : 0];                                                     \
        bool zero = e < S && th == 0 && !signbit(th);                                       \
        for (int64_t c = zero ? S : e; c < S; c++) t[c] = th;                               \
        const T z = (T)NAME##_sum(t, zero ? e : S, false);                                  \
        for (int64_t c = 0; c < e; c++) t[c] = t[c] / z;                                    \
        for (int64_t c = e; c < S; c++) t[c] = th / z;                                      \
        if (dead)                                                                           \
            for (int64_t c = 0; c < S; c++) t[c] = (T)j->a->dead_p;                         \
    }                                                                                       \
    /* Rows in groups of 64: whole rows (e == S) go through exp as one run, which takes    \
     * the exp loop's fast path even when rows are short. */                               \
    ATTR static void NAME(const attn_job *j, T *tile, int64_t m, const char *mask,          \
                          int64_t hi) {                                                     \
        int64_t S = j->S, r = j->rank;                                                      \
        const int64_t e = span_end(hi, S);                                                  \
        int64_t s[2] = {sizeof(T), sizeof(T)};                                              \
        for (int64_t i0 = 0; i0 < m; i0 += 64) {                                            \
            int64_t g = m - i0 < 64 ? m - i0 : 64;                                          \
            uint64_t dead = 0;                                                              \
            for (int64_t i = 0; i < g; i++) {                                               \
                const char *mr = mask ? mask + (size_t)((i0 + i) * j->mask.stride[r - 2]) * \
                                                   j->mask_esize                            \
                                      : NULL;                                               \
                dead |= (uint64_t)NAME##_pre(j, tile + (i0 + i) * S, mr, e) << i;           \
            }                                                                               \
            for (int64_t i = 0; i < (e == S ? 1 : g); i++) {                                \
                char *p[2] = {(char *)(tile + (i0 + i) * S), (char *)(tile + (i0 + i) * S)}; \
                j->exp_row(p, s, e == S ? g * S : e, NULL);                                 \
            }                                                                               \
            for (int64_t i = 0; i < g; i++)                                                 \
                NAME##_post(j, tile + (i0 + i) * S, hi, e, (dead >> i) & 1);                \
        }                                                                                   \
    }

ROWS(rows_f32_base, float, am_v8f, )
ROWS(rows_f64_base, double, am_v8d, )
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
/* float32's loops compiled for AVX-512 too (IEEE operations lane by lane: the same bits);
 * float64's, rare in attention, are the base ones only (5 KB less code). */
ROWS(rows_f32_avx512, float, am_v8f, __attribute__((target("avx512f"))))
#define ROWS_FN_f32 (am_cpu_isa() >= AM_GEMM_ISA_AVX512 ? rows_f32_avx512 : rows_f32_base)
#else
#define ROWS_FN_f32 rows_f32_base
#endif
#define ROWS_FN_f64 rows_f64_base

/* One past the last column a boolean mask keeps in any of the block's m rows (S without
 * such a mask): the scores beyond it are all the fill, whatever the product would give,
 * so the product stops there (a column's bits do not depend on how many are computed
 * with the packed keys). Rows scan down to the bound found so far: causal masks cost
 * about S. */
static int64_t kept_end(const attn_job *j, const char *mask, int64_t m) {
    int r = j->rank;
    if (!mask || j->a->mask != AM_ATTN_KEEP) return j->S;
    int64_t hi = 0, rs = j->mask.stride[r - 2], cs = j->mask.stride[r - 1];
    for (int64_t i = 0; i < m && hi < j->S; i++)
        for (int64_t c = j->S - 1; c >= hi; c--)
            if (mask[i * rs + c * cs]) {
                hi = c + 1;
                break;
            }
    return hi;
}

/* One past the last column row `mr` of a boolean mask keeps (0: none), from the right. */
static int64_t row_end(const char *mr, int64_t cs, int64_t S) {
    int64_t c = S;
    if (cs == 1)
        for (uint64_t w; c >= 8 && (memcpy(&w, mr + c - 8, 8), w == 0);) c -= 8;
    while (c > 0 && !mr[(c - 1) * cs]) c--;
    return c;
}

/* One past the last row of V (S x Ev, element strides rs, cs) holding an infinity or a
 * NaN (0: none). */
#define NONFINITE_END(SUF, T)                                                               \
    static int64_t nonfinite_end_##SUF(const T *v, int64_t rs, int64_t cs, int64_t S,       \
                                       int64_t Ev) {                                        \
        for (int64_t p = S; p > 0; p--) {                                                   \
            const T *row = v + (p - 1) * rs;                                                \
            T bad = 0;                                                                      \
            if (cs == 1)                                                                    \
                for (int64_t c = 0; c < Ev; c++) bad += row[c] - row[c];                    \
            else                                                                            \
                for (int64_t c = 0; c < Ev; c++) bad += row[c * cs] - row[c * cs];          \
            if (bad != 0 || bad != bad) return p; /* x - x: NaN for inf and NaN only */     \
        }                                                                                   \
        return 0;                                                                           \
    }
NONFINITE_END(f32, float)
NONFINITE_END(f64, double)

#define ATTN_IMPL(SUF, T, ATTR)                                                             \
    ATTR static void task_##SUF(void *ud, int64_t bi, int worker) {                         \
        const attn_job *j = (const attn_job *)ud;                                           \
        int r = j->rank;                                                                    \
        T *ktp = (T *)(void *)j->work[worker], *vp = ktp + j->kt_len;                        \
        T *tile = vp + j->v_len, *gs = tile + j->tile_len;                                  \
        const T *q = (const T *)(const void *)j->q.data + batch_offset(&j->q, j, bi);       \
        const T *kt = (const T *)(const void *)j->kt.data + batch_offset(&j->kt, j, bi);    \
        const T *v = (const T *)(const void *)j->v.data + batch_offset(&j->v, j, bi);       \
        const char *mask = j->mask.data                                                     \
            ? j->mask.data + (size_t)batch_offset(&j->mask, j, bi) * j->mask_esize : NULL;  \
        T *out = (T *)(void *)j->out + batch_offset(&j->o, j, bi);                          \
        const int64_t ors = j->o.stride[r - 2];                                             \
        const T *ktd = NULL, *vd = NULL; /* contiguous copies for GEMV, or NULL */          \
        if (j->gemv_s)                                                                      \
            ktd = dense_##SUF(kt, j->kt.stride[r - 2], j->kt.stride[r - 1], j->E, j->S, ktp); \
        else                                                                                \
            am_gemm_pack_b_##SUF(kt, j->kt.stride[r - 2], j->kt.stride[r - 1], j->E, j->S, ktp); \
        if (j->gemv_pv)                                                                     \
            vd = dense_##SUF(v, j->v.stride[r - 2], j->v.stride[r - 1], j->S, j->Ev, vp);   \
        else                                                                                \
            am_gemm_pack_b_##SUF(v, j->v.stride[r - 2], j->v.stride[r - 1], j->S, j->Ev, vp); \
        int64_t vend = j->cut_pv ? nonfinite_end_##SUF(v, j->v.stride[r - 2],              \
                                                       j->v.stride[r - 1], j->S, j->Ev)     \
                                 : j->S;                                                    \
        for (int64_t i0 = 0; i0 < j->L; i0 += j->rb) {                                      \
            int64_t m = j->L - i0 < j->rb ? j->L - i0 : j->rb;                              \
            const char *mb = mask ? mask + (size_t)(i0 * j->mask.stride[r - 2]) * j->mask_esize \
                                  : NULL;                                                   \
            int64_t hi = ktd ? j->S : j->his ? j->his[i0 / j->rb] : kept_end(j, mb, m);     \
            for (int64_t i = 0; i < m; i++) /* the mask's rows fill these */                \
                memset(tile + i * j->S + hi, 0, sizeof(T) * (size_t)(span_end(hi, j->S) - hi)); \
            am_gemm_serial_##SUF(m, hi, j->E, q + i0 * j->q.stride[r - 2],                  \
                                 j->q.stride[r - 2], j->q.stride[r - 1], ktd, j->S, 1,      \
                                 ktd ? NULL : ktp, tile, j->S, false, gs);                  \
            ROWS_FN_##SUF(j, tile, m, mb, hi);                                              \
            if (j->cut_pv && hi >= vend && hi > 0)                                          \
                am_gemm_serial_part_##SUF(m, j->Ev, hi, tile, j->S, 1, vp, j->S,            \
                                          out + i0 * ors, ors, gs);                         \
            else                                                                            \
                am_gemm_serial_##SUF(m, j->Ev, j->S, tile, j->S, 1, vd, j->Ev, 1,           \
                                     vd ? NULL : vp, out + i0 * ors, ors, false, gs);       \
        }                                                                                   \
    }                                                                                       \
                                                                                            \
    static void sizes_##SUF(attn_job *j) {                                                  \
        j->kt_len = round16(am_gemm_packed_len_##SUF(j->E, j->S));                          \
        j->v_len = round16(am_gemm_packed_len_##SUF(j->S, j->Ev));                          \
        j->tile_len = round16((size_t)(j->rb * j->S));                                      \
        size_t g1 = am_gemm_scratch_len_##SUF(j->rb, j->S, j->E, true);                     \
        size_t g2 = am_gemm_scratch_len_##SUF(j->rb, j->Ev, j->S, true);                    \
        j->gemm_len = round16(g1 > g2 ? g1 : g2);                                           \
    }

ATTN_IMPL(f32, float, )
ATTN_IMPL(f64, double, __attribute__((cold))) /* (float64, rare here: for size) */

/* Query rows per block under a causal-like mask (one keeping under 3/4 of the scores):
 * blocks this small skip most of the masked scores, and still fill the register tile. */
#define CAUSAL_ROWS 24

/* A keep mask shared by every batch (with the scores' packed product): each row's end is
 * found once per run, the blocks' ends (j->his) from them; sets j->rb and j->cut_pv. */
static amber_status shared_mask(attn_job *j, am_ctx *ctx, bool f32) {
    const am_attn *a = j->a;
    int r = j->rank;
    if (a->mask != AM_ATTN_KEEP || j->gemv_s) return AMBER_OK;
    for (int d = 0; d < r - 2; d++)
        if (j->mask.shape[d] != 1) return AMBER_OK;
    int64_t *ends, *his, L = j->L, S = j->S;
    amber_status st = am_arena_alloc(ctx->scratch, sizeof(int64_t) * (size_t)L, (void **)&ends,
                                     ctx->err);
    if (st != AMBER_OK) return st;
    double kept = 0;
    for (int64_t i = 0; i < L; i++) {
        const char *mr = j->mask.data + (size_t)(i * j->mask.stride[r - 2]) * j->mask_esize;
        ends[i] = row_end(mr, j->mask.stride[r - 1], S);
        kept += (double)ends[i];
    }
    if (kept < 0.75 * (double)L * (double)S && j->rb > CAUSAL_ROWS) j->rb = CAUSAL_ROWS;
    int64_t nb = (L + j->rb - 1) / j->rb;
    st = am_arena_alloc(ctx->scratch, sizeof(int64_t) * (size_t)nb, (void **)&his, ctx->err);
    if (st != AMBER_OK) return st;
    for (int64_t b = 0; b < nb; b++) {
        his[b] = 0;
        for (int64_t i = b * j->rb; i < L && i < (b + 1) * j->rb; i++)
            his[b] = ends[i] > his[b] ? ends[i] : his[b];
    }
    j->his = his;
    /* past a block's end every probability is +0 (exp(-inf) / z; a dead row's dead_p) */
    j->cut_pv = !j->gemv_pv && a->fill == -INFINITY && (!a->safe || a->dead_p == 0) &&
                S <= (f32 ? AM_GEMM_KC_F32 : AM_GEMM_KC_F64);
    return AMBER_OK;
}

amber_status am_attention_run(const am_attn *a, am_ctx *ctx, const amber_tensor *ext,
                              amber_tensor *out) {
    attn_job j;
    memset(&j, 0, sizeof j);
    j.a = a;
    j.rank = a->rank;
    int r = a->rank;
    if (out->rank != r)
        return am_fail(ctx->err, AMBER_ERR_SHAPE, "attention: operand shapes do not match");
    int64_t ost[AMBER_MAX_RANK], sd[AMBER_MAX_RANK];
    am_contig_strides(out->shape, r, 1, ost);
    for (int d = 0; d < r; d++) { /* the result's dims, in out's memory (out_perm) */
        int p = a->out_perm[0] >= 0 ? a->out_perm[d] : d;
        j.oshape[p] = out->shape[d];
        sd[p] = ost[d];
    }
    make_view(&j.o, out->data, j.oshape, sd, r, r, j.oshape);
    amber_status st = AMBER_OK;
    view *ops[3] = {&j.q, &j.kt, &j.v};
    for (int i = 0; i < 3 && st == AMBER_OK; i++)
        st = operand_view(ops[i], a, i, ext, j.oshape, ctx->err);
    if (st != AMBER_OK) return st;
    if (a->mask != AM_ATTN_NO_MASK) {
        const amber_tensor *mt = &ext[AM_ATTN_MASK];
        am_contig_strides(mt->shape, mt->rank, 1, sd);
        make_view(&j.mask, mt->data, mt->shape, sd, mt->rank, r, j.oshape);
        for (int d = r - 2; d < r; d++) /* broadcast rows and columns too */
            if (j.mask.shape[d] == 1) j.mask.stride[d] = 0;
        j.mask_esize = amber_dtype_size(ext[AM_ATTN_MASK].dtype);
    }
    j.out = (char *)out->data;
    j.L = j.q.shape[r - 2], j.E = j.q.shape[r - 1], j.S = j.kt.shape[r - 1];
    j.Ev = j.v.shape[r - 1];
    if (j.kt.shape[r - 2] != j.E || j.v.shape[r - 2] != j.S || j.oshape[r - 2] != j.L ||
        j.oshape[r - 1] != j.Ev)
        return am_fail(ctx->err, AMBER_ERR_SHAPE, "attention: operand shapes do not match");
    int64_t batches = 1;
    for (int d = 0; d < r - 2; d++) batches *= j.oshape[d];
    if (batches == 0 || j.L == 0 || j.Ev == 0) return AMBER_OK;
    bool f32 = out->dtype == AMBER_FLOAT32;
    j.exp_row = am_elementwise_loop(am_op_get(AM_OP_EXP), out->dtype, out->dtype);
    if (!j.exp_row) return am_fail(ctx->err, AMBER_ERR_DTYPE, "attention: no exp loop");
    int64_t bq = batch_count(&j.q, r), bk = batch_count(&j.kt, r), bv = batch_count(&j.v, r);
    int64_t bs = 1; /* the scores' batch: q's and kt's broadcast */
    for (int d = 0; d < r - 2; d++)
        bs *= j.q.shape[d] > j.kt.shape[d] ? j.q.shape[d] : j.kt.shape[d];
    j.gemv_s = gemv_rows(j.L, bq, bk, bs);
    j.gemv_pv = gemv_rows(j.L, bs, bv, batches);
    int64_t rb = 32768 / (j.S > 0 ? j.S : 1); /* a score block of at most 128 KiB (f32) */
    j.rb = rb < 8 ? 8 : rb > j.L ? j.L : rb;
    st = shared_mask(&j, ctx, f32);
    if (st != AMBER_OK) return st;
    if (f32) sizes_f32(&j);
    else sizes_f64(&j);
    double work = (double)batches * (double)j.L * (double)j.S * (double)(j.E + j.Ev);
    am_pool *pool = batches > 1 && work >= AM_PARALLEL_MIN ? ctx->pool : NULL;
    int workers = am_pool_size(pool);
    size_t esize = amber_dtype_size(out->dtype);
    size_t per = (j.kt_len + j.v_len + j.tile_len + j.gemm_len) * esize;
    st = am_arena_alloc(ctx->scratch, sizeof(char *) * (size_t)workers, (void **)&j.work,
                        ctx->err);
    for (int w = 0; st == AMBER_OK && w < workers; w++)
        st = am_arena_alloc(ctx->scratch, per ? per : 1, (void **)&j.work[w], ctx->err);
    if (st != AMBER_OK) return st;
    am_task_fn fn = f32 ? task_f32 : task_f64;
    if (pool) am_pool_run(pool, batches, fn, &j);
    else
        for (int64_t bi = 0; bi < batches; bi++) fn(&j, bi, 0);
    return AMBER_OK;
}
