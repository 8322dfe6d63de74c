/* amber-run: command-line front end of libamber (public API only, plus the .npy helper).
 *
 *   amber-run [--skip-hashes] FILE                    list entry points and tensors
 *   amber-run [--skip-hashes] FILE --verify           run the file's test vectors
 *   amber-run [--skip-hashes] FILE --entry NAME [--input NAME=IN.npy]... --output DIR
 *                                                     run NAME, write DIR/<output>.npy
 *   amber-run [--skip-hashes] FILE --tensor NAME OUT.npy   write one stored tensor
 *
 * Options may come before or after FILE; "--" ends the options. Names from the file are
 * printed with control characters escaped (a file cannot drive the terminal), and .npy
 * files are written to a temporary file then renamed, never over FILE or an input.
 * Exit status: 0 success, 1 failure (rejected file, failed run or test vector), 64 usage. */
#include "amber.h"
#include "internal.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ARGS 256

static int usage(const char *argv0, const char *why) {
    if (why) fprintf(stderr, "amber-run: %s\n", why);
    fprintf(stderr,
            "usage: %s [--skip-hashes] FILE\n"
            "       %s [--skip-hashes] FILE --verify\n"
            "       %s [--skip-hashes] FILE --entry NAME [--input NAME=IN.npy]... --output DIR\n"
            "       %s [--skip-hashes] FILE --tensor NAME OUT.npy\n",
            argv0, argv0, argv0, argv0);
    return 64;
}

/* Prints s with control characters escaped (am_escape). */
static void put(FILE *f, const char *s) {
    char buf[4096];
    am_escape(s ? s : "", s ? strlen(s) : 0, buf, sizeof buf);
    fputs(buf, f);
}

static void print_port(const amber_port *p) {
    put(stdout, p->name);
    printf(": %s[", amber_dtype_name(p->dtype));
    for (int i = 0; i < p->rank; i++) {
        if (i) printf(", ");
        if (p->dims[i]) put(stdout, p->dims[i]);
        else printf("%lld", (long long)p->shape[i]);
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
    put(stdout, path);
    printf(": amber format %u, opset %lld, %zu entry point%s, %zu tensor%s\n", version,
           (long long)opset, ne, ne == 1 ? "" : "s", n, n == 1 ? "" : "s");
    for (size_t k = 0; k < ne; k++) {
        const char *name;
        size_t ni, no;
        amber_model_entry_name(model, k, &name);
        amber_model_entry_arity(model, name, &ni, &no);
        printf("  entry ");
        put(stdout, name);
        printf("(");
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
        printf("  tensor ");
        put(stdout, name);
        printf(" %s%s\n", amber_dtype_name(t.dtype), am_shape_str(t.shape, t.rank, shape, sizeof shape));
    }
    return 0;
}

/* Prints "amber-run: " and the parts, each escaped, then a newline, to stderr. */
static void fail(const char *a, const char *b, const char *c) {
    fputs("amber-run: ", stderr);
    put(stderr, a);
    if (b) put(stderr, b);
    if (c) put(stderr, c);
    fputc('\n', stderr);
}

/* Whether path names the same file as one the run reads (the model or an input). */
static bool same_file(const char *path, const char *other) {
    struct stat a, b;
    return stat(path, &a) == 0 && stat(other, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static bool reads(const char *out, const char *model, int n_in, char **in_specs) {
    if (same_file(out, model)) return true;
    for (int k = 0; k < n_in; k++) {
        const char *eq = strchr(in_specs[k], '=');
        if (eq && same_file(out, eq + 1)) return true;
    }
    return false;
}

static int write_npy(const char *path, const amber_tensor *t, const char *model, int n_in,
                     char **in_specs) {
    am_error err;
    am_error_clear(&err);
    if (reads(path, model, n_in, in_specs)) {
        fail("refusing to write over ", path, ", a file this command reads");
        return 1;
    }
    if (am_npy_write_file(path, t, &err) != AMBER_OK) {
        fail(err.msg, NULL, NULL);
        return 1;
    }
    return 0;
}

static int run(amber_model *model, const char *mpath, const char *entry, int n_in, char **in_specs,
               const char *dir) {
    size_t ni, no;
    if (amber_model_entry_arity(model, entry, &ni, &no) != AMBER_OK) {
        fail("no entry point named \"", entry, "\"");
        return 1;
    }
    if ((size_t)n_in != ni || ni > MAX_ARGS || no > MAX_ARGS) {
        fputs("amber-run: ", stderr);
        put(stderr, entry);
        fprintf(stderr, " takes %zu inputs, %d given\n", ni, n_in);
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
            fail("missing --input ", p.name, "=FILE.npy");
            rc = 1;
        } else if (am_npy_read_file(file, &inputs[i], &owned[i], &err) != AMBER_OK) {
            fail(err.msg, NULL, NULL);
            rc = 1;
        }
    }
    amber_session *session = NULL;
    if (rc == 0 && amber_session_create(model, &session) != AMBER_OK) {
        fail("cannot create a session", NULL, NULL);
        rc = 1;
    }
    if (rc == 0) {
        amber_status st = amber_session_run(session, entry, inputs, ni, outputs, no);
        if (st != AMBER_OK) {
            fail(amber_status_name(st), ": ", amber_session_error(session));
            rc = 1;
        }
        for (size_t i = 0; rc == 0 && i < no; i++) {
            amber_port p;
            char path[4096];
            amber_model_entry_output(model, entry, i, &p);
            /* the loader refuses port names with '/', "." or "..": this stays in dir */
            if (snprintf(path, sizeof path, "%s/%s.npy", dir, p.name) >= (int)sizeof path) {
                fail("output path too long in ", dir, NULL);
                rc = 1;
            } else {
                rc = write_npy(path, &outputs[i], mpath, n_in, in_specs);
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
        fail("cannot create a session", NULL, NULL);
        return 1;
    }
    size_t n = 0, failed = 0;
    amber_status st = amber_session_verify(session, &n, &failed);
    if (st == AMBER_OK) {
        printf("%zu test vector%s passed\n", n, n == 1 ? "" : "s");
    } else {
        fprintf(stderr, "amber-run: %zu of %zu test vectors failed; %s: ", failed, n,
                amber_status_name(st));
        put(stderr, amber_session_error(session));
        fputc('\n', stderr);
    }
    amber_session_free(session);
    return st == AMBER_OK ? 0 : 1;
}

typedef struct args {
    const char *path, *entry, *dir, *tensor, *out;
    char *inputs[MAX_ARGS];
    int n_in;
    bool verify, skip_hashes;
} args;

/* Options in any order around FILE ("--" ends them); 0, or the usage exit status. */
static int parse(int argc, char **argv, args *a) {
    bool options = true;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        bool has = i + 1 < argc;
        if (!options || o[0] != '-' || !o[1]) {
            if (a->path) return usage(argv[0], "more than one FILE given");
            a->path = o;
        } else if (!strcmp(o, "--")) {
            options = false;
        } else if (!strcmp(o, "--skip-hashes")) {
            a->skip_hashes = true;
        } else if (!strcmp(o, "--verify")) {
            a->verify = true;
        } else if (!strcmp(o, "--entry") && has) {
            a->entry = argv[++i];
        } else if (!strcmp(o, "--output") && has) {
            a->dir = argv[++i];
        } else if (!strcmp(o, "--input") && has) {
            if (a->n_in == MAX_ARGS) return usage(argv[0], "too many --input options");
            a->inputs[a->n_in++] = argv[++i];
        } else if (!strcmp(o, "--tensor") && i + 2 < argc) {
            a->tensor = argv[++i];
            a->out = argv[++i];
        } else {
            char why[300];
            snprintf(why, sizeof why, "%s option %.200s", !strcmp(o, "--entry") ||
                     !strcmp(o, "--output") || !strcmp(o, "--input") || !strcmp(o, "--tensor")
                     ? "missing value for" : "unknown", o);
            return usage(argv[0], why);
        }
    }
    bool running = a->entry || a->dir || a->n_in;
    if (!a->path) return usage(argv[0], "no FILE given");
    if (a->verify + running + (a->tensor != NULL) > 1)
        return usage(argv[0], "--verify, --tensor and --entry/--input/--output exclude each other");
    if (running && (!a->entry || !a->dir)) return usage(argv[0], "a run needs --entry and --output");
    return 0;
}

int main(int argc, char **argv) {
    args a;
    memset(&a, 0, sizeof a);
    int rc = parse(argc, argv, &a);
    if (rc) return rc;
    amber_options opts;
    amber_options_init(&opts);
    if (a.skip_hashes) opts.flags |= AMBER_OPEN_SKIP_TENSOR_HASHES;
    amber_model *model = NULL;
    amber_status st = amber_model_open_file(a.path, &opts, &model);
    if (st != AMBER_OK) {
        fail(amber_status_name(st), ": ", model ? amber_model_error(model) : "out of memory");
        amber_model_close(model);
        return 1;
    }
    if (a.verify) {
        rc = verify(model);
    } else if (a.entry) {
        rc = run(model, a.path, a.entry, a.n_in, a.inputs, a.dir);
    } else if (a.tensor) {
        amber_tensor t;
        if (amber_model_find_tensor(model, a.tensor, &t) != AMBER_OK) {
            fail("no tensor named \"", a.tensor, "\"");
            rc = 1;
        } else {
            rc = write_npy(a.out, &t, a.path, 0, NULL);
        }
    } else {
        rc = list(model, a.path);
    }
    amber_model_close(model);
    return rc;
}
