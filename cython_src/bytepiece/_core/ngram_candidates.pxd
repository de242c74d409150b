# The candidate pieces of a counted NgramTable (ngram_candidates.pyx): what the n-gram
# model reads when it picks its own candidates.

from libc.stdint cimport int64_t

from .ngram_table cimport NgramTable


cdef tuple level_candidates(NgramTable table, int L, int64_t min_count, Py_ssize_t limit=*)
