"""A cancelled await get() or reserve() never loses an item: it either
returned it or left it in the queue. Cancellations come at random moments,
while a thread keeps putting and other waiters keep waiting."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter

import pytest
from qhelpers import HANG_GUARD

import flinq
from flinq.aio import async_queue


def _producer(q, n, seed):
    rng = random.Random(seed)
    for i in range(n):
        q.put(i)
        if rng.random() < 0.05:
            time.sleep(rng.random() * 0.0005)


async def _get_under_fire(face, take, n_waiters, rounds, seed):
    """n_waiters tasks call take() again and again; each call is cancelled
    at a random moment, or times out, or completes. Returns what the
    completed calls returned."""
    rng = random.Random(seed)
    got = []
    done = asyncio.Event()

    async def waiter():
        for _ in range(rounds):
            if done.is_set():
                return
            task = asyncio.create_task(take())
            how = rng.random()
            if how < 0.2:
                # A timer fires in the same loop iteration as a wake-up, often
                # between waking the waiter and its resuming.
                asyncio.get_running_loop().call_later(rng.random() * 0.0005, task.cancel)
            elif how < 0.4:
                await asyncio.sleep(rng.random() * 0.0005 if rng.random() < 0.5 else 0)
                task.cancel()
            elif how < 0.6:
                try:
                    async with asyncio.timeout(rng.random() * 0.0005):
                        await asyncio.shield(task)
                except TimeoutError:
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                got.append(await task)

    await asyncio.gather(*(waiter() for _ in range(n_waiters)))
    done.set()
    return got


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["get", "reserve"])
def test_random_cancellations_lose_nothing(kind, seed):
    """Seeds 0 and 1: a thread puts (cross-thread wake-ups resume waiters
    at once); 2 and 3: a task in the same loop puts (a woken waiter resumes
    next iteration, so cancellations often fall in between). Odd seeds
    bound the queue."""
    n = 3000
    q = flinq.Queue(64 if seed % 2 else 0)
    face = async_queue(q)
    producer = threading.Thread(target=_producer, args=(q, n, seed))

    async def produce_in_loop():
        rng = random.Random(seed)
        for i in range(n):
            await face.put(i)
            if rng.random() < 0.05:
                await asyncio.sleep(rng.random() * 0.0005)

    if kind == "get":
        take = face.get
    else:

        async def take():
            msg = await face.reserve()
            msg.ack()
            return msg.body

    async def main():
        if seed < 2:
            producer.start()
        else:
            in_loop = asyncio.create_task(produce_in_loop())
        got = await _get_under_fire(face, take, n_waiters=8, rounds=300, seed=seed)
        # The rest, uncancelled: a lost item would hang this (and fail the
        # hang guard) rather than pass.
        while len(got) < n:
            got.append(await take())
        if seed < 2:
            producer.join()
        else:
            await in_loop
        assert face.empty()
        return got, face.stats()

    got, stats = asyncio.run(asyncio.wait_for(main(), HANG_GUARD))
    counts = Counter(got)
    assert sorted(counts) == list(range(n)) and set(counts.values()) == {1}
    assert stats["watching"] == 0 and q.watcher is None
    # reserve() + ack() settle each item; get() leaves each for task_done().
    assert q.unfinished_tasks == (0 if kind == "reserve" else n)


def test_a_woken_waiter_cancelled_before_it_runs_passes_the_item_on():
    """Two waiters; one item wakes the first, which is cancelled before it
    resumes: the second must get the item."""

    async def main():
        q = flinq.Queue()
        face = async_queue(q)
        first = asyncio.create_task(face.get())
        second = asyncio.create_task(face.get())
        await asyncio.sleep(0)
        q.put("only")  # wakes `first` (inline: this is the loop's thread)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await asyncio.wait_for(second, HANG_GUARD)

    assert asyncio.run(main()) == "only"


def test_random_cancellations_on_three_loops_lose_nothing():
    """Three loops in three threads take from one bounded queue under
    cancellation while a thread puts; then the rest is taken uncancelled."""
    n = 3000
    q = flinq.Queue(32)
    face = async_queue(q)
    producer = threading.Thread(target=_producer, args=(q, n, 99))
    results: list[list[int]] = []

    def loop_thread(seed):
        async def main():
            got = await _get_under_fire(face, face.get, n_waiters=4, rounds=150, seed=seed)
            results.append(got)

        asyncio.run(asyncio.wait_for(main(), HANG_GUARD))

    loops = [threading.Thread(target=loop_thread, args=(seed,)) for seed in range(3)]
    producer.start()
    for thread in loops:
        thread.start()
    for thread in loops:
        thread.join(HANG_GUARD)
        assert not thread.is_alive()

    async def rest():
        taken = sum(len(got) for got in results)
        return [await face.get() for _ in range(n - taken)]

    results.append(asyncio.run(asyncio.wait_for(rest(), HANG_GUARD)))
    producer.join()
    counts = Counter(item for got in results for item in got)
    assert sorted(counts) == list(range(n)) and set(counts.values()) == {1}
    assert q.empty() and q.watcher is None
