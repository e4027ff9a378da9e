"""The simulate and replay commands, end to end over real UDP."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import AC_MONZA, need
from rigs import feed_config, free_udp_port, wait_until
from rt.store.rawfile import HEADER, MAGIC


@pytest.fixture
def manager(manager_factory):
    return lambda **kw: manager_factory(feed_config(**kw))


def test_replay_of_the_monza_capture_plays_ac_and_is_received_whole(manager):
    port = free_udp_port()
    # 40× the capture's pace (~2 600 datagrams/s, 3.4 s): flat out (--speed 0) would put all 8641
    # datagrams on the wire within a few ms, more than a ring holds (8192) unless the consumer
    # happens to wake in time, which is luck on a loaded 2-core machine.
    proc = subprocess.Popen([sys.executable, "-m", "rt", "replay", str(need(AC_MONZA)), "--port", str(port), "--speed", "40"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "waiting for a handshake" in proc.stdout.readline()
        mgr = manager(ksudp_port=port)
        feed = mgr.feeds["ksudp"]
        wait_until(lambda: feed.stats.packets >= 8641 + 1, timeout=30, manager=mgr)  # + the handshake answer
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "sent 8641 datagrams" in out
    assert feed.stats.malformed == 0
    assert mgr.live()["ksudp"]["lap_count"] == 1 and mgr.live()["ksudp"]["last_lap_ms"] == 344684


def test_replay_of_a_raw_feed_file_keeps_bytes_and_order(manager, tmp_path):
    mgr = manager()
    feed = mgr.feeds["telemetry_tool"]
    payloads = [bytes([i]) * 357 for i in range(50)] + [b"short"]
    path = tmp_path / "telemetry_tool.bin"
    with path.open("wb") as fh:
        fh.write(MAGIC)
        for i, p in enumerate(payloads):
            fh.write(HEADER.pack(1_700_000_000_000_000_000 + i * 1_000_000, len(p)) + p)
        fh.write(HEADER.pack(0, 400)[:7])  # a torn last record is ignored
    out = subprocess.run([sys.executable, "-m", "rt", "replay", str(path), "--feed", "telemetry_tool",
                          "--port", str(feed.port), "--speed", "10"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "sent 51 datagrams" in out.stdout
    wait_until(lambda: feed.stats.packets == 51, manager=mgr)
    assert feed.stats.malformed == 1


def test_simulate_pushes_live_data(manager):
    mgr = manager()
    port = mgr.feeds["pcars"].port
    # As the real game, it starts in the menus (5 s): telemetry of nothing, strings with empty names.
    out = subprocess.run([sys.executable, "-m", "rt", "simulate", "--game", "pcars1", "--port", str(port),
                          "--seconds", "1", "--seed", "3"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    sent = int(out.stdout.strip().splitlines()[-1].split()[1])
    wait_until(lambda: mgr.feeds["pcars"].stats.packets >= sent, manager=mgr)
    live = mgr.live()["pcars"]
    assert live["speed_kmh"] == 0.0 and live["car"] is None and live["track"] is None
    # --clean: straight onto the track (a fresh feed: the game restarting resets its counter).
    mgr = manager()
    port = mgr.feeds["pcars"].port
    out = subprocess.run([sys.executable, "-m", "rt", "simulate", "--game", "pcars1", "--port", str(port),
                          "--seconds", "1", "--seed", "3", "--clean"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    sent = int(out.stdout.strip().splitlines()[-1].split()[1])
    wait_until(lambda: mgr.feeds["pcars"].stats.packets >= sent, manager=mgr)
    live = mgr.live()["pcars"]
    assert live["speed_kmh"] > 50 and live["gear"] >= 1 and live["track"] == "RT Test Ring"
    assert mgr.feeds["pcars"].stats.malformed == 0 and mgr.feeds["pcars"].stats.sequence_gaps == 0
