"""Making a corpus folder: which utterances a run needs, what a resumed run may keep, and ``metadata.csv``.

A corpus run must be safe to interrupt and cheap to repeat: wavs are written atomically, a re-run keeps
the finished wavs whose text has not changed, and ``metadata.csv`` is written last (also atomically) and
lists exactly the utterances of the run. The engine calls themselves are in :mod:`.runner`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import soundfile as sf

from ..audio import atomic_path
from .engines import CorpusError, Job, check_engines, parse_voice_list
from .runner import run_jobs
from .sentences import select_sentences, utterance_id
from .text import normalize_text

#: Accepted values of ``layout``.
LAYOUTS: tuple[str, ...] = ("mixed", "per-voice")


def make_corpus(
    out_dir: str | os.PathLike[str],
    voices: str | Iterable[str] = ("espeak-en-us",),
    n_utterances: int = 20,
    sample_rate: int = 22050,
    seed: int = 0,
    layout: str = "mixed",
    overwrite: bool = False,
    progress: bool = True,
    jobs: int | None = None,
) -> list[Path]:
    """Synthesise an LJSpeech-layout corpus with local TTS engines.

    Each voice speaks ``n_utterances`` sentences from :data:`~waveflow.corpus.sentences.SENTENCES` (see
    :func:`~waveflow.corpus.select_sentences`). Wavs are mono 16-bit PCM at ``sample_rate``, with leading
    and trailing silence trimmed to 0.1 s, named ``wavs/<id>.wav`` with voice-prefixed ids
    (``FLITE-SLT-0001``); ``metadata.csv`` has one ``id|text|normalized text`` line per utterance, in voice
    then index order, and lists exactly this run's utterances.

    Re-running resumes: a wav that already exists at the right format is kept (unless ``overwrite``), except
    when the folder's previous ``metadata.csv`` shows it was spoken with another text (e.g. another seed).

    Args:
        out_dir: Output folder, created if needed.
        voices: Voice names (keys of :data:`~waveflow.corpus.VOICES`), a comma-separated string, ``"all"``
            or ``"available"``.
        n_utterances: Utterances per voice, at least 1.
        sample_rate: Output sample rate in Hz (engines run at 8 to 48 kHz and are resampled with soxr).
        seed: Seed for the sentence draw; the same seed gives the same ids and texts.
        layout: ``"mixed"``: one corpus folder ``out_dir`` with every voice. ``"per-voice"``: one corpus
            folder ``out_dir/<voice>`` per voice.
        overwrite: Re-synthesise wavs that already exist.
        progress: Show a tqdm progress bar on stderr.
        jobs: Engine processes run at once; default: the number of CPUs, at most 8.

    Returns:
        The corpus folders written: ``[out_dir]`` for ``"mixed"``, one per voice for ``"per-voice"``.

    Raises:
        CorpusError: Bad arguments, a missing engine or voice (the message names the apt package), or an
            engine failure (the message names the voice and quotes the engine's stderr). Wavs finished
            before the error are kept, so the same call resumes after the problem is fixed.
    """
    names = parse_voice_list(voices)
    workers = _check_arguments(names, n_utterances, sample_rate, layout, jobs)
    check_engines(names)

    out_root = Path(out_dir)
    folder_of = {name: out_root if layout == "mixed" else out_root / name for name in names}
    folders = list(dict.fromkeys(folder_of.values()))
    _prepare_folders(folders)
    with tempfile.TemporaryDirectory(prefix="waveflow-corpus-") as tmp:
        rows, todo, n_kept = _plan(folder_of, n_utterances, sample_rate, seed, overwrite, Path(tmp))
        run_jobs(todo, sample_rate, Path(tmp), workers, n_kept=n_kept, progress=progress)
    for folder in folders:
        _write_text_atomic(folder / "metadata.csv", "\n".join(rows[folder]) + "\n")
    return folders


def _check_arguments(
    names: list[str], n_utterances: int, sample_rate: int, layout: str, jobs: int | None
) -> int:
    """Refuse bad arguments before anything is written; return the number of workers to use."""
    if not names:
        raise CorpusError("no voices given")
    if layout not in LAYOUTS:
        raise CorpusError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not isinstance(n_utterances, int) or n_utterances < 1:
        raise CorpusError(f"n_utterances must be a positive integer, got {n_utterances!r}")
    if not isinstance(sample_rate, int) or not 4000 <= sample_rate <= 192_000:
        raise CorpusError(f"sample_rate must be an integer from 4000 to 192000 Hz, got {sample_rate!r}")
    workers = jobs if jobs is not None else min(8, os.cpu_count() or 1)
    if workers < 1:
        raise CorpusError(f"jobs must be at least 1, got {workers}")
    return workers


def _prepare_folders(folders: Iterable[Path]) -> None:
    """Create each ``wavs/`` folder and remove what a killed run left there."""
    for folder in folders:
        wavs = folder / "wavs"
        wavs.mkdir(parents=True, exist_ok=True)
        # Hidden temporary files are the remains of a killed run (nothing else writes them): ".*.tmp.wav"
        # from waveflow.audio.atomic_path, ".*.tmp" from the corpus maker's own writer before it.
        for pattern in (".*.tmp.wav", ".*.tmp"):
            for stale in wavs.glob(pattern):
                stale.unlink(missing_ok=True)


def _plan(
    folder_of: dict[str, Path], n_utterances: int, sample_rate: int, seed: int, overwrite: bool, workdir: Path
) -> tuple[dict[Path, list[str]], list[Job], int]:
    """Decide the run: each folder's metadata rows, the jobs still to synthesise, and how many wavs are kept.

    Args:
        folder_of: Voice name -> its corpus folder, in voice order.
        workdir: Where engines write their native wavs.

    Returns:
        ``(rows, todo, n_kept)``: ``id|text|normalized text`` lines per folder, the jobs to run, and the
        number of finished wavs a resumed run keeps.
    """
    rows: dict[Path, list[str]] = {folder: [] for folder in folder_of.values()}
    previous = {folder: _read_metadata(folder / "metadata.csv") for folder in rows}
    todo: list[Job] = []
    n_kept = 0
    for name, folder in folder_of.items():
        for index, text in enumerate(select_sentences(name, n_utterances, seed)):
            uid = utterance_id(name, index, n_utterances)
            spoken = normalize_text(text)
            rows[folder].append(f"{uid}|{text}|{spoken}")
            out = folder / "wavs" / f"{uid}.wav"
            stale_text = previous[folder].get(uid, text) != text
            if not overwrite and not stale_text and _is_complete(out, sample_rate):
                n_kept += 1
                continue
            todo.append(Job(name, uid, text, spoken, workdir / f"{uid}.wav", out))
    return rows, todo, n_kept


def _read_metadata(path: Path) -> dict[str, str]:
    """Map id -> text of an existing ``metadata.csv`` (empty when there is none or it is unreadable)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    return {parts[0]: parts[1] for parts in (line.split("|") for line in lines) if len(parts) >= 2}


def _is_complete(path: Path, sample_rate: int) -> bool:
    """Whether ``path`` is a finished corpus wav at ``sample_rate`` (atomic writes make existence nearly
    enough; the header check catches files from a run with another sample rate, or foreign files)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError):
        return False
    return (
        info.samplerate == sample_rate and info.channels == 1 and info.subtype == "PCM_16" and info.frames > 0
    )


def _write_text_atomic(path: Path, text: str) -> None:
    """Write a UTF-8 text file with ``\\n`` line ends atomically (waveflow.audio has no text writer)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
