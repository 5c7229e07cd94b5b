"""Delayed calls for in-memory queues: a nack(delay=...) brings its message back later.

One daemon thread per process runs them in due order. It starts on the first
call and again after a fork (the child has no threads but the caller's).
A call that raises is logged, never lost silently.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["call_later"]

_log = logging.getLogger("flinq")

_lock = threading.Condition(threading.Lock())
_due: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
_order = itertools.count()  # FIFO among calls due at the same moment
_thread: threading.Thread | None = None


def call_later(delay: float, fn: Callable[..., Any], *args: Any) -> None:
    """Run fn(*args) on the timer thread after delay seconds."""
    global _thread
    with _lock:
        heapq.heappush(_due, (time.monotonic() + delay, next(_order), fn, args))
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="flinq-timers", daemon=True)
            _thread.start()
        _lock.notify()


def _run() -> None:
    while True:
        with _lock:
            while not _due or _due[0][0] > time.monotonic():
                _lock.wait(None if not _due else _due[0][0] - time.monotonic())
            _, _, fn, args = heapq.heappop(_due)
        try:
            fn(*args)
        except Exception:
            _log.exception("flinq: a delayed call failed: %r", fn)


def _after_fork_in_child() -> None:
    # The parent's timer thread may have held the lock at the fork.
    global _lock, _thread
    _lock = threading.Condition(threading.Lock())
    _thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
