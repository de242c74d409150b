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

from .common.bigmem cimport big_alloc, big_free
from .common.hashing cimport murmur_fmix64
from .common.prefetch cimport prefetch

import numpy as np


cdef enum:
    PREFETCH_AHEAD = 8


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


def _pair_counts_from_arrays(num_pieces, keys, values):
    table = PairCounts(num_pieces)
    table.add_array(np.ascontiguousarray(keys, dtype=np.int64), np.ascontiguousarray(values, dtype=np.int64))
    return table
