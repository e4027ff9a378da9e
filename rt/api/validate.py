"""Request body checks shared by the handlers: one place that says what a bad body gets.

Unknown fields are ignored (a newer racecraft may send more than this server knows); wrong types,
malformed JSON and non-object bodies are 400s naming the field and what is allowed.
"""

from __future__ import annotations

import orjson
from sanic import Request

from .errors import ApiError


def json_body(request: Request, allow_empty: bool = False) -> dict:
    """The request's JSON object (``{}`` for an empty body when ``allow_empty``)."""
    raw = request.body
    if not raw or not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "empty_body", "a JSON object is required")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_body", f"the body must be a JSON object, not {type(value).__name__}")
    return value


def optional_str(body: dict, name: str, max_len: int) -> str | None:
    """``body[name]`` as a string (or None when absent/null); 400 for another type or too long."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_field", f"{name} must be a string or null, not {type(value).__name__}")
    if len(value) > max_len:
        raise ApiError(400, "invalid_field", f"{name} is longer than {max_len} characters")
    return value
