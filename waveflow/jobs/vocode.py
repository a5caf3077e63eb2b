"""``waveflow vocode``: mel files -> audio, in length buckets, on one Vocoder (``synth`` is :mod:`.synth`).

The job is planned first (:mod:`.planner`: discovery, output folder, collisions, output names), then the model is
loaded, then :func:`vocode_files` does the plan's files. The output tree mirrors the input tree. Every mel file is
opened on its own from its header (see :func:`waveflow.mel_io.open_mel`); a bad one is reported by name and
reason and the others are written, and one longer than ``max_seconds`` fails, naming its length, before any of
it is read. Outputs are written atomically, existing ones are skipped unless ``overwrite`` (so an interrupted
run resumes), inputs are never modified, and clipping is reported (or fixed with ``rescale``).

Mels up to the vocoder's ``chunk_frames`` are read whole and batched; longer ones are checked in one pass, then
read, vocoded (:meth:`~waveflow.inference.Vocoder.stream`) and written (:class:`~.writing.BlockWriter`) a chunk
at a time, so memory does not grow with a mel's length (a 3-hour ``.npy`` mel takes no more than a short one).

Each file's latent is seeded by ``file_seed(seed, relative path)``, and the :class:`~waveflow.inference.Vocoder`
makes a batched item as it would make it alone (to float rounding), and a streamed one as :meth:`vocode` would,
so a file's audio does not depend on which other files share its batch, on ``batch_frames`` or on ``jobs``.
Batches are formed within windows of consecutive planned files (:mod:`.shard`), so they are the same, and the
audio the same bit for bit, whether one process does the job or many share it.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..inference import Vocoder
from ..mel_io import MelFileError, MelSource, open_mel
from .discover import Item
from .outputs import DiskFull
from .planner import Plan, Summary, conclude, file_seed, interrupted_by, reason_of, stop_signals
from .scratch import Scratch
from .writing import FORMATS, SUBTYPES, BlockWriter, JobOptions, OutputOptions, write_audio

__all__ = ["FORMATS", "SUBTYPES", "JobOptions", "OutputOptions", "buckets", "vocode_files"]


def buckets(frames: list[int], batch_frames: int) -> list[list[int]]:
    """Indices grouped into batches of similar length whose padded size (items x longest) stays within
    ``batch_frames``."""
    order = sorted(range(len(frames)), key=lambda i: frames[i])
    out, current = [], []
    for i in order:
        if current and (len(current) + 1) * frames[i] > batch_frames:
            out.append(current)
            current = [i]
        else:
            current.append(i)
    return out + ([current] if current else [])


def vocode_files(plan: Plan, vocoder: Vocoder, options: JobOptions | None = None) -> Summary:
    """Vocode the plan's mel files (:func:`~.planner.make_plan` with :data:`~waveflow.mel_io.MEL_EXTENSIONS`)
    into its output folder; see the module docstring. ``plan.part``: this process's share, whose windows
    batches never cross."""
    options = options or JobOptions()
    summary, start = plan.summary(), time.perf_counter()
    todo = [plan.todo(w) for w in plan.windows]
    main = plan.part.launch is None or plan.part.launch.main
    bar = tqdm(total=summary.left, desc="vocode", unit="file", disable=not (options.progress and main) or None,
               dynamic_ncols=True)
    with Scratch(plan.out_dir) as scratch, stop_signals(), ThreadPoolExecutor(max(1, options.jobs)) as pool:
        run = _Run(plan, vocoder, options, summary, scratch, pool, bar)
        try:
            for window in todo:
                run.window(window)
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
    """One vocode job at work: windows of mels in, length buckets (or chunks) through the vocoder, writes queued."""

    def __init__(self, plan: Plan, vocoder: Vocoder, options: JobOptions, summary: Summary, scratch: Scratch,
                 pool: ThreadPoolExecutor, bar):
        self.plan, self.vocoder, self.options, self.summary = plan, vocoder, options, summary
        self.scratch, self.pool, self.bar = scratch, pool, bar
        self.writes: list[tuple[Item, Future, float]] = []

    def done(self, item: Item, error: str | None = None) -> None:
        """``item`` is over without a queued write: failed (``error``) or written here."""
        if error:
            self.summary.fail(item.source, error)
        self.summary.left -= 1
        self.bar.update(1)

    def window(self, items: list[Item]) -> None:
        voc, o = self.vocoder, self.options
        sources = list(self.pool.map(lambda it: _attempt(open_mel, it.source, voc.n_mels, o.mel_layout, o.mel_scale),
                                     items))
        short, long = [], []
        for item, (source, error) in zip(items, sources):
            error = error or o.too_long(source.frames * voc.hop_length / voc.sample_rate)
            if error:
                self.done(item, error)
            else:
                (short if source.frames <= voc.chunk_frames else long).append((item, source))
        read = list(self.pool.map(lambda pair: _attempt(MelSource.read, pair[1]), short))
        good = []
        for (item, _), (result, error) in zip(short, read):
            if error:
                self.done(item, error)
                continue
            mel, notes = result
            for note in notes:
                self.summary.warn(item.source, note)
            good.append((item, mel))
        for batch in buckets([m.shape[1] for _, m in good], o.batch_frames):
            chosen = [good[i] for i in batch]
            for (item, _), audio in zip(chosen, _vocode_batch(voc, chosen, o.seed, self.summary)):
                if audio is None:
                    self.summary.left -= 1
                else:
                    fut = self.pool.submit(self._write, self.plan.dest(item), audio, item.source)
                    self.writes.append((item, fut, audio.shape[0] / voc.sample_rate))
                self.bar.update(1)
        for item, source in long:
            self.stream(item, source)

    def stream(self, item: Item, source: MelSource) -> None:
        """Check a long mel in one pass, then vocode it chunk by chunk straight into its output."""
        voc, summary = self.vocoder, self.summary
        try:
            for note in source.check():
                summary.warn(item.source, note)
            seconds = source.frames * voc.hop_length / voc.sample_rate
            dst = self.plan.dest(item)
            with self.scratch.output(dst, size_hint=source.frames * voc.hop_length * 4) as tmp:
                writer = BlockWriter(tmp, voc.sample_rate, self.options.output, source.frames * voc.hop_length,
                                     self.scratch)
                try:
                    for audio in voc.stream(source.pieces(voc.chunk_frames), seed=file_seed(self.options.seed,
                                                                                            item.relative)):
                        writer.write(audio.cpu().numpy())
                    writer.finish(summary, item.source)
                finally:
                    writer.close()
        except DiskFull as e:
            summary.stopped = str(e)
            return  # not done: counted in summary.left
        except (OSError, ValueError, RuntimeError) as e:  # a bad stretch, a vocoding failure, a write error
            self.done(item, reason_of(e, item.source))
            return
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
            self.done(item, f"unexpected {type(e).__name__}: {e}")
            return
        summary.ok += 1
        summary.audio_seconds += seconds
        self.done(item)

    def _write(self, dst: Path, audio: np.ndarray, name: Path) -> None:
        with self.scratch.output(dst, size_hint=audio.nbytes) as tmp:
            write_audio(tmp, audio, self.vocoder.sample_rate, self.options.output, self.summary, name)

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


def _attempt(func, *args):
    """``(func(*args), None)``, or ``(None, reason)`` when it fails (one bad file must not stop the batch)."""
    try:
        return func(*args), None
    except MelFileError as e:
        return None, e.reason
    except Exception as e:  # noqa: BLE001
        return None, f"unexpected {type(e).__name__}: {e}"


def _vocode_batch(vocoder: Vocoder, chosen, seed: int, summary: Summary) -> list[np.ndarray | None]:
    """Audio of one batch; if the batch fails (e.g. out of memory), each file is retried alone."""
    mels = [mel for _, mel in chosen]
    seeds = [file_seed(seed, item.relative) for item, _ in chosen]
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
