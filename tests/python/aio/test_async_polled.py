"""Queue kinds that tell no watcher (durable queues, ArrayQueue, subclasses
of the in-memory kinds) are awaited by polling: same API, same guarantees."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest
from qhelpers import HANG_GUARD

import flinq
from flinq.aio import QueueEmpty, async_queue


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, HANG_GUARD))


@pytest.fixture
def durable(tmp_path):
    store = flinq.open(tmp_path / "store", flush_interval=0.002)
    yield store.queue("jobs")
    store.close()


def test_durable_get_waits_for_a_thread_put(durable):
    async def main():
        face = async_queue(durable)
        getter = asyncio.create_task(face.get())
        while face.stats()["polls"] < 1:  # the get is waiting: now put, from a thread
            await asyncio.sleep(0.001)
        putter = threading.Thread(target=durable.put, args=("late",))
        putter.start()
        item = await getter
        putter.join()
        return item, face.stats()

    item, stats = run(main())
    assert item == "late" and stats["polls"] >= 1
    assert "wakeups" not in stats


def test_durable_messages_ack_and_survive_cancellation(durable):
    async def main():
        face = async_queue(durable)
        getter = asyncio.create_task(face.reserve())
        await asyncio.sleep(0.002)
        getter.cancel()  # while polling: nothing is taken
        durable.put_many(["a", "b"])
        bodies = []
        async for msg in face.messages(timeout=0):
            async with msg:
                bodies.append(msg.body)
        return bodies

    assert run(main()) == ["a", "b"]
    assert durable.qsize() == 0 and durable.in_flight() == 0


def test_durable_join_waits_for_task_done(durable):
    async def main():
        face = async_queue(durable)
        await face.put("x")
        joiner = asyncio.create_task(face.join())
        assert await face.get() == "x"
        await asyncio.sleep(0)
        assert not joiner.done()
        face.task_done()
        await joiner

    run(main())


def test_array_queue_put_and_get_many():
    np = pytest.importorskip("numpy")

    async def main():
        q = flinq.ArrayQueue("i8", 4)
        face = async_queue(q)
        assert face.maxsize == 4 and not face.full()
        with pytest.raises(QueueEmpty):
            face.get_nowait()

        async def produce():
            for k in range(4):  # 3 records at a time into room for 4
                await face.put_many(np.arange(3 * k, 3 * k + 3))

        producer = asyncio.create_task(produce())
        got = []
        while len(got) < 12:
            got.extend(int(x) for x in await face.get_many(2))
        await producer
        return got

    assert run(main()) == list(range(12))


class Subclassed(flinq.Queue):
    """A subclass may override the storage hooks, which tell no watcher."""


def test_subclass_threads_and_coroutines_exactly_once():
    q = Subclassed(8)
    n = 500

    async def main():
        face = async_queue(q)
        producer = threading.Thread(target=lambda: [q.put(i) for i in range(n)])
        producer.start()
        got = [await face.get() for _ in range(n)]
        producer.join()
        return got, face.stats()

    got, stats = run(main())
    assert Counter(got) == Counter(range(n)) and q.watcher is None
    assert "polls" in stats
