# The candidate pieces of a counted NgramTable (the end of stage 1 of training): the
# n-grams made of whole characters with the highest count x length, which the EM starts
# from. Split from ngram_table.pyx (the counting) because reading candidates out is its
# own problem: a table of hundreds of millions of entries must yield its best few
# hundred thousand without a second copy of the counts.
#
# Why it is built this way:
# - level_candidates reads one length's entries with count >= min_count (an expanded
#   table, or a small one); select_candidates ranks the union of the lengths by a total
#   order, so the result does not depend on how the work was split.
# - candidates_by_sorting reads a compact table without expanding it: see the section
#   below. ngram_candidates picks between the two and runs the lengths on threads.

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

from .ngram_table cimport C_MAX_ORDER, CSlot, CountTable, NgramTable

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
    cdef size_t cap, most = 0
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
    # Each level's buffer starts at twice the limit, but no larger than the level's
    # n-grams need (a limit far above them, from a huge vocabulary size on a small
    # corpus, asked for gigabytes); the buffers grow when full, and when they prune
    # does not change what is kept (top_push).
    try:
        for L in range(2, order + 1):
            cap = min(2 * st.limit + 1024 if limit > 0 else 1 << 16, sv[L] + 1024)
            most = max(most, cap)
            st.top[L].keys = <uint64_t*>malloc(cap * sizeof(uint64_t))
            st.top[L].counts = <int64_t*>malloc(cap * sizeof(int64_t))
            st.top[L].cap = cap
            if st.top[L].keys == NULL or st.top[L].counts == NULL:
                raise MemoryError()
        st.scratch = <int64_t*>malloc(max(most, 1) * sizeof(int64_t))
        st.scratch_cap = max(most, 1)
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
