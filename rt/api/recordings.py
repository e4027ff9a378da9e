"""Recordings: list, start, get, stop, delete, the raw feed download (streamed, with Range), the
lap table and lap traces of a feed (computed off the event loop by ``runtime.laps``), and exports
of a feed (CSV, Parquet, MoTeC; built in a temp file off the event loop, then streamed)."""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import tempfile
import uuid

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json

from ..protocols import FEEDS
from ..protocols.canonical import CANONICAL_NAMES
from .errors import ApiError, blocking
from .live import GAMES, USE_CASES
from .validate import json_body, optional_str

bp = Blueprint("recordings", url_prefix="/api/recordings")

#: Bytes per write of a raw download: 1 MiB chunks move >1 GB/s over loopback (4 KiB: ~70 MB/s).
DOWNLOAD_CHUNK = 1 << 20


def recording_id(raw: str) -> str:
    """A recording id from the path: a canonical UUID, else 404 (never a file-system path)."""
    try:
        value = str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(404, "recording_not_found", f"no recording {raw!r}: ids are UUIDs") from None
    if value != raw.lower():
        raise ApiError(404, "recording_not_found", f"no recording {raw!r}: ids are UUIDs")
    return value


@bp.get("")
async def list_recordings(request: Request):
    return json(request.app.ctx.runtime.recordings.list())


@bp.post("")
async def start_recording(request: Request):
    body = json_body(request, allow_empty=True)
    meta = {name: optional_str(body, name, 200) for name in ("name", "track", "car")}
    meta["notes"] = optional_str(body, "notes", 10_000)
    meta["game"] = optional_str(body, "game", 64)
    meta["use_case"] = optional_str(body, "use_case", 64)
    if meta["game"] is not None and meta["game"] not in GAMES:
        raise ApiError(422, "unknown_game", f"game {meta['game']!r} is not one of {', '.join(GAMES)}")
    if meta["use_case"] is not None and meta["use_case"] not in USE_CASES:
        raise ApiError(422, "unknown_use_case", f"use_case {meta['use_case']!r} is not one of {', '.join(USE_CASES)}")
    manifest = await blocking(request.app.ctx.runtime.recordings.start, meta)
    return json(manifest, status=201)


@bp.post("/stop")
async def stop_active(request: Request):
    manifest = await blocking(request.app.ctx.runtime.stop_recording, None)
    return json(manifest)


@bp.get("/<rec_id:str>")
async def get_recording(request: Request, rec_id: str):
    return json(await blocking(request.app.ctx.runtime.recordings.get, recording_id(rec_id)))


@bp.post("/<rec_id:str>/stop")
async def stop_recording(request: Request, rec_id: str):
    manifest = await blocking(request.app.ctx.runtime.stop_recording, recording_id(rec_id))
    return json(manifest)


@bp.delete("/<rec_id:str>")
async def delete_recording(request: Request, rec_id: str):
    await blocking(request.app.ctx.runtime.recordings.delete, recording_id(rec_id))
    return empty(status=204)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single-range header, None for the whole file; 416 if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # RFC 9110: a Range the server does not understand is ignored (whole file)
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    else:  # suffix: the last N bytes
        start, end = max(0, size - int(last)), size
    if start >= size or start >= end:
        raise ApiError(416, "range_not_satisfiable", f"Range {header!r} is outside the {size}-byte file",
                       headers={"Content-Range": f"bytes */{size}"})
    return start, end


@bp.get("/<rec_id:str>/data/<feed_name:str>")
async def download(request: Request, rec_id: str, feed_name: str) -> HTTPResponse | None:
    rec_id = recording_id(rec_id)
    if feed_name not in FEEDS:
        raise ApiError(404, "feed_not_found", f"no feed {feed_name!r}: feeds are {', '.join(FEEDS)}")
    raw = await blocking(request.app.ctx.runtime.recordings.raw_file, rec_id, feed_name)
    try:
        await _stream_raw(request, raw, rec_id, feed_name)
    finally:
        raw.close()
    return None


async def _stream_raw(request: Request, raw, rec_id: str, feed_name: str) -> None:
    """The original bytes of an open raw file (plain or compressed), whole or the asked ``Range``."""
    size = raw.size
    span = _byte_range(request.headers.get("range"), size)
    start, end = span or (0, size)
    headers = {
        "Content-Length": str(end - start),
        "Content-Disposition": f'attachment; filename="{rec_id}-{feed_name}.bin"',
        "Accept-Ranges": "bytes",
    }
    if span:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    loop = asyncio.get_running_loop()
    response = await request.respond(status=206 if span else 200, headers=headers,
                                     content_type="application/octet-stream")
    pos = start
    while pos < end:
        # Never more than the size taken at the start: the file may grow while it is read.
        chunk = await loop.run_in_executor(None, raw.read_at, pos, min(DOWNLOAD_CHUNK, end - pos))
        if not chunk:
            break
        await response.send(chunk)
        pos += len(chunk)
    await response.eof()


#: Export file suffix → (format, content type).
EXPORTS = {"csv": ("csv", "text/csv"), "parquet": ("parquet", "application/vnd.apache.parquet"),
           "ld": ("motec", "application/octet-stream"), "ldx": ("motec", "application/xml")}


@bp.get("/<rec_id:str>/export/<file_name:str>")
async def export(request: Request, rec_id: str, file_name: str) -> HTTPResponse | None:
    """``FEED.csv|parquet|ld|ldx`` of a recording; query ``run`` (a run's frames), ``laps`` (3,5-7).
    Unknown recording, feed, run or lap: 404; a malformed ``laps``: 422; the recording being
    written: 409; ld/ldx without the MoTeC writer: 501."""
    rec_id = recording_id(rec_id)
    feed, _, suffix = file_name.rpartition(".")
    if feed not in FEEDS:
        raise ApiError(404, "feed_not_found", f"no feed {feed!r}: feeds are {', '.join(FEEDS)}")
    if suffix not in EXPORTS:
        raise ApiError(404, "format_not_found", f"no export format {suffix!r}: formats are {', '.join(EXPORTS)}")
    fmt, content_type = EXPORTS[suffix]
    work = tempfile.mkdtemp(prefix="rt-export-")
    try:
        files = await blocking(request.app.ctx.runtime.export, rec_id, feed, fmt, work,
                               request.args.get("run"), request.args.get("laps"))
        path = next(p for p in files if p.suffix == f".{suffix}")
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            headers = {"Content-Length": str(size),
                       "Content-Disposition": f'attachment; filename="{rec_id}-{feed}.{suffix}"'}
            loop = asyncio.get_running_loop()
            response = await request.respond(headers=headers, content_type=content_type)
            pos = 0
            while pos < size:
                chunk = await loop.run_in_executor(None, os.pread, fd, min(DOWNLOAD_CHUNK, size - pos), pos)
                if not chunk:
                    break
                await response.send(chunk)
                pos += len(chunk)
            await response.eof()
        finally:
            os.close(fd)
    finally:
        await blocking(shutil.rmtree, work, True)
    return None


# ---- laps ---------------------------------------------------------------------------------------
#: Channels a lap trace may carry (rt.analysis.traces.TRACE_CHANNELS: the api does not import the
#: analyses; tests/test_lap_traces.py checks they agree).
TRACE_CHANNELS = tuple(name for name in CANONICAL_NAMES if name != "t_ns")
DEFAULT_TRACE_CHANNELS = ("speed_kmh", "throttle", "brake")
#: Largest grid step accepted, m (x=distance) and s (x=time): beyond it a lap is one point anyway.
MAX_STEP = {"distance": 100_000.0, "time": 3600.0}


def _feed_arg(request: Request) -> str:
    feed = request.args.get("feed")
    if feed is None:
        raise ApiError(400, "missing_parameter", f"feed is required: one of {', '.join(FEEDS)}")
    if feed not in FEEDS:
        raise ApiError(404, "feed_not_found", f"no feed {feed!r}: feeds are {', '.join(FEEDS)}")
    return feed


def _number_arg(request: Request, name: str, low: float, high: float) -> float | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be a number, not {raw!r}") from None
    if not (math.isfinite(value) and low < value <= high):
        raise ApiError(422, "invalid_parameter", f"{name} must be above {low:g} and at most {high:g}, not {raw!r}")
    return value


def _trace_args(request: Request) -> dict:
    raw = request.args.get("channels")
    channels = DEFAULT_TRACE_CHANNELS if raw is None else tuple(dict.fromkeys(raw.split(",") if raw else ()))
    unknown = [c for c in channels if c not in TRACE_CHANNELS]
    if unknown:
        raise ApiError(422, "unknown_channel",
                       f"unknown channel {unknown[0]!r}: channels are {', '.join(TRACE_CHANNELS)}")
    x = request.args.get("x", "distance")
    if x not in MAX_STEP:
        raise ApiError(422, "invalid_parameter", f"x {x!r} is not one of distance, time")
    step_m = _number_arg(request, "step_m", 0.0, MAX_STEP["distance"])
    step_s = _number_arg(request, "step_s", 0.0, MAX_STEP["time"])
    ref = None
    raw_ref = request.args.get("ref")
    if raw_ref is not None:
        try:
            ref = int(raw_ref)
        except ValueError:
            raise ApiError(400, "invalid_parameter", f"ref must be a lap number, not {raw_ref!r}") from None
    flag = request.args.get("ref_channels", "0").lower()
    if flag not in ("0", "1", "true", "false"):
        raise ApiError(400, "invalid_parameter", f"ref_channels must be 1, 0, true or false, not {flag!r}")
    return {"channels": channels, "x": x, "step": step_m if x == "distance" else step_s, "ref": ref,
            "ref_channels": flag in ("1", "true")}


@bp.get("/<rec_id:str>/laps")
async def lap_table(request: Request, rec_id: str):
    rec_id = recording_id(rec_id)
    return json(await blocking(request.app.ctx.runtime.laps.table, rec_id, _feed_arg(request)))


@bp.get("/<rec_id:str>/laps/<number:int>/trace")
async def lap_trace(request: Request, rec_id: str, number: int):
    rec_id = recording_id(rec_id)
    feed = _feed_arg(request)
    args = _trace_args(request)
    return json(await blocking(request.app.ctx.runtime.laps.trace, rec_id, feed, number, args["channels"], args["x"],
                               args["step"], args["ref"], args["ref_channels"]))
