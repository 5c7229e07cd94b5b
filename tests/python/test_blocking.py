"""Blocking calls: waking, timeouts, join, shutdown, signals and idle CPU use.

Timing checks here only assert lower bounds (a timeout did not fire early) or
that a call is still blocked; there is no upper bound on speed. Long limits are
only there to turn a hang into a failure.
"""

from __future__ import annotations

import queue
import sys
import textwrap
import time

import pytest
from qhelpers import (
    ALL_CLASSES,
    BOUNDED_CLASSES,
    HANG_GUARD,
    cls_id,
    drain,
    interrupt_blocked_call,
    run_python,
    spawn,
    still_blocked,
)

import flinq

all_classes = pytest.mark.parametrize("cls", ALL_CLASSES, ids=cls_id)
bounded_classes = pytest.mark.parametrize("cls", BOUNDED_CLASSES, ids=cls_id)


def make(cls, maxsize=0):
    return cls() if cls is flinq.SimpleQueue else cls(maxsize)


# --------------------------------------------------------------------------- get / put wake-ups


@all_classes
def test_get_blocks_until_put(cls):
    q = make(cls)
    getter = spawn(q.get)
    assert still_blocked(getter)
    q.put("item")
    assert getter.value() == "item"
    assert q.empty()


@all_classes
def test_get_with_timeout_is_woken_by_put(cls):
    q = make(cls)
    getter = spawn(q.get, timeout=HANG_GUARD)
    assert still_blocked(getter)
    q.put(42)
    assert getter.value() == 42  # the item, not queue.Empty at the timeout


@all_classes
def test_get_many_blocks_until_put(cls):
    q = make(cls)
    getter = spawn(q.get_many, 10)
    assert still_blocked(getter)
    q.put(1)
    got = getter.value()
    assert got == [1]


@bounded_classes
def test_put_blocks_until_get(cls):
    q = cls(2)
    q.put(1)
    q.put(2)
    putter = spawn(q.put, 3)
    assert still_blocked(putter)
    assert q.qsize() == 2
    first = q.get()
    assert putter.value() is None
    assert q.qsize() == 2
    assert sorted([first, *drain(q)]) == [1, 2, 3]


@bounded_classes
def test_put_with_timeout_is_woken_by_get(cls):
    q = cls(1)
    q.put(1)
    putter = spawn(q.put, 2, timeout=HANG_GUARD)
    assert still_blocked(putter)
    assert q.get() == 1
    putter.value()
    assert q.get() == 2


@bounded_classes
def test_put_many_waits_until_all_fit(cls):
    q = cls(4)
    q.put_many([1, 2, 3])
    putter = spawn(q.put_many, [4, 5])
    assert still_blocked(putter)
    assert q.qsize() == 3  # nothing of the batch went in while it waited
    q.get()
    putter.value()
    assert q.qsize() == 4
    assert q.full()


@bounded_classes
def test_put_many_stays_blocked_while_too_little_room(cls):
    q = cls(4)
    q.put_many([1, 2, 3, 4])
    putter = spawn(q.put_many, [5, 6, 7])
    q.get()  # one free slot: not enough for three
    assert still_blocked(putter)
    assert q.qsize() == 3
    q.get()
    q.get()
    putter.value()
    assert q.qsize() == 4


@all_classes
def test_one_put_many_wakes_all_blocked_getters(cls):
    q = make(cls)
    getters = [spawn(q.get) for _ in range(3)]
    assert still_blocked(*getters)
    q.put_many([1, 2, 3])
    assert sorted(g.value() for g in getters) == [1, 2, 3]


@all_classes
def test_each_put_wakes_one_getter_and_none_is_lost(cls):
    q = make(cls)
    getters = [spawn(q.get) for _ in range(4)]
    assert still_blocked(*getters)
    for i in range(4):
        q.put(i)
    assert sorted(g.value() for g in getters) == [0, 1, 2, 3]


@bounded_classes
def test_one_get_many_wakes_all_blocked_putters(cls):
    q = cls(3)
    q.put_many([1, 2, 3])
    putters = [spawn(q.put, 10 + i) for i in range(3)]
    assert still_blocked(*putters)
    taken = []
    while len(taken) < 3:
        taken += q.get_many(3 - len(taken))
    for p in putters:
        p.value()
    assert sorted(taken) == [1, 2, 3]
    assert sorted(drain(q)) == [10, 11, 12]


# --------------------------------------------------------------------------- timeouts


@all_classes
@pytest.mark.parametrize("timeout", [0.05, 0.2])
def test_get_timeout_raises_empty_after_timeout(cls, timeout):
    q = make(cls)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=timeout)
    assert time.monotonic() - t0 >= timeout * 0.9


@all_classes
def test_get_many_timeout_raises_empty_after_timeout(cls):
    q = make(cls)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get_many(5, timeout=0.2)
    assert time.monotonic() - t0 >= 0.18


@bounded_classes
@pytest.mark.parametrize("timeout", [0.05, 0.2])
def test_put_timeout_raises_full_after_timeout(cls, timeout):
    q = cls(1)
    q.put(1)
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(2, timeout=timeout)
    assert time.monotonic() - t0 >= timeout * 0.9
    assert drain(q) == [1]


@bounded_classes
def test_put_many_timeout_raises_full_after_timeout(cls):
    q = cls(3)
    q.put_many([1, 2])
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put_many([3, 4], timeout=0.2)
    assert time.monotonic() - t0 >= 0.18
    assert q.qsize() == 2


@all_classes
def test_get_timeout_in_thread(cls):
    q = make(cls)

    def timed_get():
        t0 = time.monotonic()
        try:
            q.get(timeout=0.2)
        except queue.Empty:
            return time.monotonic() - t0
        return None

    elapsed = spawn(timed_get).value()
    assert elapsed is not None
    assert elapsed >= 0.18


@all_classes
def test_nonblocking_calls_do_not_wait(cls):
    q = make(cls)
    # block=False never waits, whatever the timeout says
    with pytest.raises(queue.Empty):
        q.get(block=False, timeout=5)
    with pytest.raises(queue.Empty):
        q.get_many(3, block=False, timeout=5)


# --------------------------------------------------------------------------- join


@bounded_classes
def test_join_returns_after_all_task_done(cls):
    q = cls()
    q.put_many([1, 2, 3])
    joiner = spawn(q.join)
    assert still_blocked(joiner)
    for _ in range(3):
        q.get()
    assert still_blocked(joiner)  # got, but not done
    q.task_done()
    q.task_done()
    assert still_blocked(joiner)
    q.task_done()
    assert joiner.value() is None


@bounded_classes
def test_join_with_worker_threads(cls):
    q = cls(10)
    done = []

    def worker():
        while True:
            try:
                item = q.get()
            except flinq.ShutDown:
                return "stopped"
            done.append(item)
            q.task_done()

    workers = [spawn(worker) for _ in range(3)]
    for i in range(1, 301):
        q.put(i)
    spawn(q.join).value()
    assert sorted(done) == list(range(1, 301))
    q.shutdown()
    assert [w.value() for w in workers] == ["stopped"] * 3


@bounded_classes
def test_several_joiners_all_wake(cls):
    q = cls()
    q.put(1)
    joiners = [spawn(q.join) for _ in range(3)]
    assert still_blocked(*joiners)
    q.get()
    q.task_done()
    for j in joiners:
        assert j.value() is None


# --------------------------------------------------------------------------- shutdown


@bounded_classes
@pytest.mark.parametrize("immediate", [False, True])
def test_shutdown_wakes_blocked_getters(cls, immediate):
    q = cls()
    getters = [spawn(q.get), spawn(q.get, timeout=HANG_GUARD), spawn(q.get_many, 5)]
    assert still_blocked(*getters)
    q.shutdown(immediate=immediate)
    for g in getters:
        with pytest.raises(flinq.ShutDown):
            g.value()


@bounded_classes
@pytest.mark.parametrize("immediate", [False, True])
def test_shutdown_wakes_blocked_putters(cls, immediate):
    q = cls(2)
    q.put_many([1, 2])
    putters = [
        spawn(q.put, 3),
        spawn(q.put, 4, timeout=HANG_GUARD),
        spawn(q.put_many, [5, 6]),
    ]
    assert still_blocked(*putters)
    q.shutdown(immediate=immediate)
    for p in putters:
        with pytest.raises(flinq.ShutDown):
            p.value()
    if immediate:
        assert q.qsize() == 0
    else:
        assert sorted(drain_shutdown(q)) == [1, 2]


def drain_shutdown(q):
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except flinq.ShutDown:
            return out


@bounded_classes
def test_shutdown_immediate_wakes_joiners(cls):
    q = cls()
    q.put_many([1, 2, 3])
    joiners = [spawn(q.join), spawn(q.join)]
    assert still_blocked(*joiners)
    q.shutdown(immediate=True)
    for j in joiners:
        assert j.value() is None  # join returns: the discarded items count as done


@bounded_classes
def test_shutdown_not_immediate_keeps_joiners_waiting(cls):
    q = cls()
    q.put_many([1, 2])
    joiner = spawn(q.join)
    q.shutdown()
    assert still_blocked(joiner)
    q.get()
    q.task_done()
    assert still_blocked(joiner)
    q.get()
    q.task_done()
    assert joiner.value() is None


@bounded_classes
def test_shutdown_lets_getters_drain_first(cls):
    q = cls()
    q.put_many([1, 2, 3])
    q.shutdown()

    def consume():
        got = []
        while True:
            try:
                got.append(q.get())
            except flinq.ShutDown:
                return got

    workers = [spawn(consume) for _ in range(2)]
    got = [x for w in workers for x in w.value()]
    assert sorted(got) == [1, 2, 3]


@bounded_classes
def test_shutdown_from_another_thread_stops_consumer_loop(cls):
    q = cls(5)
    received = []

    def consume():
        while True:
            try:
                received.append(q.get())
            except flinq.ShutDown:
                return "stopped"

    consumer = spawn(consume)
    for i in range(20):
        q.put(i)
    q.shutdown()
    assert consumer.value() == "stopped"
    assert sorted(received) == list(range(20))


# --------------------------------------------------------------------------- signals


KBI_SCRIPT = textwrap.dedent(
    """
    import sys
    import flinq

    kind = sys.argv[1]
    if kind == "get":
        q = flinq.{cls}()
        call = q.get
    elif kind == "get-timeout":
        q = flinq.{cls}()
        call = lambda: q.get(timeout=600)
    elif kind == "get_many":
        q = flinq.{cls}()
        call = lambda: q.get_many(4)
    elif kind == "put":
        q = flinq.{cls}(1)
        q.put(1)
        call = lambda: q.put(2)
    elif kind == "join":
        q = flinq.{cls}()
        q.put(1)
        call = q.join
    print("ready", flush=True)
    try:
        call()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(42)
    print("returned", flush=True)
    sys.exit(1)
    """
)

CALLS = [
    ("Queue", "get"),
    ("Queue", "get-timeout"),
    ("Queue", "get_many"),
    ("Queue", "put"),
    ("Queue", "join"),
    ("LifoQueue", "get"),
    ("PriorityQueue", "get"),
    ("PriorityQueue", "put"),
    ("SimpleQueue", "get"),
    ("SimpleQueue", "get-timeout"),
]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("cls", "kind"), CALLS, ids=[f"{c}-{k}" for c, k in CALLS])
def test_sigint_interrupts_blocked_main_thread(cls, kind):
    code, out, err = interrupt_blocked_call(KBI_SCRIPT.replace("{cls}", cls), kind, timeout=10)
    assert code == 42, (code, out, err)
    assert "interrupted" in out


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_signal_handler_runs_while_blocked_and_wait_resumes():
    # A handler that does not raise must run promptly, and get() keeps waiting.
    code = textwrap.dedent(
        """
        import os, signal, threading, time
        import flinq

        q = flinq.Queue()
        calls = []
        signal.signal(signal.SIGUSR1, lambda *a: calls.append(time.monotonic()))
        def later():
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.5)
            q.put("done")
        threading.Thread(target=later, daemon=True).start()
        print(q.get(), len(calls))
        """
    )
    proc = run_python(code, timeout=HANG_GUARD)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["done", "1"]


# --------------------------------------------------------------------------- idle CPU


IDLE_SCRIPT = textwrap.dedent(
    """
    import threading, time
    import flinq

    q = flinq.Queue()
    full = flinq.Queue(1)
    full.put(0)
    pending = flinq.Queue()
    pending.put(0)
    sq = flinq.SimpleQueue()
    pq = flinq.PriorityQueue()

    calls = [
        q.get,
        lambda: q.get(timeout=60),
        lambda: q.get_many(8),
        lambda: full.put(1),
        pending.join,
        sq.get,
        lambda: sq.get(timeout=60),
        pq.get,
    ]
    threads = [threading.Thread(target=c, daemon=True) for c in calls]
    for t in threads:
        t.start()
    time.sleep(0.3)   # everyone is blocked now
    cpu0 = time.process_time()
    wall0 = time.monotonic()
    time.sleep(0.6)
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    alive = sum(t.is_alive() for t in threads)
    print(cpu, wall, alive, len(threads))
    """
)


def test_blocked_waiters_do_not_burn_cpu():
    proc = run_python(IDLE_SCRIPT, timeout=HANG_GUARD)
    assert proc.returncode == 0, proc.stderr
    cpu, wall, alive, total = proc.stdout.split()
    assert int(alive) == int(total), "some waiter returned instead of blocking"
    assert float(wall) >= 0.5
    assert float(cpu) < 0.1, f"{float(cpu):.3f} s of CPU used by idle blocked waiters"


def test_blocked_main_thread_get_does_not_burn_cpu():
    # The main thread waits with signal checks; that must not turn into spinning.
    code = textwrap.dedent(
        """
        import threading, time
        import flinq

        q = flinq.Queue()
        result = {}
        def measure():
            time.sleep(0.3)
            cpu0 = time.process_time()
            time.sleep(0.6)
            result["cpu"] = time.process_time() - cpu0
            q.put("bye")
        threading.Thread(target=measure, daemon=True).start()
        assert q.get() == "bye"
        print(result["cpu"])
        """
    )
    proc = run_python(code, timeout=HANG_GUARD)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) < 0.1
