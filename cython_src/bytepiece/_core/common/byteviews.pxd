# Pointers to and lengths of the bytes objects of a list, for loops that run
# without the GIL (the lattice's batch queries, the trainer's counting passes).
#
# Why it is built this way: every such loop gathers the same two arrays first,
# with the GIL held; this .pxd (inline, no .pyx, no runtime module) is that one
# gathering step. The views borrow the list's bytes: the list must stay alive and
# unchanged until views_free.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t
from libc.stdlib cimport free, malloc


cdef struct ByteViews:
    const uint8_t** ptrs
    Py_ssize_t* lens
    Py_ssize_t count
    Py_ssize_t longest     # the largest of lens (0 for no items)


cdef inline int views_of(list items, ByteViews* v) except -1:
    """Fills v from items (TypeError if an item is not bytes or is None, MemoryError); v must be
    released with views_free afterwards, also when this raised."""
    cdef Py_ssize_t i, n = len(items)
    cdef bytes item
    v.count = n
    v.longest = 0
    v.ptrs = <const uint8_t**>malloc((n + 1) * sizeof(uint8_t*))
    v.lens = <Py_ssize_t*>malloc((n + 1) * sizeof(Py_ssize_t))
    if v.ptrs == NULL or v.lens == NULL:
        raise MemoryError()
    for i in range(n):
        item = items[i]          # (a bytes variable accepts None: refused below)
        if item is None:
            raise TypeError(f"item {i} is None, not bytes")
        v.ptrs[i] = <const uint8_t*>PyBytes_AS_STRING(item)
        v.lens[i] = PyBytes_GET_SIZE(item)
        if v.lens[i] > v.longest:
            v.longest = v.lens[i]
    return 0


cdef inline void views_free(ByteViews* v) noexcept nogil:
    free(v.ptrs)
    free(v.lens)
    v.ptrs = NULL
    v.lens = NULL
