"""Named model shapes shared by the benchmark scripts: ``default`` is NVIDIA's published WaveGlow-256;
``small`` and ``tiny`` are the model sections of ``configs/waveglow-<name>.yaml`` (the shapes our training
configs use), so every benchmark's "small" is the same model."""

from __future__ import annotations

from pathlib import Path

from waveflow import WaveGlowConfig
from waveflow.config import from_dict, load_yaml

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("default", "small", "tiny")


def model_config(name: str) -> tuple[WaveGlowConfig, str]:
    """``(config, where it came from)`` for one of :data:`NAMES`."""
    if name not in NAMES:
        raise ValueError(f"unknown config {name!r}; choose from {', '.join(NAMES)}")
    if name == "default":
        return WaveGlowConfig(), "WaveGlowConfig() (NVIDIA's published shape)"
    path = ROOT / "configs" / f"waveglow-{name}.yaml"
    return from_dict(WaveGlowConfig, load_yaml(path).get("model", {}), "model"), path.name
