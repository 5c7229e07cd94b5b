"""Text for people: the run's header, the results table and the comparison
with an older report. Tables are Markdown, aligned for a terminal too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flinq.bench.results import ContenderResult, MetricInfo, Report, WorkloadResult, find_result

OPS_KEY = "ops_per_s"


def _si(value: float) -> str:
    """value with three significant digits and a K/M/G suffix."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
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


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """A Markdown table with padded columns; columns in right align right."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)
    )
    return "\n".join([line(headers), rule + "|", *(line(row) for row in rows)])


def header_lines(
    machine: dict[str, Any],
    python: dict[str, str],
    versions: dict[str, str | None],
    settings: dict[str, Any],
) -> list[str]:
    """Machine, Python and flinq version, and the run's settings."""
    cores = f"{machine.get('cores')} cores"
    if machine.get("usable_cores") not in (None, machine.get("cores")):
        cores += f" ({machine['usable_cores']} usable)"
    load = machine.get("load_average")
    load_text = f", load average {' '.join(f'{x:.2f}' for x in load)}" if load else ""
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
    return lines


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


def _ratio(a: ContenderResult | None, b: ContenderResult | None, key: str) -> str:
    """a's median over b's for key, or '-'."""
    if a is None or b is None or a["status"] != "ok" or b["status"] != "ok":
        return "-"
    if b["median"][key] == 0:
        return "-"
    return format_ratio(a["median"][key] / b["median"][key])


def _row_label(workload: WorkloadResult, metric: MetricInfo) -> str:
    if len(workload["metrics"]) == 1:
        return workload["name"]
    return f"{workload['name']} {metric['label'].split()[0]}"


def results_table(workloads: Sequence[WorkloadResult]) -> str:
    """The results table, then footnotes for skipped cells."""
    headers = [
        "workload",
        "flinq ops/s",
        "target",
        "flinq/target",
        "peer",
        "peer ops/s",
        "flinq/peer",
    ]
    notes = _Footnotes()
    rows: list[list[str]] = []
    for workload in workloads:
        flinq = next((r for r in workload["results"] if r["role"] == "flinq"), None)
        peers = [r for r in workload["results"] if r["role"] == "peer"]
        target = workload["target_ops_per_s"]
        for metric in workload["metrics"]:
            key = metric["key"]
            has_target = target is not None and key == OPS_KEY
            target_text = _si(target) if has_target and target is not None else "-"
            vs_target = "-"
            if has_target and target and flinq is not None and flinq["status"] == "ok":
                vs_target = format_ratio(flinq["median"][key] / target)
            first = [
                _row_label(workload, metric),
                _cell(flinq, metric, notes) if flinq else "- (reference)",
                target_text,
                vs_target,
            ]
            if not peers:
                rows.append([*first, "-", "-", "-"])
            for index, peer in enumerate(peers):
                lead = first if index == 0 else ["", "", "", ""]
                rows.append(
                    [*lead, peer["name"], _cell(peer, metric, notes), _ratio(flinq, peer, key)]
                )
    table = markdown_table(headers, rows, right={1, 2, 3, 5, 6})
    footer = notes.lines()
    return table + ("\n\n" + "\n".join(footer) if footer else "")


def legend(workloads: Sequence[WorkloadResult]) -> str:
    """What each workload measures, how peers are driven, and how to read the ratios."""
    lines = [
        "flinq/peer is flinq's median over the peer's, measured in the same run: for ops/s",
        "above 1 means flinq is faster; for latency and memory lower is better, so below 1",
        "favours flinq. Targets are the ops/s goals of the original status report.",
        "",
    ]
    for workload in workloads:
        lines.append(f"- {workload['name']}: {workload['description']}")
        for result in workload["results"]:
            if result["note"]:
                lines.append(f"  - {result['name']}: {result['note']}")
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
