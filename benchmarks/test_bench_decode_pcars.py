"""Decoding 1367-byte PCARS 1 telemetry from ring slots into packed rows, as the recorder does.

PCARS 1 telemetry is the widest row the recorder stores: its 56 participant records are
flattened into one column per member, so a row is 392 separate copies of 1-12 bytes. Peer: numpy
with one strided view per field over the slots (participant members strided by the record size),
each copied once into the same packed rows: what a numpy user would write to get that layout.
"""

from __future__ import annotations


import numpy as np
import pytest

from benchmarks.conftest import per_second
from rt.decode import Decoder
from rt.protocols import default_protocols

LAYOUT = default_protocols()["pcars1_telemetry"]
from captures import PCARS1  # noqa: E402  (benchmarks/conftest.py puts tests/ on the path)

CAPTURE = PCARS1 / "jamesremuscat_packet_0.bin"
SLOT = 2048  # the rings' slot size
BATCH = 4096  # a full ring take
pytestmark = pytest.mark.benchmark(group="decode: PCARS 1 telemetry 1367 B into rows")


@pytest.fixture(scope="module")
def slots() -> np.ndarray:
    packet = np.frombuffer(CAPTURE.read_bytes(), dtype=np.uint8)
    assert packet.size == LAYOUT.size
    out = np.zeros((BATCH, SLOT), dtype=np.uint8)
    out[:, : LAYOUT.size] = packet
    out[:, 10] = np.arange(BATCH) % 256  # vary a field between packets
    return out


def test_rt_batch_decode_rows(benchmark, slots):
    dec = Decoder(LAYOUT)
    offsets = np.arange(BATCH, dtype=np.int64) * SLOT
    buf = slots.reshape(-1)
    per_second(benchmark, BATCH)
    rows = benchmark(dec.rows, buf, offsets)
    assert rows.tobytes() == _numpy_rows(slots).tobytes()


def _numpy_rows(slots: np.ndarray) -> np.ndarray:
    """Each field of every packet as one numpy view over the slots, copied once into the rows."""
    rows = np.empty(slots.shape[0], dtype=LAYOUT.dtype)
    for f in LAYOUT.fields:
        item = np.dtype(f.dtype)
        shape, strides = (slots.shape[0],), (SLOT,)
        if f.stride:  # a flattened struct array: record r of every packet sits f.stride bytes further on
            shape, strides = shape + (f.records,), strides + (f.stride,)
        inner = rows[f.name].shape[len(shape):]  # the member's own array dimensions, packed
        shape += inner
        strides += tuple(int(np.prod(inner[i + 1:], dtype=np.int64)) * item.itemsize for i in range(len(inner)))
        rows[f.name] = np.ndarray(shape, dtype=item, buffer=slots, offset=f.offset, strides=strides)
    return rows


def test_peer_numpy_offset_dtype_field_copies(benchmark, slots):
    per_second(benchmark, BATCH)
    benchmark(_numpy_rows, slots)
