"""The LJSpeech recipe, stages 1-5 (prepare -> train -> export -> vocode -> evaluate), on the offline corpus
with the tiny config. Stage 0 (the 2.6 GB download) is never run in tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from waveflow.checkpoints import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "recipes" / "ljspeech" / "run.sh"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    make_corpus = pytest.importorskip("waveflow.corpus").make_corpus
    try:
        [folder] = make_corpus(tmp_path_factory.getbasetemp() / "waveflow_train_corpus" / "clean",
                               voices=("flite-slt",), n_utterances=30, progress=False)
    except Exception as e:  # noqa: BLE001 - a missing TTS engine is an environment problem
        pytest.skip(f"cannot make the offline voice corpus: {e}")
    return folder


def _has_command(name: str) -> bool:
    result = subprocess.run([sys.executable, "-m", "waveflow", name, "--help"], capture_output=True, cwd=ROOT, check=False)
    return result.returncode == 0


@pytest.mark.slow
def test_recipe_stages_1_to_5_on_the_offline_corpus(corpus, tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash is not available")
    stop = 5
    for stage, command in ((4, "vocode"), (5, "eval")):
        if not _has_command(command):  # written by another engineer; the recipe calls it through the CLI
            stop = min(stop, stage - 1)
    exp = tmp_path / "exp"
    train_args = ("train.max_steps=4 train.checkpoint_every=4 train.validate_every=0 train.progress=false "
                  "data.segment_length=2048")
    cmd = ["bash", str(RUN_SH), "--stage", "1", "--stop-stage", str(stop), "--data-root", str(corpus),
           "--exp", str(exp), "--config", str(ROOT / "configs" / "waveglow-tiny.yaml"), "--train-args", train_args,
           "--name", "tiny-test", "--device", "cpu",
           "--eval-args", "--limit 2 --no-pesq --no-f0 --griffin-lim-iters 0"]
    env = {**os.environ, "WAVEFLOW": f"{sys.executable} -m waveflow"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    split = exp / "train" / "split"
    test_ids = [line.split("|")[0] for line in (split / "test.txt").read_text().splitlines()]
    assert test_ids and not set(test_ids) & {line.split("|")[0] for line in (split / "train.txt").read_text().splitlines()}
    ck = load_checkpoint(exp / "model.pt")
    assert ck.name == "tiny-test" and ck.meta["step"] == 4
    if stop < 4:
        pytest.skip("stages 4-5 not run: `waveflow vocode`/`waveflow eval` are not available yet")
    vocoded = sorted((exp / "test" / "vocoded").rglob("*.wav"))
    assert [p.stem for p in vocoded] == sorted(test_ids)
    if stop < 5:
        pytest.skip("stage 5 not run: `waveflow eval` is not available yet")
    report = json.loads((exp / "eval.json").read_text())
    assert report  # the metrics module owns the layout; the recipe only has to produce it
