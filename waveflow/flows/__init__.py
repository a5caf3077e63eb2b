"""Invertible building blocks. Each has ``forward(x, cond) -> (y, logdet)`` and ``inverse(y, cond) -> x``."""

from .coupling import AffineCoupling
from .invconv import InvConv1x1
from .pitch import PitchPredictor, mel_pitch
from .prior import SpectralPrior, imdct, mdct
from .priors import PRIOR_NAMES, PRIORS, build_prior
from .source_filter import SourceFilterPrior
from .wavenet import WN, apply_weight_norm, remove_weight_norm

__all__ = [
    "PRIORS", "PRIOR_NAMES", "WN", "AffineCoupling", "InvConv1x1", "PitchPredictor", "SourceFilterPrior",
    "SpectralPrior", "apply_weight_norm", "build_prior", "imdct", "mdct", "mel_pitch", "remove_weight_norm",
]
