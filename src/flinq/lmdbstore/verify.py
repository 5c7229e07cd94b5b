"""Checking an LMDB data file before LMDB maps it.

LMDB trusts its pages and aborts the process on a damaged one, so a store
that was not closed cleanly is verified page by page before it is opened.
A clean close records the file's size and CRC (fingerprint); a file that
still matches needs no full check.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import json
import logging
import operator
import os
import struct
import sys
import zlib
from typing import Any

import lmdb
import lmdb.verify

from flinq.errors import StoreCorruptError
from flinq.lmdbstore.files import DATA_FILE, open_private, write_private

__all__ = ["CLEAN_FILE", "check_before_open", "fingerprint", "mark_clean", "verify_data_file"]

CLEAN_FILE = "flinq.clean"  # size and CRC of data.mdb, written by a clean close

_log = logging.getLogger("flinq")


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
    """lmdb.verify.verify(data), the same findings, faster: see _FastLeafVerifier.
    Raises lmdb.verify.VerifyError when the file cannot be verified at all."""
    if _LeafVerifier is not None:
        try:
            with builtins.open(data, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                return _LeafVerifier(f, size).verify()  # type: ignore[no-any-return]
        except lmdb.verify.VerifyError:
            raise
        except (AttributeError, KeyError, TypeError, IndexError, struct.error):
            # A py-lmdb whose private verifier no longer has the shape the
            # subclass expects (or a bug in the fast path): its public,
            # slower entry point is the authority.
            _log.debug("flinq: fast verify failed; using lmdb.verify.verify", exc_info=True)
    return lmdb.verify.verify(data)  # type: ignore[no-any-return,no-untyped-call]


_LEAF_BOUNDS = struct.Struct("<HH")  # mp_lower, mp_upper
_leaf_nodes: dict[int, struct.Struct] = {}  # key size -> (dsize, flags, ksize, key)


def _leaf_node(ksize: int) -> struct.Struct:
    node = _leaf_nodes.get(ksize)
    if node is None:
        # An LMDB 0.9 leaf node: mn_lo and mn_hi (the data size's halves,
        # read little-endian as one 32-bit number), mn_flags, mn_ksize, key.
        node = _leaf_nodes[ksize] = struct.Struct(f"<IHH{ksize}s")
    return node


_Verifier: Any = getattr(lmdb.verify, "_Verifier", None)
_LeafVerifier: Any = None

if _Verifier is not None and sys.byteorder == "little":

    class _FastLeafVerifier(_Verifier):  # type: ignore[misc]
        """lmdb.verify's verifier with a fast path for the leaf pages that
        make up nearly all of a flinq store: plain nodes (no overflow
        value, no sub-database, no duplicates) with keys of one size, in a
        database ordered bytewise. For such a page it makes the checks the
        per-node walk makes (node, key and value inside the page, keys
        strictly increasing across pages), each over the whole page at once
        in C (struct, map, zip) instead of one Python call per node. A page
        that fails any of them, or is of any other kind, goes through the
        library's own walk, which reports what is wrong in its words; a
        file's findings are the same either way. Little-endian LMDB 0.9
        files only (mp_txnid means 1.0: the library walks those)."""

        def _walk_leaf(self, ctx: dict[str, Any], pgno: int, buf: bytes) -> None:
            if (
                self.eng["has_txnid"]
                or ctx["is_free"]
                or ctx["key_cmp"] is not lmdb.verify._cmp_lexical
                or ctx["db"].flags & lmdb.verify.MDB_DUPSORT
            ):
                super()._walk_leaf(ctx, pgno, buf)
                return
            hdrsz = self.hdrsz
            psize = self.psize
            lower, upper = _LEAF_BOUNDS.unpack_from(buf, hdrsz - 4)
            n = (lower - hdrsz) >> 1
            if lower < hdrsz or upper > psize or lower > upper:
                super()._walk_leaf(ctx, pgno, buf)
                return
            if n == 0:
                return
            offsets = memoryview(buf)[hdrsz : hdrsz + 2 * n].cast("H").tolist()
            lowest, highest = min(offsets), max(offsets)
            if lowest < upper or highest + 8 > psize:
                super()._walk_leaf(ctx, pgno, buf)
                return
            ksize = int.from_bytes(buf[offsets[0] + 6 : offsets[0] + 8], "little")
            if highest + 8 + ksize > psize:
                super()._walk_leaf(ctx, pgno, buf)
                return
            node = _leaf_node(ksize)
            nodes = map(node.unpack_from, itertools.repeat(buf), offsets)
            dsizes, flags, ksizes, keys = zip(*nodes, strict=True)
            last = ctx["last_key"]
            if (
                any(flags)
                or ksizes.count(ksize) != n
                or max(map(operator.add, offsets, dsizes)) + 8 + ksize > psize
                or (last is not None and keys[0] <= last)
                or not all(map(operator.lt, keys, itertools.islice(keys, 1, None)))
            ):
                super()._walk_leaf(ctx, pgno, buf)
                return
            ctx["last_key"] = keys[-1]
            ctx["entries"] += n

    _LeafVerifier = _FastLeafVerifier
