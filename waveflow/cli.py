"""The ``waveflow`` command. Parsers are built here; the work is done by the modules they call.

Exit codes: 0 success, 1 an error or a failed input (reported on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__

EXAMPLES = """\
examples:
  waveflow mel wavs/ -o mels/                      audio folder -> Tacotron2-style log-mels (.npy)
  waveflow info waveglow_256channels_universal_v5.pt
  waveflow import waveglow_256channels_universal_v5.pt voices/nvidia.pt
  waveflow train --config configs/waveglow-tiny.yaml data.root=corpus/
  waveflow vocode mels/ -o wavs_out/ --checkpoint voices/nvidia.pt
  waveflow <command> --help                        options of one command
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps example blocks as written and shows defaults."""


def _add(sub, name: str, help: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description, epilog=epilog, formatter_class=_Formatter)


# ----------------------------------------------------------------------------------------------- mel
def add_mel_parser(sub) -> None:
    p = _add(
        sub,
        "mel",
        "audio files -> log-mel spectrograms (.npy/.pt)",
        "Compute log-mel spectrograms of audio files (Tacotron2/NVIDIA WaveGlow features by default), "
        "mirroring the input tree in OUT_DIR. Files are mixed down to mono and resampled to the mel "
        "config's rate. Existing outputs are skipped unless --overwrite; bad files are reported and skipped.",
        "examples:\n  waveflow mel LJSpeech-1.1/wavs -o mels/\n"
        "  waveflow mel 'data/**/*.flac' -o mels/ --format pt --checkpoint voices/my.pt\n"
        "  waveflow mel clip.wav -o mels/ --sample-rate 16000",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files, folders (recursive) or quoted globs")
    p.add_argument("-o", "--out-dir", required=True, type=Path, help="output folder")
    p.add_argument("--format", choices=("npy", "pt"), default="npy", help="mel file format")
    p.add_argument("--checkpoint", type=Path, help="take the mel settings from this model file")
    p.add_argument("--sample-rate", type=int, help="Tacotron2-like settings scaled to this rate (default 22050)")
    p.add_argument("--n-fft", type=int)
    p.add_argument("--hop-length", type=int)
    p.add_argument("--win-length", type=int)
    p.add_argument("--n-mels", type=int)
    p.add_argument("--fmin", type=float)
    p.add_argument("--fmax", type=float)
    p.add_argument("--device", default="cpu", help="torch device for the STFT")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--summary", type=Path, help="also write the summary as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_mel)


def run_mel(args) -> int:
    from .mel import MelConfig
    from .mel_io import extract_mels

    overrides = {
        k: v
        for k, v in dict(
            n_fft=args.n_fft,
            hop_length=args.hop_length,
            win_length=args.win_length,
            n_mels=args.n_mels,
            fmin=args.fmin,
            fmax=args.fmax,
        ).items()
        if v is not None
    }
    if args.checkpoint:
        from .checkpoints import load_checkpoint

        config = load_checkpoint(args.checkpoint).mel_config.replace(**overrides)
    else:
        config = MelConfig.for_sample_rate(args.sample_rate or 22050, **overrides)
    summary = extract_mels(
        args.inputs, args.out_dir, config, args.format, args.overwrite, args.device, not args.no_progress
    )
    return _finish(summary, args.summary, "mel files")


def _finish(summary, json_path: Path | None, what: str) -> int:
    summary.report(what=what)
    if json_path:
        summary.write_json(json_path)
    return 1 if summary.failed else 0


# ----------------------------------------------------------------------------------------------- info/import
def add_info_parser(sub) -> None:
    p = _add(
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
    from .checkpoints import describe, load_checkpoint

    info = describe(load_checkpoint(args.checkpoint, weight_norm=False))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"checkpoint   {args.checkpoint}")
    print(f"origin       {info['origin']}")
    if info["name"]:
        print(f"name         {info['name']}")
    print(f"parameters   {info['parameters']:,} ({info['parameters'] / 1e6:.1f} M)")
    print(f"sample rate  {info['sample_rate']} Hz, hop {info['mel']['hop_length']}, {info['mel']['n_mels']} mels")
    print("model        " + ", ".join(f"{k}={v}" for k, v in info["model"].items()))
    print("mel          " + ", ".join(f"{k}={v}" for k, v in info["mel"].items()))
    for k, v in info["meta"].items():
        if k not in ("origin", "name"):
            print(f"{k:<12} {v}")
    return 0


def add_import_parser(sub) -> None:
    p = _add(
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
    from .checkpoints import import_checkpoint

    ck = import_checkpoint(args.source, args.output, args.sample_rate, args.name, args.overwrite)
    print(
        f"imported {args.source} ({ck.origin}, {ck.model.num_parameters() / 1e6:.1f} M parameters, "
        f"{ck.mel_config.sample_rate} Hz) -> {args.output}"
    )
    return 0


# ----------------------------------------------------------------------------------------------- main
PARSERS = [add_mel_parser, add_info_parser, add_import_parser]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waveflow",
        description="waveflow: WaveGlow-style neural vocoder toolkit (training, batch vocoding, NVIDIA import).",
        epilog=EXAMPLES,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"waveflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # our errors name the file and the reason; no traceback for users
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
