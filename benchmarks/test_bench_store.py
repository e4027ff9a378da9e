"""Storage: recording throughput into raw + HDF5, size per hour, and raw download throughput.

Peers in the same run: a plain ``os.write`` of the same bytes plus ``fsync`` (the disk's speed),
and for downloads Sanic's own ``file_stream`` with its default 4 KiB chunks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from rt.decode import Decoder, RowColumns
from rt.protocols import default_protocols
from rt.protocols.canonical import to_canonical
from rt.store.recordings import RecordingManager

from captures import AC_MONZA as CAPTURE  # noqa: E402  (benchmarks/conftest.py puts tests/ on the path)
P = default_protocols()
BATCH = 4096
BATCHES = 60  # 245 760 AC packets per round


class _Feed:
    """The two attributes of a feed that the recorder reads: its name and what the game named."""

    name = "ksudp"
    info = {"game": "assetto_corsa"}


@pytest.fixture(scope="module")
def ac_batch():
    raw = CAPTURE.read_bytes()
    n = len(raw) // 328
    reps = -(-BATCH // n)
    packets = np.frombuffer((raw * reps)[: BATCH * 328], dtype=np.uint8).reshape(BATCH, 328)
    slots = np.zeros((BATCH, 2048), dtype=np.uint8)
    slots[:, :328] = packets
    lengths = np.full(BATCH, 328, dtype=np.uint32)
    return slots, lengths


def test_rt_recording_raw_plus_hdf5(benchmark, tmp_path, ac_batch):
    """The recorder's sink path: raw append per batch, decode, HDF5 append + fsync every 0.5 s of data."""
    slots, lengths = ac_batch
    layout = P["ac_car_info"]
    dec = Decoder(layout)
    offsets = np.arange(BATCH, dtype=np.int64) * 2048
    buf = slots.reshape(-1)
    feed = _Feed()
    result = {}

    def run():
        data_dir = tmp_path / f"rec{len(result)}"
        mgr = RecordingManager(data_dir, P, min_free_mb=0)
        mgr.open()
        rec = mgr.start({"name": "bench"})
        t0 = time.perf_counter()
        for b in range(BATCHES):
            t_ns = np.arange(b * BATCH, (b + 1) * BATCH, dtype=np.int64) * 3_003_003
            mgr.on_raw(feed, t_ns, lengths, slots, 0)
            cols = RowColumns(dec.rows(buf, offsets))  # as the feed decodes
            mgr.on_decoded(feed, layout, cols, t_ns, to_canonical(layout.name, cols, t_ns))
            if b % 2 == 1:  # 8192 packets between syncs: 0.5 s at 16 kHz
                mgr.sync()
        mgr.stop()
        result["seconds"] = time.perf_counter() - t0
        result["dir"] = data_dir / rec["id"]

    benchmark.pedantic(run, rounds=3, iterations=1)
    n = BATCH * BATCHES
    raw_bytes = (result["dir"] / "ksudp.bin").stat().st_size
    h5_bytes = (result["dir"] / "data.h5").stat().st_size
    per_hour = (raw_bytes + h5_bytes) / n * 333 * 3600
    benchmark.extra_info.update(
        datagrams_per_s=round(n / benchmark.stats["median"]),
        mb_per_s=round(n * 328 / benchmark.stats["median"] / 1e6, 1),
        raw_bytes_per_packet=round(raw_bytes / n, 1),
        h5_bytes_per_packet=round(h5_bytes / n, 1),
        gb_per_hour_at_333hz=round(per_hour / 1e9, 3),
    )
    print(f"\nrecording: {n / benchmark.stats['median']:,.0f} datagrams/s; raw {raw_bytes / n:.0f} B + h5 {h5_bytes / n:.0f} B "
          f"per packet; {per_hour / 1e6:.0f} MB per hour of one 333 Hz AC feed")


def test_peer_plain_write_and_fsync(benchmark, tmp_path, ac_batch):
    """The disk's own speed: the same raw bytes (header + payload) written with os.write, fsync every 2 batches."""
    slots, _ = ac_batch
    record = np.zeros((BATCH, 12 + 328), dtype=np.uint8)
    record[:, 12:] = slots[:, :328]
    chunk = record.tobytes()
    path = tmp_path / "plain.bin"

    def run():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for b in range(BATCHES):
                os.write(fd, chunk)
                if b % 2 == 1:
                    os.fsync(fd)
            os.fsync(fd)
        finally:
            os.close(fd)

    benchmark.pedantic(run, rounds=3, iterations=1)
    n = BATCH * BATCHES
    benchmark.extra_info.update(datagrams_per_s=round(n / benchmark.stats["median"]),
                                mb_per_s=round(len(chunk) * BATCHES / benchmark.stats["median"] / 1e6, 1))


# ---- download -------------------------------------------------------------------------------

DOWNLOAD_MB = 512

PEER_APP = """
import sys
from sanic import Sanic
from sanic.response import file_stream
app = Sanic("peer")
@app.get("/f")
async def f(request):
    return await file_stream(sys.argv[1])
app.run(host="127.0.0.1", port=int(sys.argv[2]), single_process=True, motd=False, access_log=False)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if subprocess.run(["curl", "-s", "-o", "/dev/null", url], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _curl_mb_s(url: str) -> float:
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}", url],
                         capture_output=True, text=True, check=True)
    speed, size = out.stdout.split()
    assert int(float(size)) == DOWNLOAD_MB << 20
    return float(speed) / 1e6


@pytest.fixture(scope="module")
def big_recording(tmp_path_factory):
    """A recording directory holding a DOWNLOAD_MB raw file, served by `rusty-telemetry serve`."""
    data = tmp_path_factory.mktemp("dl")
    rec_id = "0c6f2a52-7b4f-4d5e-9a38-4f0e7f0b1a11"
    rec = data / rec_id
    rec.mkdir()
    blob = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    with open(rec / "ksudp.bin", "wb") as fh:
        for _ in range(DOWNLOAD_MB):
            fh.write(blob)
    (rec / "manifest.json").write_text(
        '{"id": "%s", "name": "big", "status": "stopped", "created_at": "2026-01-01T00:00:00Z", "feeds": {}}' % rec_id)
    return data, rec_id


def test_rt_download_raw_file(benchmark, big_recording):
    data, rec_id = big_recording
    port = _port()
    env = dict(os.environ, RUSTY_TELEMETRY_DATA_DIR=str(data), RUSTY_TELEMETRY_API_PORT=str(port),
               RUSTY_TELEMETRY_TT_PORT="0", RUSTY_TELEMETRY_PCARS_PORT="0", RUSTY_TELEMETRY_MIN_FREE_MB="0")
    proc = subprocess.Popen([sys.executable, "-m", "rt", "serve", "--plain"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/api/recordings/{rec_id}/data/ksudp"
        _wait_http(f"http://127.0.0.1:{port}/api/games")
        speeds = []
        benchmark.pedantic(lambda: speeds.append(_curl_mb_s(url)), rounds=3, iterations=1)
        benchmark.extra_info["mb_per_s"] = round(sorted(speeds)[1], 1)
        print(f"\nrt download: {sorted(speeds)[1]:,.0f} MB/s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_peer_sanic_file_stream_default_chunks(benchmark, big_recording):
    data, rec_id = big_recording
    port = _port()
    proc = subprocess.Popen([sys.executable, "-c", PEER_APP, str(data / rec_id / "ksudp.bin"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http(f"http://127.0.0.1:{port}/f")
        speeds = []
        benchmark.pedantic(lambda: speeds.append(_curl_mb_s(f"http://127.0.0.1:{port}/f")), rounds=1, iterations=1)
        benchmark.extra_info["mb_per_s"] = round(speeds[0], 1)
        print(f"\nsanic file_stream 4 KiB: {speeds[0]:,.0f} MB/s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
