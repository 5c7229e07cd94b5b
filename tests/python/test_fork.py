"""fork(): a child can use the in-memory queues its parent's threads were blocked on.

Each case runs in a fresh interpreter that starts threads which block inside
a queue, forks, and exercises the queue in the child. The interpreter waits
for its child with a deadline and kills it on a hang, and this process kills
the interpreter's whole session if even that does not end, so a regression
fails instead of hanging the suite. Deadlines are hang guards, never speed
checks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from qhelpers import ALL_CLASSES, BOUNDED_CLASSES, HANG_GUARD, cls_id, subprocess_env

import flinq

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

all_classes = pytest.mark.parametrize("cls", ALL_CLASSES, ids=cls_id)
bounded_classes = pytest.mark.parametrize("cls", BOUNDED_CLASSES, ids=cls_id)

# Helpers for the parent (before the fork) and for the child, then the case,
# then the fork: the child runs child() and exits 0 only if it returned; the
# parent waits for it (killing it on a hang), then runs parent_after(), which
# checks that the parent's own blocked threads still finish.
PRELUDE = """
import os, signal, sys, threading, time, traceback, warnings
import flinq

KIND = getattr(flinq, sys.argv[1])
DEADLINE = float(sys.argv[2])


def make(maxsize=0):
    return KIND() if KIND is flinq.SimpleQueue else KIND(maxsize)


class Call:
    # fn(*args) in a daemon thread, keeping its result or exception.
    def __init__(self, fn, *args):
        self.result = self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self.thread.start()

    def _run(self, fn, args):
        try:
            self.result = fn(*args)
        except BaseException as error:
            self.error = error

    def blocked(self):
        # Still inside the call after a while: it is asleep in the queue.
        time.sleep(0.2)
        return self.thread.is_alive()

    def value(self):
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the call did not return (hang?)"
        if self.error is not None:
            raise self.error
        return self.result


def parent_after():
    pass
"""

FORK = """
with warnings.catch_warnings():
    # 3.12+ warns that forking a process with threads may deadlock the child:
    # whether it does is what this case checks.
    warnings.simplefilter("ignore", DeprecationWarning)
    pid = os.fork()
if pid == 0:
    code = 1
    try:
        child()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
deadline = time.monotonic() + DEADLINE
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print("child hung: killed", flush=True)
        os._exit(3)
    time.sleep(0.01)
print("child exit", os.waitstatus_to_exitcode(status), flush=True)
parent_after()
print("parent ok", flush=True)
os._exit(0 if os.waitstatus_to_exitcode(status) == 0 else 2)
"""


def run_case(cls: type, case: str) -> None:
    """Run PRELUDE + case + FORK for queue class cls; assert child and parent succeeded."""
    code = PRELUDE + textwrap.dedent(case) + FORK
    proc = subprocess.Popen(
        [sys.executable, "-c", code, cls.__name__, str(HANG_GUARD)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        start_new_session=True,  # the child of the fork too, for the kill below
    )
    try:
        out, err = proc.communicate(timeout=2 * HANG_GUARD + 30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    report = f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    assert "child exit 0" in out, report
    assert "parent ok" in out, report
    assert proc.returncode == 0, report


@all_classes
def test_child_puts_and_gets_where_a_parent_thread_was_blocked(cls):
    run_case(
        cls,
        """
        q = make()
        getter = Call(q.get)
        assert getter.blocked()

        def child():
            for i in range(3):  # several wake-ups: the first alone may pass
                q.put(i)
                assert q.get(timeout=DEADLINE) == i
            try:
                q.get(timeout=0.05)
            except flinq.Empty:
                pass
            else:
                raise AssertionError("get(timeout) on an empty queue returned")
            # A thread of the child asleep in get() is woken by a put.
            waiter = Call(q.get)
            assert waiter.blocked()
            q.put("woken")
            assert waiter.value() == "woken"
            # The main thread asleep in get(timeout) is woken by a thread.
            timer = threading.Timer(0.05, q.put, ("timed",))
            timer.start()
            assert q.get(timeout=DEADLINE) == "timed"
            timer.join()
            q.put_many([1, 2])
            assert sorted(q.get_many(2, timeout=DEADLINE)) == [1, 2]
            assert q.qsize() == 0

        def parent_after():
            q.put("parent")
            assert getter.value() == "parent"
        """,
    )


@bounded_classes
def test_child_uses_a_queue_a_parent_putter_and_joiner_were_blocked_on(cls):
    run_case(
        cls,
        """
        full = make(1)
        full.put(0)
        putter = Call(full.put, 1)
        assert putter.blocked()
        tasks = make()
        tasks.put("task")
        joiner = Call(tasks.join)
        assert joiner.blocked()

        def child():
            assert full.get(timeout=DEADLINE) == 0
            assert full.qsize() == 0  # the parent's putter is not in this process
            full.put(2, timeout=DEADLINE)
            waiting_putter = Call(full.put, 3)
            assert waiting_putter.blocked()
            assert full.get(timeout=DEADLINE) == 2
            waiting_putter.value()
            assert full.get(timeout=DEADLINE) == 3
            full.task_done()
            full.task_done()
            full.task_done()
            full.join()

            assert tasks.get(timeout=DEADLINE) == "task"
            waiting_joiner = Call(tasks.join)
            assert waiting_joiner.blocked()
            tasks.task_done()
            waiting_joiner.value()

        def parent_after():
            assert full.get(timeout=DEADLINE) == 0
            putter.value()
            tasks.get(timeout=DEADLINE)
            tasks.task_done()
            joiner.value()
        """,
    )


@all_classes
def test_delayed_nack_in_the_child(cls):
    run_case(
        cls,
        """
        q = make()
        getter = Call(q.get)
        assert getter.blocked()
        # A delayed nack pending at the fork: the parent's timer thread is
        # asleep, and a parent thread waits on the queue it will refill.
        pending = make()
        pending.put("pending")
        message = pending.reserve(timeout=0)
        pending_getter = Call(pending.get)
        assert pending_getter.blocked()
        message.nack(delay=0.5)  # last before the fork, which comes well before that

        def child():
            q.put("a")
            q.reserve(timeout=DEADLINE).nack(delay=0.05)
            # A thread of the child asleep in get() (a main thread would
            # sleep in slices) is woken by the timer thread's put-back...
            assert Call(q.get).value() == "a"
            # ... also of what was pending at the fork.
            assert Call(pending.get).value() == "pending"
            assert q.stats()["in_flight"] == pending.stats()["in_flight"] == 0

        def parent_after():
            assert pending_getter.value() == "pending"
            q.put("parent")
            assert getter.value() == "parent"
        """,
    )


# An item whose `<` stalls in the parent (releasing the GIL) once `entered`
# is armed, so the parent can fork while a thread is inside a comparison.
STALLING_ITEM = """
PARENT = os.getpid()
entered = threading.Event()
release = threading.Event()


class Item:
    def __init__(self, value, stall=False):
        self.value = value
        self.stall = stall

    def __lt__(self, other):
        if (self.stall or other.stall) and os.getpid() == PARENT and not release.is_set():
            entered.set()
            release.wait(DEADLINE)
        return self.value < other.value
"""


def test_fork_while_a_parent_thread_compares_priority_items():
    # The parent's putter is inside `<` (so it owns the heap and holds one
    # slot of room) when the fork happens; the child must get both back.
    run_case(
        flinq.PriorityQueue,
        STALLING_ITEM
        + """
q = make(2)
q.put(Item(1))
putter = Call(q.put, Item(2, stall=True))
assert entered.wait(DEADLINE)


def child():
    assert q.qsize() == 1
    q.put_nowait(Item(0))  # room: the parent's putter holds none here
    assert q.full()
    assert [q.get_nowait().value for _ in range(2)] == [0, 1]
    assert q.empty()


def parent_after():
    release.set()
    putter.value()
    assert [q.get_nowait().value for _ in range(2)] == [1, 2]
""",
    )


def test_fork_in_the_middle_of_a_compared_put_many():
    # The fork comes while put_many compares its second item: its first is
    # in the heap but was not counted yet. The child counts it as stored.
    run_case(
        flinq.PriorityQueue,
        STALLING_ITEM
        + """
q = make()
q.put(Item(5))
putter = Call(q.put_many, [Item(1), Item(2, stall=True)])
assert entered.wait(DEADLINE)


def child():
    assert q.qsize() == 2
    assert [q.get_nowait().value for _ in range(2)] == [1, 5]
    assert q.empty()
    stats = q.stats()
    assert stats["enqueued"] == stats["dequeued"] == 2, stats
    q.task_done()
    q.task_done()
    q.join()  # both items counted as unfinished, and both done


def parent_after():
    release.set()
    putter.value()
    assert [q.get_nowait().value for _ in range(3)] == [1, 2, 5]
""",
    )


@pytest.mark.parametrize(
    ("cls", "puts", "order", "more"),
    [
        (
            flinq.PriorityQueue,
            "q.put('a', priority=3); q.put('b', priority=100); q.put('c', priority=-2)",
            ["c", "a", "b"],
            "q.put('z', priority=1)",
        ),
        (flinq.LifoQueue, "q.put('b'); q.put('a'); q.put('c')", ["c", "a", "b"], "q.put('z')"),
    ],
    ids=["PriorityQueue-keyed", "LifoQueue"],
)
def test_keyed_items_survive_the_fork_with_their_count(cls, puts, order, more):
    # Keyed priorities live in buckets (small ones) and a heap (the rest),
    # LIFO entries in the heap: the child's recount must see both.
    run_case(
        cls,
        f"""
q = make()
{puts}
other = make()
getter = Call(other.get)
assert getter.blocked()


def child():
    assert q.qsize() == 3
    assert [q.get_nowait() for _ in range(3)] == {order!r}
    {more}
    assert q.get_nowait() == "z" and q.empty()


def parent_after():
    other.put("x")
    assert getter.value() == "x"
    assert [q.get_nowait() for _ in range(3)] == {order!r}
""",
    )
