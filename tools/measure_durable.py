"""Durable figures beside flinq bench's: sync-mode puts with 1 and 16 threads
against this disk's fsync rate and raw LMDB's one-put commits, and reopening
a store that holds 1M messages (after a clean close, a process crash, and an
OS restart). The 16-thread ratio is also a flinq bench workload
(durable-put-sync-threads); tools/fixed_fsync.c gives it a disk of fixed flush
latency (see there). `idle` times raw LMDB commits back to back and after an
idle gap as long as 16 sync producers' wake-ups between two commits: some
disks (virtual ones) flush more slowly after a pause.

    python tools/measure_durable.py sync
    python tools/measure_durable.py recovery
    python tools/measure_durable.py idle
"""

import os
import statistics
import sys
import tempfile
import threading
import time

import lmdb

import flinq

BODY = bytes(64)

# Every store, LMDB environment and file measured here lives under this
# directory, which is removed at exit (the recovery store alone is 114 MB).
_ROOT = tempfile.TemporaryDirectory(prefix="flinq-measure-")


def _scratch() -> str:
    return tempfile.mkdtemp(dir=_ROOT.name)


def fsync_rate(directory: str, n: int = 1000) -> float:
    fd = os.open(os.path.join(directory, "f"), os.O_CREAT | os.O_WRONLY)
    block = b"x" * 4096
    t = time.perf_counter()
    for _ in range(n):
        os.pwrite(fd, block, 0)
        os.fsync(fd)
    os.close(fd)
    return n / (time.perf_counter() - t)


def sync_rate(threads: int, per_thread: int) -> tuple[float, float]:
    store = flinq.open(_scratch() + "/s", durability="sync")
    q = store.queue("s")

    def work() -> None:
        for _ in range(per_thread):
            q.put(BODY)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    t = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    rate = threads * per_thread / (time.perf_counter() - t)
    mean_batch = store.stats()["mean_batch"]
    store.close()
    return rate, mean_batch


def raw_lmdb_commit_rate(n: int = 1000) -> float:
    env = lmdb.open(_scratch(), map_size=1 << 28, max_dbs=2)
    db = env.open_db(b"q")
    t = time.perf_counter()
    for i in range(n):
        with env.begin(write=True, db=db) as txn:
            txn.put(i.to_bytes(8, "big"), BODY)
    rate = n / (time.perf_counter() - t)
    env.close()
    return rate


def sync() -> None:
    runs: dict[str, list[float]] = {
        k: [] for k in ("fsync", "raw_lmdb_commit", "sync_1", "sync_16")
    }
    batches = []
    directory = _scratch()
    for _ in range(5):
        runs["fsync"].append(fsync_rate(directory))
        runs["raw_lmdb_commit"].append(raw_lmdb_commit_rate())
        runs["sync_1"].append(sync_rate(1, 1000)[0])
        rate, batch = sync_rate(16, 250)
        runs["sync_16"].append(rate)
        batches.append(batch)
    med = {k: statistics.median(v) for k, v in runs.items()}
    for k, v in med.items():
        print(f"{k:16s} median {v:10.1f}/s  reps {[round(x) for x in runs[k]]}")
    print(f"puts per commit with 16 threads: {statistics.median(batches):.1f}")
    print(f"sync 1 thread / fsync rate      = {med['sync_1'] / med['fsync']:.2f}x")
    print(f"sync 1 thread / raw LMDB commit = {med['sync_1'] / med['raw_lmdb_commit']:.2f}x")
    print(f"sync 16 threads / 1 thread      = {med['sync_16'] / med['sync_1']:.2f}x")


def commit_seconds(puts: int, gap: float, n: int = 500) -> float:
    """Median time of a raw LMDB commit of puts messages, each commit
    after gap seconds of sleep (0: back to back)."""
    env = lmdb.open(_scratch(), map_size=1 << 28, max_dbs=2)
    db = env.open_db(b"q")
    times = []
    key = 0
    for _ in range(n):
        if gap:
            time.sleep(gap)
        txn = env.begin(write=True, db=db)
        for _ in range(puts):
            txn.put(key.to_bytes(8, "big"), BODY)
            key += 1
        t = time.perf_counter()
        txn.commit()
        times.append(time.perf_counter() - t)
    env.close()
    return statistics.median(times)


def idle() -> None:
    cases = [(puts, gap) for puts in (1, 16) for gap in (0.0, 0.0004)]
    runs: dict[tuple[int, float], list[float]] = {case: [] for case in cases}
    for _ in range(5):
        for puts, gap in cases:
            runs[puts, gap].append(commit_seconds(puts, gap))
    for (puts, gap), times in runs.items():
        print(
            f"{puts:2d} puts per commit, {gap * 1e6:3.0f} us idle before it: commit median "
            f"{statistics.median(times) * 1e6:4.0f} us  reps {[round(t * 1e6) for t in times]}"
        )


def recovery() -> None:
    path = _scratch() + "/s"
    with flinq.open(path) as store:
        q = store.queue("q")
        for _ in range(10):
            q.put_many([BODY] * 100_000)
    size = os.path.getsize(os.path.join(path, "data.mdb"))

    def reopen() -> float:
        t = time.perf_counter()
        store = flinq.open(path)
        n = store.queue("q").qsize()
        elapsed = time.perf_counter() - t
        store.close()
        assert n == 1_000_000, n
        return elapsed

    clean = [reopen() for _ in range(5)]
    crashed = []
    for _ in range(3):
        # A crash is trusted once in a row: an open through the clean marker
        # first, so that each timed open follows a session that made no trust.
        reopen()
        os.unlink(os.path.join(path, "flinq.clean"))  # what a SIGKILL leaves
        crashed.append(reopen())
    restarted = []
    for _ in range(3):
        # What a restart of the OS leaves: no clean marker, and the session
        # marker names another boot (here: none at all).
        os.unlink(os.path.join(path, "flinq.clean"))
        os.unlink(os.path.join(path, "flinq.session"))
        restarted.append(reopen())
    print(f"data.mdb {size / 1e6:.0f} MB, 1,000,000 messages")
    print(f"reopen after a clean close: median {statistics.median(clean):.3f} s")
    print(f"reopen after a process crash, same boot: median {statistics.median(crashed):.3f} s")
    print(f"reopen after an OS restart (full verify): median {statistics.median(restarted):.3f} s")


if __name__ == "__main__":
    modes = {"sync": sync, "recovery": recovery, "idle": idle}
    modes[sys.argv[1] if len(sys.argv) > 1 else "sync"]()
