"""Who may call the API: CORS for browser origins, and a bearer token for changes.

* **CORS**: a request from an origin in ``RUSTY_TELEMETRY_CORS_ORIGINS`` (or any, with ``*``) gets
  ``Access-Control-Allow-Origin`` for that origin; a preflight (``OPTIONS`` with
  ``Access-Control-Request-Method``) from it gets 204 with the allowed methods and headers. Any
  other origin gets no CORS headers at all, so the browser refuses the answer.
* **Token**: with ``RUSTY_TELEMETRY_API_TOKEN`` set, every request that changes state (POST,
  PUT, PATCH, DELETE) needs ``Authorization: Bearer <token>`` (401 otherwise, compared in constant
  time). Reads stay open: live telemetry and downloads on a LAN are what the token does not
  guard; starting, stopping and deleting are. The token is never logged.
"""

from __future__ import annotations

import hmac

from sanic import Request
from sanic.response import HTTPResponse, empty

from .errors import ApiError

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ALLOWED_HEADERS = "Content-Type, Authorization, Range"
EXPOSED_HEADERS = "Content-Length, Content-Range, Content-Disposition"


def origin_allowed(origins: tuple[str, ...], origin: str | None) -> bool:
    return bool(origin) and ("*" in origins or origin in origins)


def install(app, config) -> None:
    """Register the CORS and token middleware, and a preflight route for every route of ``app``.

    Call it after every blueprint is registered."""
    origins = tuple(config.cors_origins)
    token = config.api_token.encode() if config.api_token else None

    @app.on_request
    async def _check_token(request: Request):
        if token is None or request.method not in CHANGING:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
            raise ApiError(401, "unauthorized", "this request changes state and needs Authorization: Bearer <token>",
                           headers={"WWW-Authenticate": 'Bearer realm="rusty-telemetry"'})
        return None

    @app.on_response
    async def _cors(request: Request, response: HTTPResponse):
        origin = request.headers.get("origin")
        if origin_allowed(origins, origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.headers["Vary"] = "Origin"

    async def _preflight(request: Request, **_path):
        allow = ", ".join(methods_of[request.route.path])
        origin = request.headers.get("origin")
        if not origin_allowed(origins, origin) or not request.headers.get("access-control-request-method"):
            return empty(status=204, headers={"Allow": allow})
        return empty(
            status=204,
            headers={
                "Allow": allow,
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": allow,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )

    # An OPTIONS route beside every route (registered after the blueprints, hence last here),
    # answering with exactly the methods of its path.
    methods_of: dict[str, list[str]] = {}
    for route in app.router.routes:
        methods_of.setdefault(route.path, []).extend(route.methods)
    for k, path in enumerate(sorted(methods_of)):
        methods_of[path] = sorted(set(methods_of[path]) | {"OPTIONS"})
        app.add_route(_preflight, "/" + path.lstrip("/"), methods=["OPTIONS"], name=f"preflight_{k}")
    app.ctx.methods_of = methods_of
