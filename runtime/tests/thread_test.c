/* Test-only: one model shared by several threads, each with its own session, must give
 * results bit-identical to a single-threaded run.
 *   amber-thread-test MODEL.amber THREADS RUNS
 * Uses the public API only; each input is the first stored tensor named
 * ".../inputs/<input name>" (amber's test-vector naming). Exit 0 when every run matches. */
#include "amber.h"

#include <pthread.h>
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

static void *worker(void *arg) {
    job *j = (job *)arg;
    amber_session *s = NULL;
    if (amber_session_create(j->model, &s) != AMBER_OK) {
        j->failures = j->runs;
        return NULL;
    }
    amber_tensor out[MAX_IO];
    for (int r = 0; r < j->runs; r++) {
        if (amber_session_run(s, "forward", j->inputs, j->n_in, out, j->n_out) != AMBER_OK) {
            j->failures++;
            continue;
        }
        for (size_t k = 0; k < j->n_out; k++)
            if (!same(&out[k], &j->expected[k])) {
                j->failures++;
                break;
            }
    }
    amber_session_free(s);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.amber THREADS RUNS\n", argv[0]);
        return 64;
    }
    int threads = atoi(argv[2]), runs = atoi(argv[3]);
    if (threads < 1 || threads > 256 || runs < 1) return 64;
    amber_model *model = NULL;
    if (amber_model_open_file(argv[1], NULL, &model) != AMBER_OK) {
        fprintf(stderr, "%s\n", model ? amber_model_error(model) : "out of memory");
        amber_model_close(model);
        return 1;
    }
    size_t n_in = 0, n_out = 0;
    amber_tensor inputs[MAX_IO], expected[MAX_IO], out[MAX_IO];
    void *copies[MAX_IO] = {0};
    int rc = 0;
    if (amber_model_entry_arity(model, "forward", &n_in, &n_out) != AMBER_OK || n_in > MAX_IO ||
        n_out > MAX_IO) {
        fprintf(stderr, "no usable entry point forward\n");
        rc = 1;
    }
    for (size_t i = 0; rc == 0 && i < n_in; i++) {
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
            amber_model_tensor(model, k, &tn, &inputs[i]);
            size_t len = strlen(tn);
            found = len >= want && !strcmp(tn + len - want, name);
        }
        if (!found) {
            fprintf(stderr, "no stored tensor for input %s\n", p.name);
            rc = 1;
        }
    }
    amber_session *s = NULL;
    if (rc == 0 && (amber_session_create(model, &s) != AMBER_OK ||
                    amber_session_run(s, "forward", inputs, n_in, out, n_out) != AMBER_OK)) {
        fprintf(stderr, "reference run failed: %s\n", s ? amber_session_error(s) : "");
        rc = 1;
    }
    /* Keep copies of the single-threaded results: the session's memory is reused. */
    for (size_t k = 0; rc == 0 && k < n_out; k++) {
        size_t nb;
        amber_tensor_size(&out[k], NULL, &nb);
        copies[k] = malloc(nb ? nb : 1);
        if (!copies[k]) {
            rc = 1;
            break;
        }
        if (nb) memcpy(copies[k], out[k].data, nb);
        expected[k] = out[k];
        expected[k].data = copies[k];
    }
    amber_session_free(s);
    if (rc == 0) {
        pthread_t tid[256];
        job jobs[256];
        for (int t = 0; t < threads; t++) {
            jobs[t] = (job){model, inputs, n_in, n_out, expected, runs, 0};
            if (pthread_create(&tid[t], NULL, worker, &jobs[t]) != 0) return 1;
        }
        int failures = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            failures += jobs[t].failures;
        }
        printf("%d threads x %d runs: %d mismatches\n", threads, runs, failures);
        rc = failures != 0;
    }
    for (size_t k = 0; k < n_out; k++) free(copies[k]);
    amber_model_close(model);
    return rc;
}
