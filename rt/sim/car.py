"""Car model of the simulator: engine torque curve, gearbox, drag, rolling resistance, grip.

Everything here is closed-form and deterministic, so analyses can be checked against exact answers.
In particular :meth:`CarSpec.optimal_upshift_rpm` is the *true* time-optimal upshift point derived
from the torque curve and the ratios alone (no simulation involved): the engine speed at which the
next gear starts to give more wheel force at the same road speed.

Units are in the names: ``_m``, ``_kg``, ``_nm`` (newton metres), ``_n`` (newtons), ``_ms`` (m/s),
``_rpm``, ``_s``, ``_g`` (multiples of standard gravity). Gear numbers are 1-based forward gears,
as in the canonical ``gear`` channel (-1 R, 0 N, 1..n forward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Standard gravity, m/s² (the same constant the canonical channels use for g_lat/g_long).
G = 9.80665

#: rad/s of wheel per (m/s of road speed · rpm/(rad/s)) — rpm = v / r · ratio · RPM_PER_RAD_S.
RPM_PER_RAD_S = 60.0 / (2.0 * math.pi)


@dataclass(frozen=True)
class CarSpec:
    """A rear-drive road car reduced to what longitudinal/lateral lap simulation needs.

    Deliberate simplifications, so that the analytic answers are the exact answers for the
    simulated car: no tyre slip and no traction limit (drive force is engine-limited in every gear,
    so the GT pulls ~1.2 g in 1st, more than a real rear-drive car could), no load transfer, no
    combined-grip circle (braking and cornering limits are independent), no engine braking.

    Attributes:
        name: key in :data:`CARS`.
        mass_kg: mass including driver, kg.
        wheel_radius_m: dynamic rolling radius of the driven wheels, m.
        gear_ratios: forward gear ratios 1..n (gearbox only; :attr:`final_drive` multiplies them).
        final_drive: final drive ratio.
        torque_rpm / torque_nm: full-throttle engine torque curve, piecewise linear between the
            points, held flat outside them (below the first point the clutch slips at idle torque).
        idle_rpm: engine speed reported when the wheels would turn it slower (clutch slipping).
        limiter_rpm: rev limiter; fuel is cut at and above it, so drive force is zero there.
        cda_m2: drag area Cd·A, m².
        air_density: kg/m³.
        rolling_coeff: rolling resistance coefficient (force = coeff · m · g).
        drivetrain_efficiency: fraction of engine torque that reaches the wheels.
        max_brake_g: peak braking deceleration from the brakes/tyres alone, g (drag adds to it).
        max_lat_g: lateral grip, g; corner speed is sqrt(max_lat_g · g / |curvature|).
        shift_time_s: time an upshift takes with the clutch disengaged (no drive force), s.
    """

    name: str
    mass_kg: float
    wheel_radius_m: float
    gear_ratios: tuple[float, ...]
    final_drive: float
    torque_rpm: tuple[float, ...]
    torque_nm: tuple[float, ...]
    idle_rpm: float
    limiter_rpm: float
    cda_m2: float
    air_density: float = 1.2
    rolling_coeff: float = 0.012
    drivetrain_efficiency: float = 0.88
    max_brake_g: float = 1.2
    max_lat_g: float = 1.2
    shift_time_s: float = 0.15
    # numpy copies of the tuples, built once (frozen dataclass: set through object.__setattr__).
    _trpm: np.ndarray = field(init=False, repr=False, compare=False)
    _tnm: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.gear_ratios) < 2:
            raise ValueError("need at least two forward gears")
        if any(b >= a for a, b in zip(self.gear_ratios, self.gear_ratios[1:])):
            raise ValueError("gear ratios must strictly decrease from 1st to top gear")
        if len(self.torque_rpm) != len(self.torque_nm) or len(self.torque_rpm) < 2:
            raise ValueError("torque_rpm and torque_nm must have the same length ≥ 2")
        if any(b <= a for a, b in zip(self.torque_rpm, self.torque_rpm[1:])):
            raise ValueError("torque_rpm must strictly increase")
        if not (0.0 < self.idle_rpm < self.limiter_rpm):
            raise ValueError("need 0 < idle_rpm < limiter_rpm")
        object.__setattr__(self, "_trpm", np.asarray(self.torque_rpm, dtype=np.float64))
        object.__setattr__(self, "_tnm", np.asarray(self.torque_nm, dtype=np.float64))

    # ------------------------------------------------------------------ gearbox / engine
    @property
    def num_gears(self) -> int:
        """Number of forward gears."""
        return len(self.gear_ratios)

    def overall_ratio(self, gear: int) -> float:
        """Engine revolutions per wheel revolution in forward gear ``gear`` (1-based), incl. final drive."""
        return self.gear_ratios[gear - 1] * self.final_drive

    def engine_torque_nm(self, rpm):
        """Full-throttle engine torque, N·m, at engine speed ``rpm`` (scalar or array).

        Piecewise linear through (torque_rpm, torque_nm), flat beyond the end points. This is the
        curve itself; the fuel cut at the limiter is applied in :meth:`wheel_force_n`.
        """
        out = np.interp(rpm, self._trpm, self._tnm)
        return float(out) if np.ndim(out) == 0 else out

    def rpm_at(self, speed_ms, gear: int):
        """Engine speed, rpm, at road speed ``speed_ms`` (m/s) in ``gear`` with no clutch/tyre slip.

        Not clamped to idle or the limiter (the simulation clamps what it reports)."""
        k = self.overall_ratio(gear) * RPM_PER_RAD_S / self.wheel_radius_m
        if np.ndim(speed_ms):
            return np.asarray(speed_ms, dtype=np.float64) * k
        return float(speed_ms) * k

    def speed_at_rpm_ms(self, rpm: float, gear: int) -> float:
        """Road speed, m/s, at which the engine turns ``rpm`` in ``gear`` (inverse of :meth:`rpm_at`)."""
        return rpm / RPM_PER_RAD_S / self.overall_ratio(gear) * self.wheel_radius_m

    def max_gear_speed_ms(self, gear: int) -> float:
        """Road speed, m/s, at the rev limiter in ``gear``."""
        return self.speed_at_rpm_ms(self.limiter_rpm, gear)

    def max_gear_speeds_ms(self) -> tuple[float, ...]:
        """Road speed at the limiter for every forward gear, m/s (index 0 = 1st gear)."""
        return tuple(self.max_gear_speed_ms(g) for g in range(1, self.num_gears + 1))

    def wheel_force_n(self, speed_ms, gear: int):
        """Full-throttle tractive force at the driven wheels, N, at ``speed_ms`` in ``gear``.

        Below idle the clutch slips and idle torque is transmitted (so a car can pull away);
        at or above the limiter the fuel is cut and the force is zero.
        """
        rpm = self.rpm_at(speed_ms, gear)
        torque = np.interp(np.maximum(rpm, self.idle_rpm), self._trpm, self._tnm)
        force = torque * self.overall_ratio(gear) * self.drivetrain_efficiency / self.wheel_radius_m
        force = np.where(rpm >= self.limiter_rpm, 0.0, force)
        return float(force) if np.ndim(force) == 0 else force

    def resistance_n(self, speed_ms):
        """Aerodynamic drag plus rolling resistance, N, at road speed ``speed_ms`` (m/s, ≥ 0)."""
        v = np.asarray(speed_ms, dtype=np.float64) if np.ndim(speed_ms) else float(speed_ms)
        return 0.5 * self.air_density * self.cda_m2 * v * v + self.rolling_coeff * self.mass_kg * G

    # ------------------------------------------------------------------ the true optimum
    def _force_margin(self, rpm, gear: int):
        """T(r)·gₙ − T(r·gₙ₊₁/gₙ)·gₙ₊₁ (N·m of wheel torque, ratios incl. final drive).

        Positive while gear n pulls harder than gear n+1 at the same road speed. The efficiency and
        the wheel radius are common factors and drop out of the sign.
        """
        gn, gn1 = self.overall_ratio(gear), self.overall_ratio(gear + 1)
        r = np.asarray(rpm, dtype=np.float64)
        # Below idle the clutch slips at idle torque, exactly as in wheel_force_n.
        t_n = np.interp(np.maximum(r, self.idle_rpm), self._trpm, self._tnm)
        t_n1 = np.interp(np.maximum(r * gn1 / gn, self.idle_rpm), self._trpm, self._tnm)
        return t_n * gn - t_n1 * gn1

    def optimal_upshift_rpm(self, gear: int) -> float:
        """The time-optimal rpm to shift from ``gear`` to ``gear + 1``, rpm (ignores shift time).

        Solves T(r)·gₙ = T(r·gₙ₊₁/gₙ)·gₙ₊₁ for the engine speed r in gear n: the first point,
        scanning up from idle, at which gear n+1 starts to give more wheel force at the same road
        speed. Found on a fine grid, then bisected to ~1e-9 rpm, so it is exact for the piecewise
        linear curve. Returns :attr:`limiter_rpm` if gear n stays at least as strong up to the
        limiter (a torque curve that does not fall off), and also for the top gear.
        """
        if not 1 <= gear <= self.num_gears:
            raise ValueError(f"gear {gear} out of range 1..{self.num_gears}")
        if gear == self.num_gears:
            return float(self.limiter_rpm)
        grid = np.linspace(self.idle_rpm, self.limiter_rpm, 4001)
        margin = self._force_margin(grid, gear)
        # First sign change from ≥ 0 (gear n at least as strong) to < 0 (gear n+1 stronger).
        crossings = np.nonzero((margin[:-1] >= 0.0) & (margin[1:] < 0.0))[0]
        if crossings.size == 0:
            return float(self.limiter_rpm)
        lo, hi = float(grid[crossings[0]]), float(grid[crossings[0] + 1])
        for _ in range(80):  # deterministic bisection; 80 halvings of ≤ 2 rpm is far below 1e-9
            mid = 0.5 * (lo + hi)
            if self._force_margin(mid, gear) >= 0.0:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-10:
                break
        return 0.5 * (lo + hi)

    def optimal_upshift_rpms(self) -> dict[int, float]:
        """:meth:`optimal_upshift_rpm` for every gear that has a next gear: {gear: rpm}."""
        return {g: self.optimal_upshift_rpm(g) for g in range(1, self.num_gears)}


#: The demo cars. ``gt_coupe`` has a torque curve that falls off hard near the limiter, so its
#: optimal upshift points are well below the limiter (a driver shifting at the limiter loses time);
#: ``club_hatch`` has a curve that is flat to the limiter, so shifting at the limiter is optimal.
CARS: dict[str, CarSpec] = {
    "gt_coupe": CarSpec(
        name="gt_coupe",
        mass_kg=1320.0,
        wheel_radius_m=0.34,
        gear_ratios=(3.20, 2.19, 1.63, 1.29, 1.06, 0.89),
        final_drive=3.55,
        torque_rpm=(1000.0, 2000.0, 3000.0, 4000.0, 4500.0, 5000.0, 5500.0, 6000.0, 6500.0, 7000.0, 7500.0),
        torque_nm=(300.0, 410.0, 490.0, 535.0, 550.0, 550.0, 545.0, 535.0, 505.0, 415.0, 255.0),
        idle_rpm=900.0,
        limiter_rpm=7500.0,
        cda_m2=0.72,
        air_density=1.2,
        rolling_coeff=0.012,
        drivetrain_efficiency=0.88,
        max_brake_g=1.25,
        max_lat_g=1.25,
        shift_time_s=0.18,
    ),
    "club_hatch": CarSpec(
        name="club_hatch",
        mass_kg=1100.0,
        wheel_radius_m=0.31,
        gear_ratios=(3.45, 2.12, 1.52, 1.19, 0.97, 0.82),
        final_drive=4.06,
        torque_rpm=(1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 6800.0),
        torque_nm=(120.0, 150.0, 172.0, 186.0, 195.0, 199.0, 200.0),
        idle_rpm=850.0,
        limiter_rpm=6800.0,
        cda_m2=0.66,
        air_density=1.2,
        rolling_coeff=0.013,
        drivetrain_efficiency=0.90,
        max_brake_g=1.05,
        max_lat_g=1.05,
        shift_time_s=0.25,
    ),
}
