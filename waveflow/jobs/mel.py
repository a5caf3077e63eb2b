"""``waveflow mel``: audio files, folders or globs -> log-mel files, the input tree mirrored."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from ..audio import AudioError, load_audio
from ..mel import MelConfig, MelSpectrogram
from ..mel_io import save_mel
from .discover import AUDIO_INPUTS, Item
from .planner import Summary, make_plan, run_per_file
from .shard import Part


def extract_mels(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    config: MelConfig,
    fmt: str = "npy",
    overwrite: bool = False,
    device: str = "cpu",
    progress: bool = True,
    part: Part | None = None,
) -> Summary:
    """Audio files/folders/globs -> log-mel files in ``out_dir`` with the input tree mirrored.

    Each file is mixed down to mono and resampled to ``config.sample_rate`` if needed. Bad files are
    reported in the returned summary and do not stop the others. See :mod:`.planner` for what is checked
    before the work and what an interruption leaves; ``part`` is this process's share (:mod:`.shard`).
    """
    plan = make_plan(inputs, out_dir, AUDIO_INPUTS, f".{fmt}", overwrite=overwrite, part=part)
    mel_fn = MelSpectrogram(config).to(device)
    min_samples = config.n_fft // 2 + 1

    def process(item: Item, tmp: Path, source: Path) -> float:
        audio, _ = load_audio(source, sample_rate=config.sample_rate)
        if audio.shape[0] < min_samples:
            raise AudioError(item.source, f"too short: {audio.shape[0]} samples, a mel needs at least {min_samples}")
        with torch.inference_mode():
            mel = mel_fn(torch.from_numpy(audio).to(device))
        save_mel(tmp, mel)
        return audio.shape[0] / config.sample_rate

    return run_per_file(plan, process, desc="mel", progress=progress)
