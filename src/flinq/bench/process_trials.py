"""How the between-processes workloads run: flinq.ProcessQueue against
multiprocessing.Queue, multiprocessing.SimpleQueue and faster-fifo; also
the threads workload's faster-fifo peer, which has consumer processes too.

The caller is the producer; consumer processes are forked before timing
and have reported ready, so run() measures messages moving, not process
start-up (the threads workload's peer starts its consumers but does not
wait for them). Conventions are those of flinq.bench.trials: payloads built
before timing, methods bound to locals in measured loops, close() checks
that every message arrived.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import time
from collections.abc import Callable
from itertools import cycle, islice
from typing import Any, Final

import flinq
from flinq.bench.env import Env, missing_reason, required_module
from flinq.bench.model import Trial
from flinq.bench.trials import (
    BATCH,
    HANG_TIMEOUT,
    P50,
    P99,
    check,
    faster_fifo_queue,
    in_batches,
    percentile,
)

#: Size of a message in the large-message workload.
LARGE_BYTES: Final = 1 << 20
#: Distinct large bodies a trial cycles through (so that n of them need not
#: all be in memory at once).
LARGE_DISTINCT: Final = 8

#: The contenders' queue kinds, as the consumer processes dispatch on them.
FLINQ: Final = "flinq"
MP_QUEUE: Final = "mp-queue"
MP_SIMPLE: Final = "mp-simple"
FASTER_FIFO: Final = "faster-fifo"

# End of stream: an empty bytes object (payloads are never empty).
_STOP: Final = b""


def _is_stop(item: Any) -> bool:
    return type(item) is bytes and not item


def _context() -> Any:
    """Consumer processes are forked: faster-fifo needs it, and it keeps
    start-up out of the way for every contender alike."""
    return multiprocessing.get_context("fork")


def fork_unavailable(env: Env) -> str | None:
    """Why forked consumer processes cannot run here, or None."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "needs the 'fork' start method"
    if not flinq.ProcessQueue.supported():
        return "flinq.ProcessQueue is not supported on this platform"
    return None


def faster_fifo_processes_unavailable(env: Env) -> str | None:
    """Why the faster-fifo contender cannot run here, or None."""
    return missing_reason("faster_fifo", "faster-fifo") or fork_unavailable(env)


def numpy_processes_unavailable(env: Env) -> str | None:
    """Why the numpy contender cannot run here, or None."""
    return missing_reason("numpy", "numpy", "pip install numpy") or fork_unavailable(env)


def make_queue(kind: str, largest: int) -> Any:
    """A queue of kind able to hold messages of up to largest bytes."""
    if kind == FLINQ:
        return flinq.ProcessQueue(buffer_bytes=max(4 << 20, 8 * largest))
    if kind == MP_QUEUE:
        return _context().Queue()
    if kind == MP_SIMPLE:
        return _context().SimpleQueue()
    faster_fifo = required_module("faster_fifo")
    return faster_fifo.Queue(max_size_bytes=max(8 << 20, 16 * largest))


def close_queue(q: Any) -> None:
    """Close a queue between processes once its trial is done with it; a
    multiprocessing.Queue also waits for its feeder thread, so that no
    thread of the trial outlives it."""
    q.close()
    if isinstance(q, multiprocessing.queues.Queue):
        q.join_thread()


def _getter(kind: str, q: Any, batch: bool) -> Callable[[], list[Any]]:
    """A call that returns the next messages as a list."""
    if kind == FASTER_FIFO:
        if batch:
            return lambda: q.get_many(True, HANG_TIMEOUT, max_messages_to_get=BATCH)
        return lambda: [q.get(True, HANG_TIMEOUT)]
    if kind == FLINQ and batch:
        return lambda: q.get_many(BATCH)
    if batch:  # multiprocessing queues carry a batch as one list
        return q.get  # type: ignore[no-any-return]
    get = q.get
    return lambda: [get()]


def _consume(kind: str, q: Any, done: Any, batch: bool) -> None:
    """Consumer process: report ready, take until the end marker, report
    how many messages it took."""
    done.put(0)
    taken = 0
    if not batch and kind in (FLINQ, MP_QUEUE, MP_SIMPLE):
        get = q.get
        while not _is_stop(get()):
            taken += 1
    else:
        take = _getter(kind, q, batch)
        while True:
            items = take()
            if _is_stop(items[-1]):
                taken += len(items) - 1
                break
            taken += len(items)
    done.put(taken)


class _ConsumerProcesses(Trial):
    """What the trials with consumer processes share: the caller ends the
    stream with one end marker per consumer, each consumer then puts how
    many messages it took on ``done``, and close() checks that together
    they took every one."""

    queue: Any
    done: Any
    processes: list[Any]
    taken: list[int]
    stopped = False

    def end_stream(self) -> None:
        """Put one end marker per consumer process on the queue."""
        raise NotImplementedError

    def stop(self) -> None:
        """End the stream (once) and collect every consumer's count."""
        if self.stopped:
            return
        self.stopped = True
        self.end_stream()
        get = self.done.get
        self.taken = [get() for _ in self.processes]

    def close(self) -> None:
        ran = self.stopped
        self.stop()
        for process in self.processes:
            process.join(HANG_TIMEOUT)
        self.done.close()
        close_queue(self.queue)
        if ran:
            check(sum(self.taken) == self.ops, "consumer processes took every message")


class ProcessConsumersTrial(_ConsumerProcesses):
    """The caller puts n messages (one by one, or in batches of BATCH);
    consumer processes take them. Measured: from the first put until every
    consumer has reported its count."""

    def __init__(
        self, n: int, kind: str, bodies: list[Any], consumers: int, batch: bool = False
    ) -> None:
        self.ops = n
        self.kind = kind
        self.batch = batch
        self.items = list(islice(cycle(bodies), n))
        self.batches = in_batches(self.items)
        largest = max(getattr(b, "nbytes", None) or len(b) for b in bodies)
        self.queue = make_queue(kind, largest * (BATCH if batch else 1))
        context = _context()
        self.done = context.SimpleQueue()
        self.processes = [
            context.Process(target=_consume, args=(kind, self.queue, self.done, batch), daemon=True)
            for _ in range(consumers)
        ]
        for process in self.processes:
            process.start()
        for _ in self.processes:
            self.done.get()  # ready
        self.taken = []

    def end_stream(self) -> None:
        for _ in self.processes:
            if self.batch and self.kind in (MP_QUEUE, MP_SIMPLE):
                self.queue.put([_STOP])
            else:
                self.queue.put(_STOP)

    def run(self) -> None:
        q = self.queue
        if not self.batch:
            put = q.put
            for item in self.items:
                put(item)
        elif self.kind in (FLINQ, FASTER_FIFO):
            put_many = q.put_many
            for chunk in self.batches:
                put_many(chunk)
        else:
            put = q.put
            for chunk in self.batches:
                put(chunk)
        self.stop()


def _faster_fifo_consumer(q: Any, done: Any) -> None:
    """Consumer process of FasterFifoConsumers: take until the end marker."""
    get = q.get
    taken = 0
    while get(True, HANG_TIMEOUT) != _STOP:
        taken += 1
    done.put(taken)


class FasterFifoConsumers(_ConsumerProcesses):
    """The threads workload's faster-fifo peer, in faster-fifo's own
    setting: the caller puts n payloads into a faster_fifo.Queue; consumer
    *processes* take them. Measured: from the first put until every
    consumer reported its count (its consumers are started, not awaited,
    before timing)."""

    def __init__(self, n: int, env: Env, consumers: int) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.queue = faster_fifo_queue(n + consumers)
        context = _context()
        self.done = context.SimpleQueue()
        self.processes = [
            context.Process(target=_faster_fifo_consumer, args=(self.queue, self.done), daemon=True)
            for _ in range(consumers)
        ]
        self.taken = []
        for process in self.processes:
            process.start()

    def end_stream(self) -> None:
        put = self.queue.put
        for _ in self.processes:
            put(_STOP, True, HANG_TIMEOUT)

    def run(self) -> None:
        put = self.queue.put
        for item in self.items:
            put(item)
        self.stop()


PrepareFn = Callable[[int, Env], Trial]


def small_trial(consumers: int, batch: bool = False) -> Callable[[str], PrepareFn]:
    """prepare(n, env) for 64-byte payloads with consumers processes, by kind."""

    def for_kind(kind: str) -> PrepareFn:
        def prepare(n: int, env: Env) -> Trial:
            return ProcessConsumersTrial(n, kind, env.payloads(min(n, 100_000)), consumers, batch)

        return prepare

    return for_kind


def large_bodies() -> list[bytes]:
    """LARGE_DISTINCT distinct bodies of LARGE_BYTES bytes."""
    return [bytes([i]) * LARGE_BYTES for i in range(1, LARGE_DISTINCT + 1)]


def large_trial(kind: str) -> PrepareFn:
    """prepare(n, env) for 1 MiB bytes bodies, 1 consumer process."""
    return lambda n, env: ProcessConsumersTrial(n, kind, large_bodies(), 1)


def large_numpy_trial(kind: str) -> PrepareFn:
    """prepare(n, env) for 1 MiB numpy arrays, 1 consumer process (flinq:
    pickle 5 with out-of-band buffers; multiprocessing: its own pickling)."""

    def prepare(n: int, env: Env) -> Trial:
        np = required_module("numpy")
        arrays = [np.full(LARGE_BYTES // 8, i, dtype=np.float64) for i in range(LARGE_DISTINCT)]
        return ProcessConsumersTrial(n, kind, arrays, 1)

    return prepare


class MemcpyReference(Trial):
    """One in-process copy of LARGE_BYTES per operation (bytearray slice
    assignment: a memcpy): the bandwidth the large-message rows compare to."""

    def __init__(self, n: int, env: Env) -> None:
        self.ops = n
        self.source = large_bodies()[0]
        self.target = bytearray(LARGE_BYTES)

    def run(self) -> None:
        source = self.source
        target = self.target
        for _ in range(self.ops):
            target[:] = source

    def close(self) -> None:
        check(self.target == self.source, "the copy arrived")


def _echo(kind: str, requests: Any, replies: Any) -> None:
    """Ping-pong partner: send back every message until the end marker."""
    get = requests.get
    put = replies.put
    replies.put(_STOP)  # ready
    while True:
        item = get()
        if _is_stop(item):
            return
        put(item)


class PingPong(Trial):
    """Round trips between the caller and one partner process: put a
    message on one queue, get it back on another. Figures: round-trip
    latency percentiles."""

    def __init__(self, n: int, env: Env, kind: str) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.times = [0] * n
        self.requests = make_queue(kind, 64)
        self.replies = make_queue(kind, 64)
        self.partner = _context().Process(
            target=_echo, args=(kind, self.requests, self.replies), daemon=True
        )
        self.partner.start()
        self.replies.get()  # ready
        self.stopped = False

    def run(self) -> None:
        put = self.requests.put
        get = self.replies.get
        now = time.perf_counter_ns
        times = self.times
        for index, item in enumerate(self.items):
            start = now()
            put(item)
            get()
            times[index] = now() - start

    def figures(self, seconds: float) -> dict[str, float]:
        ordered = sorted(self.times)
        return {P50.key: percentile(ordered, 0.50), P99.key: percentile(ordered, 0.99)}

    def close(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.requests.put(_STOP)
        self.partner.join(HANG_TIMEOUT)
        close_queue(self.requests)
        close_queue(self.replies)
        check(all(self.times), "every round trip completed")


__all__ = [
    "FASTER_FIFO",
    "FLINQ",
    "LARGE_BYTES",
    "MP_QUEUE",
    "MP_SIMPLE",
    "FasterFifoConsumers",
    "MemcpyReference",
    "PingPong",
    "ProcessConsumersTrial",
    "close_queue",
    "faster_fifo_processes_unavailable",
    "fork_unavailable",
    "large_numpy_trial",
    "large_trial",
    "numpy_processes_unavailable",
    "small_trial",
]
