"""The shape of a WaveGlow (:class:`WaveGlowConfig`): everything needed to rebuild the model from its file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..config import require
from ..flows import PRIOR_NAMES
from ..flows import priors as prior_registry
from ..mel import MelConfig

#: Upper bounds on a model's dimensions, checked before anything is built (a model file may be hostile): several
#: times what published WaveGlows use (NVIDIA's: 80 mels, 12 flows, group 8, 8 layers, 256 or 512 channels,
#: kernel 3, hop 256; SqueezeWave folds up to 256 samples per step). They stop absurd values early (a file saying
#: 1e8 flows); that a checkpoint's weights really fill its config is checked by the loader before building.
DIMENSION_CAPS = {
    "n_mels": 512,
    "n_flows": 256,
    "n_group": 1024,
    "n_early_every": 256,
    "n_early_size": 1024,
    "n_layers": 64,
    "n_channels": 4096,
    "kernel_size": 63,
    "hop_length": 8192,
}
#: The same for the prior's feature settings (its filterbank and window are built from them).
PRIOR_MEL_CAPS = {"n_fft": 65_536, "win_length": 65_536, "sample_rate": 768_000}


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
        prior: an exact, mel-conditioned layer first in the map audio -> latent (:mod:`waveflow.flows.priors`):
            ``none`` (NVIDIA's), ``spectral`` (a whitening by the log-mel's envelope) or ``source-filter``
            (a pitch predictor from the mel, then the whitening: voiced from the first step).
        prior_mel: the mel settings whose filterbank the prior uses (``n_mels``/``hop_length`` as the
            model's); ``None`` = Tacotron2's.
        type: the model family (:mod:`waveflow.models.registry`); always ``waveglow`` here.
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
    prior: Literal["none", "spectral", "source-filter"] = "none"
    prior_mel: MelConfig | None = None
    type: Literal["waveglow"] = "waveglow"

    def __post_init__(self) -> None:
        require(self.type == "waveglow", f"model.type of a WaveGlowConfig must be waveglow, got {self.type!r}")
        require(math.isfinite(self.mel_shift), f"model.mel_shift must be finite, got {self.mel_shift}")
        for name in ("n_mels", "n_flows", "n_group", "n_early_every", "n_layers", "n_channels", "hop_length"):
            require(getattr(self, name) > 0, f"model.{name} must be positive, got {getattr(self, name)}")
        require(self.kernel_size > 0, f"model.kernel_size must be positive, got {self.kernel_size}")
        for name, cap in DIMENSION_CAPS.items():
            require(getattr(self, name) <= cap, f"model.{name} must be at most {cap:,}, got {getattr(self, name):,}")
        for name, cap in PRIOR_MEL_CAPS.items():
            value = getattr(self.prior_mel, name, 0) or 0
            require(value <= cap, f"model.prior_mel.{name} must be at most {cap:,}, got {value:,}")
        require(self.n_early_size >= 0, f"model.n_early_size must be >= 0, got {self.n_early_size}")
        require(self.kernel_size % 2 == 1, f"model.kernel_size must be odd, got {self.kernel_size}")
        require(self.n_group % 2 == 0, f"model.n_group must be even, got {self.n_group}")
        require(self.n_early_size % 2 == 0, f"model.n_early_size must be even, got {self.n_early_size}")
        require(
            self.hop_length % self.n_group == 0,
            f"model.hop_length ({self.hop_length}) must be a multiple of n_group ({self.n_group})",
        )
        require(self.prior in PRIOR_NAMES, f"model.prior must be one of {', '.join(PRIOR_NAMES)}, got {self.prior!r}")
        mel = self.prior_mel_config()
        require(
            (mel.n_mels, mel.hop_length) == (self.n_mels, self.hop_length),
            f"model.prior_mel must have the model's n_mels ({self.n_mels}) and hop_length "
            f"({self.hop_length}), got n_mels={mel.n_mels}, hop_length={mel.hop_length}",
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

    def weight_count(self) -> int:
        """Elements in the folded weights of ``WaveGlow(self)``, from the config alone (nothing is built): lets a
        loader refuse a config that describes far more weights than its file holds before allocating them."""
        m, c, layers, k = self.n_mels, self.n_channels, self.n_layers, self.kernel_size
        count = m * m * 4 * self.hop_length + m  # upsampler
        for channels in self.flow_channels():
            half = channels // 2
            out = half if self.coupling == "additive" else 2 * half
            count += channels * channels  # 1x1 conv
            count += c * half + c + 2 * c * layers * (m * self.n_group + 1)  # start, cond_layer
            count += layers * (2 * c * c * k + 2 * c) + (layers - 1) * (2 * c * c + 2 * c) + c * c + c  # layers
            count += out * c + out  # end
        return count + prior_registry.weight_count(self.prior, self.prior_mel_config())

    @property
    def prior_context_frames(self) -> int:
        """Mel frames the prior adds to the receptive field on each side (0 without a prior)."""
        return prior_registry.context_frames(self.prior)

    @property
    def sample_multiple(self) -> int:
        """Audio lengths the model maps must be multiples of this: ``hop_length`` with a prior (its lapped
        transform works in whole frames), else ``n_group``."""
        return prior_registry.sample_multiple(self.prior, self.hop_length, self.n_group)

    def prior_mel_config(self) -> MelConfig:
        """``prior_mel``, or Tacotron2's mel settings with this model's ``n_mels`` and ``hop_length``."""
        return self.prior_mel or MelConfig(n_mels=self.n_mels, hop_length=self.hop_length)
