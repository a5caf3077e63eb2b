"""Affine coupling (Real NVP style) and its additive special case (NICE)."""

from __future__ import annotations

import torch
from torch import nn

from .wavenet import WN


class AffineCoupling(nn.Module):
    """Split channels in halves ``(x_a, x_b)``; ``x_b -> exp(log_s) * x_b + b`` with ``(b, log_s) = WN(x_a, c)``.

    ``x_a`` passes unchanged, so the map is invertible whatever WN computes, and its Jacobian is triangular
    with log-determinant ``sum(log_s)``. With ``additive=True`` WN predicts only ``b`` and ``log_s = 0``.

    Args:
        n_channels: channels of the input (even).
        n_cond_channels: conditioning channels.
        n_layers, n_wn_channels, kernel_size: WN shape.
        additive: NICE-style coupling (volume preserving).
        swap_halves: condition on the SECOND half and transform the first (NVIDIA's ``glow_old`` models
            do this in every odd-numbered flow).
    """

    def __init__(
        self,
        n_channels: int,
        n_cond_channels: int,
        n_layers: int,
        n_wn_channels: int,
        kernel_size: int,
        additive: bool = False,
        swap_halves: bool = False,
    ):
        super().__init__()
        if n_channels % 2:
            raise ValueError(f"coupling needs an even number of channels, got {n_channels}")
        self.n_half = n_channels // 2
        self.additive = additive
        self.swap_halves = swap_halves
        n_out = self.n_half if additive else 2 * self.n_half
        self.wn = WN(self.n_half, n_cond_channels, n_out, n_layers, n_wn_channels, kernel_size)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(conditioning half, transformed half)``."""
        first, second = x[:, : self.n_half], x[:, self.n_half :]
        return (second, first) if self.swap_halves else (first, second)

    def _join(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        return torch.cat([x_b, x_a] if self.swap_halves else [x_a, x_b], 1)

    def _shift_log_scale(self, x_a: torch.Tensor, cond: torch.Tensor, projected: bool):
        out = self.wn(x_a, cond, cond_is_projected=projected)
        if self.additive:
            return out, None
        # NVIDIA's channel order: shift first, then log-scale.
        return out[:, : self.n_half], out[:, self.n_half :]

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor, cond_is_projected: bool = False, per_step: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, T) -> (y (B, C, T), log_s_sum (B,))``; ``per_step``: the sum per time step ``(B, T)``."""
        x_a, x_b = self._split(x)
        b, log_s = self._shift_log_scale(x_a, cond, cond_is_projected)
        if log_s is None:
            return self._join(x_a, x_b + b), x.new_zeros((x.shape[0], x.shape[2]) if per_step else x.shape[0])
        y_b = torch.exp(log_s) * x_b + b
        # Summed in float32 at least: under fp16 autocast a sum over a whole segment overflows (|sum| > 65504).
        work = torch.promote_types(log_s.dtype, torch.float32)
        return self._join(x_a, y_b), log_s.sum(1, dtype=work) if per_step else log_s.flatten(1).sum(1, dtype=work)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor, cond_is_projected: bool = False) -> torch.Tensor:
        """``(B, C, T) -> (B, C, T)``: ``x_b = (y_b - b) * exp(-log_s)``."""
        y_a, y_b = self._split(y)
        b, log_s = self._shift_log_scale(y_a, cond, cond_is_projected)
        x_b = y_b - b if log_s is None else (y_b - b) * torch.exp(-log_s)
        return self._join(y_a, x_b)
