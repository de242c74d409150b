# Exact answers about the whole lattice of one text, besides sampling it: the n best
# segmentations (k-best Viterbi), the score of a given segmentation, log Z and the
# forward log-sums, the entropy of the segmentation distribution, and the boundary
# marginals (through forward-backward). Each is a function of a Lattice; the Tokenizer's
# queries (bytepiece/queries.py) call them and bytepiece/reference.py checks them.
#
# Why it is built this way: every answer is one or two passes over the same edges as
# the sampler, chunk by chunk, so each is exact (no enumeration) and linear in the text.
# The entropy is a forward recursion of non-negative terms, so it stays accurate when
# the distribution is nearly deterministic; n-best keeps the n best partial paths at
# every position, which can never prune a path of the top n.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.math cimport INFINITY, exp, log
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from .chunks cimport chunk_end, is_chunk_start
from .forward_backward cimport EdgePosteriors, EdgeStore, ep_free, es_free, forward_backward
from .lattice cimport Lattice
from .automaton cimport ac_edges, ac_piece_at
from .segment cimport (
    LINEAR_LIMIT,
    check_alpha,
    MODE_EXACT,
    MODE_EXACT_LOG,
    Model,
    Workspace,
    advance,
    log_weights,
    reverse_pieces,
    ws_free,
    ws_reserve,
    ws_start,
)

import heapq

from .._numpy import np


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
    cdef int32_t s, r, state = 0
    cdef double c, best, unused
    kb.count[cs] = 1
    kb.score[cs * k] = 0.0
    kb.start[cs * k] = -1
    kb.value[cs * k] = -1
    kb.prev[cs * k] = -1
    for e in range(cs + 1, ce + 1):
        if advance(M, x, e, &state, &unused, 0.0):
            kb.count[e] = 0          # no path ends here; edges from e find none to extend
            continue
        K = ac_edges(&M.ac, state, e, ws.starts, ws.values)
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
    cdef Py_ssize_t e = ce, m = 0, slot
    cdef int r = rank
    while e > cs:
        slot = e * kb.k + r
        out_val[m] = kb.value[slot]
        out_end[m] = <int32_t>e
        m += 1
        r = kb.prev[slot]
        e = kb.start[slot]
    reverse_pieces(out_val, out_end, m)
    return m


cdef list combine_ranked(list levels, Py_ssize_t n):
    """Merge per-chunk ranked lists into the n best whole-text paths.

    levels[c] is chunk c's list of (score, piece indices, end positions), best first.
    The combined order: higher total score (added left to right), then the rank within
    the later chunk, then the rank of the earlier combination; it is monotone in both
    ranks, so a heap walk from (0, 0) visits the pairs in order."""
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


cdef inline double edges_log_sum(const Model* M, const double* fwd, Workspace* ws, int k) noexcept nogil:
    """log(sum of exp) of the k edges' log forward weights (which log_weights leaves in
    ws.weights for the caller); -inf when no allowed path reaches them (constraints)."""
    cdef int j
    cdef double tot = 0.0
    cdef double top = log_weights(M, fwd, ws.starts, ws.values, k, ws.weights)
    if top == -INFINITY:
        return top
    for j in range(k):
        tot += exp(ws.weights[j] - top)
    return top + log(tot)


cdef double forward_entropy(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                            Workspace* ws, double* ent, double* esc,
                            double* ent_total, double* esc_total) noexcept nogil:
    """log Z (summed over chunks); adds the entropy and the expected score to the totals.
    ent and esc hold n + 1 doubles (per-position entropy and expected score).

    The weights of the edges into a position are taken relative to the largest of them
    and normalised by their own sum, not by exp(fwd[e]): fwd grows with the text (to
    1e9 and more on a long line at a large alpha), each value carries a rounding of
    that size, and weights that do not sum to 1 multiply that error into every later
    position's entropy (a relative error of 1e-4 over 700 KB before)."""
    cdef Py_ssize_t e, cs = 0
    cdef int k, j
    cdef int32_t state = 0
    cdef double logz_total = 0.0, lw, w, h, g, top, tot, log_tot
    cdef double* fwd = ws.score
    fwd[0] = 0.0
    ent[0] = 0.0
    esc[0] = 0.0
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            state = 0
            logz_total += fwd[cs]
            ent_total[0] += ent[cs]
            esc_total[0] += esc[cs]
            fwd[cs] = 0.0
            ent[cs] = 0.0
            esc[cs] = 0.0
        ent[e] = 0.0
        esc[e] = 0.0
        if advance(M, x, e, &state, &fwd[e], -INFINITY):
            continue
        k = ac_edges(&M.ac, state, e, ws.starts, ws.values)
        top = log_weights(M, fwd, ws.starts, ws.values, k, ws.weights)
        if top == -INFINITY:  # no allowed path reaches e (constraints)
            fwd[e] = top
            continue
        tot = 0.0
        for j in range(k):
            tot += exp(ws.weights[j] - top)
        log_tot = log(tot)
        fwd[e] = top + log_tot
        h = 0.0
        g = 0.0
        for j in range(k):
            lw = (ws.weights[j] - top) - log_tot
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
    cdef Py_ssize_t e
    cdef int k
    cdef int32_t state = 0
    fwd[0] = 0.0
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            state = 0
        if advance(M, x, e, &state, &fwd[e], -INFINITY):
            continue
        k = ac_edges(&M.ac, state, e, ws.starts, ws.values)
        fwd[e] = edges_log_sum(M, fwd, ws, k)  # (-inf where constraints leave no path)


# ---------------------------------------------------------------------------
# The queries

def nbest(Lattice lattice, bytes data, int n, *, bint chunked=True, cuts=None, banned=None):
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
    cdef Py_ssize_t length = PyBytes_GET_SIZE(data), cs, ce, m, r, cnt
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
    if kbest_reserve(&kb, length, n, lattice.ac.max_len) < 0 or ws_reserve(&ws, length, lattice.ac.max_len) < 0:
        kbest_free(&kb)
        ws_free(&ws)
        raise MemoryError()
    vals = np.empty(length, dtype=np.int32)
    ends = np.empty(length, dtype=np.int32)
    cdef int32_t[::1] vv = vals, ee = ends
    lattice.fill_model(&M, -1.0, None)
    lattice.constrain(&M, cuts, banned, length)
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
            if not paths:
                return []            # constraints leave this chunk, so the text, no segmentation
            levels.append(paths)
            cs = ce
    finally:
        kbest_free(&kb)
        ws_free(&ws)
    return combine_ranked(levels, n)


def path_score(Lattice lattice, bytes data, const int32_t[::1] ends, *, bint chunked=True):
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
    if (m == 0) != (length == 0) or (m and ends[m - 1] != length):
        raise ValueError("the pieces do not cover the text")
    vals = np.empty(m, dtype=np.int32)
    cdef int32_t[::1] vv = vals
    for i in range(m):
        e = ends[i]
        if e <= s or e > length:
            raise ValueError("piece end positions must increase strictly")
        value = ac_piece_at(&lattice.ac, x, s, e)
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
        chunk = chunk + lattice.logp[value]
        s = e
    total = total + chunk
    return (-INFINITY if crosses else total), vals


def entropy(Lattice lattice, bytes data, double alpha, *, bint chunked=True, cuts=None, banned=None):
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
    check_alpha(alpha)
    h = np.empty(length + 1, dtype=np.float64)
    g = np.empty(length + 1, dtype=np.float64)
    cdef double[::1] hv = h, gv = g
    ws_start(&ws, length, lattice.ac.max_len)
    lattice.fill_model(&M, alpha, None)
    lattice.constrain(&M, cuts, banned, length)
    with nogil:
        logz = forward_entropy(&M, x, length, chunked, &ws, &hv[0], &gv[0], &ent, &escore)
        ws_free(&ws)
    return logz, ent, escore


def forward_log(Lattice lattice, bytes data, double alpha, *, bint chunked=True, cuts=None, banned=None):
    """F[e] = log of the sum of exp(alpha * score) over the segmentations of data[:e]
    (pieces stay inside chunks; F is not reset at chunk starts, so F[len] = log Z).
    Float64 numpy array of len(data) + 1 entries."""
    cdef Py_ssize_t length = PyBytes_GET_SIZE(data)
    cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Model M
    cdef Workspace ws
    check_alpha(alpha)
    out = np.empty(length + 1, dtype=np.float64)
    cdef double[::1] fv = out
    ws_start(&ws, length, lattice.ac.max_len)
    lattice.fill_model(&M, alpha, None)
    lattice.constrain(&M, cuts, banned, length)
    with nogil:
        forward_global(&M, x, length, chunked, &ws, &fv[0])
        ws_free(&ws)
    return out


def boundary_marginals(Lattice lattice, bytes data, double alpha, *, bint chunked=True, bint logspace=False,
                       cuts=None, banned=None):
    """(log Z, p) where p[i] is the probability that a piece boundary falls at byte i
    (i = 0 .. len(data)) under exp(alpha*score)/Z (in log space when logspace, or when
    alpha * |logp| is too large for linear space)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Model M
    cdef Workspace ws
    cdef double logz
    check_alpha(alpha)
    marg = np.ones(n + 1, dtype=np.float64)
    bwd = np.empty(n + 1, dtype=np.float64)
    cdef double[::1] mv = marg, bv = bwd
    cdef bint linear = not logspace and alpha * lattice.min_logprob >= -LINEAR_LIMIT
    cdef EdgeStore es
    keep = lattice.weights_for(alpha, MODE_EXACT if linear else MODE_EXACT_LOG)
    ws_start(&ws, n, lattice.ac.max_len)
    lattice.fill_model(&M, alpha, keep)
    lattice.constrain(&M, cuts, banned, n)
    memset(&es, 0, sizeof(EdgeStore))
    with nogil:
        logz = forward_backward(&M, x, n, chunked, not linear, &ws, &es, &bv[0], NULL, NULL, &mv[0], 1.0, NULL)
        ws_free(&ws)
        es_free(&es)
    if logz != logz:
        raise MemoryError()
    return logz, marg


cdef double edge_posteriors(Lattice lattice, bytes data, double alpha, bint chunked, bint logspace, object cuts,
                            object banned, EdgePosteriors* ep) except? -1.0:
    """log Z, with every edge whose posterior probability under exp(alpha*score)/Z is
    above 0 in ep (the caller frees it), in no particular order."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Model M
    cdef Workspace ws
    cdef EdgeStore es
    cdef double logz
    check_alpha(alpha)
    bwd = np.empty(n + 1, dtype=np.float64)
    cdef double[::1] bv = bwd
    cdef bint linear = not logspace and alpha * lattice.min_logprob >= -LINEAR_LIMIT
    keep = lattice.weights_for(alpha, MODE_EXACT if linear else MODE_EXACT_LOG)
    ws_start(&ws, n, lattice.ac.max_len)
    lattice.fill_model(&M, alpha, keep)
    memset(&es, 0, sizeof(EdgeStore))
    try:
        lattice.constrain(&M, cuts, banned, n)
        with nogil:
            logz = forward_backward(&M, x, n, chunked, not linear, &ws, &es, &bv[0], NULL, NULL, NULL, 1.0, ep)
        if logz != logz:
            raise MemoryError()
        return logz
    finally:
        ws_free(&ws)
        es_free(&es)


def piece_marginals(Lattice lattice, bytes data, double alpha, *, bint chunked=True, bint logspace=False,
                    cuts=None, banned=None):
    """(log Z, starts, ends, piece indices, probabilities): every edge of the lattice whose
    posterior probability under exp(alpha*score)/Z is above 0 (the probability that a
    segmentation drawn from it has that piece there), in no particular order."""
    cdef EdgePosteriors ep
    memset(&ep, 0, sizeof(EdgePosteriors))
    try:
        logz = edge_posteriors(lattice, data, alpha, chunked, logspace, cuts, banned, &ep)
        size = ep.size
        starts = np.empty(size, dtype=np.int32)
        ends = np.empty(size, dtype=np.int32)
        values = np.empty(size, dtype=np.int32)
        probs = np.empty(size, dtype=np.float64)
        if size:
            memcpy(<void*><size_t>starts.ctypes.data, ep.start, size * sizeof(int32_t))
            memcpy(<void*><size_t>ends.ctypes.data, ep.end, size * sizeof(int32_t))
            memcpy(<void*><size_t>values.ctypes.data, ep.value, size * sizeof(int32_t))
            memcpy(<void*><size_t>probs.ctypes.data, ep.prob, size * sizeof(double))
        return logz, starts, ends, values, probs
    finally:
        ep_free(&ep)


def piece_marginal_table(Lattice lattice, bytes data, double alpha, object fields, int32_t id_offset, *,
                         bint chunked=True, cuts=None, banned=None):
    """(log Z, table): piece_marginals' edges as a structured array of dtype ``fields``
    (int32 start, end and id, float64 prob), by end position and, for each end, in the
    order the core found them (a stable counting sort by end), ids the piece indices plus
    id_offset, probabilities at most 1."""
    cdef EdgePosteriors ep
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), i, e, size, row
    cdef int64_t* slot = NULL
    cdef int64_t total = 0, c
    cdef char* base
    cdef Py_ssize_t item = fields.itemsize
    cdef Py_ssize_t o_start = fields.fields["start"][1], o_end = fields.fields["end"][1]
    cdef Py_ssize_t o_id = fields.fields["id"][1], o_prob = fields.fields["prob"][1]
    cdef double p
    memset(&ep, 0, sizeof(EdgePosteriors))
    try:
        logz = edge_posteriors(lattice, data, alpha, chunked, False, cuts, banned, &ep)
        size = ep.size
        table = np.empty(size, dtype=fields)
        if size == 0:
            return logz, table
        base = <char*><size_t>table.ctypes.data
        slot = <int64_t*>malloc((n + 2) * sizeof(int64_t))
        if slot == NULL:
            raise MemoryError()
        with nogil:
            memset(slot, 0, (n + 2) * sizeof(int64_t))
            for i in range(size):
                slot[ep.end[i]] += 1
            for e in range(n + 1):
                c = slot[e]
                slot[e] = total
                total += c
            for i in range(size):
                row = slot[ep.end[i]]
                slot[ep.end[i]] += 1
                (<int32_t*>(base + row * item + o_start))[0] = ep.start[i]
                (<int32_t*>(base + row * item + o_end))[0] = ep.end[i]
                (<int32_t*>(base + row * item + o_id))[0] = ep.value[i] + id_offset
                p = ep.prob[i]
                (<double*>(base + row * item + o_prob))[0] = p if p <= 1.0 else 1.0
        return logz, table
    finally:
        free(slot)
        ep_free(&ep)


def edges(Lattice lattice, bytes data, *, bint chunked=True, cuts=None, banned=None):
    """(starts, ends, piece indices) of every edge of the lattice of data: each piece of
    the vocabulary at each place it may stand (inside a chunk, across no required
    boundary, starting and ending at no forbidden one), by end position, shortest first."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), e, used = 0, cap
    cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Model M
    cdef Workspace ws
    cdef int k, j
    cdef int32_t state = 0
    cdef double unused
    lattice.fill_model(&M, -1.0, None)
    lattice.constrain(&M, cuts, banned, n)
    cap = max(16, 4 * n)
    starts = np.empty(cap, dtype=np.int32)
    ends = np.empty(cap, dtype=np.int32)
    values = np.empty(cap, dtype=np.int32)
    cdef int32_t[::1] sv = starts, ev = ends, vv = values
    ws_start(&ws, n, lattice.ac.max_len)
    try:
        for e in range(1, n + 1):
            if chunked and e > 1 and is_chunk_start(x, e - 1):
                state = 0
            if advance(&M, x, e, &state, &unused, 0.0):
                continue
            k = ac_edges(&M.ac, state, e, ws.starts, ws.values)
            if used + k > cap:
                cap = 2 * cap + k
                starts = np.resize(starts, cap)
                ends = np.resize(ends, cap)
                values = np.resize(values, cap)
                sv = starts
                ev = ends
                vv = values
            for j in range(k):
                if M.banned != NULL and M.banned[ws.starts[j]]:
                    continue
                sv[used] = ws.starts[j]
                ev[used] = <int32_t>e
                vv[used] = ws.values[j]
                used += 1
    finally:
        ws_free(&ws)
    return starts[:used], ends[:used], values[:used]


def first_unreachable(Lattice lattice, bytes data, *, bint chunked=True, cuts=None, banned=None):
    """-1 when some allowed segmentation reaches the end of data. Otherwise the position
    to name in the error: the first one that no allowed segmentation of the text before
    it reaches although an allowed path goes on from it to the first boundary every
    segmentation must have (a required one, a chunk start, the end) that is not reached.
    A position that nothing reaches but that leads nowhere harms nothing: "days" with
    boundary 1 forbidden is still the piece "days", and 2 is reached by no piece."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), e, must = n
    cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
    fwd = forward_log(lattice, data, 0.0, chunked=chunked, cuts=cuts, banned=banned)
    if fwd[n] != -INFINITY:
        return -1
    cdef const uint8_t[::1] cut
    if cuts is not None:
        cut = cuts
    for e in range(1, n):
        if fwd[e] == -INFINITY and ((cuts is not None and cut[e]) or (chunked and is_chunk_start(x, e))):
            must = e
            break
    # The positions from which an allowed path reaches `must` (edges come by end, so
    # walking them backwards settles each end before the edges that start there).
    leads = np.zeros(must + 1, dtype=bool)
    leads[must] = True
    starts, ends, _ = edges(lattice, data, chunked=chunked, cuts=cuts, banned=banned)
    for s, e in zip(starts[::-1].tolist(), ends[::-1].tolist()):
        if e <= must and leads[e]:
            leads[s] = True
    for e in range(1, must + 1):
        if fwd[e] == -INFINITY and leads[e] and (banned is None or not banned[e]):
            return e
    return must
