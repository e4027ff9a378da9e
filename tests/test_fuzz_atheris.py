"""Coverage-guided fuzzing of the datagram hot path with atheris, on a bounded budget.

The fuzz target and what it checks are in ``atheris_hot_path.py``: classify and decode (rows,
columns) of mutated real datagrams for every feed's packet kinds, and the whole consumer path of a
feed (ring → classify → decode → canonical → live view). libFuzzer instruments the interpreter and
exits the process when it is done, so it runs in a subprocess, seeded with the real captures (see
``captures.py``) and synthetic packets of every kind. The run is pinned down as far as libFuzzer
allows: ``-seed=1``, ``PYTHONHASHSEED=0``, a fixed recorder clock in the target and a fixed number
of runs, all of which must run: no wall-clock cap decides how much is fuzzed, so a loaded machine
takes longer but tests the same (only a hang guard of minutes stops it); libFuzzer's comparison hints
can still differ now and then between processes, so the later mutations are not bit-for-bit equal.

A failure shows libFuzzer's report: the Python traceback and the input that caused it (written to
``crash-<sha1>`` in the test's tmp_path and printed as hex below). Replay it with
``python tests/atheris_hot_path.py path/to/crash-<sha1>``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import atheris_hot_path
import pytest
from captures import need

HARNESS = Path(atheris_hot_path.__file__).resolve()
#: Inputs run per test: 5-25 s of fuzzing on one core of the 2-core machine; every one must run.
RUNS = 4000
#: Only against a hang of the whole run: far above what 4000 runs take even on a loaded machine.
HANG_S = 600
#: libFuzzer's last word: "Done 4000 in 7 second(s)" (-atheris_runs) or "Done N runs in S second(s)".
DONE = re.compile(r"^Done (\d+) (?:runs )?in (\d+) second", re.MULTILINE)
REQUIREMENT = "atheris>=3.0.0"


def _report(proc: subprocess.CompletedProcess, tmp_path: Path) -> str:
    # atheris prints the Python traceback of a crash on stdout, libFuzzer its report on stderr
    out = proc.stdout.splitlines()
    start = next((i for i, line in enumerate(out) if "Uncaught Python exception" in line), None)
    lines = [f"exit code {proc.returncode}"]
    if start is not None:
        lines += ["--- Python exception (stdout) ---", *out[start : start + 60]]
    lines += ["--- stderr (tail) ---", *proc.stderr.splitlines()[-25:]]
    for crash in sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("timeout-*")) + sorted(tmp_path.glob("oom-*")):
        lines += [f"--- {crash.name} ({crash.stat().st_size} bytes), replay: python {HARNESS} {crash}", crash.read_bytes().hex()]
    return "\n".join(lines)


@pytest.mark.slow
def test_atheris_fuzz_of_decode_and_feed_consume_finds_nothing(tmp_path):
    if importlib.util.find_spec("atheris") is None:
        pytest.fail(
            f"atheris is not installed: this fuzz test needs it. Add {REQUIREMENT!r} to the [test] extra "
            f"of pyproject.toml (or: {sys.executable} -m pip install '{REQUIREMENT}')."
        )
    # seeded with the real captures: skipped without them (failed under RT_REQUIRE_CAPTURES=1)
    need(atheris_hot_path.AC_RAW)
    need(atheris_hot_path.PCARS1)
    corpus = tmp_path / "corpus"
    seeds = atheris_hot_path.write_seeds(corpus)
    assert len(seeds) >= 15
    cmd = [
        sys.executable,
        str(HARNESS),
        str(corpus),
        "-seed=1",
        "-reload=0",  # nothing else writes the corpus: do not re-read it (keeps runs repeatable)
        f"-atheris_runs={RUNS}",
        "-max_len=6144",
        "-timeout=30",  # one input taking this long is a hang: a failure
        "-rss_limit_mb=2048",
        f"-artifact_prefix={tmp_path}/",
    ]
    started = time.monotonic()
    env = {**os.environ, "PYTHONHASHSEED": "0", "RT_FUZZ_WARNINGS": "error"}
    proc = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_S)
    elapsed = time.monotonic() - started
    report = _report(proc, tmp_path)
    assert proc.returncode == 0, report
    assert "Uncaught Python exception" not in proc.stdout + proc.stderr, report
    assert not list(tmp_path.glob("crash-*")), report
    assert f"seed corpus: files: {len(seeds)} " in proc.stderr, report  # every seed was loaded
    done = DONE.findall(proc.stderr)
    assert done, "no libFuzzer 'Done N runs' line: the fuzzer did not run\n" + report
    runs = int(done[-1][0])
    assert runs == RUNS, f"{runs} runs in {elapsed:.1f} s ({RUNS} expected)\n" + report
    print(f"atheris: {runs} runs in {elapsed:.1f} s ({runs / elapsed:.0f}/s)")
