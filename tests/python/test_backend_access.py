"""What the core offers code built on a queue: flinq._core.BackendAccess (a
durable backend's steps on the in-memory queue holding its ready messages),
flinq._core.serve (a consume() worker's loop) and LocalMessage.dead_letter.

Each method's docstring states what it does to depth, unfinished, room and
the stats counters; these tests hold it to that. Blocking calls have
timeouts; no test asserts on speed.
"""

from __future__ import annotations

import queue
from typing import Any

import pytest
from qhelpers import spawn, still_blocked

import flinq
from flinq import _core
from flinq._compat import ShutDown

T = 10.0


def counts(q: Any) -> tuple[int, int]:
    """(depth, unfinished)."""
    return q.qsize(), q.unfinished_tasks


@pytest.fixture(params=["Queue", "PriorityQueue", "LifoQueue"])
def bounded(request: pytest.FixtureRequest) -> Any:
    return getattr(flinq, request.param)(2)


def test_refuses_what_it_cannot_back() -> None:
    class Hooked(flinq.Queue):  # type: ignore[type-arg]
        def _put(self, item: Any) -> None:
            super()._put(item)

    with pytest.raises(TypeError):
        _core.BackendAccess(Hooked())
    with pytest.raises(TypeError):
        _core.BackendAccess(flinq.SimpleQueue())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _core.BackendAccess(None)  # type: ignore[arg-type]
    q: flinq.Queue[int] = flinq.Queue()
    assert _core.BackendAccess(q).queue is q


def test_restore_passes_maxsize_and_counts_arrivals(bounded: Any) -> None:
    access = _core.BackendAccess(bounded)
    access.restore(["a", "b", "c"])
    assert counts(bounded) == (3, 3)
    assert bounded.full()
    assert bounded.stats()["enqueued"] == 3
    assert [bounded.get(timeout=T) for _ in range(3)] == (
        ["c", "b", "a"] if isinstance(bounded, flinq.LifoQueue) else ["a", "b", "c"]
    )


def test_restore_keeps_priorities() -> None:
    q: flinq.PriorityQueue[str] = flinq.PriorityQueue()
    access = _core.BackendAccess(q)
    access.restore(["late"], 5)
    access.restore(["first", "second"], 1)
    assert q.get_many(10, timeout=T) == ["first", "second", "late"]


def test_restore_wakes_a_getter() -> None:
    q: flinq.Queue[str] = flinq.Queue()
    getter = spawn(q.get, timeout=T)
    assert still_blocked(getter)
    _core.BackendAccess(q).restore(["x"])
    assert getter.value() == "x"


def test_restore_after_shutdown() -> None:
    q: flinq.Queue[str] = flinq.Queue()
    access = _core.BackendAccess(q)
    q.shutdown()
    access.restore(["kept"])  # a redelivery is not refused
    assert q.get(timeout=T) == "kept"
    q2: flinq.Queue[str] = flinq.Queue()
    q2.shutdown(immediate=True)
    _core.BackendAccess(q2).restore(["dropped"])
    assert q2.qsize() == 0
    assert q2.stats()["discarded"] == 1


def test_hold_room_then_push_held(bounded: Any) -> None:
    access = _core.BackendAccess(bounded)
    access.hold_room(2, timeout=T)
    assert bounded.qsize() == 0
    assert bounded.full()  # held room counts against maxsize
    with pytest.raises(queue.Full):
        bounded.put_nowait("other")
    access.push_held(["a", "b"])
    assert counts(bounded) == (2, 2)
    with pytest.raises(ValueError):
        access.push_held(["c"])  # no room held for it: nothing changes
    assert counts(bounded) == (2, 2)


def test_hold_room_refusals_hold_nothing(bounded: Any) -> None:
    access = _core.BackendAccess(bounded)
    with pytest.raises(ValueError):
        access.hold_room(3)  # can never fit
    with pytest.raises(ValueError):
        access.hold_room(-1)
    bounded.put("x")
    bounded.put("y")
    with pytest.raises(queue.Full):
        access.hold_room(1, block=False)
    with pytest.raises(queue.Full):
        access.hold_room(1, timeout=0.01)
    bounded.get(timeout=T)
    access.hold_room(1, block=False)  # the refusals held nothing: one slot is free
    access.release_room(1)
    bounded.shutdown()
    with pytest.raises(ShutDown):
        access.hold_room(1)


def test_hold_room_waits_for_room_and_release_room_wakes_putters() -> None:
    q: flinq.Queue[str] = flinq.Queue(1)
    access = _core.BackendAccess(q)
    q.put("x")
    holder = spawn(access.hold_room, 1, timeout=T)
    assert still_blocked(holder)
    q.get(timeout=T)
    holder.value()
    putter = spawn(q.put, "y", timeout=T)
    assert still_blocked(putter)  # the slot is held
    access.release_room(1)
    putter.value()
    assert q.get(timeout=T) == "y"
    with pytest.raises(ValueError):
        access.release_room(1)  # nothing is held


def test_done_and_note() -> None:
    q: flinq.Queue[str] = flinq.Queue()
    access = _core.BackendAccess(q)
    q.put_many(["a", "b", "c"])
    q.get_many(3, timeout=T)
    with pytest.raises(ValueError):
        access.done(4)
    assert q.unfinished_tasks == 3
    joiner = spawn(q.join)
    access.done(2)
    assert still_blocked(joiner)
    access.done(1)
    joiner.value()
    for name, kind in _core.NOTE_KINDS.items():
        access.note(kind, 2)
        assert q.stats()[name] == 2
    access.note(_core.NOTE_KINDS["acked"])
    assert q.stats()["acked"] == 3
    with pytest.raises(ValueError):
        access.note(len(_core.NOTE_KINDS))
    with pytest.raises(ValueError):
        access.note(0, -1)
    assert counts(q) == (0, 0)  # note() changes no other count


def test_serve_runs_a_worker_step() -> None:
    q: flinq.Queue[int] = flinq.Queue()
    q.put_many([1, 2, 3])
    state = _core.WorkerState()
    seen: list[int] = []
    errors: list[BaseException] = []

    def handler(message: Any) -> None:
        seen.append(message.body)
        if message.body == 2:
            raise RuntimeError("two")

    def settle_failed(message: Any, error: BaseException) -> None:
        errors.append(error)
        message.nack(False)

    assert _core.serve(q, handler, 10, 0, settle_failed, state) == 3
    assert seen == [1, 2, 3]
    assert [str(e) for e in errors] == ["two"]
    assert state.calls == 3
    st = q.stats()
    assert (st["acked"], st["nacked"], st["dead_lettered"], st["in_flight"]) == (2, 1, 1, 0)
    assert _core.serve(q, handler, 10, 0, settle_failed, state) == 0  # empty: nothing taken
    state.stopping = True
    q.put(4)
    assert _core.serve(q, handler, 10, 0, settle_failed, state) == 0  # stopping: takes nothing
    q.shutdown()
    state.stopping = False
    q.get(timeout=T)
    with pytest.raises(ShutDown):
        _core.serve(q, handler, 10, 0, settle_failed, state)


def test_local_message_dead_letter() -> None:
    q: flinq.Queue[str] = flinq.Queue()
    dlq: flinq.Queue[flinq.LocalMessage[str]] = flinq.Queue()
    q.put("body")
    message = q.reserve(timeout=T)
    assert message.dead_letter(dlq, ValueError("bad body")) is True
    assert message.settled
    assert message.dead_letter(dlq) is False
    dead = dlq.get(timeout=T)
    assert dead is message
    assert (dead.body, dead.error_type, dead.error) == ("body", "ValueError", "bad body")
    st = q.stats()
    assert (st["nacked"], st["dead_lettered"], st["in_flight"], st["unfinished"]) == (1, 1, 0, 0)


def test_local_message_dead_letter_failure_keeps_it_in_flight() -> None:
    q: flinq.Queue[str] = flinq.Queue()
    q.put("body")
    message = q.reserve(timeout=T)

    class Refusing:
        def put(self, item: Any) -> None:
            raise queue.Full

    with pytest.raises(queue.Full):
        message.dead_letter(Refusing())
    assert not message.settled
    assert q.stats()["in_flight"] == 1
    assert message.nack() is True
    assert q.get(timeout=T) == "body"
