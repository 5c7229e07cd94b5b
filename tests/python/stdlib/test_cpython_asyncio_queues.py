"""CPython's own asyncio queue tests (Lib/test/test_asyncio/test_queues.py of
the running interpreter), run against flinq's async face.

The stdlib's tests name their queues as ``asyncio.Queue`` and friends. Here a
fresh copy of the test module sees an ``asyncio`` whose Queue, LifoQueue and
PriorityQueue make ``AsyncQueue(flinq.Queue(maxsize))`` and so on; every other
name is asyncio's own (flinq's QueueEmpty, QueueFull and QueueShutDown derive
from asyncio's). Skipped: the tests that reach into asyncio.Queue's private
state, and the one difference of API, each with its reason below; the whole
module only where the interpreter was installed without its test package.
"""

from __future__ import annotations

import asyncio
import importlib.util
import types
import unittest
from types import GenericAlias
from typing import Any, ClassVar

import pytest

import flinq
from flinq.aio import AsyncQueue

_spec = importlib.util.find_spec("test.test_asyncio.test_queues")
if _spec is None or _spec.origin is None:
    pytest.skip("this interpreter has no test package", allow_module_level=True)


class _FlinqFace:
    """Stands for asyncio.Queue: makes the async face of a new flinq queue."""

    kind: ClassVar[type[Any]] = flinq.Queue
    __class_getitem__ = classmethod(GenericAlias)

    def __new__(cls, maxsize: int = 0) -> Any:  # type: ignore[misc]
        return AsyncQueue(cls.kind(maxsize))


class _FlinqLifoFace(_FlinqFace):
    kind = flinq.LifoQueue


class _FlinqPriorityFace(_FlinqFace):
    kind = flinq.PriorityQueue


asyncio_with_flinq = types.ModuleType("asyncio_with_flinq")
asyncio_with_flinq.__dict__.update(asyncio.__dict__)
asyncio_with_flinq.Queue = _FlinqFace  # type: ignore[attr-defined]
asyncio_with_flinq.LifoQueue = _FlinqLifoFace  # type: ignore[attr-defined]
asyncio_with_flinq.PriorityQueue = _FlinqPriorityFace  # type: ignore[attr-defined]

std = importlib.util.module_from_spec(
    importlib.util.spec_from_file_location("cpython_asyncio_test_queues", _spec.origin)  # type: ignore[arg-type]
)
_spec_loader = std.__spec__.loader  # type: ignore[union-attr]
_spec_loader.exec_module(std)  # type: ignore[union-attr]
std.asyncio = asyncio_with_flinq  # type: ignore[attr-defined]

PRIVATE = "reads or writes asyncio.Queue's private state (_getters, _putters, _queue, ...)"
SKIPPED = {
    "test_repr": "repr names the flinq queue; asyncio's shows its private _getters and _queue",
    "test_str": "str names the flinq queue; asyncio's shows its private _getters and _queue",
    "test_get_with_putters": PRIVATE,
    "test_cancelled_getters_not_being_held_in_self_getters": PRIVATE,
    "test_cancelled_puts_not_being_held_in_self_putters": PRIVATE,
    "test_format": "asyncio.Queue's private _format() and _unfinished_tasks",
    "test_float_maxsize": "flinq's maxsize is an int: a float is a TypeError",
}


# The join and shutdown tests name their class once, as q_class, when the
# module is imported: asyncio's own, then.
FACES = {asyncio.Queue: _FlinqFace, asyncio.LifoQueue: _FlinqLifoFace}
FACES[asyncio.PriorityQueue] = _FlinqPriorityFace


def _flinq_case(case: type) -> type:
    body: dict[str, Any] = {"__module__": __name__}
    body.update(
        (name, unittest.skip(reason)(getattr(case, name)))
        for name, reason in SKIPPED.items()
        if hasattr(case, name)
    )
    q_class = getattr(case, "q_class", None)
    if q_class is not None:
        body["q_class"] = FACES[q_class]
    return type(f"TestFlinq{case.__name__}", (case,), body)


for _name, _case in vars(std).items():
    if isinstance(_case, type) and issubclass(_case, unittest.TestCase):
        _flinq = _flinq_case(_case)
        globals()[_flinq.__name__] = _flinq
del _name, _case, _flinq
