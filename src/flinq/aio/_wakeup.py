"""WakeUp: what a waiting coroutine awaits, a Future-like object (asyncio's
protocol: ``_asyncio_future_blocking``, ``get_loop``, ``add_done_callback``,
``cancel``, ``result``) that the waking side can resume at once.

An asyncio.Future resolved by a call_soon_threadsafe handle resumes its task
one loop iteration later: set_result schedules the task's wake-up with
call_soon. ``resume()`` runs the task's wake-up inside the current handle
instead, saving that iteration (a select() call and a trip through the ready
queue) on every cross-thread wake-up. It is only correct where no task is
running (asyncio steps one task at a time), which the caller checks;
elsewhere ``resume_soon()`` does what set_result does.

All of it runs in the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Generator
from typing import Any

__all__ = ["WakeUp"]

_PENDING = 0
_WOKEN = 1
_CANCELLED = 2

_Callback = Callable[["WakeUp"], object]


class WakeUp:
    """One waiter's wake-up: pending, then woken or cancelled, once."""

    __slots__ = ("_asyncio_future_blocking", "_callbacks", "_loop", "_message", "_state")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._state = _PENDING
        self._callbacks: list[tuple[_Callback, contextvars.Context | None]] = []
        self._message: Any = None
        self._asyncio_future_blocking = False

    # ---- the Future protocol asyncio's Task uses --------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def add_done_callback(
        self, callback: _Callback, *, context: contextvars.Context | None = None
    ) -> None:
        if self._state == _PENDING:
            self._callbacks.append((callback, context))
        else:
            self._loop.call_soon(callback, self, context=context)

    def remove_done_callback(self, callback: _Callback) -> int:
        kept = [entry for entry in self._callbacks if entry[0] != callback]
        removed = len(self._callbacks) - len(kept)
        self._callbacks = kept
        return removed

    def cancel(self, msg: Any = None) -> bool:
        if self._state != _PENDING:
            return False
        self._state = _CANCELLED
        self._message = msg
        self._schedule_callbacks()
        return True

    def result(self) -> None:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError(*(() if self._message is None else (self._message,)))
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("the waiter was not woken yet")

    def exception(self) -> BaseException | None:
        self.result()
        return None

    def __await__(self) -> Generator[WakeUp, None, None]:
        if self._state == _PENDING:
            self._asyncio_future_blocking = True
            yield self
        self.result()

    # ---- waking -----------------------------------------------------------------

    def resume(self) -> None:
        """Wake the waiter and run its task's step now (no task may be running)."""
        self._state = _WOKEN
        callbacks, self._callbacks = self._callbacks, []
        for callback, context in callbacks:
            if context is None:
                callback(self)
            else:
                context.run(callback, self)

    def resume_soon(self) -> None:
        """Wake the waiter; its task steps in the next loop iteration."""
        self._state = _WOKEN
        self._schedule_callbacks()

    def _schedule_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        call_soon = self._loop.call_soon
        for callback, context in callbacks:
            call_soon(callback, self, context=context)
