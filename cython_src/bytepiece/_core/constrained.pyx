# The per-call path of constrained encoding: `encode(text, required_boundaries=...,
# forbidden_boundaries=...)` for one line, read and checked without numpy, then one
# segmentation under the constraints straight into an id list.
#
# Why it is built this way: the careful path (bytepiece/constraints.py) turns every
# argument into numpy masks and goes through Lattice.segment's arrays, which costs a few
# microseconds a call, as much as segmenting a short line. Here the two usual forms, a
# boolean numpy mask and a list or tuple of int positions (or an int32/int64 array), are
# read through the buffer protocol and checked in C with the rules of
# constraints.resolve; anything else, and anything those rules reject, is left to the
# careful path (encode_constrained returns None), which raises the error that names the value.
# A boolean mask is used in place, not copied: the kernels never read a required
# boundary at either end of the text, which resolve would clear.

from cpython.buffer cimport (
    PyBUF_C_CONTIGUOUS,
    PyBUF_FORMAT,
    PyBUF_SIMPLE,
    PyBuffer_Release,
    PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsSsize_t, PyLong_CheckExact
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from .common.rng cimport RNG_XOSHIRO, Rng, rng_init
from .id_lists cimport ids_to_objs
from .lattice cimport DrawStream, Lattice
# (much as lattice.pyx's: both run segment's kernels per call, and name what they use)
from .segment cimport (
    MODE_EXACT,
    MAX_ALPHA,
    MODE_VITERBI,
    NO_SEGMENTATION,
    STACK_WORKSPACE,
    Model,
    Workspace,
    segment,
    ws_free,
    ws_init,
)

cdef enum:
    PIECE_STACK = 2048   # pieces of stack lent to the result of a short text


ctypedef fused position_t:
    int32_t
    int64_t


cdef bint mark_positions(const position_t* positions, Py_ssize_t size, Py_ssize_t n, uint8_t* mask) noexcept nogil:
    """Mark each of the positions in mask; False when one lies outside 0 .. n."""
    cdef Py_ssize_t i
    for i in range(size):
        if positions[i] < 0 or positions[i] > n:
            return False
        mask[positions[i]] = 1
    return True


cdef object mask_of(object spec, Py_ssize_t n):
    """The uint8 mask (n + 1 entries, any buffer) of one constraint argument: the
    argument itself when it is a C-contiguous boolean mask of n + 1 entries, a new bytes
    mask when it is a list or tuple of int positions, or an int32/int64 array of them,
    all within 0 .. n. None for no constraint (None, or nothing marked); False when the
    careful path must read it (another type, or a value it would reject)."""
    cdef Py_buffer view
    cdef Py_ssize_t i, size, pos
    cdef bytes out
    cdef uint8_t* m
    cdef bint marked = False
    if spec is None:
        return None
    if type(spec) is list or type(spec) is tuple:
        size = len(spec)
        if size == 0:
            return False    # (the careful path decides what an empty sequence means)
        out = PyBytes_FromStringAndSize(NULL, n + 1)
        m = <uint8_t*>PyBytes_AS_STRING(out)
        memset(m, 0, n + 1)
        for item in spec:
            if not PyLong_CheckExact(item):
                return False
            try:
                pos = PyLong_AsSsize_t(item)
            except OverflowError:
                return False
            if pos < 0 or pos > n:
                return False
            m[pos] = 1
        return out
    if not PyObject_CheckBuffer(spec):
        return False
    try:
        PyObject_GetBuffer(spec, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
    except (BufferError, TypeError, ValueError):    # (a strided or read-only view, say)
        return False
    try:
        if view.ndim != 1 or view.format == NULL or view.format[1] != 0:
            return False
        size = view.shape[0]
        if view.format[0] == b"?" and view.itemsize == 1:
            if size != n + 1:
                return False
            m = <uint8_t*>view.buf
            for i in range(size):
                if m[i]:
                    marked = True
                    break
            return spec if marked else None
        if size == 0:
            return False
        out = PyBytes_FromStringAndSize(NULL, n + 1)
        m = <uint8_t*>PyBytes_AS_STRING(out)
        memset(m, 0, n + 1)
        if view.itemsize == 8 and view.format[0] in b"ql":
            marked = mark_positions(<const int64_t*>view.buf, size, n, m)
        elif view.itemsize == 4 and view.format[0] in b"il":
            marked = mark_positions(<const int32_t*>view.buf, size, n, m)
        return out if marked else False
    finally:
        PyBuffer_Release(&view)


cdef bint masks_allowed(const uint8_t* x, Py_ssize_t n, const uint8_t* c, const uint8_t* b) noexcept nogil:
    """Whether the masks c (required) and b (forbidden), each NULL or of n + 1 entries,
    keep the rules of constraints.resolve: no forbidden boundary at either end of the
    text or at a chunk start (after a run of newlines), no position both required and
    forbidden."""
    cdef Py_ssize_t e
    if b == NULL:
        return True
    if b[0] or b[n]:
        return False
    for e in range(1, n):
        if b[e] and x[e - 1] == 10 and x[e] != 10:
            return False
    if c != NULL:
        for e in range(n + 1):
            if c[e] and b[e]:
                return False
    return True


cdef bint cuts_inside(const uint8_t* c, Py_ssize_t n) noexcept nogil:
    """Whether a required-boundary mask marks any position inside the text (its ends are
    boundaries anyway)."""
    cdef Py_ssize_t e
    for e in range(1, n):
        if c[e]:
            return True
    return False


def encode_constrained(Lattice lattice, bytes data, double alpha, object words, object key, int bos, int eos,
                       object required, object forbidden):
    """The ids of one segmentation of data (the text's bytes as the tokenizer sees them)
    under boundary constraints given as the API takes them: Viterbi when alpha < 0,
    else the exact draw of words(key) (a (seed word, key word) pair, asked for only once
    the constraints and alpha are known to be valid), with bos and eos as
    Lattice.viterbi puts them. None when the careful path must handle the call (an
    argument it reads differently, or one it rejects with an error naming it); False
    when the constraints leave no segmentation."""
    return constrained_ids(lattice, data, alpha, words, key, None, 0, 0, bos, eos, required, forbidden)


cdef object constrained_ids(Lattice lattice, bytes data, double alpha, object words, object key, DrawStream stream,
                            uint64_t seed_word, uint64_t key_word, int bos, int eos, object required,
                            object forbidden):
    """encode_constrained, with the draw's words from words(key) when words is given,
    else from the next unkeyed draw of stream when it is given, else (seed_word,
    key_word); taken only once the arguments are known to be valid."""
    cdef Model M
    cdef Workspace ws
    cdef Rng rng
    cdef Py_buffer cv, bv
    cdef bint held_c = False, held_b = False
    cdef char stack[STACK_WORKSPACE]
    cdef int32_t piece_stack[PIECE_STACK]
    cdef int32_t* pieces = piece_stack
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), m
    cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef int mode = MODE_VITERBI
    if not alpha < 0 and not (0 <= alpha <= MAX_ALPHA):
        return None
    cuts = mask_of(required, n)
    if cuts is False:
        return None
    banned = mask_of(forbidden, n)
    if banned is False:
        return None
    if alpha >= 0:
        mode = lattice.mode_of(alpha, MODE_EXACT)
    keep = lattice.weights_for(alpha, mode)
    lattice.fill_model(&M, alpha, keep)       # (no constraints yet: they are set below)
    try:
        if cuts is not None:
            PyObject_GetBuffer(cuts, &cv, PyBUF_SIMPLE)
            held_c = True
            M.cuts = <const uint8_t*>cv.buf
        if banned is not None:
            PyObject_GetBuffer(banned, &bv, PyBUF_SIMPLE)
            held_b = True
            M.banned = <const uint8_t*>bv.buf
        if not masks_allowed(x, n, M.cuts, M.banned):
            return None
        if M.cuts != NULL and not cuts_inside(M.cuts, n):
            M.cuts = NULL
        if alpha >= 0:
            if words is not None:
                seed_word, key_word = words(key)
            elif stream is not None:
                seed_word = stream.word
                key_word = stream.calls
                stream.calls += 1
            rng_init(&rng, seed_word, key_word, RNG_XOSHIRO)
        if n > PIECE_STACK:
            pieces = <int32_t*>malloc(n * sizeof(int32_t))
            if pieces == NULL:
                raise MemoryError()
        ws_init(&ws, stack, sizeof(stack))
        with nogil:
            m = segment(&M, mode, x, n, True, False, &rng, &ws, pieces, NULL)
            ws_free(&ws)
        if m == NO_SEGMENTATION:
            return False
        if m < 0:
            raise MemoryError()
        return ids_to_objs(pieces, m, lattice._id_ptrs, bos, eos, False)
    finally:
        if pieces != piece_stack:
            free(pieces)
        if held_c:
            PyBuffer_Release(&cv)
        if held_b:
            PyBuffer_Release(&bv)
