"""Many threads on one queue: every item is delivered exactly once."""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time

import pytest
from qhelpers import HANG_GUARD, spawn

import flinq

PRODUCERS = 4
CONSUMERS = 4
PER_PRODUCER = 50_000

STOP = "stop"  # sentinel for the queues whose items are (producer, index) tuples


def _make(kind, maxsize):
    if kind == "SimpleQueue":
        return flinq.SimpleQueue()
    cls = {
        "Queue": flinq.Queue,
        "LifoQueue": flinq.LifoQueue,
        "PriorityQueue": flinq.PriorityQueue,
        "PriorityQueue-fast": flinq.PriorityQueue,
    }[kind]
    return cls(maxsize)


def _putter(kind, q):
    """put(item) in the style the queue kind uses."""
    if kind == "PriorityQueue-fast":
        return lambda item: q.put(item, priority=item[1] % 7)
    return q.put


def _sentinel_putter(kind, q):
    if kind == "PriorityQueue-fast":
        return lambda: q.put(None, priority=2**63 - 1)
    if kind == "PriorityQueue":
        return lambda: q.put((2**62, STOP))  # sorts after every (producer, index)
    return lambda: q.put(None)


def _is_sentinel(item):
    return item is None or item[1] == STOP


def _check_exactly_once(received, producers, per_producer):
    flat = [item for batch in received for item in batch]
    expected = {(p, i) for p in range(producers) for i in range(per_producer)}
    assert len(flat) == len(expected), f"{len(flat)} items received, {len(expected)} sent"
    assert set(flat) == expected


def _check_fifo_per_consumer(received):
    # In a FIFO queue, one consumer sees each producer's items in the order put.
    for items in received:
        last = {}
        for p, i in items:
            assert i > last.get(p, -1), f"producer {p}: item {i} after {last.get(p)}"
            last[p] = i


KINDS = [
    ("Queue", 0),
    ("Queue", 64),
    ("LifoQueue", 0),
    ("LifoQueue", 64),
    ("PriorityQueue", 0),
    ("PriorityQueue", 64),
    ("PriorityQueue-fast", 0),
    ("PriorityQueue-fast", 64),
    ("SimpleQueue", 0),
]


@pytest.mark.parametrize(("kind", "maxsize"), KINDS, ids=[f"{k}-{m}" for k, m in KINDS])
def test_producers_consumers_exactly_once(kind, maxsize):
    q = _make(kind, maxsize)
    put = _putter(kind, q)
    tracks_tasks = kind != "SimpleQueue"
    barrier = threading.Barrier(PRODUCERS + CONSUMERS)

    def produce(p):
        barrier.wait()
        for i in range(PER_PRODUCER):
            put((p, i))

    def consume():
        got = []
        barrier.wait()
        while True:
            item = q.get()
            if tracks_tasks:
                q.task_done()
            if _is_sentinel(item):
                return got
            got.append(item)

    consumers = [spawn(consume) for _ in range(CONSUMERS)]
    producers = [spawn(produce, p) for p in range(PRODUCERS)]
    for w in producers:
        w.value()
    if tracks_tasks:
        # Every item consumed before the sentinels go in (LIFO would serve them first).
        joiner = spawn(q.join)
        joiner.value()
    put_sentinel = _sentinel_putter(kind, q)
    for _ in consumers:
        put_sentinel()
    received = [w.value() for w in consumers]

    _check_exactly_once(received, PRODUCERS, PER_PRODUCER)
    if kind in ("Queue", "SimpleQueue"):
        _check_fifo_per_consumer(received)
    assert q.empty()
    assert q.qsize() == 0
    st = q.stats()
    total = PRODUCERS * PER_PRODUCER + CONSUMERS
    assert st["enqueued"] == total
    assert st["dequeued"] == total
    assert st["depth"] == 0
    if maxsize > 0:
        assert 1 <= st["high_water"] <= maxsize
    if tracks_tasks:
        q.join()
        with pytest.raises(ValueError):
            q.task_done()


@pytest.mark.parametrize("cls", [flinq.Queue, flinq.SimpleQueue, flinq.LifoQueue])
def test_one_producer_two_blocked_consumers(cls):
    q = cls()
    n = 20_000

    def consume():
        got = []
        while True:
            item = q.get()
            if item is None:
                return got
            got.append(item)

    consumers = [spawn(consume), spawn(consume)]
    time.sleep(0.1)  # both consumers are now blocked in get() on the empty queue
    assert all(w.is_alive() for w in consumers)
    for i in range(n):
        q.put(i)
        if i % 1000 == 0:
            time.sleep(0.001)  # let the queue run empty now and then
    if cls is flinq.LifoQueue:
        deadline = time.monotonic() + HANG_GUARD
        while not q.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
    q.put(None)
    q.put(None)
    a, b = (w.value() for w in consumers)
    assert sorted(a + b) == list(range(n))
    if cls is not flinq.LifoQueue:
        assert a == sorted(a)
        assert b == sorted(b)


@pytest.mark.parametrize(
    ("cls", "maxsize"),
    [
        (flinq.Queue, 0),
        (flinq.Queue, 64),
        (flinq.LifoQueue, 64),
        (flinq.PriorityQueue, 64),
        (flinq.SimpleQueue, 0),
    ],
    ids=["Queue-0", "Queue-64", "LifoQueue-64", "PriorityQueue-64", "SimpleQueue-0"],
)
def test_put_many_get_many_under_threads(cls, maxsize):
    q = cls() if cls is flinq.SimpleQueue else cls(maxsize)
    per_producer = 30_000
    stop = threading.Event()

    def produce(p):
        i = 0
        size = 1
        while i < per_producer:
            batch = [(p, j) for j in range(i, min(i + size, per_producer))]
            q.put_many(batch)
            i += len(batch)
            size = size % 50 + 1  # batches of 1..50 items, never above maxsize
        return i

    def consume():
        got = []
        while True:
            try:
                batch = q.get_many(32, timeout=0.05)
            except queue.Empty:
                if stop.is_set():
                    return got
                continue
            assert 1 <= len(batch) <= 32
            got.extend(batch)

    consumers = [spawn(consume) for _ in range(CONSUMERS)]
    producers = [spawn(produce, p) for p in range(PRODUCERS)]
    for w in producers:
        assert w.value() == per_producer
    deadline = time.monotonic() + HANG_GUARD
    while not q.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    received = [w.value() for w in consumers]
    _check_exactly_once(received, PRODUCERS, per_producer)
    if cls in (flinq.Queue, flinq.SimpleQueue):
        _check_fifo_per_consumer(received)
    st = q.stats()
    assert st["enqueued"] == st["dequeued"] == PRODUCERS * per_producer
    if maxsize > 0:
        assert st["high_water"] <= maxsize


def test_mixed_single_and_batch_operations():
    q = flinq.Queue(100)
    per_producer = 20_000
    stop = threading.Event()

    def produce_single(p):
        for i in range(per_producer):
            q.put((p, i))

    def produce_batches(p):
        for i in range(0, per_producer, 10):
            q.put_many([(p, j) for j in range(i, i + 10)])

    def consume_single():
        got = []
        while True:
            try:
                got.append(q.get(timeout=0.05))
            except queue.Empty:
                if stop.is_set():
                    return got

    def consume_batches():
        got = []
        while True:
            try:
                got.extend(q.get_many(7, timeout=0.05))
            except queue.Empty:
                if stop.is_set():
                    return got

    consumers = [spawn(consume_single), spawn(consume_single)]
    consumers += [spawn(consume_batches), spawn(consume_batches)]
    producers = [spawn(produce_single, 0), spawn(produce_single, 1)]
    producers += [spawn(produce_batches, 2), spawn(produce_batches, 3)]
    for w in producers:
        w.value()
    deadline = time.monotonic() + HANG_GUARD
    while not q.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    received = [w.value() for w in consumers]
    _check_exactly_once(received, 4, per_producer)
    _check_fifo_per_consumer(received)


def test_qsize_never_exceeds_maxsize_under_contention():
    maxsize = 8
    q = flinq.Queue(maxsize)
    stop = threading.Event()
    seen = []

    def produce():
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                q.put(1, timeout=0.01)

    def consume():
        while not stop.is_set():
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.01)

    def watch():
        while not stop.is_set():
            seen.append(q.qsize())

    workers = [spawn(produce) for _ in range(3)] + [spawn(consume) for _ in range(2)]
    workers.append(spawn(watch))
    time.sleep(1.0)
    stop.set()
    for w in workers:
        w.value()
    assert seen
    assert max(seen) <= maxsize
    assert min(seen) >= 0
    assert q.stats()["high_water"] <= maxsize


@dataclasses.dataclass(order=True, frozen=True)
class Job:
    """A typical drop-in PriorityQueue item: compared by Python-level __lt__."""

    priority: int
    producer: int
    index: int


@pytest.mark.parametrize("maxsize", [0, 32])
def test_priority_queue_with_python_level_comparisons(maxsize):
    # Comparisons run Python code, so the GIL may switch threads in the middle
    # of a heap operation; concurrent producers and consumers must not notice.
    q = flinq.PriorityQueue(maxsize)
    per_producer = 5_000
    errors = []

    def produce(p):
        try:
            for i in range(per_producer):
                q.put(Job(i % 11, p, i))
        except Exception as exc:
            errors.append(exc)
            raise

    def consume():
        got = []
        while True:
            try:
                job = q.get()
            except flinq.ShutDown:
                return got
            except Exception as exc:
                errors.append(exc)
                raise
            got.append((job.producer, job.index))

    consumers = [spawn(consume) for _ in range(CONSUMERS)]
    producers = [spawn(produce, p) for p in range(PRODUCERS)]
    for w in producers:
        w.join()
    deadline = time.monotonic() + HANG_GUARD
    while not q.empty() and time.monotonic() < deadline and not errors:
        time.sleep(0.01)
    q.shutdown()
    for w in consumers:
        w.join()
    assert errors == []
    received = [w.value() for w in consumers]
    _check_exactly_once(received, PRODUCERS, per_producer)
