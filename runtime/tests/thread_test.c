/* Test-only: models shared by several threads, each thread with its own session, must
 * give results bit-identical to a single-threaded run, and models loaded side by side in
 * one process must not interfere (thread t uses model t mod the number of models). Every
 * other run writes into the thread's own buffers (amber_session_run_into).
 *   amber-thread-test MODEL.amber THREADS RUNS [MORE_MODEL.amber ...]
 * Uses the public API only; each input is the first stored tensor named
 * ".../inputs/<input name>" (amber's test-vector naming). Exit 0 when every run matches. */
#include "amber.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IO 64

typedef struct job {
    const amber_model *model;
    const amber_tensor *inputs;
    size_t n_in, n_out;
    const amber_tensor *expected;
    int runs;
    int failures;
} job;

static int same(const amber_tensor *a, const amber_tensor *b) {
    size_t na, nb;
    if (amber_tensor_size(a, NULL, &na) || amber_tensor_size(b, NULL, &nb)) return 0;
    if (a->dtype != b->dtype || a->rank != b->rank || na != nb) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return na == 0 || !memcmp(a->data, b->data, na);
}

/* Run r of a worker: amber_session_run, or (odd r) amber_session_run_into buffers of the
 * expected results' types, which must then hold them. Returns 0 when the run matches. */
static int check_run(amber_session *s, const job *j, int r, void **bufs) {
    amber_tensor out[MAX_IO];
    bool into = r % 2;
    for (size_t k = 0; k < j->n_out; k++) {
        out[k] = j->expected[k];
        out[k].data = bufs[k];
    }
    amber_status st = into ? amber_session_run_into(s, "forward", j->inputs, j->n_in, out, j->n_out)
                           : amber_session_run(s, "forward", j->inputs, j->n_in, out, j->n_out);
    if (st != AMBER_OK) return 1;
    for (size_t k = 0; k < j->n_out; k++)
        if (!same(&out[k], &j->expected[k]) || (into && out[k].data != bufs[k])) return 1;
    return 0;
}

static void *worker(void *arg) {
    job *j = (job *)arg;
    amber_session *s = NULL;
    void *bufs[MAX_IO] = {0};
    bool ok = amber_session_create(j->model, &s) == AMBER_OK;
    for (size_t k = 0; ok && k < j->n_out; k++) {
        size_t nb = 0;
        ok = amber_tensor_size(&j->expected[k], NULL, &nb) == AMBER_OK &&
             (bufs[k] = malloc(nb ? nb : 1)) != NULL;
    }
    for (int r = 0; r < j->runs; r++) j->failures += ok ? check_run(s, j, r, bufs) : 1;
    for (size_t k = 0; k < j->n_out; k++) free(bufs[k]);
    amber_session_free(s);
    return NULL;
}

typedef struct fixture {
    amber_model *model;
    size_t n_in, n_out;
    amber_tensor inputs[MAX_IO], expected[MAX_IO];
    void *copies[MAX_IO];
} fixture;

/* Open `path`, find the stored test inputs of "forward" and record a single-threaded
 * run as the expected result. Returns 0 on success. */
static int prepare(const char *path, fixture *f) {
    memset(f, 0, sizeof *f);
    if (amber_model_open_file(path, NULL, &f->model) != AMBER_OK) {
        fprintf(stderr, "%s: %s\n", path, f->model ? amber_model_error(f->model) : "out of memory");
        return 1;
    }
    amber_model *model = f->model;
    if (amber_model_entry_arity(model, "forward", &f->n_in, &f->n_out) != AMBER_OK ||
        f->n_in > MAX_IO || f->n_out > MAX_IO) {
        fprintf(stderr, "%s: no usable entry point forward\n", path);
        return 1;
    }
    for (size_t i = 0; i < f->n_in; i++) {
        amber_port p;
        char name[512];
        amber_model_entry_input(model, "forward", i, &p);
        /* The first stored tensor named ".../inputs/<input name>". */
        snprintf(name, sizeof name, "/inputs/%s", p.name);
        size_t nt = 0, want = strlen(name);
        int found = 0;
        amber_model_tensor_count(model, &nt);
        for (size_t k = 0; k < nt && !found; k++) {
            const char *tn;
            amber_model_tensor(model, k, &tn, &f->inputs[i]);
            size_t len = strlen(tn);
            found = len >= want && !strcmp(tn + len - want, name);
        }
        if (!found) {
            fprintf(stderr, "%s: no stored tensor for input %s\n", path, p.name);
            return 1;
        }
    }
    amber_session *s = NULL;
    amber_tensor out[MAX_IO];
    int rc = 0;
    if (amber_session_create(model, &s) != AMBER_OK ||
        amber_session_run(s, "forward", f->inputs, f->n_in, out, f->n_out) != AMBER_OK) {
        fprintf(stderr, "%s: reference run failed: %s\n", path, s ? amber_session_error(s) : "");
        rc = 1;
    }
    /* Keep copies of the single-threaded results: the session's memory is reused. */
    for (size_t k = 0; rc == 0 && k < f->n_out; k++) {
        size_t nb;
        amber_tensor_size(&out[k], NULL, &nb);
        f->copies[k] = malloc(nb ? nb : 1);
        if (!f->copies[k]) {
            rc = 1;
            break;
        }
        if (nb) memcpy(f->copies[k], out[k].data, nb);
        f->expected[k] = out[k];
        f->expected[k].data = f->copies[k];
    }
    amber_session_free(s);
    return rc;
}

static void release(fixture *f) {
    for (size_t k = 0; k < MAX_IO; k++) free(f->copies[k]);
    amber_model_close(f->model);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.amber THREADS RUNS [MORE_MODEL.amber ...]\n", argv[0]);
        return 64;
    }
    int threads = atoi(argv[2]), runs = atoi(argv[3]);
    if (threads < 1 || threads > 256 || runs < 1 || argc - 3 > 16) return 64;
    fixture fx[16];
    int n_models = 0, rc = 0;
    for (int a = 1; a < argc && rc == 0; a = (a == 1 ? 4 : a + 1)) {
        rc = prepare(argv[a], &fx[n_models]);
        n_models++;
    }
    if (rc == 0) {
        pthread_t tid[256];
        job jobs[256];
        int started = 0;
        for (int t = 0; t < threads; t++) {
            fixture *f = &fx[t % n_models];
            jobs[t] = (job){f->model, f->inputs, f->n_in, f->n_out, f->expected, runs, 0};
            if (pthread_create(&tid[t], NULL, worker, &jobs[t]) != 0) break;
            started++;
        }
        int failures = started == threads ? 0 : 1;
        for (int t = 0; t < started; t++) {
            pthread_join(tid[t], NULL);
            failures += jobs[t].failures;
        }
        printf("%d models, %d threads x %d runs: %d mismatches\n", n_models, threads, runs,
               failures);
        rc = failures != 0;
    }
    for (int m = 0; m < n_models; m++) release(&fx[m]);
    return rc;
}
