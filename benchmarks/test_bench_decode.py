"""Decoding 328-byte AC packets into columns: rt_ext batch decode vs its peers, same data, same run.

Peers: ``struct.unpack_from`` per packet storing nothing (what a plain Python client does),
numpy ``frombuffer`` with an offset dtype plus one contiguous copy per column, and a plain memory
copy of the same bytes (the floor nobody can beat).
"""

from __future__ import annotations


import numpy as np
import pytest

from benchmarks.conftest import PACKETS, per_second
from rt.decode import CHUNK, Decoder, concatenated_offsets
from rt.protocols import default_protocols

from reference_decoder import STRUCTS  # noqa: E402  (benchmarks/conftest.py puts tests/ on the path)

LAYOUT = default_protocols()["ac_car_info"]
AC_STRUCT = STRUCTS["ac_car_info"]  # the independent reference decoder's struct: every field its own type
OFFSET_DTYPE = np.dtype(
    {
        "names": [f.name for f in LAYOUT.fields],
        "formats": [(f.dtype, f.shape) if f.shape else f.dtype for f in LAYOUT.fields],
        "offsets": [f.offset for f in LAYOUT.fields],
        "itemsize": LAYOUT.size,
    }
)
pytestmark = pytest.mark.benchmark(group="decode: AC RTCarInfo 328 B into columns")


def _chunks(stream: bytes) -> list[memoryview]:
    """The stream as CHUNK-packet read-only views, as the consumer takes them."""
    return [memoryview(stream)[i * 328 : (i + CHUNK) * 328] for i in range(0, PACKETS, CHUNK)]


def test_rt_batch_decode_columns(benchmark, ac_stream):
    """As the ingest consumer runs it: one reused column block, each batch written away before the next."""
    dec = Decoder(LAYOUT)
    offsets = concatenated_offsets(CHUNK, LAYOUT.size)
    views = _chunks(ac_stream)
    block = np.empty(dec.output_bytes(CHUNK), dtype=np.uint8)

    def run():
        for v in views:
            dec.columns(v, offsets, out=block)

    per_second(benchmark, PACKETS)
    benchmark(run)


def test_rt_batch_decode_columns_fresh_buffers(benchmark, ac_stream):
    """Every batch into newly allocated columns (what a caller keeping all batches pays)."""
    dec = Decoder(LAYOUT)
    offsets = concatenated_offsets(CHUNK, LAYOUT.size)
    views = _chunks(ac_stream)

    def run():
        for v in views:
            dec.columns(v, offsets)

    per_second(benchmark, PACKETS)
    benchmark(run)


def test_rt_batch_decode_rows(benchmark, ac_stream):
    dec = Decoder(LAYOUT)
    offsets = concatenated_offsets(CHUNK, LAYOUT.size)
    views = _chunks(ac_stream)

    def run():
        for v in views:
            dec.rows(v, offsets)

    per_second(benchmark, PACKETS)
    benchmark(run)


def test_peer_struct_unpack_per_packet(benchmark, ac_stream):
    unpack = AC_STRUCT.unpack_from

    def run():
        for off in range(0, PACKETS * 328, 328):
            unpack(ac_stream, off)

    per_second(benchmark, PACKETS)
    benchmark(run)


def test_peer_numpy_frombuffer_column_copies(benchmark, ac_stream):
    names = OFFSET_DTYPE.names

    def run():
        for i in range(0, PACKETS, CHUNK):
            arr = np.frombuffer(ac_stream, dtype=OFFSET_DTYPE, count=CHUNK, offset=i * 328)
            for name in names:
                np.ascontiguousarray(arr[name])

    per_second(benchmark, PACKETS)
    benchmark(run)


def test_peer_plain_memory_copy(benchmark, ac_stream):
    src = np.frombuffer(ac_stream, dtype=np.uint8)
    dst = np.empty(CHUNK * 328, dtype=np.uint8)

    def run():
        for i in range(0, PACKETS * 328, CHUNK * 328):
            np.copyto(dst, src[i : i + CHUNK * 328])

    per_second(benchmark, PACKETS)
    benchmark(run)
