# Counting pieces of any length (piece_table.pyx).

from libc.stdint cimport int64_t, uint8_t, uint64_t


cdef struct PSlot:
    uint64_t hash
    int64_t count      # 0 = empty
    int64_t offset     # into the arena
    int64_t length


cdef struct PieceRef:
    uint64_t head     # the first 8 bytes, big-endian, zero-padded: most comparisons end here
    const uint8_t* p
    int64_t length
    int64_t count


cdef class PieceTable:
    cdef PSlot* slots
    cdef size_t cap
    cdef readonly size_t size
    cdef uint8_t* arena
    cdef size_t arena_len
    cdef size_t arena_cap
    cdef int _grow(self) noexcept nogil
    cdef int add_raw(self, const uint8_t* p, Py_ssize_t n, int64_t count, uint64_t h) noexcept nogil
    cdef size_t _sorted(self, int64_t min_count, PieceRef** out) noexcept nogil
