"""End to end: the real `rusty-telemetry serve` process, real UDP in, real HTTP out."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from rigs import ScriptedSim, wait_until
from rt.sim.game import DEFAULT_RATES, AcServer, PushSender, make_sim, sim_source


def test_live_over_http_from_three_feeds_and_clean_sigterm(server_factory):
    ac = AcServer(sim_source("ac", ScriptedSim(speed_ms=25.0, gear=-1), rate_hz=200), "127.0.0.1", 0).start()
    srv = server_factory(RUSTY_TELEMETRY_KSUDP_PORT=str(ac.port))
    try:
        status, live = srv.get("/api/live")
        assert status == 200 and live["recording"] is None
        assert set(live["feeds"]) == {"ksudp", "telemetry_tool", "pcars", "acc"}
        tt = PushSender(sim_source("tt", ScriptedSim(gear=0), rate_hz=200), "127.0.0.1", live["feeds"]["telemetry_tool"]["port"]).start()
        pc = PushSender(sim_source("pcars2", ScriptedSim(gear=5, throttle=1.0)), "127.0.0.1", live["feeds"]["pcars"]["port"]).start()
        try:
            def all_moving():
                feeds = srv.get("/api/live")[1]["feeds"]
                playing = [f for name, f in feeds.items() if name != "acc"]  # no ACC in this test
                return feeds if all(f["health"] == "healthy" and f["speed_kmh"] is not None for f in playing) else None

            feeds = wait_until(all_moving, timeout=15)
        finally:
            tt.stop()
            pc.stop()
        assert feeds["ksudp"]["gear"] == -1 and feeds["ksudp"]["speed_kmh"] == pytest.approx(90.0, abs=1e-3)
        assert feeds["telemetry_tool"]["gear"] == 0
        assert feeds["pcars"]["gear"] == 5 and feeds["pcars"]["throttle"] == 1.0
        assert feeds["pcars"]["lap_time_ms"] is None  # PC2 telemetry carries none (no timings sent here)
        assert all(f["malformed"] == 0 and f["dropped"] == 0 for f in feeds.values())
        assert feeds["acc"]["health"] == "handshaking" and feeds["acc"]["packets"] == 0  # asking an ACC that is not there
        assert srv.get("/api/games") == (200, ["assetto_corsa", "assetto_corsa_competizione", "project_cars_1", "project_cars_2"])
        assert srv.get("/api/use-cases")[1][0] == "shift_points"
        status, body = srv.get("/api/no-such-thing")
        assert status == 404 and body["error"]["code"] == "not_found"
        code, err = srv.stop()
        assert code == 0, err
        assert "Traceback" not in err
        wait_until(lambda: ac.dismissed >= 1)  # the game was told to stop streaming
    finally:
        ac.stop()


def test_bad_configuration_stops_startup_with_one_line(tmp_path):
    env = dict(os.environ, RUSTY_TELEMETRY_API_PORT="70000")
    out = subprocess.run([sys.executable, "-m", "rt", "serve", "--plain"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert lines == ["rusty-telemetry: configuration error: RUSTY_TELEMETRY_API_PORT='70000': port must be 0..65535"]


def test_demo_games_send_at_the_real_games_rates():
    # The rates are the simulated games' own, per second of game time, so they are exact on any
    # machine; the live frequency the demo test above sees is these rates as the machine delivers them.
    for game, per_s in (("ac", 333), ("tt", 60), ("pcars1", 60)):
        source = sim_source(game, make_sim(1, rate_hz=DEFAULT_RATES[game], quirks=True))
        assert len(source.take(1.0)) == per_s and len(source.take(3.0)) == 2 * per_s, game


def test_demo_shows_moving_data_on_every_feed_within_seconds(server_factory):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        ksudp_port = probe.getsockname()[1]
    srv = server_factory("demo", RUSTY_TELEMETRY_KSUDP_PORT=str(ksudp_port))

    def moving():
        feeds = srv.get("/api/live")[1]["feeds"]
        ok = all(f["health"] == "healthy" and (f["speed_kmh"] or 0) > 10 and f["gear"] >= 1 for f in feeds.values())
        # PCARS starts in its menus (5 s, empty names), then names car and track every 2 s.
        ok = ok and feeds["pcars"]["track"] is not None
        return feeds if ok and all(f["frequency_hz"] > 0 for f in feeds.values()) else None

    feeds = wait_until(moving, timeout=15)
    assert feeds["ksudp"]["car"] == "rt_sim_gt" and feeds["pcars"]["track"] == "RT Test Ring"
    code, err = srv.stop()
    assert code == 0 and "Traceback" not in err and "Error in sys.excepthook" not in err
