# What flinq._core exports to flinq's other extension modules:
#   - blocking waits: deadline_ns (a timeout checked and made a monotonic
#     deadline) and the signal-aware sleep (sleep_until over any wait
#     primitive, sleep_on_park over include/flinq/park.h), so that every
#     queue kind waits the same way;
#   - the storage interface.
#
# The storage interface of flinq's queues, for Cython modules that cimport it
# (from flinq._core cimport _Storage) to give a queue kind a new storage.
# A queue owns one storage object and calls it only through these methods,
# always with the GIL held; the storage holds one reference to each item and
# reports departures to the queue's metrics (include/flinq/metrics.h).

from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint32_t, uint64_t

from flinq._headers cimport flq_metrics, flq_park


# A wait primitive as sleep_until drives it (w is the primitive): sleep as
# its wait call does (0: notified), count out, and wake one or all sleepers.
ctypedef struct wait_ops:
    int (*sleep)(void *w, uint32_t key, int64_t timeout_ns) noexcept nogil
    void (*cancel)(void *w) noexcept nogil
    void (*notify)(void *w, int all) noexcept nogil

cdef int64_t deadline_ns(bint block, object timeout) except -2
cdef int sleep_until(const wait_ops *ops, void *w, uint32_t key, int64_t deadline,
                     bint every_thread) except -1
cdef int sleep_on_park(flq_park *park, uint32_t key, int64_t deadline) except -1


ctypedef int (*_item_visitor)(PyObject *item, void *arg) noexcept


cdef class _Storage:
    cdef bint runs_no_python   # push and pop never run Python code
    cdef flq_metrics *metrics  # the owning queue's; set by it before any use

    cdef int push(self, object item, int64_t priority, bint keyed) except -1
    cdef Py_ssize_t push_many(self, PyObject **items, Py_ssize_t n,
                              int64_t priority, bint keyed) except -1
    cdef Py_ssize_t pop_many(self, PyObject **out, Py_ssize_t n, int64_t *priorities) except -1
    cdef list drain(self)
    cdef bint is_keyed(self)
    cdef uint64_t oldest_arrival(self)
    cdef int visit(self, _item_visitor visitor, void *arg) noexcept
