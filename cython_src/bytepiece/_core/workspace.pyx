# The per-call scratch space of the segmentation kernels (workspace.pxd declares it):
# the arrays a kernel keeps per position of one text, and per edge of one position.
#
# Why it is built this way: every array of a call lives in one block, grown
# geometrically across the texts of a batch, so a thread segmenting many texts
# allocates a few times in all; a short text uses a buffer on its caller's stack and
# allocates nothing. The bounded-memory kernels for long texts keep their choices
# beside the block (ws_long). A Workspace belongs to one caller and one thread: the
# kernels share nothing else.

from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from .common.realloc cimport realloc_into


cdef int ws_reserve(Workspace* ws, Py_ssize_t n, int32_t max_len) noexcept nogil:
    """Room for a text of n bytes, in one block (the caller's stack buffer when it fits);
    returns -1 when out of memory."""
    cdef Py_ssize_t m = n + 1, L = max_len + 1
    cdef size_t size
    cdef char* p
    if m <= ws.cap:
        return 0
    m = m if m > 2 * ws.cap else 2 * ws.cap     # grow geometrically across texts
    if L > m:     # at most m - 1 edges end at a position of a text that fits (plus weights[k])
        L = m
    size = <size_t>m * (sizeof(double) + sizeof(int64_t) + 2 * sizeof(int32_t)) \
        + <size_t>L * (sizeof(double) + 2 * sizeof(int32_t)) + 3 * sizeof(double) + 64
    free(ws.block)
    ws.block = NULL
    if ws.stack != NULL and size <= ws.stack_size:
        p = <char*>ws.stack
        ws.stack = NULL                          # lend it once; growth goes to the heap
    else:
        ws.block = malloc(size)
        if ws.block == NULL:
            ws.cap = 0
            return -1
        p = <char*>ws.block
    # 8-byte arrays first, then 4-byte ones: every array stays aligned.
    ws.score = <double*>p;       p += m * sizeof(double)
    ws.expo = <int64_t*>p;       p += m * sizeof(int64_t)
    ws.weights = <double*>p;     p += (L + 3) * sizeof(double)   # + 3: exact_pick's padding
    ws.aux = <int32_t*>p;        p += m * sizeof(int32_t)
    ws.backv = <int32_t*>p;      p += m * sizeof(int32_t)
    ws.starts = <int32_t*>p;     p += L * sizeof(int32_t)
    ws.values = <int32_t*>p
    ws.pairs = ws.starts                         # starts and values are adjacent: 2L int32
    ws.edges = L
    ws.cap = m
    return 0


cdef int ws_start(Workspace* ws, Py_ssize_t n, int32_t max_len) except -1:
    """An empty workspace with room for a text of n bytes (MemoryError if there is none)."""
    memset(ws, 0, sizeof(Workspace))
    if ws_reserve(ws, n, max_len) < 0:
        ws_free(ws)
        raise MemoryError()
    return 0


cdef int32_t* ws_long(Workspace* ws, Py_ssize_t count) noexcept nogil:
    """Room for `count` piece indices beside the block (a long text's choices or result);
    NULL when out of memory."""
    if count > ws.long_cap:
        if realloc_into(<void**>&ws.long_out, <size_t>count * sizeof(int32_t)) < 0:
            return NULL
        ws.long_cap = count
    return ws.long_out


cdef void ws_free(Workspace* ws) noexcept nogil:
    free(ws.block)
    free(ws.long_out)
    memset(ws, 0, sizeof(Workspace))
