"""Seeds and keys for stochastic segmentation, turned into the core's 64-bit words.

A sample is a pure function of (tokenizer seed, key, text, alpha): the core
derives its random state from two words, a *seed word* and a *key word*. This
module makes those words, the same in every process (no use of Python's
randomised ``hash``):

- keyed calls: seed word from the tokenizer's seed, key word from the key;
- unkeyed calls: a *stream word* (from the seed, renewed in forked children
  and after unpickling) and a per-tokenizer call counter as the key word.
"""

from __future__ import annotations

import operator
import os
import struct

try:
    # BLAKE2 is built into CPython; importing hashlib would also load OpenSSL's
    # libcrypto (about 3.4 MB resident) for functions bytepiece never uses.
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - a CPython built without it
    from hashlib import blake2b

MASK64 = (1 << 64) - 1
Key = int | str | bytes | tuple["Key", ...]

# Domains keep the three uses of the seed apart.
_INT_KEYS, _HASHED_KEYS, _STREAM = b"int-keys", b"hashed-keys", b"stream"


def _digest(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


_NOT_A_KEY = "a key must be an int, str, bytes or a tuple of those, not {}"


def exact_integer(value) -> int:
    """The equal Python int of an integer of any type (numpy's, an int subclass, anything
    with ``__index__``); TypeError, with the type's name as its message, for anything else
    and for a bool, Python's or numpy's (True is neither key 1 nor a count of 1). Keys and
    the API's counts (n, k, num_samples, num_threads) are read with it. (numpy's bool is
    refused by name: some numpy versions let operator.index take it, with a warning.)"""
    name = type(value).__name__
    if isinstance(value, bool) or name in ("bool", "bool_"):
        raise TypeError("bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(name) from None


def _integer(value) -> int:
    """An integer key of any type as the equal Python int, so that equal integers are the
    same key; bool is not a key."""
    try:
        return exact_integer(value)
    except TypeError as error:
        raise TypeError(_NOT_A_KEY.format(error)) from None


def _encode(value: Key) -> bytes:
    """An unambiguous byte encoding of a key (type-tagged, length-prefixed)."""
    if isinstance(value, str):
        body, tag = value.encode("utf-8", "surrogatepass"), b"s"
    elif isinstance(value, (bytes, bytearray, memoryview)):
        body, tag = bytes(value), b"b"
    elif isinstance(value, tuple):
        body, tag = b"".join(_encode(v) for v in value), b"t"
    else:  # an int, numpy's integers and the like (the same bytes for equal values)
        number = _integer(value)
        body = number.to_bytes((number.bit_length() + 8) // 8, "little", signed=True)
        tag = b"i"
    return tag + struct.pack("<Q", len(body)) + body


def random_seed() -> int:
    """A fresh 64-bit seed from the operating system."""
    return int.from_bytes(os.urandom(8), "little")


def seed_words(seed: Key) -> tuple[int, int, int]:
    """(int-key word, hashed-key word, stream word) for a tokenizer seed."""
    base = _encode(seed)
    return (
        _digest(_INT_KEYS + base),
        _digest(_HASHED_KEYS + base),
        _digest(_STREAM + base),
    )


def key_words(key: Key, int_word: int, hashed_word: int) -> tuple[int, int]:
    """(seed word, key word) for a keyed call. An integer in [0, 2**64) of any type is
    the key word itself; equal integers of different types are the same key."""
    if type(key) is not int and not isinstance(key, (str, bytes, bytearray, memoryview, tuple)):
        key = _integer(key)
    if type(key) is int and 0 <= key <= MASK64:
        return int_word, key
    return hashed_word, _digest(_encode(key))


def renewed_stream(stream_word: int) -> int:
    """A new stream word for a forked or unpickled copy: never shared with its origin."""
    return _digest(_STREAM + struct.pack("<QQ", stream_word, os.getpid()) + os.urandom(16))
