# Counting byte n-grams (stage 1 of training): NgramTable, one open-addressing table
# of (packed n-gram, count) per length, and the n-gram candidates the EM starts from
# (ngram_table.pxd declares what the n-gram model reads).
#
# Why it is built this way:
# - Everything is a map/merge over blocks of chunks: count_ngrams_block turns a list of
#   chunks into an NgramTable; tables merge associatively (merge) and serialise to
#   bytes (to_bytes / from_bytes, also used by pickle), so any engine (threads, a fork
#   pool, a Dask cluster) can run the map and the reduce.
# - An n-gram of length L <= 8 fits in a uint64 (little-endian packed bytes), so each
#   length has its own table of (key, count) pairs: no Python objects, no key storage
#   beyond 16 bytes a slot. Single bytes are a plain array of 256 counts.
# - While counting, a table is compact: only the longest n-gram at each position is
#   counted, and the shorter counts follow from it (see NgramTable).
# - A memory budget caps the tables: when the entries of lengths >= 2 outgrow it, the
#   rarest ones are dropped (the smallest count threshold that brings them under half
#   the budget); a compact table folds them into their prefixes, so the counts of the
#   shorter n-grams stay whole. Until that happens the counts are exact; `pruned_below`
#   records the largest threshold ever used (0 = exact).

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset

from .common.bigmem cimport big_alloc, big_free
from .common.byteviews cimport ByteViews, views_free, views_of
from .common.hashing cimport splitmix64_mix
from .common.prefetch cimport prefetch

import struct
import sys

cdef bint LITTLE_ENDIAN = sys.byteorder == "little"

MAX_ORDER = C_MAX_ORDER

cdef enum:
    EXPAND_AHEAD = 16  # copies from one table into another fetch the target slot this many entries ahead
    STRIPE_SLOTS = (1 << 21) // 16   # the slots of a 2 MB stripe (a huge page)


cdef extern from *:
    """
    #if defined(__linux__)
    #include <sys/mman.h>
    /* Gives back to the system the 2 MB stripe of a table's data that ends at slot `end`,
       when the data is a mapping of its own (big_alloc puts it on a 2 MB boundary): its
       pages read as zeros afterwards, and the caller never reads them again. */
    static inline void bp_release_stripe(void* data, size_t end, size_t slot_size) {
        size_t stripe = (size_t)1 << 21;
        if (((size_t)data & (stripe - 1)) == 0)
            madvise((char*)data + end * slot_size - stripe, stripe, MADV_DONTNEED);
    }
    #else
    static inline void bp_release_stripe(void* data, size_t end, size_t slot_size) {
        (void)data; (void)end; (void)slot_size;
    }
    #endif
    """
    void bp_release_stripe(void* data, size_t end, size_t slot_size) noexcept nogil


cdef inline void release_read(CSlot* slots, size_t end) noexcept nogil:
    """Releases the stripe of slots just read by a resize (end: a multiple of STRIPE_SLOTS)."""
    bp_release_stripe(slots, end, sizeof(CSlot))


# ---------------------------------------------------------------------------
# Counts keyed by uint64 (one table per n-gram length). count == 0 marks an
# empty slot (stored counts are always >= 1).

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


cdef int ct_resize(CountTable* t, size_t cap) noexcept nogil:
    """Moves the entries into a table of `cap` slots. The old slots are given back to the
    system a stripe at a time as they are read (release_read), so a doubling needs about
    the new table's memory, not the new one's and the old one's."""
    cdef CountTable n
    cdef size_t i
    if ct_init(&n, cap) < 0:
        return -1
    for i in range(t.cap):
        if t.slots[i].count != 0:
            ct_put_new(&n, t.slots[i].key, t.slots[i].count)
        if ((i + 1) & (STRIPE_SLOTS - 1)) == 0:
            release_read(t.slots, i + 1)
    ct_free(t)
    t[0] = n
    return 0


cdef int ct_drop_below(CountTable* t, int64_t threshold) noexcept nogil:
    """Drops the entries with count < threshold, in place: no second table, so a table at
    its budget never needs twice its memory to shrink. The entries left are then moved
    back to where a lookup finds them: from an empty slot, once round the table, each
    entry goes to the first empty slot of its probe path (its home up to itself), which
    keeps every path free of holes (a path never runs through the starting slot, so the
    entries before an entry's own slot on its path are settled already)."""
    cdef size_t i, j, start = 0, mask, home, n = t.cap
    if t.cap == 0:
        return 0
    mask = t.cap - 1
    # (a slot empty before the drops: no probe path runs through it)
    while start < n and t.slots[start].count != 0:   # (a table is never full)
        start += 1
    if start == n:
        return 0
    for i in range(t.cap):
        if t.slots[i].count != 0 and t.slots[i].count < threshold:
            t.slots[i].count = 0
            t.size -= 1
    for i in range(1, n):
        j = (start + i) & mask
        if t.slots[j].count == 0:
            continue
        home = splitmix64_mix(t.slots[j].key) & mask
        while home != j and t.slots[home].count != 0:
            home = (home + 1) & mask
        if home != j:
            t.slots[home] = t.slots[j]
            t.slots[j].count = 0
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
    merge by plain addition. The memory budget counts a compact table's own
    entries, and a compact table stays compact when it is hit: the entries it drops
    are folded into their prefixes (_fold_below), so that every shorter n-gram keeps
    its whole count. Until the budget is hit the counts are exact and the same as
    full counting's; past it both are approximate, in different ways.
    """

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
                prefetch(&into.slots[splitmix64_mix(t.slots[j].key & mask) & (into.cap - 1)])
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

    cdef int _enforce_budget(self, size_t coming=0) noexcept nogil:
        """If over budget (or `coming` more entries would put it over), drop the rarest
        entries so that at most budget/2 remain (the smallest count threshold that leaves
        at most that many). A compact table folds what it drops into the prefixes
        (_fold_below), so that the counts of the shorter n-grams it keeps stay whole; a
        full table drops them. Drops happen in place, so a table at its budget never
        needs a second copy of itself."""
        cdef size_t n = self._entries(), target, above
        cdef int64_t* hist
        cdef int64_t threshold, c
        cdef int L
        cdef size_t i
        cdef int HMAX = 1 << 16
        if self.budget == 0 or n + coming <= <size_t>self.budget:
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
        for L in range(self.order, 1, -1):   # (longest first: a length's drops join the next)
            if self.compact and L > 2:
                if self._fold_below(L, threshold) < 0:
                    return -1
            if ct_drop_below(&self.tabs[L], threshold) < 0:
                return -1
        if threshold > self.pruned_below:
            self.pruned_below = threshold
        return 0

    cdef int _fold_below(self, int L, int64_t threshold) noexcept nogil:
        """Adds the count of every entry of length L under the threshold to its prefix one
        byte shorter, as a tail. In a compact table an n-gram's count is the sum of the
        entries that start with it, so moving a dropped entry's count to its prefix keeps
        the count of every shorter n-gram it starts with: only the dropped n-gram loses
        its count (it may come back later with a partial one). (The caller then drops the
        entries under the threshold.)"""
        cdef size_t i
        cdef uint64_t mask = (1ULL << (8 * (L - 1))) - 1
        cdef CountTable* t = &self.tabs[L]
        for i in range(t.cap):
            if t.slots[i].count and t.slots[i].count < threshold:
                if ct_add(&self.tabs[L - 1], t.slots[i].key & mask, t.slots[i].count) < 0:
                    return -1
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
                        prefetch(&self.tabs[L].slots[splitmix64_mix(key) & (self.tabs[L].cap - 1)])
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
                prefetch(&full.slots[splitmix64_mix(key & mask) & (full.cap - 1)])
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
            # (room first: adding a whole table past the budget would double a level's
            # table before the drops)
            rc = self._enforce_budget(other._entries())
            self.total += other.total
            for b in range(256):
                self.uni[b] += other.uni[b]
            for L in range(2, self.order + 1):
                if rc < 0:
                    break
                if self.tabs[L].cap == 0 and other.tabs[L].cap:
                    rc = ct_init(&self.tabs[L], other.tabs[L].size * 2)
                    if rc < 0:
                        break
                for i in range(other.tabs[L].cap):
                    j = i + EXPAND_AHEAD           # (as in _expand_level)
                    if j < other.tabs[L].cap and other.tabs[L].slots[j].count and self.tabs[L].cap:
                        prefetch(&self.tabs[L].slots[splitmix64_mix(other.tabs[L].slots[j].key)
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
        import numpy as np
        parts.append(np.asarray(<int64_t[:256]>self.uni).astype("<i8").tobytes())
        for L in range(2, self.order + 1):
            keys = np.empty(self.tabs[L].size, dtype=np.uint64)
            counts = np.empty(self.tabs[L].size, dtype=np.int64)
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
            kv, cv, off = read_level(data, off, "<i8")
            n = kv.shape[0]
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


def read_level(data, Py_ssize_t off, str value_dtype):
    """(keys, values, the offset after them) of one n-gram length as to_bytes writes it
    at data[off:]: a little-endian int64 count n, n packed keys (uint64), n values of
    value_dtype (little-endian). The n-gram model's files use the same layout."""
    import numpy as np
    n = struct.unpack_from("<q", data, off)[0]
    off += 8
    keys = np.frombuffer(data, dtype="<u8", count=n, offset=off).astype(np.uint64)
    off += 8 * n
    values = np.frombuffer(data, dtype=value_dtype, count=n, offset=off).astype(value_dtype[1:])
    return keys, values, off + 8 * n


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
# Candidates of a compact table without expanding it (the default EM path)
#
# Expanding a compact table builds a hash table per length, each as large as the one
# above it (a second copy of the counts, plus a doubling's transient), only to read
# the candidates out of it. Instead, when the table may be spent: each length's entries
# are sorted in place, in the table's own slots, by their bytes (the packed key
# byte-swapped: first byte most significant; a shorter n-gram before its extensions),
# and one merged pass over the sorted lengths visits every n-gram in bytes order: the
# full count of an n-gram is the sum of the longest n-grams and tails that start with
# it, a contiguous run in that order, so each length keeps one running sum. No memory
# beyond the table's own but the candidates; the same counts, so the same candidates.

cdef extern from *:
    """
    static inline uint64_t bp_bswap64(uint64_t x) { return __builtin_bswap64(x); }
    """
    uint64_t bp_bswap64(uint64_t x) noexcept nogil


cdef inline uint64_t top_mask(int d) noexcept nogil:
    """The mask of the first d bytes of a byte-swapped key (1 <= d <= 8)."""
    return 0xFFFFFFFFFFFFFFFFULL << (64 - 8 * d) if d < 8 else 0xFFFFFFFFFFFFFFFFULL


cdef void sort_slots(CSlot* a, size_t n, int depth, int last) noexcept nogil:
    """In-place MSD radix sort (American flag) of a[:n] by key (unsigned), reading the
    digits depth..last-1 (digit d is byte 7 - d of the key); the keys are equal in the
    digits before depth."""
    cdef size_t count[256]
    cdef size_t nxt[256]
    cdef size_t end[256]
    cdef size_t i, j, s
    cdef int b, d, shift
    cdef CSlot v, w
    if n < 2 or depth >= last:
        return
    if n <= 24:
        for i in range(1, n):
            v = a[i]
            j = i
            while j > 0 and a[j - 1].key > v.key:
                a[j] = a[j - 1]
                j -= 1
            a[j] = v
        return
    shift = 56 - 8 * depth
    memset(count, 0, sizeof(count))
    for i in range(n):
        count[(a[i].key >> shift) & 255] += 1
    s = 0
    for b in range(256):
        nxt[b] = s
        s += count[b]
        end[b] = s
    for b in range(256):
        while nxt[b] < end[b]:
            v = a[nxt[b]]
            d = (v.key >> shift) & 255
            while d != b:
                w = a[nxt[d]]
                a[nxt[d]] = v
                nxt[d] += 1
                v = w
                d = (v.key >> shift) & 255
            a[nxt[b]] = v
            nxt[b] += 1
    s = 0
    for b in range(256):
        if count[b] > 1:
            sort_slots(a + s, count[b], depth + 1, last)
        s += count[b]


cdef size_t sort_level(CountTable* t, int L) noexcept nogil:
    """Moves the entries of one length to the front of its slots (the table is no longer
    a hash table), byte-swaps their keys and sorts them; returns how many there are."""
    cdef size_t i, n = 0
    for i in range(t.cap):
        if t.slots[i].count != 0:
            t.slots[n].key = bp_bswap64(t.slots[i].key)
            t.slots[n].count = t.slots[i].count
            n += 1
    sort_slots(t.slots, n, 0, L)
    return n


cdef struct TopBuffer:
    # the n-grams of one length that may still be among its `limit` most frequent
    uint64_t* keys
    int64_t* counts
    size_t size
    size_t cap


cdef int64_t kth_largest(int64_t* a, size_t n, size_t k) noexcept nogil:
    """The k-th largest of a[:n] (1 <= k <= n); reorders a."""
    cdef size_t lo = 0, hi = n - 1, i, j, target = n - k
    cdef int64_t pivot, t
    while lo < hi:
        pivot = a[lo + (hi - lo) // 2]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                t = a[i]; a[i] = a[j]; a[j] = t
                i += 1
                if j == 0:
                    break
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            return a[target]
    return a[target]


cdef int top_push(TopBuffer* b, uint64_t key, int64_t count, size_t limit, int64_t* scratch) noexcept nogil:
    """Adds an entry; when the buffer is full, keeps only the entries counted at least as
    often as its limit-th most frequent (never one of the final ones: see top_finish)."""
    cdef size_t i, n
    cdef int64_t bar
    cdef void* grown
    if b.size == b.cap:
        if limit > 0 and b.size > limit:
            memcpy(scratch, b.counts, b.size * sizeof(int64_t))
            bar = kth_largest(scratch, b.size, limit)
            n = 0
            for i in range(b.size):
                if b.counts[i] >= bar:
                    b.keys[n] = b.keys[i]
                    b.counts[n] = b.counts[i]
                    n += 1
            b.size = n
        if b.size * 4 > b.cap * 3:  # (ties kept it full: grow)
            grown = realloc(b.keys, 2 * b.cap * sizeof(uint64_t))
            if grown == NULL:
                return -1
            b.keys = <uint64_t*>grown
            grown = realloc(b.counts, 2 * b.cap * sizeof(int64_t))
            if grown == NULL:
                return -1
            b.counts = <int64_t*>grown
            b.cap *= 2
            return -2  # (the caller's scratch must grow too)
    b.keys[b.size] = key
    b.counts[b.size] = count
    b.size += 1
    return 0


cdef struct ScanState:
    int order
    int64_t min_count
    size_t limit
    size_t distinct          # n-grams of lengths 2..order visited
    TopBuffer top[C_MAX_ORDER + 1]
    int64_t* scratch
    size_t scratch_cap
    uint64_t cur[C_MAX_ORDER + 1]
    int64_t acc[C_MAX_ORDER + 1]
    bint open_[C_MAX_ORDER + 1]


cdef int scan_emit(ScanState* st, int L, uint64_t skey, int64_t count) noexcept nogil:
    cdef uint64_t key = bp_bswap64(skey)
    cdef int rc
    cdef void* grown
    st.distinct += 1
    if count < st.min_count or count <= 0 or not whole_chars(key, L):
        return 0
    while True:
        rc = top_push(&st.top[L], key, count, st.limit, st.scratch)
        if rc != -2:
            return rc
        if st.top[L].cap > st.scratch_cap:
            grown = realloc(st.scratch, st.top[L].cap * sizeof(int64_t))
            if grown == NULL:
                return -1
            st.scratch = <int64_t*>grown
            st.scratch_cap = st.top[L].cap


cdef int scan_close(ScanState* st, int d) noexcept nogil:
    """Emits the running sums of lengths d.. (their runs have ended)."""
    cdef int e
    for e in range(d, st.order):
        if st.open_[e]:
            if scan_emit(st, e, st.cur[e], st.acc[e]) < 0:
                return -1
            st.open_[e] = False
    return 0


cdef int scan_levels(NgramTable table, size_t* sizes, ScanState* st) noexcept nogil:
    """The merged pass over the sorted lengths 2..order (see above)."""
    cdef size_t pos[C_MAX_ORDER + 1]
    cdef int L, best, d, order = table.order
    cdef uint64_t skey, p
    cdef int64_t c
    memset(pos, 0, sizeof(pos))
    while True:
        best = 0
        for L in range(2, order + 1):
            # smallest key first; on equal keys (an n-gram and its extension by zero
            # bytes) the shorter one, the prefix
            if pos[L] < sizes[L] and (
                best == 0 or table.tabs[L].slots[pos[L]].key < table.tabs[best].slots[pos[best]].key
            ):
                best = L
        if best == 0:
            break
        skey = table.tabs[best].slots[pos[best]].key
        c = table.tabs[best].slots[pos[best]].count
        pos[best] += 1
        for d in range(2, min(best, order - 1) + 1):
            p = skey & top_mask(d)
            if not st.open_[d] or st.cur[d] != p:
                if scan_close(st, d) < 0:
                    return -1
                break
        for d in range(2, min(best, order - 1) + 1):
            if not st.open_[d]:
                st.cur[d] = skey & top_mask(d)
                st.acc[d] = 0
                st.open_[d] = True
            st.acc[d] += c
        if best == order:
            if scan_emit(st, order, skey, c) < 0:
                return -1
    return scan_close(st, 2)


def _sort_levels(NgramTable table, list levels, size_t[::1] sizes):
    cdef int L
    cdef size_t n
    for L in levels:
        with nogil:
            n = sort_level(&table.tabs[L], L)
        sizes[L] = n


def candidates_by_sorting(NgramTable table, int64_t min_count, Py_ssize_t limit, int threads=1):
    """The parts ngram_candidates picks from a compact table (level_candidates of each
    length after expanding it), found by sorting the table in place instead; the table's
    counts are spent (released) afterwards."""
    import numpy as np
    cdef int L, order = table.order, rc
    cdef ScanState st
    cdef size_t cap
    table.check_usable()
    if not table.compact:
        raise ValueError("candidates_by_sorting reads a compact table")
    sizes = np.zeros(C_MAX_ORDER + 1, dtype=np.uintp)
    cdef size_t[::1] sv = sizes
    if threads > 1:  # (the longest n-grams, most of the entries, on a helper thread)
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(1) as pool:
            longest = pool.submit(_sort_levels, table, [order], sizes)
            _sort_levels(table, list(range(2, order)), sizes)
            longest.result()
    else:
        _sort_levels(table, list(range(2, order + 1)), sizes)
    memset(&st, 0, sizeof(ScanState))
    st.order = order
    st.min_count = min_count
    st.limit = <size_t>limit if limit > 0 else 0
    cap = 2 * st.limit + 1024 if limit > 0 else 1 << 16
    try:
        for L in range(2, order + 1):
            st.top[L].keys = <uint64_t*>malloc(cap * sizeof(uint64_t))
            st.top[L].counts = <int64_t*>malloc(cap * sizeof(int64_t))
            st.top[L].cap = cap
            if st.top[L].keys == NULL or st.top[L].counts == NULL:
                raise MemoryError()
        st.scratch = <int64_t*>malloc(cap * sizeof(int64_t))
        st.scratch_cap = cap
        if st.scratch == NULL:
            raise MemoryError()
        with nogil:
            rc = scan_levels(table, &sv[0], &st)
        if rc < 0:
            raise MemoryError()
        for L in range(2, order + 1):
            table.release_level(L)
        table.released_len = st.distinct
        table.released = True
        table.compact = False
        parts = []
        for L in range(order, 1, -1):
            n = st.top[L].size
            keys = np.empty(n, dtype=np.uint64)
            counts = np.empty(n, dtype=np.int64)
            if n:
                memcpy(<void*><size_t>keys.ctypes.data, st.top[L].keys, n * sizeof(uint64_t))
                memcpy(<void*><size_t>counts.ctypes.data, st.top[L].counts, n * sizeof(int64_t))
            if limit > 0 and <Py_ssize_t>n > limit:
                kth = n - limit
                keep = counts >= np.partition(counts, kth)[kth]
                keys, counts = keys[keep], counts[keep]
            parts.append((L, keys, counts))
        return parts
    finally:
        for L in range(C_MAX_ORDER + 1):
            free(st.top[L].keys)
            free(st.top[L].counts)
        free(st.scratch)


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
    if table.compact and release:  # (the table is spent: sorted in place, never expanded)
        return select_candidates(candidates_by_sorting(table, min_count, limit, threads), limit, bytes_order)
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
                    pending[L] = ReadyResult(pending[L].result())
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
        return ReadyResult(level_candidates(table, L, min_count, limit))
    return pool.submit(_level_candidates, table, L, min_count, limit)


class ReadyResult:
    """A finished result with the interface of a Future."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value
