"""flinq.open(path_or_url): which backend holds a store, by the URL's scheme.

A plain path (or a file:// URL) is an LMDB store on this machine;
redis://, rediss:// and unix:// URLs are Redis stores (flinq.redisstore,
which needs redis-py: pip install "flinq[redis]"). A backend for another
scheme registers itself with register(); flinq.open then hands it the URL
and the keyword options. See flinq.protocols for what a backend implements.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from flinq.protocols import DurableStore

__all__ = ["open", "open_stores", "register", "schemes"]

Opener = Callable[..., DurableStore]

_lock = threading.Lock()
_openers: dict[str, Opener] = {}
_listers: dict[str, Callable[[], Iterable[DurableStore]]] = {}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def register(
    scheme: str, opener: Opener, open_stores: Callable[[], Iterable[DurableStore]]
) -> None:
    """Make flinq.open("scheme://...", **options) call opener(url, **options);
    open_stores() lists the backend's open stores (for flinq.metrics)."""
    with _lock:
        _openers[scheme.lower()] = opener
        _listers[scheme.lower()] = open_stores


def schemes() -> list[str]:
    """The URL schemes flinq.open knows, sorted."""
    with _lock:
        return sorted(_openers)


def _lmdb(target: str, **options: Any) -> DurableStore:
    from flinq.lmdbstore import Store

    return Store(target, **options)


def _lmdb_stores() -> list[DurableStore]:
    from flinq.lmdbstore import open_stores

    return list(open_stores())


def _redis(target: str, **options: Any) -> DurableStore:
    try:
        from flinq.redisstore.store import RedisStore
    except ImportError as exc:
        scheme = target.partition("://")[0]
        raise ImportError(
            f"{scheme}:// stores need redis-py: pip install 'flinq[redis]' ({exc})"
        ) from exc
    return RedisStore(target, **options)


def _redis_stores() -> list[DurableStore]:
    # Only when the backend was loaded: listing must not import redis-py.
    module = sys.modules.get("flinq.redisstore.store")
    return [] if module is None else list(module.open_stores())


def open(target: str | os.PathLike[str], **options: Any) -> DurableStore:
    """The store at target, opened (or created) by its backend: a path or
    file:// URL is an LMDB store (see flinq.Store for the options); another
    scheme needs its backend registered (ValueError otherwise)."""
    if not isinstance(target, str):
        return _lmdb(os.fspath(target), **options)
    match = _URL.match(target)
    if match is None:
        return _lmdb(target, **options)
    scheme = match.group(1).lower()
    if scheme == "file":
        parts = urlsplit(target)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"a file:// URL names this machine's files, not {parts.netloc!r}")
        return _lmdb(unquote(parts.path), **options)
    with _lock:
        opener = _openers.get(scheme)
    if opener is None:
        known = ", ".join(["a path", "file://", *(f"{s}://" for s in schemes())])
        raise ValueError(f"no flinq backend for {scheme}:// URLs (known: {known})")
    return opener(target, **options)


def open_stores() -> list[DurableStore]:
    """Every store open in this process, of every backend."""
    with _lock:
        listers = [_lmdb_stores, *_listers.values()]
    return [store for lister in listers for store in lister()]


for _scheme in ("redis", "rediss", "unix"):
    register(_scheme, _redis, _redis_stores)
