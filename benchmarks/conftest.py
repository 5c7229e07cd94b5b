"""pytest-benchmark suites for flinq: ``pytest benchmarks/ --benchmark-only``.

They time the workloads of flinq.bench.workloads (the same definitions
``flinq bench`` runs): each round prepares a trial outside the timing and
times only its run() of BENCH_N operations (fewer for slow peers). The
pytest-benchmark tables show the time of a round, grouped by workload; the
time per operation is in each benchmark's extra_info (``ns_per_op``, saved
by --benchmark-json) and in a summary printed at the end. Workloads
whose figure is not a rate (latency, memory) are left to ``flinq bench``.
These suites are outside tests/python, so ``pytest tests/python`` never
runs them.

Environment: FLINQ_BENCH_N (operations per round, default 10000),
FLINQ_BENCH_ROUNDS (rounds, default 5), FLINQ_BENCH_REDIS_URL (a Redis
server to use instead of a private redis-server).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

try:
    import flinq.bench  # noqa: F401  (installed with pip install -e .)
except ImportError:  # a checkout without an install: use its src/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "src"))

from flinq.bench.env import Env

# The suites import their shared helpers (suite.py) as a plain module.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the time per operation of every case timed in this session."""
    import suite

    if not suite.TIMED:
        return
    terminalreporter.section("time per operation (median round / operations per round)")
    for workload, contender, items, ns_per_op in suite.TIMED:
        terminalreporter.line(
            f"{workload:<26} {contender:<32} {ns_per_op:>12,.1f} ns/op  ({items:,} ops per round)"
        )


@pytest.fixture(scope="session")
def bench_env() -> Iterator[Env]:
    """One Env (payloads, temp dir, Redis server) for the whole session."""
    with Env(redis_url=os.environ.get("FLINQ_BENCH_REDIS_URL") or None) as env:
        yield env
