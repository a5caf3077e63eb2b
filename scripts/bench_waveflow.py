#!/usr/bin/env python
"""CPU inference speed of WaveFlow beside a WaveGlow of about the same parameter count, side by side in one run.

Both models are random (end convs drawn from N(0, 0.02^2), so no flow is the identity), folded for inference
(``prepare_for_inference``), float32, and sample the same mel with the same seed through ``infer`` (one whole
utterance, no chunking) at each thread count. The WaveGlow is NVIDIA's layout (12 flows of 8 WN layers, groups
of 8, early outputs) with the WN width that brings its folded weight count nearest WaveFlow's (``--waveglow-
channels`` to fix it). Reported per thread count: kHz of audio per second of each, their ratio, and once the
plain row-by-row WaveFlow inverse (the whole net for every row) against the row-queue one on a short clip.

    python scripts/bench_waveflow.py --seconds 1 --threads 1,2 --json bench_waveflow.json

Why the ratio is what it is: a WaveFlow uses every flow weight once per audio sample, a WaveGlow once per group
of ``n_group`` samples; ``flow_macs_per_sample`` in the JSON says so per model.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
from pathlib import Path

# As `import waveflow` does when it loads torch (the commands' case): idle OpenMP threads sleep. Here torch is
# loaded first, so say it before; OMP_WAIT_POLICY=ACTIVE python scripts/bench_waveflow.py measures spinning ones.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # after the OpenMP setting
from benchlib import emit, record, time_calls

from waveflow.config import from_dict, load_yaml
from waveflow.flows.wavenet import randomize_ends
from waveflow.models import WaveFlowConfig, WaveGlowConfig, build_model, prepare_for_inference

CONFIGS = Path(__file__).resolve().parent.parent / "waveflow" / "configs"
END_STD = 0.02
CPU = torch.device("cpu")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default="waveflow-64", help="a bundled waveflow-* config's name or a YAML path")
    p.add_argument("--waveglow-channels", type=int, help="WN channels of the WaveGlow (default: matched weights)")
    p.add_argument("--seconds", type=float, default=1.0, help="utterance length")
    p.add_argument("--reference-seconds", type=float, default=0.1, help="clip length for the plain inverse (0: skip)")
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5, help="rounds; each times every model once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the result here")
    return p


def waveflow_config(name: str) -> WaveFlowConfig:
    path = Path(name) if Path(name).is_file() else CONFIGS / f"{name.removesuffix('.yaml')}.yaml"
    return from_dict(WaveFlowConfig, load_yaml(path)["model"], "model")


def matching_waveglow(target: int, n_mels: int, hop: int, channels: int | None) -> WaveGlowConfig:
    """NVIDIA's WaveGlow layout with the WN width (even) whose folded weight count is nearest ``target``."""
    def shape(c: int) -> WaveGlowConfig:
        return WaveGlowConfig(n_mels=n_mels, hop_length=hop, n_channels=c, mel_shift=6.0)

    if channels:
        return shape(channels)
    return min((shape(c) for c in range(8, 513, 2)), key=lambda cfg: abs(cfg.weight_count() - target))


def flow_macs_per_sample(config) -> float:
    """Multiply-adds per audio sample in the flows (the upsampler and prior apart): each flow weight once per
    column of WaveFlow's ``h`` rows per row, i.e. once per sample; once per group of ``n_group`` for WaveGlow."""
    upsampler = config.n_mels * config.n_mels * 4 * config.hop_length + config.n_mels
    flows = config.weight_count() - upsampler
    return flows if isinstance(config, WaveFlowConfig) else flows / config.n_group


def build(config):
    """A random, folded, float32 model of ``config`` on the CPU."""
    torch.manual_seed(0)
    return prepare_for_inference(randomize_ends(build_model(config), END_STD), CPU, torch.float32)


def sampler(model, mel: torch.Tensor, seed: int, method: str = "infer"):
    """``run()``: ``model`` makes audio from ``mel`` by ``infer`` (row queues) or the plain row-by-row inverse."""
    def run():
        gen = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            if method == "infer":
                return model.infer(mel, sigma=0.6, generator=gen)
            z = torch.randn(1, model.config.n_group, mel.shape[-1] * model.hop_length // model.config.n_group,
                            generator=gen) * 0.6
            return model.inverse_reference(z, mel)

    return run


def khz_side_by_side(runs: dict, samples: int, warmup: int, repeats: int) -> dict[str, float]:
    """kHz of each run, timed in turns (one call of each per round, ``repeats`` rounds, the median): a machine
    whose load drifts (cores shared with a training run) slows both alike, so their ratio holds."""
    for run in runs.values():
        time_calls(run, CPU, warmup, 1)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name] += time_calls(run, CPU, 0, 1).times
    return {name: samples / statistics.median(t) / 1000.0 for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    flow_cfg = waveflow_config(args.config)
    glow_cfg = matching_waveglow(flow_cfg.weight_count(), flow_cfg.n_mels, flow_cfg.hop_length,
                                 args.waveglow_channels)
    models = {"waveflow": build(flow_cfg), "waveglow": build(glow_cfg)}
    sample_rate = 22050
    frames = max(1, round(args.seconds * sample_rate / flow_cfg.hop_length))
    mel = torch.randn(1, flow_cfg.n_mels, frames, generator=torch.Generator().manual_seed(args.seed)) * 2 - 6
    samples = frames * flow_cfg.hop_length
    rows = []
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        runs = {f"{name}_khz": sampler(model, mel, args.seed) for name, model in models.items()}
        row = {"threads": threads, **khz_side_by_side(runs, samples, args.warmup, args.repeats)}
        row["waveflow_over_waveglow"] = row["waveflow_khz"] / row["waveglow_khz"]
        print(f"{threads} thread(s): WaveFlow {row['waveflow_khz']:.2f} kHz, WaveGlow {row['waveglow_khz']:.2f} "
              f"kHz, ratio {row['waveflow_over_waveglow']:.3f}", file=sys.stderr)
        rows.append(row)
    reference = None
    if args.reference_seconds > 0:
        torch.set_num_threads(1)
        short = mel[..., : max(1, round(args.reference_seconds * sample_rate / flow_cfg.hop_length))]
        runs = {"fast": sampler(models["waveflow"], short, args.seed),
                "plain": sampler(models["waveflow"], short, args.seed, "reference")}
        speeds = khz_side_by_side(runs, short.shape[-1] * flow_cfg.hop_length, 0, 1)  # the plain one is slow
        fast, plain = speeds["fast"], speeds["plain"]
        reference = {"threads": 1, "frames": short.shape[-1], "row_queues_khz": fast, "plain_rows_khz": plain,
                     "speedup": fast / plain}
        print(f"row queues {fast:.2f} kHz vs plain row-by-row {plain:.2f} kHz (x{fast / plain:.1f})", file=sys.stderr)
    described = {name: {"type": getattr(cfg, "type", name), "parameters": cfg.weight_count(),
                        "flow_macs_per_sample": flow_macs_per_sample(cfg),
                        "config": dataclasses.asdict(cfg)}
                 for name, cfg in (("waveflow", flow_cfg), ("waveglow", glow_cfg))}
    figure = {"name": "kHz of audio per second, fp32 CPU, WaveFlow / WaveGlow of equal weights",
              "value": rows[0]["waveflow_over_waveglow"]}
    emit(record(figure, config=args.config, device=CPU, dtype="float32", benchmark="bench_waveflow",
                models=described, seconds=frames * flow_cfg.hop_length / sample_rate, frames=frames,
                warmup=args.warmup, repeats=args.repeats, omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                results=rows, reference_inverse=reference),
         args.json, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
