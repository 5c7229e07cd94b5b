"""`q.async_q`: the asyncio face is an attribute of every queue kind that has one."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

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


def test_process_and_array_queues_have_their_face():
    numpy = pytest.importorskip("numpy")
    kinds: list[Any] = [flinq.ArrayQueue("i8", 16)]
    if flinq.ProcessQueue.supported():
        kinds.append(flinq.ProcessQueue())
    for q in kinds:
        face = q.async_q
        assert isinstance(face, AsyncQueue) and q.async_q is face

        async def main(q: Any = q, face: AsyncQueue[Any] = face) -> Any:
            threading.Thread(target=q.put, args=(7,)).start()
            return await face.get()

        got = asyncio.run(main())
        assert int(got) == 7 if isinstance(q, flinq.ArrayQueue) else got == 7
        q.close()
    assert numpy is not None
