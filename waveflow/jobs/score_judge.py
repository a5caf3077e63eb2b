"""Judging a scored corpus (:mod:`.score`'s records): which clips are unlike the rest, and why, in words.

Relative to the corpus, with robust statistics (median, and 1.4826 x the median absolute deviation for the
spread, floored so that a corpus of near-identical clips does not call a hair's difference an outlier):

- **the model**, at both tails: the bits per sample after what the clip's level explains (a robust line:
  louder clips cost more bits), and the surprise (bits over what the model expects for the clip's own mel,
  which takes out voice and loudness). ``|z| >= z`` on either: ``not like the rest: +3.1 bits/sample (z
  6.2)``. Frame by frame: each clip's peak surprise against the corpus's peaks; stretches above the usual
  peak are the clip's ``times``, and a very strong one is a reason of its own when no fact explains it;
- **the facts** (:mod:`.score_facts`), each in words: clipping, clicks, bursts, hum, DC offset, band limit,
  quantisation, silence, abrupt ends, sample rate, level; those that depend on the corpus (band limit,
  quantisation, silence, ends, rate, level) are compared with the corpus's median.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

HUM_LINE_DB = 11.0  # a 50/60 Hz line this far above its neighbourhood, in both halves of the clip
EDGE_FRAMES = 2  # frames at each end of a clip left out of its surprising stretches
MIN_CORPUS = 5  # clips needed before the model's view judges a clip against the rest (the facts judge any count)
NYQUISTS = (4000.0, 5512.5, 8000.0, 11025.0, 12000.0, 16000.0, 22050.0, 24000.0)  # of common rates


@dataclass(frozen=True)
class Stat:
    """A robust location and spread; ``z(v)`` is ``(v - median) / spread``."""

    median: float
    spread: float

    def z(self, value: float) -> float:
        return (value - self.median) / self.spread


def robust(values, floor: float) -> Stat:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if not v.size:
        return Stat(0.0, floor)
    median = float(np.median(v))
    return Stat(median, max(1.4826 * float(np.median(np.abs(v - median))), floor))


def theil_sen(x: np.ndarray, y: np.ndarray, most: int = 1500) -> tuple[float, float]:
    """``(slope, intercept)`` of a robust line: the median of pairwise slopes (of at most ``most`` points,
    spread over the corpus), then the median intercept."""
    if len(x) > most:
        keep = np.linspace(0, len(x) - 1, most).astype(int)
        x, y = x[keep], y[keep]
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    ok = np.abs(dx) > 1e-9
    slope = float(np.median((y[j] - y[i])[ok] / dx[ok])) if ok.any() else 0.0
    return slope, float(np.median(y - slope * x))


def judge(records: list[dict], z: float = 5.0) -> list[dict]:
    """Report items, most suspect first: ``path``, ``bits_per_sample``, ``prior_bits``, ``expected_bits``,
    ``flagged``, ``reasons``, ``times``, ``z`` (the model's z-scores) and the facts a reader wants beside them."""
    if not records:
        return []
    corpus = Corpus(records)
    items = [corpus.item(r, z) for r in records]
    items.sort(key=lambda it: (not it["flagged"], -it["suspicion"], it["path"]))
    return items


class Corpus:
    """The corpus's robust statistics, and the judgement of one record against them."""

    def __init__(self, records: list[dict]):
        facts = [r["facts"] for r in records]
        self.n = len(records)
        level = np.array([f["level_dbfs"] for f in facts])
        bits = np.array([r["bits_per_sample"] for r in records])
        self.line = theil_sen(level, bits) if self.n >= 12 else (0.0, float(np.median(bits)))
        self.residual = robust(bits - self.line[0] * level - self.line[1], 0.1)
        self.surprise = robust([r["bits_per_sample"] - r["expected_bits"] for r in records], 0.05)
        self.peaks = robust([_frame_surprise(r).max(initial=0.0) for r in records], 0.1)
        self.stat = {key: robust([f.get(key) for f in facts], floor) for key, floor in (
            ("bandwidth_hz", 200.0), ("distinct_bits", 0.3), ("silence_fraction", 0.05), ("longest_silence_s", 0.1),
            ("end_db", 3.0), ("start_db", 3.0), ("dc", 0.002), ("level_dbfs", 2.0))}
        self.rate = Counter(f["sample_rate"] for f in facts).most_common(1)[0][0]
        grids = Counter(f["bits"] for f in facts if f.get("bits")).most_common(1)
        self.bits = grids[0][0] if grids else None  # the corpus's usual sample resolution

    def item(self, record: dict, z: float) -> dict:
        f = record["facts"]
        reasons = self.fact_reasons(record)
        residual = record["bits_per_sample"] - self.line[0] * f["level_dbfs"] - self.line[1]
        scores = {"bits": self.residual.z(residual),
                  "surprise": self.surprise.z(record["bits_per_sample"] - record["expected_bits"])}
        key = max(scores, key=lambda k: abs(scores[k]))
        if self.n >= MIN_CORPUS and abs(scores[key]) >= z:
            stat = self.residual if key == "bits" else self.surprise
            delta = scores[key] * stat.spread
            reasons.append(f"not like the rest: {delta:+.1f} bits/sample (z {scores[key]:.1f})")
        regions, peak = self.regions(record, z)
        events = [[t - 0.005, t + 0.005] for t in record["clicks"]] + record["bursts"]
        unexplained = [r for r in regions if r[2] >= 3 * z and not any(_overlap(r, e) for e in events)]
        if unexplained and self.n >= MIN_CORPUS:
            a, b, zz = max(unexplained, key=lambda r: r[2])
            reasons.append(f"surprising at {a:.2f}-{b:.2f} s (z {zz:.0f})")
        times = _merge([r[:2] for r in regions] + events)
        return {
            "path": record["path"], "flagged": bool(reasons), "reasons": reasons,
            "times": [[round(a, 3), round(b, 3)] for a, b in times],
            "bits_per_sample": round(record["bits_per_sample"], 4), "prior_bits": round(record["prior_bits"], 4),
            "expected_bits": round(record["expected_bits"], 4),
            "z": {k: round(v, 2) for k, v in scores.items()} | {"frames": round(peak, 1)},
            "suspicion": round(max([abs(v) for v in scores.values()] + [peak / 2] + [10.0] * len(reasons)), 2),
            "seconds": round(f["seconds"], 3), "sample_rate": f["sample_rate"],
            "facts": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in f.items()},
        }

    def regions(self, record: dict, z: float) -> tuple[list[tuple[float, float, float]], float]:
        """Stretches of frames whose surprise (less the clip's median) stands ``z`` spreads above the corpus's
        median of such peaks (one per clip), and at least 1 bit per sample: ``([(start_s, end_s, peak z)],
        the clip's peak z)``."""
        d = _frame_surprise(record)
        if not d.size:
            return [], 0.0
        zs = (d - self.peaks.median) / self.peaks.spread
        hit = (zs >= z) & (d >= 1.0)
        step = record["frame_seconds"]
        out, edges = [], np.diff(np.r_[0, hit.astype(np.int8), 0])
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            out.append((a * step, b * step, float(zs[a:b].max())))
        return out, float(zs.max())

    def fact_reasons(self, record: dict) -> list[str]:
        f, s, out = record["facts"], self.stat, []
        if f["peak"] > 1.0:
            out.append(f"over full scale: peak {f['peak']:.2f} (float samples beyond ±1: clipped when written as PCM)")
        if f["clipped_samples"] >= 8 and f["clipped_runs"] >= 2:
            out.append(f"clipping: {f['clipped_samples']} samples in {f['clipped_runs']} runs")
        if record["clicks"]:
            ts = record["clicks"]
            more = f" (and {len(ts) - 4} more)" if len(ts) > 4 else ""
            out.append(f"click{'s' if len(ts) > 1 else ''} at {', '.join(f'{t:.2f}' for t in ts[:4])} s{more}")
        for a, b in record["bursts"][:3]:
            out.append(f"burst at {a:.2f}-{b:.2f} s")
        if f["hum_line_db"] >= HUM_LINE_DB:
            out.append(f"hum at {f['hum_hz']:.0f} Hz ({f['hum_db']:.0f} dB)")
        if abs(f["dc"]) >= 0.01 and abs(s["dc"].z(f["dc"])) >= 5:
            out.append(f"DC offset {f['dc']:+.3f}")
        bw = s["bandwidth_hz"]
        if f["bandwidth_hz"] < 0.8 * bw.median and bw.z(f["bandwidth_hz"]) <= -3:
            source = next((2 * n for n in NYQUISTS if abs(f["bandwidth_hz"] - n) <= 0.04 * n), None)
            hint = f", upsampled from {source / 1000:g} kHz?" if source and source < f["sample_rate"] else ""
            out.append(f"band-limited to {f['bandwidth_hz'] / 1000:.1f} kHz (most clips: {bw.median / 1000:.1f} "
                       f"kHz{hint})")
        if f["distinct_bits"] <= min(12.0, s["distinct_bits"].median - 3):
            out.append(f"quantised: {f['distinct_values']} distinct sample values (~{f['distinct_bits']:.1f} bits)")
        elif f.get("bits") and self.bits and f["bits"] <= min(12, self.bits - 3):
            out.append(f"quantised to {f['bits']} bits (most clips: {self.bits})")
        out += self.silence_reasons(f, record.get("longest_silence"))
        if f["sample_rate"] != self.rate:
            out.append(f"sample rate {f['sample_rate']} Hz (most clips: {self.rate} Hz)")
        if abs(f["level_dbfs"] - s["level_dbfs"].median) >= 15:
            word = "quieter" if f["level_dbfs"] < s["level_dbfs"].median else "louder"
            out.append(f"much {word} than the rest ({f['level_dbfs'] - s['level_dbfs'].median:+.0f} dB)")
        return out

    def silence_reasons(self, f: dict, longest: list[float] | None) -> list[str]:
        s, out = self.stat, []
        if f["silence_fraction"] >= 0.5 and f["silence_fraction"] >= s["silence_fraction"].median + 0.25:
            out.append(f"mostly silence ({100 * f['silence_fraction']:.0f}%)")
        elif longest and f["longest_silence_s"] >= max(1.0, 3 * s["longest_silence_s"].median,
                                                       s["longest_silence_s"].median + 1.0):
            out.append(f"long silence: {f['longest_silence_s']:.1f} s at {longest[0]:.1f}-{longest[1]:.1f} s")
        for edge, word in (("end_db", "ends"), ("start_db", "starts")):
            if f[edge] >= -12 and f[edge] >= f.get("floor_db", -99.0) + 15 and s[edge].median <= -25:
                out.append(f"{word} abruptly ({f[edge]:+.0f} dB re speech in its {'last' if edge == 'end_db' else 'first'}"
                           " 30 ms: cut mid-speech?)")
        return out


def _frame_surprise(record: dict) -> np.ndarray:
    """Bits per sample of each frame over the model's expectation, less the clip's median; the first and last
    :data:`EDGE_FRAMES` (a lapped transform's own) are 0."""
    d = np.asarray(record["profile"], dtype=np.float64) - np.asarray(record["expected_profile"], dtype=np.float64)
    if d.size <= 2 * EDGE_FRAMES:
        return np.zeros_like(d)
    d = d - np.median(d)
    d[:EDGE_FRAMES] = d[-EDGE_FRAMES:] = 0.0
    return d


def _overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _merge(spans: list[list[float]]) -> list[list[float]]:
    out: list[list[float]] = []
    for a, b in sorted(map(list, spans)):
        if out and a <= out[-1][1] + 0.02:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([max(0.0, a), b])
    return out
