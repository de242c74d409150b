# Counting byte n-grams (ngram_table.pyx): the tables the n-gram model is built from.

from libc.stdint cimport int64_t, uint8_t, uint64_t

from .common.hashing cimport splitmix64_mix


cdef enum:
    C_MAX_ORDER = 8     # n-grams are packed in a uint64
    PF_AHEAD = 12       # counting and tagging prefetch the n-grams of the byte this far ahead
    PF_RING = 16        # a power of two > PF_AHEAD
    PF_MASK = PF_RING - 1

cdef struct CSlot:
    uint64_t key
    int64_t count


cdef struct CountTable:
    CSlot* slots      # key and count side by side: one cache line per probe
    size_t cap        # a power of two, or 0
    size_t size


cdef int ct_init(CountTable* t, size_t cap) noexcept nogil
cdef void ct_free(CountTable* t) noexcept nogil
cdef int ct_resize(CountTable* t, size_t cap) noexcept nogil
cdef int ct_drop_below(CountTable* t, int64_t threshold) noexcept nogil


cdef inline void ct_put_new(CountTable* t, uint64_t key, int64_t count) noexcept nogil:
    # key known to be absent and room known to exist
    cdef size_t mask = t.cap - 1
    cdef size_t i = splitmix64_mix(key) & mask
    while t.slots[i].count != 0:
        i = (i + 1) & mask
    t.slots[i].key = key
    t.slots[i].count = count
    t.size += 1


cdef inline int ct_add(CountTable* t, uint64_t key, int64_t count) noexcept nogil:
    cdef size_t mask, i
    if (t.size + 1) * 10 > t.cap * 7:
        if ct_resize(t, t.cap * 2 if t.cap else 16) < 0:
            return -1
    mask = t.cap - 1
    i = splitmix64_mix(key) & mask
    while t.slots[i].count != 0:
        if t.slots[i].key == key:
            t.slots[i].count += count
            return 0
        i = (i + 1) & mask
    t.slots[i].key = key
    t.slots[i].count = count
    t.size += 1
    return 0


cdef inline int64_t ct_get(const CountTable* t, uint64_t key) noexcept nogil:
    cdef size_t mask, i
    if t.cap == 0:
        return 0
    mask = t.cap - 1
    i = splitmix64_mix(key) & mask
    while t.slots[i].count != 0:
        if t.slots[i].key == key:
            return t.slots[i].count
        i = (i + 1) & mask
    return 0


cdef class NgramTable:
    cdef readonly int order
    cdef readonly int64_t total          # count of the empty n-gram = number of bytes
    cdef readonly int64_t budget
    cdef readonly int64_t pruned_below   # largest prune threshold used (0 = exact)
    cdef int64_t uni[256]
    cdef CountTable tabs[C_MAX_ORDER + 1]   # index = length (2..order used)
    cdef readonly bint compact
    # finish_ngrams(release=True) frees the counts as it goes; only len() answers then
    cdef readonly bint released
    cdef Py_ssize_t released_len
    cdef int _expand(self) noexcept nogil
    cdef int _expand_level(self, int L) noexcept nogil
    cdef int expand(self) except -1
    cdef int check_usable(self) except -1
    cdef void release_level(self, int L) noexcept nogil
    cdef size_t _entries(self) noexcept nogil
    cdef int _count_chunk(self, const uint8_t* x, Py_ssize_t n) noexcept nogil
    cdef int _count_chunk_compact(self, const uint8_t* x, Py_ssize_t n) noexcept nogil
