# cython: language_level=3, embedsignature=True, binding=False, boundscheck=False, wraparound=False, cdivision=True
"""Queue types over flinq's C structures.

Two axes, kept apart:
  - storage (where items live): _ChainStorage over include/flinq/chain.h for
    FIFO, _HeapStorage over include/flinq/heap.h for priority and LIFO;
  - behaviour (what callers see): _QueueCore holds everything the queue
    kinds share (blocking with timeouts, batches, counters, shutdown,
    task accounting); Queue adds the public methods of queue.Queue that
    queue.SimpleQueue lacks (maxsize, full, task_done, join, shutdown), and
    LifoQueue and PriorityQueue derive from Queue, as in the stdlib.
A queue owns one storage object and calls it through three cdef methods.

Every method runs with the GIL held, except the sleep inside a blocking wait,
which releases it. The GIL is therefore the serializer the C contracts ask
of callers (one producer at a time on the ring, any caller on the heap), and
the counters below are exact. One exception: the drop-in priority style
calls Python's `<` in the middle of a heap operation, where the GIL can pass
to another thread, so _HeapStorage serializes those operations itself.

This module does not declare free-threading support, so a free-threaded
interpreter keeps the GIL on while it is loaded.
"""

cimport cython
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_SIZE, PySequence_Fast_ITEMS
from libc.stdint cimport INT64_MAX, UINT64_MAX, int64_t, uint32_t, uint64_t

from flinq._headers cimport (
    flq_chain, flq_chain_free, flq_chain_new, flq_chain_pop_many_serial,
    flq_chain_push, flq_chain_push_many, flq_chain_visit,
    flq_buckets, flq_buckets_clear, flq_buckets_destroy, flq_buckets_init, flq_buckets_pop,
    flq_buckets_push, flq_buckets_reserve, flq_buckets_visit,
    flq_heap, flq_heap_destroy, flq_heap_entry, flq_heap_init, flq_heap_pop_by,
    flq_heap_push_by_at, flq_heap_reserve, flq_heap_undo_push,
    flq_metrics, flq_metrics_age_ns, flq_metrics_arrived, flq_metrics_departed_fifo,
    flq_metrics_departed_one, flq_metrics_init, flq_metrics_latency_ns, flq_metrics_mark,
    flq_metrics_rates,
    flq_now_ns, flq_park, flq_park_after_fork_in_child, flq_park_cancel, flq_park_destroy,
    flq_park_has_waiters, flq_park_init, flq_park_notify_locked, flq_park_prepare, flq_park_wait,
)

import queue as _stdlib_queue
import threading as _threading
import time as _time
import weakref as _weakref
from types import GenericAlias

import logging as _logging

from flinq import _timers
from flinq._compat import ShutDown

Empty = _stdlib_queue.Empty
_log = _logging.getLogger("flinq")
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

# Kinds of event the durable layer reports through _QueueCore._note (indexes
# into _QueueCore._counts).
DEF NOTE_ACKED = 0
DEF NOTE_NACKED = 1
DEF NOTE_REDELIVERED = 2
DEF NOTE_DEAD_LETTERED = 3
DEF NOTE_EXPIRED = 4
NOTE_KINDS = {"acked": NOTE_ACKED, "nacked": NOTE_NACKED, "redelivered": NOTE_REDELIVERED,
              "dead_lettered": NOTE_DEAD_LETTERED, "expired": NOTE_EXPIRED}

# What a queue tells its watcher (set_watcher): items arrived, room was
# freed (or the bound grew), every task is done. Shutdown tells both of the
# first two, so that every waiter looks again.
DEF WATCH_ITEMS = 0
DEF WATCH_ROOM = 1
DEF WATCH_DONE = 2
WATCH_EVENTS = {"items": WATCH_ITEMS, "room": WATCH_ROOM, "done": WATCH_DONE}


cdef void _tell_watcher(object watcher, int event) noexcept:
    # Inside a queue operation, which cannot fail half-way: a watcher's
    # exception is reported as unraisable, as a finalizer's would be.
    try:
        watcher(event)
    except BaseException as error:
        _write_unraisable(error, watcher)


cdef _write_unraisable(error, obj):
    import sys
    sys.unraisablehook(_Unraisable(type(error), error, error.__traceback__,
                                   "flinq: exception in a queue watcher", obj))


class _Unraisable:
    """The argument sys.unraisablehook expects."""

    def __init__(self, exc_type, exc_value, exc_traceback, err_msg, obj):
        self.exc_type = exc_type
        self.exc_value = exc_value
        self.exc_traceback = exc_traceback
        self.err_msg = err_msg
        self.object = obj


# Returned by _QueueCore._take_one when storage held nothing after all.
cdef object _NOTHING = object()


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


cdef extern from "Python.h":
    void PyErr_Fetch(PyObject **kind, PyObject **value, PyObject **traceback)
    void PyErr_NormalizeException(PyObject **kind, PyObject **value, PyObject **traceback)
    int PyException_SetTraceback(PyObject *error, PyObject *traceback)
    void Py_XDECREF(PyObject *o)
    ctypedef struct PyListObject:
        PyObject **ob_item
    void Py_SET_SIZE(object o, Py_ssize_t size)
    object PySequence_Tuple(object o)


cdef object _fetch_exception():
    """The exception being raised, taken out of the interpreter's error state."""
    cdef PyObject *kind = NULL
    cdef PyObject *value = NULL
    cdef PyObject *traceback = NULL
    PyErr_Fetch(&kind, &value, &traceback)
    PyErr_NormalizeException(&kind, &value, &traceback)
    if traceback != NULL:
        PyException_SetTraceback(value, traceback)
    error = <object>value
    Py_XDECREF(kind)
    Py_XDECREF(value)
    Py_XDECREF(traceback)
    return error


# ---- fork() ------------------------------------------------------------------------
#
# A child of fork() has only the thread that forked, yet inherits every queue
# with its parks as the other threads left them: a mutex one of them held,
# a condition variable that counts them as sleepers, waiter counts that
# include them. Used as they are, the child hangs in its first wake-up.
# So every object that owns parks links itself into one list for its life,
# and the at-fork handler below walks it and gives each park fresh
# primitives (flq_park_after_fork_in_child) while the child has one thread.
#
# Why a list walked at fork rather than a check at each use (a pid or
# generation stamp per park): the check would sit in every prepare and
# wake-up, and a park re-made lazily races with the child's own threads
# unless every first use is serialized. The list costs two pointer writes
# when a queue is made and two when it dies; no queue operation reads it,
# and the GIL guards it. The handler abandons every queue operation in
# progress, so the forking thread itself must not be inside one (forking
# from an item's `<`, or from a finalizer run mid-operation).

ctypedef void (*_after_fork_fn)(PyObject *owner) noexcept

ctypedef struct _ForkLink:
    _ForkLink *prev
    _ForkLink *next
    PyObject *owner             # borrowed: the owner unlinks itself before it goes
    _after_fork_fn after_fork   # resets the owner's parks and what vanished threads left

cdef _ForkLink *_fork_links = NULL


cdef inline void _link_for_fork(_ForkLink *link, object owner, _after_fork_fn after_fork) noexcept:
    global _fork_links
    link.owner = <PyObject *>owner
    link.after_fork = after_fork
    link.prev = NULL
    link.next = _fork_links
    if _fork_links != NULL:
        _fork_links.prev = link
    _fork_links = link


cdef inline void _unlink_for_fork(_ForkLink *link) noexcept:
    global _fork_links
    if link.owner == NULL:
        return  # never linked: its owner failed before that
    if link.prev != NULL:
        link.prev.next = link.next
    else:
        _fork_links = link.next
    if link.next != NULL:
        link.next.prev = link.prev
    link.owner = NULL


def _after_fork_in_child():
    global _main_thread_ident
    cdef _ForkLink *link = _fork_links
    # The thread that forked is the child's main thread: signals reach it.
    _main_thread_ident = PyThread_get_thread_ident()
    while link != NULL:
        link.after_fork(link.owner)
        link = link.next
    # Only now: a delayed call pending at the fork may wake a queue at once.
    _timers.after_fork_in_child()


import os as _os
if hasattr(_os, "register_at_fork"):
    # os.fork() runs it, and so does any C code that forks the interpreter
    # correctly (PyOS_AfterFork_Child); a child that only calls exec() (the
    # subprocess module) has no use for it.
    _os.register_at_fork(after_in_child=_after_fork_in_child)


cdef int _init_park(flq_park *park) except -1:
    if flq_park_init(park) != 0:
        raise MemoryError("cannot create a wait primitive")
    return 0


# ---- messages given back -------------------------------------------------------------

@cython.final
@cython.freelist(16)
cdef class _Redelivery:
    """An item back in its queue after nack(): storage holds this in the
    item's place, so the next reserve() knows the deliveries it has had.
    get() unwraps it; users never see one."""

    cdef object body
    cdef Py_ssize_t attempts
    cdef uint64_t id
    cdef int64_t priority


cdef extern from "Python.h":
    ctypedef struct PyTypeObject:
        PyObject *tp_dict
    PyTypeObject *Py_TYPE(PyObject *o)

cdef inline PyObject *_unwrapped(PyObject *item) noexcept:
    if Py_TYPE(item) == <PyTypeObject *>_Redelivery:
        return <PyObject *>(<_Redelivery>item).body
    return item


# ---- storage ---------------------------------------------------------------------

ctypedef int (*_item_visitor)(PyObject *item, void *arg) noexcept


cdef class _Storage:
    """Where a queue keeps its items; it holds one reference to each.

    Storage numbers items in the order they arrive (0, 1, ...) and reports
    each item's departure to the owning queue's metrics (metrics.h), which
    need to know which arrival left.
    """

    # True if push and pop never run Python code (so never release the GIL).
    cdef bint runs_no_python
    cdef flq_metrics *metrics  # the owning queue's; set by it before any use

    cdef int push(self, object item, int64_t priority, bint keyed) except -1:
        raise NotImplementedError

    cdef Py_ssize_t push_many(self, PyObject **items, Py_ssize_t n,
                              int64_t priority, bint keyed) except -1:
        """Store items[0..n) (borrowed references) in order. Returns how many
        were stored: n, or fewer only when memory ran out part way in storage
        that cannot give items back. An exception means none were stored."""
        raise NotImplementedError

    cdef Py_ssize_t pop_many(self, PyObject **out, Py_ssize_t n, int64_t *priorities) except -1:
        """Move up to n items, first first, into out[] as owned references;
        returns how many. priorities[] (unless NULL) gets each item's
        priority where storage keeps one (a keyed heap), else 0."""
        raise NotImplementedError

    cdef list drain(self):
        """Take every item, in no particular order, without comparing any."""
        raise NotImplementedError

    cdef bint is_keyed(self):
        """True if pushes must give each item's priority (a keyed heap)."""
        return False

    cdef uint64_t oldest_arrival(self):
        """Arrival number of the oldest item stored (storage not empty)."""
        raise NotImplementedError

    cdef int visit(self, _item_visitor visitor, void *arg) noexcept:
        """Call visitor on every stored item (for the cycle collector)."""
        return 0


ctypedef struct _ChainVisit:
    _item_visitor visitor
    void *arg


cdef int _visit_chain_item(void *item, void *ctx) noexcept:
    cdef _ChainVisit *v = <_ChainVisit *>ctx
    return v.visitor(<PyObject *>item, v.arg)


@cython.final
cdef class _ChainStorage(_Storage):
    """FIFO storage: a chain of SPMC rings (include/flinq/chain.h).

    Every call holds the GIL, so consumers are already serialized: pops use
    the chain's serialized-consumer mode, which makes no atomic
    read-modify-write (the lock-free mode pays three per pop for a
    concurrency that the GIL rules out).
    """

    cdef flq_chain *_chain  # a block of its own: the chain needs 64-byte alignment

    def __cinit__(self):
        self._chain = flq_chain_new()
        if self._chain == NULL:
            raise MemoryError
        self.runs_no_python = True

    def __dealloc__(self):
        cdef PyObject *item
        if self._chain == NULL:
            return
        while flq_chain_pop_many_serial(self._chain, <void **>&item, 1):
            Py_DECREF(<object>item)
        flq_chain_free(self._chain)

    cdef int push(self, object item, int64_t priority, bint keyed) except -1:
        if flq_chain_push(self._chain, <void *>item) != 0:
            raise MemoryError
        Py_INCREF(item)
        return 0

    cdef Py_ssize_t push_many(self, PyObject **items, Py_ssize_t n,
                              int64_t priority, bint keyed) except -1:
        cdef Py_ssize_t stored = flq_chain_push_many(self._chain, <void **>items, n)
        cdef Py_ssize_t i
        for i in range(stored):
            Py_INCREF(<object>items[i])
        return stored  # the chain cannot give back what it took

    cdef Py_ssize_t pop_many(self, PyObject **out, Py_ssize_t n, int64_t *priorities) except -1:
        cdef Py_ssize_t i
        cdef Py_ssize_t taken = flq_chain_pop_many_serial(self._chain, <void **>out, n)
        flq_metrics_departed_fifo(self.metrics, taken, 1)
        if priorities != NULL:
            for i in range(taken):
                priorities[i] = 0
        return taken

    cdef list drain(self):
        cdef PyObject *item
        cdef list items = []
        while flq_chain_pop_many_serial(self._chain, <void **>&item, 1):
            items.append(<object>item)
            Py_DECREF(<object>item)  # now owned by the list
        flq_metrics_departed_fifo(self.metrics, len(items), 0)
        return items

    cdef uint64_t oldest_arrival(self):
        return self.metrics.fifo_next  # FIFO: the next to leave

    cdef int visit(self, _item_visitor visitor, void *arg) noexcept:
        cdef _ChainVisit v
        v.visitor = visitor
        v.arg = arg
        return flq_chain_visit(self._chain, _visit_chain_item, &v)


# Visitors over the keyed style's entries (flq_buckets_visit).

cdef int _release_entry(const flq_heap_entry *entry, void *arg) noexcept:
    Py_DECREF(<object>entry.item)
    return 0


ctypedef struct _Collect:
    PyObject *items  # a list with room for every entry
    Py_ssize_t next


cdef int _collect_entry(const flq_heap_entry *entry, void *ctx) noexcept:
    # The list takes over storage's reference.
    cdef _Collect *c = <_Collect *>ctx
    PyList_SET_ITEM(<object>c.items, c.next, <object>entry.item)
    c.next += 1
    return 0


cdef int _oldest_entry(const flq_heap_entry *entry, void *oldest) noexcept:
    if entry.seq < (<uint64_t *>oldest)[0]:
        (<uint64_t *>oldest)[0] = entry.seq
    return 0


cdef int _visit_entry(const flq_heap_entry *entry, void *ctx) noexcept:
    cdef _ChainVisit *v = <_ChainVisit *>ctx
    return v.visitor(<PyObject *>entry.item, v.arg)


cdef int _compare_items(const flq_heap_entry *a, const flq_heap_entry *b, void *ctx) noexcept:
    """heap.h comparison for the drop-in priority style: `a < b`, as heapq
    (a message given back by nack() compares as its body)."""
    return _rich_compare_bool(_unwrapped(<PyObject *>a.item), _unwrapped(<PyObject *>b.item), Py_LT)


DEF STYLE_NONE = 0
DEF STYLE_KEYED = 1
DEF STYLE_COMPARED = 2


cdef class _HeapStorage(_Storage):
    """Ordered storage, in one of two styles fixed by the first successful
    push: keyed entries order by (priority, arrival) in C, in buckets per
    small priority with a heap for the rest (include/flinq/buckets.h);
    compared entries order by the items' own `<`, like heapq, in a binary
    heap (include/flinq/heap.h).
    """

    cdef flq_buckets _keyed            # the keyed style's entries
    cdef flq_heap _heap                # the compared style's entries
    cdef uint64_t _seq                 # arrival number of the next entry
    cdef int _style
    cdef unsigned long _comparer       # thread inside a compared operation, or 0
    cdef flq_park _compare_done        # other threads wait here for it
    cdef object _deferred              # an exception a partial get_many owes its caller
    cdef bint _ready
    cdef _ForkLink _fork_link

    def __cinit__(self):
        flq_heap_init(&self._heap)
        flq_buckets_init(&self._keyed)
        _init_park(&self._compare_done)
        self._ready = True
        _link_for_fork(&self._fork_link, self, _heap_after_fork)

    def __dealloc__(self):
        cdef size_t i
        _unlink_for_fork(&self._fork_link)
        if not self._ready:
            return
        for i in range(self._heap.size):
            Py_DECREF(<object>self._heap.entries[i].item)
        flq_buckets_visit(&self._keyed, _release_entry, NULL)
        flq_heap_destroy(&self._heap)
        flq_buckets_destroy(&self._keyed)
        flq_park_destroy(&self._compare_done)

    cdef int _check_style(self, bint keyed) except -1:
        cdef int style = STYLE_KEYED if keyed else STYLE_COMPARED
        if self._style != style and self._style != STYLE_NONE:
            if keyed:
                raise TypeError("this PriorityQueue orders items by comparing them; "
                                "put(item, priority=n) cannot be mixed into it")
            raise TypeError("this PriorityQueue orders items by priority=; "
                            "put(item) without a priority cannot be mixed into it")
        return 0

    cdef int _begin_compare(self) except -1:
        """Own the heap for a compared operation: `<` runs Python code, during
        which another thread may take the GIL and must not touch the heap.
        Other threads wait, as they would for queue.PriorityQueue's mutex."""
        cdef unsigned long me = PyThread_get_thread_ident()
        cdef uint32_t key
        while self._comparer:
            if self._comparer == me:
                raise RuntimeError("PriorityQueue used from inside one of its items' comparisons")
            key = flq_park_prepare(&self._compare_done)
            if self._comparer == 0:
                flq_park_cancel(&self._compare_done)
            else:
                _sleep(&self._compare_done, key, -1)
        self._comparer = me
        return 0

    cdef inline void _end_compare(self) noexcept:
        self._comparer = 0
        flq_park_notify_locked(&self._compare_done, 1)

    cdef int _push_keyed(self, object item, int64_t priority) except -1:
        cdef flq_heap_entry entry
        entry.priority = priority
        entry.seq = self._seq
        entry.item = <void *>item
        if flq_buckets_push(&self._keyed, &entry) != 0:
            raise MemoryError
        Py_INCREF(item)
        self._seq += 1
        self._style = STYLE_KEYED
        return 0

    cdef int push(self, object item, int64_t priority, bint keyed) except -1:
        cdef PyObject *one = <PyObject *>item
        if keyed:
            self._check_style(True)
            return self._push_keyed(item, priority)
        return self._push_compared(&one, 1)

    cdef Py_ssize_t push_many(self, PyObject **items, Py_ssize_t n,
                              int64_t priority, bint keyed) except -1:
        cdef Py_ssize_t i
        if not keyed:
            return self._push_compared(items, n)
        self._check_style(True)
        if flq_buckets_reserve(&self._keyed, priority, n) != 0:
            raise MemoryError
        for i in range(n):
            self._push_keyed(<object>items[i], priority)
        return n

    cdef Py_ssize_t _push_compared(self, PyObject **items, Py_ssize_t n) except -1:
        """Push items[0..n) comparing with `<`: all of them, or (a comparison
        failed) none, with the pushes already made undone newest first."""
        cdef size_t one_position
        cdef size_t *positions = &one_position
        cdef flq_heap_entry entry
        cdef Py_ssize_t i
        cdef Py_ssize_t done = 0
        cdef int rc = 0
        cdef bint first = self._style == STYLE_NONE
        self._check_style(False)
        self._begin_compare()
        try:
            # Everything that may move the array happens under the compare
            # lock: another thread's `<` may hold pointers into it.
            if n > 1:
                positions = <size_t *>PyMem_Malloc(n * sizeof(size_t))
                if positions == NULL:
                    raise MemoryError
            if flq_heap_reserve(&self._heap, n) != 0:
                raise MemoryError
            # Claim the style now, so a keyed put cannot slip in while `<`
            # runs; a first push that fails gives it back.
            self._style = STYLE_COMPARED
            for i in range(n):
                Py_INCREF(<object>items[i])  # owned before `<` can run the GC
                entry.priority = 0
                entry.seq = self._seq + <uint64_t>i
                entry.item = <void *>items[i]
                rc = flq_heap_push_by_at(&self._heap, &entry, _compare_items, NULL, &positions[i])
                if rc != 0:
                    Py_DECREF(<object>items[i])
                    break
                done += 1
            if rc != 0:
                for i in range(done - 1, -1, -1):
                    flq_heap_undo_push(&self._heap, positions[i])
                    Py_DECREF(<object>items[i])
                if first and self._heap.size == 0:
                    self._style = STYLE_NONE
                if rc == -2:
                    raise MemoryError
                return -1  # the comparison's exception is set
            self._seq += <uint64_t>n
        finally:
            self._end_compare()
            if positions != &one_position:
                PyMem_Free(positions)
        return n

    cdef Py_ssize_t pop_many(self, PyObject **out, Py_ssize_t n, int64_t *priorities) except -1:
        cdef flq_heap_entry entry
        cdef Py_ssize_t i
        cdef int rc
        cdef int64_t now = 0  # read once per call, if a timed item leaves
        if self._style != STYLE_COMPARED:
            for i in range(n):
                if not flq_buckets_pop(&self._keyed, &entry):
                    return i
                out[i] = <PyObject *>entry.item
                flq_metrics_departed_one(self.metrics, entry.seq, &now)
                if priorities != NULL:
                    priorities[i] = entry.priority
            return n
        self._begin_compare()
        try:
            if self._deferred is not None:
                error, self._deferred = self._deferred, None
                raise error
            for i in range(n):
                rc = flq_heap_pop_by(&self._heap, &entry, _compare_items, NULL)
                if rc == 0:
                    return i
                if rc < 0:
                    if i == 0:
                        return -1  # the comparison's exception is set
                    # Items already taken are returned (the heap is unchanged
                    # past them); the exception is raised by the next call.
                    self._deferred = _fetch_exception()
                    return i
                out[i] = <PyObject *>entry.item
                flq_metrics_departed_one(self.metrics, entry.seq, &now)
                if priorities != NULL:
                    priorities[i] = 0
        finally:
            self._end_compare()
        return n

    cdef list drain(self):
        """Every item, in no particular order, without comparing any."""
        cdef size_t i
        cdef list items
        cdef _Collect collect
        self._begin_compare()  # a compared operation may be using the array
        try:
            items = PyList_New(self._heap.size + self._keyed.size)
            collect.items = <PyObject *>items
            collect.next = 0
            for i in range(self._heap.size):
                _collect_entry(&self._heap.entries[i], &collect)
            self._heap.size = 0
            flq_buckets_visit(&self._keyed, _collect_entry, &collect)
            flq_buckets_clear(&self._keyed)
        finally:
            self._end_compare()
        return items

    cdef bint is_keyed(self):
        return self._style == STYLE_KEYED

    cdef uint64_t oldest_arrival(self):
        # UINT64_MAX when empty: counted items are mid-push in another thread.
        cdef size_t i
        cdef uint64_t oldest = UINT64_MAX
        for i in range(self._heap.size):  # O(n), for stats() only
            if self._heap.entries[i].seq < oldest:
                oldest = self._heap.entries[i].seq
        flq_buckets_visit(&self._keyed, _oldest_entry, &oldest)
        return oldest

    cdef int visit(self, _item_visitor visitor, void *arg) noexcept:
        cdef size_t i
        cdef int r
        cdef _ChainVisit v
        for i in range(self._heap.size):
            r = visitor(<PyObject *>self._heap.entries[i].item, arg)
            if r:
                return r
        v.visitor = visitor
        v.arg = arg
        return flq_buckets_visit(&self._keyed, _visit_entry, &v)


cdef void _heap_after_fork(PyObject *owner) noexcept:
    cdef _HeapStorage store = <_HeapStorage>owner
    flq_park_after_fork_in_child(&store._compare_done)
    # A compared operation's first phase only compares (heap.h), so one cut
    # short by the fork left the heap as it was.
    store._comparer = 0  # the thread that owned the heap is gone


@cython.final
cdef class _LifoStorage(_HeapStorage):
    """Newest first: a keyed heap ordered by the negated arrival number."""

    cdef bint is_keyed(self):
        return False  # the key is storage's own business: callers give no priority

    # Keys -1, -2, ...: negative, so every entry is in buckets.h's overflow heap.

    cdef int push(self, object item, int64_t priority, bint keyed) except -1:
        return self._push_keyed(item, -1 - <int64_t>self._seq)

    cdef Py_ssize_t push_many(self, PyObject **items, Py_ssize_t n,
                              int64_t priority, bint keyed) except -1:
        cdef Py_ssize_t i
        if flq_buckets_reserve(&self._keyed, -1, n) != 0:
            raise MemoryError
        for i in range(n):
            self._push_keyed(<object>items[i], -1 - <int64_t>self._seq)
        return n


# ---- messages ------------------------------------------------------------------------

@cython.final
cdef class _WorkerState:
    """One consume() worker's state, shared with its Consumer: `stopping`
    tells it to stop after the message in hand; `calls` counts the handler
    calls it made."""

    cdef public bint stopping
    cdef public Py_ssize_t calls


# The longest nack delay: past it a wait overflows the platform's timeouts.
cdef double MAX_DELAY = 1e9  # ~31 years

cdef double _delay_seconds(object delay) except -1:
    cdef double seconds = float(delay)
    if not 0 <= seconds <= MAX_DELAY:  # also NaN and infinity
        raise ValueError(f"delay must be a number of seconds from 0 to {MAX_DELAY:g}")
    return seconds

# How long a message that could not go back to its queue waits to try again.
cdef double RETRY_REQUEUE_SECONDS = 1.0


@cython.final
@cython.freelist(64)
cdef class LocalMessage:
    """A message reserved from an in-memory queue: settle it with ack() or
    nack(). As a context manager it acks when the block succeeds and nacks
    (requeue) when it raises; the exception still propagates.

    body is the item put; id numbers the message within its queue (stable
    across redeliveries); attempts counts deliveries, this one included;
    priority is the put's priority= on a keyed PriorityQueue, else None.
    """

    cdef readonly object body
    cdef readonly Py_ssize_t attempts
    cdef readonly uint64_t id
    cdef _QueueCore _queue
    cdef int64_t _priority
    cdef bint _keyed
    cdef bint _settled

    def __init__(self):
        raise TypeError("messages come from a queue's reserve()")

    @property
    def priority(self):
        """The priority it was put with (keyed PriorityQueue), else None."""
        return self._priority if self._keyed else None

    @property
    def settled(self):
        """True once acked, nacked or dead-lettered."""
        return self._settled

    def ack(self):
        """Mark the message processed (task_done for join()). Returns False
        if it was already settled."""
        if self._settled:
            return False
        self._settled = True
        self._queue._acked()
        return True

    def nack(self, requeue=True, delay=0.0):
        """Give the message back: ready again (as the newest arrival) after
        delay seconds, or with requeue=False dropped and counted as
        dead-lettered. Returns False if it was already settled."""
        cdef double seconds
        cdef _QueueCore queue = self._queue
        if self._settled:
            return False
        seconds = _delay_seconds(delay)
        if not requeue:
            self._settled = True
            queue._counts[NOTE_NACKED] += 1
            queue._in_flight -= 1
            queue._counts[NOTE_DEAD_LETTERED] += 1
            queue._done_one()
        elif seconds > 0:
            # Scheduled first, so a refusal changes nothing; it stays in
            # flight until it is back.
            _timers.call_later(seconds, LocalMessage._back_from_delay, self)
            self._settled = True
            queue._counts[NOTE_NACKED] += 1
        else:
            self._settled = True
            queue._counts[NOTE_NACKED] += 1
            queue._in_flight -= 1
            try:
                queue._store_again(self)
            except BaseException:
                queue._in_flight += 1
                queue._counts[NOTE_NACKED] -= 1
                self._settled = False
                raise
        return True

    def _back_from_delay(self):
        """Timer thread: the message's delay is over; it goes back to its
        queue, or (storing it failed: a comparison or memory) stays in
        flight and tries again later, so it is never lost."""
        queue = self._queue
        queue._in_flight -= 1
        try:
            queue._store_again(self)
        except Exception:
            queue._in_flight += 1
            _log.exception("flinq: a nacked message could not go back to its queue; "
                           "trying again in %g s", RETRY_REQUEUE_SECONDS)
            _timers.call_later(RETRY_REQUEUE_SECONDS, LocalMessage._back_from_delay, self)

    def _dead_letter(self, target):
        """Move the body to the queue target (target.put) and settle; for
        consumers. Returns False if it was already settled."""
        if self._settled:
            return False
        self._settled = True  # put() may run other threads: settle once
        try:
            target.put(self.body)
        except BaseException:
            self._settled = False
            raise
        self._queue._in_flight -= 1
        self._queue._counts[NOTE_NACKED] += 1
        self._queue._counts[NOTE_DEAD_LETTERED] += 1
        self._queue._done_one()
        return True

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.ack()
        else:
            self.nack(True)
        return False

    def __reduce__(self):
        raise TypeError("cannot pickle 'LocalMessage' object")

    def __repr__(self):
        return f"<flinq.LocalMessage id={self.id} attempts={self.attempts}>"


# ---- behaviour ---------------------------------------------------------------------

cdef class _QueueCore:
    """Behaviour shared by every flinq queue; storage is a _Storage object."""

    cdef _Storage _store
    cdef Py_ssize_t _limit          # maxsize as a capacity; 0 means unbounded
    cdef object _maxsize            # maxsize as the caller gave it
    cdef Py_ssize_t _count          # items in storage now
    cdef Py_ssize_t _pushing        # items being pushed now (counted against the limit)
    cdef Py_ssize_t _unfinished     # items put and not yet task_done()
    cdef Py_ssize_t _high_water
    cdef uint64_t _discarded        # dropped by shutdown(immediate=True)
    cdef flq_metrics _metrics       # arrivals, departures and their timing (metrics.h)
    cdef Py_ssize_t _in_flight      # reserved, not yet settled (a delayed nack included)
    cdef Py_ssize_t _wrapped        # _Redelivery entries in storage
    cdef uint64_t _next_id          # id of the next message delivered for the first time
    cdef uint64_t _counts[5]        # acked, nacked, redelivered, dead_lettered, expired
    cdef bint _is_shutdown
    cdef bint _discarding           # shut down with immediate=True: late pushes are dropped
    cdef Py_ssize_t _batch_putters  # put_many callers waiting for room (they need > 1 slot)
    cdef bint _parks_ready
    cdef bint _hooked               # a subclass overrides _put/_get/_qsize/_init (see Queue)
    cdef object _watcher            # set_watcher()'s callback, or None
    cdef flq_park _not_empty        # getters sleep here
    cdef flq_park _not_full         # putters of a bounded queue sleep here
    cdef flq_park _all_done         # join() sleeps here
    cdef _ForkLink _fork_link
    cdef object __weakref__

    def __cinit__(self, *args, **kwargs):
        _init_park(&self._not_empty)
        try:
            _init_park(&self._not_full)
        except MemoryError:
            flq_park_destroy(&self._not_empty)
            raise
        try:
            _init_park(&self._all_done)
        except MemoryError:
            flq_park_destroy(&self._not_empty)
            flq_park_destroy(&self._not_full)
            raise
        self._parks_ready = True
        _link_for_fork(&self._fork_link, self, _queue_after_fork)
        self._maxsize = 0
        flq_metrics_init(&self._metrics)
        # One storage per queue, by kind (subclasses first: a LifoQueue is a Queue).
        if isinstance(self, PriorityQueue):
            self._attach(_HeapStorage())
        elif isinstance(self, LifoQueue):
            self._attach(_LifoStorage())
        elif isinstance(self, (Queue, SimpleQueue)):
            self._attach(_ChainStorage())
        else:
            raise TypeError(f"{type(self).__name__} has no storage; derive from Queue, "
                            "SimpleQueue, LifoQueue or PriorityQueue")
        if type(self) not in _KINDS and isinstance(self, Queue):
            self._hooked = _overrides_hooks(type(self))

    def __dealloc__(self):
        _unlink_for_fork(&self._fork_link)
        if self._parks_ready:
            flq_park_destroy(&self._not_empty)
            flq_park_destroy(&self._not_full)
            flq_park_destroy(&self._all_done)

    cdef int _attach(self, _Storage store) except -1:
        store.metrics = &self._metrics
        self._store = store
        return 0

    cdef int _set_maxsize(self, object maxsize) except -1:
        if not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        self._maxsize = maxsize
        self._limit = maxsize if 0 < maxsize < 2 ** 62 else 0
        return 0

    # ---- the shared mechanism ------------------------------------------------

    @cython.final
    cdef inline void _signal(self, int event, bint all) noexcept:
        """Wake the threads parked for event, then tell the watcher."""
        if event == WATCH_ITEMS:
            flq_park_notify_locked(&self._not_empty, all)
        elif event == WATCH_ROOM:
            flq_park_notify_locked(&self._not_full, all)
        else:
            flq_park_notify_locked(&self._all_done, all)
        if self._watcher is not None:
            _tell_watcher(self._watcher, event)

    @cython.final
    cdef inline void _stored(self, Py_ssize_t n) noexcept:
        self._count += n
        self._unfinished += n
        if self._count > self._high_water:
            self._high_water = self._count
        if flq_park_has_waiters(&self._not_empty):
            # Waking a sleeper costs a system call; timing the arrival
            # beside it is nearly free and keeps lag exact for idle queues.
            flq_metrics_mark(&self._metrics)
        flq_metrics_arrived(&self._metrics, n)
        self._signal(WATCH_ITEMS, n > 1)

    @cython.final
    cdef inline void _removed(self, Py_ssize_t n) noexcept:
        self._count -= n
        if self._limit:
            # A batch putter woken for one free slot may still not fit and
            # sleep again: wake them all then, so no fitting putter is missed.
            self._signal(WATCH_ROOM, n > 1 or self._batch_putters > 0)

    @cython.final
    cdef int _wait_for_room(self, Py_ssize_t n, bint block, object timeout) except -1:
        cdef int64_t deadline = _deadline(block, timeout)
        cdef uint32_t key
        cdef bint slept
        while self._count + self._pushing + n > self._limit:
            if not block:
                raise Full
            key = flq_park_prepare(&self._not_full)
            if self._count + self._pushing + n <= self._limit or self._is_shutdown:
                flq_park_cancel(&self._not_full)
            else:
                if n > 1:
                    self._batch_putters += 1
                try:
                    slept = _sleep(&self._not_full, key, deadline) == 0
                finally:
                    if n > 1:
                        self._batch_putters -= 1
                if not slept:
                    raise Full
            if self._is_shutdown:
                raise ShutDown
        return 0

    @cython.final
    cdef inline Py_ssize_t _store_items(self, PyObject **items, Py_ssize_t n,
                                        int64_t priority, bint keyed) except -1:
        if n == 1:
            self._store.push(<object>items[0], priority, keyed)
            return 1
        return self._store.push_many(items, n, priority, keyed)

    @cython.final
    cdef int _push(self, PyObject **items, Py_ssize_t n, int64_t priority, bint keyed) except -1:
        """Hand items to storage and count them."""
        cdef Py_ssize_t stored
        if self._limit == 0:
            stored = self._store_items(items, n, priority, keyed)
        else:
            # Hold the room against the limit while storage works: a
            # compared push runs Python code, so other putters may run.
            self._pushing += n
            try:
                stored = self._store_items(items, n, priority, keyed)
            except BaseException:
                self._pushing -= n
                self._signal(WATCH_ROOM, 1)  # the room held is free
                raise
            self._pushing -= n
        if stored:
            self._stored(stored)
        if self._discarding:
            self._discard_all()  # a compared push that began before shutdown(immediate=True)
        if stored < n:
            raise MemoryError(f"put_many() stored {stored} of {n} items before memory ran out")
        return 0

    @cython.final
    cdef int _enqueue(self, object item, int64_t priority, bint keyed,
                  bint block, object timeout) except -1:
        cdef PyObject *one = <PyObject *>item
        if self._is_shutdown:
            raise ShutDown
        if self._hooked:
            if keyed:
                raise _hooks_refuse("put(item, priority=...)")
            _hooked_put(<Queue>self, item, block, timeout)
            return 0
        if self._limit == 0:  # the hot path: nothing to wait for or hold
            self._store.push(item, priority, keyed)
            self._stored(1)
            if self._discarding:
                self._discard_all()  # see _push
            return 0
        if self._count + self._pushing >= self._limit or timeout is not None:
            self._wait_for_room(1, block, timeout)  # also validates timeout
        return self._push(&one, 1, priority, keyed)

    @cython.final
    cdef int _put_many(self, object items, int64_t priority, bint keyed,
                       bint block, object timeout) except -1:
        cdef object batch
        cdef Py_ssize_t n
        if self._hooked:
            raise _hooks_refuse("put_many")
        batch = PySequence_Fast(items, "put_many() expects an iterable")
        if self._limit or not self._store.runs_no_python:
            # A tuple of our own: a list could change while we wait for room
            # or while `<` runs, and storage reads the items from it.
            batch = PySequence_Tuple(batch)
        n = PySequence_Fast_GET_SIZE(batch)
        if self._is_shutdown:
            raise ShutDown
        if n == 0:
            return 0
        if self._limit:
            if n > self._limit:
                raise ValueError(f"put_many() of {n} items can never fit in maxsize={self._limit}")
            if self._count + self._pushing + n > self._limit or timeout is not None:
                self._wait_for_room(n, block, timeout)  # also validates timeout
        return self._push(PySequence_Fast_ITEMS(batch), n, priority, keyed)

    @cython.final
    cdef inline object _take_one(self):
        """The next item, or _NOTHING if storage turned out empty (a compared
        pop of another thread took it while this one waited to compare)."""
        cdef PyObject *out
        if self._store.pop_many(&out, 1, NULL) == 0:
            return _NOTHING
        self._removed(1)
        item = <object>out
        Py_DECREF(item)   # the queue's reference, now owned by `item`
        if self._wrapped and type(item) is _Redelivery:
            self._wrapped -= 1
            return (<_Redelivery>item).body
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
    cdef object _dequeue(self, bint block, object timeout):
        if self._hooked:
            return _hooked_get(<Queue>self, block, timeout)
        cdef int64_t deadline = _deadline(block, timeout)  # validates timeout
        while True:
            if self._count == 0:
                self._wait_for_items(block, deadline)
            item = self._take_one()
            if item is not _NOTHING:
                return item

    @cython.final
    cdef list _take_many(self, Py_ssize_t limit, bint block, int64_t deadline):
        cdef Py_ssize_t n
        cdef list result
        while True:
            if self._count == 0:
                self._wait_for_items(block, deadline)
            # Allocate first: the allocation may run the cycle collector,
            # and with it code that uses this queue, which must see counts
            # that match storage. Items are popped straight into the list.
            result = PyList_New(min(limit, self._count))
            n = self._store.pop_many((<PyListObject *>result).ob_item, len(result), NULL)
            self._removed(n)
            Py_SET_SIZE(result, n)
            if self._wrapped:
                self._unwrap_all(result)
            if n:
                return result

    @cython.final
    cdef int _unwrap_all(self, list items) except -1:
        cdef Py_ssize_t i
        for i in range(len(items)):
            if type(items[i]) is _Redelivery:
                items[i] = (<_Redelivery>items[i]).body
                self._wrapped -= 1
        return 0

    @cython.final
    cdef int _discard_all(self) except -1:
        """Drop every stored item, counting each as done (immediate shutdown)."""
        cdef list dropped = self._store.drain()
        cdef Py_ssize_t n = len(dropped)
        cdef Py_ssize_t wrappers = 0
        if self._wrapped:
            for item in dropped:
                if type(item) is _Redelivery:
                    wrappers += 1
            self._wrapped -= wrappers
        self._count -= n
        self._discarded += n
        self._unfinished = max(0, self._unfinished - n)
        self._signal(WATCH_DONE, 1)
        del dropped  # items' finalizers run with the queue consistent
        return 0

    @cython.final
    cdef int _shutdown(self, bint immediate) except -1:
        self._is_shutdown = True
        try:
            if immediate:
                self._discarding = True
                self._discard_all()
        finally:
            self._signal(WATCH_ITEMS, 1)
            self._signal(WATCH_ROOM, 1)
        return 0

    # ---- public API: what queue.SimpleQueue has, plus batches and stats ----------

    # put(item, block=True, timeout=None) is _put_fastcall, installed at the
    # end of this module.
    def put_nowait(self, item):
        """Put item without blocking; raise queue.Full if there is no room."""
        self._enqueue(item, 0, False, False, None)

    def put_many(self, items, block=True, timeout=None):
        """Put every item of items, in order, as one batch: all or nothing.

        On a bounded queue, wait until they all fit (queue.Full on
        block=False or timeout, with nothing put); ValueError if they never can.
        """
        self._put_many(items, 0, False, block, timeout)

    # get(block=True, timeout=None) is _get_fastcall, installed at the end of
    # this module.

    def get_nowait(self):
        """Remove and return the next item without blocking; raise queue.Empty."""
        return self._dequeue(False, None)

    def get_many(self, max_items, block=True, timeout=None):
        """Remove and return a list of 1 to max_items items, first first.

        Waits like get() until at least one item is there, then takes what is
        there up to max_items without waiting further.
        """
        if not isinstance(max_items, int):
            raise TypeError(f"max_items must be an int, not {type(max_items).__name__}")
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        if self._hooked:
            raise _hooks_refuse("get_many")
        return self._take_many(min(max_items, 2 ** 62), block, _deadline(block, timeout))

    def qsize(self):
        """Number of items in the queue now."""
        if self._hooked:
            return _hooked_qsize(<Queue>self)
        return self._count

    def empty(self):
        """True if the queue holds no item now."""
        if self._hooked:
            return not _hooked_qsize(<Queue>self)
        return self._count == 0

    def stats(self):
        """A snapshot of the queue's counters and timings as a dict.

        Counts: depth (ready now), in_flight (reserved, not settled),
        maxsize, high_water (largest depth seen), unfinished (put and not
        yet done); totals since creation: enqueued (puts), dequeued (taken
        by get or reserve), acked, nacked, redelivered (back in the queue
        after a nack), dead_lettered, expired, discarded (dropped by
        shutdown(immediate=True)); enqueued + redelivered = dequeued +
        discarded + depth.

        Timings, in seconds: lag (age of the oldest ready item; 0.0 when
        none), latency_p50 / latency_p99 (enqueue to dequeue, over the last
        256 timed items; None before the first), and rates per second over
        the last 1, 10 and 60 s: enqueue_rate_1s ... dequeue_rate_60s.
        Timings come from one item in 64 (include/flinq/metrics.h says
        exactly how), so they are estimates: lag is exact for a timed item
        and otherwise an upper bound.
        """
        cdef flq_metrics *m = &self._metrics
        cdef int64_t now = flq_metrics_mark(m)
        cdef double quantiles[2]
        cdef int64_t latency[2]
        cdef double arrived_rate
        cdef double departed_rate
        cdef uint64_t oldest
        quantiles[0] = 0.5
        quantiles[1] = 0.99
        stats = {
            "depth": self._count,
            "in_flight": self._in_flight,
            "maxsize": self._maxsize,
            "high_water": self._high_water,
            "unfinished": self._unfinished,
            "enqueued": m.arrived - self._counts[NOTE_REDELIVERED],
            "dequeued": m.departed,
            "acked": self._counts[NOTE_ACKED],
            "nacked": self._counts[NOTE_NACKED],
            "redelivered": self._counts[NOTE_REDELIVERED],
            "dead_lettered": self._counts[NOTE_DEAD_LETTERED],
            "expired": self._counts[NOTE_EXPIRED],
            "discarded": self._discarded,
            "lag": 0.0,
            "latency_p50": None,
            "latency_p99": None,
        }
        if self._count:
            oldest = self._store.oldest_arrival()
            if oldest < m.arrived:
                stats["lag"] = flq_metrics_age_ns(m, oldest, now) / 1e9
        if flq_metrics_latency_ns(m, quantiles, 2, latency):
            stats["latency_p50"] = latency[0] / 1e9
            stats["latency_p99"] = latency[1] / 1e9
        for seconds in (1, 10, 60):
            flq_metrics_rates(m, seconds * 1000000000, now, &arrived_rate, &departed_rate)
            stats[f"enqueue_rate_{seconds}s"] = arrived_rate
            stats[f"dequeue_rate_{seconds}s"] = departed_rate
        return stats

    def set_watcher(self, callback):
        """Have callback(event) called, with the GIL held, each time this
        queue wakes its waiters: WATCH_EVENTS["items"] when items arrive,
        ["room"] when room is freed, ["done"] when every task is done (and
        items and room on shutdown). One watcher per queue; None removes it.
        For bridges to other waiting mechanisms (flinq.aio): the callback
        runs inside the queue operation, so it must be quick and must not
        block; an exception from it is reported as unraisable."""
        if callback is not None and not callable(callback):
            raise TypeError(f"watcher must be callable or None, not {type(callback).__name__}")
        self._watcher = callback

    @property
    def watcher(self):
        """The callback given to set_watcher(), or None."""
        return self._watcher

    # ---- at-least-once delivery: reserve, settle, consume --------------------------

    def reserve(self, timeout=None):
        """Take the next item as a LocalMessage, at least once: it counts as
        in flight until msg.ack(); msg.nack() puts it back. Waits up to
        timeout seconds (None: for ever; 0: not at all), then raises
        queue.Empty; raises ShutDown once shut down and empty."""
        if self._hooked:
            raise _hooks_refuse("reserve")
        return self._reserve_one(_deadline(True, timeout))

    @cython.final
    cdef LocalMessage _reserve_one(self, int64_t deadline):
        """Wait until deadline (-1: none) for an item and put it in flight.
        Raises what _wait_for_items raises (Empty, ShutDown, a signal's)."""
        cdef PyObject *out
        cdef int64_t priority
        while True:
            if self._count == 0:
                self._wait_for_items(True, deadline)
            if self._store.pop_many(&out, 1, &priority):
                break
        self._removed(1)
        item = <object>out
        Py_DECREF(item)  # the queue's reference, now owned by `item`
        return self._deliver(item, priority)

    def messages(self, timeout=None):
        """Iterate over reserved messages (use each as a context manager to
        ack it, or nack it on an exception). Stops once no message comes
        within timeout seconds (None: wait forever) or the queue is shut
        down and empty."""
        if self._hooked:
            raise _hooks_refuse("messages")
        from flinq.consumer import iter_messages
        return iter_messages(self, timeout)

    def consume(self, handler, **options):
        """Run handler(message) on worker threads for every message; returns
        the running Consumer. See flinq.Consumer for the options."""
        if self._hooked:
            raise _hooks_refuse("consume")
        from flinq.consumer import Consumer
        return Consumer(self, handler, **options)

    @cython.final
    cdef LocalMessage _deliver(self, object item, int64_t priority):
        """A message in flight for an item just taken from storage."""
        cdef bint redelivered = type(item) is _Redelivery  # before anything can run the GC
        cdef LocalMessage message = LocalMessage.__new__(LocalMessage)
        cdef _Redelivery again
        message._queue = self
        if redelivered:
            self._wrapped -= 1
            again = <_Redelivery>item
            message.body = again.body
            message.attempts = again.attempts + 1
            message.id = again.id
            message._priority = again.priority
        else:
            message.body = item
            message.attempts = 1
            message.id = self._next_id
            self._next_id += 1
            message._priority = priority
        message._keyed = self._store.is_keyed()
        self._in_flight += 1
        return message

    @cython.final
    cdef inline void _done_one(self) noexcept:
        """One item taken is fully processed (task_done's accounting)."""
        if self._unfinished > 0:
            self._unfinished -= 1
            if self._unfinished == 0:
                self._signal(WATCH_DONE, 1)

    @cython.final
    cdef inline void _acked(self) noexcept:
        self._in_flight -= 1
        self._counts[NOTE_ACKED] += 1
        self._done_one()

    @cython.final
    cdef int _store_again(self, LocalMessage message) except -1:
        """Put a delivered message back for another delivery. It kept its
        place in the unfinished count, and goes back even past maxsize (it
        had its room before it was taken)."""
        cdef _Redelivery again
        if self._discarding:
            # Shut down with immediate=True: dropped, as it would have been
            # had it stayed; it was counted as dequeued already.
            self._done_one()
            return 0
        again = _Redelivery.__new__(_Redelivery)
        again.body = message.body
        again.attempts = message.attempts
        again.id = message.id
        again.priority = message._priority
        self._store.push(again, message._priority, self._store.is_keyed())
        self._wrapped += 1
        self._stored(1)
        self._unfinished -= 1  # _stored counted it as new
        self._counts[NOTE_REDELIVERED] += 1
        return 0

    def _serve(self, handler, Py_ssize_t prefetch, timeout, on_error, _WorkerState state):
        """One step of a consume() worker: handle up to prefetch messages,
        taking each from the queue only when its turn comes (so a stopping
        worker holds nothing back and the queue keeps its order), waiting up
        to timeout seconds for the first. handler(msg) returning acks msg
        unless the handler settled it; on an exception on_error(msg, exc)
        settles it (the handler's exception is re-raised unless it is an
        Exception; one from on_error is logged, and the message nacked).
        Stops after the message in hand once state.stopping is set. Returns how many were
        taken; raises ShutDown once the queue is shut down and empty."""
        cdef int64_t deadline = _deadline(True, timeout)
        cdef Py_ssize_t taken = 0
        cdef LocalMessage message
        while taken < prefetch and not state.stopping:
            if self._count == 0 and taken:
                break  # come back to the worker loop rather than wait here
            try:
                message = self._reserve_one(deadline)
            except Empty:
                break
            taken += 1
            state.calls += 1
            try:
                handler(message)
            except BaseException as error:
                try:
                    on_error(message, error)
                except Exception:
                    _log.exception("flinq: handling a failed message went wrong")
                finally:
                    if not message._settled:  # on_error failed: never strand it
                        message._settled = True
                        self._counts[NOTE_NACKED] += 1
                        message._back_from_delay()
                if not isinstance(error, Exception):
                    raise
            else:
                if not message._settled:
                    message._settled = True
                    self._acked()
        return taken

    def _done(self, Py_ssize_t n):
        """task_done() n times at once, for the durable layer's batched
        acks. Not part of the public API."""
        if not 0 <= n <= self._unfinished:
            raise ValueError("task_done() called too many times")
        self._unfinished -= n
        if n and self._unfinished == 0:
            self._signal(WATCH_DONE, 1)

    def _note(self, int kind, Py_ssize_t n=1):
        """Count n events of a kind (NOTE_ACKED, ...) that the durable layer
        settles itself. Not part of the public API."""
        if not 0 <= kind < 5:
            raise ValueError("unknown kind")
        self._counts[kind] += n

    __class_getitem__ = classmethod(GenericAlias)

    def __reduce__(self):
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __repr__(self):
        return f"<flinq.{type(self).__name__} depth={self._count} maxsize={self._maxsize}>"


cdef void _queue_after_fork(PyObject *owner) noexcept:
    cdef _QueueCore q = <_QueueCore>owner
    cdef _HeapStorage heap
    cdef Py_ssize_t stored
    flq_park_after_fork_in_child(&q._not_empty)
    flq_park_after_fork_in_child(&q._not_full)
    flq_park_after_fork_in_child(&q._all_done)
    # Counts of what other threads were doing, which they will not finish
    # here: waiting for room in a batch, holding room while `<` ran or while
    # the durable layer logged.
    q._batch_putters = 0
    q._pushing = 0
    if isinstance(q._store, _HeapStorage):
        # A compared put_many or get_many is the one operation that can stop
        # between entries (in `<`, when the GIL passes): heap.h finishes or
        # undoes each push and pop before it compares for the next, but the
        # entries moved so far were not counted. Count what the heap holds:
        # items pushed are the child's, items popped left with their thread.
        heap = <_HeapStorage>q._store
        stored = <Py_ssize_t>(heap._heap.size + heap._keyed.size)
        if stored > q._count:
            q._unfinished += stored - q._count
            flq_metrics_arrived(&q._metrics, <uint64_t>(stored - q._count))
            heap._seq += <uint64_t>(stored - q._count)  # arrival numbers the pushes used
        q._count = stored


cdef class SimpleQueue(_QueueCore):
    """An unbounded FIFO queue, drop-in for queue.SimpleQueue."""

    def __init__(self):
        pass


# The queue kinds flinq defines; a subclass of one of them from elsewhere is
# checked once for overridden storage hooks.
_HOOKS = ("_put", "_get", "_qsize", "_init")
_hooks_by_class = _weakref.WeakKeyDictionary()


def _overrides_hooks(cls):
    """True if cls replaces any of queue.Queue's storage hooks."""
    try:
        return _hooks_by_class[cls]
    except KeyError:
        pass
    kind = next(k for k in cls.__mro__ if k in _KINDS)
    overrides = any(getattr(cls, name) is not getattr(kind, name) for name in _HOOKS)
    _hooks_by_class[cls] = overrides
    return overrides


cdef class Queue(_QueueCore):
    """A FIFO queue, drop-in for queue.Queue. maxsize <= 0 means unbounded.

    LifoQueue and PriorityQueue derive from it, as in the stdlib. A subclass
    that overrides the stdlib's storage hooks (_put, _get, _qsize, _init)
    has them honoured: its put/get/qsize/empty/full/task_done/join/shutdown
    then follow queue.Queue's algorithm over those hooks, with the stdlib's
    mutex and conditions as attributes (slower, and without flinq's batch,
    reserve and consume methods, which raise TypeError there).
    """

    def __init__(self, maxsize=0):
        self._set_maxsize(maxsize)
        if self._hooked:
            _hooked_init(self, maxsize)

    @property
    def maxsize(self):
        """The bound; <= 0 means unbounded. Assigning grows or shrinks it, and
        waiting putters see the change at once."""
        return self._maxsize

    @maxsize.setter
    def maxsize(self, value):
        self._set_maxsize(value)
        if self._hooked:
            with self.not_full:
                self.not_full.notify_all()
        else:
            self._signal(WATCH_ROOM, 1)

    @property
    def unfinished_tasks(self):
        """Items put and not yet marked done by task_done()."""
        return self._unfinished

    def full(self):
        """True if the queue is bounded and holds maxsize items now."""
        if self._hooked:
            return _hooked_full(self)
        return self._limit != 0 and self._count + self._pushing >= self._limit

    def task_done(self):
        """Mark one item taken by get() as processed (for join())."""
        if self._hooked:
            return _hooked_task_done(self)
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0:
            self._signal(WATCH_DONE, 1)

    def join(self):
        """Wait until every item put has been marked done by task_done()."""
        cdef uint32_t key
        if self._hooked:
            return _hooked_join(self)
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
        if self._hooked:
            return _hooked_shutdown(self, immediate)
        self._shutdown(immediate)

    @property
    def is_shutdown(self):
        """True once shutdown() has been called."""
        return self._is_shutdown

    def clear(self):
        """Remove every queued item, counting each as done (so join() does
        not wait for them); returns how many were removed. What `with
        q.mutex: q.queue.clear()` does for a queue.Queue, minus its join()
        hang."""
        cdef Py_ssize_t before = self._count
        if self._hooked:
            raise _hooks_refuse("clear")
        self._discard_all()
        self._signal(WATCH_ROOM, 1)
        return before

    # ---- the stdlib's storage hooks, over flinq's storage ----------------------------
    # Called only by a subclass's own overrides (Queue._put(self, item), say):
    # flinq's own put and get do not go through them.

    def _init(self, maxsize):
        """The stdlib's hook to create storage: flinq's exists already."""

    def _qsize(self):
        """Items in flinq's storage."""
        return self._count

    def _put(self, item):
        """Store one item in flinq's storage (put() does the accounting)."""
        self._store.push(item, 0, False)
        self._count += 1
        flq_metrics_arrived(&self._metrics, 1)

    def _get(self):
        """Take the next item from flinq's storage (get() does the accounting)."""
        item = self._take_one() if self._count else _NOTHING
        if item is _NOTHING:
            raise IndexError("_get() from an empty queue")
        return item

    # ---- for the durable layer ---------------------------------------------------------

    def _hold_room(self, n, block=True, timeout=None):
        """Wait, as put_many(n items) would, until n items fit, then hold
        that room until _push_held or _release_room. Raises what put_many
        raises (Full, ShutDown, ValueError) and then holds nothing. For the
        durable queues, which log an item between finding it room and
        storing it. Not part of the public API."""
        cdef Py_ssize_t count = n
        if self._is_shutdown:
            raise ShutDown
        if self._limit:
            if count > self._limit:
                raise ValueError(f"{count} items can never fit in maxsize={self._limit}")
            if self._count + self._pushing + count > self._limit or timeout is not None:
                self._wait_for_room(count, block, timeout)
        self._pushing += count

    def _release_room(self, n):
        """Give back room held by _hold_room without storing anything."""
        cdef Py_ssize_t count = n
        self._pushing -= count
        if self._limit:
            self._signal(WATCH_ROOM, 1)

    def _push_held(self, items, priority=None):
        """Store items into the room _hold_room held for them."""
        cdef Py_ssize_t count = len(items)
        self._pushing -= count
        self._restore(items, priority)

    def _restore(self, items, priority=None):
        """Put items back without waiting for room or checking shutdown: for
        items that already held a place in this queue (redelivery, reloading
        a durable queue). Not part of the public API."""
        cdef object batch = PySequence_Tuple(items)  # ours: see _put_many
        cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(batch)
        if n:
            if priority is None:
                self._push(PySequence_Fast_ITEMS(batch), n, 0, False)
            else:
                self._push(PySequence_Fast_ITEMS(batch), n, _priority_value(priority), True)


cdef class LifoQueue(Queue):
    """A LIFO queue, drop-in for queue.LifoQueue. maxsize <= 0 means unbounded."""




# ---- a subclass's storage hooks, honoured ------------------------------------------
# queue.Queue's algorithm, over the hooks and the stdlib's mutex and three
# conditions, which live on the instance as in the stdlib (so that a
# subclass can use them). The counters are flinq's own.

cdef object _hooks_refuse(str method):
    return TypeError(f"{method}() needs flinq's own storage, and this subclass overrides "
                     "_put/_get/_qsize/_init; use put() and get()")


cdef _hooked_init(Queue q, maxsize):
    q._init(maxsize)
    q.mutex = _threading.Lock()
    q.not_empty = _threading.Condition(q.mutex)
    q.not_full = _threading.Condition(q.mutex)
    q.all_tasks_done = _threading.Condition(q.mutex)


cdef double _hooked_timeout(object timeout) except -1:
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return float(timeout)


cdef _hooked_put(Queue q, item, bint block, timeout):
    cdef double deadline
    cdef double left
    with q.not_full:
        if q._is_shutdown:
            raise ShutDown
        if q._limit:
            if not block:
                if q._qsize() >= q._maxsize:
                    raise Full
            elif timeout is None:
                while q._qsize() >= q._maxsize:
                    q.not_full.wait()
                    if q._is_shutdown:
                        raise ShutDown
            else:
                deadline = _time.monotonic() + _hooked_timeout(timeout)
                while q._qsize() >= q._maxsize:
                    left = deadline - _time.monotonic()
                    if left <= 0.0:
                        raise Full
                    q.not_full.wait(left)
                    if q._is_shutdown:
                        raise ShutDown
        q._put(item)
        q._unfinished += 1
        q.not_empty.notify()


cdef _hooked_get(Queue q, bint block, timeout):
    cdef double deadline
    cdef double left
    with q.not_empty:
        if q._is_shutdown and not q._qsize():
            raise ShutDown
        if not block:
            if not q._qsize():
                raise Empty
        elif timeout is None:
            while not q._qsize():
                q.not_empty.wait()
                if q._is_shutdown and not q._qsize():
                    raise ShutDown
        else:
            deadline = _time.monotonic() + _hooked_timeout(timeout)
            while not q._qsize():
                left = deadline - _time.monotonic()
                if left <= 0.0:
                    raise Empty
                q.not_empty.wait(left)
                if q._is_shutdown and not q._qsize():
                    raise ShutDown
        item = q._get()
        q.not_full.notify()
        return item


cdef _hooked_qsize(Queue q):
    with q.mutex:
        return q._qsize()


cdef _hooked_full(Queue q):
    with q.mutex:
        return 0 < q._maxsize <= q._qsize()


cdef _hooked_task_done(Queue q):
    with q.all_tasks_done:
        if q._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        q._unfinished -= 1
        if q._unfinished == 0:
            q.all_tasks_done.notify_all()


cdef _hooked_join(Queue q):
    with q.all_tasks_done:
        while q._unfinished:
            q.all_tasks_done.wait()


cdef _hooked_shutdown(Queue q, bint immediate):
    with q.mutex:
        q._is_shutdown = True
        if immediate:
            while q._qsize():
                q._get()
                if q._unfinished > 0:
                    q._unfinished -= 1
            q.all_tasks_done.notify_all()
        q.not_empty.notify_all()
        q.not_full.notify_all()


cdef inline int64_t _priority_value(object priority) except? -1:
    if not isinstance(priority, int):
        raise TypeError(f"priority must be an int, not {type(priority).__name__}")
    if not -2 ** 63 <= priority < 2 ** 63:
        raise OverflowError("priority must fit in a signed 64-bit integer")
    return priority


cdef class PriorityQueue(Queue):
    """A priority queue, drop-in for queue.PriorityQueue: lowest first.

    put(item) compares items with `<`, as heapq does. put(item, priority=n)
    with an int n orders by n in C instead (FIFO among equal n) and get()
    returns the item itself. A queue keeps the style of its first put; mixing
    the two raises TypeError.
    """

    def put(self, item, block=True, timeout=None, *, priority=None):
        """Put item, ordered by priority if given, else by comparing items."""
        if priority is None:
            self._enqueue(item, 0, False, block, timeout)
        else:
            self._enqueue(item, _priority_value(priority), True, block, timeout)

    def put_nowait(self, item, *, priority=None):
        """Put item without blocking; raise queue.Full if there is no room."""
        self.put(item, False, None, priority=priority)

    def put_many(self, items, block=True, timeout=None, *, priority=None):
        """Put every item of items with the same priority (or compared), in
        order, as one batch: all or nothing; see Queue.put_many."""
        if priority is None:
            self._put_many(items, 0, False, block, timeout)
        else:
            self._put_many(items, _priority_value(priority), True, block, timeout)


_KINDS = frozenset((SimpleQueue, Queue, LifoQueue, PriorityQueue))


# ---- the stdlib's internals that flinq does not have ----------------------------
# queue.Queue exposes its lock, conditions and deque; code that reaches for
# them gets an AttributeError that says what to use instead. These are
# non-data descriptors, so a subclass that overrides the storage hooks (and
# so gets a real mutex and conditions, see Queue) sets its own on the instance.

@cython.final
cdef class _Missing:
    cdef str message

    def __get__(self, obj, cls):
        if obj is None:
            return self
        raise AttributeError(f"flinq.{type(obj).__name__} {self.message}")


_MISSING = {
    "mutex": "has no mutex: each of its methods is atomic on its own. To empty it, "
             "call q.clear() (which also counts the items as done for join()).",
    "queue": "keeps its items in C, not in a deque: q.clear() empties it, q.qsize() "
             "counts, q.get_many(n) takes up to n items.",
    "not_empty": "has no condition variables: wait with get(timeout=...).",
    "not_full": "has no condition variables: wait with put(timeout=...).",
    "all_tasks_done": "has no condition variables: wait with join().",
}


cdef _install_missing():
    cdef PyTypeObject *cls = <PyTypeObject *><void *>Queue
    cdef _Missing missing
    for name, message in _MISSING.items():
        missing = _Missing.__new__(_Missing)
        missing.message = f"{message} (it has no {name!r})"
        (<dict><object>cls.tp_dict)[name] = missing
    PyType_Modified(cls)


# ---- garbage collection --------------------------------------------------------
# Items live in C structures that Cython's generated tp_traverse/tp_clear do
# not know about. These slots extend them, so that a queue caught in a
# reference cycle (say, holding an object that refers to the queue) is
# collected like the stdlib's queues.

cdef extern from "Python.h":
    ctypedef int (*visitproc)(PyObject *, void *) noexcept
    ctypedef int (*traverseproc)(PyObject *, visitproc, void *) noexcept
    ctypedef int (*inquiry)(PyObject *) noexcept
    ctypedef struct _TypeSlots "PyTypeObject":
        traverseproc tp_traverse
        inquiry tp_clear

cdef traverseproc _core_traverse = (<_TypeSlots *><void *>_QueueCore).tp_traverse


cdef int _queue_traverse(PyObject *o, visitproc visit, void *arg) noexcept:
    cdef int r = _core_traverse(o, visit, arg)
    if r:
        return r
    cdef _QueueCore q = <_QueueCore><object>o
    if q._store is None:
        return 0
    return q._store.visit(<_item_visitor>visit, arg)


cdef int _queue_clear(PyObject *o) noexcept:
    # Break cycles through the items by swapping in an empty storage of the
    # same kind: the old one releases them in its __dealloc__, with no
    # comparison run, and the queue stays usable (and empty) for any
    # finalizer that still reaches it.
    cdef _QueueCore q = <_QueueCore><object>o
    if q._store is not None and q._count:
        old = q._store
        q._attach(type(old)())
        if isinstance(old, _HeapStorage):  # arrival numbers go on (metrics.h)
            (<_HeapStorage>q._store)._seq = (<_HeapStorage>old)._seq
        q._wrapped = 0
        q._discarded += <uint64_t>q._count
        q._count = 0
        del old
    return 0


cdef _install_gc_slots():
    for cls in (_QueueCore, SimpleQueue, Queue, LifoQueue, PriorityQueue):
        (<_TypeSlots *><void *>cls).tp_traverse = _queue_traverse
        (<_TypeSlots *><void *>cls).tp_clear = _queue_clear


_install_gc_slots()


# ---- lean entry points for put() and get() ------------------------------------------
# Cython's generic argument parser costs about as much as the rest of a put or
# a get (measured with callgrind: ~60 of ~140 instructions per put), and on
# 3.12+ its reference counting of defaults costs more again. put() and get()
# are the hottest calls there are, so they are METH_FASTCALL functions that
# take the common call (put(item), get()) straight through and parse anything
# else with one small parser, added to the type's dict here.

cdef object _PY_TRUE = True

cdef extern from "Python.h":
    ctypedef struct PyMethodDef:
        const char *ml_name
        void *ml_meth
        int ml_flags
        const char *ml_doc
    int METH_FASTCALL
    int METH_KEYWORDS
    object PyDescr_NewMethod(PyTypeObject *cls, PyMethodDef *method)
    void PyType_Modified(PyTypeObject *cls)
    Py_ssize_t PyTuple_GET_SIZE(PyObject *t)
    PyObject *PyTuple_GET_ITEM(PyObject *t, Py_ssize_t i)
    int PyUnicode_Compare(PyObject *a, PyObject *b) except? -1


cdef int _parse_args(str method, tuple names, Py_ssize_t required, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames, PyObject **slots) except -1:
    """Fill slots[i] (preset with defaults, NULL for required ones) with the
    arguments of a METH_FASTCALL call, raising TypeError as Python would."""
    cdef Py_ssize_t i
    cdef Py_ssize_t k
    cdef Py_ssize_t most = len(names)
    cdef PyObject *name
    if nargs > most:
        raise TypeError(f"{method}() takes at most {most} positional arguments "
                        f"({nargs} given)")
    for i in range(nargs):
        slots[i] = args[i]
    if kwnames != NULL:
        for i in range(PyTuple_GET_SIZE(kwnames)):
            name = PyTuple_GET_ITEM(kwnames, i)
            for k in range(most):
                if PyUnicode_Compare(name, <PyObject *>names[k]) == 0:
                    break
            else:
                raise TypeError(f"{method}() got an unexpected keyword argument {<object>name!r}")
            if k < nargs:
                raise TypeError(f"{method}() got multiple values for argument {<object>name!r}")
            slots[k] = args[nargs + i]
    for i in range(required):
        if slots[i] == NULL:
            raise TypeError(f"{method}() missing required argument {names[i]!r}")
    return 0


cdef tuple _PUT_ARGS = ("item", "block", "timeout")
cdef tuple _GET_ARGS = ("block", "timeout")


cdef PyObject *_put_fastcall(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) except NULL:
    cdef PyObject *slots[3]
    if kwnames == NULL and nargs == 1:  # put(item): the common call
        (<_QueueCore>self)._enqueue(<object>args[0], 0, False, True, None)
        Py_INCREF(None)
        return <PyObject *>None
    slots[0] = NULL
    slots[1] = <PyObject *>_PY_TRUE  # the default block=True, as an object
    slots[2] = <PyObject *>None
    _parse_args("put", _PUT_ARGS, 1, args, nargs, kwnames, slots)
    (<_QueueCore>self)._enqueue(<object>slots[0], 0, False, <object>slots[1], <object>slots[2])
    Py_INCREF(None)
    return <PyObject *>None


cdef PyObject *_get_fastcall(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) except NULL:
    cdef PyObject *slots[2]
    cdef _QueueCore q = <_QueueCore>self
    cdef object item
    if kwnames == NULL and nargs == 0:  # get(): the common call
        if q._count and not q._hooked:
            item = q._take_one()
            if item is not _NOTHING:
                Py_INCREF(item)
                return <PyObject *>item
        item = q._dequeue(True, None)
    else:
        slots[0] = <PyObject *>_PY_TRUE
        slots[1] = <PyObject *>None
        _parse_args("get", _GET_ARGS, 0, args, nargs, kwnames, slots)
        item = q._dequeue(<object>slots[0], <object>slots[1])
    Py_INCREF(item)
    return <PyObject *>item


cdef PyMethodDef _put_method
_put_method.ml_name = "put"
_put_method.ml_meth = <void *>_put_fastcall
_put_method.ml_flags = METH_FASTCALL | METH_KEYWORDS
_put_method.ml_doc = (
    "put($self, /, item, block=True, timeout=None)\n--\n\n"
    "Put item into the queue, waiting for a free slot if the queue is\n"
    "bounded and full (block=False or a timeout: raise queue.Full)."
)

cdef PyMethodDef _get_method
_get_method.ml_name = "get"
_get_method.ml_meth = <void *>_get_fastcall
_get_method.ml_flags = METH_FASTCALL | METH_KEYWORDS
_get_method.ml_doc = (
    "get($self, /, block=True, timeout=None)\n--\n\n"
    "Remove and return the next item, waiting if the queue is empty\n"
    "(block=False or a timeout: raise queue.Empty; shut down: ShutDown)."
)


cdef _install_fastcall_methods():
    cdef PyTypeObject *cls = <PyTypeObject *><void *>_QueueCore
    (<dict><object>cls.tp_dict)["put"] = PyDescr_NewMethod(cls, &_put_method)
    (<dict><object>cls.tp_dict)["get"] = PyDescr_NewMethod(cls, &_get_method)
    PyType_Modified(cls)


_install_fastcall_methods()
_install_missing()
