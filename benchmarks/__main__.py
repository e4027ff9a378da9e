"""``python -m benchmarks [pytest args]``: run the benchmarks and print a comparison table.

Each group holds the project's implementation(s) (``test_rt_*``) and named peers
(``test_peer_*``) measured in the same run on the same data; the table gives each one's median
time, its throughput and its speed relative to every other entry of the group.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest


def _table(report: dict) -> str:
    groups: dict[str, list[dict]] = {}
    for bench in report["benchmarks"]:
        groups.setdefault(bench["group"] or bench["name"], []).append(bench)
    lines = [f"machine: {report['machine_info'].get('cpu', {}).get('brand_raw', '?')}, "
             f"python {report['machine_info'].get('python_version', '?')}"]
    for group, benches in groups.items():
        benches.sort(key=lambda b: b["stats"]["median"])
        fastest = benches[0]["stats"]["median"]
        lines += ["", f"## {group}", "", "| implementation | median | throughput | slower than fastest |", "|---|---:|---:|---:|"]
        for b in benches:
            med = b["stats"]["median"]
            info = b.get("extra_info", {})
            rate = f"{info['count'] / med / 1e6:,.2f} M {info.get('unit', 'items')}/s" if "count" in info else ""
            name = b["name"].removeprefix("test_")
            lines.append(f"| {name} | {med * 1e3:,.2f} ms | {rate} | {med / fastest:,.2f}x |")
        # What a benchmark measured besides its time (zero-loss rates, sizes, latencies).
        for b in benches:
            extra = {k: v for k, v in b.get("extra_info", {}).items() if k not in ("count", "unit")}
            if extra:
                lines.append(f"\n- {b['name'].removeprefix('test_')}: " + json.dumps(extra))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        code = pytest.main([str(Path(__file__).parent), "-q", "-p", "no:cacheprovider", f"--benchmark-json={out}", *argv])
        # A failing benchmark must not hide the figures of the ones that ran.
        if out.exists():
            print(_table(json.loads(out.read_text())))
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
