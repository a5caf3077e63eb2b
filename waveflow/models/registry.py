"""The model seam: every model family the toolkit runs, found by its type name.

A family is a config dataclass (with a ``type`` field naming it, so a YAML file or a model file says which
family it is), a module class built from that config, and the three things inference and files need from it:
its receptive field in mel frames, a folded, frozen copy on a device and dtype, and its weights under stable
names. Everything above ``models/`` (the Vocoder, training, jobs, checkpoints, the demo, the benchmarks) goes
through :func:`build_model`, :func:`model_type`, :func:`receptive_field_frames`, :func:`prepare_for_inference`
and :func:`plain_state_dict`, never through a family's class; a new family is one module in ``models/`` and one
entry in :data:`FAMILIES`.

What every model offers (:class:`VocoderModel`): ``forward(audio (B, T), mel) -> (z (B, n_group, T // n_group),
logdet (B,))``, ``inverse(z, mel, known=None)``, ``infer(mel, sigma, generator)``, ``nll`` and ``nll_profile``,
``flow(audio, mel, steps, whitened)`` (what each step contributes, for the demo), ``prior``, ``hop_length``,
``num_parameters()``, ``remove_weight_norm()``/``apply_weight_norm()`` and ``batches_padded`` (whether items of
different lengths may share a padded batch, their padding masked). Its config offers ``type``, ``n_mels``,
``hop_length``, ``n_group`` (latent channels), ``prior``, ``prior_mel``, ``prior_mel_config()``,
``sample_multiple``, ``prior_context_frames`` and ``weight_count()``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from . import prepare
from . import waveflow as waveflow_family
from .config import WaveGlowConfig
from .waveflow import WaveFlow
from .waveflow_config import WaveFlowConfig
from .waveglow import WaveGlow


@typing.runtime_checkable
class VocoderModel(typing.Protocol):
    """The surface every model family offers (see the module docstring)."""

    config: typing.Any
    prior: nn.Module | None

    def forward(self, audio: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def inverse(self, z: torch.Tensor, mel: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor: ...
    def infer(self, mel: torch.Tensor, sigma: float = 0.6, generator: torch.Generator | None = None): ...
    def nll(self, audio: torch.Tensor, mel: torch.Tensor, sigma: float = 1.0): ...
    def nll_profile(self, audio: torch.Tensor, mel: torch.Tensor, sigma: float = 1.0) -> torch.Tensor: ...


@dataclass(frozen=True)
class Family:
    """One model family: its config and module classes and what inference and files need of it."""

    config: type
    model: type[nn.Module]
    receptive_field_frames: Callable[[typing.Any], int]
    prepare_for_inference: Callable[[nn.Module, torch.device, torch.dtype], nn.Module]
    plain_state_dict: Callable[[nn.Module], dict[str, torch.Tensor]]
    description: str


FAMILIES: dict[str, Family] = {
    "waveglow": Family(WaveGlowConfig, WaveGlow, prepare.receptive_field_frames, prepare.prepare_for_inference,
                       prepare.plain_state_dict, "WaveGlow (Prenger et al., 2018): parallel affine couplings"),
    "waveflow": Family(WaveFlowConfig, WaveFlow, waveflow_family.receptive_field_frames,
                       waveflow_family.prepare_for_inference, waveflow_family.plain_state_dict,
                       "WaveFlow (Ping et al., 2020): autoregressive over a squeezed height"),
}
MODEL_TYPES = tuple(FAMILIES)
#: A model config of any family (a tagged union: its ``type`` field picks the family when read from YAML).
ModelConfig = typing.Union[tuple(f.config for f in FAMILIES.values())]  # noqa: UP007 - built from the registry


def family(model_or_config_or_type) -> Family:
    """The :class:`Family` of a model, a config or a type name; ``ValueError`` naming the known types."""
    name = model_or_config_or_type if isinstance(model_or_config_or_type, str) else model_type(model_or_config_or_type)
    if name not in FAMILIES:
        raise ValueError(f"unknown model type {name!r}; known: {', '.join(MODEL_TYPES)}")
    return FAMILIES[name]


def model_type(model_or_config) -> str:
    """``"waveglow"``, ``"waveflow"``, ...: the ``type`` of a config, or of a model's config."""
    config = getattr(model_or_config, "config", model_or_config)
    name = getattr(config, "type", None)
    if not isinstance(name, str):
        raise TypeError(f"{type(model_or_config).__name__} is not a waveflow model or model config")
    return name


def config_from_dict(data: dict, where: str = "model"):
    """A model config from plain values (a YAML ``model`` section, a file's ``model_config``): its ``type``
    (default ``waveglow``) picks the family; unknown keys and bad values are a ``ConfigError`` naming them."""
    from ..config import ConfigError, from_dict

    name = (data or {}).get("type", "waveglow")
    if name not in FAMILIES:
        raise ConfigError(f"{where}.type: expected one of {list(MODEL_TYPES)}, got {name!r:.40}")
    return from_dict(FAMILIES[name].config, data, where)


def build_model(config) -> nn.Module:
    """A fresh model of the family ``config`` belongs to."""
    return family(config).model(config)


def receptive_field_frames(config) -> int:
    """Mel frames of context each side that make a chunk of the model's inverse exact."""
    return family(config).receptive_field_frames(config)


def prepare_for_inference(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A folded, frozen copy of ``model`` on ``device`` in ``dtype`` (the caller's model is left as it was)."""
    return family(model).prepare_for_inference(model, device, dtype)


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights with weight norm folded, on CPU, under stable names."""
    return family(model).plain_state_dict(model)
