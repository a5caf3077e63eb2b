"""``waveflow eval``: copy-synthesis evaluation of a vocoder on audio files, beside a Griffin-Lim baseline.

The scores themselves are pure functions in :mod:`waveflow.metrics`; this module finds the files, runs the
vocoder, and reports.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from ..audio import AudioError, atomic_path, load_audio
from ..inference.runtime import derive_seed, plain_cpu_convolutions
from ..mel import MelConfig, MelSpectrogram
from ..metrics import MetricSet, compare, format_table, griffin_lim, pitch, summarize
from ..models import prepare_for_inference
from ..progress import progress_bar
from .discover import AUDIO_INPUTS, BatchError, discover

LIST_EXTENSIONS = (".txt", ".csv", ".list")


def eval_files(inputs: Iterable[str | Path], notes: list[str] | None = None) -> list[Path]:
    """Audio files to evaluate: audio files, folders (recursive), globs, an LJSpeech folder (``metadata.csv``
    + ``wavs/``: the clips it lists) or a list file (``.txt``/``.csv``/``.list``: one clip per line; the first
    ``|``-separated field that is an audio path, absolute or relative to the list's folder).

    Folders and globs are found as the other folder jobs find them (:func:`~.discover.discover`: every type
    soundfile reads); what was left out, and listed clips that do not exist, are added to ``notes``.
    """
    notes = [] if notes is None else notes
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir() and (path / "metadata.csv").is_file() and (path / "wavs").is_dir():
            ids = [line.split("|")[0] for line in (path / "metadata.csv").read_text().splitlines() if line.strip()]
            listed = [path / "wavs" / f"{i}.wav" for i in ids]
            files += _existing(listed, path / "metadata.csv", notes)
        elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            listed = []
            for line in path.read_text().splitlines():
                fields = [f.strip() for f in line.split("|")]
                hit = next((f for f in fields if f.lower().endswith(AUDIO_INPUTS)), None)
                if hit:  # relative: to the list's folder, else (lists of older runs) to the current folder
                    p = Path(hit)
                    listed.append(p if p.is_absolute() or (p.exists() and not (path.parent / p).exists())
                                  else path.parent / p)
            files += _existing(listed, path, notes)
        else:
            found = discover([raw], AUDIO_INPUTS)
            notes += found.notes()
            files += [item.source for item in found.items]
    if not files:
        raise BatchError(f"no audio files in {', '.join(map(str, inputs))}")
    return list(dict.fromkeys(files))


def _existing(listed: list[Path], listing: Path, notes: list[str]) -> list[Path]:
    missing = [p for p in listed if not p.is_file()]
    if missing:
        notes.append(f"{listing}: {len(missing)} listed clip(s) not found, left out (first: {missing[0]})")
    return [p for p in listed if p.is_file()]


@torch.inference_mode()
def nll_of(model: torch.nn.Module, audio: np.ndarray, config: MelConfig, device: torch.device) -> tuple[float, float]:
    """Exact NLL of a whole clip under ``model`` (sigma 1, float32): ``(nats per sample, bits per 16-bit sample)``."""
    g = model.config.sample_multiple
    x = torch.from_numpy(np.ascontiguousarray(audio[: len(audio) // g * g], dtype=np.float32)).to(device)[None]
    with plain_cpu_convolutions(device):  # every clip is a new length
        out = model.nll(x, MelSpectrogram(config).to(device)(x), sigma=1.0)
    return float(out.nll), float(out.bits_per_sample)


def evaluate(vocoder, files: list[Path], *, checkpoint=None, griffin_lim_iters: int = 32,
             which: MetricSet | None = None, seed: int = 1234, progress: bool = True) -> dict:
    """Copy-synthesis evaluation of ``vocoder`` (a :class:`~waveflow.inference.Vocoder`) on audio files.

    Args:
        checkpoint: the vocoder's :class:`~waveflow.checkpoints.LoadedCheckpoint`; gives a float32 model for
            the test NLL when the vocoder runs in half precision (without it the NLL is then omitted).
        griffin_lim_iters: iterations of the Griffin-Lim baseline (0 = no baseline).
        which: optional metrics to compute (PESQ, STOI, F0).
        seed: each file's latent is seeded by ``derive_seed(seed, file name)``.

    Returns:
        ``{"count", "table": {system: {metric: mean}}, "files": [per-file rows], "failures", "notes", "settings"}``.
    """
    which = which or MetricSet()
    nll_model = vocoder.model if vocoder.dtype == torch.float32 else None
    if nll_model is None and checkpoint is not None:
        nll_model = prepare_for_inference(checkpoint.model, vocoder.device, torch.float32)
    elif nll_model is None:
        which.notes.append("test NLL omitted: half-precision vocoder and no checkpoint for a float32 model")
    cfg = vocoder.mel_config
    rows, failures = [], []
    for path in progress_bar(files, desc="eval", unit="file", enabled=progress):
        try:
            ref, _ = load_audio(path, sample_rate=cfg.sample_rate)
            if len(ref) <= cfg.n_fft:
                raise ValueError(f"too short to evaluate ({len(ref)} samples)")
            mel = vocoder.mel(ref)
            syn = vocoder.copy_synthesis(ref, seed=derive_seed(seed, Path(path).name)).cpu().numpy()
            ref_pitch = pitch(ref, cfg.sample_rate, cfg.hop_length) if which.f0 else None
            row = {"file": str(path), "seconds": len(ref) / cfg.sample_rate,
                   "waveflow": compare(ref, syn, cfg, which, ref_pitch)}
            if nll_model is not None:
                row["waveflow"]["nll_nats"], row["waveflow"]["nll_bits"] = nll_of(nll_model, ref, cfg, vocoder.device)
            if griffin_lim_iters > 0:
                gl = griffin_lim(mel.float().cpu().numpy(), cfg, len(ref), griffin_lim_iters)
                row["griffin-lim"] = compare(ref, gl, cfg, which, ref_pitch)
            rows.append(row)
        except (AudioError, ValueError, OSError) as e:
            failures.append({"file": str(path), "reason": getattr(e, "reason", None) or str(e)})
    return {
        "count": len(rows),
        "table": summarize(rows),
        "files": rows,
        "failures": failures,
        "notes": sorted(set(which.notes)),
        "settings": {"sigma": vocoder.sigma, "seed": seed, "dtype": str(vocoder.dtype).replace("torch.", ""),
                     "denoiser_strength": vocoder.denoiser_strength, "griffin_lim_iters": griffin_lim_iters,
                     "sample_rate": cfg.sample_rate},
    }


def write_report(result: dict, json_path: Path | None = None) -> int:
    """Print the table (stdout), failures and notes (stderr); write JSON; exit code 1 if any clip failed."""
    print(format_table(result["table"], result["count"]))
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr)
    for failure in result["failures"]:
        print(f"failed: {failure['file']}: {failure['reason']}", file=sys.stderr)
    if json_path:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(_finite(result), indent=2, allow_nan=False) + "\n")
    return 1 if result["failures"] or not result["count"] else 0


def _finite(value):
    """NaN/inf -> None, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
