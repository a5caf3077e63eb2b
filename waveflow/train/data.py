"""Training data: utterance lists (LJSpeech folder, audio folder, file list), a stable split, random segments.

Everything random here is derived from ``(seed, epoch, position)`` rather than from global or worker RNG
state, so a resumed run draws exactly the segments the uninterrupted run would have drawn, whatever the
number of DataLoader workers. Mels are *not* computed here: the trainer computes them batched on the device.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset, Sampler

from ..audio import AUDIO_EXTENSIONS, AudioError, resample, to_mono
from ..config import ConfigError
from .config import DataConfig
from .exclude import Exclusion

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
INT16_STEP = 2.0**-15  # one 16-bit quantisation step of audio in [-1, 1]
ABSURD = 10.0  # samples beyond this (full scale is 1) are not audio: the clip is skipped, never trained on


@dataclass(frozen=True)
class Utterance:
    """One audio file: ``num_samples`` is its length at the training rate (after resampling)."""

    id: str
    path: Path
    num_samples: int
    file_rate: int


@dataclass
class Corpus:
    """Utterances by split, with what was left out and why (``skipped[reason] = [ids or paths]``)."""

    splits: dict[str, list[Utterance]]
    skipped: dict[str, list[str]]

    def summary(self) -> str:
        parts = [f"{name} {len(self.splits.get(name, []))}" for name in SPLITS]
        text = "clips: " + ", ".join(parts)
        for reason, items in self.skipped.items():
            text += f"; {len(items)} skipped ({reason})"
        return text

    def write_lists(self, folder: str | Path) -> None:
        """Write ``{split}.txt`` (``id|path`` per line) so the split of a run is on record."""
        from ..audio import atomic_path

        folder = Path(folder)
        for name, utts in self.splits.items():  # absolute paths: the lists work from any folder
            with atomic_path(folder / f"{name}.txt") as tmp:
                tmp.write_text("".join(f"{u.id}|{os.path.abspath(u.path)}\n" for u in utts))


# ---------------------------------------------------------------------------------------------- discovery
def split_of(utt_id: str, val_fraction: float, test_fraction: float, salt: str = "waveflow") -> str:
    """``train``/``val``/``test`` from a SHA-1 of the id: stable across machines, runs and corpus growth."""
    digest = hashlib.sha1(f"{salt}:{utt_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"


def detect_format(root: Path) -> str:
    if root.is_file():
        return "filelist"
    if (root / "metadata.csv").is_file() and (root / "wavs").is_dir():
        return "ljspeech"
    if root.is_dir():
        return "folder"
    raise ConfigError(f"data.root {root}: no such file or folder")


def list_files(root: str | Path, fmt: str = "auto") -> list[tuple[str, Path]]:
    """``(id, path)`` pairs of a dataset root, in a stable order."""
    root = Path(root)
    fmt = detect_format(root) if fmt == "auto" else fmt
    if fmt == "ljspeech":
        meta = root / "metadata.csv"
        if not meta.is_file():
            raise ConfigError(f"data.root {root}: not an LJSpeech folder (no metadata.csv)")
        ids = [line.split("|", 1)[0].strip() for line in meta.read_text(encoding="utf-8").splitlines()]
        return [(i, root / "wavs" / f"{i}.wav") for i in ids if i]
    if fmt == "folder":
        if not root.is_dir():
            raise ConfigError(f"data.root {root}: not a folder")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        return [(p.relative_to(root).with_suffix("").as_posix(), p) for p in files]
    if fmt == "filelist":
        if not root.is_file():
            raise ConfigError(f"data.root {root}: file list not found")
        out = []
        for line in root.read_text(encoding="utf-8").splitlines():
            raw = line.split("|", 1)[0].strip()
            if raw and not raw.startswith("#"):
                path = Path(raw) if Path(raw).is_absolute() else root.parent / raw
                out.append((Path(raw).with_suffix("").as_posix(), path))
        return out
    raise ConfigError(f"data.format: unknown format {fmt!r}")


def probe(path: Path, sample_rate: int) -> tuple[int, int]:
    """``(samples at sample_rate, file rate)`` from the header only. Raises AudioError for unreadable files."""
    if not path.is_file():
        raise AudioError(path, "file not found")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(path, f"not a readable audio file ({e})") from None
    if info.frames <= 0:
        raise AudioError(path, "the file contains no audio samples")
    return int(info.frames * sample_rate // info.samplerate), int(info.samplerate)


def scan(
    config: DataConfig, sample_rate: int, min_samples: int, val_min_samples: int | None = None
) -> Corpus:
    """Find, probe and split the utterances of ``config.root``.

    Unreadable files are reported by name once (here) and left out; clips shorter than ``min_samples``
    (``val_min_samples`` for the validation and test splits) are left out and counted, since zero-padding
    them would put silence that the data never had into the likelihood.

    Raises:
        ConfigError: no root, or no usable training clip.
    """
    if not config.root:
        raise ConfigError("data.root is required: an LJSpeech folder, a folder of audio files or a file list")
    pairs = list_files(config.root, config.format)
    val_pairs = list_files(config.val_list, "filelist") if config.val_list else []
    splits: dict[str, list[Utterance]] = {name: [] for name in SPLITS}
    skipped: dict[str, list[str]] = {}
    val_min = min_samples if val_min_samples is None else val_min_samples
    exclusion = Exclusion(config.exclude) if config.exclude else None
    for fixed, group in ((None, pairs), ("val", val_pairs)):
        for utt_id, path in group:
            if exclusion is not None and (utt_id, path) in exclusion:
                skipped.setdefault("listed in data.exclude", []).append(utt_id)
                continue
            try:
                n, rate = probe(path, sample_rate)
            except AudioError as e:
                log.warning("skipping unreadable audio %s: %s", path, e.reason)
                skipped.setdefault("unreadable", []).append(str(path))
                continue
            if fixed:
                split = fixed
            elif config.val_list:
                split = "train"
            else:
                split = split_of(utt_id, config.val_fraction, config.test_fraction, config.split_salt)
            need = min_samples if split == "train" else val_min
            if n < need:
                skipped.setdefault(f"shorter than {need} samples", []).append(utt_id)
                continue
            splits[split].append(Utterance(utt_id, path, n, rate))
    corpus = Corpus(splits, skipped)
    if exclusion is not None:
        exclusion.warn_unmatched(log)
    if not splits["train"]:
        raise ConfigError(f"data.root {config.root}: no usable training clip ({corpus.summary()})")
    return corpus


# ---------------------------------------------------------------------------------------------- reading
def read_audio(utt: Utterance, sample_rate: int, offset: int = 0, length: int | None = None) -> np.ndarray:
    """``length`` samples from ``offset`` (at ``sample_rate``) as float32 mono in [-1, 1].

    Files already at ``sample_rate`` are read partially (only the segment); others are read whole and
    resampled (resample a large corpus beforehand for speed).
    """
    same_rate = utt.file_rate == sample_rate
    try:
        if same_rate:
            stop = None if length is None else offset + length
            data, _ = sf.read(str(utt.path), start=offset, stop=stop, dtype="float32", always_2d=True)
        else:
            data, _ = sf.read(str(utt.path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(utt.path, f"not a readable audio file ({e})") from None
    audio = to_mono(data)
    if not same_rate:
        audio = resample(audio, utt.file_rate, sample_rate)
        audio = audio[offset:] if length is None else audio[offset : offset + length]
    if length is not None and audio.shape[0] < length:
        raise AudioError(utt.path, f"shorter than its header says ({audio.shape[0]} < {length} samples)")
    if not np.isfinite(audio).all():
        raise AudioError(utt.path, "the audio contains NaN or infinite samples")
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > ABSURD:
        raise AudioError(utt.path, f"samples up to {peak:.3g}, beyond ±{ABSURD:g} (full scale is ±1): not audio")
    return np.ascontiguousarray(audio, dtype=np.float32)


def check_clips(utterances: Sequence[Utterance], sample_rate: int) -> tuple[list[Utterance], list[tuple[str, str]]]:
    """Read each clip whole: ``(the good ones, [(path, reason)] of those that cannot be used)`` (unreadable,
    NaN/inf or absurd samples). For the validation split, read once before training."""
    good, bad = [], []
    for utt in utterances:
        try:
            read_audio(utt, sample_rate)
            good.append(utt)
        except AudioError as e:
            bad.append((str(utt.path), e.reason))
    return good, bad


def item_rng(*keys: int) -> np.random.Generator:
    """A generator determined by integer keys (seed, epoch, position)."""
    return np.random.default_rng(np.random.SeedSequence([abs(int(k)) for k in keys]))


class SegmentDataset(Dataset):
    """Random fixed-length segments for training.

    Indexed by ``(utterance index, item seed)`` pairs from :class:`EpochSampler` (a plain int uses the index
    as seed). A file that fails to read is replaced by the next utterance, so a worker never dies and batches
    keep their size; the item names it (``bad``), and the trainer reports each name once and counts it.

    Returns:
        ``{"audio": (segment_length,) float32, "id": str, "bad": ["path: reason", ...]}``.
    """

    def __init__(self, utterances: Sequence[Utterance], sample_rate: int, segment_length: int, dequantize: bool):
        self.utterances = list(utterances)
        self.sample_rate = sample_rate
        self.segment_length = segment_length
        self.dequantize = dequantize

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, key) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, key)
        bad = []
        for attempt in range(min(len(self), 16)):
            utt = self.utterances[(index + attempt) % len(self)]
            rng = item_rng(seed, attempt)
            offset = int(rng.integers(0, utt.num_samples - self.segment_length + 1))
            try:
                audio = read_audio(utt, self.sample_rate, offset, self.segment_length)
            except AudioError as e:
                bad.append(str(e))
                continue
            if self.dequantize:
                audio = audio + (rng.random(audio.shape[0], dtype=np.float32) - 0.5) * INT16_STEP
            return {"audio": torch.from_numpy(audio), "id": utt.id, "bad": bad}
        raise AudioError(self.utterances[index].path, "this and the following files could not be read")


class ClipDataset(Dataset):
    """Deterministic validation clips: the centre ``length`` samples, or the whole clip (``length=0``)
    trimmed to a multiple of ``multiple``."""

    def __init__(self, utterances: Sequence[Utterance], sample_rate: int, length: int, multiple: int):
        self.utterances = list(utterances)
        self.sample_rate = sample_rate
        self.length = length
        self.multiple = multiple

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> dict:
        utt = self.utterances[index]
        if self.length:
            audio = read_audio(utt, self.sample_rate, (utt.num_samples - self.length) // 2, self.length)
        else:
            audio = read_audio(utt, self.sample_rate)
            audio = audio[: audio.shape[0] // self.multiple * self.multiple]
        return {"audio": torch.from_numpy(audio), "id": utt.id}


class EpochSampler(Sampler):
    """Shuffled utterance order per epoch (``repeat`` passes), each index paired with its own item seed.

    The order and the seeds depend only on ``(seed, epoch)``: every process draws the same list (Accelerate
    then gives each process its own batches), and a resumed run continues the same sequence.
    """

    def __init__(self, num_items: int, seed: int, repeat: int = 1):
        self.num_items = num_items
        self.seed = seed
        self.repeat = repeat
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items * self.repeat

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = item_rng(self.seed, self.epoch, 0x5EED)
        order = np.concatenate([rng.permutation(self.num_items) for _ in range(self.repeat)])
        base = (self.seed * 1_000_003 + self.epoch) * len(self)
        for position, index in enumerate(order):
            yield int(index), int(base + position)


def collate(items: list[dict]) -> dict:
    """Stack equal-length clips: ``{"audio": (B, T), "ids": [str], "bad": [str]}`` (clips skipped for them)."""
    return {"audio": torch.stack([it["audio"] for it in items]), "ids": [it["id"] for it in items],
            "bad": [b for it in items for b in it.get("bad", ())]}


def steps_per_epoch(num_items: int, repeat: int, batch_size: int, num_processes: int) -> int:
    """Full batches per process per epoch (the last partial batch is dropped)."""
    return math.floor(num_items * repeat / batch_size) // num_processes
