/* Load-time recognition of an LSTM cell's gate arithmetic (plan_cell.c), and its kernel. */
#ifndef AMBER_PLAN_CELL_H
#define AMBER_PLAN_CELL_H

#include "prog.h"

/* c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g); h = sigmoid(o) * tanh(c), where i, f, g,
 * o are column slices [off, off + hidden) of the pre-activations `pre` (last dim `width`).
 * The node of c keeps its memory (the kernel writes it); the node of h runs the kernel;
 * the slices, activations and products between are AM_FUSE_MEMBERs of h's node. Where
 * pre = a + (b + c) or a + b is read by the slices only (an LSTM step: x_t + (h @ W +
 * b_hh)), its adds are members too and each gate's sum is formed as the cell reads it:
 * pre is never written. */
typedef struct am_cell {
    /* src[0] = pre (n_src 1), or a, b (n_src 2), or a, b, c (n_src 3); rank 1 when `row`:
     * one row of width elements for every row, a bias */
    uint32_t src[3], c_prev, c_val; /* value indices */
    int n_src;
    bool row[3];
    uint32_t c_node; /* the node defining c_val */
    int64_t width, hidden;
    int64_t off[4]; /* gates i, f, g, o */
    am_row_fn sig, tanh, mul, add;
    /* operands in the other order than (i * g, f * c_prev, i * g + f * c_prev, o * tanh c,
     * a + (b + c) or a + b) */
    bool swapped[5];
} am_cell;

/* Marks every such cell in f (allocated in mem). Runs before elementwise fusion; doc is
 * the header the nodes' attributes point into. */
amber_status am_plan_cells(am_func *f, const am_json_doc *doc, am_arena *mem, am_error *err);

/* Computes c_out and h_out (allocated, of one shape [..., hidden]) from the sources
 * src[0..n_src) and c_prev: each element through the same row loops, in the same order,
 * as the nodes it replaces (the same bits); rows split between the pool's threads when
 * large enough. */
amber_status am_cell_run(const am_cell *cell, am_ctx *ctx, const amber_tensor *src,
                         const amber_tensor *c_prev, amber_tensor *c_out, amber_tensor *h_out);

#endif
