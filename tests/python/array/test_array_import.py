"""`import flinq` needs no numpy; ArrayQueue says what is missing."""

from __future__ import annotations

import textwrap

from qhelpers import run_python

WITHOUT_NUMPY = textwrap.dedent(
    """
    import sys

    class NoNumpy:
        def find_spec(self, name, path=None, target=None):
            if name == "numpy" or name.startswith("numpy."):
                raise ImportError("numpy is blocked for this test")
            return None

    sys.meta_path.insert(0, NoNumpy())
    import flinq

    assert "numpy" not in sys.modules
    q = flinq.Queue()
    q.put(1)
    assert q.get() == 1
    try:
        flinq.ArrayQueue("i8", 4)
    except ImportError as error:
        print("ImportError:", error)
    else:
        raise SystemExit("ArrayQueue worked without numpy")
    assert "numpy" not in sys.modules
    print("ok")
    """
)


def test_import_flinq_without_numpy() -> None:
    result = run_python(WITHOUT_NUMPY)
    assert result.returncode == 0, result.stderr
    assert "flinq[numpy]" in result.stdout
    assert result.stdout.strip().endswith("ok")


def test_import_flinq_does_not_import_numpy() -> None:
    result = run_python("import sys, flinq; print('numpy' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
