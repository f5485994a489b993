"""Progress on stderr: bytes, rate and ETA, only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_seconds(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressBar:
    """Callable(done, total, phase) for the tasks; draws at most 4 times a second."""

    def __init__(self, label: str, stream: Optional[TextIO] = None, enabled: Optional[bool] = None):
        self.label = label
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.enabled = isatty if enabled is None else enabled
        self._start: Optional[float] = None
        self._first = 0
        self._last_draw = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int, phase: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
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
            line = (f"{self.label}: {phase} {human_bytes(done)} / {human_bytes(total)} "
                    f"{pct:5.1f}%  {human_bytes(rate)}/s  ETA {eta}")
        self.stream.write("\r" + line[:119].ljust(119))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
