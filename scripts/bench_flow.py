#!/usr/bin/env python
"""Throughput of the WaveGlow flow: training direction (forward) and inference (inverse), in kHz of audio.

Prints one JSON object per measurement on stdout (progress goes to stderr), e.g.::

    {"figure": "inverse", "config": "default", "device": "cpu", "device_name": "AMD EPYC ...", "dtype": "float32",
     "torch": "2.4.1", "waveflow": "0.1.0", "batch": 1, "seconds": 1.0, "khz": 9.8, "realtime_factor": 2.25, ...}

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
import math
import os
import sys

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
    time_calls,
)

from waveflow import WaveGlow

SAMPLE_RATE = 22050
END_STD = 0.01  # std of the random WN end convs (non-zero: a trained model's couplings are not the identity)
# Defaults by device: CPU runs are short enough to finish in about a minute on 2 cores.
DEVICE_DEFAULTS = {
    "cpu": {"seconds": 1.0, "repeats": 2, "warmup": 1},
    "cuda": {"seconds": 4.0, "repeats": 10, "warmup": 3},
}


def config_list(value: str) -> list[str]:
    """argparse ``type=`` for a comma-separated list of configs."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no config given")
    return [config_arg(n) for n in names]


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
    p.add_argument("--config", type=config_list, default="default,small", help=f"comma-separated: {CONFIG_HELP}")
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Arguments with the device's defaults filled in; errors exit through the parser."""
    parser = get_parser()
    args = parser.parse_args(argv)
    try:
        args.device = resolve_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    for key, value in DEVICE_DEFAULTS.get(args.device.type, DEVICE_DEFAULTS["cpu"]).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.seconds <= 0 or args.batch < 1 or args.repeats < 1 or args.warmup < 0 or not math.isfinite(args.seconds):
        parser.error("--seconds must be > 0, --batch and --repeats >= 1, --warmup >= 0")
    return args


def make_inputs(cfg, args) -> tuple[torch.Tensor, torch.Tensor]:
    """Random audio (B, T) in [-0.8, 0.8] and log-mels (B, n_mels, F) on the device, T = F * hop."""
    frames = max(1, round(args.seconds * SAMPLE_RATE / cfg.hop_length))
    gen = torch.Generator().manual_seed(args.seed)
    audio = torch.rand(args.batch, frames * cfg.hop_length, generator=gen) * 1.6 - 0.8
    mel = torch.randn(args.batch, cfg.n_mels, frames, generator=gen) - 5.0
    dtype = DTYPES[args.dtype]
    return audio.to(args.device, dtype), mel.to(args.device, dtype)


def _forward(model: WaveGlow, audio, mel):
    with torch.no_grad():
        return model(audio, mel)


def _train_step(model: WaveGlow, audio, mel):
    model.zero_grad(set_to_none=True)
    model.nll(audio, mel).nll.backward()


def measure(figure: str, fn, args, common: dict) -> dict:
    """One figure's record: wall time, kHz and real-time factors, or the error that stopped it."""
    print(f"bench: {common['config']} {figure} ...", file=sys.stderr, flush=True)
    row = record(figure, **common)
    try:
        wall = time_calls(fn, args.device, args.warmup, args.repeats).median
    except (RuntimeError, NotImplementedError) as e:  # e.g. a dtype the device has no kernels for
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        return row
    audio_seconds = row["batch"] * row["seconds"]
    row.update(
        wall_s=round(wall, 6),
        khz=round(row["batch"] * row["samples"] / wall / 1000, 3),
        realtime_factor=round(wall / audio_seconds, 4),
        x_realtime=round(audio_seconds / wall, 3),
    )
    return row


def bench_config(name: str, args) -> list[dict]:
    """Every asked-for figure of one config, in order: forward, forward+backward, inverse."""
    cfg, _ = model_config(name)
    audio, mel = make_inputs(cfg, args)
    model = build_model(cfg, seed=args.seed, end_std=END_STD).to(args.device, DTYPES[args.dtype])
    samples = audio.shape[-1]
    common = {"config": name, "device": args.device, "dtype": args.dtype, "params": model.num_parameters(),
              "batch": args.batch, "seconds": round(samples / SAMPLE_RATE, 4), "samples": samples,
              "repeats": args.repeats, "warmup": args.warmup}
    if args.device.type == "cpu" and hasattr(os, "getloadavg"):
        common["load_avg_1m"] = round(os.getloadavg()[0], 2)  # CPU figures are only comparable on an idle machine
    results = []
    if not args.no_forward:
        results.append(measure("forward", lambda: _forward(model, audio, mel), args, common))
    if args.backward:
        results.append(measure("forward+backward", lambda: _train_step(model, audio, mel), args, common))
    if not args.no_inverse:
        model.remove_weight_norm().eval()  # the inference form
        noise = torch.Generator(device=args.device if args.device.type == "cuda" else "cpu").manual_seed(args.seed)

        @torch.inference_mode()
        def inverse():
            return model.infer(mel, sigma=0.6, generator=noise)

        results.append(measure("inverse", inverse, args, common))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.config:  # argparse runs config_list on the default string too
        for row in bench_config(name, args):
            emit(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
