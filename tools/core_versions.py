#!/usr/bin/env python3
"""The core's speed goals, on every local CPython, in one table.

For each interpreter: install this checkout into a virtual environment of
its own (kept under --venvs, rebuilt with --fresh), run

    flinq bench --only enqueue,dequeue,threads,priority-get -n N --json FILE

and print one row per goal with each version's ratio (flinq's median over
the peer's median, both from that version's run) beside the goal.

    python tools/core_versions.py                  # 3.11, 3.12, 3.13 from pyenv
    python tools/core_versions.py -n 200000 --python /usr/bin/python3.12

Interpreters are found as `pythonX.Y` on PATH or under pyenv's versions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = "enqueue,dequeue,threads,priority-get"

# (label, workload, flinq contender, peer contender, goal as a ratio)
GOALS = [
    ("Queue.put / SimpleQueue.put", "enqueue", "flinq.Queue", "queue.SimpleQueue", 0.8),
    ("Queue.get / SimpleQueue.get", "dequeue", "flinq.Queue", "queue.SimpleQueue", 0.8),
    ("Queue.get / queue.Queue.get", "dequeue", "flinq.Queue", "queue.Queue", 15.0),
    ("1P+2C threads / SimpleQueue", "threads", "flinq.Queue", "queue.SimpleQueue", 1.0),
    (
        "PriorityQueue.get / queue.PriorityQueue.get",
        "priority-get",
        "flinq.PriorityQueue",
        "queue.PriorityQueue",
        10.0,
    ),
]


def find_python(version: str) -> str | None:
    """A working interpreter for X.Y: the newest pyenv install, else on PATH
    (a pyenv shim on PATH fails for versions that are not activated)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [str(p) for p in sorted(root.glob(f"{version}.*/bin/python{version}"))[::-1]]
    candidates.append(shutil.which(f"python{version}") or "")
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


def venv_for(python: str, venvs: Path, fresh: bool) -> Path:
    """A virtual environment for python with this checkout installed."""
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    venv = venvs / f"py{version}"
    if fresh and venv.exists():
        shutil.rmtree(venv)
    bin_python = venv / "bin" / "python"
    if not bin_python.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    print(f"installing the checkout for {version} ...", file=sys.stderr)
    subprocess.run(
        [
            str(bin_python),
            "-m",
            "pip",
            "install",
            "-q",
            "--force-reinstall",
            "--no-deps",
            str(ROOT),
        ],
        check=True,
    )
    subprocess.run([str(bin_python), "-m", "pip", "install", "-q", "lmdb>=3.0"], check=True)
    return bin_python


def medians(report: dict) -> dict[tuple[str, str], float]:
    """(workload, contender) -> median ops/s, from a bench --json file."""
    out = {}
    for workload in report["workloads"]:
        for result in workload["results"]:
            if result["status"] == "ok":
                out[(workload["name"], result["name"])] = result["median"]["ops_per_s"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", default="3.11,3.12,3.13")
    parser.add_argument("--python", action="append", default=[], help="an interpreter to add")
    parser.add_argument("-n", type=int, default=200_000, help="items per repetition")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--venvs", type=Path, default=Path(tempfile.gettempdir()) / "flinq-versions"
    )
    parser.add_argument("--fresh", action="store_true", help="rebuild the environments")
    args = parser.parse_args()

    pythons = [p for p in (find_python(v) for v in args.versions.split(",")) if p]
    pythons += args.python
    columns: list[tuple[str, dict[tuple[str, str], float]]] = []
    for python in pythons:
        bin_python = venv_for(python, args.venvs, args.fresh)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [str(bin_python), "-m", "flinq", "bench", "--only", WORKLOADS]
            command += ["-n", str(args.n), "--repeat", str(args.repeat), "--json", out.name]
            print(" ".join(command[1:]), file=sys.stderr)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            report = json.loads(Path(out.name).read_text())
        label = f"{report['python']['implementation']} {report['python']['version']}"
        columns.append((label, medians(report)))

    width = max(len(g[0]) for g in GOALS)
    header = f"| {'figure':<{width}} | " + " | ".join(c[0] for c in columns) + " | goal |"
    print(header)
    print(
        "|"
        + "-" * (width + 2)
        + "|"
        + "|".join("-" * (len(c[0]) + 2) for c in columns)
        + "|------|"
    )
    for label, workload, mine, peer, goal in GOALS:
        cells = []
        for name, figures in columns:
            a, b = figures.get((workload, mine)), figures.get((workload, peer))
            text = f"{a / b:.2f}x" if a and b else "-"
            if a and b and a / b < goal:
                text += " (below)"
            cells.append(f"{text:>{len(name)}}")
        print(f"| {label:<{width}} | " + " | ".join(cells) + f" | >= {goal:g}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
