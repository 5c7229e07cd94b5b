/*
 * tests/c/test_ring.c: flinq/ring.h, the bounded SPMC ring.
 *
 *   1. single-thread unit checks: empty pops, full ring rejects pushes, size,
 *      wrap-around placement, push_many/pop_many partial results, capacity 1;
 *   2. 1 producer + 4 consumers move N items (FLINQ_C_ITEMS, default 10M)
 *      through a 1024-slot ring with try_push/try_pop: every item arrives
 *      exactly once and each consumer sees strictly increasing values;
 *   3. the same with push_many/pop_many in random batches of 1..100, where
 *      each popped batch must also be contiguous;
 *   4. the same batches with serialized consumers (pop_many_serial under a
 *      mutex that stands in for the GIL) against a free-running producer.
 */
#include "check.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "flinq/ring.h"

#define NCONS 4
#define RING_CAP 1024
#define MAX_BATCH 100

/* ------------------------------------------------------------ unit checks */

static void unit_basic(void)
{
    void *slots[8];
    void *buf[32];
    void *out = NULL;
    flq_ring r;
    flq_ring_init(&r, slots, 8);
    CHECK_EQ(flq_ring_capacity(&r), 8);
    CHECK_EQ(flq_ring_size(&r), 0);
    CHECK(flq_ring_try_pop(&r, &out) == 0);
    CHECK_EQ(flq_ring_pop_many(&r, buf, 32), 0);

    for (uint64_t i = 0; i < 8; i++) {
        CHECK(flq_ring_try_push(&r, ITEM(i)) == 1);
        CHECK_EQ(flq_ring_size(&r), i + 1);
    }
    /* full: every push form is rejected and nothing changes */
    CHECK(flq_ring_try_push(&r, ITEM(99)) == 0);
    buf[0] = ITEM(100);
    buf[1] = ITEM(101);
    CHECK_EQ(flq_ring_push_many(&r, buf, 2), 0);
    CHECK_EQ(flq_ring_size(&r), 8);

    for (uint64_t i = 0; i < 3; i++) {
        CHECK(flq_ring_try_pop(&r, &out) == 1);
        CHECK(out == ITEM(i));
    }
    CHECK_EQ(flq_ring_size(&r), 5);

    /* wrap-around: indices 8, 9, 10 land in slots 0, 1, 2 */
    for (uint64_t i = 8; i < 11; i++)
        CHECK(flq_ring_try_push(&r, ITEM(i)) == 1);
    CHECK(slots[0] == ITEM(8) && slots[1] == ITEM(9) && slots[2] == ITEM(10));
    CHECK(flq_ring_try_push(&r, ITEM(99)) == 0);
    CHECK_EQ(flq_ring_size(&r), 8);

    CHECK_EQ(flq_ring_pop_many(&r, buf, 0), 0);
    CHECK_EQ(flq_ring_size(&r), 8);
    CHECK_EQ(flq_ring_pop_many(&r, buf, 32), 8);
    for (uint64_t i = 0; i < 8; i++)
        CHECK(buf[i] == ITEM(i + 3));
    CHECK_EQ(flq_ring_size(&r), 0);
    CHECK(flq_ring_try_pop(&r, &out) == 0);

    /* push_many into room for fewer items appends a prefix */
    void *src[20];
    for (uint64_t i = 0; i < 20; i++)
        src[i] = ITEM(1000 + i);
    CHECK_EQ(flq_ring_push_many(&r, src, 20), 8);
    CHECK_EQ(flq_ring_push_many(&r, src + 8, 12), 0);
    CHECK_EQ(flq_ring_pop_many(&r, buf, 5), 5);
    for (uint64_t i = 0; i < 5; i++)
        CHECK(buf[i] == ITEM(1000 + i));
    CHECK_EQ(flq_ring_push_many(&r, src + 8, 12), 5);
    CHECK_EQ(flq_ring_size(&r), 8);
    CHECK_EQ(flq_ring_push_many(&r, src, 0), 0);
    CHECK_EQ(flq_ring_pop_many(&r, buf, 32), 8);
    for (uint64_t i = 0; i < 8; i++)
        CHECK(buf[i] == ITEM(1005 + i));
    CHECK_EQ(flq_ring_size(&r), 0);
    printf("  unit: empty/full/size/wrap/partial push_many+pop_many ok\n");
}

static void unit_capacity_one(void)
{
    void *slot[1];
    void *out = NULL;
    flq_ring r;
    flq_ring_init(&r, slot, 1);
    for (uint64_t i = 0; i < 1000; i++) {
        CHECK(flq_ring_try_push(&r, ITEM(i)) == 1);
        CHECK(flq_ring_try_push(&r, ITEM(i + 5000)) == 0);
        CHECK_EQ(flq_ring_size(&r), 1);
        CHECK(flq_ring_try_pop(&r, &out) == 1);
        CHECK(out == ITEM(i));
        CHECK(flq_ring_try_pop(&r, &out) == 0);
    }
    printf("  unit: capacity-1 ring wraps 1000 times ok\n");
}

/* Random single-thread operations against a counter model. */
static void unit_random(void)
{
    enum { CAP = 16 };
    void *slots[CAP];
    void *buf[3 * CAP];
    void *out = NULL;
    flq_ring r;
    flq_ring_init(&r, slots, CAP);
    uint64_t rng = 12345, next_in = 0, next_out = 0;
    for (int step = 0; step < 200000; step++) {
        uint64_t count = next_in - next_out;
        CHECK_EQ(flq_ring_size(&r), count);
        switch (rng_next(&rng) % 4) {
        case 0: {
            int ok = flq_ring_try_push(&r, ITEM(next_in));
            CHECK(ok == (count < CAP));
            next_in += (uint64_t)ok;
            break;
        }
        case 1: {
            size_t want = (size_t)rng_range(&rng, 0, 2 * CAP);
            for (size_t i = 0; i < want; i++)
                buf[i] = ITEM(next_in + i);
            size_t got = flq_ring_push_many(&r, buf, want);
            CHECK_EQ(got, want < CAP - count ? want : CAP - count);
            next_in += got;
            break;
        }
        case 2: {
            int ok = flq_ring_try_pop(&r, &out);
            CHECK(ok == (count > 0));
            if (ok) {
                CHECK(out == ITEM(next_out));
                next_out++;
            }
            break;
        }
        default: {
            size_t max = (size_t)rng_range(&rng, 0, 2 * CAP);
            size_t got = flq_ring_pop_many(&r, buf, max);
            CHECK_EQ(got, max < count ? max : count);
            for (size_t i = 0; i < got; i++)
                CHECK(buf[i] == ITEM(next_out + i));
            next_out += got;
            break;
        }
        }
    }
    printf("  unit: 200000 random ops vs. counter model ok (%" PRIu64 " items, %" PRIu64 " laps)\n", next_in,
           next_in / CAP);
}

/* ------------------------------------------------------------ concurrency */

static flq_ring g_ring; /* static storage honours the cache-line alignment */
static void *g_slots[RING_CAP];
static uint8_t *g_seen; /* per-item receive counter */
static uint64_t g_items;
static int g_batch; /* 0: try_push/try_pop, 1: push_many/pop_many, 2: pop_many_serial */
static pthread_mutex_t g_consumers_lock = PTHREAD_MUTEX_INITIALIZER; /* mode 2's serializer */
static atomic_int g_done;

typedef struct {
    int id;
    uint64_t got;
    uint64_t seed;
} consumer_arg;

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
    uint64_t last = 0;
    for (;;) {
        /* done is read before the pop: a pop that then finds the ring empty
         * proves every item was claimed. */
        int done = atomic_load_explicit(&g_done, memory_order_acquire);
        size_t k;
        if (g_batch == 2) {
            size_t max = (size_t)rng_range(&c->seed, 1, MAX_BATCH);
            pthread_mutex_lock(&g_consumers_lock);
            k = flq_ring_pop_many_serial(&g_ring, buf, max);
            pthread_mutex_unlock(&g_consumers_lock);
            for (size_t j = 1; j < k; j++)
                if (ITEM_VALUE(buf[j]) != ITEM_VALUE(buf[j - 1]) + 1)
                    CHECK(ITEM_VALUE(buf[j]) == ITEM_VALUE(buf[j - 1]) + 1);
        } else if (g_batch) {
            k = flq_ring_pop_many(&g_ring, buf, (size_t)rng_range(&c->seed, 1, MAX_BATCH));
            for (size_t j = 1; j < k; j++)
                if (ITEM_VALUE(buf[j]) != ITEM_VALUE(buf[j - 1]) + 1)
                    CHECK(ITEM_VALUE(buf[j]) == ITEM_VALUE(buf[j - 1]) + 1); /* one claim, contiguous */
        } else {
            k = (size_t)flq_ring_try_pop(&g_ring, buf);
        }
        if (k == 0) {
            if (done)
                break;
            sched_yield();
            continue;
        }
        for (size_t j = 0; j < k; j++)
            record(ITEM_VALUE(buf[j]), &last);
        c->got += k;
    }
    return NULL;
}

static void *producer(void *arg)
{
    uint64_t seed = *(uint64_t *)arg;
    void *buf[MAX_BATCH];
    uint64_t i = 0;
    while (i < g_items) {
        if (g_batch) {
            size_t m = (size_t)rng_range(&seed, 1, MAX_BATCH);
            if (m > g_items - i)
                m = (size_t)(g_items - i);
            for (size_t k = 0; k < m; k++)
                buf[k] = ITEM(i + k);
            size_t off = 0;
            while (off < m) {
                size_t k = flq_ring_push_many(&g_ring, buf + off, m - off);
                off += k;
                if (k == 0)
                    sched_yield();
            }
            i += m;
        } else {
            while (!flq_ring_try_push(&g_ring, ITEM(i)))
                sched_yield();
            i++;
        }
    }
    atomic_store_explicit(&g_done, 1, memory_order_release);
    return NULL;
}

static void concurrent_phase(int batch, uint64_t items)
{
    g_items = items;
    g_batch = batch;
    atomic_store(&g_done, 0);
    g_seen = (uint8_t *)calloc((size_t)items, 1);
    CHECK(g_seen != NULL);
    if (g_seen == NULL)
        return;
    flq_ring_init(&g_ring, g_slots, RING_CAP);

    consumer_arg args[NCONS];
    pthread_t cons[NCONS], prod;
    uint64_t prod_seed = 777 + (uint64_t)batch;
    double t0 = now_sec();
    for (int i = 0; i < NCONS; i++) {
        args[i].id = i;
        args[i].got = 0;
        args[i].seed = 1000 + (uint64_t)i;
        CHECK(pthread_create(&cons[i], NULL, consumer, &args[i]) == 0);
    }
    CHECK(pthread_create(&prod, NULL, producer, &prod_seed) == 0);
    CHECK(pthread_join(prod, NULL) == 0);
    uint64_t total = 0;
    for (int i = 0; i < NCONS; i++) {
        CHECK(pthread_join(cons[i], NULL) == 0);
        total += args[i].got;
    }
    double dt = now_sec() - t0;

    CHECK_EQ(total, items);
    uint64_t missing = 0, dup = 0;
    for (uint64_t i = 0; i < items; i++) {
        missing += g_seen[i] == 0;
        dup += g_seen[i] > 1;
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(dup, 0);
    CHECK_EQ(flq_ring_size(&g_ring), 0);
    printf("  1P/%dC %-22s %" PRIu64 " items: %" PRIu64 " missing, %" PRIu64 " duplicated; %.2fs; per consumer:", NCONS,
           batch == 2 ? "pop_many_serial" : batch ? "push_many/pop_many" : "try_push/try_pop", items, missing,
           dup, dt);
    for (int i = 0; i < NCONS; i++)
        printf(" %" PRIu64, args[i].got);
    printf("\n");
    free(g_seen);
    g_seen = NULL;
}

int main(void)
{
    uint64_t items = items_from_env(10000000);
    printf("test_ring: ring capacity %d, %d consumers, %" PRIu64 " items per concurrent phase\n", RING_CAP, NCONS,
           items);
    unit_basic();
    unit_capacity_one();
    unit_random();
    concurrent_phase(0, items);
    concurrent_phase(1, items);
    concurrent_phase(2, items);
    return check_report("test_ring");
}
