# Included by _core.pyx: type slots written by hand. The cycle collector's
# traverse/clear, which must see items held in C, and lean METH_FASTCALL
# put() and get().

# ---- garbage collection --------------------------------------------------------
# Items live in C structures that Cython's generated tp_traverse/tp_clear do
# not know about. These slots extend them, so that a queue caught in a
# reference cycle (say, holding an object that refers to the queue) is
# collected like the stdlib's queues.

cdef extern from "Python.h":
    ctypedef int (*visitproc)(PyObject *, void *) noexcept
    ctypedef int (*traverseproc)(PyObject *, visitproc, void *) noexcept
    ctypedef int (*inquiry)(PyObject *) noexcept
    ctypedef struct _TypeSlots "PyTypeObject":
        traverseproc tp_traverse
        inquiry tp_clear

cdef traverseproc _core_traverse = (<_TypeSlots *><void *>_QueueCore).tp_traverse


cdef int _queue_traverse(PyObject *o, visitproc visit, void *arg) noexcept:
    cdef int r = _core_traverse(o, visit, arg)
    if r:
        return r
    cdef _QueueCore q = <_QueueCore><object>o
    if q._store is None:
        return 0
    return q._store.visit(<_item_visitor>visit, arg)


cdef int _queue_clear(PyObject *o) noexcept:
    # Break cycles through the items by swapping in an empty storage of the
    # same kind: the old one releases them in its __dealloc__, with no
    # comparison run, and the queue stays usable (and empty) for any
    # finalizer that still reaches it.
    cdef _QueueCore q = <_QueueCore><object>o
    if q._store is not None and q._count:
        old = q._store
        q._attach(type(old)())
        if isinstance(old, _HeapStorage):  # arrival numbers go on (metrics.h)
            (<_HeapStorage>q._store)._seq = (<_HeapStorage>old)._seq
        q._wrapped = 0
        q._discarded += <uint64_t>q._count
        q._count = 0
        del old
    return 0


cdef _install_gc_slots():
    for cls in (_QueueCore, SimpleQueue, Queue, LifoQueue, PriorityQueue):
        (<_TypeSlots *><void *>cls).tp_traverse = _queue_traverse
        (<_TypeSlots *><void *>cls).tp_clear = _queue_clear


_install_gc_slots()


# ---- lean entry points for put() and get() ------------------------------------------
# Cython's generic argument parser costs about as much as the rest of a put or
# a get (measured with callgrind: ~60 of ~140 instructions per put), and on
# 3.12+ its reference counting of defaults costs more again. put() and get()
# are the hottest calls there are, so they are METH_FASTCALL functions that
# take the common call (put(item), get()) straight through and parse anything
# else with one small parser, added to the type's dict here.

cdef object _PY_TRUE = True

cdef extern from "Python.h":
    ctypedef struct PyMethodDef:
        const char *ml_name
        void *ml_meth
        int ml_flags
        const char *ml_doc
    int METH_FASTCALL
    int METH_KEYWORDS
    object PyDescr_NewMethod(PyTypeObject *cls, PyMethodDef *method)
    void PyType_Modified(PyTypeObject *cls)
    Py_ssize_t PyTuple_GET_SIZE(PyObject *t)
    PyObject *PyTuple_GET_ITEM(PyObject *t, Py_ssize_t i)
    int PyUnicode_Compare(PyObject *a, PyObject *b) except? -1
    void _incref "Py_INCREF"(PyObject *o)  # on a borrowed pointer, with no temporary


cdef int _parse_args(str method, tuple names, Py_ssize_t required, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames, PyObject **slots) except -1:
    """Fill slots[i] (preset with defaults, NULL for required ones) with the
    arguments of a METH_FASTCALL call, raising TypeError as Python would."""
    cdef Py_ssize_t i
    cdef Py_ssize_t k
    cdef Py_ssize_t most = len(names)
    cdef PyObject *name
    if nargs > most:
        raise TypeError(f"{method}() takes at most {most} positional arguments "
                        f"({nargs} given)")
    for i in range(nargs):
        slots[i] = args[i]
    if kwnames != NULL:
        for i in range(PyTuple_GET_SIZE(kwnames)):
            name = PyTuple_GET_ITEM(kwnames, i)
            for k in range(most):
                if PyUnicode_Compare(name, <PyObject *>names[k]) == 0:
                    break
            else:
                raise TypeError(f"{method}() got an unexpected keyword argument {<object>name!r}")
            if k < nargs:
                raise TypeError(f"{method}() got multiple values for argument {<object>name!r}")
            slots[k] = args[nargs + i]
    for i in range(required):
        if slots[i] == NULL:
            raise TypeError(f"{method}() missing required argument {names[i]!r}")
    return 0


cdef tuple _PUT_ARGS = ("item", "block", "timeout")
cdef tuple _GET_ARGS = ("block", "timeout")


cdef PyObject *_put_fastcall(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) except NULL:
    cdef PyObject *slots[3]
    if kwnames == NULL and nargs == 1:  # put(item): the common call
        # Into a FIFO chain with no limit to wait for, not shut down, no
        # subclass hooks: push here, as _ChainStorage.push would, and skip
        # _enqueue's checks and storage's indirect call.
        if (<_QueueCore>self)._fifo != NULL and (<_QueueCore>self)._limit == 0 \
                and not (<_QueueCore>self)._is_shutdown and not (<_QueueCore>self)._hooked:
            if flq_chain_push((<_QueueCore>self)._fifo, <void *>args[0]) != 0:
                raise MemoryError
            _incref(args[0])
            (<_QueueCore>self)._stored(1)
            _incref(<PyObject *>None)
            return <PyObject *>None
        (<_QueueCore>self)._enqueue(<object>args[0], 0, False, True, None)
        Py_INCREF(None)
        return <PyObject *>None
    slots[0] = NULL
    slots[1] = <PyObject *>_PY_TRUE  # the default block=True, as an object
    slots[2] = <PyObject *>None
    _parse_args("put", _PUT_ARGS, 1, args, nargs, kwnames, slots)
    (<_QueueCore>self)._enqueue(<object>slots[0], 0, False, <object>slots[1], <object>slots[2])
    Py_INCREF(None)
    return <PyObject *>None


cdef PyObject *_get_fastcall(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) except NULL:
    cdef PyObject *slots[2]
    cdef PyObject *out
    cdef _QueueCore q
    cdef object item
    if kwnames == NULL and nargs == 0:  # get(): the common call
        # Items there, none wrapped for redelivery, no subclass hooks: hand
        # storage's reference straight to the caller, touching no refcount
        # (the item's memory is often not in cache).
        if (<_QueueCore>self)._count and not (<_QueueCore>self)._wrapped \
                and not (<_QueueCore>self)._hooked:
            if (<_QueueCore>self)._store.pop_many(&out, 1, NULL):
                (<_QueueCore>self)._removed(1)
                return out
        q = <_QueueCore>self
        item = q._dequeue(True, None)
    else:
        slots[0] = <PyObject *>_PY_TRUE
        slots[1] = <PyObject *>None
        _parse_args("get", _GET_ARGS, 0, args, nargs, kwnames, slots)
        q = <_QueueCore>self
        item = q._dequeue(<object>slots[0], <object>slots[1])
    Py_INCREF(item)
    return <PyObject *>item


cdef PyMethodDef _put_method
_put_method.ml_name = "put"
_put_method.ml_meth = <void *>_put_fastcall
_put_method.ml_flags = METH_FASTCALL | METH_KEYWORDS
_put_method.ml_doc = (
    "put($self, /, item, block=True, timeout=None)\n--\n\n"
    "Put item into the queue, waiting for a free slot if the queue is\n"
    "bounded and full (block=False or a timeout: raise queue.Full)."
)

cdef PyMethodDef _get_method
_get_method.ml_name = "get"
_get_method.ml_meth = <void *>_get_fastcall
_get_method.ml_flags = METH_FASTCALL | METH_KEYWORDS
_get_method.ml_doc = (
    "get($self, /, block=True, timeout=None)\n--\n\n"
    "Remove and return the next item, waiting if the queue is empty\n"
    "(block=False or a timeout: raise queue.Empty; shut down: ShutDown)."
)


cdef _install_fastcall_methods():
    cdef PyTypeObject *cls = <PyTypeObject *><void *>_QueueCore
    (<dict><object>cls.tp_dict)["put"] = PyDescr_NewMethod(cls, &_put_method)
    (<dict><object>cls.tp_dict)["get"] = PyDescr_NewMethod(cls, &_get_method)
    PyType_Modified(cls)


_install_fastcall_methods()
_install_missing()
