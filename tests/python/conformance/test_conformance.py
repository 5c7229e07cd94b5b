"""What every durable backend must do, written against flinq.protocols only.

Every test here runs against each backend in conftest.BACKENDS. A test may
use only what flinq.protocols names (and flinq's exceptions): no backend's
own classes, files or private members.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from qhelpers import drain, vanishing_class

import flinq
from flinq.protocols import (
    ERROR_HEADER,
    ERROR_TYPE_HEADER,
    DurableMessage,
    DurableQueue,
    DurableStore,
)

WAIT = 10.0  # the longest a test waits for something it expects to happen


def wait_until(condition: Any, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# ---- the protocols ----------------------------------------------------------------


def test_store_queue_and_message_satisfy_the_protocols(store):
    assert isinstance(store, DurableStore)
    q = store.queue("jobs")
    assert isinstance(q, DurableQueue)
    q.put("x")
    message = q.reserve(timeout=WAIT)
    assert isinstance(message, DurableMessage)
    assert message.ack()


def test_store_is_a_context_manager_and_lists_its_queues(opener):
    with opener() as store:
        store.queue("b")
        store.queue("a")
        assert store.queues() == ["a", "b"]
        assert sorted(store.open_queues()) == ["a", "b"]
    with pytest.raises(flinq.StoreClosedError):
        store.queue("a")


def test_queue_returns_an_open_queue_checks_first_and_refuses_a_readonly_store(opener):
    store = opener()
    q = store.queue("jobs", maxsize=5)
    assert store.queue("jobs") is q and store.queue("jobs", maxsize=5) is q
    with pytest.raises(ValueError) as other:
        store.queue("jobs", maxsize=6, max_attempts=2)
    assert str(other.value) == (
        "queue 'jobs' is open with other settings (max_attempts, maxsize): "
        "reopen the store to change them"
    )
    with pytest.raises(TypeError):  # checked before the open queue is looked at
        store.queue("jobs", maxsize="5")
    with pytest.raises(ValueError):
        store.queue("", maxsize=5)
    store.close()
    readonly = opener(readonly=True)
    with pytest.raises(flinq.StoreError) as refused:
        readonly.queue("new")
    assert str(refused.value) == "a store opened with readonly=True has no writable queues"
    with pytest.raises(flinq.StoreError):  # refused before the arguments are looked at
        readonly.queue(7)  # type: ignore[arg-type]
    assert readonly.queues() == ["jobs"]
    readonly.close()
    assert opener().queue("jobs").maxsize == 5


# ---- put and get --------------------------------------------------------------------


def test_fifo_order_and_body_types(store):
    q = store.queue("jobs")
    bodies = [b"bytes", "str", bytearray(b"ba"), {"a": [1, 2]}, 7, None]
    for body in bodies:
        q.put(body)
    assert q.qsize() == len(bodies)
    assert [q.get(timeout=WAIT) for _ in bodies] == bodies
    assert q.empty()


def test_put_many_and_get_many(store):
    q = store.queue("jobs")
    q.put_many(range(10))
    got: list[Any] = []
    while len(got) < 10:
        got += q.get_many(4, timeout=WAIT)
    assert got == list(range(10))
    with pytest.raises(flinq.Empty):
        q.get_many(4, block=False)


def test_priorities_lowest_first_fifo_among_equals(store):
    q = store.queue("p", priority=True)
    for body, p in [("c", 5), ("a", 1), ("d", 5), ("b", 1), ("z", -3)]:
        q.put(body, priority=p)
    assert drain(q) == ["z", "a", "b", "c", "d"]


def test_priority_on_a_fifo_queue_is_refused(store):
    q = store.queue("f")
    with pytest.raises(TypeError):
        q.put("x", priority=1)
    assert q.qsize() == 0


def test_maxsize_bounds_ready_messages(store):
    q = store.queue("small", maxsize=2)
    q.put(1)
    q.put(2)
    assert q.full()
    with pytest.raises(flinq.Full):
        q.put_nowait(3)
    assert q.get() == 1


def test_get_waits_for_a_put_from_another_thread(store):
    q = store.queue("jobs")
    threading.Timer(0.05, q.put, args=("late",)).start()
    assert q.get(timeout=WAIT) == "late"


def test_timeouts_behave_as_in_memory(store):
    q = store.queue("jobs")
    with pytest.raises(flinq.Empty):
        q.get(timeout=0.01)
    with pytest.raises(flinq.Empty):
        q.reserve(timeout=0)
    assert q.reserve_many(3, timeout=0) == []
    for call in (lambda: q.get(True, -1), lambda: q.reserve(-1), lambda: q.get_many(2, True, -1)):
        with pytest.raises(ValueError):
            call()


# ---- at least once --------------------------------------------------------------------


def test_reserve_ack_removes_and_counts_attempts(opener):
    store = opener()
    q = store.queue("jobs")
    q.put("m", headers={"k": "v"})
    message = q.reserve(timeout=WAIT)
    assert (message.body, message.attempts, message.headers) == ("m", 1, {"k": "v"})
    assert q.in_flight() == 1 and q.qsize() == 0
    assert message.ack()
    assert not message.ack()  # settled already
    assert q.in_flight() == 0
    store.close()
    assert drain(opener().queue("jobs")) == []


def test_nack_requeues_and_counts_the_attempt(store):
    q = store.queue("jobs")
    q.put("m")
    assert q.reserve(timeout=WAIT).nack()
    again = q.reserve(timeout=WAIT)
    assert (again.body, again.attempts) == ("m", 2)
    again.ack()


def test_nack_with_delay_comes_back_later(store):
    q = store.queue("jobs")
    q.put("m")
    q.reserve(timeout=WAIT).nack(delay=0.05)
    assert q.qsize() == 0 and q.stats()["in_flight"] == 1  # delayed: out of the ready set
    assert q.reserve(timeout=WAIT).body == "m"


def test_message_as_context_manager_acks_or_nacks(store):
    q = store.queue("jobs")
    q.put_many(["ok", "fails"])
    with q.reserve(timeout=WAIT) as message:
        assert message.body == "ok"
    with pytest.raises(RuntimeError), q.reserve(timeout=WAIT):
        raise RuntimeError("handler failed")
    assert q.reserve(timeout=WAIT).attempts == 2


def test_release_does_not_count_the_attempt(store):
    q = store.queue("jobs")
    q.put("m")
    q.reserve(timeout=WAIT).release()
    assert q.reserve(timeout=WAIT).attempts == 1


def test_ack_many_settles_a_batch(store):
    q = store.queue("jobs")
    q.put_many(range(5))
    batch: list[Any] = []
    while len(batch) < 5:
        batch += q.reserve_many(5, timeout=WAIT)
    assert [m.body for m in batch] == list(range(5))
    assert q.ack_many(batch) == 5
    assert q.in_flight() == 0
    assert all(m.settled for m in batch)


def test_visibility_timeout_redelivers(store):
    q = store.queue("jobs", visibility_timeout=0.05)
    q.put("m")
    first = q.reserve(timeout=WAIT)
    second = q.reserve(timeout=WAIT)  # back once the timeout passed
    assert (second.body, second.attempts) == ("m", 2)
    assert not first.ack()  # that delivery is over
    assert second.ack()


def test_max_attempts_dead_letters(store):
    q = store.queue("jobs", max_attempts=2, dead_letter="jobs.dl")
    q.put("poison")
    q.reserve(timeout=WAIT).nack()
    q.reserve(timeout=WAIT).nack()
    assert q.qsize() == 0
    dead = store.queue("jobs.dl")
    assert dead.get(timeout=WAIT) == "poison"


@pytest.mark.parametrize("dead_letter", [None, "jobs.dl"])
def test_messages_whose_attempts_a_close_spent_are_all_retired_and_counted(opener, dead_letter):
    first = opener()
    q = first.queue("jobs", max_attempts=1, dead_letter=dead_letter)
    q.put_many(range(12))
    assert len(q.reserve_many(12, timeout=WAIT)) == 12
    first.close()  # each delivery counted: every attempt spent
    store = opener()
    q = store.queue("jobs")
    q.put("live")
    assert [m.body for m in q.reserve_many(20, timeout=WAIT)] == ["live"]
    assert q.stats()["dead_lettered"] == 12
    assert (q.qsize(), q.in_flight()) == (0, 1)
    if dead_letter is not None:
        dead = store.queue(dead_letter).reserve_many(20, timeout=WAIT)
        assert sorted(m.body for m in dead) == list(range(12))
        assert {m.headers[ERROR_HEADER] for m in dead} == {"max_attempts reached"}
        # One delivery before the close; the take that found them spent is
        # none, so this is their second.
        assert {m.attempts for m in dead} == {2}


def test_nack_without_requeue_and_dead_letter_to_a_named_queue(store):
    q = store.queue("jobs", dead_letter="dl")
    q.put_many(["a", "b"])
    q.reserve(timeout=WAIT).nack(requeue=False)
    q.reserve(timeout=WAIT).dead_letter("elsewhere")
    assert store.queue("dl").get(timeout=WAIT) == "a"
    assert store.queue("elsewhere").get(timeout=WAIT) == "b"


def reason(message: Any) -> tuple[str | None, str | None]:
    """The (error type, error text) headers of a dead letter."""
    headers = message.headers or {}
    return headers.get(ERROR_TYPE_HEADER), headers.get(ERROR_HEADER)


def test_dead_letters_carry_the_reason(store):
    q = store.queue("jobs", dead_letter="dl", max_attempts=1)
    q.put_many(["spent", "error", "plain", "moved", "moved-error"])
    q.reserve(timeout=WAIT).nack()
    q.reserve(timeout=WAIT).nack(requeue=False, error=ValueError("bad input"))
    q.reserve(timeout=WAIT).nack(requeue=False)
    q.reserve(timeout=WAIT).dead_letter("dl")
    q.reserve(timeout=WAIT).dead_letter(error=KeyError("k"))
    dl = store.queue("dl")
    got = {m.body: reason(m) for m in (dl.reserve(timeout=WAIT) for _ in range(5))}
    assert got == {
        "spent": ("", "max_attempts reached"),
        "error": ("ValueError", "bad input"),
        "plain": ("", "nacked without requeue"),
        "moved": ("", "dead-lettered by the application"),
        "moved-error": ("KeyError", "'k'"),
    }


def test_a_bad_error_argument_changes_nothing(store):
    q = store.queue("jobs")
    q.put("x")
    message = q.reserve(timeout=WAIT)
    with pytest.raises(TypeError):
        message.nack(requeue=False, error="not an exception")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        message.dead_letter(error=42)  # type: ignore[arg-type]
    assert not message.settled and q.in_flight() == 1
    assert message.ack()


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_an_error_whose_text_fails_is_described_and_the_message_dead_lettered(store):
    q = store.queue("jobs", dead_letter="jobs.dl")
    q.put_many(["nacked", "moved"])
    assert q.reserve(timeout=WAIT).nack(requeue=False, error=Unprintable())
    assert q.reserve(timeout=WAIT).dead_letter(error=Unprintable())
    assert (q.qsize(), q.in_flight()) == (0, 0)
    dead = store.queue("jobs.dl").reserve_many(5, timeout=WAIT)
    assert sorted(m.body for m in dead) == ["moved", "nacked"]
    assert {reason(m) for m in dead} == {("Unprintable", "<unprintable Unprintable>")}


def test_is_shutdown(store):
    q = store.queue("jobs")
    assert q.is_shutdown is False
    q.shutdown()
    assert q.is_shutdown is True


def test_ttl_expires_unread_messages(store):
    q = store.queue("jobs")
    q.put("short", ttl=0.01)
    q.put("kept", ttl=3600)
    time.sleep(0.05)
    assert q.get(timeout=WAIT) == "kept"
    assert q.stats()["expired"] == 1


@pytest.mark.parametrize(
    "options", [{}, {"priority": True}, {"visibility_timeout": 30}], ids=["fifo", "priority", "vt"]
)
def test_expired_messages_among_live_ones_are_all_retired_and_counted(store, options):
    q = store.queue("jobs", **options)
    for i in range(6):
        level = {"priority": i % 3} if options.get("priority") else {}
        q.put(f"short{i}", ttl=0.01, **level)
        q.put(f"kept{i}", **level)
    time.sleep(0.05)
    taken = []
    while len(taken) < 6:
        got = q.reserve_many(20, timeout=WAIT)
        assert got  # the kept ones are there
        taken += got
    assert sorted(m.body for m in taken) == [f"kept{i}" for i in range(6)]
    assert q.ack_many(taken) == 6
    stats = q.stats()
    assert (stats["expired"], stats["depth"], stats["in_flight"]) == (6, 0, 0)
    assert q.reserve_many(20, timeout=0.0) == []


def test_expired_messages_go_to_the_dead_letter_queue_without_their_ttl(store):
    q = store.queue("jobs", dead_letter="jobs.dl")
    for body in ("short0", "short1"):
        q.put(body, ttl=0.01)
    q.put("kept")
    time.sleep(0.05)
    kept = q.reserve(timeout=WAIT)
    assert kept.body == "kept"
    kept.ack()
    assert q.stats()["expired"] == 2
    store.flush()  # peek reads what is stored
    assert [row["expires_at"] for row in store.peek("jobs.dl", 5)] == [None, None]
    got = store.queue("jobs.dl").reserve_many(5, timeout=WAIT)
    assert sorted(m.body for m in got) == ["short0", "short1"]
    assert {m.attempts for m in got} == {1}  # never delivered before


# ---- iteration and consumers ------------------------------------------------------------


def test_messages_iterates_until_idle(store):
    q = store.queue("jobs")
    q.put_many(range(3))
    seen = []
    for message in q.messages(timeout=0.05):
        with message:
            seen.append(message.body)
    assert seen == [0, 1, 2]
    assert q.in_flight() == 0


def test_consume_handles_retries_and_dead_letters(store):
    q = store.queue("jobs")
    q.put_many(range(20))
    handled: list[int] = []
    lock = threading.Lock()

    def handler(message: Any) -> None:
        if message.body == 13:
            raise ValueError("unlucky")
        with lock:
            handled.append(message.body)

    with q.consume(handler, workers=2, prefetch=4, max_attempts=2, retry_backoff=0.0) as c:
        assert wait_until(lambda: len(handled) == 19 and c.stats()["dead_lettered"] == 1)
    assert sorted(handled) == [i for i in range(20) if i != 13]
    dead = store.queue("jobs.dead").reserve(timeout=WAIT)
    assert dead.body == 13
    assert reason(dead) == ("ValueError", "unlucky")  # the handler's last error
    assert q.in_flight() == 0


# ---- statistics -------------------------------------------------------------------------


def test_stats_count_what_happened(store):
    q = store.queue("jobs")
    q.put_many(range(3))
    q.get()
    message = q.reserve(timeout=WAIT)
    stats = q.stats()
    assert stats["depth"] == 1 and stats["in_flight"] == 1
    assert stats["enqueued"] == 3
    message.ack()
    assert q.stats()["acked"] == 1
    assert isinstance(store.stats(), dict)


def test_inspect_and_peek_see_committed_messages(store):
    q = store.queue("jobs", dead_letter="jobs.dl")
    q.put_many([b"a", "b"])
    store.flush()
    (jobs,) = [row for row in store.inspect()["queues"] if row["name"] == "jobs"]
    assert (jobs["depth"], jobs["dead_letter"]) == (2, "jobs.dl")
    peeked = store.peek("jobs", 5)
    assert [(m["body_type"], m["body"]) for m in peeked] == [("bytes", b"a"), ("str", b"b")]
    with pytest.raises(KeyError):
        store.peek("nope", 1)


def test_inspect_and_peek_count_attempts_ttls_ages_and_dead_letters(store):
    before = time.time()
    store.queue("dlq").put("dead")
    q = store.queue("jobs", dead_letter="dlq")
    q.put("a")
    q.put("b", headers={"k": "v"})
    q.put("c", ttl=0.01)
    taken = q.reserve(timeout=WAIT)  # in flight: attempted
    after = time.time()
    store.flush()
    assert wait_until(lambda: time.time() > after + 0.02)  # c's TTL has passed
    report = store.inspect()
    assert report["path"] == store.path and report["as_of"] >= after
    rows = {row["name"]: row for row in report["queues"]}
    jobs, dlq = rows["jobs"], rows["dlq"]
    assert (jobs["depth"], jobs["attempted"], jobs["expired"]) == (3, 1, 1)
    assert (jobs["dead_letter"], jobs["dead_letters"]) == ("dlq", 1)
    assert (dlq["depth"], dlq["dead_letter"], dlq["dead_letters"]) == (1, None, None)
    assert before <= jobs["oldest_enqueued_at"] <= after
    assert jobs["oldest_age_seconds"] >= report["as_of"] - after
    peeked = store.peek("jobs", 5)
    assert peeked[0]["id"] == taken.id
    assert [m["attempts"] for m in peeked] == [1, 0, 0]
    assert [m["headers"] for m in peeked] == [None, {"k": "v"}, None]
    assert [m["expires_at"] is None for m in peeked] == [True, True, False]
    assert {m["body_type"] for m in peeked} == {"str"}
    assert taken.ack()


def test_an_unknown_queue_is_a_key_error_listing_the_queues(opener):
    store = opener()
    with pytest.raises(KeyError) as empty:
        store.peek("nope", 1)
    assert str(empty.value) == f"no queue 'nope' in {store.path} (it has no queues)"
    names = [f"q{i:02}" for i in range(12)]
    for name in names:
        store.queue(name).put(name)
    store.close()
    store = opener()  # the queues stored, none open: purge and move may touch them
    listing = f"queues: {', '.join(names[:10])}, ... (12 in all)"
    calls = [
        lambda: store.peek("nope", 1),
        lambda: store.purge_queue("nope"),
        lambda: store.move_messages("nope", "q00"),
        lambda: store.move_messages("q00", "nope"),
    ]
    for call in calls:
        with pytest.raises(KeyError) as unknown:
            call()
        assert str(unknown.value) == f"no queue 'nope' in {store.path} ({listing})"
    assert [m["body"] for m in store.peek("q00", 5)] == [b"q00"]  # nothing moved


@pytest.mark.parametrize(
    "raw", [b"{not json", b"\xff", b"[1, 2]", b'{"maxsize": "ten"}', b'{"priority": 1}']
)
def test_damaged_queue_settings_are_a_corrupt_store_naming_the_queue(backend, raw):
    store = backend.open()
    store.queue("jobs").put("a")
    store.queue("ok").put("b")
    store.queue("other").put("c")
    where = store.path
    store.close()
    backend.write_settings("jobs", raw)
    store = backend.open()
    calls = [
        store.inspect,
        lambda: store.peek("jobs", 1),
        lambda: store.purge_queue("jobs"),
        lambda: store.move_messages("jobs", "ok"),
        lambda: store.queue("jobs"),
    ]
    try:
        for call in calls:
            with pytest.raises(flinq.StoreCorruptError) as damaged:
                call()
            assert "queue 'jobs'" in str(damaged.value) and where in str(damaged.value)
        with pytest.raises(KeyError):  # not the damage of another queue
            store.peek("nope", 1)
        # The others still work, inspection of one queue included.
        assert [m["body"] for m in store.peek("ok", 5)] == [b"b"]
        assert store.move_messages("other", "ok") == 1
        assert store.purge_queue("other") == 0
        assert [store.queue("ok").get(timeout=WAIT) for _ in range(2)] == ["b", "c"]
    finally:
        store.close()


# ---- closing -----------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["get", "reserve", "get_many", "reserve_many"])
def test_close_wakes_blocked_callers(store, call):
    q = store.queue("jobs")
    raised: list[BaseException] = []

    def blocked() -> None:
        try:
            if call in ("get_many", "reserve_many"):
                getattr(q, call)(3, timeout=None) if call == "reserve_many" else q.get_many(3)
            else:
                getattr(q, call)()
        except BaseException as exc:  # what it raised is the result
            raised.append(exc)

    thread = threading.Thread(target=blocked)
    thread.start()
    time.sleep(0.05)
    store.close()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], flinq.StoreClosedError)


def test_close_stops_consumers(store):
    q = store.queue("jobs")
    consumer = q.consume(lambda m: None, workers=2)
    store.close()
    assert wait_until(lambda: not consumer.running)


# ---- persistence --------------------------------------------------------------------------


def test_reopen_keeps_messages_order_attempts_and_settings(opener):
    store = opener()
    q = store.queue("jobs", max_attempts=4, dead_letter="jobs.dl", visibility_timeout=30)
    p = store.queue("p", priority=True)
    q.put_many(["a", "b", "c"])
    p.put("low", priority=9)
    p.put("high", priority=1)
    q.reserve(timeout=WAIT)  # in flight at close: comes back
    store.close()
    store = opener()
    q = store.queue("jobs")
    assert (q.max_attempts, q.dead_letter, q.visibility_timeout) == (4, "jobs.dl", 30)
    first = q.reserve(timeout=WAIT)
    assert (first.body, first.attempts) == ("a", 2)  # its delivery before close counts
    assert drain(q) == ["b", "c"]
    assert drain(store.queue("p")) == ["high", "low"]


def test_flush_makes_batch_puts_durable(opener):
    store = opener()
    store.queue("jobs").put("m")
    store.flush()
    store.close()
    assert drain(opener().queue("jobs")) == ["m"]


def test_serializer_is_kept_with_the_store(opener):
    store = opener(serializer="json")
    store.queue("jobs").put({"a": [1]})
    store.close()
    store = opener()  # no serializer named: the store's own
    assert store.queue("jobs").get(timeout=WAIT) == {"a": [1]}
    store.close()
    with pytest.raises(ValueError):
        opener(serializer="pickle")


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": "3"},
        {"visibility_timeout": -1},
        {"maxsize": "x"},
        {"dead_letter": 5},
        {"dead_letter": "jobs"},
        {"priority": "yes"},
    ],
)
def test_bad_queue_settings_change_nothing(store, kwargs):
    with pytest.raises((TypeError, ValueError)):
        store.queue("jobs", **kwargs)
    assert store.queues() == []


@pytest.mark.parametrize("name", ["", "a\x00b", "x" * 600, 5])
def test_bad_queue_names_are_refused(store, name):
    with pytest.raises((TypeError, ValueError)):
        store.queue(name)
    assert store.queues() == []


def test_an_undecodable_message_is_dead_lettered_not_lost(opener):
    with vanishing_class() as gone, opener() as store:
        store.queue("jobs").put_many(["a", gone(), "c"])
    with opener() as store:
        q = store.queue("jobs")
        assert q.get_many(10) == ["a", "c"]
        assert store.queue("jobs.dead").qsize() == 1
