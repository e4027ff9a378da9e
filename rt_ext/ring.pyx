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
from .ring cimport RingCore, ring_push, ring_try_push

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
        self.core.capacity = cap
        self.core.slot_size = slot_size
        self.core.mask = cap - 1
        # 4 cache lines; counters start on a 64-byte boundary inside this block.
        self._counters = np.zeros(LINE_WORDS * 4, dtype=np.uint64)
        cdef uint64_t[::1] c = self._counters
        cdef Py_ssize_t base = (LINE_WORDS - ((<size_t> &c[0]) // 8) % LINE_WORDS) % LINE_WORDS
        self.core.head = &c[base]
        self.core.dropped = &c[base + 1]
        self.core.tail = &c[base + LINE_WORDS]
        self._ts = np.zeros(cap, dtype=np.int64)
        self._lens = np.zeros(cap, dtype=np.uint32)
        self._data = np.zeros((cap, slot_size), dtype=np.uint8)
        cdef int64_t[::1] t = self._ts
        cdef uint32_t[::1] l = self._lens
        cdef uint8_t[:, ::1] d = self._data
        self.core.ts = &t[0]
        self.core.lens = &l[0]
        self.core.data = &d[0, 0]

    @property
    def capacity(self):
        """Number of slots (a power of two)."""
        return self.core.capacity

    @property
    def slot_size(self):
        """Payload bytes per slot; longer datagrams keep their true length but only these bytes."""
        return self.core.slot_size

    # ---- producer (from Python: tests, replay, the portable receiver) -----------------------

    def push_bytes(self, int64_t t_ns, const uint8_t[::1] payload not None):
        """Copy one datagram in. False if the ring was full (the datagram is counted as dropped)."""
        cdef Py_ssize_t n = payload.shape[0]
        cdef const uint8_t *p = &payload[0] if n else NULL
        cdef int ok
        with nogil:
            ok = ring_push(&self.core, t_ns, p, n)
        return bool(ok)

    def produce_pattern(self, Py_ssize_t count, Py_ssize_t length, uint64_t first_seq=0, bint wait=False):
        """Push ``count`` test datagrams of ``length`` bytes (>= 8) without the GIL.

        Datagram k carries the sequence number ``first_seq + k`` (u64, little-endian host order)
        in its first 8 bytes and as its receive time. With ``wait`` the producer spins while the
        ring is full instead of dropping. Returns how many were accepted.
        """
        if length < 8 or length > self.core.slot_size or length > 65536:
            raise ValueError("length must be 8..slot_size (and at most 65536)")
        cdef Py_ssize_t k, accepted = 0
        cdef uint8_t buf[65536]
        cdef uint64_t seq
        with nogil:
            for k in range(length):
                buf[k] = <uint8_t> k
            for k in range(count):
                seq = first_seq + k
                memcpy(buf, &seq, 8)
                if wait:
                    while not ring_try_push(&self.core, <int64_t> seq, buf, length):
                        pass
                    accepted += 1
                else:
                    accepted += ring_push(&self.core, <int64_t> seq, buf, length)
        return accepted

    # ---- consumer -------------------------------------------------------------------------

    def peek(self, Py_ssize_t max_count=1 << 30, Py_ssize_t skip=0):
        """Published slots from the tail (from ``skip`` slots past it: those already taken care
        of but not yet released), contiguous in memory: ``(first_slot, ts, lengths, data)``.

        ``ts`` (int64 ns), ``lengths`` (uint32, as received, may exceed ``slot_size`` for a
        truncated datagram) and ``data`` (uint8, shape ``(n, slot_size)``) are zero-copy views of
        the ring; they stay valid until :meth:`release` gives the slots back.
        """
        cdef uint64_t t = rt_load_relaxed(self.core.tail)
        cdef uint64_t avail = rt_load_acquire(self.core.head) - t
        if skip < 0 or <uint64_t> skip > avail:
            raise ValueError(f"cannot skip {skip} slots: only {avail} pending")
        t += skip
        avail -= skip
        cdef Py_ssize_t first = t & self.core.mask
        cdef Py_ssize_t n = self.core.capacity - first
        if <uint64_t> n > avail:
            n = <Py_ssize_t> avail
        if n > max_count:
            n = max_count
        return first, self._ts[first:first + n], self._lens[first:first + n], self._data[first:first + n]

    def release(self, Py_ssize_t n):
        """Give ``n`` consumed slots back to the producer."""
        cdef uint64_t t = rt_load_relaxed(self.core.tail)
        cdef uint64_t pending = rt_load_acquire(self.core.head) - t
        if n < 0 or <uint64_t> n > pending:
            raise ValueError(f"cannot release {n} slots: only {pending} pending")
        rt_store_release(self.core.tail, t + n)

    @property
    def data_buffer(self):
        """The whole slot memory as one flat uint8 array (slot k at byte ``k * slot_size``)."""
        return self._data.reshape(-1)

    @property
    def received(self):
        """Datagrams offered by the producer: published + dropped."""
        return int(rt_load_acquire(self.core.head) + rt_load_relaxed(self.core.dropped))

    @property
    def dropped(self):
        """Datagrams refused because the ring was full."""
        return int(rt_load_relaxed(self.core.dropped))

    @property
    def consumed(self):
        """Datagrams released by the consumer."""
        return int(rt_load_acquire(self.core.tail))

    @property
    def pending(self):
        """Published datagrams not yet released."""
        return int(rt_load_acquire(self.core.head) - rt_load_acquire(self.core.tail))

    def last_times(self, Py_ssize_t n):
        """Receive times (ns) of the last ``n`` published datagrams, oldest first (a copy).

        At most ``capacity - 1`` are returned. The oldest of them can be overwritten while they
        are read only if the ring wraps in the meantime, so this is meant for statistics such as
        the feed's frequency, not for data.
        """
        cdef uint64_t h = rt_load_acquire(self.core.head)
        if n > self.core.capacity - 1:
            n = self.core.capacity - 1
        if <uint64_t> n > h:
            n = <Py_ssize_t> h
        out = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] o = out
        cdef Py_ssize_t k
        for k in range(n):
            o[k] = self.core.ts[(h - n + k) & self.core.mask]
        return out
