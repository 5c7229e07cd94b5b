"""The --plot chart: ops/s per workload, flinq beside its peers, log scale,
with each goal (the first status report's target) as a horizontal line over
its workload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flinq.bench.env import optional_module
from flinq.bench.results import WorkloadResult

OPS_KEY = "ops_per_s"
FLINQ_COLOR = "#d62728"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def require_matplotlib() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend."""
    matplotlib = optional_module("matplotlib")
    if matplotlib is None:
        raise PlotUnavailable(
            "--plot needs matplotlib, which is not installed (pip install 'flinq[plot]')"
        )
    matplotlib.use("Agg")
    return optional_module("matplotlib.pyplot")


def plot(workloads: Sequence[WorkloadResult], path: str, title: str) -> int:
    """Draw the chart into path; returns how many workloads it shows."""
    plt = require_matplotlib()
    shown = [
        w
        for w in workloads
        if any(m["key"] == OPS_KEY for m in w["metrics"])
        and any(r["status"] == "ok" for r in w["results"])
    ]
    names: list[str] = []
    for workload in shown:
        for result in workload["results"]:
            if (
                result["status"] == "ok"
                and result["role"] == "peer"
                and result["name"] not in names
            ):
                names.append(result["name"])
    # tab20 without its reds, which are flinq's.
    palette = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (6, 7)]
    colors = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    fig, ax = plt.subplots(figsize=(max(8.0, 0.8 * len(shown) + 4), 6.0))
    labelled: set[str] = set()
    target_labelled = False
    for x, workload in enumerate(shown):
        # One slot per measured contender, plus flinq's slot when it did not
        # run, so that the chart says so where its bar would be.
        slots = [r for r in workload["results"] if r["status"] == "ok" or r["role"] == "flinq"]
        width = 0.8 / max(3, len(slots))
        left = x - width * len(slots) / 2
        for i, result in enumerate(slots):
            middle = left + width * (i + 0.5)
            is_flinq = result["role"] == "flinq"
            if result["status"] != "ok":
                ax.text(
                    middle,
                    0.03,
                    f"flinq {result['status']}",
                    transform=ax.get_xaxis_transform(),
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color=FLINQ_COLOR,
                )
                continue
            label = "flinq" if is_flinq else result["name"]
            ax.bar(
                middle,
                result["median"][OPS_KEY],
                width=width * 0.95,
                color=FLINQ_COLOR if is_flinq else colors[result["name"]],
                edgecolor="black" if is_flinq else None,
                label=None if label in labelled else label,
            )
            labelled.add(label)
        target = workload["target_ops_per_s"]
        if target:
            ax.hlines(
                target,
                x - 0.45,
                x + 0.45,
                colors="black",
                linestyles="dashed",
                linewidth=1.5,
                label=None if target_labelled else "goal (first status report)",
            )
            target_labelled = True
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels([w["name"] for w in shown], rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ops/s (median, log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return len(shown)
