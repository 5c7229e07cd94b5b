"""The vocabulary of flinq's benchmarks: metrics, trials, contenders and workloads.

A *workload* is one thing measured (say, "put n items from one thread"). It
has one flinq *contender* and any number of peer contenders: the same job
done with flinq or with another library. A contender's ``prepare(n, env)``
builds a *trial* for n items (queues, payloads, threads: everything that is
not measured); ``trial.run()`` is the measured part; ``trial.figures()``
turns the measured time (and whatever the trial recorded) into the figures
of the workload's metrics; ``trial.close()`` releases what the trial holds.

``Contender.measure(n, env)`` does all of that once and is what the command
line runner and the pytest-benchmark suites share.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from flinq.bench.env import Env

OPS_PER_S: Final = "ops_per_s"


@dataclass(frozen=True)
class Metric:
    """One figure a workload reports, e.g. operations per second."""

    key: str
    label: str
    unit: str
    higher_is_better: bool = True


OPS = Metric(OPS_PER_S, "ops/s", "ops/s")


class Trial:
    """One prepared repetition of a workload for one contender."""

    #: Operations run() performs; throughput is ops / measured seconds.
    ops: int = 0

    def run(self) -> None:
        """The measured part."""
        raise NotImplementedError

    def figures(self, seconds: float) -> dict[str, float]:
        """The workload's figures for a run() that took ``seconds``."""
        return {OPS_PER_S: self.ops / max(seconds, 1e-9)}

    def close(self) -> None:
        """Release what the trial holds and check what it did (never measured)."""


@dataclass(frozen=True)
class Sample:
    """What one measured repetition gave."""

    items: int
    seconds: float
    figures: dict[str, float]


def _always_available(env: Env) -> str | None:
    """No requirement: never a reason to skip."""
    return None


@dataclass(frozen=True)
class Contender:
    """One implementation of a workload: flinq's or a peer's."""

    name: str
    prepare: Callable[[int, Env], Trial]
    #: Reason the contender cannot run here (missing package or server), or None.
    unavailable: Callable[[Env], str | None] = _always_available
    #: Fraction of the run's n this contender uses (slow peers: fsync per put).
    scale: float = 1.0
    #: Short note shown in the legend (e.g. how a peer is driven).
    note: str = ""

    def skip_reason(self, env: Env) -> str | None:
        """Why this contender is skipped in env, or None to run it."""
        return self.unavailable(env)

    def measure(self, n: int, env: Env) -> Sample:
        """Prepare, run and time one trial of n items; the garbage collector
        is off while run() is timed, as in timeit."""
        trial = self.prepare(n, env)
        try:
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                trial.run()
                seconds = time.perf_counter() - start
            finally:
                gc.enable()
            return Sample(n, seconds, trial.figures(seconds))
        finally:
            trial.close()


@dataclass(frozen=True)
class Workload:
    """One measured job, its flinq contender and its peers."""

    name: str
    description: str
    #: flinq's contender; None for a reference workload that only measures a limit.
    flinq: Contender | None
    peers: tuple[Contender, ...] = ()
    metrics: tuple[Metric, ...] = (OPS,)
    #: flinq's target in ops/s from the original status report, if it set one.
    target: float | None = None
    #: Fraction of the run's n this workload uses (e.g. paced latency probes).
    scale: float = 1.0
    #: Smallest item count worth measuring for this workload.
    min_items: int = 10
    #: pytest-benchmark suite that times it: "memory" (in-memory queues), "durable" or
    #: "processes" (between processes).
    suite: str = "memory"

    @property
    def throughput(self) -> bool:
        """Whether its figure is ops/s (so per-operation timing makes sense)."""
        return OPS in self.metrics

    def contenders(self) -> tuple[Contender, ...]:
        """flinq's contender (if any) first, then the peers."""
        return ((self.flinq,) if self.flinq else ()) + self.peers

    def items_for(self, contender: Contender, n: int) -> int:
        """Items one repetition of contender uses when the run asks for n."""
        scaled = math.ceil(n * self.scale * contender.scale)
        return max(1, min(n, max(self.min_items, scaled)))
