"""Reliability: what an output path names decides how it is written.

A regular file (or nothing) is replaced atomically; a symbolic link's target is
replaced and the link kept; a character device, a FIFO and this process's own
descriptors (/dev/stdout, /dev/fd/N) are written into; anything else is refused
before a byte is written. Where hard links are not permitted, writing without
overwriting still never replaces a file.

No test here writes to the system's own /dev/null or /dev/stdout through code that
could replace them: device nodes are made in a temporary folder, and the one test that
names /dev/stdout first asks bytepiece.atomic how it would write it.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner
from conftest import REPO, VENDORED_MODEL

from bytepiece import Tokenizer, load_model
from bytepiece import atomic as atomic_module
from bytepiece.atomic import STREAM, atomic_write, output_kind
from bytepiece.cli import main

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
TEXT = b"Hello world\nsecond line\n"


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(VENDORED_MODEL)


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory, tok):
    path = tmp_path_factory.mktemp("m") / "m.json"
    tok.save(path)
    return path.read_bytes()


def cli(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=True)


def null_device(tmp_path):
    """A character device like /dev/null (1, 3), made in tmp_path (needs root)."""
    path = tmp_path / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        with open(path, "wb") as handle:  # a nodev mount would refuse to open it
            handle.write(b"x")
    except (PermissionError, OSError) as error:
        pytest.skip(f"cannot make a device node here ({error})")
    return path


class FifoReader:
    """Reads everything written into a FIFO, on a thread."""

    def __init__(self, path):
        os.mkfifo(path)
        self.path = path
        self.data = b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        with open(self.path, "rb") as handle:
            self.data = handle.read()

    def result(self):
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.data


# ---------------------------------------------------------------------------
# character devices and FIFOs are written into


def test_saving_to_a_character_device_writes_into_it(tmp_path, tok):
    device = null_device(tmp_path)
    tok.save(device)  # Tokenizer.save overwrites by default
    assert stat.S_ISCHR(os.lstat(device).st_mode), "the device was replaced by a file"
    with atomic_write(device, "wb", overwrite=False) as handle:  # nothing is overwritten
        handle.write(b"data")
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_cli_output_to_a_character_device_writes_into_it(tmp_path, tok):
    device = null_device(tmp_path)
    source = tmp_path / "in.txt"
    source.write_bytes(TEXT)
    for extra in (["--force"], []):
        result = cli("encode", "-m", VENDORED_MODEL, "-o", device, *extra, source)
        assert result.exit_code == 0, result.output
        assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "null"]


def test_saving_to_a_fifo_writes_into_it(tmp_path, tok, model_bytes):
    reader = FifoReader(tmp_path / "pipe")
    tok.save(reader.path)
    assert reader.result() == model_bytes
    assert stat.S_ISFIFO(os.lstat(reader.path).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_cli_output_to_a_fifo_writes_into_it(tmp_path, tok):
    reader = FifoReader(tmp_path / "pipe")
    result = cli("encode", "-m", VENDORED_MODEL, "-o", reader.path, "--force", input=TEXT)
    assert result.exit_code == 0, result.output
    expected = "".join(" ".join(map(str, tok.encode(line))) + "\n" for line in TEXT.splitlines(keepends=True))
    assert reader.result().decode() == expected
    assert stat.S_ISFIFO(os.lstat(reader.path).st_mode)


def test_own_descriptors_are_written_into_not_replaced(tmp_path):
    # /dev/fd/N and /proc/self/fd/N name this process's open files: write into them
    out = tmp_path / "out.txt"
    with open(out, "wb") as handle:
        handle.write(b"before;")
        handle.flush()
        for name in (f"/dev/fd/{handle.fileno()}", f"/proc/self/fd/{handle.fileno()}"):
            if not os.path.exists(name):
                continue
            assert output_kind(name) == STREAM
            with atomic_write(name, "wb") as inner:
                inner.write(name.encode() + b";")
    assert out.read_bytes().startswith(b"before;/")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_cli_output_to_dev_stdout_goes_to_stdout(tmp_path):
    # Only once atomic_write says it writes into /dev/stdout: a version that replaced
    # it would, as root, replace the system's /dev/stdout with a file.
    assert output_kind("/dev/stdout") == STREAM
    source = tmp_path / "in.txt"
    source.write_bytes(TEXT)
    out = tmp_path / "captured.ids"
    with open(out, "wb") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "bytepiece", "encode", "-m", VENDORED_MODEL, "-o", "/dev/stdout", source],
            stdout=handle,
            stderr=subprocess.PIPE,
            env=ENV,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().count(b"\n") == 2
    assert os.path.islink("/dev/stdout") or stat.S_ISCHR(os.stat("/dev/stdout").st_mode)


# ---------------------------------------------------------------------------
# symbolic links are followed


def test_a_symlink_is_followed_and_kept(tmp_path, tok, model_bytes):
    target = tmp_path / "real.model"
    target.write_bytes(b"old")
    link = tmp_path / "link.model"
    link.symlink_to(target)
    tok.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == model_bytes
    assert load_model(link).pieces == tok.vocabulary.pieces
    with pytest.raises(FileExistsError):
        with atomic_write(link, "wb", overwrite=False) as handle:
            handle.write(b"never")
    assert target.read_bytes() == model_bytes
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "created-through-the-link")
    tok.save(dangling)
    assert dangling.is_symlink() and (tmp_path / "created-through-the-link").read_bytes() == model_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "created-through-the-link",
        "dangling",
        "link.model",
        "real.model",
    ]


def test_cli_force_through_a_symlink_replaces_its_target(tmp_path):
    target = tmp_path / "real.ids"
    target.write_bytes(b"old")
    link = tmp_path / "link.ids"
    link.symlink_to(target)
    refused = cli("encode", "-m", VENDORED_MODEL, "-o", link, input=TEXT)
    assert refused.exit_code == 1 and "already exists" in refused.stderr and target.read_bytes() == b"old"
    result = cli("encode", "-m", VENDORED_MODEL, "-o", link, "--force", input=TEXT)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and target.read_bytes().count(b"\n") == 2


# ---------------------------------------------------------------------------
# anything else is refused


def test_a_socket_or_directory_is_refused_before_writing(tmp_path, tok):
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        with pytest.raises(OSError, match="socket") as raised:
            tok.save(path)
        assert raised.value.filename == str(path)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        result = cli("encode", "-m", VENDORED_MODEL, "-o", path, "--force", input=TEXT)
        assert result.exit_code == 1 and result.stderr.startswith(f"Error: {path}: ") and "socket" in result.stderr
        assert "Traceback" not in result.output
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        server.close()
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(IsADirectoryError):
        tok.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "sock"]


# ---------------------------------------------------------------------------
# no hard links


@pytest.fixture
def no_hard_links(monkeypatch):
    def refuse(src, dst, *args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted", src, None, dst)

    monkeypatch.setattr(atomic_module.os, "link", refuse)


def test_without_hard_links_a_new_file_is_still_written(tmp_path, no_hard_links):
    target = tmp_path / "new.txt"
    with atomic_write(target, "w", overwrite=False) as handle:
        handle.write("content")
    assert target.read_text() == "content"
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~atomic_module._UMASK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.txt"]
    result = cli("encode", "-m", VENDORED_MODEL, "-o", tmp_path / "out.ids", input=TEXT)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.ids").read_bytes().count(b"\n") == 2


def test_without_hard_links_nothing_is_ever_overwritten(tmp_path, no_hard_links):
    target = tmp_path / "t.txt"
    target.write_text("theirs")
    with pytest.raises(FileExistsError):
        with atomic_write(target, "w", overwrite=False) as handle:
            handle.write("ours")
    # a file that appears while we write is not replaced either
    late = tmp_path / "late.txt"
    with pytest.raises(FileExistsError):
        with atomic_write(late, "w", overwrite=False) as handle:
            handle.write("ours")
            late.write_text("theirs, written meanwhile")
    assert target.read_text() == "theirs" and late.read_text() == "theirs, written meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.txt", "t.txt"]
