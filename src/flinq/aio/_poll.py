"""How a coroutine waits on a queue that cannot tell a watcher: it tries
again after a sleep that doubles up to a cap. Nothing is ever taken out of
the queue to wait, so a cancelled waiter leaves every item where it was, and
no thread is spent per waiter; the price is latency (up to the cap) and a
few wake-ups a second per idle waiter."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from flinq.aio._errors import NOT_YET

__all__ = ["FIRST_DELAY", "MAX_DELAY", "Poller"]

FIRST_DELAY = 0.0005  # seconds; the first retry is after one loop iteration
MAX_DELAY = 0.01


class Poller:
    """Retries for the waiters of one queue, on any number of loops."""

    __slots__ = ("_lock", "_polls")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._polls = 0

    async def wait_until(
        self, event: int, attempt: Callable[..., Any], *args: Any, batch: bool = False
    ) -> Any:
        """attempt(*args)'s result, retried until it no longer raises
        queue.Empty or queue.Full (event and batch are not used: nothing
        tells this queue's changes)."""
        delay = 0.0
        while True:
            try:
                return attempt(*args)
            except NOT_YET:
                pass
            with self._lock:
                self._polls += 1
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, FIRST_DELAY), MAX_DELAY)

    def stats(self) -> dict[str, int]:
        """Retries so far (each after a sleep)."""
        with self._lock:
            return {"polls": self._polls}
