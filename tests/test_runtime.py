"""The runtime as the server runs it: what it sets for the whole process while it runs."""

from __future__ import annotations

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
