"""The OpenAPI document matches the routes the app really registers, and is served."""

from __future__ import annotations

import itertools
import re

from rt.api.app import create_app
from rt.api.openapi import DOCUMENT
from rt.config import Config
from rt.runtime import Runtime

_names = itertools.count()


def routed() -> set[tuple[str, str]]:
    app = create_app(Runtime(Config(tt_port=0, pcars_port=0)), name=f"openapi_check_{next(_names)}")
    out = set()
    for route in app.router.routes:
        path = "/" + route.path if not route.path.startswith("/") else route.path
        path = re.sub(r"<(\w+)(:[^>]*)?>", r"{\1}", path)
        for method in route.methods:
            if method in ("OPTIONS", "HEAD"):
                continue
            out.add((path, method.lower()))
    return out


def documented() -> set[tuple[str, str]]:
    return {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}


def test_every_route_is_documented_and_nothing_else():
    assert routed() == documented()


def test_every_ref_resolves_and_every_operation_answers_json_errors():
    schemas = DOCUMENT["components"]["schemas"]
    text = repr(DOCUMENT)
    for ref in re.findall(r"#/components/schemas/(\w+)", text):
        assert ref in schemas, ref
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            assert op["responses"], (path, method)
            for status, resp in op["responses"].items():
                if int(status) >= 400:
                    assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_served_document(server_factory):
    srv = server_factory()
    status, doc = srv.get("/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.") and doc["paths"].keys() == DOCUMENT["paths"].keys()


def test_the_documented_health_states_are_the_feeds_own():
    from rt.feeds.health import STATES

    assert DOCUMENT["components"]["schemas"]["FeedLive"]["properties"]["health"]["enum"] == list(STATES)
