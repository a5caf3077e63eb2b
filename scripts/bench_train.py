#!/usr/bin/env python
"""Training throughput and peak memory of one config on one device: JSON on stdout.

    python scripts/bench_train.py --config configs/waveglow-tiny.yaml --device cpu --batch 4
    python scripts/bench_train.py --config configs/waveglow-256.yaml --device cuda --precision fp16 --batch 12

Times full training steps (mel on the device, forward, backward, Adam, as in the trainer) on random audio of
``data.segment_length`` samples after a few warm-up steps. ``samples_per_s`` counts audio samples (the unit
NVIDIA and the trainer's ``other/samples_per_s`` use); peak memory is the CUDA allocator's peak on GPUs and
the process's peak resident memory on CPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import sys
import time

import torch

from waveflow.models import WaveGlow
from waveflow.train import FlowObjective, load_run_config


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="run config (YAML)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=("no", "fp16", "bf16"), default="no", help="autocast precision")
    p.add_argument("--batch", type=int, help="clips per step (default: the config's train.batch_size)")
    p.add_argument("--segment", type=int, help="samples per clip (default: the config's data.segment_length)")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_run_config(args.config, args.overrides)
    device = torch.device(args.device)
    batch = args.batch or cfg.train.batch_size
    segment = args.segment or cfg.data.segment_length
    torch.manual_seed(0)
    objective = FlowObjective(WaveGlow(cfg.model), cfg.mel, cfg.train.sigma).to(device)
    optimizer = torch.optim.Adam(objective.parameters(), lr=cfg.train.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "fp16")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.precision)
    audio = (0.1 * torch.randn(batch, segment, device=device)).clamp(-1, 1)

    def step() -> float:
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            out = objective(audio)
        scaler.scale(out.nll).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return float(out.nll.detach())

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    losses = [step() for _ in range(args.steps)]
    sync()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated(device), "cuda_max_memory_allocated"
    else:
        peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process_max_rss"
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "precision": args.precision,
        "batch": batch,
        "segment_length": segment,
        "parameters": sum(p.numel() for p in objective.parameters()),
        "steps": args.steps,
        "seconds_per_step": seconds / args.steps,
        "samples_per_s": batch * segment * args.steps / seconds,
        "clips_per_s": batch * args.steps / seconds,
        "peak_memory_bytes": int(peak),
        "peak_memory_kind": peak_kind,
        "final_nll": losses[-1],
        "torch": torch.__version__,
    }
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
