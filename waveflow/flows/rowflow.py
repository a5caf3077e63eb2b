"""WaveFlow's flow step: an affine transform autoregressive over the rows of the squeezed audio.

``z_i = x_i * exp(log_s_i(x_<i, c)) + t_i(x_<i, c)`` for every row ``i`` of ``x (B, h, w)``, all columns at
once; ``(t, log_s)`` from a :class:`~.wavenet2d.WN2d` that reads ``x`` shifted down one row, so row ``i`` sees
only rows ``< i`` (row 0 only the mel). The Jacobian is lower triangular in row order: ``logdet = sum log_s``.
The inverse is ``h`` sequential row passes: :meth:`RowAffineFlow.inverse` runs them with per-layer row queues
(:class:`~.wavenet2d.RowSteps`, one row of work per row), :meth:`RowAffineFlow.inverse_reference` the plain way
(the whole net over all rows for every row), which the fast one is tested against.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .wavenet2d import RowSteps, WN2d


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """``(B, h, w) -> (B, 1, h, w)``: row ``i`` holds row ``i - 1`` of ``x``, row 0 zeros."""
    return F.pad(x, (0, 0, 1, 0))[:, None, :-1]


class RowAffineFlow(nn.Module):
    """``forward(x (B, h, w), cond (B, n_cond, h, w)) -> (z, log_s_sum (B,))``; ``inverse(z, cond) -> x``.

    ``cond`` is the upsampled mel squeezed like ``x`` and in ``x``'s row order (the model permutes it with the
    rows). Args are :class:`~.wavenet2d.WN2d`'s.
    """

    def __init__(self, n_cond_channels: int, n_layers: int, n_channels: int, kernel_size: tuple[int, int],
                 height_dilations: tuple[int, ...]):
        super().__init__()
        self.wn = WN2d(n_cond_channels, n_layers, n_channels, kernel_size, height_dilations)

    def shift_log_scale(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(t, log_s)``, each ``(B, h, w)``, of every row of ``x`` (row ``i``'s from rows ``< i``)."""
        out = self.wn(shift_down(x), cond)
        return out[:, 0], out[:, 1]

    def forward(self, x: torch.Tensor, cond: torch.Tensor, per_step: bool = False):
        """``(B, h, w) -> (z (B, h, w), log_s_sum (B,))``; ``per_step``: the sum per column ``(B, w)``."""
        t, log_s = self.shift_log_scale(x, cond)
        # Summed in float32 at least: under fp16 autocast a sum over a whole segment overflows.
        work = torch.promote_types(log_s.dtype, torch.float32)
        logdet = log_s.sum(1, dtype=work) if per_step else log_s.flatten(1).sum(1, dtype=work)
        return x * torch.exp(log_s) + t, logdet

    def inverse(self, z: torch.Tensor, cond: torch.Tensor, cond_rows: list[int] | None = None) -> torch.Tensor:
        """``(B, h, w) -> x (B, h, w)``, row by row with per-layer row queues: ``h`` passes of one row each.

        ``cond_rows``: row ``i`` of ``x`` is conditioned on row ``cond_rows[i]`` of ``cond`` (the model's mel in
        its original row order, so no permuted copy of it is made per flow); ``None``: on row ``i``.
        """
        steps = RowSteps(self.wn)
        rows: list[torch.Tensor] = []
        previous = torch.zeros_like(z[:, 0])
        for i in range(z.shape[1]):
            out = steps(previous, cond[:, :, i if cond_rows is None else cond_rows[i]])
            previous = (z[:, i] - out[:, 0]) * torch.exp(-out[:, 1])
            rows.append(previous)
        return torch.stack(rows, 1)

    def inverse_reference(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """:meth:`inverse` the plain way: for row ``i`` the whole net runs over all rows (rows ``>= i`` still
        zero, and never read by row ``i``), ``h`` full passes. Slow; the reference the fast inverse is tested
        against."""
        x = torch.zeros_like(z)
        for i in range(z.shape[1]):
            t, log_s = self.shift_log_scale(x, cond)
            x = x.clone()
            x[:, i] = (z[:, i] - t[:, i]) * torch.exp(-log_s[:, i])
        return x
