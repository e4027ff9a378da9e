# cython: language_level=3
"""Batched UDP receive into the feeds' rings, in one thread, without the GIL.

:class:`ReceiverLoop` owns no sockets: it is given file descriptors, one
:class:`~rt_ext.ring.PacketRing` per socket and an optional source allow-list per socket. Its
:meth:`ReceiverLoop.run` blocks (GIL released) until :meth:`ReceiverLoop.stop`: it sleeps in
``poll`` while every socket is quiet; once a datagram is waiting it lets a period pass so a
batch builds up, then drains every socket with ``recvmmsg`` straight into ring slots. Waking up
once per period, not per datagram, is what keeps the CPU cost small; the kernel's receive
timestamps (SO_TIMESTAMPNS, which the caller enables) keep the true arrival times.

The period adapts to the traffic between ``period_ms`` and ``max_period_ms``: it doubles while
each drain finds fewer than a quarter of one ``recvmmsg`` batch on every socket (a game at a few
hundred datagrams per second: ~12 wake-ups a second instead of 100), and falls back to
``period_ms`` at once when a drain needs more than one batch or data resumes after a quiet second,
so a flood is drained at the short period before the socket's buffer fills.

When a ring is full the datagrams are still read and counted as dropped by that ring. What the
kernel drops before the loop reads it (the socket's receive buffer overflowed: a burst longer than
the buffer holds, a stalled thread) is counted too, per socket (``kernel_dropped``), from the
SO_RXQ_OVFL control message (which the caller enables, see :data:`SO_RXQ_OVFL`): each datagram
carries the socket's cumulative drop count as of its arrival, so a drop is learnt from the next
datagram that arrives after it. With every counter, each datagram sent to a socket is accounted
for: ``accepted + dropped + shed + refused + kernel_dropped``. Linux only (``HAVE_RECVMMSG``);
elsewhere ``rt.feeds`` falls back to a Python ``recv_into`` loop, which counts no kernel drops.

Forwarding (``RUSTY_TELEMETRY_FORWARD``): a socket may have up to 8 forwarding targets, each a
connected non-blocking UDP socket. Right after each ``recvmmsg`` batch, before shedding and whether
the ring had room or not, the datagrams the source filter accepted are re-sent unchanged to every
target with one ``sendmmsg`` (``MSG_DONTWAIT``) from the slots they were received into: no copy, no
Python object, no extra wake-up. Refused datagrams are not forwarded; malformed ones are (a
dashboard may understand what we do not), and so are those the ring drops or sheds (they are the
game's, and the target is not behind because we are). A target that is slow costs the failed call
and is counted (:data:`FORWARD_COUNTER_NAMES`), never a wait. One that refuses (nobody listens) or
cannot be reached is paused for :data:`FORWARD_PAUSE_S` (its datagrams counted as dropped), then
tried again: a dead target costs a batch and a failed call per pause, not a send per datagram
(on loopback each send to a closed port runs the whole receive path and an ICMP answer).
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from .rules cimport match_rules

from .ring cimport PacketRing, RingCore, ring_reserve, ring_commit, ring_count_dropped, ring_pending
from .recv cimport (rt_allow_t, rt_clock_t, rt_clock_init, rt_mono_ns, rt_recv_batch, rt_forward_batch, rt_wait_readable, rt_wait_fd_ns, rt_notify, rt_close_fd, rt_drain_fd,
                    RT_RECV_MAX_BATCH, RT_HAVE_RECVMMSG, RT_SO_TIMESTAMPNS, RT_SO_RXQ_OVFL)

import ipaddress
import os

import numpy as np

HAVE_RECVMMSG = bool(RT_HAVE_RECVMMSG)
#: setsockopt(SOL_SOCKET, SO_TIMESTAMPNS, 1) turns on kernel receive times; -1 where unknown.
SO_TIMESTAMPNS = RT_SO_TIMESTAMPNS
#: setsockopt(SOL_SOCKET, SO_RXQ_OVFL, 1) makes every datagram carry the socket's kernel drop
#: count (the ``kernel_dropped`` counter comes from it); -1 where the platform has none (the
#: counter then stays 0).
SO_RXQ_OVFL = RT_SO_RXQ_OVFL

#: Per-socket counters, columns of :attr:`ReceiverLoop.counters` (datagrams, but ``errors``:
#: failed receive calls, and ``batches``: drains that found data). ``kernel_dropped``: datagrams
#: the kernel dropped for this socket before the loop could read them (see the module docstring).
COUNTER_NAMES = ("accepted", "refused", "dropped", "errors", "batches", "shed", "kernel_dropped")
cdef enum:
    COL_KERNEL_DROPPED = 6  # its column in COUNTER_NAMES

#: Per forwarding target, columns of :attr:`ReceiverLoop.forward_counters` (datagrams, but
#: ``errors``: failed send calls). ``sent + dropped`` is every datagram the socket's source
#: filter accepted since the target was added; ``sent`` is what the kernel took.
FORWARD_COUNTER_NAMES = ("sent", "dropped", "errors")

cdef enum:
    QUIET_NS = 1000000000   # data after this long a gap: drain at the short period, wake the consumer at once

cdef enum:
    MAX_SOCKETS = 15        # plus the wake-up pipe: 16 poll entries
    MAX_ALLOW = 16
    MAX_FORWARD = 8         # forwarding targets per socket
    SCRATCH_SLOT = 2048     # bytes per slot of the overflow scratch area

cdef enum:
    FORWARD_PAUSE_MS = 250  # how long a refusing or unreachable target is left alone

#: :data:`FORWARD_PAUSE_MS` in seconds: a dashboard started after the recorder gets data within it.
FORWARD_PAUSE_S = FORWARD_PAUSE_MS / 1000.0


cdef class ReceiverLoop:
    """Drains up to 15 UDP sockets into their rings until stopped."""

    cdef int nsock
    cdef int fds[16]
    cdef object rings            # list of PacketRing (kept alive)
    cdef RingCore *cores[15]
    cdef rt_allow_t allow[15][16]
    cdef int nallow[15]
    cdef int64_t period_ns        # the current period (adapts, see the module docstring)
    cdef int64_t min_period_ns, max_period_ns
    cdef int64_t last_data_ns     # when a drain last found data
    cdef int wake_r, wake_w
    cdef int notify_fd            # the consumer's wake-up pipe (-1: nobody listens)
    cdef int64_t notify_every_ns  # at most one wake-up per this interval, unless a ring is filling
    cdef int64_t last_notify_ns
    cdef rt_clock_t clock
    cdef int64_t sock_shift[15]   # per socket: the clock's shift when it was last found empty
    cdef uint32_t ovfl_seen[15]   # per socket: the kernel's cumulative drop count last seen (SO_RXQ_OVFL)
    cdef volatile int stopping
    cdef object _counters
    cdef int64_t[:, ::1] cnt
    cdef const int64_t *rules[15]   # classification rules per socket (rows: length, offset, mask, value, kind)
    cdef int nrules[15]
    cdef object _rules_keep
    cdef object _scratch
    cdef uint8_t *scratch
    cdef int64_t scratch_ts[64]
    cdef uint32_t scratch_len[64]
    cdef int fwd_fd[15][8]       # per socket: its targets' connected sockets
    cdef int fwd_row[15][8]      # and their rows in forward_counters
    cdef int64_t fwd_resume_ns[15][8]  # a paused target's end of pause (monotonic ns), else 0
    cdef int nfwd[15]
    cdef object _fwd_counters
    cdef int64_t[:, ::1] fcnt

    def __cinit__(self):
        self.rings = []
        self.wake_r = -1
        self.wake_w = -1

    def __init__(self, sockets, double period_ms=5.0, int notify_fd=-1, double notify_every_ms=100.0,
                 epoch_offset_ns=None, max_period_ms=None):
        """``sockets``: sequence of ``(fileno, ring, allow[, rules[, forward]])`` where ``allow`` is ``None`` or
        a list of ``(ip, port)`` sources to accept (port 0 = any port), and ``rules`` the feed's
        classification rules (int64, n × 5, as ``rt.protocols``): when a ring is more than half
        full, datagrams that match no rule are shed (counted, not kept), so a flood of garbage
        cannot push well-formed telemetry out of a full ring. ``forward``: file descriptors of
        connected non-blocking UDP sockets (at most 8) that every accepted datagram is re-sent to
        (see the module docstring); their counters are the rows of :attr:`forward_counters`, in
        the order given, socket after socket.

        ``period_ms``/``max_period_ms``: the drain period's bounds (``max_period_ms`` defaults to
        ``period_ms``: a fixed period).

        ``notify_fd``: a non-blocking pipe the consumer sleeps on. After a batch arrives the loop
        writes a byte to it, at most once per ``notify_every_ms`` (settable later,
        :attr:`notify_every_ms`) — or at once when a ring is more than a quarter full or data
        resumes after a quiet second — so the consumer wakes only when there is work, in batches.

        ``epoch_offset_ns``: receive times are CLOCK_MONOTONIC plus this, so a step of the wall
        clock does not show; the recorder passes ``rt.clock.EPOCH_OFFSET_NS``, the default is
        CLOCK_REALTIME − CLOCK_MONOTONIC now."""
        cdef int i, k
        if len(sockets) > MAX_SOCKETS:
            raise ValueError(f"at most {MAX_SOCKETS} sockets")
        if period_ms < 0:
            raise ValueError("period_ms must be >= 0")
        self.nsock = len(sockets)
        if max_period_ms is None:
            max_period_ms = period_ms
        if max_period_ms < period_ms:
            raise ValueError("max_period_ms must be >= period_ms")
        self.period_ns = self.min_period_ns = <int64_t> (period_ms * 1e6)
        self.max_period_ns = <int64_t> (max_period_ms * 1e6)
        self.last_data_ns = 0
        self.notify_fd = notify_fd
        self.notify_every_ns = <int64_t> (notify_every_ms * 1e6)
        self.last_notify_ns = 0
        rt_clock_init(&self.clock, 0 if epoch_offset_ns is None else <int64_t> epoch_offset_ns)
        if epoch_offset_ns is None:  # anchored now, as rt.clock anchors at its import
            self.clock.epoch_offset = self.clock.shift
        for i in range(MAX_SOCKETS):
            self.sock_shift[i] = self.clock.shift
            self.ovfl_seen[i] = 0  # the count starts at 0 when the socket is made
        self._counters = np.zeros((max(self.nsock, 1), len(COUNTER_NAMES)), dtype=np.int64)
        self.cnt = self._counters
        self._scratch = np.zeros(RT_RECV_MAX_BATCH * SCRATCH_SLOT, dtype=np.uint8)
        cdef uint8_t[::1] sv = self._scratch
        self.scratch = &sv[0]
        self._rules_keep = []
        cdef const int64_t[:, ::1] rv
        cdef int nrows = 0
        for i, entry in enumerate(sockets):
            targets = list(entry[4]) if len(entry) > 4 and entry[4] is not None else []
            if len(targets) > MAX_FORWARD:
                raise ValueError(f"at most {MAX_FORWARD} forwarding targets per socket")
            self.nfwd[i] = len(targets)
            for k, fwd in enumerate(targets):
                self.fwd_fd[i][k] = int(fwd)
                self.fwd_row[i][k] = nrows
                self.fwd_resume_ns[i][k] = 0
                nrows += 1
        self._fwd_counters = np.zeros((max(nrows, 1), len(FORWARD_COUNTER_NAMES)), dtype=np.int64)
        self.fcnt = self._fwd_counters
        self._fwd_counters = self._fwd_counters[:nrows]
        for i, entry in enumerate(sockets):
            fd, ring, allow = entry[0], entry[1], entry[2]
            rules = np.ascontiguousarray(entry[3], dtype=np.int64) if len(entry) > 3 and entry[3] is not None else None
            self.nrules[i] = 0
            if rules is not None and rules.shape[0]:
                self._rules_keep.append(rules)
                rv = rules
                self.rules[i] = &rv[0, 0]
                self.nrules[i] = rules.shape[0]
            self.fds[i] = int(fd)
            self.rings.append(ring)
            self.cores[i] = &(<PacketRing?> ring).core
            self.nallow[i] = 0
            memset(self.allow[i], 0, sizeof(rt_allow_t) * MAX_ALLOW)
            for k, (ip, port) in enumerate(allow or ()):
                if k >= MAX_ALLOW:
                    raise ValueError(f"at most {MAX_ALLOW} allowed sources per socket")
                addr = ipaddress.ip_address(ip)
                packed = addr.packed
                self.allow[i][k].family = addr.version
                for b in range(len(packed)):
                    self.allow[i][k].addr[b] = packed[b]
                self.allow[i][k].port = int(port)
                self.nallow[i] = k + 1
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        self.fds[self.nsock] = self.wake_r

    def __dealloc__(self):
        # Plain C: this can run during interpreter shutdown, when module globals like os are gone.
        self.close()

    cpdef close(self):
        """Release the wake-up pipe (after :meth:`run` has returned)."""
        rt_close_fd(self.wake_r)
        rt_close_fd(self.wake_w)
        self.wake_r = self.wake_w = -1

    @property
    def counters(self):
        """int64 array (sockets × :data:`COUNTER_NAMES`), updated live by the loop."""
        return self._counters[: self.nsock]

    @property
    def forward_counters(self):
        """int64 array (forwarding targets × :data:`FORWARD_COUNTER_NAMES`), updated live."""
        return self._fwd_counters

    @property
    def notify_every_ms(self):
        """At most one consumer wake-up per this interval while data flows (ms); settable from any
        thread (the feed manager lengthens it when nothing is being recorded)."""
        return self.notify_every_ns / 1e6

    @notify_every_ms.setter
    def notify_every_ms(self, double value):
        if value < 0:
            raise ValueError("notify_every_ms must be >= 0")
        self.notify_every_ns = <int64_t> (value * 1e6)

    @property
    def period_ms(self):
        """The drain period now (ms), between ``period_ms`` and ``max_period_ms`` as constructed."""
        return self.period_ns / 1e6

    def wake(self):
        """Drain every socket now instead of after the current wait (datagrams already queued in
        the kernel reach the rings), then wake the consumer (``notify_fd``). Safe from any thread."""
        if self.wake_w >= 0:
            rt_notify(self.wake_w)

    def stop(self):
        """Ask :meth:`run` to return; safe from any thread, returns at once."""
        self.stopping = 1
        if self.wake_w >= 0:
            rt_notify(self.wake_w)

    cdef int64_t _drain(self, int i) noexcept nogil:
        cdef RingCore *ring = self.cores[i]
        cdef Py_ssize_t first, free_slots
        cdef int64_t accepted = 0, refused = 0, total = 0, kept, kdropped = 0
        cdef int got
        while True:
            free_slots = ring_reserve(ring, RT_RECV_MAX_BATCH, &first)
            if free_slots > 0:
                accepted = 0
                got = rt_recv_batch(self.fds[i], ring.data + first * ring.slot_size, ring.slot_size,
                                    ring.ts + first, ring.lens + first, <int> free_slots, self.allow[i], self.nallow[i],
                                    &accepted, &refused, &self.clock, &self.sock_shift[i], &self.ovfl_seen[i], &kdropped)
                if got > 0:
                    if self.nfwd[i] and accepted:
                        self._forward(i, ring.data + first * ring.slot_size, ring.slot_size, ring.lens + first, accepted)
                    if self.nrules[i] and ring_pending(ring) * 2 > <uint64_t> ring.capacity:
                        kept = self._shed(i, ring, first, accepted)
                        self.cnt[i, 5] += accepted - kept
                        accepted = kept
                    ring_commit(ring, accepted)
                    self.cnt[i, 0] += accepted
            else:
                # Ring full: read the datagrams anyway and count them as dropped.
                accepted = 0
                got = rt_recv_batch(self.fds[i], self.scratch, SCRATCH_SLOT, self.scratch_ts, self.scratch_len,
                                    RT_RECV_MAX_BATCH, self.allow[i], self.nallow[i], &accepted, &refused, &self.clock, &self.sock_shift[i],
                                    &self.ovfl_seen[i], &kdropped)
                if got > 0:
                    if self.nfwd[i] and accepted:
                        self._forward(i, self.scratch, SCRATCH_SLOT, self.scratch_len, accepted)
                    ring_count_dropped(ring, accepted)
                    self.cnt[i, 2] += accepted
            if got < 0:
                self.cnt[i, 3] += 1
                break
            if got == 0:
                break
            total += got
        self.cnt[i, 1] += refused
        self.cnt[i, <int> COL_KERNEL_DROPPED] += kdropped
        if total:
            self.cnt[i, 4] += 1
        return total

    cdef void _forward(self, int i, const uint8_t *data, int64_t slot_size, const uint32_t *lens, int64_t n) noexcept nogil:
        """Re-send the ``n`` datagrams just received at ``data`` to every target of socket ``i``."""
        cdef int k, row
        cdef int64_t now = 0
        for k in range(self.nfwd[i]):
            row = self.fwd_row[i][k]
            if self.fwd_resume_ns[i][k]:
                now = now or rt_mono_ns()
                if now < self.fwd_resume_ns[i][k]:
                    self.fcnt[row, 1] += n
                    continue
                self.fwd_resume_ns[i][k] = 0
            if rt_forward_batch(self.fwd_fd[i][k], data, slot_size, lens, <int> n, &self.fcnt[row, 0]):
                now = now or rt_mono_ns()
                self.fwd_resume_ns[i][k] = now + <int64_t> FORWARD_PAUSE_MS * 1000000

    cdef int64_t _shed(self, int i, RingCore *ring, Py_ssize_t first, int64_t n) noexcept nogil:
        """Keep only the well-formed of the ``n`` datagrams just received at ``first``; returns how many."""
        cdef int64_t k, w = 0, length, keep
        cdef uint8_t *src
        for k in range(n):
            length = ring.lens[first + k]
            src = ring.data + (first + k) * ring.slot_size
            if match_rules(self.rules[i], self.nrules[i], src, length) < 0:
                continue
            if w != k:
                keep = length if length <= ring.slot_size else ring.slot_size
                memcpy(ring.data + (first + w) * ring.slot_size, src, keep)
                ring.ts[first + w] = ring.ts[first + k]
                ring.lens[first + w] = ring.lens[first + k]
            w += 1
        return w

    cdef void _notify(self, bint resumed, int64_t now) noexcept nogil:
        cdef int i
        cdef bint filling = False
        if self.notify_fd < 0:
            return
        for i in range(self.nsock):
            if ring_pending(self.cores[i]) * 4 > <uint64_t> self.cores[i].capacity:
                filling = True
        if filling or resumed or now - self.last_notify_ns >= self.notify_every_ns:
            rt_notify(self.notify_fd)
            self.last_notify_ns = now

    cdef void _adapt(self, int64_t most) noexcept nogil:
        """Next period from the most datagrams one socket gave in the last drain."""
        if most > RT_RECV_MAX_BATCH:
            self.period_ns = self.min_period_ns  # more than one recvmmsg: the traffic is heavy
        elif most * 4 < RT_RECV_MAX_BATCH and self.period_ns < self.max_period_ns:
            self.period_ns = min(max(self.period_ns * 2, 1000000), self.max_period_ns)

    def run(self):
        """Receive until :meth:`stop`; returns the number of datagrams read. Releases the GIL."""
        if not HAVE_RECVMMSG:
            raise OSError("recvmmsg is not available on this platform")
        cdef int i, r
        cdef int64_t total = 0, got = 0, most, one, now
        cdef bint woken, resumed, flowing = False
        with nogil:
            while not self.stopping:
                resumed = False
                if not flowing:
                    # Every socket was empty: sleep until one is not.
                    r = rt_wait_readable(self.fds, self.nsock + 1, 1000)
                    if self.stopping:
                        break
                    if r <= 0:
                        continue
                    # After a quiet second the traffic to come is unknown: drain at the short period.
                    resumed = rt_mono_ns() - self.last_data_ns > QUIET_NS
                    if resumed:
                        self.period_ns = self.min_period_ns
                # Data waits a period so a batch builds up; a wake() request drains at once. While
                # data flows the sockets are not polled first: one wake-up per period, not two.
                woken = rt_drain_fd(self.wake_r) != 0
                if not woken and self.period_ns > 0:
                    woken = rt_wait_fd_ns(self.wake_r, self.period_ns) > 0
                    rt_drain_fd(self.wake_r)
                if self.stopping:
                    break
                got = 0
                most = 0
                for i in range(self.nsock):
                    one = self._drain(i)
                    got += one
                    if one > most:
                        most = one
                flowing = got > 0
                if woken and self.notify_fd >= 0:
                    # Someone asked for fresh data (a live read): the consumer's pass follows this drain.
                    rt_notify(self.notify_fd)
                    self.last_notify_ns = rt_mono_ns()
                if got:
                    now = rt_mono_ns()
                    if not woken:
                        self._notify(resumed, now)
                    self.last_data_ns = now
                    if not woken:
                        self._adapt(most)
                total += got
        rt_drain_fd(self.wake_r)  # so a later run() does not return at once
        self.stopping = 0
        return total

    def drain_once(self):
        """Drain every socket once without waiting (tests, shutdown). Returns datagrams read."""
        if not HAVE_RECVMMSG:
            raise OSError("recvmmsg is not available on this platform")
        cdef int i
        cdef int64_t total = 0
        with nogil:
            for i in range(self.nsock):
                total += self._drain(i)
        return total

