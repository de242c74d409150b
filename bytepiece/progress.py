"""Progress reports on stderr for long work: training stages, and the command line's
encoding and decoding of large inputs.

One reporter for both. It writes nothing when disabled; on a terminal it redraws
one line in place a few times a second; elsewhere (a log file, a pipe) it writes a
line every few seconds, so logs stay short. Messages are prefixed with the stage
(``[bytepiece] count n-grams: ...`` for training, ``encode: ...`` for the CLI).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


class Progress:
    """Reports how far one stage of work has got.

    ``total`` (in units of ``unit``; bytes unless told) lets the report show a
    percentage and an estimate of the time left. ``prefix`` goes before the stage
    name. With ``enabled=None`` the report is on exactly when stderr is a terminal.
    """

    def __init__(
        self,
        enabled: bool | None,
        stage: str,
        total: int | None = None,
        *,
        unit: str = "MB",
        prefix: str = "[bytepiece] ",
        stream: TextIO | None = None,
    ):
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = self.tty if enabled is None else bool(enabled)
        self.stage = stage
        self.total = total
        self.unit = unit
        self.prefix = prefix
        self.done = 0
        self.start = self.last = time.perf_counter()
        self._drawn = False  # a line is on the terminal, waiting for its newline

    # -- messages -------------------------------------------------------------
    def log(self, message: str) -> None:
        """One line, ``[bytepiece] stage: message`` (ends a redrawn line first)."""
        if self.enabled:
            self._end_line()
            self._write(f"{self.prefix}{self.stage}: {message}\n")

    def advance(self, amount: int, extra: Callable[[], str] | None = None) -> None:
        """``amount`` more units done; redraws the status when it is time to.
        ``extra()`` (called only then) adds to the status line."""
        self.done += amount
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < (0.2 if self.tty else 2.0):
            return
        self.last = now
        status = self.status(now) + (extra() if extra is not None else "")
        if self.tty:
            self._write(f"\r\x1b[K{self.prefix}{self.stage}: {status}")
            self._drawn = True
        else:
            self._write(f"{self.prefix}{self.stage}: {status}\n")

    def finish(self, extra: str = "") -> None:
        """The stage's last line: how long it took (and how much it did)."""
        now = time.perf_counter()
        status = f" ({self.status(now)})" if self.done else ""
        self.log(f"done in {now - self.start:.1f}s{status}{extra}")

    # -- formatting -----------------------------------------------------------
    def _scaled(self, n: float) -> str:
        return f"{n / 1e6:.1f}" if self.unit == "MB" else f"{int(n)}"

    def status(self, now: float | None = None) -> str:
        """``12.3 MB, 4.5 MB/s[, 40%, ETA 3s]``."""
        now = time.perf_counter() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        text = f"{self._scaled(self.done)} {self.unit}, {self._scaled(rate)} {self.unit}/s"
        if self.total:
            left = max(self.total - self.done, 0)
            text += f", {100 * min(self.done / self.total, 1):.0f}%, ETA {left / max(rate, 1):.0f}s"
        return text

    def _end_line(self) -> None:
        if self._drawn:
            self._write("\n")
            self._drawn = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError, AttributeError):
            # stderr closed or full: progress is never worth failing the work for
            self.enabled = False
