# The Python surface of the compiled core for one text: a vocabulary compiled into an
# automaton with its log-probabilities (Lattice), the Viterbi segmentation and exact samples
# of one text, and a tokenizer's stream of unkeyed draws (DrawStream). Batches are in
# batch.pyx, the lattice queries in queries.pyx, the trainer's passes in em.pyx; they
# all take a Lattice.
#
# Why it is built this way: a Lattice is immutable after construction (the weights it
# caches per alpha are only ever added, with the GIL held), so one Lattice serves any
# number of threads without locks. The per-call path (encode_one) lends a stack buffer
# to short texts and builds the id list from prebuilt int objects, because a 60-byte
# line costs only microseconds to segment.

from cpython.array cimport array, clone
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF, PyObject
from libc.math cimport NAN, isfinite
from libc.stdint cimport int32_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from .common.rng cimport RNG_XOSHIRO, Rng, rng_init
from .id_lists cimport id_objects, ids_to_objs
from .segment cimport (
    LINEAR_LIMIT,
    check_alpha,
    MODE_EXACT,
    MODE_EXACT_LOG,
    MODE_LEGACY_V1,
    MODE_VITERBI,
    NO_SEGMENTATION,
    STACK_WORKSPACE,
    Model,
    Workspace,
    segment,
    ws_free,
    ws_init,
)
from .text cimport text_utf8
from .automaton cimport Automaton, automaton_build, automaton_free

from .._numpy import np

#: The samplers by name: the `sampler` argument of Lattice.sample and of the batches.
from .segment cimport MAX_ALPHA as ALPHA_LIMIT

#: The largest alpha the samplers take (segment.pxd says why).
MAX_ALPHA = ALPHA_LIMIT
SAMPLERS = {"exact": MODE_EXACT, "exact-logspace": MODE_EXACT_LOG, "legacy-v1": MODE_LEGACY_V1}

cdef enum:
    TEXT_STACK = 8192   # bytes of stack a per-call method lends a non-ASCII str's UTF-8


cdef bint all_positive(array values):
    cdef Py_ssize_t i
    for i in range(len(values)):
        if values.data.as_longlongs[i] <= 0:
            return False
    return True


def count_total(counts):
    """The exact sum of the pieces' counts (a sequence of numbers, or an array('q') of
    positive ones) rounded once to a float: the total that 0.6.3's scores, log(count) -
    log(total), divide by. An array's is summed in C in 128 bits, with no int object
    per count."""
    cdef Py_ssize_t i, n = len(counts)
    cdef const long long* values
    cdef unsigned long long low = 0, high = 0, v
    if type(counts) is array and counts.typecode == "q" and all_positive(counts):
        values = (<array>counts).data.as_longlongs
        for i in range(n):              # (the exact total: 128 bits, as two words)
            v = <unsigned long long>values[i]
            low += v
            high += low < v
        return float((<object>high << 64) | low)
    return float(sum(counts))


cdef object float64_buffer(object values):
    """values as a contiguous float64 buffer: an array('d') as it is (the tokenizer's),
    anything else through numpy.ascontiguousarray."""
    if type(values) is array and values.typecode == "d":
        return values
    return np.ascontiguousarray(values, dtype=np.float64)


cdef object int32_buffer(object values):
    """values as a contiguous int32 buffer: a range of step 1 (the tokenizer's ids) made
    into an array('i') here, anything else through numpy.ascontiguousarray."""
    cdef array out
    cdef int* view
    cdef Py_ssize_t i, n
    cdef int first
    if type(values) is range and values.step == 1 and -2147483648 <= values.start <= values.stop <= 2147483648:
        n = len(values)
        first = values.start
        out = clone(array("i"), n, False)
        view = out.data.as_ints
        for i in range(n):
            view[i] = first + <int>i
        return out
    return np.ascontiguousarray(values, dtype=np.int32)


cdef inline Py_ssize_t segment_one(const Model* M, int mode, const uint8_t* x, Py_ssize_t n, uint64_t seed_word,
                                   uint64_t key_word, Workspace* ws) noexcept nogil:
    """One segmentation of a text (chunked) into ws.result: the draw of (seed_word,
    key_word) unless mode is Viterbi. Returns the number of pieces, or -1 when out of
    memory."""
    cdef Rng rng
    if mode != MODE_VITERBI:
        rng_init(&rng, seed_word, key_word, RNG_XOSHIRO)
    return segment(M, mode, x, n, True, False, &rng, ws, NULL, NULL)


cdef class Lattice:
    """A vocabulary compiled for segmentation.

    ``Lattice(pieces, logprobs, ids)``: piece ``pieces[i]`` (bytes) has
    log-probability ``logprobs[i]`` and id ``ids[i]``. All 256 single bytes
    must be pieces. Immutable after construction; safe to share across threads.
    """
    def __cinit__(self):
        memset(&self.ac, 0, sizeof(Automaton))

    def __init__(self, pieces, logprobs, ids):
        # (The tokenizer gives an array('d') and a range, read here without numpy.)
        cdef const double[::1] lv
        cdef const int32_t[::1] iv
        cdef Py_ssize_t i, n
        cdef double low = 0.0
        pieces = list(pieces)
        logp = float64_buffer(logprobs)
        id_arr = int32_buffer(ids)
        lv = logp
        iv = id_arr
        n = len(pieces)
        if not (n == lv.shape[0] == iv.shape[0]):
            raise ValueError("pieces, logprobs and ids must have the same length")
        for i in range(n):
            if not (isfinite(lv[i]) and lv[i] <= 0):
                raise ValueError("log-probabilities must be finite and <= 0")
            low = lv[i] if i == 0 or lv[i] < low else low
        for i in range(n):
            if iv[i] < 0:
                raise ValueError("ids must be >= 0")
        automaton_build(&self.ac, pieces)   # (it checks the pieces too)
        self.logp = logp
        self.logp_ptr = &self.logp[0]
        self.ids = id_arr
        self.num_pieces = n
        self.max_len = self.ac.max_len
        self.min_logprob = low
        self._weights = {}
        self._weight_arrays = []
        self._last_alpha = NAN
        self._last_address = None
        self._id_shift = iv[0]
        for i in range(n):
            if iv[i] != iv[0] + i:
                self._id_shift = -1
                break
        self._id_ptrs = <PyObject**>malloc(max(1, len(pieces)) * sizeof(PyObject*))
        if self._id_ptrs == NULL:
            raise MemoryError()
        self._id_objs = id_objects(&iv[0], n, self._id_ptrs)

    def __dealloc__(self):
        if self._ac_owner is None:
            automaton_free(&self.ac)
        free(self._id_ptrs)

    def with_logprobs(self, logprobs):
        """The same pieces and ids with other log-probabilities, without building the
        automaton again (the new lattice shares this one's)."""
        logp = np.ascontiguousarray(logprobs, dtype=np.float64)
        if logp.shape != (self.num_pieces,):
            raise ValueError(f"need {self.num_pieces} log-probabilities, not {logp.shape}")
        if not np.all(np.isfinite(logp)) or np.any(logp > 0):
            raise ValueError("log-probabilities must be finite and <= 0")
        cdef Lattice out = Lattice.__new__(Lattice)
        cdef Py_ssize_t i
        out.ac = self.ac
        out._ac_owner = self if self._ac_owner is None else self._ac_owner
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
    cdef int mode_of(self, double alpha, int sampler) except -1:
        """The kernel for alpha and the sampler asked for (MODE_EXACT, MODE_EXACT_LOG or
        MODE_LEGACY_V1): Viterbi when alpha < 0; the log-space twin when alpha is too
        large for linear-space weights."""
        if alpha < 0:
            return MODE_VITERBI
        check_alpha(alpha)
        if sampler == MODE_LEGACY_V1:
            return MODE_LEGACY_V1
        if sampler == MODE_EXACT_LOG or alpha * self.min_logprob < -LINEAR_LIMIT:
            return MODE_EXACT_LOG
        if sampler != MODE_EXACT:
            raise ValueError(f"unknown sampler {sampler}")
        return MODE_EXACT

    cdef object weights_for(self, double alpha, int mode):
        """exp(alpha * logp) for linear-space sampling, else None. The first 16 alphas are
        cached for the object's lifetime and returned as their address (an int); later ones
        are computed per call and returned as an array the caller holds while it works.
        numpy's exp, as BytePiece 0.6.3 and every earlier version computed the weights (on
        x86-64 with AVX-512 it differs from the C library's in the last bit now and then,
        and the draws are kept bit for bit)."""
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

    cdef void fill_model(self, Model* M, double alpha, object q):
        """The kernels' view of this lattice for alpha; q is weights_for's answer."""
        cdef double[::1] view
        M.ac = self.ac
        M.logp = self.logp_ptr
        M.alpha = alpha
        M.cuts = NULL
        M.banned = NULL
        if q is None:
            M.q = self.logp_ptr
        elif type(q) is int:
            M.q = <const double*><size_t>q
        else:
            view = q
            M.q = &view[0]

    cdef int constrain(self, Model* M, object cuts, object banned, Py_ssize_t n) except -1:
        """Point the model at the constraints of a text of n bytes (uint8 arrays of n + 1
        entries, or None; the caller keeps them alive while the model is used)."""
        cdef const uint8_t[::1] view
        if cuts is not None:
            view = cuts
            if view.shape[0] != n + 1:
                raise ValueError(f"the required boundaries need {n + 1} entries, not {view.shape[0]}")
            M.cuts = &view[0]
        if banned is not None:
            view = banned
            if view.shape[0] != n + 1:
                raise ValueError(f"the forbidden boundaries need {n + 1} entries, not {view.shape[0]}")
            M.banned = &view[0]
        return 0

    # -- one text ------------------------------------------------------------
    def viterbi(self, object data, int bos=-1, int eos=-1):
        """Ids of the Viterbi segmentation of data (bytes, or a str read as UTF-8), with
        the ids bos and eos around them when they are >= 0."""
        return self.encode_one(data, -1.0, MODE_VITERBI, 0, 0, bos, eos)

    def sample(self, object data, double alpha, uint64_t seed_word, uint64_t key_word, int bos=-1,
               int eos=-1, *, int sampler=MODE_EXACT):
        """Ids of the draw of (seed_word, key_word) from exp(alpha * score) / Z (Viterbi
        when alpha < 0), with bos and eos as in viterbi."""
        return self.encode_one(data, alpha, self.mode_of(alpha, sampler), seed_word, key_word, bos, eos)

    cdef object encode_one(self, object data, double alpha, int mode, uint64_t seed_word,
                           uint64_t key_word, int bos, int eos):
        """Ids of one segmentation of data (bytes, or a str read as UTF-8), with <bos> and
        <eos> when they are >= 0: the per-call path of viterbi, sample and DrawStream. A
        non-ASCII str is encoded into a buffer of the call's own (text_utf8)."""
        cdef object keep = None
        cdef Model M
        cdef Workspace ws
        cdef char stack[STACK_WORKSPACE]
        cdef uint8_t text_stack[TEXT_STACK]
        cdef uint8_t* text_heap = NULL
        cdef Py_ssize_t n, m
        cdef const uint8_t* x
        if mode == MODE_EXACT and alpha == self._last_alpha:    # a sampling loop's usual case
            M.ac = self.ac
            M.logp = self.logp_ptr
            M.alpha = alpha
            M.q = self._last_q
            M.cuts = NULL
            M.banned = NULL
        else:
            keep = self.weights_for(alpha, mode)
            self.fill_model(&M, alpha, keep)
        ws_init(&ws, stack, sizeof(stack))
        try:
            x = text_utf8(data, text_stack, TEXT_STACK, &text_heap, &n)
            with nogil:
                m = segment_one(&M, mode, x, n, seed_word, key_word, &ws)
            if m < 0:
                raise MemoryError()
            return ids_to_objs(ws.result, m, self._id_ptrs, bos, eos, False)
        finally:
            ws_free(&ws)
            free(text_heap)

    def pieces(self, bytes data, double alpha=-1.0, uint64_t seed_word=0, uint64_t key_word=0, *,
               int sampler=MODE_EXACT):
        """The pieces (bytes) of one segmentation of data: Viterbi when alpha < 0, else the
        draw of (seed_word, key_word)."""
        cdef int mode = self.mode_of(alpha, sampler)
        cdef object keep = self.weights_for(alpha, mode)
        cdef Model M
        cdef Workspace ws
        cdef char stack[STACK_WORKSPACE]
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data), m, i, start, end
        cdef const char* x = PyBytes_AS_STRING(data)
        cdef list out
        cdef object item
        self.fill_model(&M, alpha, keep)
        ws_init(&ws, stack, sizeof(stack))
        with nogil:
            m = segment_one(&M, mode, <const uint8_t*>x, n, seed_word, key_word, &ws)
        try:
            if m < 0:
                raise MemoryError()
            out = PyList_New(m)
            start = 0
            for i in range(m):
                end = start + self.ac.pieces[ws.result[i]].len
                item = PyBytes_FromStringAndSize(x + start, end - start)
                Py_INCREF(item)
                PyList_SET_ITEM(out, i, item)
                start = end
            return out
        finally:
            ws_free(&ws)

    def segment(self, const uint8_t[::1] data, *, double alpha=-1.0, uint64_t seed_word=0,
                uint64_t key_word=0, int sampler=MODE_EXACT, bint chunked=True, cuts=None, banned=None):
        """(piece indices, end positions) of one segmentation of data, as int32 arrays;
        chunked=False segments data as one chunk (newlines do not cut it). cuts and
        banned (uint8 arrays of len(data) + 1, or None) are the positions where a piece
        boundary is required or forbidden; ValueError("no segmentation ...") when they
        leave none."""
        cdef int mode = self.mode_of(alpha, sampler)
        cdef object keep = self.weights_for(alpha, mode)
        cdef Model M
        cdef Rng rng
        cdef Workspace ws
        cdef Py_ssize_t n = data.shape[0], m
        vals = np.empty(n, dtype=np.int32)
        ends = np.empty(n, dtype=np.int32)
        cdef int32_t[::1] vv = vals, ee = ends
        self.fill_model(&M, alpha, keep)
        self.constrain(&M, cuts, banned, n)
        if mode == MODE_LEGACY_V1 and (M.cuts != NULL or M.banned != NULL):
            raise ValueError("the legacy sampler takes no constraints")
        rng_init(&rng, seed_word, key_word, RNG_XOSHIRO)
        memset(&ws, 0, sizeof(Workspace))
        with nogil:
            m = segment(&M, mode, &data[0] if n else NULL, n, chunked, False, &rng, &ws,
                        &vv[0] if n else NULL, &ee[0] if n else NULL)
            ws_free(&ws)
        if m == NO_SEGMENTATION:
            raise ValueError("no segmentation satisfies the constraints")
        if m < 0:
            raise MemoryError()
        return vals[:m], ends[:m]

    def __reduce__(self):
        raise TypeError("Lattice does not pickle; pickle the Tokenizer that owns it")


cdef class DrawStream:
    """A tokenizer's unkeyed draws: its stream word, and how many calls have drawn from
    it. Call k samples as a call keyed by the word k would, with the stream word as
    seed word. Call numbers are taken with the GIL held, so threads sharing a stream
    never take the same one; a forked or unpickled copy sets a word of its own."""
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

    def sample(self, object data, double alpha, int bos=-1, int eos=-1):
        """lattice.sample(data, alpha, word, call number): the per-call path of unkeyed
        sampling, without Python objects for the key."""
        return self.encode_next(data, alpha, bos, eos)

    cdef object encode_next(self, object data, double alpha, int bos, int eos):
        """The ids of the next unkeyed draw of data (DrawStream.sample)."""
        cdef uint64_t call = self.calls
        self.calls += 1
        return self.lattice.encode_one(data, alpha, self.lattice.mode_of(alpha, MODE_EXACT), self.word, call,
                                       bos, eos)
