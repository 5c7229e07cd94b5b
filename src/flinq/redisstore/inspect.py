"""What `flinq stats` and `flinq peek` show of a Redis store: its queues and
their messages, read from the server as they are (any process may be
changing them meanwhile)."""

from __future__ import annotations

import json
import time
from typing import Any

from flinq.codec import decode_record
from flinq.errors import StoreCorruptError
from flinq.inspection import body_type, require_queue
from flinq.redisstore.keys import GROUP, READY_OWNER, StoreKeys
from flinq.settings import QueueSettings

__all__ = ["all_settings", "peek", "report"]

_CHUNK = 1000


def all_settings(client: Any, keys: StoreKeys) -> dict[str, QueueSettings]:
    """Every queue's stored settings, by name, in one read."""
    return {
        name.decode(): QueueSettings.from_dict(json.loads(raw))
        for name, raw in client.hgetall(keys.queues).items()
    }


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


class _Tally:
    """What report() counts of one queue's records."""

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.now = now
        self.depth = self.attempted = self.expired = self.in_flight = 0
        self.oldest: float | None = None

    def see(self, raw: bytes, delivered: bool) -> None:
        try:
            record = decode_record(raw)
        except StoreCorruptError as exc:
            raise StoreCorruptError(f"queue {self.name!r}: {exc}") from exc
        self.depth += 1
        self.attempted += delivered or record.attempts > 0
        self.expired += 0.0 < record.expires_at <= self.now
        if self.oldest is None or record.enqueued_at < self.oldest:
            self.oldest = record.enqueued_at


def report(client: Any, keys: StoreKeys, where: str) -> dict[str, Any]:
    """Per queue: depth (stored messages: ready, in flight, delayed),
    in_flight (reserved or delayed, by any process), attempted (delivered
    at least once and not acked), expired (TTL passed, not yet retired),
    the oldest message's enqueue time and age, the dead-letter queue and
    how many messages it holds."""
    now = time.time()
    queues = []
    for name, settings in sorted(all_settings(client, keys).items()):
        base = keys.base(name)
        tally = _Tally(name, now)
        for level in _levels(client, base):
            stream = f"{base}:s:{level}"
            pending, given_back = _pending(client, stream)
            tally.in_flight += pending - given_back
            rows = client.xpending_range(stream, GROUP, "-", "+", pending) if pending else []
            pending_ids = {row["message_id"] for row in rows}
            for stream_id, fields in _entries(client, stream):
                ((_id, raw),) = fields.items()
                tally.see(raw, stream_id in pending_ids)
        for raw in client.hvals(f"{base}:held"):
            tally.in_flight += 1
            tally.see(raw.partition(b":")[2], True)
        oldest = tally.oldest
        queues.append(
            {
                "name": name,
                "priority": settings.priority,
                "depth": tally.depth,
                "in_flight": tally.in_flight,
                "dead_letter": settings.dead_letter,
                "dead_letters": None,
                "attempted": tally.attempted,
                "expired": tally.expired,
                "oldest_enqueued_at": oldest,
                "oldest_age_seconds": None if oldest is None else max(0.0, now - oldest),
            }
        )
    depths = {q["name"]: q["depth"] for q in queues}
    for q in queues:
        if q["dead_letter"] is not None:
            q["dead_letters"] = depths.get(q["dead_letter"], 0)
    memory = client.info("memory")
    return {
        "path": where,
        "as_of": now,
        "owner": None,
        "bytes_on_disk": int(memory.get("used_memory", 0)),
        "queues": queues,
    }


def peek(client: Any, keys: StoreKeys, where: str, name: str, n: int) -> list[dict[str, Any]]:
    """The first n stored messages of queue name in delivery order (levels
    lowest first, then delayed ones by due time): id, priority, attempts,
    enqueued_at, expires_at, headers, body_type and body (stored bytes).
    UnknownQueueError (a KeyError, from flinq.inspection) if there is no
    such queue."""
    require_queue(all_settings(client, keys), name, where)
    base = keys.base(name)
    out: list[dict[str, Any]] = []

    def row(level: int, message_id: int, raw: bytes, delivered: int) -> dict[str, Any]:
        record = decode_record(raw)
        return {
            "id": message_id,
            "priority": level,
            "attempts": record.attempts + delivered,
            "enqueued_at": record.enqueued_at,
            "expires_at": record.expires_at or None,
            "headers": record.headers,
            "body_type": body_type(record.tag),
            "body": raw[record.body_offset :],
        }

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
            out.append(row(int(level), int(message_id), raw, counts.get(stream_id, 0)))
    if len(out) >= n:
        return out
    for message_id in client.zrange(f"{base}:delayed", 0, n - len(out) - 1):
        held = client.hget(f"{base}:held", message_id)
        if held is not None and len(out) < n:
            level, _, raw = held.partition(b":")
            out.append(row(int(level), int(message_id), raw, 0))
    return out
