# The per-call scratch space of the segmentation kernels (workspace.pyx).

from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset


cdef struct Workspace:
    double* score        # per position: Viterbi best score / forward mantissa / forward log weight
    int64_t* expo        # forward exponent (linear-space sampling)
    int32_t* aux         # a kernel's own int per position (an automaton state, say)
    int32_t* backv       # the piece chosen at each position; then the result, read back into it
    int32_t* starts      # edges of one position (max_len of them at most)
    int32_t* values
    int32_t* pairs       # the same room as (start, value) pairs, for the exact sampler
    double* weights
    int32_t* result      # segment()'s pieces in text order (in backv or in long_out)
    int32_t* long_out    # room for the result of a long text (the bounded-memory kernels)
    Py_ssize_t long_cap
    Py_ssize_t cap       # texts up to cap - 1 bytes fit
    Py_ssize_t edges     # room for this many edges of one position (starts, values; pairs twice)
    void* block          # the malloc'd block behind the arrays (NULL: caller's buffer)
    void* stack          # a caller's buffer for small texts, and its size
    size_t stack_size


cdef inline void ws_init(Workspace* ws, void* stack, size_t stack_size) noexcept nogil:
    """An empty workspace that may use the caller's buffer `stack` for a small text."""
    memset(ws, 0, sizeof(Workspace))
    ws.stack = stack
    ws.stack_size = stack_size


cdef int ws_reserve(Workspace* ws, Py_ssize_t n, int32_t max_len) noexcept nogil
cdef int ws_start(Workspace* ws, Py_ssize_t n, int32_t max_len) except -1
cdef int32_t* ws_long(Workspace* ws, Py_ssize_t count) noexcept nogil
cdef void ws_free(Workspace* ws) noexcept nogil
