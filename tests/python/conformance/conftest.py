"""The conformance suite's one fixture: a way to open a store of each backend.

A new backend passes the suite unchanged by adding one entry to BACKENDS:
a function (tmp_path) -> opener, where opener(**options) opens (or reopens)
the same store every time it is called, and the store's data outlives a
close(). Options the suite passes: none, or serializer="json".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redishelpers import fresh_prefix, shared_server

import flinq
from flinq.protocols import DurableStore

Opener = Callable[..., DurableStore]


def _lmdb(tmp_path: Path) -> Opener:
    location = tmp_path / "store"

    def open_(**options: Any) -> DurableStore:
        return flinq.open(location, **{"flush_interval": 0.002, **options})

    return open_


def _redis(tmp_path: Path) -> Opener:
    # One private redis-server for the session; each test a prefix of its own.
    url = shared_server().url
    prefix = fresh_prefix()

    def open_(**options: Any) -> DurableStore:
        return flinq.open(url, **{"prefix": prefix, **options})

    return open_


#: Backend name -> (tmp_path -> opener).
BACKENDS: dict[str, Callable[[Path], Opener]] = {"lmdb": _lmdb, "redis": _redis}


@pytest.fixture(params=sorted(BACKENDS))
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """opener(**options) -> a store of the backend under test (the same one
    each time); every store it opened is closed at teardown."""
    make = BACKENDS[request.param](tmp_path)
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
