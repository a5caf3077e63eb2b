"""Copy-synthesis quality metrics (``waveflow eval``): the vocoder against the original recordings, beside a
Griffin-Lim baseline made from the same mels.

Definitions (reference ``x``, synthesis ``y``, same rate and length):

* ``stft_distance``: multi-resolution STFT distance (Parallel WaveGAN's auxiliary loss), the mean over
  (n_fft, hop, win) = (512, 128, 512), (1024, 256, 1024), (2048, 512, 2048) of spectral convergence
  ``||X| - |Y||_F / ||X||_F`` plus log-magnitude L1 ``mean |ln(|X| + 1e-7) - ln(|Y| + 1e-7)|``. 0 = identical.
* ``log_mel_l1``: mean absolute difference of the model's natural-log mels (nats).
* ``mcd_db``: mel-cepstral distortion ``(10 / ln 10) * sqrt(2 * sum_{k=1..24} (c_k - c'_k)^2)`` in dB,
  averaged over frames no more than 60 dB below the reference's loudest frame. The mel-cepstrum ``c`` of a frame
  is the orthonormal DCT-II of its natural-log mel magnitudes divided by ``sqrt(2 * n_mels)``: the cepstrum
  of the log amplitude spectrum on the mel axis, so ``2 * sum_k c_k^2`` is the mean square of the log-mel
  difference across bands once its mean (``c_0``, loudness) is removed. Frames are aligned one to one (copy
  synthesis needs no DTW). Not comparable to SPTK-based MCDs of other papers to the decimal.
* ``pesq_wb``: ITU-T P.862.2 wideband PESQ at 16 kHz (both resampled), 1.04..4.64 (package ``pesq``).
* ``stoi``: short-time objective intelligibility, 0..1 (package ``pystoi``).
* ``f0_rmse_cents``/``f0_rmse_hz``: RMS F0 error over frames voiced in both (``librosa.pyin``, 60..500 Hz),
  in cents (``1200 log2(f_y / f_x)``) and in Hz. ``vuv_f1``: F1 of the synthesis's voiced decisions against
  the reference's. The F0 error is only defined for a clip whose synthesis is voiced where the reference is
  (``vuv_f1 >= F0_MIN_VUV_F1``); a whisper has at most a few stray frames the pitch tracker calls voiced, whose
  "error" of thousands of cents says nothing about pitch. Undefined values are NaN in the per-file rows,
  ``None`` in summaries and JSON, and printed as :data:`NO_VOICED` (``"no voiced frames"``).
* ``nll_nats``/``nll_bits``: exact test NLL of the reference under the model (sigma 1), nats per sample and
  bits per 16-bit sample (``nats / ln 2 + 15``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import librosa
import numpy as np
import scipy.fft
import torch

from .errors import WaveflowError
from .mel import MelConfig, MelSpectrogram

RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
MCD_COEFFS = 24
MCD_CONST = 10.0 / math.log(10.0)
F0_RANGE = (60.0, 500.0)
F0_MIN_VUV_F1 = 0.2  # below this V/UV agreement the synthesis is not voiced: its F0 error is undefined
NO_VOICED = "no voiced frames"
F0_ERRORS = ("f0_rmse_cents", "f0_rmse_hz")
SYSTEMS = ("waveflow", "griffin-lim")
METRICS = ("stft_distance", "log_mel_l1", "mcd_db", "pesq_wb", "stoi", "f0_rmse_cents", "f0_rmse_hz", "vuv_f1",
           "nll_nats", "nll_bits")


class MissingPackage(WaveflowError, RuntimeError):
    """An optional metric's package is not installed."""


def _stft_mag(x: np.ndarray, n_fft: int, hop: int, win: int) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    window = torch.hann_window(win, dtype=torch.float64)
    return torch.stft(t, n_fft, hop, win, window, center=True, pad_mode="reflect", return_complex=True).abs()


def stft_distance(ref: np.ndarray, syn: np.ndarray, resolutions=RESOLUTIONS) -> float:
    """Multi-resolution STFT distance (spectral convergence + log-magnitude L1, averaged over resolutions)."""
    total = 0.0
    for n_fft, hop, win in resolutions:
        x, y = _stft_mag(ref, n_fft, hop, win), _stft_mag(syn, n_fft, hop, win)
        sc = torch.linalg.norm(x - y) / torch.linalg.norm(x).clamp_min(1e-12)
        mag = (torch.log(x + 1e-7) - torch.log(y + 1e-7)).abs().mean()
        total += float(sc + mag)
    return total / len(resolutions)


def log_mels(audio: np.ndarray, config: MelConfig) -> np.ndarray:
    """Natural-log mel ``(n_mels, F)`` in float64 with the model's features."""
    return MelSpectrogram(config)(torch.from_numpy(np.asarray(audio, dtype=np.float64))).numpy()


def mel_cepstrum(logmel: np.ndarray, n_coeffs: int = MCD_COEFFS) -> np.ndarray:
    """``(n_mels, F)`` natural-log mel magnitudes -> ``(n_coeffs + 1, F)`` mel-cepstrum ``c_0..c_n``."""
    return scipy.fft.dct(logmel, type=2, norm="ortho", axis=0)[: n_coeffs + 1] / math.sqrt(2 * logmel.shape[0])


def mcd_from_logmels(ref: np.ndarray, syn: np.ndarray, n_coeffs: int = MCD_COEFFS, floor_db: float = 60.0) -> float:
    """MCD in dB between two aligned natural-log mels ``(n_mels, F)`` (see the module docstring)."""
    frames = min(ref.shape[1], syn.shape[1])
    ref, syn = ref[:, :frames], syn[:, :frames]
    diff = mel_cepstrum(ref, n_coeffs)[1:] - mel_cepstrum(syn, n_coeffs)[1:]
    per_frame = MCD_CONST * np.sqrt(2.0 * (diff**2).sum(axis=0))
    energy_db = 20.0 / math.log(10.0) * np.log(np.exp(ref).sum(axis=0))
    keep = energy_db >= energy_db.max() - floor_db
    return float(per_frame[keep].mean())


def pesq_wb(ref: np.ndarray, syn: np.ndarray, sample_rate: int) -> float:
    """Wideband PESQ (P.862.2) at 16 kHz."""
    try:
        from pesq import pesq
    except ImportError:
        raise MissingPackage("PESQ needs the 'pesq' package: pip install 'waveflow[eval]'") from None
    x = librosa.resample(np.asarray(ref, np.float64), orig_sr=sample_rate, target_sr=16000, res_type="soxr_hq")
    y = librosa.resample(np.asarray(syn, np.float64), orig_sr=sample_rate, target_sr=16000, res_type="soxr_hq")
    return float(pesq(16000, x, y, "wb"))


def stoi(ref: np.ndarray, syn: np.ndarray, sample_rate: int) -> float:
    """STOI (Taal et al., 2011), 0..1."""
    try:
        from pystoi import stoi as _stoi
    except ImportError:
        raise MissingPackage("STOI needs the 'pystoi' package: pip install 'waveflow[eval]'") from None
    return float(_stoi(np.asarray(ref, np.float64), np.asarray(syn, np.float64), sample_rate, extended=False))


def pitch(audio: np.ndarray, sample_rate: int, hop_length: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(f0 Hz with NaN where unvoiced, voiced flags)`` from ``librosa.pyin``."""
    f0, voiced, _ = librosa.pyin(np.asarray(audio, np.float64), fmin=F0_RANGE[0], fmax=F0_RANGE[1], sr=sample_rate,
                                 frame_length=4 * hop_length, hop_length=hop_length)
    return f0, voiced.astype(bool)


def f0_metrics(ref_pitch, syn_pitch) -> dict[str, float]:
    """F0 RMSE (cents, Hz) over frames voiced in both, and the F1 of the synthesis's voiced decisions."""
    (f_x, v_x), (f_y, v_y) = ref_pitch, syn_pitch
    n = min(len(v_x), len(v_y))
    f_x, v_x, f_y, v_y = f_x[:n], v_x[:n], f_y[:n], v_y[:n]
    both = v_x & v_y & np.isfinite(f_x) & np.isfinite(f_y)
    tp, fp, fn = int(both.sum()), int((v_y & ~v_x).sum()), int((v_x & ~v_y).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    if not both.any() or f1 < F0_MIN_VUV_F1:  # not voiced: see the module docstring
        return {"f0_rmse_cents": float("nan"), "f0_rmse_hz": float("nan"), "vuv_f1": float(f1)}
    cents = 1200.0 * np.log2(f_y[both] / f_x[both])
    return {
        "f0_rmse_cents": float(np.sqrt(np.mean(cents**2))),
        "f0_rmse_hz": float(np.sqrt(np.mean((f_y[both] - f_x[both]) ** 2))),
        "vuv_f1": float(f1),
    }


def griffin_lim(logmel: np.ndarray, config: MelConfig, length: int, n_iter: int = 32) -> np.ndarray:
    """Griffin-Lim baseline from a natural-log mel with librosa (same filterbank and STFT settings)."""
    return librosa.feature.inverse.mel_to_audio(
        np.exp(np.asarray(logmel, np.float64)), sr=config.sample_rate, n_fft=config.n_fft,
        hop_length=config.hop_length, win_length=config.win_length, window="hann", center=True, pad_mode="reflect",
        power=1.0, n_iter=n_iter, length=length, fmin=config.fmin, fmax=config.fmax, htk=False, norm="slaney",
    ).astype(np.float32)


@dataclass
class MetricSet:
    """Which metrics to compute; a missing optional package turns its metric off with a note."""

    pesq: bool = True
    stoi: bool = True
    f0: bool = True
    notes: list[str] = field(default_factory=list)


def compare(ref: np.ndarray, syn: np.ndarray, config: MelConfig, which: MetricSet, ref_pitch=None) -> dict[str, float]:
    """Every copy-synthesis metric of ``syn`` against ``ref`` (same rate ``config.sample_rate``)."""
    n = min(len(ref), len(syn))
    ref, syn = np.asarray(ref[:n], np.float64), np.asarray(syn[:n], np.float64)
    sr = config.sample_rate
    x_mel, y_mel = log_mels(ref, config), log_mels(syn, config)
    out = {
        "stft_distance": stft_distance(ref, syn),
        "log_mel_l1": float(np.abs(x_mel - y_mel).mean()),
        "mcd_db": mcd_from_logmels(x_mel, y_mel),
    }
    for name, enabled, fn in (("pesq_wb", which.pesq, pesq_wb), ("stoi", which.stoi, stoi)):
        if enabled:
            try:
                out[name] = fn(ref, syn, sr)
            except MissingPackage as e:
                which.notes.append(str(e))
                setattr(which, "pesq" if name == "pesq_wb" else "stoi", False)
            except Exception as e:  # noqa: BLE001 - e.g. PESQ finds no speech in a clip
                which.notes.append(f"{name} failed on a clip: {type(e).__name__}: {e}")
    if which.f0:
        out.update(f0_metrics(ref_pitch or pitch(ref, sr, config.hop_length), pitch(syn, sr, config.hop_length)))
    return out


def summarize(rows: Iterable[dict]) -> dict[str, dict[str, float | None]]:
    """Mean of each metric per system over files (NaNs ignored; ``None`` where a system has no value, and for
    the F0 error of a system that is not voiced on the whole: mean ``vuv_f1`` below :data:`F0_MIN_VUV_F1`)."""
    rows = list(rows)
    table: dict[str, dict[str, float | None]] = {}
    for system in SYSTEMS:
        table[system] = {}
        for metric in METRICS:
            values = [r[system][metric] for r in rows if system in r and r[system].get(metric) is not None]
            values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
            table[system][metric] = float(np.mean(values)) if values else None
        for metric in F0_ERRORS:
            if unvoiced(metric, table[system]):
                table[system][metric] = None
    return table


def unvoiced(metric: str, scores: dict) -> bool:
    """Whether ``metric`` of a system's ``scores`` (one file's or a summary's) is undefined because the synthesis
    is not voiced: an F0 error where F0 was measured (``vuv_f1`` present) and no error was, or could be, taken."""
    f1 = scores.get("vuv_f1")
    if metric not in F0_ERRORS or f1 is None or (isinstance(f1, float) and math.isnan(f1)):
        return False
    value = scores.get(metric)
    return value is None or (isinstance(value, float) and math.isnan(value)) or f1 < F0_MIN_VUV_F1


def format_table(table: dict[str, dict[str, float | None]], count: int) -> str:
    """The printed table: one row per metric, one column per system (``-`` where it does not apply,
    :data:`NO_VOICED` for an F0 error of a synthesis that is not voiced)."""
    better = {"pesq_wb": "higher", "stoi": "higher", "vuv_f1": "higher"}
    rows = []
    for metric in METRICS:
        values = [table.get(s, {}).get(metric) for s in SYSTEMS]
        if all(v is None for v in values) and not any(unvoiced(metric, table.get(s, {})) for s in SYSTEMS):
            continue
        cells = [NO_VOICED if unvoiced(metric, table.get(s, {})) else "-" if v is None else f"{v:.4f}"
                 for s, v in zip(SYSTEMS, values)]
        rows.append((metric, cells, better.get(metric, "lower")))
    widths = [max(len(name) + 2, *(len(cells[i]) + 2 for _, cells, _ in rows)) for i, name in enumerate(SYSTEMS)]
    lines = [f"copy synthesis of {count} file(s): mean per file",
             f"{'metric':<16}" + "".join(f"{name:>{w}}" for name, w in zip(SYSTEMS, widths)) + "  better"]
    for metric, cells, direction in rows:
        lines.append(f"{metric:<16}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths)) + f"  {direction}")
    return "\n".join(lines)
