/* conv2d without groups or dilation over few taps (C*KH*KW <= 80; at stride 2 <= 160, the
 * 7x7 stems of ResNet-50 and SqueezeNet included): at stride 1 a window
 * of more than one pixel with output rows as wide as the input's (PL + PR = KW - 1: "same"
 * padding), or 1x1 over few channels on a large unpadded plane (below); at stride 2 image
 * stems (sc_band); float32 on AVX-512: computed directly, without im2col. The small
 * convolutions of digit classifiers (C = 1 or 8, 28x28 and 14x14 planes) spend more in
 * im2col's packing than in their products; deeper ones (SqueezeNet's 3x3 expansions) run
 * faster as a GEMM, and so do 1x1 ones (SqueezeNet's 1x1 expansions on 27x27 and 13x13:
 * 1.3-1.4x), whose image the GEMM reads in place; but not 1x1 ones over at most 32
 * channels to 24 or more on planes of 54x54 and more (MobileNetV2's 16->96 on 112x112:
 * 0.8x, 24->144 on 56x56: 0.95x, SqueezeNet's 16->64 on 54x54: 0.92x; 64->384 on 14x14:
 * 1.1x), read in place here too, a task per block of output channels.
 *
 * Each image is copied once into C planes of HP x W with PT and PB zero rows (none: read
 * in place). Output (i, j) is then the flattened position i*W + j of its plane, and a
 * vector of 16 of them reads tap (c, p, q) at one constant offset, c*HP*W + p*W + q - PL,
 * its lanes whose column j + q - PL falls outside the row masked to zero. Every output is
 * one chain of fused multiply-adds from +0 over the taps in (c, p, q) order, padding taps
 * included: the GEMM's summation for these shapes (k <= KC: one block,
 * am_gemm_bsrc_epi_f32), so the bits are the same as on the GEMM path, at every thread
 * count. A bias and ReLU epilogue runs on the sums in registers (a separate pass over the
 * block cost 13% of the digits CNN), and so do BatchNorm's multiply and a clamp; other
 * epilogues, on each finished block of channels. */
#include "ops.h"

#include <string.h>

enum {
    SC_OB = 8,         /* output channels per register block */
    SC_PX = 32,        /* flattened outputs per register block: two vectors */
    /* taps (<= gemm.c's float32 KC, 512). NOTE: deeper products run faster as a GEMM:
     * ResNet-50's 1x1 128->512 on 28x28 1.4x, 96 taps 1.4x; 72 taps (8->16 3x3) 0.5x */
    SC_MAX_K = 80,
    SC_MAX_K2 = 160,   /* stride 2: taps (7x7 over 3 channels, 147) */
    SC_MAX_OW = 32,    /* wider rows pack well for the GEMM */
    SC_MAX_KW = 16,
    SC_MAX_K1 = 32, SC_MIN_L1 = 54 * 54, /* 1x1: channels at most, outputs at least */
    /* 1x1: output channels at least. NOTE: MobileNetV2's 32->16 on 112x112 ran 1.2-1.4x
     * faster as a GEMM in the model (its input just written by the depthwise layer), though
     * 1.1x slower alone */
    SC_MIN_O1 = 24,
    /* stride 2: output rows per task (8: the 7x7 stems 1-3% faster than with 4, fewer
     * input rows copied twice); channels with the epilogue in registers at most */
    SC_BAND = 8, SC_MAX_O2 = 96,
};

typedef struct sc_job {
    int64_t c, h, w, o, kh, kw, oh, ow, pt, pl, hp, opad;
    int64_t split; /* tasks per image: 1, (1x1) one per block of SC_OB channels, or
                    * (stride 2) one per band of SC_BAND output rows */
    int64_t seg;   /* stride 2: the columns of one phase of a padded row (sc_phases) */
    const int32_t *off; /* stride 2: each tap's offset in a band's copy (sc_phases) */
    const float *x, *wt; /* wt: O rounded up to SC_OB rows of K, zero rows past O */
    float *y;
    float **ws; /* per worker: the padded image (C*HP*W) */
    const am_epi *epi;
    bool regs; /* epi is a register epilogue (am_epi.regs) */
} sc_job;

#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#include <immintrin.h>

#define COLD __attribute__((cold)) /* set-up code: optimised for size */
#define SC_AVX512 __attribute__((target("avx512f")))
#define SC_NOINLINE __attribute__((noinline)) /* (a name: the function scan reads it) */

/* The sums of taps (c, p, q) of outputs at flattened positions f0 + 16 h (h < NV), lane
 * masks mq[h][q] (zero: the tap reads padding). */
#define SC_TAPS(NV)                                                                        \
    do {                                                                                   \
        __m512 a[SC_OB][NV];                                                               \
        _Pragma("GCC unroll 8") for (int b = 0; b < SC_OB; b++)                            \
            _Pragma("GCC unroll 2") for (int h = 0; h < (NV); h++) a[b][h] =               \
                _mm512_setzero_ps();                                                       \
        for (int64_t c = 0, t = 0; c < j->c; c++)                                          \
            for (int64_t p = 0; p < j->kh; p++)                                            \
                for (int64_t q = 0; q < j->kw; q++, t++) {                                 \
                    uintptr_t s = base + (uintptr_t)((c * plane + p * j->w + q) * 4);      \
                    __m512 x[NV];                                                          \
                    _Pragma("GCC unroll 2") for (int h = 0; h < (NV); h++) x[h] =          \
                        _mm512_maskz_loadu_ps(mq[h][q], (const float *)(s + 64u * h));     \
                    _Pragma("GCC unroll 8") for (int b = 0; b < SC_OB; b++) {              \
                        __m512 wv = _mm512_set1_ps(w[b * k + t]);                          \
                        _Pragma("GCC unroll 2") for (int h = 0; h < (NV); h++) a[b][h] =   \
                            _mm512_fmadd_ps(wv, x[h], a[b][h]);                            \
                    }                                                                      \
                }                                                                          \
        _Pragma("GCC unroll 8") for (int b = 0; b < SC_OB; b++)                            \
            _Pragma("GCC unroll 2") for (int h = 0; h < (NV); h++) acc[b][h] = a[b][h];   \
    } while (0)

/* 1x1 (unpadded): a tap per plane, two vectors. NOTE: the nested (c, p, q) loop of
 * SC_TAPS spilled the sums here (1.6x slower). */
#define SC_TAPS1()                                                                         \
    do {                                                                                   \
        __m512 a[SC_OB][2];                                                                \
        _Pragma("GCC unroll 8") for (int b = 0; b < SC_OB; b++) a[b][0] = a[b][1] =        \
            _mm512_setzero_ps();                                                           \
        const float *s = xp + f0;                                                          \
        for (int64_t t = 0; t < k; t++, s += plane) {                                      \
            __m512 x0 = _mm512_loadu_ps(s), x1 = _mm512_loadu_ps(s + 16);                  \
            _Pragma("GCC unroll 8") for (int b = 0; b < SC_OB; b++) {                      \
                __m512 wv = _mm512_set1_ps(w[b * k + t]);                                  \
                a[b][0] = _mm512_fmadd_ps(wv, x0, a[b][0]);                                \
                a[b][1] = _mm512_fmadd_ps(wv, x1, a[b][1]);                                \
            }                                                                              \
        }                                                                                  \
        _Pragma("GCC unroll 8") for (int b = 0; b < SC_OB; b++) acc[b][0] = a[b][0],       \
                                                                acc[b][1] = a[b][1];       \
    } while (0)

/* The sums of the taps at offsets off[] from src, NV vectors, for SC_OB channels. */
#define SC_TAPS2(NV)                                                                       \
    do {                                                                                   \
        __m512 a[SC_OB][NV];                                                               \
        _Pragma("GCC unroll 8") for (int b = 0; b < SC_OB; b++)                            \
            _Pragma("GCC unroll 2") for (int h = 0; h < (NV); h++) a[b][h] =               \
                _mm512_setzero_ps();                                                       \
        for (int64_t t = 0; t < k; t++) {                                                  \
            __m512 x[NV];                                                                  \
            _Pragma("GCC unroll 2") for (int h = 0; h < (NV); h++) x[h] =                  \
                _mm512_loadu_ps(src + off[t] + 16 * h);                                    \
            _Pragma("GCC unroll 8") for (int b = 0; b < SC_OB; b++) {                      \
                __m512 wv = _mm512_set1_ps(w[b * k + t]);                                  \
                _Pragma("GCC unroll 2") for (int h = 0; h < (NV); h++) a[b][h] =           \
                    _mm512_fmadd_ps(wv, x[h], a[b][h]);                                    \
            }                                                                              \
        }                                                                                  \
        _Pragma("GCC unroll 8") for (int b = 0; b < SC_OB; b++)                            \
            _Pragma("GCC unroll 2") for (int h = 0; h < (NV); h++) acc[b][h] = a[b][h];   \
    } while (0)

/* The epilogue's steps on the sums (NV vectors per channel), then the stores of channels
 * b < ob. NOTE: unrolled with NV known, so that the sums stay in registers (with loops
 * over a run-time count of vectors they went through the stack: 1x1 layers 6% slower). */
#define SC_OUT(NV)                                                                         \
    do {                                                                                   \
        int ns = ev ? j->epi->g->n_steps : 0;                                              \
        for (int s = 0; s < ns; s++) {                                                     \
            int op = j->epi->ops[s].op; /* le, ge: and the where after it */               \
            _Pragma("GCC unroll 8") for (int b = 0; b < SC_OB; b++) {                      \
                const float *v = ev + b * ns + s;                                          \
                __m512 y = _mm512_set1_ps(v[0]);                                           \
                _Pragma("GCC unroll 2") for (int h = 0; h < (NV); h++) acc[b][h] =         \
                    op == EPI_LE ? _mm512_mask_mov_ps(acc[b][h], _mm512_cmp_ps_mask(       \
                                       acc[b][h], y, _CMP_LE_OQ), _mm512_set1_ps(v[1]))    \
                    : op == EPI_GE ? _mm512_mask_mov_ps(acc[b][h], _mm512_cmp_ps_mask(     \
                                         acc[b][h], y, _CMP_GE_OQ), _mm512_set1_ps(v[1]))  \
                    : op == EPI_GT ? _mm512_mask_mul_ps(acc[b][h], _mm512_cmp_ps_mask(     \
                                         acc[b][h], y, _CMP_NGT_UQ), acc[b][h],            \
                                                        _mm512_set1_ps(v[1]))              \
                    : op == EPI_MAX ? _mm512_max_ps(y, acc[b][h]) /* (scalar first) */     \
                    : op == EPI_MIN ? _mm512_min_ps(y, acc[b][h])                          \
                    : op == EPI_MUL ? _mm512_mul_ps(acc[b][h], y)                          \
                                    : _mm512_add_ps(acc[b][h], y);                         \
            }                                                                              \
            s += op == EPI_LE || op == EPI_GE ? 1 : op == EPI_GT ? 2 : 0;                 \
        }                                                                                  \
        _Pragma("GCC unroll 8") for (int b = 0; b < SC_OB; b++)                            \
            _Pragma("GCC unroll 2") for (int h = 0; h < (NV); h++) if (b < ob)             \
                _mm512_storeu_ps(out + b * j->oh * j->ow + f0 + 16 * h, acc[b][h]);        \
    } while (0)

/* Each tap q's lane mask for the 16 outputs from flattened position f0 + 16 h: its column
 * + q - PL in [0, W). */
SC_AVX512 static inline void sc_masks(const sc_job *j, int64_t f0, __mmask16 mq[2][SC_MAX_KW]) {
    const __m512i w16 = _mm512_set1_epi32((int)j->w);
    for (int h = 0; h < 2; h++) { /* each lane's output column, then each tap's mask */
        __m512i col = _mm512_add_epi32(_mm512_set1_epi32((int)((f0 + 16 * h) % j->w)),
                                       _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6,
                                                        5, 4, 3, 2, 1, 0));
        for (__mmask16 m; (m = _mm512_cmpge_epi32_mask(col, w16));)
            col = _mm512_mask_sub_epi32(col, m, col, w16);
        for (int64_t q = 0; q < j->kw; q++)
            mq[h][q] = _mm512_cmpge_epi32_mask(col, _mm512_set1_epi32((int)(j->pl - q))) &
                       _mm512_cmplt_epi32_mask(col, _mm512_sub_epi32(w16, _mm512_set1_epi32(
                                                                     (int)(q - j->pl))));
    }
}

/* The outputs at flattened positions f0..f0 + 16 nv (nv = 1 or 2 vectors) of output
 * channels o0..o0+ob of one image (planes at out); with ev (sc_scalars), the epilogue's
 * steps on the sums in registers, each as the vector code does it. */
SC_AVX512 static void sc_block(const sc_job *j, const float *xp, const int32_t *off, int64_t o0,
                               int64_t f0, int nv, float *out, int64_t ob, const float *ev) {
    int64_t k = j->c * j->kh * j->kw, plane = j->hp * j->w;
    const float *src = xp; /* (stride 2: the block's inputs, at its taps' offsets off[]) */
    const float *w = j->wt + o0 * k;
    __m512 acc[SC_OB][2]; /* (the sums: registers, as SC_OUT is unrolled too) */
    __mmask16 mq[2][SC_MAX_KW];
    if (k != j->c && !off) sc_masks(j, f0, mq);
    /* (an address: a tap's vector may start before the buffer, in lanes its mask drops) */
    uintptr_t base = (uintptr_t)(xp + f0) - (uintptr_t)j->pl * 4u;
    if (k == j->c || nv == 2) {
        if (off)
            SC_TAPS2(2);
        else if (k == j->c) /* 1x1 (nv = 2) */
            SC_TAPS1();
        else
            SC_TAPS(2);
        SC_OUT(2);
    } else {
        if (off)
            SC_TAPS2(1);
        else
            SC_TAPS(1);
        SC_OUT(1);
    }
}

/* Whether image n's channels o0..o0+ob take the epilogue in sc_block: a register
 * epilogue of adds, multiplies, max, min, x <= a (x >= a) ? b : x and x > a ? x : x * b
 * (bias, BatchNorm, ReLU, clamp, ReLU6, LeakyReLU) whose scalars for them (into ev, rows
 * past ob zero) are not NaN. */
SC_NOINLINE static bool sc_scalars(const sc_job *j, int64_t n, int64_t o0, int64_t ob,
                                   float *ev) {
    if (!j->regs) return false;
    int ns = j->epi->g->n_steps;
    for (int s = 0; s < ns; s++) {
        int op = j->epi->ops[s].op;
        if (op != EPI_ADD && op != EPI_MUL && op != EPI_MAX && op != EPI_MIN && op != EPI_LE &&
            op != EPI_GE && op != EPI_GT)
            return false;
        s += op == EPI_LE || op == EPI_GE ? 1 : op == EPI_GT ? 2 : 0;
    }
    memset(ev, 0, sizeof(float) * (size_t)(SC_OB * ns));
    for (int64_t b = 0; b < ob; b++) am_epi_row_scalars(j->epi, n, o0 + b, ev + b * ns);
    for (int64_t i = 0; i < ob * ns; i++)
        if (ev[i] != ev[i]) return false;
    return true;
}

/* The image's rows into the padded planes at xp, as masked vectors (a memcpy call per
 * short row cost more than its copy). */
SC_AVX512 static void sc_pad_rows(const sc_job *j, float *xp, const float *xs) {
    for (int64_t c = 0; c < j->c; c++)
        for (int64_t r = 0; r < j->h; r++) {
            float *d = xp + (c * j->hp + r + j->pt) * j->w;
            const float *s = xs + (c * j->h + r) * j->w;
            for (int64_t e = 0; e < j->w; e += 16) {
                __mmask16 m = am_lanes16(0, j->w - e);
                _mm512_mask_storeu_ps(d + e, m, _mm512_maskz_loadu_ps(m, s + e));
            }
        }
}

/* Task t: image n = t / split, its output channels (1x1: one block of them). An image
 * without padding rows is read in place. */
static void sc_image(void *ud, int64_t t, int worker) {
    const sc_job *j = (const sc_job *)ud;
    int64_t n = t / j->split, oe = j->split > 1 ? (t % j->split + 1) * SC_OB : j->opad;
    float *xp = j->ws[worker];
    const float *xs = j->x + n * j->c * j->h * j->w;
    bool in_place = j->hp == j->h;
    if (!in_place) sc_pad_rows(j, xp, xs); /* the padding stays zero (am_conv_small) */
    int64_t flat = j->oh * j->w;
    for (int64_t o0 = j->split > 1 ? oe - SC_OB : 0; o0 < oe; o0 += SC_OB) {
        int64_t ob = j->o - o0 < SC_OB ? j->o - o0 : SC_OB;
        float *dst = j->y + (n * j->o + o0) * j->oh * j->ow;
        float ev[SC_OB * AM_FUSED_MAX_STEPS];
        const float *regs = sc_scalars(j, n, o0, ob, ev) ? ev : NULL;
        for (int64_t f = 0; f < flat; f += SC_PX) { /* a last block overlaps: same values */
            int nv = flat - f >= SC_PX || flat - f > 16 || j->kh * j->kw == 1 ? 2 : 1;
            if (flat - f < SC_PX) f = flat - 16 * nv;
            sc_block(j, in_place ? xs : xp, NULL, o0, f, nv, dst, ob, regs);
        }
        if (j->epi && !regs) am_epi_apply(j->epi, n, o0, ob, 0, j->oh * j->ow);
    }
}

/* Stride 2 (image stems: at most 3 input channels, rows of 16 outputs or more). Each
 * task's band of output rows reads padded rows 2 * i0 .. 2 * i1 + KH - 2 of the image,
 * copied with their columns in two phases: padded column 2k + b (input column 2k + b - PL,
 * zero outside) at b * seg + k of the row, so that tap (c, p, q) of 16 outputs j.. of
 * output row i is one load at row 2i + p, phase q % 2, from k = j + q / 2; every output
 * one chain of fused multiply-adds over the taps in (c, p, q) order, padding included, as
 * at stride 1 (the GEMM's summation: the same bits). */
SC_AVX512 SC_NOINLINE static void sc_phases(const sc_job *j, float *xp, const float *xs,
                                            int64_t r0, int64_t rows) {
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4,
                                        2, 0);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    for (int64_t c = 0; c < j->c; c++)
        for (int64_t r = 0; r < rows; r++) {
            float *d = xp + (c * j->hp + r) * 2 * j->seg;
            const int64_t ir = r0 + r - j->pt; /* the input row */
            const bool in = ir >= 0 && ir < j->h;
            const float *src = xs + (c * j->h + (in ? ir : 0)) * j->w;
            for (int64_t k = 0; k < j->seg; k += 16) {
                const int64_t at = 2 * k - j->pl; /* the input column of padded 2k */
                const __mmask16 m = am_lanes16(0, j->seg - k);
                /* (as an integer: a vector may start before the row, in lanes masked off) */
                const uintptr_t a = (uintptr_t)src + (uintptr_t)at * 4u;
                __m512 lo = _mm512_maskz_loadu_ps(in ? am_lanes16(-at, j->w - at) : 0,
                                                  (const float *)a);
                __m512 hi = _mm512_maskz_loadu_ps(in ? am_lanes16(-at - 16, j->w - at - 16) : 0,
                                                  (const float *)(a + 64u));
                _mm512_mask_storeu_ps(d + k, m, _mm512_permutex2var_ps(lo, ev, hi));
                _mm512_mask_storeu_ps(d + j->seg + k, m, _mm512_permutex2var_ps(lo, od, hi));
            }
        }
}

/* Task t: image t / split, output rows of band t % split, each block of channels down the
 * band (its weights stay in L1: the 7x7 stems 4-6% faster than with the rows outermost). */
SC_AVX512 static void sc_band(void *ud, int64_t t, int worker) {
    const sc_job *j = (const sc_job *)ud;
    const int64_t n = t / j->split, i0 = t % j->split * SC_BAND;
    const int64_t i1 = i0 + SC_BAND < j->oh ? i0 + SC_BAND : j->oh;
    float *xp = j->ws[worker];
    sc_phases(j, xp, j->x + n * j->c * j->h * j->w, 2 * i0, 2 * (i1 - i0) + j->kh - 2);
    float ev[SC_MAX_O2 * AM_FUSED_MAX_STEPS]; /* each block's sc_scalars */
    bool regs = j->o <= SC_MAX_O2;
    for (int64_t o0 = 0; regs && o0 < j->o; o0 += SC_OB)
        regs = sc_scalars(j, n, o0, j->o - o0 < SC_OB ? j->o - o0 : SC_OB,
                          ev + o0 * AM_FUSED_MAX_STEPS);
    for (int64_t o0 = 0; o0 < j->o; o0 += SC_OB)
        for (int64_t i = i0; i < i1; i++) {
            const int64_t ob = j->o - o0 < SC_OB ? j->o - o0 : SC_OB;
            float *dst = j->y + (n * j->o + o0) * j->oh * j->ow;
            for (int64_t f = 0, nv; f < j->ow; f += 16 * nv) { /* a last vector overlaps */
                nv = j->ow - f >= SC_PX ? 2 : 1;
                if (j->ow - f < 16) f = j->ow - 16;
                sc_block(j, xp + 4 * (i - i0) * j->seg + f, j->off, o0, i * j->ow + f, (int)nv,
                         dst, ob, regs ? ev + o0 * AM_FUSED_MAX_STEPS : NULL);
            }
        }
    if (j->epi && !regs) am_epi_apply(j->epi, n, 0, j->o, i0 * j->ow, (i1 - i0) * j->ow);
}

COLD bool am_conv_small_fits(const amber_tensor *in, const am_attrs *a,
                             const amber_tensor *out) {
    const int64_t *xs = in[0].shape, *ws = in[1].shape, *ys = out->shape;
    const bool s2 = a->stride[0] == 2 && a->stride[1] == 2; /* (stems: rows of 16 and more) */
    return out->dtype == AMBER_FLOAT32 && am_cpu_isa() >= AM_GEMM_ISA_AVX512 &&
           a->groups == 1 && a->dilation[0] == 1 && a->dilation[1] == 1 &&
           xs[1] * ws[2] * ws[3] <= (s2 ? SC_MAX_K2 : SC_MAX_K) && ws[3] <= SC_MAX_KW &&
           ws[0] >= 4 && (s2 ? xs[1] <= 3 && ys[3] >= 16
               : a->stride[0] == 1 && a->stride[1] == 1 && ys[3] == xs[3] &&
                     ys[2] * ys[3] >= SC_PX &&
                     (ws[2] * ws[3] > 1 ? ys[3] <= SC_MAX_OW /* 1x1: unpadded, whole blocks */
                                        : xs[1] <= SC_MAX_K1 && ys[2] * ys[3] >= SC_MIN_L1 &&
                                              ws[0] % SC_OB == 0 && ws[0] >= SC_MIN_O1 &&
                                              xs[2] == ys[2]));
}

COLD amber_status am_conv_small(am_ctx *ctx, const amber_tensor *in, const am_attrs *a,
                                amber_tensor *out) {
    const int64_t *xs = in[0].shape, *ws = in[1].shape;
    sc_job j = {xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], out->shape[2], out->shape[3],
                a->padding[0], a->padding[2], 0, (ws[0] + SC_OB - 1) / SC_OB * SC_OB, 1, 0,
                NULL, in[0].data, NULL, out->data, NULL, ctx->epi, ctx->epi && ctx->epi->regs};
    j.hp = j.oh + j.kh - 1;
    const bool s2 = a->stride[0] == 2;
    int64_t k = j.c * j.kh * j.kw, n = xs[0];
    double work = (double)n * (double)(j.opad * j.oh * j.ow * k);
    j.split = s2 ? (j.oh + SC_BAND - 1) / SC_BAND : k == j.c ? j.opad / SC_OB : 1;
    n *= j.split; /* (tasks) */
    j.seg = j.ow + (j.kw - 1) / 2;
    bool parallel = am_pool_size(ctx->pool) > 1 && n > 1 && work >= AM_PARALLEL_MIN &&
                    am_pool_for(ctx->pool, work);
    int workers = parallel ? am_pool_size(ctx->pool) : 1;
    size_t pad_len = j.hp == j.h || s2 ? 0 : (size_t)(j.c * j.hp * j.w), len = pad_len;
    int32_t *off = NULL; /* stride 2: the taps' offsets, C planes of HP padded rows */
    if (s2) j.hp = 2 * SC_BAND + j.kh - 2, len = (size_t)(j.c * j.hp * 2 * j.seg);
    float *wt = NULL; /* the weight with zero rows up to opad (none to add: as given) */
    amber_status st = j.o == j.opad ? AMBER_OK
                                    : am_arena_alloc(ctx->scratch,
                                                     sizeof(float) * (size_t)(j.opad * k),
                                                     (void **)&wt, ctx->err);
    if (st == AMBER_OK)
        st = am_arena_alloc(ctx->scratch, sizeof(float *) * (size_t)workers, (void **)&j.ws,
                            ctx->err);
    for (int i = 0; st == AMBER_OK && i < workers; i++) {
        st = am_arena_alloc(ctx->scratch, sizeof(float) * len, (void **)&j.ws[i], ctx->err);
        if (st == AMBER_OK) memset(j.ws[i], 0, sizeof(float) * pad_len);
    }
    if (st == AMBER_OK && s2)
        st = am_arena_alloc(ctx->scratch, sizeof *off * (size_t)k, (void **)&off, ctx->err);
    if (st != AMBER_OK) return st;
    for (int64_t c = 0, t = 0; off && c < j.c; c++)
        for (int64_t p = 0; p < j.kh; p++)
            for (int64_t q = 0; q < j.kw; q++)
                off[t++] = (int32_t)(((c * j.hp + p) * 2 + q % 2) * j.seg + q / 2);
    j.off = off;
    if (wt) {
        memcpy(wt, in[1].data, sizeof(float) * (size_t)(j.o * k));
        memset(wt + j.o * k, 0, sizeof(float) * (size_t)((j.opad - j.o) * k));
    }
    j.wt = wt ? wt : (const float *)in[1].data;
    if (parallel) {
        am_pool_run(ctx->pool, n, s2 ? sc_band : sc_image, &j);
    } else {
        for (int64_t i = 0; i < n; i++) (s2 ? sc_band : sc_image)(&j, i, 0);
    }
    return AMBER_OK;
}
#else
bool am_conv_small_fits(const amber_tensor *in, const am_attrs *a, const amber_tensor *out) {
    (void)in, (void)a, (void)out;
    return false;
}

amber_status am_conv_small(am_ctx *ctx, const amber_tensor *in, const am_attrs *a,
                           amber_tensor *out) {
    (void)ctx, (void)in, (void)a, (void)out;
    return AMBER_ERR_INTERNAL;
}
#endif
