# A vocabulary compiled for segmentation, and a tokenizer's stream of unkeyed draws
# (lattice.pyx). The batch driver, the lattice queries, the trainer's passes, the
# Tokenizer's compiled part and the test hooks read their fields through this
# declaration.

from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, uint64_t

from .segment cimport Model
from .automaton cimport Automaton


cdef class Lattice:
    cdef Automaton ac
    cdef double[::1] logp
    cdef const double* logp_ptr
    cdef int32_t[::1] ids
    cdef readonly int num_pieces
    cdef readonly int max_len
    cdef readonly double min_logprob
    cdef dict _weights          # alpha -> address of exp(alpha * logp), built on first use
    cdef list _weight_arrays    # the arrays behind those addresses
    cdef double _last_alpha     # the last cached alpha looked up, and its address: a
    cdef object _last_address   # sampling loop asks for the same alpha every call
    cdef const double* _last_q  # ... and that address as a pointer (the per-call fast path)
    cdef tuple _id_objs         # the id of each piece index as a Python int ...
    cdef PyObject** _id_ptrs    # ... and as pointers (borrowed from _id_objs), for ids_to_objs
    cdef Lattice _ac_owner      # a lattice made by with_logprobs borrows its automaton from this one
    cdef int32_t _id_shift      # ids[i] == i + _id_shift for every i, or -1
    cdef object __weakref__

    cdef int mode_of(self, double alpha, int sampler) except -1
    cdef object weights_for(self, double alpha, int mode)
    cdef void fill_model(self, Model* M, double alpha, object weights)
    cdef int constrain(self, Model* M, object cuts, object banned, Py_ssize_t n) except -1
    cdef object encode_one(self, object data, double alpha, int mode, uint64_t seed_word, uint64_t key_word,
                           int bos, int eos)


cdef class DrawStream:
    cdef readonly Lattice lattice
    cdef public uint64_t word
    cdef uint64_t calls

    cdef object encode_next(self, object data, double alpha, int bos, int eos)
