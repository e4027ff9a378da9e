"""Live telemetry and metadata: ``GET /api/live``, ``/api/games``, ``/api/use-cases``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from sanic import Blueprint, Request
from sanic.response import json

GAMES = ("assetto_corsa", "assetto_corsa_competizione", "project_cars_1", "project_cars_2")
USE_CASES = ("shift_points", "racing_line", "braking_analysis", "lap_times", "sector_analysis", "track_map", "general")

bp = Blueprint("live", url_prefix="/api")


def iso_now() -> str:
    """Current UTC time, ISO 8601 with milliseconds and a Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@bp.get("/live")
async def live(request: Request):
    runtime = request.app.ctx.runtime
    feeds = runtime.feeds
    loop = asyncio.get_running_loop()
    if feeds.live_is_stale():
        # The consumer runs a pass for fresh values; the loop serves others meanwhile.
        await loop.run_in_executor(None, feeds.refresh_live)
    # Not in the reference: why the last recording stopped on its own (disk full, …), until the
    # next starts. Read before the recording: see RecordingManager.live_summary.
    error = runtime.recordings.last_error
    # The loop never waits for a pass itself: past the executor's wait it answers with what it has.
    body = {"time": iso_now(), "recording": runtime.recording_summary(), "feeds": feeds.live(ask=False, wait=False)}
    body["recording_error"] = error
    # The next snapshot is asked for once this answer is written (this task's step ends then).
    loop.call_soon(feeds.keep_live_fresh)
    return json(body)


@bp.get("/games")
async def games(request: Request):
    return json(list(GAMES))


@bp.get("/use-cases")
async def use_cases(request: Request):
    return json(list(USE_CASES))
