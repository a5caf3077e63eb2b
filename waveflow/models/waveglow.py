"""WaveGlow (Prenger et al., 2018): a normalizing flow from audio to Gaussian noise, conditioned on mels.

The audio is folded into groups of ``n_group`` consecutive samples (channels), then ``n_flows`` steps of
(invertible 1x1 conv, affine coupling) map it to ``z``; every ``n_early_every`` flows ``n_early_size``
channels leave the flow early. Architecture and channel orders are NVIDIA's, so converted NVIDIA
checkpoints give NVIDIA's outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn

from ..config import require
from ..flows import AffineCoupling, InvConv1x1, apply_weight_norm, remove_weight_norm

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


@dataclass
class WaveGlowConfig:
    """Shape of a WaveGlow. Defaults are NVIDIA's published 256-channel model (87.9 M parameters).

    Attributes:
        n_mels: mel bands of the conditioning spectrogram.
        n_flows: flow steps (1x1 conv + coupling each).
        n_group: audio samples folded into channels per time step.
        n_early_every: output channels early every this many flows (not before the first).
        n_early_size: channels output at each early exit (0 = no early outputs).
        n_layers: dilated layers per WN.
        n_channels: residual channels per WN.
        kernel_size: kernel of the dilated convs (odd).
        hop_length: samples per mel frame; the upsampler is ``ConvTranspose1d(n_mels, n_mels, 4*hop, hop)``.
        coupling: ``affine`` (WaveGlow) or ``additive`` (NICE, volume preserving).
        alternate_halves: odd-numbered flows condition on the SECOND half and transform the first, as
            NVIDIA's early ``glow_old`` models do (set when such a checkpoint is imported).
        mel_shift: constant added to the log-mel before the upsampler. NVIDIA's models use 0 (imported
            checkpoints get 0). Log-mels sit around -6, and with that offset Adam moves the upsampler's weights
            in step, so the conditioning grows until the WN gates saturate and the model stops listening to
            the mel (measured: the tiny config at 400 steps gains nothing from the true mel over a silent one;
            with ``mel_shift: 6`` it gains 15 bits per sample and its validation NLL is 0.3 bits lower). Our
            small and tiny configs use 6.
    """

    n_mels: int = 80
    n_flows: int = 12
    n_group: int = 8
    n_early_every: int = 4
    n_early_size: int = 2
    n_layers: int = 8
    n_channels: int = 256
    kernel_size: int = 3
    hop_length: int = 256
    coupling: Literal["affine", "additive"] = "affine"
    alternate_halves: bool = False
    mel_shift: float = 0.0

    def __post_init__(self) -> None:
        require(math.isfinite(self.mel_shift), f"model.mel_shift must be finite, got {self.mel_shift}")
        for name in ("n_mels", "n_flows", "n_group", "n_early_every", "n_layers", "n_channels", "hop_length"):
            require(getattr(self, name) > 0, f"model.{name} must be positive, got {getattr(self, name)}")
        require(self.n_early_size >= 0, f"model.n_early_size must be >= 0, got {self.n_early_size}")
        require(self.kernel_size % 2 == 1, f"model.kernel_size must be odd, got {self.kernel_size}")
        require(self.n_group % 2 == 0, f"model.n_group must be even, got {self.n_group}")
        require(self.n_early_size % 2 == 0, f"model.n_early_size must be even, got {self.n_early_size}")
        require(
            self.hop_length % self.n_group == 0,
            f"model.hop_length ({self.hop_length}) must be a multiple of n_group ({self.n_group})",
        )
        remaining = self.flow_channels()[-1]
        require(
            remaining >= 2,
            f"early outputs leave {remaining} channels for the last flow; need >= 2 "
            f"(model.n_group={self.n_group}, n_flows={self.n_flows}, n_early_every={self.n_early_every}, "
            f"n_early_size={self.n_early_size})",
        )

    def flow_channels(self) -> list[int]:
        """Channels entering each flow step, after that step's early output."""
        channels, remaining = [], self.n_group
        for k in range(self.n_flows):
            if k > 0 and k % self.n_early_every == 0:
                remaining -= self.n_early_size
            channels.append(remaining)
        return channels

    @property
    def n_remaining_channels(self) -> int:
        return self.flow_channels()[-1]


class NLLOutput(NamedTuple):
    """Negative log-likelihood of a batch, every term in nats per audio sample, averaged over the batch.

    ``nll = z + log_s + logdet_w + const``; ``loss_nvidia = nll - const`` (NVIDIA's ``WaveGlowLoss``).
    """

    nll: torch.Tensor
    nll_per_item: torch.Tensor
    loss_nvidia: torch.Tensor
    z: torch.Tensor
    log_s: torch.Tensor
    logdet_w: torch.Tensor
    const: float

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

    # ------------------------------------------------------------------ shapes
    @property
    def hop_length(self) -> int:
        return self.config.hop_length

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
    def flow(self, audio: torch.Tensor, mel: torch.Tensor, steps: list | None = None):
        """Audio to latent with the log-determinant parts.

        Args:
            audio: ``(B, T)`` in [-1, 1], ``T`` a multiple of ``n_group``.
            mel: ``(B, n_mels, F)`` with ``(F + 3) * hop >= T`` (``F = T // hop + 1`` from MelSpectrogram).
            steps: if a list is given, one ``(log_s (B,), logdet_w (B,))`` pair per flow step is appended
                to it (to show what each step contributes).

        Returns:
            ``(z (B, n_group, T // n_group), log_s (B,), logdet_w (B,))``: the sums of coupling log-scales
            and of 1x1-conv log-determinants.
        """
        x = self._fold_audio(audio)
        cond = self.condition(mel, audio.shape[1])
        early, log_s, logdet_w = [], 0.0, 0.0
        n_early = self.config.n_early_size
        for k, step in enumerate(self.flows):
            if self._is_early_exit(k):
                early.append(x[:, :n_early])
                x = x[:, n_early:]
            x, ld_w = step.invconv(x)
            x, ld_s = step.coupling(x, cond)
            logdet_w = logdet_w + ld_w
            log_s = log_s + ld_s
            if steps is not None:
                steps.append((ld_s, ld_w))
        return torch.cat([*early, x], 1), log_s, logdet_w

    def forward(self, audio: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(audio (B, T), mel (B, n_mels, F)) -> (z (B, n_group, T // n_group), logdet (B,))``."""
        z, log_s, logdet_w = self.flow(audio, mel)
        return z, log_s + logdet_w

    def inverse(self, z: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Exact inverse of :meth:`forward`: ``(z (B, n_group, T // n_group), mel) -> audio (B, T)``."""
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
        return x.transpose(1, 2).reshape(B, -1)

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

        ``nll = (0.5 * sum(z^2) / sigma^2 + D log(sigma) + 0.5 D log(2 pi) - logdet) / D`` with ``D = T``.
        """
        z, log_s, logdet_w = self.flow(audio, mel)
        D = audio.shape[1]
        # Half precision sums in float32; float64 stays float64 (an exact NLL for exact tests).
        work = torch.promote_types(z.dtype, torch.float32)
        zf = z.to(work)
        z_term = 0.5 * zf.pow(2).flatten(1).sum(1) / (sigma * sigma) / D
        s_term = -log_s.to(work) / D
        w_term = -logdet_w.to(work) / D
        const = math.log(sigma) + 0.5 * math.log(2 * math.pi)
        per_item = z_term + s_term + w_term + const
        return NLLOutput(
            nll=per_item.mean(),
            nll_per_item=per_item,
            loss_nvidia=(z_term + s_term + w_term).mean(),
            z=z_term.mean(),
            log_s=s_term.mean(),
            logdet_w=w_term.mean(),
            const=const,
        )

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
