"""Sessions and runs: the guided-analysis workflow that racecraft drives.

A session is an analysis for one use case. Its runs mark stretches of one feed of a recording:
``start_marker``/``end_marker`` are canonical frame indices of ``feed_name`` in that recording,
half-open (frames ``start_marker .. end_marker-1``; ``end_marker`` is null while recording), and
``frame_count`` is what the run holds. A run may merge other feeds (``merge_feeds``): their frames
from the same time span join the primary feed's on one time line, duplicates within
``MERGE_TOLERANCE_MS`` removed (``rt_ext.merge``; the primary feed wins).

``data_truncated`` is true when the run lost frames: its feed's ring overflowed while it ran, or
the recording stopped under it (stopped by hand, disk full, or the process died).

Sessions live in ``DATA_DIR/sessions/<id>.json``, replaced atomically on every change, and come
back after a restart; a run that was recording when the process died comes back ``stopped`` at
the frames the recording kept.
"""

from __future__ import annotations

import builtins
import logging
import os
import threading
import uuid
from pathlib import Path

import numpy as np

from ..analysis.frames import Frames
from ..analysis.registry import GUIDANCE, analyze
from ..clock import iso
from ..errors import Conflict, MissingChannels, NotFound, StoreError
from ..merge import merge_timelines
from ..protocols.canonical import CANONICAL_DTYPE
from ..store.manifest import read, write_atomic
from .frames import feed_frames

log = logging.getLogger(__name__)

#: Frames of merged feeds closer than this to a kept frame are duplicates, ms.
MERGE_TOLERANCE_MS = 1.0


class SessionManager:
    """All sessions; state changes are serialised by one lock and written through to disk."""

    def __init__(self, data_dir: str | Path, recordings, feeds=None, merge_tolerance_ms: float = MERGE_TOLERANCE_MS) -> None:
        self.dir = Path(data_dir) / "sessions"
        self.recordings = recordings
        self.feeds = feeds  # FeedManager, to drain before markers are taken (None in unit tests)
        self.merge_tolerance_ns = int(merge_tolerance_ms * 1e6)
        self.lock = threading.RLock()
        self.sessions: dict[str, dict] = {}
        self._internal: dict[str, dict] = {}  # run id → bookkeeping not shown in the API
        self._stopped: list[tuple[str, dict[str, int]]] = []
        recordings.on_stop.append(self._recording_stopped)

    def counts(self) -> dict[str, int]:
        """What the sessions hold (the memory log): sessions, their runs, the runs' bookkeeping."""
        with self.lock:
            return {"sessions": len(self.sessions), "runs_kept": sum(len(s["runs"]) for s in self.sessions.values()),
                    "run_bookkeeping": len(self._internal), "stops_queued": len(self._stopped)}

    # ---- persistence ------------------------------------------------------------------------

    def open(self) -> None:
        """Load every session; runs left recording by a dead process end where their recording did."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # A read-only data disk: the API still answers; creating a session is a clear 507.
            log.error("sessions cannot be stored in %s: %s", self.dir, exc.strerror or exc)
            return
        for path in sorted(self.dir.glob("*.json")):
            try:
                session = read(path)
            except StoreError as exc:
                log.warning("session file %s unreadable (%s); skipped", path.name, exc)
                continue
            internal = session.pop("_runs", {})
            self.sessions[session["id"]] = session
            self._internal.update(internal)
            for run in session["runs"]:
                self._internal.setdefault(run["id"], {})
                if run["status"] == "recording":
                    self._close_run(session, run, self._frames_now(run), truncated=True)
            self._save(session)

    def _save(self, session: dict) -> None:
        if not self.dir.is_dir():
            raise StoreError(f"sessions cannot be stored: {self.dir} does not exist and cannot be created")
        doc = dict(session)
        doc["_runs"] = {run["id"]: self._internal.get(run["id"], {}) for run in session["runs"]}
        write_atomic(self._file(session["id"]), doc)

    def _file(self, session_id: str) -> str:
        # A string, not a Path: see write_atomic (pathlib interns the name on every save).
        return os.path.join(self.dir, f"{session_id}.json")

    # ---- sessions ---------------------------------------------------------------------------

    def list(self) -> list[dict]:
        with self.lock:
            self._apply_stops()
            return sorted((self._view(s) for s in self.sessions.values()), key=lambda s: s["created_at"], reverse=True)

    def get(self, session_id: str) -> dict:
        with self.lock:
            return self._view(self._session(session_id))

    def create(self, use_case: str, label: str | None) -> dict:
        with self.lock:
            session: dict = {
                "id": str(uuid.uuid4()),
                "use_case": use_case,
                "label": label,
                "status": "active",
                "created_at": iso(),
                "completed_at": None,
                "runs": [],
                "analysis": None,
                "guidance": GUIDANCE[use_case],
                "recording_id": None,
            }
            self._save(session)
            self.sessions[session["id"]] = session
            return self._view(session)

    def delete(self, session_id: str) -> None:
        with self.lock:
            session = self._session(session_id)
            for run in session["runs"]:
                if run["status"] == "recording":
                    self._stop_run(session, run)
            del self.sessions[session_id]
            for run in session["runs"]:
                self._internal.pop(run["id"], None)
            try:
                os.unlink(self._file(session_id))
            except FileNotFoundError:
                pass

    def complete(self, session_id: str) -> dict:
        """Stop a recording run, analyze all runs, mark completed (409 if there is nothing to analyze)."""
        with self.lock:
            session = self._session(session_id)
            if session["status"] == "completed":
                raise Conflict("session_completed", "the session is already completed; reopen it first")
            for run in session["runs"]:
                if run["status"] == "recording":
                    self._stop_run(session, run)
            session["analysis"] = self._analyze(session)
            session["status"] = "completed"
            session["completed_at"] = iso()
            self._save(session)
            self._stop_own_recording(session)
            return self._view(session)

    def analyze(self, session_id: str) -> dict:
        with self.lock:
            session = self._session(session_id)
            if session["status"] != "completed":
                raise Conflict("session_not_completed", "only a completed session is analyzed; complete it first")
            session["analysis"] = self._analyze(session)
            self._save(session)
            return self._view(session)

    def analysis(self, session_id: str) -> dict:
        with self.lock:
            session = self._session(session_id)
            if session["analysis"] is None:
                raise Conflict("analysis_not_ready", "the session has no analysis yet; complete it first")
            return session["analysis"]

    def reopen(self, session_id: str) -> dict:
        with self.lock:
            session = self._session(session_id)
            if session["status"] != "completed":
                raise Conflict("session_not_completed", "the session is already active")
            session["status"] = "active"
            session["analysis"] = None
            session["completed_at"] = None
            self._save(session)
            return self._view(session)

    # ---- runs -------------------------------------------------------------------------------

    # builtins.list: in this class's annotations, list is its list() method.
    def start_run(self, session_id: str, feed_name: str, label: str | None, merge_feeds: builtins.list[str]) -> dict:
        with self.lock:
            session = self._session(session_id)
            if session["status"] == "completed":
                raise Conflict("session_completed", "the session is completed; reopen it to add runs")
            if any(r["status"] == "recording" for r in session["runs"]):
                raise Conflict("run_in_progress", "a run of this session is recording; stop it first")
        if self.feeds is not None:
            self.feeds.drain()  # the markers start after what has been received until now
        with self.lock:
            session = self._session(session_id)
            rec = self.recordings.summary()
            started_recording = False
            if rec is None:
                name = f"Session {session['label'] or session['use_case']}"
                rec = self.recordings.start({"name": name, "use_case": session["use_case"]})
                started_recording = True
            rec_id = rec["id"]
            counts = self.recordings.frame_counts(rec_id)
            run = {
                "id": str(uuid.uuid4()),
                "label": label,
                "feed_name": feed_name,
                "status": "recording",
                "start_marker": counts.get(feed_name, 0),
                "end_marker": None,
                "frame_count": 0,
                "data_truncated": False,
                "merge_feeds": list(merge_feeds),
                "recording_id": rec_id,
                "started_at": iso(),
                "stopped_at": None,
            }
            self._internal[run["id"]] = {
                "merge_start": {f: counts.get(f, 0) for f in merge_feeds},
                "dropped_start": {f: self.recordings.dropped_now(f) for f in [feed_name, *merge_feeds]},
                "started_recording": started_recording,
            }
            session["runs"].append(run)
            session["recording_id"] = rec_id
            self._save(session)
            return self._run_view(run)

    def stop_run(self, session_id: str, run_id: str) -> dict:
        with self.lock:
            session = self._session(session_id)
            run = self._run(session, run_id)
            if run["status"] != "recording":
                raise Conflict("run_stopped", "the run is already stopped")
        if self.feeds is not None:
            self.feeds.drain()
        with self.lock:
            session = self._session(session_id)
            run = self._run(session, run_id)
            if run["status"] == "recording":
                self._stop_run(session, run)
                self._save(session)
            return self._run_view(run)

    def delete_run(self, session_id: str, run_id: str) -> None:
        with self.lock:
            session = self._session(session_id)
            run = self._run(session, run_id)
            if run["status"] == "recording":
                self._stop_run(session, run)
            session["runs"].remove(run)
            self._internal.pop(run_id, None)
            self._save(session)

    # ---- frames -----------------------------------------------------------------------------

    def run_frames(self, run: dict) -> Frames:
        """The run's frames (merged with ``merge_feeds`` if any), as the analyses take them."""
        internal = self._internal.get(run["id"], {})
        meta = {"run_id": run["id"], "lost_frames": internal.get("lost_frames", 0)}
        primary = feed_frames(self.recordings, run["recording_id"], run["feed_name"], run["start_marker"],
                              run["end_marker"], meta)
        if not run["merge_feeds"] or len(primary) == 0:
            return primary
        meta = primary.meta
        rows = np.zeros(len(primary), dtype=CANONICAL_DTYPE)
        for name, values in primary.channels.items():
            rows[name] = values
        extras = primary.extras
        t0, t1 = int(rows["t_ns"][0]), int(rows["t_ns"][-1])
        parts, part_extras = [rows], [extras]
        for feed in run["merge_feeds"]:
            start = internal.get("merge_start", {}).get(feed, 0)
            stop = internal.get("merge_end", {}).get(feed)
            other, other_extras = self.recordings.read_frames(run["recording_id"], feed, start, stop)
            keep = (other["t_ns"] >= t0) & (other["t_ns"] <= t1)
            parts.append(other[keep])
            part_extras.append({name: values[keep] for name, values in other_extras.items()})
        t, source, index = merge_timelines([p["t_ns"] for p in parts], self.merge_tolerance_ns)
        merged = np.zeros(len(t), dtype=rows.dtype)
        merged_extras = {}
        for name in dict.fromkeys(k for e in part_extras for k in e):
            like = next(e[name] for e in part_extras if name in e)
            fill = {"b": False, "f": np.nan}.get(like.dtype.kind, 0 if like.dtype.kind == "u" else -1)
            merged_extras[name] = np.full((len(t), *like.shape[1:]), fill, dtype=like.dtype)
        for k, (part, ex) in enumerate(zip(parts, part_extras)):
            sel = source == k
            merged[sel] = part[index[sel]]
            for name, values in ex.items():
                merged_extras[name][sel] = values[index[sel]]
        meta["merged_feeds"] = [run["feed_name"], *run["merge_feeds"]]
        merged_extras["feed"] = source.astype(np.int8)
        return Frames.from_rows(merged, merged_extras, meta)

    # ---- internals --------------------------------------------------------------------------

    def _session(self, session_id: str) -> dict:
        self._apply_stops()
        session = self.sessions.get(session_id)
        if session is None:
            raise NotFound("session", session_id)
        return session

    def _run(self, session: dict, run_id: str) -> dict:
        for run in session["runs"]:
            if run["id"] == run_id:
                return run
        raise NotFound("run", run_id)

    def _frames_now(self, run: dict) -> dict[str, int]:
        try:
            return self.recordings.frame_counts(run["recording_id"])
        except NotFound:  # the recording was deleted
            return {}

    def _stop_run(self, session: dict, run: dict) -> None:
        self._close_run(session, run, self._frames_now(run), truncated=False)

    def _close_run(self, session: dict, run: dict, counts: dict[str, int], truncated: bool) -> None:
        internal = self._internal.setdefault(run["id"], {})
        feeds = [run["feed_name"], *run["merge_feeds"]]
        lost = sum(max(0, self.recordings.dropped_now(f) - internal.get("dropped_start", {}).get(f, 0)) for f in feeds)
        run["status"] = "stopped"
        run["end_marker"] = max(run["start_marker"], counts.get(run["feed_name"], run["start_marker"]))
        run["frame_count"] = run["end_marker"] - run["start_marker"]
        run["data_truncated"] = bool(truncated or lost > 0)
        run["stopped_at"] = iso()
        internal["merge_end"] = {f: counts.get(f, 0) for f in run["merge_feeds"]}
        internal["lost_frames"] = lost

    def _recording_stopped(self, rec_id: str, frames: dict[str, int]) -> None:
        """A recording stopped (called under the recordings' lock, maybe on the consumer thread).

        Only queued here: taking the sessions' lock now could deadlock against a session call
        that holds it and waits for the recordings' lock. :meth:`_apply_stops` ends the runs.
        """
        self._stopped.append((rec_id, frames))

    def _apply_stops(self) -> None:
        """Runs still recording in a recording that has stopped end there, truncated."""
        while self._stopped:
            rec_id, frames = self._stopped.pop(0)
            for session in self.sessions.values():
                changed = False
                for run in session["runs"]:
                    if run["status"] == "recording" and run["recording_id"] == rec_id:
                        self._close_run(session, run, frames, truncated=True)
                        changed = True
                if changed:
                    self._save(session)

    def _stop_own_recording(self, session: dict) -> None:
        """Stop the recording this session's runs started, if nobody else records into it."""
        own = {self._internal.get(r["id"], {}).get("started_recording") and r["recording_id"] for r in session["runs"]}
        active = self.recordings.summary()
        if active is None or active["id"] not in own:
            return
        busy = any(r["status"] == "recording" and r["recording_id"] == active["id"]
                   for s in self.sessions.values() for r in s["runs"])
        if not busy:
            self.recordings.stop(active["id"])

    def _analyze(self, session: dict) -> dict:
        runs = [r for r in session["runs"] if r["frame_count"] > 0]
        frames = [self.run_frames(r) for r in runs]
        frames = [f for f in frames if len(f) > 0]
        if not frames:
            raise Conflict("no_data", "the session has no recorded frames to analyze; record a run first")
        try:
            return analyze(session["use_case"], frames)
        except MissingChannels as exc:
            raise Conflict("missing_channels", f"cannot analyze this session: {exc}") from None
        except ValueError as exc:
            raise Conflict("analysis_failed", f"cannot analyze this session: {exc}") from None

    def _run_view(self, run: dict) -> dict:
        view = dict(run)
        if run["status"] == "recording":
            counts = self._frames_now(run)
            view["frame_count"] = max(0, counts.get(run["feed_name"], run["start_marker"]) - run["start_marker"])
            internal = self._internal.get(run["id"], {})
            lost = sum(max(0, self.recordings.dropped_now(f) - internal.get("dropped_start", {}).get(f, 0))
                       for f in [run["feed_name"], *run["merge_feeds"]])
            view["data_truncated"] = lost > 0
        return view

    def _view(self, session: dict) -> dict:
        view = dict(session)
        view["runs"] = [self._run_view(r) for r in session["runs"]]
        return view
