"""Ids, pieces and bytes: the vocabulary's table, and decoding.

Ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>`` (they decode to nothing, as in
BytePiece 0.6.3); the pieces follow from id 3 in the model's order; a model's special
tokens take the ids after the pieces and decode to their text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property

from ._core.id_lists import atomic_tuple
from ._numpy import is_array, is_integer
from .model import FIRST_PIECE_ID, SPECIAL_PIECES


class UnknownIdError(KeyError, ValueError):
    """An id outside the vocabulary (a KeyError, as in BytePiece 0.6.3, and a ValueError)."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


class UnknownPieceError(KeyError):
    """A piece (or special name) that is not in the vocabulary: a KeyError, as a dict
    lookup in BytePiece 0.6.3 gives, with a message that says so."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IdTable:
    """Lookups between ids, pieces (bytes) and special tokens (str) for one vocabulary."""

    def __init__(self, pieces: Sequence[bytes], special_ids: dict[str, int]):
        self.pieces = pieces
        self.special_ids = special_ids
        #: The bytes each id decodes to, indexed by id.
        self.id_bytes: tuple[bytes, ...] = atomic_tuple(
            [b""] * FIRST_PIECE_ID + list(pieces) + [t.encode("utf-8") for t in special_ids]
        )

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The exact bytes of ``ids`` (special ids contribute nothing); UnknownIdError
        names the first id outside the vocabulary."""
        table = self.id_bytes
        if not isinstance(ids, (list, tuple)):
            if isinstance(ids, (bytes, bytearray, str)):  # (iterable, but not ids: b"abc" read as 97 98 99)
                raise TypeError(f"decode takes a sequence of ids, not {type(ids).__name__}")
            ids = ids.tolist() if is_array(ids) else list(ids)
        # (a bool among the ids indexes as 0 or 1, both special ids that write nothing:
        # looking for one would cost decode a third of its time on ids that hold <bos>)
        try:
            if ids and (min(ids) < 0 or max(ids) >= len(table)):
                raise IndexError
            return b"".join([table[i] for i in ids])
        except (IndexError, TypeError):
            raise self._unknown_id(next(i for i in ids if not _is_id(i, len(table)) and type(i) is not bool)) from None

    def piece_to_id(self, piece):
        """Id of a piece (bytes, or any bytes-like), of '<pad>', '<bos>', '<eos>' or of a
        special token (str)."""
        key = piece
        if type(piece) is not bytes and isinstance(piece, (bytearray, memoryview)):
            key = bytes(piece)  # (a bytearray is unhashable, a memoryview is not: alike here)
        try:
            return self.piece_ids[key]
        except (KeyError, TypeError):
            raise self._unknown_piece(piece) from None

    def id_to_piece(self, i):
        """Piece (bytes) of an id; '<pad>', '<bos>', '<eos>' for 0, 1, 2; a special token's str."""
        if type(i) is not int and not _is_id(i, len(self.id_bytes)):  # (True and 100.0 find 1 and 100)
            raise self._unknown_id(i)
        try:
            return self.id_pieces[i]
        except (KeyError, TypeError):
            raise self._unknown_id(i) from None

    def pieces_to_ids(self, pieces):
        """[piece_to_id(p) for p in pieces]."""
        if not isinstance(pieces, (list, tuple)):
            pieces = list(pieces)  # (an iterator is read once: an error reads the pieces again)
        if not {bytes, str}.issuperset(map(type, pieces)):
            return [self.piece_to_id(p) for p in pieces]
        table = self.piece_ids
        try:
            return [table[p] for p in pieces]
        except KeyError:
            raise self._unknown_piece(next(p for p in pieces if p not in table)) from None

    def ids_to_pieces(self, ids):
        """[id_to_piece(i) for i in ids]."""
        if not isinstance(ids, (list, tuple)):
            # (an iterator is read once: an error reads the ids again)
            ids = ids.tolist() if is_array(ids) else list(ids)
        if not {int}.issuperset(map(type, ids)):
            return [self.id_to_piece(i) for i in ids]
        table = self.id_pieces
        try:
            return [table[i] for i in ids]
        except KeyError:
            raise self._unknown_id(next(i for i in ids if i not in table)) from None

    def _unknown_id(self, i) -> UnknownIdError:
        return unknown_id(i, len(self.id_bytes))

    @staticmethod
    def _unknown_piece(piece) -> UnknownPieceError:
        return UnknownPieceError(
            f"{piece!r} is not a piece of this model (a piece is bytes; '<pad>', '<bos>', '<eos>' and "
            "special tokens are str)"
        )

    @cached_property
    def piece_ids(self) -> dict:
        """piece (bytes) or name (str) -> id."""
        mapping: dict[bytes | str, int] = {p: i for i, p in enumerate(self.pieces, FIRST_PIECE_ID)}
        mapping.update({name: i for i, name in enumerate(SPECIAL_PIECES)})
        mapping.update(self.special_ids)
        return mapping

    @cached_property
    def id_pieces(self) -> dict:
        """id -> piece (bytes) or name (str)."""
        mapping: dict[int, bytes | str] = dict(enumerate(SPECIAL_PIECES))
        mapping.update(enumerate(self.pieces, FIRST_PIECE_ID))
        mapping.update({i: name for name, i in self.special_ids.items()})
        return mapping


def unknown_id(i, size: int) -> UnknownIdError:
    """The error for ``i``, which is not an id of a vocabulary of ``size`` ids."""
    return UnknownIdError(f"id {i!r} is not in the vocabulary (0 .. {size - 1})")


def _is_id(i, size: int) -> bool:
    """Whether ``i`` is an id of a vocabulary of ``size`` ids: an integer (numpy's too, never
    a bool nor a float) from 0 to size - 1."""
    return is_integer(i) and not isinstance(i, bool) and 0 <= i < size
