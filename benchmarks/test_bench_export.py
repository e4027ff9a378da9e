"""Export of 1 h of 333 Hz AC frames (1.2 M) from a real recording to Parquet.

The recording is made by the recorder's sink path (raw file + ``data.h5``) from simulator datagrams,
as ``test_bench_store`` does. Peer in the same run: pandas ``DataFrame.to_parquet`` (pyarrow, zstd
as rt uses) of the same columns, already in memory: the write alone, against which rt's whole export
(read ``data.h5``, find the laps, flatten the game's fields, write) and its write alone are compared.
"""

from __future__ import annotations

import numpy as np
import pytest

from rt.decode import Decoder, RowColumns
from rt.export.table import Exporter, write_parquet
from rt.protocols import default_protocols
from rt.protocols.canonical import to_canonical
from rt.sim.driver import Simulation
from rt.sim.frames import packets
from rt.store.recordings import RecordingManager

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

P = default_protocols()
HOUR = 333 * 3600
BLOCK = HOUR // 24  # 2.5 minutes of datagrams at a time


class _Feed:
    name = "ksudp"
    info = {"game": "assetto_corsa"}


@pytest.fixture(scope="module")
def hour_recording(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("export")
    mgr = RecordingManager(data_dir, P, min_free_mb=0)
    mgr.open()
    rec = mgr.start({"name": "hour", "game": "assetto_corsa", "track": "test_ring", "car": "gt_coupe"})
    sim = Simulation("gt_coupe", "test_ring", rate_hz=333.0, seed=3, lap_variation=0.01)
    layout = P["ac_car_info"]
    dec = Decoder(layout)
    for _ in range(HOUR // BLOCK):
        rows, t_ns, _ = packets(sim, BLOCK, "ac")
        t_ns = np.asarray(t_ns, dtype=np.int64) + 1_780_000_000 * 10**9
        data = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), layout.size)
        mgr.on_raw(_Feed, t_ns, np.full(len(rows), layout.size, dtype=np.uint32), data, 0)
        cols = RowColumns(dec.rows(data.reshape(-1), np.arange(len(rows), dtype=np.int64) * layout.size))
        mgr.on_decoded(_Feed, layout, cols, t_ns, to_canonical(layout.name, cols, t_ns))
        mgr.sync()
    mgr.stop()
    mgr.close()
    return Exporter(data_dir, P), rec["id"]


@pytest.fixture(scope="module")
def hour_selection(hour_recording):
    exporter, rec_id = hour_recording
    return exporter.select(rec_id, "ksudp")


@pytest.mark.benchmark(group="export: 1 h of 333 Hz AC frames to Parquet")
def test_rt_export_whole(benchmark, hour_recording, tmp_path):
    exporter, rec_id = hour_recording

    def run():
        exporter.write(exporter.select(rec_id, "ksudp"), "parquet", tmp_path / "rt.parquet")

    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["bytes"] = (tmp_path / "rt.parquet").stat().st_size


@pytest.mark.benchmark(group="export: 1 h of 333 Hz AC frames to Parquet")
def test_rt_export_write_only(benchmark, hour_selection, tmp_path):
    assert len(hour_selection) == HOUR // BLOCK * BLOCK
    benchmark.pedantic(write_parquet, args=(hour_selection, tmp_path / "rt.parquet"), rounds=3, iterations=1)
    benchmark.extra_info["columns"] = len(hour_selection.columns)


@pytest.mark.benchmark(group="export: 1 h of 333 Hz AC frames to Parquet")
def test_peer_pandas_to_parquet(benchmark, hour_selection, tmp_path):
    frame = pd.DataFrame({name: col.values for name, col in hour_selection.columns.items()})
    benchmark.pedantic(frame.to_parquet, args=(tmp_path / "pandas.parquet",), kwargs={"compression": "zstd"},
                       rounds=3, iterations=1)
    benchmark.extra_info["bytes"] = (tmp_path / "pandas.parquet").stat().st_size
