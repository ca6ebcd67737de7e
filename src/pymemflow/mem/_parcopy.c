/* Big reads copied by two threads.
 *
 * Why: one core copies at most ~11-15 GB/s from RAM here (its outstanding cache misses are the limit,
 * not the memory bus), so a read of 8 x 64 KiB in one batch took as long as 8 single reads. A batch
 * says up front everything it will copy: a second thread can copy half of it at the same time
 * (1.7x on this machine). Small reads never pay for it (PAR_MIN).
 *
 * How: one worker thread, started on the first big read, kept while reads keep coming (it spins ~50 us
 * after a job, then sleeps, and exits after 2 s idle). A job is a list of units; the caller and the worker
 * claim units with an atomic counter, so the caller never waits for a worker that is late, busy with
 * another caller's job, or gone -- it copies whatever is unclaimed itself and waits only for the unit
 * the worker is in. The job lives on the caller's stack: the worker takes it with an atomic exchange and
 * reports when it is done with it; a caller that takes its own job back unclaimed waits for nothing.
 * After fork() the child has no worker: the state is reset and the next big read starts one.
 * The worker is named "pymemflow-copy" (top -H, /proc/PID/task/TID/comm). PYMEMFLOW_COPY_THREADS=1 turns
 * the worker off (every copy on the calling thread).
 */
#define _GNU_SOURCE
#include "_parcopy.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/uio.h>
#endif

#define SPIN_NS 50000L
#define IDLE_S 2

typedef struct {
    const ParList *list;
    long pid;
    atomic_size_t next;   /* the next unit to claim */
    atomic_int failed;    /* a unit could not be read: the rest are skipped */
    atomic_int worker_done; /* the worker has left this job and will not touch it again */
} Job;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static _Atomic(Job *) posted;   /* a job waiting for the worker, or NULL */
static atomic_int busy;         /* a caller owns the worker slot (callers without the GIL may race) */
static atomic_int sleeping;     /* the worker waits on cv */
static atomic_int state;        /* changed under mu: 0 no worker, 1 running, -1 off */
static int at_fork_set;
static atomic_int named;        /* the worker being started has named itself */

static void claim(Job *j)
{
    const ParList *l = j->list;
    size_t i;
    while ((i = atomic_fetch_add(&j->next, 1)) < l->n) {
        if (atomic_load_explicit(&j->failed, memory_order_relaxed))
            continue;
        const ParUnit *u = &l->u[i];
        if (j->pid > 0) {
#ifdef __linux__
            struct iovec local = {u->dst, u->n}, remote = {(void *)u->src, u->n};
            if (process_vm_readv((pid_t)j->pid, &local, 1, &remote, 1, 0) != (ssize_t)u->n)
                atomic_store(&j->failed, 1);
#else
            atomic_store(&j->failed, 1);
#endif
        } else {
            memcpy(u->dst, (const void *)u->src, u->n);
        }
    }
}

/* One spin-wait step: tells the core (and a sibling hyperthread) that this loop only waits. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static Job *wait_job(void)
{
    long until = now_ns() + SPIN_NS;
    for (;;) {
        for (int s = 0; s < 64; s++) {
            if (atomic_load_explicit(&posted, memory_order_relaxed)) {
                Job *j = atomic_exchange(&posted, NULL);
                if (j)
                    return j;
            }
            cpu_relax();
        }
        if (now_ns() >= until)
            break;
    }
    Job *j = NULL;
    pthread_mutex_lock(&mu);
    atomic_store(&sleeping, 1);
    while (!(j = atomic_exchange(&posted, NULL))) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += IDLE_S;
        if (pthread_cond_timedwait(&cv, &mu, &t) == ETIMEDOUT && !(j = atomic_exchange(&posted, NULL))) {
            atomic_store(&state, 0); /* idle: leave; the next big read starts a worker again */
            break;
        }
    }
    atomic_store(&sleeping, 0);
    pthread_mutex_unlock(&mu);
    return j;
}

static void *worker(void *unused)
{
    (void)unused;
#ifdef __linux__
    pthread_setname_np(pthread_self(), "pymemflow-copy"); /* what top -H and /proc/PID/task/TID/comm show */
#endif
    atomic_store(&named, 1);
    Job *j;
    while ((j = wait_job())) {
        claim(j);
        atomic_store(&j->worker_done, 1); /* the caller may now return and free the job */
    }
    return NULL;
}

static void after_fork_child(void)
{
    pthread_mutex_init(&mu, NULL);
    pthread_cond_init(&cv, NULL);
    atomic_store(&posted, NULL);
    atomic_store(&busy, 0);
    atomic_store(&sleeping, 0);
    if (atomic_load(&state) > 0)
        atomic_store(&state, 0);
}

/* A running worker (1) or none (0: disabled, or it cannot start). */
static int ensure_worker(void)
{
    pthread_mutex_lock(&mu);
    if (atomic_load(&state) == 0) {
        const char *env = getenv("PYMEMFLOW_COPY_THREADS");
        if (!at_fork_set)
            at_fork_set = pthread_atfork(NULL, NULL, after_fork_child) == 0;
        if ((env && (!strcmp(env, "0") || !strcmp(env, "1"))) || !at_fork_set) {
            atomic_store(&state, -1); /* off; without the fork handler a forked child could hang on mu */
        } else {
            pthread_attr_t attr;
            pthread_t t;
            sigset_t all, old;
            sigfillset(&all); /* signals go to the threads Python knows, never to the worker */
            pthread_sigmask(SIG_SETMASK, &all, &old);
            atomic_store(&named, 0);
            int rc = pthread_attr_init(&attr);
            if (rc == 0) {
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                rc = pthread_create(&t, &attr, worker, NULL);
                pthread_attr_destroy(&attr);
                while (rc == 0 && !atomic_load(&named)) /* it names itself before anyone looks (tests do) */
                    sched_yield();
            }
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            atomic_store(&state, rc == 0 ? 1 : -1);
        }
    }
    int ok = atomic_load(&state) > 0;
    pthread_mutex_unlock(&mu);
    return ok;
}

int par_worth(uint64_t total)
{
    return total >= PAR_MIN && atomic_load_explicit(&state, memory_order_relaxed) >= 0;
}

int par_list_init(ParList *l, size_t pieces, uint64_t total)
{
    l->n = 0;
    l->cap = pieces + (size_t)(total / PAR_UNIT) + 1;
    l->u = malloc(l->cap * sizeof(ParUnit));
    return l->u ? 0 : -1;
}

int par_list_add(ParList *l, unsigned char *dst, uintptr_t src, uint64_t n)
{
    while (n) {
        if (l->n == l->cap)
            return -1;
        size_t c = n > PAR_UNIT ? PAR_UNIT : (size_t)n;
        l->u[l->n++] = (ParUnit){dst, src, c};
        dst += c;
        src += c;
        n -= c;
    }
    return 0;
}

void par_list_free(ParList *l)
{
    free(l->u);
    l->u = NULL;
    l->n = l->cap = 0;
}

int par_copy(const ParList *l, long pid)
{
    Job j = {.list = l, .pid = pid};
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, 0);
    atomic_init(&j.worker_done, 0);
    int shared = 0;
    if (l->n >= 2 && ensure_worker() && !atomic_exchange(&busy, 1)) {
        atomic_store(&posted, &j);
        if (atomic_load(&sleeping)) {
            pthread_mutex_lock(&mu);
            pthread_cond_signal(&cv);
            pthread_mutex_unlock(&mu);
        }
        shared = 1;
    }
    claim(&j);
    if (shared) {
        if (atomic_exchange(&posted, NULL) != &j) /* the worker took it: wait until it has left it */
            while (!atomic_load(&j.worker_done))
                cpu_relax();
        atomic_store(&busy, 0);
    }
    return atomic_load(&j.failed) ? -1 : 0;
}
