"""scripts/bench_synth.py runs (synth against vocode on the same mels) and prints the shared JSON record.
A benchmark, not a timed test: only the shape of its report is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_synth.py"
pytestmark = pytest.mark.timeout(300)


def test_bench_synth_reports_synth_beside_vocode(tmp_path):
    out = tmp_path / "synth.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--modes", "vocode,synth,cli-synth", "--limit", "2",
                           "--seconds", "0.5", "--rate", "16000", "--repeats", "1", "--warmup", "0", "--json", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=280, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == report
    assert {"figure", "config", "device", "device_name", "dtype", "torch", "waveflow"} <= set(report)
    assert report["benchmark"] == "bench_synth" and report["config"] == "starter"
    assert report["clips"] == 2 and report["clip_rate"] == 16000 and report["model_rate"] == 22050
    assert report["audio_seconds"] == pytest.approx(1.0, abs=0.05)  # 2 x 0.5 s, whole mel frames
    modes = {row["mode"]: row for row in report["modes"]}
    assert list(modes) == ["vocode", "synth", "cli-synth"]
    assert all(row["rtf"] > 0 and len(row["runs"]) == 1 for row in modes.values())
    assert modes["synth"]["vs_vocode"] == pytest.approx(modes["synth"]["rtf"] / modes["vocode"]["rtf"])
    assert report["figure"]["value"] == pytest.approx(modes["synth"]["vs_vocode"])
    assert "vs_cli-vocode" not in modes["cli-synth"]  # no cli-vocode run to compare with
    assert report["omp_wait_policy"] == "PASSIVE" and len(report["load_average_before"]) == 3


def test_bench_synth_refuses_an_unknown_mode(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--modes", "vocode,turbo"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "unknown mode(s) turbo" in proc.stderr
