"""WaveGlow (Prenger et al., 2018): a normalizing flow from audio to Gaussian noise, conditioned on mels.

The audio is folded into groups of ``n_group`` consecutive samples (channels), then ``n_flows`` steps of
(invertible 1x1 conv, affine coupling) map it to ``z``; every ``n_early_every`` flows ``n_early_size``
channels leave the flow early. Architecture and channel orders are NVIDIA's, so converted NVIDIA
checkpoints give NVIDIA's outputs. With a prior (``spectral``: an exact whitening layer,
:class:`~waveflow.flows.SpectralPrior`; ``source-filter``: a pitch predictor, then that whitening) an exact
mel-conditioned layer comes first, and the flow models what it leaves.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..flows import AffineCoupling, InvConv1x1, apply_weight_norm, build_prior, remove_weight_norm
from .config import WaveGlowConfig

LN2 = math.log(2.0)


def upsample_condition(mel: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, hop: int, n_group: int,
                       num_samples: int) -> torch.Tensor:
    """The upsampler ``ConvTranspose1d(weight, bias, stride=hop)`` on ``(B, n_mels, F)``, cropped to the first
    ``num_samples`` samples and folded into ``(B, n_mels * n_group, num_samples // n_group)``: channel
    ``m * n_group + j`` holds sample ``t * n_group + j`` of band ``m`` (NVIDIA's unfold order)."""
    n_mels = weight.shape[0]
    if mel.dim() != 3 or mel.shape[1] != n_mels:
        raise ValueError(f"mel must be (B, {n_mels}, frames), got shape {tuple(mel.shape)}")
    up = nn.functional.conv_transpose1d(mel, weight, bias, stride=hop)
    if up.shape[-1] < num_samples:
        raise ValueError(
            f"{mel.shape[-1]} mel frames cover {up.shape[-1]} samples, fewer than the {num_samples} asked for"
        )
    up = up[..., :num_samples]
    B, M, T = up.shape
    return up.reshape(B, M, T // n_group, n_group).transpose(2, 3).reshape(B, M * n_group, -1)


class NLLOutput(NamedTuple):
    """Negative log-likelihood of a batch, every term in nats per audio sample, averaged over the batch.

    ``nll = z + log_s + logdet_w + prior + const``; ``loss_nvidia = nll - const`` (NVIDIA's ``WaveGlowLoss``
    when there is no prior). ``prior`` is the prior's ``-logdet / D`` (0.0 without one).
    """

    nll: torch.Tensor
    nll_per_item: torch.Tensor
    loss_nvidia: torch.Tensor
    z: torch.Tensor
    log_s: torch.Tensor
    logdet_w: torch.Tensor
    const: float
    prior: torch.Tensor | float = 0.0

    @property
    def bits_per_sample(self) -> torch.Tensor:
        """NLL of the 16-bit quantised audio in bits (density on [-1, 1], a bin is 2**-15 wide)."""
        return self.nll / LN2 + 15.0


class FlowStep(nn.Module):
    """One flow step: invertible 1x1 conv, then affine coupling (step ``k`` of the flow)."""

    def __init__(self, channels: int, config: WaveGlowConfig, k: int = 0):
        super().__init__()
        self.invconv = InvConv1x1(channels)
        self.coupling = AffineCoupling(
            channels,
            config.n_mels * config.n_group,
            config.n_layers,
            config.n_channels,
            config.kernel_size,
            additive=config.coupling == "additive",
            swap_halves=config.alternate_halves and k % 2 == 1,
        )


class WaveGlow(nn.Module):
    """Flow-based vocoder. ``forward``: audio -> latent (training); ``inverse``/``infer``: latent -> audio."""

    def __init__(self, config: WaveGlowConfig | None = None):
        super().__init__()
        self.config = cfg = config or WaveGlowConfig()
        self.upsample = nn.ConvTranspose1d(cfg.n_mels, cfg.n_mels, 4 * cfg.hop_length, stride=cfg.hop_length)
        self.flows = nn.ModuleList(FlowStep(c, cfg, k) for k, c in enumerate(cfg.flow_channels()))
        self.prior = build_prior(cfg.prior, cfg.prior_mel_config())

    # ------------------------------------------------------------------ shapes
    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def batches_padded(self) -> bool:
        """Items of different lengths may share a padded batch (the Vocoder masks the WN activations past each
        item's end); not with a prior, whose lapped transform treats an item's last frame as the clip's end."""
        return self.prior is None

    @property
    def prior_context_frames(self) -> int:
        """Mel frames the prior adds to the receptive field on each side (0 without a prior)."""
        return self.config.prior_context_frames

    def _is_early_exit(self, k: int) -> bool:
        return k > 0 and k % self.config.n_early_every == 0 and self.config.n_early_size > 0

    def condition(self, mel: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Upsample and fold the mel: ``(B, n_mels, F) -> (B, n_mels * n_group, num_samples // n_group)``.

        The transposed conv gives ``(F + 3) * hop`` samples; the first ``num_samples`` are kept, so the
        frame ``f`` conditions the samples around ``f * hop`` in training and inference alike.
        """
        cfg = self.config
        if cfg.mel_shift:
            mel = mel + cfg.mel_shift
        return upsample_condition(mel, self.upsample.weight, self.upsample.bias, cfg.hop_length, cfg.n_group,
                                  num_samples)

    def _fold_audio(self, audio: torch.Tensor) -> torch.Tensor:
        g = self.config.n_group
        if audio.dim() != 2:
            raise ValueError(f"audio must be (B, T), got shape {tuple(audio.shape)}")
        if audio.shape[1] % g:
            raise ValueError(f"audio length {audio.shape[1]} must be a multiple of n_group={g}")
        return audio.reshape(audio.shape[0], -1, g).transpose(1, 2)

    # ------------------------------------------------------------------ flow
    def flow(self, audio: torch.Tensor, mel: torch.Tensor, steps: list | None = None,
             whitened: list | None = None):
        """Audio to latent with the log-determinant parts of the flow steps.

        Args:
            audio: ``(B, T)`` in [-1, 1], ``T`` a multiple of ``n_group`` (of ``hop_length`` with a prior).
            mel: ``(B, n_mels, F)`` with ``(F + 3) * hop >= T`` (``F = T // hop + 1`` from MelSpectrogram).
            steps: if a list is given, one ``(log_s (B,), logdet_w (B,))`` pair per flow step is appended
                to it (to show what each step contributes).
            whitened: if a list is given, the flow's input ``e (B, T)`` is appended (the audio whitened by
                the spectral prior; the audio itself without a prior).

        Returns:
            ``(z (B, n_group, T // n_group), log_s (B,), logdet_w (B,))``: the sums of coupling log-scales
            and of 1x1-conv log-determinants; not the prior's (:meth:`forward` and :meth:`nll` add it).
        """
        return self._flow(audio, mel, steps, whitened)[:3]

    def _flow(self, audio, mel, steps=None, whitened=None, per_step=False):
        """:meth:`flow`, then the prior's log-det ``(B,)`` (``None`` without a prior). ``per_step``: every
        log-det per latent time step ``(B, T // n_group)``, the prior's per hop ``(B, T // hop)``."""
        x, logdet_p = self._fold_audio(audio), None  # the shape checks come first
        if self.prior is not None:
            audio, logdet_p = self.prior(audio, mel, per_frame=True) if per_step else self.prior(audio, mel)
            x = self._fold_audio(audio)
        if whitened is not None:
            whitened.append(audio)
        cond = self.condition(mel, audio.shape[1])
        early, log_s, logdet_w = [], 0.0, 0.0
        n_early = self.config.n_early_size
        for k, step in enumerate(self.flows):
            if self._is_early_exit(k):
                early.append(x[:, :n_early])
                x = x[:, n_early:]
            x, ld_w = step.invconv(x, per_step=per_step)
            x, ld_s = step.coupling(x, cond, per_step=per_step)
            logdet_w = logdet_w + ld_w
            log_s = log_s + ld_s
            if steps is not None:
                steps.append((ld_s, ld_w))
        return torch.cat([*early, x], 1), log_s, logdet_w, logdet_p

    def forward(self, audio: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(audio (B, T), mel (B, n_mels, F)) -> (z (B, n_group, T // n_group), logdet (B,))``."""
        z, log_s, logdet_w, logdet_p = self._flow(audio, mel)
        logdet = log_s + logdet_w
        return z, logdet if logdet_p is None else logdet + logdet_p

    def inverse(self, z: torch.Tensor, mel: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """Exact inverse of :meth:`forward`: ``(z (B, n_group, T // n_group), mel) -> audio (B, T)``.

        ``known``: for a recursive prior (``source-filter``), the first audio samples already made (a stream's
        previous chunk), kept as given; see :mod:`waveflow.flows.priors`.
        """
        cfg = self.config
        if z.dim() != 3 or z.shape[1] != cfg.n_group:
            raise ValueError(f"z must be (B, {cfg.n_group}, T // {cfg.n_group}), got shape {tuple(z.shape)}")
        B, g, n = z.shape
        cond = self.condition(mel, n * g)
        # z holds the early outputs first (oldest first), then the last flow's channels.
        n_exits = sum(self._is_early_exit(k) for k in range(cfg.n_flows))
        split = n_exits * cfg.n_early_size
        early = list(z[:, :split].split(cfg.n_early_size, 1)) if n_exits else []
        x = z[:, split:]
        for k in reversed(range(cfg.n_flows)):
            step = self.flows[k]
            x = step.coupling.inverse(x, cond)
            x = step.invconv.inverse(x)
            if self._is_early_exit(k):
                x = torch.cat([early.pop(), x], 1)
        audio = x.transpose(1, 2).reshape(B, -1)
        return audio if self.prior is None else self.prior.inverse(audio, mel, known=known)

    def infer(
        self, mel: torch.Tensor, sigma: float = 0.6, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Sample audio: ``(B, n_mels, F) -> (B, F * hop)`` from ``z ~ N(0, sigma^2)``.

        The noise is drawn in float32 (then cast), so the same generator state gives the same latent in
        every dtype. ``sigma=0`` gives the deterministic "bias" audio of the mel.
        """
        B, _, F = mel.shape
        n = F * self.hop_length // self.config.n_group
        device = generator.device if generator is not None else mel.device
        noise = torch.randn(B, self.config.n_group, n, generator=generator, device=device, dtype=torch.float32)
        z = (noise * sigma).to(device=mel.device, dtype=mel.dtype)
        return self.inverse(z, mel)

    def nll(self, audio: torch.Tensor, mel: torch.Tensor, sigma: float = 1.0) -> NLLOutput:
        """Exact negative log-likelihood of ``audio`` under ``z ~ N(0, sigma^2 I)``, nats per sample.

        ``nll = (0.5 * sum(z^2) / sigma^2 + D log(sigma) + 0.5 D log(2 pi) - logdet) / D`` with ``D = T``,
        ``logdet`` including the prior's (reported apart as ``prior``).
        """
        z, log_s, logdet_w, logdet_p = self._flow(audio, mel)
        D = audio.shape[1]
        # Half precision sums in float32; float64 stays float64 (an exact NLL for exact tests).
        work = torch.promote_types(z.dtype, torch.float32)
        zf = z.to(work)
        z_term = 0.5 * zf.pow(2).flatten(1).sum(1) / (sigma * sigma) / D
        s_term = -log_s.to(work) / D
        w_term = -logdet_w.to(work) / D
        const = math.log(sigma) + 0.5 * math.log(2 * math.pi)
        p_term = None if logdet_p is None else -logdet_p.to(work) / D
        loss = z_term + s_term + w_term if p_term is None else z_term + s_term + w_term + p_term
        per_item = loss + const
        return NLLOutput(
            nll=per_item.mean(),
            nll_per_item=per_item,
            loss_nvidia=loss.mean(),
            z=z_term.mean(),
            log_s=s_term.mean(),
            logdet_w=w_term.mean(),
            const=const,
            prior=0.0 if p_term is None else p_term.mean(),
        )

    def nll_profile(self, audio: torch.Tensor, mel: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
        """The exact NLL frame by frame: ``(audio (B, T), mel) -> (B, T // hop)`` nats per sample of each
        hop-long block ``[f hop, (f + 1) hop)``, ``T`` a multiple of ``hop``; their mean over frames is
        :meth:`nll`'s ``nll_per_item``. Where in a clip the model is surprised (a click, a burst)."""
        hop, g = self.hop_length, self.config.n_group
        B, T = audio.shape
        if T % hop:
            raise ValueError(f"audio length {T} must be a multiple of hop_length={hop} for a per-frame NLL")
        z, log_s, logdet_w, logdet_p = self._flow(audio, mel, per_step=True)
        work = torch.promote_types(z.dtype, torch.float32)
        per_step = 0.5 * z.to(work).pow(2).sum(1) / (sigma * sigma) - log_s.to(work) - logdet_w.to(work)
        per_frame = per_step.reshape(B, T // hop, hop // g).sum(-1)
        if logdet_p is not None:
            per_frame = per_frame - logdet_p.to(work)
        return per_frame / hop + math.log(sigma) + 0.5 * math.log(2 * math.pi)

    # ------------------------------------------------------------------ weight norm
    def remove_weight_norm(self) -> WaveGlow:
        """Fold weight norm into plain weights for inference (outputs unchanged up to rounding)."""
        remove_weight_norm(self)
        return self

    def apply_weight_norm(self) -> WaveGlow:
        """Re-apply weight norm (e.g. to fine-tune a folded model); outputs unchanged up to rounding."""
        apply_weight_norm(self)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
