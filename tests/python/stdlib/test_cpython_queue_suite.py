"""CPython's own queue tests (Lib/test/test_queue.py of the running
interpreter), run against flinq's four classes.

The stdlib's test classes take the module under test as a class attribute
(`queue = ...`); here it is a module whose queue names are flinq's. Skipped
only where the interpreter was installed without its test package.
"""

from __future__ import annotations

import threading
import types
import unittest

import pytest

import flinq

std = pytest.importorskip("test.test_queue", reason="this interpreter has no test package")

flinq_as_queue = types.ModuleType("flinq_as_queue")
for name in ("Queue", "LifoQueue", "PriorityQueue", "SimpleQueue", "Empty", "Full", "ShutDown"):
    setattr(flinq_as_queue, name, getattr(flinq, name))


@pytest.fixture(autouse=True)
def threads_all_end():
    """Every thread a test starts has ended by the time it returns (given a
    grace period, as the stdlib's own thread checks do)."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before]
    for thread in left:
        thread.join(timeout=30)
    assert [t for t in left if t.is_alive()] == []


class TestFlinqQueue(std.QueueTest, unittest.TestCase):
    queue = flinq_as_queue


class TestFlinqLifoQueue(std.LifoQueueTest, unittest.TestCase):
    queue = flinq_as_queue


class TestFlinqPriorityQueue(std.PriorityQueueTest, unittest.TestCase):
    queue = flinq_as_queue


class TestFlinqFailingQueue(std.FailingQueueTest, unittest.TestCase):
    queue = flinq_as_queue


class TestFlinqSimpleQueue(std.CSimpleQueueTest):
    queue = flinq_as_queue
