"""The feed manager: binds the feeds, runs the receive thread and the consumer thread.

Two threads, so a slow consumer (an HDF5 flush, a busy API) never delays a receive:

* **receive** (``rt_ext.recv.ReceiverLoop``, GIL released): drains every socket into its ring
  with ``recvmmsg`` once per period: ``RECV_PERIOD_MS`` while the traffic is heavy, up to
  :data:`RECV_MAX_PERIOD_MS` at a game's few hundred datagrams a second (the kernel's receive times
  keep the true arrival times); on platforms without ``recvmmsg`` a Python ``recv_into`` loop
  does the same job, slower.
* **consume** (Python): takes each ring's batches, decodes them, feeds the sinks (the recorder)
  and the live values, and drives the handshakes (AC's KSUDP, ACC's registration). A decoding pass costs milliseconds of
  Python whatever its size (mostly its cold start), so there are as few as the work needs: every
  :data:`PASS_S`, at once when a ring is a quarter full or data resumes after a quiet second, and
  on demand when the live view is read (:meth:`FeedManager.live`: values at most
  :data:`LIVE_MAX_AGE_S` old) or someone waits for one (:meth:`FeedManager.drain`). While the
  recorder needs its raw files written more often (``Sink.raw_interval_s``), the passes between
  are raw passes: the raw halves only, nothing decoded (``Feed.take_raw``), a tenth of the cost.

Nothing is lost silently: every datagram sent to a feed's socket is in its ``packets``, or counted
as ``refused`` (a source not allowed), ``shed`` (garbage while the ring was over half full),
``dropped`` (the ring was full: the consumer fell behind) or ``kernel_dropped`` (the socket's
receive buffer overflowed before the receive thread read it: Linux, SO_RXQ_OVFL; a drop is known
once the next datagram arrives; 0 on other platforms and with the Python receive loop).

A port that cannot be bound leaves its feed ``not_available``; the others carry on.

Forwarding (``RUSTY_TELEMETRY_FORWARD``): each target gets a connected non-blocking UDP socket of
its own (a refusal then reaches that target's counters only). The receive thread re-sends every
datagram a feed's source filter accepted to its targets, in batches from the ring slots (see
``rt_ext/recv.pyx``); the Python fallback receiver sends each one with a plain ``send``. Counted per
target in the feed's ``forward`` entry of /api/live.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import select
import selectors
import socket
import threading
import time
from typing import Callable, Iterable

import numpy as np

from .. import clock
from ..config import Config, forward_label
from ..protocols import FEEDS, Protocols
from ..recv import COUNTER_NAMES, FORWARD_COUNTER_NAMES, FORWARD_PAUSE_S, HAVE_RECVMMSG, SO_RXQ_OVFL, SO_TIMESTAMPNS, ReceiverLoop
from .feed import BATCH, Feed, Sink
from .health import LOST_S, age_ms, health
from .acc import AccSession
from .ksudp import RETRY_S, KsudpSession, resolve

log = logging.getLogger(__name__)

#: While data flows, the rings are decoded this often unless someone asks for more (a live read,
#: drain): a ring holds 24 s of a 333 Hz feed and is taken at once when a quarter full, and a
#: recording's raw batches go out every second in between (raw passes).
PASS_S = 4.0
#: While the ksudp handshake waits for the game, the consumer wakes this often (its retries;
#: the game's answer wakes it at once, being data after a quiet second).
IDLE_S = RETRY_S
#: :meth:`FeedManager.live` runs a pass first when the last one is older than this.
LIVE_MAX_AGE_S = 0.1
#: How long a live read waits for that pass before it answers with the last values.
LIVE_WAIT_S = 0.25
#: A live read that finds the snapshot older than this share of :data:`LIVE_MAX_AGE_S` (but
#: younger than it) answers with it at once and asks the consumer for a fresh one, without
#: waiting: a client polling more often than every ``LIVE_MAX_AGE_S`` then never waits for a
#: pass, which crosses three threads and queues behind whatever the consumer is doing.
LIVE_REFRESH_SHARE = 0.25
#: The receive thread's longest drain period, ms (it adapts between RECV_PERIOD_MS and this):
#: what a datagram can wait in the kernel before it reaches a ring.
RECV_MAX_PERIOD_MS = 100.0

_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
# Columns of the receive loop's per-socket counters that FeedStats mirrors.
_REFUSED, _ERRORS, _SHED, _KERNEL_DROPPED = (COUNTER_NAMES.index(n) for n in ("refused", "errors", "shed", "kernel_dropped"))


def _udp_socket(family: int, addr: tuple[str, int], rcvbuf: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # Large receive buffers absorb bursts while the receiver sleeps between batches;
        # SO_RCVBUFFORCE passes the system cap when we may, SO_RCVBUF is capped by it otherwise.
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, rcvbuf)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if SO_TIMESTAMPNS >= 0:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if SO_RXQ_OVFL >= 0:
            # Each datagram then carries the socket's drop count: a buffer overflow is counted
            # (FeedStats.kernel_dropped), never silent. Set before bind, so no drop escapes it.
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        sock.bind(addr)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _forward_socket(ip: str, port: int) -> socket.socket:
    """A non-blocking UDP socket connected to one forwarding target."""
    sock = socket.socket(_family(ip), socket.SOCK_DGRAM)
    try:
        # Nothing is read from it: a target that answers fills this small buffer, then the kernel drops.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((ip, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _is_own_socket(fwd: socket.socket, own: socket.socket) -> bool:
    """Whether the connected ``fwd`` sends to ``own``'s port on this machine (its route's local
    address is the target's, or the target is loopback), where ``own`` listens."""
    peer_ip, peer_port = fwd.getpeername()[:2]
    own_ip, own_port = own.getsockname()[:2]
    local = ipaddress.ip_address(peer_ip).is_loopback or fwd.getsockname()[0] == peer_ip
    return peer_port == own_port and local and (ipaddress.ip_address(own_ip).is_unspecified or own_ip == peer_ip)


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _raw_interval(sinks: list[Sink]) -> float | None:
    """Seconds between passes that the sinks need for their raw halves (see
    ``Sink.raw_interval_s``), when that is more often than the decoding passes (:data:`PASS_S`)."""
    wanted = [w for w in (getattr(s, "raw_interval_s", None) for s in sinks) if w and w < PASS_S]
    return min(wanted) if wanted else None


class FeedManager:
    """All feeds of one server process."""

    def __init__(self, config: Config, protocols: Protocols, lost_s: float = LOST_S,
                 live_max_age_s: float = LIVE_MAX_AGE_S) -> None:
        """``lost_s``: quiet seconds after which a feed is ``lost``; ``live_max_age_s``: the oldest
        live snapshot :meth:`live` answers with (tests shorten both)."""
        self.config = config
        self.lost_s = lost_s
        self.live_max_age_s = live_max_age_s
        self.protocols = protocols
        self.feeds: dict[str, Feed] = {}
        self.sinks: list[Sink] = []
        self.ksudp: KsudpSession | None = None
        self.acc: AccSession | None = None
        #: feed name → the session that handshakes for it (its handler sees the feed's decoded groups)
        self.sessions: dict[str, KsudpSession | AccSession] = {}
        self._allow: dict[str, list[tuple[str, int]] | None] = {}
        #: forwarding targets' sockets by feed, and their counters' rows (see :meth:`_bind_forward`)
        self._fwd_socks: dict[str, list[socket.socket]] = {}
        self._fwd_rows: list[dict] = []  # the feeds' live "forward" entries, in counter-row order
        #: counters of the Python receiver (the loop keeps its own): targets × FORWARD_COUNTER_NAMES
        self._fwd_counts = np.zeros((0, len(FORWARD_COUNTER_NAMES)), dtype=np.int64)
        self._loop: ReceiverLoop | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._passes = 0  # decoding passes (what wait_passes counts)
        self._raw_passes = 0
        self._decode_wanted = 0  # decoding passes someone waits for, back to back (drain)
        self._last_decoding_s = 0.0  # monotonic time of the last one
        self._consumer: threading.Thread | None = None
        self._live: dict | None = None  # name → (live entry, last good ns, handshaking), per pass
        self._live_ns = 0  # monotonic time of that snapshot
        self._live_wanted = False  # a reader waits for a fresh snapshot (refresh_live)
        self._pass_done = threading.Condition()
        self.on_tick: list[Callable[[], None]] = []

    # ---- start / stop ---------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        self._bind_ksudp()
        self._bind_acc()
        for name, port in (("telemetry_tool", cfg.tt_port), ("pcars", cfg.pcars_port)):
            try:
                sock = _udp_socket(_family(cfg.listen), (cfg.listen, port), cfg.rcvbuf_bytes)
                self.feeds[name] = Feed(name, sock.getsockname()[1], self.protocols, sock, lost_s=self.lost_s)
                # ALLOW_FROM limits the listening feeds to those sources (any port); others are refused
                self._allow[name] = [(ip, 0) for ip in cfg.allow_from] or None
            except OSError as exc:
                log.warning("%s: cannot bind %s:%d (%s); the feed is not available", name, cfg.listen, port, exc.strerror)
                self.feeds[name] = Feed(name, port, self.protocols, None, error=f"cannot bind {cfg.listen}:{port}: {exc.strerror}")
        self._bind_forward()
        bound = [(f.sock, f.ring, self._allow.get(f.name), self.protocols.feed_rules[f.name].rules,
                  self._fwd_socks.get(f.name, []))
                 for f in self.feeds.values() if f.sock is not None]
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        if HAVE_RECVMMSG:
            self._loop = ReceiverLoop([(s.fileno(), r, a, rules, [t.fileno() for t in fwd]) for s, r, a, rules, fwd in bound],
                                      cfg.recv_period_ms,
                                      self._wake_w, (_raw_interval(self.sinks) or PASS_S) * 1000, clock.EPOCH_OFFSET_NS,
                                      max(cfg.recv_period_ms, RECV_MAX_PERIOD_MS))
            self._spawn("rt-receive", self._loop.run)
        else:
            self._spawn("rt-receive", lambda: self._python_receive(bound))
        self._consumer = self._spawn("rt-consume", self._consume_loop)

    def _bind_forward(self) -> None:
        """One connected socket per forwarding target of a bound feed. A target that cannot be
        reached at all (no route) is listed with its error and counts nothing; the rest forward."""
        for name, ip, port in self.config.forward:
            feed = self.feeds.get(name)
            if feed is None or feed.sock is None:
                continue
            entry: dict = {"target": forward_label(ip, port), "sent": 0, "dropped": 0, "errors": 0}
            feed.forward.append(entry)
            try:
                sock = _forward_socket(ip, port)
            except OSError as exc:
                log.warning("%s: cannot forward to %s (%s)", name, entry["target"], exc.strerror)
                entry["error"] = f"cannot forward: {exc.strerror}"
                continue
            if _is_own_socket(sock, feed.sock):
                # each forwarded datagram would come back and be forwarded again: a storm
                sock.close()
                log.warning("%s: not forwarding to %s, the feed's own socket", name, entry["target"])
                entry["error"] = "the feed's own socket"
                continue
            self._fwd_socks.setdefault(name, []).append(sock)
        # rows in the receive loop's order: feed after feed, as bound
        self._fwd_rows = [e for f in self.feeds.values() for e in f.forward if "error" not in e]
        self._fwd_counts = np.zeros((len(self._fwd_rows), len(FORWARD_COUNTER_NAMES)), dtype=np.int64)

    def _bind_asking(self, name: str, port: int) -> tuple[Feed, tuple[str, int]] | None:
        """Bind the socket of a feed that asks the game to stream to it (ksudp, acc): an ephemeral
        local port, accepting only GAME_HOST's ``port``. None (and the feed not available) if not."""
        cfg = self.config
        target = resolve(cfg.game_host, port)
        if target is None:
            self.feeds[name] = Feed(name, port, self.protocols, None, error=f"cannot resolve GAME_HOST {cfg.game_host!r}")
            return None
        family, addr = target
        local = cfg.listen if _family(cfg.listen) == family else ("::" if family == socket.AF_INET6 else "0.0.0.0")
        try:
            sock = _udp_socket(family, (local, 0), cfg.rcvbuf_bytes)
        except OSError as exc:
            self.feeds[name] = Feed(name, port, self.protocols, None, error=f"cannot bind: {exc.strerror}")
            return None
        feed = Feed(name, port, self.protocols, sock, lost_s=self.lost_s)
        self.feeds[name] = feed
        self._allow[name] = [(addr[0], addr[1])]  # the game, and nobody else
        return feed, addr

    def _bind_ksudp(self) -> None:
        bound = self._bind_asking("ksudp", self.config.ksudp_port)
        if bound is not None:
            self.ksudp = self.sessions["ksudp"] = KsudpSession(*bound, self.lost_s)

    def _bind_acc(self) -> None:
        cfg = self.config
        bound = self._bind_asking("acc", cfg.acc_port)
        if bound is not None:
            self.acc = self.sessions["acc"] = AccSession(*bound, cfg.acc_password, cfg.acc_interval_ms,
                                                          cfg.acc_command_password, self.lost_s)

    def _spawn(self, name: str, target: Callable[[], object]) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def stop(self) -> None:
        """Dismiss the games, stop both threads, take what is left in the rings, close sockets."""
        for session in self.sessions.values():
            session.close()
        self._stop.set()
        if self._wake_w is not None:
            os.write(self._wake_w, b"x")
        if self._loop is not None:
            self._loop.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        if self._loop is not None:
            self._loop.drain_once()
            self._loop.close()
        self._consume_pass()
        for feed in self.feeds.values():
            if feed.sock is not None:
                feed.sock.close()
        for socks in self._fwd_socks.values():
            for sock in socks:
                sock.close()
        for fd in (self._wake_r, self._wake_w):
            if fd is not None:
                os.close(fd)
        self._wake_r = self._wake_w = None

    # ---- threads --------------------------------------------------------------------------

    def _consume_loop(self) -> None:
        # With recvmmsg the receive loop wakes us (at most once per interval while data flows, at
        # once when a ring fills); the timeout is for quiet feeds and the portable receiver.
        while not self._stop.is_set():
            taken = 0
            try:
                if self._decoding_pass_due():
                    taken = self._consume_pass()
                else:
                    self._raw_pass()
            except Exception:  # a bug in a sink must not kill ingest; it is logged loudly
                log.exception("consumer pass failed")
            if taken >= BATCH or self._decode_wanted:
                continue  # a burst: keep draining so the rings never fill; or drain() waits
            interval = _raw_interval(self.sinks) or PASS_S
            if self._loop is None:
                self._sleep(min(interval, IDLE_S))
                continue
            self._loop.notify_every_ms = interval * 1000
            # The receive loop's notice starts the next pass; the timeout only serves quiet feeds
            # (their timers), so it must not add a second pass per interval. Nor do the handshake's
            # retries while the game is silent: they only send (the user who races PCARS only).
            deadline = time.monotonic() + interval * 1.5
            while not self._stop.is_set():
                # the sessions whose handshake waits for the game
                handshaking = [s for s in self.sessions.values() if not s.streaming]
                left = deadline - time.monotonic()
                if self._sleep(min(left, IDLE_S) if handshaking else left) or time.monotonic() >= deadline:
                    break
                if any(s.feed.ring.pending for s in handshaking):
                    break  # the game spoke: the handshake reads its answer in a pass first
                for session in handshaking:
                    session.tick()

    def _decoding_pass_due(self) -> bool:
        """Whether the next pass decodes (else it is a raw pass, :meth:`_raw_pass`): every
        :data:`PASS_S`, and at once for whoever waits on one (a live read, :meth:`drain`), heavy
        traffic, or a handshake that may have the game's answer."""
        if _raw_interval(self.sinks) is None or self._decode_wanted or self._live_wanted or self._live is None:
            return True
        if time.monotonic() - self._last_decoding_s >= PASS_S:
            return True
        if any(not s.streaming and s.feed.ring.pending for s in self.sessions.values()):
            return True  # perhaps the game's answer: the handshake reads it decoded
        # Raw passes pay off at a game's rates; under heavy traffic (an eighth of a ring arrived
        # since the last pass) every pass decodes, or the raw pass would only add a second pass
        # over the same slots. A ring a quarter full is decoded whatever filled it.
        return any(f.ring.pending * 4 > f.ring.capacity or f.untaken * 8 > f.ring.capacity
                   for f in self.feeds.values() if f.sock is not None)

    def _raw_pass(self) -> int:
        """Hand the sinks the raw halves of what arrived, decode nothing (see ``Feed.take_raw``):
        a decoding pass costs milliseconds, mostly its cold start, whatever its size, so while
        a recording needs its raw files written every second, three in four passes are these."""
        taken = sum(f.take_raw(self.sinks) for f in self.feeds.values() if f.sock is not None)
        for callback in self.on_tick:  # the recorder's syncs keep their interval
            callback()
        self._raw_passes += 1
        return taken

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds``, or less when the receiver or :meth:`stop` writes to the wake pipe;
        returns whether it did."""
        wake_r = self._wake_r
        assert wake_r is not None  # the pipe lives from start() until stop() has joined the consumer
        woken, _, _ = select.select([wake_r], [], [], max(0.0, seconds))
        try:
            while os.read(wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        return bool(woken)

    def _consume_pass(self) -> int:
        """One decoding pass over every feed; returns the datagrams consumed."""
        self._decode_wanted = max(0, self._decode_wanted - 1)
        self._last_decoding_s = time.monotonic()
        taken = 0
        counters = self._loop.counters if self._loop is not None else None
        bound = [f for f in self.feeds.values() if f.sock is not None]
        for k, feed in enumerate(bound):
            session = self.sessions.get(feed.name)
            taken += feed.consume(self.sinks, session.on_decoded if session is not None else None)
            if counters is not None:
                feed.stats.refused = int(counters[k, _REFUSED])
                feed.stats.errors = int(counters[k, _ERRORS])
                feed.stats.shed = int(counters[k, _SHED])
                feed.stats.kernel_dropped = int(counters[k, _KERNEL_DROPPED])
        fwd = self._loop.forward_counters if self._loop is not None else self._fwd_counts
        for row, entry in enumerate(self._fwd_rows):
            entry.update(zip(FORWARD_COUNTER_NAMES, (int(v) for v in fwd[row])))
        for session in self.sessions.values():
            session.tick()
        if self._live_wanted or self._live is None:
            # Only when read: building the entries costs as much as decoding a small batch.
            self._live_wanted = False
            self._publish_live()
        for callback in self.on_tick:
            callback()
        with self._pass_done:
            self._passes += 1
            self._pass_done.notify_all()
        return taken

    def _python_receive(self, bound: Iterable) -> None:
        """Portable receive loop (no recvmmsg): one recv_into per datagram, wall-clock stamps; each
        accepted datagram forwarded with one plain ``send`` per target (counted like the loop's)."""
        sel = selectors.DefaultSelector()
        scratch = bytearray(65536)
        view = memoryview(scratch)
        counts = self._fwd_counts
        paused_until: dict[int, float] = {}  # a refusing or unreachable target's row: left alone until then
        row = 0
        for sock, ring, allow, _rules, fwd in bound:
            targets = [(t, row + k) for k, t in enumerate(fwd)]
            row += len(fwd)
            sel.register(sock, selectors.EVENT_READ, (sock, ring, {a[0] for a in allow} if allow else None, targets))
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=0.2):
                # key.fileobj is typed as any file-like; the data carries the socket itself
                udp: socket.socket
                udp, ring, allowed, targets = key.data
                while True:
                    try:
                        n, addr = udp.recvfrom_into(scratch)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    if allowed is not None and addr[0] not in allowed:
                        continue
                    ring.push_bytes(clock.now_ns(), view[:n])
                    for target, k in targets:
                        if k in paused_until:
                            if time.monotonic() < paused_until[k]:
                                counts[k, 1] += 1
                                continue
                            del paused_until[k]
                        try:
                            target.send(view[:n])
                            counts[k, 0] += 1
                        except BlockingIOError:  # its send buffer is full: never wait
                            counts[k, 1] += 1
                        except OSError:  # refused, unreachable: as the recvmmsg loop does, pause it
                            counts[k, 1] += 1
                            counts[k, 2] += 1
                            paused_until[k] = time.monotonic() + FORWARD_PAUSE_S
        sel.close()

    # ---- for the API and tests ------------------------------------------------------------

    def wake(self) -> None:
        """Make the consumer run a pass now instead of at its next tick."""
        if self._wake_w is not None:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass

    def drain(self, timeout: float = 5.0) -> bool:
        """Return once the consumer has taken (and decoded) everything received before this call.

        On the consumer thread itself (a sink that stops a recording on a write error) it cannot
        wait for its own passes: returns False at once."""
        if not self._threads:
            return True
        if threading.current_thread() is self._consumer:
            return False
        with self._pass_done:
            # two passes, back to back: the one running now may have started before the call
            target = self._passes + 2
            self._decode_wanted = 2
        self.wake()
        if self._loop is not None:
            self._loop.wake()
        with self._pass_done:
            return self._pass_done.wait_for(lambda: self._passes >= target, timeout)

    def counts(self) -> dict[str, int]:
        """For the memory log: consumer passes so far, decoding and raw."""
        return {"decoding_passes": self._passes, "raw_passes": self._raw_passes}

    def losses(self) -> dict[str, tuple[int, int]]:
        """Per feed, the datagrams lost since start-up: (by its ring, full: the consumer fell
        behind; by the kernel, its socket buffer full). Empty before :meth:`start`."""
        return {name: (feed.ring.dropped, feed.stats.kernel_dropped) for name, feed in self.feeds.items()}

    def wait_passes(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until ``count`` more consumer passes have finished (tests await this, no sleeps)."""
        with self._pass_done:
            target = self._passes + count
            return self._pass_done.wait_for(lambda: self._passes >= target, timeout)

    def _publish_live(self) -> None:
        """Take the live view of every feed at once, between two passes (consumer thread).

        /api/live reads this snapshot, so its counters and values all belong to one moment: no
        feed's packets counted before its values were decoded, no feed a batch ahead of another.
        """
        now = clock.now_ns()
        self._live = {name: (self.feeds[name].live(now), self.feeds[name].last_good_ns, self.feeds[name].handshaking)
                      for name in FEEDS if name in self.feeds}
        self._live_ns = time.monotonic_ns()

    def live_is_stale(self) -> bool:
        """Whether :meth:`live` would first wait for a consumer pass (its snapshot is too old)."""
        return bool(self._threads) and time.monotonic_ns() - self._live_ns > self.live_max_age_s * 1e9

    def refresh_live(self, ask: bool = True, wait: bool = True) -> None:
        """Bring the live snapshot up to date: the receive thread drains the sockets and the
        consumer runs a pass (waits at most :data:`LIVE_WAIT_S`; not at all unless ``wait``).
        Nothing to wait for while fresh; past :data:`LIVE_REFRESH_SHARE` of its age limit a fresh
        one is asked for, not waited for (the next read gets it), unless ``ask`` is False (the
        caller asks later with :meth:`keep_live_fresh`)."""
        if not self._threads:
            return
        if time.monotonic_ns() - self._live_ns <= self.live_max_age_s * 1e9 or not wait:
            if ask:
                self.keep_live_fresh()
            return
        asked = time.monotonic_ns()
        self._ask_for_live()
        with self._pass_done:
            self._pass_done.wait_for(lambda: self._live_ns >= asked, LIVE_WAIT_S)

    def keep_live_fresh(self) -> None:
        """Ask the consumer for a fresh snapshot once this one is past :data:`LIVE_REFRESH_SHARE`
        of its age limit; never waits.

        /api/live calls this after its answer is on its way: the pass it asks for then runs
        between two polls instead of beside the request that asked for it."""
        if self._threads and time.monotonic_ns() - self._live_ns > self.live_max_age_s * LIVE_REFRESH_SHARE * 1e9:
            self._ask_for_live()

    def _ask_for_live(self) -> None:
        self._live_wanted = True
        if self._loop is not None:
            self._loop.wake()  # it drains the sockets, then wakes the consumer
        else:
            self.wake()

    def live(self, ask: bool = True, wait: bool = True) -> dict[str, dict]:
        """Every feed's entry of /api/live: the consumer's snapshot (see :meth:`_publish_live`),
        refreshed first when older than :data:`LIVE_MAX_AGE_S`, with health and age as of now;
        computed directly before the first pass. ``ask``, ``wait``: see :meth:`refresh_live`."""
        self.refresh_live(ask, wait)
        now = clock.now_ns()
        snapshot = self._live
        if snapshot is None:
            return {name: self.feeds[name].live(now) for name in FEEDS if name in self.feeds}
        out = {}
        for name, (entry, last_good, handshaking) in snapshot.items():
            feed = self.feeds[name]
            entry = dict(entry)
            entry["health"] = health(feed.available, last_good, now, handshaking, feed.lost_s)
            entry["last_packet_age_ms"] = age_ms(last_good, now)
            out[name] = entry
        return out
