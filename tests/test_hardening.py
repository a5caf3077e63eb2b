"""Nothing outside OUT is ever touched, no input stalls a batch, configs are read in bounded memory (issue 19).

One test per hole found by trying waveflow as an attacker and as a careless user would (numbered as in the
issue); each reproduces the hole (it fails on the code before the fix) and then checks that nothing outside
the output folder changed, memory stayed bounded (peak resident size of a child process, read with ``wait4``),
the other files were done, and the message names the file or the key, without a traceback. Long mels in flat
memory (hole 5's second half) are in ``tests/test_streaming.py``.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import hostile_files as hf
import numpy as np
import pytest
import soundfile as sf
import torch

from waveflow import MelConfig, WaveGlow, WaveGlowConfig, save_model
from waveflow.cli import main
from waveflow.config import ConfigError
from waveflow.inference import Vocoder
from waveflow.inference.runtime import derive_seed
from waveflow.jobs.outputs import TMP_NAME
from waveflow.mel_io import MelFileError, read_mel
from waveflow.train.config import load_run_config

pytestmark = [pytest.mark.usefixtures("torch_single_thread"), pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
N_MELS, HOP, RATE = 8, 16, 8000


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> Path:
    """A tiny 8 kHz voice (8 mels, hop 16): fast enough for minutes of audio in a test."""
    cfg = WaveGlowConfig(n_mels=N_MELS, n_flows=2, n_group=4, n_early_size=0, n_layers=1, n_channels=4, hop_length=HOP)
    mel_cfg = MelConfig(sample_rate=RATE, n_mels=N_MELS, hop_length=HOP, n_fft=64, win_length=64, fmax=RATE / 2)
    torch.manual_seed(0)
    return save_model(WaveGlow(cfg), tmp_path_factory.mktemp("voice") / "voice.pt", mel_cfg)


def mel(frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(-6.0, 1.0, size=(N_MELS, frames)).astype(np.float32)


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links not followed) with its content's digest or link target."""
    out = {}
    for here, dirs, names in os.walk(root):
        for name in dirs + names:
            p = Path(here) / name
            rel = p.relative_to(root).as_posix()
            out[rel] = (f"-> {os.readlink(p)}" if p.is_symlink() else "dir" if p.is_dir()
                        else hashlib.sha1(p.read_bytes()).hexdigest())
    return out


def victim(root: Path) -> Path:
    """A folder outside OUT that looks like a stale scratch area to anything that follows a link into it."""
    (root / "dir").mkdir(parents=True)
    (root / "keep.txt").write_text("precious")
    (root / "dir" / "inner.txt").write_text("precious too")
    (root / "x.lock").write_text("")
    (root / "y").mkdir()
    (root / "y.lock").write_text("")
    return root


def run_measured(args: list[str], cwd: Path, kill_above: int = 1 << 30) -> tuple[int, str, int]:
    """``(exit code, stderr, peak resident bytes)`` of ``python -m waveflow ARGS``; a child whose resident size
    passes ``kill_above`` bytes is killed (the hole being reproduced would otherwise take the machine)."""
    err_path = cwd / f"stderr-{time.monotonic_ns()}.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "waveflow", *args], stdout=subprocess.DEVNULL, stderr=err,
                                cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})
        killed = []

        def watch():
            status = Path(f"/proc/{proc.pid}/status")
            while proc.returncode is None:
                try:
                    rss = next(int(x.split()[1]) * 1024 for x in status.read_text().splitlines() if x.startswith("VmRSS"))
                except (OSError, StopIteration):
                    return
                if rss > kill_above:
                    killed.append(rss)
                    os.kill(proc.pid, signal.SIGKILL)
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        watcher.join(1)
    assert not killed, f"the child passed {kill_above / MIB:.0f} MiB and was killed"
    return proc.returncode, err_path.read_text(), usage.ru_maxrss * 1024


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> int:
    """Peak resident bytes of ``waveflow train --config tiny --print-config`` (imports, a config read)."""
    rc, err, peak = run_measured(["train", "--config", "tiny", "--print-config"], tmp_path_factory.mktemp("base"))
    assert rc == 0, err
    return peak


# ------------------------------------------------------------------------------------------- 1. scratch links
def test_1_a_planted_scratch_link_never_deletes_outside_out(tmp_path, voice, capsys):
    home = victim(tmp_path / "home")
    before = snapshot(home)
    src, mels = tmp_path / "src", tmp_path / "mels"
    src.mkdir()
    sf.write(str(src / "a.wav"), np.zeros(4000, np.float32), RATE)
    mels.mkdir()
    np.save(mels / "m.npy", mel(20))
    for command in (["mel", str(src)], ["vocode", str(mels), "--checkpoint", str(voice)]):
        out = tmp_path / f"out-{command[0]}"
        out.mkdir()
        (out / TMP_NAME).symlink_to(home)
        code = main([*command, "-o", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err, err
        assert f"{TMP_NAME}: is a symbolic link (to {home})" in err, err
        assert snapshot(home) == before  # nothing removed, nothing written
        assert sorted(os.listdir(out)) == [TMP_NAME]

    # Links planted inside a real (stale) scratch area are removed themselves, never followed.
    out = tmp_path / "out-inside"
    area = out / TMP_NAME
    area.mkdir(parents=True)
    (area / "deadhost-1-abc").symlink_to(home)  # a job folder without a lock
    (area / "dead2.lock").write_text("")
    (area / "dead2").symlink_to(home / "dir")  # a killed job's folder (its lock is free)
    (area / "orphan").mkdir()
    (area / "orphan" / "link").symlink_to(home)  # a link inside a folder removed as a tree
    (area / "z.lock").symlink_to(home / "keep.txt")
    assert main(["mel", str(src), "-o", str(out), "--no-progress"]) == 0
    assert snapshot(home) == before
    assert sorted(os.listdir(out)) == ["a.npy"]

    # An output folder that is a link out of OUT fails that file; the others are written.
    src2, away = tmp_path / "src2", tmp_path / "away"
    for sub in ("a", "b"):
        (src2 / sub).mkdir(parents=True)
        sf.write(str(src2 / sub / "x.wav"), np.zeros(4000, np.float32), RATE)
    away.mkdir()
    out = tmp_path / "out-links"
    out.mkdir()
    (out / "a").symlink_to(away)
    assert main(["mel", str(src2), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"failed: .*a/x\.wav: its output folder .*out-links/a is a symbolic link", err), err
    assert os.listdir(away) == [] and (out / "b" / "x.npy").is_file()


# ------------------------------------------------------------------------------------------- 2. alias bombs
def alias_bomb(levels: int = 9) -> str:
    """A "billion laughs": ``levels`` lists of nine aliases of the one before (9**levels values, ~600 bytes)."""
    parts = ["&l0 [" + ", ".join(["1"] * 9) + "]"]
    parts += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


@pytest.mark.parametrize("route", ["file", "override"])
def test_2_a_yaml_alias_bomb_is_refused_in_bounded_memory(tmp_path, baseline, route):
    bomb = alias_bomb()
    assert len(bomb) < 700
    if route == "file":
        path = tmp_path / "bomb.yaml"
        path.write_text(f"model: {{n_channels: {bomb}}}\n")
        args, named = ["train", "--config", str(path), "--print-config"], str(path)
    else:
        args, named = ["train", "--config", "tiny", f"model.n_channels={bomb}", "--print-config"], "model.n_channels"
    rc, err, peak = run_measured(args, tmp_path)
    assert rc == 1 and err.startswith("error: ") and "Traceback" not in err, err[-2000:]
    assert named in err and "aliases" in err and len(err) < 500, err[:1000]
    assert peak - baseline < 32 * MIB, (peak - baseline) / MIB
    # Anchors of a sane size still work.
    path = tmp_path / "anchors.yaml"
    path.write_text("train: {lr: &rate 0.0005, val_sigma: *rate}\n")
    assert load_run_config(path).train.val_sigma == 0.0005


# ------------------------------------------------------------------------------------------- 3. names as bytes
def test_3_a_name_that_is_not_utf8_is_one_file_like_the_others(tmp_path, voice, capsys):
    mels, out = tmp_path / "mels", tmp_path / "out"
    mels.mkdir()
    good = {"ok.npy": mel(30, 1), os.fsdecode(b"caf\xe9.npy"): mel(25, 2)}
    for name, m in good.items():
        np.save(mels / name, m)
    bad = os.fsdecode(b"bad\xff.npy")
    (mels / bad).write_text("not a mel")
    code = main(["vocode", str(mels), "-o", str(out), "--checkpoint", str(voice), "--no-progress", "--subtype",
                 "FLOAT", "--summary", str(tmp_path / "summary.json")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    assert f"failed: {mels}/bad\\xff.npy: not a NumPy .npy array" in err, err  # the byte as it is
    assert "2 audio files written" in err and (tmp_path / "summary.json").is_file()
    vocoder = Vocoder(voice)
    for name, m in good.items():  # each seeded from its name's bytes, as derive_seed does for UTF-8 names
        raw = os.fsencode(name)
        seed = int.from_bytes(hashlib.blake2b(b"1234\0" + raw, digest_size=8).digest(), "big") >> 1
        if name == "ok.npy":
            assert seed == derive_seed(1234, "ok.npy")
        with open(out / os.fsdecode(raw.replace(b".npy", b".wav")), "rb") as f:  # soundfile takes no such name
            audio, _ = sf.read(f, dtype="float32")
        np.testing.assert_allclose(audio, vocoder.vocode(m, seed=seed).numpy(), atol=1e-5)
    # The audio jobs read such names too (soundfile encodes names strictly: they go through a link).
    src = tmp_path / "wavs"
    src.mkdir()
    for name in (b"t\xe9.wav", b"ok.wav"):
        sf.write(str(src / "tmp.wav"), np.zeros(4000, np.float32), RATE)
        os.rename(src / "tmp.wav", src / os.fsdecode(name))
    (src / os.fsdecode(b"bad\xff.wav")).write_bytes(b"RIFF junk")
    assert main(["mel", str(src), "-o", str(tmp_path / "m"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert sorted(os.listdir(os.fsencode(tmp_path / "m"))) == [b"ok.npy", b"t\xe9.npy"]
    assert f"failed: {src}/bad\\xff.wav: not a readable audio file" in err and TMP_NAME not in err, err
    assert main(["synth", str(src), "-o", str(tmp_path / "s"), "--checkpoint", str(voice), "--no-progress"]) == 1
    assert sorted(os.listdir(os.fsencode(tmp_path / "s"))) == [b"ok.wav", b"t\xe9.wav"]


# ------------------------------------------------------------------------------------------- 4. workers
def test_4_num_workers_is_capped_by_the_cpu_count(capsys):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cap = max(16, 4 * cores)
    assert main(["train", "--config", "tiny", "data.num_workers=100000", "--print-config"]) == 1
    err = capsys.readouterr().err
    assert f"data.num_workers must be at most {cap}" in err and "100,000" in err and "Traceback" not in err, err
    assert load_run_config("tiny", [f"data.num_workers={cap}"]).data.num_workers == cap
    with pytest.raises(ConfigError, match="data.num_workers"):
        load_run_config("tiny", [f"data.num_workers={cap + 1}"])


# ------------------------------------------------------------------------------------------- 5. length limit
def test_5_a_32_hour_mel_fails_by_its_length_and_the_others_are_done(tmp_path, voice):
    """An honest 80 x 10M-frame .npy is refused by --max-seconds from its header; a small one beside it is done;
    the run costs no more memory than the small one alone."""
    mels, alone = tmp_path / "mels", tmp_path / "alone"
    mels.mkdir()
    alone.mkdir()
    long = hf.sparse_npy(mels / "long.npy", (N_MELS, 576 * 10**5))  # 32 hours at 8 kHz, hop 16 (1.8 GB)
    for where in (mels, alone):
        np.save(where / "ok.npy", mel(40))
    rc0, err0, reference = run_measured(["vocode", str(alone), "-o", str(tmp_path / "o0"), "--checkpoint",
                                         str(voice), "--no-progress"], tmp_path)
    assert rc0 == 0, err0
    rc, err, peak = run_measured(["vocode", str(mels), "-o", str(tmp_path / "o1"), "--checkpoint", str(voice),
                                  "--no-progress"], tmp_path, kill_above=reference + 512 * MIB)
    assert rc == 1 and "Traceback" not in err, err
    assert f"failed: {long}: too long: it would make 32.00 h of audio; --max-seconds is 3600" in err, err
    assert (tmp_path / "o1" / "ok.wav").is_file() and not (tmp_path / "o1" / "long.wav").exists()
    assert peak - reference < 16 * MIB, (peak - reference) / MIB
    for _ in range(2):  # every rerun: the same one message, no work, and the batch ends
        rc, err, _ = run_measured(["vocode", str(mels), "-o", str(tmp_path / "o1"), "--checkpoint", str(voice),
                                   "--no-progress"], tmp_path, kill_above=reference + 512 * MIB)
        assert rc == 1 and "1 skipped (already done), 1 failed" in err and "32.00 h" in err, err


def test_5_synth_refuses_a_long_recording_from_its_header(tmp_path, voice, capsys):
    src = tmp_path / "wavs"
    src.mkdir()
    sf.write(str(src / "long.wav"), np.zeros(10 * 16000, np.float32), 16000)
    sf.write(str(src / "short.wav"), np.zeros(8000, np.float32), 16000)
    args = ["synth", str(src), "-o", str(tmp_path / "out"), "--checkpoint", str(voice), "--no-progress"]
    assert main([*args, "--max-seconds", "5"]) == 1
    err = capsys.readouterr().err
    assert f"failed: {src / 'long.wav'}: too long: it would make 10.0 s of audio; --max-seconds is 5" in err, err
    assert os.listdir(tmp_path / "out") == ["short.wav"]
    assert main([*args, "--max-seconds", "0"]) == 0  # no limit


# ------------------------------------------------------------------------------------------- 6. deep nesting
@pytest.mark.parametrize("route", ["file", "override"])
def test_6_fifty_thousand_brackets_are_one_message(tmp_path, route):
    deep = "[" * 50_000 + "]" * 50_000
    if route == "file":
        path = tmp_path / "deep.yaml"
        path.write_text(f"model: {deep}\n")
        args, named = ["train", "--config", str(path), "--print-config"], str(path)
    else:
        args, named = ["train", "--config", "tiny", f"model.n_channels={deep}", "--print-config"], "model.n_channels"
    rc, err, _ = run_measured(args, tmp_path)
    assert rc == 1 and err.startswith("error: ") and "Traceback" not in err and "Recursion" not in err, err[-2000:]
    assert named in err and "levels deep" in err and len(err) < 400, err[:1000]


# ------------------------------------------------------------------------------------------- 7. finite floats
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e999", "'nan'"])
@pytest.mark.parametrize("key", ["train.sigma", "train.lr", "mel.fmin", "data.val_fraction"])
def test_7_every_float_is_finite(key, value):
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}: expected a finite number"):
        load_run_config("tiny", [f"{key}={value}"])


def test_7_an_infinite_sigma_fails_the_command(capsys):
    assert main(["train", "--config", "tiny", "train.sigma=.inf", "--print-config"]) == 1
    assert "train.sigma: expected a finite number, got inf" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- 8. long names
def test_8_an_output_name_too_long_fails_that_file_on_every_run(tmp_path, voice, capsys):
    mels, out = tmp_path / "mels", tmp_path / "out"
    mels.mkdir()
    long = mels / ("n" * 251 + ".npy")  # 255 bytes: a legal input; its .flac output would be 256
    np.save(long, mel(20))
    np.save(mels / "ok.npy", mel(20, 1))
    args = ["vocode", str(mels), "-o", str(out), "--checkpoint", str(voice), "--no-progress", "--format", "flac"]
    for run in range(3):
        if run == 2:
            np.save(mels / "new.npy", mel(20, 2))  # new inputs are still done
        code = main(args)
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err and "Errno" not in err, err
        assert f"failed: {long}: its output name" in err and "256 bytes long" in err and "at most 255" in err, err
        written, skipped = [1, 0, 1][run], [0, 1, 1][run]
        assert f"{written} audio files written, {skipped} skipped (already done), 1 failed" in err, err
    assert sorted(os.listdir(out)) == ["new.flac", "ok.flac"]


# ------------------------------------------------------------------------------------------- 9. wording
def test_9_links_to_devices_and_fifos_are_called_what_they_are(tmp_path, voice, capsys):
    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "ok.npy", mel(20))
    (mels / "zero.npy").symlink_to("/dev/zero")
    os.mkfifo(mels / "pipe.npy")
    out = tmp_path / "out"
    assert main(["vocode", str(mels), "-o", str(out), "--checkpoint", str(voice), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"skipped {mels / 'zero.npy'}: a symbolic link to a character device (/dev/zero)" in err, err
    assert f"skipped {mels / 'pipe.npy'}: a FIFO (named pipe), not a regular file" in err, err
    assert "dangling" not in err and os.listdir(out) == ["ok.wav"]
    for name, said in (("zero.npy", "a symbolic link to a character device"), ("pipe.npy", "a FIFO (named pipe)")):
        assert main(["vocode", str(mels / name), "-o", str(tmp_path / "o2"), "--checkpoint", str(voice)]) == 1
        err = capsys.readouterr().err
        assert f"error: {mels / name}: {said}" in err and "no such file" not in err, err
    result = []  # read directly, a FIFO is refused at once instead of waiting for a writer
    reader = threading.Thread(target=lambda: result.append(_refusal(mels / "pipe.npy")), daemon=True)
    reader.start()
    reader.join(10)
    assert result and "FIFO" in result[0], result


def _refusal(path: Path) -> str:
    try:
        read_mel(path, N_MELS)
    except MelFileError as e:
        return str(e)
    return "accepted"


def test_9_a_huge_integer_is_named_by_its_key(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_text("train:\n  max_steps: " + "9" * 5001 + "\n")
    assert main(["train", "--config", str(path), "--print-config"]) == 1
    err = capsys.readouterr().err
    assert "train.max_steps: <an integer of 5,001 digits> is far too large" in err and "set_int_max" not in err, err
    with pytest.raises(ConfigError, match=r"train\.max_steps: 1\.000e\+30 is far too large"):
        load_run_config("tiny", [f"train.max_steps={10**30}"])


def test_9_a_legacy_pt_mel_declaring_4_tb_is_refused_before_anything_is_allocated(tmp_path, voice, baseline):
    record = hf.Record("0", bytes(64), numel=2**40)
    path = hf.torch_legacy(tmp_path / "huge_legacy.pt", hf.View(record, (N_MELS, 2), (2, 1)))
    with pytest.raises(MelFileError, match=r"storages declare 4,398,046,511,104 bytes and the file holds"):
        read_mel(path, N_MELS)
    honest = tmp_path / "honest_legacy.pt"
    torch.save(torch.full((N_MELS, 5), -5.0), honest, _use_new_zipfile_serialization=False)
    assert torch.equal(read_mel(honest, N_MELS)[0], torch.full((N_MELS, 5), -5.0))
    (tmp_path / "in").mkdir()
    os.link(path, tmp_path / "in" / path.name)
    rc, err, peak = run_measured(["vocode", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--checkpoint",
                                  str(voice), "--no-progress"], tmp_path, kill_above=baseline + 1024 * MIB)
    assert rc == 1 and "declare 4,398,046,511,104 bytes" in err and "Traceback" not in err, err
    assert peak - baseline < 64 * MIB, (peak - baseline) / MIB
