"""A short soak: three feeds at 2 kHz each recorded for seconds, while clients poll and churn runs.

The long run (10 million datagrams) is `python -m benchmarks.soak --seconds 660 --rate 5000`; this one
checks the same invariants in seconds.
"""

from __future__ import annotations

from benchmarks.soak import run


def test_short_soak_loses_nothing_and_memory_stays_flat(tmp_path):
    report = run(seconds=6.0, rate=2000.0, data_dir=str(tmp_path))
    assert all(n > 8000 for n in report["sent"].values()), report["sent"]
    assert report["lost"] == {"ac": 0, "tt": 0, "pcars1": 0}, report
    assert set(report["dropped"].values()) == {0}
    assert report["errors"] == [] and report["server_log_tracebacks"] == 0
    assert report["runs"]["started"] >= 4 and report["runs"]["stopped"] >= 4 and report["runs"]["deleted"] >= 4
    assert report["live_requests"] > 50
    # the server logged its memory figures by cause (every 5 s in a short soak)
    assert report["memory_log"] and {"rss_mb", "c_heap_in_use_mb", "syncs", "runs_kept"} <= set(report["memory_log"][-1])
    # resident memory: the rings and buffers fill in the first seconds, then it stays put
    later = [mb for t, mb in report["memory_mb"] if t >= report["seconds"] / 2]
    assert later and max(later) - min(later) < 20, report["memory_mb"]
