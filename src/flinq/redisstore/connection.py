"""Talking to the Redis server: connecting by URL or client, the server
version check, errors named without passwords, and blocking waits that
close() can cut short.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import redis

from flinq.errors import StoreClosedError, StoreConnectionError, StoreVersionError
from flinq.redisstore.urls import redact

__all__ = [
    "MIN_VERSION",
    "Waits",
    "check_version",
    "connect",
    "replies",
    "translated",
]

# hiredis packs a command's arguments (bytes, str, int) itself, at about half
# the cost of redis-py's packer, which looks at each argument first.
_pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _pack_command
except ImportError:  # redis-py without hiredis
    _pack_command = None

#: The oldest server the backend runs on: XAUTOCLAIM came in 6.2.
MIN_VERSION = (6, 2)
# A wait on the server never lasts longer than this (seconds): a waiter then
# looks at its store's state and deadlines again.
_LONGEST_WAIT = 1.0


def check_version(version: str) -> tuple[int, ...]:
    """The server version as numbers; StoreVersionError naming it if it is
    older than MIN_VERSION (Streams came in 5.0, XAUTOCLAIM in 6.2)."""
    try:
        numbers = tuple(int(part) for part in version.split(".")[:3])
    except ValueError:
        raise StoreVersionError(f"cannot read the Redis server's version {version!r}") from None
    if numbers < (5, 0):
        raise StoreVersionError(
            f"Redis {version} has no Streams (5.0+); flinq needs Redis 6.2 or newer"
        )
    if numbers < MIN_VERSION:
        raise StoreVersionError(
            f"Redis {version} has no XAUTOCLAIM (6.2+); flinq needs Redis 6.2 or newer"
        )
    return numbers


@contextlib.contextmanager
def translated(where: str, closing: Callable[[], bool] | None = None) -> Iterator[None]:
    """redis-py's connection errors as StoreConnectionError naming where
    (a redacted URL), or StoreClosedError if closing() says the store is
    closing (close() disconnects under callers still waiting)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if closing is not None and closing():
            raise StoreClosedError("the store was closed") from exc
        raise StoreConnectionError(f"lost the Redis server at {where}: {exc}") from exc


def connect(url: str | None, client: Any, options: dict[str, Any]) -> tuple[Any, str, str]:
    """(client, where, version): a redis-py client for url (or client as
    given), the redacted URL naming it, and the server's version, checked.
    StoreConnectionError if the server cannot be reached."""
    if client is not None:
        if url is not None:
            raise TypeError("pass a URL or client=, not both")
        if not isinstance(client, redis.Redis):
            raise TypeError(f"client must be a redis.Redis, not {type(client).__name__}")
        kwargs = client.get_connection_kwargs()
        if kwargs.get("decode_responses"):
            raise ValueError("client= must be made with decode_responses=False (bodies are bytes)")
        where = _describe(kwargs)
    else:
        if not isinstance(url, str):
            raise TypeError(f"the URL must be a str, not {type(url).__name__}")
        where = redact(url)
        try:
            client = redis.Redis.from_url(url, decode_responses=False, **options)
        except ValueError as exc:
            raise ValueError(f"bad Redis URL {where}: {exc}") from None
    try:
        info = client.info("server")
    except redis.AuthenticationError as exc:
        raise StoreConnectionError(f"the Redis server at {where} refused us: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreConnectionError(f"cannot reach the Redis server at {where}: {exc}") from None
    except redis.ResponseError as exc:
        raise StoreConnectionError(f"the Redis server at {where} refused INFO: {exc}") from None
    version = str(info.get("redis_version", "0"))
    check_version(version)
    return client, where, version


def replies(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send commands in one round trip on one of client's connections and
    return their replies as the server sent them, without redis-py's
    per-command parsing (a stream read stays nested lists instead of a dict
    per entry); an error reply comes back as its ResponseError in its place.
    A lost connection is retried as redis-py retries a pipeline."""
    pool = client.connection_pool
    connection = pool.get_connection()
    # One write: a batch split across writes can wake the server for each part.
    if _pack_command is not None:
        packed = b"".join([_pack_command(command) for command in commands])
    else:
        packed = b"".join(connection.pack_commands(commands))

    def exchange() -> list[Any]:
        connection.send_packed_command([packed])
        out: list[Any] = []
        for _ in commands:
            try:
                out.append(connection.read_response())
            except redis.ResponseError as exc:
                out.append(exc)
        return out

    try:
        out: list[Any] = connection.retry.call_with_retry(
            exchange, lambda _error: connection.disconnect()
        )
        return out
    except BaseException:
        connection.disconnect()  # replies may be left unread: never reuse it
        raise
    finally:
        pool.release(connection)


def _describe(kwargs: dict[str, Any]) -> str:
    """A URL-like name for a client's connection settings (no password)."""
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"


class Waits:
    """Blocking waits on the server (XREAD BLOCK) that close() can end.

    Each wait runs on a connection of its own from the client's pool, whose
    client id is registered while it waits; cancel_all() unblocks them all
    (CLIENT UNBLOCK), and every wait is at most a second long, so a waiter
    looks at its store's state again soon even if an unblock was missed."""

    def __init__(self, client: Any, where: str) -> None:
        self._client = client
        self._where = where
        self._lock = threading.Lock()
        self._waiting: set[int] = set()
        self._closed = False

    def wait(self, streams: list[tuple[str, str]], seconds: float) -> None:
        """Return once an entry newer than the given id is added to one of
        streams ((key, last id) pairs), or after seconds (at most a second);
        StoreClosedError once cancel_all() was called."""
        pool = self._client.connection_pool
        ms = max(1, int(min(seconds, _LONGEST_WAIT) * 1000))
        with translated(self._where, lambda: self._closed):
            connection = pool.get_connection()
            try:
                # Asked each time: a connection that reconnected has a new id.
                connection.send_command("CLIENT", "ID")
                client_id = int(connection.read_response())
                with self._lock:
                    if self._closed:
                        raise StoreClosedError("the store was closed")
                    self._waiting.add(client_id)
                try:
                    keys = [key for key, _ in streams]
                    ids = [last for _, last in streams]
                    connection.send_command("XREAD", "BLOCK", ms, "STREAMS", *keys, *ids)
                    connection.read_response()
                finally:
                    with self._lock:
                        self._waiting.discard(client_id)
            except BaseException:
                connection.disconnect()
                raise
            finally:
                pool.release(connection)
        if self._closed:
            raise StoreClosedError("the store was closed")

    def cancel_all(self) -> None:
        """End every wait (now and later) with StoreClosedError."""
        with self._lock:
            self._closed = True
            waiting = list(self._waiting)
        for client_id in waiting:
            with contextlib.suppress(redis.RedisError):
                self._client.client_unblock(client_id)
