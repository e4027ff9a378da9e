"""The runtime as the server runs it: what it sets for the whole process while it runs."""

from __future__ import annotations

import gc
import sys

from rigs import feed_config
from rt.runtime import GIL_SWITCH_S, Runtime


def test_the_event_loop_gets_the_gil_back_within_a_millisecond_while_the_runtime_runs(tmp_path):
    # With Python's default 5 ms switch interval the event loop waited up to 5 ms for the GIL
    # each time a consumer or writer thread held it, several times per /api/live answer
    # (p99 19 ms in a game-rate soak; 8.4 ms at 1 ms). The interval is the process's, so it is
    # set while the runtime runs and given back when it stops.
    before = sys.getswitchinterval()
    runtime = Runtime(feed_config(data_dir=tmp_path / "data"))
    runtime.start()
    try:
        assert sys.getswitchinterval() == GIL_SWITCH_S < before
    finally:
        runtime.stop()
    assert sys.getswitchinterval() == before



def test_the_memory_log_counts_the_collectors_work_while_the_runtime_runs(tmp_path):
    # A soak must be able to tell a pause of the garbage collector from other causes of a slow
    # /api/live answer or a growing heap.
    runtime = Runtime(feed_config(data_dir=tmp_path / "data"))
    runtime.start()
    try:
        gc.collect()
        gc.collect(0)
        figures = runtime.collector.figures()
        assert figures["gc_full_runs"] == 1
        assert figures["gc_ms"] >= figures["gc_full_ms"] > 0
    finally:
        runtime.stop()
    gc.collect()
    assert runtime.collector.figures()["gc_full_runs"] == 1  # no longer counted once stopped
