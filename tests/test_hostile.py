"""Hostile input: mutated real datagrams through the whole consume path, and garbage floods."""

from __future__ import annotations

import functools
import socket
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import AC_MONZA, PCARS1, need
import reference_decoder
from rigs import ScriptedSim, wait_until
from rt.feeds.feed import Feed
from rt.protocols import default_protocols
from rt.sim.game import PushSender, pcars2_telemetry, sim_source, tt_driver
from rt.store import rawfile

P = default_protocols()
FEEDS = ("ksudp", "pcars", "telemetry_tool")


@functools.cache
def seeds() -> dict[str, list[bytes]]:
    """Real datagrams of each feed to mutate (the test that uses them is skipped without the captures)."""
    monza = need(AC_MONZA).read_bytes()
    pcars1 = [need(PCARS1 / f"jamesremuscat_packet_{i}.bin").read_bytes() for i in range(3)]
    return {
        "ksudp": [monza[i * 328 : (i + 1) * 328] for i in (0, 4000, 8640)] + [bytes(408), bytes(212)],
        "telemetry_tool": [row.tobytes() for row in tt_driver(ScriptedSim().step_block(2), 0)],
        "pcars": pcars1 + [row.tobytes() for row in pcars2_telemetry(ScriptedSim().step_block(2), 0)],
    }


@st.composite
def mutated(draw, pool: list[bytes]):
    """A real datagram from ``pool`` with bytes flipped, cut short, extended, or left alone."""
    base = bytearray(draw(st.sampled_from(pool)))
    for _ in range(draw(st.integers(0, 8))):
        if not base:
            break
        base[draw(st.integers(0, len(base) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.sampled_from(["none", "truncate", "extend", "random"]))
    if cut == "truncate":
        base = base[: draw(st.integers(0, len(base)))]
    elif cut == "extend":
        base += draw(st.binary(max_size=200))
    elif cut == "random":
        base = bytearray(draw(st.binary(max_size=1500)))
    return bytes(base)


class CountingSink:
    def __init__(self) -> None:
        self.raw = 0
        self.decoded = 0

    def on_raw(self, feed, t_ns, lengths, data, malformed) -> bool:
        self.raw += len(t_ns)
        return True

    def on_decoded(self, feed, layout, columns, t_ns, canonical) -> None:
        self.decoded += len(t_ns)
        for col in columns.values():
            assert len(col) == len(t_ns)


def _consume_all(feed_name: str, datagrams: list[bytes]) -> tuple[Feed, CountingSink]:
    feed = Feed(feed_name, 0, P, None)
    sink = CountingSink()
    for i, d in enumerate(datagrams):
        assert feed.ring.push_bytes(i, d)
    feed.consume([sink])
    return feed, sink


def test_mutated_datagrams_never_escape_the_feed():
    pools = seeds()

    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(st.sampled_from(FEEDS).flatmap(lambda f: st.tuples(st.just(f), st.lists(mutated(pools[f]), min_size=1, max_size=40))))
    def check(case):
        feed_name, datagrams = case
        feed, sink = _consume_all(feed_name, datagrams)  # raises if anything escapes
        assert feed.stats.packets == sink.raw == len(datagrams)
        assert feed.stats.malformed + sink.decoded == len(datagrams)
        expected_bad = sum(reference_decoder.classify_one(P.feed_rules[feed_name].rules, d) < 0 for d in datagrams)
        assert feed.stats.malformed == expected_bad
        feed.live()  # the live view copes with whatever came in

    check()


def _tt(first_id: int, n: int, speed_ms: float = 30.0) -> list[bytes]:
    """``n`` good Telemetry Tool datagrams (357 bytes) numbered from ``first_id``."""
    return [row.tobytes() for row in tt_driver(ScriptedSim(speed_ms=speed_ms).step_block(n), first_id)]


def _accounted(feed: dict) -> int:
    """Datagrams a feed's live entry accounts for: taken, or counted as not kept, for any reason."""
    return feed["packets"] + feed["dropped"] + feed["kernel_dropped"] + feed["shed"] + feed["refused"]


PROBE_ID = 1_000_000  # probes are numbered from here, the traffic under test below


def _probe_until_accounted(srv, port: int, sent: int, first_probe: int = 0) -> tuple[dict, int]:
    """Send probes (good datagrams, each with a speed of its own), one after another once its
    predecessor shows in /api/live, until the feed accounts for every datagram sent (``sent`` +
    the probes). A kernel drop is told by the next datagram to arrive: the probes tell the last
    ones. Returns the live entry and how many probes were sent."""
    probes = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        while True:
            k = first_probe + probes
            out.sendto(_tt(PROBE_ID + k, 1, speed_ms=100 + k)[0], ("127.0.0.1", port))
            probes += 1
            try:
                feed = wait_until(lambda: (f := srv.get("/api/live")[1]["feeds"]["telemetry_tool"])["speed_kmh"]
                                  == pytest.approx((100 + k) * 3.6, abs=0.05) and f, timeout=3)
            except AssertionError:
                continue  # the probe itself was dropped (the buffer was still full): the next tells
            if _accounted(feed) == sent + probes:
                return feed, probes
            assert probes < 20, (feed, sent, probes)


def test_garbage_flood_at_full_rate_while_good_traffic_is_recorded_in_full(server_factory, tmp_path):
    srv = server_factory()
    port = srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["port"]
    status, rec = srv.call("POST", "/api/recordings", {"name": "flood"})
    good = PushSender(sim_source("tt", ScriptedSim(), rate_hz=1000), "127.0.0.1", port).start()
    sizes = np.random.default_rng(11).integers(0, 1400, 200)
    sizes[sizes == 357] = 358
    junk = [bytes([s % 256]) * int(s) for s in sizes]
    flooded = [0]

    def flood() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            for _ in range(300):  # 60 000 garbage datagrams as fast as one Python thread sends
                for d in junk:
                    out.sendto(d, ("127.0.0.1", port))
                    flooded[0] += 1

    flooder = threading.Thread(target=flood)
    flooder.start()
    flooder.join()
    good.stop()
    # The kernel may drop some of it (a socket buffer overflows when the machine is busy): then
    # it must say so. Every datagram sent is recorded or counted, none vanishes.
    live, probes = _probe_until_accounted(srv, port, good.sent + flooded[0])
    status, stopped = srv.call("POST", "/api/recordings/stop")
    _, _, body = srv.request("GET", f"/api/recordings/{rec['id']}/data/telemetry_tool")
    _, offsets, lengths, _ = rawfile.parse(body)
    ids = [int.from_bytes(body[o + 1 : o + 5], "little") for o, n in zip(offsets, lengths) if n == 357]
    good_ids = [i for i in ids if i < PROBE_ID]
    assert good_ids == sorted(set(good_ids)) and set(good_ids) <= set(range(good.sent))  # in order, once each
    feed = stopped["feeds"]["telemetry_tool"]
    # The recording saw all of it: its counters account for every datagram, as live's do.
    assert feed["packets"] + feed["dropped"] + feed["kernel_dropped"] + live["shed"] == good.sent + flooded[0] + probes
    # Every good datagram not recorded was counted as dropped (by the kernel or the ring).
    lost_probes = probes - (len(ids) - len(good_ids))
    assert good.sent - len(good_ids) <= feed["kernel_dropped"] + feed["dropped"] - lost_probes, (feed, good.sent, len(good_ids))
    assert feed["malformed"] == feed["packets"] - len(ids)
    assert feed["malformed"] > flooded[0] * 0.5, (feed, flooded)  # the flood did arrive, mostly
    assert srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["health"] in ("healthy", "stale")


def test_kernel_drops_reach_live_the_recording_and_the_run(server_factory):
    # The smallest receive buffer the server accepts and its longest receive period: a burst sent
    # within the 100 ms the receiver waits after the first datagram overflows the buffer for sure.
    from rt_ext.recv import HAVE_RECVMMSG, SO_RXQ_OVFL

    if not HAVE_RECVMMSG or SO_RXQ_OVFL < 0:
        pytest.skip("kernel drops are counted on Linux only (recvmmsg, SO_RXQ_OVFL)")
    srv = server_factory(RUSTY_TELEMETRY_RCVBUF_BYTES="65536", RUSTY_TELEMETRY_RECV_PERIOD_MS="100")
    port = srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["port"]

    def burst(datagrams: list[bytes]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            for d in datagrams:
                out.sendto(d, ("127.0.0.1", port))

    # Before any recording: drops that are not the recording's.
    burst([bytes(1400)] * 1000)  # garbage, ~2.3 KiB each in the kernel: ~56 fit in 128 KiB
    before, probes1 = _probe_until_accounted(srv, port, 1000)
    assert before["kernel_dropped"] > 500
    sent_before = 1000 + probes1
    status, session = srv.call("POST", "/api/sessions", {"use_case": "general", "label": "drops"})
    status, run = srv.call("POST", f"/api/sessions/{session['id']}/runs", {"feed_name": "telemetry_tool"})
    assert status == 201 and not run["data_truncated"]
    good = _tt(0, 1000)
    burst(good)
    live, probes2 = _probe_until_accounted(srv, port, sent_before + len(good), first_probe=probes1)
    kernel = live["kernel_dropped"] - before["kernel_dropped"]
    assert kernel > 500  # ~1.2 KiB each in the kernel: ~100 fit
    views = srv.get(f"/api/sessions/{session['id']}")[1]["runs"]
    assert views[0]["data_truncated"]  # while it records, too
    status, stopped_run = srv.call("POST", f"/api/sessions/{session['id']}/runs/{run['id']}/stop")
    assert status == 200 and stopped_run["data_truncated"]
    status, manifest = srv.call("POST", "/api/recordings/stop")
    counters = manifest["feeds"]["telemetry_tool"]
    # The recording's share: what the kernel dropped while it recorded, not before.
    assert counters["kernel_dropped"] == kernel
    # It accounts for every datagram sent while it recorded, exactly: recorded or dropped.
    assert counters["packets"] + counters["dropped"] + counters["kernel_dropped"] == len(good) + probes2
    _, _, body = srv.request("GET", f"/api/recordings/{manifest['id']}/data/telemetry_tool")
    _, offsets, lengths, _ = rawfile.parse(body)
    ids = [int.from_bytes(body[o + 1 : o + 5], "little") for o in offsets]
    got = [i for i in ids if i < PROBE_ID]
    assert got == sorted(set(got)) and got[0] == 0 and len(ids) == counters["packets"]
    assert srv.get(f"/api/recordings/{manifest['id']}")[1]["feeds"]["telemetry_tool"]["kernel_dropped"] == kernel
