/* amber-run: command-line front end of libamber (public API only, plus the .npy helper).
 *
 *   amber-run [--skip-hashes] FILE                    list entry points and tensors
 *   amber-run [--skip-hashes] FILE --verify           run the file's test vectors
 *   amber-run [--skip-hashes] FILE --entry NAME [--input NAME=IN.npy]... --output DIR
 *                                                     run NAME, write DIR/<output>.npy
 *   amber-run [--skip-hashes] FILE --tensor NAME OUT.npy   write one stored tensor
 *
 * Exit status: 0 success, 1 failure (rejected file, failed run or test vector), 64 usage. */
#include "amber.h"
#include "internal.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 256

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [--skip-hashes] FILE\n"
            "       %s [--skip-hashes] FILE --verify\n"
            "       %s [--skip-hashes] FILE --entry NAME [--input NAME=IN.npy]... --output DIR\n"
            "       %s [--skip-hashes] FILE --tensor NAME OUT.npy\n",
            argv0, argv0, argv0, argv0);
    return 64;
}

static void print_port(const amber_port *p) {
    printf("%s: %s[", p->name, amber_dtype_name(p->dtype));
    for (int i = 0; i < p->rank; i++) {
        if (p->dims[i]) printf("%s%s", i ? ", " : "", p->dims[i]);
        else printf("%s%lld", i ? ", " : "", (long long)p->shape[i]);
    }
    printf("]");
}

static int list(amber_model *model, const char *path) {
    uint32_t version = 0;
    int64_t opset = 0;
    size_t n = 0, ne = 0;
    amber_model_format_version(model, &version);
    amber_model_opset_version(model, &opset);
    amber_model_tensor_count(model, &n);
    amber_model_entry_count(model, &ne);
    printf("%s: amber format %u, opset %lld, %zu entry point%s, %zu tensor%s\n", path, version,
           (long long)opset, ne, ne == 1 ? "" : "s", n, n == 1 ? "" : "s");
    for (size_t k = 0; k < ne; k++) {
        const char *name;
        size_t ni, no;
        amber_model_entry_name(model, k, &name);
        amber_model_entry_arity(model, name, &ni, &no);
        printf("  entry %s(", name);
        for (size_t i = 0; i < ni; i++) {
            amber_port p;
            amber_model_entry_input(model, name, i, &p);
            if (i) printf(", ");
            print_port(&p);
        }
        printf(") -> (");
        for (size_t i = 0; i < no; i++) {
            amber_port p;
            amber_model_entry_output(model, name, i, &p);
            if (i) printf(", ");
            print_port(&p);
        }
        printf(")\n");
    }
    for (size_t k = 0; k < n; k++) {
        const char *name;
        amber_tensor t;
        char shape[512];
        amber_model_tensor(model, k, &name, &t);
        printf("  tensor %s %s%s\n", name, amber_dtype_name(t.dtype),
               am_shape_str(t.shape, t.rank, shape, sizeof shape));
    }
    return 0;
}

static int run(amber_model *model, const char *entry, int n_in, char **in_specs, const char *dir) {
    size_t ni, no;
    if (amber_model_entry_arity(model, entry, &ni, &no) != AMBER_OK) {
        fprintf(stderr, "amber-run: no entry point named \"%s\"\n", entry);
        return 1;
    }
    if ((size_t)n_in != ni || ni > MAX_ARGS || no > MAX_ARGS) {
        fprintf(stderr, "amber-run: %s takes %zu inputs, %d given\n", entry, ni, n_in);
        return 1;
    }
    amber_tensor inputs[MAX_ARGS], outputs[MAX_ARGS];
    void *owned[MAX_ARGS] = {0};
    am_error err;
    am_error_clear(&err);
    int rc = 0;
    /* Inputs are matched by name to the signature's order. */
    for (size_t i = 0; i < ni && rc == 0; i++) {
        amber_port p;
        amber_model_entry_input(model, entry, i, &p);
        size_t len = strlen(p.name);
        const char *file = NULL;
        for (int k = 0; k < n_in; k++)
            if (!strncmp(in_specs[k], p.name, len) && in_specs[k][len] == '=') file = in_specs[k] + len + 1;
        if (!file) {
            fprintf(stderr, "amber-run: missing --input %s=FILE.npy\n", p.name);
            rc = 1;
        } else if (am_npy_read_file(file, &inputs[i], &owned[i], &err) != AMBER_OK) {
            fprintf(stderr, "amber-run: %s\n", err.msg);
            rc = 1;
        }
    }
    amber_session *session = NULL;
    if (rc == 0 && amber_session_create(model, &session) != AMBER_OK) {
        fprintf(stderr, "amber-run: cannot create a session\n");
        rc = 1;
    }
    if (rc == 0) {
        amber_status st = amber_session_run(session, entry, inputs, ni, outputs, no);
        if (st != AMBER_OK) {
            fprintf(stderr, "amber-run: %s: %s\n", amber_status_name(st), amber_session_error(session));
            rc = 1;
        }
        for (size_t i = 0; rc == 0 && i < no; i++) {
            amber_port p;
            char path[4096];
            amber_model_entry_output(model, entry, i, &p);
            snprintf(path, sizeof path, "%s/%s.npy", dir, p.name);
            if (am_npy_write_file(path, &outputs[i], &err) != AMBER_OK) {
                fprintf(stderr, "amber-run: %s\n", err.msg);
                rc = 1;
            }
        }
    }
    amber_session_free(session);
    for (size_t i = 0; i < ni; i++) free(owned[i]);
    return rc;
}

static int verify(amber_model *model) {
    amber_session *session = NULL;
    if (amber_session_create(model, &session) != AMBER_OK) {
        fprintf(stderr, "amber-run: cannot create a session\n");
        return 1;
    }
    size_t n = 0, failed = 0;
    amber_status st = amber_session_verify(session, &n, &failed);
    if (st == AMBER_OK) printf("%zu test vector%s passed\n", n, n == 1 ? "" : "s");
    else fprintf(stderr, "amber-run: %zu of %zu test vectors failed; %s: %s\n", failed, n,
                 amber_status_name(st), amber_session_error(session));
    amber_session_free(session);
    return st == AMBER_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    amber_options opts;
    amber_options_init(&opts);
    int i = 1;
    if (i < argc && !strcmp(argv[i], "--skip-hashes")) {
        opts.flags |= AMBER_OPEN_SKIP_TENSOR_HASHES;
        i++;
    }
    if (i >= argc) return usage(argv[0]);
    const char *path = argv[i++];
    enum { LIST, VERIFY, RUN, TENSOR } mode = LIST;
    const char *entry = NULL, *dir = NULL, *tensor = NULL, *out = NULL;
    char *inputs[MAX_ARGS];
    int n_in = 0;
    if (i < argc && !strcmp(argv[i], "--verify")) {
        mode = VERIFY;
        if (++i != argc) return usage(argv[0]);
    } else if (i < argc && !strcmp(argv[i], "--tensor")) {
        if (i + 3 != argc) return usage(argv[0]);
        mode = TENSOR;
        tensor = argv[i + 1];
        out = argv[i + 2];
    } else if (i < argc) {
        mode = RUN;
        for (; i < argc; i++) {
            if (!strcmp(argv[i], "--entry") && i + 1 < argc) entry = argv[++i];
            else if (!strcmp(argv[i], "--output") && i + 1 < argc) dir = argv[++i];
            else if (!strcmp(argv[i], "--input") && i + 1 < argc && n_in < MAX_ARGS) inputs[n_in++] = argv[++i];
            else return usage(argv[0]);
        }
        if (!entry || !dir) return usage(argv[0]);
    }
    amber_model *model = NULL;
    amber_status st = amber_model_open_file(path, &opts, &model);
    if (st != AMBER_OK) {
        fprintf(stderr, "amber-run: %s: %s\n", amber_status_name(st),
                model ? amber_model_error(model) : "out of memory");
        amber_model_close(model);
        return 1;
    }
    int rc = 0;
    if (mode == LIST) {
        rc = list(model, path);
    } else if (mode == VERIFY) {
        rc = verify(model);
    } else if (mode == RUN) {
        rc = run(model, entry, n_in, inputs, dir);
    } else {
        amber_tensor t;
        am_error err;
        am_error_clear(&err);
        if (amber_model_find_tensor(model, tensor, &t) != AMBER_OK) {
            fprintf(stderr, "amber-run: no tensor named \"%s\" in %s\n", tensor, path);
            rc = 1;
        } else if (am_npy_write_file(out, &t, &err) != AMBER_OK) {
            fprintf(stderr, "amber-run: %s\n", err.msg);
            rc = 1;
        }
    }
    amber_model_close(model);
    return rc;
}
