"""Copy-synthesis quality of vocoders side by side: test NLL (bits per 16-bit sample) and ``waveflow eval``'s
metrics (STFT distance, log-mel L1, MCD, PESQ, STOI, V/UV F1, F0) on held-out utterances of the training voices
and on voices never trained on, beside Griffin-Lim and beside an untrained spectral-prior model (the floor every
trained model must beat). Prints one JSON record.

    python scripts/bench_quality.py \\
        --model tiny=runs/tiny/model.pt --model tiny-prior=runs/tiny-prior/model.pt \\
        --model starter=runs/starter/model.pt --untrained starter \\
        --seen data/train6 --exclude-train runs/tiny/split/train.txt runs/starter/split/train.txt \\
        --unseen data/heldout_espeak --per-set 12 --json quality.json

``--model NAME=CHECKPOINT`` (repeatable; a bundled voice's name works too); ``--untrained CONFIG`` adds a
freshly initialised model of a bundled config (with the spectral prior: the prior alone, identity couplings).
``--seen`` is an LJSpeech-layout corpus of the training voices; clips listed in any ``--exclude-train`` split
list are left out, so only utterances no run trained on are scored.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# As `import waveflow` does when it loads torch: idle OpenMP threads sleep instead of spinning (on a busy
# 2-core machine spinning threads made inference 3-10x slower). OMP_WAIT_POLICY=ACTIVE measures spinning ones.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # after the OpenMP setting
from benchlib import emit, record

from waveflow import Vocoder
from waveflow.checkpoints import LoadedCheckpoint, load_checkpoint
from waveflow.jobs.eval import evaluate
from waveflow.metrics import MetricSet
from waveflow.models import build_model
from waveflow.train.config import load_run_config

METRICS = ("nll_bits", "stft_distance", "log_mel_l1", "mcd_db", "pesq_wb", "stoi", "vuv_f1", "f0_rmse_cents")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", action="append", default=[], metavar="NAME=CHECKPOINT", help="a model to score")
    p.add_argument("--untrained", action="append", default=[], metavar="CONFIG[,KEY=VALUE...]",
                   help="also score a freshly initialised model of this bundled config, with optional overrides "
                   "(e.g. starter,model.prior=spectral)")
    p.add_argument("--seen", type=Path, required=True, help="LJSpeech-layout corpus of the training voices")
    p.add_argument("--exclude-train", nargs="*", type=Path, default=[], metavar="LIST",
                   help="split lists (id|path) whose clips were trained on: left out of --seen")
    p.add_argument("--unseen", type=Path, help="LJSpeech-layout corpus of voices never trained on")
    p.add_argument("--set", action="append", default=[], metavar="NAME=DIR",
                   help="another LJSpeech-layout corpus to score, under this name (e.g. low voices)")
    p.add_argument("--per-set", type=int, default=12, help="clips per set, spread over the voices")
    p.add_argument("--sigma", type=float, default=None,
                   help="latent std for every model (default: each model's own recommendation, else 0.6)")
    p.add_argument("--griffin-lim-iters", type=int, default=32)
    p.add_argument("--no-f0", action="store_true", help="skip F0 and V/UV (pyin is slow)")
    p.add_argument("--json", type=Path, help="also write the record here")
    return p


def held_out(corpus: Path, excluded: list[Path], per_set: int) -> list[Path]:
    """Up to ``per_set`` clips of ``corpus`` that no excluded list names, taken round-robin over voices
    (a clip id's prefix before the last ``-`` is its voice)."""
    trained = set()
    for lst in excluded:
        trained |= {line.split("|")[0] for line in lst.read_text().splitlines() if line.strip()}
    ids = [line.split("|")[0] for line in (corpus / "metadata.csv").read_text().splitlines() if line.strip()]
    by_voice: dict[str, list[str]] = {}
    for i in sorted(set(ids) - trained):
        by_voice.setdefault(i.rsplit("-", 1)[0], []).append(i)
    picked: list[str] = []
    while len(picked) < per_set and any(by_voice.values()):
        for voice in sorted(by_voice):
            if by_voice[voice] and len(picked) < per_set:
                picked.append(by_voice[voice].pop(0))
    return [corpus / "wavs" / f"{i}.wav" for i in picked]


def models(args) -> list[tuple[str, LoadedCheckpoint]]:
    out = []
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--model {spec!r}: expected NAME=CHECKPOINT")
        out.append((name, load_checkpoint(path, weight_norm=False)))
    for spec in args.untrained:
        config, *overrides = spec.split(",")
        cfg = load_run_config(config, overrides)
        torch.manual_seed(0)
        model = build_model(cfg.model).remove_weight_norm()
        name = f"untrained-{config}" + "".join(f"-{o.split('=', 1)[1]}" for o in overrides)
        out.append((name, LoadedCheckpoint(model, cfg.mel, "untrained", {"name": name})))
    return out


def score(name: str, ck: LoadedCheckpoint, files: list[Path], args, with_gl: bool) -> dict[str, dict]:
    sigma = args.sigma if args.sigma is not None else float(ck.meta.get("sigma", 0.6))
    vocoder = Vocoder(ck, device="cpu", sigma=sigma)
    which = MetricSet(f0=not args.no_f0)
    result = evaluate(vocoder, files, checkpoint=ck, which=which, progress=False,
                      griffin_lim_iters=args.griffin_lim_iters if with_gl else 0)
    for failure in result["failures"]:
        print(f"{name}: failed: {failure['file']}: {failure['reason']}", file=sys.stderr)
    rows = {name: {"sigma": sigma, **pick(result["table"]["waveflow"])}}
    if with_gl:
        rows["griffin-lim"] = pick(result["table"]["griffin-lim"])
    return rows


def pick(table: dict) -> dict:
    return {m: (None if table.get(m) is None else round(float(table[m]), 4)) for m in METRICS if m in table}


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    torch.set_grad_enabled(False)
    sets = {"seen voices, held-out utterances": held_out(args.seen, args.exclude_train, args.per_set)}
    if args.unseen:
        sets["unseen voices"] = held_out(args.unseen, [], args.per_set)
    for spec in args.set:
        name, sep, folder = spec.partition("=")
        if not sep:
            raise SystemExit(f"--set {spec!r}: expected NAME=DIR")
        sets[name] = held_out(Path(folder), [], args.per_set)
    scored = models(args)
    table: dict[str, dict[str, dict]] = {}
    for set_name, files in sets.items():
        print(f"{set_name}: {len(files)} clips", file=sys.stderr)
        for k, (name, ck) in enumerate(scored):
            table.setdefault(set_name, {}).update(score(name, ck, files, args, with_gl=k == 0))
            print(f"  {name}: {table[set_name][name]}", file=sys.stderr, flush=True)
    rec = record("copy_synthesis_quality", config=",".join(n for n, _ in scored), device=torch.device("cpu"),
                 dtype="float32", sets={k: [str(f) for f in v] for k, v in sets.items()}, table=table)
    emit(rec, args.json, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
