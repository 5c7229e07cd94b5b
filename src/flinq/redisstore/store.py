"""The Redis store: named durable queues on a Redis server, shared by any
number of processes and machines (see docs/redis.md for the guarantees)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import weakref
from typing import Any

import redis

from flinq.codec import Serializer, agree_serializer, resolve_serializer, serializer_name
from flinq.errors import StoreClosedError, StoreError, StoreNotFoundError, StoreVersionError
from flinq.protocols import OpensQueues
from flinq.redisstore import inspect
from flinq.redisstore.connection import Waits, connect, translated
from flinq.redisstore.keys import GROUP, StoreKeys
from flinq.redisstore.queue import QueueContext, RedisQueue
from flinq.redisstore.scripts import Scripts
from flinq.redisstore.urls import split_prefix
from flinq.settings import (
    check_name,
    decode_settings,
    merge_settings,
)

__all__ = ["FORMAT", "RedisStore", "open_stores"]

#: The layout version a store records in its meta hash.
FORMAT = 1

_log = logging.getLogger("flinq")
_open: weakref.WeakSet[RedisStore] = weakref.WeakSet()
_open_lock = threading.Lock()


def _dead_here(consumer: str, host: str) -> bool:
    """True if consumer (host:pid:token) names a process of this host that
    no longer exists."""
    parts = consumer.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (another user's, say)
    return False


def open_stores() -> list[RedisStore]:
    """The Redis stores open in this process."""
    with _open_lock:
        return [store for store in _open if not store.closed]


class RedisStore(OpensQueues[RedisQueue]):
    """Named durable queues on a Redis server (5 Streams and consumer groups).

    url: redis://[[user]:password@]host[:port][/db], rediss:// (TLS) or
    unix:///path/to/socket?db=n; or client=, a redis.Redis made with
    decode_responses=False (then close() leaves it open). prefix (or a
    prefix= argument in the URL) starts every key of the store, so several
    stores can share a database.
    serializer is as for the LMDB store, recorded with the store. Other
    keyword options go to redis.Redis.from_url (socket_timeout, ...).

    put() returns once the server has the message; how much a crash of the
    server can lose depends on its persistence settings (docs/redis.md).
    readonly=True refuses queue(), for inspection. Its queue() stores the
    settings with the queue, as the LMDB store's does; processes that open
    one queue with different settings: the last one to open it stores its
    own, and each uses what it opened with.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "flinq",
        serializer: str | Serializer | None = None,
        readonly: bool = False,
        **options: Any,
    ) -> None:
        if url is not None:
            url, prefix = split_prefix(url, prefix)
            if client is not None and url.rstrip("/") in ("redis:", "rediss:", "unix:"):
                url = None  # flinq.open("redis://", client=...): the client says where
        check_name(prefix, "prefix")
        given = None if serializer is None else resolve_serializer(serializer)
        self._own_client = client is None
        self.client, where, self.server_version = connect(url, client, options)
        self.prefix = prefix
        self.path = where if prefix == "flinq" else f"{where}#{prefix}"
        self.readonly = readonly
        self.closed = False
        self._closing = False
        self._keys = StoreKeys(prefix)
        self._scripts = Scripts(self.client)
        self._waits = Waits(self.client, self.path)
        self._queues: dict[str, RedisQueue] = {}
        self._queues_lock = threading.RLock()
        self._consumer_of: tuple[int, str] = (-1, "")
        try:
            with translated(self.path):
                self.serializer: Serializer = self._agree(given)
        except BaseException:
            self._disconnect()
            raise
        with _open_lock:
            _open.add(self)

    def _agree(self, given: Serializer | None) -> Serializer:
        """Check the store's format and agree on its serializer (recorded
        by the first writer)."""
        meta = self._keys.meta
        stored_format = self.client.hget(meta, "format")
        if stored_format is None and self.readonly:
            raise StoreNotFoundError(f"no flinq store at {self.path} (prefix {self.prefix!r})")
        if stored_format is not None and int(stored_format) > FORMAT:
            raise StoreVersionError(
                f"{self.path} was written by a newer flinq (format {int(stored_format)})"
            )
        raw = self.client.hget(meta, "serializer")
        stored = None if raw is None else raw.decode()
        serializer = agree_serializer(stored, given, self.path, self.readonly)
        if stored is None and not self.readonly:
            self.client.hsetnx(meta, "format", FORMAT)
            if not self.client.hsetnx(meta, "serializer", serializer_name(serializer)):
                return self._agree(given)  # another process recorded one first
        return serializer

    # ---- the consumer name -------------------------------------------------------------

    def _consumer(self) -> str:
        """This store's consumer name in the consumer groups: host, process
        and a random part (a forked child gets its own)."""
        pid, name = self._consumer_of
        if pid != os.getpid():
            pid = os.getpid()
            name = f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}"
            self._consumer_of = (pid, name)
        return name

    def _check_open(self) -> None:
        if self._closing:
            raise StoreClosedError(f"the store at {self.path} is closed")

    # ---- queues -------------------------------------------------------------------------

    def _create_queue(self, name: str, given: dict[str, Any]) -> RedisQueue:
        with translated(self.path):
            raw = self.client.hget(self._keys.queues, name)
            stored = None if raw is None else decode_settings(raw, name, self.path)
            settings = merge_settings(name, stored, given)
            if settings != stored:
                self._scripts.create(
                    keys=[self._keys.base(name), self._keys.queues],
                    args=[name, json.dumps(settings.to_dict())],
                )
        queue = RedisQueue(name, settings, self._context())
        self._queues[name] = queue
        with translated(self.path):
            self._recover_dead_consumers(name)
        return queue

    def _recover_dead_consumers(self, name: str) -> None:
        """Give back the messages held by consumers of this host whose
        process has died (their deliveries counted). Messages held by a
        process on another machine come back only through a visibility
        timeout."""
        host = socket.gethostname()
        base = self._keys.base(name)
        for level in self.client.zrange(f"{base}:levels", 0, -1):
            stream = f"{base}:s:{level.decode()}"
            try:
                consumers = self.client.xinfo_consumers(stream, GROUP)
            except redis.ResponseError:
                continue  # no such stream or group (yet)
            for consumer in consumers:
                owner = consumer["name"]
                owner = owner.decode() if isinstance(owner, bytes) else str(owner)
                if _dead_here(owner, host):
                    self._scripts.return_all(keys=[base], args=[owner])

    def _context(self) -> QueueContext:
        return QueueContext(
            client=self.client,
            scripts=self._scripts,
            keys=self._keys,
            waits=self._waits,
            serializer=self.serializer,
            where=self.path,
            consumer=self._consumer,
            check_open=self._check_open,
            closing=lambda: self._closing,
        )

    def queues(self) -> list[str]:
        """Names of the store's queues, sorted."""
        self._check_open()
        with translated(self.path):
            return sorted(name.decode() for name in self.client.hkeys(self._keys.queues))

    def open_queues(self) -> dict[str, RedisQueue]:
        """The queues opened through this store, by name."""
        with self._queues_lock:
            return dict(self._queues)

    def delete_queue(self, name: str) -> None:
        """Delete queue name and every message in it; KeyError if there is none."""
        self._check_open()
        with self._queues_lock, translated(self.path):
            if not self.client.hexists(self._keys.queues, name):
                raise KeyError(name)
            queue = self._queues.pop(name, None)
            if queue is not None:
                queue.detach()
            self._scripts.drop(
                keys=[self._keys.base(name), self._keys.queues], args=[name, "delete"]
            )

    # ---- inspection and administration (flinq stats, peek, purge, requeue) -----------------

    def inspect(self) -> dict[str, Any]:
        """What the store holds, per queue (see DurableStore.inspect)."""
        self._check_open()
        with translated(self.path):
            return inspect.report(self.client, self._keys, self.path)

    def peek(self, name: str, n: int) -> list[dict[str, Any]]:
        """The first n stored messages of queue name, left in place."""
        self._check_open()
        with translated(self.path):
            return inspect.peek(self.client, self._keys, self.path, name, n)

    def purge_queue(self, name: str) -> int:
        """Delete every stored message of queue name; KeyError if unknown."""
        self._check_writable()
        with translated(self.path):
            inspect.queue_settings(self.client, self._keys, self.path, name)
            return int(
                self._scripts.drop(
                    keys=[self._keys.base(name), self._keys.queues], args=[name, "purge"]
                )
            )

    def move_messages(self, source: str, target: str) -> int:
        """Move every message of source to the end of target, all or none;
        attempts start again from 0. Returns how many."""
        self._check_writable()
        if source == target:
            raise ValueError("the source and target queues are the same queue")
        with translated(self.path):
            settings = inspect.queue_settings(self.client, self._keys, self.path, source)
            target_settings = inspect.queue_settings(self.client, self._keys, self.path, target)
            keep = settings.priority and target_settings.priority
            moved = int(
                self._scripts.move(
                    keys=[
                        self._keys.base(source),
                        self._keys.base(target),
                        self._keys.queues,
                        self._keys.seq,
                    ],
                    args=[source, target, "1" if keep else "0"],
                )
            )
        if moved < 0:  # deleted meanwhile
            raise KeyError(f"queue {source!r} or {target!r} was deleted meanwhile")
        return moved

    def _check_writable(self) -> None:
        self._check_open()
        if self.readonly:
            raise StoreError("a store opened with readonly=True cannot be changed")

    # ---- writing and closing -----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Return once the server has everything put before this call (each
        put is acknowledged by the server before it returns: this checks
        the connection). How soon the server writes it to disk is its
        appendfsync setting (docs/redis.md)."""
        self._check_open()
        with translated(self.path):
            self.client.ping()

    def close(self, timeout: float | None = None) -> None:
        """Give back the messages this store holds reserved (ready again,
        their delivery counted), wake every caller blocked in one of its
        queues (StoreClosedError) and disconnect."""
        if self._closing:
            return
        self._closing = True
        try:
            if not self.readonly and os.getpid() == self._consumer_of[0]:
                consumer = self._consumer()
                for queue in self.open_queues().values():
                    try:
                        self._scripts.return_all(
                            keys=[self._keys.base(queue.name)], args=[consumer]
                        )
                    except (redis.ConnectionError, redis.TimeoutError) as exc:
                        _log.warning(
                            "flinq: could not give back the messages reserved from %r at %s "
                            "(%s): they return after their visibility timeout",
                            queue.name,
                            self.path,
                            exc,
                        )
                        break
        finally:
            self._waits.cancel_all()
            for queue in self.open_queues().values():
                queue.detach()
            self.closed = True
            self._disconnect()
            with _open_lock:
                _open.discard(self)

    def _disconnect(self) -> None:
        if self._own_client:
            with contextlib.suppress(redis.RedisError):
                self.client.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<flinq.RedisStore {self.path!r}{state}>"

    # ---- statistics ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The store's own figures: queues open here, the server's version
        and memory in use."""
        self._check_open()
        with translated(self.path):
            memory = self.client.info("memory")
        return {
            "queues": len(self._queues),
            "server_version": self.server_version,
            "used_memory": int(memory.get("used_memory", 0)),
        }
