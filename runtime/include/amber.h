/* amber.h - the public C API of the amber runtime (libamber).
 *
 * Concepts: amber_tensor (a plain descriptor: dtype, shape, data pointer; never owns
 * memory), amber_model and amber_session (see docs/c-api.md). Every function that can
 * fail returns an amber_status; the library never aborts, exits or prints, and keeps no
 * global mutable state. */
#ifndef AMBER_H
#define AMBER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(AMBER_BUILDING) && defined(__GNUC__)
#define AMBER_API __attribute__((visibility("default")))
#else
#define AMBER_API
#endif

#define AMBER_VERSION_MAJOR 0
#define AMBER_VERSION_MINOR 1
#define AMBER_VERSION_PATCH 0

/* Highest opset version this runtime implements (2: opset 1 plus the control-flow
 * builtins cond, while and scan; 3: while with per-iteration outputs stacked along its
 * trip count; 4: the pooling primitives; 5: round, the dtypes float16, bfloat16, int8,
 * uint8 and int16, and an entry point may return a size its loop decides), the number of
 * primitives of opset 1 and the number this runtime implements (amber_op_count; both
 * written by scripts/gen_ops.py). */
#define AMBER_OPSET_VERSION 5
#define AMBER_OPSET_V1_PRIMITIVES 48
#define AMBER_PRIMITIVES 53

/* Largest tensor rank the runtime handles. */
#define AMBER_MAX_RANK 32

typedef enum amber_status {
    AMBER_OK = 0,
    AMBER_ERR_INVALID_ARGUMENT = 1, /* a NULL pointer, a wrong count, unaligned input data,
                                       a failed model */
    AMBER_ERR_NO_MEMORY = 2,        /* malloc failed */
    AMBER_ERR_LIMIT = 3,            /* a configured limit (memory, depth, ...) was hit */
    AMBER_ERR_IO = 4,               /* open/read/write/mmap failed */
    AMBER_ERR_FORMAT = 5,           /* malformed file or text */
    AMBER_ERR_VERSION = 6,          /* file needs a newer runtime */
    AMBER_ERR_INTEGRITY = 7,        /* a SHA-256 did not match */
    AMBER_ERR_NOT_FOUND = 8,        /* no such entry point, op or name */
    AMBER_ERR_DTYPE = 9,            /* an operand has a dtype the op does not accept, or a
                                       tensor's dtype is no amber_dtype value */
    AMBER_ERR_SHAPE = 10,           /* shapes or attributes are inconsistent */
    AMBER_ERR_OUT_OF_RANGE = 11,    /* an index value is outside its dimension */
    AMBER_ERR_INTERNAL = 12,        /* a bug in amber: please report it */
    AMBER_ERR_MISMATCH = 13         /* a test vector's outputs differ from the expected */
} amber_status;

/* Constant name of a status, e.g. "AMBER_ERR_SHAPE"; "AMBER_ERR_UNKNOWN" if invalid. */
AMBER_API const char *amber_status_name(amber_status status);

typedef enum amber_dtype {
    AMBER_FLOAT32 = 0,
    AMBER_FLOAT64 = 1,
    AMBER_INT32 = 2,
    AMBER_INT64 = 3,
    AMBER_BOOL = 4, /* one byte per element, 0 or 1 */
    /* opset 5: storage dtypes. Ops compute float16/bfloat16 in float32 and int8/uint8/int16
     * in int32, rounding (wrapping) the result back (docs/opset.md, "Data types"). */
    AMBER_FLOAT16 = 5,  /* IEEE 754 binary16 */
    AMBER_BFLOAT16 = 6, /* the upper 16 bits of a float32 */
    AMBER_INT8 = 7,
    AMBER_UINT8 = 8,
    AMBER_INT16 = 9
} amber_dtype;

/* "float32", "float64", "int32", "int64", "bool", "float16", "bfloat16", "int8", "uint8",
 * "int16"; NULL for an invalid value. */
AMBER_API const char *amber_dtype_name(amber_dtype dtype);
/* Bytes per element; 0 for an invalid value. */
AMBER_API size_t amber_dtype_size(amber_dtype dtype);

/* A dense, row-major (C order), little-endian tensor. The descriptor never owns `data`:
 * inputs point at caller memory (no copy is made), outputs at memory owned by the
 * session that produced them. A rank-0 tensor is a scalar with one element. */
typedef struct amber_tensor {
    amber_dtype dtype;
    int32_t rank;
    int64_t shape[AMBER_MAX_RANK];
    void *data;
} amber_tensor;

/* Validates dtype, rank and shape, and stores the element count and byte size
 * (either pointer may be NULL). Fails with AMBER_ERR_LIMIT if the size overflows. */
AMBER_API amber_status amber_tensor_size(const amber_tensor *t, int64_t *numel,
                                         size_t *nbytes);

/* The primitives this runtime implements (opset AMBER_OPSET_VERSION), in a fixed order. */
AMBER_API size_t amber_op_count(void);
/* Name of primitive i (0 <= i < amber_op_count()); NULL if i is out of range. */
AMBER_API const char *amber_op_name(size_t i);

/* Runtime version as "MAJOR.MINOR.PATCH". */
AMBER_API const char *amber_version(void);

/* Newest .amber container format version this runtime reads. */
#define AMBER_FORMAT_VERSION 1

/* ------------------------------------------------------------------ options */

/* Skip the per-tensor SHA-256 checks when opening (every other check still runs). */
#define AMBER_OPEN_SKIP_TENSOR_HASHES 1u
/* Run every elementwise op on its own instead of fusing chains of them into one pass
 * (results are bit-identical either way; for testing and measurements). */
#define AMBER_OPEN_NO_FUSION 2u
/* Keep every sum within the plain sum bound of docs/opset.md section 5: no Winograd F(2,3)
 * rows for float32 3x3 stride-1 convolutions (their row-product form; ~1.2x slower there). */
#define AMBER_OPEN_PLAIN_SUMS 4u

/* Options for opening a model. Initialise with amber_options_init, then change fields:
 * later versions only append fields, and struct_size tells the library which exist. */
typedef struct amber_options {
    uint32_t struct_size;         /* sizeof(amber_options) */
    uint32_t flags;               /* AMBER_OPEN_* bits */
    uint64_t max_header_bytes;    /* largest JSON header accepted (default 64 MiB) */
    uint64_t memory_limit;        /* bytes each of a session's two arenas may hold
                                     (2 GiB); 0 = none */
    int32_t threads;              /* threads per session for large kernels (matmul,
                                     conv); 0 = one per core, 1 = the calling thread only */
    int32_t max_call_depth;       /* nesting of function calls (default 256, at most 1000) */
    int64_t max_loop_iterations;  /* iterations of one while loop, length of one scan
                                     (1000000; 0 = none) */
    int64_t max_run_iterations;   /* loop iterations of one run, all loops together,
                                     nested ones multiplying (100000000; 0 = none) */
    int64_t max_run_calls;        /* function executions of one run by call and cond
                                     nodes, all depths together (1000000; 0 = none) */
} amber_options;

/* Fills *opts with the defaults. */
AMBER_API amber_status amber_options_init(amber_options *opts);

/* ------------------------------------------------------------------ model */

/* An opened .amber file: validated (bounds, hashes), immutable, and safe to share
 * between threads. Tensor data stays in the file's read-only mapping (or the caller's
 * buffer) and is never copied. */
typedef struct amber_model amber_model;

/* Opens and validates a file. On failure *out is still set (unless memory for the model
 * itself could not be allocated, then it is NULL): amber_model_error(*out) explains the
 * failure, and the model must be closed. opts may be NULL for the defaults. */
AMBER_API amber_status amber_model_open_file(const char *path, const amber_options *opts,
                                             amber_model **out);
/* Same, from bytes in memory. The buffer is used in place: it must stay valid and
 * unchanged until amber_model_close, and be aligned to 8 bytes (64 recommended). A NULL
 * data pointer is AMBER_ERR_INVALID_ARGUMENT, whatever the size. */
AMBER_API amber_status amber_model_open_memory(const void *data, size_t size,
                                               const amber_options *opts, amber_model **out);
/* Releases the model and unmaps its file. NULL is allowed. Sessions must be gone. */
AMBER_API void amber_model_close(amber_model *model);
/* Why opening failed ("" if it did not). Valid until the model is closed. */
AMBER_API const char *amber_model_error(const amber_model *model);

/* The container's format version and its JSON header text (not NUL-terminated; valid
 * until close), for metadata that has no dedicated accessor. */
AMBER_API amber_status amber_model_format_version(const amber_model *model, uint32_t *version);
AMBER_API amber_status amber_model_header(const amber_model *model, const char **json,
                                          size_t *length);

/* The stored tensors (weights, test vectors), in file order. The returned views point
 * into read-only memory owned by the model: never write through them. name is
 * NUL-terminated and valid until close. */
AMBER_API amber_status amber_model_tensor_count(const amber_model *model, size_t *count);
AMBER_API amber_status amber_model_tensor(const amber_model *model, size_t index,
                                          const char **name, amber_tensor *view);
/* AMBER_ERR_NOT_FOUND if no tensor has this name. */
AMBER_API amber_status amber_model_find_tensor(const amber_model *model, const char *name,
                                               amber_tensor *view);

/* ------------------------------------------------------------------ entry points */

/* A parameter or result of an entry point. A dim is static (shape[i] >= 0, dims[i] is
 * NULL) or symbolic (shape[i] = -1, dims[i] is its name such as "batch", or for outputs
 * possibly an expression such as "2*batch"). Strings are owned by the model. */
typedef struct amber_port {
    const char *name;
    amber_dtype dtype;
    int32_t rank;
    int64_t shape[AMBER_MAX_RANK];
    const char *dims[AMBER_MAX_RANK];
} amber_port;

/* Opset version of the file's program; 0 for a container without a program. */
AMBER_API amber_status amber_model_opset_version(const amber_model *model, int64_t *version);
/* Entry points, in file order ("forward" is the default one by convention). */
AMBER_API amber_status amber_model_entry_count(const amber_model *model, size_t *count);
AMBER_API amber_status amber_model_entry_name(const amber_model *model, size_t index,
                                              const char **name);
/* Number of inputs and outputs of an entry point (AMBER_ERR_NOT_FOUND if unknown). */
AMBER_API amber_status amber_model_entry_arity(const amber_model *model, const char *entry,
                                               size_t *n_inputs, size_t *n_outputs);
AMBER_API amber_status amber_model_entry_input(const amber_model *model, const char *entry,
                                               size_t index, amber_port *port);
AMBER_API amber_status amber_model_entry_output(const amber_model *model, const char *entry,
                                                size_t index, amber_port *port);

/* ------------------------------------------------------------------ session */

/* Per-thread execution state of one model: memory plans (cached per binding of the
 * symbolic dims), the planned block and arena (reused across runs), the values computed
 * from weights once, and the last error. Use a session from one thread at a time;
 * create one per thread. */
typedef struct amber_session amber_session;

/* Creates a session (*out is NULL on failure) with its intra-op threads (options.threads
 * of the model). The model must outlive the session. */
AMBER_API amber_status amber_session_create(const amber_model *model, amber_session **out);
/* Frees a session and its threads. NULL is allowed (does nothing). */
AMBER_API void amber_session_free(amber_session *session);
/* Message of the session's last failure ("" after a success; "session is NULL" for NULL).
 * The string belongs to the session: it stays valid and unchanged until the next
 * amber_session_run, amber_session_verify or amber_session_free on that session. Names
 * from the file appear in it with control characters escaped (\xNN). */
AMBER_API const char *amber_session_error(const amber_session *session);

/* Runs an entry point. inputs[i] is the entry's i-th input (dtype and shape must match
 * its signature; symbolic dims take the given sizes); the caller's data is read in place
 * and must be aligned to its element size (else AMBER_ERR_INVALID_ARGUMENT: copy it).
 * outputs[0..n_outputs) receive descriptors of the results: their data is owned by the
 * session (or is an input's or the model's memory) and stays valid until the next run
 * (amber_session_run or amber_session_verify) or amber_session_free. Treat it as
 * read-only. After a failed run every outputs[i] is zeroed (rank 0, data NULL). Passing
 * as entry the string amber_model_entry_name gave skips the search by name when that
 * entry point was the session's last. */
AMBER_API amber_status amber_session_run(amber_session *session, const char *entry,
                                         const amber_tensor *inputs, size_t n_inputs,
                                         amber_tensor *outputs, size_t n_outputs);

/* Runs an entry point as amber_session_run does, writing results into the caller's
 * memory: where outputs[i].data is not NULL on entry, outputs[i] (dtype, rank, shape,
 * data aligned to the element size) describes memory of the caller's for output i. If
 * the result has that dtype and shape it is computed there (or copied there when other
 * memory holds it, such as an input the program returns) and outputs[i].data is the
 * caller's pointer afterwards; otherwise outputs[i] describes the session's memory, as
 * after amber_session_run (compare data to tell). Where outputs[i].data is NULL the
 * result stays in the session's memory. After a failed run the caller's memory holds
 * unspecified values and every outputs[i] is zeroed. */
AMBER_API amber_status amber_session_run_into(amber_session *session, const char *entry,
                                              const amber_tensor *inputs, size_t n_inputs,
                                              amber_tensor *outputs, size_t n_outputs);

/* What a session has done and holds (see docs/c-api.md, "Memory"). Set struct_size to
 * sizeof(amber_session_stats) before the call: later versions only append fields, and
 * the library fills only those struct_size covers. */
typedef struct amber_session_stats {
    uint32_t struct_size;
    uint32_t fused_groups;       /* fused elementwise groups in the model's program */
    uint64_t fused_nodes;        /* op nodes in those groups */
    uint64_t runs;               /* runs started (past the argument checks; test vectors too) */
    uint64_t plans;              /* memory plans computed: first plans and re-plans */
    uint64_t plan_reuses;        /* function runs that found their plan cached */
    uint64_t plan_bytes;         /* block size of the entry function's plan, last run */
    uint64_t plan_value_bytes;   /* that plan's values' sizes added up (no sharing) */
    uint64_t block_bytes;        /* the session's planned block (the largest plan yet) */
    uint64_t cached_bytes;       /* values computed from weights once, kept */
    uint64_t arena_bytes;        /* values arena now: results, loop state, bookkeeping */
    uint64_t arena_peak_bytes;   /* the most the values arena has held */
    uint64_t fused_attention;    /* attentions run by one fused kernel (docs/c-api.md) */
    uint64_t fused_layer_norms;  /* layer norms run by one fused kernel */
} amber_session_stats;

/* Fills *stats (its struct_size must be set; AMBER_ERR_INVALID_ARGUMENT if 0). */
AMBER_API amber_status amber_session_get_stats(const amber_session *session,
                                               amber_session_stats *stats);

/* Runs the file's test vectors. *n_vectors and *n_failed (either may be NULL) receive the
 * counts; the status is AMBER_ERR_MISMATCH if a vector failed (the session error names
 * the first failure and its largest error) or the status of a run that failed. Each
 * vector is a run of the session: outputs of an earlier amber_session_run are invalid
 * afterwards. */
AMBER_API amber_status amber_session_verify(amber_session *session, size_t *n_vectors,
                                            size_t *n_failed);

/* ------------------------------------------------------------------ single kernels */

/* One primitive at a time on caller memory, outside any model: the kernels sessions run,
 * for eager front ends (so eager and exported results are the same bits). A context
 * holds intra-op threads, scratch memory and the last error; use it from one thread at a
 * time. A prepared kernel (an op with decoded attributes) is immutable and may be used
 * with any context. */
typedef struct amber_kernel_context amber_kernel_context;
typedef struct amber_kernel amber_kernel;

/* threads: for large kernels (matmul, conv); 0 = one per core, 1 = the calling thread. */
AMBER_API amber_status amber_kernel_context_create(int32_t threads,
                                                   amber_kernel_context **out);
AMBER_API void amber_kernel_context_free(amber_kernel_context *ctx);
/* Message of the context's last failure. */
AMBER_API const char *amber_kernel_context_error(const amber_kernel_context *ctx);
/* Threads the context uses (0 came out as the number of cores). */
AMBER_API int32_t amber_kernel_context_threads(const amber_kernel_context *ctx);
/* Prepares primitive `op` (an amber_op_name) with its attributes as a JSON object, as a
 * node of a .amber file holds them (NULL or "" for none). */
AMBER_API amber_status amber_kernel_prepare(amber_kernel_context *ctx, const char *op,
                                            const char *attrs_json, amber_kernel **out);
AMBER_API void amber_kernel_free(amber_kernel *kernel);
/* Runs a prepared kernel on inputs[0..n_inputs). With output->data NULL, only fills in
 * the result's dtype, rank and shape. Otherwise output must describe exactly that result
 * (AMBER_ERR_SHAPE if not) and its data is where the result is written; it must not
 * overlap an input. */
AMBER_API amber_status amber_kernel_run(amber_kernel_context *ctx, const amber_kernel *kernel,
                                        const amber_tensor *inputs, size_t n_inputs,
                                        amber_tensor *output);
/* The same with inputs laid out by strides: strides[i] is NULL (row-major) or input i's
 * stride per dim in elements (>= 0; 0 repeats). Float matmul and the elementwise ops
 * (unary, binary, comparisons, where, cast) take strided inputs, with the same bits as
 * on row-major copies; other ops fail with AMBER_ERR_INVALID_ARGUMENT. strides NULL is
 * amber_kernel_run. */
AMBER_API amber_status amber_kernel_run_strided(amber_kernel_context *ctx,
                                                const amber_kernel *kernel,
                                                const amber_tensor *inputs,
                                                const int64_t *const *strides,
                                                size_t n_inputs, amber_tensor *output);

#ifdef __cplusplus
}
#endif
#endif /* AMBER_H */
