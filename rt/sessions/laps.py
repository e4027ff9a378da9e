"""The laps of a whole recording's feed, for the lap table and lap traces of the API.

No session is needed: the feed's frames of the whole recording (:func:`.frames.feed_frames`) are cut
into laps by the one lap finder (:func:`rt.analysis.laps.find_laps`), so lap numbers, times and
validity are those of every analysis. The answers are built by :mod:`rt.analysis.traces`.

A client comparing laps asks for one trace after another of the same recording: the laps of the
last stopped recording's feed are kept (one entry: an hour at 333 Hz is ~100 MB of frames), since a
stopped recording no longer changes; the active one is read afresh every time. The entry goes once
unused for :data:`KEEP_S` (:meth:`RecordingLaps.release_idle`, on the server's memory trimmer), so
a recorder left running after a look at some laps does not hold them for the rest of the day.
"""

from __future__ import annotations

import threading
import time

from ..analysis.laps import Laps, find_laps
from ..analysis.traces import NotTraceable, lap_table, lap_trace, pick_lap
from ..errors import Conflict, NotFound
from .frames import feed_frames


#: How long the laps of a recording are kept after their last use, s.
KEEP_S = 120.0


class RecordingLaps:
    """Lap tables and traces of recordings (``recordings``: the RecordingManager)."""

    def __init__(self, recordings) -> None:
        self.recordings = recordings
        self._lock = threading.Lock()
        self._kept: tuple[tuple[str, str], Laps] | None = None
        self._used = 0.0  # monotonic time of the kept entry's last use

    def laps(self, rec_id: str, feed: str) -> Laps:
        """The laps of ``feed`` over the whole recording (NotFound for an unknown recording)."""
        manifest = self.recordings.get(rec_id)  # NotFound before any file is read
        key = (rec_id, feed)
        with self._lock:
            if self._kept is not None and self._kept[0] == key:
                self._used = time.monotonic()
                return self._kept[1]
        laps = find_laps(feed_frames(self.recordings, rec_id, feed, meta={"run_id": rec_id}))
        if manifest.get("status") != "recording":
            with self._lock:
                self._kept, self._used = (key, laps), time.monotonic()
        return laps

    def release_idle(self, now: float | None = None) -> None:
        """Forget the kept laps when unused for :data:`KEEP_S` (``now``: monotonic s)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._kept is not None and now - self._used >= KEEP_S:
                self._kept = None

    def table(self, rec_id: str, feed: str) -> dict:
        """``{recording_id, feed, laps: [lap records]}`` (see :func:`rt.analysis.traces.lap_record`)."""
        return {"recording_id": rec_id, "feed": feed, "laps": lap_table(self.laps(rec_id, feed))}

    def trace(self, rec_id: str, feed: str, number: int, channels: tuple[str, ...], x: str, step: float | None,
              ref: int | None, ref_channels: bool) -> dict:
        """:func:`rt.analysis.traces.lap_trace` of lap ``number`` (against lap ``ref``): NotFound for
        an unknown lap, Conflict for a lap not seen from line to line."""
        laps = self.laps(rec_id, feed)
        lap = pick_lap(laps, number)
        if lap is None:
            raise NotFound("lap", str(number), f"recording {rec_id} has no lap {number} on {feed}")
        ref_lap = None
        if ref is not None:
            ref_lap = pick_lap(laps, ref)
            if ref_lap is None:
                raise NotFound("lap", str(ref), f"recording {rec_id} has no lap {ref} on {feed} (ref)")
        try:
            out = lap_trace(lap, channels, x, step, ref_lap, ref_channels)
        except NotTraceable as exc:
            raise Conflict("lap_incomplete", str(exc)) from None
        return {"recording_id": rec_id, "feed": feed, **out}
