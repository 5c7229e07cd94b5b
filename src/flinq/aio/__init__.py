"""asyncio for flinq: every flinq queue, awaitable.

``flinq.aio.async_queue(q)`` is q's async face: asyncio.Queue's API over the
same queue, so that threads and coroutines (on any number of event loops)
put and get together, each item delivered exactly once::

    face = flinq.aio.async_queue(q)
    await face.put(item)          # in a coroutine
    q.put(item)                   # in a thread, at the same time
    item = await face.get()
    async for msg in face.messages():
        async with msg:           # acked on success, nacked on an exception
            ...

A cancelled get() or reserve() never loses an item. Importing this module
costs synchronous users nothing: a queue pays for its async face only while
a coroutine waits on it.
"""

from flinq.aio._errors import QueueEmpty, QueueFull, QueueShutDown
from flinq.aio._kinds import watch_kind
from flinq.aio._queue import AsyncMessage, AsyncQueue, async_queue

__all__ = [
    "AsyncMessage",
    "AsyncQueue",
    "QueueEmpty",
    "QueueFull",
    "QueueShutDown",
    "async_queue",
    "watch_kind",
]
