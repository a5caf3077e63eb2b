"""Fused Triton kernels of the WaveGlow inverse, with the signatures of their twins in :mod:`.reference`.

Importing this module imports Triton. Triton decides at decoration time whether ``@triton.jit`` functions
run compiled or in its interpreter, so ``TRITON_INTERPRET=1`` must be set before this module is first
imported (the tests do it in a subprocess). In the interpreter the kernels run on CPU tensors.

All kernels load their inputs in the storage dtype, compute in float32 (tanh/sigmoid/exp included) and round
once on store. Offsets are 64-bit: the stacked conditioning of all flows passes 2**31 elements at batch 8.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Tile sizes. Elementwise kernels: BLOCK_C x BLOCK_T elements per program. Tuned on GPU later; any power of
# two works for correctness.
EW_BLOCK_C = 8
EW_BLOCK_T = 256


def _grid_2d(n: int, rows: int, batch: int, block_c: int = EW_BLOCK_C, block_t: int = EW_BLOCK_T):
    return (triton.cdiv(n, block_t), triton.cdiv(rows, block_c), batch)


def _check_time_contiguous(*tensors: torch.Tensor) -> None:
    for t in tensors:
        if t.stride(-1) != 1:
            raise ValueError(f"kernels need unit stride along time, got strides {t.stride()}")


# ---------------------------------------------------------------------------------------------- start conv
@triton.jit
def _start_conv_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    n,
    C,
    row0,
    sxb,
    sxc,
    sob,
    soc,
    NH: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    pid_b = tl.program_id(2).to(tl.int64)
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mt = offs_t < n
    mc = offs_c < C
    acc = tl.zeros((BLOCK_C, BLOCK_T), dtype=tl.float32)
    acc += tl.load(b_ptr + offs_c, mask=mc, other=0.0)[:, None]
    for j in tl.static_range(NH):
        # row0 * sxc stays small (G rows); the int64 batch term promotes the sum
        xj = tl.load(x_ptr + pid_b * sxb + row0 * sxc + j * sxc + offs_t, mask=mt, other=0.0)
        wj = tl.load(w_ptr + offs_c * NH + j, mask=mc, other=0.0)
        acc += wj[:, None] * xj[None, :]
    ptrs = out_ptr + pid_b * sob + offs_c.to(tl.int64)[:, None] * soc + offs_t[None, :]
    tl.store(ptrs, acc.to(out_ptr.dtype.element_ty), mask=mc[:, None] & mt[None, :])


def start_conv(
    x: torch.Tensor, row0: int, n_half: int, weight: torch.Tensor, bias: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """Triton twin of :func:`waveflow.kernels.reference.start_conv`."""
    _check_time_contiguous(x, out)
    B, C, n = out.shape
    assert weight.shape == (C, n_half) and weight.is_contiguous() and x.dtype == torch.float32
    _start_conv_kernel[_grid_2d(n, C, B)](
        x,
        weight,
        bias,
        out,
        n,
        C,
        row0,
        x.stride(0),
        x.stride(1),
        out.stride(0),
        out.stride(1),
        NH=n_half,
        BLOCK_C=EW_BLOCK_C,
        BLOCK_T=EW_BLOCK_T,
    )
    return out


# ---------------------------------------------------------------------------------------- gated activation
@triton.jit
def _gate_kernel(
    inp_ptr,
    cond_ptr,
    bias_ptr,
    out_ptr,
    n,
    C,
    cond_row0,
    sib,
    sic,
    scb,
    scc,
    sob,
    soc,
    BLOCK_C: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    pid_b = tl.program_id(2).to(tl.int64)
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mt = offs_t < n
    mc = offs_c < C
    mask = mc[:, None] & mt[None, :]
    rows = offs_c.to(tl.int64)[:, None]
    cols = offs_t[None, :]
    in_a = inp_ptr + pid_b * sib + rows * sic + cols
    cond_a = cond_ptr + pid_b * scb + (rows + cond_row0) * scc + cols
    xa = tl.load(in_a, mask=mask, other=0.0).to(tl.float32)
    xb = tl.load(in_a + C * sic, mask=mask, other=0.0).to(tl.float32)
    xa += tl.load(cond_a, mask=mask, other=0.0).to(tl.float32)
    xb += tl.load(cond_a + C * scc, mask=mask, other=0.0).to(tl.float32)
    xa += tl.load(bias_ptr + offs_c, mask=mc, other=0.0)[:, None]
    xb += tl.load(bias_ptr + C + offs_c, mask=mc, other=0.0)[:, None]
    # tanh(a) = 1 - 2 / (exp(2a) + 1): exact limits +-1 when exp over/underflows; sigmoid likewise.
    t = 1.0 - 2.0 / (tl.exp(2.0 * xa) + 1.0)
    s = 1.0 / (1.0 + tl.exp(-xb))
    out = out_ptr + pid_b * sob + rows * soc + cols
    tl.store(out, (t * s).to(out_ptr.dtype.element_ty), mask=mask)


def gated_activation(
    inp: torch.Tensor, cond: torch.Tensor, cond_row0: int, bias: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """Triton twin of :func:`waveflow.kernels.reference.gated_activation`."""
    _check_time_contiguous(inp, cond, out)
    B, C, n = out.shape
    _gate_kernel[_grid_2d(n, C, B)](
        inp,
        cond,
        bias,
        out,
        n,
        C,
        cond_row0,
        inp.stride(0),
        inp.stride(1),
        cond.stride(0),
        cond.stride(1),
        out.stride(0),
        out.stride(1),
        BLOCK_C=EW_BLOCK_C,
        BLOCK_T=EW_BLOCK_T,
    )
    return out


# ----------------------------------------------------------------------------------------- res/skip update
@triton.jit
def _res_skip_kernel(
    rs_ptr,
    bias_ptr,
    h_ptr,
    skip_ptr,
    n,
    C,
    skip_row0,
    srb,
    src,
    shb,
    shc,
    ssb,
    ssc,
    HAS_RES: tl.constexpr,
    FIRST: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    pid_b = tl.program_id(2).to(tl.int64)
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mt = offs_t < n
    mc = offs_c < C
    mask = mc[:, None] & mt[None, :]
    rows = offs_c.to(tl.int64)[:, None]
    cols = offs_t[None, :]
    rs = rs_ptr + pid_b * srb + rows * src + cols
    if HAS_RES:
        r = tl.load(rs, mask=mask, other=0.0).to(tl.float32)
        r += tl.load(bias_ptr + offs_c, mask=mc, other=0.0)[:, None]
        hp = h_ptr + pid_b * shb + rows * shc + cols
        r += tl.load(hp, mask=mask, other=0.0).to(tl.float32)
        tl.store(hp, r.to(h_ptr.dtype.element_ty), mask=mask)
    s = tl.load(rs + skip_row0 * src, mask=mask, other=0.0).to(tl.float32)
    s += tl.load(bias_ptr + skip_row0 + offs_c, mask=mc, other=0.0)[:, None]
    sp = skip_ptr + pid_b * ssb + rows * ssc + cols
    if not FIRST:
        s += tl.load(sp, mask=mask, other=0.0).to(tl.float32)
    tl.store(sp, s.to(skip_ptr.dtype.element_ty), mask=mask)


def res_skip_accumulate(
    rs: torch.Tensor, bias: torch.Tensor, h: torch.Tensor, skip: torch.Tensor, has_res: bool, first: bool
) -> None:
    """Triton twin of :func:`waveflow.kernels.reference.res_skip_accumulate`."""
    _check_time_contiguous(rs, h, skip)
    B, C, n = skip.shape
    _res_skip_kernel[_grid_2d(n, C, B)](
        rs,
        bias,
        h,
        skip,
        n,
        C,
        C if has_res else 0,  # first row of the skip part in rs
        rs.stride(0),
        rs.stride(1),
        h.stride(0),
        h.stride(1),
        skip.stride(0),
        skip.stride(1),
        HAS_RES=has_res,
        FIRST=first,
        BLOCK_C=EW_BLOCK_C,
        BLOCK_T=EW_BLOCK_T,
    )


from .triton_coupling import coupling_inverse

__all__ = ["coupling_inverse", "gated_activation", "res_skip_accumulate", "start_conv"]
