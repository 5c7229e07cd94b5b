"""Threads and coroutines on one queue at once, on any number of event
loops: every item delivered exactly once, wake-ups coalesced per loop."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter

import pytest
from qhelpers import HANG_GUARD

import flinq
from flinq.aio import async_queue

STOP = object()


def run(coro, loop_factory=None):
    if loop_factory is None:
        return asyncio.run(asyncio.wait_for(coro, HANG_GUARD))
    loop = loop_factory()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, HANG_GUARD))
    finally:
        loop.close()


def test_a_thread_put_wakes_a_waiting_loop_once_for_many_puts():
    """The loop is blocked while a thread puts 1000 items: the first put
    schedules one call_soon_threadsafe, the other 999 share it."""

    async def main():
        q = flinq.Queue()
        face = async_queue(q)
        getter = asyncio.create_task(face.get())
        await asyncio.sleep(0)
        putter = threading.Thread(target=lambda: [q.put(i) for i in range(1000)])
        putter.start()
        putter.join()  # blocks this loop on purpose
        first = await getter
        rest = [face.get_nowait() for _ in range(999)]
        return [first, *rest], face.stats()

    items, stats = run(main())
    assert items == list(range(1000))
    assert stats["wakeups"] == 1 and stats["waits"] == 1 and stats["watching"] == 0


def test_a_coroutine_put_wakes_a_thread_blocked_in_get():
    async def main(q):
        await async_queue(q).put("for the thread")

    q = flinq.Queue()
    got = []
    getter = threading.Thread(target=lambda: got.append(q.get(timeout=HANG_GUARD)))
    getter.start()
    run(main(q))
    getter.join()
    assert got == ["for the thread"]


def test_a_coroutine_get_frees_room_for_a_thread_blocked_in_put():
    q = flinq.Queue(1)
    q.put(0)
    putter = threading.Thread(target=lambda: q.put(1, timeout=HANG_GUARD))
    putter.start()

    async def main():
        face = async_queue(q)
        return [await face.get(), await face.get()]

    assert run(main()) == [0, 1]
    putter.join()


def _consume_on_new_loop(q, out, loop_factory=None):
    async def consume():
        face = async_queue(q)
        mine = []
        while True:
            batch = await face.get_many(7) if random.random() < 0.3 else [await face.get()]
            for i, item in enumerate(batch):
                if item is STOP:
                    # One STOP per consumer: give back any other in this batch.
                    for _ in range(len(batch) - i - 1):
                        q.put(STOP)
                    out.append(mine)
                    return
                mine.append(item)

    run(consume(), loop_factory)


@pytest.mark.parametrize("maxsize", [0, 16])
def test_threads_and_loops_share_items_exactly_once(maxsize):
    """3 producer threads and 1 producing coroutine; 3 loops in 3 threads
    and 2 threads consume; every item comes out exactly once."""
    q = flinq.Queue(maxsize)
    n = 3000
    results: list[list[object]] = []
    consumers = [threading.Thread(target=_consume_on_new_loop, args=(q, results)) for _ in range(3)]

    def thread_consumer():
        mine = []
        while (item := q.get(timeout=HANG_GUARD)) is not STOP:
            mine.append(item)
        results.append(mine)

    consumers += [threading.Thread(target=thread_consumer) for _ in range(2)]
    for consumer in consumers:
        consumer.start()
    producers = [
        threading.Thread(target=lambda k=k: [q.put((k, i)) for i in range(n)]) for k in range(3)
    ]
    for producer in producers:
        producer.start()

    async def produce_async():
        face = async_queue(q)
        for i in range(n):
            await face.put((3, i))
            if i % 100 == 0:
                await asyncio.sleep(0)

    run(produce_async())
    for producer in producers:
        producer.join()
    for _ in consumers:
        q.put(STOP)
    for consumer in consumers:
        consumer.join(HANG_GUARD)
        assert not consumer.is_alive()
    counts = Counter(item for mine in results for item in mine)
    assert len(counts) == 4 * n and set(counts.values()) == {1}


def test_uvloop_waits_and_wakes_like_asyncio():
    uvloop = pytest.importorskip("uvloop")
    q = flinq.Queue(8)
    results: list[list[object]] = []
    consumer = threading.Thread(
        target=_consume_on_new_loop, args=(q, results, uvloop.new_event_loop)
    )
    consumer.start()
    for i in range(2000):
        q.put(i)
    q.put(STOP)
    consumer.join(HANG_GUARD)
    assert results == [list(range(2000))]


def test_join_in_a_loop_waits_for_task_done_in_threads():
    q = flinq.Queue()
    q.put_many(range(100))

    def worker():
        while True:
            try:
                q.get_nowait()
            except flinq.Empty:
                return
            q.task_done()

    async def main():
        face = async_queue(q)
        joiner = asyncio.create_task(face.join())
        await asyncio.sleep(0)
        workers = [threading.Thread(target=worker) for _ in range(2)]
        for w in workers:
            w.start()
        await joiner
        for w in workers:
            w.join()
        return face.qsize(), q.unfinished_tasks

    assert run(main()) == (0, 0)
