"""The demo's options, apart from the code that serves it: importable without Gradio, so ``waveflow demo
--help`` works without the ``demo`` extra. ``waveflow demo`` and ``python -m waveflow.app`` share them."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_MAX_SECONDS = 30.0
DTYPES = ("float32", "float16", "bfloat16")

HELP = "web demo: vocode mels, copy synthesis, compare voices, look inside the flow"
DESCRIPTION = (
    "Start the Gradio demo on one or more voices (a voice is a checkpoint). The page has four tabs: "
    "vocode uploaded mels, copy synthesis of a clip, the same clip through several voices, and what the "
    "flow does to a clip (latent vs Gaussian, per-step log-determinants, NLL, samples at several sigmas). "
    "Example clips are made offline at start-up. Needs the demo extra: pip install \"waveflow[demo]\"."
)
EPILOG = (
    "examples:\n  waveflow demo --checkpoint runs/quickstart/tiny-flite-slt/model.pt\n"
    "  waveflow demo --voices voices/ --device cuda --dtype float16 --port 7860\n"
    "  waveflow demo --checkpoint a.pt --checkpoint b.pt --max-seconds 60 --concurrency 2"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """All the options of ``waveflow demo``: the voices, then the server's options."""
    add_voice_arguments(parser)
    add_server_arguments(parser)


def add_voice_arguments(parser: argparse.ArgumentParser) -> None:
    """``--voices DIR`` and ``--checkpoint FILE`` (repeatable): where the voices come from."""
    parser.add_argument("--voices", type=Path, metavar="DIR",
                        help="offer every checkpoint (.pt/.pth/.ckpt) in DIR")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[], metavar="FILE",
                        help="a voice: a model file or a bundled voice's name (repeatable); with neither this nor "
                             "--voices, the bundled 'starter' voice")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """How the demo is served (also the options of ``waveflow quickstart``, which ends in the demo)."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind; 0.0.0.0 makes the demo reachable from your network (no login!)")
    parser.add_argument("--port", type=int, help="port; none = the first free one from 7860")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1, mps")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="precision of the weights and the math")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help="longest clip (or mel) accepted")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="requests processed at once (others wait in Gradio's queue); bounds memory use")
    parser.add_argument("--share", action="store_true",
                        help="also open a public gradio.live link (needs internet)")
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples as written; defaults shown only where they say something (not None, False or [])."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, [], argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def get_parser(prog: str = "python -m waveflow.app") -> argparse.ArgumentParser:
    """The demo's own parser (``python -m waveflow.app``); ``waveflow demo`` adds the same options."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter)
    add_arguments(parser)
    return parser
