/*
 * tests/c/test_heap.c: flinq/heap.h, the binary min-heap.
 *
 *   1. order: random priorities with many duplicates pop sorted by
 *      (priority, seq), i.e. FIFO among equal priorities;
 *   2. interleaved push/pop/peek against a simple reference (unsorted array,
 *      linear scan for the minimum);
 *   3. a comparator that fails at random points: a failed push_by/pop_by
 *      returns -1 with the entries array (and size) exactly as before, and
 *      the heap still pops in order afterwards;
 *   4. *_by with a caller's order (max-heap on priority);
 *   5. growth to 1M entries and shrink back to the minimum capacity.
 */
#include "check.h"

#include <string.h>

#include "flinq/heap.h"

/* ------------------------------------------------------------ helpers */

static int key_less(const flq_heap_entry *a, const flq_heap_entry *b)
{
    return a->priority < b->priority || (a->priority == b->priority && a->seq < b->seq);
}

/* Heap property under the key order: no child orders before its parent. */
static int heap_ok(const flq_heap *h)
{
    for (size_t i = 1; i < h->size; i++)
        if (key_less(&h->entries[i], &h->entries[(i - 1) / 2]))
            return 0;
    return h->size <= h->capacity;
}

static int entries_equal(const flq_heap_entry *a, const flq_heap_entry *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].priority != b[i].priority || a[i].seq != b[i].seq || a[i].item != b[i].item)
            return 0;
    return 1;
}

static flq_heap_entry make_entry(int64_t priority, uint64_t seq)
{
    flq_heap_entry e;
    e.priority = priority;
    e.seq = seq;
    e.item = ITEM(seq);
    return e;
}

/* ------------------------------------------------------------ 1. order */

static void test_sorted_order(void)
{
    enum { N = 200000 };
    flq_heap h;
    flq_heap_init(&h);
    CHECK(flq_heap_peek(&h) == NULL);
    flq_heap_entry out;
    CHECK(flq_heap_pop(&h, &out) == 0);
    uint64_t rng = 1;
    for (uint64_t seq = 0; seq < N; seq++) {
        /* 50 distinct priorities, negatives included: ~4000 entries share each */
        flq_heap_entry e = make_entry((int64_t)rng_range(&rng, 0, 49) - 25, seq);
        CHECK(flq_heap_push(&h, &e) == 0);
    }
    CHECK_EQ(h.size, N);
    CHECK(heap_ok(&h));
    flq_heap_entry prev = make_entry(INT64_MIN, 0);
    uint64_t popped = 0, bad = 0;
    while (h.size > 0) {
        const flq_heap_entry *top = flq_heap_peek(&h);
        flq_heap_entry peeked = *top;
        CHECK(flq_heap_pop(&h, &out) == 1);
        if (!entries_equal(&peeked, &out, 1))
            bad++;
        if (popped > 0 && !key_less(&prev, &out))
            bad++; /* must be strictly increasing in (priority, seq) */
        if (out.item != ITEM(out.seq))
            bad++;
        prev = out;
        popped++;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(popped, N);
    CHECK(flq_heap_pop(&h, &out) == 0);
    flq_heap_destroy(&h);
    CHECK(h.entries == NULL && h.size == 0 && h.capacity == 0);
    printf("  %d entries, 50 distinct priorities: pops sorted by (priority, seq), FIFO among equals ok\n", N);
}

/* ------------------------------------------------------------ 2. reference */

static void test_against_reference(void)
{
    enum { MAXREF = 600, STEPS = 300000 };
    flq_heap h;
    flq_heap_init(&h);
    static flq_heap_entry ref[MAXREF];
    size_t nref = 0;
    uint64_t rng = 7, seq = 0, bad = 0, pushes = 0, pops = 0;
    for (int step = 0; step < STEPS; step++) {
        /* drift between filling and draining phases so the size varies widely */
        int fill_bias = (step / 5000) % 2 == 0;
        uint64_t r = rng_next(&rng) % 100;
        int do_push = nref == 0 || (nref < MAXREF && r < (fill_bias ? 65u : 35u));
        if (do_push) {
            flq_heap_entry e = make_entry((int64_t)rng_range(&rng, 0, 20), seq++);
            CHECK(flq_heap_push(&h, &e) == 0);
            ref[nref++] = e;
            pushes++;
        } else {
            size_t best = 0;
            for (size_t i = 1; i < nref; i++)
                if (key_less(&ref[i], &ref[best]))
                    best = i;
            const flq_heap_entry *top = flq_heap_peek(&h);
            if (top == NULL || !entries_equal(top, &ref[best], 1))
                bad++;
            flq_heap_entry out;
            CHECK(flq_heap_pop(&h, &out) == 1);
            if (!entries_equal(&out, &ref[best], 1))
                bad++;
            ref[best] = ref[--nref];
            pops++;
        }
        if (h.size != nref)
            bad++;
        if (step % 997 == 0 && !heap_ok(&h))
            bad++;
    }
    CHECK_EQ(bad, 0);
    flq_heap_destroy(&h);
    printf("  %d interleaved ops (%" PRIu64 " pushes, %" PRIu64 " pops) match a linear-scan reference ok\n",
           STEPS, pushes, pops);
}

/* ------------------------------------------------------------ 3. failing comparator */

typedef struct {
    uint64_t rng;
    uint64_t fail_one_in; /* each comparison fails with probability 1/fail_one_in */
    uint64_t calls;
    uint64_t failures;
} failing_ctx;

static int failing_less(const flq_heap_entry *a, const flq_heap_entry *b, void *ctx)
{
    failing_ctx *f = (failing_ctx *)ctx;
    f->calls++;
    if (f->fail_one_in && rng_next(&f->rng) % f->fail_one_in == 0) {
        f->failures++;
        return -1;
    }
    return key_less(a, b);
}

static void test_failing_comparator(void)
{
    enum { STEPS = 150000, MAXSIZE = 1200 };
    flq_heap h;
    flq_heap_init(&h);
    flq_heap_entry *snapshot = (flq_heap_entry *)malloc(MAXSIZE * 2 * sizeof(flq_heap_entry));
    CHECK(snapshot != NULL);
    if (snapshot == NULL)
        return;
    failing_ctx f = {99, 0, 0, 0};
    uint64_t rng = 3, seq = 0, push_fail = 0, pop_fail = 0, bad = 0, live = 0;
    for (int step = 0; step < STEPS; step++) {
        /* failure rate varies so failures land at every depth of a sift */
        f.fail_one_in = 1 + rng_next(&rng) % 12;
        size_t size_before = h.size;
        if (size_before > 0)
            memcpy(snapshot, h.entries, size_before * sizeof(flq_heap_entry));
        int fill_bias = (step / 4000) % 2 == 0;
        int do_push = h.size == 0 || (h.size < MAXSIZE && rng_next(&rng) % 100 < (fill_bias ? 70u : 40u));
        if (do_push) {
            flq_heap_entry e = make_entry((int64_t)rng_range(&rng, 0, 30), seq++);
            int rc = flq_heap_push_by(&h, &e, failing_less, &f);
            if (rc == 0) {
                live++;
            } else {
                CHECK(rc == -1);
                push_fail++;
                if (h.size != size_before || !entries_equal(snapshot, h.entries, size_before))
                    bad++;
            }
        } else {
            flq_heap_entry out;
            int rc = flq_heap_pop_by(&h, &out, failing_less, &f);
            if (rc == 1) {
                live--;
                if (!entries_equal(&out, &snapshot[0], 1))
                    bad++; /* the old root came out */
            } else {
                CHECK(rc == -1);
                pop_fail++;
                if (h.size != size_before || !entries_equal(snapshot, h.entries, size_before))
                    bad++;
            }
        }
        if (h.size != live)
            bad++;
        if (step % 16 == 0 && !heap_ok(&h))
            bad++;
    }
    CHECK_EQ(bad, 0);
    CHECK(push_fail > 1000 && pop_fail > 1000);
    /* afterwards the heap still pops in order with a comparator that works */
    f.fail_one_in = 0;
    flq_heap_entry prev, out;
    uint64_t popped = 0;
    while (h.size > 0) {
        CHECK(flq_heap_pop_by(&h, &out, failing_less, &f) == 1);
        if (popped > 0 && !key_less(&prev, &out))
            bad++;
        prev = out;
        popped++;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(popped, live);
    flq_heap_destroy(&h);
    free(snapshot);
    printf("  failing comparator: %" PRIu64 " failed pushes, %" PRIu64 " failed pops (of %" PRIu64
           " comparisons, %" PRIu64 " failed) left the entries unchanged; drain in order ok\n",
           push_fail, pop_fail, f.calls, f.failures);
}

/* ------------------------------------------------------------ 4. caller's order */

static int max_priority_less(const flq_heap_entry *a, const flq_heap_entry *b, void *ctx)
{
    (void)ctx;
    return a->priority > b->priority || (a->priority == b->priority && a->seq < b->seq);
}

static void test_custom_order(void)
{
    enum { N = 50000 };
    flq_heap h;
    flq_heap_init(&h);
    uint64_t rng = 11, bad = 0;
    for (uint64_t seq = 0; seq < N; seq++) {
        flq_heap_entry e = make_entry((int64_t)rng_range(&rng, 0, 99), seq);
        CHECK(flq_heap_push_by(&h, &e, max_priority_less, NULL) == 0);
    }
    flq_heap_entry prev, out;
    for (uint64_t i = 0; i < N; i++) {
        CHECK(flq_heap_pop_by(&h, &out, max_priority_less, NULL) == 1);
        if (i > 0 && max_priority_less(&out, &prev, NULL))
            bad++;
        if (i > 0 && out.priority == prev.priority && out.seq < prev.seq)
            bad++;
        prev = out;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(h.size, 0);
    flq_heap_destroy(&h);
    printf("  push_by/pop_by with a caller's (max-priority, FIFO) order ok\n");
}

/* ------------------------------------------------------------ 5. growth and shrink */

static void test_growth_shrink(void)
{
    enum { N = 1000000 };
    flq_heap h;
    flq_heap_init(&h);
    uint64_t rng = 5, bad = 0;
    size_t max_capacity = 0;
    for (uint64_t seq = 0; seq < N; seq++) {
        flq_heap_entry e = make_entry((int64_t)(rng_next(&rng) % 1000000), seq);
        CHECK(flq_heap_push(&h, &e) == 0);
        if (h.capacity < h.size || h.capacity < FLQ_HEAP_MIN_CAPACITY)
            bad++;
        if (h.capacity > max_capacity)
            max_capacity = h.capacity;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(h.size, N);
    CHECK_EQ(h.capacity, 1u << 20); /* 16 doubled to the first power of two >= 1M */
    CHECK(heap_ok(&h));
    flq_heap_entry prev, out;
    size_t shrinks = 0, last_capacity = h.capacity;
    for (uint64_t i = 0; i < N; i++) {
        CHECK(flq_heap_pop(&h, &out) == 1);
        if (i > 0 && !key_less(&prev, &out))
            bad++;
        prev = out;
        if (h.capacity != last_capacity) {
            shrinks++;
            if (h.capacity != last_capacity / 2)
                bad++;
            last_capacity = h.capacity;
        }
        /* never more than 3/4 unused for long: at most one halving behind */
        if (h.capacity > FLQ_HEAP_MIN_CAPACITY && h.size < h.capacity / 8)
            bad++;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(h.size, 0);
    CHECK_EQ(h.capacity, FLQ_HEAP_MIN_CAPACITY);
    /* and it grows again from there */
    for (uint64_t seq = 0; seq < 100; seq++) {
        flq_heap_entry e = make_entry(-(int64_t)seq, seq);
        CHECK(flq_heap_push(&h, &e) == 0);
    }
    CHECK(flq_heap_pop(&h, &out) == 1);
    CHECK(out.priority == -99);
    CHECK_EQ(flq_heap_reserve(&h, 1000), 0);
    CHECK(h.capacity >= h.size + 1000);
    flq_heap_destroy(&h);
    printf("  growth to %d entries (capacity %zu), sorted drain, %zu halvings back to %u ok\n", N, max_capacity,
           shrinks, FLQ_HEAP_MIN_CAPACITY);
}

/* ------------------------------------------------------ 6. undoing a batch of pushes */

/* What the Python layer does when a compared put_many fails part way: push
 * a batch recording where each entry landed, then undo them newest first.
 * The heap must be exactly as before, entry for entry. */
static void test_undo_push(void)
{
    enum { BASE = 5000, BATCH = 300, ROUNDS = 200 };
    flq_heap h;
    flq_heap_init(&h);
    uint64_t rng = 7, seq = 0;
    for (int i = 0; i < BASE; i++) {
        flq_heap_entry e = make_entry((int64_t)rng_range(&rng, 0, 40), seq++);
        CHECK(flq_heap_push(&h, &e) == 0);
    }
    flq_heap_entry *snapshot = malloc((BASE + BATCH * ROUNDS) * sizeof(*snapshot));
    size_t positions[BATCH];
    CHECK(snapshot != NULL);
    int bad = 0;
    for (int round = 0; round < ROUNDS; round++) {
        size_t before = h.size;
        memcpy(snapshot, h.entries, before * sizeof(*snapshot));
        int n = (int)rng_range(&rng, 1, BATCH);
        for (int i = 0; i < n; i++) {
            flq_heap_entry e = make_entry((int64_t)rng_range(&rng, 0, 40), seq++);
            CHECK(flq_heap_push_by_at(&h, &e, flq_heap_key_less, NULL, &positions[i]) == 0);
        }
        CHECK(heap_ok(&h));
        for (int i = n - 1; i >= 0; i--)
            flq_heap_undo_push(&h, positions[i]);
        bad += h.size != before || !entries_equal(snapshot, h.entries, before);
        /* Keep some of the rounds' entries so the heap changes shape. */
        flq_heap_entry e = make_entry((int64_t)rng_range(&rng, 0, 40), seq++);
        CHECK(flq_heap_push(&h, &e) == 0);
    }
    CHECK_EQ(bad, 0);
    CHECK(heap_ok(&h));
    printf("  undo_push: %d batches of up to %d pushes undone exactly\n", ROUNDS, BATCH);
    free(snapshot);
    flq_heap_destroy(&h);
}

int main(void)
{
    printf("test_heap:\n");
    test_sorted_order();
    test_against_reference();
    test_failing_comparator();
    test_custom_order();
    test_growth_shrink();
    test_undo_push();
    return check_report("test_heap");
}
