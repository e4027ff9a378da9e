"""Canonical channels: each game's encoding mapped to one vocabulary (units, gear, pedal ranges)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from conftest import PCARS1, need
from rt.decode import Decoder, concatenated_offsets
from rt.protocols import default_protocols
from rt.protocols.canonical import AC_STEER_LOCK_DEG, CANONICAL_DTYPE, MAPPERS, to_canonical

P = default_protocols()


def canon(kind: str, packets: list[bytes]) -> np.ndarray:
    size = P[kind].size
    cols = Decoder(P[kind]).columns(b"".join(packets), concatenated_offsets(len(packets), size))
    out = to_canonical(kind, cols, np.arange(len(packets), dtype=np.int64) * 10)
    assert out is not None and out.dtype == CANONICAL_DTYPE
    return out


def ac_car(gear: int, speed_kmh=100.0, gas=0.5, brake=0.25, clutch=1.0, steer=-45.0, rpm=6500.0) -> bytes:
    b = bytearray(328)
    b[0] = ord("a")
    struct.pack_into("<i", b, 4, 328)
    struct.pack_into("<3f", b, 8, speed_kmh, speed_kmh / 1.609344, speed_kmh / 3.6)
    struct.pack_into("<4i", b, 40, 12345, 0, 0, 2)  # lapTime, lastLap (none), bestLap (none), lapCount
    struct.pack_into("<5f", b, 56, gas, brake, clutch, rpm, steer)
    struct.pack_into("<i", b, 76, gear)
    struct.pack_into("<f", b, 308, 0.25)
    struct.pack_into("<3f", b, 316, 10.0, 2.0, -30.0)
    return bytes(b)


def test_ac_gear_convention_and_units():
    out = canon("ac_car_info", [ac_car(0), ac_car(1), ac_car(2), ac_car(7)])
    assert out["gear"].tolist() == [-1, 0, 1, 6]
    assert out["speed_kmh"][0] == pytest.approx(100.0)
    assert out["rpm"][0] == 6500.0
    assert out["throttle"][0] == 0.5 and out["brake"][0] == 0.25 and out["clutch"][0] == 1.0
    assert out["steer"][0] == pytest.approx(45.0 / AC_STEER_LOCK_DEG)  # AC -45° (to the left) is +left
    assert out["lap_time_ms"][0] == 12345 and out["lap_count"][0] == 2
    assert out["last_lap_ms"][0] == -1 and out["best_lap_ms"][0] == -1  # AC sends 0 for "no lap yet"
    assert out["norm_pos"][0] == 0.25
    assert (out["pos_x"][0], out["pos_y"][0], out["pos_z"][0]) == (10.0, 2.0, 30.0)  # AC is left-handed: z flips
    assert out["t_ns"].tolist() == [0, 10, 20, 30]


def pcars1_with(gear_byte: int, throttle: int, brake: int, clutch: int, steering: int, speed_ms: float) -> bytes:
    b = bytearray(need(PCARS1 / "jamesremuscat_packet_0.bin").read_bytes())
    b[112], b[113], b[114] = brake, throttle, clutch
    struct.pack_into("<b", b, 115, steering)
    struct.pack_into("<f", b, 120, speed_ms)
    b[128] = gear_byte
    return bytes(b)


def test_pcars_gear_nibble_and_byte_pedals():
    out = canon(
        "pcars1_telemetry",
        [
            pcars1_with(0x6F, 255, 0, 0, -127, 10.0),  # reverse, 6 gears
            pcars1_with(0x60, 0, 255, 255, 127, 0.0),  # neutral
            pcars1_with(0x63, 128, 0, 0, 0, 50.0),  # third
        ],
    )
    assert out["gear"].tolist() == [-1, 0, 3]
    assert out["throttle"].tolist() == pytest.approx([1.0, 0.0, 128 / 255])
    assert out["brake"].tolist() == pytest.approx([0.0, 1.0, 0.0])
    assert out["clutch"].tolist() == pytest.approx([1.0, 0.0, 1.0])  # pedal pressed = disengaged
    # PCARS steers + to the right (the real Spa capture, tests/test_physics_real.py); canonical + = left.
    assert out["steer"].tolist() == pytest.approx([1.0, -1.0, 0.0])
    assert out["speed_kmh"].tolist() == pytest.approx([36.0, 0.0, 180.0])


def test_pcars1_capture_canonical_values():
    out = canon("pcars1_telemetry", [need(PCARS1 / "jamesremuscat_packet_0.bin").read_bytes()])
    assert out["gear"][0] == 0
    assert out["norm_pos"][0] == 0.0  # participant 0 at lap distance 0 of a 3890 m track
    assert out["lap_count"][0] >= 0


def test_pcars_seconds_become_ms_and_negative_means_unknown():
    b = bytearray(need(PCARS1 / "jamesremuscat_packet_0.bin").read_bytes())
    struct.pack_into("<3f", b, 12, -1.0, 83.456, 12.5)  # best (none), last, current
    out = canon("pcars1_telemetry", [bytes(b)])
    assert out["best_lap_ms"][0] == -1
    assert out["last_lap_ms"][0] == 83456
    assert out["lap_time_ms"][0] == 12500


def test_kinds_without_driving_data_have_no_canonical_rows():
    assert to_canonical("ac_lap", {}, np.zeros(1, np.int64)) is None
    assert set(MAPPERS) == {
        "ac_car_info",
        "tt_driver",
        "pcars1_telemetry",
        "pcars2_telemetry_538",
        "pcars2_telemetry_555",
        "pcars2_telemetry_556",
        "pcars2_telemetry_559",
        "acc_car_update",
    }


def test_pcars2_telemetry_maps_inputs_and_full_position():
    b = bytearray(559)
    b[10] = 0
    b[29], b[30], b[31] = 255, 51, 0  # brake, throttle, clutch
    struct.pack_into("<f", b, 36, 20.0)
    struct.pack_into("<H", b, 40, 7000)
    b[45] = 0x62
    struct.pack_into("<3f", b, 542, 1.5, 2.5, 3.5)
    out = canon("pcars2_telemetry_559", [bytes(b)])
    assert out["gear"][0] == 2 and out["rpm"][0] == 7000 and out["speed_kmh"][0] == pytest.approx(72.0)
    assert out["brake"][0] == 1.0 and out["throttle"][0] == pytest.approx(0.2)
    assert (out["pos_x"][0], out["pos_y"][0], out["pos_z"][0]) == (1.5, 2.5, 3.5)
    assert out["lap_count"][0] == -1 and np.isnan(out["norm_pos"][0])
    # the 538 version has no full position: unknown, not zero
    out538 = canon("pcars2_telemetry_538", [bytes(b[:538])])
    assert np.isnan(out538["pos_x"][0])


@pytest.mark.parametrize("bits", [0x7F7FFFFF, 0x7F800001, 0x7F800000])  # float32 max, signalling NaN, +inf
def test_extreme_floats_in_well_formed_packets_become_unknown_without_warnings(bits):
    # Found by the atheris fuzzer: sSpeed × 3.6 overflowed (a RuntimeWarning out of the consumer,
    # an error under the suite's filterwarnings) and left speed_kmh infinite.
    b = bytearray(559)
    struct.pack_into("<I", b, 36, bits)  # sSpeed
    struct.pack_into("<I", b, 100, bits)  # sLocalAcceleration x
    out = canon("pcars2_telemetry_559", [bytes(b)])
    assert np.isnan(out["speed_kmh"][0])  # 3.6 × any of them is infinite or NaN: unknown
    for name in CANONICAL_DTYPE.names:
        if CANONICAL_DTYPE[name].kind == "f":
            assert not np.isinf(out[name][0]), name
    ac = bytearray(ac_car(gear=2))
    struct.pack_into("<I", ac, 72, bits)  # steer
    steer = canon("ac_car_info", [bytes(ac)])["steer"][0]  # a NaN here raised "invalid value" before
    assert np.isnan(steer) or -1.0 <= steer <= 1.0
