"""Trials of the ``array`` workload: int64 records moved through a queue in
batches, by flinq.ArrayQueue and by what a numpy user would do without it.

Every trial moves the same batch of ARRAY_BATCH int64 records (built before
timing) ``batches`` times: put one batch, get one batch back as an int64
array, repeat. ops = records moved. The bandwidth reference is
``np.copyto(out, batch)`` with the same batch and the same output array
that the flinq trial uses, ``batches`` times: one Python call and one copy of
ARRAY_BATCH records per batch, both arrays warm in cache. A queue makes two
copies per record (into its ring and out of it) and two calls per batch, and
its ring (ARRAY_RING_BATCHES batches) adds to what the cache must hold.

The processes variant (ProcessArrayBatches) puts from a producer process,
forked before timing and started by an event, while the measuring process
gets. Its figure is the steady rate: records after the first batch over the
time from the first batch's arrival to the last's, so that neither the
wake-up of the producer by the start event nor its exit is in it.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any, Final, Literal

import flinq
from flinq.bench.env import Env, missing_reason, required_module
from flinq.bench.model import OPS_PER_S, Trial
from flinq.bench.process_trials import close_queue
from flinq.bench.trials import HANG_TIMEOUT, check, faster_fifo_unavailable

#: Records per put_many / get_many call.
ARRAY_BATCH: Final = 4096
#: Records moved per item of the run's n (a record is far cheaper than an item).
ARRAY_RECORDS_PER_ITEM: Final = 16
#: The same between processes: more, because a newly forked producer starts
#: on its parent's core and the scheduler moves it to the other core only
#: after milliseconds (measured: about 2.5G records/s while the two share a
#: core, 4.5-5G/s once apart, on 2 cores); a short run would measure mostly
#: that placement.
PROCESS_RECORDS_PER_ITEM: Final = 64
#: Capacity of the ArrayQueue, in batches.
ARRAY_RING_BATCHES: Final = 4
#: Capacity of every queue between processes, in batches: room for the
#: producer to run ahead while the consumer is descheduled, and for the two
#: to copy different batches at once.
PROCESS_RING_BATCHES: Final = 16
NUMPY_EXTRA: Final = "pip install 'flinq[numpy]'"


def numpy_unavailable(env: Env) -> str | None:
    """Why the array trials cannot run here (no numpy), or None."""
    return missing_reason("numpy", "numpy", NUMPY_EXTRA)


def faster_fifo_array_unavailable(env: Env) -> str | None:
    """Why the faster-fifo array peer cannot run here, or None."""
    return numpy_unavailable(env) or faster_fifo_unavailable(env)


def shared_array_unavailable(env: Env) -> str | None:
    """Why the processes trials cannot run here (numpy, fork), or None."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "the producer process needs the 'fork' start method"
    return numpy_unavailable(env)


class _ArrayBatches(Trial):
    """What every array trial shares: the batch, the output, the check."""

    def __init__(self, n: int, env: Env, records_per_item: int = ARRAY_RECORDS_PER_ITEM) -> None:
        self.np = required_module("numpy")
        self.batches = max(1, n * records_per_item // ARRAY_BATCH)
        self.ops = self.batches * ARRAY_BATCH
        self.source = self.np.arange(ARRAY_BATCH, dtype=self.np.int64)
        self.out = self.np.zeros(ARRAY_BATCH, dtype=self.np.int64)
        self.moved = 0

    def close(self) -> None:
        intact = self.moved == self.ops and bool((self.out == self.source).all())
        check(intact, "every record moved, intact")


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


class ArrayQueueViews(ArrayQueueBatches):
    """flinq.ArrayQueue read in place: put_many(batch), then get_view()
    the records (no copy out) and release them."""

    def run(self) -> None:
        put_many = self.queue.put_many
        get_view = self.queue.get_view
        source = self.source
        moved = 0
        for _ in range(self.batches):
            put_many(source)
            with get_view(ARRAY_BATCH) as records:
                moved += len(records)
        self.moved = moved

    def close(self) -> None:
        self.queue.put_many(self.source)  # one more trip, to check the bytes
        with self.queue.get_view(ARRAY_BATCH) as records:
            self.out[:] = records
        super().close()


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
        close_queue(self.queue)


Kind = Literal["flinq", "multiprocessing", "faster_fifo"]


def _produce(queue: Any, kind: Kind, start: Any, batches: int) -> None:
    """Producer process of ProcessArrayBatches: wait for the start signal,
    then put the batch `batches` times."""
    np = required_module("numpy")
    source = np.arange(ARRAY_BATCH, dtype=np.int64)
    start.wait()
    if kind == "flinq":
        put_many = queue.put_many
        for _ in range(batches):
            put_many(source)
    else:
        put = queue.put
        timeout = HANG_TIMEOUT
        for _ in range(batches):
            put(source, True, timeout)


class ProcessArrayBatches(_ArrayBatches):
    """1 producer process puts the batch; this process gets every record:
    flinq.ArrayQueue(shared=True) get_many(out=...), or a queue of pickled
    arrays (multiprocessing.Queue, faster_fifo.Queue) get()."""

    def __init__(self, n: int, env: Env, kind: Kind) -> None:
        super().__init__(n, env, PROCESS_RECORDS_PER_ITEM)
        self.kind = kind
        context = multiprocessing.get_context("fork")
        if kind == "flinq":
            capacity = PROCESS_RING_BATCHES * ARRAY_BATCH
            self.queue: Any = flinq.ArrayQueue("i8", capacity, shared=True)
        elif kind == "multiprocessing":
            self.queue = context.Queue()
        else:
            faster_fifo = required_module("faster_fifo")
            self.queue = faster_fifo.Queue(
                max_size_bytes=PROCESS_RING_BATCHES * (8 * ARRAY_BATCH + 1024)
            )
        self.start = context.Event()
        self.producer = context.Process(
            target=_produce, args=(self.queue, kind, self.start, self.batches), daemon=True
        )
        self.producer.start()
        self.first_moved = 0
        self.first_at = self.last_at = 0.0

    def run(self) -> None:
        now = time.perf_counter
        timeout = HANG_TIMEOUT
        self.start.set()
        out = self.out
        if self.kind == "flinq":
            get_many = self.queue.get_many
            moved = get_many(ARRAY_BATCH, out=out, timeout=timeout)
            self.first_at = now()
            self.first_moved = moved
            while moved < self.ops:
                moved += get_many(ARRAY_BATCH, out=out, timeout=timeout)
        else:
            get = self.queue.get
            out = get(True, timeout)
            self.first_at = now()
            moved = self.first_moved = len(out)
            while moved < self.ops:
                out = get(True, timeout)
                moved += len(out)
        self.last_at = now()
        self.out = out
        self.moved = moved

    def figures(self, seconds: float) -> dict[str, float]:
        """ops/s in the steady state: the records after the first batch over
        the time from its arrival to the last batch's (see the module)."""
        if self.moved == self.first_moved:  # one batch only: no interval to time
            return super().figures(seconds)
        rate = (self.moved - self.first_moved) / max(self.last_at - self.first_at, 1e-9)
        return {OPS_PER_S: rate}

    def close(self) -> None:
        self.start.set()
        self.producer.join(HANG_TIMEOUT)
        if self.producer.is_alive():
            self.producer.kill()
        super().close()
        close_queue(self.queue)


__all__ = [
    "ARRAY_BATCH",
    "ARRAY_RECORDS_PER_ITEM",
    "ARRAY_RING_BATCHES",
    "PROCESS_RECORDS_PER_ITEM",
    "PROCESS_RING_BATCHES",
    "ArrayQueueBatches",
    "ArrayQueueViews",
    "CopytoBatches",
    "ListQueueBatches",
    "PickledArrayBatches",
    "ProcessArrayBatches",
    "faster_fifo_array_unavailable",
    "numpy_unavailable",
    "shared_array_unavailable",
]
