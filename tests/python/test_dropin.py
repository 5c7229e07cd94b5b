"""The parts of queue.Queue's API beyond put/get that code written for the
stdlib reaches for: an assignable maxsize, unfinished_tasks, the class
hierarchy, the storage hooks of subclasses, and what stands in for the
stdlib's mutex and deque."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest
from qhelpers import BOUNDED_CLASSES, cls_id, wait_until

import flinq

bounded_classes = pytest.mark.parametrize("cls", BOUNDED_CLASSES, ids=cls_id)


def test_lifo_and_priority_queues_are_queues_as_in_the_stdlib():
    assert isinstance(flinq.LifoQueue(), flinq.Queue)
    assert isinstance(flinq.PriorityQueue(), flinq.Queue)
    assert not isinstance(flinq.SimpleQueue(), flinq.Queue)
    assert issubclass(flinq.LifoQueue, flinq.Queue) == issubclass(queue.LifoQueue, queue.Queue)


@bounded_classes
def test_maxsize_can_grow_and_shrink(cls):
    q = cls(2)
    q.put(1)
    q.put(2)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    q.maxsize = 3
    assert q.maxsize == 3 and not q.full()
    q.put_nowait(3)
    q.maxsize = 1  # shrinking below the depth keeps the items; puts wait
    assert q.full() and q.qsize() == 3
    with pytest.raises(queue.Full):
        q.put_nowait(4)
    q.maxsize = 0
    q.put_nowait(4)
    assert q.qsize() == 4 and q.stats()["maxsize"] == 0


@bounded_classes
@pytest.mark.parametrize("bad", [1.5, "3", None])
def test_assigning_a_bad_maxsize_changes_nothing(cls, bad):
    q = cls(2)
    with pytest.raises(TypeError):
        q.maxsize = bad
    assert q.maxsize == 2


@bounded_classes
def test_waiting_putter_sees_a_grown_maxsize(cls):
    q = cls(1)
    q.put(1)
    done = threading.Event()

    def putter():
        q.put(2)
        done.set()

    thread = threading.Thread(target=putter)
    thread.start()
    assert not done.wait(0.1)
    q.maxsize = 2
    assert done.wait(10)
    thread.join()
    assert q.qsize() == 2


@bounded_classes
def test_unfinished_tasks_counts_like_the_stdlib(cls):
    q = cls()
    assert q.unfinished_tasks == 0
    q.put(1)
    q.put(2)
    assert q.unfinished_tasks == 2
    q.get()
    assert q.unfinished_tasks == 2
    q.task_done()
    assert q.unfinished_tasks == 1


@bounded_classes
def test_clear_empties_and_releases_join(cls):
    q = cls(5)
    for i in range(4):
        q.put(i)
    q.get()
    assert q.clear() == 3
    assert q.qsize() == 0 and q.unfinished_tasks == 1
    q.task_done()
    q.join()  # returns: the cleared items count as done
    q.put(9)
    assert q.get() == 9


@bounded_classes
@pytest.mark.parametrize("name", ["mutex", "queue", "not_empty", "not_full", "all_tasks_done"])
def test_stdlib_internals_say_what_to_use(cls, name):
    q = cls()
    with pytest.raises(AttributeError, match=name) as raised:
        getattr(q, name)
    assert "flinq." in str(raised.value)
    assert not hasattr(q, name)
    if name in ("mutex", "queue"):
        assert "clear()" in str(raised.value)


class Recording(flinq.Queue[Any]):
    """A subclass with its own storage, as the stdlib's docs suggest."""

    def _init(self, maxsize: int) -> None:
        self.log: list[Any] = []
        self.items: list[Any] = []

    def _qsize(self) -> int:
        return len(self.items)

    def _put(self, item: Any) -> None:
        self.log.append(("put", item))
        self.items.append(item)

    def _get(self) -> Any:
        item = self.items.pop(0)
        self.log.append(("get", item))
        return item


def test_overridden_hooks_are_honoured():
    q = Recording(2)
    q.put("a")
    q.put("b")
    assert q.full() and q.qsize() == 2 and not q.empty()
    with pytest.raises(queue.Full):
        q.put("c", timeout=0.01)
    assert q.get() == "a"
    q.task_done()
    assert q.get_nowait() == "b"
    q.task_done()
    q.join()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    assert q.log == [("put", "a"), ("put", "b"), ("get", "a"), ("get", "b")]
    with q.mutex:  # the stdlib's lock and conditions exist for such a subclass
        assert q.items == []
    assert isinstance(q.not_empty, threading.Condition)


def test_hooked_blocking_get_wakes_on_put():
    q = Recording()
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(q.get()))
    thread.start()
    q.put("x")
    thread.join(10)
    assert got == ["x"]


def test_a_failing_hook_changes_nothing():
    class Failing(flinq.Queue[Any]):
        fail = False

        def _put(self, item: Any) -> None:
            if self.fail:
                raise RuntimeError("put hook")
            super()._put(item)

    q = Failing(3)
    q.put(1)
    q.fail = True
    with pytest.raises(RuntimeError):
        q.put(2)
    assert q.qsize() == 1 and q.unfinished_tasks == 1
    assert q.get() == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.put_many([1]),
        lambda q: q.get_many(1),
        lambda q: q.reserve(timeout=0),
        lambda q: q.messages(),
        lambda q: q.consume(lambda m: None),
        lambda q: q.clear(),
    ],
)
def test_flinq_extensions_refuse_hooked_subclasses(call):
    q = Recording()
    with pytest.raises(TypeError, match="_put/_get"):
        call(q)


def test_hooked_priority_queue_refuses_keyed_puts():
    class Mine(flinq.PriorityQueue[Any]):
        def _put(self, item: Any) -> None:
            super()._put(item)

    q = Mine()
    q.put(3)
    q.put(1)
    assert q.get() == 1
    with pytest.raises(TypeError):
        q.put("x", priority=1)


def test_hooked_shutdown_wakes_getters():
    q = Recording()
    errors: list[str] = []

    def getter():
        try:
            q.get()
        except Exception as exc:
            errors.append(type(exc).__name__)

    thread = threading.Thread(target=getter)
    thread.start()
    wait_until(lambda: q.not_empty._waiters)  # type: ignore[attr-defined]
    q.shutdown()
    thread.join(10)
    assert errors == ["ShutDown"]


def test_plain_subclasses_keep_the_fast_path():
    class Plain(flinq.Queue[Any]):
        pass

    q = Plain()
    q.put_many([1, 2])
    assert q.get_many(5) == [1, 2]
    assert not hasattr(q, "mutex")


# ---- set_watcher: the hook that bridges (flinq.aio) use -------------------------------

ITEMS = flinq._core.WATCH_EVENTS["items"]
ROOM = flinq._core.WATCH_EVENTS["room"]
DONE = flinq._core.WATCH_EVENTS["done"]


@bounded_classes
def test_watcher_hears_items_room_and_done(cls):
    q = cls(2)
    events: list[int] = []
    q.set_watcher(events.append)
    assert q.watcher is not None
    q.put(1)
    q.get()
    q.task_done()
    q.put_many([1, 2])
    q.get_many(2)
    assert events == [ITEMS, ROOM, DONE, ITEMS, ROOM]
    events.clear()
    q.shutdown()
    assert set(events) >= {ITEMS, ROOM}
    q.set_watcher(None)
    assert q.watcher is None


def test_watcher_errors_are_unraisable_and_change_nothing(monkeypatch):
    q = flinq.SimpleQueue()
    seen: list[BaseException | None] = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: seen.append(u.exc_value))

    def bad(event: int) -> None:
        raise RuntimeError("watcher")

    q.set_watcher(bad)
    q.put(1)
    assert q.qsize() == 1 and q.get() == 1
    assert [type(e) for e in seen] == [RuntimeError]  # put; an unbounded get frees no room


def test_watcher_must_be_callable():
    with pytest.raises(TypeError):
        flinq.Queue().set_watcher(5)
