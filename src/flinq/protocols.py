"""The public protocols of durable queues: what a backend implements.

flinq.open(path_or_url) returns a DurableStore; its queue() returns a
DurableQueue; reserving from that gives DurableMessages. Consumer,
messages(), the ``flinq`` command line (stats, peek, purge, requeue) and the
Prometheus export use only these protocols, so a backend that implements
them gets all of that, and must pass the conformance suite
(tests/python/conformance) unchanged.

What a backend must implement
-----------------------------
1. A store class satisfying DurableStore, taking ``readonly=`` and its own
   keyword options; registered with flinq.backends.register(scheme, opener,
   open_stores) so that flinq.open("scheme://...") finds it.
2. Its queue() checks the name (flinq.settings.check_name) and every setting
   (flinq.settings.QueueSettings.check) before creating anything, stores the
   settings with the queue, and treats arguments left out (UNSET) as "keep
   what is stored". A queue already open is returned as it is
   (OpensQueues, for the store class to inherit, does all this but the
   creating).
3. A queue class satisfying DurableQueue: the stdlib queue API (put, get,
   put_many, get_many, task_done, join, shutdown, ...) plus at-least-once
   delivery (reserve, reserve_many, ack_many), with visibility timeouts,
   max_attempts and dead letters as its settings say, TTLs and priorities.
4. A message class satisfying DurableMessage.
5. The guarantees the conformance suite checks: nothing reported stored is
   lost; close() wakes every blocked caller with StoreClosedError; a
   message that cannot be decoded is dead-lettered (reason in its
   DECODE_ERROR_HEADER header), never dropped; bad arguments raise
   TypeError or ValueError and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar, runtime_checkable

from flinq.arguments import check_error
from flinq.errors import StoreError
from flinq.settings import UNSET, QueueSettings, Unset, check_reopen, checked_request

__all__ = [
    "BY_APPLICATION",
    "DECODE_ERROR_HEADER",
    "ERROR_HEADER",
    "ERROR_TYPE_HEADER",
    "NACKED",
    "SPENT",
    "DurableMessage",
    "DurableQueue",
    "DurableStore",
    "OpensQueues",
    "SettlesOnExit",
    "describe_error",
    "error_headers",
]

#: The header a message carries, with the reason, once it was moved to a
#: dead-letter queue because it could not be decoded.
DECODE_ERROR_HEADER = "flinq-decode-error"

#: The headers a dead-lettered message carries: the type name and the text
#: of the error that sent it there (the handler's last error in consume(),
#: or the error passed to nack()/dead_letter()). Without an error, the type
#: is "" and the text says why ("max_attempts reached", "nacked without
#: requeue", "dead-lettered by the application").
ERROR_TYPE_HEADER = "flinq-error-type"
ERROR_HEADER = "flinq-error"

#: The reasons a dead letter gives when no error sent it there.
SPENT = "max_attempts reached"
NACKED = "nacked without requeue"
BY_APPLICATION = "dead-lettered by the application"


def describe_error(error: BaseException | None, reason: str) -> tuple[str, str]:
    """Why a message is dead-lettered, as (error type, text): error's type
    name and text, or "" and reason without an error; TypeError if error
    is not an exception. An error whose str() fails is described, not
    raised: settling a message never fails halfway on it."""
    check_error(error)
    if error is None:
        return "", reason
    name = type(error).__name__
    try:
        text = str(error)
    except Exception:
        text = f"<unprintable {name}>"
    return name, text


def error_headers(error: BaseException | None, reason: str) -> dict[str, str]:
    """describe_error() as a dead letter's ERROR_TYPE_HEADER and ERROR_HEADER."""
    error_type, text = describe_error(error, reason)
    return {ERROR_TYPE_HEADER: error_type, ERROR_HEADER: text}


class SettlesOnExit:
    """DurableMessage's context manager, for a backend's message class to
    inherit: ack when the block succeeds, nack (requeue) when it raises; the
    exception still propagates."""

    __slots__ = ()

    def ack(self) -> bool:
        raise NotImplementedError

    def nack(
        self, requeue: bool = True, delay: float = 0.0, *, error: BaseException | None = None
    ) -> bool:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self.ack()
        else:
            self.nack(requeue=True)


@runtime_checkable
class DurableMessage(Protocol):
    """A message taken with reserve(): in flight until settled.

    As a context manager it acks when the block succeeds and nacks
    (requeue) when it raises."""

    @property
    def body(self) -> Any: ...
    @property
    def id(self) -> int:
        """Unique within its store."""

    @property
    def attempts(self) -> int:
        """Deliveries so far, this one included."""

    @property
    def priority(self) -> int: ...
    @property
    def headers(self) -> dict[str, str] | None: ...
    @property
    def enqueued_at(self) -> float:
        """Unix time of the first put."""

    @property
    def settled(self) -> bool: ...

    def ack(self) -> bool:
        """Remove it for good; False if it was no longer in flight."""

    def nack(
        self, requeue: bool = True, delay: float = 0.0, *, error: BaseException | None = None
    ) -> bool:
        """Ready again after delay seconds; or, with requeue=False or its
        attempts spent, to the dead-letter queue (dropped without one), with
        error's type and text in its ERROR_TYPE_HEADER/ERROR_HEADER headers."""

    def dead_letter(self, queue: str | None = None, *, error: BaseException | None = None) -> bool:
        """Move it to the dead-letter queue named queue (None: the queue's own),
        with the reason in its ERROR_TYPE_HEADER/ERROR_HEADER headers."""

    def release(self) -> None:
        """Give it back as if never delivered (its attempt does not count)."""

    def __enter__(self) -> DurableMessage: ...
    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None: ...


@runtime_checkable
class DurableQueue(Protocol):
    """A named queue of a DurableStore."""

    name: str
    settings: QueueSettings
    priority: bool
    max_attempts: int | None
    visibility_timeout: float | None
    dead_letter: str | None

    @property
    def maxsize(self) -> int: ...
    @property
    def is_shutdown(self) -> bool: ...

    def put(
        self,
        item: Any,
        block: bool = True,
        timeout: float | None = None,
        *,
        priority: int | None = None,
        headers: dict[str, str] | None = None,
        ttl: float | None = None,
    ) -> None: ...
    def put_nowait(self, item: Any, *, priority: int | None = None) -> None: ...
    def put_many(
        self,
        items: Iterable[Any],
        block: bool = True,
        timeout: float | None = None,
        *,
        priority: int | None = None,
    ) -> None: ...
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...
    def get_nowait(self) -> Any: ...
    def get_many(
        self, max_items: int, block: bool = True, timeout: float | None = None
    ) -> list[Any]: ...
    def reserve(self, timeout: float | None = None) -> DurableMessage: ...
    def reserve_many(
        self, max_items: int, timeout: float | None = None
    ) -> list[Any]:  # list[DurableMessage]: a list is invariant
        """1 to max_items messages, [] if none came within timeout."""

    def ack_many(self, messages: list[Any]) -> int:
        """Ack messages reserved from this queue at once; how many were in flight."""

    def messages(self, timeout: float | None = None) -> Iterator[Any]: ...
    def consume(self, handler: Callable[[Any], object], **options: Any) -> Any: ...
    def qsize(self) -> int: ...
    def empty(self) -> bool: ...
    def full(self) -> bool: ...
    def in_flight(self) -> int: ...
    def task_done(self) -> None: ...
    def join(self) -> None: ...
    def shutdown(self, immediate: bool = False) -> None: ...
    def purge(self) -> int: ...
    def stats(self) -> dict[str, Any]:
        """At least the keys of flinq.Queue.stats(), with in_flight."""


@runtime_checkable
class DurableStore(Protocol):
    """What flinq.open(path_or_url) returns: named durable queues."""

    path: str
    readonly: bool

    def queue(
        self,
        name: str,
        *,
        priority: bool | Unset = ...,
        maxsize: int | Unset = ...,
        max_attempts: int | Unset | None = ...,
        visibility_timeout: float | Unset | None = ...,
        dead_letter: str | Unset | None = ...,
    ) -> Any:  # a DurableQueue
        """The queue called name, created on first use (see Store.queue)."""

    def queues(self) -> list[str]:
        """Names of the stored queues, sorted."""

    def open_queues(self) -> dict[str, Any]:
        """The queues opened through this object, by name."""

    def delete_queue(self, name: str) -> None: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...
    def stats(self) -> dict[str, Any]:
        """The store's own figures (flinq.metrics exports its known keys)."""

    def inspect(self) -> dict[str, Any]:
        """flinq stats: path, as_of, owner, bytes_on_disk, queues (one dict
        each: name, priority, depth, in_flight, dead_letter, dead_letters,
        attempted, expired, oldest_enqueued_at, oldest_age_seconds)."""

    def peek(self, name: str, n: int) -> list[dict[str, Any]]:
        """flinq peek: the first n stored messages (id, priority, attempts,
        enqueued_at, expires_at, headers, body_type, body as stored bytes);
        KeyError for an unknown queue."""

    def purge_queue(self, name: str) -> int:
        """flinq purge: delete a queue's stored messages; KeyError if unknown."""

    def move_messages(self, source: str, target: str) -> int:
        """flinq requeue: move every message of source to target, all or none."""

    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> None: ...


QueueT = TypeVar("QueueT", bound=DurableQueue)


class OpensQueues(Generic[QueueT]):
    """DurableStore.queue() for a backend's store class to inherit: what
    every store's queue() does but the creating. The store sets readonly,
    _queues (its open queues by name) and _queues_lock, and implements
    _check_open() and _create_queue()."""

    readonly: bool
    _queues: dict[str, QueueT]
    _queues_lock: AbstractContextManager[Any]

    def _check_open(self) -> None:
        """StoreClosedError (or the store's own reason) if it cannot be used."""
        raise NotImplementedError

    def _create_queue(self, name: str, given: dict[str, Any]) -> QueueT:
        """Open queue name, not open yet, with the settings given (checked;
        UNSET: not given), creating it if there is none, and add it to
        _queues; called holding _queues_lock."""
        raise NotImplementedError

    def queue(
        self,
        name: str,
        *,
        priority: bool | Unset = UNSET,
        maxsize: int | Unset = UNSET,
        max_attempts: int | Unset | None = UNSET,
        visibility_timeout: float | Unset | None = UNSET,
        dead_letter: str | Unset | None = UNSET,
    ) -> QueueT:
        """The durable queue called name, created on first use.

        priority=True orders by put(item, priority=n) (lowest first, FIFO
        among equals); it is fixed when the queue is created. maxsize bounds
        the ready messages (0: unbounded). max_attempts moves a message to
        the dead_letter queue after that many deliveries; visibility_timeout
        (seconds) redelivers a reserved message that was not acked in time.

        The settings are stored with the queue: an argument left out keeps
        the stored value (the default for a new queue); one given replaces it
        (None clears it), except priority, which a queue keeps (ValueError).
        A queue already open in this store must be asked for with its current
        settings, or none (ValueError). Every argument is checked before
        anything is created. A store opened with readonly=True refuses
        (StoreError).
        """
        self._check_open()
        if self.readonly:
            raise StoreError("a store opened with readonly=True has no writable queues")
        given = checked_request(
            name,
            priority=priority,
            maxsize=maxsize,
            max_attempts=max_attempts,
            visibility_timeout=visibility_timeout,
            dead_letter=dead_letter,
        )
        with self._queues_lock:
            existing = self._queues.get(name)
            if existing is not None:
                check_reopen(name, existing.settings, given)
                return existing
            return self._create_queue(name, given)
