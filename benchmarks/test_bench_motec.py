"""Writing one hour of 333 Hz frames (1.2 M samples × 15 channels) to a MoTeC i2 ``.ld``.

The writer resamples every channel onto a uniform grid (here the receive times already are one)
and quantises it to scaled integers. Peer: the floor of the work, the same bytes written as a
struct-packed header followed by ``ndarray.tofile`` of each channel's ready-made integer array.
"""

from __future__ import annotations

import struct
from datetime import datetime

import numpy as np
import pytest

from benchmarks.conftest import per_second
from reference_motec import read_ld  # noqa: E402  (benchmarks/conftest.py puts tests/ on the path)
from rt.export.motec import write_motec

RATE = 333
SAMPLES = 3600 * RATE
KEYS = ("speed_kmh", "rpm", "gear", "throttle", "brake", "clutch", "steer", "g_lat", "g_long",
        "distance_m", "lap_count", "lap_time_ms", "pos_x", "pos_y", "pos_z")
META = {"driver": "Bench", "vehicle": "Car", "venue": "Track", "game": "ac", "feed": "ac",
        "datetime": datetime(2026, 1, 1, 12, 0, 0)}
pytestmark = pytest.mark.benchmark(group="export: 1 h of 333 Hz frames, 15 channels to MoTeC .ld")


@pytest.fixture(scope="module")
def hour():
    t = np.arange(SAMPLES) / RATE
    rng = np.random.default_rng(0)
    channels = {k: (np.sin(t / (i + 1)) * 0.9 + rng.normal(0, 0.01, SAMPLES), "") for i, k in enumerate(KEYS)}
    channels["rpm"] = (channels["rpm"][0] * 3000 + 5000, "rpm")
    channels["gear"] = (np.floor(channels["gear"][0] * 3 + 3), "")
    return t, channels


@pytest.fixture(scope="module")
def layout(hour, tmp_path_factory):
    """The writer's file, read back: its header bytes and each channel's integer array."""
    t, channels = hour
    path = tmp_path_factory.mktemp("motec") / "ref.ld"
    write_motec(path, path.with_suffix(".ldx"), channels, t, META, [])
    ld = read_ld(path)
    return path, path.read_bytes()[: ld.data_at], ld.channels


def _peer_write(path, header: bytes, chans) -> None:
    head = bytearray(header)
    for c in chans:  # the records: the only part of the header that depends on the data
        struct.pack_into("<IIII", head, c.record_at, c.prev, c.next, c.data_at, c.count)
        struct.pack_into("<HHHhhhh", head, c.record_at + 0x12, c.type_code, c.width, c.rate, 0, 1, 1, c.dec)
        struct.pack_into("<ii", head, c.record_at + 0x54, int(c.raw.max()), int(c.raw.min()))
    with open(path, "wb") as f:
        f.write(head)
        for c in chans:
            c.raw.tofile(f)


def test_rt_write_motec(benchmark, hour, tmp_path):
    t, channels = hour
    per_second(benchmark, SAMPLES * len(KEYS), "samples")
    ld = tmp_path / "rt.ld"
    benchmark.pedantic(write_motec, args=(ld, tmp_path / "rt.ldx", channels, t, META, []), rounds=3, iterations=1)
    assert len(read_ld(ld).channels) == len(KEYS)


def test_peer_numpy_tofile(benchmark, layout, tmp_path):
    ref, header, chans = layout
    per_second(benchmark, SAMPLES * len(KEYS), "samples")
    out = tmp_path / "peer.ld"
    benchmark.pedantic(_peer_write, args=(out, header, chans), rounds=3, iterations=1)
    assert out.read_bytes() == ref.read_bytes()  # the same layout, byte for byte
