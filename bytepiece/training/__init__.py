"""Training a vocabulary: BytePiece 0.6.3's n-gram algorithm, then Unigram EM.

>>> from bytepiece.training import Trainer
>>> trainer = Trainer(max_vocab_size=8000, verbose=False)
>>> trainer.train_files(["corpus.txt"], workers=2)
>>> trainer.save("my.model")
>>> len(trainer.pieces) <= 8000
True

Where things are: ``options`` (every option and what it does), ``trainer`` (the
``Trainer`` class), ``pipeline`` (the stages in order), the stages ``ngrams``,
``pieces``, ``prune`` (with ``convert_to_bytepiece``), ``em`` and ``sample`` (the EM
sample), ``engines`` (threads, processes; Dask's is in ``bytepiece.distributed``),
``kernels`` (every call into the compiled core) and ``memory`` (glibc malloc tuning).
"""

from ..corpus import CorpusError, EmptyCorpusError
from .options import EM_MAX_PIECE_LENGTH, MAX_PIECE_LENGTH, EmOptions, TrainerError, TrainerOptions
from .prune import convert_to_bytepiece
from .trainer import Trainer

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
