"""The report of ``waveflow score``: ``score.json``, ``score.csv``, ``exclude.txt``, ``score.png`` and a
one-screen summary. Every file is written atomically (complete or absent)."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

from ..audio import atomic_path
from .score_judge import MIN_CORPUS
from .summary import printable

CSV_FACTS = ("seconds", "sample_rate", "level_dbfs", "peak", "clipped_samples", "dc", "silence_fraction",
             "bandwidth_hz", "above_4k_db", "distinct_values", "bits", "hum_hz", "hum_line_db")
MAX_PICTURES = 8  # flagged clips drawn in score.png


def write_report(report_dir: Path, model: dict, items: list[dict], failures: list[dict], missing: int = 0,
                 pictures: bool = True) -> list[str]:
    """Write the report's files; returns notes for the user (a missing plotting library, say)."""
    report = {"model": model, "count": len(items), "flagged": sum(it["flagged"] for it in items),
              "complete": not missing, "not_scored": missing, "failures": failures, "clips": items}
    with atomic_path(report_dir / "score.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    with atomic_path(report_dir / "score.csv") as tmp:
        tmp.write_text(_csv(items))
    with atomic_path(report_dir / "exclude.txt") as tmp:  # raw bytes: any name the file system allows
        tmp.write_bytes(b"".join(os.fsencode(it["path"]) + b"\n" for it in items if it["flagged"]))
    if not pictures:
        return []
    try:
        import matplotlib
    except ModuleNotFoundError:
        return ["no score.png: it needs matplotlib (pip install \"waveflow[demo]\")"]
    matplotlib.use("Agg")
    with atomic_path(report_dir / "score.png") as tmp:
        draw(items, tmp)
    return []


def _csv(items: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["path", "flagged", "bits_per_sample", "prior_bits", "expected_bits", "z_bits", "z_surprise",
                     "z_frames", *CSV_FACTS, "reasons", "times"])
    for it in items:
        writer.writerow([printable(it["path"]), int(it["flagged"]), it["bits_per_sample"], it["prior_bits"],
                         it["expected_bits"], it["z"]["bits"], it["z"]["surprise"], it["z"]["frames"],
                         *(it["facts"].get(k) for k in CSV_FACTS), "; ".join(it["reasons"]),
                         " ".join(f"{a:.2f}-{b:.2f}" for a, b in it["times"])])
    return out.getvalue()


def draw(items: list[dict], path: Path) -> None:
    """The distribution of bits per sample with the flagged clips marked, then each flagged clip's waveform
    and spectrogram with its surprising stretches shaded."""
    import matplotlib.pyplot as plt

    from .score_facts import read_clip

    flagged = [it for it in items if it["flagged"]][:MAX_PICTURES]
    fig, axes = plt.subplots(1 + len(flagged), 1, figsize=(10, 2.2 + 2.4 * len(flagged)), squeeze=False)
    ax = axes[0, 0]
    bits = np.array([it["bits_per_sample"] for it in items])
    ax.hist(bits, bins=min(60, max(10, len(bits) // 4)), color="0.7")
    for it in items:
        if it["flagged"]:
            ax.axvline(it["bits_per_sample"], color="crimson", lw=1)
    ax.set_xlabel("bits per sample (exact NLL)")
    ax.set_title(f"{len(items)} clips, {sum(it['flagged'] for it in items)} flagged (red)")
    for ax, it in zip(axes[1:, 0], flagged):
        _clip_panel(ax, it, read_clip)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)
    plt.close(fig)


def _clip_panel(ax, item: dict, read_clip) -> None:
    """Spectrogram (grey) with the waveform on top, surprising stretches shaded red."""
    try:
        clip = read_clip(item["path"])
    except (OSError, ValueError) as e:
        ax.text(0.5, 0.5, f"cannot read: {e}", ha="center", transform=ax.transAxes)
        return
    x, rate = clip.audio, clip.rate
    with np.errstate(divide="ignore"):  # digital silence has no level
        ax.specgram(x, NFFT=512, Fs=rate, noverlap=384, cmap="Greys", vmin=-130)
    top = rate / 2
    ax.plot(np.arange(len(x)) / rate, top * (0.5 + 0.45 * x / max(np.abs(x).max(), 1e-9)), color="navy", lw=0.3)
    for a, b in item["times"]:
        ax.axvspan(a, b, color="crimson", alpha=0.25)
    ax.set_ylim(0, top)
    ax.set_ylabel("Hz")
    reasons = "; ".join(item["reasons"])
    ax.set_title(f"{printable(Path(item['path']).name)}: {reasons[:110]}", fontsize=8)


def print_summary(items: list[dict], failures: list[dict], report_dir: Path, model: dict, missing: int = 0,
                  stream=None, most: int = 15) -> None:
    """One screen on ``stream`` (stdout): how many clips, how many flagged and why (most suspect first), where
    the report is, and how to train without them."""
    stream = stream or sys.stdout
    flagged = [it for it in items if it["flagged"]]
    seconds = sum(it["seconds"] for it in items)
    print(f"scored {len(items)} clips ({seconds / 60:.1f} min of audio) with {model.get('name') or model['checkpoint']}"
          f": {len(flagged)} flagged, {len(items) - len(flagged)} like the rest", file=stream)
    if missing:
        print(f"  {missing} clips are not scored yet (other shards, or failed): the judgement covers the others",
              file=stream)
    if 0 < len(items) < MIN_CORPUS:
        print(f"  {len(items)} clip{'s are' if len(items) > 1 else ' is'} too few to tell what is unlike the rest "
              f"(that takes at least {MIN_CORPUS}): only the signal facts (clipping, clicks, hum, ...) judged here",
              file=stream)
    if items:
        bits = np.array([it["bits_per_sample"] for it in items])
        print(f"  bits per sample: median {np.median(bits):.2f}, from {bits.min():.2f} to {bits.max():.2f}",
              file=stream)
    for it in flagged[:most]:
        print(f"  {printable(it['path'])}  {it['bits_per_sample']:.2f}  {'; '.join(it['reasons'])}", file=stream)
    if len(flagged) > most:
        print(f"  ... and {len(flagged) - most} more (score.csv has them all)", file=stream)
    for f in failures[:most]:
        print(f"  failed: {printable(f['path'])}: {printable(f['reason'])}", file=stream)
    print(f"report: {report_dir}/score.json, score.csv, score.png; {len(flagged)} flagged paths in "
          f"{report_dir}/exclude.txt", file=stream)
    if flagged:
        print(f"train without them: waveflow train ... data.exclude={report_dir}/exclude.txt", file=stream)
