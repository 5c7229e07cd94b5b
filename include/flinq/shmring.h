/*
 * flinq/shmring.h: a multi-producer / multi-consumer queue of byte records
 * in shared memory, built from single-producer lanes; robust to processes
 * killed at any instruction.
 *
 * Concurrency contract
 *   - The queue is a fixed set of lanes. A producing PROCESS claims one lane
 *     (flq_mq_claim_lane) and is its only writer: at most ONE thread at a
 *     time may run the producer functions (flq_mq_stage_begin,
 *     flq_mq_stage_record, flq_mq_publish) on a lane; callers serialize their
 *     threads (flinq's Python layer: the GIL, which it holds from
 *     stage_begin through publish).
 *   - ANY number of threads in any number of processes may run the consumer
 *     functions (flq_mq_ready, flq_mq_read, flq_mq_take) on any lane,
 *     concurrently with each other and with the lane's producer. They are
 *     lock-free: a consumer fails a take only because another one succeeded.
 *   - flq_mq_size and the lane counters are snapshots, exact only when
 *     nobody is producing or consuming.
 *
 * Why lanes, and what a dead process leaves behind
 *   Every step that changes what others see is ONE atomic store or CAS, so a
 *   process killed between any two instructions leaves nothing half-done
 *   that another must finish or wait for:
 *   - a producer writes records (data, then descriptor) past its lane's
 *     tail, where no consumer looks, and publishes them with one release
 *     store of tail. Killed before it, its records were never visible (a
 *     half-written record is never delivered); killed after, they are whole.
 *     Its lane stays readable, and once its pid is gone (kill(pid, 0) says
 *     ESRCH) a new producer process may adopt the lane and go on after its
 *     tail;
 *   - a consumer copies a record out FIRST and claims it with one CAS of the
 *     lane's head AFTER (as concurrencykit's SPMC ring does). Killed before
 *     the CAS, it claimed nothing; killed after, the record is gone, as with
 *     multiprocessing.Queue (at-most-once). No consumer ever holds space a
 *     producer waits for.
 *   A multi-producer ring with per-slot sequence numbers (Vyukov) would
 *   instead leave a claimed-but-unpublished slot that every consumer stalls
 *   on until someone proves the claimer dead and skips it; lanes need no
 *   such recovery, at the price of one lane of memory per producing process
 *   and FIFO order per producer rather than across producers (which two
 *   processes racing to put never had anyway).
 *
 * Layout of a lane (all offsets from the segment's base; no pointers)
 *   flq_mq_lane: head (consumers' claim index), then tail + data_tail +
 *   head_cache (written by the owner only), then owner (the pid), each group
 *   on its own cache line; then `slots` descriptors {pos, len | kind << 32}
 *   (slots is a power of two); then `data_bytes` of record bodies (a
 *   multiple of 64). Indexes and byte positions are free-running 64-bit
 *   counters (never wrap in practice); a descriptor's pos modulo data_bytes
 *   is where its body starts. Bodies start 8-byte aligned and never wrap
 *   around the end of the data area: a record that would is placed at the
 *   start of the next lap, and the skipped bytes count as used.
 *
 * Memory-order argument
 *   - Producer: write body and descriptor, then store tail with release, so
 *     a consumer that acquires tail sees both. It reloads head with acquire
 *     before reusing space, pairing with the consumers' CAS (release half):
 *     their copies out of that space are finished.
 *   - Consumer: acquire head, acquire tail (so tail >= head: the consumer
 *     that moved head there saw such a tail), read descriptor and body, then
 *     CAS head with acq_rel; the release half keeps the reads before the
 *     claim, because the new head is the producer's licence to overwrite.
 *     A consumer whose CAS fails discards what it read: a record it looked
 *     at may already be rewritten, so flq_mq_read range-checks a descriptor
 *     before the caller copies from it.
 *   - Descriptors are accessed with relaxed atomics: a losing consumer may
 *     read one while the producer rewrites it. Bodies are copied with
 *     memcpy, the same benign race on bytes that are thrown away; builds
 *     under ThreadSanitizer (or with FLQ_SHM_ATOMIC_COPY) copy them with
 *     relaxed 8-byte atomics instead, so that the race is modelled.
 *   - Lane ownership moves by CAS (acq_rel) of owner from 0 or from a dead
 *     pid; the new owner then acquires tail, which the old owner released.
 *
 * Waiting is not here: the control block holds two flinq/shmwait.h words
 * (not_empty, not_full) that callers notify after publish and take.
 * Pure C, no Python.h.
 */
#ifndef FLINQ_SHMRING_H
#define FLINQ_SHMRING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "atomic.h"
#include "shmseg.h"
#include "shmwait.h"

#if !defined(FLQ_SHM_ATOMIC_COPY)
#  if defined(__SANITIZE_THREAD__)
#    define FLQ_SHM_ATOMIC_COPY 1
#  elif defined(__has_feature)
#    if __has_feature(thread_sanitizer)
#      define FLQ_SHM_ATOMIC_COPY 1
#    endif
#  endif
#endif

/* Kinds of record, stored in the descriptor; 0 is never a valid kind. */
#define FLQ_MQ_KIND_MAX 255u

/* Shared control block, right after the segment header. */
typedef struct flq_mq_ctl {
    FLQ_CACHELINE_ALIGNED flq_shm_wait not_empty; /* consumers sleep here */
    FLQ_CACHELINE_ALIGNED flq_shm_wait not_full;  /* producers sleep here */
    FLQ_CACHELINE_ALIGNED uint64_t lanes_used;    /* lanes [0, lanes_used) were ever claimed */
    uint64_t maxsize;                             /* 0: only room in a lane bounds a put */
    uint64_t flights_used;                        /* the same for flight lanes (shmflight.h) */
    uint64_t next_reap_ns;                        /* shmflight.h: when expired reservations are next looked for */
    uint64_t visibility_ns;                       /* shmflight.h: default reservation lifetime */
} flq_mq_ctl;

typedef struct flq_mq_lane {
    FLQ_CACHELINE_ALIGNED uint64_t head;  /* next index to claim (consumers) */
    FLQ_CACHELINE_ALIGNED uint64_t tail;  /* next index to publish (owner) */
    uint64_t data_tail;                   /* byte position after the last published body (owner) */
    uint64_t head_cache;                  /* owner's last look at head */
    FLQ_CACHELINE_ALIGNED uint64_t owner; /* pid of the producing process; 0: never claimed */
} flq_mq_lane;

typedef struct flq_mq_slot {
    uint64_t pos;  /* byte position of the body */
    uint64_t meta; /* len | kind << 32 */
} flq_mq_slot;

typedef char flq_mq__ctl_lines[sizeof(flq_mq_ctl) == 3 * FLQ_CACHELINE ? 1 : -1];
typedef char flq_mq__lane_lines[sizeof(flq_mq_lane) == 3 * FLQ_CACHELINE ? 1 : -1];

/* A process's view of a mapped queue: where the parts are in its mapping. */
typedef struct flq_mq {
    flq_mq_ctl *ctl;
    unsigned char *lanes;  /* first lane */
    unsigned char *flights; /* first flight lane (shmflight.h), after the lanes */
    uint64_t nlanes;
    uint64_t nflights;
    uint64_t slots;        /* descriptors per lane, a power of two */
    uint64_t data_bytes;   /* body bytes per lane, a multiple of 64 */
    uint64_t lane_stride;  /* bytes from one lane to the next */
} flq_mq;

/* A producer's records written but not yet published (process-local). */
typedef struct flq_mq_stage {
    uint64_t tail;      /* index after the last staged record */
    uint64_t data_tail; /* byte position after the last staged body */
    uint64_t published; /* the lane's tail when staging began */
} flq_mq_stage;

/* A record as a consumer sees it, valid until the take that claims it. */
typedef struct flq_mq_rec {
    const unsigned char *body;
    uint32_t len;
    uint32_t kind;
} flq_mq_rec;

FLQ_INLINE uint64_t flq_mq__round8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* Whether the parameters make a valid layout (also checks an attacher's
 * view of a header it does not trust yet). nflights: lanes for reservations
 * (flinq/shmflight.h), laid out like the others after them; may be 0. */
FLQ_INLINE int flq_mq_params_valid(uint64_t nlanes, uint64_t nflights, uint64_t slots, uint64_t data_bytes)
{
    return nlanes >= 1 && nlanes <= 4096 && nflights <= 4096 && slots >= 2 && slots <= (UINT64_C(1) << 32) &&
           (slots & (slots - 1)) == 0 && data_bytes >= 64 && data_bytes % 64 == 0 &&
           data_bytes <= UINT32_MAX - 63;
}

/* Segment size for the layout, header included; 0 if it would overflow. */
FLQ_INLINE uint64_t flq_mq_segment_bytes(uint64_t nlanes, uint64_t nflights, uint64_t slots, uint64_t data_bytes)
{
    if (!flq_mq_params_valid(nlanes, nflights, slots, data_bytes))
        return 0;
    uint64_t stride = sizeof(flq_mq_lane) + slots * sizeof(flq_mq_slot) + data_bytes;
    uint64_t fixed = sizeof(flq_shm_header) + sizeof(flq_mq_ctl);
    if (stride > (UINT64_MAX - fixed) / (nlanes + nflights))
        return 0;
    return fixed + (nlanes + nflights) * stride;
}

/* Compute the view of a mapping at base laid out with these parameters
 * (validated by flq_mq_segment_bytes against the mapping's size). */
FLQ_INLINE void flq_mq_view(flq_mq *q, void *base, uint64_t nlanes, uint64_t nflights, uint64_t slots,
                            uint64_t data_bytes)
{
    unsigned char *b = (unsigned char *)base;
    q->ctl = (flq_mq_ctl *)(b + sizeof(flq_shm_header));
    q->lanes = b + sizeof(flq_shm_header) + sizeof(flq_mq_ctl);
    q->nlanes = nlanes;
    q->nflights = nflights;
    q->slots = slots;
    q->data_bytes = data_bytes;
    q->lane_stride = sizeof(flq_mq_lane) + slots * sizeof(flq_mq_slot) + data_bytes;
    q->flights = q->lanes + nlanes * q->lane_stride;
}

FLQ_INLINE flq_mq_lane *flq_mq_lane_at(const flq_mq *q, uint64_t i)
{
    return (flq_mq_lane *)(q->lanes + i * q->lane_stride);
}

FLQ_INLINE flq_mq_slot *flq_mq__slots(flq_mq_lane *lane)
{
    return (flq_mq_slot *)((unsigned char *)lane + sizeof(flq_mq_lane));
}

FLQ_INLINE unsigned char *flq_mq__data(const flq_mq *q, flq_mq_lane *lane)
{
    return (unsigned char *)lane + sizeof(flq_mq_lane) + q->slots * sizeof(flq_mq_slot);
}

/* Lanes a consumer must look at: every lane ever claimed. */
FLQ_INLINE uint64_t flq_mq_lanes_used(const flq_mq *q)
{
    /* acquire: pairs with the claim's CAS, so the lane's state is initial
     * or later. */
    return flq_load_u64_acquire(&q->ctl->lanes_used);
}

/* Claim one of count lanes from first for process pid, counting claimed
 * lanes in *used: the lane it owns already, else a lane never claimed, else
 * one whose owner is dead (alive is flq_shm_pid_alive, or a stand-in for
 * tests). Returns the lane's index, or -1 when every lane belongs to a live
 * process. *adopted is set when the lane had a dead owner. */
static inline int64_t flq_mq__claim(const flq_mq *q, unsigned char *first, uint64_t count, uint64_t *used_count,
                                    uint64_t pid, int (*alive)(uint32_t pid), int *adopted)
{
    *adopted = 0;
    for (uint64_t i = 0; i < count; i++)
        /* acquire: a lane we owned before (another handle in this process)
         * is seen with our own earlier publications. */
        if (flq_load_u64_acquire(&((flq_mq_lane *)(first + i * q->lane_stride))->owner) == pid)
            return (int64_t)i;
    for (uint64_t i = 0; i < count; i++) {
        flq_mq_lane *lane = (flq_mq_lane *)(first + i * q->lane_stride);
        uint64_t owner = flq_load_u64_acquire(&lane->owner);
        if (owner != 0 && alive((uint32_t)owner))
            continue;
        /* acq_rel: the old owner's tail (released) is visible to us; our
         * claim is visible before anything we publish in the lane. */
        if (!flq_cas_u64_acq_rel(&lane->owner, &owner, pid))
            continue; /* another process took it first */
        *adopted = owner != 0;
        uint64_t used = flq_load_u64_acquire(used_count);
        /* acq_rel: consumers that read the new count see the lane claimed. */
        while (used < i + 1 && !flq_cas_u64_acq_rel(used_count, &used, i + 1))
            ;
        return (int64_t)i;
    }
    return -1;
}

/* Claim a producer lane for process pid (see flq_mq__claim). */
static inline int64_t flq_mq_claim_lane(flq_mq *q, uint64_t pid, int (*alive)(uint32_t pid))
{
    int adopted;
    return flq_mq__claim(q, q->lanes, q->nlanes, &q->ctl->lanes_used, pid, alive, &adopted);
}

/* ------------------------------------------------------------- producer */

/* Owner: begin staging records on lane. */
FLQ_INLINE void flq_mq_stage_begin(flq_mq_lane *lane, flq_mq_stage *st)
{
    /* acquire: a lane adopted from a dead owner is seen as it published it. */
    st->tail = flq_load_u64_acquire(&lane->tail);
    st->published = st->tail;
    st->data_tail = flq_load_u64_relaxed(&lane->data_tail);
}

/* Byte position of the oldest body a consumer may still read, given head;
 * `start` when nothing is published or staged. */
FLQ_INLINE uint64_t flq_mq__oldest(const flq_mq *q, flq_mq_lane *lane, const flq_mq_stage *st,
                                   uint64_t head, uint64_t start)
{
    if (head == st->tail)
        return start;
    /* Written by this lane's owners only, and not rewritten while head is
     * below it, so the load sees the body's real position. */
    return flq_load_u64_relaxed(&flq_mq__slots(lane)[head & (q->slots - 1)].pos);
}

/* Owner: stage a record of len bytes (len <= data_bytes) and kind (1..255).
 * Returns where to write its body, or NULL when the lane has no room for it
 * now. The body is visible to consumers only after flq_mq_publish. */
FLQ_INLINE unsigned char *flq_mq_stage_record(flq_mq *q, flq_mq_lane *lane, flq_mq_stage *st,
                                              uint64_t len, uint32_t kind)
{
    uint64_t t = st->tail;
    uint64_t d = q->data_bytes;
    uint64_t head = flq_load_u64_relaxed(&lane->head_cache);
    if (t - head >= q->slots) {
        /* acquire: consumers' reads of the slots below the new head are done. */
        head = flq_load_u64_acquire(&lane->head);
        flq_store_u64_relaxed(&lane->head_cache, head);
        if (t - head >= q->slots)
            return NULL;
    }
    uint64_t rlen = flq_mq__round8(len);
    uint64_t start = st->data_tail;
    uint64_t off = start % d;
    if (off + rlen > d) { /* would wrap: go to the start of the next lap */
        start += d - off;
        off = 0;
    }
    if (start + rlen - flq_mq__oldest(q, lane, st, head, start) > d) {
        /* acquire: as above, for the bodies below the new head. */
        head = flq_load_u64_acquire(&lane->head);
        flq_store_u64_relaxed(&lane->head_cache, head);
        if (start + rlen - flq_mq__oldest(q, lane, st, head, start) > d)
            return NULL;
    }
    flq_mq_slot *slot = &flq_mq__slots(lane)[t & (q->slots - 1)];
    flq_store_u64_relaxed(&slot->pos, start);
    flq_store_u64_relaxed(&slot->meta, (len & UINT32_MAX) | ((uint64_t)kind << 32));
    st->tail = t + 1;
    st->data_tail = start + rlen;
    return flq_mq__data(q, lane) + off;
}

/* Owner: make every staged record visible at once. Returns how many. */
FLQ_INLINE uint64_t flq_mq_publish(flq_mq_lane *lane, flq_mq_stage *st)
{
    uint64_t n = st->tail - st->published;
    if (n == 0)
        return 0;
    flq_store_u64_relaxed(&lane->data_tail, st->data_tail);
    /* release: bodies and descriptors written above are visible before the
     * new tail is. */
    flq_store_u64_release(&lane->tail, st->tail);
    st->published = st->tail;
    return n;
}

/* ------------------------------------------------------------- consumer */

/* The lane's head, to start a claim from. */
FLQ_INLINE uint64_t flq_mq_head(flq_mq_lane *lane)
{
    /* acquire: pairs with the claiming CAS of the consumer that set this
     * head, so the tail loaded next is at least the tail it saw. */
    return flq_load_u64_acquire(&lane->head);
}

/* Records published at or after head (0: nothing to take). */
FLQ_INLINE uint64_t flq_mq_ready(flq_mq_lane *lane, uint64_t head)
{
    /* acquire: pairs with the producer's release, so records below tail
     * are whole. */
    return flq_load_u64_acquire(&lane->tail) - head;
}

/* Look at record idx (below the tail seen by flq_mq_ready). Returns 0, or
 * -1 when its descriptor is out of range: it is being rewritten, so head
 * has moved past idx and the caller must reload head. */
FLQ_INLINE int flq_mq_read(const flq_mq *q, flq_mq_lane *lane, uint64_t idx, flq_mq_rec *rec)
{
    const flq_mq_slot *slot = &flq_mq__slots(lane)[idx & (q->slots - 1)];
    uint64_t pos = flq_load_u64_relaxed(&slot->pos);
    uint64_t meta = flq_load_u64_relaxed(&slot->meta);
    uint64_t len = meta & UINT32_MAX;
    uint64_t off = pos % q->data_bytes;
    uint32_t kind = (uint32_t)(meta >> 32);
    if ((off & 7) != 0 || off + flq_mq__round8(len) > q->data_bytes || kind == 0 || kind > FLQ_MQ_KIND_MAX)
        return -1;
    rec->body = flq_mq__data(q, lane) + off;
    rec->len = (uint32_t)len;
    rec->kind = kind;
    return 0;
}

/* Claim n records from *head on. Returns 1, or 0 when another consumer
 * moved head first (and whatever was read since the last flq_mq_head must
 * be discarded). Either way *head then holds the lane's head as it left it. */
FLQ_INLINE int flq_mq_take(flq_mq_lane *lane, uint64_t *head, uint64_t n)
{
    /* acq_rel: the reads of the records complete before head moves past
     * them (release); on failure the new head is acquired as in flq_mq_head. */
    if (!flq_cas_u64_acq_rel(&lane->head, head, *head + n))
        return 0;
    *head += n;
    return 1;
}

/* Copy a body out of the ring (n = rec.len; dst holds n bytes). */
FLQ_INLINE void flq_mq_copy_out(void *dst, const unsigned char *body, size_t n)
{
#if defined(FLQ_SHM_ATOMIC_COPY)
    unsigned char *out = (unsigned char *)dst;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = flq_load_u64_relaxed((const uint64_t *)(const void *)(body + i));
        memcpy(out + i, &w, n - i < 8 ? n - i : 8);
    }
#else
    memcpy(dst, body, n);
#endif
}

/* Copy a body into a staged record (n <= the staged len). */
FLQ_INLINE void flq_mq_copy_in(unsigned char *body, const void *src, size_t n)
{
#if defined(FLQ_SHM_ATOMIC_COPY)
    const unsigned char *in = (const unsigned char *)src;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = 0;
        memcpy(&w, in + i, n - i < 8 ? n - i : 8);
        flq_store_u64_relaxed((uint64_t *)(void *)(body + i), w);
    }
#else
    memcpy(body, src, n);
#endif
}

/* ------------------------------------------------------------ snapshots */

/* The pid owning lane (0: never claimed). */
FLQ_INLINE uint64_t flq_mq_lane_owner(flq_mq_lane *lane)
{
    /* relaxed: reported, never acted on. */
    return flq_load_u64_relaxed(&lane->owner);
}

/* Records published and not yet taken, over all lanes. */
FLQ_INLINE uint64_t flq_mq_size(const flq_mq *q)
{
    uint64_t used = flq_mq_lanes_used(q), total = 0;
    for (uint64_t i = 0; i < used; i++) {
        flq_mq_lane *lane = flq_mq_lane_at(q, i);
        /* Head first: tail only grows, so tail - head cannot underflow. */
        uint64_t head = flq_load_u64_acquire(&lane->head);
        total += flq_load_u64_acquire(&lane->tail) - head;
    }
    return total;
}

#endif /* FLINQ_SHMRING_H */
