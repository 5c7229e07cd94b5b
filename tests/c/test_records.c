/*
 * tests/c/test_records.c: flinq/records.h, the MPMC ring of fixed-size records.
 *
 *   1. single-thread unit checks: geometry and block validation, empty and
 *      full, wrap-around with a capacity that is not a power of two, runs
 *      published and released out of order, discard, capacity 1;
 *   2. offsets only: a quiescent ring copied byte for byte to another address
 *      keeps working there;
 *   3. random single-thread operations against a model;
 *   4. 4 producers + 4 consumers move N records (FLINQ_C_ITEMS, default
 *      10M) of 24 bytes through a 1000-slot ring in random runs of 1..64,
 *      consumers copying out or reading claimed runs in place at random:
 *      every record arrives exactly once, intact, each consumer sees each
 *      producer's records in increasing order, and no record is torn.
 */
#include "check.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "flinq/alloc.h"
#include "flinq/records.h"

#define NPROD 4
#define NCONS 4
#define RING_CAP 1000 /* not a power of two on purpose */
#define MAX_RUN 64

static flq_records *make_ring(uint64_t record_size, uint64_t capacity)
{
    uint64_t size = flq_records_block_size(record_size, capacity);
    CHECK(size != 0);
    void *block = flq_aligned_alloc((size_t)size, FLQ_CACHELINE);
    CHECK(block != NULL);
    flq_records *r = flq_records_init(block, record_size, capacity);
    CHECK(r == block);
    CHECK_EQ(flq_records_check(block, size), 0);
    return r;
}

/* ------------------------------------------------------------ unit checks */

static void unit_geometry(void)
{
    CHECK_EQ(flq_records_block_size(0, 10), 0);
    CHECK_EQ(flq_records_block_size(8, 0), 0);
    CHECK_EQ(flq_records_block_size((uint64_t)1 << 40, (uint64_t)1 << 40), 0);
    CHECK_EQ(flq_records_block_size(1, UINT64_MAX), 0);
    uint64_t size = flq_records_block_size(3, 7);
    CHECK(size >= sizeof(flq_records) + 2 * 8 * 7 + 3 * 7);
    CHECK_EQ(size % FLQ_CACHELINE, 0);

    flq_records *r = make_ring(3, 7);
    CHECK_EQ(r->data_offset % FLQ_CACHELINE, 0);
    CHECK_EQ(flq_records_check(r, size - 1), -1); /* shorter than the ring */
    CHECK_EQ(flq_records_check(r, 8), -1);
    r->version = 99;
    CHECK_EQ(flq_records_check(r, size), -2);
    r->version = FLQ_RECORDS_VERSION;
    r->capacity = 100; /* geometry no longer matches total_size */
    CHECK_EQ(flq_records_check(r, size), -1);
    r->capacity = 7;
    r->magic = 0;
    CHECK_EQ(flq_records_check(r, size), -1);
    r->magic = FLQ_RECORDS_MAGIC;
    CHECK_EQ(flq_records_check(r, size), 0);
    CHECK(flq_records_init(r, 0, 7) == NULL);
    flq_aligned_free(r);
    printf("  unit: block sizes and validation ok\n");
}

static void unit_basic(void)
{
    enum { CAP = 7, RS = 3 };
    flq_records *r = make_ring(RS, CAP);
    unsigned char in[3 * CAP * RS], out[3 * CAP * RS];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i + 1);
    uint64_t start = 12345;

    CHECK_EQ(flq_records_size(r), 0);
    CHECK_EQ(flq_records_room(r), CAP);
    CHECK_EQ(flq_records_try_get(r, out, 5), 0);
    CHECK_EQ(flq_records_claim(r, 5, &start), 0);
    CHECK_EQ(start, 12345);
    CHECK_EQ(flq_records_reserve(r, CAP + 1, &start), 0); /* never fits */

    CHECK_EQ(flq_records_try_put(r, in, 5), 1);
    CHECK_EQ(flq_records_size(r), 5);
    CHECK_EQ(flq_records_room(r), 2);
    CHECK_EQ(flq_records_try_put(r, in, 3), 0); /* all or none */
    CHECK_EQ(flq_records_size(r), 5);
    CHECK_EQ(flq_records_try_get(r, out, 3), 3);
    CHECK(memcmp(out, in, 3 * RS) == 0);
    /* positions 5..9: slots 5, 6, 0, 1, 2 (wraps) */
    CHECK_EQ(flq_records_try_put(r, in + 5 * RS, 5), 1);
    CHECK_EQ(flq_records_room(r), 0);
    CHECK_EQ(flq_records_try_put(r, in, 1), 0);
    CHECK_EQ(flq_records_try_get(r, out, 100), 7);
    CHECK(memcmp(out, in + 3 * RS, 7 * RS) == 0);
    CHECK_EQ(flq_records_size(r), 0);
    CHECK_EQ(flq_records_room(r), CAP);

    /* a claimed run read in place, up to the end of the data area */
    CHECK_EQ(flq_records_try_put(r, in, 4), 1); /* positions 10..13: slots 3, 4, 5, 6 */
    uint64_t at = 0;
    CHECK_EQ(flq_records_claim(r, 10, &at), 4);
    CHECK_EQ(at, 10);
    CHECK_EQ(flq_records_contiguous(r, at), 4);
    CHECK((char *)flq_records_at(r, at) == (char *)r + r->data_offset + 3 * RS);
    CHECK(memcmp(flq_records_at(r, at), in, 4 * RS) == 0);
    CHECK_EQ(flq_records_room(r), CAP - 4); /* still held until released */
    flq_records_release(r, at, 4);
    CHECK_EQ(flq_records_room(r), CAP);
    CHECK_EQ(flq_records_contiguous(r, 14), 7);
    /* a contiguous claim stops at the end of the data area */
    CHECK_EQ(flq_records_try_put(r, in, 7), 1); /* positions 14..20: slots 0..6 */
    CHECK_EQ(flq_records_try_get(r, out, 5), 5); /* claimed now 19: slot 5 */
    CHECK_EQ(flq_records_try_put(r, in, 5), 1);  /* positions 21..25: slots 0..4 */
    CHECK_EQ(flq_records_claim_contiguous(r, 100, &at), 2);
    CHECK_EQ(at, 19);
    CHECK(memcmp(flq_records_at(r, at), in + 5 * RS, 2 * RS) == 0);
    flq_records_release(r, at, 2);
    CHECK_EQ(flq_records_claim_contiguous(r, 100, &at), 5);
    CHECK_EQ(at, 21);
    flq_records_release(r, at, 5);
    CHECK_EQ(flq_records_size(r), 0);

    /* max 0 takes nothing */
    CHECK_EQ(flq_records_try_put(r, in, 2), 1);
    CHECK_EQ(flq_records_try_get(r, out, 0), 0);
    CHECK_EQ(flq_records_size(r), 2);
    CHECK_EQ(flq_records_discard(r), 2);
    CHECK_EQ(r->discarded, 2);
    CHECK_EQ(flq_records_size(r), 0);
    CHECK_EQ(flq_records_room(r), CAP);
    CHECK_EQ(flq_records_discard(r), 0);

    /* state only moves forward */
    CHECK_EQ(flq_records_state(r), FLQ_RECORDS_OPEN);
    flq_records_set_state(r, FLQ_RECORDS_SHUTDOWN_IMMEDIATE);
    flq_records_set_state(r, FLQ_RECORDS_SHUTDOWN);
    CHECK_EQ(flq_records_state(r), FLQ_RECORDS_SHUTDOWN_IMMEDIATE);
    flq_aligned_free(r);
    printf("  unit: empty/full/all-or-none/wrap/discard/state ok\n");
}

/* Runs finished out of order become visible only when the earlier ones are. */
static void unit_out_of_order(void)
{
    enum { CAP = 10 };
    flq_records *r = make_ring(8, CAP);
    uint64_t a = 0, b = 0, c = 0, got;
    uint64_t vals[CAP], out[CAP];
    for (uint64_t i = 0; i < CAP; i++)
        vals[i] = 100 + i;

    CHECK_EQ(flq_records_reserve(r, 3, &a), 1);
    CHECK_EQ(flq_records_reserve(r, 2, &b), 1);
    CHECK_EQ(flq_records_reserve(r, 4, &c), 1);
    CHECK_EQ(a, 0);
    CHECK_EQ(b, 3);
    CHECK_EQ(c, 5);
    CHECK_EQ(flq_records_room(r), 1);
    flq_records_write(r, c, vals + 5, 4);
    flq_records_publish(r, c, 4);
    CHECK_EQ(flq_records_size(r), 0); /* a and b are still being written */
    flq_records_write(r, b, vals + 3, 2);
    flq_records_publish(r, b, 2);
    CHECK_EQ(flq_records_size(r), 0);
    flq_records_write(r, a, vals, 3);
    flq_records_publish(r, a, 3); /* publishes a, then b and c */
    CHECK_EQ(flq_records_size(r), 9);

    uint64_t s1 = 0, s2 = 0;
    CHECK_EQ(flq_records_claim(r, 4, &s1), 4);
    CHECK_EQ(flq_records_claim(r, 4, &s2), 4);
    CHECK_EQ(s1, 0);
    CHECK_EQ(s2, 4);
    flq_records_read(r, s2, out, 4);
    flq_records_release(r, s2, 4);
    CHECK_EQ(flq_records_room(r), 1); /* s1 is still being read */
    flq_records_read(r, s1, out, 4);
    flq_records_release(r, s1, 4);
    CHECK_EQ(flq_records_room(r), 9);
    got = flq_records_try_get(r, out, CAP);
    CHECK_EQ(got, 1);
    CHECK_EQ(out[0], 108);

    /* a mark left from the previous lap must not publish the next one:
     * position 10 lands in slot 0, whose mark says "ends at 3" */
    CHECK_EQ(flq_records_try_put(r, vals, 1), 1); /* position 9 */
    CHECK_EQ(flq_records_try_get(r, out, CAP), 1);
    CHECK_EQ(flq_records_reserve(r, 2, &a), 1);
    CHECK_EQ(a, 10);
    CHECK_EQ(flq_records_reserve(r, 2, &b), 1);
    flq_records_write(r, b, vals, 2);
    flq_records_publish(r, b, 2);
    CHECK_EQ(flq_records_size(r), 0);
    flq_records_write(r, a, vals + 2, 2);
    flq_records_publish(r, a, 2);
    CHECK_EQ(flq_records_size(r), 4);
    CHECK_EQ(flq_records_try_get(r, out, CAP), 4);
    CHECK(out[0] == 102 && out[1] == 103 && out[2] == 100 && out[3] == 101);
    flq_aligned_free(r);
    printf("  unit: out-of-order publish and release ok\n");
}

static void unit_capacity_one(void)
{
    flq_records *r = make_ring(8, 1);
    for (uint64_t i = 0; i < 1000; i++) {
        uint64_t v = i * 7, out = 0;
        CHECK_EQ(flq_records_try_put(r, &v, 1), 1);
        CHECK_EQ(flq_records_try_put(r, &v, 1), 0);
        CHECK_EQ(flq_records_try_get(r, &out, 5), 1);
        CHECK_EQ(out, v);
        CHECK_EQ(flq_records_try_get(r, &out, 5), 0);
    }
    flq_aligned_free(r);
    printf("  unit: capacity-1 ring wraps 1000 times ok\n");
}

/* A quiescent ring copied elsewhere keeps working: it holds no pointers. */
static void unit_relocated(void)
{
    enum { CAP = 5 };
    flq_records *r = make_ring(8, CAP);
    uint64_t vals[4] = {1, 2, 3, 4}, out[CAP];
    CHECK_EQ(flq_records_try_put(r, vals, 3), 1);
    CHECK_EQ(flq_records_try_get(r, out, 1), 1);
    CHECK_EQ(flq_records_try_put(r, vals + 3, 1), 1);
    uint64_t size = r->total_size;
    void *copy = flq_aligned_alloc((size_t)size, FLQ_CACHELINE);
    CHECK(copy != NULL);
    memcpy(copy, r, (size_t)size);
    memset(r, 0xAB, (size_t)size); /* the original is gone */
    flq_aligned_free(r);
    flq_records *moved = (flq_records *)copy;
    CHECK_EQ(flq_records_check(moved, size), 0);
    CHECK_EQ(flq_records_size(moved), 3);
    CHECK_EQ(flq_records_try_put(moved, vals, 2), 1); /* wraps past slot 4 */
    CHECK_EQ(flq_records_try_get(moved, out, CAP), 5);
    CHECK(out[0] == 2 && out[1] == 3 && out[2] == 4 && out[3] == 1 && out[4] == 2);
    flq_aligned_free(copy);
    printf("  unit: a relocated ring keeps working ok\n");
}

/* Random single-thread operations against a model. */
static void unit_random(void)
{
    enum { CAP = 13 };
    flq_records *r = make_ring(8, CAP);
    uint64_t buf[3 * CAP];
    uint64_t rng = 4242, next_in = 0, next_out = 0;
    for (int step = 0; step < 200000; step++) {
        uint64_t count = next_in - next_out;
        CHECK_EQ(flq_records_size(r), count);
        CHECK_EQ(flq_records_room(r), CAP - count);
        uint64_t n = rng_range(&rng, 1, CAP);
        if (rng_next(&rng) % 2) {
            for (uint64_t i = 0; i < n; i++)
                buf[i] = next_in + i;
            int ok = flq_records_try_put(r, buf, n);
            CHECK(ok == (n <= CAP - count));
            next_in += ok ? n : 0;
        } else {
            uint64_t got = flq_records_try_get(r, buf, n);
            CHECK_EQ(got, n < count ? n : count);
            for (uint64_t i = 0; i < got; i++)
                CHECK_EQ(buf[i], next_out + i);
            next_out += got;
        }
    }
    flq_aligned_free(r);
    printf("  unit: 200000 random operations match the model\n");
}

/* ------------------------------------------------- concurrent: 4P x 4C */

typedef struct {
    uint64_t producer;
    uint64_t seq;   /* per producer, from 0 */
    uint64_t check; /* a function of the two, catches torn copies */
} rec;

static flq_records *g_ring;
static uint8_t *g_seen[NPROD];
static uint64_t g_per_producer;
static atomic_int g_producers_left;

static uint64_t check_of(uint64_t p, uint64_t s) { return (p * 0x9E3779B97F4A7C15ull) ^ (s * 31 + 7); }

typedef struct {
    uint64_t id;
    uint64_t got;
    uint64_t seed;
} worker_arg;

static void *producer(void *arg)
{
    worker_arg *w = (worker_arg *)arg;
    rec buf[MAX_RUN];
    uint64_t s = 0;
    while (s < g_per_producer) {
        uint64_t m = rng_range(&w->seed, 1, MAX_RUN);
        if (m > g_per_producer - s)
            m = g_per_producer - s;
        for (uint64_t k = 0; k < m; k++) {
            buf[k].producer = w->id;
            buf[k].seq = s + k;
            buf[k].check = check_of(w->id, s + k);
        }
        while (!flq_records_try_put(g_ring, buf, m))
            sched_yield();
        s += m;
    }
    atomic_fetch_sub_explicit(&g_producers_left, 1, memory_order_release);
    return NULL;
}

static void *consumer(void *arg)
{
    worker_arg *w = (worker_arg *)arg;
    rec buf[MAX_RUN];
    uint64_t last[NPROD];
    int seen_any[NPROD] = {0};
    for (;;) {
        /* read before the claim: an empty claim after the last producer
         * finished proves every record was claimed. */
        int left = atomic_load_explicit(&g_producers_left, memory_order_acquire);
        uint64_t k, start;
        if (rng_next(&w->seed) % 2) {
            k = flq_records_try_get(g_ring, buf, rng_range(&w->seed, 1, MAX_RUN));
        } else { /* read in place, then release */
            k = flq_records_claim_contiguous(g_ring, rng_range(&w->seed, 1, MAX_RUN), &start);
            if (k) {
                memcpy(buf, flq_records_at(g_ring, start), (size_t)k * sizeof(rec));
                flq_records_release(g_ring, start, k);
            }
        }
        if (k == 0) {
            if (left == 0)
                break;
            sched_yield();
            continue;
        }
        for (uint64_t j = 0; j < k; j++) {
            uint64_t p = buf[j].producer, s = buf[j].seq;
            if (p >= NPROD || s >= g_per_producer || buf[j].check != check_of(p, s)) {
                CHECK(p < NPROD && s < g_per_producer && buf[j].check == check_of(p, s));
                continue;
            }
            if (seen_any[p] && s <= last[p])
                CHECK(s > last[p]); /* FIFO per producer, per consumer */
            seen_any[p] = 1;
            last[p] = s;
            g_seen[p][s]++;
        }
        w->got += k;
    }
    return NULL;
}

static void concurrent_phase(uint64_t records)
{
    g_ring = make_ring(sizeof(rec), RING_CAP);
    g_per_producer = records / NPROD;
    atomic_store(&g_producers_left, NPROD);
    for (int p = 0; p < NPROD; p++) {
        g_seen[p] = (uint8_t *)calloc((size_t)g_per_producer, 1);
        CHECK(g_seen[p] != NULL);
        if (g_seen[p] == NULL)
            return;
    }
    worker_arg pa[NPROD], ca[NCONS];
    pthread_t pt[NPROD], ct[NCONS];
    double t0 = now_sec();
    for (int i = 0; i < NCONS; i++) {
        ca[i] = (worker_arg){(uint64_t)i, 0, 1000 + (uint64_t)i};
        CHECK(pthread_create(&ct[i], NULL, consumer, &ca[i]) == 0);
    }
    for (int i = 0; i < NPROD; i++) {
        pa[i] = (worker_arg){(uint64_t)i, 0, 77 + (uint64_t)i};
        CHECK(pthread_create(&pt[i], NULL, producer, &pa[i]) == 0);
    }
    for (int i = 0; i < NPROD; i++)
        CHECK(pthread_join(pt[i], NULL) == 0);
    uint64_t total = 0;
    for (int i = 0; i < NCONS; i++) {
        CHECK(pthread_join(ct[i], NULL) == 0);
        total += ca[i].got;
    }
    double dt = now_sec() - t0;
    uint64_t missing, dup;
    tally_seen(g_seen, NPROD, g_per_producer, &missing, &dup);
    CHECK_EQ(total, g_per_producer * NPROD);
    CHECK_EQ(missing, 0);
    CHECK_EQ(dup, 0);
    CHECK_EQ(flq_records_size(g_ring), 0);
    CHECK_EQ(flq_records_room(g_ring), RING_CAP);
    printf("  %dP/%dC runs of 1..%d, %" PRIu64 " records: %" PRIu64 " missing, %" PRIu64
           " duplicated; %.3fs; per consumer:",
           NPROD, NCONS, MAX_RUN, g_per_producer * NPROD, missing, dup, dt);
    for (int i = 0; i < NCONS; i++)
        printf(" %" PRIu64, ca[i].got);
    printf("\n");
    flq_aligned_free(g_ring);
}

int main(void)
{
    uint64_t records = items_from_env(10000000);
    printf("test_records: ring capacity %d, %d producers, %d consumers, %" PRIu64 " records\n", RING_CAP, NPROD,
           NCONS, records);
    unit_geometry();
    unit_basic();
    unit_out_of_order();
    unit_capacity_one();
    unit_relocated();
    unit_random();
    concurrent_phase(records);
    return check_report("test_records");
}
