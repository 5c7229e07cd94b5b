"""Message ids: one sequence per store, so that keys are unique across queues.

Ids are handed out from blocks of BLOCK consecutive numbers: the plain
integer `next` (past every id of every block handed out so far) moves
under a lock once a block; within a block, next() on a range iterator
takes one id atomically under the GIL, at a tenth of a lock's cost. Each
thread's ids increase (blocks only move forward); a block left unfinished
when another replaces it leaves a gap, as a restart does. The store's meta
database records where the next open starts numbering (next_seq):
past every key ever committed, reserved ahead in steps of SEQ_RESERVE so
that most commits need not write it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

__all__ = ["BLOCK", "SEQ_RESERVE", "Ids"]

# How far ahead a commit reserves ids in meta's next_seq. A commit writes
# next_seq only when it holds a key at or past the reserved value: a sync
# put then dirties one page fewer (and saves a B-tree update) in all but one
# commit in SEQ_RESERVE. The price is a gap of up to this many ids after a
# restart; 64-bit ids do not run out over that.
SEQ_RESERVE = 1 << 16
#: Ids handed out per lock acquisition.
BLOCK = 1 << 12


class Ids:
    """The next id of a store, and how far ahead the stored next_seq is."""

    __slots__ = ("_block", "_lock", "next", "reserved")

    def __init__(self, start: int) -> None:
        self._lock = threading.Lock()
        #: Past every id handed out so far (in blocks).
        self.next = start
        #: next_seq as stored: ids below it need no write to meta.
        self.reserved = start
        self._block: Iterator[int] = iter(())

    def take(self) -> int:
        """A new id."""
        try:
            return next(self._block)
        except StopIteration:
            with self._lock:
                first = self.next
                self.next = first + BLOCK
                self._block = block = iter(range(first, first + BLOCK))
            return next(block)

    def take_many(self, n: int) -> range:
        """n new ids, in order (a block of their own)."""
        with self._lock:
            first = self.next
            self.next = first + n
            self._block = iter(())  # later ids come after these
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
