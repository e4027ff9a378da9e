"""The simulated driver and the sample stream: a deterministic car lapping a track.

How a lap is made
-----------------
The car drives a line parallel to the track's centre line (``line_offset_m`` to the left). Along
that line (path distance σ, m) the lap is solved once, event by event, on a ~1 m grid:

1. Corner limit: v ≤ sqrt(max_lat_g · g / |κ|) with κ the curvature of the driven line.
2. Braking envelope E(σ): the backward pass from every corner limit with the brakes at
   ``BRAKE_PLAN_MARGIN`` of ``max_brake_g`` plus drag, rolling resistance and grade (over two
   laps, so a corner just after the line constrains the end of the lap before it).
3. Forward pass, the driver: full throttle with the real wheel force of the gear engaged (torque
   curve, ratios, efficiency) minus drag/rolling/grade; upshift when the rpm reaches the shift
   point (the interval is split exactly there), then ``shift_time_s`` with the clutch out and no
   drive; hold the corner limit with part throttle; start braking early enough that the brake
   pedal can ramp up over ``BRAKE_RAMP_S`` and still meet E, then brake at the constant
   deceleration that lands exactly on the next corner's speed (pedal ∝ that deceleration);
   downshift while braking so the rpm stays in band.

Within every interval the acceleration is constant, so speed is linear and distance quadratic in
time: samples at any rate are read off that piecewise-exact trajectory (vectorised), and lap,
sector and shift times are exact, not quantised to the sample period. Laps are solved lazily and
memoised, so with ``lap_variation=0`` the periodic lap is solved once.

The car starts at σ = 0 *on the start/finish line at racing speed* (a flying lap: the state at the
line is the one a lap ends with, found with warm-up laps), so lap 1 is a complete, normal lap.
With ``out_lap_m`` it starts that far before the line instead, on the same flying trajectory, with
the lap timer standing at 0 until it crosses the line (a hotlap start); lap 1 is unchanged.

Conventions: speeds m/s, distances m, times s (``t_ns`` ns since the Unix epoch), rpm, pedals
0..1, clutch 1 = engaged, gear as the canonical channel (0 N, 1.. forward), steer −1..1 with
+ = left, g_lat + when accelerating to the left (left turn), g_long + when speeding up. World
frame and heading as in :mod:`rt.sim.track`.
"""

from __future__ import annotations

import bisect
import enum
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .car import CARS, G, CarSpec
from .track import TRACKS, Corner, Track

#: Default time of the first sample, ns since the Unix epoch (fixed, so runs are reproducible).
DEFAULT_START_TIME_NS = 1_700_000_000 * 1_000_000_000
#: Grid spacing of the lap solution along the driven line, m.
PATH_STEP_M = 1.0
#: Largest speed change within one full-throttle interval, m/s (bounds the integration error).
MAX_DV_MS = 0.1
#: Time for the brake pedal to go from 0 to 1, s (the onset ramp; the braking point moves earlier).
BRAKE_RAMP_S = 0.12
#: The driver plans braking at this fraction of max_brake_g, keeping a margin for the pedal ramp.
BRAKE_PLAN_MARGIN = 0.97
#: "At the limiter" means this fraction of the limiter rpm below it (a real driver's reaction).
LIMITER_HAIR_FRAC = 0.002
#: While braking, change down once the lower gear would turn at most this fraction of its upshift rpm.
DOWNSHIFT_FRAC = 0.8
#: Under power, change down when the engine lugs below this fraction of the limiter.
LUG_FRAC = 0.35
#: Minimum time between two gear changes while braking, s (sequential box, one click at a time).
MIN_SHIFT_GAP_S = 0.3
#: Clutch-out time of a (rev-matched) downshift, s.
BLIP_S = 0.12
#: Path radius that needs full steering lock, m; steer = clip(κ · this, −1, 1).
STEER_LOCK_RADIUS_M = 12.0
#: Speed cap where there is no corner, m/s (far above any top speed; the engine limits first).
FREE_SPEED_MS = 150.0
#: mode="pulls": the slow point sits this far into each pull straight, m.
PULL_SLOW_POINT_IN_M = 120.0
#: mode="pulls": speed at the slow point as a fraction of 1st gear's limiter speed.
PULL_START_FRAC = 0.25
#: mode="pulls": number of straights (longest first) used for pulls.
PULL_STRAIGHTS = 2
#: Noise table length; noise depends on the sample index only, so any block split gives the same.
_NOISE_LEN = 1 << 16

#: The keys of :meth:`Simulation.step_block`, in order.
CHANNELS = (
    "t_ns", "speed_ms", "rpm", "gear", "throttle", "brake", "clutch", "steer",
    "lap_count", "lap_time_s", "last_lap_s", "best_lap_s", "lap_distance_m", "norm_pos",
    "x", "y", "z", "vx", "vy", "vz", "heading_rad", "g_lat", "g_long",
    "sector", "sector_time_s", "last_sector_times_s",
    "max_rpm", "num_gears", "in_pit", "odometer_m",
)  # fmt: skip


@dataclass(frozen=True)
class ShiftEvent:
    """One gear change. ``time_s`` is simulation time (s since the first sample), ``lap`` the
    0-based lap it happened in, ``rpm`` the engine speed in ``from_gear`` at that instant."""

    time_s: float
    lap: int
    lap_distance_m: float
    from_gear: int
    to_gear: int
    rpm: float
    speed_ms: float


@dataclass(frozen=True)
class SimTruth:
    """The exact answers, for the samples emitted so far.

    Attributes:
        track_length_m: centre-line lap length, m.
        path_length_m: length of the driven line per lap, m (differs with ``line_offset_m``).
        line_offset_m: lateral offset of the driven line, m, + = left of the centre line.
        lap_times_s: completed laps, s, exact (the start/finish crossing is a node of the
            trajectory, not interpolated between samples).
        lap_start_times_s: simulation time at which each lap began, s (lap 0 at 0.0).
        sector_times_s: (s1, s2, s3) per completed lap, s.
        braking_onsets_m: lap distances where the brake pedal starts to rise in each braking zone
            of the first lap (all laps when ``lap_variation`` is 0), m.
        corners: the track's corners (:meth:`Track.corners`).
        optimal_upshift_rpm: {gear: rpm} true optimal upshift points of the car.
        shift_rpm: {gear: rpm} upshift points the simulated driver used.
        shifts: every gear change so far (``lap`` −1 for the out-lap).
        out_lap_s: time from the first sample to the first crossing of the line, s (0 without
            ``out_lap_m``); ``lap_start_times_s[0]`` equals it.
    """

    track_length_m: float
    path_length_m: float
    line_offset_m: float
    lap_times_s: tuple[float, ...]
    lap_start_times_s: tuple[float, ...]
    sector_times_s: tuple[tuple[float, float, float], ...]
    braking_onsets_m: tuple[float, ...]
    corners: tuple[Corner, ...]
    optimal_upshift_rpm: dict[int, float]
    shift_rpm: dict[int, float]
    shifts: tuple[ShiftEvent, ...]
    out_lap_s: float = 0.0


# ---------------------------------------------------------------------------------------- path
class _Path:
    """The driven line: centre line shifted by ``offset`` m to the left, sampled on a grid.

    Breakpoints (segment ends, sector bounds, extra points) are grid nodes, so curvature and
    grade are constant per interval and s ↔ σ is exactly piecewise linear.
    """

    def __init__(self, track: Track, offset: float, extra_breaks_s: tuple[float, ...] = ()) -> None:
        L = track.length_m
        raw = sorted({0.0, L, *track.segment_starts_m.tolist(), *track.sector_bounds_m, *extra_breaks_s})
        breaks = [raw[0]]
        for b in raw[1:]:
            if b - breaks[-1] > 1e-6:
                breaks.append(b)
        breaks[-1] = L
        bs = np.asarray(breaks)
        mid = 0.5 * (bs[:-1] + bs[1:])
        kappa = np.asarray(track.curvature(mid))
        scale = 1.0 - offset * kappa  # dσ/ds of a parallel curve
        if np.any(scale < 0.2):
            raise ValueError(f"line offset {offset} m is too close to a corner's radius")
        bsig = np.concatenate([[0.0], np.cumsum(np.diff(bs) * scale)])
        node_sig, node_s, piece = [], [], []
        for i in range(len(bs) - 1):
            n = max(1, int(math.ceil((bsig[i + 1] - bsig[i]) / PATH_STEP_M)))
            f = np.arange(n) / n
            node_sig.append(bsig[i] + f * (bsig[i + 1] - bsig[i]))
            node_s.append(bs[i] + f * (bs[i + 1] - bs[i]))
            piece.append(np.full(n, i))
        self.sig = np.concatenate(node_sig + [bsig[-1:]])
        self.s = np.concatenate(node_s + [bs[-1:]])
        piece_of = np.concatenate(piece)
        self.n = len(self.sig) - 1
        self.break_s = bs
        self.break_sig = bsig
        self.length_sigma = float(bsig[-1])
        self.kappa = (kappa / scale)[piece_of]  # curvature of the driven line per interval, 1/m
        s_mid = 0.5 * (self.s[:-1] + self.s[1:])
        self.grade = np.asarray(track.grade(s_mid)) / scale[piece_of]  # dy/dσ per interval

    def s_of_sigma(self, sig):
        return np.interp(sig, self.break_sig, self.break_s)

    def sigma_of_s(self, s):
        return np.interp(s, self.break_s, self.break_sig)

    def node_of_s(self, s: float) -> int:
        j = int(np.argmin(np.abs(self.s - s)))
        if abs(self.s[j] - s) > 1e-6:
            raise ValueError(f"{s} m is not a node of the path")
        return j


# ---------------------------------------------------------------------------------------- lap solution
@dataclass
class _LapTrace:
    """One solved lap. Nodes k = 0..M (σ, t, v); interval k = node k → k+1 at constant acceleration."""

    sig: np.ndarray
    t: np.ndarray
    v: np.ndarray
    acc: np.ndarray
    gear: np.ndarray
    throttle: np.ndarray
    brake: np.ndarray
    clutch: np.ndarray
    lap_time_s: float
    sector_end_t: tuple[float, float]
    shifts: list[tuple[float, float, int, int, float, float]]  # (t, σ, from, to, rpm, v)
    onsets_sig: list[float]
    max_brake_demand: float
    max_over_cap_ms: float
    end_state: _DriverState

    def sample(self, tau: np.ndarray):
        """(σ, v, acceleration, interval index) at lap times ``tau`` (s)."""
        k = np.searchsorted(self.t, tau, side="right") - 1
        np.clip(k, 0, len(self.acc) - 1, out=k)
        dt = tau - self.t[k]
        a = self.acc[k]
        v0 = self.v[k]
        sig = self.sig[k] + dt * (v0 + 0.5 * a * dt)
        return sig, v0 + a * dt, a, k


class _Envelope:
    """Corner caps and the braking envelope over two consecutive laps (ext index 0..2N)."""

    def __init__(self, sig, vcap, E, grade, touches, window_min):
        self.sig = sig.tolist()
        self.vcap = vcap.tolist()
        self.E = E.tolist()
        self.grade = grade.tolist()
        n = len(self.sig)
        idx = np.searchsorted(touches, np.arange(n), side="right")
        nxt = np.where(idx < len(touches), touches[np.minimum(idx, len(touches) - 1)], n - 1)
        self.next_touch = nxt.tolist()
        self.window_min = window_min.tolist()

    def E_at(self, s: float) -> float:
        sig = self.sig
        j = bisect.bisect_right(sig, s) - 1
        if j >= len(sig) - 1:
            return self.E[-1]
        if j < 0:
            return self.E[0]
        f = (s - sig[j]) / (sig[j + 1] - sig[j])
        return self.E[j] + f * (self.E[j + 1] - self.E[j])


def _window_min(values: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """min(values[i..ends[i]]) for every i, with a sparse table (O(n log n), vectorised)."""
    n = len(values)
    levels = [values]
    k = 1
    while (1 << k) <= n:
        prev = levels[-1]
        half = 1 << (k - 1)
        cur = np.full(n, np.inf)
        cur[: n - half] = np.minimum(prev[: n - half], prev[half:])
        levels.append(cur)
        k += 1
    table = np.vstack(levels)
    i = np.arange(n)
    length = ends - i + 1
    lev = np.floor(np.log2(length)).astype(np.int64)
    return np.minimum(table[lev, i], table[lev, ends - (1 << lev) + 1])


class _Phase(enum.IntEnum):
    """What the driver is doing on the way to the next node."""

    DRIVE = 0  # full throttle, capped by the corner limits and the braking envelope
    BRAKE = 1  # braking onto the corner speed of a target node, pedal ramped


class _Event(enum.IntEnum):
    """Where an interval of constant acceleration ends."""

    NODE = 0  # at the next node of the path
    UPSHIFT = 1  # at the upshift point, before the node
    CLUTCH_IN = 2  # where the clutch re-engages, before the node
    SPLIT = 3  # after a drive step shortened to MAX_DV_MS of speed change, before the node


@dataclass(frozen=True)
class _DriverState:
    """The car and driver at the start/finish line: what one lap hands to the next. Hashable, so
    solved laps are memoised by it, and a flying lap is one whose end state equals its start."""

    speed_ms: float
    gear: int
    clutch_out_s: float  # time until the clutch re-engages, s (0: engaged)
    upshifting: bool  # the clutch is out for an upshift (no throttle), not for a downshift blip
    phase: _Phase
    pedal: float  # brake pedal at the end of the last interval, 0..1: its ramp goes on from there
    target_node: int  # braking target, a node of the lap that starts here (−1: not braking)
    since_shift_s: float  # time since the last gear change, s


class _Drivetrain:
    """The car's tables for the lap solver, per gear (index 0 unused): speeds m/s, accelerations
    m/s², engine speeds rpm."""

    # slots: read on every step of the solver's inner loop
    __slots__ = (
        "top_gear", "drag_per_v2", "rolling_acc", "full_brake_acc", "rpm_per_ms", "acc_per_nm", "torque_rpm",
        "torque_nm", "idle_rpm", "limiter_rpm", "upshift_speed", "top_speed", "downshift_rpm", "shift_time_s",
    )

    def __init__(self, car: CarSpec, shift_rpm: dict[int, float]) -> None:
        mass = car.mass_kg
        top = car.num_gears
        gears = range(1, top + 1)
        self.top_gear = top
        self.drag_per_v2 = 0.5 * car.air_density * car.cda_m2 / mass  # drag deceleration per (m/s)², 1/m
        self.rolling_acc = car.rolling_coeff * G  # rolling deceleration, m/s²
        self.full_brake_acc = car.max_brake_g * G  # full-pedal brake deceleration, m/s²
        self.rpm_per_ms = [0.0] + [car.rpm_at(1.0, g) for g in gears]  # rpm per m/s
        # Wheel force per N·m of engine torque, divided by mass: m/s² per N·m.
        force_per_nm = car.drivetrain_efficiency / car.wheel_radius_m / mass
        self.acc_per_nm = [0.0] + [car.overall_ratio(g) * force_per_nm for g in gears]
        self.torque_rpm = list(car.torque_rpm)
        self.torque_nm = list(car.torque_nm)
        self.idle_rpm, self.limiter_rpm = car.idle_rpm, car.limiter_rpm
        self.upshift_speed = [0.0] + [car.speed_at_rpm_ms(shift_rpm[g], g) for g in gears]
        self.top_speed = car.speed_at_rpm_ms(self.limiter_rpm, top)  # at the limiter in top gear
        self.downshift_rpm = [0.0] + [DOWNSHIFT_FRAC * shift_rpm[g] for g in gears]
        self.shift_time_s = car.shift_time_s

    def full_throttle_acc(self, v: float, gear: int) -> float:
        """Full-throttle wheel force / mass at road speed v in gear, m/s².

        The fuel cut is not modelled here but as caps (the interval is split at the shift
        point; in top gear speed is capped at the limiter), so the midpoint estimate of a
        step that ends exactly at the limiter still sees the real torque."""
        rpm = v * self.rpm_per_ms[gear]
        if rpm > self.limiter_rpm:
            rpm = self.limiter_rpm
        elif rpm < self.idle_rpm:
            rpm = self.idle_rpm
        t_rpm, t_nm = self.torque_rpm, self.torque_nm
        i = bisect.bisect_right(t_rpm, rpm) - 1
        if i < 0:
            torque = t_nm[0]
        elif i >= len(t_rpm) - 1:
            torque = t_nm[-1]
        else:
            torque = t_nm[i] + (rpm - t_rpm[i]) / (t_rpm[i + 1] - t_rpm[i]) * (t_nm[i + 1] - t_nm[i])
        return torque * self.acc_per_nm[gear]


class _LapRun:
    """One lap being solved, event by event: the driver's state as it goes and the trajectory so
    far (nodes σ m, t s, v m/s; per interval gear and pedals)."""

    # slots: the solver's inner loop reads and writes these thousands of times per lap
    __slots__ = (
        "env", "drivetrain", "n_nodes", "last_touch", "speed", "gear", "clutch_out_s", "upshifting", "phase",
        "pedal", "target", "since_shift_s", "t", "pos", "node", "node_sig", "node_t", "node_v", "gears",
        "throttles", "brakes", "clutches", "shifts", "onsets", "max_brake_demand", "max_over_cap_ms",
    )

    def __init__(self, state: _DriverState, env: _Envelope, drivetrain: _Drivetrain, n_nodes: int) -> None:
        self.env = env
        self.drivetrain = drivetrain
        self.n_nodes = n_nodes
        self.last_touch = len(env.next_touch) - 1
        self.speed = state.speed_ms
        self.gear = state.gear
        self.clutch_out_s = state.clutch_out_s
        self.upshifting = state.upshifting
        self.phase = state.phase
        self.pedal = state.pedal
        self.target = state.target_node
        self.since_shift_s = state.since_shift_s
        self.t = 0.0
        self.pos = 0.0  # σ, m
        self.node = 0  # the interval node → node + 1 the car is in
        self.node_sig, self.node_t, self.node_v = [0.0], [0.0], [state.speed_ms]
        self.gears: list[int] = []
        self.throttles: list[float] = []
        self.brakes: list[float] = []
        self.clutches: list[float] = []
        self.shifts: list[tuple[float, float, int, int, float, float]] = []
        self.onsets: list[float] = []
        self.max_brake_demand = 0.0
        self.max_over_cap_ms = 0.0

    def drive_lap(self) -> None:
        """Advance until the start/finish line at the end of the lap."""
        n = self.n_nodes
        guard = 0
        while self.node < n:
            guard += 1
            if guard > 20 * n + 10000:
                raise RuntimeError("lap solver did not advance")
            self._advance()

    def _advance(self) -> None:
        """One interval of constant acceleration, or none when the driver changes phase (the
        same stretch is then planned again in the new phase)."""
        next_sig = self.env.sig[self.node + 1]
        remaining = next_sig - self.pos
        if remaining <= 1e-9:
            self.pos = next_sig
            self._next_node()
            return
        grade = self.env.grade[self.node]
        engaged = self.clutch_out_s <= 0.0
        if self.phase == _Phase.DRIVE:
            plan = self._plan_drive(remaining, grade, engaged)
        else:
            plan = self._plan_brake(remaining, grade, engaged)
        if plan is None:
            return
        step, v_next, throttle, brake = plan
        if self.upshifting and not engaged:
            throttle = 0.0  # driver lifts during a clutch upshift
        distance, v_end, event = self._interval_end(step, remaining, v_next, engaged)
        self._record(distance, v_end, event, next_sig, throttle, brake, engaged)
        self._downshift()

    def _next_node(self) -> bool:
        """Step on to the next node; True if that reaches the braking target (braking ends)."""
        self.node += 1
        if self.phase == _Phase.BRAKE and self.node >= self.target:
            self.phase = _Phase.DRIVE
            return True
        return False

    def _pick_target(self, node: int, v: float) -> int:
        """The first touch point after ``node`` that is slower than v: the corner entry (or
        pulls slow point) that this braking is for. Every touch point is where E meets the
        corner limit, so the first slower one is the binding one."""
        next_touch, vcap = self.env.next_touch, self.env.vcap
        target = next_touch[node]
        while target < self.last_touch and vcap[target] >= v:
            target = next_touch[target]
        return target

    def _can_still_brake(self, s0: float, v0: float, grade: float) -> bool:
        """Could braking still start at (s0 m, v0 m/s)? Ramp the pedal 0→1 over BRAKE_RAMP_S and
        check the speed never gets above the envelope."""
        d = self.drivetrain
        full_brake, drag, rolling = d.full_brake_acc, d.drag_per_v2, d.rolling_acc
        dt = BRAKE_RAMP_S / 6.0
        s, v = s0, v0
        for i in range(6):
            acc = -((i + 0.5) / 6.0 * full_brake + drag * v * v + rolling + G * grade)
            s += v * dt + 0.5 * acc * dt * dt
            v += acc * dt
            if v > self.env.E_at(s):
                return False
        return True

    def _plan_drive(self, remaining: float, grade: float, engaged: bool):
        """Full throttle (coast while the clutch is out), capped by the corner limit, the braking
        envelope and the limiter: (step m, end speed m/s, throttle, brake), or None when braking
        has to start here instead."""
        d, env, j, v, gear = self.drivetrain, self.env, self.node, self.speed, self.gear
        drag, rolling = d.drag_per_v2, d.rolling_acc
        throttle = brake = 0.0
        step = remaining
        acc_full = (d.full_throttle_acc(v, gear) if engaged else 0.0) - drag * v * v - rolling - G * grade
        # Hard acceleration (low gears): shorter steps, so the constant-acceleration intervals
        # follow the torque curve closely (speed changes ≤ MAX_DV_MS per step).
        if acc_full * step > v * MAX_DV_MS:
            step = v * MAX_DV_MS / acc_full
        v_mid2 = v * v + acc_full * step  # v² half way, for a midpoint estimate of the acceleration
        v_mid = math.sqrt(v_mid2) if v_mid2 > 0.01 else 0.1
        acc_mid = (d.full_throttle_acc(v_mid, gear) if engaged else 0.0) - drag * v_mid * v_mid - rolling - G * grade
        v2 = v * v + 2.0 * acc_mid * step
        v_next = math.sqrt(v2) if v2 > 0.01 else 0.1
        cap = env.vcap[j + 1]
        if env.E[j + 1] < cap:
            cap = env.E[j + 1]
        if gear == d.top_gear and d.top_speed < cap:
            cap = d.top_speed
        if v_next <= cap:
            throttle = 1.0 if engaged else 0.0
        else:
            v_next = cap
            acc = (cap * cap - v * v) / (2.0 * step)
            v_avg = 0.5 * (v + v_next)
            coast = -drag * v_avg * v_avg - rolling - G * grade
            if acc >= coast:
                full = d.full_throttle_acc(v_avg, gear) if engaged else 0.0
                throttle = min(1.0, (acc - coast) / full) if full > 0.0 else 0.0
            else:
                brake = (coast - acc) / d.full_brake_acc
                self.max_brake_demand = max(self.max_brake_demand, brake)
                brake = min(brake, 1.0)
        # Braking point: if braking could not start at the end of this step any more, start now.
        # (window_min[j] is the lowest E within reach of a pedal ramp from here.)
        if v_next > env.window_min[j] and not self._can_still_brake(self.pos + step, v_next, grade):
            self.phase = _Phase.BRAKE
            self.pedal = 0.0
            self.target = self._pick_target(j, v)
            self.onsets.append(self.pos)
            return None
        return step, v_next, throttle, brake

    def _plan_brake(self, remaining: float, grade: float, engaged: bool):
        """Constant deceleration onto the target's corner speed, the pedal ramped up at most at
        the BRAKE_RAMP_S rate: (step m, end speed m/s, throttle, brake), or None when braking is
        over."""
        d, env, j, v = self.drivetrain, self.env, self.node, self.speed
        vcap = env.vcap
        if v <= vcap[self.target]:  # slow enough for this one already: the next that needs it
            self.target = self._pick_target(j, v)
        target = self.target
        dist = env.sig[target] - self.pos
        v_target = vcap[target]
        if dist <= 1e-9 or v <= v_target:
            self.phase = _Phase.DRIVE
            return None
        if j + 1 == target:
            v_goal = v_target
        else:
            # the speed at the next node on the straight line in v² from here to the target
            line2 = v * v - (v * v - v_target * v_target) * remaining / dist
            v_goal = math.sqrt(line2) if line2 > 0.0 else v_target
        if vcap[j + 1] < v_goal:
            v_goal = vcap[j + 1]
        if env.E[j + 1] < v_goal:
            v_goal = env.E[j + 1]
        acc_goal = (v_goal * v_goal - v * v) / (2.0 * remaining)
        v_avg = 0.5 * (v + v_goal)
        coast = -d.drag_per_v2 * v_avg * v_avg - d.rolling_acc - G * grade
        pedal_max = self.pedal + 2.0 * remaining / (v + v_goal) / BRAKE_RAMP_S
        throttle = brake = 0.0
        if acc_goal < coast:
            pedal_goal = (coast - acc_goal) / d.full_brake_acc
            self.max_brake_demand = max(self.max_brake_demand, pedal_goal)
            if pedal_goal <= pedal_max and pedal_goal <= 1.0:
                brake = pedal_goal
                v_next = v_goal
            else:
                brake = min(pedal_max, 1.0)
                v2 = v * v + 2.0 * (coast - brake * d.full_brake_acc) * remaining
                v_next = math.sqrt(v2) if v2 > 0.01 else 0.1
        else:
            full = d.full_throttle_acc(v_avg, self.gear) if engaged else 0.0
            need = acc_goal - coast
            if full > 0.0 and need <= full:
                throttle = need / full
                v_next = v_goal
            else:
                throttle = 1.0 if full > 0.0 else 0.0
                v2 = v * v + 2.0 * (coast + throttle * full) * remaining
                v_next = math.sqrt(v2) if v2 > 0.01 else 0.1
        self.pedal = brake
        return remaining, v_next, throttle, brake

    def _interval_end(self, step: float, remaining: float, v_next: float, engaged: bool):
        """Where the planned step really ends: at its end, or earlier at the upshift point or
        where the clutch re-engages. Returns (distance m, end speed m/s, event)."""
        d, v, gear = self.drivetrain, self.speed, self.gear
        acc = (v_next * v_next - v * v) / (2.0 * step)
        distance, v_end, event = step, v_next, (_Event.NODE if step == remaining else _Event.SPLIT)
        if self.phase == _Phase.DRIVE and engaged and gear < d.top_gear and v_next > d.upshift_speed[gear]:
            v_up = d.upshift_speed[gear]
            to_shift = (v_up * v_up - v * v) / (2.0 * acc) if acc > 0.0 else 0.0
            if to_shift < distance:
                distance, v_end, event = max(to_shift, 0.0), v_up, _Event.UPSHIFT
        if not engaged:
            dt_full = 2.0 * distance / (v + v_end)
            if self.clutch_out_s < dt_full:
                tau = self.clutch_out_s
                distance, v_end, event = v * tau + 0.5 * acc * tau * tau, v + acc * tau, _Event.CLUTCH_IN
        return distance, v_end, event

    def _record(self, distance: float, v_end: float, event: _Event, next_sig: float, throttle: float,
                brake: float, engaged: bool) -> None:
        """Append the interval to the trajectory and apply its end event."""
        if distance > 1e-9:
            dt = 2.0 * distance / (self.speed + v_end)
            if event == _Event.NODE:
                pos = next_sig
            else:
                pos = self.pos + distance
                if pos >= next_sig:  # numerically at the node: land on it
                    pos = next_sig
            t = self.t + dt
            self.pos, self.t = pos, t
            self.node_sig.append(pos)
            self.node_t.append(t)
            self.node_v.append(v_end)
            self.gears.append(self.gear)
            self.throttles.append(throttle)
            self.brakes.append(brake)
            self.clutches.append(1.0 if engaged else 0.0)
            over = v_end - self.env.vcap[self.node + 1]
            if over > self.max_over_cap_ms and pos == next_sig:
                self.max_over_cap_ms = over
            self.speed = v_end
            self.since_shift_s += dt
            clutch_out_s = self.clutch_out_s
            self.clutch_out_s = clutch_out_s - dt if clutch_out_s > dt else 0.0
        if event == _Event.CLUTCH_IN:
            self.clutch_out_s = 0.0
            self.upshifting = False
        elif event == _Event.UPSHIFT:
            self._shift(+1, self.drivetrain.shift_time_s)
            self.upshifting = True
        if self.pos == next_sig and self._next_node():
            # Braking landed on the target's corner speed up to rounding: take the exact value,
            # so that states which should be equal are (laps are memoised by their start state).
            v_cap = self.env.vcap[self.node]
            if abs(self.speed - v_cap) < 1e-9 * self.speed:
                self.speed = v_cap
                self.node_v[-1] = v_cap

    def _shift(self, step: int, clutch_out_s: float) -> None:
        """Change gear by ``step`` now, the clutch out for ``clutch_out_s`` s."""
        v, gear = self.speed, self.gear
        self.shifts.append((self.t, self.pos, gear, gear + step, v * self.drivetrain.rpm_per_ms[gear], v))
        self.gear = gear + step
        self.clutch_out_s = clutch_out_s
        self.since_shift_s = 0.0

    def _downshift(self) -> None:
        """Downshift at a node while braking, or when the engine lugs under power, if the lower
        gear keeps the rpm in band."""
        d, gear, v = self.drivetrain, self.gear, self.speed
        if gear > 1 and self.clutch_out_s <= 0.0 and self.since_shift_s >= MIN_SHIFT_GAP_S:
            if self.phase == _Phase.BRAKE or v * d.rpm_per_ms[gear] < LUG_FRAC * d.limiter_rpm:
                if v * d.rpm_per_ms[gear - 1] <= d.downshift_rpm[gear - 1]:
                    self._shift(-1, BLIP_S)
                    self.upshifting = False

    def trace(self, path: _Path, sector_bounds_m: tuple[float, float]) -> _LapTrace:
        """The solved lap; its end state starts the next lap."""
        sig = np.asarray(self.node_sig)
        t = np.asarray(self.node_t)
        v = np.asarray(self.node_v)
        acc = np.diff(v) / np.diff(t)
        b1, b2 = (float(path.sigma_of_s(b)) for b in sector_bounds_m)
        sector_end_t = (float(np.interp(b1, sig, t)), float(np.interp(b2, sig, t)))
        end_target = self.target - self.n_nodes if self.phase == _Phase.BRAKE else -1
        end_state = _DriverState(self.speed, self.gear, self.clutch_out_s, self.upshifting, self.phase,
                                 self.pedal, end_target, self.since_shift_s)
        return _LapTrace(
            sig=sig, t=t, v=v, acc=acc,
            gear=np.asarray(self.gears, dtype=np.int8), throttle=np.asarray(self.throttles),
            brake=np.asarray(self.brakes), clutch=np.asarray(self.clutches), lap_time_s=float(t[-1]),
            sector_end_t=sector_end_t, shifts=self.shifts, onsets_sig=self.onsets,
            max_brake_demand=self.max_brake_demand, max_over_cap_ms=self.max_over_cap_ms, end_state=end_state,
        )  # fmt: skip


class _LapSolver:
    """Solves laps of one car on one driven line (see the module docstring)."""

    def __init__(
        self,
        car: CarSpec,
        path: _Path,
        shift_rpm: dict[int, float],
        slow_nodes: dict[int, float],
        sector_bounds_m: tuple[float, float],
    ) -> None:
        self.car = car
        self.sector_bounds_m = sector_bounds_m
        self.path = path
        self.shift_rpm = shift_rpm
        self.slow_nodes = slow_nodes
        n = path.n
        # Lateral-grip limit per interval, m/s (FREE_SPEED_MS on straights).
        v_int = np.sqrt(car.max_lat_g * G / np.maximum(np.abs(path.kappa), 1e-12))
        self.v_int = np.minimum(v_int, FREE_SPEED_MS)
        self.is_corner = path.kappa != 0.0
        self.n = n
        self._env_cache: dict[tuple[float, float], _Envelope] = {}
        self.drivetrain = _Drivetrain(car, shift_rpm)

    def node_caps(self, pace: float) -> np.ndarray:
        """Corner speed limit at nodes 0..N for grip factor ``pace``: the stricter of the two
        intervals a node touches, so that every point of an arc, its ends included, is capped."""
        vi = np.where(self.is_corner, self.v_int * math.sqrt(pace), self.v_int)
        caps = np.empty(self.n + 1)
        caps[1:-1] = np.minimum(vi[:-1], vi[1:])
        caps[0] = caps[-1] = min(vi[0], vi[-1])
        for j, v in self.slow_nodes.items():
            caps[j] = v
            if j == 0:
                caps[-1] = v
        return caps

    def envelope(self, pace: float, pace_next: float) -> _Envelope:
        key = (pace, pace_next)
        env = self._env_cache.get(key)
        if env is not None:
            return env
        car, path, n = self.car, self.path, self.n
        sig = np.concatenate([path.sig[:-1], path.sig + path.length_sigma])
        vcap = np.concatenate([self.node_caps(pace)[:-1], self.node_caps(pace_next)])
        grade = np.concatenate([path.grade, path.grade, path.grade[-1:]])
        brake = np.concatenate([np.full(n, pace), np.full(n + 1, pace_next)]) * (
            BRAKE_PLAN_MARGIN * car.max_brake_g * G
        )
        cd = 0.5 * car.air_density * car.cda_m2 / car.mass_kg
        cr = car.rolling_coeff * G
        E = vcap.copy()
        sl, vl, gl, bl = sig.tolist(), vcap.tolist(), grade.tolist(), brake.tolist()
        El = E.tolist()
        for j in range(2 * n - 1, -1, -1):
            ve = El[j + 1]
            # Deceleration at the lower (later) speed: drag there is smaller, so this is the safe side.
            d = bl[j] + cd * ve * ve + cr + G * gl[j]
            v2 = ve * ve + 2.0 * d * (sl[j + 1] - sl[j])
            vb = math.sqrt(v2) if v2 > 0.0 else 0.0
            El[j] = vb if vb < vl[j] else vl[j]
        E = np.asarray(El)
        # Touch points: where a braking curve ends on a corner limit (driver aims at these).
        touch = np.nonzero((E[1:] == vcap[1:]) & (E[:-1] > E[1:]))[0] + 1
        width = FREE_SPEED_MS * BRAKE_RAMP_S * 1.2 + 2.0 * PATH_STEP_M + 2.0
        ends = np.searchsorted(sig, sig + width, side="right") - 1
        wmin = _window_min(E, ends)
        env = _Envelope(sig, vcap, E, grade, touch, wmin)
        if len(self._env_cache) > 64:
            self._env_cache.clear()
        self._env_cache[key] = env
        return env

    def initial_state(self, v: float) -> _DriverState:
        """A guess to start warm-up laps from: driving at ``v`` m/s in the lowest gear that is
        well below its shift point there."""
        car = self.car
        gear = car.num_gears
        for g in range(1, car.num_gears + 1):
            if car.rpm_at(v, g) <= 0.9 * self.shift_rpm[g]:
                gear = g
                break
        return _DriverState(speed_ms=v, gear=gear, clutch_out_s=0.0, upshifting=False, phase=_Phase.DRIVE,
                            pedal=0.0, target_node=-1, since_shift_s=10.0)

    def solve(self, state: _DriverState, pace: float, pace_next: float) -> _LapTrace:
        """One lap from ``state`` at the start/finish line with grip factor ``pace`` (``pace_next``
        for the next lap, whose first corners the end of this one may brake for)."""
        run = _LapRun(state, self.envelope(pace, pace_next), self.drivetrain, self.n)
        run.drive_lap()
        return run.trace(self.path, self.sector_bounds_m)


# ---------------------------------------------------------------------------------------- simulation
class Simulation:
    """A deterministic car lapping a track, sampled at ``rate_hz``.

    Sample k is at simulation time k / rate_hz (``t_ns`` = start_time_ns + k·1e9/rate_hz,
    rounded). At k = 0 the car is on the start/finish line (s = 0) at racing speed, in the gear and
    state a lap ends with: a flying lap, so lap 1 (``lap_count`` 0) is a complete lap and, without
    ``lap_variation``, exactly as long as every other. ``lap_count`` increments when s wraps.
    Call :meth:`step_block` repeatedly; :attr:`truth` has the exact answers for what was emitted.

    Args:
        car: a :class:`CarSpec` or a key of :data:`rt.sim.car.CARS`.
        track: a :class:`Track` or a key of :data:`rt.sim.track.TRACKS`.
        rate_hz: sample rate, Hz.
        seed: seeds the input noise and the per-lap pace variation (nothing else is random).
        line_offset_m: the driven line is parallel to the centre line, this many m to the left
            (negative = right). Lap distance and timing still follow the centre line's s.
        shift_rpm: upshift points: None (at the limiter minus a hair), one rpm for all gears, a
            {gear: rpm} dict (missing gears at the limiter), or ``"optimal"`` (the car's true
            optimum). Clamped to the limiter.
        mode: ``"race"`` (flying laps at the limit) or ``"pulls"`` (each lap, on the
            ``PULL_STRAIGHTS`` longest straights, slow to a crawl in 1st and pull flat out through
            the gears, shifting at the shift points, then brake for the next corner).
        start_time_ns: ``t_ns`` of the first sample.
        lap_variation: each lap the driver uses a grip factor in [1 − lap_variation, 1] (drawn
            from ``seed``) for corner speeds and braking, so lap times differ (0: identical laps).
        input_noise: standard deviation of the noise added to the *reported* steer, part
            throttle and brake (0 disables). Full throttle, zero brake and the truth stay exact.
        out_lap_m: start this far (m along the driven line, < one lap) before the start/finish
            line, at racing speed, on the trajectory that ends lap 0's start state. Until the car
            crosses the line ``lap_time_s`` and ``sector_time_s`` stand at 0 and ``lap_count`` is
            0 (an out-lap, as AC's hotlap start); ``truth.out_lap_s`` is its duration, shifts in
            it have ``lap`` −1 and ``odometer_m`` counts from the first sample.
    """

    def __init__(
        self,
        car: CarSpec | str = "gt_coupe",
        track: Track | str = "test_ring",
        *,
        rate_hz: float = 333.0,
        seed: int = 0,
        line_offset_m: float = 0.0,
        shift_rpm: float | Mapping[int, float] | str | None = None,
        mode: str = "race",
        start_time_ns: int = DEFAULT_START_TIME_NS,
        lap_variation: float = 0.0,
        input_noise: float = 0.01,
        out_lap_m: float = 0.0,
    ) -> None:
        self.car = CARS[car] if isinstance(car, str) else car
        self.track = TRACKS[track] if isinstance(track, str) else track
        if mode not in ("race", "pulls"):
            raise ValueError(f"mode must be 'race' or 'pulls', not {mode!r}")
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        if not 0.0 <= lap_variation < 0.5:
            raise ValueError("lap_variation must be in [0, 0.5)")
        self.mode = mode
        self.rate_hz = float(rate_hz)
        self.seed = int(seed)
        self.line_offset_m = float(line_offset_m)
        self.start_time_ns = int(start_time_ns)
        self.lap_variation = float(lap_variation)
        self.input_noise = float(input_noise)
        self.shift_rpm = self._resolve_shift_rpm(shift_rpm)

        car_, track_ = self.car, self.track
        slow_s: list[float] = []
        if mode == "pulls":
            for start, length in track_.straights()[:PULL_STRAIGHTS]:
                slow_s.append(float(np.mod(start + min(PULL_SLOW_POINT_IN_M, 0.3 * length), track_.length_m)))
        self._path = _Path(track_, self.line_offset_m, tuple(slow_s))
        v_slow = PULL_START_FRAC * car_.max_gear_speed_ms(1)
        slow_nodes = {self._path.node_of_s(s) % self._path.n: v_slow for s in slow_s}
        self._solver = _LapSolver(car_, self._path, self.shift_rpm, slow_nodes, track_.sector_bounds_m)
        self._trace_cache: dict[tuple, _LapTrace] = {}

        # Noise tables, indexed by the absolute sample number (block-split invariant).
        rng = np.random.default_rng([self.seed, 0x5151])
        self._noise = rng.standard_normal((3, _NOISE_LEN)) * self.input_noise

        # Laps: lap k spans simulation time [lap_start[k], lap_start[k + 1]).
        self._lap_start: list[float] = [0.0]
        self._lap_traces: dict[int, _LapTrace] = {}
        self._lap_times: list[float] = []
        self._sector_times: list[tuple[float, float, float]] = []
        self._shifts: list[ShiftEvent] = []
        self._first_onsets: tuple[float, ...] = ()
        self._next_index = 0
        self._optimal = self.car.optimal_upshift_rpms()  # cached: truth is read often
        self._corners = tuple(self.track.corners())
        self._start_state, before = self._flying_start_state()
        # Out-lap: the end of the lap before lap 0 (``before`` ends in lap 0's start state).
        self._out_tau0 = 0.0  # lap time in ``before`` of the first sample, s
        self._odo0 = 0.0  # odometer at the line, m
        out_lap_m = float(out_lap_m)
        if not 0.0 <= out_lap_m < self._path.length_sigma:
            raise ValueError("out_lap_m must be in [0, one lap)")
        self.out_lap_m = out_lap_m
        if out_lap_m > 0.0:
            sig0 = self._path.length_sigma - out_lap_m
            tau0 = float(np.interp(sig0, before.sig, before.t))
            self._out_tau0 = tau0
            self._odo0 = self._path.length_sigma - float(before.sample(np.array([tau0]))[0][0])
            self._lap_start = [before.lap_time_s - tau0]
            self._lap_traces[-1] = before
            s_of = self._path.s_of_sigma
            for t, sg, g0, g1, rpm, v in before.shifts:
                if t >= tau0:
                    self._shifts.append(ShiftEvent(t - tau0, -1, float(s_of(sg)), g0, g1, rpm, v))
        self._add_lap(self._start_state)

    # ------------------------------------------------------------------ setup helpers
    def _resolve_shift_rpm(self, shift_rpm) -> dict[int, float]:
        car = self.car
        hair = car.limiter_rpm * (1.0 - LIMITER_HAIR_FRAC)
        out = {g: hair for g in range(1, car.num_gears + 1)}
        if shift_rpm is None:
            pass
        elif isinstance(shift_rpm, str):
            if shift_rpm != "optimal":
                raise ValueError("shift_rpm must be None, a number, a dict or 'optimal'")
            out.update(car.optimal_upshift_rpms())
        elif isinstance(shift_rpm, Mapping):
            out.update({int(g): float(r) for g, r in shift_rpm.items()})
        else:
            out = {g: float(shift_rpm) for g in out}
        for g, r in out.items():
            if not car.idle_rpm < r:
                raise ValueError(f"shift rpm {r} for gear {g} is below idle")
            out[g] = min(r, car.limiter_rpm)
        return out

    def _pace(self, lap: int) -> float:
        """Grip factor the driver uses in lap ``lap`` (1.0 without lap_variation)."""
        if self.lap_variation == 0.0:
            return 1.0
        u = np.random.default_rng([self.seed, 0x1A9, lap]).random()
        return 1.0 - self.lap_variation * float(u)

    def _trace(self, state: _DriverState, pace: float, pace_next: float) -> _LapTrace:
        key = (state, pace, pace_next)
        tr = self._trace_cache.get(key)
        if tr is None:
            tr = self._solver.solve(state, pace, pace_next)
            if len(self._trace_cache) > 8:
                self._trace_cache.pop(next(iter(self._trace_cache)))
            self._trace_cache[key] = tr
        return tr

    def _flying_start_state(self) -> tuple[_DriverState, _LapTrace]:
        """The state a lap ends with when laps repeat: drive warm-up laps from a guess until the
        end state repeats (it does once a braking zone has wiped out the initial guess). Also
        the warm-up lap that ends in that state (the out-lap is its end)."""
        pace0 = self._pace(0)
        state = self._solver.initial_state(30.0)
        for _ in range(6):
            tr = self._trace(state, pace0, pace0)
            if tr.end_state == state:
                break
            state = tr.end_state
        return state, tr  # state == tr.end_state either way

    def _add_lap(self, state: _DriverState) -> None:
        k = len(self._lap_times)
        tr = self._trace(state, self._pace(k), self._pace(k + 1))
        t0 = self._lap_start[k]
        self._lap_traces[k] = tr
        self._lap_times.append(tr.lap_time_s)
        s1, s2 = tr.sector_end_t
        self._sector_times.append((s1, s2 - s1, tr.lap_time_s - s2))
        self._lap_start.append(t0 + tr.lap_time_s)
        s_of = self._path.s_of_sigma
        for t, sg, g0, g1, rpm, v in tr.shifts:
            self._shifts.append(ShiftEvent(t0 + t, k, float(s_of(sg)), g0, g1, rpm, v))
        if k == 0:
            self._first_onsets = tuple(float(s_of(o)) for o in tr.onsets_sig)

    def _ensure(self, t_max: float) -> None:
        # _lap_start has one more entry than the laps solved: the end of the last solved lap.
        while self._lap_start[-1] <= t_max:
            self._add_lap(self._lap_traces[len(self._lap_times) - 1].end_state)

    # ------------------------------------------------------------------ public API
    @property
    def period_s(self) -> float:
        """Sample period, s."""
        return 1.0 / self.rate_hz

    @property
    def samples_emitted(self) -> int:
        """Number of samples returned by :meth:`step_block` so far."""
        return self._next_index

    @property
    def path_length_m(self) -> float:
        """Length of the driven line per lap, m."""
        return self._path.length_sigma

    def corner_speed_limit_ms(self, s):
        """Lateral-grip speed limit of the driven line at lap distance ``s``, m/s (inf on straights)."""
        s = np.asarray(s, dtype=np.float64)
        k = np.asarray(self.track.curvature(s), dtype=np.float64)
        kp = np.abs(k / (1.0 - self.line_offset_m * k))
        out = np.full(kp.shape, np.inf)
        nz = kp > 0.0
        out[nz] = np.sqrt(self.car.max_lat_g * G / kp[nz])
        return out if out.ndim else float(out)

    def step_block(self, n: int) -> dict[str, np.ndarray]:
        """The next ``n`` samples as a dict of arrays of length n (keys: :data:`CHANNELS`).

        ``t_ns`` int64 ns since the epoch; ``speed_ms`` m/s; ``rpm`` (clamped to idle..limiter);
        ``gear`` int8 (1.. forward); ``throttle``, ``brake`` 0..1; ``clutch`` 1 engaged / 0 out;
        ``steer`` −1..1 (+ left); ``lap_count`` int32 completed laps; ``lap_time_s`` current lap,
        ``last_lap_s``/``best_lap_s`` (−1 none yet) s; ``lap_distance_m`` centre-line s in
        [0, L); ``norm_pos`` s/L; ``x``/``y``/``z`` m and ``vx``/``vy``/``vz`` m/s in the world
        frame; ``heading_rad`` in [−π, π); ``g_lat`` (+ left), ``g_long`` (+ speeding up) in g;
        ``sector`` int8 1..3; ``sector_time_s`` s in the current sector; ``last_sector_times_s``
        shape (n, 3), the sectors of the last completed lap (−1 none); ``max_rpm`` (limiter);
        ``num_gears`` int8; ``in_pit`` int8 (always 0); ``odometer_m`` m along the driven line.
        Splitting a run into blocks of any sizes gives the same samples.
        """
        n = int(n)
        if n < 0:
            raise ValueError("n must be ≥ 0")
        idx = np.arange(self._next_index, self._next_index + n, dtype=np.int64)
        self._next_index += n
        t = idx / self.rate_hz
        if n:
            self._ensure(float(t[-1]))
        lap = np.searchsorted(np.asarray(self._lap_start), t, side="right") - 1
        ch = self._lap_channels(t, lap)
        if n:
            # Time only moves forward: forget the traces of finished laps (their numbers are kept).
            for old in [i for i in self._lap_traces if i < lap[-1]]:
                del self._lap_traces[old]
        return self._sample_channels(idx, lap, ch)

    def _lap_channels(self, t: np.ndarray, lap: np.ndarray) -> dict[str, np.ndarray]:
        """What the lap traces give at simulation times ``t`` (s) in laps ``lap`` (−1: the
        out-lap): lap and sector times (s), σ (m), speed (m/s), acceleration (m/s²), gear,
        pedals and clutch as solved (before input noise)."""
        n = len(t)
        starts = np.asarray(self._lap_start)
        ch = {name: np.empty(n) for name in ("tau", "sig", "v", "acc", "thr", "brk", "clu", "sec_time")}
        ch["gear"] = np.empty(n, dtype=np.int8)
        ch["sector"] = np.empty(n, dtype=np.int8)
        ch["last_lap"] = np.full(n, -1.0)
        ch["best_lap"] = np.full(n, -1.0)
        ch["last_sec"] = np.full((n, 3), -1.0)
        laps = np.asarray(self._lap_times)
        best = np.minimum.accumulate(laps) if len(laps) else laps
        bounds = np.searchsorted(lap, np.arange(lap[0], lap[-1] + 2)) if n else np.zeros(1, dtype=np.int64)
        for i, k in enumerate(range(int(lap[0]), int(lap[-1]) + 1) if n else ()):
            a, b = int(bounds[i]), int(bounds[i + 1])
            if a == b:
                continue
            tr = self._lap_traces[k]
            # The out-lap (k = −1) is the end of the lap before lap 0, from lap time _out_tau0.
            tk = t[a:b] - starts[k] if k >= 0 else t[a:b] + self._out_tau0
            tk = np.minimum(tk, tr.lap_time_s)
            ch["tau"][a:b] = tk if k >= 0 else 0.0  # the timer stands at 0 before the first crossing
            sg, vv, aa, kk = tr.sample(tk)
            ch["sig"][a:b], ch["v"][a:b], ch["acc"][a:b] = sg, vv, aa
            ch["gear"][a:b] = tr.gear[kk]
            ch["thr"][a:b] = tr.throttle[kk]
            ch["brk"][a:b] = tr.brake[kk]
            ch["clu"][a:b] = tr.clutch[kk]
            e1, e2 = tr.sector_end_t
            sec = 1 + (tk >= e1).astype(np.int8) + (tk >= e2).astype(np.int8)
            ch["sector"][a:b] = sec
            ch["sec_time"][a:b] = tk - np.where(sec == 1, 0.0, np.where(sec == 2, e1, e2)) if k >= 0 else 0.0
            if k > 0:
                ch["last_lap"][a:b] = laps[k - 1]
                ch["best_lap"][a:b] = best[k - 1]
                ch["last_sec"][a:b] = self._sector_times[k - 1]
        return ch

    def _sample_channels(self, idx: np.ndarray, lap: np.ndarray, ch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The samples ``idx`` (absolute numbers) from their lap channels ``ch``: the world frame
        along the driven line, steering, the input noise, rpm (see :meth:`step_block`)."""
        n = len(idx)
        car, track, path = self.car, self.track, self._path
        sig, v, thr, brk, gear = ch["sig"], ch["v"], ch["thr"], ch["brk"], ch["gear"]
        s = path.s_of_sigma(sig)
        L = track.length_m
        s = np.where(s >= L, s - L, s)
        kappa = np.asarray(track.curvature(s), dtype=np.float64)
        kp = kappa / (1.0 - self.line_offset_m * kappa)  # curvature of the driven line
        theta = np.asarray(track.heading(s), dtype=np.float64)
        cth, sth = np.cos(theta), np.sin(theta)
        xc, zc = track.xz(s)
        x = np.asarray(xc) - self.line_offset_m * sth
        z = np.asarray(zc) + self.line_offset_m * cth
        y = np.asarray(track.y(s), dtype=np.float64)
        grade = np.asarray(track.grade(s), dtype=np.float64) / (1.0 - self.line_offset_m * kappa)

        steer = np.clip(kp * STEER_LOCK_RADIUS_M, -1.0, 1.0)
        if self.input_noise > 0.0 and n:
            ni = idx % _NOISE_LEN
            steer = np.clip(steer + self._noise[0, ni], -1.0, 1.0)
            part = (thr > 0.0) & (thr < 1.0)
            thr = np.where(part, np.clip(thr + self._noise[1, ni], 0.0, 1.0), thr)
            brk = np.where(brk > 0.0, np.clip(brk + self._noise[2, ni], 1e-3, 1.0), brk)

        k_rpm = np.array([0.0] + [car.rpm_at(1.0, g) for g in range(1, car.num_gears + 1)])
        rpm = np.clip(v * k_rpm[gear], car.idle_rpm, car.limiter_rpm)

        return {
            "t_ns": self.start_time_ns + np.rint(idx * (1e9 / self.rate_hz)).astype(np.int64),
            "speed_ms": v,
            "rpm": rpm,
            "gear": gear,
            "throttle": thr,
            "brake": brk,
            "clutch": ch["clu"],
            "steer": steer,
            "lap_count": np.maximum(lap, 0).astype(np.int32),
            "lap_time_s": ch["tau"],
            "last_lap_s": ch["last_lap"],
            "best_lap_s": ch["best_lap"],
            "lap_distance_m": s,
            "norm_pos": s / L,
            "x": x,
            "y": y,
            "z": z,
            "vx": v * cth,
            "vy": v * grade,
            "vz": v * sth,
            "heading_rad": np.mod(theta + np.pi, 2.0 * np.pi) - np.pi,
            "g_lat": v * v * kp / G,
            "g_long": ch["acc"] / G,
            "sector": ch["sector"],
            "sector_time_s": ch["sec_time"],
            "last_sector_times_s": ch["last_sec"],
            "max_rpm": np.full(n, float(car.limiter_rpm)),
            "num_gears": np.full(n, car.num_gears, dtype=np.int8),
            "in_pit": np.zeros(n, dtype=np.int8),
            "odometer_m": lap * path.length_sigma + sig + self._odo0,
        }

    @property
    def truth(self) -> SimTruth:
        """Exact answers for everything emitted so far (see :class:`SimTruth`)."""
        t_last = (self._next_index - 1) / self.rate_hz if self._next_index else -1.0
        # Laps and shifts are stored in time order, so "so far" is a prefix.
        done = bisect.bisect_right(self._lap_start, t_last, lo=1) - 1
        tail = max(0, len(self._shifts) - 512)  # shifts are solved at most a lap ahead
        n_shifts = tail + bisect.bisect_right([e.time_s for e in self._shifts[tail:]], t_last)
        return SimTruth(
            track_length_m=self.track.length_m,
            path_length_m=self._path.length_sigma,
            line_offset_m=self.line_offset_m,
            lap_times_s=tuple(self._lap_times[:done]),
            lap_start_times_s=tuple(self._lap_start[: done + 1]),
            sector_times_s=tuple(self._sector_times[:done]),
            braking_onsets_m=self._first_onsets,
            corners=self._corners,
            optimal_upshift_rpm=dict(self._optimal),
            shift_rpm=dict(self.shift_rpm),
            shifts=tuple(self._shifts[:n_shifts]),
            out_lap_s=self._lap_start[0],
        )
