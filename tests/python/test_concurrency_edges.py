"""Edge cases where Python code runs inside a queue operation, or threads
race one: each of these crashed, hung or lost an item in an earlier build."""

from __future__ import annotations

import gc
import sys
import threading
import time

import pytest

import flinq
from flinq import _core


class Slow:
    """An item whose `<` can release the GIL in the middle of a heap operation."""

    slow = False

    def __init__(self, value: int) -> None:
        self.value = value

    def __lt__(self, other: Slow) -> bool:
        if Slow.slow:
            time.sleep(0.002)
        return self.value < other.value


@pytest.fixture(autouse=True)
def _not_slow():
    Slow.slow = False
    yield
    Slow.slow = False


def test_put_that_grows_the_heap_waits_for_a_comparison_in_progress():
    q = flinq.PriorityQueue()
    for i in range(16):  # fills the heap array to its first capacity
        q.put(Slow(i))
    Slow.slow = True
    got = []
    getter = threading.Thread(target=lambda: got.append(q.get()))
    getter.start()
    time.sleep(0.005)  # the getter is inside a comparison now
    q.put(Slow(100))  # needs a larger array
    getter.join(10)
    Slow.slow = False
    values = [x.value for x in got] + [q.get_nowait().value for _ in range(q.qsize())]
    assert sorted(values) == [*range(16), 100]


def test_keyed_put_from_inside_the_first_compared_put_is_refused():
    q = flinq.PriorityQueue()
    errors: list[BaseException] = []

    class Meddler:
        def __init__(self, value: int) -> None:
            self.value = value

        def __lt__(self, other: Meddler) -> bool:
            try:
                q.put(0, priority=0)
            except BaseException as exc:
                errors.append(exc)
            return self.value < other.value

    q.put_many([Meddler(2), Meddler(1)])
    assert errors and all(isinstance(e, (TypeError, RuntimeError)) for e in errors)
    assert [q.get().value, q.get().value] == [1, 2]
    assert q.empty()


def test_put_many_owns_its_items_while_comparisons_run():
    q = flinq.PriorityQueue()
    batch: list[object] = []

    class Clearer:
        def __init__(self, value: int) -> None:
            self.value = value

        def __lt__(self, other: Clearer) -> bool:
            batch.clear()
            return self.value < other.value

    batch.extend([Clearer(3), Clearer(1), Clearer(2)])
    q.put_many(batch)
    assert [q.get().value for _ in range(3)] == [1, 2, 3]


def test_put_many_owns_its_items_while_waiting_for_room():
    q = flinq.Queue(maxsize=2)
    q.put(0)
    q.put(1)
    batch = [object(), object()]
    expected = list(batch)
    putter = threading.Thread(target=q.put_many, args=(batch,))
    putter.start()
    time.sleep(0.1)
    batch.clear()  # the caller's list changes while put_many waits
    q.get()
    q.get()
    putter.join(10)
    assert [q.get_nowait(), q.get_nowait()] == expected


def test_single_putter_is_woken_behind_a_waiting_batch_putter():
    q = flinq.Queue(maxsize=2)
    q.put(0)
    q.put(1)
    done: list[str] = []
    batch = threading.Thread(target=lambda: (q.put_many(["a", "b"]), done.append("batch")))
    single = threading.Thread(target=lambda: (q.put("c"), done.append("single")))
    batch.start()
    time.sleep(0.1)
    single.start()
    time.sleep(0.1)
    q.get()  # one free slot: enough for the single put only
    single.join(10)
    assert done == ["single"]
    q.get()
    q.get()
    batch.join(10)
    assert "batch" in done


def test_subclassing_the_private_base_is_refused():
    class Mine(_core._QueueCore):  # type: ignore[misc]
        pass

    with pytest.raises(TypeError):
        Mine()


def test_subclasses_of_public_classes_work():
    class Mine(flinq.Queue):
        pass

    q = Mine(3)
    q.put(1)
    assert q.get() == 1


def test_immediate_shutdown_wakes_putters_even_if_draining_raises():
    q = flinq.PriorityQueue(maxsize=1)
    q.put(Slow(1))
    outcome: list[str] = []

    def putter():
        try:
            q.put(Slow(2))
        except BaseException as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=putter)
    thread.start()
    time.sleep(0.1)
    q.shutdown(immediate=True)
    thread.join(10)
    assert outcome == ["ShutDown"]
    with pytest.raises(flinq.ShutDown):
        q.get_nowait()


def test_compared_put_straddling_an_immediate_shutdown_is_discarded():
    class Sleepy:
        def __init__(self, value: int) -> None:
            self.value = value

        def __lt__(self, other: Sleepy) -> bool:
            time.sleep(0.2)
            return self.value < other.value

    q = flinq.PriorityQueue()
    q.put(Sleepy(1))
    putter = threading.Thread(target=q.put, args=(Sleepy(0),))
    putter.start()
    time.sleep(0.05)  # the put is inside a comparison
    q.shutdown(immediate=True)
    putter.join(10)
    assert q.qsize() == 0
    with pytest.raises(flinq.ShutDown):
        q.get_nowait()


def test_cycles_through_compared_items_are_collected_when_comparing_fails():
    refuse = False

    class Key:
        def __init__(self, value: int) -> None:
            self.value = value

        def __lt__(self, other: Key) -> bool:
            if refuse:
                raise ValueError("cannot compare now")
            return self.value < other.value

    unraisable: list[object] = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        for _ in range(20):
            q = flinq.PriorityQueue()
            for value in (1, 2, 3):
                q.put((Key(value), q))
            del q
        refuse = True
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert not any(type(o) is flinq.PriorityQueue for o in gc.get_objects())
    assert unraisable == []


def test_partial_compared_get_many_raises_the_error_on_the_next_call():
    calls = 0

    class Flaky:
        def __init__(self, value: int) -> None:
            self.value = value

        def __lt__(self, other: Flaky) -> bool:
            nonlocal calls
            calls += 1
            if armed and calls == 6:
                raise ValueError("one-off")
            return self.value < other.value

    armed = False
    q = flinq.PriorityQueue()
    q.put_many([Flaky(i) for i in range(10)])
    armed = True
    calls = 0
    got = q.get_many(10)
    assert 1 <= len(got) < 10
    assert [x.value for x in got] == list(range(len(got)))
    with pytest.raises(ValueError, match="one-off"):
        q.get_many(10)
    rest = q.get_many(10)
    assert [x.value for x in got + rest] == list(range(10))
