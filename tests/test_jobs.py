"""Folder jobs that never lose work (issue 13): one planner for ``mel``/``vocode``/``synth`` (and eval's file list),
outputs complete or absent whatever happens, sharding across processes and job arrays, devices that are not
there. CPU, a tiny random model, tmp_path only.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import randomize_ends
from demo_server import free_port

from waveflow import WaveGlow, WaveGlowConfig, save_model
from waveflow.cli import main
from waveflow.errors import WaveflowError
from waveflow.jobs.discover import AUDIO_INPUTS
from waveflow.jobs.eval import eval_files
from waveflow.jobs.outputs import TMP_NAME

pytestmark = pytest.mark.usefixtures("torch_single_thread")
ROOT = Path(__file__).resolve().parents[1]
HOP = 256


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = WaveGlowConfig(n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=2, n_channels=16)
    return save_model(randomize_ends(WaveGlow(cfg), std=0.05, seed=1), tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def ln_mel(frames: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(-6.0, 1.5, size=(80, frames)).astype(np.float32)


def mel_tree(root: Path, n: int, frames: int = 6) -> list[str]:
    names = []
    for i in range(n):
        rel = Path("a" if i % 2 else "b") / f"utt{i:03d}.npy"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(root / rel, ln_mel(frames + i % 5, seed=i))
        names.append(rel.with_suffix(".wav").as_posix())
    return sorted(names)


def tone(path: Path, seconds: float = 0.3, rate: int = 22050, **kw) -> None:
    t = np.arange(int(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, **kw)


def everything(root: Path) -> list[str]:
    """Every file and folder under ``root`` (hidden ones too), relative."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def digests(root: Path) -> dict[str, str]:
    return {p: hashlib.sha1((root / p).read_bytes()).hexdigest() for p in files(root)}


# ---------------------------------------------------------------------------------------------- planning
def test_colliding_inputs_are_refused_before_any_work(tmp_path, checkpoint, capsys):
    for spk in ("spk1", "spk2"):
        (tmp_path / spk).mkdir()
        np.save(tmp_path / spk / "utt.npy", ln_mel(8, seed=len(spk)))
    out = tmp_path / "out"
    code = main(["vocode", str(tmp_path / "spk1"), str(tmp_path / "spk2"), "-o", str(out), "--checkpoint",
                 str(checkpoint), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "spk1/utt.npy" in err and "spk2/utt.npy" in err and "common parent folder" in err, err
    assert "Traceback" not in err and not out.exists()
    # The documented way to keep them apart: give the parent folder, whose tree is mirrored.
    parent = tmp_path / "in"
    parent.mkdir()
    for spk in ("spk1", "spk2"):
        shutil.move(tmp_path / spk, parent / spk)
    assert main(["vocode", str(parent), "-o", str(out), "--checkpoint", str(checkpoint), "--no-progress"]) == 0
    assert files(out) == ["spk1/utt.wav", "spk2/utt.wav"]
    assert "2 audio files written" in capsys.readouterr().err


def test_mel_two_folders_with_the_same_names_are_refused(tmp_path, capsys):
    for group in ("a", "b"):
        tone(tmp_path / group / "wavs" / "x.wav")
    tone(tmp_path / "c" / "y.wav")
    tone(tmp_path / "c" / "y.flac", format="FLAC")  # one folder, two types, one output name
    code = main(["mel", str(tmp_path / "a" / "wavs"), str(tmp_path / "b" / "wavs"), "-o", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 1 and "a/wavs/x.wav and " in err and "b/wavs/x.wav" in err and "skipped" not in err
    assert main(["mel", str(tmp_path / "c"), "-o", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "y.flac and " in err and "y.wav" in err and "rename one" in err
    assert not (tmp_path / "m").exists()


def test_bad_output_folders_fail_once_before_any_work(tmp_path, checkpoint, capsys):
    mels = tmp_path / "mels"
    mel_tree(mels, 4)
    not_a_folder = tmp_path / "out.wav"
    not_a_folder.write_bytes(b"x")
    common = ["--checkpoint", str(checkpoint), "--no-progress"]
    assert main(["vocode", str(mels), "-o", str(not_a_folder), *common]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "not a folder" in err and "failed:" not in err, err
    assert not_a_folder.read_bytes() == b"x"
    assert main(["vocode", str(mels), "-o", str(mels), *common]) == 1  # outputs would mix with the inputs
    assert "also an input folder" in capsys.readouterr().err
    assert main(["vocode", str(mels), "-o", str(not_a_folder / "sub"), *common]) == 1
    assert "is a file" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["vocode", str(mels), "-o", str(locked / "out"), *common]) == 1
        assert "permission denied" in capsys.readouterr().err


def test_output_folder_inside_the_input_is_left_out(tmp_path, checkpoint, capsys):
    src = tmp_path / "in"
    tone(src / "a.wav")
    tone(src / "sub" / "b.flac", format="FLAC")
    args = ["synth", str(src), "-o", str(src / "out"), "--checkpoint", str(checkpoint), "--no-progress"]
    assert main(args) == 0
    assert "2 audio files written" in capsys.readouterr().err
    for _ in range(2):  # reruns never take the outputs for inputs
        assert main(args) == 0
        err = capsys.readouterr().err
        assert "0 audio files written, 2 skipped (already done), 0 failed" in err
        assert "output folder (inside an input folder)" in err
    assert files(src / "out") == ["a.wav", "sub/b.wav"]


def test_discovery_takes_every_soundfile_type_and_names_what_it_skips(tmp_path, capsys):
    assert {".oga", ".ogg", ".flac", ".wav", ".aiff", ".w64"} <= set(AUDIO_INPUTS)
    src = tmp_path / "in"
    tone(src / "a.oga", format="OGG", subtype="VORBIS")
    tone(src / "b.wav")
    (src / "c.wav").symlink_to(tmp_path / "gone.wav")  # dangling
    (src / "notes.txt").write_text("not audio")
    (src / ".hidden.wav").write_bytes(b"junk")
    notes: list[str] = []
    assert [p.name for p in eval_files([src], notes)] == ["a.oga", "b.wav"]
    text = "\n".join(notes)
    assert "c.wav: dangling symbolic link" in text and "1 .txt files" in text and "1 hidden files" in text
    out = tmp_path / "mels"
    assert main(["mel", str(src), "-o", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert files(out) == ["a.npy", "b.npy"]
    assert "note: skipped" in err and "c.wav: dangling symbolic link" in err


# ---------------------------------------------------------------------------------------------- interruptions
def test_sigkill_mid_run_then_rerun_leaves_exactly_the_complete_outputs(tmp_path, checkpoint):
    mels, out = tmp_path / "mels", tmp_path / "out"
    expected = mel_tree(mels, 100, frames=80)
    cmd = [sys.executable, "-m", "waveflow", "vocode", str(mels), "-o", str(out), "--checkpoint", str(checkpoint),
           "--no-progress", "--batch-frames", "1", "--jobs", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    victim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    deadline = time.time() + 120
    while len([p for p in out.rglob("*.wav") if TMP_NAME not in p.parts]) < 3:
        assert victim.poll() is None, "the job ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    done = [p for p in files(out) if not p.startswith(TMP_NAME)]
    assert 3 <= len(done) < len(expected), len(done)
    for rel in done:  # whatever is visible is complete
        assert sf.info(str(out / rel)).frames > 0
    rerun = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "skipped (already done)" in rerun.stderr
    assert everything(out) == sorted(expected + ["a", "b"])  # no temporaries, hidden or not


def test_stale_temporaries_are_cleaned_but_a_running_jobs_are_not(tmp_path):
    src = tmp_path / "in"
    tone(src / "a.wav")
    area = tmp_path / "out" / TMP_NAME
    (area / "deadhost-1-abc").mkdir(parents=True)
    (area / "deadhost-1-abc" / "7.npy").write_bytes(b"half a file")
    (area / "deadhost-1-abc.lock").write_text("")
    (area / "orphan").mkdir()
    alive = area / "livehost-2-def.lock"
    alive.write_text("")
    (area / "livehost-2-def").mkdir()
    with open(alive) as held:  # a job still writing here holds its lock
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main(["mel", str(src), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
        assert sorted(p.name for p in area.iterdir()) == ["livehost-2-def", "livehost-2-def.lock"]
    assert main(["mel", str(src), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    assert everything(tmp_path / "out") == ["a.npy"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_between_files_and_says_how_to_continue(tmp_path, monkeypatch, capsys, sig):
    import waveflow.jobs.mel as job

    src = tmp_path / "in"
    for i in range(6):
        tone(src / f"c{i}.wav", seconds=0.1)
    calls = []
    real = job.load_audio

    def load(path, **kw):
        calls.append(path)
        if len(calls) == 3:
            os.kill(os.getpid(), sig)  # Ctrl-C / a scheduler's SIGTERM while the third file is under way
        return real(path, **kw)

    monkeypatch.setattr(job, "load_audio", load)
    out = tmp_path / "out"
    code = main(["mel", str(src), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == (130 if sig == signal.SIGINT else 143)
    assert f"interrupted ({signal.Signals(sig).name})" in err and "run the same command again" in err
    assert "2 mel files written, 0 skipped (already done), 0 failed, 4 not done" in err
    assert everything(out) == ["c0.npy", "c1.npy"]  # the interrupted file left nothing
    monkeypatch.setattr(job, "load_audio", real)
    assert main(["mel", str(src), "-o", str(out), "--no-progress"]) == 0
    assert "4 mel files written, 2 skipped (already done)" in capsys.readouterr().err


def test_vocode_interrupted_mid_batch_keeps_what_is_complete(tmp_path, checkpoint, monkeypatch, capsys):
    import waveflow.jobs.vocode as job

    mels, out = tmp_path / "mels", tmp_path / "out"
    expected = mel_tree(mels, 6)
    real, calls = job._vocode_batch, []

    def vocode_batch(*args):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args)

    monkeypatch.setattr(job, "_vocode_batch", vocode_batch)
    args = ["vocode", str(mels), "-o", str(out), "--checkpoint", str(checkpoint), "--no-progress", "--batch-frames", "1"]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "3 audio files written, 0 skipped (already done), 0 failed, 3 not done" in err
    assert "interrupted (SIGINT)" in err
    assert len(files(out)) == 3 and not (out / TMP_NAME).exists()
    monkeypatch.setattr(job, "_vocode_batch", real)
    assert main(args) == 0
    assert "3 audio files written, 3 skipped (already done)" in capsys.readouterr().err
    assert files(out) == expected


# ---------------------------------------------------------------------------------------------- disk and modes
def test_outputs_follow_the_umask(tmp_path, checkpoint):
    mels = tmp_path / "mels"
    mel_tree(mels, 2)
    tone(tmp_path / "wavs" / "t.wav")
    for mask, mode in ((0o022, 0o644), (0o027, 0o640)):
        before = os.umask(mask)
        try:
            out = tmp_path / f"out{mask:o}"
            assert main(["vocode", str(mels), "-o", str(out), "--checkpoint", str(checkpoint), "--no-progress",
                         "--summary", str(out / "summary.json")]) == 0
            assert main(["mel", str(tmp_path / "wavs"), "-o", str(out / "m"), "--no-progress"]) == 0
        finally:
            os.umask(before)
        written = [p for p in out.rglob("*") if p.is_file()]
        assert len(written) == 4  # two wavs, the summary, a mel
        assert {p.stat().st_mode & 0o777 for p in written} == {mode}, [oct(p.stat().st_mode) for p in written]


def test_full_disk_stops_the_job_with_one_message_and_no_partial_file(tmp_path, checkpoint, monkeypatch, capsys):
    mels, out = tmp_path / "mels", tmp_path / "out"
    expected = mel_tree(mels, 8)
    real = sf.write
    count = []

    def write(file, data, *args, **kw):  # the third write runs out of space half way, as a full disk does
        count.append(file)
        if len(count) == 3:
            Path(file).write_bytes(b"RIFF" + b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(file, data, *args, **kw)

    monkeypatch.setattr(sf, "write", write)
    args = ["vocode", str(mels), "-o", str(out), "--checkpoint", str(checkpoint), "--no-progress", "--jobs", "1",
            "--batch-frames", "1"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("no space left") == 1 and "Traceback" not in err and "failed:" not in err, err
    assert "run the same command again" in err
    done = files(out)
    assert len(done) < len(expected) and set(done) <= set(expected)
    for rel in done:
        assert sf.info(str(out / rel)).frames > 0
    monkeypatch.setattr(sf, "write", real)
    assert main(args) == 0
    assert everything(out) == sorted(expected + ["a", "b"])


def test_full_tmpfs(tmp_path, checkpoint, capsys):
    """A real full file system, where the machine lets the test mount a tiny tmpfs (root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(disk)],
                                           capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        mels = tmp_path / "mels"
        mel_tree(mels, 6, frames=60)  # 6 x ~61 KB of PCM_16: more than fits
        code = main(["vocode", str(mels), "-o", str(disk / "out"), "--checkpoint", str(checkpoint), "--no-progress",
                     "--jobs", "1", "--batch-frames", "1"])
        err = capsys.readouterr().err
        assert code == 1 and err.count("no space left") == 1 and "Traceback" not in err, err
        for p in (disk / "out").rglob("*"):  # what is there is complete: whole mels' worth of samples
            assert not p.name.startswith(".")
            assert p.is_dir() or (sf.info(str(p)).frames > 0 and sf.info(str(p)).frames % HOP == 0)
        assert not (disk / "out" / TMP_NAME).exists()
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ---------------------------------------------------------------------------------------------- sharding
def test_shards_cover_the_list_exactly_once(tmp_path, capsys):
    src = tmp_path / "in"
    for i in range(7):
        tone(src / f"d{i % 3}" / f"c{i}.wav", seconds=0.1)
    out = tmp_path / "out"
    written = []
    for k in range(3):
        summary = tmp_path / f"s{k}.json"
        assert main(["mel", str(src), "-o", str(out), "--shard", f"{k}/3", "--no-progress",
                     "--summary", str(summary)]) == 0
        s = json.loads(summary.read_text())
        assert s["skipped"] == 0 and s["shard"] == f"{k}/3"
        written.append(s["ok"])
    assert sum(written) == 7 and all(written)
    assert len(files(out)) == 7
    assert f"shard 2/3: {written[2]} mel files written" in capsys.readouterr().err
    for bad in ("3/3", "1", "-1/2", "a/b"):
        assert main(["mel", str(src), "-o", str(tmp_path / "x"), f"--shard={bad}"]) == 1
        assert "expected K/N" in capsys.readouterr().err


def test_single_process_accelerate_cpu_launch_is_explained(monkeypatch, capsys):
    from argparse import Namespace

    from waveflow.cli.common import job_part

    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    part = job_part(Namespace(shard=None, device="cpu"))
    assert (part.index, part.count, part.launch) == (0, 1, None)
    assert "--multi_gpu --num_processes N" in capsys.readouterr().err


@pytest.mark.slow
def test_accelerate_launch_two_processes_byte_identical(tmp_path, checkpoint):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("the accelerate command is not installed")
    mels = tmp_path / "mels"
    expected = mel_tree(mels, 21, frames=12)
    job = ["-m", "waveflow", "vocode", str(mels), "--checkpoint", str(checkpoint), "--no-progress", "--seed", "5"]
    # Two gloo processes on the CPU: `accelerate launch --cpu` starts one process unless given an MPI hostfile
    # (see test_single_process_accelerate_cpu_launch_is_explained); --multi_gpu on a machine that shows no GPU
    # starts N processes through torchrun, and the job runs them on the CPU.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    one = subprocess.run([sys.executable, *job, "-o", str(tmp_path / "one")], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300, check=False)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
                          str(free_port()), *job, "-o", str(tmp_path / "two"), "--summary",
                          str(tmp_path / "two.json")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600, check=False)
    assert two.returncode == 0, two.stderr[-3000:]
    assert digests(tmp_path / "two") == digests(tmp_path / "one")
    assert files(tmp_path / "two") == expected
    summary = json.loads((tmp_path / "two.json").read_text())
    assert summary["processes"] == 2 and summary["ok"] == 21 and summary["skipped"] == 0
    shares = [p["ok"] for p in summary["per_process"]]
    assert sum(shares) == 21 and min(shares) > 0  # each file written once, both did work
    lines = [line for line in two.stderr.splitlines() if "audio files written" in line]
    assert len(lines) == 1, lines  # one merged summary, from the main process
    assert lines[0].startswith("21 audio files written, 0 skipped (already done), 0 failed, on 2 processes")


# ---------------------------------------------------------------------------------------------- devices
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@no_cuda
@pytest.mark.parametrize("command", ["vocode", "synth", "eval"])
def test_missing_cuda_is_one_clear_error(tmp_path, checkpoint, capsys, command):
    src = tmp_path / "in"
    if command == "vocode":
        mel_tree(src, 1)
    else:
        tone(src / "a.wav")
    out = [] if command == "eval" else ["-o", str(tmp_path / "out")]
    for dtype in ("float32", "float16"):
        code = main([command, str(src), *out, "--checkpoint", str(checkpoint), "--device", "cuda", "--dtype", dtype,
                     "--no-progress"])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
        assert "'cuda'" in err and "--device auto or cpu" in err and "--dtype" not in err, err
    assert not (tmp_path / "out").exists() or not files(tmp_path / "out")


@no_cuda
def test_missing_cuda_in_the_library_and_the_demo(tmp_path, checkpoint):
    from waveflow.inference import Vocoder
    from waveflow.inference.runtime import DeviceError, available_devices, pick_device

    with pytest.raises(DeviceError, match="no NVIDIA GPU|without CUDA") as e:
        Vocoder(checkpoint, device="cuda")
    assert isinstance(e.value, WaveflowError)
    with pytest.raises(DeviceError, match="unknown device"):
        pick_device("gpu")
    assert str(pick_device("auto")) in available_devices() + ["cuda"]
    demo = subprocess.run([sys.executable, "-m", "waveflow", "demo", "--checkpoint", str(checkpoint), "--device",
                           "cuda", "--port", str(free_port())], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, check=False)
    assert demo.returncode in (1, 2) and "Traceback" not in demo.stderr, demo.stderr[-2000:]
    assert "'cuda'" in demo.stderr


def test_dtype_advice_names_what_works_on_the_device(monkeypatch):
    import waveflow.inference.runtime as rt

    monkeypatch.setattr(rt, "_dtype_problem", lambda dt, dev: "no half kernels" if dt == torch.float16 else None)
    with pytest.raises(rt.DeviceError, match=r"float16 is not supported on cpu .* use --dtype float32 or bfloat16"):
        rt.resolve_dtype("float16", "cpu")
    monkeypatch.setattr(rt, "_dtype_problem", lambda dt, dev: None if dt == torch.float32 else "nope")
    with pytest.raises(rt.DeviceError, match=r"use --dtype float32$"):
        rt.resolve_dtype("bfloat16", "cpu")
    assert rt.resolve_dtype("float32", "cpu") == torch.float32


# ---------------------------------------------------------------------------------------------- plan first, one policy
def test_the_plan_is_made_once_before_the_model_loads(tmp_path, checkpoint, monkeypatch, capsys):
    """Discovery, collisions and the output check happen once, before any model loads (issue 19)."""
    import functools

    from waveflow.inference import Vocoder
    from waveflow.jobs import planner

    events = []
    real_check, real_discover, real_init = planner.check_output_dir, planner.discover, Vocoder.__init__

    @functools.wraps(real_init)
    def init(self, *a, **k):
        events.append("model")
        real_init(self, *a, **k)

    monkeypatch.setattr(planner, "check_output_dir", lambda *a: events.append("output check") or real_check(*a))
    monkeypatch.setattr(planner, "discover", lambda *a, **k: events.append("discovery") or real_discover(*a, **k))
    monkeypatch.setattr(Vocoder, "__init__", init)
    mels = tmp_path / "mels"
    mel_tree(mels, 3)
    for command, inputs in (("vocode", [str(mels)]), ("synth", [str(tmp_path / "wavs")])):
        tone(tmp_path / "wavs" / "t.wav")
        events.clear()
        assert main([command, *inputs, "-o", str(tmp_path / f"out-{command}"), "--checkpoint", str(checkpoint),
                     "--no-progress"]) == 0
        assert events == ["output check", "discovery", "model"], (command, events)
    events.clear()  # a collision is found without loading anything (the checkpoint need not even exist)
    for spk in ("spk1", "spk2"):
        (tmp_path / spk).mkdir()
        np.save(tmp_path / spk / "utt.npy", ln_mel(8, seed=1))
    assert main(["vocode", str(tmp_path / "spk1"), str(tmp_path / "spk2"), "-o", str(tmp_path / "o"), "--checkpoint",
                 str(tmp_path / "missing.pt")]) == 1
    assert "would be written by two inputs" in capsys.readouterr().err and "model" not in events


@pytest.mark.parametrize("at_once", [False, True])
def test_one_stop_policy_for_training_and_jobs(at_once):
    """train.utils.StopSignals is the policy of both: the first SIGINT/SIGTERM asks for a stop (training: a flag
    read after the step; jobs: raised where the work is), a repeated SIGTERM is ignored, a Ctrl-C then stops at once."""
    from waveflow.jobs.planner import stop_signals
    from waveflow.train.utils import StopRequested, StopSignals

    assert isinstance(stop_signals(), StopSignals) and stop_signals().at_once
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopSignals(at_once=at_once) as stop:
        if at_once:
            with pytest.raises(StopRequested) as first:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            assert first.value.signame == "SIGTERM"
        else:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
        assert stop.received == "SIGTERM"
        os.kill(os.getpid(), signal.SIGTERM)  # a launcher passing the stop on: the clean-up goes on
        time.sleep(0.1)
        with pytest.raises(KeyboardInterrupt) as now:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        assert not isinstance(now.value, StopRequested)
    assert {s: signal.getsignal(s) for s in before} == before
