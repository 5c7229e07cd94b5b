"""What benchmark trials share during one run: payloads, temporary
directories, optional peer packages and a private Redis server."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import random
import shutil
import tempfile
from types import ModuleType, TracebackType
from typing import Any, Final

from flinq.redisstore.urls import redact

PAYLOAD_BYTES: Final = 64
PEERS_EXTRA: Final = "pip install 'flinq[bench]'"


def make_payloads(n: int) -> list[bytes]:
    """n distinct bytes objects of PAYLOAD_BYTES bytes each."""
    return [i.to_bytes(PAYLOAD_BYTES, "little") for i in range(n)]


def make_priorities(n: int) -> list[int]:
    """n int priorities from 0 to 9, in a fixed pseudo-random order."""
    rng = random.Random(20240605)
    return [rng.randrange(10) for _ in range(n)]


def optional_module(name: str) -> ModuleType | None:
    """The module called name, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def required_module(name: str) -> ModuleType:
    """The module called name; a trial asks only after its contender's check."""
    module = optional_module(name)
    if module is None:
        raise RuntimeError(f"{name} is not installed")
    return module


def missing_reason(module: str, package: str, extra: str = PEERS_EXTRA) -> str | None:
    """A skip reason when module cannot be imported, else None."""
    if optional_module(module) is None:
        return f"{package} is not installed ({extra})"
    return None


class Env:
    """Resources for one benchmark run; use as a context manager so that the
    temporary directory and a private Redis server are cleaned up."""

    def __init__(self, *, redis_url: str | None = None) -> None:
        self.redis_url = redis_url
        self._root: str | None = None
        self._payloads: list[bytes] = []
        self._priorities: list[int] = []
        self._names = itertools.count()
        self._redis_client: Any = None
        self._redis_reason: str | None = None
        self._redis_checked = False
        self._redis_server: Any = None  # a flinq.redisstore.server.RedisServer
        #: The URL flinq.open reaches the Redis server by (--redis-url, or the private one's).
        self.redis_store_url: str | None = redis_url
        #: How Redis is reached: "private redis-server ...", or the URL given.
        self.redis_description = ""
        self.redis_server_version: str | None = None

    def __enter__(self) -> Env:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- data built before timing -------------------------------------------

    def payloads(self, n: int) -> list[bytes]:
        """The first n of one shared list of distinct 64-byte payloads."""
        if len(self._payloads) < n:
            self._payloads = make_payloads(n)
        return self._payloads[:n]

    def priorities(self, n: int) -> list[int]:
        """The first n of one shared list of priorities 0-9."""
        if len(self._priorities) < n:
            self._priorities = make_priorities(n)
        return self._priorities[:n]

    # ---- files ---------------------------------------------------------------

    @property
    def root(self) -> str:
        """This run's temporary directory (created on first use)."""
        if self._root is None:
            self._root = tempfile.mkdtemp(prefix="flinq-bench-")
        return self._root

    def tempdir(self, prefix: str) -> str:
        """A new empty directory inside root."""
        return tempfile.mkdtemp(prefix=prefix, dir=self.root)

    def unique_name(self, prefix: str) -> str:
        """A name not used before in this run (Redis keys, queue names)."""
        return f"{prefix}{os.getpid()}-{next(self._names)}"

    # ---- Redis -------------------------------------------------------------------

    def redis(self) -> Any:
        """A redis-py client; call redis_unavailable() first."""
        if self.redis_unavailable() is not None:
            raise RuntimeError(f"Redis is not available: {self._redis_reason}")
        return self._redis_client

    def redis_unavailable(self) -> str | None:
        """Why Redis cannot be used here, or None once a server answers.

        With a URL, that server is used; otherwise a private redis-server is
        started on a free 127.0.0.1 port with AOF (appendfsync everysec) in a
        temporary directory, and stopped by close().
        """
        if not self._redis_checked:
            self._redis_checked = True
            self._redis_reason = self._connect_redis()
        return self._redis_reason

    def _connect_redis(self) -> str | None:
        redis = optional_module("redis")
        if redis is None:
            return f"redis-py is not installed ({PEERS_EXTRA})"
        if self.redis_url:
            try:
                client = redis.Redis.from_url(self.redis_url, socket_timeout=30)
                client.ping()
                self.redis_server_version = str(client.info("server").get("redis_version"))
            except Exception as exc:
                return f"cannot reach --redis-url {redact(self.redis_url)}: {exc}"
            self._redis_client = client
            self.redis_description = (
                f"Redis at {redact(self.redis_url)} (its own persistence settings)"
            )
            return None
        from flinq.redisstore.server import redis_server_path

        if redis_server_path() is None:
            return "redis-server is not on PATH (install it, or pass --redis-url)"
        return self._start_redis(redis)

    def _start_redis(self, redis: ModuleType) -> str | None:
        from flinq.redisstore.server import RedisServer

        try:
            server = RedisServer(self.tempdir("redis-"), aof=True, appendfsync="everysec")
            server.start()
        except (OSError, RuntimeError) as exc:
            return f"cannot start redis-server: {exc}"
        self._redis_server = server
        self.redis_store_url = server.url
        client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=30)
        self._redis_client = client
        self.redis_server_version = str(client.info("server").get("redis_version"))
        self.redis_description = (
            f"private redis-server {self.redis_server_version} on 127.0.0.1:{server.port}, "
            "appendonly yes, appendfsync everysec, in a temporary directory"
        )
        return None

    def _stop_redis(self) -> None:
        server, self._redis_server = self._redis_server, None
        if server is not None:
            server.close()

    # ---- teardown --------------------------------------------------------------

    def close(self) -> None:
        """Stop a private Redis server and remove the temporary directory."""
        if self._redis_client is not None:
            with contextlib.suppress(Exception):
                self._redis_client.close()
            self._redis_client = None
        self._stop_redis()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
