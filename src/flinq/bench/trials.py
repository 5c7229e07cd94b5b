"""How each benchmark workload is run: the trials of flinq.bench.workloads.

Conventions every trial follows:
  - payloads are distinct 64-byte bytes objects built before timing
    (Env.payloads); so are priorities, batches and keys;
  - measured loops call methods through local variables bound before the
    loop (``put = q.put``), for flinq and peers alike;
  - run() is the only measured part; close() checks that the trial did its
    job (every item arrived) and releases what it holds.

check, in_batches and ignore below serve the other trial modules too.
"""

from __future__ import annotations

import heapq
import math
import multiprocessing
import queue
import shutil
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from itertools import count, repeat
from typing import Any, Final, Literal, TypeVar

import flinq
from flinq.bench.env import Env, missing_reason, required_module
from flinq.bench.model import Metric, Trial

#: Items per put_many/get_many call (and per Redis pipeline) in batch workloads.
BATCH: Final = 100
#: lmdb puts per write transaction in the persistence-limit workload.
LMDB_TXN: Final = 1000
#: Pause of the latency workload's producer between puts, in seconds. The
#: producer sleeps (releasing the GIL) so that each item meets a consumer
#: already waiting in get(): the figure is hand-over latency, not backlog.
LATENCY_PAUSE: Final = 20e-6
#: Longest a trial's helper thread or process waits for an item, in seconds.
HANG_TIMEOUT: Final = 600.0

P50 = Metric("p50_ns", "p50 latency", "ns", higher_is_better=False)
P99 = Metric("p99_ns", "p99 latency", "ns", higher_is_better=False)
MEMORY = Metric("bytes_per_million", "memory per 1M items", "bytes", higher_is_better=False)

_T = TypeVar("_T")

# A thread-queue end-of-stream marker (compared by identity).
_STOP: Final = object()


def check(condition: bool, what: str) -> None:
    """Raise RuntimeError if a trial's own check fails (a broken trial, not
    slowness); what says what was expected."""
    if not condition:
        raise RuntimeError(f"benchmark trial check failed: {what}")


def in_batches(items: list[_T], size: int = BATCH) -> list[list[_T]]:
    """items split into consecutive lists of at most size items."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def ignore(message: object) -> None:
    """The no-op handler of the consume workloads."""


# ---- one-thread FIFO put and get ---------------------------------------------


class PutAll(Trial):
    """put n items, one call per item, into a new container."""

    def __init__(self, n: int, env: Env, make: Callable[[], Any], method: str) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.container = make()
        self.put: Callable[[bytes], object] = getattr(self.container, method)

    def run(self) -> None:
        put = self.put
        for item in self.items:
            put(item)

    def close(self) -> None:
        check(_size(self.container) == self.ops, "every item stored")


class GetAll(Trial):
    """get n items, one call per item, from a container filled beforehand."""

    def __init__(
        self, n: int, env: Env, make: Callable[[], Any], put_method: str, get_method: str
    ) -> None:
        self.ops = n
        self.container = make()
        put = getattr(self.container, put_method)
        for item in env.payloads(n):
            put(item)
        self.get: Callable[[], object] = getattr(self.container, get_method)

    def run(self) -> None:
        get = self.get
        for _ in repeat(None, self.ops):
            get()

    def close(self) -> None:
        check(_size(self.container) == 0, "every item taken")


def _size(container: Any) -> int:
    """Items in a queue-like container."""
    if hasattr(container, "qsize"):
        return int(container.qsize())
    return len(container)


def faster_fifo_queue(n: int) -> Any:
    """A faster_fifo.Queue whose buffer holds n pickled payloads."""
    faster_fifo = required_module("faster_fifo")
    return faster_fifo.Queue(max_size_bytes=n * 160 + (1 << 20))


# ---- threads: one producer, blocking consumer threads --------------------------


class ThreadConsumers(Trial):
    """The caller puts n items; consumer threads block in get() until a
    stop marker. Measured: from the first put until every consumer is done."""

    def __init__(self, n: int, env: Env, make: Callable[[], Any], consumers: int) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.queue = make()
        self.counts = [0] * consumers
        self.threads = [
            threading.Thread(target=self._consume, args=(i,), daemon=True) for i in range(consumers)
        ]
        self.stopped = False
        for thread in self.threads:
            thread.start()

    def _consume(self, index: int) -> None:
        get = self.queue.get
        taken = 0
        while get() is not _STOP:
            taken += 1
        self.counts[index] = taken

    def _stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            put = self.queue.put
            for _ in self.threads:
                put(_STOP)
        for thread in self.threads:
            thread.join(HANG_TIMEOUT)

    def run(self) -> None:
        put = self.queue.put
        for item in self.items:
            put(item)
        self._stop()

    def close(self) -> None:
        ran = self.stopped
        self._stop()
        if ran:
            check(sum(self.counts) == self.ops, "consumers took every item")


def faster_fifo_unavailable(env: Env) -> str | None:
    """Why the faster-fifo peer cannot run here, or None."""
    reason = missing_reason("faster_fifo", "faster-fifo")
    if reason is None and "fork" not in multiprocessing.get_all_start_methods():
        reason = "faster-fifo consumer processes need the 'fork' start method"
    return reason


# ---- consume: worker threads doing get() + task_done() -------------------------


class _PutThenJoin(Trial):
    """The consume workloads' producer: put n items one by one, then join()
    until every one is processed. Measured: from the first put until join()
    returns."""

    queue: Any
    items: list[bytes]
    joined = False

    def run(self) -> None:
        put = self.queue.put
        for item in self.items:
            put(item)
        self.queue.join()
        self.joined = True


class ConsumeWorkers(_PutThenJoin):
    """The in-memory consume pattern: worker threads loop on get() and
    task_done()."""

    def __init__(self, n: int, env: Env, make: Callable[[], Any], workers: int) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.queue = make()
        self.workers = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for worker in self.workers:
            worker.start()

    def _work(self) -> None:
        get = self.queue.get
        done = self.queue.task_done
        while get() is not _STOP:
            done()
        done()

    def close(self) -> None:
        put = self.queue.put
        for _ in self.workers:
            put(_STOP)
        for worker in self.workers:
            worker.join(HANG_TIMEOUT)
        if self.joined:
            check(self.queue.qsize() == 0, "workers took every item")


class FlinqConsume(_PutThenJoin):
    """flinq's consume path: q.consume(no-op handler, workers=w); each
    message handled and acked."""

    def __init__(self, n: int, env: Env, workers: int) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.queue = flinq.Queue()
        self.consumer = self.queue.consume(ignore, workers=workers)

    def close(self) -> None:
        stopped = self.consumer.stop(drain=False, timeout=HANG_TIMEOUT)
        check(stopped, "consumer stopped")
        if self.joined:
            check(self.consumer.stats()["handled"] == self.ops, "every message handled once")


# ---- priority put and get ---------------------------------------------------------


class FlinqPriorityPut(Trial):
    """put(item, priority=p) into flinq.PriorityQueue: the int fast path."""

    def __init__(self, n: int, env: Env) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.priorities = env.priorities(n)
        self.queue: flinq.PriorityQueue[bytes] = flinq.PriorityQueue()

    def run(self) -> None:
        put = self.queue.put
        for priority, item in zip(self.priorities, self.items, strict=True):
            put(item, priority=priority)

    def close(self) -> None:
        check(self.queue.qsize() == self.ops, "every item stored")


class HeapqPush(Trial):
    """heapq.heappush of (priority, seq, item) tuples: the usual stable idiom."""

    def __init__(self, n: int, env: Env) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.priorities = env.priorities(n)
        self.heap: list[tuple[int, int, bytes]] = []

    def run(self) -> None:
        push = heapq.heappush
        heap = self.heap
        for seq, priority, item in zip(count(), self.priorities, self.items):
            push(heap, (priority, seq, item))

    def close(self) -> None:
        check(len(self.heap) == self.ops, "every item stored")


class StdPriorityPut(Trial):
    """queue.PriorityQueue.put of (priority, seq, item) tuples."""

    def __init__(self, n: int, env: Env) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.priorities = env.priorities(n)
        self.queue: queue.PriorityQueue[tuple[int, int, bytes]] = queue.PriorityQueue()

    def run(self) -> None:
        put = self.queue.put
        for seq, priority, item in zip(count(), self.priorities, self.items):
            put((priority, seq, item))

    def close(self) -> None:
        check(self.queue.qsize() == self.ops, "every item stored")


class FlinqPriorityGet(Trial):
    """get() n items from a flinq.PriorityQueue filled with int priorities."""

    def __init__(self, n: int, env: Env) -> None:
        self.ops = n
        self.queue: flinq.PriorityQueue[bytes] = flinq.PriorityQueue()
        put = self.queue.put
        for priority, item in zip(env.priorities(n), env.payloads(n), strict=True):
            put(item, priority=priority)

    def run(self) -> None:
        get = self.queue.get
        for _ in repeat(None, self.ops):
            get()

    def close(self) -> None:
        check(self.queue.qsize() == 0, "every item taken")


class HeapqPop(Trial):
    """heapq.heappop n (priority, seq, item) tuples, keeping the item."""

    def __init__(self, n: int, env: Env) -> None:
        self.ops = n
        self.heap = [
            (p, seq, item)
            for seq, (p, item) in enumerate(zip(env.priorities(n), env.payloads(n), strict=True))
        ]
        heapq.heapify(self.heap)

    def run(self) -> None:
        pop = heapq.heappop
        heap = self.heap
        for _ in repeat(None, self.ops):
            pop(heap)[2]

    def close(self) -> None:
        check(not self.heap, "every item taken")


class StdPriorityGet(Trial):
    """queue.PriorityQueue.get n (priority, seq, item) tuples, keeping the item."""

    def __init__(self, n: int, env: Env) -> None:
        self.ops = n
        self.queue: queue.PriorityQueue[tuple[int, int, bytes]] = queue.PriorityQueue()
        put = self.queue.put
        for seq, (p, item) in enumerate(zip(env.priorities(n), env.payloads(n), strict=True)):
            put((p, seq, item))

    def run(self) -> None:
        get = self.queue.get
        for _ in repeat(None, self.ops):
            get()[2]

    def close(self) -> None:
        check(self.queue.qsize() == 0, "every item taken")


# ---- batch: put then get n items in batches of BATCH -------------------------------


class _Batches(Trial):
    """What the batch trials share: n payloads split into batches of BATCH
    before timing, and a queue that close() checks is empty."""

    def __init__(self, n: int, env: Env, queue: Any) -> None:
        self.ops = n
        self.batches = in_batches(env.payloads(n))
        self.queue = queue

    def close(self) -> None:
        check(_size(self.queue) == 0, "every item taken")


class FlinqBatch(_Batches):
    """put_many() n items in batches, then get_many(BATCH) until all are back."""

    def __init__(self, n: int, env: Env) -> None:
        super().__init__(n, env, flinq.Queue())

    def run(self) -> None:
        put_many = self.queue.put_many
        get_many = self.queue.get_many
        for batch in self.batches:
            put_many(batch)
        left = self.ops
        while left:
            left -= len(get_many(BATCH))


class DequeBatch(_Batches):
    """deque.extend() each batch, then popleft() batch-sized lists."""

    def __init__(self, n: int, env: Env) -> None:
        super().__init__(n, env, deque())

    def run(self) -> None:
        extend = self.queue.extend
        popleft = self.queue.popleft
        for batch in self.batches:
            extend(batch)
        for batch in self.batches:
            [popleft() for _ in batch]


class LoopBatch(_Batches):
    """A queue without batch calls: put() each item of each batch, then
    get() batch-sized lists."""

    def __init__(self, n: int, env: Env, make: Callable[[], Any]) -> None:
        super().__init__(n, env, make())

    def run(self) -> None:
        put = self.queue.put
        get = self.queue.get
        for batch in self.batches:
            for item in batch:
                put(item)
        for batch in self.batches:
            [get() for _ in batch]


class FasterFifoBatch(_Batches):
    """faster_fifo.Queue.put_many() each batch, then get_many() up to BATCH."""

    def __init__(self, n: int, env: Env) -> None:
        super().__init__(n, env, faster_fifo_queue(n))

    def run(self) -> None:
        put_many = self.queue.put_many
        get_many = self.queue.get_many
        for batch in self.batches:
            put_many(batch)
        left = self.ops
        while left:
            left -= len(get_many(max_messages_to_get=BATCH))


# ---- latency: enqueue-to-dequeue with a waiting consumer --------------------------


def percentile(ordered: list[int], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return float(ordered[index])


class Latency(Trial):
    """One producer, one consumer thread. The producer stamps
    time.perf_counter_ns() before each put() and pauses LATENCY_PAUSE
    between puts; the consumer stamps right after get() returns."""

    def __init__(self, n: int, env: Env, make: Callable[[], Any]) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.sent = [0] * n
        self.received = [0] * n
        self.queue = make()
        self.stopped = False
        self.consumer = threading.Thread(target=self._consume, daemon=True)
        self.consumer.start()

    def _consume(self) -> None:
        get = self.queue.get
        now = time.perf_counter_ns
        received = self.received
        index = 0
        while get() is not _STOP:
            received[index] = now()
            index += 1

    def _stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.queue.put(_STOP)
        self.consumer.join(HANG_TIMEOUT)

    def run(self) -> None:
        put = self.queue.put
        now = time.perf_counter_ns
        sleep = time.sleep
        pause = LATENCY_PAUSE
        sent = self.sent
        for index, item in enumerate(self.items):
            sent[index] = now()
            put(item)
            sleep(pause)
        self._stop()

    def figures(self, seconds: float) -> dict[str, float]:
        ordered = sorted(r - s for r, s in zip(self.received, self.sent, strict=True))
        return {P50.key: percentile(ordered, 0.50), P99.key: percentile(ordered, 0.99)}

    def close(self) -> None:
        self._stop()
        check(all(self.received), "the consumer took every item")


# ---- memory: bytes per million queued items -----------------------------------------


class Memory(Trial):
    """Memory a container allocates to hold n items, per million items, as
    tracemalloc sees it. The items themselves exist before tracing starts,
    so only the container's own memory counts."""

    def __init__(self, n: int, env: Env, make: Callable[[], Any], method: str) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.make = make
        self.method = method
        self.allocated = 0
        self.container: Any = None

    def run(self) -> None:
        was_tracing = tracemalloc.is_tracing()
        if not was_tracing:
            tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            container = self.make()
            put = getattr(container, self.method)
            for item in self.items:
                put(item)
            self.allocated = tracemalloc.get_traced_memory()[0] - before
            self.container = container
        finally:
            if not was_tracing:
                tracemalloc.stop()

    def figures(self, seconds: float) -> dict[str, float]:
        return {MEMORY.key: self.allocated * 1_000_000 / self.ops}

    def close(self) -> None:
        check(self.container is not None and _size(self.container) == self.ops, "all stored")
        self.container = None


# ---- persistence: raw lmdb, Redis, persist-queue ------------------------------------


class LmdbPuts(Trial):
    """Raw py-lmdb: put n 8-byte-key/64-byte-value records, LMDB_TXN per write
    transaction, sync on (each commit is flushed to disk)."""

    def __init__(self, n: int, env: Env) -> None:
        lmdb = required_module("lmdb")
        self.ops = n
        self.directory = env.tempdir("lmdb-")
        self.db = lmdb.open(
            self.directory, map_size=max(64 << 20, n * 512), sync=True, metasync=True
        )
        keys = [i.to_bytes(8, "big") for i in range(n)]
        pairs = list(zip(keys, env.payloads(n), strict=True))
        self.chunks = in_batches(pairs, LMDB_TXN)

    def run(self) -> None:
        begin = self.db.begin
        for chunk in self.chunks:
            with begin(write=True) as txn:
                put = txn.put
                for key, value in chunk:
                    put(key, value, append=True)

    def close(self) -> None:
        try:
            entries = self.db.stat()["entries"]
        finally:
            self.db.close()
            shutil.rmtree(self.directory, ignore_errors=True)
        check(entries == self.ops, "every record stored")


def redis_unavailable(env: Env) -> str | None:
    """Why the Redis peer cannot run here, or None."""
    return env.redis_unavailable()


class _RedisList(Trial):
    """What the Redis list trials share: a list of their own on the bench's
    Redis server, with the processing list the reliable pattern moves items
    to; n payloads in batches of BATCH; close() counts what both lists hold
    and deletes them."""

    #: Whether run() takes n items pushed beforehand (else it pushes n).
    takes = False

    def __init__(self, n: int, env: Env) -> None:
        self.ops = n
        self.client = env.redis()
        self.key = env.unique_name("flinq-bench:")
        self.processing = self.key + ":processing"
        self.client.delete(self.key, self.processing)
        self.batches = in_batches(env.payloads(n))
        if self.takes:
            for batch in self.batches:
                self.client.lpush(self.key, *batch)

    def close(self) -> None:
        left = self.client.llen(self.key) + self.client.llen(self.processing)
        self.client.delete(self.key, self.processing)
        expected = 0 if self.takes else self.ops
        check(left == expected, f"{expected} items left on the lists, found {left}")


class RedisPush(_RedisList):
    """LPUSH n items onto a Redis list, BATCH commands per pipeline."""

    def run(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        lpush = pipe.lpush
        execute = pipe.execute
        key = self.key
        for batch in self.batches:
            for item in batch:
                lpush(key, item)
            execute()


class RedisPop(_RedisList):
    """RPOP n items from a filled Redis list, BATCH commands per pipeline."""

    takes = True

    def run(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        rpop = pipe.rpop
        execute = pipe.execute
        key = self.key
        for batch in self.batches:
            for _ in batch:
                rpop(key)
            execute()


class RedisReserveAck(_RedisList):
    """The reliable-queue pattern on Redis: per batch, LMOVE BATCH items from
    the list to a processing list (one pipeline), then LREM each of them from
    the processing list (one pipeline)."""

    takes = True

    def run(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        lmove = pipe.lmove
        lrem = pipe.lrem
        execute = pipe.execute
        key = self.key
        processing = self.processing
        for batch in self.batches:
            for _ in batch:
                lmove(key, processing, "RIGHT", "LEFT")
            for item in execute():
                lrem(processing, 1, item)
            execute()


def persistqueue_unavailable(env: Env) -> str | None:
    """Why the persist-queue peers cannot run here, or None."""
    return missing_reason("persistqueue", "persist-queue")


class SqlitePut(Trial):
    """persistqueue.SQLiteQueue.put n items; it commits (fsyncs) per put."""

    def __init__(self, n: int, env: Env) -> None:
        persistqueue = required_module("persistqueue")
        self.ops = n
        self.items = env.payloads(n)
        self.directory = env.tempdir("sqlite-")
        self.queue = persistqueue.SQLiteQueue(self.directory, auto_commit=True)

    def run(self) -> None:
        put = self.queue.put
        for item in self.items:
            put(item)

    def close(self) -> None:
        size = self.queue.qsize()
        self.queue.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        check(size == self.ops, "every item stored")


class SqliteGet(Trial):
    """persistqueue.SQLiteQueue.get n items; it commits (fsyncs) per get."""

    def __init__(self, n: int, env: Env) -> None:
        persistqueue = required_module("persistqueue")
        self.ops = n
        self.directory = env.tempdir("sqlite-")
        self.queue = persistqueue.SQLiteQueue(self.directory, auto_commit=False)
        put = self.queue.put
        for item in env.payloads(n):
            put(item)
        self.queue.task_done()  # one commit for the whole fill
        self.queue.auto_commit = True

    def run(self) -> None:
        get = self.queue.get
        for _ in repeat(None, self.ops):
            get()

    def close(self) -> None:
        size = self.queue.qsize()
        self.queue.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        check(size == 0, "every item taken")


class SqliteAck(Trial):
    """persistqueue.SQLiteAckQueue: get() then ack() n items (each commits)."""

    def __init__(self, n: int, env: Env) -> None:
        persistqueue = required_module("persistqueue")
        self.ops = n
        self.directory = env.tempdir("sqlite-ack-")
        self.queue = persistqueue.SQLiteAckQueue(self.directory)
        put = self.queue.put
        for item in env.payloads(n):
            put(item)

    def run(self) -> None:
        get = self.queue.get
        ack = self.queue.ack
        for _ in repeat(None, self.ops):
            ack(get())

    def close(self) -> None:
        acked = self.queue.acked_count()
        self.queue.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        check(acked == self.ops, "every item acknowledged")


# ---- flinq's durable queues ------------------------------------------------------

#: Name of the queue durable trials use in their store.
DURABLE_QUEUE: Final = "bench"

Durability = Literal["batch", "sync"]


def _open_store(directory: str, durability: Durability, n: int) -> flinq.Store:
    """A flinq store in directory whose LMDB map already fits n payloads (as
    the raw lmdb reference's does), so map growth is not measured."""
    return flinq.Store(directory, durability=durability, map_size=max(64 << 20, n * 512))


class DurablePut(Trial):
    """flinq durable queue: put() n items, then store.flush(). Measured until
    every item is on disk."""

    def __init__(self, n: int, env: Env, durability: Durability) -> None:
        self.ops = n
        self.items = env.payloads(n)
        self.directory = env.tempdir("flinq-store-")
        self.store = _open_store(self.directory, durability, n)
        self.queue = self.store.queue(DURABLE_QUEUE)

    def run(self) -> None:
        put = self.queue.put
        for item in self.items:
            put(item)
        self.store.flush()

    def close(self) -> None:
        try:
            size = self.queue.qsize()
        finally:
            self.store.close()
            shutil.rmtree(self.directory, ignore_errors=True)
        check(size == self.ops, "every item stored")


class DurablePutThreads(DurablePut):
    """flinq durable queue in sync durability: put() n items from several
    threads at once (each its share), then store.flush(). Their puts share
    commits (group commit), so the rate rises with the threads."""

    def __init__(self, n: int, env: Env, threads: int) -> None:
        super().__init__(n, env, "sync")
        self.errors: list[BaseException] = []
        # Built before the clock starts, as the other threaded trials' are.
        self.workers = [
            threading.Thread(target=self._work, args=(self.items[i::threads],), daemon=True)
            for i in range(threads)
        ]

    def _work(self, share: list[bytes]) -> None:
        put = self.queue.put
        try:
            for item in share:
                put(item)
        except BaseException as exc:  # reported by the measuring thread
            self.errors.append(exc)

    def run(self) -> None:
        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            worker.join(HANG_TIMEOUT)
        alive = any(w.is_alive() for w in self.workers)
        check(not self.errors and not alive, "every put returned")
        self.store.flush()


class _FilledStore(Trial):
    """A flinq store holding n items, written in batch mode and reopened with
    the durability under test (so filling is fast in every mode)."""

    def __init__(self, n: int, env: Env, durability: Durability) -> None:
        self.ops = n
        self.directory = env.tempdir("flinq-store-")
        with _open_store(self.directory, "batch", n) as store:
            put = store.queue(DURABLE_QUEUE).put
            for item in env.payloads(n):
                put(item)
        self.store = _open_store(self.directory, durability, n)
        self.queue = self.store.queue(DURABLE_QUEUE)

    def close(self) -> None:
        try:
            left = self.queue.qsize() + self.queue.in_flight()
        finally:
            self.store.close()
            shutil.rmtree(self.directory, ignore_errors=True)
        check(left == 0, "every item taken")


class DurableGet(_FilledStore):
    """flinq durable queue: get() n items (each removal logged), then
    store.flush(). Measured until every removal is on disk."""

    def run(self) -> None:
        get = self.queue.get
        for _ in repeat(None, self.ops):
            get()
        self.store.flush()


class DurableReserveAck(_FilledStore):
    """flinq durable queue: reserve() then ack() n items, then store.flush().
    Measured until every acknowledgement is on disk."""

    def run(self) -> None:
        reserve = self.queue.reserve
        for _ in repeat(None, self.ops):
            reserve().ack()
        self.store.flush()


class DurableConsume(_FilledStore):
    """flinq durable queue: q.consume(no-op handler, workers=w) over n stored
    items until drained, then store.flush(). Measured until every
    acknowledgement is on disk."""

    def __init__(self, n: int, env: Env, durability: Durability, workers: int) -> None:
        super().__init__(n, env, durability)
        self.workers = workers

    def run(self) -> None:
        consumer = self.queue.consume(ignore, workers=self.workers, prefetch=64)
        check(consumer.stop(drain=True, timeout=HANG_TIMEOUT), "consumer drained")
        self.store.flush()


def lmdb_unavailable(env: Env) -> str | None:
    """Why the raw lmdb reference cannot run here, or None."""
    return missing_reason("lmdb", "py-lmdb", "pip install lmdb")
