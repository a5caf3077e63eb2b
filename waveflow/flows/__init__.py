"""Invertible building blocks. Each has ``forward(x, cond) -> (y, logdet)`` and ``inverse(y, cond) -> x``."""

from .coupling import AffineCoupling
from .invconv import InvConv1x1
from .prior import SpectralPrior, imdct, mdct
from .wavenet import WN, apply_weight_norm, remove_weight_norm

__all__ = [
    "WN", "AffineCoupling", "InvConv1x1", "SpectralPrior", "apply_weight_norm", "imdct", "mdct", "remove_weight_norm",
]
