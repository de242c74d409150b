# A hint to the CPU: fetch the cache line at p now, it will be read soon. The hash
# tables of the trainer (n-gram counts, pair counts) are far larger than the caches,
# and their loops know the next keys ahead of time: fetching a few entries ahead
# overlaps the memory waits that would otherwise come one after another. A hint only:
# it never faults, and where the compiler has no such builtin it does nothing.
# This .pxd has no .pyx and no runtime module.

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define BP_PREFETCH(p) __builtin_prefetch((p))
    #else
    #define BP_PREFETCH(p) ((void)0)
    #endif
    """
    void prefetch "BP_PREFETCH"(const void* p) noexcept nogil
