# cython: language_level=3, embedsignature=True, embedsignature.format=clinic, binding=False, boundscheck=False, wraparound=False, cdivision=True
"""Queues between processes over flinq's shared-memory headers.

Three parts:
  - the segment: flinq._segment.Segment (include/flinq/shmseg.h), which
    ArrayQueue(shared=True) uses too;
  - ProcessQueue: byte records in lanes (include/flinq/shmring.h), with
    waiting on futex words (include/flinq/shmwait.h), and the Python side of
    a message: raw bytes-like bodies or pickle protocol 5 with out-of-band
    buffers;
  - ProcessMessage: a reservation (include/flinq/shmflight.h), at least once.

Every method runs with the GIL held, except the sleep inside a blocking wait,
which releases it. The GIL is the serializer shmring.h asks of a lane's
producer threads: a put stages, copies and publishes without calling back
into Python (buffers are acquired before staging), so no other thread of this
process can run in between.
"""

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint32_t, uint64_t

from flinq._shm cimport (
    FLQ_FLIGHT_HDR_BYTES, FLQ_FLIGHT_REQUEUING, FLQ_FLIGHT_RESERVED, FLQ_FLIGHT_SETTLED,
    flq_flight_cas, flq_flight_claim_lane, flq_flight_find, flq_flight_hdr, flq_flight_hdr_at,
    flq_flight_lane_at, flq_flight_lanes_used, flq_flight_mark, flq_flight_reap_due,
    flq_flight_reclaim, flq_flight_stage, flq_flight_state, flq_flight_tag,
    flq_flight_unsettled, flq_mq_lane_owner,
    FLQ_SHM_KIND_MESSAGES,
    flq_mq, flq_mq_claim_lane, flq_mq_copy_in, flq_mq_copy_out, flq_mq_head, flq_mq_lane,
    flq_mq_lane_at, flq_mq_lanes_used, flq_mq_params_valid, flq_mq_publish, flq_mq_read,
    flq_mq_ready, flq_mq_rec, flq_mq_segment_bytes, flq_mq_size, flq_mq_stage,
    flq_mq_stage_begin, flq_mq_stage_record, flq_mq_take, flq_mq_view,
    flq_shm_header, flq_shm_pid, flq_shm_pid_alive, flq_shm_publish,
    flq_shm_supported, flq_shm_wait, flq_shm_wait_cancel, flq_shm_wait_notify,
    flq_shm_wait_prepare, flq_shm_wait_supported,
)
from flinq._core cimport deadline_ns
from flinq._headers cimport flq_now_ns
from flinq._segment cimport (
    Segment, attach_segment, create_segment, map_segment_fd, sleep_on_shm, spin_before_sleep,
)

import os as _os
import pickle as _pickle
import queue as _stdlib_queue
import secrets as _secrets
import struct as _struct
import sys as _sys

Empty = _stdlib_queue.Empty
Full = _stdlib_queue.Full

# A sleeper wakes every 50 ms (flinq._core's SIGNAL_SLICE_NS) even when
# nobody notifies it: to run signal handlers (Ctrl-C) in the main thread,
# and, in every thread, so that a wake-up given to a process that was killed
# before acting on it delays the others by at most this long.

# Record kinds (shmring.h descriptors hold 1..255): the low 3 bits say what
# the body is, the bits above how many times the message was redelivered
# (0..31, saturating).
DEF KIND_MASK = 7
DEF REDELIVERY_SHIFT = 3
DEF MAX_REDELIVERIES = 31
DEF KIND_BYTES = 1
DEF KIND_BYTEARRAY = 2
DEF KIND_MEMORYVIEW = 3      # delivered as bytes
DEF KIND_PICKLE = 4          # a protocol-5 pickle, no out-of-band buffers
DEF KIND_PICKLE_BUFFERS = 5  # header, pickle, then out-of-band buffers

DEFAULT_BUFFER_BYTES = 1024 * 1024
DEFAULT_VISIBILITY_TIMEOUT = 30.0
# One process at a time looks for expired reservations, at most this often.
cdef int64_t REAP_INTERVAL_NS = 10 * 1000 * 1000
# Descriptors per lane: one per 128 body bytes (rounded up to a power of two).
cdef uint64_t BYTES_PER_SLOT = 128
cdef uint64_t MIN_SLOTS = 64

# This process's id, kept current across fork() so that a child claims a lane
# of its own rather than writing into its parent's.
cdef uint32_t _pid = flq_shm_pid()


def _after_fork_in_child():
    global _pid
    _pid = flq_shm_pid()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)


cdef bint _supported():
    return flq_shm_supported() and flq_shm_wait_supported()


cdef int _check_supported() except -1:
    if not _supported():
        raise NotImplementedError(
            f"flinq.ProcessQueue needs Linux (shared memory with futex waits); "
            f"it is not available on {_sys.platform}"
        )
    return 0


cdef int _alive(uint32_t pid) noexcept nogil:
    return flq_shm_pid_alive(pid)


cdef inline int64_t _deadline(bint block, object timeout) except -2:
    """flinq._core's deadline_ns, with 0 for no waiting (block=False)."""
    return deadline_ns(True, timeout) if block else 0


cdef inline int _sleep(flq_shm_wait *w, uint32_t key, int64_t deadline) except -1:
    """Sleep on w (prepared with key) in slices in every thread (see
    above): 1 when the deadline (-1: none) had passed, else 0."""
    return sleep_on_shm(w, key, deadline, True)


cdef object _shm_path(str name):
    return ("/" + name).encode()


def _validate_name(name):
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not name or len(name) > 200 or "/" in name or "\0" in name:
        raise ValueError("name must be 1 to 200 characters, without '/' or NUL")
    return name


# ---- message bodies ---------------------------------------------------------

_LAYOUT_HEAD = _struct.Struct("<QQ")  # buffer count, pickle length


cdef inline Py_ssize_t _align16(Py_ssize_t n):
    return (n + 15) & ~15


cdef list _buffers_layout(Py_ssize_t nbuf, Py_ssize_t pickle_len, sizes):
    """Offsets of [pickle, buffer 0, ...] in a KIND_PICKLE_BUFFERS body, and
    its total length last. The header is the count, the pickle's length and
    each buffer's length, 8 bytes each; every part starts 16-byte aligned."""
    cdef Py_ssize_t at = _align16(16 + 8 * nbuf)
    cdef list offsets = [at]
    at = _align16(at + pickle_len)
    for n in sizes:
        offsets.append(at)
        at = _align16(at + n)
    offsets.append(at)
    return offsets


cdef tuple _encode(object item):
    """(kind, body length, pieces): pieces is one bytes or memoryview, or a
    list of (offset, bytes or memoryview). Every piece is acquired here, so
    that copying them later runs no Python code."""
    cdef type t = type(item)
    if t is bytes:
        return (KIND_BYTES, PyBytes_GET_SIZE(item), item)
    if t is bytearray:
        view = memoryview(item)  # pins its size until the put is done
        return (KIND_BYTEARRAY, len(view), view)
    if t is memoryview:
        view = <object>item
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        elif view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        return (KIND_MEMORYVIEW, len(view), view)
    cdef list buffers = []
    data = _pickle.dumps(item, protocol=5, buffer_callback=buffers.append)
    if not buffers:
        return (KIND_PICKLE, PyBytes_GET_SIZE(data), data)
    views = []
    for pb in buffers:
        try:
            views.append(pb.raw())
        except BufferError:  # not contiguous: ship a contiguous copy
            views.append(memoryview(bytes(pb)))
    sizes = [len(v) for v in views]
    offsets = _buffers_layout(len(views), len(data), sizes)
    header = _LAYOUT_HEAD.pack(len(views), len(data)) + _struct.pack(f"<{len(sizes)}Q", *sizes)
    pieces = [(0, header), (offsets[0], data)]
    for i in range(len(views)):
        pieces.append((offsets[i + 1], views[i]))
    return (KIND_PICKLE_BUFFERS, offsets[len(offsets) - 1], pieces)


cdef int _copy_piece(unsigned char *dst, object piece) except -1:
    cdef Py_buffer view
    if type(piece) is bytes:
        flq_mq_copy_in(dst, PyBytes_AS_STRING(piece), <size_t>PyBytes_GET_SIZE(piece))
        return 0
    PyObject_GetBuffer(piece, &view, PyBUF_SIMPLE)
    flq_mq_copy_in(dst, view.buf, <size_t>view.len)
    PyBuffer_Release(&view)
    return 0


cdef int _write_body(unsigned char *dst, object pieces) except -1:
    if type(pieces) is list:
        for offset, piece in <list>pieces:
            _copy_piece(dst + <Py_ssize_t>offset, piece)
        return 0
    return _copy_piece(dst, pieces)


cdef object _copy_body(uint32_t kind, const unsigned char *at, uint32_t length):
    """A fresh object holding a copy of a record's body of this kind."""
    kind &= KIND_MASK
    if kind == KIND_BYTEARRAY or kind == KIND_PICKLE_BUFFERS:
        # Writable, so that arrays rebuilt over it are writable too.
        out = PyByteArray_FromStringAndSize(NULL, length)
        flq_mq_copy_out(PyByteArray_AS_STRING(out), at, length)
        return out
    out = PyBytes_FromStringAndSize(NULL, length)
    flq_mq_copy_out(PyBytes_AS_STRING(out), at, length)
    return out


cdef inline object _new_body(const flq_mq_rec *rec):
    return _copy_body(rec.kind, rec.body, rec.len)


cdef object _decode(uint32_t kind, object body):
    """The message a body copied out by _new_body stands for."""
    kind &= KIND_MASK
    if kind == KIND_BYTES or kind == KIND_BYTEARRAY or kind == KIND_MEMORYVIEW:
        return body
    if kind == KIND_PICKLE:
        return _pickle.loads(body)
    if kind != KIND_PICKLE_BUFFERS:
        raise ValueError(f"corrupted ProcessQueue record (kind {kind})")
    view = memoryview(body)
    nbuf, pickle_len = _LAYOUT_HEAD.unpack_from(view, 0)
    if 16 + 8 * nbuf > len(view):
        raise ValueError("corrupted ProcessQueue record (buffer count)")
    sizes = _struct.unpack_from(f"<{nbuf}Q", view, 16)
    offsets = _buffers_layout(nbuf, pickle_len, sizes)
    if offsets[len(offsets) - 1] != len(view):
        raise ValueError("corrupted ProcessQueue record (lengths)")
    buffers = [view[offsets[i + 1]:offsets[i + 1] + sizes[i]] for i in range(nbuf)]
    return _pickle.loads(view[offsets[0]:offsets[0] + pickle_len], buffers=buffers)


# ---- the queue --------------------------------------------------------------

cdef uint64_t _next_pow2(uint64_t n):
    cdef uint64_t p = 1
    while p < n:
        p <<= 1
    return p


cdef uint64_t _visibility_ns(object seconds) except? 0:
    """A visibility timeout in ns, checked."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"visibility_timeout must be a number, not {type(seconds).__name__}")
    if not 0 < seconds < 1e9:  # NaN fails too
        raise ValueError(f"visibility_timeout must be a positive number of seconds, not {seconds}")
    return <uint64_t>(seconds * 1e9)


cdef object _positive_int(object value, str what):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{what} must be positive, not {value}")
    return value


def _attach(name):
    """Unpickle a ProcessQueue by attaching to its segment."""
    return ProcessQueue.attach(name)


def _attach_fd(name, dup_fd):
    """Unpickle a ProcessQueue in a spawned child from the descriptor its
    parent passed (multiprocessing.reduction.DupFd): works even if the
    creator has removed the name since."""
    _check_supported()
    return ProcessQueue._from_segment(
        map_segment_fd(dup_fd.detach(), name, FLQ_SHM_KIND_MESSAGES, "ProcessQueue")
    )


@cython.final
cdef class ProcessQueue:
    """ProcessQueue(maxsize=0, *, buffer_bytes=1048576, max_producers=None, visibility_timeout=30.0, name=None)
--

A FIFO queue shared by processes, drop-in for multiprocessing.Queue.

    ProcessQueue(maxsize=0, *, buffer_bytes=1 MiB, max_producers=None,
    visibility_timeout=30.0, name=None) creates a queue in a new
    shared-memory segment (named name, or a random name);
    ProcessQueue.attach(name) opens an existing one from any process. A
    queue passes to child processes as an argument, under fork and spawn
    alike (it pickles as its name).

    Every producing process writes into a lane of its own of buffer_bytes
    (a message larger than that raises ValueError); max_producers lanes
    exist (default: max(8, CPU count)), and a dead process's lane is reused.
    As many processes can hold reservations, each in a lane of the same
    size. maxsize > 0 bounds the number of messages; with several producers
    a put may pass it by at most the number of producers minus one.

    bytes, bytearray and memoryview messages are copied in raw (a
    memoryview arrives as bytes); anything else is pickled with protocol 5
    in the caller, with out-of-band buffers copied straight into the queue.
    A message taken by get() is gone (at-most-once), as with
    multiprocessing.Queue; one taken by reserve() comes back unless acked
    within its visibility timeout. The creating process unlinks the segment
    at close(); processes already attached keep using it.
    """
    cdef Segment _seg
    cdef flq_mq _q
    cdef int64_t _lane             # the lane this process produces into; -1: none yet
    cdef uint32_t _lane_pid        # the pid _lane was claimed for
    cdef uint64_t _next_lane       # where the next get starts looking
    cdef int64_t _flight           # this process's flight lane (reservations); -1: none yet
    cdef uint32_t _flight_pid      # the pid _flight was claimed for
    cdef bint _closed
    cdef object __weakref__

    def __cinit__(self):
        self._lane = -1
        self._lane_pid = 0
        self._next_lane = 0
        self._flight = -1
        self._flight_pid = 0
        self._closed = False

    def __init__(self, maxsize=0, *, buffer_bytes=DEFAULT_BUFFER_BYTES, max_producers=None,
                 visibility_timeout=DEFAULT_VISIBILITY_TIMEOUT, name=None):
        _check_supported()
        if not isinstance(maxsize, int) or isinstance(maxsize, bool):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        _positive_int(buffer_bytes, "buffer_bytes")
        if max_producers is None:
            max_producers = max(8, _os.cpu_count() or 1)
        _positive_int(max_producers, "max_producers")
        if buffer_bytes > 0xFFFFFFFF - 63:
            raise ValueError("buffer_bytes must be below 4 GiB")
        if max_producers > 4096:
            raise ValueError("max_producers must be at most 4096")
        cdef uint64_t visibility_ns = _visibility_ns(visibility_timeout)
        name = _validate_name(name) if name is not None else "flinq-" + _secrets.token_hex(8)
        # Room for a message of buffer_bytes in a flight lane too, after its header.
        cdef uint64_t data_bytes = (<uint64_t>buffer_bytes + FLQ_FLIGHT_HDR_BYTES + 63) & ~(<uint64_t>63)
        cdef uint64_t slots = _next_pow2(max(MIN_SLOTS, data_bytes // BYTES_PER_SLOT))
        cdef uint64_t nlanes = max_producers
        cdef uint64_t size = flq_mq_segment_bytes(nlanes, nlanes, slots, data_bytes)
        if size == 0:
            raise ValueError("buffer_bytes and max_producers make a segment too large")
        self._seg = create_segment(name, _shm_path(name), size)
        flq_mq_view(&self._q, self._seg.base, nlanes, nlanes, slots, data_bytes)
        self._q.ctl.maxsize = maxsize if maxsize > 0 else 0
        self._q.ctl.visibility_ns = visibility_ns
        cdef uint64_t params[4]
        params[0] = nlanes
        params[1] = slots
        params[2] = data_bytes
        params[3] = nlanes  # flight lanes
        flq_shm_publish(self._seg.base, FLQ_SHM_KIND_MESSAGES, size, params)

    @staticmethod
    def supported():
        """Whether this platform can run a ProcessQueue (Linux today)."""
        return bool(_supported())

    @staticmethod
    def attach(name):
        """Open the existing queue called name (FileNotFoundError if none;
        ValueError if the segment holds something else)."""
        _check_supported()
        name = _validate_name(name)
        return ProcessQueue._from_segment(
            attach_segment(name, _shm_path(name), FLQ_SHM_KIND_MESSAGES, "ProcessQueue")
        )

    @staticmethod
    cdef ProcessQueue _from_segment(Segment seg):
        """A queue over a mapped segment (checked by kind already): its
        layout is validated before anything in it is followed."""
        cdef ProcessQueue self = ProcessQueue.__new__(ProcessQueue)
        cdef str name = seg.name
        cdef const flq_shm_header *h = seg.header()
        cdef uint64_t nlanes = h.params[0], slots = h.params[1], data_bytes = h.params[2]
        cdef uint64_t nflights = h.params[3]
        if (not flq_mq_params_valid(nlanes, nflights, slots, data_bytes)
                or flq_mq_segment_bytes(nlanes, nflights, slots, data_bytes) != seg.size):
            raise ValueError(f"shared memory {name!r} is corrupted: its layout does not fit its size")
        self._seg = seg
        flq_mq_view(&self._q, seg.base, nlanes, nflights, slots, data_bytes)
        if flq_mq_lanes_used(&self._q) > nlanes or flq_flight_lanes_used(&self._q) > nflights:
            raise ValueError(f"shared memory {name!r} is corrupted: lane count out of range")
        return self

    def __reduce__(self):
        self._check_open()
        from multiprocessing import context, reduction

        if context.get_spawning_popen() is not None:
            # Pickled to start a child (spawn, forkserver): pass the segment
            # itself, so the child maps it even if we close it before the
            # child gets there.
            return (_attach_fd, (self._seg.name, reduction.DupFd(self._seg.fd)))
        return (_attach, (self._seg.name,))

    def __repr__(self):
        state = "closed" if self._closed else f"qsize={self.qsize()}"
        return f"<flinq.ProcessQueue name={self._seg.name!r} {state}>"

    @property
    def name(self):
        """The segment's name: ProcessQueue.attach(name) opens the queue."""
        return self._seg.name

    @property
    def maxsize(self):
        """The bound on the number of messages (0: none but the lanes' room)."""
        return self._q.ctl.maxsize

    @property
    def buffer_bytes(self):
        """Bytes of message bodies each producing process can have queued
        (at least the buffer_bytes asked for; the largest message)."""
        return self._largest()

    @property
    def max_producers(self):
        """How many processes can produce at once (one lane each), and how
        many can hold reservations at once."""
        return self._q.nlanes

    @property
    def visibility_timeout(self):
        """Seconds a reserved message stays reserved unless acked (default
        for reserve())."""
        return self._q.ctl.visibility_ns / 1e9

    cdef inline uint64_t _largest(self):
        """The largest message body: what fits a lane and a flight lane."""
        return self._q.data_bytes - FLQ_FLIGHT_HDR_BYTES

    cdef inline int _check_open(self) except -1:
        if self._closed:
            raise ValueError(f"ProcessQueue {self._seg.name!r} is closed")
        return 0

    cdef flq_mq_lane *_own_lane(self) except NULL:
        """This process's lane, claimed on first use (and again after fork)."""
        if self._lane >= 0 and self._lane_pid == _pid:
            return flq_mq_lane_at(&self._q, <uint64_t>self._lane)
        cdef int64_t lane = flq_mq_claim_lane(&self._q, _pid, _alive)
        if lane < 0:
            raise RuntimeError(
                f"ProcessQueue {self._seg.name!r}: all {self._q.nlanes} producer lanes belong to "
                f"live processes; create the queue with a larger max_producers"
            )
        self._lane = lane
        self._lane_pid = _pid
        return flq_mq_lane_at(&self._q, <uint64_t>lane)

    cdef inline bint _below_maxsize(self, uint64_t adding):
        cdef uint64_t maxsize = self._q.ctl.maxsize
        return maxsize == 0 or flq_mq_size(&self._q) + adding <= maxsize

    cdef int _try_stage(self, flq_mq_lane *lane, list encoded) except -1:
        """Stage and copy every encoded item, then publish them together.
        Returns 1, or 0 (nothing visible) when they do not fit now."""
        cdef flq_mq_stage st
        cdef unsigned char *body
        cdef uint64_t count = len(encoded)
        if not self._below_maxsize(count):
            return 0
        flq_mq_stage_begin(lane, &st)
        for kind, length, pieces in encoded:
            body = flq_mq_stage_record(&self._q, lane, &st, <uint64_t>length, <uint32_t>kind)
            if body == NULL:
                return 0
            _write_body(body, pieces)
        flq_mq_publish(lane, &st)
        flq_shm_wait_notify(&self._q.ctl.not_empty, count > 1)
        return 1

    cdef int _put_one(self, uint32_t kind, uint64_t length, object pieces, int64_t deadline,
                      bint bounded=True) except -1:
        """Put one encoded message; bounded=False ignores maxsize (for a
        message that goes back into the queue, already counted once)."""
        cdef flq_mq_lane *lane = self._own_lane()
        cdef flq_mq_stage st
        cdef unsigned char *body
        cdef uint32_t key
        cdef int polls = 0
        cdef int64_t spin_until = 0
        if length > self._largest():
            raise ValueError(
                f"message of {length} bytes exceeds buffer_bytes={self._largest()}; "
                f"create the queue with a larger buffer_bytes"
            )
        while True:
            if not bounded or self._below_maxsize(1):
                flq_mq_stage_begin(lane, &st)
                body = flq_mq_stage_record(&self._q, lane, &st, length, kind)
                if body != NULL:
                    _write_body(body, pieces)
                    flq_mq_publish(lane, &st)
                    flq_shm_wait_notify(&self._q.ctl.not_empty, 0)
                    return 0
            if deadline == 0:
                raise Full
            if spin_before_sleep(&spin_until, &polls, deadline):
                continue
            key = flq_shm_wait_prepare(&self._q.ctl.not_full)
            if not bounded or self._below_maxsize(1):
                flq_mq_stage_begin(lane, &st)
                if flq_mq_stage_record(&self._q, lane, &st, length, kind) != NULL:
                    flq_shm_wait_cancel(&self._q.ctl.not_full)
                    continue  # room now: stage it again for real
            if _sleep(&self._q.ctl.not_full, key, deadline):
                raise Full
            self._check_open()

    def put(self, obj, block=True, timeout=None):
        """Put obj into the queue, waiting for room if needed (block=False
        or a timeout: raise queue.Full). Unpicklable objects raise here."""
        self._check_open()
        cdef int64_t deadline = _deadline(block, timeout)
        if type(obj) is bytes:
            self._put_one(KIND_BYTES, <uint64_t>PyBytes_GET_SIZE(obj), obj, deadline)
            return
        kind, length, pieces = _encode(obj)
        self._put_one(kind, length, pieces, deadline)

    def put_nowait(self, obj):
        """Put obj without waiting; raise queue.Full if there is no room."""
        self.put(obj, False)

    def put_many(self, items, block=True, timeout=None):
        """Put every item of items, in order, as one batch: all or nothing.

        Waits until they all fit (queue.Full on block=False or timeout, with
        nothing put); ValueError if they never can (more than half of
        buffer_bytes, more descriptors than a lane has, or above maxsize).
        """
        self._check_open()
        cdef int64_t deadline = _deadline(block, timeout)
        cdef list encoded = [_encode(item) for item in items]
        if not encoded:
            return
        cdef uint64_t total = 0
        for _kind, length, _pieces in encoded:
            total += (<uint64_t>length + 7) & ~(<uint64_t>7)
        cdef uint64_t maxsize = self._q.ctl.maxsize
        if (total > self._q.data_bytes // 2 or <uint64_t>len(encoded) > self._q.slots
                or (maxsize != 0 and <uint64_t>len(encoded) > maxsize)):
            raise ValueError(
                f"a batch of {len(encoded)} messages ({total} bytes) never fits this queue "
                f"(buffer_bytes={self._largest()}, maxsize={maxsize}); split it"
            )
        cdef flq_mq_lane *lane = self._own_lane()
        cdef uint32_t key
        while True:
            if self._try_stage(lane, encoded):
                return
            if deadline == 0:
                raise Full
            key = flq_shm_wait_prepare(&self._q.ctl.not_full)
            if self._try_stage(lane, encoded):
                flq_shm_wait_cancel(&self._q.ctl.not_full)
                return
            if _sleep(&self._q.ctl.not_full, key, deadline):
                raise Full
            self._check_open()

    cdef object _take(self, list out, Py_ssize_t limit):
        """Take up to limit records from one lane into out as (kind, body)
        pairs; returns how many. Looks at every lane, from where the last
        take stopped, so that no producer's lane starves."""
        cdef uint64_t used = flq_mq_lanes_used(&self._q)
        cdef uint64_t k, i, head, ready, n, j
        cdef flq_mq_lane *lane
        cdef flq_mq_rec rec
        cdef list bodies
        cdef list kinds
        cdef bint stale
        for k in range(used):
            i = (self._next_lane + k) % used
            lane = flq_mq_lane_at(&self._q, i)
            head = flq_mq_head(lane)
            while True:
                ready = flq_mq_ready(lane, head)
                if ready == 0:
                    break
                n = ready if ready < <uint64_t>limit else <uint64_t>limit
                if n == 1:
                    if flq_mq_read(&self._q, lane, head, &rec) != 0:
                        head = flq_mq_head(lane)
                        continue
                    body = _new_body(&rec)
                    if not flq_mq_take(lane, &head, 1):
                        continue  # another consumer won: drop the copy
                    out.append((rec.kind, body))
                else:
                    bodies = []
                    kinds = []
                    stale = False
                    for j in range(n):
                        if flq_mq_read(&self._q, lane, head + j, &rec) != 0:
                            stale = True
                            break
                        bodies.append(_new_body(&rec))
                        kinds.append(rec.kind)
                    if stale:
                        head = flq_mq_head(lane)
                        continue
                    if not flq_mq_take(lane, &head, n):
                        continue
                    for j in range(n):
                        out.append((kinds[j], bodies[j]))
                flq_shm_wait_notify(&self._q.ctl.not_full, 1)
                self._next_lane = i + 1
                return n
        return 0

    cdef int _await_ready(self, int64_t deadline, int64_t *spin_until, int *polls) except -1:
        """One wait for a ready record, between a caller's attempts to take
        one: poll briefly, else sleep on not_empty until notified. Raises
        Empty at the deadline, and what _check_open raises after a sleep."""
        cdef uint32_t key
        if spin_before_sleep(spin_until, polls, deadline):
            return 0
        key = flq_shm_wait_prepare(&self._q.ctl.not_empty)
        if flq_mq_size(&self._q) != 0:
            flq_shm_wait_cancel(&self._q.ctl.not_empty)
            return 0
        if _sleep(&self._q.ctl.not_empty, key, deadline):
            raise Empty
        self._check_open()
        return 0

    cdef list _wait_take(self, Py_ssize_t limit, int64_t deadline):
        """Take 1 to limit records, waiting until the deadline."""
        cdef list out = []
        cdef int polls = 0
        cdef int64_t spin_until = 0
        while True:
            if self._take(out, limit):
                return out
            if self._reap(False) and self._take(out, limit):
                return out
            if deadline == 0:
                raise Empty
            self._await_ready(deadline, &spin_until, &polls)

    def get(self, block=True, timeout=None):
        """Remove and return the next message, waiting if the queue is empty
        (block=False or a timeout: raise queue.Empty)."""
        self._check_open()
        cdef list out = self._wait_take(1, _deadline(block, timeout))
        kind, body = out[0]
        return _decode(kind, body)

    def get_nowait(self):
        """Remove and return the next message without waiting; raise queue.Empty."""
        return self.get(False)

    def get_many(self, max_items, block=True, timeout=None):
        """Remove and return a list of 1 to max_items messages.

        Waits like get() until at least one message is there, then takes
        what is there up to max_items without waiting further. Messages of
        one producer come in the order it put them.
        """
        self._check_open()
        if not isinstance(max_items, int) or isinstance(max_items, bool):
            raise TypeError(f"max_items must be an int, not {type(max_items).__name__}")
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        cdef Py_ssize_t limit = min(max_items, 2 ** 62)
        cdef list out = self._wait_take(limit, _deadline(block, timeout))
        while <Py_ssize_t>len(out) < limit and self._take(out, limit - len(out)):
            pass
        return [_decode(kind, body) for kind, body in out]

    # ---- reservations (include/flinq/shmflight.h) ----------------------------

    cdef flq_mq_lane *_own_flight(self) except NULL:
        """This process's flight lane, claimed on first use (and again after
        fork). A lane adopted from a dead process is emptied first: its
        reservations go back into the queue."""
        if self._flight >= 0 and self._flight_pid == _pid:
            return flq_flight_lane_at(&self._q, <uint64_t>self._flight)
        cdef int adopted = 0
        cdef int64_t i = flq_flight_claim_lane(&self._q, _pid, _alive, &adopted)
        if i < 0:
            raise RuntimeError(
                f"ProcessQueue {self._seg.name!r}: all {self._q.nflights} reservation lanes belong "
                f"to live processes; create the queue with a larger max_producers"
            )
        cdef flq_mq_lane *lane = flq_flight_lane_at(&self._q, <uint64_t>i)
        cdef uint64_t idx, state
        if adopted:
            while flq_flight_find(&self._q, lane, 0, 1, _alive, &idx, &state):
                self._requeue(lane, idx, state, -1)
            flq_flight_reclaim(&self._q, lane)
        self._flight = i
        self._flight_pid = _pid
        return lane

    cdef bint _requeue(self, flq_mq_lane *lane, uint64_t idx, uint64_t state, int64_t deadline) except -1:
        """Put flight record idx (found in state) back into the queue, one
        more redelivery counted. Returns False when someone else changed it
        first, or (deadline 0) when there is no room now."""
        cdef flq_mq_rec rec
        cdef flq_flight_hdr *h = flq_flight_hdr_at(&self._q, lane, idx, &rec)
        if h == NULL or not flq_flight_cas(h, &state, idx, FLQ_FLIGHT_REQUEUING, _pid):
            return False
        # Ours now: the owner does not reuse a record until it is SETTLED.
        cdef uint32_t length = rec.len - FLQ_FLIGHT_HDR_BYTES
        cdef uint32_t redelivered = (rec.kind >> REDELIVERY_SHIFT) + 1
        if redelivered > MAX_REDELIVERIES:
            redelivered = MAX_REDELIVERIES
        cdef uint32_t kind = (rec.kind & KIND_MASK) | (redelivered << REDELIVERY_SHIFT)
        cdef uint64_t mine = flq_flight_state(FLQ_FLIGHT_REQUEUING, _pid, idx)
        body = PyBytes_FromStringAndSize(NULL, length)
        flq_mq_copy_out(PyBytes_AS_STRING(body), rec.body + FLQ_FLIGHT_HDR_BYTES, length)
        try:
            self._put_one(kind, length, body, deadline, False)
        except (Full, RuntimeError):
            # No room or no lane now: leave it as it was, for a later try.
            flq_flight_cas(h, &mine, idx, flq_flight_tag(state), 0)
            return False
        except BaseException:
            flq_flight_cas(h, &mine, idx, flq_flight_tag(state), 0)
            raise
        flq_flight_cas(h, &mine, idx, FLQ_FLIGHT_SETTLED, 0)
        return True

    cdef bint _reap(self, bint force) except -1:
        """Put expired reservations, and those of dead processes, back into
        the queue; by one process at a time, every REAP_INTERVAL_NS (force:
        now). Returns whether any went back."""
        cdef uint64_t used = flq_flight_lanes_used(&self._q)
        if used == 0:
            return False
        cdef int64_t now = flq_now_ns()
        if not force and not flq_flight_reap_due(&self._q, <uint64_t>now, REAP_INTERVAL_NS):
            return False  # not yet, or another process is at it
        cdef bint any = False
        cdef uint64_t i, idx, state
        cdef flq_mq_lane *lane
        for i in range(used):
            lane = flq_flight_lane_at(&self._q, i)
            while flq_flight_find(&self._q, lane, <uint64_t>now, 0, _alive, &idx, &state):
                if not self._requeue(lane, idx, state, 0):
                    break
                any = True
        return any

    cdef ProcessMessage _reserve_from(self, flq_mq_lane *flight, uint64_t visibility_ns):
        """Reserve the next message of any lane into flight; None if none."""
        cdef uint64_t used = flq_mq_lanes_used(&self._q)
        cdef uint64_t k, i, head, idx
        cdef flq_mq_lane *lane
        cdef flq_mq_rec rec, copy
        cdef flq_mq_stage st
        cdef unsigned char *at
        cdef flq_flight_hdr *h
        cdef ProcessMessage msg
        flq_flight_reclaim(&self._q, flight)
        for k in range(used):
            i = (self._next_lane + k) % used
            lane = flq_mq_lane_at(&self._q, i)
            head = flq_mq_head(lane)
            while flq_mq_ready(lane, head) != 0:
                if flq_mq_read(&self._q, lane, head, &rec) != 0:
                    head = flq_mq_head(lane)
                    continue
                flq_mq_stage_begin(flight, &st)
                at = flq_flight_stage(&self._q, flight, &st, rec.len, rec.kind, &idx)
                if at == NULL:
                    return None  # too much in flight here: wait for acks or expiry
                flq_mq_copy_out(at, rec.body, rec.len)
                flq_mq_publish(flight, &st)
                h = flq_flight_hdr_at(&self._q, flight, idx, &copy)
                if not flq_mq_take(lane, &head, 1):
                    flq_flight_mark(h, idx, FLQ_FLIGHT_SETTLED, 0)
                    flq_flight_reclaim(&self._q, flight)
                    continue
                flq_flight_mark(h, idx, FLQ_FLIGHT_RESERVED, <uint64_t>flq_now_ns() + visibility_ns)
                flq_shm_wait_notify(&self._q.ctl.not_full, 1)
                self._next_lane = i + 1
                msg = ProcessMessage.__new__(ProcessMessage)
                msg._queue = self
                msg._flight = self._flight
                msg._idx = idx
                msg._pid = _pid
                msg._body = _decode(rec.kind, _copy_body(rec.kind, at, rec.len))
                msg._attempts = (rec.kind >> REDELIVERY_SHIFT) + 1
                return msg
        return None

    def reserve(self, timeout=None, visibility_timeout=None):
        """Take the next message as a ProcessMessage, at least once: unless
        msg.ack() comes within visibility_timeout seconds (default: the
        queue's), or if this process dies first, it goes back into the queue
        for any process to take. Waits up to timeout seconds (None: for
        ever) for a message, then raises queue.Empty."""
        self._check_open()
        cdef int64_t deadline = _deadline(True, timeout)
        cdef uint64_t visibility_ns = (
            self._q.ctl.visibility_ns if visibility_timeout is None
            else _visibility_ns(visibility_timeout)
        )
        cdef flq_mq_lane *flight = self._own_flight()
        cdef int polls = 0
        cdef int64_t spin_until = 0
        cdef ProcessMessage msg
        while True:
            msg = self._reserve_from(flight, visibility_ns)
            if msg is not None:
                return msg
            if self._reap(False):
                continue
            if deadline >= 0 and flq_now_ns() >= deadline:
                raise Empty
            self._await_ready(deadline, &spin_until, &polls)

    cdef bint _settle(self, ProcessMessage msg, bint requeue) except -1:
        """ack (requeue False) or nack(requeue=True) a reservation."""
        self._check_open()
        cdef flq_mq_lane *lane = flq_flight_lane_at(&self._q, <uint64_t>msg._flight)
        cdef flq_mq_rec rec
        cdef flq_flight_hdr *h = flq_flight_hdr_at(&self._q, lane, msg._idx, &rec)
        cdef uint64_t state = flq_flight_state(FLQ_FLIGHT_RESERVED, 0, msg._idx)
        cdef bint done
        if h == NULL:
            return False
        if requeue:
            done = self._requeue(lane, msg._idx, state, -1)
        else:
            done = flq_flight_cas(h, &state, msg._idx, FLQ_FLIGHT_SETTLED, 0)
        if msg._pid == _pid:
            flq_flight_reclaim(&self._q, lane)
        return done

    @property
    def async_q(self):
        """This queue's asyncio face (flinq.aio.async_queue), as on every flinq queue."""
        from flinq.aio import async_queue
        return async_queue(self)

    def qsize(self):
        """Number of messages in the queue now (all producers)."""
        self._check_open()
        return flq_mq_size(&self._q)

    def empty(self):
        """True if the queue holds no message now."""
        return self.qsize() == 0

    def full(self):
        """True if maxsize > 0 and the queue holds maxsize messages now."""
        self._check_open()
        return self._q.ctl.maxsize != 0 and flq_mq_size(&self._q) >= self._q.ctl.maxsize

    def close(self):
        """Stop using the queue in this process; in the creating process,
        also remove its name (processes attached already keep using it).
        Further calls on this object raise ValueError; close() again is a no-op."""
        if self._closed:
            return
        self._closed = True
        # Wake this process's sleepers, so that they see the close.
        flq_shm_wait_notify(&self._q.ctl.not_empty, 1)
        flq_shm_wait_notify(&self._q.ctl.not_full, 1)
        self._seg.unlink()

    def join_thread(self):
        """Accepted for multiprocessing.Queue compatibility: there is no
        feeder thread, a put has reached the queue when it returns."""

    def cancel_join_thread(self):
        """Accepted for multiprocessing.Queue compatibility (no feeder thread)."""

    def stats(self):
        """A snapshot of the queue as a dict.

        depth (messages now), in_flight (reserved, not yet acked or put
        back), enqueued and dequeued (totals since creation, all processes;
        a message put back after its reservation counts again), maxsize, buffer_bytes (per producer), max_producers,
        lanes_used, producers (pids owning a lane, dead ones included until
        a new producer takes their lane), getters_waiting and
        putters_waiting (threads counted in a wait, in any process; a
        process killed while waiting stays counted), name.
        """
        self._check_open()
        cdef uint64_t used = flq_mq_lanes_used(&self._q)
        cdef uint64_t enqueued = 0, dequeued = 0, i, head
        cdef flq_mq_lane *lane
        producers = []
        for i in range(used):
            lane = flq_mq_lane_at(&self._q, i)
            head = flq_mq_head(lane)
            dequeued += head
            enqueued += head + flq_mq_ready(lane, head)
            producers.append(flq_mq_lane_owner(lane))
        cdef uint64_t in_flight = 0
        for i in range(flq_flight_lanes_used(&self._q)):
            in_flight += flq_flight_unsettled(&self._q, flq_flight_lane_at(&self._q, i))
        return {
            "name": self._seg.name,
            "depth": enqueued - dequeued,
            "in_flight": in_flight,
            "enqueued": enqueued,
            "dequeued": dequeued,
            "maxsize": self._q.ctl.maxsize,
            "buffer_bytes": self._largest(),
            "max_producers": self._q.nlanes,
            "lanes_used": used,
            "producers": producers,
            "getters_waiting": self._q.ctl.not_empty.waiters,
            "putters_waiting": self._q.ctl.not_full.waiters,
        }

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


@cython.final
cdef class ProcessMessage:
    """A message reserved from a ProcessQueue (at least once).

    ack() when done with it; nack() to put it back now. Unless acked within
    the visibility timeout, or if the reserving process dies, it goes back
    into the queue by itself. Use it as a context manager to ack on success
    and nack on an exception.
    """
    cdef ProcessQueue _queue
    cdef int64_t _flight
    cdef uint64_t _idx
    cdef uint32_t _pid
    cdef object _body
    cdef uint32_t _attempts
    cdef bint _settled

    @property
    def body(self):
        """The message."""
        return self._body

    @property
    def attempts(self):
        """Deliveries so far, this one included (1 on the first; counts up
        to 32)."""
        return self._attempts

    @property
    def settled(self):
        """Whether ack() or nack() was called on it here."""
        return self._settled

    def ack(self):
        """Mark it done. Returns False if it was no longer reserved (its
        visibility timeout passed and it went back into the queue)."""
        if self._settled:
            return False
        self._settled = True
        return self._queue._settle(self, False)

    def nack(self, requeue=True):
        """Give it up: back into the queue now (requeue=True), or dropped.
        Returns False if it was no longer reserved."""
        if self._settled:
            return False
        self._settled = True
        return self._queue._settle(self, bool(requeue))

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if not self._settled:
            if kind is None:
                self.ack()
            else:
                self.nack()
        return False

    def __repr__(self):
        return f"<flinq.ProcessMessage attempts={self._attempts} settled={self._settled}>"
