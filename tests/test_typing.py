"""Type checks: mypy over the facades to rt_ext and the code that uses them, stubtest over the stubs.

The ``.pyi`` stubs are all a type checker knows of the compiled extensions. stubtest compares them
with the built modules (names, parameters, defaults), so a stub that drifts from its ``.pyx``
fails here; mypy then checks ``rt`` against them. mypy's scope and options are ``[tool.mypy]`` in
pyproject.toml, so ``python -m mypy`` at the project root gives the same answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTENSIONS = ["rt_ext.decode", "rt_ext.merge", "rt_ext.rawpack", "rt_ext.recv", "rt_ext.ring", "rt_ext.wire"]


def _run(args: list[str], cache: Path) -> str:
    # A fresh cache: a stale one in the work tree could hide what a clean checkout reports.
    env = {**os.environ, "MYPY_CACHE_DIR": str(cache)}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 0, f"{args[0]} found errors:\n{proc.stdout}{proc.stderr}"
    assert took < 60, f"{args[0]} took {took:.0f} s"
    return proc.stdout


def test_mypy_is_clean(tmp_path):
    assert "Success" in _run(["mypy", "--config-file", str(ROOT / "pyproject.toml")], tmp_path)


def test_stubs_match_the_built_extensions(tmp_path):
    assert "Success" in _run(["mypy.stubtest", "--allowlist", str(ROOT / "tests" / "stubtest_allowlist.txt"),
                              *EXTENSIONS], tmp_path)


def test_every_extension_has_a_stub():
    pyx = {p.stem for p in (ROOT / "rt_ext").glob("*.pyx")}
    assert {p.stem for p in (ROOT / "rt_ext").glob("*.pyi")} == pyx
    assert {e.split(".")[1] for e in EXTENSIONS} == pyx
