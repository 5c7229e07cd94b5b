"""Trials of the asyncio workloads: flinq's async face against the bridges a
user would otherwise pick (janus, culsans) and against asyncio itself.

Each trial owns one event loop, made before timing and run in the measuring
thread; producer threads start inside run(). The conventions of
flinq.bench.trials hold: 64-byte payloads built before timing, methods bound
to locals before loops, close() checks that every item arrived.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import flinq
from flinq.aio import async_queue
from flinq.bench.env import Env, missing_reason, required_module
from flinq.bench.model import Trial
from flinq.bench.trials import HANG_TIMEOUT, P50, P99, check, percentile

#: Bound of the queue between two tasks (so that both of them wait in turn).
TASK_QUEUE_BOUND: Final = 1000
#: Pause of the wake-up workload's thread between items, in seconds: long
#: enough that the coroutine is waiting again, so that every item measures
#: one wake-up of an idle loop.
WAKEUP_PAUSE: Final = 200e-6

#: A bridge: given the running loop, (put for threads, awaitable get for
#: coroutines, a closer) over one new unbounded queue.
Bridge = Callable[[], tuple[Callable[[Any], None], Callable[[], Any], Callable[[], None]]]


def _nothing() -> None:
    pass


def flinq_bridge() -> tuple[Callable[[Any], None], Callable[[], Any], Callable[[], None]]:
    """flinq.Queue: q.put in threads, async_queue(q).get in coroutines."""
    q: flinq.Queue[Any] = flinq.Queue()
    return q.put, async_queue(q).get, _nothing


def janus_bridge() -> tuple[Callable[[Any], None], Callable[[], Any], Callable[[], None]]:
    """janus.Queue: sync_q.put in threads, async_q.get in coroutines."""
    q = required_module("janus").Queue()
    return q.sync_q.put, q.async_q.get, q.close


def culsans_bridge() -> tuple[Callable[[Any], None], Callable[[], Any], Callable[[], None]]:
    """culsans.Queue: sync_q.put in threads, async_q.get in coroutines."""
    q = required_module("culsans").Queue()
    return q.sync_q.put, q.async_q.get, q.close


def asyncio_bridge() -> tuple[Callable[[Any], None], Callable[[], Any], Callable[[], None]]:
    """asyncio.Queue fed from threads the usual way:
    loop.call_soon_threadsafe(q.put_nowait, x) in threads, q.get in coroutines."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[Any] = asyncio.Queue()
    call = loop.call_soon_threadsafe
    put_nowait = q.put_nowait

    def put(item: Any) -> None:
        call(put_nowait, item)

    return put, q.get, _nothing


def janus_unavailable(env: Env) -> str | None:
    return missing_reason("janus", "janus")


def culsans_unavailable(env: Env) -> str | None:
    return missing_reason("culsans", "culsans")


class _LoopTrial(Trial):
    """A trial that runs coroutines on a loop of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()


class ThreadToLoop(_LoopTrial):
    """One producer thread puts n items; one coroutine awaits get() for each."""

    def __init__(self, n: int, env: Env, bridge: Bridge) -> None:
        super().__init__()
        self.ops = n
        self.items = env.payloads(n)
        self.put, self.get, self.closer = self.loop.run_until_complete(_in_loop(bridge))
        self.received = 0

    def _produce(self) -> None:
        put = self.put
        for item in self.items:
            put(item)

    async def _consume(self) -> None:
        get = self.get
        for _ in range(self.ops):
            await get()
        self.received = self.ops

    def run(self) -> None:
        producer = threading.Thread(target=self._produce)
        producer.start()
        self.loop.run_until_complete(self._consume())
        producer.join(HANG_TIMEOUT)

    def close(self) -> None:
        self.closer()
        super().close()
        check(self.received == self.ops, "the coroutine took every item")


async def _in_loop(bridge: Bridge) -> tuple[Any, Any, Any]:
    # janus and culsans tie a queue to the loop running when it is made.
    return bridge()


class TaskToTask(_LoopTrial):
    """One task puts n items into a queue bounded to TASK_QUEUE_BOUND; another
    task awaits get() for each. make(maxsize) -> (await put, await get)."""

    def __init__(self, n: int, env: Env, make: Callable[[int], tuple[Any, Any]]) -> None:
        super().__init__()
        self.ops = n
        self.items = env.payloads(n)
        self.put, self.get = make(TASK_QUEUE_BOUND)
        self.received = 0

    async def _produce(self) -> None:
        put = self.put
        for item in self.items:
            await put(item)

    async def _consume(self) -> None:
        get = self.get
        for _ in range(self.ops):
            await get()
        self.received = self.ops

    async def _both(self) -> None:
        await asyncio.gather(self._consume(), self._produce())

    def run(self) -> None:
        self.loop.run_until_complete(self._both())

    def close(self) -> None:
        super().close()
        check(self.received == self.ops, "the consumer task took every item")


def flinq_tasks(maxsize: int) -> tuple[Any, Any]:
    face = async_queue(flinq.Queue(maxsize))
    return face.put, face.get


def asyncio_tasks(maxsize: int) -> tuple[Any, Any]:
    q: asyncio.Queue[Any] = asyncio.Queue(maxsize)
    return q.put, q.get


class WakeUp(_LoopTrial):
    """A thread hands n items, one at a time, WAKEUP_PAUSE apart, to a
    coroutine waiting on an idle loop; latency is from just before the hand-
    over call in the thread to just after the coroutine resumes.

    mode "bridge": the thread puts into a bridge's queue and the coroutine
    awaits its get(). mode "call_soon_threadsafe": the thread calls
    loop.call_soon_threadsafe(set_result) of the future the coroutine awaits,
    the least any cross-thread wake-up of asyncio costs."""

    def __init__(self, n: int, env: Env, bridge: Bridge | None) -> None:
        super().__init__()
        self.ops = n
        self.items = env.payloads(n)
        self.sent = [0] * n
        self.received = [0] * n
        self.bridge = bridge
        self.closer: Callable[[], None] = _nothing
        # One future per item, awaited in order: the thread resolves the
        # next one whether or not the coroutine has reached it yet.
        self.futures = [self.loop.create_future() for _ in range(n)] if bridge is None else []

    def _hand_over(self, put: Callable[[Any], None]) -> None:
        sent = self.sent
        now = time.perf_counter_ns
        sleep = time.sleep
        pause = WAKEUP_PAUSE
        for index, item in enumerate(self.items):
            sleep(pause)
            sent[index] = now()
            put(item)

    def _hand_over_futures(self) -> None:
        sent = self.sent
        now = time.perf_counter_ns
        sleep = time.sleep
        pause = WAKEUP_PAUSE
        call = self.loop.call_soon_threadsafe
        resolvers = [future.set_result for future in self.futures]
        for index, (item, resolve) in enumerate(zip(self.items, resolvers, strict=True)):
            sleep(pause)
            sent[index] = now()
            call(resolve, item)

    async def _await_bridge(self, get: Callable[[], Any]) -> None:
        received = self.received
        now = time.perf_counter_ns
        for index in range(self.ops):
            await get()
            received[index] = now()

    async def _await_futures(self) -> None:
        received = self.received
        now = time.perf_counter_ns
        for index, future in enumerate(self.futures):
            await future
            received[index] = now()

    def run(self) -> None:
        loop = self.loop
        if self.bridge is not None:
            put, get, self.closer = loop.run_until_complete(_in_loop(self.bridge))
            hand_over = threading.Thread(target=self._hand_over, args=(put,))
            hand_over.start()
            loop.run_until_complete(self._await_bridge(get))
        else:
            hand_over = threading.Thread(target=self._hand_over_futures)
            hand_over.start()
            loop.run_until_complete(self._await_futures())
        hand_over.join(HANG_TIMEOUT)

    def figures(self, seconds: float) -> dict[str, float]:
        ordered = sorted(r - s for r, s in zip(self.received, self.sent, strict=True))
        return {P50.key: percentile(ordered, 0.50), P99.key: percentile(ordered, 0.99)}

    def close(self) -> None:
        self.closer()
        super().close()
        check(all(self.received), "the coroutine took every item")
