"""The writer thread sleeps until there is work: one scheduler for
redeliveries and delayed nacks, no periodic wake-ups when idle."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from dhelpers import FAST

from flinq.lmdbstore.scheduler import Scheduler


def _writer_wakeups(store_path: str) -> int:
    """Voluntary context switches of the store's writer thread so far (Linux)."""
    for thread in threading.enumerate():
        if thread.name == f"flinq-writer:{store_path}":
            with open(f"/proc/self/task/{thread.native_id}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        return int(line.split()[1])
    raise AssertionError("no writer thread")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_an_idle_store_writer_does_not_wake(opener):
    store = opener(flush_interval=0.001)
    q = store.queue("jobs", visibility_timeout=3600)
    q.put(1)
    q.reserve(timeout=0)  # a visibility deadline an hour away
    store.flush()
    time.sleep(1.5)  # the status file is rewritten at most once a second after a change
    before = _writer_wakeups(store.path)
    time.sleep(0.5)
    # The old writer woke every flush_interval: ~500 times here.
    assert _writer_wakeups(store.path) - before <= 2


def test_scheduler_runs_calls_in_deadline_order_and_survives_a_failing_one(caplog):
    woken = []
    scheduler = Scheduler(lambda: woken.append(True))
    ran = []
    scheduler.call_at(3.0, lambda now: ran.append(("c", now)))
    scheduler.call_at(1.0, lambda now: ran.append(("a", now)))
    scheduler.call_at(2.0, lambda now: 1 / 0)
    assert len(woken) == 2  # a new earliest deadline wakes the runner; a later one does not
    assert scheduler.next_deadline() == 1.0
    assert scheduler.run_due(2.5) == 2
    assert ran == [("a", 2.5)]
    assert "ZeroDivisionError" in caplog.text
    assert scheduler.next_deadline() == 3.0
    assert scheduler.run_due(3.0) == 1
    assert scheduler.next_deadline() is None


def test_delayed_nacks_and_visibility_timeouts_share_the_writers_schedule(opener):
    store = opener(**FAST)
    q = store.queue("jobs", visibility_timeout=0.05)
    q.put_many(["timed-out", "delayed"])
    q.reserve(timeout=0)  # never acked: back after 0.05 s
    q.reserve(timeout=0).nack(delay=0.1)
    got = [q.reserve(timeout=10).body, q.reserve(timeout=10).body]
    assert sorted(got) == ["delayed", "timed-out"]
