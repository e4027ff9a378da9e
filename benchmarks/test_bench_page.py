"""The web page's cost: its first load, and what its live view's polling costs the server.

* first load: a fresh browser context (nothing cached) opens ``/`` of a ``serve`` that ingests
  2 feeds × 333 datagrams/s, until the page's ``load`` event, and until the live view shows the
  first values; peer: the same files served by Python's ``http.server`` in the same run (the
  ``load`` event only: that server has no API behind it).
* polling: the ``serve`` process's CPU (from /proc) over 20 s windows while it ingests 2 × 333/s,
  with no page open and with the live view open (polling /api/live every 300 ms), interleaved.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import subprocess
import threading
import time

import pytest

from benchmarks.soak import cpu_seconds
from benchmarks.test_bench_e2e import FEEDS, RtServer, _template
from rt.api.page import WEB_DIR

browser_rig = pytest.importorskip("browser")  # tests/browser.py (benchmarks/conftest.py puts tests/ on the path)
if browser_rig.chromium_path() is None:
    pytest.skip("needs Chromium (Debian's chromium package, or CHROMIUM=path)", allow_module_level=True)

WINDOW_S = 20.0
RATE = 333


@contextlib.contextmanager
def ingesting(cbin, tmp_path):
    """A ``serve`` receiving Telemetry Tool and PCARS datagrams at :data:`RATE`/s each (C senders;
    AC's handshake is beyond them, which the e2e benchmarks' /api/live row shares)."""
    srv = RtServer(tmp_path)
    senders = [subprocess.Popen([str(cbin / "udp_blast"), "127.0.0.1", str(srv.ports[f]), "10000000", str(t[1]), str(RATE),
                                 str(t[0]), str(t[2])], stdout=subprocess.DEVNULL)
               for f, t in ((f, _template(tmp_path, f)) for f in FEEDS)]
    try:
        yield srv
    finally:
        for s in senders:
            s.kill()
            s.wait()
        srv.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def static_server(tmp_path):
    """Python's ``http.server`` serving the page's files at the same paths (the peer)."""
    root = tmp_path / "static"
    root.mkdir()
    (root / "index.html").write_bytes((WEB_DIR / "index.html").read_bytes())
    (root / "ui").symlink_to(WEB_DIR)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.benchmark(group="page")
def test_first_load_and_polling_cost(benchmark, cbin, tmp_path):
    result: dict = {"rt_load_ms": [], "rt_first_values_ms": [], "peer_load_ms": [], "cpu_idle_pct": [], "cpu_page_pct": []}

    def run():
        with ingesting(cbin, tmp_path) as srv, static_server(tmp_path) as peer, browser_rig.launch() as browser:
            time.sleep(2)  # the feeds turn healthy
            for _ in range(5):  # cold loads, alternating
                ctx = browser.new_context()
                page = ctx.new_page()
                t0 = time.perf_counter()
                page.goto(srv.url + "/#live", wait_until="load")
                result["rt_load_ms"].append((time.perf_counter() - t0) * 1e3)
                page.wait_for_selector("#v-speed")
                result["rt_first_values_ms"].append((time.perf_counter() - t0) * 1e3)
                ctx.close()
                ctx = browser.new_context()
                page = ctx.new_page()
                t0 = time.perf_counter()
                page.goto(peer + "/index.html", wait_until="load")  # its script fails to reach an API: no matter
                result["peer_load_ms"].append((time.perf_counter() - t0) * 1e3)
                ctx.close()
            for _ in range(2):  # CPU: no page, then the live view open
                for key, open_page in (("cpu_idle_pct", False), ("cpu_page_pct", True)):
                    ctx = browser.new_context()
                    if open_page:
                        ctx.new_page().goto(srv.url + "/#live")
                    time.sleep(2)
                    c0, t0 = cpu_seconds(srv.proc.pid), time.monotonic()
                    time.sleep(WINDOW_S)
                    result[key].append((cpu_seconds(srv.proc.pid) - c0) / (time.monotonic() - t0) * 100)
                    ctx.close()

    benchmark.pedantic(run, rounds=1, iterations=1)
    for key, values in result.items():
        benchmark.extra_info[key] = [round(v, 2) for v in values]
    print("\n" + "\n".join(f"{k}: {[round(v, 2) for v in vals]}" for k, vals in result.items()))
