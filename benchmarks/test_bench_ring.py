"""Moving datagrams from a producer thread to a consumer thread.

rt_ext.ring (producer without the GIL, consumer taking zero-copy batches) against
``queue.SimpleQueue`` of ``bytes`` (the usual Python hand-off between a receive thread and a
worker). Same count and size of datagrams, both with a real producer and consumer thread.
"""

from __future__ import annotations

import queue
import threading

import pytest

from benchmarks.conftest import per_second
from rt_ext.ring import PacketRing

COUNT = 200_000
SIZE = 328
pytestmark = pytest.mark.benchmark(group="ring: 328 B datagrams, producer thread -> consumer thread")


def test_rt_ring_push_pop(benchmark):
    ring = PacketRing(8192, 512)

    def run():
        got = 0
        producer = threading.Thread(target=ring.produce_pattern, args=(COUNT, SIZE, 0, True))
        producer.start()
        while got < COUNT:
            _, ts, _, _ = ring.peek(4096)
            n = len(ts)
            if n:
                ring.release(n)
                got += n
        producer.join()
        assert ring.dropped == 0

    per_second(benchmark, COUNT, "datagrams")
    benchmark.pedantic(run, rounds=5, iterations=1)


def test_peer_simplequeue_of_bytes(benchmark):
    payloads = [bytes([i % 256]) * SIZE for i in range(256)]

    def run():
        q: queue.SimpleQueue = queue.SimpleQueue()

        def produce():
            put = q.put
            for i in range(COUNT):
                put(payloads[i & 255])

        producer = threading.Thread(target=produce)
        producer.start()
        get = q.get
        for _ in range(COUNT):
            get()
        producer.join()

    per_second(benchmark, COUNT, "datagrams")
    benchmark.pedantic(run, rounds=5, iterations=1)
