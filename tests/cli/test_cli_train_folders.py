"""Training on folders: --include/--exclude (and include=/exclude= in the Python API),
binary files and __pycache__ folders skipped and counted, the summary counting files,
and a folder with nothing to train on refused before any work."""

from __future__ import annotations

import gzip
import os
import re

import pytest
from click.testing import CliRunner

from bytepiece import Trainer
from bytepiece.cli import main
from bytepiece.corpus import CorpusError, EmptyCorpusError, expand_paths, looks_binary, select_files

TEXT = "the quick brown fox jumps over the lazy dog, again and again\n" * 40
OTHER = "une phrase en français, avec des accents: été, où, déjà\n" * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"IHDR" + bytes(range(1, 200))  # no NUL in the first bytes
PYC = b"\xa7\r\r\n" + b"\x00" * 12 + b"\xe3marshalled code"


@pytest.fixture
def tree(tmp_path):
    """data/ with text at two depths, held-out files, a gzip, an image, __pycache__ and
    hidden entries."""
    data = tmp_path / "data"
    for rel, content in {
        "a.train.txt": TEXT,
        "a.heldout.txt": OTHER,
        "notes.md": OTHER,
        "sub/b.train.txt": OTHER,
        "sub/deeper/c.train.txt": TEXT,
        "sub/deeper/c.heldout.txt": TEXT,
        ".hidden.txt": OTHER,
    }.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_text(content, encoding="utf-8")
    (data / "sub" / "archive.txt.gz").write_bytes(gzip.compress(TEXT.encode()))
    (data / "sub" / "deeper" / "logo.png").write_bytes(PNG)
    (data / "__pycache__").mkdir()
    (data / "__pycache__" / "mod.cpython-311.pyc").write_bytes(PYC)
    (data / "sub" / "__pycache__").mkdir()
    (data / "sub" / "__pycache__" / "x.txt").write_text(TEXT, encoding="utf-8")
    return data


def rel(files, root):
    return [os.path.relpath(f, root).replace(os.sep, "/") for f in files]


def train(*args):
    result = CliRunner().invoke(main, ["train", "--vocab-size", "300", *map(str, args)], catch_exceptions=True)
    return result


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def summary(result) -> str:
    return result.stdout.splitlines()[0]


# ---------------------------------------------------------------------------
# The selection


def test_folders_skip_hidden_pycache_and_binary_files(tree):
    selection = select_files([tree])
    assert rel(selection.files, tree) == [
        "a.heldout.txt",
        "a.train.txt",
        "notes.md",
        "sub/b.train.txt",
        "sub/deeper/c.heldout.txt",
        "sub/deeper/c.train.txt",
    ]
    assert rel(selection.skipped_binary, tree) == ["sub/archive.txt.gz", "sub/deeper/logo.png"]
    assert expand_paths(tree) == selection.files


@pytest.mark.parametrize(
    "include, exclude, expected",
    [
        (["*.train.txt"], None, ["a.train.txt", "sub/b.train.txt", "sub/deeper/c.train.txt"]),
        (["*.txt"], ["*.heldout.txt"], ["a.train.txt", "sub/b.train.txt", "sub/deeper/c.train.txt"]),
        ("*.md", None, ["notes.md"]),
        (["*.md", "sub/deeper/*"], None, ["notes.md", "sub/deeper/c.heldout.txt", "sub/deeper/c.train.txt"]),
        (None, ["deeper"], ["a.heldout.txt", "a.train.txt", "notes.md", "sub/b.train.txt"]),  # a folder name
        (None, ["sub/*", "*.md"], ["a.heldout.txt", "a.train.txt"]),
        (["c.*"], ["*.heldout.*"], ["sub/deeper/c.train.txt"]),  # the file name alone
    ],
)
def test_include_and_exclude_choose_files_in_folders(tree, include, exclude, expected):
    assert rel(expand_paths([tree], include=include, exclude=exclude), tree) == expected


def test_files_named_directly_are_always_taken(tree):
    named = tree / "sub" / "archive.txt.gz"
    files = expand_paths([named, tree / "notes.md", tree], include="*.train.txt", exclude="notes.md")
    assert rel(files, tree) == [
        "sub/archive.txt.gz",
        "notes.md",
        "a.train.txt",
        "sub/b.train.txt",
        "sub/deeper/c.train.txt",
    ]


def test_binary_signatures_and_nul_bytes():
    assert not looks_binary(b"") and not looks_binary("héllo 東京\n".encode())
    for head in (gzip.compress(b"x"), PNG, b"\xff\xd8\xff\xe0JFIF", b"%PDF-1.7\n", b"PK\x03\x04", b"text\x00more"):
        assert looks_binary(head), head
    assert looks_binary(b"BZh91AY&SY" + b"\x01" * 20) and not looks_binary(b"BZh, said the bee\n")


def test_a_folder_with_nothing_selected_is_an_error(tree, tmp_path):
    with pytest.raises(EmptyCorpusError, match=r"data: no file in this folder matches the patterns") as raised:
        expand_paths([tree], include=["*.rst"], exclude="*.md")
    assert "include '*.rst'; exclude '*.md'" in str(raised.value) and "\n" not in str(raised.value)
    only_binary = tmp_path / "images"
    only_binary.mkdir()
    (only_binary / "logo.png").write_bytes(PNG)
    with pytest.raises(EmptyCorpusError, match=r"images: no file to train on in this folder \(1 skipped as binary\)"):
        expand_paths(only_binary)
    with pytest.raises(CorpusError, match="empty pattern"):
        expand_paths(tree, include=[""])
    with pytest.raises(TypeError, match="glob patterns"):
        expand_paths(tree, exclude=[3])


# ---------------------------------------------------------------------------
# The command


def test_train_include_exclude_and_the_summary_counts_files(tree, tmp_path):
    out = ok(train("-o", tmp_path / "m.model", "--include", "*.txt", "--exclude", "*.heldout.txt", tree))
    # a.train.txt, sub/b.train.txt, sub/deeper/c.train.txt; the gzip matches no --include
    assert summary(out).startswith("trained on 3 files, ")
    assert " in " in summary(out) and "path(s)" not in out.stdout
    same = ok(
        train(
            "-o",
            tmp_path / "same.model",
            tree / "a.train.txt",
            tree / "sub" / "b.train.txt",
            tree / "sub" / "deeper" / "c.train.txt",
        )
    )
    assert summary(same).startswith("trained on 3 files, ")
    assert (tmp_path / "m.model").read_bytes() == (tmp_path / "same.model").read_bytes()


def test_train_skips_binary_files_and_pycache_and_says_so(tree, tmp_path):
    out = ok(train("-o", tmp_path / "m.model", tree))
    assert summary(out).startswith("trained on 6 files (2 skipped as binary), ")
    assert (tmp_path / "m.model").exists()
    one = ok(train("-o", tmp_path / "one.model", tree / "a.train.txt"))
    assert summary(one).startswith("trained on 1 file, ")


def test_train_quiet_prints_no_summary(tree, tmp_path):
    out = ok(train("-o", tmp_path / "m.model", "--quiet", tree))
    assert out.stdout == ""


def test_train_binary_file_named_directly_still_errors(tree, tmp_path):
    named = tree / "sub" / "archive.txt.gz"
    result = train("-o", tmp_path / "m.model", named)
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"Error: {named}: not valid UTF-8 at byte offset 1")
    assert not (tmp_path / "m.model").exists()


def test_train_empty_selection_is_one_line_before_any_work(tree, tmp_path, monkeypatch):
    from bytepiece.training import trainer as trainer_module

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(trainer_module.Trainer, "train_files", no_training)
    result = train("-o", tmp_path / "m.model", "--include", "*.rst", "--exclude", "*.md", tree)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"Error: {tree}: no file in this folder matches the patterns (include '*.rst'; exclude '*.md')"
    ]
    assert not (tmp_path / "m.model").exists()


def test_train_help_documents_the_patterns():
    help_text = CliRunner().invoke(main, ["train", "--help"]).output
    assert "--include GLOB" in help_text and "--exclude GLOB" in help_text
    assert "bytepiece train -o my.model --include '*.train.txt' corpora/" in help_text
    assert "__pycache__" in help_text


# ---------------------------------------------------------------------------
# The Python API


def test_train_files_takes_the_same_selection(tree, tmp_path):
    selected = Trainer(max_vocab_size=300, verbose=False)
    selected.train_files([tree], include="*.txt", exclude=["*.heldout.txt"])
    assert selected.stats["files"] == 3 and selected.stats["skipped_binary"] == []
    named = Trainer(max_vocab_size=300, verbose=False)
    named.train_files([tree / "a.train.txt", tree / "sub" / "b.train.txt", tree / "sub" / "deeper" / "c.train.txt"])
    assert named.pieces == selected.pieces
    everything = Trainer(max_vocab_size=300, verbose=False)
    everything.train_files(tree)
    assert everything.stats["files"] == 6
    assert rel(everything.stats["skipped_binary"], tree) == ["sub/archive.txt.gz", "sub/deeper/logo.png"]
    with pytest.raises(EmptyCorpusError, match=re.escape("(include '*.rst')")):
        Trainer(max_vocab_size=300, verbose=False).train_files([tree], include="*.rst")
