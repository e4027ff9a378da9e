"""One telemetry feed: its socket, its ring, its counters and what it last saw.

The receive side (``rt_ext.recv``) fills :attr:`Feed.ring`; :meth:`Feed.consume` is called by the
feed manager's consumer thread, takes what is in the ring in batches, classifies and decodes each
batch (``rt_ext.decode``), hands raw and decoded batches to the sinks (the recorder), keeps the
latest canonical values for the live view, and releases the slots. Between two such passes,
:meth:`Feed.take_raw` may hand the sinks the raw half of what arrived (a raw pass: the recorder's
raw files stay within a second of the sockets) and leave the slots for the next decoding pass.
Nothing here makes a Python object per datagram.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .. import clock
from ..decode import BatchDecoder
from ..protocols import Protocols, decode_text
from ..protocols.canonical import CANONICAL_DTYPE
from ..protocols.layout import PacketLayout
from ..ring import PacketRing
from .health import LOST_S, age_ms, health

#: Datagrams taken from a ring per decode call: keeps the batch in cache.
BATCH = 4096
#: Slots per ring: at 333 Hz about 24 s of datagrams, at 5 kHz 1.6 s (the consumer takes them
#: at least every 0.1 s, and at once when a ring is a quarter full).
RING_SLOTS = 8192
#: Bytes per slot: any datagram that fits one Ethernet frame (1472 bytes of UDP payload) is kept
#: whole, so malformed datagrams are recorded byte for byte too. A longer one (only possible with
#: IP fragmentation; no supported game sends one) keeps its first SLOT_BYTES and is malformed.
SLOT_BYTES = 2048

#: How many of a batch's newest name packets are looked at for a name (the rest are older).
NAME_LOOKBACK = 16


class Sink(Protocol):
    """Receives every batch a feed consumes (the recorder implements this)."""

    #: How often this sink needs the raw halves now, seconds (None: at the decoding passes, no
    #: more often than the feed manager's default). The recorder asks for them at least every
    #: second while it records; between decoding passes they come from raw passes
    #: (:meth:`Feed.take_raw`), which decode nothing.
    raw_interval_s: float | None

    def on_raw(self, feed: "Feed", t_ns: np.ndarray, lengths: np.ndarray, data: np.ndarray, malformed: int) -> bool:
        """All datagrams of a batch as received: times (ns), true lengths, slot bytes (n × slot),
        and how many of them were malformed. The arrays are ring memory: valid during the call.
        Returns whether the sink keeps this batch: only then does it get the batch's decoded
        groups (:meth:`on_decoded`), so a sink has both halves of a batch or neither."""

    def on_decoded(self, feed: "Feed", layout: PacketLayout, columns: dict[str, np.ndarray], t_ns: np.ndarray,
                   canonical: np.ndarray | None) -> None:
        """The well-formed datagrams of one packet kind in the batch, decoded (a mapping of field
        name → column view over packed rows, ``columns.rows``), with their canonical rows (None
        for kinds without driving data). All of them are allocated afresh for each call (never
        ring memory), so a sink may keep them."""


@dataclass
class _RawBatch:
    """Slots at the ring's tail whose raw half went to the sinks (:meth:`Feed.take_raw`), not yet
    decoded: how many, their byte offsets in the ring and lengths, kind ids (−1 malformed), how
    many are malformed, and the sinks that kept them (only those get the decoded half)."""

    count: int
    offsets: np.ndarray
    lengths: np.ndarray  # bytes of each datagram (messages of variable length are parsed again)
    kinds: np.ndarray
    malformed: int
    keeping: list


@dataclass
class FeedStats:
    """Counters of one feed since the server started."""

    packets: int = 0
    bytes: int = 0
    malformed: int = 0
    dropped: int = 0  # datagrams read but not kept because the ring was full (the consumer fell behind)
    #: Datagrams the kernel dropped before the receive thread could read them (the socket's
    #: receive buffer was full). Learnt from the next datagram that arrives after a drop; stays 0
    #: where the platform has no SO_RXQ_OVFL (and with the Python fallback receiver).
    kernel_dropped: int = 0
    refused: int = 0  # datagrams from a source that is not allowed (not recorded)
    shed: int = 0  # malformed datagrams not kept because the ring was over half full (a flood)
    sequence_gaps: int = 0
    errors: int = 0


@dataclass
class Feed:
    """A feed: ``name`` (ksudp, telemetry_tool, pcars, acc), its bound socket (``None`` = not available)."""

    name: str
    port: int
    protocols: Protocols
    sock: socket.socket | None
    error: str | None = None
    ring: PacketRing = field(init=False)
    stats: FeedStats = field(default_factory=FeedStats)
    latest: np.ndarray = field(init=False)  # one canonical row, the newest
    last_good_ns: int | None = None
    info: dict[str, str] = field(default_factory=dict)  # car, track, driver … as the game names them
    handshaking: bool | str = False  # see rt.feeds.health.health
    #: what a feed's session adds to its live entry (ACC: session, position, delta …)
    extra: dict = field(default_factory=dict)
    lost_s: float = LOST_S
    #: forwarding targets (RUSTY_TELEMETRY_FORWARD) as /api/live shows them: target, sent,
    #: dropped, errors (the feed manager updates them each pass)
    forward: list[dict] = field(default_factory=list)
    _last_seq: dict[str, int] = field(default_factory=dict)
    _raw_batches: deque[_RawBatch] = field(default_factory=deque)  # in ring order, from the tail
    _taken_raw: int = 0  # their slots
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.ring = PacketRing(RING_SLOTS, max(SLOT_BYTES, self.protocols.max_datagram(self.name)))
        if self.sock is not None:
            # A receiving feed's ring is touched now, so the kernel maps its pages at start-up:
            # otherwise the receive thread page-faults its way through the ring on its first lap
            # (24 s of a 333 Hz game, a third of its CPU then), and memory grows over that time
            # instead of being known from the start. (Not for feeds without a socket: tests and
            # the fuzzer make thousands, and 16 MiB of zeros each cost them more than the rest.)
            self.ring.data_buffer.fill(0)
        self.latest = np.zeros(1, dtype=CANONICAL_DTYPE)
        self._has_data = False
        self._batch = BatchDecoder(self.protocols, self.name)

    @property
    def available(self) -> bool:
        return self.sock is not None

    def health(self, now_ns: int | None = None) -> str:
        now = clock.now_ns() if now_ns is None else now_ns
        return health(self.available, self.last_good_ns, now, self.handshaking, self.lost_s)

    def frequency_hz(self, now_ns: int | None = None) -> float:
        """Datagrams per second over the last second (from the ring's receive times)."""
        now = clock.now_ns() if now_ns is None else now_ns
        times = self.ring.last_times(4096)
        if times.size == 0:
            return 0.0
        recent = times[times > now - 1_000_000_000]
        if recent.size == times.size and times.size > 1:
            # All of the history is inside the last second: the rate is at least this.
            span = (times[-1] - times[0]) / 1e9
            return float((times.size - 1) / span) if span > 0 else float(times.size)
        return float(recent.size)

    # ---- consumer thread ------------------------------------------------------------------

    @property
    def untaken(self) -> int:
        """Datagrams in the ring that no pass has taken yet (not even raw)."""
        return self.ring.pending - self._taken_raw

    def take_raw(self, sinks: list[Sink]) -> int:
        """Hand the sinks the raw half (:meth:`Sink.on_raw`) of everything received since the last
        call, without decoding it: a raw pass, which keeps a recording's raw files within a second
        of the sockets at a fraction of a decoding pass's cost. The slots stay in the ring until
        :meth:`consume` decodes them for the same sinks. Returns the datagrams handed over."""
        total = 0
        ring = self.ring
        buf = ring.data_buffer
        while True:
            first, t_ns, lengths, data = ring.peek(BATCH, self._taken_raw)
            n = t_ns.shape[0]
            if n == 0:
                break
            offsets = (np.arange(first, first + n, dtype=np.int64)) * ring.slot_size
            kinds, bad = self._batch.classify(buf, offsets, lengths)
            with self._lock:
                self.stats.packets += n
                self.stats.bytes += int(lengths.sum())
                self.stats.malformed += bad
            keeping = [sink for sink in sinks if sink.on_raw(self, t_ns, lengths, data, bad)]
            self._raw_batches.append(_RawBatch(n, offsets, np.array(lengths, dtype=np.int64), kinds, bad, keeping))
            self._taken_raw += n
            total += n
        self.stats.dropped = ring.dropped
        return total

    def consume(self, sinks: list[Sink], handler=None) -> int:
        """Take everything waiting in the ring, batch by batch: the raw half to the sinks (unless
        a raw pass did, :meth:`take_raw`), then decoded, to the sinks that kept the raw half.
        Returns datagrams consumed.

        ``handler(feed, layout, columns, t_ns)`` sees each decoded group first (the ksudp
        handshake uses it to read the game's answer).
        """
        self.take_raw(sinks)
        total = 0
        ring = self.ring
        buf = ring.data_buffer
        while self._raw_batches:
            batch = self._joined_raw_batch()
            _, t_ns, _, _ = ring.peek(batch.count)  # the batch's slots: contiguous, from the tail
            try:
                if batch.malformed < batch.count:
                    self._decode_groups(batch.kinds, batch.offsets, batch.lengths, t_ns, buf, batch.keeping, handler)
            finally:
                ring.release(batch.count)
                self._taken_raw -= batch.count
            total += batch.count
        return total

    def _joined_raw_batch(self) -> _RawBatch:
        """The oldest raw batches, joined while they follow each other in the ring, went to the
        same sinks and stay within BATCH: a decode's cost is mostly per call, not per datagram."""
        first = self._raw_batches.popleft()
        parts = [first]
        count = first.count
        while self._raw_batches:
            nxt = self._raw_batches[0]
            adjacent = int(nxt.offsets[0]) == int(parts[-1].offsets[-1]) + self.ring.slot_size
            if not adjacent or nxt.keeping != first.keeping or count + nxt.count > BATCH:
                break
            parts.append(self._raw_batches.popleft())
            count += nxt.count
        if len(parts) == 1:
            return first
        return _RawBatch(count, np.concatenate([p.offsets for p in parts]), np.concatenate([p.lengths for p in parts]),
                         np.concatenate([p.kinds for p in parts]), sum(p.malformed for p in parts), first.keeping)

    def _decode_groups(self, kinds, offsets, lengths, t_ns, buf, sinks, handler) -> None:
        # With no sink keeping the batch only the live view needs canonical rows: its newest
        # frame. Mapping costs per row, and a game's 333 rows a second would be mapped for nothing.
        numbered: dict = {}  # counter name → (its declaration, [(batch positions, numbers)])
        for group in self._batch.groups(buf, offsets, t_ns, kinds, tail_only=not sinks, lengths=lengths):
            layout, cols, group_t, canon = group.layout, group.columns, group.t_ns, group.canonical
            if handler is not None:
                handler(self, layout, cols, group_t)
            # Before the sinks: a recording takes its game, track and car from what was named.
            self._remember_names(layout, cols, canon is not None)
            for sink in sinks:
                sink.on_decoded(self, layout, cols, group_t, canon)
            if layout.sequence is not None:
                seq = layout.sequence
                numbered.setdefault(seq.counter, (seq, []))[1].append(
                    (np.flatnonzero(group.selected), seq.values(cols[seq.field])))
            # Groups come by kind, not by time: keep the newest row of any driving kind.
            # (a kind that maps only some rows, ACC's focused car among the field, may map none)
            if canon is not None and len(canon) and (not self._has_data or canon["t_ns"][-1] >= self.latest["t_ns"][0]):
                self.latest = canon[-1:].copy()
                self._has_data = True
            newest = int(group_t[-1])
            if self.last_good_ns is None or newest > self.last_good_ns:
                self.last_good_ns = newest

        for counter, (seq, parts) in numbered.items():
            self._count_gaps(counter, seq, parts)

    def start_recording(self) -> None:
        """A recording starts with the batch being consumed: forget data carried over from packets
        before it (PCARS 2 lap data), so its frames depend on its raw file alone. Consumer thread."""
        self._batch.restart()

    def _count_gaps(self, counter: str, seq, parts: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Count the packets missing from one counter's numbers in this batch (and since the last).

        Kinds that share a counter are decoded group by group, so their numbers are put back in
        arrival order before the steps are taken.
        """
        if len(parts) == 1:
            numbers = parts[0][1]
        else:
            positions = np.concatenate([p for p, _ in parts])
            numbers = np.concatenate([v for _, v in parts])[np.argsort(positions, kind="stable")]
        prev = self._last_seq.get(counter)
        full = numbers if prev is None else np.concatenate(([prev], numbers))
        if full.size > 1:
            step = np.diff(full) % seq.modulo
            missing = step[(step > 1) & (step < (seq.reset or seq.modulo))] - 1
            self.stats.sequence_gaps += int(missing.sum())
        self._last_seq[counter] = int(numbers[-1])

    def _remember_names(self, layout: PacketLayout, cols, has_driving_data: bool) -> None:
        if has_driving_data and layout.game:
            self.info["game"] = layout.game
        # The games send these packets from their menus too, with empty names: an empty name
        # says nothing, so it never replaces one the game gave before (in this batch or earlier).
        for key, field_name in layout.names.items():
            column, wide = cols[field_name], layout[field_name].wtype == "wchar"
            # Strings packets are rare (a few per batch); a flood of empty ones costs at most
            # NAME_LOOKBACK decodes per batch, not one Python string per datagram.
            for k in range(len(column) - 1, max(-1, len(column) - 1 - NAME_LOOKBACK), -1):
                value = decode_text(column[k], wide)
                if value.strip():
                    self.info[key] = value
                    break

    def live(self, now_ns: int | None = None) -> dict:
        """This feed's entry of ``GET /api/live`` (values ``None`` until the feed has data)."""
        now = clock.now_ns() if now_ns is None else now_ns
        row = self.latest[0]
        has = self._has_data

        def f(name: str, digits: int = 3):
            if not has:
                return None
            v = float(row[name])
            return None if v != v else round(v, digits)  # NaN → null

        def i(name: str):
            if not has:
                return None
            v = int(row[name])
            return None if v < 0 else v

        with self._lock:
            stats = self.stats
            out = {
                "health": self.health(now),
                "port": self.port,
                "frequency_hz": round(self.frequency_hz(now), 1),
                "packets": stats.packets,
                "malformed": stats.malformed,
                "dropped": self.ring.dropped,
                "kernel_dropped": stats.kernel_dropped,
                "last_packet_age_ms": age_ms(self.last_good_ns, now),
            }
        out.update(
            car=self.info.get("car"),
            track=self.info.get("track"),
            speed_kmh=f("speed_kmh", 2),
            rpm=f("rpm", 1),
            gear=int(row["gear"]) if has else None,
            throttle=f("throttle"),
            brake=f("brake"),
            clutch=f("clutch"),
            steer=f("steer"),
            lap_count=i("lap_count"),
            lap_time_ms=i("lap_time_ms"),
            last_lap_ms=i("last_lap_ms"),
            best_lap_ms=i("best_lap_ms"),
            sequence_gaps=self.stats.sequence_gaps,
            refused=self.stats.refused,
            shed=self.stats.shed,
            forward=[dict(entry) for entry in self.forward],
        )
        if self.extra:
            out.update(self.extra)
        if self.error:
            out["error"] = self.error
        return out
