#!/usr/bin/env python
"""Benchmark the WaveGlow inverse: eager vs compiled vs FastInverse (torch twins, Triton, Triton + CUDA graphs).

All modes run side by side in one process on the same weights, latent and mel; warm-up excluded; the device
is synchronised before each clock read; the median of ``--repeat`` runs is reported as kHz of audio and
real-time factor at 22.05 kHz. Also prints the compute and memory floors of the config (FLOPs and bytes per
sample from the shapes) and, with ``--profile``, the top ops of one call (the per-op budget).

GPU (the issue's measurement)::

    python scripts/bench_kernels.py --device cuda --dtype float16 --config default \\
        --seconds 10 --batch 1 8 --long-seconds 60 --chunk 16384 --profile --json bench_kernels.json

CPU smoke run (torch backends only)::

    python scripts/bench_kernels.py --device cpu --config tiny --seconds 0.5 --batch 1 --long-seconds 1 --chunk 256
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from waveflow import WaveGlow, WaveGlowConfig, load_model
from waveflow.kernels import limits, prepare_inverse, snr_db, triton_available
from waveflow.kernels.numerics import bytes_per_sample, flops_per_sample

RATE = 22050
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CONFIGS = {
    "default": WaveGlowConfig(),
    "tiny": WaveGlowConfig(
        n_mels=80,
        n_flows=4,
        n_group=8,
        n_early_every=2,
        n_early_size=2,
        n_layers=3,
        n_channels=16,
        hop_length=256,
    ),
}
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
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=list(DTYPES), default="float16", help="half dtype of the fast modes")
    p.add_argument("--config", choices=list(CONFIGS), default="default")
    p.add_argument("--checkpoint", help="a checkpoint load_model accepts (overrides --config)")
    p.add_argument("--seconds", type=float, default=10.0, help="utterance length of the batch runs")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument(
        "--long-seconds", type=float, default=60.0, help="long utterance (batch 1, chunked); 0 = skip"
    )
    p.add_argument(
        "--chunk", type=int, default=16384, help="columns (samples / n_group) per window, long run"
    )
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


def build_model(args, device: torch.device) -> WaveGlow:
    if args.checkpoint:
        model = load_model(args.checkpoint)
    else:
        torch.manual_seed(0)
        model = WaveGlow(CONFIGS[args.config])
        with torch.no_grad():  # non-zero end convs: zero ones make every coupling the identity
            g = torch.Generator().manual_seed(0)
            for step in model.flows:
                for p in (step.coupling.wn.end.weight, step.coupling.wn.end.bias):
                    p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model.remove_weight_norm().eval().requires_grad_(False).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_modes(names, model, dtype, device, chunk, context):
    """name -> (callable(z, mel), input dtype). Each is built lazily so a failing mode only skips itself."""
    half = copy.deepcopy(model).to(dtype)

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


def time_mode(fn, z, mel, device, warmup: int, repeat: int):
    for _ in range(warmup):
        out = fn(z, mel)
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(z, mel)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), out


def run_case(label, modes, model, args, device, dtype, batch, seconds, chunked):
    cfg = model.config
    frames = max(1, round(seconds * RATE / cfg.hop_length))
    T = frames * cfg.hop_length
    g = torch.Generator().manual_seed(1)
    z = 0.6 * torch.randn(batch, cfg.n_group, T // cfg.n_group, generator=g)
    mel = (torch.randn(batch, cfg.n_mels, frames, generator=g) - 5.0).clamp(min=math.log(1e-5))
    z, mel = z.to(device), mel.to(device)
    rows, ref = [], None
    chunk = args.chunk if chunked else None
    for name, build in make_modes(modes, model, dtype, device, chunk, args.context).items():
        try:
            fn, in_dtype = build()
            med, best, out = time_mode(fn, z.to(in_dtype), mel.to(in_dtype), device, args.warmup, args.repeat)
        except Exception as exc:  # noqa: BLE001 - a mode that cannot run here (no Triton, OOM) is reported, not fatal
            rows.append({"case": label, "mode": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
            print(f"  {label:>22s} {name:>24s}  failed: {rows[-1]['error']}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        out = out.float()
        if ref is None and name == "eager-fp32":
            ref = out
        samples = batch * T
        row = {
            "case": label,
            "mode": name,
            "batch": batch,
            "seconds": T / RATE,
            "samples": samples,
            "chunked": chunk is not None and name.startswith("fast"),
            "median_s": med,
            "best_s": best,
            "khz": samples / med / 1e3,
            "rtf": samples / RATE / med,
            "finite": bool(torch.isfinite(out).all()),
            "snr_vs_fp32_db": None if ref is None else snr_db(ref, out),
        }
        rows.append(row)
        print(
            f"  {label:>22s} {name:>24s}  {row['khz']:10.1f} kHz  {row['rtf']:9.1f}x RT"
            f"  SNR {row['snr_vs_fp32_db'] if row['snr_vs_fp32_db'] is None else round(row['snr_vs_fp32_db'], 1)}",
            flush=True,
        )
        del fn, out
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def profile(mode, model, args, device, dtype, top):
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    cfg = model.config
    frames = round(args.seconds * RATE / cfg.hop_length)
    T = frames * cfg.hop_length
    z = 0.6 * torch.randn(1, cfg.n_group, T // cfg.n_group, device=device)
    mel = torch.randn(1, cfg.n_mels, frames, device=device) - 5.0
    fn, in_dtype = make_modes([mode], model, dtype, device, None, None)[mode]()
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
    print(f"\n== profile: {mode}, batch 1, {T / RATE:.2f} s, sorted by {key} ==\n{table}")
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)
    total = sum(getattr(e, key) for e in events) or 1.0
    return [
        {"op": e.key, "count": e.count, "self_ms": getattr(e, key) / 1e3, "share": getattr(e, key) / total}
        for e in events[:top]
    ]


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    default_modes = GPU_MODES if device.type == "cuda" else CPU_MODES
    modes = args.modes or default_modes
    if device.type != "cuda":
        dropped = [m for m in modes if "triton" in m or "compile" in m]
        modes = [m for m in modes if m not in dropped]
        if dropped:
            print(f"CPU: skipping {dropped} (Triton / compile modes are measured on the GPU)")
    elif not triton_available():
        modes = [m for m in modes if "triton" not in m]
    model = build_model(args, device)
    cfg = model.config
    fl = flops_per_sample(cfg)
    lim = limits(
        cfg, args.peak_tflops, args.bandwidth_tbs, itemsize=torch.tensor([], dtype=dtype).element_size()
    )
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor()})"
        f", dtype {args.dtype}, config {args.checkpoint or args.config}"
    )
    print(
        f"cost: {fl['total'] / 1e6:.2f} MFLOP/sample (cond convs {100 * fl['cond'] / fl['total']:.0f} %), "
        f"{bytes_per_sample(cfg)['total'] / 1e3:.1f} kB/sample of activation traffic"
    )
    print(
        f"floors at {args.peak_tflops:g} TFLOP/s and {args.bandwidth_tbs:g} TB/s: compute "
        f"{lim['mhz_compute_limit']:.1f} MHz, memory {lim['mhz_memory_limit']:.1f} MHz "
        f"-> {lim['mhz_limit']:.1f} MHz = {lim['rtf_limit_22k']:.0f}x real time at 22.05 kHz"
    )
    rows = []
    for b in args.batch:
        rows += run_case(
            f"{args.seconds:g}s batch {b}", modes, model, args, device, dtype, b, args.seconds, False
        )
    if args.long_seconds > 0:
        rows += run_case(
            f"{args.long_seconds:g}s batch 1 chunked",
            modes,
            model,
            args,
            device,
            dtype,
            1,
            args.long_seconds,
            True,
        )
    budget = None
    if args.profile:
        fast_rows = [r for r in rows if "khz" in r and r["mode"].startswith("fast")]
        mode = args.profile_mode or (
            max(fast_rows, key=lambda r: r["khz"])["mode"] if fast_rows else modes[0]
        )
        budget = profile(mode, model, args, device, dtype, args.top)
    for r in rows:
        if "khz" in r:
            r["pct_of_compute_limit"] = 100 * r["khz"] / 1e3 / lim["mhz_compute_limit"]
    result = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({platform.processor()})",
        "dtype": args.dtype,
        "config": args.checkpoint or args.config,
        "torch": torch.__version__,
        "triton": _triton_version(),
        "cuda": torch.version.cuda,
        "flops_per_sample": fl,
        "limits": lim,
        "chunk": args.chunk,
        "context": args.context,
        "warmup": args.warmup,
        "repeat": args.repeat,
        "results": rows,
        "profile": budget,
    }
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
        print(f"wrote {args.json}")
    print(
        "\n"
        + "\n".join(
            f"{r['case']:>22s} {r['mode']:>24s} "
            + (f"{r['khz']:10.1f} kHz {r['rtf']:9.1f}x RT" if "khz" in r else r["error"][:60])
            for r in rows
        )
    )
    return 0


def _triton_version():
    if not triton_available():
        return None
    import triton

    return triton.__version__


if __name__ == "__main__":
    sys.exit(main())
