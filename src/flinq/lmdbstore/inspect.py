"""Reading and changing an LMDB store's committed state directly: what
`flinq stats`, `peek`, `purge` and `requeue` do (through the Store's
inspect, peek, purge_queue and move_messages).

Reads see what the owning process has committed, in one read transaction;
writes are one write transaction each, all or nothing.
"""

from __future__ import annotations

import time
from typing import Any

import lmdb

from flinq.codec import (
    fifo_key,
    key_priority,
    key_seq,
    priority_key,
    with_attempts,
)
from flinq.errors import StoreError
from flinq.inspection import (
    QueueTally,
    message_row,
    queue_record,
    require_queue,
    store_report,
)
from flinq.lmdbstore.files import locked_by_another_process
from flinq.lmdbstore.ids import Ids
from flinq.lmdbstore.layout import Layout
from flinq.lmdbstore.status import owner_status
from flinq.settings import QueueSettings

__all__ = ["move", "peek", "purge", "report"]


def report(layout: Layout, path: str) -> dict[str, Any]:
    """Per queue, from its committed state: depth (stored messages: ready,
    in flight, delayed), attempted (delivered at least once and not acked
    yet), expired (TTL passed, not yet retired), the oldest message's
    enqueue time and age, its dead-letter queue and how many messages that
    holds. From the owning process, when one is alive: in_flight (reserved
    or delayed by a nack, as of its last status; 0 when no process owns the
    store, None when one does but has published nothing usable)."""
    now = time.time()
    status = owner_status(path)
    if status is not None:
        owner: dict[str, Any] | None = {
            "pid": status["pid"],
            "status_age_seconds": max(0.0, now - status["written_at"]),
        }
        owned = True
    else:
        owner = None
        owned = locked_by_another_process(path) is not False
    live = status["queues"] if status is not None else {}
    queues = []
    with layout.txn() as txn:
        for name, settings in layout.all_settings(txn).items():
            tally = QueueTally(name, now)
            for raw in txn.cursor(db=layout.queue_db(txn, name)).iternext(keys=False):
                tally.see(bytes(raw))
            if name in live:
                in_flight: int | None = int(live[name].get("in_flight", 0))
            else:
                # An owner's unopened queue has none; without an owner, none.
                in_flight = 0 if status is not None or not owned else None
            dead_letter = settings.dead_letter
            if name in live and live[name].get("dead_letter") is not None:
                dead_letter = live[name]["dead_letter"]
            queues.append(tally.row(settings.priority, in_flight, dead_letter))
    return store_report(path, now, owner, layout.info()["bytes_on_disk"], queues)


def peek(layout: Layout, path: str, name: str, n: int) -> list[dict[str, Any]]:
    """The first n stored messages of queue name, in delivery order: id,
    priority, attempts, enqueued_at, expires_at (None: no TTL), headers,
    body_type (see flinq.inspection.BODY_TYPES) and body (the stored
    bytes, undecoded). UnknownQueueError (a KeyError, from
    flinq.inspection) if there is no such queue."""
    out: list[dict[str, Any]] = []
    with layout.txn() as txn:
        _require(layout, txn, path, name)
        for key, value in txn.cursor(db=layout.queue_db(txn, name)).iternext():
            if len(out) >= n:
                break
            raw = bytes(value)
            record = queue_record(raw, name)
            out.append(message_row(key_seq(bytes(key)), key_priority(bytes(key)), raw, record))
    return out


def _require(layout: Layout, txn: lmdb.Transaction, path: str, name: str) -> QueueSettings:
    """Queue name's settings (see flinq.inspection.require_queue)."""
    return require_queue(layout.settings(txn, name), name, path, lambda: layout.names_in(txn))


def _write(layout: Layout, ids: Ids, change: Any) -> int:
    """change(txn) in one write transaction, with next_seq kept past every
    id taken; a failed attempt changes nothing."""

    def run(txn: lmdb.Transaction) -> int:
        result: int = change(txn)
        layout.put_next_seq(txn, ids.floor())
        return result

    try:
        return layout.write(run)
    except lmdb.TxnFullError:
        raise StoreError("too many messages for one transaction; nothing was changed") from None


def purge(layout: Layout, ids: Ids, path: str, name: str) -> int:
    """Delete every message of queue name (which stays, empty); returns how many."""

    def clear(txn: lmdb.Transaction) -> int:
        _require(layout, txn, path, name)
        db = layout.queue_db(txn, name)
        count = int(txn.stat(db)["entries"])
        txn.drop(db, delete=False)
        return count

    return _write(layout, ids, clear)


def move(layout: Layout, ids: Ids, path: str, source: str, target: str) -> int:
    """Move every message of queue source to the end of queue target, in
    order, all or none; returns how many. Each keeps its body, headers,
    enqueue time and TTL, and its priority if both are priority queues
    (else 0 in a priority target); attempts start again from 0."""
    if source == target:
        raise ValueError("the source and target queues are the same queue")

    def run(txn: lmdb.Transaction) -> int:
        source_priority = _require(layout, txn, path, source).priority
        target_priority = _require(layout, txn, path, target).priority
        source_db = layout.queue_db(txn, source)
        target_db = layout.queue_db(txn, target)
        entries = list(txn.cursor(db=source_db).iternext())
        moved = 0
        for (key, value), seq in zip(entries, ids.take_many(len(entries)), strict=True):
            raw = bytes(value)
            queue_record(raw, source)  # a damaged record fails the move before it commits
            if target_priority:
                p = key_priority(bytes(key)) if source_priority else 0
                new_key = priority_key(p, seq)
            else:
                new_key = fifo_key(seq)
            if not txn.put(new_key, with_attempts(raw, 0), db=target_db, overwrite=False):
                raise StoreError(f"{path}: message key {new_key.hex()} is already used")
            moved += 1
        txn.drop(source_db, delete=False)
        return moved

    return _write(layout, ids, run)
