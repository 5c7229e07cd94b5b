"""Message ids: one sequence per store, so that keys are unique across queues.

Ids are handed out in order from a plain integer under a lock. The store's
meta database records where the next open starts numbering (next_seq):
past every key ever committed, reserved ahead in steps of SEQ_RESERVE so
that most commits need not write it.
"""

from __future__ import annotations

import threading

__all__ = ["SEQ_RESERVE", "Ids"]

# How far ahead a commit reserves ids in meta's next_seq. A commit writes
# next_seq only when it holds a key at or past the reserved value: a sync
# put then dirties one page fewer (and saves a B-tree update) in all but one
# commit in SEQ_RESERVE. The price is a gap of up to this many ids after a
# restart; 64-bit ids do not run out over that.
SEQ_RESERVE = 1 << 16


class Ids:
    """The next id of a store, and how far ahead the stored next_seq is."""

    __slots__ = ("_lock", "next", "reserved")

    def __init__(self, start: int) -> None:
        self._lock = threading.Lock()
        #: The id take() returns next: past every id taken so far.
        self.next = start
        #: next_seq as stored: ids below it need no write to meta.
        self.reserved = start

    def take(self) -> int:
        """A new id."""
        with self._lock:
            value = self.next
            self.next = value + 1
        return value

    def take_many(self, n: int) -> range:
        """n new ids, in order."""
        with self._lock:
            first = self.next
            self.next = first + n
        return range(first, first + n)

    def to_reserve(self) -> int | None:
        """The next_seq a commit must store (past every id taken so far,
        reserved ahead), or None if the stored one still covers them."""
        upto = self.next
        return upto + SEQ_RESERVE if upto > self.reserved else None

    def stored(self, next_seq: int) -> None:
        """A commit stored next_seq."""
        self.reserved = max(self.reserved, next_seq)

    def floor(self) -> int:
        """A next_seq for another transaction that writes keys: past every
        id taken, never below the reservation already stored."""
        return max(self.next, self.reserved)
