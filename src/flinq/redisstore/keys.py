"""Where a Redis store keeps what, under its prefix (default "flinq"):

  <prefix>:meta                  hash: format, serializer
  <prefix>:seq                   message ids: a counter (INCRBY)
  <prefix>:queues                hash: queue name -> settings (JSON)
  <prefix>:q:<name>:s:<level>    stream of one priority level (FIFO queues: level 0),
                                 with the consumer group GROUP; an entry is one
                                 field, the message id, whose value is its record
  <prefix>:q:<name>:levels       sorted set of the levels in use (score = level)
  <prefix>:q:<name>:delayed      sorted set: id -> when a delayed nack is due (ms, server clock)
  <prefix>:q:<name>:held         hash: id -> "<level>:<record>" of a delayed message
  <prefix>:q:<name>:cursor       hash: level -> where the visibility-timeout scan resumes
  <prefix>:q:<name>:wake         stream written (capped) when a waiter should look again

A queue name is percent-encoded in its keys (every byte but letters, digits
and "_.-~"), so two names can never share a key.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["GROUP", "READY_OWNER", "StoreKeys", "queue_base", "stream_of"]

#: The consumer group every level stream has.
GROUP = "flinq"
#: The consumer that owns messages given back (nacked, released, or in
#: flight at a store's close): the next reserve claims them first.
READY_OWNER = "flinq:ready"


def queue_base(prefix: str, name: str) -> str:
    """The common start of every key of queue name."""
    return f"{prefix}:q:{quote(name, safe='')}"


class StoreKeys:
    """The store-wide keys under prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.meta = f"{prefix}:meta"
        self.seq = f"{prefix}:seq"
        self.queues = f"{prefix}:queues"

    def base(self, name: str) -> str:
        """queue_base(self.prefix, name)"""
        return queue_base(self.prefix, name)

    def stream(self, name: str, level: int) -> str:
        """The stream of queue name at priority level."""
        return stream_of(self.base(name), level)


def stream_of(base: str, level: int) -> str:
    """The stream at priority level of the queue whose base key is base."""
    return f"{base}:s:{level}"
