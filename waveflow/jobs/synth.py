"""``waveflow synth``: copy synthesis of audio files (audio -> the model's mel -> audio), the tree mirrored."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..audio import AUDIO_EXTENSIONS, load_audio
from ..inference import Vocoder
from ..inference.runtime import derive_seed
from .planner import BatchError, Summary, check_output_dir, discover, run_per_file
from .vocode import OutputOptions, write_audio


def synth_files(
    inputs: Iterable[str | Path], out_dir: str | Path, vocoder: Vocoder, *, options: OutputOptions | None = None,
    overwrite: bool = False, seed: int = 1234, progress: bool = True,
) -> Summary:
    """Copy synthesis of audio files of any rate (audio -> the model's mel -> audio at the model's rate)."""
    options = options or OutputOptions()
    inputs, out_dir = list(inputs), Path(out_dir)
    check_output_dir(out_dir, inputs)
    items = discover(inputs, AUDIO_EXTENSIONS)
    if not items:
        raise BatchError(f"no audio files in {', '.join(map(str, inputs))}")
    summary = Summary()  # write_audio's warnings land here, run_per_file's counts are merged below

    def process(src: Path, dst: Path) -> float:
        audio, rate = load_audio(src)
        if audio.shape[0] * vocoder.sample_rate / rate <= vocoder.mel_config.n_fft // 2:
            raise ValueError(f"too short: {audio.shape[0]} samples at {rate} Hz")
        key = dst.relative_to(out_dir).with_suffix("").as_posix()
        out = vocoder.copy_synthesis(audio, rate, seed=derive_seed(seed, key)).cpu().numpy()
        write_audio(dst, out, vocoder.sample_rate, options, summary, src)
        return out.shape[0] / vocoder.sample_rate

    result = run_per_file(items, out_dir, f".{options.fmt}", process, overwrite, desc="synth", progress=progress)
    result.warnings.extend(summary.warnings)
    return result
