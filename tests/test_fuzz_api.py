"""A property-based API fuzzer no one here wrote (schemathesis), against the running server.

It generates requests from the OpenAPI document (valid and invalid ones, and stateful chains such
as create → get → delete) and checks every answer: no 5xx, status codes and bodies as documented,
invalid input rejected, Allow headers right. The budget is bounded and the seed fixed so CI stays
deterministic and within minutes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = 20


def test_schemathesis_finds_nothing(server_factory, tmp_path):
    srv = server_factory()
    cli = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    out = subprocess.run(
        [cli, "run", f"{srv.url}/api/openapi.json", "--checks", "all", "--max-examples", str(EXAMPLES),
         "--workers", "1", "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    report = out.stdout[-4000:] + out.stderr[-2000:]
    assert out.returncode == 0, report
    assert " passed" in out.stdout and "failed" not in out.stdout.split("Test cases:")[-1], report
    code, log = srv.stop()
    assert code == 0 and "Traceback" not in log and "internal_error" not in log
