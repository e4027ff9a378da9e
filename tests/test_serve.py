"""End to end: the real `rusty-telemetry serve` process, real UDP in, real HTTP out."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from rigs import ScriptedSim, wait_until
from rt.sim.game import AcServer, PushSender, sim_source


class Server:
    """`python -m rt serve` in a child process on ephemeral ports."""

    def __init__(self, tmp_path, command: str = "serve", **env) -> None:
        full = dict(os.environ)
        full.update({
            "RUSTY_TELEMETRY_API_PORT": "0",
            "RUSTY_TELEMETRY_TT_PORT": "0",
            "RUSTY_TELEMETRY_PCARS_PORT": "0",
            "RUSTY_TELEMETRY_LISTEN": "127.0.0.1",
            "RUSTY_TELEMETRY_DATA_DIR": str(tmp_path / "data"),
        })
        full.update(env)
        self.log = open(tmp_path / f"server-{os.getpid()}-{id(self)}.log", "w+")  # a file: a full pipe cannot block it
        self.proc = subprocess.Popen([sys.executable, "-m", "rt", command, "--plain"], env=full,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        for line in self.proc.stdout:  # blocks until the server announces itself (or dies)
            if "listening on" in line:
                self.url = line.rsplit(" ", 1)[1].strip()
                break
        else:
            self.proc.wait()
            raise AssertionError(f"server did not start: {self.stderr()}")

    def stderr(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def get(self, path: str):
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, self.stderr()


@pytest.fixture
def server_factory(tmp_path):
    made = []

    def make(command: str = "serve", **env) -> Server:
        srv = Server(tmp_path, command, **env)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
        srv.proc.stdout.close()
        srv.log.close()


def test_live_over_http_from_three_feeds_and_clean_sigterm(server_factory):
    ac = AcServer(sim_source("ac", ScriptedSim(speed_ms=25.0, gear=-1), rate_hz=200), "127.0.0.1", 0).start()
    srv = server_factory(RUSTY_TELEMETRY_KSUDP_PORT=str(ac.port))
    try:
        status, live = srv.get("/api/live")
        assert status == 200 and live["recording"] is None and set(live["feeds"]) == {"ksudp", "telemetry_tool", "pcars"}
        tt = PushSender(sim_source("tt", ScriptedSim(gear=0), rate_hz=200), "127.0.0.1", live["feeds"]["telemetry_tool"]["port"]).start()
        pc = PushSender(sim_source("pcars2", ScriptedSim(gear=5, throttle=1.0)), "127.0.0.1", live["feeds"]["pcars"]["port"]).start()
        try:
            def all_moving():
                feeds = srv.get("/api/live")[1]["feeds"]
                return feeds if all(f["health"] == "healthy" and f["speed_kmh"] is not None for f in feeds.values()) else None

            feeds = wait_until(all_moving, timeout=15)
        finally:
            tt.stop()
            pc.stop()
        assert feeds["ksudp"]["gear"] == -1 and feeds["ksudp"]["speed_kmh"] == pytest.approx(90.0, abs=1e-3)
        assert feeds["telemetry_tool"]["gear"] == 0
        assert feeds["pcars"]["gear"] == 5 and feeds["pcars"]["throttle"] == 1.0
        assert feeds["pcars"]["lap_time_ms"] is None  # PC2 telemetry carries no lap data
        assert all(f["malformed"] == 0 and f["dropped"] == 0 for f in feeds.values())
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


def test_demo_shows_moving_data_on_every_feed_within_seconds(server_factory):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        ksudp_port = probe.getsockname()[1]
    srv = server_factory("demo", RUSTY_TELEMETRY_KSUDP_PORT=str(ksudp_port))

    def moving():
        feeds = srv.get("/api/live")[1]["feeds"]
        ok = all(f["health"] == "healthy" and (f["speed_kmh"] or 0) > 10 and f["gear"] >= 1 for f in feeds.values())
        # AC streams at its physics rate, 333 Hz, once a full second of it has arrived
        return feeds if ok and 250 < feeds["ksudp"]["frequency_hz"] < 420 else None

    feeds = wait_until(moving, timeout=15)
    assert feeds["ksudp"]["car"] == "rt_sim_gt" and feeds["pcars"]["track"] == "RT Test Ring"
    assert 40 < feeds["telemetry_tool"]["frequency_hz"] < 80  # the app's 60 Hz
    code, err = srv.stop()
    assert code == 0 and "Traceback" not in err and "Error in sys.excepthook" not in err
