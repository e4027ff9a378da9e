"""data.h5 checked against the raw files by content, not only by counts ("no silent loss").

Recovery rebuilds data.h5 when it disagrees with the raw files (``h5store.agrees_with_raw``). A
file with the right number of rows but a wrong value in them must count as disagreeing, so that
``recover`` rebuilds it; an intact one must agree, or every start-up after a crash would rebuild
it for nothing. Recordings here are real files: the real Assetto Corsa capture and simulated
Project CARS 2 / Telemetry Tool datagrams in raw feed files, data.h5 written from them by
``h5store.rebuild`` (the same writer as live recording), then changed in place with h5py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest

from captures import AC_MONZA, need
from rigs import ScriptedSim
from rt.protocols import default_protocols
from rt.sim.game import pcars1_telemetry, pcars2_lap_packets, pcars2_telemetry, tt_driver
from rt.store import h5store, rawfile
from rt.store.h5store import agrees_with_raw, disagreement, kind_counts
from rt.store.manifest import iso, write_atomic
from rt.store.recordings import RecordingManager

P = default_protocols()
T0_NS = 1_700_000_000_000_000_000  # receive times: ns since the Unix epoch
AC_PERIOD_NS = 15_625_000  # the capture's ~64 Hz
AC_SIZE = 328


def write_raw(path: Path, t_ns, payloads: list[bytes]) -> None:
    """A raw feed file of ``payloads`` received at ``t_ns`` (ns), through the recorder's own writer."""
    slot = max(map(len, payloads))
    rows = np.zeros((len(payloads), slot), dtype=np.uint8)
    for i, p in enumerate(payloads):
        rows[i, : len(p)] = np.frombuffer(p, dtype=np.uint8)
    writer = rawfile.RawWriter(path)
    writer.append(np.asarray(t_ns, dtype=np.int64), np.array([len(p) for p in payloads], dtype=np.uint32), rows)
    writer.close()


def pcars_datagrams(n: int) -> tuple[list[int], list[bytes]]:
    """PCARS 2 telemetry with its lap packets every third tick (their lap data fills the frames
    after them; the first frames have no lap length yet, so norm_pos is NaN there), and one PCARS 1
    frame received in the same nanosecond as the last PCARS 2 frame."""
    block = ScriptedSim().step_block(n)
    times, payloads = [], []
    for i in range(n):
        tick = {k: v[i : i + 1] for k, v in block.items()}
        times.append(T0_NS + int(block["t_ns"][i]))
        payloads.append(pcars2_telemetry(tick, i)[0].tobytes())
        if i % 3 == 2:
            for packet in pcars2_lap_packets(tick, i, 3000.0):
                times.append(times[-1])
                payloads.append(packet)
    times.append(times[-1])
    payloads.append(pcars1_telemetry(ScriptedSim().step_block(1), 0, 3000.0)[0].tobytes())
    return times, payloads


def make_recording(data_dir: Path, ac_datagrams: int = 3000) -> Path:
    """A stopped recording in ``data_dir``: AC from the real capture, PCARS, Telemetry Tool."""
    rec_id = str(uuid.uuid4())
    rec_dir = data_dir / rec_id
    rec_dir.mkdir(parents=True)
    capture = need(AC_MONZA).read_bytes()
    ac = [capture[i : i + AC_SIZE] for i in range(0, len(capture), AC_SIZE)][:ac_datagrams]
    write_raw(rec_dir / "ksudp.bin", T0_NS + np.arange(len(ac)) * AC_PERIOD_NS, ac)
    write_raw(rec_dir / "pcars.bin", *pcars_datagrams(60))
    tt = [row.tobytes() for row in tt_driver(ScriptedSim().step_block(200), 0)]
    write_raw(rec_dir / "telemetry_tool.bin", T0_NS + np.arange(len(tt)) * 10_000_000, tt)
    write_atomic(rec_dir / "manifest.json", {"id": rec_id, "name": "agreement", "created_at": iso(T0_NS),
                                             "status": "stopped", "feeds": {}})
    h5store.rebuild(rec_dir, rec_id, P, iso(T0_NS))
    return rec_dir


@pytest.fixture()
def rec_dir(tmp_path) -> Path:
    return make_recording(tmp_path / "data")


def recover(rec_dir: Path) -> bool:
    """RecordingManager.recover as start-up runs it; True if it rebuilt data.h5 (a new file:
    rebuild renames a fresh one over it)."""
    before = os.stat(rec_dir / "data.h5").st_ino
    RecordingManager(rec_dir.parent, P).recover(rec_dir.name, force_rebuild=False)
    return os.stat(rec_dir / "data.h5").st_ino != before


def change(rec_dir: Path, dataset: str, row: int, edit) -> None:
    """Replace one row of ``dataset`` in data.h5 by ``edit(row value)``; the counts stay as they were."""
    counts = kind_counts(rec_dir / "data.h5")
    with h5py.File(rec_dir / "data.h5", "r+") as f:
        values = f[dataset][row : row + 1]
        f[dataset][row : row + 1] = edit(values)
    assert kind_counts(rec_dir / "data.h5") == counts


def _bump_field(field: str, by):
    def edit(rows):
        rows[field] += by
        return rows
    return edit


CHANGES = {
    # a field of the game's own packet, deep in the recording
    "row field": ("ksudp/ac_car_info/rows", 2345, _bump_field("speed_Kmh", 1.0)),
    # an integer field of another feed
    "row integer": ("telemetry_tool/tt_driver/rows", 150, _bump_field("packet_id", 1)),
    "receive time": ("ksudp/ac_car_info/t_ns", 17, lambda t: t + 1),
    "canonical value": ("ksudp/canonical/rpm", 2999, lambda v: v + 0.5),
    "canonical time": ("pcars/canonical/t_ns", 30, lambda t: t + 1),
    "canonical kind": ("pcars/canonical/kind", 60, lambda k: 1 - k),  # the PCARS 1 frame as a PCARS 2 one
    "NaN made a number": ("pcars/canonical/norm_pos", 0, lambda v: np.zeros_like(v)),
    "number made NaN": ("pcars/canonical/norm_pos", 40, lambda v: np.full_like(v, np.nan)),
    "carried lap data": ("pcars/canonical/lap_time_ms", 45, lambda v: v + 1),
    "carrier packet": ("pcars/pcars2_timings_1063/t_ns", 3, lambda t: t + 1),
}


def test_intact_recording_agrees_and_recover_keeps_its_data_h5(rec_dir):
    with h5py.File(rec_dir / "data.h5", "r") as f:
        norm_pos = f["pcars/canonical/norm_pos"][:]
    assert np.isnan(norm_pos[:2]).all() and not np.isnan(norm_pos[2:]).any()  # NaN is compared too
    assert disagreement(rec_dir, P) is None
    assert not recover(rec_dir)
    assert agrees_with_raw(rec_dir, P)


@pytest.mark.parametrize("what", list(CHANGES))
def test_one_changed_value_disagrees_and_recover_rebuilds_it(rec_dir, what):
    dataset, row, edit = CHANGES[what]
    with h5py.File(rec_dir / "data.h5", "r") as f:
        good = f[dataset][:]
    change(rec_dir, dataset, row, edit)
    found = disagreement(rec_dir, P)
    assert found is not None and found.startswith(dataset.rsplit("/", 2)[0]), found
    assert not agrees_with_raw(rec_dir, P)
    assert recover(rec_dir)
    assert agrees_with_raw(rec_dir, P)
    with h5py.File(rec_dir / "data.h5", "r") as f:
        assert f[dataset][:].tobytes() == good.tobytes()


def test_the_recover_command_rebuilds_a_changed_data_h5(rec_dir):
    with h5py.File(rec_dir / "data.h5", "r") as f:
        gas = float(f["ksudp/ac_car_info/rows"][100]["gas"])
    change(rec_dir, "ksudp/ac_car_info/rows", 100, _bump_field("gas", 0.25))
    env = dict(os.environ, RUSTY_TELEMETRY_DATA_DIR=str(rec_dir.parent))
    out = subprocess.run([sys.executable, "-m", "rt", "recover", rec_dir.name], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert agrees_with_raw(rec_dir, P)
    with h5py.File(rec_dir / "data.h5", "r") as f:
        assert float(f["ksudp/ac_car_info/rows"][100]["gas"]) == gas


def test_a_shortened_dataset_beside_a_whole_one_disagrees(rec_dir):
    # An append cut short: the receive times are all there (what the counts read), the rows not.
    with h5py.File(rec_dir / "data.h5", "r+") as f:
        rows = f["telemetry_tool/tt_driver/rows"]
        rows.resize(rows.shape[0] - 1, axis=0)
    assert "different lengths" in disagreement(rec_dir, P)
    assert recover(rec_dir) and agrees_with_raw(rec_dir, P)


def test_nan_agrees_with_nan_of_another_bit_pattern(rec_dir):
    # Unknown is NaN, whichever NaN: a quiet NaN with a payload is the same unknown.
    other_nan = np.array([0x7FC00123], dtype=np.uint32).view(np.float32)
    change(rec_dir, "pcars/canonical/norm_pos", 1, lambda v: other_nan.copy())
    assert agrees_with_raw(rec_dir, P)


def test_frames_of_different_kinds_received_together_agree_in_either_order(rec_dir):
    # The last PCARS 1 and PCARS 2 frames share a receive time: a live recording may store them
    # either way round (the writer sorts by time within each append), so that is no disagreement.
    with h5py.File(rec_dir / "data.h5", "r+") as f:
        group = f["pcars/canonical"]
        assert group["t_ns"][59] == group["t_ns"][60] and group["kind"][59] != group["kind"][60]
        for name in group:
            group[name][59:61] = group[name][59:61][::-1].copy()
    assert agrees_with_raw(rec_dir, P)
    # frames at different times in the wrong order are wrong
    with h5py.File(rec_dir / "data.h5", "r+") as f:
        for name in f["pcars/canonical"]:
            f["pcars/canonical"][name][10:12] = f["pcars/canonical"][name][10:12][::-1].copy()
    assert "pcars/canonical" in disagreement(rec_dir, P)


def test_torn_last_record_still_agrees_before_and_after_the_cut(rec_dir):
    raw = rec_dir / "ksudp.bin"
    whole = raw.stat().st_size
    with open(raw, "ab") as fh:  # a crash in the middle of a record: header whole, payload half
        fh.write(rawfile.HEADER.pack(T0_NS + 10**12, AC_SIZE) + b"\x61" * 100)
    assert agrees_with_raw(rec_dir, P)
    assert not recover(rec_dir)
    assert raw.stat().st_size == whole
    assert agrees_with_raw(rec_dir, P)


def test_receive_times_going_back_agree_when_intact_and_disagree_when_changed(tmp_path):
    # Not what the recorder writes (its clock is monotonic), but a raw file may say so: then the
    # writer's per-append sort reorders frames, and rebuilding must not be the answer every time.
    rec_dir = make_recording(tmp_path / "data", ac_datagrams=1)
    tt = [row.tobytes() for row in tt_driver(ScriptedSim().step_block(20000), 0)]
    t_ns = T0_NS + (np.arange(len(tt)) % 7000)[::-1] * 1_000_000  # three runs, each backwards
    write_raw(rec_dir / "telemetry_tool.bin", t_ns, tt)
    h5store.rebuild(rec_dir, rec_dir.name, P)
    assert disagreement(rec_dir, P) is None
    change(rec_dir, "telemetry_tool/canonical/speed_kmh", 12345, lambda v: v + 1)
    assert "telemetry_tool/canonical" in disagreement(rec_dir, P)
    assert recover(rec_dir) and agrees_with_raw(rec_dir, P)


def test_a_pc2_recording_started_mid_stream_agrees_with_its_raw_file(server_factory, tmp_path):
    # PC2's lap data come in their own packets; a recording that starts between them must not
    # take lap data the live feed saw before it, or its data.h5 differs from what its raw file
    # rebuilds (recovery would then rebuild it, and lose nothing, but say it disagreed).
    from rigs import wait_until
    from rt.sim.driver import Simulation
    from rt.sim.game import push_sender, sim_source

    srv = server_factory()
    port = srv.get("/api/live")[1]["feeds"]["pcars"]["port"]
    sim = Simulation("gt_coupe", "test_ring", rate_hz=60.0, seed=9)
    sender = push_sender("pcars2", sim_source("pcars2", sim, speed=10.0), "127.0.0.1", port).start()
    try:
        wait_until(lambda: srv.get("/api/live")[1]["feeds"]["pcars"]["lap_time_ms"] is not None, timeout=15)
        status, rec = srv.call("POST", "/api/recordings", {"name": "mid stream"})
        assert status == 201
        wait_until(lambda: srv.get(f"/api/recordings/{rec['id']}")[1]["feeds"]["pcars"]["packets"] > 500, timeout=15)
        srv.call("POST", "/api/recordings/stop")
    finally:
        sender.stop()
    assert srv.stop()[0] == 0
    rec_dir = tmp_path / "data" / rec["id"]
    assert disagreement(rec_dir, default_protocols()) is None
