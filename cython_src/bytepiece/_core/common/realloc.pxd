# Growing a malloc'd buffer without losing it when memory runs out. Header-only.

from libc.stdlib cimport realloc


cdef inline int realloc_into(void** p, size_t size) noexcept nogil:
    """*p = realloc(*p, size); -1 (and *p unchanged, still valid) when out of memory."""
    cdef void* q = realloc(p[0], size)
    if q == NULL:
        return -1
    p[0] = q
    return 0
