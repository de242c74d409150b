# Counting byte n-grams (stage 1 of training): NgramTable, one open-addressing table
# of (packed n-gram, count) per length (ngram_table.pxd declares what the n-gram model
# and the candidates read; the candidates the EM starts from are in ngram_candidates.pyx).
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
# - The module reads top down: the count tables (CountTable, ct_*); the NgramTable class,
#   which counts, expands, merges and answers; then the memory budget and the byte
#   format, module-level functions over a table: they decide what a table keeps and how
#   it travels, and the class stays about counting.

from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from .common.bigmem cimport big_alloc, big_free, big_release_stripe
from .common.byteviews cimport ByteViews, views_free, views_of
from .common.hashing cimport splitmix64_mix
from .common.prefetch cimport prefetch

import struct
import sys

cdef bint LITTLE_ENDIAN = sys.byteorder == "little"

MAX_ORDER = C_MAX_ORDER

cdef uint64_t ALL_BYTES = 0xFFFFFFFFFFFFFFFFULL   # the mask of a whole packed key

cdef enum:
    EXPAND_AHEAD = 16  # copies from one table into another fetch the target slot this many entries ahead
    STRIPE_SLOTS = (1 << 21) // 16   # the slots of a 2 MB stripe (a huge page)


cdef inline void release_read(CSlot* slots, size_t end) noexcept nogil:
    """Releases the stripe of slots just read by a resize (end: a multiple of STRIPE_SLOTS)."""
    big_release_stripe(slots, end, sizeof(CSlot))


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


cdef int ct_add_all(CountTable* into, const CountTable* src, uint64_t mask) noexcept nogil:
    """Adds every entry of src into `into` under the key `key & mask`: with ALL_BYTES, the
    same keys (merging two tables); with the low L - 1 bytes, the prefixes of src's
    n-grams of length L (expanding a compact table). While an entry is added, the slot of
    the one EXPAND_AHEAD entries on is fetched: `into` is far larger than the caches."""
    cdef size_t i, j
    for i in range(src.cap):
        j = i + EXPAND_AHEAD
        if j < src.cap and src.slots[j].count and into.cap:
            prefetch(&into.slots[splitmix64_mix(src.slots[j].key & mask) & (into.cap - 1)])
        if src.slots[i].count:
            if ct_add(into, src.slots[i].key & mask, src.slots[i].count) < 0:
                return -1
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
    are folded into their prefixes (fold_below), so that every shorter n-gram keeps
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
        return ct_add_all(&self.tabs[L - 1], &self.tabs[L], (1ULL << (8 * (L - 1))) - 1)

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
                        rc = enforce_budget(self)
                        if rc < 0:
                            break
            finish_adding(self, rc)
        finally:
            views_free(&views)

    def merge(self, NgramTable other):
        """Adds other's counts into this table (returns self)."""
        cdef int L, rc = 0
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
            rc = enforce_budget(self, other._entries())
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
                rc = ct_add_all(&self.tabs[L], &other.tabs[L], ALL_BYTES)
                if rc < 0:
                    break
        finish_adding(self, rc)
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
        from .ngram_candidates import ngram_candidates  # (that module reads this one's tables)
        return ngram_candidates(self, min_count, limit)      # (one thread, the table kept)

    # -- bytes (the format itself: table_bytes and table_from_bytes, below the class) --
    def to_bytes(self):
        """A self-contained byte string of the full counts; NgramTable.from_bytes rebuilds
        the table."""
        self.expand()
        return table_bytes(self, b"BPNGRAM1")

    def __reduce__(self):
        # pickling (between processes) keeps a compact table compact: half the bytes
        return (NgramTable.from_bytes, (table_bytes(self, b"BPNGRAMC" if self.compact else b"BPNGRAM1"),))

    @staticmethod
    def from_bytes(data):
        """The table that to_bytes (or pickling) wrote."""
        return table_from_bytes(data)


# ---------------------------------------------------------------------------
# The memory budget: module-level functions over a table (the class counts; these
# decide what it may keep). count and merge call enforce_budget between chunks.

cdef int finish_adding(NgramTable table, int rc) except -1:
    """The end of count and merge: when adding went well (rc == 0), the budget once more;
    MemoryError when anything failed (rc < 0)."""
    if rc == 0:
        with nogil:
            rc = enforce_budget(table)
    if rc < 0:
        raise MemoryError()
    return 0


cdef int enforce_budget(NgramTable table, size_t coming=0) noexcept nogil:
    """If over budget (or `coming` more entries would put it over), drop the rarest
    entries so that at most budget/2 remain (the smallest count threshold that leaves
    at most that many). A compact table folds what it drops into the prefixes
    (fold_below), so that the counts of the shorter n-grams it keeps stay whole; a
    full table drops them. Drops happen in place, so a table at its budget never
    needs a second copy of itself."""
    cdef size_t n = table._entries(), target, above
    cdef int64_t* hist
    cdef int64_t threshold, c
    cdef int L
    cdef size_t i
    cdef int HMAX = 1 << 16
    if table.budget == 0 or n + coming <= <size_t>table.budget:
        return 0
    target = <size_t>(table.budget // 2)
    hist = <int64_t*>calloc(HMAX + 1, sizeof(int64_t))
    if hist == NULL:
        return -1
    for L in range(2, table.order + 1):
        for i in range(table.tabs[L].cap):
            c = table.tabs[L].slots[i].count
            if c:
                hist[c if c < HMAX else HMAX] += 1
    # smallest threshold t such that entries with count >= t fit the target
    above = n
    threshold = 1
    while threshold < HMAX and above > target:
        above -= hist[threshold]
        threshold += 1
    free(hist)
    for L in range(table.order, 1, -1):   # (longest first: a length's drops join the next)
        if table.compact and L > 2:
            if fold_below(table, L, threshold) < 0:
                return -1
        if ct_drop_below(&table.tabs[L], threshold) < 0:
            return -1
    if threshold > table.pruned_below:
        table.pruned_below = threshold
    return 0


cdef int fold_below(NgramTable table, int L, int64_t threshold) noexcept nogil:
    """Adds the count of every entry of length L under the threshold to its prefix one
    byte shorter, as a tail. In a compact table an n-gram's count is the sum of the
    entries that start with it, so moving a dropped entry's count to its prefix keeps
    the count of every shorter n-gram it starts with: only the dropped n-gram loses
    its count (it may come back later with a partial one). (The caller then drops the
    entries under the threshold.)"""
    cdef size_t i
    cdef uint64_t mask = (1ULL << (8 * (L - 1))) - 1
    cdef CountTable* level = &table.tabs[L]
    for i in range(level.cap):
        if level.slots[i].count and level.slots[i].count < threshold:
            if ct_add(&table.tabs[L - 1], level.slots[i].key & mask, level.slots[i].count) < 0:
                return -1
    return 0


# ---------------------------------------------------------------------------
# The byte format of a table (to_bytes, from_bytes, pickling): module-level functions
# over a table. A header "<8sqqqq" (magic, order, total, budget, pruned_below), the 256
# single-byte counts (<i8), then each length 2..order as read_level reads it. The magic
# says which counts: BPNGRAM1 full ones, BPNGRAMC a compact table's own (pickling).

cdef bytes table_bytes(NgramTable table, bytes magic):
    """The table's counts as they stand (the caller expands it first for full ones)."""
    table.check_usable()
    cdef list parts = [struct.pack("<8sqqqq", magic, table.order, table.total, table.budget,
                                   table.pruned_below)]
    cdef int L
    import numpy as np
    parts.append(np.asarray(<int64_t[:256]>table.uni).astype("<i8").tobytes())
    for L in range(2, table.order + 1):
        keys = np.empty(table.tabs[L].size, dtype=np.uint64)
        counts = np.empty(table.tabs[L].size, dtype=np.int64)
        dump_level(table, L, keys, counts)
        parts.append(struct.pack("<q", table.tabs[L].size))
        parts.append(keys.astype("<u8").tobytes())
        parts.append(counts.astype("<i8").tobytes())
    return b"".join(parts)


cdef void dump_level(NgramTable table, int L, uint64_t[::1] keys, int64_t[::1] counts):
    """The entries of length L into keys and counts (room for all of them), in slot order."""
    cdef size_t i, j = 0
    cdef const CountTable* level = &table.tabs[L]
    for i in range(level.cap):
        if level.slots[i].count:
            keys[j] = level.slots[i].key
            counts[j] = level.slots[i].count
            j += 1


cdef NgramTable table_from_bytes(data):
    """The table table_bytes wrote (NgramTable.from_bytes)."""
    import numpy as np
    data = bytes(data)
    magic, order, total, budget, pruned = struct.unpack_from("<8sqqqq", data, 0)
    if magic != b"BPNGRAM1" and magic != b"BPNGRAMC":
        raise ValueError("not a serialised NgramTable")
    cdef NgramTable table = NgramTable(order, budget, magic == b"BPNGRAMC")
    cdef Py_ssize_t off = 40, n, i
    cdef int L
    table.total = total
    table.pruned_below = pruned
    uni = np.frombuffer(data, dtype="<i8", count=256, offset=off)
    off += 256 * 8
    for i in range(256):
        table.uni[i] = uni[i]
    cdef uint64_t[::1] kv
    cdef int64_t[::1] cv
    for L in range(2, order + 1):
        kv, cv, off = read_level(data, off, "<i8")
        n = kv.shape[0]
        if ct_init(&table.tabs[L], <size_t>(n * 2)) < 0:
            raise MemoryError()
        for i in range(n):
            ct_put_new(&table.tabs[L], kv[i], cv[i])
    return table


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


def count_ngrams_block(list chunks, int order, int64_t budget=0, bint compact=True):
    """Map step: the NgramTable of a block of chunks (list of bytes)."""
    cdef NgramTable t = NgramTable(order, budget, compact)
    t.count(chunks)
    return t
