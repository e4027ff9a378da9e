"""Everything one server process runs: the feeds, the recordings and the sessions.

The API handlers reach it as ``request.app.ctx.runtime``; ``serve`` and ``demo`` start and stop
it with the server.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .config import Config
from .export.table import Exporter, parse_laps
from .feeds.manager import FeedManager
from .memory import CollectorWatch, MemoryLog, Trimmer
from .protocols import protocols_for
from .sessions.laps import RecordingLaps
from .sessions.manager import SessionManager
from .store.recordings import RecordingManager

log = logging.getLogger(__name__)

#: How long a Python thread may hold the GIL while another waits for it, s (Python's default:
#: 0.005). The event loop answers /api/live between the consumer's passes, the HDF5 and raw
#: writer threads and the sessions' file work; each time it wants the GIL back it waited up to
#: the whole interval, several times per request.
GIL_SWITCH_S = 0.001


class Runtime:
    """The feeds, the recordings and the sessions of one process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.protocols = protocols_for(config.tt_layout)
        self.feeds = FeedManager(config, self.protocols)
        self.recordings = RecordingManager(config.data_dir, self.protocols, min_free_mb=config.min_free_mb,
                                           compact_after_s=config.compact_after_s, sync_s=config.sync_s,
                                           losses=self.feeds.losses, settle=self.feeds.drain)
        self.sessions = SessionManager(config.data_dir, self.recordings, self.feeds, config.merge_tolerance_ms)
        self.exporter = Exporter(config.data_dir, self.protocols,
                                 active=lambda: (self.recordings.summary() or {}).get("id"))
        self.laps = RecordingLaps(self.recordings)  # lap tables and traces of whole recordings
        self.started = False
        #: More sources for the memory log (name → callable), e.g. the API's router cache.
        self.memory_sources: dict = {}
        self._switch_s: float | None = None  # the GIL switch interval before start
        self.collector = CollectorWatch()

    def start(self) -> None:
        self._switch_s = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        repaired = self.recordings.open()
        for rec_id in repaired:
            log.warning("recording %s was left open by a process that died: repaired, now interrupted", rec_id)
        self.sessions.open()
        self.feeds.start()
        self.feeds.sinks.append(self.recordings)
        self.feeds.on_tick.append(self.recordings.tick)
        self.feeds.on_tick.append(Trimmer(release=[self.recordings.release_idle, self.laps.release_idle]).tick)
        if self.config.memory_log_s > 0:
            sources = {"sessions": self.sessions.counts, "recordings": self.recordings.counts,
                       "feeds": self.feeds.counts, "collector": self.collector.figures, **self.memory_sources}
            self.feeds.on_tick.append(MemoryLog(self.config.memory_log_s, sources).tick)
        self.started = True
        for feed in self.feeds.feeds.values():
            state = f"port {feed.port}" if feed.available else f"NOT AVAILABLE ({feed.error})"
            log.info("feed %-15s %s", feed.name, state)
        self.collector.start()

    def stop(self) -> None:
        self.collector.stop()
        if self.started:
            self.feeds.stop()  # takes what is left in the rings first
            self.recordings.close()
            self.started = False
        if self._switch_s is not None:
            sys.setswitchinterval(self._switch_s)
            self._switch_s = None

    def stop_recording(self, rec_id: str | None) -> dict:
        """Stop the active recording after the consumer has taken what was received until now."""
        if self.started:
            self.feeds.drain()
        return self.recordings.stop(rec_id)

    def recording_summary(self) -> dict | None:
        """``recording`` of ``/api/live``: the active recording, or None."""
        return self.recordings.live_summary()

    def export(self, rec_id: str, feed: str, fmt: str, directory: str | Path, run_id: str | None = None,
               laps: str | None = None) -> list[Path]:
        """Write an export (:mod:`rt.export.table`) of ``feed`` of ``rec_id`` (``run_id``'s frames;
        ``laps`` as ``3,5-7``) into ``directory``; returns the files written (blocking: file work)."""
        selection = self.exporter.select(rec_id, feed, run_id, parse_laps(laps))
        suffix = {"motec": "ld"}.get(fmt, fmt)
        return self.exporter.write(selection, fmt, Path(directory) / f"{rec_id}-{feed}.{suffix}")
