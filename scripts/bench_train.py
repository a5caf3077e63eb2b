#!/usr/bin/env python
"""Training throughput and peak memory of one config on one device: JSON on stdout.

    python scripts/bench_train.py --config tiny --device cpu --batch 4
    python scripts/bench_train.py --config configs/waveglow-256.yaml --device cuda --precision fp16 --batch 12

Times full training steps (mel on the device, forward, backward, Adam, as in the trainer) on random audio of
``data.segment_length`` samples after a few warm-up steps. ``samples_per_s`` counts audio samples (the unit
NVIDIA and the trainer's ``other/samples_per_s`` use); peak memory is the CUDA allocator's peak on GPUs and
the process's peak resident memory on CPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys

# As `import waveflow` does when it loads torch: idle OpenMP threads sleep instead of spinning (on a busy
# 2-core machine spinning threads made inference 3-10x slower). OMP_WAIT_POLICY=ACTIVE measures spinning ones.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # after the OpenMP setting
from benchlib import emit, record, resolve_device, sync, time_calls

from waveflow.config import ConfigError
from waveflow.models import build_model
from waveflow.train.build import FlowObjective
from waveflow.train.config import RunConfig, load_run_config

# Autocast dtype of each --precision, by the names of the record's dtype field.
PRECISIONS = {"no": "float32", "fp16": "float16", "bf16": "bfloat16"}
RUN_CONFIG_HELP = "a bundled run config (tiny, small, 256; default = 256, NVIDIA's shape) or a YAML file's path"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help=RUN_CONFIG_HELP)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", choices=tuple(PRECISIONS), default="no", help="autocast precision")
    p.add_argument("--batch", type=int, help="clips per step (default: the config's train.batch_size)")
    p.add_argument("--segment", type=int, help="samples per clip (default: the config's data.segment_length)")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    return p


def load_config(args, parser: argparse.ArgumentParser) -> RunConfig:
    """The run config by name or path (``default`` is NVIDIA's, ``256``) with the overrides applied; a bad
    one exits through the parser, naming the key."""
    try:
        return load_run_config("256" if args.config == "default" else args.config, args.overrides)
    except ConfigError as e:
        parser.error(str(e))


def make_step(cfg: RunConfig, args, device: torch.device, batch: int, segment: int):
    """``(step() -> nll, parameter count)``: one trainer-like step on a fixed random batch."""
    torch.manual_seed(0)
    objective = FlowObjective(build_model(cfg.model), cfg.mel, cfg.train.sigma).to(device)
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

    return step, sum(p.numel() for p in objective.parameters())


def peak_memory(device: torch.device) -> tuple[int, str]:
    """``(bytes, what they measure)``: the CUDA allocator's peak, or the process's peak resident memory."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process_max_rss"


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args, parser)
    batch = args.batch or cfg.train.batch_size
    segment = args.segment or cfg.data.segment_length
    step, parameters = make_step(cfg, args, device, batch, segment)
    for _ in range(args.warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timing = time_calls(step, device, 0, args.steps)
    peak, peak_kind = peak_memory(device)
    seconds = timing.total
    emit(record("train_step", config=args.config, device=device, dtype=PRECISIONS[args.precision],
                overrides=args.overrides, threads=torch.get_num_threads(), precision=args.precision,
                batch=batch, segment_length=segment, parameters=parameters, steps=args.steps,
                seconds_per_step=seconds / args.steps, samples_per_s=batch * segment * args.steps / seconds,
                clips_per_s=batch * args.steps / seconds, peak_memory_bytes=peak, peak_memory_kind=peak_kind,
                final_nll=timing.output), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
