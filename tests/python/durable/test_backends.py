"""flinq.open picks the backend by the URL's scheme."""

from __future__ import annotations

import pytest
from dhelpers import FAST

import flinq
from flinq import backends


def test_a_path_and_a_file_url_open_lmdb_stores(tmp_path):
    with flinq.open(str(tmp_path / "a"), **FAST) as store:
        assert isinstance(store, flinq.Store)
    with flinq.open(f"file://{tmp_path / 'b'}", **FAST) as store:
        assert isinstance(store, flinq.Store)
        assert store.path == str((tmp_path / "b").resolve())


def test_an_unknown_scheme_is_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"amqp://.*a path, file://, redis://, rediss://, unix://"):
        flinq.open("amqp://localhost:5672/0")
    with pytest.raises(ValueError, match="this machine"):
        flinq.open("file://elsewhere/x")
    assert list(tmp_path.iterdir()) == []


def test_a_registered_backend_gets_the_url_and_options(tmp_path, monkeypatch):
    opened = []

    def opener(url, **options):
        opened.append((url, options))
        return flinq.open(tmp_path / "s", **FAST)

    monkeypatch.setattr(backends, "_openers", {})
    monkeypatch.setattr(backends, "_listers", {})
    backends.register("demo", opener, lambda: [])
    assert backends.schemes() == ["demo"]
    with backends.open("DEMO://host/x", readonly=False) as store:
        assert opened == [("DEMO://host/x", {"readonly": False})]
        assert store in backends.open_stores()
