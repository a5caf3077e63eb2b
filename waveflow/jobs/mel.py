"""``waveflow mel``: audio files, folders or globs -> log-mel files, the input tree mirrored."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from ..audio import AUDIO_EXTENSIONS, AudioError, load_audio
from ..mel import MelConfig, MelSpectrogram
from ..mel_io import save_mel
from .planner import Summary, check_output_dir, discover, run_per_file


def extract_mels(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    config: MelConfig,
    fmt: str = "npy",
    overwrite: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> Summary:
    """Audio files/folders/globs -> log-mel files in ``out_dir`` with the input tree mirrored.

    Each file is mixed down to mono and resampled to ``config.sample_rate`` if needed. Bad files are
    reported in the returned summary and do not stop the others.
    """
    inputs = list(inputs)
    out_dir = Path(out_dir)
    check_output_dir(out_dir, inputs)
    items = discover(inputs, AUDIO_EXTENSIONS)
    mel_fn = MelSpectrogram(config).to(device)
    min_samples = config.n_fft // 2 + 1

    def process(src: Path, dst: Path) -> float:
        audio, _ = load_audio(src, sample_rate=config.sample_rate)
        if audio.shape[0] < min_samples:
            raise AudioError(src, f"too short: {audio.shape[0]} samples, a mel needs at least {min_samples}")
        with torch.inference_mode():
            mel = mel_fn(torch.from_numpy(audio).to(device))
        save_mel(dst, mel)
        return audio.shape[0] / config.sample_rate

    return run_per_file(items, out_dir, f".{fmt}", process, overwrite, desc="mel", progress=progress)
