"""WN2d: the 2-D WaveNet-like net of a WaveFlow step (Ping et al., 2020), and its row-by-row evaluation.

The audio of one flow step is a matrix ``(h, w)`` (column ``j`` holds samples ``j*h .. j*h + h - 1``). The net
reads it shifted down one row (row ``i`` holds the flow input's row ``i - 1``, row 0 zeros) and predicts, for
every row, the shift and log-scale of that row: dilated, gated 2-D convolutions, causal along the height (each
padded only at the top, so output row ``i`` reads input rows ``<= i``), centred along the width (dilation
``2**l`` in layer ``l``), conditioned on the upsampled mel through one fused 1x1 conv, with residual and skip
1x1 convs; the end conv starts at zero (an identity flow). Layer by layer it is :class:`~.wavenet.WN` with 2-D
convolutions.

Sampling runs the rows in order, ``h`` passes. :class:`RowSteps` computes one row at a time with only the rows
that row reads: each layer keeps the last ``(kh - 1) * d + 1`` rows of its input (kernel height ``kh``,
height dilation ``d``), as fast WaveNet generation keeps per-layer queues, so a row costs one row of work in
every layer, not a pass over all earlier rows.
"""

from __future__ import annotations

from collections import deque

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from .wavenet import gated_activation


class WN2d(nn.Module):
    """Gated dilated 2-D conv net: ``(x (B, 1, h, w), cond (B, n_cond, h, w)) -> (B, 2, h, w)``.

    Output channel 0 is the shift, channel 1 the log-scale (WaveGlow's order: shift first).

    Args:
        n_cond_channels: conditioning channels (mel bands).
        n_layers: dilated layers; width dilation ``2**l``.
        n_channels: residual (and skip) channels.
        kernel_size: ``(height, width)`` of the dilated convs; the width odd.
        height_dilations: one height dilation per layer.
    """

    zero_end = True  # its end conv starts at zero (see randomize_ends)

    def __init__(self, n_cond_channels: int, n_layers: int, n_channels: int, kernel_size: tuple[int, int],
                 height_dilations: tuple[int, ...]):
        super().__init__()
        kh, kw = kernel_size
        if kw % 2 != 1 or kh < 1:
            raise ValueError(f"kernel_size must be (height >= 1, odd width), got {tuple(kernel_size)}")
        if len(height_dilations) != n_layers:
            raise ValueError(f"need one height dilation per layer ({n_layers}), got {len(height_dilations)}")
        self.n_layers, self.n_channels, self.kernel_size = n_layers, n_channels, (kh, kw)
        self.height_dilations = tuple(height_dilations)
        self.start = weight_norm(nn.Conv2d(1, n_channels, 1))
        self.cond_layer = weight_norm(nn.Conv2d(n_cond_channels, 2 * n_channels * n_layers, 1))
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i, dh in enumerate(self.height_dilations):
            dw = 2**i
            # The width is padded by the conv ("same"); the height by hand, at the top only (causal).
            self.in_layers.append(weight_norm(nn.Conv2d(n_channels, 2 * n_channels, (kh, kw), dilation=(dh, dw),
                                                        padding=(0, dw * (kw - 1) // 2))))
            res_skip = 2 * n_channels if i < n_layers - 1 else n_channels  # the last residual is never read
            self.res_skip_layers.append(weight_norm(nn.Conv2d(n_channels, res_skip, 1)))
        self.end = nn.Conv2d(n_channels, 2, 1)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)

    def width_reach(self) -> int:
        """Columns on each side one output reads (the dilated convs' half-widths summed)."""
        return (self.kernel_size[1] - 1) // 2 * (2**self.n_layers - 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Args:
            x: ``(B, 1, h, w)`` the flow's input shifted down one row.
            cond: ``(B, n_cond, h, w)`` the upsampled mel, squeezed like the audio.

        Returns:
            ``(B, 2, h, w)``: shift and log-scale of every row.
        """
        h = self.start(x)
        c = self.cond_layer(cond)
        C, kh = self.n_channels, self.kernel_size[0]
        skip = None
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            padded = F.pad(h, (0, 0, (kh - 1) * self.height_dilations[i], 0))
            acts = gated_activation(in_layer(padded), c[:, 2 * C * i : 2 * C * (i + 1)], C)
            rs = res_skip_layer(acts)
            if i < self.n_layers - 1:
                h = h + rs[:, :C]
                rs = rs[:, C:]
            skip = rs if skip is None else skip + rs
        return self.end(skip)


class RowSteps:
    """:class:`WN2d` evaluated one row at a time, in order: ``steps(x_prev (B, w), cond_row (B, n_cond, w))
    -> (B, 2, w)``, row ``i``'s output from row ``i - 1`` of the flow's input (zeros for row 0).

    Equal to ``WN2d.forward`` row for row (a test). Weights are read once (weight norm evaluated once per
    sampling call, not per row); per layer a queue holds the rows of that layer's input that later rows read.
    """

    def __init__(self, wn: WN2d):
        self.wn = wn
        kh, _ = wn.kernel_size
        self.C, self.kh = wn.n_channels, kh
        self.start_w = wn.start.weight.reshape(1, -1, 1)
        self.start_b = wn.start.bias.reshape(1, -1, 1)
        self.cond_w, self.cond_b = wn.cond_layer.weight[..., 0], wn.cond_layer.bias
        # A (2C, C, kh, kw) kernel on kh rows stacked as channels (c * kh + k) is a 1-D conv over the width.
        self.in_w = [layer.weight.reshape(2 * self.C, self.C * kh, -1) for layer in wn.in_layers]
        self.in_b = [layer.bias for layer in wn.in_layers]
        self.rs_w = [layer.weight[..., 0] for layer in wn.res_skip_layers]
        self.rs_b = [layer.bias for layer in wn.res_skip_layers]
        self.end_w, self.end_b = wn.end.weight[..., 0], wn.end.bias
        self.history = [deque(maxlen=(kh - 1) * d + 1) for d in wn.height_dilations]

    def __call__(self, x_prev: torch.Tensor, cond_row: torch.Tensor) -> torch.Tensor:
        C, kh = self.C, self.kh
        h = self.start_w * x_prev[:, None, :] + self.start_b
        c = F.conv1d(cond_row, self.cond_w, self.cond_b)
        zeros, skip = None, None
        for i, d in enumerate(self.wn.height_dilations):
            past = self.history[i]
            past.append(h)
            if kh == 1:
                stacked = h
            else:
                taps = []
                for k in range(kh):  # tap k reads the row (kh - 1 - k) * d above (zeros above row 0)
                    back = (kh - 1 - k) * d
                    if back < len(past):
                        taps.append(past[-1 - back])
                    else:
                        zeros = torch.zeros_like(h) if zeros is None else zeros
                        taps.append(zeros)
                stacked = torch.stack(taps, 2).flatten(1, 2)
            width_pad = self.wn.in_layers[i].padding[1]
            a = F.conv1d(stacked, self.in_w[i], self.in_b[i], padding=width_pad, dilation=2**i)
            acts = gated_activation(a, c[:, 2 * C * i : 2 * C * (i + 1)], C)
            rs = F.conv1d(acts, self.rs_w[i], self.rs_b[i])
            if i < self.wn.n_layers - 1:
                h = h + rs[:, :C]
                rs = rs[:, C:]
            skip = rs if skip is None else skip + rs
        return F.conv1d(skip, self.end_w, self.end_b)


def apply_weight_norm(module: nn.Module) -> int:
    """Re-apply weight norm (``g = ||w||``, ``v = w``: the function is unchanged) to the WN2d convs under
    ``module`` that do not have it; the end convs never have it. Returns how many were applied."""
    count = 0
    for wn in (m for m in module.modules() if isinstance(m, WN2d)):
        for conv in (wn.start, wn.cond_layer, *wn.in_layers, *wn.res_skip_layers):
            if not parametrize.is_parametrized(conv, "weight"):
                weight_norm(conv)
                count += 1
    return count
