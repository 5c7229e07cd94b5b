"""One store's timed work: redeliveries after a visibility timeout, delayed
nacks coming due, and the status file. Run by the store's writer thread,
which sleeps until the earliest deadline here (or until woken): an idle
store with nothing scheduled never wakes."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable

__all__ = ["Scheduler"]

_log = logging.getLogger("flinq")

Call = Callable[[float], None]


class Scheduler:
    """Calls fn(now) at (or just after) a time.monotonic() deadline."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake  # tells the thread that runs calls to look again
        self._lock = threading.Lock()
        self._due: list[tuple[float, int, Call]] = []
        self._order = itertools.count()  # FIFO among calls due at the same moment

    def call_at(self, deadline: float, fn: Call) -> None:
        """Run fn(now) once deadline has passed."""
        with self._lock:
            heapq.heappush(self._due, (deadline, next(self._order), fn))
            earliest = self._due[0][0] == deadline
        if earliest:
            self._wake()

    def next_deadline(self) -> float | None:
        """The earliest deadline, or None if nothing is scheduled."""
        due = self._due
        return due[0][0] if due else None

    def run_due(self, now: float) -> int:
        """Run every call due by now, in due order, and return how many ran;
        one that raises is logged and the others still run."""
        ran = 0
        while True:
            with self._lock:
                if not self._due or self._due[0][0] > now:
                    return ran
                _, _, fn = heapq.heappop(self._due)
            ran += 1
            try:
                fn(now)
            except Exception:
                _log.exception("flinq: a scheduled call failed: %r", fn)

    def clear(self) -> None:
        """Drop every call (the store is closing)."""
        with self._lock:
            self._due.clear()
