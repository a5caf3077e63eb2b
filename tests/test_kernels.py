"""waveflow.kernels: FastInverse == WaveGlow.inverse, the Triton kernels == their torch twins, fp16 numerics.

Triton decides at decoration time whether kernels run compiled or interpreted, and other test files import
waveflow without ``TRITON_INTERPRET``; so the Triton tests (``test_triton_*``) run in a subprocess with
``TRITON_INTERPRET=1`` started by :func:`test_interpreter_run` (on CPU tensors), or directly on CUDA.
References: ``model.inverse`` in float64 (an independent code path: per-flow cond convs, cat of early outputs,
einsum 1x1 inverse), and the torch twins for the kernels.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_CONFIG, randomize_ends

from waveflow import WaveGlow, WaveGlowConfig
from waveflow.kernels import (
    bytes_per_sample,
    flops_per_sample,
    limits,
    prepare_inverse,
    reference,
    resolve_backend,
    snr_db,
    triton_available,
)

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
CUDA = torch.cuda.is_available()
TRITON_HERE = triton_available() and (INTERPRET or CUDA)
needs_triton = pytest.mark.skipif(
    not TRITON_HERE,
    reason="Triton kernels run on CUDA, or in the TRITON_INTERPRET=1 subprocess of test_interpreter_run",
)
gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs CUDA")
DEV = torch.device("cuda" if CUDA and not INTERPRET else "cpu")
LOG_FLOOR = math.log(1e-5)  # -11.51: the mel clamp floor

# Small shapes: hop 32, 8 mels. Variants cover early outputs, none, 16-channel groups (BM = 16 in the
# coupling kernel), the additive coupling, kernel 5.
BASE = WaveGlowConfig(
    n_mels=8, n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=3, n_channels=8, hop_length=32
)
CONFIGS = {
    "early-outputs": BASE,
    "no-early-outputs": dataclasses.replace(BASE, n_early_size=0),
    "group16": dataclasses.replace(BASE, n_group=16, n_early_size=4),
    "additive": dataclasses.replace(BASE, coupling="additive"),
    "kernel5": dataclasses.replace(BASE, kernel_size=5, n_layers=2),
    "mel-shift": dataclasses.replace(BASE, mel_shift=6.0),
}
TINY = TINY_CONFIG  # 80 mels / hop 256 (real mel shapes), 16 WN channels


def build(cfg: WaveGlowConfig, seed: int = 0, ends_std: float = 0.2, device=DEV) -> WaveGlow:
    torch.manual_seed(seed)
    return randomize_ends(WaveGlow(cfg), std=ends_std, seed=seed).eval().to(device)


def inputs(cfg: WaveGlowConfig, frames: int, batch: int = 2, seed: int = 1, device=DEV):
    g = torch.Generator().manual_seed(seed)
    n = frames * cfg.hop_length // cfg.n_group
    z = 0.6 * torch.randn(batch, cfg.n_group, n, generator=g, dtype=torch.float64)
    mel = torch.randn(batch, cfg.n_mels, frames, generator=g, dtype=torch.float64) - 4.0
    return z.to(device), mel.to(device)


def reference_inverse(model: WaveGlow, z: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
    """``model.inverse`` in float64 on a copy (the model under test stays untouched)."""
    m = WaveGlow(model.config).to(z.device)
    m.load_state_dict(model.state_dict())
    m = m.double().eval()
    with torch.inference_mode():
        return m.inverse(z.double(), mel.double())


def speech_like_mel(frames: int, n_mels: int = 80, seed: int = 0) -> torch.Tensor:
    """A smooth, speech-range log-mel (about -11 .. +1.5) without needing audio."""
    g = torch.Generator().manual_seed(seed)
    base = torch.linspace(0.0, -6.0, n_mels)[:, None]
    env = torch.sin(torch.arange(frames) / 3.0)[None] * 2.0
    return (base + env + 0.5 * torch.randn(n_mels, frames, generator=g) - 2.0).clamp(min=LOG_FLOOR)[None]


# -------------------------------------------------------------------------------------------------- numerics
def test_snr_db():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert snr_db(x, x) == math.inf
    assert snr_db(x, 1.1 * x) == pytest.approx(20.0, abs=1e-9)  # error = 0.1 x
    assert math.isnan(snr_db(x, torch.full_like(x, float("nan"))))


def test_flops_of_the_default_model_match_the_issue():
    """WaveGlow-256: ~20.2 MFLOP per sample, ~39 % in the cond convs, ~39 MHz at 790 TFLOP/s."""
    fl = flops_per_sample(WaveGlowConfig())
    assert fl["total"] / 1e6 == pytest.approx(20.3, abs=0.15)
    assert fl["cond"] / fl["total"] == pytest.approx(0.39, abs=0.01)
    lim = limits(WaveGlowConfig(), peak_tflops=790, bandwidth_tbs=3.35)
    assert lim["mhz_compute_limit"] == pytest.approx(39, abs=1)
    assert (
        bytes_per_sample(WaveGlowConfig())["total"]
        > bytes_per_sample(WaveGlowConfig(), fused_gate_gemm=True)["total"]
    )


# ------------------------------------------------------------------------------------------ torch backend
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("conv", ["conv1d", "shift"])
def test_torch_backend_matches_model_inverse(name, conv):
    cfg = CONFIGS[name]
    model = build(cfg)
    z, mel = inputs(cfg, frames=7)
    ref = reference_inverse(model, z, mel)
    out = prepare_inverse(model, torch.float32, "torch", conv=conv)(z.float(), mel.float())
    assert out.shape == ref.shape == (2, 7 * cfg.hop_length) and out.dtype == torch.float32
    assert snr_db(ref, out) > 115  # float32 rounding (measured 130-137 dB)


def test_weight_norm_folded_or_not_and_model_untouched():
    model = build(BASE)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    z, mel = inputs(BASE, frames=5)
    a = prepare_inverse(model, torch.float32, "torch")(z.float(), mel.float())
    assert {k: v for k, v in model.state_dict().items()}.keys() == before.keys()  # parametrisations kept
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    folded = build(BASE).remove_weight_norm()
    b = prepare_inverse(folded, torch.float32, "torch")(z.float(), mel.float())
    assert snr_db(a, b) > 120


def test_output_dtype_follows_z_and_errors():
    model = build(BASE)
    z, mel = inputs(BASE, frames=5)
    fast = prepare_inverse(model, torch.float16, "torch")
    assert fast(z.half(), mel.half()).dtype == torch.float16
    assert fast(z.float(), mel.float()).dtype == torch.float32
    with pytest.raises(ValueError, match="fewer than"):
        fast(z, mel[..., :1])
    with pytest.raises(ValueError, match="z must be"):
        fast(z[:, :3], mel)
    with pytest.raises(ValueError, match="backend"):
        prepare_inverse(model, torch.float16, "cuda")
    with pytest.raises(ValueError, match="dtype"):
        prepare_inverse(model, torch.float64)
    assert resolve_backend("auto", torch.device("cpu"), torch.float16) == "torch"
    if not INTERPRET:
        with pytest.raises(RuntimeError, match="triton"):
            resolve_backend("triton", torch.device("cpu"), torch.float16)


@pytest.mark.parametrize("chunk", [9, 20, 70])
def test_chunked_equals_unchunked(chunk):
    """Windows with the exact receptive field as context give the unchunked output (same shapes for all
    windows, the end windows shifted inwards)."""
    model = build(BASE)
    z, mel = inputs(BASE, frames=16, batch=1)  # n = 64 columns; receptive field 4 * 7 = 28
    full = prepare_inverse(model, torch.float32, "torch")(z.float(), mel.float())
    fast = prepare_inverse(model, torch.float32, "torch", chunk=chunk)
    wins = fast.windows(z.shape[-1])
    assert len({b - a for a, b, _, _ in wins}) == 1  # one window shape
    kept = [c for _, _, k0, k1 in wins for c in range(k0, k1)]
    assert kept == list(range(z.shape[-1]))
    out = fast(z.float(), mel.float())
    assert (out - full).abs().max() < 1e-5
    short = prepare_inverse(model, torch.float32, "torch", chunk=chunk, context=2)(z.float(), mel.float())
    if len(wins) > 1:
        assert 20 < snr_db(full, short) < 200  # too little context: close, not equal


# Measured with TINY, ends std 0.1, speech-like / floor / loud mels (CPU, torch 2.14):
#   fp16 FastInverse vs float32 reference: 76.2-77.6 dB (eager model.half().inverse: 61.2-61.4 dB)
#   bf16 FastInverse: 58.3-59.5 dB (eager model.bfloat16().inverse: 42.3-42.4 dB)
SNR_MIN = {torch.float16: 65.0, torch.bfloat16: 50.0}


@pytest.fixture(scope="module")
def tiny_model():
    return build(TINY, ends_std=0.1, device=torch.device("cpu"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("kind", ["speech", "floor", "loud"])
def test_half_precision_snr_and_extreme_mels(tiny_model, dtype, kind):
    frames = 24
    mel = speech_like_mel(frames)
    if kind == "floor":
        mel = torch.full_like(mel, LOG_FLOOR)  # silence: every bin at the clamp floor
    elif kind == "loud":
        mel = torch.empty_like(mel).uniform_(2.0, 4.0, generator=torch.Generator().manual_seed(3))
    z = 0.6 * torch.randn(1, 8, frames * 32, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = tiny_model.inverse(z, mel)
    out = prepare_inverse(tiny_model, dtype, "torch")(z, mel)
    assert torch.isfinite(out).all()
    assert snr_db(ref, out) > SNR_MIN[dtype]


# ----------------------------------------------------------------------------------- triton (interpreter)
def test_interpreter_run():
    """Run the test_triton_* tests in a subprocess with TRITON_INTERPRET=1 (kernels on CPU tensors)."""
    if INTERPRET:
        pytest.skip("already inside the interpreter subprocess")
    if not triton_available():
        pytest.skip("triton is not installed: the Triton kernels cannot be checked")
    env = dict(os.environ, TRITON_INTERPRET="1", CUDA_VISIBLE_DEVICES="")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(Path(__file__)),
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "-k",
        "test_triton_",
    ]
    proc = subprocess.run(
        cmd,
        check=False,
        env=env,
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.split("\n")[-2], tail


def _tols(dtype):
    return {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 1e-5}[dtype]


def _close(a, b, dtype, what):
    err = (a.float() - b.float()).abs().max().item()
    scale = max(b.float().abs().max().item(), 1.0)
    assert err <= _tols(dtype) * scale, f"{what}: max error {err} (scale {scale})"


DTYPES = [torch.float16, torch.bfloat16, torch.float32]


@needs_triton
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16", "fp32"])
def test_triton_start_conv(dtype):
    from waveflow.kernels import triton_ops

    g = torch.Generator().manual_seed(0)
    B, C, n, G, half = 2, 20, 300, 8, 3
    x = torch.randn(B, G, n, generator=g).to(DEV)
    w, b = torch.randn(C, half, generator=g).to(DEV), torch.randn(C, generator=g).to(DEV)
    pad = torch.full((B, C, n + 12), float("nan"), dtype=dtype, device=DEV)
    outs = [pad.clone(), pad.clone()]
    reference.start_conv(x, 5, half, w, b, outs[0][..., 6 : 6 + n])
    triton_ops.start_conv(x, 5, half, w, b, outs[1][..., 6 : 6 + n])
    assert outs[1][..., :6].isnan().all() and outs[1][..., 6 + n :].isnan().all()  # margins untouched
    _close(outs[1][..., 6 : 6 + n], outs[0][..., 6 : 6 + n], dtype, "start_conv")


@needs_triton
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16", "fp32"])
def test_triton_gated_activation(dtype):
    from waveflow.kernels import triton_ops

    g = torch.Generator().manual_seed(1)
    B, C, n = 2, 12, 333
    inp = (4 * torch.randn(B, 2 * C, n, generator=g)).to(DEV, dtype)
    inp[0, :, :5] = 40.0  # saturating arguments: tanh, sigmoid -> exact limits, no NaN
    inp[1, :, :5] = -40.0
    cond = torch.randn(B, 6 * C, n, generator=g).to(DEV, dtype)
    bias = torch.randn(2 * C, generator=g).to(DEV)
    a = torch.full((B, C, n), float("nan"), dtype=dtype, device=DEV)
    b = a.clone()
    reference.gated_activation(inp, cond, 2 * C, bias, a)
    triton_ops.gated_activation(inp, cond, 2 * C, bias, b)
    assert torch.isfinite(b).all()
    _close(b, a, dtype, "gate")


@needs_triton
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16", "fp32"])
@pytest.mark.parametrize("has_res,first", [(True, True), (True, False), (False, False)])
def test_triton_res_skip(dtype, has_res, first):
    from waveflow.kernels import triton_ops

    g = torch.Generator().manual_seed(2)
    B, C, n = 2, 12, 301
    rs = torch.randn(B, (2 if has_res else 1) * C, n, generator=g).to(DEV, dtype)
    bias = torch.randn(rs.shape[1], generator=g).to(DEV)
    h_pad = torch.randn(B, C, n + 8, generator=g).to(DEV, dtype)  # h as a strided view, like conv="shift"
    skip = torch.randn(B, C, n, generator=g).to(DEV, dtype)
    h2, s2 = h_pad.clone(), skip.clone()
    reference.res_skip_accumulate(rs, bias, h_pad[..., 4 : 4 + n], skip, has_res, first)
    triton_ops.res_skip_accumulate(rs, bias, h2[..., 4 : 4 + n], s2, has_res, first)
    _close(h2, h_pad, dtype, "h")
    _close(s2, skip, dtype, "skip")


@needs_triton
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16", "fp32"])
@pytest.mark.parametrize("n_ch,additive", [(6, False), (8, True), (16, False)])
def test_triton_coupling_inverse(dtype, n_ch, additive):
    from waveflow.kernels import triton_ops

    g = torch.Generator().manual_seed(3)
    B, CW, n, G = 2, 40, 150, 16
    half = n_ch // 2
    skip = torch.randn(B, CW, n, generator=g).to(DEV, dtype)
    x = torch.randn(B, G, n, generator=g).to(DEV)
    w_shift = (0.2 * torch.randn(n_ch - half, CW, generator=g)).to(DEV, dtype)
    b_shift = torch.randn(n_ch - half, generator=g).to(DEV)
    w_logs = None if additive else (0.05 * torch.randn(n_ch - half, CW, generator=g)).to(DEV, dtype)
    b_logs = None if additive else (0.1 * torch.randn(n_ch - half, generator=g)).to(DEV)
    w_inv = torch.linalg.inv(torch.randn(n_ch, n_ch, generator=g, dtype=torch.float64) + 3 * torch.eye(n_ch))
    w_inv = w_inv.float().to(DEV)
    row0 = G - n_ch
    x2 = x.clone()
    reference.coupling_inverse(skip, x, row0, n_ch, w_shift, b_shift, w_logs, b_logs, w_inv)
    triton_ops.coupling_inverse(skip, x2, row0, n_ch, w_shift, b_shift, w_logs, b_logs, w_inv)
    # rows outside this step's channels are untouched; the rest match (fp32 state, fp32 accumulation)
    assert torch.equal(x2[:, :row0], x[:, :row0])
    err = (x2 - x).abs().max().item() / x.abs().max().item()
    assert err < (1e-5 if dtype == torch.float32 else 1e-4), err


@needs_triton
@pytest.mark.parametrize("name", ["early-outputs", "additive", "group16", "mel-shift"])
def test_triton_fast_inverse_matches_model(name):
    cfg = CONFIGS[name]
    model = build(cfg)
    z, mel = inputs(cfg, frames=6)
    ref = reference_inverse(model, z, mel)
    out = prepare_inverse(model, torch.float32, "triton")(z.float(), mel.float())
    assert snr_db(ref, out) > 115
    half_t = prepare_inverse(model, torch.float16, "triton", conv="shift")(z.float(), mel.float())
    half_r = prepare_inverse(model, torch.float16, "torch", conv="shift")(z.float(), mel.float())
    assert snr_db(half_r, half_t) > 60  # kernels vs twins, both fp16 (measured ~70-80 dB)
    assert snr_db(ref, half_t) > 60


@needs_triton
def test_triton_chunked():
    model = build(BASE)
    z, mel = inputs(BASE, frames=16, batch=1)
    full = prepare_inverse(model, torch.float32, "triton")(z.float(), mel.float())
    out = prepare_inverse(model, torch.float32, "triton", chunk=20)(z.float(), mel.float())
    assert (out - full).abs().max() < 1e-5


# ------------------------------------------------------------------------------------------------ GPU only
@gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_gpu_triton_vs_torch_backend(dtype):
    model = build(TINY, ends_std=0.1, device=torch.device("cuda"))
    z, mel = inputs(TINY, frames=40, batch=3, device=torch.device("cuda"))
    z, mel = z.float(), mel.float()
    ref = reference_inverse(model, z, mel)
    a = prepare_inverse(model, dtype, "torch")(z, mel)
    b = prepare_inverse(model, dtype, "triton")(z, mel)
    assert snr_db(ref, b) > SNR_MIN[dtype] - 10 and snr_db(a, b) > SNR_MIN[dtype] - 10


@gpu
@needs_cuda
@pytest.mark.parametrize("chunk", [None, 200])
def test_gpu_cuda_graphs_equal_eager(chunk):
    model = build(TINY, ends_std=0.1, device=torch.device("cuda"))
    z, mel = inputs(TINY, frames=40, batch=2, device=torch.device("cuda"))
    z, mel = z.float(), mel.float()
    eager = prepare_inverse(model, torch.float16, "triton", chunk=chunk)(z, mel)
    graphed = prepare_inverse(model, torch.float16, "triton", chunk=chunk, graphs=True)
    for _ in range(2):  # capture, then replay
        out = graphed(z, mel)
        assert torch.equal(out, eager)
    z2 = torch.randn_like(z)
    assert torch.equal(
        graphed(z2, mel), prepare_inverse(model, torch.float16, "triton", chunk=chunk)(z2, mel)
    )


@gpu
@needs_cuda
def test_gpu_compile_path():
    model = build(TINY, ends_std=0.1, device=torch.device("cuda"))
    z, mel = inputs(TINY, frames=20, batch=1, device=torch.device("cuda"))
    z, mel = z.float(), mel.float()
    a = prepare_inverse(model, torch.float16, "torch")(z, mel)
    b = prepare_inverse(model, torch.float16, "torch", compile=True)(z, mel)
    assert snr_db(a, b) > 50
