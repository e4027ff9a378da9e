"""The feed manager: binds the feeds, runs the receive thread and the consumer thread.

Two threads, so a slow consumer (an HDF5 flush, a busy API) never delays a receive:

* **receive** (``rt_ext.recv.ReceiverLoop``, GIL released): drains every socket into its ring
  with ``recvmmsg`` once per ``RECV_PERIOD_MS``; on platforms without ``recvmmsg`` a Python
  ``recv_into`` loop does the same job, slower.
* **consume** (Python): woken by the receive thread at most every :data:`TICK_S` while data
  flows (at once when a ring is filling), takes each ring's batches, decodes them, feeds the sinks
  (the recorder) and the live values, and drives the ksudp handshake. Python wake-ups cost far
  more than the work of a batch, so there are as few as possible: ~10/s busy, 2/s idle.

Nothing is lost silently: every datagram sent to a feed's socket is in its ``packets``, or counted
as ``refused`` (a source not allowed), ``shed`` (garbage while the ring was over half full),
``dropped`` (the ring was full: the consumer fell behind) or ``kernel_dropped`` (the socket's
receive buffer overflowed before the receive thread read it: Linux, SO_RXQ_OVFL; a drop is known
once the next datagram arrives; 0 on other platforms and with the Python receive loop).

A port that cannot be bound leaves its feed ``not_available``; the others carry on.
"""

from __future__ import annotations

import logging
import os
import select
import selectors
import socket
import threading
from typing import Callable, Iterable

from rt_ext.recv import COUNTER_NAMES, HAVE_RECVMMSG, SO_RXQ_OVFL, SO_TIMESTAMPNS, ReceiverLoop

from .. import clock
from ..config import Config
from ..protocols import FEEDS, Protocols
from .feed import BATCH, Feed, Sink
from .health import LOST_S, health
from .ksudp import KsudpSession, resolve

log = logging.getLogger(__name__)

#: While data flows, rings are emptied and decoded, and live values refreshed, this often.
TICK_S = 0.1
#: With no data the consumer still wakes this often (ksudp handshake retries, timers).
IDLE_S = 0.5

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


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class FeedManager:
    """All feeds of one server process."""

    def __init__(self, config: Config, protocols: Protocols, lost_s: float = LOST_S) -> None:
        """``lost_s``: quiet seconds after which a feed is ``lost`` (tests shorten it)."""
        self.config = config
        self.lost_s = lost_s
        self.protocols = protocols
        self.feeds: dict[str, Feed] = {}
        self.sinks: list[Sink] = []
        self.ksudp: KsudpSession | None = None
        self._allow: dict[str, list[tuple[str, int]] | None] = {}
        self._loop: ReceiverLoop | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._passes = 0
        self._live: dict | None = None  # name → (live entry, last good ns, handshaking), per pass
        self._pass_done = threading.Condition()
        self.on_tick: list[Callable[[], None]] = []

    # ---- start / stop ---------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        self._bind_ksudp()
        for name, port in (("telemetry_tool", cfg.tt_port), ("pcars", cfg.pcars_port)):
            try:
                sock = _udp_socket(_family(cfg.listen), (cfg.listen, port), cfg.rcvbuf_bytes)
                self.feeds[name] = Feed(name, sock.getsockname()[1], self.protocols, sock, lost_s=self.lost_s)
                # ALLOW_FROM limits the listening feeds to those sources (any port); others are refused
                self._allow[name] = [(ip, 0) for ip in cfg.allow_from] or None
            except OSError as exc:
                log.warning("%s: cannot bind %s:%d (%s); the feed is not available", name, cfg.listen, port, exc.strerror)
                self.feeds[name] = Feed(name, port, self.protocols, None, error=f"cannot bind {cfg.listen}:{port}: {exc.strerror}")
        bound = [(f.sock, f.ring, self._allow.get(f.name), self.protocols.feed_rules[f.name].rules)
                 for f in self.feeds.values() if f.sock is not None]
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        if HAVE_RECVMMSG:
            self._loop = ReceiverLoop([(s.fileno(), r, a, rules) for s, r, a, rules in bound], cfg.recv_period_ms,
                                      self._wake_w, TICK_S * 1000, clock.EPOCH_OFFSET_NS)
            self._spawn("rt-receive", self._loop.run)
        else:
            self._spawn("rt-receive", lambda: self._python_receive(bound))
        self._spawn("rt-consume", self._consume_loop)

    def _bind_ksudp(self) -> None:
        cfg = self.config
        target = resolve(cfg.game_host, cfg.ksudp_port)
        if target is None:
            self.feeds["ksudp"] = Feed("ksudp", cfg.ksudp_port, self.protocols, None, error=f"cannot resolve GAME_HOST {cfg.game_host!r}")
            return
        family, addr = target
        local = cfg.listen if _family(cfg.listen) == family else ("::" if family == socket.AF_INET6 else "0.0.0.0")
        try:
            sock = _udp_socket(family, (local, 0), cfg.rcvbuf_bytes)
        except OSError as exc:
            self.feeds["ksudp"] = Feed("ksudp", cfg.ksudp_port, self.protocols, None, error=f"cannot bind: {exc.strerror}")
            return
        feed = Feed("ksudp", cfg.ksudp_port, self.protocols, sock, lost_s=self.lost_s)
        self.feeds["ksudp"] = feed
        self._allow["ksudp"] = [(addr[0], addr[1])]  # the game, and nobody else
        self.ksudp = KsudpSession(feed, addr, self.lost_s)

    def _spawn(self, name: str, target: Callable[[], object]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Dismiss the game, stop both threads, take what is left in the rings, close sockets."""
        if self.ksudp is not None:
            self.ksudp.close()
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
        for fd in (self._wake_r, self._wake_w):
            if fd is not None:
                os.close(fd)
        self._wake_r = self._wake_w = None

    # ---- threads --------------------------------------------------------------------------

    def _consume_loop(self) -> None:
        # With recvmmsg the receive loop wakes us (at most every TICK_S while data flows, at once
        # when a ring fills); otherwise we wake every TICK_S. IDLE_S keeps the ksudp timers going.
        timeout = IDLE_S if self._loop is not None else TICK_S
        while not self._stop.is_set():
            taken = 0
            try:
                taken = self._consume_pass()
            except Exception:  # a bug in a sink must not kill ingest; it is logged loudly
                log.exception("consumer pass failed")
            if taken >= BATCH:
                continue  # a burst: keep draining so the rings never fill
            self._sleep(timeout)

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the receiver or :meth:`stop` writes to the wake pipe."""
        select.select([self._wake_r], [], [], seconds)
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _consume_pass(self) -> int:
        """One pass over every feed; returns the datagrams consumed."""
        taken = 0
        handler = self.ksudp.on_decoded if self.ksudp is not None else None
        counters = self._loop.counters if self._loop is not None else None
        bound = [f for f in self.feeds.values() if f.sock is not None]
        for k, feed in enumerate(bound):
            taken += feed.consume(self.sinks, handler if feed.name == "ksudp" else None)
            if counters is not None:
                feed.stats.refused = int(counters[k, _REFUSED])
                feed.stats.errors = int(counters[k, _ERRORS])
                feed.stats.shed = int(counters[k, _SHED])
                feed.stats.kernel_dropped = int(counters[k, _KERNEL_DROPPED])
        if self.ksudp is not None:
            self.ksudp.tick()
        self._publish_live()
        for callback in self.on_tick:
            callback()
        with self._pass_done:
            self._passes += 1
            self._pass_done.notify_all()
        return taken

    def _python_receive(self, bound: Iterable) -> None:
        """Portable receive loop (no recvmmsg): one recv_into per datagram, wall-clock stamps."""
        sel = selectors.DefaultSelector()
        scratch = bytearray(65536)
        view = memoryview(scratch)
        for sock, ring, allow, _rules in bound:
            sel.register(sock, selectors.EVENT_READ, (ring, {a[0] for a in allow} if allow else None))
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=0.2):
                ring, allowed = key.data
                while True:
                    try:
                        n, addr = key.fileobj.recvfrom_into(scratch)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    if allowed is not None and addr[0] not in allowed:
                        continue
                    ring.push_bytes(clock.now_ns(), view[:n])
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
        """Return once the consumer has taken everything received before this call."""
        if not self._threads:
            return True
        self.wake()
        if self._loop is not None:
            self._loop.wake()
        # two passes: the one running now may have started before the call
        return self.wait_passes(2, timeout)

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

    def live(self) -> dict[str, dict]:
        """Every feed's entry of /api/live: the consumer's last snapshot (see :meth:`_publish_live`),
        with health and age as of now; computed directly before the first pass."""
        now = clock.now_ns()
        snapshot = self._live
        if snapshot is None:
            return {name: self.feeds[name].live(now) for name in FEEDS if name in self.feeds}
        out = {}
        for name, (entry, last_good, handshaking) in snapshot.items():
            feed = self.feeds[name]
            entry = dict(entry)
            entry["health"] = health(feed.available, last_good, now, handshaking, feed.lost_s)
            entry["last_packet_age_ms"] = None if last_good is None else round((now - last_good) / 1e6, 1)
            out[name] = entry
        return out
