"""Faults: a full map, a full disk, locked paths, things that are not flinq stores, newer
formats, damaged files, fork(), and interpreter exit with a store open."""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys

import lmdb
import lmdb.verify
import pytest
from dhelpers import (
    FAST,
    POSIX,
    drain,
    forked,
    ok,
    popen_script,
    reserve_all,
    run_script,
    stored,
    wait_child,
)
from qhelpers import HANG_GUARD, spawn

import flinq
from flinq.lmdbstore.layout import FORMAT_VERSION
from flinq.lmdbstore.verify import SESSION_FILE, check_before_open, verify_data_file

posix_only = pytest.mark.skipif(not POSIX, reason="POSIX only")
has_rlimit_fsize = pytest.mark.skipif(
    not POSIX or not hasattr(__import__("signal"), "SIGXFSZ"), reason="needs RLIMIT_FSIZE"
)

# --------------------------------------------------------------------------- the map fills up


@pytest.mark.parametrize("durability", ["batch", "sync"])
def test_full_map_grows(path, durability):
    small = 64 << 10
    bodies = [bytes([i]) * (1 << 20) for i in range(6)]
    with flinq.open(path, durability=durability, map_size=small, **FAST) as store:
        q = store.queue("q")
        for body in bodies[:3]:
            q.put(body)
        q.put_many(bodies[3:])
        q.put_many([b"small"] * 1000)
        store.flush()
        assert store.stats()["map_size"] > 6 << 20
        assert q.get_nowait() == bodies[0]
    # reopening with the tiny map_size still works (LMDB keeps the larger size)
    with flinq.open(path, map_size=small, **FAST) as store:
        q = store.queue("q")
        got = drain(q)
        assert got[:5] == bodies[1:]
        assert got[5:] == [b"small"] * 1000
        q.put(b"x" * (8 << 20))  # bigger than the whole map so far
        store.flush()
    assert stored(path, "q") == [b"x" * (8 << 20)]


def test_full_map_grows_while_queues_are_created(path):
    # The writer thread grows the map while this thread creates queues and
    # reserves: growth must not break transactions of other threads.
    with flinq.open(path, map_size=64 << 10, flush_interval=0.002) as store:
        for i in range(40):
            q = store.queue(f"q{i}")
            q.put_many([os.urandom(1000) for _ in range(50)])
            for _ in range(10):
                q.reserve().ack()
        assert len(store.queues()) == 40
    with flinq.open(path, **FAST) as store:
        assert sum(store.queue(n).qsize() for n in store.queues()) == 40 * 40


def test_full_map_grows_under_concurrent_readers(path):
    with flinq.open(path, map_size=64 << 10, flush_interval=0.002) as store:
        q = store.queue("q")
        stop = []

        def read():
            while not stop:
                store.queues()
                store.stats()

        reader = spawn(read)
        try:
            for _ in range(20):
                q.put(os.urandom(100_000))
            store.flush()
        finally:
            stop.append(True)
        reader.value()
    assert len(stored(path, "q")) == 20


# --------------------------------------------------------------------------- the disk fills up

# The child caps its own file size (RLIMIT_FSIZE, soft limit only, so it can
# lift it again) at the current size of data.mdb: a commit that needs the
# file to grow fails with EFBIG, as on a full disk. It prints a JSON report.
DISK_FULL = """
import json, os, resource, signal, sys
import flinq

path, durability = sys.argv[1], sys.argv[2]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
report = {}
big = b"B" * (2 << 20)

def limit():
    size = os.path.getsize(os.path.join(path, "data.mdb"))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))

def unlimit():
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

def attempt(name, fn):
    try:
        fn()
        report[name] = "ok"
    except flinq.StoreError as exc:
        report[name] = type(exc).__name__

store = flinq.open(path, durability=durability, flush_interval=0.002)
q = store.queue("q")
q.put_many(["c0", "c1", "c2"])
store.flush()
"""


def _disk_full_report(path, durability, scenario):
    proc = run_script(DISK_FULL + scenario + "\nprint(json.dumps(report))\n", path, durability)
    out = ok(proc)
    return json.loads(out.strip().splitlines()[-1])


@has_rlimit_fsize
def test_disk_full_sync_put_raises_and_stores_nothing(path):
    report = _disk_full_report(
        path,
        "sync",
        """
limit()
attempt("put", lambda: q.put(big))
report["qsize_after_put"] = q.qsize()
attempt("put_headers", lambda: q.put(big, headers={"a": "b"}))
report["qsize_after_put_headers"] = q.qsize()
unlimit()
attempt("put_after", lambda: q.put("after"))
store.close()
""",
    )
    assert report["put"] == "StoreWriteError"
    assert report["put_headers"] == "StoreWriteError"
    assert report["qsize_after_put"] == 3
    assert report["qsize_after_put_headers"] == 3
    assert report["put_after"] == "ok"
    assert stored(path, "q") == ["c0", "c1", "c2", "after"]


@has_rlimit_fsize
def test_disk_full_sync_put_many_is_all_or_nothing(path):
    report = _disk_full_report(
        path,
        "sync",
        """
limit()
attempt("put_many", lambda: q.put_many([big, big, "small"]))
report["qsize"] = q.qsize()
unlimit()
store.flush()
store.close()
""",
    )
    assert report["put_many"] == "StoreWriteError"
    assert report["qsize"] == 3
    got = stored(path, "q")
    assert [x if len(x) < 100 else len(x) for x in got] == ["c0", "c1", "c2"]


@has_rlimit_fsize
def test_disk_full_batch_flush_raises_then_retries(path):
    report = _disk_full_report(
        path,
        "batch",
        """
limit()
attempt("put", lambda: q.put(big))  # only logged: returns
q.put("after big")
attempt("flush", store.flush)
attempt("flush_again", store.flush)
report["qsize"] = q.qsize()
report["got"] = q.get_nowait()  # memory still serves
unlimit()
attempt("flush_unlimited", store.flush)  # what was pending is retried
store.close()
""",
    )
    assert report["put"] == "ok"
    assert report["flush"] == "StoreWriteError"
    assert report["flush_again"] == "StoreWriteError"
    assert report["qsize"] == 5
    assert report["got"] == "c0"
    assert report["flush_unlimited"] == "ok"
    got = stored(path, "q")
    assert [x if len(x) < 100 else len(x) for x in got] == ["c1", "c2", 2 << 20, "after big"]


@has_rlimit_fsize
def test_disk_full_batch_close_reports_lost_writes(path):
    report = _disk_full_report(
        path,
        "batch",
        """
limit()
q.put(big)
attempt("close", store.close)
unlimit()
""",
    )
    assert report["close"] == "StoreWriteError"
    assert stored(path, "q") == ["c0", "c1", "c2"]


@has_rlimit_fsize
@pytest.mark.parametrize("durability", ["batch", "sync"])
def test_disk_full_loses_nothing_committed(path, durability):
    report = _disk_full_report(
        path,
        durability,
        """
msg = q.reserve()
msg.ack()
store.flush()
limit()
for i in range(5):
    attempt(f"put{i}", lambda: q.put(big))
attempt("flush", store.flush)
print(json.dumps(report), flush=True)
os._exit(0)  # without close
""",
    )
    if durability == "sync":  # the failed puts were dropped: nothing to flush
        assert all(report[f"put{i}"] == "StoreWriteError" for i in range(5))
        assert report["flush"] == "ok"
    else:
        assert report["flush"] == "StoreWriteError"
    assert stored(path, "q") == ["c1", "c2"]


# --------------------------------------------------------------------------- locks


def test_second_store_same_path_same_process(path, opener):
    first = opener()
    first.queue("q").put("first")
    first.flush()
    with pytest.raises(flinq.StoreLockedError):
        flinq.open(path)
    with pytest.raises(flinq.StoreLockedError):
        flinq.open(str(path) + "/")
    with pytest.raises(flinq.StoreLockedError):
        flinq.open(os.path.relpath(path))
    # the refused opens did not disturb the first store
    first.queue("q").put("still mine")
    first.close()
    with flinq.open(path, **FAST) as second:
        assert drain(second.queue("q")) == ["first", "still mine"]


def test_locked_error_is_a_store_error():
    assert issubclass(flinq.StoreLockedError, flinq.StoreError)


LOCK_PROBE = """
import sys, flinq
try:
    flinq.open(sys.argv[1]).close()
    print("opened")
except flinq.StoreLockedError:
    print("locked")
"""


@posix_only
def test_same_store_through_a_symlink(path, tmp_path, opener):
    first = opener()
    first.queue("q").put("x")
    first.flush()
    link = tmp_path / "link"
    os.symlink(path, link)
    with pytest.raises(flinq.StoreLockedError):
        flinq.open(link)
    # ... and the refused open must not have dropped the first store's lock
    assert ok(run_script(LOCK_PROBE, path)).strip() == "locked"


def test_other_process_cannot_open_for_writing(path, opener):
    store = opener()
    store.queue("q").put("x")
    store.flush()
    assert ok(run_script(LOCK_PROBE, path)).strip() == "locked"
    store.close()
    assert ok(run_script(LOCK_PROBE, path)).strip() == "opened"


def test_readonly_from_other_process_while_owned(path, opener):
    store = opener()
    store.queue("a").put(1)
    store.queue("b", priority=True)
    store.flush()
    proc = run_script(
        """
        import sys, json, flinq
        with flinq.open(sys.argv[1], readonly=True) as ro:
            names = ro.queues()
            try:
                ro.queue("a")
                queue_error = None
            except flinq.StoreError as exc:
                queue_error = type(exc).__name__
            print(json.dumps([names, queue_error]))
        """,
        path,
    )
    names, queue_error = json.loads(ok(proc))
    assert names == ["a", "b"]
    assert queue_error is not None
    # the owner is unaffected
    store.queue("c").put(2)
    store.flush()
    store.close()
    assert stored(path, "a") == [1]
    assert stored(path, "c") == [2]


def test_readonly_from_other_process_sees_new_queues_and_growth(path, opener):
    store = opener(map_size=64 << 10)
    q = store.queue("a")
    probe = popen_script(
        """
        import sys, flinq
        with flinq.open(sys.argv[1], readonly=True) as ro:
            print(ro.queues(), flush=True)
            sys.stdin.readline()
            print(ro.queues(), flush=True)
        """,
        path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert probe.stdout.readline().strip() == "['a']"
        store.queue("b")
        q.put_many([b"x" * (1 << 20)] * 4)  # the map grows while the reader has it open
        store.flush()
        out, err = probe.communicate("go\n", timeout=HANG_GUARD)
        assert probe.returncode == 0, err
        assert out.strip() == "['a', 'b']"
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.communicate()


def test_readonly_in_same_process_while_owned(path, opener):
    # readonly=True opens "still work"; at the very least they are not
    # reported as a corrupt store.
    store = opener()
    store.queue("a").put(1)
    store.flush()
    try:
        with flinq.open(path, readonly=True) as ro:
            assert ro.queues() == ["a"]
    except flinq.StoreLockedError:
        pass
    store.queue("a").put(2)
    store.close()
    assert stored(path, "a") == [1, 2]


# --------------------------------------------------------------------------- not a flinq store


def test_directory_with_other_files(path):
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    with pytest.raises(flinq.StoreCorruptError):
        flinq.open(path)
    with pytest.raises(flinq.StoreCorruptError):
        flinq.open(path, readonly=True)
    assert os.listdir(path) == ["notes.txt"]  # untouched


def test_path_is_a_file(path):
    path.write_bytes(b"not a directory")
    with pytest.raises(flinq.StoreCorruptError):
        flinq.open(path)
    assert path.read_bytes() == b"not a directory"


def _foreign_env(path, named):
    env = lmdb.open(str(path), max_dbs=4)
    db = env.open_db(b"theirs") if named else None
    with env.begin(write=True) as txn:
        txn.put(b"hello", b"world", db=db)
    env.close()


def _foreign_contents(path):
    env = lmdb.open(str(path), max_dbs=4, readonly=True)
    with env.begin() as txn:
        out = [(bytes(k), bytes(v)) for k, v in txn.cursor()]
    env.close()
    return out


@pytest.mark.parametrize("named", [False, True], ids=["main-db", "named-db"])
def test_lmdb_env_without_flinq_meta(path, named):
    _foreign_env(path, named)
    before = _foreign_contents(path)
    for _ in range(2):  # twice: a failed open must leave nothing half-open behind
        with pytest.raises(flinq.StoreCorruptError, match="not a flinq store"):
            flinq.open(path)
        with pytest.raises(flinq.StoreCorruptError, match="not a flinq store"):
            flinq.open(path, readonly=True)
    assert _foreign_contents(path) == before  # untouched
    # and the lmdb package can still open it in this process
    assert _foreign_contents(path) == before


def _set_meta(path, key, value):
    env = lmdb.open(str(path), max_dbs=8)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(key, value, db=meta)
    env.close()


def test_newer_format_version(path):
    with flinq.open(path) as store:
        store.queue("q").put("x")
    _set_meta(path, b"version", str(FORMAT_VERSION + 1).encode())
    for _ in range(2):  # twice: the first failure must not leave the env open
        with pytest.raises(flinq.StoreVersionError):
            flinq.open(path)
        with pytest.raises(flinq.StoreVersionError):
            flinq.open(path, readonly=True)
    _set_meta(path, b"version", str(FORMAT_VERSION).encode())
    assert stored(path, "q") == ["x"]


def test_version_error_leaves_path_usable_in_process(path):
    with flinq.open(path) as store:
        store.queue("q").put("x")
    _set_meta(path, b"version", b"999")
    with pytest.raises(flinq.StoreVersionError) as info:
        flinq.open(path)
    # while the error (and its traceback) is still alive, the lmdb package
    # and flinq can open the path again
    _set_meta(path, b"version", str(FORMAT_VERSION).encode())
    assert stored(path, "q") == ["x"]
    del info


@pytest.mark.parametrize("value", [b"banana", b"", b"\xff\xfe"])
def test_garbage_format_version(path, value):
    with flinq.open(path) as store:
        store.queue("q")
    _set_meta(path, b"version", value)
    with pytest.raises(flinq.StoreCorruptError):
        flinq.open(path)


def test_wrong_format_name(path):
    with flinq.open(path) as store:
        store.queue("q")
    _set_meta(path, b"format", b"someone-else")
    with pytest.raises(flinq.StoreCorruptError):
        flinq.open(path)


# --------------------------------------------------------------------------- damaged files

# Opens the store at argv[1], opens and drains every queue, and prints one
# line: "ok <n>" or "error <StoreError subclass>". Any other exception is a
# traceback and exit status 1; a crash is a signal.
OPEN_AND_DRAIN = """
import sys, flinq
try:
    with flinq.open(sys.argv[1]) as store:
        n = 0
        for name in store.queues():
            q = store.queue(name)
            while q.qsize():
                q.get_nowait()
                n += 1
    print("ok", n)
except flinq.StoreError as exc:
    print("error", type(exc).__name__, exc)
"""


def _make_victim(path):
    """A store with three queues of 500 messages each; returns data.mdb's path."""
    with flinq.open(path, flush_interval=60.0) as store:  # commits only at flush: same layout
        for name in ("a", "b", "c"):
            store.queue(name).put_many([f"m{i}-" * 30 for i in range(500)])
            store.flush()
    return path / "data.mdb"


def _open_in_child(path):
    proc = run_script(OPEN_AND_DRAIN, path)  # asserts: no signal
    out = ok(proc)  # no other exception
    return out.split()[:2]


def _overwrite(data_file, offset, data):
    with open(data_file, "r+b") as f:
        f.seek(offset)
        f.write(data)


@pytest.mark.parametrize("fraction", [0.003, 0.01, 0.5, 0.99])
def test_truncated_data_file(path, fraction):
    data_file = _make_victim(path)
    size = os.path.getsize(data_file)
    os.truncate(data_file, int(size * fraction))
    assert _open_in_child(path) == ["error", "StoreCorruptError"]


def test_truncated_by_one_page(path):
    data_file = _make_victim(path)
    os.truncate(data_file, os.path.getsize(data_file) - 4096)
    assert _open_in_child(path) == ["error", "StoreCorruptError"]


@pytest.mark.parametrize("page", [0, 1, "both"])
def test_corrupt_meta_pages(path, page):
    data_file = _make_victim(path)
    rnd = random.Random(7)
    psize = 4096
    start = 0 if page in (0, "both") else psize
    length = 2 * psize if page == "both" else psize
    _overwrite(data_file, start, rnd.randbytes(length))
    assert _open_in_child(path) == ["error", "StoreCorruptError"]


def test_whole_file_random(path):
    data_file = _make_victim(path)
    size = os.path.getsize(data_file)
    data_file.write_bytes(random.Random(3).randbytes(size))
    assert _open_in_child(path) == ["error", "StoreCorruptError"]


@pytest.mark.parametrize("seed", range(6))
def test_random_data_page(path, seed):
    data_file = _make_victim(path)
    rnd = random.Random(seed)
    pages = os.path.getsize(data_file) // 4096
    _overwrite(data_file, rnd.randrange(2, pages) * 4096, rnd.randbytes(4096))
    # a damaged page may be a free one: then the store opens; it never crashes
    assert _open_in_child(path)[0] in ("ok", "error")


# One child runs every seed: it copies a pristine store, scatters random bytes
# over its data pages, opens and drains it, and prints the outcome. A crash
# (SIGBUS, SIGSEGV) ends the child; its last "seed" line says where.
SCATTER = """
import os, random, shutil, sys, flinq
base, work, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
size = os.path.getsize(os.path.join(base, "data.mdb"))
for seed in range(first, last):
    print("seed", seed, flush=True)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work)
    rnd = random.Random(seed)
    with open(os.path.join(work, "data.mdb"), "r+b") as f:
        for _ in range(rnd.choice([1, 4, 32])):
            f.seek(rnd.randrange(8192, size))
            f.write(rnd.randbytes(rnd.choice([1, 8, 64, 512])))
    phase = "open"
    try:
        with flinq.open(work) as store:
            for name in store.queues():
                phase = "queue"
                q = store.queue(name)
                phase = "get"
                while q.qsize():
                    q.get_nowait()
        print("outcome ok", flush=True)
    except flinq.StoreError as exc:
        print("outcome store-error", phase, type(exc).__name__, flush=True)
    except Exception as exc:
        print("outcome other-error", phase, type(exc).__name__, str(exc)[:60], flush=True)
"""


def _scatter(tmp_path, first, last):
    base = tmp_path / "base"
    with flinq.open(base, flush_interval=60.0) as store:  # commits only at flush: same layout
        for name in ("a", "b", "c"):
            store.queue(name).put_many([f"m{i}" * 50 for i in range(2000)])
            store.flush()
    proc = run_script(SCATTER, base, tmp_path / "work", first, last, check_signal=False)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, (
        f"child ended with {proc.returncode} (negative: killed by that signal) after "
        f"{lines[-1] if lines else 'nothing'!r}\nstderr:\n{proc.stderr[-2000:]}"
    )
    return [line.split(None, 2)[1:] for line in lines if line.startswith("outcome")]


def test_scattered_corruption_never_crashes(tmp_path):
    outcomes = _scatter(tmp_path, 0, 300)
    assert len(outcomes) == 300


def test_scattered_corruption_raises_only_store_errors(tmp_path):
    outcomes = _scatter(tmp_path, 0, 40)
    others = [o for o in outcomes if o[0] == "other-error"]
    assert not others, (
        f"{len(others)} of {len(outcomes)} damaged stores raised non-StoreErrors: "
        + ("; ".join(o[1] for o in others[:5]))
    )


def test_corrupt_leaf_node_header(path):
    # Damage the header of one live record in every leaf page of the queues:
    # the open must report it, not crash.
    data_file = _make_victim(path)
    data = bytearray(data_file.read_bytes())
    psize = 4096
    hits = 0
    for pgno in range(2, len(data) // psize):
        base = pgno * psize
        stored_pgno, _pad, flags, lower, _upper = struct.unpack_from("<QHHHH", data, base)
        if stored_pgno != pgno or flags != 0x02 or lower <= 16:
            continue
        node = base + struct.unpack_from("<H", data, base + 16)[0]
        if struct.unpack_from("<HH", data, node + 4) != (0, 8):  # plain node, 8-byte key
            continue
        struct.pack_into("<HHHH", data, node, 27999, 49773, 45153, 13363)
        hits += 1
    if sys.byteorder != "little" or not hits:
        pytest.skip("no little-endian LMDB 0.9 leaf pages found")
    data_file.write_bytes(bytes(data))
    assert _open_in_child(path) == ["error", "StoreCorruptError"]


def _leaf_pages(data):
    """Page numbers of the LMDB 0.9 leaf pages (flags == P_LEAF) of a 4 KiB-page file."""
    out = []
    for pgno in range(2, len(data) // 4096):
        stored_pgno, _pad, flags = struct.unpack_from("<QHH", data, pgno * 4096)
        if stored_pgno == pgno and flags == 0x02:
            out.append(pgno)
    return out


def _damage_leaf(data, rnd, leaves):
    """One kind of damage to one leaf page: a node's header, its key, the
    page's bounds, a node pointer, its first key, or random bytes."""
    base = rnd.choice(leaves) * 4096
    lower = struct.unpack_from("<H", data, base + 12)[0]
    n = max(1, (lower - 16) // 2)
    ptr_at = base + 16 + 2 * rnd.randrange(n)
    node = base + struct.unpack_from("<H", data, ptr_at)[0]
    kind = rnd.randrange(7)
    if kind == 0:  # data size, flags or key size
        field = rnd.choice([0, 2, 4, 6])
        struct.pack_into("<H", data, min(node + field, base + 4094), rnd.randrange(1 << 16))
    elif kind == 1:  # one key byte: keys out of order, or equal
        data[min(node + 8 + rnd.randrange(8), base + 4095)] = rnd.randrange(256)
    elif kind == 2:  # mp_lower / mp_upper
        struct.pack_into("<H", data, base + rnd.choice([12, 14]), rnd.randrange(4097))
    elif kind == 3:  # a node pointer
        struct.pack_into("<H", data, ptr_at, rnd.randrange(4096))
    elif kind == 4:  # two node pointers swapped: keys out of order
        other = base + 16 + 2 * rnd.randrange(n)
        a, b = data[ptr_at : ptr_at + 2], data[other : other + 2]
        data[ptr_at : ptr_at + 2], data[other : other + 2] = b, a
    elif kind == 5:  # the page's first key zeroed: at or below the previous page's keys
        first = base + struct.unpack_from("<H", data, base + 16)[0]
        ksize = struct.unpack_from("<H", data, min(first + 6, base + 4094))[0]
        end = min(first + 8 + ksize, base + 4096)
        data[first + 8 : end] = bytes(max(0, end - first - 8))
    else:
        at = base + rnd.randrange(16, 4096 - 64)
        data[at : at + 64] = rnd.randbytes(64)


def test_damaged_leaf_pages_are_refused_before_lmdb_maps_the_file(tmp_path):
    # A data file with no marker (no clean close, no session of this boot:
    # a file copied in, or after a restart of the OS) is verified before
    # LMDB maps it: damage to a leaf page is StoreCorruptError, never a crash.
    base = tmp_path / "base"
    with flinq.open(base, flush_interval=60.0) as store:
        store.queue("fifo").put_many([f"m{i}-" * (i % 40) for i in range(3000)])
        store.queue("prio", priority=True).put_many(range(1500), priority=5)
        store.queue("big").put_many([bytes(5000 + i) for i in range(20)])  # overflow pages
        store.flush()
        q = store.queue("fifo")
        for _ in range(700):
            q.get()
    pristine = bytearray((base / "data.mdb").read_bytes())
    leaves = _leaf_pages(pristine)
    assert len(leaves) > 20
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data.mdb").write_bytes(pristine)
    check_before_open(str(victim))  # no marker: a full check, which finds nothing
    os.unlink(victim / SESSION_FILE)  # the session that check began
    assert verify_data_file(str(victim / "data.mdb")) == []
    rnd = random.Random(11)
    refused = 0
    for _ in range(40):
        data = bytearray(pristine)
        for _ in range(rnd.choice([1, 1, 2, 5])):
            _damage_leaf(data, rnd, leaves)
        (victim / "data.mdb").write_bytes(data)
        try:
            found = bool(lmdb.verify.verify(str(victim / "data.mdb")))
        except lmdb.verify.VerifyError:
            found = True
        if not found:
            continue  # damage that left the page valid (a key byte kept in order)
        with pytest.raises(flinq.StoreCorruptError):
            check_before_open(str(victim))
        assert not (victim / SESSION_FILE).exists()  # refused: no session began
        refused += 1
    assert refused > 25  # the damage was seen, mostly


CRASH_AFTER_FLUSH = """
import os, signal, sys, flinq
store = flinq.open(sys.argv[1])
store.queue("q").put_many(["a", "b", "c"])
store.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def _full_checks(monkeypatch):
    """The paths of the full checks the next opens make (verify_data_file calls)."""
    checked = []

    def counting(data):
        checked.append(data)
        return verify_data_file(data)

    monkeypatch.setattr(flinq.lmdbstore.verify, "verify_data_file", counting)
    return checked


def _crash_with_a_store(path):
    proc = run_script(CRASH_AFTER_FLUSH, path, check_signal=False)
    assert proc.returncode == -9, proc.stderr


def test_a_process_crash_in_this_boot_reopens_without_a_full_check(path, monkeypatch):
    if flinq.lmdbstore.verify.boot_id() is None:
        pytest.skip("no boot id on this system: every crash is verified")
    _crash_with_a_store(path)
    assert not (path / "flinq.clean").exists()
    checked = _full_checks(monkeypatch)
    assert stored(path, "q") == ["a", "b", "c"]
    assert checked == []


def test_after_a_restart_of_the_os_the_file_is_verified(path, monkeypatch):
    _crash_with_a_store(path)
    # The session marker names the boot the crash happened in; a new boot has a new id.
    monkeypatch.setattr(flinq.lmdbstore.verify, "boot_id", lambda: "a later boot")
    checked = _full_checks(monkeypatch)
    assert stored(path, "q") == ["a", "b", "c"]
    assert checked == [str(path / "data.mdb")]


def test_without_a_boot_id_every_crash_is_verified(path, monkeypatch):
    _crash_with_a_store(path)
    monkeypatch.setattr(flinq.lmdbstore.verify, "boot_id", lambda: None)
    checked = _full_checks(monkeypatch)
    assert stored(path, "q") == ["a", "b", "c"]
    assert len(checked) == 1
    assert not (path / SESSION_FILE).exists()  # nothing to record


def test_without_a_boot_id_a_store_with_no_session_marker_is_verified(path, monkeypatch):
    # Where no boot id is known no marker is ever written: its absence must
    # not read as a match.
    _crash_with_a_store(path)
    (path / SESSION_FILE).unlink()
    monkeypatch.setattr(flinq.lmdbstore.verify, "boot_id", lambda: None)
    checked = _full_checks(monkeypatch)
    assert stored(path, "q") == ["a", "b", "c"]
    assert checked == [str(path / "data.mdb")]


def test_a_second_crash_in_a_row_is_verified(path, monkeypatch):
    # Trusting a crash once: if damage made it, the crash after the trusted
    # reopen is verified, and the damage refused, instead of a crash loop.
    _crash_with_a_store(path)
    _crash_with_a_store(path)  # reopened on trust, then killed again
    checked = _full_checks(monkeypatch)
    assert stored(path, "q") == ["a", "b", "c"] * 2
    assert checked == [str(path / "data.mdb")]


def test_a_copy_of_a_crashed_store_is_verified(path, tmp_path, monkeypatch):
    # A copy (of a live or crashed store) is another file: what its marker
    # says of the original proves nothing about it.
    _crash_with_a_store(path)
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    checked = _full_checks(monkeypatch)
    assert stored(copy, "q") == ["a", "b", "c"]
    assert checked == [str(copy / "data.mdb")]


def test_a_failed_commit_forgets_the_session(path, monkeypatch):
    store = flinq.open(path, flush_interval=60.0)
    q = store.queue("q")
    q.put("kept")
    store.flush()

    def failing(txn, ops):
        raise lmdb.CorruptedError("simulated")

    monkeypatch.setattr(flinq.lmdbstore.log, "apply", failing)
    q.put("lost")
    with pytest.raises(flinq.StoreWriteError):
        store.close()
    assert not (path / SESSION_FILE).exists()
    monkeypatch.undo()
    checked = _full_checks(monkeypatch)
    assert stored(path, "q") == ["kept"]
    assert checked == [str(path / "data.mdb")]


def test_a_file_changed_after_a_clean_close_is_verified_whatever_the_boot(path, monkeypatch):
    with flinq.open(path) as store:
        store.queue("q").put("x")
    with open(path / "data.mdb", "ab") as f:  # grown by someone else: not what close left
        f.write(bytes(4096))
    checked = _full_checks(monkeypatch)
    assert stored(path, "q") == ["x"]  # pages past the last one used are harmless
    assert checked == [str(path / "data.mdb")]


def test_empty_lock_file_and_missing_lock_mdb_are_fine(path):
    with flinq.open(path) as store:
        store.queue("q").put("x")
    os.remove(path / "lock.mdb")
    (path / "flinq.lock").write_bytes(b"")
    assert stored(path, "q") == ["x"]


# --------------------------------------------------------------------------- fork


@posix_only
def test_fork_child_cannot_use_parents_store(path, opener):
    store = opener()
    q = store.queue("q")
    q.put_many(["a", "b"])
    store.flush()
    msg = q.reserve()
    read_fd, write_fd = os.pipe()
    report_r, report_w = os.pipe()
    with forked() as pid:
        if pid == 0:  # child: only os._exit from here on
            code = 1
            try:
                results = []
                for name, op in [
                    ("put", lambda: q.put("c")),
                    ("get", lambda: q.get_nowait()),
                    ("reserve", lambda: q.reserve(timeout=0)),
                    ("ack", msg.ack),
                    ("queue", lambda: store.queue("q")),
                    ("queues", store.queues),
                    ("flush", store.flush),
                ]:
                    try:
                        op()
                        results.append(f"{name}:no-error")
                    except flinq.StoreForkedError:
                        results.append(f"{name}:forked")
                    except BaseException as exc:
                        results.append(f"{name}:{type(exc).__name__}")
                store.close()  # harmless in the child
                results.append("closed")
                os.read(read_fd, 1)  # wait until the parent has closed the store
                try:
                    with flinq.open(path, **FAST) as own:
                        mine = own.queue("q")
                        results.append("reopened:" + ",".join(m.body for m in reserve_all(mine)))
                        mine.put("from child")
                except BaseException as exc:
                    results.append(f"reopen:{type(exc).__name__}:{exc}")
                os.write(report_w, "\n".join(results).encode())
                code = 0
            finally:
                os._exit(code)
    os.close(report_w)
    # the parent keeps using its store while the child runs
    q.put("parent")
    assert msg.ack() is True
    store.close()
    os.write(write_fd, b"x")
    assert wait_child(pid) == 0
    with os.fdopen(report_r) as f:
        results = f.read().splitlines()
    assert results[:8] == [
        "put:forked",
        "get:forked",
        "reserve:forked",
        "ack:forked",
        "queue:forked",
        "queues:forked",
        "flush:forked",
        "closed",
    ]
    assert results[8:] == ["reopened:b,parent"]
    assert stored(path, "q") == ["b", "parent", "from child"]


@posix_only
def test_fork_child_exiting_normally_leaves_parent_intact(path):
    # A child that exits normally runs the atexit hooks: closing the inherited
    # store there must neither commit nor close anything of the parent's.
    proc = run_script(
        """
        import os, sys, flinq
        store = flinq.open(sys.argv[1], flush_interval=60.0)
        q = store.queue("q")
        q.put("before fork")
        store.flush()
        q.put("pending at fork")
        pid = os.fork()
        if pid == 0:
            try:
                q.put("child")
            except flinq.StoreForkedError:
                print("child: forked error", flush=True)
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        print("child status", os.waitstatus_to_exitcode(status), flush=True)
        q.put("after fork")
        store.flush()
        print(q.get_nowait(), flush=True)
        store.close()
        """,
        path,
    )
    assert ok(proc).splitlines() == ["child: forked error", "child status 0", "before fork"]
    assert stored(path, "q") == ["pending at fork", "after fork"]


# --------------------------------------------------------------------------- exit


def test_exit_with_open_store_does_not_hang(path):
    proc = run_script(
        """
        import sys, threading, flinq
        store = flinq.open(sys.argv[1])
        q = store.queue("q")
        q.put_many(range(1000))
        store.flush()
        q.put_many(range(1000, 2000))
        q.reserve()
        s2 = flinq.open(sys.argv[1] + "-other", durability="sync")
        s2.queue("q").put("other")
        print("exiting", flush=True)
        """,
        path,
        timeout=20,
    )
    assert ok(proc).strip() == "exiting"
    assert proc.stderr == ""
    got = stored(path, "q")
    assert got[:1000] == list(range(1000))
    assert stored(str(path) + "-other", "q") == ["other"]


def test_exit_with_blocked_daemon_consumer_does_not_hang(path):
    proc = run_script(
        """
        import sys, threading, flinq
        store = flinq.open(sys.argv[1])
        q = store.queue("q")
        threading.Thread(target=q.get, daemon=True).start()
        threading.Thread(target=q.reserve, daemon=True).start()
        q2 = store.queue("bounded", maxsize=1)
        q2.put("x")
        threading.Thread(target=q2.put, args=("y",), daemon=True).start()
        q.put_many(range(5))
        store.flush()
        print("exiting", flush=True)
        """,
        path,
        timeout=20,
    )
    assert ok(proc).strip() == "exiting"
    assert len(stored(path, "q")) >= 3


def test_exit_by_uncaught_exception_keeps_flushed_data(path):
    proc = run_script(
        """
        import sys, flinq
        store = flinq.open(sys.argv[1])
        q = store.queue("q")
        q.put("flushed")
        store.flush()
        q.put("maybe")
        raise SystemExit(3)
        """,
        path,
        timeout=20,
    )
    assert proc.returncode == 3
    assert stored(path, "q")[:1] == ["flushed"]


def test_exit_while_sync_producers_run(path):
    proc = run_script(
        """
        import sys, threading, flinq
        store = flinq.open(sys.argv[1], durability="sync")
        q = store.queue("q")
        def produce(t):
            i = 0
            while True:
                try:
                    q.put((t, i))
                except flinq.StoreClosedError:
                    return
                i += 1
        for t in range(3):
            threading.Thread(target=produce, args=(t,), daemon=True).start()
        import time
        time.sleep(0.2)
        print("exiting", flush=True)
        """,
        path,
        timeout=20,
    )
    assert ok(proc).strip() == "exiting"
    assert "Traceback" not in proc.stderr, proc.stderr
    got = stored(path, "q")
    for t in range(3):
        mine = [i for tt, i in got if tt == t]
        assert mine == list(range(len(mine)))


def test_close_elsewhere_then_reopen_after_copy(path, tmp_path):
    # A closed store is a plain directory: copying it gives a working store.
    with flinq.open(path) as store:
        store.queue("q").put_many(range(10))
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    assert stored(copy, "q") == list(range(10))
    assert stored(path, "q") == list(range(10))


def test_close_while_sync_producers_run(path):
    # close() must return while other threads keep putting in sync mode
    # (their puts then raise StoreClosedError); so must the exit hooks.
    proc = run_script(
        """
        import sys, threading, time, flinq
        store = flinq.open(sys.argv[1], durability="sync")
        q = store.queue("q")
        def produce(t):
            i = 0
            while True:
                try:
                    q.put((t, i))
                except flinq.StoreClosedError:
                    return
                i += 1
        threads = [threading.Thread(target=produce, args=(t,)) for t in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        store.close()
        print("closed", flush=True)
        for t in threads:
            t.join()
        """,
        path,
        timeout=20,
    )
    assert ok(proc).strip() == "closed"
    got = stored(path, "q")
    for t in range(3):
        mine = [i for tt, i in got if tt == t]
        assert mine == list(range(len(mine)))
