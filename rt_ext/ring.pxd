from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

cdef class PacketRing:
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t slot_size
    cdef uint64_t mask
    cdef uint64_t *head      # slots published by the producer (producer writes, release)
    cdef uint64_t *dropped   # datagrams refused because the ring was full (producer writes)
    cdef uint64_t *tail      # slots released by the consumer (consumer writes, release)
    cdef int64_t *ts
    cdef uint32_t *lens
    cdef uint8_t *data
    cdef object _counters, _ts, _lens, _data

    # Producer side: callable without the GIL from one thread only.
    cdef int push(self, int64_t t_ns, const uint8_t *payload, Py_ssize_t length) noexcept nogil
    cdef int try_push(self, int64_t t_ns, const uint8_t *payload, Py_ssize_t length) noexcept nogil
    cdef Py_ssize_t reserve(self, Py_ssize_t want, Py_ssize_t *first_slot) noexcept nogil
    cdef void commit(self, Py_ssize_t n) noexcept nogil
    cdef void count_dropped(self, Py_ssize_t n) noexcept nogil
    cdef inline uint8_t *slot_data(self, Py_ssize_t slot) noexcept nogil:
        return self.data + slot * self.slot_size
    cdef inline int64_t *slot_ts(self, Py_ssize_t slot) noexcept nogil:
        return self.ts + slot
    cdef inline uint32_t *slot_len(self, Py_ssize_t slot) noexcept nogil:
        return self.lens + slot
