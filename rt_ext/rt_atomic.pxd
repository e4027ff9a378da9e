from libc.stdint cimport uint64_t

cdef extern from "rt_atomic.h" nogil:
    uint64_t rt_load_acquire(const uint64_t *p)
    uint64_t rt_load_relaxed(const uint64_t *p)
    void rt_store_release(uint64_t *p, uint64_t v)
    void rt_store_relaxed(uint64_t *p, uint64_t v)
