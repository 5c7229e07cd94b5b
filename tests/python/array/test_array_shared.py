"""flinq.ArrayQueue(shared=True): the ring in a named shared-memory segment,
passed to processes by fork, spawn, pools and by name."""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import sys
import time
from typing import Any

import pytest

np = pytest.importorskip("numpy")

if sys.platform == "win32":
    pytest.skip("shared ArrayQueues need POSIX shared memory", allow_module_level=True)

import ahelpers  # noqa: E402
from ahelpers import HANG, RECORD, check_of  # noqa: E402

import flinq  # noqa: E402

METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]


def segment_exists(name: str) -> bool:
    """Whether the name is still linked (Linux shows segments in /dev/shm)."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm to look into")
    return os.path.exists("/dev/shm" + name)


def test_round_trip_attach_and_pickle_in_one_process() -> None:
    q = flinq.ArrayQueue(("f4", (3,)), 50, shared=True)
    assert q.shared and q.name.startswith("/flinq-")
    q.put_many(np.arange(12, dtype="f4").reshape(4, 3))
    other = flinq.ArrayQueue.attach(q.name)
    copy = pickle.loads(pickle.dumps(q))
    assert other.dtype == q.dtype == copy.dtype and other.capacity == 50
    assert other.qsize() == copy.qsize() == 4
    assert other.get().tolist() == [0, 1, 2]
    assert copy.get_many(10).tolist() == [[3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert q.empty()
    assert q.stats()["dequeued"] == 4 and q.stats()["shared"] is True
    for handle in (q, other, copy):
        handle.close()


def test_structured_dtype_survives_attach() -> None:
    dtype = np.dtype([("a", "i1"), ("b", ">f8", (2,)), ("c", "S3")], align=True)
    q = flinq.ArrayQueue(dtype, 5, shared=True)
    other = flinq.ArrayQueue.attach(q.name)
    assert other.dtype == dtype and other.dtype.itemsize == dtype.itemsize
    q.put((1, (2.5, -1.0), b"xyz"))
    got = other.get()
    assert got["a"] == 1 and got["b"].tolist() == [2.5, -1.0] and got["c"] == b"xyz"
    other.close()
    q.close()


def test_creator_close_removes_the_name_attached_handles_keep_working() -> None:
    q = flinq.ArrayQueue("i8", 8, shared=True)
    name = q.name
    other = flinq.ArrayQueue.attach(name)
    assert segment_exists(name)
    other.close()  # an attached handle leaves the name alone
    assert segment_exists(name)
    other = flinq.ArrayQueue.attach(name)
    q.put_many([1, 2, 3])
    q.close()
    assert not segment_exists(name)
    with pytest.raises(FileNotFoundError):
        flinq.ArrayQueue.attach(name)
    assert other.get_many(5).tolist() == [1, 2, 3]
    other.put(4)
    assert other.get() == 4
    other.close()


def test_collected_creator_removes_the_name() -> None:
    q = flinq.ArrayQueue("i8", 8, shared=True)
    name = q.name
    del q
    gc.collect()
    assert not segment_exists(name)


def test_attach_refuses_what_is_not_an_array_queue(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        flinq.ArrayQueue.attach("/flinq-no-such-queue")
    with pytest.raises(TypeError):
        flinq.ArrayQueue.attach(b"/flinq-x")  # type: ignore[arg-type]
    if not os.path.isdir("/dev/shm"):
        return
    name = f"/flinq-test-junk-{os.getpid()}"
    with open("/dev/shm" + name, "wb") as junk:
        junk.write(b"not a queue" * 1000)
    try:
        with pytest.raises(ValueError, match="not a flinq ArrayQueue"):
            flinq.ArrayQueue.attach(name)
    finally:
        os.unlink("/dev/shm" + name)


def test_attach_checks_the_segment_header() -> None:
    if not os.path.isdir("/dev/shm") or not flinq.ProcessQueue.supported():
        pytest.skip("needs /dev/shm and ProcessQueue")
    other_kind = flinq.ProcessQueue()
    try:
        with pytest.raises(ValueError, match="another kind of flinq structure, not a ArrayQueue"):
            flinq.ArrayQueue.attach("/" + other_kind.name)
    finally:
        other_kind.close()
    q = flinq.ArrayQueue("i8", 8, shared=True)
    with open("/dev/shm" + q.name, "r+b") as segment:
        segment.seek(8)  # the header's format version
        segment.write((99).to_bytes(4, "little"))
    with pytest.raises(ValueError, match="version 99"):
        flinq.ArrayQueue.attach(q.name)
    q.close()


def test_view_of_a_shared_queue_outlives_close() -> None:
    q = flinq.ArrayQueue("i8", 4, shared=True)
    q.put_many([1, 2, 3])
    other = flinq.ArrayQueue.attach(q.name)
    view = other.get_view(2)
    other.close()  # the mapping stays while the view's array exists
    assert view.array.tolist() == [1, 2]
    view.release()
    assert q.get_many(4).tolist() == [3]
    q.close()


def test_closed_shared_queue_does_not_pickle() -> None:
    q = flinq.ArrayQueue("i8", 8, shared=True)
    q.close()
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(q)


@pytest.mark.parametrize("method", METHODS)
def test_child_process_puts_parent_gets(method: str) -> None:
    context = multiprocessing.get_context(method)
    q = flinq.ArrayQueue("i8", 1000, shared=True)
    child = context.Process(target=ahelpers.put_range, args=(q, 100, 50))
    child.start()
    child.join(HANG)
    assert child.exitcode == 0
    assert q.get_many(100).tolist() == list(range(100, 150))
    q.close()


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        found = tuple(int(part) for part in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return found >= (major, minor)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _kernel_at_least(5, 14),
    reason="pages are mapped in ahead with MADV_POPULATE_WRITE (Linux 5.14)",
)
def test_pages_are_mapped_in_at_creation_and_on_first_use_after_fork() -> None:
    q = flinq.ArrayQueue("i8", 100_000, shared=True)
    size, rss = ahelpers.mapped_kib(q.name)
    assert size > 1000 and rss == size
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=ahelpers.report_mapped_after_use, args=(q, answers))
    child.start()
    child_size, child_rss = answers.get(timeout=HANG)
    child.join(HANG)
    assert child.exitcode == 0
    assert child_size == size and child_rss == size
    q.close()


def test_spawned_child_maps_the_segment_after_the_creator_closed_it() -> None:
    context = multiprocessing.get_context("spawn")
    q = flinq.ArrayQueue("i8", 100, shared=True)
    child = context.Process(target=ahelpers.put_range, args=(q, 0, 5))
    child.start()
    other = flinq.ArrayQueue.attach(q.name)
    q.close()  # the name is gone before the child has started up
    child.join(HANG)
    assert child.exitcode == 0
    assert other.get_many(10).tolist() == [0, 1, 2, 3, 4]
    other.close()


def test_pool_workers_attach_by_pickle() -> None:
    context = multiprocessing.get_context("spawn")
    q = flinq.ArrayQueue("i8", 10_000, shared=True)
    with context.Pool(2) as pool:
        counts = pool.starmap(ahelpers.put_range, [(q, i * 100, 100) for i in range(20)])
    assert sum(counts) == 2000
    got = q.get_many(10_000)
    assert sorted(got.tolist()) == list(range(2000))
    q.close()


@pytest.mark.parametrize("method", METHODS)
def test_blocked_process_wakes_on_put_and_on_shutdown(method: str) -> None:
    context = multiprocessing.get_context(method)
    answers = context.Queue()
    q = flinq.ArrayQueue("i8", 10, shared=True)
    child = context.Process(target=ahelpers.get_and_report, args=(q, answers))
    child.start()
    time.sleep(0.3)  # most often the child is asleep in get_many by now
    q.put_many([5, 6])
    assert answers.get(timeout=HANG) in ([5, 6], [5])
    q.get_many(10, block=False) if q.qsize() else None
    child.join(HANG)
    child = context.Process(target=ahelpers.get_and_report, args=(q, answers))
    child.start()
    time.sleep(0.3)  # most often the child is asleep in get_many by now
    q.shutdown()
    assert answers.get(timeout=HANG) == "ShutDown"
    child.join(HANG)
    assert child.exitcode == 0
    q.close()


@pytest.mark.parametrize("method", METHODS)
def test_processes_stress_exactly_once(method: str) -> None:
    producers, consumers = 2, 2
    per_producer = 20_000 if method == "fork" else 5_000
    context = multiprocessing.get_context(method)
    q = flinq.ArrayQueue(RECORD, 500, shared=True)
    results = context.Queue()
    workers = [
        context.Process(target=ahelpers.consume, args=(q, results, 10 + i))
        for i in range(consumers)
    ]
    workers += [
        context.Process(target=ahelpers.produce, args=(q, i, per_producer, i))
        for i in range(producers)
    ]
    for worker in workers:
        worker.start()
    for worker in workers[consumers:]:
        worker.join(HANG)
        assert worker.exitcode == 0
    q.shutdown()  # consumers drain, then stop
    received = np.concatenate([results.get(timeout=HANG) for _ in range(consumers)])
    for worker in workers[:consumers]:
        worker.join(HANG)
        assert worker.exitcode == 0
    assert (received["check"] == check_of(received["producer"], received["seq"])).all()
    seen = np.zeros((producers, per_producer), dtype=np.int64)
    for producer in range(producers):
        np.add.at(seen[producer], received["seq"][received["producer"] == producer], 1)
    assert (seen == 1).all(), "every record exactly once"
    stats = q.stats()
    assert stats["enqueued"] == stats["dequeued"] == producers * per_producer
    q.close()
