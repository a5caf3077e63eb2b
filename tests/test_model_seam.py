"""One model seam (issue 17): every part of the toolkit runs either model family through the registry.

Own files record the family (version 2) and version-1 files load as WaveGlows unchanged; run configs pick the
family by ``model.type``; ``train`` (with exact resume), ``vocode``, ``synth``, ``eval``, ``info`` and the demo's
handlers run a WaveFlow checkpoint; the kernels say they are WaveGlow-only. References: the model's own
outputs before saving, a run that was not interrupted, the files each command writes.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import test_train
import torch
from conftest import randomize_ends
from test_score import assert_bits_are_the_models_nll
from test_train import FAST, metrics, reset_accelerate

from waveflow import (
    MelConfig,
    MelSpectrogram,
    Vocoder,
    WaveFlow,
    WaveFlowConfig,
    WaveGlow,
    WaveGlowConfig,
    save_model,
)
from waveflow.checkpoints import CheckpointError, load_checkpoint
from waveflow.cli import main as cli_main
from waveflow.config import ConfigError
from waveflow.models import MODEL_TYPES, build_model, model_type, receptive_field_frames
from waveflow.train.config import load_run_config
from waveflow.train.trainer import run

pytestmark = pytest.mark.usefixtures("torch_single_thread")
corpus = test_train.corpus
fresh_accelerate = test_train.fresh_accelerate

WAVEFLOW = WaveFlowConfig(n_flows=2, n_height=8, n_layers=2, n_channels=8, prior="source-filter", mel_shift=6.0)
WAVEGLOW = WaveGlowConfig(n_flows=2, n_group=8, n_early_every=2, n_early_size=2, n_layers=2, n_channels=8)


def random_model(cfg, seed=0):
    torch.manual_seed(seed)
    return randomize_ends(build_model(cfg), std=0.05, seed=seed).eval()


def speech(seconds=1.0, seed=0) -> torch.Tensor:
    from conftest import voiced

    return torch.from_numpy(voiced(int(seconds * 22050) // 256 * 256, 22050, seed=seed)).float()


# ------------------------------------------------------------------------------------------- files
@pytest.mark.parametrize("cfg", [WAVEGLOW, WAVEFLOW], ids=["waveglow", "waveflow"])
def test_save_load_round_trip_records_the_model_type(cfg, tmp_path):
    model = random_model(cfg)
    path = save_model(model, tmp_path / "m.pt", meta={"name": "x"})
    payload = torch.load(path, weights_only=True)
    assert payload["version"] == 2 and payload["model_type"] == cfg.type
    ck = load_checkpoint(path)
    assert type(ck.model) is type(model) and model_type(ck.model) == cfg.type
    audio = speech()[None]
    mel = MelSpectrogram()(audio)
    with torch.no_grad():
        torch.testing.assert_close(ck.model(audio, mel)[0], model(audio, mel)[0], atol=1e-5, rtol=0)


def test_version_1_files_load_as_waveglow_unchanged(tmp_path):
    model = random_model(WAVEGLOW)
    payload = torch.load(save_model(model, tmp_path / "v2.pt"), weights_only=True)
    payload["version"] = 1
    del payload["model_type"]
    del payload["model_config"]["type"]  # what every file written before there were two families holds
    torch.save(payload, tmp_path / "v1.pt")
    ck = load_checkpoint(tmp_path / "v1.pt")
    assert isinstance(ck.model, WaveGlow) and ck.model.config == WAVEGLOW
    mel = MelSpectrogram()(speech()[None])
    torch.testing.assert_close(Vocoder(ck).vocode(mel[0], seed=1), Vocoder(model).vocode(mel[0], seed=1))


@pytest.mark.parametrize("change, message", [
    ({"model_type": "wavenet"}, "unknown model type 'wavenet'"),
    ({"model_type": "waveflow"}, "model config of type 'waveglow'"),
    ({"version": 3}, "newer than this waveflow reads"),
])
def test_wrong_model_types_are_refused_by_name(tmp_path, change, message):
    payload = torch.load(save_model(random_model(WAVEGLOW), tmp_path / "m.pt"), weights_only=True)
    payload.update(change)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "bad.pt")


def test_run_configs_pick_the_family_by_type():
    assert set(MODEL_TYPES) == {"waveglow", "waveflow"}
    cfg = load_run_config("waveflow-tiny", ["data.root=x", "train.run_dir=y", "model.prior=spectral"])
    assert isinstance(cfg.model, WaveFlowConfig) and cfg.model.prior == "spectral"
    assert cfg.model.prior_mel == cfg.mel
    assert isinstance(load_run_config("tiny").model, WaveGlowConfig)
    with pytest.raises(ConfigError, match="unknown key model.n_group .*n_height"):  # WaveFlow's keys are listed
        load_run_config("waveflow-tiny", ["model.n_group=8"])
    with pytest.raises(ConfigError, match="model.type: expected one of"):
        load_run_config("tiny", ["model.type=wavenet"])
    for name in ("waveflow-tiny", "waveflow-64", "waveflow-128"):
        assert isinstance(load_run_config(name).model, WaveFlowConfig)


def test_kernels_are_waveglow_only_and_say_so():
    model = random_model(WAVEFLOW)
    assert Vocoder(model).backend == "eager"
    with pytest.raises(ValueError, match="WaveGlow-only"):
        Vocoder(model, kernels="torch")


def test_vocoder_chunks_and_batches_a_waveflow_exactly():
    model = random_model(WAVEFLOW)
    mel = MelSpectrogram()(speech(1.5))[:, :-1]
    whole = Vocoder(model, chunk_frames=10**6).vocode(mel, seed=2)
    rf = receptive_field_frames(model.config)
    assert rf > model.config.prior_context_frames
    torch.testing.assert_close(Vocoder(model, chunk_frames=23).vocode(mel, seed=2), whole, atol=1e-5, rtol=0)
    v = Vocoder(model)
    alone = [v.vocode(m, seed=s) for m, s in ((mel, 2), (mel[:, :40], 3))]
    for got, want in zip(v.vocode([mel, mel[:, :40]], seed=[2, 3]), alone):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------- commands
@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """A WaveFlow trained 4 steps without a stop, then the same run stopped at 2 and resumed to 4."""
    base = tmp_path_factory.mktemp("waveflow_runs")
    args = [f"data.root={corpus}", *FAST, "train.tracker=none", "train.validate_every=0", "train.log_every=1",
            "train.checkpoint_every=2", "train.batch_size=2", "model.n_channels=8", "model.n_layers=2",
            "model.prior=source-filter"]
    runs = {}
    for name, steps in (("whole", [4]), ("resumed", [2, 4])):
        for n in steps:
            reset_accelerate()
            run(load_run_config("waveflow-tiny", [*args, f"train.run_dir={base / name}", f"train.max_steps={n}"]))
        runs[name] = base / name
    reset_accelerate()
    return runs


def test_waveflow_training_resumes_bitwise(trained):
    a, b = metrics(trained["whole"]), metrics(trained["resumed"])
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert a[step]["loss/nll"] == b[step]["loss/nll"] and a[step]["other/grad_norm"] == b[step]["other/grad_norm"]
    wa, wb = (load_checkpoint(d / "model.pt").model.state_dict() for d in trained.values())
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_every_command_runs_a_waveflow_checkpoint(trained, corpus, tmp_path, capsys):
    ckpt = str(trained["whole"] / "model.pt")
    assert cli_main(["info", ckpt]) == 0
    assert "model type   waveflow" in capsys.readouterr().out
    clips = sorted((corpus / "wavs").glob("FLITE-*.wav"))[:2]
    mels = tmp_path / "mels"
    assert cli_main(["mel", *map(str, clips), "-o", str(mels), "--no-progress"]) == 0
    assert cli_main(["vocode", str(mels), "-o", str(tmp_path / "voc"), "--checkpoint", ckpt, "--no-progress"]) == 0
    assert len(list((tmp_path / "voc").glob("*.wav"))) == 2
    assert cli_main(["synth", *map(str, clips), "-o", str(tmp_path / "syn"), "--checkpoint", ckpt,
                     "--no-progress"]) == 0
    for clip in clips:
        assert sf.info(str(tmp_path / "syn" / clip.name)).frames == sf.info(str(clip)).frames
    report = tmp_path / "eval.json"
    assert cli_main(["eval", str(clips[0]), "--checkpoint", ckpt, "--no-pesq", "--no-stoi", "--no-f0",
                     "--griffin-lim-iters", "0", "--json", str(report), "--no-progress"]) == 0
    assert np.isfinite(json.loads(report.read_text())["table"]["waveflow"]["nll_bits"])
    scored = tmp_path / "score"
    assert cli_main(["score", *map(str, clips), "-o", str(scored), "--checkpoint", ckpt, "--no-progress"]) == 0
    assert_bits_are_the_models_nll(json.loads((scored / "score.json").read_text())["clips"], ckpt)


def test_demo_handlers_run_a_waveflow_and_show_its_pitch(trained, corpus, tmp_path):
    pytest.importorskip("gradio")
    from waveflow.app.handlers import Handlers, Settings
    from waveflow.app.voices import Voice, VoiceBank

    bank = VoiceBank([Voice("wf", trained["whole"] / "model.pt")])
    handlers = Handlers(bank, Settings(outputs=tmp_path))
    clip = str(min((corpus / "wavs").glob("FLITE-*.wav")))
    summary, *_ = handlers.inside_flow(clip, "wf", 0)
    assert "bits per 16-bit sample" in summary and "pitch predictor" in summary
    _original, vocoded, *_ = handlers.copy_synthesis(clip, "wf", 1.0, 0.0, 0)
    assert sf.info(vocoded).frames > 0


def test_weight_count_guards_both_families():
    for cfg in (WAVEGLOW, WAVEFLOW, dataclasses.replace(WAVEFLOW, prior="none")):
        model = build_model(cfg).remove_weight_norm()
        assert cfg.weight_count() == sum(p.numel() for p in model.parameters())
    assert isinstance(build_model(WAVEFLOW), WaveFlow)
    assert MelConfig().n_mels == WAVEFLOW.n_mels


def test_a_run_saved_before_model_types_existed_resumes(corpus, tmp_path, fresh_accelerate):
    """States written by earlier waveflows hold a config without ``model.type``: that is a WaveGlow run, and
    resuming it must not be refused as a change of family."""
    from test_train import _config

    run_dir = tmp_path / "run"
    args = ["train.validate_every=0", "train.log_every=1", "train.checkpoint_every=1"]
    run(_config(corpus, run_dir, *args, "train.max_steps=1"))
    state = run_dir / "checkpoints" / "step_000001" / "trainer_state.json"
    saved = json.loads(state.read_text())
    del saved["config"]["model"]["type"]
    state.write_text(json.dumps(saved))
    reset_accelerate()
    run(_config(corpus, run_dir, *args, "train.max_steps=2"))
    assert sorted(metrics(run_dir)) == [1, 2]
