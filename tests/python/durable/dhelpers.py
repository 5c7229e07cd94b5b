"""Helpers shared by the durable-store tests (imported as a plain module from this folder)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from typing import Any

from qhelpers import HANG_GUARD, subprocess_env

import flinq

POSIX = os.name == "posix"

# Everything a test hands to flinq.open() unless it says otherwise: quick
# commits keep the suite fast, the default map size keeps files small.
FAST = {"flush_interval": 0.002}


def drain(q: Any) -> list[Any]:
    """Every body get_nowait() returns until the queue reports Empty."""
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except flinq.Empty:
            return out


def reserve_all(q: Any) -> list[flinq.Message]:
    """Reserve every ready message (left unsettled), first first."""
    out = []
    while True:
        try:
            out.append(q.reserve(timeout=0))
        except flinq.Empty:
            return out


def stored(path: os.PathLike[str] | str, name: str, **queue_kwargs: Any) -> list[Any]:
    """The bodies of queue `name` as a fresh open of the store reloads them
    (nothing is consumed: the store is closed without acks)."""
    with flinq.open(path, **FAST) as store:
        q = store.queue(name, **queue_kwargs)
        return [m.body for m in reserve_all(q)]


def stored_messages(path: os.PathLike[str] | str, name: str, **queue_kwargs: Any) -> list[Any]:
    """(id, body, attempts) of every message a fresh open reloads, in delivery order."""
    with flinq.open(path, **FAST) as store:
        q = store.queue(name, **queue_kwargs)
        return [(m.id, m.body, m.attempts) for m in reserve_all(q)]


def script(code: str) -> str:
    return textwrap.dedent(code).lstrip()


def run_script(
    code: str, *args: Any, timeout: float = HANG_GUARD, check_signal: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `code` (dedented) in a fresh interpreter with args as sys.argv[1:]."""
    proc = subprocess.run(
        [sys.executable, "-c", script(code), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
        check=False,
    )
    if check_signal:
        assert proc.returncode >= 0, (
            f"child killed by signal {-proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def popen_script(code: str, *args: Any, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script(code), *map(str, args)],
        env=subprocess_env(),
        text=True,
        **kwargs,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """proc's stdout, after asserting that it exited 0."""
    assert proc.returncode == 0, (
        f"child exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc.stdout


def kill_and_reap(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a child (if still running) and wait for it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    proc.wait(HANG_GUARD)


@contextlib.contextmanager
def forked() -> Iterator[int]:
    """os.fork() without the 3.12+ DeprecationWarning about threads (the store has a writer
    thread; the child only touches flinq and exits with os._exit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    yield pid


def wait_child(pid: int, timeout: float = HANG_GUARD) -> int:
    """The exit status of forked child pid (os.waitstatus_to_exitcode); kills it on a hang."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("forked child hung")
        time.sleep(0.01)
