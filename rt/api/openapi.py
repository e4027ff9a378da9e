"""The OpenAPI 3 document of the REST API, served at ``GET /api/openapi.json``.

Kept beside the code as data; ``tests/test_openapi.py`` checks it against the registered routes
(every route documented, nothing documented that is not routed) and the fuzzer in CI checks every
answer against the schemas, so the two cannot drift apart.
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from .. import __version__
from ..protocols import FEEDS
from ..protocols.canonical import CANONICAL_NAMES
from .live import GAMES, USE_CASES

bp = Blueprint("openapi", url_prefix="/api")

UUID = {"type": "string", "format": "uuid"}
TIME = {"type": "string", "format": "date-time"}


def _nullable(schema: dict) -> dict:
    # OpenAPI 3.0: an enum must list null itself for null to be valid.
    out = {**schema, "nullable": True}
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def _str(max_len: int | None = None, nullable: bool = True) -> dict:
    schema: dict = {"type": "string"}
    if max_len:
        schema["maxLength"] = max_len
    return _nullable(schema) if nullable else schema


NUM = _nullable({"type": "number"})
INT = _nullable({"type": "integer"})

LAP_REF = {"$ref": "#/components/schemas/LapRecord"}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "code", "message"],
                "properties": {"status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "FeedLive": {
        "type": "object",
        "required": ["health", "port", "frequency_hz", "packets", "malformed", "dropped", "last_packet_age_ms",
                     "speed_kmh", "rpm", "gear"],
        "properties": {
            # rt.feeds.health.STATES (the api does not import the feeds; tests/test_openapi.py checks)
            "health": {"type": "string", "enum": ["not_available", "waiting", "handshaking", "refused", "healthy",
                                                  "stale", "lost"]},
            "port": {"type": "integer"},
            "frequency_hz": {"type": "number"},
            "packets": {"type": "integer"},
            "malformed": {"type": "integer"},
            "dropped": {"type": "integer"},
            "kernel_dropped": {"type": "integer"},
            "refused": {"type": "integer"},
            "shed": {"type": "integer"},
            "sequence_gaps": {"type": "integer"},
            # RUSTY_TELEMETRY_FORWARD: every datagram the feed accepted, re-sent unchanged to each
            # target; sent + dropped is every one of them, errors the failed send calls
            "forward": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["target", "sent", "dropped", "errors"],
                    "properties": {
                        "target": {"type": "string", "description": "ip:port, [ipv6]:port"},
                        "sent": {"type": "integer", "description": "datagrams the kernel took"},
                        "dropped": {"type": "integer", "description": "datagrams not sent (a full send buffer, a refusal)"},
                        "errors": {"type": "integer", "description": "failed send calls"},
                        "error": {"type": "string", "description": "why nothing is forwarded to it (no route at start-up)"},
                    },
                },
            },
            "last_packet_age_ms": NUM,
            "car": _str(),
            "track": _str(),
            "speed_kmh": NUM,
            "rpm": NUM,
            "gear": INT,
            "throttle": NUM,
            "brake": NUM,
            "clutch": NUM,
            "steer": NUM,
            "lap_count": INT,
            "lap_time_ms": INT,
            "last_lap_ms": INT,
            "best_lap_ms": INT,
            "error": {"type": "string"},
            # acc only: what ACC's broadcasting says of the session and the focused car
            "session_type": _str(),
            "session_phase": _str(),
            "driver": _str(),
            "team": _str(),
            "race_number": INT,
            "position": INT,
            "delta_ms": INT,
            "cars": INT,
        },
    },
    "Live": {
        "type": "object",
        "required": ["time", "recording", "feeds"],
        "properties": {
            "time": TIME,
            "recording": _nullable({
                "type": "object",
                "required": ["id", "name", "status"],
                "properties": {"id": UUID, "name": {"type": "string"}, "status": {"type": "string"}},
            }),
            "recording_error": _nullable({"type": "object"}),
            "feeds": {
                "type": "object",
                "required": list(FEEDS),
                "properties": {feed: {"$ref": "#/components/schemas/FeedLive"} for feed in FEEDS},
            },
        },
    },
    "FeedCounters": {
        "type": "object",
        "required": ["packets", "bytes", "malformed", "dropped", "first_time", "last_time"],
        "properties": {
            "packets": {"type": "integer"},
            "bytes": {"type": "integer"},
            "malformed": {"type": "integer"},
            "dropped": {"type": "integer"},
            "kernel_dropped": {"type": "integer"},
            "first_time": _nullable(TIME),
            "last_time": _nullable(TIME),
        },
    },
    "Recording": {
        "type": "object",
        "required": ["id", "name", "game", "track", "car", "use_case", "notes", "status", "created_at", "stopped_at",
                     "feeds", "size_bytes"],
        "properties": {
            "id": UUID,
            "name": {"type": "string"},
            "game": _str(),
            "track": _str(),
            "car": _str(),
            "use_case": _str(),
            "notes": _str(),
            "status": {"type": "string", "enum": ["recording", "stopped", "interrupted"]},
            "created_at": TIME,
            "stopped_at": _nullable(TIME),
            "feeds": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/FeedCounters"}},
            "size_bytes": {"type": "integer"},
            "error": {"type": "string"},
        },
    },
    "RecordingStart": {
        "type": "object",
        "description": "All fields optional; unknown fields are ignored.",
        "properties": {
            "name": _str(200),
            "game": _nullable({"type": "string", "enum": list(GAMES)}),
            "track": _str(200),
            "car": _str(200),
            "use_case": _nullable({"type": "string", "enum": list(USE_CASES)}),
            "notes": _str(10_000),
        },
    },
    "Run": {
        "type": "object",
        "required": ["id", "label", "feed_name", "status", "start_marker", "end_marker", "frame_count", "data_truncated"],
        "properties": {
            "id": UUID,
            "label": _str(),
            "feed_name": {"type": "string", "enum": list(FEEDS)},
            "status": {"type": "string", "enum": ["recording", "stopped"]},
            "start_marker": {"type": "integer"},
            "end_marker": INT,
            "frame_count": {"type": "integer"},
            "data_truncated": {"type": "boolean"},
            "merge_feeds": {"type": "array", "items": {"type": "string", "enum": list(FEEDS)}},
            "recording_id": UUID,
            "started_at": TIME,
            "stopped_at": _nullable(TIME),
        },
    },
    "Analysis": {
        "type": "object",
        "required": ["use_case", "version", "computed_at", "runs", "summary"],
        "properties": {
            "use_case": {"type": "string", "enum": list(USE_CASES)},
            "version": {"type": "integer"},
            "computed_at": TIME,
            "runs": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": "object"},
        },
        "additionalProperties": True,
    },
    "Session": {
        "type": "object",
        "required": ["id", "use_case", "label", "status", "created_at", "completed_at", "runs", "analysis", "guidance",
                     "recording_id"],
        "properties": {
            "id": UUID,
            "use_case": {"type": "string", "enum": list(USE_CASES)},
            "label": _str(),
            "status": {"type": "string", "enum": ["active", "completed"]},
            "created_at": TIME,
            "completed_at": _nullable(TIME),
            "runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}},
            "analysis": _nullable({"$ref": "#/components/schemas/Analysis"}),
            "guidance": _str(),
            "recording_id": _nullable(UUID),
        },
    },
    "SessionCreate": {
        "type": "object",
        "required": ["use_case"],
        "properties": {"use_case": {"type": "string", "enum": list(USE_CASES)}, "label": _str(200)},
    },
    "RunStart": {
        "type": "object",
        "required": ["feed_name"],
        "properties": {
            "feed_name": {"type": "string", "enum": list(FEEDS)},
            "label": _str(200),
            "merge_feeds": _nullable({"type": "array", "items": {"type": "string", "enum": list(FEEDS)},
                                      "description": "the run's own feed and repeats are ignored"}),
        },
    },
    "LapRecord": {
        "type": "object",
        "required": ["number", "time_ms", "valid", "complete", "invalid_reason", "source", "start_s", "end_s", "sectors_ms"],
        "properties": {
            "number": {"type": "integer", "description": "1-based: the game's lap counter + 1, else the order in the feed"},
            "time_ms": INT,
            "valid": {"type": "boolean"},
            "complete": {"type": "boolean", "description": "seen from line to line: only these have a trace"},
            "invalid_reason": _str(),
            "source": {"type": "string", "enum": ["game", "derived"]},
            "start_s": _nullable({"type": "number", "description": "start line crossing, s since the feed's first frame"}),
            "end_s": _nullable({"type": "number", "description": "end line crossing, s since the feed's first frame"}),
            "sectors_ms": _nullable({"type": "array", "items": INT}),
        },
    },
    "LapTable": {
        "type": "object",
        "required": ["recording_id", "feed", "laps"],
        "properties": {"recording_id": UUID, "feed": {"type": "string", "enum": list(FEEDS)},
                       "laps": {"type": "array", "items": LAP_REF}},
    },
    "LapTrace": {
        "type": "object",
        "required": ["recording_id", "feed", "lap", "x", "x_source", "length_m", "duration_s", "step", "step_requested",
                     "step_clamped", "points", "distance_m", "time_s", "channels", "units", "ref"],
        "properties": {
            "recording_id": UUID,
            "feed": {"type": "string", "enum": list(FEEDS)},
            "lap": LAP_REF,
            "x": {"type": "string", "enum": ["distance", "time"]},
            "x_source": {"type": "string", "enum": ["track_length", "distance_driven"],
                         "description": "distance from the lap position × the game's track length, or speed integrated"},
            "length_m": {"type": "number"},
            "duration_s": {"type": "number"},
            "step": {"type": "number", "description": "grid step used (m or s); above step_requested when clamped"},
            "step_requested": {"type": "number"},
            "step_clamped": {"type": "boolean", "description": "the step was raised to keep at most 5000 points"},
            "points": {"type": "integer", "maximum": 5000},
            "distance_m": {"type": "array", "items": NUM, "maxItems": 5000},
            "time_s": {"type": "array", "items": NUM, "maxItems": 5000},
            "channels": {"type": "object", "additionalProperties": {"type": "array", "items": NUM}},
            "units": {"type": "object", "additionalProperties": {"type": "string"}},
            "ref": _nullable({
                "type": "object",
                "required": ["lap", "length_m", "duration_s", "delta_s"],
                "properties": {
                    "lap": LAP_REF,
                    "length_m": {"type": "number"},
                    "duration_s": {"type": "number"},
                    "delta_s": {"type": "array", "items": NUM,
                                "description": "time on this lap minus time on the reference lap at the same place, s; + = slower so far"},
                    "channels": {"type": "object", "additionalProperties": {"type": "array", "items": NUM}},
                },
            }),
        },
    },
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(status: int, description: str, schema: dict | None = None, content_type: str = "application/json") -> dict:
    body: dict = {"description": description}
    if schema is not None:
        body["content"] = {content_type: {"schema": schema}}
    return {str(status): body}


def _errors(*statuses: int) -> dict:
    text = {400: "malformed request", 401: "token missing or wrong", 404: "unknown id or path", 409: "state conflict",
            413: "body over 64 KiB", 416: "range not satisfiable", 422: "value outside its list", 501: "a part of the server is not installed",
            507: "storage error"}
    return {str(s): {"description": text[s], "content": {"application/json": {"schema": _ref("Error")}}} for s in statuses}


def _json_body(name: str, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": _ref(name)}}}


def _id_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": UUID}


CHANGE = (400, 401, 413)  # any request with a body or that changes state may get these
REC = [_id_param("rec_id")]
SES = [_id_param("session_id")]
RUN = [_id_param("session_id"), _id_param("run_id")]
FEED_Q = {"name": "feed", "in": "query", "required": True, "schema": {"type": "string", "enum": list(FEEDS)}}
#: rt.analysis.traces.TRACE_CHANNELS (the api does not import the analyses; the tests check).
TRACE_CHANNELS = [name for name in CANONICAL_NAMES if name != "t_ns"]
_ONE = "(?:" + "|".join(TRACE_CHANNELS) + ")"
CHANNEL_LIST = f"^(?:{_ONE}(?:,{_ONE})*)?$"

PATHS = {
    "/api/live": {"get": {"summary": "Live telemetry of every feed", "responses": _ok(200, "snapshot", _ref("Live"))}},
    "/api/games": {"get": {"summary": "Supported games", "responses": _ok(200, "game ids", {"type": "array", "items": {"type": "string", "enum": list(GAMES)}})}},
    "/api/use-cases": {"get": {"summary": "Analysis use cases", "responses": _ok(200, "use case ids", {"type": "array", "items": {"type": "string", "enum": list(USE_CASES)}})}},
    "/api/openapi.json": {"get": {"summary": "This document", "responses": _ok(200, "OpenAPI 3", {"type": "object"})}},
    "/api/recordings": {
        "get": {"summary": "All recordings, newest first", "responses": _ok(200, "manifests", {"type": "array", "items": _ref("Recording")})},
        "post": {"summary": "Start a recording", "requestBody": _json_body("RecordingStart", required=False),
                 "responses": {**_ok(201, "started", _ref("Recording")), **_errors(*CHANGE, 409, 422, 507)}},
    },
    "/api/recordings/stop": {"post": {"summary": "Stop the active recording",
                                      "responses": {**_ok(200, "stopped", _ref("Recording")), **_errors(*CHANGE, 409, 507)}}},
    "/api/recordings/{rec_id}": {
        "get": {"summary": "A recording's manifest", "parameters": REC,
                "responses": {**_ok(200, "manifest", _ref("Recording")), **_errors(404)}},
        "delete": {"summary": "Delete a recording (not while it is written)", "parameters": REC,
                   "responses": {**_ok(204, "deleted"), **_errors(*CHANGE, 404, 409, 507)}},
    },
    "/api/recordings/{rec_id}/stop": {"post": {"summary": "Stop this recording", "parameters": REC,
                                               "responses": {**_ok(200, "stopped", _ref("Recording")), **_errors(*CHANGE, 404, 409, 507)}}},
    "/api/recordings/{rec_id}/data/{feed_name}": {"get": {
        "summary": "A feed's raw file (RTFEED1 records), streamed; honours Range",
        "description": "Honours one HTTP Range (bytes=START-END, bytes=START-, bytes=-N); a malformed Range is ignored.",
        "parameters": [*REC, {"name": "feed_name", "in": "path", "required": True, "schema": {"type": "string", "enum": list(FEEDS)}}],
        "responses": {**_ok(200, "the raw file", {"type": "string", "format": "binary"}, "application/octet-stream"),
                      **_ok(206, "a range of it", {"type": "string", "format": "binary"}, "application/octet-stream"),
                      **_errors(404, 416)}}},
    "/api/recordings/{rec_id}/export/{file_name}": {"get": {
        "summary": "One feed of a recording as CSV, Parquet or MoTeC (ld + ldx), streamed as an attachment",
        "description": "file_name is FEED.EXT. One row per canonical frame: time_s, lap, lap_valid, lap_ms, "
                       "distance_m, the canonical channels, the game's decoded fields (README: Exports). "
                       "Parquet keeps units in field metadata; CSV has one header row 'name [unit]'. "
                       "404: unknown recording, feed, run or lap, or no frames; 422: malformed laps; "
                       "409: the recording is being written; 501: ld/ldx without the MoTeC writer.",
        "parameters": [*REC, {"name": "file_name", "in": "path", "required": True,
                              "schema": {"type": "string", "enum": [f"{f}.{x}" for f in FEEDS for x in ("csv", "parquet", "ld", "ldx")]}},
                       {"name": "run", "in": "query", "required": False, "schema": UUID},
                       {"name": "laps", "in": "query", "required": False,
                        "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,3}(-[1-9][0-9]{0,3})?(,[1-9][0-9]{0,3}(-[1-9][0-9]{0,3})?)*$"}}],
        "responses": {"200": {"description": "the file (an attachment)", "content": {
                          kind: {"schema": {"type": "string", "format": "binary"}}
                          for kind in ("text/csv", "application/vnd.apache.parquet", "application/octet-stream", "application/xml")}},
                      **_errors(404, 409, 422, 501, 507)}}},
    "/api/recordings/{rec_id}/laps": {"get": {
        "summary": "The lap table of one feed of the recording (the lap model of every analysis)",
        "parameters": [*REC, FEED_Q],
        "responses": {**_ok(200, "laps in time order, with sector times", _ref("LapTable")), **_errors(400, 404)}}},
    "/api/recordings/{rec_id}/laps/{number}/trace": {"get": {
        "summary": "Channels of lap `number` on a grid along the lap, and the time slip to a reference lap",
        "description": "At most 5000 grid points: a finer step is raised to length/4998 (step_clamped). "
                       "Distance: lap position × the game's track length where it states one, else the "
                       "speed integrated over the lap. Unknown values are null. A lap not seen from line "
                       "to line is a 409.",
        "parameters": [*REC, {"name": "number", "in": "path", "required": True, "schema": {"type": "integer"}}, FEED_Q,
                       {"name": "channels", "in": "query", "schema": {"type": "string", "default": "speed_kmh,throttle,brake",
                                                                    "pattern": CHANNEL_LIST},
                        "description": "comma-separated canonical channels: " + ", ".join(TRACE_CHANNELS)},
                       {"name": "x", "in": "query", "schema": {"type": "string", "enum": ["distance", "time"], "default": "distance"}},
                       {"name": "step_m", "in": "query", "schema": {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                                                                  "maximum": 100000, "default": 2}},
                       {"name": "step_s", "in": "query", "schema": {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                                                                  "maximum": 3600, "default": 0.05}},
                       {"name": "ref", "in": "query", "schema": {"type": "integer"}, "description": "reference lap number"},
                       {"name": "ref_channels", "in": "query", "schema": {"type": "string", "enum": ["0", "1", "true", "false"],
                                                                        "default": "0"},
                        "description": "also the reference lap's channels on the same grid"}],
        "responses": {**_ok(200, "the trace", _ref("LapTrace")), **_errors(400, 404, 409, 422)}}},
    "/api/sessions": {
        "get": {"summary": "All sessions, newest first", "responses": _ok(200, "sessions", {"type": "array", "items": _ref("Session")})},
        "post": {"summary": "Create an analysis session", "requestBody": _json_body("SessionCreate"),
                 "responses": {**_ok(201, "created", _ref("Session")), **_errors(*CHANGE, 422, 507)}},
    },
    "/api/sessions/{session_id}": {
        "get": {"summary": "A session", "parameters": SES, "responses": {**_ok(200, "session", _ref("Session")), **_errors(404)}},
        "delete": {"summary": "Delete a session", "parameters": SES, "responses": {**_ok(204, "deleted"), **_errors(*CHANGE, 404, 507)}},
    },
    "/api/sessions/{session_id}/complete": {"post": {"summary": "Stop a recording run, analyze, complete", "parameters": SES,
                                                     "responses": {**_ok(200, "completed", _ref("Session")), **_errors(*CHANGE, 404, 409, 507)}}},
    "/api/sessions/{session_id}/analysis": {"get": {"summary": "The analysis", "parameters": SES,
                                                    "responses": {**_ok(200, "analysis", _ref("Analysis")), **_errors(404, 409)}}},
    "/api/sessions/{session_id}/analyze": {"post": {"summary": "Analyse a completed session again", "parameters": SES,
                                                    "responses": {**_ok(200, "analyzed", _ref("Session")), **_errors(*CHANGE, 404, 409, 507)}}},
    "/api/sessions/{session_id}/reopen": {"post": {"summary": "Back to active, analysis cleared", "parameters": SES,
                                                   "responses": {**_ok(200, "reopened", _ref("Session")), **_errors(*CHANGE, 404, 409, 507)}}},
    "/api/sessions/{session_id}/runs": {"post": {"summary": "Start a run", "parameters": SES, "requestBody": _json_body("RunStart"),
                                                 "responses": {**_ok(201, "recording", _ref("Run")), **_errors(*CHANGE, 404, 409, 422, 507)}}},
    "/api/sessions/{session_id}/runs/{run_id}/stop": {"post": {"summary": "Stop a run", "parameters": RUN,
                                                               "responses": {**_ok(200, "stopped", _ref("Run")), **_errors(*CHANGE, 404, 409, 507)}}},
    "/api/sessions/{session_id}/runs/{run_id}": {"delete": {"summary": "Delete a run", "parameters": RUN,
                                                            "responses": {**_ok(204, "deleted"), **_errors(*CHANGE, 404, 507)}}},
    # the recorder's own web page (rt/api/page.py): not part of the API, listed so that every route is
    "/": {"get": {"summary": "The web page (live view, recordings, sessions and their analyses)", "tags": ["page"],
                  "responses": {**_ok(200, "HTML", {"type": "string"}, "text/html"), **_ok(304, "unchanged (If-None-Match)")}}},
    "/ui/config.json": {"get": {"summary": "What the page needs to know: whether changes need the API token", "tags": ["page"],
                                "responses": _ok(200, "settings", {"type": "object", "required": ["token_required"],
                                                                   "properties": {"token_required": {"type": "boolean"}}})}},
    "/ui/{name}": {"get": {"summary": "The page's assets (script, style sheet, the vendored uPlot)", "tags": ["page"],
                           "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                           "responses": {**_ok(200, "the file", {"type": "string"}, "*/*"), **_ok(304, "unchanged (If-None-Match)"),
                                         **_errors(404)}}},
}

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {
        "title": "rusty-telemetry",
        "version": __version__,
        "description": "Sim-racing telemetry recorder and analyzer (reference v0.6.0). Errors: "
        '{"error": {"status", "code", "message"}}. With RUSTY_TELEMETRY_API_TOKEN set, POST and DELETE need '
        "Authorization: Bearer <token>.",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}


@bp.get("/openapi.json")
async def openapi(request: Request):
    return json(DOCUMENT)
