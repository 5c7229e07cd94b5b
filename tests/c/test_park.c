/*
 * tests/c/test_park.c: flinq/park.h, the event count.
 *
 *   1. single-thread protocol checks: prepare counts in / cancel counts out;
 *      a notify between prepare and wait makes wait return at once (0);
 *      notify without waiters does not bump the epoch;
 *   2. timed waits: with no notify the wait times out (returns 1, after at
 *      least the timeout); timeout 0 returns at once; a notify from another
 *      thread ends a long timed wait early (returns 0);
 *   3. no lost wake-up: a token passed round threads that sleep with NO
 *      timeout until it is their turn; 2 threads with notify-one and 4 with
 *      notify-all, 200k handoffs each. A plain (non-atomic) payload travels
 *      with the token, so TSan also checks the handoff's ordering. A lost
 *      wake-up hangs, which the watchdog turns into a failure;
 *   4. 1 producer / 3 consumers sharing a token count with notify-one;
 *   5. fork(): the child of a process where one thread sleeps on a park and
 *      another holds a park's mutex can use both parks once it has called
 *      flq_park_after_fork_in_child on them.
 *
 * Every wait follows the header's protocol:
 *     key = prepare; if (condition) cancel; else wait(key, timeout)
 */
#include "check.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flinq/park.h"

#define HANDOFFS 200000
#define WATCHDOG_STALL_SEC 30.0 /* no progress for this long = lost wake-up */

static void sleep_ms(long ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ------------------------------------------------------------ 1. protocol */

static void test_protocol(void)
{
    flq_park p;
    CHECK(flq_park_init(&p) == 0);
    CHECK(!flq_park_has_waiters(&p));

    uint32_t key = flq_park_prepare(&p);
    CHECK(flq_park_has_waiters(&p));
    flq_park_cancel(&p);
    CHECK(!flq_park_has_waiters(&p));

    /* notify with nobody counted in: cheap path, epoch unchanged */
    uint32_t epoch = p.epoch;
    flq_park_notify(&p, 0);
    flq_park_notify(&p, 1);
    CHECK_EQ(p.epoch, epoch);

    /* notify after prepare: the epoch moves, so wait returns at once */
    key = flq_park_prepare(&p);
    flq_park_notify(&p, 0);
    CHECK(p.epoch != key);
    double t0 = now_sec();
    CHECK(flq_park_wait(&p, key, -1) == 0); /* would hang forever if the wake-up were lost */
    CHECK(now_sec() - t0 < 1.0);
    CHECK(!flq_park_has_waiters(&p));

    /* same with a timeout and with notify-all */
    key = flq_park_prepare(&p);
    flq_park_notify(&p, 1);
    CHECK(flq_park_wait(&p, key, 5000000000LL) == 0);
    CHECK(!flq_park_has_waiters(&p));

    /* a stale key (epoch moved since) never sleeps */
    key = flq_park_prepare(&p);
    flq_park_notify(&p, 0);
    flq_park_cancel(&p);
    (void)flq_park_prepare(&p); /* counted in again; wait on the old key */
    CHECK(flq_park_wait(&p, key, -1) == 0);
    CHECK(!flq_park_has_waiters(&p));
    flq_park_destroy(&p);
    printf("  protocol: prepare/cancel counting, notify-after-prepare wakes at once, no-waiter notify is a no-op ok\n");
}

/* ------------------------------------------------------------ 2. timed waits */

typedef struct {
    flq_park *p;
    atomic_int flag;
} late_notifier;

static void *notify_later(void *arg)
{
    late_notifier *n = (late_notifier *)arg;
    while (!flq_park_has_waiters(n->p))
        sched_yield();
    sleep_ms(20);
    atomic_store_explicit(&n->flag, 1, memory_order_release);
    flq_park_notify(n->p, 0);
    return NULL;
}

static void test_timed(void)
{
    flq_park p;
    CHECK(flq_park_init(&p) == 0);

    const int64_t timeout = 50 * 1000000LL; /* 50 ms */
    uint32_t key = flq_park_prepare(&p);
    double t0 = now_sec();
    int rc = flq_park_wait(&p, key, timeout);
    double dt = now_sec() - t0;
    CHECK(rc == 1);
    CHECK(dt >= 0.049);
    CHECK(dt < 5.0);
    CHECK(!flq_park_has_waiters(&p));
    printf("  timed wait without notify: timed out (rc=%d) after %.1f ms (timeout 50 ms) ok\n", rc, dt * 1e3);

    key = flq_park_prepare(&p);
    t0 = now_sec();
    rc = flq_park_wait(&p, key, 0);
    dt = now_sec() - t0;
    CHECK(rc == 1);
    CHECK(dt < 1.0);
    CHECK(!flq_park_has_waiters(&p));
    printf("  timed wait with timeout 0: rc=%d after %.3f ms ok\n", rc, dt * 1e3);

    /* a notify ends a 10 s wait early */
    late_notifier n;
    n.p = &p;
    atomic_store(&n.flag, 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, notify_later, &n) == 0);
    t0 = now_sec();
    int waited = 0;
    rc = -1;
    while (!atomic_load_explicit(&n.flag, memory_order_acquire)) {
        key = flq_park_prepare(&p);
        if (atomic_load_explicit(&n.flag, memory_order_acquire)) {
            flq_park_cancel(&p);
            break;
        }
        rc = flq_park_wait(&p, key, 10 * 1000000000LL);
        waited++;
    }
    dt = now_sec() - t0;
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(dt < 5.0);
    if (waited == 1)
        CHECK(rc == 0);
    printf("  10 s timed wait ended by a notify after %.1f ms (waits %d, last rc=%d) ok\n", dt * 1e3, waited, rc);
    flq_park_destroy(&p);
}

/* ------------------------------------------------------------ 3. token ring */

static flq_park g_park;
static _Atomic uint64_t g_turn;     /* token: thread (turn % nthreads) holds it */
static uint64_t g_payload;          /* plain data, owned by the token holder */
static uint64_t g_rounds;
static int g_nthreads;
static int g_notify_all;

typedef struct {
    int id;
    uint64_t handoffs;
    uint64_t sleeps;  /* wait calls */
    uint64_t cancels; /* condition true right after prepare */
    uint64_t bad;
} ring_arg;

static void *token_thread(void *arg)
{
    ring_arg *a = (ring_arg *)arg;
    for (;;) {
        uint64_t t = atomic_load_explicit(&g_turn, memory_order_acquire);
        while (t < g_rounds && t % (uint64_t)g_nthreads != (uint64_t)a->id) {
            uint32_t key = flq_park_prepare(&g_park);
            t = atomic_load_explicit(&g_turn, memory_order_acquire);
            if (t >= g_rounds || t % (uint64_t)g_nthreads == (uint64_t)a->id) {
                flq_park_cancel(&g_park);
                a->cancels++;
                break;
            }
            flq_park_wait(&g_park, key, -1); /* no timeout: a lost wake-up hangs here */
            a->sleeps++;
            t = atomic_load_explicit(&g_turn, memory_order_acquire);
        }
        if (t >= g_rounds)
            break;
        /* holding the token: the payload was written by the previous holder */
        if (g_payload != t)
            a->bad++;
        g_payload = t + 1;
        a->handoffs++;
        atomic_store_explicit(&g_turn, t + 1, memory_order_release);
        flq_park_notify(&g_park, g_notify_all);
    }
    return NULL;
}

/* Wait for the workers while watching progress; exit hard on a stall. */
static void watchdog(_Atomic uint64_t *progress, uint64_t target, const char *what)
{
    uint64_t last = atomic_load(progress);
    double last_change = now_sec();
    while (last < target) {
        sleep_ms(5);
        uint64_t now = atomic_load(progress);
        if (now != last) {
            last = now;
            last_change = now_sec();
        } else if (now_sec() - last_change > WATCHDOG_STALL_SEC) {
            fprintf(stderr, "%s:%d: %s: no progress for %.0f s at %" PRIu64 "/%" PRIu64 ": lost wake-up?\n",
                    __FILE__, __LINE__, what, WATCHDOG_STALL_SEC, now, target);
            printf("test_park: FAILED (hang)\n");
            fflush(stdout);
            fflush(stderr);
            _Exit(1);
        }
    }
}

static void test_token_ring(int nthreads, int notify_all)
{
    enum { MAXT = 8 };
    CHECK(flq_park_init(&g_park) == 0);
    atomic_store(&g_turn, 0);
    g_payload = 0;
    g_rounds = HANDOFFS;
    g_nthreads = nthreads;
    g_notify_all = notify_all;
    pthread_t th[MAXT];
    ring_arg args[MAXT];
    double t0 = now_sec();
    for (int i = 0; i < nthreads; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].id = i;
        CHECK(pthread_create(&th[i], NULL, token_thread, &args[i]) == 0);
    }
    watchdog(&g_turn, g_rounds, "token ring");
    uint64_t handoffs = 0, sleeps = 0, cancels = 0, bad = 0;
    for (int i = 0; i < nthreads; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        handoffs += args[i].handoffs;
        sleeps += args[i].sleeps;
        cancels += args[i].cancels;
        bad += args[i].bad;
    }
    double dt = now_sec() - t0;
    CHECK_EQ(handoffs, g_rounds);
    CHECK_EQ(bad, 0);
    CHECK_EQ(g_payload, g_rounds);
    CHECK(!flq_park_has_waiters(&g_park));
    CHECK(sleeps > 0);
    flq_park_destroy(&g_park);
    printf("  token ring, %d threads, notify-%s: %" PRIu64 " handoffs, %" PRIu64 " waits, %" PRIu64
           " cancels, %.2fs, no lost wake-up ok\n",
           nthreads, notify_all ? "all" : "one", handoffs, sleeps, cancels, dt);
}

/* ------------------------------------------------------------ 4. producer/consumers */

#define PC_TOKENS 100000
#define PC_CONSUMERS 3

static _Atomic uint64_t g_tokens;   /* available */
static _Atomic uint64_t g_taken;    /* consumed so far */
static _Atomic uint64_t g_produced;

typedef struct {
    uint64_t taken;
    uint64_t sleeps;
} pc_arg;

static int take_token(void)
{
    uint64_t n = atomic_load_explicit(&g_tokens, memory_order_acquire);
    while (n > 0)
        if (atomic_compare_exchange_weak_explicit(&g_tokens, &n, n - 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return 1;
    return 0;
}

static int pc_condition(void)
{
    return atomic_load_explicit(&g_tokens, memory_order_acquire) > 0 ||
           atomic_load_explicit(&g_taken, memory_order_acquire) == PC_TOKENS;
}

static void *pc_consumer(void *arg)
{
    pc_arg *a = (pc_arg *)arg;
    for (;;) {
        if (take_token()) {
            a->taken++;
            if (atomic_fetch_add(&g_taken, 1) + 1 == PC_TOKENS)
                flq_park_notify(&g_park, 1); /* the last one releases everybody */
            continue;
        }
        if (atomic_load_explicit(&g_taken, memory_order_acquire) == PC_TOKENS)
            break;
        uint32_t key = flq_park_prepare(&g_park);
        if (pc_condition()) {
            flq_park_cancel(&g_park);
            continue;
        }
        flq_park_wait(&g_park, key, -1);
        a->sleeps++;
    }
    return NULL;
}

static void *pc_producer(void *arg)
{
    (void)arg;
    for (uint64_t i = 0; i < PC_TOKENS; i++) {
        atomic_fetch_add_explicit(&g_tokens, 1, memory_order_release);
        atomic_fetch_add(&g_produced, 1);
        flq_park_notify(&g_park, 0);
        if (i % 8 == 0)
            sched_yield(); /* let consumers run dry and sleep */
    }
    return NULL;
}

static void test_producer_consumers(void)
{
    CHECK(flq_park_init(&g_park) == 0);
    atomic_store(&g_tokens, 0);
    atomic_store(&g_taken, 0);
    atomic_store(&g_produced, 0);
    pthread_t prod, cons[PC_CONSUMERS];
    pc_arg args[PC_CONSUMERS];
    double t0 = now_sec();
    for (int i = 0; i < PC_CONSUMERS; i++) {
        memset(&args[i], 0, sizeof args[i]);
        CHECK(pthread_create(&cons[i], NULL, pc_consumer, &args[i]) == 0);
    }
    CHECK(pthread_create(&prod, NULL, pc_producer, NULL) == 0);
    watchdog(&g_taken, PC_TOKENS, "producer/consumers");
    CHECK(pthread_join(prod, NULL) == 0);
    uint64_t taken = 0, sleeps = 0;
    for (int i = 0; i < PC_CONSUMERS; i++) {
        CHECK(pthread_join(cons[i], NULL) == 0);
        taken += args[i].taken;
        sleeps += args[i].sleeps;
    }
    double dt = now_sec() - t0;
    CHECK_EQ(taken, PC_TOKENS);
    CHECK_EQ(atomic_load(&g_tokens), 0);
    CHECK(!flq_park_has_waiters(&g_park));
    flq_park_destroy(&g_park);
    printf("  1 producer / %d consumers, notify-one: %d tokens taken exactly, %" PRIu64 " waits, %.2fs ok\n",
           PC_CONSUMERS, PC_TOKENS, sleeps, dt);
}

/* ------------------------------------------------------------ 5. fork */
/*
 * The parent forks while one thread sleeps in flq_park_wait on `asleep` (the
 * child inherits it counted as a waiter, and inside the condition variable)
 * and another holds `locked`'s mutex (as a notifier inside the wake-up
 * would). The child calls flq_park_after_fork_in_child on both, must see no
 * waiters, and passes a turn back and forth with a thread of its own, each
 * side sleeping on one of the parks. Without the call it hangs: glibc's
 * condition variable waits for the vanished sleeper before it signals the
 * child's, and `locked`'s mutex is never released. The parent waits for the
 * child with a deadline and kills it, so a hang fails instead of stalling.
 *
 * TSan does not support starting threads in the child of a multithreaded
 * fork, so under TSan the child checks each park alone (a wait after a
 * notify), which still covers the held mutex.
 */

#if defined(__SANITIZE_THREAD__)
#  define FORK_CHILD_THREADS 0
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define FORK_CHILD_THREADS 0
#  endif
#endif
#ifndef FORK_CHILD_THREADS
#  define FORK_CHILD_THREADS 1
#endif

#define FORK_ROUNDS 2000
#define FORK_DEADLINE_SEC 60.0 /* a hang guard for the child, not a speed check */

static flq_park g_asleep;          /* a parent thread sleeps here at the fork */
static flq_park g_locked;          /* a parent thread holds its mutex at the fork */
static _Atomic int g_fork_stage;   /* parent: 1 sleeper counted in, 2 mutex held, 3 child done */
static _Atomic uint64_t g_fork_turn; /* child: even for the main thread, odd for the helper */

static void *fork_sleeper(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t key = flq_park_prepare(&g_asleep);
        if (atomic_load(&g_fork_stage) == 0)
            atomic_store(&g_fork_stage, 1);
        if (atomic_load(&g_fork_stage) == 3) {
            flq_park_cancel(&g_asleep);
            return NULL;
        }
        flq_park_wait(&g_asleep, key, -1);
    }
}

static void *fork_holder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_locked.mutex);
    atomic_store(&g_fork_stage, 2);
    while (atomic_load(&g_fork_stage) != 3)
        sleep_ms(1);
    pthread_mutex_unlock(&g_locked.mutex);
    return NULL;
}

/* Wait, by the header's protocol, until the turn's parity is `parity`. */
static void fork_await_turn(flq_park *p, uint64_t parity)
{
    for (;;) {
        uint32_t key = flq_park_prepare(p);
        if ((atomic_load(&g_fork_turn) & 1) == parity) {
            flq_park_cancel(p);
            return;
        }
        flq_park_wait(p, key, -1);
    }
}

/* The child's helper: waits on `locked`, hands the turn back on `asleep`. */
static void *fork_child_helper(void *arg)
{
    (void)arg;
    for (int i = 0; i < FORK_ROUNDS; i++) {
        fork_await_turn(&g_locked, 1);
        atomic_fetch_add(&g_fork_turn, 1);
        flq_park_notify(&g_asleep, 0);
    }
    return NULL;
}

static void fork_child(void)
{
    flq_park_after_fork_in_child(&g_asleep);
    flq_park_after_fork_in_child(&g_locked);
    CHECK(!flq_park_has_waiters(&g_asleep));
    CHECK(!flq_park_has_waiters(&g_locked));

    /* Each park alone: a notify after prepare makes the wait return at once. */
    flq_park *parks[2] = {&g_asleep, &g_locked};
    for (int i = 0; i < 2; i++) {
        uint32_t key = flq_park_prepare(parks[i]);
        flq_park_notify(parks[i], 0);
        CHECK_EQ(flq_park_wait(parks[i], key, -1), 0);
        key = flq_park_prepare(parks[i]);
        CHECK_EQ(flq_park_wait(parks[i], key, 1000000), 1); /* 1 ms, nobody notifies */
        CHECK(!flq_park_has_waiters(parks[i]));
    }

    if (FORK_CHILD_THREADS) {
        pthread_t helper;
        CHECK(pthread_create(&helper, NULL, fork_child_helper, NULL) == 0);
        for (int i = 0; i < FORK_ROUNDS; i++) {
            fork_await_turn(&g_asleep, 0);
            atomic_fetch_add(&g_fork_turn, 1);
            flq_park_notify(&g_locked, 0);
        }
        pthread_join(helper, NULL);
        CHECK_EQ(atomic_load(&g_fork_turn), 2 * FORK_ROUNDS);
    }
    fflush(stdout);
    _exit(atomic_load(&check_failures) == 0 ? 0 : 1);
}

static void test_fork(void)
{
    CHECK(flq_park_init(&g_asleep) == 0);
    CHECK(flq_park_init(&g_locked) == 0);
    pthread_t sleeper, holder;
    CHECK(pthread_create(&sleeper, NULL, fork_sleeper, NULL) == 0);
    while (atomic_load(&g_fork_stage) < 1)
        sleep_ms(1);
    sleep_ms(50); /* from counted in to asleep inside the condition variable */
    CHECK(pthread_create(&holder, NULL, fork_holder, NULL) == 0);
    while (atomic_load(&g_fork_stage) < 2)
        sleep_ms(1);

    fflush(stdout);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0)
        fork_child(); /* does not return */

    int status = 0;
    pid_t done = 0;
    int64_t deadline = flq_now_ns() + (int64_t)(FORK_DEADLINE_SEC * 1e9);
    while ((done = waitpid(child, &status, WNOHANG)) == 0 && flq_now_ns() < deadline)
        sleep_ms(10);
    int hung = done == 0;
    if (hung) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
    }
    CHECK(!hung);
    CHECK(hung || done == child);
    CHECK(hung || (WIFEXITED(status) && WEXITSTATUS(status) == 0));

    atomic_store(&g_fork_stage, 3);
    flq_park_notify(&g_asleep, 1);
    pthread_join(sleeper, NULL);
    pthread_join(holder, NULL);
    flq_park_destroy(&g_asleep);
    flq_park_destroy(&g_locked);
    printf("  fork: the child %s both parks (%s)\n", hung ? "HUNG on" : "used",
           FORK_CHILD_THREADS ? "with a thread of its own" : "one thread");
}

int main(void)
{
    printf("test_park:\n");
    test_protocol();
    test_timed();
    test_token_ring(2, 0);
    test_token_ring(4, 1);
    test_token_ring(3, 1);
    test_producer_consumers();
    test_fork();
    return check_report("test_park");
}
