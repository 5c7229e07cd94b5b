"""The Redis store across real processes and real server faults: producers
and consumers in separate processes, a consumer killed with SIGKILL while
holding messages, redis-server killed and restarted with its append-only
file, and the server lost under blocked callers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import pytest

import flinq
from flinq.protocols import ERROR_HEADER

pytest.importorskip("redis", reason="redis-py is not installed (pip install 'flinq[redis]')")

WAIT = 20.0


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    """A child Python process running code (argv[1:] = args), its stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out


PRODUCER = """
    import sys, flinq
    url, me, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with flinq.open(url) as store:
        q = store.queue("jobs", visibility_timeout=5)
        bodies = [f"{me}-{i}" for i in range(count)]
        half = count // 2
        q.put_many(bodies[:half])
        for body in bodies[half:]:
            q.put(body)
"""

CONSUMER = """
    import json, os, sys, time, flinq
    url = sys.argv[1]
    with flinq.open(url) as store:
        q = store.queue("jobs", visibility_timeout=5)
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 1.5:
            batch = q.reserve_many(16, timeout=0.1)
            if batch:
                idle_since = time.monotonic()
            for m in batch:
                print(json.dumps([m.body, m.attempts, "start"]), flush=True)
                # every 7th message fails its first delivery: redelivered
                if m.attempts == 1 and int(m.body.split("-")[1]) % 7 == 0:
                    m.nack()
                    print(json.dumps([m.body, m.attempts, "nacked"]), flush=True)
                elif m.ack():
                    print(json.dumps([m.body, m.attempts, "acked"]), flush=True)
"""


def test_producers_and_consumers_in_processes_share_a_queue(url):
    per_producer = 150
    producers = [_python(PRODUCER, url, str(i), str(per_producer)) for i in range(3)]
    consumers = [_python(CONSUMER, url) for _ in range(3)]
    for p in producers:
        _finish(p)
    events = [json.loads(line) for c in consumers for line in _finish(c).splitlines()]
    expected = {f"{p}-{i}" for p in range(3) for i in range(per_producer)}
    acked = Counter(body for body, _, what in events if what == "acked")
    assert set(acked) == expected and set(acked.values()) == {1}  # each exactly once
    deliveries: dict[str, list[int]] = defaultdict(list)
    for body, attempts, what in events:
        if what == "start":
            deliveries[body].append(attempts)
    for body, attempts in deliveries.items():
        # one consumer at a time: every delivery has its own attempt number
        failing = int(body.split("-")[1]) % 7 == 0
        assert sorted(attempts) == ([1, 2] if failing else [1]), body
    with flinq.open(url) as store:
        q = store.queue("jobs")
        assert (q.qsize(), q.in_flight()) == (0, 0)


HOLDER = """
    import sys, time, flinq
    store = flinq.open(sys.argv[1])
    q = store.queue("jobs", visibility_timeout=0.5, max_attempts=2, dead_letter="jobs.dl")
    held = q.reserve_many(5, timeout=10)
    print(" ".join(f"{m.body}:{m.attempts}" for m in held), flush=True)
    time.sleep(60)  # killed here, holding them
"""


def _reserve_and_die(url: str) -> list[str]:
    child = _python(HOLDER, url)
    assert child.stdout is not None
    line = child.stdout.readline()
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=WAIT)  # reaps it and closes the pipes
    return line.split()


def test_a_killed_consumers_messages_come_back_then_go_to_the_dead_letters(url):
    with flinq.open(url) as store:
        q = store.queue("jobs", visibility_timeout=0.5, max_attempts=2, dead_letter="jobs.dl")
        q.put_many(range(5))
        assert _reserve_and_die(url) == [f"{i}:1" for i in range(5)]
        assert q.in_flight() == 5
        # After the visibility timeout another consumer gets them, the
        # killed delivery counted.
        assert _reserve_and_die(url) == [f"{i}:2" for i in range(5)]
        # Killed again with max_attempts spent: the next look retires them.
        with pytest.raises(flinq.Empty):
            q.reserve(timeout=1.5)
        dead = store.queue("jobs.dl")
        got = [dead.reserve(timeout=WAIT) for _ in range(5)]
        assert sorted(m.body for m in got) == list(range(5))
        assert {m.headers[ERROR_HEADER] for m in got} == {"max_attempts reached"}
        # 2 deliveries there (the take that found them spent is none), 1 here
        assert {m.attempts for m in got} == {3}
        assert q.qsize() == 0 and q.in_flight() == 0


def test_aof_restart_of_the_server_loses_nothing_put_or_acked(private_server):
    server = private_server(aof=True)
    with flinq.open(server.url) as store:
        q = store.queue("jobs", visibility_timeout=0.3)
        q.put_many(range(100))
        for i in range(100, 150):
            q.put(i)
        acked = []
        for m in q.reserve_many(40, timeout=WAIT):
            assert m.ack()
            acked.append(m.body)
        held = q.reserve_many(20, timeout=WAIT)  # in flight when the server dies
        q.reserve(timeout=WAIT).nack(delay=0.2)  # delayed when the server dies
        server.kill()  # SIGKILL: only the append-only file is left
        with pytest.raises(flinq.StoreConnectionError):
            q.put("lost: the server is down")
        server.start()
        # The server came back with its pending entries: the store's client
        # reconnects, and an ack of a message held across the restart works.
        assert held[0].ack()
    with flinq.open(server.url) as store:
        q = store.queue("jobs")
        left = []
        while True:
            try:
                left.append(q.get(timeout=1.0))
            except flinq.Empty:
                break
    assert len(acked) == 40
    assert sorted(left) == sorted(set(range(150)) - set(acked) - {held[0].body})


def test_blocked_callers_get_an_error_when_the_server_dies(private_server):
    server = private_server()
    store = flinq.open(server.url, socket_timeout=5, socket_connect_timeout=1)
    q = store.queue("jobs")
    errors: list[BaseException] = []

    def blocked(call: Any) -> None:
        try:
            call()
        except BaseException as exc:  # what it raised is the result
            errors.append(exc)

    threads = [
        threading.Thread(target=blocked, args=(call,))
        for call in (q.get, q.reserve, lambda: q.reserve_many(5, timeout=None))
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    server.kill()
    for thread in threads:
        thread.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 3
    assert all(isinstance(e, flinq.StoreConnectionError) for e in errors), errors
    store.close()


NO_TIMEOUT_HOLDER = """
    import sys, time, flinq
    store = flinq.open(sys.argv[1])
    q = store.queue("jobs")
    held = q.reserve_many(3, timeout=10)
    print(len(held), flush=True)
    time.sleep(60)  # killed here, holding them
"""


def test_a_dead_process_messages_come_back_on_the_next_open_without_a_timeout(url):
    with flinq.open(url) as store:
        store.queue("jobs").put_many(["a", "b", "c", "d"])
    child = _python(NO_TIMEOUT_HOLDER, url)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "3"
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=WAIT)
    with flinq.open(url) as store:
        q = store.queue("jobs")  # finds the dead consumer on this host
        got = [q.reserve(timeout=WAIT) for _ in range(4)]
        assert [(m.body, m.attempts) for m in got] == [("a", 2), ("b", 2), ("c", 2), ("d", 1)]
        assert q.ack_many(got) == 4
