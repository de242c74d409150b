# The compiled part of the Tokenizer: the attributes that encode's per-call path reads,
# held in C slots, and that path itself.
#
# Why it is built this way: a 60-byte line costs about two microseconds to segment, and
# a Python method around the call added a sixth to that (its twelve defaults, a dozen
# attribute and global lookups). bytepiece.tokenizer.Tokenizer subclasses TokenizerCore:
# its attributes _lattice, _stream, _alpha, ... are these slots, set from Python as any
# attribute is. encode() here serves the common call (str or bytes, Viterbi or the exact
# sampler, unkeyed or with an int key, boundary constraints as a mask or positions, no
# special tokens or numpy output) with direct C calls into the lattice; every other call goes to _encode_careful, the
# careful path in Python (bytepiece.encoding.TextEncoder.encode), which gives the same
# ids for the common calls too.

from cpython.object cimport PyObject_GetIter
from libc.stdint cimport uint64_t

from .constrained cimport constrained_ids
from .draws cimport draw_many
from .lattice cimport DrawStream, Lattice
from .segment cimport MAX_ALPHA, MODE_EXACT, MODE_VITERBI

from .draws import MAX_COUNT

from unicodedata import normalize as _normalize_form


cdef class TokenizerCore:
    """The slots of a Tokenizer that encode's fast path reads (set by Tokenizer._init and
    set_seed), and encode itself."""
    cdef public Lattice _lattice
    cdef public DrawStream _stream
    cdef public double _alpha          # the default alpha (negative: Viterbi)
    cdef public bint _normalize        # whether str input is normalised ...
    cdef public object _form           # ... to this form ("NFC", ...)
    cdef public object _to_bytes       # bytes-like input -> the bytes the lattice segments
    cdef public uint64_t _int_word     # the seed word of int keys (keys.seed_words)
    cdef public int _bos_id, _eos_id

    def encode(self, text, add_bos=False, add_eos=False, alpha=None, iter=False, *, key=None,
               sampler="exact", allowed_special=(), disallowed_special=(), as_numpy=False,
               required_boundaries=None, forbidden_boundaries=None, boundary_regex=None):
        """Ids of ``text`` (see :meth:`tokenize` for ``alpha``, ``key``, ``sampler`` and the
        boundary constraints).

        >>> tok.encode("tokenizer", add_eos=True)
        [13720, 4292, 117, 2]

        Special tokens (``special_tokens`` of the model) found in ``text`` are encoded as
        ordinary text unless listed in ``allowed_special`` (a set of them, or ``"all"``);
        those found in ``disallowed_special`` (a set or ``"all"``: every special token not
        allowed) raise ValueError. ``as_numpy=True`` returns a numpy array of
        :attr:`id_dtype` (uint16 when the vocabulary has at most 65536 ids). ``iter=True``
        returns an iterator over the ids, as in BytePiece 0.6.3.
        """
        cdef double a
        cdef int bos, eos
        cdef uint64_t key_word = 0
        cdef bint constrained = required_boundaries is not None or forbidden_boundaries is not None
        cdef bint fast = (
            not as_numpy and not allowed_special and not disallowed_special and boundary_regex is None
            and sampler == "exact" and (alpha is None or type(alpha) is float)
        )
        if fast and key is not None:
            if type(key) is int and 0 <= key <= 0xFFFFFFFFFFFFFFFF:
                key_word = key
            else:
                fast = False     # (the careful path hashes other keys)
        if not fast:
            return self._encode_careful(
                text, add_bos, add_eos, alpha, iter, key, sampler, allowed_special, disallowed_special, as_numpy,
                required_boundaries, forbidden_boundaries, boundary_regex,
            )
        a = self._alpha if alpha is None else <double>alpha
        bos = self._bos_id if add_bos else -1
        eos = self._eos_id if add_eos else -1
        if constrained:
            ids = self._encode_constrained(text, a, key, key_word, bos, eos, required_boundaries, forbidden_boundaries)
            if ids is None:
                return self._encode_careful(
                    text, add_bos, add_eos, alpha, iter, key, sampler, allowed_special, disallowed_special,
                    as_numpy, required_boundaries, forbidden_boundaries, boundary_regex,
                )
            return PyObject_GetIter(ids) if iter else ids
        # A str goes to the core as it is: the core reads an ASCII str's buffer in place
        # and encodes any other into a buffer of the call's own.
        data = self._text_in(text)
        if a < 0:  # (NaN is not < 0: mode_of rejects it below)
            ids = self._lattice.encode_one(data, -1.0, MODE_VITERBI, 0, 0, bos, eos)
        elif key is None:
            ids = self._stream.encode_next(data, a, bos, eos)
        else:
            ids = self._lattice.encode_one(data, a, self._lattice.mode_of(a, MODE_EXACT), self._int_word, key_word,
                                           bos, eos)
        return PyObject_GetIter(ids) if iter else ids

    cdef object _encode_constrained(self, object text, double alpha, object key, uint64_t key_word, int bos, int eos,
                                    object required, object forbidden):
        """encode under boundary constraints (constrained.pyx): the ids, or None when the
        careful path must read the constraints (it raises the error that names them)."""
        data = self._bytes_in(text)
        ids = constrained_ids(self._lattice, data, alpha, None, None, self._stream if key is None else None,
                              self._int_word, key_word, bos, eos, required, forbidden)
        if ids is False:
            self._encoder.no_segmentation(data, required, forbidden)
        return ids

    def sample(self, text, n, alpha, *, key=None, with_log_prob=False, required_boundaries=None,
               forbidden_boundaries=None, boundary_regex=None):
        """``n`` independent exact draws of the segmentation of ``text`` from
        exp(alpha * score) / Z, from one forward pass: a list of ``n`` id lists, or with
        ``with_log_prob=True`` a list of ``(ids, log_prob)``.

        >>> for ids, log_prob in tok.sample("tokenizer", 3, 0.1, key=7, with_log_prob=True):
        ...     print(ids, round(log_prob, 3))
        [119, 114, 1341, 113, 1332, 1294] -4.717
        [119, 1374, 1292, 108, 4815] -4.511
        [119, 114, 1341, 113, 108, 1463, 117] -5.182

        ``log_prob`` is the exact log-probability of that segmentation under the sampling
        distribution (``log_prob(text, pieces, alpha)``): what importance sampling over
        segmentations needs as the proposal's probability. Draws cost one pass over the
        text plus a short walk each, not one pass each. With ``key``, the draws are a pure
        function of (seed, key, text, alpha) and draw ``i`` does not depend on ``n``;
        without it, each call takes one number of the tokenizer's unkeyed stream.
        Boundary constraints as in :meth:`tokenize`.
        """
        cdef uint64_t seed_word, key_word
        if (type(alpha) is not float or not 0.0 <= alpha <= MAX_ALPHA or type(n) is not int
                or not 0 <= n <= MAX_COUNT or required_boundaries is not None or forbidden_boundaries is not None
                or boundary_regex is not None
                or (key is not None and not (type(key) is int and 0 <= key <= 0xFFFFFFFFFFFFFFFF))):
            return self._sampler.sample(
                text, n, alpha, key=key, with_log_prob=with_log_prob, required_boundaries=required_boundaries,
                forbidden_boundaries=forbidden_boundaries, boundary_regex=boundary_regex,
            )
        data = self._bytes_in(text)
        if key is None:
            seed_word = self._stream.word
            key_word = self._stream.calls
            self._stream.calls += 1
        else:
            seed_word = self._int_word
            key_word = key
        draws, logps = draw_many(self._lattice, data, n, alpha, seed_word, key_word, True, None, None, True,
                                 with_log_prob)
        if with_log_prob:
            # log P <= 0: rounding in alpha * score and log Z must not make it positive.
            return [(ids, 0.0 if logp > 0.0 else logp) for ids, logp in zip(draws, logps)]
        return draws

    cdef object _text_in(self, object text):
        """What the lattice segments: a str normalised (no normal form changes ASCII, so
        it is taken as it is), other input as _to_bytes makes it."""
        if type(text) is str:
            return _normalize_form(self._form, text) if self._normalize and not text.isascii() else text
        return self._to_bytes(text)

    cdef bytes _bytes_in(self, object text):
        """_text_in as bytes (what _to_bytes gives, without a Python call for a str)."""
        data = self._text_in(text)
        return data.encode("utf-8") if type(data) is str else data
