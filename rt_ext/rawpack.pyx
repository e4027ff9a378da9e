# cython: language_level=3
"""Raw feed file records: packing ring batches into records, and indexing a file's records.

Record format (little-endian): u64 receive time (ns since the Unix epoch) | u32 payload length |
payload. Both directions run without the GIL and without a Python object per datagram.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

import numpy as np

cdef enum:
    HEADER_BYTES = 12

#: Bytes of a record header.
RECORD_HEADER = HEADER_BYTES


cdef inline void _put_u64(uint8_t *p, uint64_t v) noexcept nogil:
    cdef int k
    for k in range(8):
        p[k] = <uint8_t> (v >> (8 * k))


cdef inline void _put_u32(uint8_t *p, uint32_t v) noexcept nogil:
    cdef int k
    for k in range(4):
        p[k] = <uint8_t> (v >> (8 * k))


cdef inline uint64_t _get_u64(const uint8_t *p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int k
    for k in range(8):
        v |= (<uint64_t> p[k]) << (8 * k)
    return v


cdef inline uint32_t _get_u32(const uint8_t *p) noexcept nogil:
    return p[0] | (<uint32_t> p[1] << 8) | (<uint32_t> p[2] << 16) | (<uint32_t> p[3] << 24)


cdef Py_ssize_t pack_records(const int64_t *t_ns, const uint32_t *lengths, const uint8_t *data,
                             Py_ssize_t n, Py_ssize_t slot_size, uint8_t *out) noexcept nogil:
    cdef Py_ssize_t i, pos = 0
    cdef uint32_t stored
    for i in range(n):
        stored = lengths[i] if lengths[i] <= slot_size else <uint32_t> slot_size
        _put_u64(out + pos, <uint64_t> t_ns[i])
        _put_u32(out + pos + 8, stored)
        memcpy(out + pos + HEADER_BYTES, data + i * slot_size, stored)
        pos += HEADER_BYTES + stored
    return pos


def packed_size(const uint32_t[::1] lengths not None, Py_ssize_t slot_size):
    """Bytes the records of a batch take (a datagram longer than its slot keeps ``slot_size`` bytes)."""
    cdef Py_ssize_t i, total = 0
    for i in range(lengths.shape[0]):
        total += HEADER_BYTES + (lengths[i] if lengths[i] <= slot_size else slot_size)
    return total


def pack(const int64_t[::1] t_ns not None, const uint32_t[::1] lengths not None,
         const uint8_t[:, ::1] data not None, uint8_t[::1] out not None):
    """Write the records of a ring batch (times, true lengths, slot rows) into ``out``; returns bytes used."""
    cdef Py_ssize_t n = t_ns.shape[0]
    if lengths.shape[0] != n or data.shape[0] != n:
        raise ValueError("t_ns, lengths and data differ in length")
    cdef Py_ssize_t need = packed_size(lengths, data.shape[1])
    if out.shape[0] < need:
        raise ValueError(f"output holds {out.shape[0]} bytes, {need} needed")
    if n == 0:
        return 0
    with nogil:
        need = pack_records(&t_ns[0], &lengths[0], &data[0, 0], n, data.shape[1], &out[0])
    return need


def scan(const uint8_t[::1] buf not None, Py_ssize_t start=8):
    """Index the records of a raw file's bytes from ``start`` (just after the magic).

    Returns ``(t_ns, offsets, lengths, end)``: int64 arrays of receive times, payload offsets and
    payload lengths, and the byte where the last whole record ends (a torn tail starts there).
    """
    cdef Py_ssize_t size = buf.shape[0], pos = start, n = 0, cap = 1024
    t = np.empty(cap, dtype=np.int64)
    o = np.empty(cap, dtype=np.int64)
    l = np.empty(cap, dtype=np.int64)
    cdef int64_t[::1] tv = t, ov = o, lv = l
    cdef uint32_t length
    while pos + HEADER_BYTES <= size:
        length = _get_u32(&buf[pos + 8])
        if pos + HEADER_BYTES + length > size:
            break
        if n == cap:
            cap *= 2
            t = np.resize(t, cap); o = np.resize(o, cap); l = np.resize(l, cap)
            tv = t; ov = o; lv = l
        tv[n] = <int64_t> _get_u64(&buf[pos])
        ov[n] = pos + HEADER_BYTES
        lv[n] = length
        n += 1
        pos += HEADER_BYTES + length
    return t[:n].copy(), o[:n].copy(), l[:n].copy(), pos
