# The trainer's passes over its EM sample, each a function of a Lattice of the current
# pieces: expected counts (the E-step, forward-backward), Viterbi counts (hard E-steps
# while the vocabulary grows), adjacent pairs of the Viterbi segmentation (the grow
# rounds' candidates) and split scores (what losing each piece would cost, for pruning).
#
# Why it is built this way: each pass reads a part of the sample (a list of bytes, one
# chunk each) with the GIL released for the whole part, so the trainer runs parts on
# several threads; sums are in a fixed text order (floats) or integers (pairs), so the
# result does not depend on how many threads there are.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from .common.byteviews cimport ByteViews, views_free, views_of
from .forward_backward cimport EdgeStore, es_free, forward_backward
from .lattice cimport Lattice
from .pair_counts cimport PairCounts, pair_half
from .segment cimport (
    LINEAR_LIMIT,
    check_alpha,
    MODE_EXACT,
    MODE_EXACT_LOG,
    MODE_VITERBI,
    Model,
    Workspace,
    segment,
    ws_free,
    ws_reserve,
)

from .._numpy import np


def split_scores(Lattice lattice, list datas):
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
        lattice.fill_model(&M, -1.0, None)
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


def expected_counts(Lattice lattice, list texts, double[::1] counts, *, double alpha=1.0, weights=None,
                    bint chunked=False, bint logspace=False):
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
    cdef int32_t max_id = int(np.asarray(lattice.ids).max())
    if counts.shape[0] <= max_id:
        raise ValueError(f"counts needs at least {max_id + 1} entries")
    check_alpha(alpha)
    cdef ByteViews views
    cdef const uint8_t** ptrs
    cdef Py_ssize_t* lens
    cdef double* bwd = NULL
    cdef double total = 0.0, logz = 0.0
    cdef double* cnt
    cdef const int32_t* idp
    cdef EdgeStore es
    cdef bint linear = not logspace and alpha * lattice.min_logprob >= -LINEAR_LIMIT
    cdef object keep
    cdef Model M
    cdef Workspace ws
    memset(&views, 0, sizeof(ByteViews))
    try:
        views_of(texts, &views)
        ptrs, lens, longest = views.ptrs, views.lens, views.longest
        bwd = <double*>malloc((longest + 1) * sizeof(double))
        memset(&ws, 0, sizeof(Workspace))
        if bwd == NULL or ws_reserve(&ws, longest, lattice.ac.max_len) < 0:
            ws_free(&ws)
            raise MemoryError()
        keep = lattice.weights_for(alpha, MODE_EXACT if linear else MODE_EXACT_LOG)
        lattice.fill_model(&M, alpha, keep)
        if lattice._id_shift >= 0 and linear:
            cnt = &counts[lattice._id_shift]     # ids are consecutive: index the counts directly
            idp = NULL
        else:
            cnt = &counts[0]
            idp = &lattice.ids[0]
        memset(&es, 0, sizeof(EdgeStore))
        with nogil:
            for i in range(count):
                logz = forward_backward(&M, ptrs[i], lens[i], chunked, not linear, &ws, &es, bwd,
                                        cnt, idp, NULL, 1.0 if wp == NULL else wp[i], NULL)
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


def viterbi_counts(Lattice lattice, list texts, weights, double[::1] counts):
    """Adds, for each text (bytes, one chunk: no newline cuts), weights[i] to
    counts[piece] for every piece of its Viterbi segmentation (piece indices, not ids),
    text after text and piece after piece: the same floats as np.bincount over the
    concatenated segmentations with each token weighted by its text's weight. The loop
    runs with the GIL released."""
    cdef const double[::1] wv = np.ascontiguousarray(weights, dtype=np.float64)
    if wv.shape[0] != len(texts):
        raise ValueError(f"{len(texts)} texts but {wv.shape[0]} weights")
    if counts.shape[0] != lattice.num_pieces:
        raise ValueError(f"counts has {counts.shape[0]} entries, the lattice {lattice.num_pieces} pieces")
    if len(texts):
        viterbi_sums(lattice, texts, NULL, &wv[0], None, NULL, &counts[0], None)


def count_viterbi_pairs(Lattice lattice, list texts, weights, PairCounts out, *, int64_t[::1] unigrams=None,
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
    if out.num_pieces != lattice.num_pieces or (odd is not None and odd.num_pieces != lattice.num_pieces):
        raise ValueError(f"the pair table is for {out.num_pieces} pieces, the lattice has {lattice.num_pieces}")
    if unigrams is not None and unigrams.shape[0] != lattice.num_pieces:
        raise ValueError(f"unigrams has {unigrams.shape[0]} entries, the lattice {lattice.num_pieces} pieces")
    if len(texts):
        viterbi_sums(lattice, texts, &wv[0], NULL, out, NULL if unigrams is None else &unigrams[0], NULL, odd)


cdef int viterbi_sums(Lattice lattice, list texts, const int64_t* iw, const double* fw, PairCounts pairs,
                      int64_t* unigrams, double* counts, PairCounts odd) except -1:
    """The Viterbi segmentation of each text, summed as asked: text i's integer weight
    iw[i] per adjacent pair into `pairs` and per piece into `unigrams`, its float weight
    fw[i] per piece into `counts` (each NULL / None when not wanted); given `odd`, the
    pairs of the odd half (pair_half) go there instead of `pairs`. The loop runs with
    the GIL released."""
    # (declared as the passes over a list of texts declare them: alike by shape only)
    cdef Py_ssize_t count = len(texts), i, j, m, longest = 0
    cdef int64_t npieces = lattice.num_pieces
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
        lattice.fill_model(&M, -1.0, None)
        with nogil:
            for i in range(count):
                if lens[i] == 0:
                    continue
                m = segment(&M, MODE_VITERBI, ptrs[i], lens[i], False, False, NULL, &ws, vals, ends)
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
