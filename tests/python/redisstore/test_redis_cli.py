"""flinq stats, peek, purge and requeue on a Redis store, by URL."""

from __future__ import annotations

import json

import pytest

import flinq
from flinq.cli import main

pytest.importorskip("redis", reason="redis-py is not installed (pip install 'flinq[redis]')")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_stats_peek_purge_and_requeue_by_url(url, capsys):
    with flinq.open(url) as store:
        q = store.queue("jobs", dead_letter="jobs.dl")
        q.put_many([b"a", "b", "c"])
        q.reserve(timeout=10).dead_letter(error=ValueError("broken"))
        q.reserve(timeout=10)  # in flight: still stored

    status, out, _ = _run(capsys, "stats", url, "--json")
    assert status == 0
    rows = {row["name"]: row for row in json.loads(out)["queues"]}
    assert rows["jobs"]["depth"] == 2 and rows["jobs"]["dead_letters"] == 1
    assert rows["jobs.dl"]["depth"] == 1

    status, out, _ = _run(capsys, "peek", url, "jobs", "--json")
    assert status == 0
    peeked = json.loads(out)["messages"]
    assert [m["attempts"] for m in peeked] == [1, 0]  # given back at close, its delivery counted

    status, out, _ = _run(capsys, "requeue", url, "jobs.dl", "jobs", "--json")
    assert status == 0 and json.loads(out)["moved"] == 1
    status, out, _ = _run(capsys, "purge", url, "jobs", "--yes", "--json")
    assert status == 0 and json.loads(out)["purged"] == 3
    with flinq.open(url) as store:
        assert store.queue("jobs").qsize() == 0


def test_an_unknown_store_or_queue_is_a_usage_error(url, capsys):
    status, _, err = _run(capsys, "stats", url)
    assert status == 2 and "no flinq store" in err
    with flinq.open(url) as store:
        store.queue("jobs")
    status, _, err = _run(capsys, "peek", url, "nope")
    assert status == 2 and "no queue 'nope'" in err


def test_an_unreachable_server_exits_1_without_the_password(capsys):
    status, _, err = _run(capsys, "stats", "redis://:pw-secret@127.0.0.1:1/0")
    assert status == 1
    assert "127.0.0.1:1" in err and "pw-secret" not in err
