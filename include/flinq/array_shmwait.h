/*
 * flinq/array_shmwait.h: an event count that threads of any process sleep on,
 * made of two 32-bit words that may live in shared memory.
 *
 * Concurrency contract
 *   Any number of threads, in any processes that map the two words, may call
 *   any function concurrently. The words start at zero and are touched only
 *   through these functions.
 *
 * Protocol (the same as flinq/park.h, without a mutex):
 *     waiter                                 notifier
 *     key = flq_shmwait_prepare(w)           make the condition C true
 *     if C: flq_shmwait_cancel(w)            flq_shmwait_notify(w, all)
 *     else: flq_shmwait_wait(w, key, t)
 *   prepare counts the waiter in, then (seq_cst fence) reads the epoch;
 *   notify (seq_cst fence) reads the waiter count and, only when someone is
 *   counted, bumps the epoch and wakes. Dekker's pattern on the two fences:
 *   either the waiter's re-check sees C, or the notifier sees the waiter and
 *   changes the epoch, which the kernel compares with key before sleeping,
 *   so no wake-up is lost. Nobody waiting: a notify costs a fence and a load.
 *
 * Waiting: Linux sleeps on the epoch word with futex (FUTEX_WAIT, shared,
 * not PRIVATE, so it works across processes). Other systems sleep at most
 * FLQ_SHMWAIT_POLL_NS and return, and callers re-check: a bounded-latency
 * poll, correct but not free while idle. wait may return early (spuriously,
 * or on a signal: EINTR); callers re-check their condition in a loop.
 * Linux builds need _DEFAULT_SOURCE or _GNU_SOURCE for syscall() (Python.h
 * defines _GNU_SOURCE).
 * Pure C, no Python.h.
 */
#ifndef FLINQ_ARRAY_SHMWAIT_H
#define FLINQ_ARRAY_SHMWAIT_H

#include <stdint.h>

#include "atomic.h"

#if defined(__linux__)
#  include <errno.h>
#  include <linux/futex.h>
#  include <sys/syscall.h>
#  include <time.h>
#  include <unistd.h>
#elif defined(_WIN32)
#  include <windows.h>
#else
#  include <time.h>
#endif

/* Longest sleep of one wait where there is no futex. */
#define FLQ_SHMWAIT_POLL_NS 1000000

typedef struct flq_shmwait {
    uint32_t *epoch;   /* bumped by every notify that found waiters */
    uint32_t *waiters; /* threads between prepare and the end of wait/cancel */
} flq_shmwait;

/* Waiter, step 1: count in and return the epoch to wait on. */
FLQ_INLINE uint32_t flq_shmwait_prepare(flq_shmwait w)
{
    flq_fetch_add_u32_relaxed(w.waiters, 1);
    /* seq_cst: the count is visible before the caller re-checks its
     * condition (pairs with the fence in flq_shmwait_notify). */
    flq_fence_seq_cst();
    /* relaxed: the epoch only says whether to look again; the caller
     * re-reads its condition through that condition's own acquire loads. */
    return flq_load_u32_relaxed(w.epoch);
}

/* Waiter, step 2a: the condition turned true after prepare; count out. */
FLQ_INLINE void flq_shmwait_cancel(flq_shmwait w)
{
    flq_fetch_sub_u32_relaxed(w.waiters, 1);
}

/* Waiter, step 2b: sleep until the epoch moves past key, timeout_ns passes
 * (negative: no limit) or an early return; then count out. Returns 0 when
 * the epoch moved (a notify), 1 otherwise. */
static inline int flq_shmwait_wait(flq_shmwait w, uint32_t key, int64_t timeout_ns)
{
#if defined(__linux__)
    struct timespec ts;
    struct timespec *limit = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        limit = &ts;
    }
    /* The kernel sleeps only while *epoch == key, checked atomically with
     * queueing us: a notify after prepare makes this return at once. */
    syscall(SYS_futex, w.epoch, FUTEX_WAIT, key, limit, NULL, 0);
#else
    int64_t ns = timeout_ns < 0 || timeout_ns > FLQ_SHMWAIT_POLL_NS ? FLQ_SHMWAIT_POLL_NS : timeout_ns;
    /* relaxed: as in prepare, the epoch is a hint to look again. */
    if (flq_load_u32_relaxed(w.epoch) == key) {
#  if defined(_WIN32)
        Sleep((DWORD)((ns + 999999) / 1000000));
#  else
        struct timespec ts = {0, (long)ns};
        nanosleep(&ts, NULL);
#  endif
    }
#endif
    /* relaxed: as in prepare, the epoch is a hint to look again. */
    int notified = flq_load_u32_relaxed(w.epoch) != key;
    flq_fetch_sub_u32_relaxed(w.waiters, 1);
    return notified ? 0 : 1;
}

/* Notifier: after making the condition true, wake one waiter (all = 0) or
 * every waiter (all = 1). Costs a fence and a load when nobody waits. */
static inline void flq_shmwait_notify(flq_shmwait w, int all)
{
    /* seq_cst: the condition change is visible before the waiter count is
     * read (pairs with the fence in flq_shmwait_prepare). */
    flq_fence_seq_cst();
    if (flq_load_u32_relaxed(w.waiters) == 0)
        return;
    /* relaxed: the fence above already orders the condition change first. */
    flq_fetch_add_u32_relaxed(w.epoch, 1);
#if defined(__linux__)
    syscall(SYS_futex, w.epoch, FUTEX_WAKE, all ? INT32_MAX : 1, NULL, NULL, 0);
#else
    (void)all; /* pollers see the new epoch within FLQ_SHMWAIT_POLL_NS */
#endif
}

#endif /* FLINQ_ARRAY_SHMWAIT_H */
