"""Every call from the training code into the compiled core, in one place.

The counting tables, the n-gram model and the lattice live in the compiled core
(``bytepiece._core``: ngram_table, piece_table, pair_counts, ngram_model, chunk_keys,
lattice, em); the stages call them only through the functions here, each named for
what the trainer asks of the core. The core releases the GIL inside each call.
"""

from __future__ import annotations

import numpy as np

from .._core import chunk_keys as _chunk_keys
from .._core import em as _em
from .._core import ngram_candidates as _ngram_candidates
from .._core import ngram_model as _ngram_model
from .._core import ngram_table as _ngram_table
from .._core import piece_table as _piece_table
from .._core.lattice import Lattice
from .._core.pair_counts import PairCounts
from .._core.pair_counts import pair_sums as _pair_sums

#: The longest n-gram the tables pack (8 bytes in 64 bits).
MAX_ORDER: int = _ngram_table.MAX_ORDER
#: The largest count floor (min_count) the core takes: its counts are int64.
MAX_COUNT_FLOOR = 2**63 - 1
#: The core's table types, for type checks and annotations.
NgramTable = _ngram_table.NgramTable
NgramModel = _ngram_model.NgramModel
PieceTable = _piece_table.PieceTable


def count_floor(min_count: int) -> int:
    """min_count as the core takes it (an int64; Python ints of any size are valid
    options). No count of the core comes near 2**63 - 1 (that many bytes of text), so a
    larger floor keeps what this one keeps: no multi-byte piece."""
    return min(int(min_count), MAX_COUNT_FLOOR)


# -- counting -------------------------------------------------------------------------
def count_ngrams_block(chunks: list[bytes], order: int, budget: int):
    """The NgramTable of the byte n-grams (1 to order) of some chunks."""
    return _ngram_table.count_ngrams_block(chunks, order, budget)


def count_pieces_block(chunks: list[bytes], model, ensure_unicode: bool, pair_length: int):
    """(PieceTable of the pieces of the chunks tagged by the n-gram model, PieceTable of
    the concatenations of adjacent pieces up to pair_length bytes)."""
    return _ngram_model.count_pieces_block(chunks, model, ensure_unicode, pair_length)


def new_ngram_table(order: int, budget: int):
    return NgramTable(order, budget)


def new_piece_table():
    return PieceTable()


def ngram_table_from_bytes(data: bytes):
    return NgramTable.from_bytes(data)


def piece_table_from_bytes(data: bytes):
    return PieceTable.from_bytes(data)


# -- the end of the n-gram stage ------------------------------------------------------
def finish_ngrams(table, min_count: int, limit: int, threads: int, release: bool):
    """(the n-gram model, (candidate keys, counts)); release frees the table's counts."""
    return _ngram_model.finish_ngrams(table, count_floor(min_count), limit, threads, release)


def ngram_candidates_in_bytes_order(table, min_count: int, limit: int, threads: int, release: bool):
    """(candidate keys in bytes order, their int64 counts), without building a model."""
    return _ngram_candidates.ngram_candidates(table, count_floor(min_count), limit, threads, release, bytes_order=True)


def ngram_model_from_table(table, min_count: int):
    return NgramModel.from_table(table, count_floor(min_count))


# -- lists of bytes ----------------------------------------------------------------------
def chunk_keys(chunks: list[bytes]) -> np.ndarray:
    """The uint64 sample key of each chunk (BLAKE2b, 8 bytes, little-endian)."""
    return _chunk_keys.chunk_keys(chunks)


def chunk_scripts(chunks: list[bytes], script_of_lead: np.ndarray, no_vote: int) -> np.ndarray:
    """The script most characters of each chunk are in, from the script of each lead byte."""
    return _chunk_keys.chunk_scripts(chunks, script_of_lead, no_vote)


def bytes_order(items: list[bytes]) -> np.ndarray:
    """The indices that sort items by their bytes."""
    return _piece_table.bytes_order(items)


# -- the lattice of a list of pieces ----------------------------------------------------------
def piece_lattice(pieces: list[bytes], logp: np.ndarray):
    """A lattice over pieces (all 256 single bytes among them) with log-probabilities
    logp; ids are the pieces' indices."""
    return Lattice(pieces, logp, np.arange(len(pieces)))


def with_logprobs(lattice: Lattice, logp: np.ndarray) -> Lattice:
    """The lattice's pieces with other log-probabilities (its trie is shared)."""
    return lattice.with_logprobs(logp)


def viterbi_counts(lattice: Lattice, texts: list[bytes], weights: np.ndarray, out: np.ndarray) -> None:
    """out[i] += weight of each text x times piece i is in the text's Viterbi split (each
    text one chunk), text after text: float64 sums."""
    _em.viterbi_counts(lattice, texts, weights, out)


def expected_counts(lattice: Lattice, texts: list[bytes], out: np.ndarray, weights: np.ndarray) -> float:
    """out[i] += weight x expected count of piece i (forward-backward); returns the
    weighted log-likelihood."""
    return _em.expected_counts(lattice, texts, out, alpha=1.0, weights=weights)


def split_scores(lattice: Lattice, pieces: list[bytes]) -> np.ndarray:
    """The best score of each piece split into two or more pieces."""
    return _em.split_scores(lattice, pieces)


def pair_table(num_pieces: int, expected: int):
    """An empty table of counts of pairs of adjacent pieces, sized for `expected` pairs."""
    return PairCounts(num_pieces, expected)


def count_viterbi_pairs(
    lattice: Lattice, texts: list[bytes], weights: np.ndarray, pairs: PairCounts, unigrams: np.ndarray, odd: PairCounts
) -> None:
    """Adds each text's integer weight for every pair of adjacent pieces of its Viterbi
    split to pairs (the odd half of the keys to odd) and for every piece to unigrams."""
    _em.count_viterbi_pairs(lattice, texts, weights, pairs, unigrams=unigrams, odd=odd)


def pair_sums(tables: list, min_count: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(keys, int64 sums, distinct pairs): the pairs whose count summed over the tables is
    at least min_count, in no particular order; the tables are spent."""
    keys, sums, distinct = _pair_sums(tables, count_floor(min_count))
    if min_count > MAX_COUNT_FLOOR:  # (the sums are int64: none reaches a floor above the cap)
        keys, sums = keys[:0], sums[:0]
    return keys, sums, distinct
