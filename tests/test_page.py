"""The web page (GET /) in a real headless Chromium against a real ``serve`` fed by the simulator.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it where missing). Without it these
tests are skipped with the reason, unless ``RT_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a
failure. The page is driven as a person would: clicks, a form, the confirmation dialog, the token
dialog; what it shows is compared with what the API says.
"""

from __future__ import annotations

import os
import urllib.request

import pytest

from browser import chromium_path, launch, sim_server
from rigs import Server, wait_until

if chromium_path() is None:
    if os.environ.get("RT_REQUIRE_BROWSER") == "1":
        raise RuntimeError("RT_REQUIRE_BROWSER=1 but no Chromium: install Debian's chromium or set CHROMIUM")
    pytest.skip("needs Chromium (Debian's chromium package, or CHROMIUM=path)", allow_module_level=True)
pytest.importorskip("playwright")
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def browser():
    with launch() as b:
        yield b


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    with sim_server(tmp_path_factory.mktemp("page")) as r:
        yield r


class Watched:
    """A page with its console errors, uncaught exceptions and requests recorded."""

    def __init__(self, browser, base: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.base = base
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        self.page.on("request", lambda req: self.requests.append(req.url))

    def open(self, hash_: str = "", query: str = "") -> None:
        self.page.goto(f"{self.base}/{query}{hash_}")

    def js(self, expression: str):
        return self.page.evaluate(expression)

    def chart_points(self, name: str) -> list[int]:
        """Per series of chart ``name``: how many of its values are numbers; and the chart drew them:
        every scale its series use has a range (uPlot leaves them unset when it could not draw)."""
        used = (f"(() => {{ const u = window.rt.charts[{name!r}]; if (!u) return null;"
                f" return [...new Set(u.series.map(s => s.scale))].map(k => [k, u.scales[k].min, u.scales[k].max]); }})()")
        try:  # uPlot sets the ranges as it initialises, just after the chart is made
            self.page.wait_for_function(f"(({used}) || []).length > 0 && ({used}).every(s => s[1] !== null)", timeout=5000)
        except PlaywrightTimeout:
            pass  # the assertion below says which scale has no range
        scales = self.js(used)
        for key, lo, hi in scales:
            assert lo is not None and hi is not None and lo < hi, (name, key, lo, hi)
        return self.js(f"window.rt.charts[{name!r}].data.slice(1).map(s => s.filter(v => typeof v === 'number').length)")

    def assert_clean(self) -> None:
        assert self.errors == []
        assert all(url.startswith(self.base) or url.startswith("data:") for url in self.requests), self.requests

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def watched(browser, rig):
    w = Watched(browser, rig.url)
    yield w
    w.close()


def test_live_view_moves_and_its_strip_stays_bounded(watched, rig):
    # ?strip_s=2: the strip's window shortened to 2 s, so its trimming shows within the test
    watched.open("#live", "?strip_s=2")
    page = watched.page
    page.wait_for_selector("#v-speed")
    seen = set()
    wait_until(lambda: seen.add(page.inner_text("#v-speed")) or len(seen) >= 3, timeout=20)  # the car moves
    for feed in ("ksudp", "pcars"):
        row = page.locator(f"tr[data-feed={feed}]")
        assert "healthy" in row.inner_text()
        packets = int(row.locator("td").nth(4).inner_text())
        assert packets > 0
    wait_until(lambda: (watched.js("window.rt.charts.live.data[0].at(-1)") or 0) > 3, timeout=20)  # > 3 s of polls
    t = watched.js("window.rt.charts.live.data[0]")
    assert t[-1] - t[0] <= 2.0 and len(t) >= 3  # only the window is kept, however long the page is open
    assert min(watched.chart_points("live")[:2]) >= 2  # speed and rpm drawn
    watched.assert_clean()


def test_a_session_made_run_and_completed_on_the_page_shows_the_api_s_laps(watched, rig):
    page = watched.page
    watched.open("#sessions")
    page.select_option("#use-case", "lap_times")
    page.fill("#session-label", "from the page")
    page.click("#session-create")
    page.wait_for_url("**#session/*")
    session_id = page.url.rsplit("/", 1)[1]
    page.select_option("#run-feed", "ksudp")
    page.click("#run-start")
    page.wait_for_selector("button.run-stop")
    rig.wait_laps({"ksudp": 3})
    page.click("button.run-stop")
    page.wait_for_selector("#session-complete:not([disabled])")
    page.click("#session-complete")
    page.wait_for_selector("#lap-table")
    status, session = rig.srv.get(f"/api/sessions/{session_id}")
    assert status == 200 and session["label"] == "from the page" and session["status"] == "completed"
    laps = session["analysis"]["laps"]
    shown = page.locator("#lap-table tbody tr")
    assert shown.count() == len(laps) >= 3
    for k, lap in enumerate(laps):
        row = shown.nth(k)
        assert row.get_attribute("data-lap") == str(lap["lap"])
        cell = row.locator("td.lap-time")
        assert cell.get_attribute("data-ms") == ("" if lap["time_ms"] is None else str(lap["time_ms"]))
        if lap["time_ms"] is not None:
            ms = lap["time_ms"]
            assert cell.inner_text() == f"{ms // 60000}:{ms % 60000 // 1000:02d}.{ms % 1000:03d}"
    best = page.locator("#lap-table tr.best td.lap-time")
    assert best.count() >= 1 and best.first.get_attribute("data-ms") == str(session["analysis"]["best_lap_ms"])
    # the laps laid over each other, the delta to the reference, the map: all drawn
    page.wait_for_selector("svg.map")
    for name in ("speed", "pedals", "delta"):
        points = watched.chart_points(name)
        assert points and min(points) > 100, (name, points)
    delta = watched.js("window.rt.charts.delta.data")
    ref = int(page.input_value("#ref-lap"))
    chosen = [int(v) for v in page.locator("input.lap-pick:checked").evaluate_all("els => els.map(e => e.value)")]
    assert ref in chosen and {v for v in delta[1 + chosen.index(ref)] if v is not None} == {0}  # zero against itself
    assert watched.js("window.rt.maps.track.points") > 100
    watched.assert_clean()


def test_every_analysis_is_drawn(watched, rig):
    made = rig.sessions_with_laps(("braking_analysis", "track_map", "racing_line", "shift_points", "general",
                                   "sector_analysis"))
    page = watched.page

    def open_session(use_case: str) -> dict:
        watched.open(f"#session/{made[use_case]}")
        page.wait_for_selector(f"main[data-shown='{made[use_case]}']")
        return rig.srv.get(f"/api/sessions/{made[use_case]}")[1]["analysis"]

    a = open_session("track_map")
    page.wait_for_selector("svg.map")
    assert watched.js("window.rt.maps.track.markers") == len(a["corners"]) > 0  # numbered corners
    assert watched.js("window.rt.maps.track.points") > 100
    assert page.locator("svg.map path[stroke='#c8102e']").count() > 0  # braking stretches drawn

    a = open_session("braking_analysis")
    page.wait_for_selector("svg.map")
    assert page.locator("#zones tbody tr").count() == len(a["zones"]) > 0
    assert watched.js("window.rt.maps.track.markers") == len(a["zones"])

    a = open_session("shift_points")
    page.wait_for_selector("#shift-chart canvas")
    points = watched.chart_points("shift")
    assert len(points) >= len(a["curves"]["gears"]) and min(points) > 10
    shown = [float(t) for t in page.locator("td.rec-rpm").all_inner_texts()]
    assert shown == [round(g["recommended_rpm"]) for g in a["gears"]]

    a = open_session("racing_line")
    page.wait_for_selector("#line-chart canvas")
    assert watched.chart_points("racing_line") == [len(a["norm_pos"])] * len(a["laps"])

    a = open_session("general")
    assert page.locator("#gears tbody tr").count() == sum(1 for v in a["gear_time_pct"].values() if v > 0)
    assert "max speed kmh" in page.inner_text("table.summary")

    a = open_session("sector_analysis")
    header = page.locator("#lap-table thead th").all_inner_texts()
    assert header[3:3 + a["sector_count"]] == [f"S{k + 1}" for k in range(a["sector_count"])]
    assert page.locator("#lap-table tfoot tr").count() == 1  # the best sectors
    watched.assert_clean()


def test_recordings_start_stop_download_and_delete_with_confirmation(watched, rig):
    page = watched.page
    watched.open("#recordings")
    page.wait_for_selector("#rec-start")
    if page.locator("#rec-stop").count():  # the sessions' runs left their recording on: stop it here
        page.click("#rec-stop")
        page.wait_for_selector("#rec-start:not([disabled])")
    assert rig.srv.get("/api/live")[1]["recording"] is None
    page.fill("#rec-name", "page recording")
    page.click("#rec-start")
    page.wait_for_selector("#rec-stop")
    active = rig.srv.get("/api/live")[1]["recording"]
    assert active["name"] == "page recording"
    page.click("#rec-stop")
    page.wait_for_selector("#rec-start:not([disabled])")
    status, rec = rig.srv.get(f"/api/recordings/{active['id']}")
    assert status == 200 and rec["status"] == "stopped"
    row = page.locator(f"tr[data-id='{active['id']}']")
    hrefs = row.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert f"/api/recordings/{active['id']}/data/ksudp" in hrefs
    assert f"/api/recordings/{active['id']}/export/ksudp.ld" in hrefs
    with urllib.request.urlopen(rig.url + f"/api/recordings/{active['id']}/data/ksudp") as resp:  # a link that works
        assert resp.status == 200 and len(resp.read()) > 0
    # Delete asks first: No keeps it, Yes deletes it
    page.once("dialog", lambda d: d.dismiss())
    row.locator("button[data-delete]").click()
    page.wait_for_timeout(0)
    assert rig.srv.get(f"/api/recordings/{active['id']}")[0] == 200
    page.once("dialog", lambda d: d.accept())
    row.locator("button[data-delete]").click()
    page.wait_for_selector(f"tr[data-id='{active['id']}']", state="detached")
    assert rig.srv.get(f"/api/recordings/{active['id']}")[0] == 404
    watched.assert_clean()


def test_errors_are_shown_as_the_api_words_them(watched, rig):
    watched.open(f"#session/{UNKNOWN_ID}")
    status, body = rig.srv.get(f"/api/sessions/{UNKNOWN_ID}")
    assert status == 404
    box = watched.page.locator("#error")
    box.wait_for()
    assert box.inner_text() == f"{body['error']['message']} (404 {body['error']['code']})"
    # the one console error is the browser's own note of that 404
    assert len(watched.errors) == 1 and "404" in watched.errors[0]


def test_with_a_token_the_page_asks_for_it_before_a_change(browser, tmp_path):
    srv = Server(tmp_path, "serve", RUSTY_TELEMETRY_API_TOKEN="s3cret-token")
    w = Watched(browser, srv.url)
    try:
        page = w.page
        w.open("#recordings")
        page.click("#rec-start")
        page.wait_for_selector("#token-dialog[open]")
        page.fill("#token-input", "wrong")
        page.click("#token-ok")
        box = page.locator("#error")
        box.wait_for()
        status, body = srv.call("POST", "/api/recordings", {}, headers={"Authorization": "Bearer wrong"})
        assert status == 401 and box.inner_text() == f"{body['error']['message']} (401 unauthorized)"
        assert srv.get("/api/live")[1]["recording"] is None
        page.click("#rec-start")  # asks again, since that one was refused
        page.wait_for_selector("#token-dialog[open]")
        page.fill("#token-input", "s3cret-token")
        page.click("#token-ok")
        page.wait_for_selector("#rec-stop")
        assert srv.get("/api/live")[1]["recording"]["status"] == "recording"
        page.click("#rec-stop")  # the token is kept for the page's later changes: no dialog
        page.wait_for_selector("#rec-start:not([disabled])")
        assert srv.get("/api/live")[1]["recording"] is None
        assert [e for e in w.errors if "401" not in e] == []  # the refused request, and nothing else
    finally:
        w.close()
        srv.stop()
        srv.proc.stdout.close()
        srv.log.close()


def test_the_page_and_its_assets_are_served_with_etags(rig):
    import re

    with urllib.request.urlopen(rig.url + "/") as resp:
        html = resp.read().decode()
        etag = resp.headers["ETag"]
        assert resp.headers["Content-Type"].startswith("text/html") and etag
    # nothing from the internet: every script and style sheet is the server's own
    assets = [a for a in re.findall(r'(?:src|href)="([^"]+)"', html) if not a.startswith("#")]  # not the views
    assert assets and all(a.startswith("/ui/") or a.startswith("data:") for a in assets), assets
    for asset in assets:
        if asset.startswith("/ui/"):
            with urllib.request.urlopen(rig.url + asset) as resp:
                assert resp.status == 200 and resp.read()
    req = urllib.request.Request(rig.url + "/", headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(req)
    assert not_modified.value.code == 304
    not_modified.value.close()
    for hostile in ("/ui/nothing.js", "/ui/../../etc/passwd", "/ui/%2e%2e/app.py", "/ui/vendor/../page.py"):
        status, body = rig.srv.get(hostile)
        assert status == 404 and body["error"]["status"] == 404, (hostile, body)


def test_firefox_draws_the_live_view_and_an_analysis(rig):
    # The page in Firefox too (Debian's firefox-esr, driven over WebDriver BiDi): values move, the
    # strip and a session's charts and map are drawn, and the console has no error.
    import asyncio
    import concurrent.futures

    from browser import Firefox, firefox_path

    if firefox_path() is None:
        if os.environ.get("RT_REQUIRE_BROWSER") == "1":
            raise RuntimeError("RT_REQUIRE_BROWSER=1 but no Firefox: install Debian's firefox-esr or set FIREFOX")
        pytest.skip("needs Firefox (Debian's firefox-esr package, or FIREFOX=path)")
    made = rig.sessions_with_laps(("braking_analysis",))
    zones = len(rig.srv.get(f"/api/sessions/{made['braking_analysis']}")[1]["analysis"]["zones"])

    async def drive() -> list[str]:
        ff = Firefox()
        try:
            await ff.start()
            await ff.goto(rig.url + "/#live")
            # the car moves: three different speeds shown (the page's own record of what it showed)
            await ff.evaluate("(window.seen = new Set(), new MutationObserver(() => { const t = "
                              "document.getElementById('v-speed')?.textContent; if (t) window.seen.add(t); })"
                              ".observe(document.getElementById('main'), {childList: true, subtree: true}), 0)")
            await ff.wait_for("window.seen.size >= 3")
            await ff.wait_for("window.rt.charts.live.data[0].length >= 3")
            low, high = await ff.evaluate("[window.rt.charts.live.scales.kmh.min, window.rt.charts.live.scales.kmh.max]")
            assert low < high
            await ff.goto(rig.url + f"/#session/{made['braking_analysis']}")
            await ff.wait_for(f"document.querySelector('main').dataset.shown === '{made['braking_analysis']}'")
            assert await ff.evaluate("document.querySelectorAll('#zones tbody tr').length") == zones
            assert await ff.evaluate("window.rt.maps.track.markers") == zones
            for name in ("speed", "pedals", "delta"):
                low, high = await ff.evaluate(f"[window.rt.charts.{name}.scales.x.min, window.rt.charts.{name}.scales.x.max]")
                assert low < high, name
            return ff.errors
        finally:
            await ff.close()

    # its own thread: Playwright's sync API keeps an event loop running in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, drive()).result() == []
