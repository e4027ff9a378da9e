"""The raw writer with its writer thread: order, durability accounting, and a failing disk."""

from __future__ import annotations

import os
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rt.errors import StoreError
from rt.store import rawfile


def _batch(first: int, n: int, slot: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = np.zeros((n, slot), dtype=np.uint8)
    data[:, :8] = np.arange(first, first + n, dtype="<u8").view(np.uint8).reshape(n, 8)
    return np.arange(first, first + n, dtype=np.int64), np.full(n, 8, dtype=np.uint32), data


def test_background_writes_land_in_order_and_whole(tmp_path):
    with ThreadPoolExecutor(1) as pool:
        w = rawfile.RawWriter(tmp_path / "f.bin", pool)
        for b in range(50):
            w.append(*_batch(b * 100, 100))
        w.close()
    t_ns, payloads = rawfile.read(tmp_path / "f.bin")
    assert t_ns.tolist() == list(range(5000))
    assert [int.from_bytes(p, "little") for p in payloads] == list(range(5000))
    assert w.size == (tmp_path / "f.bin").stat().st_size and w.queued_bytes == 0


def test_a_failed_background_write_is_raised_and_nothing_is_written_after_it(tmp_path):
    path = tmp_path / "f.bin"
    with ThreadPoolExecutor(1) as pool:
        w = rawfile.RawWriter(path, pool)
        w.append(*_batch(0, 10))
        w.flush()
        good = w.size
        # From now on every write fails as on a full disk (ENOSPC): the writer's fd becomes /dev/full.
        full = os.open("/dev/full", os.O_WRONLY)
        keep = os.dup(w.fd)
        os.dup2(full, w.fd)
        os.close(full)
        w.append(*_batch(10, 10))  # queued: the failure shows up later
        with pytest.raises(StoreError, match="No space left"):
            w.flush()
        assert w.failed and w.size == good
        with pytest.raises(StoreError):
            w.append(*_batch(20, 10))
        os.dup2(keep, w.fd)  # the disk is back: still nothing may be appended after the failure
        os.close(keep)
        with pytest.raises(StoreError):
            w.close()
    t_ns, _ = rawfile.read(path)
    assert t_ns.tolist() == list(range(10)) and path.stat().st_size == good


@pytest.mark.parametrize("threaded", [False, True])
def test_large_batches_are_written_in_pieces_with_a_bounded_buffer_pool(tmp_path, threaded):
    """Full ring takes (thousands of datagrams, mixed lengths) land whole and in order, and the
    writer keeps no more than POOL_BUFFERS buffers of one size however large the batches were."""
    rng = np.random.default_rng(7)
    slot = 2048
    path = tmp_path / "f.bin"
    sent_t: list[int] = []
    sent_payloads: list[bytes] = []
    with ThreadPoolExecutor(1) as pool:
        w = rawfile.RawWriter(path, pool if threaded else None)
        first = 0
        for n in (1, 4096, 37, 3000, 509, 510, 4096):
            data = rng.integers(0, 256, size=(n, slot), dtype=np.uint8)
            lengths = rng.integers(0, slot + 50, size=n).astype(np.uint32)  # some longer than the slot
            t_ns = np.arange(first, first + n, dtype=np.int64)
            first += n
            appended = w.append(t_ns, lengths, data)
            kept = np.minimum(lengths, slot)
            assert appended == int((kept + rawfile.HEADER.size).sum())
            sent_t += t_ns.tolist()
            sent_payloads += [data[i, : kept[i]].tobytes() for i in range(n)]
        w.flush()
        assert len(w._free) <= w.POOL_BUFFERS
        assert {b.shape[0] for b in w._free} == {w._buffer_bytes} and w._buffer_bytes <= w.PIECE_BYTES
        w.close()
    t_ns, payloads = rawfile.read(path)
    assert t_ns.tolist() == sent_t
    assert payloads == sent_payloads


def test_small_batches_queued_behind_a_stalled_disk_hold_about_their_own_size(tmp_path):
    """While the writer thread is stuck (a disk stall), a few ms of traffic per batch must not pin
    a whole piece-sized buffer each: memory held by the queue stays near the bytes queued."""
    stall = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        w = rawfile.RawWriter(tmp_path / "f.bin", pool)
        pool.submit(stall.wait)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for b in range(300):
                w.append(*_batch(b * 20, 20, slot=1400))
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
            stall.set()
        queued = w.queued_bytes
        w.close()
    assert queued == 300 * 20 * (rawfile.HEADER.size + 8)
    assert held < 4 * queued + (2 << 20), (held, queued)  # one piece-sized buffer per batch was 300 MiB
    t_ns, _ = rawfile.read(tmp_path / "f.bin")
    assert t_ns.tolist() == list(range(6000))


def test_buffers_a_lag_left_in_the_pool_are_released_once_idle(tmp_path):
    stall = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        w = rawfile.RawWriter(tmp_path / "f.bin", pool)
        rows = w.PIECE_BYTES // (rawfile.HEADER.size + 2048)
        big = _batch(0, rows * w.POOL_BUFFERS * 2, slot=2048)
        big[1][:] = 2048  # full datagrams: each piece fills its buffer
        pool.submit(stall.wait)  # the disk stalls: every piece waits in the queue
        w.append(*big)
        stall.set()
        w.flush()
        assert len(w._free) == w.POOL_BUFFERS
        assert w.release_idle() == 0  # all of them were just used
        first = big[0].shape[0]

        def steady(b):  # one piece at a time
            t, n, d = _batch(first + b * rows, rows, slot=2048)
            n[:] = 2048
            w.append(t, n, d)
            w.flush()

        for b in range(3):
            steady(b)
        assert w.release_idle() == (w.POOL_BUFFERS - 1) * w._buffer_bytes
        steady(3)
        assert len(w._free) == 1 and w.release_idle() == 0  # the one in use stays
        assert w.release_idle() == w._buffer_bytes  # and goes once traffic stops
        w.close()
    t_ns, payloads = rawfile.read(tmp_path / "f.bin")
    assert t_ns.tolist() == list(range(first + 4 * rows)) and all(len(p) == 2048 for p in payloads)
