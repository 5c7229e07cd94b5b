"""``flinq stats``, ``peek``, ``purge`` and ``requeue``: administer a durable store.

Written against flinq.protocols.DurableStore only: any backend's store
works. stats and peek open the store read-only, so they work while another
process owns it; they see what that process has committed, not what is
still in its pending log. Messages in flight live only in the owner's
memory: an LMDB store's owner publishes their count in its status file,
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

from flinq.backends import open as open_store
from flinq.cli import CommandError
from flinq.codec import Serializer, resolve_serializer
from flinq.errors import StoreError, StoreNotFoundError
from flinq.protocols import DECODE_ERROR_HEADER, ERROR_HEADER, ERROR_TYPE_HEADER, DurableStore

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
_EXIT_FAILED: Final = 1

Command = Callable[[argparse.Namespace], int]


class AdminError(Exception):
    """An operation that could not be done, or was not confirmed (exit status 1)."""


# ---- reading -------------------------------------------------------------------------


@contextlib.contextmanager
def open_readonly(target: str) -> Iterator[DurableStore]:
    """The store at target (a path or URL), opened read-only for the block;
    CommandError if there is no store there: no command creates one."""
    if "://" not in target and not os.path.isdir(target):
        raise CommandError(
            f"{target}: no such directory"
            if not os.path.exists(target)
            else f"{target} is not a directory"
        )
    try:
        store = open_store(target, readonly=True)
    except StoreNotFoundError as exc:
        raise CommandError(str(exc)) from None
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def open_for_writing(target: str) -> Iterator[DurableStore]:
    """The store at target, opened for writing for the block; a directory
    that is not a flinq store is refused before anything is written."""
    with open_readonly(target):
        pass
    store = open_store(target)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def _known_queue() -> Iterator[None]:
    """An unknown queue (KeyError from the store) is a usage error."""
    try:
        yield
    except KeyError as exc:
        raise CommandError(str(exc.args[0]) if exc.args else "no such queue") from None


def stats(store: DurableStore) -> dict[str, Any]:
    """What the store says about each queue (see DurableStore.inspect)."""
    return store.inspect()


def _body_view(message: dict[str, Any], serializer: Serializer | None, width: int) -> str:
    """A short repr of a peeked message's body."""
    kind, data = message["body_type"], message["body"]
    if kind == "bytes":
        text = repr(data)
    elif kind == "bytearray":
        text = repr(bytearray(data))
    elif kind == "str":
        text = repr(data.decode("utf-8", "surrogatepass"))
    elif kind == "serialized" and serializer is None:
        text = f"<{len(data)} bytes serialized: --decode pickle|json shows them>"
    elif kind == "serialized" and serializer is not None:
        try:
            text = repr(serializer.loads(data))
        except Exception as exc:  # whatever the serializer raises on bad input
            text = f"<cannot decode: {_one_line(exc)}>"
    else:
        text = f"<cannot decode: unknown body type {kind}>"
    return _shorten(text, width)


_REASON_HEADERS = (ERROR_TYPE_HEADER, ERROR_HEADER, DECODE_ERROR_HEADER)


def dead_letter_reason(headers: dict[str, str] | None) -> str | None:
    """Why a message was dead-lettered, from its headers; None if it says nothing."""
    if not headers:
        return None
    if DECODE_ERROR_HEADER in headers:
        return f"cannot decode: {headers[DECODE_ERROR_HEADER]}"
    if ERROR_HEADER not in headers:
        return None
    kind = headers.get(ERROR_TYPE_HEADER)
    return f"{kind}: {headers[ERROR_HEADER]}" if kind else headers[ERROR_HEADER]


def peek(
    store: DurableStore,
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
    with _known_queue():
        found = store.peek(name, n)
    (queue,) = [q for q in store.inspect()["queues"] if q["name"] == name]
    messages = [
        {
            "id": m["id"],
            "priority": m["priority"],
            "attempts": m["attempts"],
            "enqueued_at": m["enqueued_at"],
            "age_seconds": max(0.0, now - m["enqueued_at"]),
            "expires_at": m["expires_at"],
            "headers": m["headers"],
            "reason": dead_letter_reason(m["headers"]),
            "body_type": m["body_type"],
            "body_size": len(m["body"]),
            "body": _body_view(m, serializer, width),
        }
        for m in found
    ]
    return {
        "path": store.path,
        "queue": name,
        "priority": queue["priority"],
        "depth": queue["depth"],
        "messages": messages,
    }


# ---- writing -------------------------------------------------------------------------


def queue_depth(store: DurableStore, name: str) -> int:
    """How many messages queue name holds; CommandError if there is no such queue."""
    for queue in store.inspect()["queues"]:
        if queue["name"] == name:
            return int(queue["depth"])
    with _known_queue():
        store.peek(name, 0)  # raises KeyError naming the store's queues
    raise CommandError(f"no queue {name!r} in {store.path}")


def purge(store: DurableStore, name: str) -> int:
    """Delete every message of queue name (which stays, empty); returns how
    many. store must be open for writing and have no open queue of that name."""
    with _known_queue():
        return store.purge_queue(name)


def requeue(store: DurableStore, source: str, target: str) -> int:
    """Move every message of queue source to the end of queue target, in
    order, all or none; returns how many. Each keeps its body, headers,
    enqueue time and TTL, and its priority if both are priority queues (else
    0 in a priority target); attempts start again from 0, so a target with
    max_attempts delivers it again. store must be open for writing and have
    neither queue open."""
    if source == target:
        raise CommandError("FROM_QUEUE and TO_QUEUE are the same queue")
    with _known_queue():
        return store.move_messages(source, target)


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
    show_reason = any(m["reason"] for m in messages)
    headers = ["ID"] + (["PRIORITY"] if report["priority"] else []) + ["ATTEMPTS", "AGE"]
    headers += (["EXPIRES"] if show_expiry else []) + (["REASON"] if show_reason else [])
    headers += ["HEADERS", "BODY"]
    align = "r" * (len(headers) - 2 - show_reason) + "l" * (2 + show_reason)
    rows = []
    now = time.time()
    for m in messages:
        row = [str(m["id"])] + ([str(m["priority"])] if report["priority"] else [])
        row += [str(m["attempts"]), _age(m["age_seconds"])]
        if show_expiry:
            left = None if m["expires_at"] is None else m["expires_at"] - now
            row.append("-" if left is None else "expired" if left <= 0 else "in " + _age(left))
        if show_reason:
            row.append(_shorten(m["reason"] or "-", 40))
        others = {k: v for k, v in (m["headers"] or {}).items() if k not in _REASON_HEADERS}
        headers_text = json.dumps(others, separators=(",", ":")) if others else "-"
        rows.append([*row, _shorten(headers_text, 40), m["body"]])
    return head + "\n" + _table(headers, rows, align)


# ---- commands ------------------------------------------------------------------------


def _guarded(command: Command) -> Command:
    """command, with store and OS failures (and a backend's missing package)
    reported in one line (exit status 1)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (AdminError, StoreError, OSError, ImportError) as exc:  # ImportError: redis-py
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
id, priority (priority queues), attempts, age, expiry, why a dead letter was
dead-lettered (REASON: the error's type and text), headers and a short repr
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
    parser.add_argument(
        "path",
        metavar="PATH",
        help="the store's directory, or a redis://, rediss:// or unix:// URL "
        "(?prefix=NAME for a prefix other than flinq)",
    )
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
