"""The shape of a WaveFlow (:class:`WaveFlowConfig`): everything needed to rebuild the model from its file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..config import require
from ..flows import PRIOR_NAMES
from ..flows import priors as prior_registry
from ..mel import MelConfig
from .config import PRIOR_MEL_CAPS

#: Upper bounds on a WaveFlow's dimensions, checked before anything is built (a model file may be hostile):
#: several times the paper's (80 mels, 8 flows, h up to 64, 8 layers, 64-256 channels, 3x3 kernels, hop 256).
#: ``n_layers`` is capped harder than WaveGlow's: the width dilation doubles per layer, and so does the padding.
WAVEFLOW_CAPS = {
    "n_mels": 512,
    "n_flows": 256,
    "n_height": 1024,
    "n_layers": 16,
    "n_channels": 4096,
    "hop_length": 8192,
}
KERNEL_CAPS = (15, 15)  # (height, width)


def default_height_dilations(n_height: int, n_layers: int, kernel_height: int) -> tuple[int, ...]:
    """Height dilations cycling ``1, 2, 4, ..., 2**(m-1)`` over the layers, with the shortest cycle ``m`` whose
    height receptive field ``1 + (kh - 1) * sum(dilations)`` covers ``n_height`` rows (the longest, ``m =
    n_layers``, when none does). The WaveFlow authors' table for 8 layers and a 3-row kernel: all 1 for h = 8
    and 16, ``1,2,4,1,2,4,1,2`` for 32, ``1,2,4,8,16,1,2,4`` for 64; this rule gives exactly those."""
    for m in range(1, n_layers + 1):
        dilations = tuple(2 ** (i % m) for i in range(n_layers))
        if 1 + (kernel_height - 1) * sum(dilations) >= n_height:
            return dilations
    return tuple(2**i for i in range(n_layers))


@dataclass
class WaveFlowConfig:
    """Shape of a WaveFlow (Ping, Peng, Zhao and Song, ICML 2020). Defaults: the paper's compact model (h = 16,
    8 flows of 8 layers, 64 residual channels: 5.9 M parameters in the flows, plus the upsampler).

    Attributes:
        n_mels: mel bands of the conditioning spectrogram.
        n_flows: flow steps (each autoregressive over the rows).
        n_height: ``h``, the rows audio is squeezed into: column ``j`` holds samples ``j*h .. j*h + h - 1``
            (WaveGlow's fold with ``n_group = h``); sampling takes ``h`` sequential passes per flow.
        n_layers: dilated 2-D conv layers per flow; width dilation ``2**l``.
        n_channels: residual (and skip) channels.
        kernel_size: ``(height, width)`` of the dilated convs; the width odd.
        height_dilations: one per layer; ``None``: :func:`default_height_dilations` (the authors' choice).
        hop_length: samples per mel frame; the upsampler is ``ConvTranspose1d(n_mels, n_mels, 4*hop, hop)``.
        mel_shift: constant added to the log-mel before the upsampler (see ``WaveGlowConfig.mel_shift``).
        permutation: the row order between flows: ``reverse`` (every flow) or ``bipartite-reverse`` (the
            paper's: the first half of the flows reverse all rows, the second half each half of the rows).
        prior: an exact, mel-conditioned layer first in the map audio -> latent, as WaveGlow's
            (:mod:`waveflow.flows.priors`): ``none``, ``spectral`` or ``source-filter``.
        prior_mel: the mel settings whose filterbank the prior uses; ``None`` = Tacotron2's.
        type: the model family (:mod:`waveflow.models.registry`); always ``waveflow`` here.
    """

    n_mels: int = 80
    n_flows: int = 8
    n_height: int = 16
    n_layers: int = 8
    n_channels: int = 64
    kernel_size: tuple[int, int] = (3, 3)
    height_dilations: tuple[int, ...] | None = None
    hop_length: int = 256
    mel_shift: float = 0.0
    permutation: Literal["reverse", "bipartite-reverse"] = "bipartite-reverse"
    prior: Literal["none", "spectral", "source-filter"] = "none"
    prior_mel: MelConfig | None = None
    type: Literal["waveflow"] = "waveflow"

    def __post_init__(self) -> None:
        require(self.type == "waveflow", f"model.type of a WaveFlowConfig must be waveflow, got {self.type!r}")
        require(math.isfinite(self.mel_shift), f"model.mel_shift must be finite, got {self.mel_shift}")
        for name, cap in WAVEFLOW_CAPS.items():
            value = getattr(self, name)
            require(value > 0, f"model.{name} must be positive, got {value}")
            require(value <= cap, f"model.{name} must be at most {cap:,}, got {value:,}")
        require(len(tuple(self.kernel_size)) == 2,
                f"model.kernel_size must be [height, width], got {list(self.kernel_size)}")
        self.kernel_size = tuple(self.kernel_size)
        for what, size, cap in zip(("height", "width"), self.kernel_size, KERNEL_CAPS):
            require(0 < size <= cap, f"model.kernel_size {what} must be in 1..{cap}, got {size}")
        require(self.kernel_size[1] % 2 == 1, f"model.kernel_size width must be odd, got {self.kernel_size[1]}")
        if self.height_dilations is not None:
            self.height_dilations = tuple(self.height_dilations)
            require(len(self.height_dilations) == self.n_layers,
                    f"model.height_dilations needs one value per layer ({self.n_layers}), "
                    f"got {len(self.height_dilations)}")
            require(all(0 < d <= self.n_height for d in self.height_dilations),
                    f"model.height_dilations must be in 1..n_height ({self.n_height}), got "
                    f"{list(self.height_dilations)}")
        require(self.n_height >= 2, f"model.n_height must be at least 2, got {self.n_height}")
        require(self.permutation == "reverse" or self.n_height % 2 == 0,
                f"model.permutation bipartite-reverse needs an even n_height, got {self.n_height}")
        require(self.hop_length % self.n_height == 0,
                f"model.hop_length ({self.hop_length}) must be a multiple of n_height ({self.n_height})")
        require(self.prior in PRIOR_NAMES, f"model.prior must be one of {', '.join(PRIOR_NAMES)}, got {self.prior!r}")
        for name, cap in PRIOR_MEL_CAPS.items():
            value = getattr(self.prior_mel, name, 0) or 0
            require(value <= cap, f"model.prior_mel.{name} must be at most {cap:,}, got {value:,}")
        mel = self.prior_mel_config()
        require(
            (mel.n_mels, mel.hop_length) == (self.n_mels, self.hop_length),
            f"model.prior_mel must have the model's n_mels ({self.n_mels}) and hop_length "
            f"({self.hop_length}), got n_mels={mel.n_mels}, hop_length={mel.hop_length}",
        )

    # ------------------------------------------------------------------ shapes
    @property
    def n_group(self) -> int:
        """Latent rows (``n_height``): code that sizes latents ``(B, n_group, T // n_group)`` works as for WaveGlow."""
        return self.n_height

    def height_dilation_list(self) -> tuple[int, ...]:
        """The height dilation of every layer (given, or :func:`default_height_dilations`)."""
        if self.height_dilations is not None:
            return self.height_dilations
        return default_height_dilations(self.n_height, self.n_layers, self.kernel_size[0])

    def permutations(self) -> list[list[int]]:
        """Per flow, the row order its output is put in: ``new[r] = old[perm[r]]``."""
        h, half = self.n_height, self.n_height // 2
        rows = list(range(h))
        bipartite = rows[:half][::-1] + rows[half:][::-1]
        if self.permutation == "reverse":
            return [rows[::-1] for _ in range(self.n_flows)]
        return [rows[::-1] if k < self.n_flows // 2 else bipartite for k in range(self.n_flows)]

    def width_reach(self) -> int:
        """Columns on each side one flow's net reads (its dilated convs' half-widths summed)."""
        return (self.kernel_size[1] - 1) // 2 * (2**self.n_layers - 1)

    def weight_count(self) -> int:
        """Elements in the folded weights of ``WaveFlow(self)``, from the config alone (nothing is built): lets a
        loader refuse a config that describes far more weights than its file holds before allocating them."""
        m, c, layers = self.n_mels, self.n_channels, self.n_layers
        kh, kw = self.kernel_size
        per_flow = 2 * c  # start: Conv2d(1, C, 1)
        per_flow += 2 * c * layers * (m + 1)  # cond_layer: Conv2d(n_mels, 2 C L, 1)
        per_flow += layers * (2 * c * c * kh * kw + 2 * c)  # in_layers
        per_flow += (layers - 1) * (2 * c * c + 2 * c) + c * c + c  # res_skip_layers (the last: skip only)
        per_flow += 2 * c + 2  # end: Conv2d(C, 2, 1)
        upsampler = m * m * 4 * self.hop_length + m
        return upsampler + self.n_flows * per_flow + prior_registry.weight_count(self.prior, self.prior_mel_config())

    @property
    def prior_context_frames(self) -> int:
        """Mel frames the prior adds to the receptive field on each side (0 without a prior)."""
        return prior_registry.context_frames(self.prior)

    @property
    def sample_multiple(self) -> int:
        """Audio lengths the model maps must be multiples of this: ``hop_length`` with a prior (its lapped
        transform works in whole frames), else ``n_height``."""
        return prior_registry.sample_multiple(self.prior, self.hop_length, self.n_height)

    def prior_mel_config(self) -> MelConfig:
        """``prior_mel``, or Tacotron2's mel settings with this model's ``n_mels`` and ``hop_length``."""
        return self.prior_mel or MelConfig(n_mels=self.n_mels, hop_length=self.hop_length)
