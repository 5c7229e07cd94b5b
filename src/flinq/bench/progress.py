"""How a `flinq bench` run tells of its progress on stderr: a bar redrawn in
place when stderr is a terminal, else one line per step (logs stay readable)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Columns the bar's line may take.
LINE_WIDTH = 100
BAR_WIDTH = 30


class Progress:
    """Steps done out of a total, with notes (skips, failures) in between."""

    def __init__(self, stream: TextIO | None = None, *, bar: bool | None = None) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._bar = self._stream.isatty() if bar is None else bar
        self._start = time.perf_counter()
        self._total = 0
        self._done = 0
        self._drawn = False

    def begin(self, total: int) -> None:
        """total steps are coming."""
        self._total = max(1, total)
        self._done = 0

    def stage(self, message: str) -> None:
        """A workload begins: a line without a bar, the bar's label with one."""
        if not self._bar:
            self._write(f"[{self._elapsed()}] {message}\n")
            return
        self._label = message.split(":", 1)[0]
        self._redraw()

    def note(self, message: str) -> None:
        """A line of its own: something the user should see."""
        self._clear()
        self._write(f"[{self._elapsed()}] {message}\n")
        self._redraw()

    def step(self, message: str) -> None:
        """One step done; message says which (and, without a bar, what it gave)."""
        self._done = min(self._total, self._done + 1)
        if not self._bar:
            self._write(f"[{self._elapsed()}] {message}\n")
            return
        self._label = message.split(":", 1)[0]
        self._redraw()

    def finish(self) -> None:
        """Remove the bar (the results follow on stdout)."""
        self._clear()

    # ---- drawing ---------------------------------------------------------------------

    _label = ""

    def _elapsed(self) -> str:
        return f"{time.perf_counter() - self._start:6.1f}s"

    def _redraw(self) -> None:
        if not self._bar or not self._total:
            return
        filled = BAR_WIDTH * self._done // self._total
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        line = f"[{self._elapsed()}] [{bar}] {self._done}/{self._total} {self._label}"
        self._write("\r" + line[:LINE_WIDTH].ljust(LINE_WIDTH))
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self._write("\r" + " " * LINE_WIDTH + "\r")
            self._drawn = False

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
