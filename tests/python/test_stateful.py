"""Model-based tests: each flinq queue against the stdlib class it replaces.

Every rule runs the same operation on the flinq queue and on the stdlib model
and compares the results (or the types of the exceptions raised). Python < 3.13
has no queue shutdown, so the model adds the 3.13 semantics itself.
"""

from __future__ import annotations

import queue

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from qhelpers import spawn

import flinq

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

items = st.integers(-50, 50)
item_lists = st.lists(items, min_size=1, max_size=7)
priorities = st.one_of(st.integers(-3, 3), st.sampled_from([INT64_MIN, INT64_MAX]))

# Blocking calls are only made when they must return at once; the timeout turns
# a wrong wait into a failure instead of a hang.
GUARD = 10.0


def outcome(fn, *args, **kwargs):
    """('ok', result) or ('err', exception type)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:
        return ("err", type(exc))


class Model:
    """A stdlib queue plus Python 3.13 shutdown semantics where the stdlib lacks them."""

    def __init__(self, q):
        self.q = q
        self.native = hasattr(q, "shutdown")
        self._shut = False

    @property
    def is_shutdown(self):
        return self.q.is_shutdown if self.native else self._shut

    def put_nowait(self, item):
        if not self.native and self._shut:
            raise flinq.ShutDown
        self.q.put_nowait(item)

    def get_nowait(self):
        if not self.native and self._shut and self.q.empty():
            raise flinq.ShutDown
        return self.q.get_nowait()

    def shutdown(self, immediate):
        if self.native:
            self.q.shutdown(immediate=immediate)
            return
        self._shut = True
        if immediate:
            while not self.q.empty():
                self.q.get_nowait()
                if self.q.unfinished_tasks > 0:
                    self.q.unfinished_tasks -= 1


class BoundedQueueMachine(RuleBasedStateMachine):
    """flinq.Queue against queue.Queue (subclasses swap the classes)."""

    flinq_cls: type = flinq.Queue
    model_cls: type = queue.Queue

    def __init__(self):
        super().__init__()
        self.q = None
        self.model = None
        self.maxsize = 0
        self.enqueued = 0
        self.dequeued = 0
        self.high_water = 0
        self.discarded = False  # an immediate shutdown dropped items

    @initialize(maxsize=st.sampled_from([0, -1, 1, 2, 3, 5]))
    def setup(self, maxsize):
        self.maxsize = maxsize
        self.q = self.flinq_cls(maxsize)
        self.model = Model(self.model_cls(maxsize))

    # ---- helpers, overridden by the priority fast-path machine

    def flinq_put_nowait(self, item):
        self.q.put_nowait(item)

    def model_put_nowait(self, item):
        self.model.put_nowait(item)

    def flinq_put_many(self, batch, **kw):
        self.q.put_many(batch, **kw)

    def model_value(self, raw):
        return raw

    # ---- bookkeeping

    def _added(self, n):
        self.enqueued += n
        self.high_water = max(self.high_water, self.model.q.qsize())

    def _bounded(self):
        return self.maxsize > 0

    # ---- rules

    @rule(item=items)
    def put_nowait(self, item):
        got = outcome(self.flinq_put_nowait, item)
        want = outcome(self.model_put_nowait, item)
        assert got == want
        if got[0] == "ok":
            self._added(1)

    @rule(item=items)
    def put_blocking_when_room(self, item):
        # Only when put() must return at once: room left, or shut down.
        if self.model.is_shutdown:
            got = outcome(self.q.put, item, timeout=GUARD)
            assert got == ("err", flinq.ShutDown)
            return
        if self._bounded() and self.model.q.qsize() >= self.maxsize:
            return
        got = outcome(self.q.put, item, True, GUARD)
        self.model_put_nowait(item)
        assert got == ("ok", None)
        self._added(1)

    @rule()
    def get_nowait(self):
        got = outcome(self.q.get_nowait)
        want = outcome(self.model.get_nowait)
        if want[0] == "ok":
            want = ("ok", self.model_value(want[1]))
        assert got == want
        if got[0] == "ok":
            self.dequeued += 1

    @rule()
    def get_blocking_when_ready(self):
        # Only when get() must return at once: an item, or shut down.
        if self.model.q.empty() and not self.model.is_shutdown:
            return
        got = outcome(self.q.get, True, GUARD)
        want = outcome(self.model.get_nowait)
        if want[0] == "ok":
            want = ("ok", self.model_value(want[1]))
        assert got == want
        if got[0] == "ok":
            self.dequeued += 1

    @rule(batch=item_lists, block=st.booleans())
    def put_many(self, batch, block):
        n = len(batch)
        too_big = self._bounded() and n > self.maxsize
        no_room = self._bounded() and self.model.q.qsize() + n > self.maxsize
        if self.model.is_shutdown:
            expected = {flinq.ShutDown, ValueError} if too_big else {flinq.ShutDown}
        elif too_big:
            expected = {ValueError}
        elif no_room:
            expected = {queue.Full}
        else:
            expected = None
        if expected is not None and block and not too_big and not self.model.is_shutdown:
            # A blocking put_many would wait: use a short timeout instead.
            got = outcome(self.flinq_put_many, batch, timeout=0.001)
        else:
            got = outcome(self.flinq_put_many, batch, block=block, timeout=GUARD)
        if expected is None:
            assert got == ("ok", None)
            for item in batch:
                self.model_put_nowait(item)
            self._added(n)
        else:
            assert got[0] == "err", got
            assert got[1] in expected, (got, expected)

    @rule(max_items=st.integers(1, 6), block=st.booleans())
    def get_many(self, max_items, block):
        if self.model.q.empty():
            if block and not self.model.is_shutdown:
                got = outcome(self.q.get_many, max_items, timeout=0.001)
            else:
                got = outcome(self.q.get_many, max_items, block=block)
            assert got == ("err", flinq.ShutDown if self.model.is_shutdown else queue.Empty)
            return
        got = outcome(self.q.get_many, max_items, block=block, timeout=GUARD)
        assert got[0] == "ok", got
        batch = got[1]
        assert isinstance(batch, list)
        assert 1 <= len(batch) <= min(max_items, self.model.q.qsize())
        want = [self.model_value(self.model.get_nowait()) for _ in batch]
        assert batch == want
        self.dequeued += len(batch)

    @rule()
    def task_done(self):
        got = outcome(self.q.task_done)
        want = outcome(self.model.q.task_done)
        assert got == want

    @precondition(lambda self: self.model is not None and self.model.q.unfinished_tasks == 0)
    @rule()
    def join_when_nothing_pending(self):
        worker = spawn(self.q.join)  # must return at once
        assert worker.join(GUARD), "join() blocked with no unfinished task"
        assert worker.exc is None, worker.exc

    @rule(immediate=st.booleans())
    def shutdown(self, immediate):
        if immediate and not self.model.q.empty():
            self.discarded = True
        self.q.shutdown(immediate=immediate)
        self.model.shutdown(immediate)

    # ---- invariants

    @invariant()
    def sizes_agree(self):
        if self.model is None:
            return
        assert self.q.qsize() == self.model.q.qsize()
        assert self.q.empty() == self.model.q.empty()
        assert self.q.full() == self.model.q.full()

    @invariant()
    def stats_agree(self):
        if self.model is None:
            return
        s = self.q.stats()
        assert s["depth"] == self.model.q.qsize()
        assert s["maxsize"] == self.maxsize or (self.maxsize <= 0 and s["maxsize"] <= 0)
        assert s["enqueued"] == self.enqueued
        assert s["high_water"] == self.high_water
        if not self.discarded:
            assert s["dequeued"] == self.dequeued


class LifoQueueMachine(BoundedQueueMachine):
    flinq_cls = flinq.LifoQueue
    model_cls = queue.LifoQueue


class PriorityDropInMachine(BoundedQueueMachine):
    flinq_cls = flinq.PriorityQueue
    model_cls = queue.PriorityQueue

    @precondition(lambda self: self.enqueued > 0)
    @rule(item=items, prio=priorities)
    def wrong_style_put_is_type_error(self, item, prio):
        # The style was fixed by the first successful put: mixing changes nothing.
        got = outcome(self.q.put_nowait, item, priority=prio)
        if self.model.is_shutdown or self.model.q.full():
            assert got[0] == "err"
        else:
            assert got == ("err", TypeError)

    @rule(batch=item_lists, pos=st.integers(0, 7))
    def put_many_with_incomparable_item(self, batch, pos):
        # A batch whose items cannot all be compared fails as a whole.
        batch = [*batch[:pos], "not an int", *batch[pos:]]
        if self.model.is_shutdown:
            return
        if self._bounded() and self.model.q.qsize() + len(batch) > self.maxsize:
            return
        got = outcome(self.q.put_many, batch, block=False)
        assert got == ("err", TypeError)


class PriorityFastPathMachine(BoundedQueueMachine):
    """put(item, priority=n): modelled as queue.PriorityQueue of (n, seq, item)."""

    flinq_cls = flinq.PriorityQueue
    model_cls = queue.PriorityQueue

    def __init__(self):
        super().__init__()
        self.seq = 0
        self.next_priority = 0

    def _entry(self, item, prio):
        self.seq += 1
        return (prio, self.seq, item)

    def flinq_put_nowait(self, item):
        self.q.put_nowait(item, priority=self.next_priority)

    def model_put_nowait(self, item):
        self.model.put_nowait(self._entry(item, self.next_priority))

    def flinq_put_many(self, batch, **kw):
        self.q.put_many(batch, priority=self.next_priority, **kw)

    def model_value(self, raw):
        return raw[2]

    @rule(prio=priorities)
    def choose_priority(self, prio):
        self.next_priority = prio

    def _blocking_put(self, item):
        return self.q.put(item, True, GUARD, priority=self.next_priority)

    @rule(item=items)
    def put_blocking_when_room(self, item):
        if self.model.is_shutdown:
            assert outcome(self._blocking_put, item) == ("err", flinq.ShutDown)
            return
        if self._bounded() and self.model.q.qsize() >= self.maxsize:
            return
        assert outcome(self._blocking_put, item) == ("ok", None)
        self.model_put_nowait(item)
        self._added(1)

    @precondition(lambda self: self.enqueued > 0)
    @rule(item=items)
    def wrong_style_put_is_type_error(self, item):
        got = outcome(self.q.put_nowait, item)
        if self.model.is_shutdown or self.model.q.full():
            assert got[0] == "err"
        else:
            assert got == ("err", TypeError)


class SimpleQueueMachine(RuleBasedStateMachine):
    """flinq.SimpleQueue against queue.SimpleQueue."""

    def __init__(self):
        super().__init__()
        self.q = flinq.SimpleQueue()
        self.model = queue.SimpleQueue()
        self.enqueued = 0
        self.dequeued = 0
        self.high_water = 0

    def _added(self, n):
        self.enqueued += n
        self.high_water = max(self.high_water, self.model.qsize())

    @rule(item=items)
    def put_nowait(self, item):
        assert outcome(self.q.put_nowait, item) == outcome(self.model.put_nowait, item)
        self._added(1)

    @rule(item=items)
    def put(self, item):
        assert outcome(self.q.put, item) == outcome(self.model.put, item)
        self._added(1)

    @rule()
    def get_nowait(self):
        got = outcome(self.q.get_nowait)
        assert got == outcome(self.model.get_nowait)
        if got[0] == "ok":
            self.dequeued += 1

    @rule()
    def get_blocking_when_ready(self):
        if self.model.empty():
            return
        got = outcome(self.q.get, True, GUARD)
        assert got == outcome(self.model.get_nowait)
        self.dequeued += 1

    @rule(batch=st.lists(items, max_size=7))
    def put_many(self, batch):
        assert outcome(self.q.put_many, batch) == ("ok", None)
        for item in batch:
            self.model.put(item)
        self._added(len(batch))

    @rule(max_items=st.integers(1, 6), block=st.booleans())
    def get_many(self, max_items, block):
        if self.model.empty():
            kw = {"timeout": 0.001} if block else {"block": False}
            assert outcome(self.q.get_many, max_items, **kw) == ("err", queue.Empty)
            return
        got = outcome(self.q.get_many, max_items, block, GUARD)
        assert got[0] == "ok", got
        assert 1 <= len(got[1]) <= min(max_items, self.model.qsize())
        assert got[1] == [self.model.get_nowait() for _ in got[1]]
        self.dequeued += len(got[1])

    @invariant()
    def sizes_agree(self):
        assert self.q.qsize() == self.model.qsize()
        assert self.q.empty() == self.model.empty()
        s = self.q.stats()
        assert s["depth"] == self.model.qsize()
        assert (s["enqueued"], s["dequeued"], s["high_water"]) == (
            self.enqueued,
            self.dequeued,
            self.high_water,
        )


TestQueue = BoundedQueueMachine.TestCase
TestQueue.settings = SETTINGS
TestLifoQueue = LifoQueueMachine.TestCase
TestLifoQueue.settings = SETTINGS
TestPriorityQueueDropIn = PriorityDropInMachine.TestCase
TestPriorityQueueDropIn.settings = SETTINGS
TestPriorityQueueFastPath = PriorityFastPathMachine.TestCase
TestPriorityQueueFastPath.settings = SETTINGS
TestSimpleQueue = SimpleQueueMachine.TestCase
TestSimpleQueue.settings = SETTINGS
