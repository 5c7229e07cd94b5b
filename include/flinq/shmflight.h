/*
 * flinq/shmflight.h: reservations of a flinq/shmring.h queue (messages in
 * flight, at least once), kept in shared memory so that they outlive the
 * process that took them.
 *
 * Concurrency contract
 *   - A reserving PROCESS claims a flight lane (flq_flight_claim_lane) and
 *     is its owner: only its threads, serialized as for a producer lane
 *     (flinq's Python layer: the GIL), call flq_flight_stage,
 *     flq_flight_mark and flq_flight_reclaim on it.
 *   - ANY thread of any process may call flq_flight_find and
 *     flq_flight_cas on any flight lane, concurrently with its owner.
 *
 * Protocol
 *   A flight lane is a shmring.h lane whose records are a flq_flight_hdr
 *   followed by the message. Its owner reserves a message from the queue:
 *     1. stage a copy of the message in its flight lane with state PENDING,
 *        and publish it (one release store of the flight lane's tail);
 *     2. claim the message in the queue's lane (flq_mq_take);
 *     3. won: mark it RESERVED with a deadline; lost: mark it SETTLED.
 *   ack and nack(requeue=False) CAS RESERVED -> SETTLED. Anyone may take a
 *   record back into the queue (requeue): CAS its state to REQUEUING with
 *   their own pid, put the message into the queue through their producer
 *   lane, then mark it SETTLED. A record is requeued when:
 *     - it is RESERVED and its deadline passed (the visibility timeout);
 *     - it is PENDING or RESERVED and the lane's owner is dead;
 *     - it is REQUEUING and the requeuing process is dead.
 *   The owner frees space by moving the flight lane's head over SETTLED
 *   records, in order; nobody else moves it.
 *
 * What a process killed at any instruction leaves behind
 *   - an owner killed between 1 and 2 leaves a PENDING copy of a message that
 *     is still in the queue: it is requeued, so the message is delivered
 *     twice (allowed: at least once);
 *   - killed between 2 and 3, the PENDING copy is the only one: requeued, not
 *     lost;
 *   - a requeuer killed after putting the message back but before marking
 *     it SETTLED: another requeues it again (delivered twice).
 *   So no reserved message is lost; a few are delivered twice, only around
 *   a kill.
 *
 * Memory-order argument
 *   The state word carries the record's index (mod 2^38) beside its tag, so
 *   a CAS can never succeed on a record that the owner reclaimed and reused
 *   (no ABA). The owner writes header and body before publishing the flight
 *   lane's tail (release); others acquire the tail, range-check the
 *   descriptor (flq_mq_read), and acquire the state word. A successful CAS
 *   to REQUEUING pins the record: the owner reclaims only SETTLED records,
 *   and its reclaim loads each state with acquire, so the requeuer's reads
 *   of the body (before its SETTLED store, a release) are finished before
 *   the space is reused. Deadlines are CLOCK_MONOTONIC nanoseconds, one
 *   clock for every process on the machine.
 *
 * Pure C, no Python.h.
 */
#ifndef FLINQ_SHMFLIGHT_H
#define FLINQ_SHMFLIGHT_H

#include <stdint.h>

#include "atomic.h"
#include "shmring.h"

#define FLQ_FLIGHT_PENDING 1u   /* staged by its owner, who is still taking the message */
#define FLQ_FLIGHT_RESERVED 2u  /* held by its owner until ack, nack or the deadline */
#define FLQ_FLIGHT_SETTLED 3u   /* done with: the owner may reuse its space */
#define FLQ_FLIGHT_REQUEUING 4u /* being put back into the queue by the pid in the word */

typedef struct flq_flight_hdr {
    uint64_t state;    /* tag | pid << 3 | (index mod 2^38) << 26 */
    uint64_t deadline; /* RESERVED: expires at this CLOCK_MONOTONIC ns */
} flq_flight_hdr;

#define FLQ_FLIGHT_HDR_BYTES 16u

FLQ_INLINE uint64_t flq_flight_state(uint32_t tag, uint32_t pid, uint64_t idx)
{
    return (uint64_t)tag | ((uint64_t)(pid & 0x7FFFFFu) << 3) | (idx << 26);
}
FLQ_INLINE uint32_t flq_flight_tag(uint64_t state) { return (uint32_t)(state & 7u); }
FLQ_INLINE uint32_t flq_flight_pid(uint64_t state) { return (uint32_t)((state >> 3) & 0x7FFFFFu); }
FLQ_INLINE int flq_flight_of(uint64_t state, uint64_t idx) { return (state >> 26) == (idx & ((UINT64_C(1) << 38) - 1)); }

FLQ_INLINE flq_mq_lane *flq_flight_lane_at(const flq_mq *q, uint64_t i)
{
    return (flq_mq_lane *)(q->flights + i * q->lane_stride);
}

/* Flight lanes ever claimed. */
FLQ_INLINE uint64_t flq_flight_lanes_used(const flq_mq *q)
{
    /* acquire: pairs with the claim's CAS, as for producer lanes. */
    return flq_load_u64_acquire(&q->ctl->flights_used);
}

/* Claim a flight lane for process pid; *adopted is set when it belonged to
 * a dead process, whose unsettled records the caller must requeue first
 * (flq_flight_find with orphaned = 1). -1 when all belong to live ones. */
static inline int64_t flq_flight_claim_lane(flq_mq *q, uint64_t pid, int (*alive)(uint32_t pid), int *adopted)
{
    return flq_mq__claim(q, q->flights, q->nflights, &q->ctl->flights_used, pid, alive, adopted);
}

/* The header of record idx of a flight lane, or NULL when its descriptor
 * is out of range (being rewritten: idx is no longer below the tail). */
FLQ_INLINE flq_flight_hdr *flq_flight_hdr_at(const flq_mq *q, flq_mq_lane *lane, uint64_t idx, flq_mq_rec *rec)
{
    if (flq_mq_read(q, lane, idx, rec) != 0 || rec->len < FLQ_FLIGHT_HDR_BYTES)
        return NULL;
    return (flq_flight_hdr *)(void *)rec->body;
}

/* Owner: stage a record for a message of len bytes and kind, PENDING.
 * Returns where to copy the message, or NULL when the flight lane is full.
 * *idx receives the record's index. Publish with flq_mq_publish. */
FLQ_INLINE unsigned char *flq_flight_stage(flq_mq *q, flq_mq_lane *lane, flq_mq_stage *st, uint64_t len,
                                           uint32_t kind, uint64_t *idx)
{
    unsigned char *at = flq_mq_stage_record(q, lane, st, FLQ_FLIGHT_HDR_BYTES + len, kind);
    if (at == NULL)
        return NULL;
    *idx = st->tail - 1;
    flq_flight_hdr *h = (flq_flight_hdr *)(void *)at;
    flq_store_u64_relaxed(&h->deadline, 0);
    /* relaxed: published by the lane's tail (release) in flq_mq_publish. */
    flq_store_u64_relaxed(&h->state, flq_flight_state(FLQ_FLIGHT_PENDING, 0, *idx));
    return at + FLQ_FLIGHT_HDR_BYTES;
}

/* Owner: move its PENDING record idx to RESERVED (with deadline) or
 * SETTLED. Only the owner changes a PENDING record while it lives. */
FLQ_INLINE void flq_flight_mark(flq_flight_hdr *h, uint64_t idx, uint32_t tag, uint64_t deadline)
{
    flq_store_u64_relaxed(&h->deadline, deadline);
    /* release: the deadline is visible to whoever reads the new state. */
    flq_store_u64_release(&h->state, flq_flight_state(tag, 0, idx));
}

/* Anyone: move record idx from *expected to (tag, pid). Returns 1, or 0
 * with *expected updated when the state was different. */
FLQ_INLINE int flq_flight_cas(flq_flight_hdr *h, uint64_t *expected, uint64_t idx, uint32_t tag, uint32_t pid)
{
    /* acq_rel: a requeuer's reads of the record follow its win (acquire);
     * a SETTLED store publishes that they are done (release). */
    return flq_cas_u64_acq_rel(&h->state, expected, flq_flight_state(tag, pid, idx));
}

/* Anyone: the first record of lane that should go back into the queue
 * now (see the protocol above; orphaned = 1: every unsettled record, for a
 * process that just adopted the lane). Returns 1 with *idx and *state (the
 * state to CAS from), or 0 when there is none. */
static inline int flq_flight_find(const flq_mq *q, flq_mq_lane *lane, uint64_t now, int orphaned,
                                  int (*alive)(uint32_t pid), uint64_t *idx, uint64_t *state)
{
    uint64_t owner = flq_load_u64_acquire(&lane->owner);
    int owner_dead = orphaned || !alive((uint32_t)owner);
    uint64_t head = flq_mq_head(lane);
    uint64_t ready = flq_mq_ready(lane, head);
    for (uint64_t i = head; i < head + ready; i++) {
        flq_mq_rec rec;
        flq_flight_hdr *h = flq_flight_hdr_at(q, lane, i, &rec);
        if (h == NULL)
            return 0; /* the owner moved on: look again next time */
        /* acquire: the deadline stored before a RESERVED state is visible. */
        uint64_t s = flq_load_u64_acquire(&h->state);
        if (!flq_flight_of(s, i))
            return 0; /* rewritten since we read head */
        uint32_t tag = flq_flight_tag(s);
        int requeue = (tag == FLQ_FLIGHT_RESERVED &&
                       (owner_dead || flq_load_u64_relaxed(&h->deadline) <= now)) ||
                      (tag == FLQ_FLIGHT_PENDING && owner_dead) ||
                      (tag == FLQ_FLIGHT_REQUEUING && !alive(flq_flight_pid(s)));
        if (requeue) {
            *idx = i;
            *state = s;
            return 1;
        }
    }
    return 0;
}

/* Records of lane not yet SETTLED (a snapshot, for statistics). */
FLQ_INLINE uint64_t flq_flight_unsettled(const flq_mq *q, flq_mq_lane *lane)
{
    uint64_t head = flq_mq_head(lane);
    uint64_t ready = flq_mq_ready(lane, head), n = 0;
    for (uint64_t i = head; i < head + ready; i++) {
        flq_mq_rec rec;
        flq_flight_hdr *h = flq_flight_hdr_at(q, lane, i, &rec);
        if (h == NULL)
            break; /* reclaimed meanwhile */
        /* relaxed: a count, nothing read through it. */
        uint64_t s = flq_load_u64_relaxed(&h->state);
        n += flq_flight_of(s, i) && flq_flight_tag(s) != FLQ_FLIGHT_SETTLED;
    }
    return n;
}

/* Whether the caller should look for records to requeue now: at most one
 * process wins each interval_ns (the others skip the scan). */
FLQ_INLINE int flq_flight_reap_due(flq_mq *q, uint64_t now, uint64_t interval_ns)
{
    /* relaxed: only a time; nothing is published with it. The CAS is
     * acq_rel because atomic.h offers no relaxed CAS. */
    uint64_t due = flq_load_u64_relaxed(&q->ctl->next_reap_ns);
    if (now < due)
        return 0;
    return flq_cas_u64_acq_rel(&q->ctl->next_reap_ns, &due, now + interval_ns);
}

/* Owner: free the space of SETTLED records at the head of its flight lane.
 * Returns how many were freed. */
FLQ_INLINE uint64_t flq_flight_reclaim(const flq_mq *q, flq_mq_lane *lane)
{
    uint64_t head = flq_mq_head(lane);
    uint64_t ready = flq_mq_ready(lane, head);
    uint64_t n = 0;
    while (n < ready) {
        flq_mq_rec rec;
        flq_flight_hdr *h = flq_flight_hdr_at(q, lane, head + n, &rec);
        if (h == NULL)
            break;
        /* acquire: pairs with the SETTLED store (release) of whoever
         * settled it, so their reads of the record are done. */
        uint64_t s = flq_load_u64_acquire(&h->state);
        if (flq_flight_tag(s) != FLQ_FLIGHT_SETTLED || !flq_flight_of(s, head + n))
            break;
        n++;
    }
    /* Only the owner moves a flight lane's head, so the CAS cannot fail. */
    if (n != 0 && !flq_mq_take(lane, &head, n))
        return 0;
    return n;
}

#endif /* FLINQ_SHMFLIGHT_H */
