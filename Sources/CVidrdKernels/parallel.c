/* A fork-join pool for the runtime's parallel loops (vidrd_parallel.h).
 *
 * Why not libdispatch's concurrentPerform: on Linux its worker threads sleep between loops, and
 * waking one costs 60 - 100 us on this project's VMs, while a U-Net forward runs hundreds of loops
 * of 20 - 500 us each; the caller often finished both halves before the helper woke (measured:
 * 2 x 100 us of work took 175 us, the helper ran 8% of the halves). Here the helpers spin for a
 * short while after each loop before they sleep, as OpenMP runtimes do, so back-to-back loops
 * start in well under a microsecond.
 *
 * One pool per process, helpers started on first use (one fewer than the cores). One loop runs
 * on it at a time: a caller that finds it busy (another thread's loop) gets VIDRD_PARALLEL_BUSY,
 * a loop started inside a loop's chunk VIDRD_PARALLEL_NESTED, and runs its work some other way.
 *
 * A loop: the caller publishes the body, the chunk count and a new generation in `ticket`
 * (generation in the high 32 bits, next chunk in the low 32). Helpers and the caller claim
 * chunks by compare-and-swap on `ticket`, so a helper that wakes late, after its loop ended and
 * the next began, can never claim a chunk of a loop it did not read the body of. The caller waits
 * until `done` equals the chunk count. */
#include "vidrd_parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define MAX_HELPERS 255
/* How long a helper keeps spinning for the next loop before it sleeps. */
#define SPIN_NANOSECONDS 300000LL

typedef struct {
    atomic_flag busy;
    _Atomic uint64_t ticket;
    _Atomic(vidrd_parallel_body) body;
    _Atomic(void *) context;
    _Atomic uint32_t chunks;
    _Atomic uint32_t done;
    _Atomic int sleepers;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    int helpers;
} pool_t;

static pool_t pool = {
    .busy = ATOMIC_FLAG_INIT, .mutex = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static _Thread_local int inside_loop;

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Claims and runs chunks of generation `gen` until none is left. */
static void run_chunks(uint32_t gen) {
    uint64_t t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(t >> 32) != gen) return;
        uint32_t next = (uint32_t)t;
        uint32_t chunks = atomic_load_explicit(&pool.chunks, memory_order_relaxed);
        if (next >= chunks) return;
        if (!atomic_compare_exchange_weak_explicit(&pool.ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_acquire)) {
            continue;
        }
        /* The chunk is ours, so its loop cannot end (nor the next begin) before we count it done:
         * body and context are this generation's. */
        vidrd_parallel_body body = atomic_load_explicit(&pool.body, memory_order_relaxed);
        void *context = atomic_load_explicit(&pool.context, memory_order_relaxed);
        body(context, (long)next);
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
        t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
    }
}

static void *helper_main(void *unused) {
    (void)unused;
    inside_loop = 1; /* a loop started from a chunk runs inline */
    uint32_t seen = 0;
    for (;;) {
        uint32_t gen = (uint32_t)(atomic_load_explicit(&pool.ticket, memory_order_acquire) >> 32);
        if (gen == seen) {
            long long deadline = now_ns() + SPIN_NANOSECONDS;
            int spins = 0;
            while ((gen = (uint32_t)(atomic_load_explicit(&pool.ticket, memory_order_acquire) >> 32)) == seen) {
                relax();
                if (++spins % 256 == 0 && now_ns() > deadline) break;
            }
            if (gen == seen) {
                /* Sleep. The caller bumps the generation, then looks at `sleepers`; we count
                 * ourselves, then look at the generation (both sequentially consistent): one of
                 * the two sees the other, so no wake-up is lost. */
                pthread_mutex_lock(&pool.mutex);
                atomic_fetch_add(&pool.sleepers, 1);
                while ((gen = (uint32_t)(atomic_load(&pool.ticket) >> 32)) == seen) {
                    pthread_cond_wait(&pool.wake, &pool.mutex);
                }
                atomic_fetch_sub(&pool.sleepers, 1);
                pthread_mutex_unlock(&pool.mutex);
            }
        }
        seen = gen;
        run_chunks(gen);
    }
    return NULL;
}

static void pool_start(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cores > 1 ? (int)(cores - 1) : 0;
    if (want > MAX_HELPERS) want = MAX_HELPERS;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 16 << 20); /* chunks run the runtime's kernels */
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int started = 0;
    for (int i = 0; i < want; i++) {
        pthread_t thread;
        if (pthread_create(&thread, &attr, helper_main, NULL) != 0) break;
        started++;
    }
    pthread_attr_destroy(&attr);
    pool.helpers = started;
}

int vidrd_parallel_helpers(void) {
    pthread_once(&pool_once, pool_start);
    return pool.helpers;
}

int vidrd_parallel_run(long chunks, vidrd_parallel_body body, void *context) {
    if (chunks <= 0) return 0;
    if (inside_loop) return VIDRD_PARALLEL_NESTED;
    if (chunks > UINT32_MAX) return VIDRD_PARALLEL_BUSY;
    pthread_once(&pool_once, pool_start);
    if (pool.helpers == 0) return VIDRD_PARALLEL_BUSY;
    if (atomic_flag_test_and_set_explicit(&pool.busy, memory_order_acquire)) return VIDRD_PARALLEL_BUSY;
    inside_loop = 1;

    atomic_store_explicit(&pool.body, body, memory_order_relaxed);
    atomic_store_explicit(&pool.context, context, memory_order_relaxed);
    atomic_store_explicit(&pool.chunks, (uint32_t)chunks, memory_order_relaxed);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    uint32_t gen = (uint32_t)(atomic_load_explicit(&pool.ticket, memory_order_relaxed) >> 32) + 1;
    atomic_store(&pool.ticket, (uint64_t)gen << 32); /* seq_cst: see helper_main */
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mutex);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.mutex);
    }

    run_chunks(gen);
    while (atomic_load_explicit(&pool.done, memory_order_acquire) < (uint32_t)chunks) relax();

    inside_loop = 0;
    atomic_flag_clear_explicit(&pool.busy, memory_order_release);
    return 0;
}

long vidrd_atomic_add(long *counter, long delta) { return __atomic_add_fetch(counter, delta, __ATOMIC_SEQ_CST); }
long vidrd_atomic_load(const long *counter) { return __atomic_load_n(counter, __ATOMIC_SEQ_CST); }
