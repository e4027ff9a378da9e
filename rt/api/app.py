"""The Sanic application factory.

:func:`create_app` builds the app around a :class:`~rt.runtime.Runtime` (feeds, recorder, …),
which it starts before the server accepts requests and stops after it has closed. Sanic runs in a
single process (its worker manager would start the feeds in a child process), and the ingest
threads stay out of the event loop.
"""

from __future__ import annotations

import orjson
from sanic import Sanic

from . import access
from .errors import handle_error
from .openapi import bp as openapi_bp
from .page import blueprint as page_blueprint
from .live import bp as live_bp
from .recordings import bp as recordings_bp
from .sessions import bp as sessions_bp

#: Largest request body accepted (413 beyond).
MAX_BODY_BYTES = 64 * 1024


def _dumps(obj) -> str:
    return orjson.dumps(obj).decode()


def create_app(runtime, name: str = "rusty_telemetry") -> Sanic:
    """The REST API app; ``runtime`` (its ``config`` included) is started and stopped with the server."""
    app = Sanic(name, dumps=_dumps)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.MOTD = False
    app.config.ACCESS_LOG = False
    app.ctx.runtime = runtime
    if hasattr(runtime, "memory_sources"):
        # Sanic caches a route lookup per distinct path (1024 at most): one per run's stop and
        # delete URL, so it fills as runs come and go (the memory log shows how far).
        runtime.memory_sources["router_cache_entries"] = lambda: type(app.router).get.cache_info().currsize
    app.blueprint(live_bp)
    app.blueprint(recordings_bp)
    app.blueprint(sessions_bp)
    app.blueprint(openapi_bp)
    app.blueprint(page_blueprint(bool(runtime.config.api_token)))
    access.install(app, runtime.config)
    app.error_handler.add(Exception, handle_error)

    @app.before_server_start
    async def _start(app_):
        if not runtime.started:
            runtime.start()

    @app.after_server_stop
    async def _stop(app_):
        runtime.stop()

    return app
