"""The pending log: operations waiting to be committed, and group commit.

Every change to a store's queues is appended here as an operation; one
commit at a time takes everything pending and writes it in one LMDB
transaction. Batch mode: the writer thread commits (see writer.py), and
producers wait only for room in the bounded log. Sync mode: each put waits
for the commit holding it, and the waiting producers take turns leading
commits in their own threads (group commit).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import operator
import threading
import time
from queue import Full
from typing import Any

import lmdb

from flinq.errors import StoreClosedError, StoreWriteError
from flinq.lmdbstore.ids import Ids
from flinq.lmdbstore.layout import Layout
from flinq.lmdbstore.state import StoreState
from flinq.lmdbstore.verify import forget_session

__all__ = ["GATHER_GAP", "OP_CLEAR", "OP_DEL", "OP_PUT", "OP_SET", "Op", "PendingLog", "Waiter"]

# A sync commit's leader waits for the producers the last commit released
# (see PendingLog.gather) while they keep arriving at least this often.
GATHER_GAP = 0.0002

# Operations: (kind, database, key, value, waiter).
OP_PUT = 0  # a key that is not on disk yet
OP_SET = 1  # overwrite a key that may be on disk
OP_DEL = 2
OP_CLEAR = 3  # empty a queue's database

Op = tuple[int, Any, "bytes | None", "bytes | None", "Waiter | None"]

_key_and_value = operator.itemgetter(2, 3)  # of an Op


class Waiter:
    """A sync put's promise. The thread that commits its operation settles
    it (with the error, if the commit failed) and releases it; or, when a
    commit ends with this operation still pending, hands it the lead, and
    its own caller commits next.

    The waiters a commit settles are woken in a chain (see settle_all):
    each caller, once awake, wakes the next. A caller can leave while it
    waits (an exception such as KeyboardInterrupt): then whichever of it
    and its waker comes second does what the wake-up asks (wake the rest of
    the chain, or hand the lead on); a one-item token decides who."""

    __slots__ = (
        "_lock",
        "_token",
        "done",
        "error",
        "gone",
        "lead",
        "next",
        "released",
        "unwritten",
    )

    def __init__(self, ops: int) -> None:
        #: Its operations not yet committed: a put_many larger than one
        #: commit (max_pending operations) is settled by the last of its commits.
        self.unwritten = ops
        self._lock = threading.Lock()
        self._lock.acquire()
        self._token = [True]  # popped (atomically) by whoever acts on the wake-up
        self.done = False
        self.lead = False
        #: Released: settled, or handed the lead (set before the release).
        self.released = False
        #: Its caller left without waiting for it (an exception while it
        #: waited or led): it is not handed the lead, and does not wake others.
        self.gone = False
        self.error: BaseException | None = None
        #: The waiter of the same commit that this one wakes, once awake.
        self.next: Waiter | None = None

    def settle(self, error: BaseException | None = None) -> None:
        """Tell the waiting caller its operations are done (or failed)."""
        if self.done:  # the operations of one put_many share a waiter
            return
        self.error = error
        self.done = True
        self.release()

    def hand_lead(self) -> bool:
        """Wake the waiting caller to lead the next commit. False if its
        caller has left and this call took the lead back: hand it on."""
        self.lead = True
        return not self.release()

    def release(self) -> bool:
        """Wake the caller; True if it had left and this call took over
        what the wake-up asks of it."""
        self.released = True
        self._lock.release()
        return self.gone and self.claim()

    def claim(self) -> bool:
        """True for the one caller of this that acts on the wake-up."""
        try:
            self._token.pop()
        except IndexError:
            return False
        return True

    def wait(self) -> None:
        """Sleep until settled or handed the lead; then wake the next of
        the chain, if any."""
        self._lock.acquire()
        if self.claim():
            self.wake_next()

    def leave(self) -> bool:
        """The caller stops waiting (an exception in wait()). True if it
        was released and this call took over the wake-up: the caller must
        then act on it (hand on the lead it was given)."""
        self.gone = True
        if not (self.released and self.claim()):
            return False
        self.wake_next()
        return self.lead and not self.done

    def wake_next(self) -> None:
        """Wake the next waiter of the chain, and past those that left."""
        after = self.next
        self.next = None
        while after is not None and after.release():
            # Its caller had left: this call wakes the one after it.
            following = after.next
            after.next = None
            after = following


def settle_all(waiters: list[Waiter]) -> None:
    """Settle waiters (successfully) whose callers sleep in wait(), waking
    them in a chain: the first now, each of the others by the one before
    it once awake. Woken at once by the committing thread, they would all
    find the GIL taken and sleep again waiting for it; in a chain each
    wakes once, as the one before it is about to run."""
    for waiter, after in itertools.pairwise(waiters):
        waiter.done = True
        waiter.next = after
    if waiters:
        waiters[-1].done = True
        if waiters[0].release():
            waiters[0].wake_next()


class PendingLog:
    """A store's pending operations, their commits and the commit counters.

    The writer thread waits on `cv` for work; producers append without
    taking it, and notify it only to end an idle wait (the first operation
    of an empty log) or a batch (batch_size operations: a kick)."""

    def __init__(
        self,
        layout: Layout,
        ids: Ids,
        state: StoreState,
        *,
        sync: bool,
        max_pending: int,
        batch_size: int,
    ) -> None:
        self.layout = layout
        self.ids = ids
        self.state = state
        self.sync = sync
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.ops: collections.deque[Op] = collections.deque()
        #: Writer wake-ups and room in the log.
        self.cv = threading.Condition(threading.Lock())
        #: Asked for a commit now (guarded by cv for the writer's wait).
        self.kicked = False
        self._room_waiters = 0  # producers in wait_for_room; guarded by cv
        self._folding = False  # a removal was logged since the last commit
        # Who commits, and what is done.
        self._commit_cv = threading.Condition(threading.Lock())
        self._committing = False
        self._commit_waiting = 0  # threads in begin_commit's wait; guarded by _commit_cv
        self._sync_waiters: collections.deque[Waiter] = collections.deque()  # in log order
        # Gathering (see gather): how many sync puts the last commit settled,
        # and the lock a gathering leader sleeps on, for the put it waits for.
        self._last_sync_batch = 0
        self._gather_target = 0
        self._gather_slot: list[threading.Lock] = []
        #: The last commit's error, while what it held is pending again.
        self.write_error: BaseException | None = None
        self.commits = 0
        self.committed_ops = 0
        self.last_commit_seconds = 0.0

    # ---- appending ---------------------------------------------------------------------

    def append(self, op: Op) -> None:
        """Append an operation that needs no room check (removals, updates)."""
        self._folding = True
        ops = self.ops
        ops.append(op)
        size = len(ops)
        if size == 1:  # woken after the append: it must see the operation
            self.wake()
        elif size >= self.batch_size and not self.kicked:
            self.kick()

    def extend(self, new: list[Op]) -> None:
        """append() for several operations at once, in order."""
        self._folding = True
        ops = self.ops
        empty = not ops
        ops.extend(new)
        if empty and new:
            self.wake()
        if len(ops) >= self.batch_size and not self.kicked:
            self.kick()

    def put(
        self, handle: Any, key: bytes, record: bytes, block: bool, timeout: float | None
    ) -> None:
        """Log one new message in batch mode, waiting for room in the log
        (queue.Full without it)."""
        ops = self.ops
        if len(ops) >= self.max_pending:
            self.wait_for_room(block, timeout, 1)
        ops.append((OP_PUT, handle, key, record, None))
        size = len(ops)
        if size == 1:  # woken after the append: it must see the operation
            self.wake()
        elif size >= self.batch_size and not self.kicked:
            self.kick()

    def put_many(
        self, handle: Any, entries: list[tuple[bytes, bytes]], block: bool, timeout: float | None
    ) -> None:
        """Log new messages, all or none. Batch mode: wait for room in the
        log (queue.Full without it). Sync mode: return once they are all
        committed, together, or for more than max_pending in consecutive
        commits (StoreWriteError if a commit fails; then none of them is
        stored, or with several commits, those of the earlier ones are)."""
        ops = self.ops
        if self.sync:
            waiter = Waiter(len(entries))
            for key, record in entries:
                ops.append((OP_PUT, handle, key, record, waiter))
            waiters = self._sync_waiters
            waiters.append(waiter)
            if self._gather_slot and len(waiters) >= self._gather_target:
                # The put a gathering leader waits for: wake it (list.pop is
                # atomic, so one put wakes it, once).
                with contextlib.suppress(IndexError):
                    self._gather_slot.pop().release()
            self.commit_sync(waiter)
            return
        if len(ops) + len(entries) > self.max_pending and ops:
            self.wait_for_room(block, timeout, len(entries))
        empty = not ops
        ops.extend([(OP_PUT, handle, key, record, None) for key, record in entries])
        if empty:
            self.wake()
        if len(ops) >= self.batch_size and not self.kicked:
            self.kick()

    def wait_for_room(self, block: bool, timeout: float | None, n: int = 1) -> None:
        """Wait until n more operations fit in the log (or it is empty)."""
        if not block:
            raise Full
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cv:
            # Counted before the room check: a commit that drains the log
            # after this check sees the count and wakes this producer.
            self._room_waiters += 1
            try:
                while len(self.ops) + n > self.max_pending and self.ops:
                    self.state.check()
                    if not self.kicked:
                        self.kicked = True
                        self.cv.notify_all()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise Full
                    self.cv.wait(remaining)
            finally:
                self._room_waiters -= 1

    def wake(self) -> None:
        """Tell the writer that something changed (it recomputes its wait)."""
        with self.cv:
            self.cv.notify_all()

    def kick(self) -> None:
        """Ask the writer to commit now instead of at the end of its interval."""
        with self.cv:
            self.kicked = True
            self.cv.notify_all()

    def wake_room_waiters(self) -> None:
        """Wake producers waiting for room (to see the log's state or an error)."""
        with self.cv:
            self.cv.notify_all()

    # ---- group commit -------------------------------------------------------------------

    def commit_sync(self, waiter: Waiter) -> None:
        """Return once the sync put behind waiter is committed. One caller
        at a time leads and commits, in its own thread, all that is pending;
        the others sleep until a leader has committed their operation, or
        until the lead is handed to them."""
        with self._commit_cv:
            lead = not self._committing
            if lead:
                self._committing = True
        if not lead:
            try:
                waiter.wait()
                lead = waiter.lead and not waiter.done
            except BaseException:
                if waiter.leave():
                    self.end_commit()  # it was handed the lead: hand it on
                raise
        if lead:
            try:
                if not waiter.done:
                    if self.state.closing:
                        # Refused: settled with the error, the op is skipped
                        # by any commit that still finds it in the log.
                        waiter.settle(self.state.error())
                    else:
                        if self._last_sync_batch > 1:
                            self.gather()
                        self.commit(self.drain(), waiter)
                        while not waiter.done and self.ops:
                            # A put_many larger than one commit: the rest.
                            self.commit(self.drain(), waiter)
            finally:
                if not waiter.done:
                    waiter.gone = True  # leaving on an exception: not the next leader
                self.end_commit()
        if isinstance(waiter.error, StoreClosedError):
            raise waiter.error
        if waiter.error is not None:
            raise StoreWriteError(
                f"cannot write to {self.state.path}: {waiter.error}"
            ) from waiter.error

    def gather(self) -> None:
        """Before a sync commit, wait briefly for the producers the last
        commit released to put again, so that they share this commit.

        Without it, sync producers in many threads fall into lockstep: a
        commit settles them all at once, the first to put again finds no
        commit running and commits alone, and the others make the next
        commit; every other commit holds one put. The leader waits until
        as many sync puts are pending as the last commit settled, or until
        none has arrived for GATHER_GAP seconds. A lone producer (the last
        commit settled one put: its own) never waits."""
        target = self._last_sync_batch
        waiters = self._sync_waiters
        if target <= 1 or len(waiters) >= target:
            return
        gate = threading.Lock()
        gate.acquire()
        self._gather_target = target
        self._gather_slot.append(gate)
        try:
            seen = -1
            while len(waiters) < target and len(waiters) != seen:
                seen = len(waiters)
                if gate.acquire(timeout=GATHER_GAP):
                    return
        finally:
            self._gather_slot.clear()

    def begin_commit(self, timeout: float | None = None, wait: bool = True) -> bool:
        """Own the next commit, waiting for one in progress (wait=False:
        return False instead of waiting)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._commit_cv:
            while self._committing:
                if not wait:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"the store at {self.state.path} did not commit in time")
                self._commit_waiting += 1
                try:
                    self._commit_cv.wait(remaining)
                finally:
                    self._commit_waiting -= 1
            self._committing = True
            return True

    def end_commit(self) -> None:
        """Pass the lead to the oldest sync put still pending, or let the
        next flush or the writer commit."""
        with self._commit_cv:
            waiters = self._sync_waiters
            handed = False
            while waiters and not handed:
                heir = waiters.popleft()
                if not (heir.done or heir.gone):
                    # False: its caller left as it was handed the lead (see
                    # Waiter.leave): the next one then.
                    handed = heir.hand_lead()
            if not handed:
                self._committing = False
                if self._commit_waiting:  # notify_all is Python code: skip it for nobody
                    self._commit_cv.notify_all()
        # Wake only producers waiting for room in the log: notifying the
        # condition also wakes the writer thread, which then fights the
        # committing thread for the GIL after every sync commit.
        if self._room_waiters:
            self.wake_room_waiters()

    def commit_all(self, timeout: float | None = None, wait: bool = True) -> bool:
        """Commit everything pending now, as the one committer; False if
        wait is False and another commit is in progress."""
        if not self.begin_commit(timeout, wait):
            return False
        try:
            self.commit(self.drain())
        finally:
            self.end_commit()
        return True

    def drain(self) -> list[Op]:
        """Take everything pending (at most max_pending operations)."""
        popleft = self.ops.popleft
        return [popleft() for _ in range(min(len(self.ops), self.max_pending))]

    def commit(self, batch: list[Op], own: Waiter | None = None) -> None:
        """Write batch in one transaction (between begin_commit and
        end_commit: one commit at a time, in log order). On failure, sync
        puts are told and dropped, and the rest goes back to the front of
        the log for a retry. own: the committing thread's own waiter, if
        any (settled without a wake-up: it is awake)."""
        if self.state.closing:  # drop sync puts refused while closing
            batch = [op for op in batch if op[4] is None or not op[4].done]
        if not batch:
            return
        # Only removals can cancel puts: a batch of puts alone is written as is.
        ops = coalesce(batch) if self._folding else batch
        self._folding = False
        started = time.perf_counter()
        layout = self.layout
        ids = self.ids
        while True:
            try:
                with layout.lock:
                    with layout.env.begin(write=True) as txn:
                        apply(txn, ops)
                        # Every key in the batch is below ids.next: past the
                        # reservation, reserve further ahead.
                        upto = ids.to_reserve()
                        if upto is not None:
                            layout.put_next_seq(txn, upto)
                    # Committed: recorded under the same lock, so another
                    # writer of next_seq (ids.floor) sees it.
                    if upto is not None:
                        ids.stored(upto)
                break
            except lmdb.MapFullError:
                layout.grow_map()  # no other transaction of ours is open
            except lmdb.Error as exc:
                forget_session(self.state.path)  # what failed may be damage: verify next open
                self.write_error = exc
                for op in batch:
                    if op[4] is not None:
                        op[4].settle(exc)
                retry = [op for op in batch if op[4] is None]
                self._folding = True
                self.ops.extendleft(reversed(retry))
                return
        self.write_error = None
        self.commits += 1
        self.committed_ops += len(batch)
        self.last_commit_seconds = time.perf_counter() - started
        if not self.sync:
            return  # only sync puts have waiters
        sleeping: list[Waiter] = []
        for op in batch:
            waiter = op[4]
            if waiter is None:
                continue
            waiter.unwritten -= 1  # the operations of one put_many share a waiter
            if waiter.unwritten == 0 and not waiter.done:
                waiter.done = True
                if waiter is not own and not waiter.gone:
                    sleeping.append(waiter)
        self._last_sync_batch = len(sleeping) + (own is not None and own.done)
        settle_all(sleeping)

    def unsettled_puts(self) -> bool:
        """True if batch-mode operations are still pending (after a failed commit)."""
        return any(op[4] is None for op in self.ops)


def coalesce(batch: list[Op]) -> list[Op]:
    """The batch with work a later operation makes moot removed: a message
    put and deleted in the same batch never reaches the disk, a set (a new
    attempts count) followed by its delete is not written, and of several
    sets of one key only the last is. Keys are unique across a store's
    queues (they end in the store-wide id), so the key alone names a
    message. Clearing a queue ends folding across it."""
    put_at: dict[bytes, int] = {}  # key -> index in out of its put in this batch
    set_at: dict[bytes, int] = {}  # key -> index in out of its last set
    out: list[Op | None] = []
    for op in batch:
        kind = op[0]
        if kind == OP_SET:
            key: bytes = op[2]  # type: ignore[assignment]
            earlier = set_at.get(key)
            if earlier is not None:
                out[earlier] = None  # overwritten in this same transaction
            set_at[key] = len(out)
        elif kind == OP_DEL:
            key = op[2]  # type: ignore[assignment]
            index = set_at.pop(key, -1)
            if index >= 0:
                out[index] = None
            index = put_at.pop(key, -1)
            if index >= 0:
                out[index] = None
                continue  # nothing of this message reaches the disk
        elif kind == OP_PUT:
            put_at[op[2]] = len(out)  # type: ignore[index]
        elif kind == OP_CLEAR:
            put_at.clear()
            set_at.clear()
        out.append(op)
    return [op for op in out if op is not None]


def apply(txn: lmdb.Transaction, ops: list[Op]) -> None:
    """Apply ops in order in txn; runs of puts to one database go through
    one putmulti call."""
    if len(ops) == 1 and ops[0][0] == OP_PUT:  # one sync put: no cursor, no list
        _kind, handle, key, value, _waiter = ops[0]
        txn.put(key, value, db=handle)  # type: ignore[arg-type]
        return
    first = ops[0][1] if ops else None
    if all(op[0] == OP_PUT and op[1] is first for op in ops):  # the common batch: new messages
        # Pairs made one at a time as putmulti takes them: a list of them
        # all costs an allocation per message that lives through the write.
        txn.cursor(db=first).putmulti(map(_key_and_value, ops))
        return
    run: list[tuple[bytes, bytes]] = []
    run_handle: Any = None
    for kind, handle, key, value, _waiter in ops:
        if kind in (OP_PUT, OP_SET):
            if handle is not run_handle and run:
                txn.cursor(db=run_handle).putmulti(run)
                run = []
            run_handle = handle
            run.append((key, value))  # type: ignore[arg-type]
            continue
        if run:
            txn.cursor(db=run_handle).putmulti(run)
            run = []
        if kind == OP_DEL:
            txn.delete(key, db=handle)  # type: ignore[arg-type]
        elif kind == OP_CLEAR:
            txn.drop(handle, delete=False)
    if run:
        txn.cursor(db=run_handle).putmulti(run)
