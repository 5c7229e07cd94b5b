# The storage interface of flinq's queues, for Cython modules that cimport it
# (from flinq._core cimport _Storage) to give a queue kind a new storage.
# A queue owns one storage object and calls it only through these methods,
# always with the GIL held; the storage holds one reference to each item and
# reports departures to the queue's metrics (include/flinq/metrics.h).

from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

from flinq._headers cimport flq_metrics

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
