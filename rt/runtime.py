"""Everything one server process runs: the feeds now, the recorder and sessions as they come.

The API handlers reach it as ``request.app.ctx.runtime``; ``serve`` and ``demo`` start and stop
it with the server.
"""

from __future__ import annotations

import logging

from .config import Config
from .feeds.manager import FeedManager
from .protocols import protocols_for

log = logging.getLogger(__name__)


class Runtime:
    """The feeds (and later the recorder and the sessions) of one process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.protocols = protocols_for(config.tt_layout)
        self.feeds = FeedManager(config, self.protocols)
        self.started = False

    def start(self) -> None:
        self.feeds.start()
        self.started = True
        for feed in self.feeds.feeds.values():
            state = f"port {feed.port}" if feed.available else f"NOT AVAILABLE ({feed.error})"
            log.info("feed %-15s %s", feed.name, state)

    def stop(self) -> None:
        if self.started:
            self.feeds.stop()
            self.started = False

    def recording_summary(self) -> dict | None:
        """``recording`` of ``/api/live``: the active recording, or None."""
        return None
