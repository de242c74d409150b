"""numpy, imported when it is first used.

Why: importing numpy costs more than the rest of a cold start (a new process that
imports bytepiece, loads a model and encodes a line: about 80 ms and 15 MB of the
process's peak), and that path needs none of it. The modules that ``import bytepiece``
loads, compiled ones included, write ``from ._numpy import np`` (``from .._numpy import
np`` in ``_core``) and use ``np`` as they would numpy: the first attribute read imports
numpy, and the stand-in then becomes a plain module holding numpy's namespace (as
importlib's lazy modules do), so that later reads cost what reading numpy's own does,
with no call per use on the paths that return arrays (numpy's own ``__getattr__``
comes along and answers for the names numpy makes on demand). For type checkers ``np``
is numpy itself. (The trainer and the modules only it loads need numpy whenever they
run, and import it as usual.)

No numpy array or scalar exists before numpy is imported, so :func:`is_array` and
:func:`is_integer` answer their isinstance question without importing it: the paths
that take a list or an array (decode, for one) stay free of numpy for lists.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

__all__ = ["np", "is_array", "is_integer"]


class _Numpy(types.ModuleType):
    """Stands for numpy until an attribute is first read: numpy is imported then, its
    namespace copied here, and this object made a plain module (whose attribute reads
    are a dict lookup, where this class's __getattr__ hook would cost each read some
    60 ns)."""

    def __getattr__(self, name: str) -> Any:
        import numpy

        self.__dict__.update(numpy.__dict__)
        self.__class__ = types.ModuleType  # type: ignore[assignment]
        return getattr(numpy, name)


if TYPE_CHECKING:
    from typing import TypeGuard

    import numpy as np
else:
    np = _Numpy("numpy")


_ndarray: type | None = None  # numpy.ndarray, once numpy is imported


def is_array(value: object) -> TypeGuard[np.ndarray]:
    """isinstance(value, numpy.ndarray), without importing numpy."""
    global _ndarray
    if _ndarray is None:
        numpy = sys.modules.get("numpy")
        if numpy is None:
            return False
        _ndarray = numpy.ndarray
    return isinstance(value, _ndarray)


def is_integer(value: object) -> bool:
    """isinstance(value, (int, numpy.integer)), without importing numpy (True for a
    bool, as isinstance is)."""
    if isinstance(value, int):
        return True
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.integer)
