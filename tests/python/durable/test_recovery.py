"""Recovery: what a reopened store delivers, in which order, with which ids; and what
survives a process that dies (os._exit, SIGKILL) in each durability mode."""

from __future__ import annotations

import random

import lmdb
import pytest
from dhelpers import FAST, drain, ok, reserve_all, run_script, script, stored, stored_messages

import flinq
from flinq.lmdbstore.ids import BLOCK, SEQ_RESERVE

# Prelude of the child scripts: die() ends the process the hard way (no close,
# no atexit, no flush), as a crash would.
DIE = """
import os, signal, sys
import flinq
def die():
    sys.stdout.flush()
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(70)
"""


def run_child(body: str, *args):
    proc = run_script(DIE + script(body), *args, check_signal=False)
    assert proc.returncode in (-9, 70), (
        f"child ended with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc.stdout


# --------------------------------------------------------------------------- order


def test_fifo_reload_order(path, opener):
    store = opener()
    q = store.queue("q")
    q.put_many(range(50))
    for i in range(50, 100):
        q.put(i)
    taken = [q.get() for _ in range(10)]  # 0..9 consumed
    held = [q.reserve() for _ in range(5)]  # 10..14 in flight, unacked
    held[1].ack()  # 11 acked
    held[3].nack()  # 13 back (at the end in memory)
    store.close()
    assert taken == list(range(10))
    expected = [i for i in range(10, 100) if i != 11]
    assert stored(path, "q") == expected
    # the reload is stable: the same again, and again
    assert stored(path, "q") == expected


def test_priority_reload_order(path, opener):
    rnd = random.Random(1234)
    priorities = [rnd.choice([-(2**63), -5, -1, 0, 0, 1, 3, 3, 7, 2**63 - 1]) for _ in range(300)]
    store = opener()
    q = store.queue("p", priority=True)
    for i, p in enumerate(priorities):
        if i % 3 == 0:
            q.put_many([(i, "many")], priority=p)
        else:
            q.put((i, "one"), priority=p)
    # delivery order: by priority, FIFO (put order) among equals
    expected = sorted(range(300), key=lambda i: (priorities[i], i))
    in_memory = reserve_all(q)
    assert [m.body[0] for m in in_memory] == expected
    for m in in_memory[:20]:
        m.ack()
    for m in in_memory[20:40]:
        m.nack()
    store.close()  # 40.. still in flight: they come back too
    reloaded = stored_messages(path, "p", priority=True)
    assert [body[0] for _, body, _ in reloaded] == expected[20:]
    ids = [i for i, _, _ in reloaded]
    # among equal priorities the ids (sequence numbers) increase
    by_priority = {}
    for (msg_id, body, _), i in zip(reloaded, expected[20:], strict=True):
        by_priority.setdefault(priorities[i], []).append(msg_id)
        assert body[0] == i
    for seq in by_priority.values():
        assert seq == sorted(seq)
    assert len(set(ids)) == len(ids)


def test_priority_reload_after_dead_letter_and_get(path, opener):
    store = opener()
    p = store.queue("p", priority=True, max_attempts=1, dead_letter="d")
    p.put("c", priority=3)
    p.put("a", priority=1)
    p.put("b", priority=2)
    p.put("a2", priority=1)
    assert p.get() == "a"
    p.reserve().nack()  # a2: attempts spent -> dead letter
    store.close()
    assert stored(path, "p", priority=True) == ["b", "c"]
    assert stored(path, "d") == ["a2"]


def test_several_queues_reload_independently(path, opener):
    store = opener()
    queues = {name: store.queue(name) for name in ("x", "y", "z")}
    for i in range(30):
        queues["xyz"[i % 3]].put(i)
    queues["y"].get()
    store.close()
    assert stored(path, "x") == list(range(0, 30, 3))
    assert stored(path, "y") == list(range(4, 30, 3))
    assert stored(path, "z") == list(range(2, 30, 3))


# --------------------------------------------------------------------------- sequence numbers


def _ids_of(q):
    return [m.id for m in reserve_all(q)]


def test_sequence_continues_past_highest_stored(path, opener):
    store = opener()
    q = store.queue("q")
    q.put_many(range(20))
    old = _ids_of(q)
    store.close()
    store = opener()
    q = store.queue("q")
    q.put("new")
    msgs = reserve_all(q)
    assert [m.id for m in msgs[:20]] == old
    assert msgs[20].body == "new"
    assert msgs[20].id > max(old)


def test_sequence_continues_after_everything_was_consumed(path, opener):
    store = opener()
    q = store.queue("q")
    q.put_many(range(10))
    old = _ids_of(q)
    store.close()
    store = opener()
    q = store.queue("q")
    for m in reserve_all(q):
        m.ack()
    store.close()
    store = opener()  # nothing is stored in any queue now
    assert stored_count(store) == 0
    q = store.queue("q")
    other = store.queue("other")
    q.put("a")
    other.put("b")
    new = _ids_of(q) + _ids_of(other)
    assert min(new) > max(old), (old, new)
    store.close()
    # ... and once more, after the new ones were consumed with get()
    store = opener()
    assert drain(store.queue("q")) == ["a"]
    assert drain(store.queue("other")) == ["b"]
    store.close()
    store = opener()
    q = store.queue("q")
    q.put("c")
    assert _ids_of(q)[0] > max(new)


def stored_count(store):
    return sum(store.queue(name).qsize() for name in store.queues())


def test_sequence_continues_after_purge_and_delete(path, opener):
    store = opener()
    q = store.queue("q")
    q.put_many(range(5))
    old = _ids_of(q)
    q.purge()
    store.queue("gone").put("x")
    store.delete_queue("gone")
    store.close()
    store = opener()
    q = store.queue("q")
    q.put("after")
    assert _ids_of(q)[0] > max(old)


def test_sequence_continues_after_crash(path):
    out = run_child(
        """
        s = flinq.open(sys.argv[1], durability="sync")
        q = s.queue("q")
        q.put_many(range(5))
        for i in range(5):
            q.get()
        s.flush()
        q.put("last")
        print(max(m.id for m in [q.reserve()]))
        s.flush()
        die()
        """,
        path,
    )
    last_id = int(out.strip())
    with flinq.open(path, **FAST) as store:
        q = store.queue("q")
        q.put("new")
        msgs = reserve_all(q)
        assert [(m.body, m.id > last_id) for m in msgs] == [("last", False), ("new", True)]


def test_sequence_continues_after_crash_past_reservations(path):
    # Commits reserve sequence numbers ahead in steps and write next_seq only
    # when a key reaches the reservation: ids never repeat after a crash, even
    # with every message consumed and several reservations used up.
    out = run_child(
        """
        from flinq.lmdbstore.ids import SEQ_RESERVE
        s = flinq.open(sys.argv[1], durability="sync")
        q = s.queue("q")
        for _ in range(3):
            q.put_many(range(SEQ_RESERVE // 2 + 7))  # one commit
            while q.qsize():
                q.reserve().ack()
            for i in range(5):
                q.put(i)  # one commit each
            while q.qsize():
                q.get()
            s.flush()
        q.put("last")
        print(q.reserve().id)
        s.flush()
        die()
        """,
        path,
    )
    last_id = int(out.strip())
    with flinq.open(path, **FAST) as store:
        q = store.queue("q")
        q.put("new")
        msgs = reserve_all(q)
        assert [m.body for m in msgs] == ["last", "new"]
        assert msgs[0].id == last_id
        assert msgs[1].id > last_id


def test_sync_commits_do_not_rewrite_next_seq(path):
    # One reservation covers many sync puts: the stored next_seq stays put,
    # and is past every id handed out.
    def stored_next_seq():
        env = lmdb.open(str(path), max_dbs=4, readonly=True, lock=False)
        try:
            with env.begin(db=env.open_db(b"meta", create=False)) as txn:
                return int.from_bytes(txn.get(b"next_seq"), "big")
        finally:
            env.close()

    ids = []
    with flinq.open(path, durability="sync") as store:
        q = store.queue("q")
        for i in range(100):
            q.put(i)
        ids = [m.id for m in reserve_all(q)]
    first = stored_next_seq()
    # Reserved ahead: past the block of ids handed out, by one reservation.
    assert max(ids) + 1 < first <= max(ids) + BLOCK + SEQ_RESERVE
    with flinq.open(path, durability="sync") as store:
        q = store.queue("q")
        for i in range(100):
            q.put(i)
        ids = [m.id for m in reserve_all(q)]
    assert min(ids[100:]) >= first  # the reopened store starts past the reservation
    assert stored_next_seq() > max(ids)


# --------------------------------------------------------------------------- a churned store


def test_store_after_churn_reopens(tmp_path):
    # A healthy store must reopen after any mix of operations: reserve, nack
    # and ack churn can leave LMDB's last page number past the end of the file
    # (a page allocated and freed again was never written), which is fine.
    for round_ in range(10):
        path = tmp_path / f"store-{round_}"
        with flinq.open(path, flush_interval=(0.002, 0.005)[round_ % 2]) as store:
            q = store.queue("q")
            q.put_many(range(3000))
            for _ in range(3000 + 3000 // 7 + 1):
                msg = q.reserve(timeout=0)
                if msg.body % 7 == 0 and msg.attempts == 1:
                    msg.nack()
                else:
                    msg.ack()
        assert stored(path, "q") == [], f"round {round_}"


def test_store_after_mixed_ops_reopens(path, opener):
    rnd = random.Random(99)
    expected = []
    for _ in range(5):
        store = opener()
        q = store.queue("q")
        held = []
        for i in range(2000):
            r = rnd.random()
            if r < 0.45:
                q.put((i, "x" * rnd.randrange(300)))
            elif r < 0.6 and q.qsize():
                held.append(q.reserve(timeout=0))
            elif r < 0.75 and held:
                held.pop(rnd.randrange(len(held))).ack()
            elif r < 0.8 and held:
                held.pop(0).nack()
            elif r < 0.9 and q.qsize():
                q.get_nowait()
            elif r < 0.92:
                store.flush()
        expected = sorted([m.body for m in reserve_all(q)] + [m.body for m in held])
        store.close()
        assert sorted(stored(path, "q")) == expected


# --------------------------------------------------------------------------- process death


@pytest.mark.parametrize("durability", ["batch", "sync"])
def test_get_before_flush_does_not_come_back(path, durability):
    # at-most-once: the removal by get() is persisted by the next commit
    out = run_child(
        """
        s = flinq.open(sys.argv[1], durability=sys.argv[2])
        q = s.queue("q")
        q.put_many(range(10))
        s.flush()
        got = [q.get() for _ in range(4)] + q.get_many(2)
        s.flush()
        print(got)
        die()
        """,
        path,
        durability,
    )
    assert out.strip() == str(list(range(6)))
    assert stored(path, "q") == list(range(6, 10))


@pytest.mark.parametrize("durability", ["batch", "sync"])
def test_ack_then_flush_is_durable(path, durability):
    run_child(
        """
        s = flinq.open(sys.argv[1], durability=sys.argv[2])
        q = s.queue("q")
        q.put_many(["a", "b", "c"])
        s.flush()
        q.reserve().ack()
        m = q.reserve()
        m.nack(requeue=False)
        q.reserve()  # c: in flight, never acked
        s.flush()
        die()
        """,
        path,
        durability,
    )
    assert stored_messages(path, "q")[0][1:] == ("c", 2)
    assert len(stored(path, "q")) == 1


def test_batch_everything_put_before_flush_survives(path):
    out = run_child(
        """
        s = flinq.open(sys.argv[1], durability="batch", flush_interval=60.0)
        q = s.queue("q")
        p = s.queue("p", priority=True)
        for i in range(500):
            q.put(i)
        q.put_many(range(500, 1000))
        p.put("pri", priority=-1)
        s.flush()
        print("flushed")
        q.put_many(range(1000, 1100))  # may or may not survive
        die()
        """,
        path,
    )
    assert out.strip() == "flushed"
    got = stored(path, "q")
    assert got[:1000] == list(range(1000))
    assert got in (list(range(1000)), list(range(1100)))
    assert stored(path, "p", priority=True) == ["pri"]


def test_batch_flush_with_large_bodies_survives(path):
    run_child(
        """
        s = flinq.open(sys.argv[1], durability="batch", map_size=1 << 20)
        q = s.queue("q")
        for i in range(8):
            q.put(bytes([i]) * (1 << 20))
        s.flush()
        die()
        """,
        path,
    )
    assert stored(path, "q") == [bytes([i]) * (1 << 20) for i in range(8)]


def test_sync_put_alone_survives(path):
    out = run_child(
        """
        s = flinq.open(sys.argv[1], durability="sync", flush_interval=60.0)
        q = s.queue("q")
        p = s.queue("p", priority=True)
        for i in range(100):
            q.put(i)
        q.put_many(range(100, 150))
        q.put("with headers", headers={"a": "b"}, ttl=3600)
        p.put("pri", priority=5)
        print("returned")
        die()
        """,
        path,
    )
    assert out.strip() == "returned"
    assert stored(path, "q") == [*range(150), "with headers"]
    assert stored(path, "p", priority=True) == ["pri"]


def test_sync_put_from_threads_survives(path):
    run_child(
        """
        import threading
        s = flinq.open(sys.argv[1], durability="sync")
        q = s.queue("q")
        def produce(t):
            for i in range(200):
                q.put((t, i))
        threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        die()
        """,
        path,
    )
    got = stored(path, "q")
    assert sorted(got) == [(t, i) for t in range(4) for i in range(200)]
    for t in range(4):
        assert [i for tt, i in got if tt == t] == list(range(200))


def test_reserve_attempts_persist_through_crash(path):
    run_child(
        """
        s = flinq.open(sys.argv[1])
        q = s.queue("q")
        q.put("x")
        q.reserve()
        s.flush()
        die()
        """,
        path,
    )
    for expected_attempts in (2, 3, 4):
        out = run_child(
            """
            s = flinq.open(sys.argv[1])
            m = s.queue("q").reserve(timeout=0)
            print(m.attempts)
            s.flush()
            die()
            """,
            path,
        )
        assert out.strip() == str(expected_attempts)
    assert stored_messages(path, "q")[0][1:] == ("x", 5)


def test_purge_and_delete_persist_through_crash(path):
    run_child(
        """
        s = flinq.open(sys.argv[1])
        q = s.queue("q")
        q.put_many(range(10))
        s.queue("doomed").put("x")
        s.flush()
        q.purge()
        q.put("after purge")
        s.delete_queue("doomed")
        s.flush()
        die()
        """,
        path,
    )
    with flinq.open(path, readonly=True) as ro:
        assert ro.queues() == ["q"]
    assert stored(path, "q") == ["after purge"]


def test_exit_without_close_commits_pending(path):
    # A normal interpreter exit closes open stores: even unflushed batch-mode
    # puts are committed (only a crash may lose them).
    proc = run_script(
        """
        import sys, flinq
        s = flinq.open(sys.argv[1], flush_interval=60.0)
        s.queue("q").put_many(range(100))
        print("bye")
        """,
        path,
    )
    assert ok(proc).strip() == "bye"
    assert stored(path, "q") == list(range(100))


def test_readonly_sees_committed_state(path, opener):
    store = opener()
    store.queue("a").put(1)
    store.flush()
    store.close()
    with flinq.open(path, readonly=True) as ro:
        assert ro.queues() == ["a"]
        assert ro.stats()["bytes_on_disk"] > 0


@pytest.mark.parametrize("durability", ["batch", "sync"])
def test_put_that_raised_full_leaves_nothing_after_crash(path, durability):
    # A put that raised queue.Full did not happen: a crash right after it
    # must not bring its message back.
    out = run_child(
        """
        import queue
        s = flinq.open(sys.argv[1], durability=sys.argv[2])
        q = s.queue("q", maxsize=1)
        q.put("a")
        s.flush()
        for attempt in (lambda: q.put_nowait("b"), lambda: q.put("c", timeout=0.01)):
            try:
                attempt()
            except queue.Full:
                print("full")
        die()
        """,
        path,
        durability,
    )
    assert out.split() == ["full", "full"]
    assert stored(path, "q") == ["a"]
