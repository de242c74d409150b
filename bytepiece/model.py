"""Model files in BytePiece 0.6.3's format, read and written.

The format is one JSON object ``{base64(piece bytes): [id, piece text, count]}``.
Ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>`` and are not stored; the pieces
take the ids 3 .. N+2. The text is a lossy rendering (``errors='ignore'``) kept
only for people reading the file; the bytes and the count are what matter.

A model may carry one more top-level entry, under the key ``"__bytepiece__"``
(not valid base64, so it can never be mistaken for a piece): an object with
the model's special tokens (``"special_tokens"``: strings, given the ids after
the pieces, in order), its text normalisation (``"normalization"``: ``"NFC"``,
``"NFKC"``, ``"NFD"``, ``"NFKD"`` or ``"none"``) and its default sampling
``"alpha"`` (negative: Viterbi). The entry is written only when one of these
differs from 0.6.3's behaviour (no special tokens, NFC, Viterbi), so a plain
model is written byte for byte as 0.6.3 writes it, and a file without the
entry means exactly that behaviour.

Everything is validated here, at load time, so that a bad file fails with a
:class:`ModelError` naming the file and the problem instead of crashing or
giving wrong output later. Models load from a JSON file, from a zip archive
holding one (as BytePiece's author publishes them), or from a dict.

The end of the module shows pieces as text and reads them back
(:func:`readable_piece`, :func:`parse_piece`, :class:`PieceTable`): the form the
command line prints and parses, kept here because it is part of what a model's
pieces look like to people, like the text rendering in the file.
"""

from __future__ import annotations

import binascii
import math
import operator
import os
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Union

from .atomic import atomic_write

SPECIAL_PIECES = ("<pad>", "<bos>", "<eos>")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_PIECE_ID = len(SPECIAL_PIECES)

METADATA_KEY = "__bytepiece__"
METADATA_FORMAT = 1
NORMALIZATIONS = ("NFC", "NFKC", "NFD", "NFKD", "none")
DEFAULT_NORMALIZATION = "NFC"
DEFAULT_ALPHA = -1.0

ModelSource = Union[str, "os.PathLike[str]", Mapping[str, Any], "Vocabulary"]


class ModelError(ValueError):
    """A model file or dict is not a valid BytePiece model."""


class Vocabulary:
    """The pieces of a model in id order (``pieces[i]`` has id ``i + 3``) and their counts,
    plus what the optional metadata entry records: special tokens (ids
    ``len(pieces) + 3 + j``), the text normalisation and the default alpha.

    Immutable; equal when every field is, and hashable. (A plain class rather than a
    frozen dataclass, so that ``import bytepiece`` does not load dataclasses and inspect.)

    A model read from a file in 0.6.3's layout brings its counts as an array of int64
    (an int object per count would be 2.5 MB of a cold start's peak for the 80k model);
    :attr:`counts` makes them a tuple when it is first read, and the tokenizer reads
    the array (:meth:`_count_values`)."""

    pieces: tuple[bytes, ...]
    special_tokens: tuple[str, ...]
    normalization: str
    alpha: float
    _counts: Sequence[int | float]
    _FIELDS = ("pieces", "counts", "special_tokens", "normalization", "alpha")

    def __init__(
        self,
        pieces: tuple[bytes, ...],
        counts: Sequence[int | float],
        special_tokens: tuple[str, ...] = (),
        normalization: str = DEFAULT_NORMALIZATION,
        alpha: float = DEFAULT_ALPHA,
    ) -> None:
        if len(pieces) != len(counts):
            raise ModelError(f"model <vocabulary>: {len(pieces)} pieces but {len(counts)} counts")
        for name, value in zip(self._FIELDS, (pieces, counts, special_tokens, normalization, alpha)):
            object.__setattr__(self, "_counts" if name == "counts" else name, value)
        _check_metadata(self.special_tokens, self.normalization, self.alpha, "<vocabulary>")

    @property
    def counts(self) -> tuple[int | float, ...]:
        """The pieces' counts, in id order."""
        counts = self._counts
        if type(counts) is not tuple:
            counts = tuple(counts)
            object.__setattr__(self, "_counts", counts)
        return counts

    def _count_values(self) -> Sequence[int | float]:
        """The counts as they are held: the tuple, or the int64 array of a loaded model."""
        return self._counts

    def __reduce__(self) -> tuple:
        return (Vocabulary, self._values())

    def __setstate__(self, state: dict) -> None:  # (a pickle of a version before _counts)
        state = dict(state)
        state["_counts"] = state.pop("counts", state.get("_counts"))
        self.__dict__.update(state)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to {name!r}: a Vocabulary is immutable (use replace)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete {name!r}: a Vocabulary is immutable")

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return "Vocabulary(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS) + ")"

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def is_plain(self) -> bool:
        """True when the model needs no metadata entry (0.6.3's behaviour exactly)."""
        return not self.special_tokens and self.normalization == DEFAULT_NORMALIZATION and self.alpha < 0

    def metadata(self) -> dict[str, Any]:
        """The metadata entry's value (written only when the model is not plain)."""
        alpha = self.alpha if self.alpha >= 0 else DEFAULT_ALPHA
        return {
            "format": METADATA_FORMAT,
            "normalization": self.normalization,
            "alpha": int(alpha) if float(alpha).is_integer() else alpha,
            "special_tokens": list(self.special_tokens),
        }

    def replace(self, **changes) -> Vocabulary:
        """A copy with some fields changed (validated)."""
        fields: dict[str, Any] = {
            "pieces": self.pieces,
            "counts": self._counts,
            "special_tokens": self.special_tokens,
            "normalization": self.normalization,
            "alpha": self.alpha,
        }
        fields.update(changes)
        fields["special_tokens"] = tuple(fields["special_tokens"])
        return Vocabulary(**fields)

    def to_dict(self) -> dict[str, Any]:
        """The model as BytePiece 0.6.3's JSON object (plus the metadata entry, last,
        when the model is not plain)."""
        out: dict[str, Any] = {
            binascii.b2a_base64(piece, newline=False).decode("ascii"): [
                index + FIRST_PIECE_ID,
                piece.decode("utf-8", errors="ignore"),
                count,
            ]
            for index, (piece, count) in enumerate(zip(self.pieces, self.counts))
        }
        if not self.is_plain:
            out[METADATA_KEY] = self.metadata()
        return out


def vocabulary_from_counts(pieces: Mapping[bytes, int | float]) -> Vocabulary:
    """Order pieces as BytePiece 0.6.3 numbers them: by (length, bytes). Counts are
    numbers > 0 (numpy's too, kept as int or float), checked as a model file's are."""
    ordered = sorted(pieces.items(), key=lambda item: (len(item[0]), item[0]))
    vocab = Vocabulary(tuple(p for p, _ in ordered), tuple(_count_value(p, c, "<pieces>") for p, c in ordered))
    _validate_pieces(vocab.pieces, vocab.counts, "<pieces>")
    return vocab


def _count_value(piece: bytes, count: Any, where: str) -> int | float:
    """A piece's count as the int or float a model file holds (numpy numbers included),
    when it is a number > 0 and finite; else the ModelError a file with it would get."""
    if type(count) is not int and type(count) is not float:
        given, count = count, None
        if not (isinstance(given, bool) or type(given).__name__.startswith("bool")):
            try:
                count = operator.index(given)
            except TypeError:
                count = float(given) if hasattr(given, "__float__") else None
        if count is None:
            raise ModelError(f"model {where}: piece {piece!r} has count {given!r}, not a number")
    if not (count > 0 and _finite(count)):
        raise ModelError(f"model {where}: piece {piece!r} has count {count!r}; counts must be finite and > 0")
    return count


def load_model(source: ModelSource) -> Vocabulary:
    """Read and validate a model from a path (JSON or zip), a dict, or a Vocabulary."""
    if isinstance(source, Vocabulary):
        return source
    if isinstance(source, Mapping):
        return _parse(source, "<dict>")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        from .model_archive import read_model_bytes  # (the file's bytes: JSON, or a zip's member)

        raw = read_model_bytes(path)
        return _parse_layout(raw, repr(path)) or _parse(_read_json(raw, repr(path)), repr(path))
    raise TypeError(f"a model is a path, a dict in BytePiece format or a Vocabulary, not {type(source).__name__}")


def save_model(
    path: str | os.PathLike, pieces: Mapping[bytes, int | float] | Vocabulary, *, overwrite: bool = True
) -> None:
    """Write a model in BytePiece 0.6.3's JSON format, atomically; a path ending in
    ``.zip`` gets a zip archive holding that file (``NAME.model``), as the published
    0.6.3 models come.

    ``pieces`` maps piece bytes to counts (ids are assigned by (length, bytes),
    as 0.6.3 does) or is a :class:`Vocabulary` whose ids are kept. For a plain
    model the output is byte-for-byte what 0.6.3's ``Trainer.save`` writes; a
    model with special tokens, another normalisation or a default alpha gets
    the metadata entry as its last key.
    """
    if isinstance(pieces, Vocabulary):
        # (checked as a file is when read: nothing is written that load_model refuses)
        vocab = pieces
        for piece, count in zip(vocab.pieces, vocab.counts):
            _count_value(piece, count, "<vocabulary>")
        _validate_pieces(vocab.pieces, vocab.counts, "<vocabulary>")
    else:
        vocab = vocabulary_from_counts(pieces)
    text = _model_text(vocab)
    if os.fspath(path).lower().endswith(".zip"):  # (as the published 0.6.3 models come)
        import zipfile

        member = os.path.basename(os.fspath(path))[: -len(".zip")] + ".model"
        with atomic_write(path, "wb", overwrite=overwrite) as raw:
            with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(member, text.encode("utf-8"))
        return
    with atomic_write(path, "w", overwrite=overwrite) as handle:
        handle.write(text)


def _model_text(vocab: Vocabulary) -> str:
    """_dumps_indented(vocab.to_dict()), written in one pass over the pieces when every
    count is an int (a trained model's are): no dict of a list per piece first."""
    import json  # (here and below: loading a model in 0.6.3's layout needs no json)

    encode_str = json.encoder.encode_basestring
    b64 = binascii.b2a_base64
    entries = []
    for index, (piece, count) in enumerate(zip(vocab.pieces, vocab.counts), FIRST_PIECE_ID):
        if type(count) is not int:
            return _dumps_indented(vocab.to_dict())
        entries.append(
            _piece_entry(
                f'"{b64(piece, newline=False).decode("ascii")}"',
                index,
                encode_str(piece.decode("utf-8", errors="ignore")),
                count,
            )
        )
    if not vocab.is_plain:
        entries.append(_entry_text(METADATA_KEY, vocab.metadata()))
    return "{\n    " + ",\n    ".join(entries) + "\n}"


def _dumps_indented(obj: dict[str, Any]) -> str:
    """json.dumps(obj, indent=4, ensure_ascii=False), the layout 0.6.3 writes, made
    directly for entries whose values are lists of strings and numbers (json's indented
    encoder is pure Python: 0.1 s for 16k pieces); any other value, the metadata entry
    for one, goes through json."""
    if not obj:
        return "{}"
    return "{\n    " + ",\n    ".join(_entry_text(key, value) for key, value in obj.items()) + "\n}"


def _piece_entry(key: str, index: int, text: str, count: int) -> str:
    """A piece's entry as 0.6.3 indents it, from its key and text already quoted."""
    return f"{key}: [\n        {index},\n        {text},\n        {count}\n    ]"


def _entry_text(key: str, value: Any) -> str:
    """One entry of _dumps_indented's object, without the indentation before it."""
    import json

    encode_str = json.encoder.encode_basestring  # (ensure_ascii=False's escaping)
    if (
        type(value) is list
        and len(value) == 3
        and type(value[0]) is int
        and type(value[1]) is str
        and type(value[2]) is int
    ):  # [id, piece, count]
        return _piece_entry(encode_str(key), value[0], encode_str(value[1]), value[2])
    if type(value) is not list or not value:
        return encode_str(key) + ": " + json.dumps(value, indent=4, ensure_ascii=False).replace("\n", "\n    ")
    items = []
    for v in value:
        t = type(v)
        if t is int:
            items.append(int.__repr__(v))
        elif t is str:
            items.append(encode_str(v))
        else:
            items.append(json.dumps(v, indent=4, ensure_ascii=False).replace("\n", "\n        "))
    return encode_str(key) + ": [\n        " + ",\n        ".join(items) + "\n    ]"


class _RepeatedKey(ValueError):
    """A JSON object that names one key twice (json.loads would keep the last silently)."""


def _object_once(pairs: list[tuple[str, Any]]) -> dict:
    """json.loads' object_pairs_hook: the object, refusing a key it has already seen."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return found


def _read_json(raw: bytes, where: str) -> Any:
    """The JSON value of a model file's bytes; a key named twice in one object is an error
    (a piece listed twice would otherwise take its last count silently)."""
    import json

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelError(f"model {where}: not UTF-8 text (byte {error.start})") from error
    try:
        return json.loads(text, object_pairs_hook=_object_once)
    except _RepeatedKey as error:
        raise ModelError(f"model {where}: the key {error.args[0]!r} is listed twice") from None
    except json.JSONDecodeError as error:
        raise ModelError(f"model {where}: not JSON (line {error.lineno}, column {error.colno}: {error.msg})") from error
    except RecursionError as error:
        raise ModelError(f"model {where}: JSON nested too deeply") from error
    except ValueError as error:  # e.g. an integer with more digits than int() accepts
        raise ModelError(f"model {where}: not JSON ({error})") from error


_SINGLE_BYTES = frozenset(bytes([b]) for b in range(256))


def _parse_layout(raw: bytes, where: str) -> Vocabulary | None:
    """The vocabulary of a model file in the layout 0.6.3 writes (json.dumps(indent=4)),
    read straight from its bytes by the compiled core without a JSON tree
    (_core/model_file.pyx; the metadata entry, when there is one, through json); None when
    the file is in any other shape, for the JSON parse to read. Whenever this answers, it
    answers what the JSON parse would (the same vocabulary, or the same error from the
    checks they share)."""
    from ._core.model_file import parse_model_json

    parsed = parse_model_json(raw)
    if parsed is None:
        return None
    pieces, counts, tail, singles = parsed  # (distinct pieces; counts: an int64 array of positive counts)
    special: tuple[str, ...] = ()
    normalization, alpha = DEFAULT_NORMALIZATION, DEFAULT_ALPHA
    if tail:
        import json

        try:
            meta = json.loads("{" + raw[tail:].decode("utf-8"), object_pairs_hook=_object_once)
        except (ValueError, RecursionError):  # (UnicodeDecodeError, JSONDecodeError, _RepeatedKey)
            return None
        if type(meta) is not dict or list(meta) != [METADATA_KEY]:
            return None
        special, normalization, alpha = _parse_metadata(meta[METADATA_KEY], where)
    # The core checked what _validate_pieces checks but the single bytes, which it only
    # counted (_validate_pieces names the missing ones), and the total: counts of at most
    # 18 digits add up to a finite float.
    if singles != 256:
        _validate_pieces(pieces, counts, where)
    return Vocabulary(pieces, counts, special, normalization, alpha)


def _parse(data: Any, where: str) -> Vocabulary:
    """The vocabulary of a model's JSON object: _parse_fast's answer when it has one (a
    well-formed model), else _parse_checked's, which names the first problem."""
    if type(data) is dict:
        vocab = _parse_fast(data, where)
        if vocab is not None:
            return vocab
    return _parse_checked(data, where)


def _parse_fast(data: dict, where: str) -> Vocabulary | None:
    """The vocabulary of a model in the common shape (str keys in canonical base64, each
    mapping to a list [id, text, count], ids 3, 4, ... in file order, counts positive
    ints or finite floats), checked a whole column at a time in C loops (set(map(type,
    ...)), min, a base64 round trip of the joined keys); None when anything is off that
    shape, and _parse_checked then finds the problem. Whenever this answers, it answers
    what _parse_checked would: the same vocabulary, or the same error from the checks
    they share (the metadata, _validate_pieces)."""
    keys = list(data)
    values = list(data.values())
    if METADATA_KEY in data:
        special, normalization, alpha = _parse_metadata(data[METADATA_KEY], where)
        at = keys.index(METADATA_KEY)
        del keys[at], values[at]
    else:
        special, normalization, alpha = (), DEFAULT_NORMALIZATION, DEFAULT_ALPHA
    n = len(keys)
    if n == 0 or set(map(type, keys)) != {str} or set(map(type, values)) != {list} or set(map(len, values)) != {3}:
        return None
    ids = list(map(_first, values))
    if set(map(type, ids)) != {int} or not all(map(operator.eq, ids, range(FIRST_PIECE_ID, FIRST_PIECE_ID + n))):
        return None
    del ids
    counts = list(map(_third, values))
    count_types = set(map(type, counts))
    if count_types == {int}:
        if min(counts) <= 0 or not _finite(max(counts)):
            return None
    elif not count_types <= {int, float} or not all(c > 0 and _finite(c) for c in counts):
        return None
    try:
        pieces = list(map(binascii.a2b_base64, keys))
    except (binascii.Error, ValueError):  # (not base64, not ASCII)
        return None
    # Every key is exactly the base64 of its piece (canonical: no other character, the
    # padding in place, the bits it leaves over zero), so two keys are one piece only
    # when they are equal: the keys joined by newlines are what encoding gives.
    if b"".join(map(binascii.b2a_base64, pieces)) != ("\n".join(keys) + "\n").encode("ascii", "replace"):
        return None
    distinct = set(pieces)
    if len(distinct) != n or b"" in distinct:
        return None
    _validate_pieces(pieces, counts, where, distinct)
    return Vocabulary(tuple(pieces), tuple(counts), special, normalization, alpha)


def _first(value: list) -> Any:
    return value[0]


def _third(value: list) -> Any:
    return value[2]


def _parse_checked(data: Any, where: str) -> Vocabulary:
    """The vocabulary of a model's JSON object, checked entry by entry: the first problem
    found is the error."""
    import base64

    if not isinstance(data, Mapping):
        raise ModelError(
            f"model {where}: expected a JSON object {{base64 piece: [id, text, count]}}, got {type(data).__name__}"
        )
    if not data:
        raise ModelError(f"model {where}: the vocabulary is empty")
    by_id: dict[int, tuple[bytes, int | float]] = {}
    seen: dict[bytes, str] = {}
    meta = data.get(METADATA_KEY)
    if METADATA_KEY in data:
        special, normalization, alpha = _parse_metadata(meta, where)
        if len(data) == 1:
            raise ModelError(f"model {where}: the vocabulary is empty")
    else:
        special, normalization, alpha = (), DEFAULT_NORMALIZATION, DEFAULT_ALPHA
    for key, value in data.items():
        if key == METADATA_KEY:
            continue
        if not isinstance(key, str):
            raise ModelError(f"model {where}: piece key {key!r} is not a base64 string")
        try:
            piece = base64.b64decode(key, validate=True)  # (its errors, named below)
        except (binascii.Error, ValueError) as error:
            raise ModelError(f"model {where}: piece key {key!r} is not valid base64 ({error})") from error
        if not piece:
            raise ModelError(f"model {where}: piece key {key!r} decodes to an empty piece")
        if piece in seen:
            raise ModelError(f"model {where}: keys {seen[piece]!r} and {key!r} are the same piece {piece!r}")
        seen[piece] = key
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or len(value) != 3:
            raise ModelError(f"model {where}: piece {key!r} must map to [id, text, count], got {value!r}")
        piece_id, _text, count = value
        if isinstance(piece_id, bool) or not isinstance(piece_id, int):
            raise ModelError(f"model {where}: piece {key!r} has id {piece_id!r}, not an integer")
        if isinstance(count, bool) or not isinstance(count, (int, float)):
            raise ModelError(f"model {where}: piece {key!r} has count {count!r}, not a number")
        if not (count > 0 and _finite(count)):
            raise ModelError(f"model {where}: piece {key!r} has count {count!r}; counts must be finite and > 0")
        if piece_id in by_id:
            first = binascii.b2a_base64(by_id[piece_id][0], newline=False).decode()
            raise ModelError(f"model {where}: id {piece_id} is used twice (pieces {first!r} and {key!r})")
        by_id[piece_id] = (piece, count)
    n = len(by_id)
    expected = range(FIRST_PIECE_ID, FIRST_PIECE_ID + n)
    if min(by_id) != FIRST_PIECE_ID or max(by_id) != expected[-1]:
        missing = next((i for i in expected if i not in by_id), None)
        raise ModelError(
            f"model {where}: ids must be contiguous from {FIRST_PIECE_ID} to {expected[-1]} "
            f"(found {min(by_id)}..{max(by_id)}" + (f", {missing} missing)" if missing is not None else ")")
        )
    pieces = tuple(by_id[i][0] for i in expected)
    counts = tuple(by_id[i][1] for i in expected)
    _validate_pieces(pieces, counts, where)
    return Vocabulary(pieces, counts, special, normalization, alpha)


def _finite(number: int | float) -> bool:
    """True when the number is finite as a double (a huge int is not: it has no float value)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _parse_metadata(meta: Any, where: str) -> tuple[tuple[str, ...], str, float]:
    if not isinstance(meta, Mapping):
        raise ModelError(f"model {where}: the {METADATA_KEY!r} entry must be an object, got {type(meta).__name__}")
    fmt = meta.get("format", METADATA_FORMAT)
    if fmt != METADATA_FORMAT:
        raise ModelError(
            f"model {where}: metadata format {fmt!r} is not supported (this version reads {METADATA_FORMAT})"
        )
    special = meta.get("special_tokens", [])
    normalization = meta.get("normalization", DEFAULT_NORMALIZATION)
    alpha = meta.get("alpha", DEFAULT_ALPHA)
    if not isinstance(special, list):
        raise ModelError(f"model {where}: special_tokens must be a list of strings, got {special!r}")
    special = tuple(special)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not _finite(alpha):
        raise ModelError(f"model {where}: alpha {alpha!r} is not a finite number")
    _check_metadata(special, normalization, float(alpha), where)
    return special, normalization, float(alpha) if alpha >= 0 else DEFAULT_ALPHA


def _check_metadata(special: Sequence[Any], normalization: Any, alpha: Any, where: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise ModelError(f"model {where}: normalization {normalization!r} is not one of {', '.join(NORMALIZATIONS)}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ModelError(f"model {where}: alpha {alpha!r} must be a finite number (negative for Viterbi)")
    from ._core.lattice import MAX_ALPHA  # (what every call that samples accepts)

    if alpha > MAX_ALPHA:
        raise ModelError(
            f"model {where}: alpha {alpha!r} is above {MAX_ALPHA:g}, the largest that samples (negative: Viterbi)"
        )
    seen = set(SPECIAL_PIECES)
    for token in special:
        if not isinstance(token, str) or not token:
            raise ModelError(f"model {where}: special token {token!r} is not a non-empty string")
        if token in seen:
            raise ModelError(
                f"model {where}: special token {token!r} is defined twice or is one of {', '.join(SPECIAL_PIECES)}"
            )
        try:
            token.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate: no bytes to match or decode to
            raise ModelError(
                f"model {where}: special token {token!r} is not valid Unicode ({error.reason} at {error.start})"
            ) from None
        if normalization != "none" and unicodedata.normalize(normalization, token) != token:
            # (text is normalised before its special tokens are found: such a token would
            # match text that never held it, and decode to something else)
            raise ModelError(
                f"model {where}: special token {token!r} is not in {normalization} form, the model's "
                f"normalisation (it reads {unicodedata.normalize(normalization, token)!r}); give it in that form"
            )
        seen.add(token)


def _validate_pieces(
    pieces: Sequence[bytes], counts: Sequence[int | float], where: str, distinct: set[bytes] | None = None
) -> None:
    """The checks of a whole vocabulary (`distinct`: set(pieces), when the caller has it)."""
    if not pieces:
        raise ModelError(f"model {where}: the vocabulary is empty")
    if distinct is None:
        distinct = set(pieces)
    singles = _SINGLE_BYTES & distinct
    if len(singles) != 256:
        missing = [b for b in range(256) if bytes([b]) not in singles]
        shown = ", ".join(f"0x{b:02X}" for b in missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise ModelError(f"model {where}: all 256 single bytes must be pieces; {len(missing)} missing ({shown})")
    if len(distinct) != len(pieces):
        raise ModelError(f"model {where}: a piece appears twice")
    del distinct
    _check_total(counts, where)


def _check_total(counts: Sequence[int | float], where: str) -> None:
    # The total as the tokenizer computes it (float() of the exact sum): integer counts
    # whose float values add up to a finite number can still have an exact sum beyond
    # the float range.
    try:
        total = float(sum(counts))
    except OverflowError:  # (an int too large for a float, at the end or on the way)
        raise ModelError(f"model {where}: the counts add up to more than the largest float") from None
    if not math.isfinite(total):
        raise ModelError(f"model {where}: the counts add up to {total}")


# ---------------------------------------------------------------------------
# Pieces shown as text
#
# A piece is shown as its UTF-8 text with these escapes, so that it can be read
# back exactly: backslash is `\\`; a byte that is not part of valid UTF-8 is
# `\xNN`; newline, carriage return and tab are `\n`, `\r`, `\t`; other control
# characters are `\xNN` (or `\uNNNN` past ASCII). In the space-separated
# `pieces` format a space inside a piece is shown as `▁` (U+2581), and a real
# U+2581 as `\u2581`. A piece that would read like a special id is escaped too.

SPACE_MARK = "\u2581"
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPED = {"n": b"\n", "r": b"\r", "t": b"\t"}


def readable_piece(piece: bytes, spaces: bool = True) -> str:
    """The escaped text of a piece (``spaces=True``: the form used between separators)."""
    text = piece.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")
    out = []
    for ch in text:
        if ch in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[ch])
        elif ch == " " and spaces:
            out.append(SPACE_MARK)
        elif ch == SPACE_MARK and spaces:
            out.append("\\u2581")
        elif unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x80 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    shown = "".join(out)
    if shown in SPECIAL_PIECES:
        shown = "\\x3c" + shown[1:]
    return shown


def parse_piece(shown: str, spaces: bool = True) -> bytes:
    """Inverse of :func:`readable_piece`; ValueError on an escape it never writes."""
    out = bytearray()
    i, n = 0, len(shown)
    while i < n:
        ch = shown[i]
        if ch == "\\":
            kind = shown[i + 1 : i + 2]
            if kind == "\\":
                out += b"\\"
                i += 2
            elif kind in _UNESCAPED:
                out += _UNESCAPED[kind]
                i += 2
            elif kind == "x" and _is_hex(shown[i + 2 : i + 4], 2):
                out.append(int(shown[i + 2 : i + 4], 16))
                i += 4
            elif kind == "u" and _is_hex(shown[i + 2 : i + 6], 4):
                out += chr(int(shown[i + 2 : i + 6], 16)).encode("utf-8", "surrogatepass")
                i += 6
            else:
                raise ValueError(f"bad escape {shown[i : i + 4]!r} in piece {shown!r}")
        elif ch == SPACE_MARK and spaces:
            out += b" "
            i += 1
        else:
            out += ch.encode("utf-8")
            i += 1
    return bytes(out)


def _is_hex(s: str, width: int) -> bool:
    return len(s) == width and all(c in "0123456789abcdefABCDEF" for c in s)


class PieceTable:
    """The readable form of every id of a model, and back.

    ``id_bytes[i]`` is the bytes of id ``i`` (as ``Tokenizer.id_bytes``). Ids 0-2
    show as ``<pad>``, ``<bos>``, ``<eos>``; every other id as :func:`readable_piece`
    shows its bytes. Each form is made on first use: a command that prints a few
    lines never renders the whole vocabulary.
    """

    def __init__(self, id_bytes: Sequence[bytes], spaces: bool = True):
        self.id_bytes = id_bytes
        self.spaces = spaces
        self._shown: dict[int, str] = {}
        self._ids: dict[bytes, int] | None = None

    def __getitem__(self, i: int) -> str:
        try:
            return self._shown[i]
        except KeyError:
            shown = SPECIAL_PIECES[i] if i < FIRST_PIECE_ID else readable_piece(self.id_bytes[i], self.spaces)
            self._shown[i] = shown
            return shown

    def id_of(self, shown: str) -> int:
        """The id a readable form stands for; ValueError when it is none of this model's."""
        if self._ids is None:
            ids = {piece: i for i, piece in enumerate(self.id_bytes) if i >= FIRST_PIECE_ID}
            ids.update({name.encode(): i for i, name in enumerate(SPECIAL_PIECES)})
            self._ids = ids
        raw = shown.encode() if shown in SPECIAL_PIECES else parse_piece(shown, self.spaces)
        if raw not in self._ids:
            raise ValueError(f"{shown!r} is not a piece of this model")
        return self._ids[raw]
