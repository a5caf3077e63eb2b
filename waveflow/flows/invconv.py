"""Invertible 1x1 convolution (Glow): a learned channel mixing ``y = W x`` at every time step."""

from __future__ import annotations

import torch
from torch import nn


def random_rotation(channels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random orthogonal ``(channels, channels)`` matrix with determinant +1 (NVIDIA's initialisation)."""
    q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator, dtype=torch.float64))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.float()


def _version(t: torch.Tensor) -> int:
    """In-place modification counter; inference tensors have none (they cannot be modified outside
    ``torch.inference_mode``), so their cache key relies on the storage pointer alone."""
    try:
        return t._version
    except RuntimeError:
        return -1


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution over the channels of ``(B, C, T)``.

    The inverse weight is computed in float64 (a float32 inverse of a 12-flow stack accumulates enough
    error to be audible) and cached in the input's dtype; the cache is refreshed when the weight changes.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.weight = nn.Parameter(random_rotation(channels))
        self._inverse_cache: tuple[tuple, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None,
                per_step: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, T) -> (y (B, C, T), logdet (B,))`` with ``logdet = T * log|det W|``; ``per_step``:
        ``log|det W|`` for each time step ``(B, T)``."""
        w = self.weight.to(x.dtype)
        y = torch.einsum("ij,bjt->bit", w, x)
        # slogdet in float32 at least: fp16/bf16 determinants of 8x8 rotations are too coarse.
        logabsdet = torch.linalg.slogdet(self.weight.float() if self.weight.dtype != torch.float64 else self.weight)[1]
        work = torch.promote_types(x.dtype, torch.float32)
        if per_step:
            return y, logabsdet.to(work).expand(x.shape[0], x.shape[-1])
        return y, (x.shape[-1] * logabsdet).to(work).expand(x.shape[0])

    def inverse_weight(self, dtype: torch.dtype) -> torch.Tensor:
        """``W^-1`` computed in float64, cast to ``dtype``, cached until the weight changes."""
        key = (_version(self.weight), self.weight.data_ptr(), self.weight.device, dtype)
        if self._inverse_cache is None or self._inverse_cache[0] != key or torch.is_grad_enabled():
            inv = torch.linalg.inv(self.weight.double()).to(dtype)
            if torch.is_grad_enabled():
                return inv
            self._inverse_cache = (key, inv)
        return self._inverse_cache[1]

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, T) -> (B, C, T)``: ``x = W^-1 y``."""
        return torch.einsum("ij,bjt->bit", self.inverse_weight(y.dtype), y)
