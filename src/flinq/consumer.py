"""Consumers: worker threads that run a handler for every message of a queue.

q.consume(handler, ...) works on every flinq queue, in-memory or durable,
through two methods each queue kind provides:
  reserve(timeout) -> message          for messages() iteration;
  _serve(handler, prefetch, timeout, on_error, stop) -> int
      take up to prefetch messages and run the handler on each, acking on
      return and calling on_error on an exception (in-memory queues do this
      in C: it is the hot loop; durable queues use serve_batch below).
The Consumer holds the policy both share: retries with backoff, dead
letters after max_attempts, logging, stopping without losing a message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from queue import Empty
from types import TracebackType
from typing import Any

from flinq import _core
from flinq._compat import ShutDown

__all__ = ["Consumer", "iter_messages", "serve_batch"]

_log = logging.getLogger("flinq.consumer")

#: max_attempts when neither consume() nor a durable queue sets one.
DEFAULT_MAX_ATTEMPTS = 5
#: Longest wait between retries that retry_backoff's doubling reaches.
MAX_BACKOFF = 60.0
# How long an idle worker waits for a message before it checks for stop().
_POLL_SECONDS = 0.05


def iter_messages(queue: Any, timeout: float | None) -> Iterator[Any]:
    """Reserved messages of queue until none comes within timeout seconds
    (None: wait forever) or the queue is shut down and empty."""
    while True:
        try:
            message = queue.reserve(timeout)
        except (Empty, ShutDown):
            return
        yield message


def serve_batch(
    messages: Sequence[Any],
    handler: Callable[[Any], object],
    on_error: Callable[[Any, BaseException], None],
    stop: Any,
    ack_all: Callable[[list[Any]], None],
    give_back: Callable[[Any], None],
) -> int:
    """Run handler on each of messages (reserved, unsettled): those it
    returns from are acked together by ack_all(list) at the end (unless the
    handler settled them); on an exception on_error settles the message
    (re-raised unless it is an Exception). Once stop.stopping is set, the
    messages not yet started go to give_back. Returns how many were handled.
    The in-memory queues' _serve is this loop in C."""
    handled = 0
    done = []
    try:
        for message in messages:
            handled += 1
            try:
                handler(message)
            except BaseException as error:
                try:
                    on_error(message, error)
                finally:
                    if not message.settled:  # on_error failed: never strand it
                        message.nack()
                if not isinstance(error, Exception):
                    raise
            else:
                if not message.settled:
                    done.append(message)
            if stop.stopping:
                break
    finally:
        ack_all([message for message in done if not message.settled])
        for message in messages[handled:]:
            give_back(message)
    return handled


class Consumer:
    """Worker threads running handler(message) for each message of a queue.

    Made by q.consume(handler, ...). Each of `workers` threads reserves up
    to `prefetch` messages at a time and calls handler(message) on each: a
    return acks it (unless the handler settled it itself); an exception is
    logged (logger "flinq.consumer") and the message is retried after a
    backoff, or dead-lettered once it has had max_attempts deliveries.

    max_attempts: deliveries before a message is dead-lettered. None: the
      durable queue's own max_attempts if it has one, else 5.
    retry_backoff: seconds before the first retry, doubled for each further
      one up to 60 s; or a callable taking the attempts so far and returning
      the delay.
    dead_letter: where dead letters go. In-memory queues: a queue (anything
      with put()); None makes a flinq.Queue, available as
      consumer.dead_letter. Durable queues: a queue name in the same store;
      None uses the queue's own dead_letter, else "<name>.dead".

    stop(drain=...) ends it; as a context manager, leaving the block stops
    it (draining unless the block raised).
    """

    def __init__(
        self,
        queue: Any,
        handler: Callable[[Any], object],
        *,
        workers: int = 1,
        prefetch: int = 32,
        max_attempts: int | None = None,
        retry_backoff: float | Callable[[int], float] = 0.1,
        dead_letter: Any = None,
    ) -> None:
        if not callable(handler):
            raise TypeError("handler must be callable")
        for name, value in (("workers", workers), ("prefetch", prefetch)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1")
        if max_attempts is not None:
            if not isinstance(max_attempts, int) or isinstance(max_attempts, bool):
                raise TypeError("max_attempts must be an int or None")
            if max_attempts < 1:
                raise ValueError("max_attempts must be at least 1")
        if not callable(retry_backoff):
            if not isinstance(retry_backoff, (int, float)) or isinstance(retry_backoff, bool):
                raise TypeError("retry_backoff must be a number of seconds or a callable")
            if not retry_backoff >= 0:
                raise ValueError("retry_backoff must be a non-negative number of seconds")
        durable = isinstance(queue, _durable_queue_type())
        if max_attempts is None:
            own = getattr(queue, "max_attempts", None) if durable else None
            max_attempts = own if own is not None else DEFAULT_MAX_ATTEMPTS
        if durable:
            if dead_letter is None:
                dead_letter = queue.dead_letter or f"{queue.name}.dead"
            if not isinstance(dead_letter, str):
                raise TypeError("a durable queue's dead_letter is a queue name (str)")
        elif dead_letter is None:
            dead_letter = _core.Queue()
        elif not callable(getattr(dead_letter, "put", None)):
            raise TypeError("dead_letter must be a queue (an object with put())")

        self.queue = queue
        self.handler = handler
        self.workers = workers
        self.prefetch = prefetch
        self.max_attempts: int = max_attempts
        self.retry_backoff = retry_backoff
        self.dead_letter = dead_letter
        self._stop = _core._StopFlag()
        self._draining = False
        self._handled = [0] * workers
        self._lock = threading.Lock()  # the failure counters below
        self._failed = 0
        self._retried = 0
        self._dead_lettered = 0
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"flinq-consumer-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # ---- the workers -----------------------------------------------------------

    def _work(self, index: int) -> None:
        serve = self.queue._serve
        stop = self._stop
        handler = self.handler
        prefetch = self.prefetch
        on_error = self._on_error
        try:
            while not stop.stopping:
                draining = self._draining
                handled = serve(handler, prefetch, 0 if draining else _POLL_SECONDS, on_error, stop)
                self._handled[index] += handled
                if draining and handled == 0:
                    return  # nothing left: drained
        except ShutDown:
            return
        except BaseException:
            _log.exception("flinq consumer worker %d stopped by an error", index)

    def _backoff(self, attempts: int) -> float:
        if callable(self.retry_backoff):
            return float(self.retry_backoff(attempts))
        return float(min(self.retry_backoff * 2.0 ** (attempts - 1), MAX_BACKOFF))

    def _on_error(self, message: Any, error: BaseException) -> None:
        """A handler raised: retry the message later, or dead-letter it."""
        attempts = message.attempts
        if attempts >= self.max_attempts:
            _log.error(
                "handler failed on message %s (attempt %d of %d); dead-lettered",
                message.id,
                attempts,
                self.max_attempts,
                exc_info=error,
            )
            message._dead_letter(self.dead_letter)
            with self._lock:
                self._failed += 1
                self._dead_lettered += 1
            return
        delay = self._backoff(attempts)
        _log.warning(
            "handler failed on message %s (attempt %d of %d); retrying in %.3g s",
            message.id,
            attempts,
            self.max_attempts,
            delay,
            exc_info=error,
        )
        message.nack(True, delay)
        with self._lock:
            self._failed += 1
            self._retried += 1

    # ---- control -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while any worker thread is alive."""
        return any(thread.is_alive() for thread in self._threads)

    def stats(self) -> dict[str, int]:
        """Messages handled (the handler returned), failed (it raised),
        retried and dead-lettered by this consumer."""
        with self._lock:
            return {
                "workers": sum(thread.is_alive() for thread in self._threads),
                "handled": sum(self._handled),
                "failed": self._failed,
                "retried": self._retried,
                "dead_lettered": self._dead_lettered,
            }

    def stop(self, drain: bool = True, timeout: float | None = None) -> bool:
        """Stop the workers. drain=True: they first handle every message
        still ready in the queue; drain=False: each finishes the message in
        hand and gives back the ones it had prefetched. Either way no
        message is lost: each is handled or back in the queue. Returns True
        once every worker has ended, False if timeout (seconds) ran out
        first (they still end after their current message)."""
        if drain:
            self._draining = True
        else:
            self._stop.stopping = True
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread is threading.current_thread():
                continue  # stop() from a handler: it ends when the handler returns
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if not self.running:
            self._stop.stopping = True
        me = threading.current_thread()
        return not any(thread.is_alive() for thread in self._threads if thread is not me)

    def __enter__(self) -> Consumer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop(drain=kind is None)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<flinq.Consumer {state} workers={self.workers} queue={self.queue!r}>"


def _durable_queue_type() -> type:
    from flinq.durable import DurableQueue

    return DurableQueue
