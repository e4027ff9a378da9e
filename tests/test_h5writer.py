"""The HDF5 writer with its append thread: same file as appending in the caller, errors surface."""

from __future__ import annotations

import json
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pytest

from rt.decode import Decoder, RowColumns
from rt.errors import StoreError
from rt.protocols import default_protocols
from rt.protocols.canonical import CANONICAL_DTYPE, CANONICAL_NAMES, CANONICAL_UNITS, to_canonical
from rt.store import h5store, h5writer

P = default_protocols()
AC = P["ac_car_info"]


def _batches(count: int, n: int):
    """``count`` decoded AC batches of ``n`` random packets: (rows, t_ns, canonical)."""
    rng = np.random.default_rng(3)
    dec = Decoder(AC)
    offsets = np.arange(n, dtype=np.int64) * AC.size
    for b in range(count):
        data = rng.integers(0, 256, size=n * AC.size, dtype=np.uint8)
        cols = RowColumns(dec.rows(data, offsets))
        t_ns = np.arange(b * n, (b + 1) * n, dtype=np.int64) * 1000
        yield cols, t_ns, to_canonical(AC.name, cols, t_ns)


def _contents(path) -> dict[str, bytes]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()].tobytes()) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_appends_on_the_writer_thread_give_the_same_file(tmp_path):
    # 40 batches of 2000 AC packets: 26 MB of rows, so append_due hands over a dozen appends.
    with ThreadPoolExecutor(1) as pool:
        threaded = h5store.H5Writer(tmp_path / "threaded.h5", "r1", "2026-01-01T00:00:00Z", pool)
        inline = h5store.H5Writer(tmp_path / "inline.h5", "r1", "2026-01-01T00:00:00Z")
        handed_over = 0
        for cols, t_ns, canon in _batches(40, 2000):
            for w in (threaded, inline):
                w.add("ksudp", AC, cols, t_ns, canon)
                w.append_due()
            handed_over += threaded._in_flight is not None
        assert handed_over >= 10
        threaded.flush()  # mid-recording read, as analysis does
        assert threaded.file["ksudp/canonical/t_ns"].shape == (80_000,)
        threaded.close()
        inline.close()
    a, b = _contents(tmp_path / "threaded.h5"), _contents(tmp_path / "inline.h5")
    assert a.keys() == b.keys() and "ksudp/ac_car_info/rows" in a
    assert all(a[k] == b[k] for k in a)


def test_a_failed_append_on_the_writer_thread_is_raised_by_the_next_call(tmp_path):
    n = h5store.CANONICAL_APPEND_BYTES // CANONICAL_DTYPE.itemsize + 1
    path = tmp_path / "f.h5"
    with ThreadPoolExecutor(1) as pool:
        w = h5store.H5Writer(path, "r1", None, pool)
        w.file.create_dataset("ksudp/canonical/t_ns", data=[0])  # in the way of the writer's own
        cols, t_ns, canon = next(_batches(1, n))
        w.add("ksudp", AC, cols, t_ns, canon)
        w.append_due()  # handed over; fails on the thread
        with pytest.raises(StoreError, match="write failed"):
            w.flush()
        assert w.failed
        w.close()  # lets go of the file without writing more
    with h5py.File(path, "r") as f:
        assert f.attrs["recording_id"] == "r1"


def test_small_freed_pieces_of_the_file_are_not_tracked_for_the_whole_recording(tmp_path, monkeypatch):
    """A sync flushes each canonical dataset's last, partly filled chunk; once it fills it is
    rewritten larger elsewhere. HDF5 by default keeps every freed piece in memory until the file
    closes (a recording: hours); the writer lets the small ones go, at no cost in file size."""

    def record(name: str) -> tuple[int, int]:
        w = h5store.H5Writer(tmp_path / name, "r1")
        for cols, t_ns, canon in _batches(150, 50):
            w.add("ksudp", AC, cols, t_ns, canon)
            w.flush()  # one sync per small batch: many partial-chunk rewrites
        assert w.file["ksudp/canonical/t_ns"].shape == (7500,)
        tracked = w.file.id.get_freespace()
        w.close()
        return tracked, (tmp_path / name).stat().st_size

    tracked, size = record("data.h5")
    with h5py.File(tmp_path / "data.h5", "r") as f:
        assert f.id.get_create_plist().get_file_space_strategy()[2] == h5store.FREE_SPACE_MIN_BYTES
    monkeypatch.setattr(h5writer, "FREE_SPACE_MIN_BYTES", 1)  # HDF5's default: track every piece
    tracked_all, size_all = record("default.h5")
    # How many bytes the small pieces add up to depends on the data (0.69-1.1 of the default's
    # over five random seeds), and so does the space left unreused: this worst case (a sync
    # every 50 packets) made the file 0.2-6.2 % larger over the same seeds; a soak with a sync
    # every 0.5 s, 0.05 % (README).
    assert tracked <= tracked_all, (tracked, tracked_all)
    assert size <= size_all * 1.08, (size, size_all)
    with h5py.File(tmp_path / "data.h5", "r") as f:
        assert f["ksudp/canonical/t_ns"][-1] == 7499 * 1000



def test_a_full_chunk_leaves_memory_as_soon_as_the_next_one_starts(tmp_path):
    """Each open dataset's chunk cache holds the chunk being filled and no more: a full chunk is
    written out as the next begins. With room for four, three full chunks stayed in memory in
    every one of a recording's ~70 datasets, filling at the data's pace (a canonical chunk every
    49 s at 333 Hz, rare packet kinds over hours): RSS rose ~13 MB in 3.5 MB steps through the
    first minutes of a game-rate soak. What left memory is on disk before any flush, so the
    file's size tells how many chunks the cache still holds."""
    w = h5store.H5Writer(tmp_path / "data.h5", "r1")
    group = w.file.require_group("ksudp/canonical")
    rows_per_chunk = h5writer.CHUNK_BYTES // 4  # a float32 channel's chunk
    rng = np.random.default_rng(5)
    for _ in range(35):  # 3.5 chunks in game-rate-sized slices, appended, never flushed
        values = rng.normal(size=rows_per_chunk // 10).astype(np.float32)
        w._append(group, "speed_kmh", values, None, h5writer.CANONICAL_FILTERS)
    on_disk = (tmp_path / "data.h5").stat().st_size
    # The three full chunks are written (random values barely compress: ~60 KB each); a cache of
    # four chunks had written none of them (the file held 108 bytes).
    assert on_disk > 2 * h5writer.CHUNK_BYTES, on_disk
    w.close()


_FILL_UNTIL_A_FLUSH_FAILS = """
import gc, os, sys
sys.path.insert(0, sys.argv[2])
import json
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from rt.errors import StoreError
from rt.store.h5writer import H5Writer
from test_h5writer import AC, _batches

writer = H5Writer(sys.argv[1], "r1", None, ThreadPoolExecutor(1))
for i, (cols, t_ns, canon) in enumerate(_batches(200, 300)):
    writer.add("ksudp", AC, cols, t_ns, canon)
    try:
        writer.append_due()
        if i % 5 == 0:
            writer.flush()  # as the recorder's syncs do
    except StoreError as exc:
        print("failed:", exc, flush=True)
        break
writer.close()
writer.close()  # as data.h5's rebuild does when the first close raised
del writer
gc.collect()  # the server collects its garbage on whichever thread allocates next
print("collected", flush=True)
os._exit(0)  # as the CLI leaves after a failed write: HDF5's own shutdown is not to be trusted
"""


@pytest.mark.parametrize("limit", [3 << 20, 5_000_000])
def test_a_writer_whose_flush_failed_is_collected_without_crashing(tmp_path, limit):
    # A flush that fails (the disk full: here the file size capped, so writes fail with EFBIG)
    # left HDF5 identifiers that crashed the process when Python collected the writer after
    # close(): a segfault in H5D_close, or an abort.
    import resource
    import signal
    import subprocess
    import sys
    from pathlib import Path

    def cap_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = subprocess.run([sys.executable, "-c", _FILL_UNTIL_A_FLUSH_FAILS, str(tmp_path / "data.h5"),
                          str(Path(__file__).parent)],
                         capture_output=True, text=True, timeout=120, preexec_fn=cap_file_size)
    assert "failed: data.h5: write failed" in out.stdout, out.stdout + out.stderr
    assert out.returncode == 0 and "collected" in out.stdout, out.stderr[-2000:]


def test_datasets_made_through_the_low_level_calls_are_the_ones_h5py_makes(tmp_path):
    # The writer lets h5py create the first dataset of each dtype and chunking and creates the
    # rest itself (faster); every reader must see no difference: creation properties (chunks,
    # filters, fill), growth, dtype, link names and text attributes.
    writer = h5writer.H5Writer(tmp_path / "w.h5", "r1")
    for cols, t_ns, canon in _batches(2, 50):
        writer.add("ksudp", AC, cols, t_ns, canon)
    writer.close()
    made = 0
    with h5py.File(tmp_path / "w.h5", "r") as f, h5py.File(tmp_path / "h5py.h5", "w") as ref:
        group = f["ksudp/canonical"]
        for name in list(CANONICAL_NAMES) + ["kind"]:
            ds = group[name]
            dtype = CANONICAL_DTYPE[name] if name != "kind" else np.dtype(np.uint8)
            assert ds.dtype == dtype, name
            same = ref.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype,
                                      chunks=(h5writer._chunk_rows((), ds.dtype.itemsize),),
                                      **h5writer.CANONICAL_FILTERS)
            assert ds.id.get_create_plist() == same.id.get_create_plist(), name
            assert (ds.maxshape, ds.chunks, ds.compression) == ((None,), same.chunks, None), name
            assert ds.shape == (100,)
            unit = ds.attrs["unit"]
            expected = CANONICAL_UNITS[name] if name != "kind" else "index into the group's 'kinds' attribute"
            assert isinstance(unit, str) and unit == expected, name
            made += 1
        rows = f["ksudp/ac_car_info/rows"]
        assert rows.dtype == AC.dtype and rows.shape == (100,) and rows.maxshape == (None,)
        assert json.loads(rows.attrs["units"])  # JSON text, read back as str
        assert f["ksudp/ac_car_info/t_ns"].attrs["unit"] == "ns since Unix epoch"
    assert made == len(CANONICAL_NAMES) + 1


def test_the_metadata_cache_is_full_within_minutes_of_a_game_rate_recording(tmp_path):
    # HDF5 keeps the chunk index's blocks until its metadata cache is full, and the index of a
    # growing dataset comes in ever larger blocks: at 512 KiB the cache of three feeds at 333 Hz
    # filled for 77 minutes (real AC and PCARS captures, looped), so resident memory rose through
    # the first hour of a recording. Capped where it is full within minutes, what it holds stays
    # put after them. Three feeds of AC rows at 333 Hz, one decoded second at a time, data.h5
    # flushed as the recorder does (at 512 KiB: 137 KiB after 20 minutes).
    from rt.store.recordings import H5_FLUSH_S

    cols, _, canon = next(_batches(1, 333))
    feeds = ("ksudp", "telemetry_tool", "pcars")
    cap = h5writer.METADATA_CACHE_BYTES
    sizes = []
    with ThreadPoolExecutor(1) as pool:
        writer = h5store.H5Writer(tmp_path / "data.h5", "r1", "2026-01-01T00:00:00Z", pool)
        for second in range(20 * 60):
            t_ns = (np.arange(333, dtype=np.int64) + second * 333) * 3_003_003
            canon["t_ns"] = t_ns
            for feed in feeds:
                writer.add(feed, AC, cols, t_ns, canon.copy())
                writer.append_due()
            if second % H5_FLUSH_S == H5_FLUSH_S - 1:
                writer.flush()
            sizes.append(writer.file.id.get_mdc_size()[2])
        writer.close()
    assert max(sizes) <= cap
    assert sizes[-1] >= 0.9 * cap, (sizes[-1], cap)  # full by the twentieth minute


def test_queued_rows_wait_in_buffers_kept_across_appends(tmp_path):
    """Between two appends (APPEND_BYTES of rows, every few seconds at a game's rates) the writer
    queues what arrives in buffers it keeps, not as the decoded batches themselves. Held, those
    batches came and went from the C heap by the megabyte, interleaved with everything allocated
    meanwhile, and the heap's arena grew in steps for as long as a 1-hour game-rate soak ran.
    Measured like the recorder feeds it: each batch dropped once added."""
    w = h5store.H5Writer(tmp_path / "data.h5", "r1")
    batch_bytes = 0
    appends = 0
    held: list[int] = []
    for k, (cols, t_ns, canon) in enumerate(_batches(160, 333)):  # ~1 s of AC at a game's rate each
        batch_bytes = cols.rows.nbytes + canon.nbytes
        w.add("ksudp", AC, cols, t_ns, canon)
        del cols, t_ns, canon
        before = w.pending_bytes
        w.append_due()
        if k == 59:  # both queues of each pair made and grown: from here on what is held is measured
            tracemalloc.start()
        elif k > 59:
            held.append(tracemalloc.get_traced_memory()[0])
            appends += w.pending_bytes < before
    tracemalloc.stop()
    w.close()
    assert appends >= 4  # so what is measured spans several appends
    assert max(held) - min(held) < batch_bytes, (max(held) - min(held), batch_bytes)
