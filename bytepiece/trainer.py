"""The training names where earlier versions had them (``from bytepiece.trainer import
Trainer``); the trainer itself is the package :mod:`bytepiece.training`."""

from .training import *  # noqa: F403
from .training import __all__  # noqa: F401
