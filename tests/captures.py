"""Where the real game captures are.

The captures are third-party data (each folder's README.txt names its source and licence), so the
project carries no copy: tests and benchmarks read them from the workplace's shared folder beside
the checkout (``../shared/captures``), or from ``RT_CAPTURES``. A test that needs one calls
:func:`need`: without the captures it is skipped with a message saying where they come from,
unless ``RT_REQUIRE_CAPTURES=1`` (set by ``.ci/run``) makes their absence a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

CAPTURES = Path(os.environ.get("RT_CAPTURES") or Path(__file__).resolve().parents[2] / "shared" / "captures")
AC_MONZA = CAPTURES / "ac_remote_telemetry" / "vthinsel_AssettoCorsa_monza_A8LMS.raw"
AC_MONZA_INDEX = CAPTURES / "ac_remote_telemetry" / "vthinsel_AssettoCorsa_monza_A8LMS.index.csv"
PCARS1 = CAPTURES / "pcars1"
PCARS1_SPA = CAPTURES / "pcars1_spa" / "vthinsel_pcars1_spa_r8.raw"

WHERE = (
    "the real game captures are third-party data kept outside the project: put the shared captures "
    "folder (ac_remote_telemetry/, pcars1/, pcars1_spa/, each with its README.txt naming the public "
    "repository it comes from) at ../shared/captures beside the checkout, or point RT_CAPTURES at it"
)


def need(path: Path) -> Path:
    """``path`` if it exists; else skip the calling test (fail it under ``RT_REQUIRE_CAPTURES=1``)."""
    if path.exists():
        return path
    import pytest

    message = f"{path} is missing: {WHERE}"
    if os.environ.get("RT_REQUIRE_CAPTURES") == "1":
        pytest.fail(message)
    pytest.skip(message)
