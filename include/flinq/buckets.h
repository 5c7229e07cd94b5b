/*
 * flinq/buckets.h: a priority queue of (int64 priority, uint64 sequence,
 * item) entries that is O(1) for small priorities.
 *
 * Why: services that use priorities mostly use a handful of small ones
 * (0-9, say). A binary heap pays O(log n) cache-missing steps per pop over
 * all n queued entries whatever the spread of priorities; with few distinct
 * priorities, a FIFO per priority and a bitmap of the non-empty ones make
 * push and pop a few instructions each, and FIFO among equal priorities
 * comes for free.
 *
 * Layout
 *   Priorities 0 .. FLQ_BUCKETS-1 go to their own bucket: a growable ring of
 *   (seq, item). Bit p of `nonempty` is set while bucket p holds entries, so
 *   the lowest non-empty bucket is one count-trailing-zeros away. Every other
 *   priority (negative or large) goes to an overflow heap (heap.h), whose
 *   order is the same (priority, then seq). A pop takes the lower of the
 *   lowest bucket's priority and the heap's top; a priority lives in exactly
 *   one of the two places, so the two never tie.
 *   Entries pushed in increasing seq keep FIFO order among equal priorities,
 *   as with heap.h.
 *
 * Concurrency contract
 *   Not thread-safe: the caller serializes every call (the Python layer
 *   holds the GIL). No call blocks. No atomics are used.
 *
 * Failure leaves the queue unchanged: push returns -2 when out of memory,
 * with nothing stored.
 *
 * Pure C, no Python.h.
 */
#ifndef FLINQ_BUCKETS_H
#define FLINQ_BUCKETS_H

#include <stddef.h>
#include <stdint.h>

#include "alloc.h"
#include "heap.h"

#define FLQ_BUCKETS 64                  /* priorities 0..63 get a bucket: one bit each in a uint64 */
#define FLQ_BUCKET_FIRST_CAPACITY 16u   /* a bucket's first ring */
#define FLQ_BUCKET_KEEP_CAPACITY 4096u  /* an emptied bucket keeps a ring up to this size */

typedef struct flq_bucket_slot {
    uint64_t seq;
    void *item;
} flq_bucket_slot;

typedef struct flq_bucket {
    flq_bucket_slot *slots; /* capacity entries (a power of two), or NULL */
    size_t head;            /* index of the oldest entry, free-running */
    size_t tail;            /* index past the newest entry, free-running */
    size_t mask;            /* capacity - 1 */
} flq_bucket;

typedef struct flq_buckets {
    uint64_t nonempty; /* bit p: bucket p holds entries */
    size_t size;       /* entries in buckets and heap together */
    flq_heap overflow; /* priorities outside 0..FLQ_BUCKETS-1 */
    flq_bucket bucket[FLQ_BUCKETS];
} flq_buckets;

static inline void flq_buckets_init(flq_buckets *b)
{
    b->nonempty = 0;
    b->size = 0;
    flq_heap_init(&b->overflow);
    for (int p = 0; p < FLQ_BUCKETS; p++) {
        b->bucket[p].slots = NULL;
        b->bucket[p].head = b->bucket[p].tail = 0;
        b->bucket[p].mask = 0;
    }
}

/* Frees the memory; items still queued are not touched (drain first). */
static inline void flq_buckets_destroy(flq_buckets *b)
{
    for (int p = 0; p < FLQ_BUCKETS; p++) {
        FLQ_FREE(b->bucket[p].slots);
        b->bucket[p].slots = NULL;
        b->bucket[p].head = b->bucket[p].tail = 0;
        b->bucket[p].mask = 0;
    }
    flq_heap_destroy(&b->overflow);
    b->nonempty = 0;
    b->size = 0;
}

static inline int flq__bucket_is_small(int64_t priority)
{
    return priority >= 0 && priority < FLQ_BUCKETS;
}

static inline unsigned flq__lowest_bit(uint64_t x) /* x != 0 */
{
#if defined(_MSC_VER)
    unsigned long i;
    _BitScanForward64(&i, x);
    return (unsigned)i;
#else
    return (unsigned)__builtin_ctzll(x);
#endif
}

/* Room for `extra` more entries in bucket q, moving the ring into a larger
 * array (oldest first) when needed. Returns 0, or -2 when out of memory. */
static inline int flq__bucket_reserve(flq_bucket *q, size_t extra)
{
    size_t used = q->tail - q->head;
    size_t capacity = q->slots ? q->mask + 1 : 0;
    if (used + extra <= capacity)
        return 0;
    size_t grown = capacity ? capacity : FLQ_BUCKET_FIRST_CAPACITY;
    while (grown < used + extra) {
        if (grown > SIZE_MAX / 2 / sizeof(flq_bucket_slot))
            return -2;
        grown *= 2;
    }
    flq_bucket_slot *slots = (flq_bucket_slot *)FLQ_MALLOC(grown * sizeof(flq_bucket_slot));
    if (slots == NULL)
        return -2;
    for (size_t i = 0; i < used; i++)
        slots[i] = q->slots[(q->head + i) & q->mask];
    FLQ_FREE(q->slots);
    q->slots = slots;
    q->head = 0;
    q->tail = used;
    q->mask = grown - 1;
    return 0;
}

/* Room for n more entries of one priority, so that pushing them cannot fail.
 * Returns 0, or -2 when out of memory. */
static inline int flq_buckets_reserve(flq_buckets *b, int64_t priority, size_t n)
{
    if (flq__bucket_is_small(priority))
        return flq__bucket_reserve(&b->bucket[priority], n);
    return flq_heap_reserve(&b->overflow, n);
}

/* Insert a copy of *entry. Returns 0, or -2 when out of memory (unchanged). */
FLQ_INLINE int flq_buckets_push(flq_buckets *b, const flq_heap_entry *entry)
{
    if (flq__bucket_is_small(entry->priority)) {
        flq_bucket *q = &b->bucket[entry->priority];
        if (q->slots == NULL || q->tail - q->head > q->mask) {
            if (flq__bucket_reserve(q, 1) != 0)
                return -2;
        }
        flq_bucket_slot *slot = &q->slots[q->tail & q->mask];
        slot->seq = entry->seq;
        slot->item = entry->item;
        q->tail++;
        b->nonempty |= (uint64_t)1 << entry->priority;
    } else if (flq_heap_push(&b->overflow, entry) != 0) {
        return -2;
    }
    b->size++;
    return 0;
}

/* Remove the first entry into *out. Returns 1, or 0 when empty. */
FLQ_INLINE int flq_buckets_pop(flq_buckets *b, flq_heap_entry *out)
{
    const flq_heap_entry *top = flq_heap_peek(&b->overflow);
    if (b->nonempty == 0 || (top != NULL && top->priority < 0)) {
        /* Nothing in buckets, or the heap holds a negative priority, which
         * orders before every bucket. */
        return flq_heap_pop(&b->overflow, out) ? (b->size--, 1) : 0;
    }
    unsigned p = flq__lowest_bit(b->nonempty);
    /* The heap's top, when not negative, is >= FLQ_BUCKETS > p. */
    flq_bucket *q = &b->bucket[p];
    flq_bucket_slot *slot = &q->slots[q->head & q->mask];
    out->priority = (int64_t)p;
    out->seq = slot->seq;
    out->item = slot->item;
    q->head++;
    if (q->head == q->tail) {
        b->nonempty &= ~((uint64_t)1 << p);
        q->head = q->tail = 0;
        if (q->mask + 1 > FLQ_BUCKET_KEEP_CAPACITY) {
            /* a burst's memory goes back once the burst has drained */
            FLQ_FREE(q->slots);
            q->slots = NULL;
            q->mask = 0;
        }
    }
    b->size--;
    return 1;
}

/* Call fn(entry, arg) on every entry, in no particular order; stop at and
 * return the first non-zero result. */
static inline int flq_buckets_visit(const flq_buckets *b, int (*fn)(const flq_heap_entry *entry, void *arg),
                                    void *arg)
{
    flq_heap_entry e;
    for (int p = 0; p < FLQ_BUCKETS; p++) {
        const flq_bucket *q = &b->bucket[p];
        e.priority = p;
        for (size_t i = q->head; i != q->tail; i++) {
            e.seq = q->slots[i & q->mask].seq;
            e.item = q->slots[i & q->mask].item;
            int r = fn(&e, arg);
            if (r != 0)
                return r;
        }
    }
    for (size_t i = 0; i < b->overflow.size; i++) {
        int r = fn(&b->overflow.entries[i], arg);
        if (r != 0)
            return r;
    }
    return 0;
}

/* Forget every entry (the caller has taken the items, say with visit). */
static inline void flq_buckets_clear(flq_buckets *b)
{
    flq_buckets_destroy(b);
    flq_buckets_init(b);
}

#endif /* FLINQ_BUCKETS_H */
