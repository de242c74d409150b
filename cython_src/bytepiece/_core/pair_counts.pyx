# Counting adjacent pairs of pieces: the trainer's candidates for longer pieces, counted
# over the Viterbi segmentation of the EM sample in every grow round.
#
# Why it is built this way: {(a, b): weight} as an int64 sum of integer weights (so any
# order of adding up gives the same table, on any number of threads), keyed by
# a * num_pieces + b in an open-addressing table whose key and value sit side by side
# (one cache line per lookup), at most three quarters full. The table of a sample's
# distinct pairs is the EM stage's largest object and far larger than the caches, so a
# run of keys is added with the slot of a key a few places on fetched ahead.

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

from .common.bigmem cimport big_alloc, big_free, big_release_stripe
from .common.hashing cimport murmur_fmix64
from .common.prefetch cimport prefetch

from .._numpy import np


cdef enum:
    PREFETCH_AHEAD = 8
    STRIPE_SLOTS = (1 << 21) // 16   # the slots of a 2 MB stripe


cdef class PairCounts:
    """{(a, b): weight}: how often piece index b follows piece index a, as an int64 sum of
    integer weights (so any order of adding up gives the same table). Keys are
    a * num_pieces + b; an open-addressing table (key and value side by side: one cache
    line per lookup), at most three quarters full (linear probing stays short at that
    load, and the table of a sample's distinct pairs is the EM stage's largest object)."""

    def __cinit__(self, int64_t num_pieces, Py_ssize_t expected=0):
        if num_pieces < 1:
            raise ValueError(f"num_pieces must be >= 1, not {num_pieces}")
        self.num_pieces = num_pieces
        self.cap = 1 << 12
        while 3 * self.cap < 4 * expected:
            self.cap *= 2
        self.used = 0
        self.slots = <PairSlot*>big_alloc(self.cap * sizeof(PairSlot), 1)
        if self.slots == NULL:
            raise MemoryError()

    def __dealloc__(self):
        big_free(self.slots)

    def __len__(self):
        return self.used

    def __reduce__(self):
        keys, values = self.arrays()
        return (_pair_counts_from_arrays, (self.num_pieces, keys, values))

    cdef int _resize(self, Py_ssize_t cap) noexcept nogil:
        # (the old slots go back to the system a 2 MB stripe at a time as they are read:
        # a doubling needs about the new table's memory, not the new and the old ones')
        cdef PairSlot* old = self.slots
        cdef Py_ssize_t i, j
        cdef PairSlot* fresh = <PairSlot*>big_alloc(cap * sizeof(PairSlot), 1)
        if fresh == NULL:
            return -1
        for i in range(self.cap):
            if old[i].key:
                j = <Py_ssize_t>(murmur_fmix64(old[i].key) & <uint64_t>(cap - 1))
                while fresh[j].key:
                    j = (j + 1) & (cap - 1)
                fresh[j] = old[i]
            if ((i + 1) & (STRIPE_SLOTS - 1)) == 0:
                big_release_stripe(old, <size_t>(i + 1), sizeof(PairSlot))
        self.slots, self.cap = fresh, cap
        big_free(old)
        return 0

    cdef int add(self, uint64_t key, int64_t value) noexcept nogil:
        """Adds value at key (a * num_pieces + b); -1 when out of memory."""
        cdef uint64_t k = key + 1
        cdef Py_ssize_t j, mask
        cdef PairSlot* slot
        if 4 * (self.used + 1) > 3 * self.cap and self._resize(2 * self.cap) < 0:
            return -1
        mask = self.cap - 1
        j = <Py_ssize_t>(murmur_fmix64(k) & <uint64_t>mask)
        while True:
            slot = &self.slots[j]
            if slot.key == k:
                slot.value += value
                return 0
            if slot.key == 0:
                slot.key = k
                slot.value = value
                self.used += 1
                return 0
            j = (j + 1) & mask

    cdef int add_run(self, const uint64_t* keys, const int64_t* values, Py_ssize_t count,
                     int64_t value) noexcept nogil:
        """Adds values[i] (or `value`, when values is NULL) at keys[i] for i < count; -1
        when out of memory. The same table as count calls of add, faster: the table is
        grown once for the whole run, and the slot of the key PREFETCH_AHEAD places on is
        fetched while this one is added (a table of a sample's pairs is far larger than
        the caches: each add waits for memory, and this overlaps those waits)."""
        cdef Py_ssize_t i, j, mask
        cdef uint64_t k
        cdef PairSlot* slot
        while 4 * (self.used + count) > 3 * self.cap:
            if self._resize(2 * self.cap) < 0:
                return -1
        mask = self.cap - 1
        for i in range(min(count, PREFETCH_AHEAD)):
            prefetch(&self.slots[<Py_ssize_t>(murmur_fmix64(keys[i] + 1) & <uint64_t>mask)])
        for i in range(count):
            if i + PREFETCH_AHEAD < count:
                prefetch(&self.slots[<Py_ssize_t>(murmur_fmix64(keys[i + PREFETCH_AHEAD] + 1) & <uint64_t>mask)])
            k = keys[i] + 1
            j = <Py_ssize_t>(murmur_fmix64(k) & <uint64_t>mask)
            while True:
                slot = &self.slots[j]
                if slot.key == k:
                    slot.value += value if values == NULL else values[i]
                    break
                if slot.key == 0:
                    slot.key = k
                    slot.value = value if values == NULL else values[i]
                    self.used += 1
                    break
                j = (j + 1) & mask
        return 0

    def add_array(self, const int64_t[::1] keys, const int64_t[::1] values):
        """Adds values[i] at keys[i] for every i."""
        cdef Py_ssize_t i
        if keys.shape[0] != values.shape[0]:
            raise ValueError("keys and values must have the same length")
        for i in range(keys.shape[0]):
            if keys[i] < 0 or keys[i] >= self.num_pieces * self.num_pieces:
                raise ValueError(f"key {keys[i]} out of range")
            if self.add(<uint64_t>keys[i], values[i]) < 0:
                raise MemoryError()

    def merge(self, PairCounts other):
        """Adds other's counts into this table (same num_pieces)."""
        cdef Py_ssize_t i = 0, m
        cdef int status = 0
        cdef uint64_t keys[256]
        cdef int64_t values[256]
        if other.num_pieces != self.num_pieces:
            raise ValueError("pair tables of different vocabularies")
        with nogil:            # (in runs of 256 entries: add_run overlaps their memory waits)
            while i < other.cap and status == 0:
                m = 0
                while i < other.cap and m < 256:
                    if other.slots[i].key:
                        keys[m] = other.slots[i].key - 1
                        values[m] = other.slots[i].value
                        m += 1
                    i += 1
                status = self.add_run(keys, values, m, 0)
        if status < 0:
            raise MemoryError()

    def arrays(self, int64_t min_count=-(1 << 62), bint sort=True):
        """(keys, counts) as int64 arrays, keys ascending (in table order with
        sort=False), of the entries >= min_count."""
        cdef Py_ssize_t i, m = 0
        keys = np.empty(max(self.used, 1), dtype=np.int64)
        values = np.empty(max(self.used, 1), dtype=np.int64)
        cdef int64_t[::1] kv = keys, vv = values
        with nogil:
            for i in range(self.cap):
                if self.slots[i].key and self.slots[i].value >= min_count:
                    kv[m] = <int64_t>(self.slots[i].key - 1)
                    vv[m] = self.slots[i].value
                    m += 1
        if not sort:
            return keys[:m], values[:m]
        order = np.argsort(keys[:m], kind="stable")
        return keys[:m][order], values[:m][order]


cdef uint64_t TAKEN = (<uint64_t>1) << 63   # (a key's flag in pair_sums: its count is in a sum already)


cdef inline PairSlot* find_slot(PairSlot* slots, Py_ssize_t cap, uint64_t k) noexcept nogil:
    """The slot holding the stored key k (key + 1) in a table's slots, or NULL."""
    cdef Py_ssize_t mask = cap - 1
    cdef Py_ssize_t j = <Py_ssize_t>(murmur_fmix64(k) & <uint64_t>mask)
    while slots[j].key:
        if slots[j].key == k:
            return &slots[j]
        j = (j + 1) & mask
    return NULL


cdef int push(int64_t** keys, int64_t** values, Py_ssize_t* n, Py_ssize_t* cap, int64_t key,
              int64_t value) noexcept nogil:
    cdef void* grown
    if n[0] == cap[0]:
        grown = realloc(keys[0], 2 * cap[0] * sizeof(int64_t))
        if grown == NULL:
            return -1
        keys[0] = <int64_t*>grown
        grown = realloc(values[0], 2 * cap[0] * sizeof(int64_t))
        if grown == NULL:
            return -1
        values[0] = <int64_t*>grown
        cap[0] *= 2
    keys[0][n[0]] = key
    values[0][n[0]] = value
    n[0] += 1
    return 0


cdef int sum_tables(PairSlot** slots, Py_ssize_t* caps, Py_ssize_t m, int64_t min_count, int64_t** keys,
                    int64_t** values, Py_ssize_t* n, Py_ssize_t* cap, Py_ssize_t* distinct) noexcept nogil:
    cdef Py_ssize_t a, b, i
    cdef uint64_t k
    cdef int64_t total
    cdef PairSlot* other
    for a in range(m):
        for i in range(caps[a]):
            k = slots[a][i].key
            if k == 0 or (k & TAKEN):
                continue
            total = slots[a][i].value
            distinct[0] += 1
            for b in range(a + 1, m):
                other = find_slot(slots[b], caps[b], k)
                if other != NULL:
                    total += other.value
                    other.key |= TAKEN   # (still non-zero: the probe chains through it hold)
            if total >= min_count and push(keys, values, n, cap, <int64_t>(k - 1), total) < 0:
                return -1
    return 0


def pair_sums(list tables, int64_t min_count):
    """(keys, sums, distinct): the pairs whose count summed over the tables (of one
    vocabulary) is at least min_count, as int64 arrays in no particular order, and how
    many distinct pairs the tables hold: what merging them and reading
    ``arrays(min_count, sort=False)`` gives, without a merged table (merging grows the
    largest table while the others still exist). Each table's entries are looked up in
    the tables after it, and flagged there once summed. The tables are spent."""
    cdef Py_ssize_t m = len(tables), a, n = 0, cap = 1 << 16, distinct = 0
    cdef PairCounts t
    cdef int status
    cdef int64_t* out_keys = <int64_t*>malloc(cap * sizeof(int64_t))
    cdef int64_t* out_values = <int64_t*>malloc(cap * sizeof(int64_t))
    cdef PairSlot** slots = <PairSlot**>malloc(max(m, 1) * sizeof(PairSlot*))
    cdef Py_ssize_t* caps = <Py_ssize_t*>malloc(max(m, 1) * sizeof(Py_ssize_t))
    try:
        if out_keys == NULL or out_values == NULL or slots == NULL or caps == NULL:
            raise MemoryError()
        for a in range(m):
            t = tables[a]
            if t.num_pieces != (<PairCounts>tables[0]).num_pieces:
                raise ValueError("pair tables of different vocabularies")
            slots[a] = t.slots
            caps[a] = t.cap
        with nogil:
            status = sum_tables(slots, caps, m, min_count, &out_keys, &out_values, &n, &cap, &distinct)
        if status < 0:
            raise MemoryError()
        keys = np.empty(n, dtype=np.int64)
        values = np.empty(n, dtype=np.int64)
        if n:
            memcpy(<void*><size_t>keys.ctypes.data, out_keys, n * sizeof(int64_t))
            memcpy(<void*><size_t>values.ctypes.data, out_values, n * sizeof(int64_t))
        return keys, values, distinct
    finally:
        free(out_keys)
        free(out_values)
        free(slots)
        free(caps)


def _pair_counts_from_arrays(num_pieces, keys, values):
    table = PairCounts(num_pieces)
    table.add_array(np.ascontiguousarray(keys, dtype=np.int64), np.ascontiguousarray(values, dtype=np.int64))
    return table
