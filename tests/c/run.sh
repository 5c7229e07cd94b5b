#!/usr/bin/env bash
# tests/c/run.sh: build and run flinq's C header tests.
#
#   tests/c/run.sh [mode ...]     mode: plain | tsan | asan | c11   (default: tsan asan c11)
#
#   plain  no sanitizer
#   tsan   -fsanitize=thread (+ -Wno-tsan: GCC warns that atomic_thread_fence,
#          used by flq_fence_seq_cst in park.h, is not modelled by TSan; with
#          -Werror that warning would stop the build. The fence still executes;
#          TSan just cannot reason about it.)
#   asan   -fsanitize=address,undefined -fno-sanitize-recover=all (LeakSanitizer on)
#   c11    as asan, with atomic.h's C11 <stdatomic.h> backend (FLQ_ATOMICS_C11)
#          instead of the GCC builtins, so that backend is compiled and run too
#
# Every build: gcc -std=c11 -Wall -Wextra -Werror -O1 -g -pthread -fno-strict-aliasing -I include
#
# Item count of the concurrent ring/chain phases: FLINQ_C_ITEMS (default
# 10,000,000 in every mode, TSan included: measured ~13 s per test under TSan
# on a 2-core machine). Set FLINQ_C_ITEMS to scale it for a quick run.
#
# A test fails when its exit status is non-zero (failed CHECK, sanitizer
# report, crash, timeout) or its output holds a sanitizer report. The last
# line is "N passed, M failed" over test binaries x modes; the exit status is
# non-zero when M > 0.
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root" || exit 2

CC="${CC:-gcc}"
# -fno-strict-aliasing as in setup.py: the headers store through void ** casts.
BASE_FLAGS=(-std=c11 -Wall -Wextra -Werror -O1 -g -pthread -fno-strict-aliasing -I include)
TESTS=(test_ring test_chain test_heap test_buckets test_park test_metrics test_records test_shmrecords test_shmring)
PER_TEST_TIMEOUT="${FLINQ_C_TIMEOUT:-600}" # seconds, a backstop for hangs

# Sanitizer runtime options: stop at the first report, non-zero exit.
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 exitcode=66 second_deadlock_stack=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1 halt_on_error=1 exitcode=23}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1 halt_on_error=1}"

mode_flags() {
    case "$1" in
        plain) echo "" ;;
        tsan) echo "-fsanitize=thread -Wno-tsan" ;;
        asan) echo "-fsanitize=address,undefined -fno-sanitize-recover=all" ;;
        c11) echo "-fsanitize=address,undefined -fno-sanitize-recover=all -DFLQ_ATOMICS_C11" ;;
        *) return 1 ;;
    esac
}

if [ "$#" -eq 0 ]; then
    set -- tsan asan c11
fi
for mode in "$@"; do
    if ! mode_flags "$mode" >/dev/null; then
        echo "usage: $0 [plain|tsan|asan|c11 ...]" >&2
        exit 2
    fi
done

if command -v timeout >/dev/null 2>&1; then
    run_with_timeout=(timeout "$PER_TEST_TIMEOUT")
else
    run_with_timeout=()
fi

passed=0
failed=0
failures=()
summary=()

for mode in "$@"; do
    read -r -a extra <<<"$(mode_flags "$mode")"
    out="$here/build/$mode"
    mkdir -p "$out"
    echo "=== mode $mode: $CC ${BASE_FLAGS[*]} ${extra[*]:-}"
    mode_start=$(date +%s.%N)
    for t in "${TESTS[@]}"; do
        bin="$out/$t"
        log="$out/$t.log"
        t_start=$(date +%s.%N)
        if ! "$CC" "${BASE_FLAGS[@]}" ${extra[@]+"${extra[@]}"} "$here/$t.c" -o "$bin" >"$log" 2>&1; then
            cat "$log"
            echo "--- $mode/$t: BUILD FAILED"
            failed=$((failed + 1))
            failures+=("$mode/$t (build)")
            continue
        fi
        "${run_with_timeout[@]}" "$bin" 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        t_end=$(date +%s.%N)
        secs=$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }')
        reason=""
        if [ "$rc" -ne 0 ]; then
            reason="exit status $rc"
            [ "$rc" -eq 124 ] && reason="timed out after ${PER_TEST_TIMEOUT}s"
        fi
        if grep -qE 'WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: (Thread|Address|UndefinedBehavior)Sanitizer' "$log"; then
            reason="${reason:+$reason, }sanitizer report"
        fi
        if [ -z "$reason" ]; then
            echo "--- $mode/$t: PASS (${secs}s)"
            passed=$((passed + 1))
        else
            echo "--- $mode/$t: FAIL ($reason, ${secs}s; log: $log)"
            failed=$((failed + 1))
            failures+=("$mode/$t ($reason)")
        fi
    done
    mode_end=$(date +%s.%N)
    msecs=$(awk -v a="$mode_start" -v b="$mode_end" 'BEGIN { printf "%.1f", b - a }')
    summary+=("$mode: ${msecs}s")
    echo "=== mode $mode done in ${msecs}s (build + run)"
done

echo
echo "runtimes: ${summary[*]}"
for f in ${failures[@]+"${failures[@]}"}; do
    echo "FAILED: $f"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
