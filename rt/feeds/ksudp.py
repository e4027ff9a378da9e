"""The Assetto Corsa remote-telemetry handshake (KSUDP), driven from the consumer thread.

AC listens on GAME_HOST:9996 and answers to the source address of whoever sends it a handshake,
so the ksudp feed's socket is bound to an ephemeral local port and does the asking:

1. send HANDSHAKE (12 bytes, operationId 0), again every :data:`RETRY_S` until AC answers;
2. AC answers with the 408-byte handshake response (car, driver, track, config);
3. send SUBSCRIBE_UPDATE (operationId 1): AC streams RTCarInfo every physics step;
4. when the stream goes quiet for :data:`~rt.feeds.health.LOST_S` (game closed or restarted),
   start again at 1; on shutdown send DISMISS (operationId 3).

Only datagrams from GAME_HOST's port are accepted (the receive filter), so a stray sender cannot
inject telemetry.
"""

from __future__ import annotations

import logging
import socket

import numpy as np

from .. import clock
from ..protocols.ac import DISMISS, HANDSHAKE, SUBSCRIBE_UPDATE, handshaker
from ..protocols.layout import PacketLayout
from .health import LOST_S, stream_lapse

log = logging.getLogger(__name__)

RETRY_S = 1.0
#: After subscribing, how long to wait for the first RTCarInfo before asking again.
SUBSCRIBE_TIMEOUT_S = 2.0

class KsudpSession:
    """Handshake state of the ksudp feed. :meth:`tick` runs on every consumer pass."""

    def __init__(self, feed, game_addr: tuple[str, int], lost_s: float = LOST_S) -> None:
        self.feed = feed
        self.lost_s = lost_s
        self.game_addr = game_addr
        self.phase = "handshake"  # handshake → subscribed
        self.last_sent_ns = 0
        self.subscribed_ns = 0
        self.last_car_ns = 0  # receive time of the newest RTCarInfo
        self.handshakes = 0
        feed.handshaking = True

    def _send(self, operation: int) -> None:
        try:
            self.feed.sock.sendto(handshaker(operation), self.game_addr)
        except OSError as exc:  # no route, host down: keep trying, never stop the feed
            self.feed.stats.errors += 1
            log.debug("ksudp send to %s failed: %s", self.game_addr, exc)

    def on_decoded(self, feed, layout: PacketLayout, cols: dict[str, np.ndarray], t_ns: np.ndarray) -> None:
        """Handler for decoded groups: the game's answer moves us to subscribed."""
        if layout.name == "ac_handshake_response" and self.phase == "handshake":
            self._send(SUBSCRIBE_UPDATE)
            self.phase = "subscribed"
            # When the answer came, not now: a stream that follows it in the same batch may be
            # decoded first (groups go by kind) and must count as the stream.
            self.subscribed_ns = int(t_ns[-1])
            log.info("ksudp: %s answered, subscribed", self.game_addr[0])
        elif layout.name == "ac_car_info":
            self.last_car_ns = max(self.last_car_ns, int(t_ns[-1]))
            self.feed.handshaking = False

    @property
    def streaming(self) -> bool:
        """Subscribed, and the game's RTCarInfo stream has been seen since (the handshake's timers
        are idle: the consumer need not wake for them)."""
        return self.phase == "subscribed" and self.last_car_ns >= self.subscribed_ns

    def tick(self, now_ns: int | None = None) -> None:
        now = clock.now_ns() if now_ns is None else now_ns
        if self.phase == "subscribed":
            lapse = stream_lapse(now, self.last_car_ns, self.subscribed_ns, SUBSCRIBE_TIMEOUT_S, self.lost_s)
            if lapse == "quiet":
                log.info("ksudp: stream quiet for %.1f s, handshaking again", (now - self.last_car_ns) / 1e9)
            if lapse is not None:
                self.phase = "handshake"
        if self.phase == "handshake" and now - self.last_sent_ns >= RETRY_S * 1e9:
            self._send(HANDSHAKE)
            self.handshakes += 1
            self.last_sent_ns = now

    def close(self) -> None:
        """Tell AC to stop streaming to us."""
        if self.phase == "subscribed":
            self._send(DISMISS)
        self.phase = "handshake"


def resolve(host: str, port: int) -> tuple[int, tuple[str, int]] | None:
    """(address family, (ip, port)) of the game host, or None while it cannot be resolved."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return None
    family, _, _, _, addr = info[0]
    ip, port_ = addr[0], addr[1]
    assert isinstance(ip, str) and isinstance(port_, int)  # an AF_INET/AF_INET6 sockaddr: (ip, port, ...)
    return family, (ip, port_)
