"""Progress on stderr: bytes, rate and ETA, only when stderr is a terminal.

The bar is one line redrawn in place, never wider than the terminal (a wider line would wrap
and start a new line on every redraw). Log messages go through `BarLogHandler`, which clears
the bar's line before a message and draws the bar again below it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from typing import Callable, Optional, TextIO


class WaitNotice:
    """Says on stderr (the `ghga_tasks` logger) what a long wait is for: once it has lasted
    `after` seconds, then at most once every `every` seconds, so a log shows it too, not only
    the bar. Short waits stay quiet: an error after one still ends in one line."""

    def __init__(
        self,
        logger: logging.Logger,
        after: float = 10.0,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.logger, self.after, self.every, self.clock = logger, after, every, clock
        self._start: Optional[float] = None
        self._last: Optional[float] = None

    def __call__(self, message: str) -> None:
        now = self.clock()
        if self._start is None:
            self._start = now
        if now - self._start < self.after:
            return
        if self._last is None or now - self._last >= self.every:
            self._last = now
            self.logger.warning("%s", message)


Progress = Callable[[int, int, str], None]  # (bytes done, bytes in all, phase)


def no_progress(done: int, total: int, phase: str) -> None:
    """The progress callback of a caller that shows none."""


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_seconds(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def terminal_columns(stream: TextIO) -> int:
    """Columns of the terminal `stream` writes to: $COLUMNS, else the terminal's own size
    (of `stream`, then of stdout as shutil asks), else 80. One ioctl: cheap on every redraw."""
    if not os.environ.get("COLUMNS", "").strip().isdigit():
        try:
            return os.get_terminal_size(stream.fileno()).columns or 80
        except (AttributeError, OSError, ValueError):
            pass
    return shutil.get_terminal_size((80, 24)).columns


class ProgressBar:
    """Callable(done, total, phase) for the tasks; draws at most 4 times a second."""

    def __init__(
        self,
        label: str,
        stream: Optional[TextIO] = None,
        enabled: Optional[bool] = None,
        columns: Optional[Callable[[], int]] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label = label
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.enabled = isatty if enabled is None else enabled
        self.columns = columns or (lambda: terminal_columns(self.stream))
        self.clock = clock
        self.lock = threading.RLock()  # the engine draws, other threads log
        self._start: Optional[float] = None
        self._first = 0
        self._last_draw = 0.0
        self._drawn = 0  # width of the line on screen; 0: none
        self._line = ""

    def __call__(self, done: int, total: int, phase: str) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if self._start is None and total:
            self._start, self._first = now, done
        if now - self._last_draw < 0.25 and done < total:
            return
        self._last_draw = now
        if not total:
            line = f"{self.label}: {phase}"
        else:
            spent = now - (self._start or now)
            rate = (done - self._first) / spent if spent > 0.5 else 0.0
            eta = human_seconds((total - done) / rate) if rate > 0 else "--:--:--"
            pct = 100.0 * done / total if total else 100.0
            figures = (
                f"{phase} {human_bytes(done)} / {human_bytes(total)} "
                f"{pct:5.1f}%  {human_bytes(rate)}/s  ETA {eta}"
            )
            line = f"{self.label}: {figures}"
            if len(line) >= self.columns():
                line = figures  # the label goes first; what is left is cut below
        with self.lock:
            self._line = line
            self._draw()

    def _width(self) -> int:
        return max(1, self.columns() - 1)  # a line in the last column wraps on some terminals

    def _draw(self) -> None:
        width = self._width()
        line = self._line[:width]
        # spaces blank what is left of a longer line drawn before
        self.stream.write("\r" + line.ljust(min(max(self._drawn, len(line)), width)))
        self.stream.flush()
        self._drawn = len(line) or 1

    def clear(self) -> None:
        """Blank the bar's line and put the cursor at its start (for a message)."""
        with self.lock:
            if self._drawn:
                self.stream.write("\r" + " " * min(self._drawn, self._width()) + "\r")
                self.stream.flush()

    def redraw(self) -> None:
        """Draw the last line again (after a message)."""
        with self.lock:
            if self._drawn:
                self._drawn = 0
                self._draw()

    def close(self) -> None:
        with self.lock:
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()
                self._drawn = 0


class BarLogHandler(logging.StreamHandler):
    """Log records as lines on the stream a ProgressBar draws on: the bar's line is blanked
    before a message and drawn again after it, so no message lands inside the bar."""

    def __init__(self, stream: Optional[TextIO] = None):
        super().__init__(stream or sys.stderr)
        self.bar: Optional[ProgressBar] = None

    def emit(self, record: logging.LogRecord) -> None:
        bar = self.bar
        if bar is None or not bar.enabled:
            super().emit(record)
            return
        with bar.lock:
            bar.clear()
            super().emit(record)
            bar.redraw()
