"""Unit tests of the public API of flinq's queues (single thread)."""

from __future__ import annotations

import queue
import typing

import pytest
from qhelpers import ALL_CLASSES, BOUNDED_CLASSES, PY313, cls_id, drain

import flinq

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

all_classes = pytest.mark.parametrize("cls", ALL_CLASSES, ids=cls_id)
bounded_classes = pytest.mark.parametrize("cls", BOUNDED_CLASSES, ids=cls_id)


def make(cls, maxsize=0):
    return cls() if cls is flinq.SimpleQueue else cls(maxsize)


def expected_order(cls, items):
    """The order in which `cls` hands back `items` put one after another."""
    if cls is flinq.LifoQueue:
        return list(reversed(items))
    if cls is flinq.PriorityQueue:
        return sorted(items)
    return list(items)


# --------------------------------------------------------------------------- module


def test_exports():
    for name in ("Queue", "SimpleQueue", "LifoQueue", "PriorityQueue", "Empty", "Full"):
        assert hasattr(flinq, name), name
    assert hasattr(flinq, "ShutDown")
    assert isinstance(flinq.__version__, str)
    assert flinq.__version__


def test_exceptions_are_the_stdlib_ones():
    assert flinq.Empty is queue.Empty
    assert flinq.Full is queue.Full
    if PY313:
        assert flinq.ShutDown is queue.ShutDown
    else:
        assert issubclass(flinq.ShutDown, Exception)
        assert flinq.ShutDown.__name__ == "ShutDown"


@all_classes
def test_except_queue_empty_catches(cls):
    q = make(cls)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    caught = False
    try:
        q.get(block=False)
    except queue.Empty:
        caught = True
    assert caught


@bounded_classes
def test_except_queue_full_catches(cls):
    q = cls(1)
    q.put_nowait(1)
    with pytest.raises(queue.Full):
        q.put_nowait(2)


def _stdlib_style_program(mod):
    """Code written against the stdlib `queue` module; run with `mod` in its place."""
    log = []
    q = mod.Queue(maxsize=2)
    q.put(1)
    q.put_nowait(2)
    try:
        q.put_nowait(3)
    except mod.Full:
        log.append("full")
    log.append((q.qsize(), q.empty(), q.full()))
    log.append(q.get())
    log.append(q.get(False))
    try:
        q.get(True, 0.01)
    except mod.Empty:
        log.append("empty")
    q.task_done()
    q.task_done()
    q.join()
    try:
        q.task_done()
    except ValueError:
        log.append("too many")

    lq = mod.LifoQueue()
    for i in range(3):
        lq.put(i)
    log.append([lq.get() for _ in range(3)])

    pq = mod.PriorityQueue()
    for item in [(3, "c"), (1, "a"), (2, "b")]:
        pq.put(item)
    log.append([pq.get_nowait() for _ in range(3)])

    sq = mod.SimpleQueue()
    sq.put("x")
    sq.put_nowait("y")
    log.append((sq.qsize(), sq.empty(), sq.get(), sq.get_nowait(), sq.empty()))
    try:
        sq.get(timeout=0.01)
    except mod.Empty:
        log.append("sq empty")
    return log


def test_drop_in_for_stdlib_module():
    import flinq as fq  # the `import flinq as queue` pattern

    assert _stdlib_style_program(fq) == _stdlib_style_program(queue)


# --------------------------------------------------------------------------- construction


@bounded_classes
def test_default_maxsize_is_unbounded(cls):
    q = cls()
    assert q.maxsize == 0
    for i in range(5000):
        q.put_nowait(i)
    assert q.qsize() == 5000
    assert not q.full()


@bounded_classes
@pytest.mark.parametrize("maxsize", [0, -1, -100])
def test_non_positive_maxsize_is_unbounded(cls, maxsize):
    q = cls(maxsize)
    assert q.maxsize == maxsize
    for i in range(2000):
        q.put_nowait(i)
    assert q.qsize() == 2000
    assert not q.full()


@bounded_classes
def test_maxsize_keyword_and_attribute(cls):
    q = cls(maxsize=3)
    assert q.maxsize == 3
    assert q.stats()["maxsize"] == 3


@bounded_classes
@pytest.mark.parametrize("bad", [1.5, "3", None, [], 2.0])
def test_maxsize_must_be_int(cls, bad):
    with pytest.raises(TypeError):
        cls(bad)


def test_simple_queue_takes_no_maxsize():
    with pytest.raises(TypeError):
        flinq.SimpleQueue(3)
    with pytest.raises(TypeError):
        flinq.SimpleQueue(maxsize=3)


def test_simple_queue_has_no_bounded_queue_methods():
    # queue.SimpleQueue has no maxsize, full, task_done, join or shutdown.
    q = flinq.SimpleQueue()
    for name in ("task_done", "join", "shutdown", "full", "maxsize"):
        assert not hasattr(q, name), name


@all_classes
def test_fresh_queue_is_empty(cls):
    q = make(cls)
    assert q.qsize() == 0
    assert q.empty()
    if cls is not flinq.SimpleQueue:
        assert not q.full()


# --------------------------------------------------------------------------- order


def test_queue_is_fifo():
    q = flinq.Queue()
    for i in range(10):
        q.put(i)
    assert [q.get() for _ in range(10)] == list(range(10))


def test_lifo_queue_is_lifo():
    q = flinq.LifoQueue()
    for i in range(10):
        q.put(i)
    assert [q.get() for _ in range(10)] == list(range(9, -1, -1))


def test_lifo_interleaved():
    q = flinq.LifoQueue()
    q.put(1)
    q.put(2)
    assert q.get() == 2
    q.put(3)
    q.put(4)
    assert [q.get(), q.get(), q.get()] == [4, 3, 1]


def test_simple_queue_is_fifo():
    q = flinq.SimpleQueue()
    for i in range(10):
        q.put(i)
    assert [q.get() for _ in range(10)] == list(range(10))


@pytest.mark.parametrize("cls", [flinq.Queue, flinq.SimpleQueue], ids=cls_id)
def test_fifo_order_over_many_items(cls):
    # Many items, to cross any internal block/segment boundary.
    q = make(cls)
    n = 100_003
    for i in range(n):
        q.put_nowait(i)
    assert q.qsize() == n
    assert [q.get_nowait() for _ in range(n)] == list(range(n))
    assert q.empty()


def test_lifo_order_over_many_items():
    q = flinq.LifoQueue()
    n = 100_003
    for i in range(n):
        q.put_nowait(i)
    assert [q.get_nowait() for _ in range(n)] == list(range(n - 1, -1, -1))


@bounded_classes
@pytest.mark.parametrize("maxsize", [1, 2, 7])
def test_bounded_wraparound_keeps_order(cls, maxsize):
    # Fill and drain a small bounded queue many times (ring wrap-around).
    q = cls(maxsize)
    counter = 0
    for round_ in range(300):
        batch = []
        for _ in range(1 + round_ % maxsize):
            q.put_nowait(counter)
            batch.append(counter)
            counter += 1
        got = [q.get_nowait() for _ in batch]
        assert got == expected_order(cls, batch)
        assert q.empty()


@pytest.mark.parametrize("cls", [flinq.Queue, flinq.SimpleQueue], ids=cls_id)
def test_fifo_interleaved_put_get(cls):
    q = make(cls)
    expected = []
    got = []
    n = 0
    for step in range(5000):
        for _ in range(step % 3 + 1):
            q.put_nowait(n)
            expected.append(n)
            n += 1
        for _ in range(step % 2 + 1):
            if not q.empty():
                got.append(q.get_nowait())
    got.extend(drain(q))
    assert got == expected


def test_priority_drop_in_order():
    q = flinq.PriorityQueue()
    items = [5, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, -7, 0]
    for item in items:
        q.put(item)
    assert [q.get() for _ in items] == sorted(items)


def test_priority_drop_in_tuples():
    q = flinq.PriorityQueue()
    items = [(2, "b"), (1, "z"), (1, "a"), (3, "c"), (0, "y")]
    for item in items:
        q.put_nowait(item)
    assert drain(q) == sorted(items)


def test_priority_drop_in_many_random_items():
    import random

    rng = random.Random(1234)
    items = [rng.randint(-(10**12), 10**12) for _ in range(20_000)]
    q = flinq.PriorityQueue()
    for item in items:
        q.put_nowait(item)
    assert drain(q) == sorted(items)


def test_priority_drop_in_uses_lt_like_heapq():
    class OnlyLt:
        def __init__(self, v):
            self.v = v

        def __lt__(self, other):
            return self.v < other.v

    q = flinq.PriorityQueue()
    objs = [OnlyLt(v) for v in (3, 1, 2)]
    for obj in objs:
        q.put(obj)
    assert [q.get().v for _ in range(3)] == [1, 2, 3]


def test_priority_fast_path_order_and_fifo_ties():
    q = flinq.PriorityQueue()
    q.put("c1", priority=3)
    q.put("a1", priority=1)
    q.put("c2", priority=3)
    q.put("z", priority=-5)
    q.put("a2", priority=1)
    q.put_nowait("c3", priority=3)
    q.put_nowait("a3", priority=1)
    assert drain(q) == ["z", "a1", "a2", "a3", "c1", "c2", "c3"]


def test_priority_fast_path_returns_item_itself():
    q = flinq.PriorityQueue()
    obj = object()
    q.put(obj, priority=0)
    assert q.get() is obj


def test_priority_fast_path_items_need_not_be_comparable():
    q = flinq.PriorityQueue()
    objs = [object() for _ in range(20)]
    for obj in objs:
        q.put(obj, priority=7)  # equal priorities: FIFO, no item comparison
    assert drain(q) == objs


def test_priority_fast_path_fifo_ties_many():
    q = flinq.PriorityQueue()
    n = 10_000
    for i in range(n):
        q.put_nowait(i, priority=i % 5)
    expected = sorted(range(n), key=lambda i: (i % 5, i))
    assert drain(q) == expected


def test_priority_fast_path_int64_bounds():
    q = flinq.PriorityQueue()
    q.put("max", priority=INT64_MAX)
    q.put("min", priority=INT64_MIN)
    q.put("zero", priority=0)
    q.put("max2", priority=INT64_MAX)
    q.put("min2", priority=INT64_MIN)
    assert drain(q) == ["min", "min2", "zero", "max", "max2"]


def test_priority_fast_path_accepts_int_subclasses():
    import enum

    class Level(enum.IntEnum):
        HIGH = 0
        LOW = 10

    q = flinq.PriorityQueue()
    q.put("low", priority=Level.LOW)
    q.put("high", priority=Level.HIGH)
    q.put("mid", priority=5)
    assert drain(q) == ["high", "mid", "low"]


@all_classes
def test_none_is_a_valid_item(cls):
    q = make(cls)
    if cls is flinq.PriorityQueue:
        q.put(None, priority=1)
        q.put(None, priority=0)
    else:
        q.put(None)
        q.put(None)
    assert q.qsize() == 2
    assert q.get() is None
    assert q.get_nowait() is None
    assert q.empty()


@pytest.mark.parametrize("cls", [flinq.Queue, flinq.LifoQueue, flinq.SimpleQueue], ids=cls_id)
def test_items_are_returned_by_identity(cls):
    q = make(cls)
    objs = [object(), [], {}, "s", 1.5]
    for obj in objs:
        q.put(obj)
    got = drain(q)
    assert sorted(map(id, got)) == sorted(map(id, objs))
    assert all(any(g is o for o in objs) for g in got)


# --------------------------------------------------------------------------- sizes


@all_classes
def test_qsize_and_empty_track_contents(cls):
    q = make(cls)
    for i in range(1, 6):
        q.put(i)
        assert q.qsize() == i
        assert not q.empty()
    for i in range(4, -1, -1):
        q.get()
        assert q.qsize() == i
    assert q.empty()


@bounded_classes
def test_full_on_bounded_queue(cls):
    q = cls(3)
    q.put(1)
    q.put(2)
    assert not q.full()
    q.put(3)
    assert q.full()
    assert q.qsize() == 3
    q.get()
    assert not q.full()


@bounded_classes
def test_put_nowait_on_full_raises_and_leaves_queue_unchanged(cls):
    q = cls(3)
    for i in (10, 20, 30):
        q.put_nowait(i)
    before = q.stats()
    for _ in range(5):
        with pytest.raises(queue.Full):
            q.put_nowait(99)
        with pytest.raises(queue.Full):
            q.put(99, block=False)
        with pytest.raises(queue.Full):
            q.put(99, False)
    assert q.qsize() == 3
    assert q.full()
    after = q.stats()
    assert after["enqueued"] == before["enqueued"] == 3
    assert after["depth"] == 3
    assert drain(q) == expected_order(cls, [10, 20, 30])


@bounded_classes
def test_put_with_zero_timeout_on_full_raises_full(cls):
    q = cls(1)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put(2, timeout=0)
    with pytest.raises(queue.Full):
        q.put(2, True, 0.01)
    assert drain(q) == [1]


def test_priority_put_nowait_full_fast_path_unchanged():
    q = flinq.PriorityQueue(2)
    q.put_nowait("a", priority=2)
    q.put_nowait("b", priority=1)
    with pytest.raises(queue.Full):
        q.put_nowait("c", priority=0)
    assert drain(q) == ["b", "a"]


@all_classes
def test_get_nowait_on_empty_raises_empty(cls):
    q = make(cls)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get(False)
    with pytest.raises(queue.Empty):
        q.get(timeout=0)
    with pytest.raises(queue.Empty):
        q.get(True, 0.01)
    assert q.empty()
    assert q.qsize() == 0


@all_classes
def test_get_nowait_empty_after_drain(cls):
    q = make(cls)
    if cls is flinq.PriorityQueue:
        q.put_nowait(1, priority=1)
    else:
        q.put_nowait(1)
    assert q.get_nowait() == 1
    with pytest.raises(queue.Empty):
        q.get_nowait()


@all_classes
def test_get_with_timeout_returns_available_item(cls):
    q = make(cls)
    q.put(5)
    assert q.get(timeout=0) == 5
    q.put(6)
    assert q.get(True, 1.0) == 6


# --------------------------------------------------------------------------- timeouts


@all_classes
@pytest.mark.parametrize("bad", [-1, -0.001, -1e9])
def test_negative_timeout_on_get_is_value_error(cls, bad):
    q = make(cls)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.get(timeout=bad)
    q.put(1)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.get(True, bad)
    assert q.qsize() == 1  # the failed call took nothing


@bounded_classes
def test_negative_timeout_on_put_is_value_error(cls):
    q = cls(2)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.put(1, timeout=-1)
    assert q.qsize() == 0
    q.put(1)
    q.put(2)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.put(3, True, -0.5)
    assert q.qsize() == 2


@all_classes
@pytest.mark.parametrize("bad", ["1", b"1", [], object()])
def test_non_number_timeout_on_get_is_type_error(cls, bad):
    q = make(cls)
    with pytest.raises(TypeError):
        q.get(timeout=bad)
    q.put(1)
    with pytest.raises(TypeError):
        q.get(timeout=bad)
    assert q.qsize() == 1


@bounded_classes
@pytest.mark.parametrize("bad", ["1", [], object()])
def test_non_number_timeout_on_put_is_type_error(cls, bad):
    q = cls(1)
    q.put(1)
    with pytest.raises(TypeError):
        q.put(2, timeout=bad)
    assert q.qsize() == 1


@all_classes
def test_timeout_ignored_when_not_blocking_get(cls):
    q = make(cls)
    with pytest.raises(queue.Empty):
        q.get(block=False, timeout=-1)
    q.put(1)
    assert q.get(block=False, timeout=-1) == 1
    q.put(2)
    assert q.get(False, "not a number") == 2


@bounded_classes
def test_timeout_ignored_when_not_blocking_put(cls):
    q = cls(1)
    q.put(1, block=False, timeout=-1)
    with pytest.raises(queue.Full):
        q.put(2, block=False, timeout=-1)
    assert drain(q) == [1]


# --------------------------------------------------------------------------- put_many / get_many


@all_classes
def test_put_many_then_get_order(cls):
    q = make(cls)
    items = [4, 1, 3, 2, 5]
    q.put_many(items)
    assert q.qsize() == 5
    assert drain(q) == expected_order(cls, items)


@all_classes
@pytest.mark.parametrize(
    "make_iterable",
    [list, tuple, iter, lambda xs: (x for x in xs), lambda xs: range(len(xs))],
    ids=["list", "tuple", "iterator", "generator", "range"],
)
def test_put_many_accepts_any_iterable(cls, make_iterable):
    q = make(cls)
    items = [0, 1, 2, 3]
    q.put_many(make_iterable(items))
    assert sorted(drain(q)) == items


@all_classes
def test_put_many_iterable_that_raises_puts_nothing(cls):
    q = make(cls)
    q.put(0)

    def items():
        yield 1
        yield 2
        raise Boom("iteration failed")

    with pytest.raises(Boom):
        q.put_many(items())
    assert q.qsize() == 1
    assert q.stats()["enqueued"] == 1
    assert drain(q) == [0]


@all_classes
@pytest.mark.parametrize("bad", [5, None, 1.5])
def test_put_many_non_iterable_is_type_error(cls, bad):
    q = make(cls)
    with pytest.raises(TypeError):
        q.put_many(bad)
    assert q.qsize() == 0


@all_classes
def test_put_many_empty_is_noop(cls):
    q = make(cls)
    q.put_many([])
    q.put_many(iter(()))
    assert q.qsize() == 0
    assert q.stats()["enqueued"] == 0


@bounded_classes
def test_put_many_empty_on_full_queue_is_noop(cls):
    q = cls(1)
    q.put(1)
    q.put_many([], block=False)
    q.put_many([])
    assert q.qsize() == 1


@bounded_classes
def test_put_many_all_or_nothing_nowait(cls):
    q = cls(4)
    q.put_many([1, 2])
    with pytest.raises(queue.Full):
        q.put_many([3, 4, 5], block=False)
    assert q.qsize() == 2
    assert q.stats()["enqueued"] == 2
    q.put_many([3, 4], block=False)
    assert q.full()
    assert drain(q) == expected_order(cls, [1, 2, 3, 4])


@bounded_classes
def test_put_many_all_or_nothing_timeout(cls):
    q = cls(3)
    q.put(1)
    q.put(2)
    with pytest.raises(queue.Full):
        q.put_many([3, 4], timeout=0.05)
    assert q.qsize() == 2
    assert drain(q) == expected_order(cls, [1, 2])


@bounded_classes
@pytest.mark.parametrize("block", [True, False])
def test_put_many_more_than_maxsize_is_value_error(cls, block):
    q = cls(2)
    with pytest.raises(ValueError):
        q.put_many([1, 2, 3], block=block)
    assert q.qsize() == 0
    q.put(0)
    with pytest.raises(ValueError):
        q.put_many(iter([1, 2, 3]), block=block, timeout=1)
    assert drain(q) == [0]


@bounded_classes
def test_put_many_exactly_maxsize_fits(cls):
    q = cls(3)
    q.put_many([3, 2, 1], block=False)
    assert q.full()
    assert drain(q) == expected_order(cls, [3, 2, 1])


@bounded_classes
def test_put_many_unbounded_large(cls):
    q = cls(0)
    q.put_many(range(50_000))
    assert q.qsize() == 50_000
    assert drain(q) == expected_order(cls, list(range(50_000)))


@bounded_classes
def test_put_many_negative_timeout(cls):
    q = cls(3)
    with pytest.raises(ValueError):
        q.put_many([1], timeout=-1)
    assert q.qsize() == 0


@all_classes
def test_get_many_returns_items_in_queue_order(cls):
    q = make(cls)
    items = [7, 3, 9, 1, 5, 8, 2]
    q.put_many(items)
    want = expected_order(cls, items)
    got = []
    while len(got) < len(items):
        batch = q.get_many(3)
        assert isinstance(batch, list)
        assert 1 <= len(batch) <= 3
        got.extend(batch)
    assert got == want
    assert q.empty()
    with pytest.raises(queue.Empty):
        q.get_many(3, block=False)


@all_classes
def test_get_many_more_than_available(cls):
    q = make(cls)
    q.put_many([1, 2])
    got = q.get_many(100)
    assert 1 <= len(got) <= 2
    got += drain(q)
    assert got == expected_order(cls, [1, 2])


@all_classes
def test_get_many_one(cls):
    q = make(cls)
    q.put_many([2, 1])
    assert q.get_many(1) == expected_order(cls, [2, 1])[:1]


@all_classes
def test_get_many_empty_raises_empty(cls):
    q = make(cls)
    with pytest.raises(queue.Empty):
        q.get_many(5, block=False)
    with pytest.raises(queue.Empty):
        q.get_many(5, timeout=0)
    with pytest.raises(queue.Empty):
        q.get_many(5, timeout=0.02)


@all_classes
@pytest.mark.parametrize("bad", [0, -1, -100])
def test_get_many_max_items_below_one_is_value_error(cls, bad):
    q = make(cls)
    q.put(1)
    with pytest.raises(ValueError):
        q.get_many(bad)
    assert q.qsize() == 1


@all_classes
@pytest.mark.parametrize("bad", [1.5, "2", None, 2.0])
def test_get_many_max_items_not_int_is_type_error(cls, bad):
    q = make(cls)
    q.put(1)
    with pytest.raises(TypeError):
        q.get_many(bad)
    assert q.qsize() == 1


@all_classes
def test_get_many_bad_timeout(cls):
    q = make(cls)
    with pytest.raises(ValueError):
        q.get_many(2, timeout=-1)
    with pytest.raises(TypeError):
        q.get_many(2, timeout="x")


@bounded_classes
def test_get_many_frees_room(cls):
    q = cls(3)
    q.put_many([1, 2, 3])
    assert q.full()
    got = q.get_many(3)
    assert not q.full()
    assert q.qsize() == 3 - len(got)


def test_priority_put_many_fast_path():
    q = flinq.PriorityQueue()
    q.put_many(["b1", "b2", "b3"], priority=5)
    q.put("a", priority=1)
    q.put_many(["c1", "c2"], priority=9)
    q.put_many(["b4"], priority=5)
    assert drain(q) == ["a", "b1", "b2", "b3", "b4", "c1", "c2"]


def test_priority_put_many_drop_in():
    q = flinq.PriorityQueue()
    q.put_many([5, 3, 8])
    q.put(1)
    assert q.get_many(10) + drain(q) == [1, 3, 5, 8]


# --------------------------------------------------------------------------- stats


@all_classes
def test_stats_keys_and_types(cls):
    q = make(cls)
    st = q.stats()
    assert isinstance(st, dict)
    for key in ("depth", "maxsize", "enqueued", "dequeued", "high_water"):
        assert key in st, key
    timings = {"lag", "latency_p50", "latency_p99"} | {
        f"{kind}_rate_{window}s" for kind in ("enqueue", "dequeue") for window in (1, 10, 60)
    }
    for key, value in st.items():
        assert isinstance(key, str)
        if key in timings:
            assert value is None or isinstance(value, float), key
        else:
            assert isinstance(value, int), key
    assert timings <= set(st)
    assert st["depth"] == st["enqueued"] == st["dequeued"] == st["high_water"] == 0
    assert st["lag"] == 0.0 and st["latency_p50"] is None


@all_classes
def test_stats_counts(cls):
    q = make(cls)
    for i in range(5):
        q.put(i)
    q.get()
    q.get()
    st = q.stats()
    assert st["depth"] == 3
    assert st["enqueued"] == 5
    assert st["dequeued"] == 2
    assert st["high_water"] == 5
    q.put(9)
    st = q.stats()
    assert (st["depth"], st["enqueued"], st["dequeued"], st["high_water"]) == (4, 6, 2, 5)
    q.put_many([10, 11, 12])
    st = q.stats()
    assert (st["depth"], st["enqueued"], st["dequeued"], st["high_water"]) == (7, 9, 2, 7)
    got = q.get_many(7)
    got += drain(q)
    st = q.stats()
    assert (st["depth"], st["enqueued"], st["dequeued"], st["high_water"]) == (0, 9, 9, 7)


@bounded_classes
def test_stats_maxsize_and_failures_not_counted(cls):
    q = cls(2)
    assert q.stats()["maxsize"] == 2
    q.put(1)
    q.put(2)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put_many([3], block=False)
    with pytest.raises(ValueError):
        q.put_many([3, 4, 5])
    drain(q)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get_many(2, block=False)
    st = q.stats()
    assert (st["depth"], st["enqueued"], st["dequeued"], st["high_water"]) == (0, 2, 2, 2)


def test_stats_maxsize_simple_queue_is_unbounded_value():
    st = flinq.SimpleQueue().stats()
    assert st["maxsize"] <= 0


@all_classes
def test_stats_is_a_snapshot(cls):
    q = make(cls)
    st = q.stats()
    st["depth"] = 1000
    q.put(1)
    assert q.stats()["depth"] == 1
    assert st["depth"] == 1000


# --------------------------------------------------------------------------- typing


@all_classes
def test_generic_alias(cls):
    alias = cls[int]
    assert typing.get_origin(alias) is cls
    assert typing.get_args(alias) == (int,)


def test_generic_alias_queue_int():
    alias = flinq.Queue[int]
    assert alias.__origin__ is flinq.Queue
    q = alias()  # calling the alias builds a real queue
    assert type(q) is flinq.Queue
    q.put(1)
    assert q.get() == 1


def test_generic_alias_usable_in_annotations():
    def f(q: flinq.PriorityQueue[tuple[int, str]]) -> flinq.SimpleQueue[str]:
        return flinq.SimpleQueue()

    hints = typing.get_type_hints(f)
    assert typing.get_origin(hints["q"]) is flinq.PriorityQueue
    assert typing.get_origin(hints["return"]) is flinq.SimpleQueue


# --------------------------------------------------------------------------- priority input errors


@pytest.mark.parametrize("bad", [1.5, "1", b"1", [], 2.0, object()])
def test_bad_priority_is_type_error(bad):
    q = flinq.PriorityQueue()
    with pytest.raises(TypeError):
        q.put("x", priority=bad)
    with pytest.raises(TypeError):
        q.put_nowait("x", priority=bad)
    with pytest.raises(TypeError):
        q.put_many(["x"], priority=bad)
    assert q.qsize() == 0
    q.put("ok", priority=1)
    with pytest.raises(TypeError):
        q.put("x", priority=bad)
    assert drain(q) == ["ok"]


@pytest.mark.parametrize("bad", [INT64_MAX + 1, INT64_MIN - 1, 2**100, -(2**100)])
def test_priority_outside_int64_is_overflow_error(bad):
    q = flinq.PriorityQueue()
    q.put("ok", priority=0)
    with pytest.raises(OverflowError):
        q.put("x", priority=bad)
    with pytest.raises(OverflowError):
        q.put_nowait("x", priority=bad)
    with pytest.raises(OverflowError):
        q.put_many(["x", "y"], priority=bad)
    assert drain(q) == ["ok"]


def test_priority_is_keyword_only():
    q = flinq.PriorityQueue()
    with pytest.raises(TypeError):
        q.put("x", True, None, 5)
    assert q.qsize() == 0


@pytest.mark.parametrize("cls", [flinq.Queue, flinq.LifoQueue, flinq.SimpleQueue], ids=cls_id)
def test_priority_keyword_only_on_priority_queue(cls):
    q = make(cls)
    with pytest.raises(TypeError):
        q.put("x", priority=1)
    assert q.qsize() == 0


def test_failed_first_put_does_not_fix_style():
    q = flinq.PriorityQueue()
    with pytest.raises(TypeError):
        q.put("x", priority=1.5)
    with pytest.raises(OverflowError):
        q.put("x", priority=2**64)
    q.put(3)  # drop-in style is still possible
    q.put(1)
    assert drain(q) == [1, 3]

    q = flinq.PriorityQueue()
    with pytest.raises(TypeError):
        q.put("x", priority="high")
    q.put("y", priority=1)  # and so is the fast path
    assert drain(q) == ["y"]


def test_mixing_styles_fast_then_drop_in():
    q = flinq.PriorityQueue()
    q.put("a", priority=2)
    q.put("b", priority=1)
    with pytest.raises(TypeError):
        q.put("c")
    with pytest.raises(TypeError):
        q.put_nowait("c")
    with pytest.raises(TypeError):
        q.put_many(["c", "d"])
    with pytest.raises(TypeError):
        q.put("c", priority=None)
    assert q.qsize() == 2
    assert q.stats()["enqueued"] == 2
    assert drain(q) == ["b", "a"]


def test_mixing_styles_drop_in_then_fast():
    q = flinq.PriorityQueue()
    q.put(2)
    q.put(1)
    with pytest.raises(TypeError):
        q.put(0, priority=0)
    with pytest.raises(TypeError):
        q.put_nowait(0, priority=0)
    with pytest.raises(TypeError):
        q.put_many([0, -1], priority=0)
    assert q.qsize() == 2
    assert drain(q) == [1, 2]


def test_style_is_fixed_for_the_queue_life():
    q = flinq.PriorityQueue()
    q.put(1)
    assert q.get() == 1
    assert q.empty()
    with pytest.raises(TypeError):
        q.put("x", priority=1)  # still drop-in, even though it was drained
    q = flinq.PriorityQueue()
    q.put_many(["x"], priority=1)
    q.get()
    with pytest.raises(TypeError):
        q.put(5)
    assert q.empty()


def test_put_many_fixes_style():
    q = flinq.PriorityQueue()
    q.put_many([3, 1, 2])
    with pytest.raises(TypeError):
        q.put(0, priority=0)
    assert drain(q) == [1, 2, 3]


class Boom(Exception):
    pass


class Explosive:
    """Compares by value, but every comparison raises while `armed`."""

    armed = False

    def __init__(self, v):
        self.v = v

    def _cmp(self, other, op):
        if Explosive.armed:
            raise Boom("comparison failed")
        return op(self.v, other.v)

    def __lt__(self, other):
        return self._cmp(other, lambda a, b: a < b)

    def __gt__(self, other):
        return self._cmp(other, lambda a, b: a > b)

    def __le__(self, other):
        return self._cmp(other, lambda a, b: a <= b)

    def __ge__(self, other):
        return self._cmp(other, lambda a, b: a >= b)

    def __repr__(self):
        return f"Explosive({self.v})"


@pytest.fixture
def disarm():
    Explosive.armed = False
    yield
    Explosive.armed = False


class AlwaysRaises:
    def __lt__(self, other):
        raise Boom("lt")

    def __gt__(self, other):
        raise Boom("gt")

    def __le__(self, other):
        raise Boom("le")

    def __ge__(self, other):
        raise Boom("ge")


def test_failing_comparison_on_put_propagates_and_leaves_queue_unchanged():
    q = flinq.PriorityQueue()
    for v in (5, 3, 8, 1, 9, 2, 7):
        q.put(v)
    st = q.stats()
    for _ in range(3):
        with pytest.raises(Boom):
            q.put(AlwaysRaises())
        with pytest.raises(Boom):
            q.put_nowait(AlwaysRaises())
    assert q.qsize() == 7
    assert q.stats()["enqueued"] == st["enqueued"]
    assert drain(q) == [1, 2, 3, 5, 7, 8, 9]


def test_incomparable_item_is_type_error_and_queue_unchanged():
    q = flinq.PriorityQueue()
    q.put(1)
    q.put(2)
    with pytest.raises(TypeError):
        q.put("a")
    assert q.qsize() == 2
    assert drain(q) == [1, 2]


def test_failing_comparison_on_get_propagates_and_leaves_queue_unchanged(disarm):
    q = flinq.PriorityQueue()
    values = [5, 3, 8, 1, 9, 2, 7, 4, 6]
    for v in values:
        q.put(Explosive(v))
    Explosive.armed = True
    for _ in range(3):
        with pytest.raises(Boom):
            q.get()
        with pytest.raises(Boom):
            q.get_nowait()
    assert q.qsize() == len(values)
    Explosive.armed = False
    assert [e.v for e in drain(q)] == sorted(values)


def test_failing_comparison_on_get_many_leaves_queue_unchanged(disarm):
    q = flinq.PriorityQueue()
    values = [5, 3, 8, 1, 9, 2, 7]
    for v in values:
        q.put(Explosive(v))
    Explosive.armed = True
    with pytest.raises(Boom):
        q.get_many(4)
    assert q.qsize() == len(values)
    Explosive.armed = False
    assert [e.v for e in drain(q)] == sorted(values)


def test_failing_comparison_in_put_many_is_all_or_nothing():
    q = flinq.PriorityQueue()
    q.put(10)
    q.put(20)
    with pytest.raises(Boom):
        q.put_many([5, AlwaysRaises(), 15])
    with pytest.raises(TypeError):
        q.put_many([5, "x", 15])
    assert q.qsize() == 2
    assert drain(q) == [10, 20]


def test_first_put_of_raising_item_succeeds_alone():
    # With nothing to compare against, a single item needs no comparison.
    q = flinq.PriorityQueue()
    item = AlwaysRaises()
    q.put(item)
    assert q.get() is item


# ----------------------------------------------------------- task_done / join / shutdown


@bounded_classes
def test_task_done_too_many_times(cls):
    q = cls()
    with pytest.raises(ValueError, match=r"task_done\(\) called too many times"):
        q.task_done()
    q.put(1)
    q.get()
    q.task_done()
    with pytest.raises(ValueError, match=r"task_done\(\) called too many times"):
        q.task_done()


@bounded_classes
def test_join_returns_when_all_done(cls):
    q = cls()
    q.join()  # nothing was ever put
    q.put_many([1, 2])
    q.get()
    q.get()
    q.task_done()
    q.task_done()
    q.join()


@bounded_classes
def test_task_done_counts_put_many_items(cls):
    q = cls()
    q.put_many([1, 2, 3])
    q.get_many(3)
    drain(q)
    for _ in range(3):
        q.task_done()
    with pytest.raises(ValueError):
        q.task_done()
    q.join()


@bounded_classes
def test_shutdown_put_raises_and_get_drains(cls):
    q = cls(5)
    q.put_many([1, 2, 3])
    q.shutdown()
    with pytest.raises(flinq.ShutDown):
        q.put(4)
    with pytest.raises(flinq.ShutDown):
        q.put_nowait(4)
    with pytest.raises(flinq.ShutDown):
        q.put_many([4, 5])
    assert q.qsize() == 3
    got = [q.get(), q.get_nowait(), q.get(timeout=1)]
    assert got == expected_order(cls, [1, 2, 3])
    with pytest.raises(flinq.ShutDown):
        q.get()
    with pytest.raises(flinq.ShutDown):
        q.get_nowait()
    with pytest.raises(flinq.ShutDown):
        q.get(timeout=1)
    with pytest.raises(flinq.ShutDown):
        q.get_many(3)
    with pytest.raises(flinq.ShutDown):
        q.get_many(3, block=False)


@bounded_classes
def test_shutdown_get_many_drains_first(cls):
    q = cls()
    q.put_many([1, 2, 3])
    q.shutdown()
    got = q.get_many(10)
    got += drain(q) if len(got) < 3 else []
    assert got == expected_order(cls, [1, 2, 3])
    with pytest.raises(flinq.ShutDown):
        q.get_many(10)


@bounded_classes
def test_shutdown_put_on_full_queue_is_shutdown_not_full(cls):
    q = cls(1)
    q.put(1)
    q.shutdown()
    with pytest.raises(flinq.ShutDown):
        q.put_nowait(2)
    with pytest.raises(flinq.ShutDown):
        q.put(2, timeout=0.01)


@bounded_classes
def test_shutdown_immediate_discards_and_counts_done(cls):
    q = cls()
    q.put_many([1, 2, 3])
    q.shutdown(immediate=True)
    assert q.qsize() == 0
    assert q.empty()
    with pytest.raises(flinq.ShutDown):
        q.get_nowait()
    with pytest.raises(flinq.ShutDown):
        q.get()
    with pytest.raises(flinq.ShutDown):
        q.put(1)
    q.join()  # the discarded items count as done: returns at once


@bounded_classes
def test_shutdown_is_idempotent(cls):
    q = cls()
    q.put(1)
    q.shutdown()
    q.shutdown()
    assert q.get() == 1
    q.shutdown(immediate=True)
    q.shutdown(True)
    with pytest.raises(flinq.ShutDown):
        q.get()


@bounded_classes
def test_shutdown_then_task_done(cls):
    q = cls()
    q.put(1)
    q.shutdown()
    q.get()
    q.task_done()
    q.join()
    with pytest.raises(ValueError):
        q.task_done()


@bounded_classes
def test_shutdown_exception_is_catchable_as_exception(cls):
    q = cls()
    q.shutdown()
    try:
        q.put(1)
    except Exception as exc:
        assert type(exc) is flinq.ShutDown
    else:
        pytest.fail("put after shutdown did not raise")
