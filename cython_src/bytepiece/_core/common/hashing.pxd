# 64-bit mixing functions: hash-table slots, hashes of byte strings, and the seeding
# of the samplers' generators. Header-only (inline, no .pyx, no runtime module).
#
# Why it is built this way: every table and every generator needs a cheap, well-mixed
# function of a 64-bit word, and each use is pinned by outputs that must never change
# (slot order of saved tables, sample of a seed and key). So there is exactly one
# definition of each, under the name of the published function it is:
# - murmur_fmix64: MurmurHash3's 64-bit finaliser (the pair counts' slots);
# - splitmix64_mix: SplitMix64's output function (the n-gram and piece tables'
#   slots, hash_bytes), and splitmix64_next, the generator built on it;
# - hash_words: a hash of an ordered pair of words (seed word, key word -> state).

from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy


cdef inline uint64_t murmur_fmix64(uint64_t x) noexcept nogil:
    x ^= x >> 33
    x *= <uint64_t>0xff51afd7ed558ccd
    x ^= x >> 33
    x *= <uint64_t>0xc4ceb9fe1a85ec53
    x ^= x >> 33
    return x


cdef inline uint64_t splitmix64_mix(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t splitmix64_next(uint64_t* state) noexcept nogil:
    state[0] += 0x9E3779B97F4A7C15ULL
    return splitmix64_mix(state[0])


cdef inline uint64_t hash_words(uint64_t a, uint64_t b) noexcept nogil:
    """A 64-bit hash of the ordered pair (a, b)."""
    cdef uint64_t s = a
    cdef uint64_t h = splitmix64_next(&s)
    s = h ^ b
    h = splitmix64_next(&s)
    s = h ^ 0x6A09E667F3BCC909ULL
    return splitmix64_next(&s)


cdef inline uint64_t hash_bytes(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """A 64-bit hash of n bytes, eight at a time (the piece tables' keys)."""
    cdef uint64_t h = 0x9E3779B97F4A7C15ULL ^ (<uint64_t>n * 0xFF51AFD7ED558CCDULL)
    cdef uint64_t w
    cdef Py_ssize_t i = 0, t
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        h = splitmix64_mix(h ^ w) + 0x632BE59BD9B4E019ULL
        i += 8
    if i < n:
        w = 0
        for t in range(n - i):
            w |= (<uint64_t>p[i + t]) << (8 * t)
        h = splitmix64_mix(h ^ w ^ 0xA0761D6478BD642FULL)
    return splitmix64_mix(h)
