/*
 * flinq/ring.h: a bounded single-producer / multi-consumer ring of pointers.
 *
 * Concurrency contract
 *   - At most ONE thread at a time may call the producer functions
 *     (flq_ring_try_push, flq_ring_push_many). Callers with several producers
 *     must serialize them (the Python layer does so with the GIL).
 *   - ANY number of threads may call the concurrent consumer functions
 *     (flq_ring_try_pop, flq_ring_pop_many) concurrently with each other and
 *     with the producer. They are lock-free: a consumer fails its claim only
 *     because another consumer succeeded. Each claim is an atomic
 *     read-modify-write (a CAS on head).
 *   - flq_ring_pop_many_serial is the consumer for callers that already
 *     serialize their consumers (flinq's Python layer: the GIL). It may run
 *     concurrently with the producer, never with another consumer, and makes
 *     no read-modify-write: head is a plain release store. A ring is used in
 *     one consumer mode for its whole life: mixing the two modes is a race.
 *   - flq_ring_size is a snapshot, exact only when nobody is pushing or
 *     popping. flq_ring_init must finish before any other call is made.
 *
 * Layout
 *   head (consumers' claim index) and tail (producer's publish index) are
 *   free-running 64-bit counters on cache lines of their own, so producer and
 *   consumers do not false-share; they never wrap in practice (2^64 items).
 *   The producer keeps a private copy of head beside tail and reloads the
 *   shared head only when the ring looks full. The read-mostly mask and slot
 *   pointer sit on a third line. Capacity is a power of two so that an index
 *   maps to a slot with a mask.
 *
 * Memory-order argument
 *   - Producer: write the slot, then store tail with release, so a consumer
 *     that acquires tail sees the slot's contents.
 *   - Consumer: acquire head (so the tail it loads next is no older than the
 *     tail seen by the consumer that moved head there), acquire tail, read
 *     the slot, then CAS head with acq_rel. The
 *     release half keeps the slot read before the head update: the new head
 *     is the producer's licence to overwrite that slot. A consumer whose CAS
 *     fails discards the value it read, which may already be stale.
 *   - Producer reloads head with acquire before reusing slots, pairing with
 *     the consumers' release so their slot reads are finished.
 *   Slots are accessed with relaxed atomics: a losing consumer may read a slot
 *   while the producer rewrites it, which is benign here but must not be a
 *   data race in C's model (and must stay quiet under ThreadSanitizer).
 *
 * Pure C, no Python.h.
 */
#ifndef FLINQ_RING_H
#define FLINQ_RING_H

#include <stddef.h>
#include <stdint.h>

#include "atomic.h"

typedef struct flq_ring {
    FLQ_CACHELINE_ALIGNED uint64_t head; /* next index to claim (consumers) */
    FLQ_CACHELINE_ALIGNED uint64_t tail; /* next index to publish (producer) */
    uint64_t head_cache;                 /* producer-private copy of head */
    FLQ_CACHELINE_ALIGNED uint64_t mask; /* capacity - 1, read-only after init */
    void **slots;                        /* capacity entries, owned by the caller */
} flq_ring;

/* Prepare an empty ring over `slots`, which holds `capacity` entries; capacity
 * must be a power of two (checked with a debug assert by the caller). */
FLQ_INLINE void flq_ring_init(flq_ring *r, void **slots, uint64_t capacity)
{
    r->head = 0;
    r->tail = 0;
    r->head_cache = 0;
    r->mask = capacity - 1;
    r->slots = slots;
}

FLQ_INLINE uint64_t flq_ring_capacity(const flq_ring *r) { return r->mask + 1; }

/* Items in the ring at some instant during the call. */
FLQ_INLINE uint64_t flq_ring_size(const flq_ring *r)
{
    /* Load head first: tail only grows, so tail - head cannot underflow. */
    uint64_t head = flq_load_u64_acquire(&r->head);
    uint64_t tail = flq_load_u64_acquire(&r->tail);
    return tail - head;
}

/* Free slots as the producer sees them; reloads head only when needed. */
FLQ_INLINE uint64_t flq_ring__room(flq_ring *r, uint64_t tail, uint64_t wanted)
{
    uint64_t capacity = r->mask + 1;
    uint64_t room = capacity - (tail - r->head_cache);
    if (room < wanted) {
        /* acquire: consumers' slot reads before their head CAS are done. */
        r->head_cache = flq_load_u64_acquire(&r->head);
        room = capacity - (tail - r->head_cache);
    }
    return room;
}

/* Producer: append one item. Returns 1, or 0 when the ring is full. */
FLQ_INLINE int flq_ring_try_push(flq_ring *r, void *item)
{
    uint64_t tail = r->tail; /* only this thread writes tail */
    if (flq_ring__room(r, tail, 1) == 0)
        return 0;
    flq_store_ptr_relaxed(&r->slots[tail & r->mask], item);
    /* release: the slot write is visible before the new tail is. */
    flq_store_u64_release(&r->tail, tail + 1);
    return 1;
}

/* Producer: append up to n items in order with one publication. Returns how
 * many were appended (fewer than n only when the ring filled up). */
FLQ_INLINE size_t flq_ring_push_many(flq_ring *r, void *const *items, size_t n)
{
    uint64_t tail = r->tail;
    uint64_t room = flq_ring__room(r, tail, n);
    size_t count = n < room ? n : (size_t)room;
    for (size_t i = 0; i < count; i++)
        flq_store_ptr_relaxed(&r->slots[(tail + i) & r->mask], items[i]);
    if (count)
        /* release: all slot writes are visible before the new tail is. */
        flq_store_u64_release(&r->tail, tail + count);
    return count;
}

/* Consumer: take the oldest item into *out. Returns 1, or 0 when empty. */
FLQ_INLINE int flq_ring_try_pop(flq_ring *r, void **out)
{
    /* acquire: pairs with the claiming CAS of the consumer that set this
     * head, so the tail loaded next is at least the tail it saw. */
    uint64_t head = flq_load_u64_acquire(&r->head);
    for (;;) {
        /* acquire: pairs with the producer's release, so slots below tail are written. */
        uint64_t tail = flq_load_u64_acquire(&r->tail);
        if (head == tail)
            return 0;
        void *item = flq_load_ptr_relaxed(&r->slots[head & r->mask]);
        /* acq_rel: the slot read above completes before head moves (release);
         * on failure head is reloaded and the stale item is discarded. */
        if (flq_cas_u64_acq_rel(&r->head, &head, head + 1)) {
            *out = item;
            return 1;
        }
    }
}

/* Consumer: take up to max oldest items into out[] with one claim.
 * Returns how many were taken (0 when empty). */
FLQ_INLINE size_t flq_ring_pop_many(flq_ring *r, void **out, size_t max)
{
    /* acquire: as in flq_ring_try_pop, so tail - head cannot underflow. */
    uint64_t head = flq_load_u64_acquire(&r->head);
    for (;;) {
        /* acquire: pairs with the producer's release, so slots below tail are written. */
        uint64_t tail = flq_load_u64_acquire(&r->tail);
        uint64_t ready = tail - head;
        if (ready == 0 || max == 0)
            return 0;
        size_t count = ready < max ? (size_t)ready : max;
        for (size_t i = 0; i < count; i++)
            out[i] = flq_load_ptr_relaxed(&r->slots[(head + i) & r->mask]);
        /* acq_rel: the slot reads complete before head moves past them. */
        if (flq_cas_u64_acq_rel(&r->head, &head, head + count))
            return count;
    }
}

/* Serialized consumer: take up to max oldest items into out[]. The caller
 * guarantees that no other consumer runs at the same time (the producer may).
 * Returns how many were taken (0 when empty). */
FLQ_INLINE size_t flq_ring_pop_many_serial(flq_ring *r, void **out, size_t max)
{
    /* relaxed: only serialized consumers write head, and the caller's
     * serialization already orders this load after the previous store. */
    uint64_t head = flq_load_u64_relaxed(&r->head);
    /* acquire: pairs with the producer's release, so slots below tail are written. */
    uint64_t ready = flq_load_u64_acquire(&r->tail) - head;
    size_t count = ready < max ? (size_t)ready : max;
    for (size_t i = 0; i < count; i++)
        out[i] = flq_load_ptr_relaxed(&r->slots[(head + i) & r->mask]);
    if (count)
        /* release: the slot reads complete before head hands the slots back
         * to the producer. */
        flq_store_u64_release(&r->head, head + count);
    return count;
}

#endif /* FLINQ_RING_H */
