"""Between-processes workloads: flinq.ProcessQueue against
multiprocessing.Queue, multiprocessing.SimpleQueue and faster-fifo, with
forked consumer processes; see conftest.py."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pytest_benchmark")

from flinq.bench.env import Env
from flinq.bench.model import Contender, Workload
from suite import cases, time_case


@pytest.mark.parametrize(("workload", "contender"), cases("processes"))
def test_processes(
    benchmark: Any, bench_env: Env, workload: Workload, contender: Contender
) -> None:
    time_case(benchmark, bench_env, workload, contender)
