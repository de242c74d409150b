"""Reliability, part 4: no data loss.

Every file the project writes (models, CLI outputs) goes through
``bytepiece.atomic.atomic_write``. Here real writer processes are killed at
random points, with SIGKILL (nothing can clean up) and SIGINT (Ctrl-C), and
afterwards the target file must be exactly the previous file or exactly a
complete new one, and no temporary file may be left in the directory (after
SIGKILL, a hidden ``.NAME.PID.*.tmp`` remains until the next write to NAME sweeps it).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, VENDORED_MODEL

from bytepiece import Tokenizer, load_model, save_model
from bytepiece.atomic import atomic_write

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

MODEL_WRITER = r"""
import sys
from bytepiece import load_model, save_model
path = sys.argv[1]
a = load_model(sys.argv[2])
b = a.replace(counts=(a.counts[0] + 1,) + a.counts[1:])
print("ready", flush=True)
i = 0
while True:
    save_model(path, b if i % 2 == 0 else a)
    i += 1
"""


def _spawn(args, **kwargs):
    return subprocess.Popen(args, env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _wait_until_writing(proc, directory, timeout=60.0):
    """Wait until the process has a file open in directory (its unnamed or temporary output)."""
    deadline = time.monotonic() + timeout
    fd_dir = f"/proc/{proc.pid}/fd"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the writer exited early: {proc.stderr.read()[-1000:]!r}")
        try:
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    if os.readlink(os.path.join(fd_dir, fd)).startswith(str(directory) + os.sep):
                        return
        except OSError:
            pass
        time.sleep(0.01)
    pytest.fail("the writer never opened its output")


def _leftovers(directory, keep):
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


@pytest.fixture(scope="module")
def model_versions(tmp_path_factory):
    """The bytes of the vendored model saved as JSON, and of the same model with one count changed."""
    d = tmp_path_factory.mktemp("versions")
    a = load_model(VENDORED_MODEL)
    b = a.replace(counts=(a.counts[0] + 1,) + a.counts[1:])
    save_model(d / "a.json", a)
    save_model(d / "b.json", b)
    return d / "a.json", (d / "a.json").read_bytes(), (d / "b.json").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killing_a_model_writer_never_loses_the_model(sig, tmp_path, model_versions):
    """A process saves a 3 MB model over and over (alternating two versions); it is
    killed at a random moment, 6 times per signal. The file is always one complete
    version and nothing else is left in the directory."""
    source, version_a, version_b = model_versions
    target = tmp_path / "model.json"
    target.write_bytes(version_a)
    rng = random.Random(sig)
    outcomes = set()
    for round_ in range(6):
        proc = _spawn([sys.executable, "-c", MODEL_WRITER, str(target), str(source)])
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        assert proc.returncode != 0
        content = target.read_bytes()
        assert content in (version_a, version_b), f"round {round_}: the model file is damaged ({len(content)} bytes)"
        outcomes.add(content == version_a)
        left = _leftovers(tmp_path, {"model.json"})
        if sig == signal.SIGKILL:
            # Nothing can remove a named temporary file of a SIGKILLed process (the next
            # write sweeps it: test below); it must be one hidden temporary, never the target.
            assert all(n.startswith(".model.json.") and n.endswith(".tmp") for n in left), left
            for name in left:
                os.unlink(tmp_path / name)
        else:
            assert left == [], f"round {round_}: temporary files left"
        Tokenizer(str(target))  # and it loads


def test_an_interrupt_as_the_temporary_file_is_made_leaves_nothing_behind(tmp_path, monkeypatch):
    """Ctrl-C that lands just after the temporary file exists, before atomic_write has its
    name: the interrupt still stops the write, the target keeps its old content and no
    temporary file is left beside it."""
    real_open = os.open

    def open_then_interrupted(file, flags, *args, **kwargs):
        fd = real_open(file, flags, *args, **kwargs)
        if os.fspath(file).endswith(".tmp"):  # (the temporary file: created, not yet written)
            os.kill(os.getpid(), signal.SIGINT)
        return fd

    monkeypatch.setattr(os, "open", open_then_interrupted)
    target = tmp_path / "model.json"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_write(target, "wb") as f:
        f.write(b"new")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path, {"model.json"}) == []


def test_the_next_write_sweeps_what_a_sigkilled_writer_left(tmp_path):
    # Nothing can delete a named temporary at SIGKILL; the next write to the same
    # target removes it (its name carries the dead writer's pid).
    code = (
        "import sys, time\n"
        "from bytepiece.atomic import atomic_write\n"
        "with atomic_write(sys.argv[1], 'wb') as f:\n"
        "    f.write(b'x' * 1000)\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = _spawn([sys.executable, "-c", code, str(tmp_path / "out")])
    assert proc.stdout.readline().strip() == b"writing"
    proc.kill()
    proc.communicate(timeout=30)
    left = _leftovers(tmp_path, set())
    assert len(left) == 1 and left[0].startswith(f".out.{proc.pid}.")
    (tmp_path / f".out.{os.getpid()}.keep.tmp").write_bytes(b"a live writer's")  # not swept
    with atomic_write(tmp_path / "out", "wb") as handle:
        handle.write(b"done")
    assert (tmp_path / "out").read_bytes() == b"done"
    assert _leftovers(tmp_path, {"out"}) == [f".out.{os.getpid()}.keep.tmp"]


@pytest.fixture(scope="module")
def big_input(tmp_path_factory):
    lines = []
    for name in ("en.train.txt", "zh.train.txt", "code.train.txt"):
        lines += (REPO / "corpora" / name).read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path_factory.mktemp("input") / "input.txt"
    data = "".join(lines).encode("utf-8")
    with open(path, "wb") as handle:
        while handle.tell() < 24 << 20:
            handle.write(data)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_killing_the_cli_encoder_keeps_the_previous_output(sig, tmp_path, big_input):
    """`bytepiece encode -o OUT --force` on 24 MB, killed at a random moment: OUT is
    still the previous file, and no temporary file is left (SIGTERM, from `timeout` or
    a scheduler, left it as SIGKILL does: the process ends by the signal, after its
    cleanup)."""
    out = tmp_path / "out.ids"
    previous = b"previous output, must survive\n"
    rng = random.Random(100 + sig)
    for round_ in range(3):
        out.write_bytes(previous)
        proc = _spawn(
            [
                sys.executable,
                "-m",
                "bytepiece",
                "encode",
                "-m",
                str(VENDORED_MODEL),
                "-o",
                str(out),
                "--force",
                str(big_input),
            ]
        )
        _wait_until_writing(proc, tmp_path)
        time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is not None:
            pytest.fail(f"the encoder finished before it could be killed: {proc.stderr.read()[-500:]!r}")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0
        assert out.read_bytes() == previous, f"round {round_}: previous output lost"
        left = _leftovers(tmp_path, {"out.ids"})
        if sig == signal.SIGKILL:  # a hidden temporary may survive SIGKILL until the next write
            assert all(n.startswith(".out.ids.") and n.endswith(".tmp") for n in left), left
            for name in left:
                os.unlink(tmp_path / name)
        else:
            assert left == [], f"round {round_}: temporary files left"
        if sig == signal.SIGINT:
            assert b"Traceback" not in err, err[-2000:]
        if sig == signal.SIGTERM:
            assert proc.returncode == -signal.SIGTERM and err == b"", (proc.returncode, err[-2000:])


def test_failed_write_in_process_leaves_nothing(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as handle:
            handle.write("new, half written")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert _leftovers(tmp_path, {"f.txt"}) == []
    with atomic_write(target) as handle:
        handle.write("new")
    assert target.read_text() == "new"
    assert _leftovers(tmp_path, {"f.txt"}) == []
    with pytest.raises(FileExistsError):
        with atomic_write(target, overwrite=False) as handle:
            handle.write("never")
    assert target.read_text() == "new"
    assert _leftovers(tmp_path, {"f.txt"}) == []


def test_atomic_write_gives_plain_file_permissions(tmp_path):
    import bytepiece.atomic as atomic

    with atomic_write(tmp_path / "p.txt") as handle:
        handle.write("x")
    assert (tmp_path / "p.txt").stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK
