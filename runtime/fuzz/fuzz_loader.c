/* libFuzzer harness: any byte string given to the loader must open or fail with a
 * status, and an opened model's test vectors must run or fail with a status, without
 * a sanitizer report. Each input is tried twice: as is, and with the preamble's file
 * length and header digest recomputed (tensor digests skipped), so that mutations reach
 * the JSON parser, the program loader and the interpreter instead of stopping at a hash.
 * Build with -DAMBER_FUZZ=ON (clang) and run `cmake --build . -t fuzz`. */
#include "amber.h"
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void try_open(void *buf, size_t size, uint32_t flags) {
    amber_options opts;
    amber_options_init(&opts);
    opts.flags = flags;
    opts.memory_limit = 64u << 20; /* keep hostile programs' allocations bounded */
    opts.max_call_depth = 64;
    amber_model *model = NULL;
    if (amber_model_open_memory(buf, size, &opts, &model) == AMBER_OK) {
        amber_session *session = NULL;
        if (amber_session_create(model, &session) == AMBER_OK) {
            size_t n, failed;
            (void)amber_session_verify(session, &n, &failed);
            amber_session_free(session);
        }
    }
    amber_model_close(model);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
