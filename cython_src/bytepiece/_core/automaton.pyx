# Building the Aho-Corasick automaton of a vocabulary (automaton.pxd says what it is and
# why the kernels walk it).
#
# How: the pieces are sorted (their first 8 bytes radix-sorted as one integer, runs of
# equal heads put in order by a full comparison), then the double-array trie is filled
# depth-first from that order, each node's children placed at the smallest free base
# where all their slots are free (a doubly linked free list of slots; depth-first
# placement keeps the nodes of one path, which a text walks in turn, close together).
# The failure and output links are then set one depth at a time, following the sorted
# pieces down together (the pieces that share a prefix are adjacent, so each node is met
# once): a node's failure is the transition on its last byte from its parent's failure,
# which is final because every node above it is. The whole build is linear in the total
# length of the pieces; lookups never allocate. The double array is sized from the number
# of trie nodes, counted from the sorted pieces (first-fit placement fills it almost
# without holes), and what is left after the last node is given back: a model's largest
# allocation, it is also what a cold start's peak memory is made of.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from .common.realloc cimport realloc_into


cdef class _FreeList:
    """Free slots of the double array under construction, as a doubly linked list."""
    cdef int32_t* nxt
    cdef int32_t* prv
    cdef int32_t cap
    cdef int32_t head

    def __dealloc__(self):
        free(self.nxt)
        free(self.prv)


cdef int grow_slots(Automaton* A, _FreeList fl, int32_t new_cap) except -1:
    """Grow the slots to new_cap (+256 padding); the new slots join the free list."""
    cdef int32_t old = fl.cap, i, tail = -1
    cdef size_t n = <size_t>new_cap + 256
    if (realloc_into(<void**>&A.nodes, n * sizeof(AcNode)) < 0
            or realloc_into(<void**>&fl.nxt, n * sizeof(int32_t)) < 0
            or realloc_into(<void**>&fl.prv, n * sizeof(int32_t)) < 0):
        raise MemoryError()
    for i in range(old, new_cap + 256):
        A.nodes[i].base = 0
        A.nodes[i].check = -1
        A.nodes[i].fail = 0
        A.nodes[i].out = -1
    # Append the new slots [old, new_cap) to the free list (kept in increasing order).
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


cdef int32_t find_base(Automaton* A, _FreeList fl, const int32_t* labels, int nlabels) except -1:
    """The smallest base >= 1 whose slots base + label are all free."""
    cdef int32_t slot, b, j, start
    while True:
        if fl.head < 0:
            grow_slots(A, fl, fl.cap * 2)
        slot = fl.head
        start = slot
        while True:
            b = slot - labels[0]
            if b >= 1:
                for j in range(1, nlabels):
                    if b + labels[j] >= fl.cap or A.nodes[b + labels[j]].check != -1:
                        break
                else:
                    return b
            slot = fl.nxt[slot]
            if slot == start:
                break                       # wrapped around: make room and retry
        grow_slots(A, fl, fl.cap * 2)


cdef inline int key_cmp(const uint8_t* a, int32_t la, const uint8_t* b, int32_t lb) noexcept nogil:
    """Bytes order of a and b (a proper prefix comes first)."""
    cdef int32_t i = 0
    while i < la and i < lb:
        if a[i] != b[i]:
            return <int>a[i] - <int>b[i]
        i += 1
    return la - lb


cdef inline int32_t common_prefix(const uint8_t* a, int32_t la, const uint8_t* b, int32_t lb) noexcept nogil:
    """The length of the longest common prefix of a and b."""
    cdef int32_t i = 0
    while i < la and i < lb and a[i] == b[i]:
        i += 1
    return i


cdef inline uint64_t key_head(const uint8_t* a, int32_t la) noexcept nogil:
    """The first 8 bytes of a, big-endian, zero-padded: comparing two of these orders
    the keys correctly unless they are equal (then key_cmp decides)."""
    cdef uint64_t h = 0
    cdef int32_t t
    for t in range(8):
        h = (h << 8) | (a[t] if t < la else 0)
    return h


cdef void merge_sort_keys(const uint8_t** kp, const int32_t* kl, int32_t* order, int32_t* tmp,
                          Py_ssize_t n) noexcept nogil:
    """order[0:n] (piece indices) sorted by key_cmp: a bottom-up merge sort, for the long
    runs of keys with equal heads that sort_keys leaves."""
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
                if key_cmp(kp[a], kl[a], kp[b], kl[b]) < 0:
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


cdef int sort_keys(const uint8_t** kp, const int32_t* kl, int32_t* order, int32_t* tmp,
                   Py_ssize_t n) except -1:
    """order[0:n] (piece indices) sorted by bytes. Each key's first 8 bytes, as one integer
    (key_head), are radix-sorted (least significant byte first, 8 stable passes, a pass
    skipped when all keys share its byte); the runs of keys with equal heads, usually a
    few keys, are then put in order by key_cmp (by insertion, or merge_sort_keys when a
    run is longer than 16)."""
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
            head[i] = key_head(kp[order[i]], kl[order[i]])
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
        # runs of equal heads: sorted by the whole keys (by insertion when short)
        i = 0
        while i < n:
            run = i + 1
            while run < n and head[run] == head[i]:
                run += 1
            if run - i > 16:
                merge_sort_keys(kp, kl, order + i, tmp, run - i)
                i = run
                continue
            for j in range(i + 1, run):
                key = order[j]
                shift = j
                while shift > i and key_cmp(kp[key], kl[key], kp[order[shift - 1]], kl[order[shift - 1]]) < 0:
                    order[shift] = order[shift - 1]
                    shift -= 1
                order[shift] = key
            i = run
    free(head); free(head2)
    return 0


cdef int fill_trie(Automaton* A, _FreeList fl, const uint8_t** kp, const int32_t* kl,
                   const int32_t* kv, Py_ssize_t nkeys) except -1:
    """The double array of the sorted keys kv, depth first; each node that is a piece
    gets its index in `out` (the links are set afterwards)."""
    cdef int32_t lo, hi, depth, node, b, g, nlabels, key, i
    cdef int32_t labels[256]
    cdef int32_t group_lo[257]
    cdef Py_ssize_t top, room = 1024
    cdef int32_t* stack = <int32_t*>malloc(4 * room * sizeof(int32_t))  # (node, lo, hi, depth)
    if stack == NULL:
        raise MemoryError()
    try:
        freelist_take(fl, 0)                 # slot 0 is the root
        A.nodes[0].check = -2
        stack[0] = 0; stack[1] = 0; stack[2] = <int32_t>nkeys; stack[3] = 0
        top = 1
        while top:
            top -= 1
            node = stack[4 * top]; lo = stack[4 * top + 1]; hi = stack[4 * top + 2]; depth = stack[4 * top + 3]
            if lo < hi and kl[kv[lo]] == depth:  # sorted: the key ending here comes first
                A.nodes[node].out = kv[lo]
                lo += 1
            if lo >= hi:
                A.nodes[node].base = 0
                continue
            nlabels = 0
            for i in range(lo, hi):
                key = kv[i]
                b = kp[key][depth]
                if nlabels == 0 or b != labels[nlabels - 1]:
                    labels[nlabels] = b
                    group_lo[nlabels] = i
                    nlabels += 1
            group_lo[nlabels] = hi
            b = find_base(A, fl, labels, nlabels)
            A.nodes[node].base = b
            for g in range(nlabels):
                freelist_take(fl, b + labels[g])
                A.nodes[b + labels[g]].check = node
            if top + nlabels > room:
                room = 2 * (top + nlabels)
                if realloc_into(<void**>&stack, 4 * room * sizeof(int32_t)) < 0:
                    raise MemoryError()
            for g in range(nlabels - 1, -1, -1):     # the first child is filled first
                stack[4 * top] = b + labels[g]
                stack[4 * top + 1] = group_lo[g]
                stack[4 * top + 2] = group_lo[g + 1]
                stack[4 * top + 3] = depth + 1
                top += 1
    finally:
        free(stack)
    return 0


cdef int set_links(Automaton* A, const uint8_t** kp, const int32_t* kl, const int32_t* kv,
                   Py_ssize_t nkeys) except -1:
    """The failure and output links of every node and the `next` link of every piece,
    one depth at a time. active[a] is a key (position in the sorted order) longer than
    the current depth d and at[a] its node at depth d; the keys stay in sorted order, so
    the keys through one node at depth d + 1 are adjacent."""
    cdef int32_t* active = <int32_t*>malloc(max(nkeys, 1) * sizeof(int32_t))
    cdef int32_t* at = <int32_t*>malloc(max(nkeys, 1) * sizeof(int32_t))
    cdef AcNode* nodes = A.nodes
    cdef Py_ssize_t nactive = nkeys, a, w, d = 0
    cdef int32_t key, node, child, last, f, v
    cdef uint8_t c
    if active == NULL or at == NULL:
        free(active); free(at)
        raise MemoryError()
    with nogil:
        for a in range(nkeys):
            active[a] = <int32_t>a
            at[a] = 0
        while nactive:
            last = -1
            w = 0
            for a in range(nactive):
                key = kv[active[a]]
                node = at[a]
                c = kp[key][d]
                child = nodes[node].base + c
                if child != last:                   # a node met for the first time
                    last = child
                    f = 0 if node == 0 else ac_next(nodes, nodes[node].fail, c)
                    nodes[child].fail = f
                    v = nodes[child].out            # its own piece (set by fill_trie), or -1
                    if v >= 0:
                        A.pieces[v].next = nodes[f].out
                    else:
                        nodes[child].out = nodes[f].out
                if kl[key] > d + 1:
                    active[w] = active[a]
                    at[w] = child
                    w += 1
            nactive = w
            d += 1
    free(active); free(at)
    return 0


cdef int trim_slots(Automaton* A, int32_t cap) except -1:
    """Give back the free slots after the last node (first-fit placement leaves almost
    none before it), keeping the 256 slots of padding."""
    cdef int32_t last = cap - 1
    while last > 0 and A.nodes[last].check == -1:
        last -= 1
    A.size = last + 1
    if realloc_into(<void**>&A.nodes, (<size_t>A.size + 256) * sizeof(AcNode)) < 0:
        raise MemoryError()
    return 0


cdef int automaton_build(Automaton* A, list pieces) except -1:
    """The automaton of the byte strings `pieces` (piece i has index i). Items that are
    not bytes are replaced by bytes(item) in the list. ValueError (nothing allocated) if
    a piece is empty or appears twice, or a single byte is missing."""
    cdef Py_ssize_t nkeys = len(pieces), singles = 0, i, nodes = 1
    cdef int32_t shared
    cdef bytes piece
    cdef size_t room = max(nkeys, 1)
    cdef int64_t total = 0
    cdef const uint8_t** kp = <const uint8_t**>malloc(room * sizeof(uint8_t*))
    cdef int32_t* kl = <int32_t*>malloc(room * sizeof(int32_t))
    cdef int32_t* kv = <int32_t*>malloc(room * sizeof(int32_t))
    cdef int32_t* tmp = <int32_t*>malloc(room * sizeof(int32_t))
    cdef _FreeList fl = _FreeList()
    memset(A, 0, sizeof(Automaton))
    fl.nxt = fl.prv = NULL
    fl.cap = 0
    fl.head = -1
    try:
        if kp == NULL or kl == NULL or kv == NULL or tmp == NULL:
            raise MemoryError()
        if nkeys >= (1 << 31) - 1:
            raise ValueError("too many pieces")
        for i in range(nkeys):
            if type(pieces[i]) is not bytes:
                pieces[i] = bytes(pieces[i])
            piece = pieces[i]
            if PyBytes_GET_SIZE(piece) >= (1 << 31) - 1:
                raise ValueError("a piece is too long")
            kp[i] = <const uint8_t*>PyBytes_AS_STRING(piece)
            kl[i] = <int32_t>PyBytes_GET_SIZE(piece)
            kv[i] = <int32_t>i
            total += kl[i]
            if kl[i] == 0:
                raise ValueError("pieces must not be empty")
            singles += kl[i] == 1
            if kl[i] > A.max_len:
                A.max_len = kl[i]
        sort_keys(kp, kl, kv, tmp, nkeys)
        # The trie's nodes: the root and, per key in sorted order, the bytes after its
        # common prefix with the key before it (all of it: the same key twice).
        for i in range(nkeys):
            shared = common_prefix(kp[kv[i - 1]], kl[kv[i - 1]], kp[kv[i]], kl[kv[i]]) if i else 0
            if shared == kl[kv[i]] and shared == kl[kv[i - 1]]:
                raise ValueError("a piece appears twice")
            nodes += kl[kv[i]] - shared
        if singles != 256:
            raise ValueError(f"all 256 single bytes must be pieces ({256 - singles} missing)")
        if total >= (1 << 30):
            raise ValueError("the pieces are too long in all (at most 2**30 bytes)")
        A.pieces = <AcPiece*>malloc(room * sizeof(AcPiece))
        if A.pieces == NULL:
            raise MemoryError()
        for i in range(nkeys):
            A.pieces[i].len = kl[i]
            A.pieces[i].next = -1
        A.num_pieces = <int32_t>nkeys
        # (room for every node and a little more: the array grows if placement needs it)
        grow_slots(A, fl, <int32_t>(nodes + nodes // 16 + 512))
        fill_trie(A, fl, kp, kl, kv, nkeys)
        trim_slots(A, fl.cap)
        set_links(A, kp, kl, kv, nkeys)
    except BaseException:
        automaton_free(A)
        raise
    finally:
        free(kp); free(kl); free(kv); free(tmp)
    return 0


cdef void automaton_free(Automaton* A) noexcept nogil:
    free(A.nodes)
    free(A.pieces)
    memset(A, 0, sizeof(Automaton))
