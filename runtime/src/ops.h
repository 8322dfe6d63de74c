/* The op table and the kernel interface. A kernel sees input tensors, decoded
 * attributes and an output tensor whose shape/dtype `infer` computed and whose memory
 * the caller allocated. */
#ifndef AMBER_OPS_H
#define AMBER_OPS_H

#include "internal.h"
#include "json.h"

#include <string.h>

enum {
    DT_F32 = 1 << AMBER_FLOAT32,
    DT_F64 = 1 << AMBER_FLOAT64,
    DT_I32 = 1 << AMBER_INT32,
    DT_I64 = 1 << AMBER_INT64,
    DT_B = 1 << AMBER_BOOL,
    DT_F16 = 1 << AMBER_FLOAT16,
    DT_BF16 = 1 << AMBER_BFLOAT16,
    DT_I8 = 1 << AMBER_INT8,
    DT_U8 = 1 << AMBER_UINT8,
    DT_I16 = 1 << AMBER_INT16,
    DT_FLOATS = DT_F32 | DT_F64 | DT_F16 | DT_BF16,
    DT_INTS = DT_I32 | DT_I64 | DT_I8 | DT_U8 | DT_I16,
    DT_NUMERIC = DT_FLOATS | DT_INTS,
    DT_BOOL = DT_B,
    DT_ALL = DT_NUMERIC | DT_B
};

typedef enum am_op_id {
#define X(id, name, nin, dts, attrs, since, kind, infer, kernel) AM_OP_##id,
#include "ops.def"
#undef X
    AM_OP_COUNT
} am_op_id;

_Static_assert(AM_OP_COUNT == AMBER_PRIMITIVES,
               "ops.def and AMBER_PRIMITIVES in amber.h disagree");

/* Decoded attributes: the union of every op's attributes, by name. */
typedef struct am_attrs {
    amber_dtype dtype;                 /* cast */
    int64_t axis;                      /* argmax, argmin, concat, take, scatter_add */
    bool keepdims;                     /* reductions */
    double value;                      /* pad */
    int64_t dim;                       /* dim_value (symbols already resolved) */
    /* The int[] attributes, by name. An op has at most three, one per slot, so the names
     * of a slot share its storage (and the length before it). */
    union { int n_axes, n_perm, n_shape, n_starts, n_lo; };
    union { int n_stops, n_hi; };
    union { int n_steps, n_interior; };
    union {
        int64_t axes[AMBER_MAX_RANK];   /* reductions */
        int64_t perm[AMBER_MAX_RANK];   /* transpose */
        int64_t shape[AMBER_MAX_RANK];  /* reshape, broadcast_to */
        int64_t starts[AMBER_MAX_RANK]; /* slice */
        int64_t lo[AMBER_MAX_RANK];     /* pad */
    };
    union {
        int64_t stops[AMBER_MAX_RANK];  /* slice */
        int64_t hi[AMBER_MAX_RANK];     /* pad */
    };
    union {
        int64_t steps[AMBER_MAX_RANK];    /* slice */
        int64_t interior[AMBER_MAX_RANK]; /* pad */
    };
    int64_t stride[2], padding[4], dilation[2], groups;
    int64_t hw[2];                     /* input_hw */
    int64_t kernel[2];                 /* kernel_hw */
    bool ceil_mode, count_include_pad; /* pooling */
} am_attrs;

/* The portable kernels' attributes. Where run-time dispatch picks AVX2 or AVX-512 kernels
 * (x86-64) they run only on CPUs without AVX2, so they are compiled for size (`cold`:
 * the library stays small); elsewhere they are the kernels. */
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
#define AM_PORTABLE __attribute__((cold))
#else
#define AM_PORTABLE
#endif

/* ---------------------------------------------------------------- threads (pool.c) */

typedef struct am_pool am_pool;
/* fn(ud, task, worker): worker is 0..am_pool_size()-1, unique among concurrent calls. */
typedef void (*am_task_fn)(void *ud, int64_t task, int worker);
/* How long idle threads stay awake after a job before they sleep. A session's nodes follow
 * each other closely and a woken worker starts late, so its pool spins long; eager
 * kernels come between stretches of Python, through which a long spin burns a core. */
#define AM_POOL_SPIN_SESSION_NS 200000u
#define AM_POOL_SPIN_EAGER_NS 50000u
/* threads <= 1 gives *out = NULL, which runs everything on the calling thread. */
amber_status am_pool_create(int threads, uint64_t spin_ns, double wake_min, am_pool **out,
                             am_error *err);
void am_pool_free(am_pool *p);
int am_pool_size(const am_pool *p);
/* Whether a worker is awake (not waiting to be woken): a job of a few microseconds is
 * worth splitting only then, since waking one costs the caller a system call and the
 * worker starts late. */
bool am_pool_awake(am_pool *p);
/* The pool for a job of `work` (multiply-adds or element visits) the caller would split,
 * or NULL to run it alone: a pool made with a wake threshold (eager kernels, whose jobs
 * come far apart) is not woken for a job below it, since the caller would pay for the
 * wake-up and wait for a worker that starts late (in a VM, tens of microseconds). Pools
 * without one (sessions: threshold 0) are always used. */
am_pool *am_pool_for(am_pool *p, double work);
/* Multiply-adds below which an eager kernel does not wake a sleeping pool (~40 us). */
#define AM_POOL_WAKE_EAGER 4e6
/* Runs tasks 0..n_tasks-1 on the pool and the calling thread; returns when all finish.
 * Participant i of am_pool_size() (0: the caller) first runs tasks [am_pool_first(n, size,
 * i), am_pool_first(n, size, i + 1)) in order, then helps with the others' from their
 * ends: a kernel whose calls split the same data alike finds it in the same cache. */
void am_pool_run(am_pool *p, int64_t n_tasks, am_task_fn fn, void *ud);
static inline int64_t am_pool_first(int64_t n_tasks, int parts, int i) {
    return (n_tasks * i + parts - 1) / parts;
}

/* ---------------------------------------------------------------- kept data (keep.c) */

/* Data a kernel derives from a fixed input (a weight, a constant, or a value computed
 * from them once; see am_ctx.fixed_inputs), such as a packed copy of a weight, kept for
 * the session's lifetime and found again by the input's address, a kind tag and two
 * dimensions. Only the calling thread of a kernel may use it (and, while its session runs
 * nothing, the threads of the sessions that name it their parent). */
typedef amber_status (*am_keep_alloc_fn)(void *owner, size_t size, void **out);
typedef void (*am_keep_release_fn)(void *owner, void *data, size_t size);
typedef struct am_kept {
    const void *key;
    uint32_t kind;
    int64_t d0, d1;
    void *data;
    size_t size;
} am_kept;
typedef struct am_keep {
    am_keep_alloc_fn alloc; /* 64-byte aligned memory, handed back to release */
    am_keep_release_fn release;
    void *owner;
    bool off; /* dropped once: keep nothing more */
    size_t n, cap;
    am_kept *items;
    /* also searched (after these items), never changed through this one: a session's
     * own, for the sessions its images run side by side in (session.c, split_side) */
    const struct am_keep *parent;
} am_keep;

void am_keep_init(am_keep *k, am_keep_alloc_fn alloc, am_keep_release_fn release, void *owner);
void am_keep_free(am_keep *k);
/* Releases everything kept and keeps nothing from then on (the owner needs the memory;
 * no kernel may be running). Returns whether anything was released. */
bool am_keep_drop(am_keep *k);
/* The data kept for (key, kind, d0, d1) here or in the parent, or NULL. */
void *am_keep_find(const am_keep *k, const void *key, uint32_t kind, int64_t d0, int64_t d1);
/* New kept data of `size` bytes for (key, kind, d0, d1), or NULL when memory or the
 * session's memory limit does not allow it (the caller then does without). */
void *am_keep_add(am_keep *k, const void *key, uint32_t kind, int64_t d0, int64_t d1,
                  size_t size);

typedef struct am_ctx {
    am_error *err;
    am_arena *scratch; /* temporary buffers of one kernel call (calling thread only) */
    am_pool *pool;     /* intra-op threads, or NULL */
    /* Set by the interpreter per node: bit k when input k keeps its value and its memory
     * for the session's lifetime; and where to keep data derived from such inputs (NULL:
     * nowhere). */
    unsigned fixed_inputs;
    am_keep *keep;
    /* Set by the interpreter for a conv2d or matmul whose result feeds a fused group
     * (an epilogue, see am_epi): the kernel writes into the group's output and applies
     * the group to each block of it right after the block's last store. NULL: none. */
    const struct am_epi *epi;
    /* AMBER_OPEN_PLAIN_SUMS: only kernels within the plain sum bound (no F(2,3) rows) */
    bool plain_sums;
} am_ctx;

typedef struct am_op am_op;
typedef amber_status (*am_infer_fn)(const am_op *op, const amber_tensor *in, int n,
                                    const am_attrs *a, amber_tensor *out, am_error *err);
typedef amber_status (*am_kernel_fn)(const am_op *op, am_ctx *ctx, const amber_tensor *in,
                                     int n, const am_attrs *a, amber_tensor *out);

/* What the runtime knows of an op beyond its kernel (ops.def's kind column). */
typedef enum am_op_kind {
    AM_KIND_OTHER,
    AM_KIND_UNARY,  /* elementwise, one operand: the unary row loops */
    AM_KIND_BINARY, /* elementwise, two operands broadcast (comparisons too): binary loops */
    AM_KIND_WHERE,  /* elementwise select: loops by element size */
    AM_KIND_CAST,   /* elementwise conversion: loops by dtype pair; any dtype as it is */
    AM_KIND_MOVE    /* data movement (byte copies): any dtype as it is */
} am_op_kind;

struct am_op {
    am_op_id id;
    const char *name;
    int n_inputs; /* -1: variadic */
    unsigned dtypes;
    const char *attrs;
    int since; /* the opset version that introduced it */
    am_op_kind kind;
    am_infer_fn infer;
    am_kernel_fn kernel;
};

/* Symbols of one function: names bound by its parameters, and their sizes in one run
 * (-1 = unbound). In check mode every symbol evaluates to 1 (load-time validation). */
typedef struct am_symbols {
    int n;
    const char **names;
    size_t *lens;
    int64_t *values;
    bool check;
    uint32_t *slots;  /* open-addressing hash of the names: symbol index + 1, 0 = empty */
    uint32_t cap;     /* slots (a power of two, more than twice the symbols), 0 = none */
} am_symbols;

/* The index of symbol name[0..len), or -1 (hashed when slots is set, else a scan). */
int am_symbols_find(const am_symbols *syms, const char *name, size_t len);
/* Appends a symbol (room must be reserved: names, lens and a hash of cap slots). */
void am_symbols_add(am_symbols *syms, const char *name, size_t len);

/* Evaluates a dim expression (grammar of docs/format.md H.2) in checked int64. */
amber_status am_dim_eval(const char *s, size_t len, const am_symbols *syms, int64_t *out,
                         am_error *err);
/* True if s is a single NAME token. */
bool am_dim_is_name(const char *s, size_t len);

const am_op *am_op_get(am_op_id id);
const am_op *am_op_find(const char *name);
/* The opset version that introduced a primitive (ops.def's since column). */
int am_op_since(const am_op *op);
/* Decodes a JSON object (NULL = no attributes) against op->attrs; strict. Integer
 * attributes may be dim-expression strings when syms is given. */
amber_status am_attrs_decode(const am_op *op, const am_json_doc *doc, const am_json *obj,
                             const am_symbols *syms, am_attrs *a, am_error *err);
/* Checks inputs (count, descriptors, first dtype) and runs op->infer. */
amber_status am_op_infer(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                         amber_tensor *out, am_error *err);
/* Infers, allocates the output in `out_arena` and runs the kernel. */
amber_status am_op_run(const am_op *op, am_ctx *ctx, am_arena *out_arena,
                       const amber_tensor *in, int n, const am_attrs *a, amber_tensor *out);

/* Storage dtypes (k_storage.c): the dtype float16/bfloat16 (int8/uint8/int16) compute in,
 * float32 (int32); the dtype itself otherwise. */
amber_dtype am_compute_dtype(amber_dtype dt);
/* Round-to-nearest-even conversions; NaN stays NaN (payload's top bits kept), Inf stays Inf. */
float am_f16_to_f32(uint16_t h);
uint16_t am_f32_to_f16(float f);
float am_bf16_to_f32(uint16_t h);
uint16_t am_f32_to_bf16(float f);
/* Runs op->kernel, widening storage-dtype operands to their compute dtype and rounding
 * (wrapping) the result back; every caller of a kernel goes through it. */
amber_status am_kernel_call(const am_op *op, am_ctx *ctx, const amber_tensor *in, int n,
                            const am_attrs *a, amber_tensor *out);

/* Every infer and kernel named in ops.def. */
#define X(id, name, nin, dts, attrs, since, kind, infer, kernel) \
    amber_status infer(const am_op *, const amber_tensor *, int, const am_attrs *,      \
                       amber_tensor *, am_error *);                                      \
    amber_status kernel(const am_op *, am_ctx *, const amber_tensor *, int,             \
                        const am_attrs *, amber_tensor *);
#include "ops.def"
#undef X

/* The mask of lanes [lo, hi) of 16 (none if empty): a masked vector's lanes inside a row. */
static inline uint16_t am_lanes16(int64_t lo, int64_t hi) {
    lo = lo < 0 ? 0 : lo, hi = hi > 16 ? 16 : hi;
    return (uint16_t)(hi <= lo ? 0u : ((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

/* NaN test usable on any element type (false for integers and bool). */
static inline bool am_isnan_f(float x) { return x != x; }
static inline bool am_isnan_d(double x) { return x != x; }
static inline bool am_isnan_never(int64_t x) { (void)x; return false; }
#define AM_ISNAN(x) \
    _Generic((x), float: am_isnan_f, double: am_isnan_d, default: am_isnan_never)(x)

/* take ? v : m as a bitwise select: where which operand wins is random (real data), a
 * branch on it mispredicts half the time. */
#define AM_SELECT_BITS(T, U)                                                   \
    static inline T am_select_##T(bool take, T v, T m) {                       \
        U a, b, k = (U)0 - (U)take;                                            \
        memcpy(&a, &m, sizeof a);                                              \
        memcpy(&b, &v, sizeof b);                                              \
        a = (k & b) | (~k & a);                                                \
        memcpy(&m, &a, sizeof m);                                              \
        return m;                                                              \
    }
AM_SELECT_BITS(float, uint32_t)
AM_SELECT_BITS(double, uint64_t)

/* ---------------------------------------------------------------- strided iteration */

#define AM_ITER_MAX_OPS 8 /* an output and up to 7 inputs (fused elementwise groups) */

/* Walks an N-d index space; operand k advances by strides[k][d] bytes along dim d.
 * Adjacent dims that are contiguous for every operand are merged first. */
typedef struct am_iter {
    int rank, nops;
    int64_t shape[AMBER_MAX_RANK];
    int64_t strides[AM_ITER_MAX_OPS][AMBER_MAX_RANK];
} am_iter;

/* fn is called once per innermost row with the operands' row pointers and byte strides. */
typedef void (*am_row_fn)(char **p, const int64_t *s, int64_t n, void *ud);

void am_iter_init(am_iter *it, int nops, int rank, const int64_t *shape,
                  int64_t strides[][AMBER_MAX_RANK]);
void am_iter_run(const am_iter *it, char *const *base, am_row_fn fn, void *ud);
/* Elements of an elementwise op or reduction worth splitting between threads. */
#define AM_ELEMENTS_PARALLEL_MIN 32768
/* Elements of a float32 sum read in wide vectors (k_reduce.c) worth splitting: such a sum
 * takes about a nanosecond an element. */
#define AM_SUM_SPLIT_MIN 131072
/* am_iter_run split between the pool's threads when large, each accumulator of operand 0
 * (stride 0 along reduced dims) updated by one thread in the same order: the same bits.
 * fn must compute each element alone (no state in ud shared between rows). */
void am_iter_run_pool(am_pool *pool, const am_iter *it, char *const *base, am_row_fn fn,
                      void *ud);

/* Contiguous byte strides of a shape. */
void am_contig_strides(const int64_t *shape, int rank, size_t esize, int64_t *strides);
/* Byte strides of t broadcast to out_shape (rank out_rank >= t->rank): 0 where t has 1. */
void am_bcast_strides(const amber_tensor *t, const int64_t *out_shape, int out_rank,
                      int64_t *strides);

/* ---------------------------------------------------------------- fused elementwise */

/* The row loop an elementwise op (unary, binary, comparison, where, cast) runs for the
 * given first-input and output dtypes; NULL if op is not elementwise or has no loop for
 * them. Fused groups and the single-op kernels call the same loops, so both give
 * bit-identical results. */
am_row_fn am_elementwise_loop(const am_op *op, amber_dtype in0, amber_dtype out);

/* An LSTM cell's gate arithmetic (plan_cell.c) on n float32 hidden units of each of rows
 * rows: the gates i, f, g, o at pre[0] + off[0..3] (n_pre 1), or the sums pre[0] + pre[1]
 * (n_pre 2) or pre[0] + (pre[1] + pre[2]) (n_pre 3) there, the outer add's operands the
 * other way round when swapped[4], c_prev at cp, c and h to co and ho, each element the
 * bits of the row loops of sigmoid, tanh, mul and add (operands swapped as in am_cell).
 * Row r of source k starts at pre[k] + r rs[k] (rs[k] 0: one row for all), of cp, co and
 * ho at r ld. False, computing nothing, where there is no vector kernel for this CPU. */
bool am_cell_f32(const float *const *pre, const int64_t *rs, int n_pre, const int64_t *off,
                 const float *cp, float *co, float *ho, int64_t n, int64_t rows, int64_t ld,
                 const bool *swapped);

#define AM_FUSED_MAX_EXT (AM_ITER_MAX_OPS - 1)
#define AM_FUSED_MAX_STEPS 16

/* One op of a fused group: input k is external input src[k] (>= 0) or the result of
 * step -src[k] - 1 (an earlier step). */
typedef struct am_fused_step {
    am_row_fn fn;
    amber_dtype dtype; /* of the step's result */
    int n_in;
    int src[3];
} am_fused_step;

/* A chain of elementwise ops whose results have the root's (last step's) shape and are
 * used only inside the chain: it runs in one pass over blocks of the output, with the
 * intermediate results in block-sized buffers that never reach memory planning. */
typedef struct am_fused {
    int n_steps, n_ext;
    am_fused_step steps[AM_FUSED_MAX_STEPS];
    uint32_t ext[AM_FUSED_MAX_EXT]; /* value indices of the external inputs */
    /* An epilogue group (plan_epilogue.c): node producer - 1 (a conv2d or matmul; 0:
     * none) computes external input `self` straight into the root's output, and the
     * group then runs over that memory in place, block by block, as the product is
     * written: the same operations in the same order as the unfused nodes. */
    uint32_t producer;
    int self;
} am_fused;

/* Runs a group: ext[k] is external input k (broadcast to out's shape), out the root's
 * output (allocated). Scratch: a few blocks from ctx->scratch. */
amber_status am_fused_run(const am_fused *g, am_ctx *ctx, const amber_tensor *ext,
                          amber_tensor *out);

/* Elements [c, c + m) of one row of a group (p, s: the output's then each external
 * input's row pointer and byte stride): each step's row loop in turn, intermediates in
 * the slots of tmp, `slot` bytes apart (m <= slot / 8). */
void am_fused_block(const am_fused *g, char *const *p, const int64_t *s, int64_t c, int64_t m,
                    char *tmp, size_t slot);

/* The epilogue vector code's operand kinds and operations (am_epi.ops): EPI_UNARY is
 * any one-input float step (exp, tanh, erf...), run by the step's own row loop. */
enum { EPI_TMP, EPI_SCALAR, EPI_ROW };
enum { EPI_ADD, EPI_SUB, EPI_MUL, EPI_DIV, EPI_MAX, EPI_MIN, EPI_EQ, EPI_NE, EPI_LT, EPI_LE,
       EPI_GT, EPI_GE, EPI_WHERE, EPI_UNARY };
/* A fused group applied in place to blocks of a product's result as a kernel writes
 * them (am_ctx.epi). The result is viewed as [images, rows, cols] (a convolution: N,
 * channels, OH*OW; a matrix product: 1, M, N), and every external input by byte strides
 * over that view (0 where it broadcasts). */
typedef struct am_epi {
    const am_fused *g;
    char *out;
    int64_t images, rows, cols;
    int64_t ob, orow, ocol; /* byte strides of the result */
    char *base[AM_FUSED_MAX_EXT];
    int64_t sb[AM_FUSED_MAX_EXT], sr[AM_FUSED_MAX_EXT], sc[AM_FUSED_MAX_EXT];
    /* The group as vector code (k_epilogue.c) when every step is one it knows, with
     * float operands that are per-row scalars, contiguous rows or earlier steps. */
    bool vec;
    bool chain; /* ... and each step reads only the last two steps' results */
    bool line;  /* ... binary arithmetic, max and min, each step after the first reading
                 * the one before and one external input (BatchNorm, clip, residual add) */
    bool regs;  /* float32, every step the one before with one per-row scalar, or x <= a ?
                 * b : x as le + where (ge too), or x > a ? x : x * b as gt, mul and where
                 * (am_epi_in_registers) */
    bool tile;  /* ... or some of those scalars rows of other inputs (the GEMM's tile) */
    bool gelu;  /* float32, binary arithmetic on the product and rows or scalars (a bias),
                 * then the tanh GELU's nine steps (am_epi_gelu_f32) */
    bool over;  /* the result is written over an input the tile reads (am_node.over): each
                 * GEMM tile reads it before it stores (am_gemm_over_ok); the tile's NaN
                 * check then leaves that input (am_epi_row_scalars gives 0) */
    struct am_epi_op {
        uint8_t op, kind[3]; /* kind: EPI_TMP, EPI_SCALAR, EPI_ROW */
        int8_t src[3];       /* step (EPI_TMP) or external input */
        int8_t other;        /* the operand that is not the chain (am_epi_row_scalars) */
    } ops[AM_FUSED_MAX_STEPS];
} am_epi;

/* The operands step o reads (where: 3; a one-input step: 1; else 2). */
static inline int am_epi_arity(const struct am_epi_op *o) {
    return o->op == EPI_WHERE ? 3 : o->op == EPI_UNARY ? 1 : 2;
}

/* Whether operand (kind, src) of step j is the chain's value before it: the product (the
 * group's self row) or step j - 1. */
static inline bool am_epi_chain_at(const am_epi *e, int j, int kind, int src) {
    return kind == (j ? EPI_TMP : EPI_ROW) && src == (j ? j - 1 : e->g->self);
}

/* Prepares e for group g writing `out`, whose dims [0, d1) are the view's images, [d1,
 * d2) its rows and [d2, rank) its cols. ext[g->self] is out itself. False when some
 * input's strides do not fit that view (the caller then runs the product and the group
 * one after the other). */
bool am_epi_init(am_epi *e, const am_fused *g, const amber_tensor *ext, amber_tensor *out,
                 int d1, int d2);
/* A gelu group (am_epi.gelu) over a row of n floats, p as am_epi_apply's pointers (the
 * product in place at p[0]): the steps' IEEE operations in their order, tanh as its row
 * loop's, all in registers (k_elementwise.c); false, doing nothing, without AVX-512. */
bool am_epi_gelu_f32(const am_epi *e, char *const *p, int64_t n);
/* Applies the group to rows [r0, r0 + nr) x cols [c0, c0 + nc) of image `img`: each
 * element once, from any thread (scratch on the stack). */
void am_epi_apply(const am_epi *e, int64_t img, int64_t r0, int64_t nr, int64_t c0,
                  int64_t nc);

/* Whether a kernel may apply e to float32 results still in its registers (am_epi_init
 * sets am_epi.regs and am_epi.tile with it; it also sets each am_epi_op.other): every
 * step reads the one before (the first: the product) and one scalar per image and row
 * (add and mul in either order; sub, div, max and min the chain first), or is le(x, a)
 * or ge(x, a) with where(that, b, x) after it (ReLU, relu6 as where), or gt(x, a), mul(x,
 * b) and where(that gt, x, that mul) (LeakyReLU); with `tile` (the GEMM's AVX-512 tile),
 * an add may read a row of another input instead of a scalar. am_epi_row_scalars reads
 * the scalars of (img, r), one per step, into v; the kernel does each step's IEEE
 * operation as the vector code does (max/min: a when a >= b or a is NaN; as vmaxps /
 * vminps, scalar first, when no scalar is NaN): the same bits. */
bool am_epi_in_registers(am_epi *e, bool tile);
static inline void am_epi_row_scalars(const am_epi *e, int64_t img, int64_t r, float *v) {
    for (int j = 0; j < e->g->n_steps; j++) { /* (a row the tile adds, over: 0, unread) */
        int src = e->ops[j].other;
        v[j] = e->over && e->sc[src] ? 0.0f
                          : *(const float *)(const void *)(e->base[src] + img * e->sb[src] +
                                                           r * e->sr[src]);
    }
}
/* A transposed product's result (a convolution as yT[L x o] = im2col(x)^T W^T): as an
 * am_gemm_epi fn, writes rows [r0, r0 + nr) x columns [c0, c0 + nc) of tmp[L x o] as
 * y[o x L] = tmp^T, with e (if any) applied to image img of y (k_epilogue.c; AVX-512).
 * tmp may hold a part only: row l, column c at tmp[(l - l0) * o + c - c0]. */
typedef struct am_epi_tr {
    const struct am_epi *e;
    int64_t img, L, o;
    const float *tmp;
    float *y;
    int64_t l0, c0;
} am_epi_tr;
void am_epi_tr_fn(const void *ud, int64_t r0, int64_t nr, int64_t c0, int64_t nc);
/* Vectors of a depthwise kernel's register epilogue */
#define AM_EPI_REGS_VECS 8

/* The view of a product's result an epilogue of `op` needs (am_epi_init's d1, d2);
 * false for ops that take no epilogue. */
bool am_epi_dims(const am_op *op, int rank, int *d1, int *d2);

/* conv2d (in: x, w) whose groups each have one input channel (k_depthwise.c). */
amber_status am_conv_depthwise(am_ctx *ctx, const amber_tensor *in, const am_attrs *a,
                               amber_tensor *out);

/* conv2d (in: x, w) in float32 without groups, stride or dilation, over at most 80 taps,
 * output rows of at most 32 as wide as the input's (or 1x1 over at most 32 channels to 24
 * or more on an unpadded plane of 54x54 or more; or stride 2 over at most 3 channels and
 * 160 taps, rows of 16 or more), on AVX-512 (k_conv_small.c): the GEMM path's bits. */
bool am_conv_small_fits(const amber_tensor *in, const am_attrs *a, const amber_tensor *out);
amber_status am_conv_small(am_ctx *ctx, const amber_tensor *in, const am_attrs *a,
                           amber_tensor *out);

/* conv2d (in: x, w) with a 3x3 kernel, stride 1 or 2, no dilation or groups, in float32
 * on AVX-512 (AVX2: stride 1 by rows), computed directly (k_conv3x3.c; am_conv3x3_fits:
 * where it is the faster). *done false: nothing written, the GEMM's to do (AVX2 only). */
bool am_conv3x3_fits(const amber_tensor *in, const am_attrs *a, const amber_tensor *out);
amber_status am_conv3x3(am_ctx *ctx, const amber_tensor *in, const am_attrs *a,
                        amber_tensor *out, bool *done);

/* An epilogue's rows for a product: image img, rows from `row` (the product's row r is
 * the view's row + r). */
typedef struct am_epi_at {
    const struct am_epi *e;
    int64_t img, row;
} am_epi_at;

/* Where a GEMM reports finished blocks of C (all of k summed): fn(ud, r0, nr, c0, nc)
 * for rows and columns of C, each element exactly once, possibly from pool threads. With
 * regs (e->tile, float32), the AVX-512 tile applies the epilogue to its sums before it
 * stores them instead (the same bits; fn then only gets the blocks other kernels made). */
typedef struct am_gemm_epi {
    void (*fn)(const void *ud, int64_t r0, int64_t nr, int64_t c0, int64_t nc);
    const void *ud;
    const am_epi_at *regs;
} am_gemm_epi;

/* A register epilogue (am_epi.tile) for one GEMM tile: its first row r and column c in
 * the view's rows of at->img, its rows' scalars (n_steps each) from v. */
typedef struct am_tile_epi {
    const am_epi_at *at;
    const float *v;
    int64_t r, c;
} am_tile_epi;

/* Whether every tile of the float32 product C[m x n] = A[m x k] B (a convolution's, image
 * by image; kept A or not) applies e (am_epi.tile) in registers before it stores, so that
 * the result may be written over an input e reads (am_epi.over): AVX-512, one k block,
 * more rows than a GEMV, no NaN among the rows' scalars (nor in the first column of a
 * row the tile adds: as the tiles judge without over). */
bool am_gemm_over_ok(int64_t m, int64_t n, int64_t k, const struct am_epi *e);

/* Products of fewer multiply-adds than this run on the calling thread (handing work to
 * the pool costs about a microsecond even with the workers awake). */
#define AM_PARALLEL_MIN 131072.0
/* Multiply-adds below which a packed product stays on the calling thread (~4 us on one
 * core): a smaller share per thread would cost about what waking the pool costs. A GEMV
 * (at most two rows; reading B is what bounds it) splits from AM_PARALLEL_MIN. */
#define AM_GEMM_PARALLEL_MIN 524288.0

/* A batch of float matmul products: product t is out[t] = x[t] @ y[t], where x[t] and y[t]
 * start at element offsets stepping by bx, by (0 along broadcast dims) over the output's
 * batch shape `shape` (br dims), with strides rsa, csa, rsb, csb; out is contiguous. */
typedef struct am_matmul_batch {
    int br;
    const int64_t *shape;
    int64_t bx[AMBER_MAX_RANK], by[AMBER_MAX_RANK];
    int64_t m, n, k, rsa, csa, rsb, csb;
    const void *x, *y;
    void *out;
    bool f32; /* else float64 */
} am_matmul_batch;
/* Runs the products in turn, each with the pool's threads, or (float32) a product per
 * pool task when they are too small to split themselves (the bits are the same). */
amber_status am_matmul_batch_run(am_ctx *ctx, const am_matmul_batch *b);

/* GEMM (gemm.c): C[m,n] (= or +=) A[m,k] B[k,n]; A, B with arbitrary element strides
 * (rs, cs), C row-major with leading dimension ldc. */
amber_status am_gemm_f32(am_ctx *ctx, int64_t m, int64_t n, int64_t k, const float *A,
                         int64_t rsa, int64_t csa, const float *B, int64_t rsb, int64_t csb,
                         float *C, int64_t ldc, bool accumulate);
amber_status am_gemm_f64(am_ctx *ctx, int64_t m, int64_t n, int64_t k, const double *A,
                         int64_t rsa, int64_t csa, const double *B, int64_t rsb, int64_t csb,
                         double *C, int64_t ldc, bool accumulate);
/* B packed once (a weight): am_gemm_packed_len elements filled by am_gemm_pack_b. The
 * product equals am_gemm's bit for bit when B is given too (few-row products read B
 * directly); B may be NULL, and then every product uses the packed copy. */
size_t am_gemm_packed_len_f32(int64_t k, int64_t n);
size_t am_gemm_packed_len_f64(int64_t k, int64_t n);
void am_gemm_pack_b_f32(const float *B, int64_t rsb, int64_t csb, int64_t k, int64_t n,
                        float *dst);
void am_gemm_pack_b_f64(const double *B, int64_t rsb, int64_t csb, int64_t k, int64_t n,
                        double *dst);
amber_status am_gemm_prepacked_f32(am_ctx *ctx, int64_t m, int64_t n, int64_t k,
                                   const float *A, int64_t rsa, int64_t csa, const float *B,
                                   int64_t rsb, int64_t csb, const float *packed, float *C,
                                   int64_t ldc, bool accumulate);
amber_status am_gemm_prepacked_f64(am_ctx *ctx, int64_t m, int64_t n, int64_t k,
                                   const double *A, int64_t rsa, int64_t csa, const double *B,
                                   int64_t rsb, int64_t csb, const double *packed, double *C,
                                   int64_t ldc, bool accumulate);
/* A packed copy of the fixed, row-major B[k, n] kept in ctx->keep (made on first use),
 * or NULL when B is too narrow to pack or memory does not allow it. */
const float *am_gemm_kept_b_f32(am_ctx *ctx, int64_t n, int64_t k, const float *B);
const double *am_gemm_kept_b_f64(am_ctx *ctx, int64_t n, int64_t k, const double *B);
/* A packed copy of the fixed, row-major A[m, k] kept in ctx->keep (made on first use),
 * or NULL (few rows, or memory does not allow it); am_gemm_kept_a_run multiplies it
 * (A given too, row-major) by B: the same bits as am_gemm. */
const float *am_gemm_kept_a_f32(am_ctx *ctx, int64_t m, int64_t k, const float *A);
const double *am_gemm_kept_a_f64(am_ctx *ctx, int64_t m, int64_t k, const double *A);
amber_status am_gemm_kept_a_run_f32(am_ctx *ctx, int64_t m, int64_t n, int64_t k,
                                    const float *A, const float *akept, const float *B,
                                    int64_t rsb, int64_t csb, float *C, int64_t ldc,
                                    bool accumulate);
amber_status am_gemm_kept_a_run_f64(am_ctx *ctx, int64_t m, int64_t n, int64_t k,
                                    const double *A, const double *akept, const double *B,
                                    int64_t rsb, int64_t csb, double *C, int64_t ldc,
                                    bool accumulate);
void am_gemm_serial_kept_a_f32(int64_t m, int64_t n, int64_t k, const float *A,
                               const float *akept, const float *B, int64_t rsb, int64_t csb,
                               float *C, int64_t ldc, bool accumulate, float *scratch);
void am_gemm_serial_kept_a_f64(int64_t m, int64_t n, int64_t k, const double *A,
                               const double *akept, const double *B, int64_t rsb,
                               int64_t csb, double *C, int64_t ldc, bool accumulate,
                               double *scratch);
/* The same product on the calling thread only, with caller-provided scratch of
 * am_gemm_scratch_len elements (packed: whether `packed` will be given), so that it can
 * run inside a pool task. B may be NULL when packed is given. */
size_t am_gemm_scratch_len_f32(int64_t m, int64_t n, int64_t k, bool packed);
size_t am_gemm_scratch_len_f64(int64_t m, int64_t n, int64_t k, bool packed);
void am_gemm_serial_f32(int64_t m, int64_t n, int64_t k, const float *A, int64_t rsa,
                        int64_t csa, const float *B, int64_t rsb, int64_t csb,
                        const float *packed, float *C, int64_t ldc, bool accumulate,
                        float *scratch);
void am_gemm_serial_f64(int64_t m, int64_t n, int64_t k, const double *A, int64_t rsa,
                        int64_t csa, const double *B, int64_t rsb, int64_t csb,
                        const double *packed, double *C, int64_t ldc, bool accumulate,
                        double *scratch);
/* The product with the first k rows of a B packed (am_gemm_pack_b_*) with pk >= k rows;
 * B's columns as in am_gemm_serial_*. */
void am_gemm_serial_part_f32(int64_t m, int64_t n, int64_t k, const float *A, int64_t rsa,
                             int64_t csa, const float *packed, int64_t pk, float *C,
                             int64_t ldc, float *scratch);
void am_gemm_serial_part_f64(int64_t m, int64_t n, int64_t k, const double *A, int64_t rsa,
                             int64_t csa, const double *packed, int64_t pk, double *C,
                             int64_t ldc, double *scratch);
/* Depth blocks of the packed products: up to this k, each element of C is one chain of
 * multiply-adds, p ascending (past it, blocks of nearly equal size, added in turn). */
#define AM_GEMM_KC_F32 512
#define AM_GEMM_KC_F64 256
/* The same products reporting finished blocks of C to epi (NULL: none). */
#define AM_GEMM_EPI_DECLS(SUF, T)                                                          \
    amber_status am_gemm_epi_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k, const T *A, \
                                   int64_t rsa, int64_t csa, const T *B, int64_t rsb,      \
                                   int64_t csb, T *C, int64_t ldc, const am_gemm_epi *epi); \
    amber_status am_gemm_prepacked_epi_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k,  \
                                             const T *A, int64_t rsa, int64_t csa,          \
                                             const T *B, int64_t rsb, int64_t csb,          \
                                             const T *packed, T *C, int64_t ldc,            \
                                             const am_gemm_epi *epi);                       \
    amber_status am_gemm_kept_a_run_epi_##SUF(am_ctx *ctx, int64_t m, int64_t n, int64_t k, \
                                              const T *A, const T *akept, const T *B,       \
                                              int64_t rsb, int64_t csb, T *C, int64_t ldc,  \
                                              const am_gemm_epi *epi);                      \
    void am_gemm_serial_epi_##SUF(int64_t m, int64_t n, int64_t k, const T *A, int64_t rsa, \
                                  int64_t csa, const T *B, int64_t rsb, int64_t csb,       \
                                  const T *packed, T *C, int64_t ldc, T *scratch,          \
                                  const am_gemm_epi *epi);                                 \
    void am_gemm_serial_kept_a_epi_##SUF(int64_t m, int64_t n, int64_t k, const T *A,       \
                                         const T *akept, const T *B, int64_t rsb,          \
                                         int64_t csb, T *C, int64_t ldc, T *scratch,       \
                                         const am_gemm_epi *epi);
AM_GEMM_EPI_DECLS(f32, float)
AM_GEMM_EPI_DECLS(f64, double)
#undef AM_GEMM_EPI_DECLS

/* B made while it is packed (an implicit im2col): pack(ud, dst, stride, p0, kc, j0, nc, nr)
 * writes B[p0:p0+kc, j0:j0+nc] as nr-column slivers, sliver s at dst + s * stride
 * elements, each kc x nr row-major, zero past nc; from any thread. The product with A
 * (row-major; akept its am_gemm_kept_a copy or NULL) gives am_gemm's bits. */
typedef struct am_gemm_bsrc {
    void (*pack)(const void *ud, void *dst, int64_t stride, int64_t p0, int64_t kc,
                 int64_t j0, int64_t nc, int64_t nr);
    const void *ud;
} am_gemm_bsrc;
amber_status am_gemm_bsrc_epi_f32(am_ctx *ctx, int64_t m, int64_t n, int64_t k,
                                  const float *A, const float *akept, const am_gemm_bsrc *bsrc,
                                  float *C, int64_t ldc, const am_gemm_epi *epi);
amber_status am_gemm_bsrc_epi_f64(am_ctx *ctx, int64_t m, int64_t n, int64_t k,
                                  const double *A, const double *akept,
                                  const am_gemm_bsrc *bsrc, double *C, int64_t ldc,
                                  const am_gemm_epi *epi);

/* Kernel instruction set: the best the CPU has unless a test asks for a lower one.
 * Returns the one in use. Not for concurrent use with running kernels. */
enum { AM_GEMM_ISA_GENERIC = 0, AM_GEMM_ISA_AVX2 = 1, AM_GEMM_ISA_AVX512 = 2 };
int am_gemm_set_isa(int isa);
/* The best one this CPU and its operating system support (cpu.c). */
int am_cpu_best_isa(void);
/* The instruction set kernels use now (AM_GEMM_ISA_*): the CPU's best unless
 * am_gemm_set_isa chose a lower one. */
int am_cpu_isa(void);

#endif
