"""The status file: what only the owning process knows (messages in
flight), for readers such as `flinq stats` in other processes.

JSON, replaced (atomically, 0600) when something changed, at most every
STATUS_INTERVAL seconds, while the store is open for writing; removed at
close. Advisory: never read back by a Store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from flinq.lmdbstore.files import locked_by_another_process, write_private

__all__ = ["STATUS_FILE", "STATUS_INTERVAL", "StatusFile", "owner_status"]

STATUS_FILE = "flinq.status.json"
STATUS_INTERVAL = 1.0

_log = logging.getLogger("flinq")


class StatusFile:
    """The status file of one store directory, as its owner writes it."""

    def __init__(self, directory: str, pid: int) -> None:
        self.path = os.path.join(directory, STATUS_FILE)
        self.pid = pid
        self._failed = False
        # Taken and written as one step: a snapshot taken earlier never
        # replaces a later one (the writer and flush() both publish).
        self._lock = threading.Lock()

    def publish(self, snapshot: Callable[[], dict[str, dict[str, Any]]]) -> None:
        """Replace the file with snapshot() ({queue name: {in_flight,
        dead_letter}}); a failure is logged once, never raised (a full disk
        must not stop the writer)."""
        with self._lock:
            status = {"pid": self.pid, "written_at": time.time(), "queues": snapshot()}
            try:
                write_private(self.path, json.dumps(status).encode())
            except OSError as exc:
                if not self._failed:
                    _log.warning("flinq: cannot write %s: %s", self.path, exc)
                self._failed = True
            else:
                self._failed = False

    def remove(self) -> None:
        """Remove the file (at close)."""
        with contextlib.suppress(OSError):
            os.remove(self.path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    return True


def owner_status(directory: str) -> dict[str, Any] | None:
    """What the process that owns the store published (pid, written_at,
    queues: {name: {in_flight, dead_letter}}), if that process is alive and
    still holds the store; None otherwise. An owner rewrites the file only
    when something changed, so its age says nothing about its truth."""
    try:
        with open(os.path.join(directory, STATUS_FILE)) as f:
            status: dict[str, Any] = json.load(f)
        pid, written_at = int(status["pid"]), float(status["written_at"])
        status["queues"] = dict(status["queues"])
        status["written_at"] = written_at
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _pid_alive(pid):
        return None
    if locked_by_another_process(directory) is False:
        return None  # left by an owner that died; its pid is someone else's now
    return status
