"""Recordings: their lifecycle, the sink that writes them, and recovery after a crash.

One directory per recording under DATA_DIR::

    <id>/manifest.json   id, name, game, …, status, times, per-feed counters (replaced atomically)
    <id>/<feed>.bin      raw datagrams of each feed (rt.store.rawfile), the source of truth
    <id>/data.h5         decoded, derived (rt.store.h5store), rebuildable from the raw files

While a recording is active the consumer thread hands it every batch (:meth:`on_raw`,
:meth:`on_decoded`): raw batches are packed and written by a writer thread (in pieces of up to
1 MiB), decoded ones are queued and appended to HDF5 in slices by a second writer thread, so the
consumer goes on decoding while the kernel takes the bytes. Every ``sync_s`` (:data:`SYNC_S`,
and at stop) the raw files are fsynced once the batches counted so far are written and the
manifest is rewritten: a power loss loses at most that last interval, a kill only what waited in
the rings (:data:`PASS_S`). HDF5 is flushed every :data:`H5_FLUSH_S` and at stop.

A disk running full stops the recording before it is full (MIN_FREE_MB, checked at every pass),
and a write error (read-only directory, I/O error, file too large) stops it at once: raw files are
cut back to their last whole record, the manifest says ``stopped`` with the error, and
``/api/live`` shows it; the feeds, the API and all other recordings carry on.

This module holds the lifecycle and the sink; the active recording's state is
:mod:`.active`, the repair from raw files :mod:`.recovery`, the free-space check :mod:`.diskguard`.
"""

from __future__ import annotations

import builtins
import logging
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Callable, TypeVar

import h5py
import numpy as np

from ..errors import Conflict, NotFound, StoreError
from ..protocols import FEEDS, Protocols
from ..protocols.layout import PacketLayout
from . import compact, h5store, rawfile
from .active import Active
from .compact import Compactor
from .diskguard import DiskGuard
from .manifest import iso, read, write_atomic
from .recovery import count_raw, dir_size, empty_counters

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Longest time between two syncs of an active recording by default, s (``sync_s``;
#: ``RUSTY_TELEMETRY_SYNC_S``): what a power loss can lose, besides what waits in the rings
#: (:data:`PASS_S`). A kill loses no more for it: written bytes are in the page cache. Each sync
#: is four fsyncs (the raw files, the manifest) and a manifest rewrite: every second, they were a
#: sixth of recording's CPU at game rates (3 x 333 Hz: 1.2 -> 1.0 % of a core at 5 s).
SYNC_S = 5.0
#: While recording, the consumer takes the rings this often, s: a SIGKILL loses what waited in
#: them (the page cache keeps what was written), so at most this plus the receive period (0.1 s):
#: under a second. Half-second passes cost a third more CPU at game rates.
PASS_S = 0.85
#: How often a sync also flushes ``data.h5`` (and at stop). The raw files are the recording's
#: source of truth and are made durable at every sync; after a crash ``data.h5`` is checked
#: against them at start-up and rebuilt when it is behind or damaged, whenever it was last
#: flushed, and readers in this process see the writer's own handle. So a flush serves only other
#: programs reading an active recording; each costs ~65 ms of CPU (every dataset's metadata and
#: chunks): every 30 s that was a fifth of recording's CPU at game rates.
H5_FLUSH_S = 300.0


class RecordingManager:
    """All recordings of DATA_DIR; the active one (at most one) is written from the consumer thread."""

    def __init__(self, data_dir: str | Path, protocols: Protocols, min_free_mb: float = 100.0,
                 compact_after_s: float | None = None, sync_s: float = SYNC_S,
                 losses: Callable[[], dict[str, tuple[int, int]]] = dict,
                 settle: Callable[[], bool] = lambda: True) -> None:
        """``compact_after_s``: compact each recording this long after it stopped (the server;
        see :mod:`rt.store.compact`), those found at :meth:`open` too; None: never. ``sync_s``: the
        longest time between two syncs of the active recording (:data:`SYNC_S`). ``losses()``:
        per feed, the datagrams lost so far by its ring (full) and by the kernel (socket buffer
        full), counted since the process started (the feed manager's ``losses``). ``settle()``:
        returns once the consumer has decoded every batch it took (the feed manager's ``drain``),
        or False when it cannot wait for that (called on the consumer thread)."""
        self.data_dir = Path(data_dir)
        self.disk_guard = DiskGuard(self.data_dir, int(min_free_mb * 1024 * 1024))
        self.sync_s = sync_s
        self.protocols = protocols
        self.losses = losses
        self.settle = settle
        # A recording stopped without settling: the consumer may still hold raw batches of it
        # to decode, which must not reach the next recording's data.h5 (start settles first).
        self._unsettled = False
        self.lock = threading.RLock()
        self.active: Active | None = None
        self.last_error: dict | None = None  # the last recording that stopped on an error
        self._manifests: dict[str, dict] = {}
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="rt-fsync")
        # Raw file writes, in order, beside the consumer (see RawWriter); fsyncs stay on their
        # own thread, so a slow one does not hold the writes up.
        self._raw_writer = ThreadPoolExecutor(1, thread_name_prefix="rt-raw-write")
        # HDF5 appends, beside the consumer too (see H5Writer); a thread of their own, so raw
        # writes never queue behind a slow HDF5 append.
        self._h5_writer = ThreadPoolExecutor(1, thread_name_prefix="rt-h5-write")
        self.compact_after_s = compact_after_s
        self.compactor = Compactor(self._compacted) if compact_after_s is not None else None
        #: Called (under the lock) with (recording id, canonical frames per feed) when a recording
        #: stops for any reason: runs recording in it end there.
        self.on_stop: list = []
        #: ``data.h5`` files whose writes failed in this process: the HDF5 library then crashed in
        #: its shutdown at process exit, so ``serve`` skips that shutdown when this is not empty.
        self.hdf5_failed: list[str] = []
        self.syncs = 0  # syncs started in this process (the memory log's per-sync figures)

    # ---- start-up ---------------------------------------------------------------------------

    def open(self) -> list[str]:
        """Create DATA_DIR if needed, list every recording, repair those a dead process left open.

        Returns the ids that were repaired.
        """
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("data directory %s unusable: %s; recordings cannot start", self.data_dir, exc.strerror or exc)
            return []
        repaired = []
        for entry in sorted(self.data_dir.iterdir()):
            if not entry.is_dir() or not _is_uuid(entry.name):
                continue
            try:
                manifest = read(entry / "manifest.json")
            except StoreError as exc:
                log.warning("recording %s has no readable manifest (%s); skipped", entry.name, exc)
                continue
            if manifest.get("status") == "recording":
                manifest = self.recover(entry.name, manifest)
                repaired.append(entry.name)
            self._manifests[entry.name] = manifest
            if self.compactor is not None:
                for leftover in compact.leftovers(entry):  # a compaction cut short
                    leftover.unlink(missing_ok=True)
                self.compactor.submit(entry, self._compaction_due(manifest))
        return repaired

    def recover(self, rec_id: str, manifest: dict | None = None, force_rebuild: bool = False) -> dict:
        """Repair a recording: trim torn raw records, recount, check or rebuild ``data.h5``.

        A recording that was still open becomes ``interrupted``; one that was stopped keeps its
        status. ``force_rebuild`` rebuilds ``data.h5`` even when it agrees (``redecode``).
        """
        rec_dir = self.data_dir / rec_id
        manifest = manifest or read(rec_dir / "manifest.json")
        feeds = count_raw(rec_dir, manifest, self.protocols)
        if force_rebuild or not h5store.agrees_with_raw(rec_dir, self.protocols):
            log.info("recording %s: rebuilding data.h5 from the raw files", rec_id)
            try:
                h5store.rebuild(rec_dir, rec_id, self.protocols, manifest.get("created_at"))
            except StoreError:
                self.hdf5_failed.append(str(rec_dir / "data.h5"))
                raise
        if manifest.get("status") == "recording":
            manifest["status"] = "interrupted"
            manifest["stopped_at"] = max((c["last_time"] for c in feeds.values() if c["last_time"]), default=None)
        manifest["feeds"] = feeds
        manifest["size_bytes"] = dir_size(rec_dir)
        write_atomic(rec_dir / "manifest.json", manifest)
        with self.lock:
            self._manifests[rec_id] = manifest
        return manifest

    # ---- queries ----------------------------------------------------------------------------

    def list(self) -> list[dict]:
        """Every recording's manifest, newest first."""
        with self.lock:
            items = [self.get(rec_id) for rec_id in self._manifests]
        return sorted(items, key=lambda m: m["created_at"], reverse=True)

    def get(self, rec_id: str) -> dict:
        with self.lock:
            if self.active is not None and self.active.id == rec_id:
                return self.active.live_manifest(self.losses())
            manifest = self._manifests.get(rec_id)
            if manifest is None:
                raise NotFound("recording", rec_id)
            return dict(manifest)

    def counts(self) -> dict[str, float]:
        """For the memory log: syncs so far, recordings known, and the active recording's HDF5
        metadata cache (MB: it fills up to its fixed size as the datasets grow)."""
        out: dict[str, float] = {"syncs": self.syncs, "recordings": len(self._manifests)}
        active = self.active
        if active is not None:
            try:
                out["hdf5_metadata_cache_mb"] = round(active.h5.file.id.get_mdc_size()[2] / 2**20, 3)
            except (ValueError, RuntimeError):  # closing meanwhile: the figure is left out
                pass
        return out

    def raw_file(self, rec_id: str, feed: str) -> rawfile.RawFile:
        """A feed's raw file opened for reading its original bytes (the caller closes it); its
        ``size``: the bytes that are whole records right now."""
        with self.lock:
            if rec_id not in self._manifests:
                raise NotFound("recording", rec_id)
            if feed not in FEEDS:
                raise NotFound("feed", feed)
            path = self.data_dir / rec_id / f"{feed}.bin"
            limit = self.active.raw[feed].size if self.active is not None and self.active.id == rec_id else None
            try:
                return rawfile.RawFile(path, limit)
            except FileNotFoundError:
                raise NotFound("feed", feed, f"recording {rec_id} has no {feed} raw file") from None
            except (OSError, rawfile.RawFormatError) as exc:
                raise StoreError(f"{rec_id}/{feed}.bin: {exc}") from exc

    def frame_counts(self, rec_id: str) -> dict[str, int]:
        """Canonical frames per feed: live for the active recording, from data.h5 otherwise."""
        with self.lock:
            if self.active is not None and self.active.id == rec_id:
                return dict(self.active.frames)
            if rec_id not in self._manifests:
                raise NotFound("recording", rec_id)
        try:
            counts = h5store.kind_counts(self.data_dir / rec_id / "data.h5")
        except StoreError:
            return {}
        return {feed: n for (feed, kind), n in counts.items() if kind == "canonical"}

    def dropped_now(self, feed: str) -> int:
        """Datagrams of the feed lost so far, by its ring (full) and by the kernel (socket buffer
        full), for runs' data_truncated."""
        return sum(self.losses().get(feed, (0, 0)))

    def read_frames(self, rec_id: str, feed: str, start: int, end: int | None):
        """Canonical frames ``start:end`` of ``feed`` (a structured array) and their per-frame extras
        (the PCARS 1 sector splits, ACC's lap records: see :func:`h5store.read_canonical`), read
        from ``data.h5`` (see :meth:`_read_h5`)."""
        return self._read_h5(rec_id, lambda f: h5store.read_canonical(f, feed, start, end, self.protocols))

    def read_facts(self, rec_id: str, feed: str, t0_ns: int, t1_ns: int) -> dict[str, float]:
        """What the game stated of the car and track (``max_rpm``, ``track_length_m``) while ``feed``
        was received between ``t0_ns`` and ``t1_ns`` (see :func:`h5store.read_facts`)."""
        return self._read_h5(rec_id, lambda f: h5store.read_facts(f, feed, t0_ns, t1_ns, self.protocols))

    # builtins.list: in this class's annotations, list is its list() method.
    def read_field(self, rec_id: str, feed: str, t0_ns: int, t1_ns: int) -> builtins.list[dict]:
        """The field of cars of ``feed`` (ACC) between ``t0_ns`` and ``t1_ns``: each car's best
        lap, laps and names (see :func:`h5store.read_field`)."""
        return self._read_h5(rec_id, lambda f: h5store.read_field(f, feed, t0_ns, t1_ns))

    def _read_h5(self, rec_id: str, read: Callable[[h5py.File], T]) -> T:
        """``read(file)`` on the recording's ``data.h5``. For the active recording the queued rows
        are appended first and the writer's own handle is read, so analysis sees everything up
        to now."""
        with self.lock:
            if self.active is not None and self.active.id == rec_id:
                self._append_pending(self.active)
                return read(self.active.h5.file)
            if rec_id not in self._manifests:
                raise NotFound("recording", rec_id)
        return h5store.read_closed(self.data_dir / rec_id / "data.h5", read)

    def _append_pending(self, act: Active) -> None:
        """Append what the active recording's HDF5 writer has queued, for a reader of its handle."""
        try:
            act.h5.append_pending()
        except StoreError as exc:
            self._fail(exc)
            raise

    def summary(self) -> dict | None:
        """The active recording's id, name and status, or None; a stop under way finishes first
        (sessions and exports act on the answer)."""
        with self.lock:
            return self.live_summary()

    def live_summary(self) -> dict | None:
        """``recording`` of /api/live: :meth:`summary` without the lock.

        The consumer holds the lock while it waits for an HDF5 append on the writer thread, and
        /api/live, polled 20 times a second, must not wait with it. One read of ``active`` is one
        consistent recording (its id, name and status never change while it is active); a stop
        clears ``active`` before it sets :attr:`last_error`, so a reader that takes
        ``last_error`` first never shows a recording beside its own stop's error."""
        act = self.active
        if act is None:
            return None
        m = act.manifest
        return {"id": m["id"], "name": m["name"], "status": m["status"]}

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self, meta: dict) -> dict:
        """Start a recording with ``meta`` (name, game, track, car, use_case, notes: all optional)."""
        if self._unsettled and self.settle():
            self._unsettled = False
        with self.lock:
            if self.active is not None:
                raise Conflict("recording_conflict", f"recording {self.active.id} is already active; stop it first")
            low = self.disk_guard.low(0)
            if low:
                raise StoreError(f"cannot start a recording: {low}")
            rec_id = str(uuid.uuid4())
            rec_dir = self.data_dir / rec_id
            now = iso()
            manifest = {
                "id": rec_id,
                "name": meta.get("name") or f"Recording {now[:19].replace('T', ' ')}",
                "game": meta.get("game"),
                "track": meta.get("track"),
                "car": meta.get("car"),
                "use_case": meta.get("use_case"),
                "notes": meta.get("notes"),
                "status": "recording",
                "created_at": now,
                "stopped_at": None,
                "feeds": {feed: empty_counters() for feed in FEEDS},
                "size_bytes": 0,
            }
            raw: dict[str, rawfile.RawWriter] = {}
            try:
                rec_dir.mkdir(parents=True)
                write_atomic(rec_dir / "manifest.json", manifest)
                for feed in FEEDS:
                    raw[feed] = rawfile.RawWriter(rec_dir / f"{feed}.bin", self._raw_writer)
                h5 = h5store.H5Writer(rec_dir / "data.h5", rec_id, now, self._h5_writer)
            except (OSError, StoreError) as exc:
                for writer in raw.values():
                    writer.close()
                shutil.rmtree(rec_dir, ignore_errors=True)
                raise StoreError(f"cannot start a recording in {self.data_dir}: {exc}") from exc
            losses = self.losses()
            self.active = Active(rec_id, rec_dir, manifest, raw, h5,
                                 {feed: ring for feed, (ring, _) in losses.items()},
                                 {feed: kernel for feed, (_, kernel) in losses.items()},
                                 unnamed={key for key in ("game", "track", "car") if not manifest[key]})
            self._manifests[rec_id] = manifest
            self.last_error = None
            log.info("recording %s started (%s)", rec_id, manifest["name"])
            return self.active.live_manifest(self.losses())

    def _active_named(self, rec_id: str | None) -> Active:
        """The active recording, which ``rec_id`` (if given) must name (under the lock)."""
        act = self.active
        if act is None or (rec_id is not None and act.id != rec_id):
            if rec_id is not None and rec_id not in self._manifests:
                raise NotFound("recording", rec_id)
            raise Conflict("recording_conflict", "no recording is active" if rec_id is None else f"recording {rec_id} is not active")
        return act

    def stop(self, rec_id: str | None = None) -> dict:
        """Stop the active recording (``rec_id`` must name it, if given); returns its manifest.

        The recording takes no more raw batches from here; the consumer first decodes those
        it took in raw passes (``settle``), so ``data.h5`` holds everything the raw files do."""
        with self.lock:
            self._active_named(rec_id).closing = True
        if not self.settle():
            self._unsettled = True
        with self.lock:
            return self._close_active(self._active_named(rec_id))

    def _close_active(self, act: Active, error: str | None = None) -> dict:
        """Close the active recording's files and write its final manifest (under the lock)."""
        with self.lock:
            problems = [error] if error else []
            if act.durable is not None:
                act.durable.result()  # the last background fsync first: the files close next
            try:
                act.h5.close()
            except StoreError as exc:
                problems.append(str(exc))
            if act.h5.failed:
                self.hdf5_failed.append(str(act.h5.path))
            for writer in act.raw.values():
                try:
                    writer.close()
                except StoreError as exc:
                    problems.append(str(exc))
            manifest = act.live_manifest(self.losses())
            manifest["status"] = "stopped"
            manifest["stopped_at"] = iso()
            if problems:
                manifest["error"] = "; ".join(dict.fromkeys(problems))
            manifest["size_bytes"] = dir_size(act.dir)
            try:
                write_atomic(act.dir / "manifest.json", manifest)
            except StoreError as exc:
                # The disk is gone: the old manifest says "recording", so the next start
                # repairs it as interrupted; the raw files are intact up to their last record.
                log.error("recording %s: manifest not written: %s", act.id, exc)
            self._manifests[act.id] = manifest
            self.active = None
            if problems:  # after active is cleared: see live_summary
                self.last_error = {"id": act.id, "name": manifest["name"], "status": "stopped", "error": manifest["error"]}
            if self.compactor is not None and not problems:
                # After a write error the HDF5 file is not to be trusted: `recover` rebuilds it.
                assert self.compact_after_s is not None  # the compactor exists only with a delay
                self.compactor.submit(act.dir, time.monotonic() + self.compact_after_s)
            for callback in self.on_stop:
                try:
                    callback(act.id, dict(act.frames))
                except Exception:  # noqa: BLE001 - a session bug must not keep a recording open
                    log.exception("on_stop callback failed")
            log.info("recording %s stopped%s", act.id, f" ({manifest['error']})" if problems else "")
            if any(w.failed for w in act.raw.values()):
                # Raw batches queued behind the failed write never reached the file, but they were
                # counted (and decoded into data.h5): recount from the raw files, off this thread
                # (ingest goes on) and off the sync thread (stop() holds the lock waiting for it).
                # data.h5 is not rebuilt here: after a failed write the HDF5 library is not to be
                # trusted in this process; `recover` rebuilds it in a fresh one.
                threading.Thread(target=self._recount_after_write_error, args=(act.id,), name="rt-recount",
                                 daemon=True).start()
            return dict(manifest)

    def _recount_after_write_error(self, rec_id: str) -> None:
        try:
            with self.lock:
                manifest = dict(self._manifests[rec_id])
            feeds = count_raw(self.data_dir / rec_id, manifest, self.protocols)
            manifest["feeds"] = feeds
            manifest["error"] = (f"{manifest.get('error') or 'write error'}; data.h5 may hold datagrams that the raw "
                                 f"files lack: `rusty-telemetry recover {rec_id}` rebuilds it from them")
            write_atomic(self.data_dir / rec_id / "manifest.json", manifest)
            with self.lock:
                if rec_id in self._manifests:
                    self._manifests[rec_id] = manifest
                if self.last_error is not None and self.last_error.get("id") == rec_id:
                    self.last_error = dict(self.last_error, error=manifest["error"])
        except (OSError, StoreError, KeyError, ValueError) as exc:
            log.error("recording %s: recount after a write error failed: %s", rec_id, exc)

    def delete(self, rec_id: str) -> None:
        with self.lock:
            if rec_id not in self._manifests:
                raise NotFound("recording", rec_id)
            if self.active is not None and self.active.id == rec_id:
                raise Conflict("recording_conflict", f"recording {rec_id} is being written; stop it first")
            if self.compactor is not None:
                self.compactor.cancel(self.data_dir / rec_id)
            shutil.rmtree(self.data_dir / rec_id)
            del self._manifests[rec_id]

    def close(self) -> None:
        """Stop the active recording, if any, and any compaction (server shutdown)."""
        with self.lock:
            if self.active is not None:
                self.stop()
        if self.compactor is not None:
            self.compactor.close()

    def _compaction_due(self, manifest: dict) -> float:
        """When (monotonic s) a stopped recording is to be compacted: COMPACT_AFTER_S after it stopped."""
        try:
            stopped = datetime.fromisoformat(manifest["stopped_at"].replace("Z", "+00:00")).timestamp()
        except (KeyError, AttributeError, TypeError, ValueError):
            stopped = 0.0
        return time.monotonic() + max(0.0, stopped + (self.compact_after_s or 0.0) - time.time())

    def _compacted(self, rec_id: str) -> None:
        """A recording's data.h5 was compacted (compactor thread): its manifest gets the new size."""
        with self.lock:
            manifest = self._manifests.get(rec_id)
            if manifest is None or manifest.get("status") == "recording":
                return
            manifest = dict(manifest, size_bytes=dir_size(self.data_dir / rec_id))
            try:
                write_atomic(self.data_dir / rec_id / "manifest.json", manifest)
            except StoreError as exc:
                log.warning("recording %s: manifest not updated after compaction: %s", rec_id, exc)
                return
            self._manifests[rec_id] = manifest

    # ---- the sink: called from the consumer thread ------------------------------------------

    def on_raw(self, feed, t_ns: np.ndarray, lengths: np.ndarray, data: np.ndarray, malformed: int) -> bool:
        with self.lock:
            act = self.active
            if act is None or act.closing:
                return False
            try:
                act.raw[feed.name].append(t_ns, lengths, data)
            except StoreError as exc:
                self._fail(exc)
                return False
            if feed.name not in act.first_ns:
                # The recording's first batch of this feed: what it decodes must follow from its
                # raw file alone, so a rebuild gives the same frames (PC2 lap data come from
                # packets before the recording otherwise).
                start_recording = getattr(feed, "start_recording", None)
                if start_recording is not None:
                    start_recording()
            c = act.manifest["feeds"][feed.name]
            c["packets"] += len(t_ns)
            c["bytes"] += int(lengths.sum())
            c["malformed"] += malformed
            act.first_ns.setdefault(feed.name, int(t_ns[0]))
            act.last_ns[feed.name] = int(t_ns[-1])
            return True

    def on_decoded(self, feed, layout: PacketLayout, columns, t_ns, canonical) -> None:
        with self.lock:
            act = self.active
            if act is not None:
                if act.unnamed:
                    act.name_from(feed.info)
                act.h5.add(feed.name, layout, columns, t_ns, canonical)
                if canonical is not None:
                    act.frames[feed.name] = act.frames.get(feed.name, 0) + len(canonical)
                try:
                    act.h5.append_due()
                except StoreError as exc:
                    self._fail(exc)

    def release_idle(self) -> int:
        """Free what the active recording's writers keep for reuse but have not used lately (raw
        packing buffers left from a lag); returns the bytes freed. Consumer thread."""
        with self.lock:
            act = self.active
            return 0 if act is None else sum(w.release_idle() for w in act.raw.values())

    @property
    def raw_interval_s(self) -> float | None:
        """While recording, the raw batches every :data:`PASS_S` (see ``Sink``)."""
        return PASS_S if self.active is not None else None

    def tick(self) -> None:
        """Sync the active recording if its interval is up (consumer thread, after each pass)."""
        with self.lock:
            act = self.active
            if act is None:
                return
            if time.monotonic() - act.last_sync >= self.sync_s:
                self.sync()
                return
            # Between syncs too: a flood fills a small disk faster than one sync interval.
            low = self.disk_guard.low(act.unsynced_bytes())
            if low:
                self._fail(StoreError(low))

    def sync(self) -> None:
        """Make the active recording durable: fsync raw files, flush HDF5, rewrite the manifest."""
        with self.lock:
            act = self.active
            if act is None:
                return
            written = act.unsynced_bytes()
            low = self.disk_guard.low(written)
            if low:
                self._fail(StoreError(low))
                return
            if act.durable_error is not None:
                self._fail(act.durable_error)
                return
            if act.durable is not None and not act.durable.done():
                return  # the last fsync is still at it (a busy disk): the next pass tries again
            now = time.monotonic()
            try:
                if now - act.last_h5_flush >= H5_FLUSH_S:
                    act.h5.flush()
                    act.last_h5_flush = now
            except StoreError as exc:
                self._fail(exc)
                return
            act.last_sync = now
            self.syncs += 1
            act.synced_bytes += written
            # fsync can take 100 ms and more on a busy disk: it runs beside the consumer, which
            # keeps emptying the rings meanwhile. One at a time; a slow one delays the next.
            # The barrier completes once every raw batch counted in this manifest is written
            # (the writer thread takes its work in order): only then fsync and the manifest.
            barrier = self._raw_writer.submit(lambda: None)
            act.durable = self._syncer.submit(self._make_durable, act, act.live_manifest(self.losses()), barrier)

    def _make_durable(self, act: Active, manifest: dict, barrier) -> None:
        """fsync the raw files once ``barrier`` is passed, then write the manifest (sync thread)."""
        barrier.result()
        try:
            for writer in act.raw.values():
                writer.sync()
            write_atomic(act.dir / "manifest.json", manifest)
        except StoreError as exc:
            act.durable_error = exc  # the consumer stops the recording at its next sync

    def _fail(self, exc: Exception) -> None:
        """Stop the active recording on a write error (under the lock, often on the consumer
        thread: no settling; batches it took raw but had not decoded stay out of ``data.h5``, which
        after an error is rebuilt from the raw files by ``recover`` anyway)."""
        act = self.active
        log.error("recording %s stopped on a write error: %s", act.id if act else "?", exc)
        if act is not None:
            self._unsettled = True
            self._close_active(act, error=str(exc))

def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
