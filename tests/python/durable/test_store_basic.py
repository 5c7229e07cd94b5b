"""Durable store basics: opening and closing, queues by name, bodies and serializers,
closed stores, and the core queue API on a DurableQueue."""

from __future__ import annotations

import dataclasses
import os
import queue
import stat
import threading
import time

import pytest
from dhelpers import FAST, drain, reserve_all, stored
from qhelpers import HANG_GUARD, spawn, still_blocked, wait_until

import flinq
import flinq.lmdbstore.log

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


# --------------------------------------------------------------------------- open / close


def test_open_creates_private_directory(path):
    assert not path.exists()
    with flinq.open(path) as store:
        assert path.is_dir()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
        assert "data.mdb" in os.listdir(path)
        assert store.path == os.path.abspath(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def test_open_creates_missing_parents(tmp_path):
    deep = tmp_path / "a" / "b" / "store"
    with flinq.open(deep) as store:
        store.queue("q").put(b"x")
    assert stored(deep, "q") == [b"x"]


def test_open_accepts_str_and_pathlike(path):
    with flinq.open(str(path)) as store:
        store.queue("q").put("s")
    with flinq.Store(path) as store:
        assert store.queue("q").get_nowait() == "s"


def test_context_manager_returns_the_store_and_closes_it(path):
    with flinq.open(path) as store:
        assert isinstance(store, flinq.Store)
        q = store.queue("q")
        q.put(1)
    with pytest.raises(flinq.StoreClosedError):
        store.queue("q")
    with pytest.raises(flinq.StoreClosedError):
        q.put(2)
    assert "closed" in repr(store)


def test_context_manager_closes_on_exception(path):
    with pytest.raises(RuntimeError), flinq.open(path) as store:
        store.queue("q").put(b"kept")
        raise RuntimeError("boom")
    with pytest.raises(flinq.StoreClosedError):
        store.flush()
    assert stored(path, "q") == [b"kept"]


def test_close_is_idempotent_and_commits(path):
    store = flinq.open(path, flush_interval=60.0)  # only close() commits
    store.queue("q").put_many(range(10))
    store.close()
    store.close()
    assert stored(path, "q") == list(range(10))


def test_open_close_many_times(path):
    for i in range(20):
        with flinq.open(path, **FAST) as store:
            store.queue("q").put(i)
    assert stored(path, "q") == list(range(20))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"durability": "fast"}, ValueError),
        ({"flush_interval": 0}, ValueError),
        ({"map_size": 0}, ValueError),
        ({"map_size": 1.5}, TypeError),
        ({"max_pending": 0}, ValueError),
        ({"batch_size": -1}, ValueError),
        ({"serializer": "yaml"}, ValueError),
        ({"serializer": object()}, TypeError),
    ],
)
def test_bad_options_are_refused_before_touching_disk(path, kwargs, error):
    with pytest.raises(error):
        flinq.open(path, **kwargs)
    assert not path.exists()


# --------------------------------------------------------------------------- queues by name


def test_queue_by_name_is_the_same_object(store):
    a = store.queue("a")
    assert store.queue("a") is a
    assert store.queue("b") is not a
    assert a.name == "a"
    assert store.queue("a", priority=False) is a


def test_queue_concurrent_first_use_gives_one_object(store):
    # Several threads asking for a new queue at once must all get the same
    # queue: two objects would both load (and deliver) the stored messages.
    results = []
    barrier = threading.Barrier(8)

    def ask():
        barrier.wait()
        results.append(store.queue("shared"))

    workers = [spawn(ask) for _ in range(8)]
    for w in workers:
        w.value()
    assert len({id(q) for q in results}) == 1


def test_queue_name_must_be_nonempty_str(store):
    with pytest.raises(ValueError):
        store.queue("")
    with pytest.raises(TypeError):
        store.queue(b"q")


def test_priority_is_fixed_at_creation(path, opener):
    store = opener()
    store.queue("p", priority=True)
    store.queue("f")
    with pytest.raises(ValueError):
        store.queue("p", priority=False)
    with pytest.raises(ValueError):
        store.queue("f", priority=True)
    store.close()
    store = opener()  # also after a reopen, before any other use in the session
    with pytest.raises(ValueError):
        store.queue("p", priority=False)
    with pytest.raises(ValueError):
        store.queue("f", priority=True)
    assert store.queue("p").priority is True  # left out: as stored
    assert store.queue("f").priority is False


def test_queue_cannot_be_its_own_dead_letter(store):
    with pytest.raises(ValueError):
        store.queue("q", dead_letter="q")


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"max_attempts": -1}, {"visibility_timeout": 0}]
)
def test_bad_queue_options(store, kwargs):
    with pytest.raises(ValueError):
        store.queue("q", **kwargs)


def test_queues_lists_names_sorted(path, opener):
    store = opener()
    assert store.queues() == []
    for name in ("b", "a", "ü-ñ", "c.d"):
        store.queue(name)
    assert store.queues() == sorted(["a", "b", "c.d", "ü-ñ"])
    store.close()
    assert opener().queues() == sorted(["a", "b", "c.d", "ü-ñ"])


def test_delete_queue(path, opener):
    store = opener()
    doomed = store.queue("doomed")
    doomed.put_many([1, 2, 3])
    keep = store.queue("keep")
    keep.put("k")
    store.delete_queue("doomed")
    assert store.queues() == ["keep"]
    with pytest.raises(flinq.StoreClosedError):
        doomed.put(4)
    with pytest.raises(flinq.StoreClosedError):
        doomed.get_nowait()
    fresh = store.queue("doomed")
    assert fresh is not doomed
    assert fresh.qsize() == 0
    fresh.put("new")
    store.close()
    store = opener()
    assert store.queues() == ["doomed", "keep"]
    assert drain(store.queue("doomed")) == ["new"]
    assert drain(store.queue("keep")) == ["k"]


def test_delete_queue_not_opened_this_session(path, opener):
    store = opener()
    store.queue("old").put(1)
    store.close()
    store = opener()
    store.delete_queue("old")
    assert store.queues() == []
    store.close()
    store = opener()
    assert store.queues() == []
    assert store.queue("old").qsize() == 0


def test_delete_unknown_queue_raises_keyerror(store):
    store.queue("a")
    with pytest.raises(KeyError):
        store.delete_queue("nope")
    assert store.queues() == ["a"]


def test_delete_queue_with_messages_in_flight(path, opener):
    store = opener()
    q = store.queue("q")
    q.put_many(["a", "b"])
    msg = q.reserve(timeout=0)
    store.delete_queue("q")
    with pytest.raises(flinq.StoreClosedError):
        msg.ack()
    store.close()
    store = opener()
    assert store.queues() == []


def test_purge(path, opener):
    store = opener()
    q = store.queue("q")
    other = store.queue("other")
    other.put("stays")
    q.put_many(range(5))
    msg = q.reserve(timeout=0)
    assert q.purge() == 5
    assert q.qsize() == 0
    assert q.in_flight() == 0
    assert msg.ack() is False
    q.put("after")
    store.close()
    assert stored(path, "q") == ["after"]
    assert stored(path, "other") == ["stays"]


def test_purge_then_join_does_not_hang(store):
    # purge() settles what it deletes: join() must not wait for task_done()
    # calls that can no longer come.
    q = store.queue("q")
    q.put_many(range(3))
    q.reserve(timeout=0)
    q.purge()
    joiner = spawn(q.join)
    assert joiner.join(2.0), "join() hangs after purge()"


def test_store_stats_keys(store):
    q = store.queue("q")
    q.put_many(range(100))
    store.flush()
    stats = store.stats()
    for key in ("pending", "commits", "mean_batch", "last_commit_ms", "bytes_on_disk", "map_size"):
        assert key in stats, key
    assert stats["pending"] == 0
    assert stats["commits"] >= 1
    assert stats["mean_batch"] > 0
    assert stats["bytes_on_disk"] == os.path.getsize(os.path.join(store.path, "data.mdb"))
    assert stats["map_size"] >= stats["bytes_on_disk"]


def test_sync_producers_in_threads_share_commits(opener, monkeypatch):
    # Group commit: a commit's leader waits (up to GATHER_GAP between
    # arrivals) for the producers the last commit released, so all four
    # threads share nearly every commit instead of alternating between a
    # commit of one and a commit of the rest.
    monkeypatch.setattr(flinq.lmdbstore.log, "GATHER_GAP", 0.05)
    store = opener(durability="sync", flush_interval=60.0)
    q = store.queue("q")
    # Started together: a thread that ran ahead alone would commit alone.
    start = threading.Barrier(4)

    def produce(t):
        start.wait()
        for i in range(25):
            q.put((t, i))

    workers = [spawn(produce, t) for t in range(4)]
    for w in workers:
        w.value()
    assert store.stats()["mean_batch"] >= 3
    got = drain(q)
    assert sorted(got) == [(t, i) for t in range(4) for i in range(25)]


def test_lone_sync_producer_never_waits_to_gather(opener, monkeypatch):
    # One producer: the last commit settled only its own put, so there is no
    # one to wait for (each put would otherwise take GATHER_GAP longer).
    monkeypatch.setattr(flinq.lmdbstore.log, "GATHER_GAP", 2.0)
    store = opener(durability="sync", flush_interval=60.0)
    q = store.queue("q")
    started = time.monotonic()
    for i in range(10):
        q.put(i)
    q.put_many(range(10, 20))
    q.put(20)
    assert time.monotonic() - started < 2.0
    assert drain(q) == list(range(21))


def test_queue_stats_keys(store):
    q = store.queue("q")
    q.put_many(range(3))
    q.reserve(timeout=0).ack()
    q.reserve(timeout=0).nack()
    stats = q.stats()
    for key in ("in_flight", "acked", "nacked", "redelivered", "dead_lettered", "expired"):
        assert key in stats, key
    assert stats["acked"] == 1
    assert stats["nacked"] == 1
    assert stats["in_flight"] == 0


# --------------------------------------------------------------------------- bodies

BODIES = [
    pytest.param(b"bytes \x00\xff", id="bytes"),
    pytest.param(b"", id="empty-bytes"),
    pytest.param(bytearray(b"bytearray\x00"), id="bytearray"),
    pytest.param("str ü 漢字 \U0001f600", id="str"),
    pytest.param("", id="empty-str"),
    pytest.param("lone \ud800 surrogate", id="surrogate-str"),
    pytest.param(12345678901234567890, id="int"),
    pytest.param(None, id="None"),
    pytest.param({"a": [1, 2.5, None], "b": (1, "x")}, id="dict"),
    pytest.param(Point(1, 2), id="dataclass"),
    pytest.param(b"x" * 100_000, id="large-bytes"),
]


def _same(a, b):
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("body", BODIES)
def test_put_get_round_trip(path, opener, body):
    store = opener()
    q = store.queue("q")
    q.put(body)
    q.put(body)
    got = q.get_nowait()
    assert _same(got, body)
    store.close()
    store = opener()
    got = store.queue("q").get_nowait()
    assert _same(got, body)


@pytest.mark.parametrize("body", BODIES)
def test_reserve_round_trip(path, opener, body):
    store = opener()
    q = store.queue("q")
    q.put(body)
    msg = q.reserve(timeout=0)
    assert _same(msg.body, body)
    store.close()  # unacked: it comes back
    store = opener()
    msg = store.queue("q").reserve(timeout=0)
    assert _same(msg.body, body)


def test_put_many_get_many_round_trip(path, opener):
    bodies = [b"a", bytearray(b"b"), "c", 4, ("e",), None, Point(7, 8)]
    store = opener()
    q = store.queue("q")
    q.put_many(bodies)
    got = q.get_many(3)
    assert len(got) == 3
    assert all(_same(a, b) for a, b in zip(got, bodies[:3], strict=True))
    store.close()
    store = opener()
    q = store.queue("q")
    rest = q.get_many(100)
    assert all(_same(a, b) for a, b in zip(rest, bodies[3:], strict=True))
    assert len(rest) == 4


def test_memoryview_comes_back_as_bytes(path, opener):
    store = opener()
    q = store.queue("q")
    q.put(memoryview(b"view"))
    q.put_many([memoryview(b"mv1"), memoryview(bytearray(b"mv2"))[1:]])
    got = drain(q)
    assert got == [b"view", b"mv1", b"v2"]
    assert all(type(x) is bytes for x in got)
    q.put(memoryview(b"stored"))
    store.close()
    got = stored(path, "q")
    assert got == [b"stored"]
    assert type(got[0]) is bytes


def test_put_copies_mutable_bodies(store):
    q = store.queue("q")
    body = bytearray(b"before")
    q.put(body)
    body[:] = b"after!"
    assert q.get_nowait() == bytearray(b"before")


def test_json_serializer(path):
    with flinq.open(path, serializer="json") as store:
        q = store.queue("q")
        q.put({"a": [1, 2], "b": None})
        q.put((1, 2))  # JSON has no tuples
        q.put(b"raw bytes stay raw")
        with pytest.raises(TypeError):
            q.put({1, 2})
        with pytest.raises(TypeError):
            q.put(Point(1, 2))
        assert q.qsize() == 3
    with flinq.open(path, serializer="json") as store:
        assert drain(store.queue("q")) == [{"a": [1, 2], "b": None}, [1, 2], b"raw bytes stay raw"]


def test_raw_serializer(path):
    with flinq.open(path, serializer="raw") as store:
        q = store.queue("q")
        q.put(b"b")
        q.put(bytearray(b"ba"))
        q.put(memoryview(b"mv"))
        q.put("s")
        for bad in (1, None, [b"x"], {"a": 1}):
            with pytest.raises(TypeError):
                q.put(bad)
        with pytest.raises(TypeError):
            q.put_many([b"ok", 2])
        assert q.qsize() == 4
    with flinq.open(path, serializer="raw") as store:
        assert drain(store.queue("q")) == [b"b", bytearray(b"ba"), b"mv", "s"]


class Rot13:
    """A custom serializer: counts its calls."""

    def __init__(self):
        self.dumped = 0
        self.loaded = 0

    def dumps(self, obj):
        self.dumped += 1
        return ("R:" + repr(obj)).encode()

    def loads(self, data):
        self.loaded += 1
        assert data.startswith(b"R:")
        return ("loaded", data[2:].decode())


def test_custom_serializer(path):
    ser = Rot13()
    with flinq.open(path, serializer=ser) as store:
        q = store.queue("q")
        q.put(42)
        q.put(b"raw")  # bytes never reach the serializer
        assert ser.dumped == 1
    ser2 = Rot13()
    with flinq.open(path, serializer=ser2) as store:
        assert drain(store.queue("q")) == [("loaded", "42"), b"raw"]
        assert ser2.loaded == 1


def test_custom_serializer_must_return_bytes(path):
    class Bad:
        def dumps(self, obj):
            return "not bytes"

        def loads(self, data):
            return data

    with flinq.open(path, serializer=Bad()) as store:
        q = store.queue("q")
        with pytest.raises(TypeError):
            q.put(1)
        assert q.qsize() == 0


def test_custom_serializer_errors_become_typeerror(path):
    class Picky:
        def dumps(self, obj):
            raise ValueError("no")

        def loads(self, data):
            return data

    with flinq.open(path, serializer=Picky()) as store:
        q = store.queue("q")
        with pytest.raises(TypeError):
            q.put(1)
        assert q.qsize() == 0


@pytest.mark.parametrize("durability", ["batch", "sync"])
def test_unserializable_body_changes_nothing(path, opener, durability):
    store = opener(durability=durability)
    q = store.queue("q")
    q.put("before")
    with pytest.raises(TypeError):
        q.put(lambda: None)
    with pytest.raises(TypeError):
        q.put_many(["a", "b", lambda: None, "c"])  # all or nothing
    with pytest.raises(TypeError):
        q.put(threading.Lock())
    assert q.qsize() == 1
    q.put("after")
    store.close()
    assert stored(path, "q") == ["before", "after"]


def test_unserializable_body_in_priority_queue(path, opener):
    store = opener()
    q = store.queue("p", priority=True)
    with pytest.raises(TypeError):
        q.put(lambda: None, priority=1)
    assert q.qsize() == 0
    store.close()
    assert stored(path, "p", priority=True) == []


# --------------------------------------------------------------------------- closed store


def _closed(path):
    store = flinq.open(path, **FAST)
    q = store.queue("q")
    p = store.queue("p", priority=True)
    q.put_many([1, 2, 3])
    p.put("x", priority=1)
    msg = q.reserve(timeout=0)
    store.close()
    return store, q, p, msg


STORE_OPS = {
    "queue": lambda s: s.queue("q"),
    "queue-new": lambda s: s.queue("new"),
    "queues": lambda s: s.queues(),
    "delete_queue": lambda s: s.delete_queue("q"),
    "flush": lambda s: s.flush(),
    "stats": lambda s: s.stats(),
}

QUEUE_OPS = {
    "put": lambda q: q.put(4),
    "put-timeout": lambda q: q.put(4, timeout=0.01),
    "put_nowait": lambda q: q.put_nowait(4),
    "put_many": lambda q: q.put_many([4, 5]),
    "get": lambda q: q.get(),
    "get-timeout": lambda q: q.get(timeout=0.01),
    "get_nowait": lambda q: q.get_nowait(),
    "get_many": lambda q: q.get_many(2),
    "reserve": lambda q: q.reserve(),
    "reserve-timeout": lambda q: q.reserve(timeout=0.01),
    "purge": lambda q: q.purge(),
}

INSPECT_OPS = {
    "qsize": lambda q: q.qsize(),
    "empty": lambda q: q.empty(),
    "full": lambda q: q.full(),
    "in_flight": lambda q: q.in_flight(),
    "stats": lambda q: q.stats(),
}


@pytest.mark.parametrize("op", STORE_OPS.values(), ids=STORE_OPS.keys())
def test_closed_store_raises(path, op):
    store, *_ = _closed(path)
    with pytest.raises(flinq.StoreClosedError):
        op(store)


@pytest.mark.parametrize("op", QUEUE_OPS.values(), ids=QUEUE_OPS.keys())
def test_closed_queue_raises(path, op):
    _, q, p, _ = _closed(path)
    with pytest.raises(flinq.StoreClosedError):
        op(q)
    with pytest.raises(flinq.StoreClosedError):
        op(p)


def test_closed_queue_inspection_raises(path):
    # "Any use after close" raises: a closed queue must not report stale counts.
    _, q, _, _ = _closed(path)
    silent = []
    for name, op in INSPECT_OPS.items():
        try:
            op(q)
        except flinq.StoreClosedError:
            continue
        silent.append(name)
    assert not silent, f"no StoreClosedError from {silent} on a closed queue"


@pytest.mark.parametrize("settle", ["ack", "nack", "nack-delay", "nack-drop", "with"])
def test_closed_store_message_settle_raises(path, settle):
    _, _, _, msg = _closed(path)
    with pytest.raises(flinq.StoreClosedError):
        if settle == "ack":
            msg.ack()
        elif settle == "nack":
            msg.nack()
        elif settle == "nack-delay":
            msg.nack(delay=1.0)
        elif settle == "nack-drop":
            msg.nack(requeue=False)
        else:
            with msg:
                pass
    # Nothing was settled: the message is still stored, once.
    assert stored(path, "q") == [1, 2, 3]


def test_closed_store_changes_nothing_on_disk(path):
    _closed(path)
    assert stored(path, "q") == [1, 2, 3]
    assert stored(path, "p", priority=True) == ["x"]


def test_shutdown_after_close_wakes_blocked_consumer(path):
    # An application shutting down: close the store, then shut its queues down.
    store = flinq.open(path, **FAST)
    q = store.queue("q")
    consumer = spawn(q.get)
    assert still_blocked(consumer)
    store.close()
    q.shutdown(immediate=True)  # what an application does on the way out
    assert consumer.join(HANG_GUARD)


# --------------------------------------------------------------------------- core API parity


def test_qsize_empty_full_maxsize(store):
    q = store.queue("q", maxsize=2)
    assert q.maxsize == 2
    assert q.empty()
    assert not q.full()
    q.put(1)
    assert q.qsize() == 1
    assert not q.empty()
    q.put(2)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.01)
    with pytest.raises(queue.Full):
        q.put_many([3], block=False)
    assert q.qsize() == 2
    assert q.get_nowait() == 1
    q.put_nowait(3)
    assert drain(q) == [2, 3]
    unbounded = store.queue("u")
    assert unbounded.maxsize == 0
    assert not unbounded.full()


def test_put_full_changes_nothing_on_disk(path, opener):
    store = opener()
    q = store.queue("q", maxsize=1)
    q.put("a")
    with pytest.raises(queue.Full):
        q.put_nowait("b")
    with pytest.raises(queue.Full):
        q.put("c", timeout=0.01)
    store.close()
    assert stored(path, "q") == ["a"]


def test_put_blocks_until_room(store):
    q = store.queue("q", maxsize=1)
    q.put("a")
    producer = spawn(q.put, "b")
    assert still_blocked(producer)
    assert q.get() == "a"
    producer.value()
    assert q.get_nowait() == "b"


def test_get_blocks_until_put_and_times_out(store):
    q = store.queue("q")
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get_many(5, block=False)
    with pytest.raises(queue.Empty):
        q.reserve(timeout=0.01)
    consumer = spawn(q.get)
    assert still_blocked(consumer)
    q.put("x")
    assert consumer.value() == "x"


def test_get_many_bounds(store):
    q = store.queue("q")
    q.put_many(range(10))
    assert q.get_many(3) == [0, 1, 2]
    assert q.get_many(100) == list(range(3, 10))
    with pytest.raises(queue.Empty):
        q.get_many(1, timeout=0.01)


def test_task_done_and_join(store):
    q = store.queue("q")
    q.put_many(["a", "b"])
    joiner = spawn(q.join)
    assert still_blocked(joiner)
    q.get()
    q.task_done()
    msg = q.reserve()
    assert still_blocked(joiner, settle=0.05)
    msg.ack()  # settling a reserved message counts as task_done()
    assert joiner.join(HANG_GUARD)
    with pytest.raises(ValueError):
        q.task_done()


def test_join_waits_for_nacked_message(store):
    q = store.queue("q")
    q.put("a")
    msg = q.reserve()
    msg.nack()
    joiner = spawn(q.join)
    assert still_blocked(joiner)
    q.reserve().ack()
    assert joiner.join(HANG_GUARD)


def test_shutdown(path, opener):
    store = opener()
    q = store.queue("q")
    q.put_many([1, 2])
    q.shutdown()
    with pytest.raises(flinq.ShutDown):
        q.put(3)
    assert q.get_nowait() == 1
    assert q.get() == 2
    with pytest.raises(flinq.ShutDown):
        q.get()
    store.close()
    assert stored(path, "q") == []


def test_shutdown_wakes_blocked_consumer(store):
    q = store.queue("q")
    consumer = spawn(q.get)
    assert still_blocked(consumer)
    q.shutdown()
    with pytest.raises(flinq.ShutDown):
        consumer.value()


def test_shutdown_immediate_keeps_messages_stored(path, opener):
    store = opener()
    q = store.queue("q")
    q.put_many([1, 2, 3])
    msg = q.reserve()
    q.shutdown(immediate=True)
    assert q.qsize() == 0
    with pytest.raises(flinq.ShutDown):
        q.get_nowait()
    msg.nack()  # stays stored; comes back on the next open
    store.close()
    assert stored(path, "q") == [1, 2, 3]


def test_priority_queue_order_and_arguments(store):
    p = store.queue("p", priority=True)
    p.put("low", priority=5)
    p.put("high", priority=-5)
    p.put("mid-1", priority=0)
    p.put("mid-2")  # default priority 0
    p.put("max", priority=INT64_MAX)
    p.put("min", priority=INT64_MIN)
    p.put_many(["m1", "m2"], priority=1)
    p.put_nowait("now", priority=0)
    assert drain(p) == ["min", "high", "mid-1", "mid-2", "now", "m1", "m2", "low", "max"]
    with pytest.raises(OverflowError):
        p.put("x", priority=INT64_MAX + 1)
    with pytest.raises(OverflowError):
        p.put("x", priority=INT64_MIN - 1)
    with pytest.raises(TypeError):
        p.put("x", priority=1.5)
    with pytest.raises(TypeError):
        p.put("x", priority="1")
    assert p.qsize() == 0
    f = store.queue("f")
    with pytest.raises(TypeError):
        f.put("x", priority=1)
    with pytest.raises(TypeError):
        f.put_many(["x"], priority=1)
    assert f.qsize() == 0


def test_priority_of_message(store):
    p = store.queue("p", priority=True)
    p.put("x", priority=-7)
    msg = p.reserve(timeout=0)
    assert msg.priority == -7
    q = store.queue("q")
    q.put("y")
    assert q.reserve(timeout=0).priority == 0


def test_headers_and_ttl_validation(store):
    q = store.queue("q")
    for bad in ({"a": 1}, {1: "a"}, ["a"], "a"):
        with pytest.raises(TypeError):
            q.put("x", headers=bad)
    for bad in (0, -1):
        with pytest.raises(ValueError):
            q.put("x", ttl=bad)
    assert q.qsize() == 0


def test_backpressure_put_nowait_raises_full(path, opener):
    # The writer commits only when kicked: the pending log fills up.
    store = opener(max_pending=4, batch_size=1000, flush_interval=60.0)
    q = store.queue("q")
    for i in range(4):
        q.put_nowait(i)
    with pytest.raises(queue.Full):
        q.put_nowait(4)
    with pytest.raises(queue.Full):
        q.put(4, block=False)
    assert q.qsize() == 4
    q.put(5)  # blocking: waits for the writer to make room
    q.put(6, timeout=HANG_GUARD)
    store.close()
    assert stored(path, "q") == [0, 1, 2, 3, 5, 6]


def test_backpressure_put_many_is_all_or_nothing(path, opener):
    # put_many that raises queue.Full (no room in the pending log) puts nothing,
    # in memory or on disk.
    store = opener(max_pending=4, batch_size=1000, flush_interval=60.0)
    q = store.queue("q")
    q.put("first")
    with pytest.raises(queue.Full):
        q.put_many(range(6), block=False)
    assert q.qsize() == 1
    store.close()
    assert stored(path, "q") == ["first"]


def test_many_threads_exactly_once(path, opener):
    store = opener()
    q = store.queue("q")
    producers, per_producer = 4, 2000

    def produce(p):
        for i in range(0, per_producer, 10):
            if i % 20:
                q.put_many([(p, i + j) for j in range(10)])
            else:
                for j in range(10):
                    q.put((p, i + j))

    got = []
    lock = threading.Lock()

    def consume():
        while True:
            item = q.get()
            if item is None:
                return
            with lock:
                got.append(item)

    consumers = [spawn(consume) for _ in range(3)]
    for w in [spawn(produce, p) for p in range(producers)]:
        w.value()
    for _ in consumers:
        q.put(None)
    for w in consumers:
        w.value()
    assert sorted(got) == sorted((p, i) for p in range(producers) for i in range(per_producer))
    store.close()
    assert stored(path, "q") == []


def test_reserve_ack_across_threads(path, opener):
    store = opener()
    q = store.queue("q")
    q.put_many(range(3000))
    got = []
    lock = threading.Lock()

    def consume():
        while True:
            try:
                msg = q.reserve(timeout=0.2)
            except queue.Empty:
                return
            with lock:
                got.append(msg.body)
            if msg.body % 7 == 0 and msg.attempts == 1:
                msg.nack()
            else:
                assert msg.ack()

    for w in [spawn(consume) for _ in range(4)]:
        w.value()
    assert sorted(set(got)) == list(range(3000))
    assert len(got) == 3000 + len(range(0, 3000, 7))
    assert q.in_flight() == 0
    store.close()
    assert stored(path, "q") == []


def test_readonly_store(path, opener):
    store = opener()
    store.queue("a").put(1)
    store.queue("b")
    store.close()
    with flinq.open(path, readonly=True) as ro:
        assert ro.queues() == ["a", "b"]
        with pytest.raises(flinq.StoreError):
            ro.queue("a")
        ro.flush()  # nothing to do
    assert reserve_all(opener().queue("a"))[0].body == 1


def test_readonly_missing_path_does_not_create_it(path):
    with pytest.raises(flinq.StoreError):
        flinq.open(path, readonly=True)
    assert not path.exists()


def test_flush_waits_for_commit(path, opener):
    store = opener(flush_interval=60.0)
    q = store.queue("q")
    q.put_many(range(5))
    assert store.stats()["pending"] > 0
    store.flush()
    assert store.stats()["pending"] == 0
    assert wait_until(lambda: store.stats()["commits"] >= 1)
