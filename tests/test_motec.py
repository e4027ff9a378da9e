"""rt.export.motec, checked with the independent reader tests/reference_motec.py (written from
MOTEC.md alone): every channel round-trips onto the uniform grid within its stored resolution,
header and blocks carry the meta, the channel list's pointers are consistent, and the .ldx beacons
sit at the lap boundaries."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from reference_motec import read_ld, read_ldx
from rt.export.motec import write_motec

SEED = 19
RATE = 100  # Hz: the receive times jitter around it
T0 = 1000.0  # s: the first receive time
LAPS_REL = [(10.0, 70.3), (70.3, 131.0), (131.0, 190.2)]  # s from the first sample; out-lap before, in-lap after
LAPS = [(T0 + s, T0 + e) for s, e in LAPS_REL]  # in times_s seconds, as write_motec takes them
META = {"driver": "José Driver", "vehicle": "Audi R8 LMS", "venue": "Monza", "game": "Assetto Corsa",
        "feed": "ac", "datetime": datetime(2026, 12, 3, 17, 5, 9), "session": "Practice", "team": "RT"}

#: what the writer promises, stated here independently: canonical → (i2 name, unit, factor from the
#: canonical unit, decimal places, discrete); tolerance = half the last decimal place.
EXPECTED = {
    "speed_kmh": ("Ground Speed", "km/h", 1, 1, False), "rpm": ("Engine RPM", "rpm", 1, 0, False),
    "gear": ("Gear", "", 1, 0, True), "throttle": ("Throttle Pos", "%", 100, 1, False),
    "brake": ("Brake Pos", "%", 100, 1, False), "clutch": ("Clutch Pos", "%", 100, 1, False),
    "steer": ("Steering Angle", "%", 100, 1, False), "g_lat": ("G Force Lat", "G", 1, 3, False),
    "g_long": ("G Force Long", "G", 1, 3, False), "distance_m": ("Lap Distance", "m", 1, 1, False),
    "norm_pos": ("Lap Fraction", "%", 100, 2, False), "lap_count": ("Lap Number", "", 1, 0, True),
    "lap_time_ms": ("Lap Time", "s", 1e-3, 3, False), "last_lap_ms": ("Lap Time Last", "s", 1e-3, 3, True),
    "best_lap_ms": ("Lap Time Best", "s", 1e-3, 3, True), "pos_x": ("Car Pos X", "m", 1, 2, False),
    "pos_y": ("Car Pos Y", "m", 1, 2, False), "pos_z": ("Car Pos Z", "m", 1, 2, False),
}


def _session(seed: int = SEED):
    """200 s of jittered ~100 Hz receive times with the canonical channels of a few laps."""
    rng = np.random.default_rng(seed)
    n = 200 * RATE
    times = T0 + np.concatenate([[0.0], np.cumsum(rng.uniform(0.5, 1.5, n - 1) / RATE)])
    t = times - T0
    starts = np.array([0.0] + [s for s, _ in LAPS_REL] + [LAPS_REL[-1][1]])
    lap = np.searchsorted(starts, t, side="right") - 1
    lap_t = t - starts[lap]
    speed = 150 + 90 * np.sin(2 * np.pi * t / 20.0)
    speed[3000:3400] = np.nan  # 4 s lost
    ch = {
        "speed_kmh": speed, "rpm": 5000 + 3000 * np.sin(t), "gear": np.clip(np.floor(speed / 45), -1, 6),
        "throttle": (np.sin(t) + 1) / 2, "brake": np.clip(-np.sin(t), 0, 1), "clutch": np.ones(n),
        "steer": np.sin(t / 3), "g_lat": 2.5 * np.sin(t / 3), "g_long": np.cos(t),
        "distance_m": lap_t * 60.0, "norm_pos": (lap_t / 61.0) % 1, "lap_count": lap.astype(float),
        "lap_time_ms": lap_t * 1000, "last_lap_ms": np.full(n, np.nan), "best_lap_ms": np.full(n, np.nan),
        "pos_x": 400 * np.cos(t / 10), "pos_y": np.full(n, np.nan), "pos_z": -300 * np.sin(t / 10),
    }
    for s, e in LAPS_REL:
        ch["last_lap_ms"][t >= e] = (e - s) * 1000
    ch["best_lap_ms"][:] = np.fmin.accumulate(ch["last_lap_ms"])
    ch["gear"][5000:5100] = np.nan
    return times, {k: (v, "") for k, v in ch.items()}


def _held(v: np.ndarray) -> np.ndarray:
    """NaN → the last known value (leading NaNs: the first known one), by a plain loop."""
    out = v.copy()
    known = v[~np.isnan(v)][0]
    for i, x in enumerate(v):
        known = known if np.isnan(x) else x
        out[i] = known
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    times, channels = _session()
    d = tmp_path_factory.mktemp("motec")
    write_motec(d / "s.ld", d / "s.ldx", channels, times, META, LAPS)
    return times, channels, read_ld(d / "s.ld"), read_ldx(d / "s.ldx")


def test_channels_round_trip_on_the_grid(written):
    times, channels, ld, _ = written
    by_name = {c.name: c for c in ld.channels}
    assert "Car Pos Y" not in by_name  # NaN throughout: left out
    assert len(ld.channels) == len(channels) - 1
    count = int((times[-1] - times[0]) * RATE) + 1
    grid = times[0] + np.arange(count) / RATE
    for key, (values, _) in channels.items():
        if key == "pos_y":
            continue
        name, unit, factor, dec, discrete = EXPECTED[key]
        c = by_name[name]
        assert (c.unit, c.rate, c.count, c.offset, c.mul) == (unit, RATE, count, 0, 1), name
        v = _held(values)
        if discrete:
            want = v[np.searchsorted(times, grid, side="right") - 1]
        else:
            want = np.interp(grid, times, v)
        tol = 0.5 * 10.0 ** -dec * (1 + 1e-9)
        np.testing.assert_allclose(c.values, want * factor, rtol=0, atol=tol, err_msg=name)
        assert (c.raw_max, c.raw_min) == (c.raw.max(), c.raw.min())


def test_nan_stretch_holds_the_last_value(written):
    times, channels, ld, _ = written
    speed = next(c for c in ld.channels if c.name == "Ground Speed")
    last = channels["speed_kmh"][0][2999]
    grid = times[0] + np.arange(speed.count) / RATE
    inside = (grid > times[3000]) & (grid < times[3399])  # strictly within the lost stretch
    assert inside.sum() > 300
    np.testing.assert_allclose(speed.values[inside], last, atol=0.05)
    best = next(c for c in ld.channels if c.name == "Lap Time Best")
    assert best.values[0] == pytest.approx(60.3)  # leading NaNs: the first known value


def test_header_and_blocks(written):
    _, _, ld, _ = written
    assert ld.marker == 0x40 and ld.event_at == 0x6E2
    assert (ld.date, ld.time) == ("03/12/2026", "17:05:09")
    assert (ld.driver, ld.vehicle, ld.venue, ld.session, ld.team) == (
        "José Driver", "Audi R8 LMS", "Monza", "Practice", "RT")
    assert ld.event["name"] == "Assetto Corsa" and ld.event["session"] == "Practice"
    assert ld.event["weather_at"] == 0
    assert ld.venue_block["name"] == "Monza" and ld.vehicle_block["id"] == "Audi R8 LMS"
    # blocks sit in their reserved MoTeC slots, before the records
    assert ld.event["venue_at"] == 0x1336 and ld.venue_block["vehicle_at"] == 0x1F54 and ld.records_at == 0x3448


def test_channel_list_pointers(written):
    _, _, ld, _ = written
    chs = ld.channels
    assert ld.count == len(chs)
    assert ld.data_at == ld.records_at + len(chs) * 124
    assert chs[0].prev == 0 and chs[-1].next == 0
    at = ld.data_at
    for i, c in enumerate(chs):
        assert c.record_at == ld.records_at + i * 124
        if i:
            assert c.prev == chs[i - 1].record_at
        assert c.data_at == at  # arrays back to back in list order
        assert (c.type_code, c.width) in {(3, 2), (5, 4)}  # int32 is type 5, never 3
        assert c.scale == 1 and c.dec >= 0
        at += c.count * c.width
    assert ld.size == at  # the file ends with the last sample
    assert len({c.count / c.rate for c in chs}) == 1  # one duration for all


def test_ldx_beacons_at_lap_boundaries(written):
    times, _, _, ldx = written
    want = [10.0, 70.3, 131.0, 190.2]
    assert len(ldx.beacons_us) == len(want)
    for got, t in zip(ldx.beacons_us, want):
        assert abs(got / 1e6 - t) <= 1 / RATE
    assert ldx.details == {"Total Laps": "5", "Fastest Time": "0:59.200", "Fastest Lap": "4"}


def test_ldx_numbers_are_c_locale_scientific(tmp_path):
    times, channels = _session()
    write_motec(tmp_path / "a.ld", tmp_path / "a.ldx", channels, times, META, LAPS)
    text = (tmp_path / "a.ldx").read_text()
    assert 'Time="1.00000000000000000e+07"' in text  # 10 s, %.17e, '.' decimals


def test_default_rate_is_the_mean_rate_even_when_frames_arrive_in_bursts(tmp_path):
    # 333 frames a second arriving in bursts of 10, 0.01 ms apart (as a replay or a busy LAN delivers)
    bursts = np.repeat(np.arange(200) * 10 / 333, 10) + np.tile(np.arange(10) * 1e-5, 200)
    write_motec(tmp_path / "c.ld", tmp_path / "c.ldx", {"speed_kmh": (np.full(bursts.size, 100.0), "km/h")},
                bursts, META, [])
    assert {c.rate for c in read_ld(tmp_path / "c.ld").channels} == {round((bursts.size - 1) / bursts[-1])}


def test_default_rate_is_the_frames_rate(tmp_path):
    times, channels = _session()
    write_motec(tmp_path / "a.ld", tmp_path / "a.ldx", channels, times, META, [])
    ld = read_ld(tmp_path / "a.ld")
    assert {c.rate for c in ld.channels} == {RATE}
    assert read_ldx(tmp_path / "a.ldx").beacons_us == []
    write_motec(tmp_path / "b.ld", tmp_path / "b.ldx", channels, times, META, [], rate_hz=50)
    assert {c.rate for c in read_ld(tmp_path / "b.ld").channels} == {50}


def test_clipping_and_errors(tmp_path):
    times = np.arange(10) / 10.0
    write_motec(tmp_path / "a.ld", tmp_path / "a.ldx", {"rpm": (np.full(10, 99999.0), "rpm")}, times, META, [])
    assert read_ld(tmp_path / "a.ld").channels[0].values.max() == 32767  # clipped to int16
    with pytest.raises(ValueError):
        write_motec(tmp_path / "b.ld", tmp_path / "b.ldx", {"rpm": (np.full(10, np.nan), "rpm")}, times, META, [])
    with pytest.raises(KeyError):
        write_motec(tmp_path / "c.ld", tmp_path / "c.ldx", {"t_ns": (times, "ns")}, times, META, [])
