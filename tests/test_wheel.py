"""A plain install works: build the wheel, install it (not editable) into a temporary folder, and from a folder
outside the checkout run what a user runs first: ``waveflow train --config tiny``, ``waveflow quickstart``
past its config step, and ``waveflow demo`` until it answers over HTTP.

The wheel is installed with ``--no-deps --target`` and put first on ``PYTHONPATH``: its dependencies are the
ones this environment already has, and the test checks that the imported ``waveflow`` is the installed copy,
not the source tree (an editable install's finder comes after ``PYTHONPATH``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from demo_server import DemoServer

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """Environment variables under which ``python -m waveflow`` runs the wheel's copy."""
    base = tmp_path_factory.mktemp("wheel")
    dist, site = base / "dist", base / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True, text=True)
    wheel = next(dist.glob("waveflow-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("waveflow/configs/waveglow-tiny.yaml", "waveflow/corpus/sentences.txt", "waveflow/app/server.py"):
        assert needed in names, f"{needed} is not in the wheel"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import waveflow; print(waveflow.__file__)"], env=env,
                           cwd=base, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), f"imported {where}, not the installed wheel"
    return env


def waveflow(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "waveflow", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_train_with_a_bundled_config(installed, tmp_path, speech_wav_dir):
    out = waveflow(["train", "--config", "tiny", f"data.root={speech_wav_dir}", "train.run_dir=run",
                    "train.max_steps=2", "train.validate_every=0", "train.checkpoint_every=2", "train.tracker=none",
                    "train.batch_size=1", "data.val_fraction=0", "data.test_fraction=0", "train.progress=false"],
                   installed, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "run" / "model.pt").is_file()


@pytest.mark.skipif(not (shutil.which("flite") or shutil.which("espeak-ng")), reason="no offline TTS engine")
def test_quickstart_gets_past_its_config(installed, tmp_path):
    out = waveflow(["quickstart", "-o", "qs", "--steps", "1", "--utterances", "8", "--test-clips", "1", "--no-demo",
                    "--no-progress"], installed, tmp_path)
    assert "[2/4] train" in out.stderr, out.stderr[-3000:]
    assert "not found" not in out.stderr
    assert out.returncode == 0, out.stderr[-3000:]


def test_demo_answers(installed, tmp_path, monkeypatch):
    pytest.importorskip("gradio")
    from demo_server import make_voice

    voice = make_voice(tmp_path / "voice.pt", seed=0, name="Wheel")
    monkeypatch.setenv("PYTHONPATH", installed["PYTHONPATH"])
    with DemoServer(["--checkpoint", str(voice)], tmp_path / "sandbox", timeout=240) as url:
        import urllib.request

        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
