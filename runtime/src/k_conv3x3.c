/* conv2d with a 3x3 kernel, stride 1 or 2, no dilation or groups, float32 on AVX-512
 * (AVX2: stride 1 by rows, below): computed directly, without im2col (ResNet's and
 * SqueezeNet's 3x3 convolutions spent a sixth of their time packing im2col columns and
 * copying the padded input for the GEMM).
 *
 * Each image is copied once, zero-padded, into C planes of HP x WP (the rows and columns
 * the windows reach), so that tap (c, p, q) of output (i, j) is at c * HP * WP + (i * sh +
 * p) * WP + j * sw + q. The filters are packed once per session as [O / 64][C][3][3][64].
 * A register tile holds 4 outputs (consecutive in the image's pixel order, across rows)
 * x 64 output channels (16 vectors): per filter row, its three taps' 12 filter vectors
 * and a broadcast input per output and tap, 48 fused multiply-adds. (Tiles of 6 outputs
 * loading 4 filter vectors per tap ran at 88% of the FMA peak, these at it.) A task
 * computes a band of outputs (at most D3_BAND) for one block of 64 channels in a tile
 * buffer (pixels x channels), D3_ICB input channels at a time (their filters stay in L1),
 * then writes it transposed to y with the epilogue (am_epi_tr_fn). Small images go a few
 * at a time (as many as fit one band and D3_XP bytes padded), their outputs one sequence
 * of bands: a 7x7 image's 49 outputs no longer end in a tile of one (ResNet-50's 7x7
 * layers at batch 8 ran 5-7% faster), and there are fewer rounds of tasks.
 * Every output is one chain of fused multiply-adds from +0 over the taps in (c, p, q)
 * order, padding taps included, whatever the band, block or thread: the bits depend on
 * the shapes alone. (They are the GEMM path's while C * 9 fits one of its depth blocks,
 * 512; beyond, the GEMM sums each block apart first.) At stride 1 on output rows of
 * D3_ROWS_MIN or more, Winograd's F(2,3) by rows instead (below): 2/3 of the multiply-adds
 * (ResNet-50's 3x3 layers at stride 1 ran 1.23-1.25x faster, 7x7 1.09x; SqueezeNet's
 * 1.15-1.20x). */
#include "ops.h"

#include <math.h>
#include <stdatomic.h>

#define D3W_NP 2 /* pairs per register tile by rows */
#define D3W_NV 2 /* vectors of channels per register tile by rows */
enum {
    D3_OB = 64,    /* output channels per block: four vectors */
    D3_PX = 4,     /* flattened outputs per register tile */
    D3_ICB = 8,    /* input channels per pass over a band (their 18 KB of filters in L1) */
    D3_BAND = 240, /* outputs per band (a 60 KB tile buffer; 120 and 480 ran slower) */
    D3_XP = 1 << 19, /* bytes of padded images at most when taking several at a time */
    D3_PB = D3_BAND / 2, /* pairs of outputs per band, stride 1 by rows (F(2,3)) */
    D3_ICW = 8,          /* input channels per pass by rows (a part's 12 KB of u in L1) */
    D3_ROWS_MIN = 5,     /* outputs per row at least, stride 1, for the rows' form (7: 1.07x) */
    /* AVX2: outputs per row at least for the rows' form (ResNet-50's 56x56 to 14x14 layers
     * 0.72-0.75x the GEMM's time; 7x7 0.97x: its transformed filters, 4/3 of the GEMM's,
     * stream from memory) */
    D3W8_MIN_OW = 8,
    D3W8_ICW = 32, /* AVX2: input channels per pass (96 steps a tile; 8: 2-5% slower) */
    D3W_CW = D3W_NV * 16, D3W_PARTS = D3_OB / D3W_CW,
};

/* The am_keep kinds of the packed filters: as they are, and as rows' transforms */
#define KEEP_KIND_CONV3X3 0x5500u
#define KEEP_KIND_CONV3X3_ROWS 0x5600u

typedef struct d3_job {
    int64_t c, o, oh, ow, sh, sw, wp, plane, nob, img, g; /* g images from img at a time */
    int64_t h, w, pt, pl; /* the input planes and their place in the padded ones */
    const float *x, *wt;  /* x: the image */
    float *xp, *y, *ws;   /* ws: a tile buffer per worker */
    int64_t band, ws_len, pad_tasks; /* band: outputs per task, at most D3_BAND */
    const am_epi *epi;
    /* by rows (rows): pairs of outputs per row, pairs per task (at most D3_PB); bad: an
     * input too large for the transforms, or not finite */
    int64_t npr, pband;
    bool rows;
    bool w8; /* AVX2: by rows in 8-lane tiles (d3w8_*) */
    atomic_int bad;
} d3_job;

#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#include <immintrin.h>

#define COLD __attribute__((cold)) /* set-up code: optimised for size */
#define D3_AVX512 __attribute__((target("avx512f")))

/* Output p's tap at s_p[k + q] times its filter vectors W0..W3, into its accumulators */
#define D3_FMA(p, q, W, s)                                                                 \
    do {                                                                                   \
        __m512 b = _mm512_set1_ps(s[k + q]);                                               \
        a[p][0] = _mm512_fmadd_ps(W##0, b, a[p][0]);                                       \
        a[p][1] = _mm512_fmadd_ps(W##1, b, a[p][1]);                                       \
        a[p][2] = _mm512_fmadd_ps(W##2, b, a[p][2]);                                       \
        a[p][3] = _mm512_fmadd_ps(W##3, b, a[p][3]);                                       \
    } while (0)
#define D3_ROW(p)                                                                          \
    do {                                                                                   \
        D3_FMA(p, 0, u, s##p);                                                             \
        D3_FMA(p, 1, v, s##p);                                                             \
        D3_FMA(p, 2, z, s##p);                                                             \
    } while (0)
#define D3_LD(W, t)                                                                        \
    __m512 W##0 = _mm512_loadu_ps(w + t * D3_OB), W##1 = _mm512_loadu_ps(w + t * D3_OB + 16), \
           W##2 = _mm512_loadu_ps(w + t * D3_OB + 32), W##3 = _mm512_loadu_ps(w + t * D3_OB + 48)

/* acc[px][64] for np (D3_PX, or 1: a band's last output alone) outputs: +0 (first) or
 * acc, plus the taps of nc input channels, output px's first at q[px] (in plane 0), their
 * filters at w. A filter row's three taps stay in registers (12 vectors) while each output
 * takes them in turn: every accumulator still sums its taps in (c, p, q) order. */
D3_AVX512 static inline __attribute__((always_inline)) void
d3_tile_n(const float *const *q, int64_t plane, int64_t wp, const float *w, int64_t nc,
          float *acc, bool first, const int np) {
    __m512 a[D3_PX][4];
    _Pragma("GCC unroll 4") for (int p = 0; p < np; p++)
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
            a[p][v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(acc + p * D3_OB + v * 16);
    const float *s0 = q[0], *s1 = q[np > 1], *s2 = q[np > 2 ? 2 : 0], *s3 = q[np > 3 ? 3 : 0];
    for (int64_t ic = 0; ic < nc; ic++) {
        _Pragma("GCC unroll 1") for (int r = 0; r < 3; r++, w += 3 * D3_OB) {
            int64_t k = ic * plane + r * wp;
            D3_LD(u, 0);
            D3_LD(v, 1);
            D3_LD(z, 2);
            D3_ROW(0);
            if (np > 1) D3_ROW(1);
            if (np > 2) D3_ROW(2);
            if (np > 3) D3_ROW(3);
        }
    }
    _Pragma("GCC unroll 4") for (int p = 0; p < np; p++)
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
            _mm512_storeu_ps(acc + p * D3_OB + v * 16, a[p][v]);
}

D3_AVX512 static void d3_tile(const float *const *q, int64_t plane, int64_t wp, const float *w,
                              int64_t nc, float *acc, bool first) {
    d3_tile_n(q, plane, wp, w, nc, acc, first, D3_PX);
}

/* NOTE: a quarter of a tile's multiply-adds: a 7x7 image's 49th output (6% of ResNet-50's
 * 7x7 layers at batch 1) and 13x13's 169th no longer run a whole tile */
D3_AVX512 static void d3_tile1(const float *const *q, int64_t plane, int64_t wp,
                               const float *w, int64_t nc, float *acc, bool first) {
    d3_tile_n(q, plane, wp, w, nc, acc, first, 1);
}

/* Outputs [l0, l1) of the g images (acc: pixels x D3_OB channels) of channel block ob
 * into y, through the epilogue */
static void d3_write(const d3_job *j, int64_t ob, int64_t l0, int64_t l1, const float *acc) {
    int64_t L = j->oh * j->ow, nc = j->o - ob * D3_OB < D3_OB ? j->o - ob * D3_OB : D3_OB;
    for (int64_t a = l0, b; a < l1; a = b) { /* each image's part */
        int64_t m = a / L, img = j->img + m;
        b = (m + 1) * L < l1 ? (m + 1) * L : l1;
        am_epi_tr tr = {j->epi, img, L, D3_OB, acc + (a - l0) * D3_OB, j->y + img * j->o * L,
                        a - m * L, ob * D3_OB};
        am_epi_tr_fn(&tr, a - m * L, b - a, ob * D3_OB, nc);
    }
}

/* The first padded row of pad task t when the threads split the bands (of `band` units,
 * `row` to an output row): where the tiles that thread t of the pool runs first begin (it
 * then finds them in its cache); hp for t = pad_tasks. */
static int64_t d3_pad_row(const d3_job *j, int64_t t, int64_t bands, int64_t band,
                          int64_t row, int64_t hp) {
    if (t == j->pad_tasks) return hp;
    int64_t l = am_pool_first(j->nob * bands, (int)j->pad_tasks, (int)t) / j->nob * band;
    return l / row * j->sh < hp ? l / row * j->sh : hp;
}

/* Task t: output channel block t % nob, outputs [l0, l1) of the g images (a band, the
 * rows' pixels in turn, image after image). A tile past l1 repeats the band's last one. */
static void d3_task(void *ud, int64_t t, int worker) {
    const d3_job *j = (const d3_job *)ud;
    int64_t ob = t % j->nob, L = j->oh * j->ow, l0 = t / j->nob * j->band;
    int64_t l1 = l0 + j->band < L * j->g ? l0 + j->band : L * j->g;
    float *acc = j->ws + worker * j->ws_len;
    const float *w = j->wt + ob * j->c * 9 * D3_OB;
    int64_t at[D3_BAND + D3_PX]; /* where output l0 + i reads plane 0 (of its image) */
    for (int64_t i = 0, n = l0 / L, r = l0 % L / j->ow, c = l0 % j->ow; i < l1 - l0; i++) {
        at[i] = n * j->c * j->plane + r * j->sh * j->wp + c * j->sw;
        if (++c == j->ow && (c = 0, ++r == j->oh)) r = 0, n++;
    }
    for (int64_t i = l1 - l0; i < D3_BAND + D3_PX; i++) at[i] = at[l1 - l0 - 1];
    /* each tile prefetches its share of the next pass's filters (the next block's first
     * after the last pass): they come from L3 or memory on larger layers */
    int64_t n = l1 - l0, tiles = (n + D3_PX - 1) / D3_PX;
    int64_t per = (D3_ICB * 9 * D3_OB / 16 + tiles - 1) / tiles; /* lines per tile */
    const float *wend = j->wt + j->nob * j->c * 9 * D3_OB;
    for (int64_t c0 = 0; c0 < j->c; c0 += D3_ICB) {
        int64_t nc = j->c - c0 < D3_ICB ? j->c - c0 : D3_ICB;
        const float *wn = w + (c0 + nc) * 9 * D3_OB;
        for (int64_t f = 0, i = 0; f < n; f += D3_PX, i++) {
            const float *q[D3_PX];
            for (int64_t l = i * per; l < (i + 1) * per && wn + l * 16 < wend; l++)
                __builtin_prefetch(wn + l * 16);
            for (int p = 0; p < D3_PX; p++) q[p] = j->xp + c0 * j->plane + at[f + p];
            (n - f == 1 ? d3_tile1 : d3_tile)(q, j->plane, j->wp, w + c0 * 9 * D3_OB, nc,
                                              acc + f * D3_OB, c0 == 0);
        }
    }
    d3_write(j, ob, l0, l1, acc);
}

/* ------------------------------------------------------------------ stride 1 by rows
 * Each filter row's three taps over two neighbouring outputs of a row, as Winograd's
 * F(2,3): with d0..d3 the row's four inputs and g0..g2 the taps, the outputs are
 * m0 + m1 + m2 and m1 - m2 - m3, where m_k sums over (c, p) the products u_k * v_k of
 * v = (d0 - d2, d1 + d2, d2 - d1, d1 - d3) and u = (g0, (g0 + g1 + g2) / 2,
 * (g0 - g1 + g2) / 2, g2): four multiply-adds for six. Each output still reads only its
 * own window's rows; docs/opset.md (section 5, the row-product form) bounds the error.
 * The filters are transformed once per session into u ([O / 64][D3W_PARTS][C][3][4]
 * [D3W_CW], each rounded once), v made in registers from the padded image (rows of
 * 2 * npr + 2 columns: an odd width's last pair reads one more). A register tile holds
 * 2 pairs x 4 m x 32 channels; a task sums a band of pairs (across rows and images) for a
 * 64-channel block, D3_ICW channels a pass (a part's 12 KB of u in L1; 4 ran 1.06x slower),
 * then turns m into outputs (a pair past a row's end dropped) and writes them as d3_task
 * does. Every m is one chain of fused multiply-adds from +0 in (c, p) order: the bits
 * depend on the shapes alone. An image with an infinity, a NaN or a magnitude of 2^125 or
 * more (flagged by the padded copy), or filters not finite, runs the direct tiles instead,
 * so special values stay exact; AMBER_OPEN_PLAIN_SUMS (ctx->plain_sums) turns this off. */

/* m[pair][4][64] at acc (a part's D3W_CW channels) for np (D3W_NP, or fewer: a band's
 * last pairs) pairs: +0 (first) or m, plus nc input channels' rows; pair p's d0..d3 of
 * plane 0, row 0 at q[p] (rows wp apart), the part's u at w. v is made in registers (its
 * adds run beside the multiply-adds). */
D3_AVX512 static inline __attribute__((always_inline)) void
d3w_tile_n(const float *const *q, int64_t plane, int64_t wp, const float *w, int64_t nc,
           float *acc, bool first, const int np) {
    __m512 a[D3W_NP][4][D3W_NV], u[4][D3W_NV];
    _Pragma("GCC unroll 4") for (int p = 0; p < np; p++)
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++)
            _Pragma("GCC unroll 2") for (int v = 0; v < D3W_NV; v++)
                a[p][k][v] = first ? _mm512_setzero_ps()
                                   : _mm512_loadu_ps(acc + p * 4 * D3_OB + k * D3_OB + v * 16);
    for (int64_t ic = 0; ic < nc; ic++) {
        _Pragma("GCC unroll 1") for (int r = 0; r < 3; r++, w += 4 * D3W_CW) {
            _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++)
                _Pragma("GCC unroll 2") for (int v = 0; v < D3W_NV; v++) {
                    u[k][v] = _mm512_loadu_ps(w + k * D3W_CW + v * 16);
                    /* NOTE: loaded once for every pair (GCC would fold each use into an
                     * FMA's memory operand: the loads then bound the tile) */
                    __asm__("" : "+v"(u[k][v]));
                }
            _Pragma("GCC unroll 4") for (int p = 0; p < np; p++) {
                const float *sp = q[p] + ic * plane + r * wp;
                __m512 d0 = _mm512_set1_ps(sp[0]), d1 = _mm512_set1_ps(sp[1]);
                __m512 d2 = _mm512_set1_ps(sp[2]), d3 = _mm512_set1_ps(sp[3]);
                __m512 v[4] = {_mm512_sub_ps(d0, d2), _mm512_add_ps(d1, d2),
                               _mm512_sub_ps(d2, d1), _mm512_sub_ps(d1, d3)};
                _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++)
                    _Pragma("GCC unroll 2") for (int e = 0; e < D3W_NV; e++)
                        a[p][k][e] = _mm512_fmadd_ps(u[k][e], v[k], a[p][k][e]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int p = 0; p < np; p++)
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++)
            _Pragma("GCC unroll 2") for (int v = 0; v < D3W_NV; v++)
                _mm512_storeu_ps(acc + p * 4 * D3_OB + k * D3_OB + v * 16, a[p][k][v]);
}

#define D3W_TILE(NP)                                                                       \
    D3_AVX512 static void d3w_tile##NP(const float *const *q, int64_t plane, int64_t wp,   \
                                       const float *w, int64_t nc, float *acc, bool first) { \
        d3w_tile_n(q, plane, wp, w, nc, acc, first, NP);                                  \
    }
D3W_TILE(1)
D3W_TILE(2)
typedef void (*d3w_tile_fn)(const float *const *, int64_t, int64_t, const float *, int64_t,
                            float *, bool);
/* by the number of pairs */
_Static_assert(D3W_NP == 2, "d3w_tiles lists the tiles of 1 and 2 pairs");
static const d3w_tile_fn d3w_tiles[D3W_NP + 1] = {NULL, d3w_tile1, d3w_tile2};

/* The outputs of pairs [0, n) of m (the band's first at pair index p0 of its row) as
 * pixels x D3_OB, over m itself (output o is written at or before pair o / 2's m, once
 * read), the dropped ones skipped; returns how many. V: the vectors (AVX-512's or AVX2's). */
#define D3W_OUTPUTS(NAME, ATTR, V)                                                         \
    ATTR static int64_t NAME(const d3_job *j, int64_t p0, int64_t n, float *m) {           \
        int64_t o = 0;                                                                     \
        for (int64_t f = 0, jp = p0; f < n; f++, jp = jp + 1 == j->npr ? 0 : jp + 1) {     \
            const float *s = m + f * 4 * D3_OB;                                            \
            bool two = 2 * jp + 1 < j->ow;                                                 \
            for (size_t v = 0; v < D3_OB; v += sizeof(V) / sizeof(float)) {                \
                V m0, m1, m2, m3;                                                          \
                memcpy(&m0, s + v, sizeof m0), memcpy(&m1, s + D3_OB + v, sizeof m1);      \
                memcpy(&m2, s + 2 * D3_OB + v, sizeof m2);                                 \
                memcpy(&m3, s + 3 * D3_OB + v, sizeof m3);                                 \
                V a = (m0 + m1) + m2, b = (m1 - m2) - m3;                                  \
                memcpy(m + o * D3_OB + v, &a, sizeof a);                                   \
                if (two) memcpy(m + (o + 1) * D3_OB + v, &b, sizeof b);                    \
            }                                                                              \
            o += two ? 2 : 1;                                                              \
        }                                                                                  \
        return o;                                                                          \
    }
typedef float d3_v16 __attribute__((vector_size(64)));
typedef float d3_v8 __attribute__((vector_size(32)));
D3W_OUTPUTS(d3w_outputs, D3_AVX512, d3_v16)

/* ------------------------------------------------------------------ AVX2, by rows
 * The same F(2,3) rows on AVX2 (8 lanes, 16 registers): each of the four partial sums m_k
 * is a GEMM of the pairs' v_k by the filters' u_k over the (c, p) steps, so a register
 * tile takes 6 pairs x 16 channels of one k (two u loads and six v broadcast a step: the
 * AVX-512 tile's shape, 4 m x 8 channels, was bound by its loads); each padded row's v is
 * made once a pass (D3W8_ICW channels) for every pair, filter row and channel that reads
 * it. The same m, made by the same operations in the same order: the bits of the AVX-512
 * tiles. Only by rows: where that does not apply (stride 2, rows narrower than
 * D3W8_MIN_OW, special values, filters not finite, AMBER_OPEN_PLAIN_SUMS) the convolution
 * goes through the GEMM (am_conv3x3: *done false). */
#define D3_AVX2 __attribute__((target("avx2,fma")))
/* m's component k of 6 pairs (sums past the band's pairs unused) for 16 channels at u (a
 * part's, e in): a GEMM tile of 6 pairs x 2 vectors over the (c, p) steps, two u loads,
 * six v broadcast and 12 multiply-adds a step; +0 (first) or m's sums first. Pair p's v
 * of step (c, p) at vk + off[p] + c * is + p * rs (d3w8_v). */
D3_AVX2 static void d3w8_tile(const float *vk, const int64_t *off, int64_t rs, int64_t is,
                              int64_t nc, const float *u, float *m, bool first) {
    __m256 a[6][2];
    const float *q[6];
    _Pragma("GCC unroll 6") for (int p = 0; p < 6; p++) {
        q[p] = vk + off[p];
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)
            a[p][h] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(m + p * 4 * D3_OB + 8 * h);
    }
    for (int64_t ic = 0; ic < nc; ic++)
        for (int64_t r = 0, o = ic * is; r < 3; r++, o += rs, u += 4 * D3W_CW) {
            const __m256 u0 = _mm256_loadu_ps(u), u1 = _mm256_loadu_ps(u + 8);
            _Pragma("GCC unroll 6") for (int p = 0; p < 6; p++) {
                const __m256 v = _mm256_broadcast_ss(q[p] + o);
                a[p][0] = _mm256_fmadd_ps(u0, v, a[p][0]);
                a[p][1] = _mm256_fmadd_ps(u1, v, a[p][1]);
            }
        }
    _Pragma("GCC unroll 6") for (int p = 0; p < 6; p++)
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)
            _mm256_storeu_ps(m + p * 4 * D3_OB + 8 * h, a[p][h]);
}

/* The v of every pair of `rows` padded rows from global row rho0 (image rho0 / PR, its
 * row rho0 % PR; PR padded rows an image) for input channels [c0, c0 + nc), each as
 * d3w_tile_n makes it in registers (the same operations): vb[c][row][k][pair] (rows rs =
 * 4 * nv apart, nv the row's pairs to a multiple of 8; channels is apart). Eight pairs at
 * a time from the even and odd columns of two vectors (d0, d1) and of two more two columns
 * on (d2, d3); then four, then one. */
#define D3_EV(a, b) \
    _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xd8))
#define D3_OD(a, b) \
    _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xdd)), 0xd8))
D3_AVX2 static void d3w8_v(const d3_job *j, int64_t c0, int64_t nc, int64_t rho0, int64_t rows,
                           float *vb, int64_t nv, int64_t is) {
    const int64_t PR = j->plane / j->wp, npr = j->npr;
    for (int64_t ic = 0; ic < nc; ic++)
        for (int64_t q = 0; q < rows; q++) {
            int64_t rho = rho0 + q;
            const float *x = j->xp + ((rho / PR) * j->c + c0 + ic) * j->plane + rho % PR * j->wp;
            float *o = vb + ic * is + q * 4 * nv;
            int64_t f = 0;
            for (; f + 8 <= npr; f += 8) {
                const float *d = x + 2 * f;
                __m256 a = _mm256_loadu_ps(d), b = _mm256_loadu_ps(d + 8);
                __m256 c = _mm256_loadu_ps(d + 2), e = _mm256_loadu_ps(d + 10);
                __m256 d0 = D3_EV(a, b), d1 = D3_OD(a, b), d2 = D3_EV(c, e), d3 = D3_OD(c, e);
                _mm256_storeu_ps(o + f, _mm256_sub_ps(d0, d2));
                _mm256_storeu_ps(o + nv + f, _mm256_add_ps(d1, d2));
                _mm256_storeu_ps(o + 2 * nv + f, _mm256_sub_ps(d2, d1));
                _mm256_storeu_ps(o + 3 * nv + f, _mm256_sub_ps(d1, d3));
            }
            for (; f + 4 <= npr; f += 4) {
                const float *d = x + 2 * f;
                __m128 a = _mm_loadu_ps(d), b = _mm_loadu_ps(d + 4);
                __m128 c = _mm_loadu_ps(d + 2), e = _mm_loadu_ps(d + 6);
                __m128 d0 = _mm_shuffle_ps(a, b, 0x88), d1 = _mm_shuffle_ps(a, b, 0xdd);
                __m128 d2 = _mm_shuffle_ps(c, e, 0x88), d3 = _mm_shuffle_ps(c, e, 0xdd);
                _mm_storeu_ps(o + f, _mm_sub_ps(d0, d2));
                _mm_storeu_ps(o + nv + f, _mm_add_ps(d1, d2));
                _mm_storeu_ps(o + 2 * nv + f, _mm_sub_ps(d2, d1));
                _mm_storeu_ps(o + 3 * nv + f, _mm_sub_ps(d1, d3));
            }
            for (; f < npr; f++) {
                const float *d = x + 2 * f;
                o[f] = d[0] - d[2], o[nv + f] = d[1] + d[2];
                o[2 * nv + f] = d[2] - d[1], o[3 * nv + f] = d[1] - d[3];
            }
        }
}

D3W_OUTPUTS(d3w8_outputs, D3_AVX2, d3_v8)

/* d3_pad without the magnitude check (am_conv3x3 checked the images): rows of the planes of
 * pad task t, zeros around them */
D3_AVX2 static void d3_pad8(void *ud, int64_t t, int worker) {
    const d3_job *j = (const d3_job *)ud;
    int64_t wp = j->wp, h = j->h, w = j->w, pl = j->pl < wp ? j->pl : wp;
    int64_t cnt = w < wp - pl ? w : wp - pl, c1 = j->g * j->c;
    (void)worker;
    for (int64_t c = c1 * t / j->pad_tasks; c < c1 * (t + 1) / j->pad_tasks; c++)
        for (int64_t r = 0; r < j->plane / wp; r++) {
            float *xp = j->xp + c * j->plane + r * wp;
            int64_t i = r - j->pt;
            memset(xp, 0, sizeof(float) * (size_t)wp);
            if (i >= 0 && i < h)
                memcpy(xp + pl, j->x + (c * h + i) * w, sizeof(float) * (size_t)cnt);
        }
}

/* Outputs [l0, l1) of the g images (acc: pixels x D3_OB channels) of channel block ob
 * into y, transposed element by element, then the epilogue over the rows written (2% of
 * a 28x28 layer's time together) */
D3_AVX2 static void d3_write8(const d3_job *j, int64_t ob, int64_t l0, int64_t l1,
                              const float *acc) {
    int64_t L = j->oh * j->ow, nc = j->o - ob * D3_OB < D3_OB ? j->o - ob * D3_OB : D3_OB;
    for (int64_t a = l0, b; a < l1; a = b) { /* each image's part */
        int64_t m = a / L, img = j->img + m;
        b = (m + 1) * L < l1 ? (m + 1) * L : l1;
        float *y = j->y + (img * j->o + ob * D3_OB) * L - m * L;
        for (int64_t c = 0; c < nc; c++)
            for (int64_t l = a; l < b; l++) y[c * L + l] = acc[(l - l0) * D3_OB + c];
        if (j->epi) am_epi_apply(j->epi, img, ob * D3_OB, nc, a - m * L, b - a);
    }
}

/* Whether the n floats at x are finite and under 2^125 in magnitude (d3_pad's check) */
D3_AVX2 static bool d3_finite8(const float *x, int64_t n) {
    const __m256 big = _mm256_set1_ps(0x1p125f);
    const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 bad = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs), big,
                                              _CMP_NLT_UQ));
    for (; i < n; i++) if (!(fabsf(x[i]) < 0x1p125f)) return false;
    return _mm256_movemask_ps(bad) == 0;
}

/* Padded rows the v of a band of pairs (d3w8_pass) spans at most */
static int64_t d3w8_rows(const d3_job *j) {
    return D3_PB / j->npr + 2 + 2 * (D3_PB / (j->oh * j->npr) + 2);
}

/* One pass (input channels [c0, c0 + nc)) of d3w_task on AVX2 for the band's n pairs from
 * p0: the v of the rows they read, then for each component k and 16 channels the pairs
 * six at a time (w: the block's u of channel c0, parts `part` apart) */
static void d3w8_pass(const d3_job *j, const float *w, int64_t part, int64_t c0, int64_t nc,
                      int64_t p0, int64_t n, float *m) {
    const int64_t npr = j->npr, nv = (npr + 7) / 8 * 8, rs = 4 * nv, PR = j->plane / j->wp;
    const int64_t PL = j->oh * npr, last = p0 + n - 1;
    const int64_t rho0 = p0 / PL * PR + p0 % PL / npr;
    const int64_t rows = last / PL * PR + last % PL / npr + 3 - rho0, is = rows * rs;
    int64_t off[D3_PB + 6]; /* pair f's v in its first row, from rho0's */
    for (int64_t f = 0, im = p0 / PL, i = p0 % PL / npr, c = p0 % npr; f < n + 6; f++) {
        off[f] = f < n ? (im * PR + i - rho0) * rs + c : off[n - 1];
        if (++c == npr && (c = 0, ++i == j->oh)) i = 0, im++;
    }
    float *vb = m + D3_PB * 4 * D3_OB;
    d3w8_v(j, c0, nc, rho0, rows, vb, nv, is);
    for (int k = 0; k < 4; k++)
        for (int e = 0; e < D3_OB; e += 16)
            for (int64_t f = 0; f < n; f += 6)
                d3w8_tile(vb + k * nv, off + f, rs, is, nc,
                          w + e / D3W_CW * part + k * D3W_CW + e % D3W_CW,
                          m + f * 4 * D3_OB + k * D3_OB + e, c0 == 0);
}

/* Task t by rows: output channel block t % nob, pairs [p0, p1) of the g images */
static void d3w_task(void *ud, int64_t t, int worker) {
    const d3_job *j = (const d3_job *)ud;
    int64_t ob = t % j->nob, PL = j->oh * j->npr, p0 = t / j->nob * j->pband;
    int64_t p1 = p0 + j->pband < PL * j->g ? p0 + j->pband : PL * j->g, n = p1 - p0;
    float *m = j->ws + worker * j->ws_len;
    const float *w = j->wt + ob * j->c * 12 * D3_OB, *wend = j->wt + j->nob * j->c * 12 * D3_OB;
    int64_t at[D3_PB + D3W_NP]; /* where pair p0 + i reads plane 0 (of its image) */
    for (int64_t i = 0, im = p0 / PL, r = p0 % PL / j->npr, c = p0 % j->npr; i < n; i++) {
        at[i] = im * j->c * j->plane + r * j->wp + 2 * c;
        if (++c == j->npr && (c = 0, ++r == j->oh)) r = 0, im++;
    }
    for (int64_t i = n; i < D3_PB + D3W_NP; i++) at[i] = at[n - 1];
    int64_t tiles = (n + D3W_NP - 1) / D3W_NP, part = j->c * 12 * D3W_CW;
    const int64_t icw = j->w8 ? D3W8_ICW : D3_ICW;
    for (int64_t c0 = 0; c0 < j->c; c0 += icw) {
        int64_t nc = j->c - c0 < icw ? j->c - c0 : icw;
        if (j->w8) {
            d3w8_pass(j, w + c0 * 12 * D3W_CW, part, c0, nc, p0, n, m);
            continue;
        }
        for (int h = 0; h < D3W_PARTS; h++) {
            const float *wh = w + h * part + c0 * 12 * D3W_CW;
            /* each tile prefetches its share of the next part's or pass's filters */
            const float *wn = h + 1 < D3W_PARTS ? wh + part
                              : c0 + nc < j->c ? w + (c0 + nc) * 12 * D3W_CW : w + D3W_PARTS * part;
            int64_t per = (D3_ICW * 12 * D3W_CW / 16 + tiles - 1) / tiles; /* lines per tile */
            for (int64_t f = 0, i = 0; f < n; f += D3W_NP, i++) {
                for (int64_t l = i * per; l < (i + 1) * per && wn + l * 16 < wend; l++)
                    __builtin_prefetch(wn + l * 16);
                const int np = n - f < D3W_NP ? (int)(n - f) : D3W_NP;
                float *mf = m + f * 4 * D3_OB + h * D3W_CW;
                const float *q[D3W_NP];
                for (int p = 0; p < D3W_NP; p++) q[p] = j->xp + c0 * j->plane + at[f + p];
                d3w_tiles[np](q, j->plane, j->wp, wh, nc, mf, c0 == 0);
            }
        }
    }
    /* the band's outputs: from its first pair's first one, image after image */
    int64_t im = p0 / PL, l0 = im * j->oh * j->ow + p0 % PL / j->npr * j->ow + 2 * (p0 % j->npr);
    if (j->w8)
        d3_write8(j, ob, l0, l0 + d3w8_outputs(j, p0 % j->npr, n, m), m);
    else
        d3_write(j, ob, l0, l0 + d3w_outputs(j, p0 % j->npr, n, m), m);
}

/* Where it ran faster than the GEMM path: 32 output channels or more, 4 input channels or
 * more, stride 2 only for outputs 7 wide or wider (ResNet-50's 14x14 to 7x7 ran 15% faster
 * than the GEMM). */
COLD bool am_conv3x3_fits(const amber_tensor *in, const am_attrs *a, const amber_tensor *out) {
    const int64_t *ws = in[1].shape;
    bool s1 = a->stride[0] == 1 && a->stride[1] == 1;
    int isa = am_cpu_isa(); /* (AVX2: by rows only, see am_conv3x3) */
    return out->dtype == AMBER_FLOAT32 && isa >= AM_GEMM_ISA_AVX2 &&
           a->groups == 1 && a->stride[0] <= 2 && a->stride[1] <= 2 && a->dilation[0] == 1 &&
           a->dilation[1] == 1 && ws[2] == 3 && ws[3] == 3 && ws[0] >= 32 && ws[1] >= 4 &&
           (isa >= AM_GEMM_ISA_AVX512 ? s1 || out->shape[3] >= 7
                                      : s1 && out->shape[3] >= D3W8_MIN_OW);
}


/* w[O][C][3][3] as [O / 64][C][3][3][64], zero past O */
COLD static void d3_pack(const float *w, int64_t o, int64_t c, float *p) {
    for (int64_t ob = 0; ob < o; ob += D3_OB)
        for (int64_t k = 0; k < c * 9; k++, p += D3_OB)
            for (int64_t l = 0; l < D3_OB; l++)
                p[l] = ob + l < o ? w[(ob + l) * c * 9 + k] : 0.0f;
}

/* w[O][C][3][3] as the rows' transforms u: [O / 64][2][C][3][4][32], zero past O, each
 * rounded once from its exact value; false if one is not finite */
COLD static bool d3w_pack(const float *w, int64_t o, int64_t c, float *p) {
    bool finite = true;
    for (int64_t ob = 0; ob < o; ob += D3_OB)
        for (int64_t h = 0; h < D3_OB; h += D3W_CW)
            for (int64_t k = 0; k < c * 3; k++, p += 4 * D3W_CW)
                for (int64_t l = 0; l < D3W_CW; l++) {
                    const float *g = w + ((ob + h + l) * c * 3 + k) * 3;
                    double g0 = ob + h + l < o ? g[0] : 0, g1 = ob + h + l < o ? g[1] : 0;
                    double g2 = ob + h + l < o ? g[2] : 0;
                    float *u = p + l;
                    u[0] = (float)g0, u[D3W_CW] = (float)((g0 + g1 + g2) / 2);
                    u[2 * D3W_CW] = (float)((g0 - g1 + g2) / 2), u[3 * D3W_CW] = (float)g2;
                    finite = finite && isfinite(g0) && isfinite(g1) && isfinite(g2) &&
                             isfinite(u[D3W_CW]) && isfinite(u[2 * D3W_CW]);
                }
    return finite;
}

/* The packed filters (as they are, or as the rows' transforms): kept for the session when
 * w is fixed (and the memory limit allows), else packed into scratch memory. A flag after
 * them says whether they are finite (*finite). */
COLD static amber_status d3_filters(am_ctx *ctx, const float *w, int64_t o, int64_t c,
                                    bool rows, const float **out, bool *finite) {
    int64_t n = (o + D3_OB - 1) / D3_OB * D3_OB * c * (rows ? 12 : 9);
    size_t len = sizeof(float) * (size_t)(n + 16);
    uint32_t kind = (rows ? KEEP_KIND_CONV3X3_ROWS : KEEP_KIND_CONV3X3) | (uint32_t)sizeof(float);
    bool keep = (ctx->fixed_inputs & 2) && ctx->keep;
    float *p = keep ? (float *)am_keep_find(ctx->keep, w, kind, o, c) : NULL;
    amber_status st = AMBER_OK;
    if (!p) {
        if (!(keep && (p = (float *)am_keep_add(ctx->keep, w, kind, o, c, len))))
            st = am_arena_alloc(ctx->scratch, len, (void **)&p, ctx->err);
        if (st != AMBER_OK) return st;
        p[n] = rows ? (float)d3w_pack(w, o, c, p) : (d3_pack(w, o, c, p), 1.0f);
    }
    *out = p, *finite = p[n] > 0;
    return st;
}

/* Task t of pad_tasks: its rows of every plane of the image (with fewer bands than
 * threads, its share of the planes: rows of small planes share cache lines) into the
 * padded ones, the padding zeroed too (rows from pt and columns from pl hold x's; columns
 * past WP are never read). Each row as whole vectors: x's columns under a load mask, zeros
 * outside it (three libc calls a row: 0.8% of a ResNet-50 run, now 0.6%). */
D3_AVX512 static void d3_pad(void *ud, int64_t t, int worker) {
    d3_job *j = (d3_job *)ud;
    int64_t wp = j->wp, h = j->h, w = j->w, pt = j->pt;
    int64_t pl = j->pl < wp ? j->pl : wp, cnt = w < wp - pl ? w : wp - pl;
    int64_t unit = j->rows ? j->pband : j->band, row = j->rows ? j->npr : j->ow;
    int64_t bands = (j->g * j->oh * row + unit - 1) / unit, c0 = 0, c1 = j->g * j->c;
    int64_t r0 = 0, r1 = j->plane / wp;
    if (j->g > 1 || bands < j->pad_tasks) /* (planes c of the g images: image c / C) */
        c0 = c1 * t / j->pad_tasks, c1 = c1 * (t + 1) / j->pad_tasks;
    else
        r0 = d3_pad_row(j, t, bands, unit, row, r1),
        r1 = d3_pad_row(j, t + 1, bands, unit, row, r1);
    (void)worker;
    /* by rows: |x| at least 2^125 (v could overflow), an infinity or a NaN */
    const __m512 big = _mm512_set1_ps(0x1p125f);
    __mmask16 bad = 0;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t r = r0; r < r1; r++) {
            int64_t i = r - pt; /* x's row i of channel c */
            float *xp = j->xp + c * j->plane + r * wp;
            /* x's row shifted by pl: lane l of the vector at b is column b + l - pl
             * (NOTE: masked-off lanes are never read; integer arithmetic: the address of
             * column -pl is outside x) */
            uintptr_t src = (uintptr_t)j->x + (uintptr_t)(((c * h + i) * w - pl) * 4);
            bool in = i >= 0 && i < h;
            for (int64_t b = 0; b < wp; b += 16) {
                __mmask16 m = in ? am_lanes16(pl - b, pl + cnt - b) : 0;
                __m512 v = _mm512_maskz_loadu_ps(m, (const float *)(src + (uintptr_t)b * 4u));
                _mm512_mask_storeu_ps(xp + b, am_lanes16(0, wp - b), v);
                if (j->rows) bad |= _mm512_cmp_ps_mask(_mm512_abs_ps(v), big, _CMP_NLT_UQ);
            }
        }
    if (bad) atomic_store(&j->bad, 1);
}

/* The bands of the g images at j->img for the workers, and the tasks */
static int64_t d3_tasks(d3_job *j, int workers) {
    int64_t gl = j->g * j->oh * j->ow, bands = (gl + D3_BAND - 1) / D3_BAND;
    /* bands of about equal size, tasks a multiple of the workers (the bits do not depend
     * on the bands; NOTE: at two threads, 14x14 layers' four tasks split into eight bands
     * of 98 outputs ran 1.05x slower: each band reads all its block's filters) */
    while ((j->nob * bands) % workers && bands < gl) bands++;
    j->band = ((gl + bands - 1) / bands + D3_PX - 1) / D3_PX * D3_PX;
    j->pad_tasks = workers < j->g * j->c ? workers : j->g * j->c;
    return j->nob * ((gl + j->band - 1) / j->band);
}

/* The tasks by rows: bands of about equal numbers of pairs (whole tiles), as d3_tasks */
static int64_t d3w_tasks(d3_job *j, int workers) {
    int64_t gp = j->g * j->oh * j->npr, bands = (gp + D3_PB - 1) / D3_PB;
    while ((j->nob * bands) % workers && bands < gp) bands++;
    j->pband = ((gp + bands - 1) / bands + 1) / 2 * 2;
    j->pad_tasks = workers < j->g * j->c ? workers : j->g * j->c;
    return j->nob * ((gp + j->pband - 1) / j->pband);
}

/* The g images at j->img, padded, then computed by rows (rows; false, nothing written,
 * when an input is too large for the transforms or not finite) or directly */
static bool d3_group(am_pool *pool, d3_job *j, int workers, bool rows) {
    int64_t tasks = rows ? d3w_tasks(j, workers) : d3_tasks(j, workers);
    j->rows = rows;
    atomic_store(&j->bad, 0);
    am_pool_run(pool, j->pad_tasks, j->w8 ? d3_pad8 : d3_pad, j);
    if (atomic_load(&j->bad)) return false;
    am_pool_run(pool, tasks, rows ? d3w_task : d3_task, j);
    return true;
}

COLD amber_status am_conv3x3(am_ctx *ctx, const amber_tensor *in, const am_attrs *a,
                             amber_tensor *out, bool *done) {
    const int64_t *xs = in[0].shape, o = in[1].shape[0], oh = out->shape[2], ow = out->shape[3];
    d3_job j = {xs[1], o, oh, ow, a->stride[0], a->stride[1], (ow - 1) * a->stride[1] + 3, 0,
                (o + D3_OB - 1) / D3_OB, 0, 1, xs[2], xs[3], a->padding[0], a->padding[2],
                NULL, NULL, NULL, out->data, NULL, 0, 0, 1, ctx->epi, (ow + 1) / 2, 0, 0, 0, 0};
    int64_t L = oh * ow;
    *done = true;
    if (L == 0 || xs[0] == 0) return AMBER_OK;
    bool rows = j.sh == 1 && j.sw == 1 && ow >= D3_ROWS_MIN && !ctx->plain_sums;
    const float *wrows = NULL, *wdirect = NULL;
    bool finite = false;
    amber_status st = AMBER_OK;
    /* AVX2: by rows only (d3w8_*), else the GEMM; the images checked before the filters are
     * packed (d3_pad's check) */
    j.w8 = am_cpu_isa() < AM_GEMM_ISA_AVX512;
    if (j.w8 && !(rows && d3_finite8((const float *)in[0].data, am_numel(&in[0]))))
        return *done = false, AMBER_OK;
    if (rows && (st = d3_filters(ctx, in[1].data, o, j.c, true, &wrows, &finite)) != AMBER_OK)
        return st;
    rows = rows && finite;
    if (j.w8 && !rows) return *done = false, AMBER_OK;
    if (rows) j.wp = 2 * j.npr + 2; /* (an odd width's last pair reads one column more) */
    j.plane = ((oh - 1) * j.sh + 3) * j.wp;
    /* small images: as many at a time as fit a band and D3_XP bytes padded (fewer tiles
     * past the end of an image, fewer rounds of tasks) */
    int64_t g = D3_XP / (int64_t)sizeof(float) / (j.c * j.plane);
    int64_t per = rows ? D3_PB / (oh * j.npr) : D3_BAND / L;
    g = g < per ? g : per;
    j.g = g < 1 ? 1 : g < xs[0] ? g : xs[0];
    double work = (double)(j.nob * D3_OB * j.g * L * j.c * 9);
    bool parallel = am_pool_size(ctx->pool) > 1 && (j.nob > 1 || j.g * L > D3_BAND) &&
                    work >= AM_PARALLEL_MIN && am_pool_for(ctx->pool, work);
    int workers = parallel ? am_pool_size(ctx->pool) : 1;
    /* NOTE: no fallback to the GEMM path without the memory: its bits differ (C > 56) */
    float *buf = NULL;
    j.ws_len = rows ? D3_PB * 4 * D3_OB : D3_BAND * D3_OB; /* (the direct tiles fit too) */
    if (j.w8) j.ws_len += D3W8_ICW * d3w8_rows(&j) * 4 * ((j.npr + 7) / 8 * 8); /* (d3w8_v) */
    size_t len = (size_t)(j.g * j.c * j.plane + workers * j.ws_len);
    if ((st = am_arena_alloc(ctx->scratch, sizeof(float) * len, (void **)&buf, ctx->err)))
        return st;
    j.xp = buf, j.ws = buf + j.g * j.c * j.plane;
    am_pool *pool = parallel ? ctx->pool : NULL;
    for (j.img = 0; j.img < xs[0]; j.img += j.g) {
        j.x = (const float *)in[0].data + j.img * j.c * j.h * j.w;
        j.g = j.g < xs[0] - j.img ? j.g : xs[0] - j.img;
        if (rows && (j.wt = wrows, d3_group(pool, &j, workers, true))) continue;
        if (!wdirect && (st = d3_filters(ctx, in[1].data, o, j.c, false, &wdirect, &finite)))
            return st;
        j.wt = wdirect;
        if (!rows) {
            d3_group(pool, &j, workers, false);
            continue;
        }
        j.rows = false; /* the padded images are there: the direct tasks on them */
        am_pool_run(pool, d3_tasks(&j, workers), d3_task, &j);
    }
    return AMBER_OK;
}
#else
bool am_conv3x3_fits(const amber_tensor *in, const am_attrs *a, const amber_tensor *out) {
    (void)in, (void)a, (void)out;
    return false;
}

amber_status am_conv3x3(am_ctx *ctx, const amber_tensor *in, const am_attrs *a,
                        amber_tensor *out, bool *done) {
    (void)ctx, (void)in, (void)a, (void)out;
    *done = false;
    return AMBER_ERR_INTERNAL;
}
#endif
