#!/usr/bin/env python
"""Inference speed of a vocoder model (WaveGlow, WaveFlow): kHz of audio made per second and real-time factor, several modes side by side.

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
import functools
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

# As `import waveflow` does when it loads torch: idle OpenMP threads sleep instead of spinning (on a busy
# 2-core machine spinning threads made inference 3-10x slower). OMP_WAIT_POLICY=ACTIVE measures spinning ones.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # after the OpenMP setting
from benchlib import (
    CONFIG_HELP,
    build_model,
    config_arg,
    emit,
    model_config,
    record,
    resolve_device,
    snr_db,
    snr_field,
    time_calls,
)

from waveflow import MelConfig, WaveflowError
from waveflow.checkpoints import load_checkpoint
from waveflow.config import to_dict
from waveflow.inference import Vocoder
from waveflow.models import VocoderModel

END_STD = 0.02  # std of the random WN end convs, so the couplings (and the SNR column) are not trivial
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

    def factory(model: VocoderModel, mel_config: MelConfig, args) -> Run | None:
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


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", type=Path, help="model file (overrides --config)")
    p.add_argument("--config", type=config_arg, default="default", help=f"model shape without --checkpoint: {CONFIG_HELP}")
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
    p.add_argument("--audio", type=Path, help="mel of this recording (repeated to --seconds) instead of random "
                   "mels: a pitch predictor's cost depends on the voice's periods")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--plugin", action="append", default=[], help="module that registers more modes")
    p.add_argument("--json", type=Path, help="also write the result here")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Arguments, with plugins loaded (they add modes), the device resolved and ``modes`` a list that starts
    with eager float32 (the baseline every ratio refers to)."""
    parser = get_parser()
    args = parser.parse_args(argv)
    for plugin in args.plugin:
        importlib.import_module(plugin)
    try:
        args.device = resolve_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    modes = args.modes.split(",") if args.modes else ["eager-float32", f"eager-{args.dtype}", "chunked-float32"]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}")
    args.modes = list(dict.fromkeys(["eager-float32", *modes]))
    return args


def load_model(args) -> tuple[VocoderModel, MelConfig, dict]:
    """Model from ``--checkpoint`` or a named config (random weights: speed does not depend on them), its mel
    config, and fields describing it for the report."""
    if args.checkpoint:
        ck = load_checkpoint(args.checkpoint, weight_norm=False)
        return ck.model, ck.mel_config, {"checkpoint": str(args.checkpoint), "model": to_dict(ck.model.config)}
    model_cfg, source = model_config(args.config)
    model = build_model(model_cfg, seed=args.seed, end_std=END_STD)
    mel_config = MelConfig(hop_length=model_cfg.hop_length, n_mels=model_cfg.n_mels)
    return model, mel_config, {"source": source, "model": to_dict(model_cfg)}


def make_mels(mel_config: MelConfig, args) -> list[torch.Tensor]:
    """``--batch-size`` log-mels ``(n_mels, F)`` of ``--seconds`` each: random, or of ``--audio`` repeated."""
    frames = max(1, round(args.seconds * mel_config.sample_rate / mel_config.hop_length))
    if args.audio:
        import soundfile as sf

        from waveflow import MelSpectrogram
        from waveflow.audio import resample

        audio, rate = sf.read(str(args.audio), dtype="float32", always_2d=True)
        audio = resample(audio.mean(1), rate, mel_config.sample_rate)
        mel = MelSpectrogram(mel_config)(torch.from_numpy(audio))
        mel = mel.repeat(1, frames // mel.shape[1] + 1)[:, :frames]
        return [mel.clone() for _ in range(args.batch_size)]
    gen = torch.Generator().manual_seed(args.seed)
    return [torch.randn(mel_config.n_mels, frames, generator=gen) * 2.0 - 6.0 for _ in range(args.batch_size)]


def measure_modes(model: VocoderModel, mel_config: MelConfig, mels: list[torch.Tensor], args) -> list[dict]:
    """One row per mode: speed, and speed-up and SNR against the first mode (eager float32)."""
    audio_seconds = sum(m.shape[-1] for m in mels) * mel_config.hop_length / mel_config.sample_rate
    results, baseline = [], None
    for name in args.modes:
        run = MODES[name](model, mel_config, args)
        if run is None:
            results.append({"mode": name, "skipped": True})
            continue
        timing = time_calls(functools.partial(run, mels), args.device, args.warmup, args.repeats)
        seconds = timing.median
        if baseline is None:
            baseline = timing
        snr = snr_db(baseline.output, timing.output)
        row = {"mode": name, "seconds_per_run": seconds, "runs": timing.times,
               "khz": audio_seconds * mel_config.sample_rate / seconds / 1000.0, "rtf": seconds / audio_seconds,
               "speedup_vs_eager_float32": baseline.median / seconds,
               "snr_db_vs_eager_float32": snr_field(snr)}
        results.append(row)
        print(f"{name:<20} {row['khz']:9.2f} kHz  RTF {row['rtf']:8.3f}  x{row['speedup_vs_eager_float32']:.2f}  "
              f"SNR {snr:6.1f} dB", file=sys.stderr)
    return results


def report(args, model: VocoderModel, mel_config: MelConfig, described: dict, frames: int, results: list[dict]) -> dict:
    figure = {"name": "kHz of audio per second, eager float32", "value": results[0].get("khz")}
    return record(figure, config=args.checkpoint or args.config, device=args.device, dtype=args.dtype,
                  benchmark="bench_infer", **described, parameters=model.num_parameters(),
                  threads=torch.get_num_threads(), batch_size=args.batch_size, seconds=args.seconds,
                  frames=frames, sample_rate=mel_config.sample_rate, chunk_frames=args.chunk_frames,
                  warmup=args.warmup, repeats=args.repeats, modes=results)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model, mel_config, described = load_model(args)
    except WaveflowError as e:  # a missing or unreadable checkpoint
        print(f"error: {e}", file=sys.stderr)
        return 1
    mels = make_mels(mel_config, args)
    results = measure_modes(model, mel_config, mels, args)
    emit(report(args, model, mel_config, described, mels[0].shape[-1], results), args.json, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
