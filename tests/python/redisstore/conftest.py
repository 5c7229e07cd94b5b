"""Fixtures of the Redis backend's tests: the session's redis-server, a
store URL with a prefix of its own per test, and private servers for tests
that kill or restart theirs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redishelpers import available, fresh_prefix, shared_server

import flinq

if available() is None:
    from flinq.redisstore.server import RedisServer


@pytest.fixture
def url() -> str:
    """A URL of a store of its own on the session's redis-server."""
    return f"{shared_server().url}?prefix={fresh_prefix()}"


@pytest.fixture
def stores() -> Iterator[Callable[..., Any]]:
    """open_(url, **options): flinq.open, with every store closed at teardown."""
    opened: list[Any] = []

    def open_(target: str, **options: Any) -> Any:
        store = flinq.open(target, **options)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        with contextlib.suppress(flinq.StoreError):
            store.close()


@pytest.fixture
def private_server() -> Iterator[Callable[..., Any]]:
    """make(**options) -> a started RedisServer of the test's own, closed at teardown."""
    reason = available()
    if reason is not None:
        pytest.skip(reason)
    servers: list[Any] = []

    def make(**options: Any) -> Any:
        server = RedisServer(**options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
