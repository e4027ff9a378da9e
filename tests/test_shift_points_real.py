"""Shift points on a real Project CARS 1 lap: Spa, Audi R8 LMS Ultra (GT3), 1860 telemetry packets.

PCARS reports one-sample gear values while a shift is under way (the next-but-one gear, or the
previous one, between neutral samples). On this capture the old analysis counted four of them
as upshifts ("from 2nd" at 75 and 167 km/h) and missed the real 3 → 4 at 116 km/h. The capture
is third-party data, read from the shared captures folder (tests/captures.py), never copied.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PCARS1_SPA, need

from rt.analysis.frames import Frames
from rt.analysis.shift_points import analyze, upshift_events
from rt.decode import Decoder
from rt.protocols import default_protocols
from rt.protocols.canonical import to_canonical

TELEMETRY_BYTES, STRINGS_BYTES = 1367, 1347  # packet types 0 and 1 (low 2 bits of byte 2)

# The capture's gear channel as runs (value × samples), printed from the decoded data:
#   5×290 3×1 0×2 3×1 4×6 0×3 2×1 3×263 1×1 0×3 4×281 0×1 1×1 3×618 0×3 3×1 4×97 2×1 0×2 3×1
#   5×217 0×3 5×1 6×62
# Held (≥ 0.1 s and in gear by rpm/speed): 5, 4 (6 samples, 0.12 s, in a 5 → 4 → 3 double
# downshift), 3, 4, 3, 4, 5, 6. Upshifts n → n+1 between held gears: 3 → 4, 3 → 4, 4 → 5, 5 → 6.
# The rpm of each is the highest in the last 0.25 s of the held gear n (read off the data):
EXPECTED_UPSHIFTS = [(3, 5758.0, 116.0), (3, 6678.0, 135.0), (4, 6781.0, 167.0), (5, 7635.0, 221.0)]
GAME_MAX_RPM = 8550.0  # sMaxRpm, constant over the capture


def _split(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Byte offsets of every packet, and its type: the datagrams are concatenated without framing."""
    offsets, kinds, at = [], [], 0
    while at < len(raw):
        kind = int(raw[at + 2]) & 3
        offsets.append(at)
        kinds.append(kind)
        at += TELEMETRY_BYTES if kind == 0 else STRINGS_BYTES
    assert at == len(raw), "the split must end exactly at the end of the file"
    return np.asarray(offsets, dtype=np.int64), np.asarray(kinds)


@pytest.fixture(scope="module")
def spa() -> Frames:
    """The Spa lap as canonical frames, meta as the server puts it (the game's max rpm, track length).

    Time base: the capture keeps no receive times and sCurrentTime is -1 throughout. The game
    sends at a steady rate, so t = i·dt with dt fixed by the distance the odometer (float, km)
    advanced over the speed integral: dt = D / Σ v̄ ≈ 19.8 ms (50.6 Hz). The lap distance counts
    whole metres, too coarse (0 or 1 m per packet) to time single packets. The hold rule is in
    seconds, so the rate matters: at 50.6 Hz the 0.1 s minimum is 5 to 6 packets.
    """
    raw = np.fromfile(need(PCARS1_SPA), dtype=np.uint8)
    offsets, kinds = _split(raw)
    tel = offsets[kinds == 0]
    assert len(tel) == 1860 and (kinds == 1).sum() == 4
    cols = {k: np.array(v) for k, v in Decoder(default_protocols()["pcars1_telemetry"]).columns(raw, tel).items()}
    assert (cols["sCurrentTime"] == -1).all()  # no game clock: the time base below is ours
    v = cols["sSpeed"].astype(np.float64)  # m/s
    odometer_m = cols["sOdometerKM"].astype(np.float64) * 1000.0
    dt = (odometer_m[-1] - odometer_m[0]) / np.sum(0.5 * (v[1:] + v[:-1]))
    assert 1 / dt == pytest.approx(50.0, rel=0.03)  # the README's ~50 Hz
    t_ns = 1_700_000_000 * 10**9 + np.rint(np.arange(len(tel)) * dt * 1e9).astype(np.int64)
    rows = to_canonical("pcars1_telemetry", cols, t_ns)
    assert set(np.unique(cols["sMaxRpm"])) == {GAME_MAX_RPM}
    meta = {"max_rpm": GAME_MAX_RPM, "track_length_m": float(cols["sTrackLength"][0])}
    return Frames.from_rows(rows, meta=meta)


def _contains(seq: np.ndarray, part: list[int]) -> bool:
    windows = np.lib.stride_tricks.sliding_window_view(seq, len(part))
    return bool((windows == part).all(axis=1).any())


def test_spa_observed_upshifts_are_the_held_gear_changes(spa):
    gear = spa["gear"].astype(np.int64)
    # The sequences are in the data: what the rule has to get right.
    for part in ([5, 5, 5, 3, 0, 0, 3, 4, 4], [3, 3, 3, 1, 0, 0, 0, 4, 4, 4], [4, 4, 4, 0, 1, 3, 3, 3],
                 [4, 4, 4, 2, 0, 0, 3, 5, 5], [5, 5, 5, 0, 0, 0, 5, 6, 6]):
        assert _contains(gear, part), part
    t, rpm = spa.t_s, spa["rpm"].astype(np.float64)
    from_gear, before = upshift_events(t, rpm, gear)
    assert list(zip(from_gear.tolist(), before.tolist())) == [(g, r) for g, r, _ in EXPECTED_UPSHIFTS]
    # Each at the speed the issue gives: the sample of the shift rpm in gear n, with n+1 next.
    for g, r, kmh in EXPECTED_UPSHIFTS:
        at = [i for i in np.flatnonzero((gear == g) & (rpm == r)) if (gear[i + 1 : i + 10] == g + 1).any()]
        assert len(at) == 1 and spa["speed_kmh"][at[0]] == pytest.approx(kmh, abs=1.0)

def test_spa_analysis_counts_no_blip(spa):
    result = analyze([spa])
    found = {g["gear"]: g for g in result["gears"]}
    # Clean full-throttle data exists in 4th and 5th only (3rd has < 0.3 s of it), so those are
    # the entries; each has its one real upshift and its rpm.
    assert sorted(found) == [4, 5]
    for g, rpm, _ in EXPECTED_UPSHIFTS[2:]:
        assert found[g]["upshifts"] == found[g]["observed_rpm"]["count"] == 1
        assert found[g]["observed_rpm"]["mean"] == rpm
    assert result["max_rpm"] == GAME_MAX_RPM
    # Without the game's maximum: the top of the full-throttle data, the 5 → 6 shift at 7635.
    bare = Frames(spa.channels, meta={})
    assert analyze([bare])["max_rpm"] == 7635.0
