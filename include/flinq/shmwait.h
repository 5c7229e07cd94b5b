/*
 * flinq/shmwait.h: a wait word in shared memory on which threads of any
 * process sleep until something changes (an event count over a futex).
 *
 * Concurrency contract
 *   Any number of threads in any number of processes may call any function
 *   concurrently on a flq_shm_wait that lives in memory they all map
 *   (MAP_SHARED). A zero-filled flq_shm_wait is ready to use.
 *
 * Protocol (a waiter and a notifier that share some condition C), as in
 * flinq/park.h:
 *     waiter                                 notifier
 *     key = flq_shm_wait_prepare(w)          make C true
 *     if C: flq_shm_wait_cancel(w)           flq_shm_wait_notify(w, all)
 *     else: flq_shm_wait_sleep(w, key, t)
 *   prepare counts the waiter in and snapshots the sequence word; notify
 *   bumps the word and calls FUTEX_WAKE only when a waiter is counted, so a
 *   notifier with nobody asleep pays one fence and one load, no system call.
 *   The kernel's FUTEX_WAIT sleeps only while the word still equals key, so
 *   a notify between prepare and sleep makes sleep return at once.
 *
 * Memory-order argument
 *   Waiter: count in (relaxed), seq_cst fence, load seq (acquire), re-check
 *   C. Notifier: make C true, seq_cst fence, load waiters, bump seq. The two
 *   fences are ordered one way or the other: if the notifier's comes first,
 *   the waiter's re-check sees C; if the waiter's comes first, the notifier
 *   sees the waiter counted and bumps seq. The bump is a relaxed RMW after
 *   the notifier's fence, which acts as its release: a waiter whose acquire
 *   load reads the bumped value also sees C, so it never sleeps on a key
 *   taken after the bump with a stale view of C.
 *
 * Dead processes: a process killed while counted in leaves the count too
 * high forever. That costs notifiers a FUTEX_WAKE system call that wakes
 * nobody, never a lost wake-up. Sleeps are in bounded slices by the
 * callers' choice (timeouts); nothing here waits for another process to
 * finish anything.
 *
 * Waits take a relative timeout in nanoseconds (negative: none) measured on
 * CLOCK_MONOTONIC, and may return early (a signal, a spurious wake-up);
 * callers re-check C in a loop.
 *
 * Platforms: Linux futexes. Elsewhere flq_shm_wait_supported() is 0 and
 * flq_shm_wait_sleep polls: it sleeps at most FLQ_SHM_WAIT_POLL_NS while
 * seq equals key, and returns; a bounded-latency poll, correct but not free
 * while idle (callers that need true sleeps refuse such platforms).
 * Pure C, no Python.h.
 */
#ifndef FLINQ_SHMWAIT_H
#define FLINQ_SHMWAIT_H

#include <stdint.h>

#include "atomic.h"

#if defined(_WIN32)
#  include <windows.h> /* SwitchToThread, YieldProcessor, Sleep */
#elif defined(__unix__) || defined(__APPLE__)
#  include <sched.h>
#  include <time.h>
#endif
#if defined(__linux__)
#  include <limits.h>
#  include <linux/futex.h>
#  include <sys/syscall.h>
#  include <time.h>
/* Declared by <unistd.h> only under _DEFAULT_SOURCE; a strict -std=c11
 * build that defines just _POSIX_C_SOURCE would not see it. */
extern long syscall(long number, ...);
#endif

/* Longest sleep of one flq_shm_wait_sleep where there is no futex. */
#define FLQ_SHM_WAIT_POLL_NS 1000000

typedef struct flq_shm_wait {
    uint32_t seq;     /* the futex word: bumped by every notify that found waiters */
    uint32_t waiters; /* threads between prepare and the end of sleep/cancel */
} flq_shm_wait;

FLQ_INLINE int flq_shm_wait_supported(void)
{
#if defined(__linux__)
    return 1;
#else
    return 0;
#endif
}

/* Waiter, step 1: count in and return the key to sleep on. */
FLQ_INLINE uint32_t flq_shm_wait_prepare(flq_shm_wait *w)
{
    flq_fetch_add_u32_relaxed(&w->waiters, 1);
    /* seq_cst: the count above is visible before the caller re-checks its
     * condition (pairs with the fence in flq_shm_wait_notify). */
    flq_fence_seq_cst();
    return flq_load_u32_acquire(&w->seq);
}

/* Waiter, step 2a: the condition turned true after prepare; count out. */
FLQ_INLINE void flq_shm_wait_cancel(flq_shm_wait *w)
{
    flq_fetch_sub_u32_relaxed(&w->waiters, 1);
}

/* Waiter, step 2b: sleep while seq equals key, at most timeout_ns
 * (negative: no limit), then count out. Returns 0 when seq had moved (a
 * notify came), 1 otherwise (timeout, signal or spurious wake-up). */
static inline int flq_shm_wait_sleep(flq_shm_wait *w, uint32_t key, int64_t timeout_ns)
{
#if defined(__linux__)
    if (flq_load_u32_acquire(&w->seq) == key) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. The
         * result does not matter: the key comparison below decides. */
        (void)syscall(SYS_futex, &w->seq, FUTEX_WAIT, key, tsp, NULL, 0);
    }
#else
    /* acquire: as below. */
    if (flq_load_u32_acquire(&w->seq) == key) {
        int64_t ns = timeout_ns < 0 || timeout_ns > FLQ_SHM_WAIT_POLL_NS ? FLQ_SHM_WAIT_POLL_NS : timeout_ns;
#  if defined(_WIN32)
        Sleep((DWORD)((ns + 999999) / 1000000));
#  else
        struct timespec ts = {0, (long)ns};
        nanosleep(&ts, NULL);
#  endif
    }
#endif
    /* acquire: a moved seq carries the notifier's condition change with it. */
    int notified = flq_load_u32_acquire(&w->seq) != key;
    flq_fetch_sub_u32_relaxed(&w->waiters, 1);
    return notified ? 0 : 1;
}

/* Notifier: after making the condition true, wake one sleeper (all = 0)
 * or all of them (all = 1). A fence and a load when nobody waits. */
FLQ_INLINE void flq_shm_wait_notify(flq_shm_wait *w, int all)
{
    /* seq_cst: the caller's condition change is visible before we read the
     * waiter count (pairs with the fence in flq_shm_wait_prepare); it also
     * orders that change before the bump below, as a release would. */
    flq_fence_seq_cst();
    if (flq_load_u32_relaxed(&w->waiters) == 0)
        return;
    flq_fetch_add_u32_relaxed(&w->seq, 1);
#if defined(__linux__)
    (void)syscall(SYS_futex, &w->seq, FUTEX_WAKE, all ? INT_MAX : 1, NULL, NULL, 0);
#else
    (void)all;
#endif
}

/* A pause for a polling loop before the caller commits to sleeping: tells
 * the CPU (and a sibling hyperthread) that this is a spin. */
FLQ_INLINE void flq_shm_relax(void)
{
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
    __asm__ __volatile__("yield");
#elif defined(_MSC_VER)
    YieldProcessor();
#endif
}

/* Give the CPU to another runnable thread, if any, in a longer polling
 * loop: on a machine with fewer cores than busy processes, the one we wait
 * for may need this core. */
FLQ_INLINE void flq_shm_yield(void)
{
#if defined(_WIN32)
    SwitchToThread();
#elif defined(__unix__) || defined(__APPLE__)
    sched_yield();
#endif
}

/* Whether any thread of any process is counted in (dead ones included). */
FLQ_INLINE int flq_shm_wait_has_waiters(const flq_shm_wait *w)
{
    return flq_load_u32_relaxed(&w->waiters) != 0;
}

#endif /* FLINQ_SHMWAIT_H */
