# cython: language_level=3, embedsignature=True, binding=False, boundscheck=False, wraparound=False, cdivision=True
"""ArrayQueue: a bounded FIFO of fixed-size numpy records over
include/flinq/records.h.

Records cross the queue as bytes: put_many copies a whole array into the
ring with one memcpy (two when it wraps) and get_many copies them out into
a new or given array, with no Python object per record. numpy is imported
when the first ArrayQueue is made, never when this module is: the copies go
through the buffer protocol, so `import flinq` needs no numpy.

Threads. The ring is multi-producer / multi-consumer and lock-free, and the
copies of batches of at least GIL_FREE_BYTES run with the GIL released, so
producers and consumers copy at the same time. Everything else (validation,
waiting, counters of this handle) runs with the GIL held. Waiting uses
flinq/park.h; a waiter prepares and re-checks its condition with the GIL
held, and whoever moves a ring counter notifies after re-taking the GIL, so
the GIL orders the two sides and flq_park_notify_locked needs no fence.

Lifetime. close() frees the ring at once when no thread of this process is
copying without the GIL (`_copying`), else the last such thread frees it.
"""

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport UINT64_MAX, int64_t, uint32_t, uint64_t

from flinq._headers cimport (
    flq_now_ns, flq_park, flq_park_cancel, flq_park_destroy, flq_park_init,
    flq_park_notify_locked, flq_park_prepare, flq_park_wait,
)

import queue as _stdlib_queue
import threading as _threading

from flinq._compat import ShutDown

Empty = _stdlib_queue.Empty
Full = _stdlib_queue.Full


cdef extern from "flinq/alloc.h" nogil:
    void *flq_aligned_alloc(size_t size, size_t align)
    void flq_aligned_free(void *p)


cdef extern from "flinq/records.h" nogil:
    ctypedef struct flq_records:
        uint64_t record_size
        uint64_t capacity
        uint64_t total_size
        uint64_t reserved
        uint64_t published
        uint64_t claimed
        uint64_t released
        uint64_t discarded
    uint32_t FLQ_RECORDS_OPEN
    uint32_t FLQ_RECORDS_SHUTDOWN
    uint32_t FLQ_RECORDS_SHUTDOWN_IMMEDIATE
    uint64_t flq_records_block_size(uint64_t record_size, uint64_t capacity)
    flq_records *flq_records_init(void *block, uint64_t record_size, uint64_t capacity)
    uint64_t flq_records_size(flq_records *r)
    uint64_t flq_records_room(flq_records *r)
    uint32_t flq_records_state(flq_records *r)
    void flq_records_set_state(flq_records *r, uint32_t state)
    int flq_records_try_put(flq_records *r, const void *src, uint64_t n)
    uint64_t flq_records_try_get(flq_records *r, void *dst, uint64_t max)
    uint64_t flq_records_discard(flq_records *r)
    uint64_t flq_load_u64_acquire(const uint64_t *p)


cdef extern from "Python.h":
    int PyErr_CheckSignals()

#: Batches at least this large are copied with the GIL released. A smaller
#: copy takes a few microseconds, less than handing the GIL to another
#: thread and back (measured: 1 producer and 1 consumer thread moving int64
#: batches of 4096 went faster holding the GIL for the 32 KiB copies).
GIL_FREE_BYTES = 65536
cdef uint64_t _gil_free_bytes = GIL_FREE_BYTES

# Signals reach Python only in the main thread, and a condition-variable
# wait does not return on a signal, so the main thread sleeps in slices this
# long and runs pending signal handlers between them (prompt Ctrl-C).
cdef int64_t SIGNAL_SLICE_NS = 50 * 1000 * 1000

cdef object _numpy = None


cdef object _np():
    """numpy, imported on first use (ArrayQueue is its only user in flinq)."""
    global _numpy
    if _numpy is None:
        try:
            import numpy
        except ImportError:
            raise ImportError("flinq.ArrayQueue needs numpy: pip install 'flinq[numpy]'") from None
        _numpy = numpy
    return _numpy


cdef int64_t _deadline(bint block, object timeout) except -2:
    """Absolute monotonic deadline in ns for a wait, or -1 for none."""
    if not block or timeout is None:
        return -1
    cdef double seconds = float(timeout)
    if not seconds >= 0:  # negative or NaN
        raise ValueError("'timeout' must be a non-negative number")
    if seconds > 1e9:  # ~31 years: no limit rather than an overflow
        return -1
    return flq_now_ns() + <int64_t>(seconds * 1e9)


cdef int _sleep(flq_park *park, uint32_t key, int64_t deadline) except -1:
    """Sleep on park (prepared with key) until notified, a spurious wake-up
    or the deadline (-1: none). Returns 1 when the deadline had passed, else
    0. Raises what a signal handler raises (main thread only)."""
    cdef int64_t timeout_ns = -1
    cdef int64_t now
    cdef bint in_main = _threading.current_thread() is _threading.main_thread()
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
            # The wake-up we consumed was meant for someone; pass it on.
            flq_park_notify_locked(park, 0)
        return -1
    return 0


cdef bint _same_values(object converted, object given):
    """Whether converted (from ndarray.tolist()) holds exactly the values of
    given (the caller's Python data), sequence by sequence."""
    if not isinstance(converted, (list, tuple)) and hasattr(converted, "tolist"):
        converted = converted.tolist()  # tolist() leaves some subarray fields as arrays
    if isinstance(converted, (list, tuple)):
        if isinstance(given, (str, bytes)):
            return False
        try:
            if len(given) != len(converted):
                return False
            return all(_same_values(c, g) for c, g in zip(converted, given))
        except TypeError:
            return False
    try:
        if converted == given:
            return True
        return converted != converted and given != given  # NaN stays NaN
    except (TypeError, ValueError):
        return False


cdef class ArrayQueue:
    """A bounded FIFO of fixed-size records of one numpy dtype.

    ArrayQueue(dtype, capacity, *, shared=False): capacity records of
    numpy.dtype(dtype) (scalars, fixed-shape subarrays such as ("f4", (3,)),
    structured dtypes; no object fields). A subarray dtype's records come
    out as arrays of its shape: ArrayQueue(("f4", (3,)), n).get_many(k)
    has shape (k, 3) and dtype float32.

    What goes in must convert without loss. Arrays and numpy scalars cast
    under numpy's "safe" rule (numpy.can_cast(src, dtype, "safe")). Python
    numbers and sequences are converted by numpy and refused unless every
    value comes back unchanged (0.5 fits float32, 0.1 does not). A lossy
    input raises TypeError, a shape that is not the record's (put) or a
    batch of records (put_many) raises ValueError; a failed call changes
    nothing.
    """

    cdef flq_records *_ring
    cdef void *_block               # what _ring lives in, freed by _free_ring
    cdef object _dtype              # as numpy.dtype(dtype) made it
    cdef object _base               # element dtype of a record's array
    cdef tuple _shape               # a record's array shape; () unless subarray
    cdef tuple _batch_tail          # (0,) + _shape, for empty batches
    cdef uint64_t _record_size
    cdef uint64_t _capacity
    cdef bint _parks_ready
    cdef bint _closed
    cdef Py_ssize_t _copying        # threads of this handle copying without the GIL
    cdef flq_park _not_empty
    cdef flq_park _not_full
    cdef object __weakref__

    def __cinit__(self, *args, **kwargs):
        if flq_park_init(&self._not_empty) != 0:
            raise MemoryError("cannot create a wait primitive")
        if flq_park_init(&self._not_full) != 0:
            flq_park_destroy(&self._not_empty)
            raise MemoryError("cannot create a wait primitive")
        self._parks_ready = True

    def __init__(self, dtype, capacity, *, shared=False):
        np = _np()
        if self._ring != NULL:
            raise TypeError("ArrayQueue.__init__ may run only once")
        if not isinstance(capacity, int) or isinstance(capacity, bool):
            raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if shared:
            raise NotImplementedError("ArrayQueue(shared=True) is not available yet")
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise TypeError(f"ArrayQueue records hold bytes; {dt} has Python object fields")
        if dt.itemsize == 0:
            raise ValueError(f"ArrayQueue records must have a size; {dt} has none")
        cdef uint64_t size = flq_records_block_size(dt.itemsize, capacity) if capacity < 2 ** 62 else 0
        if size == 0 or size >= <uint64_t>(2 ** 62):
            raise ValueError(f"capacity {capacity} of {dt.itemsize}-byte records is too large")
        if dt.subdtype is not None:
            self._base, self._shape = dt.subdtype
        else:
            self._base, self._shape = dt, ()
        self._dtype = dt
        self._batch_tail = (0,) + self._shape
        self._record_size = dt.itemsize
        self._capacity = capacity
        self._block = flq_aligned_alloc(<size_t>size, 64)
        if self._block == NULL:
            raise MemoryError(f"cannot allocate {size} bytes for the ring")
        self._ring = flq_records_init(self._block, self._record_size, self._capacity)

    def __dealloc__(self):
        self._free_ring()
        if self._parks_ready:
            flq_park_destroy(&self._not_empty)
            flq_park_destroy(&self._not_full)

    cdef void _free_ring(self) noexcept:
        if self._block != NULL:
            flq_aligned_free(self._block)
            self._block = NULL
            self._ring = NULL

    def __reduce__(self):
        raise TypeError("an in-process ArrayQueue cannot be pickled")

    # ---- properties ---------------------------------------------------------------

    @property
    def dtype(self):
        """The record dtype, as numpy.dtype(dtype) made it."""
        return self._dtype

    @property
    def capacity(self):
        """How many records the queue holds at most."""
        return self._capacity

    @property
    def shared(self):
        """Whether the ring lives in shared memory."""
        return False

    @property
    def is_shutdown(self):
        """True once shutdown() has been called."""
        return self._ring != NULL and flq_records_state(self._ring) != FLQ_RECORDS_OPEN

    @property
    def closed(self):
        """True once close() has been called."""
        return self._closed

    # ---- conversions (GIL held) ----------------------------------------------------

    cdef flq_records *_open_ring(self) except NULL:
        if self._closed:
            raise ValueError("ArrayQueue is closed")
        if self._ring == NULL:
            raise ValueError("ArrayQueue was not initialized")
        return self._ring

    cdef object _records(self, object value, bint batch):
        """value as a C-contiguous array of records of the queue's element
        dtype: shape (n,) + record shape if batch, else the record shape."""
        np = _np()
        if isinstance(value, (np.ndarray, np.generic)):
            arr = np.asarray(value)
            if arr.dtype != self._base:
                if not np.can_cast(arr.dtype, self._base, casting="safe"):
                    raise TypeError(f"cannot put {arr.dtype} into an ArrayQueue of {self._dtype} "
                                    "without loss (numpy's 'safe' casting)")
                arr = arr.astype(self._base)
        else:
            try:
                with np.errstate(over="raise", invalid="raise"):
                    arr = np.array(value, dtype=self._base)
            except (OverflowError, FloatingPointError) as error:
                raise TypeError(f"{value!r:.60} does not fit {self._dtype}: {error}") from None
            if not _same_values(arr.tolist(), value):
                raise TypeError(f"{value!r:.60} would change when stored as {self._dtype}")
        cdef tuple shape = arr.shape
        if batch:
            if len(shape) != 1 + len(self._shape) or shape[1:] != self._shape:
                raise ValueError(f"put_many() takes an array of shape (n,) + {self._shape} "
                                 f"for records of {self._dtype}, not {shape}")
        elif shape != self._shape:
            raise ValueError(f"a record of {self._dtype} has shape {self._shape}, not {shape}")
        return np.ascontiguousarray(arr)

    # ---- the two copies ------------------------------------------------------------

    cdef int _put_array(self, object arr, uint64_t n, bint block, object timeout) except -1:
        """Put the n records of the C-contiguous array arr, all or none."""
        cdef Py_buffer view
        cdef int64_t deadline = _deadline(block, timeout)
        cdef flq_records *ring = self._open_ring()
        cdef uint32_t key
        cdef int stored
        if n > self._capacity:
            raise ValueError(f"put_many() of {n} records can never fit in capacity {self._capacity}")
        PyObject_GetBuffer(arr, &view, PyBUF_C_CONTIGUOUS)
        try:
            while True:
                ring = self._open_ring()
                if flq_records_state(ring) != FLQ_RECORDS_OPEN:
                    raise ShutDown
                if n * self._record_size >= _gil_free_bytes:
                    self._copying += 1
                    with nogil:
                        stored = flq_records_try_put(ring, view.buf, n)
                    self._copied()
                else:
                    stored = flq_records_try_put(ring, view.buf, n)
                if stored:
                    flq_park_notify_locked(&self._not_empty, n > 1)
                    if self._closed:  # closed while we copied: the ring may be gone
                        return 0
                    if flq_records_state(ring) == FLQ_RECORDS_SHUTDOWN_IMMEDIATE:
                        flq_records_discard(ring)  # raced shutdown(immediate=True)
                    return 0
                if not block:
                    raise Full
                key = flq_park_prepare(&self._not_full)
                if (self._closed or flq_records_room(ring) >= n
                        or flq_records_state(ring) != FLQ_RECORDS_OPEN):
                    flq_park_cancel(&self._not_full)
                elif _sleep(&self._not_full, key, deadline):
                    raise Full
        finally:
            PyBuffer_Release(&view)

    cdef void _copied(self) noexcept:
        """A copy without the GIL ended: free the ring if close() waits for it."""
        self._copying -= 1
        if self._closed and self._copying == 0:
            self._free_ring()

    cdef uint64_t _wait_for_records(self, bint block, int64_t deadline) except 0:
        """Records ready now (at least 1), after waiting for them if need be."""
        cdef flq_records *ring
        cdef uint64_t ready
        cdef uint32_t key
        cdef uint32_t state
        while True:
            ring = self._open_ring()
            state = flq_records_state(ring)
            if state == FLQ_RECORDS_SHUTDOWN_IMMEDIATE:
                raise ShutDown
            ready = flq_records_size(ring)
            if ready:
                return ready
            if state != FLQ_RECORDS_OPEN:
                raise ShutDown
            if not block:
                raise Empty
            key = flq_park_prepare(&self._not_empty)
            if self._closed or flq_records_size(ring) or flq_records_state(ring) != FLQ_RECORDS_OPEN:
                flq_park_cancel(&self._not_empty)
            elif _sleep(&self._not_empty, key, deadline):
                raise Empty

    cdef uint64_t _take_into(self, object out, uint64_t limit) except? 0:
        """Copy up to limit ready records into the writable C-contiguous
        array out; returns how many (0 when others took them first)."""
        cdef Py_buffer view
        cdef uint64_t taken
        cdef flq_records *ring = self._open_ring()
        PyObject_GetBuffer(out, &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE)
        try:
            if limit * self._record_size >= _gil_free_bytes:
                self._copying += 1
                with nogil:
                    taken = flq_records_try_get(ring, view.buf, limit)
                self._copied()
            else:
                taken = flq_records_try_get(ring, view.buf, limit)
        finally:
            PyBuffer_Release(&view)
        if taken:
            flq_park_notify_locked(&self._not_full, 1)
        return taken

    # ---- public API ----------------------------------------------------------------

    def put(self, value, block=True, timeout=None):
        """Put one record, waiting for room if the queue is full
        (block=False or a timeout: raise queue.Full; shut down: ShutDown)."""
        self._put_array(self._records(value, False), 1, block, timeout)

    def put_nowait(self, value):
        """Put one record without waiting; raise queue.Full if there is no room."""
        self._put_array(self._records(value, False), 1, False, None)

    def put_many(self, array, block=True, timeout=None):
        """Put every record of array (shape (n,) + the record shape), in
        order, all or none: wait until they all fit (queue.Full on
        block=False or timeout); ValueError if n exceeds the capacity."""
        arr = self._records(array, True)
        cdef uint64_t n = len(arr)
        self._open_ring()
        if n:
            self._put_array(arr, n, block, timeout)

    def get(self, block=True, timeout=None):
        """Remove and return the next record (a numpy scalar, or an array of
        the record shape), waiting if the queue is empty (block=False or a
        timeout: raise queue.Empty; shut down and empty: ShutDown)."""
        np = _np()
        cdef int64_t deadline = _deadline(block, timeout)
        out = np.empty((1,) + self._shape, self._base)
        while True:
            self._wait_for_records(block, deadline)
            if self._take_into(out, 1):
                return out[0]

    def get_nowait(self):
        """Remove and return the next record without waiting; raise queue.Empty."""
        return self.get(False)

    def get_many(self, max_items, *, out=None, block=True, timeout=None):
        """Remove up to max_items records, first first: wait like get() until
        there is one, then take what is there without waiting further.

        Returns a new array of 1..max_items records, or, with out (a
        writable C-contiguous array of the queue's records), fills out from
        the start and returns how many records it filled.
        """
        np = _np()
        if not isinstance(max_items, int) or isinstance(max_items, bool):
            raise TypeError(f"max_items must be an int, not {type(max_items).__name__}")
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        cdef uint64_t limit = min(max_items, UINT64_MAX)
        cdef int64_t deadline = _deadline(block, timeout)
        cdef uint64_t ready
        cdef uint64_t taken
        if out is not None:
            self._check_out(out)
            limit = min(limit, len(out))
        self._open_ring()
        while True:
            ready = self._wait_for_records(block, deadline)
            if out is not None:
                taken = self._take_into(out, limit)
                if taken:
                    return taken
            else:
                result = np.empty((min(ready, limit),) + self._shape, self._base)
                taken = self._take_into(result, len(result))
                if taken:
                    return result if taken == len(result) else result[:taken].copy()

    cdef int _check_out(self, object out) except -1:
        np = _np()
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy array, not {type(out).__name__}")
        if out.dtype != self._base:
            raise TypeError(f"out has dtype {out.dtype}; records of this queue are {self._base}")
        if out.shape[1:] != self._shape or out.ndim != 1 + len(self._shape):
            raise ValueError(f"out must have shape (n,) + {self._shape}, not {out.shape}")
        if len(out) == 0:
            raise ValueError("out has room for no record")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be writable and C-contiguous")
        return 0

    def qsize(self):
        """Records in the queue now."""
        return flq_records_size(self._open_ring())

    def empty(self):
        """True if the queue holds no record now."""
        return flq_records_size(self._open_ring()) == 0

    def full(self):
        """True if the queue has no room for one more record now."""
        return flq_records_room(self._open_ring()) == 0

    def shutdown(self, immediate=False):
        """Shut the queue down: put() raises ShutDown from now on; get()
        returns what is queued, then raises ShutDown. immediate=True also
        discards what is queued and get() raises at once. Every blocked
        caller wakes up."""
        cdef flq_records *ring = self._open_ring()
        if immediate:
            flq_records_set_state(ring, FLQ_RECORDS_SHUTDOWN_IMMEDIATE)
            flq_records_discard(ring)
        else:
            flq_records_set_state(ring, FLQ_RECORDS_SHUTDOWN)
        flq_park_notify_locked(&self._not_empty, 1)
        flq_park_notify_locked(&self._not_full, 1)

    def close(self):
        """Release the ring: every later call but close() raises ValueError,
        and callers blocked in this queue wake up with ValueError."""
        if self._closed:
            return
        self._closed = True
        if self._copying == 0:
            self._free_ring()
        flq_park_notify_locked(&self._not_empty, 1)
        flq_park_notify_locked(&self._not_full, 1)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def stats(self):
        """A snapshot of the queue's counters as a dict: depth (records
        ready now), capacity, record_size and ring_bytes (the ring's memory),
        and totals since creation: enqueued, dequeued, discarded (dropped by
        shutdown(immediate=True)); enqueued = dequeued + discarded + depth
        when nobody is mid-copy."""
        cdef flq_records *ring = self._open_ring()
        cdef uint64_t claimed = flq_load_u64_acquire(&ring.claimed)
        cdef uint64_t published = flq_load_u64_acquire(&ring.published)
        cdef uint64_t discarded = flq_load_u64_acquire(&ring.discarded)
        return {
            "depth": published - claimed if published > claimed else 0,
            "capacity": self._capacity,
            "record_size": self._record_size,
            "ring_bytes": ring.total_size,
            "enqueued": published,
            "dequeued": claimed - discarded,
            "discarded": discarded,
            "shared": False,
            "is_shutdown": flq_records_state(ring) != FLQ_RECORDS_OPEN,
        }

    def __repr__(self):
        state = "closed" if self._closed else f"{self.qsize()}/{self._capacity}"
        return f"<flinq.ArrayQueue {self._dtype} {state}>"
