# cython: language_level=3
"""Batch decoding of fixed-layout datagrams into columns.

A :class:`DecodePlan` is compiled once per packet layout from its field table (offset, bytes
per record, records, stride between records). Decoding a batch copies each field of each packet
straight from the source buffer into preallocated output, with the GIL released: no Python
object and no ``struct`` call per packet. Output columns keep little-endian numpy dtypes, so a
byte copy is a correct decode on any host.
"""

from libc.stdint cimport int16_t, int64_t, uint8_t
from libc.string cimport memcpy

from .rules cimport match_rules

import numpy as np


cdef enum:
    # Packets per inner block: the block's input stays in L2 (the fastest size on AC packets).
    BLOCK = 512
    # Bytes left between consecutive output columns. Without it, columns of a power-of-two batch
    # start at addresses equal modulo 4 KiB and all map to the same L1 sets.
    COLUMN_GAP = 64
    # Row decoding copies segment by segment across a block of packets, whose input and output
    # must stay in L1 for that (PCARS 1 telemetry: 392 small segments a row, 3x faster).
    ROWS_BLOCK_BYTES = 16384
    ROWS_BLOCK_MIN = 8



cdef extern from "gather.h" nogil:
    void rt_gather(uint8_t *dst, int64_t dst_stride, const uint8_t *buf, const int64_t *offsets,
                   int64_t n, int64_t src_off, int64_t nb)
    void rt_gather_strided(uint8_t *dst, int64_t dst_stride, const uint8_t *src, int64_t src_stride,
                           int64_t n, int64_t nb)


cdef class DecodePlan:
    """Copy plan for one packet layout.

    ``src_offsets[f]``: first byte of field f in a packet; ``element_bytes[f]``: bytes per record;
    ``records[f]``: records (1 unless the field is a flattened struct array); ``src_strides[f]``:
    bytes between records in the packet. Output field f occupies ``element_bytes*records`` bytes
    per row, fields packed in order.
    """

    def __cinit__(self, Py_ssize_t packet_size, src_offsets, element_bytes, records, src_strides):
        cdef Py_ssize_t n = len(src_offsets), f
        if not (len(element_bytes) == len(records) == len(src_strides) == n):
            raise ValueError("plan arrays differ in length")
        self.packet_size = packet_size
        self.nfields = n
        buf = np.zeros((5, max(n, 1)), dtype=np.int64)
        self._keep = buf
        cdef int64_t[:, ::1] v = buf
        self.src_offset = &v[0, 0]
        self.element_bytes = &v[1, 0]
        self.records = &v[2, 0]
        self.src_stride = &v[3, 0]
        self.col_offset = &v[4, 0]
        cdef int64_t acc = 0
        for f in range(n):
            self.src_offset[f] = src_offsets[f]
            self.element_bytes[f] = element_bytes[f]
            self.records[f] = records[f]
            self.src_stride[f] = src_strides[f]
            if self.records[f] < 1 or self.element_bytes[f] < 1:
                raise ValueError(f"field {f}: empty")
            last = self.src_offset[f] + (self.records[f] - 1) * self.src_stride[f] + self.element_bytes[f]
            if self.src_offset[f] < 0 or last > packet_size:
                raise ValueError(f"field {f} reads bytes up to {last} of a {packet_size}-byte packet")
            self.col_offset[f] = acc
            acc += self.element_bytes[f] * self.records[f]
        self.row_bytes = acc
        self._plan_row_segments()

    cdef _plan_row_segments(self):
        # Every record of every field is a (src, dst, bytes) copy; merge neighbours that continue
        # each other on both sides. PCARS and Telemetry Tool packets are packed rows already, so
        # their whole packet becomes one copy per packet instead of 100-odd small ones.
        segs = []
        last = None  # no negative indexing: the extensions build with wraparound off
        for f in range(self.nfields):
            for r in range(self.records[f]):
                src = self.src_offset[f] + r * self.src_stride[f]
                dst = self.col_offset[f] + r * self.element_bytes[f]
                nb = self.element_bytes[f]
                if last is not None and last[0] + last[2] == src and last[1] + last[2] == dst:
                    last[2] += nb
                else:
                    last = [src, dst, nb]
                    segs.append(last)
        buf = np.array(segs, dtype=np.int64).T.copy() if segs else np.zeros((3, 1), dtype=np.int64)
        self._keep_segments = buf
        cdef int64_t[:, ::1] v = buf
        self.nsegments = len(segs)
        self.seg_src = &v[0, 0]
        self.seg_dst = &v[1, 0]
        self.seg_bytes = &v[2, 0]

    cdef int run(self, const uint8_t *buf, Py_ssize_t buflen, const int64_t *offsets, Py_ssize_t n,
                 uint8_t *out, bint rows) except -1 nogil:
        cdef Py_ssize_t i, f, r
        cdef int64_t off, nb, recs, stride, step
        cdef uint8_t *dst
        for i in range(n):
            off = offsets[i]
            if off < 0 or off > buflen - self.packet_size:  # not off + size: that can overflow
                with gil:
                    raise ValueError(
                        f"packet {i} at byte {off} needs {self.packet_size} bytes, buffer has {buflen - off}")
        # Field-major within blocks of BLOCK packets: one tight loop per field (and per record
        # of a struct array), while the block's packets stay in cache.
        # Evenly spaced packets (ring slots, concatenated captures) skip the per-packet offset load.
        cdef int64_t spacing = offsets[1] - offsets[0] if n > 1 else 0
        cdef bint even = True
        for i in range(1, n):
            if offsets[i] - offsets[i - 1] != spacing:
                even = False
                break
        cdef Py_ssize_t b0 = 0, bn, block = BLOCK
        if rows and self.row_bytes > 0:
            block = ROWS_BLOCK_BYTES // self.row_bytes
            block = ROWS_BLOCK_MIN if block < ROWS_BLOCK_MIN else (BLOCK if block > BLOCK else block)
        while b0 < n:
            bn = n - b0 if n - b0 < block else block
            if rows:
                for f in range(self.nsegments):
                    dst = out + self.seg_dst[f] + b0 * self.row_bytes
                    if even:
                        rt_gather_strided(dst, self.row_bytes, buf + offsets[b0] + self.seg_src[f], spacing, bn,
                                          self.seg_bytes[f])
                    else:
                        rt_gather(dst, self.row_bytes, buf, offsets + b0, bn, self.seg_src[f], self.seg_bytes[f])
                b0 += block
                continue
            for f in range(self.nfields):
                nb = self.element_bytes[f]
                recs = self.records[f]
                step = nb * recs
                dst = out + n * self.col_offset[f] + f * COLUMN_GAP + b0 * step
                stride = self.src_stride[f]
                for r in range(recs):
                    if even:
                        rt_gather_strided(dst + r * nb, step, buf + offsets[b0] + self.src_offset[f] + r * stride,
                                          spacing, bn, nb)
                    else:
                        rt_gather(dst + r * nb, step, buf, offsets + b0, bn, self.src_offset[f] + r * stride, nb)
            b0 += BLOCK
        return 0

    cpdef Py_ssize_t output_bytes(self, Py_ssize_t n, bint rows):
        """Bytes of output ``n`` packets need (columns carry a small gap after each column)."""
        return n * self.row_bytes + (0 if rows else self.nfields * COLUMN_GAP)

    def column_starts(self, Py_ssize_t n):
        """Byte offset of each column in the output of ``n`` packets decoded as columns."""
        return [n * self.col_offset[f] + f * COLUMN_GAP for f in range(self.nfields)]

    def decode_into(self, const uint8_t[::1] buf not None, const int64_t[::1] offsets not None,
                    uint8_t[::1] out not None, bint rows=False):
        """Decode the packets starting at ``offsets`` in ``buf`` into ``out``.

        ``out`` must hold :meth:`output_bytes` bytes. With ``rows`` the output is packed rows (a
        structured array's memory); otherwise contiguous columns at :meth:`column_starts`.
        """
        cdef Py_ssize_t n = offsets.shape[0]
        if out.shape[0] < self.output_bytes(n, rows):
            raise ValueError(f"output holds {out.shape[0]} bytes, {self.output_bytes(n, rows)} needed")
        if n == 0:
            return
        with nogil:
            self.run(&buf[0], buf.shape[0], &offsets[0], n, &out[0], rows)


def slot_offsets(Py_ssize_t first, Py_ssize_t count, Py_ssize_t slot_size):
    """Byte offsets of ``count`` equal slots from slot ``first``: ``(first + i) * slot_size``."""
    out = np.empty(count, dtype=np.int64)
    cdef int64_t[::1] o = out
    cdef Py_ssize_t i
    for i in range(count):
        o[i] = (first + i) * slot_size
    return out


def classify(const uint8_t[::1] buf not None, const int64_t[::1] offsets not None,
             const int64_t[::1] lengths not None, const int64_t[:, ::1] rules not None,
             int16_t[::1] out not None):
    """Classify datagrams by length and one checked byte.

    ``rules`` rows: ``(length, check_offset, mask, value, kind_id)``; ``check_offset`` −1 means
    length alone decides. The first matching rule wins; no match writes −1 (malformed). Returns the
    number of malformed datagrams.
    """
    cdef Py_ssize_t n = offsets.shape[0], nr = rules.shape[0], i
    cdef int64_t length, off
    cdef int16_t kind
    cdef Py_ssize_t bad = 0
    cdef const int64_t *rule_rows = &rules[0, 0] if nr else NULL
    cdef const uint8_t *base = &buf[0] if buf.shape[0] else NULL
    if lengths.shape[0] != n or out.shape[0] < n:
        raise ValueError("offsets, lengths and out differ in length")
    if n and rules.shape[1] != 5:
        raise ValueError("rules must have 5 columns")
    with nogil:
        for i in range(n):
            length = lengths[i]
            off = offsets[i]
            kind = -1
            if off >= 0 and length >= 0 and off <= buf.shape[0] - length:  # no overflow for huge values
                kind = <int16_t> match_rules(rule_rows, nr, base + off, length)
            out[i] = kind
            if kind < 0:
                bad += 1
    return bad
