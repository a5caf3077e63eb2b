#!/usr/bin/env python
"""Throughput of the WaveGlow flow: training direction (forward) and inference (inverse), in kHz of audio.

Prints one JSON object per measurement on stdout (progress goes to stderr), e.g.::

    {"figure": "inverse", "config": "default", "device": "cpu", "device_name": "AMD EPYC ...", "dtype": "float32",
     "torch": "2.4.1", "batch": 1, "seconds": 1.0, "khz": 9.8, "realtime_factor": 2.25, "x_realtime": 0.44, ...}

Figures:
  forward           audio -> (z, logdet) under no_grad, weight norm applied (the training form of the model)
  forward+backward  one training step's work: nll(audio, mel).backward()            (with --backward)
  inverse           infer(mel, sigma=0.6): mel -> audio under inference_mode, weight norm folded

Speed fields: khz = audio samples produced or consumed per second / 1000 (batch included);
realtime_factor = wall time / audio time (waveflow's convention: < 1 is faster than real time);
x_realtime = audio time / wall time (> 1 is faster than real time). Warm-up iterations are excluded and
CUDA is synchronised before every clock read. Timings are the median over --repeats.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from bench_configs import NAMES, model_config

from waveflow import WaveGlow, WaveGlowConfig

SAMPLE_RATE = 22050
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Defaults by device: CPU runs are short enough to finish in about a minute on 2 cores.
DEVICE_DEFAULTS = {
    "cpu": {"seconds": 1.0, "repeats": 2, "warmup": 1},
    "cuda": {"seconds": 4.0, "repeats": 10, "warmup": 3},
}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench_flow.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  python scripts/bench_flow.py                                   # CPU, both configs, 1 s utterance\n"
        "  python scripts/bench_flow.py --device cuda --dtype float16 --batch 8 --seconds 4\n"
        "  python scripts/bench_flow.py --config small --backward --repeats 5 > bench.jsonl\n",
    )
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="model and audio precision")
    p.add_argument("--config", default="default,small", help=f"comma-separated configs: {', '.join(NAMES)} (small/tiny: configs/waveglow-*.yaml)")
    p.add_argument("--seconds", type=float, help="utterance length in seconds (default: 1 on CPU, 4 on CUDA)")
    p.add_argument("--batch", type=int, default=1, help="utterances per call")
    p.add_argument("--repeats", type=int, help="timed iterations per figure (default: 2 on CPU, 10 on CUDA)")
    p.add_argument("--warmup", type=int, help="untimed iterations first (default: 1 on CPU, 3 on CUDA)")
    p.add_argument("--backward", action="store_true", help="also time forward+backward (a training step's work)")
    p.add_argument("--no-forward", action="store_true", help="skip the forward figure")
    p.add_argument("--no-inverse", action="store_true", help="skip the inverse figure")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, audio and mels")
    return p


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(cfg: WaveGlowConfig, device: torch.device, dtype: torch.dtype, seed: int) -> WaveGlow:
    torch.manual_seed(seed)
    model = WaveGlow(cfg)
    with torch.no_grad():  # non-zero end convs: a trained model's couplings are not the identity
        for name, p in model.named_parameters():
            if ".end." in name:
                p.normal_(0.0, 0.01)
    return model.to(device=device, dtype=dtype)


def bench_config(name: str, args, device: torch.device, dtype: torch.dtype) -> list[dict]:
    cfg, _ = model_config(name)
    frames = max(1, round(args.seconds * SAMPLE_RATE / cfg.hop_length))
    samples = frames * cfg.hop_length
    gen = torch.Generator().manual_seed(args.seed)
    audio = (torch.rand(args.batch, samples, generator=gen) * 1.6 - 0.8).to(device=device, dtype=dtype)
    mel = (torch.randn(args.batch, cfg.n_mels, frames, generator=gen) - 5.0).to(device=device, dtype=dtype)
    model = build(cfg, device, dtype, args.seed)
    common = {
        "config": name,
        "params": model.num_parameters(),
        "device": str(device),
        "device_name": device_name(device),
        "dtype": args.dtype,
        "torch": str(torch.__version__),
        "batch": args.batch,
        "seconds": round(samples / SAMPLE_RATE, 4),
        "samples": samples,
        "repeats": args.repeats,
        "warmup": args.warmup,
    }
    if device.type == "cpu" and hasattr(os, "getloadavg"):
        common["load_avg_1m"] = round(os.getloadavg()[0], 2)  # CPU figures are only comparable on an idle machine
    figures = []
    if not args.no_forward:
        figures.append(("forward", lambda: _forward(model, audio, mel)))
    if args.backward:
        figures.append(("forward+backward", lambda: _train_step(model, audio, mel)))
    results = []
    for figure, fn in figures:
        results.append(_measure(figure, fn, device, args, common))
    if not args.no_inverse:
        model.remove_weight_norm().eval()  # the inference form
        gen_device = device if device.type == "cuda" else "cpu"
        noise = torch.Generator(device=gen_device).manual_seed(args.seed)

        @torch.inference_mode()
        def inverse():
            return model.infer(mel, sigma=0.6, generator=noise)

        results.append(_measure("inverse", inverse, device, args, common))
    return results


def _forward(model: WaveGlow, audio, mel):
    with torch.no_grad():
        return model(audio, mel)


def _train_step(model: WaveGlow, audio, mel):
    model.zero_grad(set_to_none=True)
    model.nll(audio, mel).nll.backward()


def _measure(figure: str, fn, device, args, common: dict) -> dict:
    print(f"bench: {common['config']} {figure} ...", file=sys.stderr, flush=True)
    row = {"figure": figure, **common}
    try:
        wall = timed(fn, device, args.warmup, args.repeats)
    except (RuntimeError, NotImplementedError) as e:  # e.g. a dtype the device has no kernels for
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        return row
    audio_seconds = common["batch"] * common["seconds"]
    row.update(
        wall_s=round(wall, 6),
        khz=round(common["batch"] * common["samples"] / wall / 1000, 3),
        realtime_factor=round(wall / audio_seconds, 4),
        x_realtime=round(audio_seconds / wall, 3),
    )
    return row


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 1
    defaults = DEVICE_DEFAULTS.get(device.type, DEVICE_DEFAULTS["cpu"])
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.config.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        print(f"error: unknown config {unknown or names}; choose from {', '.join(NAMES)}", file=sys.stderr)
        return 2
    if args.seconds <= 0 or args.batch < 1 or args.repeats < 1 or args.warmup < 0 or not math.isfinite(args.seconds):
        print("error: --seconds must be > 0, --batch and --repeats >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    dtype = DTYPES[args.dtype]
    for name in names:
        for row in bench_config(name, args, device, dtype):
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
