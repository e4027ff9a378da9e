"""Sessions and runs: the guided-analysis workflow (reference: Sessions and Runs tables)."""

from __future__ import annotations

import uuid

from sanic import Blueprint, Request
from sanic.response import empty, json

from ..protocols import FEEDS
from .errors import ApiError, blocking
from .live import USE_CASES
from .validate import json_body, optional_str

bp = Blueprint("sessions", url_prefix="/api/sessions")


def _uuid(raw: str, kind: str) -> str:
    try:
        value = str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(404, f"{kind}_not_found", f"no {kind} {raw!r}: ids are UUIDs") from None
    if value != raw.lower():
        raise ApiError(404, f"{kind}_not_found", f"no {kind} {raw!r}: ids are UUIDs")
    return value


def _sessions(request: Request):
    return request.app.ctx.runtime.sessions


@bp.get("")
async def list_sessions(request: Request):
    return json(await blocking(_sessions(request).list))


@bp.post("")
async def create_session(request: Request):
    body = json_body(request)
    use_case = body.get("use_case")
    if use_case is None:
        raise ApiError(400, "missing_field", f"use_case is required: one of {', '.join(USE_CASES)}")
    if not isinstance(use_case, str):
        raise ApiError(400, "invalid_field", "use_case must be a string")
    if use_case not in USE_CASES:
        raise ApiError(422, "unknown_use_case", f"use_case {use_case!r} is not one of {', '.join(USE_CASES)}")
    label = optional_str(body, "label", 200)
    return json(await blocking(_sessions(request).create, use_case, label), status=201)


@bp.get("/<session_id:str>")
async def get_session(request: Request, session_id: str):
    return json(await blocking(_sessions(request).get, _uuid(session_id, "session")))


@bp.delete("/<session_id:str>")
async def delete_session(request: Request, session_id: str):
    await blocking(_sessions(request).delete, _uuid(session_id, "session"))
    return empty(status=204)


@bp.post("/<session_id:str>/complete")
async def complete_session(request: Request, session_id: str):
    return json(await blocking(_sessions(request).complete, _uuid(session_id, "session")))


@bp.get("/<session_id:str>/analysis")
async def get_analysis(request: Request, session_id: str):
    return json(await blocking(_sessions(request).analysis, _uuid(session_id, "session")))


@bp.post("/<session_id:str>/analyze")
async def analyze_session(request: Request, session_id: str):
    return json(await blocking(_sessions(request).analyze, _uuid(session_id, "session")))


@bp.post("/<session_id:str>/reopen")
async def reopen_session(request: Request, session_id: str):
    return json(await blocking(_sessions(request).reopen, _uuid(session_id, "session")))


@bp.post("/<session_id:str>/runs")
async def start_run(request: Request, session_id: str):
    session_id = _uuid(session_id, "session")
    body = json_body(request)
    feed_name = body.get("feed_name")
    if feed_name is None:
        raise ApiError(400, "missing_field", f"feed_name is required: one of {', '.join(FEEDS)}")
    if not isinstance(feed_name, str):
        raise ApiError(400, "invalid_field", "feed_name must be a string")
    if feed_name not in FEEDS:
        raise ApiError(422, "unknown_feed", f"feed_name {feed_name!r} is not one of {', '.join(FEEDS)}")
    label = optional_str(body, "label", 200)
    merge = body.get("merge_feeds")
    if merge is None:
        merge = []
    if not isinstance(merge, list) or not all(isinstance(m, str) for m in merge):
        raise ApiError(400, "invalid_field", "merge_feeds must be a list of feed names")
    for name in merge:
        if name not in FEEDS:
            raise ApiError(422, "unknown_feed", f"merge_feeds: {name!r} is not one of {', '.join(FEEDS)}")
    # Merging a feed with itself, or twice, adds nothing: ignored rather than refused.
    merge = [name for name in dict.fromkeys(merge) if name != feed_name]
    run = await blocking(_sessions(request).start_run, session_id, feed_name, label, merge)
    return json(run, status=201)


@bp.post("/<session_id:str>/runs/<run_id:str>/stop")
async def stop_run(request: Request, session_id: str, run_id: str):
    return json(await blocking(_sessions(request).stop_run, _uuid(session_id, "session"), _uuid(run_id, "run")))


@bp.delete("/<session_id:str>/runs/<run_id:str>")
async def delete_run(request: Request, session_id: str, run_id: str):
    await blocking(_sessions(request).delete_run, _uuid(session_id, "session"), _uuid(run_id, "run"))
    return empty(status=204)
