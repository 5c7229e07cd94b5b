"""Functions that run in child processes of the ProcessQueue tests (spawn
imports them by module name, so they live in a module, not in a test)."""

from __future__ import annotations

import os
from typing import Any

from flinq import ProcessQueue

# Set in Pool / executor workers by init_worker.
_worker_queue: ProcessQueue | None = None


def put_range(q: ProcessQueue, start: int, stop: int) -> None:
    for i in range(start, stop):
        q.put(i)


def put_tagged(q: ProcessQueue, tag: int, count: int) -> None:
    """Put (tag, seq) pairs as bytes, in order."""
    for seq in range(count):
        q.put(tag.to_bytes(4, "little") + seq.to_bytes(4, "little"))


def get_into(q: ProcessQueue, out: ProcessQueue, count: int) -> None:
    """Move count messages from q to out."""
    for _ in range(count):
        out.put(q.get(timeout=30))


def echo(q: ProcessQueue, reply: ProcessQueue, rounds: int) -> None:
    for _ in range(rounds):
        reply.put(q.get(timeout=30))


def attach_and_put(name: str, item: Any) -> None:
    q = ProcessQueue.attach(name)
    q.put(item)
    q.close()


def init_worker(q: ProcessQueue) -> None:
    global _worker_queue
    _worker_queue = q


def worker_put(i: int) -> int:
    assert _worker_queue is not None
    _worker_queue.put((os.getpid(), i))
    return i


def reserve_and_hang(q: ProcessQueue, count: int, ready: Any) -> None:
    """Reserve count messages, never ack them, report, and wait to be killed."""
    import time

    held = [q.reserve(timeout=30) for _ in range(count)]
    ready.put([m.body for m in held])
    time.sleep(60)


def reserve_and_ack(q: ProcessQueue, count: int, out: ProcessQueue) -> None:
    for _ in range(count):
        with q.reserve(timeout=30) as msg:
            out.put(msg.body)
