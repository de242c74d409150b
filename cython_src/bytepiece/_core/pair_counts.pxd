# Counting adjacent pairs of pieces (pair_counts.pyx).

from libc.stdint cimport int64_t, uint64_t

from .common.hashing cimport murmur_fmix64


cdef struct PairSlot:
    uint64_t key              # key + 1; 0 marks an empty slot
    int64_t value


cdef class PairCounts:
    cdef PairSlot* slots
    cdef Py_ssize_t cap       # a power of two
    cdef Py_ssize_t used
    cdef readonly int64_t num_pieces
    cdef int _resize(self, Py_ssize_t cap) noexcept nogil
    cdef int add(self, uint64_t key, int64_t value) noexcept nogil
    cdef int add_run(self, const uint64_t* keys, const int64_t* values, Py_ssize_t count,
                     int64_t value) noexcept nogil


cdef inline int pair_half(uint64_t key) noexcept nogil:
    """0 or 1: which half of the pairs a key (a * num_pieces + b) falls in, by its hash's
    top bit (a table's slots come from the low bits)."""
    return <int>(murmur_fmix64(key + 1) >> 63)
