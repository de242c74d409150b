# Many exact draws of one text from one forward pass (draws.pyx), for the Tokenizer's
# compiled part.

from libc.stdint cimport uint64_t

from .lattice cimport Lattice


cdef object draw_many(Lattice lattice, bytes data, Py_ssize_t count, double alpha, uint64_t seed_word,
                      uint64_t key_word, bint chunked, object cuts, object banned, bint lists, bint log_probs)
