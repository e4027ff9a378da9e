"""The command line: version, help, and the generated layout docs."""

from __future__ import annotations

import subprocess
import sys

import rt
from rt.cli import main


def test_version_and_help_via_python_m():
    out = subprocess.run([sys.executable, "-m", "rt", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"rusty-telemetry {rt.__version__}"
    help_text = subprocess.run([sys.executable, "-m", "rt", "--help"], capture_output=True, text=True, check=True).stdout
    assert "usage: rusty-telemetry" in help_text and "layouts" in help_text


def test_layouts_prints_tables(capsys):
    assert main(["layouts", "ac_car_info"]) == 0
    assert "`speed_Kmh`" in capsys.readouterr().out
    assert main(["layouts", "no_such_kind"]) == 2
    assert "unknown packet kind" in capsys.readouterr().err
