"""The trainer's options: what each one means, and the checks that keep a bad value out
of the stages.

Two frozen dataclasses, grouped as the stages read them: :class:`TrainerOptions`
(BytePiece 0.6.3's six options, the corpus, memory and engine settings) holding an
:class:`EmOptions` (the ``em_*`` arguments of ``Trainer``, without the prefix). Each
validates itself when it is made, so a stage that receives one can trust it; the
derived values several stages need (whether the corpus is tagged, the n-gram table's
entry budget, ...) are properties here, computed in one place.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model import NORMALIZATIONS
from . import kernels, memory
from .engines import Engine

NUM_SPECIAL = 3  # <pad>, <bos>, <eos>
MIN_VOCAB_SIZE = 256 + NUM_SPECIAL
#: Ids are int32 in the core.
MAX_VOCAB_SIZE = 2**31 - 1
MAX_PIECE_LENGTH = 36  # 0.6.3's default
EM_MAX_PIECE_LENGTH = 24  # the default with EM
ENGINE_NAMES = ("process", "thread", "dask")


class TrainerError(ValueError):
    """Bad trainer options."""


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _is_number(value: Any) -> bool:
    """A finite real number (numpy's too), not a bool nor a string."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # (an int beyond a float's range)
        return False


def _check_number(name: str, value: Any, low: float) -> None:
    if not _is_number(value) or value < low:
        raise TrainerError(f"{name} must be a finite number >= {low:g}, not {value!r}")


def _check_integer(name: str, value: Any, low: int) -> None:
    if not _is_int(value) or value < low:
        raise TrainerError(f"{name} must be an integer >= {low}, not {value!r}")


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TrainerError(f"{name} must be True or False, not {value!r}")


def checked_workers(workers: Any) -> int:
    """``workers`` as an int: any integer type (numpy's too) >= 1, not a bool."""
    _check_integer("workers", workers, 1)
    return int(workers)


@dataclass(frozen=True)
class EmOptions:
    """The EM stage's options (``Trainer``'s ``em_*`` arguments).

    - ``seed``: "ngrams" (the default): the EM starts from the n-gram candidates and
      the 256 bytes, and the n-gram model, 0.6.3's tagging and its pruning are
      skipped; "tagged": 0.6.3's pruned vocabulary joins them (slower, and it
      compresses held-out text less well; see benchmarks/README.md);
    - ``seed_factor`` (tagged seed): the 0.6.3 stage keeps this many times the target size;
    - ``pairs`` (tagged seed): also propose concatenations of adjacent tagged pieces
      (at most this many times the seed size; 0 turns it off);
    - ``ngrams``: also propose the most frequent byte n-grams (whole UTF-8
      characters, ranked by count x length; at most this many times the target size);
    - ``shrink``: each pruning round keeps this fraction of the pieces;
    - ``grow`` / ``grow_rounds``: in each of the first rounds, add this fraction of
      the target size as new candidates: the most frequent concatenations of
      adjacent pieces in the current Viterbi segmentation (this is how pieces longer
      than the n-gram order appear);
    - ``estimated_rounds``: after each of the first this many grow rounds (never the
      last), the pruning uses the counts the grow pass estimates (each piece's count
      in its Viterbi segmentation, less what the new concatenations take from their
      parts) instead of an E-step's: a pass less per round, at no measurable cost in
      compression; 0 = an E-step after every round;
    - ``keep_chars``: a whole multi-byte character (up to 4 bytes) whose expected
      count is at least this is never pruned, like SentencePiece's required
      characters (large alphabets that are a minority of a mixed corpus keep their
      characters; 0 = off);
    - ``script_floor``: script-balanced EM for mixed corpora. Each chunk of the
      sample belongs to the script most of its characters are in (ASCII, Han and
      kana, Hangul, Cyrillic, Arabic, ...); a script with less than this share of
      the sample's bytes weighs as if it had this share (but at most 3 times its own
      share: a trace of a script stays a trace), and the others shrink in
      proportion, so a minority script (Chinese among English and code) gets the
      pieces it needs, while scripts above the floor keep the plain likelihood.
      0 = off; a corpus in one script is unaffected;
    - ``balance``: tempered script shares before the floor: a script with share p
      weighs as p**balance (renormalised), as multilingual models sample their
      languages (XLM-R, mT5). 1 = off (the default);
    - ``iterations`` / ``final_iterations``: EM iterations per round / at the end;
    - ``hard`` (default True): Viterbi (hard) counts instead of expected counts in
      the rounds that still grow the vocabulary (a Viterbi pass costs less than a
      forward-backward one); the E-steps after the last grow round, whose counts
      become the model's, are always forward-backward, as are the final iterations;
    - ``round_fraction``: the pruning rounds look at this fixed fraction of the
      sample only (faster; the final iterations see all of it);
    - ``grow_fraction``: the grow rounds count adjacent pieces in this fraction of
      the rounds' sample (evenly spread parts of it, so every script keeps its share);
    - ``first_fraction`` (default 0.5): the first E-step, over every candidate,
      looks at this fraction of the rounds' sample (evenly spread parts): its counts
      only decide the first, coarsest pruning;
    - ``sample_bytes``: EM runs on a sample of the corpus this big (chunks chosen by
      a hash of their bytes, so the sample is uniform and deterministic).
    """

    seed: str = "ngrams"
    seed_factor: float = 4.0
    pairs: float = 0.0
    ngrams: float = 4.0
    shrink: float = 0.3
    grow: float = 0.5
    grow_rounds: int = 4
    estimated_rounds: int = 2
    keep_chars: float = 5
    script_floor: float = 0.25
    balance: float = 1.0
    hard: bool = True
    round_fraction: float = 1.0
    grow_fraction: float = 1.0
    first_fraction: float = 0.5
    iterations: int = 1
    final_iterations: int = 0
    sample_bytes: int = 64_000_000

    # (The fields above and the checks below are alike by shape only: each option has its
    # own default, rule and message.)
    def __post_init__(self) -> None:
        if not 0 < self.shrink < 1:
            raise TrainerError(f"em_shrink must be in (0, 1), not {self.shrink!r}")
        if self.seed not in ("ngrams", "tagged"):
            raise TrainerError(f"em_seed must be 'ngrams' or 'tagged', not {self.seed!r}")
        _check_number("em_seed_factor", self.seed_factor, 1)
        _check_number("em_pairs", self.pairs, 0)
        _check_number("em_ngrams", self.ngrams, 0)
        _check_number("em_grow", self.grow, 0)
        _check_number("em_keep_chars", self.keep_chars, 0)
        _check_integer("em_grow_rounds", self.grow_rounds, 0)
        _check_integer("em_estimated_rounds", self.estimated_rounds, 0)
        _check_integer("em_iterations", self.iterations, 1)
        _check_integer("em_final_iterations", self.final_iterations, 0)
        _check_flag("em_hard", self.hard)
        if not 0 < self.balance <= 1:
            raise TrainerError(f"em_balance must be in (0, 1], not {self.balance!r}")
        if not 0 <= self.script_floor <= 0.5:
            raise TrainerError(f"em_script_floor must be in [0, 0.5], not {self.script_floor!r}")
        if not (0 < self.round_fraction <= 1 and 0 < self.grow_fraction <= 1 and 0 < self.first_fraction <= 1):
            raise TrainerError(
                f"em_round_fraction, em_grow_fraction and em_first_fraction must be in (0, 1], "
                f"not {self.round_fraction!r}, {self.grow_fraction!r}, {self.first_fraction!r}"
            )
        if not 1 <= self.sample_bytes <= 1e15:  # (NaN, inf and ints past a float's range too)
            raise TrainerError(f"em_sample_bytes must be a number of bytes from 1 to 1e15, not {self.sample_bytes!r}")
        # (stored as the stages use them)
        object.__setattr__(self, "grow_rounds", int(self.grow_rounds))
        object.__setattr__(self, "estimated_rounds", int(self.estimated_rounds))
        object.__setattr__(self, "iterations", int(self.iterations))
        object.__setattr__(self, "final_iterations", int(self.final_iterations))
        object.__setattr__(self, "sample_bytes", int(self.sample_bytes))


@dataclass(frozen=True)
class TrainerOptions:
    """Everything a training run depends on.

    The first six are BytePiece 0.6.3's: ``order`` (of the n-gram model),
    ``max_vocab_size`` (one size, or several: one model each; kept largest first),
    ``max_piece_length`` (bytes), ``min_count``, ``isolate_digits``,
    ``ensure_unicode``. ``use_em=False`` reproduces 0.6.3's algorithm; otherwise
    ``em`` tunes the EM stage. ``max_piece_length`` defaults (None) to 0.6.3's 36
    without EM and to 24 with it (longer pieces measurably fit the training text
    rather than held-out text: see benchmarks/README.md).

    ``normalization`` is the Unicode normalisation applied to the training text and
    recorded in the model, so that the model encodes text as it was trained: "NFC"
    (BytePiece 0.6.3's), "NFKC", "NFD", "NFKD" or "none" (case does not matter). The
    default (None) is "none" with the EM, so that a new model is lossless
    (``decode(encode(x)) == x`` for every str), and "NFC" with ``use_em=False``, whose
    model files are 0.6.3's byte for byte. A model recording anything but NFC carries
    the metadata entry, which BytePiece 0.6.3 itself cannot read (docs/interop.md).

    ``ngram_memory`` caps the n-gram table (bytes; 0 = no cap); rare n-grams are
    dropped when it is hit, and a message says so. The default (None) sizes it from the
    machine: a quarter of the memory the process may use beyond 256 MB, between 16 MB
    and 1 GB
    (:func:`bytepiece.training.memory.auto_ngram_memory`), so that the memory a run
    needs is bounded whatever the corpus's size. Once the budget is hit the counts, and
    possibly the model, depend on it, hence on the machine: give ``ngram_memory`` to get
    the same model everywhere. ``block_chars`` sizes the blocks
    the work is split into. ``engine`` runs the counting on ``workers`` threads
    ("thread", the default: one process, the counting loops run without the GIL,
    tables merge in place and nothing is pickled or duplicated), on processes
    ("process": a fork pool; only cutting the text into chunks holds the GIL, so
    processes pay off only with many workers), or on a Dask cluster ("dask", or a
    configured engine object such as :class:`bytepiece.distributed.DaskEngine`; the
    model is byte-identical to a local run; docs/distributed.md). ``verbose=False``
    silences progress.
    """

    order: int = 6
    max_vocab_size: tuple[int, ...] = (10000,)
    max_piece_length: float = None  # type: ignore[assignment]  # (None: by `use_em`)
    min_count: int = 2
    isolate_digits: bool = False
    ensure_unicode: bool = True
    use_em: bool = True
    em: EmOptions = field(default_factory=EmOptions)
    normalization: str = None  # type: ignore[assignment]  # (None: by `use_em`)
    ngram_memory: int = None  # type: ignore[assignment]  # (None: sized from the machine)
    block_chars: int = 1_000_000
    engine: Any = "thread"
    verbose: bool = True

    def __post_init__(self) -> None:
        order = self.order
        _check_integer("order", order, 1)
        if order > kernels.MAX_ORDER:
            raise TrainerError(
                f"order must be at most {kernels.MAX_ORDER} (n-grams are packed in 64 bits), not {order}"
            )
        sizes = list(self.max_vocab_size) if isinstance(self.max_vocab_size, (list, tuple)) else [self.max_vocab_size]
        if not sizes:
            raise TrainerError("max_vocab_size is an empty list")
        for size in sizes:
            if not _is_int(size) or not MIN_VOCAB_SIZE <= size <= MAX_VOCAB_SIZE:
                raise TrainerError(
                    f"max_vocab_size must be an integer from {MIN_VOCAB_SIZE} (256 bytes + 3 special ids) "
                    f"to {MAX_VOCAB_SIZE}, not {size!r}"
                )
        twice = sorted({int(s) for s in sizes if sizes.count(s) > 1})
        if twice:  # (one model per size: a size given twice would train and save it twice)
            raise TrainerError(f"max_vocab_size gives {', '.join(map(str, twice))} more than once")
        if not (isinstance(self.min_count, (int, np.integer)) and self.min_count >= 1):
            raise TrainerError(f"min_count must be an integer >= 1, not {self.min_count!r}")
        length = self.max_piece_length
        if length is None:
            length = EM_MAX_PIECE_LENGTH if self.use_em else MAX_PIECE_LENGTH
        if not (length >= 1):
            raise TrainerError(f"max_piece_length must be >= 1, not {length!r}")
        for name in ("isolate_digits", "ensure_unicode", "use_em", "verbose"):
            _check_flag(name if name != "use_em" else "em", getattr(self, name))
        _check_integer("block_chars", self.block_chars, 1)
        if not (isinstance(self.engine, str) and self.engine in ENGINE_NAMES) and not isinstance(self.engine, Engine):
            raise TrainerError(f"engine must be 'process', 'thread' or 'dask', not {self.engine!r}")
        if self.ngram_memory is None:
            object.__setattr__(self, "ngram_memory", memory.auto_ngram_memory())
        if not _is_int(self.ngram_memory) or self.ngram_memory < 0:
            raise TrainerError(
                f"ngram_memory must be a number of bytes >= 0 (0 = unbounded), not {self.ngram_memory!r}"
            )
        object.__setattr__(self, "normalization", resolve_normalization(self.normalization, self.use_em))
        object.__setattr__(self, "max_vocab_size", tuple(sorted((int(s) for s in sizes), reverse=True)))
        object.__setattr__(self, "max_piece_length", length)
        object.__setattr__(self, "min_count", int(self.min_count))
        object.__setattr__(self, "ngram_memory", int(self.ngram_memory))
        object.__setattr__(self, "block_chars", int(self.block_chars))

    def replace(self, **changes: Any) -> TrainerOptions:
        """A copy with some options changed, checked again."""
        return dataclasses.replace(self, **changes)

    # -- what the stages derive from the options ---------------------------------------
    @property
    def tagging(self) -> bool:
        """Whether the piece stage tags the corpus with the n-gram model (0.6.3's
        algorithm, and the tagged EM seed); otherwise it only draws the EM's sample."""
        return not self.use_em or self.em.seed == "tagged"

    @property
    def budget_entries(self) -> int:
        """The n-gram table's budget in entries (0: none). A slot is 16 bytes and tables
        stay at most 70% full after doubling, so n entries take up to 16 * n / 0.35 bytes."""
        return int(self.ngram_memory * 0.35 / 16) if self.ngram_memory else 0

    @property
    def pair_length(self) -> int:
        """The longest concatenation of adjacent tagged pieces counted for the EM's
        candidates (0: pairs are not counted)."""
        if self.tagging and self.use_em and self.em.pairs > 0:
            return min(int(self.max_piece_length), 255)
        return 0

    @property
    def sample_bytes(self) -> int:
        """The EM sample's size in bytes (0 without EM: no sample)."""
        return self.em.sample_bytes if self.use_em else 0

    @property
    def candidate_limit(self) -> int:
        """How many frequent n-grams join the EM's candidates (0: none)."""
        return int(self.em.ngrams * self.max_vocab_size[0]) if (self.use_em and self.em.ngrams > 0) else 0


def resolve_normalization(value: Any, use_em: bool) -> str:
    """A normalisation option as a model records it ("NFC", ..., "none"); None picks
    the default ("none" with the EM, 0.6.3's "NFC" without)."""
    if value is None:
        return "none" if use_em else "NFC"
    if isinstance(value, str):
        for name in NORMALIZATIONS:
            if value.lower() == name.lower():
                return name
    raise TrainerError(f"normalization must be one of {', '.join(NORMALIZATIONS)} (any case), not {value!r}")


#: Trainer's keyword arguments, in order, with where each one lives in the options:
#: (group, field) with group "" for TrainerOptions and "em" for EmOptions.
TRAINER_ARGUMENTS: dict[str, tuple[str, str]] = {
    "order": ("", "order"),
    "max_vocab_size": ("", "max_vocab_size"),
    "max_piece_length": ("", "max_piece_length"),
    "min_count": ("", "min_count"),
    "isolate_digits": ("", "isolate_digits"),
    "ensure_unicode": ("", "ensure_unicode"),
    "em": ("", "use_em"),
    "normalization": ("", "normalization"),
    **{
        f"em_{name}": ("em", name)
        for name in (
            "seed",
            "seed_factor",
            "pairs",
            "ngrams",
            "shrink",
            "grow",
            "grow_rounds",
            "estimated_rounds",
            "keep_chars",
            "script_floor",
            "balance",
            "hard",
            "round_fraction",
            "grow_fraction",
            "first_fraction",
            "iterations",
            "final_iterations",
            "sample_bytes",
        )
    },
    "ngram_memory": ("", "ngram_memory"),
    "block_chars": ("", "block_chars"),
    "engine": ("", "engine"),
    "verbose": ("", "verbose"),
}


def options_from_arguments(arguments: dict[str, Any]) -> TrainerOptions:
    """The options of ``Trainer(**arguments)`` (argument names as ``Trainer`` takes them)."""
    em = {TRAINER_ARGUMENTS[k][1]: v for k, v in arguments.items() if TRAINER_ARGUMENTS[k][0] == "em"}
    rest = {TRAINER_ARGUMENTS[k][1]: v for k, v in arguments.items() if TRAINER_ARGUMENTS[k][0] == ""}
    return TrainerOptions(em=EmOptions(**em), **rest)


def option_value(options: TrainerOptions, name: str) -> Any:
    """The value of ``Trainer``'s argument ``name`` in ``options`` (``max_vocab_size`` as
    the list of sizes, largest first)."""
    group, attr = TRAINER_ARGUMENTS[name]
    value = getattr(options.em if group == "em" else options, attr)
    return list(value) if name == "max_vocab_size" else value


def with_argument(options: TrainerOptions, name: str, value: Any) -> TrainerOptions:
    """``options`` with ``Trainer``'s argument ``name`` set to ``value`` (checked)."""
    group, attr = TRAINER_ARGUMENTS[name]
    if group == "em":
        return options.replace(em=dataclasses.replace(options.em, **{attr: value}))
    return options.replace(**{attr: value})


__all__ = [
    "EmOptions",
    "TrainerOptions",
    "TrainerError",
    "NUM_SPECIAL",
    "MIN_VOCAB_SIZE",
    "MAX_PIECE_LENGTH",
    "EM_MAX_PIECE_LENGTH",
]
