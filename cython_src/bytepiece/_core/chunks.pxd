# Chunks: BytePiece 0.6.3 cuts a text after every run of newlines (its regex
# `.*\n+|.+`) and segments each chunk on its own. No piece crosses a chunk start, and
# Viterbi scores restart at 0 there (so floating-point sums, and so ties, are exactly
# 0.6.3's). Header-only (inline, no .pyx, no runtime module).

from libc.stdint cimport uint8_t


cdef inline bint is_chunk_start(const uint8_t* x, Py_ssize_t p) noexcept nogil:
    """Position p > 0 starts a chunk: the previous chunk ended with its run of newlines."""
    return x[p - 1] == 10 and x[p] != 10


cdef inline Py_ssize_t chunk_end(const uint8_t* x, Py_ssize_t cs, Py_ssize_t n, bint chunked) noexcept nogil:
    """The end of the chunk that starts at cs < n (n itself when not chunked)."""
    cdef Py_ssize_t ce = cs + 1
    if not chunked:
        return n
    while ce < n and not is_chunk_start(x, ce):
        ce += 1
    return ce
