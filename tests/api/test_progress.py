"""bytepiece.progress: a bar on a terminal, only the stage messages elsewhere."""

from __future__ import annotations

import io
import os
import re

import pytest

from bytepiece import progress as progress_module
from bytepiece.progress import Progress

ERASE = "\r\x1b[K"


class Terminal(io.StringIO):
    """A stream that says it is a terminal (its width: the `columns` fixture)."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 2


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.fixture
def clock(monkeypatch):
    """time.perf_counter of the progress module, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: now[0])
    return now


@pytest.fixture
def columns(monkeypatch):
    width = [100]
    monkeypatch.setattr(progress_module.os, "get_terminal_size", lambda fd: os.terminal_size((width[0], 24)))
    return width


def drawn(stream: io.StringIO) -> list[str]:
    """What was drawn, piece by piece (bars are separated by the erase-line sequence)."""
    return [part for part in stream.getvalue().split(ERASE) if part]


def test_a_terminal_gets_a_bar_with_percentage_rate_and_eta(clock, columns):
    columns[0] = 120
    term = Terminal()
    meter = Progress(None, "count n-grams", 40_000_000, stream=term)
    assert meter.enabled  # on by default on a terminal
    for _ in range(4):
        clock[0] += 1.0
        meter.advance(5_000_000, lambda: ", 12 MB table")
    bars = drawn(term)
    assert len(bars) == 4
    last = bars[-1]
    assert re.fullmatch(
        r"\[bytepiece\] count n-grams \[#+-+\]  +50%  20\.0/40\.0 MB  5\.0 MB/s  ETA 4s, 12 MB table", last
    ), last
    cells = re.search(r"\[([#-]+)\]", last).group(1)
    assert cells.count("#") == cells.count("-")  # half full
    assert "\n" not in term.getvalue()  # redrawn in place
    assert len({len(re.search(r"\[[#-]+\]", bar).group()) for bar in bars}) == 1  # the bar does not jump


def test_the_finished_line_replaces_the_bar_and_has_no_eta(clock, columns):
    term = Terminal()
    meter = Progress(None, "encode", 10_000_000, prefix="", stream=term)
    clock[0] += 2.0
    meter.advance(10_000_000)
    assert "100%" in drawn(term)[-1] and "ETA" not in drawn(term)[-1]
    meter.finish("; 3 shards")
    out = term.getvalue()
    assert out.endswith(ERASE + "encode: done in 2.0s (10.0 MB, 5.0 MB/s); 3 shards\n")
    assert "ETA" not in out.splitlines()[-1]
    assert "ETA" not in meter.status() and "100%" in meter.status()


def test_messages_scroll_above_the_bar(clock, columns):
    term = Terminal()
    meter = Progress(True, "EM", 100, unit="pieces", stream=term)
    clock[0] += 1
    meter.advance(10)
    meter.log("round 1: 5000 pieces")
    clock[0] += 0.01  # sooner than a redraw, but after a message the bar is not on screen
    meter.advance(10)
    clock[0] += 1
    meter.advance(10)
    parts = drawn(term)
    assert parts[0].startswith("[bytepiece] EM [") and "10%" in parts[0] and "10/100 pieces" in parts[0]
    assert parts[1] == "[bytepiece] EM: round 1: 5000 pieces\n"
    assert "30%" in parts[-1]


def test_the_bar_is_redrawn_a_few_times_a_second_not_on_every_call(clock, columns):
    term = Terminal()
    meter = Progress(True, "encode", 10**9, stream=term)
    for _ in range(1000):
        clock[0] += 0.001
        meter.advance(1000)
    assert 5 <= len(drawn(term)) <= 15  # one second of calls: about ten redraws


def test_without_a_total_a_spinner_with_amount_and_rate(clock, columns):
    term = Terminal()
    meter = Progress(True, "decode", prefix="", stream=term)
    clock[0] += 2
    meter.advance(3_000_000)
    (bar,) = drawn(term)
    assert re.fullmatch(r"decode [|/\\-] 3\.0 MB  1\.5 MB/s", bar), bar
    assert "%" not in bar and "ETA" not in bar


def test_the_line_never_wraps_on_a_narrow_terminal(clock, columns):
    columns[0] = 60
    term = Terminal()
    meter = Progress(True, "count pieces", 50_000_000, stream=term)
    for _ in range(5):
        clock[0] += 1
        meter.advance(7_000_000, lambda: ", 123456 distinct pieces and more words")
    assert all(len(bar) <= 59 for bar in drawn(term))
    assert all("[" in bar and "]" in bar for bar in drawn(term))


def test_a_pipe_gets_nothing_by_default(clock):
    pipe = Pipe()
    meter = Progress(None, "encode", 10, stream=pipe)
    assert not meter.enabled
    meter.log("hello")
    clock[0] += 5
    meter.advance(10)
    meter.finish()
    assert pipe.getvalue() == ""


def test_a_pipe_asked_for_progress_gets_only_the_stage_lines(clock):
    """As a log file should: the messages and the closing line, no bar and no periodic
    status, however long the stage runs."""
    pipe = Pipe()
    meter = Progress(True, "count n-grams", 40_000_000, stream=pipe)
    meter.log("order 6, 2 worker(s)")
    for _ in range(8):
        clock[0] += 3
        meter.advance(5_000_000)
    meter.finish("; 99 distinct n-grams")
    assert pipe.getvalue() == (
        "[bytepiece] count n-grams: order 6, 2 worker(s)\n"
        "[bytepiece] count n-grams: done in 24.0s (40.0 MB, 1.7 MB/s); 99 distinct n-grams\n"
    )


def test_a_stage_without_amounts_says_only_how_long_it_took(clock):
    pipe = Pipe()
    meter = Progress(True, "prune pieces", stream=pipe)
    clock[0] += 1.25
    meter.finish()
    assert pipe.getvalue() == "[bytepiece] prune pieces: done in 1.2s\n"


def test_status_while_running_and_when_done(clock):
    meter = Progress(False, "x", 100, unit="items")
    clock[0] += 10
    meter.advance(25)
    assert meter.status() == "25 items, 2 items/s, 25%, ETA 30s"
    meter.advance(75)
    assert meter.status() == "100 items, 10 items/s, 100%"
    assert progress_module._duration(125) == "2m05s" and progress_module._duration(3725) == "1h02m"
    assert progress_module._duration(0.2) == "1s"  # work not done does not take 0s


def test_a_closed_stream_turns_progress_off_instead_of_failing(clock, columns):
    class Broken(Terminal):
        def write(self, text):
            raise OSError("stderr is gone")

    meter = Progress(True, "encode", 10, stream=Broken())
    clock[0] += 1
    meter.advance(5)
    meter.log("still working")
    meter.finish()
    assert not meter.enabled
