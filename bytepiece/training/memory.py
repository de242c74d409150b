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


#: The default n-gram budget takes this share of the memory the process may use, less
#: what the rest of a run needs (the interpreter, blocks in flight, the EM sample and the
#: EM's tables: about this much with the default sample) ...
AUTO_NGRAM_SHARE = 0.25
AUTO_NGRAM_RESERVE = 256_000_000
#: ... at least this much ...
AUTO_NGRAM_MIN = 16_000_000
#: ... and at most this much: enough for the candidates of any vocabulary to be counted
#: exactly (on a 200 MB slice of code and text, it costs under 0.1% of held-out
#: compression against no budget at all: benchmarks/README.md), and small enough that a
#: default run on a 1 GB corpus peaks under 2 GB.
AUTO_NGRAM_MAX = 1_000_000_000


def available_memory() -> int | None:
    """The bytes this process may still use, as far as it can tell: the smallest of the
    system's MemAvailable, the process's data and address-space limits (RLIMIT_DATA,
    RLIMIT_AS) and its cgroup's memory limit less its usage; None when none is known."""
    known = []
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    known.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        for limit in (resource.RLIMIT_DATA, resource.RLIMIT_AS):
            soft = resource.getrlimit(limit)[0]
            if soft != resource.RLIM_INFINITY and soft > 0:
                known.append(int(soft))
    except (ImportError, AttributeError, OSError, ValueError):
        pass
    known.extend(_cgroup_room())
    return min(known) if known else None


def _cgroup_room() -> list[int]:
    """The room left under this process's cgroup (v2) memory limit, if it has one."""
    try:
        with open("/proc/self/cgroup") as handle:
            path = next((line.strip()[3:] for line in handle if line.startswith("0::")), None)
        if path is None:
            return []
        folder = "/sys/fs/cgroup" + path
        with open(folder + "/memory.max") as handle:
            limit = handle.read().strip()
        if limit == "max":
            return []
        with open(folder + "/memory.current") as handle:
            used = int(handle.read().strip())
        return [max(int(limit) - used, 0)]
    except (OSError, ValueError):
        return []


def auto_ngram_memory() -> int:
    """The default n-gram budget (bytes): AUTO_NGRAM_SHARE of available_memory() less
    AUTO_NGRAM_RESERVE, within [AUTO_NGRAM_MIN, AUTO_NGRAM_MAX] (the maximum where
    nothing is known). The tables, their transients included, stay within about the
    budget (the entry budget assumes slots a third full: TrainerOptions.budget_entries)."""
    room = available_memory()
    if room is None:
        return AUTO_NGRAM_MAX
    return int(min(max((room - AUTO_NGRAM_RESERVE) * AUTO_NGRAM_SHARE, AUTO_NGRAM_MIN), AUTO_NGRAM_MAX))


def default_workers(cores: int) -> int:
    """The threads a training run uses by default: the usable ``cores``, but one for every
    AUTO_NGRAM_RESERVE bytes the process may use (at least one). Each thread counts a
    block into tables of its own, so on a machine (or under a limit) with little memory
    a second thread would cost more memory than it saves time."""
    room = available_memory()
    if room is None:
        return max(1, cores)
    return max(1, min(cores, room // AUTO_NGRAM_RESERVE))
