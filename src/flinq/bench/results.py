"""The shape of a benchmark report (what --json writes and --compare reads)."""

from __future__ import annotations

import json
from typing import Any, Final, Literal, NotRequired, TypedDict, cast

SCHEMA: Final = 1


class MetricInfo(TypedDict):
    """A metric as the report describes it."""

    key: str
    label: str
    unit: str
    higher_is_better: bool


class ContenderResult(TypedDict):
    """Every figure one contender gave in one workload."""

    name: str
    role: Literal["flinq", "peer"]
    #: "ok": measured; "skipped": could not run here (reason says why);
    #: "error": it raised while running (reason holds the exception).
    status: Literal["ok", "skipped", "error"]
    reason: str | None
    note: str
    #: Items per repetition (None when not measured).
    items: int | None
    #: Measured seconds of each repetition.
    seconds: list[float]
    #: Metric key -> that figure for each repetition, in order.
    repetitions: dict[str, list[float]]
    #: Metric key -> median of the repetitions.
    median: dict[str, float]


class WorkloadResult(TypedDict):
    """One workload's contenders and their figures."""

    name: str
    description: str
    target_ops_per_s: float | None
    metrics: list[MetricInfo]
    #: "memory" (in one process), "durable" or "processes"; reports written
    #: before it was added lack it (read them as "memory").
    suite: NotRequired[str]
    results: list[ContenderResult]


class Skip(TypedDict):
    """A contender that did not run, and why."""

    workload: str
    contender: str
    status: Literal["skipped", "error"]
    reason: str


class Report(TypedDict):
    """A whole `flinq bench` run."""

    schema: int
    created: str
    command: list[str]
    machine: dict[str, Any]
    python: dict[str, str]
    versions: dict[str, str | None]
    settings: dict[str, Any]
    workloads: list[WorkloadResult]
    skipped: list[Skip]
    elapsed_seconds: float


class ReportError(ValueError):
    """A file is not a readable flinq bench report."""


def load_report(path: str) -> Report:
    """Read a report written by `flinq bench --json`."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("workloads"), list):
        raise ReportError(f"{path} is not a flinq bench --json report")
    if data.get("schema") != SCHEMA:
        raise ReportError(f"{path} has report schema {data.get('schema')!r}, expected {SCHEMA}")
    return cast(Report, data)


def save_report(report: Report, path: str) -> None:
    """Write report as indented JSON."""
    with open(path, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2)
        file.write("\n")


def find_result(workload: WorkloadResult, contender: str) -> ContenderResult | None:
    """The result of the contender called contender in workload, if any."""
    for result in workload["results"]:
        if result["name"] == contender:
            return result
    return None
