"""``waveflow vocode`` / ``waveflow synth`` and mel file validation (issue 4). CPU, tiny model, tmp_path only."""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import randomize_ends

from waveflow import WaveGlow, WaveGlowConfig, save_model
from waveflow.cli import main
from waveflow.inference import Vocoder, derive_seed
from waveflow.mel_io import MelFileError, MelScaleWarning, load_mel, read_mel

HOP = 256
N_GOOD = 20


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = WaveGlowConfig(n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=2, n_channels=16)
    # small end weights and sigma keep outputs mostly within [-1, 1]
    model = randomize_ends(WaveGlow(cfg), std=0.05, seed=1)
    return save_model(model, tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def ln_mel(frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mel = rng.normal(-6.0, 1.5, size=(80, frames)).astype(np.float32)
    mel[:, 0] = np.log(1e-5)  # like real mels: silence reaches the floor
    return mel


def make_corpus(root: Path) -> dict[str, str]:
    """20 good mels of different lengths in a nested tree, plus bad files; returns {bad file: reason pattern}."""
    for i in range(N_GOOD):
        sub = root / ("a" if i % 2 else "b/c")
        sub.mkdir(parents=True, exist_ok=True)
        mel = ln_mel(3 + i, seed=i)
        if i % 5 == 4:
            torch.save(torch.from_numpy(mel), sub / f"utt{i:02d}.pt")
        else:
            np.save(sub / f"utt{i:02d}.npy", mel)
    bad = root / "bad"
    bad.mkdir()
    nan = ln_mel(10, 99)
    nan[5, 5] = np.nan
    np.save(bad / "nan.npy", nan)
    np.save(bad / "wrong_nmels.npy", ln_mel(10, 98)[:60])
    full = (bad / "nan.npy").read_bytes()
    np.save(bad / "truncated.npy", ln_mel(30, 97))
    (bad / "truncated.npy").write_bytes((bad / "truncated.npy").read_bytes()[: len(full) // 2])
    (bad / "text.npy").write_text("0.1 0.2 0.3\n0.4 0.5 0.6\n")
    np.save(bad / "empty.npy", np.zeros((80, 0), np.float32))
    np.save(bad / "ints.npy", np.zeros((80, 10), np.int64))
    torch.save({"a": torch.zeros(80, 10), "b": torch.zeros(80, 10)}, bad / "dict.pt")  # which one?
    return {
        "nan.npy": "NaN",
        "wrong_nmels.npy": "mel bins",
        "truncated.npy": "truncated",
        "text.npy": "text file",
        "empty.npy": "empty",
        "ints.npy": "dtype int64",
        "dict.pt": "none under 'mel'",
    }


def listing(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the SHA-1 of its content."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def read(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float32")
    assert rate == 22050
    return audio


def test_vocode_folder_with_bad_files(tmp_path, checkpoint, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # stray relative writes would land here and show up below
    mels, out = tmp_path / "mels", tmp_path / "out"
    bad = make_corpus(mels)
    frames_first = ln_mel(17, 77)
    np.save(mels / "frames_first.npy", frames_first.T)  # (frames, n_mels): detected, transposed, noted
    before = listing(tmp_path)
    args = ["vocode", "mels", "-o", "out", "--checkpoint", str(checkpoint), "--subtype", "FLOAT", "--seed", "7",
            "--batch-frames", "60", "--jobs", "3", "--summary", "out/summary.json", "--no-progress"]
    assert main(args) == 1  # something failed
    err = capsys.readouterr().err

    # nothing outside OUT_DIR changed; inputs untouched
    after = listing(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("out/")} == before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] == N_GOOD + 1 and summary["failed"] == len(bad) and summary["skipped"] == 0
    reasons = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    assert set(reasons) == set(bad)
    for name, pattern in bad.items():
        assert pattern in reasons[name], (name, reasons[name])
        assert f"failed: mels/bad/{name}: " in err
    assert any("frames_first.npy" in w["path"] and "(frames, n_mels)" in w["reason"] for w in summary["warnings"])
    assert "21 audio files written, 0 skipped (already done), 7 failed" in err
    assert summary["audio_seconds"] > 0 and summary["rtf"] > 0

    # every good output: exactly frames * hop samples, equal to vocoding the file alone with its seed
    vocoder = Vocoder(checkpoint, chunk_frames=10**6)
    good = sorted(p for p in mels.rglob("utt*")) + [mels / "frames_first.npy"]
    assert len(good) == N_GOOD + 1
    for src in good:
        rel = src.relative_to(mels)
        mel = load_mel(src, 80) if src.name != "frames_first.npy" else torch.from_numpy(frames_first)
        alone = vocoder.vocode(mel, seed=derive_seed(7, rel.as_posix())).numpy()
        audio = read(out / rel.with_suffix(".wav"))
        assert audio.shape == (mel.shape[1] * HOP,)
        # measured max |diff| <= 1e-6 (float32 rounding of padded batches)
        np.testing.assert_allclose(audio, alone, atol=1e-5, rtol=0)
    assert not list(out.rglob("*.tmp*")) and not list(out.rglob(".*"))

    # a rerun skips what is done, rewrites nothing, and still reports the bad files
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    assert main(args[:-3] + ["--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "0 audio files written, 21 skipped (already done), 7 failed" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == mtimes


def test_batching_does_not_change_the_audio(tmp_path, checkpoint):
    mels = tmp_path / "mels"
    mels.mkdir()
    for i in range(4):
        np.save(mels / f"m{i}.npy", ln_mel(4 + 5 * i, seed=i))
    common = ["--checkpoint", str(checkpoint), "--subtype", "FLOAT", "--no-progress"]
    assert main(["vocode", str(mels), "-o", str(tmp_path / "one"), "--batch-frames", "1", "--jobs", "1"] + common) == 0
    assert main(["vocode", str(mels), "-o", str(tmp_path / "many"), "--batch-frames", "10000"] + common) == 0
    for i in range(4):
        np.testing.assert_allclose(read(tmp_path / "one" / f"m{i}.wav"), read(tmp_path / "many" / f"m{i}.wav"),
                                   atol=1e-5, rtol=0)


def test_formats_rescale_and_overwrite(tmp_path, checkpoint, capsys):
    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "loud.npy", ln_mel(12, 3))
    base = ["vocode", str(mels), "--checkpoint", str(checkpoint), "--no-progress", "--sigma", "3.0"]
    assert main(base + ["-o", str(tmp_path / "clip")]) == 0
    assert "samples clipped" in capsys.readouterr().err
    assert main(base + ["-o", str(tmp_path / "flac"), "--format", "flac", "--rescale"]) == 0
    assert "rescaled by" in capsys.readouterr().err
    info = sf.info(str(tmp_path / "flac" / "loud.flac"))
    assert info.format == "FLAC" and info.subtype == "PCM_16" and info.frames == 12 * HOP
    audio = sf.read(str(tmp_path / "flac" / "loud.flac"), dtype="float32")[0]
    assert 0.99 <= np.abs(audio).max() <= 0.9991
    # --overwrite redoes the file; FLAC has no float subtype
    assert main(base + ["-o", str(tmp_path / "flac"), "--format", "flac", "--overwrite"]) == 0
    assert "1 audio files written" in capsys.readouterr().err
    assert main(base + ["-o", str(tmp_path / "x"), "--format", "flac", "--subtype", "FLOAT"]) == 1
    assert "FLAC has no float subtype" in capsys.readouterr().err


def test_mel_scale_conversion(tmp_path, checkpoint):
    ln = ln_mel(15, 5)
    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "log10.npy", ln / math.log(10))
    np.save(mels / "db.npy", ln * 20 / math.log(10))
    common = ["--checkpoint", str(checkpoint), "--subtype", "FLOAT", "--no-progress"]
    for scale in ("log10", "db"):
        out = tmp_path / scale
        assert main(["vocode", str(mels / f"{scale}.npy"), "-o", str(out), "--mel-scale", scale] + common) == 0
        expected = Vocoder(checkpoint).vocode(torch.from_numpy(ln), seed=derive_seed(1234, f"{scale}.npy")).numpy()
        np.testing.assert_allclose(read(out / f"{scale}.wav"), expected, atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------- load_mel
def test_load_mel_layouts(tmp_path):
    mel = ln_mel(30, 0)
    np.save(tmp_path / "batch1.npy", mel[None])
    torch.save(torch.from_numpy(mel).half(), tmp_path / "half.pt")
    np.save(tmp_path / "ff.npy", mel.T)
    for name in ("batch1.npy", "half.pt"):
        got = load_mel(tmp_path / name, 80)
        assert got.dtype == torch.float32 and got.shape == (80, 30)
        np.testing.assert_allclose(got.numpy(), mel, atol=1e-2 if name == "half.pt" else 0)
    with pytest.warns(MelScaleWarning, match=r"ff\.npy.*\(frames, n_mels\)"):
        assert torch.equal(load_mel(tmp_path / "ff.npy", 80), torch.from_numpy(mel))
    assert torch.equal(load_mel(tmp_path / "ff.npy", 80, layout="frames-first"), torch.from_numpy(mel))
    with pytest.raises(MelFileError, match="mels-first"):
        load_mel(tmp_path / "ff.npy", 80, layout="mels-first")
    # a dict as some TTS scripts save it: its 'mel' tensor, or its only tensor; the legacy format too
    torch.save({"mel": torch.from_numpy(mel), "lengths": torch.tensor([30])}, tmp_path / "dict.pt")
    torch.save({"text": "hello", "feats": torch.from_numpy(mel)}, tmp_path / "one.pt",
               _use_new_zipfile_serialization=False)
    for name in ("dict.pt", "one.pt"):
        assert torch.equal(load_mel(tmp_path / name, 80), torch.from_numpy(mel)), name
    torch.save({"mel": mel.tolist(), "lengths": torch.tensor([30])}, tmp_path / "listed.pt")
    with pytest.raises(MelFileError, match="'mel' is a list, not a tensor"):
        load_mel(tmp_path / "listed.pt", 80)
    square = ln_mel(80, 1)
    np.save(tmp_path / "square.npy", square)
    with pytest.warns(MelScaleWarning, match="ambiguous"):
        assert torch.equal(load_mel(tmp_path / "square.npy", 80), torch.from_numpy(square))
    with pytest.raises(MelFileError) as e:
        load_mel(tmp_path / "batch1.npy", 100)
    assert e.value.path.endswith("batch1.npy") and "100" in e.value.reason and isinstance(e.value, ValueError)


def test_load_mel_rejects_bad_files(tmp_path):
    bad = make_corpus(tmp_path)
    for name, pattern in bad.items():
        with pytest.raises(MelFileError, match=pattern):
            load_mel(tmp_path / "bad" / name, 80)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(MelFileError, match="object"):
        load_mel(tmp_path / "obj.npy", 80)
    (tmp_path / "zero.pt").write_bytes(b"")
    with pytest.raises(MelFileError, match="0 bytes"):
        load_mel(tmp_path / "zero.pt", 80)


def test_scale_warnings(tmp_path):
    ln = ln_mel(40, 2)
    cases = {"ln": ln, "log10": ln / math.log(10), "db": ln * 20 / math.log(10), "linear": np.exp(ln)}
    for name, mel in cases.items():
        np.save(tmp_path / f"{name}.npy", mel)
        _, notes = read_mel(tmp_path / f"{name}.npy", 80)
        if name == "ln":
            assert notes == []
        else:
            assert len(notes) == 1 and ("--mel-scale" in notes[0] or name == "linear"), notes
            assert (name if name != "db" else "dB") in notes[0] or name == "linear"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        converted = load_mel(tmp_path / "db.npy", 80, scale="db")
    np.testing.assert_allclose(converted.numpy(), ln, atol=1e-5)


# ---------------------------------------------------------------------------------------------- synth
def test_synth_any_rate(tmp_path, checkpoint):
    src = tmp_path / "in" / "sub"
    src.mkdir(parents=True)
    t = np.arange(12000) / 16000.0
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * np.exp(-t)).astype(np.float32)
    sf.write(str(src / "clip.flac"), audio, 16000)
    out = tmp_path / "out"
    assert main(["synth", str(tmp_path / "in"), "-o", str(out), "--checkpoint", str(checkpoint), "--subtype",
                 "FLOAT", "--no-progress"]) == 0
    got = read(out / "sub" / "clip.wav")
    assert got.shape == (round(12000 * 22050 / 16000),)
    audio = sf.read(str(src / "clip.flac"), dtype="float32")[0]  # what synth reads: 16-bit FLAC
    expected = Vocoder(checkpoint).copy_synthesis(audio, 16000, seed=derive_seed(1234, "sub/clip")).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert sorted(os.listdir(out)) == ["sub"]


def test_power_log_mels_are_told_apart_and_converted():
    """``np.log(librosa.feature.melspectrogram(...))`` (power 2, unclamped) is twice Tacotron2's log-mel: the
    reader warns with the fix, and ``ln-power`` gives Tacotron2's values back (librosa as the reference)."""
    import librosa

    from waveflow import MelConfig, MelSpectrogram
    from waveflow.mel_io import scale_problem, to_natural_log

    rng = np.random.default_rng(0)
    t = np.arange(22050) / 22050
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.3) + 1e-4 * rng.standard_normal(t.size)).astype(np.float32)
    power = librosa.feature.melspectrogram(y=audio, sr=22050, n_fft=1024, hop_length=256, win_length=1024,
                                           n_mels=80, fmax=8000.0)
    ln_power = torch.from_numpy(np.log(power)).float()
    assert "ln-power" in (scale_problem(ln_power) or "")
    ours = MelSpectrogram(MelConfig())(torch.from_numpy(audio))
    assert scale_problem(ours) is None
    converted = to_natural_log(ln_power, "ln-power")
    loud = ours > -6  # where the floors do not decide
    before, after = (ln_power - ours)[loud].abs().mean(), (converted - ours)[loud].abs().mean()
    # Halving is exact only per bin: a power mel sums squared bins (and squares nothing of the filter weights),
    # so ln-power is a closer guess, not Tacotron2's mel; the warning says to recompute with power=1.
    assert after < before and before > 2.0, (float(before), float(after))
    magnitude = np.log(np.maximum(librosa.feature.melspectrogram(
        y=audio, sr=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmax=8000.0, power=1.0), 1e-5))
    assert scale_problem(torch.from_numpy(magnitude).float()) is None
