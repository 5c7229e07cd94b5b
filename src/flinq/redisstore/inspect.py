"""What `flinq stats` and `flinq peek` show of a Redis store: its queues and
their messages, read from the server as they are (any process may be
changing them meanwhile)."""

from __future__ import annotations

import time
from typing import Any

from flinq.inspection import QueueTally, message_row, queue_record, require_queue, store_report
from flinq.redisstore.keys import GROUP, READY_OWNER, StoreKeys
from flinq.settings import QueueSettings, decode_settings, decode_stored_queues

__all__ = ["all_settings", "peek", "queue_settings", "report"]

_CHUNK = 1000


def all_settings(client: Any, keys: StoreKeys, where: str) -> dict[str, QueueSettings]:
    """Every queue's stored settings, by name, in one read; StoreCorruptError
    if any are damaged."""
    return decode_stored_queues(client.hgetall(keys.queues).items(), where)


def queue_settings(client: Any, keys: StoreKeys, where: str, name: str) -> QueueSettings:
    """Queue name's stored settings, read alone; UnknownQueueError (a
    KeyError, from flinq.inspection) listing the store's queues if there
    is no such queue, StoreCorruptError if they are damaged."""
    raw = client.hget(keys.queues, name)
    stored = None if raw is None else decode_settings(raw, name, where)
    return require_queue(stored, name, where, lambda: _names(client, keys))


def _names(client: Any, keys: StoreKeys) -> list[str]:
    """The queues' names (a name that is not UTF-8, which only damage
    leaves, with replacement characters)."""
    return [name.decode(errors="replace") for name in client.hkeys(keys.queues)]


def _levels(client: Any, base: str) -> list[str]:
    return [level.decode() for level in client.zrange(f"{base}:levels", 0, -1)]


def _entries(client: Any, stream: str) -> Any:
    """Every (stream id, fields) of stream, read in chunks."""
    start = "-"
    while True:
        chunk = client.xrange(stream, start, "+", count=_CHUNK)
        yield from chunk
        if len(chunk) < _CHUNK:
            return
        start = "(" + chunk[-1][0].decode()


def _pending(client: Any, stream: str) -> tuple[int, int]:
    """(entries pending, of which given back and ready) of a level's stream."""
    summary = client.xpending(stream, GROUP)
    given_back = 0
    for consumer in summary.get("consumers") or []:
        if consumer["name"] == READY_OWNER.encode():
            given_back = int(consumer["pending"])
    return int(summary["pending"]), given_back


def report(client: Any, keys: StoreKeys, where: str) -> dict[str, Any]:
    """Per queue: depth (stored messages: ready, in flight, delayed),
    in_flight (reserved or delayed, by any process), attempted (delivered
    at least once and not acked), expired (TTL passed, not yet retired),
    the oldest message's enqueue time and age, the dead-letter queue and
    how many messages it holds."""
    now = time.time()
    queues = []
    for name, settings in sorted(all_settings(client, keys, where).items()):
        base = keys.base(name)
        tally = QueueTally(name, now)
        in_flight = 0
        for level in _levels(client, base):
            stream = f"{base}:s:{level}"
            pending, given_back = _pending(client, stream)
            in_flight += pending - given_back
            rows = client.xpending_range(stream, GROUP, "-", "+", pending) if pending else []
            pending_ids = {row["message_id"] for row in rows}
            for stream_id, fields in _entries(client, stream):
                ((_id, raw),) = fields.items()
                tally.see(raw, stream_id in pending_ids)
        for raw in client.hvals(f"{base}:held"):
            in_flight += 1
            tally.see(raw.partition(b":")[2], True)
        queues.append(tally.row(settings.priority, in_flight, settings.dead_letter))
    memory = client.info("memory")
    return store_report(where, now, None, int(memory.get("used_memory", 0)), queues)


def peek(client: Any, keys: StoreKeys, where: str, name: str, n: int) -> list[dict[str, Any]]:
    """The first n stored messages of queue name in delivery order (levels
    lowest first, then delayed ones by due time): id, priority, attempts,
    enqueued_at, expires_at, headers, body_type and body (stored bytes).
    UnknownQueueError (a KeyError, from flinq.inspection) if there is no
    such queue."""
    queue_settings(client, keys, where, name)
    base = keys.base(name)
    out: list[dict[str, Any]] = []
    for level in _levels(client, base):
        if len(out) >= n:
            return out
        stream = f"{base}:s:{level}"
        pending = _pending(client, stream)[0]
        counts = (
            {
                r["message_id"]: int(r["times_delivered"])
                for r in client.xpending_range(stream, GROUP, "-", "+", pending)
            }
            if pending
            else {}
        )
        for stream_id, fields in client.xrange(stream, count=n - len(out)):
            ((message_id, raw),) = fields.items()
            delivered = counts.get(stream_id, 0)
            out.append(
                message_row(int(message_id), int(level), raw, queue_record(raw, name), delivered)
            )
    if len(out) >= n:
        return out
    for message_id in client.zrange(f"{base}:delayed", 0, n - len(out) - 1):
        held = client.hget(f"{base}:held", message_id)
        if held is not None and len(out) < n:
            level, _, raw = held.partition(b":")
            out.append(message_row(int(message_id), int(level), raw, queue_record(raw, name)))
    return out
