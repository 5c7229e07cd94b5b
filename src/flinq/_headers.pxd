# Cython declarations of what the extension uses from flinq's C headers
# (include/flinq/*.h; the headers' full API is exercised by tests/c).
# Every function here is pure C and safe to call without the GIL; the
# concurrency contract of each structure is stated in its header.

from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "flinq/chain.h" nogil:
    ctypedef struct flq_chain:
        pass
    flq_chain *flq_chain_new()
    void flq_chain_free(flq_chain *c)
    int flq_chain_push(flq_chain *c, void *item)
    size_t flq_chain_push_many(flq_chain *c, void **items, size_t n)
    int flq_chain_pop(flq_chain *c, void **out)
    size_t flq_chain_pop_many(flq_chain *c, void **out, size_t max)
    size_t flq_chain_pop_many_serial(flq_chain *c, void **out, size_t max)


# Not nogil: visiting runs the cycle collector's Python-level callbacks.
cdef extern from "flinq/chain.h":
    int flq_chain_visit(const flq_chain *c, int (*fn)(void *item, void *arg) noexcept, void *arg)


# Not nogil: the heap is always used with the GIL held, and its *_by
# comparisons may call back into Python.
cdef extern from "flinq/heap.h":
    ctypedef struct flq_heap_entry:
        int64_t priority
        uint64_t seq
        void *item
    ctypedef struct flq_heap:
        flq_heap_entry *entries
        size_t size
    ctypedef int (*flq_heap_less_fn)(const flq_heap_entry *a, const flq_heap_entry *b, void *ctx) noexcept
    void flq_heap_init(flq_heap *h)
    void flq_heap_destroy(flq_heap *h)
    int flq_heap_reserve(flq_heap *h, size_t extra)
    int flq_heap_push(flq_heap *h, const flq_heap_entry *entry)
    int flq_heap_pop(flq_heap *h, flq_heap_entry *out)
    int flq_heap_push_by_at(flq_heap *h, const flq_heap_entry *entry, flq_heap_less_fn less, void *ctx, size_t *pos)
    void flq_heap_undo_push(flq_heap *h, size_t pos)
    int flq_heap_pop_by(flq_heap *h, flq_heap_entry *out, flq_heap_less_fn less, void *ctx)


# Not nogil, like the heap: always used with the GIL held.
cdef extern from "flinq/buckets.h":
    ctypedef struct flq_buckets:
        size_t size
    void flq_buckets_init(flq_buckets *b)
    void flq_buckets_destroy(flq_buckets *b)
    void flq_buckets_clear(flq_buckets *b)
    int flq_buckets_reserve(flq_buckets *b, int64_t priority, size_t n)
    int flq_buckets_push(flq_buckets *b, const flq_heap_entry *entry)
    int flq_buckets_pop(flq_buckets *b, flq_heap_entry *out)
    int flq_buckets_visit(const flq_buckets *b,
                          int (*fn)(const flq_heap_entry *entry, void *arg) noexcept, void *arg)


cdef extern from "flinq/park.h" nogil:
    ctypedef struct flq_park:
        pass
    int64_t flq_now_ns()
    int flq_park_init(flq_park *p)
    void flq_park_destroy(flq_park *p)
    void flq_park_after_fork_in_child(flq_park *p)
    uint32_t flq_park_prepare(flq_park *p)
    void flq_park_cancel(flq_park *p)
    int flq_park_wait(flq_park *p, uint32_t key, int64_t timeout_ns)
    void flq_park_notify_locked(flq_park *p, int all)
    int flq_park_has_waiters(flq_park *p)


# Not nogil: the metrics are kept with the GIL held (not thread-safe by contract).
cdef extern from "flinq/metrics.h":
    ctypedef struct flq_metrics:
        uint64_t arrived
        uint64_t returned
        uint64_t departed
        uint64_t fifo_next
    void flq_metrics_init(flq_metrics *m)
    int64_t flq_metrics_mark(flq_metrics *m)
    void flq_metrics_arrived(flq_metrics *m, uint64_t n)
    void flq_metrics_returned(flq_metrics *m, uint64_t n)
    void flq_metrics_departed_one(flq_metrics *m, uint64_t arrival, int64_t *now)
    void flq_metrics_departed_fifo(flq_metrics *m, uint64_t n, int taken)
    int64_t flq_metrics_age_ns(const flq_metrics *m, uint64_t oldest, int64_t now)
    unsigned flq_metrics_latency_ns(const flq_metrics *m, const double *q, unsigned nq, int64_t *out)
    void flq_metrics_rates(const flq_metrics *m, int64_t window_ns, int64_t now,
                           double *arrived, double *departed)
