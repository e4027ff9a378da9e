"""Reading ``data.h5``: a feed's canonical frames with the game's sector splits, the game's facts, the
field of cars around the player (ACC), row counts."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import h5py
import numpy as np

from ..errors import StoreError
from ..protocols import Protocols
from ..protocols.canonical import (ACC_CAR_KIND, ACC_FOCUS_KIND, ACC_NO_TIME, CANONICAL_DTYPE, CANONICAL_NAMES,
                                   FRAME_EXTRAS, focused_rows)
from ..protocols.acc import car_model_name
from ..protocols.layout import PacketLayout, decode_text

T = TypeVar("T")


def read_canonical(f: h5py.File, feed: str, start: int, end: int | None,
                   protocols: Protocols) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Canonical rows ``start:end`` of ``feed`` and their per-frame extras (``Frames.extras``):
    always ``sector_times_s``, the game's sector splits (n × 3 s, NaN where a frame's kind has
    none: see ``PacketLayout.sectors``), and what :data:`~rt.protocols.canonical.FRAME_EXTRAS`
    takes from the rows of the kinds present (ACC's lap records)."""
    group = f.get(f"{feed}/canonical")
    if group is None:
        return np.zeros(0, dtype=CANONICAL_DTYPE), {"sector_times_s": np.zeros((0, 3))}
    total = group["t_ns"].shape[0]
    end = total if end is None else min(end, total)
    start = max(0, min(start, end))
    n = end - start
    rows = np.zeros(n, dtype=CANONICAL_DTYPE)
    for name in CANONICAL_NAMES:
        rows[name] = group[name][start:end]
    extras: dict[str, np.ndarray] = {"sector_times_s": np.full((n, 3), np.nan)}
    kinds = [k.decode() if isinstance(k, bytes) else str(k) for k in group.attrs.get("kinds", [])]
    stored = group["kind"][:end] if kinds else None
    for kind_id, kind in enumerate(kinds):
        names = list(protocols[kind].sectors) if kind in protocols.kind_id else []
        more = FRAME_EXTRAS.get(kind)
        if not (names or more) or f"{feed}/{kind}" not in f:
            continue
        assert stored is not None  # read above whenever there are kinds
        is_kind = stored == kind_id
        mine = is_kind[start:end]
        made = np.cumsum(is_kind) - 1  # the k-th frame of the kind …
        kind_rows = _frame_rows(f, feed, kind, made[start:end][mine])  # … made from these rows
        if not kind_rows.size:
            continue
        lo, hi = int(kind_rows.min()), int(kind_rows.max()) + 1
        block = f[f"{feed}/{kind}/rows"][lo:hi][kind_rows - lo]
        for k, name in enumerate(names[:3]):
            extras["sector_times_s"][mine, k] = block[name]
        if more is not None:
            for name, values in more(block).items():
                column = extras.get(name)
                if column is None:
                    fill = {"b": False, "f": np.nan}.get(values.dtype.kind, 0 if values.dtype.kind == "u" else -1)
                    column = extras[name] = np.full((n, *values.shape[1:]), fill, dtype=values.dtype)
                column[mine] = values
    return rows, extras


def _frame_rows(f: h5py.File, feed: str, kind: str, frames: np.ndarray) -> np.ndarray:
    """Rows of ``feed/kind`` that made its ``frames``-th canonical frames. Every row makes a frame
    for most kinds (row k is frame k); of ACC's car updates only the focused car's do, found again
    by the rule the feed applied (:func:`~rt.protocols.canonical.focused_rows`)."""
    if kind != ACC_CAR_KIND:
        return frames
    focus = f.get(f"{feed}/{ACC_FOCUS_KIND}")
    if focus is None:
        return np.zeros(0, dtype=np.int64)
    cars = f[f"{feed}/{kind}"]
    keep = focused_rows(focus["t_ns"][:], focus["rows"].fields("focusedCarIndex")[:], cars["t_ns"][:],
                        cars["rows"].fields("carIndex")[:])
    made = np.flatnonzero(keep)
    return made[frames[frames < len(made)]]


#: Public name of :func:`_frame_rows` (the exports read the game's fields of each frame with it).
frame_rows = _frame_rows


def read_facts(f: h5py.File, feed: str, t0_ns: int, t1_ns: int, protocols: Protocols) -> dict[str, float]:
    """The game's own facts (``max_rpm``, ``track_length_m``: see ``PacketLayout.facts``) for the
    packets of ``feed`` received in ``t0_ns..t1_ns``, or before it when none fall inside.

    A fact is the median of the packets' positive values (menus send 0); absent when no packet
    states it.
    """
    facts: dict[str, list[float]] = {}
    group = f.get(feed)
    if group is None:
        return {}
    for kind in group:
        if kind == "canonical" or kind not in protocols.kind_id:
            continue
        layout = protocols[kind]
        if not layout.facts:
            continue
        t = group[kind]["t_ns"]
        total = t.shape[0]
        times = t[:]
        lo, hi = int(np.searchsorted(times, t0_ns, side="left")), int(np.searchsorted(times, t1_ns, side="right"))
        if lo >= hi:  # nothing inside the span: the last packets before it speak for it
            lo, hi = max(0, min(lo, total) - 64), min(lo, total)
        if lo >= hi:
            continue
        block = group[kind]["rows"].fields(list(layout.facts.values()))[lo:hi]
        for fact, name in layout.facts.items():
            values = block[name].astype(np.float64)
            values = values[np.isfinite(values) & (values > 0)]
            if values.size:
                facts.setdefault(fact, []).append(float(np.median(values)))
    return {fact: max(values) for fact, values in facts.items()}


def read_names(f: h5py.File, feed: str, protocols: Protocols) -> dict[str, str]:
    """What the game named (``car``, ``driver``, ``track``…: see ``PacketLayout.names``) in
    ``feed``'s stored packets: the last non-empty value of each (menus send empty names)."""
    names: dict[str, str] = {}
    group = f.get(feed)
    if group is None:
        return names
    for kind in group:
        if kind == "canonical" or kind not in protocols.kind_id or not protocols[kind].names:
            continue
        layout = protocols[kind]
        rows = group[kind]["rows"]
        # names packets are rare (handshakes, strings packets); the last few say what the game said last
        block = rows.fields(list(layout.names.values()))[max(0, rows.shape[0] - 64):]
        for key, name in layout.names.items():
            wide = layout[name].wtype == "wchar"
            for raw in block[name][::-1]:
                text = decode_text(bytes(raw), wide).strip()
                if text:
                    names[key] = text
                    break
    return names


ACC_ENTRY_KIND = "acc_entry_list_car"


def read_field(f: h5py.File, feed: str, t0_ns: int, t1_ns: int) -> list[dict]:
    """The field of cars of ``feed`` (ACC sends every car, not only the focused one) during
    ``t0_ns..t1_ns`` (receive times, ns; the update holding ``t1_ns`` is taken whole): one dict
    per car with a car update in that window, sorted by best lap (cars without one last), then
    car index.

    Keys: ``car_index``, ``laps`` (completed, at the car's last update in the window),
    ``best_lap_ms`` (its ``bestSessionLap.laptimeMs`` there: the game's best valid lap of the
    session, ms; None for INT32_MAX), and from the newest entry-list row of the car received by
    ``t1_ns`` (else the first one after): ``race_number``, ``team``, ``driver`` (first and last
    name of its current driver), ``car_model`` (the model's name) — None where the entry list
    never named the car. An empty list for a feed without car updates.
    """
    cars = f.get(f"{feed}/{ACC_CAR_KIND}")
    if cars is None:
        return []
    times = cars["t_ns"][:]
    # Whole updates: ACC sends the field after each realtime update, the focused car anywhere in
    # it, so the window runs to the next realtime update after t1_ns (the cars sent after the
    # focused one in its last update belong to the run too).
    focus = f.get(f"{feed}/{ACC_FOCUS_KIND}")
    end = int(np.searchsorted(times, t1_ns, side="right"))
    if focus is not None:
        ft = focus["t_ns"][:]
        k = int(np.searchsorted(ft, t1_ns, side="right"))
        end = len(times) if k >= len(ft) else max(end, int(np.searchsorted(times, ft[k], side="left")))
    lo, hi = int(np.searchsorted(times, t0_ns, side="left")), end
    if lo >= hi:
        return []
    block = cars["rows"].fields(["carIndex", "laps", "bestSessionLap.laptimeMs"])[lo:hi]
    index = block["carIndex"].astype(np.int64)
    # Each car's last row in the window: the first of the reversed rows.
    last = len(index) - 1 - np.unique(index[::-1], return_index=True)[1]
    names = _entry_names(f, feed, t1_ns)
    field = []
    for k in last.tolist():
        car = int(index[k])
        best = int(block["bestSessionLap.laptimeMs"][k])
        field.append({"car_index": car, "race_number": None, "team": None, "driver": None, "car_model": None,
                      **names.get(car, {}), "best_lap_ms": best if 0 < best < ACC_NO_TIME else None,
                      "laps": int(block["laps"][k])})
    field.sort(key=lambda c: (c["best_lap_ms"] is None, c["best_lap_ms"] or 0, c["car_index"]))
    return field


def _entry_names(f: h5py.File, feed: str, t1_ns: int) -> dict[int, dict]:
    """Car index → race number, team, driver, car model from the newest entry-list rows at or
    before ``t1_ns`` (rows after it only for cars named no earlier)."""
    entries = f.get(f"{feed}/{ACC_ENTRY_KIND}")
    if entries is None:
        return {}
    times = entries["t_ns"][:]
    rows = entries["rows"][:]
    # Oldest first, rows after t1_ns before all others: the last row written per car wins.
    order = np.lexsort((np.arange(len(times)), times <= t1_ns))
    out: dict[int, dict] = {}
    for k in order.tolist():
        row = rows[k]
        d = int(row["currentDriverIndex"])
        driver = None
        if d < min(int(row["driverCount"]), len(row["drivers.firstName"])):
            driver = " ".join(x for x in (decode_text(bytes(row["drivers.firstName"][d]), False),
                                          decode_text(bytes(row["drivers.lastName"][d]), False)) if x) or None
        out[int(row["carIndex"])] = {"race_number": int(row["raceNumber"]),
                                     "team": decode_text(bytes(row["teamName"]), False),
                                     "driver": driver, "car_model": car_model_name(int(row["carModelType"]))}
    return out


def read_closed(path: str | Path, read: Callable[[h5py.File], T]) -> T:
    """``read(file)`` on a closed recording's ``data.h5``, opened for reading; StoreError when
    the file is missing or unreadable."""
    try:
        with h5py.File(path, "r") as f:
            return read(f)
    except (OSError, KeyError, ValueError) as exc:
        raise StoreError(f"{Path(path).name}: unreadable: {exc}") from exc


def kind_counts(path: str | Path) -> dict[tuple[str, str], int]:
    """Rows per (feed, packet kind or "canonical") in an HDF5 file; StoreError if unreadable."""
    counts: dict[tuple[str, str], int] = {}
    try:
        with h5py.File(path, "r") as f:
            for feed in f:
                for kind in f[feed]:
                    counts[(feed, kind)] = int(f[feed][kind]["t_ns"].shape[0])
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise StoreError(f"{Path(path).name}: unreadable: {exc}") from exc
    return counts
