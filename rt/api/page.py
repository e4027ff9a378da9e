"""The recorder's own web page: ``GET /`` and its assets, from the package, for anyone without racecraft.

No build step and nothing fetched from the internet (the recorder often runs on a PC without it):
plain HTML, CSS and one JavaScript module, with uPlot (MIT, vendored in ``web/vendor``) drawing
the charts. The assets are read once when the app is built and served from memory with a strong
ETag, so a reload costs a 304 per file. ``/ui/config.json`` tells the page whether changes need
the API token (it asks for it before the first change, then sends it as the API expects).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json, raw

from .errors import ApiError

WEB_DIR = Path(__file__).with_name("web")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
#: The page's files, by their path under /ui/ (index.html is also ``/``).
ASSETS = ("index.html", "app.js", "app.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css")


def _load() -> dict[str, tuple[bytes, str, str]]:
    out = {}
    for name in ASSETS:
        body = (WEB_DIR / name).read_bytes()
        out[name] = (body, TYPES[Path(name).suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return out


def blueprint(token_required: bool) -> Blueprint:
    """The page's routes; ``token_required``: whether the API asks for a bearer token on changes."""
    bp = Blueprint("page")
    assets = _load()

    def serve(request: Request, name: str) -> HTTPResponse:
        found = assets.get(name)
        if found is None:
            raise ApiError(404, "not_found", f"no such file of the page: /ui/{name}")
        body, content_type, etag = found
        headers = {"ETag": etag, "Cache-Control": "no-cache"}  # revalidate: a new version shows at once
        if etag in request.headers.get("if-none-match", ""):
            return empty(status=304, headers=headers)
        return raw(body, content_type=content_type, headers=headers)

    @bp.get("/")
    async def index(request: Request) -> HTTPResponse:
        return serve(request, "index.html")

    @bp.get("/ui/config.json")
    async def config(request: Request) -> HTTPResponse:
        return json({"token_required": token_required})

    @bp.get("/ui/<name:path>")
    async def asset(request: Request, name: str) -> HTTPResponse:
        return serve(request, name)

    return bp
