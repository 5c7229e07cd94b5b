# Included by _core.pyx: where items live. The _Storage interface is declared
# in _core.pxd; here are its three kinds (chain, keyed or compared heap,
# LIFO) and the visitors they lend to C.

# ---- storage ---------------------------------------------------------------------

cdef class _Storage:
    """Where a queue keeps its items; it holds one reference to each.

    Storage numbers items in the order they arrive (0, 1, ...) and reports
    each item's departure to the owning queue's metrics (metrics.h), which
    need to know which arrival left.
    """

    # Attributes (declared in _core.pxd): runs_no_python, True if push and
    # pop never run Python code (so never release the GIL); metrics, the
    # owning queue's, set by it before any use.

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

    # A block of its own (the chain needs 64-byte alignment). The owning queue
    # may push to it directly (put()'s fast path); so push() below must stay
    # exactly "flq_chain_push, then take a reference".
    cdef flq_chain *chain

    def __cinit__(self):
        self.chain = flq_chain_new()
        if self.chain == NULL:
            raise MemoryError
        self.runs_no_python = True

    def __dealloc__(self):
        cdef PyObject *item
        if self.chain == NULL:
            return
        while flq_chain_pop_many_serial(self.chain, <void **>&item, 1):
            Py_DECREF(<object>item)
        flq_chain_free(self.chain)

    cdef int push(self, object item, int64_t priority, bint keyed) except -1:
        if flq_chain_push(self.chain, <void *>item) != 0:
            raise MemoryError
        Py_INCREF(item)
        return 0

    cdef Py_ssize_t push_many(self, PyObject **items, Py_ssize_t n,
                              int64_t priority, bint keyed) except -1:
        cdef Py_ssize_t stored = flq_chain_push_many(self.chain, <void **>items, n)
        cdef Py_ssize_t i
        for i in range(stored):
            Py_INCREF(<object>items[i])
        return stored  # the chain cannot give back what it took

    cdef Py_ssize_t pop_many(self, PyObject **out, Py_ssize_t n, int64_t *priorities) except -1:
        cdef Py_ssize_t i
        cdef Py_ssize_t taken = flq_chain_pop_many_serial(self.chain, <void **>out, n)
        flq_metrics_departed_fifo(self.metrics, taken, 1)
        if priorities != NULL:
            for i in range(taken):
                priorities[i] = 0
        return taken

    cdef list drain(self):
        cdef PyObject *item
        cdef list items = []
        while flq_chain_pop_many_serial(self.chain, <void **>&item, 1):
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
        return flq_chain_visit(self.chain, _visit_chain_item, &v)


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
                sleep_on_park(&self._compare_done, key, -1)
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
