"""Model files: waveflow's own format, and safe import of NVIDIA WaveGlow checkpoints.

Own format: one ``torch.save`` of plain types and tensors (``torch.load(weights_only=True)`` reads it)::

    {"format": "waveflow", "version": 1, "model_config": {...}, "mel_config": {...},
     "state_dict": {name: tensor}, "meta": {...}}

The weights are stored folded (no weight-norm ``g``/``v`` split), under names that do not depend on how a
PyTorch release implements parametrisations, so files outlive PyTorch upgrades.
Foreign files are read by :mod:`.unpickler` (no code from the file runs) and converted by :mod:`.nvidia`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..audio import atomic_path
from ..config import ConfigError, from_dict, to_dict
from ..mel import MelConfig
from ..models import WaveGlow, WaveGlowConfig, plain_state_dict
from .bundled import resolve_checkpoint
from .errors import CheckpointError
from .nvidia import convert_foreign
from .unpickler import safe_load

FORMAT = "waveflow"
VERSION = 1


@dataclass
class LoadedCheckpoint:
    """A model with what is known about it."""

    model: WaveGlow
    mel_config: MelConfig
    origin: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "")


# ---------------------------------------------------------------------------------------------- own format
def save_model(
    model: WaveGlow,
    path: str | Path,
    mel_config: MelConfig | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (config + folded weights + mel config + meta) to ``path`` atomically.

    Args:
        model: a :class:`WaveGlow`, with or without weight norm.
        path: output file (``.pt`` by convention); parent folders are created.
        mel_config: the features the model was trained on; default: Tacotron2's with the model's hop/n_mels.
        meta: plain JSON-like extras (``name``, ``origin``, ``step``, ...).
    """
    mel_config = mel_config or MelConfig(hop_length=model.config.hop_length, n_mels=model.config.n_mels)
    _check_mel_matches(model.config, mel_config, path)
    info = {
        "waveflow_version": _version(),
        "torch_version": str(torch.__version__),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "origin": "waveflow",
    }
    info.update(meta or {})
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": to_dict(model.config),
        "mel_config": to_dict(mel_config),
        "state_dict": plain_state_dict(model),
        "meta": info,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _version() -> str:
    from ..version import __version__

    return __version__


def _check_mel_matches(cfg: WaveGlowConfig, mel: MelConfig, path: str | Path) -> None:
    if mel.hop_length != cfg.hop_length or mel.n_mels != cfg.n_mels:
        raise CheckpointError(
            path,
            f"mel config (hop {mel.hop_length}, {mel.n_mels} mels) does not match the model "
            f"(hop {cfg.hop_length}, {cfg.n_mels} mels)",
        )


def _build(cfg: WaveGlowConfig, state: dict[str, torch.Tensor], weight_norm: bool, path) -> WaveGlow:
    model = WaveGlow(cfg).remove_weight_norm()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(path, f"weights do not fit the model config: {str(e).splitlines()[0]}") from None
    if weight_norm:
        model.apply_weight_norm()
    return model


def _from_own(payload: dict, path: Path, weight_norm: bool) -> LoadedCheckpoint:
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(path, f"waveflow checkpoint version {version!r} is newer than this waveflow reads")
    try:
        cfg = from_dict(WaveGlowConfig, payload["model_config"], "model")
        mel = from_dict(MelConfig, payload["mel_config"], "mel")
    except (ConfigError, KeyError) as e:
        raise CheckpointError(path, f"invalid config in checkpoint: {e}") from None
    meta = dict(payload.get("meta") or {})
    model = _build(cfg, payload["state_dict"], weight_norm, path)
    return LoadedCheckpoint(model, mel, str(meta.get("origin", "waveflow")), meta)


# ---------------------------------------------------------------------------------------------- loading
def load_checkpoint(
    path: str | Path, weight_norm: bool = True, sample_rate: int | None = None
) -> LoadedCheckpoint:
    """Load any supported checkpoint: waveflow's, NVIDIA/waveglow's pickled model, DeepLearningExamples'.

    Args:
        path: the file, or the name of a bundled voice (``"starter"``).
        weight_norm: return the model with weight norm applied (trainable form); ``False`` gives the folded
            inference form. Outputs are the same either way.
        sample_rate: for foreign checkpoints, which do not record it: the rate of the audio the model was
            trained on (default 22050, NVIDIA's). Ignored for waveflow files.

    Raises:
        CheckpointError: missing/corrupt file, unknown layout, or a pickle that needs a class or function
            outside the allow-list (refused without running it).
    """
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    payload = safe_load(path)
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return _from_own(payload, path, weight_norm)

    state, cfg, origin = convert_foreign(payload, path)
    rate = sample_rate or 22050
    try:
        mel = MelConfig(sample_rate=rate, hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmax=min(8000.0, rate / 2))
    except ConfigError as e:
        raise CheckpointError(path, f"cannot describe its features: {e}") from None
    model = _build(cfg, state, weight_norm, path)
    meta = {"origin": origin, "source": path.name}
    return LoadedCheckpoint(model, mel, origin, meta)


def load_model(path: str | Path, weight_norm: bool = True) -> WaveGlow:
    """Load a :class:`WaveGlow` from any supported checkpoint (see :func:`load_checkpoint`)."""
    return load_checkpoint(path, weight_norm=weight_norm).model


# ---------------------------------------------------------------------------------------------- commands
def describe(ck: LoadedCheckpoint) -> dict[str, Any]:
    """A plain summary of a loaded checkpoint for ``waveflow info``."""
    return {
        "origin": ck.origin,
        "name": ck.name,
        "parameters": ck.model.num_parameters(),
        "sample_rate": ck.mel_config.sample_rate,
        "model": to_dict(ck.model.config),
        "mel": to_dict(ck.mel_config),
        "meta": {k: v for k, v in ck.meta.items() if isinstance(v, (str, int, float, bool)) or v is None},
    }


def import_checkpoint(
    src: str | Path,
    dst: str | Path,
    sample_rate: int | None = None,
    name: str | None = None,
    overwrite: bool = False,
) -> LoadedCheckpoint:
    """Convert any supported checkpoint to waveflow's own format (refusing to overwrite ``dst``)."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and not overwrite:
        raise CheckpointError(dst, "already exists (use --overwrite to replace it)")
    if dst.exists() and dst.resolve() == src.resolve():
        raise CheckpointError(dst, "the output is the input file; choose another output path")
    ck = load_checkpoint(src, sample_rate=sample_rate)
    meta = dict(ck.meta)
    meta.setdefault("source", src.name)
    meta["name"] = name or ck.name or src.stem
    save_model(ck.model, dst, ck.mel_config, meta)
    return ck
