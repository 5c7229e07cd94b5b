"""``flinq bench``: measure flinq against its peers and print the results."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from typing import Any, Final

import flinq
from flinq.bench.env import Env
from flinq.bench.machine import machine_info, package_versions, python_info, source_info
from flinq.bench.plot import PlotUnavailable, plot, require_matplotlib
from flinq.bench.progress import Progress
from flinq.bench.report import (
    LEGEND,
    compare_table,
    details,
    header_lines,
    results_table,
    wrap,
)
from flinq.bench.results import SCHEMA, Report, ReportError, load_report, save_report
from flinq.bench.runner import run_all
from flinq.bench.workloads import workload_names, workloads
from flinq.cli import CommandError
from flinq.redisstore.urls import redact

DEFAULT_N: Final = 500_000
DEFAULT_REPEAT: Final = 5
QUICK_N: Final = 20_000
QUICK_REPEAT: Final = 3
MIN_REPEAT: Final = 3

DESCRIPTION = """\
Measure flinq's queues against the stdlib and other queue libraries on this
machine and print one table per kind of figure (throughput, latency, memory,
durable, between processes): per workload, flinq's figure and every peer
measured in the same run. Every figure is the median of the repetitions.
Peers that are not installed (pip install 'flinq[bench]') or cannot run are
listed as skipped with the reason; the Redis rows need a redis-server on PATH.
Progress goes to stderr (a bar on a terminal).

Run time on a 2-core machine: about 4 to 6 minutes by default (262 to
332 s measured at load 0.8 to 1, every peer and Redis included), about 15 s with --quick
(measured: 13 s at load 2.5; 50 s when other work kept the load at 5 to 7).
--only runs less.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _repeat_count(text: str) -> int:
    value = _positive_int(text)
    if value < MIN_REPEAT:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_REPEAT}, got {value}")
    return value


def _workload_list(text: str) -> list[str]:
    known = workload_names()
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected workload names separated by commas")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown workload {', '.join(unknown)} (choose from {', '.join(known)})"
        )
    return names


def register(subparsers: Any) -> None:
    """Add the bench subcommand to the flinq command's subparsers."""
    epilog = "workloads: " + ", ".join(workload_names())
    parser = subparsers.add_parser(
        "bench",
        help="benchmark flinq against its peers",
        description=DESCRIPTION,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: n={QUICK_N:,}, {QUICK_REPEAT} repetitions (about 15 s)",
    )
    parser.add_argument(
        "--only",
        action="append",
        type=_workload_list,
        metavar="WORKLOAD[,...]",
        help="run only these workloads (repeatable)",
    )
    parser.add_argument(
        "-n",
        type=_positive_int,
        metavar="N",
        help=f"items per repetition (default {DEFAULT_N:,}; slow peers and the latency "
        "workload use a fixed fraction of it)",
    )
    parser.add_argument(
        "--repeat",
        type=_repeat_count,
        metavar="R",
        help=f"repetitions, at least {MIN_REPEAT} (default {DEFAULT_REPEAT}); "
        "every figure is their median",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print what each workload measures, how peers are driven, and the goals",
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="write machine, versions, every repetition's figure, medians and skips as JSON",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw ops/s per workload, flinq vs peers, on a log scale (needs matplotlib)",
    )
    parser.add_argument(
        "--compare", metavar="OLD.json", help="print each figure's change against an older --json"
    )
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="use this Redis server instead of starting a private redis-server "
        "(exit status 1 if it cannot be reached)",
    )
    parser.set_defaults(run=run, prog=parser.prog)


def _check_output(path: str, option: str) -> None:
    """Fail early if path cannot be written later."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"{option}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"{option}: {path} is a directory")


def run(args: argparse.Namespace) -> int:
    """Run `flinq bench` with parsed arguments; returns the exit status."""
    if args.plot:
        _check_output(args.plot, "--plot")
        try:
            require_matplotlib()
        except PlotUnavailable as exc:
            raise CommandError(str(exc)) from None
    if args.json:
        _check_output(args.json, "--json")
    old: Report | None = None
    if args.compare:
        try:
            old = load_report(args.compare)
        except ReportError as exc:
            raise CommandError(f"--compare: {exc}") from None

    chosen = {name for group in args.only for name in group} if args.only else None
    selected = [w for name, w in workloads().items() if chosen is None or name in chosen]
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    settings: dict[str, Any] = {
        "flinq_version": flinq.__version__,
        "flinq_source": source_info(os.path.dirname(os.path.abspath(flinq.__file__))),
        "n": n,
        "repeat": repeat,
        "quick": bool(args.quick),
        "only": [w.name for w in selected] if chosen is not None else None,
        "redis_url": redact(args.redis_url) if args.redis_url else None,
    }
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    with Env(redis_url=args.redis_url) as env:
        if args.redis_url:
            unreachable = env.redis_unavailable()
            if unreachable is not None:
                print(f"{args.prog}: error: {unreachable}", file=sys.stderr)
                return 1
        machine = machine_info(env.root)
        python = python_info()
        versions = package_versions()
        print("\n".join(header_lines(machine, python, versions, settings)), flush=True)
        progress = Progress()
        try:
            results, skipped, elapsed = run_all(
                selected, n=n, repeat=repeat, env=env, progress=progress
            )
        finally:
            progress.finish()
        versions["redis-server"] = env.redis_server_version
        settings["redis"] = env.redis_description or None
    report = Report(
        schema=SCHEMA,
        created=created,
        command=["flinq", *args.argv],
        machine=machine,
        python=python,
        versions=versions,
        settings=settings,
        workloads=results,
        skipped=skipped,
        elapsed_seconds=round(elapsed, 3),
    )
    print()
    print(results_table(results))
    print()
    print(LEGEND)
    if args.verbose:
        print()
        print(details(results))
    else:
        print("What each row measures: --verbose; every repetition's figure: --json FILE.")
    if settings["redis"]:
        print()
        print("\n".join(wrap(f"Redis: {settings['redis']}", indent=7)))
    print(f"\nMeasured in {elapsed:.1f} s.")
    if args.json:
        save_report(report, args.json)
        print(f"Wrote {args.json}")
    if args.plot:
        title = f"flinq {flinq.__version__} bench, Python {python['version']}, {machine['cpu']}"
        plot(results, args.plot, title)
        print(f"Wrote {args.plot}")
    if old is not None:
        print()
        print(compare_table(results, settings, old, args.compare))
    failed = [
        f"{w['name']}: {r['name']}"
        for w in results
        for r in w["results"]
        if r["role"] == "flinq" and r["status"] == "error"
    ]
    if failed:
        print(f"flinq bench: error: flinq failed in {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0
