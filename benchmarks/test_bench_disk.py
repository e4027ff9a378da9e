"""Disk per hour of one feed at its game rate: raw file and ``data.h5`` as recorded, and compacted.

Each case records :data:`GAME_S` seconds of one feed at 333 datagrams/s through the consumer's
real path (ring → classify → decode → canonical → RecordingManager), stops, compacts
(``rt.store.compact``) and scales the sizes to one hour. Simulator data (AC, Telemetry Tool, PCARS 2
with its lap packets) compresses far better than a real game's, so the real AC capture (Monza,
8641 datagrams) is replayed in a loop too. The peer is the bytes the game sent (the datagrams
alone): what any recorder keeping every datagram must store at the least, uncompressed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rt.feeds.feed import Feed
from rt.protocols import default_protocols
from rt.sim.game import make_sim, sim_source
from rt.store import compact
from rt.store.recordings import RecordingManager

P = default_protocols()
#: Game time recorded per case, s (scaled to an hour).
GAME_S = 120.0
RATE_HZ = 333.0
#: The shared captures, as the tests find them (RT_CAPTURES, or ../shared/captures beside the checkout).
CAPTURES = Path(os.environ.get("RT_CAPTURES") or Path(__file__).resolve().parents[2] / "shared" / "captures")
MONZA = CAPTURES / "ac_remote_telemetry" / "vthinsel_AssettoCorsa_monza_A8LMS.raw"


def _datagrams(case: str) -> tuple[str, list[bytes]]:
    if case == "ac_real_capture_looped":
        if not MONZA.exists():
            pytest.skip(f"capture not found: {MONZA}")
        data = MONZA.read_bytes()
        one = [data[i : i + 328] for i in range(0, len(data), 328)]
        n = int(GAME_S * RATE_HZ)
        return "ksudp", [one[k % len(one)] for k in range(n)]
    game, feed = {"ac_sim": ("ac", "ksudp"), "telemetry_tool_sim": ("tt", "telemetry_tool"),
                  "pcars2_sim": ("pcars2", "pcars")}[case]
    return feed, sim_source(game, make_sim(seed=5), rate_hz=RATE_HZ).take(GAME_S)


def _record(tmp_path: Path, feed_name: str, datagrams: list[bytes]) -> Path:
    mgr = RecordingManager(tmp_path, P, min_free_mb=0)
    mgr.open()
    rec = mgr.start({"name": "disk per hour"})
    feed = Feed(feed_name, 0, P, None)
    step_ns = int(1e9 / RATE_HZ)
    for k, d in enumerate(datagrams):
        feed.ring.push_bytes(1_700_000_000 * 10**9 + k * step_ns, d)
        if feed.ring.pending >= 4096:
            feed.consume([mgr])
    feed.consume([mgr])
    mgr.stop()
    return tmp_path / rec["id"]


@pytest.mark.benchmark(group="disk: MB per hour of one feed at 333 datagrams/s")
@pytest.mark.parametrize("case", ["ac_sim", "ac_real_capture_looped", "telemetry_tool_sim", "pcars2_sim"])
def test_disk_per_hour(benchmark, tmp_path, case):
    feed, datagrams = _datagrams(case)
    result = {}

    def run():
        rec_dir = _record(tmp_path / case, feed, datagrams)
        raw, h5 = rec_dir / f"{feed}.bin", rec_dir / "data.h5"
        result.update(raw=raw.stat().st_size, recorded=h5.stat().st_size)
        compact.compact(rec_dir)
        result.update(raw_compacted=raw.stat().st_size, compacted=h5.stat().st_size)

    benchmark.pedantic(run, rounds=1, iterations=1)
    # Datagrams sent per hour at the game's rate (PCARS 2 adds its lap packets to the 333).
    per_hour = 3600.0 / GAME_S / 1e6
    sent = sum(len(d) for d in datagrams)
    total = result["raw_compacted"] + result["compacted"]
    benchmark.extra_info.update(
        datagrams_mb_per_hour=round(sent * per_hour),
        raw_mb_per_hour=round(result["raw"] * per_hour),
        raw_compacted_mb_per_hour=round(result["raw_compacted"] * per_hour),
        data_h5_recorded_mb_per_hour=round(result["recorded"] * per_hour),
        data_h5_compacted_mb_per_hour=round(result["compacted"] * per_hour),
        total_mb_per_hour=round(total * per_hour),
        total_vs_datagrams=round(total / sent, 2),
    )
    assert result["compacted"] < result["recorded"] and result["raw_compacted"] < result["raw"]
    print(f"\n{case}: datagrams {sent * per_hour:.0f} MB/h; raw {result['raw'] * per_hour:.0f} → "
          f"{result['raw_compacted'] * per_hour:.0f}, data.h5 {result['recorded'] * per_hour:.0f} → "
          f"{result['compacted'] * per_hour:.0f} MB/h; after stop {total * per_hour:.0f} MB/h")
