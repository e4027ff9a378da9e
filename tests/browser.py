"""The web page's rig: headless Chromium (Debian's ``chromium``) driven by Playwright, and a real
``serve`` fed by the simulator. Used by tests/test_page.py and docs/screenshots.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
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


def firefox_path() -> str | None:
    """Firefox's executable: ``FIREFOX``, else Debian's ``firefox-esr`` (or ``firefox``) on the PATH."""
    return os.environ.get("FIREFOX") or shutil.which("firefox-esr") or shutil.which("firefox")


class Firefox:
    """Headless Firefox driven over WebDriver BiDi (its own remote protocol, no driver binary):
    navigate, evaluate JavaScript, collect the console's errors. Playwright drives only its own
    patched Firefox builds, which this machine does not download."""

    def __init__(self) -> None:
        import tempfile

        from rigs import free_tcp_port

        path = firefox_path()
        if path is None:
            raise RuntimeError("no Firefox: install Debian's firefox-esr package, or set FIREFOX to its executable")
        self.port = free_tcp_port()
        self.profile = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen([path, "--headless", "--no-remote", "--profile", self.profile.name,
                                      f"--remote-debugging-port={self.port}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.errors: list[str] = []
        self._next = 0
        self.ws = None

    async def start(self) -> None:
        import asyncio

        import websockets

        deadline = time.monotonic() + 30
        while self.ws is None:
            try:
                self.ws = await websockets.connect(f"ws://127.0.0.1:{self.port}/session", max_size=None)
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                await asyncio.sleep(0.1)
        await self.command("session.new", {"capabilities": {}})
        await self.command("session.subscribe", {"events": ["log.entryAdded"]})
        self.context = (await self.command("browsingContext.getTree", {}))["contexts"][0]["context"]

    async def command(self, method: str, params: dict) -> dict:
        import json as json_

        self._next += 1
        ident = self._next
        await self.ws.send(json_.dumps({"id": ident, "method": method, "params": params}))
        while True:
            msg = json_.loads(await self.ws.recv())
            if msg.get("method") == "log.entryAdded" and msg["params"].get("level") == "error":
                self.errors.append(msg["params"].get("text", ""))
            if msg.get("id") == ident:
                if msg.get("type") == "error":
                    raise RuntimeError(f"{method}: {msg.get('error')}: {msg.get('message')}")
                return msg["result"]

    async def goto(self, url: str) -> None:
        await self.command("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})

    async def evaluate(self, expression: str):
        """The JSON value of ``expression`` (evaluated as ``JSON.stringify(expression)``)."""
        import json as json_

        result = await self.command("script.evaluate", {"expression": f"JSON.stringify({expression})",
                                                        "target": {"context": self.context}, "awaitPromise": True})
        if result.get("type") == "exception":
            raise RuntimeError(result["exceptionDetails"]["text"])
        return json_.loads(result["result"]["value"]) if result["result"].get("value") is not None else None

    async def wait_for(self, expression: str, timeout: float = 20.0):
        """Evaluate ``expression`` until it is truthy (page events, not time, decide when)."""
        import asyncio

        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(f"(() => {{ try {{ return {expression}; }} catch (e) {{ return null; }} }})()")
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {timeout} s in Firefox: {expression}")
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        self.proc.kill()
        self.proc.wait()
        self.profile.cleanup()
