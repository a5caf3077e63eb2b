"""The code passes ruff with the project's settings (pyproject.toml), so style drift fails CI, not review."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (it is in the dev extra)")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                           "waveflow", "scripts", "tests"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
