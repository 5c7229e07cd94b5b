"""What a flinq store keeps where in LMDB, and access to it.

Layout of the LMDB environment (see flinq.codec for keys and records):
  meta     b"format" -> FORMAT_NAME, b"version" -> FORMAT_VERSION,
           b"next_seq" -> where the next open starts numbering messages
           (8 bytes, see flinq.lmdbstore.ids),
           b"serializer" -> the name of the serializer bodies are stored with
  queues   queue name (UTF-8) -> its settings (JSON, flinq.settings.QueueSettings)
  q:<name> one LMDB database per queue: key -> record

Every transaction runs under one lock, which growing the map also takes:
LMDB resizes only while no transaction is open in the process.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import lmdb

from flinq.errors import (
    StoreCorruptError,
    StoreError,
    StorePermissionError,
    StoreVersionError,
)
from flinq.lmdbstore.files import DATA_FILE
from flinq.settings import QueueSettings, decode_settings, decode_stored_queues

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MAX_QUEUES", "Layout"]

FORMAT_NAME = b"flinq-store"
FORMAT_VERSION = 1
MAX_QUEUES = 4000

T = TypeVar("T")


def _queue_db_name(name: str) -> bytes:
    return f"q:{name}".encode()


class Layout:
    """An open LMDB environment laid out as a flinq store."""

    def __init__(self, path: str, *, map_size: int, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        #: Held by every transaction, and by growing the map.
        self.lock = threading.RLock()
        try:
            self.env = lmdb.open(
                path,
                map_size=map_size,
                max_dbs=MAX_QUEUES + 2,
                subdir=True,
                readonly=readonly,
                sync=True,
                metasync=True,
                readahead=False,
                meminit=False,
                mode=0o600,
            )
        except lmdb.ReadonlyError as exc:  # EACCES
            raise StorePermissionError(f"{path}: cannot open the store: {exc}") from exc
        except lmdb.Error as exc:
            raise StoreCorruptError(f"{path}: cannot open the store: {exc}") from exc
        try:
            self.next_seq, self.serializer = self._open_meta()
        except BaseException:
            self.env.close()
            raise

    # ---- meta ------------------------------------------------------------------------

    def _open_meta(self) -> tuple[int, str | None]:
        """(next_seq, serializer name or None) of the store, creating its
        meta and registry databases in a new one."""
        env = self.env
        try:
            if self.readonly:
                try:
                    self.meta = env.open_db(b"meta", create=False)
                    self.registry = env.open_db(b"queues", create=False)
                except lmdb.NotFoundError:
                    raise StoreCorruptError(
                        f"{self.path} is an LMDB environment but not a flinq store"
                    ) from None
                with env.begin() as txn:
                    return self._read_meta(txn)
            return self.write(self._create_meta)
        except lmdb.Error as exc:
            raise StoreCorruptError(f"{self.path}: cannot read the store: {exc}") from exc

    def _create_meta(self, txn: lmdb.Transaction) -> tuple[int, str | None]:
        env = self.env
        fresh = txn.stat(env.open_db(None, txn=txn))["entries"] == 0  # main db: named dbs
        self.meta = env.open_db(b"meta", txn=txn, create=True)
        self.registry = env.open_db(b"queues", txn=txn, create=True)
        if fresh:
            txn.put(b"format", FORMAT_NAME, db=self.meta)
            txn.put(b"version", str(FORMAT_VERSION).encode(), db=self.meta)
            txn.put(b"next_seq", (0).to_bytes(8, "big"), db=self.meta)
        return self._read_meta(txn)

    def _read_meta(self, txn: lmdb.Transaction) -> tuple[int, str | None]:
        meta = self.meta
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
        raw = txn.get(b"next_seq", db=meta)
        serializer = txn.get(b"serializer", db=meta)
        return (
            int.from_bytes(raw, "big") if raw else 0,
            None if serializer is None else bytes(serializer).decode(),
        )

    def record_serializer(self, name: str) -> None:
        """Store the serializer's name (a store made before flinq did)."""
        self.write(lambda txn: txn.put(b"serializer", name.encode(), db=self.meta))
        self.serializer = name

    def put_next_seq(self, txn: lmdb.Transaction, next_seq: int) -> None:
        """Store next_seq in txn."""
        txn.put(b"next_seq", next_seq.to_bytes(8, "big"), db=self.meta)

    # ---- transactions ------------------------------------------------------------------

    @contextlib.contextmanager
    def txn(self, write: bool = False, db: Any = None) -> Iterator[lmdb.Transaction]:
        """A transaction under the lock. LMDB errors come out as
        StoreCorruptError, but a full map (lmdb.MapFullError), which write()
        handles."""
        with self.lock:
            try:
                try:
                    txn = self.env.begin(write=write, db=db)
                except lmdb.MapResizedError:
                    # Another process (the owner, when this one reads) grew
                    # the map since this one opened it: adopt its size.
                    self.env.set_mapsize(0)
                    txn = self.env.begin(write=write, db=db)
                with txn:
                    yield txn
            except (lmdb.MapFullError, lmdb.TxnFullError):
                raise
            except lmdb.Error as exc:
                raise StoreCorruptError(f"{self.path}: {exc}") from exc

    def write(self, change: Callable[[lmdb.Transaction], T]) -> T:
        """change(txn) in one write transaction, committed, and its result;
        a full map is doubled and the change run again (a failed attempt
        changes nothing)."""
        while True:
            try:
                with self.txn(write=True) as txn:
                    return change(txn)
            except lmdb.MapFullError:
                self.grow_map()

    def grow_map(self) -> None:
        """Double the map."""
        with self.lock:
            self.env.set_mapsize(self.env.info()["map_size"] * 2)

    # ---- queues --------------------------------------------------------------------------

    def all_settings(self, txn: lmdb.Transaction) -> dict[str, QueueSettings]:
        """Every queue's stored settings, by name, sorted by name;
        StoreCorruptError if any are damaged."""
        stored = txn.cursor(db=self.registry).iternext()
        return decode_stored_queues(((bytes(k), bytes(v)) for k, v in stored), self.path)

    def settings(self, txn: lmdb.Transaction, name: str) -> QueueSettings | None:
        """Queue name's stored settings; None if there is no such queue,
        StoreCorruptError if they are damaged."""
        raw = txn.get(name.encode(), db=self.registry)
        return None if raw is None else decode_settings(bytes(raw), name, self.path)

    def queue_db(self, txn: lmdb.Transaction, name: str, create: bool = False) -> Any:
        """The database of queue name, for use within txn."""
        return self.env.open_db(_queue_db_name(name), txn=txn, create=create)

    def ensure_queue(
        self, name: str, update: Callable[[QueueSettings | None], QueueSettings]
    ) -> tuple[QueueSettings, Any]:
        """The settings and database of queue name, creating both if needed:
        update(stored settings, or None for a new queue) gives the settings
        to keep (and may raise to refuse; then nothing changes)."""

        def ensure(txn: lmdb.Transaction) -> tuple[QueueSettings, Any]:
            stored = self.settings(txn, name)
            if stored is None and txn.stat(self.registry)["entries"] >= MAX_QUEUES:
                raise StoreError(f"a store holds at most {MAX_QUEUES} queues")
            settings = update(stored)
            if settings != stored:
                txn.put(name.encode(), json.dumps(settings.to_dict()).encode(), db=self.registry)
            return settings, self.queue_db(txn, name, create=True)

        return self.write(ensure)

    def delete_queue(self, name: str) -> None:
        """Delete queue name's database and settings; KeyError if there is none."""

        def delete(txn: lmdb.Transaction) -> None:
            if txn.get(name.encode(), db=self.registry) is None:
                raise KeyError(name)
            txn.drop(self.queue_db(txn, name), delete=True)
            txn.delete(name.encode(), db=self.registry)

        self.write(delete)

    def names(self) -> list[str]:
        """The queues' names, sorted."""
        with self.txn() as txn:
            return self.names_in(txn)

    def names_in(self, txn: lmdb.Transaction) -> list[str]:
        """The queues' names, sorted, as txn sees them (a name that is not
        UTF-8, which only damage leaves, with replacement characters)."""
        keys = txn.cursor(db=self.registry).iternext(values=False)
        return [bytes(k).decode(errors="replace") for k in keys]

    def load(self, handle: Any) -> list[tuple[bytes, bytes]]:
        """Every (key, record) of a queue's database, in key order."""
        with self.txn(db=handle) as txn:
            entries: list[tuple[bytes, bytes]] = list(txn.cursor().iternext())  # type: ignore[arg-type]
            return entries

    # ---- the environment -------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """map_size, page_size and bytes_on_disk."""
        with self.lock:
            info = self.env.info()
            stat = self.env.stat()
        return {
            "bytes_on_disk": os.path.getsize(os.path.join(self.path, DATA_FILE)),
            "map_size": info["map_size"],
            "page_size": stat["psize"],
        }

    def close(self) -> None:
        """Close the environment (waits for a transaction in progress)."""
        with self.lock:
            self.env.close()

    def close_forked_copy(self) -> None:
        """In a forked child (the lock was held across the fork): closing the
        child's copy leaves the parent's untouched."""
        self.env.close()
