"""pytest configuration for the ProcessQueue tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

# Child processes started with spawn import their target from phelpers.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flinq import ProcessQueue

if not ProcessQueue.supported():
    pytest.skip("ProcessQueue is not supported on this platform", allow_module_level=True)


@pytest.fixture
def pq() -> Iterator[ProcessQueue]:
    q = ProcessQueue()
    yield q
    q.close()
