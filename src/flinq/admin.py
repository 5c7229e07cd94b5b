"""``flinq stats``, ``peek``, ``purge`` and ``requeue``: administer a durable store.

stats and peek open the store read-only, so they work while another process
owns it; they see what that process has committed, not what is still in its
pending log. Messages in flight live only in the owner's memory: the owner
publishes their count every second in its status file (store.STATUS_FILE),
which stats reads while the owner is alive.
purge and requeue take the store's write lock, so they refuse a store that
another process has open; each changes the store in one LMDB transaction,
all or nothing.

Exit status: 0 on success; 1 when the store cannot be read or changed
(locked, damaged, written by a newer flinq) or purge is not confirmed; 2 for
a usage error, including a path that is not a flinq store and an unknown
queue.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import lmdb

from flinq.cli import CommandError
from flinq.codec import (
    TAG_BYTEARRAY,
    TAG_BYTES,
    TAG_SERIALIZED,
    TAG_STR,
    Record,
    Serializer,
    decode_body,
    decode_record,
    fifo_key,
    key_priority,
    key_seq,
    priority_key,
    resolve_serializer,
    with_attempts,
)
from flinq.errors import StoreCorruptError, StoreError
from flinq.store import STATUS_FILE, STATUS_INTERVAL, Store

__all__ = [
    "AdminError",
    "open_for_writing",
    "open_readonly",
    "peek",
    "purge",
    "queue_depth",
    "register",
    "requeue",
    "stats",
]

DEFAULT_PEEK: Final = 10
DEFAULT_WIDTH: Final = 60
_DATA_FILE: Final = "data.mdb"
_EXIT_FAILED: Final = 1
_BODY_TYPES: Final = {
    TAG_BYTES: "bytes",
    TAG_BYTEARRAY: "bytearray",
    TAG_STR: "str",
    TAG_SERIALIZED: "serialized",
}
_RAW: Final = resolve_serializer("raw")  # bodies stored raw need no serializer

Command = Callable[[argparse.Namespace], int]


class AdminError(Exception):
    """An operation that could not be done, or was not confirmed (exit status 1)."""


# ---- reading -------------------------------------------------------------------------


def _check_store_path(path: str) -> None:
    """CommandError unless path is a directory holding a store's data file:
    no command creates a store."""
    if not os.path.exists(path):
        raise CommandError(f"{path}: no such directory")
    if not os.path.isdir(path):
        raise CommandError(f"{path} is not a directory")
    if not os.path.isfile(os.path.join(path, _DATA_FILE)):
        raise CommandError(f"{path} is not a flinq store (no {_DATA_FILE})")


@contextlib.contextmanager
def open_readonly(path: str) -> Iterator[Store]:
    """The store at path, opened read-only for the block."""
    _check_store_path(path)
    store = Store(path, readonly=True)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def open_for_writing(path: str) -> Iterator[Store]:
    """The store at path, opened with its write lock for the block; a
    directory that is not a flinq store is refused before anything is written."""
    with open_readonly(path):
        pass
    store = Store(path)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def snapshot(store: Store) -> Iterator[lmdb.Transaction]:
    """A read transaction over the whole store: one consistent view of it."""
    with store._txn(write=False) as txn:
        yield txn


def _queue_settings(store: Store, txn: lmdb.Transaction) -> dict[str, dict[str, Any]]:
    """Every queue's stored settings, by name, sorted by name."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in txn.cursor(db=store._registry).iternext():
        try:
            out[bytes(key).decode()] = json.loads(bytes(value))
        except ValueError as exc:
            raise StoreCorruptError(f"{store.path}: a queue's settings are damaged: {exc}") from exc
    return out


def _queue_db(store: Store, txn: lmdb.Transaction, name: str) -> Any:
    """The LMDB database of queue name, for use within txn."""
    return store._env.open_db(f"q:{name}".encode(), txn=txn, create=False)


def _require_queue(settings: dict[str, dict[str, Any]], name: str, path: str) -> dict[str, Any]:
    """The settings of queue name; CommandError naming the known queues if there is none."""
    if name in settings:
        return settings[name]
    known = sorted(settings)
    if not known:
        listing = "it has no queues"
    elif len(known) <= 10:
        listing = "queues: " + ", ".join(known)
    else:
        listing = "queues: " + ", ".join(known[:10]) + f", ... ({len(known)} in all)"
    raise CommandError(f"no queue {name!r} in {path} ({listing})")


def _record(raw: bytes, queue: str) -> Record:
    """The header of a record of queue; StoreCorruptError naming the queue if it is damaged."""
    try:
        return decode_record(raw)
    except StoreCorruptError as exc:
        raise StoreCorruptError(f"queue {queue!r}: {exc}") from exc


# A status file older than this many intervals is the mark of an owner that
# stopped publishing (hung, or killed and its pid reused): not trusted.
_STATUS_STALE_INTERVALS = 10


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


def _locked_by_another_process(path: str) -> bool | None:
    """True if another process holds the store's write lock; None where
    this cannot be told (no POSIX record locks)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(os.path.join(path, "flinq.lock"), os.O_RDONLY)
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


def owner_status(path: str) -> dict[str, Any] | None:
    """What the process that owns the store published about itself (pid,
    written_at, queues: {name: {in_flight, dead_letter}}), if that process is
    alive and its status is fresh; None otherwise."""
    try:
        with open(os.path.join(path, STATUS_FILE)) as f:
            status: dict[str, Any] = json.load(f)
        pid, written_at = int(status["pid"]), float(status["written_at"])
        status["queues"] = dict(status["queues"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _pid_alive(pid):
        return None
    if time.time() - written_at > _STATUS_STALE_INTERVALS * STATUS_INTERVAL:
        return None
    return status


def stats(store: Store) -> dict[str, Any]:
    """What the store says about each queue.

    Per queue, from its committed state: depth (stored messages: ready, in
    flight, delayed), attempted (those delivered at least once and not acked
    yet), expired (TTL passed, not yet retired), the oldest message's
    enqueue time and age, its dead-letter queue as last opened and how many
    messages that holds. From the owning process, when one is alive:
    in_flight (reserved or delayed by a nack, as of the owner's last status;
    0 when no process owns the store, None when one does but has published
    nothing usable).
    """
    now = time.time()
    queues = []
    status = owner_status(store.path)
    if status is not None:
        owner: dict[str, Any] | None = {
            "pid": status["pid"],
            "status_age_seconds": max(0.0, now - status["written_at"]),
        }
        owned = True
    else:
        owner = None
        owned = _locked_by_another_process(store.path) is not False
    live = status["queues"] if status is not None else {}
    with snapshot(store) as txn:
        all_settings = _queue_settings(store, txn)
        for name, settings in all_settings.items():
            depth = attempted = expired = 0
            oldest: float | None = None
            for raw in txn.cursor(db=_queue_db(store, txn, name)).iternext(keys=False):
                record = _record(bytes(raw), name)
                depth += 1
                attempted += record.attempts > 0
                expired += 0.0 < record.expires_at <= now
                if oldest is None or record.enqueued_at < oldest:
                    oldest = record.enqueued_at
            if name in live:
                in_flight: int | None = int(live[name].get("in_flight", 0))
            else:
                in_flight = None if owned else 0  # an owner's unopened queue has none
                if status is not None:
                    in_flight = 0
            dead_letter = settings.get("dead_letter")
            if name in live and live[name].get("dead_letter") is not None:
                dead_letter = live[name]["dead_letter"]
            queues.append(
                {
                    "name": name,
                    "priority": bool(settings.get("priority", False)),
                    "depth": depth,
                    "in_flight": in_flight,
                    "dead_letter": dead_letter,
                    "dead_letters": None,  # filled in below
                    "attempted": attempted,
                    "expired": expired,
                    "oldest_enqueued_at": oldest,
                    "oldest_age_seconds": None if oldest is None else max(0.0, now - oldest),
                }
            )
    depths = {q["name"]: q["depth"] for q in queues}
    for q in queues:
        if q["dead_letter"] is not None:
            q["dead_letters"] = depths.get(q["dead_letter"], 0)
    return {
        "path": store.path,
        "as_of": now,
        "owner": owner,
        "bytes_on_disk": os.path.getsize(os.path.join(store.path, _DATA_FILE)),
        "queues": queues,
    }


def _body_view(
    raw: bytes, record: Record, serializer: Serializer | None, width: int
) -> tuple[str, int, str]:
    """(type, size in bytes, short repr) of a stored message's body."""
    size = len(raw) - record.body_offset
    kind = _BODY_TYPES.get(record.tag, f"tag {record.tag}")
    if record.tag == TAG_SERIALIZED and serializer is None:
        text = f"<{size} bytes serialized: --decode pickle|json shows them>"
    else:
        try:
            text = repr(decode_body(raw, record, serializer or _RAW))
        except StoreError as exc:
            text = f"<cannot decode: {_one_line(exc)}>"
    return kind, size, _shorten(text, width)


def peek(
    store: Store,
    name: str,
    n: int = DEFAULT_PEEK,
    *,
    decode: str | None = None,
    width: int = DEFAULT_WIDTH,
) -> dict[str, Any]:
    """The first n messages of queue name in delivery order, left in place.

    Serialized bodies (anything but bytes, bytearray and str) are shown only
    when decode names the serializer ("pickle" or "json"): unpickling runs
    code from the store. width bounds each body's repr (0: no bound).
    """
    serializer = resolve_serializer(decode) if decode is not None else None
    now = time.time()
    messages: list[dict[str, Any]] = []
    with snapshot(store) as txn:
        settings = _require_queue(_queue_settings(store, txn), name, store.path)
        db = _queue_db(store, txn, name)
        depth = txn.stat(db)["entries"]
        for key, value in txn.cursor(db=db).iternext():
            if len(messages) >= n:
                break
            raw = bytes(value)
            record = _record(raw, name)
            kind, size, text = _body_view(raw, record, serializer, width)
            messages.append(
                {
                    "id": key_seq(bytes(key)),
                    "priority": key_priority(bytes(key)),
                    "attempts": record.attempts,
                    "enqueued_at": record.enqueued_at,
                    "age_seconds": max(0.0, now - record.enqueued_at),
                    "expires_at": record.expires_at or None,
                    "headers": record.headers,
                    "body_type": kind,
                    "body_size": size,
                    "body": text,
                }
            )
    return {
        "path": store.path,
        "queue": name,
        "priority": bool(settings.get("priority", False)),
        "depth": depth,
        "messages": messages,
    }


# ---- writing -------------------------------------------------------------------------


def _write(store: Store, queues: tuple[str, ...], change: Callable[[lmdb.Transaction], int]) -> int:
    """Run change to queues in one write transaction and return its result;
    the map grows as the store's writer grows it, and a failed attempt
    changes nothing."""
    for name in queues:
        if name in store._queues:  # its messages in memory would no longer match
            raise StoreError(f"queue {name!r} is open in this Store: use that queue")
    env = store._env
    with store._env_lock:
        while True:
            try:
                with env.begin(write=True) as txn:
                    result = change(txn)
                    txn.put(b"next_seq", store._next_seq_bytes(), db=store._meta)
                return result
            except lmdb.MapFullError:
                env.set_mapsize(env.info()["map_size"] * 2)
            except lmdb.TxnFullError:
                raise AdminError(
                    "too many messages for one transaction; nothing was changed"
                ) from None


def queue_depth(store: Store, name: str) -> int:
    """How many messages queue name holds; CommandError if there is no such queue."""
    with snapshot(store) as txn:
        _require_queue(_queue_settings(store, txn), name, store.path)
        return int(txn.stat(_queue_db(store, txn, name))["entries"])


def purge(store: Store, name: str) -> int:
    """Delete every message of queue name (which stays, empty); returns how
    many. store must be open for writing and have no open queue of that name."""

    def clear(txn: lmdb.Transaction) -> int:
        _require_queue(_queue_settings(store, txn), name, store.path)
        db = _queue_db(store, txn, name)
        count = int(txn.stat(db)["entries"])
        txn.drop(db, delete=False)
        return count

    return _write(store, (name,), clear)


def requeue(store: Store, source: str, target: str) -> int:
    """Move every message of queue source to the end of queue target, in
    order, all or none; returns how many. Each keeps its body, headers,
    enqueue time and TTL, and its priority if both are priority queues (else
    0 in a priority target); attempts start again from 0, so a target with
    max_attempts delivers it again. store must be open for writing and have
    neither queue open."""
    if source == target:
        raise CommandError("FROM_QUEUE and TO_QUEUE are the same queue")

    def move(txn: lmdb.Transaction) -> int:
        settings = _queue_settings(store, txn)
        source_priority = bool(_require_queue(settings, source, store.path).get("priority"))
        target_priority = bool(_require_queue(settings, target, store.path).get("priority"))
        source_db = _queue_db(store, txn, source)
        target_db = _queue_db(store, txn, target)
        seq = store._seq
        moved = 0
        for key, value in txn.cursor(db=source_db).iternext():
            raw = bytes(value)
            _record(raw, source)  # a damaged record fails the move before it commits
            if target_priority:
                p = key_priority(bytes(key)) if source_priority else 0
                new_key = priority_key(p, next(seq))
            else:
                new_key = fifo_key(next(seq))
            if not txn.put(new_key, with_attempts(raw, 0), db=target_db, overwrite=False):
                raise StoreError(f"{store.path}: message key {new_key.hex()} is already used")
            moved += 1
        txn.drop(source_db, delete=False)
        return moved

    return _write(store, (source, target), move)


# ---- output --------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _shorten(text: str, width: int) -> str:
    if width <= 0 or len(text) <= width:
        return text
    return text[: max(width - 3, 1)] + "..."


def _messages(count: int) -> str:
    return f"{count:,} message" + ("" if count == 1 else "s")


def _age(seconds: float | None) -> str:
    """A duration for people: 45s, 2m05s, 3h12m, 2d04h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _table(headers: list[str], rows: list[list[str]], align: str) -> str:
    """Columns padded to width; align has one letter per column: l(eft) or r(ight)."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        parts = [
            cell.ljust(w) if a == "l" else cell.rjust(w)
            for cell, w, a in zip(cells, widths, align, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _format_stats(report: dict[str, Any]) -> str:
    head = f"store {report['path']} ({_size(report['bytes_on_disk'])} on disk)"
    owner = report["owner"]
    if owner is not None:
        age = _age(owner["status_age_seconds"])
        head += f"; owned by pid {owner['pid']}, in flight as of {age} ago"
    if not report["queues"]:
        return head + "\nno queues"

    def count(value: int | None, missing: str) -> str:
        return missing if value is None else f"{value:,}"

    rows = [
        [
            q["name"],
            "priority" if q["priority"] else "fifo",
            f"{q['depth']:,}",
            count(q["in_flight"], "?"),
            count(q["dead_letters"], "-"),
            q["dead_letter"] or "-",
            f"{q['attempted']:,}",
            f"{q['expired']:,}",
            _age(q["oldest_age_seconds"]),
        ]
        for q in report["queues"]
    ]
    headers = ["QUEUE", "KIND", "DEPTH", "IN-FLIGHT", "DEAD", "DLQ", "ATTEMPTED", "EXPIRED"]
    headers.append("OLDEST")
    return head + "\n" + _table(headers, rows, "llrrrlrrr")


def _format_peek(report: dict[str, Any]) -> str:
    messages = report["messages"]
    kind = "priority" if report["priority"] else "fifo"
    head = f"queue {report['queue']} ({kind}): {_messages(report['depth'])}"
    if not messages:
        return head
    head += f", the first {len(messages)}" if len(messages) < report["depth"] else ""
    show_expiry = any(m["expires_at"] for m in messages)
    headers = ["ID"] + (["PRIORITY"] if report["priority"] else []) + ["ATTEMPTS", "AGE"]
    headers += (["EXPIRES"] if show_expiry else []) + ["HEADERS", "BODY"]
    align = "r" * (len(headers) - 2) + "ll"
    rows = []
    now = time.time()
    for m in messages:
        row = [str(m["id"])] + ([str(m["priority"])] if report["priority"] else [])
        row += [str(m["attempts"]), _age(m["age_seconds"])]
        if show_expiry:
            left = None if m["expires_at"] is None else m["expires_at"] - now
            row.append("-" if left is None else "expired" if left <= 0 else "in " + _age(left))
        headers_text = json.dumps(m["headers"], separators=(",", ":")) if m["headers"] else "-"
        rows.append([*row, _shorten(headers_text, 40), m["body"]])
    return head + "\n" + _table(headers, rows, align)


# ---- commands ------------------------------------------------------------------------


def _guarded(command: Command) -> Command:
    """command, with store and OS failures reported in one line (exit status 1)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (AdminError, StoreError, lmdb.Error, OSError) as exc:
            print(f"{args.prog}: error: {_one_line(exc)}", file=sys.stderr)
            return _EXIT_FAILED

    return run


def _run_stats(args: argparse.Namespace) -> int:
    with open_readonly(args.path) as store:
        report = stats(store)
    if args.json:
        _print_json(report)
    else:
        print(_format_stats(report))
    return 0


def _run_peek(args: argparse.Namespace) -> int:
    with open_readonly(args.path) as store:
        report = peek(store, args.queue, args.n, decode=args.decode, width=args.width)
    if args.json:
        _print_json(report)
    else:
        print(_format_peek(report))
    return 0


def _confirm(question: str) -> bool:
    """True if the answer read from stdin is y or yes; no stdin is a no."""
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline() if sys.stdin is not None else ""
    if not answer.endswith("\n"):
        print(file=sys.stderr)
    return answer.strip().lower() in ("y", "yes")


def _run_purge(args: argparse.Namespace) -> int:
    with open_for_writing(args.path) as store:
        count = queue_depth(store, args.queue)
        question = f"Delete {_messages(count)} of queue {args.queue!r} in {store.path}?"
        if count and not args.yes and not _confirm(question):
            raise AdminError("not confirmed; nothing was deleted")
        purged = purge(store, args.queue)
    if args.json:
        _print_json({"path": store.path, "queue": args.queue, "purged": purged})
    else:
        print(f"Purged {_messages(purged)} from {args.queue}")
    return 0


def _run_requeue(args: argparse.Namespace) -> int:
    with open_for_writing(args.path) as store:
        moved = requeue(store, args.from_queue, args.to_queue)
    if args.json:
        _print_json(
            {"path": store.path, "from": args.from_queue, "to": args.to_queue, "moved": moved}
        )
    else:
        print(f"Moved {_messages(moved)} from {args.from_queue} to {args.to_queue}")
    return 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


EXIT_STATUS = """\
exit status: 0 done; 1 the store could not be read or changed (locked,
damaged, newer format) or purge was not confirmed; 2 usage error (including
a path that is not a flinq store, and an unknown queue)
"""

STATS_HELP = """\
List the store's queues:
  DEPTH         stored messages: ready, in flight and delayed alike
  IN-FLIGHT     of those, reserved and not settled (or nacked with a delay),
                as the owning process last published (every second); 0 when
                no process owns the store; ? when the owner published nothing
  DEAD, DLQ     the messages in the queue's dead-letter queue, and its name
                (as the queue was last opened); - when it has none
  ATTEMPTED     stored messages delivered at least once and not acked yet
                (in flight now, back after a nack or a crash)
  EXPIRED       stored messages whose TTL has passed (retired on their next get)
  OLDEST        age of the oldest stored message (its first enqueue time)

Read-only: works while another process owns the store, and shows what that
process has committed (plus its in-flight counts).
"""

PEEK_HELP = """\
Show the first N messages of a queue in delivery order, without removing them:
id, priority (priority queues), attempts, age, expiry, headers and a short repr
of the body. Read-only: works while another process owns the store.
"""

PURGE_HELP = """\
Delete every message of a queue; the queue itself stays. Asks for
confirmation on stdin unless given --yes (no answer is a no). Needs the
store's write lock: stop the process that owns the store first.
"""

REQUEUE_HELP = """\
Move every message of FROM_QUEUE (say, a dead-letter queue) to the end of
TO_QUEUE, in order, in one transaction: all move or none. Each keeps its body,
headers and enqueue time; its attempts start again from 0. Both queues must
exist. Needs the store's write lock: stop the process that owns the store first.
"""


def _add(subparsers: Any, name: str, summary: str, description: str, run: Command) -> Any:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", metavar="PATH", help="the store's directory")
    parser.set_defaults(run=_guarded(run), prog=parser.prog)
    return parser


def _add_json(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON to stdout")


def register(subparsers: Any) -> None:
    """Add the stats, peek, purge and requeue subcommands to the flinq command."""
    parser = _add(subparsers, "stats", "list a store's queues", STATS_HELP, _run_stats)
    _add_json(parser)

    parser = _add(subparsers, "peek", "show a queue's first messages", PEEK_HELP, _run_peek)
    parser.add_argument("queue", metavar="QUEUE", help="the queue's name")
    parser.add_argument(
        "-n",
        type=_count,
        default=DEFAULT_PEEK,
        metavar="N",
        help=f"how many messages (default {DEFAULT_PEEK})",
    )
    parser.add_argument(
        "--decode",
        choices=("pickle", "json"),
        help="decode serialized bodies with this serializer (pickle runs code from the store: "
        "only for stores you trust)",
    )
    parser.add_argument(
        "--width",
        type=_count,
        default=DEFAULT_WIDTH,
        metavar="W",
        help=f"cut each body's repr to W characters (default {DEFAULT_WIDTH}; 0: whole)",
    )
    _add_json(parser)

    parser = _add(subparsers, "purge", "delete every message of a queue", PURGE_HELP, _run_purge)
    parser.add_argument("queue", metavar="QUEUE", help="the queue's name")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _add_json(parser)

    parser = _add(
        subparsers, "requeue", "move a queue's messages to another", REQUEUE_HELP, _run_requeue
    )
    parser.add_argument("from_queue", metavar="FROM_QUEUE", help="the queue to empty")
    parser.add_argument("to_queue", metavar="TO_QUEUE", help="the queue to append to")
    _add_json(parser)
