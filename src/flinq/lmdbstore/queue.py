"""The LMDB store's queues and messages: the core queue API over a pending log.

A DurableQueue keeps its ready messages in an in-memory core (flinq.Queue,
or flinq.PriorityQueue keyed by priority) as (key, record) pairs, and logs
every change to its store's pending log:
  put       log the record (sync mode: wait for its commit), then hand it
            to the core, so a consumer can only log its removal after it;
  get       take from the core, log the removal (at most once);
  reserve   take from the core, log the record with attempts + 1, and hold
            the message in flight until ack (at least once);
  ack       log the removal; nack puts it back, later or now, or moves it to
            the dead-letter queue once max_attempts deliveries are spent.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from queue import Empty
from typing import Any

from flinq import _core
from flinq._compat import ShutDown
from flinq.arguments import check_delay, check_error, check_headers, check_timeout, check_ttl
from flinq.codec import (
    ATTEMPTS_AT,
    ATTEMPTS_STRUCT,
    EXPIRES_AT_FIELD,
    NO_EXPIRY,
    Record,
    body_of,
    decode_record,
    encode_plain,
    encode_record,
    fifo_key,
    key_priority,
    key_seq,
    priority_key,
    with_attempts,
    with_headers,
    without_expiry,
)
from flinq.consumer import Consumer, iter_messages
from flinq.errors import StoreClosedError, StoreCorruptError
from flinq.lmdbstore.ids import Ids
from flinq.lmdbstore.layout import Layout
from flinq.lmdbstore.log import OP_CLEAR, OP_DEL, OP_PUT, OP_SET, PendingLog
from flinq.lmdbstore.scheduler import Scheduler
from flinq.lmdbstore.state import StoreState
from flinq.protocols import (
    BY_APPLICATION,
    DECODE_ERROR_HEADER,
    NACKED,
    SPENT,
    SettlesOnExit,
    error_headers,
)
from flinq.settings import QueueSettings

__all__ = ["DurableQueue", "Message", "QueueContext"]

Entry = tuple[bytes, bytes]  # (key, record)

_now = time.time
_unpack_attempts = ATTEMPTS_STRUCT.unpack_from
_pack_attempts = ATTEMPTS_STRUCT.pack
_ATTEMPTS_END = ATTEMPTS_AT + ATTEMPTS_STRUCT.size
_NOTE_ACKED = _core.NOTE_KINDS["acked"]
_NOTE_NACKED = _core.NOTE_KINDS["nacked"]
_NOTE_REDELIVERED = _core.NOTE_KINDS["redelivered"]
_NOTE_DEAD_LETTERED = _core.NOTE_KINDS["dead_lettered"]
_NOTE_EXPIRED = _core.NOTE_KINDS["expired"]
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1

_log = logging.getLogger("flinq")


@dataclass(frozen=True)
class QueueContext:
    """What a queue shares with the other queues of its store."""

    state: StoreState
    log: PendingLog
    ids: Ids
    scheduler: Scheduler
    layout: Layout
    serializer: Any
    #: store.queue: opens (creating if need be) a queue to take dead letters.
    open_queue: Callable[[str], DurableQueue]


def _expired(record: bytes, now: float) -> bool:
    """True if record has a TTL and it has passed by now. Most records have
    none (their expires_at field is NO_EXPIRY) and never need decoding to tell."""
    return record[EXPIRES_AT_FIELD] != NO_EXPIRY and decode_record(record).expires_at <= now


class Message(SettlesOnExit):
    """A message taken with reserve(): settle it with ack() or nack().

    As a context manager it acks when the block succeeds and nacks (requeue)
    when it raises; the exception still propagates.
    """

    __slots__ = (
        "_decoded",
        "_delivery",
        "_queue",
        "_raw",
        "_settled",
        "body",
        "key",
    )

    def __init__(
        self, queue: DurableQueue, key: bytes, raw: bytes, delivery: int, body: Any
    ) -> None:
        self._queue = queue
        self._delivery = delivery
        self._raw = raw
        self._decoded: Record | None = None
        self._settled = False
        self.key = key
        self.body = body

    @property
    def _record(self) -> Record:
        if self._decoded is None:
            self._decoded = decode_record(self._raw)
        return self._decoded

    @property
    def id(self) -> int:
        """The message's sequence number, unique within its store."""
        return key_seq(self.key)

    @property
    def priority(self) -> int:
        """Its priority (0 in a FIFO queue)."""
        return key_priority(self.key)

    @property
    def attempts(self) -> int:
        """Deliveries so far, this one included."""
        return self._record.attempts

    @property
    def enqueued_at(self) -> float:
        """When it was first put, as Unix time."""
        return self._record.enqueued_at

    @property
    def headers(self) -> dict[str, str] | None:
        """The headers it was put with, if any."""
        return self._record.headers

    @property
    def ttl(self) -> float | None:
        """Its time to live in seconds from enqueued_at, if it has one."""
        record = self._record
        return record.expires_at - record.enqueued_at if record.expires_at else None

    def ack(self) -> bool:
        """Remove the message for good. Returns False if it was no longer
        in flight (already settled, or redelivered after its visibility
        timeout)."""
        return self._queue._ack(self)

    def nack(
        self, requeue: bool = True, delay: float = 0.0, *, error: BaseException | None = None
    ) -> bool:
        """Give the message back: ready again after delay seconds, or (with
        requeue=False, or its attempts spent) to the dead-letter queue, with
        error's type and text in its ERROR_TYPE_HEADER/ERROR_HEADER headers,
        or dropped if there is none. Returns False if no longer in flight."""
        check_delay(delay)
        check_error(error)
        if self._settled:
            return False
        self._settled = True
        reason = SPENT if requeue else NACKED
        return self._queue._nack(self.key, self._delivery, requeue, float(delay), error, reason)

    @property
    def settled(self) -> bool:
        """True once acked or nacked here."""
        return self._settled

    def dead_letter(self, queue: str | None = None, *, error: BaseException | None = None) -> bool:
        """Move the message to the dead-letter queue named queue (None: the
        queue's own; dropped if it has none), with error's type and text in
        its ERROR_TYPE_HEADER/ERROR_HEADER headers. Returns False if no
        longer in flight."""
        check_error(error)
        if self._settled:
            return False
        self._settled = True
        return self._queue._nack(self.key, self._delivery, False, 0.0, error, BY_APPLICATION, queue)

    def release(self) -> None:
        """Give the message back as if it had never been delivered: its
        attempt is not counted (a consumer stopping with messages reserved
        but not yet handled)."""
        if not self._settled:
            self._settled = True
            self._queue._unreserve(self.key, self._delivery)

    def __repr__(self) -> str:
        return f"<flinq.Message id={self.id} queue={self._queue.name!r} attempts={self.attempts}>"


class DurableQueue:
    """A named queue whose messages survive restarts; made by Store.queue().

    It has the core queue's API (put, get, put_many, get_many, qsize, empty,
    full, task_done, join, shutdown, stats) plus reserve() for at-least-once
    delivery, purge(), and put(..., priority=n) when created with
    priority=True. Bodies come back as they were put: bytes, bytearray, str,
    or the serializer's output for anything else (a memoryview comes back as
    bytes).
    """

    def __init__(
        self, name: str, settings: QueueSettings, handle: Any, context: QueueContext
    ) -> None:
        self.name = name
        self.settings = settings
        self.priority = settings.priority
        self.max_attempts = settings.max_attempts
        self.visibility_timeout = settings.visibility_timeout
        self.dead_letter = settings.dead_letter
        maxsize = settings.maxsize
        priority = settings.priority
        self._state = context.state
        self._log = context.log
        self._take_id = context.ids.take  # store-wide: keys are unique across queues
        self._scheduler = context.scheduler
        self._open_queue = context.open_queue
        self._serializer = context.serializer
        self._handle = handle
        self._core: Any = _core.PriorityQueue(maxsize) if priority else _core.Queue(maxsize)
        # What the backend does to the core beyond its public API: storing
        # without waiting, holding room, settling and counting deliveries.
        self._access = _core.BackendAccess(self._core)
        self._bounded = self._core.maxsize > 0
        # put()'s lean path: unbounded, batch mode (a put logs and returns).
        self._lean = not self._bounded and not context.log.sync
        self._log_put = context.log.put
        self._core_put = self._core.put
        self._lock = threading.Lock()  # guards the in-flight table and timers
        # key -> (record, delivery): each reserve numbers its delivery, so a
        # late ack of a delivery that timed out cannot settle the next one.
        self._in_flight: dict[bytes, tuple[bytes, int]] = {}
        self._deliveries = itertools.count(1)
        # (deadline, delivery, key), lazily pruned
        self._expiries: list[tuple[float, int, bytes]] = []
        self._delayed: list[tuple[float, bytes, bytes]] = []  # (due, key, record)
        # When the scheduler calls _on_due next (inf: never); guarded by _lock.
        self._wake_at = math.inf
        self._note = self._access.note  # delivery counters live in the core, in C
        self._detached = False
        self._load(context.layout)

    # ---- loading ---------------------------------------------------------------

    def _load(self, layout: Layout) -> None:
        entries = layout.load(self._handle)
        if not entries:
            return
        restore = self._access.restore  # stored messages may exceed maxsize: no waiting
        if not self.priority:
            restore(entries)
            return
        # Keys sort by priority: hand each run of equal priority over at once.
        start = 0
        current = key_priority(entries[0][0])
        for index in range(1, len(entries) + 1):
            p = key_priority(entries[index][0]) if index < len(entries) else None
            if p != current:
                restore(entries[start:index], current)
                start = index
                current = p  # type: ignore[assignment]

    # ---- producing -----------------------------------------------------------------

    def _new_message(
        self,
        item: Any,
        priority: int | None,
        headers: dict[str, str] | None,
        ttl: float | None,
    ) -> tuple[bytes, bytes, int]:
        """(key, record, priority) of a new message; nothing is changed."""
        if self._detached or self._state.closing:
            self._raise_unusable()
        if priority is None:
            priority = 0
        elif not self.priority:
            raise TypeError(f"queue {self.name!r} is not a priority queue; omit priority=")
        elif not isinstance(priority, int):
            raise TypeError(f"priority must be an int, not {type(priority).__name__}")
        elif not _I64_MIN <= priority <= _I64_MAX:
            raise OverflowError("priority must fit in a signed 64-bit integer")
        now = time.time()
        if headers is None and ttl is None:
            record = encode_plain(item, self._serializer, now)
        else:
            check_headers(headers)
            check_ttl(ttl)
            record = encode_record(
                item,
                self._serializer,
                enqueued_at=now,
                expires_at=now + ttl if ttl is not None else 0.0,
                headers=headers,
            )
        seq = self._take_id()
        key = priority_key(priority, seq) if self.priority else fifo_key(seq)
        return key, record, priority

    def put(
        self,
        item: Any,
        block: bool = True,
        timeout: float | None = None,
        *,
        priority: int | None = None,
        headers: dict[str, str] | None = None,
        ttl: float | None = None,
    ) -> None:
        """Put item durably (see Store for when it is on disk).

        Raises TypeError, before anything changes, for an item the store's
        serializer cannot handle.
        """
        if priority is not None or headers is not None or ttl is not None or self.priority:
            key, record, p = self._new_message(item, priority, headers, ttl)
            self._publish([(key, record)], p, block, timeout)
            return
        # The common case, kept lean: no option to check, a FIFO key.
        if self._detached or self._state.closing:
            self._raise_unusable()
        record = encode_plain(item, self._serializer, _now())
        key = fifo_key(self._take_id())
        if not self._lean:
            self._publish([(key, record)], 0, block, timeout)
            return
        # _publish's unbounded, batch-mode case for one message, inlined: it
        # is the hot path.
        try:
            if self._core.is_shutdown:
                raise ShutDown
            self._log_put(self._handle, key, record, block, timeout)
            try:
                self._core_put((key, record))
            except BaseException:
                self._log.append((OP_DEL, self._handle, key, None, None))
                raise
        except ShutDown:
            if self._detached:  # the store closed meanwhile, as _publish reports it
                self._raise_unusable()
            raise

    def put_nowait(self, item: Any, *, priority: int | None = None) -> None:
        """Put item without blocking; raise queue.Full if there is no room."""
        self.put(item, False, priority=priority)

    def put_many(
        self,
        items: Any,
        block: bool = True,
        timeout: float | None = None,
        *,
        priority: int | None = None,
    ) -> None:
        """Put every item, in order, as one batch with the same priority: all
        or nothing (in sync mode, it returns once every item is committed: in one
        commit, or in several for more than the store's max_pending; if a later
        one of those fails, the items of the earlier ones stay stored and are
        delivered after the next open)."""
        entries = [self._new_message(item, priority, None, None)[:2] for item in items]
        if entries:
            self._publish(entries, 0 if priority is None else priority, block, timeout)

    def _publish(
        self, entries: list[Entry], priority: int, block: bool, timeout: float | None
    ) -> None:
        """_publish_entries; a store that closed meanwhile (which shuts the
        core down) is StoreClosedError, as for every other call."""
        try:
            self._publish_entries(entries, priority, block, timeout)
        except ShutDown:
            if self._detached:
                self._raise_unusable()
            raise

    def _publish_entries(
        self, entries: list[Entry], priority: int, block: bool, timeout: float | None
    ) -> None:
        """Log new messages, then make them ready; all or none.

        A bounded queue first holds room for them, so a put refused for
        room (queue.Full) has logged nothing. An unbounded one can refuse
        only when shut down in the meantime; the log is then taken back.
        """
        core = self._core
        log = self._log
        ordering = priority if self.priority else None
        if not self._bounded:
            if core.is_shutdown:
                raise ShutDown
            log.put_many(self._handle, entries, block, timeout)
            try:
                if len(entries) > 1:
                    self._access.restore(entries, ordering)
                elif ordering is None:
                    core.put(entries[0])
                else:
                    core.put(entries[0], priority=ordering)
            except BaseException:
                for key, _record in entries:
                    log.append((OP_DEL, self._handle, key, None, None))
                raise
            return
        access = self._access
        access.hold_room(len(entries), block, timeout)
        try:
            log.put_many(self._handle, entries, block, timeout)
        except BaseException:
            access.release_room(len(entries))
            raise
        access.push_held(entries, ordering)

    def _raise_unusable(self) -> None:
        self._state.check()
        raise StoreClosedError(f"queue {self.name!r} was deleted or its store closed")

    # ---- consuming -----------------------------------------------------------------

    def _take(self, block: bool, timeout: float | None) -> Entry:
        """The next entry from the core; StoreClosedError if the store
        closed (or the queue was deleted) while waiting."""
        try:
            entry: Entry = self._core.get(block, timeout)
        except ShutDown:
            if self._detached:
                self._raise_unusable()
            raise
        return entry

    def _take_many(self, max_items: int, block: bool, timeout: float | None) -> list[Entry]:
        """_take for up to max_items entries."""
        try:
            entries: list[Entry] = self._core.get_many(max_items, block, timeout)
        except ShutDown:
            if self._detached:
                self._raise_unusable()
            raise
        return entries

    def _quarantine(self, key: bytes, record: bytes, error: Exception) -> StoreCorruptError:
        """Move a taken message that cannot be decoded to the dead-letter
        queue (the queue's own, else "<name>.dead"), with the reason in its
        DECODE_ERROR_HEADER, and log it; returns the error to report."""
        target = self.dead_letter or f"{self.name}.dead"
        reason = f"{type(error).__name__}: {error}"
        try:
            moved = with_headers(record, {DECODE_ERROR_HEADER: reason})
        except StoreCorruptError:
            moved = record  # its header is damaged too: moved as it is
        self._note(_NOTE_DEAD_LETTERED)
        self._open_queue(target).adopt(moved, keep_expiry=moved is record)
        self._log.append((OP_DEL, self._handle, key, None, None))
        self._core.task_done()
        message = (
            f"queue {self.name!r}: message {key_seq(key)} cannot be decoded ({reason}); "
            f"moved to the dead-letter queue {target!r}"
        )
        _log.error("flinq: %s", message)
        return StoreCorruptError(message)

    def _expire(self, key: bytes, record: bytes) -> bool:
        """True (and the message retired) if its TTL has passed. Callers
        skip the call for a record without one (record[EXPIRES_AT_FIELD] == NO_EXPIRY)."""
        if _expired(record, time.time()):
            self._retire(key, record, None)
            self._core.task_done()
            return True
        return False

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the next body (at-most-once: the removal is
        logged before this returns). A message that cannot be decoded is
        moved to the dead-letter queue, and StoreCorruptError names it."""
        if self._detached or self._state.closing:
            self._raise_unusable()
        deadline = None
        if block and timeout is not None:
            check_timeout(timeout)
            deadline = time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            key, record = self._take(block, remaining)
            try:
                if record[EXPIRES_AT_FIELD] != NO_EXPIRY and self._expire(key, record):
                    continue
                body = body_of(record, self._serializer)
            except StoreCorruptError as exc:
                raise self._quarantine(key, record, exc) from exc
            self._log.append((OP_DEL, self._handle, key, None, None))
            return body

    def get_nowait(self) -> Any:
        """Remove and return the next body without blocking; raise queue.Empty."""
        return self.get(False)

    def get_many(
        self, max_items: int, block: bool = True, timeout: float | None = None
    ) -> list[Any]:
        """Remove and return 1 to max_items bodies, first first. Messages
        that cannot be decoded are moved to the dead-letter queue (and
        logged); if no other message came, StoreCorruptError names them."""
        self._check_attached()
        if block:
            check_timeout(timeout)
        deadline = None if timeout is None or not block else time.monotonic() + timeout
        log = self._log.append
        handle = self._handle
        serializer = self._serializer
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            entries = self._take_many(max_items, block, remaining)
            out = []
            failure: StoreCorruptError | None = None
            for key, record in entries:
                try:
                    if record[EXPIRES_AT_FIELD] != NO_EXPIRY and self._expire(key, record):
                        continue
                    body = body_of(record, serializer)
                except StoreCorruptError as exc:
                    failure = self._quarantine(key, record, exc)
                    continue
                log((OP_DEL, handle, key, None, None))
                out.append(body)
            if out:
                return out
            if failure is not None:
                raise failure

    def reserve(self, timeout: float | None = None) -> Message:
        """Take the next message at least once: it stays stored until
        msg.ack(), and comes back if it is nacked, not acked within
        visibility_timeout, or the process dies first. Waits up to timeout
        seconds (None: for ever; 0: not at all), then raises queue.Empty.
        A message that cannot be decoded is moved to the dead-letter queue,
        and StoreCorruptError names it."""
        self._check_attached()
        deadline = None
        if timeout is not None:
            check_timeout(timeout)
            deadline = time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            key, record = self._take(True, remaining)
            try:
                flight = self._prepare(key, record)
            except StoreCorruptError as exc:
                raise self._quarantine(key, record, exc) from exc
            if flight is not None:
                self._take_off_one(*flight)
                return Message(self, *flight)

    def reserve_many(self, max_items: int, timeout: float | None = None) -> list[Message]:
        """Reserve 1 to max_items messages, waiting up to timeout seconds for
        the first; [] if none came (or all that came were retired). Messages
        that cannot be decoded are moved to the dead-letter queue and logged."""
        self._check_attached()
        check_timeout(timeout)
        try:
            entries = self._take_many(max_items, True, timeout)
        except Empty:
            return []
        prepare = self._prepare
        flying = []
        for key, record in entries:
            try:
                flight = prepare(key, record)
            except StoreCorruptError as exc:
                self._quarantine(key, record, exc)
                continue
            if flight is not None:
                flying.append(flight)
        self._take_off(flying)
        return [Message(self, *flight) for flight in flying]

    def _prepare(self, key: bytes, record: bytes) -> tuple[bytes, bytes, int, Any] | None:
        """(key, record with attempts + 1, delivery number, body) for a ready
        entry about to be delivered; None if it was retired instead: expired,
        or its attempts spent (deliveries ended by crashes: a message that
        kills its consumer, say). StoreCorruptError if it cannot be decoded."""
        if record[EXPIRES_AT_FIELD] != NO_EXPIRY and self._expire(key, record):
            return None
        attempts = _unpack_attempts(record, ATTEMPTS_AT)[0] + 1
        if self.max_attempts is not None and attempts > self.max_attempts:
            self._retire(key, record, SPENT)
            self._core.task_done()
            return None
        body = body_of(record, self._serializer)
        return (
            key,
            record[:ATTEMPTS_AT] + _pack_attempts(attempts) + record[_ATTEMPTS_END:],
            next(self._deliveries),
            body,
        )

    def _start_clocks(self, deliveries: Iterable[tuple[int, bytes]]) -> None:
        """Under _lock: start the visibility timeout of deliveries, as
        (delivery number, key) pairs."""
        deadline = time.monotonic() + self.visibility_timeout  # type: ignore[operator]
        for delivery, key in deliveries:
            heapq.heappush(self._expiries, (deadline, delivery, key))
        self._wake_by(deadline)

    def _take_off_one(self, key: bytes, record: bytes, delivery: int, _body: Any) -> None:
        """_take_off for one delivery, without its lists."""
        # Logged before it is in flight: only what finds it in flight (an
        # ack, a nack, a timeout) logs its delete, which then comes after
        # this set; the other order would write a retired message back.
        self._log.append((OP_SET, self._handle, key, record, None))
        with self._lock:
            self._in_flight[key] = (record, delivery)
            if self.visibility_timeout:
                self._start_clocks(((delivery, key),))

    def _take_off(self, flights: list[tuple[bytes, bytes, int, Any]]) -> None:
        """Hold prepared deliveries in flight and log their new attempts."""
        handle = self._handle  # logged first: see _take_off_one
        self._log.extend([(OP_SET, handle, f[0], f[1], None) for f in flights])
        with self._lock:
            in_flight = self._in_flight
            for key, record, delivery, _body in flights:
                in_flight[key] = (record, delivery)
            if self.visibility_timeout and flights:
                self._start_clocks((f[2], f[0]) for f in flights)

    def messages(self, timeout: float | None = None) -> Iterator[Message]:
        """Iterate over reserved messages (use each as a context manager to
        ack it, or nack it on an exception). Stops once no message comes
        within timeout seconds (None: wait forever) or the queue is shut
        down and empty."""
        return iter_messages(self, timeout)

    def consume(self, handler: Callable[[Message], object], **options: Any) -> Consumer:
        """Run handler(message) on worker threads for every message; returns
        the running Consumer (see flinq.Consumer for the options)."""
        return Consumer(self, handler, **options)

    def _land(self, key: bytes, delivery: int) -> bytes | None:
        """Under _lock: take delivery of key out of flight; its record, or
        None if that delivery is no longer in flight."""
        held = self._in_flight.get(key)
        if held is None or held[1] != delivery:
            return None
        del self._in_flight[key]
        return held[0]

    def _settle(self, key: bytes, delivery: int) -> bytes | None:
        """_land, taking the lock."""
        self._check_attached()
        with self._lock:
            return self._land(key, delivery)

    def _ack(self, message: Message) -> bool:
        """ack_many([message]) == 1 without its lists: the common case."""
        self._check_attached()
        if message._settled:
            return False
        message._settled = True
        key = message.key
        with self._lock:
            if self._land(key, message._delivery) is None:
                return False
        self._log.append((OP_DEL, self._handle, key, None, None))
        self._note(_NOTE_ACKED)
        self._access.done(1)
        return True

    def ack_many(self, messages: list[Message]) -> int:
        """Ack the unsettled ones of messages (reserved from this queue) at
        once; returns how many were still in flight."""
        self._check_attached()
        acked = []
        land = self._land
        with self._lock:
            for message in messages:
                if message._settled:
                    continue
                message._settled = True
                if land(message.key, message._delivery) is not None:
                    acked.append(message.key)
        handle = self._handle
        self._log.extend([(OP_DEL, handle, key, None, None) for key in acked])
        self._note(_NOTE_ACKED, len(acked))
        self._access.done(len(acked))
        return len(acked)

    def _nack(
        self,
        key: bytes,
        delivery: int,
        requeue: bool,
        delay: float,
        error: BaseException | None,
        reason: str,
        dead_letter: str | None = None,
    ) -> bool:
        """Settle a nacked delivery (see _give_back)."""
        record = self._settle(key, delivery)
        if record is None:
            return False
        self._note(_NOTE_NACKED)
        self._core.task_done()
        self._give_back(key, record, requeue, delay, reason, error, dead_letter)
        return True

    def _unreserve(self, key: bytes, delivery: int) -> None:
        """A reserved message goes back as if never delivered."""
        record = self._settle(key, delivery)
        if record is None:
            return
        self._core.task_done()
        record = with_attempts(record, decode_record(record).attempts - 1)
        self._log.append((OP_SET, self._handle, key, record, None))
        self._note(_NOTE_REDELIVERED)  # back in the queue: see the stats identity
        self._access.restore([(key, record)], key_priority(key) if self.priority else None)

    def _give_back(
        self,
        key: bytes,
        record: bytes,
        requeue: bool,
        delay: float,
        reason: str,
        error: BaseException | None = None,
        dead_letter: str | None = None,
    ) -> None:
        """A delivered message returns to the ready set, unless its attempts
        are spent (or requeue is False): then it is retired, for error (if
        any) or reason."""
        attempts = decode_record(record).attempts
        if not requeue or (self.max_attempts is not None and attempts >= self.max_attempts):
            self._retire(key, record, reason, error, dead_letter=dead_letter)
            return
        if delay > 0:
            due = time.monotonic() + delay
            with self._lock:
                heapq.heappush(self._delayed, (due, key, record))
                self._wake_by(due)
            return
        self._ready_again(key, record)

    def _ready_again(self, key: bytes, record: bytes) -> None:
        """A delivered message is ready again: it had its place already, so
        it goes back even if the queue is full (and never blocks the writer
        thread, which runs redeliveries)."""
        if self._core.is_shutdown:
            return  # stays stored; it comes back on the next open
        self._note(_NOTE_REDELIVERED)
        self._access.restore([(key, record)], key_priority(key) if self.priority else None)

    def _retire(
        self,
        key: bytes,
        record: bytes,
        reason: str | None,
        error: BaseException | None = None,
        *,
        dead_letter: str | None = None,
    ) -> None:
        """Move a message to the dead-letter queue (dead_letter, else the
        queue's own), or drop it if there is none, with error (if any) or
        reason in its headers; reason None: it expired."""
        self._note(_NOTE_EXPIRED if reason is None else _NOTE_DEAD_LETTERED)
        dead_letter = dead_letter or self.dead_letter
        if dead_letter is not None:
            if reason is not None:
                with contextlib.suppress(StoreCorruptError):  # damaged: moved as it is
                    record = with_headers(record, error_headers(error, reason))
            self._open_queue(dead_letter).adopt(record)
        self._log.append((OP_DEL, self._handle, key, None, None))

    def adopt(self, record: bytes, keep_expiry: bool = False) -> None:
        """Append a record retired from another queue (a dead letter): it
        keeps its body, headers and attempts, and loses its expiry, so that
        it can be read here (keep_expiry: a record too damaged to change)."""
        if not keep_expiry:
            record = without_expiry(record)
        seq = self._take_id()
        key = priority_key(0, seq) if self.priority else fifo_key(seq)
        self._log.append((OP_PUT, self._handle, key, record, None))
        # A dead letter must neither wait for room nor be refused.
        self._access.restore([(key, record)], 0 if self.priority else None)

    def _wake_by(self, deadline: float) -> None:
        """Have the store's scheduler call _on_due by deadline (under _lock).
        Deadlines mostly come later than the one already asked for, so a
        queue rarely has more than one call scheduled."""
        if deadline < self._wake_at:
            self._wake_at = deadline
            self._scheduler.call_at(deadline, self._on_due)

    def _on_due(self, now: float) -> None:
        """Writer thread, by the scheduler: redeliver what timed out, release
        what was delayed, and ask to be called for what is next."""
        if self._detached:
            return
        due: list[tuple[bytes, bytes]] = []
        timed_out: list[tuple[bytes, bytes]] = []
        with self._lock:
            if now < self._wake_at:
                return  # an earlier call, made moot: the next is scheduled
            self._wake_at = math.inf
            while self._delayed and self._delayed[0][0] <= now:
                _, key, record = heapq.heappop(self._delayed)
                due.append((key, record))
            while self._expiries and self._expiries[0][0] <= now:
                _, delivery, key = heapq.heappop(self._expiries)
                held = self._land(key, delivery)
                if held is not None:
                    timed_out.append((key, held))
            heads = [h[0][0] for h in (self._delayed, self._expiries) if h]
            if heads:
                self._wake_by(min(heads))
        for key, record in due:
            self._ready_again(key, record)
        for key, record in timed_out:
            self._core.task_done()
            self._give_back(key, record, True, 0.0, SPENT)

    # ---- the rest of the core API --------------------------------------------------------

    def _check_attached(self) -> None:
        if self._detached or self._state.closing:
            self._raise_unusable()

    def detach(self) -> None:
        """The queue is deleted or its store closed (for the store): callers
        blocked in it wake (with StoreClosedError), and it is no longer
        usable."""
        self._detached = True
        # Ready messages leave memory only: they stay stored.
        self._core.shutdown(immediate=True)

    @property
    def async_q(self) -> Any:
        """This queue's asyncio face (flinq.aio.async_queue), as on every flinq queue."""
        from flinq.aio import async_queue

        return async_queue(self)

    def qsize(self) -> int:
        """Messages ready now (not counting those in flight)."""
        self._check_attached()
        return int(self._core.qsize())

    def empty(self) -> bool:
        """True if no message is ready now."""
        self._check_attached()
        return bool(self._core.empty())

    def full(self) -> bool:
        """True if the queue is bounded and holds maxsize ready messages."""
        self._check_attached()
        return bool(self._core.full())

    @property
    def maxsize(self) -> int:
        """The bound on ready messages; <= 0 means unbounded."""
        return int(self._core.maxsize)

    def in_flight(self) -> int:
        """Messages reserved and not yet settled."""
        self._check_attached()
        return len(self._in_flight)

    def out_of_ready(self) -> int:
        """Messages out of the ready set: reserved, or nacked with a delay."""
        with self._lock:
            return len(self._in_flight) + len(self._delayed)

    def task_done(self) -> None:
        """Mark one message taken by get() as processed (for join())."""
        self._core.task_done()

    def join(self) -> None:
        """Wait until every message put has been processed: task_done()
        after get(), or settled after reserve()."""
        self._core.join()

    def shutdown(self, immediate: bool = False) -> None:
        """As Queue.shutdown; immediate=True drops ready messages from memory
        only: they stay stored and return on the next open."""
        self._core.shutdown(immediate)

    @property
    def is_shutdown(self) -> bool:
        """True once shutdown() has been called (or the queue closed)."""
        return bool(self._core.is_shutdown)

    def purge(self) -> int:
        """Delete every message, ready or in flight. Returns how many."""
        self._check_attached()
        self._state.check()
        with self._lock:
            in_flight = len(self._in_flight)
            dropped = in_flight + len(self._delayed)
            self._in_flight.clear()
            self._expiries.clear()
            self._delayed.clear()
        # Taken (in flight) or taken now (ready): each is done for join().
        done = in_flight
        while True:
            try:
                ready = len(self._core.get_many(1 << 30, False))
            except Empty:
                break
            dropped += ready
            done += ready
        for _ in range(done):
            self._core.task_done()
        self._log.append((OP_CLEAR, self._handle, None, None, None))
        return dropped

    def stats(self) -> dict[str, Any]:
        """The core queue's stats (see flinq.Queue.stats) over this queue's
        messages; in_flight counts reserved messages, delayed nacks
        included."""
        self._check_attached()
        stats: dict[str, Any] = dict(self._core.stats())
        stats["in_flight"] = self.out_of_ready()
        return stats

    def __repr__(self) -> str:
        if self._detached:
            return f"<flinq.DurableQueue {self.name!r} closed>"
        ready, flying = self._core.qsize(), len(self._in_flight)
        return f"<flinq.DurableQueue {self.name!r} ready={ready} in_flight={flying}>"
