# Included by _core.pyx: what the core offers code built on a queue beyond
# the queue's user-facing API. A durable backend keeps its ready messages in
# an in-memory queue and drives it through a BackendAccess; consumers run
# their hot loop through serve(). Both are public names of flinq._core,
# documented here, so that no other file needs a queue's private members.

@cython.final
cdef class BackendAccess:
    """What a durable backend may do to the in-memory queue (a flinq.Queue
    or a subclass kind: PriorityQueue, LifoQueue) that holds its ready
    messages, beyond the queue's public API.

    A backend logs a change to its storage and makes it visible in memory
    in two steps, and settles deliveries itself; these methods are those
    steps. Every method runs with the GIL held and changes nothing when it
    raises. In the queue's terms:
      depth       items stored now (qsize(), stats' depth)
      unfinished  items stored and not yet done (task_done, join)
      room        maxsize minus depth minus room held by hold_room
    """

    cdef readonly Queue queue

    def __init__(self, Queue queue not None):
        if queue._hooked:
            raise TypeError("a queue that overrides the stdlib's storage hooks cannot back "
                            "a durable queue")
        self.queue = queue

    def restore(self, items, priority=None):
        """Store items that already had a place in the queue (reloaded from
        disk, redelivered, dead letters moved in): never waits for room
        (depth may pass maxsize) and is not refused after shutdown() (after
        shutdown(immediate=True) they are dropped, as the queue's own items
        were). Each adds 1 to depth, unfinished and the arrivals of stats()
        (enqueued, unless note() counts it as redelivered) and wakes a
        getter. priority: the keyed priority on a PriorityQueue, else None."""
        _restore_items(self.queue, items, priority)

    def hold_room(self, n, block=True, timeout=None):
        """Wait, as put_many() of n items would, until n more items fit, then
        hold that room (counted against maxsize, not in depth) until
        push_held() or release_room(). For a backend that logs a message
        between finding it room and storing it, so a put refused for room
        (queue.Full) has logged nothing. Raises what put_many() raises
        (queue.Full, ShutDown, ValueError for n > maxsize) and then holds
        nothing. An unbounded queue only checks for shutdown."""
        cdef Queue queue = self.queue
        cdef Py_ssize_t count = n
        if count < 0:
            raise ValueError("n must not be negative")
        if queue._is_shutdown:
            raise ShutDown
        if queue._limit:
            if count > queue._limit:
                raise ValueError(f"{count} items can never fit in maxsize={queue._limit}")
            if queue._count + queue._pushing + count > queue._limit or timeout is not None:
                queue._wait_for_room(count, block, timeout)
        queue._pushing += count

    def release_room(self, n):
        """Give back room that hold_room(n) held, storing nothing; wakes
        putters waiting for room."""
        cdef Queue queue = self.queue
        cdef Py_ssize_t count = n
        if not 0 <= count <= queue._pushing:
            raise ValueError(f"{count} slots of room were not held")
        queue._pushing -= count
        if queue._limit:
            queue._signal(WATCH_ROOM, 1)

    def push_held(self, items, priority=None):
        """Store items into the room hold_room(len(items)) held for them:
        restore() for items that had their room held."""
        cdef Queue queue = self.queue
        cdef Py_ssize_t count = len(items)
        if not 0 <= count <= queue._pushing:
            raise ValueError(f"room for {count} items was not held")
        queue._pushing -= count
        try:
            _restore_items(queue, items, priority)
        except BaseException:
            queue._pushing += count  # still held: the caller may release it
            raise

    def done(self, n):
        """task_done() n times at once (settled deliveries): subtracts n from
        unfinished and wakes join() when it reaches 0. ValueError, changing
        nothing, if n is more than unfinished."""
        cdef Queue queue = self.queue
        cdef Py_ssize_t count = n
        if not 0 <= count <= queue._unfinished:
            raise ValueError("task_done() called too many times")
        queue._unfinished -= count
        if count and queue._unfinished == 0:
            queue._signal(WATCH_DONE, 1)

    def note(self, int kind, n=1):
        """Add n to the stats() counter kind, NOTE_KINDS[name] with name one
        of acked, nacked, redelivered, dead_lettered, expired, for deliveries
        the backend settles itself. Changes no other count: pair it with
        done() or restore() as the delivery's fate asks (redelivered: before
        the restore(), so that the enqueue rates leave it out exactly)."""
        cdef Py_ssize_t count = n
        if not 0 <= kind < 5:
            raise ValueError(f"unknown kind {kind}; see NOTE_KINDS")
        if count < 0:
            raise ValueError("n must not be negative")
        if kind == NOTE_REDELIVERED:
            self.queue._count_redelivered(count)  # rates leave redeliveries out
        else:
            self.queue._counts[kind] += count

    def __repr__(self):
        return f"<flinq._core.BackendAccess to {self.queue!r}>"


cdef int _restore_items(_QueueCore queue, object items, object priority) except -1:
    cdef object batch = PySequence_Tuple(items)  # ours: see _put_many
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(batch)
    if n:
        if priority is None:
            queue._push(PySequence_Fast_ITEMS(batch), n, 0, False)
        else:
            queue._push(PySequence_Fast_ITEMS(batch), n, _priority_value(priority), True)
    return 0


def serve(_QueueCore queue not None, handler, Py_ssize_t prefetch, timeout, settle_failed,
          WorkerState state not None):
    """One step of a consume() worker on an in-memory queue (the Consumer's
    hot loop, in C): handle up to prefetch messages, taking each from queue
    only when its turn comes (so a stopping worker holds nothing back and
    the queue keeps its order), waiting up to timeout seconds for the
    first. handler(msg) returning acks msg unless the handler settled it; on
    an exception settle_failed(msg, exc) settles it (the handler's exception is
    re-raised unless it is an Exception; one from settle_failed is logged, and
    the message nacked). Stops after the message in hand once
    state.stopping is set; counts handler calls in state.calls. Returns how
    many messages were taken; raises ShutDown once the queue is shut down
    and empty."""
    cdef int64_t deadline
    cdef Py_ssize_t taken = 0
    cdef LocalMessage message
    if queue._hooked:
        raise _hooks_refuse("consume")
    deadline = _deadline(True, timeout)
    while taken < prefetch and not state.stopping:
        if queue._count == 0 and taken:
            break  # come back to the worker loop rather than wait here
        try:
            message = queue._reserve_one(deadline)
        except Empty:
            break
        taken += 1
        state.calls += 1
        try:
            handler(message)
        except BaseException as error:
            try:
                settle_failed(message, error)
            except Exception:
                _log.exception("flinq: handling a failed message went wrong")
            finally:
                if not message._settled:  # settle_failed failed: never strand it
                    message._settled = True
                    queue._counts[NOTE_NACKED] += 1
                    message._back_from_delay()
            if not isinstance(error, Exception):
                raise
        else:
            if not message._settled:
                message._settled = True
                queue._acked()
    return taken
