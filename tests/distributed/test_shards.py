"""Token shard folders: never mixed, never half-replaced, always checked.

encode_files (and `bytepiece encode-shards`) refuses a folder that is not empty
unless told to replace its shards; a run writes its parts under a run id and its
index last, atomically, so an interrupted run leaves the previous encoding as it was;
load_encoded checks every part against the index; nothing is deleted that an
earlier index did not list. All in this process: no cluster needed.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest
from click.testing import CliRunner
from conftest import VENDORED_MODEL

from bytepiece import Tokenizer
from bytepiece.cli import main
from bytepiece.distributed import ShardError, encode_files, iter_encoded, load_encoded
from bytepiece.distributed import shards as shards_module


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(VENDORED_MODEL, seed=3)


def _write(folder, name, lines):
    path = folder / name
    path.write_text("".join(f"{name} line {i}: some text to encode\n" for i in range(lines)))
    return str(path)


@pytest.fixture
def inputs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    a = [_write(src, f"a{i}.txt", 30) for i in range(3)]
    b = [_write(src, f"b{i}.txt", 20) for i in range(3)]
    return a, b


def _lines(tok, paths):
    return [tok.encode(line) for p in paths for line in pathlib.Path(p).read_bytes().splitlines(keepends=True)]


def _loaded(out):
    ids, rows = load_encoded(str(out))
    return [ids[rows[k] : rows[k + 1]].tolist() for k in range(len(rows) - 1)]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_folder_that_is_not_empty_is_refused(tok, inputs, tmp_path):
    a, b = inputs
    out = tmp_path / "out"
    encode_files(a, tok, str(out), blocksize=500)
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    with pytest.raises(FileExistsError, match="not empty"):
        encode_files(b, tok, str(out), blocksize=500)
    result = cli("encode-shards", "-m", VENDORED_MODEL, "-o", out, *b)
    assert result.exit_code == 1 and f"{out}: the folder is not empty; use --force" in result.stderr, result.output
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    result = cli("encode-shards", "-m", VENDORED_MODEL, "-o", other, *b)
    assert result.exit_code == 1 and "not empty" in result.stderr
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    assert os.listdir(other) == ["notes.txt"]
    assert _loaded(out) == _lines(tok, a)


def test_force_replaces_the_shards_and_leaves_other_files(tok, inputs, tmp_path):
    a, b = inputs
    out = tmp_path / "out"
    first = encode_files(a, tok, str(out), blocksize=500)
    (out / "notes.txt").write_text("mine")
    (out / "part-00000.ids.npy").write_bytes(b"not ours")  # named like a part, listed by no index
    result = cli("encode-shards", "-m", VENDORED_MODEL, "-o", out, "--force", "-q", *b)
    assert result.exit_code == 0, result.output
    assert _loaded(out) == _lines(tok, b)
    index = json.loads((out / "index.json").read_text())
    listed = {p["name"] + s for p in index["parts"] for s in (".ids.npy", ".rows.npy")}
    assert set(os.listdir(out)) == listed | {"index.json", "notes.txt", "part-00000.ids.npy"}
    assert not listed & {p["name"] + ".ids.npy" for p in first["parts"]}  # a new run id
    assert (out / "part-00000.ids.npy").read_bytes() == b"not ours"
    # the API's overwrite=True is --force
    again = encode_files(a, tok, str(out), blocksize=10_000, overwrite=True)
    assert _loaded(out) == _lines(tok, a) and len(again["parts"]) < len(first["parts"])


def test_an_interrupted_run_leaves_the_previous_encoding_whole(tok, inputs, tmp_path, monkeypatch):
    """The issue's case: run 1 encodes a*.txt; run 2 (b*.txt, into the same folder) is
    interrupted after its first part. load_encoded must still give a*.txt's lines."""
    a, b = inputs
    out = tmp_path / "out"
    encode_files(a, tok, str(out), blocksize=500)
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    real = shards_module._encode_task
    done = []

    def interrupted(*args, **kwargs):
        if done:
            raise KeyboardInterrupt
        done.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(shards_module, "_encode_task", interrupted)
    with pytest.raises(KeyboardInterrupt):
        encode_files(b, tok, str(out), blocksize=500, overwrite=True)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    assert _loaded(out) == _lines(tok, a)
    # a first run that fails leaves no folder behind
    with pytest.raises(KeyboardInterrupt):
        encode_files(b, tok, str(tmp_path / "new"), blocksize=500)
    assert not (tmp_path / "new").exists()


def test_a_missing_input_leaves_no_folder(tmp_path):
    result = cli("encode-shards", "-m", VENDORED_MODEL, "-o", tmp_path / "newdir", tmp_path / "nonexistent")
    assert result.exit_code == 1 and "nonexistent: no such file or folder" in result.stderr, result.output
    assert not (tmp_path / "newdir").exists()
    with pytest.raises(Exception, match="no such file"):
        encode_files([str(tmp_path / "nonexistent")], VENDORED_MODEL, str(tmp_path / "newdir"))
    assert not (tmp_path / "newdir").exists()


def test_load_encoded_checks_every_part_against_the_index(tok, inputs, tmp_path):
    a, b = inputs
    one, two = tmp_path / "one", tmp_path / "two"
    index = encode_files(a, tok, str(one), blocksize=500)
    other = encode_files(b, tok, str(two), blocksize=500)
    first, second = (p["name"] for p in index["parts"][:2])
    cases = {
        "another run's part under this name": lambda: (one / f"{first}.ids.npy").write_bytes(
            (two / f"{other['parts'][0]['name']}.ids.npy").read_bytes()
        ),
        "a part swapped with the next": lambda: (one / f"{first}.rows.npy").write_bytes(
            (one / f"{second}.rows.npy").read_bytes()
        ),
        "a truncated part": lambda: (one / f"{second}.ids.npy").write_bytes(
            (one / f"{second}.ids.npy").read_bytes()[:-4]
        ),
        "a missing part": lambda: (one / f"{second}.rows.npy").unlink(),
    }
    pristine = {name: (one / name).read_bytes() for name in os.listdir(one)}
    for what, damage in cases.items():
        damage()
        with pytest.raises(ShardError) as raised:
            load_encoded(str(one))
        assert str(one) in str(raised.value), what
        with pytest.raises(ShardError):
            list(iter_encoded(str(one)))
        for name, data in pristine.items():
            (one / name).write_bytes(data)
        assert _loaded(one) == _lines(tok, a)
    # an index that lies about a part's counts (no digests: an index of an older version)
    entry = json.loads((one / "index.json").read_text())
    for part in entry["parts"]:
        del part["files"]
    entry["parts"][1]["tokens"] += 1
    (one / "index.json").write_text(json.dumps(entry))
    with pytest.raises(ShardError, match="do not match"):
        load_encoded(str(one))
    (one / "index.json").unlink()
    with pytest.raises(ShardError, match="no index.json"):
        load_encoded(str(one))


def test_force_refuses_to_replace_an_index_that_is_not_ours(tok, inputs, tmp_path):
    a, _ = inputs
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.json").write_text('{"somebody": "else"}')
    with pytest.raises(FileExistsError, match="not a bytepiece shard index"):
        encode_files(a, tok, str(out), overwrite=True)
    assert os.listdir(out) == ["index.json"] and (out / "index.json").read_text() == '{"somebody": "else"}'


@pytest.mark.dask
@pytest.mark.slow
def test_encode_with_dask_takes_a_folder_and_replaces_it_with_force(inputs, tmp_path):
    """`bytepiece encode --dask-local N -o DIR`: -o names a folder here (click once refused
    any existing folder, even with --force); without a --dask option a folder is refused."""
    pytest.importorskip("distributed")
    runner = CliRunner()
    out = tmp_path / "shards"
    args = ["encode", "-m", str(VENDORED_MODEL), "--dask-local", "1", "-o", str(out), *inputs[0]]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    before = json.loads((out / "index.json").read_text())
    again = runner.invoke(main, args)
    assert again.exit_code == 1 and "--force" in again.stderr
    forced = runner.invoke(main, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    after = json.loads((out / "index.json").read_text())
    assert after["lines"] == before["lines"] and after["tokens"] == before["tokens"]
    plain = runner.invoke(main, ["encode", "-m", str(VENDORED_MODEL), "-o", str(out), *inputs[0]])
    assert plain.exit_code == 1 and "is a folder" in plain.stderr


def test_an_input_that_changes_between_the_passes_is_an_error(tok, inputs, tmp_path, monkeypatch):
    """A file truncated after the line-counting pass was encoded as it then was: the
    run ended well, its index counted the old lines and its keys the old line numbers."""
    a, _ = inputs
    out = tmp_path / "out"
    real = shards_module._count_lines_task

    def count_then_truncate(block, storage_options):
        counted = real(block, storage_options)
        if block[0] == a[1]:
            pathlib.Path(a[1]).write_text("shorter now\n")
        return counted

    monkeypatch.setattr(shards_module, "_count_lines_task", count_then_truncate)
    with pytest.raises(shards_module.InputChangedError, match=r"a1\.txt: changed while it was encoded"):
        encode_files(a, tok, str(out), blocksize=500)
    assert not out.exists()


def test_load_encoded_checks_the_index_itself(tok, inputs, tmp_path):
    """An index whose parts do not follow each other, whose total disagrees with its
    parts, or that names a file outside its folder was read as it said."""
    a, _ = inputs
    one = tmp_path / "one"
    encode_files(a, tok, str(one), blocksize=500)
    pristine = (one / "index.json").read_text()

    def damaged(edit):
        entry = json.loads(pristine)
        edit(entry)
        (one / "index.json").write_text(json.dumps(entry))
        with pytest.raises(ShardError):
            load_encoded(str(one))

    damaged(lambda e: e.update(lines=e["lines"] + 1))
    damaged(lambda e: e["parts"].insert(1, e["parts"][0]))  # a part twice
    damaged(lambda e: e["parts"].reverse())
    damaged(lambda e: e["parts"][0].update(name="../two/" + e["parts"][0]["name"]))
    damaged(lambda e: e.update(parts=[]))
    (one / "index.json").write_text(pristine)
    assert _loaded(one) == _lines(tok, a)
