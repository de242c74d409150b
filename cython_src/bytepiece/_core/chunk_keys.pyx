# Per-chunk keys for the EM sample: the first 8 bytes (little-endian) of each chunk's
# BLAKE2b digest of size 8 (hashlib.blake2b(chunk, digest_size=8)), written here from
# RFC 7693 so that a block's keys are computed in one loop without the GIL; and the
# script most of a chunk's characters are in (from their UTF-8 lead bytes), which the
# script-balanced EM weighs chunks by.

from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, memset

from .common.byteviews cimport ByteViews, views_free, views_of

import numpy as np


cdef uint64_t B2B_IV[8]
B2B_IV[:] = [0x6A09E667F3BCC908ULL, 0xBB67AE8584CAA73BULL, 0x3C6EF372FE94F82BULL,
             0xA54FF53A5F1D36F1ULL, 0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL,
             0x1F83D9ABFB41BD6BULL, 0x5BE0CD19137E2179ULL]

# (A table of numbers, its rows alike by shape; the last two repeat the first two, as
# RFC 7693 gives it for 12 rounds.)
cdef uint8_t B2B_SIGMA[12][16]
B2B_SIGMA[:] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
]


cdef inline uint64_t rotr64(uint64_t x, int n) noexcept nogil:
    return (x >> n) | (x << (64 - n))


cdef inline void b2b_mix(uint64_t* v, int a, int b, int c, int d, uint64_t x, uint64_t y) noexcept nogil:
    v[a] = v[a] + v[b] + x
    v[d] = rotr64(v[d] ^ v[a], 32)
    v[c] = v[c] + v[d]
    v[b] = rotr64(v[b] ^ v[c], 24)
    v[a] = v[a] + v[b] + y
    v[d] = rotr64(v[d] ^ v[a], 16)
    v[c] = v[c] + v[d]
    v[b] = rotr64(v[b] ^ v[c], 63)


cdef void b2b_compress(uint64_t* h, const uint8_t* block, uint64_t t, bint last) noexcept nogil:
    cdef uint64_t v[16]
    cdef uint64_t m[16]
    cdef int i, j
    cdef const uint8_t* s
    for i in range(16):
        m[i] = 0
        for j in range(8):
            m[i] |= (<uint64_t>block[8 * i + j]) << (8 * j)
    for i in range(8):
        v[i] = h[i]
        v[i + 8] = B2B_IV[i]
    v[12] ^= t              # the byte counter (messages here are < 2**64 bytes)
    if last:
        v[14] = ~v[14]
    for i in range(12):
        s = B2B_SIGMA[i]
        b2b_mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        b2b_mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        b2b_mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        b2b_mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        b2b_mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        b2b_mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        b2b_mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        b2b_mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


cdef uint64_t blake2b_key(const uint8_t* x, Py_ssize_t n) noexcept nogil:
    """int.from_bytes(hashlib.blake2b(x[:n], digest_size=8).digest(), "little")."""
    cdef uint64_t h[8]
    cdef uint8_t block[128]
    cdef int i
    cdef Py_ssize_t done = 0
    for i in range(8):
        h[i] = B2B_IV[i]
    h[0] ^= 0x01010000ULL ^ 8        # fan-out 1, depth 1, no key, digest of 8 bytes
    while n - done > 128:
        b2b_compress(h, x + done, <uint64_t>(done + 128), False)
        done += 128
    memset(block, 0, 128)
    if n - done:
        memcpy(block, x + done, n - done)
    b2b_compress(h, block, <uint64_t>n, True)
    return h[0]


cdef inline int64_t chunk_script(const uint8_t* p, Py_ssize_t n, const int64_t* script_of_lead,
                                 int nscripts) noexcept nogil:
    cdef int64_t votes[65]
    cdef int64_t s, best = 0
    cdef Py_ssize_t j
    memset(votes, 0, sizeof(votes))
    for j in range(n):
        s = script_of_lead[p[j]]
        votes[s if 0 <= s < nscripts else 64] += 1
    for j in range(1, nscripts):
        if votes[j] > votes[best]:
            best = j
    return best


cdef int per_chunk(list chunks, uint64_t* keys, int64_t* scripts, const int64_t* script_of_lead,
                   int nscripts) except -1:
    """One pass over the chunks without the GIL: keys[i] = the sample key of chunk i
    (when keys is not NULL), scripts[i] = its script (when scripts is not NULL)."""
    cdef Py_ssize_t i
    cdef ByteViews views
    memset(&views, 0, sizeof(ByteViews))
    try:
        views_of(chunks, &views)
        with nogil:
            for i in range(views.count):
                if keys != NULL:
                    keys[i] = blake2b_key(views.ptrs[i], views.lens[i])
                if scripts != NULL:
                    scripts[i] = chunk_script(views.ptrs[i], views.lens[i], script_of_lead, nscripts)
    finally:
        views_free(&views)
    return 0


def chunk_keys(list chunks):
    """The sample keys of a list of bytes (uint64 numpy array): the BLAKE2b digest of
    size 8 of each, read as a little-endian integer."""
    import numpy as np
    out = np.empty(len(chunks), dtype=np.uint64)
    cdef uint64_t[::1] ov = out
    if len(chunks):
        per_chunk(chunks, &ov[0], NULL, NULL, 0)
    return out


def chunk_scripts(list chunks, const int64_t[::1] script_of_lead, int nscripts):
    """Per chunk (int64 numpy array): the script most of its characters are in, a
    character voting with script_of_lead[its first byte] (values >= nscripts do not
    vote: continuation bytes); ties go to the lower script, an empty chunk is 0."""
    import numpy as np
    if script_of_lead.shape[0] != 256 or not 0 < nscripts <= 64:
        raise ValueError("script_of_lead must have 256 entries and nscripts be in 1..64")
    out = np.zeros(len(chunks), dtype=np.int64)
    cdef int64_t[::1] ov = out
    if len(chunks):
        per_chunk(chunks, NULL, &ov[0], &script_of_lead[0], nscripts)
    return out
