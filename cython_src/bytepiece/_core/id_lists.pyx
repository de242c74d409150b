# Lists of ids for Python, built fast: the per-text result of encode and of a batch; and
# a vocabulary's tuples, kept out of the cycle collector's walks.
#
# Why it is built this way: a batch of short lines spends as much time building lists
# as segmenting. So a list takes, for each token, a new reference to a prebuilt int
# object per piece index (one INCREF, no allocation), and a batch's lists are hidden
# from the cycle collector while they are built: they hold only ints and nothing can
# reach them before the batch returns, but every collection the batch's own
# allocations trigger would otherwise walk all of them.

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.long cimport PyLong_FromLong
from cpython.ref cimport Py_INCREF, PyObject
from libc.stdint cimport int32_t


cdef extern from "Python.h":
    void incref_raw "Py_INCREF"(PyObject* o)
    void list_set_raw "PyList_SET_ITEM"(object lst, Py_ssize_t i, PyObject* o)
    void PyObject_GC_Track(object o)
    void PyObject_GC_UnTrack(object o)
    int PyObject_GC_IsTracked(object o)
    int PyObject_IS_GC(object o)


cdef list ids_to_objs(const int32_t* vals, Py_ssize_t m, PyObject** objs, int bos, int eos,
                      bint untrack):
    """Like ids_to_list, from a prebuilt int object per piece index: one INCREF per token
    instead of allocating (and later freeing) an int object. With `untrack` the list is
    hidden from the cycle collector until track_lists() (see batch.pyx)."""
    cdef Py_ssize_t extra = (bos >= 0) + (eos >= 0), i, o = 0
    cdef list out = PyList_New(m + extra)
    cdef object item
    cdef PyObject* p
    if untrack:
        PyObject_GC_UnTrack(out)
    if bos >= 0:
        item = PyLong_FromLong(bos); Py_INCREF(item); PyList_SET_ITEM(out, o, item); o += 1
    for i in range(m):
        p = objs[vals[i]]
        incref_raw(p)
        list_set_raw(out, o, p)
        o += 1
    if eos >= 0:
        item = PyLong_FromLong(eos); Py_INCREF(item); PyList_SET_ITEM(out, o, item)
    return out


cdef list ids_to_list(const int32_t* vals, Py_ssize_t m, const int32_t* ids, int bos, int eos):
    cdef Py_ssize_t extra = (bos >= 0) + (eos >= 0), i, o = 0
    cdef list out = PyList_New(m + extra)
    cdef object item
    if bos >= 0:
        item = PyLong_FromLong(bos); Py_INCREF(item); PyList_SET_ITEM(out, o, item); o += 1
    for i in range(m):
        item = PyLong_FromLong(ids[vals[i]]); Py_INCREF(item); PyList_SET_ITEM(out, o, item); o += 1
    if eos >= 0:
        item = PyLong_FromLong(eos); Py_INCREF(item); PyList_SET_ITEM(out, o, item)
    return out


cdef int track_lists(list lists) except -1:
    """Hand the id lists that the batch driver built back to the cycle collector.

    A batch builds thousands of lists; while they are young every collection that the
    batch's own allocations trigger walks all of them (about a tenth of a batch's time,
    all of it holding the GIL). They hold only ints, and nothing can reach them before
    the batch returns, so they cannot be part of a cycle until then: they are built
    untracked and tracked again here, once, when the batch is complete."""
    cdef object item
    for item in lists:
        if type(item) is list and not PyObject_GC_IsTracked(item):
            PyObject_GC_Track(item)
    if not PyObject_GC_IsTracked(lists):     # (encode_lists builds it untracked)
        PyObject_GC_Track(lists)
    return 0


cdef tuple untracked_tuple(object items):
    """tuple(items), untracked by the cycle collector when none of its items is an object
    the collector tracks (bytes, int, float, str): such a tuple can be part of no cycle.
    CPython untracks it itself, but only at the first collection that walks it, item by
    item; a vocabulary's tuples (80k items each) would otherwise be walked by that
    collection, or by the full one at exit (about 5 ms for a tokenizer's four)."""
    cdef tuple out = tuple(items)
    cdef object item
    for item in out:
        if PyObject_IS_GC(item):
            return out
    PyObject_GC_UnTrack(out)
    return out


cdef tuple id_objects(const int32_t* ids, Py_ssize_t n, PyObject** ptrs):
    """The prebuilt int objects of ids_to_objs: a tuple of the n ids as ints (untracked,
    as untracked_tuple makes it), each also written to ptrs[i] (borrowed from the tuple)."""
    cdef tuple out = PyTuple_New(n)
    cdef object item
    cdef Py_ssize_t i
    for i in range(n):
        item = PyLong_FromLong(ids[i])
        Py_INCREF(item)
        PyTuple_SET_ITEM(out, i, item)
        ptrs[i] = <PyObject*>item
    PyObject_GC_UnTrack(out)
    return out


def atomic_tuple(items):
    """untracked_tuple(items), for the Python modules."""
    return untracked_tuple(items)
