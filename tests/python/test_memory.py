"""Reference counts and memory: nothing leaks through put/get, errors or teardown."""

from __future__ import annotations

import gc
import os
import sys
import tracemalloc
import weakref
from itertools import repeat

import pytest
from qhelpers import ALL_CLASSES, cls_id

import flinq

KINDS = ["Queue", "LifoQueue", "PriorityQueue", "PriorityQueue-fast", "SimpleQueue"]
CLASSES = {
    "Queue": flinq.Queue,
    "LifoQueue": flinq.LifoQueue,
    "PriorityQueue": flinq.PriorityQueue,
    "PriorityQueue-fast": flinq.PriorityQueue,
    "SimpleQueue": flinq.SimpleQueue,
}
kinds = pytest.mark.parametrize("kind", KINDS)
all_classes = pytest.mark.parametrize("cls", ALL_CLASSES, ids=cls_id)

MILLION = 1_000_000


class Item:
    """A weak-referenceable, comparable item."""

    def __init__(self, v=0):
        self.v = v

    def __lt__(self, other):
        return self.v < other.v


class Ops:
    """put / put_many in the style of the queue kind."""

    def __init__(self, kind, maxsize=0):
        self.kind = kind
        cls = CLASSES[kind]
        self.q = cls() if cls is flinq.SimpleQueue else cls(maxsize)
        self.kw = {"priority": 3} if kind == "PriorityQueue-fast" else {}

    def put(self, item):
        self.q.put(item, **self.kw)

    def put_nowait(self, item):
        self.q.put_nowait(item, **self.kw)

    def put_many(self, items, **kw):
        self.q.put_many(items, **kw, **self.kw)


def refcount(obj):
    return sys.getrefcount(obj)


# --------------------------------------------------------------------------- reference counts


@kinds
def test_refcount_unchanged_after_put_get_cycles(kind):
    ops = Ops(kind)
    obj = Item()
    before = refcount(obj)
    for _ in range(1000):
        ops.put(obj)
        assert ops.q.get() is obj
    for _ in range(1000):
        ops.put_nowait(obj)
    assert refcount(obj) == before + 1000  # exactly one reference per stored item
    for _ in range(1000):
        ops.q.get_nowait()
    assert refcount(obj) == before


@kinds
@pytest.mark.parametrize("n", [1, 100, 1000])  # 1000: past any stack buffer in get_many
def test_refcount_unchanged_after_put_many_get_many(kind, n):
    ops = Ops(kind)
    obj = Item()
    batch = [obj] * n
    before = refcount(obj)
    for _ in range(20):
        ops.put_many(batch)
        got = []
        while len(got) < n:
            got += ops.q.get_many(n)
        assert len(got) == n
        assert all(g is obj for g in got)
        del got
    assert refcount(obj) == before


@kinds
def test_refcount_restored_when_queue_deleted(kind):
    ops = Ops(kind)
    obj = Item()
    before = refcount(obj)
    for _ in range(500):
        ops.put(obj)
    ops.put_many([obj] * 500)
    assert refcount(obj) == before + 1000
    del ops
    assert refcount(obj) == before


@pytest.mark.parametrize("kind", ["Queue", "LifoQueue", "PriorityQueue", "PriorityQueue-fast"])
def test_refcount_unchanged_by_full_errors(kind):
    ops = Ops(kind, maxsize=2)
    obj = Item()
    filler = Item()
    ops.put(filler)
    ops.put(filler)
    before = refcount(obj)
    for _ in range(200):
        with pytest.raises(flinq.Full):
            ops.put_nowait(obj)
        with pytest.raises(flinq.Full):
            ops.q.put(obj, timeout=0, **ops.kw)
        with pytest.raises(flinq.Full):
            ops.put_many([obj], block=False)
        with pytest.raises(ValueError):
            ops.put_many([obj, obj, obj])
    assert refcount(obj) == before


@pytest.mark.parametrize("kind", ["Queue", "LifoQueue", "PriorityQueue", "PriorityQueue-fast"])
def test_refcount_unchanged_by_shutdown_errors(kind):
    ops = Ops(kind)
    obj = Item()
    before = refcount(obj)
    ops.q.shutdown()
    for _ in range(200):
        with pytest.raises(flinq.ShutDown):
            ops.put(obj)
        with pytest.raises(flinq.ShutDown):
            ops.put_many([obj, obj])
    assert refcount(obj) == before


@pytest.mark.parametrize("kind", ["Queue", "LifoQueue", "PriorityQueue", "PriorityQueue-fast"])
def test_refcount_released_by_immediate_shutdown(kind):
    ops = Ops(kind)
    obj = Item()
    before = refcount(obj)
    ops.put_many([obj] * 300)
    ops.q.shutdown(immediate=True)
    assert refcount(obj) == before


def test_refcount_unchanged_by_style_errors():
    obj = Item()
    before = refcount(obj)
    fast = flinq.PriorityQueue()
    fast.put(Item(), priority=1)
    drop_in = flinq.PriorityQueue()
    drop_in.put(Item())
    for _ in range(200):
        with pytest.raises(TypeError):
            fast.put(obj)
        with pytest.raises(TypeError):
            fast.put_many([obj, obj])
        with pytest.raises(TypeError):
            drop_in.put(obj, priority=1)
        with pytest.raises(TypeError):
            drop_in.put(obj, priority=1.5)
        with pytest.raises(OverflowError):
            fast.put(obj, priority=2**64)
    assert refcount(obj) == before


class Boom(Exception):
    pass


class Raising:
    def __lt__(self, other):
        raise Boom

    def __gt__(self, other):
        raise Boom


def test_refcount_unchanged_by_failing_comparisons():
    q = flinq.PriorityQueue()
    for v in range(10):
        q.put(Item(v))
    obj = Raising()
    before = refcount(obj)
    for _ in range(200):
        with pytest.raises(Boom):
            q.put(obj)
    assert refcount(obj) == before
    assert q.qsize() == 10


def test_refcount_unchanged_by_failing_put_many():
    q = flinq.PriorityQueue()
    for v in range(10):
        q.put(Item(v))
    obj = Item(5)
    before = refcount(obj)
    for _ in range(50):
        with pytest.raises(Boom):
            q.put_many([obj, Raising(), obj])
    assert refcount(obj) == before
    assert q.qsize() == 10


@all_classes
def test_refcount_of_shared_constant(cls):
    q = cls()
    obj = 123456789
    before = refcount(obj)
    kw = {"priority": 0} if cls is flinq.PriorityQueue else {}
    for _ in range(1000):
        q.put(obj, **kw)
    for _ in range(1000):
        q.get()
    assert refcount(obj) == before


# --------------------------------------------------------------------------- weakrefs


@kinds
def test_dropped_queue_releases_items(kind):
    ops = Ops(kind)
    freed = []
    refs = []
    for i in range(200):
        item = Item(i)
        refs.append(weakref.ref(item, lambda _r: freed.append(1)))
        ops.put(item)
    ops.put_many([Item(i) for i in range(50)])
    del item
    assert len(freed) == 0
    del ops
    assert len(freed) == 200  # immediately, without a gc pass
    assert all(r() is None for r in refs)


@kinds
def test_item_released_after_get(kind):
    ops = Ops(kind)
    item = Item()
    ref = weakref.ref(item)
    ops.put(item)
    del item
    assert ref() is not None  # the queue keeps it alive
    got = ops.q.get()
    assert ref() is got
    del got
    assert ref() is None  # and holds no reference after handing it out


@pytest.mark.parametrize("kind", ["Queue", "LifoQueue", "PriorityQueue", "PriorityQueue-fast"])
def test_immediate_shutdown_releases_items(kind):
    ops = Ops(kind)
    items = [Item(i) for i in range(100)]
    refs = [weakref.ref(it) for it in items]
    ops.put_many(items)
    del items
    assert all(r() is not None for r in refs)
    ops.q.shutdown(immediate=True)
    assert all(r() is None for r in refs)


@kinds
def test_queue_in_reference_cycle_is_collected(kind):
    # An item that refers back to its queue: only the cycle collector can free both.
    ops = Ops(kind)
    item = Item()
    item.q = ops.q
    ops.put(item)
    q_ref = weakref.ref(ops.q)
    item_ref = weakref.ref(item)
    del ops, item
    gc.collect()
    assert item_ref() is None, "item in a queue<->item cycle was never freed"
    assert q_ref() is None


@all_classes
def test_queue_supports_weakref(cls):
    q = cls()
    ref = weakref.ref(q)
    assert ref() is q
    del q
    assert ref() is None


# --------------------------------------------------------------------------- traced memory / RSS


def _rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def _drain_batches(q, n):
    got = 0
    while got < n:
        got += len(q.get_many(65536))
    assert got == n


@pytest.fixture
def traced():
    tracemalloc.start()
    yield
    tracemalloc.stop()


@pytest.mark.parametrize("kind", ["Queue", "LifoQueue", "PriorityQueue-fast", "SimpleQueue"])
def test_memory_flat_over_million_item_batches(kind, traced):
    ops = Ops(kind)
    obj = Item()
    batch = [obj] * MILLION
    rc0 = refcount(obj)

    def one_round():
        ops.put_many(batch)
        assert ops.q.qsize() == MILLION
        _drain_batches(ops.q, MILLION)
        assert ops.q.empty()

    one_round()  # warm-up: the queue's storage reaches its working size
    gc.collect()
    traced0 = tracemalloc.get_traced_memory()[0]
    rss0 = _rss_bytes()
    for _ in range(3):
        one_round()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - traced0
    assert grown < 1 << 20, f"traced memory grew by {grown} bytes over 3M put/get"
    if rss0 is not None:
        rss_grown = _rss_bytes() - rss0
        assert rss_grown < 16 << 20, f"RSS grew by {rss_grown} bytes over 3M put/get"
    assert refcount(obj) == rc0  # one leaked reference per item would show here


def _single_ops(kind, q):
    """(put, get) loops of n calls each, allocating nothing per call themselves
    (itertools.repeat, not range: no int objects for tracemalloc to trace)."""
    get = q.get_nowait
    if kind == "PriorityQueue-fast":
        put_nowait = q.put_nowait

        def put_n(obj, n):
            for _ in repeat(None, n):
                put_nowait(obj, priority=3)

        def cycle_n(obj, n):
            for _ in repeat(None, n):
                put_nowait(obj, priority=3)
                get()
    else:
        put_nowait = q.put_nowait

        def put_n(obj, n):
            for _ in repeat(None, n):
                put_nowait(obj)

        def cycle_n(obj, n):
            for _ in repeat(None, n):
                put_nowait(obj)
                get()

    def get_n(n):
        for _ in repeat(None, n):
            get()

    return put_n, get_n, cycle_n


@pytest.mark.parametrize("kind", ["Queue", "LifoQueue", "PriorityQueue-fast", "SimpleQueue"])
def test_memory_flat_over_million_single_puts_then_gets(kind, traced):
    ops = Ops(kind)
    obj = Item()
    rc0 = refcount(obj)
    put_n, get_n, _ = _single_ops(kind, ops.q)
    put_n(obj, MILLION)
    get_n(MILLION)
    gc.collect()
    traced0 = tracemalloc.get_traced_memory()[0]
    rss0 = _rss_bytes()
    for _ in range(2):
        put_n(obj, MILLION)
        assert ops.q.qsize() == MILLION
        get_n(MILLION)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - traced0
    assert grown < 1 << 20, f"traced memory grew by {grown} bytes"
    if rss0 is not None:
        assert _rss_bytes() - rss0 < 16 << 20
    assert refcount(obj) == rc0


@pytest.mark.parametrize("kind", KINDS)
def test_memory_flat_over_million_put_get_cycles(kind, traced):
    ops = Ops(kind)
    obj = Item()
    rc0 = refcount(obj)
    put_n, _, cycle_n = _single_ops(kind, ops.q)
    put_n(obj, 1)  # one item stays queued, so each cycle moves through the storage
    cycle_n(obj, 100_000)
    gc.collect()
    traced0 = tracemalloc.get_traced_memory()[0]
    rss0 = _rss_bytes()
    cycle_n(obj, MILLION)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - traced0
    assert grown < 256 << 10, f"traced memory grew by {grown} bytes over 1M put/get"
    if rss0 is not None:
        assert _rss_bytes() - rss0 < 8 << 20
    assert ops.q.qsize() == 1
    assert refcount(obj) == rc0 + 1


def test_memory_released_when_big_queue_dropped(traced):
    q = flinq.Queue()
    base = tracemalloc.get_traced_memory()[0]
    q.put_many([None] * MILLION)
    held = tracemalloc.get_traced_memory()[0] - base
    assert held >= MILLION * 4  # the storage really holds the items
    del q
    gc.collect()
    left = tracemalloc.get_traced_memory()[0] - base
    assert left < 1 << 20, f"{left} bytes still traced after the queue was dropped"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["Queue", "PriorityQueue"])
def test_memory_flat_over_many_rounds_with_distinct_items(kind, traced):
    # Distinct items (not one shared object): a leaked reference keeps items alive.
    ops = Ops(kind)
    n = 200_000

    def one_round():
        ops.put_many(Item(i) for i in range(n))
        _drain_batches(ops.q, n)

    one_round()
    gc.collect()
    traced0 = tracemalloc.get_traced_memory()[0]
    for _ in range(10):
        one_round()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - traced0
    assert grown < 1 << 20, f"traced memory grew by {grown} bytes"
