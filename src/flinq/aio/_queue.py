"""AsyncQueue: asyncio.Queue's API over a flinq queue, shared with threads.

Every operation is a non-blocking attempt on the very same queue that
threads use; a coroutine that must wait suspends on its loop until the queue
may have changed, then attempts again. Nothing is ever held outside the
queue while waiting, which is why a cancelled get() or reserve() loses
nothing: it either returned the item or never took it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator
from queue import Empty, Full
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from flinq._compat import ShutDown
from flinq.aio._errors import QueueEmpty, QueueFull, QueueShutDown
from flinq.aio._hub import DONE, ITEMS, ROOM
from flinq.aio._kinds import waiter_for

__all__ = ["AsyncMessage", "AsyncQueue", "async_queue"]

_T = TypeVar("_T")


class AsyncMessage(Generic[_T]):
    """A reserved message for coroutines: ``async with msg`` acks it, or
    nacks it on an exception. Everything else (body, id, attempts, ack(),
    nack(), ...) is the underlying message's."""

    __slots__ = ("message",)

    def __init__(self, message: Any) -> None:
        self.message = message

    @property
    def body(self) -> _T:
        """The item that was put."""
        body: _T = self.message.body
        return body

    def ack(self) -> bool:
        """Settle the message as processed; False if it was settled already."""
        return bool(self.message.ack())

    def nack(
        self, requeue: bool = True, delay: float = 0.0, *, error: BaseException | None = None
    ) -> bool:
        """Give the message back (requeue) or drop it (dead-lettered, error
        the reason); False if settled already."""
        if error is None:
            return bool(self.message.nack(requeue, delay))
        return bool(self.message.nack(requeue, delay, error=error))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.message, name)

    async def __aenter__(self) -> AsyncMessage[_T]:
        self.message.__enter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> Literal[False]:
        self.message.__exit__(kind, value, traceback)
        return False

    def __repr__(self) -> str:
        return f"<flinq.aio.AsyncMessage {self.message!r}>"


class AsyncQueue(Generic[_T]):
    """asyncio.Queue's API on a flinq queue (its sync_q), which threads may
    use at the same time. Get one with ``flinq.aio.async_queue(q)``.

    Every loop in every thread may await it; a thread's put wakes a waiting
    loop with at most one call_soon_threadsafe per loop iteration. Raises
    QueueEmpty, QueueFull and QueueShutDown, each both the stdlib queue
    module's exception and asyncio's.
    """

    __slots__ = ("__weakref__", "_get_nowait", "_put_nowait", "_queue", "_wait", "_waiter")

    def __init__(self, queue: Any) -> None:
        for name in ("get_nowait", "put_nowait", "qsize"):
            if not callable(getattr(queue, name, None)):
                raise TypeError(f"{type(queue).__name__} is not a queue: it has no {name}()")
        self._queue = queue
        self._get_nowait = queue.get_nowait
        self._put_nowait = queue.put_nowait
        self._waiter = waiter_for(queue)
        self._wait = self._waiter.wait_until

    # ---- the state -------------------------------------------------------------

    @property
    def sync_q(self) -> Any:
        """The queue itself, for threads."""
        return self._queue

    @property
    def maxsize(self) -> int:
        """The bound on queued items (an ArrayQueue's capacity); <= 0 means
        unbounded."""
        queue = self._queue
        return int(getattr(queue, "maxsize", getattr(queue, "capacity", 0)))

    def qsize(self) -> int:
        """Number of items queued now."""
        return int(self._queue.qsize())

    def empty(self) -> bool:
        """True if nothing is queued now."""
        return not self._queue.qsize()

    def full(self) -> bool:
        """True if the queue is bounded and has no room now."""
        full = getattr(self._queue, "full", None)
        return bool(full()) if full is not None else False

    # ---- without waiting -------------------------------------------------------

    def get_nowait(self) -> _T:
        """Remove and return an item now; raise QueueEmpty if there is none."""
        try:
            item: _T = self._get_nowait()
        except Empty:
            raise QueueEmpty from None
        except ShutDown:
            raise QueueShutDown from None
        return item

    def put_nowait(self, item: _T, *, priority: int | None = None) -> None:
        """Put item now; raise QueueFull if there is no room."""
        try:
            if priority is None:
                self._put_nowait(item)
            else:
                self._put_nowait(item, priority=priority)
        except Full:
            raise QueueFull from None
        except ShutDown:
            raise QueueShutDown from None

    # ---- waiting ---------------------------------------------------------------

    async def get(self) -> _T:
        """Remove and return an item, waiting until there is one."""
        try:
            item: _T = self._get_nowait()
        except Empty:
            return await self._waited(ITEMS, self._get_nowait)  # type: ignore[no-any-return]
        except ShutDown:
            raise QueueShutDown from None
        return item

    async def put(self, item: _T, *, priority: int | None = None) -> None:
        """Put item, waiting until there is room."""
        try:
            if priority is None:
                self._put_nowait(item)
            else:
                self._put_nowait(item, priority=priority)
        except Full:
            if priority is None:
                await self._waited(ROOM, self._put_nowait, item)
            else:
                await self._waited(ROOM, self._put_item_with, item, priority)
        except ShutDown:
            raise QueueShutDown from None

    def _put_item_with(self, item: _T, priority: int) -> None:
        self._put_nowait(item, priority=priority)

    async def get_many(self, max_items: int) -> list[_T]:
        """Remove and return 1 to max_items items, waiting for the first."""
        items: list[_T] = await self._waited(ITEMS, self._take_many, max_items)
        return items

    def _take_many(self, max_items: int) -> list[_T]:
        items: list[_T] = self._queue.get_many(max_items, block=False)
        return items

    async def put_many(self, items: Iterable[_T], *, priority: int | None = None) -> None:
        """Put every item, in order, all or nothing, waiting until they fit."""
        if isinstance(items, Iterator):
            items = list(items)  # each attempt needs them all again
        await self._waited(ROOM, self._put_all, items, priority, batch=True)

    def _put_all(self, items: Iterable[_T], priority: int | None) -> None:
        if priority is None:
            self._queue.put_many(items, block=False)
        else:
            self._queue.put_many(items, block=False, priority=priority)

    async def reserve(self, timeout: float | None = None) -> AsyncMessage[_T]:
        """Take the next item at least once (see the queue's reserve()),
        waiting up to timeout seconds (None: for ever); QueueEmpty then."""
        if timeout is None:
            return AsyncMessage(await self._waited(ITEMS, self._queue.reserve, 0))
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                return AsyncMessage(await self._waited(ITEMS, self._queue.reserve, 0))
        except TimeoutError:
            raise QueueEmpty from None

    async def messages(self, timeout: float | None = None) -> AsyncIterator[AsyncMessage[_T]]:
        """Reserved messages until none comes within timeout seconds (None:
        wait for ever) or the queue is shut down and empty; use each as
        ``async with msg:`` to ack it, or nack it on an exception."""
        while True:
            try:
                message: AsyncMessage[_T] = await self.reserve(timeout)
            except (Empty, ShutDown):
                return
            yield message

    async def _waited(self, event: int, attempt: Any, *args: Any, batch: bool = False) -> Any:
        try:
            return await self._wait(event, attempt, *args, batch=batch)
        except Full:
            raise QueueFull from None  # only the caller's own refusal: never waited on
        except ShutDown:
            raise QueueShutDown from None

    # ---- tasks and shutdown ----------------------------------------------------

    def task_done(self) -> None:
        """Mark one item taken by get() as processed (for join())."""
        self._queue.task_done()

    async def join(self) -> None:
        """Wait until every item put has been marked done."""
        queue = self._queue
        if hasattr(queue, "unfinished_tasks"):
            await self._wait(DONE, self._check_done)
        else:  # a kind that cannot say: its own blocking join, on a thread
            await asyncio.get_running_loop().run_in_executor(None, queue.join)

    def _check_done(self) -> None:
        if self._queue.unfinished_tasks:
            raise Empty

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down for threads and coroutines alike (see the
        queue's shutdown()); every waiter wakes up."""
        self._queue.shutdown(immediate)

    # ---- introspection ---------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """How the async face has waited: for a queue that tells a watcher,
        wakeups (cross-thread, one call_soon_threadsafe each),
        inline_wakeups, waits, loops_waiting and watching; for a polled one,
        polls."""
        return self._waiter.stats()

    def __repr__(self) -> str:
        return f"<flinq.aio.AsyncQueue of {self._queue!r}>"


_faces: weakref.WeakValueDictionary[int, AsyncQueue[Any]] = weakref.WeakValueDictionary()
_faces_lock = threading.Lock()


def async_queue(queue: Any) -> AsyncQueue[Any]:
    """The async face of queue: the same object for as long as it lives.
    (It keeps the queue alive, so an id identifies the queue.)"""
    face = _faces.get(id(queue))
    if face is not None and face._queue is queue:
        return face
    with _faces_lock:
        face = _faces.get(id(queue))
        if face is None or face._queue is not queue:
            face = AsyncQueue(queue)
            _faces[id(queue)] = face
    return face
