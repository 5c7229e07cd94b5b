"""The Redis store beyond the conformance suite: its own options, bad
input, the reason a dead letter carries, delays and priorities, names,
server versions, and how an unreachable server is reported."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

import flinq
from flinq.protocols import ERROR_HEADER, ERROR_TYPE_HEADER, DurableStore

pytest.importorskip("redis", reason="redis-py is not installed (pip install 'flinq[redis]')")

WAIT = 10.0


def test_open_by_url_returns_a_redis_store(url, stores):
    store = stores(url)
    assert isinstance(store, DurableStore)
    assert type(store).__name__ == "RedisStore"
    assert store in flinq.backends.open_stores()
    store.close()
    assert store not in flinq.backends.open_stores()


def test_unix_socket_and_client_argument(private_server, stores):
    import redis

    server = private_server(unix_socket=True)
    store = stores(server.unix_url)
    store.queue("jobs").put("over the socket")
    client = redis.Redis(unix_socket_path=server.socket_path)
    try:
        other = stores("redis://", client=client)
        assert other.queue("jobs").get(timeout=WAIT) == "over the socket"
        other.close()
        assert client.ping()  # a client given is left open
    finally:
        client.close()


def test_a_client_that_decodes_responses_is_refused(url):
    import redis

    client = redis.Redis.from_url(url.partition("?")[0], decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            flinq.open("redis://", client=client)
        with pytest.raises(TypeError):
            flinq.open("redis://", client=object())
    finally:
        client.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_names_the_url_without_its_password():
    port = _closed_port()
    with pytest.raises(ConnectionError) as caught:
        flinq.open(f"redis://someone:s3cret-pw@127.0.0.1:{port}/0")
    assert isinstance(caught.value, flinq.StoreConnectionError)
    text = str(caught.value)
    assert f"127.0.0.1:{port}" in text and "someone:***@" in text
    assert "s3cret-pw" not in text


def test_a_wrong_password_is_refused_without_showing_it(private_server):
    server = private_server(password="right-one")
    with pytest.raises(flinq.StoreConnectionError) as caught:
        flinq.open(f"redis://:wrong-one@127.0.0.1:{server.port}/0")
    assert "wrong-one" not in str(caught.value)
    with flinq.open(server.url) as store:  # the right one
        store.queue("q").put(1)


@pytest.mark.parametrize(
    ("version", "named"),
    [("4.0.9", "Streams"), ("5.0.14", "XAUTOCLAIM"), ("6.0.16", "XAUTOCLAIM")],
)
def test_servers_before_6_2_are_refused_naming_the_version(version, named):
    from flinq.redisstore.connection import check_version

    with pytest.raises(flinq.StoreVersionError, match=named) as caught:
        check_version(version)
    assert version in str(caught.value)
    assert check_version("6.2.0") == (6, 2, 0)
    assert check_version("7.0.15") == (7, 0, 15)


def test_queue_names_cannot_collide_in_the_key_space(url, stores):
    store = stores(url)
    names = ["a:b", "a%3Ab", "a", "a:s:0", "{x}", "a b", "ü"]
    for name in names:
        store.queue(name).put(name)
    assert store.queues() == sorted(names)
    for name in names:
        q = store.queue(name)
        assert (q.qsize(), q.get(timeout=WAIT)) == (1, name)


def test_bad_input_is_refused_and_changes_nothing(url, stores):
    store = stores(url)
    q = store.queue("jobs")
    p = store.queue("p", priority=True)
    cases: list[tuple[type[BaseException], Any]] = [
        (TypeError, lambda: q.put("x", priority=1)),
        (TypeError, lambda: p.put("x", priority="1")),
        (TypeError, lambda: p.put("x", priority=True)),
        (OverflowError, lambda: p.put("x", priority=1 << 60)),
        (TypeError, lambda: q.put("x", headers={"a": 1})),
        (ValueError, lambda: q.put("x", ttl=-1)),
        (TypeError, lambda: q.put(threading.Lock())),  # pickle refuses it
        (TypeError, lambda: q.put_many([1, threading.Lock()])),
        (ValueError, lambda: q.get_many(0)),
        (TypeError, lambda: q.reserve_many("2")),
        (ValueError, lambda: q.reserve(-1)),
        (ValueError, lambda: flinq.open(url.partition("?")[0], prefix="")),
        (ValueError, lambda: flinq.open(url, serializer="nope")),
    ]
    for kind, call in cases:
        with pytest.raises(kind):
            call()
    assert (q.qsize(), p.qsize()) == (0, 0)
    q.put("m")
    message = q.reserve(timeout=WAIT)
    with pytest.raises(ValueError):
        message.nack(delay=-1)
    assert not message.settled and message.ack()


def test_dead_letters_carry_the_reason(url, stores):
    store = stores(url)
    q = store.queue("jobs", dead_letter="dl", max_attempts=2)
    q.put_many(["by-error", "by-app", "no-requeue", "spent"])
    q.reserve(timeout=WAIT).nack(requeue=False, error=KeyError("no such user"))
    q.reserve(timeout=WAIT).dead_letter(error=RuntimeError("bad payload"))
    q.reserve(timeout=WAIT).nack(requeue=False)
    spent = q.reserve(timeout=WAIT)
    spent.nack()
    q.reserve(timeout=WAIT).nack()  # second attempt of two
    dead = store.queue("dl")
    got = {}
    for _ in range(4):
        m = dead.reserve(timeout=WAIT)
        got[m.body] = (m.headers[ERROR_TYPE_HEADER], m.headers[ERROR_HEADER], m.attempts)
        m.ack()
    assert got == {
        "by-error": ("KeyError", "'no such user'", 2),
        "by-app": ("RuntimeError", "bad payload", 2),
        "no-requeue": ("", "nacked without requeue", 2),
        "spent": ("", "max_attempts reached", 3),
    }


def test_dead_letter_to_a_named_queue_without_an_error(url, stores):
    store = stores(url)
    q = store.queue("jobs")
    q.put("x")
    assert q.reserve(timeout=WAIT).dead_letter("elsewhere")
    m = store.queue("elsewhere").reserve(timeout=WAIT)
    assert m.headers == {ERROR_TYPE_HEADER: "", ERROR_HEADER: "dead-lettered by the application"}


def test_delayed_nacks_wait_and_others_pass_them(url, stores):
    store = stores(url)
    q = store.queue("jobs")
    q.put_many(["late", "next"])
    q.reserve(timeout=WAIT).nack(delay=0.3)
    started = time.monotonic()
    assert q.reserve(timeout=WAIT).body == "next"
    again = q.reserve(timeout=WAIT)
    assert again.body == "late" and again.attempts == 2
    assert time.monotonic() - started >= 0.25  # not before it was due (server clock)
    again.ack()


def test_a_delayed_nack_is_seen_by_another_store(url, stores):
    first, second = stores(url), stores(url)
    first.queue("jobs").put("m")
    first.queue("jobs").reserve(timeout=WAIT).nack(delay=0.1)
    message = second.queue("jobs").reserve(timeout=WAIT)
    assert (message.body, message.attempts) == ("m", 2)


def test_priorities_across_levels_and_nacks(url, stores):
    store = stores(url)
    q = store.queue("p", priority=True)
    for body, priority in [("c", 9), ("a", 0), ("b", 5), ("a2", 0), ("neg", -2)]:
        q.put(body, priority=priority)
    q.put_many(["m1", "m2"], priority=5)
    first = q.reserve(timeout=WAIT)
    assert (first.body, first.priority) == ("neg", -2)
    first.nack()  # back in place: still first
    order = []
    while True:
        try:
            message = q.reserve(timeout=0)
        except flinq.Empty:
            break
        order.append(message.body)
        message.ack()
    assert order == ["neg", "a", "a2", "b", "m1", "m2", "c"]


def test_a_late_ack_after_a_redelivery_does_nothing(url, stores):
    first, second = stores(url), stores(url)
    q1 = first.queue("jobs", visibility_timeout=0.1)
    q1.put("m")
    old = q1.reserve(timeout=WAIT)
    new = second.queue("jobs").reserve(timeout=WAIT)  # after the timeout, elsewhere
    assert new.attempts == 2
    assert not old.ack() and not old.nack()
    assert new.ack()
    assert q1.in_flight() == 0 and q1.qsize() == 0


def test_get_many_and_reserve_many_take_across_processes_once(url, stores):
    a, b = stores(url), stores(url)
    a.queue("jobs").put_many(range(100))
    got: list[int] = []
    lock = threading.Lock()

    def take(store: Any) -> None:
        q = store.queue("jobs")
        while True:
            try:
                bodies = q.get_many(7, timeout=0.2)
            except flinq.Empty:
                return
            with lock:
                got.extend(bodies)

    threads = [threading.Thread(target=take, args=(s,)) for s in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert sorted(got) == list(range(100))


def test_bounded_put_waits_for_room(url, stores):
    store = stores(url)
    q = store.queue("small", maxsize=2)
    q.put_many([1, 2])
    with pytest.raises(flinq.Full):
        q.put(3, timeout=0.05)
    with pytest.raises(ValueError):
        q.put_many([1, 2, 3])  # can never fit
    threading.Timer(0.1, q.get).start()
    q.put(3, timeout=WAIT)
    assert q.qsize() == 2


def test_shutdown_stops_puts_and_ends_waits(url, stores):
    q = stores(url).queue("jobs")
    q.put("left")
    q.shutdown()
    with pytest.raises(flinq.ShutDown):
        q.put("more")
    assert q.get(timeout=WAIT) == "left"
    with pytest.raises(flinq.ShutDown):
        q.get(timeout=WAIT)


def test_delete_queue_and_purge(url, stores):
    store = stores(url)
    q = store.queue("jobs")
    q.put_many(range(3))
    q.reserve(timeout=WAIT).nack(delay=60)
    assert q.purge() == 3
    assert q.qsize() == 0 and q.stats()["in_flight"] == 0
    q.put("x")
    store.delete_queue("jobs")
    assert store.queues() == []
    with pytest.raises(flinq.StoreClosedError):
        q.put("y")
    with pytest.raises(KeyError):
        store.delete_queue("jobs")
    assert store.queue("jobs").qsize() == 0


def test_metrics_see_redis_queues(url, stores):
    prometheus_client = pytest.importorskip("prometheus_client")
    from flinq import metrics

    store = stores(url)
    store.queue("jobs").put_many(range(4))
    registry = prometheus_client.CollectorRegistry()
    metrics.register(registry)
    depth = registry.get_sample_value("flinq_depth", {"queue": "jobs", "store": store.path})
    assert depth == 4.0


@pytest.mark.parametrize("visibility_timeout", [None, 30])
def test_acks_out_of_order_keep_every_count_right(url, stores, visibility_timeout):
    store = stores(url)
    q = store.queue("jobs", visibility_timeout=visibility_timeout)
    q.put_many(range(30))
    first = q.reserve_many(10, timeout=WAIT)
    second = q.reserve_many(10, timeout=WAIT)
    assert q.ack_many(second[::2]) == 5  # later ones first, with gaps
    assert (q.qsize(), q.in_flight()) == (10, 15)
    assert q.ack_many(first[3:]) == 7
    assert (q.qsize(), q.in_flight()) == (10, 8)
    first[0].nack()  # back in place, first again
    assert (q.qsize(), q.in_flight()) == (11, 7)
    assert q.reserve(timeout=WAIT).body == 0
    rest = [m.body for m in q.reserve_many(20, timeout=WAIT)]
    assert rest == list(range(20, 30))
    assert [m.body for m in first[1:3] + second[1::2]] == [1, 2, 11, 13, 15, 17, 19]
    assert q.ack_many(first[1:3] + second[1::2]) == 7
    assert store.peek("jobs", 50) and len(store.peek("jobs", 50)) == 11  # the 11 reserved


def test_the_async_face_works_by_polling(url, stores):
    import asyncio

    q = stores(url).queue("jobs")
    face = q.async_q

    async def main() -> tuple[Any, Any]:
        await face.put("now")
        first = await face.get()
        waiting = asyncio.create_task(face.get())
        await asyncio.sleep(0.05)
        q.put("later")
        return first, await asyncio.wait_for(waiting, WAIT)

    assert asyncio.run(main()) == ("now", "later")


@pytest.mark.parametrize("visibility_timeout", [None, 30])
def test_acks_across_sequence_lengths_leave_no_entry_behind(url, stores, visibility_timeout):
    # One put_many lands in one millisecond: ids ms-0 ... ms-29, whose
    # sequence parts have one or two digits.
    store = stores(url)
    q = store.queue("jobs", visibility_timeout=visibility_timeout)
    q.put_many(range(30))
    first = q.reserve_many(15, timeout=WAIT)
    second = q.reserve_many(15, timeout=WAIT)
    assert q.ack_many(second) == 15  # above the oldest pending one: deleted
    assert (q.qsize(), q.in_flight()) == (0, 15)
    assert q.ack_many(first) == 15  # below the first undelivered one: trimmed
    assert (q.qsize(), q.in_flight()) == (0, 0)
    assert store.peek("jobs", 50) == []
    q.put("next")
    assert q.get(timeout=WAIT) == "next"


@pytest.mark.parametrize("visibility_timeout", [None, 30])
def test_a_server_that_forgot_the_scripts_loses_no_step(url, stores, visibility_timeout):
    # SCRIPT FLUSH (as after a restart without persistence of the script
    # cache) before each step: every step loads what it needs and still
    # happens exactly once, acks whose trim was refused included.
    import redis

    client = redis.Redis.from_url(url.partition("?")[0])
    try:
        q = stores(url).queue("jobs", visibility_timeout=visibility_timeout)
        client.script_flush()
        q.put_many(range(30))
        first = q.reserve_many(10, timeout=WAIT)
        client.script_flush()
        second = q.reserve_many(10, timeout=WAIT)
        assert [m.body for m in first + second] == list(range(20))
        client.script_flush()
        assert q.ack_many(second) == 10  # above a pending one
        client.script_flush()
        assert q.ack_many(first) == 10
        assert (q.qsize(), q.in_flight()) == (10, 0)
        client.script_flush()
        assert q.get_many(20, timeout=WAIT) == list(range(20, 30))
        assert (q.qsize(), q.in_flight()) == (0, 0)
    finally:
        client.close()


def test_peek_purge_and_requeue_read_only_the_settings_of_their_queues(url, stores, monkeypatch):
    # Every queue's settings (HGETALL) are never read; every queue's name
    # (HKEYS) only to list them in the error about an unknown queue.
    store = stores(url)
    for name in ("jobs", "other", "third"):
        store.queue(name).put(name)
    calls: list[str] = []

    def counted(command: str) -> Any:
        real = getattr(store.client, command)

        def call(*args: Any) -> Any:
            calls.append(command)
            return real(*args)

        return call

    for command in ("hgetall", "hkeys"):
        monkeypatch.setattr(store.client, command, counted(command))
    assert [m["body"] for m in store.peek("jobs", 5)] == [b"jobs"]
    assert store.move_messages("other", "jobs") == 1
    assert store.purge_queue("third") == 1
    assert calls == []
    with pytest.raises(KeyError, match="queues: jobs, other, third"):
        store.peek("nope", 1)
    assert calls == ["hkeys"]


@pytest.mark.parametrize("dead_letter", [None, "jobs.dl"])
def test_messages_with_spent_attempts_are_retired_together(url, stores, monkeypatch, dead_letter):
    # One round trip retires them all, not one per message: a take that
    # finds 40 spent messages asks the connection pool a few times only
    # (twice more for each script the server forgot: another test's SCRIPT
    # FLUSH on the shared server).
    first = stores(url)
    q = first.queue("jobs", max_attempts=1, dead_letter=dead_letter)
    q.put_many(range(40))
    assert len(q.reserve_many(40, timeout=WAIT)) == 40
    first.close()  # each delivery counted: every attempt spent
    store = stores(url)
    q = store.queue("jobs")
    q.put("live")
    pool = store.client.connection_pool
    get_connection = pool.get_connection
    asked: list[object] = []

    def counted(*args: Any, **options: Any) -> Any:
        asked.append(args)
        return get_connection(*args, **options)

    monkeypatch.setattr(pool, "get_connection", counted)
    assert [m.body for m in q.reserve_many(50, timeout=WAIT)] == ["live"]
    assert len(asked) < 10
    monkeypatch.undo()
    assert q.stats()["dead_lettered"] == 40
    if dead_letter is not None:
        assert sorted(store.queue(dead_letter).get_many(50, timeout=WAIT)) == list(range(40))


def test_a_batch_of_script_calls_survives_a_server_that_forgot_the_script(url, stores):
    import redis

    from flinq.redisstore.keys import queue_base
    from flinq.redisstore.scripts import Scripts

    store = stores(url)
    store.queue("a").put_many(range(2))
    store.queue("b").put("x")
    client = redis.Redis.from_url(url.partition("?")[0])
    try:
        client.script_flush()
        counts = Scripts(client).counts
        calls = [([queue_base(store.prefix, name)], []) for name in ("a", "b", "a")]
        assert counts.run_many(calls) == [[2, 0, 0], [1, 0, 0], [2, 0, 0]]
        assert counts.run_many(calls[1:]) == [[1, 0, 0], [2, 0, 0]]  # loaded now
    finally:
        client.close()
