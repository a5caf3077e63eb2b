#!/usr/bin/env python
"""Benchmark the WaveGlow inverse: eager vs compiled vs FastInverse (torch twins, Triton, Triton + CUDA graphs).

All modes run side by side in one process on the same weights, latent and mel; warm-up excluded; the device
is synchronised before each clock read; the median of ``--repeat`` runs is reported as kHz of audio and
real-time factor at 22.05 kHz. Also prints the compute and memory floors of the config (FLOPs and bytes per
sample from the shapes) and, with ``--profile``, the top ops of one call (the per-op budget). Progress and
tables go to stderr, the JSON result to stdout (and to ``--json``).

GPU (the issue's measurement)::

    python scripts/bench_kernels.py --device cuda --dtype float16 --config default \\
        --seconds 10 --batch 1 8 --long-seconds 60 --chunk 16384 --profile --json bench_kernels.json

CPU smoke run (torch backends only)::

    python scripts/bench_kernels.py --device cpu --config tiny --seconds 0.5 --batch 1 --long-seconds 1 --chunk 256
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
import os
import sys
from pathlib import Path

# As `import waveflow` does when it loads torch: idle OpenMP threads sleep instead of spinning (on a busy
# 2-core machine spinning threads made inference 3-10x slower). OMP_WAIT_POLICY=ACTIVE measures spinning ones.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # after the OpenMP setting
from benchlib import (
    CONFIG_HELP,
    DTYPES,
    build_model,
    config_arg,
    emit,
    model_config,
    record,
    resolve_device,
    snr_db,
    snr_field,
    sync,
    time_calls,
)

from waveflow import WaveflowError, WaveGlow, load_model
from waveflow.kernels import bytes_per_sample, flops_per_sample, limits, prepare_inverse, triton_available
from waveflow.models import prepare_for_inference

RATE = 22050
END_STD = 0.05  # std of the random WN end convs: zero ones make every coupling the identity
GPU_MODES = [
    "eager-fp32",
    "eager-half",
    "compile-half",
    "fast-torch",
    "fast-triton",
    "fast-triton-shift",
    "fast-triton-graphs",
]
CPU_MODES = ["eager-fp32", "eager-half", "fast-torch", "fast-torch-shift"]
ALL_MODES = GPU_MODES + ["fast-torch-shift", "fast-torch-compile", "fast-triton-graphs-shift"]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", choices=list(DTYPES), default="float16", help="half dtype of the fast modes")
    p.add_argument("--config", type=config_arg, default="default", help=CONFIG_HELP)
    p.add_argument("--checkpoint", help="a checkpoint load_model accepts (overrides --config)")
    p.add_argument("--seconds", type=float, default=10.0, help="utterance length of the batch runs")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--long-seconds", type=float, default=60.0, help="long utterance (batch 1, chunked); 0 = skip")
    p.add_argument("--chunk", type=int, default=16384, help="columns (samples / n_group) per window, long run")
    p.add_argument("--context", type=int, default=None, help="context columns per side (default: exact)")
    p.add_argument("--modes", nargs="+", choices=ALL_MODES, default=None)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--peak-tflops", type=float, default=790.0, help="dense fp16 matrix peak for the floor")
    p.add_argument("--bandwidth-tbs", type=float, default=3.35, help="memory bandwidth (TB/s) for the floor")
    p.add_argument("--profile", action="store_true", help="torch.profiler on one call; print the top ops")
    p.add_argument("--profile-mode", default=None, help="mode to profile (default: fastest fast mode)")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    return p


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def choose_modes(args, device: torch.device) -> list[str]:
    """The asked-for modes (or the device's defaults), less those this device cannot run."""
    modes = args.modes or (GPU_MODES if device.type == "cuda" else CPU_MODES)
    if device.type != "cuda":
        dropped = [m for m in modes if "triton" in m or "compile" in m]
        if dropped:
            log(f"CPU: skipping {dropped} (Triton / compile modes are measured on the GPU)")
        return [m for m in modes if m not in dropped]
    return modes if triton_available() else [m for m in modes if "triton" not in m]


def load_bench_model(args, device: torch.device) -> WaveGlow:
    """``--checkpoint``, or ``--config`` with random weights; folded, frozen, float32 on ``device``."""
    if args.checkpoint:
        model = load_model(args.checkpoint)
    else:
        model = build_model(model_config(args.config)[0], seed=0, end_std=END_STD)
    return prepare_for_inference(model, device, torch.float32)


def make_modes(names, model, dtype, chunk, context):
    """name -> (callable(z, mel), input dtype). Each is built lazily so a failing mode only skips itself."""
    half = copy.deepcopy(model).to(dtype)  # plain `model.half()`: what eager half precision means

    def eager(m):
        def run(z, mel):
            with torch.inference_mode():
                return m.inverse(z, mel)

        return run

    def fast(**kw):
        return prepare_inverse(model, dtype, chunk=chunk, context=context, **kw)

    builders = {
        "eager-fp32": lambda: (eager(model), torch.float32),
        "eager-half": lambda: (eager(half), dtype),
        "compile-half": lambda: (_compiled_inverse(half), dtype),
        "fast-torch": lambda: (fast(backend="torch"), dtype),
        "fast-torch-shift": lambda: (fast(backend="torch", conv="shift"), dtype),
        "fast-torch-compile": lambda: (fast(backend="torch", compile=True), dtype),
        "fast-triton": lambda: (fast(backend="triton"), dtype),
        "fast-triton-shift": lambda: (fast(backend="triton", conv="shift"), dtype),
        "fast-triton-graphs": lambda: (fast(backend="triton", graphs=True), dtype),
        "fast-triton-graphs-shift": lambda: (fast(backend="triton", conv="shift", graphs=True), dtype),
    }
    return {n: builders[n] for n in names}


def _compiled_inverse(model):
    fn = torch.compile(model.inverse, dynamic=False)

    def run(z, mel):
        with torch.inference_mode():
            return fn(z, mel)

    return run


def make_inputs(cfg, batch: int, seconds: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent ``z`` (B, n_group, T / n_group) at sigma 0.6 and log-mels (B, n_mels, F), floored at ln(1e-5)."""
    frames = max(1, round(seconds * RATE / cfg.hop_length))
    T = frames * cfg.hop_length
    g = torch.Generator().manual_seed(1)
    z = 0.6 * torch.randn(batch, cfg.n_group, T // cfg.n_group, generator=g)
    mel = (torch.randn(batch, cfg.n_mels, frames, generator=g) - 5.0).clamp(min=math.log(1e-5))
    return z.to(device), mel.to(device)


def run_case(label, modes, model, args, device, dtype, batch, seconds, chunked) -> list[dict]:
    """Every mode on one input shape; SNR against eager fp32's output (the first mode when it is asked for)."""
    z, mel = make_inputs(model.config, batch, seconds, device)
    rows, ref = [], None
    chunk = args.chunk if chunked else None
    for name, build in make_modes(modes, model, dtype, chunk, args.context).items():
        try:
            fn, in_dtype = build()
            zi, meli = z.to(in_dtype), mel.to(in_dtype)
            timing = time_calls(functools.partial(fn, zi, meli), device, args.warmup, args.repeat)
        except Exception as exc:  # noqa: BLE001 - a mode that cannot run here (no Triton, OOM) is reported, not fatal
            rows.append({"case": label, "mode": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
            log(f"  {label:>22s} {name:>24s}  failed: {rows[-1]['error']}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        out = timing.output.float()
        if ref is None and name == "eager-fp32":
            ref = out
        samples = out.numel()
        rows.append({
            "case": label, "mode": name, "batch": batch, "seconds": out.shape[-1] / RATE, "samples": samples,
            "chunked": chunk is not None and name.startswith("fast"), "median_s": timing.median,
            "best_s": timing.best, "khz": samples / timing.median / 1e3, "rtf": samples / RATE / timing.median,
            "finite": bool(torch.isfinite(out).all()), "snr_vs_fp32_db": None if ref is None else snr_field(snr_db(ref, out)),
        })
        snr = rows[-1]["snr_vs_fp32_db"]
        log(f"  {label:>22s} {name:>24s}  {rows[-1]['khz']:10.1f} kHz  {rows[-1]['rtf']:9.1f}x RT"
            f"  SNR {snr if snr is None else round(snr, 1)}")
        del fn, out, timing
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def profile(mode, model, args, device, dtype, top) -> list[dict]:
    """torch.profiler on one batch-1 call of ``mode``: the ``top`` ops by self time (the per-op budget)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    z, mel = make_inputs(model.config, 1, args.seconds, device)
    fn, in_dtype = make_modes([mode], model, dtype, None, None)[mode]()
    z, mel = z.to(in_dtype), mel.to(in_dtype)
    for _ in range(args.warmup):
        fn(z, mel)
    sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with tprofile(activities=acts) as prof:
        fn(z, mel)
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=top)
    log(f"\n== profile: {mode}, batch 1, {z.shape[-1] * z.shape[1] / RATE:.2f} s, sorted by {key} ==\n{table}")
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)
    total = sum(getattr(e, key) for e in events) or 1.0
    return [
        {"op": e.key, "count": e.count, "self_ms": getattr(e, key) / 1e3, "share": getattr(e, key) / total}
        for e in events[:top]
    ]


def costs(model: WaveGlow, args, dtype: torch.dtype) -> tuple[dict, dict]:
    """FLOPs per sample and the compute/memory floors of the config; printed, and returned for the JSON."""
    cfg = model.config
    fl = flops_per_sample(cfg)
    lim = limits(cfg, args.peak_tflops, args.bandwidth_tbs, itemsize=torch.tensor([], dtype=dtype).element_size())
    log(f"cost: {fl['total'] / 1e6:.2f} MFLOP/sample (cond convs {100 * fl['cond'] / fl['total']:.0f} %), "
        f"{bytes_per_sample(cfg)['total'] / 1e3:.1f} kB/sample of activation traffic")
    log(f"floors at {args.peak_tflops:g} TFLOP/s and {args.bandwidth_tbs:g} TB/s: compute "
        f"{lim['mhz_compute_limit']:.1f} MHz, memory {lim['mhz_memory_limit']:.1f} MHz "
        f"-> {lim['mhz_limit']:.1f} MHz = {lim['rtf_limit_22k']:.0f}x real time at 22.05 kHz")
    return fl, lim


def measure(modes, model, args, device, dtype) -> list[dict]:
    """The batch runs of ``--seconds``, then the chunked ``--long-seconds`` run."""
    rows = []
    for b in args.batch:
        rows += run_case(f"{args.seconds:g}s batch {b}", modes, model, args, device, dtype, b, args.seconds, False)
    if args.long_seconds > 0:
        label = f"{args.long_seconds:g}s batch 1 chunked"
        rows += run_case(label, modes, model, args, device, dtype, 1, args.long_seconds, True)
    return rows


def log_summary(rows: list[dict]) -> None:
    log("\n" + "\n".join(f"{r['case']:>22s} {r['mode']:>24s} "
                         + (f"{r['khz']:10.1f} kHz {r['rtf']:9.1f}x RT" if "khz" in r else r["error"][:60])
                         for r in rows))


def _triton_version():
    if not triton_available():
        return None
    import triton

    return triton.__version__


def main(argv=None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    dtype = DTYPES[args.dtype]
    modes = choose_modes(args, device)
    try:
        model = load_bench_model(args, device)
    except WaveflowError as e:  # a missing or unreadable checkpoint
        log(f"error: {e}")
        return 1
    log(f"device {device}, dtype {args.dtype}, config {args.checkpoint or args.config}")
    fl, lim = costs(model, args, dtype)
    rows = measure(modes, model, args, device, dtype)
    budget = None
    if args.profile:
        fast_rows = [r for r in rows if "khz" in r and r["mode"].startswith("fast")]
        mode = args.profile_mode or (max(fast_rows, key=lambda r: r["khz"])["mode"] if fast_rows else modes[0])
        budget = profile(mode, model, args, device, dtype, args.top)
    for r in rows:
        if "khz" in r:
            r["pct_of_compute_limit"] = 100 * r["khz"] / 1e3 / lim["mhz_compute_limit"]
    log_summary(rows)
    result = record("inverse", config=args.checkpoint or args.config, device=device, dtype=args.dtype,
                    triton=_triton_version(), cuda=torch.version.cuda, flops_per_sample=fl, limits=lim,
                    chunk=args.chunk, context=args.context, warmup=args.warmup, repeat=args.repeat,
                    results=rows, profile=budget)
    emit(result, args.json, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
