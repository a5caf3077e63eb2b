"""Model files: waveflow's own format, and safe import of NVIDIA WaveGlow checkpoints.

Own format: one ``torch.save`` of plain types and tensors (``torch.load(weights_only=True)`` reads it)::

    {"format": "waveflow", "version": 2, "model_type": "waveglow", "model_config": {...}, "mel_config": {...},
     "state_dict": {name: tensor}, "meta": {...}}

``model_type`` names the model family (:mod:`waveflow.models.registry`). Version 1 files (every file written
before there was a second family, the first bundled starter voice among them) have no ``model_type`` and are
WaveGlows; they load unchanged.

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
from ..errors import WaveflowError
from ..mel import MelConfig
from ..models import MODEL_TYPES, VocoderModel, build_model, family, model_type, plain_state_dict
from ..safeload import check_weights
from .bundled import resolve_checkpoint
from .errors import CheckpointError
from .nvidia import convert_foreign
from .unpickler import safe_load

FORMAT = "waveflow"
VERSION = 2


@dataclass
class LoadedCheckpoint:
    """A model with what is known about it."""

    model: VocoderModel
    mel_config: MelConfig
    origin: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "")


# ---------------------------------------------------------------------------------------------- own format
def save_model(
    model: VocoderModel,
    path: str | Path,
    mel_config: MelConfig | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (config + folded weights + mel config + meta) to ``path`` atomically.

    Args:
        model: a model of any family (:class:`~waveflow.WaveGlow`, :class:`~waveflow.WaveFlow`), with or
            without weight norm.
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
        "model_type": model_type(model),
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


def _check_mel_matches(cfg, mel: MelConfig, path: str | Path) -> None:
    if mel.hop_length != cfg.hop_length or mel.n_mels != cfg.n_mels:
        raise CheckpointError(
            path,
            f"mel config (hop {mel.hop_length}, {mel.n_mels} mels) does not match the model "
            f"(hop {cfg.hop_length}, {cfg.n_mels} mels)",
        )


def _build(cfg, state: dict[str, torch.Tensor], weight_norm: bool, path) -> VocoderModel:
    check_weights(state, path, CheckpointError)
    # A config may describe a model far larger than the weights the file holds: refuse before allocating it.
    needed, held = cfg.weight_count(), sum(t.numel() for t in state.values())
    if needed > held + held // 4 + (1 << 18):
        raise CheckpointError(path, f"weights do not fit the model config: it describes {needed:,} weights, the file "
                                    f"holds {held:,}")
    model = build_model(cfg).remove_weight_norm()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(path, f"weights do not fit the model config: {str(e).splitlines()[0]}") from None
    if weight_norm:
        model.apply_weight_norm()
    return model


# Feature settings a file may declare; beyond these a mel config is hostile, not a model (n_mels and hop_length
# are the model's, capped by the model config).
MEL_CAPS = {"sample_rate": 768_000, "n_fft": 65_536, "win_length": 65_536}


def _section(payload: dict, name: str, path) -> dict:
    """``payload[name]``, a mapping with text keys, or a :class:`CheckpointError` saying what is wrong."""
    if name not in payload:
        raise CheckpointError(path, f"waveflow checkpoint without '{name}'")
    value = payload[name]
    if not isinstance(value, dict):
        raise CheckpointError(path, f"'{name}' is a {type(value).__name__}, not a mapping")
    bad = next((k for k in value if not isinstance(k, str)), None)
    if bad is not None:
        raise CheckpointError(path, f"'{name}' has a key of type {type(bad).__name__}, not text")
    return value


def _plain(value: Any, depth: int = 0) -> bool:
    """JSON-like: text, numbers, booleans, None, and lists/dicts of them (a few levels deep)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    if depth < 8 and isinstance(value, (list, tuple)):
        return all(_plain(v, depth + 1) for v in value)
    if depth < 8 and isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _from_own(payload: dict, path: Path, weight_norm: bool) -> LoadedCheckpoint:
    version = payload.get("version")
    if type(version) is not int:
        raise CheckpointError(path, f"waveflow checkpoint version {version!r:.40} is not a whole number")
    if version > VERSION:
        raise CheckpointError(path, f"waveflow checkpoint version {version!r} is newer than this waveflow reads")
    kind = payload.get("model_type", "waveglow") if version >= 2 else "waveglow"
    if not isinstance(kind, str) or kind not in MODEL_TYPES:
        raise CheckpointError(path, f"unknown model type {kind!r:.40} (this waveflow knows {', '.join(MODEL_TYPES)})")
    model_config, mel_config = _section(payload, "model_config", path), _section(payload, "mel_config", path)
    if model_config.get("type", kind) != kind:
        raise CheckpointError(path, f"model_type {kind!r} but a model config of type {model_config.get('type')!r:.40}")
    state = _section(payload, "state_dict", path)
    meta = payload.get("meta") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(path, f"'meta' is a {type(meta).__name__}, not a mapping")
    try:
        cfg = from_dict(family(kind).config, model_config, "model")
        mel = from_dict(MelConfig, mel_config, "mel")
    except ConfigError as e:
        raise CheckpointError(path, f"invalid config in checkpoint: {e}") from None
    for name, cap in MEL_CAPS.items():
        if getattr(mel, name) > cap:
            raise CheckpointError(path, f"invalid config in checkpoint: mel.{name} must be at most {cap:,}, got "
                                        f"{getattr(mel, name):,}")
    meta = {k: v for k, v in meta.items() if isinstance(k, str) and _plain(v)}
    model = _build(cfg, state, weight_norm, path)
    return LoadedCheckpoint(model, mel, str(meta.get("origin", "waveflow")), meta)


# ---------------------------------------------------------------------------------------------- loading
def load_checkpoint(
    path: str | Path, weight_norm: bool = True, sample_rate: int | None = None
) -> LoadedCheckpoint:
    """Load any supported checkpoint: waveflow's, NVIDIA/waveglow's pickled model, DeepLearningExamples'.

    Untrusted files are safe to load: no code from the file runs, memory stays within a small multiple of the
    file's size (see :mod:`waveflow.safeload`), and every malformed file is a :class:`CheckpointError`.

    Args:
        path: the file, or the name of a bundled voice (``"starter"``).
        weight_norm: return the model with weight norm applied (trainable form); ``False`` gives the folded
            inference form. Outputs are the same either way.
        sample_rate: for foreign checkpoints, which do not record it: the rate of the audio the model was
            trained on (default 22050, NVIDIA's). Ignored for waveflow files.

    Raises:
        CheckpointError: missing/corrupt/malformed file, unknown layout, non-finite weights, a file over the
            limits, or a pickle that needs a class or function outside the allow-list (refused without
            running it); the message names the file and the reason.
    """
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    try:
        return _load(path, weight_norm, sample_rate)
    except CheckpointError:
        raise
    except WaveflowError as e:
        raise CheckpointError(path, e.reason) from None
    except RecursionError:
        raise CheckpointError(path, "malformed checkpoint (its structure nests too deeply)") from None
    except Exception as e:  # noqa: BLE001 - the boundary: whatever else a malformed file trips over is its fault
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise CheckpointError(path, f"malformed checkpoint ({type(e).__name__}{': ' + first if first else ''})") from None


def _load(path: Path, weight_norm: bool, sample_rate: int | None) -> LoadedCheckpoint:
    payload = safe_load(path)
    if isinstance(payload, dict) and isinstance(payload.get("format"), str) and payload["format"] == FORMAT:
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


def load_model(path: str | Path, weight_norm: bool = True) -> VocoderModel:
    """Load a model (a WaveGlow, a WaveFlow) from any supported checkpoint (see :func:`load_checkpoint`)."""
    return load_checkpoint(path, weight_norm=weight_norm).model


# ---------------------------------------------------------------------------------------------- commands
def describe(ck: LoadedCheckpoint) -> dict[str, Any]:
    """A plain summary of a loaded checkpoint for ``waveflow info``."""
    return {
        "origin": ck.origin,
        "name": ck.name,
        "model_type": model_type(ck.model),
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
