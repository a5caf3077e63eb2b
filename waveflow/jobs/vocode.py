"""``waveflow vocode``: mel files -> audio, in length buckets, on one Vocoder (``synth`` is :mod:`.synth`).

The output tree mirrors the input tree. Every mel file is validated on its own (see
:func:`waveflow.mel_io.read_mel`); a bad one is reported by name and reason and the others are written.
The job is planned first (:mod:`.planner`: output folder, collisions, what is already done), outputs are
written atomically, existing ones are skipped unless ``overwrite`` (so an interrupted run resumes), inputs are
never modified, and clipping is reported (or fixed with ``rescale``).

Each file's latent is seeded by ``derive_seed(seed, relative path)``, and the :class:`~waveflow.inference.Vocoder`
makes a batched item as it would make it alone (to float rounding), so a file's audio does not depend on which
other files share its batch, on ``batch_frames`` or on ``jobs``. Batches are formed within windows of
consecutive planned files (:mod:`.shard`), so they are the same, and the audio the same bit for bit, whether
one process does the job or many share it.
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
from .discover import BatchError, Item
from .outputs import DiskFull, Scratch
from .planner import Summary, conclude, interrupted_by, make_plan, sigterm_stops_cleanly
from .shard import Part, batch_window

FORMATS = ("wav", "flac")
SUBTYPES = ("PCM_16", "FLOAT")
RESCALE_PEAK = 0.999  # peak after --rescale (just under full scale, so 16-bit PCM does not clip)


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
    mel_scale: str = "ln", seed: int = 1234, progress: bool = True, part: Part | None = None,
) -> Summary:
    """Vocode mel files/folders/globs into ``out_dir`` (mirrored tree); see the module docstring.

    Args:
        vocoder: makes the audio (device, dtype, sigma, denoiser).
        batch_frames: padded mel frames per batch (items x longest); 1 disables batching.
        jobs: threads reading mels and writing audio.
        mel_layout, mel_scale: how mel files are read (see :func:`waveflow.mel_io.load_mel`).
        seed: base seed; each file's latent is seeded by ``derive_seed(seed, relative path)``.
        part: this process's share of the files (:mod:`.shard`); batches never cross its windows.
    """
    options = options or OutputOptions()
    plan = make_plan(inputs, out_dir, MEL_EXTENSIONS, f".{options.fmt}", overwrite=overwrite, part=part,
                     window=batch_window)
    summary, start = plan.summary(), time.perf_counter()
    todo = [plan.todo(w) for w in plan.windows]
    summary.left = sum(map(len, todo))
    summary.skipped = sum(map(len, plan.windows)) - summary.left
    main = plan.part.launch is None or plan.part.launch.main
    bar = tqdm(total=summary.left, desc="vocode", unit="file", disable=not (progress and main) or None,
               dynamic_ncols=True)
    with Scratch(plan.out_dir) as scratch, sigterm_stops_cleanly(), ThreadPoolExecutor(max(1, jobs)) as pool:
        run = _Run(plan, vocoder, options, summary, scratch, pool, bar)
        try:
            for window in todo:
                run.window(window, batch_frames, mel_layout, mel_scale, seed)
                run.collect()
                if summary.stopped:
                    break
        except KeyboardInterrupt as e:
            summary.interrupted = interrupted_by(e)
            pool.shutdown(wait=True, cancel_futures=True)  # writes under way finish (or leave nothing)
            run.writes = [w for w in run.writes if not w[1].cancelled()]
            run.collect()
        finally:
            bar.close()
    summary.wall_seconds = time.perf_counter() - start
    return conclude(summary, plan)


class _Run:
    """One vocode job at work: windows of mels in, length buckets through the vocoder, writes queued."""

    def __init__(self, plan, vocoder: Vocoder, options: OutputOptions, summary: Summary, scratch: Scratch,
                 pool: ThreadPoolExecutor, bar):
        self.plan, self.vocoder, self.options, self.summary = plan, vocoder, options, summary
        self.scratch, self.pool, self.bar = scratch, pool, bar
        self.writes: list[tuple[Item, Future, float]] = []

    def window(self, items: list[Item], batch_frames: int, layout: str, scale: str, seed: int) -> None:
        voc, summary = self.vocoder, self.summary
        loaded = list(self.pool.map(lambda it: _read(it.source, voc.n_mels, layout, scale), items))
        good = []
        for item, (mel, notes, error) in zip(items, loaded):
            for note in notes:
                summary.warn(item.source, note)
            if error:
                summary.fail(item.source, error)
                summary.left -= 1
                self.bar.update(1)
            else:
                good.append((item, mel))
        for batch in buckets([m.shape[1] for _, m in good], batch_frames, voc.chunk_frames):
            chosen = [good[i] for i in batch]
            for (item, _), audio in zip(chosen, _vocode_batch(voc, chosen, seed, summary)):
                if audio is None:
                    summary.left -= 1
                else:
                    fut = self.pool.submit(self._write, self.plan.dest(item), audio, item.source)
                    self.writes.append((item, fut, audio.shape[0] / voc.sample_rate))
                self.bar.update(1)

    def _write(self, dst: Path, audio: np.ndarray, name: Path) -> None:
        with self.scratch.output(dst, size_hint=audio.nbytes) as tmp:
            write_audio(tmp, audio, self.vocoder.sample_rate, self.options, self.summary, name)

    def collect(self) -> None:
        """Wait for the queued writes and count them; a full disk stops the job (``summary.stopped``)."""
        summary = self.summary
        for item, fut, seconds in self.writes:
            try:
                fut.result()
                summary.ok += 1
                summary.audio_seconds += seconds
            except DiskFull as e:
                summary.stopped = str(e)
                continue  # not done: counted in summary.left
            except (OSError, ValueError, RuntimeError) as e:
                summary.fail(item.source, f"cannot write the output ({e})")
            summary.left -= 1
        self.writes.clear()


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
    mels = [mel for _, mel in chosen]
    seeds = [derive_seed(seed, item.relative.as_posix()) for item, _ in chosen]
    try:
        return [a.cpu().numpy() for a in vocoder.vocode(mels, seed=seeds)]
    except Exception as e:  # noqa: BLE001 - retried one by one below, which names the file that fails
        if len(chosen) > 1:
            summary.warn(f"batch of {len(chosen)} files", f"failed ({type(e).__name__}); retrying one at a time")
    out = []
    for (item, mel), s in zip(chosen, seeds):
        try:
            out.append(vocoder.vocode(mel, seed=s).cpu().numpy())
        except Exception as e:  # noqa: BLE001
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            summary.fail(item.source, f"vocoding failed ({type(e).__name__}: {first})")
            out.append(None)
    return out
