# cython: language_level=3, embedsignature=True, binding=False, boundscheck=False, wraparound=False, cdivision=True
"""Queue types over flinq's C structures.

One base type, _QueueCore, holds everything the queue kinds share: blocking
with timeouts, task_done/join, shutdown, batches and counters. Each kind
supplies only its storage through four cdef hooks (_store_push,
_store_push_many, _store_pop_many, _store_len-free accounting is done here):
  - FIFO (Queue, SimpleQueue): include/flinq/chain.h, a chain of SPMC rings;
  - LIFO and priority (LifoQueue, PriorityQueue): include/flinq/heap.h.

Every method runs with the GIL held, except the sleep inside a blocking wait,
which releases it. The GIL is therefore the serializer the C contracts ask
of callers (one producer at a time on the ring, any caller on the heap), and
the counters below are exact. This module does not declare free-threading
support, so a free-threaded interpreter keeps the GIL on while it is loaded.
"""

cimport cython
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_SIZE, PySequence_Fast_ITEMS
from libc.stdint cimport INT64_MAX, int64_t, uint32_t, uint64_t

from flinq._headers cimport (
    flq_chain, flq_chain_destroy, flq_chain_init, flq_chain_pop, flq_chain_pop_many,
    flq_chain_push, flq_chain_push_many, flq_chain_visit,
    flq_heap, flq_heap_destroy, flq_heap_entry, flq_heap_init, flq_heap_less_fn, flq_heap_pop, flq_heap_pop_by,
    flq_heap_push, flq_heap_push_by, flq_heap_reserve,
    flq_now_ns, flq_park, flq_park_cancel, flq_park_destroy, flq_park_init, flq_park_notify_locked,
    flq_park_prepare, flq_park_wait,
)

import queue as _stdlib_queue
import threading as _threading
from types import GenericAlias

from flinq._compat import ShutDown

Empty = _stdlib_queue.Empty
Full = _stdlib_queue.Full

cdef extern from "Python.h":
    unsigned long PyThread_get_thread_ident()
    int PyErr_CheckSignals()
    void PyErr_Clear()
    # Declared here without Cython's exception handling: heap comparisons
    # run inside C and report failure as -1 with the error set.
    int _rich_compare_bool "PyObject_RichCompareBool"(PyObject *a, PyObject *b, int op)
    int Py_LT

# Signals reach Python only in the main thread, and a condition-variable wait
# does not return on a signal, so the main thread sleeps in slices this long
# and runs pending signal handlers between them (prompt Ctrl-C).
cdef int64_t SIGNAL_SLICE_NS = 50 * 1000 * 1000
cdef unsigned long _main_thread_ident = _threading.main_thread().ident

# Items moved by one get_many call through a stack buffer before the heap is used.
DEF STACK_BATCH = 128


cdef inline int64_t _deadline(bint block, object timeout) except -2:
    """Absolute monotonic deadline in ns for a wait, or -1 for none."""
    if not block or timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    cdef double seconds = float(timeout)
    if seconds != seconds:
        raise ValueError("'timeout' must be a non-negative number")
    if seconds > 1e9:  # ~31 years: treat as no limit rather than overflow
        return -1
    return flq_now_ns() + <int64_t>(seconds * 1e9)


cdef int _sleep(flq_park *park, uint32_t key, int64_t deadline) except -1:
    """Sleep on park (prepared with key) until notified, a spurious wake-up,
    or the deadline (-1: none). Returns 1 when the deadline had passed, else
    0. Raises what a signal handler raises (main thread only)."""
    cdef int64_t timeout_ns = -1
    cdef int64_t now
    cdef bint in_main = PyThread_get_thread_ident() == _main_thread_ident
    cdef int rc
    if deadline >= 0:
        now = flq_now_ns()
        if now >= deadline:
            flq_park_cancel(park)
            return 1
        timeout_ns = deadline - now
    if in_main and (timeout_ns < 0 or timeout_ns > SIGNAL_SLICE_NS):
        timeout_ns = SIGNAL_SLICE_NS
    with nogil:
        rc = flq_park_wait(park, key, timeout_ns)
    if in_main and PyErr_CheckSignals() < 0:
        if rc == 0:
            # We consumed a wake-up meant for someone who will now not act
            # on it; pass it on so no item is left with sleepers.
            flq_park_notify_locked(park, 0)
        return -1
    return 0


cdef int _compare_items(const flq_heap_entry *a, const flq_heap_entry *b, void *ctx) noexcept:
    """heap.h comparison for the drop-in priority style: `a < b`, as heapq."""
    return _rich_compare_bool(<PyObject *>a.item, <PyObject *>b.item, Py_LT)


cdef class _QueueCore:
    """Behaviour shared by every flinq queue; storage comes from subclasses."""

    cdef Py_ssize_t _limit          # maxsize as a capacity; 0 means unbounded
    cdef object _maxsize            # maxsize as the caller gave it
    cdef Py_ssize_t _count          # items stored now
    cdef Py_ssize_t _unfinished     # items put and not yet task_done()
    cdef Py_ssize_t _high_water
    cdef uint64_t _enqueued
    cdef uint64_t _dequeued
    cdef uint64_t _discarded        # dropped by shutdown(immediate=True)
    cdef bint _is_shutdown
    cdef bint _parks_ready
    cdef flq_park _not_empty        # getters sleep here
    cdef flq_park _not_full         # putters of a bounded queue sleep here
    cdef flq_park _all_done         # join() sleeps here
    cdef object __weakref__

    def __cinit__(self, *args, **kwargs):
        if flq_park_init(&self._not_empty) != 0:
            raise MemoryError("cannot create a wait primitive")
        if flq_park_init(&self._not_full) != 0:
            flq_park_destroy(&self._not_empty)
            raise MemoryError("cannot create a wait primitive")
        if flq_park_init(&self._all_done) != 0:
            flq_park_destroy(&self._not_empty)
            flq_park_destroy(&self._not_full)
            raise MemoryError("cannot create a wait primitive")
        self._parks_ready = True
        self._maxsize = 0

    def __dealloc__(self):
        if self._parks_ready:
            flq_park_destroy(&self._not_empty)
            flq_park_destroy(&self._not_full)
            flq_park_destroy(&self._all_done)

    cdef int _set_maxsize(self, object maxsize) except -1:
        if not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        self._maxsize = maxsize
        self._limit = maxsize if 0 < maxsize < 2 ** 62 else 0
        return 0

    # ---- storage hooks, supplied by subclasses --------------------------------

    cdef int _store_push(self, object item, int64_t priority, bint keyed) except -1:
        raise NotImplementedError

    cdef Py_ssize_t _store_push_many(self, PyObject **items, Py_ssize_t n,
                                     int64_t priority, bint keyed) except -1:
        """Store items[0..n) (borrowed); returns how many were stored,
        fewer than n only when memory ran out."""
        raise NotImplementedError

    cdef Py_ssize_t _store_pop_many(self, PyObject **out, Py_ssize_t n) except -1:
        """Move up to n items, first first, into out[] as owned references."""
        raise NotImplementedError

    # ---- the shared mechanism ------------------------------------------------

    @cython.final
    cdef inline void _stored(self, Py_ssize_t n):
        self._count += n
        self._unfinished += n
        self._enqueued += n
        if self._count > self._high_water:
            self._high_water = self._count
        flq_park_notify_locked(&self._not_empty, n > 1)

    @cython.final
    cdef inline void _removed(self, Py_ssize_t n):
        self._count -= n
        self._dequeued += n
        if self._limit:
            flq_park_notify_locked(&self._not_full, n > 1)

    @cython.final
    cdef int _wait_for_room(self, Py_ssize_t n, bint block, object timeout) except -1:
        cdef int64_t deadline = _deadline(block, timeout)
        cdef uint32_t key
        while self._count + n > self._limit:
            if not block:
                raise Full
            key = flq_park_prepare(&self._not_full)
            if self._count + n <= self._limit or self._is_shutdown:
                flq_park_cancel(&self._not_full)
            elif _sleep(&self._not_full, key, deadline):
                raise Full
            if self._is_shutdown:
                raise ShutDown
        return 0

    @cython.final
    cdef int _put(self, object item, int64_t priority, bint keyed,
                  bint block, object timeout) except -1:
        if self._is_shutdown:
            raise ShutDown
        if self._limit and self._count >= self._limit:
            self._wait_for_room(1, block, timeout)
        self._store_push(item, priority, keyed)
        self._stored(1)
        return 0

    @cython.final
    cdef int _put_many(self, object items, int64_t priority, bint keyed,
                       bint block, object timeout) except -1:
        cdef object batch = PySequence_Fast(items, "put_many() expects an iterable")
        cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(batch)
        cdef Py_ssize_t stored
        if self._is_shutdown:
            raise ShutDown
        if n == 0:
            return 0
        if self._limit:
            if n > self._limit:
                raise ValueError(f"put_many() of {n} items can never fit in maxsize={self._limit}")
            if self._count + n > self._limit:
                self._wait_for_room(n, block, timeout)
        stored = self._store_push_many(PySequence_Fast_ITEMS(batch), n, priority, keyed)
        if stored:
            self._stored(stored)
        if stored < n:
            raise MemoryError(f"put_many() stored {stored} of {n} items before memory ran out")
        return 0

    @cython.final
    cdef inline object _take_one(self):
        cdef PyObject *out
        if self._store_pop_many(&out, 1) == 0:
            raise RuntimeError("flinq internal error: the count and the storage disagree")
        self._removed(1)
        item = <object>out
        Py_DECREF(item)   # the queue's reference, now owned by `item`
        return item

    @cython.final
    cdef int _wait_for_items(self, bint block, int64_t deadline) except -1:
        """Wait until an item is stored. Raises ShutDown, Empty (non-blocking
        or deadline), or what a signal handler raises."""
        cdef uint32_t key
        while self._count == 0:
            if self._is_shutdown:
                raise ShutDown
            if not block:
                raise Empty
            key = flq_park_prepare(&self._not_empty)
            if self._count or self._is_shutdown:
                flq_park_cancel(&self._not_empty)
            elif _sleep(&self._not_empty, key, deadline):
                raise Empty
        return 0

    @cython.final
    cdef object _get(self, bint block, object timeout):
        if self._count:
            return self._take_one()
        self._wait_for_items(block, _deadline(block, timeout))
        return self._take_one()

    # ---- public API --------------------------------------------------------------

    def put(self, item, block=True, timeout=None):
        """Put item into the queue, waiting for a free slot if the queue is
        bounded and full (block=False or a timeout: raise queue.Full)."""
        self._put(item, 0, False, block, timeout)

    def put_nowait(self, item):
        """Put item without blocking; raise queue.Full if there is no room."""
        self._put(item, 0, False, False, None)

    def put_many(self, items, block=True, timeout=None):
        """Put every item of items, in order, as one batch: all or nothing.

        On a bounded queue, wait until they all fit (queue.Full on
        block=False or timeout, with nothing put); ValueError if they never can.
        """
        self._put_many(items, 0, False, block, timeout)

    def get(self, block=True, timeout=None):
        """Remove and return the next item, waiting if the queue is empty
        (block=False or a timeout: raise queue.Empty; shut down: ShutDown)."""
        if self._count:
            return self._take_one()
        return self._get(block, timeout)

    def get_nowait(self):
        """Remove and return the next item without blocking; raise queue.Empty."""
        if self._count:
            return self._take_one()
        return self._get(False, None)

    def get_many(self, max_items, block=True, timeout=None):
        """Remove and return a list of 1 to max_items items, first first.

        Waits like get() until at least one item is there, then takes what is
        there up to max_items without waiting further.
        """
        cdef Py_ssize_t limit
        cdef Py_ssize_t n
        cdef Py_ssize_t i
        cdef PyObject *stack_buffer[STACK_BATCH]
        cdef PyObject **buffer = stack_buffer
        if not isinstance(max_items, int):
            raise TypeError(f"max_items must be an int, not {type(max_items).__name__}")
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        limit = min(max_items, 2 ** 62)
        if self._count == 0:
            self._wait_for_items(block, _deadline(block, timeout))
        n = min(limit, self._count)
        if n > STACK_BATCH:
            buffer = <PyObject **>PyMem_Malloc(n * sizeof(PyObject *))
            if buffer == NULL:
                raise MemoryError
        try:
            n = self._store_pop_many(buffer, n)
            result = PyList_New(n)
            for i in range(n):
                PyList_SET_ITEM(result, i, <object>buffer[i])  # steals the reference
            self._removed(n)
        finally:
            if buffer != stack_buffer:
                PyMem_Free(buffer)
        return result

    def qsize(self):
        """Number of items in the queue now."""
        return self._count

    def empty(self):
        """True if the queue holds no item now."""
        return self._count == 0

    def full(self):
        """True if the queue is bounded and holds maxsize items now."""
        return self._limit != 0 and self._count >= self._limit

    @property
    def maxsize(self):
        """The bound given at construction; <= 0 means unbounded."""
        return self._maxsize

    def task_done(self):
        """Mark one item taken by get() as processed (for join())."""
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0:
            flq_park_notify_locked(&self._all_done, 1)

    def join(self):
        """Wait until every item put has been marked done by task_done()."""
        cdef uint32_t key
        while self._unfinished:
            key = flq_park_prepare(&self._all_done)
            if self._unfinished == 0:
                flq_park_cancel(&self._all_done)
            else:
                _sleep(&self._all_done, key, -1)

    def shutdown(self, immediate=False):
        """Shut the queue down: put() raises ShutDown from now on; get()
        returns what is queued, then raises ShutDown. immediate=True also
        discards what is queued (counting it as done) and get() raises at
        once. Every blocked caller wakes up."""
        cdef Py_ssize_t n
        self._is_shutdown = True
        if immediate and self._count:
            dropped = self.get_many(self._count, block=False)
            n = len(dropped)
            self._dequeued -= n
            self._discarded += n
            self._unfinished = max(0, self._unfinished - n)
            flq_park_notify_locked(&self._all_done, 1)
            del dropped  # items' finalizers run after the queue is consistent
        elif immediate:
            flq_park_notify_locked(&self._all_done, 1)
        flq_park_notify_locked(&self._not_empty, 1)
        flq_park_notify_locked(&self._not_full, 1)

    @property
    def is_shutdown(self):
        """True once shutdown() has been called."""
        return self._is_shutdown

    def stats(self):
        """A snapshot of the queue's counters as a dict."""
        return {
            "depth": self._count,
            "maxsize": self._maxsize,
            "enqueued": self._enqueued,
            "dequeued": self._dequeued,
            "discarded": self._discarded,
            "high_water": self._high_water,
            "unfinished": self._unfinished,
        }

    __class_getitem__ = classmethod(GenericAlias)

    def __reduce__(self):
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __repr__(self):
        return f"<flinq.{type(self).__name__} depth={self._count} maxsize={self._maxsize}>"


cdef class _FifoCore(_QueueCore):
    """FIFO storage: a chain of lock-free SPMC rings (include/flinq/chain.h)."""

    cdef flq_chain _chain
    cdef bint _chain_ready

    def __cinit__(self, *args, **kwargs):
        if flq_chain_init(&self._chain) != 0:
            raise MemoryError
        self._chain_ready = True

    def __dealloc__(self):
        cdef PyObject *item
        if not self._chain_ready:
            return
        while flq_chain_pop(&self._chain, <void **>&item):
            Py_DECREF(<object>item)
        flq_chain_destroy(&self._chain)

    cdef int _store_push(self, object item, int64_t priority, bint keyed) except -1:
        if flq_chain_push(&self._chain, <void *>item) != 0:
            raise MemoryError
        Py_INCREF(item)
        return 0

    cdef Py_ssize_t _store_push_many(self, PyObject **items, Py_ssize_t n,
                                     int64_t priority, bint keyed) except -1:
        cdef Py_ssize_t stored = flq_chain_push_many(&self._chain, <void **>items, n)
        cdef Py_ssize_t i
        for i in range(stored):
            Py_INCREF(<object>items[i])
        return stored

    cdef Py_ssize_t _store_pop_many(self, PyObject **out, Py_ssize_t n) except -1:
        return flq_chain_pop_many(&self._chain, <void **>out, n)


cdef class _HeapCore(_QueueCore):
    """Ordered storage: a binary heap (include/flinq/heap.h).

    Two styles: keyed entries order by (priority, arrival) in C; compared
    entries order by the items' own `<`, like heapq. A queue holds one style.
    """

    cdef flq_heap _heap
    cdef uint64_t _seq       # arrival number of the next entry
    cdef int _style          # 0: none yet, 1: keyed, 2: compared
    cdef bint _comparing     # a Python comparison is running (re-entry guard)

    def __cinit__(self, *args, **kwargs):
        flq_heap_init(&self._heap)

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(<Py_ssize_t>self._heap.size):
            Py_DECREF(<object>self._heap.entries[i].item)
        flq_heap_destroy(&self._heap)

    cdef int _enter_style(self, bint keyed) except -1:
        cdef int style = 1 if keyed else 2
        if self._style != style and self._style != 0:
            if keyed:
                raise TypeError("this PriorityQueue orders items by comparing them; "
                                "put(item, priority=n) cannot be mixed into it")
            raise TypeError("this PriorityQueue orders items by priority=; "
                            "put(item) without a priority cannot be mixed into it")
        if self._comparing:
            raise RuntimeError("PriorityQueue used from inside one of its items' comparisons")
        return 0

    cdef int _push_entry(self, object item, int64_t priority, bint keyed) except -1:
        cdef flq_heap_entry entry
        cdef int rc
        entry.priority = priority
        entry.seq = self._seq
        entry.item = <void *>item
        if keyed:
            rc = flq_heap_push(&self._heap, &entry)
        else:
            self._comparing = True
            rc = flq_heap_push_by(&self._heap, &entry, _compare_items, NULL)
            self._comparing = False
        if rc == -1:
            return -1   # the comparison's exception is set
        if rc == -2:
            raise MemoryError
        Py_INCREF(item)
        self._seq += 1
        self._style = 1 if keyed else 2
        return 0

    cdef int _store_push(self, object item, int64_t priority, bint keyed) except -1:
        self._enter_style(keyed)
        return self._push_entry(item, priority, keyed)

    cdef Py_ssize_t _store_push_many(self, PyObject **items, Py_ssize_t n,
                                     int64_t priority, bint keyed) except -1:
        cdef Py_ssize_t i
        self._enter_style(keyed)
        if flq_heap_reserve(&self._heap, n) != 0:
            raise MemoryError
        for i in range(n):
            self._push_entry(<object>items[i], priority, keyed)
        return n

    cdef Py_ssize_t _store_pop_many(self, PyObject **out, Py_ssize_t n) except -1:
        cdef flq_heap_entry entry
        cdef Py_ssize_t i
        cdef int rc
        if self._comparing:
            raise RuntimeError("PriorityQueue used from inside one of its items' comparisons")
        for i in range(n):
            if self._style == 2:
                self._comparing = True
                rc = flq_heap_pop_by(&self._heap, &entry, _compare_items, NULL)
                self._comparing = False
                if rc == -1:
                    if i == 0:
                        return -1
                    # Return the items already taken (the heap is unchanged
                    # past them); the same comparison fails again, and
                    # raises, on the next call.
                    PyErr_Clear()
                    return i
            else:
                rc = flq_heap_pop(&self._heap, &entry)
            if rc == 0:
                return i
            out[i] = <PyObject *>entry.item
        return n


cdef class Queue(_FifoCore):
    """A FIFO queue, drop-in for queue.Queue. maxsize <= 0 means unbounded."""

    def __init__(self, maxsize=0):
        self._set_maxsize(maxsize)


cdef class SimpleQueue(_FifoCore):
    """An unbounded FIFO queue, drop-in for queue.SimpleQueue."""

    def __init__(self):
        pass


cdef class LifoQueue(_HeapCore):
    """A LIFO queue, drop-in for queue.LifoQueue. maxsize <= 0 means unbounded."""

    def __init__(self, maxsize=0):
        self._set_maxsize(maxsize)
        self._style = 1

    cdef int _store_push(self, object item, int64_t priority, bint keyed) except -1:
        # Newest first: order by the negated arrival number.
        return self._push_entry(item, -<int64_t>self._seq, True)

    cdef Py_ssize_t _store_push_many(self, PyObject **items, Py_ssize_t n,
                                     int64_t priority, bint keyed) except -1:
        cdef Py_ssize_t i
        if flq_heap_reserve(&self._heap, n) != 0:
            raise MemoryError
        for i in range(n):
            self._push_entry(<object>items[i], -<int64_t>self._seq, True)
        return n


cdef inline int64_t _priority_value(object priority) except? -1:
    if not isinstance(priority, int):
        raise TypeError(f"priority must be an int, not {type(priority).__name__}")
    if not -2 ** 63 <= priority < 2 ** 63:
        raise OverflowError("priority must fit in a signed 64-bit integer")
    return priority


cdef class PriorityQueue(_HeapCore):
    """A priority queue, drop-in for queue.PriorityQueue: lowest first.

    put(item) compares items with `<`, as heapq does. put(item, priority=n)
    with an int n orders by n in C instead (FIFO among equal n) and get()
    returns the item itself. A queue keeps the style of its first put; mixing
    the two raises TypeError.
    """

    def __init__(self, maxsize=0):
        self._set_maxsize(maxsize)

    def put(self, item, block=True, timeout=None, *, priority=None):
        """Put item, ordered by priority if given, else by comparing items."""
        if priority is None:
            self._put(item, 0, False, block, timeout)
        else:
            self._put(item, _priority_value(priority), True, block, timeout)

    def put_nowait(self, item, *, priority=None):
        """Put item without blocking; raise queue.Full if there is no room."""
        self.put(item, False, None, priority=priority)

    def put_many(self, items, block=True, timeout=None, *, priority=None):
        """Put every item of items with the same priority (or compared), as
        one batch; see Queue.put_many. In the compared style, a comparison
        that raises leaves the items before the failing one queued."""
        if priority is None:
            self._put_many(items, 0, False, block, timeout)
        else:
            self._put_many(items, _priority_value(priority), True, block, timeout)


# ---- garbage collection --------------------------------------------------------
# Items live in C structures that Cython's generated tp_traverse/tp_clear do
# not know about. These slots extend them, so that a queue caught in a
# reference cycle (say, holding an object that refers to the queue) is
# collected like the stdlib's queues.

cdef extern from "Python.h":
    ctypedef int (*visitproc)(PyObject *, void *) noexcept nogil
    ctypedef int (*traverseproc)(PyObject *, visitproc, void *) noexcept
    ctypedef int (*inquiry)(PyObject *) noexcept
    ctypedef struct _TypeSlots "PyTypeObject":
        traverseproc tp_traverse
        inquiry tp_clear

ctypedef struct _Visit:
    visitproc visit
    void *arg

cdef traverseproc _core_traverse = (<_TypeSlots *><void *>_QueueCore).tp_traverse
cdef inquiry _core_clear = (<_TypeSlots *><void *>_QueueCore).tp_clear


cdef int _visit_item(void *item, void *ctx) noexcept nogil:
    cdef _Visit *v = <_Visit *>ctx
    return v.visit(<PyObject *>item, v.arg)


cdef int _fifo_traverse(PyObject *o, visitproc visit, void *arg) noexcept:
    cdef int r = _core_traverse(o, visit, arg)
    cdef _Visit v
    if r:
        return r
    v.visit = visit
    v.arg = arg
    cdef _FifoCore q = <_FifoCore><object>o
    return flq_chain_visit(&q._chain, _visit_item, &v) if q._chain_ready else 0


cdef int _heap_traverse(PyObject *o, visitproc visit, void *arg) noexcept:
    cdef int r = _core_traverse(o, visit, arg)
    cdef size_t i
    if r:
        return r
    cdef _HeapCore q = <_HeapCore><object>o
    for i in range(q._heap.size):
        r = visit(<PyObject *>q._heap.entries[i].item, arg)
        if r:
            return r
    return 0


cdef int _queue_clear(PyObject *o) noexcept:
    cdef _QueueCore q = <_QueueCore><object>o
    # An error here (a failing comparison) is reported as unraisable by
    # Cython; the remaining items then stay until the queue is freed.
    if q._count:
        dropped = q.get_many(q._count, block=False)
        q._dequeued -= len(dropped)
        q._discarded += len(dropped)
        del dropped
    return _core_clear(o)


cdef _install_gc_slots():
    for cls in (_FifoCore, Queue, SimpleQueue):
        (<_TypeSlots *><void *>cls).tp_traverse = _fifo_traverse
    for cls in (_HeapCore, LifoQueue, PriorityQueue):
        (<_TypeSlots *><void *>cls).tp_traverse = _heap_traverse
    for cls in (_FifoCore, Queue, SimpleQueue, _HeapCore, LifoQueue, PriorityQueue):
        (<_TypeSlots *><void *>cls).tp_clear = _queue_clear


_install_gc_slots()
