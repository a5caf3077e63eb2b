"""``waveflow info`` and ``waveflow import``: what a checkpoint holds, and converting NVIDIA's."""

from __future__ import annotations

import json
from pathlib import Path

from .common import add_command


def add_info_parser(sub) -> None:
    p = add_command(
        sub,
        "info",
        "describe a checkpoint (config, size, sample rate, origin)",
        "Print what a checkpoint holds: model config, parameter count, mel/sample-rate settings and where "
        "it came from. Reads waveflow files and NVIDIA WaveGlow / DeepLearningExamples checkpoints safely "
        "(nothing in the file is executed).",
        "examples:\n  waveflow info voices/ljspeech.pt\n  waveflow info waveglow_256channels_universal_v5.pt --json",
    )
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run_info)


def run_info(args) -> int:
    from ..checkpoints import describe, load_checkpoint

    info = describe(load_checkpoint(args.checkpoint, weight_norm=False))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"checkpoint   {args.checkpoint}")
    print(f"origin       {info['origin']}")
    if info["name"]:
        print(f"name         {info['name']}")
    print(f"model type   {info['model_type']}")
    print(f"parameters   {info['parameters']:,} ({info['parameters'] / 1e6:.1f} M)")
    print(f"sample rate  {info['sample_rate']} Hz, hop {info['mel']['hop_length']}, {info['mel']['n_mels']} mels")
    print("model        " + ", ".join(f"{k}={v}" for k, v in info["model"].items() if k != "type"))
    print("mel          " + ", ".join(f"{k}={v}" for k, v in info["mel"].items()))
    for k, v in info["meta"].items():
        if k not in ("origin", "name"):
            print(f"{k:<12} {readable_scores(v) if k.startswith('scores') else v}")
    return 0


def readable_scores(text) -> str:
    """A ``scores`` line of a voice's metadata (``"pesq_wb 1.23, vuv_f1 0.0203, f0_rmse_cents 2.89e+03"``, as
    scripts/bundle_voice.py writes it) with the F0 error of a voice that is not voiced said as such: its number
    is then a few stray frames of pitch-tracker noise (:func:`waveflow.metrics.unvoiced`)."""
    if not isinstance(text, str):
        return str(text)
    from ..metrics import F0_ERRORS, NO_VOICED, unvoiced

    parts = [part.strip().rsplit(" ", 1) for part in text.split(",")]
    scores = {}
    for part in parts:
        try:
            scores[part[0]] = float(part[1])
        except (IndexError, ValueError):
            return text  # not a scores line after all: as it is
    return ", ".join(f"{name} {NO_VOICED if name in F0_ERRORS and unvoiced(name, scores) else value}"
                     for name, value in (part for part in parts))


def add_import_parser(sub) -> None:
    p = add_command(
        sub,
        "import",
        "convert an NVIDIA WaveGlow checkpoint to waveflow's format",
        "Convert a foreign WaveGlow checkpoint (NVIDIA/waveglow's published .pt files, old 'glow_old' "
        "layouts, DeepLearningExamples / torch.hub files) into one waveflow model file. NVIDIA's code is not "
        "needed and nothing in the file is executed: only known WaveGlow classes are accepted.",
        "examples:\n  waveflow import waveglow_256channels_universal_v5.pt voices/nvidia-universal.pt\n"
        "  waveflow import nvidia_waveglowpyt_fp32_20190306.pth voices/dle.pt --name 'DLE LJSpeech'",
    )
    p.add_argument("source", type=Path, help="foreign (or waveflow) checkpoint")
    p.add_argument("output", type=Path, help="waveflow model file to write")
    p.add_argument("--sample-rate", type=int, help="rate the model was trained at (foreign files omit it; 22050)")
    p.add_argument("--name", help="voice name shown by the demo (default: file name)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=run_import)


def run_import(args) -> int:
    from ..checkpoints import import_checkpoint

    ck = import_checkpoint(args.source, args.output, args.sample_rate, args.name, args.overwrite)
    print(
        f"imported {args.source} ({ck.origin}, {ck.model.num_parameters() / 1e6:.1f} M parameters, "
        f"{ck.mel_config.sample_rate} Hz) -> {args.output}"
    )
    return 0
