"""Free heap pages go back to the system (glibc's malloc_trim), as the server does every 30 s."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

# A heap left full of holes: 160 MB of 8 KiB blocks (below the mmap threshold, so on the heap),
# every block but each 100th freed, so the kept ones pin the holes and the top of the heap.
FRAGMENT = r"""
import ctypes, json
from rt.memory import release_free_memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]

def rss_mb():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) / 1024

blocks = [libc.malloc(8192) for _ in range(20000)]
for b in blocks:
    libc.memset(b, 1, 8192)  # touched: resident
full = rss_mb()
for i, b in enumerate(blocks):
    if i % 100:
        libc.free(b)
holes = rss_mb()
trimmed = release_free_memory()
print(json.dumps({"full": full, "holes": holes, "after": rss_mb(), "trimmed": trimmed}))
"""


def test_release_free_memory_returns_the_pages_of_a_fragmented_heap():
    out = subprocess.run([sys.executable, "-c", FRAGMENT], capture_output=True, text=True, check=True).stdout
    mb = json.loads(out)
    assert mb["trimmed"] is True
    assert mb["holes"] > mb["full"] - 20  # freeing alone gave (almost) nothing back
    assert mb["after"] < mb["holes"] - 100, mb  # the trim returned the ~158 MB of holes



def test_the_trimmer_frees_idle_caches_before_each_trim_and_not_between():
    from rt.memory import Trimmer

    calls: list[str] = []
    trimmer = Trimmer(interval_s=3600.0, release=[lambda: calls.append("pool")])
    trimmer.tick()
    assert calls == []  # not yet due
    trimmer._last -= 3600.0
    trimmer.tick()
    trimmer.tick()
    assert calls == ["pool"]


def test_the_memory_log_gives_each_cause_its_figure(caplog):
    import logging

    import h5py  # noqa: F401 - HDF5 loaded, so its free lists are known

    from rt.memory import MemoryLog

    runs = {"runs_kept": 3, "run_bookkeeping": 3}
    memory_log = MemoryLog(interval_s=3600.0, sources={"sessions": lambda: runs, "router_cache_entries": lambda: 7})
    with caplog.at_level(logging.INFO, logger="rt.memory"):
        memory_log.tick()  # not yet due
        memory_log._last -= 3600.0
        memory_log.tick()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("memory ")]
    assert len(lines) == 1
    figures = json.loads(lines[0].split(" ", 1)[1])
    assert figures["runs_kept"] == 3 and figures["router_cache_entries"] == 7
    assert figures["rss_mb"] > 0 and figures["python_blocks"] > 1000
    assert figures["threads"] == threading.active_count()  # a thread pool that grew shows here
    assert {"c_heap_in_use_mb", "hdf5_free_lists_mb"} <= set(figures)  # glibc and HDF5 here (Linux)


# A file written and closed: HDF5 keeps the blocks it freed on its free lists for reuse.
HDF5_FREE_LISTS = r"""
import json
import h5py, numpy as np
from rt.memory import heap_stats, release_free_memory
with h5py.File(PATH, "w", libver="latest") as f:
    sets = [f.create_dataset(f"d{k}", shape=(0,), maxshape=(None,), chunks=(64,), dtype="f8") for k in range(40)]
    for n in range(200):
        for d in sets:
            d.resize((n + 1) * 64, axis=0)
            d[n * 64:] = np.arange(64.0)
before = heap_stats()["hdf5_free_lists_mb"]
release_free_memory()
print(json.dumps({"before": before, "after": heap_stats()["hdf5_free_lists_mb"]}))
"""


def test_release_free_memory_hands_hdf5s_free_lists_back_before_the_trim(tmp_path):
    # HDF5 keeps every block it frees on its free lists; a growing chunk index frees blocks of
    # ever new sizes, so the lists grew for a recording's whole length (0.3 MB/h at game rates)
    # and the trim could not return what HDF5 kept.
    script = HDF5_FREE_LISTS.replace("PATH", repr(str(tmp_path / "x.h5")))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    mb = json.loads(out)
    assert mb["after"] < mb["before"] / 2, mb


def test_heap_stats_give_a_large_buffer_kept_apart_from_the_heaps_arena():
    # A step in the C heap is either one large buffer kept or the arena grown; the memory log
    # must tell which. 64 MiB is over the highest mmap threshold glibc ever sets on its own
    # (32 MiB), so the block is mapped apart whatever the process freed before.
    import numpy as np

    from rt.memory import heap_stats

    before = heap_stats()
    block = np.ones(64 << 20, dtype=np.uint8)
    during = heap_stats()
    del block
    after = heap_stats()
    assert during["c_heap_mapped_mb"] - before["c_heap_mapped_mb"] >= 64
    assert during["c_heap_in_use_mb"] - before["c_heap_in_use_mb"] >= 64  # in use counts it too
    assert after["c_heap_mapped_mb"] <= during["c_heap_mapped_mb"] - 64  # unmapped when freed


def test_runs_coming_and_going_intern_no_strings(tmp_path, monkeypatch):
    """Each run started, stopped or deleted rewrites its session's file (``<id>.json`` through
    ``.<id>.json.tmp``) and the recording's manifest. Built with pathlib (Python 3.11), every such
    name went into the interpreter's table of interned strings and out again; the table fills
    with the holes left behind and is rebuilt, at twice the size once the strings that stay
    interned outnumber a third of it: +0.9 MB at 34 minutes of the 1-hour soak, its one step.
    On Python 3.12 and later pathlib interns nothing, so this holds there without the fix too."""
    from rt.protocols import default_protocols
    from rt.sessions.manager import SessionManager
    from rt.store.recordings import RecordingManager

    recordings = RecordingManager(tmp_path, default_protocols(), min_free_mb=0)
    recordings.open()
    sessions = SessionManager(tmp_path, recordings)
    sessions.open()
    session = sessions.create("lap_times", "churn")
    recordings.start({"name": "churn"})
    interned: list[str] = []
    intern = sys.intern

    def counting_intern(text: str) -> str:
        interned.append(text)
        return intern(text)

    monkeypatch.setattr(sys, "intern", counting_intern)
    for _ in range(3):
        run = sessions.start_run(session["id"], "ksudp", "lap", [])
        sessions.stop_run(session["id"], run["id"])
        sessions.delete_run(session["id"], run["id"])
    monkeypatch.setattr(sys, "intern", intern)
    recordings.stop()
    recordings.close()
    assert interned == [], interned
