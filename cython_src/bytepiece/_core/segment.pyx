# The segmentation kernels: Viterbi (0.6.3's decisions, ties included), Viterbi in
# bounded memory for long texts, exact sampling (in bounded memory for long texts), and
# the legacy v1 sampler; and `segment`, the one dispatch every caller goes through
# (segment.pxd declares them).
#
# Why they are built this way:
# - Each is one pass over the end positions. The automaton (automaton.pxd) moves one
#   byte per position and its output chain lists the edges into the position, longest
#   first; a position is final once they are read. Viterbi relaxes each edge as the
#   chain meets it and keeps the first of equal scores, so the longest piece wins ties
#   (as in 0.6.3). Samplers and sums take the edges shortest first, the order in which
#   their floating-point sums and draws were defined.
# - Exact sampling is forward filtering, backward sampling. As soon as F[e] (the sum of
#   exp(alpha * score) over the segmentations of the prefix) is known, the piece that
#   ends at e is drawn among its incoming edges with probability proportional to their
#   forward weights; the choice depends only on the prefix, so following the choices
#   from the end is an exact draw, at one uniform per position. Only the last max_len
#   forward sums are read again, so a long text keeps a window of them and one piece
#   index per position. The sums are kept in linear space as mantissa * 2**exponent (no
#   exp or log per edge, only a cached exp(alpha * logp) per piece); alphas so large
#   that those weights could underflow take a log-space twin. Random numbers come from
#   common/rng.pxd, a state per call.
# - Text is cut into chunks (chunks.pxd); every kernel restarts its sums and the
#   automaton at each chunk start.

from libc.math cimport INFINITY, exp, frexp, ldexp, log
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memmove, memset

from .automaton cimport ac_edges
from .chunks cimport chunk_end, is_chunk_start
from .common.realloc cimport realloc_into
from .common.rng cimport RNG_XOSHIRO, Rng, rng_next, rng_uniform


# ---------------------------------------------------------------------------
# Reading a result back

cdef Py_ssize_t read_back(const Model* M, int32_t* backv, Py_ssize_t n) noexcept nogil:
    """The chosen path, read back from n over the choices backv[1..n] (each position's
    last piece; its start is the position minus its length): returns the number m of
    pieces, left in text order at backv[n + 1 - m .. n]. The path's k-th piece from the
    end is written at n + 1 - k, never below the position it was read at, and every
    position below is read later, so nothing still needed is overwritten."""
    cdef const AcPiece* P = M.ac.pieces
    cdef Py_ssize_t e = n, w = n
    cdef int32_t v
    while e > 0:
        v = backv[e]
        backv[w] = v
        w -= 1
        e -= P[v].len
    return n - w


cdef void copy_out(const Model* M, const int32_t* vals, Py_ssize_t m, Py_ssize_t first, int32_t* out_val,
                   int32_t* out_end) noexcept nogil:
    """m pieces into out_val (unless it is vals or NULL) and their end positions, from
    `first` on, into out_end (unless NULL)."""
    cdef Py_ssize_t i, pos = first
    if out_end != NULL:
        for i in range(m):
            pos += M.ac.pieces[vals[i]].len
            out_end[i] = <int32_t>pos
    if out_val != NULL and out_val != vals:
        memmove(out_val, vals, m * sizeof(int32_t))


# ---------------------------------------------------------------------------
# Viterbi

cdef Py_ssize_t seg_viterbi(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked, bint forbid_whole,
                            Workspace* ws) noexcept nogil:
    """Viterbi over the whole text (0.6.3's ties); with forbid_whole, without the piece
    that covers all of a text of two bytes or more. The loop is compiled once for each
    use (per-line encoding, the trainer's single chunks, split scores, constraints), so
    that no flag is tested inside it."""
    if M.cuts != NULL or M.banned != NULL:
        return viterbi_loop(M, x, n, chunked, False, True, ws)
    if forbid_whole:
        return viterbi_loop(M, x, n, chunked, True, False, ws)
    if chunked:
        return viterbi_loop(M, x, n, True, False, False, ws)
    return viterbi_loop(M, x, n, False, False, False, ws)


cdef inline Py_ssize_t viterbi_loop(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                                    bint forbid_whole, bint constrained, Workspace* ws) noexcept nogil:
    """seg_viterbi's loop, with the flags constant at every call site: one automaton step
    per byte, then the output chain relaxed as it is walked (longest first, replacing on a
    strictly better score: the longest of equal scores wins, as in 0.6.3). Without
    constraints the automaton runs one position ahead: the next position's transition
    (a load that depends only on this one's state) is issued before this position's
    chain, whose exit the branch predictor often misses."""
    cdef const AcNode* nodes = M.ac.nodes
    cdef const AcPiece* P = M.ac.pieces
    cdef const double* logp = M.logp
    cdef Py_ssize_t e, m
    cdef int32_t state = 0, nxt = 0, v, bv
    cdef double c, best
    cdef double* score
    cdef int32_t* backv
    if ws_reserve(ws, n, M.ac.max_len) < 0:
        return -1
    score = ws.score
    backv = ws.backv
    score[0] = 0.0
    if not constrained:
        nxt = ac_next(nodes, 0, x[0])
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            score[e - 1] = 0.0           # 0.6.3 scores each chunk from 0
            state = 0
        if constrained:
            if advance(M, x, e, &state, &score[e], -INFINITY):
                backv[e] = byte_piece(M, x[e - 1])
                continue
        else:
            state = nxt                  # (its transition was made on the last round)
            if e < n:
                nxt = ac_next(nodes, 0 if chunked and is_chunk_start(x, e) else state, x[e])
        v = nodes[state].out
        if forbid_whole and e == n and n > 1 and P[v].len == n:
            v = P[v].next
        best = score[e - P[v].len] + logp[v]
        bv = v
        v = P[v].next
        while v >= 0:
            c = score[e - P[v].len] + logp[v]
            if c > best:
                best = c
                bv = v
            v = P[v].next
        score[e] = best
        backv[e] = bv
    m = read_back(M, backv, n)
    ws.result = backv + (n + 1 - m)
    return m


cdef inline double viterbi_best(const Model* M, int32_t state, Py_ssize_t e, const double* score,
                                int32_t* bv_out) noexcept nogil:
    """The best score of a path to e whose last piece is in the output chain of `state`
    (reached at e), and that piece (as in viterbi_loop). score[s] is the best score of
    position s."""
    cdef const AcPiece* P = M.ac.pieces
    cdef int32_t v = M.ac.nodes[state].out, bv = v
    cdef double best = score[e - P[v].len] + M.logp[v], c
    v = P[v].next
    while v >= 0:
        c = score[e - P[v].len] + M.logp[v]
        if c > best:
            best = c
            bv = v
        v = P[v].next
    bv_out[0] = bv
    return best


# ---------------------------------------------------------------------------
# Viterbi in bounded memory for long texts.
#
# seg_viterbi keeps a score and a choice for every byte of the text: 12 bytes per byte,
# 1.2 GB for one 100 MB line. But the decision about early pieces is final long before
# the end. Every path to a position beyond e has a boundary in the frontier
# [e - L + 1, e] (L = the longest piece: no piece jumps over L positions), and the
# chosen path to a frontier position is its chain of choices, which never change once
# made. So where the chains of all frontier positions meet, at q, the best path to
# anything beyond e runs through q, and its part up to q is known: it is written out and
# the buffers keep only positions from q on. Chains of real text meet within a few
# pieces; when they do not (a run of one byte whose best paths keep two parities, say),
# the buffers simply grow, up to seg_viterbi's size. A chunk start is such a meeting
# point by construction. Scores and ties are computed exactly as in seg_viterbi, so the
# segmentation is identical.

cdef struct ViterbiWindow:
    double* score       # position base + i at index i
    int32_t* backv      # the chosen last piece (its start: the position minus its length)
    uint8_t* head       # scratch for vw_meeting
    Py_ssize_t base, cap


cdef int vw_grow(ViterbiWindow* w) noexcept nogil:
    """Twice the room; -1 when out of memory (the buffers stay valid)."""
    cdef Py_ssize_t cap = 2 * w.cap
    if (realloc_into(<void**>&w.score, cap * sizeof(double)) < 0
            or realloc_into(<void**>&w.backv, cap * sizeof(int32_t)) < 0
            or realloc_into(<void**>&w.head, cap) < 0):
        return -1
    w.cap = cap
    return 0


cdef Py_ssize_t vw_emit(const AcPiece* P, ViterbiWindow* w, Py_ssize_t q, Py_ssize_t done, Py_ssize_t m,
                        int32_t* out_val) noexcept nogil:
    """Write the pieces of the chosen path from `done` to q (both boundaries of it) at
    out_val[m:], in text order; returns the new m."""
    cdef Py_ssize_t e = q, k = 0, i
    cdef int32_t v
    while e > done:
        v = w.backv[e - w.base]
        out_val[m + k] = v
        k += 1
        e -= P[v].len
    for i in range(k // 2):
        v = out_val[m + i]; out_val[m + i] = out_val[m + k - 1 - i]; out_val[m + k - 1 - i] = v
    return m + k


cdef Py_ssize_t vw_meeting(const AcPiece* P, ViterbiWindow* w, Py_ssize_t lo, Py_ssize_t hi,
                           Py_ssize_t done) noexcept nogil:
    """The latest position that the chains of choices of every position in [lo, hi]
    pass through (all of them pass through `done`, the last such point written out).
    One sweep down from hi: a flagged position is the head of one or more chains; it
    moves to the start of its chosen piece, merging with a head already there. When one
    head is left, every chain runs through it."""
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
            b = p - P[w.backv[p - w.base]].len
            if head[b]:
                active -= 1
            else:
                head[b] = 1
        p -= 1
    return done


cdef Py_ssize_t seg_viterbi_window(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                                   Py_ssize_t first_cap, int32_t* out_val) noexcept nogil:
    """seg_viterbi's segmentation (piece indices into out_val, room for n) in memory for
    about first_cap positions (growing only where the chosen paths do not meet); -1 when
    out of memory."""
    cdef ViterbiWindow w
    cdef const AcPiece* P = M.ac.pieces
    cdef Py_ssize_t e, cs = 0, m = 0, done = 0, q, keep, lo
    cdef int32_t bv, state = 0
    cdef int32_t L = M.ac.max_len if M.ac.max_len > 0 else 1
    memset(&w, 0, sizeof(ViterbiWindow))
    w.cap = first_cap if first_cap > 4 * <Py_ssize_t>L + 4 else 4 * <Py_ssize_t>L + 4
    w.score = <double*>malloc(w.cap * sizeof(double))
    w.backv = <int32_t*>malloc(w.cap * sizeof(int32_t))
    w.head = <uint8_t*>malloc(w.cap)
    if w.score == NULL or w.backv == NULL or w.head == NULL:
        m = -1
        e = n + 1                         # (skips the loop)
    else:
        w.score[0] = 0.0
        e = 1
    while e <= n:
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            state = 0
            # Every path goes through a chunk start: write out the path up to it.
            m = vw_emit(P, &w, cs, done, m, out_val)
            done = cs
            keep = 1
            memmove(w.score, w.score + (cs - w.base), keep * sizeof(double))
            memmove(w.backv, w.backv + (cs - w.base), keep * sizeof(int32_t))
            w.base = cs
            w.score[0] = 0.0              # 0.6.3 scores each chunk from 0
        elif e - w.base >= w.cap:
            # Full: write out what the frontier's chains agree on, keep the rest.
            lo = e - L if e - L > cs else cs
            q = vw_meeting(P, &w, lo, e - 1, done)
            if q > done:
                m = vw_emit(P, &w, q, done, m, out_val)
                done = q
                keep = e - q
                memmove(w.score, w.score + (q - w.base), keep * sizeof(double))
                memmove(w.backv, w.backv + (q - w.base), keep * sizeof(int32_t))
                w.base = q
            if e - w.base >= w.cap // 2 and vw_grow(&w) < 0:
                m = -1
                break
        state = ac_next(M.ac.nodes, state, x[e - 1])
        # (scores indexed by absolute position: the window's origin is at base)
        w.score[e - w.base] = viterbi_best(M, state, e, w.score - w.base, &bv)
        w.backv[e - w.base] = bv
        e += 1
    if m >= 0:
        m = vw_emit(P, &w, n, done, m, out_val)
    free(w.score); free(w.backv); free(w.head)
    return m


# ---------------------------------------------------------------------------
# The legacy sampler and the log-space exact sampler
#
# (Their walks begin as the other kernels' do, on purpose: one loop per sampler, so
# that none branches per byte on the mode.)

cdef Py_ssize_t seg_legacy_v1(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked, Rng* rng,
                              Workspace* ws) noexcept nogil:
    """The first, flawed sampler: successive two-way choices by sigmoid(alpha * gain),
    the edges taken longest first (0.6.3's order)."""
    cdef const AcPiece* P = M.ac.pieces
    cdef Py_ssize_t e, m
    cdef int32_t state = 0, v, bv = 0
    cdef double c, cur
    cdef bint first
    if ws_reserve(ws, n, M.ac.max_len) < 0:
        return -1
    ws.score[0] = 0.0
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            ws.score[e - 1] = 0.0
            state = 0
        state = ac_next(M.ac.nodes, state, x[e - 1])
        v = M.ac.nodes[state].out
        cur = -INFINITY
        first = True
        while v >= 0:
            c = ws.score[e - P[v].len] + M.logp[v]
            if first or rng_uniform(rng) * (1.0 + exp(-M.alpha * (c - cur))) < 1.0:
                cur = c
                bv = v
            first = False
            v = P[v].next
        ws.score[e] = cur
        ws.backv[e] = bv
    m = read_back(M, ws.backv, n)
    ws.result = ws.backv + (n + 1 - m)
    return m


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
                              Rng* rng, Workspace* ws) noexcept nogil:
    """The exact sampler with forward sums in log space, for alphas whose linear weights
    could underflow."""
    cdef Py_ssize_t e, m
    cdef int k, j
    cdef int32_t state = 0
    cdef double tot
    if ws_reserve(ws, n, M.ac.max_len) < 0:
        return -1
    ws.score[0] = 0.0
    for e in range(1, n + 1):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            ws.score[e - 1] = 0.0
            state = 0
        if advance(M, x, e, &state, &ws.score[e], -INFINITY):
            ws.backv[e] = byte_piece(M, x[e - 1])
            continue
        k = ac_edges(&M.ac, state, e, ws.starts, ws.values)
        tot = edge_weights_log(M, ws, k)
        if ws.weights[k] == -INFINITY:    # every start unreachable (constraints)
            ws.score[e] = -INFINITY
            ws.backv[e] = ws.values[0]
            continue
        ws.score[e] = ws.weights[k] + log(tot)
        j = pick(ws.weights, k, tot, rng) if k > 1 else 0   # one edge: no choice to draw
        ws.backv[e] = ws.values[j]
    m = read_back(M, ws.backv, n)
    ws.result = ws.backv + (n + 1 - m)
    return m


# ---------------------------------------------------------------------------
# The exact sampler in linear space.
#
# Forward sums are mantissa (score) * 2**exponent (expo), both indexed by absolute
# position through pointers shifted by the window's base. exact_plain keeps no exponent:
# when a sum leaves its range it multiplies the last max_len sums (all that later edges
# read) by one power of two and redoes the position (plain_rescale), so a long chunk
# stays in it; only when those sums are too far apart for one scale does exact_scaled
# take over, redoing that position. Both run up to a stop position (the
# end of the window, or of the text), keeping what the next run needs in an ExactRun.

cdef struct ExactRun:
    Py_ssize_t e            # the next position to do
    Py_ssize_t cs           # the start of its chunk
    Py_ssize_t renormed     # (with exponents) the last position whose exponent changed ...
    int64_t cur             # ... and that exponent
    int32_t state           # the automaton's state after position e - 1
    Rng rng


cdef inline Py_ssize_t exact_chain(const AcNode* nodes, const AcPiece* P, int32_t state, Py_ssize_t e,
                                   int32_t* pend) noexcept nogil:
    """The edges into e of `state` as (start, piece) pairs ending at pend, shortest first
    (the chain is walked longest first, writing downwards); returns how many."""
    cdef int32_t v = nodes[state].out
    cdef int32_t* p = pend
    while True:
        p -= 2
        p[0] = <int32_t>(e - P[v].len)
        p[1] = v
        v = P[v].next
        if v < 0:
            break
    return (pend - p) >> 1


cdef double reweigh_linear(const Model* M, const double* score, const int64_t* expo, const int32_t* pairs,
                           Py_ssize_t k, double* cum, int64_t* ref_out) noexcept nogil:
    """The k edges' forward weights when their starts do not all share one exponent
    (some start precedes the last renormalisation): each is scaled by
    2**(exponent of its start - ref), ref the largest of those exponents. Writes the
    running sums to cum and ref to ref_out; returns the total."""
    cdef Py_ssize_t j
    cdef int64_t ref, d
    cdef double tot = 0.0, w
    ref = expo[pairs[0]]
    for j in range(1, k):
        d = expo[pairs[2 * j]]
        if d > ref:
            ref = d
    for j in range(k):
        w = score[pairs[2 * j]] * M.q[pairs[2 * j + 1]]
        d = expo[pairs[2 * j]] - ref
        if d != 0:
            w = w * pow2(d)
        tot += w
        cum[j] = tot
    ref_out[0] = ref
    return tot


cdef inline Py_ssize_t exact_pick(double* cum, Py_ssize_t k, double tot, Rng* rng) noexcept nogil:
    """pick() on running sums, with a fixed number of comparisons for up to four edges
    (most positions): cum[k - 1] == tot > u never counts, nor does the padding. One edge:
    no choice to draw."""
    if k <= 1:
        return 0
    return exact_pick_at(cum, k, rng_uniform(rng) * tot)


cdef inline double xoshiro_uniform(Rng* rng) noexcept nogil:
    """rng_uniform for an Rng of kind RNG_XOSHIRO (the same draw, without the kind test)."""
    return <double>(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0)


cdef bint plain_rescale(double* score, Py_ssize_t lo, Py_ssize_t e, double tot) noexcept nogil:
    """For exact_plain, when the sum tot at e has left its range: multiply score[lo:e] (the
    sums that edges into e and later positions may start at) by the one power of two that
    puts the largest of them and tot just below 2**900, if every nonzero one then lies in
    [RENORM_LOW, PLAIN_HIGH]; returns whether it did (False: nothing changed). Scaling
    normal numbers by a power of two is exact, so the sums stay exact scalings of
    exact_scaled's and the draws are unchanged."""
    cdef double hi = tot, least = tot, v
    cdef Py_ssize_t s
    cdef int ex
    if not (0.0 < tot < INFINITY):
        return False
    for s in range(lo, e):
        v = score[s]
        if v > hi:
            hi = v
        if v != 0.0 and v < least:
            least = v
    frexp(hi, &ex)
    ex = 900 - ex                             # hi * 2**ex in [2**899, 2**900)
    if ldexp(least, ex) < RENORM_LOW:        # the spread is too wide for one scale
        return False
    for s in range(lo, e):
        score[s] = ldexp(score[s], ex)
    return True


cdef bint exact_plain(const Model* M, const uint8_t* x, Py_ssize_t stop, bint chunked, ExactRun* run,
                      double* score, int32_t* backv, double* cum, int32_t* pend) noexcept nogil:
    """The exact sampler's loop while every forward sum stays within [2**-100, 2**960], so
    that every exponent is 0 and there is none to keep (short texts never leave it), from
    run.e up to stop; a sum that leaves that range is brought back by plain_rescale.
    Returns True at the first position where that fails (not done: run.e is that position
    and run.state the state before it). The loop is
    compiled for xoshiro256** (the generator users get), whose draws then skip the test of
    the generator kind, and for any kind; each with and without constraints."""
    cdef bint constrained = M.cuts != NULL or M.banned != NULL
    if run.rng.kind == RNG_XOSHIRO:
        if constrained:
            return exact_plain_loop(M, x, stop, chunked, run, score, backv, cum, pend, True, True)
        return exact_plain_loop(M, x, stop, chunked, run, score, backv, cum, pend, True, False)
    if constrained:
        return exact_plain_loop(M, x, stop, chunked, run, score, backv, cum, pend, False, True)
    return exact_plain_loop(M, x, stop, chunked, run, score, backv, cum, pend, False, False)


cdef inline bint exact_plain_loop(const Model* M, const uint8_t* x, Py_ssize_t stop, bint chunked,
                                  ExactRun* run, double* score, int32_t* backv, double* cum, int32_t* pend,
                                  bint xoshiro, bint constrained) noexcept nogil:
    """exact_plain's loop; `xoshiro` and `constrained` are constants at every call site.
    The generator state is a local copy (written back on return) that the compiler can
    keep in registers, not memory behind a pointer. Without constraints the automaton
    runs one position ahead, as in viterbi_loop."""
    cdef const AcNode* nodes = M.ac.nodes
    cdef const AcPiece* P = M.ac.pieces
    cdef const double* q = M.q
    cdef Py_ssize_t e = run.e, cs = run.cs, k, j, i, L = M.ac.max_len
    cdef int32_t state = run.state, cur = 0, nxt = 0, v
    cdef int32_t* p
    cdef double tot, u
    cdef Rng r = run.rng
    cdef double low = RENORM_LOW, high = PLAIN_HIGH
    cdef bint left = False, restart
    if not constrained and e < stop:
        nxt = ac_next(nodes, 0 if chunked and e > 1 and is_chunk_start(x, e - 1) else state, x[e - 1])
    while e < stop:
        # state: the automaton after position e - 1 (before a restart at e - 1)
        restart = chunked and e > 1 and is_chunk_start(x, e - 1)
        if restart:
            cs = e - 1
            score[cs] = 1.0
        if constrained:
            cur = 0 if restart else state
            if advance(M, x, e, &cur, &score[e], 0.0):
                backv[e] = byte_piece(M, x[e - 1])
                state = cur
                e += 1
                continue
        else:
            cur = nxt
            if e + 1 < stop:
                nxt = ac_next(nodes, 0 if chunked and is_chunk_start(x, e) else cur, x[e])
        v = nodes[cur].out
        if P[v].next < 0:         # the single byte alone: its weight is the sum, no choice
            tot = score[e - 1] * q[v]
            if not (low <= tot <= high):
                if not plain_rescale(score, e - L if e - L > cs else cs, e, tot):
                    left = True
                    break
                tot = score[e - 1] * q[v]
            score[e] = tot
            backv[e] = v
        else:
            k = exact_chain(nodes, P, cur, e, pend)
            p = pend - 2 * k
            tot = 0.0
            for i in range(k):
                tot += score[p[2 * i]] * q[p[2 * i + 1]]
                cum[i] = tot
            if not (low <= tot <= high):
                if not plain_rescale(score, e - L if e - L > cs else cs, e, tot):
                    left = True
                    break
                tot = 0.0
                for i in range(k):
                    tot += score[p[2 * i]] * q[p[2 * i + 1]]
                    cum[i] = tot
            score[e] = tot
            u = (xoshiro_uniform(&r) if xoshiro else rng_uniform(&r)) * tot
            j = exact_pick_at(cum, k, u)
            backv[e] = p[2 * j + 1]
        state = cur
        e += 1
    run.e = e                     # (left: the position whose sum left the range, not done)
    run.cs = cs
    run.state = state
    run.rng = r
    return left


cdef void exact_scaled(const Model* M, const uint8_t* x, Py_ssize_t stop, bint chunked, ExactRun* run,
                       double* score, int64_t* expo, int32_t* backv, double* cum, int32_t* pend) noexcept nogil:
    """The exact sampler's loop with exponents, from run.e up to stop. Positions from
    run.renormed (the last one whose exponent changed) on share the exponent run.cur,
    so edges that all start there are weighed without any scaling (almost always)."""
    cdef const AcNode* nodes = M.ac.nodes
    cdef const AcPiece* P = M.ac.pieces
    cdef Py_ssize_t e, k, j, i, cs = run.cs, renormed = run.renormed
    cdef int ex
    cdef int32_t state = run.state
    cdef int32_t* p
    cdef double tot
    cdef double low = RENORM_LOW, high = RENORM_HIGH
    cdef int64_t cur = run.cur, ee
    cdef Rng r = run.rng
    for e in range(run.e, stop):
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            score[cs] = 1.0
            expo[cs] = 0
            cur = 0
            state = 0
        if advance(M, x, e, &state, &score[e], 0.0):
            expo[e] = cur
            backv[e] = byte_piece(M, x[e - 1])
            continue
        k = exact_chain(nodes, P, state, e, pend)
        p = pend - 2 * k
        tot = 0.0
        for i in range(k):
            tot += score[p[2 * i]] * M.q[p[2 * i + 1]]
            cum[i] = tot
        if p[2 * k - 2] >= renormed:   # the longest piece starts after the last renormalisation
            ee = cur
        else:
            tot = reweigh_linear(M, score, expo, p, k, cum, &ee)
        if low <= tot <= high:
            score[e] = tot
        else:
            score[e] = frexp(tot, &ex)
            ee += ex
        expo[e] = ee
        if ee != cur:
            renormed = e
            cur = ee
        j = exact_pick(cum, k, tot, &r)
        backv[e] = p[2 * j + 1]
    # (the run's state stored back field by field: alike by shape only)
    run.e = stop
    run.cs = cs
    run.renormed = renormed
    run.cur = cur
    run.state = state
    run.rng = r


cdef Py_ssize_t seg_exact_windowed(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked, Rng* rng,
                                   Workspace* ws, Py_ssize_t window) noexcept nogil:
    """One exact draw from P(path) = exp(alpha * score(path)) / Z, chunk by chunk (see the
    top of this file and ExactRun). The forward sums are kept for the whole text when
    window is 0 or the text is shorter; otherwise for a window of at least `window`
    positions (and 4 * (max_len + 1)), which slides on when full, keeping the positions
    that edges still to come may start at: the draw is the same, in memory for the
    window plus one piece index per position."""
    cdef Py_ssize_t cap, base = 0, q, p
    cdef Py_ssize_t L = M.ac.max_len
    cdef double* score
    cdef int64_t* expo
    cdef int32_t* backv
    cdef int32_t* pend
    cdef ExactRun run
    cdef bint scaled = False
    cdef Py_ssize_t m
    if window <= 0 or n < window:
        if ws_reserve(ws, n, M.ac.max_len) < 0:
            return -1
        cap = n + 1
        backv = ws.backv
    else:
        cap = window if window > 4 * (L + 1) else 4 * (L + 1)
        if ws_reserve(ws, cap - 1, M.ac.max_len) < 0:
            return -1
        backv = ws_long(ws, n + 1)
        if backv == NULL:
            return -1
    score = ws.score
    expo = ws.expo
    pend = ws.pairs + 2 * ws.edges
    memset(&run, 0, sizeof(ExactRun))
    run.e = 1
    run.rng = rng[0]
    score[0] = 1.0
    while run.e <= n:
        if not scaled:
            if exact_plain(M, x, min(n + 1, base + cap), chunked, &run, score - base, backv, ws.weights, pend):
                # Exponents from here on: every position before has exponent 0.
                for p in range(run.cs if run.cs > base else base, run.e):
                    expo[p - base] = 0
                scaled = True
                run.renormed = 0
                run.cur = 0
                continue
        else:
            exact_scaled(M, x, min(n + 1, base + cap), chunked, &run, score - base, expo - base, backv,
                         ws.weights, pend)
        if run.e <= n:
            # The window is full: keep what edges to come may start at, from q on.
            q = run.e - L if run.e - L > run.cs else run.cs
            memmove(score, score + (q - base), (run.e - q) * sizeof(double))
            memmove(expo, expo + (q - base), (run.e - q) * sizeof(int64_t))
            base = q
    rng[0] = run.rng
    m = read_back(M, backv, n)
    ws.result = backv + (n + 1 - m)
    return m


# ---------------------------------------------------------------------------
# The dispatch

cdef Py_ssize_t segment(const Model* M, int mode, const uint8_t* x, Py_ssize_t n, bint chunked,
                        bint forbid_whole, Rng* rng, Workspace* ws,
                        int32_t* out_val, int32_t* out_end) noexcept nogil:
    cdef Py_ssize_t m
    ws.result = out_val
    if n == 0:
        return 0
    if M.cuts != NULL or M.banned != NULL:
        return segment_constrained(M, mode, x, n, chunked, rng, ws, out_val, out_end)
    m = segment_free(M, mode, x, n, chunked, forbid_whole, rng, ws, out_val)
    if m > 0:
        copy_out(M, ws.result, m, 0, out_val, out_end)
    return m


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
    chunk, one uniform per position as in one pass. Returns NO_SEGMENTATION then. The
    pieces go to out_val, which must not be NULL."""
    cdef Model part = M[0]
    cdef Py_ssize_t cs = 0, ce, m = 0, got
    if out_val == NULL:
        return -1
    while cs < n:
        ce = chunk_end(x, cs, n, chunked)
        part.cuts = M.cuts + cs if M.cuts != NULL else NULL
        part.banned = M.banned + cs if M.banned != NULL else NULL
        got = segment_free(&part, mode, x + cs, ce - cs, False, False, rng, ws, NULL)
        if got < 0:
            return got
        if not reached(mode, ws.score[ce - cs]):
            return NO_SEGMENTATION
        copy_out(M, ws.result, got, cs, out_val + m, NULL if out_end == NULL else out_end + m)
        m += got
        cs = ce
    ws.result = out_val
    return m


cdef Py_ssize_t segment_free(const Model* M, int mode, const uint8_t* x, Py_ssize_t n, bint chunked,
                             bint forbid_whole, Rng* rng, Workspace* ws, int32_t* out_val) noexcept nogil:
    """One kernel over the whole text (its chunks restart inside the kernel); sets
    ws.result. A long text without constraints takes the bounded-memory kernels, whose
    result goes to out_val when given."""
    cdef bint long_text = n > WINDOW_MIN and M.cuts == NULL and M.banned == NULL
    if mode == MODE_VITERBI:
        if long_text and not forbid_whole:
            if out_val == NULL:
                out_val = ws_long(ws, n)
                if out_val == NULL:
                    return -1
            ws.result = out_val
            return seg_viterbi_window(M, x, n, chunked, WINDOW_FIRST, out_val)
        return seg_viterbi(M, x, n, chunked, forbid_whole, ws)
    if mode == MODE_LEGACY_V1:
        return seg_legacy_v1(M, x, n, chunked, rng, ws)
    if mode == MODE_EXACT_LOG:
        return seg_exact_log(M, x, n, chunked, rng, ws)
    return seg_exact_windowed(M, x, n, chunked, rng, ws, WINDOW_FIRST if long_text else 0)
