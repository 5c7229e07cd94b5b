/*
 * flinq/chain.h: an unbounded single-producer / multi-consumer FIFO of
 * pointers, made of ring.h segments chained in a list.
 *
 * Why chained segments (and not growing one ring, or spilling):
 *   - Growing a ring in place means copying slots that concurrent consumers
 *     may be claiming; it needs a lock or a stop-the-world step.
 *   - Spilling to a side list makes consumers look in two places and breaks
 *     FIFO unless the two are merged under a lock.
 *   - Chaining keeps every consumer step a plain ring claim: the producer
 *     fills the newest segment, links a fresh one when it is full, and never
 *     touches the old one again; consumers drain the oldest segment and then
 *     follow the link. While the queue stays small a single segment is reused
 *     as a ring, so steady state allocates nothing. Segments start small
 *     (FLQ_CHAIN_FIRST_CAPACITY) and double up to FLQ_CHAIN_MAX_CAPACITY, so
 *     an idle queue is small and a long one costs about one pointer per item.
 *
 * Concurrency contract
 *   - ONE producer at a time: flq_chain_push, flq_chain_push_many,
 *     flq_chain_reclaim. Callers with several producers serialize them.
 *   - ANY number of consumers, concurrently with each other and with the
 *     producer: flq_chain_pop, flq_chain_pop_many. Lock-free; each call pays
 *     atomic read-modify-writes (the `active` count, the ring's CAS).
 *   - Or serialized consumers: flq_chain_pop_many_serial, for callers that
 *     already run one consumer at a time (flinq's Python layer, under the
 *     GIL). Concurrent with the producer, never with another consumer; no
 *     read-modify-write at all. A chain uses one consumer mode for its whole
 *     life: mixing the two is a race.
 *   - flq_chain_new / flq_chain_free, flq_chain_init / flq_chain_destroy,
 *     flq_chain_visit: alone, with no other call running.
 *
 * Reclamation
 *   A drained segment is unlinked by the consumer that moves head_seg past
 *   it, and freed by the producer. Consumers announce themselves in `active`
 *   (seq_cst increment) before loading head_seg; the producer frees segments
 *   older than the head_seg it loaded only when it then reads active == 0.
 *   With every one of those operations seq_cst, a consumer still holding an
 *   old segment must have incremented active before the head moved past that
 *   segment, so the producer sees it and waits for a later try. Retired
 *   segments are freed on the producer's next push (or reclaim call), so a
 *   burst's memory returns once consumers have drained it. The cost of this
 *   simple scheme: while consumers poll without pause, the producer may not
 *   catch active at zero for a while and retired segments wait (seen in the
 *   C stress test: about a thousand segments with four spinning consumers).
 *   Under the Python layer's GIL no consumer is ever inside a pop when the
 *   producer runs, so reclamation there is immediate.
 *   Serialized consumers do not count themselves in `active`: the one
 *   consumer that moves head_seg past a segment has finished reading it
 *   (release store), no other consumer can be inside it, and the next one
 *   starts from the new head_seg; so the producer may free whatever lies
 *   behind the head_seg it acquires, and `active` stays 0.
 *
 * Pure C, no Python.h.
 */
#ifndef FLINQ_CHAIN_H
#define FLINQ_CHAIN_H

#include <stddef.h>
#include <stdint.h>
#include "alloc.h"
#include "atomic.h"
#include "ring.h"

#ifndef FLQ_CHAIN_FIRST_CAPACITY
#define FLQ_CHAIN_FIRST_CAPACITY 32u
#endif
#ifndef FLQ_CHAIN_MAX_CAPACITY
#define FLQ_CHAIN_MAX_CAPACITY 4096u
#endif

typedef struct flq_segment {
    flq_ring ring;            /* slots follow this header in the same block */
    struct flq_segment *next; /* set once by the producer (release), read by consumers (acquire) */
} flq_segment;

typedef struct flq_chain {
    FLQ_CACHELINE_ALIGNED flq_segment *head_seg; /* oldest live segment; consumers CAS it forward */
    uint64_t active;                             /* consumers inside a pop */
    FLQ_CACHELINE_ALIGNED flq_segment *tail_seg; /* newest segment; producer only */
    flq_segment *oldest;                         /* oldest segment not yet freed; producer only */
    uint32_t next_capacity;                      /* capacity of the next segment; producer only */
} flq_chain;

static inline flq_segment *flq__segment_new(uint32_t capacity)
{
    size_t header = (sizeof(flq_segment) + FLQ_CACHELINE - 1) & ~(size_t)(FLQ_CACHELINE - 1);
    flq_segment *seg = (flq_segment *)flq_aligned_alloc(header + (size_t)capacity * sizeof(void *), FLQ_CACHELINE);
    if (seg == NULL)
        return NULL;
    flq_ring_init(&seg->ring, (void **)((char *)seg + header), capacity);
    seg->next = NULL;
    return seg;
}

/* Returns 0, or -1 when out of memory. */
static inline int flq_chain_init(flq_chain *c)
{
    flq_segment *seg = flq__segment_new(FLQ_CHAIN_FIRST_CAPACITY);
    if (seg == NULL)
        return -1;
    c->head_seg = seg;
    c->active = 0;
    c->tail_seg = seg;
    c->oldest = seg;
    c->next_capacity = FLQ_CHAIN_FIRST_CAPACITY < FLQ_CHAIN_MAX_CAPACITY ? FLQ_CHAIN_FIRST_CAPACITY * 2
                                                                          : FLQ_CHAIN_MAX_CAPACITY;
    return 0;
}

/* A chain in a block of its own: flq_chain's fields demand 64-byte
 * alignment, which a struct embedding it (a Python object, say) may not
 * have. Returns NULL when out of memory. */
static inline flq_chain *flq_chain_new(void)
{
    flq_chain *c = (flq_chain *)flq_aligned_alloc(sizeof(flq_chain), FLQ_CACHELINE);
    if (c != NULL && flq_chain_init(c) != 0) {
        flq_aligned_free(c);
        c = NULL;
    }
    return c;
}

/* Frees the segments; items still queued are not touched (drain first). */
static inline void flq_chain_destroy(flq_chain *c)
{
    flq_segment *seg = c->oldest;
    while (seg != NULL) {
        flq_segment *next = seg->next;
        flq_aligned_free(seg);
        seg = next;
    }
    c->head_seg = c->tail_seg = c->oldest = NULL;
}

/* Destroys and frees a chain made by flq_chain_new (NULL is ignored). */
static inline void flq_chain_free(flq_chain *c)
{
    if (c != NULL) {
        flq_chain_destroy(c);
        flq_aligned_free(c);
    }
}

/* Call fn(item, arg) on every queued item, oldest first; stop at and return
 * the first non-zero result. */
static inline int flq_chain_visit(const flq_chain *c, int (*fn)(void *item, void *arg), void *arg)
{
    for (const flq_segment *seg = c->head_seg; seg != NULL; seg = seg->next) {
        for (uint64_t i = seg->ring.head; i != seg->ring.tail; i++) {
            int r = fn(seg->ring.slots[i & seg->ring.mask], arg);
            if (r != 0)
                return r;
        }
    }
    return 0;
}

/* Producer: free segments that consumers have moved past, if none is still
 * inside a pop. Cheap when there is nothing to free. */
FLQ_INLINE void flq_chain_reclaim(flq_chain *c)
{
    if (c->oldest == c->tail_seg)
        return;
    /* seq_cst, with the consumers' seq_cst increment of active before their
     * head_seg load: see "Reclamation" above. */
    flq_segment *head = (flq_segment *)flq_load_ptr_seq_cst((void *const *)&c->head_seg);
    if (head == c->oldest || flq_load_u64_seq_cst(&c->active) != 0)
        return;
    while (c->oldest != head) {
        flq_segment *next = c->oldest->next;
        flq_aligned_free(c->oldest);
        c->oldest = next;
    }
}

/* Producer slow path: link fresh segments holding items[0..n). Returns how
 * many were appended: n, or fewer when memory ran out. */
static inline size_t flq_chain__grow(flq_chain *c, void *const *items, size_t n)
{
    size_t done = 0;
    while (done < n) {
        uint32_t capacity = c->next_capacity;
        while (capacity < n - done && capacity < FLQ_CHAIN_MAX_CAPACITY)
            capacity *= 2;
        flq_segment *seg = flq__segment_new(capacity);
        if (seg == NULL)
            break;
        done += flq_ring_push_many(&seg->ring, items + done, n - done);
        /* release: the new segment's slots and tail are visible before the link. */
        flq_store_ptr_release((void **)&c->tail_seg->next, seg);
        c->tail_seg = seg;
        if (c->next_capacity < FLQ_CHAIN_MAX_CAPACITY)
            c->next_capacity *= 2;
    }
    return done;
}

/* Producer: append one item. Returns 0, or -1 when out of memory (nothing
 * appended). */
FLQ_INLINE int flq_chain_push(flq_chain *c, void *item)
{
    flq_chain_reclaim(c);
    if (flq_ring_try_push(&c->tail_seg->ring, item))
        return 0;
    return flq_chain__grow(c, &item, 1) == 1 ? 0 : -1;
}

/* Producer: append n items in order. Returns how many of the first items
 * were appended: n, or fewer when memory ran out. */
static inline size_t flq_chain_push_many(flq_chain *c, void *const *items, size_t n)
{
    flq_chain_reclaim(c);
    size_t done = flq_ring_push_many(&c->tail_seg->ring, items, n);
    if (done < n)
        done += flq_chain__grow(c, items + done, n - done);
    return done;
}

/* Consumer: take up to max oldest items into out[]. Claims once per
 * segment crossed. Returns how many were taken (0 when empty). */
static inline size_t flq_chain_pop_many(flq_chain *c, void **out, size_t max)
{
    size_t taken = 0;
    /* seq_cst: announce before reading head_seg (see "Reclamation"). */
    flq_fetch_add_u64_seq_cst(&c->active, 1);
    flq_segment *seg = (flq_segment *)flq_load_ptr_seq_cst((void *const *)&c->head_seg);
    while (taken < max) {
        size_t got = flq_ring_pop_many(&seg->ring, out + taken, max - taken);
        taken += got;
        if (taken == max)
            break;
        /* acquire: pairs with the producer's release when it linked `next`. */
        flq_segment *next = (flq_segment *)flq_load_ptr_acquire((void *const *)&seg->next);
        if (next == NULL)
            break;
        /* The producer never writes to seg after linking next; anything it
         * wrote before the link is visible now, so look once more. */
        got = flq_ring_pop_many(&seg->ring, out + taken, max - taken);
        taken += got;
        if (got > 0)
            continue;
        /* seg is closed and drained: move the head on (another consumer may
         * already have). seq_cst: ordered with the producer's reclamation. */
        void *expected = seg;
        if (flq_cas_ptr_seq_cst((void **)&c->head_seg, &expected, next))
            seg = next;
        else
            seg = (flq_segment *)expected;
    }
    /* release: this consumer's reads of the segment finish before the producer may free it. */
    flq_fetch_sub_u64_release(&c->active, 1);
    return taken;
}

/* Consumer: take the oldest item into *out. Returns 1, or 0 when empty. */
FLQ_INLINE int flq_chain_pop(flq_chain *c, void **out)
{
    return flq_chain_pop_many(c, out, 1) == 1;
}

/* Serialized consumer: take up to max oldest items into out[]; the caller
 * guarantees no other consumer runs at the same time. Returns how many were
 * taken (0 when empty). */
FLQ_INLINE size_t flq_chain_pop_many_serial(flq_chain *c, void **out, size_t max)
{
    /* relaxed: only serialized consumers write head_seg, ordered by the
     * caller's serialization. */
    flq_segment *seg = (flq_segment *)flq_load_ptr_relaxed((void *const *)&c->head_seg);
    size_t taken = flq_ring_pop_many_serial(&seg->ring, out, max);
    while (taken < max) {
        /* acquire: pairs with the producer's release when it linked `next`. */
        flq_segment *next = (flq_segment *)flq_load_ptr_acquire((void *const *)&seg->next);
        if (next == NULL)
            break;
        /* The producer never writes to seg after linking next; anything it
         * wrote before the link is visible now, so look once more. */
        size_t got = flq_ring_pop_many_serial(&seg->ring, out + taken, max - taken);
        taken += got;
        if (got > 0)
            continue;
        /* release: this consumer's reads of seg finish before the producer,
         * acquiring head_seg, may free it. */
        flq_store_ptr_release((void **)&c->head_seg, next);
        seg = next;
        taken += flq_ring_pop_many_serial(&seg->ring, out + taken, max - taken);
    }
    return taken;
}

#endif /* FLINQ_CHAIN_H */
