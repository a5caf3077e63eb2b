"""Bias removal ("denoiser") for WaveGlow outputs, after NVIDIA/waveglow's ``denoiser.py``.

A flow vocoder adds a small, nearly constant artefact to everything it makes (a hum or whistle from biases in
its convolutions). NVIDIA estimates it as the magnitude spectrum of the model's output at ``sigma = 0`` for a
constant mel, and subtracts ``strength`` times that magnitude from the output's STFT magnitude (clamped at 0),
keeping the output's phase. Here the STFT is ``torch.stft``/``torch.istft`` on the audio's device.

Which constant mel: NVIDIA uses ``zeros``. In the natural-log scale of Tacotron2 mels, 0 is ``ln(1)``: a loud
flat spectrum about 11.5 nats above silence that no acoustic model ever predicts. The log floor
``ln(clamp_min)`` is silence, which every TTS output contains between words, so the ``sigma = 0`` output for it
is exactly the residue the model adds where there should be nothing. ``floor`` is the default; ``zeros``
reproduces NVIDIA's estimate.
"""

from __future__ import annotations

import torch

BIAS_FRAMES = 88  # length of the constant mel (NVIDIA's)
BIAS_MODES = ("floor", "zeros")


class Denoiser:
    """Subtract a fixed bias magnitude spectrum from audio.

    Args:
        bias_audio: ``(T,)`` the model's output at ``sigma = 0`` for a constant mel (see :meth:`bias_mel`).
        n_fft, hop_length, win_length: STFT of the bias and of the audio to clean (the mel's settings).
    """

    def __init__(self, bias_audio: torch.Tensor, n_fft: int = 1024, hop_length: int = 256, win_length: int = 1024):
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        bias = bias_audio.detach().float().reshape(-1)
        mag = self._stft(bias).abs()
        # Average the frames whose windows lie fully inside the bias audio (NVIDIA takes frame 0, which the
        # STFT's edge padding distorts); fall back to all frames for very short bias audio.
        edge = n_fft // (2 * hop_length) + 1
        inner = mag[:, edge:-edge] if mag.shape[1] > 2 * edge else mag
        self.bias_spec = inner.mean(dim=1, keepdim=True)  # (n_fft // 2 + 1, 1)

    @staticmethod
    def bias_mel(n_mels: int, log_floor: float, mode: str = "floor", frames: int = BIAS_FRAMES) -> torch.Tensor:
        """The constant ``(1, n_mels, frames)`` float32 mel whose ``sigma = 0`` output is the bias."""
        if mode not in BIAS_MODES:
            raise ValueError(f"denoiser mode must be one of {', '.join(BIAS_MODES)}, got {mode!r}")
        return torch.full((1, n_mels, frames), log_floor if mode == "floor" else 0.0)

    def _stft(self, audio: torch.Tensor) -> torch.Tensor:
        window = torch.hann_window(self.win_length, device=audio.device, dtype=audio.dtype)
        return torch.stft(audio, self.n_fft, self.hop_length, self.win_length, window, center=True,
                          pad_mode="reflect", return_complex=True)

    def __call__(self, audio: torch.Tensor, strength: float = 0.01) -> torch.Tensor:
        """Remove ``strength`` times the bias magnitude: ``(T,)`` or ``(B, T)`` -> same shape, float32.

        Audio shorter than ``n_fft // 2 + 1`` samples (reflect padding needs more) is returned unchanged.
        """
        if strength <= 0 or audio.shape[-1] <= self.n_fft // 2:
            return audio.float()
        x = audio.float()
        spec = self._stft(x)
        bias = self.bias_spec.to(spec.device)
        mag = torch.clamp(spec.abs() - strength * bias, min=0.0)
        # Keep the output's phase: scale each bin by new/old magnitude (0 where the bin was silent).
        cleaned = spec * (mag / spec.abs().clamp_min(1e-12))
        window = torch.hann_window(self.win_length, device=x.device, dtype=x.dtype)
        return torch.istft(cleaned, self.n_fft, self.hop_length, self.win_length, window, center=True,
                           length=x.shape[-1])
