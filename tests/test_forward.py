"""Forwarding (RUSTY_TELEMETRY_FORWARD) over real UDP on 127.0.0.1: every datagram a feed accepts
reaches each target unchanged and in order, and a dead or full target costs ingest nothing."""

from __future__ import annotations

import socket
import time

import pytest

import rt.feeds.manager as manager_module
from rigs import ScriptedSim, feed_config, free_udp_port, wait_until
from rt.config import FEED_NAMES, load
from rt.errors import ConfigError
from rt.protocols import FEEDS
from rt.sim.game import tt_driver


class Recorder:
    """A sink that keeps every datagram's bytes, in order."""

    raw_interval_s = None

    def __init__(self) -> None:
        self.raw: list[bytes] = []

    def on_raw(self, feed, t_ns, lengths, data, malformed) -> bool:
        self.raw.extend(row[:n].tobytes() for n, row in zip(lengths.tolist(), data))
        return True

    def on_decoded(self, feed, layout, columns, t_ns, canonical) -> None:
        pass


def _traffic(n: int) -> list[bytes]:
    """``n`` Telemetry Tool datagrams numbered from 0, every 50th cut short (malformed)."""
    rows = [row.tobytes() for row in tt_driver(ScriptedSim().step_block(n), 0)]
    return [d[:100] if k % 50 == 49 else d for k, d in enumerate(rows)]


def _receiver(rcvbuf: int = 1 << 20) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    return sock


def _send_gated(mgr, datagrams: list[bytes], in_flight: int = 3000) -> None:
    """Send as fast as the feed's consumer takes them: at most ``in_flight`` datagrams sent and not
    yet taken from the ring (well inside the ring and the socket's buffer), so the run loses
    nothing unless the recorder itself does. Waits for consumer passes, not for time."""
    feed = mgr.feeds["telemetry_tool"]
    col = manager_module.COUNTER_NAMES
    row = [f for f in mgr.feeds.values() if f.sock is not None].index(feed)  # the loop's socket order
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for k, d in enumerate(datagrams):
            while True:
                c = dict(zip(col, mgr._loop.counters[row].tolist())) if mgr._loop is not None else None
                read = (c["accepted"] - feed.ring.pending) if c else feed.stats.packets
                if k - read < in_flight:
                    break
                mgr.wait_passes(1, timeout=1.0)
            out.sendto(d, ("127.0.0.1", feed.port))
    def all_accounted() -> bool:  # each drain has the sockets read and two passes run at once
        mgr.drain()
        s = feed.stats
        return s.packets + s.dropped + s.kernel_dropped + s.shed >= len(datagrams)

    # until every datagram is counted somewhere (a fixed number of drains gave up early on a busy
    # machine, and the comparison then saw a run cut short)
    wait_until(all_accounted, timeout=30)


def _run(manager_factory, datagrams, forward=()):
    """Ingest ``datagrams`` on a fresh manager; returns (counters, recorded bytes, forward entries)."""
    mgr = manager_factory(feed_config(forward=tuple(("telemetry_tool", "127.0.0.1", p) for p in forward)))
    rec = Recorder()
    mgr.sinks.append(rec)
    _send_gated(mgr, datagrams)
    s = mgr.feeds["telemetry_tool"].stats
    counts = dict(packets=s.packets, malformed=s.malformed, dropped=s.dropped, kernel_dropped=s.kernel_dropped,
                  refused=s.refused, shed=s.shed)
    return counts, rec.raw, [dict(e) for e in mgr.feeds["telemetry_tool"].forward]  # as of the last pass


@pytest.mark.parametrize("receiver", ["recvmmsg", "python"])
def test_every_datagram_reaches_two_targets_in_order_unchanged(manager_factory, monkeypatch, receiver):
    if receiver == "python":
        monkeypatch.setattr(manager_module, "HAVE_RECVMMSG", False)  # the fallback receiver
    elif not manager_module.HAVE_RECVMMSG:
        pytest.skip("recvmmsg is Linux only")
    a, b = _receiver(), _receiver()
    cfg = feed_config(allow_from=("127.0.0.1",),
                      forward=(("telemetry_tool", "127.0.0.1", a.getsockname()[1]),
                               ("telemetry_tool", "127.0.0.1", b.getsockname()[1])))
    mgr = manager_factory(cfg)
    feed = mgr.feeds["telemetry_tool"]
    datagrams = _traffic(2000)
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.2", 0))  # not allowed: refused, so not forwarded either
        for start in range(0, len(datagrams), 100):  # a chunk, then both targets read it
            for d in datagrams[start:start + 100]:
                out.sendto(d, ("127.0.0.1", feed.port))
            stranger.sendto(b"refused" * 10, ("127.0.0.1", feed.port))
            for name, sock in (("a", a), ("b", b)):
                while len(got[name]) < start + 100:
                    got[name].append(sock.recv(4096))
    assert got["a"] == datagrams and got["b"] == datagrams  # in order, byte for byte, malformed too
    wait_until(lambda: mgr.drain() and feed.stats.packets == len(datagrams))  # drain: the sockets read, two passes
    assert feed.stats.refused == (20 if receiver == "recvmmsg" else 0)  # the Python receiver counts no refusals
    assert [e["target"] for e in mgr.live()["telemetry_tool"]["forward"]] == [
        f"127.0.0.1:{s.getsockname()[1]}" for s in (a, b)]
    assert all((e["sent"], e["dropped"], e["errors"]) == (len(datagrams), 0, 0) for e in feed.forward)
    for s in (a, b):  # nothing more came: not the refused ones
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.recv(4096)
        s.close()


def _dead_and_full_targets():
    full = _receiver(rcvbuf=1)  # the kernel's minimum: a few datagrams, and nobody reads
    return free_udp_port(), full  # a port nobody listens on: ICMP refusals


def test_a_dead_and_a_full_target_cost_ingest_nothing(manager_factory):
    datagrams = _traffic(3000)
    dead, full = _dead_and_full_targets()
    plain = _run(manager_factory, datagrams)
    counts, raw, forward = _run(manager_factory, datagrams, (dead, full.getsockname()[1]))
    full.close()
    assert counts == plain[0] and raw == plain[1] == datagrams  # the same counters, the same recording
    assert counts["packets"] == len(datagrams) and counts["malformed"] == len(datagrams) // 50
    for entry in forward:  # every datagram sent or counted as dropped, per target
        assert entry["sent"] + entry["dropped"] == len(datagrams)
    dead_entry = forward[0]
    assert dead_entry["errors"] > 0 and dead_entry["dropped"] > 0  # the refusals were seen, and cost a call each


def test_a_flood_forwarded_to_dead_targets_loses_nothing_more(manager_factory):
    # 50 000 datagrams as fast as the recorder takes them (see _send_gated), once without
    # forwarding and once forwarding to a dead and a full target: the same datagrams recorded,
    # the same counters (nothing lost in either).
    datagrams = _traffic(50_000)
    dead, full = _dead_and_full_targets()
    plain = _run(manager_factory, datagrams)
    counts, raw, forward = _run(manager_factory, datagrams, (dead, full.getsockname()[1]))
    full.close()
    assert counts == plain[0] and raw == plain[1]
    assert counts["packets"] == len(datagrams) and counts["dropped"] == counts["kernel_dropped"] == 0
    assert all(e["sent"] + e["dropped"] == len(datagrams) for e in forward)


def test_config_forward_targets():
    cfg = load({"RUSTY_TELEMETRY_FORWARD": "pcars=127.0.0.1:5607, telemetry_tool=192.168.1.20:10101,pcars=[::1]:5607"})
    assert cfg.forward == (("pcars", "127.0.0.1", 5607), ("telemetry_tool", "192.168.1.20", 10101), ("pcars", "::1", 5607))
    assert load({}).forward == ()
    assert FEED_NAMES == FEEDS  # config's copy of the feed names


@pytest.mark.parametrize("raw, says", [
    ("pcars", "not feed=host:port"),
    ("=127.0.0.1:5607", "not feed=host:port"),
    ("dirt=127.0.0.1:5607", "unknown feed 'dirt'"),
    ("pcars=127.0.0.1", "not host:port"),
    ("pcars=::1:5607", "not host:port"),
    ("pcars=[127.0.0.1]:5607", "IPv6 address goes in brackets"),
    ("pcars=simhub.local:5607", "not an IP address"),
    ("pcars=127.0.0.1:0", "port must be 1..65535"),
    ("pcars=127.0.0.1:65536", "port must be 1..65535"),
    ("pcars=127.0.0.1:x", "not a port number"),
])
def test_config_forward_rejects(raw, says):
    with pytest.raises(ConfigError, match="RUSTY_TELEMETRY_FORWARD") as err:
        load({"RUSTY_TELEMETRY_FORWARD": raw})
    assert says in str(err.value)


def test_serve_forwards_what_the_environment_says_and_live_shows_it(server_factory):
    target = _receiver()
    port = target.getsockname()[1]
    srv = server_factory(RUSTY_TELEMETRY_FORWARD=f"telemetry_tool=127.0.0.1:{port}")
    feeds = srv.get("/api/live")[1]["feeds"]
    assert feeds["pcars"]["forward"] == []  # a feed without targets
    datagrams = _traffic(10)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for d in datagrams:
            out.sendto(d, ("127.0.0.1", feeds["telemetry_tool"]["port"]))
    assert [target.recv(4096) for _ in datagrams] == datagrams
    target.close()
    entry = wait_until(lambda: (f := srv.get("/api/live")[1]["feeds"]["telemetry_tool"]["forward"])[0]["sent"] == 10 and f)
    assert entry == [{"target": f"127.0.0.1:{port}", "sent": 10, "dropped": 0, "errors": 0}]
    assert srv.stop()[0] == 0


def test_a_feed_is_never_forwarded_to_its_own_socket(manager_factory):
    own = free_udp_port()
    mgr = manager_factory(feed_config(tt_port=own, forward=(("telemetry_tool", "127.0.0.1", own),)))
    assert mgr.feeds["telemetry_tool"].forward == [
        {"target": f"127.0.0.1:{own}", "sent": 0, "dropped": 0, "errors": 0, "error": "the feed's own socket"}]


def _own_lan_address() -> str:
    """This machine's address on its LAN (the route out's source address), or a second loopback
    address where it has no network."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, the kernel picks a route
            ip = probe.getsockname()[0]
        except OSError:
            return "127.0.0.2"
    return ip if not ip.startswith("127.") else "127.0.0.2"


def test_ipv6_and_lan_targets_get_every_datagram(manager_factory):
    # a target on IPv6 loopback and one on this machine's LAN address, as a dashboard PC would be
    six = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    six.bind(("::1", 0))
    six.settimeout(10)
    lan_ip = _own_lan_address()
    lan = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lan.bind((lan_ip, 0))
    lan.settimeout(10)
    mgr = manager_factory(feed_config(forward=(("telemetry_tool", "::1", six.getsockname()[1]),
                                               ("telemetry_tool", lan_ip, lan.getsockname()[1]))))
    feed = mgr.feeds["telemetry_tool"]
    datagrams = _traffic(500)
    got: dict[str, list[bytes]] = {"six": [], "lan": []}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for start in range(0, len(datagrams), 100):
            for d in datagrams[start:start + 100]:
                out.sendto(d, ("127.0.0.1", feed.port))
            for name, sock in (("six", six), ("lan", lan)):
                while len(got[name]) < start + 100:
                    got[name].append(sock.recv(4096))
    assert got["six"] == datagrams and got["lan"] == datagrams
    assert [e["target"] for e in feed.forward] == [f"[::1]:{six.getsockname()[1]}", f"{lan_ip}:{lan.getsockname()[1]}"]
    wait_until(lambda: mgr.drain() and all(e["sent"] == len(datagrams) for e in feed.forward))
    six.close()
    lan.close()


@pytest.mark.parametrize("receiver", ["recvmmsg", "python"])
def test_a_dead_target_is_paused_then_served_once_it_listens(manager_factory, monkeypatch, receiver):
    # Nobody listens: each send to it would fail (on loopback after a full trip through the
    # kernel's receive path and an ICMP answer). Paused after a refusal, it costs one failed call and
    # one batch per pause, however many datagrams come; once a program binds the port, it gets data.
    from rt.recv import FORWARD_PAUSE_S

    if receiver == "python":
        monkeypatch.setattr(manager_module, "HAVE_RECVMMSG", False)
    elif not manager_module.HAVE_RECVMMSG:
        pytest.skip("recvmmsg is Linux only")
    port = free_udp_port()
    mgr = manager_factory(feed_config(forward=(("telemetry_tool", "127.0.0.1", port),)))
    feed = mgr.feeds["telemetry_tool"]
    datagrams = _traffic(20)
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for _ in range(100):  # 2 000 datagrams in batches of 20, each batch received before the next
            for d in datagrams:
                out.sendto(d, ("127.0.0.1", feed.port))
            before = feed.stats.packets
            wait_until(lambda: mgr.drain() and feed.stats.packets >= before + len(datagrams))
        elapsed = time.monotonic() - started
        entry = feed.forward[0]
        assert entry["sent"] + entry["dropped"] == 2000
        pauses = elapsed / FORWARD_PAUSE_S + 1  # pauses begun: at most one per pause length
        # without the pause: a failed call every other batch at least (50 here), and as many sends
        assert entry["errors"] <= 2 * pauses and entry["sent"] <= 2 * pauses * len(datagrams), (entry, elapsed)
        assert entry["errors"] >= 1
        # a dashboard starts: within a pause it receives what the game sends
        alive = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        alive.bind(("127.0.0.1", port))
        alive.setblocking(False)

        def arrived() -> bool:
            out.sendto(datagrams[0], ("127.0.0.1", feed.port))
            mgr.drain()
            try:
                return alive.recv(4096) == datagrams[0]
            except BlockingIOError:
                return False

        wait_until(arrived, timeout=10)
        alive.close()
