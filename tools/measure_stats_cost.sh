#!/usr/bin/env bash
# tools/measure_stats_cost.sh: what keeping the queue metrics
# (include/flinq/metrics.h) costs put() and get(). This checkout is built
# twice into temporary folders, with the metrics compiled in and compiled out
# (FLINQ_METRICS=0), and the two builds are compared:
#
# 1. instructions per call counted by callgrind: deterministic, so a busy
#    shared machine does not blur it. Each figure is (instructions for 2R
#    rounds - for R rounds) / (R * 1000): the steady-state cost of one call
#    from a Python loop, interpreter included. A round puts 1000 items, then
#    takes them back with get() (put+get) or one get_many (put alone, with
#    get_many's small share).
# 2. wall-clock time: 1M puts, then 1M gets, each build in its own process,
#    alternating, 7 times; medians.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_python="$(python3 -c 'import sys; print(sys.executable)')"  # the active environment's
python_bin="$(readlink -f "$build_python")"  # not a shim script: callgrind must see Python itself
# ...which then needs the environment's packages (lmdb) on its path.
site_packages="$("$build_python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for side in before after; do  # before: metrics compiled out; after: as shipped
    mkdir -p "$work/$side/src"
    cp -r "$root/src/flinq" "$work/$side/src/flinq"
    rm -f "$work/$side/src/flinq/"_core.*.so "$work/$side/src/flinq/_core.c"
    metrics=1; [ "$side" = before ] && metrics=0
    (cd "$root" && FLINQ_METRICS=$metrics "$build_python" setup.py -q build_ext \
        -b "$work/$side/src" -t "$work/$side/tmp" >"$work/$side/build.log" 2>&1) \
        || { cat "$work/$side/build.log"; exit 1; }
done

cat >"$work/calls.py" <<'PY'
import sys
import flinq
mode, rounds, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
q = {"Queue": flinq.Queue, "SimpleQueue": flinq.SimpleQueue, "PriorityQueue": flinq.PriorityQueue}[kind]()
items = [b"x" * 64] * 1000
put, get, taken = q.put, q.get, range(1000)
for _ in range(rounds):
    if kind == "PriorityQueue":
        for item in items:
            put(item, priority=3)
    else:
        for item in items:
            put(item)
    if mode == "get":
        for _ in taken:
            get()
    else:
        q.get_many(1000)
PY

instructions() {  # src-dir mode rounds kind
    PYTHONHASHSEED=0 PYTHONPATH="$1:$site_packages" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$python_bin" "$work/calls.py" "$2" "$3" "$4" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

rounds=300
echo "before: metrics compiled out; after: compiled in; $(git -C "$root" rev-parse --short HEAD) (+ working tree); $("$python_bin" --version)"
printf '%-14s %-4s %8s %8s %7s\n' queue call before after change
for kind in Queue SimpleQueue PriorityQueue; do
    declare -A per_call=()
    for side in before after; do
        src="$work/$side/src"
        for mode in put get; do
            a=$(instructions "$src" "$mode" "$rounds" "$kind")
            b=$(instructions "$src" "$mode" $((2 * rounds)) "$kind")
            per_call[$side-$mode]=$(( (b - a) / (rounds * 1000) ))
        done
        # get mode ran put + get; take the put share out
        per_call[$side-get]=$(( per_call[$side-get] - per_call[$side-put] ))
    done
    for call in put get; do
        b=${per_call[before-$call]}; a=${per_call[after-$call]}
        printf '%-14s %-4s %8d %8d %+6.1f%%\n' "$kind" "$call" "$b" "$a" "$(echo "scale=4; ($a - $b) * 100 / $b" | bc)"
    done
done

cat >"$work/timed.py" <<'PY'
import sys, time
import flinq
N = 1_000_000
ITEMS = [b"x" * 64] * N


def rates(kind):
    q = getattr(flinq, kind)()
    put, get, items = q.put, q.get, ITEMS  # locals: the loops below are the calls
    t0 = time.perf_counter()
    if kind == "PriorityQueue":
        for item in items:
            put(item, priority=3)
    else:
        for item in items:
            put(item)
    t1 = time.perf_counter()
    for _ in range(N):
        get()
    t2 = time.perf_counter()
    return N / (t1 - t0), N / (t2 - t1)


print(repr({kind: rates(kind) for kind in ("Queue", "SimpleQueue", "PriorityQueue")}))
PY

"$python_bin" - "$work" "$site_packages" "$python_bin" <<'PY'
import ast, os, statistics, subprocess, sys
work, site_packages, python = sys.argv[1:]
runs = {"before": [], "after": []}
for _ in range(7):
    for side in ("before", "after"):
        src = f"{work}/{side}/src"
        env = dict(os.environ, PYTHONPATH=f"{src}:{site_packages}")
        done = subprocess.run([python, f"{work}/timed.py"], env=env, capture_output=True,
                              text=True, check=True, cwd=work)
        runs[side].append(ast.literal_eval(done.stdout.strip()))
print()
print(f"{'queue':14s} {'call':4s} {'before/s':>10s} {'after/s':>10s} {'change':>7s}  (wall clock, medians of 7)")
for kind in ("Queue", "SimpleQueue", "PriorityQueue"):
    for index, call in enumerate(("put", "get")):
        b = statistics.median(r[kind][index] for r in runs["before"])
        a = statistics.median(r[kind][index] for r in runs["after"])
        print(f"{kind:14s} {call:4s} {b / 1e6:9.2f}M {a / 1e6:9.2f}M {100 * (a - b) / b:+6.1f}%")
PY
