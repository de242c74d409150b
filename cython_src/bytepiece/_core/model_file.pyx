# Reading a model file in the layout BytePiece 0.6.3 writes (model_file.pyx): the fast
# path of bytepiece/model.py's loader.
#
# Why it is built this way: a model file is one JSON object written by json.dumps(indent=4),
# {base64 piece: [id, text, count]} for tens of thousands of pieces. json.loads builds a
# dict, a list and three objects per piece (the text decoded, though nothing reads it)
# before the loader checks them: most of a cold start's time and memory. Here one pass
# over the bytes recognises exactly that layout, decodes each key from base64 straight into
# its piece and parses the id and the count, and checks the text only as JSON and UTF-8.
# Anything else -- other whitespace, escapes in a key, a float or huge count, ids out of
# order, two equal pieces -- answers None, and the loader parses the file with json
# instead: this path only has to be right about what it accepts, never to explain what
# it refuses. It also checks, without a set of the pieces (several MB for a large
# vocabulary, at the moment the file's bytes are still held), that the pieces are
# distinct, and counts the single bytes among them.

from cpython.array cimport array, clone, resize_smart
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memset

from .id_lists cimport untracked_tuple


cdef int B64[256]          # the value of a base64 character, -1 for any other byte
cdef const char* B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
cdef int _b
for _b in range(256):
    B64[_b] = -1
for _b in range(64):
    B64[<uint8_t>B64_ALPHABET[_b]] = _b


cdef inline bint starts(const uint8_t* p, Py_ssize_t left, const char* lit, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if left < n:
        return False
    for i in range(n):
        if p[i] != <uint8_t>lit[i]:
            return False
    return True


cdef Py_ssize_t b64_key(const uint8_t* p, Py_ssize_t left, uint8_t* out, Py_ssize_t* size) noexcept nogil:
    """Decodes a canonical base64 key ending at a '"' (groups of four, the last one padded,
    the bits the padding leaves over zero); the bytes read, or -1."""
    cdef Py_ssize_t i = 0, n = 0
    cdef int a, b, c, d
    while True:
        if left - i < 5:   # (a group and the closing quote)
            return -1
        if p[i] == 34:     # '"'
            break
        a = B64[p[i]]
        b = B64[p[i + 1]]
        if a < 0 or b < 0:
            return -1
        if p[i + 2] == 61 and p[i + 3] == 61:      # "xy=="
            if b & 15 or p[i + 4] != 34:
                return -1
            out[n] = <uint8_t>((a << 2) | (b >> 4))
            n += 1
            i += 4
            break
        c = B64[p[i + 2]]
        if c < 0:
            return -1
        if p[i + 3] == 61:                          # "xyz="
            if c & 3 or p[i + 4] != 34:
                return -1
            out[n] = <uint8_t>((a << 2) | (b >> 4))
            out[n + 1] = <uint8_t>(((b & 15) << 4) | (c >> 2))
            n += 2
            i += 4
            break
        d = B64[p[i + 3]]
        if d < 0:
            return -1
        out[n] = <uint8_t>((a << 2) | (b >> 4))
        out[n + 1] = <uint8_t>(((b & 15) << 4) | (c >> 2))
        out[n + 2] = <uint8_t>(((c & 3) << 6) | d)
        n += 3
        i += 4
    if p[i] != 34 or n == 0:
        return -1
    size[0] = n
    return i + 1


cdef Py_ssize_t json_text(const uint8_t* p, Py_ssize_t left) noexcept nogil:
    """The length of a JSON string that starts at p (quotes included) whose bytes are valid
    UTF-8 as Python's strict decoder takes it, or -1."""
    cdef Py_ssize_t i = 1, k
    cdef uint8_t x, y, lo, hi
    cdef int need
    if left < 2 or p[0] != 34:
        return -1
    while i < left:
        x = p[i]
        if x == 34:
            return i + 1
        if x < 0x20:
            return -1
        if x == 92:            # backslash
            if i + 1 >= left:
                return -1
            y = p[i + 1]
            if y == 117:       # \uXXXX
                if i + 6 > left:
                    return -1
                for k in range(i + 2, i + 6):
                    if not (48 <= p[k] <= 57 or 65 <= p[k] <= 70 or 97 <= p[k] <= 102):
                        return -1
                i += 6
            elif y == 34 or y == 92 or y == 47 or y == 98 or y == 102 or y == 110 or y == 114 or y == 116:
                i += 2
            else:
                return -1
            continue
        if x < 0x80:
            i += 1
            continue
        # a multi-byte character: the lead byte fixes the range of the second byte
        if 0xC2 <= x <= 0xDF:
            need = 1
            lo, hi = 0x80, 0xBF
        elif x == 0xE0:
            need = 2
            lo, hi = 0xA0, 0xBF
        elif 0xE1 <= x <= 0xEC or x == 0xEE or x == 0xEF:
            need = 2
            lo, hi = 0x80, 0xBF
        elif x == 0xED:        # (no surrogates)
            need = 2
            lo, hi = 0x80, 0x9F
        elif x == 0xF0:
            need = 3
            lo, hi = 0x90, 0xBF
        elif 0xF1 <= x <= 0xF3:
            need = 3
            lo, hi = 0x80, 0xBF
        elif x == 0xF4:
            need = 3
            lo, hi = 0x80, 0x8F
        else:
            return -1
        if i + need >= left or not (lo <= p[i + 1] <= hi):
            return -1
        for k in range(i + 2, i + 1 + need):
            if not (0x80 <= p[k] <= 0xBF):
                return -1
        i += 1 + need
    return -1


cdef Py_ssize_t json_int(const uint8_t* p, Py_ssize_t left, int64_t* value) noexcept nogil:
    """A positive JSON integer of at most 18 digits (no leading zero): its length, or -1."""
    cdef Py_ssize_t i = 0
    cdef int64_t v = 0
    if left < 1 or not (49 <= p[0] <= 57):
        return -1
    while i < left and 48 <= p[i] <= 57:
        if i == 18:
            return -1
        v = v * 10 + (p[i] - 48)
        i += 1
    value[0] = v
    return i


cdef int all_distinct(list pieces) except -1:
    """1 when no two of the bytes objects are equal, else 0 (an open-addressing table of
    their indices, by their hash; the hashes stay cached in the objects)."""
    cdef Py_ssize_t n = len(pieces), size = 16, i, slot
    cdef int32_t* table
    cdef bytes piece, other
    while size < 2 * n:
        size <<= 1
    table = <int32_t*>malloc(size * sizeof(int32_t))
    if table == NULL:
        raise MemoryError()
    memset(table, 0xFF, size * sizeof(int32_t))      # (-1: an empty slot)
    try:
        for i in range(n):
            piece = pieces[i]
            slot = hash(piece) & (size - 1)
            while table[slot] >= 0:
                other = pieces[table[slot]]
                if (PyBytes_GET_SIZE(other) == PyBytes_GET_SIZE(piece)
                        and memcmp(PyBytes_AS_STRING(other), PyBytes_AS_STRING(piece), PyBytes_GET_SIZE(piece)) == 0):
                    return 0
                slot = (slot + 1) & (size - 1)
            table[slot] = <int32_t>i
        return 1
    finally:
        free(table)


def parse_model_json(const uint8_t[::1] raw):
    """(pieces, counts, tail, singles) of a model file in 0.6.3's layout: the pieces
    (bytes, all distinct; an untracked_tuple) and their counts (an array('q'): no int
    object per count) in id order, the offset of the metadata entry's key (0: none; the
    caller parses the entry) and how many pieces are a single byte. None when the file
    is not exactly in that layout or two of its pieces are equal."""
    cdef Py_ssize_t n = raw.shape[0], pos, used, size, expect = 3, ws, singles = 0
    cdef const uint8_t* p
    cdef int64_t ident, count
    cdef uint8_t* buf
    cdef uint8_t seen[256]
    cdef list pieces = []
    cdef array counts = clone(array("q"), 0, False)
    memset(seen, 0, sizeof(seen))
    if n < 2:
        return None
    p = &raw[0]
    buf = <uint8_t*>malloc(<size_t>n)
    if buf == NULL:
        raise MemoryError()
    try:
        if p[0] != 123:          # '{'
            return None
        pos = 1
        # (The steps below are alike by shape on purpose: each reads one literal or one
        # value of the layout, in the order the file has them.)
        while True:
            # separator and key: '\n    "'
            if not starts(p + pos, n - pos, b'\n    "', 6):
                return None
            pos += 6
            if starts(p + pos, n - pos, b'__bytepiece__"', 14):
                if expect == 3:
                    return None
                if not all_distinct(pieces):
                    return None
                return untracked_tuple(pieces), counts, pos - 1, singles
            used = b64_key(p + pos, n - pos, buf, &size)
            if used < 0:
                return None
            pos += used
            if not starts(p + pos, n - pos, b': [\n        ', 12):
                return None
            pos += 12
            used = json_int(p + pos, n - pos, &ident)
            if used < 0 or ident != expect:
                return None
            pos += used
            if not starts(p + pos, n - pos, b',\n        ', 10):
                return None
            pos += 10
            used = json_text(p + pos, n - pos)
            if used < 0:
                return None
            pos += used
            if not starts(p + pos, n - pos, b',\n        ', 10):
                return None
            pos += 10
            used = json_int(p + pos, n - pos, &count)
            if used < 0:
                return None
            pos += used
            if not starts(p + pos, n - pos, b'\n    ]', 6):
                return None
            pos += 6
            pieces.append(PyBytes_FromStringAndSize(<char*>buf, size))
            resize_smart(counts, expect - 2)
            counts.data.as_longlongs[expect - 3] = count
            if size == 1 and not seen[buf[0]]:
                seen[buf[0]] = 1
                singles += 1
            expect += 1
            if pos < n and p[pos] == 44:    # ','
                pos += 1
                continue
            if not starts(p + pos, n - pos, b'\n}', 2):
                return None
            pos += 2
            for ws in range(pos, n):     # (JSON allows whitespace after the object)
                if not (p[ws] == 32 or p[ws] == 9 or p[ws] == 10 or p[ws] == 13):
                    return None
            if not all_distinct(pieces):
                return None
            return untracked_tuple(pieces), counts, 0, singles
    finally:
        free(buf)
