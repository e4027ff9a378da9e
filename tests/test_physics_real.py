"""Physics consistency of the canonical channels on every real capture we have.

The simulator is ours, so it agrees with our assumptions; a real game does not have to. These
checks need no truth beyond physics, so they judge the canonical mapping on real data whatever a
struct calls its fields:

* lateral g follows v² × curvature of the driven path, with its sign (+ = left);
* longitudinal g follows dv/dt;
* steering points the way the path turns (+ = left), and a right-hander of the real circuit turns
  right in the canonical frame (heading from +x towards +z grows in a left turn);
* speed follows the change of position;
* rpm / speed is constant within a held gear, and falls from gear to gear;
* the game's odometer (PCARS) follows the distance driven.

Everything is computed here from first principles (positions, speed), independent of
``rt.analysis``. Curvature and dv/dt are taken per metre of path (time-free): the Spa stream has
no receive times and its lap timer is -1 throughout; AC's receive times come in Windows-timer
bursts. Where a time base is needed (AC speed against positions) the game's lap timer is used
where it advances.
"""

from __future__ import annotations

import numpy as np
import pytest

from captures import AC_MONZA, PCARS1, PCARS1_SPA, need
from rt.decode import Decoder, concatenated_offsets
from rt.protocols import default_protocols
from rt.protocols.canonical import STANDARD_GRAVITY, to_canonical

P = default_protocols()
#: Path resampling step and smoothing for curvature, m: the Spa positions are quantised to 0.25 m.
STEP_M = 1.0
SMOOTH_M = 6.0
#: Only frames faster than this count (m/s): at walking pace curvature and dv/ds are noise.
MIN_SPEED_MS = 15.0


def _pcars1_spa() -> tuple[np.ndarray, dict]:
    raw = need(PCARS1_SPA).read_bytes()
    offsets, off = [], 0
    sizes = {0: 1367, 1: 1347, 2: 1028}
    while off < len(raw):
        kind = raw[off + 2] & 3
        if kind == 0:
            offsets.append(off)
        off += sizes[kind]
    assert off == len(raw)
    cols = Decoder(P["pcars1_telemetry"]).columns(raw, np.array(offsets))
    return to_canonical("pcars1_telemetry", cols, np.arange(len(offsets), dtype=np.int64)), cols


def _ac_monza() -> tuple[np.ndarray, dict]:
    raw = need(AC_MONZA).read_bytes()
    cols = Decoder(P["ac_car_info"]).columns(raw, concatenated_offsets(len(raw) // 328, 328))
    return to_canonical("ac_car_info", cols, np.arange(len(raw) // 328, dtype=np.int64)), cols


STREAMS = {"ac_monza": _ac_monza, "pcars1_spa": _pcars1_spa}


def _gauss(values: np.ndarray, sigma: float) -> np.ndarray:
    half = int(4 * sigma)
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    k /= k.sum()
    padded = np.concatenate([np.full(half, values[0]), values, np.full(half, values[-1])])
    return np.convolve(padded, k, mode="valid")


class Path:
    """The driven path resampled every STEP_M metres, with speed and the channels along it."""

    def __init__(self, canon: np.ndarray) -> None:
        x, z = canon["pos_x"].astype(np.float64), canon["pos_z"].astype(np.float64)
        step = np.hypot(np.diff(x), np.diff(z))
        # Frames that did not move (a pause re-sends the same state) add nothing to the path.
        moving = np.concatenate(([True], step > 1e-3))
        self.frames = np.flatnonzero(moving)
        s = np.concatenate(([0.0], np.cumsum(step[moving[1:]])))
        self.s_frames = s
        self.grid = np.arange(0.0, s[-1], STEP_M)
        sigma = SMOOTH_M / STEP_M
        self.x = _gauss(np.interp(self.grid, s, x[moving]), sigma)
        self.z = _gauss(np.interp(self.grid, s, z[moving]), sigma)
        heading = np.unwrap(np.arctan2(np.gradient(self.z), np.gradient(self.x)))
        #: Signed curvature, 1/m: + when the heading turns from +x towards +z (a left turn).
        self.kappa = np.gradient(heading, STEP_M)
        self.heading = heading
        # Length: chords between frames ~3 m apart. Frame to frame, the 0.25 m quantisation of the
        # PCARS positions adds ~1 %; smoothing cuts the hairpins short instead.
        pick = np.unique(np.searchsorted(s, np.arange(0.0, s[-1], 3.0)))
        pick = np.append(pick, len(s) - 1)
        xm, zm = x[moving][pick], z[moving][pick]
        #: Length of the driven path, m.
        self.length_m = float(np.hypot(np.diff(xm), np.diff(zm)).sum())

    def along(self, values: np.ndarray) -> np.ndarray:
        """A per-frame channel on the path grid (frames that did not move left out)."""
        return np.interp(self.grid, self.s_frames, values[self.frames].astype(np.float64))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@pytest.fixture(scope="module", params=sorted(STREAMS))
def stream(request):
    canon, cols = STREAMS[request.param]()
    path = Path(canon)
    v = path.along(canon["speed_kmh"]) / 3.6
    sigma = SMOOTH_M / STEP_M
    fast = v > MIN_SPEED_MS
    return request.param, canon, cols, path, v, sigma, fast


def _follows(measured: np.ndarray, expected: np.ndarray, fast: np.ndarray, min_hard: int, name: str) -> None:
    """``measured`` follows ``expected`` (g): correlated, and of the same sign and size where over 0.5 g.

    Measured: lateral 0.998 (Monza) and 0.981 (Spa), longitudinal 0.998 and 0.994; median ratios
    0.996-1.023. The wrong field or sign gives ≤ 0.1 or a negative ratio."""
    assert _corr(measured[fast], expected[fast]) > 0.97, name
    hard = fast & (np.abs(expected) > 0.5)
    assert hard.sum() > min_hard, name
    assert 0.95 < float(np.median(measured[hard] / expected[hard])) < 1.05, name


def test_lateral_g_follows_v_squared_times_path_curvature(stream):
    name, canon, _, path, v, sigma, fast = stream
    expected = v**2 * path.kappa / STANDARD_GRAVITY
    _follows(_gauss(path.along(canon["g_lat"]), sigma), expected, fast, 100, name)


def test_longitudinal_g_follows_dv_dt(stream):
    name, canon, _, path, v, sigma, fast = stream
    vs = _gauss(v, sigma)
    expected = vs * np.gradient(vs, STEP_M) / STANDARD_GRAVITY  # dv/dt = v · dv/ds
    _follows(_gauss(path.along(canon["g_long"]), sigma), expected, fast, 50, name)


def test_steering_points_where_the_path_turns(stream):
    name, canon, _, path, v, sigma, fast = stream
    steer = _gauss(path.along(canon["steer"]), sigma)
    assert _corr(steer[fast], path.kappa[fast]) > 0.7, name  # measured 0.79 (Monza), 0.92 (Spa)
    # In real corners (radius under 150 m) the wheel is turned the way the path turns: all of
    # Spa's corner samples, 97 % of Monza's (the rest is countersteer as the car slides).
    corner = fast & (np.abs(path.kappa) > 1 / 150) & (np.abs(steer) > 0.01)
    assert corner.sum() > 100, name
    assert float(np.mean(np.sign(steer[corner]) == np.sign(path.kappa[corner]))) > 0.95, name


def test_a_right_hander_of_the_real_circuit_turns_right():
    # Spa's Rivage (a right-hand hairpin) lies 2150-2330 m round the lap: the canonical path and
    # the steering must both call it right (negative), or left and right are swapped.
    canon, cols = _pcars1_spa()
    lap_m = cols["sParticipantInfo.sCurrentLapDistance"][:, 0].astype(np.float64)
    path = Path(canon)
    at = path.along(lap_m)
    hairpin = (at > 2150) & (at < 2330)
    turn_deg = float(np.degrees(path.heading[hairpin][-1] - path.heading[hairpin][0]))
    assert -200 < turn_deg < -120
    assert float(np.mean(canon["steer"][(lap_m > 2170) & (lap_m < 2310)])) < -0.1
    # Monza (clockwise) from Lesmo to the line: the stretch turns right on the whole.
    monza, _ = _ac_monza()
    total = Path(monza)
    assert np.degrees(total.heading[-1] - total.heading[0]) < -180


def test_speed_follows_the_change_of_position():
    # AC: the lap timer (ms) is the game's clock where it advances (receive times are bursty).
    canon, _ = _ac_monza()
    t = canon["lap_time_ms"].astype(np.float64) / 1000.0
    x, z = canon["pos_x"].astype(np.float64), canon["pos_z"].astype(np.float64)
    lo, hi = np.arange(0, len(t) - 25), np.arange(25, len(t))  # ~0.4 s apart
    dt = t[hi] - t[lo]
    ok = (dt > 0.3) & (dt < 0.6)  # the same lap, the timer advancing
    v_pos = np.hypot(x[hi] - x[lo], z[hi] - z[lo]) / np.where(ok, dt, 1.0)
    v_mean = np.array([canon["speed_kmh"][a : b + 1].mean() for a, b in zip(lo[ok], hi[ok])]) / 3.6
    ok_fast = v_mean > MIN_SPEED_MS
    ratio = v_pos[ok][ok_fast] / v_mean[ok_fast]
    assert ok_fast.sum() > 5000
    assert abs(float(np.median(ratio)) - 1.0) < 0.02  # chords cut corners a little
    # PCARS: the steady sender rate shows as a constant path step per unit of speed.
    spa, _ = _pcars1_spa()
    step = np.hypot(np.diff(spa["pos_x"].astype(np.float64)), np.diff(spa["pos_z"].astype(np.float64)))
    v = spa["speed_kmh"][1:].astype(np.float64) / 3.6
    dt_est = step[v > MIN_SPEED_MS] / v[v > MIN_SPEED_MS]
    window = np.convolve(dt_est, np.ones(50) / 50, mode="valid")  # 0.25 m position steps average out
    assert float(np.percentile(window, 95) / np.percentile(window, 5)) < 1.15


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_rpm_over_speed_is_the_held_gears_ratio(name):
    canon, _ = STREAMS[name]()
    gear, rpm, v = canon["gear"], canon["rpm"].astype(np.float64), canon["speed_kmh"].astype(np.float64) / 3.6
    # A gear held for 10 frames either side, clutch in and moving: rpm / speed is that gear's ratio.
    held = np.ones(len(gear), dtype=bool)
    for k in range(1, 11):
        held[k:] &= gear[k:] == gear[:-k]
        held[:-k] &= gear[:-k] == gear[k:]
    use = held & (gear > 0) & (v > MIN_SPEED_MS) & (canon["clutch"] > 0.9)
    ratios = {}
    for g in np.unique(gear[use]).tolist():
        r = rpm[use & (gear == g)] / v[use & (gear == g)]
        if r.size >= 50:
            q1, med, q3 = np.percentile(r, [25, 50, 75])
            # Tyres slip a few per cent under power and braking: the spread stays well below
            # the 15 %+ steps between neighbouring gears.
            assert (q3 - q1) / med < 0.06, (name, g)
            ratios[g] = med
    assert len(ratios) >= 3, name
    gears = sorted(ratios)
    assert all(ratios[a] > ratios[b] for a, b in zip(gears, gears[1:])), (name, ratios)


def test_odometer_follows_the_distance_driven():
    canon, cols = _pcars1_spa()
    odometer_m = (float(cols["sOdometerKM"][-1]) - float(cols["sOdometerKM"][0])) * 1000.0
    lap_m = cols["sParticipantInfo.sCurrentLapDistance"][:, 0].astype(np.float64)
    path = Path(canon)
    assert path.length_m == pytest.approx(odometer_m, rel=0.005)
    assert lap_m[-1] - lap_m[0] == pytest.approx(odometer_m, abs=2.0)  # lap distance counts in whole metres


def test_single_pcars_packet_speed_is_its_velocity():
    need(PCARS1)
    for name in ("jamesremuscat_packet_0.bin",):
        raw = (PCARS1 / name).read_bytes()
        cols = Decoder(P["pcars1_telemetry"]).columns(raw, np.array([0]))
        canon = to_canonical("pcars1_telemetry", cols, np.array([0], dtype=np.int64))
        v_local = float(np.linalg.norm(cols["sLocalVelocity"][0]))
        v_world = float(np.linalg.norm(cols["sWorldVelocity"][0]))
        assert canon["speed_kmh"][0] / 3.6 == pytest.approx(v_world, abs=0.05)
        assert v_local == pytest.approx(v_world, abs=0.05)
