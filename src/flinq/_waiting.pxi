# Included by _core.pyx: blocking waits (deadlines, sleeping with signals
# answered; exported to flinq's other extension modules through _core.pxd)
# and what fork() leaves behind in a child.

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


cdef int64_t deadline_ns(bint block, object timeout) except -2:
    """_deadline for the other extension modules (flinq.Queue's own calls
    stay inline: get() computes a deadline on every call)."""
    return _deadline(block, timeout)


cdef int sleep_until(const wait_ops *ops, void *w, uint32_t key, int64_t deadline,
                     bint every_thread) except -1:
    """Sleep on w (prepared with key) until notified, an early wake-up or the
    deadline (-1: none). Returns 1 when the deadline had passed (w counted
    out), else 0. The main thread (with every_thread, any thread) sleeps at
    most SIGNAL_SLICE_NS at a time; the main thread raises what a signal
    handler raises."""
    cdef int64_t timeout_ns = -1
    cdef int64_t now
    cdef bint in_main = PyThread_get_thread_ident() == _main_thread_ident
    cdef int rc
    if deadline >= 0:
        now = flq_now_ns()
        if now >= deadline:
            ops.cancel(w)
            return 1
        timeout_ns = deadline - now
    if (in_main or every_thread) and (timeout_ns < 0 or timeout_ns > SIGNAL_SLICE_NS):
        timeout_ns = SIGNAL_SLICE_NS
    with nogil:
        rc = ops.sleep(w, key, timeout_ns)
    if in_main and PyErr_CheckSignals() < 0:
        if rc == 0:
            # We consumed a wake-up meant for someone who will now not act
            # on it; pass it on so no item is left with sleepers.
            ops.notify(w, 0)
        return -1
    return 0


cdef int _park_sleep(void *park, uint32_t key, int64_t timeout_ns) noexcept nogil:
    return flq_park_wait(<flq_park *>park, key, timeout_ns)


cdef void _park_cancel(void *park) noexcept nogil:
    flq_park_cancel(<flq_park *>park)


cdef void _park_notify(void *park, int all) noexcept nogil:
    # Called with the GIL held (sleep_until passes a wake-up on after its
    # sleep), as flq_park_notify_locked requires.
    flq_park_notify_locked(<flq_park *>park, all)


cdef wait_ops _PARK_OPS
_PARK_OPS.sleep = _park_sleep
_PARK_OPS.cancel = _park_cancel
_PARK_OPS.notify = _park_notify


cdef int sleep_on_park(flq_park *park, uint32_t key, int64_t deadline) except -1:
    """sleep_until on a park (flinq/park.h), slicing in the main thread only."""
    return sleep_until(&_PARK_OPS, park, key, deadline, False)

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
