"""The recording being written: its files, counters and what has been made durable."""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StoreError
from . import rawfile
from .h5store import H5Writer
from .manifest import iso


@dataclass
class Active:
    """The state of the recording being written."""

    id: str
    dir: Path
    manifest: dict
    raw: dict[str, rawfile.RawWriter]
    h5: H5Writer
    dropped_base: dict[str, int]
    kernel_dropped_base: dict[str, int] = field(default_factory=dict)  # feed stats' kernel_dropped at start
    synced_bytes: int = 0  # raw bytes written up to the last sync
    frames: dict[str, int] = field(default_factory=dict)  # canonical frames per feed, queued ones included
    durable: Future | None = None  # the fsync + manifest write under way
    durable_error: StoreError | None = None
    first_ns: dict[str, int] = field(default_factory=dict)
    last_ns: dict[str, int] = field(default_factory=dict)
    last_sync: float = field(default_factory=time.monotonic)
    last_h5_flush: float = field(default_factory=time.monotonic)
    #: Stopping: takes no more raw batches, decodes those it took (see RecordingManager.stop).
    closing: bool = False
    #: Manifest names the client left unset, filled from the feeds (see :meth:`name_from`).
    unnamed: set[str] = field(default_factory=set)

    def name_from(self, info: dict) -> None:
        """Fill the recording's unset ``game``/``track``/``car`` from what a feed's game named.

        What the client set is kept, and so is the first name a feed gave (a recording is one
        session; a menu's empty name never fills anything)."""
        for key in list(self.unnamed):
            value = info.get(key)
            if value:
                self.manifest[key] = value
                self.unnamed.discard(key)

    def unsynced_bytes(self) -> int:
        """Raw bytes written or queued since the last sync (queued batches reach the disk soon)."""
        return sum(w.size + w.queued_bytes for w in self.raw.values()) - self.synced_bytes

    def live_manifest(self, losses: dict[str, tuple[int, int]]) -> dict:
        """The manifest as of now: counters, losses since the start (``losses``: per feed, ring and
        kernel drops since the process started), first/last times, size."""
        m = dict(self.manifest)
        feeds = {}
        for feed, c in self.manifest["feeds"].items():
            c = dict(c)
            if feed in losses:
                ring, kernel = losses[feed]
                c["dropped"] = ring - self.dropped_base.get(feed, 0)
                c["kernel_dropped"] = kernel - self.kernel_dropped_base.get(feed, 0)
            if feed in self.first_ns:
                c["first_time"] = iso(self.first_ns[feed])
                c["last_time"] = iso(self.last_ns[feed])
            feeds[feed] = c
        m["feeds"] = feeds
        m["size_bytes"] = sum(w.size for w in self.raw.values()) + _file_size(self.dir / "data.h5")
        return m


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
