"""Triton kernel of one flow step's tail: end conv + affine-coupling inverse + inverse 1x1 conv.

Twin: :func:`waveflow.kernels.reference.coupling_inverse`. Same import rule as :mod:`.triton_ops`
(``TRITON_INTERPRET`` must be set before the first import).
"""

from __future__ import annotations

import os
import weakref

import torch
import triton
import triton.language as tl

COUPLING_BLOCK_T = 64
COUPLING_BLOCK_K = 64
MIN_DOT = 16  # tl.dot needs every dimension >= 16


def _check_time_contiguous(*tensors: torch.Tensor) -> None:
    for t in tensors:
        if t.stride(-1) != 1:
            raise ValueError(f"kernels need unit stride along time, got strides {t.stride()}")


# ------------------------------------------------------------------------- end conv + coupling + 1x1 inverse
@triton.jit
def _coupling_kernel(
    skip_ptr,
    x_ptr,
    wsh_ptr,
    bsh_ptr,
    wls_ptr,
    bls_ptr,
    winv_ptr,
    n,
    CW,
    row0,
    n_ch,
    ssb,
    ssc,
    sxb,
    sxc,
    HAS_SCALE: tl.constexpr,
    DOT_IEEE: tl.constexpr,
    BM: tl.constexpr,
    BK: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    pid_b = tl.program_id(1).to(tl.int64)
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_m = tl.arange(0, BM)
    offs_k = tl.arange(0, BK)
    mt = offs_t < n
    acc_b = tl.zeros((BM, BLOCK_T), dtype=tl.float32)
    acc_l = tl.zeros((BM, BLOCK_T), dtype=tl.float32)
    # End conv: (BM, CW) @ (CW, BLOCK_T). Weight rows are padded so that row r is the shift / log-scale of
    # state row r (zeros for the pass-through half and past n_ch).
    for k0 in range(0, CW, BK):
        kk = k0 + offs_k
        mk = kk < CW
        s = tl.load(
            skip_ptr + pid_b * ssb + kk.to(tl.int64)[:, None] * ssc + offs_t[None, :],
            mask=mk[:, None] & mt[None, :],
            other=0.0,
        )
        w = tl.load(wsh_ptr + offs_m[:, None] * CW + kk[None, :], mask=mk[None, :], other=0.0)
        if DOT_IEEE:
            s = s.to(tl.float32)
            w = w.to(tl.float32)
            acc_b += tl.dot(w, s, input_precision="ieee")
        else:
            acc_b += tl.dot(w, s)
        if HAS_SCALE:
            w = tl.load(wls_ptr + offs_m[:, None] * CW + kk[None, :], mask=mk[None, :], other=0.0)
            if DOT_IEEE:
                w = w.to(tl.float32)
                acc_l += tl.dot(w, s, input_precision="ieee")
            else:
                acc_l += tl.dot(w, s)
    mrow = offs_m < n_ch
    xp = x_ptr + pid_b * sxb + (row0 + offs_m).to(tl.int64)[:, None] * sxc + offs_t[None, :]
    mask = mrow[:, None] & mt[None, :]
    y = tl.load(xp, mask=mask, other=0.0)
    xv = y - (acc_b + tl.load(bsh_ptr + offs_m)[:, None])
    if HAS_SCALE:
        xv = xv * tl.exp(-(acc_l + tl.load(bls_ptr + offs_m)[:, None]))
    winv = tl.load(winv_ptr + offs_m[:, None] * BM + offs_m[None, :])
    out = tl.dot(winv, xv, input_precision="ieee")
    tl.store(xp, out, mask=mask)


# Padded coupling weights by id(w_shift), with a weak reference that proves the id still names the same
# tensor. Keying on data_ptr (or id alone) would be wrong: a freed pack's memory and ids are reused.
_PADDED: dict[int, tuple] = {}

# Triton 3.8's interpreter computes tl.dot of bf16 operands wrongly (off by ~1e10 on a 16x32x16 product;
# fp16 and fp32 are right), so under the interpreter bf16 operands are widened to fp32 first. Compiled
# kernels use the native bf16 dot.
_INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


def _dot_in_fp32(dtype: torch.dtype) -> bool:
    return dtype == torch.float32 or (_INTERPRETED and dtype == torch.bfloat16)


def _pad_rows(w: torch.Tensor, first_row: int, rows: int, dtype: torch.dtype) -> torch.Tensor:
    """``w`` placed at rows ``first_row:`` of a zero ``(rows, ...)`` tensor."""
    out = torch.zeros((rows, *w.shape[1:]), dtype=dtype, device=w.device)
    out[first_row : first_row + w.shape[0]] = w.to(dtype)
    return out


def _coupling_weights(w_shift, b_shift, w_logs, b_logs, w_inv, n_ch: int, dtype: torch.dtype, bm: int):
    """End-conv rows padded so that row r is the shift / log-scale of state row r; ``W^-1`` padded to bm."""
    key = (n_ch, dtype, bm, w_logs is None)
    hit = _PADDED.get(id(w_shift))
    if (
        hit is not None
        and hit[0]() is w_shift
        and hit[1] == key
        and hit[2] == (id(b_shift), id(w_logs), id(w_inv))
    ):
        return hit[3]
    half = n_ch // 2
    wsh = _pad_rows(w_shift, half, bm, dtype)
    bsh = _pad_rows(b_shift, half, bm, torch.float32)
    wls = _pad_rows(w_logs, half, bm, dtype) if w_logs is not None else wsh
    bls = _pad_rows(b_logs, half, bm, torch.float32) if w_logs is not None else bsh
    winv = torch.zeros(bm, bm, dtype=torch.float32, device=w_inv.device)
    winv[:n_ch, :n_ch] = w_inv
    out = (wsh, bsh, wls, bls, winv)
    if len(_PADDED) > 1024:
        _PADDED.clear()
    _PADDED[id(w_shift)] = (weakref.ref(w_shift), key, (id(b_shift), id(w_logs), id(w_inv)), out)
    return out


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
    """Triton twin of :func:`waveflow.kernels.reference.coupling_inverse` (one kernel per flow step).

    The padded weights are built on the first call with a given ``w_shift`` tensor and reused (do not
    modify the weights in place between calls; a CUDA-graph capture must follow a warm-up call).
    """
    _check_time_contiguous(skip, x)
    B, CW, n = skip.shape
    bm = max(MIN_DOT, triton.next_power_of_2(n_ch))
    has_scale = w_logs is not None
    wsh, bsh, wls, bls, winv = _coupling_weights(
        w_shift, b_shift, w_logs, b_logs, w_inv, n_ch, skip.dtype, bm
    )
    grid = (triton.cdiv(n, COUPLING_BLOCK_T), B)
    _coupling_kernel[grid](
        skip,
        x,
        wsh,
        bsh,
        wls,
        bls,
        winv,
        n,
        CW,
        row0,
        n_ch,
        skip.stride(0),
        skip.stride(1),
        x.stride(0),
        x.stride(1),
        HAS_SCALE=has_scale,
        DOT_IEEE=_dot_in_fp32(skip.dtype),
        BM=bm,
        BK=COUPLING_BLOCK_K,
        BLOCK_T=COUPLING_BLOCK_T,
    )
