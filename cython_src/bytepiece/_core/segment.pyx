# The segmentation kernels: Viterbi (0.6.3's decisions, ties included), Viterbi in
# bounded memory for long texts, exact sampling, and the legacy v1 sampler; and
# `segment`, the one dispatch every caller goes through (segment.pxd declares them).
#
# Why they are built this way:
# - Each is one pass over the end positions; position e reads its incoming edges from
#   one backward trie walk (trie.pxd) and is final once they are read. Viterbi fuses the
#   walk with the relaxation (>= in shortest-first order: the longest piece wins ties).
# - Exact sampling is forward filtering, backward sampling. As soon as F[e] (the sum of
#   exp(alpha * score) over the segmentations of the prefix) is known, the back-pointer
#   of e is drawn among its incoming edges with probability proportional to their
#   forward weights; the choice depends only on the prefix, so following back-pointers
#   from the end is an exact draw, at one uniform per position. The forward sums are
#   kept in linear space as mantissa * 2**exponent (no exp or log per edge, only a cached
#   exp(alpha * logp) per piece); alphas so large that those weights could underflow take
#   a log-space twin. Random numbers come from common/rng.pxd, a state per call.
# - Text is cut into chunks (chunks.pxd); Viterbi restarts its scores at each chunk.

from libc.math cimport INFINITY, exp, frexp, log
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memmove, memset

from .chunks cimport chunk_end, is_chunk_start
from .common.realloc cimport realloc_into
from .common.rng cimport RNG_XOSHIRO, Rng, rng_next, rng_uniform
from .trie cimport trie_edges


# ---------------------------------------------------------------------------
# Per-call scratch space

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


cdef Py_ssize_t backtrack(Workspace* ws, Py_ssize_t n, int32_t* out_val, int32_t* out_end) noexcept nogil:
    cdef Py_ssize_t e = n, m = 0
    while e > 0:
        out_val[m] = ws.backv[e]
        out_end[m] = <int32_t>e
        m += 1
        e = ws.back[e]
    reverse_pieces(out_val, out_end, m)
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
    """Viterbi over the whole text (0.6.3's ties); with forbid_whole, without the piece
    that covers all of a text of two bytes or more. The loop is compiled once for each
    use (per-line encoding, the trainer's single chunks, split scores), so that neither
    flag is tested inside it."""
    if M.cuts != NULL or M.banned != NULL:
        return viterbi_loop(M, x, n, chunked, False, True, ws, out_val, out_end)
    if forbid_whole:
        return viterbi_loop(M, x, n, chunked, True, False, ws, out_val, out_end)
    if chunked:
        return viterbi_loop(M, x, n, True, False, False, ws, out_val, out_end)
    return viterbi_loop(M, x, n, False, False, False, ws, out_val, out_end)


cdef inline Py_ssize_t viterbi_loop(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                                    bint forbid_whole, bint constrained, Workspace* ws, int32_t* out_val,
                                    int32_t* out_end) noexcept nogil:
    """seg_viterbi's loop: viterbi_best written out (the per-line hot loop), with the flags
    constant at every call site. (The trie walk of trie_edges is written out here, in
    exact_walk and in forward_backward_linear on purpose: each hot loop fuses it with its
    own work per edge instead of storing the edges and reading them again.)"""
    cdef Py_ssize_t e, cs = 0, lo = 0
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
            cs = lo = e - 1
            ws.score[cs] = 0.0           # 0.6.3 scores each chunk from 0
        if constrained and enter_constraint(M, e, &lo, &ws.score[e], -INFINITY):
            ws.back[e] = <int32_t>(e - 1)
            ws.backv[e] = -1
            continue
        best = -INFINITY
        node = 0
        s = <int32_t>(e - 1)
        while s >= lo:
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
    cdef Py_ssize_t e = q, k = 0
    while e > done:
        out_val[m + k] = w.backv[e - w.base]
        out_end[m + k] = <int32_t>e
        k += 1
        e = w.back[e - w.base]
    reverse_pieces(out_val + m, out_end + m, k)
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
        k = trie_edges(&M.trie, x, e, cs, ws.starts, ws.values)
        cur = -INFINITY
        for j in range(k - 1, -1, -1):   # 0.6.3's order: longest first
            c = ws.score[ws.starts[j]] + M.logp[ws.values[j]]
            if j == k - 1 or rng_uniform(rng) * (1.0 + exp(-M.alpha * (c - cur))) < 1.0:
                cur = c
                ws.back[e] = ws.starts[j]
                ws.backv[e] = ws.values[j]
        ws.score[e] = cur
    return backtrack(ws, n, out_val, out_end)


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
    cdef double tot = 0.0
    cdef double top = log_weights(M, ws.score, ws.starts, ws.values, k, ws.weights)
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
    cdef Py_ssize_t e, cs = 0, lo = 0
    cdef int k, j
    cdef double tot
    if ws_reserve(ws, n, M.trie.max_len) < 0:
        return -1
    ws.score[0] = 0.0
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = lo = e - 1
            ws.score[cs] = 0.0
        if enter_constraint(M, e, &lo, &ws.score[e], -INFINITY):
            continue
        k = trie_edges(&M.trie, x, e, lo, ws.starts, ws.values)
        tot = edge_weights_log(M, ws, k)
        if ws.weights[k] == -INFINITY:    # every start unreachable (constraints)
            ws.score[e] = -INFINITY
            continue
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
                            Workspace* ws, Py_ssize_t* cs_io, Py_ssize_t* lo_io) noexcept nogil:
    """seg_exact's loop while every forward sum stays within [2**-100, 2**960], so that
    every exponent is 0 and there is none to keep (short texts never leave it). Returns
    the first position whose sum leaves it, not done yet, or n + 1; its chunk start and
    the lower bound of its walk go to cs_io and lo_io. The loop is compiled for
    xoshiro256** (the generator users get), whose draws then skip the test of the
    generator kind, and for any kind; each with and without constraints."""
    cdef bint constrained = M.cuts != NULL or M.banned != NULL
    if rng.kind == RNG_XOSHIRO:
        if constrained:
            return exact_plain_loop(M, x, n, chunked, rng, ws, cs_io, lo_io, True, True)
        return exact_plain_loop(M, x, n, chunked, rng, ws, cs_io, lo_io, True, False)
    if constrained:
        return exact_plain_loop(M, x, n, chunked, rng, ws, cs_io, lo_io, False, True)
    return exact_plain_loop(M, x, n, chunked, rng, ws, cs_io, lo_io, False, False)


cdef inline Py_ssize_t exact_plain_loop(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                                        Rng* rng, Workspace* ws, Py_ssize_t* cs_io, Py_ssize_t* lo_io,
                                        bint xoshiro, bint constrained) noexcept nogil:
    """exact_plain's loop; `xoshiro` and `constrained` are constants at every call site.
    The generator state is a local copy (written back on return) that the compiler can
    keep in registers, not memory behind a pointer."""
    cdef Py_ssize_t e, cs = 0, lo = 0
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
            cs = lo = e - 1
            score[cs] = 1.0
        if constrained and enter_constraint(M, e, &lo, &score[e], 0.0):
            continue
        k = exact_walk(M, x, e, lo, score, cum, pairs, &tot)
        if not (low <= tot <= high):
            cs_io[0] = cs
            lo_io[0] = lo
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
    lo_io[0] = lo
    rng[0] = r
    return n + 1


cdef void exact_scaled(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked, Rng* rng,
                       Workspace* ws, Py_ssize_t e0, Py_ssize_t cs, Py_ssize_t lo) noexcept nogil:
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
            cs = lo = e - 1
            score[cs] = 1.0
            expo[cs] = 0
            cur = 0
        if enter_constraint(M, e, &lo, &score[e], 0.0):
            expo[e] = cur
            continue
        k = exact_walk(M, x, e, lo, score, cum, pairs, &tot)
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
    cdef Py_ssize_t e, cs = 0, lo = 0
    cdef Rng r = rng[0]       # a local copy the compiler can keep in registers
    if ws_reserve(ws, n, M.trie.max_len) < 0:
        return -1
    ws.score[0] = 1.0
    e = exact_plain(M, x, n, chunked, &r, ws, &cs, &lo)
    if e <= n:
        exact_scaled(M, x, n, chunked, &r, ws, e, cs, lo)
    rng[0] = r
    return backtrack(ws, n, out_val, out_end)


cdef Py_ssize_t segment(const Model* M, int mode, const uint8_t* x, Py_ssize_t n, bint chunked,
                        bint forbid_whole, Rng* rng, Workspace* ws,
                        int32_t* out_val, int32_t* out_end) noexcept nogil:
    if n == 0:
        return 0
    if M.cuts != NULL or M.banned != NULL:
        return segment_constrained(M, mode, x, n, chunked, rng, ws, out_val, out_end)
    return segment_free(M, mode, x, n, chunked, forbid_whole, rng, ws, out_val, out_end)


cdef bint reached(int mode, double last) noexcept nogil:
    """Whether a kernel's value at a chunk's end says that some segmentation reaches it
    (Viterbi and log sums: -inf when none; linear sums: 0)."""
    if mode == MODE_EXACT:
        return last != 0.0
    return last != -INFINITY


cdef Py_ssize_t segment_constrained(const Model* M, int mode, const uint8_t* x, Py_ssize_t n, bint chunked,
                                    Rng* rng, Workspace* ws, int32_t* out_val, int32_t* out_end) noexcept nogil:
    """segment under boundary constraints, one chunk at a time, so that a chunk the
    constraints leave without a segmentation is noticed (the kernels restart their sums
    at every chunk start, which would hide it). The random stream runs on from chunk to
    chunk, one uniform per position as in one pass. Returns NO_SEGMENTATION then."""
    cdef Model part = M[0]
    cdef Py_ssize_t cs = 0, ce, m = 0, got, i
    while cs < n:
        ce = chunk_end(x, cs, n, chunked)
        part.cuts = M.cuts + cs if M.cuts != NULL else NULL
        part.banned = M.banned + cs if M.banned != NULL else NULL
        got = segment_free(&part, mode, x + cs, ce - cs, False, False, rng, ws, out_val + m, out_end + m)
        if got < 0:
            return got
        if not reached(mode, ws.score[ce - cs]):
            return NO_SEGMENTATION
        for i in range(m, m + got):
            out_end[i] += <int32_t>cs
        m += got
        cs = ce
    return m


cdef Py_ssize_t segment_free(const Model* M, int mode, const uint8_t* x, Py_ssize_t n, bint chunked,
                             bint forbid_whole, Rng* rng, Workspace* ws,
                             int32_t* out_val, int32_t* out_end) noexcept nogil:
    """One kernel over the whole text (its chunks restart inside the kernel)."""
    if mode == MODE_VITERBI:
        if n > WINDOW_MIN and not forbid_whole and M.cuts == NULL and M.banned == NULL:
            return seg_viterbi_window(M, x, n, chunked, WINDOW_FIRST, out_val, out_end)
        return seg_viterbi(M, x, n, chunked, forbid_whole, ws, out_val, out_end)
    if mode == MODE_LEGACY_V1:
        return seg_legacy_v1(M, x, n, chunked, rng, ws, out_val, out_end)
    if mode == MODE_EXACT_LOG:
        return seg_exact_log(M, x, n, chunked, rng, ws, out_val, out_end)
    return seg_exact(M, x, n, chunked, rng, ws, out_val, out_end)
