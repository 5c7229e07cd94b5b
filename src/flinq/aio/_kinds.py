"""Which queue kinds the async face knows how to wait on, and how.

A queue kind plugs into ``async_queue`` by offering the non-blocking half of
flinq's queue API (see docs/architecture.md, "The async face"). How a
coroutine waits then depends on one question: does the kind tell a watcher
(``set_watcher``) of every change that can end a wait? Kinds registered with
``watch_kind`` do, and their waiters sleep until told; every other kind is
polled.
"""

from __future__ import annotations

from typing import Any, Protocol

from flinq import _core
from flinq.aio._hub import WatchHub
from flinq.aio._poll import Poller

__all__ = ["Waiter", "waiter_for", "watch_kind"]


class Waiter(Protocol):
    async def wait_until(self, event: int, attempt: Any, *args: Any, batch: bool = False) -> Any:
        """attempt(*args)'s result, retried until it no longer raises
        queue.Empty or queue.Full."""

    def stats(self) -> dict[str, int]:
        """Counts of how waiters waited."""


# Exact types only: a subclass that overrides queue.Queue's storage hooks
# (_put, _get, ...) changes through Python code that tells no watcher.
_watched: set[type] = {_core.Queue, _core.LifoQueue, _core.PriorityQueue, _core.SimpleQueue}


def watch_kind(kind: type) -> None:
    """Declare that queues of exactly this type call their watcher
    (set_watcher) with WATCH_EVENTS each time items arrive, room frees or
    all tasks are done, so that coroutines can sleep until told."""
    if not callable(getattr(kind, "set_watcher", None)):
        raise TypeError(f"{kind.__name__} has no set_watcher()")
    _watched.add(kind)


def waiter_for(queue: Any) -> Waiter:
    """What the coroutines waiting on queue wait with."""
    if type(queue) in _watched:
        return WatchHub(queue)
    return Poller()
