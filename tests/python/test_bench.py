"""`flinq bench`: the report's structure and plausibility, and its options.

One quick run (module-scoped) feeds most tests. No test asserts a speed.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import flinq
from flinq.bench.env import Env
from flinq.bench.workloads import DURABLE_TRIALS, NOT_DURABLE, workloads

# A hang guard for one `flinq bench --quick` (which aims at 30 s at most).
RUN_TIMEOUT = 240.0
HEADS = ("Machine: ", "Python: ", "flinq: ")
ALWAYS_AVAILABLE = {
    "queue.Queue",
    "queue.SimpleQueue",
    "queue.PriorityQueue",
    "collections.deque",
    "heapq",
    "py-lmdb (raw)",
}


def bench(*args: str, cwd: Path, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run `python -m flinq bench ARGS` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "flinq", "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


class QuickRun:
    """The outcome of one `flinq bench --quick --json FILE` run."""

    def __init__(self, directory: Path) -> None:
        self.json_path = directory / "quick.json"
        self.png_path = directory / "quick.png"
        extra = ["--plot", str(self.png_path)] if has_matplotlib() else []
        self.process = bench("--quick", "--json", str(self.json_path), *extra, cwd=directory)
        self.report: dict[str, Any] = {}
        if self.process.returncode == 0:
            self.report = json.loads(self.json_path.read_text(encoding="utf-8"))

    def results(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(workload, contender result) pairs of the report."""
        return [(w, r) for w in self.report["workloads"] for r in w["results"]]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    run = QuickRun(tmp_path_factory.mktemp("bench"))
    assert run.process.returncode == 0, run.process.stderr[-3000:]
    return run


def test_quick_run_writes_json_and_prints_table(quick: QuickRun) -> None:
    out = quick.process.stdout
    assert quick.json_path.exists()
    # Machine, Python and flinq version come first, before the table.
    lines = out.splitlines()
    assert lines[0].startswith("Machine: ")
    starts = [next(i for i, line in enumerate(lines) if line.startswith(p)) for p in HEADS]
    assert starts == sorted(starts) and starts[-1] < lines.index("")
    flinq_line = lines[starts[2]]
    assert flinq.__version__ in flinq_line
    headers = [line for line in out.splitlines() if line.startswith("workload ")]
    assert len(headers) == 5  # throughput, latency, memory, durable, between processes
    for header in headers:
        assert header.split() == ["workload", "flinq", "peer", "peer's", "advantage"]
    rows = {line.split()[0] for line in out.splitlines() if line and not line[0].isspace()}
    for name, workload in workloads().items():
        if workload.flinq is None:  # a reference: the durable table's baseline
            assert f"baseline, the storage alone: {workload.peers[0].name}" in out
        elif len(workload.metrics) == 1:
            assert name in rows, name
        else:
            assert all(f"{name} {m.label.split()[0]}" in out for m in workload.metrics)
    assert "Target" not in out and "target" not in out
    assert sum(line.startswith("advantage:") for line in out.splitlines()) == 1
    # The default output reads in 100 columns.
    assert max(len(line) for line in out.splitlines()) <= 100
    # Progress goes to stderr, not into the table.
    assert "1/3" in quick.process.stderr
    assert "1/3" not in out


def test_report_metadata(quick: QuickRun) -> None:
    report = quick.report
    assert report["schema"] == 1
    assert report["command"][:2] == ["flinq", "bench"] and "--quick" in report["command"]
    assert report["python"]["version"] == platform.python_version()
    assert report["versions"]["flinq"] == flinq.__version__
    assert report["machine"]["cores"] == os.cpu_count()
    assert report["machine"]["cpu"]
    settings = report["settings"]
    assert settings["quick"] is True
    assert settings["repeat"] >= 3
    assert settings["n"] >= 1
    assert report["elapsed_seconds"] > 0


def test_every_workload_present_in_order(quick: QuickRun) -> None:
    assert [w["name"] for w in quick.report["workloads"]] == list(workloads())
    for workload in quick.report["workloads"]:
        assert workload["description"]
        assert workload["metrics"]
        for metric in workload["metrics"]:
            assert set(metric) == {"key", "label", "unit", "higher_is_better"}


def test_targets(quick: QuickRun) -> None:
    targets = {w["name"]: w["target_ops_per_s"] for w in quick.report["workloads"]}
    assert targets["enqueue"] == 50_000
    assert targets["dequeue"] == 40_000
    assert targets["consume"] == 30_000
    assert targets["batch"] is None


def test_every_contender_present_measured_or_skipped(quick: QuickRun) -> None:
    by_workload = {w["name"]: w for w in quick.report["workloads"]}
    for name, workload in workloads().items():
        names = [r["name"] for r in by_workload[name]["results"]]
        assert names == [c.name for c in workload.contenders()]
    for _, result in quick.results():
        assert result["status"] in ("ok", "skipped", "error")
        if result["status"] != "ok":
            assert isinstance(result["reason"], str) and result["reason"].strip()
            assert result["median"] == {} and result["repetitions"] == {}
        if result["name"] in ALWAYS_AVAILABLE:
            assert result["status"] == "ok", result


def test_flinq_measured_and_durable_skipped_only_without_store(quick: QuickRun) -> None:
    durable = hasattr(flinq, "open")
    with Env() as env:
        no_redis = env.redis_unavailable()
    for workload, result in quick.results():
        if result["role"] != "flinq":
            continue
        if workload["name"].startswith("redis-") and no_redis is not None:
            assert result["status"] == "skipped" and result["reason"] == no_redis
        elif workload["name"].startswith("durable-") and not durable:
            assert result["status"] == "skipped"
            assert result["reason"] == NOT_DURABLE
        else:
            assert result["status"] == "ok", result
    assert (NOT_DURABLE in quick.process.stdout) is not durable


def test_figures_positive_and_medians_match_repetitions(quick: QuickRun) -> None:
    repeat = quick.report["settings"]["repeat"]
    for workload, result in quick.results():
        if result["status"] != "ok":
            continue
        keys = {m["key"] for m in workload["metrics"]}
        assert set(result["repetitions"]) == keys == set(result["median"])
        assert result["items"] >= 1
        assert len(result["seconds"]) == repeat
        assert all(s > 0 for s in result["seconds"])
        for key, values in result["repetitions"].items():
            assert len(values) == repeat
            assert all(v > 0 for v in values), (workload["name"], result["name"], key)
            assert result["median"][key] == pytest.approx(statistics.median(values))
            assert min(values) <= result["median"][key] <= max(values)


def test_skipped_list_matches_results(quick: QuickRun) -> None:
    expected = [
        (w["name"], r["name"], r["reason"]) for w, r in quick.results() if r["status"] != "ok"
    ]
    listed = [(s["workload"], s["contender"], s["reason"]) for s in quick.report["skipped"]]
    assert listed == expected


def test_plot_written(quick: QuickRun) -> None:
    if not has_matplotlib():
        pytest.skip("matplotlib is not installed")
    assert quick.png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_only_runs_the_named_workloads(tmp_path: Path) -> None:
    out = tmp_path / "only.json"
    process = bench("--quick", "--only", "enqueue,memory", "--json", str(out), cwd=tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [w["name"] for w in report["workloads"]] == ["enqueue", "memory"]
    assert report["settings"]["only"] == ["enqueue", "memory"]
    assert "| dequeue " not in process.stdout


def test_compare_prints_change_per_workload(quick: QuickRun, tmp_path: Path) -> None:
    process = bench("--quick", "--only", "dequeue", "--compare", str(quick.json_path), cwd=tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    out = process.stdout
    assert f"Change against {quick.json_path}" in out
    rows = [line for line in out.splitlines() if line.startswith("| dequeue ")]
    flinq_rows = [row for row in rows if "flinq.Queue" in row and "%" in row]
    assert flinq_rows, out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repeat", "2"], "--repeat"),
        (["--repeat", "x"], "--repeat"),
        (["-n", "0"], "-n"),
        (["--only", "no-such-workload"], "unknown workload"),
        (["--only", ","], "--only"),
        (["--compare", "missing.json"], "--compare"),
        (["--compare", "not-json.txt"], "not JSON"),
        (["--json", "no/such/dir/out.json"], "does not exist"),
        (["--no-such-option"], "unrecognized"),
    ],
)
def test_bad_options_fail_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "not-json.txt").write_text("hello", encoding="utf-8")
    process = bench(*args, cwd=tmp_path, timeout=60)
    assert process.returncode != 0
    assert process.stdout == ""
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, process.stderr
    assert "error:" in lines[0] and message in lines[0]


def test_plot_without_matplotlib_is_a_clear_error(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from flinq.cli import main; "
        "sys.exit(main(['bench', '--quick', '--plot', 'out.png']))"
    )
    process = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 2
    assert process.stdout == ""
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and "matplotlib" in lines[0], process.stderr
    assert not (tmp_path / "out.png").exists()


def test_durable_rows_are_skipped_without_flinq_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(flinq, "open", raising=False)
    with Env() as env:
        durable = [w for w in workloads().values() if w.name.startswith("durable-")]
        assert {w.name for w in durable} == set(DURABLE_TRIALS)
        for workload in durable:
            assert workload.flinq is not None
            assert workload.flinq.skip_reason(env) == NOT_DURABLE


def sample_workloads(report: dict[str, Any]) -> list[Any]:
    """report's workloads, with the longest names and reasons this report
    could have: a skipped peer with a long reason, a failed flinq row."""
    workloads_ = json.loads(json.dumps(report["workloads"]))
    first = workloads_[0]
    first["results"][-1].update(
        status="skipped", reason="x" * 300, median={}, repetitions={}, items=None
    )
    first["results"][0].update(status="error", reason="RuntimeError: " + "y" * 200, median={})
    return workloads_


def test_default_tables_fit_100_columns_on_a_sample(quick: QuickRun) -> None:
    from flinq.bench.report import WIDTH, details, header_lines, results_table

    sample = sample_workloads(quick.report)
    table = results_table(sample)
    assert WIDTH == 100
    assert max(len(line) for line in table.splitlines()) <= 100
    assert "skipped [" in table and "error [" in table
    report = quick.report
    head = header_lines(report["machine"], report["python"], report["versions"], report["settings"])
    assert max(len(line) for line in head) <= 100
    assert max(len(line) for line in details(sample).splitlines()) <= 100


def test_an_old_report_without_suites_still_reads(quick: QuickRun) -> None:
    from flinq.bench.report import results_table

    old = json.loads(json.dumps(quick.report["workloads"]))
    for workload in old:
        workload.pop("suite")
    assert "Throughput in one process" in results_table(old)


def test_verbose_says_what_each_row_measures_and_the_goals(tmp_path: Path) -> None:
    process = bench("--quick", "--only", "enqueue", "--verbose", cwd=tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    out = process.stdout
    assert "- enqueue: " in out and "Goal: 50K ops/s" in out
    assert "first status report" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_an_unreachable_redis_url_exits_1_with_the_reason(tmp_path: Path) -> None:
    process = bench(
        "--quick", "--only", "enqueue", "--redis-url", "redis://127.0.0.1:1/0", cwd=tmp_path
    )
    assert process.returncode == 1
    assert process.stdout == ""
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and "redis://127.0.0.1:1/0" in lines[0], process.stderr


def _drive_progress(bar: bool) -> str:
    """What Progress writes for one stage of two steps and a note."""
    import io

    from flinq.bench.progress import Progress

    out = io.StringIO()
    progress = Progress(out, bar=bar)
    progress.begin(2)
    progress.stage("[1/1] enqueue: put n items")
    progress.step("enqueue 1/2: flinq.Queue 1 ops/s")
    progress.note("enqueue: faster_fifo.Queue skipped: not installed")
    progress.step("enqueue 2/2: flinq.Queue 1 ops/s")
    progress.finish()
    return out.getvalue()


def test_progress_draws_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    plain = _drive_progress(bar=False)
    assert len(plain.splitlines()) == 4 and "\r" not in plain

    text = _drive_progress(bar=True)
    assert "\r[" in text and "2/2 enqueue 2/2" in text and "#" * 30 in text
    assert text.count("\n") == 1  # only the note is a line of its own
    assert all(len(part) <= 101 for part in text.split("\r"))
