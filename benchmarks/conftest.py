"""Benchmark data: real AC packets from the Monza capture, repeated to a realistic batch size."""

from __future__ import annotations

from pathlib import Path

import pytest

CAPTURE = Path(__file__).parent.parent / "tests" / "data" / "captures" / "ac_remote_telemetry" / "vthinsel_AssettoCorsa_monza_A8LMS.raw"

#: AC RTCarInfo packets per benchmark round (about 21 MB).
PACKETS = 65536


@pytest.fixture(scope="session")
def ac_stream() -> bytes:
    raw = CAPTURE.read_bytes()
    reps = -(-PACKETS * 328 // len(raw))
    return (raw * reps)[: PACKETS * 328]


@pytest.fixture(scope="session")
def cbin(tmp_path_factory):
    """The C peers (c/udp_blast.c, c/recvmmsg_sink.c), compiled with the machine's cc."""
    import subprocess

    out = tmp_path_factory.mktemp("cbin")
    for name in ("udp_blast", "recvmmsg_sink"):
        subprocess.run(["cc", "-O2", "-o", str(out / name), str(Path(__file__).parent / "c" / f"{name}.c")], check=True)
    return out


def per_second(benchmark, count: int, unit: str = "packets") -> None:
    """Attach a throughput figure (count per second of the median round) to the benchmark."""
    benchmark.extra_info["count"] = count
    benchmark.extra_info["unit"] = unit
