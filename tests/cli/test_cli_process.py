"""The command line as a real process (`python -m bytepiece`): pipes, exit codes, signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO

CORPORA = REPO / "corpora"


def command(*args):
    return [sys.executable, "-m", "bytepiece", *map(str, args)]


@pytest.fixture(scope="module")
def env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("BYTEPIECE_DEBUG", None)
    return env


def run(env, *args, input=None, cwd=None):
    return subprocess.run(command(*args), input=input, capture_output=True, env=env, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def big_text(tmp_path_factory):
    """About 1 MB of real text with CRLF lines, blank lines and no final newline."""
    base = (CORPORA / "en.heldout.txt").read_bytes() + (CORPORA / "zh.heldout.txt").read_bytes()
    lines = base.splitlines(keepends=True)
    mixed = b"".join(line.replace(b"\n", b"\r\n") if i % 5 == 0 else line for i, line in enumerate(lines))
    data = (mixed * 4).rstrip(b"\n") + b" the end"
    path = tmp_path_factory.mktemp("big") / "big.txt"
    path.write_bytes(data)
    return path


def test_version_and_help(env):
    result = run(env, "--version")
    assert result.returncode == 0 and b"bytepiece" in result.stdout
    result = run(env, "encode", "--help")
    assert result.returncode == 0 and b"Example" in result.stdout


def test_exit_codes_and_one_line_errors(env, model_path, tmp_path):
    usage = run(env, "encode", "--no-such-option")
    assert usage.returncode == 2 and usage.stdout == b""
    bad = tmp_path / "bad.model"
    bad.write_text("{]")
    failed = run(env, "encode", "-m", bad, input=b"x")
    assert failed.returncode == 1 and failed.stdout == b""
    assert failed.stderr.decode().count("\n") == 1
    assert failed.stderr.startswith(b"Error: ") and b"bad.model" in failed.stderr
    debug = run(env, "--debug", "encode", "-m", bad, input=b"x")
    assert debug.returncode == 1 and b"Traceback" in debug.stderr


def test_encode_decode_pipe_round_trips(env, model_path, big_text):
    encoder = subprocess.Popen(
        command("encode", "-m", model_path, "--threads", "2"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    decoder = subprocess.Popen(
        command("decode", "-m", model_path),
        stdin=encoder.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    encoder.stdout.close()
    data = big_text.read_bytes()

    def feed():
        encoder.stdin.write(data)
        encoder.stdin.close()

    writer = threading.Thread(target=feed)
    writer.start()
    out, err = decoder.communicate(timeout=120)
    writer.join()
    assert encoder.wait(timeout=60) == 0, encoder.stderr.read()
    encoder.stderr.close()
    assert decoder.returncode == 0 and err == b""
    assert out == data


def test_closing_the_pipe_early_is_quiet(env, model_path, big_text):
    process = subprocess.Popen(
        command("encode", "-m", model_path, "--format", "pieces", big_text),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    first = process.stdout.readline()
    assert first.endswith(b"\n")
    process.stdout.close()  # what `| head -n 1` does
    err = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) == 0
    assert err == b""


@pytest.mark.slow
def test_head_in_a_shell_pipeline(env, model_path, big_text):
    script = f'"{sys.executable}" -m bytepiece encode -m "{model_path}" "{big_text}" | head -n 3'
    result = subprocess.run(["sh", "-c", script], capture_output=True, env=env, timeout=120)
    assert result.returncode == 0
    assert result.stdout.count(b"\n") == 3
    assert result.stderr == b""


def _on_a_terminal(env, *args):
    """Run with stderr on a pty: (exit status, stdout, what the terminal got)."""
    import pty

    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=slave, env=env)
        os.close(slave)
        out, _ = process.communicate(timeout=120)
        shown = b""
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            shown += data
    finally:
        os.close(master)
    return process.returncode, out, shown.decode("utf-8", "replace")


@pytest.mark.slow
def test_progress_is_shown_by_default_only_on_a_terminal(env, model_path, big_text):
    """stderr a terminal (a pty here): progress lines on it, stdout unchanged; a pipe: nothing."""
    status, out, shown = _on_a_terminal(env, "encode", "-m", model_path, big_text)
    assert status == 0
    assert "encode: " in shown and "MB/s" in shown
    piped = run(env, "encode", "-m", model_path, big_text)
    assert piped.returncode == 0 and piped.stderr == b""
    assert piped.stdout == out


@pytest.mark.slow
def test_a_terminal_gets_a_progress_bar_and_quiet_silences_it(env, model_path, big_text, tmp_path):
    status, out, shown = _on_a_terminal(env, "encode", "-m", model_path, big_text)
    assert status == 0
    assert re.search(r"encode \[[#-]+\] +\d+%", shown), shown  # a bar, redrawn in place
    last = shown.rstrip("\r\n").split("\r\x1b[K")[-1]
    assert last.startswith("encode: done in") and "MB/s" in last and "ETA" not in last
    status, quiet_out, shown = _on_a_terminal(env, "encode", "-m", model_path, "--quiet", big_text)
    assert status == 0 and shown == "" and quiet_out == out
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes((CORPORA / "en.train.txt").read_bytes()[:200_000])
    status, out, shown = _on_a_terminal(env, "train", "-o", tmp_path / "q.model", "--vocab-size", "500", "-q", corpus)
    assert status == 0 and shown == "" and out == b"" and (tmp_path / "q.model").exists()


@pytest.mark.slow
def test_output_file_is_atomic_and_not_clobbered(env, model_path, big_text, tmp_path):
    target = tmp_path / "out.ids"
    assert run(env, "encode", "-m", model_path, "-o", target, big_text).returncode == 0
    refused = run(env, "encode", "-m", model_path, "-o", target, big_text)
    assert refused.returncode == 1 and b"--force" in refused.stderr
    decoded = run(env, "decode", "-m", model_path, target)
    assert decoded.returncode == 0 and decoded.stdout == big_text.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ids"]


@pytest.mark.slow
def test_interrupted_train_leaves_no_model(env, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"".join(p.read_bytes() for p in sorted(CORPORA.glob("*.train.txt"))))
    target = tmp_path / "out.model"
    process = subprocess.Popen(
        command("train", "-o", target, "--vocab-size", "8000", "--progress", corpus),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        # a shell may start background jobs with SIGINT ignored; give the child the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # wait until training has really started (its first progress line), then interrupt
    first = process.stderr.readline()
    assert first, "train printed nothing"
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, first + err)
    assert b"Error: interrupted" in err and b"Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt"]  # no model, no temp file


@pytest.mark.slow
def test_train_reports_its_own_peak_memory_not_an_earlier_process(env, tmp_path):
    """bash execs the last command of ``-c``, so train runs in the process that waited for
    a 400 MB Python just before (and that was forked from this test process): neither
    of their peaks is train's."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes((CORPORA / "en.train.txt").read_bytes()[:300_000])
    big = f'"{sys.executable}" -c "x = bytes(400_000_000); x = b\'1\' * 400_000_000"'
    train = " ".join(f'"{a}"' for a in command("train", "-o", tmp_path / "m.model", "--vocab-size", "1000", corpus))
    result = subprocess.run(["bash", "-c", f"{big}; exec {train}"], capture_output=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.decode()
    peak = float(summary.split("peak memory ")[1].split(" MB")[0])
    assert 5 < peak < 250, summary  # training this takes well under 100 MB


@pytest.mark.slow
def test_peak_memory_counts_a_child_the_run_started():
    """A child process started during the run (a fork pool's worker, a local Dask
    worker) counts when it peaked higher than this process."""
    from bytepiece.cli.train import _PeakMemory

    peak = _PeakMemory()
    # (bigger than this process and than every child it waited for before)
    size = int(max(_PeakMemory._own_bytes(), _PeakMemory._rusage_bytes("RUSAGE_CHILDREN")) + 200e6)
    subprocess.run([sys.executable, "-c", f"x = b'1' * {size}"], check=True, timeout=60)
    assert peak.mb() >= size / 1e6
    assert _PeakMemory().mb() < size / 1e6  # a later run: that child is not its own


# Runs a command with its output discarded and prints its peak RSS (KiB). The probe is a
# small process of its own because a child's ru_maxrss starts from its parent's peak.
RSS_PROBE = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))\n"
)


def _peak_rss_kib(env, args, data: bytes) -> int:
    """Peak resident memory of one run fed ``data`` on stdin."""
    probe = subprocess.Popen(
        [sys.executable, "-c", RSS_PROBE, *command(*args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = probe.communicate(data, timeout=120)
    rss, status = map(int, out.split())
    assert status == 0 and probe.returncode == 0, err
    return rss


@pytest.mark.slow
def test_encode_streams_in_constant_memory(env, model_path):
    line = b"A line of plain text, repeated many times so that the input is large 0123456789.\n"
    args = ("encode", "-m", model_path, "--threads", "1")
    small = _peak_rss_kib(env, args, line * 10_000)  # 0.8 MB
    large = _peak_rss_kib(env, args, line * 200_000)  # 16 MB in, ~20 MB of ids out
    # KiB: nothing grows with the input. Under AddressSanitizer (scripts/asan_check.sh) freed
    # memory waits in its quarantine (256 MB by default) before it is reused, so RSS grows
    # until the quarantine is full whatever the program does.
    allowance = 12_000 + (270_000 if "asan" in os.environ.get("LD_PRELOAD", "") else 0)
    assert large - small < allowance, (small, large)


@pytest.mark.slow
@pytest.mark.parametrize("sampling", [(), ("--alpha", "0.1", "--seed", "3")], ids=["viterbi", "sampling"])
def test_one_long_line_costs_a_small_multiple_of_its_size(env, model_path, sampling):
    """A line is one lattice; Viterbi over a long one keeps a window of positions, not
    16 bytes of scores and back-pointers per byte, so the peak grows by the ids (Python
    list and output text) and the line itself: about 5 bytes per byte of the line here
    (it was 21 when the whole line's lattice was kept). The sampler keeps forward sums
    for a window too, plus one piece index per byte for its draws, and its path has about
    2.3 times as many pieces as Viterbi's on this text (alpha 0.1), so its ids cost more:
    about 11 bytes per byte here (19 when it kept every position's forward sum)."""
    base = b"A line of plain text, repeated many times so that the line is long 0123456789. "
    args = ("encode", "-m", model_path, "--threads", "1", *sampling)
    sizes = (2 << 20, 18 << 20)
    peaks = [_peak_rss_kib(env, args, (base * (n // len(base) + 1))[:n] + b"\n") for n in sizes]
    per_byte = (peaks[1] - peaks[0]) * 1024 / (sizes[1] - sizes[0])
    limit = (14 if sampling else 10) + (17 if "asan" in os.environ.get("LD_PRELOAD", "") else 0)  # (ASan's quarantine)
    assert per_byte < limit, (peaks, per_byte)


@pytest.mark.slow
def test_installed_console_script(env, model_path, tmp_path):
    """The `bytepiece` script that `pip install` puts next to the interpreter."""
    script = Path(sys.executable).with_name("bytepiece")
    if not script.exists():
        pytest.skip("the console script is not installed here (pip install -e . installs it)")
    text = "installed script: café\r\nno final newline".encode()
    version = subprocess.run([script, "--version"], capture_output=True, env=env, timeout=60)
    assert version.returncode == 0 and b"bytepiece" in version.stdout
    ids = subprocess.run([script, "encode", "-m", model_path], input=text, capture_output=True, env=env, timeout=60)
    assert ids.returncode == 0 and ids.stderr == b""
    back = subprocess.run(
        [script, "decode", "-m", model_path], input=ids.stdout, capture_output=True, env=env, timeout=60
    )
    assert back.returncode == 0 and back.stdout == text
    usage = subprocess.run([script, "encode"], capture_output=True, env=env, timeout=60)
    assert usage.returncode == 2
