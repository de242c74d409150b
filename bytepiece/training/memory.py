"""glibc malloc tuning for training, so that each stage's peak memory is given back
before the next stage's begins.

The stages allocate big tables and arrays, free them, and allocate others. glibc keeps
freed blocks in its heaps (one per thread) for reuse and raises its mmap threshold as
big blocks are freed, so without help the peak of one stage stays resident through
the next. Two calls fix that; both do nothing where the C library is not glibc.
"""

from __future__ import annotations

import os
import sys


def _load_libc():
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:  # not glibc: nothing to do
        return None


_LIBC = _load_libc() if sys.platform.startswith("linux") else None
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
#: Allocations of this many bytes or more get their own mapping (map_big_blocks).
MMAP_THRESHOLD = 1 << 20


def return_free_memory() -> None:
    """Hand memory freed by a stage back to the operating system (glibc keeps freed
    blocks of its heaps for reuse otherwise)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def map_big_blocks() -> None:
    """Give every allocation of MMAP_THRESHOLD bytes or more its own mapping, returned to
    the operating system when freed. glibc starts with such a threshold (128 KB) but
    raises it to the size of each mapped block freed, up to 32 MB; after the first big
    table is freed, the tables and arrays of a stage would then land in the heaps and
    stay resident after it. Fixing the threshold is process-wide (glibc has no way back
    to the sliding one); a threshold set with MALLOC_MMAP_THRESHOLD_ in the environment
    is left alone."""
    if _LIBC is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
