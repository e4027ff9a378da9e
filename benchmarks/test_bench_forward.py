"""Forwarding's cost in the receive thread: the same C sender (``c/udp_blast.c``, 357-byte
datagrams) into a :class:`~rt.recv.ReceiverLoop` without forwarding and with one target (a socket
nobody reads: on loopback the sender pays the target's enqueue, the real cost), in the same run.
Measured: the receive thread's own CPU per datagram (its thread CPU clock) and the datagrams lost,
at a game's rate and under load."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from rt.feeds.manager import _forward_socket, _udp_socket
from rt.recv import HAVE_RECVMMSG, ReceiverLoop
from rt.ring import PacketRing

SIZE = 357
#: (datagrams/s, datagrams): a game's rate (3 s), then floods
RATES = ((1000, 3000), (100_000, 200_000), (200_000, 200_000))


def _run(cbin, rate: float, count: int, forward: bool) -> dict:
    import subprocess

    sock = _udp_socket(socket.AF_INET, ("127.0.0.1", 0), 8 << 20)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    target = _forward_socket("127.0.0.1", sink.getsockname()[1])
    ring = PacketRing(1 << 18, 512)  # holds every datagram of a round: no consumer needed
    loop = ReceiverLoop([(sock.fileno(), ring, None, None, [target.fileno()] if forward else [])], 10.0,
                        max_period_ms=100.0)
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        subprocess.run([str(cbin / "udp_blast"), "127.0.0.1", str(sock.getsockname()[1]), str(count), str(SIZE),
                        str(rate)], check=True, capture_output=True)
        loop.wake()  # one last drain: what is queued now is all there will be
        deadline = time.monotonic() + 5
        while loop.counters[0].sum() - loop.counters[0][4] < count and time.monotonic() < deadline:
            time.sleep(0.01)
        cpu_s = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        c = loop.counters[0]
        out = {"accepted": int(c[0]), "lost": count - int(c[0]), "cpu_us_per_datagram": cpu_s * 1e6 / count,
               "forward": loop.forward_counters.tolist()}
    finally:
        loop.stop()
        thread.join()
        loop.close()
        for s in (sock, sink, target):
            s.close()
    return out


@pytest.mark.skipif(not HAVE_RECVMMSG, reason="recvmmsg is Linux only")
@pytest.mark.parametrize("rate, count", RATES)
def test_forwarding_cost(benchmark, cbin, rate, count):
    result = {}

    def run():
        for forward in (False, True, False, True):  # interleaved: the machine's drift hits both
            r = _run(cbin, rate, count, forward)
            result.setdefault(forward, []).append(r)

    benchmark.pedantic(run, rounds=1, iterations=1)
    for forward, runs in result.items():
        key = "forward" if forward else "plain"
        benchmark.extra_info[f"{key}_cpu_us_per_datagram"] = [round(r["cpu_us_per_datagram"], 3) for r in runs]
        benchmark.extra_info[f"{key}_lost"] = [r["lost"] for r in runs]
    benchmark.extra_info["forwarded (sent, dropped, errors)"] = [r["forward"] for r in result[True]]
    print(rate, count, benchmark.extra_info)
