"""``python -m waveflow.corpus`` / ``scripts/make_voice_corpus.py``: the corpus maker's command line.

:func:`main` never raises ``SystemExit`` and prints errors as one ``error: ...`` line, so it can be called
from other code and tests as a function; the parser (:func:`build_parser`) is kept apart from the action
(:func:`run`), so each can be read and tested alone.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ..errors import run_command
from .engines import DEFAULT_VOICES, VOICES, CorpusError, voice_problems
from .synthesis import LAYOUTS, make_corpus

_DESCRIPTION = """\
Make an offline speech corpus in LJSpeech layout with Debian's text-to-speech
engines (espeak-ng, flite, festival): real English speech for tests, CI, demos
and quality checks, without downloads.

Each voice speaks --n sentences drawn (by --seed) from a built-in list of a few
hundred English sentences. The same arguments always give the same ids and
texts, and re-running a command resumes it: finished wavs are kept.
"""

_EPILOG = """\
examples:
  # 20 utterances each of espeak-en-us and flite-slt (the default) in one folder
  %(prog)s --out data/tts

  # every installed voice, 50 utterances each, one LJSpeech folder per voice, 16 kHz
  %(prog)s --out data/tts16k --voices available --n 50 --layout per-voice --sample-rate 16000

  # three chosen voices; then grow the same corpus to 100 utterances per voice
  %(prog)s --out data/tts --voices espeak-en-gb-f,flite-awb,festival-slt --n 20
  %(prog)s --out data/tts --voices espeak-en-gb-f,flite-awb,festival-slt --n 100

  # which voices exist, and which are installed here
  %(prog)s --list-voices

output (LJSpeech layout; ids are voice-prefixed, so voices can share a folder):
  DIR/metadata.csv      id|text|normalized text, one line per utterance, e.g.
                        FLITE-SLT-0001|Dr. Evans will see you now.|Doctor Evans will see you now.
  DIR/wavs/<id>.wav     mono 16-bit PCM at --sample-rate
  (--layout per-voice: DIR/<voice>/metadata.csv and DIR/<voice>/wavs/)

An interrupted run leaves no half-written wav: run the same command again to
finish it. --overwrite synthesises every wav again.

engines (Debian packages):
  sudo apt-get install espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts
"""


class _UsageError(Exception):
    """A command-line usage error (argparse would exit 2; :func:`main` reports it and returns 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's hook; raising keeps main() exit-free
        raise _UsageError(f"{message} (see --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of :func:`main`; ``prog`` defaults to how the program was started."""
    parser = _Parser(
        prog=prog or _prog_name(),
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (required unless --list-voices)")
    parser.add_argument(
        "--voices",
        default=",".join(DEFAULT_VOICES),
        help="comma-separated voice names, 'all', or 'available' (the installed ones); "
        "see --list-voices (default: %(default)s)",
    )
    parser.add_argument(
        "--n", type=_positive_int, default=20, metavar="N", help="utterances per voice (default: %(default)s)"
    )
    parser.add_argument(
        "--sample-rate",
        type=_positive_int,
        default=22050,
        metavar="HZ",
        help="output sample rate in Hz (default: %(default)s, as LJSpeech)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for the sentence draw (default: %(default)s)"
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="mixed",
        help="mixed: one folder with every voice; per-voice: one sub-folder per voice (default: %(default)s)",
    )
    parser.add_argument("--overwrite", action="store_true", help="synthesise again wavs that already exist")
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="J",
        help="engine processes at once (default: the number of CPUs, at most 8)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--list-voices", action="store_true", help="list the voices, whether each is installed here, and exit"
    )
    return parser


def _list_voices() -> str:
    """One line per voice: name, description, and "ok" or what to install."""
    problems = voice_problems(VOICES)
    name_width = max(len(name) for name in VOICES)
    desc_width = max(len(spec.description) for spec in VOICES.values())
    lines = []
    for name, spec in VOICES.items():
        # Problems end "(install it with: sudo apt-get install X)": show the actionable part.
        fix = re.search(r"\(install it with: (.*)\)$", problems.get(name, ""))
        status = "ok" if name not in problems else "missing: " + (fix.group(1) if fix else problems[name])
        lines.append(f"{name:<{name_width}}  {spec.description:<{desc_width}}  {status}")
    return "\n".join(lines)


def _prog_name() -> str:
    """The program name for usage lines: the script's, or ``python -m waveflow.corpus``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m waveflow.corpus" if name in ("", "__main__.py", "-c") else name


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python scripts/make_voice_corpus.py`` / ``python -m waveflow.corpus``).

    Never raises SystemExit: ``--help`` prints and returns 0.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 on an error (printed as ``error: ...`` on stderr, no traceback),
        130 when interrupted.
    """
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Do what parsed arguments ask: list the voices, or make the corpus and say where it is.

    Returns:
        The exit status, as :func:`main`'s.
    """
    return run_command(lambda: _run(args),
                       interrupted="interrupted: finished wavs are kept; run the same command again to resume")


def _run(args: argparse.Namespace) -> int:
    if args.list_voices:
        print(_list_voices())
        return 0
    if not args.out:
        raise CorpusError("--out DIR is required (see --help)")
    folders = make_corpus(
        args.out,
        voices=args.voices,
        n_utterances=args.n,
        sample_rate=args.sample_rate,
        seed=args.seed,
        layout=args.layout,
        overwrite=args.overwrite,
        progress=not args.quiet,
        jobs=args.jobs,
    )
    for folder in folders:
        n_rows = len((folder / "metadata.csv").read_text(encoding="utf-8").splitlines())
        print(f"{folder}: {n_rows} utterances, {folder / 'metadata.csv'}")
    return 0
