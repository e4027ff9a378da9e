"""What ``serve`` shows while it runs: a live table in a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import threading

from rich.console import Console
from rich.live import Live
from rich.table import Table

log = logging.getLogger("rt.status")

HEALTH_STYLE = {
    "healthy": "bold green",
    "stale": "yellow",
    "lost": "bold red",
    "waiting": "dim",
    "handshaking": "cyan",
    "refused": "bold red",
    "not_available": "red",
}


def _fmt(value, spec: str = "") -> str:
    return "–" if value is None else format(value, spec)


def render(live: dict, recording: dict | None, api_url: str) -> Table:
    """The status table for one ``/api/live`` snapshot."""
    rec = "not recording" if recording is None else f"recording {recording['name']!r} ({recording['status']})"
    table = Table(title=f"rusty-telemetry · API {api_url} · {rec}", expand=False)
    for col in ("feed", "health", "port", "Hz", "packets", "malformed", "dropped", "km/h", "rpm", "gear", "lap", "lap time"):
        table.add_column(col, justify="right" if col not in ("feed", "health") else "left")
    for name, f in live.items():
        gear = f["gear"]
        gear_txt = "–" if gear is None else ("R" if gear < 0 else "N" if gear == 0 else str(gear))
        lap_ms = f["lap_time_ms"]
        lap_txt = "–" if lap_ms is None else f"{lap_ms // 60000}:{lap_ms % 60000 / 1000:06.3f}"
        table.add_row(
            name,
            f"[{HEALTH_STYLE.get(f['health'], '')}]{f['health']}[/]",
            str(f["port"]),
            _fmt(f["frequency_hz"], ".0f"),
            str(f["packets"]),
            str(f["malformed"]),
            str(f["dropped"]),
            _fmt(f["speed_kmh"], ".1f"),
            _fmt(f["rpm"], ".0f"),
            gear_txt,
            _fmt(f["lap_count"]),
            lap_txt,
        )
    return table


class StatusView:
    """Refreshes the table 4 times a second on a TTY; logs one line per feed every 10 s otherwise."""

    def __init__(self, runtime, api_url: str, stream=None) -> None:
        self.runtime = runtime
        self.api_url = api_url
        self.stream = stream or sys.stdout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rt-status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _snapshot(self) -> Table:
        return render(self.runtime.feeds.live(), self.runtime.recording_summary(), self.api_url)

    def _run(self) -> None:
        if self.stream.isatty():
            console = Console(file=self.stream)
            with Live(self._snapshot(), console=console, refresh_per_second=4, transient=False) as live:
                while not self._stop.wait(0.25):
                    live.update(self._snapshot())
        else:
            while not self._stop.wait(10.0):
                for name, f in self.runtime.feeds.live().items():
                    log.info(
                        "%s %s %.0f Hz packets=%d malformed=%d dropped=%d speed=%s rpm=%s gear=%s",
                        name, f["health"], f["frequency_hz"], f["packets"], f["malformed"], f["dropped"],
                        f["speed_kmh"], f["rpm"], f["gear"],
                    )
