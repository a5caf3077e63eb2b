#!/usr/bin/env python
"""Inference speed of a WaveGlow: kHz of audio made per second and real-time factor, several modes side by side.

Every mode vocodes the same batch of mels with the same seed; warm-up runs are excluded and the device is
synchronised before each clock reading. Each mode is reported with its speed-up over eager float32 and its
SNR against eager float32's audio (same latent), so a faster mode that breaks the audio shows it.

    python scripts/bench_infer.py --config default --seconds 10 --json bench.json
    python scripts/bench_infer.py --checkpoint voices/ljspeech.pt --device cuda --batch-size 4
    python scripts/bench_infer.py --config tiny --modes eager-float32,eager-bfloat16,chunked-float32

Adding a mode (e.g. fused GPU kernels): decorate a factory with ``@register_mode("name")``. A factory gets
``(model, mel_config, args)`` and returns ``run(mels) -> list of audio tensors`` (or ``None`` with a printed
reason when the mode cannot run here); see :func:`eager` for the shape of one. Modes can also live in another
module loaded with ``--plugin package.module``, which registers them with ``__main__.register_mode``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from bench_configs import NAMES, model_config

from waveflow import MelConfig, WaveGlow
from waveflow.checkpoints import load_checkpoint
from waveflow.config import to_dict
from waveflow.inference import Vocoder, pick_device

MODES: dict[str, Callable] = {}
Run = Callable[[list[torch.Tensor]], list[torch.Tensor]]


def register_mode(name: str):
    """Decorator adding a benchmark mode ``factory(model, mel_config, args) -> run | None``."""

    def wrap(factory):
        MODES[name] = factory
        return factory

    return wrap


def _vocoder_mode(dtype: str, chunked: bool = False, fused: bool = False):
    """The Vocoder in ``dtype``: eager (``kernels="off"``), in chunks of ``--chunk-frames``, or on the fused-kernel
    path (waveflow.kernels: Triton on CUDA, the torch twins elsewhere)."""

    def factory(model: WaveGlow, mel_config: MelConfig, args) -> Run | None:
        kernels = ("triton" if torch.device(args.device).type == "cuda" else "torch") if fused else "off"
        try:
            vocoder = Vocoder(model, mel_config=mel_config, device=args.device, dtype=dtype, seed=args.seed,
                              chunk_frames=args.chunk_frames if chunked else 10**9, kernels=kernels)
        except (ImportError, ValueError) as e:  # the dtype or the kernels cannot run on this device
            print(f"skipped: {e}", file=sys.stderr)
            return None
        return lambda mels: vocoder.vocode(mels)

    return factory


for _dt in ("float32", "bfloat16", "float16"):
    register_mode(f"eager-{_dt}")(_vocoder_mode(_dt))
    register_mode(f"chunked-{_dt}")(_vocoder_mode(_dt, chunked=True))
    register_mode(f"kernels-{_dt}")(_vocoder_mode(_dt, fused=True))
eager = MODES["eager-float32"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def build_model(args) -> tuple[WaveGlow, MelConfig, dict]:
    """Model from ``--checkpoint`` or a named config (random weights: speed does not depend on them)."""
    if args.checkpoint:
        ck = load_checkpoint(args.checkpoint, weight_norm=False)
        return ck.model, ck.mel_config, {"checkpoint": str(args.checkpoint), "model": to_dict(ck.model.config)}
    model_cfg, source = model_config(args.config)
    torch.manual_seed(args.seed)
    model = WaveGlow(model_cfg)
    with torch.no_grad():  # non-zero end convs, so the couplings (and the SNR column) are not trivial
        for name, param in model.named_parameters():
            if ".wn.end." in name:
                param.normal_(0.0, 0.02)
    return model, MelConfig(hop_length=model_cfg.hop_length, n_mels=model_cfg.n_mels), {
        "config": args.config, "source": source, "model": to_dict(model_cfg)}


def time_mode(run: Run, mels: list[torch.Tensor], device: torch.device, warmup: int, repeats: int):
    for _ in range(warmup):
        run(mels)
    synchronize(device)
    times, audio = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        audio = run(mels)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, audio


def snr_db(reference: list[torch.Tensor], other: list[torch.Tensor]) -> float:
    ref = torch.cat([a.float().cpu() for a in reference])
    err = torch.cat([a.float().cpu() for a in other]) - ref
    return float("inf") if float(err.pow(2).sum()) == 0 else 10 * math.log10(float(ref.pow(2).sum() / err.pow(2).sum()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", type=Path, help="model file (overrides --config)")
    p.add_argument("--config", choices=NAMES, default="default", help="model shape when no checkpoint (small/tiny: configs/waveglow-*.yaml)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="bfloat16",
                   help="the reduced precision compared with eager float32")
    p.add_argument("--modes", help="comma-separated modes (default: eager-float32, eager-DTYPE, chunked-float32)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0, help="utterance length (use less for big models on CPU)")
    p.add_argument("--chunk-frames", type=int, default=256, help="chunk size of the chunked modes")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--plugin", action="append", default=[], help="module that registers more modes")
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)
    for plugin in args.plugin:
        importlib.import_module(plugin)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = pick_device(args.device)
    modes = args.modes.split(",") if args.modes else ["eager-float32", f"eager-{args.dtype}", "chunked-float32"]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        p.error(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}")
    if modes[0] != "eager-float32":
        modes.insert(0, "eager-float32")  # the baseline every ratio refers to

    model, mel_config, described = build_model(args)
    frames = max(1, round(args.seconds * mel_config.sample_rate / mel_config.hop_length))
    gen = torch.Generator().manual_seed(args.seed)
    mels = [torch.randn(mel_config.n_mels, frames, generator=gen) * 2.0 - 6.0 for _ in range(args.batch_size)]
    audio_seconds = args.batch_size * frames * mel_config.hop_length / mel_config.sample_rate

    results, baseline = [], None
    for name in dict.fromkeys(modes):
        run = MODES[name](model, mel_config, args)
        if run is None:
            results.append({"mode": name, "skipped": True})
            continue
        seconds, times, audio = time_mode(run, mels, args.device, args.warmup, args.repeats)
        if baseline is None:
            baseline = (seconds, audio)
        snr = snr_db(baseline[1], audio)
        row = {"mode": name, "seconds_per_run": seconds, "runs": times,
               "khz": audio_seconds * mel_config.sample_rate / seconds / 1000.0, "rtf": seconds / audio_seconds,
               "speedup_vs_eager_float32": baseline[0] / seconds, "snr_db_vs_eager_float32": snr if math.isfinite(snr) else None}
        results.append(row)
        print(f"{name:<20} {row['khz']:9.2f} kHz  RTF {row['rtf']:8.3f}  x{row['speedup_vs_eager_float32']:.2f}  "
              f"SNR {snr:6.1f} dB", file=sys.stderr)
    report = {
        "benchmark": "bench_infer",
        "figure": {"name": "kHz of audio per second, eager float32", "value": results[0].get("khz")},
        **described,
        "parameters": model.num_parameters(),
        "device": str(args.device),
        "device_name": torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else platform.processor()
        or platform.machine(),
        "dtype": args.dtype,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "seconds": args.seconds,
        "frames": frames,
        "sample_rate": mel_config.sample_rate,
        "chunk_frames": args.chunk_frames,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "modes": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
