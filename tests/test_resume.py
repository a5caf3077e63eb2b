"""Training runs that never lose work and resume safely (issues 13 and 12): settings given on resume, stale
exports, Ctrl-C/SIGTERM, bad clips, split lists, and training states that never run code.

In-process runs of the tiny config on the offline voice corpus (CPU), through :func:`waveflow.train.trainer.run`
or the ``waveflow`` command; one subprocess where a real signal from outside matters.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import test_train
import torch
from test_train import BROKEN_ID, FAST, ROOT, TINY, _config, metrics, reset_accelerate

from waveflow.checkpoints import load_checkpoint
from waveflow.cli import main as cli_main
from waveflow.train.state import StateError, TrainingError, list_states
from waveflow.train.trainer import Trainer, run

QUICK = ["train.validate_every=0", "train.log_every=1", "train.tracker=none"]
corpus = test_train.corpus  # fixtures shared with test_train: the offline voice corpus (made once a session)
fresh_accelerate = test_train.fresh_accelerate


def quick(corpus, run_dir, *overrides):
    return _config(corpus, run_dir, *QUICK, *overrides)


# ---------------------------------------------------------------------------------------------- settings on resume
def test_settings_given_on_resume_take_effect_or_are_refused(corpus, tmp_path, fresh_accelerate):
    run_dir = tmp_path / "run"
    run(quick(corpus, run_dir, "train.max_steps=2", "train.checkpoint_every=2", "train.lr=1e-3"))
    assert metrics(run_dir)[2]["other/lr"] == pytest.approx(1e-3)
    reset_accelerate()
    # The divergence message's advice: lower train.lr and resume. It is used, and so are the new limits.
    run(quick(corpus, run_dir, "train.max_steps=4", "train.checkpoint_every=2", "train.lr=1e-5"))
    m = metrics(run_dir)
    assert sorted(m) == [1, 2, 3, 4]
    assert m[3]["other/lr"] == pytest.approx(1e-5) and m[4]["other/lr"] == pytest.approx(1e-5)
    assert "resuming with train.lr = 1e-05 (was 0.001)" in (run_dir / "train.log").read_text()
    reset_accelerate()
    before = (run_dir / "config.yaml").read_text()
    with pytest.raises(TrainingError) as e:
        run(quick(corpus, run_dir, "train.max_steps=6", "train.batch_size=2", "model.n_channels=8", "train.lr=1e-5"))
    text = str(e.value)
    assert "cannot change when resuming" in text and "train.batch_size 4 -> 2" in text
    assert "model.n_channels 16 -> 8" in text and "train.lr" not in text.split("What may change")[0]
    assert (run_dir / "config.yaml").read_text() == before  # the refused config was not recorded
    assert max(metrics(run_dir)) == 4


def test_kill_during_export_then_rerun_leaves_a_fresh_model(corpus, tmp_path, fresh_accelerate):
    run_dir = tmp_path / "run"
    cfg = quick(corpus, run_dir, "train.max_steps=2", "train.checkpoint_every=1", "train.keep_checkpoints=2")
    run(cfg)
    # What a kill while model.pt is being replaced at the end leaves: the export of an older step, and the
    # partial copy beside it; the state of the last step is complete.
    shutil.copyfile(run_dir / "checkpoints" / "step_000001" / "model.pt", run_dir / "model.pt")
    (run_dir / ".model.pt.tmp").write_bytes(b"half a model")
    assert load_checkpoint(run_dir / "model.pt").meta["step"] == 1
    reset_accelerate()
    run(cfg)  # nothing left to train
    assert load_checkpoint(run_dir / "model.pt").meta["step"] == 2
    assert (run_dir / "model.pt").read_bytes() == (run_dir / "checkpoints" / "step_000002" / "model.pt").read_bytes()
    assert not (run_dir / ".model.pt.tmp").exists()
    assert "an interrupted export" in (run_dir / "train.log").read_text()


# ---------------------------------------------------------------------------------------------- signals
class _Signalled(Trainer):
    """Sends itself a signal while the given optimizer step is under way."""

    signal_at: int = 0
    signum: int = signal.SIGINT

    def batch_audio(self, batch):
        if self.step + 1 == self.signal_at:
            os.kill(os.getpid(), self.signum)
        return batch["audio"]


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory):
    reset_accelerate()
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    run(quick(corpus, run_dir, "train.max_steps=5", "train.checkpoint_every=5", "train.ema_decay=0.9"))
    reset_accelerate()
    return run_dir


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_a_state_that_resumes_bitwise(corpus, tmp_path, fresh_accelerate, uninterrupted, signum):
    run_dir = tmp_path / "run"
    cfg = quick(corpus, run_dir, "train.max_steps=5", "train.checkpoint_every=5", "train.ema_decay=0.9")
    trainer = _Signalled(cfg)
    trainer.signal_at, trainer.signum = 2, signum
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        trainer.setup()
        trainer.fit()
    finally:
        trainer.close()
    name = signal.Signals(signum).name
    assert trainer.stopped_by == name and trainer.step == 2
    assert [s for s, _ in list_states(run_dir / "checkpoints")] == [2]  # saved, like max_minutes
    assert (run_dir / "checkpoints" / "step_000002" / "ema.pt").is_file()
    assert not list((run_dir / "checkpoints" / "step_000002").glob("custom_checkpoint_*"))
    assert f"stopped by {name}" in (run_dir / "train.log").read_text()
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # put back
    reset_accelerate()
    run(cfg)
    a, b = metrics(uninterrupted), metrics(run_dir)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5]
    for step in a:  # bitwise: data position, RNG, optimizer, schedule and EMA all continued
        assert a[step]["loss/nll"] == b[step]["loss/nll"] and a[step]["other/grad_norm"] == b[step]["other/grad_norm"]
    wa, wb = (load_checkpoint(d / "model.pt").model.state_dict() for d in (uninterrupted, run_dir))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_sigterm_from_outside_saves_and_exits_143(corpus, tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "waveflow", "train", "--config", str(TINY), f"data.root={corpus}",
           f"train.run_dir={run_dir}", *FAST, *QUICK, "train.max_steps=500", "train.checkpoint_every=500"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 300
    while not (run_dir / "metrics.jsonl").is_file() or not (run_dir / "metrics.jsonl").read_text().strip():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # a cluster scheduler's notice
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err and "training stopped by SIGTERM" in err and "run the same command again" in err
    [(step, _)] = list_states(run_dir / "checkpoints")
    assert 1 <= step < 500 and load_checkpoint(run_dir / "model.pt").meta["step"] == step


# ---------------------------------------------------------------------------------------------- data
def _bad_copies(corpus: Path, folder: Path) -> tuple[list[Path], list[Path]]:
    """Four good clips of the corpus, and two float wavs made from them: one with a NaN, one with 1e30."""
    good = sorted(p for p in (corpus / "wavs").glob("*.wav") if BROKEN_ID not in p.name)[:4]
    folder.mkdir()
    bad = []
    for name, value in (("nan", np.nan), ("huge", 1e30)):
        audio, rate = sf.read(str(good[0]), dtype="float32")
        audio[::97] = value  # in every stretch a training segment can come from
        sf.write(str(folder / f"{name}.wav"), audio, rate, subtype="FLOAT")
        bad.append(folder / f"{name}.wav")
    return good, bad


def test_bad_clips_are_named_skipped_and_counted(corpus, tmp_path, fresh_accelerate):
    good, bad = _bad_copies(corpus, tmp_path / "bad")
    train_list, val_list = tmp_path / "train.txt", tmp_path / "val.txt"
    train_list.write_text("".join(f"{p}\n" for p in good[:2] + bad))
    val_list.write_text("".join(f"{p}\n" for p in good[2:] + bad))
    run_dir = tmp_path / "run"
    run(_config(train_list, run_dir, "train.log_every=1", "train.tracker=none", f"data.val_list={val_list}",
                "data.repeat=1", "train.batch_size=2", "train.max_steps=2", "train.validate_every=2",
                "train.checkpoint_every=2", "data.val_segment_length=4096"))
    log = (run_dir / "train.log").read_text()
    m = metrics(run_dir)
    for p in bad:  # named in validation (before step 0, which used to abort) and in training
        assert f"validation: skipping {p}" in log
        assert f"skipping a bad training clip: {p}" in log
    assert "NaN or infinite" in log and "beyond ±10" in log
    assert m[0]["val/skipped_clips"] == 2 and np.isfinite(m[2]["val/nll"])
    assert m[2]["data/skipped_clips"] == 2
    assert all(m[s]["other/skipped"] == 0.0 and np.isfinite(m[s]["loss/nll"]) for s in (1, 2))
    assert [s for s, _ in list_states(run_dir / "checkpoints")] == [2]  # saving was never held back
    skipped = json.loads((run_dir / "split" / "skipped.json").read_text())
    assert sorted(skipped["bad audio in the validation split"]) == sorted(map(str, bad))


def test_split_lists_work_from_anywhere(corpus, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    shutil.copytree(corpus, work / "corpus")
    monkeypatch.chdir(work)  # a relative data.root, as users type it
    reset_accelerate()
    assert cli_main(["train", "--config", str(TINY), "data.root=corpus", "train.run_dir=runs/r", *FAST,
                     "train.tracker=none", "--prepare-only"]) == 0
    reset_accelerate()
    lists = work / "runs" / "r" / "split"
    monkeypatch.chdir(tmp_path)
    for name in ("train", "val", "test"):
        for line in (lists / f"{name}.txt").read_text().splitlines():
            path = Path(line.split("|", 1)[1])
            assert path.is_absolute() and path.is_file(), line
    from waveflow.jobs.eval import eval_files

    notes: list[str] = []
    test_clips = eval_files([lists / "test.txt"], notes)
    assert test_clips and not notes


# ---------------------------------------------------------------------------------------------- hostile states
class _Evil:
    """A pickle that, if unpickled freely, writes a marker file (a stand-in for any command)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_poisoned_state_is_refused_and_the_previous_one_is_used(corpus, tmp_path, fresh_accelerate, capsys):
    run_dir = tmp_path / "run"
    overrides = ["train.checkpoint_every=1", "train.keep_checkpoints=3", "train.ema_decay=0.9"]
    run(quick(corpus, run_dir, "train.max_steps=2", *overrides))
    marker = tmp_path / "PWNED"
    states = run_dir / "checkpoints"
    # Where Accelerate's free unpickler used to read the EMA from: a pickle that would run a command.
    with open(states / "step_000002" / "custom_checkpoint_0.pkl", "wb") as f:
        pickle.dump(_Evil(marker), f, protocol=4)
    reset_accelerate()
    run(quick(corpus, run_dir, "train.max_steps=3", *overrides))  # falls back to step 1, naming what it refused
    log = (run_dir / "train.log").read_text()
    assert "step_000002/custom_checkpoint_0.pkl: refused for safety: it asks for posix.system" in log
    assert "resuming from step_000001" in log and max(metrics(run_dir)) == 3 and not marker.exists()
    # Every state poisoned (in Accelerate's own files): nothing to resume from, one clear error, no traceback.
    for _, state in list_states(states):
        torch.save({"state": {}, "param_groups": [_Evil(marker)]}, state / "optimizer.bin")
    reset_accelerate()
    args = ["train", "--config", str(TINY), f"data.root={corpus}", f"train.run_dir={run_dir}", *FAST, *QUICK,
            "train.max_steps=4", *overrides]
    assert cli_main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "weights_only=False" not in err
    assert err.count("optimizer.bin: refused for safety") >= 3 and "no training state can be resumed" in err, err
    assert not marker.exists() and max(metrics(run_dir)) == 3


def test_corrupt_state_files_are_named(corpus, tmp_path, fresh_accelerate):
    run_dir = tmp_path / "run"
    run(quick(corpus, run_dir, "train.max_steps=1", "train.checkpoint_every=1"))
    state = run_dir / "checkpoints" / "step_000001"
    rng = state / "random_states_0.pkl"
    rng.write_bytes(rng.read_bytes()[:50])  # Accelerate would skip a bad RNG file silently
    reset_accelerate()
    with pytest.raises(StateError, match=r"random_states_0\.pkl: unreadable"):
        run(quick(corpus, run_dir, "train.max_steps=2", "train.checkpoint_every=1"))
    (state / "trainer_state.json").write_text("{not json")
    reset_accelerate()
    with pytest.raises(TrainingError):  # no longer a complete state: nothing to resume, and states exist
        run(quick(corpus, run_dir, "train.max_steps=2", "train.checkpoint_every=1", "train.resume=latest"))
