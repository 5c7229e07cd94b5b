"""The Redis store's queues and messages.

Every step that must be atomic is one script on the server (scripts.py),
or a MULTI around plain commands and one, so any number of processes, on
any machines, can share a queue. A reserved message is a
pending entry of its level's stream, owned by the reserving store's
consumer; its delivery count (XPENDING) plus the attempts stored in its
record is its attempts. Settling checks that the entry is still that
delivery, so a message is in one consumer's hands at a time.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from queue import Empty, Full
from typing import Any

import redis

from flinq._compat import ShutDown
from flinq.arguments import check_delay, check_error, check_headers, check_timeout, check_ttl
from flinq.codec import (
    HAS_TTL,
    Record,
    Serializer,
    body_of,
    decode_record,
    encode_plain,
    encode_record,
    may_expire,
    stored_attempts,
    untimed_body,
    with_attempts,
    with_headers,
    without_expiry,
)
from flinq.consumer import Consumer, iter_messages
from flinq.errors import StoreClosedError, StoreCorruptError
from flinq.protocols import (
    BY_APPLICATION,
    DECODE_ERROR_HEADER,
    NACKED,
    SPENT,
    SettlesOnExit,
    error_headers,
)
from flinq.redisstore.connection import Waits, replies, translated
from flinq.redisstore.keys import GROUP, StoreKeys, stream_of
from flinq.redisstore.scripts import Scripts
from flinq.settings import QueueSettings

__all__ = ["MAX_PRIORITY", "QueueContext", "RedisMessage", "RedisQueue"]

# A taken entry: (level, stream id, message id, record, delivery count).
_Entry = tuple[int, bytes, int, bytes, int]

#: Priorities are kept as sorted-set scores (doubles): exact up to 2**53.
MAX_PRIORITY = 1 << 53
# How long a producer waiting for room in a bounded queue sleeps at most
# between looks (no server-side wake-up exists for room).
_ROOM_POLL = 0.05
_COUNTERS = (
    "enqueued",
    "dequeued",
    "acked",
    "nacked",
    "redelivered",
    "dead_lettered",
    "expired",
    "discarded",
)


@dataclass(frozen=True)
class QueueContext:
    """What a queue shares with the other queues of its store."""

    client: Any
    scripts: Scripts
    keys: StoreKeys
    waits: Waits
    serializer: Serializer
    where: str
    #: The store's consumer name in this process.
    consumer: Callable[[], str]
    #: StoreClosedError once the store is closing.
    check_open: Callable[[], None]
    #: True once the store is closing.
    closing: Callable[[], bool]


class RedisMessage(SettlesOnExit):
    """A message taken with reserve(): settle it with ack() or nack().

    As a context manager it acks when the block succeeds and nacks (requeue)
    when it raises; the exception still propagates."""

    __slots__ = ("_entry", "_header", "_queue", "_settled", "body", "id")

    def __init__(self, queue: RedisQueue, entry: _Entry, body: Any) -> None:
        self._queue = queue
        self._entry = entry
        self._header: Record | None = None
        self._settled = False
        self.id: int = entry[2]
        self.body = body

    @property
    def delivery(self) -> tuple[int, bytes, int]:
        """(priority level, stream entry id, delivery count): this delivery."""
        level, stream_id, _, _, count = self._entry
        return level, stream_id, count

    @property
    def record(self) -> bytes:
        """The stored record as delivered."""
        return self._entry[3]

    @property
    def header(self) -> Record:
        """The record's decoded header; StoreCorruptError if it is damaged."""
        if self._header is None:
            self._header = decode_record(self._entry[3])
        return self._header

    @property
    def priority(self) -> int:
        """Its priority (0 in a FIFO queue)."""
        return self._entry[0]

    @property
    def attempts(self) -> int:
        """Deliveries so far, this one included."""
        _, _, _, raw, count = self._entry
        return stored_attempts(raw) + count

    @property
    def enqueued_at(self) -> float:
        """When it was first put, as Unix time."""
        return self.header.enqueued_at

    @property
    def headers(self) -> dict[str, str] | None:
        """The headers it was put with, if any."""
        return self.header.headers

    @property
    def settled(self) -> bool:
        """True once acked, nacked, dead-lettered or released here."""
        return self._settled

    def settle(self) -> bool:
        """Mark it settled; False if it already was."""
        if self._settled:
            return False
        self._settled = True
        return True

    def ack(self) -> bool:
        """Remove the message for good. False if it was no longer in flight
        (settled, or redelivered after its visibility timeout)."""
        return self._queue.ack_many([self]) == 1

    def nack(
        self, requeue: bool = True, delay: float = 0.0, *, error: BaseException | None = None
    ) -> bool:
        """Give it back: ready again after delay seconds, or (requeue=False,
        or its attempts spent) to the dead-letter queue with error's type
        and text in its headers (dropped without one). False if no longer
        in flight."""
        check_delay(delay)
        check_error(error)
        if not self.settle():
            return False
        return self._queue.give_back(self, requeue, float(delay), error)

    def dead_letter(self, queue: str | None = None, *, error: BaseException | None = None) -> bool:
        """Move it to the dead-letter queue named queue (None: the queue's
        own; dropped if it has none), with the reason in its headers."""
        check_error(error)
        if not self.settle():
            return False
        return self._queue.retire(self, queue, error, BY_APPLICATION)

    def release(self) -> None:
        """Give it back as if never delivered (its attempt does not count)."""
        if self.settle():
            self._queue.release(self)

    def __repr__(self) -> str:
        return (
            f"<flinq.RedisMessage id={self.id} queue={self._queue.name!r} attempts={self.attempts}>"
        )


# A dead-letter queue the move creates gets the default settings.
_NEW_QUEUE_SETTINGS = json.dumps(QueueSettings().to_dict())


def _dead_record(
    message: RedisMessage, error: BaseException | None, reason: str | None, attempts: int
) -> bytes:
    """The record a retired message goes to its dead-letter queue as: the
    attempts it had, no TTL, error or reason in its headers (reason None:
    it expired, no headers added; as it was if it is too damaged to change)."""
    record = without_expiry(with_attempts(message.record, attempts))
    if reason is None:
        return record
    try:
        return with_headers(record, error_headers(error, reason))
    except StoreCorruptError:
        return message.record


def _check_count(max_items: object) -> int:
    if not isinstance(max_items, int) or isinstance(max_items, bool):
        raise TypeError(f"max_items must be an int, not {type(max_items).__name__}")
    if max_items < 1:
        raise ValueError("max_items must be at least 1")
    return max_items


class RedisQueue:
    """A named durable queue in a Redis store; made by RedisStore.queue().

    It has the durable queue API (flinq.protocols.DurableQueue). qsize(),
    in_flight() and stats()' depth count the queue as a whole, across every
    process; stats()' counters (enqueued, acked, ...) count what this
    process did. task_done()/join() track this process's get()s.
    """

    def __init__(self, name: str, settings: QueueSettings, context: QueueContext) -> None:
        self.name = name
        self.settings = settings
        self.priority = settings.priority
        self.max_attempts = settings.max_attempts
        self.visibility_timeout = settings.visibility_timeout
        self.dead_letter = settings.dead_letter
        self._maxsize = settings.maxsize
        self._context = context
        self._client = context.client
        self._scripts = context.scripts
        self._serializer = context.serializer
        self._base = context.keys.base(name)
        self._keys = [self._base]
        self._stream0 = context.keys.stream(name, 0)
        self._put_keys = [self._base, context.keys.seq]
        self._vt_ms = (
            0
            if settings.visibility_timeout is None
            else max(1, math.ceil(settings.visibility_timeout * 1000))
        )
        self._lock = threading.Lock()  # counters and the get()s not yet done
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._unfinished = 0
        self._shutdown = False
        self._immediate = False
        self._detached = False
        self._done = threading.Condition(self._lock)

    # ---- state -------------------------------------------------------------------

    def _check(self) -> None:
        self._context.check_open()
        if self._detached:
            raise StoreClosedError(f"queue {self.name!r} was deleted or its store closed")

    def _translated(self) -> Any:
        """Connection errors as flinq's (see connection.translated)."""
        return translated(self._context.where, self._context.closing)

    def detach(self) -> None:
        """The store closed or deleted the queue: it is no longer usable."""
        self._detached = True

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    # ---- producing -----------------------------------------------------------------

    def _level(self, priority: object) -> int:
        if priority is None:
            return 0
        if not self.priority:
            raise TypeError(f"queue {self.name!r} is not a priority queue; omit priority=")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise TypeError(f"priority must be an int, not {type(priority).__name__}")
        if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
            raise OverflowError(f"a Redis store's priorities lie within ±2**53, not {priority}")
        return priority

    def _record(self, item: Any, headers: dict[str, str] | None, ttl: float | None) -> bytes:
        now = time.time()
        if headers is None and ttl is None:
            return encode_plain(item, self._serializer, now)
        check_headers(headers)
        check_ttl(ttl)
        return encode_record(
            item,
            self._serializer,
            enqueued_at=now,
            expires_at=now + ttl if ttl is not None else 0.0,
            headers=headers,
        )

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
        """Put item: stored on the server when this returns (on disk as the
        server's persistence settings say). TypeError, before anything
        changes, for an item the serializer cannot handle."""
        self._check()
        level = self._level(priority)
        self._publish([self._record(item, headers, ttl)], level, block, timeout)

    def put_nowait(self, item: Any, *, priority: int | None = None) -> None:
        """Put item without blocking; queue.Full if there is no room."""
        self.put(item, False, priority=priority)

    def put_many(
        self,
        items: Iterable[Any],
        block: bool = True,
        timeout: float | None = None,
        *,
        priority: int | None = None,
    ) -> None:
        """Put every item, in order, with the same priority, all or nothing
        (one script: no other producer's message lands in between)."""
        self._check()
        level = self._level(priority)
        serializer = self._serializer
        now = time.time()
        records = [encode_plain(item, serializer, now) for item in items]
        if records:
            self._publish(records, level, block, timeout)

    def _publish(
        self, records: list[bytes], level: int, block: bool, timeout: float | None
    ) -> None:
        if block:
            check_timeout(timeout)
        deadline = None if timeout is None or not block else time.monotonic() + timeout
        pause = 0.001
        while True:
            if self._shutdown:
                raise ShutDown
            self._check()
            with self._translated():
                first = self._scripts.put(
                    keys=self._put_keys, args=[level, self._maxsize, *records]
                )
            if int(first) >= 0:
                self._count("enqueued", len(records))
                return
            if self._maxsize > 0 and len(records) > self._maxsize:
                raise ValueError(f"{len(records)} items can never fit in maxsize {self._maxsize}")
            remaining = None if deadline is None else deadline - time.monotonic()
            if not block or (remaining is not None and remaining <= 0):
                raise Full
            time.sleep(
                min(pause, _ROOM_POLL) if remaining is None else min(pause, _ROOM_POLL, remaining)
            )
            pause *= 2

    # ---- taking -----------------------------------------------------------------------

    def _take(
        self, n: int, timeout: float | None
    ) -> tuple[list[RedisMessage], list[tuple[int, str]]]:
        """Up to n deliveries, waiting up to timeout seconds (None: for
        ever) for the first: (messages, [(id, dead-letter queue)] of those
        that could not be decoded). queue.Empty if none came; ShutDown once
        the queue is shut down and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        consumer = self._context.consumer()
        while True:
            self._check()
            if self._immediate:
                raise ShutDown
            with self._translated():
                entries = self._take_now(n, consumer)
            if entries:
                messages, bad = self._deliveries(entries)
                if messages or bad:
                    return messages, bad
                continue  # every one was retired: look again
            if self._shutdown:
                raise ShutDown
            remaining = math.inf if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise Empty
            with self._translated():
                info = self._scripts.wait(keys=self._keys, args=[])
            if int(info[0]):
                continue  # something came meanwhile
            due = int(info[1])
            wait = min(remaining, due / 1000 if due >= 0 else math.inf)
            if self._vt_ms:
                wait = min(wait, max(0.005, self._vt_ms / 2000))
            streams = [(info[i].decode(), info[i + 1].decode()) for i in range(2, len(info), 2)]
            self._context.waits.wait(streams, max(wait, 0.001))

    def _take_now(self, n: int, consumer: str) -> list[_Entry]:
        """Up to n deliveries, without waiting. A priority queue takes them
        all in one script (level by level); a FIFO queue's new entries come
        straight from XREADGROUP, pipelined after the script that claims
        given-back and timed-out ones, so that bodies do not pass through
        Lua."""
        scripts = self._scripts
        if self.priority:
            reply = scripts.take(keys=self._keys, args=[consumer, n, self._vt_ms, 1])
            return _entries(reply)
        claimed, new = replies(
            self._client,
            [
                scripts.take.command(self._keys, [consumer, n, self._vt_ms, 0]),
                ("XREADGROUP", "GROUP", GROUP, consumer, "COUNT", n, "STREAMS", self._stream0, ">"),
            ],
        )
        if isinstance(new, Exception):
            raise new
        # The reply as sent: [[stream, [[stream id, [message id, record]], ...]]]
        # (RESP3: {stream: [...]}); an entry is one field, the message id.
        entries: list[_Entry] = []
        if new:
            read = next(iter(new.values())) if isinstance(new, dict) else new[0][1]
            entries = [
                (0, stream_id, int(message_id), raw, 1) for stream_id, (message_id, raw) in read
            ]
        if isinstance(claimed, redis.exceptions.NoScriptError):
            scripts.take.load()  # the server forgot it: the next look claims
        elif isinstance(claimed, Exception):
            self._untake(entries)
            raise claimed
        else:
            given = _entries(claimed)
            if given:
                keep = max(0, n - len(given))
                self._untake(entries[keep:])
                entries = given + entries[:keep]
        return entries

    def _untake(self, entries: list[_Entry]) -> None:
        """New entries read but not handed out: back to the ready ones."""
        if entries:
            self._scripts.untake(keys=self._keys, args=[0, *(entry[1] for entry in entries)])

    def _deliveries(
        self, entries: list[_Entry]
    ) -> tuple[list[RedisMessage], list[tuple[int, str]]]:
        """The messages of taken entries; expired ones and those whose
        attempts are spent are retired, undecodable ones dead-lettered."""
        messages: list[RedisMessage] = []
        bad: list[tuple[int, str]] = []
        expired: list[RedisMessage] = []
        spent: list[RedisMessage] = []
        now = time.time()
        serializer = self._serializer
        max_attempts = self.max_attempts
        keep = messages.append
        for entry in entries:
            raw = entry[3]
            if max_attempts is None:
                # No attempts limit: only a TTL can need a look before the body.
                try:
                    body = untimed_body(raw, serializer)
                except StoreCorruptError as exc:
                    bad.append((entry[2], self._quarantine(RedisMessage(self, entry, None), exc)))
                    continue
                if body is not HAS_TTL:
                    keep(RedisMessage(self, entry, body))
                    continue
            message = RedisMessage(self, entry, None)
            try:
                if may_expire(raw) and 0.0 < message.header.expires_at <= now:
                    expired.append(message)
                    continue
                if max_attempts is not None and message.attempts > max_attempts:
                    # Deliveries ended without a settlement (consumers that
                    # died or timed out) spent its attempts.
                    spent.append(message)
                    continue
                message.body = body_of(raw, serializer)
            except StoreCorruptError as exc:
                bad.append((entry[2], self._quarantine(message, exc)))
                continue
            keep(message)
        # All at once: one round trip each, not one per message.
        if expired:
            self._retire_taken(expired, None)
        if spent:
            self._retire_taken(spent, SPENT)
        return messages, bad

    def _retire_taken(self, messages: list[RedisMessage], reason: str | None) -> None:
        """Retire messages a take found expired (reason None; counted as
        expired) or with their attempts spent (reason SPENT; counted as
        dead-lettered), in one round trip: to the dead-letter queue with the
        attempts they had (the take is no delivery) and no TTL, as the LMDB
        store does, else dropped."""
        kind = "expired" if reason is None else "dead_lettered"
        target = self.dead_letter
        if target is None:
            self._count(kind, self._settle(messages))
            return
        calls = self._move_calls(
            target, [(m, _dead_record(m, None, reason, m.attempts - 1)) for m in messages]
        )
        with self._translated():
            done = self._scripts.dead_letter.run_many(calls)
        self._count(kind, sum(1 for reply in done if reply == 1))
        for reply in done:
            if isinstance(reply, Exception):
                raise reply

    def _quarantine(self, message: RedisMessage, error: StoreCorruptError) -> str:
        """Dead-letter a message that cannot be decoded; the queue it went to."""
        target = self.dead_letter or f"{self.name}.dead"
        try:
            raw = with_headers(message.record, {DECODE_ERROR_HEADER: str(error)})
        except StoreCorruptError:
            raw = message.record  # too damaged to change: kept as it is
        self._move(message, target, raw)
        self._count("dead_lettered")
        return target

    def _bad(self, bad: list[tuple[int, str]]) -> StoreCorruptError:
        listing = ", ".join(f"{message_id} (moved to {target!r})" for message_id, target in bad)
        return StoreCorruptError(f"queue {self.name!r}: cannot decode message {listing}")

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Take the next message at most once (it is deleted as it is
        returned). queue.Empty if none came within timeout; StoreCorruptError
        naming a message that could not be decoded (moved to the dead-letter
        queue)."""
        return self.get_many(1, block, timeout)[0]

    def get_nowait(self) -> Any:
        """get(block=False)"""
        return self.get(False)

    def get_many(
        self, max_items: int, block: bool = True, timeout: float | None = None
    ) -> list[Any]:
        """Take 1 to max_items messages at most once, waiting up to timeout
        for the first; queue.Empty if none came. Messages that cannot be
        decoded are dead-lettered; StoreCorruptError names them if no other
        message came."""
        _check_count(max_items)
        if block:
            check_timeout(timeout)
        messages, bad = self._take(max_items, timeout if block else 0.0)
        if not messages:
            raise self._bad(bad)
        self._settle(messages)
        bodies = [m.body for m in messages]
        with self._lock:
            self._counts["dequeued"] += len(bodies)
            self._unfinished += len(bodies)
        return bodies

    def reserve(self, timeout: float | None = None) -> RedisMessage:
        """Take the next message at least once: it stays stored until
        msg.ack(), and comes back if it is nacked, or not acked within the
        queue's visibility timeout. queue.Empty if none came within timeout;
        StoreCorruptError naming a message that could not be decoded."""
        check_timeout(timeout)
        messages, bad = self._take(1, timeout)
        if not messages:
            raise self._bad(bad)
        self._count("dequeued")
        return messages[0]

    def reserve_many(self, max_items: int, timeout: float | None = None) -> list[RedisMessage]:
        """Reserve 1 to max_items messages, waiting up to timeout for the
        first; [] if none came. Undecodable ones are dead-lettered."""
        _check_count(max_items)
        check_timeout(timeout)
        try:
            messages, _bad = self._take(max_items, timeout)
        except Empty:
            return []
        self._count("dequeued", len(messages))
        return messages

    def messages(self, timeout: float | None = None) -> Iterator[RedisMessage]:
        """Reserved messages until none comes within timeout (None: wait for
        ever) or the queue is shut down and empty."""
        return iter_messages(self, timeout)

    def consume(self, handler: Callable[[RedisMessage], object], **options: Any) -> Consumer:
        """Run handler(message) on worker threads for every message; returns
        the running Consumer (see flinq.Consumer for the options)."""
        return Consumer(self, handler, **options)

    # ---- settling -------------------------------------------------------------------------

    def _settle(self, messages: list[RedisMessage]) -> int:
        """Delete deliveries that are still ours; how many were. Without a
        visibility timeout nobody else can claim a delivery, so XACK does
        (and the stream is trimmed); with one, a script checks each is
        still this delivery (XPENDING: owner and count)."""
        if self._vt_ms:
            args: list[Any] = [self._context.consumer()]
            for message in messages:
                args.extend(message.delivery)
            with self._translated():
                return sum(self._scripts.ack(keys=self._keys, args=args))
        if not self.priority:  # one level
            by_level = {0: [message._entry[1] for message in messages]}
        else:
            by_level = {}
            for message in messages:
                level, stream_id = message._entry[:2]
                by_level.setdefault(level, []).append(stream_id)
        with self._translated():
            return self._ack_trimmed(by_level)

    def _ack_trimmed(self, by_level: dict[int, list[bytes]]) -> int:
        """XACK the stream ids of each level and trim the streams, in one
        MULTI (the ids go to XACK, not through a script's arguments, which
        cost more than the acks); then XDEL the ids the trim had to keep
        (acked out of order). How many were pending."""
        trim = self._scripts.trim
        streams = {level: stream_of(self._base, level) for level in by_level}
        commands: list[tuple[Any, ...]] = [("MULTI",)]
        for level, ids in by_level.items():
            commands.append(("XACK", streams[level], GROUP, *ids))
            commands.append(trim.command(self._keys, [level]))
        commands.append(("EXEC",))
        done = replies(self._client, commands)[-1]
        if isinstance(done, redis.exceptions.ExecAbortError):
            trim.load()  # refused before it ran (the server forgot the script)
            done = replies(self._client, commands)[-1]
        if isinstance(done, Exception):
            raise done
        acked = 0
        deletes: list[tuple[Any, ...]] = []
        for (level, ids), count, keep in zip(by_level.items(), done[::2], done[1::2], strict=True):
            acked += int(count)
            if isinstance(keep, redis.exceptions.NoScriptError):
                keep = trim(keys=self._keys, args=[level])  # acked already; trim now
            elif isinstance(keep, Exception):
                raise keep
            if keep is not None:
                least = _stream_order(keep)
                above = [stream_id for stream_id in ids if _stream_order(stream_id) >= least]
                if above:
                    deletes.append(("XDEL", streams[level], *above))
        if deletes:
            for reply in replies(self._client, deletes):
                if isinstance(reply, Exception):
                    raise reply
        return acked

    def ack_many(self, messages: list[Any]) -> int:
        """Ack the unsettled ones of messages (reserved from this queue) at
        once; how many were still in flight."""
        self._check()
        flying = [m for m in messages if m.settle()]
        if not flying:
            return 0
        acked = self._settle(flying)
        self._count("acked", acked)
        return acked

    def give_back(
        self, message: RedisMessage, requeue: bool, delay: float, error: BaseException | None
    ) -> bool:
        """A nack: ready again (after delay), or retired when requeue is
        False or its attempts are spent. False if no longer in flight."""
        self._check()
        attempts = message.attempts
        if not requeue or (self.max_attempts is not None and attempts >= self.max_attempts):
            reason = NACKED if not requeue else SPENT
            done = self.retire(message, None, error, reason)
        elif delay > 0:
            level, stream_id, count = message.delivery
            record = with_attempts(message.record, attempts)
            with self._translated():
                done = bool(
                    self._scripts.delay(
                        keys=self._keys,
                        args=[
                            self._context.consumer(),
                            level,
                            stream_id,
                            count,
                            message.id,
                            record,
                            max(1, math.ceil(delay * 1000)),
                        ],
                    )
                )
        else:
            done = self._return(message, message.delivery[2])
        if done:
            self._count("nacked")
        return done

    def release(self, message: RedisMessage) -> None:
        """Back in place, its delivery not counted."""
        self._check()
        if self._return(message, message.delivery[2] - 1):
            self._count("redelivered")

    def _return(self, message: RedisMessage, count: int) -> bool:
        level, stream_id, delivered = message.delivery
        with self._translated():
            return bool(
                self._scripts.give_back(
                    keys=self._keys,
                    args=[self._context.consumer(), level, stream_id, delivered, count],
                )
            )

    def retire(
        self,
        message: RedisMessage,
        queue: str | None,
        error: BaseException | None,
        reason: str,
    ) -> bool:
        """Move a delivered message to the dead-letter queue (queue, else
        the queue's own) with the reason in its headers, or drop it if there
        is none. False if it was no longer in flight."""
        self._check()
        target = queue or self.dead_letter
        if target is None:
            done = self._settle([message]) == 1
        else:
            done = self._move(
                message, target, _dead_record(message, error, reason, message.attempts)
            )
        if done:
            self._count("dead_lettered")
        return done

    def _move_calls(
        self, target: str, moves: list[tuple[RedisMessage, bytes]]
    ) -> list[tuple[list[Any], list[Any]]]:
        """The dead-letter script's (keys, args) that move each delivery of
        moves to queue target as its record."""
        keys = [self._base, self._context.keys.base(target), self._context.keys.queues]
        consumer = self._context.consumer()
        return [
            (keys, [consumer, *message.delivery, message.id, raw, target, _NEW_QUEUE_SETTINGS])
            for message, raw in moves
        ]

    def _move(self, message: RedisMessage, target: str, raw: bytes) -> bool:
        """Move a delivery to queue target as raw, at once; False if it was
        no longer ours."""
        ((keys, args),) = self._move_calls(target, [(message, raw)])
        with self._translated():
            return bool(self._scripts.dead_letter(keys=keys, args=args))

    # ---- the rest of the queue API ----------------------------------------------------------

    def counts(self) -> tuple[int, int, int]:
        """(ready, reserved, delayed) across every process."""
        self._check()
        with self._translated():
            ready, flying, delayed = self._scripts.counts(keys=self._keys, args=[])
        return int(ready), int(flying), int(delayed)

    def qsize(self) -> int:
        """Messages ready now (not counting those in flight or delayed)."""
        return self.counts()[0]

    def empty(self) -> bool:
        """True if no message is ready now."""
        return self.qsize() == 0

    def full(self) -> bool:
        """True if the queue is bounded and holds maxsize ready messages."""
        return self._maxsize > 0 and self.qsize() >= self._maxsize

    @property
    def maxsize(self) -> int:
        """The bound on ready messages; <= 0 means unbounded."""
        return self._maxsize

    def in_flight(self) -> int:
        """Messages reserved and not yet settled, by any process."""
        return self.counts()[1]

    def task_done(self) -> None:
        """Mark one message taken by get() in this process as processed."""
        with self._lock:
            if self._unfinished <= 0:
                raise ValueError("task_done() called too many times")
            self._unfinished -= 1
            if self._unfinished == 0:
                self._done.notify_all()

    def join(self) -> None:
        """Wait until the queue holds no message (ready, reserved or
        delayed, by any process) and every get() here was task_done()."""
        pause = 0.001
        while True:
            with self._lock:
                while self._unfinished:
                    self._done.wait()
            if self.counts() == (0, 0, 0):
                return
            time.sleep(pause)
            pause = min(pause * 2, _ROOM_POLL)

    def shutdown(self, immediate: bool = False) -> None:
        """As Queue.shutdown, for this process: puts raise ShutDown, gets
        raise it once nothing is ready (at once with immediate=True).
        Stored messages stay for other processes and the next open."""
        self._shutdown = True
        self._immediate = self._immediate or immediate
        with self._translated():
            self._client.xadd(f"{self._base}:wake", {"l": "shutdown"}, maxlen=16)

    @property
    def is_shutdown(self) -> bool:
        """True once shutdown() has been called."""
        return self._shutdown

    def purge(self) -> int:
        """Delete every message, ready, reserved or delayed. Returns how many."""
        self._check()
        with self._translated():
            return int(
                self._scripts.drop(
                    keys=[self._base, self._context.keys.queues], args=[self.name, "purge"]
                )
            )

    def stats(self) -> dict[str, Any]:
        """The keys of flinq.Queue.stats(): depth (ready), in_flight
        (reserved or delayed) and maxsize for the queue as a whole; the
        counters for what this process did; lag (seconds since the oldest
        stored message was put). Latency and rates are not measured (None)."""
        ready, flying, delayed = self.counts()
        with self._lock:
            counts = dict(self._counts)
            unfinished = self._unfinished
        return {
            "depth": ready,
            "in_flight": flying + delayed,
            "maxsize": self._maxsize,
            "high_water": ready,
            "unfinished": unfinished + flying + delayed,
            **counts,
            "lag": self._lag(),
            "latency_p50": None,
            "latency_p99": None,
            "enqueue_rate_1s": None,
            "dequeue_rate_1s": None,
            "enqueue_rate_10s": None,
            "dequeue_rate_10s": None,
            "enqueue_rate_60s": None,
            "dequeue_rate_60s": None,
        }

    def _lag(self) -> float:
        """Seconds since the oldest entry of any level was added (stream ids
        start with the server's clock, in ms)."""
        with self._translated():
            levels = self._client.zrange(f"{self._base}:levels", 0, -1)
            pipe = self._client.pipeline(transaction=False)
            for level in levels:
                pipe.xrange(f"{self._base}:s:{level.decode()}", count=1)
            firsts = pipe.execute()
            now_s, now_us = self._client.time()
        oldest = [int(entries[0][0].split(b"-")[0]) for entries in firsts if entries]
        if not oldest:
            return 0.0
        now = float(now_s) + float(now_us) / 1e6
        return max(0.0, now - min(oldest) / 1000)

    @property
    def async_q(self) -> Any:
        """This queue's asyncio face (flinq.aio.async_queue), polled."""
        from flinq.aio import async_queue

        return async_queue(self)

    def __repr__(self) -> str:
        state = " closed" if self._detached else ""
        return f"<flinq.RedisQueue {self.name!r}{state}>"


def _stream_order(stream_id: bytes) -> tuple[int, int]:
    """A stream entry id ("ms-seq") as numbers, which sort as the stream does."""
    ms, _, seq = stream_id.partition(b"-")
    return int(ms), int(seq)


def _entries(reply: list[Any]) -> list[_Entry]:
    """The entries of a take script's reply."""
    return [
        (int(reply[i]), reply[i + 1], int(reply[i + 2]), reply[i + 3], int(reply[i + 4] or 1))
        for i in range(1, 1 + 5 * int(reply[0]), 5)
    ]
