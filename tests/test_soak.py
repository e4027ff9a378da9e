"""A short soak: three feeds at 2 kHz each recorded for seconds, while clients poll and churn runs.

The long run (10 million datagrams) is `python -m benchmarks.soak --seconds 660 --rate 5000`; this one
checks the same invariants in seconds.
"""

from __future__ import annotations

from benchmarks.soak import run
from rt.store.h5store import METADATA_CACHE_BYTES


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
    # while the recording is active, its HDF5 metadata cache among them (it fills as the datasets grow)
    caches = [line["hdf5_metadata_cache_mb"] for line in report["memory_log"] if "hdf5_metadata_cache_mb" in line]
    assert caches and 0 < caches[-1] <= METADATA_CACHE_BYTES / 2**20
    # the slope comes with its standard error, and the tail with its course over the run
    assert report["rss_slope_second_half_stderr_mb_per_min"] >= 0
    tenths = report["live_by_tenth"]
    assert len(tenths) == 10 and sum(t["requests"] for t in tenths) == report["live_requests"]
    # resident memory: the rings and buffers fill in the first seconds, then it stays put
    later = [mb for t, mb in report["memory_mb"] if t >= report["seconds"] / 2]
    assert later and max(later) - min(later) < 20, report["memory_mb"]


def test_the_slope_comes_with_an_error_that_covers_its_noise():
    import numpy as np

    from benchmarks.soak import _slope_fit

    # 30 min of resident memory every 5 s, rising 0.01 MB/min under ±1.5 MB of swings
    rng = np.random.default_rng(7)
    t = np.arange(0.0, 1800.0, 5.0)
    mb = 150 + 0.01 * t / 60 + rng.uniform(-1.5, 1.5, len(t))
    slope, stderr = _slope_fit(list(zip(t, mb)), after_s=0.0)
    # uniform ±1.5 has σ = 0.87 MB; over 360 samples spread across 30 min the slope's error is
    # σ / sqrt(Σ(t - mean t)²) = 0.87 / 164 min ≈ 0.0053 MB/min
    assert 0.004 < stderr < 0.0065
    assert abs(slope - 0.01) < 3 * stderr
    # with one sample a minute instead (the soak before), the same noise hides a 0.01 slope
    assert _slope_fit(list(zip(t[::12], mb[::12])), after_s=0.0)[1] > 2 * stderr
