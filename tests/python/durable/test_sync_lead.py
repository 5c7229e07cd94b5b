"""Sync-mode group commit when a producer leaves early: an exception in the
thread leading a commit, or in one waiting for its commit (Ctrl-C), must
not leave the store without a leader (every later sync put and close()
would wait forever). Blocking calls have timeouts; no test asserts on speed."""

from __future__ import annotations

import contextlib
import threading

import pytest
from dhelpers import ok, run_script, stored
from qhelpers import spawn

import flinq
from flinq.lmdbstore.log import PendingLog, Waiter, settle_all

T = 30.0


def test_an_exception_in_the_leader_leaves_a_leader(path, monkeypatch):
    real_drain = PendingLog.drain
    failures = [RuntimeError("injected")]

    def drain_failing_once(self: PendingLog) -> list:
        if failures:
            raise failures.pop()
        return real_drain(self)

    monkeypatch.setattr(PendingLog, "drain", drain_failing_once)
    store = flinq.open(path, durability="sync")
    q = store.queue("q")
    with pytest.raises(RuntimeError, match="injected"):
        q.put("first")
    later = spawn(q.put, "second")
    later.value(T)  # before the fix: waits for a leader that left
    closing = spawn(store.close, T)
    closing.value(T)
    assert "second" in stored(path, "q")


INTERRUPTED_WAITER = """
import os, signal, sys, threading
import flinq
from flinq.lmdbstore.log import PendingLog, Waiter

path = sys.argv[1]
T = 30.0
in_commit = threading.Event()
release_commit = threading.Event()
main_waits = threading.Event()
real_commit = PendingLog.commit
real_wait = Waiter.wait

def commit(self, batch, *rest):
    if threading.current_thread().name == "leader":
        in_commit.set()  # the leader holds the lead, its own put drained
        release_commit.wait(T)
    return real_commit(self, batch, *rest)

def wait(self):
    if threading.current_thread() is threading.main_thread():
        main_waits.set()
    return real_wait(self)

PendingLog.commit = commit
Waiter.wait = wait
store = flinq.open(path, durability="sync")
q = store.queue("q")
leader = threading.Thread(target=q.put, args=("led",), name="leader")
leader.start()
assert in_commit.wait(T)

def interrupt_main():
    assert main_waits.wait(T)
    threading.Event().wait(0.1)  # let the main thread reach its sleep
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    # the main thread left its wait: now the leader ends its commit and
    # hands the lead to the oldest pending put, the main thread's
    release_commit.set()

threading.Thread(target=interrupt_main).start()
try:
    q.put("interrupted")  # waits behind the leader's commit
    print("not interrupted")
    sys.exit(1)
except KeyboardInterrupt:
    pass
leader.join(T)
assert not leader.is_alive()
after = threading.Thread(target=q.put, args=("after",), daemon=True)
after.start()
after.join(T)
assert not after.is_alive(), "a sync put found no leader"
closer = threading.Thread(target=store.close, daemon=True)
closer.start()
closer.join(T)
assert not closer.is_alive(), "close() found no leader"
print("ok")
"""


def test_an_interrupted_waiter_hands_the_lead_on(path):
    out = ok(run_script(INTERRUPTED_WAITER, path))
    assert out.split() == ["ok"]
    assert {"led", "after"} <= set(stored(path, "q"))


def test_threads_keep_committing_after_one_leaves(path, monkeypatch):
    # Many producers; one of them raises in the middle of a commit it leads.
    real_drain = PendingLog.drain
    failed = threading.Event()

    def drain(self: PendingLog) -> list:
        if threading.current_thread().name == "unlucky" and not failed.is_set():
            failed.set()
            raise RuntimeError("injected")
        return real_drain(self)

    monkeypatch.setattr(PendingLog, "drain", drain)
    store = flinq.open(path, durability="sync")
    q = store.queue("q")

    def produce(tag: str) -> None:
        for i in range(50):
            with contextlib.suppress(RuntimeError):
                q.put(f"{tag}-{i}")

    workers = [threading.Thread(target=produce, args=(f"t{n}",)) for n in range(6)]
    workers.append(threading.Thread(target=produce, args=("u",), name="unlucky"))
    for w in workers:
        w.start()
    for w in workers:
        w.join(T)
    assert not any(w.is_alive() for w in workers)
    spawn(store.close, T).value(T)
    bodies = set(stored(path, "q"))
    assert {f"t{n}-{i}" for n in range(6) for i in range(50)} <= bodies


def _awake(waiter: Waiter) -> bool:
    """True if waiter's caller would return from wait() now (without blocking)."""
    return spawn(waiter.wait).join(T)


def test_a_chain_wakes_past_a_caller_that_left_before_its_turn():
    first, middle, last = Waiter(1), Waiter(1), Waiter(1)
    settle_all([first, middle, last])
    assert middle.leave() is False  # not woken yet: its waker wakes past it
    assert _awake(first)  # wakes middle, whose caller left: so it wakes last
    assert _awake(last)
    assert all(w.done for w in (first, middle, last))


def test_a_chain_wakes_on_when_a_caller_leaves_after_its_wake_up():
    first, middle, last = Waiter(1), Waiter(1), Waiter(1)
    settle_all([first, middle, last])
    assert _awake(first)  # releases middle, whose caller is still there
    assert not last.released
    assert middle.leave() is False  # it took its wake-up: it wakes last itself
    assert last.released
    assert _awake(last)


def test_a_lead_handed_to_a_caller_that_left():
    gone = Waiter(1)
    assert gone.leave() is False
    assert gone.hand_lead() is False  # taken back: the log hands it on
    waiting = Waiter(1)
    assert waiting.hand_lead() is True
    assert waiting.leave() is True  # handed the lead as it left: it hands it on


PUT_MANY_THEN_DIE = """
import os, sys, threading
import flinq

path, n, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = flinq.open(path, durability="sync", max_pending=10, flush_interval=60.0)
q = store.queue("q")

def put(tag):
    q.put_many([f"{tag}-{i}" for i in range(n)])

workers = [threading.Thread(target=put, args=(t,)) for t in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
os._exit(0)  # no close: only what the puts reported committed survives
"""


@pytest.mark.parametrize("threads", [1, 4])
def test_a_sync_put_many_larger_than_one_commit_returns_once_all_is_committed(path, threads):
    # max_pending=10 caps a commit at 10 operations; each put_many has 25.
    ok(run_script(PUT_MANY_THEN_DIE, path, 25, threads))
    bodies = stored(path, "q")
    assert sorted(bodies) == sorted(f"{t}-{i}" for t in range(threads) for i in range(25))
