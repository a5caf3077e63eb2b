"""Audio file I/O: reading any soundfile format as float in [-1, 1], mono mixdown, resampling, atomic writes."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .errors import WaveflowError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")

# Write formats by extension: the subtype users get unless they ask for another one.
_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


class AudioError(WaveflowError, ValueError):
    """An audio file cannot be read or written; the message names the file and the reason."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` in one step.

    A crash or an exception leaves ``path`` untouched (either the old file or nothing) and removes the
    temporary file, so a reader never sees a half-written output. The file gets the mode the umask asks for
    (``mkstemp`` alone would make it 0600, unreadable to colleagues and web servers).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels: ``(T, C)`` -> ``(T,)``; ``(T,)`` is returned as is."""
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality resampling (soxr HQ, as ``librosa.resample(res_type="soxr_hq")`` does, bit for bit) of a 1-D
    float array; identity when rates match. soxr directly: librosa's first call costs ~2 s of lazy imports."""
    if orig_sr == target_sr:
        return audio
    out = soxr.resample(audio, orig_sr, target_sr, quality="HQ").astype(np.float32)
    n = math.ceil(audio.shape[0] * target_sr / orig_sr)  # librosa's length (soxr may give one sample less)
    return out[:n] if out.shape[0] >= n else np.pad(out, (0, n - out.shape[0]))


def load_audio(path: str | Path, sample_rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 in [-1, 1].

    Args:
        path: any format libsndfile reads (wav, flac, ogg, mp3, aiff, ...).
        sample_rate: resample to this rate if given and different from the file's.
        mono: average channels to one.

    Returns:
        ``(audio, rate)``: ``(T,)`` if mono else ``(T, C)``, and the rate of the returned audio.

    Raises:
        AudioError: missing, unreadable, empty or non-finite audio, naming the file and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    try:
        # int16 files are scaled by 1/32768 by libsndfile: the same convention as Tacotron2.
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(path, f"not a readable audio file ({e})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "the file contains no audio samples")
    if not np.isfinite(data).all():
        raise AudioError(path, "the audio contains NaN or infinite samples")
    audio = to_mono(data) if mono else data
    if sample_rate is not None and sample_rate != rate:
        if mono:
            audio = resample(audio, rate, sample_rate)
        else:
            audio = np.stack([resample(audio[:, c], rate, sample_rate) for c in range(audio.shape[1])], axis=1)
        rate = sample_rate
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


def count_clipped(audio: np.ndarray | torch.Tensor) -> int:
    """Number of samples outside [-1, 1] (they would clip when written as 16-bit PCM)."""
    if isinstance(audio, torch.Tensor):
        return int((audio.abs() > 1.0).sum())
    return int((np.abs(audio) > 1.0).sum())


def save_audio(
    path: str | Path, audio: np.ndarray | torch.Tensor, sample_rate: int, subtype: str | None = None
) -> None:
    """Write float audio in [-1, 1] atomically; the format comes from the extension (.wav, .flac, .ogg).

    Args:
        path: output file; its parent folders are created.
        audio: ``(T,)`` or ``(T, C)`` float samples. Values outside [-1, 1] are clipped by integer
            subtypes; call :func:`count_clipped` first to report it.
        sample_rate: in Hz.
        subtype: libsndfile subtype, e.g. ``PCM_16`` (default for wav/flac), ``FLOAT`` (wav only).
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(path, f"cannot write {path.suffix or 'extensionless'} files; use .wav, .flac or .ogg")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if subtype is None:
        subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    if subtype.startswith("PCM"):
        audio = np.clip(audio, -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, sample_rate, subtype=subtype, format=fmt)
