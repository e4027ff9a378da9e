"""The lap model of every analysis, and the lap-time and sector-time use cases.

One :class:`Lap` (a lap of one run: its frames ``start:end``, validity and its reason, game or
derived source, line-crossing times, lap and sector times, the lap's frames, and where the car
was along the lap on each frame) and one :class:`Laps` table (pick valid laps, a run's laps, the
laps with positions, the fastest; records for the JSON), built once per run by one finder,
:func:`find_laps` (all runs: :func:`run_laps`), and used by every analysis: lap times and sectors
read the timing, the geometric analyses (track map, racing line, braking) the positions ``p``
(``norm_pos`` unwrapped, :func:`unwrapped_position`, made relative to the lap) of the same laps,
and take only the :attr:`Lap.good` ones (complete, no rewind, positions covering the lap) as whole
laps. There is one wrap test (:func:`norm_wraps`) and one rewind rule (:data:`REWIND_NORM`,
:data:`REWIND_LAP_TIME_MS`, :data:`LAP_TIMER_RESET_MS`).

:func:`find_laps` cuts one run into laps:

* **Game laps** (``source: "game"``), when the feed has the game's lap counter and lap times
  (AC, the Telemetry Tool, PCARS 1): a lap ends where ``lap_count`` steps up by one, and its
  time is the game's own ``last_lap_ms`` shown just after the step (exact to the ms). The line
  crossing itself is placed at ``t − lap_time_ms`` of the frame where the game's lap timer
  restarts, so sector and plot code get it to the ms too.
* **Derived laps** (``source: "derived"``), when ``lap_count`` or ``last_lap_ms`` is unknown
  throughout the run, or the counter is stuck (it does not step within
  :data:`COUNTER_NEAR_WRAP_LAPS` of a line crossing that ``norm_pos`` shows, as in some practice
  sessions where it never steps): a lap ends where ``norm_pos`` wraps from > 0.9 to < 0.1 while
  moving forward above :data:`MIN_SPEED_KMH`, at a time interpolated linearly between the two frames
  around the wrap; the lap time is the difference of two crossings (error well under one sample
  period). A feed without ``norm_pos`` either (PCARS 2 telemetry has only world positions) is
  timed at a line through the first position where the run drives, across the direction of
  travel: the feed says nothing about where the real start/finish line is, so such laps are
  "laps from where the run began" (identical to start/finish laps when the run starts there).

``complete`` means the run saw the whole lap, line to line. The first lap of a run is complete
only if the run starts on the line (the game's lap timer, or ``norm_pos`` where the feed has no
timer, is within :data:`START_ON_LINE_PERIODS` sample periods of the line at the first frame);
the last lap is complete only if it was finished. A finished lap keeps the game's time even when
incomplete (a run that starts mid-lap still learns that lap's time from the game), but only
``valid`` laps count for best/mean/stddev.

``valid`` is false for: incomplete laps (out-laps, the unfinished last lap, a ``lap_count`` jump
or restart), laps the game marks invalid (the canonical channels carry no such flag yet: a
per-frame ``lap_invalid`` extra is honoured when a feed provides one), laps with a rewind
(``norm_pos`` going backwards by more than :data:`REWIND_NORM` of a lap, or the game's lap timer
jumping backwards by more than :data:`REWIND_LAP_TIME_MS` inside a lap; on position-only feeds,
the car jumping further between two frames than its speed allows). A lap with a hole in
its frames longer than :data:`MAX_GAP_S` of the run's clock (game time where the game's lap timer
runs: frames arriving late in a burst are no hole) was not seen whole: it is not complete, though a
finished lap keeps the game's time. ``invalid_reason`` says which rule applied: ``out_lap`` (a
run's first lap, begun before the run), ``unfinished`` (the run ended first), ``incomplete``
(cut by a jump or restart of the lap counter), ``gap``, ``no_time``, ``game``, ``rewind``, and
``in_lap`` (the game says the lap ended in the pit lane).

Where the game keeps its own lap records with flags (ACC: the ``last_lap_flags`` /
``current_lap_flags`` extras, isInvalid, isValidForBest, isOutlap, isInlap), a finished lap is
judged by the flags of the game's record of it, read where its time is read (just after the
lap-counter step, beside ``last_lap_ms``; the current lap's flags there are already the next
lap's): an out-lap is ``out_lap`` even when the run saw it whole (the game's out-lap starts in
the pit lane), an in-lap ``in_lap``, an invalid lap ``game``. The lap in progress at a run's end
is judged by its current record's flags (``flaw``).

A merged run (a ``feed`` extra) is cut on its primary feed's frames (``feed == 0``): two feeds of
one car step their lap counters a sample apart, so their interleaved frames would look like
rewinds. Every lap's ``start:end``, ``p`` and ``t`` count those frames (``lap.frames``).

Positions (runs with ``norm_pos``): ``p`` is the run's unwrapped ``norm_pos`` minus the lap's
``whole`` number of laps, ≈0 at its start line and ≈1 at its finish; ``t`` the run's clock
(:func:`run_clock`: the game's timer where it runs, no pauses), which the geometric analyses
differentiate. A lap is :attr:`~Lap.good` when complete, without a rewind and its positions
reach within :data:`COVER_EDGE_LAPS` of both ends of the lap.

Sectors (three per lap): from the game's own splits where the feed has them, else at equal thirds of
``norm_pos`` (thirds of the distance driven, from speed, when there is no ``norm_pos``), crossing
times interpolated. Game splits come in two forms: running sector timers (``sector_times_s``,
PCARS 1: located on the lap timer, :func:`_split_sectors`) or lap records (ACC's
``last_lap_splits_ms``, exact ms read with the lap's time just after its step, and
``current_lap_splits_ms``, the sectors the lap in progress has completed: :func:`_record_sectors`).
Each lap's sectors are checked against its lap time (:data:`GAME_SPLIT_TOL_MS` for game splits,
one sample period for derived ones) and flagged ``consistent: false`` when they do not add up.
The lap still in progress when a run ends (begun at the line, not finished) shows the sectors it
has completed, the rest null; a completed sector of it counts for the best sectors when nothing
seen so far makes the lap invalid.

Units: times in ms in results (ints), seconds internally (``start_s``/``end_s``, ``t``: s since
the run's first frame), speeds km/h, ``norm_pos`` and ``p`` in laps (0..1). Everything is
vectorised per run; Python loops run per lap only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .clock import run_clock
from .frames import Frames, json_num

VERSION = 1

#: A line crossing only counts when the car moves at least this fast, km/h (no laps from
#: creeping over the line in the pit lane or jitter while standing on it).
MIN_SPEED_KMH = 20.0
#: A run starts "on the line" when the line was crossed at most this many sample periods before
#: its first frame (the simulator and a well-timed recording start exactly there).
START_ON_LINE_PERIODS = 2.0
#: ``norm_pos`` stepping backwards by more than this (laps, ≈ 40 m on a 4 km track) is a rewind.
REWIND_NORM = 0.01
#: The game's lap timer dropping by more than this inside a lap is a rewind, ms.
REWIND_LAP_TIME_MS = 100
#: The game's lap timer restarting below this near a lap-counter step is the line, not a rewind, ms.
LAP_TIMER_RESET_MS = 1000
#: Frames around a lap-counter step where the lap timer may restart (games update them apart).
STEP_SLACK_FRAMES = 3
#: The game's ``last_lap_ms`` is looked for within this long after the step, s.
GAME_TIME_WINDOW_S = 2.0
#: Game splits must add up to the game's lap time within this, ms.
GAME_SPLIT_TOL_MS = 2.0
#: A hole in a lap's frames longer than this means the run did not see the whole lap, s.
MAX_GAP_S = 1.0
#: Position-only feeds: the timing line reaches this far either side of the reference point, m …
LINE_HALF_WIDTH_M = 30.0
#: … and a crossing counts once the car has been at least this far away from it since the last, m.
LINE_AWAY_M = 200.0
#: Position-only feeds: a step between two frames longer than this many times what the speed
#: allows, plus TELEPORT_SLACK_M, is a jump of the car (a rewind or a reset), not driving.
TELEPORT_FACTOR = 1.5
TELEPORT_SLACK_M = 10.0
#: Number of sectors of a lap.
SECTOR_COUNT = 3
#: ``norm_pos`` wraps at the line: from above WRAP_HIGH to below WRAP_LOW going forward (laps).
WRAP_HIGH = 0.9
WRAP_LOW = 0.1

#: A good lap (:attr:`Lap.good`) has positions from below this to above 1 − this (laps).
COVER_EDGE_LAPS = 0.05
#: A step of the lap counter this close (laps, along the position) to a wrap of ``norm_pos`` counts
#: that line crossing; a wrap with none is a crossing the counter missed (a stuck counter). Half a
#: lap: the counter and the position update a frame or so apart, in either order.
COUNTER_NEAR_WRAP_LAPS = 0.5


@dataclass(eq=False)
class Lap:
    """One lap of one run: frames ``start:end`` of its run, as :func:`find_laps` found it.

    Attributes:
        run_id: ``meta["run_id"]`` of the run as a string, else the run's index (:func:`run_id_of`).
        lap: lap number, 1-based: ``lap_count + 1`` for game laps, else the order in the run.
        start, end: frame slice ``start:end`` of the lap in its run (``end`` exclusive).
        time_ms: lap time, ms (None when the lap was not finished in the run, or its time is unknown).
        valid: counts for best/mean/stddev (the rules are in the module doc).
        complete: the run saw the lap from line to line.
        source: ``"game"`` (the game's lap counter and time) or ``"derived"`` (line crossings).
        time_source: where ``time_ms`` comes from: ``"game"`` or ``"measured"`` (None without a time).
        sectors_ms: [s1, s2, s3] in ms (None until :func:`lap_sectors` fills them).
        start_s, end_s: line crossings, s since the run's first frame (None when not seen).
        invalid_reason: why the lap is not valid (None when valid).
        flaw: ``"game"`` or ``"rewind"`` when the frames seen show the lap invalid, whether or not
            it is complete (None otherwise); tells whether a lap in progress is clean so far.
        run: index of the run in the list the laps were found in.
        rewind: the position or the game's lap timer jumped backwards inside the lap.
        whole: the run's unwrapped position minus ``whole`` is ``p`` (0 without positions).
        p: lap-relative position per frame, laps (≈0 at the start line, ≈1 at the finish; a hair
            below 0 or above 1 around the line; NaN where ``norm_pos`` is unknown); None when the
            run has no ``norm_pos`` or the lap no known one.
        t: time of each frame of the lap on the run's clock (:func:`run_clock`), s since the
            run's first frame (None with ``p``).
        frames: the run the lap belongs to (for a merged run: the primary feed's frames).
        record_at: frame of ``frames`` where the game showed its record of this finished lap
            (``last_lap_ms``, and with it ACC's ``last_lap_flags`` / ``last_lap_splits_ms``);
            None when the time was not the game's.
    """

    run_id: str
    lap: int
    start: int
    end: int
    time_ms: float | None = None
    valid: bool = False
    complete: bool = False
    source: str = "derived"
    sectors_ms: list | None = None
    start_s: float | None = None
    end_s: float | None = None
    invalid_reason: str | None = None
    flaw: str | None = None
    run: int = 0
    rewind: bool = False
    time_source: str | None = None
    whole: int = 0
    p: np.ndarray | None = field(default=None, repr=False)
    t: np.ndarray | None = field(default=None, repr=False)
    frames: Frames | None = field(default=None, repr=False)
    record_at: int | None = None

    @property
    def good(self) -> bool:
        """Seen whole without a rewind, its positions (where known) reaching within
        :data:`COVER_EDGE_LAPS` of both ends of the lap: the only kind the geometric analyses
        take as a whole lap (the track map's complete laps, the racing line's laps)."""
        if not self.complete or self.rewind:
            return False
        if self.p is None:
            return True
        known = self.p[np.isfinite(self.p)]
        return bool(known.min() <= COVER_EDGE_LAPS and known.max() >= 1.0 - COVER_EDGE_LAPS)

    def channel(self, name: str) -> np.ndarray:
        """The lap's slice of a channel of its run (a view; units as in :class:`Frames`)."""
        return self.frames[name][self.start : self.end]

    def frames_of(self) -> Frames:
        """The lap's own frames, as a :class:`Frames` (times still from the run's first frame)."""
        return self.frames.take(slice(self.start, self.end))

    def __len__(self) -> int:
        return self.end - self.start


class Laps(list):
    """A table of laps (a list of :class:`Lap`, run order then time order), in the spirit of
    Fast-F1's ``Laps``: pick from it, then read the laps or their records."""

    def pick_valid(self) -> "Laps":
        """The valid laps with a time."""
        return Laps(lap for lap in self if lap.valid and lap.time_ms is not None)

    def pick_run(self, run: int) -> "Laps":
        """The laps of ``runs[run]``."""
        return Laps(lap for lap in self if lap.run == run)

    def pick_placed(self) -> "Laps":
        """The laps with positions along the lap (``p``): what the geometric analyses bin by."""
        return Laps(lap for lap in self if lap.p is not None)

    def pick_fastest(self) -> Lap | None:
        """The fastest valid lap (ties: the first), or None."""
        valid = self.pick_valid()
        return min(valid, key=lambda lap: lap.time_ms) if valid else None  # min keeps the first tie

    def times_ms(self) -> list:
        """Lap times of the valid laps, ms."""
        return [lap.time_ms for lap in self.pick_valid()]

    def records(self, keys: tuple[str, ...]) -> list[dict]:
        """One dict per lap with the given attributes (JSON-ready when those are)."""
        return [{k: getattr(lap, k) for k in keys} for lap in self]


def norm_wraps(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The line crossings between consecutive finite ``norm_pos`` samples ``v`` (laps, 0..1), as
    two bool arrays of ``len(v) − 1``: forward (above :data:`WRAP_HIGH` to below :data:`WRAP_LOW`)
    and backward (reversing over the line). The only place that decides what a wrap is."""
    return (v[:-1] > WRAP_HIGH) & (v[1:] < WRAP_LOW), (v[:-1] < WRAP_LOW) & (v[1:] > WRAP_HIGH)


# ---------------------------------------------------------------------------------------- helpers
def _channel(fr: Frames, name: str, fill, dtype) -> np.ndarray:
    if name in fr:
        return np.asarray(fr[name], dtype=dtype)
    return np.full(len(fr), fill, dtype=dtype)


def _period_s(t_s: np.ndarray) -> float:
    """Typical sample period of a run, s (median of the positive steps; 0 with < 2 frames)."""
    d = np.diff(t_s)
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 0.0


def _nonempty(runs: list[Frames] | None) -> list[Frames]:
    runs = [r for r in (runs or []) if len(r) > 0]
    if not runs:
        raise ValueError("no frames")
    return runs


def _fast_enough(speed: np.ndarray) -> np.ndarray:
    # Unknown speed (NaN) does not veto a crossing: not every feed reports it.
    return ~(speed < MIN_SPEED_KMH)


# ---------------------------------------------------------------------------------------- lap finding
def find_laps(frames: Frames, run: int = 0) -> Laps:
    """The laps of ``runs[run]`` (its frames ``frames``), in time order: the one lap finder (see
    the module doc for how, and :class:`Lap`). A merged run is cut on its primary feed's frames."""
    if "feed" in frames and (frames["feed"] != 0).any():
        frames = frames.take(frames["feed"] == 0)
    if len(frames) == 0:
        return Laps()
    lc = _channel(frames, "lap_count", -1, np.int64)
    last = _channel(frames, "last_lap_ms", -1, np.int64)
    p_run = unwrapped_position(_channel(frames, "norm_pos", np.nan, np.float64))
    if (lc >= 0).any() and (last > 0).any() and not _counter_stuck(lc, p_run):
        laps = _game_laps(frames)
    else:
        laps = _derived_laps(frames)
    _judge(frames, laps)
    _place(frames, laps, p_run)
    rid = run_id_of(frames, run)
    for lap in laps:
        lap.run, lap.run_id = run, rid
    return Laps(laps)


def run_laps(runs: list[Frames]) -> Laps:
    """The laps of all runs (:func:`find_laps`, once per run), in run order then time order."""
    return Laps(lap for r, fr in enumerate(runs) for lap in find_laps(fr, r))


def _counter_stuck(lc: np.ndarray, p_run: np.ndarray) -> bool:
    """Whether the game's lap counter misses a line crossing that the position shows: a new
    forward wrap of ``norm_pos`` (``p_run``: unwrapped, laps), with the counter known on both
    sides, and no step of the counter within :data:`COUNTER_NEAR_WRAP_LAPS` of it along the lap."""
    fin = np.flatnonzero(np.isfinite(p_run))
    if len(fin) < 2:
        return False
    turns = np.floor(p_run[fin])
    new = turns[1:] > np.maximum.accumulate(turns)[:-1]  # reversing over the line counts once
    wrap_at = fin[1:][new & (lc[fin[1:]] >= 0) & (lc[fin[:-1]] >= 0)]
    if not len(wrap_at):
        return False
    known = np.flatnonzero(lc >= 0)
    step_at = known[1:][lc[known[1:]] != lc[known[:-1]]]
    if not len(step_at):
        return True
    p_step = np.interp(step_at, fin, p_run[fin])
    near = np.abs(p_step[None, :] - p_run[wrap_at][:, None]).min(axis=1) < COUNTER_NEAR_WRAP_LAPS
    return not bool(near.all())


def _place(fr: Frames, laps: list[Lap], p_run: np.ndarray) -> None:
    """Set ``whole``, ``p`` and ``t`` of every lap of one run that knows its ``norm_pos``
    (``p_run``: the run's, unwrapped)."""
    if not np.isfinite(p_run).any():
        return
    clock, _source = run_clock(fr)
    for lap in laps:
        ps = p_run[lap.start : lap.end]
        known = ps[np.isfinite(ps)]
        if len(known):
            lap.whole = math.floor(float(np.median(known)))
            lap.p, lap.t = ps - lap.whole, clock[lap.start : lap.end]


def _time_source(time_ms, source: str) -> str | None:
    return None if time_ms is None else ("game" if source == "game" else "measured")


def _lap_timer_line_s(t_s: np.ndarray, lt: np.ndarray, b: int) -> float | None:
    """Time of the line crossing at the lap-counter step on frame ``b``, s since the run start:
    ``t − lap_time`` at the frame (within a few of ``b``) where the game's lap timer restarts."""
    n = len(t_s)
    best = None
    for j in range(max(1, b - STEP_SLACK_FRAMES), min(n, b + STEP_SLACK_FRAMES + 1)):
        restart = 0 <= lt[j] < LAP_TIMER_RESET_MS and lt[j - 1] > lt[j]
        if restart and (best is None or abs(j - b) < abs(best - b)):
            best = j
    return None if best is None else float(t_s[best] - lt[best] / 1000.0)


def _norm_wrap_line_s(t_s: np.ndarray, norm: np.ndarray, b: int) -> float | None:
    """Time at which ``norm_pos`` wraps within a few frames of ``b``, interpolated, s."""
    lo, hi = max(0, b - STEP_SLACK_FRAMES - 1), min(len(t_s), b + STEP_SLACK_FRAMES + 1)
    v, tt = norm[lo:hi], t_s[lo:hi]
    w = np.flatnonzero(norm_wraps(v)[0])
    if not len(w):
        return None
    k = int(w[np.argmin(np.abs(w + lo + 1 - b))])
    frac = (1.0 - v[k]) / (v[k + 1] + 1.0 - v[k])
    return float(tt[k] + frac * (tt[k + 1] - tt[k]))


def _game_laps(fr: Frames) -> list[Lap]:
    n = len(fr)
    t_s = fr.t_s
    period = _period_s(t_s)
    lc = _channel(fr, "lap_count", -1, np.int64)
    lt = _channel(fr, "lap_time_ms", -1, np.int64)
    last = _channel(fr, "last_lap_ms", -1, np.int64)
    norm = _channel(fr, "norm_pos", np.nan, np.float64)
    rid = fr.meta.get("run_id")

    # Steps of the lap counter between frames that both know it (-1 frames are skipped over).
    known = np.flatnonzero(lc >= 0)
    kv = lc[known]
    ch = np.flatnonzero(kv[1:] != kv[:-1])
    bounds = known[ch + 1]
    steps = kv[ch + 1] - kv[ch]
    numbers = np.concatenate(([kv[0]], kv[ch + 1])) + 1
    starts = np.concatenate(([0], bounds)).tolist()
    ends = np.concatenate((bounds, [n])).tolist()

    def line_s(b: int) -> float | None:
        s = _lap_timer_line_s(t_s, lt, b)
        if s is None:
            s = _norm_wrap_line_s(t_s, norm, b)
        return s

    # The run starts on the line when the game's lap timer at the first frame that has it says
    # the line was crossed at most START_ON_LINE_PERIODS sample periods before the first frame
    # (without a timer in the first lap: when norm_pos says so).
    first_start_s = None
    lt_known = np.flatnonzero(lt[: ends[0]] >= 0)
    if len(lt_known):
        j = int(lt_known[0])
        s0 = float(t_s[j] - lt[j] / 1000.0)
        if s0 >= -(START_ON_LINE_PERIODS * period + 0.001):
            first_start_s = s0
    else:
        first_start_s = _norm_start_s(t_s, norm, _channel(fr, "speed_kmh", np.nan, np.float64))

    laps: list[Lap] = []
    line_times = [line_s(int(b)) for b in bounds]
    for i, (a, b) in enumerate(zip(starts, ends)):
        began = first_start_s is not None if i == 0 else bool(steps[i - 1] == 1)
        finished = i < len(bounds) and bool(steps[i] == 1)
        start_s = (first_start_s if i == 0 else line_times[i - 1]) if began else None
        end_s = line_times[i] if finished else None
        time_ms, source, record_at = None, "game", None
        if finished:
            time_ms, record_at = _game_time_ms(t_s, lt, last, b, ends[i + 1], period)
            if time_ms is None and began and start_s is not None and end_s is not None:
                # The game never showed a plausible time: measure it between the two crossings.
                time_ms, source = round((end_s - start_s) * 1000.0), "derived"
        laps.append(Lap(rid, int(numbers[i]), a, b, time_ms, complete=began and finished, source=source,
                        time_source=_time_source(time_ms, source), start_s=start_s, end_s=end_s,
                        frames=fr, record_at=record_at))
    return laps


def _game_time_ms(t_s, lt, last, b: int, next_end: int, period: float) -> tuple[int | None, int | None]:
    """The game's time of the lap that ended at the lap-counter step on frame ``b``, ms, and the
    frame it was read at (None, None when the game showed none).

    ``last_lap_ms`` may update a frame or more after the counter, so the first value in the
    :data:`GAME_TIME_WINDOW_S` after the step that changed from before the step is taken; an
    unchanged value is accepted too (two laps of the same time to the ms), but only after any
    changed one. Where the lap timer is known just before the step, the value must fit it: the
    lap lasted at least that long and at most one frame gap (plus slack) longer.
    """
    hi = min(int(np.searchsorted(t_s, t_s[b] + GAME_TIME_WINDOW_S, side="right")), next_end)
    vals = last[b:max(hi, b + 1)]
    prev = last[b - 1]
    lo_ms = hi_ms = None
    if lt[b - 1] >= 0:
        gap_ms = (t_s[b] - t_s[b - 1]) * 1000.0
        lo_ms = lt[b - 1] - 5
        hi_ms = lt[b - 1] + gap_ms + 3 * period * 1000.0 + 50
    ok = vals > 0
    if lo_ms is not None:
        ok &= (vals >= lo_ms) & (vals <= hi_ms)
    changed = np.flatnonzero(ok & (vals != prev))
    if len(changed):
        return int(vals[changed[0]]), b + int(changed[0])
    same = np.flatnonzero(ok)
    return (int(vals[same[0]]), b + int(same[0])) if len(same) else (None, None)


def _derived_laps(fr: Frames) -> list[Lap]:
    n = len(fr)
    t_s = fr.t_s
    norm = _channel(fr, "norm_pos", np.nan, np.float64)
    if np.isfinite(norm).sum() >= 2:
        found = _norm_crossings(fr, t_s, norm)
    else:
        found = _position_crossings(fr, t_s)
    if found is None:
        return []
    bframes, tcross, first_start_s = found
    starts = [0] + bframes
    ends = bframes + [n]
    start_times = [first_start_s] + tcross
    end_times = tcross + [None]
    laps = []
    for i, (a, b) in enumerate(zip(starts, ends)):
        s0, s1 = start_times[i], end_times[i]
        complete = s0 is not None and s1 is not None
        time_ms = round((s1 - s0) * 1000.0) if complete else None
        laps.append(Lap(fr.meta.get("run_id"), i + 1, a, b, time_ms, complete=complete, source="derived",
                        time_source=_time_source(time_ms, "derived"), start_s=s0, end_s=s1,
                        frames=fr))
    return laps


def _norm_crossings(fr: Frames, t_s: np.ndarray, norm: np.ndarray):
    """(first frames of new laps, crossing times s, start time of the first lap or None)."""
    speed = _channel(fr, "speed_kmh", np.nan, np.float64)
    fi = np.flatnonzero(np.isfinite(norm))
    v = norm[fi]
    a, b = fi[:-1], fi[1:]
    fwd, back = norm_wraps(v)
    # Laps crossed so far; a forward crossing only starts a new lap when it beats every count
    # before it, so reversing over the line and driving on does not count a lap twice.
    count = np.cumsum(fwd.astype(np.int64) - back.astype(np.int64))
    before = np.concatenate(([0], np.maximum.accumulate(count)[:-1]))
    new = fwd & (count > before) & _fast_enough(speed[a]) & _fast_enough(speed[b])
    k = np.flatnonzero(new)
    v0, v1 = v[k], v[k + 1] + 1.0
    frac = (1.0 - v0) / (v1 - v0)
    tc = t_s[a[k]] + frac * (t_s[b[k]] - t_s[a[k]])
    return b[k].tolist(), tc.tolist(), _norm_start_s(t_s, norm, speed)


def _norm_start_s(t_s: np.ndarray, norm: np.ndarray, speed: np.ndarray) -> float | None:
    """When the run starts on the line by ``norm_pos`` (at the first frame, within
    START_ON_LINE_PERIODS frames' worth of travel past 0): the crossing, extrapolated back, s."""
    fi = np.flatnonzero(np.isfinite(norm))
    if not (len(fi) > 1 and fi[0] == 0 and _fast_enough(speed[:1])[0]):
        return None
    v = norm[fi]
    d = np.diff(v[:21])
    d = d[(d > 0) & (d < 0.05)]
    if not len(d):
        return None
    step = float(np.median(d))
    if v[0] > START_ON_LINE_PERIODS * step + 1e-9:
        return None
    return float(t_s[0] - v[0] / step * _period_s(t_s[:21]))


def _position_crossings(fr: Frames, t_s: np.ndarray):
    """Laps of a position-only feed, timed at a line through where the run starts driving."""
    x = _channel(fr, "pos_x", np.nan, np.float64)
    z = _channel(fr, "pos_z", np.nan, np.float64)
    speed = _channel(fr, "speed_kmh", np.nan, np.float64)
    ok = np.isfinite(x) & np.isfinite(z)
    moving = np.flatnonzero(ok & _fast_enough(speed))
    if not len(moving):
        return None
    i0 = int(moving[0])
    x0, z0 = x[i0], z[i0]
    dist = np.hypot(x - x0, z - z0)
    away = np.flatnonzero(ok & (dist > 2.0))
    away = away[away > i0]
    if not len(away):
        return None
    j = int(away[0])
    ux, uz = (x[j] - x0) / dist[j], (z[j] - z0) / dist[j]
    along = (x - x0) * ux + (z - z0) * uz
    lateral = np.abs((z - z0) * ux - (x - x0) * uz)
    fi = np.flatnonzero(ok)
    fi = fi[fi >= i0]
    al, la = along[fi], lateral[fi]
    cand = (al[:-1] < 0) & (al[1:] >= 0) & (la[:-1] < LINE_HALF_WIDTH_M) & (la[1:] < LINE_HALF_WIDTH_M)
    cand &= _fast_enough(speed[fi[:-1]]) & _fast_enough(speed[fi[1:]])
    frames, times = [], []
    last = i0
    for k in np.flatnonzero(cand).tolist():
        f = int(fi[k + 1])
        # Only after the car has really gone round (not jitter or a spin at the line).
        if dist[last:f].max() < LINE_AWAY_M:
            continue
        frac = -al[k] / (al[k + 1] - al[k])
        times.append(float(t_s[fi[k]] + frac * (t_s[f] - t_s[fi[k]])))
        frames.append(f)
        last = f
    # The reference line is where the car was at frame i0: the first lap starts there, and it
    # is a whole lap only if that is the run's first frame (else it began from standstill).
    first_start_s = float(t_s[0]) if i0 == 0 else None
    return frames, times, first_start_s


def _judge(fr: Frames, laps: list[Lap]) -> None:
    """Set ``valid`` and ``invalid_reason`` of every lap of one run."""
    if not laps:
        return
    starts = np.asarray([lap.start for lap in laps])
    rewound = _rewound(fr, starts)
    game_invalid, record_reason = _game_invalid(fr, laps, starts)
    # A hole in the frames (lost packets, a paused recording) means the run did not see all of
    # the lap; a hole right at a lap's first frame also hides the end of the lap before.
    holes = frame_holes(fr)
    holed = _laps_of(starts, holes) | {int(i) - 1 for i in np.flatnonzero(np.isin(starts, holes)) if i > 0}

    for i, lap in enumerate(laps):
        reason = None
        if lap.complete and i in holed:
            lap.complete = False
            reason = "gap"
        elif not lap.complete:
            # The run's first lap begun before the run (an out-lap), the last one not finished,
            # or a lap cut by a jump or restart of the game's lap counter.
            if i == 0:
                reason = "out_lap"
            elif lap.time_ms is None and i == len(laps) - 1:
                reason = "unfinished"
            else:
                reason = "incomplete"
        elif lap.time_ms is None:
            reason = "no_time"
        elif i in game_invalid:
            reason = record_reason.get(i) or "game"
        elif i in rewound:
            reason = "rewind"
        lap.valid = reason is None
        lap.invalid_reason = reason
        lap.flaw = "game" if i in game_invalid else ("rewind" if i in rewound else None)
        lap.rewind = i in rewound


def _laps_of(starts: np.ndarray, frames_idx: np.ndarray) -> set[int]:
    """Indices of the laps (first frames ``starts``) that frames ``frames_idx`` fall in."""
    return set((np.searchsorted(starts, frames_idx, side="right") - 1).tolist())


def _rewound(fr: Frames, starts: np.ndarray) -> set[int]:
    """The laps (of first frames ``starts``) in which the car went back: by its position, by the
    game's lap timer, or (position-only feeds) by a jump further than its speed allows."""
    n = len(fr)
    # Rewinds of the position: a backwards step of norm_pos (not a forward wrap at the line),
    # or a backwards wrap (reversing over the line).
    norm = _channel(fr, "norm_pos", np.nan, np.float64)
    fi = np.flatnonzero(np.isfinite(norm))
    v = norm[fi]
    dv = np.diff(v)
    rew = ((dv < -REWIND_NORM) & (dv >= -0.5)) | ((dv > 0.5) & (v[:-1] < 0.5))
    rewound = _laps_of(starts, fi[1:][rew])
    # Rewinds of the game's lap timer: a drop inside a lap; a restart near 0 close to a lap
    # boundary is the line (games update the counter and the timer a frame or so apart).
    lt = _channel(fr, "lap_time_ms", -1, np.int64)
    drop = np.flatnonzero((lt[1:] >= 0) & (lt[:-1] >= 0) & (lt[:-1] - lt[1:] > REWIND_LAP_TIME_MS)) + 1
    if len(drop):
        bnd = starts[1:]
        if len(bnd):
            pos = np.clip(np.searchsorted(bnd, drop), 0, len(bnd) - 1)
            near = np.minimum(np.abs(bnd[pos] - drop), np.abs(bnd[np.maximum(pos - 1, 0)] - drop))
        else:
            near = np.full(len(drop), n)
        reset = (lt[drop] < LAP_TIMER_RESET_MS) & (near <= STEP_SLACK_FRAMES)
        rewound |= _laps_of(starts, drop[~reset])
    # Position-only feeds have neither: a rewind shows as the car jumping (back) further between
    # two frames than its speed allows.
    if not len(fi) and "pos_x" in fr and "pos_z" in fr and n > 1:
        x = np.asarray(fr["pos_x"], dtype=np.float64)
        z = np.asarray(fr["pos_z"], dtype=np.float64)
        speed = _channel(fr, "speed_kmh", np.nan, np.float64) / 3.6
        v = np.fmax(speed[1:], speed[:-1])
        with np.errstate(invalid="ignore"):
            jump = np.hypot(np.diff(x), np.diff(z)) > v * np.diff(fr.t_s) * TELEPORT_FACTOR + TELEPORT_SLACK_M
        rewound |= _laps_of(starts, np.flatnonzero(jump) + 1)
    return rewound


def _game_invalid(fr: Frames, laps: list[Lap], starts: np.ndarray) -> tuple[set[int], dict[int, str | None]]:
    """The laps the game says are invalid, and for laps the game keeps records of (ACC), each
    record's reason (None: a clean lap)."""
    # Hook: a per-frame "lap invalid" flag from the game, where a feed provides one.
    game_invalid: set[int] = set()
    if "lap_invalid" in fr:
        flag = np.asarray(fr["lap_invalid"])
        game_invalid = _laps_of(starts, np.flatnonzero(flag.astype(bool)))
    # The game's own records (ACC) judge their laps: a finished lap by the flags shown with its
    # time, the lap in progress by its current record's flags at its last frame.
    record_reason: dict[int, str | None] = {}
    if "last_lap_flags" in fr and "current_lap_flags" in fr:
        last_flags, current_flags = np.asarray(fr["last_lap_flags"]), np.asarray(fr["current_lap_flags"])
        for i, lap in enumerate(laps):
            if lap.record_at is not None:
                record_reason[i] = _record_reason(last_flags[lap.record_at])
            elif lap.time_ms is None:
                record_reason[i] = _record_reason(current_flags[lap.end - 1])
    for i, reason in record_reason.items():
        game_invalid.discard(i)
        if reason is not None:
            game_invalid.add(i)
    return game_invalid, record_reason


def _record_reason(flags: np.ndarray) -> str | None:
    """Why a game's lap record (flags isInvalid, isValidForBest, isOutlap, isInlap) makes its lap
    invalid: ``out_lap``, ``in_lap`` or ``game``; None for a clean lap. The pit-lane flags come
    first: they say more than "invalid" and ACC need not set isInvalid on them."""
    if flags[2]:
        return "out_lap"
    if flags[3]:
        return "in_lap"
    return "game" if flags[0] else None


# ---------------------------------------------------------------------------------------- positions
def run_id_of(frames: Frames, index: int) -> str:
    """``meta["run_id"]`` of a run, else its index in the analyzed list (as a string)."""
    rid = frames.meta.get("run_id")
    return str(index) if rid is None else str(rid)


def unwrapped_position(norm_pos: np.ndarray) -> np.ndarray:
    """``norm_pos`` (laps, 0..1) made continuous over a run, laps (NaN where unknown).

    Every forward wrap (:func:`norm_wraps`) adds a lap, every backward one takes one away
    (reversing over the line); other steps are kept as they are, so a rewind stays visible as a
    backwards jump instead of being mistaken for a wrap.
    """
    norm = np.asarray(norm_pos, dtype=np.float64)
    out = np.full(norm.shape, np.nan)
    fin = np.isfinite(norm)
    v = norm[fin]
    if len(v) == 0:
        return out
    fwd, back = norm_wraps(v)
    turns = np.concatenate(([0], np.cumsum(fwd.astype(np.int64) - back.astype(np.int64))))
    out[fin] = v + turns
    return out


def best_lap(laps: list[Lap]) -> Lap | None:
    """The fastest valid lap with a time (ties → the first), or None: :meth:`Laps.pick_fastest`."""
    return Laps(laps).pick_fastest()


# ---------------------------------------------------------------------------------------- sectors
def lap_sectors(laps: list[Lap]) -> list[dict]:
    """Sector times of the finished, complete laps of one run and of the lap in progress at its
    end (fills ``lap.sectors_ms``), read from the frames the laps were found in (``lap.frames``:
    in a merged run the primary feed's, which the laps' frame indices count).

    Returns one dict per such lap: ``lap`` (the :class:`Lap`), ``sectors_ms`` ([s1, s2, s3],
    ints in ms, None where a sector could not be timed), ``source`` (``"game"`` splits or
    ``"derived"`` thirds), ``consistent`` (the sectors add up to the lap time; false for a lap in
    progress, which has no time), ``complete`` (false for the lap in progress) and ``for_best``
    (per sector: may set a best sector).

    The lap in progress is the run's last lap when it began at the line and was not finished. It
    is listed only when at least its first sector was timed; it shows the leading sectors it
    completed before any hole of more than :data:`MAX_GAP_S` in its frames (what came after a hole
    was not seen whole), the sector it was in and those after it null. Its completed sectors
    count for the best sectors unless the frames seen show the lap invalid (``lap.flaw``); a
    complete lap's sectors count when the lap is valid and its sectors consistent.
    """
    out: list[dict] = []
    if not laps:
        return out
    frames = laps[0].frames
    assert frames is not None
    t_s = frames.t_s
    period = _period_s(t_s)
    splits = None
    if "sector_times_s" in frames:
        st = np.asarray(frames["sector_times_s"], dtype=np.float64)
        if st.ndim == 2 and st.shape[1] == SECTOR_COUNT and (st >= 0).any():
            splits = st
    records = "last_lap_splits_ms" in frames and "current_lap_splits_ms" in frames
    for i, lap in enumerate(laps):
        in_progress = i == len(laps) - 1 and lap.start_s is not None and lap.end_s is None and lap.time_ms is None
        if not in_progress and (not lap.complete or lap.time_ms is None):
            continue
        secs, source = None, None
        if records:
            secs = _record_sectors(frames, lap, in_progress)
            source = "game"
            if secs is None and in_progress:
                continue  # still in the game's sector 1 (see below)
        if secs is None and splits is not None:
            window_end = laps[i + 1].end if i + 1 < len(laps) else len(frames)
            secs = _split_sectors(frames, t_s, splits, lap, window_end)
            source = "game"
            if secs is None and in_progress:
                # Still in the game's sector 1: a third of norm_pos is no substitute for the
                # game's line (it would set a "best sector 1" of another length).
                continue
        if secs is None:
            secs = _derived_sectors(frames, t_s, lap)
            source = "derived"
        if secs is None:
            secs = [None] * SECTOR_COUNT
        ms = [None if s is None else round(s * 1000.0) for s in secs]
        if in_progress:
            ms = _seen_sectors(t_s, lap, ms, frame_holes(frames))
            if ms[0] is None:
                continue
            consistent = False
            for_best = [m is not None and lap.flaw is None for m in ms]
        else:
            tol = GAME_SPLIT_TOL_MS if source == "game" else period * 1000.0 + 1.0
            consistent = all(m is not None for m in ms) and abs(sum(ms) - lap.time_ms) <= tol
            for_best = [bool(consistent and lap.valid)] * SECTOR_COUNT
        lap.sectors_ms = ms
        out.append({"lap": lap, "sectors_ms": ms, "source": source, "consistent": bool(consistent),
                    "complete": not in_progress, "for_best": for_best})
    return out


def frame_holes(frames: Frames) -> np.ndarray:
    """Indices of the frames that follow a hole: more than :data:`MAX_GAP_S` of the run's clock
    (:func:`~rt.analysis.geometry.run_clock`) with no frame.

    On the game's clock, not on receive time: frames that arrive late in a burst (a stalled
    network, a busy PC) were all seen, and a game paused without sending lost nothing; frames
    that never came leave the game's timer a step ahead, and that is a hole."""
    if len(frames) < 2:
        return np.zeros(0, np.int64)
    clock, _source = run_clock(frames)
    return np.flatnonzero(np.diff(clock) > MAX_GAP_S) + 1


def _seen_sectors(t_s: np.ndarray, lap: Lap, ms: list, holes: np.ndarray) -> list:
    """The sectors (ms) of a lap in progress that were seen whole: the leading timed ones that end
    before the first of ``holes`` (:func:`frame_holes`) in its frames (the step into its first
    frame included, as it holds the line crossing); the rest None."""
    inside = holes[(holes > max(lap.start - 1, 0)) & (holes < lap.end)]
    seen_until = float(t_s[inside[0] - 1]) if len(inside) else math.inf
    out: list = [None] * SECTOR_COUNT
    end_s = lap.start_s
    for k, m in enumerate(ms):
        if m is None:
            break
        end_s += m / 1000.0
        if end_s > seen_until:
            break
        out[k] = m
    return out


def _record_sectors(fr: Frames, lap: Lap, in_progress: bool) -> list[float | None] | None:
    """The game's splits of one lap from its lap records (ACC), s; None when they do not show them.

    A finished lap's are ``last_lap_splits_ms`` where its time was read (:attr:`Lap.record_at`),
    exact to the ms; the lap in progress has the sectors it completed in ``current_lap_splits_ms``
    at its last frame, the rest None (None while it has not completed sector 1). −1 is none."""
    if in_progress:
        row = np.asarray(fr["current_lap_splits_ms"])[lap.end - 1]
    elif lap.record_at is not None:
        row = np.asarray(fr["last_lap_splits_ms"])[lap.record_at]
    else:
        return None
    secs = [float(v) / 1000.0 if v >= 0 else None for v in row[:SECTOR_COUNT]]
    if secs[0] is None or (not in_progress and None in secs):
        return None
    return secs


def _split_sectors(fr: Frames, t_s, splits, lap: Lap, window_end: int) -> list[float] | None:
    """The game's splits of one lap, s (None when the frames do not show them).

    Each split's running timer counts on the lap clock from its sector's start, so during sector
    2 ``lap_time − split2`` is constant and equal to the end of sector 1 (likewise sector 3 and
    the end of sector 2): that locates the two boundaries to the lap timer's ms. Sector 3 lies
    between the last running value of split 3 and that plus the next frame gap. The final value
    of each split is then read where the game shows it frozen (it shows a completed sector's
    value while another sector runs; which lap's value it shows when differs between games, so
    the frozen value that fits the located range, nearest its middle, is taken). Only when no
    frozen value fits is the located value itself used. The lap time is not used, so the sum of
    the splits can be checked against it.

    For a lap in progress (``lap.time_ms`` None) the sectors whose end is located are returned,
    the rest None (sector 3 always: it ends at the line); None while not even sector 1 has ended.
    """
    finished = lap.time_ms is not None
    s, e = lap.start, lap.end
    lt = _channel(fr, "lap_time_ms", -1, np.int64)[s:e]
    clock = np.where(lt >= 0, lt / 1000.0, np.nan)
    if lap.start_s is not None:
        clock = np.where(np.isfinite(clock), clock, t_s[s:e] - lap.start_s)
    bounds, last_live = [], 0
    for c in (1, 2):
        v = splits[s:e, c]
        d = clock - v
        good = (v >= 0) & np.isfinite(d)
        live = good[:-1] & good[1:] & (np.abs(np.diff(d)) <= 0.0015) & (np.diff(v) > 0)
        idx = np.flatnonzero(live)
        if not len(idx):
            if finished or c == 1:
                return None
            break  # a lap in progress still in sector 2: only sector 1 has ended
        bounds.append(float(np.median(d[np.concatenate((idx, idx + 1))])))
        last_live = int(idx[-1]) + 1
    if not (0.0 < bounds[0] and all(x < y for x, y in zip(bounds, bounds[1:]))):
        return None
    b1 = bounds[0]
    tol = 0.0015
    ranges = [(b1 - tol, b1 + tol)]
    fallback = [b1]
    if len(bounds) == 2:
        b2 = bounds[1]
        ranges.append((b2 - b1 - 2 * tol, b2 - b1 + 2 * tol))
        fallback.append(b2 - b1)
    if finished:
        r3 = float(splits[s + last_live, 2])
        after = s + last_live + 1
        gap = float(t_s[after] - t_s[after - 1]) if after < len(t_s) else _period_s(t_s)
        ranges.append((r3 - tol, r3 + gap + tol))
        fallback.append(lap.time_ms / 1000.0 - b2)
    result: list = [None] * SECTOR_COUNT
    for j, (lo, hi) in enumerate(ranges):
        w = splits[s:window_end, j]
        frozen = np.unique(w[:-1][(w[:-1] == w[1:]) & (w[:-1] >= 0)])
        fits = frozen[(frozen >= lo) & (frozen <= hi)]
        if len(fits):
            result[j] = float(fits[np.argmin(np.abs(fits - 0.5 * (lo + hi)))])
        else:
            result[j] = fallback[j]
    return result


def _derived_sectors(fr: Frames, t_s, lap: Lap) -> list[float | None] | None:
    """Sectors at equal thirds of the lap, s: where ``norm_pos`` first passes 1/3 and 2/3 going
    forward (interpolated), or, without ``norm_pos``, thirds of the distance driven.

    A lap in progress (``lap.end_s`` None) gets the sectors whose ends ``norm_pos`` has passed,
    the rest None (without ``norm_pos`` none: the lap's distance is not known before its end)."""
    if lap.start_s is None:
        return None
    s, e = lap.start, lap.end
    levels = [(k + 1) / SECTOR_COUNT for k in range(SECTOR_COUNT - 1)]
    norm = _channel(fr, "norm_pos", np.nan, np.float64)[s:e]
    tt = t_s[s:e]
    cross = []
    if np.isfinite(norm).sum() >= 2:
        f0, f1 = norm[:-1], norm[1:]
        step = f1 - f0
        for x in levels:
            hit = np.flatnonzero((f0 < x) & (f1 >= x) & (step > 0) & (step < 0.5))
            if not len(hit):
                if lap.end_s is None:
                    break  # in progress: this sector has not ended yet
                return None
            j = int(hit[0])
            cross.append(float(tt[j] + (x - f0[j]) / step[j] * (tt[j + 1] - tt[j])))
        if lap.end_s is None:
            edges = [lap.start_s, *cross]
            return [edges[k + 1] - edges[k] if k < len(cross) else None for k in range(SECTOR_COUNT)]
    elif lap.end_s is None:
        return None
    else:
        speed = _channel(fr, "speed_kmh", np.nan, np.float64)
        after = speed[e] if e < len(fr) else speed[e - 1]
        T = np.concatenate(([lap.start_s], tt, [lap.end_s]))
        V = np.concatenate(([speed[s]], speed[s:e], [after]))
        if not np.isfinite(V).all():
            return None
        cum = np.concatenate(([0.0], np.cumsum(0.5 * (V[1:] + V[:-1]) * np.diff(T))))
        if cum[-1] <= 0:
            return None
        cross = [float(np.interp(x, cum / cum[-1], T)) for x in levels]
    edges = [lap.start_s, *cross, lap.end_s]
    return [edges[k + 1] - edges[k] for k in range(SECTOR_COUNT)]


# ---------------------------------------------------------------------------------------- use cases
def _all_laps(runs: list[Frames]) -> Laps:
    """The laps of all runs (:func:`run_laps`).

    Raises ValueError when no run has anything to find laps with."""
    out = run_laps(runs)
    if not out:
        has_any = any(
            ((_channel(fr, "lap_count", -1, np.int64) >= 0).any())
            or np.isfinite(_channel(fr, "norm_pos", np.nan, np.float64)).any()
            or np.isfinite(_channel(fr, "pos_x", np.nan, np.float64)).any()
            for fr in runs
        )
        if not has_any:
            raise ValueError("the frames carry no lap counter, lap position or world position to find laps with")
    return out


def _stats(times: list[int]) -> tuple[int | None, float | None, float | None]:
    if not times:
        return None, None, None
    arr = np.asarray(times, dtype=np.float64)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else None
    return int(arr.min()), float(arr.mean()), std


def analyze_lap_times(runs: list[Frames]) -> dict:
    """Lap times of all runs.

    Keys:
        laps: [{run_id, lap, time_ms, valid, complete, source, invalid_reason}] in run, then
            time order (``time_ms`` null for an unfinished lap).
        best_lap_ms: fastest valid lap, ms; mean_lap_ms: mean of the valid laps, ms;
        stddev_ms: sample standard deviation (n − 1) of the valid laps, ms (null with < 2).
        summary: {laps, complete_laps, valid_laps, best_lap_ms, runs}.
        field_best_laps (only when a run carries the field, ``meta["field"]``: ACC): [{car_index,
            race_number, team, driver, car_model, best_lap_ms, laps}] sorted by best lap (cars
            without one last): the game's best valid lap of each car of the field, the best over
            the runs, its names and laps as of the last run that saw it.

    Raises ValueError("no frames") for no runs or runs without frames, and ValueError when no
    run has anything to find laps with.
    """
    runs = _nonempty(runs)
    laps = _all_laps(runs)
    # A valid lap is complete and timed (_judge), so these are the complete valid laps' times.
    times = laps.times_ms()
    best, mean, std = _stats(times)
    result = {
        "laps": laps.records(("run_id", "lap", "time_ms", "valid", "complete", "source", "invalid_reason")),
        "best_lap_ms": best,
        "mean_lap_ms": json_num(mean, 3),
        "stddev_ms": json_num(std, 3),
        "summary": {
            "laps": len(laps),
            "complete_laps": sum(lap.complete for lap in laps),
            "valid_laps": len(times),
            "best_lap_ms": best,
            "runs": len(runs),
        },
    }
    field_table = _field_best_laps(runs)
    if field_table is not None:
        result["field_best_laps"] = field_table
    return result


def _field_best_laps(runs: list[Frames]) -> list[dict] | None:
    """The field's best laps over the runs that carry ``meta["field"]`` (None when none does)."""
    fields = [fr.meta["field"] for fr in runs if fr.meta.get("field") is not None]
    if not fields:
        return None
    cars: dict[int, dict] = {}
    for field_ in fields:
        for car in field_:
            seen = cars.get(car["car_index"])
            merged = dict(car)
            if seen is not None:
                bests = [b for b in (seen["best_lap_ms"], car["best_lap_ms"]) if b is not None]
                merged["best_lap_ms"] = min(bests) if bests else None
                merged = {k: (seen[k] if v is None else v) for k, v in merged.items()}
            cars[car["car_index"]] = merged
    return sorted(cars.values(), key=lambda c: (c["best_lap_ms"] is None, c["best_lap_ms"] or 0, c["car_index"]))


def analyze_sectors(runs: list[Frames]) -> dict:
    """Sector times of all runs' complete laps.

    Keys:
        sector_count: 3.
        laps: [{run_id, lap, sectors_ms: [s1, s2, s3], time_ms, valid, source, consistent,
            complete}] for every complete, finished lap (``source``: ``"game"`` splits or
            ``"derived"`` thirds) and, last of its run, the lap in progress at a run's end when it
            has completed a sector: ``complete`` false, ``time_ms`` null, ``valid`` and
            ``consistent`` false, the sectors not completed null (e.g. ``[31234, null, null]``).
        best_sectors_ms: per sector, the best over valid, consistent laps and the completed
            sectors of laps in progress that show nothing invalid so far (null if none).
        theoretical_best_ms: sum of the best sectors (null unless all three are known).
        best_lap_ms: fastest valid lap, ms.
        summary: {laps (the laps listed, a lap in progress included), valid_laps, best_lap_ms,
            theoretical_best_ms, sector_source}.

    Raises ValueError as :func:`analyze_lap_times`.
    """
    runs = _nonempty(runs)
    all_laps = _all_laps(runs)
    entries = [en for r in range(len(runs)) for en in lap_sectors(all_laps.pick_run(r))]
    best = [None] * SECTOR_COUNT
    for en in entries:
        for j, v in enumerate(en["sectors_ms"]):
            if en["for_best"][j] and v is not None and (best[j] is None or v < best[j]):
                best[j] = v
    theoretical = sum(best) if all(v is not None for v in best) else None
    lap_best, _, _ = _stats(all_laps.times_ms())
    sources = sorted({en["source"] for en in entries})
    return {
        "sector_count": SECTOR_COUNT,
        "laps": [
            {
                "run_id": en["lap"].run_id,
                "lap": en["lap"].lap,
                "sectors_ms": en["sectors_ms"],
                "time_ms": en["lap"].time_ms,
                "valid": en["lap"].valid,
                "source": en["source"],
                "consistent": en["consistent"],
                "complete": en["complete"],
            }
            for en in entries
        ],
        "best_sectors_ms": best,
        "theoretical_best_ms": theoretical,
        "best_lap_ms": lap_best,
        "summary": {
            "laps": len(entries),
            "valid_laps": sum(1 for en in entries if en["lap"].valid),
            "best_lap_ms": lap_best,
            "theoretical_best_ms": theoretical,
            "sector_source": sources[0] if len(sources) == 1 else ("mixed" if sources else None),
        },
    }
