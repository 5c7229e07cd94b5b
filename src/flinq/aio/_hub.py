"""How a coroutine waits on a queue that tells a watcher (set_watcher).

One WatchHub per queue owns the queue's watcher while, and only while, some
coroutine waits on it: a synchronous put with no async waiter pays nothing.
The hub keeps one LoopSide per event loop with waiters. An event from the
queue (items, room, done) pokes every side waiting for it; a side in another
thread gets at most one call_soon_threadsafe until it has run, however many
events come in the meantime; a side in the poking thread runs at once. A
run outside any task (the cross-thread case) resumes the woken tasks within
its own handle (see WakeUp), one loop iteration sooner than a Future would.

Threads: the watcher runs in whichever thread changed the queue, with the
GIL held. It only reads an immutable tuple of sides and a side's scheduled
flag, and it never takes a lock, so a queue operation never blocks in it.
Everything else of a side happens in its loop's thread. The hub's lock
guards the tuples and the watcher's installation, and no queue operation
that could call the watcher runs under it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from flinq._core import WATCH_EVENTS
from flinq.aio._errors import NOT_YET
from flinq.aio._wakeup import WakeUp

__all__ = ["DONE", "ITEMS", "ROOM", "LoopSide", "WatchHub"]

ITEMS: int = WATCH_EVENTS["items"]
ROOM: int = WATCH_EVENTS["room"]
DONE: int = WATCH_EVENTS["done"]
# Events index small per-side tables below.
if sorted((ITEMS, ROOM, DONE)) != [0, 1, 2]:
    raise ImportError("flinq.aio expects the watch events to be 0, 1 and 2")

_get_ident = threading.get_ident


class LoopSide:
    """The waiters of one event loop on one queue, by event."""

    __slots__ = (
        "batch_putters",
        "call_threadsafe",
        "hub",
        "inline_wakeups",
        "loop",
        "muted",
        "run_remote_",
        "scheduled",
        "thread",
        "waiters",
        "waits",
        "wakeups",
        "wanted",
    )

    def __init__(self, hub: WatchHub, loop: asyncio.AbstractEventLoop) -> None:
        self.hub = hub
        self.loop = loop
        self.thread = _get_ident()
        self.waiters: list[deque[WakeUp]] = [deque(), deque(), deque()]
        self.wanted = [False, False, False]
        self.batch_putters = 0  # waiting for more than one free slot
        self.scheduled = False  # a cross-thread run is on its way
        # Every waiter was woken and none has come back yet: events need no
        # run. Set only by a run, cleared by enter() before the new waiter
        # looks at the queue, both in this loop's thread.
        self.muted = False
        self.wakeups = 0  # cross-thread runs (each one call_soon_threadsafe)
        self.inline_wakeups = 0  # events handled in this loop's own thread
        self.waits = 0  # times a coroutine suspended
        # Bound once: the watcher uses them on every cross-thread wake-up.
        self.call_threadsafe = loop.call_soon_threadsafe
        self.run_remote_ = self.run_remote

    # ---- this loop's thread -------------------------------------------------------

    def run_remote(self) -> None:
        self.wakeups += 1
        self.run(True)

    def run(self, now: bool) -> None:
        """Wake as many waiters as the queue's state may satisfy. now: this
        is a handle of the loop's own (no task is running, and no queue
        operation is under way), so woken tasks step right here; otherwise
        (inside the watcher, inside a queue operation) next iteration."""
        # Cleared before looking, so that an event after the look schedules
        # another run instead of being absorbed by this one.
        self.scheduled = False
        hub = self.hub
        queue = hub.queue
        getters, putters, joiners = self.waiters[ITEMS], self.waiters[ROOM], self.waiters[DONE]
        if getters:
            n = queue.qsize()
            if n == 0 and hub.is_shutdown():
                n = len(getters)
            _wake(getters, n, now)
        if putters:
            if hub.is_shutdown() or self.batch_putters:
                n = len(putters)
            else:
                maxsize = hub.maxsize()
                n = maxsize - queue.qsize() if maxsize > 0 else len(putters)
            _wake(putters, n, now)
        if joiners and hub.unfinished() == 0:
            _wake(joiners, len(joiners), now)
        self.muted = not (getters or putters or joiners)

    def enter(self, event: int) -> WakeUp:
        """A new waiter for event: what it awaits until it should look again."""
        future = WakeUp(self.loop)
        self.muted = False
        waiting = self.waiters[event]
        waiting.append(future)
        if not self.wanted[event]:
            try:
                self.hub.want(self, event)
            except BaseException:
                waiting.remove(future)
                raise
        return future

    def leave(self, event: int, future: WakeUp) -> None:
        """The waiter of future is gone."""
        waiting = self.waiters[event]
        if not future.done() or future.cancelled():
            with suppress(ValueError):  # unless a run took it out already
                waiting.remove(future)
        if not waiting and self.wanted[event]:
            self.hub.unwant(self, event)

    def pass_on(self) -> None:
        """A woken waiter leaves without acting: let the others look."""
        self.loop.call_soon(self.run, True)


def _wake(waiting: deque[WakeUp], n: int, now: bool) -> None:
    while n > 0 and waiting:
        future = waiting.popleft()
        if not future.done():  # a cancelled waiter's is done
            n -= 1
            if now:
                future.resume()
            else:
                future.resume_soon()


class WatchHub:
    """The one watcher of one queue, shared by every loop that waits on it."""

    __slots__ = (
        "_callback",
        "_installed",
        "_lock",
        "_retired",
        "_sides",
        "_wanting",
        "is_shutdown",
        "maxsize",
        "queue",
        "unfinished",
    )

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self._lock = threading.Lock()
        self._sides: dict[asyncio.AbstractEventLoop, LoopSide] = {}
        self._wanting: list[tuple[LoopSide, ...]] = [(), (), ()]
        # Held here too, so that the queue's reference is never the last one
        # while the watcher runs (it may uninstall itself).
        self._callback: Callable[[int], None] = self._on_event
        self._installed = False
        self._retired = {"wakeups": 0, "inline_wakeups": 0, "waits": 0}
        kind = type(queue)
        self.is_shutdown: Callable[[], bool] = (
            (lambda: bool(queue.is_shutdown)) if hasattr(kind, "is_shutdown") else (lambda: False)
        )
        self.maxsize: Callable[[], int] = (
            (lambda: int(queue.maxsize)) if hasattr(kind, "maxsize") else (lambda: 0)
        )
        self.unfinished: Callable[[], int] = (
            (lambda: int(queue.unfinished_tasks))
            if hasattr(kind, "unfinished_tasks")
            else (lambda: 0)
        )

    def _on_event(self, event: int) -> None:
        """The queue's watcher: make each side waiting for event look again soon."""
        for side in self._wanting[event]:
            if side.scheduled or side.muted:
                continue
            if _get_ident() == side.thread:
                side.inline_wakeups += 1
                side.run(False)
                continue
            side.scheduled = True
            # Not contextlib.suppress: this runs inside a queue operation,
            # where a context manager object per wake-up is measurable.
            try:  # noqa: SIM105
                side.call_threadsafe(side.run_remote_)
            except RuntimeError:
                pass  # the loop is closed: its waiters can never resume

    def side(self, loop: asyncio.AbstractEventLoop) -> LoopSide:
        """The side of loop, the running loop of the calling thread. A side
        lives as long as its loop is open, so that a coroutine waiting again
        and again reuses it."""
        side = self._sides.get(loop)
        if side is None:
            with self._lock:
                self._prune_closed()
                side = self._sides.setdefault(loop, LoopSide(self, loop))
        else:
            side.thread = _get_ident()  # a loop may run in another thread later
        return side

    def _prune_closed(self) -> None:
        """Forget the sides of closed loops (their waiters can never resume)."""
        for loop, side in list(self._sides.items()):
            if loop.is_closed():
                del self._sides[loop]
                for event in (ITEMS, ROOM, DONE):
                    if side.wanted[event]:
                        self._drop(side, event)
                retired = self._retired
                retired["wakeups"] += side.wakeups
                retired["inline_wakeups"] += side.inline_wakeups
                retired["waits"] += side.waits

    def want(self, side: LoopSide, event: int) -> None:
        """side has waiters for event: tell it of every such event from now on."""
        with self._lock:
            if not self._installed:
                current = self.queue.watcher
                if current is not None and current is not self._callback:
                    raise RuntimeError(
                        f"{type(self.queue).__name__} already has a watcher ({current!r}); "
                        "its async face needs to own it"
                    )
                self.queue.set_watcher(self._callback)
                self._installed = True
            self._wanting[event] = (*self._wanting[event], side)
            side.wanted[event] = True

    def unwant(self, side: LoopSide, event: int) -> None:
        """side has no waiter for event any more."""
        with self._lock:
            self._drop(side, event)

    def _drop(self, side: LoopSide, event: int) -> None:
        # Under the lock.
        self._wanting[event] = tuple(s for s in self._wanting[event] if s is not side)
        side.wanted[event] = False
        if self._installed and not any(self._wanting):
            self.queue.set_watcher(None)
            self._installed = False

    async def wait_until(
        self, event: int, attempt: Callable[..., Any], *args: Any, batch: bool = False
    ) -> Any:
        """attempt(*args)'s result, retried after each event until it no
        longer raises queue.Empty or queue.Full. batch: attempt needs more
        than one free slot (so every room event wakes every putter)."""
        side = self.side(asyncio.get_running_loop())
        future = side.enter(event)
        side.batch_putters += batch
        try:
            while True:
                try:
                    return attempt(*args)
                except NOT_YET:
                    pass
                if future.done():  # woken, and beaten to it: wait again
                    future = side.enter(event)
                side.waits += 1
                await future
        except BaseException:
            if future.done() and not future.cancelled():
                side.pass_on()  # woken for something this waiter will not take
            raise
        finally:
            side.batch_putters -= batch
            side.leave(event, future)

    def stats(self) -> dict[str, int]:
        """Wake-ups so far: cross-thread (one call_soon_threadsafe each),
        inline (an event in the waiting loop's own thread), and waits."""
        with self._lock:
            totals = dict(self._retired)
            for side in self._sides.values():
                totals["wakeups"] += side.wakeups
                totals["inline_wakeups"] += side.inline_wakeups
                totals["waits"] += side.waits
            totals["loops_waiting"] = sum(any(side.wanted) for side in self._sides.values())
            totals["watching"] = int(self._installed)
        return totals
