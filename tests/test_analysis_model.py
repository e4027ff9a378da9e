"""The shared pieces of rt/analysis: the one lap model (one finder whose laps carry timing and
positions, one rewind rule, one wrap test, the Laps table) and the one JSON-number helper."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rt.analysis.frames import Frames, json_num
from rt.analysis.laps import Lap, Laps, find_laps, norm_wraps, run_laps
from rt.protocols.canonical import empty

HZ = 50
LAP_FRAMES = 500  # 10 s laps at 50 Hz


def three_laps(timer_drop_ms: int = 0, norm_back: float = 0.0) -> Frames:
    """Three 10 s laps from the line, with the game's counter, timer and times; in lap 2 (frame
    750 on) the timer is put back by ``timer_drop_ms`` and the position by ``norm_back`` laps."""
    n = 3 * LAP_FRAMES
    i = np.arange(n)
    rows = empty(n)
    rows["t_ns"] = (i * (1e9 / HZ)).astype(np.int64)
    within = i % LAP_FRAMES
    norm = within / LAP_FRAMES
    lt = within * (1000 // HZ)
    norm[750:1000] -= norm_back
    lt[750:1000] -= timer_drop_ms
    rows["norm_pos"] = norm
    rows["lap_count"] = i // LAP_FRAMES
    rows["lap_time_ms"] = lt
    rows["last_lap_ms"] = np.where(i < LAP_FRAMES, -1, 10_000)
    rows["speed_kmh"] = 150.0
    return Frames.from_rows(rows, meta={"run_id": "r"})


@pytest.mark.parametrize(
    ("timer_drop_ms", "norm_back", "rewound"),
    [
        (0, 0.0, False),
        (480, 0.0, True),  # the timer put back half a second: a rewind
        (0, 0.02, True),  # ≈ 100 m back on a 5 km track
        (0, 0.008, False),  # a 0.006-lap step, under REWIND_NORM: no rewind
    ],
)
def test_one_lap_model_for_timing_and_positions(timer_drop_ms, norm_back, rewound):
    fr = three_laps(timer_drop_ms, norm_back)
    laps = find_laps(fr)
    assert [(lap.lap, lap.start, lap.end) for lap in laps] == [(1, 0, 500), (2, 500, 1000), (3, 1000, 1500)]
    assert [lap.rewind for lap in laps] == [False, rewound, False]
    assert [lap.valid for lap in laps] == [True, not rewound, False]  # lap 3: unfinished
    assert [lap.good for lap in laps] == [True, not rewound, False]
    assert (laps[1].flaw == "rewind") is rewound
    # The same laps carry the positions the geometric analyses bin by: ≈0..1 in each lap.
    for k, lap in enumerate(laps):
        assert lap.whole == k and lap.p[0] == 0.0 and lap.t is not None and len(lap.t) == len(lap)
    assert run_laps([fr, fr]).pick_run(1)[0].frames is not None and len(run_laps([fr, fr])) == 6


def test_norm_wraps_forward_and_backward():
    v = np.array([0.5, 0.95, 0.02, 0.05, 0.97, 0.99, 0.03])
    fwd, back = norm_wraps(v)
    assert fwd.tolist() == [False, True, False, False, False, True]
    assert back.tolist() == [False, False, False, True, False, False]


def test_laps_table_picks_the_first_of_the_fastest_valid_laps():
    def lap(n, time_ms, valid, run=0):
        return Lap("r", n, n * 10, n * 10 + 10, time_ms, valid=valid, complete=True, run=run)

    laps = Laps([lap(1, 95_000, False), lap(2, 96_000, True), lap(3, 96_000, True, run=1), lap(4, None, True)])
    assert laps.pick_fastest() is laps[1]
    assert laps.times_ms() == [96_000, 96_000]
    assert [x.lap for x in laps.pick_run(1)] == [3]
    assert laps.records(("lap", "time_ms")) == [
        {"lap": 1, "time_ms": 95_000}, {"lap": 2, "time_ms": 96_000}, {"lap": 3, "time_ms": 96_000},
        {"lap": 4, "time_ms": None}]
    assert Laps([lap(1, 95_000, False)]).pick_fastest() is None


def test_json_num_gives_plain_json_numbers():
    assert json_num(None) is None
    assert json_num(float("nan")) is None and json_num(np.float32("inf")) is None
    v = json_num(np.float64(1.234567), 3)
    assert v == 1.235 and type(v) is float
    n = json_num(np.int64(7))
    assert n == 7 and type(n) is int
    assert json.dumps(json_num(-0.00001, 2)) == "0.0"
    out = json_num(np.array([1.23456, np.nan, -np.inf, -0.00001]), 2)
    assert out == [1.23, None, None, 0.0] and json.dumps(out) == "[1.23, null, null, 0.0]"
    assert json_num(np.array([[1, 2], [3, 4]], dtype=np.int16)) == [[1, 2], [3, 4]]
    assert json_num([0.5, math.nan]) == [0.5, None]
