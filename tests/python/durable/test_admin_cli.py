"""The store administration commands: flinq stats, peek, purge and requeue.

Most tests call flinq.cli.main() in this process on a store no process has
open; the tests of a store owned by another process run either the owner or
the command in a child interpreter.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lmdb
import pytest
from dhelpers import FAST, popen_script, reserve_all, stored_messages
from qhelpers import HANG_GUARD, subprocess_env, wait_until

import flinq
from flinq import admin
from flinq.cli import main
from flinq.codec import fifo_key
from flinq.lmdbstore.status import owner_status

COMMANDS = {
    "stats": [],
    "peek": ["jobs"],
    "purge": ["jobs", "--yes"],
    "requeue": ["dlq", "jobs"],
}


def run(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `flinq ARGS` run in this process."""
    status = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: Any) -> Any:
    """The parsed stdout of `flinq ARGS --json`, after asserting it succeeded."""
    status, out, err = run(capsys, *args, "--json")
    assert status == 0, err
    return json.loads(out)


def assert_one_line_error(status: int, err: str, expected: int, *fragments: str) -> None:
    assert status == expected, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0]


def table(out: str) -> dict[str, list[str]]:
    """Rows of a printed table, by their first cell (the header row under its own name)."""
    rows = [line.split() for line in out.splitlines()[1:]]
    return {row[0]: row[1:] for row in rows}


def peeked(capsys: pytest.CaptureFixture[str], path: os.PathLike[str], name: str) -> Any:
    """The messages `flinq peek PATH NAME --json` shows."""
    return run_json(capsys, "peek", path, name)["messages"]


def queue_stats(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["name"]: q for q in report["queues"]}


def dead_letter(store: flinq.Store, name: str, bodies: list[Any], **put: Any) -> None:
    """Put bodies in queue name and dead-letter each at once into "dlq"."""
    q = store.queue(name, dead_letter="dlq")
    for body in bodies:
        q.put(body, **put)
    for message in reserve_all(q):
        message.nack(requeue=False)


@contextmanager
def owned_by_child(path: os.PathLike[str], setup: str = "") -> Iterator[subprocess.Popen[str]]:
    """A child process that opens the store at path for writing, runs setup
    with it as `store`, flushes, and holds it open until the block ends."""
    code = f"""
        import sys
        import flinq
        store = flinq.open(sys.argv[1], flush_interval=0.002)
        {setup}
        store.flush()
        print("ready", flush=True)
        sys.stdin.readline()
        store.close()
    """
    child = popen_script(code, path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        yield child
    finally:
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.close()
        child.wait(HANG_GUARD)
        child.stdout.close()
        assert child.returncode == 0


# --------------------------------------------------------------------------- stats


def test_stats_reports_depth_attempted_expired_and_oldest_age(path, opener, capsys):
    store = opener()
    before = time.time()
    jobs = store.queue("jobs", max_attempts=3, dead_letter="dlq")
    jobs.put_many([b"a", b"b", b"c"])
    jobs.put("short-lived", ttl=0.001)
    jobs.reserve()  # delivered, never acked: stored with attempts 1
    dead_letter(store, "other", ["x", "y"])
    prio = store.queue("prio", priority=True)
    prio.put("later", priority=5)
    prio.put("first", priority=-1)
    store.queue("idle")
    after = time.time()
    store.close()
    assert wait_until(lambda: time.time() > after + 0.01)  # the TTL has passed

    report = run_json(capsys, "stats", path)
    assert report["path"] == os.path.realpath(path)
    assert report["bytes_on_disk"] == os.path.getsize(path / "data.mdb")
    queues = queue_stats(report)
    assert list(queues) == ["dlq", "idle", "jobs", "other", "prio"]
    got = {
        name: (q["priority"], q["depth"], q["attempted"], q["expired"])
        for name, q in queues.items()
    }
    assert got == {
        "jobs": (False, 4, 1, 1),
        "dlq": (False, 2, 2, 0),  # dead letters keep their attempts, lose their TTL
        "other": (False, 0, 0, 0),
        "prio": (True, 2, 0, 0),
        "idle": (False, 0, 0, 0),
    }
    for name in ("jobs", "dlq", "prio"):
        assert before <= queues[name]["oldest_enqueued_at"] <= after
        assert queues[name]["oldest_age_seconds"] >= 0
    assert queues["idle"]["oldest_enqueued_at"] is None
    assert queues["idle"]["oldest_age_seconds"] is None

    status, out, err = run(capsys, "stats", path)
    assert status == 0 and err == ""
    assert out.splitlines()[0].startswith(f"store {os.path.realpath(path)} (")
    rows = table(out)
    header = ["KIND", "DEPTH", "IN-FLIGHT", "DEAD", "DLQ", "ATTEMPTED", "EXPIRED", "OLDEST"]
    assert rows["QUEUE"] == header
    # Nobody owns the store: nothing is in flight. jobs' dead letters are in dlq.
    assert rows["jobs"][:7] == ["fifo", "4", "0", "2", "dlq", "1", "1"]
    assert rows["dlq"][:7] == ["fifo", "2", "0", "-", "-", "2", "0"]
    assert rows["prio"][:7] == ["priority", "2", "0", "-", "-", "0", "0"]
    assert rows["idle"] == ["fifo", "0", "0", "-", "-", "0", "0", "-"]
    assert report["owner"] is None
    assert (queues["jobs"]["dead_letter"], queues["jobs"]["dead_letters"]) == ("dlq", 2)
    assert queues["jobs"]["in_flight"] == 0


def test_stats_of_a_store_without_queues(path, opener, capsys):
    opener().close()
    assert run_json(capsys, "stats", path)["queues"] == []
    status, out, _ = run(capsys, "stats", path)
    assert status == 0
    assert out.splitlines()[1] == "no queues"


def test_stats_in_a_child_while_this_process_owns_the_store(path, store):
    q = store.queue("jobs")
    q.put_many([f"m{i}" for i in range(5)])
    q.reserve()
    store.flush()

    def stats(*extra: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "flinq", "stats", str(path), *extra],
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            env=subprocess_env(),
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        return proc.stdout

    jobs = queue_stats(json.loads(stats("--json")))["jobs"]
    assert (jobs["depth"], jobs["attempted"]) == (5, 1)
    assert table(stats())["jobs"][:3] == ["fifo", "5", "1"]

    # The owner carries on, and a later look shows its new commits.
    q.put("m5")
    q.get()
    store.flush()
    jobs = queue_stats(json.loads(stats("--json")))["jobs"]
    assert (jobs["depth"], jobs["attempted"]) == (5, 1)
    assert store.queue("jobs").qsize() == 4


def test_stats_and_peek_while_a_child_owns_the_store(path, capsys):
    setup = "store.queue('jobs').put_many(['a', 'b', 'c'])"
    with owned_by_child(path, setup):
        assert queue_stats(run_json(capsys, "stats", path))["jobs"]["depth"] == 3
        report = run_json(capsys, "peek", path, "jobs", "-n", "2")
        assert [m["body"] for m in report["messages"]] == ["'a'", "'b'"]


@pytest.mark.parametrize("command", ["purge", "requeue"])
def test_writing_commands_refuse_a_store_another_process_owns(path, capsys, command):
    setup = "store.queue('jobs').put('a'); store.queue('dlq').put('b')"
    with owned_by_child(path, setup):
        status, out, err = run(capsys, command, path, *COMMANDS[command])
        assert_one_line_error(status, err, 1, f"flinq {command}: error:", "another process")
        assert out == ""
    depths = {q["name"]: q["depth"] for q in run_json(capsys, "stats", path)["queues"]}
    assert depths == {"dlq": 1, "jobs": 1}


def test_a_reader_follows_the_owner_growing_the_map(path):
    # The owner starts small and grows its map past the reader's while the
    # reader has the store open: the reader's next look adopts the new size.
    code = """
        import sys
        import flinq
        store = flinq.open(sys.argv[1], map_size=1 << 20)
        store.queue('jobs').put(b'first')
        store.flush()
        print("ready", flush=True)
        sys.stdin.readline()
        store.queue('jobs').put_many([bytes(1000)] * 4000)
        store.flush()
        print("grown", flush=True)
        sys.stdin.readline()
        store.close()
    """
    child = popen_script(code, path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "ready\n"
        reader = flinq.Store(path, readonly=True, map_size=1 << 20)
        try:
            assert queue_stats(admin.stats(reader))["jobs"]["depth"] == 1
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.stdout.readline() == "grown\n"
            assert queue_stats(admin.stats(reader))["jobs"]["depth"] == 4001
        finally:
            reader.close()
    finally:
        child.stdin.close()
        child.wait(HANG_GUARD)
        child.stdout.close()
    assert child.returncode == 0


# --------------------------------------------------------------------------- peek


def test_peek_shows_the_first_messages_and_leaves_them(path, opener, capsys):
    store = opener()
    q = store.queue("jobs")
    q.put(b"raw bytes", headers={"trace": "t-1"})
    q.put("text")
    q.put(bytearray(b"ba"))
    q.put("fourth")
    q.reserve()
    store.close()
    before = run_json(capsys, "peek", path, "jobs")["messages"]

    report = run_json(capsys, "peek", path, "jobs", "-n", "3")
    assert report["queue"] == "jobs"
    assert report["priority"] is False
    assert report["depth"] == 4
    messages = report["messages"]
    assert [m["id"] for m in messages] == [0, 1, 2]
    assert [m["body"] for m in messages] == ["b'raw bytes'", "'text'", "bytearray(b'ba')"]
    assert [m["body_type"] for m in messages] == ["bytes", "str", "bytearray"]
    assert [m["body_size"] for m in messages] == [9, 4, 2]
    assert [m["attempts"] for m in messages] == [1, 0, 0]
    assert [m["headers"] for m in messages] == [{"trace": "t-1"}, None, None]
    assert all(m["priority"] == 0 and m["expires_at"] is None for m in messages)
    assert all(m["age_seconds"] >= 0 for m in messages)

    status, out, err = run(capsys, "peek", path, "jobs", "-n", "2")
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "queue jobs (fifo): 4 messages, the first 2"
    assert lines[1].split() == ["ID", "ATTEMPTS", "AGE", "HEADERS", "BODY"]
    assert lines[2].split()[0:2] == ["0", "1"]
    assert lines[2].split()[3:] == ['{"trace":"t-1"}', "b'raw", "bytes'"]
    assert lines[3].split()[-1] == "'text'"
    assert len(lines) == 4

    # All of them, when N is more than the depth; none with -n 0.
    assert len(run_json(capsys, "peek", path, "jobs", "-n", "50")["messages"]) == 4
    assert run_json(capsys, "peek", path, "jobs", "-n", "0")["messages"] == []
    # Nothing was taken and no delivery counted.
    after = run_json(capsys, "peek", path, "jobs")["messages"]
    assert [{**m, "age_seconds": 0} for m in after] == [{**m, "age_seconds": 0} for m in before]
    assert stored_messages(path, "jobs") == [
        (0, b"raw bytes", 2),
        (1, "text", 1),
        (2, bytearray(b"ba"), 1),
        (3, "fourth", 1),
    ]


def test_peek_a_priority_queue_in_delivery_order(path, opener, capsys):
    store = opener()
    q = store.queue("prio", priority=True)
    q.put("low", priority=7)
    q.put("urgent", priority=-3)
    q.put("normal")
    store.close()
    report = run_json(capsys, "peek", path, "prio")
    assert report["priority"] is True
    got = [(m["priority"], m["body"]) for m in report["messages"]]
    assert got == [(-3, "'urgent'"), (0, "'normal'"), (7, "'low'")]
    status, out, _ = run(capsys, "peek", path, "prio")
    assert status == 0
    assert out.splitlines()[1].split()[:3] == ["ID", "PRIORITY", "ATTEMPTS"]


def test_peek_shows_why_a_dead_letter_was_dead_lettered(path, opener, capsys):
    store = opener()
    q = store.queue("jobs", dead_letter="jobs.dl")
    q.put("poison", headers={"trace": "t-9"})
    q.put("dropped")
    q.reserve().nack(requeue=False, error=ValueError("bad input"))
    q.reserve().nack(requeue=False)
    store.close()
    report = run_json(capsys, "peek", path, "jobs.dl")
    reasons = [m["reason"] for m in report["messages"]]
    assert reasons == ["ValueError: bad input", "nacked without requeue"]
    status, out, _ = run(capsys, "peek", path, "jobs.dl")
    assert status == 0
    lines = out.splitlines()
    assert "REASON" in lines[1].split()
    assert "ValueError: bad input" in lines[2] and '{"trace":"t-9"}' in lines[2]
    assert "flinq-error" not in out  # the reason headers are shown as REASON only


def test_peek_empty_queue(path, opener, capsys):
    store = opener()
    store.queue("idle")
    store.close()
    status, out, _ = run(capsys, "peek", path, "idle")
    assert status == 0
    assert out.strip() == "queue idle (fifo): 0 messages"
    assert run_json(capsys, "peek", path, "idle")["messages"] == []


def test_peek_decodes_serialized_bodies_only_when_asked(path, opener, capsys):
    store = opener(serializer="json")
    store.queue("jobs").put({"job": 1})
    store.close()
    [message] = run_json(capsys, "peek", path, "jobs")["messages"]
    assert message["body_type"] == "serialized"
    assert message["body"].startswith("<9 bytes serialized")
    [message] = run_json(capsys, "peek", path, "jobs", "--decode", "json")["messages"]
    assert message["body"] == "{'job': 1}"
    [message] = run_json(capsys, "peek", path, "jobs", "--decode", "pickle")["messages"]
    assert message["body"].startswith("<cannot decode")


def test_peek_cuts_long_bodies_to_the_width(path, opener, capsys):
    store = opener()
    store.queue("jobs").put("x" * 500, ttl=3600)
    store.close()
    [message] = run_json(capsys, "peek", path, "jobs", "--width", "20")["messages"]
    assert message["body"] == "'" + "x" * 16 + "..."
    assert message["body_size"] == 500
    assert message["expires_at"] == pytest.approx(message["enqueued_at"] + 3600)
    [message] = run_json(capsys, "peek", path, "jobs", "--width", "0")["messages"]
    assert message["body"] == repr("x" * 500)
    status, out, _ = run(capsys, "peek", path, "jobs")
    assert status == 0
    header, row = out.splitlines()[1:]
    assert header.split() == ["ID", "ATTEMPTS", "AGE", "EXPIRES", "HEADERS", "BODY"]
    assert row.split()[3] == "in"  # in 59m59s or so
    assert row.endswith("...")


# --------------------------------------------------------------------------- purge


def filled(opener: Any) -> None:
    """A closed store with jobs (3 messages, one in flight) and keep (1)."""
    store = opener()
    jobs = store.queue("jobs")
    jobs.put_many(["a", "b", "c"])
    jobs.reserve()
    store.queue("keep").put("k")
    store.close()


def depths(capsys: pytest.CaptureFixture[str], path: os.PathLike[str]) -> dict[str, int]:
    return {q["name"]: q["depth"] for q in run_json(capsys, "stats", path)["queues"]}


def test_purge_with_yes(path, opener, capsys):
    filled(opener)
    status, out, err = run(capsys, "purge", path, "jobs", "--yes")
    assert status == 0 and err == ""
    assert out == "Purged 3 messages from jobs\n"
    assert depths(capsys, path) == {"jobs": 0, "keep": 1}  # the queue stays, empty
    assert stored_messages(path, "jobs") == []
    assert [body for _, body, _ in stored_messages(path, "keep")] == ["k"]


def test_purge_json(path, opener, capsys):
    filled(opener)
    report = run_json(capsys, "purge", path, "jobs", "--yes")
    assert report == {"path": os.path.realpath(path), "queue": "jobs", "purged": 3}


@pytest.mark.parametrize(("answer", "purged"), [("y\n", True), ("YES\n", True), ("n\n", False)])
def test_purge_asks_first(path, opener, capsys, monkeypatch, answer, purged):
    filled(opener)
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer))
    status, out, err = run(capsys, "purge", path, "jobs")
    assert err.startswith("Delete 3 messages of queue 'jobs' in ")
    assert "[y/N]" in err
    if purged:
        assert status == 0
        assert out == "Purged 3 messages from jobs\n"
        assert depths(capsys, path)["jobs"] == 0
    else:
        assert status == 1
        assert out == ""
        assert err.rstrip().endswith("flinq purge: error: not confirmed; nothing was deleted")
        assert "Traceback" not in err
        assert depths(capsys, path)["jobs"] == 3


@pytest.mark.parametrize("stdin", ["", None], ids=["eof", "no-stdin"])
def test_purge_without_an_answer_deletes_nothing(path, opener, capsys, monkeypatch, stdin):
    filled(opener)
    monkeypatch.setattr(sys, "stdin", None if stdin is None else io.StringIO(stdin))
    status, out, err = run(capsys, "purge", path, "jobs", "--json")
    assert status == 1
    assert out == ""
    assert err.splitlines()[-1] == "flinq purge: error: not confirmed; nothing was deleted"
    assert depths(capsys, path)["jobs"] == 3


def test_purge_of_an_empty_queue_does_not_ask(path, opener, capsys, monkeypatch):
    store = opener()
    store.queue("idle")
    store.close()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    status, out, err = run(capsys, "purge", path, "idle")
    assert (status, out, err) == (0, "Purged 0 messages from idle\n", "")


# --------------------------------------------------------------------------- requeue


def test_requeue_moves_every_dead_letter_back_exactly_once(path, opener, capsys):
    store = opener()
    jobs = store.queue("jobs", max_attempts=2, dead_letter="dlq")
    for i in range(50):
        jobs.put(f"poison {i}", headers={"n": str(i)} if i % 2 else None)
    for _ in range(2):  # two failed deliveries each: dead letters
        for message in reserve_all(jobs):
            message.nack()
    jobs.put("stays")
    jobs.put("stays too")
    store.close()
    before = run_json(capsys, "peek", path, "dlq", "-n", "100")["messages"]
    assert len(before) == 50
    assert all(m["attempts"] == 2 for m in before)

    status, out, err = run(capsys, "requeue", path, "dlq", "jobs")
    assert status == 0 and err == ""
    assert out == "Moved 50 messages from dlq to jobs\n"
    assert depths(capsys, path) == {"dlq": 0, "jobs": 52}

    after = run_json(capsys, "peek", path, "jobs", "-n", "100")["messages"]
    moved = after[2:]
    assert [m["body"] for m in after[:2]] == ["'stays'", "'stays too'"]
    assert [m["body"] for m in moved] == [m["body"] for m in before]  # same order
    assert [m["headers"] for m in moved] == [m["headers"] for m in before]
    assert [m["enqueued_at"] for m in moved] == [m["enqueued_at"] for m in before]
    assert all(m["attempts"] == 0 for m in moved)
    ids = [m["id"] for m in after]
    assert len(set(ids)) == len(ids)
    assert min(m["id"] for m in moved) > max(m["id"] for m in before)

    # Back in the queue with a fresh set of deliveries: each comes out once more.
    with flinq.open(path, **FAST) as reopened:
        jobs = reopened.queue("jobs", max_attempts=2, dead_letter="dlq")
        delivered = reserve_all(jobs)
        assert sorted(m.body for m in delivered) == sorted(
            ["stays", "stays too"] + [f"poison {i}" for i in range(50)]
        )
        assert all(m.attempts == 1 for m in delivered)
        for message in delivered:
            message.ack()
        assert reopened.queue("dlq").qsize() == 0


def test_requeue_json_and_an_empty_source(path, opener, capsys):
    store = opener()
    dead_letter(store, "jobs", ["a", "b"])
    store.close()
    report = run_json(capsys, "requeue", path, "dlq", "jobs")
    assert report == {"path": os.path.realpath(path), "from": "dlq", "to": "jobs", "moved": 2}
    report = run_json(capsys, "requeue", path, "dlq", "jobs")
    assert report["moved"] == 0
    status, out, _ = run(capsys, "requeue", path, "dlq", "jobs")
    assert (status, out) == (0, "Moved 0 messages from dlq to jobs\n")


def test_requeue_between_fifo_and_priority_queues(path, opener, capsys):
    store = opener()
    source = store.queue("psource", priority=True)
    source.put("p5", priority=5)
    source.put("p-2", priority=-2)
    store.queue("ptarget", priority=True)
    store.queue("fifo").put("f")
    store.close()

    assert run_json(capsys, "requeue", path, "psource", "ptarget")["moved"] == 2
    got = [(m["priority"], m["body"]) for m in peeked(capsys, path, "ptarget")]
    assert got == [(-2, "'p-2'"), (5, "'p5'")]  # priorities kept

    assert run_json(capsys, "requeue", path, "fifo", "ptarget")["moved"] == 1
    got = [(m["priority"], m["body"]) for m in peeked(capsys, path, "ptarget")]
    assert got == [(-2, "'p-2'"), (0, "'f'"), (5, "'p5'")]  # a FIFO message gets priority 0

    assert run_json(capsys, "requeue", path, "ptarget", "fifo")["moved"] == 3
    bodies = [m["body"] for m in peeked(capsys, path, "fifo")]
    assert bodies == ["'p-2'", "'f'", "'p5'"]  # in the source's delivery order


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("dlq", "dlq", "the same queue"),
        ("nope", "jobs", "no queue 'nope'"),
        ("dlq", "nope", "no queue 'nope'"),
    ],
)
def test_requeue_refuses_unknown_or_identical_queues(path, opener, capsys, source, target, message):
    store = opener()
    dead_letter(store, "jobs", ["a"])
    store.close()
    status, out, err = run(capsys, "requeue", path, source, target)
    assert_one_line_error(status, err, 2, "flinq requeue: error:", message)
    assert out == ""
    assert depths(capsys, path) == {"dlq": 1, "jobs": 0}


def test_requeue_moves_nothing_if_a_record_is_damaged(path, opener, capsys):
    store = opener()
    dead_letter(store, "jobs", ["a", "b", "c"])
    store.close()
    # A record too short for its header, after the good ones.
    env = lmdb.open(str(path), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put(fifo_key(10_000), b"\x00", db=env.open_db(b"q:dlq", txn=txn, create=False))
    env.close()

    status, out, err = run(capsys, "requeue", path, "dlq", "jobs")
    assert_one_line_error(status, err, 1, "flinq requeue: error:", "queue 'dlq'", "damaged")
    assert out == ""
    env = lmdb.open(str(path), max_dbs=8, readonly=True)
    with env.begin() as txn:
        entries = {
            name: txn.stat(env.open_db(f"q:{name}".encode(), txn=txn, create=False))["entries"]
            for name in ("dlq", "jobs")
        }
    env.close()
    assert entries == {"dlq": 4, "jobs": 0}


def test_requeue_grows_the_map_when_it_fills(path, opener):
    store = opener()
    dead_letter(store, "jobs", [bytes(1000)] * 3000)
    store.close()
    # Compacted, the file holds the dead letters and no free pages (how many
    # the first store left depends on how its writer batched), so the map
    # opened at its smallest cannot take a second copy of them.
    env = lmdb.open(str(path), max_dbs=64, readonly=True, lock=False)
    tight = path.parent / "tight"
    tight.mkdir()
    env.copy(str(tight), compact=True)
    env.close()
    os.replace(tight / "data.mdb", path / "data.mdb")
    with flinq.open(path, map_size=1 << 20, **FAST) as small:
        map_size = small.stats()["map_size"]
        assert admin.requeue(small, "dlq", "jobs") == 3000
        assert small.stats()["map_size"] > map_size
    assert [body for _, body, _ in stored_messages(path, "jobs")] == [bytes(1000)] * 3000


def test_requeue_refuses_queues_open_in_the_same_store(path, store):
    dead_letter(store, "jobs", ["a"])
    with pytest.raises(flinq.StoreError, match="open in this Store"):
        admin.requeue(store, "dlq", "jobs")
    with pytest.raises(flinq.StoreError, match="open in this Store"):
        admin.purge(store, "jobs")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_path_is_a_one_line_error_and_is_not_created(tmp_path, capsys, command):
    missing = tmp_path / "missing"
    status, out, err = run(capsys, command, missing, *COMMANDS[command])
    assert_one_line_error(status, err, 2, f"flinq {command}: error:", "no such directory")
    assert out == ""
    assert not missing.exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_file_is_not_a_store(tmp_path, capsys, command):
    file = tmp_path / "file"
    file.write_text("hello")
    status, _, err = run(capsys, command, file, *COMMANDS[command])
    assert_one_line_error(status, err, 2, "is not a directory")
    assert file.read_text() == "hello"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_directory_of_other_files_is_not_a_store(tmp_path, capsys, command):
    (tmp_path / "notes.txt").write_text("hello")
    status, _, err = run(capsys, command, tmp_path, *COMMANDS[command])
    assert_one_line_error(status, err, 2, "is not a flinq store")
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_lmdb_environment_that_is_not_flinq(tmp_path, capsys, command):
    env = lmdb.open(str(tmp_path), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"someone", b"else's")
    env.close()
    status, _, err = run(capsys, command, tmp_path, *COMMANDS[command])
    assert_one_line_error(status, err, 1, "not a flinq store")
    env = lmdb.open(str(tmp_path), max_dbs=2, readonly=True)
    with env.begin() as txn:
        assert list(txn.cursor()) == [(b"someone", b"else's")]  # left as it was
    env.close()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_store_of_a_newer_format(path, opener, capsys, command):
    store = opener()
    store.queue("jobs")
    store.queue("dlq")
    store.close()
    env = lmdb.open(str(path), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put(b"version", b"99", db=env.open_db(b"meta", txn=txn))
    env.close()
    status, _, err = run(capsys, command, path, *COMMANDS[command])
    assert_one_line_error(status, err, 1, "format 99", "upgrade flinq")


@pytest.mark.parametrize("command", ["peek", "purge"])
def test_an_unknown_queue_names_the_known_ones(path, opener, capsys, command):
    store = opener()
    store.queue("jobs")
    store.queue("dlq")
    store.close()
    extra = ["--yes"] if command == "purge" else []
    status, out, err = run(capsys, command, path, "jbos", *extra)
    assert_one_line_error(status, err, 2, "no queue 'jbos'", "queues: dlq, jobs")
    assert out == ""


def test_unknown_queue_in_a_store_without_queues(path, opener, capsys):
    opener().close()
    status, _, err = run(capsys, "peek", path, "jobs")
    assert_one_line_error(status, err, 2, "it has no queues")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_store_open_in_this_process_is_a_one_line_error(path, store, capsys, command):
    store.queue("jobs")
    store.queue("dlq")
    status, _, err = run(capsys, command, path, *COMMANDS[command])
    assert_one_line_error(status, err, 1, f"flinq {command}: error:", "in this process")


@pytest.mark.parametrize("count", ["-1", "two"])
def test_peek_refuses_a_bad_count(path, capsys, count):
    with pytest.raises(SystemExit) as exit_info:
        main(["peek", str(path), "jobs", "-n", count])
    assert exit_info.value.code == 2
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1
    assert "-n" in err


IN_FLIGHT_SETUP = (
    'jobs = store.queue("jobs", dead_letter="jobs.dead"); '
    'jobs.put_many(["a", "b", "c", "d"]); '
    "held = [jobs.reserve() for _ in range(3)]; "
    "held[2].nack(delay=3600); "  # delayed: still out of the ready set
    'store.queue("jobs.dead").put("poison")'
)


def test_stats_shows_the_owners_messages_in_flight(path, capsys):
    def published_in_flight() -> Any:
        status = owner_status(os.path.realpath(path)) or {}
        return status.get("queues", {}).get("jobs", {}).get("in_flight")

    with owned_by_child(path, IN_FLIGHT_SETUP) as child:
        # The owner publishes its status every second; wait for one that has it all.
        assert wait_until(lambda: published_in_flight() == 3)
        report = run_json(capsys, "stats", path)
        assert report["owner"]["pid"] == child.pid
        queues = queue_stats(report)
        assert queues["jobs"]["in_flight"] == 3
        assert queues["jobs"]["depth"] == 4
        assert (queues["jobs"]["dead_letter"], queues["jobs"]["dead_letters"]) == ("jobs.dead", 1)
        assert queues["jobs.dead"]["in_flight"] == 0
        status, out, _ = run(capsys, "stats", path)
        assert status == 0 and f"owned by pid {child.pid}" in out.splitlines()[0]
        assert table(out)["jobs"][:5] == ["fifo", "4", "3", "1", "jobs.dead"]
    assert not (path / "flinq.status.json").exists()  # removed by the owner's close
    assert queue_stats(run_json(capsys, "stats", path))["jobs"]["in_flight"] == 0


def test_a_dead_owners_status_is_not_trusted(path, capsys):
    with flinq.open(path) as store:
        store.queue("jobs").put("x")
    stale = {"pid": 2**22 + 12345, "written_at": time.time(), "queues": {"jobs": {"in_flight": 7}}}
    (path / "flinq.status.json").write_text(json.dumps(stale))
    report = run_json(capsys, "stats", path)
    assert report["owner"] is None
    assert queue_stats(report)["jobs"]["in_flight"] == 0
