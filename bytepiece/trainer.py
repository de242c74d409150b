"""The training names where earlier versions had them (``from bytepiece.trainer import
Trainer``); the trainer itself is the package :mod:`bytepiece.training`."""

from .training import (
    EM_MAX_PIECE_LENGTH,
    MAX_PIECE_LENGTH,
    CorpusError,
    EmOptions,
    EmptyCorpusError,
    Trainer,
    TrainerError,
    TrainerOptions,
    convert_to_bytepiece,
)

__all__ = [
    "Trainer",
    "TrainerError",
    "TrainerOptions",
    "EmOptions",
    "EmptyCorpusError",
    "CorpusError",
    "convert_to_bytepiece",
    "MAX_PIECE_LENGTH",
    "EM_MAX_PIECE_LENGTH",
]
