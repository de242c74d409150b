"""Every example in the commands' ``--help`` runs as written.

The examples are read from the help text itself (the indented lines after
``Examples:``), so an option renamed in the code and not in its help fails here. Each
command's examples run by bash, in order, in a fresh folder holding the files they name
(``my.model`` is the vendored 40k model; the texts are slices of the bundled corpora);
``train``'s examples each in a folder of their own without ``my.model`` (each writes
it), and the group's, which start by training it, without it too.
Examples that need a remote cluster or object store (``tcp://``, ``s3://``) cannot run
here: their arguments are parsed by the command instead (names, types and ranges).
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from conftest import REPO, VENDORED_MODEL

from bytepiece.cli import main

COMMANDS = ["", "train", "encode", "decode", "sample", "lattice", "info", "encode-shards"]
REMOTE = re.compile(r"\b(tcp|s3)://")


def examples(command: str) -> list[str]:
    """The example command lines of ``bytepiece COMMAND --help`` (continued lines joined)."""
    args = [command, "--help"] if command else ["--help"]
    text = CliRunner().invoke(main, args, terminal_width=200).output
    found: list[str] = []
    continued = False
    for line in text.split("Examples:\n", 1)[1].split("\n\n", 1)[0].splitlines():
        if continued:
            found[-1] = found[-1][:-1] + line.strip()
        else:
            found.append(line.strip())
        continued = found[-1].endswith("\\")
    return found


def test_every_command_has_examples_in_its_help():
    for command in COMMANDS:
        assert examples(command), command
        assert all("bytepiece" in line for line in examples(command))


def _folder(path, model: bool = True):
    """The files the examples name."""
    path.mkdir(exist_ok=True)
    if model:
        shutil.copyfile(VENDORED_MODEL, path / "my.model")
    (path / "corpora").symlink_to(REPO / "corpora")
    with open(REPO / "corpora" / "en.train.txt", encoding="utf-8") as f:
        english = list(itertools.islice(f, 3000))
    for name in ("text.txt", "corpus.txt", "a.txt", "extra.txt"):
        (path / name).write_text("".join(english[:400]), encoding="utf-8")
    for folder in ("data", "big-corpus", "corpus"):
        (path / folder).mkdir()
        (path / folder / "one.txt").write_text("".join(english[:1500]), encoding="utf-8")
        (path / folder / "two.txt").write_text("".join(english[1500:]), encoding="utf-8")
    ids = subprocess.run(
        [sys.executable, "-m", "bytepiece", "encode", "-m", str(VENDORED_MODEL), "text.txt"],
        cwd=path,
        capture_output=True,
        check=True,
    ).stdout
    for name in ("text.ids", "corpus.ids"):
        (path / name).write_bytes(ids)


def _parse(line: str) -> None:
    """Parse a bytepiece command line as the command would, without running it."""
    args = shlex.split(line)
    assert args[0] == "bytepiece"
    with main.make_context("bytepiece", args[1:2], resilient_parsing=True) as ctx:
        command = main.get_command(ctx, args[1])
        assert command is not None, line
        command.make_context(args[1], args[2:], parent=ctx)


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c or "bytepiece")
def test_help_examples_run(command, tmp_path, monkeypatch):
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    folder = tmp_path / "0"
    _folder(folder, model=command not in ("", "train"))
    for number, line in enumerate(examples(command)):
        if command == "train" and number:
            folder = tmp_path / str(number)
            _folder(folder, model=False)
        if REMOTE.search(line):
            monkeypatch.chdir(folder)
            _parse(line)
            continue
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line], cwd=folder, env=env, capture_output=True, text=True, timeout=300
        )
        # (`| head` may close the pipe early: the encoder then stops on SIGPIPE, 141)
        allowed = (0, 141) if line.rstrip().endswith("| head") else (0,)
        assert done.returncode in allowed, f"{line}\n{done.stderr[-2000:]}"


def test_a_remote_example_that_names_a_missing_option_fails_to_parse():
    # (the check that stands in for running the remote examples is not vacuous)
    with pytest.raises(click.UsageError):
        _parse("bytepiece encode-shards -m my.model -o s3://b/t/ --no-such-option s3://b/c/")
