"""A private redis-server for the tests, shared by the session: started on
first use, stopped at the end (tests/python/conftest.py). Tests that need it
skip when redis-server or redis-py is missing, unless FLINQ_REQUIRE_REDIS=1
(set by .ci/run) makes that a failure."""

from __future__ import annotations

import os
import uuid

import pytest

from flinq.redisstore.server import RedisServer, redis_server_path

_server: RedisServer | None = None


def available() -> str | None:
    """Why Redis tests cannot run here, or None if they can."""
    reason = None
    if redis_server_path() is None:
        reason = "redis-server is not on PATH"
    else:
        try:
            import redis  # noqa: F401
        except ImportError:
            reason = "redis-py is not installed (pip install 'flinq[redis]')"
    if reason is not None and os.environ.get("FLINQ_REQUIRE_REDIS") == "1":
        pytest.fail(f"FLINQ_REQUIRE_REDIS=1 but {reason}", pytrace=False)
    return reason


def shared_server() -> RedisServer:
    """The session's redis-server (skips the test if there cannot be one)."""
    global _server
    reason = available()
    if reason is not None:
        pytest.skip(reason)
    if _server is None or _server.process is None or _server.process.poll() is not None:
        _server = RedisServer().start()
    return _server


def stop_shared_server() -> None:
    """Stop the session's redis-server, if one was started."""
    global _server
    if _server is not None:
        _server.close()
        _server = None


def fresh_prefix() -> str:
    """A key prefix no other test uses: a store of its own on the shared server."""
    return f"t{uuid.uuid4().hex[:12]}"
