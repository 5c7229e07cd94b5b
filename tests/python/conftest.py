"""pytest configuration for the flinq Python tests."""

from __future__ import annotations

import os
import sys

# Make the helper module next to this file importable regardless of pytest's import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from collections.abc import Iterator

import pytest
from redishelpers import stop_shared_server


@pytest.fixture(scope="session", autouse=True)
def _stop_redis_at_the_end() -> Iterator[None]:
    """The Redis tests share one private redis-server; stop it at the end."""
    yield
    stop_shared_server()
