"""The bundled starter voice: it ships in the package (under 15 MB), loads by name everywhere a checkpoint is
accepted, says what it is, is voiced and beats the untrained models on held-out sentences of a training voice,
and is what ``waveflow demo`` serves when no voice is given."""

from __future__ import annotations

import dataclasses
import importlib.resources
import shutil
import subprocess
import sys

import pytest
import torch

from waveflow import Vocoder, WaveGlow, load_model
from waveflow.checkpoints import LoadedCheckpoint, bundled_voices, load_checkpoint
from waveflow.corpus import make_corpus, select_sentences
from waveflow.jobs.eval import evaluate
from waveflow.metrics import MetricSet

HIGHER_IS_BETTER = {"pesq_wb", "stoi"}


def test_starter_ships_in_the_package_and_is_small():
    path = importlib.resources.files("waveflow.voices").joinpath("starter.pt")
    assert path.is_file() and "starter" in bundled_voices()
    assert path.stat().st_size < 15_000_000


def test_starter_loads_by_name_everywhere():
    model = load_model("starter")
    assert isinstance(model, WaveGlow) and model.config.prior == "source-filter"
    ck = load_checkpoint("starter")
    assert ck.meta["name"] == "starter" and ck.meta.get("trained_on")
    vocoder = Vocoder("starter")
    assert vocoder.vocode(torch.full((80, 5), -6.0)).shape == (5 * 256,)
    out = subprocess.run([sys.executable, "-m", "waveflow", "info", "starter"], capture_output=True, text=True,
                         check=True).stdout
    for what in ("trained_on", "train_minutes", "scores"):
        assert what in out, out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (apt-get install flite)")
def test_starter_is_voiced_and_beats_the_untrained_models_on_held_out_speech(tmp_path):
    """Copy synthesis of sentences the starter never trained on, spoken by one of its training voices (flite
    slt), by the starter and by two freshly initialised models of its shape: with its own prior
    (source-filter: the prior alone, which training starts from) the trained voice must beat on the NLL and
    every envelope metric, PESQ and STOI; with the spectral prior alone (the previous starter's floor: a
    whisper) it must beat on PESQ and be voiced where that is not (pyin's V/UV decisions, an independent
    reference). (On voices it never heard, and on low voices, it does not win everything: README, "What to
    expect".)"""
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    trained = set(select_sentences("flite-slt", 120, seed=0))  # what the starter's corpus held (see its meta)
    [folder] = make_corpus(tmp_path, voices=("flite-slt",), n_utterances=12, seed=99, progress=False)
    rows = [line.split("|") for line in (folder / "metadata.csv").read_text().splitlines()]
    files = [folder / "wavs" / f"{r[0]}.wav" for r in rows if r[1] not in trained][:4]
    assert len(files) == 4
    starter = load_checkpoint("starter", weight_norm=False)

    def fresh(prior: str) -> LoadedCheckpoint:
        torch.manual_seed(0)
        config = dataclasses.replace(starter.model.config, prior=prior)
        return LoadedCheckpoint(WaveGlow(config).remove_weight_norm(), starter.mel_config, f"untrained {prior}")

    scores = {}
    for name, ck in (("starter", starter), ("source-filter", fresh("source-filter")), ("spectral", fresh("spectral"))):
        result = evaluate(Vocoder(ck, sigma=1.0), files, checkpoint=ck, which=MetricSet(f0=name != "source-filter"),
                          griffin_lim_iters=0, progress=False)
        assert result["count"] == len(files), result["failures"]
        scores[name] = result["table"]["waveflow"]
    for metric in ("nll_bits", "stft_distance", "log_mel_l1", "mcd_db", "pesq_wb", "stoi"):
        trained_score, floor = scores["starter"][metric], scores["source-filter"][metric]
        better = trained_score > floor if metric in HIGHER_IS_BETTER else trained_score < floor
        assert better, f"{metric}: starter {trained_score:.4f} vs untrained source-filter {floor:.4f} ({scores})"
    assert scores["starter"]["pesq_wb"] > scores["spectral"]["pesq_wb"], scores
    # (pyin finds stray voiced frames in the whisper of this female voice: 0.64 measured; the starter 0.97.)
    assert scores["starter"]["vuv_f1"] > max(0.8, scores["spectral"]["vuv_f1"] + 0.2), scores


@pytest.mark.slow
def test_demo_without_arguments_serves_the_starter_voice(tmp_path):
    pytest.importorskip("gradio")
    gradio_client = pytest.importorskip("gradio_client")
    from demo_server import DemoServer

    with DemoServer([], tmp_path / "sandbox", timeout=240) as url:
        config = gradio_client.Client(url, verbose=False, analytics_enabled=False).config
    voices = [c["props"].get("value") for c in config["components"]
              if c.get("type") == "dropdown" and "voice" in str(c["props"].get("label", "")).lower()]
    assert voices and all(v == "starter" for v in voices), voices
