"""The score cache (bytepiece/score_cache.py): a tokenizer's scores are numpy's log to the
bit whether computed or read back, the file is named by everything that decides them,
and a cache that is off, unwritable or damaged changes nothing but the time."""

from __future__ import annotations

import array
import os

import numpy as np
import pytest

from bytepiece import Tokenizer, Vocabulary, load_model, score_cache

LINES = ["Hello world, one line to encode.", "中文 text and code: x = f(y) + 1", "  spaces   and\ttabs  "]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of the test's own, used as by a process without numpy (this one
    has imported it; test_tokenizer.py runs the real thing in new processes)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", str(folder))
    monkeypatch.setattr(score_cache, "numpy_imported", lambda: False)
    return folder


@pytest.fixture
def reads(monkeypatch):
    """What each Tokenizer's read of the cache found: "read", or "missed" (computed)."""
    found = []
    read = score_cache.read_scores

    def spy(path, n):
        scores = read(path, n)
        found.append("missed" if scores is None else "read")
        return scores

    monkeypatch.setattr(score_cache, "read_scores", spy)
    return found


@pytest.fixture
def vocab(model_path):
    return load_model(model_path)  # (its counts an int64 array until .counts is read)


def numpy_scores(vocab):
    counts = np.asarray(vocab.counts, dtype=np.float64)
    return np.log(counts) - np.log(float(sum(vocab.counts)))


def cached_files(folder):
    return sorted(p for p in folder.iterdir() if p.name.startswith("scores-")) if folder.exists() else []


def test_scores_read_back_are_numpys_to_the_bit_and_encode_the_same(cache, reads, vocab):
    first = Tokenizer(vocab, seed=3)
    (kept,) = cached_files(cache)
    second = Tokenizer(vocab, seed=3)
    assert reads == ["missed", "read"]
    assert type(first._logprobs) is type(second._logprobs) is array.array
    expected = numpy_scores(vocab).tobytes()
    assert first.piece_log_probs.tobytes() == second.piece_log_probs.tobytes() == expected
    for line in LINES:
        assert first.encode(line) == second.encode(line)
        assert first.encode(line, alpha=0.3, key=9) == second.encode(line, alpha=0.3, key=9)
    assert first.log_partition(LINES[1], alpha=0.5) == second.log_partition(LINES[1], alpha=0.5)
    assert first.nbest(LINES[0], 3) == second.nbest(LINES[0], 3)
    assert cached_files(cache) == [kept]  # nothing more written


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-1],  # short
        lambda b: b + b"\0",  # long
        lambda b: b"NOTOURS!" + b[8:],  # not ours
        lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:],  # a score's bit flipped
        lambda b: b[:8] + (5).to_bytes(8, "little") + b[16:],  # the wrong count
        lambda b: b"",  # empty
    ],
    ids=["short", "long", "magic", "bit", "count", "empty"],
)
def test_a_damaged_file_is_ignored_and_written_again(cache, reads, vocab, damage):
    Tokenizer(vocab)
    (kept,) = cached_files(cache)
    good = kept.read_bytes()
    kept.write_bytes(damage(good))
    tok = Tokenizer(vocab)
    assert reads == ["missed", "missed"]  # computed, not read
    assert tok.piece_log_probs.tobytes() == numpy_scores(vocab).tobytes()
    assert kept.read_bytes() == good


def test_a_file_under_another_vocabularys_name_is_not_taken_for_its_scores(cache, reads, vocab):
    """Two vocabularies' files swapped (copied or renamed by hand): each was read as the
    other's scores, and the tokenizers segmented with the wrong model, silently."""
    other = Vocabulary(vocab.pieces, tuple(c + 1 for c in vocab.counts))
    Tokenizer(vocab)
    Tokenizer(other)
    first, second = cached_files(cache)
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    reads.clear()
    assert Tokenizer(vocab).piece_log_probs.tobytes() == numpy_scores(vocab).tobytes()
    assert Tokenizer(other).piece_log_probs.tobytes() == numpy_scores(other).tobytes()
    assert reads == ["missed", "missed"]  # computed, and written again under the right names
    assert sorted([first.read_bytes(), second.read_bytes()]) == sorted([a, b])


def test_an_empty_setting_turns_the_cache_off(tmp_path, monkeypatch, vocab):
    monkeypatch.setattr(score_cache, "numpy_imported", lambda: False)
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert score_cache.cache_dir() is None
    tok = Tokenizer(vocab)
    assert tok.piece_log_probs.tobytes() == numpy_scores(vocab).tobytes()
    assert list(tmp_path.iterdir()) == []


def test_the_folder_defaults_to_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("BYTEPIECE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert score_cache.cache_dir() == str(tmp_path / "xdg" / "bytepiece")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert score_cache.cache_dir() == str(tmp_path / ".cache" / "bytepiece")
    monkeypatch.setattr(score_cache.os.path, "expanduser", lambda path: path)  # no home at all
    assert score_cache.cache_dir() is None  # (not a folder named "~" in the current one)


def test_a_folder_that_cannot_be_written_leaves_the_scores_computed(tmp_path, monkeypatch, reads, vocab):
    monkeypatch.setattr(score_cache, "numpy_imported", lambda: False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BYTEPIECE_CACHE_DIR", str(blocker / "cache"))
    for _ in range(2):
        tok = Tokenizer(vocab)
        assert tok.piece_log_probs.tobytes() == numpy_scores(vocab).tobytes()
    assert reads == ["missed", "missed"]
    assert blocker.read_text() == "not a folder"


def test_the_file_is_named_by_everything_that_decides_the_scores(cache, monkeypatch, vocab):
    counts = vocab._count_values()
    base = score_cache.cache_path(counts)
    assert base is not None and base.startswith(str(cache))
    other = array.array("q", counts)
    other[0] += 1
    assert score_cache.cache_path(other) != base  # other counts
    monkeypatch.setenv("NPY_DISABLE_CPU_FEATURES", "AVX512F")
    assert score_cache.cache_path(counts) != base  # numpy told to run another log
    monkeypatch.delenv("NPY_DISABLE_CPU_FEATURES")
    assert score_cache.cache_path(counts) == base
    flags = score_cache.cpu_flags()
    monkeypatch.setattr(score_cache, "cpu_flags", lambda: flags + " avx512f")
    assert score_cache.cache_path(counts) != base  # another processor


def test_nothing_is_kept_when_the_machine_cannot_be_identified(cache, monkeypatch, vocab):
    counts = vocab._count_values()
    monkeypatch.setattr(score_cache, "cpu_flags", lambda: None)
    assert score_cache.cache_path(counts) is None
    tok = Tokenizer(vocab)
    assert tok.piece_log_probs.tobytes() == numpy_scores(vocab).tobytes()
    assert cached_files(cache) == []


def test_counts_are_kept_by_value_and_float_counts_are_not_kept(cache, vocab):
    assert score_cache.cache_path(vocab._count_values()) == score_cache.cache_path(tuple(vocab.counts))
    pieces = tuple(bytes([b]) for b in range(256)) + (b"ab",)
    for counts in [(3,) * 256 + (7,), (3.0,) * 256 + (7.5,), (3,) * 256 + (1 << 70,)]:
        tok = Tokenizer(Vocabulary(pieces, counts))
        assert tok.piece_log_probs.tobytes() == numpy_scores(tok.vocabulary).tobytes()
        assert tok.encode("abc") == [3 + 256] + tok.encode("c")
    assert len(cached_files(cache)) == 1  # the int64 counts only


def test_a_process_that_has_numpy_computes_the_scores_and_leaves_the_cache_alone(cache, monkeypatch, reads, vocab):
    Tokenizer(vocab)
    (kept,) = cached_files(cache)
    kept.write_bytes(b"damaged")
    monkeypatch.setattr(score_cache, "numpy_imported", lambda: True)
    tok = Tokenizer(vocab)
    other = Tokenizer(Vocabulary(tuple(bytes([b]) for b in range(256)), (5,) * 256))
    assert reads == ["missed"]  # (the first Tokenizer's only)
    assert tok.piece_log_probs.tobytes() == numpy_scores(vocab).tobytes()
    assert other.piece_log_probs.tobytes() == numpy_scores(other.vocabulary).tobytes()
    assert cached_files(cache) == [kept] and kept.read_bytes() == b"damaged"


def test_the_identity_names_numpys_compiled_core(monkeypatch):
    identity = score_cache.numpy_identity()
    assert identity is not None
    path = identity.split("\n")[0]
    assert os.path.basename(path).startswith("_multiarray_umath.")
    assert os.path.dirname(os.path.dirname(path)) == os.path.dirname(np.__file__)
