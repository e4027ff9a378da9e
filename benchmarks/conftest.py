"""Benchmark data: real AC packets from the Monza capture, repeated to a realistic batch size."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The real captures are not in the project (third-party data): tests/captures.py says where they are.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from captures import AC_MONZA as CAPTURE  # noqa: E402

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
