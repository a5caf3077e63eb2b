"""Plant known defects into copies of a corpus's clips, to check a data checker (``waveflow score``) against
the truth: what was planted where, with which parameters, drawn at random within wide ranges (seeded).

    python scripts/plant_defects.py data/train6 data/train6-planted --every 24 --seed 3

copies the LJSpeech folder (``metadata.csv`` + ``wavs/``) and replaces one clip of every ``--every`` with a
planted version, one defect kind per clip, in turn; ``planted.json`` records the truth. ``tests/test_score.py``
imports :func:`plant` and :data:`KINDS` from here.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

# kind -> the word the checker's reason must contain
KINDS = {
    "clipping": "clipping", "click": "click", "hum": "hum", "burst": "burst", "band-limited": "band-limited",
    "silence": "silence", "truncated": "abruptly", "quantised": "quantised", "dc": "DC offset",
    "sample-rate": "sample rate",
}
NOT_SPEECH = ("tones", "music", "noise")


def active_rms(x: np.ndarray) -> float:
    """RMS of the samples above 1 % of the peak (the speech, not its pauses)."""
    loud = x[np.abs(x) > 0.01 * np.abs(x).max()]
    return float(np.sqrt(np.mean(loud**2))) if loud.size else 1e-3


def plant(kind: str, x: np.ndarray, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, int, dict]:
    """``(audio, its rate, truth)``: ``x`` (float, mono, in [-1, 1]) with one defect of ``kind`` planted.
    ``truth`` has the drawn parameters and, where the defect has a place, ``times`` ``[[start_s, end_s]]``."""
    x = np.asarray(x, dtype=np.float64).copy()
    n = len(x)
    if kind == "clipping":
        gain, level = rng.uniform(2.0, 12.0), rng.uniform(0.5, 1.0)
        return np.clip(x * gain, -1, 1) * level, rate, {"gain": gain, "level": level}
    if kind == "click":
        count, times = int(rng.integers(1, 4)), []
        for _ in range(count):
            amp, width = rng.uniform(0.2, 0.9), int(rng.integers(1, 4))
            quiet = [k for k in rng.integers(0, n - 4, 400) if np.abs(x[max(0, k - rate // 66):k + rate // 66]).max()
                     <= amp / 6]
            k = int(quiet[0]) if quiet else int(rng.integers(0, n - 4))
            x[k:k + width] += amp * rng.choice([-1.0, 1.0])
            times.append([k / rate, (k + width) / rate])
        return np.clip(x, -1, 1), rate, {"count": count, "times": times}
    if kind == "hum":
        f0, level = float(rng.choice([50.0, 60.0])), rng.uniform(-40.0, -15.0)
        t = np.arange(n) / rate
        amp = active_rms(x) * 10 ** (level / 20) * np.sqrt(2)
        harmonics = int(rng.integers(1, 4))
        for k in range(1, harmonics + 1):
            x += amp / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
        return np.clip(x, -1, 1), rate, {"hz": f0, "level_db": level, "harmonics": harmonics}
    if kind == "burst":
        length, level = int(rng.uniform(0.06, 0.4) * rate), rng.uniform(0.0, 12.0)
        k = int(rng.integers(0, max(1, n - length)))
        x[k:k + length] += active_rms(x) * 10 ** (level / 20) * rng.standard_normal(min(length, n - k))
        return np.clip(x, -1, 1), rate, {"level_db": level, "times": [[k / rate, (k + length) / rate]]}
    if kind == "band-limited":
        low = int(rng.uniform(6000, 12000))
        y = soxr.resample(soxr.resample(x, rate, low, quality="HQ"), low, rate, quality="HQ")[:n]
        return np.clip(np.pad(y, (0, n - len(y))), -1, 1), rate, {"from_hz": low}
    if kind == "silence":
        seconds, where = rng.uniform(1.5, 5.0), str(rng.choice(["start", "middle", "end"]))
        gap = rng.integers(-1, 2, int(seconds * rate)) * 2.0**-15 * rng.integers(0, 2)  # zeros or 1-LSB dither
        k = {"start": 0, "end": n, "middle": n // 2}[where]
        return np.concatenate([x[:k], gap, x[k:]]), rate, {"seconds": seconds, "where": where}
    if kind == "truncated":
        frames = np.abs(x[: n // 256 * 256]).reshape(-1, 256).max(1)
        loud = np.flatnonzero(frames > 0.3 * frames.max())
        loud = loud[(loud > 0.35 * len(frames)) & (loud < 0.85 * len(frames))]
        cut = int(rng.choice(loud)) * 256 + int(rng.integers(0, 256)) if loud.size else int(0.6 * n)
        return x[:cut], rate, {"cut_s": cut / rate}
    if kind == "quantised":
        bits, gain = int(rng.integers(4, 10)), float(rng.choice([1.0, rng.uniform(0.5, 0.95)]))
        step = 2.0 ** (1 - bits)
        return np.round(x / step) * step * gain, rate, {"bits": bits, "gain": gain}
    if kind == "dc":
        offset = rng.uniform(0.02, 0.15) * rng.choice([-1.0, 1.0])
        return np.clip(x + offset, -1, 1), rate, {"offset": offset}
    if kind == "sample-rate":
        new = int(rng.choice([8000, 11025, 16000, 44100, 48000]))
        return soxr.resample(x, rate, new, quality="HQ"), new, {"rate": new}
    if kind in NOT_SPEECH:
        return not_speech(kind, n, rate, rng)
    raise ValueError(f"unknown defect kind {kind!r}")


def not_speech(kind: str, n: int, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, int, dict]:
    """A clip of ``n`` samples that is not speech: steady ``tones``, ``music`` (notes with harmonics and
    envelopes) or ``noise`` (white or brown-ish), at a random level."""
    t = np.arange(n) / rate
    if kind == "tones":
        freqs = rng.uniform(100, 2000, int(rng.integers(1, 5)))
        y = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in freqs)
        return 10 ** (rng.uniform(-20, -6) / 20) * y / np.abs(y).max(), rate, {"hz": freqs.tolist()}
    if kind == "music":
        y, notes = np.zeros(n), int(rng.integers(4, 12))
        bounds = np.sort(rng.integers(0, n, notes - 1))
        for start, end in zip(np.r_[0, bounds], np.r_[bounds, n]):
            f, m = 110 * 2 ** (rng.integers(0, 36) / 12), end - start
            env = np.exp(-np.arange(m) / (rng.uniform(0.1, 0.8) * rate))
            y[start:end] += env * sum(np.sin(2 * np.pi * f * k * t[:m]) / k**1.5 for k in range(1, 7))
        return 10 ** (rng.uniform(-18, -6) / 20) * y / (np.abs(y).max() + 1e-9), rate, {"notes": notes}
    if kind == "noise":
        y = rng.standard_normal(n)
        if rng.random() < 0.5:
            y = np.cumsum(y) - np.convolve(np.cumsum(y), np.ones(64) / 64, mode="same")
        return 10 ** (rng.uniform(-30, -10) / 20) * y / y.std(), rate, {}
    raise ValueError(kind)


def plant_corpus(src: Path, dst: Path, every: int, seed: int, kinds=(*KINDS, *NOT_SPEECH)) -> dict:
    """Copy the LJSpeech folder ``src`` to ``dst`` and plant one defect (kinds in turn) in every ``every``-th
    clip; returns (and writes as ``dst/planted.json``) ``{path: {"kind", ...truth}}``."""
    rng = np.random.default_rng(seed)
    ids = [line.split("|")[0] for line in (src / "metadata.csv").read_text().splitlines() if line.strip()]
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    truth = {}
    for i, uid in enumerate(ids[every // 2::every]):
        kind = kinds[i % len(kinds)]
        path = dst / "wavs" / f"{uid}.wav"
        audio, rate = sf.read(str(path))
        y, new_rate, info = plant(kind, audio, rate, rng)
        sf.write(str(path), y, new_rate, subtype="PCM_16")
        truth[str(path)] = {"kind": kind, **info}
    (dst / "planted.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path, help="an LJSpeech folder (metadata.csv + wavs/)")
    p.add_argument("dst", type=Path, help="the planted copy (replaced)")
    p.add_argument("--every", type=int, default=24, help="plant into one clip of this many")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default=",".join((*KINDS, *NOT_SPEECH)), help="defect kinds, in turn")
    args = p.parse_args()
    truth = plant_corpus(args.src, args.dst, args.every, args.seed, tuple(args.kinds.split(",")))
    print(json.dumps({"planted": len(truth), "kinds": sorted({t["kind"] for t in truth.values()})}))


if __name__ == "__main__":
    main()
