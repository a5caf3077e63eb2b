"""Turning planned utterances into corpus wavs: engine calls in parallel, then conversion to one format.

The engines disagree on everything a corpus must keep uniform (sample rate, leading and trailing silence,
peak level), so every engine wav goes through one conversion. The work is in subprocesses and numpy, which
release the GIL, so a thread pool is enough to keep several engines busy; a failure stops the run quickly
and leaves only finished wavs behind, so the same call resumes.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import resample, save_audio, to_mono
from .engines import VOICES, CorpusError, Job, executable_path, synthesise

# Festival pays ~0.3 s to start, so it synthesises several utterances per process; espeak-ng and flite
# start in milliseconds and take one utterance per call (finer progress, simpler errors).
# Below _FESTIVAL_MIN_BATCH utterances a second process costs more in start-up than it saves.
_FESTIVAL_BATCH = 10
_FESTIVAL_MIN_BATCH = 4


def run_jobs(
    todo: Sequence[Job],
    sample_rate: int,
    workdir: Path,
    workers: int,
    *,
    n_kept: int = 0,
    progress: bool = True,
) -> None:
    """Synthesise and convert every job, ``workers`` engine calls at a time.

    Args:
        todo: The utterances to synthesise.
        sample_rate: Rate of the corpus wavs in Hz.
        workdir: Scratch folder for the engines' native wavs.
        workers: Engine calls at once.
        n_kept: Utterances already finished (a resumed run): where the progress bar starts.
        progress: Show a tqdm progress bar on stderr.

    Raises:
        CorpusError: An engine failed or wrote no usable audio; wavs finished before are kept.
    """
    bar = _progress_bar(len(todo) + n_kept, n_kept, enabled=progress)
    try:
        _run_batches(_batches(todo, workers), sample_rate, workdir, workers, on_done=bar.update)
    finally:
        bar.close()


def _batches(todo: Sequence[Job], workers: int) -> list[list[Job]]:
    """Group jobs into engine calls: one utterance each, except festival (several per process)."""
    batches: list[list[Job]] = []
    by_voice: dict[str, list[Job]] = {}
    for job in todo:
        by_voice.setdefault(job.voice, []).append(job)
    for voice, voice_jobs in by_voice.items():
        if VOICES[voice].engine == "festival":
            # Split so every worker gets a share, but cap the batch so that progress still moves.
            size = min(_FESTIVAL_BATCH, max(_FESTIVAL_MIN_BATCH, math.ceil(len(voice_jobs) / workers)))
            batches.extend(voice_jobs[i : i + size] for i in range(0, len(voice_jobs), size))
        else:
            batches.extend([job] for job in voice_jobs)
    return batches


def _run_batches(
    batches: Sequence[list[Job]],
    sample_rate: int,
    workdir: Path,
    workers: int,
    on_done: Callable[[int], object],
) -> None:
    """Synthesise and convert every batch on a thread pool; ``on_done(n)`` after each finished batch."""
    if not batches:
        return
    # Resolve executables once, in the calling thread (check_engines has just found them on PATH).
    exes = {b[0].voice: executable_path(VOICES[b[0].voice]) for b in batches}

    # Set on the first failure so that batches already handed to a worker thread return at once instead
    # of synthesising on after the run is lost (cancel_futures only drops batches not yet started).
    failed = threading.Event()

    def work(batch: list[Job]) -> int:
        if failed.is_set():
            return 0
        try:
            synthesise(VOICES[batch[0].voice], exes[batch[0].voice], batch, workdir)
            for job in batch:
                _convert(job, sample_rate)
                job.raw.unlink(missing_ok=True)
        except BaseException:
            failed.set()
            raise
        return len(batch)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="corpus")
    try:
        futures = [pool.submit(work, batch) for batch in batches]
        for future in concurrent.futures.as_completed(futures):
            on_done(future.result())  # re-raises the first failure
    except BaseException:  # a failed batch, or Ctrl-C while waiting
        failed.set()
        raise
    finally:
        # On failure or Ctrl-C: drop queued batches, let running ones finish their atomic writes.
        pool.shutdown(wait=True, cancel_futures=True)


def _convert(job: Job, sample_rate: int) -> None:
    """Turn the engine's wav into the corpus wav: mono, resampled, trimmed, 16-bit PCM, written atomically."""
    try:
        audio, sr = sf.read(job.raw, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise CorpusError(
            f"voice {job.voice!r}: engine wrote no readable audio for {job.uid}: {exc}"
        ) from exc
    audio = to_mono(audio)
    if audio.size == 0 or not np.any(audio):
        raise CorpusError(f"voice {job.voice!r}: engine produced silence for {job.uid} ({job.spoken!r})")
    audio = _trim(resample(audio, sr, sample_rate), sample_rate)
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:  # resampling can overshoot a full-scale engine output; scale rather than clip
        audio = audio * (0.99 / peak)
    save_audio(job.out, audio, sample_rate, subtype="PCM_16")


def _trim(audio: np.ndarray, sr: int, top_db: float = 40.0, margin_s: float = 0.1) -> np.ndarray:
    """Leave ``margin_s`` of silence before and after the speech (frames within ``top_db`` of the loudest).

    Engines pad with anything from nothing to half a second of silence; a fixed, short margin is kept
    because real recordings (and LJSpeech) start and end with some. Where the engine left less, zeros
    are added, after a 5 ms fade so that speech starting at the very first sample does not click.
    Plain numpy rather than ``librosa.effects.trim``, whose first call costs seconds of JIT compilation:
    more than synthesising a whole small corpus.
    """
    frame, hop = 1024, 256
    if audio.size < frame:
        return audio
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop]
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10.0 ** (-top_db / 20.0))
    margin = int(margin_s * sr)
    start = int(loud[0]) * hop - margin
    end = int(loud[-1]) * hop + frame + margin
    kept = audio[max(0, start) : min(audio.size, end)].astype(np.float32, copy=True)
    fade = min(int(0.005 * sr), kept.size // 2)
    if fade > 0:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))).astype(np.float32)
        kept[:fade] *= ramp
        kept[-fade:] *= ramp[::-1]
    return np.pad(kept, (max(0, -start), max(0, end - audio.size)))


class _NoBar:
    """Stand-in for tqdm when progress is off."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, done: int, enabled: bool) -> _NoBar:
    if not enabled:
        return _NoBar()
    from ..progress import progress_bar

    return progress_bar(total=total, initial=done, desc="corpus", unit="utt")  # type: ignore[return-value]
