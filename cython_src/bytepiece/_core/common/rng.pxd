# Random numbers for the lattice samplers. Header-only (inline, no .pyx, no runtime module).
#
# Why it is built this way: a sample must be a pure function of (tokenizer seed,
# key, text, alpha), the same in any process, thread or batch position. So there
# is no generator object that lives between calls and no global state: each call
# derives a fresh xoshiro256** state from two 64-bit words (a seed word and a key
# word) with SplitMix64, keeps it on the stack, and draws 53-bit uniforms from it.
#
# `kind` selects the generator: 0 is xoshiro256** (the only one users get);
# 1 and 2 are deliberately weak generators kept for the statistical tests: the
# suite must reject a sampler driven by 1 (4-bit uniforms), while 2 (an old-libc
# style LCG) documents a weakness such tests cannot see, since the sampler reads
# only the high bits of each draw (docs/exact-sampling.md).

from libc.stdint cimport uint64_t

from .hashing cimport hash_words, splitmix64_next

cdef enum:
    RNG_XOSHIRO = 0
    RNG_COARSE = 1     # uniforms with only 4 bits of resolution
    RNG_LCG31 = 2      # a 31-bit linear congruential generator, like old libc rand()

cdef struct Rng:
    uint64_t s0, s1, s2, s3
    int kind


cdef inline void rng_init(Rng* rng, uint64_t seed_word, uint64_t key_word, int kind) noexcept nogil:
    cdef uint64_t s = hash_words(seed_word, key_word)
    rng.s0 = splitmix64_next(&s)
    rng.s1 = splitmix64_next(&s)
    rng.s2 = splitmix64_next(&s)
    rng.s3 = splitmix64_next(&s)
    if (rng.s0 | rng.s1 | rng.s2 | rng.s3) == 0:
        rng.s0 = 1
    rng.kind = kind


cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline uint64_t rng_next(Rng* rng) noexcept nogil:
    """xoshiro256** (Blackman and Vigna)."""
    cdef uint64_t result = _rotl(rng.s1 * 5, 7) * 9
    cdef uint64_t t = rng.s1 << 17
    rng.s2 ^= rng.s0
    rng.s3 ^= rng.s1
    rng.s1 ^= rng.s2
    rng.s0 ^= rng.s3
    rng.s2 ^= t
    rng.s3 = _rotl(rng.s3, 45)
    return result


cdef inline double rng_uniform(Rng* rng) noexcept nogil:
    """A uniform double in [0, 1)."""
    if rng.kind == RNG_XOSHIRO:
        return <double>(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0)
    if rng.kind == RNG_COARSE:
        return <double>(rng_next(rng) >> 60) * (1.0 / 16.0)
    # RNG_LCG31: the state lives in s0; its defects are in the low bits and in the
    # lattice structure of successive outputs.
    rng.s0 = (rng.s0 * 1103515245ULL + 12345ULL) & 0x7FFFFFFFULL
    return <double>rng.s0 * (1.0 / 2147483648.0)
