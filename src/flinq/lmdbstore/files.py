"""The store's directory: claiming it for one writer, and its small files.

A store directory is claimed by one Store at a time: within a process by a
registry of open paths (LMDB allows one environment per file in a
process), across processes by a record lock on LOCK_FILE. Every file flinq
writes there is opened without following symbolic links and created 0600,
and a directory that every user may write to is refused: anyone could plant
links to the owner's files in it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
import threading

from flinq.errors import (
    StoreLockedError,
    StoreNotFoundError,
    StorePermissionError,
)

__all__ = [
    "DATA_FILE",
    "LMDB_LOCK_FILE",
    "LOCK_FILE",
    "PathClaim",
    "check_directory",
    "forget_claims_after_fork",
    "is_temporary",
    "locked_by_another_process",
    "open_private",
    "write_private",
]

LOCK_FILE = "flinq.lock"
DATA_FILE = "data.mdb"
LMDB_LOCK_FILE = "lock.mdb"
_TEMP_PREFIX = ".flinq-"
_TEMP_SUFFIX = ".tmp"

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_open_paths: set[str] = set()
_registry_lock = threading.Lock()


def open_private(path: str, create: bool = True) -> int:
    """A descriptor of path for reading and writing, created 0600 if need
    be, never through a symbolic link (StorePermissionError for one, and
    for a file this process may not open)."""
    flags = os.O_RDWR | _NOFOLLOW | (os.O_CREAT if create else 0)
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        if os.path.islink(path):
            raise StorePermissionError(
                f"{path} is a symbolic link: refusing to write through it"
            ) from exc
        if isinstance(exc, PermissionError):
            raise StorePermissionError(f"cannot open {path}: {exc}") from exc
        raise


def write_private(path: str, data: bytes) -> None:
    """Replace the file at path with data, atomically and 0600 whatever the
    umask: written to a new temporary file (never an existing one, so never
    through a planted link), then renamed over path."""
    fd, temporary = tempfile.mkstemp(
        dir=os.path.dirname(path), prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def is_temporary(name: str) -> bool:
    """True for the name of a file write_private may leave behind in a crash."""
    return name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX)


def check_directory(path: str) -> None:
    """StorePermissionError if every user may write to the directory."""
    mode = os.stat(path).st_mode
    if sys.platform != "win32" and mode & stat.S_IWOTH:
        raise StorePermissionError(
            f"{path} is writable by every user (mode {stat.filemode(mode)}): "
            "refusing to keep a store there; chmod o-w it"
        )


class PathClaim:
    """The claim of one Store on a store directory: exclusive for a writer
    (in this process and, through a record lock, in others), a check that
    no writer of this process has it for a reader."""

    def __init__(self, path: str, readonly: bool) -> None:
        self.path = path
        self._fd = -1
        self._registered = False
        if readonly:
            if not os.path.isdir(path):
                raise StoreNotFoundError(f"{path} is not a flinq store (no such directory)")
            if path in _open_paths:
                raise StoreLockedError(
                    f"{path} is open for writing in this process: use that Store"
                )
            return
        with _registry_lock:
            if path in _open_paths:
                raise StoreLockedError(f"{path} is already open in this process")
            self._fd = _lock(path)
            _open_paths.add(path)
            self._registered = True

    def release(self) -> None:
        """Give the directory up (idempotent)."""
        with _registry_lock:
            if self._fd >= 0:
                os.close(self._fd)  # closing the descriptor drops the record lock
                self._fd = -1
            if self._registered:
                _open_paths.discard(self.path)
                self._registered = False

    def forget(self) -> None:
        """In a forked child: the record lock belongs to the parent."""
        self._fd = -1
        self._registered = False


def _lock(directory: str) -> int:
    """A descriptor holding an exclusive lock on directory's LOCK_FILE
    (POSIX record locks are not inherited by a forked child; Windows locks a byte)."""
    fd = open_private(os.path.join(directory, LOCK_FILE))
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreLockedError(f"{directory} is open for writing in another process") from None
    return fd


def locked_by_another_process(path: str) -> bool | None:
    """True if another process holds the store's write lock; None where this
    cannot be told (no POSIX record locks)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def forget_claims_after_fork() -> None:
    """In a forked child: no path is open here any more."""
    _open_paths.clear()
