"""Closed circuits made of straights and constant-radius arcs, with exact geometry.

A :class:`Track` is a centre line parametrised by lap distance ``s`` (m, 0 at the start/finish
line, increasing in the driving direction). Each segment is a straight (curvature 0) or an arc of
constant signed curvature κ = ±1/R (1/m, positive = left turn). Position, heading and normal are
closed-form in ``s``, so the analyses downstream can be tested against exact answers (corner
positions and radii, track length, the offset of a racing line).

World frame (as the games use it): y is up, the track lies in the x-z plane. The heading θ (rad)
is measured from +x towards +z, the tangent is (cos θ, sin θ) in (x, z), and ``normal(s)`` =
(−sin θ, cos θ) is the driver's left. In the left-handed, y-up frame of Assetto Corsa and Project
CARS (x right, z forward) that is the left seen from the driver's seat; positive curvature turns
the car towards it.

Lengths are horizontal: the elevation profile ``y(s)`` is a gentle sum of sines (grades below
2 %), so the 3-D path is < 0.01 % longer than ``s`` says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class Segment:
    """One piece of centre line: ``length_m`` (m, > 0) at constant ``curvature`` (1/m, + = left)."""

    length_m: float
    curvature: float = 0.0

    @property
    def is_straight(self) -> bool:
        return self.curvature == 0.0

    @property
    def radius_m(self) -> float:
        """Radius, m (inf for a straight)."""
        return math.inf if self.curvature == 0.0 else 1.0 / abs(self.curvature)

    @property
    def angle_rad(self) -> float:
        """Signed heading change over the segment, rad (+ = left)."""
        return self.length_m * self.curvature


@dataclass(frozen=True)
class Corner:
    """A true corner of a track (one arc segment), lap distances in m.

    ``apex_m`` is the geometric apex: the middle of the arc. ``angle_deg`` is the unsigned heading
    change; ``direction`` is ``'left'`` or ``'right'``.
    """

    number: int
    start_m: float
    apex_m: float
    end_m: float
    direction: str
    radius_m: float
    angle_deg: float


@dataclass(frozen=True)
class Track:
    """A closed circuit. Build one with :meth:`from_layout`, which closes it exactly.

    Attributes:
        name: key in :data:`TRACKS`.
        segments: the centre line in driving order, starting at the start/finish line.
        sector_bounds_m: lap distances (m) where sector 1 and sector 2 end; sector 3 ends at the
            start/finish line.
        elevation: (amplitude_m, harmonic, phase_rad) terms of ``y(s)``, each
            amplitude·sin(2π·harmonic·s/L + phase), so the profile is periodic and smooth.
        start_xz: world (x, z) of the start/finish line, m.
        start_heading_rad: heading at the start/finish line, rad.
    """

    name: str
    segments: tuple[Segment, ...]
    sector_bounds_m: tuple[float, float]
    elevation: tuple[tuple[float, int, float], ...] = ()
    start_xz: tuple[float, float] = (0.0, 0.0)
    start_heading_rad: float = 0.0
    # Derived per-segment tables (segment start distance, heading, position), filled in __post_init__.
    _s0: np.ndarray = field(init=False, repr=False, compare=False)
    _th0: np.ndarray = field(init=False, repr=False, compare=False)
    _x0: np.ndarray = field(init=False, repr=False, compare=False)
    _z0: np.ndarray = field(init=False, repr=False, compare=False)
    _kappa: np.ndarray = field(init=False, repr=False, compare=False)
    _closure_error_m: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("a track needs segments")
        if any(seg.length_m <= 0.0 for seg in self.segments):
            raise ValueError("segment lengths must be positive")
        n = len(self.segments)
        s0 = np.zeros(n + 1)
        th0 = np.zeros(n + 1)
        x0 = np.zeros(n + 1)
        z0 = np.zeros(n + 1)
        th0[0] = self.start_heading_rad
        x0[0], z0[0] = self.start_xz
        for i, seg in enumerate(self.segments):
            dx, dz = _chord(seg.length_m, seg.curvature, th0[i])
            s0[i + 1] = s0[i] + seg.length_m
            th0[i + 1] = th0[i] + seg.angle_rad
            x0[i + 1] = x0[i] + dx
            z0[i + 1] = z0[i] + dz
        turn = th0[-1] - th0[0]
        if abs(abs(turn) - TWO_PI) > 1e-9:
            raise ValueError(f"heading changes sum to {math.degrees(turn):.6f}°, not ±360°")
        err = math.hypot(x0[-1] - x0[0], z0[-1] - z0[0])
        if err > 0.01:
            raise ValueError(f"track does not close: end point is {err:.3f} m from the start")
        a, b = self.sector_bounds_m
        if not 0.0 < a < b < s0[-1]:
            raise ValueError("sector bounds must satisfy 0 < s1 < s2 < length")
        for name, value in (("_s0", s0), ("_th0", th0), ("_x0", x0), ("_z0", z0)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_kappa", np.array([seg.curvature for seg in self.segments]))
        object.__setattr__(self, "_closure_error_m", err)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_layout(
        cls,
        name: str,
        layout: Sequence[tuple],
        *,
        close_with: tuple[int, int],
        sector_bounds_m: tuple[float, float] | None = None,
        elevation: tuple[tuple[float, int, float], ...] = (),
    ) -> "Track":
        """Build a closed track from a rough layout, closing it exactly.

        ``layout`` items are ``("S", length_m)`` for a straight or ``("L"|"R", angle_deg,
        radius_m)`` for an arc turning left/right by ``angle_deg``; the signed angles must sum to
        ±360°. The two straights at indices ``close_with`` (non-parallel) are lengthened or
        shortened so that the end point meets the start point: the displacement error e is a
        linear function of their lengths, ΔLₐ·tₐ + ΔL_b·t_b = −e, solved exactly (2×2 system).
        ``sector_bounds_m`` defaults to thirds of the length.
        """
        segs: list[Segment] = []
        for item in layout:
            kind = item[0]
            if kind == "S":
                segs.append(Segment(float(item[1]), 0.0))
            elif kind in ("L", "R"):
                angle = math.radians(float(item[1]))
                radius = float(item[2])
                sign = 1.0 if kind == "L" else -1.0
                segs.append(Segment(radius * angle, sign / radius))
            else:
                raise ValueError(f"unknown layout item {item!r}")
        ia, ib = close_with
        if not (segs[ia].is_straight and segs[ib].is_straight):
            raise ValueError("close_with must name two straights")
        # Headings and the end point of the nominal layout.
        th = 0.0
        x = z = 0.0
        heads = []
        for seg in segs:
            heads.append(th)
            dx, dz = _chord(seg.length_m, seg.curvature, th)
            x += dx
            z += dz
            th += seg.angle_rad
        ta = (math.cos(heads[ia]), math.sin(heads[ia]))
        tb = (math.cos(heads[ib]), math.sin(heads[ib]))
        det = ta[0] * tb[1] - ta[1] * tb[0]
        if abs(det) < 0.2:
            raise ValueError("closing straights are (nearly) parallel")
        # Solve [ta tb]·[dla, dlb]ᵀ = −(x, z) by Cramer's rule.
        dla = (-x * tb[1] + z * tb[0]) / det
        dlb = (-z * ta[0] + x * ta[1]) / det
        segs[ia] = Segment(segs[ia].length_m + dla, 0.0)
        segs[ib] = Segment(segs[ib].length_m + dlb, 0.0)
        if segs[ia].length_m <= 0.0 or segs[ib].length_m <= 0.0:
            raise ValueError("closing would need a negative straight; adjust the layout")
        total = sum(seg.length_m for seg in segs)
        if sector_bounds_m is None:
            sector_bounds_m = (total / 3.0, 2.0 * total / 3.0)
        return cls(name=name, segments=tuple(segs), sector_bounds_m=sector_bounds_m, elevation=elevation)

    # ------------------------------------------------------------------ scalars
    @property
    def length_m(self) -> float:
        """Lap length along the centre line, m (the sum of the segment lengths)."""
        return float(self._s0[-1])

    @property
    def closure_error_m(self) -> float:
        """Distance between the end of the last segment and the start/finish point, m."""
        return self._closure_error_m

    @property
    def segment_starts_m(self) -> np.ndarray:
        """Lap distance where each segment starts, m (length n+1; the last entry is the length)."""
        return self._s0.copy()

    # ------------------------------------------------------------------ vectorised geometry
    def _locate(self, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(segment index, distance into the segment, wrapped s) for lap distances ``s``."""
        sw = np.mod(np.asarray(s, dtype=np.float64), self._s0[-1])
        idx = np.searchsorted(self._s0, sw, side="right") - 1
        idx = np.clip(idx, 0, len(self.segments) - 1)
        return idx, sw - self._s0[idx], sw

    def curvature(self, s):
        """Signed curvature of the centre line at lap distance ``s``, 1/m (+ = left turn).

        At a segment boundary the value of the segment that starts there is returned."""
        idx, _, _ = self._locate(s)
        return _out(self._kappa[idx])

    def heading(self, s):
        """Heading of the centre line at ``s``, rad, from +x towards +z (continuous, not wrapped:
        it grows by 2π per lap of a counter-clockwise track, measured from the start heading)."""
        idx, u, _ = self._locate(s)
        return _out(self._th0[idx] + self._kappa[idx] * u)

    def xz(self, s):
        """World position (x, z) of the centre line at lap distance ``s`` (m, wraps per lap).

        Returns a tuple ``(x, z)`` of arrays shaped like ``s`` (floats for a scalar ``s``)."""
        idx, u, _ = self._locate(s)
        dx, dz = _chord(u, self._kappa[idx], self._th0[idx])
        return _out(self._x0[idx] + dx), _out(self._z0[idx] + dz)

    def normal(self, s):
        """Unit normal to the driver's left at ``s``: ``(nx, nz)`` = (−sin θ, cos θ)."""
        th = np.asarray(self.heading(s))
        return _out(-np.sin(th)), _out(np.cos(th))

    def tangent(self, s):
        """Unit tangent in the driving direction at ``s``: ``(tx, tz)`` = (cos θ, sin θ)."""
        th = np.asarray(self.heading(s))
        return _out(np.cos(th)), _out(np.sin(th))

    def y(self, s):
        """Elevation of the track at lap distance ``s``, m (smooth and periodic in the lap)."""
        sw = np.asarray(s, dtype=np.float64)
        out = np.zeros_like(sw)
        w = TWO_PI / self.length_m
        for amp, k, phase in self.elevation:
            out = out + amp * np.sin(w * k * sw + phase)
        return _out(out)

    def grade(self, s):
        """dy/ds at lap distance ``s`` (dimensionless; + = uphill in the driving direction)."""
        sw = np.asarray(s, dtype=np.float64)
        out = np.zeros_like(sw)
        w = TWO_PI / self.length_m
        for amp, k, phase in self.elevation:
            out = out + amp * w * k * np.cos(w * k * sw + phase)
        return _out(out)

    # ------------------------------------------------------------------ structure
    def corners(self) -> list[Corner]:
        """The true corners in driving order: one per arc segment (start, apex, end, radius…)."""
        out: list[Corner] = []
        for i, seg in enumerate(self.segments):
            if seg.is_straight:
                continue
            start = float(self._s0[i])
            out.append(
                Corner(
                    number=len(out) + 1,
                    start_m=start,
                    apex_m=start + 0.5 * seg.length_m,
                    end_m=start + seg.length_m,
                    direction="left" if seg.curvature > 0 else "right",
                    radius_m=seg.radius_m,
                    angle_deg=math.degrees(abs(seg.angle_rad)),
                )
            )
        return out

    def straights(self) -> list[tuple[float, float]]:
        """Straights as (start_m, length_m), merging a straight that runs through the start/finish
        line into one entry that starts before 0 (negative start), longest first."""
        runs = [(float(self._s0[i]), seg.length_m) for i, seg in enumerate(self.segments) if seg.is_straight]
        if self.segments[0].is_straight and self.segments[-1].is_straight and len(runs) > 1:
            last = runs.pop()
            first = runs.pop(0)
            runs.append((last[0] - self.length_m, last[1] + first[1]))
        return sorted(runs, key=lambda r: -r[1])

    def sector_of(self, s):
        """Sector number 1..3 at lap distance ``s``."""
        sw = np.mod(np.asarray(s, dtype=np.float64), self.length_m)
        return _out(1 + np.searchsorted(np.asarray(self.sector_bounds_m), sw, side="right"))


def _chord(u, kappa, theta0):
    """(dx, dz) travelled along an arc of curvature ``kappa`` for distance ``u`` from heading
    ``theta0``: the chord has length u·sinc(κu/2) and points along θ0 + κu/2. Exact for straights
    too (sinc(0) = 1), so no κ = 0 special case and no division by zero."""
    half = 0.5 * np.asarray(kappa) * np.asarray(u)
    chord = np.asarray(u) * np.sinc(half / math.pi)
    direction = np.asarray(theta0) + half
    return chord * np.cos(direction), chord * np.sin(direction)


def _out(a):
    """0-d arrays become floats so scalar calls return plain numbers."""
    a = np.asarray(a)
    return float(a) if a.ndim == 0 else a


def _test_ring() -> Track:
    """~3.9 km test circuit, counter-clockwise, seven corners of radii 25–200 m in both directions.

    The main straight (through the start/finish line) and the back straight are long enough for
    the GT car to reach 5th/6th gear; both end in heavy braking (T1 35 m, T4 hairpin 25 m).
    """
    layout: list[tuple] = [
        ("S", 450.0),  # 0: start/finish → rest of the main straight (750 m with segment 14)
        ("L", 90.0, 35.0),  # T1: heavy braking at the end of the main straight
        ("S", 300.0),  # 2: closing adjustment (→ ≈177 m)
        ("R", 60.0, 110.0),  # T2
        ("S", 150.0),
        ("L", 135.0, 60.0),  # T3
        ("S", 1100.0),  # 6: back straight, closing adjustment (→ ≈1376 m)
        ("L", 135.0, 25.0),  # T4: hairpin, heavy braking
        ("S", 250.0),
        ("R", 60.0, 80.0),  # T5
        ("S", 150.0),
        ("L", 80.0, 140.0),  # T6: fast left
        ("S", 250.0),
        ("L", 40.0, 200.0),  # T7: fast kink onto the main straight
        ("S", 300.0),  # 14: run to the line
    ]
    return Track.from_layout(
        "test_ring",
        layout,
        close_with=(2, 6),
        sector_bounds_m=(1300.0, 2650.0),
        elevation=((4.0, 1, 0.3), (1.5, 3, 1.1)),
    )


TRACKS: dict[str, Track] = {"test_ring": _test_ring()}
