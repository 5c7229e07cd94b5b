"""Run workloads repeatedly and collect every figure into a report."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from flinq.bench.env import Env
from flinq.bench.model import Contender, Sample, Workload
from flinq.bench.results import ContenderResult, MetricInfo, Skip, WorkloadResult

#: Items of the untimed warm-up repetition: a tenth of a repetition, at most this.
WARMUP_ITEMS = 1000


class Progress(Protocol):
    """Where a run tells of its progress (flinq.bench.progress.Progress)."""

    def begin(self, total: int) -> None:
        """total steps (repetitions of a workload) are coming."""

    def stage(self, message: str) -> None:
        """A workload begins."""

    def note(self, message: str) -> None:
        """Something worth a line of its own (a skip, a failure)."""

    def step(self, message: str) -> None:
        """One repetition of a workload is done."""


@dataclass
class _Entry:
    """A contender's state during a run."""

    contender: Contender
    role: Literal["flinq", "peer"]
    items: int
    status: Literal["ok", "skipped", "error"] = "ok"
    reason: str | None = None
    samples: list[Sample] = field(default_factory=list)


def _describe(exc: BaseException) -> str:
    """An exception as one line."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _format_figures(workload: Workload, sample: Sample) -> str:
    """A sample's figures, short, for progress lines."""
    parts = []
    for metric in workload.metrics:
        value = sample.figures[metric.key]
        parts.append(f"{value:,.0f} {metric.unit}")
    return " / ".join(parts)


def run_workload(
    workload: Workload, *, n: int, repeat: int, env: Env, progress: Progress
) -> WorkloadResult:
    """Measure every contender of workload repeat times with n items (scaled
    per contender); repetitions are interleaved across contenders so that
    background load falls on all of them alike."""
    entries = [
        _Entry(c, "flinq" if c is workload.flinq else "peer", workload.items_for(c, n))
        for c in workload.contenders()
    ]
    for entry in entries:
        try:
            entry.reason = entry.contender.skip_reason(env)
        except Exception as exc:
            entry.reason = f"cannot check: {_describe(exc)}"
        if entry.reason is not None:
            entry.status = "skipped"
            progress.note(f"{workload.name}: {entry.contender.name} skipped: {entry.reason}")
    for entry in entries:
        if entry.status == "ok":
            warmup = max(1, min(WARMUP_ITEMS, entry.items // 10))
            _measure(entry, warmup, env, keep=False)
    if not any(entry.status == "ok" for entry in entries):
        for index in range(repeat):
            progress.step(f"{workload.name} {index + 1}/{repeat}: nothing ran")
        return _result(workload, entries)
    for index in range(repeat):
        figures = []
        for entry in entries:
            if entry.status != "ok":
                continue
            sample = _measure(entry, entry.items, env, keep=True)
            if sample is not None:
                figures.append(f"{entry.contender.name} {_format_figures(workload, sample)}")
            else:
                progress.note(f"{workload.name}: {entry.contender.name} failed: {entry.reason}")
        progress.step(
            f"{workload.name} {index + 1}/{repeat}: " + ("; ".join(figures) or "nothing ran")
        )
    return _result(workload, entries)


def _measure(entry: _Entry, items: int, env: Env, *, keep: bool) -> Sample | None:
    """One repetition of entry; a failure marks the entry as an error."""
    try:
        sample = entry.contender.measure(items, env)
    except Exception as exc:
        entry.status = "error"
        entry.reason = _describe(exc)
        entry.samples.clear()
        return None
    if keep:
        entry.samples.append(sample)
    return sample


def _result(workload: Workload, entries: list[_Entry]) -> WorkloadResult:
    """The report section for workload."""
    results: list[ContenderResult] = []
    for entry in entries:
        measured = entry.status == "ok" and bool(entry.samples)
        repetitions = {
            metric.key: [sample.figures[metric.key] for sample in entry.samples]
            for metric in workload.metrics
        }
        results.append(
            ContenderResult(
                name=entry.contender.name,
                role=entry.role,
                status=entry.status,
                reason=entry.reason,
                note=entry.contender.note,
                items=entry.items if measured else None,
                seconds=[sample.seconds for sample in entry.samples],
                repetitions=repetitions if measured else {},
                median=(
                    {key: statistics.median(values) for key, values in repetitions.items()}
                    if measured
                    else {}
                ),
            )
        )
    return WorkloadResult(
        name=workload.name,
        description=workload.description,
        target_ops_per_s=workload.target,
        suite=workload.suite,
        metrics=[
            MetricInfo(key=m.key, label=m.label, unit=m.unit, higher_is_better=m.higher_is_better)
            for m in workload.metrics
        ],
        results=results,
    )


def run_all(
    selected: Sequence[Workload], *, n: int, repeat: int, env: Env, progress: Progress
) -> tuple[list[WorkloadResult], list[Skip], float]:
    """Run each selected workload; returns their results, every contender
    that did not run (with the reason) and the elapsed seconds."""
    start = time.perf_counter()
    results = []
    progress.begin(len(selected) * repeat)
    for number, workload in enumerate(selected, 1):
        progress.stage(f"[{number}/{len(selected)}] {workload.name}: {workload.description}")
        results.append(run_workload(workload, n=n, repeat=repeat, env=env, progress=progress))
    skipped = [
        Skip(
            workload=w["name"],
            contender=r["name"],
            status="error" if r["status"] == "error" else "skipped",
            reason=r["reason"] or "",
        )
        for w in results
        for r in w["results"]
        if r["status"] != "ok"
    ]
    return results, skipped, time.perf_counter() - start
