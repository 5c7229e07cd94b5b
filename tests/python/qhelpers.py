"""Helpers shared by the flinq test modules (imported as a plain module from this folder)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import flinq

PY313 = sys.version_info >= (3, 13)

# Classes with maxsize / task_done / join / shutdown.
BOUNDED_CLASSES = [flinq.Queue, flinq.LifoQueue, flinq.PriorityQueue]
ALL_CLASSES = [*BOUNDED_CLASSES, flinq.SimpleQueue]

# Generous limit for anything that must finish: a hang guard, never a speed check.
HANG_GUARD = 60.0


def wait_until(
    predicate: Callable[[], Any], timeout: float = HANG_GUARD, interval: float = 0.002
) -> bool:
    """Poll predicate until it is true; False if it never was within timeout (a hang guard)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def cls_id(cls: type) -> str:
    return cls.__name__


class Worker:
    """Run fn(*args, **kwargs) in a daemon thread, keeping its result or exception."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.result: Any = None
        self.exc: BaseException | None = None
        self.started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.started.set()
        try:
            self.result = fn(*args, **kwargs)
        except BaseException as exc:  # kept, and re-raised by value()
            self.exc = exc

    def start(self) -> Worker:
        self._thread.start()
        assert self.started.wait(HANG_GUARD)
        return self

    def join(self, timeout: float = HANG_GUARD) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def value(self, timeout: float = HANG_GUARD) -> Any:
        """The call's return value; re-raises its exception; fails on a hang."""
        assert self.join(timeout), "worker thread did not finish (hang?)"
        if self.exc is not None:
            raise self.exc
        return self.result


def spawn(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Worker:
    """Start fn(*args, **kwargs) in a daemon thread."""
    return Worker(fn, *args, **kwargs).start()


def still_blocked(*workers: Worker, settle: float = 0.15) -> bool:
    """True when every worker is still running after `settle` seconds (so it blocks)."""
    time.sleep(settle)
    return all(w.is_alive() for w in workers)


def subprocess_env() -> dict[str, str]:
    """Environment for a child interpreter that imports the same flinq as this process."""
    env = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(flinq.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    env.pop("PYTHONWARNINGS", None)
    return env


def run_python(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter importing the same flinq."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
        check=False,
    )


def drain(q: Any) -> list[Any]:
    """Everything get_nowait() returns until the queue reports Empty."""
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except flinq.Empty:
            return out


@contextlib.contextmanager
def vanishing_class() -> Iterator[type]:
    """A class whose instances pickle while the block runs, and cannot be
    unpickled after it (its module is gone, as in a program that no longer
    defines it)."""
    module = types.ModuleType("flinq_test_gone")

    class Gone:
        pass

    Gone.__module__ = module.__name__
    Gone.__qualname__ = "Gone"
    module.Gone = Gone  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        yield Gone
    finally:
        del sys.modules[module.__name__]
