"""Live ingest over real UDP on 127.0.0.1: handshake, auto-detection, malformed input, busy ports."""

from __future__ import annotations

import os
import socket
import threading
import time

import numpy as np
import pytest

from conftest import PCARS1, PCARS1_SPA, need
from rigs import ScriptedSim, feed_config, free_udp_port, wait_until
from rt.feeds.feed import Feed
from rt.protocols import default_protocols
from rt.sim.game import AcServer, PushSender, ReplaySource, pcars2_telemetry, sim_source


config = feed_config


class Recorder:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.raw: dict[str, list[bytes]] = {}
        self.kinds: dict[str, int] = {}

    def on_raw(self, feed, t_ns, lengths, data, malformed) -> bool:
        rows = self.raw.setdefault(feed.name, [])
        for n, row in zip(lengths.tolist(), data):
            rows.append(row[: min(n, len(row))].tobytes())
        return True

    def on_decoded(self, feed, layout, columns, t_ns, canonical) -> None:
        self.kinds[layout.name] = self.kinds.get(layout.name, 0) + len(t_ns)


@pytest.fixture
def senders():
    made = []
    yield made
    for s in made:
        s.stop()


def test_ksudp_handshake_live_values_are_canonical(manager_factory, senders):
    ac = AcServer(sim_source("ac", ScriptedSim(), rate_hz=200), "127.0.0.1", 0)
    senders.append(ac.start())
    mgr = manager_factory(config(ksudp_port=ac.port))
    feed = mgr.feeds["ksudp"]
    live = wait_until(lambda: (v := mgr.live()["ksudp"])["speed_kmh"] is not None and v, manager=mgr)
    assert live["health"] == "healthy"
    assert live["speed_kmh"] == pytest.approx(30.0 * 3.6, abs=1e-3)
    assert live["rpm"] == 6543.0 and live["gear"] == 3  # sent as AC gear 4
    assert live["throttle"] == 0.75 and live["brake"] == 0.0 and live["clutch"] == 1.0
    assert live["steer"] == pytest.approx(-0.05, abs=1e-6)
    assert (live["lap_count"], live["lap_time_ms"], live["last_lap_ms"], live["best_lap_ms"]) == (2, 41234, 98765, 97654)
    assert live["car"] == "rt_sim_gt" and live["track"] == "rt_test_ring"  # '%' and the junk after it cut off
    assert ac.handshakes >= 1 and ac.subscriber is not None
    assert feed.stats.malformed == 0
    mgr.stop()
    wait_until(lambda: ac.dismissed == 1)  # DISMISS sent on shutdown


def test_ksudp_waits_for_a_late_game_then_follows_a_restart(manager_factory, senders):
    port = free_udp_port()
    mgr = manager_factory(config(ksudp_port=port), lost_s=0.6)
    mgr.wait_passes(3)
    assert mgr.live()["ksudp"]["health"] == "handshaking"
    first = AcServer(sim_source("ac", ScriptedSim(speed_ms=10.0), rate_hz=200), "127.0.0.1", port)
    senders.append(first.start())
    wait_until(lambda: mgr.live()["ksudp"]["health"] == "healthy", manager=mgr)
    assert mgr.live()["ksudp"]["speed_kmh"] == pytest.approx(36.0, abs=1e-3)
    # The game restarts: the new instance does not know us until we handshake again.
    first.stop()
    wait_until(lambda: mgr.live()["ksudp"]["health"] == "lost", manager=mgr)
    second = AcServer(sim_source("ac", ScriptedSim(speed_ms=20.0), rate_hz=200), "127.0.0.1", port)
    senders.append(second.start())
    wait_until(lambda: mgr.live()["ksudp"]["speed_kmh"] == pytest.approx(72.0, abs=1e-3), manager=mgr)
    assert second.handshakes >= 1 and mgr.live()["ksudp"]["health"] == "healthy"


def test_ksudp_ignores_datagrams_from_anyone_but_the_game(manager_factory, senders):
    ac = AcServer(sim_source("ac", ScriptedSim(), rate_hz=200), "127.0.0.1", 0)
    senders.append(ac.start())
    mgr = manager_factory(config(ksudp_port=ac.port))
    feed = mgr.feeds["ksudp"]
    wait_until(lambda: feed.stats.packets > 0, manager=mgr)
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(20):
        intruder.sendto(b"a" + bytes(327), feed.sock.getsockname())
    intruder.close()
    wait_until(lambda: feed.stats.refused == 20, manager=mgr)
    assert feed.stats.malformed == 0


def test_pcars_v1_and_v2_on_one_port(manager_factory, senders):
    mgr = manager_factory(config())
    rec = Recorder()
    mgr.sinks.append(rec)
    port = mgr.feeds["pcars"].port
    v1 = [need(PCARS1 / name).read_bytes() for name in ("jamesremuscat_packet_0.bin", "jamesremuscat_packet_1.bin", "jamesremuscat_packet_2.bin")]
    v2 = [row.tobytes() for row in pcars2_telemetry(ScriptedSim().step_block(5), 100)]
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for payload in v1 + v2 + v1[:1]:
        out.sendto(payload, ("127.0.0.1", port))
    out.close()
    wait_until(lambda: mgr.feeds["pcars"].stats.packets == 9, manager=mgr)
    assert rec.kinds == {
        "pcars1_telemetry": 2,
        "pcars1_participant_strings": 1,
        "pcars1_participant_strings_additional": 1,
        "pcars2_telemetry_559": 5,
    }
    assert rec.raw["pcars"] == v1 + v2 + v1[:1]  # byte for byte, in order
    assert mgr.live()["pcars"]["gear"] == 0  # the last datagram: PC1 capture, neutral


def test_garbage_is_counted_malformed_while_good_datagrams_flow(manager_factory, senders):
    mgr = manager_factory(config())
    rec = Recorder()
    mgr.sinks.append(rec)
    feed = mgr.feeds["telemetry_tool"]
    good = PushSender(sim_source("tt", ScriptedSim(), rate_hz=500), "127.0.0.1", feed.port)
    senders.append(good.start())
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sizes = rng.integers(0, 1500, 300)
    sizes[sizes == 357] = 356  # never the one good size
    for size in sizes:
        junk.sendto(rng.integers(0, 256, int(size), dtype=np.uint8).tobytes(), ("127.0.0.1", feed.port))
    junk.close()
    wait_until(lambda: feed.stats.malformed == 300 and rec.kinds.get("tt_driver", 0) >= 50, manager=mgr)
    good.stop()
    wait_until(lambda: feed.stats.packets == good.sent + 300, manager=mgr)
    assert rec.kinds["tt_driver"] == good.sent  # every good one decoded
    assert feed.stats.sequence_gaps == 0
    assert mgr.live()["telemetry_tool"]["speed_kmh"] == pytest.approx(108.0, abs=1e-3)


def test_busy_port_leaves_its_feed_not_available_and_the_rest_working(manager_factory, senders):
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", 0))
    busy = squatter.getsockname()[1]
    try:
        mgr = manager_factory(config(pcars_port=busy))
        live = mgr.live()
        assert live["pcars"]["health"] == "not_available" and "cannot bind" in live["pcars"]["error"]
        tt = PushSender(sim_source("tt", ScriptedSim(), rate_hz=200), "127.0.0.1", mgr.feeds["telemetry_tool"].port)
        senders.append(tt.start())
        wait_until(lambda: mgr.live()["telemetry_tool"]["health"] == "healthy", manager=mgr)
    finally:
        squatter.close()


def test_sequence_gaps_are_counted_from_the_packet_ids(manager_factory):
    mgr = manager_factory(config())
    feed = mgr.feeds["telemetry_tool"]
    from rt.sim.game import tt_driver

    rows = tt_driver(ScriptedSim().step_block(10), 1000)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for k in (0, 1, 2, 5, 6, 9):  # 3, 4, 7, 8 lost on the way
        out.sendto(rows[k].tobytes(), ("127.0.0.1", feed.port))
    out.close()
    wait_until(lambda: feed.stats.packets == 6, manager=mgr)
    assert feed.stats.sequence_gaps == 4


def _spa_datagrams() -> list[bytes]:
    raw = need(PCARS1_SPA).read_bytes()
    out, off = [], 0
    while off < len(raw):
        size = {0: 1367, 1: 1347, 2: 1028}[raw[off + 2] & 3]
        out.append(raw[off : off + size])
        off += size
    return out


def test_pcars1_strings_packets_repeat_the_telemetry_number_and_are_no_gap(manager_factory):
    # The real Spa stream: 1860 telemetry packets numbered without a gap and 4 strings packets,
    # each carrying the number of the telemetry packet before it. Three telemetry packets are
    # lost on the way here: exactly 3 gaps, not ~60 per strings packet.
    datagrams = _spa_datagrams()
    kinds = [d[2] & 3 for d in datagrams]
    assert kinds.count(1) == 4 and kinds[95] == 1 and (datagrams[95][2] >> 2) == (datagrams[94][2] >> 2)
    lost = {300, 301, 1200}
    assert all(kinds[i] == 0 for i in lost)
    mgr = manager_factory(config())
    feed = mgr.feeds["pcars"]
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    for i, d in enumerate(datagrams):
        if i not in lost:
            out.sendto(d, ("127.0.0.1", feed.port))
            sent += 1
    out.close()
    wait_until(lambda: feed.stats.packets == sent, manager=mgr)
    assert feed.stats.sequence_gaps == 3


def test_pcars2_packet_numbers_count_across_kinds_in_arrival_order(manager_factory):
    # mPacketNumber counts every packet of a PC2 game run, whatever its kind; the feed decodes
    # a batch kind by kind, so the numbers must be put back in arrival order before counting.
    from rt.protocols import default_protocols
    from rt.protocols.encode import encode

    p = default_protocols()
    tele, timings = p["pcars2_telemetry_559"], p["pcars2_timings_1063"]
    order = [tele, timings, tele, tele, timings, tele, timings, tele, tele, timings]
    packets = [encode(lay, {"mPacketNumber": 500 + k, "mPacketType": 0 if lay is tele else 3}) for k, lay in enumerate(order)]
    mgr = manager_factory(config())
    feed = mgr.feeds["pcars"]
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for k, pkt in enumerate(packets):
        if k not in (3, 6):  # one of each kind lost
            out.sendto(pkt, ("127.0.0.1", feed.port))
    out.close()
    wait_until(lambda: feed.stats.packets == 8, manager=mgr)
    assert feed.stats.sequence_gaps == 2


def test_pcars2_lap_data_from_timings_and_stats_reach_the_telemetry_frames(manager_factory):
    # PC2 telemetry has no lap data: the timings, time-stats and race packets carry it, for
    # every participant; the frames after them take the viewed participant's.
    from rt.protocols import default_protocols
    from rt.protocols.encode import encode

    p = default_protocols()
    viewed, n = 2, 32
    race = encode(p["pcars2_race_308"], {"mPacketType": 1, "sTrackLength": 5000.0})
    timings = encode(p["pcars2_timings_1063"], {
        "mPacketType": 3,
        "sParticipants.sCurrentTime": np.where(np.arange(n) == viewed, 12.5, 99.0),
        "sParticipants.sCurrentLap": np.where(np.arange(n) == viewed, 3, 9),
        "sParticipants.sCurrentLapDistance": np.where(np.arange(n) == viewed, 1250, 7),
    })
    stats = encode(p["pcars2_time_stats_1040"], {
        "mPacketType": 7,
        "sStats.sLastLapTime": np.where(np.arange(n) == viewed, 95.25, 80.0),
        "sStats.sFastestLapTime": np.where(np.arange(n) == viewed, 94.5, 79.0),
    })
    telemetry = encode(p["pcars2_telemetry_559"], {"mPacketType": 0, "sViewedParticipantIndex": viewed, "sSpeed": 30.0})
    mgr = manager_factory(config())
    feed = mgr.feeds["pcars"]
    rec = CanonicalRecorder()
    mgr.sinks.append(rec)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for d in (telemetry, race, timings, stats, telemetry):
            out.sendto(d, ("127.0.0.1", feed.port))
    wait_until(lambda: feed.stats.packets == 5, manager=mgr)
    live = mgr.live()["pcars"]
    assert (live["lap_count"], live["lap_time_ms"], live["last_lap_ms"], live["best_lap_ms"]) == (2, 12500, 95250, 94500)
    rows = np.concatenate(rec.canonical)
    assert rows["lap_count"].tolist() == [-1, 2]  # the first frame came before any timings
    assert np.isnan(rows["norm_pos"][0]) and rows["norm_pos"][1] == np.float32(0.25)


class CanonicalRecorder:
    """A sink that keeps the canonical rows it is given."""

    def __init__(self) -> None:
        self.canonical: list[np.ndarray] = []

    def on_raw(self, feed, t_ns, lengths, data, malformed) -> bool:
        return True

    def on_decoded(self, feed, layout, columns, t_ns, canonical) -> None:
        if canonical is not None:
            self.canonical.append(canonical)


def test_names_from_the_menus_never_overwrite_the_game_s_names(manager_factory):
    # A real strings packet (car "Mitsubishi Lancer Evolution X FQ400", track "Cadwell"), then
    # the same packet as the game sends it from its menus: names empty.
    real = need(PCARS1 / "jamesremuscat_ParticipantInfoStringsPacket_1.bin").read_bytes()
    menu = bytearray(real)
    menu[3:259] = bytes(256)  # sCarName, sCarClassName, sTrackLocation, sTrackVariation
    telemetry = need(PCARS1 / "jamesremuscat_packet_0.bin").read_bytes()
    mgr = manager_factory(config())
    feed = mgr.feeds["pcars"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for d in (real, telemetry, bytes(menu), telemetry):
            out.sendto(d, ("127.0.0.1", feed.port))
    wait_until(lambda: feed.stats.packets == 4, manager=mgr)
    live = mgr.live()["pcars"]
    assert (live["car"], live["track"]) == ("Mitsubishi Lancer Evolution X FQ400", "Cadwell")
    assert feed.info["game"] == "project_cars_1" and feed.info["track_config"] == "Woodland"


def test_capture_replay_reaches_the_ksudp_feed(manager_factory, senders, monza_raw):
    payloads = [monza_raw[i * 328 : (i + 1) * 328] for i in range(400)]
    source = ReplaySource(np.arange(400, dtype=np.int64) * 1_000_000, payloads, speed=0)
    ac = AcServer(source, "127.0.0.1", 0)
    senders.append(ac.start())
    mgr = manager_factory(config(ksudp_port=ac.port))
    rec = Recorder()
    mgr.sinks.append(rec)
    wait_until(lambda: rec.kinds.get("ac_car_info", 0) == 400, manager=mgr)
    # Every RTCarInfo byte for byte, in order (the replay ends: handshake answers may follow).
    assert [d for d in rec.raw["ksudp"] if len(d) == 328] == payloads


def test_frequency_is_the_datagrams_received_in_the_last_second():
    # Receive times chosen here, not by a sender's pacing, so the figure is exact on any machine:
    # a feed's ring holds them as the receive thread would have stamped them.
    feed = Feed("telemetry_tool", 0, default_protocols(), None)
    payload = _tt_datagrams(0, 1)[0]
    assert feed.frequency_hz(now_ns=10**9) == 0.0
    # 0.2 s of history at 300 Hz, all inside the last second: the rate it shows (60 in 0.2 s)
    period = round(1e9 / 300)
    t0 = 5 * 10**9
    for i in range(61):
        assert feed.ring.push_bytes(t0 + i * period, payload)
    assert feed.frequency_hz(now_ns=t0 + 60 * period) == pytest.approx(300.0, rel=1e-6)
    # 3 s of it: exactly the datagrams of the last second count
    for i in range(61, 900):
        feed.ring.push_bytes(t0 + i * period, payload)
    now = t0 + 899 * period + period // 2  # between two receive times: no datagram on the edge
    assert feed.frequency_hz(now_ns=now) == 300
    # and a feed that went quiet half a second ago shows what came in the half second before
    assert feed.frequency_hz(now_ns=now + 5 * 10**8) == 150
    assert feed.frequency_hz(now_ns=now + 2 * 10**9) == 0.0


# ---- kernel drops: nothing is lost silently ---------------------------------------------------


def _tt_datagrams(first_id: int, n: int, speed_ms: float = 30.0) -> list[bytes]:
    """``n`` good Telemetry Tool datagrams numbered from ``first_id``."""
    from rt.sim.game import tt_driver

    return [row.tobytes() for row in tt_driver(ScriptedSim(speed_ms=speed_ms).step_block(n), first_id)]


def test_receive_loop_accounts_for_every_datagram_the_kernel_drops():
    # Nobody reads while a burst arrives at a socket whose buffer holds a few dozen datagrams: the
    # kernel drops the rest, the ring (8 slots) drops some of what the kernel kept. No thread: the
    # loop drains when the test says so.
    from rt.feeds.manager import _udp_socket
    from rt_ext.recv import COUNTER_NAMES, HAVE_RECVMMSG, SO_RXQ_OVFL, ReceiverLoop
    from rt_ext.ring import PacketRing

    if not HAVE_RECVMMSG or SO_RXQ_OVFL < 0:
        pytest.skip("kernel drops are counted on Linux only (recvmmsg, SO_RXQ_OVFL)")
    col = {name: k for k, name in enumerate(COUNTER_NAMES)}
    sock = _udp_socket(socket.AF_INET, ("127.0.0.1", 0), 32768)  # the kernel doubles it: ~50 datagrams
    ring = PacketRing(8, 2048)
    loop = ReceiverLoop([(sock.fileno(), ring, None)])
    burst = _tt_datagrams(0, 400)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            for d in burst:
                out.sendto(d, sock.getsockname())
            loop.drain_once()
            _, _, lengths, data = ring.peek(8)
            kept = [int.from_bytes(row[1:5].tobytes(), "little") for row in data]
            ring.release(len(kept))
            c = loop.counters[0]
            # What came first was kept, the rest of what the kernel held went past the full ring.
            # The kernel's drops are not known yet: a datagram tells the drops before it, and once
            # the buffer was full nothing more was queued.
            assert kept == list(range(8)) and c[col["dropped"]] > 0 and c[col["kernel_dropped"]] == 0
            sent = len(burst)
            probes = _tt_datagrams(1000, 20)

            def accounted() -> bool:
                # The drops at the tail of the burst are told by the next datagram that arrives:
                # a probe into the now empty buffer.
                nonlocal sent
                loop.drain_once()
                c = loop.counters[0]
                if c[col["accepted"]] + c[col["dropped"]] + c[col["kernel_dropped"]] == sent:
                    return True
                assert sent - len(burst) < len(probes), f"not accounted for: {dict(zip(COUNTER_NAMES, c.tolist()))}, {sent} sent"
                out.sendto(probes[sent - len(burst)], sock.getsockname())
                sent += 1
                return False

            wait_until(accounted)
        c = dict(zip(COUNTER_NAMES, loop.counters[0].tolist()))
        assert c["accepted"] + c["dropped"] + c["kernel_dropped"] == sent  # every datagram, exactly once
        assert c["kernel_dropped"] > 300 and c["dropped"] == ring.dropped > 0 and c["refused"] == c["shed"] == 0
    finally:
        loop.close()
        sock.close()


def _probe_until_accounted(mgr, feed, sent: int) -> int:
    """Send probes (good datagrams, each with a speed of its own) until the feed accounts for every
    datagram sent, one after another, each once its predecessor is in the live view; returns how
    many were sent. Drops are only told by the next datagram to arrive: the probes tell them."""
    probes = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        while True:
            speed_kmh = (100 + probes) * 3.6
            out.sendto(_tt_datagrams(10_000 + probes, 1, speed_ms=100 + probes)[0], ("127.0.0.1", feed.port))
            probes += 1
            try:
                wait_until(lambda: mgr.live()[feed.name]["speed_kmh"] == pytest.approx(speed_kmh, abs=0.05),
                           timeout=2, manager=mgr)
            except AssertionError:
                pass  # the probe itself was dropped (the buffer was still full): the next one tells
            s = feed.stats
            if s.packets + s.dropped + s.shed + s.refused + s.kernel_dropped == sent + probes:
                return probes
            assert probes < 20, (s, sent, probes)


def test_kernel_drops_of_a_burst_are_counted_and_shown_in_live(manager_factory):
    # A buffer of a few datagrams and a receiver that drains 100 ms after the first one arrives:
    # a burst of 300 sent within those 100 ms overflows it. Every datagram is then received or
    # counted as dropped, by the kernel or the ring, and /api/live says so.
    from rt_ext.recv import HAVE_RECVMMSG, SO_RXQ_OVFL

    if not HAVE_RECVMMSG or SO_RXQ_OVFL < 0:
        pytest.skip("kernel drops are counted on Linux only (recvmmsg, SO_RXQ_OVFL)")
    mgr = manager_factory(config(rcvbuf_bytes=4096, recv_period_ms=100.0))
    rec = Recorder()
    mgr.sinks.append(rec)
    feed = mgr.feeds["telemetry_tool"]
    burst = _tt_datagrams(0, 300)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for d in burst:
            out.sendto(d, ("127.0.0.1", feed.port))
    probes = _probe_until_accounted(mgr, feed, len(burst))
    s = feed.stats
    assert s.packets + s.dropped + s.kernel_dropped == len(burst) + probes
    assert s.kernel_dropped > 200 and s.malformed == 0
    ids = [int.from_bytes(d[1:5], "little") for d in rec.raw["telemetry_tool"]]
    got = [i for i in ids if i < 10_000]
    assert len(ids) == s.packets and got == sorted(set(got)) and got[0] == 0  # in order, the first always
    # A probe sent while the buffer was still full was dropped too.
    assert len(got) + s.dropped + s.kernel_dropped == len(burst) + (probes - (len(ids) - len(got)))
    live = mgr.live()["telemetry_tool"]
    assert live["kernel_dropped"] == s.kernel_dropped and live["dropped"] == s.dropped


def test_live_is_one_snapshot_counters_and_values_together(manager_factory):
    # Every Telemetry Tool datagram k carries packet id 2k (one lost between each two) and its own
    # number as lap time: in any /api/live answer, packets, sequence gaps and the newest values
    # must describe the same datagrams, however the request falls between count and decode.
    from rt.sim.game import tt_driver

    # Every read asks for a fresh snapshot, so the reads fall between passes all through ingest.
    mgr = manager_factory(config(recv_period_ms=1.0), live_max_age_s=0.0)
    feed = mgr.feeds["telemetry_tool"]
    n = 1000
    state = ScriptedSim().step_block(n)
    state["lap_time_s"] = np.arange(n) / 1000.0  # → lap_time_ms = k
    rows = tt_driver(state, 0)
    rows_ids = rows.copy()
    ids = np.arange(n, dtype=np.int64) * 2
    rows_ids[:, 1:5] = ids.astype("<i4").view(np.uint8).reshape(n, 4)
    seen = []
    done = threading.Event()
    answered = threading.Semaphore(0)

    def poll():
        while not done.is_set():  # back to back, as a busy client would
            seen.append(mgr.live()["telemetry_tool"])
            answered.release()

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            for k in range(n):
                out.sendto(rows_ids[k].tobytes(), ("127.0.0.1", feed.port))
                if k % 10 == 9:  # a few answers per 10 datagrams: the reads fall all through ingest
                    for _ in range(2):
                        assert answered.acquire(timeout=5)
        wait_until(lambda: feed.stats.packets == n, manager=mgr)
    finally:
        done.set()
        poller.join()
    moving = [v for v in seen if v["packets"]]
    assert len(moving) > 100
    for v in moving:
        assert v["sequence_gaps"] == v["packets"] - 1, v  # one missing id between each two seen
        assert v["lap_time_ms"] == v["packets"] - 1, v  # the newest value is the last one counted


# ---- light at game rates (issue 16) -----------------------------------------------------------


def test_the_receive_period_lengthens_at_game_rates_and_shortens_for_a_flood():
    # A few datagrams per drain: the period doubles up to its maximum (fewer wake-ups beside the
    # game); a drain that needs more than one recvmmsg batch brings it back to the minimum at once.
    from rt.feeds.manager import _udp_socket
    from rt_ext.recv import HAVE_RECVMMSG, ReceiverLoop
    from rt_ext.ring import PacketRing

    if not HAVE_RECVMMSG:
        pytest.skip("the batched receive loop needs recvmmsg (Linux)")
    sock = _udp_socket(socket.AF_INET, ("127.0.0.1", 0), 1 << 22)
    ring = PacketRing(4096, 2048)
    loop = ReceiverLoop([(sock.fileno(), ring, None)], period_ms=2.0, max_period_ms=16.0)
    runner = threading.Thread(target=loop.run)
    runner.start()
    got = 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            periods = []
            for k in range(6):  # one datagram per drain
                out.sendto(_tt_datagrams(k, 1)[0], sock.getsockname())
                wait_until(lambda: ring.pending == got + 1)
                got += 1
                periods.append(loop.period_ms)
            assert periods == [4.0, 8.0, 16.0, 16.0, 16.0, 16.0]
            for d in _tt_datagrams(100, 300):  # a flood: 300 datagrams in one drain
                out.sendto(d, sock.getsockname())
            wait_until(lambda: ring.pending == got + 300)
            assert loop.period_ms == 2.0
    finally:
        loop.stop()
        runner.join()
        loop.close()
        sock.close()


def test_without_a_recording_the_consumer_wakes_rarely_at_game_rates(manager_factory):
    # 333 datagrams/s and nobody recording or reading: the rings are taken every PASS_S, not ten
    # times a second (a pass costs milliseconds of Python whatever its size). No AC answers here:
    # the ksudp handshake's retries go out every IDLE_S without a pass each (the user who races
    # PCARS only, with the AC feed waiting for a game that never comes).
    from rt.feeds.manager import IDLE_S, PASS_S

    mgr = manager_factory(config())
    feed = mgr.feeds["telemetry_tool"]
    k = [f for f in mgr.feeds.values() if f.sock is not None].index(feed)  # its row of the loop's counters
    sender = PushSender(sim_source("tt", ScriptedSim(), rate_hz=333), "127.0.0.1", feed.port).start()
    try:
        wait_until(lambda: mgr._loop.counters[k, 0] > 0)
        passes0, handshakes0, received0 = mgr._passes, mgr.ksudp.handshakes, mgr._loop.counters[k, 0]
        wait_until(lambda: mgr._loop.counters[k, 0] >= received0 + 4 * 333, timeout=15)  # 4 s of traffic
        passes, handshakes = mgr._passes - passes0, mgr.ksudp.handshakes - handshakes0
    finally:
        sender.stop()
    assert passes <= 4 / PASS_S + 1, passes  # 40 with a pass every 0.1 s, 6 with one per retry too
    assert handshakes >= 4 / IDLE_S - 1, handshakes  # the retries still go out


def test_live_reads_what_was_received_just_before(manager_factory):
    # The live view is not a stale snapshot: a read drains the sockets and waits for that pass.
    mgr = manager_factory(config())
    feed = mgr.feeds["telemetry_tool"]
    mgr.live()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for d in _tt_datagrams(0, 50):
            out.sendto(d, ("127.0.0.1", feed.port))
    wait_until(lambda: mgr.live()["telemetry_tool"]["packets"] == 50)  # no drain, no pass awaited here
    mgr._live_ns = 0  # as if the snapshot had aged
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for d in _tt_datagrams(50, 7):
            out.sendto(d, ("127.0.0.1", feed.port))
    assert mgr.live()["telemetry_tool"]["packets"] == 57


def test_a_sink_gets_the_decoded_groups_only_of_batches_it_kept():
    class Refusing(Recorder):
        def on_raw(self, feed, t_ns, lengths, data, malformed) -> bool:
            super().on_raw(feed, t_ns, lengths, data, malformed)
            return False

    feed = Feed("telemetry_tool", 0, default_protocols(), None)
    keeping, refusing = Recorder(), Refusing()
    for k, d in enumerate(_tt_datagrams(0, 20)):
        feed.ring.push_bytes(k, d)
    feed.consume([keeping, refusing])
    assert len(keeping.raw["telemetry_tool"]) == len(refusing.raw["telemetry_tool"]) == 20
    assert keeping.kinds == {"tt_driver": 20} and refusing.kinds == {}
    # Not recording: the live view still has the newest frame of the batch.
    assert feed.live()["packets"] == 20 and feed.latest["t_ns"][0] == 19



def test_raw_passes_then_one_decoding_pass_give_each_sink_both_halves_in_order():
    # Raw passes (take_raw) hand on the raw halves as they come; the decoding pass after them
    # decodes the batches joined (a decode costs per call), but never across the ring's wrap or
    # between batches that went to different sinks; a sink gets the decoded half only of what it kept.
    class Timed(Recorder):
        def __init__(self, keep_from: int = 0) -> None:
            super().__init__()
            self.keep_from, self.raw_t, self.decoded_t = keep_from, [], []

        def on_raw(self, feed, t_ns, lengths, data, malformed) -> bool:
            if int(t_ns[0]) < self.keep_from:
                return False
            self.raw_t += t_ns.tolist()
            return super().on_raw(feed, t_ns, lengths, data, malformed)

        def on_decoded(self, feed, layout, columns, t_ns, canonical) -> None:
            super().on_decoded(feed, layout, columns, t_ns, canonical)
            self.decoded_t += t_ns.tolist()

    feed = Feed("telemetry_tool", 0, default_protocols(), None)
    capacity = feed.ring.capacity
    sent = 0

    def push(n: int) -> None:
        nonlocal sent
        for d in _tt_datagrams(sent, n):
            feed.ring.push_bytes(sent, d)
            sent += 1

    push(capacity - 300)
    assert feed.consume([]) == capacity - 300  # the next batches cross the ring's end
    every, late = Timed(), Timed(keep_from=capacity + 200)
    for _ in range(4):
        push(250)
        assert feed.take_raw([every, late]) == 250
    assert feed.ring.pending == 1000  # taken raw, not released until decoded
    assert feed.consume([every, late]) == 1000
    assert every.raw_t == every.decoded_t == list(range(capacity - 300, capacity + 700))
    assert late.raw_t == late.decoded_t == list(range(capacity + 200, capacity + 700))
    assert every.kinds == {"tt_driver": 1000} and feed.ring.pending == 0


def test_while_a_sink_wants_raw_batches_often_the_passes_between_decoding_ones_are_raw(manager_factory):
    # The recorder wants its raw files written every PASS_S of its own (under a second); decoding
    # costs milliseconds per pass whatever its size, so the manager decodes every PASS_S of its
    # own and hands out only the raw halves in between. Every raw half still comes on time.
    from rt.feeds.manager import PASS_S

    class Often(Recorder):
        raw_interval_s = 0.4

        def __init__(self) -> None:
            super().__init__()
            self.raw_calls: list[float] = []

        def on_raw(self, feed, t_ns, lengths, data, malformed) -> bool:
            self.raw_calls.append(time.monotonic())
            return super().on_raw(feed, t_ns, lengths, data, malformed)

    mgr = manager_factory(config())
    feed = mgr.feeds["telemetry_tool"]
    sink = Often()
    mgr.sinks.append(sink)
    sender = PushSender(sim_source("tt", ScriptedSim(), rate_hz=333), "127.0.0.1", feed.port).start()
    try:
        wait_until(lambda: len(sink.raw_calls) > 0)
        passes0, raw0, calls0 = mgr._passes, mgr._raw_passes, len(sink.raw_calls)
        start = time.monotonic()
        wait_until(lambda: time.monotonic() - start >= 4.0, timeout=6)  # 4 s of traffic
        passes, raw_passes = mgr._passes - passes0, mgr._raw_passes - raw0
        gaps = np.diff(sink.raw_calls[calls0:])
    finally:
        sender.stop()
    # drain() covers what the receiver has taken in; the last datagrams may still be in the
    # socket, and a raw pass after drain would hand out their raw half alone.
    wait_until(lambda: feed.ring.received == sender.sent)
    assert passes <= 4 / PASS_S + 1, passes  # 10 if every pass decoded
    assert raw_passes >= 4 / 0.4 - passes - 2, raw_passes
    assert gaps.max() < 0.4 * 1.5 + 0.15, gaps.max()  # the raw halves keep their interval
    assert mgr.drain()
    assert sink.kinds["tt_driver"] == sum(len(rows) for rows in sink.raw.values())  # both halves of all


def test_the_age_live_shows_never_contradicts_the_health_beside_it():
    # /api/live shows health and last_packet_age_ms side by side; at a threshold, an age rounded
    # to the nearest 0.1 ms showed 3000.0 beside "lost" (0.04 ms past 3 s).
    from rt.feeds.health import HEALTHY_S, LOST_S, age_ms, health

    for threshold_s, before, after in ((HEALTHY_S, "healthy", "stale"), (LOST_S, "stale", "lost")):
        limit_ns = int(threshold_s * 1e9)
        for now_ns in (limit_ns - 40_000, limit_ns, limit_ns + 1, limit_ns + 40_000, limit_ns + 99_999):
            state, shown = health(True, 0, now_ns), age_ms(0, now_ns)
            assert state == (before if shown <= threshold_s * 1000 else after), (now_ns, state, shown)
            assert state == (before if now_ns <= limit_ns else after)
    assert age_ms(None, 5) is None



def test_a_live_read_within_the_age_limit_answers_at_once_and_asks_for_the_next_snapshot(manager_factory):
    # A client polling /api/live 20 times a second found every other snapshot just past its age
    # limit and waited for a consumer pass (executor → receive → consumer threads and back, behind
    # whatever the consumer was doing): /api/live p99 48 ms at game rates. Past a quarter of the
    # limit a read now answers with the snapshot it has and the consumer makes the next one, so a
    # polling client never waits. Which snapshot a read got is told by a mark on the old one.
    mgr = manager_factory(config(), live_max_age_s=60.0)
    mgr.live()  # the first snapshot
    stamp = mgr._live_ns = mgr._live_ns - 20 * 10**9  # 20 s old: past a quarter of 60 s, within it
    mgr._live = {name: (dict(entry, marked=True), *rest) for name, (entry, *rest) in mgr._live.items()}
    assert all(entry.get("marked") for entry in mgr.live().values())  # the snapshot it had: no pass waited for
    # ... and the consumer was asked for a fresh one, which the next read gets.
    wait_until(lambda: mgr._live_ns > stamp, timeout=10.0)
    assert not any(entry.get("marked") for entry in mgr.live().values())


def test_a_live_read_can_leave_asking_for_the_next_snapshot_until_its_answer_is_out(manager_factory):
    # /api/live reads with ask=False and asks (keep_live_fresh) once its answer is written, so
    # the pass it asks for does not compete with the request itself.
    mgr = manager_factory(config(), live_max_age_s=60.0)
    mgr.live()
    stamp = mgr._live_ns = mgr._live_ns - 20 * 10**9  # past a quarter of its age limit
    mgr.live(ask=False)
    assert mgr._live_ns == stamp and not mgr._live_wanted  # nothing asked
    mgr.keep_live_fresh()
    wait_until(lambda: mgr._live_ns > stamp, timeout=10.0)
    mgr.keep_live_fresh()  # fresh: nothing to ask for
    assert not mgr._live_wanted


def test_a_subscription_lapses_when_the_game_never_streams_or_goes_quiet():
    # ksudp and acc ask the game again on the same two rules (rt.feeds.health.stream_lapse).
    from rt.feeds.health import stream_lapse

    s = 10**9
    granted = 100 * s
    assert stream_lapse(granted + 2 * s, 0, granted, 3.0, 3.0) is None  # granted, not streaming yet
    assert stream_lapse(granted + 4 * s, 0, granted, 3.0, 3.0) == "never"
    assert stream_lapse(granted + 4 * s, granted + 2 * s, granted, 3.0, 3.0) is None  # streams
    assert stream_lapse(granted + 6 * s, granted + 2 * s, granted, 3.0, 3.0) == "quiet"
