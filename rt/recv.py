"""Batched UDP receive into the feeds' rings, in one thread, without the GIL (Linux ``recvmmsg``).

Compiled in ``rt_ext.recv``; this module is the only door to it from ``rt``
(``tests/test_facade.py`` fails on any other import of it).

:class:`ReceiverLoop` is given ``(fileno, ring, allow[, rules])`` per socket (at most 15) and
drains them into their :class:`~rt.ring.PacketRing` once per period (``period_ms`` up to
``max_period_ms``, milliseconds, adapting to the traffic), writing a byte to the consumer's
``notify_fd`` at most every ``notify_every_ms``. Receive times are the kernel's stamps in ns since
the Unix epoch, taken as CLOCK_MONOTONIC plus ``epoch_offset_ns`` (default: CLOCK_REALTIME −
CLOCK_MONOTONIC when the loop is made) so a step of the wall clock does not show. Per socket it
counts datagrams in the columns of :data:`COUNTER_NAMES` (``accepted + dropped + shed + refused +
kernel_dropped`` is every datagram sent to the socket). A socket's optional fifth element lists
connected non-blocking UDP sockets (filenos) that every datagram its source filter accepts is
re-sent to, unchanged, in batches (``sendmmsg``), counted per target in
:attr:`ReceiverLoop.forward_counters` (:data:`FORWARD_COUNTER_NAMES`).

:data:`HAVE_RECVMMSG` is false where the loop cannot run (the feed manager then falls back to a
Python loop); :data:`SO_TIMESTAMPNS` and :data:`SO_RXQ_OVFL` are the socket options the caller
enables for kernel receive times and kernel drop counts (-1 where the platform has none).
"""

from rt_ext.recv import COUNTER_NAMES, FORWARD_COUNTER_NAMES, FORWARD_PAUSE_S, HAVE_RECVMMSG, SO_RXQ_OVFL, SO_TIMESTAMPNS, ReceiverLoop

__all__ = ["COUNTER_NAMES", "FORWARD_COUNTER_NAMES", "FORWARD_PAUSE_S", "HAVE_RECVMMSG", "SO_RXQ_OVFL", "SO_TIMESTAMPNS", "ReceiverLoop"]
