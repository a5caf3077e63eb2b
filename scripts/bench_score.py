#!/usr/bin/env python
"""How long ``waveflow score`` takes per hour of audio: the signal facts and the model's part, apart.

Every clip is scored as the command scores it (:func:`waveflow.jobs.score.score_record`: reading, facts,
resampling, the exact NLL, the model's own sample of the mel and both profiles), once each, in order: clips of
different lengths, as in a corpus (the first clip is a warm-up and not counted). ``--onednn`` measures with
PyTorch's oneDNN convolutions left on (the command turns them off on CPU: they are rebuilt for every new input
length).

    python scripts/bench_score.py --audio data/train6/wavs --limit 24 --threads 2 --json score-bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `import waveflow` sets it

import torch
from benchlib import emit, record, resolve_device

from waveflow.checkpoints import load_checkpoint
from waveflow.jobs import score as score_job
from waveflow.jobs.discover import Item
from waveflow.jobs.score_facts import read_clip, signal_facts


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default="starter", help="model file or bundled voice")
    p.add_argument("--audio", type=Path, required=True, help="a folder of audio clips")
    p.add_argument("--limit", type=int, default=24, help="clips scored (the first is a warm-up)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--onednn", action="store_true", help="leave oneDNN convolutions on (slower on CPU)")
    p.add_argument("--json", type=Path, help="also write the result here")
    return p


def main() -> None:
    args = get_parser().parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    ck = load_checkpoint(args.checkpoint, weight_norm=False)
    scorer = score_job.Scorer(ck.model.float().to(device).requires_grad_(False), ck.mel_config, device, ck.name)
    if args.onednn:  # the command's context, replaced by one that changes nothing
        score_job.plain_cpu_convolutions = lambda device: contextlib.nullcontext()
    files = sorted(p for p in args.audio.iterdir() if p.suffix.lower() in (".wav", ".flac"))[: args.limit]
    options = score_job.ScoreOptions(progress=False)
    audio_s = facts_s = total_s = 0.0
    load = os.getloadavg()
    for i, path in enumerate(files):
        start = time.perf_counter()
        facts = signal_facts(read_clip(path))
        middle = time.perf_counter()
        score_job.score_record(Item(path, Path(path.name)), path, scorer, options)  # facts again, and the model
        end = time.perf_counter()
        if i:
            audio_s += facts.values["seconds"]
            facts_s += middle - start
            total_s += end - middle
    model_s = total_s - facts_s
    emit(record("score", config=args.checkpoint, device=device, dtype="float32", clips=len(files) - 1,
                audio_seconds=round(audio_s, 2), wall_seconds=round(total_s, 2), rtf=round(total_s / audio_s, 4),
                minutes_per_hour_of_audio=round(60 * total_s / audio_s, 1),
                facts_minutes_per_hour=round(60 * facts_s / audio_s, 2),
                model_minutes_per_hour=round(60 * model_s / audio_s, 1), threads=torch.get_num_threads(),
                onednn=args.onednn, load_before=[round(x, 2) for x in load],
                load_after=[round(x, 2) for x in os.getloadavg()]), args.json, indent=2)


if __name__ == "__main__":
    main()
