"""The Tokenizer API: 0.6.3 compatibility, normalisation, round trips, keys, threads, processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import re
import subprocess
import sys
import threading
import unicodedata

import numpy as np
import pytest

from bytepiece import Tokenizer, UnknownIdError, stochastok
from bytepiece.ids import UnknownPieceError

TEXT = "Hello world! Tokenizers split text.\n\n你好，世界。今天天气不错。\n\tdef f(x):\n        return x ** 2\n"


def reference_viterbi(tok: Tokenizer, data: bytes) -> list[bytes]:
    """BytePiece 0.6.3's algorithm, literally: chunks by regex, edges longest-first per end,
    replace only on a strictly greater score."""
    logp = dict(zip(tok.vocabulary.pieces, tok._logprobs))
    longest = max(map(len, logp))
    out = []
    for chunk in re.findall(rb".*\n+|.+", data):
        n = len(chunk)
        scores = [0.0] + [-np.inf] * n
        routes = list(range(n + 1))
        for e in range(1, n + 1):
            for s in range(max(0, e - longest), e):
                piece = chunk[s:e]
                if piece in logp and scores[s] + logp[piece] > scores[e]:
                    scores[e], routes[e] = scores[s] + logp[piece], s
        pieces, e = [], n
        while e > 0:
            pieces.append(chunk[routes[e] : e])
            e = routes[e]
        out += pieces[::-1]
    return out


def _outcome(call, listed: bool, *args, **kwargs):
    """The result of a call (listed when it is an iterator), or its error."""
    try:
        got = call(*args, **kwargs)
        return list(got) if listed else got
    except (TypeError, ValueError) as error:
        return type(error), str(error)


def test_the_compiled_encode_gives_the_careful_paths_ids_for_every_plain_call(model_path):
    """encode() runs the common call compiled (TokenizerCore.encode) and the rest in
    Python (_encode_careful); both give the same ids, errors and unkeyed stream for every
    plain call: str (ASCII, composed, decomposed), bytes, bytearray, <bos>/<eos>, iter,
    the default, float, int and NaN alphas, and keys of every kind."""
    fast, careful = (Tokenizer(model_path, seed=77) for _ in range(2))
    texts = ["tokenizer", "héllo wörld", unicodedata.normalize("NFD", "héllo wörld"), b"bytes \xff", "", "a\n\nb"]
    texts.append(bytearray(b"a bytearray"))
    keys = [None, 0, 5, 2**64 - 1, 2**64, -1, "k", ("t", 1), np.int64(9), True]
    for text in texts:
        for alpha in (None, -1.0, 0.0, 0.3, 1, float("nan"), 5000.0):
            for key in keys:
                for bos, eos, it in ((False, False, False), (True, True, False), (False, True, True)):
                    careful_args = (text, bos, eos, alpha, it, key, "exact", (), (), False, None, None, None)
                    outcome = [
                        _outcome(fast.encode, it, text, bos, eos, alpha, it, key=key),
                        _outcome(careful._encode_careful, it, *careful_args),
                    ]
                    assert outcome[0] == outcome[1], (text, alpha, key, bos, eos, it)


def test_viterbi_matches_the_0_6_3_algorithm(tok):
    for text in [TEXT, "a" * 300, "的" * 200, "\n\n\nx\n", "", "\r\n\r\nab\r\n", "x" * 40 + "\n" * 5]:
        data = unicodedata.normalize("NFC", text).encode()
        assert tok.tokenize(text) == reference_viterbi(tok, data), text[:20]


def test_tie_breaking_prefers_the_longest_piece():
    # Every piece has the same count, so "ab"+"c" and "a"+"bc" tie exactly; 0.6.3 keeps
    # the edge seen first at each end, i.e. the longest piece ending there ("bc").
    pieces = {bytes([b]): 1 for b in range(256)}
    pieces.update({b"ab": 1, b"bc": 1})
    from bytepiece.model import vocabulary_from_counts

    tok = Tokenizer(vocabulary_from_counts(pieces))
    assert tok.tokenize("abc") == [b"a", b"bc"]
    assert tok.tokenize("abc") == reference_viterbi(tok, b"abc")


def test_0_6_3_api_surface(tok):
    ids = tok.encode(TEXT)
    pieces = tok.tokenize(TEXT)
    assert tok.pieces_to_ids(pieces) == ids
    assert tok.ids_to_pieces(ids) == pieces
    assert [tok.piece_to_id(p) for p in pieces] == ids
    assert tok.id_to_piece(0) == "<pad>" and tok.piece_to_id("<eos>") == 2
    assert tok.encode(TEXT, add_bos=True, add_eos=True) == [1] + ids + [2]
    assert list(tok.encode(TEXT, iter=True)) == ids
    assert list(tok.tokenize(TEXT, iter=True)) == pieces
    assert tok.decode([1] + ids + [2, 0]) == TEXT
    assert tok.vocab_size == len(tok.vocabulary) + 3
    with pytest.raises(KeyError):
        tok.piece_to_id(b"this is surely not a piece")
    with pytest.raises(KeyError):
        tok.id_to_piece(tok.vocab_size)


@pytest.mark.slow
def test_nfc_normalisation_by_default_and_optional(model_path):
    decomposed = "e\u0301te\u0301"
    tok = Tokenizer(model_path)
    assert tok.decode(tok.encode(decomposed)) == unicodedata.normalize("NFC", decomposed)
    raw = Tokenizer(model_path, normalize=False)
    assert raw.decode(raw.encode(decomposed)) == decomposed


@pytest.mark.slow
@pytest.mark.parametrize("text", ["", "\n", "a\r\nb", "\x00\x01 \U0001f600 \u200d", "ｶﾀｶﾅ", "e\u0301"])
def test_round_trip_without_normalisation(model_path, text):
    tok = Tokenizer(model_path, normalize=False)
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(text, alpha=0.5)) == text


def test_bytes_round_trip_exactly(tok):
    data = bytes(range(256)) + b"\xff\xfe\n\n\xe4\xb8" + "你好".encode()
    assert b"".join(tok.tokenize(data)) == data
    assert tok.decode_bytes(tok.encode(data)) == data
    assert tok.decode_bytes(tok.encode(data, alpha=0.2, key=3)) == data


def test_unknown_ids_are_reported(tok):
    with pytest.raises(UnknownIdError, match=str(tok.vocab_size)):
        tok.decode([5, tok.vocab_size])
    with pytest.raises(KeyError):
        tok.decode([-1])
    with pytest.raises(ValueError):
        tok.decode(["x"])
    assert tok.decode(np.array(tok.encode("abc"))) == "abc"


def test_bad_arguments(tok):
    with pytest.raises(TypeError):
        tok.encode(123)
    with pytest.raises(ValueError, match="alpha"):
        tok.encode("x", alpha=float("nan"))
    with pytest.raises(ValueError, match="sampler"):
        tok.encode("x", alpha=0.1, sampler="bogus")
    with pytest.raises(UnicodeEncodeError):
        tok.encode("lone \ud800 surrogate")
    with pytest.raises(ValueError, match="keys has 1 entries for 2 texts"):
        tok.encode_batch(["a", "b"], alpha=0.1, keys=[1])


@pytest.mark.slow
def test_keyed_samples_are_pure_functions(model_path):
    a = Tokenizer(model_path, seed=7)
    b = Tokenizer(model_path, seed=7)
    b.encode(TEXT, alpha=0.1)  # advancing the unkeyed stream changes nothing for keyed calls
    for key in [0, 1, 2**64 - 1, -5, "doc-17", b"k", (3, 41)]:
        assert a.encode(TEXT, alpha=0.1, key=key) == b.encode(TEXT, alpha=0.1, key=key)
    samples = {tuple(a.encode(TEXT, alpha=0.1, key=k)) for k in range(20)}
    assert len(samples) > 10
    c = Tokenizer(model_path, seed=8)
    assert [c.encode(TEXT, alpha=0.1, key=k) for k in range(5)] != [a.encode(TEXT, alpha=0.1, key=k) for k in range(5)]


def test_int_and_str_keys_do_not_collide(tok):
    assert tok.encode(TEXT, alpha=0.1, key=5) != tok.encode(TEXT, alpha=0.1, key="5")


INTEGER_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.intp]


def test_an_integer_key_of_any_type_is_the_equal_python_int(tok):
    """A numpy integer (or any integer type) is the same key as the equal Python int, in
    every entry point; bool, Python's or numpy's, is refused rather than taken for 0/1."""
    import enum

    class Level(enum.IntEnum):
        FIVE = 5

    text = "Hello world, unbelievable tokenizers"
    expected = tok.encode(text, alpha=0.1, key=5)
    for kind in [*INTEGER_TYPES, Level, lambda v: np.array(v)[()]]:
        key = Level.FIVE if kind is Level else kind(5)
        assert tok.encode(text, alpha=0.1, key=key) == expected, kind
        assert tok.tokenize(text, alpha=0.1, key=key) == tok.tokenize(text, alpha=0.1, key=5), kind
        assert tok.sample_distinct(text, 3, alpha=0.1, key=key) == tok.sample_distinct(text, 3, alpha=0.1, key=5)
    for value in (0, 127, 2**63 - 1, 2**64 - 1):  # the key word itself, up to uint64's top
        assert tok.encode(text, alpha=0.1, key=np.uint64(value)) == tok.encode(text, alpha=0.1, key=value)
    for value in (-1, -128):  # negative: hashed, as the equal int is
        assert tok.encode(text, alpha=0.1, key=np.int8(value)) == tok.encode(text, alpha=0.1, key=value)
    # a batch keyed by an array is keyed as by the equal range, on both batch paths
    texts = [text + str(i) for i in range(40)]
    by_range = tok.encode_batch(texts, alpha=0.1, keys=range(40))
    for keys in (np.arange(40), np.arange(40, dtype=np.uint32), list(np.arange(40, dtype=np.int16))):
        assert tok.encode_batch(texts, alpha=0.1, keys=keys) == by_range
        ids, rows = tok.encode_batch(texts, alpha=0.1, keys=keys, as_numpy=True)
        assert [ids[rows[i] : rows[i + 1]].tolist() for i in range(40)] == by_range
    # inside tuple keys and as seeds, too
    assert tok.encode(text, alpha=0.1, key=(np.int64(3), 41)) == tok.encode(text, alpha=0.1, key=(3, 41))
    seeded = Tokenizer(tok.vocabulary, seed=np.uint16(7))
    assert seeded.encode(text, alpha=0.1, key=1) == Tokenizer(tok.vocabulary, seed=7).encode(text, alpha=0.1, key=1)
    for flag in (True, np.True_, np.False_):
        with pytest.raises(TypeError, match="not bool"):
            tok.encode(text, alpha=0.1, key=flag)
    with pytest.raises(TypeError, match="float"):
        tok.encode(text, alpha=0.1, key=np.float64(5))


def test_set_seed_reproduces_the_unkeyed_sequence(model_path):
    tok = Tokenizer(model_path, seed=3)
    first = [tok.encode(TEXT, alpha=0.1) for _ in range(5)]
    assert len({tuple(x) for x in first}) > 1
    tok.set_seed(3)
    assert [tok.encode(TEXT, alpha=0.1) for _ in range(5)] == first


def test_alpha_semantics(tok):
    viterbi = tok.encode(TEXT)
    assert tok.encode(TEXT, alpha=-0.5) == viterbi
    assert tok.encode(TEXT, alpha=1e4, key=1) == viterbi  # alpha -> infinity approaches Viterbi
    assert tok.encode(TEXT, alpha=0.0, key=1) != viterbi


@pytest.mark.slow
def test_large_single_chunk_samples_are_valid(tok):
    data = ("lorem ipsum dolor sit amet " * 40000).encode()  # over 1 MB, one chunk
    for alpha in (0.0, 0.1, 1.0, 50.0):
        pieces = tok.tokenize(data, alpha=alpha, key=str(alpha))
        assert b"".join(pieces) == data


def test_encode_batch_equals_one_by_one(tok):
    texts = [TEXT * (i % 4) + str(i) for i in range(300)]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
    keys = list(range(300))
    expected = [tok.encode(t, alpha=0.3, key=k, add_eos=True) for t, k in zip(texts, keys)]
    for threads in (1, 2, 3):
        assert tok.encode_batch(texts, alpha=0.3, keys=keys, num_threads=threads, add_eos=True) == expected


# Characters that exercise the batch path's own NFC check and UTF-8 encoder: Latin-1, CJK,
# astral, combining marks in and out of order, composition exclusions, singletons, Hangul
# jamo that compose, a Bengali vowel sign that composes (NFC quick check Maybe, class 0).
BATCH_ALPHABET = "aZ \n\x00éÿĀ中文😀\u0301\u0316e\u0958\u2126\uf900ﬁ\u1100\u1161\u11a8가\u09c7\u09be"


@pytest.mark.slow
@pytest.mark.parametrize("normalize", [True, False, "NFKC", "NFD"])
def test_encode_batch_normalises_and_encodes_as_encode_does(model_path, normalize):
    tok = Tokenizer(model_path, seed=5, normalize=normalize)
    rng = np.random.default_rng(11)
    texts = ["".join(rng.choice(list(BATCH_ALPHABET), size=rng.integers(0, 30))) for _ in range(600)]
    texts += [b"\xff\xfe", bytearray(b"ab"), memoryview(b"cd"), "x" * 3000 + "\u0301"]
    expected = [tok.encode(t, alpha=0.2, key=i) for i, t in enumerate(texts)]
    for threads in (1, 2):
        got = tok.encode_batch(texts, alpha=0.2, keys=range(len(texts)), num_threads=threads)
        assert got == expected
        ids, rows = tok.encode_batch(texts, alpha=0.2, keys=range(len(texts)), num_threads=threads, as_numpy=True)
        assert [ids[rows[i] : rows[i + 1]].tolist() for i in range(len(texts))] == expected
    with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
        tok.encode_batch(["ok", "é\ud800"])


@pytest.mark.slow
def test_encode_batch_lists_are_tracked_by_the_cycle_collector(tok):
    import gc

    ids = tok.encode_batch(["some text", "中文", ""] * 100, num_threads=2)
    assert all(gc.is_tracked(row) for row in ids)
    ids[0].append(ids)  # a cycle through a returned list is collectable
    del ids
    assert gc.collect() >= 1


@pytest.mark.slow
def test_nfc_inert_characters_are_those_unicodedata_leaves_alone():
    """The batch path skips unicodedata.normalize for str made of "inert" characters
    (class 0, NFC quick check Yes); check that set against unicodedata itself."""
    from bytepiece._core import text as core_text

    composing = set()
    for c in range(0x110000):
        d = unicodedata.decomposition(chr(c))
        if d and d[0] != "<" and len(d.split()) == 2:
            composing.add(int(d.split()[1], 16))
    assert composing <= core_text.nfc_composing()
    rng = np.random.default_rng(3)
    pages = [0, 3, 9, 0xB, 0xD, 0x10, 0x11, 0x1B, 0x30, 0x4E, 0xAC, 0xD7, 0xF9, 0x1F6, 0x2F8, 0x111, 0x113]
    inert = [c for p in pages for c in core_text.nfc_inert_chars(p)]
    assert all(unicodedata.combining(chr(c)) == 0 and c not in composing for c in inert)
    assert 0x1161 not in inert and 0x09BE not in inert and 0x2126 not in inert and 0xF900 not in inert
    assert 0xD800 not in core_text.nfc_inert_chars(0xD8)
    for _ in range(5000):
        s = "".join(chr(c) for c in rng.choice(inert, size=rng.integers(1, 8)))
        assert unicodedata.is_normalized("NFC", s)


def test_pickle_keeps_keyed_samples_and_renews_unkeyed_stream(tok):
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.encode(TEXT) == tok.encode(TEXT)
    assert copy.encode(TEXT, alpha=0.2, key=11) == tok.encode(TEXT, alpha=0.2, key=11)
    assert copy._stream.word != tok._stream.word


def _sample_in_child(args):
    path, seed = args
    tok = Tokenizer(path, seed=seed)
    return [tok.encode(TEXT, alpha=0.1) for _ in range(3)], tok.encode(TEXT, alpha=0.1, key="k")


@pytest.mark.slow
def test_seeded_sequences_are_the_same_in_a_fresh_process(model_path):
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        child = pool.map(_sample_in_child, [(str(model_path), 99)])[0]
    assert child == _sample_in_child((str(model_path), 99))


def _draw_after_fork(tok, queue):
    queue.put([tok.encode(TEXT, alpha=0.1) for _ in range(3)])


@pytest.mark.slow
def test_forked_children_draw_different_unkeyed_samples(model_path):
    tok = Tokenizer(model_path, seed=5)
    tok.encode(TEXT, alpha=0.1)  # the parent has sampled before forking
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    children = [ctx.Process(target=_draw_after_fork, args=(tok, queue)) for _ in range(2)]
    for child in children:
        child.start()
    results = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
    parent = [tok.encode(TEXT, alpha=0.1) for _ in range(3)]
    assert results[0] != results[1]
    assert parent not in results


def test_threads_share_a_tokenizer_safely(tok):
    texts = [TEXT + str(i) for i in range(200)]
    expected = [tok.encode(t, alpha=0.2, key=i) for i, t in enumerate(texts)]
    viterbi = [tok.encode(t) for t in texts]
    errors, unkeyed = [], []

    def work(offset):
        try:
            for i in range(len(texts)):
                j = (i + offset) % len(texts)
                assert tok.encode(texts[j], alpha=0.2, key=j) == expected[j]
                assert tok.encode(texts[j]) == viterbi[j]
                unkeyed.append(tuple(tok.encode(texts[0], alpha=0.5)))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k * 25,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # Unkeyed draws come from distinct calls of the stream: not one shared sample repeated.
    assert len(set(unkeyed)) > len(unkeyed) // 4


def test_import_is_side_effect_free():
    code = "import bytepiece, sys; print('bytepiece.trainer' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_numpy_comes_with_a_tokenizer_whose_scores_this_machine_has_not_kept(tmp_path):
    """numpy costs a cold start more than everything else together: ``import bytepiece``
    and reading a model leave it unimported (bytepiece._numpy imports it on first use).
    The first Tokenizer of a model imports it for the scores' log, which must be numpy's
    as in BytePiece 0.6.3 (on x86-64 with AVX-512 the C library's differs in the last bit
    now and then, and Viterbi ties would follow those bits), and keeps them
    (score_cache); the next process reads them and never imports numpy, with the same
    scores to the bit and the same ids."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        "import sys, bytepiece\n"
        "assert 'numpy' not in sys.modules, 'imported by import bytepiece'\n"
        "vocab = bytepiece.load_model(sys.argv[1])\n"
        "assert 'numpy' not in sys.modules, 'imported by load_model'\n"
        "tok = bytepiece.Tokenizer(vocab, seed=1)\n"
        "line = 'Hello world, one line to encode.'\n"
        "ids = tok.encode(line)\n"
        "print('numpy' in sys.modules, ids)\n"
        "import numpy as np\n"
        "counts = np.asarray(vocab.counts, dtype=np.float64)\n"
        "expected = np.log(counts) - np.log(float(sum(vocab.counts)))\n"
        "assert tok.piece_log_probs.tobytes() == expected.tobytes(), 'scores are not numpy log'\n"
        "assert tok.encode(line, as_numpy=True).tolist() == ids\n"
    )
    model = os.path.join(root, "tests", "data", "bytepiece_80k.zip")
    env = dict(os.environ, BYTEPIECE_CACHE_DIR=str(tmp_path))
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, model],
            cwd=root,
            env=env,
            check=True,
            timeout=120,
            capture_output=True,
            text=True,
        ).stdout.split(" ", 1)
        for _ in range(2)
    ]
    assert [imported for imported, _ in runs] == ["True", "False"]
    assert runs[0][1] == runs[1][1]
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("size", [10, 3000, 50_000])  # (on the call's stack, and past it)
def test_a_non_ascii_str_encodes_as_its_utf8_and_keeps_no_utf8_copy(tok, size):
    """The core encodes a non-ASCII str into a buffer of its own: the same ids as its
    UTF-8 bytes, keyed samples too, and no UTF-8 copy left cached on the caller's str
    (which would double the memory of a corpus held as str)."""
    text = ("中文 text, ünïcödé and 😀 " * (size // 20 + 1))[:size]
    before = sys.getsizeof(text)
    assert tok.encode(text) == tok.encode(text.encode("utf-8"))
    assert tok.encode(text, alpha=0.2, key=5) == tok.encode(text.encode("utf-8"), alpha=0.2, key=5)
    assert tok.decode(tok.encode(text)) == text
    assert sys.getsizeof(text) == before


def test_a_lone_surrogate_is_refused_naming_its_position(tok):
    for text in ("ab\ud800cd", "中\udfff" + "文" * 10_000):
        with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
            tok.encode(text)
        with pytest.raises(UnicodeEncodeError):
            tok.encode(text, alpha=0.1)


def test_stochastok_with_a_large_p_stops_once_nothing_is_left_to_split(tok):
    """stochastok drew all 2 * p * len(ids) random numbers up front, as Python lists, and
    went on attempting splits after every token was split as far as it goes: p=1e6 on 7
    ids took seconds and 634 MB, p=3e7 raised MemoryError. Memory is bounded now (the
    numbers come in blocks) and the attempts stop when no token can be split."""
    import tracemalloc

    text = "Tokenization is a fine thing to do"
    ids = tok.encode(text)
    tok.stochastok(ids, 1.0, key=0)  # (builds the table of splits, kept for every later call)
    peaks = {}
    for p in (10.0, 1e5):
        tracemalloc.start()
        try:
            out = tok.stochastok(ids, p, key=1)
            peaks[p] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # (each call copies the table of splits, some 10 MB: the same for any p)
    grown = peaks[1e5] - peaks[10.0]
    assert grown < 1 << 20, f"p=1e5 held {grown / 2**20:.1f} MB more than p=10 on {len(ids)} ids"
    assert tok.decode(out) == text and len(out) <= len(text)
    assert not any(tok._splitter.splits(t) for t in out)  # (split as far as it goes)
    # The most attempts a call may make (2**28, once 4 GB of random numbers): at once.
    most = tok.stochastok(ids, stochastok.MAX_ATTEMPTS / len(ids), key=1)
    assert tok.decode(most) == text and not any(tok._splitter.splits(t) for t in most)


# Produced by stochastok before its random numbers were drawn in blocks (when it drew
# `where = rng.random(attempts)`, then `which = rng.random(attempts)`, up front), with
# the `tok` fixture: keyed results must stay what they were, so the blocks must read the
# same numbers in the same order. (text, p, key, max_splits, the ids it gave)
_STOCHASTOK_BEFORE_BLOCKS = [
    ("Tokenization is a fine thing to do", 1.0, 1, None, "87 114 110 104 113 108 125 1260 4271 14911 9127 35 36705"),
    (
        "Tokenization is a fine thing to do",
        3.0,
        "golden",
        None,
        "87 114 110 104 113 23444 35 108 4608 35 105 1325 104 35 1421 4268 2261 2196",
    ),
    (
        TEXT,
        0.5,
        7,
        None,
        "11962 15659 36 2142 1341 113 1332 4121 15386 35 1420 1452 2486 5022 18758 18169 4894 18281 1694 172 5951 "
        "18165 1657 133 13 12 4058 35 105 2381 61 13 20019 35 23815 123 35 402 270 13",
    ),
    (
        TEXT,
        2.0,
        (3, "x"),
        10,
        "11962 15659 36 2142 1341 113 108 125 1294 118 35 13599 35 9984 49 13 13 5022 18758 18169 230 131 133 18281 "
        "5360 5951 18165 10240 12 4058 35 9099 61 13 24238 23815 123 35 402 270 13",
    ),
    ("tokenizer", 1000.0, 2, None, "119 114 110 104 113 108 125 104 117"),
]


@pytest.mark.parametrize("block", [None, 1, 3])  # (None: the module's own block size)
def test_stochastok_keyed_results_are_those_drawn_before_blocks(tok, monkeypatch, block):
    """A golden test of the order of stochastok's draws: blocks of any size (1 and 3 put a
    block boundary everywhere) give the results of the code that drew them up front."""
    if block is not None:
        monkeypatch.setattr(stochastok, "DRAW_BLOCK", block)
    for text, p, key, max_splits, before in _STOCHASTOK_BEFORE_BLOCKS:
        ids, expected = tok.encode(text), [int(i) for i in before.split()]
        assert tok.stochastok(ids, p, key=key, max_splits=max_splits) == expected
        as_array = tok.stochastok(np.array(ids, dtype=tok.id_dtype), p, key=key, max_splits=max_splits)
        assert as_array.tolist() == expected


def test_lookups_of_an_iterator_name_its_first_unknown_item(tok):
    """ids_to_pieces and pieces_to_ids read a generator, then looked for the bad item in
    what was left of it: StopIteration when it was the last, the wrong item when another
    bad one followed."""
    with pytest.raises(UnknownIdError, match="id -1 is not in the vocabulary"):
        tok.ids_to_pieces(i for i in [100, -1])
    with pytest.raises(UnknownIdError, match="id 1000000 is not in the vocabulary"):
        tok.ids_to_pieces(iter([10**6, 5, -1]))
    with pytest.raises(UnknownPieceError, match="b'not-a-piece!' is not a piece"):
        tok.pieces_to_ids(p for p in [b"a", b"not-a-piece!"])
    with pytest.raises(UnknownPieceError, match="b'zz1' is not a piece"):
        tok.pieces_to_ids(iter([b"zz1", b"a", b"zz2"]))
    with pytest.raises(UnknownIdError, match="id -2 is not in the vocabulary"):
        tok.decode(i for i in [100, -2, -1])
    assert tok.ids_to_pieces(i for i in [100, 101]) == [b"a", b"b"]
    assert tok.pieces_to_ids(p for p in [b"a", b"b"]) == [100, 101]


@pytest.mark.parametrize("bad", [True, False, np.True_, 100.0, 1.0])
def test_bools_and_floats_are_not_ids_anywhere(tok, bad):
    """id_to_piece(True) gave '<bos>' and id_to_piece(100.0) gave b'a' (dict lookups of
    equal keys), while decode([100.0]) was an UnknownIdError: the lookups refuse them now,
    with decode's error. (decode still reads a bool as the special id 0 or 1, which
    writes nothing: checking for one would cost it a third of its time.)"""
    message = f"id {bad!r} is not in the vocabulary"
    calls = [
        lambda: tok.id_to_piece(bad),
        lambda: tok.ids_to_pieces([100, bad]),
        lambda: tok.stochastok([100, bad], 1.0, key=1),
    ]
    if isinstance(bad, float):
        calls += [lambda: tok.decode([bad, 100]), lambda: tok.decode_bytes([100, bad])]
    for call in calls:
        with pytest.raises(UnknownIdError, match=re.escape(message)):
            call()
    assert tok.decode(np.array([1, 100], dtype=np.int64)) == "a"  # (integers of any type: ids)
    assert tok.ids_to_pieces(np.array([1, 100])) == ["<bos>", b"a"]
    assert tok.id_to_piece(np.uint16(100)) == b"a" and tok.decode([np.int64(1), 100]) == "a"


def test_bytes_like_pieces_are_looked_up_alike(tok):
    """piece_to_id(memoryview(b"a")) gave 100 and piece_to_id(bytearray(b"a")) raised
    UnknownPieceError: bytes, bytearray and memoryview are the same piece now."""
    for piece in (b"a", bytearray(b"a"), memoryview(b"a"), np.bytes_(b"a")):
        assert tok.piece_to_id(piece) == 100
        assert tok.pieces_to_ids([b"b", piece]) == [101, 100]
    with pytest.raises(UnknownPieceError, match=re.escape("bytearray(b'zzz!') is not a piece")):
        tok.piece_to_id(bytearray(b"zzz!"))
    with pytest.raises(UnknownPieceError, match=re.escape("bytearray(b'zzz!') is not a piece")):
        tok.pieces_to_ids([bytearray(b"a"), bytearray(b"zzz!")])
