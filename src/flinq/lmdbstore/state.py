"""Whether a store can still be used, and if not, why: the one place every
part of a store (its log, writer and queues) asks."""

from __future__ import annotations

from flinq.errors import StoreClosedError, StoreForkedError, StoreWriteError

__all__ = ["StoreState"]


class StoreState:
    """A store's life: open, closing (no new work), closed; forked (this is
    a child's copy); failed (its writer thread died)."""

    __slots__ = ("closed", "closing", "failure", "forked", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        #: No new work is accepted (set by close(), fork and writer failure):
        #: the one flag hot paths read.
        self.closing = False
        self.closed = False
        self.forked = False
        self.failure: BaseException | None = None

    def check(self) -> None:
        """Raise why the store cannot be used, if it cannot."""
        if self.closing:
            raise self.error()

    def error(self) -> Exception:
        """The error for using the store now that it is closing or closed."""
        if self.forked:
            return StoreForkedError(
                f"the store at {self.path} was opened before fork(); open it again here"
            )
        if self.failure is not None and not self.closed:
            error = StoreWriteError(
                f"the writer thread of {self.path} failed ({self.failure!r}): close the store"
            )
            error.__cause__ = self.failure
            return error
        return StoreClosedError(f"the store at {self.path} is closed")

    def fail(self, failure: BaseException) -> None:
        """The writer thread died: refuse new work, with failure as the reason."""
        self.failure = failure
        self.closing = True
