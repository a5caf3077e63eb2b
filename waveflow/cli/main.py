"""The ``waveflow`` command: one module per command group (parsers apart from the work), errors caught here
once. Exit codes: 0 success, 1 an error or a failed input (reported on stderr), 2 bad usage, 130 Ctrl+C.
"""

from __future__ import annotations

import argparse

from ..errors import run_command
from ..version import __version__
from . import demo, mel, models, score, train, vocode
from .common import Formatter

EXAMPLES = """\
examples:
  waveflow mel wavs/ -o mels/                      audio folder -> Tacotron2-style log-mels (.npy)
  waveflow info waveglow_256channels_universal_v5.pt
  waveflow import waveglow_256channels_universal_v5.pt voices/nvidia.pt
  waveflow train --config tiny data.root=corpus/ train.run_dir=runs/tiny
  waveflow vocode mels/ -o wavs_out/ --checkpoint voices/nvidia.pt
  waveflow synth recordings/ -o resynth/ --checkpoint voices/nvidia.pt
  waveflow eval clips/ --checkpoint voices/nvidia.pt
  waveflow score corpus/ -o score/                 find the bad clips of a corpus before training
  waveflow demo --checkpoint voices/nvidia.pt        web demo at http://127.0.0.1:7860
  waveflow quickstart                              offline: corpus -> tiny voice -> demo, in minutes
  waveflow <command> --help                        options of one command
"""

PARSERS = [mel.add_parser, models.add_info_parser, models.add_import_parser, train.add_parser,
           vocode.add_vocode_parser, vocode.add_synth_parser, vocode.add_eval_parser, demo.add_demo_parser,
           demo.add_quickstart_parser, score.add_parser]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waveflow",
        description="waveflow: WaveGlow-style neural vocoder toolkit (training, batch vocoding, NVIDIA import).",
        epilog=EXAMPLES,
        formatter_class=Formatter,
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
    return run_command(lambda: args.func(args))
