"""Feed health: one state per feed, derived from what the feed has seen and when.

==================  =======================================================================
state               meaning
==================  =======================================================================
``not_available``   the feed's port could not be bound (in use, no permission); the rest runs
``waiting``         bound, no well-formed datagram yet
``handshaking``     ksudp, acc: handshake sent, the game has not answered (or is not running)
``refused``         acc only: ACC refused the registration (a wrong password): its words are the
                    feed's ``error``; asked again every few seconds
``healthy``         a well-formed datagram within the last :data:`HEALTHY_S` seconds
``stale``           quiet for :data:`HEALTHY_S` .. :data:`LOST_S` seconds
``lost``            quiet for longer than :data:`LOST_S` (ksudp then handshakes again)
==================  =======================================================================

Only well-formed datagrams count: a flood of garbage does not make a feed look healthy.
"""

from __future__ import annotations

import math

HEALTHY_S = 0.5
LOST_S = 3.0

STATES = ("not_available", "waiting", "handshaking", "refused", "healthy", "stale", "lost")


def health(available: bool, last_good_ns: int | None, now_ns: int, handshaking: bool | str = False,
           lost_s: float = LOST_S) -> str:
    """The health state of a feed at ``now_ns`` (all times in ns on the receive clock).
    ``handshaking``: True while a handshake waits for the game, or the state it is in instead
    (``"refused"``)."""
    if not available:
        return "not_available"
    if handshaking:
        return handshaking if isinstance(handshaking, str) else "handshaking"
    if last_good_ns is None:
        return "waiting"
    age_s = (now_ns - last_good_ns) / 1e9
    if age_s <= HEALTHY_S:
        return "healthy"
    if age_s <= lost_s:
        return "stale"
    return "lost"


def age_ms(last_good_ns: int | None, now_ns: int) -> float | None:
    """``last_packet_age_ms`` of /api/live: ms since the last good datagram, rounded *up* to 0.1 ms,
    so the age shown never contradicts :func:`health` at a threshold (rounded to nearest, 3000.04 ms
    showed as 3000.0 beside ``lost``)."""
    if last_good_ns is None:
        return None
    return math.ceil((now_ns - last_good_ns) / 1e5) / 10


def stream_lapse(now_ns: int, last_seen_ns: int, since_ns: int, start_timeout_s: float, lost_s: float) -> str | None:
    """Why a game's subscription, granted at ``since_ns`` (ns), must be asked for again: "never"
    when the game granted it but sent nothing for ``start_timeout_s``, "quiet" when its stream
    (last seen at ``last_seen_ns``) stopped for ``lost_s``; None while it streams (ksudp, acc)."""
    if last_seen_ns < since_ns:
        return "never" if now_ns - since_ns > start_timeout_s * 1e9 else None
    return "quiet" if now_ns - last_seen_ns > lost_s * 1e9 else None
