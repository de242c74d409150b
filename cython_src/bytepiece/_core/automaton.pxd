# The vocabulary as an Aho-Corasick automaton: the lattice's edges, position by position,
# for every kernel. Built once per vocabulary by automaton.pyx; walked inline from here.
#
# The goto function is a double-array trie of the pieces (forward). A node's `fail` is
# the node of its longest proper suffix that is also a node, and its `out` the longest
# piece that is a suffix of its bytes; each piece links to the longest piece that is a
# proper suffix of it (`next`). Reading the text one byte at a time (ac_next), the state
# is the longest suffix of the text read since the last reset that is a prefix of some
# piece, so the pieces ending at the current position are exactly the chain out, next,
# next, ... of that state: longest first, ending with the single byte (every single
# byte is a piece). A kernel resets the state to the root where no piece may cross (a
# chunk start, a required boundary).
#
# Why an automaton and not a walk back through a reversed trie from every position:
# the walk costs the length of the longest piece suffix ending there, including every
# inner node that is not a piece, so a run of one byte against a long piece of that byte
# costs O(n * L). Here a position costs one transition (failure steps are paid for by
# the depth gained before, so at most one per byte in all) plus one step per edge: O(n
# + edges) for every vocabulary and text, and fewer dependent loads on real text too.
#
# Order: kernels that sum or rank edges see them shortest first (ac_edges), as the tie
# rules and floating-point sums were defined; Viterbi reads the chain longest first and
# replaces only on a strictly better score, which picks the same edge (the longest
# among equals).

from libc.stdint cimport int32_t, uint8_t


cdef struct AcNode:         # one double-array slot (16 bytes: what one step reads is together)
    int32_t base            # children at base + byte
    int32_t check           # the parent's slot (-1: a free slot; -2: the root)
    int32_t fail            # the node of the longest proper suffix that is a node
    int32_t out             # the longest piece that is a suffix of the node's bytes (-1: none)


cdef struct AcPiece:
    int32_t len             # bytes
    int32_t next            # the longest piece that is a proper suffix of this one (-1: none)


cdef struct Automaton:
    AcNode* nodes           # slots [0, size), plus 256 free slots of padding: base + byte never overruns
    AcPiece* pieces         # per piece index
    int32_t size
    int32_t max_len         # the longest piece, in bytes
    int32_t num_pieces


cdef int automaton_build(Automaton* A, list pieces) except -1
cdef void automaton_free(Automaton* A) noexcept nogil


cdef inline int32_t ac_next(const AcNode* nodes, int32_t state, uint8_t c) noexcept nogil:
    """The state after reading byte c in `state` (the root has every byte as a child,
    so the failure steps end)."""
    cdef int32_t t
    while True:
        t = nodes[state].base + c
        if nodes[t].check == state:
            return t
        state = nodes[state].fail


cdef inline int ac_edges(const Automaton* A, int32_t state, Py_ssize_t e, int32_t* starts,
                         int32_t* values) noexcept nogil:
    """The edges into e of a state reached at e: starts[j] and values[j] (piece index)
    for j < k, shortest first; returns k (>= 1 at any state but the root)."""
    cdef const AcPiece* P = A.pieces
    cdef int32_t v = A.nodes[state].out, t
    cdef int k = 0, i
    while v >= 0:
        starts[k] = <int32_t>(e - P[v].len)
        values[k] = v
        k += 1
        v = P[v].next
    for i in range(k // 2):                 # the chain runs longest first
        t = starts[i]; starts[i] = starts[k - 1 - i]; starts[k - 1 - i] = t
        t = values[i]; values[i] = values[k - 1 - i]; values[k - 1 - i] = t
    return k


cdef inline int32_t ac_piece_at(const Automaton* A, const uint8_t* x, Py_ssize_t s,
                                Py_ssize_t e) noexcept nogil:
    """The index of the piece x[s:e], or -1 when it is not one (a lookup along the goto
    function alone)."""
    cdef const AcNode* nodes = A.nodes
    cdef int32_t node = 0, t, v
    cdef Py_ssize_t i
    if e - s > A.max_len or e <= s:
        return -1
    for i in range(s, e):
        t = nodes[node].base + x[i]
        if nodes[t].check != node:
            return -1
        node = t
    v = nodes[node].out
    return v if A.pieces[v].len == e - s else -1
