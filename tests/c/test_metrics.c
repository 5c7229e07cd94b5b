/*
 * tests/c/test_metrics.c: flinq/metrics.h, on a clock the test sets.
 *
 *   1. sampling: only arrivals numbered 0, 64, 128, ... are timed, in single
 *      and batch arrivals, and batches that span several multiples;
 *   2. FIFO latency: items that wait k ms report k ms; quantiles by nearest
 *      rank; the window keeps the last FLQ_METRICS_LATENCIES samples;
 *   3. departures one by one (heap order) time only the sampled arrivals;
 *   4. lag: exact for a timed item, an upper bound from the newest mark at or
 *      before it otherwise, caller marks tighten it, and the oldest grid mark
 *      gives a lower bound once older marks are overwritten;
 *   5. rates over 1/10/60 s windows; a young queue counts over the whole window;
 *   6. returns (items stored again after a delivery) leave the arrival rate.
 *
 * Single-threaded: the header is not thread-safe by contract.
 */
#include "check.h"

static int64_t fake_now;
static uint64_t clock_reads;
static int64_t read_clock(void)
{
    clock_reads++;
    return fake_now;
}
#define FLQ_METRICS_NOW() read_clock()

#include "flinq/metrics.h"

#define MS 1000000LL
#define SEC 1000000000LL

static flq_metrics m;

static void test_sampling(void)
{
    fake_now = 10 * SEC;
    flq_metrics_init(&m);
    clock_reads = 0;
    for (int i = 0; i < 640; i++)
        flq_metrics_arrived(&m, 1);
    CHECK_EQ(clock_reads, 10); /* arrivals 0, 64, ..., 576 */
    CHECK_EQ(m.arrived, 640);
    clock_reads = 0;
    flq_metrics_arrived(&m, 63); /* 640..702: holds 640 */
    CHECK_EQ(clock_reads, 1);
    flq_metrics_arrived(&m, 1); /* 703 */
    flq_metrics_arrived(&m, 2); /* 704, 705: holds 704 */
    CHECK_EQ(clock_reads, 2);
    flq_metrics_arrived(&m, 62); /* 706..767: none */
    CHECK_EQ(clock_reads, 2);
    flq_metrics_arrived(&m, 1000); /* 768..1767: one read for the batch */
    CHECK_EQ(clock_reads, 3);
    CHECK_EQ(m.grid[(1728 >> 6) % FLQ_METRICS_MARKS].arrival, 1728);
    CHECK_EQ(m.grid[(768 >> 6) % FLQ_METRICS_MARKS].arrival, 768);
    /* A batch longer than the grid keeps only the newest marks. */
    flq_metrics_arrived(&m, 100000);
    uint64_t newest = (1767 + 100000) & ~(uint64_t)63;
    CHECK_EQ(m.grid[(newest >> 6) % FLQ_METRICS_MARKS].arrival, newest);
    for (unsigned i = 0; i < FLQ_METRICS_MARKS; i++)
        CHECK(m.grid[i].arrival > newest - 64 * FLQ_METRICS_MARKS);
}

static void test_fifo_latency(void)
{
    double q[3] = {0.5, 0.99, 1.0};
    int64_t out[3] = {-1, -1, -1};
    fake_now = 100 * SEC;
    flq_metrics_init(&m);
    CHECK_EQ(flq_metrics_latency_ns(&m, q, 3, out), 0);
    CHECK(out[0] == -1);
    /* Item i arrives at i ms and leaves at (i + 1 + i % 7) ms later... in
       order: arrive all, then leave all, 5 s later. */
    for (int i = 0; i < 256; i++) {
        fake_now = 100 * SEC + i * MS;
        flq_metrics_arrived(&m, 1);
    }
    fake_now = 105 * SEC;
    flq_metrics_departed_fifo(&m, 256, 1);
    CHECK_EQ(m.departed, 256);
    CHECK_EQ(m.fifo_next, 256);
    CHECK_EQ(flq_metrics_latency_ns(&m, q, 3, out), 4); /* arrivals 0, 64, 128, 192 */
    /* latencies 5000-0, 5000-64, 5000-128, 5000-192 ms: sorted 4808 4872 4936 5000 */
    CHECK_EQ(out[0], (5000 - 128) * MS); /* rank ceil(2) = 2nd */
    CHECK_EQ(out[1], 5000 * MS);
    CHECK_EQ(out[2], 5000 * MS);
    /* Discarded items advance the FIFO position without timing or counting. */
    for (int i = 0; i < 64; i++)
        flq_metrics_arrived(&m, 1);
    flq_metrics_departed_fifo(&m, 64, 0);
    CHECK_EQ(m.departed, 256);
    CHECK_EQ(m.latency_count, 4);
    /* The window keeps the last LATENCIES samples. */
    for (unsigned i = 0; i < 64 * (FLQ_METRICS_LATENCIES + 10); i++) {
        fake_now += MS;
        flq_metrics_arrived(&m, 1);
        fake_now += 3 * MS;
        flq_metrics_departed_fifo(&m, 1, 1);
    }
    CHECK_EQ(flq_metrics_latency_ns(&m, q, 3, out), FLQ_METRICS_LATENCIES);
    CHECK_EQ(out[0], 3 * MS);
    CHECK_EQ(out[2], 3 * MS);
}

static void test_heap_departures(void)
{
    int64_t now = 0;
    fake_now = SEC;
    flq_metrics_init(&m);
    flq_metrics_arrived(&m, 200); /* 0, 64, 128 timed at 1 s */
    fake_now = 3 * SEC;
    clock_reads = 0;
    flq_metrics_departed_one(&m, 5, &now);
    CHECK_EQ(clock_reads, 0);
    flq_metrics_departed_one(&m, 128, &now);
    flq_metrics_departed_one(&m, 64, &now); /* same batch: the time read once */
    CHECK_EQ(clock_reads, 1);
    CHECK_EQ(m.latency_count, 2);
    CHECK_EQ(m.latencies_ns[0], 2 * SEC);
    CHECK_EQ(m.departed, 3);
}

static void test_lag(void)
{
    fake_now = 50 * SEC;
    flq_metrics_init(&m);
    CHECK_EQ(flq_metrics_age_ns(&m, 0, fake_now), 0); /* nothing known */
    flq_metrics_arrived(&m, 1); /* arrival 0 at 50 s: timed */
    fake_now = 51 * SEC;
    flq_metrics_arrived(&m, 9); /* 1..9 at 51 s: not timed */
    fake_now = 60 * SEC;
    CHECK_EQ(flq_metrics_age_ns(&m, 0, fake_now), 10 * SEC); /* exact */
    CHECK_EQ(flq_metrics_age_ns(&m, 3, fake_now), 10 * SEC); /* upper bound (9 s true) */
    /* A caller's mark before arrival 10 tightens the bound for it. */
    fake_now = 70 * SEC;
    flq_metrics_mark(&m);
    flq_metrics_arrived(&m, 1); /* arrival 10 */
    fake_now = 75 * SEC;
    CHECK_EQ(flq_metrics_age_ns(&m, 10, fake_now), 5 * SEC);
    CHECK_EQ(flq_metrics_age_ns(&m, 9, fake_now), 25 * SEC);
    /* Overwrite the fine grid: arrival 0's coarse mark still bounds it. */
    fake_now = 80 * SEC;
    flq_metrics_arrived(&m, 64 * FLQ_METRICS_MARKS);
    fake_now = 90 * SEC;
    for (unsigned i = 0; i < FLQ_METRICS_EVENTS; i++)
        flq_metrics_mark(&m); /* push out the old events too */
    CHECK_EQ(flq_metrics_age_ns(&m, 0, fake_now), 40 * SEC);
    CHECK_EQ(flq_metrics_age_ns(&m, 5, fake_now), 40 * SEC); /* upper bound, from arrival 0 */
    /* Overwrite the coarse grid too: the oldest mark left is a lower bound. */
    fake_now = 100 * SEC;
    flq_metrics_arrived(&m, (uint64_t)8192 * FLQ_METRICS_COARSE_MARKS);
    fake_now = 110 * SEC;
    CHECK_EQ(flq_metrics_age_ns(&m, 0, fake_now), 10 * SEC);
}

static void test_rates(void)
{
    double in = -1, out = -1;
    fake_now = 1000 * SEC;
    flq_metrics_init(&m);
    /* Young queue: 100 arrivals in its first 2 s are 10/s over 10 s. */
    fake_now += 2 * SEC;
    flq_metrics_arrived(&m, 100);
    flq_metrics_rates(&m, 10 * SEC, fake_now, &in, &out);
    CHECK(in > 9.99 && in < 10.01);
    CHECK(out == 0.0);
    /* Then 120 s of 1000 arrivals and 500 departures a second, marked by a
       stats() call each second. */
    for (int s = 0; s < 120; s++) {
        fake_now += SEC / 2;
        flq_metrics_arrived(&m, 1000);
        fake_now += SEC / 2;
        flq_metrics_departed_fifo(&m, 500, 1);
        flq_metrics_mark(&m);
    }
    flq_metrics_rates(&m, 1 * SEC, fake_now, &in, &out);
    CHECK(in > 999 && in < 1001);
    CHECK(out > 499 && out < 501);
    flq_metrics_rates(&m, 60 * SEC, fake_now, &in, &out);
    CHECK(in > 999 && in < 1001);
    /* Quiet for 30 s: the 10 s rate falls to (nearly) zero: it is measured
       from the last snapshot of the busy spell, 30 s back. */
    fake_now += 30 * SEC;
    flq_metrics_mark(&m);
    fake_now += 1 * SEC;
    flq_metrics_rates(&m, 10 * SEC, fake_now, &in, &out);
    CHECK(in == 0.0);
    CHECK(out < 1.0);
    flq_metrics_rates(&m, 60 * SEC, fake_now, &in, &out);
    CHECK(in > 400 && in < 1000); /* 29 s of traffic in the last ~60 s */
}

static void test_returns(void)
{
    double in = -1, out = -1;
    fake_now = 2000 * SEC;
    flq_metrics_init(&m);
    /* 20 s of 150 arrivals a second, 50 of them returns: 100 new a second. */
    for (int s = 0; s < 20; s++) {
        fake_now += SEC;
        flq_metrics_returned(&m, 50); /* before the arrivals, as the header asks */
        flq_metrics_arrived(&m, 150);
        flq_metrics_mark(&m);
    }
    CHECK_EQ(m.arrived, 3000);
    CHECK_EQ(m.returned, 1000);
    flq_metrics_rates(&m, 10 * SEC, fake_now, &in, &out);
    CHECK(in > 99.9 && in < 100.1);
    /* Young-queue path (window longer than the queue's life) too. */
    flq_metrics_rates(&m, 60 * SEC, fake_now, &in, &out);
    CHECK(in > 33.3 && in < 33.4); /* 2000 new over 60 s */
}

int main(void)
{
    test_sampling();
    test_fifo_latency();
    test_heap_departures();
    test_lag();
    test_rates();
    test_returns();
    return check_report("test_metrics");
}
