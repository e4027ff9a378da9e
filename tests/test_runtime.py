"""The runtime as the server runs it: what it sets for the whole process while it runs."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rigs import feed_config
from rt.memory import _mallinfo2
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


# In a process of its own: glibc's threshold is the process's, and must start where glibc starts it.
LARGE_BLOCKS = r"""
import json, sys, tempfile
import numpy as np
sys.path.insert(0, sys.argv[1])
from rigs import feed_config
from rt.memory import _mallinfo2
from rt.runtime import Runtime

def mmapped_bytes():
    return _mallinfo2().hblkhd

runtime = Runtime(feed_config(data_dir=tempfile.mkdtemp()))
runtime.start()
try:
    big = np.ones(4 << 20, dtype=np.uint8)  # e.g. the raw pieces queued while the disk lagged
    del big
    before = mmapped_bytes()
    batch = np.ones(1 << 20, dtype=np.uint8)  # a transient buffer smaller than that one
    print(json.dumps({"mmapped_growth": mmapped_bytes() - before, "size": batch.nbytes}))
finally:
    runtime.stop()
"""


@pytest.mark.skipif(_mallinfo2 is None, reason="glibc's allocator only: elsewhere no threshold is raised")
def test_large_transient_buffers_stay_out_of_the_c_heap_while_the_runtime_runs():
    # glibc raised its mmap threshold to the size of each large block freed, so later buffers up to
    # that size were carved out of the heap; between long-lived blocks the heap fragments and grows
    # (a 1-hour game-rate soak: +0.9 MB at 34 minutes with 6 MB free inside the arena).
    tests_dir = str(Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", LARGE_BLOCKS, tests_dir], capture_output=True, text=True,
                         check=True).stdout
    figures = json.loads(out.splitlines()[-1])
    assert figures["mmapped_growth"] >= figures["size"], figures  # its own mapping, unmapped when freed
