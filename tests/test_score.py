"""``waveflow score``: planted defects are found with the right reason, clean clips are not, clips that are not
speech are unlike the rest, bits per sample is the model's exact NLL, bad files never stop the job, reruns
and shards resume, ``data.exclude`` leaves the flagged clips out, and training names its worst validation clips.

The corpus is made here (four espeak-ng voices, 40 clips); one defect kind is planted in each of 13 of its
clips (:mod:`scripts/plant_defects.py`), every parameter drawn at random within a wide range (seeded: set
``WAVEFLOW_SCORE_SEED`` to draw others). The model is a small untrained WaveGlow with the spectral prior: an
exact, mel-conditioned density, and fast.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from waveflow import WaveGlow, WaveGlowConfig, save_model
from waveflow.cli.main import main
from waveflow.mel import MelConfig, MelSpectrogram

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
VOICES = ("espeak-en-us", "espeak-en-gb-f", "espeak-en-gb-scotland", "espeak-en-us-nyc")
SEED = int(os.environ.get("WAVEFLOW_SCORE_SEED", "18"))


def _plant_module():
    spec = importlib.util.spec_from_file_location("plant_defects", SCRIPTS / "plant_defects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plant_defects = _plant_module()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A small untrained WaveGlow with the spectral prior, on 40 mel bands (the upsampler is most of the work)."""
    torch.manual_seed(0)
    mel = MelConfig(n_mels=40)
    cfg = WaveGlowConfig(n_mels=40, n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=2,
                         n_channels=16, kernel_size=3, hop_length=256, prior="spectral", prior_mel=mel)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(WaveGlow(cfg), path, mel, {"name": "tiny-untrained"})
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict]:
    """``(LJSpeech folder, {path: (kind, drawn parameters)})``: 40 clips, 13 of them planted."""
    make_corpus = pytest.importorskip("waveflow.corpus").make_corpus
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (apt)")
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root, voices=VOICES, n_utterances=10, seed=0, progress=False)
    ids = [line.split("|")[0] for line in (root / "metadata.csv").read_text().splitlines()]
    rng = np.random.default_rng(SEED)
    kinds = list(plant_defects.KINDS) + list(plant_defects.NOT_SPEECH)
    truth = {}
    for kind, index in zip(kinds, rng.permutation(len(ids))):
        path = root / "wavs" / f"{ids[index]}.wav"
        audio, rate = sf.read(str(path))
        audio, rate, info = plant_defects.plant(kind, audio, rate, rng)
        sf.write(str(path), audio, rate, subtype="PCM_16")
        truth[str(path)] = (kind, info)
    return root, truth


@pytest.fixture(scope="module")
def report(planted, checkpoint, tmp_path_factory) -> tuple[Path, dict]:
    """The report of ``waveflow score CORPUS`` (the LJSpeech folder: the clips metadata.csv lists)."""
    out = tmp_path_factory.mktemp("report") / "score"
    code = main(["score", str(planted[0]), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress"])
    assert code == 0
    return out, json.loads((out / "score.json").read_text())


def _describe(truth: dict, items: dict) -> str:
    return "\n".join(f"{kind} {info}: {items[path]['reasons']}" for path, (kind, info) in truth.items())


def test_every_planted_defect_is_flagged_with_its_reason(planted, report):
    _, truth = planted
    items = {it["path"]: it for it in report[1]["clips"]}
    assert report[1]["count"] == 40 and set(truth) <= set(items)
    for path, (kind, info) in truth.items():
        if kind in plant_defects.NOT_SPEECH:
            continue
        word = plant_defects.KINDS[kind]
        assert items[path]["flagged"] and any(word in r for r in items[path]["reasons"]), \
            f"{kind} {info} in {Path(path).name}: {items[path]['reasons']}\n{_describe(truth, items)}"
    clean = [it for path, it in items.items() if path not in truth]
    false_alarms = [(Path(it["path"]).name, it["reasons"]) for it in clean if it["flagged"]]
    assert len(false_alarms) <= len(clean) / 10, false_alarms


def test_clips_that_are_not_speech_are_unlike_the_rest(planted, report):
    items = {it["path"]: it for it in report[1]["clips"]}
    for path, (kind, info) in planted[1].items():
        if kind in plant_defects.NOT_SPEECH:
            assert any(r.startswith("not like the rest") for r in items[path]["reasons"]), (kind, info, items[path])


def test_planted_places_are_among_the_surprising_times(planted, report):
    items = {it["path"]: it for it in report[1]["clips"]}
    for path, (kind, info) in planted[1].items():
        for start, end in info.get("times", ()):
            spans = items[path]["times"]
            assert any(a <= end + 0.01 and start - 0.01 <= b for a, b in spans), (kind, (start, end), spans)


def test_report_files(report):
    out, data = report
    clips = data["clips"]
    assert data["model"]["name"] == "tiny-untrained" and data["complete"] and not data["failures"]
    keys = {"path", "bits_per_sample", "flagged", "reasons", "times", "prior_bits"}
    assert all(keys <= set(it) for it in clips)
    flags = [it["flagged"] for it in clips]
    assert flags == sorted(flags, reverse=True)  # the flagged first: most suspect first
    suspicion = [it["suspicion"] for it in clips if it["flagged"]]
    assert suspicion == sorted(suspicion, reverse=True)
    rows = (out / "score.csv").read_text().splitlines()
    assert len(rows) == 1 + len(clips) and rows[0].startswith("path,flagged,bits_per_sample")
    excluded = (out / "exclude.txt").read_text().splitlines()
    assert excluded == [it["path"] for it in clips if it["flagged"]]
    if importlib.util.find_spec("matplotlib"):
        assert (out / "score.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_bits_per_sample_is_the_models_exact_nll(report, checkpoint):
    assert_bits_are_the_models_nll(report[1]["clips"][-3:], checkpoint)  # clean clips at the model's rate


def assert_bits_are_the_models_nll(items: list[dict], checkpoint) -> None:
    """Each scored clip's ``bits_per_sample`` and ``prior_bits`` equal ``model.nll`` computed directly on its
    file (clips at the model's rate: no resampling in between). Also used by test_model_seam for a WaveFlow."""
    from waveflow.checkpoints import load_checkpoint

    ck = load_checkpoint(checkpoint, weight_norm=False)
    model, mel_fn, hop = ck.model.eval(), MelSpectrogram(ck.mel_config), ck.mel_config.hop_length
    for item in items:
        audio, rate = sf.read(item["path"], dtype="float32")
        assert rate == ck.mel_config.sample_rate
        x = torch.from_numpy(audio[: len(audio) // hop * hop])[None]
        with torch.no_grad():
            out = model.nll(x, mel_fn(x), sigma=1.0)
        assert item["bits_per_sample"] == pytest.approx(float(out.bits_per_sample), abs=2e-4)
        assert item["prior_bits"] == pytest.approx(float(out.prior) / np.log(2), abs=2e-4)


# ---------------------------------------------------------------------------------------------- bad files, resuming
@pytest.fixture
def mixed_folder(planted, tmp_path) -> Path:
    """Three good clips (one of them stereo) and the bad files a corpus can hold."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    clean = [p for p in sorted((planted[0] / "wavs").glob("*.wav")) if str(p) not in planted[1]]
    for p in clean[:2]:
        shutil.copy(p, folder / p.name)
    audio, rate = sf.read(str(clean[2]))
    sf.write(str(folder / "stereo.wav"), np.stack([audio, 0.5 * audio], 1), rate, subtype="PCM_16")  # mixed down
    hot = 1.5 * audio / np.abs(audio).max()
    sf.write(str(folder / "hot.wav"), hot.astype(np.float32), rate, subtype="FLOAT")  # peak 1.5: clips as PCM
    (folder / "garbage.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    sf.write(str(folder / "empty.wav"), np.zeros(0), 22050, subtype="PCM_16")
    sf.write(str(folder / "nan.wav"), np.full(22050, np.nan, dtype=np.float32), 22050, subtype="FLOAT")
    sf.write(str(folder / "tiny.wav"), np.zeros(40), 22050, subtype="PCM_16")
    sf.write(str(folder / "loud.wav"), np.full(22050, 1e6, dtype=np.float32), 22050, subtype="FLOAT")
    return folder


def test_bad_files_are_reported_and_reruns_resume(mixed_folder, checkpoint, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["score", str(mixed_folder), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress",
            "--no-picture"]
    assert main(args) == 1  # some inputs failed; the others are scored
    assert "4 clips are too few to tell what is unlike the rest" in capsys.readouterr().out
    data = json.loads((out / "score.json").read_text())
    assert data["count"] == 4 and not data["complete"]
    clips = {Path(it["path"]).name: it for it in data["clips"]}
    assert clips["stereo.wav"]["facts"]["channels"] == 2
    assert clips["hot.wav"]["flagged"] and "over full scale: peak 1.50" in clips["hot.wav"]["reasons"][0]
    assert not any("full scale" in r for name, it in clips.items() if name != "hot.wav" for r in it["reasons"])
    reasons = {Path(f["path"]).name: f["reason"] for f in data["failures"]}
    assert set(reasons) == {"garbage.wav", "empty.wav", "nan.wav", "tiny.wav", "loud.wav"}, reasons
    assert "NaN" in reasons["nan.wav"] and "no audio" in reasons["empty.wav"] and "short" in reasons["tiny.wav"]
    records = sorted(p.name for p in (out / "clips").glob("*.json"))
    assert len(records) == 4
    before = {p: p.stat().st_mtime_ns for p in (out / "clips").glob("*.json")}
    capsys.readouterr()
    assert main(args) == 1  # again: the good ones are skipped, the bad ones tried and reported again
    err = capsys.readouterr().err
    assert "0 clip records written, 4 skipped" in err and "failed: " in err
    assert before == {p: p.stat().st_mtime_ns for p in (out / "clips").glob("*.json")}
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name == ".waveflow-tmp" and any(p.iterdir())]


def test_shards_make_one_report(planted, checkpoint, tmp_path):
    clips = sorted(p for p in (planted[0] / "wavs").glob("*.wav") if str(p) not in planted[1])[:4]
    folder = tmp_path / "four"
    folder.mkdir()
    for p in clips:
        shutil.copy(p, folder / p.name)
    out = tmp_path / "report"
    base = ["score", str(folder), "--checkpoint", str(checkpoint), "-o", str(out), "--no-progress", "--no-picture"]
    assert main([*base, "--shard", "0/2"]) == 0
    first = json.loads((out / "score.json").read_text())
    assert first["count"] == 2 and first["not_scored"] == 2 and not first["complete"]
    assert main([*base, "--shard", "1/2"]) == 0
    assert json.loads((out / "score.json").read_text())["complete"]
    other = tmp_path / "other.pt"
    torch.manual_seed(1)
    save_model(WaveGlow(WaveGlowConfig(n_mels=40, n_flows=2, n_group=8, n_early_every=4, n_layers=1, n_channels=8,
                                       hop_length=256, prior="spectral", prior_mel=MelConfig(n_mels=40))),
               other, MelConfig(n_mels=40), {"name": "other"})
    assert main(["score", str(folder), "--checkpoint", str(other), "-o", str(out), "--no-progress"]) == 1  # refused


# ---------------------------------------------------------------------------------------------- training
def test_train_leaves_out_the_excluded_clips(planted, report, tmp_path):
    from waveflow.train.config import DataConfig
    from waveflow.train.data import scan

    root = planted[0]
    listed = (report[0] / "exclude.txt").read_text().splitlines()
    excluded = tmp_path / "lists" / "exclude.txt"  # relative lines: to the list's own folder (or the current one)
    excluded.parent.mkdir()
    lines = [os.path.relpath(p, excluded.parent) for p in listed[1:]] + listed[:1]
    excluded.write_text("\n".join([*lines, "# a comment", "", "not/there.wav"]) + "\n")
    corpus = scan(DataConfig(root=str(root), exclude=str(excluded), val_fraction=0.1, test_fraction=0.1), 22050, 4096)
    kept = {u.path.resolve() for split in corpus.splits.values() for u in split}
    assert len(corpus.skipped["listed in data.exclude"]) == len(listed)
    assert not kept & {Path(p).resolve() for p in listed}
    assert len(kept) == 40 - len(listed)


def test_training_names_its_worst_validation_clips(planted, tmp_path):
    pytest.importorskip("accelerate")
    from accelerate.state import AcceleratorState, GradientState

    from waveflow.train.config import load_run_config
    from waveflow.train.trainer import Trainer

    root, truth = planted
    noise = next(p for p, (kind, _) in truth.items() if kind == "noise")
    clean = [str(p) for p in sorted((root / "wavs").glob("*.wav")) if str(p) not in truth][:6]
    val = tmp_path / "val.txt"
    val.write_text("\n".join([*clean, noise]) + "\n")
    run = tmp_path / "run"
    cfg = load_run_config(Path(__file__).resolve().parent.parent / "configs" / "waveglow-tiny.yaml", [
        "model.prior=spectral", f"data.root={root}", f"data.val_list={val}", f"train.run_dir={run}",
        "data.segment_length=2048",
        "data.val_segment_length=0", "train.progress=false", "train.val_audio_clips=0", "train.max_steps=1",
        "train.validate_every=1", "train.checkpoint_every=1"])
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    trainer = Trainer(cfg)
    try:
        trainer.setup()
        trainer.fit()
    finally:
        trainer.close()
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    worst = {r["step"]: r["val/worst_clips"] for r in rows if "val/worst_clips" in r}
    assert sorted(worst) == [0, 1]
    for clips in worst.values():
        bits = [c["bits_per_sample"] for c in clips]
        assert len(clips) == 5 and bits == sorted(bits, reverse=True)
        assert clips[0]["id"].endswith(Path(noise).stem)  # the clip that is noise costs the most bits
    assert "worst validation clips" in (run / "train.log").read_text()
    events = b"".join(p.read_bytes() for p in (run / "logs").rglob("events.out.tfevents.*"))
    assert b"val/worst_clips" in events
