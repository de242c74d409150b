"""Model files in BytePiece 0.6.3's format, read and written.

The format is one JSON object ``{base64(piece bytes): [id, piece text, count]}``.
Ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>`` and are not stored; the pieces
take the ids 3 .. N+2. The text is a lossy rendering (``errors='ignore'``) kept
only for people reading the file; the bytes and the count are what matter.

Everything is validated here, at load time, so that a bad file fails with a
:class:`ModelError` naming the file and the problem instead of crashing or
giving wrong output later. Models load from a JSON file, from a zip archive
holding one (as BytePiece's author publishes them), or from a dict.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import os
import zipfile
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

from .atomic import atomic_write

SPECIAL_PIECES = ("<pad>", "<bos>", "<eos>")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_PIECE_ID = len(SPECIAL_PIECES)

ModelSource = Union[str, "os.PathLike[str]", Mapping[str, Any], "Vocabulary"]


class ModelError(ValueError):
    """A model file or dict is not a valid BytePiece model."""


@dataclass(frozen=True)
class Vocabulary:
    """The pieces of a model in id order (``pieces[i]`` has id ``i + 3``) and their counts."""

    pieces: tuple[bytes, ...]
    counts: tuple[int | float, ...]

    def __len__(self) -> int:
        return len(self.pieces)

    def to_dict(self) -> dict[str, list]:
        """The model as BytePiece 0.6.3's JSON object."""
        return {
            base64.b64encode(piece).decode("ascii"): [
                index + FIRST_PIECE_ID,
                piece.decode("utf-8", errors="ignore"),
                count,
            ]
            for index, (piece, count) in enumerate(zip(self.pieces, self.counts))
        }


def vocabulary_from_counts(pieces: Mapping[bytes, int | float]) -> Vocabulary:
    """Order pieces as BytePiece 0.6.3 numbers them: by (length, bytes)."""
    ordered = sorted(pieces.items(), key=lambda item: (len(item[0]), item[0]))
    vocab = Vocabulary(tuple(p for p, _ in ordered), tuple(c for _, c in ordered))
    _validate_pieces(vocab.pieces, vocab.counts, "<pieces>")
    return vocab


def load_model(source: ModelSource) -> Vocabulary:
    """Read and validate a model from a path (JSON or zip), a dict, or a Vocabulary."""
    if isinstance(source, Vocabulary):
        return source
    if isinstance(source, Mapping):
        return _parse(source, "<dict>")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return _parse(_read_json(path), repr(path))
    raise TypeError(
        f"a model is a path, a dict in BytePiece format or a Vocabulary, not {type(source).__name__}"
    )


def save_model(path: str | os.PathLike, pieces: Mapping[bytes, int | float] | Vocabulary, *, overwrite: bool = True) -> None:
    """Write a model in BytePiece 0.6.3's JSON format, atomically.

    ``pieces`` maps piece bytes to counts (ids are assigned by (length, bytes),
    as 0.6.3 does) or is a :class:`Vocabulary` whose ids are kept. The output
    is byte-for-byte what 0.6.3's ``Trainer.save`` writes.
    """
    vocab = pieces if isinstance(pieces, Vocabulary) else vocabulary_from_counts(pieces)
    with atomic_write(path, "w", overwrite=overwrite) as handle:
        json.dump(vocab.to_dict(), handle, indent=4, ensure_ascii=False)


def _read_json(path: str) -> Any:
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise ModelError(
                        f"model {path!r}: a zipped model must hold exactly one file, found {len(members)}"
                    )
                raw = archive.read(members[0])
        else:
            with open(path, "rb") as handle:
                raw = handle.read()
    except ModelError:
        raise
    except (OSError, zipfile.BadZipFile, RuntimeError) as error:
        # OSError subclasses keep their type (FileNotFoundError etc.) for callers that test it.
        if isinstance(error, OSError):
            raise
        raise ModelError(f"model {path!r}: cannot read the archive: {error}") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelError(f"model {path!r}: not UTF-8 text (byte {error.start})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelError(
            f"model {path!r}: not JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from error
    except RecursionError as error:
        raise ModelError(f"model {path!r}: JSON nested too deeply") from error


def _parse(data: Any, where: str) -> Vocabulary:
    if not isinstance(data, Mapping):
        raise ModelError(
            f"model {where}: expected a JSON object {{base64 piece: [id, text, count]}}, got {type(data).__name__}"
        )
    if not data:
        raise ModelError(f"model {where}: the vocabulary is empty")
    by_id: dict[int, tuple[bytes, int | float]] = {}
    seen: dict[bytes, str] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ModelError(f"model {where}: piece key {key!r} is not a base64 string")
        try:
            piece = base64.b64decode(key, validate=True)
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
        if not (count > 0 and math.isfinite(count)):
            raise ModelError(f"model {where}: piece {key!r} has count {count!r}; counts must be finite and > 0")
        if piece_id in by_id:
            raise ModelError(
                f"model {where}: id {piece_id} is used twice (pieces {base64.b64encode(by_id[piece_id][0]).decode()!r} and {key!r})"
            )
        by_id[piece_id] = (piece, count)
    n = len(by_id)
    expected = range(FIRST_PIECE_ID, FIRST_PIECE_ID + n)
    if min(by_id) != FIRST_PIECE_ID or max(by_id) != expected[-1]:
        missing = next((i for i in expected if i not in by_id), None)
        raise ModelError(
            f"model {where}: ids must be contiguous from {FIRST_PIECE_ID} to {expected[-1]} "
            f"(found {min(by_id)}..{max(by_id)}"
            + (f", {missing} missing)" if missing is not None else ")")
        )
    pieces = tuple(by_id[i][0] for i in expected)
    counts = tuple(by_id[i][1] for i in expected)
    _validate_pieces(pieces, counts, where)
    return Vocabulary(pieces, counts)


def _validate_pieces(pieces: Sequence[bytes], counts: Sequence[int | float], where: str) -> None:
    if not pieces:
        raise ModelError(f"model {where}: the vocabulary is empty")
    singles = {p for p in pieces if len(p) == 1}
    if len(singles) != 256:
        missing = [b for b in range(256) if bytes([b]) not in singles]
        shown = ", ".join(f"0x{b:02X}" for b in missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise ModelError(
            f"model {where}: all 256 single bytes must be pieces; {len(missing)} missing ({shown})"
        )
    if len(set(pieces)) != len(pieces):
        raise ModelError(f"model {where}: a piece appears twice")
    total = math.fsum(counts)
    if not math.isfinite(total):
        raise ModelError(f"model {where}: the counts add up to {total}")
