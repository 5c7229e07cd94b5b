"""`q.async_q`: the asyncio face is an attribute of every queue kind that has one."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

import flinq
from flinq.aio import AsyncQueue


@pytest.mark.parametrize(
    "cls", [flinq.Queue, flinq.SimpleQueue, flinq.LifoQueue, flinq.PriorityQueue]
)
def test_in_memory_queues_have_their_face(cls):
    q = cls()
    face = q.async_q
    assert isinstance(face, AsyncQueue)
    assert q.async_q is face

    async def main() -> list[int]:
        threading.Thread(target=lambda: [q.put(i) for i in range(3)]).start()
        return sorted([await face.get() for _ in range(3)])

    assert asyncio.run(main()) == [0, 1, 2]


def test_durable_queues_have_their_face(tmp_path: Path):
    with flinq.open(str(tmp_path / "store")) as store:
        q = store.queue("jobs")
        q.put(b"one")

        async def main() -> bytes:
            return await q.async_q.get()

        assert asyncio.run(main()) == b"one"
        assert q.async_q is q.async_q
