"""Raw feed files: every datagram exactly as received, with its receive time.

Format (little-endian)::

    magic   8 bytes   b"RTFEED1\\n"
    record  repeated: u64 receive time (ns since the Unix epoch) | u32 payload length | payload

The raw file is the source of truth of a recording; the HDF5 file can always be rebuilt from it.
A file cut short by a crash ends in a partial record, which readers ignore and recovery trims.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = b"RTFEED1\n"
HEADER = struct.Struct("<QI")


class RawFormatError(ValueError):
    """Not a raw feed file."""


def parse(data: bytes | memoryview) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Index the records of a raw file's bytes.

    Returns ``(t_ns, offsets, lengths, end)``: receive times, the byte offset of each payload,
    payload lengths, and the end of the last whole record (where a torn tail begins).
    """
    view = memoryview(data)
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise RawFormatError("not a raw feed file (bad magic)")
    times, offsets, lengths = [], [], []
    pos = len(MAGIC)
    size = len(view)
    while pos + HEADER.size <= size:
        t, n = HEADER.unpack_from(view, pos)
        if pos + HEADER.size + n > size:
            break
        times.append(t)
        offsets.append(pos + HEADER.size)
        lengths.append(n)
        pos += HEADER.size + n
    return (
        np.array(times, dtype=np.int64),
        np.array(offsets, dtype=np.int64),
        np.array(lengths, dtype=np.int64),
        pos,
    )


def read(path: str | Path) -> tuple[np.ndarray, list[bytes]]:
    """Receive times and payloads of a raw feed file (ignoring a torn last record)."""
    data = Path(path).read_bytes()
    t_ns, offsets, lengths, _ = parse(data)
    return t_ns, [data[o : o + n] for o, n in zip(offsets.tolist(), lengths.tolist())]
