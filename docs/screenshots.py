"""Regenerate the README's screenshots of the web page (docs/*.png).

    .venv/bin/python docs/screenshots.py

Needs the test extras (Playwright) and Chromium (Debian's ``chromium``, or ``CHROMIUM=path``). It
starts a real ``rusty-telemetry serve`` on ephemeral ports, drives it with the simulator 40× faster
than real time (Assetto Corsa racing laps, Project CARS pulling through the gears), runs one session
of each use case through the API, then photographs each view in headless Chromium.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from browser import launch, sim_server  # noqa: E402  (tests/browser.py: the same rig the page's tests use)

VIEWS = {  # file name: (hash, the element photographed: it is also what is waited for)
    "live": ("#live", "main"),
    "recordings": ("#recordings", "main"),
    "lap_times": ("#session/{lap_times}", "#laps"),
    "laps_compared": ("#session/{braking_analysis}", "#compare"),
    "track_map": ("#session/{track_map}", "#map"),
    "shift_points": ("#session/{shift_points}", "#shift"),
    "racing_line": ("#session/{racing_line}", "#line"),
}


def main() -> int:
    out = ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp, sim_server(Path(tmp)) as rig:
        sessions = rig.sessions_with_laps(("lap_times", "braking_analysis", "track_map", "racing_line", "shift_points"))
        with launch() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            for name, (hash_, part) in VIEWS.items():
                page.goto(rig.url + "/" + hash_.format(**sessions))
                page.wait_for_selector(f"{part} :is(canvas, svg, table)")
                page.wait_for_timeout(3000 if name == "live" else 300)  # the live strip fills a little
                path = out / f"page-{name}.png"
                page.locator(part).screenshot(path=str(path))
                print(path.relative_to(ROOT), path.stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
