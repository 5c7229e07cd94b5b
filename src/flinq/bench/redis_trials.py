"""Trials of the Redis backend: flinq's durable queue API on a Redis server,
each next to raw redis-py running the same Redis commands in the same run.

  redis-put-batch     flinq put_many(1000)        vs pipelined XADD, 1000 per pipeline
  redis-put           flinq put()                 vs one XADD per call
  redis-reserve-ack   flinq reserve_many(1000) + ack_many  vs XREADGROUP COUNT 1000 + XACK
  redis-consume       flinq consume(), 1 worker   vs XREADGROUP COUNT 1000, handler, XACK;
                                                     and RQ, one SimpleWorker, where rq is installed

The raw peers do less than flinq (no ids, no attempts, no delayed or
given-back messages to look for, no XDEL of acked entries): they are the
floor flinq's figures are compared to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

import flinq
from flinq.bench.env import Env, missing_reason, required_module
from flinq.bench.model import Contender, Trial, Workload
from flinq.bench.trials import check, ignore, in_batches

__all__ = ["REDIS_BATCH", "redis_workloads"]

#: Messages per put_many / pipeline / XREADGROUP COUNT.
REDIS_BATCH: Final = 1000
#: Fraction of n the Redis rows use (every batch is a network round trip).
REDIS_ROW_SCALE: Final = 0.2
#: Fraction of n for one round trip per message.
REDIS_SINGLE_SCALE: Final = 0.02
#: Fraction of n for RQ (hundreds of jobs a second).
RQ_SCALE: Final = 0.002
#: Longest a consume trial waits for its handler to see every message.
_CONSUME_TIMEOUT: Final = 120.0
_GROUP: Final = "bench"


def redis_store_unavailable(env: Env) -> str | None:
    """Why the Redis rows cannot run here, or None."""
    return missing_reason("redis", "redis-py", "pip install 'flinq[redis]'") or (
        env.redis_unavailable()
    )


class _RedisTrial(Trial):
    """n payloads, split into batches of REDIS_BATCH before timing, moving
    through a queue of the trial's own on the bench's Redis server."""

    #: Whether run() takes n messages stored beforehand (else it stores n).
    takes = False

    def __init__(self, n: int, env: Env) -> None:
        self.ops = n
        self.payloads = env.payloads(n)
        self.batches = in_batches(self.payloads, REDIS_BATCH)


class _FlinqTrial(_RedisTrial):
    """A flinq Redis store with a queue of its own (a fresh key prefix)."""

    def __init__(self, n: int, env: Env) -> None:
        super().__init__(n, env)
        url = env.redis_store_url
        if url is None:
            raise RuntimeError("no Redis URL")
        self.store: Any = flinq.open(url, prefix=env.unique_name("flinq-bench-"))
        self.queue: Any = self.store.queue("bench")
        if self.takes:
            for batch in self.batches:
                self.queue.put_many(batch)

    def close(self) -> None:
        left = self.queue.qsize() + self.queue.in_flight()
        self.store.delete_queue("bench")
        self.store.close()
        expected = 0 if self.takes else self.ops
        check(left == expected, f"{expected} messages left, found {left}")


class FlinqPutBatch(_FlinqTrial):
    """put_many() of REDIS_BATCH messages at a time."""

    def run(self) -> None:
        put_many = self.queue.put_many
        for batch in self.batches:
            put_many(batch)


class FlinqPut(_FlinqTrial):
    """put() of one message at a time."""

    def run(self) -> None:
        put = self.queue.put
        for payload in self.payloads:
            put(payload)


class FlinqReserveAck(_FlinqTrial):
    """reserve_many(REDIS_BATCH) then ack_many() until every message is acked."""

    takes = True

    def run(self) -> None:
        reserve_many = self.queue.reserve_many
        ack_many = self.queue.ack_many
        left = self.ops
        while left > 0:
            left -= ack_many(reserve_many(REDIS_BATCH, 0))


class FlinqConsume(_FlinqTrial):
    """q.consume() with one worker and a no-op handler, prefetch REDIS_BATCH."""

    takes = True

    def __init__(self, n: int, env: Env) -> None:
        super().__init__(n, env)
        self.done = threading.Event()
        self.seen = 0

    def run(self) -> None:
        total = self.ops

        def handler(message: Any) -> None:
            self.seen += 1
            if self.seen == total:
                self.done.set()

        consumer = self.queue.consume(handler, workers=1, prefetch=REDIS_BATCH)
        self.done.wait(_CONSUME_TIMEOUT)
        consumer.stop(drain=False)

    def close(self) -> None:
        handled = self.seen
        super().close()
        check(
            self.done.is_set(),
            f"consume() handled {handled} of {self.ops} in {_CONSUME_TIMEOUT:g} s",
        )


class _RawTrial(_RedisTrial):
    """A stream of its own on the same server, driven with redis-py."""

    def __init__(self, n: int, env: Env) -> None:
        super().__init__(n, env)
        self.client = env.redis()
        self.key = env.unique_name("flinq-bench-raw:")
        self.client.delete(self.key)
        if self.takes:
            pipe = self.client.pipeline(transaction=False)
            for batch in self.batches:
                for payload in batch:
                    pipe.xadd(self.key, {"r": payload})
                pipe.execute()
            self.client.xgroup_create(self.key, _GROUP, "0")

    def close(self) -> None:
        client, key = self.client, self.key
        try:
            if self.takes:
                (group,) = client.xinfo_groups(key)
                last_added = client.xinfo_stream(key)["last-generated-id"]
                check(group["last-delivered-id"] == last_added, "every entry read")
                check(group["pending"] == 0, f"{group['pending']} entries left pending")
            else:
                length = client.xlen(key)
                check(length == self.ops, f"{self.ops} entries, found {length}")
        finally:
            client.delete(key)


class RawXaddBatch(_RawTrial):
    """XADD, REDIS_BATCH per pipeline."""

    def run(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        xadd = pipe.xadd
        execute = pipe.execute
        key = self.key
        for batch in self.batches:
            for payload in batch:
                xadd(key, {"r": payload})
            execute()


class RawXadd(_RawTrial):
    """One XADD per message (a round trip each)."""

    def run(self) -> None:
        xadd = self.client.xadd
        key = self.key
        for payload in self.payloads:
            xadd(key, {"r": payload})


class RawReadAck(_RawTrial):
    """XREADGROUP COUNT REDIS_BATCH, then XACK of those ids, until all are acked."""

    takes = True
    handle = False

    def run(self) -> None:
        client = self.client
        key = self.key
        left = self.ops
        handle = self.handle
        while left > 0:
            reply = client.xreadgroup(_GROUP, "c", {key: ">"}, count=REDIS_BATCH)
            entries = reply[0][1]
            if handle:
                for entry in entries:
                    ignore(entry)
            client.xack(key, _GROUP, *[entry[0] for entry in entries])
            left -= len(entries)


class RawConsume(RawReadAck):
    """RawReadAck with a no-op handler called per message."""

    handle = True


def rq_unavailable(env: Env) -> str | None:
    """Why the RQ peer cannot run here, or None."""
    return missing_reason("rq", "rq") or env.redis_unavailable()


class RqConsume(Trial):
    """RQ: n jobs (the builtin len of a 64-byte bytes, no result kept),
    enqueued beforehand, run by one rq.SimpleWorker in burst mode (no fork
    per job)."""

    def __init__(self, n: int, env: Env) -> None:
        rq = required_module("rq")
        self.ops = n
        client = env.redis()
        self.queue = rq.Queue(env.unique_name("flinq-bench-rq-"), connection=client)
        jobs = [
            rq.Queue.prepare_data("builtins.len", args=(payload,), result_ttl=0)
            for payload in env.payloads(n)
        ]
        with client.pipeline() as pipe:
            self.queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
        self.worker = rq.SimpleWorker([self.queue], connection=client)

    def run(self) -> None:
        self.worker.work(burst=True, logging_level="WARNING")

    def close(self) -> None:
        left = self.queue.count
        self.queue.delete(delete_jobs=True)
        check(left == 0, f"RQ left {left} jobs")


def _redis_workload(
    name: str,
    description: str,
    *,
    flinq_trial: Callable[[int, Env], Trial],
    raw_trial: Callable[[int, Env], Trial],
    scale: float,
    raw_note: str,
    more_peers: tuple[Contender, ...] = (),
) -> Workload:
    """A Redis row: flinq's trial next to raw redis-py's, both on the same
    fraction of n, then any more peers."""
    unavailable = redis_store_unavailable
    return Workload(
        name,
        description,
        Contender("flinq (Redis)", flinq_trial, unavailable, scale=scale),
        (
            Contender("redis-py (raw)", raw_trial, unavailable, scale=scale, note=raw_note),
            *more_peers,
        ),
        suite="durable",
    )


def redis_workloads() -> list[Workload]:
    """The Redis rows of flinq bench."""
    return [
        _redis_workload(
            "redis-put-batch",
            f"put_many() of n 64-byte bytes, {REDIS_BATCH} per call, into a Redis-backed "
            "durable queue",
            flinq_trial=FlinqPutBatch,
            raw_trial=RawXaddBatch,
            scale=REDIS_ROW_SCALE,
            raw_note=f"XADD, {REDIS_BATCH} per pipeline",
        ),
        _redis_workload(
            "redis-put",
            "put() of n 64-byte bytes, one at a time, into a Redis-backed durable queue",
            flinq_trial=FlinqPut,
            raw_trial=RawXadd,
            scale=REDIS_SINGLE_SCALE,
            raw_note="one XADD per message",
        ),
        _redis_workload(
            "redis-reserve-ack",
            f"reserve_many({REDIS_BATCH}) then ack_many() over n stored messages of a "
            "Redis-backed durable queue",
            flinq_trial=FlinqReserveAck,
            raw_trial=RawReadAck,
            scale=REDIS_ROW_SCALE,
            raw_note=f"XREADGROUP COUNT {REDIS_BATCH}, then XACK of those ids",
        ),
        _redis_workload(
            "redis-consume",
            f"q.consume() with 1 worker, prefetch {REDIS_BATCH}, and a no-op handler over "
            "n stored messages of a Redis-backed durable queue",
            flinq_trial=FlinqConsume,
            raw_trial=RawConsume,
            scale=REDIS_ROW_SCALE,
            raw_note=f"XREADGROUP COUNT {REDIS_BATCH}, a no-op call per message, XACK",
            more_peers=(
                Contender(
                    "RQ",
                    RqConsume,
                    rq_unavailable,
                    scale=RQ_SCALE,
                    note="one SimpleWorker, burst mode, jobs enqueued beforehand; few jobs",
                ),
            ),
        ),
    ]
