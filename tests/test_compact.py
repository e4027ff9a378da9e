"""Compaction of stopped recordings: data.h5 rewritten with shuffle + deflate, nothing changed."""

from __future__ import annotations

import shutil

import h5py
import numpy as np

from rigs import ScriptedSim, wait_until
from rt.feeds.feed import Feed
from rt.protocols import default_protocols
from rt.sim.frames import packets
from rt.sim.game import make_sim, tt_driver
from rt.store import compact, rawfile
from rt.store.h5store import agrees_with_raw
from rt.store.recordings import RecordingManager
from rt.store.recovery import dir_size

P = default_protocols()


def _record(data_dir, datagrams: dict[str, list[bytes]], **options) -> tuple[RecordingManager, object]:
    """A stopped recording of ``datagrams`` per feed, taken through the consumer's real path."""
    mgr = RecordingManager(data_dir, P, min_free_mb=0, **options)
    mgr.open()
    rec = mgr.start({"name": "compaction"})
    for name, items in datagrams.items():
        feed = Feed(name, 0, P, None)
        for k, d in enumerate(items):
            feed.ring.push_bytes(10**18 + k * 3_003_003, d)
            if feed.ring.pending >= 4096:
                feed.consume([mgr])
        feed.consume([mgr])
    mgr.stop()
    return mgr, data_dir / rec["id"]


def _datagrams(monza_raw: bytes) -> dict[str, list[bytes]]:
    return {
        "ksudp": [monza_raw[i * 328 : (i + 1) * 328] for i in range(len(monza_raw) // 328)],  # real AC
        "telemetry_tool": [r.tobytes() for r in tt_driver(ScriptedSim().step_block(3000), 0)],
        "pcars": [r.tobytes() for r in packets(make_sim(seed=3), 3000, "pcars1", quirks=False)[0]],
    }


def _contents(path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        out["/"] = dict(f.attrs)

        def visit(name, obj):
            attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.shape, obj.dtype.str, np.asarray(obj[()]).tobytes(), attrs)
            else:
                out[name] = attrs

        f.visititems(visit)
    return out


def test_compaction_keeps_every_value_and_byte_and_shrinks_real_data(tmp_path, monza_raw):
    _, rec_dir = _record(tmp_path, _datagrams(monza_raw))
    original = tmp_path / "original.h5"
    shutil.copy(rec_dir / "data.h5", original)
    raws = {p.name: p.read_bytes() for p in rec_dir.glob("*.bin")}
    before, after = compact.compact(rec_dir)
    assert before == original.stat().st_size + sum(map(len, raws.values()))
    assert after == (rec_dir / "data.h5").stat().st_size + sum(p.stat().st_size for p in rec_dir.glob("*.bin"))
    was, now = _contents(original), _contents(rec_dir / "data.h5")
    assert now.pop("/") == dict(was.pop("/"), compacted=True)
    assert now == was  # every group, dataset and attribute, values bit for bit
    with h5py.File(original, "r") as f0, h5py.File(rec_dir / "data.h5", "r") as f:
        rows = f["ksudp/ac_car_info/rows"]
        assert (rows.compression, rows.shuffle) == ("gzip", True)
        # Canonical channels are written uncompressed too while recording; compaction deflates them.
        assert {(ds.compression, ds.shuffle) for ds in f["ksudp/canonical"].values()} == {("gzip", True)}
        assert {ds.compression for ds in f0["ksudp/canonical"].values()} == {None}
        # The real AC rows: the measured 2.1x of the module's docstring (to within a few percent).
        assert rows.size * rows.dtype.itemsize / rows.id.get_storage_size() > 2.0
        assert f0["ksudp/ac_car_info/rows"].id.get_storage_size() >= rows.size * rows.dtype.itemsize
    for name, data in raws.items():  # every raw byte comes back, whole and in ranges
        path = rec_dir / name
        if len(data) > len(rawfile.MAGIC):
            assert rawfile.is_compressed(path)
        assert rawfile.load(path).tobytes() == data
        with rawfile.RawFile(path) as raw:
            assert raw.size == len(data)
            for start in (0, 1, 4095, len(data) // 2, len(data) - 7):
                assert raw.read_at(start, 300_000) == data[start : start + 300_000]
    # The real AC raw file: 2.35x measured (records byte-transposed before deflate; 1.34x without).
    assert len(raws["ksudp.bin"]) / (rec_dir / "ksudp.bin").stat().st_size > 2.2
    assert after < before / 2
    assert agrees_with_raw(rec_dir, P)
    assert compact.compact(rec_dir) == (after, after)  # once only
    assert not any(p.exists() for p in compact.leftovers(rec_dir))


def test_a_compaction_cut_short_leaves_data_h5_whole_and_is_done_at_the_next_start(tmp_path, monza_raw):
    _, rec_dir = _record(tmp_path, {"ksudp": _datagrams(monza_raw)["ksudp"]})
    original = _contents(rec_dir / "data.h5")
    child = compact.compact_in_child(rec_dir)
    child.kill()  # wherever it was: before, while or after writing the temp file
    child.communicate()
    (rec_dir / compact.TMP_NAME).write_bytes(b"a torn compaction")  # as a power loss may leave them
    (rec_dir / f".ksudp.bin{compact.TMP_SUFFIX}").write_bytes(b"RTFEEDZ\n and half a block")
    assert compact.needs_compaction(rec_dir) or _contents(rec_dir / "data.h5")["/"].get("compacted")
    mgr = RecordingManager(tmp_path, P, min_free_mb=0, compact_after_s=0)
    try:
        mgr.open()
        assert mgr.compactor.wait_idle(60)
    finally:
        mgr.close()
    now = _contents(rec_dir / "data.h5")
    assert now.pop("/")["compacted"] and {k: v for k, v in original.items() if k != "/"} == now
    assert not any(p.exists() for p in compact.leftovers(rec_dir))
    assert rawfile.is_compressed(rec_dir / "ksudp.bin")
    # The manifest tells the compacted size (counting itself as it was before this rewrite).
    assert abs(mgr.get(rec_dir.name)["size_bytes"] - dir_size(rec_dir)) <= 16


def test_the_server_compacts_a_recording_once_stopped_and_delete_cancels_it(tmp_path, monza_raw):
    mgr, rec_dir = _record(tmp_path, _datagrams(monza_raw), compact_after_s=0)
    try:
        wait_until(lambda: not compact.needs_compaction(rec_dir), timeout=60)
        assert mgr.compactor.wait_idle(60)
        assert abs(mgr.get(rec_dir.name)["size_bytes"] - dir_size(rec_dir)) <= 16
        assert agrees_with_raw(rec_dir, P)
        # A recording deleted while its compaction runs goes, whole, without an error.
        again = mgr.start({"name": "deleted at once"})
        mgr.stop()
        mgr.delete(again["id"])
        assert mgr.compactor.wait_idle(60)
        assert not (tmp_path / again["id"]).exists()
    finally:
        mgr.close()


def test_redecode_leaves_a_compacted_file(tmp_path, monza_raw):
    import os
    import subprocess
    import sys

    _, rec_dir = _record(tmp_path, {"ksudp": _datagrams(monza_raw)["ksudp"][:2000]})
    assert compact.needs_compaction(rec_dir)
    env = dict(os.environ, RUSTY_TELEMETRY_DATA_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "rt", "redecode", rec_dir.name], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not compact.needs_compaction(rec_dir) and agrees_with_raw(rec_dir, P)


def test_a_compressed_raw_file_downloads_as_recorded_whole_and_in_ranges(server_factory, tmp_path):
    # A real server compacting at once: the download of a compressed raw file is the file as it
    # was written, byte for byte, whole and with Range (each range decompresses its blocks only).
    from test_recordings import live_feeds, send

    srv = server_factory(RUSTY_TELEMETRY_COMPACT_AFTER_S="0")
    port = live_feeds(srv)["telemetry_tool"]["port"]
    _, rec = srv.call("POST", "/api/recordings", {})
    sent = [row.tobytes() for row in tt_driver(ScriptedSim().step_block(6000), 0)]  # 2 MiB: 3 blocks
    for k in range(0, len(sent), 1000):  # in steps the socket buffer holds, whatever its cap
        send(port, sent[k : k + 1000])
        wait_until(lambda: srv.get(f"/api/recordings/{rec['id']}")[1]["feeds"]["telemetry_tool"]["packets"] == k + 1000)
    srv.call("POST", "/api/recordings/stop")
    raw = srv.outside(tmp_path / "data" / rec["id"] / "telemetry_tool.bin")
    wait_until(lambda: rawfile.is_compressed(raw), timeout=60)
    original = rawfile.load(raw).tobytes()
    path = f"/api/recordings/{rec['id']}/data/telemetry_tool"
    status, headers, whole = srv.request("GET", path)
    assert status == 200 and whole == original and int(headers["Content-Length"]) == len(original)
    t_ns, payloads = rawfile.read(raw)
    assert payloads == sent
    size = len(original)
    for first, last in ((0, 7), (8, 19), (size // 2, size // 2 + (3 << 20)), (size - 100, size - 1)):
        last = min(last, size - 1)
        status, headers, part = srv.request("GET", path, headers={"Range": f"bytes={first}-{last}"})
        assert status == 206 and headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert part == original[first : last + 1]
    assert raw.stat().st_size < size / 2  # simulator datagrams compress well


def test_compaction_of_the_real_pcars1_capture_keeps_every_byte():
    # Real PCARS 1 at Spa: telemetry (1367 bytes) and participant strings (1347) mixed, so the
    # raw container groups payloads of two lengths in a block; every byte must come back.
    import tempfile
    from pathlib import Path

    from test_feeds import _spa_datagrams

    datagrams = _spa_datagrams()
    assert {len(d) for d in datagrams} == {1367, 1347}
    with tempfile.TemporaryDirectory() as tmp:
        _, rec_dir = _record(Path(tmp), {"pcars": datagrams * 3})
        raw = (rec_dir / "pcars.bin").read_bytes()
        h5 = _contents(rec_dir / "data.h5")
        compact.compact(rec_dir)
        assert rawfile.is_compressed(rec_dir / "pcars.bin") and rawfile.load(rec_dir / "pcars.bin").tobytes() == raw
        now = _contents(rec_dir / "data.h5")
        assert now.pop("/")["compacted"] and now == {k: v for k, v in h5.items() if k != "/"}
        assert agrees_with_raw(rec_dir, P)
        print(f"PCARS 1 Spa: raw {len(raw) / (rec_dir / 'pcars.bin').stat().st_size:.2f}x")
