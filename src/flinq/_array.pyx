# cython: language_level=3, embedsignature=True, embedsignature.format=clinic, binding=False, boundscheck=False, wraparound=False, cdivision=True
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
waiting, counters of this handle) runs with the GIL held.

Waiting. In process: flinq/park.h. A waiter prepares and re-checks its
condition with the GIL held, and whoever moves a ring counter notifies after
re-taking the GIL, so the GIL orders the two sides and
flq_park_notify_locked needs no fence. Shared (shared=True): the ring lives
in a named segment (flinq._segment over flinq/shmseg.h, kind
FLQ_SHM_KIND_ARRAY) and waiters sleep on the ring header's wait words with
flinq/shmwait.h (a futex on Linux), whose fences order the two sides across
processes, after polling for a while without the GIL
(flinq._segment.spin_before_sleep): the other process usually acts within
microseconds, sooner than a futex sleep and wake-up would let us see it.

Shared segment layout: the shmseg.h header (its params: record size,
capacity, length of the dtype text, offset of the ring), the dtype as text
that numpy.lib.format parses back (never pickle) in the rest of the first
META_BYTES, then the records.h block. The handle that created the segment
removes its name at close() or when it is collected; processes that attached
keep their mapping.

Lifetime. close() frees the ring at once when no thread of this handle uses
it without the GIL (`_users`: copying or sleeping), else the last one does.
"""

from cpython.buffer cimport (
    PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer,
)
from libc.stdint cimport UINT64_MAX, int64_t, uint32_t, uint64_t

from libc.string cimport memcpy

from flinq._core cimport deadline_ns, sleep_on_park
from flinq._headers cimport (
    flq_park, flq_park_cancel, flq_park_destroy, flq_park_init, flq_park_notify_locked,
    flq_park_prepare,
)
from flinq._segment cimport (
    Segment, attach_segment, create_segment, map_segment_fd, sleep_on_shm, spin_before_sleep,
)
from flinq._shm cimport (
    FLQ_SHM_KIND_ARRAY, flq_shm_header, flq_shm_populate, flq_shm_publish, flq_shm_wait,
    flq_shm_wait_cancel, flq_shm_wait_notify, flq_shm_wait_prepare,
)

import ast as _ast
import os as _os
import queue as _stdlib_queue
import secrets as _secrets
import sys as _sys

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
        flq_shm_wait items
        flq_shm_wait room
    uint32_t FLQ_RECORDS_OPEN
    uint32_t FLQ_RECORDS_SHUTDOWN
    uint32_t FLQ_RECORDS_SHUTDOWN_IMMEDIATE
    uint64_t flq_records_block_size(uint64_t record_size, uint64_t capacity)
    flq_records *flq_records_init(void *block, uint64_t record_size, uint64_t capacity)
    int flq_records_check(const void *block, uint64_t mapped)
    uint64_t flq_records_size(flq_records *r)
    uint64_t flq_records_room(flq_records *r)
    uint32_t flq_records_state(flq_records *r)
    void flq_records_set_state(flq_records *r, uint32_t state)
    int flq_records_try_put(flq_records *r, const void *src, uint64_t n)
    uint64_t flq_records_try_get(flq_records *r, void *dst, uint64_t max)
    uint64_t flq_records_discard(flq_records *r)
    uint64_t flq_records_claim_contiguous(flq_records *r, uint64_t max, uint64_t *start)
    void flq_records_release(flq_records *r, uint64_t start, uint64_t n)
    void *flq_records_at(flq_records *r, uint64_t pos)
    uint64_t flq_load_u64_acquire(const uint64_t *p)


# What a blocked caller waits for: index into ArrayQueue._parks / _waits.
DEF ITEMS = 0
DEF ROOM = 1

# Shared segments: the header and the dtype text ahead of the ring (a page,
# so the ring stays aligned).
DEF META_BYTES = 4096
DEF HEADER_BYTES = 64  # sizeof(flq_shm_header)

#: Batches at least this large are copied with the GIL released. A smaller
#: copy takes a few microseconds, less than handing the GIL to another
#: thread and back (measured: 1 producer and 1 consumer thread moving int64
#: batches of 4096 went faster holding the GIL for the 32 KiB copies).
GIL_FREE_BYTES = 65536
cdef uint64_t _gil_free_bytes = GIL_FREE_BYTES

cdef object _numpy = None
cdef object _ndarray = None  # numpy.ndarray, for the exact-type fast paths

# Bumped in the child of every fork(): a shared ring's handle maps the
# segment's pages in again (flq_shm_populate) on its first use in a new
# process, since the child inherits the mapping without its page tables.
cdef uint64_t _process_generation = 1


def _after_fork_in_child():
    global _process_generation
    _process_generation += 1


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)

# Up to this many dimensions in a record, put_many and get_many(out=) check
# an exact ndarray of the queue's dtype on its buffer alone (no Python-level
# conversion or attribute calls); other inputs take the general path.
DEF FAST_RECORD_DIMS = 8


cdef extern from "Python.h":
    # Declared without an exception clause: a refusal (not C-contiguous, not
    # writable) sends the caller to its general path, which explains it.
    int _try_get_buffer "PyObject_GetBuffer" (object obj, Py_buffer *view, int flags)
    void PyErr_Clear()
    void *PyErr_Occurred()
    # Checked by the caller (PyErr_Occurred), which turns overflow into a cap.
    unsigned long long PyLong_AsUnsignedLongLong(object n)


cdef object _np():
    """numpy, imported on first use (ArrayQueue is its only user in flinq)."""
    global _numpy, _ndarray
    if _numpy is None:
        try:
            import numpy
        except ImportError:
            raise ImportError("flinq.ArrayQueue needs numpy: pip install 'flinq[numpy]'") from None
        _ndarray = numpy.ndarray
        _numpy = numpy
    return _numpy


cdef uint64_t _count_limit(object count) except? 0:
    """A positive Python int as a count of records, UINT64_MAX when larger."""
    cdef unsigned long long n = PyLong_AsUnsignedLongLong(count)
    if n == <unsigned long long>-1 and PyErr_Occurred() != NULL:
        PyErr_Clear()  # OverflowError: more than any ring holds anyway
        return UINT64_MAX
    return n


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
    """ArrayQueue(dtype, capacity, *, shared=False)
--

A bounded FIFO of fixed-size records of one numpy dtype.

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
    cdef bint _shared
    cdef Segment _seg               # shared: the mapping _block lies in, until _free_ring
    cdef object _name               # shared: the segment's name (str)
    cdef flq_shm_wait *_waits[2]    # shared: ITEMS and ROOM words in the ring header
    cdef object _dtype              # as numpy.dtype(dtype) made it
    cdef object _base               # element dtype of a record's array
    cdef tuple _shape               # a record's array shape; () unless subarray
    cdef int _record_ndim           # len(_shape), or -1 when above FAST_RECORD_DIMS
    cdef Py_ssize_t _record_dims[FAST_RECORD_DIMS]  # _shape as C integers
    cdef Py_ssize_t _element_size   # _base.itemsize
    cdef uint64_t _record_size
    cdef uint64_t _capacity
    cdef bint _parks_ready
    cdef bint _closed
    cdef Py_ssize_t _users          # threads of this handle in the ring without the GIL
    cdef uint64_t _populated_in     # shared: the _process_generation that mapped the pages in
    cdef flq_park _parks[2]         # in process: ITEMS and ROOM sleepers
    cdef object __weakref__

    def __cinit__(self, *args, **kwargs):
        if flq_park_init(&self._parks[ITEMS]) != 0:
            raise MemoryError("cannot create a wait primitive")
        if flq_park_init(&self._parks[ROOM]) != 0:
            flq_park_destroy(&self._parks[ITEMS])
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
        if shared and _sys.platform == "win32":
            raise NotImplementedError("ArrayQueue(shared=True) needs POSIX shared memory")
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise TypeError(f"ArrayQueue records hold bytes; {dt} has Python object fields")
        if dt.itemsize == 0:
            raise ValueError(f"ArrayQueue records must have a size; {dt} has none")
        cdef uint64_t size = flq_records_block_size(dt.itemsize, capacity) if capacity < 2 ** 62 else 0
        if size == 0 or size >= <uint64_t>(2 ** 62):
            raise ValueError(f"capacity {capacity} of {dt.itemsize}-byte records is too large")
        self._set_dtype(dt)
        if shared:
            self._create_segment(size, capacity)
            return
        self._block = flq_aligned_alloc(<size_t>size, 64)
        if self._block == NULL:
            raise MemoryError(f"cannot allocate {size} bytes for the ring")
        self._ring = flq_records_init(self._block, dt.itemsize, capacity)
        self._capacity = capacity

    cdef int _set_dtype(self, object dt) except -1:
        if dt.subdtype is not None:
            self._base, self._shape = dt.subdtype
        else:
            self._base, self._shape = dt, ()
        self._dtype = dt
        self._record_size = dt.itemsize
        self._element_size = self._base.itemsize
        self._record_ndim = len(self._shape) if len(self._shape) <= FAST_RECORD_DIMS else -1
        for i, extent in enumerate(self._shape[:FAST_RECORD_DIMS]):
            self._record_dims[i] = extent
        return 0

    cdef int _create_segment(self, uint64_t ring_bytes, uint64_t capacity) except -1:
        """Make a named segment holding the dtype text and an empty ring."""
        from numpy.lib import format as npy_format
        meta = repr((npy_format.dtype_to_descr(self._base), self._shape)).encode()
        if len(meta) > META_BYTES - HEADER_BYTES:
            raise ValueError(f"{self._dtype} is too complex to share (its description "
                             f"takes {len(meta)} bytes, {META_BYTES - HEADER_BYTES} at most)")
        cdef uint64_t size = META_BYTES + ring_bytes
        cdef Segment seg = None
        for attempt in range(8):  # a random name; try again on the rare collision
            name = f"/flinq-a-{_os.getpid()}-{_secrets.token_hex(6)}"
            try:
                seg = create_segment(name, name.encode(), size)
                break
            except FileExistsError:
                if attempt == 7:
                    raise
        cdef char *base = <char *>seg.base
        memcpy(base + HEADER_BYTES, <char *>meta, len(meta))
        self._ring = flq_records_init(base + META_BYTES, self._record_size, capacity)
        cdef uint64_t params[4]
        params[0] = self._record_size
        params[1] = capacity
        params[2] = len(meta)
        params[3] = META_BYTES
        flq_shm_publish(seg.base, FLQ_SHM_KIND_ARRAY, size, params)
        self._adopt_segment(seg)
        return 0

    cdef int _adopt_segment(self, Segment seg) except -1:
        self._shared = True
        self._seg = seg
        self._name = seg.name
        self._block = seg.base
        self._capacity = self._ring.capacity
        self._waits[ITEMS] = &self._ring.items
        self._waits[ROOM] = &self._ring.room
        self._populate()
        return 0

    cdef void _populate(self) noexcept:
        """Map every page of the segment into this process now: a page's
        first touch inside a copy would fault (about a microsecond each).
        Best effort: where the kernel cannot, pages fault in as used."""
        cdef Segment seg = self._seg  # keeps the mapping while we run without the GIL
        self._populated_in = _process_generation
        with nogil:
            flq_shm_populate(seg.base, seg.size)

    cdef int _open_segment(self, Segment seg) except -1:
        """Take over a mapped segment of kind FLQ_SHM_KIND_ARRAY (checked
        already): its layout and dtype are validated before use."""
        np = _np()
        from numpy.lib import format as npy_format
        cdef str name = seg.name
        cdef const flq_shm_header *h = seg.header()
        cdef uint64_t record_size = h.params[0], capacity = h.params[1]
        cdef uint64_t meta_len = h.params[2], ring_at = h.params[3]
        cdef char *base = <char *>seg.base
        corrupted = ValueError(f"shared memory {name!r} is corrupted: its layout does not fit its size")
        if (ring_at != META_BYTES or seg.size <= META_BYTES or meta_len > META_BYTES - HEADER_BYTES
                or flq_records_check(base + META_BYTES, seg.size - META_BYTES) != 0):
            raise corrupted
        cdef flq_records *ring = <flq_records *>(base + META_BYTES)
        if ring.record_size != record_size or ring.capacity != capacity:
            raise corrupted
        try:
            descr, shape = _ast.literal_eval(base[HEADER_BYTES:HEADER_BYTES + meta_len].decode())
            element = npy_format.descr_to_dtype(descr)
            dt = np.dtype((element, tuple(shape))) if shape else element
        except Exception:
            raise ValueError(f"shared memory {name!r} is corrupted: its dtype does not parse") from None
        if dt.itemsize != record_size:
            raise corrupted
        self._set_dtype(dt)
        self._ring = ring
        self._adopt_segment(seg)
        return 0

    @classmethod
    def attach(cls, name):
        """Open the shared queue called name (see the name property), as
        unpickling a shared ArrayQueue does. Raises FileNotFoundError when
        no such queue exists (any more), ValueError when name is no
        ArrayQueue of this version."""
        _np()
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if _sys.platform == "win32":
            raise NotImplementedError("ArrayQueue(shared=True) needs POSIX shared memory")
        cdef ArrayQueue self = cls.__new__(cls)
        self._open_segment(attach_segment(name, name.encode(), FLQ_SHM_KIND_ARRAY, "ArrayQueue"))
        return self

    def __dealloc__(self):
        self._free_ring()
        if self._parks_ready:
            flq_park_destroy(&self._parks[ITEMS])
            flq_park_destroy(&self._parks[ROOM])

    cdef void _free_ring(self) noexcept:
        """Give the ring back: free it, or unmap the segment (and remove its
        name if this handle created it in this process)."""
        if self._block == NULL:
            return
        if self._shared:
            self._seg.unlink()  # the creating process only
            self._seg = None  # unmapped when nothing else holds it
        else:
            flq_aligned_free(self._block)
        self._block = NULL
        self._ring = NULL

    def __reduce__(self):
        if not self._shared:
            raise TypeError("an in-process ArrayQueue cannot be pickled; "
                            "use ArrayQueue(..., shared=True) to pass it to other processes")
        self._open_ring()
        from multiprocessing import context, reduction

        if context.get_spawning_popen() is not None:
            # Pickled to start a child (spawn, forkserver): pass the segment
            # itself, so the child maps it even if we close it before the
            # child gets there.
            return (_attach_fd, (self._name, reduction.DupFd(self._seg.fd)))
        return (_attach, (self._name,))

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
        return self._shared

    @property
    def name(self):
        """The shared segment's name, for ArrayQueue.attach(); None in process."""
        return self._name

    @property
    def is_shutdown(self):
        """True once shutdown() has been called."""
        return self._ring != NULL and flq_records_state(self._ring) != FLQ_RECORDS_OPEN

    @property
    def closed(self):
        """True once close() has been called."""
        return self._closed

    # ---- conversions (GIL held) ----------------------------------------------------

    cdef bint _batch_buffer(self, object arr, Py_buffer *view, int flags) except -1:
        """Fast path of put_many and get_many(out=): when arr is exactly an
        ndarray of the element dtype that exports a buffer under flags with
        the shape (n,) + record shape, fill view and return True (the caller
        releases it); else False, and nothing is held."""
        if type(arr) is not _ndarray or self._record_ndim < 0 or arr.dtype is not self._base:
            return False
        if _try_get_buffer(arr, view, flags) != 0:
            PyErr_Clear()
            return False
        cdef int i
        if view.ndim == 1 + self._record_ndim and view.itemsize == self._element_size:
            for i in range(self._record_ndim):
                if view.shape[i + 1] != self._record_dims[i]:
                    break
            else:
                return True
        PyBuffer_Release(view)
        return False

    cdef flq_records *_open_ring(self) except NULL:
        if self._closed:
            raise ValueError("ArrayQueue is closed")
        if self._ring == NULL:
            raise ValueError("ArrayQueue was not initialized")
        if self._shared and self._populated_in != _process_generation:
            self._populate()  # first use in a child of fork()
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

    cdef inline uint32_t _prepare(self, int which) noexcept:
        if self._shared:
            return flq_shm_wait_prepare(self._waits[which])
        return flq_park_prepare(&self._parks[which])

    cdef inline void _cancel(self, int which) noexcept:
        if self._shared:
            flq_shm_wait_cancel(self._waits[which])
        else:
            flq_park_cancel(&self._parks[which])

    cdef inline void _notify(self, int which, bint all) noexcept:
        if self._block == NULL:
            return  # closed and freed: nobody sleeps on this handle's words any more
        if self._shared:
            flq_shm_wait_notify(self._waits[which], all)
        else:
            flq_park_notify_locked(&self._parks[which], all)

    cdef int _sleep(self, int which, uint32_t key, int64_t deadline) except -1:
        """Sleep (prepared with key) until notified, an early wake-up or the
        deadline (-1: none). Returns 1 when the deadline had passed, else 0.
        Raises what a signal handler raises (main thread only)."""
        cdef int slept
        self._users += 1  # a shared sleeper counts itself out in the mapping
        try:
            if self._shared:
                slept = sleep_on_shm(self._waits[which], key, deadline, False)
            else:
                slept = sleep_on_park(&self._parks[which], key, deadline)
        finally:
            self._left()
        return slept

    cdef int _put_array(self, object arr, uint64_t n, bint block, object timeout) except -1:
        """Put the n records of the C-contiguous array arr, all or none."""
        cdef Py_buffer view
        PyObject_GetBuffer(arr, &view, PyBUF_C_CONTIGUOUS)
        try:
            self._put_buffer(&view, n, block, timeout)
        finally:
            PyBuffer_Release(&view)
        return 0

    cdef int _put_buffer(self, Py_buffer *view, uint64_t n, bint block, object timeout) except -1:
        """Put the n records in view's C-contiguous memory, all or none."""
        cdef int64_t deadline = deadline_ns(block, timeout)
        cdef flq_records *ring = self._open_ring()
        cdef uint32_t key
        cdef int stored
        cdef int polls = 0
        cdef int64_t spin_until = 0
        if n > self._capacity:
            raise ValueError(f"put_many() of {n} records can never fit in capacity {self._capacity}")
        while True:
            ring = self._open_ring()
            if flq_records_state(ring) != FLQ_RECORDS_OPEN:
                raise ShutDown
            if n * self._record_size >= _gil_free_bytes:
                self._users += 1
                with nogil:
                    stored = flq_records_try_put(ring, view.buf, n)
                self._left()
            else:
                stored = flq_records_try_put(ring, view.buf, n)
            if stored:
                if self._block == NULL:  # closed while we copied: the ring is gone
                    return 0
                self._notify(ITEMS, n > 1)
                if flq_records_state(ring) == FLQ_RECORDS_SHUTDOWN_IMMEDIATE:
                    flq_records_discard(ring)  # raced shutdown(immediate=True)
                return 0
            if not block:
                raise Full
            if self._shared and self._poll(ROOM, n, &spin_until, &polls, deadline):
                continue
            ring = self._open_ring()
            key = self._prepare(ROOM)
            if flq_records_room(ring) >= n or flq_records_state(ring) != FLQ_RECORDS_OPEN:
                self._cancel(ROOM)
            elif self._sleep(ROOM, key, deadline):
                raise Full

    cdef bint _poll(self, int which, uint64_t n, int64_t *spin_until, int *polls,
                    int64_t deadline) noexcept:
        """Shared queues, before a sleep: poll without the GIL (so this
        process's other threads run) while spin_before_sleep allows, until
        there are records (ITEMS) or room for n (ROOM), or the queue is shut
        down. True when that came, False when the caller should sleep now."""
        cdef flq_records *ring = self._ring
        cdef bint came = False
        self._users += 1  # close() leaves the mapping to us while we poll
        with nogil:
            while True:
                if flq_records_state(ring) != FLQ_RECORDS_OPEN:
                    came = True
                elif which == ITEMS:
                    came = flq_records_size(ring) > 0
                else:
                    came = flq_records_room(ring) >= n
                if came or not spin_before_sleep(spin_until, polls, deadline):
                    break
        self._left()
        return came

    cdef void _left(self) noexcept:
        """A thread stopped using the ring without the GIL: free the ring if
        close() waits for that."""
        self._users -= 1
        if self._closed and self._users == 0:
            self._free_ring()

    cdef uint64_t _wait_for_records(self, bint block, int64_t deadline) except 0:
        """Records ready now (at least 1), after waiting for them if need be."""
        cdef flq_records *ring
        cdef uint64_t ready
        cdef uint32_t key
        cdef uint32_t state
        cdef int polls = 0
        cdef int64_t spin_until = 0
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
            if self._shared and self._poll(ITEMS, 1, &spin_until, &polls, deadline):
                continue
            key = self._prepare(ITEMS)
            if flq_records_size(ring) or flq_records_state(ring) != FLQ_RECORDS_OPEN:
                self._cancel(ITEMS)
            elif self._sleep(ITEMS, key, deadline):
                raise Empty

    cdef uint64_t _take_into(self, object out, uint64_t limit) except? 0:
        """Copy up to limit ready records into the writable C-contiguous
        array out; returns how many (0 when others took them first)."""
        cdef Py_buffer view
        PyObject_GetBuffer(out, &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE)
        try:
            return self._take_into_buffer(&view, limit)
        finally:
            PyBuffer_Release(&view)

    cdef uint64_t _take_into_buffer(self, Py_buffer *view, uint64_t limit) except? 0:
        """Copy up to limit ready records into view's writable C-contiguous
        memory; returns how many (0 when others took them first)."""
        cdef uint64_t taken
        cdef flq_records *ring = self._open_ring()
        if limit * self._record_size >= _gil_free_bytes:
            self._users += 1
            with nogil:
                taken = flq_records_try_get(ring, view.buf, limit)
            self._left()
        else:
            taken = flq_records_try_get(ring, view.buf, limit)
        if taken:
            self._notify(ROOM, 1)
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
        cdef Py_buffer view
        if not self._batch_buffer(array, &view, PyBUF_C_CONTIGUOUS):
            array = self._records(array, True)  # converted and checked
            PyObject_GetBuffer(array, &view, PyBUF_C_CONTIGUOUS)
        try:
            self._open_ring()
            if view.shape[0]:
                self._put_buffer(&view, <uint64_t>view.shape[0], block, timeout)
        finally:
            PyBuffer_Release(&view)

    def get(self, block=True, timeout=None):
        """Remove and return the next record (a numpy scalar, or an array of
        the record shape), waiting if the queue is empty (block=False or a
        timeout: raise queue.Empty; shut down and empty: ShutDown)."""
        np = _np()
        cdef int64_t deadline = deadline_ns(block, timeout)
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
        cdef uint64_t limit = _count_limit(max_items)
        cdef int64_t deadline = deadline_ns(block, timeout)
        cdef uint64_t ready
        cdef uint64_t taken
        cdef Py_buffer view
        if out is not None:
            if not self._batch_buffer(out, &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE):
                self._check_out(out)
                PyObject_GetBuffer(out, &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE)
            try:
                if view.shape[0] == 0:
                    raise ValueError("out has room for no record")
                limit = min(limit, <uint64_t>view.shape[0])
                self._open_ring()
                while True:
                    self._wait_for_records(block, deadline)
                    taken = self._take_into_buffer(&view, limit)
                    if taken:
                        return taken
            finally:
                PyBuffer_Release(&view)
        self._open_ring()
        while True:
            ready = self._wait_for_records(block, deadline)
            result = np.empty((min(ready, limit),) + self._shape, self._base)
            taken = self._take_into(result, len(result))
            if taken:
                return result if taken == <uint64_t>len(result) else result[:taken].copy()

    cdef int _check_out(self, object out) except -1:
        np = _np()
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy array, not {type(out).__name__}")
        if out.dtype != self._base:
            raise TypeError(f"out has dtype {out.dtype}; records of this queue are {self._base}")
        if out.shape[1:] != self._shape or out.ndim != 1 + len(self._shape):
            raise ValueError(f"out must have shape (n,) + {self._shape}, not {out.shape}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be writable and C-contiguous")
        return 0

    def get_view(self, max_items, *, block=True, timeout=None):
        """Remove up to max_items records, first first, and let them be read
        in place, without a copy: waits like get_many(), then returns a
        RecordView whose read-only `array` shows the records where they lie
        in the ring (fewer than are ready when the run reaches the ring's
        end). Use it as a context manager (`with q.get_view(n) as array:`)
        or call release(): until then the slots stay out of producers'
        reach; after that the array may show later records."""
        np = _np()
        if not isinstance(max_items, int) or isinstance(max_items, bool):
            raise TypeError(f"max_items must be an int, not {type(max_items).__name__}")
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        cdef uint64_t limit = _count_limit(max_items)
        cdef int64_t deadline = deadline_ns(block, timeout)
        cdef uint64_t start
        cdef uint64_t taken
        cdef _RingSlice piece
        cdef RecordView view
        while True:
            self._wait_for_records(block, deadline)
            taken = flq_records_claim_contiguous(self._open_ring(), limit, &start)
            if taken:
                break
        view = RecordView.__new__(RecordView)
        view._queue = self
        view._start = start
        view._count = taken
        try:
            piece = _RingSlice.__new__(_RingSlice)
            piece._queue = self
            piece._buf = flq_records_at(self._ring, start)
            piece._len = taken * self._record_size
            self._users += 1  # the ring's memory outlives every array over it
            piece._holds = True
            view.array = np.frombuffer(piece, dtype=self._base)
            if self._shape:
                view.array = view.array.reshape((taken,) + self._shape)
        except BaseException:
            view.release()
            raise
        return view

    cdef void _give_back(self, uint64_t start, uint64_t count) noexcept:
        """Release a run read in place (RecordView)."""
        flq_records_release(self._ring, start, count)
        self._notify(ROOM, 1)

    @property
    def async_q(self):
        """This queue's asyncio face (flinq.aio.async_queue), as on every flinq queue."""
        from flinq.aio import async_queue
        return async_queue(self)

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
        self._notify(ITEMS, 1)
        self._notify(ROOM, 1)

    def close(self):
        """Release the ring: every later call but close() raises ValueError,
        and callers blocked in this queue wake up with ValueError."""
        if self._closed:
            return
        self._closed = True
        # Wake this handle's sleepers first: a shared sleeper still counts
        # itself out in the mapping, so the last of them unmaps it.
        self._notify(ITEMS, 1)
        self._notify(ROOM, 1)
        if self._users == 0:
            self._free_ring()

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
            "shared": self._shared,
            "is_shutdown": flq_records_state(ring) != FLQ_RECORDS_OPEN,
        }

    def __repr__(self):
        state = "closed" if self._closed else f"{self.qsize()}/{self._capacity}"
        return f"<flinq.ArrayQueue {self._dtype} {state}>"


cdef class _RingSlice:
    """Read-only buffer over records in the ring: the memory behind a
    RecordView's array. It keeps the queue's ring allocated (or mapped)
    while any array uses it."""

    cdef ArrayQueue _queue
    cdef void *_buf
    cdef uint64_t _len
    cdef bint _holds

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("records read in place are read-only")
        PyBuffer_FillInfo(buffer, self, self._buf, self._len, 1, flags)

    def __dealloc__(self):
        if self._holds and self._queue is not None:
            self._queue._left()


cdef class RecordView:
    """Records taken by ArrayQueue.get_view(), read in place: `array` is a
    read-only ndarray over the ring. Valid until release() (or the end of
    the with block); after that the slots belong to producers again and the
    array may show later records. A view dropped without release() is
    released when collected."""

    cdef ArrayQueue _queue
    cdef uint64_t _start
    cdef uint64_t _count
    cdef bint _released
    cdef readonly object array

    def release(self):
        """Give the records' slots back to producers (again: no effect)."""
        if not self._released and self._queue is not None:
            self._released = True
            self._queue._give_back(self._start, self._count)

    @property
    def released(self):
        """True once release() has run."""
        return self._released

    def __len__(self):
        return self._count

    def __enter__(self):
        return self.array

    def __exit__(self, *exc_info):
        self.release()
        return False

    def __dealloc__(self):
        # The array (and its _RingSlice, which keeps the ring) is still
        # referenced here: Cython clears attributes after this body.
        if not self._released and self._queue is not None and self._queue._ring != NULL:
            self._released = True
            self._queue._give_back(self._start, self._count)


def _attach(name):
    """Unpickle a shared ArrayQueue: attach to its segment by name."""
    return ArrayQueue.attach(name)


def _attach_fd(name, dup_fd):
    """Unpickle a shared ArrayQueue in a spawned child from the descriptor
    its parent passed (multiprocessing.reduction.DupFd): works even if the
    creator has removed the name since."""
    cdef ArrayQueue self = ArrayQueue.__new__(ArrayQueue)
    self._open_segment(map_segment_fd(dup_fd.detach(), name, FLQ_SHM_KIND_ARRAY, "ArrayQueue"))
    return self
