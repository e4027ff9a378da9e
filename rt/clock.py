"""The recorder's clock: one timeline for every receive time, health check and live view.

Receive times are Unix-epoch nanoseconds, but they are not read from the wall clock
(CLOCK_REALTIME), which an NTP step or a user setting the time moves at once by seconds or hours:
a recording would then jump or run backwards, and every feed would look ``lost`` (or never
stale). They come from CLOCK_MONOTONIC, which never steps, shifted once, when the process starts,
so that it read as epoch time then. A wall-clock step after that does not move the recorder's clock,
which then differs from the wall clock by the step until the server restarts; the human-readable
``created_at``/``stopped_at`` labels of recordings and runs still follow the wall clock.

The kernel stamps datagrams with CLOCK_REALTIME; ``rt_ext.recv`` converts each stamp onto this
timeline as it takes the datagram (see ``rt_recv.h``).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

#: CLOCK_REALTIME − CLOCK_MONOTONIC when this process started, in ns.
EPOCH_OFFSET_NS: int = time.time_ns() - time.monotonic_ns()


def now_ns() -> int:
    """Now on the recorder's timeline (ns since the Unix epoch, as of process start)."""
    return time.monotonic_ns() + EPOCH_OFFSET_NS


def iso(t_ns: int | None = None) -> str:
    """UTC ISO 8601 with microseconds and a Z, of ``t_ns`` (ns since the epoch) or now."""
    dt = datetime.now(timezone.utc) if t_ns is None else datetime.fromtimestamp(t_ns / 1e9, timezone.utc)
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")
