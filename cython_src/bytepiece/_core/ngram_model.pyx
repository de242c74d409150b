# The n-gram model and BytePiece 0.6.3's tagging (stage 2 of 0.6.3's training, and of
# the "tagged" EM seed): conditional log-probabilities log c(k) - log c(k[:-1]) of the
# n-grams kept, a Viterbi over the states "byte i is the (j+1)-th byte of its piece",
# and the counts of the pieces that tagging cuts.
#
# Why it is built this way: the tagging Viterbi reproduces 0.6.3's numpy version
# decision by decision: the same scores and additions, the first maximum wins, and the
# same behaviour when a whole column is -inf. The model's tables (one per n-gram length,
# keyed by the packed n-gram, like the count tables) are prefetched a few bytes ahead,
# since a corpus pass reads them at random.
#
# The module reads top down: the model's tables (ProbTable, pt_*); the NgramModel class,
# which holds the log-probabilities and builds them from counts; finish_ngrams, the
# stage's end; then, as module-level functions over a model, its byte format and the
# tagging Viterbi (tag_chunk) with its map step count_pieces_block: the class stays
# about the model.

from cpython.bytes cimport PyBytes_AS_STRING
from libc.math cimport INFINITY, log
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from .common.bigmem cimport big_alloc, big_free
from .common.byteviews cimport ByteViews, views_free, views_of
from .common.hashing cimport hash_bytes, splitmix64_mix
from .common.prefetch cimport prefetch
from .ngram_candidates cimport level_candidates
from .ngram_table cimport PF_AHEAD, PF_MASK, PF_RING, C_MAX_ORDER, CountTable, NgramTable, ct_get
from .piece_table cimport PieceTable

import struct

from .ngram_candidates import ReadyResult, select_candidates
from .ngram_table import read_level

cdef uint64_t EMPTY_KEY = 0xFFFFFFFFFFFFFFFFULL


cdef struct PSlotD:
    uint64_t key      # EMPTY_KEY = free slot
    double val


cdef struct ProbTable:
    # key and value side by side: one cache line per probe. A packed n-gram of
    # length < 8 never equals EMPTY_KEY; the one 8-gram that does (eight 0xFF
    # bytes) is kept aside in ones_val.
    PSlotD* slots
    size_t cap
    double ones_val   # -inf when absent


cdef inline size_t pt_slot(const ProbTable* t, uint64_t key) noexcept nogil:
    return splitmix64_mix(key) & (t.cap - 1)


cdef inline double pt_get_at(const ProbTable* t, uint64_t key, size_t i) noexcept nogil:
    cdef size_t mask = t.cap - 1
    if key == EMPTY_KEY:
        return t.ones_val
    while t.slots[i].key != EMPTY_KEY:
        if t.slots[i].key == key:
            return t.slots[i].val
        i = (i + 1) & mask
    return -INFINITY


cdef inline double pt_get(const ProbTable* t, uint64_t key) noexcept nogil:
    if t.cap == 0:
        return -INFINITY
    return pt_get_at(t, key, pt_slot(t, key))


cdef int pt_init(ProbTable* t, size_t n) noexcept nogil:
    """Room for n n-grams, every slot free; -1: out of memory."""
    cdef size_t c = 16
    cdef size_t i
    while c * 2 < n * 3:      # load factor at most 2/3
        c <<= 1
    t.slots = <PSlotD*>big_alloc(c * sizeof(PSlotD), 0)
    if t.slots == NULL:
        return -1
    for i in range(c):
        t.slots[i].key = EMPTY_KEY
    t.cap = c
    t.ones_val = -INFINITY
    return 0


cdef void pt_put(ProbTable* t, uint64_t key, double v) noexcept nogil:
    """Stores an n-gram known to be absent (pt_init made room for it)."""
    cdef size_t mask = t.cap - 1
    cdef size_t i = splitmix64_mix(key) & mask
    if key == EMPTY_KEY:
        t.ones_val = v
        return
    while t.slots[i].key != EMPTY_KEY:
        i = (i + 1) & mask
    t.slots[i].key = key
    t.slots[i].val = v


cdef class NgramModel:
    """The n-gram log-probabilities used by the tagging Viterbi.

    Built from a (merged) NgramTable: missing single bytes get count 1, n-grams
    of length >= 2 rarer than min_count are dropped, and an n-gram k scores
    log c(k) - log c(k[:-1]).
    """
    cdef readonly int order
    cdef double uni[256]
    cdef ProbTable tabs[C_MAX_ORDER + 1]
    cdef readonly Py_ssize_t size
    # True when the suffix of every n-gram present is present too (always so for a
    # model made of counts: a suffix is counted at least as often, and the budget
    # drops by a count threshold); the tagging Viterbi then stops looking up
    # longer n-grams ending at a byte after the first miss.
    cdef readonly bint suffix_closed

    def __cinit__(self):
        memset(self.tabs, 0, sizeof(self.tabs))
        self.suffix_closed = False

    cdef bint _closed_level(self, int L) noexcept nogil:
        """Whether the suffix of every n-gram of length L is present."""
        cdef size_t i
        cdef const ProbTable* t = &self.tabs[L]
        for i in range(t.cap):
            if t.slots[i].key != EMPTY_KEY and pt_get(&self.tabs[L - 1], t.slots[i].key >> 8) == -INFINITY:
                return False
        if t.ones_val != -INFINITY and pt_get(&self.tabs[L - 1], EMPTY_KEY >> 8) == -INFINITY:
            return False
        return True

    def _closed_level_py(self, int L):
        cdef bint ok
        with nogil:
            ok = self._closed_level(L)
        return ok

    cdef void _check_closed(self) noexcept nogil:
        cdef int L
        for L in range(3, self.order + 1):
            if not self._closed_level(L):
                self.suffix_closed = False
                return
        self.suffix_closed = True

    def __dealloc__(self):
        cdef int L
        for L in range(C_MAX_ORDER + 1):
            big_free(self.tabs[L].slots)

    @staticmethod
    def from_table(NgramTable table, int64_t min_count):
        cdef NgramModel m = NgramModel()
        cdef int L
        table.expand()
        uni = m._init_unigrams(table)
        for L in range(2, table.order + 1):
            m.size += m._build_level(table, L, min_count, uni)
        m._check_closed()
        return m

    def _init_unigrams(self, NgramTable table):
        """Order and single-byte log-probabilities (missing bytes get count 1); returns the
        single-byte counts so adjusted (the prefix counts of the 2-grams)."""
        import numpy as np
        cdef int64_t total = table.total
        cdef int b
        uni = np.empty(256, dtype=np.int64)
        cdef int64_t[::1] u = uni
        self.order = table.order
        self.size = 256
        for b in range(256):
            u[b] = table.uni[b]
            if u[b] == 0:
                u[b] = 1
                total += 1
        for b in range(256):
            self.uni[b] = log(<double>u[b]) - log(<double>total)
        return uni

    def _build_level(self, NgramTable table, int L, int64_t min_count, const int64_t[::1] uni):
        """The n-grams of length L (the counts of lengths L and L - 1 must be final). Levels
        are independent: finish_ngrams builds them on several threads."""
        cdef Py_ssize_t rc
        with nogil:
            rc = self._fill_level(table, L, min_count, &uni[0])
        if rc < 0:
            raise MemoryError()
        return rc

    cdef Py_ssize_t _fill_level(self, NgramTable table, int L, int64_t min_count,
                                const int64_t* uni) noexcept nogil:
        """Returns the number of n-grams added (-1: out of memory)."""
        cdef const CountTable* ct = &table.tabs[L]
        cdef size_t i, n = 0
        cdef int64_t c, cp
        cdef Py_ssize_t added = 0
        cdef uint64_t key, mask = (1ULL << (8 * (L - 1))) - 1
        for i in range(ct.cap):
            if ct.slots[i].count >= min_count and ct.slots[i].count > 0:
                n += 1
        if pt_init(&self.tabs[L], n) < 0:
            return -1
        for i in range(ct.cap):
            c = ct.slots[i].count
            if c >= min_count and c > 0:
                key = ct.slots[i].key
                if L == 2:
                    cp = uni[key & 255]
                else:
                    cp = ct_get(&table.tabs[L - 1], key & mask)
                if cp <= 0:
                    continue     # prefix lost to the memory budget
                pt_put(&self.tabs[L], key, log(<double>c) - log(<double>cp))
                added += 1
        return added

    def logprob(self, bytes ngram):
        """log P(last byte | the others), -inf when the n-gram was dropped."""
        cdef Py_ssize_t n = len(ngram), t
        cdef uint64_t key = 0
        if n == 1:
            return self.uni[ngram[0]]
        if n < 1 or n > self.order:
            return -INFINITY
        for t in range(n):
            key |= (<uint64_t>ngram[t]) << (8 * t)
        return pt_get(&self.tabs[n], key)

    # -- bytes (the format itself: model_bytes and model_from_bytes, below the class) --
    def to_bytes(self):
        """A self-contained byte string of the model; NgramModel.from_bytes rebuilds it."""
        return model_bytes(self)

    @staticmethod
    def from_bytes(data):
        """The model that to_bytes (or pickling) wrote."""
        return model_from_bytes(data)

    def __reduce__(self):
        return (NgramModel.from_bytes, (self.to_bytes(),))

    def tokenize(self, bytes chunk, bint ensure_unicode=True):
        """The pieces of one chunk by the tagging Viterbi (0.6.3's Trainer._tokenize)."""
        cdef Py_ssize_t n = len(chunk), m, i
        cdef const uint8_t* x = <const uint8_t*>PyBytes_AS_STRING(chunk)
        cdef double* buf = <double*>malloc((3 * self.order + 1) * sizeof(double))
        cdef uint8_t* routes = <uint8_t*>malloc(n * self.order + 1)
        cdef int32_t* starts = <int32_t*>malloc((n + 2) * sizeof(int32_t))
        try:
            if buf == NULL or routes == NULL or starts == NULL:
                raise MemoryError()
            with nogil:
                m = tag_chunk(self, x, n, ensure_unicode, buf, buf + self.order, buf + 2 * self.order,
                              routes, starts)
            return [chunk[starts[i]:starts[i + 1]] for i in range(m)]
        finally:
            free(buf); free(routes); free(starts)


def finish_ngrams(NgramTable table, int64_t min_count, Py_ssize_t limit=0, int threads=1,
                  bint release=False):
    """The end of the n-gram stage in one go: (NgramModel.from_table(table, min_count),
    table.candidates(min_count, limit)) -- the same model and candidates (none when
    limit <= 0) -- with the table left expanded or, with release=True, emptied (its
    len() still answers; nothing else does).

    A compact table is expanded one length at a time, longest first; as soon as the
    counts of lengths L and L - 1 are final, the model's n-grams of length L (and the
    candidates of that length) are built on a helper thread (threads > 1) while this
    thread expands the shorter lengths. The levels are independent, so the result
    does not depend on threads. With release=True the counts of length L are freed
    as soon as the levels L and L + 1 are built, so the full table never coexists with
    the model (the peak of the stage drops by about the size of the model)."""
    from concurrent.futures import ThreadPoolExecutor
    cdef NgramModel m = NgramModel()
    cdef int L, rc, order = table.order
    table.check_usable()
    uni = m._init_unigrams(table)
    # (no closures here: a closure cycle would keep the big table alive until a collection)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    results = []
    pending = {}
    try:
        if table.compact:
            for L in range(order, 2, -1):
                with nogil:
                    rc = table._expand_level(L)
                if rc < 0:
                    raise MemoryError()
                # lengths L and L - 1 are final now
                pending[L] = _run_level(pool, m, table, L, min_count, uni, limit)
                results.append(pending[L])
                if release and L + 1 in pending:
                    pending.pop(L + 1).result()     # level L + 2 is done too: L + 1 is unused
                    table.release_level(L + 1)
            table.compact = False
            results.append(_run_level(pool, m, table, 2, min_count, uni, limit))
        else:
            for L in range(order, 1, -1):
                results.append(_run_level(pool, m, table, L, min_count, uni, limit))
        parts = []
        for fut in results:
            added, cands = fut.result()
            m.size += added
            if cands is not None:
                parts.append(cands)
        del results, pending
        if release:
            for L in range(order, 1, -1):
                if table.tabs[L].cap:
                    table.release_level(L)
            table.released = True
        if pool is not None:
            closed = all(list(pool.map(m._closed_level_py, range(3, order + 1))))
        else:
            closed = all([m._closed_level_py(L) for L in range(3, order + 1)])
        m.suffix_closed = closed
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return m, select_candidates(parts, limit)


def _level(NgramModel m, NgramTable table, int L, int64_t min_count, uni, Py_ssize_t limit):
    added = m._build_level(table, L, min_count, uni)
    return added, (level_candidates(table, L, min_count, limit) if limit > 0 else None)


def _run_level(pool, NgramModel m, NgramTable table, int L, int64_t min_count, uni, Py_ssize_t limit):
    if pool is None:
        return ReadyResult(_level(m, table, L, min_count, uni, limit))
    return pool.submit(_level, m, table, L, min_count, uni, limit)


# ---------------------------------------------------------------------------
# The byte format of a model (to_bytes, from_bytes, pickling): module-level functions
# over a model. A header "<8sq" (BPNGMOD1, order), the 256 single-byte
# log-probabilities (<f8), then each length 2..order as read_level reads it (values <f8).

cdef bytes model_bytes(NgramModel model):
    import numpy as np
    cdef list parts = [struct.pack("<8sq", b"BPNGMOD1", model.order),
                       np.asarray(<double[:256]>model.uni).astype("<f8").tobytes()]
    cdef int L
    for L in range(2, model.order + 1):
        keys, vals = level_arrays(model, L)
        parts.append(struct.pack("<q", len(keys)))
        parts.append(keys.astype("<u8").tobytes())
        parts.append(vals.astype("<f8").tobytes())
    return b"".join(parts)


cdef tuple level_arrays(NgramModel model, int L):
    """(keys, values) of the n-grams of length L, in slot order (numpy arrays)."""
    import numpy as np
    cdef const ProbTable* t = &model.tabs[L]
    cdef size_t i, n = 0
    # (counted, then copied out, as ngram_candidates.level_candidates does for a count
    # table: alike by shape, over other slots and another test)
    for i in range(t.cap):
        if t.slots[i].key != EMPTY_KEY:
            n += 1
    if t.ones_val != -INFINITY:
        n += 1
    keys = np.empty(n, dtype=np.uint64)
    vals = np.empty(n, dtype=np.float64)
    cdef uint64_t[::1] kv = keys
    cdef double[::1] vv = vals
    n = 0
    for i in range(t.cap):
        if t.slots[i].key != EMPTY_KEY:
            kv[n] = t.slots[i].key
            vv[n] = t.slots[i].val
            n += 1
    if t.ones_val != -INFINITY:
        kv[n] = EMPTY_KEY
        vv[n] = t.ones_val
    return keys, vals


cdef NgramModel model_from_bytes(data):
    """The model model_bytes wrote (NgramModel.from_bytes)."""
    import numpy as np
    data = bytes(data)
    magic, order = struct.unpack_from("<8sq", data, 0)
    if magic != b"BPNGMOD1":
        raise ValueError("not a serialised NgramModel")
    cdef NgramModel model = NgramModel()
    cdef Py_ssize_t off = 16, n, i
    cdef int L
    cdef uint64_t[::1] kv
    cdef double[::1] vv
    model.order = order
    uni = np.frombuffer(data, dtype="<f8", count=256, offset=off)
    off += 256 * 8
    for i in range(256):
        model.uni[i] = uni[i]
    model.size = 256
    for L in range(2, order + 1):
        kv, vv, off = read_level(data, off, "<f8")
        n = kv.shape[0]
        if pt_init(&model.tabs[L], n) < 0:
            raise MemoryError()
        for i in range(n):
            pt_put(&model.tabs[L], kv[i], vv[i])
        model.size += n
    model._check_closed()
    return model


# ---------------------------------------------------------------------------
# The tagging Viterbi: module-level functions over a model (the class holds the
# model; these read it), and count_pieces_block, the map step that counts what they cut.

cdef inline void start_probes(NgramModel model, const uint8_t* x, Py_ssize_t j, uint64_t* keys,
                              size_t* slot) noexcept nogil:
    """Keys and home slots of the n-grams of lengths 2..order ending at byte j, and
    a prefetch of each slot."""
    cdef int b, top = model.order - 1 if j >= model.order - 1 else <int>j
    cdef uint64_t key = x[j]
    for b in range(1, top + 1):
        key = (key << 8) | x[j - b]
        keys[b] = key
        slot[b] = pt_slot(&model.tabs[b + 1], key)
        prefetch(&model.tabs[b + 1].slots[slot[b]])

cdef Py_ssize_t tag_chunk(NgramModel model, const uint8_t* x, Py_ssize_t n, bint ensure_unicode,
                          double* prev, double* cur, double* node, uint8_t* routes,
                          int32_t* starts) noexcept nogil:
    """Piece start positions of one chunk into starts (followed by n); returns how many
    pieces. routes holds n * order bytes."""
    cdef int order = model.order, a, b, best_a, st, top
    cdef Py_ssize_t i, m
    cdef uint64_t key
    cdef uint64_t keys[PF_RING][C_MAX_ORDER]
    cdef size_t slot[PF_RING][C_MAX_ORDER]
    cdef bint closed = model.suffix_closed
    cdef double s, best
    cdef double* tmp
    if n == 0:
        return 0
    if closed:
        for i in range(min(n, PF_AHEAD)):
            start_probes(model, x, i, keys[i & PF_MASK], slot[i & PF_MASK])
    for i in range(n):
        # node scores of byte i in each state: log P(x[i] | the b bytes before it)
        node[0] = model.uni[x[i]]
        top = order - 1 if i >= order - 1 else <int>i
        key = x[i]
        if closed:
            # the n-grams ending at i, shortest first; none is present after
            # the first that is missing, so stop there. The probes of byte
            # i + PF_AHEAD were started (prefetched) PF_AHEAD bytes ago.
            if i + PF_AHEAD < n:
                start_probes(model, x, i + PF_AHEAD, keys[(i + PF_AHEAD) & PF_MASK],
                             slot[(i + PF_AHEAD) & PF_MASK])
            b = 1
            while b <= top:
                node[b] = pt_get_at(&model.tabs[b + 1], keys[i & PF_MASK][b], slot[i & PF_MASK][b])
                if node[b] == -INFINITY:
                    break
                b += 1
            while b < order:
                node[b] = -INFINITY
                b += 1
        else:
            for b in range(1, order):
                if b > top:
                    node[b] = -INFINITY
                    continue
                key = (key << 8) | x[i - b]
                node[b] = pt_get(&model.tabs[b + 1], key)
        if ensure_unicode and x[i] >= 128 and x[i] < 192:
            node[0] = -INFINITY
        if i == 0:
            for b in range(order):
                cur[b] = node[b]
            continue
        tmp = prev; prev = cur; cur = tmp
        # state 0: from any state
        best = -INFINITY; best_a = 0
        for a in range(order):
            s = prev[a] + node[0]
            if s > best:
                best = s; best_a = a
        cur[0] = best
        routes[(i - 1) * order] = <uint8_t>best_a
        for b in range(1, order):
            best = -INFINITY; best_a = 0
            s = prev[b - 1] + node[b]
            if s > best:
                best = s; best_a = b - 1
            if b == order - 1:
                s = prev[b] + node[b]
                if s > best:
                    best = s; best_a = b
            cur[b] = best
            routes[(i - 1) * order + b] = <uint8_t>best_a
    # final state: first maximum
    best = cur[0]; st = 0
    for b in range(1, order):
        if cur[b] > best:
            best = cur[b]; st = b
    # backtrack; record starts (state 0) from the end
    m = 0
    i = n - 1
    while True:
        if st == 0:
            starts[m] = <int32_t>i
            m += 1
        if i == 0:
            break
        st = routes[(i - 1) * order + st]
        i -= 1
    # reverse in place
    for a in range(m // 2):
        b = starts[a]; starts[a] = starts[m - 1 - a]; starts[m - 1 - a] = b
    starts[m] = <int32_t>n
    return m


def count_pieces_block(list chunks, NgramModel model, bint ensure_unicode=True,
                       int max_pair_length=0):
    """Map step: segment each chunk with the tagging Viterbi and count the pieces.

    Returns a PieceTable. With max_pair_length > 0, also returns a second
    PieceTable counting the concatenations of adjacent pieces no longer than
    that (candidate longer pieces for the EM stage).
    """
    cdef Py_ssize_t m = len(chunks), i, longest = 0, k, np_, s, e, e2
    cdef ByteViews views
    cdef const uint8_t** ptrs
    cdef Py_ssize_t* lens
    cdef double* buf = NULL
    cdef uint8_t* routes = NULL
    cdef int32_t* starts = NULL
    cdef int order = model.order, rc = 0
    cdef PieceTable table = PieceTable()
    cdef PieceTable pairs = PieceTable()
    cdef const uint8_t* x
    memset(&views, 0, sizeof(ByteViews))
    try:
        views_of(chunks, &views)
        ptrs, lens, longest = views.ptrs, views.lens, views.longest
        buf = <double*>malloc((3 * order + 1) * sizeof(double))
        routes = <uint8_t*>malloc(longest * order + 1)
        starts = <int32_t*>malloc((longest + 2) * sizeof(int32_t))
        if buf == NULL or routes == NULL or starts == NULL:
            raise MemoryError()
        with nogil:
            for i in range(m):
                x = ptrs[i]
                np_ = tag_chunk(model, x, lens[i], ensure_unicode, buf, buf + order, buf + 2 * order,
                                routes, starts)
                for k in range(np_):
                    s = starts[k]
                    e = starts[k + 1]
                    rc = table.add_raw(x + s, e - s, 1, hash_bytes(x + s, e - s))
                    if rc < 0:
                        break
                    if max_pair_length > 0 and k + 1 < np_:
                        e2 = starts[k + 2]
                        if e2 - s <= max_pair_length:
                            rc = pairs.add_raw(x + s, e2 - s, 1, hash_bytes(x + s, e2 - s))
                            if rc < 0:
                                break
                if rc < 0:
                    break
        if rc < 0:
            raise MemoryError()
    finally:
        views_free(&views); free(buf); free(routes); free(starts)
    if max_pair_length > 0:
        return table, pairs
    return table
