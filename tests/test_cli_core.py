"""The ``waveflow`` command: help texts, and ``waveflow mel`` on a folder of good and bad files.

Expected mels are recomputed here from the files (soundfile read, channel mean, soxr resampling) with
:class:`MelSpectrogram`, whose own accuracy is tests/test_mel.py's job.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from waveflow import MelConfig, MelSpectrogram, WaveGlow, WaveGlowConfig, save_model
from waveflow.cli import get_parser
from waveflow.cli import main as cli_main

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # small work: threading costs more than it gives

WAVEFLOW = Path(sys.executable).with_name("waveflow")


def subcommands() -> list[str]:
    actions = [a for a in get_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


# ------------------------------------------------------------------------------------------- help
def test_console_script_help_and_version():
    assert WAVEFLOW.exists(), "the waveflow console script is not installed in this environment"
    out = subprocess.run([str(WAVEFLOW), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "usage: waveflow" in out.stdout
    for name in ("mel", "info", "import"):
        assert name in out.stdout
    assert "examples" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "waveflow", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and out.stdout.startswith("waveflow ")


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli_main([]) == 2
    assert "usage: waveflow" in capsys.readouterr().out


@pytest.mark.parametrize("name", subcommands())
def test_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: waveflow {name}" in text
    assert "example" in text, f"`waveflow {name} --help` should show an example"


# ------------------------------------------------------------------------------------------- mel
@pytest.fixture
def audio_tree(tmp_path, speech_22k) -> Path:
    """in/good.wav (22.05 kHz speech), in/stereo48k.wav (48 kHz, different channels), in/sub/clip.flac
    (16 kHz), in/corrupt.wav (random bytes), in/notes.wav (text), in/readme.txt (not audio: ignored)."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    speech = np.array(speech_22k)
    sf.write(str(root / "good.wav"), speech[: 22050 * 2], 22050, subtype="PCM_16")
    left = librosa.resample(speech[22050:], orig_sr=22050, target_sr=48000, res_type="soxr_hq")
    right = 0.3 * np.sin(2 * np.pi * 440 * np.arange(left.size) / 48000)
    sf.write(str(root / "stereo48k.wav"), np.stack([left, right], 1).astype(np.float32), 48000, subtype="PCM_16")
    clip = librosa.resample(speech[: 22050 * 3], orig_sr=22050, target_sr=16000, res_type="soxr_hq")
    sf.write(str(root / "sub" / "clip.flac"), clip, 16000, subtype="PCM_16")
    (root / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "notes.wav").write_text("these are my notes, not audio\n" * 20)
    (root / "readme.txt").write_text("not audio, and not named like audio\n")
    return root


def expected_mel(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != 22050:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=22050, res_type="soxr_hq")
    return MelSpectrogram(MelConfig())(torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))).numpy()


GOOD = {"good.wav": "good.npy", "stereo48k.wav": "stereo48k.npy", "sub/clip.flac": "sub/clip.npy"}
BAD = ("corrupt.wav", "notes.wav")


def test_mel_folder_good_bad_skip_overwrite(audio_tree, tmp_path, capsys):
    out = tmp_path / "mels"
    code = cli_main(["mel", str(audio_tree), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1, "bad inputs must give a non-zero exit code"

    # Good files: mirrored tree, Tacotron2 layout (80, frames), float32, the values of the mono/resampled audio.
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(GOOD.values()), written  # nothing for bad inputs, no temp files, no .txt
    for src, dst in GOOD.items():
        mel = np.load(out / dst)
        ref = expected_mel(audio_tree / src)
        assert mel.dtype == np.float32 and mel.shape == ref.shape and mel.shape[0] == 80
        np.testing.assert_allclose(mel, ref, atol=1e-4, rtol=0)
    # The stereo file was resampled to 22.05 kHz (frame count) and mixed down (not just its left channel).
    stereo, _ = sf.read(str(audio_tree / "stereo48k.wav"), dtype="float32")
    frames_22k = round(stereo.shape[0] * 22050 / 48000) // 256 + 1
    mel = np.load(out / "stereo48k.npy")
    assert abs(mel.shape[1] - frames_22k) <= 1
    left = librosa.resample(stereo[:, 0], orig_sr=48000, target_sr=22050, res_type="soxr_hq")
    left_only = MelSpectrogram(MelConfig())(torch.from_numpy(left)).numpy()
    assert np.abs(mel - left_only[:, : mel.shape[1]]).max() > 0.5

    # Bad files: reported on stderr by name and reason.
    for name in BAD:
        lines = [line for line in err.splitlines() if name in line]
        assert len(lines) == 1, err
        assert lines[0].startswith("failed: ") and "not a readable audio file" in lines[0]
    assert "readme.txt" not in err
    assert "3 mel files written, 0 skipped (already done), 2 failed" in err

    # Second run: existing outputs are skipped, not rewritten (a sentinel and the mtimes survive).
    sentinel = np.full((80, 3), 7.0, dtype=np.float32)
    np.save(out / "good.npy", sentinel)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    assert cli_main(["mel", str(audio_tree), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "0 mel files written, 3 skipped (already done), 2 failed" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")} == mtimes
    np.testing.assert_array_equal(np.load(out / "good.npy"), sentinel)

    # --overwrite recomputes them.
    assert cli_main(["mel", str(audio_tree), "-o", str(out), "--no-progress", "--overwrite"]) == 1
    assert "3 mel files written, 0 skipped (already done), 2 failed" in capsys.readouterr().err
    np.testing.assert_allclose(np.load(out / "good.npy"), expected_mel(audio_tree / "good.wav"), atol=1e-4, rtol=0)


def test_mel_format_pt_is_weights_only_loadable(audio_tree, tmp_path, capsys):
    out = tmp_path / "mels_pt"
    assert cli_main(["mel", str(audio_tree / "good.wav"), str(audio_tree / "sub"), "-o", str(out),
                     "--format", "pt", "--no-progress"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.rglob("*.pt")) == ["clip.pt", "good.pt"]
    mel = torch.load(out / "good.pt", weights_only=True)
    assert isinstance(mel, torch.Tensor) and mel.dtype == torch.float32 and mel.dim() == 2
    np.testing.assert_allclose(mel.numpy(), expected_mel(audio_tree / "good.wav"), atol=1e-4, rtol=0)


def test_mel_settings_from_a_checkpoint(audio_tree, tmp_path, capsys):
    mel_cfg = MelConfig.for_sample_rate(16000, n_mels=40)
    torch.manual_seed(0)
    model = WaveGlow(WaveGlowConfig(n_mels=40, n_flows=2, n_early_size=0, n_layers=1, n_channels=8))
    ckpt = save_model(model, tmp_path / "voice.pt", mel_config=mel_cfg)
    out = tmp_path / "mels16k"
    assert cli_main(["mel", str(audio_tree / "sub" / "clip.flac"), "-o", str(out), "--checkpoint", str(ckpt),
                     "--no-progress"]) == 0
    capsys.readouterr()
    mel = np.load(out / "clip.npy")
    audio, _ = sf.read(str(audio_tree / "sub" / "clip.flac"), dtype="float32")  # already 16 kHz: no resampling
    np.testing.assert_allclose(mel, MelSpectrogram(mel_cfg)(torch.from_numpy(audio)).numpy(), atol=1e-4, rtol=0)
    assert mel.shape == (40, audio.size // 256 + 1)


def test_mel_missing_input_is_an_error(tmp_path, capsys):
    missing = tmp_path / "no_such_dir"
    assert cli_main(["mel", str(missing), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err and "no such file or folder" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------------------- benchmark script
def test_info_says_no_voiced_frames_for_the_f0_error_of_a_whisper(capsys):
    """A whisper's stored F0 error (V/UV F1 near 0: a few stray frames' thousands of cents) is printed as what
    it is; a voiced voice's (the starter's) as its number."""
    assert cli_main(["info", "starter"]) == 0
    scores = [line for line in capsys.readouterr().out.splitlines() if line.startswith("scores")]
    assert scores and all("f0_rmse_cents no voiced frames" not in line for line in scores), scores
    assert all(re.search(r"f0_rmse_cents \d+(\.\d+)?(,|$)", line) for line in scores), scores
    from waveflow.cli.models import readable_scores

    voiced = "pesq_wb 3.1, vuv_f1 0.91, f0_rmse_cents 21.5"
    assert readable_scores(voiced) == voiced
    assert readable_scores("vuv_f1 0.05, f0_rmse_cents 2.89e+03") == "vuv_f1 0.05, f0_rmse_cents no voiced frames"
    assert readable_scores("free text, not scores") == "free text, not scores"


def test_bench_flow_script_prints_json(capsys, monkeypatch):
    """Smoke test of scripts/bench_flow.py (tiny run): one JSON object per figure with the documented fields."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_flow.py"
    monkeypatch.syspath_prepend(str(path.parent))  # as `python scripts/bench_flow.py` has it (bench_configs)
    spec = importlib.util.spec_from_file_location("bench_flow", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--device", "cpu", "--config", "small", "--seconds", "0.05", "--repeats", "1",
                       "--warmup", "0", "--backward"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["figure"] for r in rows] == ["forward", "forward+backward", "inverse"]
    for r in rows:
        assert {"config", "device", "device_name", "dtype", "torch", "batch", "seconds", "khz",
                "realtime_factor"} <= set(r)
        assert r["config"] == "small" and r["device"] == "cpu" and r["dtype"] == "float32"
        assert r["khz"] > 0 and r["realtime_factor"] == pytest.approx(r["wall_s"] / (r["batch"] * r["seconds"]),
                                                                     rel=1e-2)
