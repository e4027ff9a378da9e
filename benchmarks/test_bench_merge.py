"""Merging three feeds' frame times (an hour at 333 Hz each) onto one time line.

rt_ext.merge (linear walk with duplicate removal) against numpy concatenate + stable argsort,
which orders the frames but removes no duplicates (so it does less work than the merge).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.conftest import per_second
from rt_ext.merge import merge_timelines

FRAMES = 333 * 3600
pytestmark = pytest.mark.benchmark(group="merge: 3 feeds x 1 h x 333 Hz")


@pytest.fixture(scope="module")
def feeds():
    rng = np.random.default_rng(1)
    base = np.cumsum(rng.integers(2_900_000, 3_100_000, FRAMES)).astype(np.int64)
    return [base, base + rng.integers(-200_000, 200_000, FRAMES).cumsum() // FRAMES + 100_000, base + 1_500_000]


def test_rt_merge_timelines(benchmark, feeds):
    per_second(benchmark, 3 * FRAMES, "frames")
    benchmark(merge_timelines, feeds, 500_000)


def test_peer_numpy_concatenate_argsort(benchmark, feeds):
    def run():
        t = np.concatenate(feeds)
        order = np.argsort(t, kind="stable")
        return t[order], order

    per_second(benchmark, 3 * FRAMES, "frames")
    benchmark(run)
