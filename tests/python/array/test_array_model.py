"""flinq.ArrayQueue against a reference model (a deque of record bytes):
random dtypes, record shapes, capacities and batch sizes, by hypothesis."""

from __future__ import annotations

import queue
from collections import deque
from typing import Any

import pytest

np = pytest.importorskip("numpy")
hnp = pytest.importorskip("hypothesis.extra.numpy")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import flinq  # noqa: E402

SCALARS = ["i1", "u1", "i2", ">i4", "u4", "i8", "<u8", "f2", "f4", ">f8", "c8", "c16", "?", "S3"]


@st.composite
def record_dtypes(draw: Any) -> Any:
    """A scalar, a fixed-shape subarray or a structured dtype (with padding
    and nested subarray fields)."""
    kind = draw(st.sampled_from(["scalar", "subarray", "structured"]))
    scalar = draw(st.sampled_from(SCALARS))
    if kind == "scalar":
        return np.dtype(scalar)
    if kind == "subarray":
        shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))
        return np.dtype((scalar, tuple(shape)))
    count = draw(st.integers(1, 3))
    fields = []
    for index in range(count):
        field = draw(st.sampled_from(SCALARS))
        shape = draw(st.sampled_from([(), (2,)]))
        fields.append((f"f{index}", field, shape) if shape else (f"f{index}", field))
    return np.dtype(fields, align=draw(st.booleans()))


def record_shape(dtype: Any) -> tuple[int, ...]:
    return dtype.shape if dtype.subdtype is not None else ()


def element_dtype(dtype: Any) -> Any:
    return dtype.subdtype[0] if dtype.subdtype is not None else dtype


def batch(draw: Any, dtype: Any, n: int) -> Any:
    """n random records of dtype (bytes drawn directly: every bit pattern,
    NaN payloads included, must survive the trip)."""
    raw = draw(st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize))
    return np.frombuffer(raw, dtype=element_dtype(dtype)).reshape((n, *record_shape(dtype)))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_matches_a_deque_of_records(data: Any) -> None:
    dtype = data.draw(record_dtypes(), label="dtype")
    capacity = data.draw(st.integers(1, 40), label="capacity")
    q = flinq.ArrayQueue(dtype, capacity)
    model: deque[bytes] = deque()
    enqueued = 0
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        op = data.draw(st.sampled_from(["put_many", "put", "get_many", "get_out", "get", "view"]))
        if op in ("put_many", "put"):
            n = 1 if op == "put" else data.draw(st.integers(0, capacity + 2))
            records = batch(data.draw, dtype, n)
            fits = len(model) + n <= capacity
            if op == "put":
                if fits:
                    q.put(records[0], block=False)
                else:
                    with pytest.raises(queue.Full):
                        q.put(records[0], block=False)
            elif n > capacity:
                with pytest.raises(ValueError):
                    q.put_many(records, block=False)
                fits = False
            elif fits:
                q.put_many(records, block=False)
            else:
                with pytest.raises(queue.Full):
                    q.put_many(records, block=False)
            if fits:
                model.extend(record.tobytes() for record in records)
                enqueued += n
        else:
            if not model:
                with pytest.raises(queue.Empty):
                    if op == "get":
                        q.get(block=False)
                    elif op == "view":
                        q.get_view(3, block=False)
                    else:
                        q.get_many(3, block=False)
                continue
            if op == "get":
                got = np.asarray(q.get(block=False))
                assert got.shape == record_shape(dtype)
                assert got.tobytes() == model.popleft()
                continue
            max_items = data.draw(st.integers(1, capacity + 2))
            if op == "view":
                with q.get_view(max_items, block=False) as got:
                    assert 1 <= len(got) <= min(max_items, len(model))
                    assert got.shape[1:] == record_shape(dtype)
                    for record in got:
                        assert record.tobytes() == model.popleft()
                continue
            if op == "get_out":
                room = data.draw(st.integers(1, capacity + 2))
                out = np.empty((room, *record_shape(dtype)), element_dtype(dtype))
                taken = q.get_many(max_items, out=out, block=False)
                assert taken == min(max_items, room, len(model))
                got = out[:taken]
            else:
                got = q.get_many(max_items, block=False)
                assert len(got) == min(max_items, len(model))
            assert got.dtype == element_dtype(dtype)
            assert got.shape[1:] == record_shape(dtype)
            for record in got:
                assert record.tobytes() == model.popleft()
        assert q.qsize() == len(model)
        assert q.empty() == (not model)
        assert q.full() == (len(model) == capacity)
    stats = q.stats()
    assert stats["enqueued"] == enqueued
    assert stats["dequeued"] == enqueued - len(model)


@settings(max_examples=60, deadline=None)
@given(
    values=hnp.arrays(
        dtype=st.sampled_from([np.dtype("i2"), np.dtype("u4"), np.dtype("f2"), np.dtype("f4")]),
        shape=hnp.array_shapes(min_dims=1, max_dims=1, max_side=20),
    ),
    target=st.sampled_from(["i4", "i8", "u8", "f4", "f8", "c16"]),
)
def test_safe_casts_keep_values_and_unsafe_ones_change_nothing(values: Any, target: str) -> None:
    q = flinq.ArrayQueue(target, 32)
    if np.can_cast(values.dtype, target, casting="safe"):
        q.put_many(values)
        got = q.get_many(32)
        assert got.dtype == np.dtype(target)
        np.testing.assert_array_equal(got, values.astype(target))
    else:
        with pytest.raises(TypeError):
            q.put_many(values)
        assert q.qsize() == 0
