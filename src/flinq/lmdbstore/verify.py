"""Checking an LMDB data file before LMDB maps it.

LMDB trusts its pages and aborts the process on a damaged one, so a store
that was not closed cleanly is verified page by page before it is opened.
A clean close records the file's size and CRC (fingerprint); a file that
still matches needs no full check.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import zlib

import lmdb
import lmdb.verify

from flinq.errors import StoreCorruptError
from flinq.lmdbstore.files import DATA_FILE, open_private, write_private

__all__ = ["CLEAN_FILE", "check_before_open", "fingerprint", "mark_clean", "verify_data_file"]

CLEAN_FILE = "flinq.clean"  # size and CRC of data.mdb, written by a clean close


def check_before_open(directory: str) -> None:
    """Check a store's data file before LMDB maps it (StoreCorruptError if
    it is damaged). A file whose size and CRC match the marker written by
    the last clean close is the file that close left, and needs no full
    check; any other (after a crash, or changed since) is verified page by
    page. The marker is removed either way: this session will change the
    file."""
    data = os.path.join(directory, DATA_FILE)
    marker = os.path.join(directory, CLEAN_FILE)
    try:
        with builtins.open(open_private(marker, create=False)) as f:
            expected = json.load(f)
        os.unlink(marker)
    except (OSError, ValueError, StoreCorruptError):
        expected = None
    if not os.path.exists(data) or os.path.getsize(data) == 0:
        return
    if expected is not None and expected == fingerprint(data):
        return
    try:
        problems = verify_data_file(data)
    except lmdb.verify.VerifyError as exc:
        raise StoreCorruptError(f"{data} is not a usable LMDB file: {exc}") from exc
    if problems:
        raise StoreCorruptError(f"{data} is damaged: {problems[0]}")


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
