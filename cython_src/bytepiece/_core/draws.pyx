# Many exact draws of one text from one forward pass, each with its log-probability:
# what importance sampling over segmentations needs (Tokenizer.sample).
#
# Why it is built this way: the single-draw sampler (segment.pyx) makes each position's
# backward choice during its forward pass, which suits one draw but redoes the pass for
# every draw. Here the forward pass stores, for every edge, the running sum of its end
# position's edge weights up to it (the last is the end's forward sum); a draw then walks
# back from the end, choosing one incoming edge per visited boundary with one uniform
# scaled by that sum, so n draws cost one pass plus n walks of a few steps per piece.
# An edge's sum, start and piece sit side by side (one Edge), as a step of the walk
# reads them together. Forward sums are kept as in forward-backward (mantissa *
# 2**exponent; a log-space pass for very large alpha), chunk by chunk, with the same
# constraints as every other kernel. Draw i takes its
# generator from (seed word, hash of key word and i), so the draws of (seed, key) do not
# depend on how many are asked for, and the log-probability of each is alpha * score -
# log Z with the score summed as path_score sums it.

from libc.math cimport INFINITY, exp, frexp, log
from libc.limits cimport INT_MAX
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from cpython.bytes cimport PyBytes_AS_STRING
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove, memset

from .chunks cimport is_chunk_start
from .common.hashing cimport hash_words
from .common.realloc cimport realloc_into
from .id_lists cimport ids_to_objs
from .common.rng cimport RNG_XOSHIRO, Rng, rng_init, rng_uniform
from .lattice cimport Lattice
from .automaton cimport ac_edges
from .segment cimport (
    LINEAR_LIMIT,
    check_alpha,
    MODE_EXACT,
    RENORM_HIGH,
    RENORM_LOW,
    Model,
    Workspace,
    advance,
    log_weights,
    pow2,
    STACK_WORKSPACE,
    ws_free,
    ws_init,
    ws_reserve,
)

from .._numpy import np


#: The largest number of draws (and n-best size, sample count) the core takes: a C int.
MAX_COUNT = INT_MAX


cdef struct Edge:
    double weight       # the running sum of its end position's edge weights up to it
    int32_t start
    int32_t value       # (piece index)


cdef struct DrawEdges:
    Edge* edges         # grouped by end position; an edge's fields side by side, as a draw reads them
    int64_t* first      # first[e]: index of the first edge ending at e (first[e + 1]: past the last)
    size_t cap          # room for this many edges
    bint edges_lent     # edges, first: in the caller's buffer (a short text's), not malloc'd
    bint first_lent


cdef enum:
    ARENA = 24576       # bytes of stack a short text's draws, edges and positions are lent


cdef int es_reserve(DrawEdges* es, size_t edges) noexcept nogil:
    """Room for `edges` edges (growing geometrically; edges in a lent buffer move to the
    heap); -1 when out of memory."""
    cdef Edge* moved
    if edges > es.cap:
        edges = edges if edges > 2 * es.cap else 2 * es.cap
        if es.edges_lent:
            moved = <Edge*>malloc(edges * sizeof(Edge))
            if moved == NULL:
                return -1
            memcpy(moved, es.edges, es.cap * sizeof(Edge))
            es.edges = moved
            es.edges_lent = False
        elif realloc_into(<void**>&es.edges, edges * sizeof(Edge)) < 0:
            return -1
        es.cap = edges
    return 0


cdef void es_free(DrawEdges* es) noexcept nogil:
    """Free what was malloc'd (not what lies in a lent buffer)."""
    if not es.edges_lent:
        free(es.edges)
    if not es.first_lent:
        free(es.first)
    memset(es, 0, sizeof(DrawEdges))


cdef int forward_linear(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked, Workspace* ws,
                        DrawEdges* sh, double* logz) noexcept nogil:
    """The forward pass in linear space (mantissa ws.score * 2**ws.expo): every edge with
    the running sum of its end's weights up to it (the last is the end's total). logz
    gets log Z (-inf when no segmentation satisfies the constraints). -1 when out of
    memory. Every position from `renormed` on has the exponent `cur`, so edges that all
    start there are summed without comparing or scaling exponents (almost always)."""
    cdef Py_ssize_t e, cs = 0, renormed = 0
    cdef int64_t used = 0, d, ref, cur = 0
    cdef int k, i, ex
    cdef int32_t state = 0
    cdef double tot, w
    cdef double* f = ws.score
    cdef int64_t* fx = ws.expo
    cdef double total_logz = 0.0
    f[0] = 1.0
    fx[0] = 0
    sh.first[0] = 0
    sh.first[1] = 0
    for e in range(1, n + 1):
        sh.first[e] = used
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            state = 0
            total_logz += log(f[cs]) + <double>fx[cs] * 0.6931471805599453
            f[cs] = 1.0
            fx[cs] = 0
            cur = 0
            renormed = cs
        if advance(M, x, e, &state, &f[e], 0.0):
            fx[e] = fx[e - 1]
            continue
        k = ac_edges(&M.ac, state, e, ws.starts, ws.values)
        if <size_t>(used + k) > sh.cap and es_reserve(sh, <size_t>(used + k)) < 0:
            return -1
        tot = 0.0
        if ws.starts[k - 1] >= renormed:     # (the longest piece's start) every start has exponent cur
            ref = cur
            for i in range(k):
                tot += f[ws.starts[i]] * M.q[ws.values[i]]
                sh.edges[used].weight = tot
                sh.edges[used].start = ws.starts[i]
                sh.edges[used].value = ws.values[i]
                used += 1
        else:
            # The reference exponent: the largest above 0 of a reachable start, else the
            # previous position's. Any one power of two would do (scaling all of a
            # position's edges by it changes no comparison, and the sums stay exact); this
            # one fixes the last bits of log Z as they have always been.
            ref = 0
            for i in range(k):
                if f[ws.starts[i]] > 0.0 and fx[ws.starts[i]] > ref:
                    ref = fx[ws.starts[i]]
            if ref == 0:
                ref = fx[e - 1]
            for i in range(k):
                w = f[ws.starts[i]] * M.q[ws.values[i]]
                d = fx[ws.starts[i]] - ref
                if d != 0 and w > 0.0:
                    w = w * pow2(d)
                tot += w
                sh.edges[used].weight = tot
                sh.edges[used].start = ws.starts[i]
                sh.edges[used].value = ws.values[i]
                used += 1
        if RENORM_LOW <= tot <= RENORM_HIGH:
            f[e] = tot
            fx[e] = ref
        else:
            f[e] = frexp(tot, &ex)
            fx[e] = ref + ex
        if fx[e] != cur:
            cur = fx[e]
            renormed = e
    sh.first[n + 1] = used
    logz[0] = total_logz + (log(f[n]) + <double>fx[n] * 0.6931471805599453 if f[n] > 0.0 else -INFINITY)
    return 0


# (forward_log repeats forward_linear's walk on purpose: a kernel per arithmetic, so
# that neither branches per edge on linear or log space.)
cdef int forward_log(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked, Workspace* ws,
                     DrawEdges* sh, double* logz) noexcept nogil:
    """forward_linear in log space (ws.score holds log sums), for alphas whose linear
    weights could leave the normal range."""
    cdef Py_ssize_t e, cs = 0
    cdef int64_t used = 0
    cdef int k, i
    cdef int32_t state = 0
    cdef double top, tot
    cdef double* F = ws.score
    cdef double total_logz = 0.0
    F[0] = 0.0
    sh.first[0] = 0
    sh.first[1] = 0
    for e in range(1, n + 1):
        sh.first[e] = used
        if chunked and e > 1 and is_chunk_start(x, e - 1):
            cs = e - 1
            state = 0
            total_logz += F[cs]
            F[cs] = 0.0
        if advance(M, x, e, &state, &F[e], -INFINITY):
            continue
        k = ac_edges(&M.ac, state, e, ws.starts, ws.values)
        if <size_t>(used + k) > sh.cap and es_reserve(sh, <size_t>(used + k)) < 0:
            return -1
        top = log_weights(M, F, ws.starts, ws.values, k, ws.weights)
        if top == -INFINITY:
            F[e] = -INFINITY
            for i in range(k):
                sh.edges[used].weight = 1.0
                sh.edges[used].start = ws.starts[i]
                sh.edges[used].value = ws.values[i]
                used += 1
            continue
        tot = 0.0
        for i in range(k):
            tot += exp(ws.weights[i] - top)
            sh.edges[used].weight = tot
            sh.edges[used].start = ws.starts[i]
            sh.edges[used].value = ws.values[i]
            used += 1
        F[e] = top + log(tot)
    sh.first[n + 1] = used
    logz[0] = total_logz + F[n]
    return 0


cdef Py_ssize_t draw_one(const DrawEdges* sh, Py_ssize_t n, Rng* rng, int32_t* vals, int32_t* ends) noexcept nogil:
    """One backward walk: the pieces of a draw into vals[0 .. m) in text order, and their
    end positions into ends unless it is NULL; returns m. Both have room for n (the walk
    writes them from n - 1 down, then moves them to the front)."""
    cdef Py_ssize_t e = n, w = n
    cdef int64_t j, i, first, last
    cdef double u
    cdef const Edge* edges = sh.edges
    while e > 0:
        first = sh.first[e]
        last = sh.first[e + 1] - 1
        j = first
        if last > first:
            # The first edge whose running sum exceeds u: the sums only grow, so it is the
            # count of those at most u (the last, the total, never counts). Counted
            # without a branch on the outcome, which is random and would mispredict.
            u = rng_uniform(rng) * edges[last].weight
            for i in range(first, last):
                j += edges[i].weight <= u
        w -= 1
        vals[w] = edges[j].value
        if ends != NULL:
            ends[w] = <int32_t>e
        e = edges[j].start
    if w > 0:
        memmove(vals, vals + w, (n - w) * sizeof(int32_t))
        if ends != NULL:
            memmove(ends, ends + w, (n - w) * sizeof(int32_t))
    return n - w


cdef double path_score(const Model* M, const uint8_t* x, bint chunked, const int32_t* vals,
                       const int32_t* ends, Py_ssize_t m) noexcept nogil:
    """The score of a segmentation, summed from 0 in each chunk and the chunk sums added
    left to right (as queries.path_score sums it)."""
    cdef Py_ssize_t i
    cdef int32_t s = 0
    cdef double total = 0.0, chunk = 0.0
    for i in range(m):
        if chunked and s > 0 and is_chunk_start(x, s):
            total = total + chunk
            chunk = 0.0
        chunk = chunk + M.logp[vals[i]]
        s = ends[i]
    return total + chunk


cdef void copy_out(object array, const void* source, size_t size) except *:
    """memcpy into a new numpy array's buffer."""
    cdef unsigned char[::1] target = array.view(np.uint8)
    if size:
        memcpy(&target[0], source, size)


def sample_many(Lattice lattice, bytes data, Py_ssize_t count, double alpha, uint64_t seed_word,
                uint64_t key_word, *, bint chunked=True, cuts=None, banned=None, bint lists=False,
                bint log_probs=True):
    """``count`` exact draws of data from exp(alpha * score) / Z, from one forward pass:
    (piece indices, end positions, row offsets, log-probabilities), the first two flat
    int32 arrays (draw i is [rows[i], rows[i + 1])), log-probabilities float64. With
    ``lists``, (a list of the draws' id lists, a list of their log-probabilities), built
    without numpy (the ids are the lattice's). With ``log_probs=False`` the
    log-probabilities are not computed (None in their place). Draw i uses the generator
    of (seed_word, hash of (key_word, i)). ValueError when the constraints (cuts,
    banned: as Lattice.segment) leave no segmentation."""
    return draw_many(lattice, data, count, alpha, seed_word, key_word, chunked, cuts, banned, lists, log_probs)


cdef object draw_many(Lattice lattice, bytes data, Py_ssize_t count, double alpha, uint64_t seed_word,
                      uint64_t key_word, bint chunked, object cuts, object banned, bint lists, bint log_probs):
    """sample_many, for callers in the core."""
    cdef Py_ssize_t n = len(data), i, m, total = 0
    cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Model M
    cdef Workspace ws
    cdef DrawEdges sh
    cdef Rng rng
    cdef double logz = 0.0
    cdef int rc = 0
    cdef char stack[STACK_WORKSPACE]
    cdef char arena[ARENA]             # the draws, positions and first edges of a short text
    cdef size_t used_arena = 0
    cdef char* block = NULL
    cdef size_t pieces, size
    cdef int32_t* vp
    cdef int32_t* ep
    cdef int64_t* rp
    cdef double* lp
    cdef bint keep_ends
    if count < 0:
        raise ValueError(f"cannot draw {count} samples")
    check_alpha(alpha)
    cdef bint linear = alpha * lattice.min_logprob >= -LINEAR_LIMIT
    keep = lattice.weights_for(alpha, MODE_EXACT) if linear else None
    lattice.fill_model(&M, alpha, keep)
    lattice.constrain(&M, cuts, banned, n)
    ws_init(&ws, stack, sizeof(stack))
    memset(&sh, 0, sizeof(DrawEdges))
    try:
        # The draws go to one block: log-probabilities, row offsets, then count * n
        # pieces and their ends (no draw has more pieces than bytes).
        pieces = <size_t>max(1, count * n)
        size = (count + 1) * (sizeof(double) + sizeof(int64_t)) + 2 * pieces * sizeof(int32_t)
        size = (size + 15) & ~(<size_t>15)
        if size <= ARENA // 2:
            block = arena
            used_arena = size
        else:
            block = <char*>malloc(size)
            if block == NULL:
                raise MemoryError(
                    f"{count} draws of a text of {n} bytes need room for {size / 2**30:.1f} GiB "
                    f"(a draw may have a piece per byte): ask for fewer draws per call"
                )
        lp = <double*>block
        rp = <int64_t*>(block + (count + 1) * sizeof(double))
        vp = <int32_t*>(block + (count + 1) * (sizeof(double) + sizeof(int64_t)))
        ep = vp + pieces
        rp[0] = 0
        keep_ends = log_probs or not lists
        if n > 0:
            with nogil:
                rc = ws_reserve(&ws, n, M.ac.max_len)
                if rc == 0:
                    size = (n + 2) * sizeof(int64_t)
                    if used_arena + size <= ARENA:
                        sh.first = <int64_t*>(arena + used_arena)
                        sh.first_lent = True
                        used_arena += (size + 15) & ~(<size_t>15)
                    else:
                        sh.first = <int64_t*>malloc(size)
                    if used_arena + 64 * sizeof(Edge) <= ARENA:   # (the rest of the arena, if it holds 64)
                        sh.edges = <Edge*>(arena + used_arena)
                        sh.cap = (ARENA - used_arena) // sizeof(Edge)
                        sh.edges_lent = True
                    if sh.first == NULL:
                        rc = -1
                    elif not sh.edges_lent:
                        rc = es_reserve(&sh, <size_t>(64 * (M.ac.max_len + 1)))
                if rc == 0:
                    rc = (forward_linear(&M, x, n, chunked, &ws, &sh, &logz) if linear
                          else forward_log(&M, x, n, chunked, &ws, &sh, &logz))
            if rc < 0:
                raise MemoryError(f"no memory for the lattice of a text of {n} bytes")
            if logz == -INFINITY:
                raise ValueError("no segmentation satisfies the constraints")
        with nogil:
            for i in range(count):
                m = 0
                if n > 0:
                    rng_init(&rng, seed_word, hash_words(key_word, <uint64_t>i), RNG_XOSHIRO)
                    m = draw_one(&sh, n, &rng, &vp[total], &ep[total] if keep_ends else NULL)
                if log_probs:
                    lp[i] = alpha * path_score(&M, x, chunked, &vp[total], &ep[total], m) - logz
                total += m
                rp[i + 1] = total
        if lists:
            return ([ids_to_objs(&vp[rp[i]], rp[i + 1] - rp[i], lattice._id_ptrs, -1, -1, False)
                     for i in range(count)],
                    [lp[i] for i in range(count)] if log_probs else None)
        vals = np.empty(total, dtype=np.int32)
        ends = np.empty(total, dtype=np.int32)
        rows = np.empty(count + 1, dtype=np.int64)
        logps = np.empty(count, dtype=np.float64)
        copy_out(vals, vp, total * sizeof(int32_t))
        copy_out(ends, ep, total * sizeof(int32_t))
        copy_out(rows, rp, (count + 1) * sizeof(int64_t))
        if not log_probs:
            return vals, ends, rows, None
        copy_out(logps, lp, count * sizeof(double))
        return vals, ends, rows, logps
    finally:
        ws_free(&ws)
        es_free(&sh)
        if block != arena:
            free(block)
