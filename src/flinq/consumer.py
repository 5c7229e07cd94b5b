"""Consumers: worker threads that run a handler for every message of a queue.

q.consume(handler, ...) works on every flinq queue:
  in-memory queues (flinq.Queue and friends) serve a batch in C
      (flinq._core.serve(queue, handler, prefetch, timeout, settle_failed,
      state): their hot loop);
  durable queues of any backend, through flinq.protocols.DurableQueue only:
      reserve_many() a batch, run the handler on each message (serve_batch
      below), ack_many() the batch, msg.release() what a stop left unhandled.
The Consumer holds the policy both share: retries with backoff, dead
letters after max_attempts, logging, stopping without losing a message.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from queue import Empty
from types import TracebackType
from typing import Any

from flinq import _core
from flinq._compat import ShutDown
from flinq.errors import StoreClosedError

__all__ = ["Consumer", "iter_messages", "serve_batch"]

_log = logging.getLogger("flinq.consumer")

#: max_attempts when neither consume() nor a durable queue sets one.
DEFAULT_MAX_ATTEMPTS = 5
#: Longest wait between retries that retry_backoff's doubling reaches.
MAX_BACKOFF = 60.0
# The queues that serve consumers in C; any other is a durable queue
# (flinq.protocols.DurableQueue).
_IN_MEMORY = (_core.Queue, _core.LifoQueue, _core.PriorityQueue, _core.SimpleQueue)
# How long an idle worker waits for a message before it checks for stop().
_POLL_SECONDS = 0.05
# The longest retry delay a retry_backoff callable can ask for (nack's limit).
_MAX_DELAY = 1e9


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
    settle_failed: Callable[[Any, BaseException], None],
    state: Any,
    give_back: Callable[[Any], None],
    ack_all: Callable[[list[Any]], object] | None = None,
) -> int:
    """Run handler on each of messages (reserved, unsettled): a return acks
    the message (unless the handler settled it), at once, or with ack_all
    given, together with the batch's others at the end; on an exception
    settle_failed settles it (the handler's exception is re-raised unless it
    is an Exception; one from settle_failed is logged, and the message nacked).
    Once state.stopping is set, the messages not yet started go to
    give_back. Counts handler calls in state.calls; returns how many
    messages were taken. flinq._core.serve is this loop in C, for the
    in-memory queues."""
    taken = 0
    done: list[Any] = []
    try:
        for message in messages:
            taken += 1
            state.calls += 1
            try:
                handler(message)
            except BaseException as error:
                try:
                    settle_failed(message, error)
                except Exception:
                    _log.exception("flinq: handling a failed message went wrong")
                finally:
                    if not message.settled:  # settle_failed failed: never strand it
                        message.nack()
                if not isinstance(error, Exception):
                    raise
            else:
                if ack_all is not None:
                    done.append(message)
                elif not message.settled:
                    message.ack()
            if state.stopping:
                break
    finally:
        if done:
            ack_all(done)  # type: ignore[misc]  # done is only filled when ack_all is given
        for message in messages[taken:]:
            give_back(message)
    return taken


class Consumer:
    """Worker threads running handler(message) for each message of a queue.

    Made by q.consume(handler, ...). Each of `workers` threads reserves up
    to `prefetch` messages at a time and calls handler(message) on each: a
    return acks it (unless the handler settled it itself); an exception is
    reported and the message is retried after a backoff, or dead-lettered
    once it has had max_attempts deliveries, with the error's type and text
    (in-memory: the message's error_type and error attributes; durable: its
    flinq.protocols.ERROR_TYPE_HEADER and ERROR_HEADER headers).

    Reporting: logger "flinq.consumer" gets one WARNING line per failed
    attempt (message id, attempt, the error's type and text) and, when the
    message is dead-lettered, one ERROR line with the traceback. With
    on_error(message, error) given, that is called for each failed attempt
    instead (before the retry or dead letter; message.attempts against
    consumer.max_attempts tells which); an exception from it is logged.

    max_attempts: deliveries before a message is dead-lettered. None: the
      durable queue's own max_attempts if it has one, else 5.
    retry_backoff: seconds before the first retry, doubled for each further
      one up to 60 s; or a callable taking the attempts so far and returning
      the delay.
    dead_letter: where dead letters go. In-memory queues: a queue (anything
      with put()); None makes a flinq.Queue, available as
      consumer.dead_letter. Durable queues: a queue name in the same store;
      None uses the queue's own dead_letter, else "<name>.dead".

    prefetch: messages a durable queue's worker reserves at a time (each
      in flight, its visibility timeout running, from then on). In-memory
      workers take each message only when they are free for it.

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
        on_error: Callable[[Any, BaseException], object] | None = None,
    ) -> None:
        if not callable(handler):
            raise TypeError("handler must be callable")
        if on_error is not None and not callable(on_error):
            raise TypeError("on_error must be callable or None")
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
        durable = not isinstance(queue, _IN_MEMORY)
        own = queue.max_attempts if durable else None
        if max_attempts is None:
            max_attempts = own if own is not None else DEFAULT_MAX_ATTEMPTS
        elif own is not None:
            # The queue retires a message past its own limit (to its own dead
            # letter queue, or nowhere): dead-letter here first.
            max_attempts = min(max_attempts, own)
        if durable:
            if dead_letter is None:
                dead_letter = queue.dead_letter or f"{queue.name}.dead"
            if not isinstance(dead_letter, str):
                raise TypeError("a durable queue's dead_letter is a queue name (str)")
            if dead_letter == queue.name:
                raise ValueError("a queue cannot be its own dead-letter queue")
        elif dead_letter is None:
            dead_letter = _core.Queue()
        elif not callable(getattr(dead_letter, "put", None)):
            raise TypeError("dead_letter must be a queue (an object with put())")
        elif dead_letter is queue:
            raise ValueError("a queue cannot be its own dead-letter queue")

        self.queue = queue
        self.handler = handler
        self.workers = workers
        self.prefetch = prefetch
        self.max_attempts: int = max_attempts
        self.retry_backoff = retry_backoff
        self.dead_letter = dead_letter
        self.on_error = on_error
        self._states = [_core.WorkerState() for _ in range(workers)]
        self._draining = False
        self._lock = threading.Lock()  # the failure counters below
        self._failed = 0
        self._retried = 0
        self._dead_lettered = 0
        self._serve = functools.partial(_core.serve, queue) if not durable else self._serve_durable
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"flinq-consumer-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # ---- the workers -----------------------------------------------------------

    def _serve_durable(
        self,
        handler: Callable[[Any], object],
        prefetch: int,
        timeout: float | None,
        settle_failed: Callable[[Any, BaseException], None],
        state: Any,
    ) -> int:
        """One step of a durable queue's worker: flinq._core.serve's job,
        through the durable queue protocol."""
        queue = self.queue
        messages = queue.reserve_many(prefetch, timeout)
        # Acks of a batch go together, unless a visibility timeout could
        # redeliver a message whose ack waits for the rest of its batch.
        ack_all = None if queue.visibility_timeout else queue.ack_many
        return serve_batch(messages, handler, settle_failed, state, _release, ack_all)

    def _dead_letter_one(self, message: Any, error: BaseException) -> None:
        # A durable message takes a queue name (or None), a LocalMessage a
        # queue: both as dead_letter's first argument.
        message.dead_letter(self.dead_letter, error=error)

    def _work(self, index: int) -> None:
        serve = self._serve
        state = self._states[index]
        handler = self.handler
        prefetch = self.prefetch
        settle_failed = self._settle_failed
        try:
            while not state.stopping:
                draining = self._draining
                taken = serve(
                    handler, prefetch, 0 if draining else _POLL_SECONDS, settle_failed, state
                )
                if draining and taken == 0:
                    return  # nothing left: drained
        except ShutDown:
            return  # the queue was shut down and is empty
        except StoreClosedError:
            _log.warning("flinq consumer worker %d stopped: the store was closed", index)
        except BaseException:
            _log.exception("flinq consumer worker %d stopped by an error", index)

    def _backoff(self, attempts: int) -> float:
        if callable(self.retry_backoff):
            return float(self.retry_backoff(attempts))
        return float(min(self.retry_backoff * 2.0 ** min(attempts - 1, 64), MAX_BACKOFF))

    def _report(self, message: Any, error: BaseException, outcome: str) -> None:
        """Tell of one failed attempt: the on_error hook, else one log line
        (with the traceback only when the message is dead-lettered)."""
        if self.on_error is not None:
            try:
                self.on_error(message, error)
            except Exception:
                _log.exception("on_error failed for message %s", message.id)
            return
        final = outcome == "dead-lettered"
        _log.log(
            logging.ERROR if final else logging.WARNING,
            "handler failed on message %s (attempt %d of %d): %s: %s; %s",
            message.id,
            message.attempts,
            self.max_attempts,
            type(error).__name__,
            error,
            outcome,
            exc_info=error if final else None,
        )

    def _settle_failed(self, message: Any, error: BaseException) -> None:
        """A handler raised: retry the message later, or dead-letter it."""
        attempts = message.attempts
        with self._lock:
            self._failed += 1
        if attempts >= self.max_attempts:
            try:
                self._dead_letter_one(message, error)
            except Exception as failure:
                # The message stays ours: retry it rather than lose it.
                _log.error(
                    "message %s could not be dead-lettered (%s: %s); retrying it",
                    message.id,
                    type(failure).__name__,
                    failure,
                )
            else:
                self._report(message, error, "dead-lettered")
                with self._lock:
                    self._dead_lettered += 1
                return
        try:
            delay = self._backoff(attempts)
        except Exception:
            _log.exception("retry_backoff failed; retrying message %s at once", message.id)
            delay = 0.0
        delay = min(max(0.0, delay), _MAX_DELAY) if delay == delay else 0.0
        self._report(message, error, f"retrying in {delay:.3g} s")
        message.nack(True, delay)
        with self._lock:
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
            calls = sum(state.calls for state in self._states)
            return {
                "workers": sum(thread.is_alive() for thread in self._threads),
                "handled": calls - self._failed,
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
        first (they still end after their current message). Called from a
        handler, it only tells the workers and returns False: waiting there
        for them could wait for itself."""
        if drain:
            self._draining = True
        else:
            for state in self._states:
                state.stopping = True
        me = threading.current_thread()
        if any(thread is me for thread in self._threads):
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if not self.running:
            for state in self._states:
                state.stopping = True
            return True
        return False

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


def _release(message: Any) -> None:
    message.release()
