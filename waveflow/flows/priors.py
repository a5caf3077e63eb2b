"""Priors: exact, mel-conditioned layers that come first in the map audio -> latent, found by name.

A prior is a module with

- ``forward(x (B, T), logmel (B, n_mels, F), per_frame=False) -> (y (B, T), logdet (B,))`` (``per_frame``:
  the log-det of each hop-long block, ``(B, T // hop)``) and
  ``inverse(y, logmel, known=None) -> x`` (``known``: the first samples of ``x`` already made by a stream's
  previous chunk; only a ``recursive`` prior reads it);
- class attributes ``context_frames`` (mel frames each side that make a chunk of the inverse exact, beside
  ``known``) and ``recursive``; a classmethod ``weight_count(mel_config)``;
- a lapped transform, so audio lengths are whole mel frames (:func:`sample_multiple`), and batching items of
  different lengths is not exact (each item's last frame differs from a padded one's): batch by length.

A new prior is one module in :mod:`waveflow.flows` and one line in :data:`PRIORS`.
"""

from __future__ import annotations

from torch import nn

from ..mel import MelConfig
from .prior import SpectralPrior
from .source_filter import SourceFilterPrior

#: ``WaveGlowConfig.prior`` names; ``none`` is NVIDIA's WaveGlow (no prior).
PRIORS: dict[str, type[nn.Module]] = {
    "spectral": SpectralPrior,
    "source-filter": SourceFilterPrior,
}
PRIOR_NAMES = ("none", *PRIORS)


def prior_class(name: str) -> type[nn.Module] | None:
    """The class of a prior by name (``None`` for ``none``); ``ValueError`` naming the choices otherwise."""
    if name == "none":
        return None
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {', '.join(PRIOR_NAMES)}")
    return PRIORS[name]


def build_prior(name: str, mel_config: MelConfig) -> nn.Module | None:
    cls = prior_class(name)
    return None if cls is None else cls(mel_config)


def context_frames(name: str) -> int:
    cls = prior_class(name)
    return 0 if cls is None else cls.context_frames


def weight_count(name: str, mel_config: MelConfig) -> int:
    cls = prior_class(name)
    return 0 if cls is None else cls.weight_count(mel_config)


def sample_multiple(name: str, hop_length: int, n_group: int) -> int:
    """Audio lengths a model with this prior maps are multiples of this: a hop (whole transform frames) with a
    prior, else ``n_group``."""
    return n_group if name == "none" else hop_length
