"""Decoding ACC car updates (variable length: 38-byte head, three lap records with their splits)
from ring slots into packed rows, as the acc feed does: classify, parse each message sequentially
into its fixed row (``rt_ext.wire``), copy the rows out.

Peer: plain Python with ``struct``, one message at a time, reading the head with one
``unpack_from`` and each lap record with a cursor: what a Python client of ACC's broadcasting
protocol does (the Kunos SDK reads the same way), into one tuple per message.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from benchmarks.conftest import per_second
from rt.decode import BatchDecoder
from rt.protocols import default_protocols

import fake_acc as fa  # noqa: E402  (benchmarks/conftest.py puts tests/ on the path)

SLOT = 2048  # the rings' slot size
BATCH = 4096  # a full ring take
pytestmark = pytest.mark.benchmark(group="decode: ACC car updates (113 B, variable length) into rows")


def _message(i: int) -> bytes:
    laps = [fa.LapInfo(90_000 + i, i % 30, 0, (30_000 + i, 31_000, fa.NONE_MS if k == 2 else 29_000), 0, 1, 0, 0)
            for k in range(3)]
    return fa.encode_car_update(fa.CarUpdate(i % 30, 0, 1, 2 + i % 6, 100.0 + i, -50.0 - i, 0.5, 1, 150 + i % 100,
                                             1 + i % 30, 1, 1, (i % 1000) / 1000, i // 30, -120, *laps))


@pytest.fixture(scope="module")
def batch():
    messages = [_message(i) for i in range(BATCH)]
    assert {len(m) for m in messages} == {113}
    slots = np.zeros((BATCH, SLOT), dtype=np.uint8)
    for i, m in enumerate(messages):
        slots[i, : len(m)] = np.frombuffer(m, dtype=np.uint8)
    return slots.reshape(-1), np.arange(BATCH, dtype=np.int64) * SLOT, np.full(BATCH, 113, dtype=np.int64), messages


def _rt_rows(decoder: BatchDecoder, buf, offsets, lengths):
    kinds, bad = decoder.classify(buf, offsets, lengths)
    t_ns = np.arange(len(offsets), dtype=np.int64)
    return [g.columns.rows for g in decoder.groups(buf, offsets, t_ns, kinds, lengths=lengths)]


_HEAD = struct.Struct("<BHHBBfffBHHHHfHi")
_LAP = struct.Struct("<iHHB")
_FLAGS = struct.Struct("<BBBB")


def _struct_decode(message: bytes) -> tuple:
    """One car update, plain Python: the head, then three lap records read with a cursor."""
    head = _HEAD.unpack_from(message, 0)
    pos = _HEAD.size
    laps = []
    for _ in range(3):
        laptime, car, driver, n = _LAP.unpack_from(message, pos)
        pos += _LAP.size
        splits = struct.unpack_from(f"<{n}i", message, pos)
        pos += 4 * n
        laps.append((laptime, car, driver, splits, _FLAGS.unpack_from(message, pos)))
        pos += _FLAGS.size
    if pos != len(message):
        raise ValueError("trailing bytes")
    return head, laps


def test_rt_parse_and_decode_rows(benchmark, batch):
    buf, offsets, lengths, messages = batch
    decoder = BatchDecoder(default_protocols(), "acc")
    per_second(benchmark, BATCH, "messages")
    (rows,) = benchmark(_rt_rows, decoder, buf, offsets, lengths)
    peer = [_struct_decode(m) for m in messages]
    assert rows["kmh"].tolist() == [p[0][9] for p in peer]
    assert rows["lastLap.splits"][:, :3].tolist() == [list(p[1][1][3]) for p in peer]
    assert rows["currentLap.isValidForBest"].tolist() == [p[1][2][4][1] for p in peer]


def test_peer_python_struct_per_message(benchmark, batch):
    _, _, _, messages = batch
    per_second(benchmark, BATCH, "messages")
    benchmark(lambda: [_struct_decode(m) for m in messages])
