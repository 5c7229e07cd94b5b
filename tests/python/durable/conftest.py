"""Fixtures for the durable-store tests."""

from __future__ import annotations

import contextlib
import os
import sys

import pytest

# dhelpers.py lives next to this file; make it importable whatever pytest's import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dhelpers import FAST

import flinq


@pytest.fixture
def path(tmp_path):
    """Where a test's store lives (not created yet)."""
    return tmp_path / "store"


@pytest.fixture
def opener(path):
    """open(**kwargs) -> Store at `path`, with every store it opened closed at teardown."""
    opened = []

    def open_(p=None, **kwargs):
        store = flinq.open(p if p is not None else path, **{**FAST, **kwargs})
        opened.append(store)
        return store

    yield open_
    for store in opened:
        with contextlib.suppress(flinq.StoreError):
            store.close()


@pytest.fixture
def store(opener):
    """A batch-mode store at `path`, closed at teardown."""
    return opener()
