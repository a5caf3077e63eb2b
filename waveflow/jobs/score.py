"""``waveflow score``: the exact likelihood of every clip of a corpus, to find the bad clips before training.

Per clip (one JSON record in ``REPORT/clips/``, mirroring the input tree, written by the one planner of the
folder jobs: planned first, resumable, per-file errors, shared out by ``--shard`` and ``accelerate launch``):

- **the model's view**: bits per sample (the exact NLL: the mean of its profile frame by frame,
  :meth:`nll_profile`, which equals :meth:`nll`; the prior's share apart), that profile, and the same for a
  sample the model draws from the clip's own mel at sigma 1 (:meth:`infer`): the bits the model *expects*
  where the mel is what it is. Their difference, the **surprise**, is what the mel does not explain, overall
  and frame by frame (a click, a burst);
- **plain signal facts** (:mod:`.score_facts`) of the samples as stored.

Then the corpus is judged as a whole (:mod:`.score_judge`: robust statistics, human reasons) and reported
(:mod:`.score_report`). Long clips are scored in windows of ``window_seconds`` (exact within each window), so
memory stays flat.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..audio import AudioError, resample
from ..inference.runtime import plain_cpu_convolutions
from ..mel import MelConfig, MelSpectrogram
from ..progress import progress_bar
from .discover import BatchError, Item
from .planner import Plan, Summary, file_seed, run_per_file
from .score_facts import read_clip, signal_facts

RECORDS = "clips"  # REPORT/clips/<input tree>.json: one record per scored clip
MODEL_FILE = "model.json"
LN2 = math.log(2.0)


@dataclass
class ScoreOptions:
    """How ``waveflow score`` runs.

    Attributes:
        seed: base seed of the model's own sample of each clip (seeded by it and the clip's relative path).
        z: robust z-score (median / MAD over the corpus) beyond which a clip is "not like the rest".
        max_seconds: clips longer than this fail, naming their length (0 = no limit).
        window_seconds: longer clips are scored in windows of this length.
        progress: show a progress bar.
    """

    seed: int = 1234
    z: float = 5.0
    max_seconds: float = 3600.0
    window_seconds: float = 30.0
    progress: bool = True


class Scorer:
    """A model's exact view of a clip (see the module docstring). ``model``: any model with ``nll``,
    ``nll_profile`` and ``infer`` (:class:`~waveflow.models.VocoderModel`), in float32 on ``device``."""

    def __init__(self, model: torch.nn.Module, mel_config: MelConfig, device: torch.device, name: str = ""):
        self.model = model.eval()
        self.mel_config = mel_config
        self.device = device
        self.name = name
        self.mel = MelSpectrogram(mel_config).to(device)
        self.multiple = int(model.config.sample_multiple)
        self.hop = mel_config.hop_length
        self.min_samples = max(self.multiple, mel_config.n_fft // 2 + 1)

    @torch.inference_mode()
    def score(self, audio: np.ndarray, seed: int, window_seconds: float = 30.0) -> dict:
        """``audio``: float32 ``(T,)`` at the model's rate. Returns bits per sample, the prior's share, the
        model's expectation (its own sample's bits) and both profiles (bits per sample of each hop)."""
        with plain_cpu_convolutions(self.device):
            return self._score(audio, seed, window_seconds)

    def _score(self, audio: np.ndarray, seed: int, window_seconds: float) -> dict:
        usable = len(audio) // self.multiple * self.multiple
        if usable < self.min_samples:
            raise AudioError("clip", f"too short to score: {len(audio)} samples at {self.mel_config.sample_rate} "
                                     f"Hz, at least {self.min_samples}")
        window = max(self.min_samples, int(window_seconds * self.mel_config.sample_rate)) // self.multiple
        window *= self.multiple
        generator = torch.Generator(self.device).manual_seed(seed)
        totals, profiles = np.zeros(3), ([], [])
        for start in range(0, usable, window):
            piece = audio[start:min(start + window, usable)]
            if len(piece) < self.min_samples:  # a last sliver: part of the window before it
                break
            x = torch.from_numpy(np.ascontiguousarray(piece, dtype=np.float32)).to(self.device)[None]
            mel = self.mel(x)
            sample = self.model.infer(mel, sigma=1.0, generator=generator)[:, : x.shape[1]].float()
            # One pass for both profiles; the clip's exact NLL is its profile's mean (model.nll's, to rounding),
            # so the only other work is the prior alone for its share (a small part of one pass).
            profile = self.model.nll_profile(torch.cat([x, sample]), mel.repeat(2, 1, 1), sigma=1.0)
            bits = profile.double().cpu().numpy() / LN2 + 15.0
            prior = 0.0 if self.model.prior is None else -float(self.model.prior(x, mel)[1]) / x.shape[1] / LN2
            totals += len(piece) * np.array([bits[0].mean(), prior, bits[1].mean()])
            profiles[0].append(bits[0])
            profiles[1].append(bits[1])
        count = sum(len(p) for p in profiles[0]) * self.hop
        bits_per_sample, prior, expected = totals / count
        return {"bits_per_sample": bits_per_sample, "prior_bits": prior, "expected_bits": expected,
                "profile": np.concatenate(profiles[0]), "expected_profile": np.concatenate(profiles[1]),
                "scored_seconds": count / self.mel_config.sample_rate}

    def describe(self, checkpoint: str | Path, path: Path | None = None) -> dict:
        """What the report says about the model (and what a rerun checks it is the same); ``path``: the file
        ``checkpoint`` (a path or a bundled voice's name) resolves to."""
        path = Path(path or checkpoint)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None
        return {"checkpoint": str(checkpoint), "name": self.name, "sha256": digest,
                "sample_rate": self.mel_config.sample_rate}


def score_record(item: Item, source: Path, scorer: Scorer, options: ScoreOptions) -> dict:
    """One clip's record: its facts and the model's view (see the module docstring)."""
    try:
        seconds = sf.info(str(source)).duration
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(item.source, f"not a readable audio file ({e})") from None
    if options.max_seconds and seconds > options.max_seconds:
        raise AudioError(item.source, f"too long: {seconds:.1f} s; --max-seconds is {options.max_seconds:g}: "
                                      "raise it to take this file")
    clip = read_clip(source)
    if np.abs(clip.audio).max() > 10.0:
        raise AudioError(item.source, "samples far beyond full scale (±1): not audio")
    facts = signal_facts(clip)
    audio = resample(clip.audio.astype(np.float32), clip.rate, scorer.mel_config.sample_rate)
    try:
        model = scorer.score(audio, file_seed(options.seed, item.relative), options.window_seconds)
    except AudioError as e:
        raise AudioError(item.source, e.reason) from None
    return {
        "path": str(item.source), "relative": item.relative.as_posix(),
        "frame_seconds": scorer.hop / scorer.mel_config.sample_rate, **_rounded(model),
        "facts": facts.values, "clicks": facts.clicks, "bursts": facts.bursts,
        "longest_silence": facts.longest_silence,
    }


def _rounded(model: dict) -> dict:
    out = {k: round(float(v), 5) for k, v in model.items() if not isinstance(v, np.ndarray)}
    out.update({k: np.round(v, 3).tolist() for k, v in model.items() if isinstance(v, np.ndarray)})
    return out


def score_files(plan: Plan, scorer: Scorer, options: ScoreOptions | None = None) -> Summary:
    """Score the plan's clips (:func:`~.planner.make_plan` into ``REPORT/clips`` with suffix ``.json``); see
    the module docstring. Bad files are reported in the summary, never stop the job."""
    options = options or ScoreOptions()
    todo = sum(len(plan.todo(w)) for w in plan.windows)
    main = plan.part.launch is None or plan.part.launch.main
    with progress_bar(total=todo, desc="score", unit="clip", enabled=options.progress and main) as bar:

        def process(item: Item, tmp: Path, source: Path) -> float:
            try:
                record = score_record(item, source, scorer, options)
                tmp.write_text(json.dumps(record, allow_nan=False) + "\n")
                return record["facts"]["seconds"]
            finally:
                bar.update(1)

        return run_per_file(plan, process, expected_errors=(ValueError, OSError, RuntimeError), progress=False)


def check_model(report_dir: Path, model: dict, overwrite: bool) -> None:
    """Refuse to mix two models' records in one report folder; record the model on first use."""
    path = report_dir / MODEL_FILE
    if path.is_file() and not overwrite:
        before = json.loads(path.read_text())
        if {k: before.get(k) for k in ("name", "sha256")} != {k: model.get(k) for k in ("name", "sha256")}:
            raise BatchError(report_dir, f"its clips were scored with another model ({before.get('checkpoint')}); "
                                         "use --overwrite to score them again with this one, or another -o")
    report_dir.mkdir(parents=True, exist_ok=True)
    from ..audio import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(model, indent=2) + "\n")


def load_records(plan: Plan) -> tuple[list[dict], int]:
    """``(records of every discovered clip that has one, number of clips without one)``, in plan order: the
    whole corpus, whichever part this process did."""
    records, missing = [], 0
    for item in plan.found.items:
        try:
            record = json.loads(plan.dest(item).read_text())
        except (OSError, ValueError):
            missing += 1
            continue
        record["path"] = str(item.source)  # as given this time
        records.append(record)
    return records, missing
