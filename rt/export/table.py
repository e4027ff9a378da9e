"""Exports: one feed of a recording (or a run of it, or chosen laps) as a table, to Parquet or CSV.

One row per canonical frame. Columns, in order:

* ``time_s`` (s since the first exported frame), ``lap`` (the lap model's number of the frame's lap,
  :func:`rt.analysis.laps.find_laps`; -1 before the first lap), ``lap_valid`` (that lap counts for
  best/mean), ``lap_ms`` (that lap's time, ms; null while unfinished), ``distance_m`` (along the lap,
  m: ``p`` × the game's track length where the game states one, else speed integrated over time
  from the lap's first frame; the file metadata ``distance_source`` says which);
* every canonical channel (:data:`~rt.protocols.canonical.CANONICAL_DTYPE`, NaN / -1 where unknown,
  exactly as in ``data.h5``);
* the game's decoded fields of the packet that made the frame (``data.h5``'s ``FEED/KIND/rows``),
  arrays flattened to ``name[i]`` (``name[i][j]`` for two dimensions), texts decoded to strings; a
  field named like a column above is prefixed ``game.`` (AC's ``brake`` is ``game.brake``); null on
  frames made by a kind without that field.

Units: Parquet keeps each column's unit in its Arrow field metadata (``unit``) and the export's
facts (recording, game, track, car, feed, run, laps, version) in the file metadata; CSV has one
header row ``name [unit]`` (``name`` alone without a unit), so ``pandas.read_csv(path)`` and
spreadsheets read it as it is.

A run exports its primary feed's frames (its markers), never merged feeds: the game's fields
belong to one feed's packets. The recording being written cannot be exported (a conflict): its
``data.h5`` is open in the writer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from ..analysis.frames import Frames
from ..analysis.laps import Lap, find_laps
from ..errors import Conflict, Invalid, NotFound, StoreError
from ..protocols import FEEDS, Protocols
from ..protocols.canonical import CANONICAL_NAMES, CANONICAL_UNITS
from ..protocols.layout import decode_text
from ..store.h5read import frame_rows, read_canonical, read_facts, read_names
from ..store.manifest import read as read_json
from .motec import write_motec

#: Version of the exported table's layout (file metadata ``export_version``).
EXPORT_VERSION = 1
FORMATS = ("csv", "parquet", "motec")
LAP_COLUMNS = {"time_s": "s", "lap": "", "lap_valid": "", "lap_ms": "ms", "distance_m": "m"}
#: Rows per slice (and Parquet row group) when a table is written: pyarrow's own default row group
#: (what pandas writes too); drives the progress bar. Columns go to Arrow without a copy.
WRITE_ROWS = 1 << 20


@dataclass
class Column:
    """One exported column: ``values`` (n), ``unit``, and ``valid`` (None: every row known; else a
    bool mask, the rest written as null)."""

    values: np.ndarray
    unit: str = ""
    valid: np.ndarray | None = None


@dataclass
class Selection:
    """The frames an export holds, their columns and their facts."""

    meta: dict
    frames: Frames
    laps: list[Lap]
    columns: dict[str, Column] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)


def parse_laps(text: str | None) -> list[int] | None:
    """``"3,5-7"`` → [3, 5, 6, 7] (lap numbers 1..9999; a range either way round); None for None or
    blank; :class:`~rt.errors.Invalid` for anything else."""
    if text is None or not text.strip():
        return None
    laps: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*([1-9][0-9]{0,3})\s*(?:-\s*([1-9][0-9]{0,3})\s*)?", part)
        if not m:
            raise Invalid("bad_laps", f"laps {text!r}: expected lap numbers (1..9999) and ranges, like 3,5-7")
        first, last = sorted((int(m.group(1)), int(m.group(2) or m.group(1))))
        laps.update(range(first, last + 1))
    return sorted(laps)


def path_safe(text: str | None) -> str:
    """A name fit for one path component of a Hive layout (``unknown`` for none)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", (text or "").strip()).strip("._")
    return safe[:100] or "unknown"


class Exporter:
    """Exports of the recordings under ``data_dir`` (runs from ``data_dir/sessions``).

    ``active()`` names the recording being written (None: none), which cannot be exported."""

    def __init__(self, data_dir: str | Path, protocols: Protocols, active: Callable[[], str | None] = lambda: None):
        self.data_dir = Path(data_dir)
        self.protocols = protocols
        self.active = active

    # ---- selection ------------------------------------------------------------------------------

    def find_run(self, run_id: str) -> dict:
        """The run ``run_id`` of any session (its markers, ``feed_name``, ``recording_id``)."""
        for path in sorted((self.data_dir / "sessions").glob("*.json")):
            try:
                session = read_json(path)
            except StoreError:
                continue
            for run in session.get("runs", []):
                if run.get("id") == run_id:
                    return run
        raise NotFound("run", run_id)

    def select(self, rec_id: str, feed: str, run_id: str | None = None, laps: list[int] | None = None,
               progress: Callable[[str], None] = lambda _: None) -> Selection:
        """The frames of ``feed`` of recording ``rec_id`` (of run ``run_id`` only; of ``laps`` only),
        with every column. NotFound for an unknown recording, feed, run, or a lap not in the
        selection; Conflict for the recording being written."""
        rec_dir = self.data_dir / rec_id
        if not re.fullmatch(r"[0-9a-f-]{36}", rec_id) or not (rec_dir / "manifest.json").exists():
            raise NotFound("recording", rec_id)
        if feed not in FEEDS:
            raise NotFound("feed", feed)
        if self.active() == rec_id:
            raise Conflict("recording_active", "the recording is being written; stop it before exporting")
        manifest = read_json(rec_dir / "manifest.json")
        start, end, run = 0, None, None
        if run_id is not None:
            run = self.find_run(run_id)
            if run.get("recording_id") != rec_id or run.get("feed_name") != feed:
                raise NotFound("run", run_id, f"no run {run_id} of feed {feed} in recording {rec_id}")
            start, end = int(run["start_marker"]), run["end_marker"]
        progress("reading data.h5")
        try:
            with h5py.File(rec_dir / "data.h5", "r") as f:
                if f.get(f"{feed}/canonical") is None:
                    raise NotFound("feed", feed, f"recording {rec_id} has no frames of feed {feed}")
                rows, extras = read_canonical(f, feed, start, end, self.protocols)
                facts = read_facts(f, feed, int(rows["t_ns"][0]), int(rows["t_ns"][-1]), self.protocols) if len(rows) else {}
                named = read_names(f, feed, self.protocols)
                # read_canonical starts at ``start`` whenever it found rows
                game = _game_columns(f, feed, start, start + len(rows), self.protocols) if len(rows) else {}
        except (OSError, KeyError, ValueError) as exc:
            raise StoreError(f"data.h5 of {rec_id}: unreadable: {exc}") from exc
        if not len(rows):
            raise NotFound("frames", feed, f"no frames of feed {feed} in the selection")
        progress("finding laps")
        frames = Frames.from_rows(rows, extras, {"feed_name": feed, **facts})
        found = list(find_laps(frames))
        lap_cols, source = _lap_columns(frames, found, facts.get("track_length_m"))
        keep = np.ones(len(frames), dtype=bool)
        chosen = found
        if laps is not None:
            have = {lap.lap for lap in found}
            missing = [n for n in laps if n not in have]
            if missing:
                raise NotFound("lap", str(missing[0]), f"no lap {', '.join(map(str, missing))} in the selection "
                               f"(laps {', '.join(str(lap.lap) for lap in found) or 'none'})")
            keep = np.isin(lap_cols["lap"].values, laps)
            chosen = [lap for lap in found if lap.lap in laps]
        # all frames: views, not copies (a whole hour is ~1 GB of columns)
        index = slice(None) if keep.all() else np.flatnonzero(keep)
        t = frames["t_ns"][index]
        columns = {"time_s": Column((t - t[0]) / 1e9, "s")}
        columns.update({k: Column(c.values[index], c.unit, None if c.valid is None else c.valid[index])
                        for k, c in lap_cols.items()})
        columns.update({name: Column(frames[name][index], CANONICAL_UNITS[name]) for name in CANONICAL_NAMES})
        for name, col in game.items():
            key = f"game.{name}" if name in columns else name
            columns[key] = Column(col.values[index], col.unit, None if col.valid is None else col.valid[index])
        meta = {
            "recording_id": rec_id, "recording_name": manifest.get("name"), "game": manifest.get("game"),
            # what the client named the recording wins; else what the game named (the driver only the game names)
            "track": manifest.get("track") or named.get("track"), "car": manifest.get("car") or named.get("car"),
            "driver": named.get("driver"),
            "feed": feed, "run_id": run_id, "laps": laps, "frames": int(len(t)),
            "distance_source": source, "export_version": EXPORT_VERSION,
            "track_length_m": facts.get("track_length_m"),
        }
        return Selection(meta, frames.take(index), chosen, columns)

    # ---- writing --------------------------------------------------------------------------------

    def write(self, selection: Selection, fmt: str, path: str | Path,
              step: Callable[[int], None] = lambda _: None) -> list[Path]:
        """Write ``selection`` as ``fmt`` (csv, parquet, motec) to ``path``; returns the files written.
        ``step(rows)`` is called as slices of rows are written (progress). ``motec`` writes ``path``
        (``.ld``) and its ``.ldx`` beside it."""
        path = Path(path)
        if fmt == "parquet":
            write_parquet(selection, path, step)
        elif fmt == "csv":
            write_csv(selection, path, step)
        elif fmt == "motec":
            ld = path.with_suffix(".ld")
            write_motec(ld, ld.with_suffix(".ldx"), **motec_arguments(selection))
            step(len(selection))
            return [ld, ld.with_suffix(".ldx")]
        else:
            raise Invalid("bad_format", f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        return [path]


def hive_path(directory: str | Path, selection: Selection) -> Path:
    """``DIR/track=…/car=…/recording=…/FEED.parquet`` (names made path-safe): a directory of such
    exports reads as one dataset partitioned by track, car and recording."""
    m = selection.meta
    return (Path(directory) / f"track={path_safe(m['track'])}" / f"car={path_safe(m['car'])}"
            / f"recording={m['recording_id']}" / f"{m['feed']}.parquet")


# ---- columns --------------------------------------------------------------------------------------

def _lap_columns(frames: Frames, laps: list[Lap], track_length_m: float | None) -> tuple[dict[str, Column], str]:
    """``lap``, ``lap_valid``, ``lap_ms``, ``distance_m`` per frame, and where distance came from."""
    n = len(frames)
    number = np.full(n, -1, dtype=np.int32)
    valid = np.zeros(n, dtype=bool)
    time_ms = np.zeros(n, dtype=np.int32)
    timed = np.zeros(n, dtype=bool)
    distance = np.full(n, np.nan)
    source = "track_length" if track_length_m else "speed"
    t_s = frames.t_s
    speed = np.nan_to_num(np.asarray(frames["speed_kmh"], dtype=np.float64)) / 3.6  # m/s; unknown counts as still
    for lap in laps:
        s = slice(lap.start, lap.end)
        number[s], valid[s] = lap.lap, lap.valid
        if lap.time_ms is not None:
            time_ms[s], timed[s] = int(lap.time_ms), True
        if track_length_m and lap.p is not None:
            distance[s] = lap.p * track_length_m
        else:
            if track_length_m:
                source = "track_length+speed"  # some laps without positions
            dt = np.diff(t_s[s], prepend=t_s[lap.start])
            distance[s] = np.cumsum(speed[s] * dt)
    return {"lap": Column(number), "lap_valid": Column(valid), "lap_ms": Column(time_ms, "ms", timed),
            "distance_m": Column(distance, "m")}, source


def _game_columns(f: h5py.File, feed: str, start: int, end: int, protocols: Protocols) -> dict[str, Column]:
    """The game's decoded fields of the packets that made canonical frames ``start:end`` of
    ``feed``: row k of a kind made that kind's k-th frame (ACC's car updates: see
    :func:`rt.store.h5read.frame_rows`)."""
    group = f[f"{feed}/canonical"]
    kinds = [k.decode() if isinstance(k, bytes) else str(k) for k in group.attrs.get("kinds", [])]
    n = end - start
    out: dict[str, Column] = {}
    if not kinds:
        return out
    stored = group["kind"][:end]
    for kind_id, kind in enumerate(kinds):
        if kind not in protocols.kind_id or f"{feed}/{kind}" not in f:
            continue
        is_kind = stored == kind_id
        mine = is_kind[start:end]
        made = np.cumsum(is_kind) - 1
        rows_at = frame_rows(f, feed, kind, made[start:end][mine])
        if len(rows_at) < int(mine.sum()):  # frames whose rows are gone stay null
            mine[np.flatnonzero(mine)[len(rows_at):]] = False
        if not len(rows_at):
            continue
        lo, hi = int(rows_at.min()), int(rows_at.max()) + 1
        block = f[f"{feed}/{kind}/rows"][lo:hi]
        if len(rows_at) != hi - lo:  # not every row in the span made a frame (ACC: other cars)
            block = block[rows_at - lo]
        for fld in protocols[kind].fields:
            values = block[fld.name]
            if fld.wtype in ("char", "wchar"):
                # a game repeats a few names over and over: decode each distinct one once
                uniq, inverse = np.unique(values, return_inverse=True)
                texts = np.array([decode_text(bytes(b), fld.wtype == "wchar") for b in uniq.reshape(-1)], dtype=object)
                values = texts[inverse.reshape(values.shape)]
            for suffix, part in _flatten(values):
                _put(out, fld.name + suffix, part, fld.unit, mine, n)
    return out


def _flatten(values: np.ndarray):
    """(suffix, column) per element of an array field: ``[i]``, ``[i][j]``; ``""`` for a scalar."""
    if values.ndim == 1:
        yield "", values
        return
    for idx in np.ndindex(*values.shape[1:]):
        yield "".join(f"[{i}]" for i in idx), values[(slice(None), *idx)]


def _put(out: dict[str, Column], name: str, part: np.ndarray, unit: str, mine: np.ndarray, n: int) -> None:
    col = out.get(name)
    if col is None and mine.all():  # one kind makes every frame (most feeds): the column as it is
        out[name] = Column(np.ascontiguousarray(part), unit)
        return
    if col is None:
        dtype = part.dtype if part.dtype != object else np.dtype(object)
        fill = "" if dtype == object else 0
        col = out[name] = Column(np.full(n, fill, dtype=dtype), unit, np.zeros(n, dtype=bool))
    elif col.valid is None:
        col.valid = np.ones(n, dtype=bool)
    if col.values.dtype != part.dtype and col.values.dtype != object:
        col.values = col.values.astype(np.result_type(col.values.dtype, part.dtype))  # two kinds, one name
    col.values[mine] = part
    assert col.valid is not None
    col.valid[mine] = True
    if col.valid.all():
        col.valid = None


# ---- formats --------------------------------------------------------------------------------------

def _arrow_table(selection: Selection, lo: int, hi: int):
    import pyarrow as pa

    arrays, fields = [], []
    for name, col in selection.columns.items():
        values = col.values[lo:hi]
        mask = None if col.valid is None else ~col.valid[lo:hi]
        arr = pa.array(values, mask=mask, type=pa.string() if values.dtype == object else None)
        arrays.append(arr)
        fields.append(pa.field(name, arr.type, metadata={"unit": col.unit}))
    schema = pa.schema(fields, metadata={"rusty_telemetry": json.dumps(selection.meta, default=str),
                                         **{k: json.dumps(v) if not isinstance(v, str) else v
                                            for k, v in selection.meta.items()}})
    return pa.Table.from_arrays(arrays, schema=schema)


def write_parquet(selection: Selection, path: Path, step: Callable[[int], None] = lambda _: None) -> None:
    """Parquet (zstd), in row groups of :data:`WRITE_ROWS`; units in each field's metadata, the
    export's facts in the file's (each key, and all of them as JSON under ``rusty_telemetry``)."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(selection)
    writer = None
    try:
        for lo in range(0, max(n, 1), WRITE_ROWS):
            table = _arrow_table(selection, lo, min(n, lo + WRITE_ROWS))
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table)
            step(table.num_rows)
    finally:
        if writer is not None:
            writer.close()


def csv_header(selection: Selection) -> list[str]:
    """The CSV header: ``name [unit]``, or ``name`` without a unit."""
    return [f"{name} [{col.unit}]" if col.unit else name for name, col in selection.columns.items()]


def write_csv(selection: Selection, path: Path, step: Callable[[int], None] = lambda _: None) -> None:
    """CSV, one header row ``name [unit]``; null as an empty cell, NaN as ``nan``."""
    import pyarrow.csv as pcsv

    path.parent.mkdir(parents=True, exist_ok=True)
    header = csv_header(selection)
    n = len(selection)
    with pcsv.CSVWriter(path, _arrow_table(selection, 0, 0).rename_columns(header).schema) as writer:
        for lo in range(0, n, WRITE_ROWS):
            table = _arrow_table(selection, lo, min(n, lo + WRITE_ROWS)).rename_columns(header)
            writer.write_table(table)
            step(table.num_rows)


# ---- MoTeC (rt/export/motec.py) ----------------------------------------------------------------

def motec_arguments(selection: Selection) -> dict:
    """The arguments of ``rt.export.motec.write_motec`` but the paths: ``channels`` (canonical
    channel → (float64 values, unit)), ``times_s`` (s from the first frame), ``meta`` (driver,
    vehicle, venue, datetime of the first frame (UTC), feed, game), ``laps`` ((start_s, end_s) of
    each lap, in ``times_s`` seconds: its line crossings as the lap model places them; a lap with
    one crossing only gives (t, t): a beacon, no lap time)."""
    cols = selection.columns
    t_ns = selection.frames["t_ns"]
    times = cols["time_s"].values.astype(np.float64)
    channels = {name: (np.asarray(cols[name].values, dtype=np.float64), CANONICAL_UNITS[name])
                for name in CANONICAL_NAMES if name != "t_ns"}
    channels["distance_m"] = (np.asarray(cols["distance_m"].values, dtype=np.float64), "m")
    for name in ("last_lap_ms", "best_lap_ms"):  # our -1 "none yet" would read as a lap of -0.001 s: i2 shows 0
        values, unit = channels[name]
        channels[name] = (np.where(values < 0, 0.0, values), unit)
    m = selection.meta
    meta = {"driver": m.get("driver") or "", "vehicle": m.get("car") or "", "venue": m.get("track") or "",
            "datetime": datetime.fromtimestamp(int(t_ns[0]) / 1e9).astimezone() if len(t_ns) else None,  # local, as a logger's
            "feed": m["feed"], "game": m.get("game") or ""}
    laps = []
    for lap in selection.laps:
        if lap.frames is None or not len(t_ns):
            continue
        # where the lap analysis puts the line (crossings interpolated between frames, or the game's
        # timer), moved from its run's first frame to the export's; a lap seen crossing only one line
        # (begun before the recording, or unfinished) gives that line alone, (t, t), and no lap time
        base = (int(lap.frames["t_ns"][0]) - int(t_ns[0])) / 1e9
        ends = [base + x for x in (lap.start_s, lap.end_s) if x is not None]
        if ends:
            laps.append((ends[0], ends[-1]))
    return {"channels": channels, "times_s": times, "meta": meta, "laps": laps}
