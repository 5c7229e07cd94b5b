"""flinq.ProcessQueue: the multiprocessing.Queue API over shared memory."""

from __future__ import annotations

import concurrent.futures
import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import phelpers
import pytest

import flinq
from flinq import Empty, Full, ProcessQueue

START_METHODS = ["fork", "spawn"]


def shm_path(q: ProcessQueue) -> str:
    return "/dev/shm/" + q.name


# ---- one process ---------------------------------------------------------------


def test_bodies_round_trip_with_their_types(pq: ProcessQueue) -> None:
    items: list[Any] = [b"", b"bytes", bytearray(b"ba"), 0, -7, 2.5, None, "text", {"k": [1, 2]}]
    for item in items:
        pq.put(item)
    got = [pq.get(timeout=5) for _ in items]
    assert got == items
    assert [type(x) for x in got] == [type(x) for x in items]
    assert pq.empty()


def test_memoryview_arrives_as_bytes(pq: ProcessQueue) -> None:
    data = bytes(range(256))
    pq.put(memoryview(data))
    pq.put(memoryview(data)[::2])  # not contiguous: copied contiguously
    pq.put(memoryview(bytearray(b"abcd")).cast("B", (2, 2)))
    assert pq.get_nowait() == data
    assert pq.get_nowait() == data[::2]
    assert pq.get_nowait() == b"abcd"


def test_numpy_arrays_cross_out_of_band_and_stay_writable(pq: ProcessQueue) -> None:
    np = pytest.importorskip("numpy")
    a = np.arange(100_000, dtype=np.float64).reshape(100, 1000)
    b = np.asfortranarray(a[:, :10])
    pq.put(a)
    pq.put(b)
    pq.put({"one": a[0], "many": [a[1], a[2]]})
    ga, gb, gd = pq.get(), pq.get(), pq.get()
    assert (ga == a).all() and ga.dtype == a.dtype and ga.shape == a.shape
    assert (gb == b).all() and gb.flags.f_contiguous
    assert (gd["one"] == a[0]).all() and (gd["many"][1] == a[2]).all()
    ga[0, 0] = -1.0  # the array owns a writable copy
    assert a[0, 0] == 0.0


def test_fifo_and_qsize(pq: ProcessQueue) -> None:
    for i in range(1000):
        pq.put(i)
    assert pq.qsize() == 1000
    assert not pq.empty()
    assert not pq.full()
    assert [pq.get() for _ in range(1000)] == list(range(1000))
    assert pq.qsize() == 0


def test_many_wraps_and_large_messages() -> None:
    q = ProcessQueue(buffer_bytes=64 * 1024)
    try:
        for round_ in range(50):
            batch = [bytes([round_]) * (1 + (i * 997) % 9000) for i in range(5)]
            for body in batch:
                q.put(body)
            assert [q.get() for _ in batch] == batch
        big = os.urandom(q.buffer_bytes)
        q.put(big)  # exactly the buffer: fits when the lane is empty
        assert q.get() == big
        q.put(big)
        m = q.reserve()  # and fits a reservation
        assert m.body == big and m.ack()
        with pytest.raises(ValueError):
            q.put(big + b"x")
    finally:
        q.close()


def test_put_many_and_get_many(pq: ProcessQueue) -> None:
    pq.put_many([b"a", 1, bytearray(b"c")])
    pq.put_many([])
    assert pq.get_many(2) == [b"a", 1]
    assert pq.get_many(10) == [bytearray(b"c")]
    pq.put_many(range(500))
    got: list[int] = []
    while len(got) < 500:
        got += pq.get_many(64, timeout=5)
    assert got == list(range(500))


def test_get_timeouts_and_nowait(pq: ProcessQueue) -> None:
    with pytest.raises(Empty):
        pq.get_nowait()
    with pytest.raises(Empty):
        pq.get(block=False)
    t0 = time.monotonic()
    with pytest.raises(Empty):
        pq.get(timeout=0.05)
    assert time.monotonic() - t0 >= 0.05
    with pytest.raises(Empty):
        pq.get_many(3, timeout=0.01)


def test_maxsize_bounds_puts() -> None:
    q = ProcessQueue(2)
    try:
        assert q.maxsize == 2
        q.put(1)
        q.put_nowait(2)
        assert q.full()
        with pytest.raises(Full):
            q.put_nowait(3)
        with pytest.raises(Full):
            q.put(3, timeout=0.02)
        with pytest.raises(Full):
            q.put_many([3], block=False)
        assert q.qsize() == 2
        assert q.get() == 1
        q.put(3)
        assert [q.get(), q.get()] == [2, 3]
        with pytest.raises(ValueError, match="never fits"):
            q.put_many([1, 2, 3])
    finally:
        q.close()


def test_lane_full_blocks_until_a_get_makes_room() -> None:
    q = ProcessQueue(buffer_bytes=1024)
    try:
        q.put(b"x" * 1000)
        with pytest.raises(Full):
            q.put(b"y" * 1000, block=False)
        with pytest.raises(Full):
            q.put_many([b"y" * 100, b"z" * 100], timeout=0.01)
        assert q.qsize() == 1  # a failed put_many put nothing
        threading.Timer(0.1, q.get).start()
        q.put(b"y" * 1000, timeout=10)
        assert q.get(timeout=5) == b"y" * 1000
    finally:
        q.close()


def test_blocked_get_is_woken_by_a_put_from_another_thread(pq: ProcessQueue) -> None:
    threading.Timer(0.05, pq.put, args=(b"late",)).start()
    assert pq.get(timeout=10) == b"late"


def test_ctrl_c_interrupts_a_blocked_get(pq: ProcessQueue) -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            pq.get()
        assert time.monotonic() - t0 < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    pq.put(b"after")
    assert pq.get(timeout=5) == b"after"


def test_stats(pq: ProcessQueue) -> None:
    pq.put_many([b"a", b"b", b"c"])
    pq.get()
    s = pq.stats()
    assert s["depth"] == 2 and s["enqueued"] == 3 and s["dequeued"] == 1
    assert s["producers"] == [os.getpid()]
    assert s["lanes_used"] == 1
    assert s["name"] == pq.name
    assert s["buffer_bytes"] == pq.buffer_bytes
    assert s["getters_waiting"] == 0 and s["putters_waiting"] == 0


def test_join_thread_and_cancel_join_thread_are_accepted(pq: ProcessQueue) -> None:
    pq.put(1)
    pq.cancel_join_thread()
    pq.join_thread()
    assert pq.get() == 1


def test_exported_from_flinq() -> None:
    assert flinq.ProcessQueue is ProcessQueue
    assert "ProcessQueue" in flinq.__all__


# ---- bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"maxsize": "3"}, TypeError),
        ({"maxsize": 1.5}, TypeError),
        ({"buffer_bytes": 0}, ValueError),
        ({"buffer_bytes": -1}, ValueError),
        ({"buffer_bytes": 1.0}, TypeError),
        ({"buffer_bytes": 1 << 40}, ValueError),
        ({"max_producers": 0}, ValueError),
        ({"max_producers": "2"}, TypeError),
        ({"name": 3}, TypeError),
        ({"name": ""}, ValueError),
        ({"name": "a/b"}, ValueError),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ProcessQueue(**kwargs)


def test_bad_call_arguments(pq: ProcessQueue) -> None:
    with pytest.raises(ValueError):
        pq.get(timeout=-1)
    with pytest.raises(ValueError):
        pq.put(b"x", timeout=-1)
    with pytest.raises(ValueError):
        pq.get(timeout=float("nan"))
    with pytest.raises(TypeError):  # as flinq.Queue and ArrayQueue: no number, no timeout
        pq.get(timeout="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pq.get_many("3")
    with pytest.raises(ValueError):
        pq.get_many(0)
    with pytest.raises(TypeError):
        pq.put_many(5)
    assert pq.qsize() == 0


def test_unpicklable_object_raises_in_put_and_changes_nothing(pq: ProcessQueue) -> None:
    lock = threading.Lock()
    with pytest.raises(TypeError):
        pq.put(lock)
    with pytest.raises(TypeError):
        pq.put_many([b"ok", lock])
    assert pq.qsize() == 0
    assert pq.stats()["enqueued"] == 0


def test_message_larger_than_the_buffer_is_refused() -> None:
    q = ProcessQueue(buffer_bytes=4096)
    try:
        assert q.buffer_bytes >= 4096
        with pytest.raises(ValueError, match="buffer_bytes"):
            q.put(b"x" * (q.buffer_bytes + 1))
        with pytest.raises(ValueError, match="never fits"):
            q.put_many([b"x" * 3000])
        assert q.qsize() == 0
    finally:
        q.close()


def test_attach_to_missing_name() -> None:
    with pytest.raises(FileNotFoundError, match="no flinq ProcessQueue"):
        ProcessQueue.attach("flinq-test-no-such-queue")
    with pytest.raises(TypeError):
        ProcessQueue.attach(None)  # type: ignore[arg-type]


def test_attach_refuses_foreign_and_corrupted_segments() -> None:
    name = f"flinq-test-foreign-{os.getpid()}"
    with open(f"/dev/shm/{name}", "wb") as f:
        f.write(b"not a flinq queue".ljust(8192, b"\0"))
    try:
        with pytest.raises(ValueError, match="bad magic"):
            ProcessQueue.attach(name)
    finally:
        os.unlink(f"/dev/shm/{name}")
    name = f"flinq-test-tiny-{os.getpid()}"
    with open(f"/dev/shm/{name}", "wb") as f:
        f.write(b"x")
    try:
        with pytest.raises(OSError):
            ProcessQueue.attach(name)
    finally:
        os.unlink(f"/dev/shm/{name}")

    q = ProcessQueue()
    try:
        with open(shm_path(q), "r+b") as f:
            f.seek(8)  # the version
            f.write((99).to_bytes(4, "little"))
        with pytest.raises(ValueError, match="version 99"):
            ProcessQueue.attach(q.name)
        with open(shm_path(q), "r+b") as f:
            f.seek(8)
            f.write((1).to_bytes(4, "little"))
            f.seek(32)  # the first layout parameter: lane count
            f.write((1 << 40).to_bytes(8, "little"))
        with pytest.raises(ValueError, match="corrupted"):
            ProcessQueue.attach(q.name)
    finally:
        q.close()


def test_name_taken() -> None:
    name = f"flinq-test-taken-{os.getpid()}"
    q = ProcessQueue(name=name)
    try:
        assert q.name == name
        with pytest.raises(FileExistsError):
            ProcessQueue(name=name)
    finally:
        q.close()


# ---- lifecycle -------------------------------------------------------------------


def test_close_unlinks_and_attached_handles_keep_working() -> None:
    q = ProcessQueue()
    other = ProcessQueue.attach(q.name)
    assert os.path.exists(shm_path(q))
    q.close()
    q.close()  # again: nothing
    assert not os.path.exists(shm_path(q))
    with pytest.raises(ValueError, match="closed"):
        q.put(1)
    with pytest.raises(ValueError, match="closed"):
        q.get()
    with pytest.raises(ValueError, match="closed"):
        q.qsize()
    with pytest.raises(FileNotFoundError):
        ProcessQueue.attach(q.name)
    other.put(b"still here")
    assert other.get() == b"still here"
    other.close()


def test_collected_creator_unlinks_and_an_attached_one_does_not() -> None:
    q = ProcessQueue()
    path = shm_path(q)
    other = ProcessQueue.attach(q.name)
    del other
    assert os.path.exists(path)
    del q
    assert not os.path.exists(path)


def test_context_manager_closes() -> None:
    with ProcessQueue() as q:
        q.put(1)
        path = shm_path(q)
    assert not os.path.exists(path)


def test_pickles_as_its_name(pq: ProcessQueue) -> None:
    copy = pickle.loads(pickle.dumps(pq))
    assert copy.name == pq.name
    copy.put(b"via copy")
    assert pq.get() == b"via copy"
    copy.close()
    assert os.path.exists(shm_path(pq))  # only the creator unlinks


def test_all_lanes_taken_by_live_processes() -> None:
    q = ProcessQueue(max_producers=1)
    try:
        ctx = mp.get_context("fork")
        p = ctx.Process(target=phelpers.put_range, args=(q, 0, 3))
        p.start()
        p.join()
        # The child is dead: its lane is adopted, its messages still there.
        q.put(3)
        assert [q.get(timeout=5) for _ in range(4)] == [0, 1, 2, 3]
        # Now the parent owns the only lane, alive: a child cannot produce.
        out = ctx.Queue()
        p = ctx.Process(target=_try_put, args=(q, out))
        p.start()
        assert "max_producers" in out.get(timeout=30)
        p.join()
    finally:
        q.close()


def _try_put(q: ProcessQueue, out: Any) -> None:
    try:
        q.put(1)
        out.put("no error")
    except RuntimeError as e:
        out.put(str(e))


# ---- across processes --------------------------------------------------------------


@pytest.mark.parametrize("method", START_METHODS)
def test_child_producers_and_consumers(method: str) -> None:
    ctx = mp.get_context(method)
    q = ProcessQueue()
    out = ProcessQueue()
    try:
        per = 2000
        producers = [ctx.Process(target=phelpers.put_tagged, args=(q, t, per)) for t in range(2)]
        consumers = [ctx.Process(target=phelpers.get_into, args=(q, out, per)) for _ in range(2)]
        for p in producers + consumers:
            p.start()
        got = [out.get(timeout=60) for _ in range(2 * per)]
        for p in producers + consumers:
            p.join(30)
            assert p.exitcode == 0
        pairs = [(int.from_bytes(m[:4], "little"), int.from_bytes(m[4:], "little")) for m in got]
        assert sorted(pairs) == [(t, s) for t in range(2) for s in range(per)]
        assert q.qsize() == 0
    finally:
        q.close()
        out.close()


@pytest.mark.parametrize("method", START_METHODS)
def test_ping_pong(method: str) -> None:
    ctx = mp.get_context(method)
    ping, pong = ProcessQueue(), ProcessQueue()
    try:
        p = ctx.Process(target=phelpers.echo, args=(ping, pong, 200))
        p.start()
        for i in range(200):
            ping.put(i)
            assert pong.get(timeout=30) == i
        p.join(30)
        assert p.exitcode == 0
    finally:
        ping.close()
        pong.close()


@pytest.mark.parametrize("method", START_METHODS)
def test_pool_initializer(method: str) -> None:
    ctx = mp.get_context(method)
    q = ProcessQueue()
    try:
        with ctx.Pool(2, initializer=phelpers.init_worker, initargs=(q,)) as pool:
            assert sorted(pool.map(phelpers.worker_put, range(20))) == list(range(20))
        got = sorted(q.get(timeout=10)[1] for _ in range(20))
        assert got == list(range(20))
    finally:
        q.close()


@pytest.mark.parametrize("method", START_METHODS)
def test_process_pool_executor_initializer(method: str) -> None:
    q = ProcessQueue()
    try:
        with concurrent.futures.ProcessPoolExecutor(
            2,
            mp_context=mp.get_context(method),
            initializer=phelpers.init_worker,
            initargs=(q,),
        ) as ex:
            assert sorted(ex.map(phelpers.worker_put, range(10))) == list(range(10))
        assert sorted(q.get(timeout=10)[1] for _ in range(10)) == list(range(10))
    finally:
        q.close()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_child_started_before_close_maps_the_queue_after_it(method: str) -> None:
    """A spawned child receives the segment itself, not only its name: the
    creator may close (remove the name) before the child gets to it."""
    ctx = mp.get_context(method)
    q = ProcessQueue()
    reader = ProcessQueue.attach(q.name)
    try:
        p = ctx.Process(target=phelpers.put_range, args=(q, 0, 3))
        p.start()
        q.close()
        assert [reader.get(timeout=60) for _ in range(3)] == [0, 1, 2]
        p.join(30)
        assert p.exitcode == 0
    finally:
        reader.close()


def test_unrelated_process_attaches_by_name(pq: ProcessQueue) -> None:
    code = (
        "import sys; from flinq import ProcessQueue\n"
        "q = ProcessQueue.attach(sys.argv[1]); q.put({'from': 'outside'}); q.close()\n"
    )
    subprocess.run([sys.executable, "-c", code, pq.name], check=True, timeout=60)
    assert pq.get(timeout=10) == {"from": "outside"}


def test_creator_dies_first() -> None:
    """A killed creator cannot unlink: the segment stays usable by name
    until someone removes it."""
    ctx = mp.get_context("fork")
    names = ctx.Queue()
    p = ctx.Process(target=_create_and_hang, args=(names,))
    p.start()
    name = names.get(timeout=30)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    q = ProcessQueue.attach(name)
    try:
        assert q.get(timeout=5) == b"from the dead"
    finally:
        q.close()
        os.unlink("/dev/shm/" + name)


def _create_and_hang(names: Any) -> None:
    q = ProcessQueue()
    q.put(b"from the dead")
    names.put(q.name)
    time.sleep(60)
