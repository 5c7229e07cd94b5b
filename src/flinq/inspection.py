"""What every durable backend's `flinq stats`, `peek`, `purge` and `requeue`
share: the names peek gives the ways a body is stored, and the KeyError an
unknown queue raises, which lists the queues the store has."""

from __future__ import annotations

from collections.abc import Mapping

from flinq.codec import TAG_BYTEARRAY, TAG_BYTES, TAG_SERIALIZED, TAG_STR
from flinq.settings import QueueSettings

__all__ = ["BODY_TYPES", "UnknownQueueError", "body_type", "require_queue"]

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


def require_queue(settings: Mapping[str, QueueSettings], name: str, where: str) -> QueueSettings:
    """The settings of queue name, from every queue's settings by name;
    UnknownQueueError naming the store (where) and its queues if there is
    no such queue."""
    if name in settings:
        return settings[name]
    known = sorted(settings)
    if not known:
        listing = "it has no queues"
    else:
        listing = "queues: " + ", ".join(known[:_LISTED])
        if len(known) > _LISTED:
            listing += f", ... ({len(known)} in all)"
    raise UnknownQueueError(f"no queue {name!r} in {where} ({listing})")
