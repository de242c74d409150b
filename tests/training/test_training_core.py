"""The Cython training primitives against small pure-Python oracles."""

from __future__ import annotations

import math
import pickle
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece._core.ngram_model import NgramModel, count_pieces_block, finish_ngrams
from bytepiece._core.ngram_table import NgramTable, count_ngrams_block
from bytepiece._core.piece_table import PieceTable

# Small alphabets make repeated n-grams (and ties) likely.
ALPHABET = st.sampled_from([b"a", b"b", b"\n", b" ", "中".encode(), "é".encode(), b"\xff"])
CHUNK = st.lists(ALPHABET, min_size=1, max_size=40).map(b"".join)
CHUNKS = st.lists(CHUNK, min_size=1, max_size=8)


def brute_ngrams(chunks, order):
    counts = [Counter() for _ in range(order + 1)]
    for c in chunks:
        for i in range(len(c)):
            for L in range(order + 1):
                if i + L <= len(c):
                    counts[L][c[i : i + L]] += 1
    return counts


def reference_logprobs(chunks, order, min_count):
    """log c(k) - log c(k[:-1]) as BytePiece 0.6.3's prune_ngrams computes it."""
    counts = brute_ngrams(chunks, order)
    for b in range(256):
        if counts[1][bytes([b])] == 0:
            counts[1][bytes([b])] = 1
            counts[0][b""] += 1
    logp = {}
    for L in range(1, order + 1):
        for k, v in counts[L].items():
            if L == 1 or v >= min_count:
                logp[k] = math.log(v) - math.log(counts[L - 1][k[:-1]])
    return logp


def reference_tag(chunk, logp, order, ensure_unicode):
    """The tagging Viterbi of 0.6.3 (numpy, first maximum wins), written from DESIGN.md."""
    n = len(chunk)
    nodes = np.full((n, order), -np.inf)
    for j in range(order):
        for i in range(j, n):
            nodes[i, j] = logp.get(chunk[i - j : i + 1], -np.inf)
    if ensure_unicode:
        arr = np.frombuffer(chunk, dtype=np.uint8)
        nodes[(arr >= 128) & (arr < 192), 0] = -np.inf
    trans = np.full((order, order), -np.inf)
    for i in range(order):
        trans[i, 0] = 0
        trans[i, min(i + 1, order - 1)] = 0
    routes = np.zeros((max(n - 1, 0), order), dtype=int)
    for i in range(1, n):
        scores = nodes[i - 1][:, None] + trans + nodes[i]
        routes[i - 1] = scores.argmax(0)
        nodes[i] = scores.max(0)
    path = [int(nodes[-1].argmax())]
    for i in range(1, n):
        path.append(int(routes[-i][path[-1]]))
    path = np.array(path[::-1])
    cuts = list(np.where(path == 0)[0]) + [n]
    return [chunk[s:e] for s, e in zip(cuts, cuts[1:])]


@settings(max_examples=60, deadline=None)
@given(CHUNKS, st.integers(1, 8))
def test_ngram_counts_match_brute_force(chunks, order):
    table = count_ngrams_block(chunks, order)
    ref = brute_ngrams(chunks, order)
    assert table.total == ref[0][b""]
    for L in range(1, order + 1):
        assert table.items(L) == sorted(ref[L].items())


@settings(max_examples=40, deadline=None)
@given(CHUNKS, CHUNKS, CHUNKS)
def test_ngram_merge_is_associative_and_pickles(a, b, c):
    def t(x):
        return count_ngrams_block(x, 4)

    left = t(a).merge(t(b)).merge(t(c))
    right = t(a).merge(t(b).merge(t(c)))
    whole = t(a + b + c)
    for L in range(5):
        assert left.items(L) == right.items(L) == whole.items(L)
    again = pickle.loads(pickle.dumps(whole))
    assert all(again.items(L) == whole.items(L) for L in range(5))
    assert NgramTable.from_bytes(whole.to_bytes()).items(3) == whole.items(3)


def test_ngram_budget_drops_rarest_and_records_it():
    chunks = [bytes([i % 251, (i * 7) % 253, (i * 13) % 255]) * 3 for i in range(400)] + [b"abcabc" * 50]
    exact = count_ngrams_block(chunks, 3)
    capped = count_ngrams_block(chunks, 3, budget=200)
    assert exact.pruned_below == 0 and capped.pruned_below >= 2
    assert len(capped) < len(exact)
    # counts never exceed the exact ones (a dropped n-gram may come back with a
    # partial count); the frequent n-grams survive with exact counts
    for L in (2, 3):
        full = dict(exact.items(L))
        for k, v in capped.items(L):
            assert 1 <= v <= full[k]
    assert capped.get(b"abc") == exact.get(b"abc")
    roomy = count_ngrams_block(chunks, 3, budget=10**6)
    assert roomy.pruned_below == 0 and roomy.items(3) == exact.items(3)


@settings(max_examples=80, deadline=None)
@given(CHUNKS, st.integers(1, 6), st.integers(1, 3), st.booleans())
def test_tagging_viterbi_matches_reference(chunks, order, min_count, ensure_unicode):
    model = NgramModel.from_table(count_ngrams_block(chunks, order), min_count)
    logp = reference_logprobs(chunks, order, min_count)
    for k, v in logp.items():
        assert model.logprob(k) == v
    for c in chunks:
        assert model.tokenize(c, ensure_unicode) == reference_tag(c, logp, order, ensure_unicode)
    table = count_pieces_block(chunks, model, ensure_unicode)
    expected = Counter(p for c in chunks for p in reference_tag(c, logp, order, ensure_unicode))
    assert table.items() == sorted(expected.items())
    again = pickle.loads(pickle.dumps(model))
    assert all(again.tokenize(c, ensure_unicode) == model.tokenize(c, ensure_unicode) for c in chunks)


def test_tagging_rare_character_quirk():
    # A rare multi-byte character has no 2-gram: every state of its continuation
    # byte is -inf, and 0.6.3 then cuts the rest of the chunk into single bytes.
    chunks = ["天地天地天地".encode()] * 3 + ["天地龘天地".encode()]
    model = NgramModel.from_table(count_ngrams_block(chunks, 6), 2)
    logp = reference_logprobs(chunks, 6, 2)
    pieces = model.tokenize(chunks[-1])
    assert pieces == reference_tag(chunks[-1], logp, 6, True)
    assert b"".join(pieces) == chunks[-1]


def test_pair_counts():
    chunks = [b"ab ab ab ab\n"] * 4
    model = NgramModel.from_table(count_ngrams_block(chunks, 2), 2)
    pieces, pairs = count_pieces_block(chunks, model, True, 36)
    seg = model.tokenize(chunks[0])
    expected = Counter(seg[i] + seg[i + 1] for i in range(len(seg) - 1))
    assert pairs.items() == sorted((k, 4 * v) for k, v in expected.items())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=20), st.integers(1, 5))), st.lists(st.binary(max_size=5)))
def test_piece_table_is_a_counter(adds, more):
    table, ref = PieceTable(), Counter()
    for p, c in adds:
        table.add(p, c)
        ref[p] += c
    other = PieceTable()
    for p in more:
        other.add(p)
        ref[p] += 1
    table.merge(other)
    assert table.items() == sorted(ref.items()) and len(table) == len(ref)
    assert all(table.get(p) == c for p, c in ref.items())
    assert pickle.loads(pickle.dumps(table)).items() == table.items()


def test_order_limits():
    with pytest.raises(ValueError, match="order"):
        NgramTable(9)
    with pytest.raises(ValueError, match="order"):
        NgramTable(0)
    with pytest.raises(ValueError, match="merge"):
        NgramTable(3).merge(NgramTable(4))


def test_candidates_are_whole_characters():
    chunks = ["中文 ab 中文 ab\n".encode()] * 3
    table = count_ngrams_block(chunks, 6)
    keys, counts = table.candidates(2, 1000)
    assert len(keys) == len(counts) and len(set(keys)) == len(keys)
    scores = [c * len(k) for k, c in zip(keys, counts)]
    assert scores == sorted(scores, reverse=True)
    assert all(table.get(k) == c for k, c in zip(keys, counts))
    top, _ = table.candidates(2, 3)
    assert top == keys[:3]
    for k in keys:
        k.decode("utf-8")  # whole characters only
        assert 2 <= len(k) <= 6
    assert "中文".encode() in keys and b" ab " in keys


def _model_bytes(order, uni, tables):
    """A serialised NgramModel (the to_bytes layout) from {length: {ngram: logp}}."""
    import struct

    parts = [struct.pack("<8sq", b"BPNGMOD1", order), np.asarray(uni, dtype="<f8").tobytes()]
    for L in range(2, order + 1):
        items = sorted(tables.get(L, {}).items())
        keys = [int.from_bytes(k, "little") for k, _ in items]
        parts += [
            struct.pack("<q", len(items)),
            np.asarray(keys, dtype="<u8").tobytes(),
            np.asarray([v for _, v in items], dtype="<f8").tobytes(),
        ]
    return b"".join(parts)


@settings(max_examples=40, deadline=None)
@given(CHUNKS, st.integers(2, 8), st.booleans(), st.data())
def test_tagging_with_a_model_that_is_not_suffix_closed(chunks, order, ensure_unicode, data):
    """Models made of counts are suffix-closed and the tagger stops at the first missing
    n-gram; a model read from bytes that is not must be tagged the long way, same result."""
    logp = reference_logprobs(chunks, order, 1)
    long_ones = sorted(k for k in logp if len(k) >= 3)
    if long_ones:  # drop some shorter n-grams, keeping the longer ones that contain them
        for k in data.draw(st.lists(st.sampled_from(long_ones), max_size=3)):
            logp.pop(k[1:], None)
    uni = [logp[bytes([b])] for b in range(256)]
    tables = {}
    for k, v in logp.items():
        if len(k) >= 2:
            tables.setdefault(len(k), {})[k] = v
    model = NgramModel.from_bytes(_model_bytes(order, uni, tables))
    for c in chunks:
        assert model.tokenize(c, ensure_unicode) == reference_tag(c, logp, order, ensure_unicode)


def test_models_of_counts_are_suffix_closed_even_with_eight_0xff():
    chunks = [b"\xff" * 20, b"ab\xff" * 9 + b"\xff" * 9]
    for budget in (0, 40):
        model = NgramModel.from_table(count_ngrams_block(chunks, 8, budget), 1)
        assert model.suffix_closed
        assert model.logprob(b"\xff" * 8) > -math.inf
    logp = reference_logprobs(chunks, 8, 1)
    model = NgramModel.from_table(count_ngrams_block(chunks, 8), 1)
    for k, v in logp.items():
        assert model.logprob(k) == v
    for c in chunks:
        assert model.tokenize(c) == reference_tag(c, logp, 8, True)
    again = pickle.loads(pickle.dumps(model))
    assert again.suffix_closed and again.logprob(b"\xff" * 8) == model.logprob(b"\xff" * 8)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.binary(max_size=12), st.integers(1, 5), max_size=40), st.integers(1, 4), st.integers(1, 10))
def test_piece_table_sorted_exports_and_partition(counts, min_count, max_length):
    table = PieceTable()
    for k, v in counts.items():
        table.add(k, v)
    ordered = sorted(counts.items())
    assert table.items() == ordered
    assert list(table.to_dict(min_count).items()) == [(k, v) for k, v in ordered if v >= min_count]
    pieces, weights = table.pieces_and_counts()
    assert sorted(zip(pieces, weights.tolist())) == ordered
    # partition == 0.6.3's Python loop over a dict
    ref = dict(ordered)
    for b in range(256):
        ref.setdefault(bytes([b]), 1)
    keep_ref = {k: v for k, v in ref.items() if len(k) == 1 or (len(k) <= max_length and v >= min_count)}
    drop_ref = sorted((k, v) for k, v in ref.items() if k not in keep_ref)
    keep, (dropped, dropped_counts) = table.partition(min_count, max_length)
    assert list(keep.items()) == list(keep_ref.items())
    assert dropped_counts.dtype == np.int64 and len(dropped) == len(dropped_counts)
    assert sorted(zip(dropped, dropped_counts.tolist())) == drop_ref


@settings(max_examples=60, deadline=None)
@given(st.lists(CHUNKS, min_size=1, max_size=4), st.integers(1, 8), st.sampled_from([0, 5, 20, 60, 400]))
def test_compact_counting_equals_full_counting(blocks, order, budget):
    """Compact tables (the longest n-gram per position) give the very counts of full
    counting, through merges and pickling, until the budget is hit; past it both drop
    the rarest n-grams (in different ways) and never count more than there is."""

    def run(compact):
        acc = None
        for chunks in blocks:
            t = count_ngrams_block(chunks, order, budget, compact)
            t = pickle.loads(pickle.dumps(t))
            acc = t if acc is None else acc.merge(t)
        return acc

    full, compact = run(False), run(True)
    assert not full.compact
    ref = brute_ngrams([c for chunks in blocks for c in chunks], order)
    if full.pruned_below == 0 and compact.pruned_below == 0:
        assert NgramTable.from_bytes(compact.to_bytes()).items(order) == full.items(order)
        for L in range(order + 1):
            assert compact.items(L) == full.items(L)
        assert len(compact) == len(full) and not compact.compact
    else:
        assert budget > 0
        for table in (full, compact):
            for L in range(1, order + 1):
                assert all(0 < count <= ref[L][gram] for gram, count in table.items(L))
    if budget == 0:
        assert all(full.items(L) == sorted(ref[L].items()) for L in range(1, order + 1))


def test_compact_and_full_tables_merge_either_way():
    a = count_ngrams_block([b"abcabcabd", b"xy"], 4)
    b = count_ngrams_block([b"cabcab"], 4, compact=False)
    assert a.compact and not b.compact
    whole = count_ngrams_block([b"abcabcabd", b"xy", b"cabcab"], 4, compact=False)
    c = count_ngrams_block([b"cabcab"], 4)
    assert c.merge(count_ngrams_block([b"abcabcabd", b"xy"], 4, compact=False)).items(2) == whole.items(2)
    merged = a.merge(b)
    assert all(merged.items(L) == whole.items(L) for L in range(5))
    again = pickle.loads(pickle.dumps(count_ngrams_block([b"abcabcabd"], 4)))
    assert again.compact and again.get(b"ab") == 3 and not again.compact


def test_a_compact_table_over_its_budget_folds_what_it_drops_into_the_prefixes():
    """Over its budget a compact table stays compact (one hash update per byte) and drops
    its rarest entries into their prefixes: the shorter n-grams keep (nearly) their whole
    counts, which dropping alone would not give (every occurrence of "ab" here is the
    start of a rare 6-gram, and most 6-grams are dropped)."""
    import random

    rng = random.Random(5)
    chunks = [b"ab" + bytes(rng.choice(b"cdefghijklmnop") for _ in range(6)) for _ in range(3000)]
    chunks += [bytes(rng.choice(b"abcde\n\xe4\xb8\xad") for _ in range(rng.randint(1, 30))) for _ in range(700)]
    exact = count_ngrams_block(chunks, 6)
    for budget in (100, 400, 1500, 5000):
        capped = count_ngrams_block(chunks, 6, budget)
        assert capped.compact and capped.pruned_below >= 2
        assert len(capped) < len(exact)
        for L in range(1, 7):
            everything = dict(exact.items(L))
            assert all(0 < count <= everything[gram] for gram, count in capped.items(L))
        # (a prefix's own entry, made of folded counts, can still fall under a threshold
        # and be dropped: "ab" loses a few occurrences at the smallest budgets)
        assert capped.get(b"ab") >= 0.95 * exact.get(b"ab")
        assert capped.get(b"a") == exact.get(b"a") and capped.get(b"") == exact.get(b"")
        if budget >= 1500:
            pairs = sum(count for _, count in capped.items(2))
            assert pairs >= 0.99 * sum(count for _, count in exact.items(2))


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.binary(max_size=20), st.integers(1, 2**40), max_size=50))
def test_piece_table_bytes_layout_round_trips(counts):
    """to_bytes writes the BPPIECE1 layout of count files (read here with struct)."""
    import struct

    table = PieceTable()
    for k, v in counts.items():
        table.add(k, v)
    data = table.to_bytes()
    magic, n = struct.unpack_from("<8sq", data, 0)
    off, items = 16, []
    for _ in range(n):
        c, length = struct.unpack_from("<qq", data, off)
        items.append((data[off + 16 : off + 16 + length], c))
        off += 16 + length
    assert magic == b"BPPIECE1" and off == len(data) and sorted(items) == sorted(counts.items())
    assert PieceTable.from_bytes(data).items() == table.items() == pickle.loads(pickle.dumps(table)).items()
    if counts:
        with pytest.raises(ValueError):
            PieceTable.from_bytes(data[:-1] if len(data) > 16 + 16 else data[:20])


@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize("threads", [1, 3])
def test_finish_ngrams_matches_from_table_and_candidates(compact, threads):
    """finish_ngrams (level by level, on threads) gives the model of from_table and the
    candidates of candidates(), whatever the number of threads."""
    chunks = [("abcabc 中文中文 " * 7 + str(i)).encode() for i in range(40)] + ["héllo wörld ".encode() * 3]
    ref_table = count_ngrams_block(chunks, 6, compact=compact)
    ref_keys, ref_counts = ref_table.candidates(2, 25)
    ref = NgramModel.from_table(ref_table, 2)
    table = count_ngrams_block(chunks, 6, compact=compact)
    model, (keys, counts) = finish_ngrams(table, 2, 25, threads)
    assert keys == ref_keys and counts.tolist() == ref_counts.tolist()
    assert model.size == ref.size and model.suffix_closed == ref.suffix_closed
    for L in range(2, 7):
        for gram, _ in ref_table.items(L):
            assert model.logprob(gram) == ref.logprob(gram)
    assert not table.compact and len(table) == len(ref_table)
    assert finish_ngrams(count_ngrams_block(chunks, 6), 2, 0, threads)[1][0] == []


@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("release", [False, True])
def test_ngram_candidates_match_candidates(compact, threads, release):
    """ngram_candidates (level by level, on threads, no model) picks the candidates of
    candidates(), whatever the number of threads; release=True spends the table but
    its len() still answers."""
    from bytepiece._core.ngram_table import ngram_candidates

    chunks = [("abcabc 中文中文 " * 7 + str(i)).encode() for i in range(40)] + ["héllo wörld ".encode() * 3]
    ref_table = count_ngrams_block(chunks, 6, compact=compact)
    for limit in (25, 10_000):
        ref_keys, ref_counts = ref_table.candidates(2, limit)
        table = count_ngrams_block(chunks, 6, compact=compact)
        keys, counts = ngram_candidates(table, 2, limit, threads, release)
        assert keys == ref_keys and counts.tolist() == ref_counts.tolist() and len(keys) > 0
        assert len(table) == len(ref_table)
        if release:
            with pytest.raises(ValueError):
                table.get(b"abc")
        else:
            assert table.get(b"abc") == ref_table.get(b"abc") > 0
    assert ngram_candidates(count_ngrams_block(chunks, 6), 2, 0, threads)[0] == []


def test_ngram_candidates_in_bytes_order_and_merged_with_the_single_bytes():
    """bytes_order=True: the same candidates and counts, in bytes order (keys holding zero
    bytes and prefixes of each other included); the trainer's merge of them with the 256
    single bytes is the bytes order of the whole."""
    from bytepiece._core.ngram_table import ngram_candidates
    from bytepiece.training.em import with_single_bytes

    chunks = [("abcabc 中文中文 " * 7 + str(i)).encode() for i in range(40)] + [b"a\x00b a\x00 \x00\x00a " * 5]
    for limit in (25, 10_000):
        keys, counts = ngram_candidates(count_ngrams_block(chunks, 6), 2, limit, 2)
        ordered, ordered_counts = ngram_candidates(count_ngrams_block(chunks, 6), 2, limit, 2, bytes_order=True)
        assert ordered == sorted(keys) and len(keys) > 20
        assert dict(zip(ordered, ordered_counts.tolist())) == dict(zip(keys, counts.tolist()))
        singles = {bytes([c]): c + 1 for c in range(256)}
        pieces, merged = with_single_bytes(ordered, ordered_counts, singles)
        assert pieces == sorted(list(singles) + ordered)
        want = dict(zip(ordered, ordered_counts.tolist()))
        want.update(singles)
        assert merged.dtype == np.float64 and merged.tolist() == [float(want[p]) for p in pieces]
    assert any(b"\x00" in k for k in ordered)


def test_candidates_ties_at_the_limit():
    """Only the entries scoring at least the limit-th score are sorted: ties there are cut
    by length, then packed key, as a full sort would."""
    table = count_ngrams_block([b"ab", b"cd", b"ef", b"abc", b"xyz"] * 3, 3)
    everything, _ = table.candidates(1, 1000)
    for limit in range(len(everything) + 1):
        assert table.candidates(1, limit)[0] == everything[:limit]


@given(st.lists(st.binary(max_size=20), max_size=60))
def test_bytes_order_sorts_by_bytes(items):
    from bytepiece._core.piece_table import bytes_order

    # the 8-byte heads tie often here (prefixes, zero bytes), so the memcmp path is exercised
    items = list(dict.fromkeys(items + [b"abcdefgh", b"abcdefgh\x00", b"abcdefghi", b"\x00", b""]))
    order = bytes_order(items)
    assert order.tolist() == sorted(range(len(items)), key=items.__getitem__)
    assert bytes_order([]).tolist() == []
    with pytest.raises(TypeError, match="sorts bytes"):
        bytes_order([b"a", "b"])


def test_chunk_keys_are_blake2b():
    """The sample keys computed in C are the trainer's chunk_key (hashlib's BLAKE2b of
    digest size 8, little-endian), at every length around the 128-byte block size."""
    import os

    from bytepiece._core.chunk_keys import chunk_keys
    from bytepiece.training.sample import chunk_key

    chunks = [os.urandom(n) for n in range(400)] + [b"", "中文".encode() * 1000]
    assert chunk_keys(chunks).tolist() == [chunk_key(c) for c in chunks]
    assert chunk_keys([]).tolist() == []


@pytest.mark.parametrize("threads", [1, 2])
def test_finish_ngrams_release_frees_the_table(threads):
    """release=True gives the same model and candidates, and leaves a spent table whose
    len() still answers and whose other uses raise."""
    chunks = [("abcabc 中文中文 " * 7 + str(i)).encode() for i in range(40)]
    ref_table = count_ngrams_block(chunks, 6)
    ref_model, ref_cands = finish_ngrams(ref_table, 2, 25, threads)
    table = count_ngrams_block(chunks, 6)
    model, cands = finish_ngrams(table, 2, 25, threads, release=True)
    assert model.to_bytes() == ref_model.to_bytes() or model.size == ref_model.size
    for L in range(2, 7):
        for gram, _ in ref_table.items(L):
            assert model.logprob(gram) == ref_model.logprob(gram)
    assert cands[0] == ref_cands[0] and cands[1].tolist() == ref_cands[1].tolist()
    assert table.released and len(table) == len(ref_table) and table.total == ref_table.total
    for use in (
        lambda: table.get(b"ab"),
        lambda: table.items(2),
        lambda: table.merge(ref_table),
        lambda: pickle.dumps(table),
        lambda: table.count([b"x"]),
        lambda: finish_ngrams(table, 2),
    ):
        with pytest.raises(ValueError, match="released"):
            use()


def test_batch_loops_refuse_items_that_are_not_bytes():
    """Every loop that reads a list of bytes without the GIL refuses str and None
    up front (None would otherwise be read as a bytes object)."""
    from bytepiece._core import em
    from bytepiece._core.chunk_keys import chunk_keys
    from bytepiece._core.lattice import Lattice
    from bytepiece._core.pair_counts import PairCounts

    lattice = Lattice([bytes([b]) for b in range(256)], np.full(256, -5.5), np.arange(256))
    calls = [
        lambda items: em.expected_counts(lattice, items, np.zeros(256)),
        lambda items: em.split_scores(lattice, items),
        lambda items: em.count_viterbi_pairs(lattice, items, [1] * len(items), PairCounts(256)),
        lambda items: NgramTable(3).count(items),
        lambda items: chunk_keys(items),
    ]
    for call in calls:
        call([b"ok", b""])
        for bad in ([b"ok", None], ["text"]):
            with pytest.raises(TypeError):
                call(bad)


# ---------------------------------------------------------------------------
# Big tables: from 2 MB on, their own mappings (_bigmem.pxd)


def test_tables_past_the_mapping_size_count_exactly():
    """Tables of several MB (mapped, not malloc'd; the piece arena grown by copying
    across the 2 MB line) hold the same counts as Python's Counter."""
    import random

    rng = random.Random(7)
    chunks = [bytes(rng.randrange(256) for _ in range(4000)) for _ in range(60)]  # random: ~240k distinct 4-grams
    table = count_ngrams_block(chunks, 4, compact=False)
    assert table.nbytes > 4 << 20
    want = Counter(c[i : i + 4] for c in chunks for i in range(len(c) - 3))
    for gram in rng.sample(sorted(want), 2000):
        assert table.get(gram) == want[gram]
    pieces = PieceTable()
    words = [rng.randbytes(40 + i % 25) for i in range(80_000)]  # ~4 MB of distinct bytes
    for i, w in enumerate(words):
        pieces.add(w, 1 + i % 3)
    pieces.add(words[5], 10)
    got = pieces.to_dict()
    assert len(got) == len(words) and got[words[5]] == 1 + 5 % 3 + 10
    assert all(got[w] == 1 + i % 3 for i, w in enumerate(words) if i != 5)


def test_freed_big_tables_go_back_to_the_system():
    """A table made again and again holds only itself, and nothing stays resident once
    it is freed. (From malloc, measured: glibc maps the first big blocks, but each free
    raises its threshold, so from the second table on the smaller generations it
    outgrows as it doubles come from the heap and stay resident under it: 1.64x its
    size while it lives.) Run in a fresh process: a training run in this one changes
    glibc's settings."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import os, random
        from bytepiece._core.ngram_table import count_ngrams_block
        page = os.sysconf("SC_PAGE_SIZE")
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page
        rng = random.Random(1)
        chunks = [rng.randbytes(4000) for _ in range(100)]
        count_ngrams_block(chunks[:1], 4, compact=False)      # (first use: imports, caches)
        base = rss()
        for _ in range(4):
            table = count_ngrams_block(chunks, 4, compact=False)
            size, held = table.nbytes, rss() - base
            del table
            print(size, held, rss() - base)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    for line in out.split("\n")[:-1]:
        size, held, left = map(int, line.split())
        assert size > 8 << 20 and held < 1.2 * size and left < 0.1 * size, out


# ---------------------------------------------------------------------------
# 0.6.3's re-segmentation on the one weighted-Viterbi-count engine


def test_resegment_sums_like_python_and_keeps_int_and_float_counts():
    """resegment adds each text's count to the pieces of its Viterbi split (as a Python
    loop over the lattice's splits would, on one or several threads); a piece's total
    is an int when every count it received was one, a float otherwise."""
    from bytepiece._core.lattice import Lattice
    from bytepiece.training.prune import SLICE_TEXTS, resegment

    rng = np.random.default_rng(4)
    keep = {bytes([b]): int(1 + b % 5) for b in range(256)}
    keep.update({bytes(rng.integers(97, 103, rng.integers(2, 5)).astype(np.uint8)): 7 for _ in range(60)})
    keys = list(keep)
    values = np.array(list(keep.values()), dtype=np.float64)
    lattice = Lattice(keys, np.log(values) - np.log(sum(keep.values())), np.arange(len(keys)))
    texts = [bytes(rng.integers(96, 104, rng.integers(1, 12)).astype(np.uint8)) for _ in range(SLICE_TEXTS + 500)]
    for counts in (
        [int(c) for c in rng.integers(1, 9, len(texts))],
        [float(c) + 0.25 for c in rng.integers(1, 9, len(texts))],
        [int(c) if i % 3 else float(c) + 0.5 for i, c in enumerate(rng.integers(1, 9, len(texts)))],
    ):
        want: dict = {}
        for text, count in zip(texts, counts):
            for i in lattice.segment(text, chunked=False)[0].tolist():
                want[keys[i]] = want.get(keys[i], 0) + count
        for workers in (1, 2):
            got = resegment(keep, texts, counts, workers)
            assert got == want and list(got) == [k for k in keys if k in want]
            assert [type(v) for v in got.values()] == [type(want[k]) for k in got]
    ints = np.array([int(c) for c in rng.integers(1, 9, len(texts))], dtype=np.int64)
    assert all(type(v) is int for v in resegment(keep, texts, ints).values())


# Heavy repetition (the per-length buffers of the sorted pass fill and are cut back),
# zero bytes (an n-gram and its extension by zero bytes have the same sort key), and
# chunks shorter than the order (tails of every length).
SORT_ALPHABET = st.sampled_from([b"a", b"b", b"\x00", b" ", "中".encode(), "é".encode(), b"\xff", b"ab\x00"])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(SORT_ALPHABET, max_size=60).map(b"".join), min_size=1, max_size=30),
    st.integers(3, 8),
    st.integers(1, 3),
    st.sampled_from([0, 1, 3, 40, 100_000]),
    st.booleans(),
)
def test_candidates_by_sorting_a_compact_table_equal_those_of_its_expansion(
    chunks, order, min_count, limit, bytes_order
):
    """A spent compact table (release=True) gives its candidates by sorting its entries in
    place, never expanding it: the same candidates and counts, in either order, on any
    number of threads, and len() still says how many distinct n-grams it held."""
    from bytepiece._core.ngram_table import candidates_by_sorting, ngram_candidates

    reference = count_ngrams_block(chunks, order)
    want = ngram_candidates(reference, min_count, limit, 1, release=False, bytes_order=bytes_order)
    for threads in (1, 2):
        table = count_ngrams_block(chunks, order)
        assert table.compact
        got = ngram_candidates(table, min_count, limit, threads, release=True, bytes_order=bytes_order)
        assert got[0] == want[0] and got[1].tolist() == want[1].tolist()
        assert table.released and len(table) == len(reference)
    with pytest.raises(ValueError, match="compact"):
        candidates_by_sorting(count_ngrams_block(chunks, order, compact=False), min_count, limit)


def test_candidates_by_sorting_cut_back_their_buffers_like_the_limit():
    """Many distinct n-grams and a small limit: the per-length buffers are cut back to the
    entries counted at least as often as their limit-th most frequent, more than once,
    and ties at the cut are all kept, as level_candidates keeps them."""
    import random

    from bytepiece._core.ngram_table import candidates_by_sorting

    rng = random.Random(5)
    chunks = [bytes(rng.choice(b"abcdefgh") for _ in range(300)) for _ in range(400)]
    table = count_ngrams_block(chunks, 6)
    reference = count_ngrams_block(chunks, 6)
    reference.get(b"ab")  # (expanded: the per-length counts to check against)
    for L, keys, counts in candidates_by_sorting(table, 1, 7):
        everything = sorted((c for _, c in reference.items(L)), reverse=True)
        bar = everything[min(7, len(everything)) - 1]
        assert len(keys) == sum(1 for c in everything if c >= bar) >= min(7, len(everything))
        assert counts.min() >= bar


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 40),
    st.lists(st.lists(st.tuples(st.integers(0, 1599), st.integers(0, 9)), max_size=300), min_size=1, max_size=4),
    st.integers(-1, 12),
)
def test_pair_sums_of_several_tables_equal_their_merge(n, per_table, min_count):
    """pair_sums gives what merging the tables and reading arrays(min_count) gives, without
    growing a table, and how many distinct pairs they hold."""
    from bytepiece._core.pair_counts import PairCounts, pair_sums

    tables, merged = [], PairCounts(n)
    for entries in per_table:
        keys = np.array([k % (n * n) for k, _ in entries], dtype=np.int64)
        values = np.array([v for _, v in entries], dtype=np.int64)
        table = PairCounts(n)
        table.add_array(keys, values)
        merged.add_array(keys, values)
        tables.append(table)
    want_keys, want_values = merged.arrays(min_count)
    keys, values, distinct = pair_sums(tables, min_count)
    order = np.argsort(keys)
    assert keys[order].tolist() == want_keys.tolist() and values[order].tolist() == want_values.tolist()
    assert distinct == len(merged)


def test_a_doubling_table_gives_back_the_old_slots_as_it_reads_them():
    """Growing a table moves its entries into one twice as large; the old one's slots are
    given back to the system a 2 MB stripe at a time as they are read, so a doubling
    peaks near the new table's size, not the new one's plus the old one's (1.5 times).
    Both the n-gram tables and the pair tables. Run in a fresh process (its peak is its
    own)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import numpy as np
        from bytepiece._core.ngram_table import count_ngrams_block
        from bytepiece._core.pair_counts import PairCounts
        def hwm():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM"))
        rng = np.random.default_rng(1)
        count_ngrams_block([b"abc"], 3, compact=False)  # (first use)
        # ~1.78M distinct 3-grams: the table doubles from 32 to 64 MB on the last ones
        chunk = rng.integers(0, 256, 1_900_000, dtype=np.uint8).tobytes()
        base = hwm()
        table = count_ngrams_block([chunk], 3, compact=False)
        print(table.nbytes >> 20, (hwm() - base) >> 20)
        del table
        keys = np.unique(rng.integers(0, 1 << 40, 1_600_000, dtype=np.int64))
        ones = np.ones(len(keys), dtype=np.int64)
        pairs = PairCounts(1 << 21)
        base = hwm()
        pairs.add_array(keys, ones)  # (1.6M pairs: the table doubles from 32 to 64 MB)
        print(64, (hwm() - base) >> 20)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    for line in out.split("\n")[:-1]:
        table_mb, peak_mb = map(int, line.split())
        assert table_mb >= 64, out
        assert peak_mb < 1.2 * table_mb, out  # (not 1.5 x: the old slots went as they were read)
