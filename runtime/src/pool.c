/* A small fork-join thread pool owned by one session. am_pool_run publishes a job; every
 * participant (the calling thread and the workers) owns an equal, contiguous range of its
 * task indices, runs it from the front, then takes what is left of the others' ranges from
 * their backs; the call returns when every task has finished.
 *
 * Latency matters more than anything (a matmul of an MLP at batch 1 takes ~20 us):
 * - workers stay awake (spinning, then yielding) for a while after each job before they
 *   sleep on a condition variable, so the next job of the same run, or of the next run,
 *   starts within about a microsecond;
 * - completion is counted in tasks, not workers: the caller never waits for a worker that
 *   is asleep or descheduled; it runs the remaining tasks itself;
 * - the ranges keep each thread on the same tasks job after job (the same rows of a layer
 *   and of the next stay in its cache) and off the others' cache lines;
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
 * yields for the rest of the pool's spin time, then sleeps (a pause takes ~30 to 75 ns on
 * the machine the figures in bench/RESULTS.md come from: about ten microseconds). */
#define SPIN_BUSY 400u
/* Jobs of more tasks run in turn (the ranges hold 32-bit indices) */
#define JOB_MAX ((int64_t)1 << 30)

/* A participant's tasks [lo, hi) as lo | hi << 32: the owner's fetch-add from the front
 * and a thief's compare-exchange from the back work on one word, so they never both take
 * the last task. A cache line each. */
typedef struct am_span {
    _Alignas(64) atomic_uint_fast64_t v;
} am_span;

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
    int64_t base, n_tasks;   /* fn's task indices base + [0, n_tasks) */
    am_span *spans;          /* n_workers + 1: the caller's, then each worker's */
    void *span_mem;
    atomic_llong finished; /* tasks completed */
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs participant `me`'s range, then what is left of the others'; returns how many
 * tasks this thread ran. NOTE: only the owner adds to lo, and stops at the first index
 * past hi: lo never reaches the hi half. */
static long long drain(am_pool *p, int me) {
    long long ran = 0;
    int n = p->n_workers + 1;
    for (int k = 0; k < n; k++) {
        atomic_uint_fast64_t *s = &p->spans[(me + k) % n].v;
        for (;;) {
            uint64_t v = k ? atomic_load(s) : atomic_fetch_add(s, 1), t = v & 0xffffffffu;
            while (k && t < v >> 32 && !atomic_compare_exchange_weak(s, &v, v - (1ull << 32)))
                t = v & 0xffffffffu;
            if (t >= v >> 32) break;
            p->fn(p->ud, p->base + (int64_t)(k ? (v >> 32) - 1 : t), me);
            ran++;
        }
    }
    return ran;
}

static void spin_turn(unsigned i) {
    if (i < SPIN_BUSY) CPU_RELAX();
    else sched_yield();
}

/* Waits up to p->spin_ns for cond(p, arg) without sleeping; false if it did not hold.
 * NOTE: after a short busy spin the loop yields the CPU on every turn: when threads
 * outnumber free cores, a busy-spinning thread would take the time slices of the very
 * thread it waits for (the caller still working on its share, or a worker holding a
 * task), and a job would take many times longer (spinning without yields ran CNNs 1.7x
 * slower on two CPUs under a load of ten). */
static bool spin_until(bool (*cond)(am_pool *, uint64_t), am_pool *p, uint64_t arg) {
    uint64_t t0 = 0;
    for (unsigned i = 1;; i++) {
        if (cond(p, arg)) return true;
        spin_turn(i);
        if ((i & 15) == 0 && i >= SPIN_BUSY) { /* read the clock rarely */
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
        /* The spin time counts from the close of the job just run: a worker done with its
         * share stays awake while the caller finishes its own. */
        for (unsigned i = 1; !(seen & 1) && atomic_load(&p->gen) == seen; i++)
            spin_turn(i);
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
    p->span_mem = calloc((size_t)threads + 1, sizeof(am_span));
    if (!p->threads || !p->span_mem || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->threads);
        free(p->span_mem);
        free(p);
        return am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory creating threads");
    }
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->spans = (am_span *)(((uintptr_t)p->span_mem + 63) & ~(uintptr_t)63);
    p->spin_ns = spin_ns;
    p->wake_min = wake_min;
    atomic_init(&p->gen, 1); /* closed */
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_sleeping, 0);
    atomic_init(&p->inside, 0);
    atomic_init(&p->stop, false);
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
    free(p->span_mem);
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

/* One job of n_tasks <= JOB_MAX tasks, fn's indices from p->base */
static void run_job(am_pool *p, int64_t n_tasks) {
    /* Closed, and no worker inside (the previous call waited for that): safe to write. */
    int parts = p->n_workers + 1;
    p->n_tasks = n_tasks;
    for (int i = 0; i < parts; i++)
        atomic_store(&p->spans[i].v, (uint64_t)am_pool_first(n_tasks, parts, i) |
                                         (uint64_t)am_pool_first(n_tasks, parts, i + 1) << 32);
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
    for (unsigned i = 1; atomic_load(&p->inside) > 0; i++)
        spin_turn(i); /* the worker inside may be descheduled */
}

void am_pool_run(am_pool *p, int64_t n_tasks, am_task_fn fn, void *ud) {
    if (!p || p->n_workers == 0 || n_tasks <= 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(ud, t, 0);
        return;
    }
    p->fn = fn;
    p->ud = ud;
    for (p->base = 0; p->base < n_tasks; p->base += JOB_MAX)
        run_job(p, n_tasks - p->base < JOB_MAX ? n_tasks - p->base : JOB_MAX);
}
