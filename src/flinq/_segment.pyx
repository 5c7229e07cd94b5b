# cython: language_level=3, embedsignature=True, embedsignature.format=clinic, binding=False
"""The Python side of flinq's shared-memory layer.

Segments (include/flinq/shmseg.h): create or attach (by name or by a
descriptor handed down by a parent process), header check, removal of the
name by the creating process, unmapping when the last reference goes. The
structure inside (after the 64-byte header) belongs to the caller, which
fills it and then calls flq_shm_publish before handing the name out.

Waiting (include/flinq/shmwait.h): spin_before_sleep, the bounded polling
a waiter does before it commits to sleeping, and sleep_on_shm, flinq._core's
signal-aware sleep over a wait word in a segment.
"""

cimport cython
from libc.errno cimport EEXIST, ENOENT
from libc.stdint cimport int64_t, uint32_t, uint64_t

from flinq._core cimport sleep_until, wait_ops
from flinq._headers cimport flq_now_ns
from flinq._shm cimport (
    FLQ_SHM_BAD_KIND, FLQ_SHM_BAD_SIZE, FLQ_SHM_BAD_VERSION, FLQ_SHM_NOT_READY, FLQ_SHM_OK,
    FLQ_SHM_VERSION, flq_shm_attach, flq_shm_check, flq_shm_close_fd, flq_shm_create,
    flq_shm_header, flq_shm_map_fd, flq_shm_pid, flq_shm_relax, flq_shm_unlink, flq_shm_unmap,
    flq_shm_wait, flq_shm_wait_cancel, flq_shm_wait_notify, flq_shm_wait_sleep, flq_shm_yield,
)

import os as _os
import weakref as _weakref


def _unlink_if_creator(bytes path, uint32_t creator_pid):
    """Remove the segment's name, from the creating process only (a forked
    child holds a copy of its parent's objects)."""
    if flq_shm_pid() == creator_pid:
        flq_shm_unlink(path)


@cython.final
cdef class Segment:
    """One named shared-memory segment mapped into this process.

    The mapping and a file descriptor of the segment live as long as this
    object (the descriptor lets a spawned child map the segment without its
    name); the name lives until the creating process calls unlink() (or
    this object is collected there).
    """

    def __cinit__(self):
        self.base = NULL
        self.size = 0
        self.fd = -1

    def __dealloc__(self):
        if self.base != NULL:
            flq_shm_unmap(self.base, self.size)
            self.base = NULL
        flq_shm_close_fd(self.fd)
        self.fd = -1

    cdef const flq_shm_header *header(self):
        return <const flq_shm_header *>self.base

    def unlink(self):
        """Remove the name now (creator only; later attaches fail)."""
        if self._unlink is not None:
            self._unlink()


cdef Segment _mapped(str name, void *base, uint64_t size, int fd):
    """A Segment that owns the mapping base (size bytes) and the descriptor fd."""
    cdef Segment seg = Segment.__new__(Segment)
    seg.base = base
    seg.size = size
    seg.fd = fd
    seg.name = name
    return seg


cdef Segment create_segment(str name, bytes path, uint64_t size):
    """A new zero-filled segment of size bytes at path (shm_open's name),
    called name in messages; FileExistsError when path is taken."""
    cdef void *base = NULL
    cdef int fd = -1
    cdef int err = flq_shm_create(path, size, &base, &fd)
    if err == EEXIST:
        raise FileExistsError(err, f"a shared-memory segment named {name!r} exists already")
    if err != 0:
        raise OSError(err, f"cannot create shared memory {name!r} of {size} bytes: {_os.strerror(err)}")
    cdef Segment seg = _mapped(name, base, size, fd)
    seg._unlink = _weakref.finalize(seg, _unlink_if_creator, path, flq_shm_pid())
    return seg


cdef Segment attach_segment(str name, bytes path, uint32_t kind, str what):
    """Map the segment at path and check that it holds a published `what`
    of kind (ValueError if not; FileNotFoundError if there is none)."""
    cdef void *base = NULL
    cdef uint64_t size = 0
    cdef int fd = -1
    cdef int err = flq_shm_attach(path, &base, &size, &fd)
    if err == ENOENT:
        raise FileNotFoundError(err, f"no flinq {what} named {name!r}")
    if err != 0:
        raise OSError(err, f"cannot attach shared memory {name!r}: {_os.strerror(err)}")
    cdef Segment seg = _mapped(name, base, size, fd)
    _check(seg, kind, what)
    return seg


cdef Segment map_segment_fd(int fd, str name, uint32_t kind, str what):
    """Map the segment open as fd (ours to close) and check it as
    attach_segment does."""
    cdef void *base = NULL
    cdef uint64_t size = 0
    cdef int err = flq_shm_map_fd(fd, &base, &size)
    if err != 0:
        flq_shm_close_fd(fd)
        raise OSError(err, f"cannot map shared memory {name!r}: {_os.strerror(err)}")
    cdef Segment seg = _mapped(name, base, size, fd)
    _check(seg, kind, what)
    return seg


cdef int _check(Segment seg, uint32_t kind, str what) except -1:
    """Refuse a mapping that is not a published segment of kind."""
    cdef str name = seg.name
    cdef int verdict = flq_shm_check(seg.base, seg.size, kind)
    if verdict == FLQ_SHM_OK:
        return 0
    if verdict == FLQ_SHM_BAD_VERSION:
        raise ValueError(
            f"shared memory {name!r} holds flinq format version {seg.header().version}; "
            f"this flinq reads version {FLQ_SHM_VERSION}"
        )
    if verdict == FLQ_SHM_BAD_KIND:
        raise ValueError(f"shared memory {name!r} holds another kind of flinq structure, not a {what}")
    if verdict == FLQ_SHM_NOT_READY:
        raise ValueError(f"shared memory {name!r} was never finished by its creator")
    if verdict == FLQ_SHM_BAD_SIZE:
        raise ValueError(f"shared memory {name!r} is corrupted: its size disagrees with its header")
    raise ValueError(f"shared memory {name!r} is not a flinq {what} (bad magic: corrupted or foreign)")


# ---- waiting ------------------------------------------------------------------

# How long a waiter keeps polling before it commits to sleeping: a futex
# sleep and the wake-up that ends it cost the two sides system calls and a
# context switch (several microseconds), which a short spin saves whenever
# the other side acts within it. The first polls only pause the CPU; later
# ones yield it, in case the process we wait for needs this core.
cdef int64_t SPIN_NS = 50 * 1000
cdef int SPIN_PAUSES = 32


cdef bint spin_before_sleep(int64_t *spin_until, int *polls, int64_t deadline) noexcept nogil:
    """One step of the polling before a sleep (both counters start at 0):
    False when the caller should sleep (or time out) now instead. Runs with
    or without the GIL."""
    cdef int64_t now = flq_now_ns()
    if spin_until[0] == 0:
        spin_until[0] = now + SPIN_NS
    if now >= spin_until[0] or (deadline > 0 and now >= deadline):
        return False
    polls[0] += 1
    if polls[0] <= SPIN_PAUSES:
        flq_shm_relax()
    else:
        flq_shm_yield()
    return True


cdef int _wait_sleep(void *w, uint32_t key, int64_t timeout_ns) noexcept nogil:
    return flq_shm_wait_sleep(<flq_shm_wait *>w, key, timeout_ns)


cdef void _wait_cancel(void *w) noexcept nogil:
    flq_shm_wait_cancel(<flq_shm_wait *>w)


cdef void _wait_notify(void *w, int all) noexcept nogil:
    flq_shm_wait_notify(<flq_shm_wait *>w, all)


cdef wait_ops _SHM_WAIT_OPS
_SHM_WAIT_OPS.sleep = _wait_sleep
_SHM_WAIT_OPS.cancel = _wait_cancel
_SHM_WAIT_OPS.notify = _wait_notify


cdef int sleep_on_shm(flq_shm_wait *w, uint32_t key, int64_t deadline, bint every_thread) except -1:
    """flinq._core's sleep_until on a shared wait word (prepared with key):
    1 when the deadline (-1: none) had passed, else 0; raises what a signal
    handler raises. every_thread: sleep in slices in every thread, not only
    in the main thread."""
    return sleep_until(&_SHM_WAIT_OPS, w, key, deadline, every_thread)
