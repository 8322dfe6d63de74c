/* Test-only: runs one primitive on .npy inputs and writes the .npy result.
 *   amber-kernel-test OP ATTRS_JSON OUT.npy IN.npy...
 * Exit 0 on success; otherwise prints "STATUS_NAME: message" to stderr and exits 2; exit 3
 * when runs on one and two threads (with and without kept data) differ.
 * Uses internal headers: it is not part of the public API. */
#include "npy.h"
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUTS 64

static amber_status keep_alloc(void *owner, size_t size, void **out) {
    (void)owner;
    *out = aligned_alloc(64, (size + 63) & ~(size_t)63);
    return *out ? AMBER_OK : AMBER_ERR_NO_MEMORY;
}

static void keep_release(void *owner, void *data, size_t size) {
    (void)owner, (void)size;
    free(data);
}

int main(int argc, char **argv) {
    if (argc < 4 || argc - 4 > MAX_INPUTS) {
        fprintf(stderr, "usage: %s OP ATTRS_JSON OUT.npy IN.npy...\n", argv[0]);
        return 64;
    }
    am_error err;
    am_error_clear(&err);
    amber_tensor in[MAX_INPUTS];
    void *owned[MAX_INPUTS] = {0};
    int n = argc - 4;
    am_json_doc doc = {0};
    am_arena scratch;
    am_arena_init(&scratch, 0);
    int rc = 0;
    amber_status st = AMBER_OK;
    const am_op *op = am_op_find(argv[1]);
    if (!op) st = am_fail(&err, AMBER_ERR_NOT_FOUND, "unknown op %s", argv[1]);
    for (int i = 0; st == AMBER_OK && i < n; i++)
        st = am_npy_read_file(argv[4 + i], &in[i], &owned[i], &err);
    am_json_limits lim = {1 << 20, 16, 1 << 16};
    if (st == AMBER_OK) st = am_json_parse(argv[2], strlen(argv[2]), &lim, &doc, &err);
    am_attrs attrs;
    if (st == AMBER_OK) st = am_attrs_decode(op, &doc, am_json_root(&doc), NULL, &attrs, &err);
    /* Three runs that must agree bit for bit: on the calling thread; on two threads with
     * every input marked fixed (kernels may derive and keep data, e.g. a packed weight);
     * and again, now using what the second run kept. The last one's result is written. */
    amber_tensor out;
    am_pool *pool = NULL;
    am_pool_create(2, AM_POOL_SPIN_SESSION_NS, 0.0, &pool, &err);
    am_keep keep;
    am_keep_init(&keep, keep_alloc, keep_release, NULL);
    am_arena outs[3];
    amber_tensor res[3];
    amber_status sts[3];
    for (int r = 0; r < 3; r++) {
        am_arena_init(&outs[r], 0);
        am_ctx ctx = {&err, &scratch, r ? pool : NULL, r ? ~0u : 0u, r ? &keep : NULL, NULL, false};
        sts[r] = st == AMBER_OK ? am_op_run(op, &ctx, &outs[r], in, n, &attrs, &res[r]) : st;
        am_arena_reset(&scratch);
    }
    if (st == AMBER_OK) st = sts[2];
    for (int r = 0; st == AMBER_OK && r < 2; r++) {
        size_t a = 0, b = 0;
        if (sts[r] != AMBER_OK || am_tensor_check(&res[r], NULL, &a, &err) != AMBER_OK ||
            am_tensor_check(&res[2], NULL, &b, &err) != AMBER_OK || a != b ||
            res[r].rank != res[2].rank || (a && memcmp(res[r].data, res[2].data, a))) {
            fprintf(stderr, "MISMATCH: run %d (%s) and run 2 differ\n", r,
                    r ? "two threads, packing" : "one thread");
            rc = 3;
        }
    }
    out = res[2];
    if (st == AMBER_OK && rc == 0) st = am_npy_write_file(argv[3], &out, &err);
    for (int r = 0; r < 3; r++) am_arena_free(&outs[r]);
    am_keep_free(&keep);
    for (int i = 0; i < n; i++) free(owned[i]);
    am_json_free(&doc);
    am_arena_free(&scratch);
    am_pool_free(pool);
    if (rc) return rc;
    if (st != AMBER_OK) {
        fprintf(stderr, "%s: %s\n", amber_status_name(st), err.msg);
        return 2;
    }
    return 0;
}
