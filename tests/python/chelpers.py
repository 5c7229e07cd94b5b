"""Helpers shared by the consume tests of in-memory and durable queues."""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from qhelpers import HANG_GUARD, wait_until

from flinq.consumer import Consumer


class Recorder:
    """A handler that records (body, attempts, id) of every call; fail(msg)
    decides whether it raises."""

    def __init__(self, fail: Callable[[Any], bool] = lambda msg: False) -> None:
        self.calls: list[tuple[Any, int, int]] = []
        self.fail = fail

    def __call__(self, msg: Any) -> None:
        self.calls.append((msg.body, msg.attempts, msg.id))
        if self.fail(msg):
            raise ValueError(f"handler failed on {msg.body!r}")

    def bodies(self) -> collections.Counter[Any]:
        return collections.Counter(body for body, _, _ in self.calls)


def identity_holds(st: dict[str, Any]) -> bool:
    """The identity _QueueCore.stats() documents."""
    return st["enqueued"] + st["redelivered"] == st["dequeued"] + st["discarded"] + st["depth"]


def stopped(consumer: Consumer, drain: bool = True) -> None:
    assert consumer.stop(drain=drain, timeout=HANG_GUARD), "consumer did not stop"
    assert not consumer.running


@contextlib.contextmanager
def running(consumer: Consumer) -> Iterator[Consumer]:
    """consumer, stopped (draining) at the end of the block with a timeout:
    the consumer's own __exit__ waits for ever."""
    try:
        yield consumer
    finally:
        assert consumer.stop(drain=True, timeout=HANG_GUARD), "consumer did not stop"


def consume_and_stop_at_first(
    q: Any, handler: Callable[[Any], object] | None = None, prefetch: int = 5
) -> Consumer:
    """Consume q with a handler that (after calling handler, if given) stops
    the consumer with drain=False on its first message; returns the consumer
    once its workers have ended."""
    box: dict[str, Consumer] = {}
    ready = threading.Event()

    def stop_at_first(msg: Any) -> None:
        if handler is not None:
            handler(msg)
        assert ready.wait(HANG_GUARD)
        box["consumer"].stop(drain=False)

    box["consumer"] = q.consume(stop_at_first, prefetch=prefetch)
    ready.set()
    assert wait_until(lambda: not box["consumer"].running)
    return box["consumer"]
