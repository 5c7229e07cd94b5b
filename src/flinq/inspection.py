"""What every durable backend's `flinq stats`, `peek`, `purge` and `requeue`
share: the shape of stats' report and of peek's rows, how a queue's stored
records are counted, the names peek gives the ways a body is stored, and
the KeyError an unknown queue raises, which lists the queues the store has."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flinq.codec import TAG_BYTEARRAY, TAG_BYTES, TAG_SERIALIZED, TAG_STR, Record, decode_record
from flinq.errors import StoreCorruptError
from flinq.settings import QueueSettings

__all__ = [
    "BODY_TYPES",
    "QueueTally",
    "UnknownQueueError",
    "body_type",
    "message_row",
    "queue_record",
    "require_queue",
    "store_report",
]

#: How peek names each way a body is stored (its record's tag).
BODY_TYPES = {
    TAG_BYTES: "bytes",
    TAG_BYTEARRAY: "bytearray",
    TAG_STR: "str",
    TAG_SERIALIZED: "serialized",
}

#: How many queue names an UnknownQueueError lists before it gives the count.
_LISTED = 10


def body_type(tag: int) -> str:
    """peek's body_type for a record's tag; "tag N" for a tag flinq does not know."""
    return BODY_TYPES.get(tag, f"tag {tag}")


class UnknownQueueError(KeyError):
    """No queue of that name; the message lists the store's queues."""

    def __str__(self) -> str:
        # KeyError's own would show the message quoted, as a key's repr.
        return str(self.args[0])


def require_queue(
    stored: QueueSettings | None,
    name: str,
    where: str,
    names: Callable[[], Iterable[str]],
) -> QueueSettings:
    """stored, queue name's settings as read alone; if it is None (no such
    queue), UnknownQueueError naming the store (where) and listing its
    queues from names() (read only then, and only the names, so that a
    damaged entry of another queue cannot change the answer)."""
    if stored is not None:
        return stored
    known = sorted(names())
    if not known:
        listing = "it has no queues"
    else:
        listing = "queues: " + ", ".join(known[:_LISTED])
        if len(known) > _LISTED:
            listing += f", ... ({len(known)} in all)"
    raise UnknownQueueError(f"no queue {name!r} in {where} ({listing})")


def queue_record(raw: bytes, queue: str) -> Record:
    """The header of a stored record of queue; StoreCorruptError naming the
    queue if it is damaged."""
    try:
        return decode_record(raw)
    except StoreCorruptError as exc:
        raise StoreCorruptError(f"queue {queue!r}: {exc}") from exc


def message_row(
    message_id: int, priority: int, raw: bytes, record: Record, delivered: int = 0
) -> dict[str, Any]:
    """peek's row of a stored record (raw, with its header record): id,
    priority, attempts (the record's, plus delivered: deliveries it does
    not count yet), enqueued_at, expires_at (None: no TTL), headers,
    body_type (see BODY_TYPES) and body (the stored bytes, undecoded)."""
    return {
        "id": message_id,
        "priority": priority,
        "attempts": record.attempts + delivered,
        "enqueued_at": record.enqueued_at,
        "expires_at": record.expires_at or None,
        "headers": record.headers,
        "body_type": body_type(record.tag),
        "body": raw[record.body_offset :],
    }


class QueueTally:
    """What `flinq stats` counts of one queue's stored records, as of now
    (Unix time)."""

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.now = now
        self.depth = self.attempted = self.expired = 0
        self.oldest: float | None = None

    def see(self, raw: bytes, delivered: bool = False) -> None:
        """Count one stored record; delivered: it is in flight now, so it
        counts as attempted whatever its record says. StoreCorruptError
        naming the queue if it is damaged."""
        record = queue_record(raw, self.name)
        self.depth += 1
        self.attempted += delivered or record.attempts > 0
        self.expired += 0.0 < record.expires_at <= self.now
        if self.oldest is None or record.enqueued_at < self.oldest:
            self.oldest = record.enqueued_at

    def row(self, priority: bool, in_flight: int | None, dead_letter: str | None) -> dict[str, Any]:
        """The queue's row of the report (dead_letters: filled in by store_report)."""
        oldest = self.oldest
        return {
            "name": self.name,
            "priority": priority,
            "depth": self.depth,
            "in_flight": in_flight,
            "dead_letter": dead_letter,
            "dead_letters": None,
            "attempted": self.attempted,
            "expired": self.expired,
            "oldest_enqueued_at": oldest,
            "oldest_age_seconds": None if oldest is None else max(0.0, self.now - oldest),
        }


def store_report(
    where: str,
    now: float,
    owner: dict[str, Any] | None,
    bytes_on_disk: int,
    queues: list[dict[str, Any]],
) -> dict[str, Any]:
    """`flinq stats`' report of a store from its queues' rows (QueueTally.row),
    each row's dead_letters set to its dead-letter queue's depth (0 for a
    queue the store does not have)."""
    depths = {q["name"]: q["depth"] for q in queues}
    for q in queues:
        if q["dead_letter"] is not None:
            q["dead_letters"] = depths.get(q["dead_letter"], 0)
    return {
        "path": where,
        "as_of": now,
        "owner": owner,
        "bytes_on_disk": bytes_on_disk,
        "queues": queues,
    }
