"""The extension types' methods have signatures that inspect and help() read."""

from __future__ import annotations

import inspect

import pytest

import flinq

CLASSES = [flinq.Queue, flinq.SimpleQueue, flinq.LifoQueue, flinq.PriorityQueue]


def public_methods(cls: type) -> list[str]:
    return [
        name
        for name, value in vars(cls).items()
        if not name.startswith("_") and callable(value) and not isinstance(value, type)
    ]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_public_method_has_a_signature(cls):
    for klass in cls.__mro__[:-1]:
        for name in public_methods(klass):
            inspect.signature(getattr(cls, name))  # raises ValueError without one


def test_signatures_name_the_parameters():
    assert str(inspect.signature(flinq.Queue.consume)) == "(self, /, handler, **options)"
    assert str(inspect.signature(flinq.Queue.get_many)) == (
        "(self, /, max_items, block=True, timeout=None)"
    )
    put = inspect.signature(flinq.PriorityQueue.put)
    assert list(put.parameters) == ["self", "item", "block", "timeout", "priority"]
    assert put.parameters["priority"].kind is inspect.Parameter.KEYWORD_ONLY
    assert str(inspect.signature(flinq.Queue)) == "(maxsize=0)"
    assert str(inspect.signature(flinq.SimpleQueue)) == "()"


def test_the_other_extension_types_have_signatures():
    assert "visibility_timeout" in inspect.signature(flinq.ProcessQueue).parameters
    assert list(inspect.signature(flinq.ArrayQueue).parameters) == ["dtype", "capacity", "shared"]
    for cls in (flinq.ProcessQueue, flinq.ArrayQueue):
        for name in public_methods(cls):
            inspect.signature(getattr(cls, name))


def test_help_shows_the_signature_and_the_docstring():
    doc = flinq.Queue.__doc__ or ""
    assert doc.startswith("A FIFO queue")  # the signature line is not in __doc__
    assert (flinq.Queue.consume.__doc__ or "").startswith("Run handler(message)")
