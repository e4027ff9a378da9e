"""A feed's frames of a recording as the analyses take them: canonical rows, their extras and what
the game stated (track length, maximum rpm; ACC: the field of cars), read once for runs and laps."""

from __future__ import annotations

from ..analysis.frames import Frames

#: The feed whose frames carry the whole field of cars in ``meta["field"]`` (ACC's broadcasting).
FIELD_FEED = "acc"


def feed_frames(recordings, rec_id: str, feed: str, start: int = 0, end: int | None = None,
                meta: dict | None = None) -> Frames:
    """Frames ``start:end`` of ``feed`` in recording ``rec_id`` (all of them by default), with
    ``meta`` plus the game's own facts over their span (``RecordingManager.read_facts``: what the
    game states, its maximum rpm and the lap length, beats any estimate) and, for ACC, the field."""
    rows, extras = recordings.read_frames(rec_id, feed, start, end)
    meta = {"feed_name": feed, **(meta or {})}
    if len(rows):
        t0, t1 = int(rows["t_ns"][0]), int(rows["t_ns"][-1])
        meta.update(recordings.read_facts(rec_id, feed, t0, t1))
        if feed == FIELD_FEED:
            # ACC sends the whole field; the frames follow one car, so the others ride in meta.
            meta["field"] = recordings.read_field(rec_id, feed, t0, t1)
    return Frames.from_rows(rows, extras, meta)
