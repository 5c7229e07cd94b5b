"""Trials of the ``array`` workload: int64 records moved through a queue in
batches, by flinq.ArrayQueue and by what a numpy user would do without it.

Every trial moves the same batch of ARRAY_BATCH int64 records (built before
timing) ``batches`` times: put one batch, get one batch back as an int64
array, repeat. ops = records moved. np.copyto of the same batch into the
same output array is the bandwidth reference: one copy per record, where a
queue needs two (in and out).
"""

from __future__ import annotations

import multiprocessing
from typing import Any, Final

import flinq
from flinq.bench.env import Env, missing_reason, required_module
from flinq.bench.model import Trial
from flinq.bench.trials import faster_fifo_unavailable

#: Records per put_many / get_many call.
ARRAY_BATCH: Final = 4096
#: Records moved per item of the run's n (a record is far cheaper than an item).
ARRAY_RECORDS_PER_ITEM: Final = 16
#: Capacity of the ArrayQueue, in batches.
ARRAY_RING_BATCHES: Final = 4
NUMPY_EXTRA: Final = "pip install 'flinq[numpy]'"


def numpy_unavailable(env: Env) -> str | None:
    """Why the array trials cannot run here (no numpy), or None."""
    return missing_reason("numpy", "numpy", NUMPY_EXTRA)


def faster_fifo_array_unavailable(env: Env) -> str | None:
    """Why the faster-fifo array peer cannot run here, or None."""
    return numpy_unavailable(env) or faster_fifo_unavailable(env)


class _ArrayBatches(Trial):
    """What every array trial shares: the batch, the output, the check."""

    def __init__(self, n: int, env: Env) -> None:
        self.np = required_module("numpy")
        self.batches = max(1, n * ARRAY_RECORDS_PER_ITEM // ARRAY_BATCH)
        self.ops = self.batches * ARRAY_BATCH
        self.source = self.np.arange(ARRAY_BATCH, dtype=self.np.int64)
        self.out = self.np.zeros(ARRAY_BATCH, dtype=self.np.int64)
        self.moved = 0

    def close(self) -> None:
        if self.moved != self.ops or not (self.out == self.source).all():
            raise RuntimeError("benchmark trial check failed: every record moved, intact")


class ArrayQueueBatches(_ArrayBatches):
    """flinq.ArrayQueue: put_many(batch), then get_many(ARRAY_BATCH, out=out)."""

    def __init__(self, n: int, env: Env) -> None:
        super().__init__(n, env)
        self.queue = flinq.ArrayQueue("i8", ARRAY_RING_BATCHES * ARRAY_BATCH)

    def run(self) -> None:
        put_many = self.queue.put_many
        get_many = self.queue.get_many
        source, out = self.source, self.out
        moved = 0
        for _ in range(self.batches):
            put_many(source)
            moved += get_many(ARRAY_BATCH, out=out)
        self.moved = moved

    def close(self) -> None:
        super().close()
        self.queue.close()


class CopytoBatches(_ArrayBatches):
    """np.copyto(out, batch): the bandwidth of one copy of the same bytes."""

    def run(self) -> None:
        copyto = self.np.copyto
        source, out = self.source, self.out
        for _ in range(self.batches):
            copyto(out, source)
        self.moved = self.ops


class ListQueueBatches(_ArrayBatches):
    """flinq.Queue as a numpy user has it today: put_many(batch.tolist()),
    then get_many(ARRAY_BATCH) back into an int64 array."""

    def __init__(self, n: int, env: Env) -> None:
        super().__init__(n, env)
        self.queue: flinq.Queue[int] = flinq.Queue()

    def run(self) -> None:
        put_many = self.queue.put_many
        get_many = self.queue.get_many
        asarray = self.np.asarray
        int64 = self.np.int64
        source = self.source
        moved = 0
        out = self.out
        for _ in range(self.batches):
            put_many(source.tolist())
            out = asarray(get_many(ARRAY_BATCH), dtype=int64)
            moved += len(out)
        self.out = out
        self.moved = moved


class PickledArrayBatches(_ArrayBatches):
    """A queue of pickled arrays (multiprocessing.Queue, faster_fifo.Queue):
    put(batch), then get() it back."""

    def __init__(self, n: int, env: Env, kind: str) -> None:
        super().__init__(n, env)
        self.kind = kind
        if kind == "multiprocessing":
            self.queue: Any = multiprocessing.get_context().Queue()
        else:
            faster_fifo = required_module("faster_fifo")
            self.queue = faster_fifo.Queue(max_size_bytes=8 * ARRAY_BATCH * 4 + (1 << 20))

    def run(self) -> None:
        put = self.queue.put
        get = self.queue.get
        source = self.source
        moved = 0
        out = self.out
        for _ in range(self.batches):
            put(source)
            out = get()
            moved += len(out)
        self.out = out
        self.moved = moved

    def close(self) -> None:
        super().close()
        if self.kind == "multiprocessing":
            self.queue.close()
            self.queue.join_thread()
        else:
            self.queue.close()


__all__ = [
    "ARRAY_BATCH",
    "ARRAY_RECORDS_PER_ITEM",
    "ARRAY_RING_BATCHES",
    "ArrayQueueBatches",
    "CopytoBatches",
    "ListQueueBatches",
    "PickledArrayBatches",
    "faster_fifo_array_unavailable",
    "numpy_unavailable",
]
