"""The SPSC ring (rt_ext.ring): order, loss accounting, zero-copy views, concurrency."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rt_ext.ring import PacketRing


def _drain(ring: PacketRing, stop: threading.Event, seen: list[np.ndarray], lengths: list[np.ndarray]) -> None:
    """Consumer loop: take batches until told to stop and the ring is empty."""
    while True:
        first, ts, lens, data = ring.peek(4096)
        n = len(ts)
        if n == 0:
            if stop.is_set() and ring.pending == 0:
                return
            continue
        seq = data[:, :8].copy().view("<u8").reshape(-1)
        assert np.array_equal(seq.astype(np.int64), ts)  # payload and timestamp travelled together
        seen.append(seq)
        lengths.append(lens.copy())
        ring.release(n)


def _run(ring: PacketRing, count: int, length: int, wait: bool) -> tuple[int, np.ndarray, np.ndarray]:
    stop = threading.Event()
    seen: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    consumer = threading.Thread(target=_drain, args=(ring, stop, seen, lengths))
    consumer.start()
    try:
        accepted = ring.produce_pattern(count, length, 0, wait)  # runs without the GIL
    finally:
        stop.set()
        consumer.join(timeout=60)
    assert not consumer.is_alive()
    return accepted, np.concatenate(seen) if seen else np.empty(0, "<u8"), np.concatenate(lengths)


def test_flat_out_producer_and_consumer_lose_and_reorder_nothing_when_the_ring_cannot_fill():
    count = 400_000
    ring = PacketRing(1 << 19, 16)  # larger than the whole stream: it never fills
    accepted, seq, lens = _run(ring, count, 16, wait=False)
    assert accepted == count and ring.dropped == 0
    assert np.array_equal(seq, np.arange(count, dtype="<u8"))
    assert (lens == 16).all()
    assert ring.received == ring.consumed == count


def test_small_ring_under_a_waiting_producer_stays_in_order():
    # Many wrap-arounds of a tiny ring: acquire/release ordering is what keeps slots intact.
    count = 300_000
    ring = PacketRing(64, 24)
    accepted, seq, _ = _run(ring, count, 24, wait=True)
    assert accepted == count and ring.dropped == 0
    assert np.array_equal(seq, np.arange(count, dtype="<u8"))


def test_when_full_received_equals_consumed_plus_dropped_exactly():
    # The ring is made full before the consumer starts: a producer with no consumer is refused
    # once every slot is taken, so drops are certain and counted exactly. Then a flat-out
    # producer runs in chunks until the consumer thread has taken many ring-fulls meanwhile: one
    # 500 000-datagram call was over in 0.7 ms, before the consumer took its first batch, so the
    # two never ran together. (The deadline only stops a broken consumer from hanging the test.)
    capacity, chunk, rounds = 256, 10_000, 20
    ring = PacketRing(capacity, 16)
    prefill = capacity + 1000
    assert ring.produce_pattern(prefill, 16) == capacity
    assert ring.dropped == prefill - capacity and ring.pending == capacity  # full: the newest 1000 refused
    stop = threading.Event()
    seen: list[np.ndarray] = []
    consumer = threading.Thread(target=_drain, args=(ring, stop, seen, []))
    consumer.start()
    produced = accepted = 0
    deadline = time.monotonic() + 30.0
    try:
        while ring.consumed < rounds * capacity and consumer.is_alive() and time.monotonic() < deadline:
            accepted += ring.produce_pattern(chunk, 16, prefill + produced)  # without the GIL
            produced += chunk
    finally:
        stop.set()
        consumer.join(timeout=60)
    assert not consumer.is_alive()
    seq = np.concatenate(seen)
    assert ring.consumed >= rounds * capacity  # the consumer ran while the producer did
    assert ring.received == prefill + produced
    assert ring.received == ring.consumed + ring.dropped and ring.pending == 0
    assert ring.consumed == capacity + accepted == len(seq)
    assert ring.dropped == (prefill - capacity) + (produced - accepted)
    assert produced - accepted > 0  # the producer, flat out, found the ring full again meanwhile
    # The oldest were kept and the newest dropped: the full ring held the first 256 ...
    assert np.array_equal(seq[:capacity], np.arange(capacity, dtype="<u8"))
    # ... and what got through is a strictly increasing subsequence: dropped, never reordered.
    assert (np.diff(seq.astype(np.int64)) > 0).all()


def test_full_ring_drops_the_newest():
    ring = PacketRing(4, 8)
    for i in range(6):
        ring.push_bytes(i, np.full(8, i, np.uint8).tobytes())
    assert ring.dropped == 2 and ring.pending == 4
    _, ts, _, data = ring.peek()
    assert ts.tolist() == [0, 1, 2, 3]
    assert data[:, 0].tolist() == [0, 1, 2, 3]


def test_views_are_zero_copy_and_wrap_at_the_end_of_the_slot_array():
    ring = PacketRing(4, 8)
    for i in range(3):
        ring.push_bytes(100 + i, bytes([i]) * 5)
    first, ts, lens, data = ring.peek()
    assert first == 0 and len(ts) == 3 and lens.tolist() == [5, 5, 5]
    assert np.shares_memory(data, ring.data_buffer)
    ring.release(3)
    for i in range(3, 6):
        ring.push_bytes(100 + i, bytes([i]) * 5)
    first, ts, _, _ = ring.peek()
    assert first == 3 and ts.tolist() == [103]  # contiguous up to the end of the array
    ring.release(1)
    first, ts, _, _ = ring.peek()
    assert first == 0 and ts.tolist() == [104, 105]


def test_oversize_datagram_keeps_its_true_length_and_a_truncated_payload():
    ring = PacketRing(4, 8)
    ring.push_bytes(1, bytes(range(20)))
    _, _, lens, data = ring.peek()
    assert lens[0] == 20 and data[0].tolist() == list(range(8))


def test_release_more_than_pending_is_an_error():
    ring = PacketRing(4, 8)
    ring.push_bytes(1, b"x")
    with pytest.raises(ValueError):
        ring.release(2)


def test_last_times_reports_the_newest_receive_times():
    ring = PacketRing(8, 4)
    for t in range(20):
        ring.push_bytes(t * 1000, b"abcd")
        if ring.pending == 8:
            ring.release(8)
    assert ring.last_times(3).tolist() == [17000, 18000, 19000]
    assert len(ring.last_times(100)) == 7  # capacity - 1


def test_capacity_rounds_up_to_a_power_of_two_and_rejects_nonsense():
    assert PacketRing(100, 8).capacity == 128
    with pytest.raises(ValueError):
        PacketRing(1, 8)
    with pytest.raises(ValueError):
        PacketRing(8, 0)
