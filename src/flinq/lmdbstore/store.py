"""The LMDB store: named durable queues in one LMDB environment, mirrored
by one writer thread.

Memory first, log behind: while a store runs, each queue's in-memory core
(a flinq.Queue or PriorityQueue) is what consumers see; every change is
also appended to the store's pending log (log.py), and the writer thread
(writer.py) commits the log to LMDB in batches. After a restart, LMDB is
the truth: opening a store reloads every stored message in delivery order.
This module puts the parts together; each lives in its own module.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Literal

from flinq.codec import Serializer, agree_serializer, resolve_serializer, serializer_name
from flinq.errors import (
    StoreCorruptError,
    StoreError,
    StoreNotFoundError,
    StorePermissionError,
    StoreWriteError,
)
from flinq.lmdbstore import inspect, lifecycle
from flinq.lmdbstore.files import (
    DATA_FILE,
    LMDB_LOCK_FILE,
    LOCK_FILE,
    PathClaim,
    check_directory,
    is_temporary,
    open_private,
)
from flinq.lmdbstore.ids import Ids
from flinq.lmdbstore.layout import Layout
from flinq.lmdbstore.log import PendingLog
from flinq.lmdbstore.queue import DurableQueue, QueueContext
from flinq.lmdbstore.scheduler import Scheduler
from flinq.lmdbstore.state import StoreState
from flinq.lmdbstore.status import STATUS_FILE, StatusFile
from flinq.lmdbstore.verify import (
    CLEAN_FILE,
    SESSION_FILE,
    check_before_open,
    forget_session,
    mark_clean,
)
from flinq.lmdbstore.writer import Writer
from flinq.protocols import OpensQueues
from flinq.settings import (
    QueueSettings,
    merge_settings,
)

__all__ = ["MAX_FLUSH_INTERVAL", "Store"]

# The longest flush_interval: a longer one is a mistake (a store that never
# commits on its own), and a timeout the platform's locks cannot take.
MAX_FLUSH_INTERVAL = 3600.0

# Files a store directory may hold besides data.mdb (and write_private's
# temporary files): a directory with anything else is not a store.
_OWN_FILES = frozenset(
    {
        LOCK_FILE,
        CLEAN_FILE,
        SESSION_FILE,
        STATUS_FILE,
        STATUS_FILE + ".tmp",
        LMDB_LOCK_FILE,
        DATA_FILE,
    }
)


class Store(OpensQueues[DurableQueue]):
    """One LMDB environment holding named durable queues, with one writer thread.

    durability="batch": put() returns once the message is in memory and in
    the writer's pending log; the writer commits (and fsyncs) a batch when it
    reaches batch_size operations or flush_interval seconds, whichever comes
    first. flush() waits until everything put before it is on disk.
    durability="sync": put() returns only after the commit holding it is on
    disk; concurrent producers share commits.

    The pending log holds at most max_pending operations: producers wait for
    room (or get queue.Full without blocking), so a slow disk is backpressure,
    not unbounded memory. serializer stores bodies other than bytes,
    bytearray, memoryview and str: "pickle" (the default for a new store:
    never open a store written by someone you do not trust), "json", "raw"
    (refuse anything else), or an object with dumps() and loads(). The store
    records its serializer; None (the default) uses it, and another is
    refused with ValueError.

    A Store is a context manager; close() commits what is pending and stops
    the writer. Stores still open at interpreter exit are closed then.
    readonly=True opens without a writer, for inspection while another
    process owns the store.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Literal["batch", "sync"] = "batch",
        flush_interval: float = 0.005,
        map_size: int = 64 << 20,
        serializer: str | Serializer | None = None,
        max_pending: int = 262_144,
        batch_size: int = 16_384,
        readonly: bool = False,
    ) -> None:
        if durability not in ("batch", "sync"):
            raise ValueError(f"durability must be 'batch' or 'sync', not {durability!r}")
        if not isinstance(flush_interval, int | float) or isinstance(flush_interval, bool):
            raise TypeError("flush_interval must be a number of seconds")
        if not 0 < flush_interval <= MAX_FLUSH_INTERVAL:
            raise ValueError(
                f"flush_interval must be more than 0 and at most {MAX_FLUSH_INTERVAL:g} seconds"
            )
        for name, value in (
            ("map_size", map_size),
            ("max_pending", max_pending),
            ("batch_size", batch_size),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int")
            if value <= 0:
                raise ValueError(f"{name} must be positive")
        given = None if serializer is None else resolve_serializer(serializer)
        # The real path names the store: a symlink to an open store is that store.
        self.path = os.path.realpath(os.fspath(path))
        self.durability = durability
        self.readonly = readonly
        self.flush_interval = float(flush_interval)
        self._pid = os.getpid()
        self._state = StoreState(self.path)
        self._queues: dict[str, DurableQueue] = {}
        self._queues_lock = threading.RLock()  # one DurableQueue per name
        self._claim = self._claim_directory()
        try:
            self._layout = Layout(self.path, map_size=map_size, readonly=readonly)
        except BaseException:
            self._claim.release()
            raise
        try:
            self.serializer: Serializer = self._agree_serializer(given)
        except BaseException:
            self._layout.close()
            self._claim.release()
            raise
        self._ids = Ids(self._layout.next_seq)
        self._log = PendingLog(
            self._layout,
            self._ids,
            self._state,
            sync=durability == "sync",
            max_pending=max_pending,
            batch_size=batch_size,
        )
        self._scheduler = Scheduler(self._log.wake)
        self._status = StatusFile(self.path, self._pid)
        self._writer: Writer | None = None
        if not readonly:
            self._writer = Writer(
                f"flinq-writer:{self.path}",
                self._log,
                self._scheduler,
                self.flush_interval,
                self._publish_status,
                self._writer_failed,
            )
            self._writer.start()
        lifecycle.opened(self)

    # ---- opening -------------------------------------------------------------

    def _claim_directory(self) -> PathClaim:
        """Claim the directory (creating it for a writer) and, for a writer,
        create LMDB's files without following links, then check the data
        file: everything before LMDB opens it."""
        path = self.path
        if self.readonly:
            claim = PathClaim(path, readonly=True)
            if not os.path.exists(os.path.join(path, DATA_FILE)):
                raise StoreNotFoundError(f"{path} is not a flinq store (no {DATA_FILE})")
            return claim
        if os.path.exists(path) and not os.path.isdir(path):
            raise StoreCorruptError(f"{path} is not a directory")
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except PermissionError as exc:
            raise StorePermissionError(f"cannot create the store at {path}: {exc}") from exc
        check_directory(path)
        others = {e for e in os.listdir(path) if e not in _OWN_FILES and not is_temporary(e)}
        if others and DATA_FILE not in os.listdir(path):
            raise StoreNotFoundError(f"{path} is not a flinq store (it holds other files)")
        claim = PathClaim(path, readonly=False)
        try:
            # LMDB follows symbolic links: create its files here first, refusing one planted.
            for name in (DATA_FILE, LMDB_LOCK_FILE):
                os.close(open_private(os.path.join(path, name)))
            check_before_open(path)
        except BaseException:
            claim.release()
            raise
        return claim

    def _agree_serializer(self, given: Serializer | None) -> Serializer:
        """The serializer to use (see codec.agree_serializer); a store from
        before flinq recorded its serializer records the one it gets."""
        stored = self._layout.serializer
        serializer = agree_serializer(stored, given, self.path, self.readonly)
        if stored is None and not self.readonly:
            self._layout.record_serializer(serializer_name(serializer))
        return serializer

    # ---- queues ---------------------------------------------------------------

    def _check_open(self) -> None:
        self._state.check()

    def _create_queue(self, name: str, given: dict[str, Any]) -> DurableQueue:
        def update(stored: QueueSettings | None) -> QueueSettings:
            return merge_settings(name, stored, given)

        settings, handle = self._layout.ensure_queue(name, update)
        queue = DurableQueue(name, settings, handle, self._context())
        self._queues[name] = queue
        return queue

    def _context(self) -> QueueContext:
        return QueueContext(
            state=self._state,
            log=self._log,
            ids=self._ids,
            scheduler=self._scheduler,
            layout=self._layout,
            serializer=self.serializer,
            open_queue=self.queue,
        )

    def queues(self) -> list[str]:
        """Names of the queues in the store, sorted."""
        self._state.check()
        return self._layout.names()

    def open_queues(self) -> dict[str, DurableQueue]:
        """The queues opened through this Store, by name."""
        with self._queues_lock:
            return dict(self._queues)

    def delete_queue(self, name: str) -> None:
        """Delete queue name and every message in it; KeyError if there is none."""
        self._state.check()
        with self._queues_lock:
            queue = self._queues.pop(name, None)
            if queue is not None:
                queue.detach()
            self.flush()  # nothing for this queue may be left in the log
            self._layout.delete_queue(name)

    # ---- inspection and administration (flinq stats, peek, purge, requeue) ----

    def inspect(self) -> dict[str, Any]:
        """What the store holds, per queue, as committed (see flinq.admin)."""
        self._state.check()
        return inspect.report(self._layout, self.path)

    def peek(self, name: str, n: int) -> list[dict[str, Any]]:
        """The first n stored messages of queue name, left in place (see flinq.admin)."""
        self._state.check()
        return inspect.peek(self._layout, self.path, name, n)

    def purge_queue(self, name: str) -> int:
        """Delete every stored message of a queue not open in this Store."""
        self._check_closed_queues(name)
        return inspect.purge(self._layout, self._ids, self.path, name)

    def move_messages(self, source: str, target: str) -> int:
        """Move every message of queue source to the end of queue target
        (neither open in this Store), all or none; returns how many."""
        self._check_closed_queues(source, target)
        return inspect.move(self._layout, self._ids, self.path, source, target)

    def _check_closed_queues(self, *names: str) -> None:
        self._state.check()
        if self.readonly:
            raise StoreError("a store opened with readonly=True cannot be changed")
        for name in names:
            if name in self._queues:  # its messages in memory would no longer match
                raise StoreError(f"queue {name!r} is open in this Store: use that queue")

    # ---- writing ----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything logged before this call is on disk, and
        the status file (what `flinq stats` shows of messages in flight) is
        up to date.

        Raises StoreWriteError if it cannot be committed (the disk is full,
        say); what was pending stays pending and is retried.
        """
        self._state.check()
        if self.readonly:
            return
        log = self._log
        log.commit_all(timeout)
        error = log.write_error if log.ops else None
        if error is not None:
            raise StoreWriteError(f"cannot write to {self.path}: {error}") from error
        self._publish_status()

    def _publish_status(self) -> None:
        """Writer thread: what only this process knows, for `flinq stats`."""
        # Copied before the status lock is taken: delete_queue() holds the
        # queues' lock while it flushes (and so publishes).
        queues = self.open_queues()
        self._status.publish(
            lambda: {
                name: {"in_flight": queue.out_of_ready(), "dead_letter": queue.dead_letter}
                for name, queue in queues.items()
            }
        )

    def _writer_failed(self, exc: BaseException) -> None:
        """The writer thread died: refuse writes, and wake every waiting
        caller with the error. What is pending stays: close() commits it."""
        self._state.fail(exc)
        forget_session(self.path)  # whatever it met, the next open verifies the file
        self._log.wake_room_waiters()
        for queue in self.open_queues().values():
            queue.detach()

    # ---- closing ----------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Commit everything pending, stop the writer, wake every caller
        blocked in one of its queues (StoreClosedError) and close LMDB."""
        state = self._state
        if state.closed:
            return
        if state.forked or os.getpid() != self._pid:
            state.closed = True
            return
        writer = self._writer
        state.closing = True  # no new work from here on
        stopped = writer is None or writer.stop(timeout)
        log = self._log
        if writer is not None and stopped:
            # The last commit, in this thread: it takes what a producer that
            # was already past its closing check logged after the writer's
            # last commit. Marking the store closed before ending the commit
            # turns away any sync producer still waiting for the lead.
            log.begin_commit()
            try:
                log.commit(log.drain())
                state.closed = True
            finally:
                log.end_commit()
        state.closed = True
        self._scheduler.clear()
        for queue in self.open_queues().values():
            queue.detach()
        # Left in the log: batch-mode puts the last commit did not take (a
        # sync put left there was refused, and its caller told).
        clean = not log.unsettled_puts()
        if stopped:
            self._layout.close()
            if clean and not self.readonly:
                mark_clean(self.path)
            if writer is not None:
                self._status.remove()
        if not self.readonly and not (stopped and clean):
            forget_session(self.path)  # writes lost: verify next time (failed commits forgot it)
        self._claim.release()
        lifecycle.closed(self)
        if not clean and not self.readonly:
            raise StoreWriteError(
                f"closed {self.path} with writes it could not commit: {log.write_error}"
            )

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._state.closed else self.durability
        return f"<flinq.Store {self.path!r} {state}>"

    # ---- fork (see lifecycle) -------------------------------------------------------

    @property
    def fork_lock(self) -> threading.RLock:
        """Held across fork(): no transaction is half done in the child."""
        return self._layout.lock

    def after_fork_in_child(self) -> None:
        """This is the child's copy: unusable, and its LMDB copy closed."""
        state = self._state
        state.forked = True
        state.closing = True
        state.closed = True
        self._claim.forget()
        self._layout.close_forked_copy()

    # ---- statistics ----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The writer's counters and the environment's size."""
        self._state.check()
        log = self._log
        return {
            "pending": len(log.ops),
            "commits": log.commits,
            "mean_batch": log.committed_ops / log.commits if log.commits else 0.0,
            "last_commit_ms": log.last_commit_seconds * 1000.0,
            **self._layout.info(),
            "queues": len(self._queues),
        }
