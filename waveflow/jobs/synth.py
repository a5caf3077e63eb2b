"""``waveflow synth``: copy synthesis of audio files (audio -> the model's mel -> audio), the tree mirrored."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..audio import load_audio
from ..inference import Vocoder
from ..inference.runtime import derive_seed
from .discover import AUDIO_INPUTS, Item
from .planner import Summary, make_plan, run_per_file
from .shard import Part
from .vocode import OutputOptions, write_audio


def synth_files(
    inputs: Iterable[str | Path], out_dir: str | Path, vocoder: Vocoder, *, options: OutputOptions | None = None,
    overwrite: bool = False, seed: int = 1234, progress: bool = True, part: Part | None = None,
) -> Summary:
    """Copy synthesis of audio files of any rate (audio -> the model's mel -> audio at the model's rate).

    Each file's latent is seeded by ``derive_seed(seed, relative path without suffix)``; see :mod:`.planner`
    for the checks before the work and what an interruption leaves; ``part``: this process's share.
    """
    options = options or OutputOptions()
    plan = make_plan(inputs, out_dir, AUDIO_INPUTS, f".{options.fmt}", overwrite=overwrite, part=part)
    summary = plan.summary()

    def process(item: Item, tmp: Path) -> float:
        audio, rate = load_audio(item.source)
        if audio.shape[0] * vocoder.sample_rate / rate <= vocoder.mel_config.n_fft // 2:
            raise ValueError(f"too short: {audio.shape[0]} samples at {rate} Hz")
        key = item.relative.with_suffix("").as_posix()
        out = vocoder.copy_synthesis(audio, rate, seed=derive_seed(seed, key)).cpu().numpy()
        write_audio(tmp, out, vocoder.sample_rate, options, summary, item.source)
        return out.shape[0] / vocoder.sample_rate

    return run_per_file(plan, process, desc="synth", progress=progress, summary=summary)
