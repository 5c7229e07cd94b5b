"""Regression tests for failures found by feeding durable stores bad input
and odd situations (issue 11, A1-A10): data loss, hangs, files written
through planted links, errors that named the wrong thing."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import stat
import threading
import time

import pytest
from dhelpers import FAST, POSIX, ok, reserve_all, run_script, stored
from qhelpers import vanishing_class

import flinq
from flinq.cli import main
from flinq.protocols import DECODE_ERROR_HEADER

WAIT = 10.0  # seconds a test waits for a thread it expects to wake


def store_with_undecodable(path, name="jobs", **queue_kwargs):
    """A closed store whose queue holds good-1, good-2, an undecodable
    pickle, good-4; returns the bad message's id."""
    with vanishing_class() as gone, flinq.open(path, **FAST) as store:
        q = store.queue(name, **queue_kwargs)
        q.put("good-1")
        q.put("good-2")
        q.put(gone())
        q.put("good-4")
        messages = reserve_all(q)
        bad_id = messages[2].id
        for m in messages:
            m.nack()  # back, attempts 1: restored as they were
    return bad_id


def dead_letters(path, name, capsys):
    """The headers of each message stored in queue name (bodies undecoded)."""
    assert main(["peek", str(path), name, "--json"]) == 0
    return [m["headers"] for m in json.loads(capsys.readouterr().out)["messages"]]


# ---- A1: undecodable bodies are never lost -----------------------------------------


def test_get_many_returns_the_good_and_dead_letters_the_undecodable(path, caplog, capsys):
    bad_id = store_with_undecodable(path)
    with flinq.open(path, **FAST) as store:
        q = store.queue("jobs")
        assert q.get_many(10) == ["good-1", "good-2", "good-4"]
    assert f"message {bad_id} " in caplog.text
    assert stored(path, "jobs") == []
    (headers,) = dead_letters(path, "jobs.dead", capsys)
    assert "flinq_test_gone" in headers[DECODE_ERROR_HEADER]
    with flinq.open(path, **FAST) as store:
        dead = store.queue("jobs.dead")
        with pytest.raises(flinq.StoreCorruptError):
            dead.reserve(0)  # still undecodable here: moved on, never dropped
        assert store.queue("jobs.dead.dead").qsize() == 1


def test_get_names_the_undecodable_message_and_keeps_it(path, capsys):
    bad_id = store_with_undecodable(path, dead_letter="bad")
    with flinq.open(path, **FAST) as store:
        q = store.queue("jobs")
        assert q.get() == "good-1"
        assert q.get() == "good-2"
        with pytest.raises(flinq.StoreCorruptError, match=f"message {bad_id}"):
            q.get()
        assert q.get() == "good-4"
        assert store.queue("bad").qsize() == 1
    assert stored(path, "jobs") == []
    assert len(dead_letters(path, "bad", capsys)) == 1


def test_get_many_of_only_undecodable_messages_raises_naming_them(path, capsys):
    with vanishing_class() as gone, flinq.open(path, **FAST) as store:
        store.queue("jobs").put(gone())
    with flinq.open(path, **FAST) as store:
        q = store.queue("jobs")
        with pytest.raises(flinq.StoreCorruptError, match="message 0 "):
            q.get_many(10)
        assert q.qsize() == 0
    assert len(dead_letters(path, "jobs.dead", capsys)) == 1


def test_reserve_of_an_undecodable_message_moves_it_and_goes_on(path, capsys):
    bad_id = store_with_undecodable(path)
    with flinq.open(path, **FAST) as store:
        q = store.queue("jobs")
        assert q.reserve(0).body == "good-1"
        assert q.reserve(0).body == "good-2"
        with pytest.raises(flinq.StoreCorruptError, match=f"message {bad_id}"):
            q.reserve(0)
        assert q.in_flight() == 2
        assert q.reserve(0).body == "good-4"
    assert stored(path, "jobs") == ["good-1", "good-2", "good-4"]  # none was acked
    assert len(dead_letters(path, "jobs.dead", capsys)) == 1


# ---- A2: one undecodable message does not kill a consumer worker -------------------


def test_consume_worker_survives_an_undecodable_message(path):
    with vanishing_class() as gone, flinq.open(path, **FAST) as store:
        q = store.queue("jobs")
        for i in range(16):
            q.put(gone() if i == 5 else i)
    handled = []
    lock = threading.Lock()
    with flinq.open(path, **FAST) as store:
        q = store.queue("jobs")

        def handler(message):
            with lock:
                handled.append(message.body)

        consumer = q.consume(handler, workers=2, prefetch=8)
        deadline = time.monotonic() + WAIT
        while len(handled) < 15 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert consumer.stats()["workers"] == 2
        assert consumer.stop(drain=True, timeout=WAIT)
        assert sorted(handled) == [i for i in range(16) if i != 5]
        assert q.in_flight() == 0
        assert store.queue("jobs.dead").qsize() == 1
    assert stored(path, "jobs") == []


# ---- A3: names that LMDB cannot keep apart are refused ------------------------------


@pytest.mark.parametrize("name", ["jobs\x00a", "\x00", "bad\udcff", "x" * 600])
def test_unusable_queue_names_are_refused_before_anything_is_created(store, name):
    with pytest.raises(ValueError):
        store.queue(name)
    with pytest.raises(ValueError):
        store.queue("ok", dead_letter=name)
    assert store.queues() == []


def test_names_differing_after_a_nul_cannot_share_a_database(store):
    store.queue("jobs").put(1)
    with pytest.raises(ValueError):
        store.queue("jobs\x00b")
    assert store.queue("jobs").qsize() == 1


# ---- A4: flush_interval is checked; the writer never dies silently ------------------


@pytest.mark.parametrize("interval", [float("inf"), 1e10, float("nan"), 0, -1])
def test_unusable_flush_interval_is_refused(path, interval):
    with pytest.raises(ValueError):
        flinq.open(path, flush_interval=interval)
    assert not os.path.exists(path)


def test_flush_interval_must_be_a_number(path):
    with pytest.raises(TypeError):
        flinq.open(path, flush_interval="1")


class WriterBreaks(Exception):
    pass


def test_a_failing_writer_thread_wakes_every_waiter_with_the_error(opener, path, monkeypatch):
    store = opener(max_pending=4, batch_size=1000, flush_interval=60.0)
    q = store.queue("jobs")
    r = store.queue("idle")
    q.put("kept")
    store.flush()
    outcomes: dict[str, BaseException] = {}

    def blocked(name, call):
        try:
            call()
        except BaseException as exc:  # what it raised is the result
            outcomes[name] = exc

    def fail(*args, **kwargs):
        raise WriterBreaks("injected")

    # The writer's next round fails before it commits; a producer waits for
    # room meanwhile (the log is full) and a consumer waits for a message.
    for i in range(4):
        q.put(i)
    monkeypatch.setattr(store._log, "drain", fail)
    threads = [
        threading.Thread(target=blocked, args=("put", lambda: q.put("waits"))),
        threading.Thread(target=blocked, args=("get", lambda: r.get())),
    ]
    for t in threads:
        t.start()
    store._log.kick()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    assert isinstance(outcomes["put"], flinq.StoreWriteError)
    assert isinstance(outcomes["get"], flinq.StoreWriteError)
    with pytest.raises(flinq.StoreWriteError, match="writer"):
        q.put("refused")
    monkeypatch.undo()
    store.close()  # commits what the log held
    assert stored(path, "jobs") == ["kept", 0, 1, 2, 3]


# ---- A5: queue() checks every argument before creating anything ---------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_attempts": 0}, ValueError),
        ({"max_attempts": "3"}, TypeError),
        ({"visibility_timeout": -1}, ValueError),
        ({"visibility_timeout": float("inf")}, ValueError),
        ({"maxsize": "x"}, TypeError),
        ({"maxsize": 1 << 70}, ValueError),
        ({"dead_letter": 5}, TypeError),
        ({"dead_letter": ""}, ValueError),
        ({"priority": "yes"}, TypeError),
    ],
)
def test_refused_queue_arguments_leave_no_queue_behind(store, path, kwargs, error):
    with pytest.raises(error):
        store.queue("jobs", **kwargs)
    assert store.queues() == []
    store.close()
    with flinq.open(path, **FAST) as again:
        assert again.queues() == []


def test_nack_to_a_dead_letter_queue_after_refused_arguments_keeps_the_message(store):
    with pytest.raises(TypeError):
        store.queue("jobs", dead_letter=5)
    q = store.queue("jobs", dead_letter="dead")
    q.put("m")
    assert q.reserve(0).nack(requeue=False)
    assert store.queue("dead").get_nowait() == "m"


# ---- A6: close() wakes every thread blocked in the store ----------------------------


# Threads blocked in get/reserve/get_many/reserve_many, and consumers: the
# conformance suite's test_close_wakes_blocked_callers and
# test_close_stops_consumers, for every backend.


def test_a_non_daemon_thread_blocked_in_get_does_not_keep_the_process_alive(path):
    proc = run_script(
        """
        import sys, threading, flinq
        store = flinq.open(sys.argv[1])
        q = store.queue("jobs")
        def wait():
            try:
                q.get()
            except flinq.StoreClosedError:
                print("woke")
        threading.Thread(target=wait).start()
        """,
        path,
    )
    assert ok(proc).strip() == "woke"


# ---- A7: planted links are not written through; files are private ------------------

needs_posix = pytest.mark.skipif(not POSIX, reason="symbolic links and modes are POSIX")


@needs_posix
@pytest.mark.parametrize("planted", ["lock.mdb", "flinq.lock", "data.mdb"])
def test_open_refuses_a_planted_link_in_a_new_store(tmp_path, planted):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    path = tmp_path / "store"
    path.mkdir(mode=0o700)
    os.symlink(victim, path / planted)
    with pytest.raises(flinq.StorePermissionError, match="symbolic link"):
        flinq.open(path)
    assert victim.read_bytes() == b"precious"


@needs_posix
@pytest.mark.parametrize(
    "planted", ["flinq.status.json.tmp", "flinq.clean", "flinq.session", "flinq.status.json"]
)
def test_status_and_clean_marker_never_write_through_links(tmp_path, planted):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    path = tmp_path / "store"
    with flinq.open(path, **FAST) as store:
        store.queue("q").put(1)
    with contextlib.suppress(FileNotFoundError):
        (path / planted).unlink()
    os.symlink(victim, path / planted)
    with contextlib.suppress(flinq.StorePermissionError), flinq.open(path, **FAST) as store:
        store.queue("q").put(2)
        time.sleep(0.05)
    assert victim.read_bytes() == b"precious"


@needs_posix
def test_store_files_are_private_whatever_the_umask(path):
    old = os.umask(0)
    try:
        with flinq.open(path, **FAST) as store:
            store.queue("q").put(1)
            deadline = time.monotonic() + WAIT
            while not (path / "flinq.status.json").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert stat.S_IMODE(os.stat(path / "flinq.status.json").st_mode) == 0o600
    finally:
        os.umask(old)
    for name in os.listdir(path):
        mode = stat.S_IMODE(os.stat(path / name).st_mode)
        assert mode & 0o077 == 0, (name, oct(mode))


@needs_posix
def test_a_store_directory_others_may_write_is_refused(path):
    path.mkdir()
    os.chmod(path, 0o777)
    with pytest.raises(flinq.StorePermissionError, match="writable by every user"):
        flinq.open(path)
    assert os.listdir(path) == []


# ---- A8: errors say what happened ---------------------------------------------------


def test_a_map_too_small_at_creation_grows(path):
    with flinq.open(path, map_size=4096, **FAST) as store:
        store.queue("q").put(b"x" * 100_000)
    assert stored(path, "q") == [b"x" * 100_000]


@needs_posix
def test_a_read_only_directory_is_a_permission_error(tmp_path):
    path = tmp_path / "store"
    with flinq.open(path, **FAST) as store:
        store.queue("q").put(1)
    code = """
        import os, sys, flinq
        if os.geteuid() == 0:  # root ignores modes: run as nobody
            os.setgid(65534)
            os.setuid(65534)
        try:
            flinq.open(sys.argv[1])
        except flinq.StorePermissionError as exc:
            print("permission", isinstance(exc, PermissionError))
        except Exception as exc:
            print("other", type(exc).__name__, exc)
        """
    os.chmod(tmp_path, 0o755)
    os.chmod(path, 0o555)
    try:
        assert ok(run_script(code, path)).strip() == "permission True"
    finally:
        os.chmod(path, 0o700)


@pytest.mark.parametrize("call", ["get", "reserve", "get_many"])
def test_negative_timeout_is_a_value_error_as_in_memory(store, call):
    q = store.queue("jobs")
    memory = flinq.Queue()
    for target in (q, memory):
        with pytest.raises(ValueError):
            if call == "get_many":
                target.get_many(3, True, -1)
            elif call == "get":
                target.get(True, -1)
            else:
                target.reserve(-1)


# ---- A9: get_many loops against one deadline ----------------------------------------


def test_get_many_over_thousands_of_expired_messages_does_not_recurse(store):
    q = store.queue("jobs")
    for i in range(3000):
        q.put(i, ttl=0.001)
    q.put("live")
    time.sleep(0.01)
    assert q.get_many(1) == ["live"]
    for i in range(3000):
        q.put(i, ttl=0.001)
    time.sleep(0.01)
    with pytest.raises(flinq.Empty):
        q.get_many(1, block=False)
    started = time.monotonic()
    with pytest.raises(flinq.Empty):
        q.get_many(1, timeout=0.2)
    assert q.stats()["expired"] == 6000
    assert time.monotonic() - started < WAIT


# ---- A10: settings are stored with the queue, the serializer with the store ---------


def test_queue_settings_come_back_on_reopen(path):
    with flinq.open(path, **FAST) as store:
        store.queue("jobs", max_attempts=5, dead_letter="jobs.dead", visibility_timeout=30)
    with flinq.open(path, **FAST) as store:
        q = store.queue("jobs")
        assert (q.max_attempts, q.dead_letter, q.visibility_timeout) == (5, "jobs.dead", 30)


def test_reopening_with_other_settings_updates_them(path):
    with flinq.open(path, **FAST) as store:
        store.queue("jobs", max_attempts=5, dead_letter="dl", maxsize=7)
    with flinq.open(path, **FAST) as store:
        q = store.queue("jobs", max_attempts=2, dead_letter=None)
        assert (q.max_attempts, q.dead_letter, q.maxsize) == (2, None, 7)
    with flinq.open(path, **FAST) as store:
        q = store.queue("jobs")
        assert (q.max_attempts, q.dead_letter, q.maxsize) == (2, None, 7)


def test_an_open_queue_refuses_other_settings(store):
    q = store.queue("jobs", max_attempts=5)
    assert store.queue("jobs") is q
    assert store.queue("jobs", max_attempts=5) is q
    with pytest.raises(ValueError, match="max_attempts"):
        store.queue("jobs", max_attempts=6)


def test_stats_shows_the_stored_dead_letter_queue(path, capsys):
    with flinq.open(path, **FAST) as store:
        store.queue("jobs", dead_letter="jobs.dead").put(1)
    assert main(["stats", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (jobs,) = [q for q in report["queues"] if q["name"] == "jobs"]
    assert jobs["dead_letter"] == "jobs.dead"


def test_a_pickle_store_refuses_the_json_serializer_at_open(path):
    with flinq.open(path, **FAST) as store:
        store.queue("q").put({"a": 1})
    with pytest.raises(ValueError, match="pickle"):
        flinq.open(path, serializer="json")
    with flinq.open(path, **FAST) as store:  # no serializer given: the stored one
        assert store.queue("q").get() == {"a": 1}


def test_a_json_store_reopens_with_json(path):
    with flinq.open(path, serializer="json", **FAST) as store:
        store.queue("q").put({"a": [1]})
    with flinq.open(path, **FAST) as store:
        assert store.queue("q").get() == {"a": [1]}
        with pytest.raises(TypeError):
            store.queue("q").put(object())  # json cannot: refused, as at first
    with pytest.raises(ValueError):
        flinq.open(path, serializer="pickle")


def test_a_custom_serializer_must_be_given_again(path):
    class Upper:
        def dumps(self, obj):
            return pickle.dumps(obj)

        def loads(self, data):
            return pickle.loads(data)

    with flinq.open(path, serializer=Upper(), **FAST) as store:
        store.queue("q").put([1])
    with pytest.raises(ValueError, match="Upper"):
        flinq.open(path)
    with flinq.open(path, serializer=Upper(), **FAST) as store:
        assert store.queue("q").get() == [1]
