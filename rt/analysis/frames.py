"""What every analysis works on: the frames of one run, as canonical channels.

A :class:`Frames` holds, for one run, one numpy array per canonical channel (see
:mod:`rt.protocols.canonical`: ``t_ns``, ``speed_kmh``, ``rpm``, ``gear``, ``throttle``, ``brake``,
``clutch``, ``steer``, ``lap_count``, ``lap_time_ms``, ``last_lap_ms``, ``best_lap_ms``,
``norm_pos``, ``pos_x``, ``pos_y``, ``pos_z``, ``g_lat``, ``g_long``), all of the same length, in
receive-time order. Unknown values are NaN (floats) or -1 (ints), exactly as in the HDF5 file.

``extras`` carries per-frame channels that only some feeds have (e.g. ``sector_times_s``, shape
(n, 3): the game's current-lap sector times, PCARS only; ``feed``: int8 source feed index of each
frame in a merged run; ACC's lap records of the focused car: ``lap_invalid``,
``current_lap_flags`` / ``last_lap_flags`` (u8 n × 4: invalid, valid for best, out-lap, in-lap),
``current_lap_splits_ms`` / ``last_lap_splits_ms`` (int n × 3, ms, −1 none)). ``meta`` carries
per-run facts (``run_id``, ``feed_name``, ``track_length_m`` when the game reports it,
``max_rpm``, ``lost_frames``; ACC runs: ``field``, the whole field's best laps, see
:func:`rt.store.h5read.read_field`).

Analyses are pure functions of a list of Frames (one per run): ``analyze(runs) -> dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import MissingChannels
from ..protocols.canonical import CANONICAL_DTYPE

CHANNELS = CANONICAL_DTYPE.names
#: Longest plain array an analysis returns for plotting.
MAX_PLOT_POINTS = 2000


@dataclass
class Frames:
    """The canonical channels of one run (arrays of equal length), plus extras and meta."""

    channels: dict[str, np.ndarray]
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {len(v) for v in self.channels.values()} | {len(v) for v in self.extras.values()}
        if len(lengths) > 1:
            raise ValueError(f"channels differ in length: {sorted(lengths)}")

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.channels:
            return self.channels[name]
        return self.extras[name]

    def __contains__(self, name: object) -> bool:
        return name in self.channels or name in self.extras

    def __len__(self) -> int:
        return len(self.channels["t_ns"]) if "t_ns" in self.channels else 0

    @property
    def t_s(self) -> np.ndarray:
        """Seconds since the run's first frame (float64)."""
        t = self.channels["t_ns"]
        return (t - t[0]) / 1e9 if len(t) else np.zeros(0)

    @classmethod
    def from_rows(cls, rows: np.ndarray, extras: dict | None = None, meta: dict | None = None) -> "Frames":
        """From a canonical structured array (``CANONICAL_DTYPE``)."""
        return cls({name: np.ascontiguousarray(rows[name]) for name in rows.dtype.names}, extras or {}, meta or {})

    def take(self, index) -> "Frames":
        """The frames at ``index`` (a slice, a boolean mask or integer indices)."""
        return Frames({k: v[index] for k, v in self.channels.items()}, {k: v[index] for k, v in self.extras.items()},
                      dict(self.meta))


def missing_channels(runs: list[Frames], names: tuple[str, ...]) -> list[str]:
    """Those of channels ``names`` that no run knows on any frame (all NaN, or absent)."""
    def known(fr: Frames, name: str) -> bool:
        return name in fr and bool(np.isfinite(np.asarray(fr[name], dtype=np.float64)).any())

    return [name for name in names if not any(known(fr, name) for fr in runs)]


def require_channels(analysis: str, runs: list[Frames], names: tuple[str, ...]) -> None:
    """Raise :class:`~rt.errors.MissingChannels` naming those of ``names`` no run carries (and the
    runs' feeds, from ``meta["feed_name"]``), when the runs have frames at all."""
    if not any(len(fr) for fr in runs):
        return
    missing = missing_channels(runs, names)
    if missing:
        feeds = sorted({str(fr.meta["feed_name"]) for fr in runs if fr.meta.get("feed_name")})
        raise MissingChannels(analysis, missing, feeds)


def downsample(n: int, max_points: int = MAX_PLOT_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spread samples of ``n`` (first and last included)."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def json_num(value, digits: int = 4):
    """A value ready for the JSON of a result: floats rounded to ``digits`` decimals, NaN and ±inf
    as None, numpy scalars as Python numbers, arrays and sequences as (nested) lists of those.

    Integers stay integers; ``-0.0`` becomes ``0.0`` (a rounded tiny negative is no direction).
    Units are the caller's: the value is only rounded, never scaled.
    """
    if value is None:
        return None
    if isinstance(value, (np.ndarray, list, tuple)):
        arr = np.asarray(value)
        if arr.dtype.kind != "f":
            return arr.tolist()
        arr = np.round(arr.astype(np.float64), digits) + 0.0
        out = np.where(np.isfinite(arr), arr, np.nan).tolist()
        return _nan_to_none(out)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    v = float(value)
    return round(v, digits) + 0.0 if np.isfinite(v) else None


def _nan_to_none(values):
    if isinstance(values, list):
        return [_nan_to_none(v) for v in values]
    return None if isinstance(values, float) and values != values else values
