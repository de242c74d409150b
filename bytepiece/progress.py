"""Progress reports on stderr for long work: training stages, and the command line's
encoding and decoding of large inputs.

One reporter for both. It writes nothing when disabled. On a terminal it keeps one
bar at the bottom, redrawn in place a few times a second, the way pip, cargo or
click's ``progressbar`` show theirs::

    [bytepiece] count n-grams [##########--------------]  41%  12.3/30.0 MB  4.5 MB/s  ETA 4s

(with no total known: the amount and the rate after a spinner). Stage messages
(:meth:`Progress.log`) scroll above the bar, and when the stage ends the bar gives
way to one line saying how long it took. Anywhere else (a log file, a pipe) there is
no bar and no periodic status: only the stage messages and that last line, so logs
stay short. Messages are prefixed with the stage (``[bytepiece] count n-grams: ...``
for training, ``encode: ...`` for the command line).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

REDRAW_SECONDS = 0.1  # the bar is redrawn at most this often
BAR_WIDTH = 24  # cells of the bar, fewer on a narrow terminal (the line never wraps)
MIN_BAR_WIDTH = 10
_TAIL_ROOM = len("]  100%  1234.5/1234.5 MB  123.4 MB/s  ETA 12m34s") + 1  # (+1: the cursor)
_SPINNER = "|/-\\"


class Progress:
    """Reports how far one stage of work has got.

    ``total`` (in units of ``unit``; bytes unless told) lets the report show a bar, a
    percentage and an estimate of the time left. ``prefix`` goes before the stage
    name. With ``enabled=None`` the report is on exactly when the stream (stderr
    unless told) is a terminal; with ``enabled=True`` on a stream that is not one, only
    the stage messages and the closing line are written.
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
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, OSError, ValueError):
            self.tty = False
        self.enabled = self.tty if enabled is None else bool(enabled)
        self.stage = stage
        self.total = total
        self.unit = unit
        self.prefix = prefix
        self.done = 0
        self.start = time.perf_counter()
        self._drawn_at: float | None = None  # when the bar was last drawn (None: never)
        self._bar_shown = False  # a bar is on the terminal's last line
        self._spins = 0
        self._width: int | None = None  # cells of the bar, set when it is first drawn

    # -- messages -------------------------------------------------------------
    def log(self, message: str) -> None:
        """One line, ``[bytepiece] stage: message``, above the bar (which the next
        :meth:`advance` draws again)."""
        if self.enabled:
            self._write(self._erase_bar() + f"{self.prefix}{self.stage}: {message}\n")

    def advance(self, amount: int, extra: Callable[[], str] | None = None) -> None:
        """``amount`` more units done; on a terminal, redraws the bar when it is time to.
        ``extra()`` (called only then) adds to the bar's line."""
        self.done += amount
        if not (self.enabled and self.tty):
            return
        now = time.perf_counter()
        finished = bool(self.total) and self.done >= (self.total or 0)
        if self._drawn_at is not None and now - self._drawn_at < REDRAW_SECONDS and not finished:
            return
        self._drawn_at = now
        line = self._bar_line(now, extra() if extra is not None else "")
        self._write("\r\x1b[K" + line)
        self._bar_shown = True

    def finish(self, extra: str = "") -> None:
        """The stage's last line, in place of the bar: how long it took (and how much
        it did, at what rate; never an estimate of time left, there is none)."""
        now = time.perf_counter()
        done = f" ({self._amount(self.done)} {self.unit}, {self._rate(now)})" if self.done else ""
        self.log(f"done in {now - self.start:.1f}s{done}{extra}")

    # -- formatting -----------------------------------------------------------
    def status(self, now: float | None = None) -> str:
        """``12.3 MB, 4.5 MB/s[, 40%, ETA 3s]`` (no ETA once the total is reached)."""
        now = time.perf_counter() if now is None else now
        text = f"{self._amount(self.done)} {self.unit}, {self._rate(now)}"
        if self.total:
            text += f", {self._percent():.0f}%"
            if self.done < self.total:
                text += f", ETA {_duration(self._seconds_left(now))}"
        return text

    def _bar_line(self, now: float, extra: str) -> str:
        rate = self._rate(now)
        if self.total:
            parts = [
                f"{self._percent():3.0f}%",
                f"{self._amount(self.done)}/{self._amount(self.total)} {self.unit}",
                rate,
            ]
            if self.done < self.total:
                parts.append(f"ETA {_duration(self._seconds_left(now))}")
            head = f"{self.prefix}{self.stage} "
            if self._width is None:  # fixed for the stage, so that the bar does not jump
                room = self._columns() - len(head) - _TAIL_ROOM
                self._width = max(min(BAR_WIDTH, room), MIN_BAR_WIDTH)
            filled = int(self._width * min(self.done / self.total, 1.0))
            line = f"{head}[{'#' * filled}{'-' * (self._width - filled)}]  {'  '.join(parts)}{extra}"
        else:
            self._spins += 1
            spinner = _SPINNER[self._spins % len(_SPINNER)]
            line = f"{self.prefix}{self.stage} {spinner} {self._amount(self.done)} {self.unit}  {rate}{extra}"
        return line[: self._columns() - 1]  # a wrapped line could not be redrawn in place

    def _percent(self) -> float:
        return 100 * min(self.done / self.total, 1.0) if self.total else 0.0

    def _seconds_left(self, now: float) -> float:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        left = max((self.total or 0) - self.done, 0)
        return left / rate if rate > 0 else float("inf")

    def _amount(self, n: float) -> str:
        return f"{n / 1e6:.1f}" if self.unit == "MB" else f"{int(n)}"

    def _rate(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        return f"{self._amount(self.done / elapsed)} {self.unit}/s"

    def _columns(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (AttributeError, OSError, ValueError):
            return 80

    def _erase_bar(self) -> str:
        if self._bar_shown:
            self._bar_shown = False
            return "\r\x1b[K"
        return ""

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError, AttributeError):
            # stderr closed or full: progress is never worth failing the work for
            self.enabled = False


def _duration(seconds: float) -> str:
    """``7s``, ``2m05s``, ``1h02m``; ``?`` when nothing is known yet."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = math.ceil(seconds)  # (work that is not done does not take 0s)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
