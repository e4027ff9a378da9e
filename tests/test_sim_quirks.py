"""The simulator's real-game behaviours, checked on the datagrams it sends.

Sign conventions are unconditional (as the real games send them); every quirk of
:class:`rt.sim.quirks.Quirks` is checked on (there in the datagrams, truth still right) and off
(absent).
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from rt.decode import Decoder
from rt.protocols import default_protocols
from rt.sim import TRACKS, Simulation
from rt.sim.frames import frames_from_sim
from rt.sim.game import (
    DRIVING,
    REPEAT,
    GameStream,
    PushSender,
    ac_car_info,
    make_sim,
    pcars1_extra,
    pcars1_telemetry,
    pcars2_telemetry,
    sim_source,
    tt_driver,
)
from rt.sim.quirks import GearBlips, Quirks

P = default_protocols()
KIND = {"ac": "ac_car_info", "tt": "tt_driver", "pcars1": "pcars1_telemetry", "pcars2": "pcars2_telemetry_559"}
RING = TRACKS["test_ring"]


def decode(game: str, rows) -> dict[str, np.ndarray]:
    layout = P[KIND[game]]
    buf = rows.tobytes() if isinstance(rows, np.ndarray) else b"".join(rows)
    n = len(buf) // layout.size
    return Decoder(layout).columns(buf, np.arange(n, dtype=np.int64) * layout.size)


def stream(game: str, quirks, n: int, rate: float = 60.0, seed: int = 4, block=29, sim=None):
    """n ticks of a GameStream in blocks of ``block`` (a size or sizes to cycle through):
    (rows, state as sent, sim)."""
    sim = sim or Simulation(seed=seed, rate_hz=rate, out_lap_m=Quirks.of(quirks).out_lap_m)
    gs = GameStream(game, sim, rate, quirks)
    sizes = [block] if isinstance(block, int) else list(block)
    rows, states = [], []
    done = 0
    while done < n:
        size = min(sizes[len(rows) % len(sizes)], n - done)
        r, s = gs.next(size)
        done += size
        if r is not None:
            rows.append(r)
            states.append(s)
    return np.concatenate(rows), {k: np.concatenate([s[k] for s in states]) for k in states[0]}, sim


# ---------------------------------------------------------------------------------------- 1. signs
@pytest.mark.parametrize("game", ["pcars1", "pcars2"])
def test_pcars_steering_is_positive_to_the_right(game):
    sim = Simulation(seed=1, rate_hz=50.0, input_noise=0.0)
    st = sim.step_block(int(50 * 90))
    rows = pcars1_telemetry(st, 0, RING.length_m) if game == "pcars1" else pcars2_telemetry(st, 0)
    c = decode(game, rows)
    for name in ("sSteering", "sUnfilteredSteering"):
        np.testing.assert_array_equal(c[name], np.clip(np.rint(-st["steer"] * 127), -127, 127).astype(np.int8))
    right = np.asarray(RING.curvature(st["lap_distance_m"])) < 0
    left = np.asarray(RING.curvature(st["lap_distance_m"])) > 0
    assert right.sum() > 100 and left.sum() > 100
    assert np.all(c["sSteering"][right] > 0) and np.all(c["sSteering"][left] < 0)
    # Local acceleration x stays + = left (accelerating towards the inside of a left-hander).
    ax = c["sLocalAcceleration"][:, 0]
    assert np.all(ax[left] > 0) and np.all(ax[right] < 0)
    np.testing.assert_allclose(ax / 9.80665, st["g_lat"], atol=1e-5)


def test_ac_lateral_g_rides_in_the_vertical_field():
    sim = Simulation(seed=1, rate_hz=100.0)
    st = sim.step_block(100 * 90)
    c = decode("ac", ac_car_info(st))
    np.testing.assert_allclose(c["accG_vertical"], st["g_lat"], rtol=1e-6, atol=1e-6)  # offset 28: lateral, + left
    np.testing.assert_allclose(c["accG_frontal"], st["g_long"], rtol=1e-6, atol=1e-6)
    h = c["accG_horizontal"].astype(np.float64)  # small bumps around 0, unrelated to g_lat / g_long
    assert np.abs(h).max() < 0.1 and h.std() > 0.005 and abs(h.mean()) < 0.01
    assert abs(np.corrcoef(h, st["g_lat"])[0, 1]) < 0.2 and abs(np.corrcoef(h, st["g_long"])[0, 1]) < 0.2
    # The Telemetry Tool app's acc_g[0] stays the lateral g.
    t = decode("tt", tt_driver(st, 0))
    np.testing.assert_allclose(t["acc_g"][:, 0], st["g_lat"], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------- 2. gear blips
def _shift_windows(true_gear: np.ndarray):
    prev = np.concatenate([true_gear[:1], true_gear[:-1]])
    return [(int(i), int(prev[i]), int(true_gear[i])) for i in np.flatnonzero(true_gear != prev)]


@pytest.mark.parametrize("game", ["pcars1", "pcars2"])
def test_gear_blips_around_every_shift(game):
    rows, st, sim = stream(game, Quirks(gear_blips=True), 60 * 200, block=37)
    shown = decode(game, rows)["sGearNumGears"] & 15
    true = st["gear"].astype(np.int64)
    np.testing.assert_array_equal(shown, st["gear_reported"])
    shifts = _shift_windows(true)
    assert len(shifts) == len([e for e in sim.truth.shifts]) > 20  # the truth is untouched
    differs = shown != true
    covered = np.zeros(len(true), bool)
    for i, a, b in shifts:
        w = shown[i : i + 6].tolist()
        k = next(j for j, g in enumerate(w) if g == b)  # the pattern ends where the new gear shows
        pat = w[:k]
        covered[i : i + k] = True
        assert 1 <= len(pat) <= 5 and 0 in pat, (a, b, w)
        zeros = [j for j, g in enumerate(pat) if g == 0]
        assert zeros == list(range(zeros[0], zeros[-1] + 1)) and len(zeros) <= 3  # one run of neutrals
        blips = [g for g in pat if g != 0]
        assert 1 <= len(blips) <= 2 and zeros[0] <= 1
        d = 1 if b > a else -1
        assert all(g in {b + d, a, a - d} or g in {1, sim.car.num_gears} for g in blips), (a, b, pat)
    assert not np.any(differs & ~covered)
    # Off: the gear byte is the true gear.
    rows0, st0, _ = stream(game, None, 60 * 200)
    np.testing.assert_array_equal(decode(game, rows0)["sGearNumGears"] & 15, st0["gear"])
    assert "gear_reported" not in st0


def test_gear_blips_are_deterministic_and_block_split_invariant():
    a, _, _ = stream("pcars1", Quirks(gear_blips=True), 60 * 120, block=(1, 4, 2, 9, 3, 1, 1))
    b, _, _ = stream("pcars1", Quirks(gear_blips=True), 60 * 120, block=997)
    c, _, _ = stream("pcars1", Quirks(gear_blips=True), 60 * 120, block=997, seed=5)
    np.testing.assert_array_equal(a, b)
    ga, gc = decode("pcars1", a)["sGearNumGears"], decode("pcars1", c)["sGearNumGears"]
    assert not np.array_equal(ga, gc)  # another seed, other patterns
    # The real Spa patterns are of this shape; the generator covers both blip positions.
    blips = GearBlips(3)
    pats = [blips.pattern(5, 4, 6) for _ in range(200)]
    assert any(p[0] != 0 for p in pats) and any(p[-1] != 0 for p in pats)
    assert {len([g for g in p if g == 0]) for p in pats} == {1, 2, 3}


# ---------------------------------------------------------------------------------------- 3a. hotlap start
def test_out_lap_timer_stands_at_zero_until_the_line():
    rate = 100.0
    sim = make_sim(3, rate_hz=rate, quirks=Quirks(out_lap_m=400.0))
    ref = make_sim(3, rate_hz=rate)
    src, ref_src = sim_source("ac", sim, rate), sim_source("ac", ref, rate)
    c = decode("ac", src.take(100.0))
    c_ref = decode("ac", ref_src.take(100.0))
    t = sim.truth
    cross = int(np.ceil(t.out_lap_s * rate - 1e-9))  # first sample on or past the line
    assert 3.0 < t.out_lap_s < 12.0 and t.lap_start_times_s[0] == t.out_lap_s
    assert np.all(c["lapTime"][:cross] == 0) and np.all(c["lapCount"][:cross] == 0)
    assert np.all(c["speed_Ms"][:cross] > 20.0)  # driving, not parked
    assert np.all(np.diff(c["carPositionNormalized"][:cross]) > 0) and c["carPositionNormalized"][0] > 0.85
    assert c["lapTime"][cross + 1] > 0 and c["carPositionNormalized"][cross] < 0.01
    # Lap 1 is the same flying lap as without the out-lap, only later.
    assert t.lap_times_s == ref.truth.lap_times_s
    k = np.arange(cross, cross + int(t.lap_times_s[0] * rate) - 1)
    np.testing.assert_allclose(c["lapTime"][k], np.rint((k / rate - t.out_lap_s) * 1000.0), atol=1)
    assert t.shifts[0].lap == -1 and t.shifts[0].time_s < t.out_lap_s
    lap0 = [e.lap_distance_m for e in t.shifts if e.lap == 0]
    assert lap0 == [e.lap_distance_m for e in ref.truth.shifts if e.lap == 0]
    odo = src.sent_state["odometer_m"]
    assert odo[0] == 0.0 and odo[cross] == pytest.approx(400.0, abs=2.0)
    # Off: the car starts on the line with the timer running.
    assert c_ref["lapTime"][1] > 0 and c_ref["carPositionNormalized"][0] < 1e-6
    assert ref.truth.out_lap_s == 0.0


# ---------------------------------------------------------------------------------------- 3b. pause
@pytest.mark.parametrize("game", ["ac", "pcars1"])
def test_pause_resends_the_same_frame_and_the_truth_skips_it(game):
    rate, at, dur = 100.0, 20.0, 7.5
    q = Quirks(pauses=((at, dur),))
    rows, st, sim = stream(game, q, int(rate * 60), rate=rate, block=13)
    ref = Simulation(seed=4, rate_hz=rate)
    ref_st = ref.step_block(int(rate * 60) - int(rate * dur))
    a, m = int(at * rate), int(dur * rate)
    assert len(rows) == int(rate * 60)
    # 750 frames identical to the last one before the pause, every field frozen.
    assert np.all(rows[a : a + m] == rows[a - 1])
    assert not np.array_equal(rows[a + m], rows[a - 1])
    same = np.all(rows[1:] == rows[:-1], axis=1)
    assert same.sum() == m
    np.testing.assert_array_equal(st["kind"][a : a + m], REPEAT)
    # Real time runs on through the pause, one period a frame.
    np.testing.assert_array_equal(st["t_ns"] - sim.start_time_ns, np.arange(len(rows), dtype=np.int64) * 10_000_000)
    # The car continues where it stopped: after the pause it is where the no-pause car is, sample for sample.
    driving = st["kind"] == DRIVING
    assert sim.samples_emitted == driving.sum() == len(ref_st["t_ns"])
    for k in ("odometer_m", "lap_time_s", "speed_ms", "x", "z", "lap_count"):
        np.testing.assert_array_equal(st[k][driving], ref_st[k])
    assert sim.truth.lap_start_times_s == ref.truth.lap_start_times_s
    c = decode(game, rows)
    speed = c["speed_Ms"] if game == "ac" else c["sSpeed"]
    assert abs(speed[a + m] - speed[a - 1]) < 0.5  # no jump across the pause
    # Off: never two identical datagrams in a row.
    rows0, st0, _ = stream(game, None, int(rate * 30), rate=rate)
    assert not np.any(np.all(rows0[1:] == rows0[:-1], axis=1)) and np.all(st0["kind"] == DRIVING)


def test_pause_truth_excludes_it_over_whole_laps():
    rate = 50.0
    rows, st, sim = stream("tt", Quirks(pauses=((30.0, 7.5), (120.0, 3.0))), int(rate * 220), rate=rate, block=50)
    ref = Simulation(seed=4, rate_hz=rate)
    ref_st = ref.step_block(sim.samples_emitted)
    assert sim.samples_emitted == int(rate * 220) - int(rate * 10.5)
    assert len(sim.truth.lap_times_s) == 2 and sim.truth.lap_times_s == ref.truth.lap_times_s
    assert sim.truth.lap_start_times_s == ref.truth.lap_start_times_s
    # The lap timer as sent only counts driving time: the completed laps match the truth.
    c = decode("tt", rows)
    assert c["last_lap_ms"][-1] == round(sim.truth.lap_times_s[-1] * 1000)
    assert st["odometer_m"][-1] == ref_st["odometer_m"][-1]
    assert np.all(np.diff(st["odometer_m"]) >= 0)


def test_pause_through_a_source_and_frames():
    rate = 60.0
    sim = make_sim(2, rate_hz=rate, quirks=Quirks(pauses=((2.0, 1.0),)))
    src = sim_source("ac", sim, rate)
    out = []
    for step in np.arange(0.05, 5.0, 0.05):
        out += src.take(step)
    assert len(out) == int(4.95 * rate) and sim.samples_emitted == len(out) - 60
    assert len(set(out[120:180])) == 1 and out[119] == out[120] and out[180] != out[179]
    # AC with no subscriber lets the clock run through the pause; a client that comes in during it
    # gets the frozen frame.
    sim = make_sim(2, rate_hz=rate, quirks=Quirks(pauses=((1.0, 2.0),)))
    src = sim_source("ac", sim, rate)
    src.skip(1.5)
    assert sim.samples_emitted == 60 and src.taken == 90
    frozen = src.take(3.0)
    assert len(frozen) == 90 and len(set(frozen)) == 1 and sim.samples_emitted == 60
    after = src.take(4.0)
    assert len(after) == 60 and after[0] != frozen[-1] and sim.samples_emitted == 120
    # frames_from_sim follows sim.quirks: n datagrams, times strictly increasing through the pause.
    sim2 = make_sim(2, rate_hz=rate, quirks=Quirks(pauses=((2.0, 1.0),), gear_blips=True))
    fr, st = frames_from_sim(sim2, 600, "pcars2")
    assert len(st["t_ns"]) == 600 and np.all(np.diff(st["t_ns"]) > 0) and sim2.samples_emitted == 540


# ---------------------------------------------------------------------------------------- 4/5. PCARS 1 menus, counters
def test_menu_telemetry_and_strings_before_the_car_starts():
    rate = 60.0
    sim = make_sim(2, rate_hz=rate, quirks=Quirks(menu_s=5.0))
    src = sim_source("pcars1", sim, rate)
    extra = pcars1_extra(src)
    strings = Decoder(P["pcars1_participant_strings"])
    first = strings.one(extra(src.last_packet))
    assert first["sCarName"].rstrip(b"\0") == b"" and first["sTrackLocation"].rstrip(b"\0") == b""
    c = decode("pcars1", src.take(4.0))
    assert np.all(c["sNumParticipants"] == -1) and np.all(c["sGameSessionState"] & 7 == 1)
    assert np.all(c["sSpeed"] == 0) and sim.samples_emitted == 0 and src.in_menu
    assert strings.one(extra(5))["sCarName"].rstrip(b"\0") == b""
    c = decode("pcars1", src.take(10.0))
    menu = int(5.0 * rate) - int(4.0 * rate)
    assert np.all(c["sNumParticipants"][:menu] == -1) and np.all(c["sNumParticipants"][menu:] == 1)
    assert sim.samples_emitted == int(5.0 * rate) and not src.in_menu
    real = strings.one(extra(src.last_packet))
    assert real["sCarName"].rstrip(b"\0") == b"RT Sim GT" and real["sTrackLocation"].rstrip(b"\0") == b"RT Test Ring"
    # The counter runs on through the menu; the car's samples start after it.
    seqs = (c["sPacketType"] >> 2).astype(int)
    assert np.all(np.diff(seqs) % 64 == 1)
    assert sim.truth.lap_start_times_s == (0.0,)
    # Off: no menu packets at all.
    off = sim_source("pcars1", make_sim(2, rate_hz=rate), rate)
    extra_off = pcars1_extra(off)
    assert strings.one(extra_off(0))["sCarName"].rstrip(b"\0") == b"RT Sim GT"
    assert np.all(decode("pcars1", off.take(1.0))["sNumParticipants"] == 1)


def _capture_push(quirks, seconds: float = 1.2):
    """A PCARS 1 PushSender at 10× on a local socket: the datagrams in arrival order."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    rx.settimeout(0.2)
    src = sim_source("pcars1", make_sim(2, rate_hz=60.0, quirks=quirks), 60.0, speed=10.0)
    sender = PushSender(src, "127.0.0.1", rx.getsockname()[1], pcars1_extra(src), extra_every_s=0.1).start()
    got = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                got.append(rx.recv(2048))
            except socket.timeout:
                pass
    finally:
        sender.stop()
        rx.close()
    return got


def test_push_sender_strings_share_the_telemetry_counter():
    strings = Decoder(P["pcars1_participant_strings"])
    got = _capture_push(Quirks(shared_seq=True, menu_s=3.0))
    kinds = [p[2] & 3 for p in got]
    assert kinds.count(1) >= 5 and kinds.count(0) > 300
    for i, p in enumerate(got):
        if kinds[i] == 1 and i > 0 and kinds[i - 1] == 0:
            assert p[2] >> 2 == got[i - 1][2] >> 2  # the seq of the telemetry packet before it
    tel_seq = [p[2] >> 2 for p in got if p[2] & 3 == 0]
    assert all((b - a) % 64 == 1 for a, b in zip(tel_seq, tel_seq[1:]))  # strings do not advance it
    # Menu strings (empty names) come first, then the real ones.
    cars = [strings.one(p)["sCarName"].rstrip(b"\0") for p in got if p[2] & 3 == 1]
    first_real = cars.index(b"RT Sim GT")
    assert first_real >= 2 and set(cars[:first_real]) == {b""} and set(cars[first_real:]) == {b"RT Sim GT"}
    tel = [p for p in got if p[2] & 3 == 0]
    num = decode("pcars1", tel)["sNumParticipants"]
    assert num[0] == -1 and num[-1] == 1 and np.all(np.diff((num == 1).astype(int)) >= 0)


def test_push_sender_strings_counter_without_the_quirk():
    got = _capture_push(None, seconds=0.6)
    pairs = [(got[i - 1][2] >> 2, p[2] >> 2) for i, p in enumerate(got)
             if p[2] & 3 == 1 and i > 0 and got[i - 1][2] & 3 == 0]
    assert pairs and all(a != b for a, b in pairs)


# ---------------------------------------------------------------------------------------- options
def test_quirk_options():
    assert not Quirks().any and Quirks.of(None) == Quirks.of(False) == Quirks()
    real = Quirks.of(True)
    assert real == Quirks.real() and real.gear_blips and real.shared_seq and real.out_lap_m > 0
    assert real.menu_s > 0 and real.pauses and Quirks.real(menu_s=0.0).menu_s == 0.0
    with pytest.raises(ValueError):
        Quirks(pauses=((0.0, 1.0),))
    with pytest.raises(ValueError):
        Simulation(out_lap_m=1e6)
    sim = make_sim(1, rate_hz=60.0, quirks=True)
    assert sim.quirks == real and sim.out_lap_m == real.out_lap_m
    assert sim_source("pcars1", sim).quirks == real and sim_source("pcars1", sim, quirks=False).quirks == Quirks()
    assert make_sim(1).quirks == Quirks() and make_sim(1).out_lap_m == 0.0
    # Quirks only where the game has them: no menu for AC, no blips for AC/TT.
    sim = make_sim(1, rate_hz=60.0, quirks=True)
    gs = GameStream("ac", sim, 60.0, sim.quirks)
    assert gs.menu_ticks == 0 and gs._blips is None
    _, st = gs.next(10)
    assert np.all(st["kind"] == DRIVING)
    assert GameStream("pcars1", sim, 60.0, sim.quirks).menu_ticks == 300
    assert GameStream("pcars2", sim, 60.0, sim.quirks).menu_ticks == 0
