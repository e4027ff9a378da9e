"""mypy over the facades to rt_ext, their .pyi stubs and the packages that use them.

The stubs are all a type checker knows of the compiled code, so a stub that drifts from its
``.pyx`` shows here as an error at a call site. The scope and options are ``[tool.mypy]`` in
pyproject.toml, so ``python -m mypy`` at the project root gives the same answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_is_clean(tmp_path):
    # A fresh cache: a stale one in the work tree could hide what a clean checkout reports.
    env = {**os.environ, "MYPY_CACHE_DIR": str(tmp_path / "mypy_cache")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 0, f"mypy found errors:\n{proc.stdout}{proc.stderr}"
    assert "Success" in proc.stdout
    assert took < 60, f"mypy took {took:.0f} s"
