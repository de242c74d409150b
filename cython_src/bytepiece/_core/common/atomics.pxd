# Atomic loads, stores and counters for the few places where threads share memory
# without the GIL: the batch driver's chunk counter and done flags, and the pages of
# the NFC table. Header-only (macros, no .pyx, no runtime module).
#
# Why it is built this way: Cython has no atomics, and these are the only three
# operations the core needs. GCC and Clang builtins where they exist; MSVC's
# Interlocked functions and volatile accesses otherwise.

from libc.stdint cimport uint8_t

cdef extern from *:
    """
    #if defined(_MSC_VER) && !defined(__clang__)
    #include <windows.h>
    #define BP_FETCH_ADD(p, v) InterlockedExchangeAdd64((volatile LONG64*)(p), (LONG64)(v))
    #define BP_YIELD() SwitchToThread()
    #define BP_LOAD_ACQUIRE(p) (*(volatile unsigned char*)(p))
    #define BP_STORE_RELEASE(p, v) (*(volatile unsigned char*)(p) = (v))
    #else
    #include <sched.h>
    #define BP_FETCH_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
    #define BP_YIELD() sched_yield()
    #define BP_LOAD_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
    #define BP_STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
    #endif
    """
    Py_ssize_t fetch_add "BP_FETCH_ADD"(Py_ssize_t* p, Py_ssize_t v) nogil
    void yield_thread "BP_YIELD"() nogil
    uint8_t load_acquire "BP_LOAD_ACQUIRE"(const uint8_t* p) nogil
    void store_release "BP_STORE_RELEASE"(uint8_t* p, uint8_t v) nogil
