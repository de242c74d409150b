# Counting pieces of any length (the tagging stage's output, the seeds of pruning):
# PieceTable, and the bytes order of a list of pieces (piece_table.pxd declares them).
#
# Why it is built this way: pieces have any length, so the table hashes the bytes
# (hash_bytes, 64-bit) and keeps the bytes themselves in one arena; slots compare hash,
# length and bytes, so collisions can never merge two pieces. Like the n-gram tables it
# merges associatively and serialises to bytes, for any map/reduce engine.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_SetItem
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, qsort
from libc.string cimport memcmp, memcpy, memset

from .common.bigmem cimport big_alloc, big_free, big_realloc
from .common.hashing cimport hash_bytes


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
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data), off = 16, n
        cdef const uint8_t* base = <const uint8_t*>PyBytes_AS_STRING(data)
        cdef int64_t count, length
        if size < 16 or memcmp(base, b"BPPIECE1", 8) != 0:
            raise ValueError("not a serialised PieceTable")
        n = get_le64(base + 8)
        cdef PieceTable t = PieceTable()
        for _ in range(n):
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
