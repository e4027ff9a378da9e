"""Hostile input: mutated real datagrams through the whole consume path, and garbage floods."""

from __future__ import annotations

import socket
import threading

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import AC_MONZA, PCARS1
from rigs import ScriptedSim, wait_until
from rt.feeds.feed import Feed
from rt.protocols import default_protocols
from rt.sim.game import PushSender, pcars2_telemetry, sim_source, tt_driver
from rt.store import rawfile

P = default_protocols()
SEEDS = {
    "ksudp": [AC_MONZA.read_bytes()[i * 328 : (i + 1) * 328] for i in (0, 4000, 8640)] + [bytes(408), bytes(212)],
    "telemetry_tool": [row.tobytes() for row in tt_driver(ScriptedSim().step_block(2), 0)],
    "pcars": [(PCARS1 / n).read_bytes() for n in ("jamesremuscat_packet_0.bin", "jamesremuscat_packet_1.bin",
                                                  "jamesremuscat_packet_2.bin")]
    + [row.tobytes() for row in pcars2_telemetry(ScriptedSim().step_block(2), 0)],
}


@st.composite
def mutated(draw, feed: str):
    """A real datagram of ``feed`` with bytes flipped, cut short, extended, or left alone."""
    base = bytearray(draw(st.sampled_from(SEEDS[feed])))
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

    def on_raw(self, feed, t_ns, lengths, data, malformed) -> None:
        self.raw += len(t_ns)

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


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(sorted(SEEDS)).flatmap(lambda f: st.tuples(st.just(f), st.lists(mutated(f), min_size=1, max_size=40))))
def test_mutated_datagrams_never_escape_the_feed(case):
    feed_name, datagrams = case
    feed, sink = _consume_all(feed_name, datagrams)  # raises if anything escapes
    assert feed.stats.packets == sink.raw == len(datagrams)
    assert feed.stats.malformed + sink.decoded == len(datagrams)
    expected_bad = sum(P.classify(feed_name, d) is None for d in datagrams)
    assert feed.stats.malformed == expected_bad
    feed.live()  # the live view copes with whatever came in


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
    seen = []

    def settled() -> bool:  # the count no longer moves: everything that will arrive has arrived
        seen.append(srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["packets"])
        return len(seen) > 5 and seen[-1] == seen[-6] and seen[-1] >= good.sent

    wait_until(settled, timeout=30)
    status, stopped = srv.call("POST", "/api/recordings/stop")
    _, _, body = srv.request("GET", f"/api/recordings/{rec['id']}/data/telemetry_tool")
    _, offsets, lengths, _ = rawfile.parse(body)
    good_ids = [int.from_bytes(body[o + 1 : o + 5], "little") for o, n in zip(offsets, lengths) if n == 357]
    assert good_ids == list(range(good.sent))  # every good datagram, in order, none lost
    feed = stopped["feeds"]["telemetry_tool"]
    assert feed["malformed"] == feed["packets"] - good.sent
    assert feed["malformed"] > flooded[0] * 0.5, (feed, flooded)  # the flood did arrive, mostly
    assert feed["dropped"] == 0
    assert srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["health"] in ("healthy", "stale")
