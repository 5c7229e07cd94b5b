"""Crash consistency: a child process works on a store and is SIGKILLed at a random
moment; the parent reopens the store and checks every promise the child was given.

The child appends to a side-channel log (one os.write per line, so a line is
either whole or absent after SIGKILL; the OS keeps what was written):
  "ready"          the store is open; the parent's clock starts
  "P b1 b2 ..."    put()/put_many() of these bodies returned
  "A b" / "G b"    ack() returned / get() returned body b (a removal)
  "f" ... "F"      flush() was called ... and returned
Promises: in sync mode every "P" line; in batch mode the "P" lines before an
"f" whose "F" was written. A removal ("A"/"G") before such an "f" is durable
too. Removals not yet flushed may or may not have reached the disk.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from dhelpers import FAST, POSIX, kill_and_reap, popen_script
from qhelpers import HANG_GUARD

import flinq

pytestmark = pytest.mark.skipif(not POSIX, reason="SIGKILL needs POSIX")

CHILD = """
import os, random, sys, threading
import flinq

path, mode, log_path, seed, base, producers = sys.argv[1:]
seed, base, producers = int(seed), int(base), int(producers)
fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

def note(line):
    os.write(fd, (line + "\\n").encode())

store = flinq.open(path, durability=mode, flush_interval=0.002)
q = store.queue("crash")
STRIDE = 10_000_000  # bodies of producer t: base + t * STRIDE + k

def produce(t, rnd, k):
    n = rnd.choice((1, 1, 1, 4))
    bodies = [base + t * STRIDE + k + j for j in range(n)]
    if n == 1:
        q.put(bodies[0])
    else:
        q.put_many(bodies)
    note("P " + " ".join(map(str, bodies)))
    return k + n

def extra_producer(t):
    rnd = random.Random(seed * 1000 + t)
    k = 0
    while True:
        k = produce(t, rnd, k)

note("ready")
for t in range(1, producers):
    threading.Thread(target=extra_producer, args=(t,), daemon=True).start()

rnd = random.Random(seed)
k = 0
held = []
while True:
    r = rnd.random()
    if r < 0.55:
        k = produce(0, rnd, k)
    elif r < 0.68:
        try:
            held.append(q.reserve(timeout=0))
        except flinq.Empty:
            pass
    elif r < 0.80 and held:
        msg = held.pop(0)
        msg.ack()
        note(f"A {msg.body}")
    elif r < 0.83 and held:
        held.pop(rnd.randrange(len(held))).nack()
    elif r < 0.88:
        try:
            body = q.get_nowait()
        except flinq.Empty:
            continue
        note(f"G {body}")
    elif r < 0.96:
        note("f")
        store.flush()
        note("F")
"""


class Ledger:
    """What the children of one store were promised, across generations."""

    def __init__(self, mode):
        self.mode = mode
        self.promised = set()  # bodies that must be present unless removed
        self.removed = set()  # bodies removed at some point (ack or get), flushed or not
        self.removed_flushed = set()  # bodies whose removal was flushed: must be absent
        self.attempted_max = {}  # producer -> highest body noted

    def read(self, log_path):
        with open(log_path) as f:
            text = f.read()
        lines = text.split("\n")
        if not text.endswith("\n"):
            lines = lines[:-1]  # a torn last line: only whole lines count
        lines = [line for line in lines if line]
        assert lines and lines[0] == "ready", lines[:3]
        unflushed_puts = []
        unflushed_removals = []
        at_flush_start = None
        for line in lines[1:]:
            kind, _, rest = line.partition(" ")
            if kind == "P":
                bodies = [int(b) for b in rest.split()]
                if self.mode == "sync":
                    self.promised.update(bodies)
                else:
                    unflushed_puts.extend(bodies)
            elif kind in ("A", "G"):
                self.removed.add(int(rest))
                unflushed_removals.append(int(rest))
            elif kind == "f":
                at_flush_start = (len(unflushed_puts), len(unflushed_removals))
            elif kind == "F":
                assert at_flush_start is not None
                puts, removals = at_flush_start
                self.promised.update(unflushed_puts[:puts])
                self.removed_flushed.update(unflushed_removals[:removals])
                del unflushed_puts[:puts]
                del unflushed_removals[:removals]
                at_flush_start = None
            else:
                raise AssertionError(f"bad log line {line!r}")
        return len(lines) - 1

    def check(self, path, keep=None):
        """Reopen the store (must work) and check it; returns the bodies found.
        With keep=n, everything but the newest n messages is then acked (so a
        store that lives through many crashes stays small)."""
        with flinq.open(path, **FAST) as store:
            assert store.queues() == ["crash"]
            q = store.queue("crash")
            msgs = []
            while True:
                try:
                    msgs.append(q.reserve(timeout=0))
                except flinq.Empty:
                    break
            bodies = [m.body for m in msgs]
            ids = [m.id for m in msgs]
            found = set(bodies)
            assert len(found) == len(bodies), "duplicates after recovery"
            assert ids == sorted(ids) and len(set(ids)) == len(ids), "ids out of order"
            # one producer's bodies come back in the order they were put
            by_producer = {}
            for b in bodies:
                by_producer.setdefault(b % 100_000_000 // 10_000_000, []).append(b)
            for seq in by_producer.values():
                assert seq == sorted(seq), "FIFO order broken"
            missing = self.promised - self.removed - found
            assert not missing, f"{len(missing)} promised messages lost, e.g. {sorted(missing)[:5]}"
            resurrected = self.removed_flushed & found
            assert not resurrected, f"flushed removals came back: {sorted(resurrected)[:5]}"
            # the sequence continues past everything stored
            q.put("probe")
            probe = q.reserve(timeout=0)
            assert probe.body == "probe"
            assert not ids or probe.id > max(ids)
            probe.ack()
            if keep is not None:
                for msg in msgs[: max(0, len(msgs) - keep)]:
                    msg.ack()
                    self.removed.add(msg.body)
                    self.removed_flushed.add(msg.body)
            store.flush()
        # what was found is on disk now: from here on it is promised
        self.promised |= found
        return found


def _run_child(path, mode, log_path, seed, base, producers, delay):
    if log_path.exists():
        log_path.unlink()
    proc = popen_script(CHILD, path, mode, log_path, seed, base, producers)
    try:
        deadline = time.monotonic() + HANG_GUARD
        while not (log_path.exists() and log_path.read_bytes().startswith(b"ready\n")):
            assert proc.poll() is None, f"child exited early with {proc.returncode}"
            assert time.monotonic() < deadline, "child never got ready"
            time.sleep(0.005)
        time.sleep(delay)
        assert proc.poll() is None, f"child exited early with {proc.returncode}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        kill_and_reap(proc)
    assert proc.returncode == -signal.SIGKILL


def _kill_points(tmp_path, mode, runs, producers, fresh, seed0):
    rnd = random.Random(seed0)
    ledger = None
    path = None
    for run in range(runs):
        if fresh or ledger is None:
            path = tmp_path / f"store-{run}"
            ledger = Ledger(mode)
        log_path = tmp_path / "log"
        delay = rnd.uniform(0.02, 0.35)
        _run_child(path, mode, log_path, seed0 + run, run * 100_000_000, producers, delay)
        noted = ledger.read(log_path)
        assert noted > 0, "the child did nothing before the kill"
        ledger.check(path, keep=None if fresh else 300)


MODES = ["sync", "batch"]


@pytest.mark.parametrize("mode", MODES)
def test_kill_points_fresh_store(tmp_path, mode):
    """20 kill points per mode, each on a fresh store."""
    _kill_points(tmp_path, mode, runs=20, producers=1, fresh=True, seed0=1000)


@pytest.mark.parametrize("mode", MODES)
def test_kill_points_same_store(tmp_path, mode):
    """Crash after crash on one store: each generation recovers the last one's crash."""
    _kill_points(tmp_path, mode, runs=8, producers=1, fresh=False, seed0=2000)


@pytest.mark.parametrize("mode", MODES)
def test_kill_points_concurrent_producers(tmp_path, mode):
    """Three producer threads (group commit in sync mode)."""
    _kill_points(tmp_path, mode, runs=5, producers=3, fresh=True, seed0=3000)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_kill_points_many(tmp_path, mode):
    _kill_points(tmp_path, mode, runs=200, producers=1, fresh=True, seed0=10_000)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_kill_points_many_same_store(tmp_path, mode):
    _kill_points(tmp_path, mode, runs=60, producers=2, fresh=False, seed0=20_000)
