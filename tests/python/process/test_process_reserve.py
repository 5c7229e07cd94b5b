"""ProcessQueue.reserve(): at least once across processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import phelpers
import pytest

from flinq import Empty, ProcessMessage, ProcessQueue


def test_reserve_ack(pq: ProcessQueue) -> None:
    pq.put_many([b"a", {"b": 2}])
    msg = pq.reserve(timeout=5)
    assert isinstance(msg, ProcessMessage)
    assert msg.body == b"a" and msg.attempts == 1 and not msg.settled
    assert pq.stats()["in_flight"] == 1
    assert pq.qsize() == 1
    assert msg.ack() is True
    assert msg.settled
    assert msg.ack() is False  # once
    assert pq.stats()["in_flight"] == 0
    with pq.reserve() as second:
        assert second.body == {"b": 2}
    assert second.settled
    with pytest.raises(Empty):
        pq.reserve(timeout=0.01)


def test_nack_puts_back_with_one_more_attempt(pq: ProcessQueue) -> None:
    pq.put(b"x")
    first = pq.reserve()
    assert first.nack() is True
    again = pq.reserve(timeout=5)
    assert again.body == b"x" and again.attempts == 2
    assert again.nack(requeue=False) is True  # dropped
    assert pq.qsize() == 0 and pq.stats()["in_flight"] == 0
    with pytest.raises(Empty):
        pq.get_nowait()


def test_exception_in_context_nacks(pq: ProcessQueue) -> None:
    pq.put(b"work")
    with pytest.raises(RuntimeError), pq.reserve():
        raise RuntimeError("handler failed")
    assert pq.get(timeout=5) == b"work"


def test_visibility_timeout_brings_it_back() -> None:
    q = ProcessQueue(visibility_timeout=0.1)
    try:
        assert q.visibility_timeout == pytest.approx(0.1)
        q.put(b"slow")
        held = q.reserve()
        again = q.reserve(timeout=10)  # waits until the first one expires
        assert again.body == b"slow" and again.attempts == 2
        assert held.ack() is False  # too late: it went back
        assert again.ack() is True
        q.put(b"quick")
        m = q.reserve(visibility_timeout=30)
        with pytest.raises(Empty):
            q.reserve(timeout=0.3)  # the queue's 0.1 s does not apply to m
        assert m.ack() is True
    finally:
        q.close()


def test_get_also_sees_expired_reservations(pq: ProcessQueue) -> None:
    pq.put(b"m")
    pq.reserve(visibility_timeout=0.05)
    assert pq.get(timeout=10) == b"m"


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-1.0, ValueError), ("1", TypeError), (True, TypeError)]
)
def test_bad_visibility_timeout(pq: ProcessQueue, value: object, error: type[Exception]) -> None:
    pq.put(b"kept")
    with pytest.raises(error):
        pq.reserve(visibility_timeout=value)  # type: ignore[arg-type]
    with pytest.raises(error):
        ProcessQueue(visibility_timeout=value)  # type: ignore[arg-type]
    assert pq.qsize() == 1  # nothing was taken


def test_messages_of_a_killed_reserver_come_back_at_once() -> None:
    ctx = mp.get_context("fork")
    q = ProcessQueue(visibility_timeout=600)
    try:
        q.put_many([b"1", b"2", b"3"])
        ready = ctx.SimpleQueue()
        child = ctx.Process(target=phelpers.reserve_and_hang, args=(q, 2, ready))
        child.start()
        assert ready.get() == [b"1", b"2"]
        assert q.stats()["in_flight"] == 2
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join()
        t0 = time.monotonic()
        got = sorted(q.get(timeout=10) for _ in range(3))
        assert got == [b"1", b"2", b"3"]
        assert time.monotonic() - t0 < 60  # not the 600 s visibility timeout
        assert q.stats()["in_flight"] == 0
    finally:
        q.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_reserve_in_child_processes(method: str) -> None:
    ctx = mp.get_context(method)
    q, out = ProcessQueue(), ProcessQueue()
    try:
        q.put_many(list(range(200)))
        workers = [
            ctx.Process(target=phelpers.reserve_and_ack, args=(q, 100, out)) for _ in range(2)
        ]
        for w in workers:
            w.start()
        got = sorted(out.get(timeout=60) for _ in range(200))
        for w in workers:
            w.join(30)
            assert w.exitcode == 0
        assert got == list(range(200))
        assert q.stats()["in_flight"] == 0
    finally:
        q.close()
        out.close()
