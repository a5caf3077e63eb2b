#!/usr/bin/env python
"""Copy synthesis (``waveflow synth``) against vocoding (``waveflow vocode``) on the same mels, side by side.

Every mode works on the same clips: ``vocode`` vocodes their mels (computed once, beforehand, with the voice's
own features), ``synth`` does copy synthesis of the audio (resampling if the clips are not at the voice's rate,
the mel, then the same vocoding), so the difference between the two is what synth adds. The ``cli-*`` modes
run the commands end to end in a fresh process (``--no-progress``, outputs overwritten), start-up and model
load included: what a user waits for. In-process modes are timed after a warm-up; figures are the median and
the best of ``--repeats``, as real-time factors (wall time / audio time, below 1 is faster than real time).

    python scripts/bench_synth.py                                   # the starter voice, 4 synthetic clips
    python scripts/bench_synth.py --audio data/heldout_espeak/wavs --limit 6 --json synth.json
    python scripts/bench_synth.py --rate 44100 --modes vocode,synth  # clips that need resampling

The record carries the torch threads, ``OMP_WAIT_POLICY`` (``PASSIVE`` unless set, as ``import waveflow`` sets
it) and the machine's load average before and after: on a machine whose cores are shared (another training
run), timings depend on them more than on waveflow.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# As `import waveflow` does when it loads torch (the commands' case): idle OpenMP threads sleep. Here torch is
# loaded first, so say it before; OMP_WAIT_POLICY=ACTIVE python scripts/bench_synth.py measures spinning ones.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import soundfile as sf
import torch
from benchlib import emit, record, resolve_device, time_calls

from waveflow.audio import load_audio
from waveflow.inference import Vocoder
from waveflow.mel_io import save_mel

MODES = ("vocode", "synth", "cli-vocode", "cli-synth")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default="starter", help="model file or bundled voice")
    p.add_argument("--audio", nargs="*", type=Path, default=[], help="audio files or folders (default: synthetic)")
    p.add_argument("--limit", type=int, default=4, help="clips taken from --audio (or made)")
    p.add_argument("--seconds", type=float, default=2.5, help="length of each synthetic clip")
    p.add_argument("--rate", type=int, default=22050, help="sample rate of the synthetic clips")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", type=Path, help="also write the result here")
    return p


def speechlike(seconds: float, rate: int, seed: int) -> np.ndarray:
    """A voiced, formant-shaped buzz with pauses (as tests/demo_server.py makes): no TTS engine needed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(120 + 25 * seed + 30 * np.sin(2 * np.pi * 1.5 * t)) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 25)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)
    x = x * (np.sin(2 * np.pi * 2 * t) > -0.7) + 0.01 * rng.standard_normal(t.size)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def clips(args, folder: Path) -> list[Path]:
    """The clips as files in ``folder/audio`` (copies of --audio, or synthetic ones)."""
    (folder / "audio").mkdir(parents=True)
    found = []
    for path in args.audio:
        found += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES) if path.is_dir() else [path]
    paths = []
    for i in range(args.limit):
        out = folder / "audio" / f"clip{i:02d}.wav"
        if found:
            if i >= len(found):
                break
            audio, rate = load_audio(found[i])
        else:
            audio, rate = speechlike(args.seconds, args.rate, i), args.rate
        sf.write(out, audio, rate, subtype="PCM_16")
        paths.append(out)
    if not paths:
        raise SystemExit("error: no audio clips found in --audio")
    return paths


def in_process(mode: str, vocoder: Vocoder, audio: list[tuple[np.ndarray, int]], mels: list[torch.Tensor], args):
    if mode == "vocode":
        run = lambda: [vocoder.vocode(m, seed=i) for i, m in enumerate(mels)]
    else:
        run = lambda: [vocoder.copy_synthesis(a, r, seed=i) for i, (a, r) in enumerate(audio)]
    timing = time_calls(run, vocoder.device, args.warmup, args.repeats)
    return timing.times


def command(mode: str, folder: Path, args) -> list[float]:
    """``waveflow vocode`` / ``waveflow synth`` end to end, ``--repeats`` times, each in a fresh process."""
    name = mode.removeprefix("cli-")
    source = folder / ("mels" if name == "vocode" else "audio")
    cmd = [sys.executable, "-m", "waveflow", name, str(source), "-o", str(folder / f"out-{name}"), "--checkpoint",
           str(args.checkpoint), "--device", args.device, "--overwrite", "--no-progress"]
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return times


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        get_parser().error(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    load_before = os.getloadavg()
    vocoder = Vocoder(args.checkpoint, device=device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        folder = Path(tmp)
        paths = clips(args, folder)
        audio = [load_audio(p) for p in paths]
        mels = [vocoder.mel(a, r).cpu() for a, r in audio]
        (folder / "mels").mkdir()
        for path, mel in zip(paths, mels):
            save_mel(folder / "mels" / f"{path.stem}.npy", mel)
        seconds = sum(m.shape[1] for m in mels) * vocoder.hop_length / vocoder.sample_rate
        for mode in modes:
            times = command(mode, folder, args) if mode.startswith("cli-") else in_process(mode, vocoder, audio, mels, args)
            row = {"mode": mode, "runs": times, "rtf": float(np.median(times)) / seconds,
                   "rtf_best": min(times) / seconds}
            rows.append(row)
            print(f"{mode:<11} RTF {row['rtf']:.3f} (best {row['rtf_best']:.3f}) on {seconds:.1f} s of audio",
                  file=sys.stderr, flush=True)
    base = {r["mode"]: r["rtf"] for r in rows}
    for r in rows:  # what synth adds over vocode, in the same setting
        other = {"synth": "vocode", "cli-synth": "cli-vocode"}.get(r["mode"])
        if other in base:
            r["vs_" + other] = r["rtf"] / base[other]
    figure = {"name": "real-time factor of synth / vocode (in process)",
              "value": base["synth"] / base["vocode"] if {"synth", "vocode"} <= set(base) else None}
    emit(record(figure, config=str(args.checkpoint), device=device, dtype="float32", benchmark="bench_synth",
                clips=len(mels), audio_seconds=seconds, clip_rate=audio[0][1], model_rate=vocoder.sample_rate,
                threads=torch.get_num_threads(), omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                load_average_before=load_before, load_average_after=os.getloadavg(), warmup=args.warmup,
                repeats=args.repeats, modes=rows), args.json, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
