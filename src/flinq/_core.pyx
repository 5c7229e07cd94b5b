# cython: language_level=3, embedsignature=True, embedsignature.format=clinic, binding=False, boundscheck=False, wraparound=False, cdivision=True
"""Queue types over flinq's C structures.

This file holds the behaviour; the rest is included, one job a file:
  _waiting.pxi      deadlines, sleeping on a park, what fork() leaves behind
  _messages.pxi     _Redelivery, LocalMessage (reserve/ack/nack), WorkerState
  _storage.pxi      the storages (interface declared in _core.pxd)
  _subclassing.pxi  honoured subclass hooks; the stdlib internals flinq lacks
  _entry_points.pxi hand-written type slots: GC traverse/clear, fast put/get
  _backend.pxi      for code built on a queue: BackendAccess (what a durable
                    backend may do to the queue holding its ready messages)
                    and serve() (a consume() worker's loop)

Two axes, kept apart:
  - storage (where items live): _ChainStorage over include/flinq/chain.h for
    FIFO, _HeapStorage over include/flinq/buckets.h and heap.h for priority
    and LIFO;
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
    flq_metrics_rates, flq_metrics_returned,
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
from flinq.protocols import BY_APPLICATION, NACKED, describe_error  # why a message is dead-lettered

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

# Kinds of event a durable backend reports through BackendAccess.note (indexes
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


include "_waiting.pxi"


include "_messages.pxi"


include "_storage.pxi"


# ---- behaviour ---------------------------------------------------------------------

cdef class _QueueCore:
    """Behaviour shared by every flinq queue; storage is a _Storage object."""

    cdef _Storage _store
    cdef flq_chain *_fifo           # storage's chain if it is a _ChainStorage, else NULL (put()'s fast path)
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
        self._fifo = (<_ChainStorage>store).chain if type(store) is _ChainStorage else NULL
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
    cdef inline void _count_redelivered(self, Py_ssize_t n) noexcept:
        """n items are stored again after a delivery (before _stored counts
        them as arrivals: see flq_metrics_returned)."""
        self._counts[NOTE_REDELIVERED] += n
        flq_metrics_returned(&self._metrics, n)  # the enqueue rates count puts only

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
                    slept = sleep_on_park(&self._not_full, key, deadline) == 0
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
            elif sleep_on_park(&self._not_empty, key, deadline):
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
        the last 1, 10 and 60 s: enqueue_rate_1s ... dequeue_rate_60s, the
        rates of enqueued (puts; redeliveries are not counted) and dequeued
        (every take, redeliveries included).
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
            "enqueued": m.arrived - m.returned,
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

    @property
    def async_q(self):
        """This queue's asyncio face (flinq.aio.async_queue): asyncio.Queue's
        API over the same items, usable beside threads."""
        from flinq.aio import async_queue
        return async_queue(self)

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
        self._count_redelivered(1)  # before _stored: see flq_metrics_returned
        self._stored(1)
        self._unfinished -= 1  # _stored counted it as new
        return 0

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
    """SimpleQueue()
--

An unbounded FIFO queue, drop-in for queue.SimpleQueue."""

    def __init__(self):
        pass


cdef class Queue(_QueueCore):
    """Queue(maxsize=0)
--

A FIFO queue, drop-in for queue.Queue. maxsize <= 0 means unbounded.

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
                sleep_on_park(&self._all_done, key, -1)

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


cdef class LifoQueue(Queue):
    """LifoQueue(maxsize=0)
--

A LIFO queue, drop-in for queue.LifoQueue. maxsize <= 0 means unbounded."""




cdef class PriorityQueue(Queue):
    """PriorityQueue(maxsize=0)
--

A priority queue, drop-in for queue.PriorityQueue: lowest first.

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


# The queue kinds this module defines (a subclass of one from elsewhere is
# checked for overridden storage hooks: _subclassing.pxi).
_KINDS = frozenset((SimpleQueue, Queue, LifoQueue, PriorityQueue))

include "_backend.pxi"

include "_subclassing.pxi"
include "_entry_points.pxi"
