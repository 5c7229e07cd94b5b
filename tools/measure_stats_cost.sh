#!/usr/bin/env bash
# tools/measure_stats_cost.sh [BASE_REV]: what keeping the queue metrics
# (include/flinq/metrics.h) costs put() and get(), as instructions per call
# counted by callgrind: deterministic, so a busy shared machine does not blur
# it. BASE_REV (default: the commit before metrics.h came in) is built in a
# temporary worktree and compared with this checkout's in-place build.
#
# Each figure is (instructions for 2R rounds - for R rounds) / (R * 1000):
# the steady-state cost of one call from a Python loop, interpreter included.
# A round puts 1000 items, then takes them back with get() (put+get) or one
# get_many (put alone, with get_many's small share).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
base_rev="${1:-$(git -C "$root" log --format=%H -1 -- include/flinq/metrics.h | xargs -I{} git -C "$root" rev-parse '{}^')}"
python_bin="$(python3 -c 'import sys; print(sys.executable)')"
python_bin="$(readlink -f "$python_bin")"  # not a shim script: callgrind must see Python itself
work="$(mktemp -d)"
trap 'git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git -C "$root" worktree add -q "$work/base" "$base_rev"
(cd "$work/base" && "$python_bin" setup.py -q build_ext --inplace >/dev/null 2>&1)

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
    PYTHONHASHSEED=0 PYTHONPATH="$1" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$python_bin" "$work/calls.py" "$2" "$3" "$4" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

rounds=300
echo "base: $base_rev; after: $(git -C "$root" rev-parse HEAD) (+ working tree); $("$python_bin" --version)"
printf '%-14s %-4s %8s %8s %7s\n' queue call before after change
for kind in Queue SimpleQueue PriorityQueue; do
    declare -A per_call=()
    for side in before after; do
        src="$root/src"; [ "$side" = before ] && src="$work/base/src"
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
