/* Test-only: runs one primitive on .npy inputs and writes the .npy result.
 *   amber-kernel-test OP ATTRS_JSON OUT.npy IN.npy...
 * Exit 0 on success; otherwise prints "STATUS_NAME: message" to stderr and exits 2.
 * Uses internal headers: it is not part of the public API. */
#include "npy.h"
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUTS 64

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
    am_arena out_arena, scratch;
    am_arena_init(&out_arena, 0);
    am_arena_init(&scratch, 0);
    amber_status st = AMBER_OK;
    const am_op *op = am_op_find(argv[1]);
    if (!op) st = am_fail(&err, AMBER_ERR_NOT_FOUND, "unknown op %s", argv[1]);
    for (int i = 0; st == AMBER_OK && i < n; i++)
        st = am_npy_read_file(argv[4 + i], &in[i], &owned[i], &err);
    am_json_limits lim = {1 << 20, 16, 1 << 16};
    if (st == AMBER_OK) st = am_json_parse(argv[2], strlen(argv[2]), &lim, &doc, &err);
    am_attrs attrs;
    if (st == AMBER_OK) st = am_attrs_decode(op, &doc, am_json_root(&doc), NULL, &attrs, &err);
    amber_tensor out;
    am_pool *pool = NULL;
    am_pool_create(2, &pool, &err); /* exercise the threaded kernel paths */
    am_ctx ctx = {&err, &scratch, pool};
    if (st == AMBER_OK) st = am_op_run(op, &ctx, &out_arena, in, n, &attrs, &out);
    if (st == AMBER_OK) st = am_npy_write_file(argv[3], &out, &err);
    for (int i = 0; i < n; i++) free(owned[i]);
    am_json_free(&doc);
    am_arena_free(&out_arena);
    am_arena_free(&scratch);
    am_pool_free(pool);
    if (st != AMBER_OK) {
        fprintf(stderr, "%s: %s\n", amber_status_name(st), err.msg);
        return 2;
    }
    return 0;
}
