# cython: language_level=3
"""Sequential parsing of variable-length messages into fixed rows (ACC's broadcasting protocol).

A message kind is compiled in ``rt/protocols/wire.py`` into parse programs (rows of six int64:
opcode and arguments) and a template row. :func:`parse_batch` runs a program over each datagram of
a batch with the GIL released: it checks every length against the datagram's end, every text for
UTF-8, and that nothing is left over, and writes the numbers and (cut) texts at their fixed offsets
in the datagram's row. A datagram that no program parses exactly is malformed; nothing it holds can
make the parser read or write outside its buffers.
"""

from libc.stdint cimport int64_t, uint8_t
from libc.string cimport memcpy

import numpy as np


cdef enum:
    OP_NUM = 1
    OP_TEXT = 2
    OP_REPEAT = 3
    OP_WHEN = 4
    OP_CONST = 5
    NCOLS = 6
    MAX_PROGRAMS = 4
    MAX_DEPTH = 8


cdef bint utf8_ok(const uint8_t *s, Py_ssize_t n) noexcept nogil:
    """Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF), as Python's
    strict decoder judges it."""
    cdef Py_ssize_t i = 0
    cdef uint8_t c, c1
    cdef int need
    while i < n:
        c = s[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need = 1
        elif 0xE0 <= c <= 0xEF:
            need = 2
        elif 0xF0 <= c <= 0xF4:
            need = 3
        else:
            return False
        if i + need >= n:
            return False
        c1 = s[i + 1]
        if (c1 & 0xC0) != 0x80:
            return False
        if c == 0xE0 and c1 < 0xA0:
            return False
        if c == 0xED and c1 >= 0xA0:
            return False
        if c == 0xF0 and c1 < 0x90:
            return False
        if c == 0xF4 and c1 >= 0x90:
            return False
        if need >= 2 and (s[i + 2] & 0xC0) != 0x80:
            return False
        if need == 3 and (s[i + 3] & 0xC0) != 0x80:
            return False
        i += need + 1
    return True


cdef Py_ssize_t run(const int64_t *ops, Py_ssize_t start, Py_ssize_t end, const uint8_t *src,
                    Py_ssize_t pos, Py_ssize_t length, uint8_t *row, bint write, int depth) noexcept nogil:
    """Run program rows [start, end) from byte ``pos``; the byte after the last one read, or -1."""
    cdef Py_ssize_t i = start, n, k, count, body, keep
    cdef const int64_t *op
    cdef bint store
    if depth > MAX_DEPTH:
        return -1
    while i < end:
        op = ops + NCOLS * i
        if op[0] == OP_NUM:
            n = op[1]
            if n > length - pos:
                return -1
            if write and op[2] >= 0:
                # constant sizes: the compiler turns each into one move, not a memcpy call
                if n == 4:
                    memcpy(row + op[2], src + pos, 4)
                elif n == 2:
                    memcpy(row + op[2], src + pos, 2)
                elif n == 1:
                    row[op[2]] = src[pos]
                else:
                    memcpy(row + op[2], src + pos, n)
            pos += n
            i += 1
        elif op[0] == OP_TEXT:
            if 2 > length - pos:
                return -1
            n = src[pos] | (<Py_ssize_t> src[pos + 1] << 8)
            pos += 2
            if n > length - pos or not utf8_ok(src + pos, n):
                return -1
            if write and op[2] >= 0:
                keep = n if n <= op[1] else op[1]
                while keep < n and keep > 0 and (src[pos + keep] & 0xC0) == 0x80:
                    keep -= 1  # cut at a character boundary
                memcpy(row + op[2], src + pos, keep)
            pos += n
            i += 1
        elif op[0] == OP_WHEN:
            if 1 > length - pos:
                return -1
            if write and op[1] >= 0:
                row[op[1]] = src[pos]
            body = op[2]
            pos += 1
            if src[pos - 1]:
                pos = run(ops, i + 1, i + 1 + body, src, pos, length, row, write, depth + 1)
                if pos < 0:
                    return -1
            i += 1 + body
        elif op[0] == OP_REPEAT:
            n = op[1]
            if n > length - pos:
                return -1
            count = src[pos] if n == 1 else src[pos] | (<Py_ssize_t> src[pos + 1] << 8)
            if write and op[2] >= 0:
                memcpy(row + op[2], src + pos, n)
            pos += n
            body = op[5]
            for k in range(count):
                store = write and k < op[3] and op[4] > 0
                pos = run(ops, i + 1, i + 1 + body, src, pos, length, row + (k * op[4] if store else 0), store,
                          depth + 1)
                if pos < 0:
                    return -1
            i += 1 + body
        elif op[0] == OP_CONST:
            if write and op[1] >= 0:
                row[op[1]] = <uint8_t> op[2]
            i += 1
        else:
            return -1
    return pos


def parse_batch(const uint8_t[::1] buf not None, const int64_t[::1] offsets not None,
                const int64_t[::1] lengths not None, programs, const uint8_t[::1] template not None,
                uint8_t[::1] out not None, uint8_t[::1] ok not None):
    """Parse each datagram (``lengths[i]`` bytes at ``offsets[i]`` of ``buf``; byte 0 is its type,
    already matched) with the first of ``programs`` (int64 arrays, n x 6) that consumes it exactly,
    into row i of ``out`` (rows of ``len(template)`` bytes, each starting as ``template``).
    ``ok[i]`` says whether one did; returns how many did not (malformed). An empty ``out`` checks
    the datagrams without writing rows (the classifier's pass)."""
    cdef Py_ssize_t n = offsets.shape[0], row_size = template.shape[0], i, p, nprog = len(programs)
    cdef Py_ssize_t off, length, buflen = buf.shape[0], bad = 0
    cdef const int64_t *prog[MAX_PROGRAMS]
    cdef Py_ssize_t prog_rows[MAX_PROGRAMS]
    cdef const int64_t[:, ::1] view
    cdef uint8_t *row
    if nprog < 1 or nprog > MAX_PROGRAMS:
        raise ValueError(f"1..{MAX_PROGRAMS} programs, not {nprog}")
    cdef bint write = out.shape[0] > 0
    if lengths.shape[0] != n or ok.shape[0] < n or (write and out.shape[0] < n * row_size):
        raise ValueError("offsets, lengths, ok and out do not fit each other")
    keep = []
    for p in range(nprog):
        arr = np.ascontiguousarray(programs[p], dtype=np.int64)
        if arr.ndim != 2 or arr.shape[1] != NCOLS:
            raise ValueError("a program has 6 columns")
        view = arr
        keep.append(arr)
        prog[p] = &view[0, 0]
        prog_rows[p] = arr.shape[0]
        for i in range(arr.shape[0]):  # every stored offset inside the row, every body inside the program
            if (arr[i, 0] == OP_NUM or arr[i, 0] == OP_TEXT) and arr[i, 2] >= 0 and arr[i, 2] + max(arr[i, 1], 0) > row_size:
                raise ValueError(f"program {p} row {i} writes past the {row_size}-byte row")
            if arr[i, 0] in (OP_WHEN, OP_CONST) and arr[i, 1] >= row_size:
                raise ValueError(f"program {p} row {i} writes past the {row_size}-byte row")
            if arr[i, 0] == OP_REPEAT and (i + 1 + arr[i, 5] > arr.shape[0] or arr[i, 2] + arr[i, 1] > row_size):
                raise ValueError(f"program {p} row {i}: its body or count runs out")
            if arr[i, 0] == OP_WHEN and i + 1 + arr[i, 2] > arr.shape[0]:
                raise ValueError(f"program {p} row {i}: its body runs out")
    with nogil:
        for i in range(n):
            off = offsets[i]
            length = lengths[i]
            ok[i] = 0
            if off < 0 or length < 1 or off > buflen - length:
                bad += 1
                continue
            row = &out[i * row_size] if write and row_size else NULL
            for p in range(nprog):
                if row != NULL:
                    memcpy(row, &template[0], row_size)
                if run(prog[p], 0, prog_rows[p], &buf[off], 1, length, row, row != NULL, 0) == length:
                    ok[i] = 1
                    break
            if not ok[i]:
                bad += 1
    return bad
