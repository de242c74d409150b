"""bytepiece: a byte-level Unigram tokenizer with exact stochastic segmentation.

A drop-in successor to BytePiece 0.6.3: the same model files, the same Viterbi
segmentations, and samples drawn exactly in proportion to exp(alpha * score).
"""

from ._version import __version__
from .model import ModelError, Vocabulary, load_model, save_model
from .tokenizer import Encoding, Tokenizer, UnknownIdError

__all__ = [
    "Tokenizer",
    "Encoding",
    "Trainer",
    "ModelError",
    "UnknownIdError",
    "Vocabulary",
    "load_model",
    "save_model",
    "normalize",
    "convert_to_bytepiece",
    "__version__",
]

# The trainer and its helpers load on first use, so `import bytepiece` stays quick.
_LAZY = {
    "Trainer": ("trainer", "Trainer"),
    "normalize": ("corpus", "normalize"),
    "convert_to_bytepiece": ("convert", "convert_to_bytepiece"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bytepiece' has no attribute {name!r}")
