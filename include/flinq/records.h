/*
 * flinq/records.h: a bounded multi-producer / multi-consumer FIFO of
 * fixed-size records, laid out in one block of memory that holds no pointers.
 *
 * Concurrency contract
 *   - ANY number of threads (or processes mapping the same block) may call
 *     the producer functions (flq_records_reserve, _write, _publish,
 *     _try_put) and the consumer functions (flq_records_claim, _read,
 *     _release, _try_get, _discard) concurrently. flq_records_init runs alone,
 *     before any other call; flq_records_check may run at any time.
 *   - A run of slots is reserved (or claimed) by one compare-and-swap on a
 *     shared counter; the records are then copied with plain memcpy outside
 *     any lock, and the run is published (or released). Every reserved run
 *     MUST be published and every claimed run released, in any order: later
 *     runs stay invisible (or their slots stay in use) until every earlier
 *     run is done, so a caller that stops between reserve and publish stalls
 *     the ring. flinq copies only between the two, which cannot fail.
 *   - No caller ever waits for another inside these functions: a run that
 *     completes before an earlier one is published by whichever caller
 *     completes that earlier one (see "Publication").
 *   - flq_records_size, _room and _state are snapshots.
 *   - A consumer may read a claimed run in place (flq_records_at) instead of
 *     copying it out, until it releases the run.
 *
 * Layout (offsets from the start of the block; the block must be aligned to
 * 64 bytes and may be mapped at different addresses in different processes)
 *   header      struct flq_records: read-only geometry, then the four
 *               counters on cache lines of their own, the shutdown state
 *               and a line of wait words (flinq/shmwait.h);
 *   marks[2]    two arrays of `capacity` uint64: completion marks of
 *               producer runs (publication) and consumer runs (release);
 *   data        capacity * record_size bytes, 64-byte aligned.
 *   The geometry repeats in the header with a magic number and a layout
 *   version, so a process that attaches to a block can validate it.
 *
 * Counters (free-running 64-bit positions; 2^64 records never pass)
 *   released <= claimed <= published <= reserved <= released + capacity.
 *   reserved: producers' next position; published: records below it are
 *   readable; claimed: consumers' next position; released: slots below it
 *   may be rewritten. Position p lives in slot p % capacity (any capacity;
 *   one division per run, not per record).
 *
 * Publication (the same for `published` and `released`): a finished run
 *   [start, end) stores `end` in marks[start % capacity] with release, then
 *   advances the front counter while the mark at the front names a larger
 *   position, by compare-and-swap. A mark left from an earlier lap is never
 *   larger than the front it is read at (runs are at most capacity long), so
 *   it reads as "not finished". A successful CAS from f proves the front was
 *   f since it was read, so the mark read in between was no later lap's.
 *   Lost publication: a thread that marks its run and then finds the front
 *   short of it leaves; the thread that moves the front up to that run must
 *   then see the mark. Each side does store; seq_cst fence; load (Dekker),
 *   so at least one of them sees the other's store.
 *
 * Memory-order argument
 *   - Producer: reserve by CAS (acq_rel) after an acquire load of released,
 *     which pairs with the release CAS that moved it: consumers' copies out
 *     of the reused slots happen before our copy in. Copy, then mark with
 *     release; the thread that moves `published` read that mark with
 *     acquire, and its CAS (acq_rel) is what consumers acquire.
 *   - Consumer: acquire claimed (so the published it loads next is no older
 *     than the one seen by the consumer that moved claimed there), acquire
 *     published, claim by CAS; no slot is read before the claim succeeds, so
 *     copies never race. Release mirrors publication.
 *
 * The words are naturally aligned 32- and 64-bit integers accessed through
 * flinq/atomic.h, lock-free on every target flinq builds for, so they work
 * across processes in a shared mapping. Pure C, no Python.h.
 */
#ifndef FLINQ_RECORDS_H
#define FLINQ_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "atomic.h"
#include "shmwait.h"

#define FLQ_RECORDS_MAGIC 0x464c5152u /* "FLQR" */
#define FLQ_RECORDS_VERSION 1u

/* flq_records.state */
#define FLQ_RECORDS_OPEN 0u
#define FLQ_RECORDS_SHUTDOWN 1u           /* no new records; the queued ones stay */
#define FLQ_RECORDS_SHUTDOWN_IMMEDIATE 2u /* no new records; the queued ones dropped */

typedef struct flq_records {
    /* read-only after flq_records_init */
    uint32_t magic;
    uint32_t version;
    uint64_t record_size;
    uint64_t capacity;
    uint64_t marks_offset; /* two arrays of capacity uint64 */
    uint64_t data_offset;
    uint64_t total_size; /* bytes of the whole block */
    FLQ_CACHELINE_ALIGNED uint64_t reserved;
    FLQ_CACHELINE_ALIGNED uint64_t published;
    FLQ_CACHELINE_ALIGNED uint64_t claimed;
    FLQ_CACHELINE_ALIGNED uint64_t released;
    FLQ_CACHELINE_ALIGNED uint32_t state; /* FLQ_RECORDS_OPEN / _SHUTDOWN / _SHUTDOWN_IMMEDIATE */
    uint32_t spare;                       /* zero; keeps `discarded` 8-byte aligned */
    uint64_t discarded;                   /* records dropped by flq_records_discard */
    /* Wait words for sleepers in any process that maps the block
     * (flinq/shmwait.h): notified after records or room appear. Zero at
     * init; this header never touches them. */
    FLQ_CACHELINE_ALIGNED flq_shm_wait items;
    flq_shm_wait room;
} flq_records;

FLQ_INLINE uint64_t flq_records__round_up(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

/* Bytes of a block for `capacity` records of `record_size` bytes, or 0 when
 * either is 0 or the size does not fit in 63 bits. */
FLQ_INLINE uint64_t flq_records_block_size(uint64_t record_size, uint64_t capacity)
{
    const uint64_t limit = (uint64_t)1 << 62;
    if (record_size == 0 || capacity == 0 || capacity > limit / 16 || record_size > limit / capacity)
        return 0;
    uint64_t header = flq_records__round_up(sizeof(flq_records), FLQ_CACHELINE);
    uint64_t marks = flq_records__round_up(2 * 8 * capacity, FLQ_CACHELINE);
    return header + marks + flq_records__round_up(record_size * capacity, FLQ_CACHELINE);
}

/* Lay out an empty ring in `block` (flq_records_block_size bytes, 64-byte
 * aligned). Returns the header, or NULL when the geometry is invalid. */
static inline flq_records *flq_records_init(void *block, uint64_t record_size, uint64_t capacity)
{
    uint64_t size = flq_records_block_size(record_size, capacity);
    if (size == 0)
        return NULL;
    flq_records *r = (flq_records *)block;
    uint64_t header = flq_records__round_up(sizeof(flq_records), FLQ_CACHELINE);
    memset(block, 0, (size_t)(header + 2 * 8 * capacity)); /* data needs no zeroing */
    r->record_size = record_size;
    r->capacity = capacity;
    r->marks_offset = header;
    r->data_offset = header + flq_records__round_up(2 * 8 * capacity, FLQ_CACHELINE);
    r->total_size = size;
    r->version = FLQ_RECORDS_VERSION;
    /* release: a process that acquires the magic sees the geometry above. */
    flq_store_u32_release(&r->magic, FLQ_RECORDS_MAGIC);
    return r;
}

/* Validate a block someone else laid out, `mapped` bytes long. Returns 0 when
 * it is a ring of this layout version, -1 when the magic or geometry is
 * wrong, -2 when the version differs. */
static inline int flq_records_check(const void *block, uint64_t mapped)
{
    const flq_records *r = (const flq_records *)block;
    if (mapped < sizeof(flq_records))
        return -1;
    /* acquire: pairs with the release in flq_records_init. */
    if (flq_load_u32_acquire(&r->magic) != FLQ_RECORDS_MAGIC)
        return -1;
    if (r->version != FLQ_RECORDS_VERSION)
        return -2;
    uint64_t size = flq_records_block_size(r->record_size, r->capacity);
    if (size == 0 || size != r->total_size || size > mapped)
        return -1;
    return 0;
}

FLQ_INLINE uint64_t *flq_records__marks(flq_records *r, int consumers)
{
    return (uint64_t *)((char *)r + r->marks_offset) + (consumers ? r->capacity : 0);
}

FLQ_INLINE char *flq_records__data(flq_records *r) { return (char *)r + r->data_offset; }

/* Records published and not yet claimed, at some instant during the call. */
FLQ_INLINE uint64_t flq_records_size(flq_records *r)
{
    /* acquire on claimed first: published, loaded next, is no older. */
    uint64_t claimed = flq_load_u64_acquire(&r->claimed);
    uint64_t published = flq_load_u64_acquire(&r->published);
    return published > claimed ? published - claimed : 0;
}

/* Slots free for producers (neither reserved nor still being read). */
FLQ_INLINE uint64_t flq_records_room(flq_records *r)
{
    /* acquire on reserved first, as in flq_records_size. */
    uint64_t reserved = flq_load_u64_acquire(&r->reserved);
    uint64_t released = flq_load_u64_acquire(&r->released);
    uint64_t used = reserved > released ? reserved - released : 0;
    return used < r->capacity ? r->capacity - used : 0;
}

FLQ_INLINE uint32_t flq_records_state(flq_records *r)
{
    /* acquire: whatever the shutting-down thread did before is visible. */
    return flq_load_u32_acquire(&r->state);
}

/* Move the state forward (OPEN -> SHUTDOWN -> SHUTDOWN_IMMEDIATE) only. */
FLQ_INLINE void flq_records_set_state(flq_records *r, uint32_t state)
{
    if (flq_load_u32_relaxed(&r->state) < state)
        /* release: pairs with the acquire in flq_records_state. */
        flq_store_u32_release(&r->state, state);
}

/* Mark [start, end) finished and advance *front over every finished run
 * that now starts at it (see "Publication" above). */
FLQ_INLINE void flq_records__finish(uint64_t *front, uint64_t *marks, uint64_t capacity,
                                    uint64_t start, uint64_t end)
{
    /* release: this run's copy completes before its mark can be seen. */
    flq_store_u64_release(&marks[start % capacity], end);
    /* seq_cst: the mark is visible before front is read (Dekker; pairs with
     * the fence after an advance below). */
    flq_fence_seq_cst();
    /* acquire: the advance that set this front read its marks with acquire;
     * chaining keeps every finished copy below front visible to our CAS. */
    uint64_t at = flq_load_u64_acquire(front);
    for (;;) {
        /* acquire: pairs with the release of the mark's owner, so its copy
         * happens before the CAS that makes it public. */
        uint64_t to = flq_load_u64_acquire(&marks[at % capacity]);
        if (to <= at)
            return; /* the run at the front is not finished; its owner will advance */
        /* acq_rel: publishes everything below `to` (release) and keeps the
         * chain of earlier advances (acquire); on failure `at` is reloaded. */
        if (flq_cas_u64_acq_rel(front, &at, to)) {
            at = to;
            /* seq_cst: the advance is visible before the next mark is read
             * (Dekker; pairs with the fence after a mark above). */
            flq_fence_seq_cst();
        }
    }
}

/* Producer, step 1: reserve n (1..capacity) consecutive positions, all or
 * none. Returns 1 and sets *start, or 0 when fewer than n slots are free. */
FLQ_INLINE int flq_records_reserve(flq_records *r, uint64_t n, uint64_t *start)
{
    /* acquire: the CAS that set reserved had seen released at least this far. */
    uint64_t at = flq_load_u64_acquire(&r->reserved);
    for (;;) {
        /* acquire: pairs with the advance of released, so consumers' copies
         * out of the slots we may reuse are complete. */
        uint64_t released = flq_load_u64_acquire(&r->released);
        if (at + n > released + r->capacity)
            return 0;
        /* acq_rel: the run is ours; on failure `at` is reloaded. */
        if (flq_cas_u64_acq_rel(&r->reserved, &at, at + n)) {
            *start = at;
            return 1;
        }
    }
}

/* Copy n records from src into the reserved run at start (memcpy, no lock). */
FLQ_INLINE void flq_records_write(flq_records *r, uint64_t start, const void *src, uint64_t n)
{
    uint64_t slot = start % r->capacity;
    uint64_t first = r->capacity - slot < n ? r->capacity - slot : n;
    char *data = flq_records__data(r);
    memcpy(data + slot * r->record_size, src, (size_t)(first * r->record_size));
    if (first < n)
        memcpy(data, (const char *)src + first * r->record_size, (size_t)((n - first) * r->record_size));
}

/* Producer, step 3: make the run [start, start + n) readable (after every
 * earlier run is published too). */
FLQ_INLINE void flq_records_publish(flq_records *r, uint64_t start, uint64_t n)
{
    flq_records__finish(&r->published, flq_records__marks(r, 0), r->capacity, start, start + n);
}

/* Consumer, step 1: claim up to max published records; with `contiguous`,
 * no more than reach the end of the data area from the run's start (for
 * reading in place). Returns how many (0 when none is published) and sets
 * *start. */
FLQ_INLINE uint64_t flq_records__claim(flq_records *r, uint64_t max, uint64_t *start, int contiguous)
{
    /* acquire: as in flq_records_size, the published loaded next is no older
     * than the one seen by the consumer that moved claimed here. */
    uint64_t at = flq_load_u64_acquire(&r->claimed);
    for (;;) {
        /* acquire: pairs with the advance of published: the records are written. */
        uint64_t published = flq_load_u64_acquire(&r->published);
        uint64_t ready = published > at ? published - at : 0;
        uint64_t n = ready < max ? ready : max;
        if (contiguous && n > r->capacity - at % r->capacity)
            n = r->capacity - at % r->capacity;
        if (n == 0)
            return 0;
        /* acq_rel: the run is ours; on failure `at` is reloaded. */
        if (flq_cas_u64_acq_rel(&r->claimed, &at, at + n)) {
            *start = at;
            return n;
        }
    }
}

/* Consumer, step 1: claim up to max published records. Returns how many
 * (0 when none is published) and sets *start. */
FLQ_INLINE uint64_t flq_records_claim(flq_records *r, uint64_t max, uint64_t *start)
{
    return flq_records__claim(r, max, start, 0);
}

/* Consumer, step 1 for reading in place: as flq_records_claim, but the run
 * never wraps past the end of the data area, so flq_records_at(r, *start)
 * addresses all of it. */
FLQ_INLINE uint64_t flq_records_claim_contiguous(flq_records *r, uint64_t max, uint64_t *start)
{
    return flq_records__claim(r, max, start, 1);
}

/* Copy n records of the claimed run at start into dst (memcpy, no lock). */
FLQ_INLINE void flq_records_read(flq_records *r, uint64_t start, void *dst, uint64_t n)
{
    uint64_t slot = start % r->capacity;
    uint64_t first = r->capacity - slot < n ? r->capacity - slot : n;
    const char *data = flq_records__data(r);
    memcpy(dst, data + slot * r->record_size, (size_t)(first * r->record_size));
    if (first < n)
        memcpy((char *)dst + first * r->record_size, data, (size_t)((n - first) * r->record_size));
}

/* Where position pos's record lives, for reading a claimed run in place. */
FLQ_INLINE void *flq_records_at(flq_records *r, uint64_t pos)
{
    return flq_records__data(r) + (pos % r->capacity) * r->record_size;
}

/* Records from position pos to the end of the data area: the longest run
 * from pos that is contiguous in memory. */
FLQ_INLINE uint64_t flq_records_contiguous(const flq_records *r, uint64_t pos)
{
    return r->capacity - pos % r->capacity;
}

/* Consumer, step 3: give the slots of [start, start + n) back to producers
 * (after every earlier run is released too). */
FLQ_INLINE void flq_records_release(flq_records *r, uint64_t start, uint64_t n)
{
    flq_records__finish(&r->released, flq_records__marks(r, 1), r->capacity, start, start + n);
}

/* Producer in one call: reserve, copy and publish n records (all or none).
 * Returns 1, or 0 when they do not fit now. */
FLQ_INLINE int flq_records_try_put(flq_records *r, const void *src, uint64_t n)
{
    uint64_t start;
    if (!flq_records_reserve(r, n, &start))
        return 0;
    flq_records_write(r, start, src, n);
    flq_records_publish(r, start, n);
    return 1;
}

/* Consumer in one call: claim, copy and release up to max records.
 * Returns how many were taken (0 when none was published). */
FLQ_INLINE uint64_t flq_records_try_get(flq_records *r, void *dst, uint64_t max)
{
    uint64_t start;
    uint64_t n = flq_records_claim(r, max, &start);
    if (n) {
        flq_records_read(r, start, dst, n);
        flq_records_release(r, start, n);
    }
    return n;
}

/* Consumer: drop every published record without reading it. Returns how
 * many were dropped; they count in r->discarded. */
FLQ_INLINE uint64_t flq_records_discard(flq_records *r)
{
    uint64_t start;
    uint64_t n = flq_records_claim(r, UINT64_MAX, &start);
    if (n) {
        flq_records_release(r, start, n);
        /* seq_cst (the only RMW at hand): a statistic, ordered with nothing. */
        flq_fetch_add_u64_seq_cst(&r->discarded, n);
    }
    return n;
}

#endif /* FLINQ_RECORDS_H */
