/* Attention recognised at load (plan_attn.c) and run by one kernel (k_attention.c).
 *
 * A file holds attention as the primitives of its composite body (docs/opset.md, the
 * `scaled_dot_product_attention` front end): for (..., L, E) queries, (..., E, S)
 * transposed keys and (..., S, Ev) values,
 *
 *   s = matmul(q, kt) [* c] [where(keep, s, fill) | + mask]
 *   safe softmax:  dead = max(s) == dead_at;  s = where(dead, dead_s, s)
 *   p = exp(s - max(s)) / sum(exp(s - max(s)))  [then where(dead, dead_p, p)]
 *   out = matmul(p, v)
 *
 * with every intermediate used by the next step only. The kernel computes the same
 * steps over blocks of query rows, so no (L, S) score tensor is stored, and with the
 * same GEMM, the same row loops and the same summation order as the nodes it replaces:
 * its results are those nodes' results bit for bit. */
#ifndef AMBER_ATTN_H
#define AMBER_ATTN_H

#include "ops.h"

#include <string.h>

enum { AM_ATTN_Q, AM_ATTN_KT, AM_ATTN_V, AM_ATTN_MASK };
typedef enum am_attn_mask { AM_ATTN_NO_MASK, AM_ATTN_KEEP, AM_ATTN_ADD } am_attn_mask;

/* q, kt and v may be views the kernel reads in place (the copies splitting heads are
 * never made): operand i is ext[i] through its steps, innermost first. A step is a
 * transpose, a slice (static starts and steps), or a reshape adding or dropping dims of
 * size 1; its result (ext[AM_ATTN_STEP0 + ...]) gives the shape it has in this run. */
#define AM_ATTN_STEPS 4
#define AM_ATTN_STEP0 4
#define AM_ATTN_MAX_EXT (AM_ATTN_STEP0 + 3 * AM_ATTN_STEPS)
typedef struct am_attn_step {
    am_op_id op;                    /* AM_OP_TRANSPOSE, AM_OP_SLICE or AM_OP_RESHAPE */
    int8_t perm[AMBER_MAX_RANK];    /* transpose */
    int64_t start[AMBER_MAX_RANK], step[AMBER_MAX_RANK]; /* slice */
} am_attn_step;

typedef struct am_attn {
    int n_ext;                      /* AM_ATTN_STEP0 + the steps' results */
    uint32_t ext[AM_ATTN_MAX_EXT];  /* value indices: q, kt, v, mask (q without a mask),
                                       then each operand's steps' results */
    int rank;                       /* of q, kt, v and the result */
    int n_steps[3];
    am_attn_step steps[3][AM_ATTN_STEPS];
    /* the result is written as transpose(result, out_perm) when out_perm[0] >= 0 (the
     * node computing it is that transpose; its last axis stays last) */
    int8_t out_perm[AMBER_MAX_RANK];
    bool scaled;
    double scale;                   /* s * scale (a scalar constant of the dtype) */
    am_attn_mask mask;
    double fill;                    /* KEEP: where(keep, s, fill) */
    bool safe;                      /* PyTorch's safe softmax: dead rows give dead_p */
    double dead_at, dead_s, dead_p;
} am_attn;

/* out (allocated, the final matmul's shape) from the external inputs ext[0..n_ext). */
amber_status am_attention_run(const am_attn *a, am_ctx *ctx, const amber_tensor *ext,
                              amber_tensor *out);

/* Layer norm as F.layer_norm writes it over the last axis (for a row x of h elements):
 *   mu = sum(x) / count1;  xc = x - mu;  var = sum(xc * xc) / count2
 *   y = xc * (one / sqrt(var + eps))  [* w]  [+ b]
 * with every intermediate used by the next step only (xc by its square and y). One
 * kernel computes it per row with the same operations in the same order: the same bits. */
typedef struct am_norm {
    int n_ext;                      /* x, then w and b when present */
    uint32_t ext[3];
    bool has_w, has_b;
    double count1, count2, eps, one;
} am_norm;

amber_status am_layernorm_run(const am_norm *nm, am_ctx *ctx, const amber_tensor *ext,
                              amber_tensor *out);

/* k_reduce's sum of a contiguous row of n elements of T (of their squares, each rounded
 * to T, when `square`): in double, element c into partial c % 8 from 16 elements on,
 * the partials added pairwise; serially below 16. Written on 8-lane vectors (lane q is
 * partial q: the same adds in the same order), for the ISA of ATTR. */
typedef double am_v8d __attribute__((vector_size(64)));
#define AM_ROWSUM(NAME, T, VT, ATTR)                                                         \
    ATTR static double NAME(const T *x, int64_t n, bool square) {                            \
        double sum = 0.0;                                                                    \
        if (n < 16) {                                                                        \
            for (int64_t c = 0; c < n; c++) sum += (double)(square ? (T)(x[c] * x[c]) : x[c]); \
            return sum;                                                                      \
        }                                                                                    \
        am_v8d acc = {0, 0, 0, 0, 0, 0, 0, 0};                                               \
        int64_t c = 0;                                                                       \
        for (; c + 8 <= n; c += 8) {                                                         \
            VT v;                                                                            \
            memcpy(&v, x + c, sizeof v);                                                     \
            if (square) v = v * v;                                                           \
            acc += __builtin_convertvector(v, am_v8d);                                       \
        }                                                                                    \
        double part[8];                                                                      \
        memcpy(part, &acc, sizeof part);                                                     \
        for (; c < n; c++) part[c % 8] += (double)(square ? (T)(x[c] * x[c]) : x[c]);        \
        return ((part[0] + part[1]) + (part[2] + part[3])) +                                 \
               ((part[4] + part[5]) + (part[6] + part[7]));                                  \
    }
typedef float am_v8f __attribute__((vector_size(32)));

#endif
