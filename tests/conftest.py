"""Shared test fixtures and helpers (reused across test files; keep this small).

Fixtures:
    speech_22k:      a few seconds of real speech (espeak-ng), float32 numpy in [-1, 1] at 22050 Hz.
    speech_wav_dir:  a folder of three short espeak-ng utterances as 22.05 kHz 16-bit wavs.
    tiny_config:     a small :class:`WaveGlowConfig` (80 mels, hop 256, early outputs, odd n_layers).
    torch_single_thread: one intra-op torch thread for a module (opt in with
        ``pytestmark = pytest.mark.usefixtures("torch_single_thread")``).

Helpers (import them: ``from conftest import randomize_ends``):
    randomize_ends(model, std, seed): give every WN end conv non-zero weights. Zero-initialised end convs
        make each coupling the identity and hide bugs in the coupling, its inverse and its log-det.
    voiced(T, sr, f0, seed): a voice-like float64 signal (a gliding harmonic source), so that the
        source-filter prior's pitch predictor is on.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from waveflow import WaveGlowConfig
from waveflow.flows.wavenet import randomize_ends  # noqa: F401 - handed on to the tests


def voiced(T: int, sr: int, f0=(110.0, 190.0), seed: int = 0) -> np.ndarray:
    """A voice-like float64 signal: a gliding harmonic source (1/k amplitudes, random phases), a slow loudness
    contour, a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / sr
    phase = 2 * np.pi * np.cumsum(np.geomspace(*f0, T)) / sr
    x = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, int(sr / 2 / f0[1])))
    x *= 0.5 + 0.4 * np.sin(2 * np.pi * 1.5 * t + rng.uniform(0, 6))
    return 0.1 * x + 0.002 * rng.standard_normal(T)


SPEECH_RATE = 22050
SPEECH_TEXTS = (
    "The quick brown fox jumps over the lazy dog, while seven vocoders sing in the rain.",
    "Flow based models turn noise into speech.",
    "Please call Stella and ask her to bring these things with her from the store.",
)


def espeak(text: str, path: Path, sample_rate: int = SPEECH_RATE) -> np.ndarray:
    """Synthesize ``text`` with espeak-ng; return float32 mono in [-1, 1] at ``sample_rate``.

    Skips the calling test when espeak-ng is not installed (Debian package ``espeak-ng``).
    """
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): no offline speech for this test")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=60)
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != sample_rate:
        import librosa

        audio = librosa.resample(audio, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(np.clip(audio, -1.0, 1.0), dtype=np.float32)


@pytest.fixture(scope="session")
def speech_22k(tmp_path_factory) -> np.ndarray:
    """About 5 s of espeak-ng speech: ``(T,)`` float32 in [-1, 1] at 22050 Hz (read-only: copy to modify)."""
    audio = espeak(SPEECH_TEXTS[0], tmp_path_factory.mktemp("speech") / "speech.wav")
    audio.setflags(write=False)
    return audio


@pytest.fixture(scope="session")
def speech_wav_dir(tmp_path_factory) -> Path:
    """A folder with ``utt0.wav``..``utt2.wav``: espeak-ng speech, 22050 Hz, 16-bit PCM mono (do not modify)."""
    folder = tmp_path_factory.mktemp("speech_wavs")
    raw = tmp_path_factory.mktemp("speech_raw")
    for i, text in enumerate(SPEECH_TEXTS):
        audio = espeak(text, raw / f"utt{i}.wav")
        sf.write(str(folder / f"utt{i}.wav"), audio, SPEECH_RATE, subtype="PCM_16")
    return folder


# A WaveGlow small enough for CPU tests: 80 mels / hop 256 (so real mels fit), 4 flows with one early exit
# (channels 8, 8, 6, 6), 3 WN layers (odd), 16 WN channels.
TINY_CONFIG = WaveGlowConfig(
    n_mels=80, n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=3, n_channels=16, kernel_size=3,
    hop_length=256,
)


@pytest.fixture
def tiny_config() -> WaveGlowConfig:
    """:data:`TINY_CONFIG`, a fresh copy (a test may change its fields)."""
    return dataclasses.replace(TINY_CONFIG)


@pytest.fixture(scope="module")
def torch_single_thread():
    """One intra-op thread while a module's tests run (restored after). Tiny models are dominated by
    threading overhead: on a busy 2-core machine they run 3-4x faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


