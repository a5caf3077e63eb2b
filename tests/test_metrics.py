"""Copy-synthesis metrics and ``waveflow eval`` (issue 4): hand-computed cases and independent references."""

from __future__ import annotations

import json
import math

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import espeak, randomize_ends

from waveflow import MelConfig, WaveGlow, WaveGlowConfig, save_model
from waveflow.cli import main
from waveflow.metrics import (
    F0_MIN_VUV_F1,
    MCD_CONST,
    NO_VOICED,
    f0_metrics,
    format_table,
    griffin_lim,
    log_mels,
    mcd_from_logmels,
    mel_cepstrum,
    pesq_wb,
    pitch,
    stft_distance,
    stoi,
    summarize,
)

SR = 22050
CFG = MelConfig()


def noise(n: int, seed: int, scale: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)


# ---------------------------------------------------------------------------------------------- distances
def test_identical_signals_have_zero_distance():
    x = noise(SR, 0)
    assert stft_distance(x, x) == 0.0
    mel = log_mels(x, CFG)
    assert mcd_from_logmels(mel, mel) == 0.0
    assert np.abs(mel - log_mels(x.copy(), CFG)).max() == 0.0


def test_stft_distance_matches_librosa():
    """Independent implementation with librosa.stft (float64)."""
    x, y = noise(12000, 1), noise(12000, 2) + noise(12000, 3, 0.5) * 0.1

    def reference(a, b):
        total = 0.0
        for n_fft, hop, win in ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048)):
            A = np.abs(librosa.stft(a.astype(np.float64), n_fft=n_fft, hop_length=hop, win_length=win, window="hann",
                                    center=True, pad_mode="reflect"))
            B = np.abs(librosa.stft(b.astype(np.float64), n_fft=n_fft, hop_length=hop, win_length=win, window="hann",
                                    center=True, pad_mode="reflect"))
            total += np.linalg.norm(A - B) / np.linalg.norm(A) + np.mean(np.abs(np.log(A + 1e-7) - np.log(B + 1e-7)))
        return total / 3

    assert stft_distance(x, y) == pytest.approx(reference(x, y), rel=1e-6)
    assert stft_distance(x, 0.5 * x) > 0


def test_mcd_hand_computed():
    """A log-mel difference equal to a DCT basis vector of amplitude a has c_1 = a / 2, so
    MCD = (10 / ln 10) * sqrt(2 * (a/2)^2) = (10 / ln 10) * a / sqrt(2); a loudness change (c_0) costs nothing."""
    rng = np.random.default_rng(0)
    ref = rng.normal(-5, 2, size=(80, 50))
    a = 0.3
    n = np.arange(80)
    basis = np.cos(np.pi * 1 * (n + 0.5) / 80)[:, None]
    assert mcd_from_logmels(ref, ref + a * basis) == pytest.approx(MCD_CONST * a / math.sqrt(2), rel=1e-9)
    assert mcd_from_logmels(ref, ref + 1.7) == pytest.approx(0.0, abs=1e-9)
    # the cepstrum is the ortho DCT scaled to true cepstral units: c_1 of the basis vector is 1/2
    assert mel_cepstrum(basis)[1, 0] == pytest.approx(0.5)
    assert MCD_CONST == pytest.approx(4.342944819, rel=1e-9)


def test_f0_metrics_hand_computed():
    f_x = np.array([100.0, 200.0, np.nan, 150.0, np.nan, 120.0])
    v_x = np.array([1, 1, 0, 1, 0, 1], bool)
    cents = 50.0
    f_y = f_x * 2 ** (cents / 1200)
    v_y = np.array([1, 1, 1, 0, 0, 1], bool)  # one false voiced, one missed
    f_y[2] = 300.0
    out = f0_metrics((f_x, v_x), (f_y, v_y))
    assert out["f0_rmse_cents"] == pytest.approx(cents)
    hz = f_y[[0, 1, 5]] - f_x[[0, 1, 5]]
    assert out["f0_rmse_hz"] == pytest.approx(np.sqrt(np.mean(hz**2)))
    tp, fp, fn = 3, 1, 1
    assert out["vuv_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_f0_error_of_a_whisper_is_undefined_not_a_number():
    """A synthesis the pitch tracker calls voiced on a few stray frames (a whisper: V/UV F1 0.05) has frames
    voiced in both, but their "F0 error" (an octave and more) says nothing: it is NaN, and the table says why."""
    n = 400
    f_x, v_x = np.full(n, 150.0), np.ones(n, bool)
    v_y = np.zeros(n, bool)
    v_y[:10] = True  # 10 stray voiced frames, all where the reference is voiced
    f_y = np.where(v_y, 600.0, np.nan)
    out = f0_metrics((f_x, v_x), (f_y, v_y))
    assert out["vuv_f1"] == pytest.approx(2 * 10 / (2 * 10 + 390)) and out["vuv_f1"] < F0_MIN_VUV_F1
    assert math.isnan(out["f0_rmse_cents"]) and math.isnan(out["f0_rmse_hz"])
    # voiced on half the reference's frames: the error is defined again (one octave = 1200 cents)
    v_y[:200] = True
    out = f0_metrics((f_x, v_x), (np.where(v_y, 300.0, np.nan), v_y))
    assert out["f0_rmse_cents"] == pytest.approx(1200.0)


def test_summary_and_table_say_no_voiced_frames():
    whisper = {"stft_distance": 2.0, "f0_rmse_cents": float("nan"), "f0_rmse_hz": float("nan"), "vuv_f1": 0.0}
    voiced = {"stft_distance": 3.0, "f0_rmse_cents": 14.0, "f0_rmse_hz": 0.8, "vuv_f1": 0.86}
    rows = [{"waveflow": whisper, "griffin-lim": voiced}, {"waveflow": dict(whisper, vuv_f1=0.1), "griffin-lim": voiced}]
    table = summarize(rows)
    assert table["waveflow"]["f0_rmse_cents"] is None and table["waveflow"]["vuv_f1"] == pytest.approx(0.05)
    assert table["griffin-lim"]["f0_rmse_cents"] == pytest.approx(14.0)
    # one stray clip with a number among whispers: the set is not voiced, its F0 error is not reported either
    stray = dict(whisper, f0_rmse_cents=2890.0, f0_rmse_hz=400.0, vuv_f1=0.15)
    assert summarize([*rows, {"waveflow": stray}])["waveflow"]["f0_rmse_cents"] is None
    lines = {line.split()[0]: line for line in format_table(table, 2).splitlines()[2:]}
    assert lines["f0_rmse_cents"].split()[1:] == [*NO_VOICED.split(), "14.0000", "lower"]
    assert lines["f0_rmse_hz"].split()[1:] == [*NO_VOICED.split(), "0.8000", "lower"]
    assert lines["stft_distance"].split()[1:] == ["2.0000", "3.0000", "lower"]
    # without F0 (eval --no-f0) there are no F0 rows at all, rather than a claim about voicing
    no_f0 = summarize([{"waveflow": {"stft_distance": 2.0}, "griffin-lim": {"stft_distance": 3.0}}])
    assert "f0_rmse" not in format_table(no_f0, 1) and NO_VOICED not in format_table(no_f0, 1)


def test_pitch_of_sines():
    t = np.arange(SR) / SR
    a, b = 0.5 * np.sin(2 * np.pi * 200 * t), 0.5 * np.sin(2 * np.pi * 210 * t)
    out = f0_metrics(pitch(a, SR), pitch(b, SR))
    assert out["f0_rmse_cents"] == pytest.approx(1200 * math.log2(210 / 200), abs=5)
    assert out["vuv_f1"] > 0.95


# ---------------------------------------------------------------------------------------------- PESQ/STOI/GL
def test_pesq_stoi_of_a_signal_with_itself(speech_22k):
    x = np.array(speech_22k)
    assert pesq_wb(x, x, SR) == pytest.approx(4.644, abs=0.01)  # P.862.2's maximum
    assert stoi(x, x, SR) == pytest.approx(1.0, abs=1e-6)
    degraded = x + noise(len(x), 4, 0.05)
    assert pesq_wb(x, degraded, SR) < 3.0 and stoi(x, degraded, SR) < 0.99


def test_griffin_lim_inverts_the_mel(speech_22k):
    x = np.array(speech_22k[: SR * 2])
    mel = log_mels(x, CFG)
    y = griffin_lim(mel, CFG, len(x), n_iter=32)
    assert y.shape == x.shape
    # magnitude-only reconstruction: the log-mel of the result is close (measured L1 ~0.2 nats)
    assert np.abs(log_mels(y, CFG) - mel).mean() < 0.5


# ---------------------------------------------------------------------------------------------- eval command
def test_eval_with_the_default_voice_notes_it_once(tmp_path, capsys):
    t = np.arange(SR) / SR
    sf.write(str(tmp_path / "a.wav"), 0.3 * np.sin(2 * np.pi * 150 * t), SR, subtype="PCM_16")
    code = main(["eval", str(tmp_path / "a.wav"), "--griffin-lim-iters", "0", "--no-pesq", "--no-stoi", "--no-f0",
                 "--no-progress"])
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("note: using the bundled 'starter' voice") == 1, err


@pytest.mark.slow
def test_eval_end_to_end(tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, text in enumerate(("Flow based models turn noise into speech.", "Seven vocoders sing.")):
        sf.write(str(clips / f"utt{i}.wav"), espeak(text, tmp_path / f"raw{i}.wav"), SR, subtype="PCM_16")
    (clips / "broken.wav").write_text("not audio")
    torch.manual_seed(0)
    cfg = WaveGlowConfig(n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=2, n_channels=16)
    model = randomize_ends(WaveGlow(cfg), std=0.05, seed=2)
    ckpt = save_model(model, tmp_path / "tiny.pt")
    out = tmp_path / "eval.json"
    code = main(["eval", str(clips), "--checkpoint", str(ckpt), "--json", str(out), "--griffin-lim-iters", "16",
                 "--no-progress"])
    assert code == 1  # broken.wav failed; the others were evaluated
    assert "f0_rmse_cents" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["count"] == 2 and [f["file"].endswith("broken.wav") for f in result["failures"]] == [True]
    table = result["table"]
    for metric in ("stft_distance", "log_mel_l1", "mcd_db", "pesq_wb", "stoi", "vuv_f1", "nll_nats", "nll_bits"):
        assert table["waveflow"][metric] is not None, metric
    for metric in ("stft_distance", "log_mel_l1", "mcd_db", "pesq_wb", "stoi", "f0_rmse_cents", "vuv_f1"):
        assert table["griffin-lim"][metric] is not None, metric
    # the untrained model makes noise: no frame is voiced in both, so its F0 error is undefined (null)
    assert table["griffin-lim"]["nll_nats"] is None
    # an untrained model is far worse than Griffin-Lim
    assert table["griffin-lim"]["log_mel_l1"] < table["waveflow"]["log_mel_l1"]
    assert 1.0 <= table["waveflow"]["pesq_wb"] <= 4.65

    # the NLL agrees with the model's own nll on the same clip (independent path: weight-normed model)
    row = next(r for r in result["files"] if r["file"].endswith("utt0.wav"))
    audio, _ = sf.read(str(clips / "utt0.wav"), dtype="float32")
    audio = torch.from_numpy(audio[: len(audio) // 8 * 8])[None]
    from waveflow import MelSpectrogram

    with torch.no_grad():
        expected = model.nll(audio, MelSpectrogram(CFG)(audio), sigma=1.0)
    assert row["waveflow"]["nll_nats"] == pytest.approx(float(expected.nll), abs=1e-4)
    assert row["waveflow"]["nll_bits"] == pytest.approx(float(expected.nll) / math.log(2) + 15, abs=1e-3)

    # an LJSpeech-layout folder and a list file are accepted too
    lj = tmp_path / "LJ"
    (lj / "wavs").mkdir(parents=True)
    (lj / "wavs" / "LJ001-0001.wav").write_bytes((clips / "utt1.wav").read_bytes())
    (lj / "metadata.csv").write_text("LJ001-0001|Seven vocoders sing.|Seven vocoders sing.\n")
    (tmp_path / "test.txt").write_text("utt1|clips/utt1.wav\n")
    for source in (lj, tmp_path / "test.txt"):
        assert main(["eval", str(source), "--checkpoint", str(ckpt), "--griffin-lim-iters", "0", "--no-pesq",
                     "--no-stoi", "--no-f0", "--no-progress"]) == 0
