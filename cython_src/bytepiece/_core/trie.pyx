# Building the reversed double-array trie (trie.pxd says what it is and why).
#
# How: the reversed keys are sorted (their first 8 reversed bytes radix-sorted as one
# integer, runs of equal heads put in order by a full comparison), then the trie is
# filled depth-first from that order, each node's children placed at the smallest free
# base where all their slots are free (a doubly linked free list of slots). The build
# runs once per vocabulary; lookups never allocate.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

cdef class _FreeList:
    """Free slots of the double array under construction, as a doubly linked list."""
    cdef int32_t* nxt
    cdef int32_t* prv
    cdef int32_t cap
    cdef int32_t head

    def __dealloc__(self):
        free(self.nxt)
        free(self.prv)

cdef int grow_int32(int32_t** array, size_t n) except -1:
    """Resize an int32 array to n entries (MemoryError, array untouched, if impossible)."""
    cdef int32_t* p = <int32_t*>realloc(array[0], n * sizeof(int32_t))
    if p == NULL:
        raise MemoryError()
    array[0] = p
    return 0

cdef int trie_grow(Trie* trie, _FreeList fl, int32_t new_cap) except -1:
    """Grow every array to new_cap slots (+256 padding); new slots join the free list."""
    cdef int32_t old = fl.cap, i
    cdef size_t n = <size_t>(new_cap + 256)
    grow_int32(&trie.base, n)
    grow_int32(&trie.check, n)
    grow_int32(&trie.value, n)
    grow_int32(&fl.nxt, n)
    grow_int32(&fl.prv, n)
    for i in range(old, new_cap + 256):
        trie.base[i] = 0
        trie.check[i] = -1
        trie.value[i] = -1
    # Append the new slots [old, new_cap) to the free list (kept in increasing order).
    cdef int32_t tail = -1
    if fl.head >= 0:
        tail = fl.prv[fl.head]          # the list is circular: head.prv is the tail
    for i in range(old, new_cap):
        fl.prv[i] = i - 1
        fl.nxt[i] = i + 1
    if fl.head < 0:
        fl.head = old
        fl.prv[old] = new_cap - 1
    else:
        fl.nxt[tail] = old
        fl.prv[old] = tail
        fl.prv[fl.head] = new_cap - 1
    fl.nxt[new_cap - 1] = fl.head
    fl.cap = new_cap
    return 0

cdef inline void freelist_take(_FreeList fl, int32_t slot) noexcept:
    cdef int32_t a = fl.prv[slot], b = fl.nxt[slot]
    if b == slot:                        # the last free slot
        fl.head = -1
        return
    fl.nxt[a] = b
    fl.prv[b] = a
    if fl.head == slot:
        fl.head = b

cdef int32_t find_base(Trie* trie, _FreeList fl, const int32_t* labels, int nlabels) except -1:
    """The smallest base >= 1 whose slots base + label are all free."""
    cdef int32_t slot, b, j, start
    while True:
        if fl.head < 0:
            trie_grow(trie, fl, fl.cap * 2)
        slot = fl.head
        start = slot
        while True:
            b = slot - labels[0]
            if b >= 1:
                for j in range(1, nlabels):
                    if b + labels[j] >= fl.cap or trie.check[b + labels[j]] != -1:
                        break
                else:
                    return b
            slot = fl.nxt[slot]
            if slot == start:
                break                       # wrapped around: make room and retry
        trie_grow(trie, fl, fl.cap * 2)

cdef inline int rev_cmp(const uint8_t* a, int32_t la, const uint8_t* b, int32_t lb) noexcept nogil:
    """Compares a[::-1] with b[::-1] (bytes order; a proper prefix comes first)."""
    cdef int32_t i = la - 1, j = lb - 1
    while i >= 0 and j >= 0:
        if a[i] != b[j]:
            return <int>a[i] - <int>b[j]
        i -= 1
        j -= 1
    return la - lb

cdef inline uint64_t rev_head(const uint8_t* a, int32_t la) noexcept nogil:
    """The first 8 bytes of a[::-1], big-endian, zero-padded: comparing two of these
    orders the reversed keys correctly unless they are equal (then rev_cmp decides)."""
    cdef uint64_t h = 0
    cdef int32_t t
    for t in range(8):
        h = (h << 8) | (a[la - 1 - t] if t < la else 0)
    return h

cdef void merge_sort_reversed(const uint8_t** kp, const int32_t* kl, int32_t* order, int32_t* tmp,
                              Py_ssize_t n) noexcept nogil:
    """order[0:n] (piece indices) sorted by reversed bytes (rev_cmp): a bottom-up merge
    sort, for the long runs of keys with equal heads that sort_reversed leaves."""
    cdef Py_ssize_t width = 1, lo, mid, hi, i, j, k
    cdef int32_t* src = order
    cdef int32_t* dst = tmp
    cdef int32_t* t
    cdef int32_t a, b
    while width < n:
        lo = 0
        while lo < n:
            mid = lo + width if lo + width < n else n
            hi = lo + 2 * width if lo + 2 * width < n else n
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                a = src[j]
                b = src[i]
                if rev_cmp(kp[a], kl[a], kp[b], kl[b]) < 0:
                    dst[k] = a; j += 1
                else:
                    dst[k] = b; i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]; i += 1; k += 1
            while j < hi:
                dst[k] = src[j]; j += 1; k += 1
            lo = hi
        t = src; src = dst; dst = t
        width *= 2
    if src != order:
        memcpy(order, src, n * sizeof(int32_t))

cdef int sort_reversed(const uint8_t** kp, const int32_t* kl, int32_t* order, int32_t* tmp,
                       Py_ssize_t n) except -1:
    """order[0:n] (piece indices) sorted by reversed bytes. Each key's first 8 reversed
    bytes, as one integer (rev_head), are radix-sorted (least significant byte first,
    8 stable passes, a pass skipped when all keys share its byte); the runs of keys with
    equal heads, usually a few keys, are then put in order by rev_cmp (by insertion, or
    merge_sort_reversed when a run is longer than 16)."""
    cdef Py_ssize_t i, j, run, shift
    cdef Py_ssize_t count[256]
    cdef uint64_t h
    cdef int32_t key
    cdef uint64_t* head = <uint64_t*>malloc(max(n, 1) * sizeof(uint64_t))
    cdef uint64_t* head2 = <uint64_t*>malloc(max(n, 1) * sizeof(uint64_t))
    cdef uint64_t* hs
    if head == NULL or head2 == NULL:
        free(head); free(head2)
        raise MemoryError()
    with nogil:
        for i in range(n):
            head[i] = rev_head(kp[order[i]], kl[order[i]])
        for shift in range(0, 64, 8):
            memset(count, 0, sizeof(count))
            for i in range(n):
                count[(head[i] >> shift) & 255] += 1
            if n == 0 or count[(head[0] >> shift) & 255] == n:
                continue                         # every key has the same byte here
            j = 0
            for i in range(256):
                run = count[i]
                count[i] = j
                j += run
            for i in range(n):
                h = head[i]
                j = count[(h >> shift) & 255]
                count[(h >> shift) & 255] = j + 1
                head2[j] = h
                tmp[j] = order[i]
            hs = head; head = head2; head2 = hs
            memcpy(order, tmp, n * sizeof(int32_t))
        # runs of equal heads: sorted by the whole reversed keys (by insertion when short)
        i = 0
        while i < n:
            run = i + 1
            while run < n and head[run] == head[i]:
                run += 1
            if run - i > 16:
                merge_sort_reversed(kp, kl, order + i, tmp, run - i)
                i = run
                continue
            for j in range(i + 1, run):
                key = order[j]
                shift = j
                while shift > i and rev_cmp(kp[key], kl[key], kp[order[shift - 1]], kl[order[shift - 1]]) < 0:
                    order[shift] = order[shift - 1]
                    shift -= 1
                order[shift] = key
            i = run
    free(head); free(head2)
    return 0

cdef int trie_build(Trie* trie, list pieces) except -1:
    """Double-array trie of the reversed byte strings `pieces`, mapping each to its index
    in the list. Items that are not bytes are replaced by bytes(item) in the list.
    ValueError (trie untouched) if a piece is empty or appears twice, or a single byte
    is missing."""
    cdef Py_ssize_t nkeys = len(pieces), total = 0, top, singles = 0
    cdef int32_t i, lo, hi, depth, node, b, g, nlabels, key
    cdef int32_t labels[256]
    cdef int32_t group_lo[257]
    cdef bytes piece
    cdef size_t room = max(nkeys, 1)
    cdef const uint8_t** kp = <const uint8_t**>malloc(room * sizeof(uint8_t*))
    cdef int32_t* kl = <int32_t*>malloc(room * sizeof(int32_t))
    cdef int32_t* kv = <int32_t*>malloc(room * sizeof(int32_t))
    cdef int32_t* tmp = <int32_t*>malloc(room * sizeof(int32_t))
    cdef int32_t* stack = NULL             # (node, lo, hi, depth) per entry
    cdef _FreeList fl = _FreeList()
    try:
        if kp == NULL or kl == NULL or kv == NULL or tmp == NULL:
            raise MemoryError()
        trie.base = trie.check = trie.value = NULL
        fl.nxt = fl.prv = NULL
        fl.cap = 0
        fl.head = -1
        trie.max_len = 0
        for i in range(nkeys):
            if type(pieces[i]) is not bytes:
                pieces[i] = bytes(pieces[i])
            piece = pieces[i]
            kp[i] = <const uint8_t*>PyBytes_AS_STRING(piece)
            kl[i] = <int32_t>PyBytes_GET_SIZE(piece)
            kv[i] = i
            total += kl[i]
            if kl[i] == 0:
                raise ValueError("pieces must not be empty")
            singles += kl[i] == 1
            if kl[i] > trie.max_len:
                trie.max_len = kl[i]
        sort_reversed(kp, kl, kv, tmp, nkeys)
        for i in range(1, nkeys):
            if rev_cmp(kp[kv[i - 1]], kl[kv[i - 1]], kp[kv[i]], kl[kv[i]]) == 0:
                raise ValueError("a piece appears twice")
        if singles != 256:
            raise ValueError(f"all 256 single bytes must be pieces ({256 - singles} missing)")
        # Every stack entry is a node still to fill, so there are never more than nodes.
        stack = <int32_t*>malloc(4 * (total + 2) * sizeof(int32_t))
        if stack == NULL:
            raise MemoryError()
        trie_grow(trie, fl, max(512, <int32_t>(total * 1.1) + 512))
        freelist_take(fl, 0)                 # slot 0 is the root
        trie.check[0] = -2
        stack[0] = 0; stack[1] = 0; stack[2] = <int32_t>nkeys; stack[3] = 0
        top = 1
        while top:
            top -= 1
            node = stack[4 * top]; lo = stack[4 * top + 1]; hi = stack[4 * top + 2]; depth = stack[4 * top + 3]
            if lo < hi and kl[kv[lo]] == depth:  # sorted: the key ending here comes first
                trie.value[node] = kv[lo]
                lo += 1
            if lo >= hi:
                trie.base[node] = 0
                continue
            nlabels = 0
            for i in range(lo, hi):
                key = kv[i]
                b = kp[key][kl[key] - 1 - depth]
                if nlabels == 0 or b != labels[nlabels - 1]:
                    labels[nlabels] = b
                    group_lo[nlabels] = i
                    nlabels += 1
            group_lo[nlabels] = hi
            b = find_base(trie, fl, labels, nlabels)
            trie.base[node] = b
            for g in range(nlabels):
                freelist_take(fl, b + labels[g])
                trie.check[b + labels[g]] = node
            for g in range(nlabels):
                stack[4 * top] = b + labels[g]
                stack[4 * top + 1] = group_lo[g]
                stack[4 * top + 2] = group_lo[g + 1]
                stack[4 * top + 3] = depth + 1
                top += 1
        trie.size = fl.cap
    finally:
        free(kp); free(kl); free(kv); free(tmp); free(stack)
    return 0

cdef void trie_free(Trie* trie) noexcept nogil:
    free(trie.base)
    free(trie.check)
    free(trie.value)
    memset(trie, 0, sizeof(Trie))
