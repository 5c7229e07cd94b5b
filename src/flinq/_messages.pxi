# Included by _core.pyx: what a delivery carries. _Redelivery stands in
# storage for an item given back by nack(); LocalMessage is what reserve()
# hands out; WorkerState is a consume() worker's stop flag.

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

# ---- messages ------------------------------------------------------------------------

@cython.final
cdef class WorkerState:
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
    Once dead-lettered (by a consumer, or nack(requeue=False)), error_type
    and error say why: the error's type name and text, or "" and the
    reason when no error was given; None before. A consumer's dead-letter
    queue receives the message itself, settled (it pickles then).
    """

    cdef readonly object body
    cdef readonly Py_ssize_t attempts
    cdef readonly uint64_t id
    cdef readonly object error_type
    cdef readonly object error
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

    def nack(self, requeue=True, delay=0.0, *, error=None):
        """Give the message back: ready again (as the newest arrival) after
        delay seconds, or with requeue=False dropped and counted as
        dead-lettered, error (an exception, or None) recorded in error_type
        and error. Returns False if it was already settled."""
        cdef double seconds
        cdef _QueueCore queue = self._queue
        if self._settled:
            return False
        seconds = _delay_seconds(delay)
        if not requeue:
            self._record_error(error, NACKED)
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

    cdef int _record_error(self, object error, str reason) except -1:
        """Say why it is dead-lettered (see describe_error)."""
        self.error_type, self.error = describe_error(error, reason)
        return 0

    def dead_letter(self, target, error=None):
        """Settle the message and put it, with error_type and error saying
        why, into the queue target (target.put(message)), counted as nacked
        and dead-lettered. Returns False if it was already settled; if
        target.put raises, the message stays unsettled and in flight."""
        if self._settled:
            return False
        self._record_error(error, BY_APPLICATION)
        self._settled = True  # put() may run other threads: settle once
        try:
            target.put(self)
        except BaseException:
            self._settled = False
            self.error_type = self.error = None
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
        # A settled message is a record (a dead letter, say): it pickles
        # without its queue. One in flight belongs to its queue.
        if not self._settled:
            raise TypeError("cannot pickle 'LocalMessage' object in flight (settle it first)")
        return (_settled_message, (self.body, self.id, self.attempts, self.priority,
                                   self.error_type, self.error))

    def __repr__(self):
        if self.error_type is not None:
            return (f"<flinq.LocalMessage id={self.id} attempts={self.attempts} "
                    f"dead-lettered: {self.error_type or 'no error'}: {self.error}>")
        return f"<flinq.LocalMessage id={self.id} attempts={self.attempts}>"


def _settled_message(body, id, attempts, priority, error_type, error):
    """A settled LocalMessage from its pickled fields (LocalMessage.__reduce__)."""
    cdef LocalMessage message = LocalMessage.__new__(LocalMessage)
    message.body = body
    message.id = id
    message.attempts = attempts
    message._keyed = priority is not None
    message._priority = priority if priority is not None else 0
    message.error_type = error_type
    message.error = error
    message._settled = True
    return message
