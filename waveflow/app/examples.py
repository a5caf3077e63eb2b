"""Example inputs made at start-up, offline, into the demo's own temporary folder.

Clips come from the offline voice corpus (:func:`waveflow.corpus.make_corpus`: espeak-ng and flite speak
a few sentences, no downloads). Where no TTS engine is installed, a synthetic vowel stands in, so every tab
still works with one click. Mels of the clips are computed with the first voice's mel settings, and one
clip is also written as 44.1 kHz stereo to show that any rate and channel count is accepted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..audio import load_audio, save_audio
from ..mel import MelConfig, MelSpectrogram
from ..mel_io import save_mel

log = logging.getLogger("waveflow.demo")

#: Voices tried for the example clips, in order; the first two that work are used.
EXAMPLE_VOICES = ("espeak-en-us", "flite-slt", "espeak-en-gb-f", "festival-kal")


@dataclass
class ExampleSet:
    """Paths of the example files with a short label for each."""

    clips: list[tuple[str, Path]] = field(default_factory=list)
    mels: list[tuple[str, Path]] = field(default_factory=list)

    @property
    def first_clip(self) -> Path | None:
        return self.clips[0][1] if self.clips else None

    @property
    def first_mel(self) -> Path | None:
        return self.mels[0][1] if self.mels else None


def make_examples(folder: Path, mel_config: MelConfig, per_voice: int = 2) -> ExampleSet:
    """Write example clips and their mels under ``folder``; never raises for a missing TTS engine.

    Args:
        folder: the demo's temporary folder (created if needed).
        mel_config: mel settings of the first voice (sample rate, bins); the mels are computed with them.
        per_voice: utterances per TTS voice.
    """
    folder.mkdir(parents=True, exist_ok=True)
    clips = _speech_clips(folder / "corpus", mel_config.sample_rate, per_voice) or _synthetic_clips(
        folder / "synthetic", mel_config.sample_rate
    )
    examples = ExampleSet()
    mel_fn = MelSpectrogram(mel_config)
    for label, path in clips:
        examples.clips.append((label, path))
        audio, _ = load_audio(path, sample_rate=mel_config.sample_rate)
        with torch.inference_mode():
            mel = mel_fn(torch.from_numpy(audio))
        mel_path = folder / "mels" / f"{path.stem}.npy"
        save_mel(mel_path, mel)
        examples.mels.append((label, mel_path))
    if clips:
        label, path = clips[0]
        examples.clips.append((f"{label} — 44.1 kHz stereo", _stereo_copy(path, folder / "stereo")))
    return examples


def _speech_clips(folder: Path, sample_rate: int, per_voice: int) -> list[tuple[str, Path]]:
    from ..corpus import CorpusError, check_engines, make_corpus

    usable = []
    for voice in EXAMPLE_VOICES:
        try:
            check_engines([voice])
            usable.append(voice)
        except CorpusError:
            continue
        if len(usable) == 2:
            break
    if not usable:
        log.warning("no TTS engine found (apt-get install espeak-ng flite): using a synthetic vowel as example")
        return []
    try:
        make_corpus(folder, voices=usable, n_utterances=per_voice, sample_rate=sample_rate, progress=False)
    except (CorpusError, OSError) as e:
        log.warning("could not make example speech (%s): using a synthetic vowel as example", e)
        return []
    wavs = sorted((folder / "wavs").glob("*.wav"))
    return [(_label(p.stem), p) for p in wavs]


def _label(stem: str) -> str:
    """``ESPEAK-EN-US-0001`` -> ``espeak-en-us #1``."""
    voice, _, number = stem.rpartition("-")
    return f"{voice.lower()} #{int(number)}" if number.isdigit() else stem


def _synthetic_clips(folder: Path, sample_rate: int) -> list[tuple[str, Path]]:
    """Two sung vowels (glottal pulses through formant resonances): speech-like spectra without a TTS."""
    out = []
    for name, f0, formants in (("vowel-a", 120.0, (730, 1090, 2440)), ("vowel-i", 210.0, (270, 2290, 3010))):
        path = folder / f"{name}.wav"
        save_audio(path, _vowel(sample_rate, f0, formants), sample_rate)
        out.append((f"synthetic {name}", path))
    return out


def _vowel(sample_rate: int, f0: float, formants: tuple[int, ...], seconds: float = 1.6) -> np.ndarray:
    from scipy.signal import lfilter

    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    vibrato = f0 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = np.cumsum(vibrato) / sample_rate
    source = np.diff(np.floor(phase), prepend=0.0)  # one impulse per period
    x = source + 0.01 * np.random.default_rng(0).standard_normal(n)
    for f in formants:  # two-pole resonators, 80 Hz bandwidth
        r = np.exp(-np.pi * 80.0 / sample_rate)
        x = lfilter([1.0 - r], [1.0, -2 * r * np.cos(2 * np.pi * f / sample_rate), r * r], x)
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.1)
    x = x * envelope
    return (0.5 * x / max(1e-9, float(np.abs(x).max()))).astype(np.float32)


def _stereo_copy(path: Path, folder: Path) -> Path:
    """The clip at 44.1 kHz in two channels (the right one quieter), as a recording might arrive."""
    audio, _ = load_audio(path, sample_rate=44100)
    stereo = np.stack([audio, 0.7 * audio], axis=1)
    out = folder / f"{path.stem}-44k-stereo.wav"
    save_audio(out, stereo, 44100)
    return out
