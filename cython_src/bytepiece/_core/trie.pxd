# The byte trie of a vocabulary, with its pieces *reversed*, as a double array
# (base/check/value). Built once per vocabulary by trie.pyx; walked by every kernel.
#
# Why reversed: from an end position e, one walk backwards through the text meets
# every piece that ends at e, shortest first. So each lattice algorithm is a "pull"
# pass that finishes position e as soon as its incoming edges are read (which exact
# sampling needs), and Viterbi gets 0.6.3's tie rule (the longest piece wins) by
# replacing on >= in that order. The walk is inline here: it is the inner loop of
# everything.

from libc.stdint cimport int32_t, uint8_t


cdef struct Trie:
    int32_t* base
    int32_t* check
    int32_t* value      # piece index, or -1
    int32_t size        # slots in use (arrays hold size + 256 so base + byte never overruns)
    int32_t max_len     # longest piece, in bytes


cdef int trie_build(Trie* trie, list pieces) except -1
cdef void trie_free(Trie* trie) noexcept nogil


cdef inline int trie_edges(const Trie* trie, const uint8_t* x, Py_ssize_t e, Py_ssize_t lo,
                           int32_t* starts, int32_t* values) noexcept nogil:
    """Pieces x[s:e] with s >= lo, shortest first; returns how many."""
    cdef int32_t node = 0, t
    cdef Py_ssize_t i = e - 1
    cdef int k = 0
    while i >= lo:
        t = trie.base[node] + x[i]
        if trie.check[t] != node:
            break
        node = t
        if trie.value[node] >= 0:
            starts[k] = <int32_t>i
            values[k] = trie.value[node]
            k += 1
        i -= 1
    return k
