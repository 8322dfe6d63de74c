/* A small fork-join thread pool owned by one session. am_pool_run publishes a job; the
 * workers and the calling thread take task indices from a shared counter, and the call
 * returns when every task has finished.
 *
 * Latency matters more than anything (a matmul of an MLP at batch 1 takes ~20 us):
 * - workers stay awake (spinning, then yielding) for a while after each job before they
 *   sleep on a condition variable, so the next job of the same run, or of the next run,
 *   starts within about a microsecond;
 * - completion is counted in tasks, not workers: the caller never waits for a worker that
 *   is asleep or descheduled; it runs the remaining tasks itself;
 * - a worker only enters a job while it is open (gen even); the caller closes it, then
 *   waits until no worker is inside before the job's memory may change.
 * The protocol relies on sequentially consistent atomics (the default of <stdatomic.h>)
 * for the publish/sleep handshakes. */
#include "ops.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

/* How many turns an idle worker (or a waiting caller) spins without yielding before it
 * yields for the rest of the pool's spin time, then sleeps (a pause takes ~30 ns on the
 * machine the figures in bench/RESULTS.md come from: about ten microseconds). */
#define SPIN_BUSY 400u

struct am_pool {
    int n_workers; /* threads besides the caller */
    uint64_t spin_ns; /* set before the workers start, then only read */
    double wake_min;  /* (am_pool_for) */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    atomic_uint_fast64_t gen; /* even: a job is open; odd: closed. Bumped by the caller */
    atomic_int sleepers;      /* workers waiting on `work` */
    atomic_int caller_sleeping;
    atomic_int inside;        /* workers inside the open job */
    atomic_bool stop;
    /* The job: written by the caller while closed, read by workers while open. */
    am_task_fn fn;
    void *ud;
    int64_t n_tasks;
    atomic_llong next;     /* next task index to hand out */
    atomic_llong finished; /* tasks completed */
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs tasks until none is left; returns how many this thread ran. */
static long long drain(am_pool *p, int worker) {
    long long ran = 0;
    for (;;) {
        long long t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks) return ran;
        p->fn(p->ud, (int64_t)t, worker);
        ran++;
    }
}

/* Waits up to p->spin_ns for cond(p, arg) without sleeping; false if it did not hold.
 * NOTE: after a short busy spin the loop yields the CPU on every turn: when threads
 * outnumber free cores, a busy-spinning thread would take the time slices of the very
 * thread it waits for (the caller still working on its share, or a worker holding a
 * task), and a job would take many times longer. */
static bool spin_until(bool (*cond)(am_pool *, uint64_t), am_pool *p, uint64_t arg) {
    uint64_t t0 = 0;
    for (unsigned i = 1;; i++) {
        if (cond(p, arg)) return true;
        if (i < SPIN_BUSY) {
            CPU_RELAX();
            continue;
        }
        sched_yield();
        if ((i & 15) == 0) { /* read the clock rarely */
            uint64_t t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > p->spin_ns) return false;
        }
    }
}

static bool has_news(am_pool *p, uint64_t seen) {
    return atomic_load(&p->gen) != seen || atomic_load(&p->stop);
}

static bool all_finished(am_pool *p, uint64_t n) {
    return (uint64_t)atomic_load(&p->finished) >= n;
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
    uint64_t seen = 1; /* the initial, closed generation */
    for (;;) {
        if (!spin_until(has_news, p, seen)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (!has_news(p, seen)) pthread_cond_wait(&p->work, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) break;
        seen = atomic_load(&p->gen);
        if (seen & 1) continue; /* closed already: wait for the next one */
        atomic_fetch_add(&p->inside, 1);
        /* Re-check after announcing ourselves: the caller may have closed the job (and
         * may be about to reuse its fields) between our two loads. */
        if (atomic_load(&p->gen) == seen) {
            long long ran = drain(p, index);
            if (ran &&
                atomic_fetch_add(&p->finished, ran) + ran >= p->n_tasks &&
                atomic_load(&p->caller_sleeping)) {
                pthread_mutex_lock(&p->mu);
                pthread_cond_signal(&p->done);
                pthread_mutex_unlock(&p->mu);
            }
        }
        atomic_fetch_sub(&p->inside, 1);
    }
    return NULL;
}

amber_status am_pool_create(int threads, uint64_t spin_ns, double wake_min, am_pool **out,
                             am_error *err) {
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
    p->spin_ns = spin_ns;
    p->wake_min = wake_min;
    atomic_init(&p->gen, 1); /* closed */
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_sleeping, 0);
    atomic_init(&p->inside, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->next, 0);
    atomic_init(&p->finished, 0);
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
    atomic_store(&p->stop, true);
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

bool am_pool_awake(am_pool *p) { return p && atomic_load(&p->sleepers) < p->n_workers; }

static void wake_workers(am_pool *p) {
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->mu);
    }
}

am_pool *am_pool_for(am_pool *p, double work) {
    if (!p || p->n_workers == 0) return NULL;
    return work >= p->wake_min || am_pool_awake(p) ? p : NULL;
}

void am_pool_run(am_pool *p, int64_t n_tasks, am_task_fn fn, void *ud) {
    if (!p || p->n_workers == 0 || n_tasks <= 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(ud, t, 0);
        return;
    }
    /* Closed, and no worker inside (the previous call waited for that): safe to write. */
    p->fn = fn;
    p->ud = ud;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    atomic_store(&p->finished, 0);
    atomic_fetch_add(&p->gen, 1); /* open */
    wake_workers(p);
    long long ran = drain(p, 0);
    atomic_fetch_add(&p->finished, ran);
    if (!spin_until(all_finished, p, (uint64_t)n_tasks)) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_sleeping, 1);
        while (!all_finished(p, (uint64_t)n_tasks)) pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->caller_sleeping, 0);
        pthread_mutex_unlock(&p->mu);
    }
    atomic_fetch_add(&p->gen, 1); /* closed: late workers turn back */
    for (unsigned i = 1; atomic_load(&p->inside) > 0; i++) {
        if (i < SPIN_BUSY) CPU_RELAX();
        else sched_yield(); /* the worker inside may be descheduled */
    }
}
