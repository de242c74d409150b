# The segmentation kernels' shared vocabulary: the model as the kernels see it, the
# modes, and the one dispatch (the per-call scratch space is workspace.pxd's). segment.pyx holds the
# kernels (Viterbi, windowed Viterbi, the exact samplers, the legacy sampler);
# forward-backward, the lattice queries, the batch driver and the trainer's passes
# use these types too.
#
# Every kernel reads the lattice's edges from the vocabulary's Aho-Corasick automaton
# (automaton.pxd), one transition per byte, and keeps per position only what it must:
# its value (score or forward sum) and the piece it chose there (the piece's start is
# the position minus its length). The chosen path is read back from the end into the
# same array, so a result costs no more room than the choices. Nothing here is global:
# a kernel reads the Model (immutable) and writes only the Workspace its caller owns, so
# any number of threads run kernels at once without locks.

from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, memset

from .common.rng cimport Rng
from .automaton cimport AcNode, AcPiece, Automaton, ac_next
from .workspace cimport Workspace, ws_free, ws_init, ws_long, ws_reserve, ws_start


cdef enum Mode:
    MODE_VITERBI = 0
    MODE_EXACT = 1          # exact sampling, forward sums in linear space (mantissa * 2**exponent)
    MODE_EXACT_LOG = 2      # exact sampling, forward sums in log space (very large alpha)
    MODE_LEGACY_V1 = 3      # the first, flawed sampler (a negative control, never a default)


cdef enum:
    WINDOW_MIN = 1 << 20        # Viterbi over longer texts keeps a window of positions, not all
    WINDOW_FIRST = 1 << 16      # (seg_viterbi_window); the window's first size, in positions
    STACK_WORKSPACE = 32768     # bytes of stack the per-call methods lend for short texts


# Linear-space sampling keeps forward sums as mantissa * 2**exponent and renormalises a
# mantissa only when it leaves [RENORM_LOW, RENORM_HIGH] = [2**-100, 2**100]; a cached
# weight exp(alpha * logp) is at least exp(-LINEAR_LIMIT) > 2**-866, so mantissa * weight
# never leaves the normal range. Larger alpha * |logp| takes the log-space twin.
# exact_plain, which keeps no exponents, runs while forward sums stay within
# [RENORM_LOW, PLAIN_HIGH = 2**960]: a sum of at most max_len weights (each <= 1, as
# logp <= 0) times mantissas <= 2**960 cannot overflow, and the low end keeps every
# product normal. Its sums are then the exact scalings by powers of two of
# exact_scaled's, so both loops draw the same samples. When a sum leaves that range,
# exact_plain rescales the sums that later edges read by one power of two (exact) and
# goes on; exact_scaled takes over only when they cannot all fit the range at one scale.
cdef extern from *:
    """
    #define BP_LINEAR_LIMIT 600.0
    #define BP_RENORM_LOW 0x1p-100
    #define BP_RENORM_HIGH 0x1p100
    #define BP_PLAIN_HIGH 0x1p960
    #define BP_MAX_ALPHA 1e4
    """
    const double LINEAR_LIMIT "BP_LINEAR_LIMIT"
    const double RENORM_LOW "BP_RENORM_LOW"
    const double RENORM_HIGH "BP_RENORM_HIGH"
    const double PLAIN_HIGH "BP_PLAIN_HIGH"
    const double MAX_ALPHA "BP_MAX_ALPHA"


# The samplers and the lattice queries take 0 <= alpha <= MAX_ALPHA. Log-space sums hold
# alpha * score, so their absolute precision is an ulp of that product: beyond MAX_ALPHA
# the differences between nearly tied segmentations drown in rounding (and products
# overflow long before alpha reaches the float range). As alpha grows the distribution
# tends to Viterbi's ties shared evenly; alpha < 0 asks for Viterbi itself.
cdef inline int check_alpha(double alpha) except -1:
    if not (alpha >= 0 and alpha <= MAX_ALPHA):
        raise ValueError(
            f"alpha must be a number from 0 to {MAX_ALPHA:g} for sampling and lattice queries, not {alpha} "
            f"(a negative alpha gives Viterbi, the limit of large alphas)"
        )
    return 0


cdef struct Model:
    Automaton ac
    const double* logp   # per piece index
    const double* q      # exp(alpha * logp) per piece index (sampling in linear space)
    double alpha
    const uint8_t* cuts     # NULL, or 1 at each position where a boundary is required ...
    const uint8_t* banned   # ... or forbidden (constraints.py; len(text) + 1 entries)


cdef inline bint advance(const Model* M, const uint8_t* x, Py_ssize_t e, int32_t* state, double* value,
                         double unreachable) noexcept nogil:
    """Move the automaton's state over byte x[e - 1] under the constraints at end
    position e: a required boundary at e - 1 restarts it at the root first (no piece
    crosses the boundary); a forbidden one at e makes e unreachable (its value is set to
    `unreachable`: -inf for scores and log sums, 0 for linear sums) and returns True, so
    that the caller skips e's edges. Edges that start at an unreachable position then
    weigh nothing in every kernel."""
    if M.cuts != NULL and M.cuts[e - 1]:
        state[0] = 0
    state[0] = ac_next(M.ac.nodes, state[0], x[e - 1])
    if M.banned != NULL and M.banned[e]:
        value[0] = unreachable
        return True
    return False


cdef inline int32_t byte_piece(const Model* M, uint8_t c) noexcept nogil:
    """The piece index of the single byte c."""
    return M.ac.nodes[M.ac.nodes[0].base + c].out


cdef inline double pow2(int64_t d) noexcept nogil:
    """2.0**d for d <= 0, built from its bits (0 below the normal range)."""
    cdef uint64_t bits
    cdef double out
    if d < -1022:
        return 0.0
    bits = <uint64_t>(d + 1023) << 52
    memcpy(&out, &bits, sizeof(double))
    return out


cdef inline void reverse_pieces(int32_t* vals, int32_t* ends, Py_ssize_t m) noexcept nogil:
    """Reverse m pieces (indices and end positions) in place: a backward walk writes
    them last first."""
    cdef Py_ssize_t i
    cdef int32_t t
    for i in range(m // 2):
        t = vals[i]; vals[i] = vals[m - 1 - i]; vals[m - 1 - i] = t
        t = ends[i]; ends[i] = ends[m - 1 - i]; ends[m - 1 - i] = t


cdef inline double log_weights(const Model* M, const double* fwd, const int32_t* starts,
                               const int32_t* values, int k, double* out) noexcept nogil:
    """out[j] = fwd[starts[j]] + alpha * logp of the k edges (their log forward weights,
    fwd a log-space forward sum); returns the largest (-inf when every start is
    unreachable)."""
    cdef int j
    cdef double top = -INFINITY, c
    for j in range(k):
        c = fwd[starts[j]] + M.alpha * M.logp[values[j]]
        out[j] = c
        if c > top:
            top = c
    return top


cdef inline Py_ssize_t exact_pick_at(double* cum, Py_ssize_t k, double u) noexcept nogil:
    """The edge that u = uniform * total picks among k >= 2 edges, from their running
    sums cum (room for k + 3: the padding makes the first four comparisons fixed). The
    last sum (the total) never counts: u below it would not, and u == total (a product
    rounded up, or a total of 0 where constraints leave no start reachable) must still
    pick an edge, not the padding."""
    cdef Py_ssize_t i, j
    cum[k - 1] = INFINITY
    cum[k] = INFINITY
    cum[k + 1] = INFINITY
    cum[k + 2] = INFINITY
    j = (cum[0] <= u) + (cum[1] <= u) + (cum[2] <= u) + (cum[3] <= u)
    for i in range(4, k):
        j += cum[i] <= u
    return j


cdef Py_ssize_t read_back(const Model* M, int32_t* backv, Py_ssize_t n) noexcept nogil
cdef void copy_out(const Model* M, const int32_t* vals, Py_ssize_t m, Py_ssize_t first, int32_t* out_val,
                   int32_t* out_end) noexcept nogil

# segment's result when boundary constraints leave a chunk without a segmentation
# (-1 is out of memory).
cdef enum:
    NO_SEGMENTATION = -2

# segment() writes the pieces into ws.result (and copies them to out_val, their end
# positions to out_end, when those are not NULL: constraints need out_val). Returns how
# many, -1 when out of memory.
cdef Py_ssize_t segment(const Model* M, int mode, const uint8_t* x, Py_ssize_t n, bint chunked,
                        bint forbid_whole, Rng* rng, Workspace* ws,
                        int32_t* out_val, int32_t* out_end) noexcept nogil
cdef Py_ssize_t seg_viterbi_window(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked,
                                   Py_ssize_t first_cap, int32_t* out_val) noexcept nogil
cdef Py_ssize_t seg_exact_windowed(const Model* M, const uint8_t* x, Py_ssize_t n, bint chunked, Rng* rng,
                                   Workspace* ws, Py_ssize_t window) noexcept nogil
