# Included by _core.pyx: subclasses as the stdlib knows them. A subclass
# that overrides queue.Queue's storage hooks gets queue.Queue's algorithm
# over them; the stdlib's internals flinq lacks say what to use instead.

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
