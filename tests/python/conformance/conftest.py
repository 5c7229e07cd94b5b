"""The conformance suite's fixtures: a way to open a store of each backend,
and to damage what it stores.

A new backend passes the suite unchanged by adding one entry to BACKENDS:
a function (tmp_path) -> Backend, whose open(**options) opens (or reopens)
the same store every time it is called, the store's data outliving a
close(). Options the suite passes: none, serializer="json" or readonly=True.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import pytest
from redishelpers import fresh_prefix, shared_server

import flinq
from flinq.protocols import DurableStore

Opener = Callable[..., DurableStore]


@dataclass(frozen=True)
class Backend:
    """How the suite reaches one backend's store."""

    #: open(**options) -> the store (the same one each time).
    open: Opener
    #: write_settings(queue, raw): store raw as queue's settings, as damage
    #: would leave them; called while no store is open.
    write_settings: Callable[[str, bytes], None]


def _lmdb(tmp_path: Path) -> Backend:
    location = tmp_path / "store"

    def open_(**options: Any) -> DurableStore:
        return flinq.open(location, **{"flush_interval": 0.002, **options})

    def write_settings(queue: str, raw: bytes) -> None:
        env = lmdb.open(str(location), max_dbs=8)
        with env.begin(write=True) as txn:
            txn.put(queue.encode(), raw, db=env.open_db(b"queues", txn=txn, create=False))
        env.close()

    return Backend(open_, write_settings)


def _redis(tmp_path: Path) -> Backend:
    # One private redis-server for the session; each test a prefix of its own.
    url = shared_server().url
    prefix = fresh_prefix()

    def open_(**options: Any) -> DurableStore:
        return flinq.open(url, **{"prefix": prefix, **options})

    def write_settings(queue: str, raw: bytes) -> None:
        import redis  # shared_server() skipped the test if it is missing

        client = redis.Redis.from_url(url)
        try:
            client.hset(f"{prefix}:queues", queue, raw)
        finally:
            client.close()

    return Backend(open_, write_settings)


#: Backend name -> (tmp_path -> Backend).
BACKENDS: dict[str, Callable[[Path], Backend]] = {"lmdb": _lmdb, "redis": _redis}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The backend under test, with a store of its own."""
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
def opener(backend: Backend) -> Iterator[Opener]:
    """opener(**options) -> a store of the backend under test (the same one
    each time); every store it opened is closed at teardown."""
    make = backend.open
    opened: list[DurableStore] = []

    def open_(**options: Any) -> DurableStore:
        store = make(**options)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        with contextlib.suppress(flinq.StoreError):
            store.close()


@pytest.fixture
def store(opener: Opener) -> DurableStore:
    """A store of the backend under test."""
    return opener()
