# The segmentation lattice: a byte trie of the vocabulary and the algorithms
# that run on it (Viterbi decoding, exact sampling, the legacy v1 sampler,
# forward-backward).
#
# Why it is built this way:
# - The trie holds the pieces *reversed*, as a double array (base/check). From
#   an end position e we walk backwards through the text and meet, in one walk,
#   every piece that ends at e (shortest first). So every algorithm is a "pull"
#   pass: position e is finished as soon as its incoming edges are read, which
#   is what exact sampling needs, and Viterbi gets BytePiece 0.6.3's tie rule
#   (the longest piece wins) by replacing on >= in shortest-first order.
# - Text is cut into chunks that end at runs of newlines (0.6.3's `.*\n+|.+`);
#   no edge crosses a chunk start, and scores restart at 0 there so Viterbi
#   adds up floating-point scores exactly as 0.6.3 does, ties included.
# - Exact sampling is forward filtering, backward sampling. The forward sums are
#   kept in linear space as mantissa * 2**exponent (no exp or log per edge, only
#   a cached exp(alpha * logp) per piece); when alpha is so large that those
#   weights could underflow, a log-space twin is used instead. As soon as F[e]
#   is known, the back-pointer of e is drawn among its incoming edges with
#   probability proportional to their forward weights (the walk keeps their
#   running sums; one uniform scaled by the total picks among them, branch-free);
#   following the back-pointers from the end is the backward sample.
# - Random numbers come from _rng.pxd: a state derived per call from (seed word,
#   key word) and kept on the stack. Nothing here is global or mutable after
#   construction, so one Lattice serves any number of threads without locks.
#   (The one process-wide table, which characters NFC leaves alone, only gains
#   pages, each written under the GIL and published with a release store.)
# - Batches hold the GIL only to gather the texts and to build the id lists:
#   UTF-8 encoding of non-ASCII str and most of NFC happen without it, and the
#   lists stay hidden from the cycle collector until the batch is complete.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_FromLong
from cpython.ref cimport Py_INCREF, PyObject
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport INFINITY, NAN, exp, frexp, ldexp, log
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memmove, memset

from _bigmem cimport big_alloc, big_free
from _prefetch cimport prefetch
from _byteviews cimport ByteViews, views_free, views_of
from _rng cimport RNG_COARSE, RNG_LCG31, RNG_XOSHIRO, Rng, rng_init, rng_next, rng_uniform

import numpy as np
from unicodedata import combining as _combining, decomposition as _decomposition, is_normalized as _is_normalized, normalize as _normalize

# Samplers (the `sampler` argument); C constants, so that checking one costs no Python lookup.
cdef enum:
    S_EXACT = 0
    S_LEGACY_V1 = 1
    S_EXACT_LOGSPACE = 2
SAMPLER_EXACT = S_EXACT
SAMPLER_LEGACY_V1 = S_LEGACY_V1
SAMPLER_EXACT_LOGSPACE = S_EXACT_LOGSPACE   # the log-space twin, chosen automatically when needed
RNG_KINDS = {"xoshiro256**": RNG_XOSHIRO, "coarse4": RNG_COARSE, "lcg31": RNG_LCG31}

# Linear-space sampling keeps forward sums as mantissa * 2**exponent and renormalises a
# mantissa only when it leaves [2**-100, 2**100]; a cached weight exp(alpha * logp) is at
# least exp(-LINEAR_LIMIT) > 2**-866, so mantissa * weight never leaves the normal range.
# Larger alpha * |logp| falls back to the log-space twin.
cdef double LINEAR_LIMIT = 600.0
cdef double RENORM_LOW = 7.888609052210118e-31     # 2**-100
cdef double RENORM_HIGH = 1.2676506002282294e+30   # 2**100
# exact_plain, which keeps no exponents, runs while forward sums stay within
# [RENORM_LOW, PLAIN_HIGH]: a sum of at most max_len weights (each <= 1, as logp <= 0)
# times mantissas <= 2**960 cannot overflow, and the low end keeps every product
# normal. Sums are then the exact scalings by powers of two of exact_scaled's, so
# both loops draw the same samples (texts of a few thousand bytes never leave it).
cdef double PLAIN_HIGH = ldexp(1.0, 960)

cdef enum:
    WINDOW_MIN = 1 << 20      # Viterbi over longer texts keeps a window of positions, not all
    WINDOW_FIRST = 1 << 16    # (seg_viterbi_window); the window's first size, in positions

cdef enum:
    MODE_VITERBI = 0
    MODE_EXACT = 1
    MODE_EXACT_LOG = 2
    MODE_LEGACY_V1 = 3


# ---------------------------------------------------------------------------
# The reversed double-array trie

cdef struct Trie:
    int32_t* base
    int32_t* check
    int32_t* value      # piece index, or -1
    int32_t size        # slots in use (arrays hold size + 256 so base + byte never overruns)
    int32_t max_len     # longest piece, in bytes


cdef inline int collect_edges(const Trie* trie, const uint8_t* x, Py_ssize_t e, Py_ssize_t lo,
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


cdef class _FreeList:
    """Free slots of the double array under construction, as a doubly linked list."""
    cdef int32_t* nxt
    cdef int32_t* prv
    cdef int32_t cap
    cdef int32_t head

    def __dealloc__(self):
        free(self.nxt)
        free(self.prv)


cdef int grow_int32(int32_t** array, size_t n) except -1:
    """Resize an int32 array to n entries (MemoryError, array untouched, if impossible)."""
    cdef int32_t* p = <int32_t*>realloc(array[0], n * sizeof(int32_t))
    if p == NULL:
        raise MemoryError()
    array[0] = p
    return 0


cdef int trie_grow(Trie* trie, _FreeList fl, int32_t new_cap) except -1:
    """Grow every array to new_cap slots (+256 padding); new slots join the free list."""
    cdef int32_t old = fl.cap, i
    cdef size_t n = <size_t>(new_cap + 256)
    grow_int32(&trie.base, n)
    grow_int32(&trie.check, n)
    grow_int32(&trie.value, n)
    grow_int32(&fl.nxt, n)
    grow_int32(&fl.prv, n)
    for i in range(old, new_cap + 256):
        trie.base[i] = 0
        trie.check[i] = -1
        trie.value[i] = -1
    # Append the new slots [old, new_cap) to the free list (kept in increasing order).
    cdef int32_t tail = -1
    if fl.head >= 0:
        tail = fl.prv[fl.head]          # the list is circular: head.prv is the tail
    for i in range(old, new_cap):
        fl.prv[i] = i - 1
        fl.nxt[i] = i + 1
    if fl.head < 0:
        fl.head = old
        fl.prv[old] = new_cap - 1
    else:
        fl.nxt[tail] = old
        fl.prv[old] = tail
        fl.prv[fl.head] = new_cap - 1
    fl.nxt[new_cap - 1] = fl.head
    fl.cap = new_cap
    return 0


cdef inline void freelist_take(_FreeList fl, int32_t slot) noexcept:
    cdef int32_t a = fl.prv[slot], b = fl.nxt[slot]
    if b == slot:                        # the last free slot
        fl.head = -1
        return
    fl.nxt[a] = b
    fl.prv[b] = a
    if fl.head == slot:
        fl.head = b


cdef int32_t find_base(Trie* trie, _FreeList fl, const int32_t* labels, int nlabels) except -1:
    """The smallest base >= 1 whose slots base + label are all free."""
    cdef int32_t slot, b, j, start
    while True:
        if fl.head < 0:
            trie_grow(trie, fl, fl.cap * 2)
        slot = fl.head
        start = slot
        while True:
            b = slot - labels[0]
            if b >= 1:
                for j in range(1, nlabels):
                    if b + labels[j] >= fl.cap or trie.check[b + labels[j]] != -1:
                        break
                else:
                    return b
            slot = fl.nxt[slot]
            if slot == start:
                break                       # wrapped around: make room and retry
        trie_grow(trie, fl, fl.cap * 2)


cdef inline int rev_cmp(const uint8_t* a, int32_t la, const uint8_t* b, int32_t lb) noexcept nogil:
    """Compares a[::-1] with b[::-1] (bytes order; a proper prefix comes first)."""
    cdef int32_t i = la - 1, j = lb - 1
    while i >= 0 and j >= 0:
        if a[i] != b[j]:
            return <int>a[i] - <int>b[j]
        i -= 1
        j -= 1
    return la - lb


cdef inline uint64_t rev_head(const uint8_t* a, int32_t la) noexcept nogil:
    """The first 8 bytes of a[::-1], big-endian, zero-padded: comparing two of these
    orders the reversed keys correctly unless they are equal (then rev_cmp decides)."""
    cdef uint64_t h = 0
    cdef int32_t t
    for t in range(8):
        h = (h << 8) | (a[la - 1 - t] if t < la else 0)
    return h


cdef void merge_sort_reversed(const uint8_t** kp, const int32_t* kl, int32_t* order, int32_t* tmp,
                              Py_ssize_t n) noexcept nogil:
    """order[0:n] (piece indices) sorted by reversed bytes (rev_cmp): a bottom-up merge
    sort, for the long runs of keys with equal heads that sort_reversed leaves."""
    cdef Py_ssize_t width = 1, lo, mid, hi, i, j, k
    cdef int32_t* src = order
    cdef int32_t* dst = tmp
    cdef int32_t* t
    cdef int32_t a, b
    while width < n:
        lo = 0
        while lo < n:
            mid = lo + width if lo + width < n else n
            hi = lo + 2 * width if lo + 2 * width < n else n
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                a = src[j]
                b = src[i]
                if rev_cmp(kp[a], kl[a], kp[b], kl[b]) < 0:
                    dst[k] = a; j += 1
                else:
                    dst[k] = b; i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]; i += 1; k += 1
            while j < hi:
                dst[k] = src[j]; j += 1; k += 1
            lo = hi
        t = src; src = dst; dst = t
        width *= 2
    if src != order:
        memcpy(order, src, n * sizeof(int32_t))


cdef int sort_reversed(const uint8_t** kp, const int32_t* kl, int32_t* order, int32_t* tmp,
                       Py_ssize_t n) except -1:
    """order[0:n] (piece indices) sorted by reversed bytes. Each key's first 8 reversed
    bytes, as one integer (rev_head), are radix-sorted (least significant byte first,
    8 stable passes, a pass skipped when all keys share its byte); the runs of keys with
    equal heads, usually a few keys, are then put in order by rev_cmp (by insertion, or
    merge_sort_reversed when a run is longer than 16)."""
    cdef Py_ssize_t i, j, run, shift
    cdef Py_ssize_t count[256]
    cdef uint64_t h
    cdef int32_t key
    cdef uint64_t* head = <uint64_t*>malloc(max(n, 1) * sizeof(uint64_t))
    cdef uint64_t* head2 = <uint64_t*>malloc(max(n, 1) * sizeof(uint64_t))
    cdef uint64_t* hs
    if head == NULL or head2 == NULL:
        free(head); free(head2)
        raise MemoryError()
    with nogil:
        for i in range(n):
            head[i] = rev_head(kp[order[i]], kl[order[i]])
        for shift in range(0, 64, 8):
            memset(count, 0, sizeof(count))
            for i in range(n):
                count[(head[i] >> shift) & 255] += 1
            if n == 0 or count[(head[0] >> shift) & 255] == n:
                continue                         # every key has the same byte here
            j = 0
            for i in range(256):
                run = count[i]
                count[i] = j
                j += run
            for i in range(n):
                h = head[i]
                j = count[(h >> shift) & 255]
                count[(h >> shift) & 255] = j + 1
                head2[j] = h
                tmp[j] = order[i]
            hs = head; head = head2; head2 = hs
            memcpy(order, tmp, n * sizeof(int32_t))
        # runs of equal heads: sorted by the whole reversed keys (by insertion when short)
        i = 0
        while i < n:
            run = i + 1
            while run < n and head[run] == head[i]:
                run += 1
            if run - i > 16:
                merge_sort_reversed(kp, kl, order + i, tmp, run - i)
                i = run
                continue
            for j in range(i + 1, run):
                key = order[j]
                shift = j
                while shift > i and rev_cmp(kp[key], kl[key], kp[order[shift - 1]], kl[order[shift - 1]]) < 0:
                    order[shift] = order[shift - 1]
                    shift -= 1
                order[shift] = key
            i = run
    free(head); free(head2)
    return 0


cdef int build_trie(Trie* trie, list pieces) except -1:
    """Double-array trie of the reversed byte strings `pieces`, mapping each to its index
    in the list. Items that are not bytes are replaced by bytes(item) in the list.
    ValueError (trie untouched) if a piece is empty or appears twice, or a single byte
    is missing."""
    cdef Py_ssize_t nkeys = len(pieces), total = 0, top, singles = 0
    cdef int32_t i, lo, hi, depth, node, b, g, nlabels, key
    cdef int32_t labels[256]
    cdef int32_t group_lo[257]
    cdef bytes piece
    cdef size_t room = max(nkeys, 1)
    cdef const uint8_t** kp = <const uint8_t**>malloc(room * sizeof(uint8_t*))
    cdef int32_t* kl = <int32_t*>malloc(room * sizeof(int32_t))
    cdef int32_t* kv = <int32_t*>malloc(room * sizeof(int32_t))
    cdef int32_t* tmp = <int32_t*>malloc(room * sizeof(int32_t))
    cdef int32_t* stack = NULL             # (node, lo, hi, depth) per entry
    cdef _FreeList fl = _FreeList()
    try:
        if kp == NULL or kl == NULL or kv == NULL or tmp == NULL:
            raise MemoryError()
        trie.base = trie.check = trie.value = NULL
        fl.nxt = fl.prv = NULL
        fl.cap = 0
        fl.head = -1
        trie.max_len = 0
        for i in range(nkeys):
            if type(pieces[i]) is not bytes:
                pieces[i] = bytes(pieces[i])
            piece = pieces[i]
            kp[i] = <const uint8_t*>PyBytes_AS_STRING(piece)
            kl[i] = <int32_t>PyBytes_GET_SIZE(piece)
            kv[i] = i
            total += kl[i]
            if kl[i] == 0:
                raise ValueError("pieces must not be empty")
            singles += kl[i] == 1
            if kl[i] > trie.max_len:
                trie.max_len = kl[i]
        sort_reversed(kp, kl, kv, tmp, nkeys)
        for i in range(1, nkeys):
            if rev_cmp(kp[kv[i - 1]], kl[kv[i - 1]], kp[kv[i]], kl[kv[i]]) == 0:
                raise ValueError("a piece appears twice")
        if singles != 256:
            raise ValueError(f"all 256 single bytes must be pieces ({256 - singles} missing)")
        # Every stack entry is a node still to fill, so there are never more than nodes.
        stack = <int32_t*>malloc(4 * (total + 2) * sizeof(int32_t))
        if stack == NULL:
            raise MemoryError()
        trie_grow(trie, fl, max(512, <int32_t>(total * 1.1) + 512))
        freelist_take(fl, 0)                 # slot 0 is the root
        trie.check[0] = -2
        stack[0] = 0; stack[1] = 0; stack[2] = <int32_t>nkeys; stack[3] = 0
        top = 1
        while top:
            top -= 1
            node = stack[4 * top]; lo = stack[4 * top + 1]; hi = stack[4 * top + 2]; depth = stack[4 * top + 3]
            if lo < hi and kl[kv[lo]] == depth:  # sorted: the key ending here comes first
                trie.value[node] = kv[lo]
                lo += 1
            if lo >= hi:
                trie.base[node] = 0
                continue
            nlabels = 0
            for i in range(lo, hi):
                key = kv[i]
                b = kp[key][kl[key] - 1 - depth]
                if nlabels == 0 or b != labels[nlabels - 1]:
                    labels[nlabels] = b
                    group_lo[nlabels] = i
                    nlabels += 1
            group_lo[nlabels] = hi
            b = find_base(trie, fl, labels, nlabels)
            trie.base[node] = b
            for g in range(nlabels):
                freelist_take(fl, b + labels[g])
                trie.check[b + labels[g]] = node
            for g in range(nlabels):
                stack[4 * top] = b + labels[g]
                stack[4 * top + 1] = group_lo[g]
                stack[4 * top + 2] = group_lo[g + 1]
                stack[4 * top + 3] = depth + 1
                top += 1
        trie.size = fl.cap
    finally:
        free(kp); free(kl); free(kv); free(tmp); free(stack)
    return 0


# ---------------------------------------------------------------------------
# Per-call scratch space

cdef struct Workspace:
    double* score        # Viterbi best score / forward mantissa / forward log weight
    int64_t* expo        # forward exponent (linear-space sampling)
    int32_t* back        # back-pointer: start of the chosen last piece
    int32_t* backv       # back-pointer: its piece index
    int32_t* starts      # edges of one position (max_len of them at most)
    int32_t* values
    int32_t* pairs       # the same room as (start, value) pairs, for the exact sampler
    double* weights
    int32_t* out_val     # room for the result: piece indices and end positions
    int32_t* out_end
    Py_ssize_t cap       # texts up to cap - 1 bytes fit
    void* block          # the malloc'd block behind the arrays (NULL: caller's buffer)
    void* stack          # a caller's buffer for small texts, and its size
    size_t stack_size


cdef enum:
    STACK_WORKSPACE = 32768   # bytes of stack the per-call methods lend for short texts


cdef inline void ws_init(Workspace* ws, void* stack, size_t stack_size) noexcept nogil:
    memset(ws, 0, sizeof(Workspace))
    ws.stack = stack
    ws.stack_size = stack_size


cdef int ws_reserve(Workspace* ws, Py_ssize_t n, int32_t max_len) noexcept nogil:
    """Room for a text of n bytes, in one block (the caller's stack buffer when it fits);
    returns -1 when out of memory."""
    cdef Py_ssize_t m = n + 1, L = max_len + 1
    cdef size_t size
    cdef char* p
    if m <= ws.cap:
        return 0
    m = m if m > 2 * ws.cap else 2 * ws.cap     # grow geometrically across texts
    if L > m:     # at most m - 1 edges end at a position of a text that fits (plus weights[k])
        L = m
    size = <size_t>m * (sizeof(double) + sizeof(int64_t) + 4 * sizeof(int32_t)) \
        + <size_t>L * (sizeof(double) + 2 * sizeof(int32_t)) + 3 * sizeof(double) + 64
    free(ws.block)
    ws.block = NULL
    if ws.stack != NULL and size <= ws.stack_size:
        p = <char*>ws.stack
        ws.stack = NULL                          # lend it once; growth goes to the heap
    else:
        ws.block = malloc(size)
        if ws.block == NULL:
            ws.cap = 0
            return -1
        p = <char*>ws.block
    # 8-byte arrays first, then 4-byte ones: every array stays aligned.
    ws.score = <double*>p;       p += m * sizeof(double)
    ws.expo = <int64_t*>p;       p += m * sizeof(int64_t)
    ws.weights = <double*>p;     p += (L + 3) * sizeof(double)   # + 3: seg_exact's padding
    ws.back = <int32_t*>p;       p += m * sizeof(int32_t)
    ws.backv = <int32_t*>p;      p += m * sizeof(int32_t)
    ws.out_val = <int32_t*>p;    p += m * sizeof(int32_t)
    ws.out_end = <int32_t*>p;    p += m * sizeof(int32_t)
    ws.starts = <int32_t*>p;     p += L * sizeof(int32_t)
    ws.values = <int32_t*>p
    ws.pairs = ws.starts                         # starts and values are adjacent: 2L int32
    ws.cap = m
    return 0


cdef int ws_start(Workspace* ws, Py_ssize_t n, int32_t max_len) except -1:
    """An empty workspace with room for a text of n bytes (MemoryError if there is none)."""
    memset(ws, 0, sizeof(Workspace))
    if ws_reserve(ws, n, max_len) < 0:
        ws_free(ws)
        raise MemoryError()
    return 0


cdef void ws_free(Workspace* ws) noexcept nogil:
    free(ws.block)
    memset(ws, 0, sizeof(Workspace))


# ---------------------------------------------------------------------------
# Segmentation: every algorithm writes the chosen pieces (index and end
# position) in text order and returns how many, or -1 when out of memory.

cdef struct Model:
    Trie trie
    const double* logp   # per piece index
    const double* q      # exp(alpha * logp) per piece index (sampling in linear space)
    double alpha


cdef Py_ssize_t backtrack(Workspace* ws, Py_ssize_t n, int32_t* out_val, int32_t* out_end) noexcept nogil:
    cdef Py_ssize_t e = n, m = 0, i
    cdef int32_t t
    while e > 0:
        out_val[m] = ws.backv[e]
        out_end[m] = <int32_t>e
        m += 1
        e = ws.back[e]
    for i in range(m // 2):
        t = out_val[i]; out_val[i] = out_val[m - 1 - i]; out_val[m - 1 - i] = t
        t = out_end[i]; out_end[i] = out_end[m - 1 - i]; out_end[m - 1 - i] = t
    return m


cdef inline double viterbi_best(const Model* M, const uint8_t* x, Py_ssize_t e, Py_ssize_t cs,
                                 const double* score, bint skip_whole, int32_t* bs_out,
                                 int32_t* bv_out) noexcept nogil:
    """The best score of a path to e whose last piece x[s:e] starts at s >= cs, and that
    piece's start and index. Walks the reversed trie back from e and relaxes each piece
    as it is met, shortest first, so >= lets the longest win ties (as in 0.6.3); fusing
    the walk with the relaxation saves storing and re-reading the edges. score[s] is the
    best score of position s; skip_whole leaves out the piece x[0:e]."""
    cdef const int32_t* base = M.trie.base
    cdef const int32_t* check = M.trie.check
    cdef const int32_t* value = M.trie.value
    cdef const double* logp = M.logp
    cdef double best = -INFINITY, c
    cdef int32_t node = 0, t, v, bs = 0, bv = 0
    cdef int32_t s = <int32_t>(e - 1)
    while s >= cs:
        t = base[node] + x[s]
        if check[t] != node:
            break
        node = t
        v = value[node]
        if v >= 0 and not (skip_whole and s == 0):
            c = score[s] + logp[v]
            if c >= best:
                best = c
                bs = s
                bv = v
        s -= 1
    bs_out[0] = bs
    bv_out[0] = bv
    return best


cdef Py_ssize_t seg_viterbi(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked, bint forbid_whole,
                            Workspace* ws, int32_t* out_val, int32_t* out_end) noexcept nogil:
    """Viterbi over the whole text (0.6.3's ties). Its loop is viterbi_best written out:
    calling viterbi_best here, even inlined, took 25.2 M instructions instead of 20.9 M
    over the held-out lines (callgrind), and this is the per-line hot loop."""
    cdef Py_ssize_t e, cs = 0
    cdef int32_t s, bs = 0, bv = 0, node, t, v
    cdef double c, best
    cdef const int32_t* base = M.trie.base
    cdef const int32_t* check = M.trie.check
    cdef const int32_t* value = M.trie.value
    cdef const double* logp = M.logp
    cdef double* score
    if ws_reserve(ws, n, M.trie.max_len) < 0:
        return -1
    score = ws.score
    ws.score[0] = 0.0
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            ws.score[cs] = 0.0           # 0.6.3 scores each chunk from 0
        best = -INFINITY
        node = 0
        s = <int32_t>(e - 1)
        while s >= cs:
            t = base[node] + x[s]
            if check[t] != node:
                break
            node = t
            v = value[node]
            if v >= 0 and not (forbid_whole and e == n and s == 0 and n > 1):
                c = score[s] + logp[v]
                if c >= best:
                    best = c
                    bs = s
                    bv = v
            s -= 1
        ws.score[e] = best
        ws.back[e] = bs
        ws.backv[e] = bv
    return backtrack(ws, n, out_val, out_end)


# ---------------------------------------------------------------------------
# Viterbi in bounded memory for long texts.
#
# seg_viterbi keeps a score and a back-pointer for every byte of the text: about 16
# bytes per byte, 1.6 GB for one 100 MB line. But the decision about early pieces is
# final long before the end. Every path to a position beyond e has a boundary in the
# frontier [e - L + 1, e] (L = the longest piece: no piece jumps over L positions), and
# the chosen path to a frontier position is its chain of back-pointers, which never
# change once set. So where the chains of all frontier positions meet, at q, the best
# path to anything beyond e runs through q, and its part up to q is known: it is
# written out and the buffers keep only positions from q on. Chains of real text meet
# within a few pieces; when they do not (a run of one byte whose best paths keep two
# parities, say), the buffers simply grow, up to seg_viterbi's size. A chunk start is
# such a meeting point by construction. Scores and ties are computed exactly as in
# seg_viterbi, so the segmentation is identical.

cdef inline int realloc_into(void** p, size_t size) noexcept nogil:
    """*p = realloc(*p, size); -1 (and *p unchanged, still valid) when out of memory."""
    cdef void* q = realloc(p[0], size)
    if q == NULL:
        return -1
    p[0] = q
    return 0


cdef struct ViterbiWindow:
    double* score       # position base + i at index i
    int32_t* back       # start of the chosen last piece (absolute position)
    int32_t* backv      # its piece index
    uint8_t* head       # scratch for vw_meeting
    Py_ssize_t base, cap


cdef int vw_grow(ViterbiWindow* w) noexcept nogil:
    """Twice the room; -1 when out of memory (the buffers stay valid)."""
    cdef Py_ssize_t cap = 2 * w.cap
    if (realloc_into(<void**>&w.score, cap * sizeof(double)) < 0
            or realloc_into(<void**>&w.back, cap * sizeof(int32_t)) < 0
            or realloc_into(<void**>&w.backv, cap * sizeof(int32_t)) < 0
            or realloc_into(<void**>&w.head, cap) < 0):
        return -1
    w.cap = cap
    return 0


cdef Py_ssize_t vw_emit(ViterbiWindow* w, Py_ssize_t q, Py_ssize_t done, Py_ssize_t m,
                        int32_t* out_val, int32_t* out_end) noexcept nogil:
    """Write the pieces of the chosen path from `done` to q (both boundaries of it) at
    out[m:], in text order; returns the new m."""
    cdef Py_ssize_t e = q, k = 0, i
    cdef int32_t t
    while e > done:
        out_val[m + k] = w.backv[e - w.base]
        out_end[m + k] = <int32_t>e
        k += 1
        e = w.back[e - w.base]
    for i in range(k // 2):
        t = out_val[m + i]; out_val[m + i] = out_val[m + k - 1 - i]; out_val[m + k - 1 - i] = t
        t = out_end[m + i]; out_end[m + i] = out_end[m + k - 1 - i]; out_end[m + k - 1 - i] = t
    return m + k


cdef Py_ssize_t vw_meeting(ViterbiWindow* w, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t done) noexcept nogil:
    """The latest position that the back-pointer chains of every position in [lo, hi]
    pass through (all of them pass through `done`, the last such point written out).
    One sweep down from hi: a flagged position is the head of one or more chains; it
    moves to its back-pointer, merging with a head already there. When one head is
    left, every chain runs through it."""
    cdef Py_ssize_t p, b, active = hi - lo + 1
    cdef uint8_t* head = w.head - w.base
    memset(w.head + (done - w.base), 0, hi - done + 1)
    for p in range(lo, hi + 1):
        head[p] = 1
    p = hi
    while p > done:
        if head[p]:
            if active == 1:
                return p
            b = w.back[p - w.base]
            if head[b]:
                active -= 1
            else:
                head[b] = 1
        p -= 1
    return done


cdef Py_ssize_t seg_viterbi_window(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                                   Py_ssize_t first_cap, int32_t* out_val, int32_t* out_end) noexcept nogil:
    """seg_viterbi's segmentation in memory for about first_cap positions (growing only
    where the chosen paths do not meet); -1 when out of memory."""
    cdef ViterbiWindow w
    cdef Py_ssize_t e, cs = 0, m = 0, done = 0, q, keep, lo
    cdef int32_t bs, bv
    cdef int32_t L = M.trie.max_len if M.trie.max_len > 0 else 1
    memset(&w, 0, sizeof(ViterbiWindow))
    w.cap = first_cap if first_cap > 4 * <Py_ssize_t>L + 4 else 4 * <Py_ssize_t>L + 4
    w.score = <double*>malloc(w.cap * sizeof(double))
    w.back = <int32_t*>malloc(w.cap * sizeof(int32_t))
    w.backv = <int32_t*>malloc(w.cap * sizeof(int32_t))
    w.head = <uint8_t*>malloc(w.cap)
    if w.score == NULL or w.back == NULL or w.backv == NULL or w.head == NULL:
        m = -1
        e = n + 1                         # (skips the loop)
    else:
        w.score[0] = 0.0
        e = 1
    while e <= n:
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            # Every path goes through a chunk start: write out the path up to it.
            m = vw_emit(&w, cs, done, m, out_val, out_end)
            done = cs
            keep = 1
            memmove(w.score, w.score + (cs - w.base), keep * sizeof(double))
            memmove(w.back, w.back + (cs - w.base), keep * sizeof(int32_t))
            memmove(w.backv, w.backv + (cs - w.base), keep * sizeof(int32_t))
            w.base = cs
            w.score[0] = 0.0              # 0.6.3 scores each chunk from 0
        elif e - w.base >= w.cap:
            # Full: write out what the frontier's chains agree on, keep the rest.
            lo = e - L if e - L > cs else cs
            q = vw_meeting(&w, lo, e - 1, done)
            if q > done:
                m = vw_emit(&w, q, done, m, out_val, out_end)
                done = q
                keep = e - q
                memmove(w.score, w.score + (q - w.base), keep * sizeof(double))
                memmove(w.back, w.back + (q - w.base), keep * sizeof(int32_t))
                memmove(w.backv, w.backv + (q - w.base), keep * sizeof(int32_t))
                w.base = q
            if e - w.base >= w.cap // 2 and vw_grow(&w) < 0:
                m = -1
                break
        # (scores indexed by absolute position: the window's origin is at base)
        w.score[e - w.base] = viterbi_best(M, x, e, cs, w.score - w.base, False, &bs, &bv)
        w.back[e - w.base] = bs
        w.backv[e - w.base] = bv
        e += 1
    if m >= 0:
        m = vw_emit(&w, n, done, m, out_val, out_end)
    free(w.score); free(w.back); free(w.backv); free(w.head)
    return m


cdef Py_ssize_t seg_legacy_v1(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked, Rng* rng,
                              Workspace* ws, int32_t* out_val, int32_t* out_end) noexcept nogil:
    """The first, flawed sampler: successive two-way choices by sigmoid(alpha * gain)."""
    cdef Py_ssize_t e, cs = 0
    cdef int k, j
    cdef double c, cur
    if ws_reserve(ws, n, M.trie.max_len) < 0:
        return -1
    ws.score[0] = 0.0
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            ws.score[cs] = 0.0
        k = collect_edges(&M.trie, x, e, cs, ws.starts, ws.values)
        cur = -INFINITY
        for j in range(k - 1, -1, -1):   # 0.6.3's order: longest first
            c = ws.score[ws.starts[j]] + M.logp[ws.values[j]]
            if j == k - 1 or rng_uniform(rng) * (1.0 + exp(-M.alpha * (c - cur))) < 1.0:
                cur = c
                ws.back[e] = ws.starts[j]
                ws.backv[e] = ws.values[j]
        ws.score[e] = cur
    return backtrack(ws, n, out_val, out_end)


cdef inline double pow2(int64_t d) noexcept nogil:
    """2.0**d for d <= 0, built from its bits (0 below the normal range)."""
    cdef uint64_t bits
    cdef double out
    if d < -1022:
        return 0.0
    bits = <uint64_t>(d + 1023) << 52
    memcpy(&out, &bits, sizeof(double))
    return out


cdef double reweigh_linear(const Model* M, Workspace* ws, int k, int64_t* ref_out) noexcept nogil:
    """The k collected edges' forward weights when their starts do not all share one
    exponent (some start precedes the last renormalisation): each is scaled by
    2**(exponent of its start - ref), ref the largest of those exponents. Writes the
    running sums to ws.weights, as the walk does, and ref to ref_out; returns the total."""
    cdef int j
    cdef int64_t ref, d
    cdef double tot = 0.0, w
    cdef const int32_t* pairs = ws.pairs       # as exact_walk left them
    ref = ws.expo[pairs[0]]
    for j in range(1, k):
        d = ws.expo[pairs[2 * j]]
        if d > ref:
            ref = d
    for j in range(k):
        w = ws.score[pairs[2 * j]] * M.q[pairs[2 * j + 1]]
        d = ws.expo[pairs[2 * j]] - ref
        if d != 0:
            w = w * pow2(d)
        tot += w
        ws.weights[j] = tot
    ref_out[0] = ref
    return tot


cdef inline double edge_weights_log(const Model* M, Workspace* ws, int k) noexcept nogil:
    """Forward weights exp(F[s] + alpha*logp - max) of the k edges, as running sums in
    ws.weights (the max goes to ws.weights[k]); returns their sum."""
    cdef int j
    cdef double top = -INFINITY, c, tot = 0.0
    for j in range(k):
        c = ws.score[ws.starts[j]] + M.alpha * M.logp[ws.values[j]]
        ws.weights[j] = c
        if c > top:
            top = c
    for j in range(k):
        tot += exp(ws.weights[j] - top)
        ws.weights[j] = tot
    ws.weights[k] = top
    return tot


cdef inline int pick(const double* cum, int k, double tot, Rng* rng) noexcept nogil:
    """Index j with probability (cum[j] - cum[j-1]) / tot, from the running sums cum of
    the k weights (cum[k-1] == tot)."""
    cdef double u = rng_uniform(rng) * tot
    cdef int i, j = 0
    # Branch-free: cum only grows, so the first j with u < cum[j] is the number of
    # cum[i] <= u. The outcome is random; a branch on it mispredicts about half the time.
    for i in range(k - 1):
        j += cum[i] <= u
    return j


cdef Py_ssize_t seg_exact_log(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                              Rng* rng, Workspace* ws, int32_t* out_val, int32_t* out_end) noexcept nogil:
    """seg_exact with forward sums in log space, for alphas whose linear weights could underflow."""
    cdef Py_ssize_t e, cs = 0
    cdef int k, j
    cdef double tot
    if ws_reserve(ws, n, M.trie.max_len) < 0:
        return -1
    ws.score[0] = 0.0
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            ws.score[cs] = 0.0
        k = collect_edges(&M.trie, x, e, cs, ws.starts, ws.values)
        tot = edge_weights_log(M, ws, k)
        ws.score[e] = ws.weights[k] + log(tot)
        j = pick(ws.weights, k, tot, rng) if k > 1 else 0   # one edge: no choice to draw
        ws.back[e] = ws.starts[j]
        ws.backv[e] = ws.values[j]
    return backtrack(ws, n, out_val, out_end)


cdef inline Py_ssize_t exact_walk(const Model* M, const uint8_t* x, Py_ssize_t e, Py_ssize_t cs,
                           const double* score, double* cum, int32_t* pairs,
                           double* tot_out) noexcept nogil:
    """Walk the reversed trie back from e, weighing each piece x[s:e] as it is met with
    the mantissas of its start (shortest first; every single byte is a piece, so k >= 1
    and the first start is e - 1); keeps the edges as (start, piece) pairs and the
    running sums. Returns k. (One array for both leaves a register for the loop.)"""
    cdef const int32_t* base = M.trie.base
    cdef const int32_t* check = M.trie.check
    cdef const int32_t* value = M.trie.value
    cdef const double* q = M.q
    cdef Py_ssize_t k = 0          # (Py_ssize_t: no sign extension in the loop)
    cdef double tot = 0.0
    cdef int32_t node = 0, t, v
    cdef Py_ssize_t s = e - 1
    while s >= cs:
        t = base[node] + x[s]
        if check[t] != node:
            break
        node = t
        v = value[node]
        if v >= 0:
            tot += score[s] * q[v]
            cum[k] = tot
            pairs[2 * k] = <int32_t>s
            pairs[2 * k + 1] = v
            k += 1
        s -= 1
    tot_out[0] = tot
    return k


cdef inline Py_ssize_t exact_pick_at(double* cum, Py_ssize_t k, double u) noexcept nogil:
    """exact_pick for k >= 2 edges, given the scaled uniform u = uniform * total."""
    cdef Py_ssize_t i, j
    cum[k] = INFINITY
    cum[k + 1] = INFINITY
    cum[k + 2] = INFINITY
    j = (cum[0] <= u) + (cum[1] <= u) + (cum[2] <= u) + (cum[3] <= u)
    for i in range(4, k):
        j += cum[i] <= u
    return j


cdef inline int exact_pick(double* cum, int k, double tot, Rng* rng) noexcept nogil:
    """pick() on running sums, with a fixed number of comparisons for up to four edges
    (most positions): cum[k - 1] == tot > u never counts, nor does the padding. One edge:
    no choice to draw."""
    if k <= 1:
        return 0
    return <int>exact_pick_at(cum, k, rng_uniform(rng) * tot)


cdef inline double xoshiro_uniform(Rng* rng) noexcept nogil:
    """rng_uniform for an Rng of kind RNG_XOSHIRO (the same draw, without the kind test)."""
    return <double>(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0)


cdef Py_ssize_t exact_plain(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked, Rng* rng,
                            Workspace* ws, Py_ssize_t* cs_io) noexcept nogil:
    """seg_exact's loop while every forward sum stays within [2**-100, 2**960], so that
    every exponent is 0 and there is none to keep (short texts never leave it). Returns
    the first position whose sum leaves it, not done yet, or n + 1; its chunk start goes
    to cs_io. The loop is compiled twice: for xoshiro256** (the generator users get),
    whose draws then skip the test of the generator kind, and for any kind."""
    if rng.kind == RNG_XOSHIRO:
        return exact_plain_loop(M, x, n, chunked, rng, ws, cs_io, True)
    return exact_plain_loop(M, x, n, chunked, rng, ws, cs_io, False)


cdef inline Py_ssize_t exact_plain_loop(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                                        Rng* rng, Workspace* ws, Py_ssize_t* cs_io,
                                        bint xoshiro) noexcept nogil:
    """exact_plain's loop; `xoshiro` is a constant at both call sites. The generator
    state is a local copy (written back on return) that the compiler can keep in
    registers, not memory behind a pointer."""
    cdef Py_ssize_t e, cs = 0
    cdef Py_ssize_t k, j
    cdef double tot, u
    cdef Rng r = rng[0]
    cdef double low = RENORM_LOW, high = PLAIN_HIGH
    cdef double* score = ws.score
    cdef double* cum = ws.weights
    cdef int32_t* pairs = ws.pairs
    cdef int32_t* back = ws.back
    cdef int32_t* backv = ws.backv
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            score[cs] = 1.0
        k = exact_walk(M, x, e, cs, score, cum, pairs, &tot)
        if not (low <= tot <= high):
            cs_io[0] = cs
            rng[0] = r
            return e
        score[e] = tot
        j = 0                     # one edge: no choice to draw
        if k > 1:
            u = (xoshiro_uniform(&r) if xoshiro else rng_uniform(&r)) * tot
            j = exact_pick_at(cum, k, u)
        back[e] = pairs[2 * j]
        backv[e] = pairs[2 * j + 1]
    cs_io[0] = cs
    rng[0] = r
    return n + 1


cdef void exact_scaled(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked, Rng* rng,
                       Workspace* ws, Py_ssize_t e0, Py_ssize_t cs) noexcept nogil:
    """seg_exact's loop from position e0 on, with exponents; every position before e0 has
    exponent 0. Positions from `renormed` (the last one whose exponent changed) to e - 1
    share the exponent `cur`, so edges that all start there are weighed without any
    scaling (almost always the case)."""
    cdef Py_ssize_t e, p, renormed = 0
    cdef int k, j, ex
    cdef double tot
    cdef double low = RENORM_LOW, high = RENORM_HIGH
    cdef int64_t cur = 0, ee
    cdef double* score = ws.score
    cdef int64_t* expo = ws.expo
    cdef double* cum = ws.weights
    cdef int32_t* pairs = ws.pairs
    for p in range(cs, e0):
        expo[p] = 0
    for e in range(e0, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            score[cs] = 1.0
            expo[cs] = 0
            cur = 0
        k = exact_walk(M, x, e, cs, score, cum, pairs, &tot)
        if pairs[2 * k - 2] >= renormed:   # the longest piece starts after the last renormalisation
            ee = cur
        else:
            tot = reweigh_linear(M, ws, k, &ee)
        if low <= tot <= high:
            score[e] = tot
        else:
            score[e] = frexp(tot, &ex)
            ee += ex
        expo[e] = ee
        if ee != cur:
            renormed = e
            cur = ee
        j = exact_pick(cum, k, tot, rng)
        ws.back[e] = pairs[2 * j]
        ws.backv[e] = pairs[2 * j + 1]


cdef Py_ssize_t seg_exact(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                          Rng* rng, Workspace* ws, int32_t* out_val, int32_t* out_end) noexcept nogil:
    """One exact draw from P(path) = exp(alpha * score(path)) / Z, chunk by chunk.

    Forward filtering with the backward choice made on the way: once position e's
    forward sum is known, its back-pointer is drawn among its incoming edges with
    probability proportional to their forward weights. That choice depends only on
    the prefix, so following the back-pointers from the end is an exact backward
    sample (forward-filtering backward-sampling), at one uniform per position.

    Forward sums are mantissa (score) * 2**exponent (expo). exact_plain runs while no
    exponent is needed; from the first position whose sum leaves the mantissa range,
    exact_scaled takes over, redoing that position. The walk keeps the running sum of
    the weights, which is all the pick needs.
    """
    cdef Py_ssize_t e, cs = 0
    cdef Rng r = rng[0]       # a local copy the compiler can keep in registers
    if ws_reserve(ws, n, M.trie.max_len) < 0:
        return -1
    ws.score[0] = 1.0
    e = exact_plain(M, x, n, chunked, &r, ws, &cs)
    if e <= n:
        exact_scaled(M, x, n, chunked, &r, ws, e, cs)
    rng[0] = r
    return backtrack(ws, n, out_val, out_end)


cdef Py_ssize_t segment(const Model* M, int mode, const uint8_t* x, Py_ssize_t n, bint chunked,
                        bint forbid_whole, Rng* rng, Workspace* ws,
                        int32_t* out_val, int32_t* out_end) noexcept nogil:
    if n == 0:
        return 0
    if mode == MODE_VITERBI:
        if n > WINDOW_MIN and not forbid_whole:
            return seg_viterbi_window(M, x, n, chunked, WINDOW_FIRST, out_val, out_end)
        return seg_viterbi(M, x, n, chunked, forbid_whole, ws, out_val, out_end)
    if mode == MODE_LEGACY_V1:
        return seg_legacy_v1(M, x, n, chunked, rng, ws, out_val, out_end)
    if mode == MODE_EXACT_LOG:
        return seg_exact_log(M, x, n, chunked, rng, ws, out_val, out_end)
    return seg_exact(M, x, n, chunked, rng, ws, out_val, out_end)


# ---------------------------------------------------------------------------
# Forward-backward (log space): expected piece counts and log Z.

cdef inline double logaddexp(double a, double b) noexcept nogil:
    if a < b:
        a, b = b, a
    if b == -INFINITY:
        return a
    return a + log(1.0 + exp(b - a))


cdef double forward_backward_log(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                                 Workspace* ws, double* bwd, double* counts, const int32_t* ids,
                                 double* marginals, double weight) noexcept nogil:
    """forward_backward in log space (logaddexp per edge): for alpha * |logp| beyond
    LINEAR_LIMIT, where the linear-space version's weights could leave the normal range."""
    cdef Py_ssize_t e, cs, ce, i, lo
    cdef int k, j
    cdef double logz_total = 0.0, logz, c, acc
    cdef double* fwd = ws.score
    cs = 0
    while cs < n:
        ce = chunk_end(x, cs, n, chunked)
        fwd[cs] = 0.0
        for e in range(cs + 1, ce + 1):
            k = collect_edges(&M.trie, x, e, cs, ws.starts, ws.values)
            acc = -INFINITY
            for j in range(k):
                acc = logaddexp(acc, fwd[ws.starts[j]] + M.alpha * M.logp[ws.values[j]])
            fwd[e] = acc
        logz = fwd[ce]
        for i in range(cs, ce):
            bwd[i] = -INFINITY
        bwd[ce] = 0.0
        for e in range(ce, cs, -1):
            k = collect_edges(&M.trie, x, e, cs, ws.starts, ws.values)
            for j in range(k):
                c = M.alpha * M.logp[ws.values[j]] + bwd[e]
                bwd[ws.starts[j]] = logaddexp(bwd[ws.starts[j]], c)
                if counts != NULL:
                    counts[ids[ws.values[j]]] += weight * exp(fwd[ws.starts[j]] + c - logz)
        if marginals != NULL:
            for i in range(cs, ce):
                marginals[i] = exp(fwd[i] + bwd[i] - logz)
            marginals[ce] = 1.0
        logz_total += logz
        cs = ce
    return logz_total


cdef struct EdgeStore:
    int32_t* start      # the edges of one chunk, grouped by end position
    int32_t* value
    double* weight      # exp(alpha * logp) of the piece, read back in order by the backward pass
    int64_t* first      # first[e]: index of the first edge ending at e (first[e + 1]: past the last)
    size_t cap          # room for this many edges
    size_t npos         # and positions


cdef int es_reserve(EdgeStore* es, size_t edges, size_t positions) noexcept nogil:
    """Room for `edges` edges and `positions` positions; -1 when out of memory."""
    if edges > es.cap:
        edges = edges if edges > 2 * es.cap else 2 * es.cap
        if (realloc_into(<void**>&es.start, edges * sizeof(int32_t)) < 0
                or realloc_into(<void**>&es.value, edges * sizeof(int32_t)) < 0
                or realloc_into(<void**>&es.weight, edges * sizeof(double)) < 0):
            return -1
        es.cap = edges
    if positions > es.npos:
        if realloc_into(<void**>&es.first, positions * sizeof(int64_t)) < 0:
            return -1
        es.npos = positions
    return 0


cdef void es_free(EdgeStore* es) noexcept nogil:
    free(es.start); free(es.value); free(es.weight); free(es.first)
    memset(es, 0, sizeof(EdgeStore))


cdef double forward_backward_linear(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                                    Workspace* ws, EdgeStore* es, double* beta, double* counts,
                                    const int32_t* ids, double* marginals, double weight) noexcept nogil:
    """forward_backward in linear space: no exp or log per edge, one trie walk per position
    (the forward pass stores the edges it finds, the backward pass reads them back).

    Forward sums are mantissa f[i] (in [2**-100, 2**100]) times 2**fx[i], as in the
    sampler. The backward pass keeps beta[i] = B[i] * 2**fx[i] / Z, where B[i] is the
    backward sum; then an edge s -> e (weight w) has posterior f[s] * w * beta[e] *
    2**(fx[s] - fx[e]) and contributes w * beta[e] * 2**(fx[s] - fx[e]) to beta[s].
    f[s] * beta[s] is the boundary marginal at s, at most 1, so beta stays below 2**100;
    a posterior above 2**-50 is computed without leaving the normal range (its w * beta[e]
    is at least 2**-866 * 2**-150), and smaller ones only lose relative precision.
    `ids` NULL: piece index i counts at counts[i]. Counts are added times `weight` (beta
    starts from weight / Z; the marginals too are scaled by it). Returns NaN when out
    of memory."""
    cdef Py_ssize_t e, cs, ce, i, renormed
    cdef int ex
    cdef int64_t d, ref, j, used, lo, hi
    cdef double logz_total = 0.0, tot, t, be, w
    cdef double* f = ws.score
    cdef int64_t* fx = ws.expo
    cdef const double* q = M.q
    cdef const int32_t* base = M.trie.base
    cdef const int32_t* check = M.trie.check
    cdef const int32_t* value = M.trie.value
    cdef size_t room = <size_t>M.trie.max_len + 1
    cdef int32_t s, v, node, tn
    cdef int32_t* st
    cdef int32_t* va
    cdef double* wt
    if es_reserve(es, 64 * room, <size_t>n + 2) < 0:
        return NAN
    cs = 0
    while cs < n:
        ce = chunk_end(x, cs, n, chunked)
        f[cs] = 1.0
        fx[cs] = 0
        renormed = cs
        used = 0
        for e in range(cs + 1, ce + 1):
            if es.cap - <size_t>used < room and es_reserve(es, <size_t>used + room, 0) < 0:
                return NAN
            st = es.start
            va = es.value
            wt = es.weight
            es.first[e] = used
            lo = used
            node = 0
            s = <int32_t>(e - 1)
            tot = 0.0
            while s >= cs:
                tn = base[node] + x[s]
                if check[tn] != node:
                    break
                node = tn
                v = value[node]
                if v >= 0:
                    st[used] = s
                    va[used] = v
                    w = q[v]
                    wt[used] = w
                    tot += f[s] * w           # right if every start shares one exponent
                    used += 1
                s -= 1
            if st[used - 1] >= renormed:      # the smallest start: all starts share one exponent
                ref = fx[e - 1]
            else:
                tot = 0.0
                ref = fx[st[lo]]
                for j in range(lo + 1, used):
                    if fx[st[j]] > ref:
                        ref = fx[st[j]]
                for j in range(lo, used):
                    w = f[st[j]] * wt[j]
                    d = fx[st[j]] - ref
                    if d != 0:
                        w = w * pow2(d)
                    tot += w
            fx[e] = ref
            if RENORM_LOW <= tot <= RENORM_HIGH:
                f[e] = tot
            else:
                f[e] = frexp(tot, &ex)
                fx[e] += ex
            if fx[e] != fx[e - 1]:
                renormed = e
        es.first[ce + 1] = used
        logz_total += log(f[ce]) + <double>fx[ce] * 0.6931471805599453
        for i in range(cs, ce):
            beta[i] = 0.0
        beta[ce] = weight / f[ce]
        st = es.start
        va = es.value
        wt = es.weight
        for e in range(ce, cs, -1):
            be = beta[e]
            hi = es.first[e + 1]
            for j in range(es.first[e], hi):
                s = st[j]
                d = fx[s] - fx[e]
                if d == 0:
                    t = wt[j] * be
                elif d > 0:
                    t = ldexp(be, <int>d) * wt[j]
                else:
                    t = ldexp(wt[j] * be, <int>(d if d > -2000 else -2000))
                beta[s] += t
                if counts != NULL:
                    v = va[j]
                    counts[v if ids == NULL else ids[v]] += f[s] * t
        if marginals != NULL:
            for i in range(cs, ce):
                marginals[i] = f[i] * beta[i]
            marginals[ce] = 1.0
        cs = ce
    return logz_total


cdef inline double forward_backward(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                                    bint logspace, Workspace* ws, EdgeStore* es, double* bwd, double* counts,
                                    const int32_t* ids, double* marginals, double weight) noexcept nogil:
    """Adds expected piece counts (by id) times `weight` to counts, boundary probabilities
    to marginals (either may be NULL; marginals need weight 1); returns log Z (the sum
    over chunks). bwd holds n + 1 doubles. Linear space (M.q holds exp(alpha * logp))
    unless logspace."""
    if logspace:
        return forward_backward_log(M, x, n, chunked, ws, bwd, counts, ids, marginals, weight)
    return forward_backward_linear(M, x, n, chunked, ws, es, bwd, counts, ids, marginals, weight)


# ---------------------------------------------------------------------------

cdef extern from "Python.h":
    void incref_raw "Py_INCREF"(PyObject* o)
    void list_set_raw "PyList_SET_ITEM"(object lst, Py_ssize_t i, PyObject* o)
    bint PyUnicode_IS_ASCII(object o)
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    void PyObject_GC_Track(object o)
    void PyObject_GC_UnTrack(object o)
    int PyObject_GC_IsTracked(object o)


cdef list ids_to_objs(const int32_t* vals, Py_ssize_t m, PyObject** objs, int bos, int eos,
                      bint untrack=False):
    """Like ids_to_list, from a prebuilt int object per piece index: one INCREF per token
    instead of allocating (and later freeing) an int object. With `untrack` the list is
    hidden from the cycle collector until track_lists() (see encode_many)."""
    cdef Py_ssize_t extra = (bos >= 0) + (eos >= 0), i, o = 0
    cdef list out = PyList_New(m + extra)
    cdef object item
    cdef PyObject* p
    if untrack:
        PyObject_GC_UnTrack(out)
    if bos >= 0:
        item = PyLong_FromLong(bos); Py_INCREF(item); PyList_SET_ITEM(out, o, item); o += 1
    for i in range(m):
        p = objs[vals[i]]
        incref_raw(p)
        list_set_raw(out, o, p)
        o += 1
    if eos >= 0:
        item = PyLong_FromLong(eos); Py_INCREF(item); PyList_SET_ITEM(out, o, item)
    return out


cdef inline const uint8_t* text_bytes(object data, Py_ssize_t* n) except NULL:
    """The bytes of a bytes object, or the UTF-8 of a str (read in place, no copy, when
    the str is ASCII)."""
    if type(data) is str:
        return <const uint8_t*>PyUnicode_AsUTF8AndSize(data, n)
    if type(data) is not bytes:
        raise TypeError(f"expected str or bytes, not {type(data).__name__}")
    n[0] = PyBytes_GET_SIZE(data)
    return <const uint8_t*>PyBytes_AS_STRING(data)


def track_lists(list lists):
    """Hand the id lists that encode_many(untrack=True) built back to the cycle collector.

    A batch builds thousands of lists; while they are young every collection that the
    batch's own allocations trigger walks all of them (about a tenth of a batch's time,
    all of it holding the GIL). They hold only ints, and nothing can reach them before
    the batch returns, so they cannot be part of a cycle until then: they are built
    untracked and tracked again here, once, when the batch is complete."""
    cdef object item
    for item in lists:
        if type(item) is list and not PyObject_GC_IsTracked(item):
            PyObject_GC_Track(item)
    if not PyObject_GC_IsTracked(lists):     # (Lattice.encode_lists builds it untracked)
        PyObject_GC_Track(lists)


cdef struct TextIn:
    const uint8_t* ptr    # the bytes to segment (a bytes object's, an ASCII str's) ...
    Py_ssize_t size       # ... and how many; or, when kind > 0,
    const void* chars     # a non-ASCII str's code points, `size` of them, `kind` bytes each,
    int kind              # UTF-8 encoded (without the GIL) just before segmenting
    bint check_nfc        # not normalised yet: NFC unless nfc_is_inert says otherwise


# ---------------------------------------------------------------------------
# NFC without the GIL, for batches.
#
# A str whose every character is "inert" (canonical combining class 0 and NFC quick
# check Yes: it is not changed, nothing before it reorders or composes with it) is in
# NFC: that is unicodedata's own quick check, on whose YES normalize("NFC", s) returns
# s itself. Which characters are inert is learnt from unicodedata one page of 256 code
# points at a time, when a batch first meets the page, and kept for the process. A
# batch checks its non-ASCII str against these bits without the GIL; only a str with a
# character that is not inert, or on a page not learnt yet, is passed to
# unicodedata.normalize. Pages are written with the GIL held and published by a
# release store of their flag, so a thread reading without the GIL sees whole pages.

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define BP_LOAD_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
    #define BP_STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
    #else
    #define BP_LOAD_ACQUIRE(p) (*(volatile unsigned char*)(p))
    #define BP_STORE_RELEASE(p, v) (*(volatile unsigned char*)(p) = (v))
    #endif
    """
    uint8_t BP_LOAD_ACQUIRE(const uint8_t* p) nogil
    void BP_STORE_RELEASE(uint8_t* p, uint8_t v) nogil

cdef uint8_t nfc_ready[0x1100]          # page learnt (written last)
cdef uint64_t nfc_inert[0x1100][4]      # one bit per code point of the page
_nfc_composing = None                   # see nfc_composing()


cdef inline bint nfc_inert_char(uint32_t c) noexcept nogil:
    cdef uint32_t p = c >> 8
    if not BP_LOAD_ACQUIRE(&nfc_ready[p]):
        return False
    return (nfc_inert[p][(c >> 6) & 3] >> (c & 63)) & 1


cdef bint nfc_is_inert(const TextIn* t) noexcept nogil:
    """Every character of the (non-ASCII) str is known to be inert, so the str is NFC."""
    cdef Py_ssize_t i
    cdef uint32_t c
    cdef const uint8_t* p1 = <const uint8_t*>t.chars
    cdef const uint16_t* p2 = <const uint16_t*>t.chars
    cdef const uint32_t* p4 = <const uint32_t*>t.chars
    if t.kind == 1:
        for i in range(t.size):
            c = p1[i]
            if c >= 0x80 and not nfc_inert_char(c):
                return False
    elif t.kind == 2:
        for i in range(t.size):
            c = p2[i]
            if c >= 0x80 and not nfc_inert_char(c):
                return False
    else:
        for i in range(t.size):
            c = p4[i]
            if c >= 0x80 and not nfc_inert_char(c):
                return False
    return True


def nfc_composing():
    """Code points that can compose with the character before them (those whose NFC quick
    check is Maybe): the second of every two-character canonical decomposition, and the
    Hangul vowel and trailing jamo. Found by scanning only the pages that NFD changes.
    (A superset would do no harm: its characters would just take the slow path.)"""
    global _nfc_composing
    if _nfc_composing is not None:
        return _nfc_composing
    found = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    # Every code point but the surrogates, as one str (built from its UTF-32).
    everything = np.concatenate([np.arange(0, 0xD800, dtype="<u4"),
                                 np.arange(0xE000, 0x110000, dtype="<u4")]).tobytes().decode("utf-32-le")
    for lo in range(0, len(everything), 4096):
        block = everything[lo:lo + 4096]
        if _normalize("NFD", block) == block:
            continue
        for start in range(0, len(block), 256):
            page = block[start:start + 256]
            if _normalize("NFD", page) == page:
                continue
            for ch in page:
                d = _decomposition(ch)
                if d and d[0] != "<":
                    parts = d.split()
                    if len(parts) == 2:
                        found.add(int(parts[1], 16))
    _nfc_composing = frozenset(found)
    return _nfc_composing


cdef int nfc_learn_page(uint32_t p) except -1:
    """Learn which code points of page p are inert (GIL held)."""
    cdef uint64_t bits[4]
    cdef uint32_t c
    composing = nfc_composing()
    memset(bits, 0, sizeof(bits))
    for c in range(p << 8, (p << 8) + 256):
        if 0xD800 <= c <= 0xDFFF:
            continue                             # a lone surrogate: str.encode must see it
        ch = chr(c)
        if _combining(ch) == 0 and c not in composing and _is_normalized("NFC", ch):
            bits[(c >> 6) & 3] |= (<uint64_t>1) << (c & 63)
    memcpy(nfc_inert[p], bits, sizeof(bits))
    BP_STORE_RELEASE(&nfc_ready[p], 1)
    return 0


cdef int nfc_learn_text(const TextIn* t) except -1:
    """Learn every page the str's characters are on (GIL held)."""
    cdef Py_ssize_t i
    cdef uint32_t c
    for i in range(t.size):
        if t.kind == 1:
            c = (<const uint8_t*>t.chars)[i]
        elif t.kind == 2:
            c = (<const uint16_t*>t.chars)[i]
        else:
            c = (<const uint32_t*>t.chars)[i]
        if not nfc_ready[c >> 8]:
            nfc_learn_page(c >> 8)
    return 0


def nfc_inert_chars(uint32_t page):
    """The inert code points of a page, learning it if need be (for tests)."""
    if not nfc_ready[page]:
        nfc_learn_page(page)
    return [c for c in range(page << 8, (page << 8) + 256) if nfc_inert_char(c)]


cdef inline Py_ssize_t utf8_size_bound(const TextIn* t) noexcept nogil:
    """Room the UTF-8 of a text needs at most (its code unit size bounds its encoding)."""
    if t.kind == 0:
        return 0
    return t.size * (2 if t.kind == 1 else (3 if t.kind == 2 else 4))


cdef inline Py_ssize_t utf8_put(uint32_t c, uint8_t* out) noexcept nogil:
    """The UTF-8 of code point c >= 0x80 into out; returns its length, or -1 for a surrogate."""
    if c < 0x800:
        out[0] = <uint8_t>(0xC0 | (c >> 6))
        out[1] = <uint8_t>(0x80 | (c & 0x3F))
        return 2
    if c < 0x10000:
        if 0xD800 <= c <= 0xDFFF:
            return -1
        out[0] = <uint8_t>(0xE0 | (c >> 12))
        out[1] = <uint8_t>(0x80 | ((c >> 6) & 0x3F))
        out[2] = <uint8_t>(0x80 | (c & 0x3F))
        return 3
    out[0] = <uint8_t>(0xF0 | (c >> 18))
    out[1] = <uint8_t>(0x80 | ((c >> 12) & 0x3F))
    out[2] = <uint8_t>(0x80 | ((c >> 6) & 0x3F))
    out[3] = <uint8_t>(0x80 | (c & 0x3F))
    return 4


ctypedef fused code_unit:
    uint16_t
    uint32_t


cdef inline Py_ssize_t utf8_of_units(const code_unit* p, Py_ssize_t size, uint8_t* out) noexcept nogil:
    """utf8_encode for 2- and 4-byte code units (one compiled loop per size)."""
    cdef Py_ssize_t i, o = 0, w
    cdef uint32_t c
    for i in range(size):
        c = p[i]
        if c < 0x80:
            out[o] = <uint8_t>c
            o += 1
        else:
            w = utf8_put(c, out + o)
            if w < 0:
                return -1
            o += w
    return o


cdef Py_ssize_t utf8_encode(const TextIn* t, uint8_t* out) noexcept nogil:
    """The UTF-8 of a str's code points into out; returns its length, or -1 at a lone
    surrogate, which UTF-8 cannot carry (str.encode("utf-8") raises there). One loop per
    code unit size, so the loops have no branch on it."""
    cdef Py_ssize_t i, o = 0
    cdef uint32_t c
    cdef const uint8_t* p1 = <const uint8_t*>t.chars
    if t.kind == 1:
        for i in range(t.size):
            c = p1[i]
            if c < 0x80:
                out[o] = <uint8_t>c
                o += 1
            else:
                out[o] = <uint8_t>(0xC0 | (c >> 6))
                out[o + 1] = <uint8_t>(0x80 | (c & 0x3F))
                o += 2
        return o
    if t.kind == 2:
        return utf8_of_units(<const uint16_t*>t.chars, t.size, out)
    return utf8_of_units(<const uint32_t*>t.chars, t.size, out)


cdef Py_ssize_t gather_texts(list datas, object form, object convert, TextIn* out, list keep) except -1:
    """Fill out[i] for every text of datas, with the GIL: bytes and ASCII str are read in
    place; a non-ASCII str is normalised first when `form` names a normal form
    (unicodedata.normalize, which returns the str itself when it is already normal) and
    left to utf8_encode; anything else goes through `convert`, which returns bytes or
    raises (TypeError when there is no `convert`). New objects are kept alive in `keep`.
    Returns the room the largest UTF-8 encoding needs."""
    cdef Py_ssize_t i, count = len(datas), room = 0, r
    cdef object d, d2
    cdef bint nfc = form == "NFC"
    for i in range(count):
        d = datas[i]
        if type(d) is str:
            if not PyUnicode_IS_ASCII(d) and form is not None and not nfc:
                d2 = _normalize(form, d)
                if d2 is not d:
                    keep.append(d2)
                    d = d2
            out[i].check_nfc = False
            if PyUnicode_IS_ASCII(d):
                out[i].ptr = <const uint8_t*>PyUnicode_DATA(d)
                out[i].size = PyUnicode_GET_LENGTH(d)
                out[i].kind = 0
            else:
                out[i].ptr = NULL
                out[i].chars = PyUnicode_DATA(d)
                out[i].size = PyUnicode_GET_LENGTH(d)
                out[i].kind = PyUnicode_KIND(d)
                out[i].check_nfc = nfc       # checked without the GIL (nfc_is_inert)
                r = utf8_size_bound(&out[i])
                if r > room:
                    room = r
            continue
        if type(d) is not bytes:
            if convert is None:
                raise TypeError(f"expected str or bytes, not {type(d).__name__}")
            d = convert(d)
            if type(d) is not bytes:
                raise TypeError(f"convert returned {type(d).__name__}, not bytes")
            keep.append(d)
        out[i].ptr = <const uint8_t*>PyBytes_AS_STRING(d)
        out[i].size = PyBytes_GET_SIZE(d)
        out[i].kind = 0
        out[i].check_nfc = False
    return room


cdef Py_ssize_t check_nfc_texts(TextIn* texts, Py_ssize_t count) noexcept nogil:
    """Clear check_nfc of the texts known to be NFC; returns how many are left."""
    cdef Py_ssize_t i, left = 0
    for i in range(count):
        if texts[i].check_nfc:
            if nfc_is_inert(&texts[i]):
                texts[i].check_nfc = False
            else:
                left += 1
    return left


cdef Py_ssize_t normalise_left(list datas, TextIn* texts, Py_ssize_t count, list keep) except -1:
    """With the GIL: learn the pages of the texts check_nfc_texts left, and normalise those
    that still need it with unicodedata (NFC); returns the room the largest UTF-8 needs."""
    cdef Py_ssize_t i, room = 0
    cdef object d
    for i in range(count):
        if texts[i].check_nfc:
            texts[i].check_nfc = False
            nfc_learn_text(&texts[i])
            if not nfc_is_inert(&texts[i]):
                d = _normalize("NFC", datas[i])
                keep.append(d)
                if PyUnicode_IS_ASCII(d):
                    texts[i].ptr = <const uint8_t*>PyUnicode_DATA(d)
                    texts[i].size = PyUnicode_GET_LENGTH(d)
                    texts[i].kind = 0
                else:
                    texts[i].chars = PyUnicode_DATA(d)
                    texts[i].size = PyUnicode_GET_LENGTH(d)
                    texts[i].kind = PyUnicode_KIND(d)
        room = max(room, utf8_size_bound(&texts[i]))
    return room


cdef inline const uint8_t* text_in_bytes(const TextIn* t, uint8_t* scratch, Py_ssize_t* n) noexcept nogil:
    """The bytes to segment for a gathered text (encoded into scratch if need be); NULL when
    the text cannot be encoded."""
    if t.kind == 0:
        n[0] = t.size
        return t.ptr
    n[0] = utf8_encode(t, scratch)
    if n[0] < 0:
        return NULL
    return scratch


cdef void raise_unencodable(list datas, Py_ssize_t i, object form) except *:
    """Raise the error str.encode gives for text i (it holds a lone surrogate)."""
    d = datas[i]
    if form is not None:
        d = _normalize(form, d)
    d.encode("utf-8")
    raise UnicodeEncodeError("utf-8", d, 0, len(d), "surrogates not allowed")


cdef Py_ssize_t run_texts(const Model* M, int mode, TextIn* texts, Py_ssize_t count, bint chunked,
                          const uint64_t* seeds, const uint64_t* keys, int rng_kind, uint8_t* scratch,
                          Workspace* ws, int32_t* vals, Py_ssize_t total, Py_ssize_t* nout) noexcept nogil:
    """Segment the gathered texts one after the other (encode_many): text i's piece indices
    go to vals (one after the other, nout[i] of them; vals + total is room for end positions).
    Returns -1 when all are done, -2 when out of memory, i >= 0 when text i cannot be encoded."""
    cdef Py_ssize_t i, n, m, off = 0
    cdef const uint8_t* x
    cdef Rng rng
    for i in range(count):
        x = text_in_bytes(&texts[i], scratch, &n)
        if x == NULL:
            return i
        if mode != MODE_VITERBI:
            rng_init(&rng, seeds[i], keys[i], rng_kind)
        m = segment(M, mode, x, n, chunked, False, &rng, ws, vals + off, vals + total + off)
        if m < 0:
            return -2
        nout[i] = m
        off += m
    return -1


cdef struct FlatOut:
    uint16_t* out16      # ids, when they fit in 16 bits ...
    int32_t* out32       # ... or else
    int32_t* ends        # end positions (NULL: not wanted)
    int64_t* rows        # count + 1 row offsets
    const int32_t* ids   # id of each piece index
    int bos, eos


cdef Py_ssize_t run_texts_flat(const Model* M, int mode, TextIn* texts, Py_ssize_t count, bint chunked,
                               const uint64_t* seeds, const uint64_t* keys, int rng_kind,
                               uint8_t* scratch, Workspace* ws, FlatOut* o) noexcept nogil:
    """Segment the gathered texts into flat arrays (encode_many_flat); returns as run_texts."""
    cdef Py_ssize_t i, j, n, m, off = 0
    cdef const uint8_t* x
    cdef Rng rng
    o.rows[0] = 0
    for i in range(count):
        x = text_in_bytes(&texts[i], scratch, &n)
        if x == NULL:
            return i
        if mode != MODE_VITERBI:
            rng_init(&rng, seeds[i], keys[i], rng_kind)
        if ws_reserve(ws, n, M.trie.max_len) < 0:
            return -2
        m = segment(M, mode, x, n, chunked, False, &rng, ws, ws.out_val, ws.out_end)
        if m < 0:
            return -2
        if o.bos >= 0:
            if o.out16 != NULL: o.out16[off] = <uint16_t>o.bos
            else: o.out32[off] = o.bos
            if o.ends != NULL: o.ends[off] = 0
            off += 1
        if o.out16 != NULL:
            for j in range(m):
                o.out16[off + j] = <uint16_t>o.ids[ws.out_val[j]]
        else:
            for j in range(m):
                o.out32[off + j] = o.ids[ws.out_val[j]]
        if o.ends != NULL:
            memcpy(o.ends + off, ws.out_end, m * sizeof(int32_t))
        off += m
        if o.eos >= 0:
            if o.out16 != NULL: o.out16[off] = <uint16_t>o.eos
            else: o.out32[off] = o.eos
            if o.ends != NULL: o.ends[off] = <int32_t>n
            off += 1
        o.rows[i + 1] = off
    return -1


cdef Py_ssize_t utf8_total(const TextIn* texts, Py_ssize_t count) noexcept nogil:
    """Bytes the gathered texts take at most."""
    cdef Py_ssize_t i, total = 0
    for i in range(count):
        total += texts[i].size if texts[i].kind == 0 else utf8_size_bound(&texts[i])
    return total


cdef list ids_to_list(const int32_t* vals, Py_ssize_t m, const int32_t* ids, int bos, int eos):
    cdef Py_ssize_t extra = (bos >= 0) + (eos >= 0), i, o = 0
    cdef list out = PyList_New(m + extra)
    cdef object item
    if bos >= 0:
        item = PyLong_FromLong(bos); Py_INCREF(item); PyList_SET_ITEM(out, o, item); o += 1
    for i in range(m):
        item = PyLong_FromLong(ids[vals[i]]); Py_INCREF(item); PyList_SET_ITEM(out, o, item); o += 1
    if eos >= 0:
        item = PyLong_FromLong(eos); Py_INCREF(item); PyList_SET_ITEM(out, o, item)
    return out


cdef int key_word_arrays(const uint64_t[::1] seed_words, const uint64_t[::1] key_words, Py_ssize_t count,
                         const uint64_t** seeds, const uint64_t** keys) except -1:
    """Pointers to the seed and key words of a sampled batch (one each per text)."""
    if (seed_words is None or key_words is None
            or seed_words.shape[0] != count or key_words.shape[0] != count):
        raise ValueError("sampling needs one seed word and one key word per text")
    if count:
        seeds[0] = &seed_words[0]
        keys[0] = &key_words[0]
    return 0



# ---------------------------------------------------------------------------
# Counting adjacent pairs of pieces (the trainer's candidates for longer pieces)

# How many keys ahead PairCounts.add_run fetches a slot.
cdef enum:
    PREFETCH_AHEAD = 8


cdef struct PairSlot:
    uint64_t key              # key + 1; 0 marks an empty slot
    int64_t value


cdef class PairCounts:
    """{(a, b): weight}: how often piece index b follows piece index a, as an int64 sum of
    integer weights (so any order of adding up gives the same table). Keys are
    a * num_pieces + b; an open-addressing table (key and value side by side: one cache
    line per lookup), at most three quarters full (linear probing stays short at that
    load, and the table of a sample's distinct pairs is the EM stage's largest object)."""
    cdef PairSlot* slots
    cdef Py_ssize_t cap       # a power of two
    cdef Py_ssize_t used
    cdef readonly int64_t num_pieces

    def __cinit__(self, int64_t num_pieces, Py_ssize_t expected=0):
        if num_pieces < 1:
            raise ValueError(f"num_pieces must be >= 1, not {num_pieces}")
        self.num_pieces = num_pieces
        self.cap = 1 << 12
        while 3 * self.cap < 4 * expected:
            self.cap *= 2
        self.used = 0
        self.slots = <PairSlot*>big_alloc(self.cap * sizeof(PairSlot), 1)
        if self.slots == NULL:
            raise MemoryError()

    def __dealloc__(self):
        big_free(self.slots)

    def __len__(self):
        return self.used

    def __reduce__(self):
        keys, values = self.arrays()
        return (_pair_counts_from_arrays, (self.num_pieces, keys, values))

    cdef int _resize(self, Py_ssize_t cap) noexcept nogil:
        cdef PairSlot* old = self.slots
        cdef Py_ssize_t i, j
        cdef PairSlot* fresh = <PairSlot*>big_alloc(cap * sizeof(PairSlot), 1)
        if fresh == NULL:
            return -1
        for i in range(self.cap):
            if old[i].key:
                j = <Py_ssize_t>(mix64(old[i].key) & <uint64_t>(cap - 1))
                while fresh[j].key:
                    j = (j + 1) & (cap - 1)
                fresh[j] = old[i]
        self.slots, self.cap = fresh, cap
        big_free(old)
        return 0

    cdef int add(self, uint64_t key, int64_t value) noexcept nogil:
        """Adds value at key (a * num_pieces + b); -1 when out of memory."""
        cdef uint64_t k = key + 1
        cdef Py_ssize_t j, mask
        cdef PairSlot* slot
        if 4 * (self.used + 1) > 3 * self.cap and self._resize(2 * self.cap) < 0:
            return -1
        mask = self.cap - 1
        j = <Py_ssize_t>(mix64(k) & <uint64_t>mask)
        while True:
            slot = &self.slots[j]
            if slot.key == k:
                slot.value += value
                return 0
            if slot.key == 0:
                slot.key = k
                slot.value = value
                self.used += 1
                return 0
            j = (j + 1) & mask

    cdef int add_run(self, const uint64_t* keys, const int64_t* values, Py_ssize_t count,
                     int64_t value) noexcept nogil:
        """Adds values[i] (or `value`, when values is NULL) at keys[i] for i < count; -1
        when out of memory. The same table as count calls of add, faster: the table is
        grown once for the whole run, and the slot of the key PREFETCH_AHEAD places on is
        fetched while this one is added (a table of a sample's pairs is far larger than
        the caches: each add waits for memory, and this overlaps those waits)."""
        cdef Py_ssize_t i, j, mask
        cdef uint64_t k
        cdef PairSlot* slot
        while 4 * (self.used + count) > 3 * self.cap:
            if self._resize(2 * self.cap) < 0:
                return -1
        mask = self.cap - 1
        for i in range(min(count, PREFETCH_AHEAD)):
            prefetch(&self.slots[<Py_ssize_t>(mix64(keys[i] + 1) & <uint64_t>mask)])
        for i in range(count):
            if i + PREFETCH_AHEAD < count:
                prefetch(&self.slots[<Py_ssize_t>(mix64(keys[i + PREFETCH_AHEAD] + 1) & <uint64_t>mask)])
            k = keys[i] + 1
            j = <Py_ssize_t>(mix64(k) & <uint64_t>mask)
            while True:
                slot = &self.slots[j]
                if slot.key == k:
                    slot.value += value if values == NULL else values[i]
                    break
                if slot.key == 0:
                    slot.key = k
                    slot.value = value if values == NULL else values[i]
                    self.used += 1
                    break
                j = (j + 1) & mask
        return 0

    def add_array(self, const int64_t[::1] keys, const int64_t[::1] values):
        """Adds values[i] at keys[i] for every i."""
        cdef Py_ssize_t i
        if keys.shape[0] != values.shape[0]:
            raise ValueError("keys and values must have the same length")
        for i in range(keys.shape[0]):
            if keys[i] < 0 or keys[i] >= self.num_pieces * self.num_pieces:
                raise ValueError(f"key {keys[i]} out of range")
            if self.add(<uint64_t>keys[i], values[i]) < 0:
                raise MemoryError()

    def merge(self, PairCounts other):
        """Adds other's counts into this table (same num_pieces)."""
        cdef Py_ssize_t i = 0, m
        cdef int status = 0
        cdef uint64_t keys[256]
        cdef int64_t values[256]
        if other.num_pieces != self.num_pieces:
            raise ValueError("pair tables of different vocabularies")
        with nogil:            # (in runs of 256 entries: add_run overlaps their memory waits)
            while i < other.cap and status == 0:
                m = 0
                while i < other.cap and m < 256:
                    if other.slots[i].key:
                        keys[m] = other.slots[i].key - 1
                        values[m] = other.slots[i].value
                        m += 1
                    i += 1
                status = self.add_run(keys, values, m, 0)
        if status < 0:
            raise MemoryError()

    def arrays(self, int64_t min_count=-(1 << 62), bint sort=True):
        """(keys, counts) as int64 arrays, keys ascending (in table order with
        sort=False), of the entries >= min_count."""
        cdef Py_ssize_t i, m = 0
        keys = np.empty(max(self.used, 1), dtype=np.int64)
        values = np.empty(max(self.used, 1), dtype=np.int64)
        cdef int64_t[::1] kv = keys, vv = values
        with nogil:
            for i in range(self.cap):
                if self.slots[i].key and self.slots[i].value >= min_count:
                    kv[m] = <int64_t>(self.slots[i].key - 1)
                    vv[m] = self.slots[i].value
                    m += 1
        if not sort:
            return keys[:m], values[:m]
        order = np.argsort(keys[:m], kind="stable")
        return keys[:m][order], values[:m][order]


def _pair_counts_from_arrays(num_pieces, keys, values):
    table = PairCounts(num_pieces)
    table.add_array(np.ascontiguousarray(keys, dtype=np.int64), np.ascontiguousarray(values, dtype=np.int64))
    return table


cdef inline int pair_half(uint64_t key) noexcept nogil:
    """0 or 1: which half of the pairs a key (a * num_pieces + b) falls in, by its hash's
    top bit (a table's slots come from the low bits)."""
    return <int>(mix64(key + 1) >> 63)


cdef inline uint64_t mix64(uint64_t x) noexcept nogil:
    """A 64-bit finaliser (xor-shift-multiply): consecutive keys spread over the table."""
    x ^= x >> 33
    x *= <uint64_t>0xff51afd7ed558ccd
    x ^= x >> 33
    x *= <uint64_t>0xc4ceb9fe1a85ec53
    x ^= x >> 33
    return x


# ---------------------------------------------------------------------------
# A batch into Python lists, shared by the calling thread and its helpers.
#
# The helpers never take the GIL while the batch runs: they claim chunks of texts with
# an atomic counter and segment them into one shared buffer, flagging each chunk when
# it is done. Only the calling thread builds id lists (which needs the GIL), chunk by
# chunk in text order, between chunks of its own; so list building overlaps the
# helpers' segmenting instead of queueing with it for the GIL.

cdef extern from *:
    """
    #if defined(_MSC_VER) && !defined(__clang__)
    #include <windows.h>
    #define BP_FETCH_ADD(p, v) InterlockedExchangeAdd64((volatile LONG64*)(p), (LONG64)(v))
    #define BP_YIELD() SwitchToThread()
    #else
    #include <sched.h>
    #define BP_FETCH_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
    #define BP_YIELD() sched_yield()
    #endif
    """
    Py_ssize_t BP_FETCH_ADD(Py_ssize_t* p, Py_ssize_t v) nogil
    void BP_YIELD() nogil
    void BP_STORE_RELEASE(uint8_t* p, uint8_t v) nogil


cdef enum:
    CHUNK_TEXTS = 32      # texts per chunk (a chunk is claimed, and its lists built, at once)
    NOUT_UNENCODABLE = -1
    NOUT_NO_MEMORY = -2
    NOUT_NFC = -3         # may change under NFC: left to the calling thread


cdef struct BatchState:
    Model M
    int mode, rng_kind
    bint chunked
    TextIn* texts
    const uint64_t* seeds
    const uint64_t* keys
    Py_ssize_t count, chunk, nchunks, room
    Py_ssize_t next_chunk     # the next chunk to claim (atomic)
    Py_ssize_t* first         # text i's piece indices go to vals[first[i]:], room for its bytes
    Py_ssize_t* nout          # how many, or NOUT_*
    int32_t* vals
    uint8_t* done             # chunk c is segmented (stored with release, read with acquire)


cdef Py_ssize_t batch_chunk(BatchState* b, Workspace* ws, uint8_t* scratch) noexcept nogil:
    """Claim the next chunk and segment its texts; returns it, or -1 when none is left."""
    cdef Py_ssize_t c = BP_FETCH_ADD(&b.next_chunk, 1), i, lo, hi, n, m
    cdef const uint8_t* x
    cdef Rng rng
    if c >= b.nchunks:
        return -1
    lo = c * b.chunk
    hi = lo + b.chunk if lo + b.chunk < b.count else b.count
    for i in range(lo, hi):
        if b.texts[i].check_nfc and not nfc_is_inert(&b.texts[i]):
            b.nout[i] = NOUT_NFC
            continue
        x = text_in_bytes(&b.texts[i], scratch, &n)
        if x == NULL:
            b.nout[i] = NOUT_UNENCODABLE
            continue
        if b.mode != MODE_VITERBI:
            rng_init(&rng, b.seeds[i], b.keys[i], b.rng_kind)
        m = -1
        if ws_reserve(ws, n, b.M.trie.max_len) == 0:
            m = segment(&b.M, b.mode, x, n, b.chunked, False, &rng, ws, b.vals + b.first[i], ws.out_end)
        b.nout[i] = m if m >= 0 else NOUT_NO_MEMORY
    BP_STORE_RELEASE(&b.done[c], 1)
    return c


cdef class _ListBatch:
    """The state of one Lattice.encode_lists call, kept alive by the calling thread and
    by every helper running help()."""
    cdef BatchState b
    cdef list datas, held
    cdef object keep, seed_ref, key_ref, lattice

    def __cinit__(self):
        memset(&self.b, 0, sizeof(BatchState))

    def __dealloc__(self):
        free(self.b.texts); free(self.b.first); free(self.b.nout); free(self.b.vals); free(self.b.done)

    def help(self):
        """A helper's part: segment chunks, without the GIL, until none is left."""
        cdef Workspace ws
        cdef uint8_t* scratch = <uint8_t*>malloc(self.b.room + 1)
        if scratch == NULL:
            return           # the calling thread does the chunks this one would have
        memset(&ws, 0, sizeof(Workspace))
        with nogil:
            while batch_chunk(&self.b, &ws, scratch) >= 0:
                pass
            ws_free(&ws)
        free(scratch)


cdef object batch_one_text(Lattice lat, _ListBatch job, Py_ssize_t i, object form, Workspace* ws,
                           int bos, int eos):
    """The id list of text i that a chunk left (NOUT_NFC), with the GIL: normalised if NFC
    changes it, then segmented here."""
    cdef BatchState* b = &job.b
    cdef TextIn* t = &b.texts[i]
    cdef Py_ssize_t n, m = -1
    cdef const uint8_t* x
    cdef uint8_t* scratch
    cdef Rng rng
    cdef object d
    t.check_nfc = False
    nfc_learn_text(t)
    if not nfc_is_inert(t):
        d = _normalize("NFC", job.datas[i])
        job.held.append(d)
        if PyUnicode_IS_ASCII(d):
            t.ptr = <const uint8_t*>PyUnicode_DATA(d)
            t.size = PyUnicode_GET_LENGTH(d)
            t.kind = 0
        else:
            t.chars = PyUnicode_DATA(d)
            t.size = PyUnicode_GET_LENGTH(d)
            t.kind = PyUnicode_KIND(d)
    scratch = <uint8_t*>malloc(utf8_size_bound(t) + 1)
    if scratch == NULL:
        raise MemoryError()
    try:
        x = text_in_bytes(t, scratch, &n)
        if x == NULL:
            raise_unencodable(job.datas, i, form)
        if b.mode != MODE_VITERBI:
            rng_init(&rng, b.seeds[i], b.keys[i], b.rng_kind)
        with nogil:
            if ws_reserve(ws, n, b.M.trie.max_len) == 0:
                m = segment(&b.M, b.mode, x, n, b.chunked, False, &rng, ws, ws.out_val, ws.out_end)
        if m < 0:
            raise MemoryError()
        return ids_to_objs(ws.out_val, m, lat._id_ptrs, bos, eos, True)
    finally:
        free(scratch)


cdef class Lattice:
    """A vocabulary compiled for segmentation.

    ``Lattice(pieces, logprobs, ids)``: piece ``pieces[i]`` (bytes) has
    log-probability ``logprobs[i]`` and id ``ids[i]``. All 256 single bytes
    must be pieces. Immutable after construction; safe to share across threads.
    """
    cdef Trie trie
    cdef double[::1] logp
    cdef const double* logp_ptr
    cdef int32_t[::1] ids
    cdef readonly int num_pieces
    cdef readonly int max_len
    cdef readonly double min_logprob
    cdef dict _weights        # alpha -> address of exp(alpha * logp), built on first use
    cdef list _weight_arrays  # the arrays behind those addresses
    cdef double _last_alpha   # the last cached alpha looked up, and its address: a
    cdef object _last_address # sampling loop asks for the same alpha every call
    cdef const double* _last_q  # ... and that address as a pointer (encode's fast path)
    cdef tuple _id_objs       # the id of each piece index as a Python int ...
    cdef PyObject** _id_ptrs  # ... and as pointers (borrowed from _id_objs), for ids_to_objs
    cdef Lattice _trie_owner  # a lattice made by with_logprobs borrows its trie from this one
    cdef int32_t _id_shift    # ids[i] == i + _id_shift for every i, or -1
    cdef object __weakref__

    def __cinit__(self):
        memset(&self.trie, 0, sizeof(Trie))

    def __init__(self, pieces, logprobs, ids):
        pieces = list(pieces)
        logp = np.ascontiguousarray(logprobs, dtype=np.float64)
        id_arr = np.ascontiguousarray(ids, dtype=np.int32)
        if not (len(pieces) == len(logp) == len(id_arr)):
            raise ValueError("pieces, logprobs and ids must have the same length")
        if not np.all(np.isfinite(logp)) or np.any(logp > 0):
            raise ValueError("log-probabilities must be finite and <= 0")
        if len(id_arr) and id_arr.min() < 0:
            raise ValueError("ids must be >= 0")
        build_trie(&self.trie, pieces)      # (it checks the pieces too)
        self.logp = logp
        self.logp_ptr = &self.logp[0]
        self.ids = id_arr
        self.num_pieces = len(pieces)
        self.max_len = self.trie.max_len
        self.min_logprob = float(logp.min())
        self._weights = {}
        self._weight_arrays = []
        self._last_alpha = NAN
        self._last_address = None
        self._id_objs = tuple(id_arr.tolist())
        self._id_shift = -1
        if len(id_arr) and np.array_equal(id_arr, np.arange(len(id_arr), dtype=np.int64) + int(id_arr[0])):
            self._id_shift = int(id_arr[0])
        self._id_ptrs = <PyObject**>malloc(max(1, len(pieces)) * sizeof(PyObject*))
        if self._id_ptrs == NULL:
            raise MemoryError()
        for i, obj in enumerate(self._id_objs):
            self._id_ptrs[i] = <PyObject*>obj

    def __dealloc__(self):
        if self._trie_owner is None:
            free(self.trie.base)
            free(self.trie.check)
            free(self.trie.value)
        free(self._id_ptrs)

    def with_logprobs(self, logprobs):
        """The same pieces and ids with other log-probabilities, without building the trie
        again (the new lattice shares this one's)."""
        logp = np.ascontiguousarray(logprobs, dtype=np.float64)
        if logp.shape != (self.num_pieces,):
            raise ValueError(f"need {self.num_pieces} log-probabilities, not {logp.shape}")
        if not np.all(np.isfinite(logp)) or np.any(logp > 0):
            raise ValueError("log-probabilities must be finite and <= 0")
        cdef Lattice out = Lattice.__new__(Lattice)
        cdef Py_ssize_t i
        out.trie = self.trie
        out._trie_owner = self if self._trie_owner is None else self._trie_owner
        out.logp = logp
        out.logp_ptr = &out.logp[0] if self.num_pieces else NULL
        out.ids = self.ids
        out.num_pieces = self.num_pieces
        out.max_len = self.max_len
        out.min_logprob = float(logp.min()) if self.num_pieces else 0.0
        out._weights = {}
        out._weight_arrays = []
        out._last_alpha = NAN             # (0.0 would pass for a cached alpha of 0)
        out._last_address = None
        out._id_objs = self._id_objs
        out._id_shift = self._id_shift
        out._id_ptrs = <PyObject**>malloc(max(1, self.num_pieces) * sizeof(PyObject*))
        if out._id_ptrs == NULL:
            raise MemoryError()
        for i in range(self.num_pieces):
            out._id_ptrs[i] = self._id_ptrs[i]
        return out

    # -- helpers -----------------------------------------------------------
    cdef int _mode(self, double alpha, int sampler) except -1:
        if alpha < 0:
            return MODE_VITERBI
        if alpha != alpha or alpha == INFINITY:
            raise ValueError(f"alpha must be a finite number, not {alpha}")
        if sampler == S_LEGACY_V1:
            return MODE_LEGACY_V1
        if sampler == S_EXACT_LOGSPACE or alpha * self.min_logprob < -LINEAR_LIMIT:
            return MODE_EXACT_LOG
        if sampler != S_EXACT:
            raise ValueError(f"unknown sampler {sampler}")
        return MODE_EXACT

    cdef object _q_array(self, double alpha, int mode):
        """exp(alpha * logp) for linear-space sampling, else None. The first 16 alphas are
        cached for the object's lifetime and returned as their address (an int); later ones
        are computed per call and returned as an array the caller holds while it works."""
        cdef double[::1] view
        if mode != MODE_EXACT:
            return None
        if alpha == self._last_alpha:        # (never true for NaN, the initial value)
            return self._last_address
        address = self._weights.get(alpha)
        if address is not None:
            self._last_address = address     # all three set with the GIL held
            self._last_q = <const double*><size_t>address
            self._last_alpha = alpha
            return address
        q = np.exp(alpha * np.asarray(self.logp))
        if len(self._weights) >= 16:
            return q
        view = q
        self._weight_arrays.append(q)        # never removed: cached addresses stay valid
        address = <size_t>&view[0]
        self._weights[alpha] = address
        return address

    cdef void _model(self, Model* M, double alpha, object q):
        cdef double[::1] view
        M.trie = self.trie
        M.logp = self.logp_ptr
        M.alpha = alpha
        if q is None:
            M.q = self.logp_ptr
        elif type(q) is int:
            M.q = <const double*><size_t>q
        else:
            view = q
            M.q = &view[0]

    # -- segmentation ------------------------------------------------------
    def segment(self, const uint8_t[::1] data, double alpha=-1.0, uint64_t seed_word=0,
                uint64_t key_word=0, bint chunked=True, int sampler=S_EXACT,
                int rng_kind=RNG_XOSHIRO, bint forbid_whole=False):
        """(piece indices, end positions) as int32 numpy arrays."""
        cdef int mode = self._mode(alpha, sampler)
        cdef object keep = self._q_array(alpha, mode)
        cdef Model M
        cdef Rng rng
        cdef Workspace ws
        cdef Py_ssize_t n = data.shape[0], m
        vals = np.empty(n, dtype=np.int32)
        ends = np.empty(n, dtype=np.int32)
        cdef int32_t[::1] vv = vals, ee = ends
        self._model(&M, alpha, keep)
        rng_init(&rng, seed_word, key_word, rng_kind)
        memset(&ws, 0, sizeof(Workspace))
        with nogil:
            m = segment(&M, mode, &data[0] if n else NULL, n, chunked, forbid_whole, &rng, &ws,
                        &vv[0] if n else NULL, &ee[0] if n else NULL)
            ws_free(&ws)
        if m < 0:
            raise MemoryError()
        return vals[:m], ends[:m]

    def encode(self, object data, double alpha=-1.0, uint64_t seed_word=0, uint64_t key_word=0,
               bint chunked=True, int sampler=S_EXACT, int rng_kind=RNG_XOSHIRO,
               int bos=-1, int eos=-1):
        """Ids of one segmentation of `data`, bytes or a str read as UTF-8 (Viterbi when
        alpha < 0)."""
        return self._encode(data, alpha, self._mode(alpha, sampler), seed_word, key_word, chunked,
                            rng_kind, bos, eos)

    cdef object _encode(self, object data, double alpha, int mode, uint64_t seed_word,
                        uint64_t key_word, bint chunked, int rng_kind, int bos, int eos):
        cdef object keep = None
        cdef Model M
        cdef Rng rng
        cdef Workspace ws
        cdef char stack[STACK_WORKSPACE]
        cdef Py_ssize_t n, m
        cdef const uint8_t* x = text_bytes(data, &n)
        if mode == MODE_EXACT and alpha == self._last_alpha:    # a sampling loop's usual case
            M.trie = self.trie
            M.logp = self.logp_ptr
            M.alpha = alpha
            M.q = self._last_q
        else:
            keep = self._q_array(alpha, mode)
            self._model(&M, alpha, keep)
        if mode != MODE_VITERBI:
            rng_init(&rng, seed_word, key_word, rng_kind)
        ws_init(&ws, stack, sizeof(stack))
        with nogil:
            m = -1
            if ws_reserve(&ws, n, M.trie.max_len) == 0:
                m = segment(&M, mode, x, n, chunked, False, &rng, &ws, ws.out_val, ws.out_end)
        try:
            if m < 0:
                raise MemoryError()
            return ids_to_objs(ws.out_val, m, self._id_ptrs, bos, eos)
        finally:
            ws_free(&ws)

    def tokenize(self, bytes data, double alpha=-1.0, uint64_t seed_word=0, uint64_t key_word=0,
                 bint chunked=True, int sampler=S_EXACT, int rng_kind=RNG_XOSHIRO):
        """Pieces (bytes) of one segmentation of `data`."""
        cdef int mode = self._mode(alpha, sampler)
        cdef object keep = self._q_array(alpha, mode)
        cdef Model M
        cdef Rng rng
        cdef Workspace ws
        cdef char stack[STACK_WORKSPACE]
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data), m, i, start
        cdef const char* x = PyBytes_AS_STRING(data)
        cdef list out
        cdef object item
        self._model(&M, alpha, keep)
        if mode != MODE_VITERBI:
            rng_init(&rng, seed_word, key_word, rng_kind)
        ws_init(&ws, stack, sizeof(stack))
        with nogil:
            m = -1
            if ws_reserve(&ws, n, M.trie.max_len) == 0:
                m = segment(&M, mode, <const uint8_t*>x, n, chunked, False, &rng, &ws, ws.out_val, ws.out_end)
        try:
            if m < 0:
                raise MemoryError()
            out = PyList_New(m)
            start = 0
            for i in range(m):
                item = PyBytes_FromStringAndSize(x + start, ws.out_end[i] - start)
                Py_INCREF(item)
                PyList_SET_ITEM(out, i, item)
                start = ws.out_end[i]
            return out
        finally:
            ws_free(&ws)

    def encode_many(self, list datas, double alpha=-1.0, const uint64_t[::1] seed_words=None,
                    const uint64_t[::1] key_words=None, bint chunked=True, int sampler=S_EXACT,
                    int rng_kind=RNG_XOSHIRO, int bos=-1, int eos=-1, object form=None,
                    object convert=None, bint untrack=False):
        """encode() for a list of texts, with one (seed word, key word) per item, the GIL
        released for the whole block. Returns a list of id lists.

        Texts are bytes or str (see gather_texts: `form` normalises non-ASCII str, NFC
        mostly without the GIL, and their UTF-8 is made without it; `convert` turns other
        objects into bytes). With `untrack` the id lists are built untracked by the cycle
        collector; the caller must pass them to track_lists() when its batch is complete."""
        cdef int mode = self._mode(alpha, sampler)
        cdef object keep = self._q_array(alpha, mode)
        cdef Py_ssize_t count = len(datas), i, total, off, room, left, status = -1
        cdef Model M
        cdef Workspace ws
        cdef list held = []
        cdef const uint64_t* seeds = NULL
        cdef const uint64_t* keys = NULL
        if mode != MODE_VITERBI:
            key_word_arrays(seed_words, key_words, count, &seeds, &keys)
        cdef TextIn* texts = <TextIn*>malloc((count + 1) * sizeof(TextIn))
        cdef Py_ssize_t* nout = <Py_ssize_t*>malloc((count + 1) * sizeof(Py_ssize_t))
        cdef int32_t* buf = NULL
        cdef uint8_t* scratch = NULL
        memset(&ws, 0, sizeof(Workspace))
        try:
            if texts == NULL or nout == NULL:
                raise MemoryError()
            room = gather_texts(datas, form, convert, texts, held)
            total = utf8_total(texts, count)
            buf = <int32_t*>malloc((2 * total + 2) * sizeof(int32_t))
            scratch = <uint8_t*>malloc(room + 1)
            if buf == NULL or scratch == NULL:
                raise MemoryError()
            self._model(&M, alpha, keep)
            with nogil:
                left = check_nfc_texts(texts, count)
                if left == 0:
                    status = run_texts(&M, mode, texts, count, chunked, seeds, keys, rng_kind, scratch,
                                       &ws, buf, total, nout)
            if left:     # texts that NFC may change (or on pages not learnt yet)
                room = normalise_left(datas, texts, count, held)
                total = utf8_total(texts, count)
                free(buf); free(scratch)
                buf = <int32_t*>malloc((2 * total + 2) * sizeof(int32_t))
                scratch = <uint8_t*>malloc(room + 1)
                if buf == NULL or scratch == NULL:
                    raise MemoryError()
                with nogil:
                    status = run_texts(&M, mode, texts, count, chunked, seeds, keys, rng_kind, scratch,
                                       &ws, buf, total, nout)
            if status == -2:
                raise MemoryError()
            if status >= 0:
                raise_unencodable(datas, status, form)
            out = PyList_New(count)
            off = 0
            for i in range(count):
                lst = ids_to_objs(buf + off, nout[i], self._id_ptrs, bos, eos, untrack)
                Py_INCREF(lst)
                PyList_SET_ITEM(out, i, lst)
                off += nout[i]
            return out
        finally:
            ws_free(&ws)
            free(texts); free(nout); free(buf); free(scratch)

    def encode_lists(self, list datas, double alpha=-1.0, const uint64_t[::1] seed_words=None,
                     const uint64_t[::1] key_words=None, bint chunked=True, int sampler=S_EXACT,
                     int rng_kind=RNG_XOSHIRO, int bos=-1, int eos=-1, object form=None,
                     object convert=None, int threads=1, object submit=None):
        """encode_many(datas, ...) on this thread and threads - 1 helpers: the list of id
        lists (tracked by the cycle collector). `submit(task, helpers)` must run task()
        soon on that many other threads (without waiting for it).

        The texts are gathered with the GIL first; then this thread and the helpers
        segment chunks of them without it (see batch_chunk), and this thread alone builds
        the id lists, in text order, each time it has finished a chunk of its own, and
        once every chunk is claimed, as the helpers finish theirs."""
        cdef int mode = self._mode(alpha, sampler)
        cdef object keep = self._q_array(alpha, mode)
        cdef _ListBatch job = _ListBatch.__new__(_ListBatch)
        cdef BatchState* b = &job.b
        cdef Py_ssize_t count = len(datas), i, total = 0, c, built = 0, lo, hi, r
        cdef Workspace ws
        cdef uint8_t* scratch = NULL
        cdef list result
        cdef object lst
        job.datas = datas
        job.held = []
        job.keep = keep
        job.lattice = self
        if mode != MODE_VITERBI:
            key_word_arrays(seed_words, key_words, count, &b.seeds, &b.keys)
            job.seed_ref = seed_words
            job.key_ref = key_words
        b.mode = mode
        b.rng_kind = rng_kind
        b.chunked = chunked
        b.count = count
        b.chunk = CHUNK_TEXTS
        b.nchunks = (count + CHUNK_TEXTS - 1) // CHUNK_TEXTS
        b.texts = <TextIn*>malloc((count + 1) * sizeof(TextIn))
        b.first = <Py_ssize_t*>malloc((count + 1) * sizeof(Py_ssize_t))
        b.nout = <Py_ssize_t*>malloc((count + 1) * sizeof(Py_ssize_t))
        b.done = <uint8_t*>calloc(b.nchunks + 1, 1)
        if b.texts == NULL or b.first == NULL or b.nout == NULL or b.done == NULL:
            raise MemoryError()
        b.room = gather_texts(datas, form, convert, b.texts, job.held)
        for i in range(count):
            b.first[i] = total
            total += b.texts[i].size if b.texts[i].kind == 0 else utf8_size_bound(&b.texts[i])
        b.first[count] = total
        b.vals = <int32_t*>malloc((total + 1) * sizeof(int32_t))
        scratch = <uint8_t*>malloc(b.room + 1)
        if b.vals == NULL or scratch == NULL:
            free(scratch)
            raise MemoryError()
        self._model(&b.M, alpha, keep)
        result = PyList_New(count)           # NULL items until built (list_dealloc allows it)
        PyObject_GC_UnTrack(result)
        memset(&ws, 0, sizeof(Workspace))
        try:
            if threads > 1 and b.nchunks > 1 and submit is not None:
                submit(job.help, min(threads - 1, b.nchunks - 1))
            while built < b.nchunks:
                with nogil:
                    c = batch_chunk(b, &ws, scratch)
                    if c < 0:     # all claimed: wait for the next chunk in order
                        while BP_LOAD_ACQUIRE(&b.done[built]) == 0:
                            BP_YIELD()
                while built < b.nchunks and BP_LOAD_ACQUIRE(&b.done[built]):
                    lo = built * b.chunk
                    hi = lo + b.chunk if lo + b.chunk < count else count
                    for i in range(lo, hi):
                        r = b.nout[i]
                        if r >= 0:
                            lst = ids_to_objs(b.vals + b.first[i], r, self._id_ptrs, bos, eos, True)
                        elif r == NOUT_NFC:
                            lst = batch_one_text(self, job, i, form, &ws, bos, eos)
                        elif r == NOUT_UNENCODABLE:
                            raise_unencodable(datas, i, form)
                        else:
                            raise MemoryError()
                        Py_INCREF(lst)
                        PyList_SET_ITEM(result, i, lst)
                    built += 1
        except BaseException:
            # Helpers stop claiming; wait for the chunks they are on, so that none reads
            # a text of `datas` (or `job`) after this call has returned.
            c = BP_FETCH_ADD(&b.next_chunk, b.nchunks + 1)
            with nogil:
                for i in range(built, c if c < b.nchunks else b.nchunks):
                    while BP_LOAD_ACQUIRE(&b.done[i]) == 0:
                        BP_YIELD()
            raise
        finally:
            ws_free(&ws)
            free(scratch)
        track_lists(result)
        return result

    def viterbi_windowed(self, const uint8_t[::1] data, Py_ssize_t first_cap, bint chunked=True):
        """segment(data) by the bounded-memory Viterbi that long texts take, with a
        window of first_cap positions to start with (for tests: any size gives the same
        segmentation)."""
        cdef Model M
        cdef Py_ssize_t n = data.shape[0], m = 0
        vals = np.empty(n, dtype=np.int32)
        ends = np.empty(n, dtype=np.int32)
        cdef int32_t[::1] vv = vals, ee = ends
        self._model(&M, -1.0, None)
        if n:
            with nogil:
                m = seg_viterbi_window(&M, &data[0], n, chunked, first_cap, &vv[0], &ee[0])
        if m < 0:
            raise MemoryError()
        return vals[:m], ends[:m]

    def viterbi_split(self, bytes data, bint forbid_whole=False):
        """Ids of the Viterbi segmentation of `data` as one chunk. With forbid_whole the
        piece covering all of `data` is not used (unless `data` is a single byte)."""
        cdef Model M
        cdef Workspace ws
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data), m
        cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
        cdef int32_t* buf = <int32_t*>malloc((2 * n + 1) * sizeof(int32_t))
        if buf == NULL:
            raise MemoryError()
        self._model(&M, -1.0, None)
        memset(&ws, 0, sizeof(Workspace))
        try:
            with nogil:
                m = segment(&M, MODE_VITERBI, x, n, False, forbid_whole, NULL, &ws, buf, buf + n)
                ws_free(&ws)
            if m < 0:
                raise MemoryError()
            return ids_to_list(buf, m, &self.ids[0], -1, -1)
        finally:
            free(buf)

    def split_scores(self, list datas):
        """For each bytes in `datas`, the Viterbi score of its best segmentation as one
        chunk without the piece covering all of it (as viterbi_split(d, True)): a float64
        array. What a piece would cost if it were removed from the vocabulary."""
        cdef Py_ssize_t count = len(datas), i, longest = 0, m = 0
        cdef Model M
        cdef Workspace ws
        out = np.empty(count, dtype=np.float64)
        cdef double[::1] ov = out
        cdef ByteViews views
        cdef const uint8_t** ptrs
        cdef Py_ssize_t* lens
        cdef int32_t* buf = NULL
        memset(&views, 0, sizeof(ByteViews))
        try:
            views_of(datas, &views)
            ptrs, lens, longest = views.ptrs, views.lens, views.longest
            buf = <int32_t*>malloc((2 * longest + 2) * sizeof(int32_t))
            if buf == NULL:
                raise MemoryError()
            self._model(&M, -1.0, None)
            memset(&ws, 0, sizeof(Workspace))
            with nogil:
                for i in range(count):
                    if lens[i] == 0:
                        ov[i] = 0.0
                        continue
                    m = segment(&M, MODE_VITERBI, ptrs[i], lens[i], False, True, NULL, &ws,
                                buf, buf + longest + 1)
                    if m < 0:
                        break
                    ov[i] = ws.score[lens[i]]
                ws_free(&ws)
            if m < 0:
                raise MemoryError()
            return out
        finally:
            views_free(&views); free(buf)

    # -- forward-backward --------------------------------------------------
    def expected_counts(self, list texts, double[::1] counts, double alpha=1.0, bint chunked=False,
                        bint logspace=False, weights=None):
        """Adds each piece's expected count under exp(alpha*score)/Z into counts[id]
        (forward-backward over each text); returns the sum of log Z over the texts.
        With ``weights`` (one per text), text i's counts and log Z count weights[i] times.
        Runs in linear space unless ``logspace`` or alpha * |logp| is too large for it."""
        cdef Py_ssize_t count = len(texts), i, longest = 0
        cdef const double* wp = NULL
        cdef const double[::1] wv
        if weights is not None:
            wv = np.ascontiguousarray(weights, dtype=np.float64)
            if wv.shape[0] != count:
                raise ValueError(f"{count} texts but {wv.shape[0]} weights")
            wp = &wv[0] if count else NULL
        cdef int32_t max_id = int(np.asarray(self.ids).max())
        if counts.shape[0] <= max_id:
            raise ValueError(f"counts needs at least {max_id + 1} entries")
        if not (alpha >= 0 and alpha < INFINITY):
            raise ValueError(f"alpha must be finite and >= 0, not {alpha}")
        cdef ByteViews views
        cdef const uint8_t** ptrs
        cdef Py_ssize_t* lens
        cdef double* bwd = NULL
        cdef double total = 0.0, logz = 0.0
        cdef double* cnt
        cdef const int32_t* idp
        cdef EdgeStore es
        cdef bint linear = not logspace and alpha * self.min_logprob >= -LINEAR_LIMIT
        cdef object keep
        cdef Model M
        cdef Workspace ws
        memset(&views, 0, sizeof(ByteViews))
        try:
            views_of(texts, &views)
            ptrs, lens, longest = views.ptrs, views.lens, views.longest
            bwd = <double*>malloc((longest + 1) * sizeof(double))
            memset(&ws, 0, sizeof(Workspace))
            if bwd == NULL or ws_reserve(&ws, longest, self.trie.max_len) < 0:
                ws_free(&ws)
                raise MemoryError()
            keep = self._q_array(alpha, MODE_EXACT if linear else MODE_EXACT_LOG)
            self._model(&M, alpha, keep)
            if self._id_shift >= 0 and linear:
                cnt = &counts[self._id_shift]     # ids are consecutive: index the counts directly
                idp = NULL
            else:
                cnt = &counts[0]
                idp = &self.ids[0]
            memset(&es, 0, sizeof(EdgeStore))
            with nogil:
                for i in range(count):
                    logz = forward_backward(&M, ptrs[i], lens[i], chunked, not linear, &ws, &es, bwd,
                                            cnt, idp, NULL, 1.0 if wp == NULL else wp[i])
                    if logz != logz:
                        break
                    total += logz if wp == NULL else wp[i] * logz
                ws_free(&ws)
                es_free(&es)
            if logz != logz:
                raise MemoryError()
            return total
        finally:
            views_free(&views); free(bwd)

    def viterbi_counts(self, list texts, weights, double[::1] counts):
        """Adds, for each text (bytes, one chunk: no newline cuts), weights[i] to
        counts[piece] for every piece of its Viterbi segmentation (piece indices, not ids),
        text after text and piece after piece: the same floats as np.bincount over the
        concatenated segmentations with each token weighted by its text's weight. The loop
        runs with the GIL released."""
        cdef const double[::1] wv = np.ascontiguousarray(weights, dtype=np.float64)
        if wv.shape[0] != len(texts):
            raise ValueError(f"{len(texts)} texts but {wv.shape[0]} weights")
        if counts.shape[0] != self.num_pieces:
            raise ValueError(f"counts has {counts.shape[0]} entries, the lattice {self.num_pieces} pieces")
        if len(texts):
            self._viterbi_sums(texts, NULL, &wv[0], None, NULL, &counts[0], None)

    def count_viterbi_pairs(self, list texts, weights, PairCounts out, int64_t[::1] unigrams=None,
                            PairCounts odd=None):
        """Adds, for each text (bytes, one chunk: no newline cuts), weights[i] for every pair
        of adjacent pieces (a, b) of its Viterbi segmentation to out[a * num_pieces + b]
        (piece indices, not ids), and, given `unigrams` (num_pieces entries), weights[i]
        for every piece of it to unigrams[piece]. Given `odd`, the pairs whose key is odd
        by pair_half go there instead of `out`: tables of one half merge and read apart from
        the other's, on another thread. The loop runs with the GIL released."""
        cdef const int64_t[::1] wv = np.ascontiguousarray(weights, dtype=np.int64)
        if wv.shape[0] != len(texts):
            raise ValueError(f"{len(texts)} texts but {wv.shape[0]} weights")
        if out.num_pieces != self.num_pieces or (odd is not None and odd.num_pieces != self.num_pieces):
            raise ValueError(f"the pair table is for {out.num_pieces} pieces, the lattice has {self.num_pieces}")
        if unigrams is not None and unigrams.shape[0] != self.num_pieces:
            raise ValueError(f"unigrams has {unigrams.shape[0]} entries, the lattice {self.num_pieces} pieces")
        if len(texts):
            self._viterbi_sums(texts, &wv[0], NULL, out, NULL if unigrams is None else &unigrams[0], NULL, odd)

    cdef int _viterbi_sums(self, list texts, const int64_t* iw, const double* fw, PairCounts pairs,
                           int64_t* unigrams, double* counts, PairCounts odd) except -1:
        """The Viterbi segmentation of each text, summed as asked: text i's integer weight
        iw[i] per adjacent pair into `pairs` and per piece into `unigrams`, its float weight
        fw[i] per piece into `counts` (each NULL / None when not wanted); given `odd`, the
        pairs of the odd half (pair_half) go there instead of `pairs`. The loop runs with
        the GIL released."""
        cdef Py_ssize_t count = len(texts), i, j, m, longest = 0
        cdef int64_t npieces = self.num_pieces
        cdef ByteViews views
        cdef const uint8_t** ptrs
        cdef Py_ssize_t* lens
        cdef int32_t* vals = NULL
        cdef int32_t* ends = NULL
        cdef uint64_t* keys = NULL
        cdef uint64_t* odd_keys = NULL
        cdef uint64_t key
        cdef Py_ssize_t n_even, n_odd
        cdef int status = 0
        cdef Model M
        cdef Workspace ws
        memset(&ws, 0, sizeof(Workspace))
        memset(&views, 0, sizeof(ByteViews))
        try:
            views_of(texts, &views)
            ptrs, lens, longest = views.ptrs, views.lens, views.longest
            vals = <int32_t*>malloc((longest + 1) * sizeof(int32_t))
            ends = <int32_t*>malloc((longest + 1) * sizeof(int32_t))
            if pairs is not None:
                keys = <uint64_t*>malloc((longest + 1) * sizeof(uint64_t))
                odd_keys = <uint64_t*>malloc((longest + 1) * sizeof(uint64_t))
            if vals == NULL or ends == NULL or (pairs is not None and (keys == NULL or odd_keys == NULL)):
                raise MemoryError()
            self._model(&M, -1.0, None)
            with nogil:
                for i in range(count):
                    if lens[i] == 0:
                        continue
                    m = seg_viterbi(&M, ptrs[i], lens[i], False, False, &ws, vals, ends)
                    if m < 0:
                        status = -1
                        break
                    if counts != NULL:
                        for j in range(m):
                            counts[vals[j]] += fw[i]
                    if unigrams != NULL:
                        for j in range(m):
                            unigrams[vals[j]] += iw[i]
                    if pairs is not None and m > 1:
                        n_even = n_odd = 0
                        for j in range(1, m):
                            key = <uint64_t>(vals[j - 1] * npieces + vals[j])
                            if odd is not None and pair_half(key):
                                odd_keys[n_odd] = key
                                n_odd += 1
                            else:
                                keys[n_even] = key
                                n_even += 1
                        if pairs.add_run(keys, NULL, n_even, iw[i]) < 0 or (
                                n_odd and odd.add_run(odd_keys, NULL, n_odd, iw[i]) < 0):
                            status = -1
                            break
            if status < 0:
                raise MemoryError()
        finally:
            ws_free(&ws)
            views_free(&views); free(vals); free(ends); free(keys); free(odd_keys)
        return 0

    def boundary_marginals(self, bytes data, double alpha=1.0, bint chunked=True, bint logspace=False):
        """(log Z, p) where p[i] is the probability that a piece boundary falls at byte i
        (i = 0 .. len(data)) under exp(alpha*score)/Z (log space: see expected_counts)."""
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
        cdef Model M
        cdef Workspace ws
        cdef double logz
        if not (alpha >= 0 and alpha < INFINITY):
            raise ValueError(f"alpha must be finite and >= 0, not {alpha}")
        marg = np.ones(n + 1, dtype=np.float64)
        bwd = np.empty(n + 1, dtype=np.float64)
        cdef double[::1] mv = marg, bv = bwd
        cdef bint linear = not logspace and alpha * self.min_logprob >= -LINEAR_LIMIT
        cdef EdgeStore es
        keep = self._q_array(alpha, MODE_EXACT if linear else MODE_EXACT_LOG)
        ws_start(&ws, n, self.trie.max_len)
        self._model(&M, alpha, keep)
        memset(&es, 0, sizeof(EdgeStore))
        with nogil:
            logz = forward_backward(&M, x, n, chunked, not linear, &ws, &es, &bv[0], NULL, NULL, &mv[0], 1.0)
            ws_free(&ws)
            es_free(&es)
        if logz != logz:
            raise MemoryError()
        return logz, marg

    def __reduce__(self):
        raise TypeError("Lattice does not pickle; pickle the Tokenizer that owns it")

    # -- exact lattice answers: n-best, path scores, entropy -------------------
    # (Added for issue 5; the cdef functions they call are at the end of the file.)
    def nbest(self, bytes data, int n, bint chunked=True):
        """The n best segmentations of `data`, best first, as a list of
        (piece indices, end positions, score) with int32 numpy arrays.

        Exact k-best Viterbi: every position keeps its n best partial paths (a true
        top-n path only ever extends top-n prefixes), so nothing is pruned that
        could be in the answer. Scores are summed from 0 in each chunk (as Viterbi
        does) and the chunk scores added left to right. Ties are ordered as Viterbi
        orders them, recursively: within a chunk the longer last piece first, then
        the order of the prefixes; across chunks the order within the last chunk,
        then the order of the chunks before it. So nbest(x, 1) is the Viterbi path.
        """
        cdef Py_ssize_t length = PyBytes_GET_SIZE(data), cs, ce, i, m, r, cnt
        cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
        cdef Model M
        cdef Workspace ws
        cdef KBest kb
        if n < 1:
            raise ValueError(f"n must be >= 1, not {n}")
        if length == 0:
            return [(np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int32), 0.0)]
        memset(&kb, 0, sizeof(KBest))
        memset(&ws, 0, sizeof(Workspace))
        if kbest_reserve(&kb, length, n, self.trie.max_len) < 0 or ws_reserve(&ws, length, self.trie.max_len) < 0:
            kbest_free(&kb)
            ws_free(&ws)
            raise MemoryError()
        vals = np.empty(length, dtype=np.int32)
        ends = np.empty(length, dtype=np.int32)
        cdef int32_t[::1] vv = vals, ee = ends
        self._model(&M, -1.0, None)
        # Per chunk: its ranked paths as (score, first piece, number of pieces) in vals/ends.
        levels = []
        try:
            cs = 0
            while cs < length:
                ce = chunk_end(x, cs, length, chunked)
                with nogil:
                    kbest_chunk(&M, x, cs, ce, &kb, &ws)
                cnt = kb.count[ce]
                paths = []
                for r in range(cnt):
                    m = kbest_backtrack(&kb, cs, ce, <int>r, &vv[0], &ee[0])
                    paths.append((kb.score[ce * kb.k + r], vals[:m].copy(), ends[:m].copy()))
                levels.append(paths)
                cs = ce
        finally:
            kbest_free(&kb)
            ws_free(&ws)
        return _combine_ranked(levels, n)

    def path_score(self, bytes data, const int32_t[::1] ends, bint chunked=True):
        """(score, piece indices) of the segmentation of `data` whose pieces end at
        `ends` (strictly increasing, the last one len(data)). The score is summed from 0
        in each chunk and the chunk scores added left to right, as in nbest. Raises
        ValueError when a piece is not in the vocabulary; the score is -inf when a
        piece crosses a chunk boundary (the model never produces it)."""
        cdef Py_ssize_t length = PyBytes_GET_SIZE(data), m = ends.shape[0], i, p
        cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
        cdef int32_t s = 0, e, value
        cdef double total = 0.0, chunk = 0.0
        cdef bint crosses = False
        cdef Workspace ws
        if (m == 0) != (length == 0) or (m and ends[m - 1] != length):
            raise ValueError("the pieces do not cover the text")
        vals = np.empty(m, dtype=np.int32)
        cdef int32_t[::1] vv = vals
        ws_start(&ws, length, self.trie.max_len)
        try:
            for i in range(m):
                e = ends[i]
                if e <= s or e > length:
                    raise ValueError("piece end positions must increase strictly")
                value = piece_at(&self.trie, x, s, e, &ws)
                if value < 0:
                    raise ValueError(f"piece {i} ({data[s:e]!r}) is not in the vocabulary")
                vv[i] = value
                if chunked and s > 0 and is_chunk_start(x, s):
                    total = total + chunk
                    chunk = 0.0
                if chunked and not crosses:
                    for p in range(s + 1, e):
                        if is_chunk_start(x, p):
                            crosses = True
                            break
                chunk = chunk + self.logp[value]
                s = e
            total = total + chunk
        finally:
            ws_free(&ws)
        return (-INFINITY if crosses else total), vals

    def entropy(self, bytes data, double alpha=1.0, bint chunked=True):
        """(log Z, entropy in nats, expected score) of the distribution
        exp(alpha * score) / Z over the segmentations of `data`.

        One forward pass: with w_j the probability that the last piece into position
        e is edge j (from s_j), H[e] = sum_j w_j * (H[s_j] - log w_j) and
        E[e] = sum_j w_j * (E[s_j] + logp_j); every term is >= 0 for H, so there is
        no cancellation even when the distribution is nearly deterministic.
        Chunks are independent, so their entropies and expectations add up."""
        cdef Py_ssize_t length = PyBytes_GET_SIZE(data)
        cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
        cdef Model M
        cdef Workspace ws
        cdef double logz, ent = 0.0, escore = 0.0
        if not (alpha >= 0 and alpha < INFINITY):
            raise ValueError(f"alpha must be finite and >= 0, not {alpha}")
        h = np.empty(length + 1, dtype=np.float64)
        g = np.empty(length + 1, dtype=np.float64)
        cdef double[::1] hv = h, gv = g
        ws_start(&ws, length, self.trie.max_len)
        self._model(&M, alpha, None)
        with nogil:
            logz = forward_entropy(&M, x, length, chunked, &ws, &hv[0], &gv[0], &ent, &escore)
            ws_free(&ws)
        return logz, ent, escore

    # -- flat batches (issue 8) ------------------------------------------------
    def encode_many_flat(self, list datas, double alpha=-1.0, const uint64_t[::1] seed_words=None,
                         const uint64_t[::1] key_words=None, bint chunked=True, int sampler=S_EXACT,
                         int rng_kind=RNG_XOSHIRO, int bos=-1, int eos=-1, bint small=False,
                         bint with_ends=False, object form=None, object convert=None):
        """encode_many() without Python lists: (ids, row offsets, ends).

        ids is one flat numpy array (uint16 when `small`, else int32), row offsets an int64
        array of len(datas) + 1 (text i is ids[offsets[i]:offsets[i + 1]]), and ends, when
        `with_ends`, the int32 end byte position of every token within its text (0 for bos,
        the text's length for eos), else None. The loop runs with the GIL released. Texts,
        `form` and `convert` as in encode_many."""
        cdef int mode = self._mode(alpha, sampler)
        cdef object keep = self._q_array(alpha, mode)
        cdef Py_ssize_t count = len(datas), room, left, status = -1
        cdef Model M
        cdef Workspace ws
        cdef FlatOut o
        cdef list held = []
        cdef const uint64_t* seeds = NULL
        cdef const uint64_t* keys = NULL
        if mode != MODE_VITERBI:
            key_word_arrays(seed_words, key_words, count, &seeds, &keys)
        cdef TextIn* texts = <TextIn*>malloc((count + 1) * sizeof(TextIn))
        cdef uint8_t* scratch = NULL
        memset(&ws, 0, sizeof(Workspace))
        try:
            if texts == NULL:
                raise MemoryError()
            room = gather_texts(datas, form, convert, texts, held)
            self._model(&M, alpha, keep)
            with nogil:
                left = check_nfc_texts(texts, count)
            if left:     # texts that NFC may change (or on pages not learnt yet)
                room = normalise_left(datas, texts, count, held)
            scratch = <uint8_t*>malloc(room + 1)
            if scratch == NULL:
                raise MemoryError()
            cap = utf8_total(texts, count) + 2 * count + 1
            ids = np.empty(cap, dtype=np.uint16 if small else np.int32)
            offsets = np.empty(count + 1, dtype=np.int64)
            ends = np.empty(cap if with_ends else 1, dtype=np.int32)
            o.out16 = <uint16_t*><size_t>ids.ctypes.data if small else NULL
            o.out32 = NULL if small else <int32_t*><size_t>ids.ctypes.data
            o.ends = <int32_t*><size_t>ends.ctypes.data if with_ends else NULL
            o.rows = <int64_t*><size_t>offsets.ctypes.data
            o.ids = &self.ids[0]
            o.bos = bos
            o.eos = eos
            with nogil:
                status = run_texts_flat(&M, mode, texts, count, chunked, seeds, keys, rng_kind, scratch, &ws, &o)
            if status == -2:
                raise MemoryError()
            if status >= 0:
                raise_unencodable(datas, status, form)
            off = offsets[count]
            return ids[:off], offsets, (ends[:off] if with_ends else None)
        finally:
            ws_free(&ws)
            free(texts); free(scratch)

    def forward_log(self, bytes data, double alpha=1.0, bint chunked=True):
        """F[e] = log of the sum of exp(alpha * score) over the segmentations of data[:e]
        (pieces stay inside chunks; F is not reset at chunk starts, so F[len] = log Z).
        Float64 numpy array of len(data) + 1 entries. (Added for issue 5.)"""
        cdef Py_ssize_t length = PyBytes_GET_SIZE(data)
        cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
        cdef Model M
        cdef Workspace ws
        if not (alpha >= 0 and alpha < INFINITY):
            raise ValueError(f"alpha must be finite and >= 0, not {alpha}")
        out = np.empty(length + 1, dtype=np.float64)
        cdef double[::1] fv = out
        ws_start(&ws, length, self.trie.max_len)
        self._model(&M, alpha, None)
        with nogil:
            forward_global(&M, x, length, chunked, &ws, &fv[0])
            ws_free(&ws)
        return out


# ---------------------------------------------------------------------------
# Exact lattice answers (issue 5): k-best Viterbi, piece lookup, forward entropy.

cdef class DrawStream:
    """A tokenizer's unkeyed draws: its stream word, and how many calls have drawn from
    it. Call k samples as a call keyed by the word k would, with the stream word as
    seed word. Call numbers are taken with the GIL held, so threads sharing a stream
    never take the same one; a forked or unpickled copy sets a word of its own."""
    cdef readonly Lattice lattice
    cdef public uint64_t word
    cdef uint64_t calls

    def __init__(self, Lattice lattice, uint64_t word):
        self.lattice = lattice
        self.word = word
        self.calls = 0

    def take(self, Py_ssize_t n=1):
        """The first of the next n call numbers, which are now taken."""
        if n < 0:
            raise ValueError(f"cannot take {n} call numbers")
        first = self.calls
        self.calls += <uint64_t>n
        return first

    def encode(self, object data, double alpha, int bos=-1, int eos=-1):
        """lattice.encode(data, alpha, word, call number) with the exact sampler: the
        per-call path of unkeyed sampling, without Python objects for the key."""
        cdef uint64_t call = self.calls
        self.calls += 1
        return self.lattice._encode(data, alpha, self.lattice._mode(alpha, S_EXACT), self.word, call,
                                    True, RNG_XOSHIRO, bos, eos)


cdef struct KBest:
    double* score        # [position * k + rank]: score of the rank-th best path into position
    int32_t* start       # its last piece's start
    int32_t* value       # its last piece's index
    int32_t* prev        # the rank of its prefix among the paths into start
    int32_t* count       # [position]: how many paths are kept there (<= k)
    int32_t* head        # scratch: per edge, the next prefix rank to consider
    Py_ssize_t k


cdef int kbest_reserve(KBest* kb, Py_ssize_t n, Py_ssize_t k, int32_t max_len) noexcept nogil:
    cdef size_t slots = <size_t>(n + 1) * <size_t>k
    kb.k = k
    kb.score = <double*>malloc(slots * sizeof(double))
    kb.start = <int32_t*>malloc(slots * sizeof(int32_t))
    kb.value = <int32_t*>malloc(slots * sizeof(int32_t))
    kb.prev = <int32_t*>malloc(slots * sizeof(int32_t))
    kb.count = <int32_t*>malloc((n + 1) * sizeof(int32_t))
    kb.head = <int32_t*>malloc((max_len + 1) * sizeof(int32_t))
    if (kb.score == NULL or kb.start == NULL or kb.value == NULL or kb.prev == NULL
            or kb.count == NULL or kb.head == NULL):
        return -1
    return 0


cdef void kbest_free(KBest* kb) noexcept nogil:
    free(kb.score); free(kb.start); free(kb.value); free(kb.prev); free(kb.count); free(kb.head)
    memset(kb, 0, sizeof(KBest))


cdef void kbest_chunk(const Model* M, const uint8_t* x, Py_ssize_t cs, Py_ssize_t ce,
                      KBest* kb, Workspace* ws) noexcept nogil:
    """The k best paths into every position of the chunk x[cs:ce], scores from 0 at cs.

    The paths into e are a k-way merge of the edges' lists (each edge's list is the
    list at its start, shifted by the piece's log-probability, so already sorted):
    repeatedly take the best head; a tie goes to the longer piece (edges are collected
    shortest first, so the later edge), and within one edge the better prefix comes
    first. The heads per edge live in kb.head (at most max_len edges)."""
    cdef Py_ssize_t k = kb.k, e, slot
    cdef int K, j, bj
    cdef int32_t s, r
    cdef double c, best
    kb.count[cs] = 1
    kb.score[cs * k] = 0.0
    kb.start[cs * k] = -1
    kb.value[cs * k] = -1
    kb.prev[cs * k] = -1
    for e in range(cs + 1, ce + 1):
        K = collect_edges(&M.trie, x, e, cs, ws.starts, ws.values)
        for j in range(K):
            kb.head[j] = 0
        r = 0
        while r < k:
            bj = -1
            best = -INFINITY
            for j in range(K):
                s = ws.starts[j]
                if kb.head[j] < kb.count[s]:
                    c = kb.score[s * k + kb.head[j]] + M.logp[ws.values[j]]
                    if bj < 0 or c >= best:      # shortest first: >= lets the longer piece win ties
                        best = c
                        bj = j
            if bj < 0:
                break
            slot = e * k + r
            kb.score[slot] = best
            kb.start[slot] = ws.starts[bj]
            kb.value[slot] = ws.values[bj]
            kb.prev[slot] = kb.head[bj]
            kb.head[bj] += 1
            r += 1
        kb.count[e] = r


cdef Py_ssize_t kbest_backtrack(const KBest* kb, Py_ssize_t cs, Py_ssize_t ce, int rank,
                                int32_t* out_val, int32_t* out_end) noexcept nogil:
    """The pieces of the rank-th best path into ce (from cs), in text order."""
    cdef Py_ssize_t e = ce, m = 0, i, slot
    cdef int r = rank
    cdef int32_t t
    while e > cs:
        slot = e * kb.k + r
        out_val[m] = kb.value[slot]
        out_end[m] = <int32_t>e
        m += 1
        r = kb.prev[slot]
        e = kb.start[slot]
    for i in range(m // 2):
        t = out_val[i]; out_val[i] = out_val[m - 1 - i]; out_val[m - 1 - i] = t
        t = out_end[i]; out_end[i] = out_end[m - 1 - i]; out_end[m - 1 - i] = t
    return m


def _combine_ranked(list levels, Py_ssize_t n):
    """Merge per-chunk ranked lists into the n best whole-text paths.

    levels[c] is chunk c's list of (score, piece indices, end positions), best first.
    The combined order: higher total score (added left to right), then the rank within
    the later chunk, then the rank of the earlier combination; it is monotone in both
    ranks, so a heap walk from (0, 0) visits the pairs in order."""
    import heapq
    # combos: list of (score, chunk index, rank in chunk, index of the prefix combo)
    combos = [(sc, 0, r, -1) for r, (sc, _, _) in enumerate(levels[0][:n])]
    history = [combos]
    for c in range(1, len(levels)):
        chunk = levels[c]
        heap = [(-(combos[0][0] + chunk[0][0]), 0, 0)]
        seen = {(0, 0)}
        out = []
        while heap and len(out) < n:
            neg, j, i = heapq.heappop(heap)
            out.append((-neg, c, j, i))
            for ni, nj in ((i + 1, j), (i, j + 1)):
                if ni < len(combos) and nj < len(chunk) and (ni, nj) not in seen:
                    seen.add((ni, nj))
                    heapq.heappush(heap, (-(combos[ni][0] + chunk[nj][0]), nj, ni))
        combos = out
        history.append(combos)
    results = []
    for entry in combos:
        parts_v, parts_e = [], []
        score = entry[0]
        while True:
            _, c, r, prev = entry
            parts_v.append(levels[c][r][1])
            parts_e.append(levels[c][r][2])
            if prev < 0:
                break
            entry = history[c - 1][prev]
        parts_v.reverse()
        parts_e.reverse()
        results.append((np.concatenate(parts_v).astype(np.int32), np.concatenate(parts_e).astype(np.int32), score))
    return results


cdef int32_t piece_at(const Trie* trie, const uint8_t* x, Py_ssize_t s, Py_ssize_t e,
                      Workspace* ws) noexcept nogil:
    """The index of the piece x[s:e], or -1 when it is not in the vocabulary."""
    cdef int k
    if e - s > trie.max_len:
        return -1
    k = collect_edges(trie, x, e, s, ws.starts, ws.values)
    if k > 0 and ws.starts[k - 1] == s:
        return ws.values[k - 1]
    return -1


cdef double forward_entropy(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                            Workspace* ws, double* ent, double* esc,
                            double* ent_total, double* esc_total) noexcept nogil:
    """log Z (summed over chunks); adds the entropy and the expected score to the totals.
    ent and esc hold n + 1 doubles (per-position entropy and expected score)."""
    cdef Py_ssize_t e, cs = 0
    cdef int k, j
    cdef double logz_total = 0.0, top, tot, lw, w, h, g
    cdef double* fwd = ws.score
    fwd[0] = 0.0
    ent[0] = 0.0
    esc[0] = 0.0
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            logz_total += fwd[cs]
            ent_total[0] += ent[cs]
            esc_total[0] += esc[cs]
            fwd[cs] = 0.0
            ent[cs] = 0.0
            esc[cs] = 0.0
        k = collect_edges(&M.trie, x, e, cs, ws.starts, ws.values)
        top = -INFINITY
        for j in range(k):
            ws.weights[j] = fwd[ws.starts[j]] + M.alpha * M.logp[ws.values[j]]
            if ws.weights[j] > top:
                top = ws.weights[j]
        tot = 0.0
        for j in range(k):
            tot += exp(ws.weights[j] - top)
        fwd[e] = top + log(tot)
        h = 0.0
        g = 0.0
        for j in range(k):
            lw = ws.weights[j] - fwd[e]
            w = exp(lw)
            if w > 0.0:
                h += w * (ent[ws.starts[j]] - lw)
                g += w * (esc[ws.starts[j]] + M.logp[ws.values[j]])
        ent[e] = h
        esc[e] = g
    if n > 0:
        logz_total += fwd[n]
        ent_total[0] += ent[n]
        esc_total[0] += esc[n]
    return logz_total


cdef void forward_global(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                         Workspace* ws, double* fwd) noexcept nogil:
    """The forward log-sums into fwd[0 .. n], edges kept inside chunks, never reset."""
    cdef Py_ssize_t e, cs = 0
    cdef int k, j
    cdef double top, tot, c
    fwd[0] = 0.0
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
        k = collect_edges(&M.trie, x, e, cs, ws.starts, ws.values)
        top = -INFINITY
        for j in range(k):
            c = fwd[ws.starts[j]] + M.alpha * M.logp[ws.values[j]]
            ws.weights[j] = c
            if c > top:
                top = c
        tot = 0.0
        for j in range(k):
            tot += exp(ws.weights[j] - top)
        fwd[e] = top + log(tot)
