# Re-segmenting pieces with a unigram vocabulary (0.6.3's pruning stage): the Viterbi
# split of each text, weighted piece counts summed in C, no Python object per text.
# Same decisions as the lattice's Viterbi: for each end e, the pieces x[s:e] are
# relaxed shortest first and `>=` lets the longest win ties.

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free, malloc

from .piece_table cimport PieceTable

import numpy as np


cdef inline size_t trie_home(uint64_t key) noexcept nogil:
    # (node << 8 | byte): a cheap multiplicative hash of the node plus the byte, so
    # the children of a node sit side by side (few cache lines per walk step).
    return <size_t>((((key >> 8) * 0x9E3779B97F4A7C15ULL) >> 24) + (key & 255))


@cython.final
cdef class PieceSplitter:
    """Viterbi splits over a vocabulary of pieces with log-probabilities.

    ``counts(texts, weights)`` (or ``count_table(table)``, the pieces of a
    PieceTable weighted by their counts) returns, for each vocabulary piece
    (by index), the sum of weight x (times it appears in a text's best split),
    as int64. The vocabulary must hold all 256 single bytes, as a Lattice.
    """
    # The trie of reversed pieces. Nodes 1..256 are the single bytes (node 1 + b),
    # their children are found in the dense array `second` (256 x 256), deeper
    # nodes through the hash table `deep`: a slot packs node (28 bits), byte and
    # child (28 bits) in 8 bytes, 0 = free, at most half full. Node 0 is the root.
    cdef int32_t* second
    cdef uint64_t* deep
    cdef size_t deep_cap, deep_size
    cdef int32_t* value       # node -> piece index, or -1
    cdef int32_t nodes
    cdef double* logp
    cdef readonly Py_ssize_t num_pieces
    cdef object _logp_ref

    def __cinit__(self):
        self.second = NULL
        self.deep = NULL
        self.deep_cap = self.deep_size = 0
        self.value = NULL
        self.logp = NULL

    def __dealloc__(self):
        free(self.second)
        free(self.deep)
        free(self.value)

    cdef inline int32_t _child(self, int32_t node, uint8_t b) noexcept nogil:
        cdef uint64_t key
        cdef size_t i, mask
        if node == 0:
            return 1 + b
        if node <= 256:
            return self.second[(node - 1) * 256 + b]
        key = (<uint64_t>node << 8) | b
        mask = self.deep_cap - 1
        i = trie_home(key) & mask
        while self.deep[i]:
            if (self.deep[i] >> 28) == key:
                return <int32_t>(self.deep[i] & 0xFFFFFFF)
            i = (i + 1) & mask
        return 0

    cdef int _add_child(self, int32_t node, uint8_t b, int32_t child) noexcept nogil:
        cdef uint64_t key
        cdef size_t i, mask
        if node <= 256:
            self.second[(node - 1) * 256 + b] = child
            return 0
        cdef uint64_t* old
        cdef size_t j, old_cap
        if (self.deep_size + 1) * 2 > self.deep_cap:
            old = self.deep
            old_cap = self.deep_cap
            self.deep = <uint64_t*>calloc(old_cap * 2, sizeof(uint64_t))
            if self.deep == NULL:
                self.deep = old
                return -1
            self.deep_cap = old_cap * 2
            mask = self.deep_cap - 1
            for j in range(old_cap):
                if old[j]:
                    i = trie_home(old[j] >> 28) & mask
                    while self.deep[i]:
                        i = (i + 1) & mask
                    self.deep[i] = old[j]
            free(old)
        key = (<uint64_t>node << 8) | b
        mask = self.deep_cap - 1
        i = trie_home(key) & mask
        while self.deep[i]:
            i = (i + 1) & mask
        self.deep[i] = (key << 28) | <uint64_t>child
        self.deep_size += 1
        return 0

    def __init__(self, list pieces, logprobs):
        import numpy as np
        cdef Py_ssize_t n = len(pieces), i, j, L, total = 0
        cdef bytes p
        cdef const uint8_t* x
        cdef int32_t node, cap
        cdef int32_t child
        cdef int singles = 0
        lp = np.ascontiguousarray(logprobs, dtype=np.float64)
        if lp.shape[0] != n:
            raise ValueError("pieces and logprobs must have the same length")
        if n and (not np.all(np.isfinite(lp)) or np.any(lp > 0)):
            raise ValueError("log-probabilities must be finite and <= 0")
        for i in range(n):
            total += len(<bytes>pieces[i])
        if total + 257 >= (1 << 28):
            raise ValueError("pieces too long in all (at most 2**28 bytes)")
        cap = <int32_t>(total + 257)
        self.value = <int32_t*>malloc(cap * sizeof(int32_t))
        self.second = <int32_t*>calloc(256 * 256, sizeof(int32_t))
        self.deep_cap = 1024
        self.deep = <uint64_t*>calloc(self.deep_cap, sizeof(uint64_t))
        if self.value == NULL or self.second == NULL or self.deep == NULL:
            raise MemoryError()
        for j in range(257):
            self.value[j] = -1
        self.nodes = 257
        for i in range(n):
            p = pieces[i]
            L = len(p)
            if L == 0:
                raise ValueError("pieces must not be empty")
            x = <const uint8_t*>PyBytes_AS_STRING(p)
            node = 0
            for j in range(L - 1, -1, -1):        # the trie of reversed pieces
                child = self._child(node, x[j])
                if child == 0:
                    child = self.nodes
                    self.value[child] = -1
                    self.nodes += 1
                    if self._add_child(node, x[j], child) < 0:
                        raise MemoryError()
                node = child
            if self.value[node] >= 0:
                raise ValueError("a piece appears twice")
            self.value[node] = <int32_t>i
            singles += L == 1
        if singles != 256:
            raise ValueError(f"all 256 single bytes must be pieces ({256 - singles} missing)")
        self._logp_ref = lp
        cdef double[::1] lv = lp
        self.logp = &lv[0] if n else NULL
        self.num_pieces = n

    cdef int _split(self, const uint8_t* x, Py_ssize_t n, int64_t weight, int64_t* out,
                    double* score, int32_t* back, int32_t* backv) noexcept nogil:
        cdef Py_ssize_t e, s
        cdef int32_t bs = 0, bv = 0, node, v, child
        cdef double c, best
        score[0] = 0.0
        for e in range(1, n + 1):
            best = -INFINITY
            node = 0
            s = e - 1
            while s >= 0:
                child = self._child(node, x[s])
                if child == 0:
                    break
                node = child
                v = self.value[node]
                if v >= 0:
                    c = score[s] + self.logp[v]
                    if c >= best:
                        best = c
                        bs = <int32_t>s
                        bv = v
                s -= 1
            score[e] = best
            back[e] = bs
            backv[e] = bv
        e = n
        while e > 0:
            out[backv[e]] += weight
            e = back[e]
        return 0

    cdef int _run(self, const uint8_t** ptrs, const int64_t* lens, const int64_t* weights,
                  Py_ssize_t m, int64_t* out) noexcept nogil:
        cdef Py_ssize_t i, longest = 0
        cdef double* score
        cdef int32_t* back
        for i in range(m):
            if lens[i] > longest:
                longest = lens[i]
        score = <double*>malloc((longest + 1) * sizeof(double))
        back = <int32_t*>malloc(2 * (longest + 1) * sizeof(int32_t))
        if score == NULL or back == NULL:
            free(score); free(back)
            return -1
        for i in range(m):
            self._split(ptrs[i], lens[i], weights[i], out, score, back, back + longest + 1)
        free(score); free(back)
        return 0

    def counts(self, list texts, weights):
        """sum over texts of weight x (count of each piece in the text's Viterbi split)."""
        import numpy as np
        cdef Py_ssize_t m = len(texts), i
        cdef int64_t[::1] w = np.ascontiguousarray(weights, dtype=np.int64)
        out = np.zeros(self.num_pieces, dtype=np.int64)
        cdef int64_t[::1] ov = out
        cdef const uint8_t** ptrs = <const uint8_t**>malloc((m + 1) * sizeof(uint8_t*))
        cdef int64_t* lens = <int64_t*>malloc((m + 1) * sizeof(int64_t))
        cdef bytes item
        cdef int rc = 0
        if w.shape[0] != m:
            free(ptrs); free(lens)
            raise ValueError("texts and weights must have the same length")
        try:
            if ptrs == NULL or lens == NULL:
                raise MemoryError()
            for i in range(m):
                item = texts[i]
                ptrs[i] = <const uint8_t*>PyBytes_AS_STRING(item)
                lens[i] = PyBytes_GET_SIZE(item)
            if m and self.num_pieces:
                with nogil:
                    rc = self._run(ptrs, lens, &w[0], m, &ov[0])
            if rc < 0:
                raise MemoryError()
        finally:
            free(ptrs); free(lens)
        return out

    def count_table(self, PieceTable table):
        """counts() of the pieces of a PieceTable, each weighted by its count."""
        import numpy as np
        out = np.zeros(self.num_pieces, dtype=np.int64)
        cdef int64_t[::1] ov = out
        cdef size_t m = table.size, i, k = 0
        cdef const uint8_t** ptrs = <const uint8_t**>malloc((m + 1) * sizeof(uint8_t*))
        cdef int64_t* lens = <int64_t*>malloc((m + 1) * sizeof(int64_t))
        cdef int64_t* ws = <int64_t*>malloc((m + 1) * sizeof(int64_t))
        cdef int rc = 0
        try:
            if ptrs == NULL or lens == NULL or ws == NULL:
                raise MemoryError()
            for i in range(table.cap):
                if table.slots[i].count:
                    ptrs[k] = table.arena + table.slots[i].offset
                    lens[k] = table.slots[i].length
                    ws[k] = table.slots[i].count
                    k += 1
            if k and self.num_pieces:
                with nogil:
                    rc = self._run(ptrs, lens, ws, <Py_ssize_t>k, &ov[0])
            if rc < 0:
                raise MemoryError()
        finally:
            free(ptrs); free(lens); free(ws)
        return out
