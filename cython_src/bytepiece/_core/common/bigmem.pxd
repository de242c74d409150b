# Allocation of the big hash tables (n-gram counts, piece counts, the n-gram model,
# the EM's pair counts).
#
# Why it is built this way: a table of MBs is filled by random probes, and tables
# are made and freed many times per training run (per block, per stage, per EM
# round). From malloc, every new table costs a page fault per 4 KB touched, and
# after the first big free glibc raises its mapping threshold, so freed tables stay
# resident in its heaps. Here a block of BIG_BLOCK bytes or more gets its own
# anonymous mapping, asked to be backed by transparent huge pages (2 MB pages: 512
# times fewer faults and TLB misses where the kernel allows them, with
# `madvise`-mode THP as on most distributions), and goes back to the system on
# free. A mapped block's data starts on a 2 MB boundary (the mapping is 2 MB longer
# than asked; the slack is never touched), so all of it can be huge pages. Smaller
# blocks come from malloc. A 64-byte header before the data says where the block
# starts and how long it is, so big_free and big_realloc need only the pointer.
# Every pointer from big_alloc/big_realloc must be released with big_free, never free.

cdef extern from *:
    """
    #include <stdlib.h>
    #include <string.h>
    #if defined(__linux__)
    #include <sys/mman.h>
    #define BP_HAVE_MMAP 1
    #else
    #define BP_HAVE_MMAP 0
    #endif
    #define BP_BIG_BLOCK ((size_t)1 << 21)
    #define BP_HUGE ((size_t)1 << 21)
    #define BP_HEAD 64

    /* The header, in the 64 bytes before the data: where the block starts (the mapping
       or the malloc'd block), the mapping's length (0: from malloc) and the data size. */
    typedef struct { char* base; size_t mapped; size_t size; } bp_head;

    static inline void* bp_alloc(size_t n, int zero) {
        char* base;
        char* data;
        size_t mapped = 0;
        if (n > ((size_t)-1) / 2) return NULL;
    #if BP_HAVE_MMAP
        if (n + BP_HEAD >= BP_BIG_BLOCK) {
            /* 2 MB more than needed, so the data can start on a 2 MB boundary and every
               2 MB of it can be one huge page; the slack is never touched (no memory). */
            size_t len = n + BP_HEAD + BP_HUGE;
            void* p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) return NULL;
            base = (char*)p;
            data = (char*)((((size_t)base + BP_HEAD) + BP_HUGE - 1) & ~(BP_HUGE - 1));
    #if defined(MADV_HUGEPAGE)
            madvise(data, (n + BP_HUGE - 1) & ~(BP_HUGE - 1), MADV_HUGEPAGE);  /* a hint */
    #endif
            mapped = len;              /* zero-filled by the kernel */
        } else
    #endif
        {
            base = (char*)(zero ? calloc(1, n + BP_HEAD) : malloc(n + BP_HEAD));
            if (base == NULL) return NULL;
            data = base + BP_HEAD;
        }
        ((bp_head*)(data - BP_HEAD))->base = base;
        ((bp_head*)(data - BP_HEAD))->mapped = mapped;
        ((bp_head*)(data - BP_HEAD))->size = n;
        return data;
    }

    static inline void bp_free(void* p) {
        bp_head* h;
        if (p == NULL) return;
        h = (bp_head*)((char*)p - BP_HEAD);
    #if BP_HAVE_MMAP
        if (h->mapped) { munmap(h->base, h->mapped); return; }
    #endif
        free(h->base);
    }

    /* Contents kept up to the smaller size; NULL (and p untouched) when out of memory. */
    static inline void* bp_realloc(void* p, size_t n) {
        bp_head* h;
        char* base;
        void* q;
        size_t old;
        if (p == NULL) return bp_alloc(n, 0);
        if (n > ((size_t)-1) / 2) return NULL;
        h = (bp_head*)((char*)p - BP_HEAD);
        old = h->size;
        if (!h->mapped && n + BP_HEAD < BP_BIG_BLOCK) {
            base = (char*)realloc(h->base, n + BP_HEAD);
            if (base == NULL) return NULL;
            ((bp_head*)base)->base = base;
            ((bp_head*)base)->size = n;
            return base + BP_HEAD;
        }
        q = bp_alloc(n, 0);
        if (q == NULL) return NULL;
        memcpy(q, p, old < n ? old : n);
        bp_free(p);
        return q;
    }

    /* Gives back to the system the 2 MB stripe of a table's data that ends at byte
       `end * slot_size`, when the data is a mapping of its own (bp_alloc puts it on a
       2 MB boundary): its pages read as zeros afterwards, and the caller never reads
       them again. For a table copied into a new one while it is read, stripe by stripe. */
    static inline void bp_release_stripe(void* data, size_t end, size_t slot_size) {
    #if BP_HAVE_MMAP
        if (((size_t)data & (BP_HUGE - 1)) == 0)
            madvise((char*)data + end * slot_size - BP_HUGE, BP_HUGE, MADV_DONTNEED);
    #else
        (void)data; (void)end; (void)slot_size;
    #endif
    }
    """
    void* big_alloc "bp_alloc"(size_t n, int zero) nogil
    void big_free "bp_free"(void* p) nogil
    void* big_realloc "bp_realloc"(void* p, size_t n) nogil
    void big_release_stripe "bp_release_stripe"(void* data, size_t end, size_t slot_size) noexcept nogil
