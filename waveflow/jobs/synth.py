"""``waveflow synth``: copy synthesis of audio files (audio -> the model's mel -> audio), the tree mirrored."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from ..audio import AudioError, load_audio
from ..inference import Vocoder
from .discover import Item
from .planner import Plan, Summary, file_seed, run_per_file
from .writing import JobOptions, write_audio


def synth_files(plan: Plan, vocoder: Vocoder, options: JobOptions | None = None) -> Summary:
    """Copy synthesis of the plan's audio files (:func:`~.planner.make_plan` with
    :data:`~.discover.AUDIO_INPUTS`), of any rate (audio -> the model's mel -> audio at the model's rate).

    Each file's latent is seeded by ``file_seed(seed, relative path without suffix)``; a file longer than
    ``options.max_seconds`` fails, naming its length, before it is read (see :mod:`.planner` for the checks before
    the work and what an interruption leaves).
    """
    options = options or JobOptions()
    summary = plan.summary()

    def process(item: Item, tmp: Path, source: Path) -> float:
        try:
            info = sf.info(str(source))
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise AudioError(source, f"not a readable audio file ({e})") from None
        too_long = options.too_long(info.frames / info.samplerate) if info.samplerate > 0 else None
        if too_long:
            raise AudioError(source, too_long)
        audio, rate = load_audio(source)
        if audio.shape[0] * vocoder.sample_rate / rate <= vocoder.mel_config.n_fft // 2:
            raise ValueError(f"too short: {audio.shape[0]} samples at {rate} Hz")
        seed = file_seed(options.seed, item.relative.with_suffix(""))
        out = vocoder.copy_synthesis(audio, rate, seed=seed).cpu().numpy()
        write_audio(tmp, out, vocoder.sample_rate, options.output, summary, item.source)
        return out.shape[0] / vocoder.sample_rate

    return run_per_file(plan, process, desc="synth", progress=options.progress, summary=summary)
