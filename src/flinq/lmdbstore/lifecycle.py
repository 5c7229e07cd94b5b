"""Stores across fork() and interpreter exit.

fork() copies only the thread that calls it. Holding every open store's
environment lock across the fork means no transaction is half done in the
child's copy, so the child can close its copy of each environment (and
open the store again) without touching the parent's. Stores still open at
exit are closed before the interpreter joins threads and finalizes: a
writer thread that needs the GIL during finalization would hang the exit.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from typing import Protocol

from flinq.errors import StoreError
from flinq.lmdbstore.files import forget_claims_after_fork

__all__ = ["closed", "open_stores", "opened"]


class Tracked(Protocol):
    """What this module needs of a store."""

    @property
    def fork_lock(self) -> threading.RLock: ...

    def after_fork_in_child(self) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


_open: weakref.WeakSet[Tracked] = weakref.WeakSet()
_forking: list[Tracked] = []


def opened(store: Tracked) -> None:
    """Track store from now on."""
    _open.add(store)


def closed(store: Tracked) -> None:
    """Stop tracking store."""
    _open.discard(store)


def open_stores() -> list[Tracked]:
    """The stores open now (a copy: stores opening meanwhile do not disturb it)."""
    while True:
        try:
            return list(_open)
        except RuntimeError:  # the set changed size during iteration
            continue


def _before_fork() -> None:
    _forking[:] = open_stores()
    for store in _forking:
        store.fork_lock.acquire()


def _after_fork_in_parent() -> None:
    for store in _forking:
        store.fork_lock.release()
    _forking.clear()


def _after_fork_in_child() -> None:
    forget_claims_after_fork()
    for store in _forking:
        store.after_fork_in_child()
        store.fork_lock.release()
    _forking.clear()


def _close_all_at_exit() -> None:
    for store in open_stores():
        try:
            store.close(timeout=30.0)
        except StoreError as exc:
            print(f"flinq: {exc}", file=sys.stderr)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )

_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:
    _register_atexit(_close_all_at_exit)
else:  # pragma: no cover
    atexit.register(_close_all_at_exit)
