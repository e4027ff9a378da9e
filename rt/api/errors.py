"""One error format for every answer that is not a success.

``{"error": {"status": 404, "code": "recording_not_found", "message": "…"}}``. Handlers raise
:class:`ApiError`; the domain's errors (``rt.errors``: :class:`NotFound`, :class:`Conflict`,
:class:`StoreError`, :class:`Invalid` 422) are mapped here and nowhere
else; anything else that escapes a handler becomes a logged 500 with a generic message (a bug, never
an expected answer), and Sanic's own errors (unknown path, wrong method, body too large) are
rewritten into the same shape.
"""

from __future__ import annotations

import asyncio
import logging

from sanic import Request
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json

from ..errors import Conflict, Invalid, NotFound, StoreError

log = logging.getLogger(__name__)

_SANIC_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    503: "unavailable",
}


class ApiError(SanicException):
    """An expected error answer: HTTP ``status``, a stable ``code`` and a clear ``message``."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message, status_code=status, headers=headers)
        self.code = code


def error_body(status: int, code: str, message: str) -> dict:
    return {"error": {"status": status, "code": code, "message": message}}


def _domain_error(exc: Exception) -> ApiError | None:
    """The API's answer to an error of the domain (rt.errors), or None for anything else."""
    if isinstance(exc, NotFound):
        return ApiError(404, f"{exc.kind}_not_found", str(exc))
    if isinstance(exc, Conflict):
        return ApiError(409, exc.code, str(exc))
    if isinstance(exc, Invalid):
        return ApiError(422, exc.code, str(exc))
    if isinstance(exc, StoreError):
        return ApiError(507, "storage_error", str(exc))
    return None


async def blocking(fn, *args):
    """Run file work off the event loop (recordings and sessions read and write files)."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the router accepts for this request's path."""
    allowed = []
    for method in ("GET", "POST", "DELETE", "OPTIONS"):
        try:
            request.app.router.get(request.path, method, request.headers.get("host"))
        except Exception:  # noqa: BLE001 - not routed for this method
            continue
        allowed.append(method)
    return allowed


def handle_error(request: Request, exc: Exception) -> HTTPResponse:
    """Sanic error handler: every exception becomes the JSON error shape."""
    exc = _domain_error(exc) or exc
    if isinstance(exc, ApiError):
        return json(error_body(exc.status_code, exc.code, str(exc)), status=exc.status_code, headers=exc.headers)
    if isinstance(exc, SanicException):
        status = exc.status_code
        headers = dict(getattr(exc, "headers", None) or {})
        if status == 405 and "Allow" not in headers:
            # Sanic rejects unknown methods (TRACE, …) before routing, without an Allow header.
            allow = _allowed_methods(request)
            if allow:
                headers["Allow"] = ", ".join(allow)
        code = _SANIC_CODES.get(status, "error")
        message = str(exc) or code.replace("_", " ")
        if status == 404:
            message = f"no such endpoint: {request.method} {request.path}"
        return json(error_body(status, code, message), status=status, headers=headers)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return json(error_body(500, "internal_error", "internal error; see the server log"), status=500)
