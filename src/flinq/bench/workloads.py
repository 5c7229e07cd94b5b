"""The benchmark workloads: one definition of each, for flinq and its peers.

Both front ends, ``flinq bench`` (flinq.bench.cli) and the pytest-benchmark
suites in benchmarks/, take their workloads from ``workloads()`` here; how
each contender runs is in flinq.bench.trials.

Extension point for features later issues add:
  - ``DURABLE_TRIALS``: flinq's trials for the durable workloads. They run
    when ``flinq.open`` exists; on a flinq without durable queues, or for a
    durable workload with no trial, flinq's row is reported as skipped with
    the reason.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

import flinq
from flinq.bench.aio_trials import (
    TASK_QUEUE_BOUND,
    WAKEUP_PAUSE,
    TaskToTask,
    ThreadToLoop,
    WakeUp,
    asyncio_bridge,
    asyncio_tasks,
    culsans_bridge,
    culsans_unavailable,
    flinq_bridge,
    flinq_tasks,
    janus_bridge,
    janus_unavailable,
)
from flinq.bench.array_trials import (
    ARRAY_BATCH,
    ARRAY_RECORDS_PER_ITEM,
    PROCESS_RECORDS_PER_ITEM,
    ArrayQueueBatches,
    ArrayQueueViews,
    CopytoBatches,
    ListQueueBatches,
    PickledArrayBatches,
    ProcessArrayBatches,
    faster_fifo_array_unavailable,
    numpy_unavailable,
    shared_array_unavailable,
)
from flinq.bench.env import Env
from flinq.bench.model import Contender, Trial, Workload
from flinq.bench.process_trials import (
    FASTER_FIFO,
    FLINQ,
    LARGE_BYTES,
    MP_QUEUE,
    MP_SIMPLE,
    FasterFifoConsumers,
    MemcpyReference,
    PingPong,
    faster_fifo_processes_unavailable,
    fork_unavailable,
    large_numpy_trial,
    large_trial,
    numpy_processes_unavailable,
    small_trial,
)
from flinq.bench.redis_trials import redis_workloads
from flinq.bench.trials import (
    BATCH,
    LATENCY_PAUSE,
    LMDB_TXN,
    MEMORY,
    P50,
    P99,
    ConsumeWorkers,
    DequeBatch,
    DurableConsume,
    DurableGet,
    DurablePut,
    DurablePutThreads,
    DurableReserveAck,
    FasterFifoBatch,
    FlinqBatch,
    FlinqConsume,
    FlinqPriorityGet,
    FlinqPriorityPut,
    GetAll,
    HeapqPop,
    HeapqPush,
    Latency,
    LmdbPuts,
    LoopBatch,
    Memory,
    PutAll,
    RedisPop,
    RedisPush,
    RedisReserveAck,
    SqliteAck,
    SqliteGet,
    SqlitePut,
    StdPriorityGet,
    StdPriorityPut,
    ThreadConsumers,
    faster_fifo_queue,
    faster_fifo_unavailable,
    lmdb_unavailable,
    persistqueue_unavailable,
    redis_unavailable,
)

#: Consumer threads in the threads workload.
THREAD_CONSUMERS: Final = 2
#: Worker threads in the in-memory consume workload.
CONSUME_WORKERS: Final = 2
#: Worker threads in the durable consume workload: consume()'s default. A
#: durable worker runs Python for every message, so with a handler that never
#: releases the GIL a second worker only adds GIL hand-offs.
DURABLE_CONSUME_WORKERS: Final = 1
# Fractions of n that slower contenders use, to keep a full run within minutes
# (figures are rates, so they stay comparable).
#: faster-fifo peers (they pickle every item).
FASTER_FIFO_SCALE: Final = 0.1
#: Redis peers (a network round trip per pipeline).
REDIS_SCALE: Final = 0.1
#: persist-queue peers (an fsync per operation).
SQLITE_SCALE: Final = 0.0004
#: The latency workload (its producer is paced).
LATENCY_SCALE: Final = 0.01
#: flinq durable put in sync mode (an fsync per put).
DURABLE_SYNC_PUT_SCALE: Final = 0.002
#: Producer threads in the sync put workload with threads.
SYNC_PUT_THREADS: Final = 16
#: That workload (a commit per group of puts: ~SYNC_PUT_THREADS times one thread's share).
DURABLE_SYNC_THREADS_SCALE: Final = 0.016
#: Other flinq durable workloads but batch put and get.
DURABLE_SCALE: Final = 0.2

#: Consumer processes in the processes workload.
PROCESS_CONSUMERS: Final = 2
#: multiprocessing and faster-fifo peers between processes (a pipe or a lock
#: per message).
PROCESS_PEER_SCALE: Final = 0.1
#: The 1 MiB workload (n messages of 1 MiB would be n MiB moved).
LARGE_SCALE: Final = 0.002
#: The ping-pong workload (a round trip per message).
PING_PONG_SCALE: Final = 0.01
#: The asyncio wake-up workload (its thread is paced).
WAKEUP_SCALE: Final = 0.005

#: Targets from the original status report, in ops/s.
TARGETS: Final[dict[str, float]] = {"enqueue": 50_000, "dequeue": 40_000, "consume": 30_000}

NOT_DURABLE: Final = "durable queues are not in this version"

PrepareFn = Callable[[int, Env], Trial]

#: Trials for flinq's durable queues, keyed by workload name, each with the
#: fraction of n it uses. They run only when ``flinq.open`` exists (durable
#: queues came after the in-memory ones); otherwise flinq's durable rows are
#: reported as skipped. A new durable workload adds its trial here.
DURABLE_TRIALS: dict[str, tuple[PrepareFn, float]] = {
    "durable-put-batch": (lambda n, env: DurablePut(n, env, "batch"), 1.0),
    "durable-put-sync": (lambda n, env: DurablePut(n, env, "sync"), DURABLE_SYNC_PUT_SCALE),
    "durable-put-sync-threads": (
        lambda n, env: DurablePutThreads(n, env, SYNC_PUT_THREADS),
        DURABLE_SYNC_THREADS_SCALE,
    ),
    "durable-get-batch": (lambda n, env: DurableGet(n, env, "batch"), 1.0),
    "durable-get-sync": (lambda n, env: DurableGet(n, env, "sync"), DURABLE_SCALE),
    "durable-reserve-ack-batch": (
        lambda n, env: DurableReserveAck(n, env, "batch"),
        DURABLE_SCALE,
    ),
    "durable-reserve-ack-sync": (
        lambda n, env: DurableReserveAck(n, env, "sync"),
        DURABLE_SCALE,
    ),
    "durable-consume-batch": (
        lambda n, env: DurableConsume(n, env, "batch", DURABLE_CONSUME_WORKERS),
        DURABLE_SCALE,
    ),
}


def _redis_list(prepare: PrepareFn, note: str) -> Contender:
    """A Redis list peer of a durable row (on REDIS_SCALE of n)."""
    return Contender("Redis list", prepare, redis_unavailable, scale=REDIS_SCALE, note=note)


def _redis_reserve_ack() -> Contender:
    """Redis's at-least-once pattern, the peer of the durable reserve/consume rows."""
    return _redis_list(
        RedisReserveAck,
        f"LMOVE to a processing list, then LREM, {BATCH} per pipeline; "
        "AOF appendfsync everysec; one client",
    )


def _durable_contender(workload: str) -> Contender:
    """flinq's contender for a durable workload: skipped, honestly, when this
    flinq has no durable queues (no flinq.open) or no trial is registered."""

    def unavailable(env: Env) -> str | None:
        if not hasattr(flinq, "open"):
            return NOT_DURABLE
        if workload not in DURABLE_TRIALS:
            return "no benchmark trial is registered for it (flinq.bench.workloads.DURABLE_TRIALS)"
        return None

    def prepare(n: int, env: Env) -> Trial:
        return DURABLE_TRIALS[workload][0](n, env)

    scale = DURABLE_TRIALS[workload][1] if workload in DURABLE_TRIALS else 1.0
    return Contender("flinq.DurableQueue", prepare, unavailable, scale=scale)


def _durable_workload(name: str, description: str, *peers: Contender) -> Workload:
    """A durable workload: flinq's durable queue (its trial in DURABLE_TRIALS
    under the same name) against peers."""
    return Workload(name, description, _durable_contender(name), peers, suite="durable")


# ---- the registry -------------------------------------------------------------------


def _stdlib_put_peers() -> tuple[Contender, ...]:
    """queue.Queue, queue.SimpleQueue and collections.deque, putting."""
    return (
        Contender("queue.Queue", lambda n, env: PutAll(n, env, queue.Queue, "put")),
        Contender("queue.SimpleQueue", lambda n, env: PutAll(n, env, queue.SimpleQueue, "put")),
        Contender("collections.deque", lambda n, env: PutAll(n, env, deque, "append")),
    )


def _stdlib_get_peers() -> tuple[Contender, ...]:
    """queue.Queue, queue.SimpleQueue and collections.deque, getting."""
    return (
        Contender("queue.Queue", lambda n, env: GetAll(n, env, queue.Queue, "put", "get")),
        Contender(
            "queue.SimpleQueue", lambda n, env: GetAll(n, env, queue.SimpleQueue, "put", "get")
        ),
        Contender("collections.deque", lambda n, env: GetAll(n, env, deque, "append", "popleft")),
    )


def _process_contenders(
    prepare_for: Callable[[str], PrepareFn], mp_note: str = ""
) -> tuple[Contender, tuple[Contender, ...]]:
    """flinq.ProcessQueue and its three peers for a between-processes workload."""
    scale = PROCESS_PEER_SCALE
    return (
        Contender("flinq.ProcessQueue", prepare_for(FLINQ), fork_unavailable),
        (
            Contender(
                "multiprocessing.Queue",
                prepare_for(MP_QUEUE),
                fork_unavailable,
                scale=scale,
                note=mp_note,
            ),
            Contender(
                "multiprocessing.SimpleQueue",
                prepare_for(MP_SIMPLE),
                fork_unavailable,
                scale=scale,
                note=mp_note,
            ),
            Contender(
                "faster_fifo.Queue",
                prepare_for(FASTER_FIFO),
                faster_fifo_processes_unavailable,
                scale=scale,
            ),
        ),
    )


def _process_workload(
    name: str,
    description: str,
    prepare_for: Callable[[str], PrepareFn],
    mp_note: str = "",
    **options: Any,
) -> Workload:
    """A between-processes workload of flinq.ProcessQueue and its three peers
    (options: the Workload's other fields)."""
    flinq_contender, peers = _process_contenders(prepare_for, mp_note)
    return Workload(name, description, flinq_contender, peers, suite="processes", **options)


def _process_workloads() -> list[Workload]:
    """The between-processes workloads (forked consumer processes)."""
    flinq_large, peers_large = _process_contenders(large_trial)
    mib = LARGE_BYTES >> 20
    return [
        _process_workload(
            "processes",
            f"1 producer (the caller) puts n 64-byte bytes; {PROCESS_CONSUMERS} consumer "
            "processes take them with get()",
            small_trial(PROCESS_CONSUMERS),
        ),
        _process_workload(
            "processes-1c",
            "1 producer (the caller) puts n 64-byte bytes; 1 consumer process takes them "
            "with get()",
            small_trial(1),
        ),
        _process_workload(
            "processes-batch",
            f"1 producer puts n 64-byte bytes in batches of {BATCH}; 1 consumer process "
            f"takes batches of up to {BATCH}; ops = messages",
            small_trial(1, batch=True),
            mp_note=f"a list of {BATCH} per put()",
        ),
        Workload(
            "processes-1MiB",
            f"1 producer puts n {mib} MiB bytes bodies; 1 consumer process takes them with "
            "get(); ops = messages",
            flinq_large,
            (
                Contender(
                    "flinq.ProcessQueue (numpy)",
                    large_numpy_trial(FLINQ),
                    numpy_processes_unavailable,
                    note=f"{mib} MiB float64 arrays, pickle protocol 5 with out-of-band buffers",
                ),
                *peers_large,
                Contender(
                    "multiprocessing.Queue (numpy)",
                    large_numpy_trial(MP_QUEUE),
                    numpy_processes_unavailable,
                    scale=PROCESS_PEER_SCALE,
                    note=f"the same {mib} MiB arrays",
                ),
                Contender(
                    "memcpy (one process)",
                    MemcpyReference,
                    note=f"one in-process copy of {mib} MiB per op: the bandwidth reference",
                ),
            ),
            scale=LARGE_SCALE,
            min_items=20,
            suite="processes",
        ),
        _process_workload(
            "processes-ping-pong",
            "round trip between two processes: put a 64-byte message on one queue, the "
            "partner process puts it back on a second queue",
            lambda kind: lambda n, env: PingPong(n, env, kind),
            metrics=(P50, P99),
            scale=PING_PONG_SCALE,
            min_items=200,
        ),
    ]


def workloads() -> dict[str, Workload]:
    """Every workload by name, in report order (extension points applied)."""
    ff_note = "one process; items are pickled through shared memory"
    defined = [
        Workload(
            "enqueue",
            "put() n items into an unbounded queue from one thread",
            Contender("flinq.Queue", lambda n, env: PutAll(n, env, flinq.Queue, "put")),
            (
                *_stdlib_put_peers(),
                Contender(
                    "faster_fifo.Queue",
                    lambda n, env: PutAll(n, env, lambda: faster_fifo_queue(n), "put"),
                    faster_fifo_unavailable,
                    scale=FASTER_FIFO_SCALE,
                    note=ff_note,
                ),
            ),
            target=TARGETS["enqueue"],
        ),
        Workload(
            "dequeue",
            "get() n items from a filled queue from one thread",
            Contender("flinq.Queue", lambda n, env: GetAll(n, env, flinq.Queue, "put", "get")),
            (
                *_stdlib_get_peers(),
                Contender(
                    "faster_fifo.Queue",
                    lambda n, env: GetAll(n, env, lambda: faster_fifo_queue(n), "put", "get"),
                    faster_fifo_unavailable,
                    scale=FASTER_FIFO_SCALE,
                    note=ff_note,
                ),
            ),
            target=TARGETS["dequeue"],
        ),
        Workload(
            "threads",
            f"1 producer thread puts n items; {THREAD_CONSUMERS} consumer threads block in get()",
            Contender(
                "flinq.Queue",
                lambda n, env: ThreadConsumers(n, env, flinq.Queue, THREAD_CONSUMERS),
            ),
            (
                Contender(
                    "queue.Queue",
                    lambda n, env: ThreadConsumers(n, env, queue.Queue, THREAD_CONSUMERS),
                ),
                Contender(
                    "queue.SimpleQueue",
                    lambda n, env: ThreadConsumers(n, env, queue.SimpleQueue, THREAD_CONSUMERS),
                ),
                Contender(
                    "faster_fifo.Queue (processes)",
                    lambda n, env: FasterFifoConsumers(n, env, THREAD_CONSUMERS),
                    faster_fifo_unavailable,
                    scale=FASTER_FIFO_SCALE,
                    note=f"its natural setting: {THREAD_CONSUMERS} consumer processes",
                ),
            ),
        ),
        Workload(
            "consume",
            f"1 producer puts n items; {CONSUME_WORKERS} workers handle them with a no-op "
            "handler and ack; ends when join() returns (flinq: q.consume(); peers: worker "
            "threads looping on get() + task_done())",
            Contender(
                "flinq.Queue.consume()",
                lambda n, env: FlinqConsume(n, env, CONSUME_WORKERS),
            ),
            (
                Contender(
                    "queue.Queue",
                    lambda n, env: ConsumeWorkers(n, env, queue.Queue, CONSUME_WORKERS),
                ),
                Contender(
                    "flinq.Queue get()",
                    lambda n, env: ConsumeWorkers(n, env, flinq.Queue, CONSUME_WORKERS),
                    note="the same worker loop as queue.Queue's, without consume()",
                ),
            ),
            target=TARGETS["consume"],
        ),
        Workload(
            "priority-put",
            "put() n items with int priorities 0-9 from one thread (flinq: "
            "put(item, priority=p); peers: (priority, seq, item) tuples)",
            Contender("flinq.PriorityQueue", FlinqPriorityPut),
            (
                Contender("heapq", HeapqPush),
                Contender("queue.PriorityQueue", StdPriorityPut),
            ),
        ),
        Workload(
            "priority-get",
            "get() n items with int priorities 0-9 from a filled priority queue, "
            "one thread (peers unpack the item from the tuple)",
            Contender("flinq.PriorityQueue", FlinqPriorityGet),
            (
                Contender("heapq", HeapqPop),
                Contender("queue.PriorityQueue", StdPriorityGet),
            ),
        ),
        Workload(
            "batch",
            f"put n items in batches of {BATCH}, then get them back in batches of {BATCH}, "
            "one thread; ops = items moved",
            Contender("flinq.Queue", FlinqBatch, note="put_many() / get_many()"),
            (
                Contender("collections.deque", DequeBatch, note="extend() / popleft() loops"),
                Contender(
                    "queue.SimpleQueue",
                    lambda n, env: LoopBatch(n, env, queue.SimpleQueue),
                    note="put() / get() loops",
                ),
                Contender(
                    "faster_fifo.Queue",
                    FasterFifoBatch,
                    faster_fifo_unavailable,
                    scale=FASTER_FIFO_SCALE,
                    note="put_many() / get_many(); one process",
                ),
            ),
        ),
        Workload(
            "array",
            f"move {ARRAY_RECORDS_PER_ITEM}n int64 records in batches of {ARRAY_BATCH}, one "
            "thread: put a batch, get it back as an int64 array, repeat; ops = records moved",
            Contender(
                "flinq.ArrayQueue",
                ArrayQueueBatches,
                numpy_unavailable,
                note="put_many(batch) / get_many(n, out=array)",
            ),
            (
                Contender(
                    "np.copyto",
                    CopytoBatches,
                    numpy_unavailable,
                    note="bandwidth reference: one copy of the same bytes (a queue makes two)",
                ),
                Contender(
                    "flinq.ArrayQueue get_view()",
                    ArrayQueueViews,
                    numpy_unavailable,
                    note="put_many(batch) / get_view(n): read in place, one copy per record",
                ),
                Contender(
                    "flinq.Queue + tolist()",
                    ListQueueBatches,
                    numpy_unavailable,
                    note="put_many(batch.tolist()) / np.asarray(get_many(n), int64)",
                ),
                Contender(
                    "multiprocessing.Queue",
                    lambda n, env: PickledArrayBatches(n, env, "multiprocessing"),
                    numpy_unavailable,
                    note="put(batch) / get(): the array pickled; one process",
                ),
                Contender(
                    "faster_fifo.Queue",
                    lambda n, env: PickledArrayBatches(n, env, "faster_fifo"),
                    faster_fifo_array_unavailable,
                    note="put(batch) / get(): the array pickled; one process",
                ),
            ),
        ),
        Workload(
            "array-processes",
            f"move {PROCESS_RECORDS_PER_ITEM}n int64 records in batches of {ARRAY_BATCH} from "
            "1 producer process (forked before timing) to this process, which gets them as "
            "int64 arrays; ops = records moved",
            Contender(
                "flinq.ArrayQueue(shared=True)",
                lambda n, env: ProcessArrayBatches(n, env, "flinq"),
                shared_array_unavailable,
                note="put_many(batch) / get_many(n, out=array)",
            ),
            (
                Contender(
                    "np.copyto",
                    lambda n, env: CopytoBatches(n, env, PROCESS_RECORDS_PER_ITEM),
                    numpy_unavailable,
                    note="bandwidth reference: one copy of the same bytes, one process",
                ),
                Contender(
                    "multiprocessing.Queue (processes)",
                    lambda n, env: ProcessArrayBatches(n, env, "multiprocessing"),
                    shared_array_unavailable,
                    note="put(batch) / get(): the array pickled",
                ),
                Contender(
                    "faster_fifo.Queue (processes)",
                    lambda n, env: ProcessArrayBatches(n, env, "faster_fifo"),
                    lambda env: shared_array_unavailable(env) or faster_fifo_array_unavailable(env),
                    note="put(batch) / get(): the array pickled",
                ),
            ),
            suite="processes",
        ),
        Workload(
            "latency",
            "enqueue-to-dequeue latency, 1 producer and 1 consumer thread waiting in get(); "
            f"the producer pauses {LATENCY_PAUSE * 1e6:.0f} us between puts",
            Contender("flinq.Queue", lambda n, env: Latency(n, env, flinq.Queue)),
            (
                Contender("queue.Queue", lambda n, env: Latency(n, env, queue.Queue)),
                Contender("queue.SimpleQueue", lambda n, env: Latency(n, env, queue.SimpleQueue)),
            ),
            metrics=(P50, P99),
            scale=LATENCY_SCALE,
            min_items=200,
        ),
        Workload(
            "asyncio",
            "a producer thread put()s n items; a coroutine on an event loop awaits get() for "
            "each (thread to asyncio)",
            Contender(
                "flinq.Queue + async_q",
                lambda n, env: ThreadToLoop(n, env, flinq_bridge),
                note="q.put / await async_queue(q).get()",
            ),
            (
                Contender(
                    "culsans.Queue",
                    lambda n, env: ThreadToLoop(n, env, culsans_bridge),
                    culsans_unavailable,
                    note="sync_q.put / await async_q.get()",
                ),
                Contender(
                    "janus.Queue",
                    lambda n, env: ThreadToLoop(n, env, janus_bridge),
                    janus_unavailable,
                    scale=0.25,
                    note="sync_q.put / await async_q.get()",
                ),
            ),
        ),
        Workload(
            "asyncio-tasks",
            f"one task awaits put() of n items into a queue bounded to {TASK_QUEUE_BOUND}, "
            "another awaits get() of each, on one event loop",
            Contender("flinq.Queue + async_q", lambda n, env: TaskToTask(n, env, flinq_tasks)),
            (Contender("asyncio.Queue", lambda n, env: TaskToTask(n, env, asyncio_tasks)),),
        ),
        Workload(
            "asyncio-wakeup",
            "wake-up latency: a thread hands items one at a time, "
            f"{WAKEUP_PAUSE * 1e6:.0f} us apart, to a coroutine waiting on an idle loop; from "
            "just before the thread's call to just after the coroutine resumes",
            Contender(
                "flinq.Queue + async_q",
                lambda n, env: WakeUp(n, env, flinq_bridge),
                note="q.put / await async_queue(q).get()",
            ),
            (
                Contender(
                    "asyncio.Queue via call_soon_threadsafe",
                    lambda n, env: WakeUp(n, env, asyncio_bridge),
                    note="loop.call_soon_threadsafe(q.put_nowait, x) / await q.get()",
                ),
                Contender(
                    "loop.call_soon_threadsafe",
                    lambda n, env: WakeUp(n, env, None),
                    note="call_soon_threadsafe(future.set_result) / await future: "
                    "asyncio's least cross-thread wake-up, no queue",
                ),
                Contender(
                    "culsans.Queue",
                    lambda n, env: WakeUp(n, env, culsans_bridge),
                    culsans_unavailable,
                ),
                Contender(
                    "janus.Queue", lambda n, env: WakeUp(n, env, janus_bridge), janus_unavailable
                ),
            ),
            metrics=(P50, P99),
            scale=WAKEUP_SCALE,
            min_items=200,
        ),
        Workload(
            "memory",
            "memory a queue allocates to hold n preallocated 64-byte items "
            "(the items excluded), per million items, by tracemalloc",
            Contender("flinq.Queue", lambda n, env: Memory(n, env, flinq.Queue, "put")),
            (
                Contender("collections.deque", lambda n, env: Memory(n, env, deque, "append")),
                Contender(
                    "queue.SimpleQueue", lambda n, env: Memory(n, env, queue.SimpleQueue, "put")
                ),
            ),
            metrics=(MEMORY,),
        ),
        Workload(
            "persist-limit",
            f"the persistence limit: raw py-lmdb puts, {LMDB_TXN} per write transaction, "
            "sync on, in a temporary directory (a reference: no flinq contender)",
            None,
            (Contender("py-lmdb (raw)", LmdbPuts, lmdb_unavailable),),
            suite="durable",
        ),
        _durable_workload(
            "durable-put-batch",
            "put() n items into a durable queue in batch durability (group commits), then "
            "flush(): measured until every item is on disk",
            _redis_list(RedisPush, f"LPUSH, {BATCH} per pipeline; AOF appendfsync everysec"),
        ),
        _durable_workload(
            "durable-put-sync",
            "put() n items into a durable queue in sync durability: each put() returns once "
            "its commit is on disk (fsync)",
            Contender(
                "persistqueue.SQLiteQueue",
                SqlitePut,
                persistqueue_unavailable,
                scale=SQLITE_SCALE,
                note="commit per put; measured on few items",
            ),
        ),
        _durable_workload(
            "durable-put-sync-threads",
            f"put() n items into a durable queue in sync durability from {SYNC_PUT_THREADS} "
            "threads at once: concurrent puts share a commit (group commit); the peer is "
            "the same put from one thread",
            replace(
                _durable_contender("durable-put-sync"),
                name="flinq.DurableQueue, 1 thread",
                note="durable-put-sync's flinq row, measured again in this workload",
            ),
        ),
        _durable_workload(
            "durable-get-batch",
            "get() n items from a durable queue in batch durability, then flush(): measured "
            "until every removal is on disk",
            _redis_list(RedisPop, f"RPOP, {BATCH} per pipeline; AOF appendfsync everysec"),
        ),
        _durable_workload(
            "durable-get-sync",
            "get() n items from a durable queue opened in sync durability, then flush(). "
            "flinq persists removals in batches in both modes (sync applies to put); the "
            "peer commits every get, so this row is not like for like",
            Contender(
                "persistqueue.SQLiteQueue",
                SqliteGet,
                persistqueue_unavailable,
                scale=SQLITE_SCALE,
                note="commit per get; measured on few items",
            ),
        ),
        _durable_workload(
            "durable-reserve-ack-batch",
            "reserve() then ack() n items of a durable queue in batch durability, then "
            "flush(): measured until every acknowledgement is on disk",
            _redis_reserve_ack(),
        ),
        _durable_workload(
            "durable-reserve-ack-sync",
            "reserve() then ack() n items of a durable queue opened in sync durability, then "
            "flush(). flinq persists reservations and acks in batches in both modes (sync "
            "applies to put); the peer commits every get and ack, so this row is not like "
            "for like",
            Contender(
                "persistqueue.SQLiteAckQueue",
                SqliteAck,
                persistqueue_unavailable,
                scale=SQLITE_SCALE / 2,
                note="get() + ack(), each commits; measured on few items",
            ),
        ),
        _durable_workload(
            "durable-consume-batch",
            f"q.consume() with {DURABLE_CONSUME_WORKERS} worker (the default) and a no-op "
            "handler over n stored "
            "messages of a durable queue in batch durability (each reserved, handled, "
            "acked), then flush(): measured until every acknowledgement is on disk",
            _redis_reserve_ack(),
        ),
        *_process_workloads(),
        *redis_workloads(),
    ]
    return {workload.name: workload for workload in defined}


def workload_names() -> list[str]:
    """Names of every workload, in report order."""
    return list(workloads())


__all__ = [
    "BATCH",
    "CONSUME_WORKERS",
    "DURABLE_CONSUME_WORKERS",
    "DURABLE_TRIALS",
    "MEMORY",
    "NOT_DURABLE",
    "P50",
    "P99",
    "PROCESS_CONSUMERS",
    "TARGETS",
    "THREAD_CONSUMERS",
    "workload_names",
    "workloads",
]
