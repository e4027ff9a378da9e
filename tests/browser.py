"""The web page's rig: headless Chromium (Debian's ``chromium``) driven by Playwright, and a real
``serve`` fed by the simulator. Used by tests/test_page.py and docs/screenshots.py."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rigs import Server, free_udp_port, gated, wait_until
from rt.sim.driver import Simulation
from rt.sim.game import AcServer, PushSender, pcars1_extra, sim_source
from rt.sim.quirks import Quirks

#: The flags a closed network wants: no background connections, which it refuses many at a time.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SPEED = 40.0
LAPS_TIMEOUT_S = 300


def chromium_path() -> str | None:
    """Chromium's executable: ``CHROMIUM``, else ``chromium`` (Debian's package) on the PATH or in /usr/bin."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@contextlib.contextmanager
def launch():
    """A headless Chromium browser (Playwright), closed on exit."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("no Chromium: install Debian's chromium package, or set CHROMIUM to its executable")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class SimRig:
    """A ``serve`` with the simulator playing AC (racing laps, KSUDP handshake) and PCARS 1 (pulls
    through the gears, for shift points), both 40× faster than real time."""

    srv: Server
    senders: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.srv.url

    def live(self) -> dict:
        return self.srv.get("/api/live")[1]["feeds"]

    def laps(self, feed: str) -> int:
        return self.live()[feed]["lap_count"] or 0

    def wait_laps(self, laps: dict[str, int]) -> None:
        """Wait until each feed has completed ``laps[feed]`` more laps than now."""
        first = {feed: self.laps(feed) for feed in laps}
        wait_until(lambda: all(self.laps(f) >= first[f] + n for f, n in laps.items()), timeout=LAPS_TIMEOUT_S)

    def sessions_with_laps(self, use_cases) -> dict[str, str]:
        """One completed session per use case (shift points on pcars, the rest on ksudp), each with
        a run over the same few laps; returns {use_case: session id}."""
        made = {}
        for uc in use_cases:
            status, session = self.srv.call("POST", "/api/sessions", {"use_case": uc})
            assert status == 201, session
            feed = "pcars" if uc == "shift_points" else "ksudp"
            status, run = self.srv.call("POST", f"/api/sessions/{session['id']}/runs", {"feed_name": feed})
            assert status == 201, run
            made[uc] = (session["id"], run["id"])
        self.wait_laps({"ksudp": 4, "pcars": 2})
        for sid, rid in made.values():
            assert self.srv.call("POST", f"/api/sessions/{sid}/runs/{rid}/stop")[0] == 200
            status, done = self.srv.call("POST", f"/api/sessions/{sid}/complete")
            assert status == 200, done
        return {uc: sid for uc, (sid, _) in made.items()}


@contextlib.contextmanager
def sim_server(tmp: Path, **env: str):
    """A :class:`SimRig`, its senders stopped and its server stopped on exit."""
    ksudp = free_udp_port()
    srv = Server(tmp, "serve", RUSTY_TELEMETRY_KSUDP_PORT=str(ksudp), **env)
    rig = SimRig(srv)
    real = Quirks.real()
    race = Simulation("gt_coupe", "test_ring", rate_hz=100.0, seed=4, out_lap_m=real.out_lap_m, lap_variation=0.01)
    pulls = Simulation("gt_coupe", "test_ring", rate_hz=100.0, seed=5, mode="pulls")
    pcars = sim_source("pcars1", pulls, speed=SPEED, quirks=real)
    try:
        rig.senders = [
            gated(AcServer(sim_source("ac", race, speed=SPEED, quirks=real), "127.0.0.1", ksudp), srv, "ksudp").start(),
            gated(PushSender(pcars, "127.0.0.1", rig.live()["pcars"]["port"], extra=pcars1_extra(pcars)), srv, "pcars").start(),
        ]
        wait_until(lambda: all(rig.live()[f]["health"] == "healthy" for f in ("ksudp", "pcars")), timeout=15)
        yield rig
    finally:
        for sender in rig.senders:
            sender.stop()
        if srv.proc.poll() is None:
            srv.stop()
        srv.proc.stdout.close()
        srv.log.close()
