"""Receiving UDP on loopback: the highest zero-loss rate, and the CPU cost at game rates.

Three receivers, measured in the same run against the same C sender (``c/udp_blast.c``,
``sendmmsg`` paced on the monotonic clock):

* ``rt``: the recorder's own ingest (``FeedManager``: recvmmsg receive thread → ring → consumer
  thread that classifies and decodes every datagram), on the Telemetry Tool feed, 357-byte
  datagrams;
* ``python``: a plain Python loop, ``recv_into`` one datagram at a time into a bytearray;
* ``c``: a C ``recvmmsg`` sink (``c/recvmmsg_sink.c``) that only counts: the machine's limit.

Each receiver gets an 8 MiB socket buffer (``SO_RCVBUFFORCE``, past the system cap, for all three). The rate search doubles the rate until a round loses
datagrams; the figure is the highest rate that lost none.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rt.config import Config
from rt.feeds.manager import FeedManager
from rt.protocols import default_protocols

C_DIR = Path(__file__).parent / "c"
SIZE = 357
RCVBUF = 8 << 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
RATES = (50_000, 100_000, 200_000, 400_000, 800_000, 1_600_000, 3_200_000)
ROUND_S = 0.5


def blast(cbin: Path, port: int, count: int, rate: float) -> tuple[int, float]:
    """Send ``count`` datagrams at ``rate``; returns (sent, the rate actually achieved per second)."""
    out = subprocess.run([str(cbin / "udp_blast"), "127.0.0.1", str(port), str(count), str(SIZE), str(rate)],
                         capture_output=True, text=True, check=True)
    sent, seconds = out.stdout.split()
    return int(sent), int(sent) / max(float(seconds), 1e-9)


class RtReceiver:
    def __init__(self) -> None:
        cfg = Config(listen="127.0.0.1", tt_port=0, pcars_port=0, ksudp_port=9, rcvbuf_bytes=RCVBUF)
        self.mgr = FeedManager(cfg, default_protocols())
        self.mgr.start()
        self.feed = self.mgr.feeds["telemetry_tool"]
        self.port = self.feed.port
        self.base = 0

    def received(self, expected: int) -> int:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if self.feed.stats.packets + self.feed.ring.dropped - self.base >= expected:
                break
            self.mgr.wait_passes(1, timeout=0.5)
        self.mgr.wait_passes(2)
        got = self.feed.stats.packets - self.base
        self.base = self.feed.stats.packets + self.feed.ring.dropped
        return got

    def close(self) -> None:
        self.mgr.stop()


def big_buffer_socket() -> socket.socket:
    """A UDP socket with the receive buffer every receiver here gets: SO_RCVBUFFORCE (past the
    system cap) when we may, as rt and the C sink do, else SO_RCVBUF."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    return sock


class PythonReceiver:
    """The plain loop a competent Python telemetry tool runs: one blocking ``recv_into`` per
    datagram, no timeout (a timeout costs a poll per datagram); an empty datagram stops it."""

    def __init__(self) -> None:
        self.sock = big_buffer_socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        buf = bytearray(2048)
        recv_into = self.sock.recv_into
        while recv_into(buf):
            self.count += 1

    def received(self, expected: int) -> int:
        deadline = time.monotonic() + 3
        last = -1
        while time.monotonic() < deadline and self.count != last:
            last = self.count
            time.sleep(0.3)
        got, self.count = self.count, 0
        return got

    def close(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as poke:
            while self.thread.is_alive():  # an empty datagram may be dropped by a full buffer: repeat
                poke.sendto(b"", ("127.0.0.1", self.port))
                self.thread.join(0.2)
        self.sock.close()


def zero_loss_rate(cbin: Path, make_receiver) -> tuple[int, list[tuple[int, int, int]]]:
    """Highest achieved send rate with no loss, and (achieved rate, sent, received) of every round."""
    best, rounds = 0, []
    for rate in RATES:
        count = int(rate * ROUND_S)
        rx = make_receiver()
        try:
            sent, achieved = blast(cbin, rx.port, count, rate)
            got = rx.received(sent)
        finally:
            rx.close()
        rounds.append((int(achieved), sent, got))
        if got != sent:
            break
        best = max(best, int(achieved))
    return best, rounds


def c_zero_loss_rate(cbin: Path) -> tuple[int, list[tuple[int, int, int]]]:
    best, rounds = 0, []
    for rate in RATES:
        count = int(rate * ROUND_S)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        sink = subprocess.Popen([str(cbin / "recvmmsg_sink"), str(port), str(RCVBUF), "300"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert sink.stderr.readline().strip() == "ready"
        sent, achieved = blast(cbin, port, count, rate)
        got = int(sink.communicate(timeout=30)[0].split()[0])
        rounds.append((int(achieved), sent, got))
        if got != sent:
            break
        best = max(best, int(achieved))
    return best, rounds


pytestmark = pytest.mark.benchmark(group="ingest: highest zero-loss rate, 357 B datagrams on loopback")


@pytest.mark.parametrize("receiver", ["rt", "python", "c"])
def test_zero_loss_rate(benchmark, cbin, receiver):
    result = {}

    def run():
        if receiver == "c":
            result["best"], result["rounds"] = c_zero_loss_rate(cbin)
        else:
            result["best"], result["rounds"] = zero_loss_rate(cbin, RtReceiver if receiver == "rt" else PythonReceiver)

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["zero_loss_rate_per_s"] = result["best"]
    benchmark.extra_info["rounds (rate, sent, received)"] = result["rounds"]
    print(f"\n{receiver}: highest zero-loss rate {result['best']:,}/s; rounds {result['rounds']}")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


GAME_RATE = 333
CPU_SECONDS = 6.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.benchmark(group="ingest: CPU at game rates, 3 feeds x 333 Hz")
@pytest.mark.parametrize("receiver", ["rt", "python", "c"])
def test_cpu_at_game_rates(benchmark, cbin, receiver):
    """CPU share of one core while 3 streams arrive at 333 Hz each (1000 datagrams/s in all).

    ``rt`` runs the whole ingest (receive thread, ring, consumer decoding every datagram) with
    all three streams aimed at its Telemetry Tool socket (the other two feeds need a game or a
    different protocol); ``python`` is three plain blocking ``recv_into`` loops, one thread per
    socket; ``c`` is three recvmmsg sinks, each reporting its own CPU time.
    """
    count = int(GAME_RATE * CPU_SECONDS)
    result = {}

    def run():
        cleanup, sinks = [], []
        if receiver == "rt":
            cfg = Config(listen="127.0.0.1", tt_port=0, pcars_port=0, ksudp_port=9, rcvbuf_bytes=RCVBUF)
            mgr = FeedManager(cfg, default_protocols())
            mgr.start()
            ports = [mgr.feeds["telemetry_tool"].port] * 3
            cleanup.append(mgr.stop)
        elif receiver == "python":
            rxs = [PythonReceiver() for _ in range(3)]
            ports = [r.port for r in rxs]
            cleanup.extend(r.close for r in rxs)
        else:
            ports = [_free_port() for _ in range(3)]
            for port in ports:
                sink = subprocess.Popen([str(cbin / "recvmmsg_sink"), str(port), str(RCVBUF), "500"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                assert sink.stderr.readline().strip() == "ready"
                sinks.append(sink)
        cpu0, wall0 = _cpu_s(), time.monotonic()
        senders = [subprocess.Popen([str(cbin / "udp_blast"), "127.0.0.1", str(p), str(count), str(SIZE), str(GAME_RATE)],
                                    stdout=subprocess.DEVNULL) for p in ports]
        for s in senders:
            s.wait()
        result["wall_s"] = time.monotonic() - wall0
        if receiver == "c":
            result["cpu_s"] = sum(float(s.communicate(timeout=30)[0].split()[1]) for s in sinks)
        else:
            result["cpu_s"] = _cpu_s() - cpu0
        for fn in cleanup:
            fn()

    benchmark.pedantic(run, rounds=1, iterations=1)
    share = result["cpu_s"] / result["wall_s"] * 100
    benchmark.extra_info["cpu_percent_of_one_core"] = round(share, 2)
    print(f"\n{receiver}: {share:.2f} % of one core at 3 x {GAME_RATE} datagrams/s")
