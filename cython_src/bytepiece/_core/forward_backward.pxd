# Forward-backward over the lattice of a text (forward_backward.pyx): log Z, expected
# piece counts and boundary probabilities.

from libc.stdint cimport int32_t, int64_t, uint8_t

from .segment cimport Model, Workspace


cdef struct EdgeStore:
    int32_t* start      # the edges of one chunk, grouped by end position
    int32_t* value
    # per edge: exp(alpha * logp) of its piece (forward-backward), or its running share
    # of its end position's forward sum (draws.pyx)
    double* weight
    int64_t* first      # first[e]: index of the first edge ending at e (first[e + 1]: past the last)
    size_t cap          # room for this many edges
    size_t npos         # and positions


cdef struct EdgePosteriors:
    int32_t* start      # the edges whose posterior probability is above 0 ...
    int32_t* end
    int32_t* value      # (piece index)
    double* prob        # ... and that probability
    size_t size
    size_t cap


cdef void ep_free(EdgePosteriors* ep) noexcept nogil
cdef int es_reserve(EdgeStore* es, size_t edges, size_t positions) noexcept nogil
cdef void es_free(EdgeStore* es) noexcept nogil
cdef double forward_backward(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                             bint logspace, Workspace* ws, EdgeStore* es, double* bwd, double* counts,
                             const int32_t* ids, double* marginals, double weight,
                             EdgePosteriors* posteriors) noexcept nogil
