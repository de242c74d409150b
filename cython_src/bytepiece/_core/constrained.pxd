# Constrained encoding's per-call path (constrained.pyx), for the Tokenizer's compiled part.

from libc.stdint cimport uint64_t

from .lattice cimport DrawStream, Lattice


cdef object constrained_ids(Lattice lattice, bytes data, double alpha, object words, object key, DrawStream stream,
                            uint64_t seed_word, uint64_t key_word, int bos, int eos, object required,
                            object forbidden)
