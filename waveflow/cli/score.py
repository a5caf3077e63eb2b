"""``waveflow score``: find the bad clips of a corpus by their exact likelihood and plain signal facts."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import add_command, add_progress_options, add_shard_option, default_of, finish, job_part

EPILOG = """\
examples:
  waveflow score LJSpeech-1.1 -o ljspeech-score            the clips metadata.csv lists, bundled starter voice
  waveflow score recordings/ --checkpoint voices/my.pt -o score/
  waveflow train --config starter data.root=LJSpeech-1.1 data.exclude=ljspeech-score/exclude.txt ...

A clip is flagged for a plain fact (clipping, clicks, bursts of noise, hum, DC offset, a band limit,
quantisation, long silence, an abrupt end, another sample rate or level) or for being unlike the rest of the
corpus in the model's eyes, at both tails: more bits per sample than the rest (noise, music, damage), or fewer
(band-limited, quantised, silent). Interrupted or sharded runs resume: a clip's record is written once; the
report is written from all records there are."""


def add_parser(sub) -> None:
    from ..checkpoints import DEFAULT_VOICE
    from ..jobs.score import ScoreOptions

    p = add_command(sub, "score", "find the bad clips of a corpus (exact likelihood + signal facts)",
                    "Score every clip of a corpus with a model's exact likelihood (bits per sample, frame by "
                    "frame, against what the model expects for the clip's mel) and plain signal facts, judge "
                    "each clip against the rest of the corpus, and write a report: score.json, score.csv, "
                    "score.png and exclude.txt (for waveflow train data.exclude=...).", EPILOG)
    p.add_argument("inputs", nargs="+", metavar="CORPUS",
                   help="audio files, folders (recursive), quoted globs, an LJSpeech folder or its metadata.csv "
                        "(the clips it lists)")
    p.add_argument("--checkpoint", type=Path, default=Path(DEFAULT_VOICE), metavar="FILE|NAME",
                   help=f"the model (default: the bundled {DEFAULT_VOICE!r} voice)")
    p.add_argument("-o", "--out-dir", type=Path, default=Path("score-report"), metavar="REPORT_DIR",
                   help="report folder (per-clip records in its clips/ folder)")
    p.add_argument("--device", default="auto", help="torch device: auto (cuda, then mps, then cpu), cpu, cuda:1, ...")
    p.add_argument("--z", type=float, default=default_of(ScoreOptions, "z"),
                   help="robust z-score beyond which a clip is not like the rest")
    p.add_argument("--seed", type=int, default=default_of(ScoreOptions, "seed"),
                   help="seed of the model's own sample of each clip (its expectation)")
    p.add_argument("--max-seconds", type=float, default=default_of(ScoreOptions, "max_seconds"), metavar="S",
                   help="a longer clip fails, naming its length (0 = no limit)")
    p.add_argument("--overwrite", action="store_true", help="score every clip again (default: keep the records)")
    p.add_argument("--no-picture", action="store_true", help="no score.png")
    add_shard_option(p)
    add_progress_options(p)
    p.set_defaults(func=run_score)


def corpus_inputs(inputs: list[str]) -> list[str]:
    """The inputs with each LJSpeech folder (or its ``metadata.csv``) replaced by the clips it lists."""
    from ..jobs.eval import eval_files

    out: list[str] = []
    for raw in inputs:
        folder = Path(raw).parent if Path(raw).name == "metadata.csv" and Path(raw).is_file() else Path(raw)
        if (folder / "metadata.csv").is_file() and (folder / "wavs").is_dir():
            notes: list[str] = []
            out += [str(p) for p in eval_files([folder], notes)]
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
        else:
            out.append(raw)
    return out


def run_score(args) -> int:
    from ..checkpoints import load_checkpoint, resolve_checkpoint
    from ..inference.runtime import pick_device
    from ..jobs.discover import AUDIO_INPUTS
    from ..jobs.planner import make_plan
    from ..jobs.score import RECORDS, ScoreOptions, Scorer, check_model, load_records, score_files
    from ..jobs.score_judge import judge
    from ..jobs.score_report import print_summary, write_report
    from .common import note_default_voice

    options = ScoreOptions(seed=args.seed, z=args.z, max_seconds=args.max_seconds, progress=not args.no_progress)
    part = job_part(args)
    plan = make_plan(corpus_inputs(args.inputs), args.out_dir / RECORDS, AUDIO_INPUTS, ".json",
                     overwrite=args.overwrite, part=part)
    device = pick_device(part.launch.device(args.device) if part.launch else args.device)
    note_default_voice(args.checkpoint)
    checkpoint = load_checkpoint(args.checkpoint, weight_norm=False)
    model = checkpoint.model.float().to(device).requires_grad_(False)
    scorer = Scorer(model, checkpoint.mel_config, device, checkpoint.name or str(args.checkpoint))
    described = scorer.describe(args.checkpoint, resolve_checkpoint(args.checkpoint))
    if part.launch is None or part.launch.main:
        check_model(args.out_dir, described, args.overwrite)
    summary = score_files(plan, scorer, options)
    if summary.main and not summary.interrupted:
        records, missing = load_records(plan)
        failures = [{"path": f.path, "reason": f.reason} for f in summary.failures]
        items = judge(records, options.z)
        summary.notes += write_report(args.out_dir, described, items, failures, missing, not args.no_picture)
        print_summary(items, failures, args.out_dir, described, missing)
    return finish(summary, args.summary, "clip records")
