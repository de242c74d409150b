# Text as the kernels read it: bytes, or the UTF-8 of a str made without the GIL, and
# 0.6.3's NFC normalisation done mostly without the GIL too (text.pxd declares them).
#
# Why it is built this way: a batch must not hold the GIL while it works, but a str's
# UTF-8 and its NFC form are Python's business. So the texts are gathered first, with
# the GIL (gather_texts: bytes and ASCII str are read in place), and then a non-ASCII
# str is encoded to UTF-8 here, from its code points, on the thread that segments it.
#
# NFC without the GIL: a str whose every character is "inert" (canonical combining
# class 0 and NFC quick check Yes: it is not changed, nothing before it reorders or
# composes with it) is in NFC; that is unicodedata's own quick check, on whose YES
# normalize("NFC", s) returns s itself. Which characters are inert is learnt from
# unicodedata one page of 256 code points at a time, when a batch first meets the page,
# and kept for the process: the one process-wide table of the core. It only ever gains
# pages (a cache of a pure function of the Unicode database), each written with the GIL
# held and published by a release store of its flag, so a thread reading without the GIL
# sees whole pages. A str with a character that is not inert, or on a page not learnt
# yet, is passed to unicodedata.normalize with the GIL.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc
from libc.string cimport memcpy, memset

from .common.atomics cimport load_acquire, store_release

from .._numpy import np

from unicodedata import combining as _combining
from unicodedata import decomposition as _decomposition
from unicodedata import is_normalized as _is_normalized
from unicodedata import normalize as _normalize


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)


#
# A str whose every character is "inert" (canonical combining class 0 and NFC quick
# check Yes: it is not changed, nothing before it reorders or composes with it) is in
# NFC: that is unicodedata's own quick check, on whose YES normalize("NFC", s) returns
# s itself. Which characters are inert is learnt from unicodedata one page of 256 code
# points at a time, when a batch first meets the page, and kept for the process. A
# batch checks its non-ASCII str against these bits without the GIL; only a str with a
# character that is not inert, or on a page not learnt yet, is passed to
# unicodedata.normalize. Pages are written with the GIL held and published by a
# release store of their flag, so a thread reading without the GIL sees whole pages.

cdef uint8_t nfc_ready[0x1100]          # page learnt (written last)
cdef uint64_t nfc_inert[0x1100][4]      # one bit per code point of the page
_nfc_composing = None                   # see nfc_composing()


cdef inline bint nfc_inert_char(uint32_t c) noexcept nogil:
    cdef uint32_t p = c >> 8
    if not load_acquire(&nfc_ready[p]):
        return False
    return (nfc_inert[p][(c >> 6) & 3] >> (c & 63)) & 1


cdef bint nfc_is_inert(const TextIn* t) noexcept nogil:
    """Every character of the (non-ASCII) str is known to be inert, so the str is NFC."""
    cdef Py_ssize_t i
    cdef uint32_t c
    cdef const uint8_t* p1 = <const uint8_t*>t.chars
    cdef const uint16_t* p2 = <const uint16_t*>t.chars
    cdef const uint32_t* p4 = <const uint32_t*>t.chars
    if t.kind == 1:
        for i in range(t.size):
            c = p1[i]
            if c >= 0x80 and not nfc_inert_char(c):
                return False
    elif t.kind == 2:
        for i in range(t.size):
            c = p2[i]
            if c >= 0x80 and not nfc_inert_char(c):
                return False
    else:
        for i in range(t.size):
            c = p4[i]
            if c >= 0x80 and not nfc_inert_char(c):
                return False
    return True


def nfc_composing():
    """Code points that can compose with the character before them (those whose NFC quick
    check is Maybe): the second of every two-character canonical decomposition, and the
    Hangul vowel and trailing jamo. Found by scanning only the pages that NFD changes.
    (A superset would do no harm: its characters would just take the slow path.)"""
    global _nfc_composing
    if _nfc_composing is not None:
        return _nfc_composing
    found = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    # Every code point but the surrogates, as one str (built from its UTF-32).
    everything = np.concatenate([np.arange(0, 0xD800, dtype="<u4"),
                                 np.arange(0xE000, 0x110000, dtype="<u4")]).tobytes().decode("utf-32-le")
    for lo in range(0, len(everything), 4096):
        block = everything[lo:lo + 4096]
        if _normalize("NFD", block) == block:
            continue
        for start in range(0, len(block), 256):
            page = block[start:start + 256]
            if _normalize("NFD", page) == page:
                continue
            for ch in page:
                d = _decomposition(ch)
                if d and d[0] != "<":
                    parts = d.split()
                    if len(parts) == 2:
                        found.add(int(parts[1], 16))
    _nfc_composing = frozenset(found)
    return _nfc_composing


cdef int nfc_learn_page(uint32_t p) except -1:
    """Learn which code points of page p are inert (GIL held)."""
    cdef uint64_t bits[4]
    cdef uint32_t c
    composing = nfc_composing()
    memset(bits, 0, sizeof(bits))
    for c in range(p << 8, (p << 8) + 256):
        if 0xD800 <= c <= 0xDFFF:
            continue                             # a lone surrogate: str.encode must see it
        ch = chr(c)
        if _combining(ch) == 0 and c not in composing and _is_normalized("NFC", ch):
            bits[(c >> 6) & 3] |= (<uint64_t>1) << (c & 63)
    memcpy(nfc_inert[p], bits, sizeof(bits))
    store_release(&nfc_ready[p], 1)
    return 0


cdef int nfc_learn_text(const TextIn* t) except -1:
    """Learn every page the str's characters are on (GIL held)."""
    cdef Py_ssize_t i
    cdef uint32_t c
    for i in range(t.size):
        if t.kind == 1:
            c = (<const uint8_t*>t.chars)[i]
        elif t.kind == 2:
            c = (<const uint16_t*>t.chars)[i]
        else:
            c = (<const uint32_t*>t.chars)[i]
        if not nfc_ready[c >> 8]:
            nfc_learn_page(c >> 8)
    return 0


def nfc_inert_chars(uint32_t page):
    """The inert code points of a page, learning it if need be (for tests)."""
    if not nfc_ready[page]:
        nfc_learn_page(page)
    return [c for c in range(page << 8, (page << 8) + 256) if nfc_inert_char(c)]


cdef inline Py_ssize_t utf8_put(uint32_t c, uint8_t* out) noexcept nogil:
    """The UTF-8 of code point c >= 0x80 into out; returns its length, or -1 for a surrogate."""
    if c < 0x800:
        out[0] = <uint8_t>(0xC0 | (c >> 6))
        out[1] = <uint8_t>(0x80 | (c & 0x3F))
        return 2
    if c < 0x10000:
        if 0xD800 <= c <= 0xDFFF:
            return -1
        out[0] = <uint8_t>(0xE0 | (c >> 12))
        out[1] = <uint8_t>(0x80 | ((c >> 6) & 0x3F))
        out[2] = <uint8_t>(0x80 | (c & 0x3F))
        return 3
    out[0] = <uint8_t>(0xF0 | (c >> 18))
    out[1] = <uint8_t>(0x80 | ((c >> 12) & 0x3F))
    out[2] = <uint8_t>(0x80 | ((c >> 6) & 0x3F))
    out[3] = <uint8_t>(0x80 | (c & 0x3F))
    return 4


ctypedef fused code_unit:
    uint16_t
    uint32_t


cdef inline Py_ssize_t utf8_of_units(const code_unit* p, Py_ssize_t size, uint8_t* out) noexcept nogil:
    """utf8_encode for 2- and 4-byte code units (one compiled loop per size)."""
    cdef Py_ssize_t i, o = 0, w
    cdef uint32_t c
    for i in range(size):
        c = p[i]
        if c < 0x80:
            out[o] = <uint8_t>c
            o += 1
        else:
            w = utf8_put(c, out + o)
            if w < 0:
                return -1
            o += w
    return o


cdef Py_ssize_t utf8_encode(const TextIn* t, uint8_t* out) noexcept nogil:
    """The UTF-8 of a str's code points into out; returns its length, or -1 at a lone
    surrogate, which UTF-8 cannot carry (str.encode("utf-8") raises there). One loop per
    code unit size, so the loops have no branch on it."""
    cdef Py_ssize_t i, o = 0
    cdef uint32_t c
    cdef const uint8_t* p1 = <const uint8_t*>t.chars
    if t.kind == 1:
        for i in range(t.size):
            c = p1[i]
            if c < 0x80:
                out[o] = <uint8_t>c
                o += 1
            else:
                out[o] = <uint8_t>(0xC0 | (c >> 6))
                out[o + 1] = <uint8_t>(0x80 | (c & 0x3F))
                o += 2
        return o
    if t.kind == 2:
        return utf8_of_units(<const uint16_t*>t.chars, t.size, out)
    return utf8_of_units(<const uint32_t*>t.chars, t.size, out)


cdef const uint8_t* text_utf8(object data, uint8_t* stack, Py_ssize_t room, uint8_t** heap,
                              Py_ssize_t* n) except NULL:
    """The bytes to segment of one text: a bytes object's or an ASCII str's, in place; a
    non-ASCII str's UTF-8, encoded into `stack` (`room` bytes) or, when it needs more,
    into a buffer put in *heap (which the caller frees). Unlike PyUnicode_AsUTF8AndSize
    (text_bytes), it leaves no UTF-8 copy cached on the caller's str."""
    cdef TextIn t
    cdef uint8_t* out
    cdef Py_ssize_t need
    if type(data) is not str or PyUnicode_IS_ASCII(data):
        return text_bytes(data, n)
    t.ptr = NULL
    t.chars = PyUnicode_DATA(data)
    t.size = PyUnicode_GET_LENGTH(data)
    t.kind = PyUnicode_KIND(data)
    t.check_nfc = False
    need = utf8_size_bound(&t)
    if need <= room:
        out = stack
    else:
        out = <uint8_t*>malloc(need)
        if out == NULL:
            raise MemoryError()
        heap[0] = out
    n[0] = utf8_encode(&t, out)
    if n[0] < 0:  # a lone surrogate: the error str.encode gives, naming it
        data.encode("utf-8")
        raise UnicodeEncodeError("utf-8", data, 0, len(data), "surrogates not allowed")
    return out


cdef Py_ssize_t gather_texts(list datas, object form, object convert, TextIn* out, list keep) except -1:
    """Fill out[i] for every text of datas, with the GIL: bytes and ASCII str are read in
    place; a non-ASCII str is normalised first when `form` names a normal form
    (unicodedata.normalize, which returns the str itself when it is already normal) and
    left to utf8_encode; anything else goes through `convert`, which returns bytes or
    raises (TypeError when there is no `convert`). New objects are kept alive in `keep`.
    Returns the room the largest UTF-8 encoding needs."""
    cdef Py_ssize_t i, count = len(datas), room = 0, r
    cdef object d, d2
    cdef bint nfc = form == "NFC"
    for i in range(count):
        d = datas[i]
        if type(d) is str:
            if not PyUnicode_IS_ASCII(d) and form is not None and not nfc:
                d2 = _normalize(form, d)
                if d2 is not d:
                    keep.append(d2)
                    d = d2
            out[i].check_nfc = False
            if PyUnicode_IS_ASCII(d):
                out[i].ptr = <const uint8_t*>PyUnicode_DATA(d)
                out[i].size = PyUnicode_GET_LENGTH(d)
                out[i].kind = 0
            else:
                out[i].ptr = NULL
                out[i].chars = PyUnicode_DATA(d)
                out[i].size = PyUnicode_GET_LENGTH(d)
                out[i].kind = PyUnicode_KIND(d)
                out[i].check_nfc = nfc       # checked without the GIL (nfc_is_inert)
                r = utf8_size_bound(&out[i])
                if r > room:
                    room = r
            continue
        if type(d) is not bytes:
            if convert is None:
                raise TypeError(f"expected str or bytes, not {type(d).__name__}")
            d = convert(d)
            if type(d) is not bytes:
                raise TypeError(f"convert returned {type(d).__name__}, not bytes")
            keep.append(d)
        out[i].ptr = <const uint8_t*>PyBytes_AS_STRING(d)
        out[i].size = PyBytes_GET_SIZE(d)
        out[i].kind = 0
        out[i].check_nfc = False
    return room


cdef Py_ssize_t check_nfc_texts(TextIn* texts, Py_ssize_t count) noexcept nogil:
    """Clear check_nfc of the texts known to be NFC; returns how many are left."""
    cdef Py_ssize_t i, left = 0
    for i in range(count):
        if texts[i].check_nfc:
            if nfc_is_inert(&texts[i]):
                texts[i].check_nfc = False
            else:
                left += 1
    return left


cdef int nfc_apply(TextIn* t, object data, list keep) except -1:
    """With the GIL, for a str that check_nfc_texts could not clear: learn the pages of its
    characters, and when NFC may change it, point t at NFC(data) (kept alive in `keep`)."""
    cdef object d
    t.check_nfc = False
    nfc_learn_text(t)
    if nfc_is_inert(t):
        return 0
    d = _normalize("NFC", data)
    keep.append(d)
    if PyUnicode_IS_ASCII(d):
        t.ptr = <const uint8_t*>PyUnicode_DATA(d)
        t.size = PyUnicode_GET_LENGTH(d)
        t.kind = 0
    else:
        t.chars = PyUnicode_DATA(d)
        t.size = PyUnicode_GET_LENGTH(d)
        t.kind = PyUnicode_KIND(d)
    return 0


cdef Py_ssize_t normalise_left(list datas, TextIn* texts, Py_ssize_t count, list keep) except -1:
    """With the GIL: nfc_apply to every text check_nfc_texts left; returns the room the
    largest UTF-8 needs."""
    cdef Py_ssize_t i, room = 0
    for i in range(count):
        if texts[i].check_nfc:
            nfc_apply(&texts[i], datas[i], keep)
        room = max(room, utf8_size_bound(&texts[i]))
    return room


cdef const uint8_t* text_in_bytes(const TextIn* t, uint8_t* scratch, Py_ssize_t* n) noexcept nogil:
    """The bytes to segment for a gathered text (encoded into scratch if need be); NULL when
    the text cannot be encoded."""
    if t.kind == 0:
        n[0] = t.size
        return t.ptr
    n[0] = utf8_encode(t, scratch)
    if n[0] < 0:
        return NULL
    return scratch


cdef void raise_unencodable(list datas, Py_ssize_t i, object form) except *:
    """Raise the error str.encode gives for text i (it holds a lone surrogate)."""
    d = datas[i]
    if form is not None:
        d = _normalize(form, d)
    d.encode("utf-8")
    raise UnicodeEncodeError("utf-8", d, 0, len(d), "surrogates not allowed")


cdef Py_ssize_t utf8_total(const TextIn* texts, Py_ssize_t count) noexcept nogil:
    """Bytes the gathered texts take at most."""
    cdef Py_ssize_t i, total = 0
    for i in range(count):
        total += texts[i].size if texts[i].kind == 0 else utf8_size_bound(&texts[i])
    return total
