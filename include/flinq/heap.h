/*
 * flinq/heap.h: a binary min-heap of (int64 priority, uint64 sequence, item).
 *
 * Concurrency contract
 *   Not thread-safe: the caller serializes every call (the Python layer holds
 *   the GIL). No call blocks.
 *
 * Ordering
 *   flq_heap_push / flq_heap_pop order by the key: lower priority first, and
 *   among equal priorities lower sequence first, so a caller that numbers
 *   items in arrival order gets FIFO among equals. The *_by variants take a
 *   caller's comparison instead (the Python layer compares items with `<`,
 *   as heapq does).
 *
 * Failure leaves the heap unchanged
 *   A caller's comparison may fail (return -1). Push and pop therefore run in
 *   two phases: first they find where entries must move using comparisons
 *   only, then they move them. Pop walks the smaller children down to a leaf
 *   and then places the displaced last entry from the bottom up (Floyd's
 *   variant), which needs about half the comparisons of a top-down sift. An error in the first phase returns -1 with
 *   the heap as it was. Push and pop are O(log n); the array grows by
 *   doubling without a fixed cap and shrinks when three quarters are unused.
 *
 * Pure C, no Python.h.
 */
#ifndef FLINQ_HEAP_H
#define FLINQ_HEAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"
#include "atomic.h" /* FLQ_INLINE */

typedef struct flq_heap_entry {
    int64_t priority;
    uint64_t seq;
    void *item;
} flq_heap_entry;

typedef struct flq_heap {
    flq_heap_entry *entries;
    size_t size;
    size_t capacity;
} flq_heap;

/* Returns 1 when a orders before b, 0 when not, -1 on error. */
typedef int (*flq_heap_less_fn)(const flq_heap_entry *a, const flq_heap_entry *b, void *ctx);

#define FLQ_HEAP_MIN_CAPACITY 16u
#define FLQ_HEAP_MAX_DEPTH 64 /* a size_t-indexed heap is never deeper */

static inline void flq_heap_init(flq_heap *h)
{
    h->entries = NULL;
    h->size = 0;
    h->capacity = 0;
}

/* Frees the array; the items are the caller's to release first. */
static inline void flq_heap_destroy(flq_heap *h)
{
    FLQ_FREE(h->entries);
    flq_heap_init(h);
}

FLQ_INLINE int flq_heap_key_less(const flq_heap_entry *a, const flq_heap_entry *b, void *ctx)
{
    (void)ctx;
    return a->priority < b->priority || (a->priority == b->priority && a->seq < b->seq);
}

/* Make room for `extra` more entries. Returns 0, or -1 when out of memory. */
static inline int flq_heap_reserve(flq_heap *h, size_t extra)
{
    size_t needed = h->size + extra;
    if (needed <= h->capacity)
        return 0;
    size_t capacity = h->capacity ? h->capacity : FLQ_HEAP_MIN_CAPACITY;
    while (capacity < needed)
        capacity *= 2;
    flq_heap_entry *entries = (flq_heap_entry *)FLQ_REALLOC(h->entries, capacity * sizeof(*entries));
    if (entries == NULL)
        return -1;
    h->entries = entries;
    h->capacity = capacity;
    return 0;
}

static inline void flq_heap__maybe_shrink(flq_heap *h)
{
    if (h->capacity <= FLQ_HEAP_MIN_CAPACITY || h->size > h->capacity / 4)
        return;
    size_t capacity = h->capacity / 2;
    flq_heap_entry *entries = (flq_heap_entry *)FLQ_REALLOC(h->entries, capacity * sizeof(*entries));
    if (entries != NULL) { /* keeping the larger array is harmless */
        h->entries = entries;
        h->capacity = capacity;
    }
}

/* Insert a copy of *entry; when pos is not NULL, *pos receives the index it
 * landed at (for flq_heap_undo_push). Returns 0; -1 when less() failed or -2
 * when out of memory, both with the heap unchanged. */
FLQ_INLINE int flq_heap_push_by_at(flq_heap *h, const flq_heap_entry *entry, flq_heap_less_fn less, void *ctx,
                                   size_t *pos_out)
{
    if (flq_heap_reserve(h, 1) != 0)
        return -2;
    flq_heap_entry *e = h->entries;
    /* Phase 1: climb while the new entry orders before its parent. */
    size_t pos = h->size;
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        int r = less(entry, &e[parent], ctx);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        pos = parent;
    }
    /* Phase 2: shift the parents on that path down one level each. */
    for (size_t i = h->size; i > pos;) {
        size_t parent = (i - 1) / 2;
        e[i] = e[parent];
        i = parent;
    }
    e[pos] = *entry;
    h->size++;
    if (pos_out != NULL)
        *pos_out = pos;
    return 0;
}

FLQ_INLINE int flq_heap_push_by(flq_heap *h, const flq_heap_entry *entry, flq_heap_less_fn less, void *ctx)
{
    return flq_heap_push_by_at(h, entry, less, ctx, NULL);
}

/* Take back the most recent push, whose entry landed at pos, restoring the
 * heap exactly as it was before that push. Pushes are undone newest first
 * (no pop may come between). Needs no comparison, so it cannot fail. */
FLQ_INLINE void flq_heap_undo_push(flq_heap *h, size_t pos)
{
    flq_heap_entry *e = h->entries;
    size_t leaf = h->size - 1; /* where that push started */
    size_t path[FLQ_HEAP_MAX_DEPTH];
    int depth = 0;
    for (size_t i = leaf; i != pos; i = (i - 1) / 2)
        path[depth++] = i;
    /* The push shifted each path entry down one level; lift them back. */
    size_t hole = pos;
    while (depth > 0) {
        size_t child = path[--depth];
        e[hole] = e[child];
        hole = child;
    }
    h->size = leaf;
}

/* Remove the first entry into *out. Returns 1; 0 when empty; -1 when less()
 * failed, with the heap unchanged. */
FLQ_INLINE int flq_heap_pop_by(flq_heap *h, flq_heap_entry *out, flq_heap_less_fn less, void *ctx)
{
    if (h->size == 0)
        return 0;
    flq_heap_entry *e = h->entries;
    size_t n = h->size - 1; /* size once the last entry fills the hole */
    const flq_heap_entry *last = &e[n];
    size_t path[FLQ_HEAP_MAX_DEPTH];
    int depth = 0;
    /* Phase 1a (bottom-up, Floyd): follow the smaller child from the root
     * to a leaf, one comparison per level. */
    for (size_t pos = 0;;) {
        size_t child = 2 * pos + 1;
        if (child >= n)
            break;
        if (child + 1 < n) {
            int r = less(&e[child + 1], &e[child], ctx);
            if (r < 0)
                return -1;
            child += (size_t)r;
        }
        path[depth++] = child;
        pos = child;
    }
    /* Phase 1b: the displaced last entry belongs below every path entry
     * that orders before it; it came from the bottom, so climb from there. */
    while (depth > 0) {
        int r = less(&e[path[depth - 1]], last, ctx);
        if (r < 0)
            return -1;
        if (r == 1)
            break;
        depth--;
    }
    *out = e[0];
    size_t hole = 0;
    for (int k = 0; k < depth; k++) {
        e[hole] = e[path[k]];
        hole = path[k];
    }
    e[hole] = *last;
    h->size = n;
    flq_heap__maybe_shrink(h);
    return 1;
}

/* Key-ordered variants: the comparison cannot fail and is inlined. */
FLQ_INLINE int flq_heap_push(flq_heap *h, const flq_heap_entry *entry)
{
    return flq_heap_push_by(h, entry, flq_heap_key_less, NULL);
}

FLQ_INLINE int flq_heap_pop(flq_heap *h, flq_heap_entry *out)
{
    return flq_heap_pop_by(h, out, flq_heap_key_less, NULL);
}

/* The first entry without removing it, or NULL when empty. */
FLQ_INLINE const flq_heap_entry *flq_heap_peek(const flq_heap *h)
{
    return h->size ? &h->entries[0] : NULL;
}

#endif /* FLINQ_HEAP_H */
