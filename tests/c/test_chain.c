/*
 * tests/c/test_chain.c: flinq/chain.h, the unbounded SPMC FIFO of segments.
 *
 *   1. single-thread: empty pops, FIFO across segment boundaries (first
 *      segment FIRST_CAPACITY, then doubling up to MAX_CAPACITY), head_seg
 *      moving on and reclaim freeing retired segments, steady-state reuse of
 *      one segment, push_many/pop_many of large batches, random operations
 *      against a counter model, destroy with items (and retired segments)
 *      left (LeakSanitizer checks the frees in asan mode);
 *   2. 1 producer + 4 consumers, N items (FLINQ_C_ITEMS, default 10M) with
 *      push/pop, in rounds: consumers are parked while the producer runs far
 *      ahead (a burst of many linked segments), then both run; each round
 *      ends with a full drain, after which reclaim must free every retired
 *      segment. Every item arrives exactly once, each consumer sees strictly
 *      increasing values;
 *   3. the same with push_many/pop_many in random batches of 1..100, free
 *      running (the producer never blocks, so it runs ahead as it likes);
 *   4. the same batches with serialized consumers (pop_many_serial under a
 *      mutex that stands in for the GIL): reclamation must free what they
 *      left behind while they run, without the `active` count.
 */
#include "check.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "flinq/chain.h"

#define NCONS 4
#define MAX_BATCH 100
#define ROUNDS 10

/* Segments from the oldest unfreed one to the tail (producer-side view). */
static uint64_t live_segments(const flq_chain *c)
{
    uint64_t n = 0;
    for (const flq_segment *s = c->oldest; s != NULL; s = s->next)
        n++;
    return n;
}

static int is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* ------------------------------------------------------------ unit checks */

static void unit_empty(void)
{
    flq_chain c;
    void *buf[8];
    void *out = NULL;
    CHECK(flq_chain_init(&c) == 0);
    CHECK(flq_chain_pop(&c, &out) == 0);
    CHECK_EQ(flq_chain_pop_many(&c, buf, 8), 0);
    CHECK_EQ(flq_chain_pop_many(&c, buf, 0), 0);
    CHECK_EQ(flq_chain_push_many(&c, buf, 0), 0);
    flq_chain_reclaim(&c);
    CHECK_EQ(live_segments(&c), 1);
    CHECK_EQ(flq_ring_capacity(&c.head_seg->ring), FLQ_CHAIN_FIRST_CAPACITY);
    flq_chain_destroy(&c);
    CHECK(c.head_seg == NULL && c.tail_seg == NULL && c.oldest == NULL);
    printf("  unit: empty chain ok\n");
}

static void unit_boundary(void)
{
    flq_chain c;
    void *out = NULL;
    CHECK(flq_chain_init(&c) == 0);
    flq_segment *first = c.tail_seg;
    for (uint64_t i = 0; i < FLQ_CHAIN_FIRST_CAPACITY; i++)
        CHECK(flq_chain_push(&c, ITEM(i)) == 0);
    CHECK(c.tail_seg == first); /* exactly full, not yet grown */
    CHECK(flq_chain_push(&c, ITEM(FLQ_CHAIN_FIRST_CAPACITY)) == 0);
    CHECK(c.tail_seg != first && first->next == c.tail_seg);
    CHECK_EQ(flq_ring_capacity(&c.tail_seg->ring), 2 * FLQ_CHAIN_FIRST_CAPACITY);
    CHECK_EQ(live_segments(&c), 2);
    for (uint64_t i = 0; i < FLQ_CHAIN_FIRST_CAPACITY; i++) {
        CHECK(flq_chain_pop(&c, &out) == 1);
        CHECK(out == ITEM(i));
    }
    CHECK(c.head_seg == first); /* drained but not yet stepped past */
    CHECK(flq_chain_pop(&c, &out) == 1);
    CHECK(out == ITEM(FLQ_CHAIN_FIRST_CAPACITY));
    CHECK(c.head_seg == c.tail_seg); /* the pop crossed the boundary */
    CHECK(flq_chain_pop(&c, &out) == 0);
    CHECK(c.oldest == first);
    flq_chain_reclaim(&c); /* first is retired and nobody is popping */
    CHECK(c.oldest == c.head_seg);
    CHECK_EQ(live_segments(&c), 1);
    flq_chain_destroy(&c);
    printf("  unit: FIFO across the first segment boundary, head moves on, reclaim frees ok\n");
}

static void unit_steady_reuse(void)
{
    flq_chain c;
    void *out = NULL;
    CHECK(flq_chain_init(&c) == 0);
    flq_segment *first = c.tail_seg;
    uint64_t next_in = 0, next_out = 0;
    /* queue length stays below the first capacity: one segment, reused as a ring */
    for (int round = 0; round < 100000; round++) {
        for (int k = 0; k < 1 + round % 20; k++)
            CHECK(flq_chain_push(&c, ITEM(next_in++)) == 0);
        while (next_out < next_in) {
            CHECK(flq_chain_pop(&c, &out) == 1);
            CHECK(out == ITEM(next_out));
            next_out++;
        }
    }
    CHECK(c.tail_seg == first && c.head_seg == first && c.oldest == first);
    flq_chain_destroy(&c);
    printf("  unit: %" PRIu64 " items through one reused segment, no growth ok\n", next_in);
}

static void unit_large(void)
{
    enum { N = 300000 };
    flq_chain c;
    void **items = (void **)malloc(N * sizeof(void *));
    void **outs = (void **)malloc(N * sizeof(void *));
    CHECK(items != NULL && outs != NULL);
    if (items == NULL || outs == NULL)
        return;
    for (uint64_t i = 0; i < N; i++)
        items[i] = ITEM(i);

    /* one item at a time: capacities double up to the maximum */
    CHECK(flq_chain_init(&c) == 0);
    for (uint64_t i = 0; i < N; i++)
        CHECK(flq_chain_push(&c, items[i]) == 0);
    uint64_t segs = 0, expect_cap = FLQ_CHAIN_FIRST_CAPACITY, total_cap = 0;
    for (const flq_segment *s = c.oldest; s != NULL; s = s->next, segs++) {
        CHECK_EQ(flq_ring_capacity(&s->ring), expect_cap);
        total_cap += flq_ring_capacity(&s->ring);
        if (expect_cap < FLQ_CHAIN_MAX_CAPACITY)
            expect_cap *= 2;
    }
    CHECK(total_cap >= N);
    uint64_t rng = 99, next_out = 0;
    while (next_out < N) {
        size_t max = (size_t)rng_range(&rng, 1, 9000);
        size_t got = flq_chain_pop_many(&c, outs, max);
        CHECK_EQ(got, max < N - next_out ? max : N - next_out);
        for (size_t i = 0; i < got; i++)
            if (outs[i] != ITEM(next_out + i))
                CHECK(outs[i] == ITEM(next_out + i));
        next_out += got;
        if (got == 0)
            break;
    }
    CHECK_EQ(next_out, N);
    void *out = NULL;
    CHECK(flq_chain_pop(&c, &out) == 0);
    flq_chain_reclaim(&c);
    CHECK(c.oldest == c.head_seg);
    CHECK(live_segments(&c) <= 2);
    flq_chain_destroy(&c);
    printf("  unit: %d items one by one over %" PRIu64 " segments (32 doubling to %u), pop_many up to 9000 ok\n",
           N, segs, FLQ_CHAIN_MAX_CAPACITY);

    /* one big push_many: segments sized for the batch, capped at the maximum */
    CHECK(flq_chain_init(&c) == 0);
    CHECK_EQ(flq_chain_push_many(&c, items, N), N);
    for (const flq_segment *s = c.oldest; s != NULL; s = s->next) {
        CHECK(is_pow2(flq_ring_capacity(&s->ring)));
        CHECK(flq_ring_capacity(&s->ring) <= FLQ_CHAIN_MAX_CAPACITY);
    }
    next_out = 0;
    while (next_out < N) {
        CHECK(flq_chain_pop(&c, &out) == 1);
        if (out != ITEM(next_out))
            CHECK(out == ITEM(next_out));
        next_out++;
    }
    CHECK(flq_chain_pop(&c, &out) == 0);
    flq_chain_destroy(&c);
    printf("  unit: one push_many of %d items, popped one by one in order ok\n", N);
    free(items);
    free(outs);
}

/* Random single-thread operations against a counter model. */
static void unit_random(void)
{
    enum { MAXB = 5000 };
    static void *buf[MAXB + MAXB / 2];
    flq_chain c;
    void *out = NULL;
    CHECK(flq_chain_init(&c) == 0);
    uint64_t rng = 4242, next_in = 0, next_out = 0, reclaims_ok = 0;
    for (int step = 0; step < 100000; step++) {
        uint64_t count = next_in - next_out;
        uint64_t op = rng_next(&rng) % 9;
        if (op < 2) {
            CHECK(flq_chain_push(&c, ITEM(next_in)) == 0);
            next_in++;
        } else if (op < 4) {
            size_t n = (size_t)rng_range(&rng, 0, MAXB);
            for (size_t i = 0; i < n; i++)
                buf[i] = ITEM(next_in + i);
            CHECK_EQ(flq_chain_push_many(&c, buf, n), n);
            next_in += n;
        } else if (op < 6) {
            int ok = flq_chain_pop(&c, &out);
            CHECK(ok == (count > 0));
            if (ok) {
                CHECK(out == ITEM(next_out));
                next_out++;
            }
        } else if (op < 8) {
            size_t max = (size_t)rng_range(&rng, 0, MAXB + MAXB / 2);
            size_t got = flq_chain_pop_many(&c, buf, max);
            CHECK_EQ(got, max < count ? max : count);
            for (size_t i = 0; i < got; i++)
                if (buf[i] != ITEM(next_out + i))
                    CHECK(buf[i] == ITEM(next_out + i));
            next_out += got;
        } else {
            flq_chain_reclaim(&c); /* nobody is inside a pop: must free all retired */
            CHECK(c.oldest == c.head_seg);
            reclaims_ok++;
        }
    }
    while (flq_chain_pop(&c, &out)) {
        CHECK(out == ITEM(next_out));
        next_out++;
    }
    CHECK_EQ(next_out, next_in);
    flq_chain_destroy(&c);
    printf("  unit: 100000 random push/push_many/pop/pop_many/reclaim ops vs. counter model ok (%" PRIu64
           " items)\n",
           next_in);
}

static void unit_destroy_with_items(void)
{
    flq_chain c;
    void *out = NULL;
    void *buf[64];
    /* items left in the first segment only */
    CHECK(flq_chain_init(&c) == 0);
    for (uint64_t i = 0; i < 10; i++)
        CHECK(flq_chain_push(&c, ITEM(i)) == 0);
    flq_chain_destroy(&c);
    CHECK(c.head_seg == NULL && c.tail_seg == NULL && c.oldest == NULL);

    /* many segments, partly drained, retired segments never reclaimed */
    CHECK(flq_chain_init(&c) == 0);
    for (uint64_t i = 0; i < 50000; i++)
        CHECK(flq_chain_push(&c, ITEM(i)) == 0);
    uint64_t popped = 0;
    while (popped < 20000) {
        size_t got = flq_chain_pop_many(&c, buf, 64);
        CHECK(got > 0);
        if (got == 0)
            break;
        CHECK(buf[0] == ITEM(popped));
        popped += got;
    }
    CHECK(c.oldest != c.head_seg); /* retired segments are still allocated */
    flq_chain_destroy(&c);

    /* drained completely but never reclaimed */
    CHECK(flq_chain_init(&c) == 0);
    for (uint64_t i = 0; i < 5000; i++)
        CHECK(flq_chain_push(&c, ITEM(i)) == 0);
    while (flq_chain_pop(&c, &out))
        ;
    flq_chain_destroy(&c);
    printf("  unit: destroy with items left / with retired segments ok (leaks: see LeakSanitizer in asan mode)\n");
}

/* ------------------------------------------------------------ concurrency */

static flq_chain g_chain; /* static storage honours the cache-line alignment */
static uint8_t *g_seen;
static uint64_t g_items;
static int g_batch; /* 0: push/pop, 1: push_many/pop_many, 2: pop_many_serial */
static pthread_mutex_t g_consumers_lock = PTHREAD_MUTEX_INITIALIZER; /* mode 2's serializer */
static atomic_int g_done;
static atomic_int g_gate_open; /* consumers park while 0 */
static atomic_int g_parked;

typedef struct {
    /* own cache line: the producer polls progress to see a full drain */
    _Alignas(64) _Atomic uint64_t progress;
    int id;
    uint64_t seed;
    uint64_t batch_gaps; /* pop_many results that were not contiguous */
} consumer_arg;

static consumer_arg g_cons[NCONS];

static void record(uint64_t v, uint64_t *last)
{
    if (v < 1 || v > g_items) {
        CHECK(v >= 1 && v <= g_items);
        return;
    }
    if (v <= *last)
        CHECK(v > *last); /* per consumer, claims come in FIFO order */
    *last = v;
    g_seen[v - 1]++;
}

static void *consumer(void *arg)
{
    consumer_arg *c = (consumer_arg *)arg;
    void *buf[MAX_BATCH];
    uint64_t last = 0, got = 0;
    for (;;) {
        if (!atomic_load_explicit(&g_gate_open, memory_order_acquire)) {
            atomic_fetch_add(&g_parked, 1);
            while (!atomic_load_explicit(&g_gate_open, memory_order_acquire))
                sched_yield();
            atomic_fetch_sub(&g_parked, 1);
        }
        /* done is read before the pop: a pop that then finds the chain empty
         * proves every item was claimed. */
        int done = atomic_load_explicit(&g_done, memory_order_acquire);
        size_t k;
        if (g_batch == 2) {
            size_t max = (size_t)rng_range(&c->seed, 1, MAX_BATCH);
            pthread_mutex_lock(&g_consumers_lock);
            k = flq_chain_pop_many_serial(&g_chain, buf, max);
            pthread_mutex_unlock(&g_consumers_lock);
            for (size_t j = 1; j < k; j++) /* one consumer at a time: always contiguous */
                if (ITEM_VALUE(buf[j]) != ITEM_VALUE(buf[j - 1]) + 1)
                    CHECK(ITEM_VALUE(buf[j]) == ITEM_VALUE(buf[j - 1]) + 1);
        } else if (g_batch) {
            k = flq_chain_pop_many(&g_chain, buf, (size_t)rng_range(&c->seed, 1, MAX_BATCH));
            /* A batch claims once per segment crossed, so where it spans a
             * boundary another consumer may have taken the first items of
             * the next segment: increasing (checked in record), not always
             * contiguous. Count the gaps for the report. */
            for (size_t j = 1; j < k; j++)
                if (ITEM_VALUE(buf[j]) != ITEM_VALUE(buf[j - 1]) + 1)
                    c->batch_gaps++;
        } else {
            k = (size_t)flq_chain_pop(&g_chain, buf);
        }
        if (k == 0) {
            if (done)
                break;
            sched_yield();
            continue;
        }
        for (size_t j = 0; j < k; j++)
            record(ITEM_VALUE(buf[j]), &last);
        got += k;
        atomic_store_explicit(&c->progress, got, memory_order_release);
    }
    return NULL;
}

static uint64_t consumed_total(void)
{
    uint64_t sum = 0;
    for (int i = 0; i < NCONS; i++)
        sum += atomic_load_explicit(&g_cons[i].progress, memory_order_acquire);
    return sum;
}

typedef struct {
    uint64_t seed;
    uint64_t segments_linked; /* tail_seg changes seen by the producer */
    uint64_t max_live;
    uint64_t freed_at_round_start;
    uint64_t burst_segments;
} producer_stats;

static uint64_t push_range(uint64_t from, uint64_t count, producer_stats *st)
{
    void *buf[MAX_BATCH];
    uint64_t i = from, end = from + count;
    while (i < end) {
        flq_segment *tail_before = g_chain.tail_seg;
        if (g_batch) {
            size_t m = (size_t)rng_range(&st->seed, 1, MAX_BATCH);
            if (m > end - i)
                m = (size_t)(end - i);
            for (size_t k = 0; k < m; k++)
                buf[k] = ITEM(i + k);
            size_t got = flq_chain_push_many(&g_chain, buf, m);
            CHECK_EQ(got, m); /* unbounded: only out of memory could refuse */
            i += m;
        } else {
            CHECK(flq_chain_push(&g_chain, ITEM(i)) == 0);
            i++;
        }
        if (g_chain.tail_seg != tail_before) {
            for (const flq_segment *s = tail_before->next; s != NULL; s = s->next)
                st->segments_linked++;
            if ((st->segments_linked & 15) == 0) { /* sample the live count */
                uint64_t live = live_segments(&g_chain);
                if (live > st->max_live)
                    st->max_live = live;
            }
        }
    }
    return end;
}

/* Rounds: park consumers, reclaim, burst far ahead, open the gate and keep
 * pushing, then wait for a full drain. */
static void *producer_rounds(void *arg)
{
    producer_stats *st = (producer_stats *)arg;
    uint64_t per_round = g_items / ROUNDS, pushed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t this_round = round == ROUNDS - 1 ? g_items - pushed : per_round;
        uint64_t burst = this_round / 2;

        atomic_store_explicit(&g_gate_open, 0, memory_order_release);
        while (atomic_load_explicit(&g_parked, memory_order_acquire) != NCONS)
            sched_yield();
        /* nobody is inside a pop and the chain is drained: every retired
         * segment must go now */
        uint64_t live_before = live_segments(&g_chain);
        flq_chain_reclaim(&g_chain);
        CHECK(g_chain.oldest == g_chain.head_seg);
        uint64_t live_after = live_segments(&g_chain);
        st->freed_at_round_start += live_before - live_after;
        CHECK(live_after <= 2);

        pushed = push_range(pushed, burst, st);
        uint64_t live = live_segments(&g_chain);
        if (live > st->max_live)
            st->max_live = live;
        if (burst >= 4 * FLQ_CHAIN_MAX_CAPACITY)
            CHECK(live >= burst / FLQ_CHAIN_MAX_CAPACITY); /* ran far ahead: many segments linked */
        st->burst_segments += live;

        atomic_store_explicit(&g_gate_open, 1, memory_order_release);
        pushed = push_range(pushed, this_round - burst, st);
        while (consumed_total() != pushed)
            sched_yield();
    }
    CHECK_EQ(pushed, g_items);
    atomic_store_explicit(&g_done, 1, memory_order_release);
    return NULL;
}

static void *producer_free(void *arg)
{
    producer_stats *st = (producer_stats *)arg;
    uint64_t pushed = push_range(0, g_items, st);
    CHECK_EQ(pushed, g_items);
    atomic_store_explicit(&g_done, 1, memory_order_release);
    return NULL;
}

static void concurrent_phase(int batch, uint64_t items)
{
    g_items = items;
    g_batch = batch;
    atomic_store(&g_done, 0);
    atomic_store(&g_gate_open, 1);
    atomic_store(&g_parked, 0);
    g_seen = (uint8_t *)calloc((size_t)items, 1);
    CHECK(g_seen != NULL);
    if (g_seen == NULL)
        return;
    CHECK(flq_chain_init(&g_chain) == 0);

    producer_stats st;
    memset(&st, 0, sizeof st);
    st.seed = 31337 + (uint64_t)batch;
    pthread_t cons[NCONS], prod;
    double t0 = now_sec();
    for (int i = 0; i < NCONS; i++) {
        atomic_store(&g_cons[i].progress, 0);
        g_cons[i].id = i;
        g_cons[i].batch_gaps = 0;
        g_cons[i].seed = 2000 + (uint64_t)i + 100 * (uint64_t)batch;
        CHECK(pthread_create(&cons[i], NULL, consumer, &g_cons[i]) == 0);
    }
    CHECK(pthread_create(&prod, NULL, batch ? producer_free : producer_rounds, &st) == 0);
    CHECK(pthread_join(prod, NULL) == 0);
    for (int i = 0; i < NCONS; i++)
        CHECK(pthread_join(cons[i], NULL) == 0);
    double dt = now_sec() - t0;

    CHECK_EQ(consumed_total(), items);
    uint64_t missing = 0, dup = 0;
    for (uint64_t i = 0; i < items; i++) {
        missing += g_seen[i] == 0;
        dup += g_seen[i] > 1;
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(dup, 0);
    void *out = NULL;
    CHECK((batch == 2 ? flq_chain_pop_many_serial(&g_chain, &out, 1) : (size_t)flq_chain_pop(&g_chain, &out)) == 0);
    uint64_t live_end = live_segments(&g_chain);
    flq_chain_reclaim(&g_chain); /* all joined: every retired segment goes */
    CHECK(g_chain.oldest == g_chain.head_seg);
    uint64_t live_final = live_segments(&g_chain);
    CHECK(live_final <= 2);
    flq_chain_destroy(&g_chain);

    printf("  1P/%dC %-22s %" PRIu64 " items: %" PRIu64 " missing, %" PRIu64 " duplicated; %.2fs\n", NCONS,
           batch == 2 ? "pop_many_serial" : batch ? "push_many/pop_many" : "push/pop, far-ahead", items, missing,
           dup, dt);
    printf("        segments linked %" PRIu64 ", max live %" PRIu64 ", live at end %" PRIu64 " -> %" PRIu64
           " after reclaim",
           st.segments_linked, st.max_live, live_end, live_final);
    if (!batch)
        printf("; %d rounds: %" PRIu64 " segments linked by bursts, %" PRIu64 " freed at round starts",
               ROUNDS, st.burst_segments, st.freed_at_round_start);
    printf("\n        per consumer:");
    uint64_t gaps = 0;
    for (int i = 0; i < NCONS; i++) {
        printf(" %" PRIu64, atomic_load(&g_cons[i].progress));
        gaps += g_cons[i].batch_gaps;
    }
    if (batch)
        printf("; batches with a gap at a segment boundary: %" PRIu64, gaps);
    printf("\n");
    free(g_seen);
    g_seen = NULL;
}

int main(void)
{
    uint64_t items = items_from_env(10000000);
    printf("test_chain: segments %u..%u, %d consumers, %" PRIu64 " items per concurrent phase\n",
           FLQ_CHAIN_FIRST_CAPACITY, FLQ_CHAIN_MAX_CAPACITY, NCONS, items);
    unit_empty();
    unit_boundary();
    unit_steady_reuse();
    unit_large();
    unit_random();
    unit_destroy_with_items();
    concurrent_phase(0, items);
    concurrent_phase(1, items);
    concurrent_phase(2, items);
    return check_report("test_chain");
}
