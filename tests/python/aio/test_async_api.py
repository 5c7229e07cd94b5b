"""The async face's API on the in-memory queues, within one event loop."""

from __future__ import annotations

import asyncio
import queue

import pytest
from qhelpers import ALL_CLASSES, BOUNDED_CLASSES, HANG_GUARD, cls_id

import flinq
from flinq.aio import AsyncQueue, QueueEmpty, QueueFull, QueueShutDown, async_queue


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, HANG_GUARD))


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=cls_id)
def test_put_then_get_in_order(cls):
    async def main():
        face = async_queue(cls())
        for i in range(5):
            await face.put(i)
        assert face.qsize() == 5 and not face.empty()
        return [await face.get() for _ in range(5)]

    got = run(main())
    assert got == ([4, 3, 2, 1, 0] if cls is flinq.LifoQueue else [0, 1, 2, 3, 4])


def test_one_face_per_queue_and_the_same_queue_behind_it():
    q = flinq.Queue()
    face = async_queue(q)
    assert async_queue(q) is face and face.sync_q is q
    q.put("from a thread's side")
    assert face.get_nowait() == "from a thread's side"
    face.put_nowait("from a coroutine's side")
    assert q.get_nowait() == "from a coroutine's side"


def test_not_a_queue_is_a_type_error():
    with pytest.raises(TypeError, match="not a queue"):
        async_queue(object())


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=cls_id)
def test_get_nowait_on_empty_raises_both_empties(cls):
    face = async_queue(cls())
    with pytest.raises(QueueEmpty) as raised:
        face.get_nowait()
    assert isinstance(raised.value, queue.Empty) and isinstance(raised.value, asyncio.QueueEmpty)


@pytest.mark.parametrize("cls", BOUNDED_CLASSES, ids=cls_id)
def test_bounded_state_and_put_nowait_full(cls):
    face = async_queue(cls(2))
    assert face.maxsize == 2 and not face.full()
    face.put_nowait(1)
    face.put_nowait(2)
    assert face.full()
    with pytest.raises(QueueFull) as raised:
        face.put_nowait(3)
    assert isinstance(raised.value, queue.Full) and isinstance(raised.value, asyncio.QueueFull)
    assert face.qsize() == 2  # the refused put changed nothing


def test_simple_queue_is_unbounded():
    face = async_queue(flinq.SimpleQueue())
    assert face.maxsize == 0 and not face.full()


def test_get_waits_for_a_put_from_another_task():
    async def main():
        face = async_queue(flinq.Queue())
        getter = asyncio.create_task(face.get())
        await asyncio.sleep(0)
        assert not getter.done()
        await face.put("x")
        return await getter, face.stats()

    item, stats = run(main())
    assert item == "x"
    assert stats["waits"] == 1 and stats["inline_wakeups"] >= 1 and stats["wakeups"] == 0


def test_put_waits_for_room():
    async def main():
        face = async_queue(flinq.Queue(1))
        await face.put(1)
        putter = asyncio.create_task(face.put(2))
        await asyncio.sleep(0)
        assert not putter.done()
        assert await face.get() == 1
        await putter
        return face.get_nowait()

    assert run(main()) == 2


def test_priority_put_keyword():
    async def main():
        face = async_queue(flinq.PriorityQueue(1))
        await face.put("late", priority=5)
        putter = asyncio.create_task(face.put("early", priority=1))
        await asyncio.sleep(0)
        assert face.get_nowait() == "late"
        await putter
        first = face.get_nowait()
        face.put_nowait("later", priority=9)
        return [first, face.get_nowait()]

    assert run(main()) == ["early", "later"]


def test_get_many_waits_for_the_first_and_takes_what_is_there():
    async def main():
        face = async_queue(flinq.Queue())
        getter = asyncio.create_task(face.get_many(10))
        await asyncio.sleep(0)
        face.sync_q.put_many([1, 2, 3])
        return await getter

    assert run(main()) == [1, 2, 3]


def test_put_many_waits_until_all_fit_and_takes_iterators():
    async def main():
        face = async_queue(flinq.Queue(3))
        await face.put(0)
        putter = asyncio.create_task(face.put_many(iter([1, 2, 3])))
        await asyncio.sleep(0)
        assert not putter.done() and face.qsize() == 1
        assert await face.get() == 0
        await putter
        return await face.get_many(10)

    assert run(main()) == [1, 2, 3]


def test_put_many_that_can_never_fit_is_a_value_error():
    async def main():
        await async_queue(flinq.Queue(2)).put_many([1, 2, 3])

    with pytest.raises(ValueError):
        run(main())


def test_task_done_and_join():
    async def main():
        face = async_queue(flinq.Queue())
        for i in range(3):
            await face.put(i)
        joiner = asyncio.create_task(face.join())
        for _ in range(3):
            await face.get()
            await asyncio.sleep(0)
            assert not joiner.done()
            face.task_done()
        await joiner
        with pytest.raises(ValueError):
            face.task_done()

    run(main())


def test_reserve_then_ack_or_nack():
    async def main():
        face = async_queue(flinq.Queue())
        await face.put_many([0, 1])
        msg = await face.reserve()
        assert msg.body == 0 and msg.attempts == 1 and msg.ack() and msg.settled
        msg = await face.reserve()
        assert msg.nack()  # back in the queue
        again = await face.reserve()
        assert (again.body, again.attempts) == (1, 2)
        again.ack()
        face.sync_q.join()

    run(main())


def test_nack_without_requeue_passes_the_reason_on():
    async def main():
        face = async_queue(flinq.Queue())
        await face.put("x")
        msg = await face.reserve()
        assert msg.nack(False, error=ValueError("bad"))
        assert (msg.error_type, msg.error) == ("ValueError", "bad")

    run(main())


def test_messages_acks_on_success_and_redelivers_on_failure():
    async def main():
        face = async_queue(flinq.Queue())
        await face.put_many(["a", "b"])
        bodies = []
        async for msg in face.messages(timeout=0):
            try:
                async with msg:
                    bodies.append((msg.body, msg.attempts))
                    if msg.body == "a" and msg.attempts == 1:
                        raise KeyError("fails once")
            except KeyError:
                pass
        face.sync_q.join()  # every message settled: acked
        return bodies

    assert run(main()) == [("a", 1), ("b", 1), ("a", 2)]


def test_reserve_with_timeout_raises_empty():
    async def main():
        face = async_queue(flinq.Queue())
        with pytest.raises(QueueEmpty):
            await face.reserve(timeout=0.01)
        assert face.stats()["watching"] == 0

    run(main())


def test_shutdown_wakes_waiters_and_raises_both_shutdowns():
    async def main():
        face = async_queue(flinq.Queue(1))
        getters = [asyncio.create_task(face.get()) for _ in range(3)]
        await asyncio.sleep(0)
        face.shutdown()
        for getter in getters:
            with pytest.raises(QueueShutDown) as raised:
                await getter
            assert isinstance(raised.value, flinq.ShutDown)
            if hasattr(asyncio, "QueueShutDown"):
                assert isinstance(raised.value, asyncio.QueueShutDown)
        with pytest.raises(QueueShutDown):
            await face.put(1)

    run(main())


def test_shutdown_wakes_putters():
    async def main():
        face = async_queue(flinq.Queue(1))
        face.put_nowait(0)
        putter = asyncio.create_task(face.put(1))
        await asyncio.sleep(0)
        face.shutdown()
        with pytest.raises(QueueShutDown):
            await putter

    run(main())


def test_immediate_shutdown_releases_join():
    async def main():
        face = async_queue(flinq.Queue())
        await face.put_many([1, 2])
        joiner = asyncio.create_task(face.join())
        await asyncio.sleep(0)
        face.shutdown(immediate=True)
        await joiner

    run(main())


def test_the_watcher_is_installed_only_while_a_coroutine_waits():
    async def main():
        q = flinq.Queue()
        face = async_queue(q)
        assert q.watcher is None
        getter = asyncio.create_task(face.get())
        await asyncio.sleep(0)
        assert q.watcher is not None
        q.put(1)
        await getter
        return q.watcher

    assert run(main()) is None


def test_a_cancelled_waiter_uninstalls_the_watcher():
    async def main():
        q = flinq.Queue()
        getter = asyncio.create_task(async_queue(q).get())
        await asyncio.sleep(0)
        getter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await getter
        return q.watcher

    assert run(main()) is None


def test_someone_elses_watcher_is_not_replaced():
    async def main():
        q = flinq.Queue()
        q.set_watcher(print)
        face = async_queue(q)
        with pytest.raises(RuntimeError, match="already has a watcher"):
            await face.get()
        assert q.watcher is print
        q.set_watcher(None)  # once it is gone, the face waits as usual
        getter = asyncio.create_task(face.get())
        await asyncio.sleep(0)
        q.put("x")
        assert await getter == "x"
        assert face.stats()["waits"] == 1

    run(main())


def test_waiters_on_an_unbounded_queue_each_get_one_item():
    async def main():
        face = async_queue(flinq.Queue())
        getters = [asyncio.create_task(face.get()) for _ in range(50)]
        await asyncio.sleep(0)
        for i in range(50):
            face.put_nowait(i)
        return sorted(await asyncio.gather(*getters))

    assert run(main()) == list(range(50))


def test_typed_face():
    face: AsyncQueue[int] = async_queue(flinq.Queue())
    assert AsyncQueue[int].__args__ == (int,)
    assert "AsyncQueue" in repr(face)


def test_a_put_from_a_loop_callback_does_not_run_the_waiter_inside_the_put():
    """Inside a queue operation (the watcher) no coroutine code runs: the
    woken waiter steps in a later iteration, even when no task is running."""

    async def main():
        q = flinq.Queue()
        getter = asyncio.create_task(async_queue(q).get())
        await asyncio.sleep(0)
        seen = []

        def callback():
            q.put("x")
            seen.append(getter.done())

        asyncio.get_running_loop().call_soon(callback)
        assert await getter == "x"
        return seen

    assert run(main()) == [False]
