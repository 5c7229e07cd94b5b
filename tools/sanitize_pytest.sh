#!/usr/bin/env bash
# Run the Python test suite against an extension built with
# AddressSanitizer + UBSan (FLINQ_SANITIZE=address,undefined), so that the
# C code behind the queues is checked for memory errors and undefined
# behaviour under real Python workloads. The build goes to a temporary copy
# of the package; the working tree's extension is left alone.
#
#   tools/sanitize_pytest.sh [pytest args...]
#
# Leak detection is off: CPython itself keeps memory until exit. Tests that
# measure RSS are deselected: ASan's quarantine holds freed memory on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python=${PYTHON:-python3}
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
[ -f "$asan" ] && [ -f "$ubsan" ] || { echo "sanitizer runtimes not found" >&2; exit 2; }

# A copy of the package without the working tree's extension...
mkdir -p "$work/pkg"
cp -r src/flinq "$work/pkg/flinq"
rm -f "$work/pkg/flinq/"_core.*.so "$work/pkg/flinq/"_core.*.pyd "$work/pkg/flinq/_core.c" \
    "$work/pkg/flinq/"_array.*.so "$work/pkg/flinq/"_array.*.pyd "$work/pkg/flinq/_array.c"
rm -f "$work/pkg/flinq/"_process.*.so "$work/pkg/flinq/"_process.*.pyd "$work/pkg/flinq/_process.c"
rm -f "$work/pkg/flinq/"_segment.*.so "$work/pkg/flinq/"_segment.*.pyd "$work/pkg/flinq/_segment.c"
# ...and the sanitized one built into it.
echo "building the extension with -fsanitize=address,undefined in $work"
FLINQ_SANITIZE=address,undefined "$python" setup.py -q build_ext -b "$work/pkg" -t "$work/tmp" \
    >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
cp -r tests/python "$work/tests"
printf '[pytest]\nmarkers =\n    slow: long-running tests\nfilterwarnings =\n    error\n' \
    >"$work/pytest.ini"

cd "$work"
PYTHONPATH="$work/pkg" \
LD_PRELOAD="$asan $ubsan" \
ASAN_OPTIONS="detect_leaks=0:halt_on_error=1" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "$python" -X faulthandler -m pytest -p no:cacheprovider --capture=sys -m "not slow" \
    -k "not memory_flat and not rss" "$@"
