"""``waveflow quickstart``: from nothing to a demo of your own (tiny) voice, offline, on a CPU.

Four stages, each resumable (re-running skips what is done):

1. **corpus**: the offline voice corpus (:func:`waveflow.corpus.make_corpus`) speaks ``utterances`` sentences
   with one TTS voice into ``OUT/corpus`` (LJSpeech layout);
2. **train**: the bundled ``tiny`` config with the source-filter prior for ``steps`` optimizer steps into
   ``OUT/<voice name>/``
   (the trainer's progress bar; an interrupted run continues where it stopped);
3. **vocode**: the held-out test utterances: their mels into ``OUT/test-mels/``, the vocoded audio and
   the originals side by side into ``OUT/vocoded/``;
4. **demo**: the Gradio demo on the new voice (unless ``--no-demo``).

With the source-filter prior the voice speaks the test sentences, voiced, from the first step (noise with the
mel's envelope and pitch); minutes of training improve its likelihood more than its sound: see the README for
what to expect and how to get a better voice.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import WaveflowError
from ..progress import progress_bar

TINY_CONFIG = "tiny"  # a bundled config (waveflow/configs/waveglow-tiny.yaml)
# The source-filter prior makes the voice speak with the mel's envelope and pitch from the first step (README,
# "What to expect"); dither keeps the flow from shrinking TTS audio's digital silence without bound.
PRIOR_OVERRIDES = ("model.prior=source-filter", "data.dequantize=true")
VOICE_PREFERENCE = ("flite-slt", "espeak-en-us")  # flite's slt is the most natural of Debian's voices


class QuickstartError(WaveflowError, RuntimeError):
    """A stage cannot run; the message says what to install or change."""


@dataclass
class QuickstartResult:
    corpus: Path
    run_dir: Path
    model: Path
    vocoded: list[Path] = field(default_factory=list)
    mels: list[Path] = field(default_factory=list)


def pick_voice(voice: str) -> str:
    """``auto`` -> the first of :data:`VOICE_PREFERENCE` whose TTS engine is installed; a name is checked."""
    from ..corpus import CorpusError, check_engines

    candidates = VOICE_PREFERENCE if voice == "auto" else (voice,)
    problems = []
    for name in candidates:
        try:
            check_engines([name])
            return name
        except CorpusError as e:
            problems.append(str(e))
    raise QuickstartError("no offline TTS voice to make a corpus with: " + "; ".join(problems))


def make_voice_corpus(out_dir: Path, voice: str, utterances: int, progress: bool) -> Path:
    from ..corpus import make_corpus

    print(f"[1/4] corpus: {utterances} utterances of {voice} -> {out_dir}", file=sys.stderr, flush=True)
    [folder] = make_corpus(out_dir, voices=(voice,), n_utterances=utterances, progress=progress)
    return folder


def train_voice(corpus: Path, run_dir: Path, steps: int, seed: int, progress: bool, config: str | Path = TINY_CONFIG,
                minutes: float = 0.0) -> Path:
    """Train the tiny config with the source-filter prior for ``steps`` steps (or ``minutes``, if that comes first; 0 = no limit) on
    ``corpus``; returns the exported model file."""
    from ..config import find_config
    from ..train.config import load_run_config
    from ..train.trainer import run

    config = find_config(config)
    overrides = [
        f"data.root={corpus}",
        f"train.run_dir={run_dir}",
        f"train.max_steps={steps}",
        f"train.max_minutes={minutes}",
        f"train.seed={seed}",
        f"train.checkpoint_every={steps}",
        f"train.validate_every={max(steps, 1)}",
        "train.tracker=none",
        f"train.progress={'true' if progress else 'false'}",
        *PRIOR_OVERRIDES,
    ]
    limit = f" (at most {minutes:g} minutes)" if minutes else ""
    print(f"[2/4] train: {config.name} for {steps} steps{limit} on CPU -> {run_dir}", file=sys.stderr, flush=True)
    run(load_run_config(config, overrides))
    model = run_dir / "model.pt"
    if not model.is_file():
        raise QuickstartError(f"training finished without exporting {model}")
    return model


def _test_clips(run_dir: Path, n: int) -> list[tuple[str, Path]]:
    """The first ``n`` utterances of the run's test split (then validation, then training, if it is short)."""
    clips: list[tuple[str, Path]] = []
    for split in ("test", "val", "train"):
        listing = run_dir / "split" / f"{split}.txt"
        if listing.is_file():
            for line in listing.read_text().splitlines():
                if "|" in line and len(clips) < n:
                    utt_id, path = line.split("|", 1)
                    clips.append((utt_id, Path(path)))
    return clips


def vocode_test_clips(model: Path, run_dir: Path, out_dir: Path, n: int, sigma: float | None, seed: int, device: str,
                      progress: bool) -> tuple[list[Path], list[Path]]:
    """Mels of ``n`` held-out clips into ``out_dir/test-mels``; vocoded audio + originals into ``out_dir/vocoded``
    (``sigma`` None: the model's recommendation, else the library's fallback, as everywhere else)."""
    from ..audio import load_audio, save_audio
    from ..inference import Vocoder
    from ..mel_io import save_mel

    vocoder = Vocoder(model, device=device, sigma=sigma, seed=seed)
    clips = _test_clips(run_dir, n)
    print(f"[3/4] vocode: {len(clips)} held-out utterances -> {out_dir / 'vocoded'}", file=sys.stderr, flush=True)
    wavs, mels = [], []
    for utt_id, path in progress_bar(clips, desc="vocode", unit="clip", enabled=progress):
        audio, rate = load_audio(path, sample_rate=vocoder.sample_rate)
        mel = vocoder.mel(audio, rate)
        mel_path = out_dir / "test-mels" / f"{utt_id}.npy"
        save_mel(mel_path, mel)
        wav_path = out_dir / "vocoded" / f"{utt_id}.wav"
        save_audio(wav_path, vocoder.vocode(mel).cpu(), vocoder.sample_rate)
        shutil.copyfile(path, out_dir / "vocoded" / f"{utt_id}-original.wav")
        wavs.append(wav_path)
        mels.append(mel_path)
    return wavs, mels


def run_quickstart(
    out_dir: Path,
    voice: str = "auto",
    utterances: int = 40,
    steps: int = 1500,
    minutes: float = 0.0,
    seed: int = 0,
    test_clips: int = 3,
    sigma: float | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> QuickstartResult:
    """Stages 1-3 (see the module docstring); the demo is started by the caller."""
    if steps < 1 or utterances < 8 or test_clips < 1:
        raise QuickstartError("need --steps >= 1, --utterances >= 8 (a batch of training clips) and --test-clips >= 1")
    voice = pick_voice(voice)
    corpus = make_voice_corpus(out_dir / "corpus", voice, utterances, progress)
    run_dir = out_dir / f"tiny-{voice}"
    model = train_voice(corpus, run_dir, steps, seed, progress, minutes=minutes)
    wavs, mels = vocode_test_clips(model, run_dir, out_dir, test_clips, sigma, seed, device, progress)
    return QuickstartResult(corpus, run_dir, model, wavs, mels)


def report(result: QuickstartResult) -> str:
    lines = [
        "",
        "quickstart done:",
        f"  corpus         {result.corpus}",
        f"  voice (model)  {result.model}",
        f"  test mels      {result.mels[0].parent if result.mels else '-'}",
        f"  vocoded audio  {result.vocoded[0].parent if result.vocoded else '-'}  (<id>.wav beside <id>-original.wav)",
        "  This tiny voice (with the source-filter prior) trained for minutes on a CPU: expect a rough,",
        "  buzzy voice with the sentence's pitch, far from natural. For a real voice see README (LJSpeech",
        "  recipe, or `waveflow import` of NVIDIA's published WaveGlow).",
    ]
    return "\n".join(lines)
