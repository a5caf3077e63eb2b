"""WN: the WaveNet-like network that predicts an affine coupling's shift and log-scale.

Dilated, non-causal (centred "same" padding), gated convolutions conditioned on the upsampled mel, with
fused residual/skip 1x1 convolutions, exactly NVIDIA WaveGlow's ``WN``. All conditioning of the layers comes
from ONE fused 1x1 conv (``cond_layer``): its output is sliced per layer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm


def gated_activation(x: torch.Tensor, cond: torch.Tensor, n_channels: int) -> torch.Tensor:
    """``tanh(a) * sigmoid(b)`` of ``x + cond`` split into halves ``a, b`` of ``n_channels`` each."""
    act = x + cond
    return torch.tanh(act[:, :n_channels]) * torch.sigmoid(act[:, n_channels:])


class WN(nn.Module):
    """Gated dilated conv net: ``(x (B, n_in, T), cond (B, n_cond, T)) -> (B, n_out, T)``.

    Args:
        n_in_channels: channels of the coupling half it reads.
        n_cond_channels: conditioning channels (``n_mels * n_group``).
        n_out_channels: ``2 * n_in`` for affine couplings (shift, log-scale), ``n_in`` for additive ones.
        n_layers: dilated layers, dilation ``2**i``.
        n_channels: residual channels.
        kernel_size: odd kernel width of the dilated convs.
    """

    zero_end = True  # its end conv starts at zero (see randomize_ends)

    def __init__(
        self,
        n_in_channels: int,
        n_cond_channels: int,
        n_out_channels: int,
        n_layers: int,
        n_channels: int,
        kernel_size: int,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.n_layers = n_layers
        self.n_channels = n_channels
        self.start = weight_norm(nn.Conv1d(n_in_channels, n_channels, 1))
        self.cond_layer = weight_norm(nn.Conv1d(n_cond_channels, 2 * n_channels * n_layers, 1))
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = 2**i
            padding = (kernel_size * dilation - dilation) // 2
            self.in_layers.append(
                weight_norm(nn.Conv1d(n_channels, 2 * n_channels, kernel_size, dilation=dilation, padding=padding))
            )
            # The last layer has no residual output: nothing reads it.
            res_skip = 2 * n_channels if i < n_layers - 1 else n_channels
            self.res_skip_layers.append(weight_norm(nn.Conv1d(n_channels, res_skip, 1)))
        # Zero end conv: every coupling starts as the identity, which makes early training stable.
        self.end = nn.Conv1d(n_channels, n_out_channels, 1)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)

    def conditioning(self, cond: torch.Tensor) -> torch.Tensor:
        """All layers' conditioning at once: ``(B, n_cond, T) -> (B, 2 * n_channels * n_layers, T)``."""
        return self.cond_layer(cond)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, cond_is_projected: bool = False) -> torch.Tensor:
        """Args:
            x: ``(B, n_in, T)`` the coupling's conditioning half.
            cond: ``(B, n_cond, T)`` upsampled grouped mel, or its projection if ``cond_is_projected``.

        Returns:
            ``(B, n_out, T)``.
        """
        h = self.start(x)
        c = cond if cond_is_projected else self.conditioning(cond)
        C = self.n_channels
        skip = None
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            acts = gated_activation(in_layer(h), c[:, 2 * C * i : 2 * C * (i + 1)], C)
            rs = res_skip_layer(acts)
            if i < self.n_layers - 1:
                h = h + rs[:, :C]
                rs = rs[:, C:]
            skip = rs if skip is None else skip + rs
        return self.end(skip)


def remove_weight_norm(module: nn.Module) -> int:
    """Fold every weight-norm parametrisation under ``module`` into a plain weight; returns how many."""
    count = 0
    for sub in module.modules():
        if parametrize.is_parametrized(sub, "weight"):
            parametrize.remove_parametrizations(sub, "weight", leave_parametrized=True)
            count += 1
    return count


def apply_weight_norm(module: nn.Module) -> int:
    """Re-apply weight norm (``g = ||w||``, ``v = w``: the function is unchanged) to the WN convs under
    ``module`` that do not have it; the end convs never have it. Returns how many were applied."""
    count = 0
    for wn in (m for m in module.modules() if isinstance(m, WN)):
        convs = [wn.start, wn.cond_layer, *wn.in_layers, *wn.res_skip_layers]
        for conv in convs:
            if not parametrize.is_parametrized(conv, "weight"):
                weight_norm(conv)
                count += 1
    return count


@torch.no_grad()
def randomize_ends(module: nn.Module, std: float = 0.1, seed: int = 0) -> nn.Module:
    """Fill the weight and bias of every WN's ``end`` conv under ``module`` with ``N(0, std^2)`` (seeded); returns it.

    A new WaveGlow's (or WaveFlow's) end convs are zero, which makes every coupling (flow) the identity.
    Benchmarks and tests that need the cost and the numerics of a trained model use this instead. The draw is
    made in float64 on the CPU, then cast, so it is the same on every device and dtype. A WN is any module
    whose class sets ``zero_end = True`` (:class:`WN`, the 2-D :class:`~.wavenet2d.WN2d`).
    """
    gen = torch.Generator().manual_seed(seed)
    wns = [m for m in module.modules() if getattr(type(m), "zero_end", False)]
    if not wns:
        raise ValueError("randomize_ends found no WN module")
    for wn in wns:
        for p in (wn.end.weight, wn.end.bias):
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * std)
    return module
