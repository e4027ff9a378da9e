"""Shared fixtures: the real captures and the two decoder implementations."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from rt.decode import Decoder
from rt.protocols import default_protocols

import reference_decoder

from captures import AC_MONZA, AC_MONZA_INDEX, CAPTURES, PCARS1, PCARS1_SPA, need  # noqa: F401  (re-exported)

def pytest_collection_modifyitems(config, items):
    """Tests marked ``machine`` change the machine itself (the system clock): they run where that is
    wanted (CI's throw-away machine: ``.ci/run`` sets RT_TEST_MACHINE=1), and are reported as not
    run, with the reason, everywhere else."""
    if os.environ.get("RT_TEST_MACHINE") == "1":
        return
    skip = pytest.mark.skip(reason="changes the machine itself (steps the system clock, needs root): "
                                   "run with RT_TEST_MACHINE=1 in a VM or container, as .ci/run does")
    for item in items:
        if "machine" in item.keywords:
            item.add_marker(skip)


# CI runs a bounded, derandomised budget; locally the default profile explores more.
settings.register_profile("ci", max_examples=60, derandomize=True, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def _plain(value):
    """numpy/tuple values → plain Python lists, bytes without trailing NULs."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.rstrip(b"\x00")
    return value


class CythonImpl:
    name = "cython"

    def __init__(self) -> None:
        self.protocols = default_protocols()

    def decode(self, kind: str, payload: bytes) -> dict:
        return {k: _plain(v) for k, v in Decoder(self.protocols[kind]).one(payload).items()}


class ReferenceImpl:
    name = "reference"

    def decode(self, kind: str, payload: bytes) -> dict:
        return {k: _plain(v) for k, v in reference_decoder.decode(kind, payload).items()}


@pytest.fixture(params=[CythonImpl, ReferenceImpl], ids=lambda c: c.name)
def impl(request):
    """Each test using this runs once over the Cython decoder and once over the struct reference."""
    return request.param()


@pytest.fixture(scope="session")
def protocols():
    return default_protocols()


@pytest.fixture(scope="session")
def monza_raw() -> bytes:
    data = need(AC_MONZA).read_bytes()
    assert len(data) == 8641 * 328
    return data


def as_plain(value):
    return _plain(value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value)


@pytest.fixture
def manager_factory():
    """Start FeedManagers (``make(config, lost_s=3.0, **options)``); all are stopped after the test."""
    from rt.feeds.manager import FeedManager

    made = []

    def make(cfg, lost_s: float = 3.0, **options):
        mgr = FeedManager(cfg, default_protocols(), lost_s=lost_s, **options)
        mgr.start()
        made.append(mgr)
        return mgr

    yield make
    for mgr in made:
        mgr.stop()


@pytest.fixture
def server_factory(tmp_path):
    made = []

    def make(command: str = "serve", tmpfs=None, **env):
        from rigs import Server

        srv = Server(tmp_path, command, tmpfs=tmpfs, **env)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
        srv.proc.stdout.close()
        srv.log.close()
        srv.unmount()


def monza_frames():
    """The real AC Monza capture as one run's Frames, with the capture's own arrival times."""
    from rt.analysis.frames import Frames
    from rt.decode import concatenated_offsets
    from rt.protocols.canonical import to_canonical

    raw = need(AC_MONZA).read_bytes()
    cols = Decoder(default_protocols()["ac_car_info"]).columns(raw, concatenated_offsets(8641, 328))
    delta_s = np.loadtxt(AC_MONZA_INDEX, delimiter=",", skiprows=1, usecols=1)
    t_ns = 1_700_000_000 * 10**9 + np.rint(np.cumsum(delta_s) * 1e9).astype(np.int64)
    return Frames.from_rows(to_canonical("ac_car_info", cols, t_ns), meta={"run_id": "monza"})


def merged_with_a_second_feed(fr, lag_ns: int):
    """The run merged as the session manager merges feeds (:func:`rt.merge.merge_timelines`): a
    second feed of the same car sending the same frames ``lag_ns`` later (feed 1), interleaved
    with the run's own (feed 0)."""
    from rt.analysis.frames import Frames
    from rt.merge import merge_timelines

    t, feed, index = merge_timelines([fr["t_ns"], fr["t_ns"] + lag_ns], 1_000_000)
    channels = {name: np.asarray(v)[index] for name, v in fr.channels.items()}
    channels["t_ns"] = t
    extras = {name: np.asarray(v)[index] for name, v in fr.extras.items()}
    return Frames(channels, {**extras, "feed": feed.astype(np.int8)}, dict(fr.meta))


def is_plain(value) -> bool:
    """Only JSON's own Python types, all the way down (no numpy scalars or arrays)."""
    if isinstance(value, dict):
        return all(type(k) is str and is_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)
