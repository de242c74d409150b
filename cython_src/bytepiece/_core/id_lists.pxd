# Lists of ids for Python, built fast (id_lists.pyx).

from cpython.ref cimport PyObject
from libc.stdint cimport int32_t


cdef list ids_to_objs(const int32_t* vals, Py_ssize_t m, PyObject** objs, int bos, int eos,
                      bint untrack)
cdef list ids_to_list(const int32_t* vals, Py_ssize_t m, const int32_t* ids, int bos, int eos)
cdef int track_lists(list lists) except -1
cdef tuple untracked_tuple(object items)
cdef tuple id_objects(const int32_t* ids, Py_ssize_t n, PyObject** ptrs)
