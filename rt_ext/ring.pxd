from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from .rt_atomic cimport rt_load_acquire, rt_load_relaxed, rt_store_release, rt_store_relaxed


cdef struct RingCore:
    Py_ssize_t capacity
    Py_ssize_t slot_size
    uint64_t mask
    uint64_t *head      # slots published by the producer (producer writes, release)
    uint64_t *dropped   # datagrams refused because the ring was full (producer writes)
    uint64_t *tail      # slots released by the consumer (consumer writes, release)
    int64_t *ts
    uint32_t *lens
    uint8_t *data


# Producer side: plain C on the core, callable without the GIL, from one thread only.

cdef inline int ring_try_push(RingCore *r, int64_t t_ns, const uint8_t *payload, Py_ssize_t length) noexcept nogil:
    cdef uint64_t h = rt_load_relaxed(r.head)
    if h - rt_load_acquire(r.tail) >= <uint64_t> r.capacity:
        return 0
    cdef Py_ssize_t slot = h & r.mask
    cdef Py_ssize_t stored = length if length <= r.slot_size else r.slot_size
    r.ts[slot] = t_ns
    r.lens[slot] = <uint32_t> length
    if stored > 0:
        memcpy(r.data + slot * r.slot_size, payload, stored)
    rt_store_release(r.head, h + 1)
    return 1


cdef inline void ring_count_dropped(RingCore *r, Py_ssize_t n) noexcept nogil:
    rt_store_relaxed(r.dropped, rt_load_relaxed(r.dropped) + n)


cdef inline int ring_push(RingCore *r, int64_t t_ns, const uint8_t *payload, Py_ssize_t length) noexcept nogil:
    if ring_try_push(r, t_ns, payload, length):
        return 1
    ring_count_dropped(r, 1)
    return 0


cdef inline Py_ssize_t ring_reserve(RingCore *r, Py_ssize_t want, Py_ssize_t *first_slot) noexcept nogil:
    """Free slots from the head up to the end of the slot array (at most ``want``)."""
    cdef uint64_t h = rt_load_relaxed(r.head)
    cdef uint64_t free_slots = <uint64_t> r.capacity - (h - rt_load_acquire(r.tail))
    cdef Py_ssize_t slot = h & r.mask
    cdef Py_ssize_t n = r.capacity - slot
    if <uint64_t> n > free_slots:
        n = <Py_ssize_t> free_slots
    if n > want:
        n = want
    first_slot[0] = slot
    return n


cdef inline uint64_t ring_pending(RingCore *r) noexcept nogil:
    return rt_load_acquire(r.head) - rt_load_acquire(r.tail)


cdef inline void ring_commit(RingCore *r, Py_ssize_t n) noexcept nogil:
    rt_store_release(r.head, rt_load_relaxed(r.head) + n)


cdef class PacketRing:
    cdef RingCore core
    cdef object _counters, _ts, _lens, _data
