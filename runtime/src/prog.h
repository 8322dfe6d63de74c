/* The program of an .amber file (docs/format.md, "Header contents"): functions of SSA
 * nodes, weights, signatures and test vectors, loaded from the validated JSON header.
 * Everything points into the model's JSON document and tensor views. */
#ifndef AMBER_PROG_H
#define AMBER_PROG_H

#include "ops.h"

#include <string.h>

/* ---------------------------------------------------------------- program */

typedef enum am_builtin {
    AM_NODE_OP,
    AM_NODE_CONSTANT,
    AM_NODE_WEIGHT,
    AM_NODE_CALL,
    AM_NODE_COND,  /* opset 2: callee = then, callee2 = else */
    AM_NODE_WHILE, /* opset 2: callee = cond, callee2 = body */
    AM_NODE_SCAN   /* opset 2: callee = body */
} am_builtin;

/* An op node whose inputs derive only from weights, constants and parameters that get
 * the same such value at every call (plan.c, "same-value parameters") and whose
 * attributes hold no dim expressions: its value is the same in every run. A session keeps the
 * CACHED ones (used by a non-hoisted node, a result, or nothing) after computing them
 * once, and from then on skips the INNER ones: with them, the weights and constants
 * that only hoisted nodes use. */
typedef enum am_hoist { AM_HOIST_NONE, AM_HOIST_INNER, AM_HOIST_CACHED } am_hoist;

/* Fusion (decided at load unless AMBER_OPEN_NO_FUSION): a MEMBER's result is computed
 * by its group's ROOT, in one pass with the root's own result, and never stored; a
 * member node only checks its types when it is reached. */
typedef enum am_fuse { AM_FUSE_NONE, AM_FUSE_MEMBER, AM_FUSE_ROOT } am_fuse;

/* A declared type: dims are JSON integers or dim-expression strings. */
typedef struct am_type {
    amber_dtype dtype;
    int rank;
    const am_json *dims[AMBER_MAX_RANK];
} am_type;

/* Whether two declared dims are the same integer or the same dim expression text. */
static inline bool am_same_dim(const am_json *a, const am_json *b) {
    if (a->type != b->type) return false;
    if (a->type == AM_JSON_NUMBER) return a->i == b->i;
    return a->len == b->len && !memcmp(a->str, b->str, a->len);
}

typedef struct am_node {
    am_builtin kind;
    const am_op *op;            /* AM_NODE_OP */
    const am_json *attrs;       /* the node's attribute object */
    const am_attrs *static_attrs; /* AM_NODE_OP: attrs decoded at load, or NULL when they
                                     hold dim expressions (decoded when the node runs) */
    int n_in, n_out;
    uint32_t *in, *out;         /* value indices */
    am_type *out_types;
    amber_tensor tensor;        /* constant or weight data */
    uint32_t callee, callee2;   /* functions a call / control-flow node runs */
    int n_carries, n_xs;        /* while, scan */
    int64_t max_iterations;     /* while: -1 = no limit of its own */
    int n_stacked;              /* while (opset 3): per-iteration outputs after the carries */
    int trip_symbol;            /* while (opset 3): symbol bound to the trip count, or -1 */
    const am_json *length;      /* scan: integer or dim expression */
    bool reverse;               /* scan */
    am_hoist hoist;             /* op computed from weights and constants only */
    am_fuse fuse;               /* part of a fused elementwise group */
    uint32_t root;              /* AM_FUSE_MEMBER: the node index of its group's root */
    const am_fused *fused;      /* AM_FUSE_ROOT: the group it runs */
    const struct am_attn *attn; /* a matmul ending an attention (plan_attn.c): it runs
                                   am_attention_run, its members are the nodes replaced */
    const struct am_norm *norm; /* the last node of a layer norm (plan_attn.c): it runs
                                   am_layernorm_run, its members are the nodes replaced */
    const struct am_cell *cell; /* an LSTM cell (plan_cell.c): on the node of its new c
                                   (which keeps its memory) and its last node (runs it) */
    bool alias;                 /* reshape: the result is the input's memory, not a copy */
    bool gathered;              /* concat: its inputs are computed in place (part) */
    uint32_t part;              /* 1 + the gathered concat whose result holds this node's
                                   result (a conv2d, or a group after one), or 0 */
    uint8_t over;               /* a group's root: 1 + its external input whose memory
                                   its result takes (a residual dying here), or 0 */
    uint8_t fixed_in;           /* bit k: input k (k < 8) is a weight, a constant or a
                                   value computed from them only (am_ctx.fixed_inputs) */
} am_node;

typedef struct am_func {
    const char *name;
    uint32_t n_params, n_values, n_nodes, n_results;
    am_type *param_types;       /* params are values 0..n_params-1 */
    const char **param_names;
    am_node *nodes;
    uint32_t *results;
    am_symbols syms;            /* names and lens; values unused (per-run copies) */
    int *param_symbol;          /* per param dim: symbol bound there, or -1 */
    uint8_t *param_fixed;       /* per param: 1 when every call passes a value that is
                                   fixed for the session (see am_node.fixed_in) */
    am_type **value_types;      /* declared type of every value */
    int n_param_syms;           /* syms 0..n_param_syms-1 are bound by parameters */
    bool data_dependent;        /* a result's size uses a trip count (opset 5) */
    uint32_t n_cached;          /* nodes with hoist == AM_HOIST_CACHED */
    uint32_t n_fused_groups, n_fused_nodes; /* fused groups and the op nodes they hold */
    uint32_t n_attention;       /* attentions found by am_plan_attention */
    uint32_t n_norms;           /* layer norms found by am_plan_attention */
    /* Memory planning: the op results a run of the function places in one block, by
     * offsets a session computes from their sizes (known once the function's symbols
     * are bound) and these lifetimes. Not planned: parameters, weights, constants,
     * cached values, fused intermediates, reshapes (aliases of their input, which then
     * lives as long as they do), a gathered concat's inputs (am_node.part: inside its
     * result, which then lives from the first of them on), results and the arguments of
     * call/cond/while/scan (their results may be those very tensors), and what those
     * alias. */
    uint32_t n_planned;
    uint32_t *planned;          /* value index of each planned value */
    uint32_t *plan_first;       /* node that defines it */
    uint32_t *plan_last;        /* last node that reads it (fused readers: their root) */
    uint8_t *plan_inner;        /* computed only until the hoisted values are cached */
    uint32_t n_plan_inner;      /* planned values with plan_inner set */
    int32_t *plan_slot;         /* per value: its index in `planned`, or -1 */
} am_func;

typedef struct am_port_def {
    const char *name;
    am_type type;
} am_port_def;

typedef struct am_entry {
    const char *name;
    uint32_t func;
    uint32_t n_inputs, n_outputs;
    am_port_def *inputs, *outputs;
} am_entry;

typedef struct am_vector {
    uint32_t entry;
    amber_tensor *inputs, *outputs; /* in the entry's order */
    double *rtol, *atol;            /* per output */
} am_vector;

/* A name and the index of what it names, in a table sorted by name (strcmp). */
typedef struct am_name_ref {
    const char *name;
    uint32_t index;
} am_name_ref;

typedef struct am_program {
    bool present;                   /* false for a bare container without a program */
    int64_t opset_version;
    uint32_t n_funcs, n_entries, n_vectors;
    am_func *funcs;
    am_entry *entries;
    am_vector *vectors;
    am_name_ref *func_index, *entry_index; /* functions and entry points sorted by name */
    am_arena mem;                   /* everything above lives here */
} am_program;

typedef amber_status (*am_tensor_lookup)(const void *model, const char *name,
                                         amber_tensor *view);

/* Loads and validates the program members of the header root. A header without
 * "program" leaves prog->present false (a plain container). */
amber_status am_program_load(am_program *prog, const am_json_doc *doc, const void *model,
                             am_tensor_lookup lookup, bool fuse, am_error *err);
void am_program_free(am_program *prog);
/* Checks the types of a loaded program (typecheck.c): declared output types against the
 * type rules of nodes, calls and control flow at probe sizes, the signatures' output
 * structures and input ranges, and the test vectors against their entry points. */
amber_status am_program_typecheck(const am_program *prog, const am_json_doc *doc, am_error *err);
/* The index of the entry point `name`, or -1 (binary search). */
int64_t am_program_find_entry(const am_program *prog, const char *name);

/* Plans a loaded program (plan.c): hoisting, then per function (with fuse) attention,
 * LSTM cells (doc: the header), elementwise fusion and epilogues, then memory lifetimes
 * and fixed parameters. */
amber_status am_plan_program(am_program *p, const am_json_doc *doc, bool fuse, am_error *err);

/* The node defining each value of f (-1: a parameter) and how many times nodes read it
 * (UINT32_MAX: a result of f), into arrays of f->n_values (uses zeroed by the caller). */
void am_func_defs_uses(const am_func *f, int64_t *def, uint32_t *uses);

/* A node's attributes: the ones decoded at load, else decoded into *buf with dim
 * expressions evaluated in syms. */
amber_status am_node_attrs(const am_node *n, const am_json_doc *doc, const am_symbols *syms,
                           am_attrs *buf, const am_attrs **out, am_error *err);
/* Epilogues (plan_epilogue.c): after the elementwise groups, gives a conv2d or matmul
 * whose result only one group (or one elementwise node) reads to that group as its
 * producer; and runs such a group's root (ext: the group's inputs, the product's
 * without data; vals: the function's values). */
amber_status am_plan_epilogues(am_func *f, am_arena *mem, am_error *err);
amber_status am_epilogue_run(const am_func *f, const am_node *root, am_ctx *ctx,
                             const amber_tensor *vals, amber_tensor *ext, amber_tensor *out);
/* The external input of root's group (after a float32 conv2d) whose memory its result
 * may take (am_node.over), judged on the declared types: one of the result's type that the
 * group reads as the GEMM tile's register epilogue does (am_epi.tile); else -1. */
int am_epilogue_over(const am_func *f, const am_node *root);
/* Evaluates a declared type's dims. */
amber_status am_type_eval(const am_type *t, const am_symbols *syms, int64_t *shape,
                          am_error *err);

#endif
