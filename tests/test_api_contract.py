"""The API as a contract: one error format, CORS, the token, and what bad input gets."""

from __future__ import annotations

import socket
import uuid

import pytest

from rigs import ScriptedSim, wait_until
from rt.sim.game import tt_driver

ALLOWED = "http://localhost:5173"


def error_code(srv, method, path, body=None, **kw):
    status, headers, data = srv.request(method, path, body, **kw)
    import json

    payload = json.loads(data) if data else None
    assert payload is not None and set(payload) == {"error"}, (status, data[:200])
    assert payload["error"]["status"] == status and payload["error"]["message"]
    return status, payload["error"]["code"], headers


@pytest.fixture
def srv(server_factory):
    return server_factory()


def test_error_classes_have_their_status_and_code(srv):
    sid = srv.call("POST", "/api/sessions", {"use_case": "general"})[1]["id"]
    cases = [
        (("POST", "/api/sessions"), dict(raw=b"{bad json"), 400, "malformed_json"),
        (("POST", "/api/sessions"), dict(raw=b"[1, 2]"), 400, "invalid_body"),
        (("POST", "/api/sessions"), dict(raw=b""), 400, "empty_body"),
        (("POST", "/api/sessions"), dict(body={"use_case": 7}), 400, "invalid_field"),
        (("POST", "/api/sessions"), dict(body={"label": "x"}), 400, "missing_field"),
        (("POST", "/api/sessions"), dict(body={"use_case": "drift"}), 422, "unknown_use_case"),
        (("POST", "/api/recordings"), dict(body={"game": "gt7"}), 422, "unknown_game"),
        (("POST", "/api/recordings"), dict(body={"notes": ["a"]}), 400, "invalid_field"),
        (("POST", f"/api/sessions/{sid}/runs"), dict(body={"feed_name": "iracing"}), 422, "unknown_feed"),
        (("POST", f"/api/sessions/{sid}/runs"), dict(body={"feed_name": "ksudp", "merge_feeds": "pcars"}), 400, "invalid_field"),
        (("GET", f"/api/sessions/{uuid.uuid4()}"), {}, 404, "session_not_found"),
        (("GET", "/api/sessions/not-a-uuid"), {}, 404, "session_not_found"),
        (("GET", "/api/recordings/..%2F..%2Fetc%2Fpasswd"), {}, 404, "recording_not_found"),
        (("GET", f"/api/recordings/{uuid.uuid4()}/data/ksudp"), {}, 404, "recording_not_found"),
        (("GET", f"/api/recordings/{uuid.uuid4()}/data/..%2Fmanifest.json"), {}, 404, "feed_not_found"),
        (("GET", f"/api/recordings/{uuid.uuid4()}/data/ksudp%00"), {}, 404, "feed_not_found"),
        (("DELETE", f"/api/sessions/{sid}/runs/{uuid.uuid4()}"), {}, 404, "run_not_found"),
        (("GET", "/api/nothing/here"), {}, 404, "not_found"),
        (("POST", "/api/recordings/stop"), {}, 409, "recording_conflict"),
        (("POST", f"/api/sessions/{sid}/analyze"), {}, 409, "session_not_completed"),
        (("GET", f"/api/sessions/{sid}/analysis"), {}, 409, "analysis_not_ready"),
        (("POST", "/api/recordings"), dict(raw=b'{"notes": "' + b"x" * 70_000 + b'"}'), 413, "payload_too_large"),
    ]
    for (method, path), kw, status, code in cases:
        got_status, got_code, _ = error_code(srv, method, path, **kw)
        assert (got_status, got_code) == (status, code), (method, path, got_status, got_code)


def test_wrong_method_is_405_with_allow(srv):
    status, code, headers = error_code(srv, "DELETE", "/api/live")
    assert status == 405 and code == "method_not_allowed" and "GET" in headers["Allow"]


def test_cors_preflight_and_simple_requests(srv):
    status, headers, _ = srv.request("OPTIONS", "/api/recordings", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == ALLOWED and "POST" in headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in headers["Access-Control-Allow-Headers"]
    status, headers, _ = srv.request("OPTIONS", "/api/recordings", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in headers
    status, headers, _ = srv.request("GET", "/api/live", headers={"Origin": ALLOWED})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ALLOWED
    status, headers, _ = srv.request("GET", "/api/live", headers={"Origin": "http://evil.example"})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    status, headers, _ = srv.request("GET", "/api/nothing", headers={"Origin": ALLOWED})
    assert status == 404 and headers["Access-Control-Allow-Origin"] == ALLOWED  # errors readable by racecraft too


def test_token_guards_changes_only_and_never_reaches_the_log(server_factory):
    token = "s3cret-token-value-42"
    srv = server_factory(RUSTY_TELEMETRY_API_TOKEN=token)
    status, code, headers = error_code(srv, "POST", "/api/sessions", body={"use_case": "general"})
    assert status == 401 and code == "unauthorized" and headers["WWW-Authenticate"].startswith("Bearer")
    status, code, _ = error_code(srv, "POST", "/api/sessions", body={"use_case": "general"},
                                 headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, session = srv.call("POST", "/api/sessions", {"use_case": "general"}, headers={"Authorization": f"Bearer {token}"})
    assert status == 201
    assert srv.get(f"/api/sessions/{session['id']}")[0] == 200  # reads stay open
    assert srv.get("/api/live")[0] == 200
    assert error_code(srv, "DELETE", f"/api/sessions/{session['id']}")[0] == 401
    code, log = srv.stop()
    assert code == 0 and token not in log


def test_non_loopback_bind_without_token_warns(server_factory):
    srv = server_factory(RUSTY_TELEMETRY_API_HOST="0.0.0.0")
    assert srv.get("/api/games")[0] == 200
    code, log = srv.stop()
    assert "WARNING: the API listens on 0.0.0.0" in log and "RUSTY_TELEMETRY_API_TOKEN" in log


def test_allow_from_limits_listening_feeds(server_factory):
    srv = server_factory(RUSTY_TELEMETRY_ALLOW_FROM="127.0.0.2")
    port = srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["port"]
    rows = tt_driver(ScriptedSim().step_block(30), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:  # from 127.0.0.1: refused
        for row in rows[:10]:
            out.sendto(row.tobytes(), ("127.0.0.1", port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:  # from 127.0.0.2: accepted
        out.bind(("127.0.0.2", 0))
        for row in rows[10:]:
            out.sendto(row.tobytes(), ("127.0.0.1", port))
    feed = wait_until(lambda: (f := srv.get("/api/live")[1]["feeds"]["telemetry_tool"])["refused"] == 10 and f)
    assert feed["packets"] == 20 and feed["malformed"] == 0 and feed["speed_kmh"] is not None, feed
