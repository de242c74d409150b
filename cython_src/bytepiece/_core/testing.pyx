# Hooks for the test suite, kept off the classes users see: samples driven by a weak
# generator (the statistical tests must reject them), the bounded-memory Viterbi and
# exact sampler with a window small enough to exercise them on short texts, and Viterbi
# without the piece that covers a whole text (what em.split_scores scores), and the
# exact sampler's choice among one position's edges.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from .common.rng cimport RNG_COARSE, RNG_LCG31, RNG_XOSHIRO, Rng, rng_init
from .id_lists cimport ids_to_list, ids_to_objs
from .lattice cimport Lattice
from .segment cimport (
    MODE_EXACT,
    MODE_VITERBI,
    Model,
    Workspace,
    copy_out,
    exact_pick_at,
    seg_exact_windowed,
    seg_viterbi_window,
    segment,
    ws_free,
)
from .text cimport text_bytes

import numpy as np

#: The generators by name; "xoshiro256**" is the only one users ever get.
GENERATORS = {"xoshiro256**": RNG_XOSHIRO, "coarse4": RNG_COARSE, "lcg31": RNG_LCG31}


def encode_with_generator(Lattice lattice, list datas, double alpha, const uint64_t[::1] seed_words,
                          const uint64_t[::1] key_words, *, int sampler=MODE_EXACT,
                          int generator=RNG_XOSHIRO, bint chunked=True):
    """The id lists of the texts, text i drawn by (seed_words[i], key_words[i]) from the
    generator of that kind: with RNG_XOSHIRO the same as batch.encode_lists."""
    cdef int mode = lattice.mode_of(alpha, sampler)
    cdef object keep = lattice.weights_for(alpha, mode)
    cdef Py_ssize_t i, n, m
    cdef const uint8_t* x
    cdef Model M
    cdef Rng rng
    cdef Workspace ws
    cdef list out = []
    if seed_words.shape[0] != len(datas) or key_words.shape[0] != len(datas):
        raise ValueError("one seed word and one key word per text")
    lattice.fill_model(&M, alpha, keep)
    memset(&ws, 0, sizeof(Workspace))
    try:
        for i in range(len(datas)):
            x = text_bytes(datas[i], &n)
            rng_init(&rng, seed_words[i], key_words[i], generator)
            with nogil:
                m = segment(&M, mode, x, n, chunked, False, &rng, &ws, NULL, NULL)
            if m < 0:
                raise MemoryError()
            out.append(ids_to_objs(ws.result, m, lattice._id_ptrs, -1, -1, False))
    finally:
        ws_free(&ws)
    return out


def viterbi_windowed(Lattice lattice, const uint8_t[::1] data, Py_ssize_t first_cap, *, bint chunked=True):
    """segment(data) by the bounded-memory Viterbi that long texts take, with a
    window of first_cap positions to start with (for tests: any size gives the same
    segmentation)."""
    cdef Model M
    cdef Py_ssize_t n = data.shape[0], m = 0
    vals = np.empty(n, dtype=np.int32)
    ends = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] vv = vals, ee = ends
    lattice.fill_model(&M, -1.0, None)
    if n:
        with nogil:
            m = seg_viterbi_window(&M, &data[0], n, chunked, first_cap, &vv[0])
            if m > 0:
                copy_out(&M, &vv[0], m, 0, NULL, &ee[0])
    if m < 0:
        raise MemoryError()
    return vals[:m], ends[:m]


def sample_windowed(Lattice lattice, const uint8_t[::1] data, double alpha, uint64_t seed_word, uint64_t key_word,
                    Py_ssize_t window, *, bint chunked=True):
    """(piece indices, end positions) of the exact draw of (seed_word, key_word), by the
    sampler that long texts take, keeping forward sums for a window of `window`
    positions (at least 4 * (max_len + 1)); for tests: any window gives the draw of
    Lattice.segment."""
    cdef int mode = lattice.mode_of(alpha, MODE_EXACT)
    cdef object keep = lattice.weights_for(alpha, mode)
    cdef Model M
    cdef Rng rng
    cdef Workspace ws
    cdef Py_ssize_t n = data.shape[0], m = 0
    if mode != MODE_EXACT:
        raise ValueError("the windowed sampler is the linear-space one (alpha too large)")
    vals = np.empty(n, dtype=np.int32)
    ends = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] vv = vals, ee = ends
    lattice.fill_model(&M, alpha, keep)
    rng_init(&rng, seed_word, key_word, RNG_XOSHIRO)
    memset(&ws, 0, sizeof(Workspace))
    if n:
        with nogil:
            m = seg_exact_windowed(&M, &data[0], n, chunked, &rng, &ws, window)
            if m > 0:
                copy_out(&M, ws.result, m, 0, &vv[0], &ee[0])
            ws_free(&ws)
    if m < 0:
        raise MemoryError()
    return vals[:m], ends[:m]


def viterbi_split(Lattice lattice, bytes data, *, bint forbid_whole=False):
    """Ids of the Viterbi segmentation of `data` as one chunk. With forbid_whole the
    piece covering all of `data` is not used (unless `data` is a single byte)."""
    cdef Model M
    cdef Workspace ws
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), m
    cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef int32_t* buf = <int32_t*>malloc((2 * n + 1) * sizeof(int32_t))
    if buf == NULL:
        raise MemoryError()
    lattice.fill_model(&M, -1.0, None)
    memset(&ws, 0, sizeof(Workspace))
    try:
        with nogil:
            m = segment(&M, MODE_VITERBI, x, n, False, forbid_whole, NULL, &ws, buf, buf + n)
            ws_free(&ws)
        if m < 0:
            raise MemoryError()
        return ids_to_list(buf, m, &lattice.ids[0], -1, -1)
    finally:
        free(buf)


def pick_edge(list sums, double u):
    """The index the exact sampler picks for the scaled uniform u among edges whose
    running sums are `sums` (at least two)."""
    cdef Py_ssize_t k = len(sums), i
    if k < 2:
        raise ValueError("pick_edge needs at least two edges")
    cdef double* cum = <double*>malloc((k + 3) * sizeof(double))
    if cum == NULL:
        raise MemoryError()
    try:
        for i in range(k):
            cum[i] = sums[i]
        return exact_pick_at(cum, k, u)
    finally:
        free(cum)
