# Forward-backward over the lattice of a text: log Z, the expected count of every
# piece, and the probability of a piece boundary at every byte, under the sampling
# distribution exp(alpha * score) / Z (forward_backward.pxd declares the entry point).
#
# Why it is built this way: the E-step of the trainer runs this over a whole sample per
# round, so the common case avoids exp and log per edge: forward sums are kept in linear
# space as mantissa * 2**exponent (as the exact sampler keeps them), and the forward
# pass stores each position's edges (read from the automaton) for the backward pass to
# read back (EdgeStore). When alpha * |logp| is beyond LINEAR_LIMIT a log-space version
# runs (forward log-sums as an exact integer part plus a small remainder, so that long
# texts keep their precision), which keeps each position's automaton state instead and
# reads the edges from it again on the way back.

from libc.math cimport INFINITY, NAN, exp, floor, frexp, ldexp, log
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport free
from libc.string cimport memset

from .chunks cimport chunk_end
from .common.realloc cimport realloc_into
from .automaton cimport ac_edges
from .segment cimport RENORM_HIGH, RENORM_LOW, Model, Workspace, advance, pow2


cdef int ep_push(EdgePosteriors* ep, int32_t s, int32_t e, int32_t v, double p) noexcept nogil:
    """Append one edge's posterior; -1 when out of memory."""
    cdef size_t cap
    if ep.size == ep.cap:
        cap = 2 * ep.cap if ep.cap else 1024
        if (realloc_into(<void**>&ep.start, cap * sizeof(int32_t)) < 0
                or realloc_into(<void**>&ep.end, cap * sizeof(int32_t)) < 0
                or realloc_into(<void**>&ep.value, cap * sizeof(int32_t)) < 0
                or realloc_into(<void**>&ep.prob, cap * sizeof(double)) < 0):
            return -1
        ep.cap = cap
    ep.start[ep.size] = s
    ep.end[ep.size] = e
    ep.value[ep.size] = v
    ep.prob[ep.size] = p
    ep.size += 1
    return 0


cdef void ep_free(EdgePosteriors* ep) noexcept nogil:
    free(ep.start); free(ep.end); free(ep.value); free(ep.prob)
    memset(ep, 0, sizeof(EdgePosteriors))


cdef double forward_backward_log(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                                 Workspace* ws, double* bwd, double* counts, const int32_t* ids,
                                 double* marginals, double weight, EdgePosteriors* posteriors) noexcept nogil:
    """forward_backward in log space: for alpha * |logp| beyond LINEAR_LIMIT, where the
    linear-space version's weights could leave the normal range.

    A forward log-sum grows with the text (1e9 on a 30 KB line at alpha 1e4), and a
    double that large is only good to 1e-7: posteriors taken as exp(fwd + c + bwd - log Z)
    lost 1e-4 of a certain boundary. So each forward log-sum is kept as an integer part
    K[e] (int64, exact) plus a remainder l[e] in [0, 1), and the sums of the edges into e
    are taken relative to K[e - 1]: every number an edge's weight is computed from is
    small. The backward pass then needs no log-sums at all: m[e] (bwd) is the
    probability of a boundary at e, and an edge s -> e is used with probability m[e]
    times its share of the forward sum at e, which is added to m[s] (the backward draw of
    the sampler, taken in expectation); the shares are normalised to sum to 1, so no
    probability is made or lost on the way back. Each position's automaton state is kept
    for the backward pass to read the edges again. `ids` NULL: piece index i counts at
    counts[i]."""
    cdef Py_ssize_t e, cs, ce, i
    cdef int k, j
    cdef int32_t state, s, v
    cdef int64_t ref, ke
    cdef double logz_total = 0.0, logz, top, tot, t, r, p, le
    cdef double* l = ws.score
    cdef int64_t* K = ws.expo
    cdef double* m = bwd
    cdef double* w = ws.weights
    cdef int32_t* states = ws.aux        # each position's automaton state (-1: no edges)
    cs = 0
    while cs < n:
        ce = chunk_end(x, cs, n, chunked)
        K[cs] = 0
        l[cs] = 0.0
        state = 0
        for e in range(cs + 1, ce + 1):
            ref = K[e - 1]
            K[e] = ref
            if advance(M, x, e, &state, &l[e], -INFINITY):
                states[e] = -1
                continue
            states[e] = state
            k = ac_edges(&M.ac, state, e, ws.starts, ws.values)
            top = -INFINITY
            for j in range(k):
                s = ws.starts[j]
                w[j] = (<double>(K[s] - ref) + l[s]) + M.alpha * M.logp[ws.values[j]]
                if w[j] > top:
                    top = w[j]
            if top == -INFINITY:         # no allowed path reaches e (constraints)
                l[e] = top
                continue
            tot = 0.0
            for j in range(k):
                tot += exp(w[j] - top)
            t = top + log(tot)
            r = floor(t)
            K[e] = ref + <int64_t>r
            l[e] = t - r
        logz = <double>K[ce] + l[ce]
        for i in range(cs, ce):
            m[i] = 0.0
        m[ce] = 1.0
        for e in range(ce, cs, -1):
            if states[e] < 0 or m[e] == 0.0 or l[e] == -INFINITY:
                continue
            k = ac_edges(&M.ac, states[e], e, ws.starts, ws.values)
            ke = K[e]
            le = l[e]
            tot = 0.0
            for j in range(k):
                s = ws.starts[j]
                w[j] = 0.0 if l[s] == -INFINITY else exp(
                    (<double>(K[s] - ke) + (l[s] - le)) + M.alpha * M.logp[ws.values[j]])
                tot += w[j]
            for j in range(k):
                if w[j] == 0.0:
                    continue
                s = ws.starts[j]
                v = ws.values[j]
                p = m[e] * (w[j] / tot)          # (shares that sum to 1: m[e] is passed on whole)
                m[s] += p
                if counts != NULL:
                    counts[v if ids == NULL else ids[v]] += weight * p
                if posteriors != NULL and p > 0.0 and ep_push(posteriors, s, <int32_t>e, v, p) < 0:
                    return NAN
        if marginals != NULL:
            for i in range(cs, ce):
                marginals[i] = m[i]
            marginals[ce] = 1.0
        logz_total += logz
        cs = ce
    return logz_total


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
                                    const int32_t* ids, double* marginals, double weight,
                                    EdgePosteriors* posteriors) noexcept nogil:
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
    cdef int ex, k
    cdef int64_t d, ref, j, used, lo, hi
    cdef double logz_total = 0.0, tot, t, be, w
    cdef double* f = ws.score
    cdef int64_t* fx = ws.expo
    cdef const double* q = M.q
    cdef size_t room = <size_t>M.ac.max_len + 1
    cdef int32_t s, v, state
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
        state = 0
        for e in range(cs + 1, ce + 1):
            if es.cap - <size_t>used < room and es_reserve(es, <size_t>used + room, 0) < 0:
                return NAN
            st = es.start
            va = es.value
            wt = es.weight
            es.first[e] = used
            if advance(M, x, e, &state, &f[e], 0.0):   # (no edges: nothing ends at e)
                fx[e] = fx[e - 1]
                continue
            lo = used
            k = ac_edges(&M.ac, state, e, st + used, va + used)
            tot = 0.0
            for j in range(lo, lo + k):
                w = q[va[j]]
                wt[j] = w
                tot += f[st[j]] * w           # right if every start shares one exponent
            used += k
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
                if posteriors != NULL and f[s] * t > 0.0:
                    if ep_push(posteriors, s, <int32_t>e, va[j], f[s] * t) < 0:
                        return NAN
        if marginals != NULL:
            for i in range(cs, ce):
                marginals[i] = f[i] * beta[i]
            marginals[ce] = 1.0
        cs = ce
    return logz_total


cdef double forward_backward(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                             bint logspace, Workspace* ws, EdgeStore* es, double* bwd, double* counts,
                             const int32_t* ids, double* marginals, double weight,
                             EdgePosteriors* posteriors) noexcept nogil:
    """Adds expected piece counts (by id) times `weight` to counts, boundary probabilities
    to marginals and every edge's posterior probability to posteriors (each may be NULL;
    marginals and posteriors need weight 1); returns log Z (the sum
    over chunks). bwd holds n + 1 doubles. Linear space (M.q holds exp(alpha * logp))
    unless logspace."""
    if logspace:
        return forward_backward_log(M, x, n, chunked, ws, bwd, counts, ids, marginals, weight, posteriors)
    return forward_backward_linear(M, x, n, chunked, ws, es, bwd, counts, ids, marginals, weight, posteriors)
