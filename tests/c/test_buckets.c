/*
 * tests/c/test_buckets.c: flinq/buckets.h, the bucketed priority queue.
 *
 *   1. unit: empty pops, FIFO among equal small priorities, negative and
 *      large priorities ordered around the buckets, a bucket ring that wraps
 *      and grows while holding entries, memory returned after a burst;
 *   2. 200,000 random pushes and pops with priorities drawn from negative,
 *      small (bucketed) and large ranges, checked against a reference model
 *      (the smallest (priority, seq) queued), plus visit and clear;
 *   3. the same entries through heap.h: both give one order.
 */
#include "check.h"

#include <string.h>

#include "flinq/buckets.h"

static flq_heap_entry entry(int64_t priority, uint64_t seq)
{
    flq_heap_entry e;
    e.priority = priority;
    e.seq = seq;
    e.item = ITEM(seq);
    return e;
}

static void unit_basic(void)
{
    flq_buckets b;
    flq_heap_entry e, out = {0, 0, NULL};
    flq_buckets_init(&b);
    CHECK_EQ(flq_buckets_pop(&b, &out), 0);
    /* FIFO among equals, lower priority first, around the bucket range */
    int64_t prios[] = {3, 3, 0, 63, 64, -1, 3, 1000000, INT64_MIN, INT64_MAX, 0};
    size_t n = sizeof prios / sizeof prios[0];
    for (size_t i = 0; i < n; i++) {
        e = entry(prios[i], i);
        CHECK_EQ(flq_buckets_push(&b, &e), 0);
    }
    CHECK_EQ(b.size, n);
    uint64_t want[] = {8, 5, 2, 10, 0, 1, 6, 3, 4, 7, 9};
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ(flq_buckets_pop(&b, &out), 1);
        CHECK_EQ(out.seq, want[i]);
        CHECK(out.item == ITEM(want[i]));
        CHECK(out.priority == prios[want[i]]);
    }
    CHECK_EQ(flq_buckets_pop(&b, &out), 0);
    CHECK_EQ(b.nonempty, 0);

    /* a ring that wraps, then grows with entries in it, keeps FIFO */
    uint64_t seq = 0, next_out = 0;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 11; i++) {
            e = entry(7, seq++);
            CHECK_EQ(flq_buckets_push(&b, &e), 0);
        }
        for (int i = 0; i < 9; i++) {
            CHECK_EQ(flq_buckets_pop(&b, &out), 1);
            CHECK_EQ(out.seq, next_out);
            next_out++;
        }
    }
    while (flq_buckets_pop(&b, &out)) {
        CHECK_EQ(out.seq, next_out);
        next_out++;
    }
    CHECK_EQ(next_out, seq);

    /* a burst's ring is freed once drained; a small one is kept */
    for (uint64_t i = 0; i < 3 * FLQ_BUCKET_KEEP_CAPACITY; i++) {
        e = entry(2, i);
        CHECK_EQ(flq_buckets_push(&b, &e), 0);
    }
    CHECK(b.bucket[2].mask + 1 > FLQ_BUCKET_KEEP_CAPACITY);
    while (flq_buckets_pop(&b, &out))
        ;
    CHECK(b.bucket[2].slots == NULL);
    CHECK(b.bucket[7].slots != NULL);
    CHECK_EQ(flq_buckets_reserve(&b, 5, 1000), 0);
    CHECK(b.bucket[5].mask + 1 >= 1000);
    CHECK_EQ(flq_buckets_reserve(&b, -5, 1000), 0);
    CHECK(b.overflow.capacity >= 1000);
    flq_buckets_destroy(&b);
    printf("  unit: order around the buckets, FIFO through wrap and growth, burst memory returned ok\n");
}

/* The reference model: every queued entry in an array; pop takes the least. */
typedef struct {
    flq_heap_entry *e;
    size_t n;
} model;

static int model_pop(model *m, flq_heap_entry *out)
{
    if (m->n == 0)
        return 0;
    size_t best = 0;
    for (size_t i = 1; i < m->n; i++)
        if (flq_heap_key_less(&m->e[i], &m->e[best], NULL))
            best = i;
    *out = m->e[best];
    m->e[best] = m->e[--m->n];
    return 1;
}

static int count_entry(const flq_heap_entry *e, void *arg)
{
    (void)e;
    (*(size_t *)arg)++;
    return 0;
}

static int64_t random_priority(uint64_t *seed)
{
    switch (rng_range(seed, 0, 9)) {
    case 0:
        return -(int64_t)rng_range(seed, 1, 5);
    case 1:
        return (int64_t)rng_range(seed, 64, 70);
    case 2:
        return (int64_t)rng_range(seed, 0, 63);
    default:
        return (int64_t)rng_range(seed, 0, 9); /* the common case: a few small ones */
    }
}

static void random_against_model(void)
{
    flq_buckets b;
    flq_heap h;
    model m;
    m.e = (flq_heap_entry *)malloc(200000 * sizeof(flq_heap_entry));
    m.n = 0;
    CHECK(m.e != NULL);
    if (m.e == NULL)
        return;
    flq_buckets_init(&b);
    flq_heap_init(&h);
    uint64_t seed = 42, seq = 0, pops = 0;
    for (int op = 0; op < 200000; op++) {
        /* phases that grow, then shrink, the queue */
        int push = (op / 20000) % 2 == 0 ? rng_range(&seed, 0, 9) < 7 : rng_range(&seed, 0, 9) < 3;
        if (push && m.n < 1000) {
            flq_heap_entry e = entry(random_priority(&seed), seq++);
            CHECK_EQ(flq_buckets_push(&b, &e), 0);
            CHECK_EQ(flq_heap_push(&h, &e), 0);
            m.e[m.n++] = e;
        } else {
            flq_heap_entry want = {0, 0, NULL}, got = {0, 0, NULL}, other = {0, 0, NULL};
            int had = model_pop(&m, &want);
            CHECK_EQ(flq_buckets_pop(&b, &got), had);
            CHECK_EQ(flq_heap_pop(&h, &other), had);
            if (had) {
                CHECK_EQ(got.seq, want.seq);
                CHECK(got.priority == want.priority && got.item == want.item);
                CHECK_EQ(other.seq, want.seq);
                pops++;
            }
        }
        CHECK_EQ(b.size, m.n);
    }
    size_t visited = 0;
    CHECK_EQ(flq_buckets_visit(&b, count_entry, &visited), 0);
    CHECK_EQ(visited, m.n);
    flq_buckets_clear(&b);
    CHECK_EQ(b.size, 0);
    flq_heap_entry out;
    CHECK_EQ(flq_buckets_pop(&b, &out), 0);
    flq_buckets_destroy(&b);
    flq_heap_destroy(&h);
    free(m.e);
    printf("  random: 200000 ops (%" PRIu64 " pops) match the model and heap.h; visit and clear ok\n", pops);
}

int main(void)
{
    printf("test_buckets: %d buckets, overflow heap\n", FLQ_BUCKETS);
    unit_basic();
    random_against_model();
    return check_report("test_buckets");
}
