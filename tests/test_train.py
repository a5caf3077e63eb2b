"""Trainer tests on the offline voice corpus with the tiny config (CPU).

Runs go through the real entry points: ``python -m waveflow train`` in subprocesses (kill/resume, CLI errors,
``accelerate launch`` with two gloo processes), and :class:`waveflow.train.trainer.Trainer` in-process where a hook is
needed (bf16 autocast check, injected non-finite batches).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from demo_server import free_port

from waveflow.checkpoints import load_checkpoint
from waveflow.train.config import load_run_config
from waveflow.train.state import TrainingError, list_states
from waveflow.train.trainer import Trainer, run

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "waveglow-tiny.yaml"
BROKEN_ID = "BROKEN-0001"
# Small, fast runs: short segments, no progress bar, one vocoded clip.
FAST = ["data.segment_length=2048", "train.progress=false", "train.val_audio_clips=1"]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """30 flite (slt) utterances (LJSpeech layout) plus one corrupt wav listed in metadata.csv."""
    make_corpus = pytest.importorskip("waveflow.corpus").make_corpus
    cache = tmp_path_factory.getbasetemp() / "waveflow_train_corpus"
    try:
        [folder] = make_corpus(cache / "clean", voices=("flite-slt",), n_utterances=30, progress=False)
    except Exception as e:  # noqa: BLE001 - a missing TTS engine is an environment problem, not a failure
        pytest.skip(f"cannot make the offline voice corpus: {e}")
    out = cache / "with_broken"
    if not out.exists():
        shutil.copytree(folder, out)
        (out / "wavs" / f"{BROKEN_ID}.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(200))
        with open(out / "metadata.csv", "a", encoding="utf-8") as f:
            f.write(f"{BROKEN_ID}|broken|broken\n")
    return out


def train_cli(corpus: Path, run_dir: Path, *overrides: str, check: bool = True, **popen) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "waveflow", "train", "--config", str(TINY), f"data.root={corpus}",
           f"train.run_dir={run_dir}", *FAST, *overrides]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"training failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def metrics(run_dir: Path) -> dict[int, dict]:
    """step -> merged scalars from metrics.jsonl."""
    out: dict[int, dict] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        out.setdefault(row.pop("step"), {}).update(row)
    return out


def reset_accelerate() -> None:
    """In-process runs share Accelerate's singleton state; reset it so each run picks its own precision."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture
def fresh_accelerate():
    reset_accelerate()
    yield
    reset_accelerate()


# ---------------------------------------------------------------------------------------------- learning
@pytest.mark.slow
def test_tiny_run_lowers_validation_nll(corpus, tmp_path):
    run_dir = tmp_path / "run"
    train_cli(corpus, run_dir, "train.max_steps=60", "train.validate_every=60", "train.checkpoint_every=60")
    m = metrics(run_dir)
    start, end = m[0]["val/nll"], m[60]["val/nll"]
    print(f"tiny run validation NLL: step 0 {start:.4f}, step 60 {end:.4f} nats/sample")
    # Measured on this corpus: +0.94 -> -1.07 nats/sample after 50 steps (flite), similar for espeak.
    assert end < start - 1.2, (start, end)
    # Better than the best white Gaussian of each validation crop: the model learned more than the level.
    baseline = _gaussian_baseline(run_dir, 8192)
    assert end < baseline - 0.3, (end, baseline)
    # The model listens to its mel: the true mel explains the validation audio far better than a silent one.
    # (A model whose conditioning saturated, as the tiny config did before model.mel_shift, gains 0.000.)
    gain = _mel_gain_bits(run_dir)
    print(f"bits per sample gained from the true mel over a silent mel: {gain:.3f}")
    assert gain > 0.5, gain
    # Everything a run promises is there.
    for name in ("config.yaml", "split/train.txt", "split/val.txt", "split/test.txt", "model.pt", "train.log"):
        assert (run_dir / name).is_file(), name
    assert [p.name for _, p in list_states(run_dir / "checkpoints")] == ["step_000060"]
    assert load_checkpoint(run_dir / "model.pt").meta["step"] == 60
    logged = m[60]
    for key in ("loss/nll", "loss/bits_per_sample", "loss/nvidia", "nll/z", "nll/log_s", "nll/logdet_w",
                "other/grad_norm", "other/lr", "other/samples_per_s"):
        assert math.isfinite(logged[key]), key
    assert logged["loss/bits_per_sample"] == pytest.approx(logged["loss/nll"] / math.log(2) + 15, rel=1e-6)
    # The corrupt file is reported by name, once, and skipped.
    reports = [line for line in (run_dir / "train.log").read_text().splitlines() if f"{BROKEN_ID}.wav" in line]
    assert len(reports) == 1 and "unreadable" in reports[0], reports
    assert BROKEN_ID not in (run_dir / "split" / "train.txt").read_text()
    events = list((run_dir / "logs").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard events"


def _mel_gain_bits(run_dir: Path) -> float:
    """Mean over validation clips of NLL(silent mel) - NLL(true mel), in bits per sample."""
    from waveflow.audio import load_audio
    from waveflow.mel import MelSpectrogram

    ck = load_checkpoint(run_dir / "model.pt")
    model, mel_fn = ck.model.eval(), MelSpectrogram(ck.mel_config)
    gains = []
    for line in (run_dir / "split" / "val.txt").read_text().splitlines():
        audio, _ = load_audio(line.split("|", 1)[1], sample_rate=ck.mel_config.sample_rate)
        audio = torch.from_numpy(audio[: len(audio) // 8 * 8])[None].float()
        mel = mel_fn(audio)
        with torch.no_grad():
            true = model.nll(audio, mel).bits_per_sample.item()
            silent = model.nll(audio, torch.full_like(mel, ck.mel_config.log_floor)).bits_per_sample.item()
        gains.append(silent - true)
    return float(np.mean(gains))


def _gaussian_baseline(run_dir: Path, crop: int) -> float:
    from waveflow.train.data import ClipDataset, Utterance, probe

    utts = []
    for line in (run_dir / "split" / "val.txt").read_text().splitlines():
        utt_id, path = line.split("|")
        n, rate = probe(Path(path), 22050)
        utts.append(Utterance(utt_id, Path(path), n, rate))
    clips = ClipDataset(utts[:16], 22050, crop, 8)
    return float(np.mean([0.5 * math.log(2 * math.pi * math.e * clips[i]["audio"].double().var().item())
                          for i in range(len(clips))]))


# ---------------------------------------------------------------------------------------------- resume
@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(corpus, tmp_path):
    steps = ["train.max_steps=12", "train.checkpoint_every=3", "train.log_every=1", "train.validate_every=0",
             "train.keep_checkpoints=2", "train.ema_decay=0.9"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    cmd = [sys.executable, "-m", "waveflow", "train", "--config", str(TINY), f"data.root={corpus}", *FAST, *steps]
    reference = subprocess.Popen([*cmd, f"train.run_dir={whole}"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, cwd=ROOT)
    victim = subprocess.Popen([*cmd, f"train.run_dir={broken}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.time() + 300
    while not (broken / "checkpoints" / "step_000006").is_dir():
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)  # a real kill, mid-training: no clean-up code runs
    victim.wait()
    killed_at = max(metrics(broken))
    assert 6 <= killed_at < 12, killed_at
    resumed = subprocess.run([*cmd, f"train.run_dir={broken}", "--resume"], capture_output=True, text=True,
                             cwd=ROOT, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in (broken / "train.log").read_text()
    assert reference.wait(timeout=600) == 0

    a, b = metrics(whole), metrics(broken)
    assert sorted(a) == sorted(b) == list(range(1, 13))
    for step in a:  # bitwise: same data position, RNG, optimizer, scheduler and EMA state
        assert a[step]["loss/nll"] == b[step]["loss/nll"], step
        assert a[step]["other/grad_norm"] == b[step]["other/grad_norm"], step
    wa = load_checkpoint(whole / "model.pt").model.state_dict()
    wb = load_checkpoint(broken / "model.pt").model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [p.name for _, p in list_states(broken / "checkpoints")] == ["step_000009", "step_000012"]


# ---------------------------------------------------------------------------------------------- multi-process
@pytest.mark.slow
def test_two_process_data_parallel_on_cpu(corpus, tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("the accelerate command is not installed")
    run_dir = tmp_path / "ddp"
    # `accelerate launch --cpu` starts ONE process unless mpirun is set up; --multi_gpu starts torchrun, and with
    # train.cpu=true (the tiny config) Accelerate runs the processes on CPU with gloo.
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           "-m", "waveflow", "train", "--config", str(TINY), f"data.root={corpus}", f"train.run_dir={run_dir}",
           *FAST, "train.max_steps=6", "train.checkpoint_every=3", "train.validate_every=3", "train.log_every=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    # Different data on each process.
    shards = json.loads((run_dir / "data_shards.json").read_text())
    assert set(shards) == {"process_0", "process_1"}
    assert not set(shards["process_0"]) & set(shards["process_1"]), shards
    # Identical weights on both ranks at every save (the trainer also refuses to save diverged replicas).
    for _, state in list_states(run_dir / "checkpoints"):
        prints = json.loads((state / "trainer_state.json").read_text())["replica_fingerprints"]
        assert len(prints) == 2 and prints[0] == prints[1]
        assert {p.name for p in state.glob("random_states_*.pkl")} == {"random_states_0.pkl", "random_states_1.pkl"}
    # Only the main process writes logs, metrics, checkpoints and the exported model.
    assert len(list((run_dir / "logs").rglob("events.out.tfevents.*"))) <= 2  # scalars + hparams, one writer
    assert sorted(metrics(run_dir)) == list(range(7))
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len({line for line in lines}), "duplicate metric lines: more than one writer"
    reports = [line for line in (run_dir / "train.log").read_text().splitlines() if f"{BROKEN_ID}.wav" in line]
    assert len(reports) == 1, reports  # once, not once per process
    assert (run_dir / "model.pt").is_file()


# ---------------------------------------------------------------------------------------------- precision, guard
def _config(corpus: Path, run_dir: Path, *overrides: str):
    return load_run_config(TINY, [f"data.root={corpus}", f"train.run_dir={run_dir}", *FAST, "train.tracker=none",
                                  *overrides])


def test_bf16_autocast_on_cpu(corpus, tmp_path, fresh_accelerate):
    cfg = _config(corpus, tmp_path / "bf16", "train.mixed_precision=bf16", "train.max_steps=2",
                  "train.validate_every=2", "train.log_every=1", "train.val_max_items=2")
    trainer = Trainer(cfg)
    dtypes = []
    try:
        trainer.setup()
        end = trainer.model.flows[0].coupling.wn.in_layers[0]
        end.register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype))
        trainer.fit()
    finally:
        trainer.close()
    assert torch.bfloat16 in dtypes  # the WaveNet convs really ran in bf16
    m = metrics(tmp_path / "bf16")
    assert all(math.isfinite(m[s]["loss/nll"]) for s in (1, 2))
    assert math.isfinite(m[2]["val/nll"]) and m[2]["val/nll"] < m[0]["val/nll"]


class _Poisoned(Trainer):
    """Replaces the audio of the chosen optimizer steps by a non-finite batch."""

    poison_steps: frozenset[int] = frozenset()
    poison_from: int | None = None

    def batch_audio(self, batch):
        audio = batch["audio"]
        step = self.step + 1
        if step in self.poison_steps or (self.poison_from is not None and step >= self.poison_from):
            audio = audio.clone()
            audio[0, 100] = float("inf")
        return audio


def test_nonfinite_batch_is_skipped_and_reported(corpus, tmp_path, fresh_accelerate, caplog):
    run_dir = tmp_path / "nan"
    cfg = _config(corpus, run_dir, "train.max_steps=6", "train.validate_every=0", "train.log_every=1",
                  "train.checkpoint_every=6")
    trainer = _Poisoned(cfg)
    trainer.poison_steps = frozenset({3})
    try:
        trainer.setup()
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.fit()
    finally:
        trainer.close()
    m = metrics(run_dir)
    assert m[3]["other/skipped"] == 1.0 and not math.isfinite(m[3]["loss/nll"])
    assert all(m[s]["other/skipped"] == 0.0 for s in (1, 2, 4, 5, 6))
    assert m[6]["other/skipped_total"] == 1.0
    assert "non-finite" in (run_dir / "train.log").read_text()
    after = trainer.model.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it went on training


def test_too_many_nonfinite_steps_stop_with_last_good_state(corpus, tmp_path, fresh_accelerate):
    run_dir = tmp_path / "diverged"
    cfg = _config(corpus, run_dir, "train.max_steps=20", "train.validate_every=0", "train.checkpoint_every=2",
                  "train.max_nonfinite=3")
    trainer = _Poisoned(cfg)
    trainer.poison_from = 5
    with pytest.raises(TrainingError, match=r"3 non-finite steps in a row.*step_000004"):
        try:
            trainer.setup()
            trainer.fit()
        finally:
            trainer.close()
    states = list_states(run_dir / "checkpoints")
    assert states[-1][0] == 4  # no state is written during the non-finite streak
    # The latest state holds finite weights (skipped steps never touch them) and loads.
    ck = load_checkpoint(states[-1][1] / "model.pt")
    assert all(torch.isfinite(v).all() for v in ck.model.state_dict().values())


# ---------------------------------------------------------------------------------------------- config errors
@pytest.mark.parametrize(
    "override, message",
    [("train.learning_rate=1e-3", "unknown key train.learning_rate"),
     ("train.batch_size=four", "train.batch_size: expected an integer"),
     ],  # more cross-checks in test_data.py::test_run_config_cross_checks_name_the_key (no subprocess)
)
def test_bad_config_fails_before_training(corpus, tmp_path, override, message):
    run_dir = tmp_path / "never"
    result = train_cli(corpus, run_dir, override, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()  # nothing started


def test_warm_start_from_exported_model(corpus, tmp_path, fresh_accelerate):
    from waveflow.models import plain_state_dict

    first = tmp_path / "first"
    run(_config(corpus, first, "train.max_steps=2", "train.validate_every=0", "train.checkpoint_every=2"))
    reset_accelerate()
    cfg = _config(corpus, tmp_path / "second", "train.max_steps=1", "train.validate_every=0",
                  f"train.init_from={first / 'model.pt'}", "model.n_channels=32")
    trainer = Trainer(cfg)
    try:
        trainer.setup()
        assert trainer.model.config.n_channels == 16  # the shape comes from the file, not the config
        assert trainer.step == 0  # fresh optimizer and step count
        start, saved = plain_state_dict(trainer.model), plain_state_dict(load_checkpoint(first / "model.pt").model)
        assert all(torch.allclose(start[k], saved[k], atol=1e-6) for k in saved)
        trainer.fit()
    finally:
        trainer.close()
    assert (tmp_path / "second" / "model.pt").is_file()


def test_time_limit_stops_with_a_state_and_an_exported_model(corpus, tmp_path, fresh_accelerate):
    """``train.max_minutes`` ends the run early (here after the first step) like a finished run: a state
    to resume from and the exported model; running again continues from that step."""
    run_dir = tmp_path / "timed"
    run(_config(corpus, run_dir, "train.max_steps=50", "train.max_minutes=0.0001", "train.validate_every=0",
                "train.checkpoint_every=50"))
    assert [step for step, _ in list_states(run_dir / "checkpoints")] == [1]
    assert load_checkpoint(run_dir / "model.pt").model is not None
    reset_accelerate()
    run(_config(corpus, run_dir, "train.max_steps=2", "train.validate_every=0", "train.checkpoint_every=50"))
    assert [step for step, _ in list_states(run_dir / "checkpoints")] == [1, 2]
