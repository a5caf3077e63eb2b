"""How the audio jobs (``vocode``, ``synth``) write: their options, one output written whole (:func:`write_audio`)
or block by block as a long mel is vocoded (:class:`BlockWriter`), clipping reported or rescaled either way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import count_clipped, save_audio
from .discover import BatchError
from .summary import Summary

FORMATS = ("wav", "flac")
SUBTYPES = ("PCM_16", "FLOAT")
RESCALE_PEAK = 0.999  # peak after --rescale (just under full scale, so 16-bit PCM does not clip)
WAV_LIMIT = (1 << 32) - (1 << 20)  # bytes a WAV (32-bit sizes) can hold, less room for its header: RF64 beyond
_BYTES = {"PCM_16": 2, "FLOAT": 4}


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


@dataclass
class JobOptions:
    """How ``vocode`` and ``synth`` run, besides the plan (what) and the vocoder (with what).

    Attributes:
        output: how audio files are written.
        seed: base seed; each file's latent is seeded by it and the file's relative path.
        max_seconds: inputs longer than this (audio to make, from the header) fail, naming their length; 0 = no
            limit. A long mel costs time and disk, not memory (it is vocoded piece by piece).
        progress: show a progress bar.
        batch_frames: padded mel frames per batch (items x longest); 1 disables batching (vocode).
        jobs: threads reading mels and writing audio (vocode).
        mel_layout, mel_scale: how mel files are read (see :func:`waveflow.mel_io.load_mel`; vocode).
    """

    output: OutputOptions = field(default_factory=OutputOptions)
    seed: int = 1234
    max_seconds: float = 3600.0
    progress: bool = True
    batch_frames: int = 4096
    jobs: int = 4
    mel_layout: str = "auto"
    mel_scale: str = "ln"

    def __post_init__(self) -> None:
        if not self.max_seconds >= 0:
            raise BatchError(f"--max-seconds must be >= 0 (0 = no limit), got {self.max_seconds}")

    def too_long(self, seconds: float) -> str | None:
        """Why an input making ``seconds`` of audio is refused, or ``None``."""
        if self.max_seconds and seconds > self.max_seconds:
            return (f"too long: it would make {_duration(seconds)} of audio; --max-seconds is {self.max_seconds:g} "
                    f"({_duration(self.max_seconds)}): raise it to take this file")
        return None


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds:.1f} s"


def write_audio(dst: Path, audio: np.ndarray, sample_rate: int, options: OutputOptions, summary: Summary,
                name: str | Path) -> None:
    """Write one output atomically, reporting (or rescaling) clipping in ``summary``."""
    clipped = count_clipped(audio)
    if clipped:
        peak = float(np.abs(audio).max())
        if options.rescale:
            audio = audio * (RESCALE_PEAK / peak)
        _report_clipping(summary, name, options, clipped, peak)
    save_audio(dst, audio, sample_rate, subtype=options.subtype)


def _report_clipping(summary: Summary, name, options: OutputOptions, clipped: int, peak: float) -> None:
    if options.rescale:
        summary.warn(name, f"{clipped} samples beyond full scale (peak {peak:.3f}); rescaled by {RESCALE_PEAK / peak:.3f}")
    elif options.subtype != "FLOAT":
        summary.warn(name, f"{clipped} samples clipped (peak {peak:.3f}); use --rescale to scale instead")


class BlockWriter:
    """One output written block by block (a context): the samples of a long mel as they are made, so memory
    does not grow with its length. With ``rescale`` the blocks go to a float file beside the output first and
    are copied over, scaled, once the peak is known. A WAV too big for 32-bit sizes is written as RF64."""

    COPY_BLOCK = 1 << 20

    def __init__(self, dst: Path, sample_rate: int, options: OutputOptions, samples: int, scratch=None):
        self.dst, self.rate, self.options = dst, sample_rate, options
        self.clipped, self.peak = 0, 0.0
        self.float_tmp = scratch.temporary(".wav") if options.rescale else None
        self.scratch = scratch
        target = self.float_tmp or dst
        subtype = "FLOAT" if self.float_tmp else options.subtype
        self.file = sf.SoundFile(str(target), "w", sample_rate, 1, subtype=subtype,
                                 format=self._format(samples, subtype if self.float_tmp else None))

    def _format(self, samples: int, subtype: str | None = None) -> str:
        if self.options.fmt == "flac" and subtype is None:
            return "FLAC"
        size = samples * _BYTES[subtype or self.options.subtype]
        return "RF64" if size > WAV_LIMIT else "WAV"

    def write(self, audio: np.ndarray) -> None:
        if audio.size:
            over = np.abs(audio) > 1.0
            self.clipped += int(over.sum())
            self.peak = max(self.peak, float(np.abs(audio).max()))
        if self.float_tmp is None and self.options.subtype != "FLOAT":
            audio = np.clip(audio, -1.0, 1.0)
        self.file.write(audio)

    def finish(self, summary: Summary, name) -> None:
        """Close the file (copying it over, scaled, under ``rescale``) and report clipping."""
        frames = self.file.frames
        self.file.close()
        if self.clipped:
            _report_clipping(summary, name, self.options, self.clipped, self.peak)
        if self.float_tmp is not None:
            gain = RESCALE_PEAK / self.peak if self.clipped else 1.0
            fmt = self._format(frames)
            with sf.SoundFile(str(self.float_tmp)) as src, \
                    sf.SoundFile(str(self.dst), "w", self.rate, 1, subtype=self.options.subtype, format=fmt) as out:
                for block in src.blocks(self.COPY_BLOCK, dtype="float32"):
                    out.write(np.clip(block * gain, -1.0, 1.0) if self.options.subtype != "FLOAT" else block * gain)
            self.scratch.discard(self.float_tmp)

    def close(self) -> None:
        """Close without finishing (the output is dropped by its scratch context)."""
        if not self.file.closed:
            self.file.close()
        if self.float_tmp is not None:
            self.scratch.discard(self.float_tmp)
