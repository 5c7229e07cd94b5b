"""flinq.ArrayQueue in one thread: records of every dtype kind, batches,
blocking calls with timeouts, shutdown, close, stats and bad input."""

from __future__ import annotations

import pickle
import queue
from typing import Any

import pytest

np = pytest.importorskip("numpy")

import flinq  # noqa: E402

POINT = np.dtype([("id", "<i8"), ("xyz", "<f4", (3,)), ("tag", "S4")])


def test_int64_round_trip() -> None:
    q = flinq.ArrayQueue("i8", 10)
    assert q.dtype == np.dtype("i8") and q.capacity == 10 and not q.shared
    q.put(7)
    q.put_many(np.arange(5))
    assert q.qsize() == 6 and not q.empty() and not q.full()
    first = q.get()
    assert first == 7 and isinstance(first, np.int64)
    out = q.get_many(10)
    assert out.dtype == np.int64 and out.tolist() == [0, 1, 2, 3, 4]
    assert q.empty()


def test_get_many_takes_at_most_max_items_in_order() -> None:
    q = flinq.ArrayQueue("u2", 100)
    q.put_many(np.arange(30, dtype="u2"))
    assert q.get_many(7).tolist() == list(range(7))
    assert q.get_many(100).tolist() == list(range(7, 30))


def test_subarray_records_come_out_with_their_shape() -> None:
    q = flinq.ArrayQueue(("f4", (3,)), 4)
    q.put([1, 2, 3])
    q.put_many(np.arange(6, dtype="f4").reshape(2, 3))
    one = q.get()
    assert one.shape == (3,) and one.dtype == np.float32 and one.tolist() == [1, 2, 3]
    rest = q.get_many(5)
    assert rest.shape == (2, 3) and rest.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_structured_records() -> None:
    q = flinq.ArrayQueue(POINT, 8)
    batch = np.zeros(3, POINT)
    batch["id"] = [1, 2, 3]
    batch["xyz"][1] = [0.5, 1.5, 2.5]
    batch["tag"] = [b"a", b"bb", b"ccc"]
    q.put_many(batch)
    q.put((9, (1.0, 2.0, 3.0), b"z"))
    got = q.get_many(10)
    assert got.dtype == POINT
    assert got[:3].tobytes() == batch.tobytes()
    assert got[3]["id"] == 9 and got[3]["tag"] == b"z"
    assert got[3]["xyz"].tolist() == [1.0, 2.0, 3.0]


def test_wrapping_batches_stay_in_order() -> None:
    q = flinq.ArrayQueue("i4", 7)
    expected: list[int] = []
    taken: list[int] = []
    start = 0
    for size in (5, 4, 7, 3, 6, 1, 7):
        while q.qsize() + size > 7:
            taken += q.get_many(3).tolist()
        q.put_many(np.arange(start, start + size, dtype="i4"))
        expected += list(range(start, start + size))
        start += size
    while not q.empty():
        taken += q.get_many(4).tolist()
    assert taken == expected


def test_get_many_into_out() -> None:
    q = flinq.ArrayQueue("f8", 16)
    q.put_many(np.arange(5, dtype="f8"))
    out = np.full(8, -1.0)
    assert q.get_many(3, out=out) == 3
    assert out.tolist() == [0, 1, 2, -1, -1, -1, -1, -1]
    assert q.get_many(10, out=out) == 2  # what is there, at most len(out)
    assert out[:2].tolist() == [3, 4]
    q.put_many(np.arange(10, dtype="f8"))
    small = np.empty(4)
    assert q.get_many(100, out=small) == 4
    assert q.qsize() == 6


def test_batches_in_any_layout_arrive_intact() -> None:
    q = flinq.ArrayQueue(("i4", (2,)), 64)
    base = np.arange(24, dtype="i4").reshape(12, 2)
    frozen = base[:3].copy()
    frozen.flags.writeable = False
    swapped = base[3:6].astype(">i4")  # equal values, other byte order
    batches = [base[::2], np.asfortranarray(base[:4]), frozen, swapped, base[6:6]]
    for batch in batches:
        q.put_many(batch)
    expected = np.concatenate([np.asarray(b, "i4") for b in batches])
    out = np.zeros((len(expected) + 5, 2), "i4")
    assert q.get_many(2**70, out=out) == len(expected)
    assert out[: len(expected)].tolist() == expected.tolist()
    assert q.qsize() == 0


def test_empty_batch_is_a_no_op() -> None:
    q = flinq.ArrayQueue("i8", 2)
    q.put_many(np.empty(0, "i8"))
    q.put_many([])
    assert q.qsize() == 0 and q.stats()["enqueued"] == 0


def test_capacity_full_and_nonblocking_calls() -> None:
    q = flinq.ArrayQueue("i8", 3)
    q.put_many([1, 2, 3])
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(4)
    with pytest.raises(queue.Full):
        q.put(4, block=False)
    with pytest.raises(queue.Full):
        q.put_many([4], timeout=0.01)
    assert q.qsize() == 3
    assert q.get_nowait() == 1
    with pytest.raises(queue.Full):  # all or none: two do not fit in one free slot
        q.put_many([4, 5], block=False)
    q.put_many([4])
    assert q.get_many(10).tolist() == [2, 3, 4]
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get_many(5, block=False)
    with pytest.raises(queue.Empty):
        q.get_many(5, timeout=0.01)


def test_batch_larger_than_capacity_is_refused() -> None:
    q = flinq.ArrayQueue("i8", 4)
    with pytest.raises(ValueError, match="never fit"):
        q.put_many(np.arange(5))
    assert q.qsize() == 0


def test_shutdown_drains_then_raises() -> None:
    q = flinq.ArrayQueue("i8", 4)
    q.put_many([1, 2])
    q.shutdown()
    assert q.is_shutdown
    with pytest.raises(flinq.ShutDown):
        q.put(3)
    with pytest.raises(flinq.ShutDown):
        q.put_many([3])
    assert q.get() == 1
    assert q.get_many(5).tolist() == [2]
    with pytest.raises(flinq.ShutDown):
        q.get()
    with pytest.raises(flinq.ShutDown):
        q.get_many(3, block=False)


def test_shutdown_immediate_discards() -> None:
    q = flinq.ArrayQueue("i8", 4)
    q.put_many([1, 2, 3])
    q.shutdown(immediate=True)
    assert q.qsize() == 0
    with pytest.raises(flinq.ShutDown):
        q.get()
    stats = q.stats()
    assert stats["discarded"] == 3 and stats["enqueued"] == 3 and stats["dequeued"] == 0


def test_close_releases_and_later_calls_raise() -> None:
    q = flinq.ArrayQueue("i8", 4)
    q.put(1)
    with q:
        pass
    assert q.closed
    q.close()  # twice is fine
    for call in (lambda: q.put(1), lambda: q.get(), lambda: q.get_many(1), q.qsize, q.stats):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_stats_counts() -> None:
    q = flinq.ArrayQueue(("i2", (2,)), 10)
    q.put_many(np.zeros((4, 2), "i2"))
    q.get_many(3)
    stats = q.stats()
    assert stats["depth"] == 1
    assert stats["enqueued"] == 4 and stats["dequeued"] == 3 and stats["discarded"] == 0
    assert stats["capacity"] == 10 and stats["record_size"] == 4
    assert stats["ring_bytes"] >= 40 and stats["shared"] is False
    assert stats["is_shutdown"] is False


def test_repr() -> None:
    q = flinq.ArrayQueue("f4", 3)
    q.put(1.0)
    assert "float32" in repr(q) and "1/3" in repr(q)
    q.close()
    assert "closed" in repr(q)


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "dtype", [object, [("a", "i4"), ("b", "O")], ("O", (2,))], ids=["object", "field", "sub"]
)
def test_object_dtypes_are_refused(dtype: Any) -> None:
    with pytest.raises(TypeError, match="object"):
        flinq.ArrayQueue(dtype, 4)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("i8", 0), ValueError),
        (("i8", -1), ValueError),
        (("i8", 2.0), TypeError),
        (("i8", True), TypeError),
        (("V0", 4), ValueError),
        (("i8", 2**62), ValueError),
        (("not a dtype", 4), TypeError),
    ],
)
def test_bad_construction(args: tuple[Any, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        flinq.ArrayQueue(*args)


def test_shape_mismatch_raises_value_error_and_stores_nothing() -> None:
    q = flinq.ArrayQueue(("f4", (3,)), 8)
    with pytest.raises(ValueError, match="shape"):
        q.put_many(np.zeros((2, 4), "f4"))
    with pytest.raises(ValueError, match="shape"):
        q.put_many(np.zeros(3, "f4"))
    with pytest.raises(ValueError, match="shape"):
        q.put(np.zeros(4, "f4"))
    with pytest.raises(ValueError, match="shape"):
        q.put([1.0, 2.0])
    s = flinq.ArrayQueue("i8", 8)
    with pytest.raises(ValueError, match="shape"):
        s.put([1, 2])
    with pytest.raises(ValueError, match="shape"):
        s.put_many(np.zeros((2, 2), "i8"))
    with pytest.raises(ValueError, match="shape"):
        s.put_many(5)
    assert q.qsize() == 0 and s.qsize() == 0


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        ("f4", np.arange(3, dtype="f8")),  # float64 -> float32
        ("i4", np.arange(3, dtype="i8")),
        ("i8", np.arange(3, dtype="u8")),
        ("i8", np.ones(2, "f4")),
        ("u1", np.arange(3, dtype="i1")),
        ("f8", np.ones(2, "c16")),
        (POINT, np.zeros(2, [("id", "<f8"), ("xyz", "<f4", (3,)), ("tag", "S4")])),
    ],
)
def test_lossy_array_casts_are_refused(dtype: Any, value: Any) -> None:
    q = flinq.ArrayQueue(dtype, 8)
    with pytest.raises(TypeError, match="without loss"):
        q.put_many(value)
    assert q.qsize() == 0


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        ("f4", np.arange(3, dtype="i2")),
        ("i8", np.arange(3, dtype="i4")),
        ("f8", np.arange(3, dtype="f4")),
        (">i8", np.arange(3, dtype="<i8")),
        ("c8", np.ones(3, "f4")),
    ],
)
def test_safe_array_casts_are_accepted(dtype: Any, value: Any) -> None:
    q = flinq.ArrayQueue(dtype, 8)
    q.put_many(value)
    got = q.get_many(8)
    assert got.dtype == np.dtype(dtype)
    assert (got == value).all()


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        ("i8", 1.5),
        ("i1", 300),
        ("u8", -1),
        ("f4", 0.1),  # not exactly representable
        ("f4", 1e300),
        ("f8", 1j),
        ("bool", 2),
        ("i8", "12"),
        ("i8", 2**70),
    ],
)
def test_lossy_python_values_are_refused(dtype: str, value: Any) -> None:
    q = flinq.ArrayQueue(dtype, 8)
    with pytest.raises(TypeError):
        q.put(value)
    assert q.qsize() == 0


@pytest.mark.parametrize(
    ("dtype", "value"),
    [("f4", 0.5), ("f4", 3), ("i1", -128), ("bool", 1), ("f8", float("nan")), ("c8", 1 + 2j)],
)
def test_exact_python_values_are_accepted(dtype: str, value: Any) -> None:
    q = flinq.ArrayQueue(dtype, 8)
    q.put(value)
    got = q.get()
    assert got == value or (got != got and value != value)


def test_lossy_python_batch_is_refused_whole() -> None:
    q = flinq.ArrayQueue("i4", 8)
    with pytest.raises(TypeError):
        q.put_many([1, 2, 3.5])
    with pytest.raises(TypeError):
        q.put_many([1, 2, 2**40])
    assert q.qsize() == 0


def test_bad_get_many_arguments() -> None:
    q = flinq.ArrayQueue(("i4", (2,)), 8)
    q.put_many(np.zeros((2, 2), "i4"))
    for max_items, error in (
        (0, ValueError),
        (-1, ValueError),
        (1.0, TypeError),
        (True, TypeError),
    ):
        with pytest.raises(error):
            q.get_many(max_items)
    bad_outs = [
        ([0, 0], TypeError),
        (np.zeros((2, 2), "i8"), TypeError),
        (np.zeros((2, 3), "i4"), ValueError),
        (np.zeros(4, "i4"), ValueError),
        (np.zeros((0, 2), "i4"), ValueError),
        (np.zeros((2, 4), "i4")[:, ::2], ValueError),
    ]
    for out, error in bad_outs:
        with pytest.raises(error):
            q.get_many(2, out=out)
    frozen = np.zeros((2, 2), "i4")
    frozen.flags.writeable = False
    with pytest.raises(ValueError):
        q.get_many(2, out=frozen)
    assert q.qsize() == 2


def test_bad_timeout() -> None:
    q = flinq.ArrayQueue("i8", 1)
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    with pytest.raises(ValueError):
        q.get_many(1, timeout=float("nan"))
    with pytest.raises(TypeError):
        q.get(timeout="1")
    q.put(1)
    with pytest.raises(ValueError):
        q.put(2, timeout=-0.5)
    assert q.qsize() == 1


def test_in_process_queue_does_not_pickle() -> None:
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(flinq.ArrayQueue("i8", 2))


# ---------------------------------------------------------------- reading in place


def test_get_view_reads_in_place_and_holds_slots_until_released() -> None:
    q = flinq.ArrayQueue(("f4", (3,)), 8)
    q.put_many(np.arange(18, dtype="f4").reshape(6, 3))
    view = q.get_view(4)
    assert len(view) == 4 and not view.released
    assert view.array.shape == (4, 3) and view.array.dtype == np.float32
    assert view.array.tolist() == np.arange(12, dtype="f4").reshape(4, 3).tolist()
    assert not view.array.flags.writeable
    with pytest.raises(ValueError):
        view.array[0, 0] = 1
    assert q.qsize() == 2
    q.put_many(np.zeros((2, 3), "f4"))
    with pytest.raises(queue.Full):  # the 4 viewed slots are not free yet
        q.put(np.zeros(3, "f4"), block=False)
    view.release()
    view.release()  # twice is fine
    assert view.released
    q.put_many(np.ones((4, 3), "f4"))
    assert q.full()


def test_get_view_stops_at_the_ring_end_and_keeps_order() -> None:
    q = flinq.ArrayQueue("i8", 5)
    q.put_many([0, 1, 2])
    assert q.get_many(3).tolist() == [0, 1, 2]
    q.put_many([3, 4, 5, 6])  # positions 3..6: slots 3, 4, 0, 1
    with q.get_view(10) as first:
        assert first.tolist() == [3, 4]
    with q.get_view(10) as second:
        assert second.tolist() == [5, 6]
    with pytest.raises(queue.Empty):
        q.get_view(1, block=False)


def test_dropped_view_is_released_and_array_outlives_close() -> None:
    q = flinq.ArrayQueue("i8", 2)
    q.put_many([7, 8])
    view = q.get_view(2)
    array = view.array
    del view  # released when collected
    q.put_many([9, 10])
    assert array.tolist() == [9, 10]  # the slots were reused: documented
    view = q.get_view(2)
    array = view.array
    q.close()
    assert array.tolist() == [9, 10]  # the ring stays allocated while viewed
    view.release()
    del view, array


@pytest.mark.parametrize(("max_items", "error"), [(0, ValueError), (1.5, TypeError)])
def test_bad_get_view_arguments(max_items: Any, error: type[Exception]) -> None:
    q = flinq.ArrayQueue("i8", 2)
    q.put(1)
    with pytest.raises(error):
        q.get_view(max_items)
    assert q.qsize() == 1
