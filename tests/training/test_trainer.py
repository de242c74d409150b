"""The trainer: agreement with BytePiece 0.6.3, determinism, streaming input, EM, bad input."""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import os
import pathlib
import sys

import numpy as np
import pytest

from bytepiece.corpus import CorpusEncodingError, CorpusError, EmptyCorpusError, normalize
from bytepiece.trainer import Trainer, TrainerError, convert_to_bytepiece

REPO = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
CORPORA = REPO / "corpora"
sys.path.insert(0, str(GOLDEN))
from train_reference_063 import CASES, read_lines  # noqa: E402

needs_corpora = pytest.mark.skipif(not (CORPORA / "en.train.txt").exists(), reason="corpora/ not built")


def small_corpus():
    """About 120 KB of mixed English, Chinese and code (first lines of each bundled corpus)."""
    docs = []
    for lang in ("en", "zh", "code"):
        docs.extend(read_lines(f"corpora/{lang}.train.txt", 40_000))
    return docs


def model_bytes(trainer, tmp_path, name="m.model"):
    path = tmp_path / name
    trainer.save(path)
    return path.read_bytes()


# ---------------------------------------------------------------------------
# 0.6.3 agreement (em=False)


@needs_corpora
@pytest.mark.parametrize("name", sorted(CASES))
def test_em_off_agrees_with_063(name):
    ref = json.loads((GOLDEN / f"trained_063_{name}.json").read_text(encoding="utf-8"))
    lines = read_lines(ref["corpus"], CASES[name]["max_bytes"])
    assert len(lines) == ref["lines"]
    trainer = Trainer(max_vocab_size=list(ref["sizes"]), em=False, verbose=False, **ref["options"])
    trainer.train(lines)
    assert len(trainer.pieces) == len(ref["sizes"])
    for size, ours in zip(sorted(ref["sizes"], reverse=True), trainer.pieces):
        theirs = {base64.b64decode(k): v[2] for k, v in ref["models"][str(size)].items()}
        common = set(ours) & set(theirs)
        assert len(common) >= 0.99 * max(len(ours), len(theirs)), (name, size)
        # on these slices the vocabularies and counts are in fact identical
        assert ours == theirs, (name, size, sorted(set(ours) ^ set(theirs))[:10])


@needs_corpora
def test_em_off_model_file_is_063_format(tmp_path):
    ref = json.loads((GOLDEN / "trained_063_code.json").read_text(encoding="utf-8"))
    lines = read_lines(ref["corpus"], CASES["code"]["max_bytes"])
    trainer = Trainer(max_vocab_size=ref["sizes"][0], em=False, verbose=False)
    trainer.train(lines)
    path = tmp_path / "code.model"
    trainer.save(path)
    expected = json.dumps(ref["models"][str(ref["sizes"][0])], indent=4, ensure_ascii=False)
    # 0.6.3's save writes dump() with indent=4; key order = id order in both
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(expected)
    assert path.read_text(encoding="utf-8") == json.dumps(
        json.loads(path.read_text(encoding="utf-8")), indent=4, ensure_ascii=False
    )


# ---------------------------------------------------------------------------
# Determinism and streaming


@pytest.mark.slow
@needs_corpora
@pytest.mark.parametrize("em", [False, True])
def test_same_model_whatever_workers(tmp_path, em):
    docs = small_corpus()
    outs = []
    for workers, engine in ((1, "process"), (2, "process"), (2, "thread")):
        trainer = Trainer(max_vocab_size=600, em=em, verbose=False, block_chars=20_000, engine=engine)
        trainer.train(docs, workers=workers)
        outs.append(model_bytes(trainer, tmp_path, f"w{workers}{engine}.model"))
    assert outs[0] == outs[1] == outs[2]
    # and a different block size gives the same model too (integer merges, fixed EM groups)
    trainer = Trainer(max_vocab_size=600, em=em, verbose=False, block_chars=7_000)
    trainer.train(docs, workers=2)
    assert model_bytes(trainer, tmp_path, "b.model") == outs[0]


def test_fractions_of_the_sample_are_spread_over_it():
    from bytepiece.training.sample import spread

    groups = [([bytes([i])], np.ones(1)) for i in range(16)]
    assert spread(groups, 1.0) is groups
    assert [g[0][0][0] for g in spread(groups, 0.5)] == list(range(0, 16, 2))
    assert [g[0][0][0] for g in spread(groups, 0.25)] == [0, 4, 8, 12]
    assert [g[0][0][0] for g in spread(groups, 0.01)] == [0]


def test_most_costly_is_the_head_of_the_full_sort():
    """The pruning's cut sorts only the pieces tied at it: the same pieces as the first
    keep_n of the full lexsort (single bytes, then loss, count and index), with ties in
    loss and count, infinite losses (kept characters) and cuts inside each."""
    from bytepiece.training.em import most_costly

    rng = np.random.default_rng(9)
    n = 3000
    lengths = np.concatenate([np.ones(256, dtype=np.int64), rng.integers(2, 9, n - 256)])
    rng.shuffle(lengths)
    counts = rng.integers(0, 6, n).astype(np.float64)
    loss = np.round(rng.random(n), 2) * counts  # many exact ties, zeros among them
    loss[rng.choice(n, 40, replace=False)] = np.inf
    loss[lengths == 1] = np.inf
    full = np.lexsort((np.arange(n), -counts, -loss, lengths > 1))
    for keep_n in (100, 256, 257, 290, 300, 1000, 2999, 3000, 4000):
        assert np.array_equal(most_costly(loss, counts, lengths, keep_n), np.sort(full[:keep_n])), keep_n
    with_nan = loss.copy()  # (a NaN takes the full sort)
    with_nan[np.flatnonzero(lengths > 1)[:3]] = np.nan
    full = np.lexsort((np.arange(n), -counts, -with_nan, lengths > 1))
    assert np.array_equal(most_costly(with_nan, counts, lengths, 1000), np.sort(full[:1000]))


def test_first_bytes_of_pieces_in_bytes_order():
    from bytepiece.training.em import first_bytes

    rng = np.random.default_rng(3)
    pieces = sorted(
        {bytes([i]) for i in range(256)}
        | {rng.integers(0, 256, rng.integers(2, 9)).astype(np.uint8).tobytes() for _ in range(3000)}
    )
    lengths = np.fromiter(map(len, pieces), dtype=np.int64)
    assert np.array_equal(first_bytes(lengths), [p[0] for p in pieces])
    assert len(pieces) > 3000


@pytest.mark.slow
@needs_corpora
def test_grow_and_round_fractions_change_the_model_and_stay_deterministic(tmp_path):
    """The grow passes, the rounds and the first E-step (half the sample by default) may
    look at part of the sample; the result differs from the whole sample's, and is the
    same on 1 or 2 threads."""
    docs = small_corpus()
    models = {}
    for name, options in (
        ("whole", {"em_first_fraction": 1}),
        ("grow", {"em_grow_fraction": 0.5}),
        ("rounds", {"em_round_fraction": 0.5}),
        ("first", {}),
    ):
        for workers in (1, 2):
            trainer = Trainer(max_vocab_size=600, verbose=False, **options)
            trainer.train(docs, workers=workers)
            models[name, workers] = model_bytes(trainer, tmp_path, f"{name}{workers}.model")
        assert models[name, 1] == models[name, 2], name
    assert len({models[name, 1] for name in ("whole", "grow", "rounds", "first")}) == 4


@needs_corpora
def test_train_files_and_folders_equal_train_texts(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    contents = {}
    for lang, rel in (("en", "a.txt"), ("zh", "sub/b.txt")):
        text = "".join(read_lines(f"corpora/{lang}.train.txt", 30_000))
        (folder / rel).write_text(text, encoding="utf-8", newline="")
        contents[rel] = text
    (folder / ".hidden").write_text("ignored ignored ignored\n" * 50, encoding="utf-8")
    from_texts = Trainer(max_vocab_size=500, em=False, verbose=False)
    from_texts.train([contents["a.txt"], contents["sub/b.txt"]])
    from_folder = Trainer(max_vocab_size=500, em=False, verbose=False)
    from_folder.train_files([folder])
    assert from_folder.pieces == from_texts.pieces
    # a file read in small pieces (cut where newline runs end) gives the same chunks
    from bytepiece import corpus

    docs = list(corpus.iter_file_documents(str(folder / "a.txt"), read_size=1000))
    assert len(docs) > 10 and "".join(docs) == contents["a.txt"]
    assert sum((normalize(d, 10000) for d in docs), []) == normalize(contents["a.txt"], 10000)


@pytest.mark.parametrize("options,passes", [({}, 1), ({"em_seed": "tagged"}, 2), ({"em": False}, 2)])
def test_texts_are_read_once_or_twice_not_stored(options, passes):
    """The default reads the corpus once (the EM sample is drawn with the n-grams);
    tagging (0.6.3's algorithm, the tagged seed) reads it a second time."""

    class Docs:
        passes = 0

        def __iter__(self):
            Docs.passes += 1
            for i in range(200):
                yield f"line {i % 7} of the corpus, again and again\n"

    trainer = Trainer(max_vocab_size=300, verbose=False, **options)
    trainer.train(Docs())
    assert Docs.passes == passes
    assert len(trainer.pieces) == 1 and len(trainer.pieces[0]) <= 297


def test_an_interrupted_run_leaves_nothing_for_the_next(monkeypatch, tmp_path):
    """What the n-gram stage leaves for the EM (the sample, its parts being made on a
    helper thread, the candidates) belongs to one run: a run stopped after that stage
    does not leak into the next run of the same Trainer, on other texts and threads."""
    first = [f"alpha beta gamma {i % 9} delta\n" for i in range(300)]
    second = [f"uno dos tres {i % 7} cuatro cinco\n" for i in range(300)]
    from bytepiece.training import em

    trainer = Trainer(max_vocab_size=300, verbose=False)
    original = em.run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(em, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(first, workers=2)
    monkeypatch.setattr(em, "run", original)
    trainer.train(second, workers=1)
    fresh = Trainer(max_vocab_size=300, verbose=False)
    fresh.train(second, workers=1)
    assert model_bytes(trainer, tmp_path, "a.model") == model_bytes(fresh, tmp_path, "b.model")


def test_generator_is_rejected():
    with pytest.raises(TypeError, match="re-iterable"):
        Trainer(verbose=False).train(t for t in ["a\n", "b\n"])
    with pytest.raises(TypeError, match="not a single str"):
        Trainer(verbose=False).train("just one string")


# ---------------------------------------------------------------------------
# Sizes and saving


def test_several_sizes_give_one_model_each(tmp_path):
    docs = [f"word{i % 50} other{i % 13} thing{i % 31}\n" for i in range(3000)]
    trainer = Trainer(max_vocab_size=[300, 400, 350], min_count=2, verbose=False)
    trainer.train(docs)
    assert trainer.max_vocab_size == [400, 350, 300]
    trainer.save(tmp_path / "m")
    for size, pieces in zip([400, 350, 300], trainer.pieces):
        data = json.loads((tmp_path / f"m.{size}").read_text(encoding="utf-8"))
        assert data.pop("__bytepiece__")["normalization"] == "none"  # (a new model is lossless)
        assert len(data) == len(pieces) <= size - 3
        assert sorted(v[0] for v in data.values()) == list(range(3, 3 + len(data)))
        assert all(isinstance(v[2], int) and v[2] >= 1 for v in data.values())
        assert {base64.b64decode(k) for k in data} >= {bytes([b]) for b in range(256)}
    assert not (tmp_path / "m").exists()
    one = Trainer(max_vocab_size=[300], verbose=False)
    one.train(docs)
    one.save(tmp_path / "single")
    assert (tmp_path / "single").exists()


def test_trained_model_loads_in_tokenizer(tmp_path):
    from bytepiece import Tokenizer

    docs = ["the quick brown fox jumps over the lazy dog\n"] * 50 + ["狐狸跳过了懒狗\n"] * 50
    trainer = Trainer(max_vocab_size=300, verbose=False)
    trainer.train(docs)
    trainer.save(tmp_path / "m.model")
    tok = Tokenizer(str(tmp_path / "m.model"))
    text = "the lazy fox 跳过了\n"
    assert tok.decode(tok.encode(text)) == text


def test_several_sizes_are_all_checked_before_any_is_written(tmp_path):
    """A folder where m.300 should go is refused before m.400 is written: the save
    leaves all of its files or none (nothing half done to clean up)."""
    trainer = Trainer(max_vocab_size=[300, 400], verbose=False)
    trainer.train(["the quick brown fox jumps over the lazy dog\n"] * 50 + ["狐狸跳过了懒狗\n"] * 50)
    (tmp_path / "m.300").mkdir()
    with pytest.raises(IsADirectoryError, match="m.300"):
        trainer.save(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.300"]
    with pytest.raises(FileNotFoundError, match="missing.*does not exist"):
        trainer.save(tmp_path / "missing" / "m")
    assert not (tmp_path / "missing").exists()


def test_save_is_atomic(tmp_path, monkeypatch):
    trainer = Trainer(max_vocab_size=300, verbose=False)
    trainer.train(["some text to train on\n"] * 30)
    path = tmp_path / "m.model"
    path.write_text("previous model", encoding="utf-8")
    import bytepiece.model as model

    real_atomic_write = model.atomic_write

    @contextlib.contextmanager
    def half_write(target, mode, **kw):  # the disk fills up halfway through the file
        with real_atomic_write(target, mode, **kw) as handle:

            class Half:
                def write(self, text):
                    handle.write(text[: len(text) // 2])
                    raise OSError("disk full")

            yield Half()

    monkeypatch.setattr(model, "atomic_write", half_write)
    with pytest.raises(OSError, match="disk full"):
        trainer.save(path)
    assert path.read_text(encoding="utf-8") == "previous model"
    assert sorted(os.listdir(tmp_path)) == ["m.model"]


def test_convert_to_bytepiece(tmp_path):
    convert_to_bytepiece({"hello": 10, b"wor": 5, "ld": 3}, tmp_path / "c.model")
    data = json.loads((tmp_path / "c.model").read_text(encoding="utf-8"))
    pieces = {base64.b64decode(k): v[2] for k, v in data.items()}
    assert len(pieces) == 259 and pieces[b"hello"] == 10 and pieces[b"ld"] == 3


# ---------------------------------------------------------------------------
# EM


@needs_corpora
def test_em_compresses_held_out_text_better():
    from bytepiece import Tokenizer

    docs = small_corpus()
    held = "".join(read_lines("corpora/en.heldout.txt", 30_000))
    scores = {}
    for em in (False, True):
        # no script balance: the plain likelihood, so English (measured here) is not traded for Chinese
        trainer = Trainer(max_vocab_size=1500, em=em, em_script_floor=0, verbose=False)
        trainer.train(docs)
        vocab = {
            base64.b64encode(p).decode(): [i + 3, "", c]
            for i, (p, c) in enumerate(sorted(trainer.pieces[0].items(), key=lambda t: (len(t[0]), t[0])))
        }
        scores[em] = len(held.encode()) / len(Tokenizer(vocab).encode(held))
        assert len(trainer.pieces[0]) <= 1497
    assert scores[True] > 1.05 * scores[False], scores


@pytest.mark.parametrize(
    "seed,stages,absent",
    [
        ("ngrams", ("count n-grams", "EM sample: ", "drawn while counting n-grams"), ("count pieces", "prune pieces")),
        ("tagged", ("count n-grams", "count pieces", "distinct pieces", "prune pieces"), ("drawn while",)),
    ],
)
def test_em_logs_likelihood_per_iteration(capsys, seed, stages, absent):
    trainer = Trainer(max_vocab_size=300, verbose=True, em_seed=seed)
    trainer.train([f"alpha beta gamma {i % 9} delta\n" for i in range(300)])
    err = capsys.readouterr().err
    for stage in stages + ("EM: iteration 1", "log-likelihood", "sample of"):
        assert stage in err
    for stage in absent:
        assert stage not in err


@pytest.mark.slow
@needs_corpora
def test_ngram_seed_skips_the_tagging_and_the_063_pruning(monkeypatch):
    """With the default n-gram seed the EM starts from the n-gram candidates and the 256
    bytes: no n-gram model is built, nothing is tagged or pruned the 0.6.3 way; the tagged
    seed does all three, and the two give different vocabularies."""
    from bytepiece._core import ngram_model
    from bytepiece.training import prune

    docs = small_corpus()
    calls = collections.Counter()
    for owner, name in (
        (ngram_model, "count_pieces_block"),
        (ngram_model, "finish_ngrams"),
        (prune, "prune_pieces"),
    ):
        original = getattr(owner, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
    models = {}
    for seed in ("ngrams", "tagged"):
        calls.clear()
        t = Trainer(max_vocab_size=2000, verbose=False, em_seed=seed)
        t.train(docs, workers=2)
        models[seed] = t.pieces[0]
        assert len(t.pieces[0]) == 2000 - 3
        assert all(bytes([i]) in t.pieces[0] for i in range(256))
        if seed == "ngrams":
            assert calls == {}
        else:
            assert calls["count_pieces_block"] >= 1 and calls["finish_ngrams"] == 1 and calls["prune_pieces"] == 1
    assert models["ngrams"] != models["tagged"]
    with pytest.raises(TrainerError, match="em_seed"):
        Trainer(em_seed="bytes")


def test_verbose_false_is_silent(capsys):
    trainer = Trainer(max_vocab_size=300, verbose=False)
    trainer.train(["quiet please\n"] * 20)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_em_sample_is_bounded_and_stated(capsys):
    docs = [f"document number {i} with some words {i * 7 % 101}\n" for i in range(2000)]
    trainer = Trainer(max_vocab_size=300, em_sample_bytes=10_000, verbose=True)
    trainer.train(docs)
    assert 9_000 <= trainer.stats["em_sample_bytes"] <= 10_000
    assert "% of the corpus" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Memory budget


@needs_corpora
def test_ngram_budget_equal_when_not_hit_and_reported_when_hit(capsys):
    docs = small_corpus()
    exact = Trainer(max_vocab_size=500, em=False, verbose=False, ngram_memory=0)
    exact.train(docs)
    roomy = Trainer(max_vocab_size=500, em=False, verbose=False, ngram_memory=500_000_000)
    roomy.train(docs)
    assert not roomy.stats["ngram_budget_hit"]
    assert roomy.pieces == exact.pieces
    tight = Trainer(max_vocab_size=500, em=False, verbose=True, ngram_memory=2_000_000, block_chars=20_000)
    tight.train(docs)
    assert tight.stats["ngram_budget_hit"]
    assert "memory budget hit" in capsys.readouterr().err
    assert len(tight.pieces[0]) <= 497


# ---------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("texts", [[], [""], ["", ""]])
def test_empty_corpus(texts):
    with pytest.raises(EmptyCorpusError, match="empty"):
        Trainer(verbose=False).train(texts)
    assert issubclass(EmptyCorpusError, ValueError)


def test_empty_files(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(EmptyCorpusError):
        Trainer(verbose=False).train_files([tmp_path / "empty.txt"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_vocab_size": 258}, "max_vocab_size"),
        ({"max_vocab_size": [1000, 100]}, "max_vocab_size"),
        ({"max_vocab_size": []}, "max_vocab_size"),
        ({"order": 0}, "order"),
        ({"order": -3}, "order"),
        ({"order": 9}, "order"),
        ({"min_count": 0}, "min_count"),
        ({"em_shrink": 1.5}, "em_shrink"),
        ({"em_balance": 0}, "em_balance"),
        ({"em_balance": 1.5}, "em_balance"),
        ({"em_script_floor": -0.1}, "em_script_floor"),
        ({"em_script_floor": 0.6}, "em_script_floor"),
        ({"em_round_fraction": 0}, "em_round_fraction"),
        ({"em_grow_fraction": 1.5}, "em_grow_fraction"),
        ({"em_first_fraction": 0}, "em_first_fraction"),
        # (each of these passed the constructor and failed deep in training, or never)
        ({"em_grow": -1}, "em_grow must be a finite number >= 0, not -1"),
        ({"em_grow": float("nan")}, "em_grow must be a finite number"),
        ({"em_ngrams": float("inf")}, "em_ngrams must be a finite number"),
        ({"em_pairs": 10**400}, "em_pairs must be a finite number"),
        ({"em_seed": "tagged", "em_seed_factor": float("nan")}, "em_seed_factor must be a finite number >= 1"),
        ({"em_keep_chars": "5"}, "em_keep_chars must be a finite number"),
        ({"em_iterations": 1.5}, "em_iterations must be an integer >= 1, not 1.5"),
        ({"em_final_iterations": -1}, "em_final_iterations must be an integer >= 0"),
        ({"em_grow_rounds": 2.5}, "em_grow_rounds must be an integer"),
        ({"em_hard": "yes"}, "em_hard must be True or False"),
        ({"block_chars": "x"}, "block_chars must be an integer >= 1, not 'x'"),
        ({"block_chars": -1}, "block_chars must be an integer >= 1"),
        ({"em": "false"}, "em must be True or False, not 'false'"),
        ({"isolate_digits": 1}, "isolate_digits must be True or False"),
        ({"verbose": None}, "verbose must be True or False"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(TrainerError, match=match):
        Trainer(**kwargs)
    assert issubclass(TrainerError, ValueError)


def test_bad_workers():
    with pytest.raises(ValueError, match="workers"):
        Trainer(verbose=False).train(["abc\n"], workers=0)


@pytest.mark.parametrize("options", [{}, {"em_seed": "tagged", "em_pairs": 1.0}, {"em": False}])
def test_min_count_beyond_every_count_trains_the_single_bytes(options):
    """min_count reached the core as an int64, and the EM's grow pass shifted it left 16
    bits first: from 2**47 on (the command line accepts up to 2**53) training crashed
    with OverflowError. A floor above every count keeps no multi-byte piece, however far
    above it is."""
    docs = ["hello world, hello again\n"] * 40
    above_all = sum(map(len, docs)) + 1
    models = []
    for min_count in (above_all, 2**47, 2**53, 2**63 - 1, 2**63, 10**30):
        trainer = Trainer(max_vocab_size=300, min_count=min_count, verbose=False, **options)
        trainer.train(docs)
        assert trainer.min_count == min_count
        models.append(trainer.pieces)
    assert all(len(pieces) == 256 for pieces in models[0])
    assert all(m == models[0] for m in models), [len(m[0]) for m in models]
    low = Trainer(max_vocab_size=300, verbose=False, **options)
    low.train(docs)
    assert len(low.pieces[0]) > 256  # (the text has pieces to find, under a usual floor)


def test_non_utf8_file_names_file_and_offset(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello world\n" * 10 + b"caf\xe9\n")
    with pytest.raises(CorpusEncodingError) as info:
        Trainer(verbose=False).train_files([bad])
    assert str(bad) in str(info.value) and "byte offset 123" in str(info.value)
    assert info.value.offset == 123
    assert isinstance(info.value, ValueError)
    # opting in: replacement characters, or raw bytes
    for errors in ("replace", "bytes"):
        trainer = Trainer(max_vocab_size=300, verbose=False)
        trainer.train_files([bad], errors=errors)
        assert len(trainer.pieces[0]) >= 256
    raw = Trainer(max_vocab_size=300, verbose=False, em=False, min_count=1)
    raw.train_files([bad], errors="bytes")
    assert b"\xe9" in raw.pieces[0] and raw.pieces[0][b"\xe9"] >= 1


def test_bad_paths(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        Trainer(verbose=False).train_files([tmp_path / "missing.txt"])
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.txt"
        locked.write_text("x\n")
        locked.chmod(0)
        with pytest.raises(CorpusError, match="not readable"):
            Trainer(verbose=False).train_files([locked])
    with pytest.raises(ValueError, match="errors"):
        Trainer(verbose=False).train_files([tmp_path], errors="ignore")


def test_kept_characters_never_crowd_out_single_bytes():
    # 400 distinct CJK characters, each frequent enough to be "kept", and room for only 41
    text = "".join(chr(0x4E00 + i) * 3 + "\n" for i in range(400))
    trainer = Trainer(max_vocab_size=300, verbose=False, em_keep_chars=2)
    trainer.train([text] * 2)
    pieces = trainer.pieces[0]
    assert len(pieces) == 297
    assert all(bytes([b]) in pieces for b in range(256))


# ---------------------------------------------------------------------------
# Script-balanced EM


def test_scripts_of_chunks():
    from bytepiece.training.sample import scripts

    chunks = [
        s.encode()
        for s in (
            "plain ASCII text\n",
            "自然语言处理是人工智能的一个分支。\n",
            "Привет, как дела?\n",
            "ひらがなとカタカナ\n",
            "한국어 문장입니다\n",
            "مرحبا بالعالم\n",
            "x = 1  # 注释\n",
            "Ünïcödé façade\n",
            "",
        )
    ]
    # ASCII, Han, Cyrillic, kana (CJK), Hangul, Arabic, mostly-ASCII code, mostly-ASCII Latin, empty
    assert scripts(chunks).tolist() == [0, 8, 2, 8, 9, 4, 0, 0, 0]
    # a tie goes to the lower script; continuation bytes do not vote
    assert scripts(["ab中文".encode()]).tolist() == [0]
    assert scripts(["a中文".encode()]).tolist() == [8]


def test_script_weights_follow_the_tempered_shares():
    from bytepiece.training.sample import script_weights

    en, zh = b"english words here\n", "中文的句子\n".encode()
    sample = [en] * 60 + [zh] * 10 + [en] * 26
    w = script_weights(sample, 0.5)
    lengths = np.array([len(c) for c in sample], dtype=float)
    is_zh = np.array([c == zh for c in sample])
    share = np.array([lengths[~is_zh].sum(), lengths[is_zh].sum()]) / lengths.sum()
    want = share**0.5 / (share**0.5).sum()
    got = np.array([(w * lengths)[~is_zh].sum(), (w * lengths)[is_zh].sum()]) / lengths.sum()
    np.testing.assert_allclose(got, want, rtol=1e-12)  # each script weighs p**0.5, renormalised
    assert (w[is_zh] > 1).all() and (w[~is_zh] < 1).all()  # the minority gains
    assert np.isclose((w * lengths).sum(), lengths.sum())  # total mass unchanged
    assert (script_weights(sample, 1.0) == 1).all()  # off
    assert (script_weights([en] * 5, 0.3) == 1).all()  # one script: nothing to balance
    # distinct chunks with multiplicities weigh as the repeated sample
    mult = np.array([86.0, 10.0])
    np.testing.assert_allclose(script_weights([en, zh], 0.5, mult), [w[0], w[60]], rtol=1e-12)


def test_script_floor_raises_small_scripts_and_leaves_big_ones_in_proportion():
    from bytepiece.training.sample import SCRIPT_MAX_BOOST, script_targets, script_weights

    assert SCRIPT_MAX_BOOST == 3.0
    share = np.zeros(10)

    def targets(shares, floor, balance=1.0, which=(0, 2, 8, 9)):
        share[:] = 0
        share[list(which[: len(shares)])] = shares
        got = script_targets(share, balance, floor)
        assert np.isclose(got.sum(), 1.0) and (got[share == 0] == 0).all()
        return got[list(which[: len(shares)])]

    # Cyrillic raised to the floor; Han, at 5%, to 3x its share (its own floor)
    np.testing.assert_allclose(targets([0.80, 0.15, 0.05], 0.25), [0.60, 0.25, 0.15])
    # a trace of a script stays a trace
    np.testing.assert_allclose(targets([0.999, 0.001], 0.25), [0.997, 0.003])
    # above the floor: the plain shares
    np.testing.assert_allclose(targets([0.4, 0.3, 0.3], 0.25), [0.4, 0.3, 0.3])
    # raising the small ones pushes a bigger one below the floor: it is raised too
    np.testing.assert_allclose(targets([0.6, 0.3, 0.05, 0.05], 0.3), [0.4, 0.3, 0.15, 0.15])
    # floors that cannot all be met: in proportion to them
    np.testing.assert_allclose(targets([0.5, 0.25, 0.25], 0.5), [1 / 3] * 3)
    # tempered first (p**0.5, renormalised), then the floor
    shares = np.array([0.8, 0.15, 0.05])
    np.testing.assert_allclose(targets(shares, 0.0, balance=0.5), shares**0.5 / (shares**0.5).sum())
    # per chunk: a 9:1 sample with floor 0.25 weighs the minority's bytes 2.5x
    en, zh = b"english words here ok\n", "中文的句子句子\n".encode()
    assert len(en) == len(zh)
    w = script_weights([en] * 9 + [zh], 1.0, floor=0.25)
    np.testing.assert_allclose(w, [0.75 / 0.9] * 9 + [2.5])
    assert (script_weights([en] * 9 + [zh], 1.0, floor=0.0) == 1).all()  # off
    assert (script_weights([en] * 9 + [zh], 1.0, floor=0.05) == 1).all()  # nothing below it


@pytest.mark.slow
@needs_corpora
def test_estimated_rounds_skip_the_e_steps_after_the_first_grow_rounds(monkeypatch, capsys):
    """After each of the first em_estimated_rounds grow rounds (never the last) the pruning
    uses the grow pass's estimates instead of an E-step; the E-steps left are Viterbi
    (em_hard) while the vocabulary grows, forward-backward after the last grow round."""
    docs = small_corpus()
    from bytepiece.training import em

    steps = []
    original = em.e_step

    def spy(state, pieces, counts, groups, workers, hard=False):
        steps.append(hard)
        return original(state, pieces, counts, groups, workers, hard)

    monkeypatch.setattr(em, "e_step", spy)
    models = {}
    for estimated, hard, want in [
        (0, True, [True] * 4 + [False]),
        (2, True, [True, True, False]),
        (9, True, [True, False]),
        (2, False, [False] * 3),
    ]:
        steps.clear()
        t = Trainer(max_vocab_size=1500, em_grow_rounds=4, em_estimated_rounds=estimated, em_hard=hard)
        t.train(docs, workers=2)
        assert steps == want, (estimated, hard)
        models[estimated, hard] = t.pieces[0]
        assert len(t.pieces[0]) == 1500 - 3
    assert "their counts estimated by the grow pass, no E-step" in capsys.readouterr().err
    assert len({tuple(sorted(m.items())) for m in models.values()}) == 4
    for bad in (-1, 1.5, True):
        with pytest.raises(TrainerError, match="em_estimated_rounds"):
            Trainer(em_estimated_rounds=bad)


def test_max_piece_length_defaults_to_24_with_em_and_to_0_6_3s_36_without():
    assert Trainer(verbose=False).max_piece_length == 24
    assert Trainer(em=False, verbose=False).max_piece_length == 36
    assert Trainer(max_piece_length=36, verbose=False).max_piece_length == 36
    # (a 31-byte line, newline included: one piece when the limit allows it)
    docs = ["0123456789abcdefghijklmnopqrst\n"] * 80 + ["the quick brown fox jumps over the lazy dog\n"] * 30
    longest = {}
    for limit in (None, 36):
        t = Trainer(max_vocab_size=300, min_count=1, max_piece_length=limit, verbose=False)
        t.train(docs)
        longest[limit] = max(map(len, t.pieces[0]))
    assert longest[None] <= 24 < longest[36] <= 36, longest


@needs_corpora
@pytest.mark.parametrize(
    "limit, options",
    [
        (1, {}),
        (2, {}),
        (3, {}),
        (4, {}),
        (2, {"em_seed": "tagged"}),
        (3, {"em_seed": "tagged", "em_pairs": 1.0}),
        (7, {"order": 8}),
        (5, {"order": 8, "em_seed": "tagged", "em_pairs": 1.0}),
        (2, {"em": False}),
    ],
)
def test_max_piece_length_holds_with_em_whatever_the_order(limit, options):
    """The EM started from n-gram candidates up to `order` bytes without checking them
    against max_piece_length, so a limit below the order was ignored (6-byte pieces with
    a limit of 2; 8-byte ones with order 8 and a limit of 7). No piece but the single
    bytes may be longer than the limit, in any of the sizes, and the limit is reached."""
    trainer = Trainer(max_vocab_size=[600, 1000], max_piece_length=limit, verbose=False, **options)
    trainer.train(small_corpus())
    for pieces in trainer.pieces:
        assert all(bytes([b]) in pieces for b in range(256))
        assert max(map(len, pieces)) <= limit, sorted(pieces, key=len)[-3:]
    assert max(map(len, trainer.pieces[0])) == limit


@pytest.mark.slow
@needs_corpora
@pytest.mark.parametrize(
    "balanced", [{"em_script_floor": 0.3}, {"em_script_floor": 0, "em_balance": 0.5}], ids=["floor", "tempered"]
)
def test_balanced_em_gives_a_minority_script_more_compression(balanced):
    """English and code outnumber Chinese 10 to 1 in characters here; balancing spends
    more of the vocabulary on Chinese, at a small cost to the majority."""
    from bytepiece import Tokenizer

    docs = (
        read_lines("corpora/en.train.txt", 150_000)
        + read_lines("corpora/code.train.txt", 150_000)
        + read_lines("corpora/zh.train.txt", 30_000)
    )
    held = {lang: "".join(read_lines(f"corpora/{lang}.heldout.txt", 20_000)) for lang in ("en", "zh")}
    ratio = {}
    for name, options in (("plain", {"em_script_floor": 0}), ("balanced", balanced)):
        trainer = Trainer(max_vocab_size=2000, verbose=False, **options)
        trainer.train(docs)
        vocab = {
            base64.b64encode(p).decode(): [i + 3, "", c]
            for i, (p, c) in enumerate(sorted(trainer.pieces[0].items(), key=lambda t: (len(t[0]), t[0])))
        }
        tok = Tokenizer(vocab)
        ratio[name] = {lang: len(t.encode()) / len(tok.encode(t)) for lang, t in held.items()}
    assert ratio["balanced"]["zh"] > 1.03 * ratio["plain"]["zh"], ratio
    # (measured at 2000 pieces: floor 0.3, Chinese +15.9% and English -6.9%; tempered 0.5,
    # +12.9% and -4.3%. The cost to the majority must stay small)
    assert ratio["balanced"]["en"] > 0.9 * ratio["plain"]["en"], ratio


def test_em_parts_keep_each_distinct_chunk_once_with_its_multiplicity():
    from collections import Counter

    from bytepiece.training.sample import em_parts, group_bytes, script_weights

    sample = [
        b"x = 1\n",
        "中文的句子\n".encode(),
        b"return x\n",
        b"x = 1\n",
        b"}\n",
        b"}\n",
        b"}\n",
        "中文的句子\n".encode(),
        b"unique line\n",
    ]
    weights = script_weights(sample, 0.5)
    parts = em_parts(sample, 0.5, 3)
    mass: Counter = Counter()
    seen = []
    assert len(parts) == 3
    for texts, w, part_mass in parts:
        assert len(w) == len(texts)
        assert part_mass == pytest.approx(sum(wt * len(t) for t, wt in zip(texts, w.tolist())), rel=1e-12)
        for t, wt in zip(texts, w.tolist()):
            mass[t] += wt
            seen.append(t)
    assert sorted(seen) == sorted(set(sample))  # each distinct chunk once
    want: Counter = Counter()
    for t, w in zip(sample, weights.tolist()):
        want[t] += w
    assert mass.keys() == want.keys() and all(abs(mass[t] - want[t]) < 1e-12 for t in want)
    assert abs(group_bytes(parts) - float(np.dot(weights, [len(c) for c in sample]))) < 1e-9
    again = em_parts(sample, 0.5, 3)  # deterministic
    assert [g.texts for g in again] == [g.texts for g in parts]
    assert all(np.array_equal(g1.weights, g2.weights) for g1, g2 in zip(again, parts))


def test_em_parts_of_a_hash_sorted_sample_are_those_of_counting_it():
    """Given the sample's hashes (it is sorted by them) and lengths, distinct_runs finds
    the distinct chunks as runs of equal hashes: em_parts gives the same parts from them
    as from counting the chunks. It declines (None: the caller counts) a sample that is
    not sorted by the hashes given, or two chunks that share a hash."""
    from bytepiece.training.sample import (
        EM_PARTS,
        SampleCollector,
        chunk_key,
        distinct_runs,
        em_parts,
        sample_parts,
    )

    rng = np.random.default_rng(5)
    lines = [f"line {i} {'中文' * (i % 3)}\n".encode() for i in range(40)]
    sample = [lines[i] for i in rng.integers(0, 40, 300)]  # many repeats
    sample.sort(key=chunk_key)
    keys = np.array([chunk_key(c) for c in sample], dtype=np.uint64)
    lengths = np.array([len(c) for c in sample], dtype=np.int64)

    def same(a, b):
        return len(a) == len(b) and all(
            x.texts == y.texts and np.array_equal(x.weights, y.weights) and x.mass == y.mass for x, y in zip(a, b)
        )

    counted = em_parts(sample, 0.5, 4, 0.1)
    # (the collector's view: its chunks in any order, and the order that sorts them)
    shuffle = rng.permutation(len(sample))
    chunks = [sample[i] for i in shuffle]
    order = np.argsort(shuffle)
    assert [chunks[i] for i in order] == sample
    distinct = distinct_runs(chunks, order, keys, lengths)
    assert distinct is not None
    assert same(em_parts(None, 0.5, 4, 0.1, distinct), counted)
    assert sum(len(g.texts) for g in counted) == len(set(sample)) < len(sample)
    # a collision: the second distinct chunk given the first one's hash
    second = int(np.flatnonzero(keys != keys[0])[0])
    run = np.flatnonzero(keys == keys[second])
    fake = keys.copy()
    fake[run] = keys[0]
    assert distinct_runs(chunks, order, fake, lengths) is None
    # not sorted by the keys given
    shuffled = keys[::-1].copy()
    assert distinct_runs(chunks, order, shuffled, lengths) is None
    # The trainer's collector gives the same parts, counted instead when hashes collide
    # (the collector sorts by the hashes it is given).
    for given in (keys, fake):
        collector = SampleCollector(1 << 30)
        collector.add(SampleCollector(1 << 30, given[shuffle], chunks, lengths[shuffle]))
        count, nbytes, groups = sample_parts(collector, 0.5, 0.1)
        assert (count, nbytes) == (len(sample), int(lengths.sum()))
        in_hash_order = [chunks[i] for i in np.argsort(given[shuffle], kind="stable")]
        assert same(groups, em_parts(in_hash_order, 0.5, EM_PARTS, 0.1))


# ---------------------------------------------------------------------------
# The pieces of the pipeline: options, engines, samples


def test_options_are_checked_and_read_as_the_trainer_arguments():
    from bytepiece.training import EmOptions, TrainerOptions

    t = Trainer(max_vocab_size=[300, 500], em_shrink=0.4, em=False, verbose=False)
    assert isinstance(t.options, TrainerOptions) and isinstance(t.options.em, EmOptions)
    assert t.options.max_vocab_size == (500, 300) and t.max_vocab_size == [500, 300]
    assert (t.em, t.em_shrink, t.options.em.shrink, t.max_piece_length, t.engine) == (False, 0.4, 0.4, 36, "thread")
    t.em_shrink = 0.5  # an argument set afterwards is checked and used
    assert t.options.em.shrink == 0.5
    with pytest.raises(TrainerError, match="em_shrink"):
        t.em_shrink = 2
    assert t.em_shrink == 0.5
    with pytest.raises(AttributeError):
        t.no_such_option  # noqa: B018
    with pytest.raises(TrainerError, match="order"):
        TrainerOptions(order=0)
    with pytest.raises(TrainerError, match="engine"):
        Trainer(engine="gpu")
    # derived values
    tagged = Trainer(em_seed="tagged", em_pairs=1.0, max_piece_length=300, verbose=False).options
    assert (tagged.tagging, tagged.pair_length, tagged.sample_bytes) == (True, 255, 64_000_000)
    plain = Trainer(verbose=False).options
    assert (plain.tagging, plain.pair_length, plain.candidate_limit) == (False, 0, 40_000)
    assert t.options.sample_bytes == 0 and Trainer(ngram_memory=0).options.budget_entries == 0


def _weighted(scale, x):
    return scale * x


@pytest.mark.parametrize("kind", ["thread", "process"])
@pytest.mark.parametrize("workers", [1, 3])
def test_local_engines_map_in_block_order(kind, workers):
    """A block function with its settings bound (a partial of a module-level function)
    runs on threads or forked processes; the results come back in block order."""
    import functools

    from bytepiece.training.engines import map_in_order

    func = functools.partial(_weighted, 3)
    assert list(map_in_order(func, iter(range(50)), workers, kind)) == [3 * x for x in range(50)]


def test_sample_collectors_merge_to_the_bottom_of_the_whole():
    """Block samples folded in place (a local run) or merged in any grouping without
    changing their inputs (a cluster's merge tree) give the bottom-k sample of all the
    chunks at once."""
    from bytepiece.training.sample import SampleCollector

    rng = np.random.default_rng(2)
    chunks = [bytes(rng.integers(97, 100, rng.integers(1, 30)).astype(np.uint8)) for _ in range(3000)]
    budget = 5000
    whole = SampleCollector.of_chunks(chunks, budget).pairs()
    blocks = [chunks[i : i + 170] for i in range(0, len(chunks), 170)]
    folded = SampleCollector.of_chunks(blocks[0], budget)
    for block in blocks[1:]:
        folded.add(SampleCollector.of_chunks(block, budget))
    assert folded.pairs() == whole and sum(len(c) for _, c in whole) <= budget
    parts = [SampleCollector.of_chunks(block, budget) for block in blocks]
    before = [p.pairs() for p in parts]
    tree = SampleCollector.union(
        [SampleCollector.union(parts[i : i + 3], budget) for i in range(0, len(parts), 3)], budget
    )
    assert tree.pairs() == whole and [p.pairs() for p in parts] == before
    assert SampleCollector.of_pairs(whole, budget).pairs() == whole
    again = SampleCollector.of_chunks(chunks, budget).result()
    assert again == [c for _, c in whole]


def test_trainer_arguments_default_to_the_options_defaults():
    """Trainer's signature lists every option with its default for readers; the options
    objects hold the same defaults, so a Trainer and TrainerOptions() agree."""
    import inspect

    from bytepiece.training.memory import auto_ngram_memory
    from bytepiece.training.options import TRAINER_ARGUMENTS, TrainerOptions, option_value

    defaults = TrainerOptions()
    parameters = inspect.signature(Trainer.__init__).parameters
    assert set(TRAINER_ARGUMENTS) <= set(parameters)
    for name in TRAINER_ARGUMENTS:
        default = parameters[name].default
        if name == "max_vocab_size":
            default = [default]
        if name == "max_piece_length":  # None: 24 with EM (the default), 36 without
            assert default is None and option_value(defaults, name) == 24
            continue
        if name == "engine":
            assert default == "thread" and defaults.engine == "thread"
            continue
        if name == "normalization":  # None: "none" with EM (the default), 0.6.3's NFC without
            assert default is None and option_value(defaults, name) == "none"
            assert TrainerOptions(use_em=False).normalization == "NFC"
            continue
        if name == "ngram_memory":  # None: sized from the machine's memory
            assert default is None and option_value(defaults, name) == auto_ngram_memory()
            continue
        assert option_value(defaults, name) == default, name


@pytest.mark.parametrize("seed", range(60))
def test_sample_collectors_give_the_bottom_of_the_whole_however_the_corpus_is_cut(seed):
    """Chunks of very different lengths, copies of one chunk, budgets of a few chunks and
    blocks of any size: folding block samples in place and merging them in a tree both
    give the corpus's own bottom sample. A trim drops the first chunk that does not fit;
    without the cutoff it leaves behind, a later, smaller chunk ranked after the dropped
    one would take its place (the union of blocks would keep what the whole does not)."""
    from bytepiece.training.sample import SampleCollector

    rng = np.random.default_rng(seed)
    longest = int(rng.choice([3, 30, 300]))
    chunks = [bytes(rng.integers(97, 100, rng.integers(1, longest)).astype(np.uint8)) for _ in range(1500)]
    budget = int(rng.integers(10, 3000))
    whole = SampleCollector.of_chunks(chunks, budget).pairs()
    step = int(rng.integers(1, 300))
    blocks = [chunks[i : i + step] for i in range(0, len(chunks), step)]
    folded = SampleCollector.of_chunks(blocks[0], budget)
    for block in blocks[1:]:
        folded.add(SampleCollector.of_chunks(block, budget))
    assert folded.pairs() == whole
    parts = [SampleCollector.of_chunks(block, budget) for block in blocks]
    group = int(rng.integers(1, 5))
    tree = SampleCollector.union(
        [SampleCollector.union(parts[i : i + group], budget) for i in range(0, len(parts), group)], budget
    )
    assert tree.pairs() == whole


def test_the_default_ngram_budget_is_a_share_of_the_memory_the_process_may_use(monkeypatch):
    """ngram_memory=None sizes the n-gram budget from the machine: a quarter of what the
    process may use (MemAvailable, its rlimits, its cgroup) beyond 256 MB, within
    [16 MB, 1 GB]; an explicit value (0: none) is kept."""
    from bytepiece.training import memory

    for room, budget in ((None, 10**9), (10**11, 10**9), (2_256_000_000, 5 * 10**8), (10**7, 16 * 10**6)):
        monkeypatch.setattr(memory, "available_memory", lambda room=room: room)
        assert Trainer().ngram_memory == budget == Trainer(ngram_memory=None).options.ngram_memory
        assert Trainer(ngram_memory=0).ngram_memory == 0 and Trainer(ngram_memory=123).ngram_memory == 123
    monkeypatch.undo()
    room = memory.available_memory()
    assert room is None or room > 0


def test_the_summary_says_when_the_counts_became_approximate(capsys):
    docs = [" ".join(f"w{i * 7919 % 10007}x{i}" for i in range(j, j + 40)) + "\n" for j in range(2000)]
    tight = Trainer(max_vocab_size=300, verbose=True, ngram_memory=20_000, block_chars=5_000)
    tight.train(docs)
    err = capsys.readouterr().err
    assert tight.stats["ngram_budget_hit"]
    assert "memory budget hit" in err and "counts are approximate" in err
    assert "the n-gram memory budget was hit: counts were approximate" in err.strip().splitlines()[-1]
    roomy = Trainer(max_vocab_size=300, verbose=True, ngram_memory=0)
    roomy.train(docs)
    assert not roomy.stats["ngram_budget_hit"] and "approximate" not in capsys.readouterr().err


@pytest.mark.parametrize("workers", [1, 2])
def test_the_em_sample_is_cut_into_parts_once_the_ngram_table_is_spent(monkeypatch, workers):
    """The n-gram stage's peak is its table and the sample drawn beside it: the sample's
    parts (a copy of its index, per-chunk weights) are made after the table is spent."""
    from bytepiece.training import ngrams, pipeline

    events = []
    finish, parts = ngrams.finish, pipeline.sample_parts

    def spy_finish(*args, **kwargs):
        result = finish(*args, **kwargs)
        events.append("table spent")
        return result

    def spy_parts(*args, **kwargs):
        events.append("sample parts")
        return parts(*args, **kwargs)

    monkeypatch.setattr(ngrams, "finish", spy_finish)
    monkeypatch.setattr(pipeline, "sample_parts", spy_parts)
    trainer = Trainer(max_vocab_size=300, verbose=False)
    trainer.train([f"line {i} of some text\n" * 3 for i in range(300)], workers=workers)
    assert events == ["table spent", "sample parts"]
