/* libFuzzer harness of the loader: any byte string must open or fail with a status, and
 * an opened model must survive introspection of its tensors and entry points, a run of
 * every entry point on zero-filled inputs, and its test vectors, without a sanitizer
 * report. Each input is tried twice: as is, and with the preamble's file length and
 * header digest recomputed (tensor digests skipped), so that mutations reach the JSON
 * parser, the program loader and the interpreter instead of stopping at a hash.
 * Build and run: `make -C runtime/fuzz run SECONDS=60` (see docs/security.md). */
#include "amber.h"
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bounds that keep one input's work small: a hostile program cannot hang or exhaust. */
#define FUZZ_MEMORY_LIMIT ((uint64_t)16 << 20)
#define FUZZ_MAX_INPUT_BYTES ((size_t)1 << 20)
#define FUZZ_SYMBOLIC_DIM 2

static volatile uint8_t sink;

/* Reads every byte of a view, so ASan checks that it lies inside the buffer. */
static void touch(const amber_tensor *t) {
    size_t nbytes = 0;
    if (amber_tensor_size(t, NULL, &nbytes) != AMBER_OK || !t->data) return;
    const uint8_t *p = (const uint8_t *)t->data;
    uint8_t acc = 0;
    for (size_t i = 0; i < nbytes; i++) acc ^= p[i];
    sink = acc;
}

static void touch_port(const amber_port *p) {
    size_t acc = p->name ? strlen(p->name) : 0;
    for (int32_t d = 0; d < p->rank && d < AMBER_MAX_RANK; d++)
        if (p->dims[d]) acc += strlen(p->dims[d]);
    sink = (uint8_t)acc;
}

static void introspect(const amber_model *model) {
    uint32_t version;
    int64_t opset;
    const char *json;
    size_t len, count;
    (void)amber_model_format_version(model, &version);
    (void)amber_model_opset_version(model, &opset);
    if (amber_model_header(model, &json, &len) == AMBER_OK && len) sink = (uint8_t)json[len - 1];
    if (amber_model_tensor_count(model, &count) == AMBER_OK) {
        for (size_t i = 0; i < count; i++) {
            const char *name;
            amber_tensor view, again;
            if (amber_model_tensor(model, i, &name, &view) != AMBER_OK) continue;
            touch(&view);
            (void)amber_model_find_tensor(model, name, &again);
        }
    }
    (void)amber_model_find_tensor(model, "", NULL);
}

/* Runs one entry point on zero-filled inputs (symbolic dims take FUZZ_SYMBOLIC_DIM). */
static void run_entry(const amber_model *model, amber_session *session, const char *entry) {
    size_t n_in, n_out;
    if (amber_model_entry_arity(model, entry, &n_in, &n_out) != AMBER_OK) return;
    amber_port port;
    for (size_t i = 0; i < n_out; i++)
        if (amber_model_entry_output(model, entry, i, &port) == AMBER_OK) touch_port(&port);
    (void)amber_model_entry_input(model, entry, n_in, &port);   /* out of range */
    (void)amber_model_entry_output(model, entry, n_out, &port); /* out of range */
    if (n_in > 64 || n_out > 64) return;
    amber_tensor in[64], out[64];
    void *bufs[64] = {0};
    size_t total = 0;
    bool ok = true;
    for (size_t i = 0; i < n_in && ok; i++) {
        ok = amber_model_entry_input(model, entry, i, &port) == AMBER_OK;
        if (!ok) break;
        touch_port(&port);
        memset(&in[i], 0, sizeof in[i]);
        in[i].dtype = port.dtype;
        in[i].rank = port.rank;
        for (int32_t d = 0; d < port.rank; d++)
            in[i].shape[d] = port.shape[d] < 0 ? FUZZ_SYMBOLIC_DIM : port.shape[d];
        size_t nbytes = 0;
        ok = amber_tensor_size(&in[i], NULL, &nbytes) == AMBER_OK &&
             nbytes <= FUZZ_MAX_INPUT_BYTES - total;
        if (!ok) break;
        total += nbytes;
        bufs[i] = calloc(1, nbytes ? nbytes : 1);
        ok = bufs[i] != NULL;
        in[i].data = bufs[i];
    }
    if (ok && amber_session_run(session, entry, in, n_in, out, n_out) == AMBER_OK)
        for (size_t i = 0; i < n_out; i++) touch(&out[i]);
    for (size_t i = 0; i < n_in; i++) free(bufs[i]);
}

static void try_open(const void *buf, size_t size, uint32_t flags) {
    amber_options opts;
    amber_options_init(&opts);
    opts.flags = flags;
    opts.memory_limit = FUZZ_MEMORY_LIMIT;
    opts.threads = 1;
    opts.max_call_depth = 32;
    opts.max_loop_iterations = 256;
    opts.max_run_iterations = 4096;
    opts.max_run_calls = 4096;
    amber_model *model = NULL;
    if (amber_model_open_memory(buf, size, &opts, &model) == AMBER_OK) {
        introspect(model);
        amber_session *session = NULL;
        if (amber_session_create(model, &session) == AMBER_OK) {
            size_t n_entries = 0;
            if (amber_model_entry_count(model, &n_entries) == AMBER_OK) {
                for (size_t i = 0; i < n_entries && i < 16; i++) {
                    const char *entry;
                    if (amber_model_entry_name(model, i, &entry) == AMBER_OK)
                        run_entry(model, session, entry);
                }
            }
            size_t n, failed;
            (void)amber_session_verify(session, &n, &failed);
            sink = (uint8_t)strlen(amber_session_error(session));
            amber_session_free(session);
        }
    } else if (model) {
        sink = (uint8_t)strlen(amber_model_error(model));
    }
    amber_model_close(model);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The loader needs an 8-byte aligned buffer of exactly `size` bytes (ASan sees any
     * read past its end). */
    void *buf = NULL;
    if (posix_memalign(&buf, 64, size ? size : 1) != 0) return 0;
    if (size) memcpy(buf, data, size);
    try_open(buf, size, 0);
    uint8_t *b = (uint8_t *)buf;
    if (size >= 64) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | b[16 + i];
        for (int i = 0; i < 8; i++) b[24 + i] = (uint8_t)((uint64_t)size >> (8 * i));
        if (hl <= size - 64) {
            am_sha256_digest(b + 64, (size_t)hl, b + 32);
            try_open(buf, size, AMBER_OPEN_SKIP_TENSOR_HASHES);
        }
    }
    free(buf);
    return 0;
}
