"""What the pytest-benchmark suites share: cases from the workload
definitions and the timing of one case."""

from __future__ import annotations

import os
from typing import Any

import pytest

from flinq.bench.env import Env
from flinq.bench.model import Contender, Trial, Workload
from flinq.bench.workloads import workloads

#: Operations per timed round (before a workload's or a slow peer's scaling).
BENCH_N = int(os.environ.get("FLINQ_BENCH_N", "10000"))
#: Timed rounds per case (each with a freshly prepared trial).
BENCH_ROUNDS = int(os.environ.get("FLINQ_BENCH_ROUNDS", "5"))

#: (workload, contender, operations per round, ns per operation) of each timed case.
TIMED: list[tuple[str, str, int, float]] = []


def cases(suite: str) -> list[Any]:
    """pytest params (workload, contender) of every rate workload in suite."""
    params = []
    for workload in workloads().values():
        if workload.suite != suite or not workload.throughput:
            continue
        for contender in workload.contenders():
            case_id = f"{workload.name}-{contender.name}".replace(" ", "_")
            params.append(pytest.param(workload, contender, id=case_id))
    return params


def time_case(
    benchmark: Any,
    env: Env,
    workload: Workload,
    contender: Contender,
    n: int = BENCH_N,
    rounds: int = BENCH_ROUNDS,
) -> None:
    """Time contender's run() of workload with pytest-benchmark, preparing
    each round's trial outside the timing."""
    reason = contender.skip_reason(env)
    if reason is not None:
        pytest.skip(reason)
    items = workload.items_for(contender, n)

    def setup() -> tuple[tuple[Trial], dict[str, Any]]:
        return (contender.prepare(items, env),), {}

    def run(trial: Trial) -> None:
        trial.run()

    def teardown(trial: Trial) -> None:
        trial.close()

    if benchmark.disabled:
        # --benchmark-disable: pedantic() would run setup and the target but
        # never teardown, leaving the trial (stores, processes) open. One
        # whole round instead, closed whatever happens: a smoke test.
        def whole_round() -> None:
            trial = contender.prepare(items, env)
            try:
                trial.run()
            finally:
                trial.close()

        benchmark(whole_round)
        return
    benchmark.group = workload.name
    benchmark.extra_info["workload"] = workload.name
    benchmark.extra_info["contender"] = contender.name
    benchmark.extra_info["operations_per_round"] = items
    benchmark.pedantic(
        run, setup=setup, teardown=teardown, rounds=rounds, warmup_rounds=1, iterations=1
    )
    median = benchmark.stats.stats.median
    benchmark.extra_info["ns_per_op"] = median / items * 1e9
    benchmark.extra_info["ops_per_s"] = items / median if median else None
    TIMED.append((workload.name, contender.name, items, median / items * 1e9))
