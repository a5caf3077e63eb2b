"""The source-filter prior: the pitch predictor (the source), then the spectral whitening (the filter).

In the analysis direction (audio -> latent) ``u = P(x)`` removes what one pitch period predicts (an exact,
unit lower-triangular map, log-det 0; :class:`~.pitch.PitchPredictor`), then ``e = W(u)`` whitens the residual
by the mel's envelope (:class:`~.prior.SpectralPrior`). The predictor acts on the audio, before the whitening:
voiced audio correlates 0.8-0.9 with itself one period earlier, the whitened signal hardly at all.

The synthesis filter ``1 / (1 - B(f))`` raises the mean power around frequency ``f`` by ``1 / (1 - |B(f)|**2)``,
so the whitening's gains are scaled by ``sqrt(1 - |B(f)|**2)``, bin by bin and frame by frame (:meth:`level`):
an untrained model's noise, coloured and then run through the pitch synthesis, has the mel's envelope and the
mel's pitch. Per bin matters: the taps spread over a few samples (the mel's period is not exact to the
sample), so they predict the low harmonics and leave the high band alone, and a single level for the whole
frame would whiten the high band by gains sqrt(1 - s**2) too small (measured: 1.1 bits/sample worse on one
clip). Sampling is ``x = P^-1(W^-1(e))``: the colouring is local, the
synthesis recursive and causal, so a stream carries the last samples made into the next chunk (``known``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..mel import MelConfig
from .pitch import PitchPredictor, Taps
from .prior import SpectralPrior


class SourceFilterPrior(nn.Module):
    """``forward(x, logmel) -> (e, logdet)``: pitch prediction then whitening; ``inverse(e, logmel, known)``.

    Attributes:
        context_frames: the whitening's context plus the taps' (the gains' level correction reads the taps).
        recursive: the inverse is a causal recursion; a chunk needs the samples made before it (``known``).
    """

    context_frames = SpectralPrior.context_frames + PitchPredictor.context_frames
    recursive = True

    def __init__(self, mel_config: MelConfig):
        super().__init__()
        self.mel_config = mel_config
        self.hop = mel_config.hop_length
        self.pitch = PitchPredictor(mel_config)
        self.spectral = SpectralPrior(mel_config, even_start=True)

    @classmethod
    def weight_count(cls, mel_config: MelConfig) -> int:
        return PitchPredictor.weight_count(mel_config) + SpectralPrior.weight_count(mel_config)

    def level(self, taps: Taps, num_samples: int) -> torch.Tensor:
        """``log sqrt(1 - |B(f)|**2)`` per transform bin and frame ``(B, hop, T // hop)``, with ``B(f)`` the
        frequency response of the frame's taps ``sum_k b_k exp(-2 pi i f d_k / sr)`` at each bin's centre:
        the mean power gain of the synthesis filter around ``f`` is ``1 / (1 - |B(f)|**2)`` (averaged over
        harmonics and the gaps between them), and ``|B(f)| <= sum_k |b_k| < 1``. Transform frame ``r`` lies
        between mel frames ``r`` and ``r + 1`` (the last one, at inference, only has frame ``r``): the mean."""
        H, n = self.hop, num_samples // self.hop
        work = taps.weights.dtype
        theta = torch.pi * (torch.arange(H, device=taps.weights.device, dtype=work) + 0.5) / H  # rad / sample
        angle = theta[:, None] * taps.delays.to(work)[..., None, :]  # (B, F, H, K)
        re = (taps.weights[..., None, :] * torch.cos(angle)).sum(-1)
        im = (taps.weights[..., None, :] * torch.sin(angle)).sum(-1)
        power = (re.square() + im.square()).transpose(1, 2)  # (B, H, F)
        F = power.shape[2]
        following = power[..., 1 : n + 1] if F > n else torch.cat([power[..., 1:n], power[..., n - 1 : n]], -1)
        return 0.5 * torch.log1p(-0.5 * (power[..., :n] + following))

    def forward(self, x: torch.Tensor, logmel: torch.Tensor,
                per_frame: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x (B, T), logmel (B, n_mels, F)) -> (e (B, T), logdet (B,))``; the predictor adds 0 to logdet.
        ``per_frame``: the log-det of each transform frame ``(B, T // hop)``."""
        if x.dim() != 2:
            raise ValueError(f"audio must be (B, T), got shape {tuple(x.shape)}")
        taps = self.pitch.taps(logmel)
        u = self.pitch.analysis(x, taps)
        return self.spectral(u, logmel, offset=self.level(taps, x.shape[1]), per_frame=per_frame)

    def predictor_gain(self, x: torch.Tensor, logmel: torch.Tensor) -> torch.Tensor:
        """What the pitch predictor saves, nats per sample ``(B,)``: the Gaussian code length of the whitened
        signal (``0.5 e**2 - log-det``, per sample) by the whitening alone minus that with the predictor first.
        Its log-det is 0, so this is its whole share of the NLL beside the same whitening."""
        T = x.shape[1]
        e_alone, logdet_alone = self.spectral(x, logmel)
        e_with, logdet_with = self(x, logmel)
        def code(e, logdet):
            return (0.5 * e.to(logdet.dtype).square().sum(1) - logdet) / T

        return code(e_alone, logdet_alone) - code(e_with, logdet_with)

    def residual(self, x: torch.Tensor, logmel: torch.Tensor) -> torch.Tensor:
        """The pitch predictor's residual ``u (B, T)`` of ``x`` (what the whitening sees)."""
        return self.pitch.analysis(x, self.pitch.taps(logmel))

    def inverse(self, e: torch.Tensor, logmel: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """Exact inverse of :meth:`forward`; ``known (B, K)``: the first samples of ``x``, already made."""
        taps = self.pitch.taps(logmel)
        u = self.spectral.inverse(e, logmel, offset=self.level(taps, e.shape[1]))
        return self.pitch.synthesis(u, taps, known)
