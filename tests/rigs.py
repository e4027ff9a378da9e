"""Test rigs: a scripted car whose every value is known, and helpers to await live state."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import numpy as np


class ScriptedSim:
    """A stand-in for rt.sim.driver.Simulation with constant, known values (same step_block keys)."""

    def __init__(self, speed_ms=30.0, rpm=6543.0, gear=3, throttle=0.75, brake=0.0, clutch=1.0, steer=-0.05,
                 lap_count=2, lap_time_s=41.234, last_lap_s=98.765, best_lap_s=97.654, rate_hz=100.0):
        self.values = dict(speed_ms=speed_ms, rpm=rpm, gear=gear, throttle=throttle, brake=brake, clutch=clutch,
                           steer=steer, lap_count=lap_count, lap_time_s=lap_time_s, last_lap_s=last_lap_s,
                           best_lap_s=best_lap_s)
        self.period_ns = int(1e9 / rate_hz)
        self.k = 0
        self.truth = SimpleNamespace(track_length_m=3000.0)

    def step_block(self, n: int) -> dict[str, np.ndarray]:
        v = self.values
        idx = np.arange(self.k, self.k + n)
        self.k += n
        full = lambda value, dtype=np.float64: np.full(n, value, dtype=dtype)  # noqa: E731
        return {
            "t_ns": idx.astype(np.int64) * self.period_ns,
            "speed_ms": full(v["speed_ms"]),
            "rpm": full(v["rpm"]),
            "gear": full(v["gear"], np.int8),
            "throttle": full(v["throttle"]),
            "brake": full(v["brake"]),
            "clutch": full(v["clutch"]),
            "steer": full(v["steer"]),
            "lap_count": full(v["lap_count"], np.int32),
            "lap_time_s": full(v["lap_time_s"]),
            "last_lap_s": full(v["last_lap_s"]),
            "best_lap_s": full(v["best_lap_s"]),
            "lap_distance_m": (idx % 3000).astype(np.float64),
            "norm_pos": (idx % 3000) / 3000.0,
            "x": full(100.25), "y": full(3.0), "z": full(-50.5),
            "vx": full(v["speed_ms"]), "vy": full(0.0), "vz": full(0.0),
            "heading_rad": full(0.0), "g_lat": full(0.1), "g_long": full(0.2),
            "sector": full(1, np.int8), "sector_time_s": full(10.0),
            "last_sector_times_s": np.full((n, 3), -1.0),
            "max_rpm": full(8000.0), "num_gears": full(6, np.int8), "in_pit": full(0, np.int8),
            "odometer_m": idx.astype(np.float64),
        }


def wait_until(predicate, timeout: float = 10.0, manager=None):
    """Await ``predicate()`` becoming truthy, a consumer pass at a time (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if manager is not None:
            manager.wait_passes(1, timeout=1.0)
        else:
            time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago (for a game-side server to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def feed_config(**kw):
    """A Config on loopback with ephemeral listening ports and a fast receive period."""
    from rt.config import Config

    base = dict(listen="127.0.0.1", game_host="127.0.0.1", tt_port=0, pcars_port=0, ksudp_port=9, recv_period_ms=1.0)
    base.update(kw)
    return Config(**base)
