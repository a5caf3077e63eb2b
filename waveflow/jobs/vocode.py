"""``waveflow vocode``: mel files -> audio, in length buckets, on one Vocoder (``synth`` is :mod:`.synth`).

The output tree mirrors the input tree. Every mel file is validated on its own (see
:func:`waveflow.mel_io.read_mel`); a bad one is reported by name and reason and the others are written.
Outputs are written atomically, existing ones are skipped unless ``overwrite`` (so an interrupted run
resumes), inputs are never modified, and clipping is reported (or fixed with ``rescale``).

Each file's latent is seeded by ``derive_seed(seed, relative path)``, and the :class:`~waveflow.inference.Vocoder`
makes a batched item exactly as it would make it alone, so a file's audio does not depend on which other
files share its batch, on ``batch_frames`` or on ``jobs``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..audio import count_clipped, save_audio
from ..inference import Vocoder
from ..inference.runtime import derive_seed
from ..mel_io import MEL_EXTENSIONS, MelFileError, read_mel
from .planner import BatchError, Item, Summary, check_output_dir, discover

FORMATS = ("wav", "flac")
SUBTYPES = ("PCM_16", "FLOAT")
RESCALE_PEAK = 0.999  # peak after --rescale (just under full scale, so 16-bit PCM does not clip)
LOAD_GROUP = 256  # mel files loaded (and length-bucketed) at a time: bounds memory for huge folders


@dataclass
class OutputOptions:
    """How audio files are written. ``rescale``: scale a clipping output to ``RESCALE_PEAK`` instead of
    clipping it (reported either way)."""

    fmt: str = "wav"
    subtype: str = "PCM_16"
    rescale: bool = False

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise BatchError(f"output format must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if self.subtype not in SUBTYPES:
            raise BatchError(f"subtype must be one of {', '.join(SUBTYPES)}, got {self.subtype!r}")
        if self.fmt == "flac" and self.subtype == "FLOAT":
            raise BatchError("FLAC has no float subtype: use --subtype PCM_16, or --format wav for float output")


def write_audio(dst: Path, audio: np.ndarray, sample_rate: int, options: OutputOptions, summary: Summary,
                name: str | Path) -> None:
    """Write one output atomically, reporting (or rescaling) clipping in ``summary``."""
    clipped = count_clipped(audio)
    if clipped:
        peak = float(np.abs(audio).max())
        if options.rescale:
            audio = audio * (RESCALE_PEAK / peak)
            summary.warn(name, f"{clipped} samples beyond full scale (peak {peak:.3f}); rescaled by {RESCALE_PEAK / peak:.3f}")
        elif options.subtype != "FLOAT":
            summary.warn(name, f"{clipped} samples clipped (peak {peak:.3f}); use --rescale to scale instead")
    save_audio(dst, audio, sample_rate, subtype=options.subtype)


def buckets(frames: list[int], batch_frames: int, max_single: int) -> list[list[int]]:
    """Indices grouped into batches of similar length whose padded size (items x longest) stays within
    ``batch_frames``; items longer than ``max_single`` (made in chunks) go alone."""
    order = sorted(range(len(frames)), key=lambda i: frames[i])
    out, current = [], []
    for i in order:
        if frames[i] > max_single:
            out.append([i])
        elif current and (len(current) + 1) * frames[i] > batch_frames:
            out.append(current)
            current = [i]
        else:
            current.append(i)
    return out + ([current] if current else [])


def vocode_files(
    inputs: Iterable[str | Path], out_dir: str | Path, vocoder: Vocoder, *, options: OutputOptions | None = None,
    batch_frames: int = 4096, overwrite: bool = False, jobs: int = 4, mel_layout: str = "auto",
    mel_scale: str = "ln", seed: int = 1234, progress: bool = True,
) -> Summary:
    """Vocode mel files/folders/globs into ``out_dir`` (mirrored tree); see the module docstring.

    Args:
        vocoder: makes the audio (device, dtype, sigma, denoiser).
        batch_frames: padded mel frames per batch (items x longest); 1 disables batching.
        jobs: threads reading mels and writing audio.
        mel_layout, mel_scale: how mel files are read (see :func:`waveflow.mel_io.load_mel`).
        seed: base seed; each file's latent is seeded by ``derive_seed(seed, relative path)``.
    """
    options = options or OutputOptions()
    inputs, out_dir = list(inputs), Path(out_dir)
    check_output_dir(out_dir, inputs)
    items = discover(inputs, MEL_EXTENSIONS)
    if not items:
        raise BatchError(f"no {'/'.join(MEL_EXTENSIONS)} files in {', '.join(map(str, inputs))}")
    summary, start = Summary(), time.perf_counter()
    todo: list[tuple[Item, Path]] = []
    for item in items:
        dst = out_dir / item.relative.with_suffix(f".{options.fmt}")
        if dst.exists() and not overwrite:
            summary.skipped += 1
        else:
            todo.append((item, dst))
    bar = tqdm(total=len(todo), desc="vocode", unit="file", disable=not progress or None, dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        writes: list[tuple[Item, Future, float]] = []
        for g in range(0, len(todo), LOAD_GROUP):
            group = todo[g : g + LOAD_GROUP]
            loaded = list(pool.map(lambda it: _read(it[0].source, vocoder.n_mels, mel_layout, mel_scale), group))
            good = []
            for (item, dst), (mel, notes, error) in zip(group, loaded):
                for note in notes:
                    summary.warn(item.source, note)
                if error:
                    summary.fail(item.source, error)
                    bar.update(1)
                else:
                    good.append((item, dst, mel))
            for batch in buckets([m.shape[1] for _, _, m in good], batch_frames, vocoder.chunk_frames):
                chosen = [good[i] for i in batch]
                for (item, dst, mel), audio in zip(chosen, _vocode_batch(vocoder, chosen, seed, summary)):
                    if audio is not None:
                        fut = pool.submit(write_audio, dst, audio, vocoder.sample_rate, options, summary, item.source)
                        writes.append((item, fut, audio.shape[0] / vocoder.sample_rate))
                    bar.update(1)
            for item, fut, seconds in writes:
                try:
                    fut.result()
                    summary.ok += 1
                    summary.audio_seconds += seconds
                except (OSError, ValueError) as e:
                    summary.fail(item.source, f"cannot write the output ({e})")
            writes.clear()
    bar.close()
    summary.wall_seconds = time.perf_counter() - start
    return summary


def _read(path: Path, n_mels: int, layout: str, scale: str):
    try:
        mel, notes = read_mel(path, n_mels, layout, scale)
        return mel, notes, None
    except MelFileError as e:
        return None, [], e.reason
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
        return None, [], f"unexpected {type(e).__name__}: {e}"


def _vocode_batch(vocoder: Vocoder, chosen, seed: int, summary: Summary) -> list[np.ndarray | None]:
    """Audio of one batch; if the batch fails (e.g. out of memory), each file is retried alone."""
    mels = [mel for _, _, mel in chosen]
    seeds = [derive_seed(seed, item.relative.as_posix()) for item, _, _ in chosen]
    try:
        return [a.cpu().numpy() for a in vocoder.vocode(mels, seed=seeds)]
    except Exception as e:  # noqa: BLE001 - retried one by one below, which names the file that fails
        if len(chosen) > 1:
            summary.warn(f"batch of {len(chosen)} files", f"failed ({type(e).__name__}); retrying one at a time")
    out = []
    for (item, _, mel), s in zip(chosen, seeds):
        try:
            out.append(vocoder.vocode(mel, seed=s).cpu().numpy())
        except Exception as e:  # noqa: BLE001
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            summary.fail(item.source, f"vocoding failed ({type(e).__name__}: {first})")
            out.append(None)
    return out
