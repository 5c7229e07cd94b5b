"""Checking an LMDB data file before LMDB maps it.

LMDB trusts its pages and aborts the process on a damaged one, so a data
file is verified page by page before it is opened for writing, unless it is
known to be as LMDB left it:
- a clean close records the file's size and CRC (its fingerprint); a file
  that still matches needs no full check;
- a writable open records the machine's boot id and the file's identity
  (device and inode) in the session marker. A session that ended without a
  clean close, in the boot that is still running, on this same file, was a
  process crash: LMDB's commits are atomic against the death of the process
  (the page cache keeps every write it made), so the file is a committed
  state and needs no full check either, once. The session that opens on
  that trust records it, so a second crash in a row (which damage could
  cause) is verified; so is a session that ended with a failed commit or
  writer (its marker is removed), a copy of the directory (another inode),
  a store after a restart of the operating system (power loss can tear
  pages), and anywhere no boot id is known.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import zlib
from typing import Any

import lmdb
import lmdb.verify

from flinq.errors import StoreCorruptError
from flinq.lmdbstore.files import DATA_FILE, open_private, write_private

__all__ = [
    "CLEAN_FILE",
    "SESSION_FILE",
    "boot_id",
    "check_before_open",
    "fingerprint",
    "forget_session",
    "mark_clean",
    "verify_data_file",
]

CLEAN_FILE = "flinq.clean"  # size and CRC of data.mdb, written by a clean close
SESSION_FILE = "flinq.session"  # boot id and data file of the last writable open

# Linux's id of the running boot: a new random one at every start.
_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


def check_before_open(directory: str) -> None:
    """Check a store's data file before LMDB maps it for writing
    (StoreCorruptError if it is damaged): verified page by page unless it
    matches the marker of the last clean close or, without that marker,
    the last session's marker says it died with its process in this boot
    (see the module's docstring). The markers are replaced: this session
    will change the file."""
    data = os.path.join(directory, DATA_FILE)
    expected = _take_marker(os.path.join(directory, CLEAN_FILE))
    previous = _take_marker(os.path.join(directory, SESSION_FILE))
    session = _session(data)  # None without a boot id: nothing is trusted, or recorded
    on_trust = False
    if os.path.exists(data) and os.path.getsize(data) > 0:
        if expected is not None:
            trusted = expected == fingerprint(data)
        else:
            trusted = on_trust = session is not None and previous == session
        if not trusted:
            _verify_or_refuse(data)
    if session is not None:
        session["on_trust"] = on_trust
        with contextlib.suppress(OSError):  # without it, the next open verifies
            write_private(os.path.join(directory, SESSION_FILE), json.dumps(session).encode())


def forget_session(directory: str) -> None:
    """The session ended unsoundly (a commit or the writer failed, or
    writes were lost): the next open verifies the file."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(directory, SESSION_FILE))


def _session(data: str) -> dict[str, Any] | None:
    """The session marker of a writable open of data (None without a boot
    id), as a session that made or needed no full check writes it ("on_trust"
    False)."""
    boot = boot_id()
    if boot is None:
        return None
    try:
        st = os.stat(data)
    except OSError:
        return None
    return {"boot_id": boot, "device": st.st_dev, "inode": st.st_ino, "on_trust": False}


def _take_marker(path: str) -> Any:
    """The JSON a marker file holds (None if it is missing or unreadable),
    removing the file."""
    try:
        with builtins.open(open_private(path, create=False)) as f:
            content = json.load(f)
        os.unlink(path)
    except (OSError, ValueError, StoreCorruptError):
        return None
    return content


def _verify_or_refuse(data: str) -> None:
    """StoreCorruptError unless the data file passes the full check."""
    try:
        problems = verify_data_file(data)
    except lmdb.verify.VerifyError as exc:
        raise StoreCorruptError(f"{data} is not a usable LMDB file: {exc}") from exc
    if problems:
        raise StoreCorruptError(f"{data} is damaged: {problems[0]}")


def boot_id() -> str | None:
    """The id of the running boot of the operating system, or None where
    it is not known (anywhere but Linux)."""
    try:
        with builtins.open(_BOOT_ID_FILE) as f:
            return f.read().strip() or None
    except OSError:
        return None


def mark_clean(directory: str) -> None:
    """Record the data file's fingerprint: the next open may skip the full
    check (if this fails, it verifies the file instead)."""
    data = os.path.join(directory, DATA_FILE)
    with contextlib.suppress(OSError):
        write_private(os.path.join(directory, CLEAN_FILE), json.dumps(fingerprint(data)).encode())


def fingerprint(data: str) -> dict[str, int]:
    """Size and CRC-32 of a file, read in 1 MiB blocks."""
    crc = 0
    with builtins.open(data, "rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return {"size": os.path.getsize(data), "crc32": crc}


def verify_data_file(data: str) -> list[str]:
    """What is wrong with the LMDB data file at path data ([] if nothing),
    by py-lmdb's public verifier, which reads the file without handing it
    to LMDB. Raises lmdb.verify.VerifyError when the file cannot be
    verified at all (not an LMDB file, say)."""
    return lmdb.verify.verify(data)  # type: ignore[no-any-return,no-untyped-call]
