"""Pure-torch twins of the fused kernels in :mod:`waveflow.kernels.triton_ops`.

Each twin has the same signature and semantics as its Triton kernel: the same inputs, the same outputs written
in place, fp32 arithmetic between the loads and the final store (so a twin and its kernel differ only by the
order of fp32 additions inside a dot product). They run on any device and dtype and form the ``"torch"``
backend of :class:`~waveflow.kernels.FastInverse`.

Shapes use ``B`` batch, ``C`` WN channels, ``n`` time steps (audio samples / ``n_group``). Activations are in
the working dtype; the audio state ``X`` (``(B, n_group, n)``) is float32 throughout.
"""

from __future__ import annotations

import torch


def start_conv(
    x: torch.Tensor, row0: int, n_half: int, weight: torch.Tensor, bias: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """WN start conv on the coupling's first half, read straight from the float32 audio state.

    Args:
        x: ``(B, G, n)`` float32 audio state; the half is rows ``row0 : row0 + n_half``.
        weight: ``(C, n_half)`` float32. bias: ``(C,)`` float32.
        out: ``(B, C, n)`` in the working dtype (may be a strided view), written in place.
    """
    ya = x[:, row0 : row0 + n_half]
    out.copy_(torch.matmul(weight, ya) + bias[:, None])
    return out


def gated_activation(
    inp: torch.Tensor, cond: torch.Tensor, cond_row0: int, bias: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """``out = tanh(a) * sigmoid(b)`` of ``(a, b) = inp + cond_slice + bias`` in float32, stored in ``out``'s dtype.

    Args:
        inp: ``(B, 2C, n)`` dilated-conv output without bias.
        cond: ``(B, N, n)`` all layers' conditioning (without bias); this layer's is rows
            ``cond_row0 : cond_row0 + 2C``.
        bias: ``(2C,)`` float32: the cond-layer bias of this slice plus the in-layer bias (folded once).
        out: ``(B, C, n)``.
    """
    C = out.shape[1]
    c = cond[:, cond_row0 : cond_row0 + 2 * C].float()
    act = inp.float() + c + bias[:, None]
    out.copy_(torch.tanh(act[:, :C]) * torch.sigmoid(act[:, C:]))
    return out


def res_skip_accumulate(
    rs: torch.Tensor, bias: torch.Tensor, h: torch.Tensor, skip: torch.Tensor, has_res: bool, first: bool
) -> None:
    """Residual and skip accumulation of one WN layer, in place.

    ``h += rs[:, :C] + bias[:C]`` (if ``has_res``) and ``skip = (0 if first else skip) + rs[:, C':] + bias[C':]``
    where ``C' = C if has_res else 0``. Sums in float32, one rounding per store.

    Args:
        rs: ``(B, 2C or C, n)`` res/skip conv output without bias. bias: ``(2C or C,)`` float32.
        h: ``(B, C, n)`` residual stream (may be a strided view). skip: ``(B, C, n)``.
    """
    C = skip.shape[1]
    rsf = rs.float() + bias[:, None]
    if has_res:
        h.copy_(h.float() + rsf[:, :C])
        rsf = rsf[:, C:]
    skip.copy_(rsf if first else skip.float() + rsf)


def coupling_inverse(
    skip: torch.Tensor,
    x: torch.Tensor,
    row0: int,
    n_ch: int,
    w_shift: torch.Tensor,
    b_shift: torch.Tensor,
    w_logs: torch.Tensor | None,
    b_logs: torch.Tensor | None,
    w_inv: torch.Tensor,
) -> None:
    """End conv + affine-coupling inverse + inverse 1x1 conv of one flow step, in place on the audio state.

    Rows ``row0 : row0 + n_ch`` of ``x`` hold ``y = (y_a, y_b)``. With ``b = w_shift @ skip + b_shift`` and
    ``log_s = w_logs @ skip + b_logs`` (the end conv, fp32 accumulation), it writes back
    ``W^-1 @ (y_a, (y_b - b) * exp(-log_s))``. ``w_logs=None`` is the additive coupling (``log_s = 0``).

    Args:
        skip: ``(B, C, n)`` WN skip sum (working dtype).
        x: ``(B, G, n)`` float32 audio state.
        w_shift, w_logs: ``(n_ch - n_ch // 2, C)`` in the working dtype. b_shift, b_logs: float32.
        w_inv: ``(n_ch, n_ch)`` float32, computed in float64.
    """
    half = n_ch // 2
    sf = skip.float()
    y = x[:, row0 : row0 + n_ch]
    b = torch.matmul(w_shift.float(), sf) + b_shift[:, None]
    yb = y[:, half:] - b
    if w_logs is not None:
        log_s = torch.matmul(w_logs.float(), sf) + b_logs[:, None]
        yb = yb * torch.exp(-log_s)
    xb = torch.cat([y[:, :half], yb], 1)
    y.copy_(torch.matmul(w_inv, xb))
