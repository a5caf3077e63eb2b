"""Mel-spectrogram frontend, identical by default to Tacotron2's ``TacotronSTFT`` as used with WaveGlow.

Tacotron2 computes: reflect-pad ``n_fft/2`` on both sides, STFT with a periodic Hann window of ``win_length``
(centred in ``n_fft``), magnitude (not power), librosa's Slaney mel filterbank with Slaney area
normalisation, natural log of ``clamp(x, 1e-5)``. Mels written by Tacotron2 models are in exactly this scale,
so a vocoder trained on these features vocodes them without conversion.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import librosa
import numpy as np
import torch
from torch import nn

from .config import require


@dataclass
class MelConfig:
    """How audio becomes a log-mel spectrogram. Defaults are Tacotron2's (LJSpeech, 22.05 kHz).

    Attributes:
        sample_rate: audio sample rate in Hz.
        n_fft: FFT size.
        hop_length: samples between frames; the vocoder produces exactly ``hop_length`` samples per frame.
        win_length: analysis window length (periodic Hann), centred inside ``n_fft``.
        n_mels: number of mel bands.
        fmin: lowest filter edge in Hz.
        fmax: highest filter edge in Hz (``None`` = Nyquist).
        clamp_min: floor applied to the mel magnitude before the natural log (``ln(1e-5) = -11.51``).
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0
    clamp_min: float = 1e-5

    def __post_init__(self) -> None:
        require(self.sample_rate > 0, f"mel.sample_rate must be positive, got {self.sample_rate}")
        require(self.n_fft > 0, f"mel.n_fft must be positive, got {self.n_fft}")
        require(0 < self.hop_length, f"mel.hop_length must be positive, got {self.hop_length}")
        require(
            0 < self.win_length <= self.n_fft,
            f"mel.win_length must be in 1..n_fft ({self.n_fft}), got {self.win_length}",
        )
        require(self.n_mels > 0, f"mel.n_mels must be positive, got {self.n_mels}")
        nyquist = self.sample_rate / 2
        fmax = nyquist if self.fmax is None else self.fmax
        require(
            0 <= self.fmin < fmax <= nyquist,
            f"mel frequency range must satisfy 0 <= fmin < fmax <= sample_rate/2 ({nyquist:g} Hz), "
            f"got fmin={self.fmin}, fmax={self.fmax}",
        )
        require(self.clamp_min > 0, f"mel.clamp_min must be positive, got {self.clamp_min}")

    @property
    def log_floor(self) -> float:
        """The smallest value a log-mel can take (silence): ``ln(clamp_min)``."""
        return math.log(self.clamp_min)

    @classmethod
    def for_sample_rate(cls, sample_rate: int, **overrides) -> MelConfig:
        """Tacotron2-like settings scaled to ``sample_rate`` (window ~46 ms, hop ~11.6 ms, fmax 8 kHz).

        16 kHz gives n_fft 1024 / hop 256 like 22.05 kHz (the common choice); 44.1 and 48 kHz double
        the window and hop so a frame spans the same time. Any field can be overridden.
        """
        scale = 2 if sample_rate >= 32000 else 1
        base = {
            "sample_rate": sample_rate,
            "n_fft": 1024 * scale,
            "hop_length": 256 * scale,
            "win_length": 1024 * scale,
            "fmax": min(8000.0, sample_rate / 2),
        }
        base.update(overrides)
        return cls(**base)

    def replace(self, **changes) -> MelConfig:
        return dataclasses.replace(self, **changes)


def mel_filterbank(config: MelConfig) -> np.ndarray:
    """Slaney-scale, Slaney-normalised filterbank ``(n_mels, n_fft // 2 + 1)`` in float64 (librosa's)."""
    return librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        htk=False,
        norm="slaney",
        dtype=np.float64,
    )


class MelSpectrogram(nn.Module):
    """Batched, differentiable log-mel spectrogram on any device and dtype.

    Example:
        >>> mel_fn = MelSpectrogram(MelConfig())
        >>> logmel = mel_fn(audio)          # (B, T) in [-1, 1] -> (B, 80, T // 256 + 1)
    """

    def __init__(self, config: MelConfig | None = None):
        super().__init__()
        self.config = config or MelConfig()
        # Buffers move with .to(device); they are derived, so they are not saved in state dicts.
        self.register_buffer(
            "window", torch.hann_window(self.config.win_length, periodic=True, dtype=torch.float64), persistent=False
        )
        self.register_buffer("mel_basis", torch.from_numpy(mel_filterbank(self.config)), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` of audio (centred STFT): ``T // hop + 1``."""
        return num_samples // self.config.hop_length + 1

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude ``(B, n_fft // 2 + 1, F)`` in float32 (or float64 for float64 input)."""
        cfg = self.config
        if audio.shape[-1] <= cfg.n_fft // 2:
            raise ValueError(
                f"audio of {audio.shape[-1]} samples is too short for a mel spectrogram: reflect padding "
                f"needs more than n_fft/2 = {cfg.n_fft // 2} samples"
            )
        # The STFT runs in float64 wherever the device has it (not MPS): in float32, quiet bins 60-100 dB
        # below a frame's peak carry FFT rounding errors of up to ~6e-4 in the log-mel (measured on speech
        # against librosa in float64), and an STFT costs next to nothing beside the vocoder. Half precision
        # FFTs are unsupported on CPU and too coarse anyway.
        out_dtype = torch.float64 if audio.dtype == torch.float64 else torch.float32
        work = torch.float32 if audio.device.type == "mps" and out_dtype == torch.float32 else torch.float64
        x = audio.to(work)
        spec = torch.stft(
            x,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window.to(device=x.device, dtype=work),
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        return spec.abs().to(out_dtype)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrogram.

        Args:
            audio: ``(B, T)`` or ``(T,)`` float waveform in [-1, 1].

        Returns:
            ``(B, n_mels, T // hop + 1)`` (or ``(n_mels, F)`` for 1-D input) natural-log mel magnitudes,
            in the dtype of ``audio``.
        """
        if not torch.is_floating_point(audio):
            raise TypeError(f"audio must be a float tensor in [-1, 1], got {audio.dtype} (divide int16 by 32768)")
        squeeze = audio.dim() == 1
        if squeeze:
            audio = audio.unsqueeze(0)
        if audio.dim() != 2:
            raise ValueError(f"audio must be (B, T) or (T,), got shape {tuple(audio.shape)}")
        mag = self.magnitude(audio)
        mel = torch.matmul(self.mel_basis.to(device=mag.device, dtype=mag.dtype), mag)
        logmel = torch.log(torch.clamp(mel, min=self.config.clamp_min)).to(audio.dtype)
        return logmel.squeeze(0) if squeeze else logmel
