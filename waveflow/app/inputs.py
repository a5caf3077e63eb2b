"""Checking what people upload, before any model sees it. Every refusal is a :class:`UserInputError` whose
message is meant for the person at the browser: it names their file (not our temporary path) and says what
would work instead."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..audio import AudioError, load_audio
from ..errors import WaveflowError

#: What the upload widgets accept (libsndfile reads these; mp3 needs libsndfile >= 1.1).
AUDIO_TYPES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")
MEL_TYPES = (".npy", ".pt")
MEL_SCALES = {"natural log (Tacotron2, NVIDIA)": "ln", "natural log of power (librosa's default)": "ln-power",
              "log10": "log10", "decibels (20·log10)": "db"}


class UserInputError(WaveflowError, ValueError):
    """An upload the demo cannot use; the message is shown in the UI as is."""


@dataclass
class Clip:
    """A mono clip at its file's rate, with what it looked like on disk (for the UI to say)."""

    audio: np.ndarray
    sample_rate: int
    channels: int
    name: str

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / self.sample_rate

    def describe(self) -> str:
        kind = "mono" if self.channels == 1 else "stereo" if self.channels == 2 else f"{self.channels} channels"
        return f"{self.name}: {self.seconds:.2f} s, {self.sample_rate} Hz, {kind}"


def display_name(path: str | Path) -> str:
    """The name a person gave their file (Gradio keeps it as the last path component)."""
    return Path(str(path)).name


def read_clip(path: str | Path | None, max_seconds: float) -> Clip:
    """Read an uploaded or recorded clip as mono float32, refusing what the demo cannot use.

    The duration is checked from the header before anything is decoded, so a huge upload costs nothing.
    """
    if path is None or str(path) == "":
        raise UserInputError("No audio yet: upload or record a clip first (or click one of the examples).")
    path = Path(str(path))
    name = display_name(path)
    if path.suffix.lower() not in AUDIO_TYPES:
        raise UserInputError(
            f"{name}: not an audio file type the demo reads. Upload one of: {', '.join(AUDIO_TYPES)}."
        )
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        raise UserInputError(
            f"{name}: this file is not readable audio (corrupt, truncated, or another format with an audio "
            f"extension). Upload a wav, flac, ogg or mp3 file."
        ) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise UserInputError(f"{name}: the file contains no audio samples.")
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise UserInputError(
            f"{name} is {seconds:.1f} s long; this demo accepts clips of at most {max_seconds:g} s "
            f"(start it with --max-seconds to change the limit). Trim the clip and try again."
        )
    try:
        audio, rate = load_audio(path, mono=True)
    except AudioError as e:
        raise UserInputError(f"{name}: {e.reason}.") from None
    return Clip(audio, rate, info.channels, name)


def check_length(clip: Clip, samples_at_model_rate: int, min_samples: int) -> None:
    """Refuse clips too short for one mel frame (reflect padding needs more than ``n_fft / 2`` samples)."""
    if samples_at_model_rate < min_samples:
        raise UserInputError(
            f"{clip.name} is too short ({clip.seconds * 1000:.0f} ms): the vocoder needs at least "
            f"{min_samples} samples at its rate. Upload a longer clip."
        )


def max_mel_bytes(n_mels: int, max_frames: int) -> int:
    """The largest upload that can hold a mel of ``max_frames`` (float64, plus room for headers)."""
    return n_mels * max_frames * 8 + (1 << 20)


def read_mel_upload(path: str | Path, n_mels: int, scale: str, max_frames: int) -> tuple[torch.Tensor, list[str]]:
    """Read and validate an uploaded mel file: ``(n_mels, frames)`` float32 natural-log, and notes to show.

    The file's size, and its shape from its header, are checked before any value is read, so a hostile upload
    (a zip bomb, a stride-0 view, a header declaring a huge array) costs the server about its own size.

    Raises:
        UserInputError: unreadable, refused, wrong bins, NaN/inf, empty, too large or too long (the message
            names the file).
    """
    from ..mel_io import MelFileError, MelTooLongError, read_mel

    name = display_name(path)
    if Path(str(path)).suffix.lower() not in MEL_TYPES:
        raise UserInputError(f"{name}: mel files must be .npy or .pt arrays of shape ({n_mels}, frames).")
    try:
        size = Path(str(path)).stat().st_size
    except OSError:
        raise UserInputError(f"{name}: the upload could not be read; try again.") from None
    if size > max_mel_bytes(n_mels, max_frames):
        raise UserInputError(
            f"{name} is {size / 1e6:.1f} MB; a mel of at most {max_frames} frames (--max-seconds) takes at most "
            f"{max_mel_bytes(n_mels, max_frames) / 1e6:.1f} MB. Cut the mel and try again."
        )
    too_long = (f"{name} has {{}} frames; this demo accepts at most {max_frames} (--max-seconds). "
                "Cut the mel and try again.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mel, notes = read_mel(path, n_mels, layout="auto", scale=scale, max_frames=max_frames)
    except MelTooLongError as e:
        raise UserInputError(too_long.format(e.frames)) from None
    except MelFileError as e:
        raise UserInputError(f"{name}: {_ui_words(e.reason)}.") from None
    if mel.shape[1] > max_frames:
        raise UserInputError(too_long.format(mel.shape[1]))
    return mel, [f"{name}: {_ui_words(n)}" for n in notes]


def _ui_words(text: str) -> str:
    """Command-line option names in mel_io's messages, said as the demo's settings."""
    return (
        text.replace("--mel-scale db", "the Mel scale setting: decibels")
        .replace("--mel-scale ln-power", "the Mel scale setting: natural log of power")
        .replace("--mel-scale log10", "the Mel scale setting: log10")
        .replace("--mel-scale", "the Mel scale setting")
        .replace(" (--mel-layout mels-first)", "")
        .replace(" (--mel-layout frames-first)", "")
        .replace(" (set --mel-layout to choose)", "")
        .replace(" (set --mel-layout to force a layout)", "")
    )
