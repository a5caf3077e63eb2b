"""Voices that ship inside the package (``waveflow/voices/``), reachable by name wherever a checkpoint path is
accepted: ``load_model("starter")``, ``Vocoder("starter")``, ``--checkpoint starter``.

A file or folder of that name in the working directory wins over the bundled voice, so nobody's own
``starter`` checkpoint is ever shadowed.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from .errors import CheckpointError

VOICES = {"starter": "starter.pt"}
DEFAULT_VOICE = "starter"
BETTER_VOICE_HINT = ("for a better voice, import NVIDIA's published WaveGlow (waveflow import) or train one on "
                     "LJSpeech (recipes/ljspeech); see README")


def bundled_voices() -> list[str]:
    """Names of the voices shipped with this install."""
    folder = importlib.resources.files("waveflow.voices")
    return [name for name, file in VOICES.items() if folder.joinpath(file).is_file()]


def is_bundled(path: str | Path) -> bool:
    """``path`` names a bundled voice (and no file of that name exists here)."""
    return str(path) in VOICES and not Path(path).exists()


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint path, or the file of a bundled voice named ``path`` (``"starter"``)."""
    if not is_bundled(path):
        return Path(path)
    file = importlib.resources.files("waveflow.voices").joinpath(VOICES[str(path)])
    if not file.is_file():
        raise CheckpointError(path, "this bundled voice is not in this install of waveflow (reinstall it, or "
                                    "give a checkpoint file)")
    return Path(str(file))
