/*
 * flinq/park.h: a parking spot where threads sleep until something changes
 * (an event count over a mutex and a condition variable).
 *
 * Concurrency contract
 *   Any number of threads may call any function concurrently, except
 *   flq_park_init / flq_park_destroy / flq_park_after_fork_in_child, which
 *   run alone.
 *
 * fork()
 *   A child of fork() has only the thread that forked. The parent's other
 *   threads may have held the mutex, or be counted as sleepers by the
 *   waiter count and inside the condition variable (glibc's then makes a
 *   later signal wait for a sleeper that no longer exists: a hang). Before
 *   the child uses a park it had from its parent it calls
 *   flq_park_after_fork_in_child on it, while it still has one thread:
 *   that forgets the waiters and makes fresh primitives. The header keeps
 *   no list of parks; finding them is the owner's job (flinq: a list of
 *   live queues walked by an at-fork handler), so no call here pays for
 *   fork support.
 *
 * Protocol (a waiter and a notifier that share some condition C):
 *     waiter                             notifier
 *     key = flq_park_prepare(p)          make C true
 *     if C: flq_park_cancel(p)           flq_park_notify(p, all)
 *     else: flq_park_wait(p, key, t)
 *   prepare counts the waiter in and snapshots the epoch; notify bumps the
 *   epoch and signals only when a waiter is counted. A seq_cst fence on each
 *   side (Dekker's pattern) guarantees that either the waiter's re-check sees
 *   C, or the notifier sees the waiter counted; and a notify after prepare
 *   changes the epoch, so wait returns at once. No wake-up is lost, and a
 *   notifier pays one fence and one load when nobody waits: the mutex and
 *   condition variable are touched only when someone does.
 *
 * Waits are timed in nanoseconds against a monotonic clock; a negative
 * timeout waits without limit. wait may return early (spuriously); callers
 * re-check their condition in a loop, as with any condition variable.
 *
 * Backends: POSIX threads (CLOCK_MONOTONIC where pthread_condattr_setclock
 * exists, a relative wait on macOS) and Win32 SRW locks with condition
 * variables. Pure C, no Python.h.
 */
#ifndef FLINQ_PARK_H
#define FLINQ_PARK_H

#include <stdint.h>

#include "atomic.h"

#if defined(_WIN32)
#  include <windows.h>
typedef SRWLOCK flq__mutex;
typedef CONDITION_VARIABLE flq__cond;
#else
/* pthread_condattr_setclock and clock_gettime are POSIX.1-2001: a strict
 * -std=c11 build must define _POSIX_C_SOURCE (Python.h does). */
#  if defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE < 200112L && !defined(__APPLE__)
#    error "flinq/park.h needs _POSIX_C_SOURCE >= 200112L"
#  endif
#  include <errno.h>
#  include <pthread.h>
#  include <time.h>
typedef pthread_mutex_t flq__mutex;
typedef pthread_cond_t flq__cond;
#endif

typedef struct flq_park {
    uint32_t waiters; /* threads between prepare and the end of wait/cancel */
    uint32_t epoch;   /* bumped by every notify that found waiters */
    int monotonic;    /* POSIX: the condition variable times against CLOCK_MONOTONIC */
    flq__mutex mutex;
    flq__cond cond;
} flq_park;

/* Monotonic time in nanoseconds, for deadlines. */
static inline int64_t flq_now_ns(void)
{
#if defined(_WIN32)
    static LARGE_INTEGER freq;
    LARGE_INTEGER now;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    return (int64_t)((double)now.QuadPart * 1e9 / (double)freq.QuadPart);
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
}

/* Create p's mutex and condition variable (and set p->monotonic).
 * Returns 0, or -1 with nothing created. */
static inline int flq_park__create(flq_park *p)
{
    p->monotonic = 1;
#if defined(_WIN32)
    InitializeSRWLock(&p->mutex);
    InitializeConditionVariable(&p->cond);
    return 0;
#else
    if (pthread_mutex_init(&p->mutex, NULL) != 0)
        return -1;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) {
        pthread_mutex_destroy(&p->mutex);
        return -1;
    }
#  if !defined(__APPLE__)
    p->monotonic = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0;
#  else
    p->monotonic = 0; /* macOS waits with a relative timeout instead */
#  endif
    int rc = pthread_cond_init(&p->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_destroy(&p->mutex);
        return -1;
    }
    return 0;
#endif
}

/* Returns 0, or -1 when the system refused to create the primitives. */
static inline int flq_park_init(flq_park *p)
{
    p->waiters = 0;
    p->epoch = 0;
    return flq_park__create(p);
}

/* In the child of fork(), while it runs one thread, before any other call
 * on p: count no waiters (their threads did not survive the fork) and
 * replace the primitives. The old ones are abandoned, neither unlocked nor
 * destroyed: either is undefined for a mutex that a vanished thread holds
 * or a condition variable it sleeps on. (Where the pthread types are
 * handles rather than inline structs, what they point to leaks, once per
 * fork.) The epoch is kept. Never fails: should the system refuse to
 * create the primitives, p gets the static initializers, which allocate
 * nothing (POSIX names them for static objects; glibc, musl, macOS and the
 * BSDs accept them for any object) and time waits on the realtime clock. */
static inline void flq_park_after_fork_in_child(flq_park *p)
{
    p->waiters = 0;
    if (flq_park__create(p) == 0)
        return;
#if !defined(_WIN32)
    p->mutex = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    p->cond = (pthread_cond_t)PTHREAD_COND_INITIALIZER;
    p->monotonic = 0;
#endif
}

static inline void flq_park_destroy(flq_park *p)
{
#if !defined(_WIN32)
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mutex);
#else
    (void)p;
#endif
}

/* Waiter, step 1: count in and return the epoch to wait on. */
FLQ_INLINE uint32_t flq_park_prepare(flq_park *p)
{
    flq_fetch_add_u32_relaxed(&p->waiters, 1);
    /* seq_cst: the count above is visible before the caller re-checks its
     * condition (pairs with the fence in flq_park_notify). */
    flq_fence_seq_cst();
    return flq_load_u32_acquire(&p->epoch);
}

/* Waiter, step 2a: the condition turned true after prepare; count out. */
FLQ_INLINE void flq_park_cancel(flq_park *p)
{
    flq_fetch_sub_u32_relaxed(&p->waiters, 1);
}

/* Waiter, step 2b: sleep until the epoch moves past key, timeout_ns passes
 * (negative: no limit) or a spurious wake-up; then count out. Returns 0 when
 * woken by a notify, 1 otherwise. Call without any lock a notifier needs. */
static inline int flq_park_wait(flq_park *p, uint32_t key, int64_t timeout_ns)
{
    int notified;
#if defined(_WIN32)
    /* Round up to whole milliseconds; stay below INFINITE (~49.7 days). */
    int64_t ms64 = timeout_ns < 0 ? -1 : (timeout_ns + 999999) / 1000000;
    DWORD ms = ms64 < 0 ? INFINITE : ms64 >= (int64_t)INFINITE ? INFINITE - 1 : (DWORD)ms64;
    AcquireSRWLockExclusive(&p->mutex);
    if (flq_load_u32_relaxed(&p->epoch) == key)
        SleepConditionVariableSRW(&p->cond, &p->mutex, ms, 0);
    notified = flq_load_u32_relaxed(&p->epoch) != key;
    ReleaseSRWLockExclusive(&p->mutex);
#else
    pthread_mutex_lock(&p->mutex);
    if (flq_load_u32_relaxed(&p->epoch) == key) {
        if (timeout_ns < 0) {
            pthread_cond_wait(&p->cond, &p->mutex);
        } else {
            struct timespec ts;
#  if defined(__APPLE__)
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            pthread_cond_timedwait_relative_np(&p->cond, &p->mutex, &ts);
#  else
            /* The deadline is on the clock the condition variable uses. */
            int64_t now;
            if (p->monotonic) {
                now = flq_now_ns();
            } else {
                struct timespec real;
                clock_gettime(CLOCK_REALTIME, &real);
                now = (int64_t)real.tv_sec * 1000000000 + real.tv_nsec;
            }
            /* Clamp instead of overflowing: ~292 years is "no limit" too. */
            int64_t deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
            ts.tv_sec = (time_t)(deadline / 1000000000);
            ts.tv_nsec = (long)(deadline % 1000000000);
            pthread_cond_timedwait(&p->cond, &p->mutex, &ts);
#  endif
        }
    }
    notified = flq_load_u32_relaxed(&p->epoch) != key;
    pthread_mutex_unlock(&p->mutex);
#endif
    flq_fetch_sub_u32_relaxed(&p->waiters, 1);
    return notified ? 0 : 1;
}

/* Wake under p's mutex; the caller has seen a waiter counted. */
static inline void flq_park__wake(flq_park *p, int all)
{
#if defined(_WIN32)
    AcquireSRWLockExclusive(&p->mutex);
    flq_store_u32_release(&p->epoch, flq_load_u32_relaxed(&p->epoch) + 1);
    ReleaseSRWLockExclusive(&p->mutex);
    /* After unlocking, for the reason given in the POSIX branch below. */
    if (all)
        WakeAllConditionVariable(&p->cond);
    else
        WakeConditionVariable(&p->cond);
#else
    pthread_mutex_lock(&p->mutex);
    /* release: a waiter that reads the new epoch in prepare also sees the
     * condition change made before this notify. */
    flq_store_u32_release(&p->epoch, flq_load_u32_relaxed(&p->epoch) + 1);
    pthread_mutex_unlock(&p->mutex);
    /* Signal after unlocking, so the woken thread does not wake only to block
     * on the mutex we hold. No wake-up is lost: a waiter that saw the old
     * epoch under the mutex is inside pthread_cond_wait before we could
     * take the mutex to bump it, and one that comes later sees the new epoch
     * and does not sleep. The park outlives the call (its owner is in use). */
    if (all)
        pthread_cond_broadcast(&p->cond);
    else
        pthread_cond_signal(&p->cond);
#endif
}

/* Notifier: after making the condition true, wake one waiter (all = 0) or
 * every waiter (all = 1). Costs a fence and a load when nobody waits. */
FLQ_INLINE void flq_park_notify(flq_park *p, int all)
{
    /* seq_cst: the caller's condition change is visible before we read the
     * waiter count (pairs with the fence in flq_park_prepare). */
    flq_fence_seq_cst();
    if (flq_load_u32_relaxed(&p->waiters) != 0)
        flq_park__wake(p, all);
}

/* Notifier, for callers that hold a lock which every waiter also holds from
 * its flq_park_prepare through its re-check of the condition (flinq's
 * Python layer: the GIL). That lock already orders the condition change and
 * the waiter count, so no fence is needed: a load when nobody waits. */
FLQ_INLINE void flq_park_notify_locked(flq_park *p, int all)
{
    if (flq_load_u32_relaxed(&p->waiters) != 0)
        flq_park__wake(p, all);
}

/* Whether any thread is between prepare and the end of its wait. */
FLQ_INLINE int flq_park_has_waiters(flq_park *p)
{
    return flq_load_u32_relaxed(&p->waiters) != 0;
}

#endif /* FLINQ_PARK_H */
