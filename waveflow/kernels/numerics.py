"""Numerics and cost model of the inverse: SNR between two renderings, FLOPs and bytes per output sample."""

from __future__ import annotations

import math

import torch

from ..models import WaveGlowConfig


def snr_db(reference: torch.Tensor, test: torch.Tensor) -> float:
    """Signal-to-noise ratio of ``test`` against ``reference`` in dB, ``10 log10(sum ref^2 / sum (ref-test)^2)``.

    Computed in float64 over all elements. ``inf`` when identical; ``-inf``/``nan`` never hide: a NaN in
    ``test`` gives ``nan``.
    """
    ref = reference.detach().double().flatten()
    err = (ref - test.detach().double().flatten()).pow(2).sum().item()
    sig = ref.pow(2).sum().item()
    if math.isnan(err):
        return math.nan
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(sig / err) if sig > 0 else -math.inf


def flops_per_sample(cfg: WaveGlowConfig, include_upsampler: bool = True) -> dict[str, float]:
    """Floating-point operations (2 per multiply-add) per output audio sample of the inverse, by part.

    Per flow and time step (``n_group`` samples): start conv, cond conv (all layers), dilated in-layers,
    res/skip convs, end conv, inverse 1x1 conv; plus the upsampler per sample.
    """
    C, L, k, g, m = cfg.n_channels, cfg.n_layers, cfg.kernel_size, cfg.n_group, cfg.n_mels
    parts = {"start": 0.0, "cond": 0.0, "in_layers": 0.0, "res_skip": 0.0, "end": 0.0, "invconv": 0.0}
    for n_ch in cfg.flow_channels():
        half = n_ch // 2
        n_out = half if cfg.coupling == "additive" else 2 * half
        parts["start"] += 2 * half * C
        parts["cond"] += 2 * m * g * 2 * C * L
        parts["in_layers"] += 2 * k * C * 2 * C * L
        parts["res_skip"] += 2 * C * 2 * C * (L - 1) + 2 * C * C
        parts["end"] += 2 * C * n_out
        parts["invconv"] += 2 * n_ch * n_ch
    out = {key: v / g for key, v in parts.items()}
    if include_upsampler:
        out["upsample"] = 2.0 * m * m * 4  # ConvTranspose1d(m, m, 4 hop, hop): 4 taps per output sample
    out["total"] = sum(out.values())
    return out


def bytes_per_sample(
    cfg: WaveGlowConfig, itemsize: int = 2, fused_gate_gemm: bool = False
) -> dict[str, float]:
    """Device-memory traffic per output sample of the FastInverse pipeline (each tensor read/written once per
    op, weights and the G-row audio state neglected), so ``bytes / bandwidth`` is its memory floor.

    Per layer and time step, in units of C elements: dilated conv reads h, writes 2C (3); gate reads 2C + 2C
    cond, writes C (5); res/skip GEMM reads C, writes 2C (3); res/skip kernel reads 2C + h + skip, writes h +
    skip (6); total 17 C. ``fused_gate_gemm`` gives the figure with the gate in the conv's epilogue (13 C).
    Per flow: start conv writes C, end conv reads C. Per call: cond_all written once and read once.
    """
    C, L, g, m = cfg.n_channels, cfg.n_layers, cfg.n_group, cfg.n_mels
    per_layer = (13 if fused_gate_gemm else 17) * C
    flows = cfg.n_flows
    layers = flows * (per_layer * L + 2 * C)
    cond = flows * L * 2 * C * 2 + m * g  # write + read of cond_all, read of cond
    return {
        "layers": layers * itemsize / g,
        "cond_all": cond * itemsize / g,
        "total": (layers + cond) * itemsize / g,
    }


def limits(
    cfg: WaveGlowConfig, peak_tflops: float, bandwidth_tbs: float, itemsize: int = 2
) -> dict[str, float]:
    """Compute and memory floors as sample rates (MHz) and real-time factors at 22.05 kHz."""
    fl = flops_per_sample(cfg)["total"]
    by = bytes_per_sample(cfg, itemsize)["total"]
    mhz_compute = peak_tflops * 1e12 / fl / 1e6
    mhz_memory = bandwidth_tbs * 1e12 / by / 1e6
    return {
        "mflop_per_sample": fl / 1e6,
        "kbyte_per_sample": by / 1e3,
        "peak_tflops": peak_tflops,
        "bandwidth_tbs": bandwidth_tbs,
        "mhz_compute_limit": mhz_compute,
        "mhz_memory_limit": mhz_memory,
        "mhz_limit": min(mhz_compute, mhz_memory),
        "rtf_limit_22k": min(mhz_compute, mhz_memory) * 1e6 / 22050,
    }
