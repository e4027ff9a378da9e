"""Repairing a recording from its raw files: torn records trimmed, counters recounted."""

from __future__ import annotations

import logging
from pathlib import Path

from ..protocols import FEEDS, Protocols
from . import rawfile
from .h5store import classified_raw
from .manifest import iso

log = logging.getLogger(__name__)


def empty_counters() -> dict:
    # dropped: the ring was full; kernel_dropped: the socket buffer overflowed (rt.feeds.feed.FeedStats)
    return {"packets": 0, "bytes": 0, "malformed": 0, "dropped": 0, "kernel_dropped": 0, "first_time": None,
            "last_time": None}


def dir_size(path: Path) -> int:
    """Bytes of the files in ``path`` (0 if it is gone: someone deleted it under us)."""
    try:
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    except OSError:
        return 0


def count_raw(rec_dir: Path, manifest: dict, protocols: Protocols) -> dict:
    """Per-feed counters of a recording, counted from its raw files (torn tails trimmed)."""
    feeds = {}
    for feed in FEEDS:
        path = rec_dir / f"{feed}.bin"
        counters = empty_counters()
        counters["dropped"] = manifest.get("feeds", {}).get(feed, {}).get("dropped", 0)
        counters["kernel_dropped"] = manifest.get("feeds", {}).get(feed, {}).get("kernel_dropped", 0)
        if path.exists():
            cut = rawfile.trim(path)
            if cut:
                log.info("recording %s: %s.bin: cut a torn last record of %d bytes", rec_dir.name, feed, cut)
            raw = classified_raw(path, feed, protocols)
            if len(raw.t_ns):
                counters.update(packets=len(raw.t_ns), bytes=int(raw.lengths.sum()), malformed=raw.malformed,
                                first_time=iso(int(raw.t_ns[0])), last_time=iso(int(raw.t_ns[-1])))
        feeds[feed] = counters
    return feeds
