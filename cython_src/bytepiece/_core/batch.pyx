# Batches: many texts segmented without the GIL, into Python id lists on several threads
# (encode_lists) or into flat numpy arrays (encode_flat).
#
# Why it is built this way: the GIL is held only to gather the texts (text.pyx) and to
# build the id lists. In encode_lists the helper threads never take it: they claim
# chunks of texts with an atomic counter and segment them into one shared buffer,
# flagging each chunk when it is done; only the calling thread builds lists, chunk by
# chunk in text order, between chunks of its own, so list building overlaps the
# helpers' segmenting instead of queueing with them for the GIL. The lists stay hidden
# from the cycle collector until the batch is complete (id_lists.pyx). Samples are
# keyed per text, so the result never depends on the thread count.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

from .common.atomics cimport fetch_add, load_acquire, store_release, yield_thread
from .common.rng cimport RNG_XOSHIRO, Rng, rng_init
from .id_lists cimport ids_to_objs, track_lists
from .lattice cimport Lattice
from .segment cimport MODE_EXACT, MODE_VITERBI, Model, Workspace, segment, ws_free
from .text cimport (
    TextIn,
    check_nfc_texts,
    gather_texts,
    nfc_apply,
    nfc_is_inert,
    normalise_left,
    raise_unencodable,
    text_in_bytes,
    utf8_size_bound,
    utf8_total,
)

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF

from .._numpy import np


cdef extern from "Python.h":
    void PyObject_GC_UnTrack(object o)


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


cdef struct FlatOut:
    uint16_t* out16      # ids, when they fit in 16 bits ...
    int32_t* out32       # ... or else
    int32_t* ends        # end positions (NULL: not wanted)
    int64_t* rows        # count + 1 row offsets
    const int32_t* ids   # id of each piece index
    int bos, eos


cdef Py_ssize_t run_texts_flat(const Model* M, int mode, TextIn* texts, Py_ssize_t count, bint chunked,
                               const uint64_t* seeds, const uint64_t* keys,
                               uint8_t* scratch, Workspace* ws, FlatOut* o) noexcept nogil:
    """Segment the gathered texts into flat arrays (encode_many_flat); returns as run_texts."""
    cdef Py_ssize_t i, j, n, m, off = 0
    cdef const uint8_t* x
    cdef int32_t* ends
    cdef Rng rng
    o.rows[0] = 0
    for i in range(count):
        x = text_in_bytes(&texts[i], scratch, &n)
        if x == NULL:
            return i
        if mode != MODE_VITERBI:
            rng_init(&rng, seeds[i], keys[i], RNG_XOSHIRO)
        ends = NULL if o.ends == NULL else o.ends + off + (1 if o.bos >= 0 else 0)
        m = segment(M, mode, x, n, chunked, False, &rng, ws, NULL, ends)
        if m < 0:
            return -2
        if o.bos >= 0:
            if o.out16 != NULL: o.out16[off] = <uint16_t>o.bos
            else: o.out32[off] = o.bos
            if o.ends != NULL: o.ends[off] = 0
            off += 1
        if o.out16 != NULL:
            for j in range(m):
                o.out16[off + j] = <uint16_t>o.ids[ws.result[j]]
        else:
            for j in range(m):
                o.out32[off + j] = o.ids[ws.result[j]]
        off += m
        if o.eos >= 0:
            if o.out16 != NULL: o.out16[off] = <uint16_t>o.eos
            else: o.out32[off] = o.eos
            if o.ends != NULL: o.ends[off] = <int32_t>n
            off += 1
        o.rows[i + 1] = off
    return -1


cdef enum:
    CHUNK_TEXTS = 32      # texts per chunk (a chunk is claimed, and its lists built, at once)
    NOUT_UNENCODABLE = -1
    NOUT_NO_MEMORY = -2
    NOUT_NFC = -3         # may change under NFC: left to the calling thread


cdef struct BatchState:
    Model M
    int mode
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
    cdef Py_ssize_t c = fetch_add(&b.next_chunk, 1), i, lo, hi, n, m
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
            rng_init(&rng, b.seeds[i], b.keys[i], RNG_XOSHIRO)
        m = segment(&b.M, b.mode, x, n, b.chunked, False, &rng, ws, b.vals + b.first[i], NULL)
        b.nout[i] = m if m >= 0 else NOUT_NO_MEMORY
    store_release(&b.done[c], 1)
    return c


cdef class _ListBatch:
    """The state of one encode_lists call, kept alive by the calling thread and
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
    nfc_apply(t, job.datas[i], job.held)
    scratch = <uint8_t*>malloc(utf8_size_bound(t) + 1)
    if scratch == NULL:
        raise MemoryError()
    try:
        x = text_in_bytes(t, scratch, &n)
        if x == NULL:
            raise_unencodable(job.datas, i, form)
        if b.mode != MODE_VITERBI:
            rng_init(&rng, b.seeds[i], b.keys[i], RNG_XOSHIRO)
        with nogil:
            m = segment(&b.M, b.mode, x, n, b.chunked, False, &rng, ws, NULL, NULL)
        if m < 0:
            raise MemoryError()
        return ids_to_objs(ws.result, m, lat._id_ptrs, bos, eos, True)
    finally:
        free(scratch)


def encode_lists(Lattice lattice, list datas, *, double alpha=-1.0, const uint64_t[::1] seed_words=None,
                 const uint64_t[::1] key_words=None, int sampler=MODE_EXACT, int bos=-1, int eos=-1,
                 object form=None, object convert=None, bint chunked=True, int threads=1, object submit=None):
    """The id lists of the texts `datas` (bytes or str; see gather_texts for `form` and
    `convert`), on this thread and threads - 1 helpers: Viterbi when alpha < 0, else the
    draw of (seed_words[i], key_words[i]) for text i. `submit(task, helpers)` must run task()
    soon on that many other threads (without waiting for it).

    The texts are gathered with the GIL first; then this thread and the helpers
    segment chunks of them without it (see batch_chunk), and this thread alone builds
    the id lists, in text order, each time it has finished a chunk of its own, and
    once every chunk is claimed, as the helpers finish theirs."""
    cdef int mode = lattice.mode_of(alpha, sampler)
    cdef object keep = lattice.weights_for(alpha, mode)
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
    job.lattice = lattice
    if mode != MODE_VITERBI:
        key_word_arrays(seed_words, key_words, count, &b.seeds, &b.keys)
        job.seed_ref = seed_words
        job.key_ref = key_words
    b.mode = mode
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
    lattice.fill_model(&b.M, alpha, keep)
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
                    while load_acquire(&b.done[built]) == 0:
                        yield_thread()
            while built < b.nchunks and load_acquire(&b.done[built]):
                lo = built * b.chunk
                hi = lo + b.chunk if lo + b.chunk < count else count
                for i in range(lo, hi):
                    r = b.nout[i]
                    if r >= 0:
                        lst = ids_to_objs(b.vals + b.first[i], r, lattice._id_ptrs, bos, eos, True)
                    elif r == NOUT_NFC:
                        lst = batch_one_text(lattice, job, i, form, &ws, bos, eos)
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
        c = fetch_add(&b.next_chunk, b.nchunks + 1)
        with nogil:
            for i in range(built, c if c < b.nchunks else b.nchunks):
                while load_acquire(&b.done[i]) == 0:
                    yield_thread()
        raise
    finally:
        ws_free(&ws)
        free(scratch)
    track_lists(result)
    return result


def encode_flat(Lattice lattice, list datas, *, double alpha=-1.0, const uint64_t[::1] seed_words=None,
                const uint64_t[::1] key_words=None, int sampler=MODE_EXACT, int bos=-1, int eos=-1,
                bint small=False, bint with_ends=False, object form=None, object convert=None,
                bint chunked=True):
    """encode_lists without Python lists, on this thread: (ids, row offsets, ends).

    ids is one flat numpy array (uint16 when `small`, else int32), row offsets an int64
    array of len(datas) + 1 (text i is ids[offsets[i]:offsets[i + 1]]), and ends, when
    `with_ends`, the int32 end byte position of every token within its text (0 for bos,
    the text's length for eos), else None. The loop runs with the GIL released. Texts,
    `form` and `convert` as in encode_lists."""
    cdef int mode = lattice.mode_of(alpha, sampler)
    cdef object keep = lattice.weights_for(alpha, mode)
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
        lattice.fill_model(&M, alpha, keep)
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
        o.ids = &lattice.ids[0]
        o.bos = bos
        o.eos = eos
        with nogil:
            status = run_texts_flat(&M, mode, texts, count, chunked, seeds, keys, scratch, &ws, &o)
        if status == -2:
            raise MemoryError()
        if status >= 0:
            raise_unencodable(datas, status, form)
        off = offsets[count]
        return ids[:off], offsets, (ends[:off] if with_ends else None)
    finally:
        ws_free(&ws)
        free(texts); free(scratch)
