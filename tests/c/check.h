/*
 * tests/c/check.h: tiny helpers shared by the C tests.
 *
 * Include this FIRST in every test: it defines _POSIX_C_SOURCE, which must
 * precede any system header (park.h needs pthread_condattr_setclock and
 * clock_gettime, which strict -std=c11 hides otherwise).
 */
#ifndef FLINQ_TEST_CHECK_H
#define FLINQ_TEST_CHECK_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static atomic_int check_failures;

static inline void check_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, expr);
    fflush(stderr);
    if (atomic_fetch_add(&check_failures, 1) >= 50) {
        fprintf(stderr, "too many CHECK failures, giving up\n");
        fflush(stdout);
        _Exit(1);
    }
}

static inline void check_fail_u64(const char *file, int line, const char *a, const char *b, uint64_t va, uint64_t vb)
{
    fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%" PRIu64 " != %" PRIu64 ")\n", file, line, a, b, va, vb);
    check_fail(file, line, "(values above)");
}

#define CHECK(cond)                                    \
    do {                                               \
        if (!(cond))                                   \
            check_fail(__FILE__, __LINE__, #cond);     \
    } while (0)

#define CHECK_EQ(a, b)                                                           \
    do {                                                                         \
        uint64_t check_va_ = (uint64_t)(a), check_vb_ = (uint64_t)(b);           \
        if (check_va_ != check_vb_)                                              \
            check_fail_u64(__FILE__, __LINE__, #a, #b, check_va_, check_vb_);    \
    } while (0)

/* Print the verdict and produce the exit status. */
static inline int check_report(const char *name)
{
    int failures = atomic_load(&check_failures);
    if (failures == 0)
        printf("%s: OK\n", name);
    else
        printf("%s: FAILED (%d failed checks)\n", name, failures);
    fflush(stdout);
    return failures == 0 ? 0 : 1;
}

/* splitmix64: small, good enough, per-thread state. */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform-ish in [lo, hi]. */
static inline uint64_t rng_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
    return lo + rng_next(state) % (hi - lo + 1);
}

static inline double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Item count for the concurrent phases: FLINQ_C_ITEMS or the default. */
static inline uint64_t items_from_env(uint64_t fallback)
{
    const char *s = getenv("FLINQ_C_ITEMS");
    if (s == NULL || *s == '\0')
        return fallback;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || v == 0) {
        fprintf(stderr, "bad FLINQ_C_ITEMS=%s, using %" PRIu64 "\n", s, fallback);
        return fallback;
    }
    return (uint64_t)v;
}

/* Encode item index i (0-based) as a non-NULL pointer and back. */
/* Tally a phase where producer p numbered its records 0..per-1 and each
 * delivery did seen[p][seq]++: *missing records never seen, *duplicated
 * ones seen twice or more. Frees seen[0..producers-1]. */
static inline void tally_seen(uint8_t **seen, int producers, uint64_t per, uint64_t *missing, uint64_t *duplicated)
{
    *missing = *duplicated = 0;
    for (int p = 0; p < producers; p++) {
        for (uint64_t s = 0; s < per; s++) {
            *missing += seen[p][s] == 0;
            *duplicated += seen[p][s] > 1;
        }
        free(seen[p]);
    }
}

#define ITEM(i) ((void *)(uintptr_t)((uint64_t)(i) + 1))
#define ITEM_VALUE(p) ((uint64_t)(uintptr_t)(p))

#endif /* FLINQ_TEST_CHECK_H */
