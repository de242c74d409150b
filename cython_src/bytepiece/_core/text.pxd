# Text as the kernels read it (text.pyx): a gathered text, its UTF-8 without the GIL,
# NFC without the GIL.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport uint8_t


cdef struct TextIn:
    const uint8_t* ptr    # the bytes to segment (a bytes object's, an ASCII str's) ...
    Py_ssize_t size       # ... and how many; or, when kind > 0,
    const void* chars     # a non-ASCII str's code points, `size` of them, `kind` bytes each,
    int kind              # UTF-8 encoded (without the GIL) just before segmenting
    bint check_nfc        # not normalised yet: NFC unless nfc_is_inert says otherwise


cdef inline Py_ssize_t utf8_size_bound(const TextIn* t) noexcept nogil:
    """Room the UTF-8 of a text needs at most (its code unit size bounds its encoding)."""
    if t.kind == 0:
        return 0
    return t.size * (2 if t.kind == 1 else (3 if t.kind == 2 else 4))


cdef inline const uint8_t* text_bytes(object data, Py_ssize_t* n) except NULL:
    """The bytes of a bytes object, or the UTF-8 of a str (read in place, no copy, when
    the str is ASCII)."""
    if type(data) is str:
        return <const uint8_t*>PyUnicode_AsUTF8AndSize(data, n)
    if type(data) is not bytes:
        raise TypeError(f"expected str or bytes, not {type(data).__name__}")
    n[0] = PyBytes_GET_SIZE(data)
    return <const uint8_t*>PyBytes_AS_STRING(data)


cdef const uint8_t* text_utf8(object data, uint8_t* stack, Py_ssize_t room, uint8_t** heap,
                              Py_ssize_t* n) except NULL
cdef Py_ssize_t gather_texts(list datas, object form, object convert, TextIn* out, list keep) except -1
cdef Py_ssize_t check_nfc_texts(TextIn* texts, Py_ssize_t count) noexcept nogil
cdef Py_ssize_t normalise_left(list datas, TextIn* texts, Py_ssize_t count, list keep) except -1
cdef int nfc_apply(TextIn* t, object data, list keep) except -1
cdef bint nfc_is_inert(const TextIn* t) noexcept nogil
cdef const uint8_t* text_in_bytes(const TextIn* t, uint8_t* scratch, Py_ssize_t* n) noexcept nogil
cdef Py_ssize_t utf8_total(const TextIn* texts, Py_ssize_t count) noexcept nogil
cdef void raise_unencodable(list datas, Py_ssize_t i, object form) except *
