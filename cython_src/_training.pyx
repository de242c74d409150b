# The trainer's hot loops: byte n-gram counting, the n-gram tagging Viterbi and
# piece counting (BytePiece's "new word discovery", DESIGN.md "Training").
#
# Why it is built this way:
# - Everything is a map/merge over blocks of chunks: `count_ngrams_block`
#   turns a list of chunks into an NgramTable, `count_pieces_block` turns a
#   list of chunks into a PieceTable; tables merge associatively (`merge`) and
#   serialise to bytes (`to_bytes` / `from_bytes`, also used by pickle), so any
#   engine (multiprocessing here, a cluster later) can run the map and reduce.
# - An n-gram of length L <= 8 fits in a uint64 (little-endian packed bytes),
#   so each length has its own open-addressing table of (key, count) pairs: no
#   Python objects, no key storage beyond 16 bytes a slot. Single bytes are a
#   plain array of 256 counts.
# - Pieces have any length, so the piece table hashes the bytes (64-bit) and
#   keeps the bytes themselves in an arena; slots compare hash, length and
#   bytes, so collisions cannot merge two pieces.
# - A memory budget caps the n-gram tables: when the entries of lengths >= 2
#   outgrow it, the rarest ones are dropped (the smallest count threshold that
#   brings them under half the budget). Until that happens the counts are
#   exact; `pruned_below` records the largest threshold ever used (0 = exact).
# - The tagging Viterbi reproduces BytePiece 0.6.3's numpy version decision by
#   decision: same scores (log c(k) - log c(k[:-1])), same additions, the first
#   maximum wins, and the same behaviour when a whole column is -inf.

cimport cython
from _bigmem cimport big_alloc, big_free, big_realloc
from _byteviews cimport ByteViews, views_free, views_of
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.math cimport INFINITY, log
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, qsort, realloc
from cpython.dict cimport PyDict_SetItem
from libc.string cimport memcmp, memcpy, memset


from _prefetch cimport prefetch

import struct
import sys

cdef bint LITTLE_ENDIAN = sys.byteorder == "little"

MAX_ORDER = 8
cdef enum:
    C_MAX_ORDER = 8

cdef uint64_t EMPTY_KEY = 0xFFFFFFFFFFFFFFFFULL
cdef enum:
    PF_AHEAD = 12      # the tagging Viterbi prefetches the n-grams of the byte this far ahead
    PF_RING = 16       # a power of two > PF_AHEAD
    PF_MASK = PF_RING - 1
    EXPAND_AHEAD = 16  # copies from one table into another fetch the target slot this many entries ahead


cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t hash_bytes(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = 0x9E3779B97F4A7C15ULL ^ (<uint64_t>n * 0xFF51AFD7ED558CCDULL)
    cdef uint64_t w
    cdef Py_ssize_t i = 0, t
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        h = mix64(h ^ w) + 0x632BE59BD9B4E019ULL
        i += 8
    if i < n:
        w = 0
        for t in range(n - i):
            w |= (<uint64_t>p[i + t]) << (8 * t)
        h = mix64(h ^ w ^ 0xA0761D6478BD642FULL)
    return mix64(h)


# ---------------------------------------------------------------------------
# Counts keyed by uint64 (one table per n-gram length). count == 0 marks an
# empty slot (stored counts are always >= 1).

cdef struct CSlot:
    uint64_t key
    int64_t count


cdef struct CountTable:
    CSlot* slots      # key and count side by side: one cache line per probe
    size_t cap        # a power of two, or 0
    size_t size


cdef int ct_init(CountTable* t, size_t cap) noexcept nogil:
    cdef size_t c = 16
    while c < cap:
        c <<= 1
    t.slots = <CSlot*>big_alloc(c * sizeof(CSlot), 1)
    if t.slots == NULL:
        t.cap = 0; t.size = 0
        return -1
    t.cap = c
    t.size = 0
    return 0


cdef void ct_free(CountTable* t) noexcept nogil:
    big_free(t.slots)
    t.slots = NULL; t.cap = 0; t.size = 0


cdef inline void ct_put_new(CountTable* t, uint64_t key, int64_t count) noexcept nogil:
    # key known to be absent and room known to exist
    cdef size_t mask = t.cap - 1
    cdef size_t i = mix64(key) & mask
    while t.slots[i].count != 0:
        i = (i + 1) & mask
    t.slots[i].key = key
    t.slots[i].count = count
    t.size += 1


cdef int ct_resize(CountTable* t, size_t cap) noexcept nogil:
    cdef CountTable n
    cdef size_t i
    if ct_init(&n, cap) < 0:
        return -1
    for i in range(t.cap):
        if t.slots[i].count != 0:
            ct_put_new(&n, t.slots[i].key, t.slots[i].count)
    ct_free(t)
    t[0] = n
    return 0


cdef inline int ct_add(CountTable* t, uint64_t key, int64_t count) noexcept nogil:
    cdef size_t mask, i
    if (t.size + 1) * 10 > t.cap * 7:
        if ct_resize(t, t.cap * 2 if t.cap else 16) < 0:
            return -1
    mask = t.cap - 1
    i = mix64(key) & mask
    while t.slots[i].count != 0:
        if t.slots[i].key == key:
            t.slots[i].count += count
            return 0
        i = (i + 1) & mask
    t.slots[i].key = key
    t.slots[i].count = count
    t.size += 1
    return 0


cdef inline int64_t ct_get(const CountTable* t, uint64_t key) noexcept nogil:
    cdef size_t mask, i
    if t.cap == 0:
        return 0
    mask = t.cap - 1
    i = mix64(key) & mask
    while t.slots[i].count != 0:
        if t.slots[i].key == key:
            return t.slots[i].count
        i = (i + 1) & mask
    return 0


cdef int ct_drop_below(CountTable* t, int64_t threshold) noexcept nogil:
    """Drops entries with count < threshold (rebuilding the table, shrunk to fit)."""
    cdef CountTable n
    cdef size_t i, keep = 0
    for i in range(t.cap):
        if t.slots[i].count >= threshold:
            keep += 1
    if ct_init(&n, keep * 2 + 16) < 0:
        return -1
    for i in range(t.cap):
        if t.slots[i].count >= threshold:
            ct_put_new(&n, t.slots[i].key, t.slots[i].count)
    ct_free(t)
    t[0] = n
    return 0


# ---------------------------------------------------------------------------

cdef class NgramTable:
    """Counts of every byte n-gram of length 0..order that lies inside a chunk.

    >>> t = NgramTable(3); t.count([b"abab"]); t.get(b"ab")
    2

    ``budget`` (entries of length >= 2, 0 = unbounded) bounds the memory: see
    the module comment. Tables with the same order and budget merge.

    While counting, a table is *compact* (unless made with compact=False): at
    each position only the longest n-gram is counted -- the order-gram, or the
    tail of the chunk when fewer bytes are left -- one hash update per byte
    instead of order - 1. Every shorter n-gram occurrence is the prefix of
    exactly one of those, so the full counts follow by adding each table into
    the next shorter one, longest first (`_expand`, done once, when counts are
    read, serialised with to_bytes, or merged with a full table). Compact tables
    merge by plain addition. The memory budget keeps its meaning: while
    (order - 1) x compact entries fits the budget the full table fits too and
    nothing would be dropped; past that the table is expanded and counts on
    the full way, so results never depend on the representation.
    """
    cdef readonly int order
    cdef readonly int64_t total          # count of the empty n-gram = number of bytes
    cdef readonly int64_t budget
    cdef readonly int64_t pruned_below   # largest prune threshold used (0 = exact)
    cdef int64_t uni[256]
    cdef CountTable tabs[C_MAX_ORDER + 1]   # index = length (2..order used)
    cdef readonly bint compact
    # finish_ngrams(release=True) frees the counts as it goes; only len() answers then
    cdef readonly bint released
    cdef Py_ssize_t released_len

    def __cinit__(self, int order, int64_t budget=0, bint compact=True):
        if order < 1 or order > C_MAX_ORDER:
            raise ValueError(f"order must be between 1 and {C_MAX_ORDER}, not {order}")
        self.order = order
        self.budget = budget if budget > 0 else 0
        self.total = 0
        self.pruned_below = 0
        self.compact = compact and order > 2
        memset(self.uni, 0, sizeof(self.uni))
        memset(self.tabs, 0, sizeof(self.tabs))

    cdef int _expand(self) noexcept nogil:
        """Compact -> full counts: add each length's counts into the prefixes one byte
        shorter, longest first."""
        cdef int L
        if not self.compact:
            return 0
        for L in range(self.order, 2, -1):
            if self._expand_level(L) < 0:
                return -1
        self.compact = False
        return 0

    cdef int _expand_level(self, int L) noexcept nogil:
        """One step of _expand: add the counts of length L into their prefixes. After the
        steps order..L the counts of lengths >= L - 1 are final (finish_ngrams starts
        on them while the shorter lengths are still being expanded)."""
        cdef size_t i, j
        cdef uint64_t mask = (1ULL << (8 * (L - 1))) - 1
        cdef CountTable* t = &self.tabs[L]
        cdef CountTable* into = &self.tabs[L - 1]
        for i in range(t.cap):
            # (the slot of a prefix a few entries ahead is fetched while this one is added:
            # `into` is far larger than the caches)
            j = i + EXPAND_AHEAD
            if j < t.cap and t.slots[j].count and into.cap:
                prefetch(&into.slots[mix64(t.slots[j].key & mask) & (into.cap - 1)])
            if t.slots[i].count:
                if ct_add(into, t.slots[i].key & mask, t.slots[i].count) < 0:
                    return -1
        return 0

    cdef int expand(self) except -1:
        self.check_usable()
        if self._expand() < 0:
            raise MemoryError()
        return 0

    cdef int check_usable(self) except -1:
        if self.released:
            raise ValueError("this NgramTable's counts were released by finish_ngrams(release=True)")
        return 0

    cdef void release_level(self, int L) noexcept nogil:
        self.released_len += self.tabs[L].size
        ct_free(&self.tabs[L])

    def __dealloc__(self):
        cdef int L
        for L in range(C_MAX_ORDER + 1):
            ct_free(&self.tabs[L])

    cdef size_t _entries(self) noexcept nogil:
        cdef size_t s = 0
        cdef int L
        for L in range(2, self.order + 1):
            s += self.tabs[L].size
        return s

    def __len__(self):
        """Distinct n-grams of lengths 1..order."""
        if self.released:
            return self.released_len + sum(1 for b in range(256) if self.uni[b])
        self.expand()
        return self._entries() + sum(1 for b in range(256) if self.uni[b])

    @property
    def nbytes(self):
        """Memory held by the hash tables, in bytes."""
        cdef size_t s = 0
        cdef int L
        for L in range(2, self.order + 1):
            s += self.tabs[L].cap * 16
        return s

    cdef int _enforce_budget(self) noexcept nogil:
        """If over budget, drop the rarest entries so that at most budget/2 remain."""
        cdef size_t n = self._entries(), target, above
        cdef int64_t* hist
        cdef int64_t threshold, c
        cdef int L
        cdef size_t i
        cdef int HMAX = 1 << 16
        if self.budget == 0:
            return 0
        if self.compact:
            if <size_t>(self.order - 1) * n <= <size_t>self.budget:
                return 0        # the full table has at most (order - 1) x n entries
            if self._expand() < 0:
                return -1
            n = self._entries()
        if n <= <size_t>self.budget:
            return 0
        target = <size_t>(self.budget // 2)
        hist = <int64_t*>calloc(HMAX + 1, sizeof(int64_t))
        if hist == NULL:
            return -1
        for L in range(2, self.order + 1):
            for i in range(self.tabs[L].cap):
                c = self.tabs[L].slots[i].count
                if c:
                    hist[c if c < HMAX else HMAX] += 1
        # smallest threshold t such that entries with count >= t fit the target
        above = n
        threshold = 1
        while threshold < HMAX and above > target:
            above -= hist[threshold]
            threshold += 1
        free(hist)
        for L in range(2, self.order + 1):
            if ct_drop_below(&self.tabs[L], threshold) < 0:
                return -1
        if threshold > self.pruned_below:
            self.pruned_below = threshold
        return 0

    cdef int _count_chunk(self, const uint8_t* x, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t i, j
        cdef int L, top
        cdef uint64_t key
        if self.compact:
            return self._count_chunk_compact(x, n)
        self.total += n
        for i in range(n):
            # prefetch the slots of the n-grams starting PF_AHEAD bytes ahead (a hint:
            # a table that grows meanwhile only makes it useless)
            j = i + PF_AHEAD
            if j < n:
                key = x[j]
                top = self.order if j + self.order <= n else <int>(n - j)
                for L in range(2, top + 1):
                    key |= (<uint64_t>x[j + L - 1]) << (8 * (L - 1))
                    if self.tabs[L].cap:
                        prefetch(&self.tabs[L].slots[mix64(key) & (self.tabs[L].cap - 1)])
            self.uni[x[i]] += 1
            key = x[i]
            top = self.order if i + self.order <= n else <int>(n - i)
            for L in range(2, top + 1):
                key |= (<uint64_t>x[i + L - 1]) << (8 * (L - 1))
                if ct_add(&self.tabs[L], key, 1) < 0:
                    return -1
        return 0

    cdef int _count_chunk_compact(self, const uint8_t* x, Py_ssize_t n) noexcept nogil:
        """The longest n-gram at each position (see the class comment)."""
        cdef Py_ssize_t i, j
        cdef int L, t, order = self.order
        cdef uint64_t key
        cdef uint64_t mask = 0xFFFFFFFFFFFFFFFFULL if order == 8 else (1ULL << (8 * order)) - 1
        cdef CountTable* full = &self.tabs[order]
        self.total += n
        for i in range(n):
            self.uni[x[i]] += 1
        for i in range(n - order + 1 if n >= order else 0):
            j = i + PF_AHEAD
            if LITTLE_ENDIAN and j + 8 <= n and full.cap:
                memcpy(&key, x + j, 8)
                prefetch(&full.slots[mix64(key & mask) & (full.cap - 1)])
            if LITTLE_ENDIAN and i + 8 <= n:
                memcpy(&key, x + i, 8)      # the packing used everywhere here
                key &= mask
            else:
                key = 0
                for t in range(order):
                    key |= (<uint64_t>x[i + t]) << (8 * t)
            if ct_add(full, key, 1) < 0:
                return -1
        # the tails: fewer than order bytes left
        for i in range(n - order + 1 if n >= order else 0, n - 1):
            L = <int>(n - i)
            key = 0
            for t in range(L):
                key |= (<uint64_t>x[i + t]) << (8 * t)
            if ct_add(&self.tabs[L], key, 1) < 0:
                return -1
        return 0

    def count(self, list chunks):
        """Adds the n-grams of each chunk (bytes); the GIL is released while counting."""
        cdef Py_ssize_t m = len(chunks), i
        cdef ByteViews views
        cdef const uint8_t** ptrs
        cdef Py_ssize_t* lens
        cdef int rc = 0
        memset(&views, 0, sizeof(ByteViews))
        try:
            self.check_usable()
            views_of(chunks, &views)
            ptrs, lens = views.ptrs, views.lens
            with nogil:
                for i in range(m):
                    rc = self._count_chunk(ptrs[i], lens[i])
                    if rc < 0:
                        break
                    if self.budget and (i & 63) == 63:
                        rc = self._enforce_budget()
                        if rc < 0:
                            break
                if rc == 0:
                    rc = self._enforce_budget()
            if rc < 0:
                raise MemoryError()
        finally:
            views_free(&views)

    def merge(self, NgramTable other):
        """Adds other's counts into this table (returns self)."""
        cdef int L, rc = 0
        cdef size_t i, j
        cdef int b
        self.check_usable()
        other.check_usable()
        if other.order != self.order:
            raise ValueError(f"cannot merge n-gram tables of order {self.order} and {other.order}")
        if self.compact != other.compact:     # compact tables add up; otherwise both full
            self.expand()
            other.expand()
        with nogil:
            self.total += other.total
            for b in range(256):
                self.uni[b] += other.uni[b]
            for L in range(2, self.order + 1):
                if self.tabs[L].cap == 0 and other.tabs[L].cap:
                    rc = ct_init(&self.tabs[L], other.tabs[L].size * 2)
                    if rc < 0:
                        break
                for i in range(other.tabs[L].cap):
                    j = i + EXPAND_AHEAD           # (as in _expand_level)
                    if j < other.tabs[L].cap and other.tabs[L].slots[j].count and self.tabs[L].cap:
                        prefetch(&self.tabs[L].slots[mix64(other.tabs[L].slots[j].key)
                                                              & (self.tabs[L].cap - 1)])
                    if other.tabs[L].slots[i].count:
                        rc = ct_add(&self.tabs[L], other.tabs[L].slots[i].key, other.tabs[L].slots[i].count)
                        if rc < 0:
                            break
                if rc < 0:
                    break
            if rc == 0:
                rc = self._enforce_budget()
        if rc < 0:
            raise MemoryError()
        if other.pruned_below > self.pruned_below:
            self.pruned_below = other.pruned_below
        return self

    def get(self, bytes ngram):
        """The count of one n-gram (b"" gives the number of bytes)."""
        cdef Py_ssize_t n = len(ngram), t
        cdef uint64_t key = 0
        if n == 0:
            return self.total
        if n > self.order:
            return 0
        if n == 1:
            return self.uni[ngram[0]]
        self.expand()
        for t in range(n):
            key |= (<uint64_t>ngram[t]) << (8 * t)
        return ct_get(&self.tabs[n], key)

    def items(self, int length):
        """(ngram bytes, count) pairs of one length, sorted by bytes (for tests and tools)."""
        cdef list out = []
        cdef size_t i
        cdef int t
        cdef uint64_t k
        if length == 0:
            return [(b"", self.total)]
        if length == 1:
            return [(bytes([b]), self.uni[b]) for b in range(256) if self.uni[b]]
        if length < 0 or length > self.order:
            return []
        self.expand()
        for i in range(self.tabs[length].cap):
            if self.tabs[length].slots[i].count:
                k = self.tabs[length].slots[i].key
                out.append((bytes([(k >> (8 * t)) & 255 for t in range(length)]),
                            self.tabs[length].slots[i].count))
        out.sort()
        return out

    def candidates(self, int64_t min_count, Py_ssize_t limit):
        """Candidate pieces for EM: among the n-grams of length >= 2 seen at least
        min_count times that are whole UTF-8 characters, the `limit` ones with the
        highest count x length (ties: shorter, then smaller bytes... by packed key).
        Returns (list of bytes, int64 numpy array of counts)."""
        return ngram_candidates(self, min_count, limit)      # (one thread, the table kept)

    # -- serialisation -------------------------------------------------------
    def to_bytes(self):
        """A self-contained byte string of the full counts; NgramTable.from_bytes rebuilds
        the table."""
        self.expand()
        return self._serialise(b"BPNGRAM1")

    def __reduce__(self):
        # pickling (between processes) keeps a compact table compact: half the bytes
        return (NgramTable.from_bytes, (self._serialise(b"BPNGRAMC" if self.compact else b"BPNGRAM1"),))

    def _serialise(self, bytes magic):
        self.check_usable()
        cdef list parts = [struct.pack("<8sqqqq", magic, self.order, self.total, self.budget,
                                       self.pruned_below)]
        cdef int L
        cdef size_t i, j
        cdef int64_t[::1] unis
        import numpy as np
        parts.append(np.asarray(<int64_t[:256]>self.uni).astype("<i8").tobytes())
        for L in range(2, self.order + 1):
            keys = np.empty(self.tabs[L].size, dtype=np.uint64)
            counts = np.empty(self.tabs[L].size, dtype=np.int64)
            j = 0
            kv = keys
            cv = counts
            self._dump(L, kv, cv)
            parts.append(struct.pack("<q", self.tabs[L].size))
            parts.append(keys.astype("<u8").tobytes())
            parts.append(counts.astype("<i8").tobytes())
        return b"".join(parts)

    cdef void _dump(self, int L, uint64_t[::1] keys, int64_t[::1] counts):
        cdef size_t i, j = 0
        for i in range(self.tabs[L].cap):
            if self.tabs[L].slots[i].count:
                keys[j] = self.tabs[L].slots[i].key
                counts[j] = self.tabs[L].slots[i].count
                j += 1

    @staticmethod
    def from_bytes(data):
        import numpy as np
        data = bytes(data)
        magic, order, total, budget, pruned = struct.unpack_from("<8sqqqq", data, 0)
        if magic != b"BPNGRAM1" and magic != b"BPNGRAMC":
            raise ValueError("not a serialised NgramTable")
        cdef NgramTable t = NgramTable(order, budget, magic == b"BPNGRAMC")
        cdef Py_ssize_t off = 40, n, i
        cdef int L
        t.total = total
        t.pruned_below = pruned
        uni = np.frombuffer(data, dtype="<i8", count=256, offset=off)
        off += 256 * 8
        for i in range(256):
            t.uni[i] = uni[i]
        cdef uint64_t[::1] kv
        cdef int64_t[::1] cv
        for L in range(2, order + 1):
            n = struct.unpack_from("<q", data, off)[0]
            off += 8
            kv = np.frombuffer(data, dtype="<u8", count=n, offset=off).astype(np.uint64)
            off += 8 * n
            cv = np.frombuffer(data, dtype="<i8", count=n, offset=off).astype(np.int64)
            off += 8 * n
            if ct_init(&t.tabs[L], <size_t>(n * 2)) < 0:
                raise MemoryError()
            for i in range(n):
                ct_put_new(&t.tabs[L], kv[i], cv[i])
        return t


cdef inline bint whole_chars(uint64_t k, int L) noexcept nogil:
    """Whether the packed n-gram k of length L is a sequence of whole UTF-8 characters."""
    cdef int t, need = 0
    cdef uint8_t b
    for t in range(L):
        b = (k >> (8 * t)) & 255
        if need:
            if b < 0x80 or b >= 0xC0:
                return False
            need -= 1
        elif b < 0x80:
            pass
        elif b >= 0xC2 and b < 0xE0:
            need = 1
        elif b >= 0xE0 and b < 0xF0:
            need = 2
        elif b >= 0xF0 and b < 0xF5:
            need = 3
        else:
            return False
    return need == 0


cdef tuple level_candidates(NgramTable table, int L, int64_t min_count, Py_ssize_t limit=0):
    """(L, keys, counts): the n-grams of length L of a full table seen at least min_count
    times that are whole UTF-8 characters (numpy arrays, in slot order). With limit > 0,
    only those counted at least as often as the limit-th most frequent of them (a
    superset of this length's share of any overall top `limit`: the arrays stay small)."""
    import numpy as np
    cdef const CountTable* t = &table.tabs[L]
    cdef size_t i, n = 0
    with nogil:
        for i in range(t.cap):
            if t.slots[i].count >= min_count and t.slots[i].count > 0 and whole_chars(t.slots[i].key, L):
                n += 1
    keys = np.empty(n, dtype=np.uint64)
    counts = np.empty(n, dtype=np.int64)
    cdef uint64_t[::1] kv = keys
    cdef int64_t[::1] cv = counts
    n = 0
    with nogil:
        for i in range(t.cap):
            if t.slots[i].count >= min_count and t.slots[i].count > 0 and whole_chars(t.slots[i].key, L):
                kv[n] = t.slots[i].key
                cv[n] = t.slots[i].count
                n += 1
    if limit > 0 and <Py_ssize_t>n > limit:
        kth = n - limit
        keep = counts >= np.partition(counts, kth)[kth]
        keys, counts = keys[keep], counts[keep]
    return L, keys, counts


def select_candidates(list parts, Py_ssize_t limit, bint bytes_order=False):
    """The best `limit` of the (L, keys, counts) parts of level_candidates: highest
    count x length first, then shorter, then smaller packed key (a total order, so the
    result does not depend on the order of the parts or of the entries). Only the
    entries scoring at least the limit-th best score are sorted. With bytes_order, the
    same candidates come in bytes order instead (the EM's order)."""
    import numpy as np
    cdef int L, t
    cdef uint64_t k
    cdef uint8_t buf[8]
    if limit <= 0 or not parts:
        return [], np.zeros(0, dtype=np.int64)
    keys_a = np.concatenate([p[1] for p in parts])
    counts_a = np.concatenate([p[2] for p in parts])
    lens_a = np.concatenate([np.full(len(p[1]), p[0], dtype=np.int64) for p in parts])
    score = counts_a * lens_a
    if len(score) > limit:
        kth = len(score) - limit
        floor = np.partition(score, kth)[kth]      # the limit-th highest score
        idx = np.flatnonzero(score >= floor)
        order = idx[np.lexsort((keys_a[idx], lens_a[idx], -score[idx]))][:limit]
    else:
        order = np.lexsort((keys_a, lens_a, -score))
    if bytes_order:
        # (a key packs byte t at bits 8t: byte-swapped, the first byte leads; zeros pad
        # a shorter key, so equal swapped keys are ordered by length, the prefix first)
        order = order[np.lexsort((lens_a[order], keys_a[order].byteswap()))]
    out = []
    for k, L in zip(keys_a[order].tolist(), lens_a[order].tolist()):
        for t in range(L):
            buf[t] = (k >> (8 * t)) & 255
        out.append(PyBytes_FromStringAndSize(<char*>buf, L))
    return out, counts_a[order]


def count_ngrams_block(list chunks, int order, int64_t budget=0, bint compact=True):
    """Map step: the NgramTable of a block of chunks (list of bytes)."""
    cdef NgramTable t = NgramTable(order, budget, compact)
    t.count(chunks)
    return t


# ---------------------------------------------------------------------------
# Conditional log-probabilities log P(last byte | previous bytes), as 0.6.3's
# prune_ngrams computes them.

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
    return mix64(key) & (t.cap - 1)


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

    cdef int _alloc_nogil(self, int L, size_t n) noexcept nogil:
        cdef size_t c = 16
        cdef size_t i
        while c * 2 < n * 3:      # load factor at most 2/3
            c <<= 1
        self.tabs[L].slots = <PSlotD*>big_alloc(c * sizeof(PSlotD), 0)
        if self.tabs[L].slots == NULL:
            return -1
        for i in range(c):
            self.tabs[L].slots[i].key = EMPTY_KEY
        self.tabs[L].cap = c
        self.tabs[L].ones_val = -INFINITY
        return 0

    cdef int _alloc(self, int L, size_t n) except -1:
        if self._alloc_nogil(L, n) < 0:
            raise MemoryError()
        return 0

    cdef void _put(self, int L, uint64_t key, double v) noexcept nogil:
        cdef size_t mask = self.tabs[L].cap - 1
        cdef size_t i = mix64(key) & mask
        if key == EMPTY_KEY:
            self.tabs[L].ones_val = v
            return
        while self.tabs[L].slots[i].key != EMPTY_KEY:
            i = (i + 1) & mask
        self.tabs[L].slots[i].key = key
        self.tabs[L].slots[i].val = v

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
        if self._alloc_nogil(L, n) < 0:
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
                self._put(L, key, log(<double>c) - log(<double>cp))
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

    def to_bytes(self):
        import numpy as np
        cdef list parts = [struct.pack("<8sq", b"BPNGMOD1", self.order),
                           np.asarray(<double[:256]>self.uni).astype("<f8").tobytes()]
        cdef int L
        cdef size_t i
        for L in range(2, self.order + 1):
            keys, vals = self._dump(L)
            parts.append(struct.pack("<q", len(keys)))
            parts.append(keys.astype("<u8").tobytes())
            parts.append(vals.astype("<f8").tobytes())
        return b"".join(parts)

    def _dump(self, int L):
        """(keys, values) of the n-grams of length L, in slot order (numpy arrays)."""
        import numpy as np
        cdef const ProbTable* t = &self.tabs[L]
        cdef size_t i, n = 0
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

    @staticmethod
    def from_bytes(data):
        import numpy as np
        data = bytes(data)
        magic, order = struct.unpack_from("<8sq", data, 0)
        if magic != b"BPNGMOD1":
            raise ValueError("not a serialised NgramModel")
        cdef NgramModel m = NgramModel()
        cdef Py_ssize_t off = 16, n, i
        cdef int L
        cdef uint64_t[::1] kv
        cdef double[::1] vv
        m.order = order
        uni = np.frombuffer(data, dtype="<f8", count=256, offset=off)
        off += 256 * 8
        for i in range(256):
            m.uni[i] = uni[i]
        m.size = 256
        for L in range(2, order + 1):
            n = struct.unpack_from("<q", data, off)[0]
            off += 8
            kv = np.frombuffer(data, dtype="<u8", count=n, offset=off).astype(np.uint64)
            off += 8 * n
            vv = np.frombuffer(data, dtype="<f8", count=n, offset=off).astype(np.float64)
            off += 8 * n
            m._alloc(L, n)
            for i in range(n):
                m._put(L, kv[i], vv[i])
            m.size += n
        m._check_closed()
        return m

    def __reduce__(self):
        return (NgramModel.from_bytes, (self.to_bytes(),))

    # -- the tagging Viterbi ---------------------------------------------------
    cdef inline void _start_probes(self, const uint8_t* x, Py_ssize_t j, uint64_t* keys,
                                   size_t* slot) noexcept nogil:
        """Keys and home slots of the n-grams of lengths 2..order ending at byte j, and
        a prefetch of each slot."""
        cdef int b, top = self.order - 1 if j >= self.order - 1 else <int>j
        cdef uint64_t key = x[j]
        for b in range(1, top + 1):
            key = (key << 8) | x[j - b]
            keys[b] = key
            slot[b] = pt_slot(&self.tabs[b + 1], key)
            prefetch(&self.tabs[b + 1].slots[slot[b]])

    cdef Py_ssize_t _tag(self, const uint8_t* x, Py_ssize_t n, bint ensure_unicode,
                         double* prev, double* cur, double* node, uint8_t* routes,
                         int32_t* starts) noexcept nogil:
        """Piece start positions of one chunk into starts (followed by n); returns how many
        pieces. routes holds n * order bytes."""
        cdef int order = self.order, a, b, best_a, st, top
        cdef Py_ssize_t i, m
        cdef uint64_t key
        cdef uint64_t keys[PF_RING][C_MAX_ORDER]
        cdef size_t slot[PF_RING][C_MAX_ORDER]
        cdef bint closed = self.suffix_closed
        cdef double s, best
        cdef double* tmp
        if n == 0:
            return 0
        if closed:
            for i in range(min(n, PF_AHEAD)):
                self._start_probes(x, i, keys[i & PF_MASK], slot[i & PF_MASK])
        for i in range(n):
            # node scores of byte i in each state: log P(x[i] | the b bytes before it)
            node[0] = self.uni[x[i]]
            top = order - 1 if i >= order - 1 else <int>i
            key = x[i]
            if closed:
                # the n-grams ending at i, shortest first; none is present after
                # the first that is missing, so stop there. The probes of byte
                # i + PF_AHEAD were started (prefetched) PF_AHEAD bytes ago.
                if i + PF_AHEAD < n:
                    self._start_probes(x, i + PF_AHEAD, keys[(i + PF_AHEAD) & PF_MASK],
                                       slot[(i + PF_AHEAD) & PF_MASK])
                b = 1
                while b <= top:
                    node[b] = pt_get_at(&self.tabs[b + 1], keys[i & PF_MASK][b], slot[i & PF_MASK][b])
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
                    node[b] = pt_get(&self.tabs[b + 1], key)
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
                m = self._tag(x, n, ensure_unicode, buf, buf + self.order, buf + 2 * self.order,
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


def ngram_candidates(NgramTable table, int64_t min_count, Py_ssize_t limit, int threads=1,
                     bint release=False, bint bytes_order=False):
    """table.candidates(min_count, limit) -- the same candidates -- without building an
    n-gram model (finish_ngrams's other half): a compact table is expanded one length at
    a time, longest first, and the candidates of each length are picked on a helper
    thread (threads > 1) as soon as its counts are final, while this thread expands the
    shorter lengths. With release=True each length's counts are freed once they are no
    longer needed (the table is then spent, as with finish_ngrams). With bytes_order, the
    candidates come in bytes order (select_candidates)."""
    from concurrent.futures import ThreadPoolExecutor
    cdef int L, rc, order = table.order
    table.check_usable()
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    pending = {}
    try:
        if table.compact:
            pending[order] = _run_candidates(pool, table, order, min_count, limit)
            for L in range(order, 2, -1):
                with nogil:
                    rc = table._expand_level(L)
                if rc < 0:
                    raise MemoryError()
                # length L - 1 is final now; length L is read by nothing else once picked
                pending[L - 1] = _run_candidates(pool, table, L - 1, min_count, limit)
                if release:
                    pending[L] = _Ready(pending[L].result())
                    table.release_level(L)
            table.compact = False
        else:
            for L in range(order, 1, -1):
                pending[L] = _run_candidates(pool, table, L, min_count, limit)
        parts = [pending[L].result() for L in range(order, 1, -1)]
        if release:
            for L in range(order, 1, -1):
                if table.tabs[L].cap:
                    table.release_level(L)
            table.released = True
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return select_candidates(parts, limit, bytes_order)


def _level_candidates(NgramTable table, int L, int64_t min_count, Py_ssize_t limit):
    return level_candidates(table, L, min_count, limit)


def _run_candidates(pool, NgramTable table, int L, int64_t min_count, Py_ssize_t limit):
    if pool is None:
        return _Ready(level_candidates(table, L, min_count, limit))
    return pool.submit(_level_candidates, table, L, min_count, limit)


def _level(NgramModel m, NgramTable table, int L, int64_t min_count, uni, Py_ssize_t limit):
    added = m._build_level(table, L, min_count, uni)
    return added, (level_candidates(table, L, min_count, limit) if limit > 0 else None)


def _run_level(pool, NgramModel m, NgramTable table, int L, int64_t min_count, uni, Py_ssize_t limit):
    if pool is None:
        return _Ready(_level(m, table, L, min_count, uni, limit))
    return pool.submit(_level, m, table, L, min_count, uni, limit)


class _Ready:
    """A finished result with the interface of a Future."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


# ---------------------------------------------------------------------------
# Counts keyed by arbitrary bytes.

cdef struct PSlot:
    uint64_t hash
    int64_t count      # 0 = empty
    int64_t offset     # into the arena
    int64_t length


cdef inline void put_le64(uint8_t* q, int64_t v) noexcept nogil:
    cdef int t
    cdef uint64_t u = <uint64_t>v
    for t in range(8):
        q[t] = (u >> (8 * t)) & 255


cdef inline int64_t get_le64(const uint8_t* p) noexcept nogil:
    cdef int t
    cdef uint64_t u = 0
    for t in range(8):
        u |= (<uint64_t>p[t]) << (8 * t)
    return <int64_t>u


cdef struct PieceRef:
    uint64_t head     # the first 8 bytes, big-endian, zero-padded: most comparisons end here
    const uint8_t* p
    int64_t length
    int64_t count


cdef inline uint64_t head_of(const uint8_t* p, int64_t n) noexcept nogil:
    cdef uint64_t h = 0
    cdef int t
    for t in range(8):
        h = (h << 8) | (p[t] if t < n else 0)
    return h


cdef int cmp_piece_ref(const void* a, const void* b) noexcept nogil:
    cdef const PieceRef* x = <const PieceRef*>a
    cdef const PieceRef* y = <const PieceRef*>b
    if x.head != y.head:
        return -1 if x.head < y.head else 1
    cdef int64_t n = x.length if x.length < y.length else y.length
    cdef int c = memcmp(x.p, y.p, n) if n > 0 else 0
    if c != 0:
        return c
    return (x.length > y.length) - (x.length < y.length)


cdef class PieceTable:
    """Counts of byte strings (pieces). Merges associatively; pickles via to_bytes."""
    cdef PSlot* slots
    cdef size_t cap
    cdef readonly size_t size
    cdef uint8_t* arena
    cdef size_t arena_len
    cdef size_t arena_cap

    def __cinit__(self):
        self.slots = NULL
        self.cap = 0
        self.size = 0
        self.arena = NULL
        self.arena_len = 0
        self.arena_cap = 0

    def __dealloc__(self):
        big_free(self.slots)
        big_free(self.arena)

    def __len__(self):
        return self.size

    cdef int _grow(self) noexcept nogil:
        cdef size_t ncap = self.cap * 2 if self.cap else 1024
        cdef PSlot* ns = <PSlot*>big_alloc(ncap * sizeof(PSlot), 1)
        cdef size_t i, j, mask = ncap - 1
        if ns == NULL:
            return -1
        for i in range(self.cap):
            if self.slots[i].count:
                j = self.slots[i].hash & mask
                while ns[j].count:
                    j = (j + 1) & mask
                ns[j] = self.slots[i]
        big_free(self.slots)
        self.slots = ns
        self.cap = ncap
        return 0

    cdef int add_raw(self, const uint8_t* p, Py_ssize_t n, int64_t count, uint64_t h) noexcept nogil:
        cdef size_t mask, i, need
        cdef uint8_t* na
        if (self.size + 1) * 10 > self.cap * 7:
            if self._grow() < 0:
                return -1
        mask = self.cap - 1
        i = h & mask
        while self.slots[i].count:
            if (self.slots[i].hash == h and self.slots[i].length == n
                    and memcmp(self.arena + self.slots[i].offset, p, n) == 0):
                self.slots[i].count += count
                return 0
            i = (i + 1) & mask
        need = self.arena_len + <size_t>n
        if need > self.arena_cap:
            need = need * 2 if need > 4096 else 8192
            na = <uint8_t*>big_realloc(self.arena, need)
            if na == NULL:
                return -1
            self.arena = na
            self.arena_cap = need
        if n:
            memcpy(self.arena + self.arena_len, p, n)
        self.slots[i].hash = h
        self.slots[i].count = count
        self.slots[i].offset = <int64_t>self.arena_len
        self.slots[i].length = n
        self.arena_len += n
        self.size += 1
        return 0

    def add(self, bytes piece, int64_t count=1):
        cdef Py_ssize_t n = len(piece)
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(piece)
        if count <= 0:
            raise ValueError("counts must be positive")
        if self.add_raw(p, n, count, hash_bytes(p, n)) < 0:
            raise MemoryError()

    def get(self, bytes piece):
        cdef Py_ssize_t n = len(piece)
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(piece)
        cdef uint64_t h = hash_bytes(p, n)
        cdef size_t i
        if self.cap == 0:
            return 0
        i = h & (self.cap - 1)
        while self.slots[i].count:
            if (self.slots[i].hash == h and self.slots[i].length == n
                    and memcmp(self.arena + self.slots[i].offset, p, n) == 0):
                return self.slots[i].count
            i = (i + 1) & (self.cap - 1)
        return 0

    def merge(self, PieceTable other):
        """Adds other's counts into this table (returns self)."""
        cdef size_t i
        cdef int rc = 0
        with nogil:
            for i in range(other.cap):
                if other.slots[i].count:
                    rc = self.add_raw(other.arena + other.slots[i].offset, other.slots[i].length,
                                      other.slots[i].count, other.slots[i].hash)
                    if rc < 0:
                        break
        if rc < 0:
            raise MemoryError()
        return self

    cdef size_t _sorted(self, int64_t min_count, PieceRef** out) noexcept nogil:
        """The entries with count >= min_count, sorted by bytes (as Python sorts bytes),
        into a new array (*out, to free; NULL if out of memory)."""
        cdef size_t i, n = 0
        cdef PieceRef* refs = <PieceRef*>malloc((self.size + 1) * sizeof(PieceRef))
        out[0] = refs
        if refs == NULL:
            return 0
        for i in range(self.cap):
            if self.slots[i].count >= min_count and self.slots[i].count > 0:
                refs[n].p = self.arena + self.slots[i].offset
                refs[n].length = self.slots[i].length
                refs[n].head = head_of(refs[n].p, refs[n].length)
                refs[n].count = self.slots[i].count
                n += 1
        qsort(refs, n, sizeof(PieceRef), cmp_piece_ref)
        return n

    def items(self, int64_t min_count=1):
        """(piece, count) pairs with count >= min_count, sorted by piece bytes."""
        cdef PieceRef* refs
        cdef size_t i, n
        with nogil:
            n = self._sorted(min_count, &refs)
        if refs == NULL:
            raise MemoryError()
        try:
            return [(PyBytes_FromStringAndSize(<char*>refs[i].p, refs[i].length), refs[i].count)
                    for i in range(n)]
        finally:
            free(refs)

    def to_dict(self, int64_t min_count=1):
        """{piece: count} for count >= min_count, in order of piece bytes."""
        cdef PieceRef* refs
        cdef size_t i, n
        cdef dict out = {}
        with nogil:
            n = self._sorted(min_count, &refs)
        if refs == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                PyDict_SetItem(out, PyBytes_FromStringAndSize(<char*>refs[i].p, refs[i].length),
                               refs[i].count)
        finally:
            free(refs)
        return out

    def pieces_and_counts(self):
        """(list of pieces, int64 numpy array of their counts), in no particular order."""
        import numpy as np
        cdef list pieces = []
        counts = np.empty(self.size, dtype=np.int64)
        cdef int64_t[::1] cv = counts
        cdef size_t i, k = 0
        for i in range(self.cap):
            if self.slots[i].count:
                pieces.append(PyBytes_FromStringAndSize(<char*>self.arena + self.slots[i].offset,
                                                        self.slots[i].length))
                cv[k] = self.slots[i].count
                k += 1
        return pieces, counts

    def partition(self, int64_t min_count, int64_t max_length):
        """0.6.3's first pruning cut: (keep, (drop_pieces, drop_counts)). keep is
        {piece: count} of the pieces seen at least min_count times and no longer than
        max_length, and of every single byte, in order of bytes, then the single bytes
        never seen (count 1); the others are drop_pieces (a list of bytes, in no
        particular order) with their counts (int64 numpy array). Only the kept pieces
        are sorted."""
        import numpy as np
        cdef PieceRef* refs
        cdef size_t i, n = 0, ndrop = 0
        cdef dict keep = {}
        cdef list drop = []
        cdef bint seen[256]
        memset(seen, 0, sizeof(seen))
        refs = <PieceRef*>malloc((self.size + 1) * sizeof(PieceRef))
        if refs == NULL:
            raise MemoryError()
        drop_counts = np.empty(self.size, dtype=np.int64)
        cdef int64_t[::1] dc = drop_counts
        try:
            for i in range(self.cap):
                if self.slots[i].count <= 0:
                    continue
                if self.slots[i].length == 1 or (self.slots[i].length <= max_length
                                                 and self.slots[i].count >= min_count):
                    refs[n].p = self.arena + self.slots[i].offset
                    refs[n].length = self.slots[i].length
                    refs[n].head = head_of(refs[n].p, refs[n].length)
                    refs[n].count = self.slots[i].count
                    n += 1
                else:
                    drop.append(PyBytes_FromStringAndSize(<char*>self.arena + self.slots[i].offset,
                                                          self.slots[i].length))
                    dc[ndrop] = self.slots[i].count
                    ndrop += 1
            with nogil:
                qsort(refs, n, sizeof(PieceRef), cmp_piece_ref)
            for i in range(n):
                PyDict_SetItem(keep, PyBytes_FromStringAndSize(<char*>refs[i].p, refs[i].length),
                               refs[i].count)
                if refs[i].length == 1:
                    seen[refs[i].p[0]] = True
        finally:
            free(refs)
        for i in range(256):
            if not seen[i]:
                keep[bytes([i])] = 1
        return keep, (drop, drop_counts[:ndrop])

    def to_bytes(self):
        """BPPIECE1: magic, number of entries, then per entry (count, length) as
        little-endian int64 and the bytes. Written in C (it also carries tables
        between processes)."""
        cdef size_t i, total = 16
        cdef char* out
        cdef uint8_t* q
        for i in range(self.cap):
            if self.slots[i].count:
                total += 16 + <size_t>self.slots[i].length
        result = PyBytes_FromStringAndSize(NULL, total)
        out = PyBytes_AS_STRING(result)
        memcpy(out, b"BPPIECE1", 8)
        q = <uint8_t*>out + 8
        put_le64(q, <int64_t>self.size)
        q += 8
        for i in range(self.cap):
            if self.slots[i].count:
                put_le64(q, self.slots[i].count)
                put_le64(q + 8, self.slots[i].length)
                q += 16
                if self.slots[i].length:
                    memcpy(q, self.arena + self.slots[i].offset, self.slots[i].length)
                q += self.slots[i].length
        return result

    @staticmethod
    def from_bytes(data):
        data = bytes(data)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data), off = 16, i, n
        cdef const uint8_t* base = <const uint8_t*>PyBytes_AS_STRING(data)
        cdef int64_t count, length
        if size < 16 or memcmp(base, b"BPPIECE1", 8) != 0:
            raise ValueError("not a serialised PieceTable")
        n = get_le64(base + 8)
        cdef PieceTable t = PieceTable()
        for i in range(n):
            if off + 16 > size:
                raise ValueError("truncated PieceTable")
            count = get_le64(base + off)
            length = get_le64(base + off + 8)
            off += 16
            if length < 0 or off + length > size:
                raise ValueError("truncated PieceTable")
            if t.add_raw(base + off, length, count, hash_bytes(base + off, length)) < 0:
                raise MemoryError()
            off += length
        return t

    def __reduce__(self):
        return (PieceTable.from_bytes, (self.to_bytes(),))


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
                np_ = model._tag(x, lens[i], ensure_unicode, buf, buf + order, buf + 2 * order,
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



# ---------------------------------------------------------------------------
# The EM sample is the chunks with the smallest keys, a key being the first 8 bytes
# (little-endian) of the chunk's BLAKE2b digest of size 8 -- hashlib.blake2b(chunk,
# digest_size=8) -- written here (RFC 7693) so that the keys of a block are computed
# in one loop without the GIL.

cdef uint64_t B2B_IV[8]
B2B_IV[:] = [0x6A09E667F3BCC908ULL, 0xBB67AE8584CAA73BULL, 0x3C6EF372FE94F82BULL,
             0xA54FF53A5F1D36F1ULL, 0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL,
             0x1F83D9ABFB41BD6BULL, 0x5BE0CD19137E2179ULL]

cdef uint8_t B2B_SIGMA[12][16]
B2B_SIGMA[:] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
]


cdef inline uint64_t rotr64(uint64_t x, int n) noexcept nogil:
    return (x >> n) | (x << (64 - n))


cdef inline void b2b_mix(uint64_t* v, int a, int b, int c, int d, uint64_t x, uint64_t y) noexcept nogil:
    v[a] = v[a] + v[b] + x
    v[d] = rotr64(v[d] ^ v[a], 32)
    v[c] = v[c] + v[d]
    v[b] = rotr64(v[b] ^ v[c], 24)
    v[a] = v[a] + v[b] + y
    v[d] = rotr64(v[d] ^ v[a], 16)
    v[c] = v[c] + v[d]
    v[b] = rotr64(v[b] ^ v[c], 63)


cdef void b2b_compress(uint64_t* h, const uint8_t* block, uint64_t t, bint last) noexcept nogil:
    cdef uint64_t v[16]
    cdef uint64_t m[16]
    cdef int i, j
    cdef const uint8_t* s
    for i in range(16):
        m[i] = 0
        for j in range(8):
            m[i] |= (<uint64_t>block[8 * i + j]) << (8 * j)
    for i in range(8):
        v[i] = h[i]
        v[i + 8] = B2B_IV[i]
    v[12] ^= t              # the byte counter (messages here are < 2**64 bytes)
    if last:
        v[14] = ~v[14]
    for i in range(12):
        s = B2B_SIGMA[i]
        b2b_mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        b2b_mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        b2b_mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        b2b_mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        b2b_mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        b2b_mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        b2b_mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        b2b_mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


cdef uint64_t blake2b_key(const uint8_t* x, Py_ssize_t n) noexcept nogil:
    """int.from_bytes(hashlib.blake2b(x[:n], digest_size=8).digest(), "little")."""
    cdef uint64_t h[8]
    cdef uint8_t block[128]
    cdef int i
    cdef Py_ssize_t done = 0
    for i in range(8):
        h[i] = B2B_IV[i]
    h[0] ^= 0x01010000ULL ^ 8        # fan-out 1, depth 1, no key, digest of 8 bytes
    while n - done > 128:
        b2b_compress(h, x + done, <uint64_t>(done + 128), False)
        done += 128
    memset(block, 0, 128)
    if n - done:
        memcpy(block, x + done, n - done)
    b2b_compress(h, block, <uint64_t>n, True)
    return h[0]


cdef inline int64_t chunk_script(const uint8_t* p, Py_ssize_t n, const int64_t* script_of_lead,
                                 int nscripts) noexcept nogil:
    cdef int64_t votes[65]
    cdef int64_t s, best = 0
    cdef Py_ssize_t j
    memset(votes, 0, sizeof(votes))
    for j in range(n):
        s = script_of_lead[p[j]]
        votes[s if 0 <= s < nscripts else 64] += 1
    for j in range(1, nscripts):
        if votes[j] > votes[best]:
            best = j
    return best


cdef int per_chunk(list chunks, uint64_t* keys, int64_t* scripts, const int64_t* script_of_lead,
                   int nscripts) except -1:
    """One pass over the chunks without the GIL: keys[i] = the sample key of chunk i
    (when keys is not NULL), scripts[i] = its script (when scripts is not NULL)."""
    cdef Py_ssize_t i
    cdef ByteViews views
    memset(&views, 0, sizeof(ByteViews))
    try:
        views_of(chunks, &views)
        with nogil:
            for i in range(views.count):
                if keys != NULL:
                    keys[i] = blake2b_key(views.ptrs[i], views.lens[i])
                if scripts != NULL:
                    scripts[i] = chunk_script(views.ptrs[i], views.lens[i], script_of_lead, nscripts)
    finally:
        views_free(&views)
    return 0


def bytes_order(list items):
    """The permutation (int64 numpy array) that sorts the bytes objects of items in bytes
    order (as sorted(range(len(items)), key=items.__getitem__) for distinct items: one
    qsort in C on the first 8 bytes, then memcmp)."""
    import numpy as np
    cdef Py_ssize_t n = len(items), i
    cdef PieceRef* refs = <PieceRef*>malloc(max(n, 1) * sizeof(PieceRef))
    cdef object item
    if refs == NULL:
        raise MemoryError()
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] ov = out
    try:
        for i in range(n):
            item = items[i]
            if type(item) is not bytes:
                raise TypeError(f"bytes_order sorts bytes, not {type(item).__name__}")
            refs[i].p = <const uint8_t*>PyBytes_AS_STRING(item)
            refs[i].length = PyBytes_GET_SIZE(item)
            refs[i].head = head_of(refs[i].p, refs[i].length)
            refs[i].count = i
        with nogil:
            qsort(refs, n, sizeof(PieceRef), cmp_piece_ref)
            for i in range(n):
                ov[i] = refs[i].count
        return out
    finally:
        free(refs)


def chunk_keys(list chunks):
    """The sample keys of a list of bytes (uint64 numpy array): the BLAKE2b digest of
    size 8 of each, read as a little-endian integer."""
    import numpy as np
    out = np.empty(len(chunks), dtype=np.uint64)
    cdef uint64_t[::1] ov = out
    if len(chunks):
        per_chunk(chunks, &ov[0], NULL, NULL, 0)
    return out


def chunk_scripts(list chunks, const int64_t[::1] script_of_lead, int nscripts):
    """Per chunk (int64 numpy array): the script most of its characters are in, a
    character voting with script_of_lead[its first byte] (values >= nscripts do not
    vote: continuation bytes); ties go to the lower script, an empty chunk is 0."""
    import numpy as np
    if script_of_lead.shape[0] != 256 or not 0 < nscripts <= 64:
        raise ValueError("script_of_lead must have 256 entries and nscripts be in 1..64")
    out = np.zeros(len(chunks), dtype=np.int64)
    cdef int64_t[::1] ov = out
    if len(chunks):
        per_chunk(chunks, NULL, &ov[0], &script_of_lead[0], nscripts)
    return out


# ---------------------------------------------------------------------------
# Re-segmenting pieces with a unigram vocabulary (0.6.3's pruning stage): the
# Viterbi split of each text, weighted piece counts summed in C, no Python
# object per text. Same decisions as _lattice's Viterbi: for each end e, the
# pieces x[s:e] are relaxed shortest first and `>=` lets the longest win ties.

cdef inline size_t trie_home(uint64_t key) noexcept nogil:
    # (node << 8 | byte): a cheap multiplicative hash of the node plus the byte, so
    # the children of a node sit side by side (few cache lines per walk step).
    return <size_t>((((key >> 8) * 0x9E3779B97F4A7C15ULL) >> 24) + (key & 255))


@cython.final
cdef class PieceSplitter:
    """Viterbi splits over a vocabulary of pieces with log-probabilities.

    ``counts(texts, weights)`` (or ``count_table(table)``, the pieces of a
    PieceTable weighted by their counts) returns, for each vocabulary piece
    (by index), the sum of weight x (times it appears in a text's best split),
    as int64. The vocabulary must hold all 256 single bytes, as a Lattice.
    """
    # The trie of reversed pieces. Nodes 1..256 are the single bytes (node 1 + b),
    # their children are found in the dense array `second` (256 x 256), deeper
    # nodes through the hash table `deep`: a slot packs node (28 bits), byte and
    # child (28 bits) in 8 bytes, 0 = free, at most half full. Node 0 is the root.
    cdef int32_t* second
    cdef uint64_t* deep
    cdef size_t deep_cap, deep_size
    cdef int32_t* value       # node -> piece index, or -1
    cdef int32_t nodes
    cdef double* logp
    cdef readonly Py_ssize_t num_pieces
    cdef object _logp_ref

    def __cinit__(self):
        self.second = NULL
        self.deep = NULL
        self.deep_cap = self.deep_size = 0
        self.value = NULL
        self.logp = NULL

    def __dealloc__(self):
        free(self.second)
        free(self.deep)
        free(self.value)

    cdef inline int32_t _child(self, int32_t node, uint8_t b) noexcept nogil:
        cdef uint64_t key
        cdef size_t i, mask
        if node == 0:
            return 1 + b
        if node <= 256:
            return self.second[(node - 1) * 256 + b]
        key = (<uint64_t>node << 8) | b
        mask = self.deep_cap - 1
        i = trie_home(key) & mask
        while self.deep[i]:
            if (self.deep[i] >> 28) == key:
                return <int32_t>(self.deep[i] & 0xFFFFFFF)
            i = (i + 1) & mask
        return 0

    cdef int _add_child(self, int32_t node, uint8_t b, int32_t child) noexcept nogil:
        cdef uint64_t key
        cdef size_t i, mask
        if node <= 256:
            self.second[(node - 1) * 256 + b] = child
            return 0
        cdef uint64_t* old
        cdef size_t j, old_cap
        if (self.deep_size + 1) * 2 > self.deep_cap:
            old = self.deep
            old_cap = self.deep_cap
            self.deep = <uint64_t*>calloc(old_cap * 2, sizeof(uint64_t))
            if self.deep == NULL:
                self.deep = old
                return -1
            self.deep_cap = old_cap * 2
            mask = self.deep_cap - 1
            for j in range(old_cap):
                if old[j]:
                    i = trie_home(old[j] >> 28) & mask
                    while self.deep[i]:
                        i = (i + 1) & mask
                    self.deep[i] = old[j]
            free(old)
        key = (<uint64_t>node << 8) | b
        mask = self.deep_cap - 1
        i = trie_home(key) & mask
        while self.deep[i]:
            i = (i + 1) & mask
        self.deep[i] = (key << 28) | <uint64_t>child
        self.deep_size += 1
        return 0

    def __init__(self, list pieces, logprobs):
        import numpy as np
        cdef Py_ssize_t n = len(pieces), i, j, L, total = 0
        cdef bytes p
        cdef const uint8_t* x
        cdef int32_t node, cap
        cdef uint64_t key
        cdef int32_t child
        cdef int singles = 0
        lp = np.ascontiguousarray(logprobs, dtype=np.float64)
        if lp.shape[0] != n:
            raise ValueError("pieces and logprobs must have the same length")
        if n and (not np.all(np.isfinite(lp)) or np.any(lp > 0)):
            raise ValueError("log-probabilities must be finite and <= 0")
        for i in range(n):
            total += len(<bytes>pieces[i])
        if total + 257 >= (1 << 28):
            raise ValueError("pieces too long in all (at most 2**28 bytes)")
        cap = <int32_t>(total + 257)
        self.value = <int32_t*>malloc(cap * sizeof(int32_t))
        self.second = <int32_t*>calloc(256 * 256, sizeof(int32_t))
        self.deep_cap = 1024
        self.deep = <uint64_t*>calloc(self.deep_cap, sizeof(uint64_t))
        if self.value == NULL or self.second == NULL or self.deep == NULL:
            raise MemoryError()
        for j in range(257):
            self.value[j] = -1
        self.nodes = 257
        for i in range(n):
            p = pieces[i]
            L = len(p)
            if L == 0:
                raise ValueError("pieces must not be empty")
            x = <const uint8_t*>PyBytes_AS_STRING(p)
            node = 0
            for j in range(L - 1, -1, -1):        # the trie of reversed pieces
                child = self._child(node, x[j])
                if child == 0:
                    child = self.nodes
                    self.value[child] = -1
                    self.nodes += 1
                    if self._add_child(node, x[j], child) < 0:
                        raise MemoryError()
                node = child
            if self.value[node] >= 0:
                raise ValueError("a piece appears twice")
            self.value[node] = <int32_t>i
            singles += L == 1
        if singles != 256:
            raise ValueError(f"all 256 single bytes must be pieces ({256 - singles} missing)")
        self._logp_ref = lp
        cdef double[::1] lv = lp
        self.logp = &lv[0] if n else NULL
        self.num_pieces = n

    cdef int _split(self, const uint8_t* x, Py_ssize_t n, int64_t weight, int64_t* out,
                    double* score, int32_t* back, int32_t* backv) noexcept nogil:
        cdef Py_ssize_t e, s
        cdef int32_t bs = 0, bv = 0, node, v, child
        cdef double c, best
        score[0] = 0.0
        for e in range(1, n + 1):
            best = -INFINITY
            node = 0
            s = e - 1
            while s >= 0:
                child = self._child(node, x[s])
                if child == 0:
                    break
                node = child
                v = self.value[node]
                if v >= 0:
                    c = score[s] + self.logp[v]
                    if c >= best:
                        best = c
                        bs = <int32_t>s
                        bv = v
                s -= 1
            score[e] = best
            back[e] = bs
            backv[e] = bv
        e = n
        while e > 0:
            out[backv[e]] += weight
            e = back[e]
        return 0

    cdef int _run(self, const uint8_t** ptrs, const int64_t* lens, const int64_t* weights,
                  Py_ssize_t m, int64_t* out) noexcept nogil:
        cdef Py_ssize_t i, longest = 0
        cdef double* score
        cdef int32_t* back
        for i in range(m):
            if lens[i] > longest:
                longest = lens[i]
        score = <double*>malloc((longest + 1) * sizeof(double))
        back = <int32_t*>malloc(2 * (longest + 1) * sizeof(int32_t))
        if score == NULL or back == NULL:
            free(score); free(back)
            return -1
        for i in range(m):
            self._split(ptrs[i], lens[i], weights[i], out, score, back, back + longest + 1)
        free(score); free(back)
        return 0

    def counts(self, list texts, weights):
        """sum over texts of weight x (count of each piece in the text's Viterbi split)."""
        import numpy as np
        cdef Py_ssize_t m = len(texts), i
        cdef int64_t[::1] w = np.ascontiguousarray(weights, dtype=np.int64)
        out = np.zeros(self.num_pieces, dtype=np.int64)
        cdef int64_t[::1] ov = out
        cdef const uint8_t** ptrs = <const uint8_t**>malloc((m + 1) * sizeof(uint8_t*))
        cdef int64_t* lens = <int64_t*>malloc((m + 1) * sizeof(int64_t))
        cdef bytes item
        cdef int rc = 0
        if w.shape[0] != m:
            free(ptrs); free(lens)
            raise ValueError("texts and weights must have the same length")
        try:
            if ptrs == NULL or lens == NULL:
                raise MemoryError()
            for i in range(m):
                item = texts[i]
                ptrs[i] = <const uint8_t*>PyBytes_AS_STRING(item)
                lens[i] = PyBytes_GET_SIZE(item)
            if m and self.num_pieces:
                with nogil:
                    rc = self._run(ptrs, lens, &w[0], m, &ov[0])
            if rc < 0:
                raise MemoryError()
        finally:
            free(ptrs); free(lens)
        return out

    def count_table(self, PieceTable table):
        """counts() of the pieces of a PieceTable, each weighted by its count."""
        import numpy as np
        out = np.zeros(self.num_pieces, dtype=np.int64)
        cdef int64_t[::1] ov = out
        cdef size_t m = table.size, i, k = 0
        cdef const uint8_t** ptrs = <const uint8_t**>malloc((m + 1) * sizeof(uint8_t*))
        cdef int64_t* lens = <int64_t*>malloc((m + 1) * sizeof(int64_t))
        cdef int64_t* ws = <int64_t*>malloc((m + 1) * sizeof(int64_t))
        cdef int rc = 0
        try:
            if ptrs == NULL or lens == NULL or ws == NULL:
                raise MemoryError()
            for i in range(table.cap):
                if table.slots[i].count:
                    ptrs[k] = table.arena + table.slots[i].offset
                    lens[k] = table.slots[i].length
                    ws[k] = table.slots[i].count
                    k += 1
            if k and self.num_pieces:
                with nogil:
                    rc = self._run(ptrs, lens, ws, <Py_ssize_t>k, &ov[0])
            if rc < 0:
                raise MemoryError()
        finally:
            free(ptrs); free(lens); free(ws)
        return out
