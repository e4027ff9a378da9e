# cython: language_level=3
"""Single-producer / single-consumer lock-free ring of datagram slots.

Each slot holds a receive time (ns), the datagram's length as received, and up to ``slot_size``
payload bytes. ``head`` (slots published) and ``tail`` (slots released) are 64-bit counters that
only grow; the producer publishes with a release store after filling a slot and the consumer
releases slots with a release store after it is done with them, so each side sees the other's
writes complete (acquire loads). They live on separate cache lines so the two threads do not
fight over one line.

When the ring is full the producer refuses the *newest* datagram and counts it: the receiver
never waits for the writer. Invariant, exact at any quiet moment:
``received == consumed + pending + dropped``.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from .rt_atomic cimport rt_load_acquire, rt_load_relaxed, rt_store_release, rt_store_relaxed

import numpy as np

# uint64 words between counters: 8 words = 64 bytes = one cache line.
cdef enum:
    LINE_WORDS = 8


cdef class PacketRing:
    """A ring of ``capacity`` slots (rounded up to a power of two) of ``slot_size`` bytes."""

    def __cinit__(self, Py_ssize_t capacity, Py_ssize_t slot_size):
        if capacity < 2 or slot_size < 1:
            raise ValueError("capacity must be >= 2 and slot_size >= 1")
        cdef Py_ssize_t cap = 2
        while cap < capacity:
            cap <<= 1
        self.capacity = cap
        self.slot_size = slot_size
        self.mask = cap - 1
        # 4 cache lines; counters start on a 64-byte boundary inside this block.
        self._counters = np.zeros(LINE_WORDS * 4, dtype=np.uint64)
        cdef uint64_t[::1] c = self._counters
        cdef Py_ssize_t base = (LINE_WORDS - ((<size_t> &c[0]) // 8) % LINE_WORDS) % LINE_WORDS
        self.head = &c[base]
        self.dropped = &c[base + 1]
        self.tail = &c[base + LINE_WORDS]
        self._ts = np.zeros(cap, dtype=np.int64)
        self._lens = np.zeros(cap, dtype=np.uint32)
        self._data = np.zeros((cap, slot_size), dtype=np.uint8)
        cdef int64_t[::1] t = self._ts
        cdef uint32_t[::1] l = self._lens
        cdef uint8_t[:, ::1] d = self._data
        self.ts = &t[0]
        self.lens = &l[0]
        self.data = &d[0, 0]

    # ---- producer -------------------------------------------------------------------------

    cdef int push(self, int64_t t_ns, const uint8_t *payload, Py_ssize_t length) noexcept nogil:
        if self.try_push(t_ns, payload, length):
            return 1
        rt_store_relaxed(self.dropped, rt_load_relaxed(self.dropped) + 1)
        return 0

    cdef int try_push(self, int64_t t_ns, const uint8_t *payload, Py_ssize_t length) noexcept nogil:
        cdef uint64_t h = rt_load_relaxed(self.head)
        if h - rt_load_acquire(self.tail) >= <uint64_t> self.capacity:
            return 0
        cdef Py_ssize_t slot = h & self.mask
        cdef Py_ssize_t stored = length if length <= self.slot_size else self.slot_size
        self.ts[slot] = t_ns
        self.lens[slot] = <uint32_t> length
        memcpy(self.data + slot * self.slot_size, payload, stored)
        rt_store_release(self.head, h + 1)
        return 1

    cdef Py_ssize_t reserve(self, Py_ssize_t want, Py_ssize_t *first_slot) noexcept nogil:
        """Free slots from the head up to the end of the slot array (at most ``want``)."""
        cdef uint64_t h = rt_load_relaxed(self.head)
        cdef uint64_t free_slots = <uint64_t> self.capacity - (h - rt_load_acquire(self.tail))
        cdef Py_ssize_t slot = h & self.mask
        cdef Py_ssize_t n = self.capacity - slot
        if <uint64_t> n > free_slots:
            n = <Py_ssize_t> free_slots
        if n > want:
            n = want
        first_slot[0] = slot
        return n

    cdef void commit(self, Py_ssize_t n) noexcept nogil:
        rt_store_release(self.head, rt_load_relaxed(self.head) + n)

    cdef void count_dropped(self, Py_ssize_t n) noexcept nogil:
        rt_store_relaxed(self.dropped, rt_load_relaxed(self.dropped) + n)

    def push_bytes(self, int64_t t_ns, const uint8_t[::1] payload not None):
        """Producer call from Python (tests, replay): copy one datagram in. False if dropped."""
        cdef Py_ssize_t n = payload.shape[0]
        cdef const uint8_t *p = &payload[0] if n else NULL
        cdef int ok
        with nogil:
            ok = self.push(t_ns, p, n)
        return bool(ok)

    def produce_pattern(self, Py_ssize_t count, Py_ssize_t length, uint64_t first_seq=0, bint wait=False):
        """Push ``count`` test datagrams of ``length`` bytes (>= 8) without the GIL.

        Datagram k carries the sequence number ``first_seq + k`` (u64, little-endian host order)
        in its first 8 bytes and as its receive time. With ``wait`` the producer spins while the
        ring is full instead of dropping. Returns how many were accepted.
        """
        if length < 8 or length > self.slot_size:
            raise ValueError("length must be 8..slot_size")
        cdef Py_ssize_t k, accepted = 0
        cdef uint8_t buf[65536]
        cdef uint64_t seq
        if length > 65536:
            raise ValueError("length too large")
        with nogil:
            for k in range(length):
                buf[k] = <uint8_t> k
            for k in range(count):
                seq = first_seq + k
                memcpy(buf, &seq, 8)
                if wait:
                    while not self.try_push(<int64_t> seq, buf, length):
                        pass
                    accepted += 1
                else:
                    accepted += self.push(<int64_t> seq, buf, length)
        return accepted

    # ---- consumer -------------------------------------------------------------------------

    def peek(self, Py_ssize_t max_count=1 << 30):
        """Published slots from the tail, contiguous in memory: ``(first_slot, ts, lengths, data)``.

        ``ts`` (int64 ns), ``lengths`` (uint32, as received, may exceed ``slot_size`` for a
        truncated datagram) and ``data`` (uint8, shape ``(n, slot_size)``) are zero-copy views of
        the ring; they stay valid until :meth:`release` gives the slots back.
        """
        cdef uint64_t t = rt_load_relaxed(self.tail)
        cdef uint64_t avail = rt_load_acquire(self.head) - t
        cdef Py_ssize_t first = t & self.mask
        cdef Py_ssize_t n = self.capacity - first
        if <uint64_t> n > avail:
            n = <Py_ssize_t> avail
        if n > max_count:
            n = max_count
        return first, self._ts[first:first + n], self._lens[first:first + n], self._data[first:first + n]

    def release(self, Py_ssize_t n):
        """Give ``n`` consumed slots back to the producer."""
        cdef uint64_t t = rt_load_relaxed(self.tail)
        if n < 0 or <uint64_t> n > rt_load_acquire(self.head) - t:
            raise ValueError(f"cannot release {n} slots: only {rt_load_acquire(self.head) - t} pending")
        rt_store_release(self.tail, t + n)

    @property
    def data_buffer(self):
        """The whole slot memory as one flat uint8 array (slot k at byte ``k * slot_size``)."""
        return self._data.reshape(-1)

    @property
    def received(self):
        """Datagrams offered by the producer: published + dropped."""
        return int(rt_load_acquire(self.head) + rt_load_relaxed(self.dropped))

    @property
    def dropped(self):
        """Datagrams refused because the ring was full."""
        return int(rt_load_relaxed(self.dropped))

    @property
    def consumed(self):
        """Datagrams released by the consumer."""
        return int(rt_load_acquire(self.tail))

    @property
    def pending(self):
        """Published datagrams not yet released."""
        return int(rt_load_acquire(self.head) - rt_load_acquire(self.tail))

    def last_times(self, Py_ssize_t n):
        """Receive times (ns) of the last ``n`` published datagrams, oldest first (a copy).

        At most ``capacity - 1`` are returned. The newest of them can be overwritten while they
        are read only if the ring wraps in the meantime, so this is meant for statistics such as
        the feed's frequency, not for data.
        """
        cdef uint64_t h = rt_load_acquire(self.head)
        if n > self.capacity - 1:
            n = self.capacity - 1
        if <uint64_t> n > h:
            n = <Py_ssize_t> h
        out = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] o = out
        cdef Py_ssize_t k
        for k in range(n):
            o[k] = self.ts[(h - n + k) & self.mask]
        return out
