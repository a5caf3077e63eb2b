"""Voices for the demo: a voice is a checkpoint, shown under a readable name and loaded on first use.

``--voices DIR`` offers every checkpoint in DIR; ``--checkpoint FILE`` (repeatable) adds single files. Names
come from the checkpoint's metadata (``waveflow import --name``, or the name a training run exported with),
else from the file name. Loaded vocoders are kept in a small LRU so a folder of large models does not fill
memory, and loading is serialised so two requests never load the same voice twice.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoints import DEFAULT_VOICE, CheckpointError, bundled_voices, resolve_checkpoint
from ..checkpoints.bundled import BETTER_VOICE_HINT
from ..errors import WaveflowError

log = logging.getLogger("waveflow.demo")

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


class VoiceError(WaveflowError, ValueError):
    """No usable voice was given (the message says what to pass instead)."""


@dataclass(frozen=True)
class Voice:
    name: str
    path: Path


def _meta_name(path: Path) -> str | None:
    """The ``meta.name`` of a waveflow model file, read without building the model (None if absent).

    ``mmap`` keeps this cheap for large files: only the small header objects are touched. Foreign
    (NVIDIA) checkpoints do not load with ``weights_only`` and simply have no name here.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - foreign or broken files are named after the file; loading reports errors
        return None
    if isinstance(payload, dict) and payload.get("format") == "waveflow":
        name = (payload.get("meta") or {}).get("name")
        return str(name).strip() or None if name else None
    return None


def _readable(stem: str) -> str:
    return stem.replace("_", " ").strip() or stem


def discover_voices(voices_dir: Path | None = None, checkpoints: list[Path] | None = None) -> list[Voice]:
    """Voices from a folder of checkpoints and/or single checkpoint files, with unique readable names.

    Raises:
        VoiceError: a path that does not exist, a folder without checkpoints, or nothing given at all.
    """
    paths: list[Path] = []
    if voices_dir is not None:
        if not voices_dir.is_dir():
            raise VoiceError(voices_dir, "--voices must be a folder of checkpoints")
        found = sorted(p for p in voices_dir.iterdir() if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES)
        if not found:
            raise VoiceError(voices_dir, f"no checkpoints ({', '.join(CHECKPOINT_SUFFIXES)}) in this folder")
        paths.extend(found)
    for path in checkpoints or []:
        path = _resolve(path)
        if not path.is_file():
            raise VoiceError(path, "checkpoint not found")
        paths.append(path)
    if not paths and DEFAULT_VOICE in bundled_voices():
        log.info("no voice given: the bundled %r voice (%s)", DEFAULT_VOICE, BETTER_VOICE_HINT)
        paths.append(resolve_checkpoint(DEFAULT_VOICE))
    if not paths:
        raise VoiceError(
            "no voice given: pass --checkpoint FILE (repeatable) or --voices DIR; "
            "`waveflow quickstart` trains a small one, `waveflow import` converts NVIDIA's published model"
        )
    voices: list[Voice] = []
    seen: dict[str, int] = {}
    for path in dict.fromkeys(p.resolve() for p in paths):
        name = _meta_name(path) or _readable(path.stem)
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        voices.append(Voice(name, path))
    return voices


def _resolve(path: Path) -> Path:
    try:
        return resolve_checkpoint(path)
    except CheckpointError as e:
        raise VoiceError(path, e.reason) from None


class VoiceBank:
    """Name -> loaded :class:`waveflow.inference.Vocoder`, loaded lazily, at most ``max_loaded`` at once."""

    def __init__(self, voices: list[Voice], device: str = "cpu", dtype: str = "float32", max_loaded: int = 4):
        if not voices:
            raise VoiceError("no voices")
        self.voices = {v.name: v for v in voices}
        self.device = device
        self.dtype = dtype
        self.max_loaded = max(1, max_loaded)
        self._loaded: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.voices)

    @property
    def default(self) -> str:
        return self.names[0]

    def get(self, name: str | None):
        """The vocoder of voice ``name`` (loaded on first use). Raises ValueError for an unknown name."""
        from ..inference import Vocoder

        name = name or self.default
        voice = self.voices.get(name)
        if voice is None:
            raise ValueError(f"unknown voice {name!r}; choose one of: {', '.join(self.names)}")
        with self._lock:
            vocoder = self._loaded.get(name)
            if vocoder is None:
                log.info("loading voice %r from %s", name, voice.path)
                vocoder = Vocoder(voice.path, device=self.device, dtype=self.dtype)
                self._loaded[name] = vocoder
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            self._loaded.move_to_end(name)
            return vocoder
