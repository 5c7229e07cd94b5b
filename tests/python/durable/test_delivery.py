"""At-least-once delivery: reserve/ack/nack, redelivery, dead letters, TTL, message fields."""

from __future__ import annotations

import queue
import time

import pytest
from dhelpers import drain, reserve_all, stored, stored_messages
from qhelpers import HANG_GUARD, wait_until

import flinq
import flinq.lmdbstore.log
from flinq.protocols import ERROR_HEADER, ERROR_TYPE_HEADER

# --------------------------------------------------------------------------- reserve / ack


def test_reserve_then_ack_removes(path, opener):
    store = opener()
    q = store.queue("q")
    q.put_many(["a", "b"])
    msg = q.reserve()
    assert isinstance(msg, flinq.Message)
    assert msg.body == "a"
    assert q.qsize() == 1
    assert q.in_flight() == 1
    assert msg.ack() is True
    assert q.in_flight() == 0
    assert q.get_nowait() == "b"
    store.close()
    assert stored(path, "q") == []


def test_reserved_message_is_not_delivered_twice(store):
    q = store.queue("q")
    q.put("only")
    msg = q.reserve()
    with pytest.raises(queue.Empty):
        q.reserve(timeout=0.05)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    msg.ack()


def test_reserve_blocks_until_put(store):
    from qhelpers import spawn, still_blocked

    q = store.queue("q")
    consumer = spawn(q.reserve)
    assert still_blocked(consumer)
    q.put("x")
    msg = consumer.value()
    assert msg.body == "x"
    assert msg.ack()


def test_ack_twice_returns_false(path, opener):
    store = opener()
    q = store.queue("q")
    q.put("a")
    msg = q.reserve()
    assert msg.ack() is True
    assert msg.ack() is False
    assert msg.nack() is False
    assert q.stats()["acked"] == 1
    store.close()
    assert stored(path, "q") == []


def test_nack_then_ack_returns_false(store):
    q = store.queue("q")
    q.put("a")
    msg = q.reserve()
    assert msg.nack() is True
    assert msg.ack() is False
    assert msg.nack() is False
    again = q.reserve(timeout=0)
    assert again.id == msg.id
    assert again.ack() is True


def test_nack_requeue_comes_back_with_attempts_plus_one(path, opener):
    store = opener()
    q = store.queue("q")
    q.put("a")
    first = q.reserve()
    assert first.attempts == 1
    assert first.nack(requeue=True) is True
    assert q.qsize() == 1
    second = q.reserve(timeout=0)
    assert second.id == first.id
    assert second.body == "a"
    assert second.attempts == 2
    second.nack()
    stats = q.stats()
    assert stats["nacked"] == 2
    assert stats["redelivered"] >= 2
    store.close()
    # attempts are persisted: the next delivery after a reopen is the third
    assert stored_messages(path, "q") == [(first.id, "a", 3)]


def test_nack_delay_comes_back_later_not_before(store):
    q = store.queue("q")
    q.put("later")
    q.put("other")
    msg = q.reserve()
    delay = 0.5
    start = time.monotonic()
    assert msg.nack(delay=delay) is True
    # not before: the other message is next, then nothing
    assert q.reserve(timeout=0).body == "other"
    with pytest.raises(queue.Empty):
        q.get_nowait()
    again = q.reserve(timeout=HANG_GUARD)
    waited = time.monotonic() - start
    assert again.id == msg.id
    assert again.attempts == 2
    assert waited >= delay * 0.95, f"redelivered after {waited:.3f}s, before delay={delay}"
    again.ack()


def test_nack_delay_survives_reopen(path, opener):
    store = opener()
    q = store.queue("q")
    q.put("x")
    q.reserve().nack(delay=60.0)
    assert q.qsize() == 0
    store.close()
    # a delayed message is still stored: it comes back after a restart
    assert stored_messages(path, "q")[0][1:] == ("x", 2)


def test_nack_negative_delay_is_refused(store):
    q = store.queue("q")
    q.put("x")
    msg = q.reserve()
    with pytest.raises(ValueError):
        msg.nack(delay=-1)
    assert msg.ack() is True


def test_message_context_manager_acks_on_success(path, opener):
    store = opener()
    q = store.queue("q")
    q.put("ok")
    with q.reserve() as msg:
        assert msg.body == "ok"
    assert msg.ack() is False  # already settled
    assert q.in_flight() == 0
    assert q.qsize() == 0
    store.close()
    assert stored(path, "q") == []


def test_message_context_manager_nacks_on_exception(path, opener):
    store = opener()
    q = store.queue("q")
    q.put("fails")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), q.reserve() as msg:
        raise Boom
    assert msg.ack() is False  # settled by the nack
    assert q.in_flight() == 0
    again = q.reserve(timeout=0)
    assert again.id == msg.id
    assert again.attempts == 2
    store.close()
    assert stored(path, "q") == ["fails"]


def test_visibility_timeout_redelivers_in_running_store(store):
    vt = 0.2
    q = store.queue("q", visibility_timeout=vt)
    q.put("slow")
    start = time.monotonic()
    first = q.reserve()
    assert first.attempts == 1
    second = q.reserve(timeout=HANG_GUARD)
    waited = time.monotonic() - start
    assert second.id == first.id
    assert second.attempts == 2
    assert waited >= vt * 0.95
    assert second.ack() is True
    assert q.in_flight() == 0


def test_settling_after_visibility_timeout_returns_false(store):
    # The first delivery timed out and the message was delivered again: the
    # late ack of the first delivery must not settle the second one.
    q = store.queue("q", visibility_timeout=0.1)
    q.put("x")
    first = q.reserve()
    second = q.reserve(timeout=HANG_GUARD)
    assert second.id == first.id
    assert first.ack() is False
    assert q.in_flight() == 1
    assert second.ack() is True
    assert q.in_flight() == 0


def test_late_ack_after_visibility_timeout_returns_false(path, opener):
    store = opener()
    q = store.queue("q", visibility_timeout=0.1)
    q.put("x")
    first = q.reserve()
    assert wait_until(lambda: q.qsize() == 1)  # timed out: ready again
    assert first.ack() is False
    assert first.nack() is False
    assert q.reserve(timeout=0).attempts == 2
    store.close()
    assert stored(path, "q") == ["x"]


def test_ack_in_time_prevents_redelivery(store):
    q = store.queue("q", visibility_timeout=1.0)
    q.put("x")
    msg = q.reserve()
    assert msg.ack() is True
    with pytest.raises(queue.Empty):
        q.reserve(timeout=1.3)


def test_unacked_messages_come_back_after_reopen(path, opener):
    store = opener()
    q = store.queue("q")
    q.put_many(["a", "b", "c"])
    a = q.reserve()
    b = q.reserve()
    b.ack()
    c = q.reserve()
    c.nack()
    store.close()
    store = opener()
    q = store.queue("q")
    msgs = reserve_all(q)
    assert [(m.id, m.body, m.attempts) for m in msgs] == [(a.id, "a", 2), (c.id, "c", 2)]


def test_unacked_come_back_after_reopen_with_visibility_timeout(path, opener):
    store = opener()
    q = store.queue("q", visibility_timeout=60.0)
    q.put("x")
    q.reserve()
    store.close()
    store = opener()
    msg = store.queue("q", visibility_timeout=60.0).reserve(timeout=0)
    assert msg.body == "x"
    assert msg.attempts == 2


# --------------------------------------------------------------------------- dead letters


def test_max_attempts_moves_to_dead_letter(path, opener):
    store = opener()
    q = store.queue("q", max_attempts=2, dead_letter="dlq")
    q.put("poison", headers={"k": "v"})
    q.put("fine")
    m1 = q.reserve()
    assert m1.body == "poison"
    m1.nack()
    assert q.reserve().body == "fine"  # nacked one went to the back in memory
    m2 = q.reserve(timeout=0)
    assert (m2.body, m2.attempts) == ("poison", 2)
    assert m2.nack() is True  # attempts spent: dead-lettered
    assert q.qsize() == 0
    assert q.in_flight() == 1  # "fine"
    dlq = store.queue("dlq")
    assert dlq.qsize() == 1
    dead = dlq.reserve(timeout=0)
    assert dead.body == "poison"
    assert dead.headers == {"k": "v", ERROR_TYPE_HEADER: "", ERROR_HEADER: "max_attempts reached"}
    assert q.stats()["dead_lettered"] == 1
    dead.nack()
    store.close()
    assert stored(path, "q") == ["fine"]
    assert stored(path, "dlq") == ["poison"]
    assert "dlq" in flinq.open(path, readonly=True).queues()


def test_dead_letter_queue_created_on_demand(path, opener):
    store = opener()
    q = store.queue("q", max_attempts=1, dead_letter="dead")
    assert store.queues() == ["q"]
    q.put("x")
    q.reserve().nack()
    assert "dead" in store.queues()
    assert store.queue("dead").get_nowait() == "x"


def test_max_attempts_without_dead_letter_drops(path, opener):
    store = opener()
    q = store.queue("q", max_attempts=2)
    q.put("poison")
    q.reserve().nack()
    q.reserve(timeout=0).nack()
    assert q.qsize() == 0
    assert q.in_flight() == 0
    assert store.queues() == ["q"]
    store.close()
    assert stored(path, "q") == []


def test_max_attempts_with_visibility_timeout(path, opener):
    store = opener()
    q = store.queue("q", max_attempts=1, visibility_timeout=0.1, dead_letter="dlq")
    q.put("stuck")
    msg = q.reserve()
    dlq = store.queue("dlq")
    assert wait_until(lambda: dlq.qsize() == 1)
    assert q.qsize() == 0
    assert q.in_flight() == 0
    assert msg.ack() is False
    store.close()
    assert stored(path, "q") == []
    assert stored(path, "dlq") == ["stuck"]


@pytest.mark.parametrize("many", [False, True])
def test_a_timeout_during_reserve_cannot_write_a_retired_message_back(
    path, opener, monkeypatch, many
):
    # reserve() logs the delivery's new attempts count. If the visibility
    # timeout retired the delivery before that was logged, the log held the
    # retirement's delete and then the set, which wrote the message back into
    # its queue: after a restart it was both there and dead-lettered.
    real_append = flinq.lmdbstore.log.PendingLog.append
    real_extend = flinq.lmdbstore.log.PendingLog.extend

    def slow_set(op_kind):
        if op_kind == flinq.lmdbstore.log.OP_SET:
            time.sleep(0.3)  # the visibility timeout (0.05 s) passes meanwhile

    def append(log, op):
        slow_set(op[0])
        real_append(log, op)

    def extend(log, ops):
        if ops:
            slow_set(ops[0][0])
        real_extend(log, ops)

    store = opener()
    q = store.queue("q", max_attempts=1, visibility_timeout=0.05, dead_letter="dlq")
    q.put("stuck")
    store.flush()
    monkeypatch.setattr(flinq.lmdbstore.log.PendingLog, "append", append)
    monkeypatch.setattr(flinq.lmdbstore.log.PendingLog, "extend", extend)
    if many:
        q.reserve_many(10)
    else:
        q.reserve()
    dlq = store.queue("dlq")
    assert wait_until(lambda: dlq.qsize() == 1)
    monkeypatch.undo()
    store.close()
    assert stored(path, "q") == []
    assert stored(path, "dlq") == ["stuck"]


def test_max_attempts_counts_deliveries_across_restarts(path, opener):
    # A consumer that dies on a poison message never nacks it: each restart
    # is a delivery that was not acked in time. Once max_attempts deliveries
    # are spent, the message must be dead-lettered instead of being delivered
    # again forever.
    settings = {"max_attempts": 2, "dead_letter": "dlq"}
    store = opener()
    q = store.queue("q", **settings)
    q.put("poison")
    assert q.reserve().attempts == 1  # ... and the consumer dies
    store.close()
    store = opener()
    q = store.queue("q", **settings)
    assert q.reserve(timeout=0).attempts == 2  # ... and dies again
    store.close()
    store = opener()
    q = store.queue("q", **settings)
    again = [(m.body, m.attempts) for m in reserve_all(q)]
    assert again == [], f"delivered after max_attempts deliveries: {again}"
    assert drain(store.queue("dlq")) == ["poison"]


def test_nack_requeue_false_dead_letters_at_once(path, opener):
    store = opener()
    q = store.queue("q", max_attempts=10, dead_letter="dlq")
    q.put("bad")
    msg = q.reserve()
    assert msg.nack(requeue=False) is True
    assert q.qsize() == 0
    dlq = store.queue("dlq")
    assert dlq.get_nowait() == "bad"
    store.close()
    assert stored(path, "q") == []


def test_nack_requeue_false_without_dead_letter_drops(path, opener):
    store = opener()
    q = store.queue("q")
    q.put("bad")
    q.put("good")
    assert q.reserve().nack(requeue=False) is True
    assert q.qsize() == 1
    store.close()
    assert stored(path, "q") == ["good"]


def _writer_commits(store, q):
    """True if the writer thread still commits batch-mode puts on its own."""
    q.put("probe")
    return wait_until(lambda: store.stats()["pending"] == 0, timeout=5.0)


def test_timed_out_message_dead_lettered_by_writer(path, opener):
    store = opener()
    q = store.queue("q", max_attempts=1, visibility_timeout=0.05, dead_letter="dlq")
    q.put("x")
    q.reserve()
    dlq = store.queue("dlq")
    assert wait_until(lambda: dlq.qsize() == 1)
    assert _writer_commits(store, q)
    store.close()
    assert stored(path, "q") == ["probe"]
    assert stored(path, "dlq") == ["x"]


def test_dead_letter_naming_a_priority_queue(path, opener):
    # Dead letters go to a FIFO queue. Naming an existing priority queue is
    # refused up front, or else dead-lettering into it must work; it must
    # never lose the message or kill the writer thread.
    store = opener()
    store.queue("pq", priority=True)
    try:
        q = store.queue("q", max_attempts=1, visibility_timeout=0.05, dead_letter="pq")
    except ValueError:
        return
    q.put_many(["timed-out", "nacked"])
    q.reserve()
    assert wait_until(lambda: store.queue("pq", priority=True).qsize() == 1, timeout=2.0)
    q.reserve().nack(requeue=False)
    assert store.queue("pq", priority=True).qsize() == 2
    assert _writer_commits(store, q)


# --------------------------------------------------------------------------- TTL


def test_ttl_expired_message_not_delivered(path, opener):
    store = opener()
    q = store.queue("q")
    q.put("short", ttl=0.05)
    q.put("long", ttl=60)
    q.put("forever")
    time.sleep(0.1)
    assert q.get_nowait() == "long"
    assert q.get_nowait() == "forever"
    with pytest.raises(queue.Empty):
        q.get_nowait()
    assert q.stats()["expired"] == 1
    store.close()
    assert stored(path, "q") == []


@pytest.mark.parametrize("how", ["get", "get_many", "reserve"])
def test_ttl_expired_message_skipped_by_every_consumer(store, how):
    q = store.queue("q")
    q.put("dead", ttl=0.05)
    q.put("alive")
    time.sleep(0.1)
    if how == "get":
        assert q.get() == "alive"
    elif how == "get_many":
        assert q.get_many(10) == ["alive"]
    else:
        assert q.reserve().body == "alive"
    assert q.qsize() == 0


def test_ttl_expired_message_goes_to_dead_letter(path, opener):
    store = opener()
    q = store.queue("q", dead_letter="dlq")
    q.put("stale", ttl=0.05, headers={"why": "ttl"})
    time.sleep(0.1)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    dlq = store.queue("dlq")
    assert dlq.qsize() == 1
    # ... and can be consumed from there (its TTL must not drop it again)
    dead = dlq.reserve(timeout=0)
    assert dead.body == "stale"
    assert dead.headers == {"why": "ttl"}
    dead.nack()
    store.close()
    assert stored(path, "dlq") == ["stale"]


def test_ttl_expiry_survives_reopen(path, opener):
    store = opener()
    q = store.queue("q", dead_letter="dlq")
    q.put("stale", ttl=0.1)
    q.put("fresh")
    store.close()
    time.sleep(0.15)
    store = opener()
    q = store.queue("q", dead_letter="dlq")
    assert drain(q) == ["fresh"]
    assert store.queue("dlq").qsize() == 1


def test_ttl_not_expired_is_delivered_with_its_ttl(store):
    q = store.queue("q")
    q.put("x", ttl=30)
    msg = q.reserve()
    assert msg.ttl == pytest.approx(30, abs=1e-3)
    msg.ack()


# --------------------------------------------------------------------------- fields


def test_headers_round_trip(path, opener):
    headers = {"trace": "abc-123", "ü": "漢字", "empty": ""}
    store = opener()
    q = store.queue("q")
    q.put(b"body", headers=headers)
    q.put(b"plain")
    msg = q.reserve()
    assert msg.headers == headers
    assert msg.body == b"body"
    assert q.reserve().headers is None
    store.close()
    store = opener()
    q = store.queue("q")
    msg = q.reserve(timeout=0)
    assert msg.headers == headers
    assert msg.body == b"body"
    assert q.get_nowait() == b"plain"
    # get() of a message with headers returns just the body
    q.put("again", headers={"a": "b"})
    assert q.get_nowait() == "again"


def test_message_fields(path, opener):
    store = opener()
    q = store.queue("q")
    p = store.queue("p", priority=True)
    before = time.time()
    q.put({"x": 1}, headers={"h": "1"}, ttl=100)
    p.put("pri", priority=-3)
    after = time.time()
    msg = q.reserve()
    assert isinstance(msg.id, int)
    assert msg.body == {"x": 1}
    assert msg.priority == 0
    assert msg.attempts == 1
    assert before <= msg.enqueued_at <= after
    assert msg.headers == {"h": "1"}
    assert msg.ttl == pytest.approx(100, abs=1e-3)
    pm = p.reserve()
    assert pm.priority == -3
    assert pm.ttl is None
    assert pm.headers is None
    assert pm.id > msg.id  # one sequence for the whole store
    assert "Message" in repr(msg)
    enqueued = msg.enqueued_at
    msg.nack()
    again = q.reserve()
    assert (again.id, again.attempts, again.enqueued_at) == (msg.id, 2, enqueued)
    store.close()
    store = opener()
    msg = store.queue("q").reserve(timeout=0)
    assert msg.enqueued_at == enqueued
    assert msg.ttl == pytest.approx(100, abs=1e-3)
    assert msg.headers == {"h": "1"}
    assert msg.attempts == 3


def test_message_ids_increase_in_put_order(store):
    q = store.queue("q")
    q.put_many(range(10))
    for i in range(10, 20):
        q.put(i)
    ids = [m.id for m in reserve_all(q)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 20


@pytest.mark.parametrize("durability", ["sync", "batch"])
def test_timers_run_while_producers_are_busy(opener, durability):
    # Visibility timeouts and delayed nacks must fire while other threads keep
    # committing puts (in sync mode they commit in their own threads).
    from qhelpers import spawn

    store = opener(durability=durability)
    q = store.queue("q", visibility_timeout=0.1)
    q.put_many(["timed-out", "delayed"])
    q.reserve()
    q.reserve().nack(delay=0.1)
    other = store.queue("other")
    stop = []

    def produce():
        while not stop:
            other.put(b"load")

    producers = [spawn(produce) for _ in range(3)]
    try:
        back = []
        for _ in range(2):
            try:
                back.append(q.reserve(timeout=3.0).body)
            except queue.Empty:
                break
    finally:
        stop.append(True)
        for p in producers:
            p.value()
    assert sorted(back) == ["delayed", "timed-out"]
