"""Delayed calls for in-memory queues: a nack(delay=...) brings its message back later.

One daemon thread per process runs them in due order. It starts on the first
call, and again in a child after fork() if calls were pending there
(after_fork_in_child, which the queue module's at-fork handler calls). A call
that raises is logged, never lost silently. Once the interpreter is shutting
down no call is accepted (RuntimeError): no thread can start then.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["after_fork_in_child", "call_later"]

_log = logging.getLogger("flinq")

# Reentrant: a finalizer run by the garbage collector inside call_later (an
# allocation can trigger it) may nack with a delay too.
_lock = threading.Condition(threading.RLock())
_due: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
_order = itertools.count()  # FIFO among calls due at the same moment
_thread: threading.Thread | None = None
# The longest single wait: the platform's limit for a lock timeout is far
# longer, but waking now and then costs nothing and never overflows.
_MAX_WAIT = 3600.0


def call_later(delay: float, fn: Callable[..., Any], *args: Any) -> None:
    """Run fn(*args) on the timer thread after delay seconds. RuntimeError
    if no thread can run it (the interpreter is shutting down, or the
    thread cannot start): then nothing is scheduled."""
    global _thread
    if sys.is_finalizing():
        raise RuntimeError("the interpreter is shutting down: no delayed call can run")
    entry = (time.monotonic() + delay, next(_order), fn, args)
    with _lock:
        heapq.heappush(_due, entry)
        if _thread is None or not _thread.is_alive():
            try:
                _start()
            except BaseException:
                _due.remove(entry)
                heapq.heapify(_due)
                raise
        _lock.notify()


def _start() -> None:
    global _thread
    thread = threading.Thread(target=_run, name="flinq-timers", daemon=True)
    thread.start()
    _thread = thread


def _run() -> None:
    while True:
        with _lock:
            while not _due or _due[0][0] > time.monotonic():
                wait = _MAX_WAIT if not _due else _due[0][0] - time.monotonic()
                _lock.wait(min(wait, _MAX_WAIT))
            _, _, fn, args = heapq.heappop(_due)
        try:
            fn(*args)
        except Exception:
            _log.exception("flinq: a delayed call failed: %r", fn)


def after_fork_in_child() -> None:
    """In the child of fork(): make the timer work again, starting its thread
    at once if calls are pending. The queue module calls this from its
    at-fork handler after it has made the queues safe to wake, because a
    pending call may put an item back as soon as the thread runs."""
    # The parent's timer thread may have held the lock at the fork, and it
    # does not exist here: a fresh lock, and a thread for what is pending.
    global _lock, _thread
    _lock = threading.Condition(threading.RLock())
    _thread = None
    if _due:
        _start()
