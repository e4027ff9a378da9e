"""Raw feed file records: packing ring batches into records, and indexing a file's records.

Compiled in ``rt_ext.rawpack``; this module is the only door to it from ``rt``
(``tests/test_facade.py`` fails on any other import of it).

A record is (little-endian) ``u64 receive time (ns since the Unix epoch) | u32 payload length |
payload``; :data:`RECORD_HEADER` is its header's size in bytes. :func:`pack` writes a ring
batch's records into a uint8 buffer of :func:`packed_size` bytes (a datagram longer than its slot
keeps the slot's bytes) and returns the bytes used; :func:`scan` indexes the records of a raw
file's bytes from an offset into ``(t_ns, payload offsets, payload lengths, end)`` (int64 arrays;
``end``: the byte where the last whole record ends, a torn tail starts there). Both run without
the GIL and without a Python object per datagram.
"""

from rt_ext.rawpack import RECORD_HEADER, pack, packed_size, scan

__all__ = ["RECORD_HEADER", "pack", "packed_size", "scan"]
