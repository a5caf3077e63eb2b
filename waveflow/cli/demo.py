"""``waveflow demo`` and ``waveflow quickstart``: the web demo, and from nothing to a voice in the demo.

The demo's options live with the demo (:mod:`waveflow.app.args`, importable without Gradio); this module only
files them under ``waveflow``."""

from __future__ import annotations

import sys
from pathlib import Path

from ..app.args import DESCRIPTION, EPILOG, HELP, add_arguments, add_server_arguments
from .common import add_command, add_progress_options


def add_demo_parser(sub) -> None:
    p = add_command(sub, "demo", HELP, DESCRIPTION, EPILOG)
    add_arguments(p)
    p.set_defaults(func=run_demo)


def run_demo(args) -> int:
    from ..app.server import run

    return run(args)


def add_quickstart_parser(sub) -> None:
    p = add_command(
        sub,
        "quickstart",
        "make a voice corpus, train a tiny voice (source-filter prior) on CPU, vocode test clips, open the demo",
        "From nothing to a demo of your own voice, offline: the offline TTS engines (apt-get install "
        "espeak-ng flite) speak a small corpus, the tiny config trains on it on the CPU (a few minutes, with "
        "a progress bar; at most --minutes), held-out utterances are vocoded into OUT/vocoded/, and the demo "
        "starts on the new voice. Re-running resumes. The tiny config trains with the source-filter prior, so the "
        "voice speaks the words with their pitch from the first step; it is for trying the pipeline, not a natural "
        "voice (README says how to get one).",
        "examples:\n  waveflow quickstart\n  waveflow quickstart --steps 5000 --minutes 30 -o runs/qs-long\n"
        "  waveflow quickstart --steps 5 --utterances 12 --no-demo     (a smoke test, under a minute)",
    )
    p.add_argument("-o", "--out-dir", type=Path, default=Path("runs/quickstart"), help="output folder")
    p.add_argument("--voice", default="auto", help="TTS voice of the corpus (auto: flite-slt, else espeak-en-us)")
    p.add_argument("--utterances", type=int, default=40, help="corpus size")
    p.add_argument("--steps", type=int, default=1500,
                   help="training steps (the tiny model with the prior takes about 0.5 s a step on 2 CPU cores, "
                        "so --minutes usually ends training first)")
    p.add_argument("--minutes", type=float, default=10.0,
                   help="stop training after this many minutes even if --steps are not done (0 = no limit; "
                        "measured on 2 cores: 3 minutes trained 397 steps, 10 train about 1300); running again "
                        "continues training")
    p.add_argument("--test-clips", type=int, default=3, help="held-out utterances to vocode")
    p.add_argument("--seed", type=int, default=0, help="seed of training and vocoding")
    p.add_argument("--no-demo", action="store_true", help="stop after vocoding (for CI and scripts)")
    add_progress_options(p, summary=False)
    add_server_arguments(p)
    p.set_defaults(func=run_quickstart)


def run_quickstart(args) -> int:
    from ..jobs import quickstart

    result = quickstart.run_quickstart(
        args.out_dir, voice=args.voice, utterances=args.utterances, steps=args.steps, minutes=args.minutes,
        seed=args.seed, test_clips=args.test_clips, device=args.device, progress=not args.no_progress,
    )
    print(quickstart.report(result), file=sys.stderr, flush=True)
    if args.no_demo:
        return 0
    print("[4/4] demo: starting on the new voice", file=sys.stderr, flush=True)
    args.voices, args.checkpoint = None, [result.model]
    return run_demo(args)
