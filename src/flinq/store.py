"""Durable named queues: an LMDB environment mirrored by one writer thread.

Memory first, log behind: while a store runs, each queue's in-memory core
(a flinq.Queue or PriorityQueue) is what consumers see; every change is also
appended as an operation to the store's pending log, and one writer thread
commits the log to LMDB in batches (group commit). After a restart, LMDB is
the truth: opening a store reloads every stored message in delivery order.

Layout of the LMDB environment (see flinq.codec for keys and records):
  meta     b"format" -> FORMAT_NAME, b"version" -> FORMAT_VERSION,
           b"next_seq" -> where the next open starts numbering messages
           (8 bytes): past every key ever committed, and reserved ahead in
           steps, so most commits need not write it
  queues   queue name (UTF-8) -> JSON settings that shape storage
  q:<name> one LMDB database per queue: key -> record
"""

from __future__ import annotations

import atexit
import builtins
import collections
import contextlib
import itertools
import json
import logging
import operator
import os
import stat
import struct
import sys
import tempfile
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from queue import Full
from typing import Any, Literal

import lmdb
import lmdb.verify

from flinq.codec import Serializer, is_named_serializer, resolve_serializer, serializer_name
from flinq.errors import (
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreForkedError,
    StoreLockedError,
    StorePermissionError,
    StoreVersionError,
    StoreWriteError,
)
from flinq.settings import UNSET, QueueSettings, Unset, check_name

__all__ = ["FORMAT_VERSION", "Store", "open"]

_log = logging.getLogger("flinq")

FORMAT_NAME = b"flinq-store"
FORMAT_VERSION = 1
MAX_QUEUES = 4000
# How far ahead a commit reserves sequence numbers in meta's next_seq. A
# commit writes next_seq only when it holds a key at or past the reserved
# value: a sync put then dirties one page fewer (and saves a B-tree update)
# in all but one commit in SEQ_RESERVE. The price is a gap of up to this many
# ids after a restart; 64-bit sequence numbers do not run out over that.
SEQ_RESERVE = 1 << 16
# A sync commit's leader waits for the producers the last commit released
# (see Store._gather) while they keep arriving at least this often.
GATHER_GAP = 0.0002

# Operations in the pending log: (kind, database, key, value, waiter).
OP_PUT = 0  # a key that is not on disk yet
OP_SET = 1  # overwrite a key that may be on disk
OP_DEL = 2
OP_CLEAR = 3  # empty a queue's database

Op = tuple[int, Any, bytes | None, bytes | None, "_Waiter | None"]

_LOCK_FILE = "flinq.lock"
_DATA_FILE = "data.mdb"
_CLEAN_FILE = "flinq.clean"  # size and CRC of data.mdb, written by a clean close
# What only the owning process knows (messages in flight), for readers such
# as `flinq stats`: JSON, replaced every STATUS_INTERVAL while the store is
# open for writing, removed at close. Advisory: never read back by a Store.
STATUS_FILE = "flinq.status.json"
STATUS_INTERVAL = 1.0
# The longest flush_interval: a longer one is a mistake (a store that never
# commits on its own), and a timeout the platform's locks cannot take.
MAX_FLUSH_INTERVAL = 3600.0

_open_paths: set[str] = set()
_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()
_registry_lock = threading.Lock()


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_private(path: str, create: bool = True) -> int:
    """A descriptor of path for reading and writing, created 0600 if need
    be, never through a symbolic link (StorePermissionError for one)."""
    flags = os.O_RDWR | _NOFOLLOW | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if os.path.islink(path):
            raise StorePermissionError(
                f"{path} is a symbolic link: refusing to write through it"
            ) from exc
        if isinstance(exc, PermissionError):
            raise StorePermissionError(f"cannot open {path}: {exc}") from exc
        raise
    return fd


def _write_private(path: str, data: bytes) -> None:
    """Replace the file at path with data, atomically and 0600 whatever
    the umask: written to a new temporary file (never an existing one, so
    never through a planted link), then renamed over path."""
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".flinq-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _check_directory(path: str) -> None:
    """StorePermissionError if others may write to the store's directory:
    anyone could then plant files (links to the owner's files) in it."""
    mode = os.stat(path).st_mode
    if sys.platform != "win32" and mode & stat.S_IWOTH:
        raise StorePermissionError(
            f"{path} is writable by every user (mode {stat.filemode(mode)}): "
            "refusing to keep a store there; chmod o-w it"
        )


class _Waiter:
    """A sync put's promise. The thread that commits its operation sets done
    (and error, if the commit failed) and releases it; or, when a commit
    ends with this operation still pending, hands it the lead, and its own
    caller commits next."""

    __slots__ = ("_lock", "done", "error", "lead")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.done = False
        self.lead = False
        self.error: BaseException | None = None

    def settle(self, error: BaseException | None = None) -> None:
        if self.done:  # the operations of one put_many share a waiter
            return
        self.error = error
        self.done = True
        self._lock.release()

    def wait(self) -> None:
        self._lock.acquire()


class _PathLock:
    """An exclusive, per-process lock on a store directory (POSIX record
    locks are not inherited by a forked child; Windows locks a byte)."""

    def __init__(self, directory: str) -> None:
        self._fd = _open_private(os.path.join(directory, _LOCK_FILE))
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(self._fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            raise StoreLockedError(f"{directory} is open for writing in another process") from None

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = -1


class Store:
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
    bytearray, memoryview and str: "pickle" (the default: never open a store
    written by someone you do not trust), "json", "raw" (refuse anything
    else), or an object with dumps() and loads().

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
        # The real path names the store: a symlink to an open store is that store.
        self.path = os.path.realpath(os.fspath(path))
        self.durability = durability
        self.readonly = readonly
        self.flush_interval = float(flush_interval)
        # Checked now, matched against the store's own at open (_adopt_serializer).
        self._given_serializer = None if serializer is None else resolve_serializer(serializer)
        self.serializer: Serializer = self._given_serializer or resolve_serializer("pickle")
        self._sync = durability == "sync"
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._pid = os.getpid()
        self._closed = False
        self._forked = False
        self._queues: dict[str, Any] = {}
        self._pending: collections.deque[Op] = collections.deque()
        self._cv = threading.Condition(threading.Lock())  # writer wake-ups and log room
        self._commit_cv = threading.Condition(threading.Lock())  # who commits; what is done
        self._committing = False
        self._commit_waiting = 0  # threads in _begin_commit's wait; guarded by _commit_cv
        self._sync_waiters: collections.deque[_Waiter] = collections.deque()  # in log order
        # Gathering (see _gather): how many sync puts the last commit settled,
        # and the lock a gathering leader sleeps on, for the put it waits for.
        self._last_sync_batch = 0
        self._gather_target = 0
        self._gather_slot: list[threading.Lock] = []
        self._env_lock = threading.RLock()  # transactions vs. growing the map
        self._queues_lock = threading.RLock()  # one DurableQueue per name
        self._closing = False
        self._kicked = False
        self._room_waiters = 0  # producers in _wait_for_room; guarded by _cv
        self._folding = False  # a removal was logged since the last commit
        self._stopping = False
        self._write_error: BaseException | None = None
        self._writer_failure: BaseException | None = None
        self._timers: list[Callable[[float], None]] = []
        self._commits = 0
        self._status_at = -STATUS_INTERVAL  # the first writer round publishes
        self._status_failed = False
        self._committed_ops = 0
        self._last_commit_seconds = 0.0
        self._lock: _PathLock | None = None
        self._writer: threading.Thread | None = None

        self._env: Any = None
        self._claim_path()
        try:
            self._env = self._open_environment(map_size)
            self._load_or_create_meta()
        except BaseException:
            if self._env is not None:
                self._env.close()
            self._release_path()
            raise
        self._seq = itertools.count(self._next_seq)
        # next_seq as stored: keys below it need no write to meta (guarded
        # by _env_lock, with the transactions that write it).
        self._seq_reserved = self._next_seq
        if not readonly:
            self._writer = threading.Thread(
                target=self._run_writer, name=f"flinq-writer:{self.path}", daemon=True
            )
            self._writer.start()
        _open_stores.add(self)

    # ---- opening -------------------------------------------------------------

    def _claim_path(self) -> None:
        if self.readonly:
            if not os.path.isdir(self.path):
                raise StoreCorruptError(f"{self.path} is not a flinq store (no such directory)")
            if self.path in _open_paths:
                # LMDB allows one environment per file in a process.
                raise StoreLockedError(
                    f"{self.path} is open for writing in this process: use that Store"
                )
            return
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise StoreCorruptError(f"{self.path} is not a directory")
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
        except PermissionError as exc:
            raise StorePermissionError(f"cannot create the store at {self.path}: {exc}") from exc
        _check_directory(self.path)
        entries = set(os.listdir(self.path)) - {
            _LOCK_FILE,
            _CLEAN_FILE,
            STATUS_FILE,
            STATUS_FILE + ".tmp",  # left by flinq before 0.2
            "lock.mdb",
        }
        entries = {e for e in entries if not (e.startswith(".flinq-") and e.endswith(".tmp"))}
        if entries and _DATA_FILE not in entries:
            raise StoreCorruptError(f"{self.path} is not a flinq store (it holds other files)")
        with _registry_lock:
            if self.path in _open_paths:
                raise StoreLockedError(f"{self.path} is already open in this process")
            self._lock = _PathLock(self.path)
            _open_paths.add(self.path)

    def _release_path(self) -> None:
        if self._lock is not None:
            with _registry_lock:
                self._lock.release()
                self._lock = None
                _open_paths.discard(self.path)

    def _open_environment(self, map_size: int) -> lmdb.Environment:
        data = os.path.join(self.path, _DATA_FILE)
        if self.readonly and not os.path.exists(data):
            raise StoreCorruptError(f"{self.path} is not a flinq store (no {_DATA_FILE})")
        if not self.readonly:
            # LMDB follows symbolic links: create its files here first, refusing one planted.
            for name in (_DATA_FILE, "lock.mdb"):
                os.close(_open_private(os.path.join(self.path, name)))
            self._verify_unless_closed_cleanly(data)
        try:
            env = lmdb.open(
                self.path,
                map_size=map_size,
                max_dbs=MAX_QUEUES + 2,
                subdir=True,
                readonly=self.readonly,
                sync=True,
                metasync=True,
                readahead=False,
                meminit=False,
                mode=0o600,
            )
        except lmdb.ReadonlyError as exc:  # EACCES
            raise StorePermissionError(f"{self.path}: cannot open the store: {exc}") from exc
        except lmdb.Error as exc:
            raise StoreCorruptError(f"{self.path}: cannot open the store: {exc}") from exc
        return env

    def _verify_unless_closed_cleanly(self, data: str) -> None:
        """Check data.mdb before LMDB maps it: LMDB trusts its pages and
        aborts the process on a damaged one. A file whose size and CRC match
        the marker written by the last clean close is the file that close
        left, and needs no full check; any other (after a crash, or changed
        since) is verified page by page. The marker is removed either way,
        since this session will change the file."""
        marker = os.path.join(self.path, _CLEAN_FILE)
        try:
            with builtins.open(_open_private(marker, create=False)) as f:
                expected = json.load(f)
            os.unlink(marker)
        except (OSError, ValueError):
            expected = None
        if not os.path.exists(data) or os.path.getsize(data) == 0:
            return
        if expected is not None and expected == _fingerprint(data):
            return
        try:
            problems = _verify_data_file(data)
        except lmdb.verify.VerifyError as exc:
            raise StoreCorruptError(f"{data} is not a usable LMDB file: {exc}") from exc
        if problems:
            raise StoreCorruptError(f"{data} is damaged: {problems[0]}")

    def _load_or_create_meta(self) -> None:
        env = self._env
        try:
            if self.readonly:
                try:
                    self._meta = env.open_db(b"meta", create=False)
                    self._registry = env.open_db(b"queues", create=False)
                except lmdb.NotFoundError:
                    raise StoreCorruptError(
                        f"{self.path} is an LMDB environment but not a flinq store"
                    ) from None
                with env.begin() as txn:
                    self._check_format(txn, self._meta)
                    self._next_seq = self._read_next_seq(txn, self._meta)
                    self._adopt_serializer(txn.get(b"serializer", db=self._meta))
                return
            while True:
                try:
                    self._create_meta(env)
                    return
                except lmdb.MapFullError:  # a map_size too small for even this
                    env.set_mapsize(env.info()["map_size"] * 2)
        except lmdb.Error as exc:
            raise StoreCorruptError(f"{self.path}: cannot read the store: {exc}") from exc

    def _create_meta(self, env: lmdb.Environment) -> None:
        with env.begin(write=True) as txn:
            fresh = txn.stat(env.open_db(None, txn=txn))["entries"] == 0  # main db: named dbs
            self._meta = env.open_db(b"meta", txn=txn, create=True)
            self._registry = env.open_db(b"queues", txn=txn, create=True)
            if fresh:
                txn.put(b"format", FORMAT_NAME, db=self._meta)
                txn.put(b"version", str(FORMAT_VERSION).encode(), db=self._meta)
                txn.put(b"next_seq", (0).to_bytes(8, "big"), db=self._meta)
            self._check_format(txn, self._meta)
            self._next_seq = self._read_next_seq(txn, self._meta)
            stored = txn.get(b"serializer", db=self._meta)
            self._adopt_serializer(stored)
            if stored is None:
                txn.put(b"serializer", serializer_name(self.serializer).encode(), db=self._meta)

    def _adopt_serializer(self, stored: bytes | None) -> None:
        """Use the serializer the store was written with: refuse (ValueError)
        one given that differs from it. A store from before flinq recorded
        its serializer takes the one given."""
        if stored is None:
            return
        name = bytes(stored).decode()
        given = self._given_serializer
        if given is not None:
            if serializer_name(given) != name:
                raise ValueError(
                    f"{self.path} stores bodies with the {name!r} serializer, "
                    f"not {serializer_name(given)!r}: open it with serializer={name!r}"
                    + ("" if is_named_serializer(name) else " (an instance of that class)")
                )
        elif is_named_serializer(name):
            self.serializer = resolve_serializer(name)
        elif self.readonly:
            self.serializer = resolve_serializer("raw")  # inspection: serialized bodies stay opaque
        else:
            raise ValueError(
                f"{self.path} stores bodies with the serializer {name}: pass an instance of it"
            )

    def _check_format(self, txn: lmdb.Transaction, meta: Any) -> None:
        if txn.get(b"format", db=meta) != FORMAT_NAME:
            raise StoreCorruptError(f"{self.path} is an LMDB environment but not a flinq store")
        try:
            version = int(txn.get(b"version", b"", db=meta))
        except ValueError:
            raise StoreCorruptError(f"{self.path}: its format version is unreadable") from None
        if version > FORMAT_VERSION:
            raise StoreVersionError(
                f"{self.path} was written in store format {version}; this flinq reads "
                f"format {FORMAT_VERSION} and older: upgrade flinq"
            )

    @staticmethod
    def _read_next_seq(txn: lmdb.Transaction, meta: Any) -> int:
        raw = txn.get(b"next_seq", db=meta)
        return int.from_bytes(raw, "big") if raw else 0

    # ---- queues ---------------------------------------------------------------

    def queue(
        self,
        name: str,
        *,
        priority: bool | Unset = UNSET,
        maxsize: int | Unset = UNSET,
        max_attempts: int | Unset | None = UNSET,
        visibility_timeout: float | Unset | None = UNSET,
        dead_letter: str | Unset | None = UNSET,
    ) -> Any:
        """The durable queue called name, created on first use.

        priority=True orders by put(item, priority=n) (lowest first, FIFO
        among equals); it is fixed when the queue is created. maxsize bounds
        the ready messages (0: unbounded). max_attempts moves a message to
        the dead_letter queue after that many deliveries; visibility_timeout
        (seconds) redelivers a reserved message that was not acked in time.

        The settings are stored with the queue: an argument left out keeps
        the stored value (the default for a new queue); one given replaces it
        (None clears it), except priority, which a queue keeps (ValueError).
        A queue already open in this Store must be asked for with its current
        settings, or none (ValueError). Every argument is checked before
        anything is created.
        """
        from flinq.durable import DurableQueue

        self._check_usable()
        if self.readonly:
            raise StoreError("a store opened with readonly=True has no writable queues")
        check_name(name)
        given = {
            "priority": priority,
            "maxsize": maxsize,
            "max_attempts": max_attempts,
            "visibility_timeout": visibility_timeout,
            "dead_letter": dead_letter,
        }
        # Checked on their own first: nothing is created for bad arguments.
        QueueSettings().updated(**given).check(name)
        with self._queues_lock:
            existing = self._queues.get(name)
            if existing is not None:
                current = existing.settings
                wanted = current.updated(**given)
                if wanted != current:
                    changed = sorted(
                        k for k, v in given.items() if v is not UNSET and getattr(current, k) != v
                    )
                    raise ValueError(
                        f"queue {name!r} is open with other settings ({', '.join(changed)}): "
                        "reopen the store to change them"
                    )
                return existing
            settings, handle = self._ensure_queue(name, given)
            queue = DurableQueue(self, name, handle, settings)
            self._queues[name] = queue
            return queue

    def _dead_letter_queue(self, name: str) -> Any:
        """The queue called name, to receive dead letters: as it is if it
        exists (with its stored settings), else created as a FIFO queue."""
        return self.queue(name)

    @contextlib.contextmanager
    def _txn(self, write: bool, db: Any = None) -> Iterator[Any]:
        """An LMDB transaction, under the lock that growing the map takes
        (LMDB resizes only while no transaction is open in the process).
        LMDB errors come out as StoreError, but a full map (MapFullError),
        which the caller grows and retries."""
        with self._env_lock:
            try:
                try:
                    txn = self._env.begin(write=write, db=db)
                except lmdb.MapResizedError:
                    # Another process (the owner, when this one reads) grew
                    # the map since this one opened it: adopt its size.
                    self._env.set_mapsize(0)
                    txn = self._env.begin(write=write, db=db)
                with txn:
                    yield txn
            except lmdb.MapFullError:
                raise
            except lmdb.Error as exc:
                raise StoreCorruptError(f"{self.path}: {exc}") from exc

    def _grow_map(self) -> None:
        """Double the map (call while no transaction of this store is open)."""
        with self._env_lock:
            self._env.set_mapsize(self._env.info()["map_size"] * 2)

    def _ensure_queue(self, name: str, given: dict[str, Any]) -> tuple[QueueSettings, Any]:
        """The settings (stored, updated by those given) and database of
        queue name, creating both if needed."""
        while True:
            try:
                with self._txn(write=True) as txn:
                    raw = txn.get(name.encode(), db=self._registry)
                    if raw is not None:
                        stored = QueueSettings.from_dict(json.loads(raw))
                    else:
                        if txn.stat(self._registry)["entries"] >= MAX_QUEUES:
                            raise StoreError(f"a store holds at most {MAX_QUEUES} queues")
                        stored = QueueSettings()
                    settings = stored.updated(**given).check(name)
                    if raw is not None and settings.priority != stored.priority:
                        raise ValueError(
                            f"queue {name!r} was created with priority={stored.priority}"
                        )
                    if raw is None or settings != stored:
                        txn.put(
                            name.encode(),
                            json.dumps(settings.to_dict()).encode(),
                            db=self._registry,
                        )
                    handle = self._env.open_db(f"q:{name}".encode(), txn=txn, create=True)
                    return settings, handle
            except lmdb.MapFullError:
                self._grow_map()

    def queues(self) -> list[str]:
        """Names of the queues in the store, sorted."""
        self._check_usable()
        with self._txn(write=False) as txn:
            return [bytes(k).decode() for k in txn.cursor(db=self._registry).iternext(values=False)]

    def delete_queue(self, name: str) -> None:
        """Delete queue name and every message in it."""
        self._check_usable()
        with self._queues_lock:
            queue = self._queues.pop(name, None)
            if queue is not None:
                queue._detach()
            self.flush()  # nothing for this queue may be left in the log
            with self._txn(write=True) as txn:
                if txn.get(name.encode(), db=self._registry) is None:
                    raise KeyError(name)
                txn.drop(self._env.open_db(f"q:{name}".encode(), txn=txn), delete=True)
                txn.delete(name.encode(), db=self._registry)

    def _load(self, handle: Any) -> list[tuple[bytes, bytes]]:
        """Every (key, record) of a queue's database, in key order."""
        with self._txn(write=False, db=handle) as txn:
            return list(txn.cursor().iternext())

    # ---- the pending log ----------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed or self._closing:
            if self._forked:
                raise StoreForkedError(
                    f"the store at {self.path} was opened before fork(); open it again here"
                )
            failure = self._writer_failure
            if failure is not None and not self._closed:
                raise StoreWriteError(
                    f"the writer thread of {self.path} failed ({failure!r}): close the store"
                ) from failure
            raise StoreClosedError(f"the store at {self.path} is closed")

    def _log(self, op: Op) -> None:
        """Append an operation that needs no room check (removals, updates)."""
        self._folding = True
        pending = self._pending
        pending.append(op)
        if len(pending) >= self._batch_size and not self._kicked:
            self._kick()

    def _log_many(self, ops: list[Op]) -> None:
        """_log for several operations at once, in order."""
        self._folding = True
        pending = self._pending
        pending.extend(ops)
        if len(pending) >= self._batch_size and not self._kicked:
            self._kick()

    def _log_put(
        self, handle: Any, key: bytes, record: bytes, block: bool, timeout: float | None
    ) -> None:
        """Log one new message in batch mode, waiting for room in the log
        (queue.Full without it)."""
        pending = self._pending
        if len(pending) >= self._max_pending:
            self._wait_for_room(block, timeout, 1)
        pending.append((OP_PUT, handle, key, record, None))
        if len(pending) >= self._batch_size and not self._kicked:
            self._kick()

    def _log_puts(
        self, handle: Any, entries: list[tuple[bytes, bytes]], block: bool, timeout: float | None
    ) -> None:
        """Log new messages, all or none. Batch mode: wait for room in the
        log (queue.Full without it). Sync mode: return once they are
        committed, together (StoreWriteError if that commit fails; then none
        of them is stored)."""
        pending = self._pending
        if self._sync:
            waiter = _Waiter()
            for key, record in entries:
                pending.append((OP_PUT, handle, key, record, waiter))
            waiters = self._sync_waiters
            waiters.append(waiter)
            if self._gather_slot and len(waiters) >= self._gather_target:
                # The put a gathering leader waits for: wake it (list.pop is
                # atomic, so one put wakes it, once).
                with contextlib.suppress(IndexError):
                    self._gather_slot.pop().release()
            self._commit_sync(waiter)
            return
        if len(pending) + len(entries) > self._max_pending and pending:
            self._wait_for_room(block, timeout, len(entries))
        pending.extend([(OP_PUT, handle, key, record, None) for key, record in entries])
        if len(pending) >= self._batch_size and not self._kicked:
            self._kick()

    def _wait_for_room(self, block: bool, timeout: float | None, n: int = 1) -> None:
        """Wait until n more operations fit in the log (or it is empty)."""
        if not block:
            raise Full
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            # Counted before the room check: a commit that drains the log
            # after this check sees the count and wakes this producer.
            self._room_waiters += 1
            try:
                while len(self._pending) + n > self._max_pending and self._pending:
                    self._check_usable()
                    if not self._kicked:
                        self._kicked = True
                        self._cv.notify_all()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise Full
                    self._cv.wait(remaining)
            finally:
                self._room_waiters -= 1

    def _kick(self) -> None:
        """Ask the writer to commit now instead of at the end of its interval."""
        with self._cv:
            self._kicked = True
            self._cv.notify_all()

    def _commit_sync(self, waiter: _Waiter) -> None:
        """Return once the sync put behind waiter is committed. Group commit:
        one caller at a time leads and commits, in its own thread, all that
        is pending; the others sleep until a leader has committed their
        operation, or until the lead is handed to them."""
        with self._commit_cv:
            lead = not self._committing
            if lead:
                self._committing = True
        if not lead:
            waiter.wait()
            lead = waiter.lead and not waiter.done
        if lead:
            try:
                if not waiter.done:
                    if self._closing:
                        # Refused: settled with the error, the op is skipped
                        # by any commit that still finds it in the log.
                        waiter.settle(StoreClosedError(f"the store at {self.path} is closed"))
                    else:
                        if self._last_sync_batch > 1:
                            self._gather()
                        self._commit(self._drain())
            finally:
                self._end_commit()
        if isinstance(waiter.error, StoreClosedError):
            raise waiter.error
        if waiter.error is not None:
            raise StoreWriteError(f"cannot write to {self.path}: {waiter.error}") from waiter.error

    def _gather(self) -> None:
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

    def _begin_commit(self, timeout: float | None = None, wait: bool = True) -> bool:
        """Own the next commit, waiting for one in progress (wait=False:
        return False instead of waiting)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._commit_cv:
            while self._committing:
                if not wait:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"the store at {self.path} did not commit in time")
                self._commit_waiting += 1
                try:
                    self._commit_cv.wait(remaining)
                finally:
                    self._commit_waiting -= 1
            self._committing = True
            return True

    def _end_commit(self) -> None:
        """Pass the lead to the oldest sync put still pending, or let the
        next flush or the writer commit."""
        with self._commit_cv:
            waiters = self._sync_waiters
            while waiters and waiters[0].done:
                waiters.popleft()
            if waiters:
                successor = waiters.popleft()
                successor.lead = True
                successor._lock.release()
            else:
                self._committing = False
                if self._commit_waiting:  # notify_all is Python code: skip it for nobody
                    self._commit_cv.notify_all()
        # Wake only producers waiting for room in the log: notifying the
        # condition also wakes the writer thread, which then fights the
        # committing thread for the GIL after every sync commit.
        if self._room_waiters:
            with self._cv:
                self._cv.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything logged before this call is on disk.

        Raises StoreWriteError if it cannot be committed (the disk is full,
        say); what was pending stays pending and is retried.
        """
        self._check_usable()
        if self.readonly:
            return
        self._begin_commit(timeout)
        try:
            self._commit(self._drain())
            error = self._write_error if self._pending else None
        finally:
            self._end_commit()
        if error is not None:
            raise StoreWriteError(f"cannot write to {self.path}: {error}") from error

    # ---- the writer thread ----------------------------------------------------------

    def _run_writer(self) -> None:
        try:
            self._write_until_stopped()
        except BaseException as exc:
            self._writer_failed(exc)

    def _writer_failed(self, exc: BaseException) -> None:
        """The writer thread cannot go on: refuse writes from now on, and wake
        every caller waiting for it (for room in the log, or for a message)
        with the error. What is pending stays: close() commits it."""
        _log.critical("flinq: the writer thread of %s failed", self.path, exc_info=exc)
        self._writer_failure = exc
        self._closing = True
        with self._cv:
            self._cv.notify_all()
        for queue in list(self._queues.values()):
            queue._detach()

    def _write_until_stopped(self) -> None:
        backoff = 0.0
        while True:
            with self._cv:
                # A batch closes at batch_size operations (producers kick)
                # or after flush_interval.
                pending = len(self._pending)
                if not self._kicked and not self._stopping and pending < self._batch_size:
                    self._cv.wait(self.flush_interval)
                self._kicked = False
                stopping = self._stopping
            # Sync producers may be committing one after another; the writer
            # then leaves the commits to them (their leader takes the whole
            # log) and only runs timers, except for the last commit at close.
            if self._pending and self._begin_commit(wait=stopping):
                try:
                    self._commit(self._drain())
                finally:
                    self._end_commit()
            self._run_timers()
            self._publish_status()
            failed = self._write_error is not None and bool(self._pending)
            if failed:
                if stopping:
                    return  # close() reports the error
                backoff = min(max(backoff * 2, 0.05), 1.0)
                time.sleep(backoff)
                continue
            backoff = 0.0
            if stopping and not self._pending:
                return

    def _run_timers(self) -> None:
        """Redeliveries and delayed nacks; a failing timer is logged, and the
        writer goes on."""
        now = time.monotonic()
        for timer in list(self._timers):
            try:
                timer(now)
            except Exception:
                _log.exception("flinq: a queue timer failed in %s", self.path)

    def _publish_status(self) -> None:
        """Writer thread: replace STATUS_FILE (at most every STATUS_INTERVAL)."""
        now = time.monotonic()
        if now - self._status_at < STATUS_INTERVAL:
            return
        self._status_at = now
        status = {
            "pid": self._pid,
            "written_at": time.time(),
            "queues": {
                name: {"in_flight": queue._in_flight_count(), "dead_letter": queue.dead_letter}
                for name, queue in list(self._queues.items())
            },
        }
        path = os.path.join(self.path, STATUS_FILE)
        try:
            _write_private(path, json.dumps(status).encode())
        except OSError as exc:  # advisory: a full disk must not stop the writer
            if not self._status_failed:
                _log.warning("flinq: cannot write %s: %s", path, exc)
            self._status_failed = True
        else:
            self._status_failed = False

    def _drain(self) -> list[Op]:
        """Take everything pending (at most max_pending operations)."""
        popleft = self._pending.popleft
        return [popleft() for _ in range(min(len(self._pending), self._max_pending))]

    def _commit(self, batch: list[Op]) -> None:
        """Write batch in one transaction (between _begin_commit and
        _end_commit: one commit at a time, in log order). On failure,
        sync puts are told and dropped, and the rest goes back to the front
        of the log for a retry."""
        if self._closing:  # drop sync puts refused while closing
            batch = [op for op in batch if op[4] is None or not op[4].done]
        if not batch:
            return
        # Only removals can cancel puts: a batch of puts alone is written as is.
        ops = _coalesce(batch) if self._folding else batch
        self._folding = False
        started = time.perf_counter()
        while True:
            try:
                with self._env_lock:
                    with self._env.begin(write=True) as txn:
                        _apply(txn, ops)
                        # Every key in the batch is below the counter's next
                        # value: past the reservation, reserve further ahead.
                        upto = self._seq_peek()
                        if upto > self._seq_reserved:
                            upto += SEQ_RESERVE
                            txn.put(b"next_seq", upto.to_bytes(8, "big"), db=self._meta)
                    # Committed: updated under the same lock, so another
                    # writer of next_seq (_next_seq_bytes) sees it.
                    self._seq_reserved = max(self._seq_reserved, upto)
                break
            except lmdb.MapFullError:
                with self._env_lock:  # no other transaction of ours is open
                    self._env.set_mapsize(self._env.info()["map_size"] * 2)
            except lmdb.Error as exc:
                self._write_error = exc
                for op in batch:
                    if op[4] is not None:
                        op[4].settle(exc)
                retry = [op for op in batch if op[4] is None]
                self._folding = True
                self._pending.extendleft(reversed(retry))
                return
        self._write_error = None
        self._commits += 1
        self._committed_ops += len(batch)
        self._last_commit_seconds = time.perf_counter() - started
        settled = 0
        for op in batch:
            waiter = op[4]
            if waiter is not None and not waiter.done:
                waiter.settle()
                settled += 1
        self._last_sync_batch = settled

    def _seq_peek(self) -> int:
        # itertools.count's repr, "count(N)", shows the next value without
        # taking it; N is past every key logged so far.
        return int(repr(self._seq)[6:-1])

    def _next_seq_bytes(self) -> bytes:
        """next_seq for another transaction that writes keys (call under
        _env_lock): past every key logged so far, and never below the
        reservation already stored, which commits rely on."""
        return max(self._seq_peek(), self._seq_reserved).to_bytes(8, "big")

    # ---- closing -------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Commit everything pending, stop the writer and close LMDB."""
        if self._closed:
            return
        if self._forked or os.getpid() != self._pid:
            self._closed = True
            return
        writer = self._writer
        self._closing = True  # no new puts from here on
        if writer is not None:
            with self._cv:
                self._stopping = True
                self._cv.notify_all()
            writer.join(timeout)
        if writer is not None and not writer.is_alive():
            # The last commit, in this thread: it takes what a producer that
            # was already past its closing check logged after the writer's
            # last commit. Marking the store closed before ending the commit
            # turns away any sync producer still waiting for the lead.
            self._begin_commit()
            try:
                self._commit(self._drain())
                self._closed = True
            finally:
                self._end_commit()
        self._closed = True
        for queue in list(self._queues.values()):
            queue._detach()
        error = self._write_error
        # Left in the log: batch-mode puts the last commit did not take (a
        # sync put left there was refused, and its caller told).
        clean = not any(op[4] is None for op in self._pending)
        if writer is None or not writer.is_alive():
            with self._env_lock:
                self._env.close()
            if clean and not self.readonly:
                self._mark_clean()
            if writer is not None:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.path, STATUS_FILE))
        self._release_path()
        _open_stores.discard(self)
        if not clean and not self.readonly:
            raise StoreWriteError(f"closed {self.path} with writes it could not commit: {error}")

    def _mark_clean(self) -> None:
        """Record the data file's fingerprint: the next open may skip the full check."""
        data = os.path.join(self.path, _DATA_FILE)
        with contextlib.suppress(OSError):  # the next open verifies the file instead
            _write_private(
                os.path.join(self.path, _CLEAN_FILE), json.dumps(_fingerprint(data)).encode()
            )

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.durability
        return f"<flinq.Store {self.path!r} {state}>"

    def _after_fork_in_child(self) -> None:
        self._forked = True
        self._closing = True
        self._closed = True
        self._lock = None  # the record lock belongs to the parent
        # Closing the child's copy of the environment leaves the parent's
        # untouched, and lets the child open the store again.
        if self._env is not None:
            self._env.close()

    # ---- statistics ----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The writer's counters and the environment's size."""
        self._check_usable()
        with self._env_lock:
            info = self._env.info()
            stat = self._env.stat()
        return {
            "pending": len(self._pending),
            "commits": self._commits,
            "mean_batch": self._committed_ops / self._commits if self._commits else 0.0,
            "last_commit_ms": self._last_commit_seconds * 1000.0,
            "bytes_on_disk": os.path.getsize(os.path.join(self.path, _DATA_FILE)),
            "map_size": info["map_size"],
            "page_size": stat["psize"],
            "queues": len(self._queues),
        }


def _fingerprint(data: str) -> dict[str, int]:
    """Size and CRC-32 of a file, read in 1 MiB blocks."""
    crc = 0
    with builtins.open(data, "rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return {"size": os.path.getsize(data), "crc32": crc}


def _verify_data_file(data: str) -> list[str]:
    """lmdb.verify.verify(data), the same findings, faster: see _FastLeafVerifier.
    Raises lmdb.verify.VerifyError when the file cannot be verified at all."""
    if _LeafVerifier is not None:
        try:
            with builtins.open(data, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                return _LeafVerifier(f, size).verify()  # type: ignore[no-any-return]
        except lmdb.verify.VerifyError:
            raise
        except (AttributeError, KeyError, TypeError, IndexError, struct.error):
            # A py-lmdb whose private verifier no longer has the shape the
            # subclass expects (or a bug in the fast path): its public,
            # slower entry point is the authority.
            _log.debug("flinq: fast verify failed; using lmdb.verify.verify", exc_info=True)
    return lmdb.verify.verify(data)  # type: ignore[no-any-return,no-untyped-call]


_LEAF_BOUNDS = struct.Struct("<HH")  # mp_lower, mp_upper
_leaf_nodes: dict[int, struct.Struct] = {}  # key size -> (dsize, flags, ksize, key)


def _leaf_node(ksize: int) -> struct.Struct:
    node = _leaf_nodes.get(ksize)
    if node is None:
        # An LMDB 0.9 leaf node: mn_lo and mn_hi (the data size's halves,
        # read little-endian as one 32-bit number), mn_flags, mn_ksize, key.
        node = _leaf_nodes[ksize] = struct.Struct(f"<IHH{ksize}s")
    return node


_Verifier: Any = getattr(lmdb.verify, "_Verifier", None)
_LeafVerifier: Any = None

if _Verifier is not None and sys.byteorder == "little":

    class _FastLeafVerifier(_Verifier):  # type: ignore[misc]
        """lmdb.verify's verifier with a fast path for the leaf pages that
        make up nearly all of a flinq store: plain nodes (no overflow
        value, no sub-database, no duplicates) with keys of one size, in a
        database ordered bytewise. For such a page it makes the checks the
        per-node walk makes (node, key and value inside the page, keys
        strictly increasing across pages), each over the whole page at once
        in C (struct, map, zip) instead of one Python call per node. A page
        that fails any of them, or is of any other kind, goes through the
        library's own walk, which reports what is wrong in its words; a
        file's findings are the same either way. Little-endian LMDB 0.9
        files only (mp_txnid means 1.0: the library walks those)."""

        def _walk_leaf(self, ctx: dict[str, Any], pgno: int, buf: bytes) -> None:
            if (
                self.eng["has_txnid"]
                or ctx["is_free"]
                or ctx["key_cmp"] is not lmdb.verify._cmp_lexical
                or ctx["db"].flags & lmdb.verify.MDB_DUPSORT
            ):
                super()._walk_leaf(ctx, pgno, buf)
                return
            hdrsz = self.hdrsz
            psize = self.psize
            lower, upper = _LEAF_BOUNDS.unpack_from(buf, hdrsz - 4)
            n = (lower - hdrsz) >> 1
            if lower < hdrsz or upper > psize or lower > upper:
                super()._walk_leaf(ctx, pgno, buf)
                return
            if n == 0:
                return
            offsets = memoryview(buf)[hdrsz : hdrsz + 2 * n].cast("H").tolist()
            lowest, highest = min(offsets), max(offsets)
            if lowest < upper or highest + 8 > psize:
                super()._walk_leaf(ctx, pgno, buf)
                return
            ksize = int.from_bytes(buf[offsets[0] + 6 : offsets[0] + 8], "little")
            if highest + 8 + ksize > psize:
                super()._walk_leaf(ctx, pgno, buf)
                return
            node = _leaf_node(ksize)
            nodes = map(node.unpack_from, itertools.repeat(buf), offsets)
            dsizes, flags, ksizes, keys = zip(*nodes, strict=True)
            last = ctx["last_key"]
            if (
                any(flags)
                or ksizes.count(ksize) != n
                or max(map(operator.add, offsets, dsizes)) + 8 + ksize > psize
                or (last is not None and keys[0] <= last)
                or not all(map(operator.lt, keys, itertools.islice(keys, 1, None)))
            ):
                super()._walk_leaf(ctx, pgno, buf)
                return
            ctx["last_key"] = keys[-1]
            ctx["entries"] += n

    _LeafVerifier = _FastLeafVerifier


def _coalesce(batch: list[Op]) -> list[Op]:
    """The batch with work a later delete makes moot removed: a message put
    and deleted in the same batch never reaches the disk, and a set (a new
    attempts count) followed by its delete is not written. Keys are unique
    across a store's queues (they end in the store-wide sequence number), so
    the key alone names a message. Clearing a queue ends folding across it."""
    put_at: dict[bytes, int] = {}  # key -> index in out of its put in this batch
    sets_at: dict[bytes, list[int]] = {}  # key -> indexes in out of its sets
    out: list[Op | None] = []
    for op in batch:
        kind = op[0]
        key: bytes = op[2]  # type: ignore[assignment]
        if kind == OP_PUT:
            put_at[key] = len(out)
        elif kind == OP_SET:
            sets_at.setdefault(key, []).append(len(out))
        elif kind == OP_DEL:
            for index in sets_at.pop(key, ()):
                out[index] = None
            index = put_at.pop(key, -1)
            if index >= 0:
                out[index] = None
                continue  # nothing of this message reaches the disk
        elif kind == OP_CLEAR:
            put_at.clear()
            sets_at.clear()
        out.append(op)
    return [op for op in out if op is not None]


def _apply(txn: lmdb.Transaction, ops: list[Op]) -> None:
    """Apply ops in order in txn; runs of puts to one database go through
    one putmulti call."""
    if len(ops) == 1 and ops[0][0] == OP_PUT:  # one sync put: no cursor, no list
        _kind, handle, key, value, _waiter = ops[0]
        txn.put(key, value, db=handle)  # type: ignore[arg-type]
        return
    first = ops[0][1] if ops else None
    if all(op[0] == OP_PUT and op[1] is first for op in ops):  # the common batch: new messages
        txn.cursor(db=first).putmulti([(op[2], op[3]) for op in ops])  # type: ignore[misc]
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


# fork() copies only the thread that calls it. Holding every store's
# environment lock across the fork means no transaction is half done in the
# child's copy, so the child can close its copy of each environment (and
# open the store again) without touching the parent's.
_forking: list[Store] = []


def _before_fork() -> None:
    _forking[:] = list(_open_stores)
    for store in _forking:
        store._env_lock.acquire()


def _after_fork_in_parent() -> None:
    for store in _forking:
        store._env_lock.release()
    _forking.clear()


def _forget_after_fork() -> None:
    _open_paths.clear()
    for store in _forking:
        store._after_fork_in_child()
        store._env_lock.release()
    _forking.clear()


def _close_all_at_exit() -> None:
    for store in list(_open_stores):
        try:
            store.close(timeout=30.0)
        except StoreError as exc:
            print(f"flinq: {exc}", file=sys.stderr)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_forget_after_fork,
    )

# Close stores before the interpreter joins threads and finalizes: a writer
# thread that needs the GIL during finalization would hang the exit.
_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:
    _register_atexit(_close_all_at_exit)
else:  # pragma: no cover
    atexit.register(_close_all_at_exit)


#: flinq.open(path, ...) opens (or creates) the store at path: see Store.
open = Store
