/*
 * flinq/metrics.h: what a queue knows about its traffic over time:
 * enqueue-to-dequeue latency, the age of the oldest waiting item (lag), and
 * enqueue and dequeue rates over the last 1, 10 and 60 seconds.
 *
 * Concurrency contract
 *   Not thread-safe: the caller serializes every call (the Python layer holds
 *   the GIL). No call blocks or allocates.
 *
 * Arrival numbers
 *   Every item stored gets the next arrival number (0, 1, 2, ...): the caller
 *   reports stores with flq_metrics_arrived, and removals either in FIFO
 *   order (flq_metrics_departed_fifo: the items leave in arrival order) or
 *   one by one with their arrival number (flq_metrics_departed_one: a heap
 *   knows each entry's number). An item stored again after a delivery (a
 *   redelivery) gets a new arrival number too; flq_metrics_returned says how
 *   many arrivals were such returns, so that rates count new items only.
 *
 * What it costs
 *   Reading the clock costs more than a put, so time is read only for one
 *   arrival in 64 (those whose number is a multiple of 64), when such an item
 *   leaves, and when the caller marks a moment it pays for anyway
 *   (flq_metrics_mark: a put that wakes a sleeper, a stats() call). Every
 *   other call is a few integer operations.
 *
 * What it measures, and how exactly
 *   latency   over the last FLQ_METRICS_LATENCIES timed items (one in 64):
 *             exact for each, a systematic sample of the whole.
 *   lag       now minus the time of the newest mark at or before the oldest
 *             waiting arrival: exact when that item was timed, otherwise an
 *             upper bound (it arrived after the mark), off by the time
 *             between the mark and its arrival: at most 64 arrivals' worth,
 *             unless the queue sat idle in between. Marks for the last
 *             64 * FLQ_METRICS_MARKS arrivals are kept one in 64, and for
 *             the last 8192 * FLQ_METRICS_COARSE_MARKS one in 8192 (coarser
 *             bounds for old items, as a heap's starved ones). Past those,
 *             the oldest surviving mark gives a lower bound instead.
 *   rates     (count now - count at a snapshot) / (time since the snapshot),
 *             from the newest snapshot at least the window old; arrivals
 *             count new items only (returns left out). Snapshots are
 *             taken at most once a second, when the clock is read anyway; so
 *             after a quiet spell the span averaged can be longer than the
 *             window, never shorter. A queue younger than the window counts
 *             everything since its creation over the whole window.
 *
 * Compiled out
 *   With FLQ_METRICS_OFF defined, the hooks a put or get calls (arrived,
 *   returned, departed_fifo, departed_one, mark) do nothing, so a build can measure
 *   what the metrics cost against the same code without them. Figures read
 *   from such a build are zeros; it is for measuring, not for shipping.
 *
 * Pure C, no Python.h.
 */
#ifndef FLINQ_METRICS_H
#define FLINQ_METRICS_H

#include <stdint.h>
#include <stdlib.h>

#include "atomic.h" /* FLQ_INLINE: static, always inlined */
#include "park.h"   /* flq_now_ns, the default clock */

#define FLQ_METRICS_SHIFT 6u           /* one arrival in 2^6 = 64 is timed */
#define FLQ_METRICS_MARKS 128u         /* timed arrivals kept: the last 8192 arrivals */
#define FLQ_METRICS_COARSE_SHIFT 13u   /* and one in 2^13 = 8192 of them kept longer: */
#define FLQ_METRICS_COARSE_MARKS 128u  /* the last ~1M arrivals */
#define FLQ_METRICS_EVENTS 16u         /* caller's marks kept */
#define FLQ_METRICS_LATENCIES 256u     /* latency window, in timed items */
#define FLQ_METRICS_SNAPSHOTS 64u      /* rate snapshots, >= 1 s apart: over a minute */
#define FLQ_METRICS_SNAPSHOT_NS 1000000000

/* The clock (monotonic ns); a test may define its own before including. */
#ifndef FLQ_METRICS_NOW
#define FLQ_METRICS_NOW() flq_now_ns()
#endif

/* "Arrival number `arrival` and later happened at or after t_ns". */
typedef struct flq_mark {
    uint64_t arrival;
    int64_t t_ns;
} flq_mark;

typedef struct flq_snapshot {
    int64_t t_ns;
    uint64_t arrived;
    uint64_t returned;
    uint64_t departed;
} flq_snapshot;

typedef struct flq_metrics {
    uint64_t arrived;  /* items stored, ever: the next arrival number */
    uint64_t returned; /* of those, stored again after a delivery */
    uint64_t departed; /* items taken by consumers (not discarded) */
    uint64_t fifo_next; /* FIFO callers: arrival number of the next item to leave */
    uint64_t latency_count;
    unsigned events_next;
    unsigned snapshots_next;
    flq_mark grid[FLQ_METRICS_MARKS];    /* slot (arrival / 64) % MARKS */
    flq_mark coarse[FLQ_METRICS_COARSE_MARKS]; /* slot (arrival / 8192) % COARSE_MARKS */
    flq_mark events[FLQ_METRICS_EVENTS]; /* a ring */
    int64_t latencies_ns[FLQ_METRICS_LATENCIES];
    flq_snapshot snapshots[FLQ_METRICS_SNAPSHOTS];
} flq_metrics;

#define FLQ_METRICS_NO_ARRIVAL UINT64_MAX

static inline void flq_metrics__snapshot(flq_metrics *m, int64_t now)
{
    unsigned last = (m->snapshots_next + FLQ_METRICS_SNAPSHOTS - 1) % FLQ_METRICS_SNAPSHOTS;
    if (now - m->snapshots[last].t_ns < FLQ_METRICS_SNAPSHOT_NS)
        return;
    flq_snapshot *s = &m->snapshots[m->snapshots_next];
    s->t_ns = now;
    s->arrived = m->arrived;
    s->returned = m->returned;
    s->departed = m->departed;
    m->snapshots_next = (m->snapshots_next + 1) % FLQ_METRICS_SNAPSHOTS;
}

static inline void flq_metrics_init(flq_metrics *m)
{
    unsigned i;
    int64_t now = FLQ_METRICS_NOW();
    m->arrived = m->returned = m->departed = m->fifo_next = m->latency_count = 0;
    m->events_next = 0;
    for (i = 0; i < FLQ_METRICS_MARKS; i++)
        m->grid[i].arrival = FLQ_METRICS_NO_ARRIVAL;
    for (i = 0; i < FLQ_METRICS_COARSE_MARKS; i++)
        m->coarse[i].arrival = FLQ_METRICS_NO_ARRIVAL;
    for (i = 0; i < FLQ_METRICS_EVENTS; i++)
        m->events[i].arrival = FLQ_METRICS_NO_ARRIVAL;
    /* Every slot holds the creation snapshot (zero counts), so a rate is
       always measured from some snapshot, at worst from creation. */
    for (i = 0; i < FLQ_METRICS_SNAPSHOTS; i++) {
        m->snapshots[i].t_ns = now;
        m->snapshots[i].arrived = 0;
        m->snapshots[i].returned = 0;
        m->snapshots[i].departed = 0;
    }
    m->snapshots_next = 0;
}

/* Record "arrival number m->arrived and later come at or after now" (the
   caller is about to store, or has just read the time for another reason).
   Returns now. */
static inline int64_t flq_metrics_mark(flq_metrics *m)
{
#ifdef FLQ_METRICS_OFF
    (void)m;
    return 0;
#else
    int64_t now = FLQ_METRICS_NOW();
    flq_mark *e = &m->events[m->events_next];
    e->arrival = m->arrived;
    e->t_ns = now;
    m->events_next = (m->events_next + 1) % FLQ_METRICS_EVENTS;
    flq_metrics__snapshot(m, now);
    return now;
#endif
}

/* Mark every multiple of 2^shift in [first, first + n) at now, in a ring of
   `slots` marks (only the newest `slots` can be kept). */
static inline void flq_metrics__mark_multiples(flq_mark *ring, unsigned slots, unsigned shift,
                                               uint64_t first, uint64_t n, int64_t now)
{
    uint64_t step = (uint64_t)1 << shift;
    uint64_t a = (first + step - 1) & ~(step - 1); /* first multiple >= first */
    uint64_t keep = (uint64_t)slots << shift;
    if (a >= first + n)
        return;
    if (first + n - a > keep)
        a = (first + n - keep + step - 1) & ~(step - 1);
    for (; a < first + n; a += step) {
        flq_mark *g = &ring[(a >> shift) % slots];
        g->arrival = a;
        g->t_ns = now;
    }
}

static inline void flq_metrics__time_arrivals(flq_metrics *m, uint64_t first, uint64_t n)
{
    int64_t now = FLQ_METRICS_NOW();
    flq_metrics__mark_multiples(m->grid, FLQ_METRICS_MARKS, FLQ_METRICS_SHIFT, first, n, now);
    flq_metrics__mark_multiples(m->coarse, FLQ_METRICS_COARSE_MARKS, FLQ_METRICS_COARSE_SHIFT,
                                first, n, now);
    flq_metrics__snapshot(m, now);
}

/* n items were stored (arrival numbers m->arrived .. m->arrived + n - 1). */
FLQ_INLINE void flq_metrics_arrived(flq_metrics *m, uint64_t n)
{
#ifdef FLQ_METRICS_OFF
    (void)m;
    (void)n;
#else
    uint64_t first = m->arrived;
    uint64_t mask = ((uint64_t)1 << FLQ_METRICS_SHIFT) - 1;
    m->arrived = first + n;
    /* Is a multiple of 64 in [first, first + n)? */
    if ((first & mask) == 0 || (first & mask) + n > mask + 1)
        flq_metrics__time_arrivals(m, first, n);
#endif
}

/* n of the items the next flq_metrics_arrived reports are stored again
   after a delivery, not put: they leave the arrival rate. Called before
   that arrived(), so that a snapshot it takes sees both. */
FLQ_INLINE void flq_metrics_returned(flq_metrics *m, uint64_t n)
{
#ifdef FLQ_METRICS_OFF
    (void)m;
    (void)n;
#else
    m->returned += n;
#endif
}

static inline void flq_metrics__time_departure(flq_metrics *m, uint64_t arrival, int64_t *now)
{
    flq_mark *g = &m->grid[(arrival >> FLQ_METRICS_SHIFT) % FLQ_METRICS_MARKS];
    if (g->arrival != arrival)
        return; /* overwritten: too long ago to keep */
    if (*now == 0) {
        *now = FLQ_METRICS_NOW();
        flq_metrics__snapshot(m, *now);
    }
    m->latencies_ns[m->latency_count % FLQ_METRICS_LATENCIES] = *now - g->t_ns;
    m->latency_count++;
}

/* The item with this arrival number was taken by a consumer. */
FLQ_INLINE void flq_metrics_departed_one(flq_metrics *m, uint64_t arrival, int64_t *now)
{
#ifdef FLQ_METRICS_OFF
    (void)m;
    (void)arrival;
    (void)now;
#else
    m->departed++;
    if ((arrival & (((uint64_t)1 << FLQ_METRICS_SHIFT) - 1)) == 0)
        flq_metrics__time_departure(m, arrival, now);
#endif
}

/* The next n items in arrival order left: taken by consumers when taken is
   nonzero, else discarded (counted nowhere, timed never). */
FLQ_INLINE void flq_metrics_departed_fifo(flq_metrics *m, uint64_t n, int taken)
{
#ifdef FLQ_METRICS_OFF
    (void)m;
    (void)n;
    (void)taken;
#else
    uint64_t first = m->fifo_next;
    uint64_t mask = ((uint64_t)1 << FLQ_METRICS_SHIFT) - 1;
    m->fifo_next = first + n;
    if (!taken)
        return;
    m->departed += n;
    if ((first & mask) == 0 || (first & mask) + n > mask + 1) {
        int64_t now = 0;
        uint64_t a = (first + mask) & ~mask;
        for (; a < first + n; a += mask + 1)
            flq_metrics__time_departure(m, a, &now);
    }
#endif
}

/* Figures computed on demand (now: FLQ_METRICS_NOW()). */

/* Age in ns of the item with arrival number `oldest` (see the top). */
static inline int64_t flq_metrics_age_ns(const flq_metrics *m, uint64_t oldest, int64_t now)
{
    const flq_mark *best = NULL;
    const flq_mark *g = &m->grid[(oldest >> FLQ_METRICS_SHIFT) % FLQ_METRICS_MARKS];
    const flq_mark *c = &m->coarse[(oldest >> FLQ_METRICS_COARSE_SHIFT) % FLQ_METRICS_COARSE_MARKS];
    unsigned i;
    /* The mark of oldest's own block, in either grid, if still kept. */
    if (g->arrival != FLQ_METRICS_NO_ARRIVAL && g->arrival <= oldest
        && oldest - g->arrival < ((uint64_t)1 << FLQ_METRICS_SHIFT))
        best = g;
    else if (c->arrival != FLQ_METRICS_NO_ARRIVAL && c->arrival <= oldest
             && oldest - c->arrival < ((uint64_t)1 << FLQ_METRICS_COARSE_SHIFT))
        best = c;
    for (i = 0; i < FLQ_METRICS_EVENTS; i++) {
        const flq_mark *e = &m->events[i];
        if (e->arrival != FLQ_METRICS_NO_ARRIVAL && e->arrival <= oldest
            && (best == NULL || e->arrival > best->arrival
                || (e->arrival == best->arrival && e->t_ns > best->t_ns)))
            best = e;
    }
    if (best == NULL) {
        /* Every mark that old is gone: the oldest one left is a lower bound. */
        for (i = 0; i < FLQ_METRICS_MARKS; i++) {
            const flq_mark *c = &m->grid[i];
            if (c->arrival != FLQ_METRICS_NO_ARRIVAL && (best == NULL || c->t_ns < best->t_ns))
                best = c;
        }
    }
    if (best == NULL || now < best->t_ns)
        return 0;
    return now - best->t_ns;
}

static int flq_metrics__cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Latency quantiles in ns over the window: out[i] for q[i] in [0, 1] (nearest
   rank). Returns how many samples the window holds; 0 leaves out[] alone. */
static inline unsigned flq_metrics_latency_ns(const flq_metrics *m, const double *q, unsigned nq,
                                              int64_t *out)
{
    int64_t sorted[FLQ_METRICS_LATENCIES];
    unsigned n = m->latency_count < FLQ_METRICS_LATENCIES ? (unsigned)m->latency_count
                                                          : FLQ_METRICS_LATENCIES;
    unsigned i;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        sorted[i] = m->latencies_ns[i];
    qsort(sorted, n, sizeof sorted[0], flq_metrics__cmp_i64);
    for (i = 0; i < nq; i++) {
        double rank = q[i] * (double)n; /* nearest rank: ceil(q n), 1-based */
        unsigned k = (unsigned)rank;
        if ((double)k < rank)
            k++;
        out[i] = sorted[k == 0 ? 0 : (k > n ? n - 1 : k - 1)];
    }
    return n;
}

/* New items (returns left out) per second arrived, and items per second
   departed, over about the last window_ns. */
static inline void flq_metrics_rates(const flq_metrics *m, int64_t window_ns, int64_t now,
                                     double *arrived, double *departed)
{
    const flq_snapshot *from = NULL;
    int64_t span_ns;
    unsigned i;
    for (i = 0; i < FLQ_METRICS_SNAPSHOTS; i++) {
        const flq_snapshot *s = &m->snapshots[i];
        if (now - s->t_ns >= window_ns && (from == NULL || s->t_ns > from->t_ns))
            from = s;
    }
    if (from != NULL) {
        span_ns = now - from->t_ns;
    } else {
        /* Younger than the window (or no snapshot that old is left): count
           from the oldest snapshot, over the whole window, since nothing
           can have happened before it. */
        for (i = 0; i < FLQ_METRICS_SNAPSHOTS; i++) {
            const flq_snapshot *s = &m->snapshots[i];
            if (from == NULL || s->t_ns < from->t_ns)
                from = s;
        }
        span_ns = window_ns;
    }
    double span = (double)span_ns / 1e9;
    if (span <= 0) {
        *arrived = *departed = 0.0;
        return;
    }
    *arrived = (double)((m->arrived - m->returned) - (from->arrived - from->returned)) / span;
    *departed = (double)(m->departed - from->departed) / span;
}

#endif /* FLINQ_METRICS_H */
