"""Worker functions for the shared ArrayQueue tests: module-level, so that
spawned processes and pools can import them."""

from __future__ import annotations

from typing import Any

import numpy as np

import flinq

#: Records: which producer, its sequence number, and a check of both.
RECORD = np.dtype([("producer", "<u4"), ("seq", "<u4"), ("check", "<u8")])
#: Longest any worker waits for anything, in seconds (a hang guard).
HANG = 120.0


def records(producer: int, start: int, count: int) -> Any:
    """count records of producer from sequence number start."""
    batch = np.zeros(count, RECORD)
    batch["producer"] = producer
    batch["seq"] = np.arange(start, start + count, dtype="u4")
    batch["check"] = check_of(batch["producer"], batch["seq"])
    return batch


def check_of(producer: Any, seq: Any) -> Any:
    return (np.asarray(producer).astype(np.uint64) * np.uint64(1_000_003)) ^ np.asarray(seq).astype(
        np.uint64
    )


def produce(q: flinq.ArrayQueue, producer: int, total: int, seed: int) -> int:
    """Put total records of producer in random batches; returns total."""
    rng = np.random.default_rng(seed)
    seq = 0
    while seq < total:
        n = int(min(rng.integers(1, 200), total - seq))
        q.put_many(records(producer, seq, n), timeout=HANG)
        seq += n
    return total


def consume(q: flinq.ArrayQueue, results: Any, seed: int) -> None:
    """Take records until the queue is shut down; send them to results."""
    rng = np.random.default_rng(seed)
    taken = []
    out = np.empty(150, RECORD)
    try:
        while True:
            choice = rng.integers(3)
            if choice == 0:
                taken.append(q.get_many(int(rng.integers(1, 300)), timeout=HANG))
            elif choice == 1:
                with q.get_view(int(rng.integers(1, 300)), timeout=HANG) as viewed:
                    taken.append(viewed.copy())
            else:
                n = q.get_many(int(rng.integers(1, 300)), out=out, timeout=HANG)
                taken.append(out[:n].copy())
    except flinq.ShutDown:
        pass
    results.put(np.concatenate(taken) if taken else np.empty(0, RECORD))


def put_range(q: flinq.ArrayQueue, start: int, count: int) -> int:
    """Put int64 records start..start+count-1 (a pool task)."""
    q.put_many(np.arange(start, start + count, dtype=np.int64), timeout=HANG)
    return count


def get_and_report(q: flinq.ArrayQueue, answers: Any) -> None:
    """Block in get_many, then report what came or the exception's name."""
    try:
        answers.put(q.get_many(100, timeout=HANG).tolist())
    except Exception as error:  # reported to the parent, which asserts on it
        answers.put(type(error).__name__)


def mapped_kib(name: str) -> tuple[int, int]:
    """(Size, Rss) in KiB of this process's mapping of the shared segment
    called name, from /proc/self/smaps (Linux)."""
    path = "/dev/shm" + name
    size = rss = -1
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's first line
                inside = len(fields) >= 6 and fields[5] == path
            elif inside and fields[0] == "Size:":
                size = int(fields[1])
            elif inside and fields[0] == "Rss:":
                rss = int(fields[1])
    return size, rss


def report_mapped_after_use(q: flinq.ArrayQueue, answers: Any) -> None:
    """In a child: use the queue once, then report mapped_kib of its segment."""
    q.qsize()
    answers.put(mapped_kib(q.name))
