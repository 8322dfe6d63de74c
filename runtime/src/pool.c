/* A small fork-join thread pool owned by one session: am_pool_run hands out task
 * indices to the workers and the calling thread, and returns when all are done. */
#include "ops.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct am_pool {
    int n_workers; /* threads besides the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    uint64_t generation;
    int active; /* workers still busy with the current generation */
    bool stop;
    am_task_fn fn;
    void *ud;
    int64_t n_tasks;
    atomic_llong next;
};

static void drain(am_pool *p, int worker) {
    for (;;) {
        long long t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks) return;
        p->fn(p->ud, (int64_t)t, worker);
    }
}

typedef struct worker_arg {
    am_pool *pool;
    int index;
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg *wa = (worker_arg *)arg;
    am_pool *p = wa->pool;
    int index = wa->index;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->work, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        drain(p, index);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

amber_status am_pool_create(int threads, am_pool **out, am_error *err) {
    *out = NULL;
    if (threads <= 1) return AMBER_OK; /* serial: no pool */
    am_pool *p = (am_pool *)calloc(1, sizeof *p);
    if (!p) return am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory creating threads");
    p->threads = (pthread_t *)calloc((size_t)threads, sizeof(pthread_t));
    if (!p->threads || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->threads);
        free(p);
        return am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory creating threads");
    }
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    for (int i = 0; i < threads - 1; i++) {
        worker_arg *wa = (worker_arg *)malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){p, i + 1};
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            break; /* run with the workers that started */
        }
        p->n_workers++;
    }
    *out = p;
    return AMBER_OK;
}

void am_pool_free(am_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int am_pool_size(const am_pool *p) { return p ? p->n_workers + 1 : 1; }

void am_pool_run(am_pool *p, int64_t n_tasks, am_task_fn fn, void *ud) {
    if (!p || p->n_workers == 0 || n_tasks <= 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(ud, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ud = ud;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->active = p->n_workers;
    p->generation++;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->active > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
