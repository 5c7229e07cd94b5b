"""Text for people: the run's header, the results (one table per kind of
figure, every line within WIDTH columns), what each row measures
(--verbose), and the comparison with an older report (Markdown)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flinq.bench.results import ContenderResult, MetricInfo, Report, WorkloadResult, find_result

OPS_KEY = "ops_per_s"


def _si(value: float) -> str:
    """value with three significant digits and a K/M/G suffix."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale * 0.9995:  # 999.6 is "1K", not "1e+03"
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def format_value(value: float, metric: MetricInfo) -> str:
    """A figure with its unit (ops/s figures are bare: the column says so)."""
    if metric["key"] == OPS_KEY:
        return _si(value)
    if metric["unit"] == "ns":
        if value >= 1e6:
            return f"{value / 1e6:.3g} ms"
        if value >= 1e3:
            return f"{value / 1e3:.3g} us"
        return f"{value:.3g} ns"
    if metric["unit"] == "bytes":
        return f"{_si(value).replace('K', ' K').replace('M', ' M').replace('G', ' G')}B/1M"
    return f"{_si(value)} {metric['unit']}"


def format_ratio(ratio: float) -> str:
    """A ratio such as 3.42x."""
    if ratio >= 100:
        return f"{ratio:.0f}x"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x"


def _aligned(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]
) -> tuple[list[int], list[list[str]]]:
    """The width of each column (its widest cell), and headers then rows with
    every cell padded to its column's width: right-aligned in the columns in
    right, left-aligned in the others."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        for cells in [headers, *rows]
    ]
    return widths, lines


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """A Markdown table with padded columns; columns in right align right."""
    widths, lines = _aligned(headers, rows, right)
    head, *body = ["| " + " | ".join(cells) + " |" for cells in lines]
    rule = "|" + "|".join(
        "-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)
    )
    return "\n".join([head, rule + "|", *body])


#: The width every line of the default output fits in.
WIDTH = 100


def wrap(line: str, indent: int = 9) -> list[str]:
    """line cut into lines of at most WIDTH columns, continuations indented."""
    return textwrap.wrap(
        line, WIDTH, subsequent_indent=" " * indent, break_long_words=True, break_on_hyphens=False
    ) or [""]


def header_lines(
    machine: dict[str, Any],
    python: dict[str, str],
    versions: dict[str, str | None],
    settings: dict[str, Any],
) -> list[str]:
    """Machine, Python and flinq version, and the run's settings (each line
    wrapped to WIDTH columns)."""
    cores = f"{machine.get('cores')} cores"
    if machine.get("usable_cores") not in (None, machine.get("cores")):
        cores += f" ({machine['usable_cores']} usable)"
    load = machine.get("load_average")
    load_text = f", load {' '.join(f'{x:.2f}' for x in load)}" if load else ""
    peers = ", ".join(
        f"{name} {version}" for name, version in versions.items() if name != "flinq" and version
    )
    lines = [
        f"Machine: {machine.get('platform')}, {machine.get('cpu')}, {cores}{load_text}",
        f"Python:  {python.get('implementation')} {python.get('version')}"
        f" ({python.get('executable')})",
        f"flinq:   {settings.get('flinq_version')}{_source_text(settings.get('flinq_source'))}",
        f"Peers:   {peers or 'none installed'}",
        f"Run:     n={settings.get('n'):,} items per repetition (some workloads and slow peers "
        f"use a fixed fraction), {settings.get('repeat')} repetitions, every figure the median"
        + (" (--quick)" if settings.get("quick") else ""),
    ]
    return [part for line in lines for part in wrap(line)]


def _source_text(source: dict[str, Any] | None) -> str:
    """(git COMMIT[, N modified files]) for a run from a checkout, else ""."""
    if not source:
        return ""
    modified = len(source.get("modified_files", []))
    extra = f", {modified} tracked file(s) modified" if modified else ""
    return f" (git {str(source.get('commit'))[:10]}{extra})"


class _Footnotes:
    """Numbered reasons for skipped or failed cells."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def mark(self, result: ContenderResult) -> str:
        reason = result["reason"] or ""
        if reason not in self.reasons:
            self.reasons.append(reason)
        return f"{result['status']} [{self.reasons.index(reason) + 1}]"

    def lines(self) -> list[str]:
        return [f"[{i}] {reason}" for i, reason in enumerate(self.reasons, 1)]


def _cell(result: ContenderResult | None, metric: MetricInfo, notes: _Footnotes) -> str:
    """The figure of result for metric, or why there is none."""
    if result is None:
        return "-"
    if result["status"] != "ok":
        return notes.mark(result)
    return format_value(result["median"][metric["key"]], metric)


def _row_label(workload: WorkloadResult, metric: MetricInfo) -> str:
    if len(workload["metrics"]) == 1:
        return workload["name"]
    return f"{workload['name']} {metric['label'].split()[0]}"


@dataclass(frozen=True)
class _Section:
    """One table of the default output: figures of one kind."""

    title: str
    #: How a figure of this kind is shown (the title names the unit).
    show: Callable[[float], str]


def _plain(value: float) -> str:
    """value with three significant digits, never in exponent form."""
    return f"{value:,.0f}" if abs(value) >= 999.5 else f"{value:.3g}"


_SECTIONS: dict[str, _Section] = {
    "throughput": _Section("Throughput in one process, ops/s (higher is better)", _si),
    "latency": _Section("Latency, microseconds (lower is better)", lambda ns: _plain(ns / 1e3)),
    "memory": _Section("Memory per million items, MB (lower is better)", lambda b: _plain(b / 1e6)),
    "durable": _Section("Durable queues, ops/s (higher is better)", _si),
    "processes": _Section("Between processes, ops/s (higher is better)", _si),
}

LEGEND = "advantage: flinq's edge over that peer in this run; above 1x flinq is faster or leaner."


def _section_of(workload: WorkloadResult, metric: MetricInfo) -> str:
    """Which table a metric of workload goes to."""
    if metric["unit"] == "ns":
        return "latency"
    if metric["unit"] == "bytes":
        return "memory"
    suite = workload.get("suite", "memory")
    return suite if suite in ("durable", "processes") else "throughput"


def _advantage(flinq: ContenderResult | None, peer: ContenderResult, metric: MetricInfo) -> str:
    """How many times better flinq's median is than peer's (faster, or less
    latency or memory), or '-'."""
    if flinq is None or flinq["status"] != "ok" or peer["status"] != "ok":
        return "-"
    mine, theirs = flinq["median"][metric["key"]], peer["median"][metric["key"]]
    ratio_of = (mine, theirs) if metric["higher_is_better"] else (theirs, mine)
    return "-" if ratio_of[1] == 0 else format_ratio(ratio_of[0] / ratio_of[1])


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """A plain table, columns two spaces apart; columns in right align right."""
    return "\n".join("  ".join(cells).rstrip() for cells in _aligned(headers, rows, right)[1])


def _baseline(workloads: Sequence[WorkloadResult], notes: _Footnotes) -> str:
    """The reference workloads (no flinq contender, e.g. raw py-lmdb puts) in one phrase."""
    parts = []
    for workload in workloads:
        if any(r["role"] == "flinq" for r in workload["results"]):
            continue
        metric = workload["metrics"][0]
        for result in workload["results"]:
            parts.append(f"{result['name']} {_cell(result, metric, notes)}")
    return "; ".join(parts)


def results_table(workloads: Sequence[WorkloadResult]) -> str:
    """The results: one table per kind of figure (each figure a median),
    then footnotes for skipped cells; every line within WIDTH columns."""
    notes = _Footnotes()
    tables: dict[str, list[list[str]]] = {name: [] for name in _SECTIONS}
    for workload in workloads:
        flinq = next((r for r in workload["results"] if r["role"] == "flinq"), None)
        if flinq is None:
            continue  # a reference: shown as the baseline of its table
        peers = [r for r in workload["results"] if r["role"] == "peer"]
        for metric in workload["metrics"]:
            name = _section_of(workload, metric)
            show = _SECTIONS[name].show
            mine = (
                show(flinq["median"][metric["key"]])
                if flinq["status"] == "ok"
                else notes.mark(flinq)
            )
            label = _row_label(workload, metric)
            if not peers:
                tables[name].append([label, mine, "-", "", ""])
            for index, peer in enumerate(peers):
                theirs = (
                    show(peer["median"][metric["key"]])
                    if peer["status"] == "ok"
                    else notes.mark(peer)
                )
                lead = [label, mine] if index == 0 else ["", ""]
                tables[name].append([*lead, peer["name"], theirs, _advantage(flinq, peer, metric)])
    baseline = _baseline(workloads, notes)
    out: list[str] = []
    for name, rows in tables.items():
        if not rows:
            continue
        title = _SECTIONS[name].title
        if name == "durable" and baseline:
            title += f"; baseline, the storage alone: {baseline}"
        out.extend(wrap(title, indent=2))
        headers = ["workload", "flinq", "peer", "peer's", "advantage"]
        out.append(text_table(headers, rows, right={1, 3, 4}))
        out.append("")
    out.extend(part for line in notes.lines() for part in wrap(line, indent=4))
    return "\n".join(out).rstrip()


def details(workloads: Sequence[WorkloadResult]) -> str:
    """What each workload measures, how peers are driven, and the goals
    (--verbose), wrapped to WIDTH columns."""
    lines = [
        "Goals: the ops/s the project's first status report set as the least flinq must reach.",
        "",
    ]
    for workload in workloads:
        head = f"- {workload['name']}: {workload['description']}"
        target = workload["target_ops_per_s"]
        flinq = next((r for r in workload["results"] if r["role"] == "flinq"), None)
        if target:
            head += f" Goal: {_si(target)} ops/s"
            if flinq is not None and flinq["status"] == "ok":
                head += f" (met {format_ratio(flinq['median'][OPS_KEY] / target)} over)"
            head += "."
        lines.extend(wrap(head, indent=2))
        for result in workload["results"]:
            if result["note"]:
                lines.extend(wrap(f"  - {result['name']}: {result['note']}", indent=4))
    return "\n".join(lines)


def _change(old: float, new: float, higher_is_better: bool) -> str:
    """new against old in percent, saying which way is better."""
    if old == 0:
        return "-"
    change = (new - old) / old * 100
    if abs(change) < 0.05:
        return "0.0%"
    better = (change > 0) == higher_is_better
    return f"{change:+.1f}% ({'better' if better else 'worse'})"


def compare_table(
    new: Sequence[WorkloadResult], new_settings: dict[str, Any], old: Report, old_path: str
) -> str:
    """Each figure of this run next to the same figure in an older report."""
    old_by_name = {w["name"]: w for w in old["workloads"]}
    rows: list[list[str]] = []
    for workload in new:
        previous = old_by_name.get(workload["name"])
        for metric in workload["metrics"]:
            key = metric["key"]
            label = _row_label(workload, metric)
            for result in workload["results"]:
                if result["status"] != "ok":
                    continue
                then = find_result(previous, result["name"]) if previous else None
                now_value = result["median"][key]
                if then is None or then["status"] != "ok" or key not in then["median"]:
                    old_text, change = "-", "not in old file"
                else:
                    old_value = then["median"][key]
                    old_text = format_value(old_value, metric)
                    change = _change(old_value, now_value, metric["higher_is_better"])
                rows.append(
                    [label, result["name"], old_text, format_value(now_value, metric), change]
                )
    created = old.get("created", "?")
    head = (
        f"Change against {old_path} (run {created}, flinq {old['settings'].get('flinq_version')}):"
    )
    differences = [
        f"{key} {old['settings'].get(key)} then, {new_settings.get(key)} now"
        for key in ("n", "repeat", "quick")
        if old["settings"].get(key) != new_settings.get(key)
    ]
    if differences:
        head += "\nNote: the runs differ in settings: " + "; ".join(differences) + "."
    table = markdown_table(["workload", "contender", "old", "new", "change"], rows, right={2, 3, 4})
    return head + "\n\n" + table
